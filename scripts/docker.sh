#!/bin/sh
# Makes a Docker engine available to jetq's container tests (testcontainers, test/containers,
# the compose run) and says which NATS image they use.
#
#   sh scripts/docker.sh <command> [args...]    run a command with an engine, then stop what was started
#   . scripts/docker.sh; jetq_docker_up         export the variables into this shell; jetq_docker_down
#                                               stops a private engine (call it from a trap)
#
# 1. A Docker engine already answers (DOCKER_HOST or the default socket): it is used as it is, and
#    the tests run the official `nats:2.10-alpine` image with mapped ports, pulled by testcontainers.
#    If that image cannot be pulled (no registry), the local image of step 2 is built and used.
# 2. No engine, Debian, root: installs Debian's docker.io (and nats-server) when missing, and
#    starts a private dockerd whose data root, exec root, pid file and socket live in one temporary
#    directory. It has no bridge and touches no iptables: containers run with host networking
#    only, so they get no addresses of their own and all traffic stays on loopback. No registry is
#    needed: the NATS image is built `FROM scratch` from Debian's /usr/sbin/nats-server and the
#    shared libraries `ldd` lists for it (and bash, for compose's healthcheck), tagged
#    `jetq-nats:<server version>`. The engine is
#    stopped by its PID when the command ends (or on jetq_docker_down), and its directory removed.
# 3. Otherwise: says why there is no engine and returns 1.
#
# Exported for the tests (test/support/nats-server.ts reads them):
#   DOCKER_HOST                      the private engine's socket (case 2)
#   TESTCONTAINERS_RYUK_DISABLED     true in case 2: the reaper image cannot be pulled; the engine's
#                                    own shutdown removes what a crashed test leaves
#   TESTCONTAINERS_HOST_OVERRIDE     127.0.0.1 in case 2: no bridge network to find a gateway on
#   JETQ_NATS_IMAGE                  the image testcontainers runs (unset: nats:2.10-alpine)
#   JETQ_LOCAL_NATS_IMAGE            jetq-nats:<version>, built here (the infra/compose run uses it)
#   JETQ_DOCKER_NETWORK              `host` when containers must use host networking (case 2)
#   JETQ_DOCKER_CLI                  the docker client that matches the engine

JETQ_OFFICIAL_NATS_IMAGE="nats:2.10-alpine"

jetq_docker_log() { echo "jetq docker: $*" >&2; }

# The docker client: Debian's when installed (it matches Debian's engine), else the first on PATH.
jetq_docker_cli() {
  if [ -n "${JETQ_DOCKER_CLI:-}" ]; then echo "$JETQ_DOCKER_CLI"
  elif [ -x /usr/bin/docker ]; then echo /usr/bin/docker
  else command -v docker 2>/dev/null || true
  fi
}

jetq_docker_reachable() {
  cli=$(jetq_docker_cli)
  [ -n "$cli" ] || return 1
  timeout 15 "$cli" info >/dev/null 2>&1
}

jetq_nats_bin() {
  if [ -n "${NATS_SERVER_BIN:-}" ] && [ -x "$NATS_SERVER_BIN" ]; then echo "$NATS_SERVER_BIN"
  elif command -v nats-server >/dev/null 2>&1; then command -v nats-server
  elif [ -x /usr/sbin/nats-server ]; then echo /usr/sbin/nats-server
  fi
}

# Builds jetq-nats:<version> FROM scratch: the nats-server binary and the libraries it links.
jetq_build_nats_image() {
  cli=$(jetq_docker_cli)
  bin=$(jetq_nats_bin)
  if [ -z "$bin" ]; then
    jetq_docker_log "no nats-server binary to build the local NATS image from (apt-get install nats-server)"
    return 1
  fi
  version=$("$bin" --version | sed -n 's/.*v\([0-9][0-9.]*\).*/\1/p')
  tag="jetq-nats:${version:-local}"
  if ! "$cli" image inspect "$tag" >/dev/null 2>&1; then
    ctx=$(mktemp -d "${TMPDIR:-/tmp}/jetq-nats-image.XXXXXX")
    mkdir -p "$ctx/rootfs/usr/sbin" "$ctx/rootfs/tmp"
    cp "$bin" "$ctx/rootfs/usr/sbin/nats-server"
    # bash only for infra/compose's healthcheck, which has no wget here: it asks the monitoring
    # port for /healthz through bash's /dev/tcp (infra/compose/docker-compose.local.yml).
    mkdir -p "$ctx/rootfs/bin"
    cp /bin/bash "$ctx/rootfs/bin/bash"
    # Every absolute path ldd prints (libc and the loader for 2.9.10), copied to the same path.
    for lib in $({ ldd "$bin"; ldd /bin/bash; } | grep -o '/[^ )]*' | sort -u); do
      mkdir -p "$ctx/rootfs$(dirname "$lib")"
      cp -L "$lib" "$ctx/rootfs$lib" || { rm -rf "$ctx"; return 1; }
    done
    chmod 1777 "$ctx/rootfs/tmp"
    cat >"$ctx/Dockerfile" <<'EOF'
FROM scratch
COPY rootfs/ /
ENTRYPOINT ["/usr/sbin/nats-server"]
EOF
    if ! DOCKER_BUILDKIT=0 "$cli" build -q -t "$tag" --label "org.opencontainers.image.source=$bin" "$ctx" >/dev/null; then
      rm -rf "$ctx"
      jetq_docker_log "building $tag failed"
      return 1
    fi
    rm -rf "$ctx"
    jetq_docker_log "built $tag from $bin and the $(ldd "$bin" | grep -c '/') shared libraries it links (plus bash for healthchecks)"
  fi
  JETQ_LOCAL_NATS_IMAGE=$tag
  export JETQ_LOCAL_NATS_IMAGE
}

jetq_docker_start_private() {
  if ! command -v dockerd >/dev/null 2>&1; then
    jetq_docker_log "installing Debian's docker.io (apt-get install docker.io)"
    { apt-get install -y -qq docker.io >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq docker.io >/dev/null; }; } >&2 || return 1
  fi
  if [ -z "$(jetq_nats_bin)" ]; then
    jetq_docker_log "installing Debian's nats-server (apt-get install nats-server)"
    { apt-get install -y -qq nats-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq nats-server >/dev/null; }; } >&2 || return 1
  fi
  JETQ_DOCKERD_DIR=$(mktemp -d "${TMPDIR:-/tmp}/jetq-dockerd.XXXXXX")
  d=$JETQ_DOCKERD_DIR
  mkdir -p "$d/data" "$d/exec"
  dockerd --bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
    --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/dockerd.pid" \
    -H "unix://$d/docker.sock" >"$d/dockerd.log" 2>&1 &
  JETQ_DOCKERD_PID=$!
  # Not exported: only this shell owns the engine (a nested scripts/docker.sh must not stop it).
  DOCKER_HOST="unix://$d/docker.sock"
  TESTCONTAINERS_RYUK_DISABLED=true
  TESTCONTAINERS_HOST_OVERRIDE=127.0.0.1
  JETQ_DOCKER_NETWORK=host
  export DOCKER_HOST TESTCONTAINERS_RYUK_DISABLED TESTCONTAINERS_HOST_OVERRIDE JETQ_DOCKER_NETWORK
  i=0
  while ! jetq_docker_reachable; do
    i=$((i + 1))
    if [ "$i" -gt 60 ] || ! kill -0 "$JETQ_DOCKERD_PID" 2>/dev/null; then
      jetq_docker_log "the private dockerd did not answer within 60 s; its log:"
      tail -20 "$d/dockerd.log" >&2
      jetq_docker_down
      return 1
    fi
    sleep 1
  done
  jetq_docker_log "private dockerd $("$(jetq_docker_cli)" version -f '{{.Server.Version}}' 2>/dev/null) (pid $JETQ_DOCKERD_PID, host networking only) at $DOCKER_HOST"
}

# Stops the private engine this shell started (by its PID; it stops its containers and its
# containerd), then removes its directory. Does nothing for an engine it did not start.
jetq_docker_down() {
  if [ -n "${JETQ_DOCKERD_PID:-}" ]; then
    if kill -0 "$JETQ_DOCKERD_PID" 2>/dev/null; then
      kill -TERM "$JETQ_DOCKERD_PID" 2>/dev/null || true
      i=0
      while kill -0 "$JETQ_DOCKERD_PID" 2>/dev/null && [ "$i" -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
      if kill -0 "$JETQ_DOCKERD_PID" 2>/dev/null; then
        jetq_docker_log "dockerd $JETQ_DOCKERD_PID still running 30 s after SIGTERM; sending SIGKILL"
        kill -KILL "$JETQ_DOCKERD_PID" 2>/dev/null || true
      fi
    fi
    jetq_docker_log "stopped the private dockerd (pid $JETQ_DOCKERD_PID)"
    JETQ_DOCKERD_PID=
    # What pointed at it points nowhere now.
    unset DOCKER_HOST TESTCONTAINERS_RYUK_DISABLED TESTCONTAINERS_HOST_OVERRIDE JETQ_DOCKER_NETWORK JETQ_NATS_IMAGE JETQ_LOCAL_NATS_IMAGE
  fi
  if [ -n "${JETQ_DOCKERD_DIR:-}" ] && [ -d "$JETQ_DOCKERD_DIR" ]; then
    # dockerd unmounts its overlays on exit but leaves the bind mount of its default network
    # namespace (exec/netns/default): unmount what is left under the directory, deepest first.
    for m in $(awk -v d="$JETQ_DOCKERD_DIR/" 'index($2, d) == 1 { print $2 }' /proc/mounts 2>/dev/null | sort -r); do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if ! grep -q " $JETQ_DOCKERD_DIR/" /proc/mounts 2>/dev/null; then rm -rf "$JETQ_DOCKERD_DIR"
    else jetq_docker_log "left $JETQ_DOCKERD_DIR: something under it is still mounted"; fi
    JETQ_DOCKERD_DIR=
  fi
}

jetq_docker_up() {
  if jetq_docker_reachable; then
    cli=$(jetq_docker_cli)
    JETQ_DOCKER_CLI=$cli
    export JETQ_DOCKER_CLI
    # The compose run always uses the local image (its healthcheck needs the bash inside).
    jetq_build_nats_image || jetq_docker_log "no local NATS image: the infra/compose test will say so"
    if [ -n "${JETQ_NATS_IMAGE:-}" ]; then
      jetq_docker_log "Docker engine at ${DOCKER_HOST:-the default socket}; NATS image $JETQ_NATS_IMAGE (JETQ_NATS_IMAGE)"
    elif "$cli" image inspect "$JETQ_OFFICIAL_NATS_IMAGE" >/dev/null 2>&1 \
      || timeout 120 "$cli" pull -q "$JETQ_OFFICIAL_NATS_IMAGE" >/dev/null 2>&1; then
      jetq_docker_log "Docker engine at ${DOCKER_HOST:-the default socket}; NATS image $JETQ_OFFICIAL_NATS_IMAGE"
    elif [ -n "${JETQ_LOCAL_NATS_IMAGE:-}" ]; then
      jetq_docker_log "Docker engine at ${DOCKER_HOST:-the default socket} cannot pull $JETQ_OFFICIAL_NATS_IMAGE; NATS image $JETQ_LOCAL_NATS_IMAGE (built here)"
      JETQ_NATS_IMAGE=$JETQ_LOCAL_NATS_IMAGE
      export JETQ_NATS_IMAGE
    else
      return 1
    fi
    return 0
  fi
  if [ "$(id -u)" != 0 ] || [ ! -f /etc/debian_version ] || ! command -v apt-get >/dev/null 2>&1; then
    jetq_docker_log "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}), and starting one here needs root on Debian. Start Docker, or run the tests without it (the nats-server binary is used)."
    return 1
  fi
  jetq_docker_start_private || return 1
  JETQ_DOCKER_CLI=$(jetq_docker_cli)
  export JETQ_DOCKER_CLI
  jetq_build_nats_image || { jetq_docker_down; return 1; }
  JETQ_NATS_IMAGE=$JETQ_LOCAL_NATS_IMAGE
  export JETQ_NATS_IMAGE
  jetq_docker_log "NATS image $JETQ_NATS_IMAGE, host networking"
}

# Run mode: sh scripts/docker.sh <command> [args...]
case "${0##*/}" in
  docker.sh)
    set -u
    if [ "$#" -eq 0 ]; then
      echo "usage: sh scripts/docker.sh <command> [args...]" >&2
      exit 2
    fi
    trap 'jetq_docker_down' EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    jetq_docker_up || exit 1
    status=0
    "$@" || status=$?
    exit "$status"
    ;;
esac

/**
 * Starts NATS servers for tests, the demo and the benchmarks, in the order DESIGN.md gives:
 * `NATS_URL` (an external server) → testcontainers (when a Docker engine answers) → a local
 * `nats-server` binary on a free loopback port with a temporary store.
 *
 * Environment (scripts/docker.sh sets the Docker ones):
 * - `JETQ_NATS_SERVER=container|binary` forces a path: `container` fails with a clear message
 *   when no container can be started (no silent fallback), `binary` never asks Docker.
 * - `JETQ_NATS_IMAGE`: the image testcontainers runs (default `nats:2.10-alpine`, nats-container.ts).
 * - `JETQ_DOCKER_NETWORK=host`: host networking (an engine without a bridge); each server gets
 *   its own free loopback port, since host networking shares the port space.
 * - `JETQ_SERVER_REPORT=<file>`: one JSON line per server started, saying which path it took
 *   (.ci/run prints the tally); the path is also printed once per process on stderr.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { appendFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

/** How to reach a server: what `connect()` takes. */
export interface ServerAddress {
  servers: string;
  user?: string;
  pass?: string;
}

export interface NatsServer extends ServerAddress {
  /** Where the server came from. */
  kind: "external" | "container" | "binary";
  stop(): Promise<void>;
}

const INSTALL_HINT = [
  "No NATS server available. Any one of these works:",
  "  - set NATS_URL to a server with JetStream (e.g. NATS_URL=nats://127.0.0.1:4222)",
  "  - start a Docker engine (tests then use testcontainers)",
  "  - install nats-server: `apt-get install nats-server` (Debian/Ubuntu), `brew install nats-server` (macOS),",
  "    or download it from https://github.com/nats-io/nats-server/releases and put it on PATH (or set NATS_SERVER_BIN)",
].join("\n");

/** Path of a `nats-server` binary, or undefined. */
export function findNatsServerBinary(): string | undefined {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = (process.env.PATH ?? "").split(delimiter).concat(["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/opt/homebrew/bin"]);
  for (const d of dirs) {
    if (!d) continue;
    const p = join(d, "nats-server");
    if (existsSync(p)) return p;
  }
  return undefined;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no port"))));
    });
  });
}

function dockerReachable(): boolean {
  return Boolean(process.env.DOCKER_HOST) || existsSync("/var/run/docker.sock");
}

/** Which server path this process's tests take, from `JETQ_NATS_SERVER` (unset: automatic). */
function forcedPath(): "container" | "binary" | undefined {
  const v = process.env.JETQ_NATS_SERVER;
  if (v === undefined || v === "") return undefined;
  if (v === "container" || v === "binary") return v;
  throw new Error(`JETQ_NATS_SERVER must be "container" or "binary" (or unset), got ${JSON.stringify(v)}`);
}

/**
 * Who asked for a server: `startNats` (the shared server of a test file: NATS_URL, container or
 * binary), `startLocalNats` (a test's own binary server, to kill, restart or reconfigure),
 * `container-test` (test/containers' own containers), or `cluster` (a node of a 3-node cluster).
 */
export type ServerRequest = "startNats" | "startLocalNats" | "container-test" | "cluster";

const announced = new Set<string>();
/**
 * Makes the path a server took visible: under the test runner, printed on stderr the first time
 * a process starts a server of a kind for a caller; with `JETQ_SERVER_REPORT` set, one JSON line
 * per server (.ci/run tallies them).
 */
export function reportServerPath(kind: NatsServer["kind"], via: ServerRequest, detail: string): void {
  const key = `${kind}/${via}`;
  if (process.env.NODE_TEST_CONTEXT && !announced.has(key)) {
    announced.add(key);
    process.stderr.write(`jetq test server: ${kind} via ${via} (${detail})\n`);
  }
  const file = process.env.JETQ_SERVER_REPORT;
  if (!file) return;
  try {
    appendFileSync(file, `${JSON.stringify({ kind, via, detail, script: process.argv[1] ?? "" })}\n`);
  } catch (err) {
    // The server is running and the test may go on; the tally will miss it, and says so here.
    process.stderr.write(`jetq test server: could not record the server in JETQ_SERVER_REPORT=${file}: ${(err as Error).message}\n`);
  }
}

/** A `nats-server` process this code started and owns (by PID). */
export class LocalNatsServer implements NatsServer {
  readonly kind = "binary" as const;
  readonly port: number;
  readonly storeDir: string;
  readonly #bin: string;
  readonly #args: string[];
  #proc: ChildProcess | undefined;
  #log = "";
  readonly #ownsStore: boolean;
  readonly #ownedDirs: string[];

  /** `ownedDirs` (a config file's directory, say) are removed by {@link stop} with the store. */
  constructor(bin: string, port: number, storeDir: string | undefined, extraArgs: string[] = [], ownedDirs: string[] = []) {
    this.#bin = bin;
    this.#ownedDirs = ownedDirs;
    this.port = port;
    this.#ownsStore = storeDir === undefined;
    this.storeDir = storeDir ?? mkdtempSync(join(tmpdir(), "jetq-nats-"));
    this.#args = extraArgs;
  }

  get servers(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
  get pid(): number | undefined {
    return this.#proc?.pid;
  }
  get log(): string {
    return this.#log;
  }

  /** Starts the process and resolves when it accepts connections (deadline 15 s). */
  async start(): Promise<void> {
    const args = ["-a", "127.0.0.1", "-p", String(this.port), "-js", "-sd", this.storeDir, ...this.#args];
    const proc = spawn(this.#bin, args, { stdio: ["ignore", "ignore", "pipe"] });
    this.#proc = proc;
    this.#log = "";
    proc.stderr!.on("data", (b: Buffer) => {
      this.#log = (this.#log + b.toString()).slice(-20_000);
    });
    const exited = new Promise<never>((_, reject) =>
      proc.once("exit", (code, sig) => reject(new Error(`nats-server exited (${code ?? sig}) during start:\n${this.#log}`))),
    );
    exited.catch(() => {});
    await Promise.race([this.#waitReady(15_000), exited]);
  }

  async #waitReady(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      if (/Server is ready/.test(this.#log)) {
        const ok = await new Promise<boolean>((resolve) => {
          const s = tcpConnect(this.port, "127.0.0.1", () => {
            s.destroy();
            resolve(true);
          });
          s.on("error", () => resolve(false));
        });
        if (ok) return;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`nats-server did not become ready within ${ms} ms:\n${this.#log}`);
  }

  /** Sends a signal and waits (bounded) for the process to exit. */
  async #signal(sig: NodeJS.Signals): Promise<void> {
    const p = this.#proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => p.once("exit", () => resolve()));
    p.kill(sig);
    const t = setTimeout(() => p.kill("SIGKILL"), 10_000);
    await gone;
    clearTimeout(t);
  }

  /**
   * SIGSTOP: the server freezes with its connections open (it stops answering, nothing fails).
   * Resolves once the kernel reports every thread stopped, so nothing sent afterwards is served.
   */
  async pause(): Promise<void> {
    const pid = this.#proc?.pid;
    if (pid === undefined) return;
    this.#proc!.kill("SIGSTOP");
    const deadline = Date.now() + 5_000;
    while (Date.now() < deadline) {
      const stopped = readdirSync(`/proc/${pid}/task`).every((tid) => {
        const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
        return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T");
      });
      if (stopped) return;
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(`nats-server ${pid} did not stop within 5 s of SIGSTOP`);
  }

  /** SIGCONT after {@link pause}. */
  resume(): void {
    this.#proc?.kill("SIGCONT");
  }

  /** SIGKILL: a crash, nothing flushed by the server. */
  kill(): Promise<void> {
    return this.#signal("SIGKILL");
  }

  /** Restarts on the same port and store. */
  async restart(): Promise<void> {
    await this.#signal("SIGTERM");
    await this.start();
  }

  async stop(): Promise<void> {
    await this.#signal("SIGTERM");
    if (this.#ownsStore) rmSync(this.storeDir, { recursive: true, force: true });
    for (const d of this.#ownedDirs) rmSync(d, { recursive: true, force: true });
  }
}

/** Starts a local nats-server binary on a free loopback port. */
export async function startLocalNats(opts: { storeDir?: string; args?: string[]; config?: string; via?: ServerRequest } = {}): Promise<LocalNatsServer> {
  const bin = findNatsServerBinary();
  if (!bin) throw new Error(INSTALL_HINT);
  let lastErr: unknown;
  for (let i = 0; i < 3; i++) {
    const args = [...(opts.args ?? [])];
    const owned: string[] = [];
    if (opts.config !== undefined) {
      const dir = mkdtempSync(join(tmpdir(), "jetq-nats-conf-"));
      owned.push(dir);
      const file = join(dir, "server.conf");
      writeFileSync(file, opts.config);
      args.push("-c", file);
    }
    const srv = new LocalNatsServer(bin, await freePort(), opts.storeDir, args, owned);
    try {
      await srv.start();
      reportServerPath("binary", opts.via ?? "startLocalNats", `${bin} on ${srv.servers}`);
      return srv;
    } catch (err) {
      // A port taken between freePort() and the server's bind: try another.
      lastErr = err;
      await srv.stop();
    }
  }
  throw lastErr;
}

/**
 * A server for tests that only need one (they must not kill or reconfigure it):
 * NATS_URL, else testcontainers, else a local binary (`JETQ_NATS_SERVER` forces one path).
 */
export async function startNats(): Promise<NatsServer> {
  const url = process.env.NATS_URL;
  if (url) {
    reportServerPath("external", "startNats", url);
    return { kind: "external", servers: url, stop: async () => {} };
  }
  const forced = forcedPath();
  if (forced === "container" || (forced === undefined && dockerReachable())) {
    try {
      const { ContainerNatsServer } = await import("./nats-container.ts");
      const c = await ContainerNatsServer.start();
      reportServerPath("container", "startNats", c.describe());
      return c;
    } catch (err) {
      const msg = (err as Error).message;
      if (forced === "container") {
        throw new Error(`JETQ_NATS_SERVER=container, but no NATS container could be started: ${msg}\n` +
          "Make a Docker engine reachable (sh scripts/docker.sh <command> starts one on Debian as root), or unset JETQ_NATS_SERVER.");
      }
      if (!findNatsServerBinary()) throw new Error(`${INSTALL_HINT}\n(testcontainers failed: ${msg})`);
      process.stderr.write(`jetq test server: testcontainers failed (${msg.split("\n")[0]}); falling back to the nats-server binary\n`);
    }
  }
  return startLocalNats({ via: "startNats" });
}

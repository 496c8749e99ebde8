/**
 * A NATS server with JetStream for the examples, so each runs with nothing set up:
 * `NATS_URL` when set (your server; never stopped here), else a `nats-server` binary started on a
 * free loopback port with a temporary store (stopped and removed by `stop()`), else a container
 * through testcontainers when a Docker engine answers. Your application connects to its own server
 * and needs none of this.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";

export interface ExampleServer {
  /** The URL to connect to. */
  servers: string;
  user?: string;
  pass?: string;
  /** What it is, for the example's output: "NATS_URL", "local nats-server, pid 123", "NATS container". */
  kind: string;
  /** Whether `stop()` stops something this process started. */
  ours: boolean;
  stop(): Promise<void>;
}

export const NO_SERVER_HINT = [
  "No NATS server with JetStream was found. Any one of these works:",
  "  - install nats-server and run again (a server is started and stopped for you):",
  "      Debian/Ubuntu: sudo apt-get install nats-server",
  "      macOS:         brew install nats-server",
  "      anywhere:      a release from https://github.com/nats-io/nats-server/releases on PATH",
  "                     (or NATS_SERVER_BIN=/path/to/nats-server)",
  "  - point it at a running server:  NATS_URL=nats://127.0.0.1:4222",
  "      (start one with: nats-server -js, or docker run -p 4222:4222 nats -js)",
  "  - start a Docker engine: NATS then runs in a container",
].join("\n");

/** Path of a `nats-server` binary (NATS_SERVER_BIN, PATH, the usual install places), or undefined. */
export function findNatsServerBinary(): string | undefined {
  const fromEnv = process.env.NATS_SERVER_BIN;
  if (fromEnv && existsSync(fromEnv)) return fromEnv;
  const dirs = (process.env.PATH ?? "").split(delimiter).concat(["/usr/sbin", "/usr/local/bin", "/usr/local/sbin", "/opt/homebrew/bin"]);
  for (const d of dirs) {
    const p = d && join(d, "nats-server");
    if (p && existsSync(p)) return p;
  }
  return undefined;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === "object" && addr ? resolve(addr.port) : reject(new Error("no free port"))));
    });
  });
}

/** Starts `bin` on a free loopback port; resolves once it accepts connections (deadline 15 s). */
async function startBinary(bin: string): Promise<ExampleServer> {
  const port = await freePort();
  const store = mkdtempSync(join(tmpdir(), "jetq-example-nats-"));
  const proc = spawn(bin, ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", store], { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  proc.stderr!.on("data", (b: Buffer) => {
    log = (log + b.toString()).slice(-20_000);
  });
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      const gone = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
      proc.kill("SIGTERM");
      const t = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      await gone;
      clearTimeout(t);
    }
    rmSync(store, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null || proc.signalCode !== null) break;
    if (log.includes("Server is ready")) {
      const accepts = await new Promise<boolean>((resolve) => {
        const s = tcpConnect(port, "127.0.0.1", () => {
          s.destroy();
          resolve(true);
        });
        s.on("error", () => resolve(false));
      });
      if (accepts) return { servers: `nats://127.0.0.1:${port}`, kind: `local nats-server, pid ${proc.pid}`, ours: true, stop };
    }
    await new Promise((r) => setTimeout(r, 20));
  }
  await stop();
  throw new Error(`nats-server did not start within 15 s:\n${log}`);
}

/** A server for an example: NATS_URL, else a local binary, else a container (see the file's comment). */
export async function startExampleServer(): Promise<ExampleServer> {
  const url = process.env.NATS_URL;
  if (url) return { servers: url, kind: "NATS_URL", ours: false, stop: async () => {} };
  const bin = findNatsServerBinary();
  if (bin) return startBinary(bin);
  if (process.env.DOCKER_HOST || existsSync("/var/run/docker.sock")) {
    try {
      const { NatsContainer } = await import("@testcontainers/nats");
      const c = await new NatsContainer("nats:2.10-alpine").withJetStream().start();
      const o = c.getConnectionOptions();
      return {
        servers: Array.isArray(o.servers) ? o.servers[0]! : String(o.servers),
        ...(o.user ? { user: o.user } : {}),
        ...(o.pass ? { pass: o.pass } : {}),
        kind: "NATS container",
        ours: true,
        stop: async () => {
          await c.stop();
        },
      };
    } catch (err) {
      throw new Error(`${NO_SERVER_HINT}\n(the Docker engine did not start NATS: ${(err as Error).message})`);
    }
  }
  throw new Error(NO_SERVER_HINT);
}

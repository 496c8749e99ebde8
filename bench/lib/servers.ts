// Finds or starts the servers each contender needs. NATS: a fresh local nats-server per scenario
// (unless NATS_URL is set). Redis: REDIS_URL, else 127.0.0.1:6379 when it answers, else a local
// redis-server started here. PostgreSQL: DATABASE_URL, else 127.0.0.1:5432 when it answers.
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { connect as tcpConnect } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, join } from "node:path";
import { findNatsServerBinary, freePort, startLocalNats } from "../../test/support/nats-server.ts";
import { sleep } from "./common.ts";

export interface NatsTarget {
  servers: string;
  /** PID of a server this bench started (so it may stop/continue it); undefined for NATS_URL. */
  pid: number | undefined;
  stop(): Promise<void>;
}

/** A fresh server (empty store) for one scenario, or the NATS_URL server. */
export async function natsForScenario(): Promise<NatsTarget> {
  const url = process.env.NATS_URL;
  if (url) return { servers: url, pid: undefined, stop: async () => {} };
  const srv = await startLocalNats();
  return { servers: srv.servers, pid: srv.pid, stop: () => srv.stop() };
}

export function natsServerVersion(): string {
  if (process.env.NATS_URL) return "external (NATS_URL)";
  const bin = findNatsServerBinary();
  if (!bin) return "none";
  const r = spawnSync(bin, ["--version"], { encoding: "utf8" });
  return (r.stdout || r.stderr).trim().replace(/^nats-server:\s*/, "");
}

/** CPU seconds (user + system) a process has used, from /proc; undefined where unreadable. */
export function processCpuSeconds(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13 after "pid (comm) ".
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}

/** Sends one RESP command over a fresh socket and returns the raw reply (bounded by a deadline). */
export function redisCommand(host: string, port: number, args: string[], timeoutMs = 1500): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tcpConnect(port, host);
    let buf = "";
    const t = setTimeout(() => {
      s.destroy();
      reject(new Error("redis: no answer"));
    }, timeoutMs);
    s.on("error", (e) => {
      clearTimeout(t);
      reject(e);
    });
    s.on("connect", () => s.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join("")}`));
    s.on("data", (d) => {
      buf += d.toString();
      // Enough for the simple replies used here: a status, an error, or one bulk string / array.
      const complete =
        /^[+-:].*\r\n$/s.test(buf) ||
        (/^\$(\d+)\r\n/.test(buf) && buf.length >= Number(/^\$(\d+)/.exec(buf)![1]) + 5) ||
        (/^\*\d+\r\n/.test(buf) && buf.split("\r\n").length - 1 >= 1 + 2 * Number(/^\*(\d+)/.exec(buf)![1]));
      if (complete) {
        clearTimeout(t);
        s.end();
        resolve(buf);
      }
    });
  });
}

export interface RedisTarget {
  url: string;
  host: string;
  port: number;
  source: "REDIS_URL" | "127.0.0.1:6379" | "started here";
  version: string;
  persistence: string;
  stop(): Promise<void>;
}

async function describeRedis(host: string, port: number): Promise<{ version: string; persistence: string }> {
  const info = await redisCommand(host, port, ["INFO", "server"]);
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? "unknown";
  let persistence = "unknown";
  try {
    const aof = await redisCommand(host, port, ["CONFIG", "GET", "appendonly"]);
    const fsync = await redisCommand(host, port, ["CONFIG", "GET", "appendfsync"]);
    const save = await redisCommand(host, port, ["CONFIG", "GET", "save"]);
    const val = (r: string): string => r.split("\r\n")[4] ?? "";
    persistence = val(aof) === "yes" ? `AOF, appendfsync ${val(fsync)}` : `no AOF; RDB save "${val(save)}"`;
  } catch {
    // CONFIG may be disabled on managed servers
  }
  return { version, persistence };
}

function onPath(name: string): string | undefined {
  for (const d of (process.env.PATH ?? "").split(delimiter).concat(["/usr/bin", "/usr/local/bin"])) {
    if (d && existsSync(join(d, name))) return join(d, name);
  }
  return undefined;
}

/** Redis for the BullMQ column, or a one-line reason it is skipped. */
export async function findRedis(): Promise<RedisTarget | string> {
  const env = process.env.REDIS_URL;
  if (env) {
    const u = new URL(env);
    const host = u.hostname || "127.0.0.1";
    const port = Number(u.port || 6379);
    try {
      return { url: env, host, port, source: "REDIS_URL", ...(await describeRedis(host, port)), stop: async () => {} };
    } catch (err) {
      return `BullMQ skipped: REDIS_URL=${env} does not answer (${(err as Error).message})`;
    }
  }
  try {
    const pong = await redisCommand("127.0.0.1", 6379, ["PING"]);
    if (pong.startsWith("+PONG")) {
      return { url: "redis://127.0.0.1:6379", host: "127.0.0.1", port: 6379, source: "127.0.0.1:6379", ...(await describeRedis("127.0.0.1", 6379)), stop: async () => {} };
    }
  } catch {
    // nothing there: try a local binary
  }
  const bin = onPath("redis-server");
  if (!bin) return "BullMQ skipped: no Redis (set REDIS_URL, run one on 127.0.0.1:6379, or put redis-server on PATH)";
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "jetq-bench-redis-"));
  // AOF everysec: the durability setting closest to what a job queue is usually run with.
  const proc: ChildProcess = spawn(bin, ["--port", String(port), "--bind", "127.0.0.1", "--dir", dir, "--appendonly", "yes", "--appendfsync", "everysec", "--save", ""], {
    stdio: "ignore",
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      if ((await redisCommand("127.0.0.1", port, ["PING"])).startsWith("+PONG")) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      return `BullMQ skipped: redis-server at ${bin} did not start`;
    }
    await sleep(50);
  }
  return {
    url: `redis://127.0.0.1:${port}`,
    host: "127.0.0.1",
    port,
    source: "started here",
    ...(await describeRedis("127.0.0.1", port)),
    stop: async () => {
      if (proc.exitCode === null) {
        let timer: NodeJS.Timeout | undefined;
        const gone = new Promise((r) => proc.once("exit", r));
        proc.kill("SIGTERM");
        await Promise.race([gone, new Promise((r) => (timer = setTimeout(r, 5000)))]);
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface PgTarget {
  url: string;
  source: "DATABASE_URL" | "127.0.0.1:5432";
  version: string;
}

/** PostgreSQL for the pg-boss column (optional), or a one-line reason it is skipped. */
export async function findPostgres(): Promise<PgTarget | string> {
  const url = process.env.DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/test";
  const source = process.env.DATABASE_URL ? "DATABASE_URL" : "127.0.0.1:5432";
  // pg comes with pg-boss and ships no types; this is the little of it used here.
  interface PgClient {
    connect(): Promise<void>;
    query<R>(sql: string): Promise<{ rows: R[] }>;
    end(): Promise<void>;
  }
  let Client: new (o: object) => PgClient;
  try {
    const pgModule = "pg";
    Client = ((await import(pgModule)) as { default: { Client: new (o: object) => PgClient } }).default.Client;
  } catch {
    return "pg-boss skipped: the pg package is not installed";
  }
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    const r = await client.query<{ v: string }>("select current_setting('server_version') as v");
    return { url, source, version: r.rows[0]?.v ?? "unknown" };
  } catch (err) {
    return `pg-boss skipped: no PostgreSQL at ${source === "DATABASE_URL" ? "DATABASE_URL" : url} (${(err as Error).message}); set DATABASE_URL to enable it`;
  } finally {
    await client.end().catch(() => {});
  }
}

import { subscribe, unsubscribe } from "node:diagnostics_channel";
import { existsSync, readFileSync } from "node:fs";
import type { Socket } from "node:net";
import {
  AuthorizationError,
  connect,
  ConnectionError as NatsConnectionError,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
  TimeoutError as NatsTimeoutError,
  UserAuthenticationExpiredError,
} from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager, type StreamInfo, type ConsumerInfo } from "@nats-io/jetstream";
import { AuthenticationError, ConfigError, ConnectionError, QueueNotFoundError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { defineQueue, type Queue } from "../queue/define.ts";
import { listQueues } from "../queue/list.ts";
import { safeText } from "./format.ts";

/** The connection options every command takes (global options of the program). */
export interface ConnectOptions {
  server: string;
  creds?: string;
  user?: string;
  password?: string;
  tlsCa?: string;
  tlsCert?: string;
  tlsKey?: string;
  timeout: number;
  /** Where `server` came from: the `--server` flag, `NATS_URL`, or the default. @default "cli" */
  serverSource?: "cli" | "env" | "default" | undefined;
  /** --json: the server notice on stderr is a JSON line. */
  json?: boolean;
}

export const DEFAULT_SERVER = "nats://127.0.0.1:4222";

/** What the last connection found, for hints in error messages (one connection per command). */
let lastServer: { where: string; jetstream: boolean } | undefined;

/** The command's --timeout, for each JetStream request it makes (the client's default is 5 s). */
let requestTimeout: number | undefined;

/**
 * Options for `jetstreamManager(nc, …)` in the CLI: each request waits at most the command's
 * --timeout (a fresh object per call: nats.js changes the object it gets).
 */
export function cliJsOptions(): { timeout?: number } {
  return requestTimeout === undefined ? {} : { timeout: requestTimeout };
}

/** The servers of `o.server` as shown in messages: without credentials in the URLs. */
export function serversShown(o: Pick<ConnectOptions, "server">): string {
  return o.server
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)
    .map((u) => u.replace(/\/\/[^@/]*@/, "//"))
    .join(", ");
}

/**
 * A hint for an error that says JetStream did not answer, when the server said in its INFO that
 * it runs without JetStream: the fix is on the server, not in jetq's options.
 */
export function jetStreamHint(err: unknown): string | undefined {
  if (!lastServer || lastServer.jetstream || !/JetStream/.test(String((err as Error)?.message))) return undefined;
  return `The NATS server at ${lastServer.where} runs without JetStream, which jetq needs: start it with -js (nats-server -js), or add \`jetstream {}\` to its configuration, or point jetq at another server with --server or NATS_URL.`;
}

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Checks each server URL before the client sees it: the client would take `http://host:8222` (the
 * monitoring port) or `ws://` (which needs the websocket client) and fail in a confusing way.
 * Bare `host:port` is allowed (the client assumes nats://).
 * @throws {@link ConfigError} naming the URL (without its credentials) and what to use instead.
 */
export function checkServerUrls(servers: readonly string[]): void {
  for (const u of servers) {
    const shown = u.replace(/\/\/[^@/]*@/, "//");
    const m = SCHEME.exec(u);
    const scheme = m?.[1]?.toLowerCase();
    if (scheme !== undefined && scheme !== "nats" && scheme !== "tls") {
      const why =
        scheme === "http" || scheme === "https"
          ? " (that is the monitoring or a web port; NATS clients use the client port, 4222 by default)"
          : scheme === "ws" || scheme === "wss"
            ? " (websocket URLs need a websocket client; use the server's client port, 4222 by default)"
            : "";
      throw new ConfigError(`Expected --server (or NATS_URL) URLs to start with nats:// or tls://, got ${JSON.stringify(shown)}${why}`);
    }
    let host: string;
    try {
      host = new URL(scheme === undefined ? `nats://${u}` : u).hostname;
    } catch {
      host = "";
    }
    if (host === "") throw new ConfigError(`Expected --server (or NATS_URL) to be URLs like nats://127.0.0.1:4222, got ${JSON.stringify(shown)}`);
  }
}

const SOURCES = { cli: "--server", env: "NATS_URL", default: "the default; set --server or NATS_URL to use another" } as const;

/** Names the server a command talks to, on stderr (stdout stays the command's output). */
function announce(nc: NatsConnection, o: ConnectOptions, where: string): void {
  const version = nc.info?.version ?? "unknown";
  const jetstream = nc.info?.jetstream === true;
  lastServer = { where, jetstream };
  const source = o.serverSource ?? "cli";
  if (o.json) {
    process.stderr.write(`${JSON.stringify({ server: { url: where, connected: nc.getServer(), version, jetstream, source: source === "default" ? "default" : SOURCES[source] } })}\n`);
  } else {
    process.stderr.write(safeText(`jetq: NATS at ${where} (nats-server ${version}${jetstream ? "" : ", without JetStream"}; from ${SOURCES[source]})\n`));
  }
}

/**
 * Opens a connection for one command, turning every failure into a jetq error with advice.
 * `persistent` (for --watch) keeps reconnecting after the first connection was made.
 */
export async function openConnection(o: ConnectOptions, persistent = false): Promise<NatsConnection> {
  const servers = o.server
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  // The client would quietly fall back to 127.0.0.1:4222, talking to a server nobody named.
  if (servers.length === 0) {
    throw new ConfigError(`Expected --server (or NATS_URL) to name at least one server, e.g. nats://127.0.0.1:4222, got ${JSON.stringify(o.server)}`);
  }
  checkServerUrls(servers);
  requestTimeout = o.timeout;
  const opts: ConnectionOptions = {
    servers,
    name: "jetq-cli",
    timeout: o.timeout,
    // A one-shot command fails fast; a watch rides out a server restart or a leader election.
    reconnect: persistent,
    ...(persistent ? { maxReconnectAttempts: -1, reconnectTimeWait: 1000 } : {}),
    noAsyncTraces: true,
  };
  if (o.user !== undefined) opts.user = o.user;
  if (o.password !== undefined) opts.pass = o.password;
  if (o.creds !== undefined) {
    let creds: Uint8Array;
    try {
      creds = readFileSync(o.creds);
    } catch (err) {
      throw new ConfigError(`Cannot read the credentials file given by --creds: ${(err as Error).message}`, { cause: err });
    }
    opts.authenticator = credsAuthenticator(creds);
  }
  for (const [flag, file] of [["--tls-ca", o.tlsCa], ["--tls-cert", o.tlsCert], ["--tls-key", o.tlsKey]] as const) {
    if (file !== undefined && !existsSync(file)) throw new ConfigError(`The file given by ${flag} does not exist: ${file}`);
  }
  if (o.tlsCa !== undefined || o.tlsCert !== undefined || o.tlsKey !== undefined) {
    opts.tls = {
      ...(o.tlsCa !== undefined ? { caFile: o.tlsCa } : {}),
      ...(o.tlsCert !== undefined ? { certFile: o.tlsCert } : {}),
      ...(o.tlsKey !== undefined ? { keyFile: o.tlsKey } : {}),
    };
  }
  // Credentials in a URL (nats://user:pass@host) must never reach an error message.
  const where = servers.map((u) => u.replace(/\/\/[^@/]*@/, "//")).join(", ");
  let nc: NatsConnection;
  // A connect attempt that times out before the server's INFO leaves its socket open in the client
  // (nats.js closes only connections that got that far): note the sockets this attempt opens, and
  // destroy them if it fails, so retries (the dashboard's reconnect loop) do not pile them up.
  const opened: Socket[] = [];
  const track = (msg: unknown): void => {
    const s = (msg as { socket?: Socket } | undefined)?.socket;
    if (s !== undefined && opened.length < 64) opened.push(s);
  };
  subscribe("net.client.socket", track);
  try {
    nc = await connect(opts);
  } catch (err) {
    for (const s of opened) s.destroy();
    opened.length = 0;
    if (err instanceof AuthorizationError || err instanceof UserAuthenticationExpiredError) {
      const given = o.user !== undefined || o.creds !== undefined;
      if (!given) {
        throw new AuthenticationError(
          `NATS at ${where} requires credentials (${err.message}). Pass --user/--password or --creds (or set NATS_USER/NATS_PASSWORD or NATS_CREDS).`,
          { cause: err },
        );
      }
      throw new AuthenticationError(
        `NATS at ${where} rejected the credentials (${err.message}). Check --user/--password, --creds, or NATS_USER/NATS_PASSWORD/NATS_CREDS.`,
        { cause: err },
      );
    }
    const code = (err as NodeJS.ErrnoException | undefined)?.code ?? (err as { cause?: NodeJS.ErrnoException } | undefined)?.cause?.code;
    if ((typeof code === "string" && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(code)) || /certificate/i.test(String((err as Error)?.message))) {
      throw new ConnectionError(
        `TLS with NATS at ${where} failed: ${(err as Error).message.replace(/; if the root CA.*$/, "")}. If the server uses a private CA, pass it with --tls-ca (or NATS_CA).`,
        { cause: err },
      );
    }
    if (err instanceof NatsTimeoutError) {
      throw new ConnectionError(`No answer from NATS at ${where} within ${o.timeout} ms. Is the address right (--server or NATS_URL)?`, { cause: err });
    }
    if (err instanceof NatsConnectionError || (err instanceof Error && /ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|connection refused/i.test(err.message))) {
      const detail = err.cause instanceof Error ? err.cause.message : err.message;
      throw new ConnectionError(
        `Cannot reach NATS at ${where} (${detail}). Is nats-server running with JetStream (nats-server -js)? Point jetq at it with --server or NATS_URL.`,
        { cause: err },
      );
    }
    throw mapNatsError(err, `connect to NATS at ${where}`);
  } finally {
    unsubscribe("net.client.socket", track);
  }
  announce(nc, o, where);
  return nc;
}

/** A queue as found on the server: the definition (names) and the live stream and consumer. */
export interface LoadedQueue {
  queue: Queue<unknown, unknown>;
  stream: StreamInfo;
  consumer: ConsumerInfo;
}

/**
 * Builds the queue definition for `name` and reads its stream and consumer.
 * @throws {QueueNotFoundError} with the names of the queues that do exist.
 */
export async function loadQueue(nc: NatsConnection, name: string): Promise<LoadedQueue> {
  const queue = defineQueue({ name });
  const n = queue.names;
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, cliJsOptions());
  } catch (err) {
    throw mapNatsError(err, `open queue "${name}"`);
  }
  let stream: StreamInfo;
  try {
    stream = await jsm.streams.info(n.stream);
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, `open queue "${name}"`);
    const known = await listQueues(nc, { jsm, max: 20 }).catch(() => []);
    const hint = known.length > 0 ? `Queues on this server: ${known.join(", ")}.` : "This server has no jetq queues yet.";
    throw new QueueNotFoundError(`Queue "${name}" not found (no stream ${n.stream}). ${hint} Create it with: jetq provision ${name}`, { cause: err });
  }
  let consumer: ConsumerInfo;
  try {
    consumer = await jsm.consumers.info(n.stream, n.consumer);
  } catch (err) {
    if (apiCode(err) !== API.consumerNotFound) throw mapNatsError(err, `open queue "${name}"`);
    throw new QueueNotFoundError(
      `Queue "${name}" is incomplete: stream ${n.stream} exists but its consumer "${n.consumer}" does not. Run: jetq provision ${name}`,
      { cause: err },
    );
  }
  return { queue, stream, consumer };
}

/**
 * The definition of queue `name` for delayed and repeatable jobs: the queue must exist with its held stream.
 * @throws {QueueNotFoundError} the queue is missing, or was provisioned without `--scheduling`.
 */
export async function loadSchedulingQueue(nc: NatsConnection, name: string): Promise<Queue<unknown, unknown>> {
  await loadQueue(nc, name);
  const queue = defineQueue({ name, scheduling: true });
  try {
    const jsm = await jetstreamManager(nc, cliJsOptions());
    await jsm.streams.info(queue.names.heldStream);
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, `open the held stream of queue "${name}"`);
    throw new QueueNotFoundError(`Queue "${name}" does not accept delayed or repeatable jobs: provision it with scheduling first (jetq provision ${name} --scheduling, or defineQueue({ scheduling: true }) and provisionQueue()).`);
  }
  return queue;
}

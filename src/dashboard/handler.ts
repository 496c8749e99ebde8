import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { readFileSync } from "node:fs";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { NatsConnection } from "@nats-io/transport-node";
import { deadLetterJson, DeadLetterQueue, type DeadLetter } from "../dlq/dlq.ts";
import { ConfigError, ConnectionError, DeadLetterNotFoundError, JetqError, QueueNotFoundError, TimeoutError } from "../errors.ts";
import { describe, type Queue } from "../queue/define.ts";
import { prettyJson } from "./pretty.ts";
import { Sampler, type Snapshot } from "./sampler.ts";
import { HistoryRecorder, RANGES, rangePoints, readRollups } from "../history/recorder.ts";
import { pauseQueue, resumeQueue } from "../flow/pause.ts";
import { Schedules } from "../schedule/schedules.ts";
import { listJobs } from "../state/list.ts";
import { listWorkers } from "../fleet/list.ts";
import { delayedJobs, groupDeadLetters, lookupJob, MAX_SELECTION, recentJobs, removeWaitingJob } from "./jobs-view.ts";

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /**
   * Queues to show, as names or `defineQueue()` results. Actions are refused for any other queue.
   * @default every jetq queue found on the server (a stream `JETQ_<name>` with a `JETQ_<name>_DLQ` sibling), re-read every 10 s
   */
  queues?: ReadonlyArray<string | Queue<unknown, unknown>>;
  /** Hide replay and purge, and refuse them (403) when posted anyway. @default false */
  readOnly?: boolean;
  /**
   * The URL path the dashboard is served under, e.g. `"/admin/jobs"`. Needed when the handler sees
   * the full path (plain `node:http`, Fastify's `req.raw`); Express's `app.use("/admin/jobs", h)`
   * is detected from `req.originalUrl`. @default ""
   */
  basePath?: string;
  /** How often queue figures are read while a page is open. @default 2000 */
  refreshMs?: number;
  /** Points kept per queue for the throughput chart. @default 90 */
  historySize?: number;
  /** Live-update connections served at once; more get 503. @default 100 */
  maxEventStreams?: number;
  /**
   * Record per-minute roll-ups of every shown queue (rates, depth, age of the oldest waiting job,
   * utilisation) to the stream `JETQ_HISTORY` (kept 8 days), so the history charts do not need an
   * open tab. Any number of dashboards may record at once: one roll-up per queue per minute is
   * kept. `jetq dashboard` records by default. History already recorded is shown either way.
   * @default false
   */
  recordHistory?: boolean;
  /** @internal Length of a history bucket (tests use short ones). @default 60000 */
  historyBucketMs?: number;
}

/**
 * A plain `node:http` request handler serving the dashboard. Mount it on any server or
 * framework that exposes Node's request and response objects.
 */
export interface DashboardHandler {
  /** Serves one request; with `next` (Express, Connect), requests outside its mount path are passed on. */
  (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void;
  /** Stops sampling and ends open live-update streams. Idempotent. */
  close(): void;
}

const QUEUE_RE = /^[A-Za-z0-9_-]{1,64}$/;
const BASE_RE = /^(\/[A-Za-z0-9._~%!$&'()*+,;=:@-]+)*$/;
const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");
const MAX_PAYLOAD_SHOWN = 1024 * 1024;
const PREVIEW_CHARS = 160;

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

let staticFiles: Map<string, StaticFile> | undefined;

/** The shipped assets, read once: `static/` beside this module, in `src/` and in `dist/` alike. */
function assets(): Map<string, StaticFile> {
  if (!staticFiles) {
    const files = new Map<string, StaticFile>();
    for (const [name, type] of [
      ["app.js", "text/javascript; charset=utf-8"],
      ["app.css", "text/css; charset=utf-8"],
    ] as const) {
      const body = readFileSync(new URL(`./static/${name}`, import.meta.url));
      files.set(name, { body, type, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 16)}"` });
    }
    staticFiles = files;
  }
  return staticFiles;
}

function normalizeBase(base: string | undefined): string {
  if (base === undefined || base === "" || base === "/") return "";
  const b = base.endsWith("/") ? base.slice(0, -1) : base;
  if (!BASE_RE.test(b)) throw new ConfigError(`Expected \`basePath\` to be a URL path like "/admin/jobs", got ${describe(base)}`);
  return b;
}

function positiveInt(name: string, v: number, min: number, max: number): number {
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

function safeEqual(a: string | undefined, b: string): boolean {
  if (typeof a !== "string") return false;
  const x = createHash("sha256").update(a).digest();
  const y = createHash("sha256").update(b).digest();
  return timingSafeEqual(x, y);
}

/** @internal Cookie values by name from a `Cookie` header. */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!header) return out;
  for (const part of header.split(";")) {
    const i = part.indexOf("=");
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    if (!out.has(k)) out.set(k, part.slice(i + 1).trim());
  }
  return out;
}

function escapeAttr(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/"/g, "&quot;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/**
 * @internal The request target as a URL, or `undefined` when it is not one a browser sends: an
 * origin-form path (`/x?y`) or an absolute URL (`http://host/x`, from a proxy). A target starting
 * with `//` reads as another host's address (`//[` made `new URL()` throw, `//evil.example/`
 * names a host), so it is refused; other paths are appended to a fixed origin, never resolved.
 */
export function requestTarget(raw: string | undefined): URL | undefined {
  const target = raw ?? "/";
  try {
    if (target.startsWith("/") && !target.startsWith("//")) return new URL(`http://localhost${target}`);
    if (/^https?:\/\//i.test(target)) return new URL(target);
  } catch {
    // not a URL: the caller answers 400
  }
  return undefined;
}

class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

function statusOf(err: unknown): number {
  if (err instanceof HttpError) return err.status;
  if (err instanceof QueueNotFoundError || err instanceof DeadLetterNotFoundError) return 404;
  if (err instanceof ConfigError) return 400;
  if (err instanceof ConnectionError || err instanceof TimeoutError) return 503;
  return 500;
}

function decodeText(bytes: Uint8Array): string {
  return new TextDecoder("utf-8", { fatal: false }).decode(bytes);
}

/** @internal A dead letter as the browser gets it: text only, never markup. */
export function entryJson(e: DeadLetter, full: boolean): Record<string, unknown> {
  const text = decodeText(e.raw.subarray(0, full ? MAX_PAYLOAD_SHOWN : PREVIEW_CHARS * 4));
  let payload: string;
  if (!full) payload = text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS - 1)}…` : text;
  else if (e.data !== undefined && e.raw.length <= MAX_PAYLOAD_SHOWN) payload = prettyJson(text);
  else payload = text;
  return {
    ...deadLetterJson(e),
    json: e.data !== undefined,
    bytes: e.raw.length,
    truncated: full && e.raw.length > MAX_PAYLOAD_SHOWN,
    payload,
  };
}

/**
 * Creates the dashboard as a plain `node:http` handler: an overview of every queue (depth, in
 * flight, dead letters, completed/failed rates, a throughput chart) updated live over
 * server-sent events, a page per queue, and its dead letters to inspect, replay and purge.
 *
 * The handler has no authentication of its own: mount it behind your application's. Every
 * action is a POST that must carry the page's CSRF token (in a header and a `SameSite=Strict`
 * cookie); payloads are shown as text only, under a strict Content-Security-Policy.
 *
 * @example
 * ```ts
 * import { createServer } from "node:http";
 * const dashboard = createDashboard(nc, { readOnly: true });
 * createServer(dashboard).listen(3000, "127.0.0.1");
 * // Express: app.use("/jobs", requireAdmin, dashboard)
 * ```
 */
export function createDashboard(nc: NatsConnection, options: DashboardOptions = {}): DashboardHandler {
  const readOnly = options.readOnly === true;
  const basePath = normalizeBase(options.basePath);
  const refreshMs = positiveInt("refreshMs", options.refreshMs ?? 2000, 100, 3_600_000);
  const historySize = positiveInt("historySize", options.historySize ?? 90, 2, 10_000);
  const maxEventStreams = positiveInt("maxEventStreams", options.maxEventStreams ?? 100, 1, 100_000);
  if (options.queues !== undefined && !Array.isArray(options.queues)) {
    throw new ConfigError(`Expected \`queues\` to be an array of queue names or definitions, got ${describe(options.queues)}`);
  }
  const sampler = new Sampler(nc, { queues: options.queues, refreshMs, historySize, discoverEveryMs: 10_000 });
  const recorder = options.recordHistory === true
    ? new HistoryRecorder(nc, { queues: () => sampler.queues(), ...(options.historyBucketMs !== undefined ? { bucketMs: options.historyBucketMs } : {}) })
    : undefined;
  recorder?.start();
  assets(); // fail at creation, not on the first request, when the package lost its assets

  // One secret per handler: pages carry it, and a POST must echo it in a header and a cookie.
  const csrfToken = randomBytes(32).toString("base64url");
  // Cookies ignore ports: name the cookie per handler so two dashboards on one host do not clash.
  const cookieName = `jetq_csrf_${createHash("sha256").update(csrfToken).digest("hex").slice(0, 10)}`;
  const dlqs = new Map<string, DeadLetterQueue>();
  const streams = new Set<ServerResponse>();
  let closed = false;

  function mount(req: IncomingMessage): { base: string; path: string; query: URLSearchParams } | undefined {
    const url = requestTarget(req.url);
    if (!url) throw new HttpError(400, "The request target is not a valid URL path.");
    let path = url.pathname;
    let base = basePath;
    const original = (req as IncomingMessage & { originalUrl?: unknown }).originalUrl;
    if (basePath) {
      if (path === basePath || path.startsWith(`${basePath}/`)) path = path.slice(basePath.length) || "/";
      else if (typeof original !== "string") return undefined; // not ours (plain node:http)
    } else if (typeof original === "string") {
      // Express strips the mount path from req.url and keeps the full one in originalUrl.
      const full = requestTarget(original)?.pathname ?? path;
      let prefix = "";
      if (full !== path && full.endsWith(path)) prefix = full.slice(0, full.length - path.length);
      else if (path === "/" && full !== "/") prefix = full;
      prefix = prefix.endsWith("/") ? prefix.slice(0, -1) : prefix;
      if (BASE_RE.test(prefix)) base = prefix;
    }
    return { base, path, query: url.searchParams };
  }

  function headers(res: ServerResponse, type: string, extra: Record<string, string> = {}): void {
    res.setHeader("Content-Type", type);
    res.setHeader("Content-Security-Policy", CSP);
    res.setHeader("X-Content-Type-Options", "nosniff");
    res.setHeader("X-Frame-Options", "DENY");
    res.setHeader("Referrer-Policy", "no-referrer");
    res.setHeader("Cross-Origin-Opener-Policy", "same-origin");
    res.setHeader("Cross-Origin-Resource-Policy", "same-origin");
    for (const [k, v] of Object.entries(extra)) res.setHeader(k, v);
  }

  function json(res: ServerResponse, status: number, body: unknown): void {
    headers(res, "application/json; charset=utf-8", { "Cache-Control": "no-store" });
    res.statusCode = status;
    res.end(JSON.stringify(body));
  }

  function shell(req: IncomingMessage, res: ServerResponse, base: string): void {
    const secure = (req.socket as TLSSocket).encrypted === true;
    const cookie = `${cookieName}=${csrfToken}; Path=${base || "/"}; HttpOnly; SameSite=Strict${secure ? "; Secure" : ""}`;
    headers(res, "text/html; charset=utf-8", { "Cache-Control": "no-store", "Set-Cookie": cookie });
    const b = escapeAttr(base);
    res.statusCode = 200;
    res.end(
      `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="jetq-base" content="${b}">
<meta name="jetq-csrf" content="${escapeAttr(csrfToken)}">
<meta name="jetq-read-only" content="${readOnly}">
<meta name="jetq-refresh-ms" content="${refreshMs}">
<title>jetq dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="${b}/static/app.css">
<script type="module" src="${b}/static/app.js"></script>
</head>
<body>
<header class="top"><a class="brand" href="${b}/">jetq</a><nav id="crumbs"></nav><a class="nav" id="nav-workers" href="${b}/workers">Workers</a><span id="live" class="live">connecting…</span>${readOnly ? '<span class="badge">read-only</span>' : ""}</header>
<div id="notice" role="status" hidden></div>
<main id="app"><noscript>The jetq dashboard needs JavaScript.</noscript></main>
</body>
</html>
`,
    );
  }

  function serveStatic(req: IncomingMessage, res: ServerResponse, name: string): void {
    const f = assets().get(name);
    if (!f) return json(res, 404, { error: `no such file: ${name}` });
    headers(res, f.type, { "Cache-Control": "no-cache", ETag: f.etag });
    if (req.headers["if-none-match"] === f.etag) {
      res.statusCode = 304;
      res.end();
      return;
    }
    res.statusCode = 200;
    res.end(f.body);
  }

  function events(req: IncomingMessage, res: ServerResponse): void {
    if (streams.size >= maxEventStreams) {
      json(res, 503, { error: `Too many live dashboard connections (maxEventStreams is ${maxEventStreams}); close a tab or raise it.` });
      return;
    }
    headers(res, "text/event-stream; charset=utf-8", { "Cache-Control": "no-store", "X-Accel-Buffering": "no" });
    res.statusCode = 200;
    res.flushHeaders();
    res.write(`retry: ${Math.max(1000, refreshMs)}\n\n`);
    streams.add(res);
    // A slow reader gets skipped rounds, not a growing buffer: send only when the socket drained.
    let blocked = false;
    const send = (s: Snapshot): void => {
      if (blocked || res.writableEnded) return;
      if (!res.write(`data: ${JSON.stringify(s)}\n\n`)) {
        blocked = true;
        res.once("drain", () => {
          blocked = false;
        });
      }
    };
    const unsubscribe = sampler.subscribe(send);
    const done = (): void => {
      unsubscribe();
      streams.delete(res);
    };
    req.on("close", done);
    res.on("close", done);
    sampler.snapshot().then(send, () => {});
  }

  async function queueOf(name: string): Promise<Queue<unknown, unknown>> {
    const q = QUEUE_RE.test(name) ? await sampler.queue(name) : undefined;
    if (!q) throw new HttpError(404, `No queue "${name}" on this dashboard.`);
    return q;
  }

  function dlqOf(q: Queue<unknown, unknown>): DeadLetterQueue {
    let d = dlqs.get(q.name);
    if (!d) {
      d = new DeadLetterQueue(nc, q);
      dlqs.set(q.name, d);
    }
    return d;
  }

  function seqOf(s: string, what = "dead-letter sequence"): number {
    const n = Number(s);
    if (!/^[1-9][0-9]{0,15}$/.test(s) || !Number.isSafeInteger(n)) throw new HttpError(400, `Expected a ${what}, got ${describe(s)}`);
    return n;
  }

  /** The body of a selection action: `{"seqs":[1,2,3]}`, at most MAX_SELECTION sequences, at most 16 KiB. */
  async function selection(req: IncomingMessage): Promise<number[]> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > 16 * 1024) throw new HttpError(413, `Expected a selection of at most ${MAX_SELECTION} sequences (16 KiB).`);
      chunks.push(chunk as Buffer);
    }
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
    } catch {
      throw new HttpError(400, 'Expected a JSON body like {"seqs":[1,2,3]}.');
    }
    const seqs = (body as { seqs?: unknown })?.seqs;
    if (!Array.isArray(seqs) || seqs.length === 0 || seqs.length > MAX_SELECTION || !seqs.every((x) => Number.isSafeInteger(x) && (x as number) > 0)) {
      throw new HttpError(400, `Expected \`seqs\` to be 1 to ${MAX_SELECTION} dead-letter sequences (positive integers).`);
    }
    return [...new Set(seqs as number[])];
  }

  /** What the queue page shows besides the live figures: features, all-time totals, delayed jobs, schedules. */
  async function details(q: Queue<unknown, unknown>): Promise<Record<string, unknown>> {
    const snap = await sampler.snapshot();
    const one = snap.queues.find((x) => x.name === q.name);
    const [delayed, schedules] = await Promise.all([
      q.scheduling ? delayedJobs(nc, q).catch((err: unknown) => ({ error: (err as Error).message })) : null,
      q.scheduling
        ? new Schedules(nc, q).list().then(
            (list) => list.slice(0, 200).map((x) => ({
              name: x.name,
              spec: x.spec,
              nextTick: x.nextTick?.toISOString() ?? null,
              lastTick: x.lastTick?.toISOString() ?? null,
              runs: x.runs,
              updatedAt: x.updatedAt.toISOString(),
            })),
            (err: unknown) => ({ error: (err as Error).message }),
          )
        : null,
    ]);
    return {
      queue: q.name,
      keepsState: q.results !== undefined,
      scheduling: q.scheduling,
      paused: one?.stats?.paused ?? null,
      pausedUntilMs: one?.stats?.pausedUntilMs ?? null,
      totals: one?.totals ?? null,
      delayed,
      schedules,
    };
  }

  function csrfOk(req: IncomingMessage): boolean {
    const header = req.headers["x-jetq-csrf"];
    const cookie = parseCookies(req.headers.cookie).get(cookieName);
    if (!safeEqual(typeof header === "string" ? header : undefined, csrfToken) || !safeEqual(cookie, csrfToken)) return false;
    // Browsers say where a request comes from; anything but our own pages is refused.
    const site = req.headers["sec-fetch-site"];
    return site === undefined || site === "same-origin";
  }

  async function api(req: IncomingMessage, res: ServerResponse, parts: string[], query: URLSearchParams): Promise<void> {
    const method = req.method ?? "GET";
    const [a, name, c, d, e] = parts;
    if (parts.length > 5) throw new HttpError(404, "No such resource.");
    if (method === "POST") {
      if (readOnly) return json(res, 403, { error: "This dashboard is read-only." });
      if (!csrfOk(req)) return json(res, 403, { error: "Missing or invalid CSRF token: reload the page and try again." });
      if (a !== "queues" || name === undefined) throw new HttpError(404, "No such action.");
      const q = await queueOf(name);
      if (c === "pause" && d === undefined) {
        await pauseQueue(nc, q);
        return json(res, 200, { paused: true });
      }
      if (c === "resume" && d === undefined) {
        await resumeQueue(nc, q);
        return json(res, 200, { paused: false });
      }
      if (c === "schedules" && d !== undefined && e === "remove" && parts.length === 5) {
        if (!q.scheduling) throw new HttpError(404, `Queue "${q.name}" has no schedules.`);
        return json(res, 200, { removed: await new Schedules(nc, q).remove(d) });
      }
      if (c === "jobs" && d !== undefined && e === "remove" && parts.length === 5) {
        const outcome = await removeWaitingJob(nc, q, seqOf(d, "job sequence"));
        if (outcome === "delivered") throw new HttpError(409, `Job ${d} was delivered to a worker already (it may be running); only a job that is still waiting can be removed.`);
        if (outcome === "gone") throw new HttpError(404, `Job ${d} is not in the queue any more (finished, removed or dead-lettered).`);
        return json(res, 200, { removed: Number(d) });
      }
      if (c !== "dead-letters") throw new HttpError(404, "No such action.");
      const dlq = dlqOf(q);
      if (d === "replay-all" && e === undefined) return json(res, 200, await dlq.replayAll());
      if (d === "purge" && e === undefined) return json(res, 200, { purged: await dlq.purge() });
      if ((d === "replay-selected" || d === "delete-selected") && e === undefined) {
        const seqs = await selection(req);
        let done = 0;
        let alreadyGone = 0;
        for (const seq of seqs) {
          try {
            if (d === "replay-selected") await dlq.replay(seq);
            else await dlq.remove(seq);
            done++;
          } catch (err) {
            if (!(err instanceof DeadLetterNotFoundError)) throw err;
            alreadyGone++;
          }
        }
        return json(res, 200, d === "replay-selected" ? { replayed: done, alreadyGone } : { deleted: done, alreadyGone });
      }
      if (d !== undefined && e === "replay") return json(res, 200, { replayed: await dlq.replay(seqOf(d)) });
      if (d !== undefined && e === "delete") {
        const seq = seqOf(d);
        await dlq.remove(seq);
        return json(res, 200, { deleted: seq });
      }
      throw new HttpError(404, "No such action.");
    }
    if (method !== "GET" && method !== "HEAD") {
      res.setHeader("Allow", "GET, POST");
      throw new HttpError(405, `Method ${method} not allowed.`);
    }
    if (a === "events" && name === undefined) return events(req, res);
    if (a === "overview" && name === undefined) return json(res, 200, await sampler.snapshot());
    if (a === "workers" && name === undefined) {
      const only = query.get("queue");
      if (only !== null) await queueOf(only);
      const shown = new Set([...(await sampler.queues())].map((x) => x.name));
      const list = await listWorkers(nc, { limit: 500, ...(only !== null ? { queue: only } : {}) });
      // Only the dashboard's queues: a dashboard given some queues does not show the others' workers.
      const workers = list.workers.filter((w) => shown.has(w.queue));
      return json(res, 200, { workers, total: list.total, shown: workers.length });
    }
    if (a !== "queues" || name === undefined) throw new HttpError(404, "No such resource.");
    const q = await queueOf(name);
    if (c === undefined) {
      const snap = await sampler.snapshot();
      const one = snap.queues.find((x) => x.name === q.name);
      if (!one) throw new HttpError(404, `No queue "${name}" on this dashboard.`);
      return json(res, 200, one);
    }
    if (c === "details" && d === undefined) return json(res, 200, await details(q));
    if (c === "history" && d === undefined) {
      const range = query.get("range") ?? "1h";
      const span = RANGES[range];
      if (span === undefined) throw new HttpError(400, `Expected \`range\` to be one of ${Object.keys(RANGES).join(", ")}, got ${describe(range)}`);
      const rollups = await readRollups(nc, q.name, Date.now() - span);
      const last = rollups.at(-1);
      return json(res, 200, {
        queue: q.name,
        range,
        from: Date.now() - span,
        to: Date.now(),
        bucketMs: last?.bms ?? options.historyBucketMs ?? 60_000,
        recording: recorder !== undefined,
        points: rangePoints(rollups),
      });
    }
    if (c === "recent" && d === undefined) {
      if (!q.results) return json(res, 200, { queue: q.name, keepsState: false, completed: [], failed: [] });
      return json(res, 200, { queue: q.name, keepsState: true, ...(await recentJobs(nc, q)) });
    }
    if (c === "jobs" && d === undefined) {
      const state = query.get("state") ?? "waiting";
      if (state !== "waiting" && state !== "active" && state !== "delayed") throw new HttpError(400, `Expected \`state\` to be waiting, active or delayed, got ${describe(state)}`);
      if (state === "delayed" && !q.scheduling) return json(res, 200, { state, jobs: [], total: 0, scheduling: false });
      const after = query.has("after") ? Number(query.get("after")) : 0;
      if (!Number.isSafeInteger(after) || after < 0) throw new HttpError(400, "Expected `after` to be a sequence (an integer >= 0).");
      const page = await listJobs(nc, q, { state, limit: 50, after });
      return json(res, 200, { ...page, scheduling: q.scheduling });
    }
    if (c === "jobs" && d !== undefined && e === undefined) {
      if (d.length > 512) throw new HttpError(400, "Expected a job id of at most 512 characters.");
      const job = await lookupJob(nc, q, d);
      if (!job) {
        const hint = q.results
          ? "its state expired (results.keepMs), or there is no such job"
          : "this queue keeps no job state (define it with `results`), so only jobs still in the queue (by sequence or seq-<n> id) and dead letters can be found";
        throw new HttpError(404, `No job ${JSON.stringify(d)} found in queue "${q.name}": ${hint}.`);
      }
      return json(res, 200, job);
    }
    if (c !== "dead-letters") throw new HttpError(404, "No such resource.");
    const dlq = dlqOf(q);
    if (d === "groups" && e === undefined) return json(res, 200, { queue: q.name, ...(await groupDeadLetters(nc, q)) });
    if (d === undefined) {
      const limit = query.has("limit") ? Number(query.get("limit")) : 50;
      const from = query.has("from") ? seqOf(query.get("from") ?? "") : 1;
      if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new HttpError(400, "Expected `limit` to be an integer from 1 to 500.");
      const [count, list] = await Promise.all([dlq.count(), dlq.list({ limit, fromSeq: from })]);
      const last = list.at(-1);
      return json(res, 200, {
        queue: q.name,
        count,
        entries: list.map((x) => entryJson(x, false)),
        next: list.length === limit && last ? last.seq + 1 : null,
      });
    }
    if (e !== undefined) throw new HttpError(404, "No such resource.");
    const entry = await dlq.get(seqOf(d));
    return json(res, 200, { queue: q.name, entry: entryJson(entry, true) });
  }

  async function handle(req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): Promise<void> {
    const m = mount(req);
    if (!m) {
      if (next) return next();
      return json(res, 404, { error: "Not found." });
    }
    if (closed) return json(res, 503, { error: "The dashboard is closed." });
    sampler.touch();
    const parts = m.path.split("/").filter(Boolean).map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        // A page served for it would fail in the browser's router and stay blank: say why here.
        throw new HttpError(400, `The URL has a malformed %-escape in "${p.slice(0, 100)}"; check the link.`);
      }
    });
    if (parts[0] === "api") return api(req, res, parts.slice(1), m.query);
    if (req.method !== "GET" && req.method !== "HEAD") throw new HttpError(405, `Method ${req.method} not allowed.`);
    if (parts[0] === "static" && parts.length === 2) return serveStatic(req, res, parts[1]!);
    // Pages: the same shell renders each of them from the API.
    const [p0, , p2, p3, p4] = parts;
    const page =
      parts.length === 0 ||
      (p0 === "workers" && parts.length === 1) ||
      (p0 === "queues" && p2 === "jobs" && parts.length === 3) ||
      (p0 === "queues" && parts.length === 2) ||
      (p0 === "queues" && p2 === "jobs" && parts.length === 4) ||
      (p0 === "queues" && p2 === "dead-letters" && (parts.length === 3 || (parts.length === 4 && p3 !== undefined && p4 === undefined)));
    if (!page) throw new HttpError(404, "Not found.");
    return shell(req, res, m.base);
  }

  const handler = ((req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void): void => {
    handle(req, res, next).catch((err: unknown) => {
      const status = statusOf(err);
      const message = err instanceof Error ? err.message : String(err);
      if (res.headersSent) {
        res.destroy();
        return;
      }
      json(res, status, { error: status === 500 && !(err instanceof JetqError) ? `Internal error: ${message}` : message });
    });
  }) as DashboardHandler;
  handler.close = (): void => {
    if (closed) return;
    closed = true;
    sampler.close();
    recorder?.close();
    for (const s of streams) s.end();
    streams.clear();
  };
  return handler;
}

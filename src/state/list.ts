import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { jobIdOf } from "../dlq/route.ts";
import { describe, type Queue } from "../queue/define.ts";
import { HDR } from "../queue/headers.ts";
import { heldJobId } from "../schedule/held.ts";
import { dueOf } from "../schedule/mover.ts";
import { jsOptions } from "../transport/api.ts";
import { listWorkers } from "../fleet/list.ts";

/** Which jobs {@link listJobs} lists. */
export type ListedJobState = "waiting" | "active" | "delayed";

/** Options of {@link listJobs} and {@link Jobs.list}. */
export interface ListJobsOptions {
  /**
   * `waiting`: stored in the queue and not running (never started, retrying after a failure, or
   * handed back); `active`: running in a live worker (from the workers' announcements);
   * `delayed`: held until due (a queue with `scheduling`). @default "waiting"
   */
  state?: ListedJobState;
  /** Jobs on one page, 1 to 1000. @default 50 */
  limit?: number;
  /** Only jobs with a sequence above this one: the `next` of the previous page. @default 0 (from the start) */
  after?: number;
}

/** One job on a {@link JobPage}. */
export interface ListedJob {
  /** The job id (the producer's `id`, or `seq-<n>`; a delayed job published without one: `delayed-<n>`). */
  id: string;
  /** Its sequence: in the queue's stream (`waiting`, `active`) or in the held stream (`delayed`). */
  seq: number;
  /** The state it was listed in. */
  state: ListedJobState;
  /** When the server stored it (a delayed job: when it was published, into the held stream). */
  publishedAt: Date;
  /** Milliseconds since `publishedAt`, at the time of listing. */
  ageMs: number;
  /** The start of its payload as text, at most 200 characters. */
  preview?: string;
  /** Size of its payload in bytes. */
  size?: number;
  /** When it is due (`delayed`). */
  dueAt?: Date;
  /** The attempt running (`active`). */
  attempt?: number;
  /** Since when the attempt runs (`active`). */
  since?: Date;
  /** The worker running it: `host:pid:random` (`active`). */
  worker?: string;
}

/** A page of jobs. Pass `next` as `after` for the following page. */
export interface JobPage {
  /** The state listed. */
  state: ListedJobState;
  /** At most `limit` jobs, by ascending sequence. */
  jobs: ListedJob[];
  /** Jobs in that state now, counting those on other pages (`active`: as the workers last announced). */
  total: number;
  /** The `after` of the next page; absent on the last page. */
  next?: number;
}

/** Characters of payload shown in a preview. */
export const PREVIEW_CHARS = 200;
/** Workers read at most for the active jobs of a queue (listWorkers' own bound). */
const MAX_WORKERS_READ = 1000;

/**
 * Lists a queue's waiting, active or delayed jobs, one bounded page at a time, by sequence. Reads
 * each waiting or delayed job by sequence from the server (no consumer, no scan beyond the page);
 * active jobs come from the workers' announcements (see {@link listWorkers}), so they are as
 * fresh as those (every 5 s by default) and missing for workers started with `announce: false`.
 *
 * @example
 * ```ts
 * let page = await listJobs(nc, emails, { state: "waiting", limit: 20 });
 * while (page.next !== undefined) page = await listJobs(nc, emails, { after: page.next });
 * ```
 * @throws {@link ConfigError} a bad option.
 * @throws {@link QueueNotFoundError} the queue was not provisioned.
 * @throws {@link ConnectionError} / {@link TimeoutError} the server could not be asked.
 */
export async function listJobs(nc: NatsConnection, queue: Queue<unknown, unknown>, options: ListJobsOptions = {}): Promise<JobPage> {
  const state = options.state ?? "waiting";
  if (state !== "waiting" && state !== "active" && state !== "delayed") {
    throw new ConfigError(`Expected \`state\` to be "waiting", "active" or "delayed", got ${describe(state)}`);
  }
  const limit = options.limit ?? 50;
  if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new ConfigError(`Expected \`limit\` to be an integer from 1 to 1000, got ${describe(limit)}`);
  }
  const after = options.after ?? 0;
  if (typeof after !== "number" || !Number.isInteger(after) || after < 0) {
    throw new ConfigError(`Expected \`after\` to be a sequence (an integer >= 0), got ${describe(after)}`);
  }
  const what = `list the ${state} jobs of queue "${queue.name}"`;
  try {
    if (state === "active") return await active(nc, queue, limit, after);
    const jsm = await jetstreamManager(nc, jsOptions(queue));
    return state === "waiting" ? await waiting(nc, jsm, queue, limit, after) : await delayed(jsm, queue, limit, after);
  } catch (err) {
    throw mapNatsError(err, what);
  }
}

/** The running jobs of the queue's live workers, by sequence. */
async function runningJobs(nc: NatsConnection, queue: Queue<unknown, unknown>): Promise<{ jobs: ListedJob[]; total: number }> {
  const { workers } = await listWorkers(nc, { queue, limit: MAX_WORKERS_READ });
  const now = Date.now();
  const jobs: ListedJob[] = [];
  let total = 0;
  for (const w of workers) {
    total += w.inFlight;
    for (const j of w.jobs) {
      jobs.push({ id: j.id, seq: j.seq, state: "active", publishedAt: j.since, ageMs: now - j.since.getTime(), attempt: j.attempt, since: j.since, worker: w.id });
    }
  }
  jobs.sort((a, b) => a.seq - b.seq);
  return { jobs, total };
}

async function active(nc: NatsConnection, queue: Queue<unknown, unknown>, limit: number, after: number): Promise<JobPage> {
  const { jobs, total } = await runningJobs(nc, queue);
  const rest = jobs.filter((j) => j.seq > after);
  const listed = rest.slice(0, limit);
  // Each listed job as stored (when it was published, its payload): one direct get each, at most
  // `limit`. A job no longer stored has finished since its worker's announcement: left out.
  const jsm = await jetstreamManager(nc, jsOptions(queue));
  const now = Date.now();
  const page: ListedJob[] = [];
  for (const j of listed) {
    const m = await jsm.direct.getMessage(queue.names.stream, { seq: j.seq });
    if (!m) continue;
    page.push({ ...j, publishedAt: m.time, ageMs: now - m.time.getTime(), preview: preview(m), size: m.data.length });
  }
  // (A job taken by another worker after its first died can be in two announcements for a moment.)
  const out: JobPage = { state: "active", jobs: page, total };
  if (rest.length > limit) out.next = listed[listed.length - 1]!.seq;
  return out;
}

function preview(m: StoredMsg): string {
  const text = Buffer.from(m.data.subarray(0, PREVIEW_CHARS * 4)).toString("utf8");
  return text.length > PREVIEW_CHARS ? `${text.slice(0, PREVIEW_CHARS - 1)}…` : text;
}

/**
 * Reads jobs of `subject` in `stream` from sequence `from` on, one direct get each (the server
 * finds the next one stored), until `want` are kept or the stream ends; `skip` leaves some out.
 * At most `want + skipCount` reads.
 */
async function readFrom(
  jsm: JetStreamManager,
  stream: string,
  subject: string,
  from: number,
  want: number,
  skip: ReadonlySet<number>,
): Promise<{ msgs: StoredMsg[]; more: boolean }> {
  const msgs: StoredMsg[] = [];
  let seq = from;
  let reads = 0;
  const maxReads = want + skip.size + 1;
  while (reads < maxReads) {
    reads++;
    const m = await jsm.direct.getMessage(stream, { seq, next_by_subj: subject });
    if (!m) return { msgs, more: false };
    seq = m.seq + 1;
    if (skip.has(m.seq)) continue;
    if (msgs.length === want) return { msgs, more: true };
    msgs.push(m);
  }
  return { msgs, more: true };
}

async function waiting(nc: NatsConnection, jsm: JetStreamManager, queue: Queue<unknown, unknown>, limit: number, after: number): Promise<JobPage> {
  const n = queue.names;
  const si = await jsm.streams.info(n.stream);
  const running = await runningJobs(nc, queue);
  const activeSeqs = new Set(running.jobs.map((j) => j.seq));
  const from = Math.max(after + 1, si.state.first_seq);
  const { msgs, more } = await readFrom(jsm, n.stream, n.subject, from, limit, activeSeqs);
  const now = Date.now();
  const jobs = msgs.map((m): ListedJob => ({
    id: jobIdOf(m.header, m.seq),
    seq: m.seq,
    state: "waiting",
    publishedAt: m.time,
    ageMs: now - m.time.getTime(),
    preview: preview(m),
    size: m.data.length,
  }));
  const page: JobPage = { state: "waiting", jobs, total: Math.max(jobs.length, si.state.messages - running.total) };
  if (more && jobs.length > 0) page.next = jobs[jobs.length - 1]!.seq;
  return page;
}

async function delayed(jsm: JetStreamManager, queue: Queue<unknown, unknown>, limit: number, after: number): Promise<JobPage> {
  const n = queue.names;
  let si;
  try {
    si = await jsm.streams.info(n.heldStream);
  } catch (err) {
    // A queue without scheduling has no held stream, and so no delayed jobs.
    if (apiCode(err) === API.streamNotFound) return { state: "delayed", jobs: [], total: 0 };
    throw err;
  }
  const from = Math.max(after + 1, si.state.first_seq);
  const { msgs, more } = await readFrom(jsm, n.heldStream, n.heldSubject, from, limit, new Set());
  const now = Date.now();
  const jobs = msgs.map((m): ListedJob => ({
    id: m.header?.get(HDR.id) || m.header?.get(HDR.msgId) || heldJobId(m.seq),
    seq: m.seq,
    state: "delayed",
    publishedAt: m.time,
    ageMs: now - m.time.getTime(),
    preview: preview(m),
    size: m.data.length,
    dueAt: new Date(dueOf(m.header, m.time.getTime())),
  }));
  const page: JobPage = { state: "delayed", jobs, total: Math.max(jobs.length, si.state.messages) };
  if (more && jobs.length > 0) page.next = jobs[jobs.length - 1]!.seq;
  return page;
}

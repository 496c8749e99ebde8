// Reads behind the dashboard's job pages: one job by id or sequence, the recent finished jobs of a
// queue that keeps results, delayed jobs, and dead letters grouped by error. Every read is bounded.
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { type DeadLetter, DeadLetterQueue } from "../dlq/dlq.ts";
import { jobIdOf } from "../dlq/route.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HELD } from "../schedule/held.ts";
import { Jobs } from "../state/jobs.ts";
import { parseRecord, type StateRecord } from "../state/record.ts";
import { parseRecord as parseLedgerRecord } from "../consumer/ledger.ts";
import { jsOptions } from "../transport/api.ts";

/** Characters of a result, progress value or payload shown on a job page. */
const SHOWN_CHARS = 64 * 1024;
/** Characters of a result preview in a list. */
const PREVIEW_CHARS = 120;
/** Dead letters read at most to find one job's dead letter, or to group them. */
export const DLQ_SCAN = 2_000;
/** State records read at most (newest first) for the recent-jobs list. */
const RECENT_SCAN = 400;
/** Recent jobs shown at most. */
export const RECENT_MAX = 25;
/** Held (delayed) jobs read at most to find the next due. */
const HELD_SCAN = 200;
/** Sequences per selection action, and per group shown. */
export const MAX_SELECTION = 500;
/** Groups shown at most. */
const MAX_GROUPS = 100;

function manager(nc: NatsConnection, q: Queue<unknown, unknown>): Promise<JetStreamManager> {
  return jetstreamManager(nc, jsOptions(q));
}

function text(v: unknown, max: number): string | null {
  if (v === undefined) return null;
  let s: string;
  try {
    s = JSON.stringify(v, null, 2) ?? String(v);
  } catch {
    s = String(v);
  }
  return s.length > max ? `${s.slice(0, max - 1)}…` : s;
}

const iso = (d: Date | undefined): string | null => (d ? d.toISOString() : null);

/** A job as the job page shows it. */
export interface JobView {
  queue: string;
  id: string;
  seq: number | null;
  state: string;
  attempt: number | null;
  publishedAt: string | null;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  retryAt: string | null;
  progress: string | null;
  result: string | null;
  error: { name: string; message: string; stack?: string } | null;
  deadLetter: { reason: string; seq: number | null } | null;
  payload: string | null;
  /** Where the answer came from. */
  source: "state" | "queue" | "dead-letters";
  /** Whether the job can be removed from the queue now (stored, never delivered). */
  removable: boolean;
  /** Whether the queue keeps job state (results). */
  keepsState: boolean;
  /** The attempt ledger's record of a job still in the queue: failures so far, crashes, the last error. */
  ledger: { failures: number; crashes: number; worker: string | null; error: string | null } | null;
}

/** The ledger record of the job at `seq` (kept while the job is in the queue), or null. */
async function ledgerOf(jsm: JetStreamManager, q: Queue<unknown, unknown>, seq: number): Promise<JobView["ledger"]> {
  try {
    const si = await jsm.streams.info(q.names.stream);
    const incarnation = Date.parse(si.created) || 0;
    const m = await jsm.direct.getMessage(q.names.ledgerStream, { last_by_subj: `${q.names.ledgerSubject}.${incarnation.toString(36)}.${seq}` });
    const rec = m ? parseLedgerRecord(m.json()) : undefined;
    if (!rec) return null;
    return { failures: rec.failures, crashes: rec.crashes, worker: rec.worker ?? null, error: rec.error ?? null };
  } catch {
    // No ledger record (never failed) or not readable: the rest of the page still stands.
    return null;
  }
}

async function firstDelivered(jsm: JetStreamManager, q: Queue<unknown, unknown>): Promise<number> {
  const ci = await jsm.consumers.info(q.names.stream, q.names.consumer);
  return ci.delivered.stream_seq;
}

async function storedJob(jsm: JetStreamManager, q: Queue<unknown, unknown>, seq: number): Promise<StoredMsg | null> {
  try {
    return await jsm.streams.getMessage(q.names.stream, { seq });
  } catch (err) {
    if (apiCode(err) === API.noMessageFound || /no message found|not found/i.test(String(err))) return null;
    throw mapNatsError(err, `read job ${seq} of queue "${q.name}"`);
  }
}

/** The dead letter of job `id` (or of queue sequence `sourceSeq`), among the first {@link DLQ_SCAN}. */
async function findDeadLetter(nc: NatsConnection, q: Queue<unknown, unknown>, id: string | undefined, sourceSeq: number | undefined): Promise<DeadLetter | undefined> {
  const dlq = new DeadLetterQueue(nc, q);
  let from = 1;
  let read = 0;
  while (read < DLQ_SCAN) {
    const page = await dlq.list({ limit: 250, fromSeq: from });
    for (const e of page) if ((id !== undefined && e.id === id) || (sourceSeq !== undefined && e.sourceSeq === sourceSeq)) return e;
    read += page.length;
    if (page.length < 250) break;
    from = page.at(-1)!.seq + 1;
  }
  return undefined;
}

function fromDeadLetter(q: Queue<unknown, unknown>, e: DeadLetter, keepsState: boolean): JobView {
  const payload = new TextDecoder().decode(e.raw.subarray(0, SHOWN_CHARS));
  return {
    queue: q.name,
    id: e.id,
    seq: e.sourceSeq || null,
    state: "dead",
    attempt: e.attempts,
    publishedAt: iso(e.publishedAt),
    startedAt: null,
    finishedAt: e.failedAt.toISOString(),
    durationMs: null,
    retryAt: null,
    progress: null,
    result: null,
    error: e.error,
    deadLetter: { reason: e.reason, seq: e.seq },
    payload,
    source: "dead-letters",
    removable: false,
    keepsState,
    ledger: null,
  };
}

/**
 * Looks a job up by id, or by its sequence in the queue's stream (digits): its state record
 * when the queue keeps results, else the job stored in the queue, else its dead letter.
 */
export async function lookupJob(nc: NatsConnection, q: Queue<unknown, unknown>, query: string): Promise<JobView | undefined> {
  const jsm = await manager(nc, q);
  const keepsState = q.results !== undefined;
  const bySeq = /^[1-9][0-9]{0,15}$/.test(query) ? Number(query) : undefined;
  let stored: StoredMsg | null = null;
  let id = query;
  if (bySeq !== undefined) {
    stored = await storedJob(jsm, q, bySeq);
    id = stored ? jobIdOf(stored.header, stored.seq) : `seq-${bySeq}`;
  } else {
    const m = /^seq-([1-9][0-9]{0,15})$/.exec(query);
    if (m) stored = await storedJob(jsm, q, Number(m[1]));
  }
  if (keepsState) {
    const info = await new Jobs(nc, q).get(id);
    if (info) {
      let deadLetter: JobView["deadLetter"] = null;
      let stack: string | undefined;
      if (info.state === "dead") {
        const e = await findDeadLetter(nc, q, info.id, info.seq).catch(() => undefined);
        deadLetter = { reason: info.deadLetter?.reason ?? e?.reason ?? "unknown", seq: e?.seq ?? null };
        stack = e?.error.stack;
      }
      const job = stored ?? (info.state === "waiting" || info.state === "retrying" || info.state === "active" ? await storedJob(jsm, q, info.seq) : null);
      const delivered = job ? await firstDelivered(jsm, q) : Number.POSITIVE_INFINITY;
      const finished = info.finishedAt?.getTime();
      const started = info.startedAt?.getTime();
      return {
        queue: q.name,
        id: info.id,
        seq: info.seq || null,
        state: info.state,
        attempt: info.attempt,
        publishedAt: iso(info.publishedAt),
        startedAt: iso(info.startedAt),
        finishedAt: iso(info.finishedAt),
        durationMs: finished !== undefined && started !== undefined ? finished - started : null,
        retryAt: iso(info.retryAt),
        progress: text(info.progress, SHOWN_CHARS),
        result: text(info.result, SHOWN_CHARS),
        error: info.error ? (stack ? { ...info.error, stack } : info.error) : null,
        deadLetter,
        payload: job ? new TextDecoder().decode(job.data.subarray(0, SHOWN_CHARS)) : null,
        source: "state",
        removable: job !== null && job.seq > delivered,
        keepsState,
        ledger: job ? await ledgerOf(jsm, q, job.seq) : null,
      };
    }
  }
  if (stored) {
    const delivered = await firstDelivered(jsm, q);
    return {
      queue: q.name,
      id: jobIdOf(stored.header, stored.seq),
      seq: stored.seq,
      // Stored in a work queue: not finished. Delivered already means running or waiting out a retry.
      state: stored.seq > delivered ? "waiting" : "delivered",
      attempt: null,
      publishedAt: stored.time.toISOString(),
      startedAt: null,
      finishedAt: null,
      durationMs: null,
      retryAt: null,
      progress: null,
      result: null,
      error: null,
      deadLetter: null,
      payload: new TextDecoder().decode(stored.data.subarray(0, SHOWN_CHARS)),
      source: "queue",
      removable: stored.seq > delivered,
      keepsState,
      ledger: await ledgerOf(jsm, q, stored.seq),
    };
  }
  const e = await findDeadLetter(nc, q, bySeq === undefined ? query : undefined, bySeq);
  return e ? fromDeadLetter(q, e, keepsState) : undefined;
}

/**
 * Removes a job that is stored and was never delivered (so no worker runs it).
 * @returns false when it is gone already or was delivered meanwhile.
 */
export async function removeWaitingJob(nc: NatsConnection, q: Queue<unknown, unknown>, seq: number): Promise<"removed" | "gone" | "delivered"> {
  const jsm = await manager(nc, q);
  if (!(await storedJob(jsm, q, seq))) return "gone";
  if (seq <= (await firstDelivered(jsm, q))) return "delivered";
  try {
    return (await jsm.streams.deleteMessage(q.names.stream, seq, false)) ? "removed" : "gone";
  } catch (err) {
    if (/no message found|not found|store EOF/i.test(String(err))) return "gone";
    throw mapNatsError(err, `remove job ${seq} of queue "${q.name}"`);
  }
}

/** One row of the recent-jobs list. */
export interface RecentJob {
  id: string;
  state: string;
  attempt: number;
  finishedAt: string | null;
  durationMs: number | null;
  preview: string | null;
  error: string | null;
}

/** The latest finished (completed, dead, retrying) jobs of a queue that keeps results, newest first. */
export async function recentJobs(nc: NatsConnection, q: Queue<unknown, unknown>): Promise<{ completed: RecentJob[]; failed: RecentJob[]; scanned: number }> {
  const jsm = await manager(nc, q);
  const n = q.names;
  let last: number;
  try {
    last = (await jsm.streams.info(n.stateStream)).state.last_seq;
  } catch (err) {
    throw mapNatsError(err, `read the job state of queue "${q.name}"`);
  }
  const records: StateRecord[] = [];
  let seq = Math.max(1, last - RECENT_SCAN + 1);
  let scanned = 0;
  while (seq <= last && scanned < RECENT_SCAN) {
    let m: StoredMsg | null;
    try {
      m = await jsm.direct.getMessage(n.stateStream, { seq, next_by_subj: `${n.stateSubject}.>` });
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) break;
      throw mapNatsError(err, `read the job state of queue "${q.name}"`);
    }
    if (!m) break;
    scanned++;
    seq = m.seq + 1;
    let rec: StateRecord | undefined;
    try {
      rec = parseRecord(m.json());
    } catch {
      rec = undefined;
    }
    if (rec && (rec.state === "completed" || rec.state === "dead" || rec.state === "retrying")) records.push(rec);
  }
  const row = (r: StateRecord): RecentJob => ({
    id: r.id,
    state: r.state,
    attempt: typeof r.attempt === "number" ? r.attempt : 1,
    finishedAt: typeof r.finishedAt === "number" ? new Date(r.finishedAt).toISOString() : null,
    durationMs: typeof r.finishedAt === "number" && typeof r.startedAt === "number" ? r.finishedAt - r.startedAt : null,
    preview: r.state === "completed" ? text(r.result, PREVIEW_CHARS)?.replace(/\s+/g, " ") ?? null : null,
    error: r.error ? `${r.error.name}: ${r.error.message}`.slice(0, 300) : null,
  });
  const newest = records.reverse();
  return {
    completed: newest.filter((r) => r.state === "completed").slice(0, RECENT_MAX).map(row),
    failed: newest.filter((r) => r.state !== "completed").slice(0, RECENT_MAX).map(row),
    scanned,
  };
}

/** Delayed jobs: how many are held, and the earliest due time among the oldest {@link HELD_SCAN}. */
export async function delayedJobs(nc: NatsConnection, q: Queue<unknown, unknown>): Promise<{ count: number; nextDue: string | null; scanned: number }> {
  const jsm = await manager(nc, q);
  const n = q.names;
  let count: number;
  let first: number;
  try {
    const si = await jsm.streams.info(n.heldStream);
    count = si.state.messages;
    first = si.state.first_seq;
  } catch (err) {
    throw mapNatsError(err, `read the delayed jobs of queue "${q.name}"`);
  }
  let next: number | undefined;
  let seq = first;
  let scanned = 0;
  while (scanned < Math.min(count, HELD_SCAN)) {
    let m: StoredMsg | null;
    try {
      m = await jsm.direct.getMessage(n.heldStream, { seq, next_by_subj: n.heldSubject });
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) break;
      throw mapNatsError(err, `read the delayed jobs of queue "${q.name}"`);
    }
    if (!m) break;
    scanned++;
    seq = m.seq + 1;
    const due = Number(m.header?.get(HELD.due));
    const delay = Number(m.header?.get(HELD.delay));
    const at = m.header?.get(HELD.due) ? due : m.header?.get(HELD.delay) ? m.time.getTime() + delay : Number.NaN;
    if (Number.isFinite(at) && (next === undefined || at < next)) next = at;
  }
  return { count, nextDue: next === undefined ? null : new Date(next).toISOString(), scanned };
}

/**
 * @internal An error message with its variable parts (numbers, ids, quoted text, hex, UUIDs,
 * emails, URLs) replaced, so errors that differ only in them fall into one group.
 */
export function normalizeError(message: string): string {
  return message
    .replace(/https?:\/\/\S+/g, "<url>")
    .replace(/[\w.+-]+@[\w-]+\.[\w.-]+/g, "<email>")
    .replace(/\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b/gi, "<uuid>")
    .replace(/"[^"]*"|'[^']*'|`[^`]*`/g, "<text>")
    .replace(/\b0x[0-9a-f]+\b/gi, "<hex>")
    .replace(/\b[0-9a-f]{12,}\b/gi, "<hex>")
    .replace(/\d+(\.\d+)?/g, "<n>")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 300);
}

/** Dead letters sharing a reason, an error name and a normalised message. */
export interface DeadLetterGroup {
  key: string;
  reason: string;
  name: string;
  /** The normalised message. */
  message: string;
  /** One message as it was. */
  example: string;
  count: number;
  firstFailedAt: string;
  lastFailedAt: string;
  /** The group's sequences, oldest first, at most {@link MAX_SELECTION}. */
  seqs: number[];
}

/** Groups the first {@link DLQ_SCAN} dead letters by error; biggest groups first. */
export async function groupDeadLetters(nc: NatsConnection, q: Queue<unknown, unknown>): Promise<{ groups: DeadLetterGroup[]; scanned: number; total: number }> {
  const dlq = new DeadLetterQueue(nc, q);
  const total = await dlq.count();
  const groups = new Map<string, DeadLetterGroup>();
  let from = 1;
  let scanned = 0;
  while (scanned < DLQ_SCAN) {
    const page = await dlq.list({ limit: 250, fromSeq: from });
    for (const e of page) {
      const message = normalizeError(e.error.message);
      const key = `${e.reason}\u0000${e.error.name}\u0000${message}`;
      let g = groups.get(key);
      if (!g) {
        if (groups.size >= 10 * MAX_GROUPS) continue;
        g = { key, reason: e.reason, name: e.error.name, message, example: e.error.message.slice(0, 500), count: 0, firstFailedAt: e.failedAt.toISOString(), lastFailedAt: e.failedAt.toISOString(), seqs: [] };
        groups.set(key, g);
      }
      g.count++;
      const at = e.failedAt.toISOString();
      if (at < g.firstFailedAt) g.firstFailedAt = at;
      if (at > g.lastFailedAt) g.lastFailedAt = at;
      if (g.seqs.length < MAX_SELECTION) g.seqs.push(e.seq);
    }
    scanned += page.length;
    if (page.length < 250) break;
    from = page.at(-1)!.seq + 1;
  }
  return { groups: [...groups.values()].sort((a, b) => b.count - a.count).slice(0, MAX_GROUPS), scanned, total };
}

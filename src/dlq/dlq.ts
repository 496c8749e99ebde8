import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type MsgRequest, type StoredMsg } from "@nats-io/jetstream";
import { ConfigError, DeadLetterNotFoundError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { jsOptions } from "../transport/api.ts";
import { describe, type Queue } from "../queue/define.ts";
import { DLQ_HEADERS, HDR } from "../queue/headers.ts";
import { decodeStack, type DeadLetterReason } from "./route.ts";
import { levelOfHeader, levelSubject, PRIORITY_HEADER } from "../flow/priority.ts";

/** One dead letter, as listed by {@link DeadLetterQueue}. */
export interface DeadLetter<T = unknown> {
  /** Sequence in the dead-letter stream: the handle for `get`, `replay` and `remove`. */
  seq: number;
  /** The job id. */
  id: string;
  /** The payload decoded as JSON, or `undefined` when it is not JSON (see `raw`). */
  data: T | undefined;
  /** The payload bytes exactly as published. */
  raw: Uint8Array;
  /** Headers of the original job (jetq's own bookkeeping headers excluded). */
  headers: Record<string, string>;
  /** Why the job was dead-lettered. */
  reason: DeadLetterReason | string;
  /** The last error: its name and message, and its stack when the worker had one (at most 4,000 characters). */
  error: { name: string; message: string; stack?: string };
  /** The attempt it was on: handler failures + 1 (crashes and hand-backs do not count). */
  attempts: number;
  /** Crashes counted while it ran alone (reason `crashed`); 0 otherwise. */
  crashes: number;
  /** The worker that dead-lettered it, or for reason `crashed` the last one it ran alone on (`host:pid:id`). */
  worker: string | undefined;
  /** When it was dead-lettered. */
  failedAt: Date;
  /** When it was first published, when known. */
  publishedAt: Date | undefined;
  /** Sequence of the job in the queue's stream. */
  sourceSeq: number;
  /**
   * Set when the payload had to be cut to fit the server's `max_payload` next to the dead
   * letter's headers (a job within a few dozen bytes of the limit): its original size in bytes.
   */
  truncatedFrom?: number;
}

/** Options of {@link DeadLetterQueue.list}: paging, plus the same filter as `replayAll` and `purge`. */
export interface ListOptions extends DeadLetterFilter {
  /** Most entries returned. @default 50 */
  limit?: number;
  /** First dead-letter sequence to look at (for paging: the last `seq` seen + 1). @default the oldest */
  fromSeq?: number;
}

/**
 * @internal The fields of a dead letter every JSON view shares (CLI `--json`, dashboard API):
 * dates as ISO strings, a missing publish time as `null`. Each view adds its payload form.
 */
export function deadLetterJson(e: DeadLetter): Record<string, unknown> {
  return {
    seq: e.seq,
    id: e.id,
    reason: e.reason,
    error: e.error,
    attempts: e.attempts,
    crashes: e.crashes,
    worker: e.worker ?? null,
    failedAt: e.failedAt.toISOString(),
    publishedAt: e.publishedAt?.toISOString() ?? null,
    sourceSeq: e.sourceSeq,
    headers: e.headers,
    // A cut payload must not look complete: its original size, or null when it was not cut.
    truncatedFrom: e.truncatedFrom ?? null,
  };
}

/** What {@link DeadLetterQueue.replayAll} did. */
export interface ReplayAllResult {
  /** Jobs this call put back on the queue (their dead letters are removed). */
  replayed: number;
  /**
   * Matching dead letters another caller took first (a concurrent `replayAll`, `replay`,
   * `remove` or `purge`), or whose job an earlier replay had already put back: not a failure,
   * nothing was lost.
   */
  alreadyGone: number;
}

/** Selects dead letters for `replayAll` and `purge`. */
export interface DeadLetterFilter {
  /** Only entries whose error message or name contains this text (case-insensitive). */
  errorIncludes?: string;
  /** Only entries dead-lettered at least this long ago. */
  olderThanMs?: number;
  /** Only entries with this reason. */
  reason?: DeadLetterReason;
}

/**
 * The operator's view of a queue's dead letters: count, list, inspect,
 * replay (back to the queue as a fresh job with a new attempt count) and purge.
 */
export class DeadLetterQueue<T = unknown> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, T>;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;

  constructor(nc: NatsConnection, queue: Queue<unknown, T>) {
    this.#nc = nc;
    this.#queue = queue;
  }

  async #manager(): Promise<JetStreamManager> {
    if (!this.#jsm) {
      try {
        this.#jsm = await jetstreamManager(this.#nc, jsOptions(this.#queue));
      } catch (err) {
        throw mapNatsError(err, `open dead letters of queue "${this.#queue.name}"`);
      }
    }
    return this.#jsm;
  }

  /** Dead letters stored now. */
  async count(): Promise<number> {
    const jsm = await this.#manager();
    try {
      const info = await jsm.streams.info(this.#queue.names.dlqStream);
      return info.state.messages;
    } catch (err) {
      throw mapNatsError(err, `count dead letters of queue "${this.#queue.name}"`);
    }
  }

  /**
   * Lists dead letters, oldest first.
   * @throws {@link ConfigError} `limit` or `fromSeq` is not a positive integer in range.
   * @throws {@link QueueNotFoundError} the queue (its dead-letter stream) was not provisioned.
   */
  async list(options: ListOptions = {}): Promise<DeadLetter<T>[]> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new ConfigError(`Expected \`limit\` to be an integer from 1 to 10000, got ${describe(limit)}`);
    }
    const from = options.fromSeq ?? 1;
    if (!Number.isSafeInteger(from) || from < 1) {
      throw new ConfigError(`Expected \`fromSeq\` to be a dead-letter sequence (a positive integer), got ${describe(from)}`);
    }
    const out: DeadLetter<T>[] = [];
    const match = matcher(options);
    let seq = from;
    while (out.length < limit) {
      const m = await this.#next(seq, seq === from);
      if (!m) break;
      const e = toEntry<T>(m);
      if (match(e)) out.push(e);
      seq = m.seq + 1;
    }
    return out;
  }

  /**
   * One dead letter by its sequence.
   * @throws {@link DeadLetterNotFoundError} there is none with this sequence (replayed or purged already?).
   */
  async get(seq: number): Promise<DeadLetter<T>> {
    return toEntry<T>(await this.#read(seq));
  }

  #notFound(seq: number, cause?: unknown): DeadLetterNotFoundError {
    const q = this.#queue.name;
    return new DeadLetterNotFoundError(
      `Dead letter ${seq} of queue "${q}" does not exist (already replayed or purged?). List them with DeadLetterQueue.list() or: jetq dlq list ${q}`,
      seq,
      cause === undefined ? undefined : { cause },
    );
  }

  async #read(seq: number): Promise<StoredMsg> {
    checkSeq(seq);
    const jsm = await this.#manager();
    let m: StoredMsg | null;
    try {
      m = await jsm.streams.getMessage(this.#queue.names.dlqStream, { seq });
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) throw this.#notFound(seq, err);
      throw mapNatsError(err, `read dead letter ${seq} of queue "${this.#queue.name}"`);
    }
    if (!m) throw this.#notFound(seq);
    return m;
  }

  /**
   * Publishes the dead letter back to the queue as a new job (same id, payload and headers; a
   * fresh attempt count), waits for the server to store it, then removes the dead letter.
   * Replaying the same entry twice never enqueues it twice.
   * @returns the new job's id and stream sequence.
   * @throws {@link DeadLetterNotFoundError} there is no dead letter with this sequence.
   */
  async replay(seq: number): Promise<{ id: string; seq: number }> {
    const { id, seq: stored } = await this.#replay(seq);
    return { id, seq: stored };
  }

  /**
   * {@link replay}, also saying whether the job was already on the queue: the server dropped
   * this publish as a duplicate of an earlier replay of the same entry (another caller's, now).
   */
  async #replay(seq: number): Promise<{ id: string; seq: number; duplicate: boolean }> {
    const m = await this.#read(seq);
    const n = this.#queue.names;
    const entry = toEntry<T>(m);
    const h = natsHeaders();
    for (const [k, values] of m.header ?? []) {
      // The level goes into the subject below; the job needs no header for it.
      if (DLQ_HEADERS.includes(k) || /^nats-/i.test(k) || k === "Jetq-Original-Msg-Id" || k === PRIORITY_HEADER) continue;
      for (const v of values) h.append(k, v);
    }
    h.set(HDR.id, entry.id);
    h.set(HDR.replayOf, String(seq));
    this.#js ??= jetstream(this.#nc, jsOptions(this.#queue));
    let stored: number;
    let duplicate: boolean;
    try {
      // The msg id makes a repeated replay (or a crash before the delete below) harmless.
      // A prioritised queue: back to the level the job was published at (its header says which).
      const q = this.#queue as Queue<unknown, unknown>;
      const subject = q.priorities ? levelSubject(q, levelOfHeader(q, m.header?.get(PRIORITY_HEADER))) : n.subject;
      const ack = await this.#js.publish(subject, m.data, { headers: h, msgID: `jetq-replay:${n.dlqStream}:${seq}`, timeout: 10_000 });
      stored = ack.seq;
      duplicate = ack.duplicate;
    } catch (err) {
      throw mapNatsError(err, `replay dead letter ${seq} of queue "${this.#queue.name}"`);
    }
    // Gone already: another caller replayed it at the same time (the msg id kept the job single)
    // or removed it; the job is on the queue either way.
    await this.#delete(seq);
    return { id: entry.id, seq: stored, duplicate };
  }

  /**
   * Replays every dead letter that matches `filter` (all of them without one). Entries another
   * caller takes meanwhile (a concurrent `replayAll` or `purge`) are counted, not failures.
   */
  async replayAll(filter: DeadLetterFilter = {}): Promise<ReplayAllResult> {
    const result: ReplayAllResult = { replayed: 0, alreadyGone: 0 };
    await this.#each(filter, async (e) => {
      let fresh: boolean;
      try {
        fresh = !(await this.#replay(e.seq)).duplicate;
      } catch (err) {
        if (!(err instanceof DeadLetterNotFoundError)) throw err;
        fresh = false;
      }
      // The msg id lets exactly one replay of an entry enqueue its job: counted by that caller,
      // so concurrent callers' `replayed` add up to the jobs put back on the queue.
      if (fresh) result.replayed++;
      else result.alreadyGone++;
    });
    return result;
  }

  /**
   * Deletes one dead letter.
   * @throws {@link DeadLetterNotFoundError} there is no dead letter with this sequence.
   */
  async remove(seq: number): Promise<void> {
    checkSeq(seq);
    if (!(await this.#delete(seq))) throw this.#notFound(seq);
  }

  /** Deletes one dead letter; false when there was none. */
  async #delete(seq: number): Promise<boolean> {
    const jsm = await this.#manager();
    try {
      return await jsm.streams.deleteMessage(this.#queue.names.dlqStream, seq, false);
    } catch (err) {
      // A sequence past the stream's end fails with "stream store EOF" (10057), not "no message found".
      if (apiCode(err) === API.noMessageFound || /no message found|not found|store EOF/i.test(String(err))) return false;
      throw mapNatsError(err, `delete dead letter ${seq} of queue "${this.#queue.name}"`);
    }
  }

  /** Deletes every dead letter matching `filter` (all of them without one). @returns how many were deleted. */
  async purge(filter: DeadLetterFilter = {}): Promise<number> {
    const jsm = await this.#manager();
    if (!filter.errorIncludes && filter.olderThanMs === undefined && !filter.reason) {
      try {
        const r = await jsm.streams.purge(this.#queue.names.dlqStream);
        return r.purged;
      } catch (err) {
        throw mapNatsError(err, `purge dead letters of queue "${this.#queue.name}"`);
      }
    }
    let removed = 0;
    await this.#each(filter, async (e) => {
      if (await this.#delete(e.seq)) removed++;
    });
    return removed;
  }

  /** Visits matching entries present when the call began (bounded by the stream's last sequence then). */
  async #each(filter: DeadLetterFilter, fn: (e: DeadLetter<T>) => Promise<void>): Promise<void> {
    const jsm = await this.#manager();
    let last: number;
    try {
      last = (await jsm.streams.info(this.#queue.names.dlqStream)).state.last_seq;
    } catch (err) {
      throw mapNatsError(err, `read dead letters of queue "${this.#queue.name}"`);
    }
    const match = matcher(filter);
    let seq = 1;
    while (seq <= last) {
      const m = await this.#next(seq);
      if (!m || m.seq > last) break;
      seq = m.seq + 1;
      const e = toEntry<T>(m);
      if (match(e)) await fn(e);
    }
  }

  /**
   * The first dead letter at or after `seq`. `first` asks the stream API rather than a direct
   * get: a direct get of a stream that does not exist has no responder and times out after
   * ~5 s, where the API answers "stream not found" at once (a QueueNotFoundError).
   */
  async #next(seq: number, first = false): Promise<StoredMsg | null> {
    const jsm = await this.#manager();
    const n = this.#queue.names;
    try {
      // The server's msg-get API takes next_by_subj (2.9+); the client's type only lists seq and last_by_subj.
      if (first) return await jsm.streams.getMessage(n.dlqStream, { seq, next_by_subj: n.dlqSubject } as unknown as MsgRequest);
      return await jsm.direct.getMessage(n.dlqStream, { seq, next_by_subj: n.dlqSubject });
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) return null;
      throw mapNatsError(err, `read dead letters of queue "${this.#queue.name}"`);
    }
  }
}

function matcher(filter: DeadLetterFilter): (e: DeadLetter<unknown>) => boolean {
  const needle = filter.errorIncludes?.toLowerCase();
  const cutoff = filter.olderThanMs === undefined ? undefined : Date.now() - filter.olderThanMs;
  return (e) =>
    (!needle || `${e.error.name} ${e.error.message}`.toLowerCase().includes(needle)) &&
    (cutoff === undefined || e.failedAt.getTime() <= cutoff) &&
    (!filter.reason || e.reason === filter.reason);
}

function checkSeq(seq: number): void {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new ConfigError(`Expected a dead-letter sequence (a positive integer), got ${describe(seq)}`);
}

function toEntry<T>(m: StoredMsg): DeadLetter<T> {
  const h: MsgHdrs | undefined = m.header;
  const get = (k: string): string => h?.get(k) ?? "";
  let data: T | undefined;
  try {
    data = JSON.parse(new TextDecoder().decode(m.data)) as T;
  } catch {
    data = undefined;
  }
  const headers: Record<string, string> = {};
  for (const [k, v] of h ?? []) {
    if (!/^jetq-/i.test(k) && !/^nats-/i.test(k) && v[0] !== undefined) headers[k] = v[0];
  }
  const failed = Date.parse(get(HDR.failedAt));
  const published = Date.parse(get(HDR.publishedAt));
  return {
    seq: m.seq,
    id: get(HDR.id) || `seq-${get(HDR.sourceSeq) || m.seq}`,
    data,
    raw: m.data,
    headers,
    reason: get(HDR.reason) || "unknown",
    error: errorOf(get(HDR.errorName) || "Error", get(HDR.error), decodeStack(h?.get(HDR.errorStack))),
    attempts: Number(get(HDR.attempts)) || 0,
    crashes: Number(get(HDR.crashes)) || 0,
    worker: get(HDR.worker) || undefined,
    failedAt: Number.isNaN(failed) ? m.time : new Date(failed),
    publishedAt: Number.isNaN(published) ? undefined : new Date(published),
    sourceSeq: Number(get(HDR.sourceSeq)) || 0,
    ...(get("Jetq-Truncated") ? { truncatedFrom: Number(get("Jetq-Truncated")) } : {}),
  };
}

function errorOf(name: string, message: string, stack: string | undefined): DeadLetter["error"] {
  return stack === undefined ? { name, message } : { name, message, stack };
}

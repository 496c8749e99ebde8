import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { ConfigError, JetqError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { describe, type Queue } from "../queue/define.ts";
import { DLQ_HEADERS, HDR } from "../queue/headers.ts";
import type { DeadLetterReason } from "./route.ts";

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
  /** The last error: its name and message. */
  error: { name: string; message: string };
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
  };
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
        this.#jsm = await jetstreamManager(this.#nc);
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

  /** Lists dead letters, oldest first. */
  async list(options: ListOptions = {}): Promise<DeadLetter<T>[]> {
    const limit = options.limit ?? 50;
    if (!Number.isInteger(limit) || limit < 1 || limit > 10_000) {
      throw new ConfigError(`Expected \`limit\` to be an integer from 1 to 10000, got ${describe(limit)}`);
    }
    const out: DeadLetter<T>[] = [];
    const match = matcher(options);
    let seq = options.fromSeq ?? 1;
    while (out.length < limit) {
      const m = await this.#next(seq);
      if (!m) break;
      const e = toEntry<T>(m);
      if (match(e)) out.push(e);
      seq = m.seq + 1;
    }
    return out;
  }

  /** One dead letter by its sequence, or `undefined` when there is none. */
  async get(seq: number): Promise<DeadLetter<T> | undefined> {
    checkSeq(seq);
    const jsm = await this.#manager();
    try {
      const m = await jsm.streams.getMessage(this.#queue.names.dlqStream, { seq });
      return m ? toEntry<T>(m) : undefined;
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) return undefined;
      throw mapNatsError(err, `read dead letter ${seq} of queue "${this.#queue.name}"`);
    }
  }

  /**
   * Publishes the dead letter back to the queue as a new job (same id, payload and headers; a
   * fresh attempt count), waits for the server to store it, then removes the dead letter.
   * Replaying the same entry twice never enqueues it twice.
   * @returns the new job's stream sequence.
   */
  async replay(seq: number): Promise<{ id: string; seq: number }> {
    checkSeq(seq);
    const jsm = await this.#manager();
    const n = this.#queue.names;
    let m: StoredMsg | null;
    try {
      m = await jsm.streams.getMessage(n.dlqStream, { seq });
    } catch (err) {
      if (apiCode(err) === API.noMessageFound) m = null;
      else throw mapNatsError(err, `read dead letter ${seq} of queue "${this.#queue.name}"`);
    }
    if (!m) throw new JetqError(`Dead letter ${seq} of queue "${this.#queue.name}" does not exist (already replayed or purged?)`);
    const entry = toEntry<T>(m);
    const h = natsHeaders();
    for (const [k, values] of m.header ?? []) {
      if (DLQ_HEADERS.includes(k) || /^nats-/i.test(k) || k === "Jetq-Original-Msg-Id") continue;
      for (const v of values) h.append(k, v);
    }
    h.set(HDR.id, entry.id);
    h.set(HDR.replayOf, String(seq));
    this.#js ??= jetstream(this.#nc);
    let stored: number;
    try {
      // The msg id makes a repeated replay (or a crash before the delete below) harmless.
      const ack = await this.#js.publish(n.subject, m.data, { headers: h, msgID: `jetq-replay:${n.dlqStream}:${seq}`, timeout: 10_000 });
      stored = ack.seq;
    } catch (err) {
      throw mapNatsError(err, `replay dead letter ${seq} of queue "${this.#queue.name}"`);
    }
    await this.remove(seq);
    return { id: entry.id, seq: stored };
  }

  /** Replays every dead letter that matches `filter` (all of them without one). @returns how many were replayed. */
  async replayAll(filter: DeadLetterFilter = {}): Promise<number> {
    let replayed = 0;
    await this.#each(filter, async (e) => {
      await this.replay(e.seq);
      replayed++;
    });
    return replayed;
  }

  /** Deletes one dead letter. @returns whether it existed. */
  async remove(seq: number): Promise<boolean> {
    checkSeq(seq);
    const jsm = await this.#manager();
    try {
      return await jsm.streams.deleteMessage(this.#queue.names.dlqStream, seq, false);
    } catch (err) {
      if (apiCode(err) === API.noMessageFound || /no message found|not found/i.test(String(err))) return false;
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
      if (await this.remove(e.seq)) removed++;
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

  async #next(seq: number): Promise<StoredMsg | null> {
    const jsm = await this.#manager();
    const n = this.#queue.names;
    try {
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
    error: { name: get(HDR.errorName) || "Error", message: get(HDR.error) },
    attempts: Number(get(HDR.attempts)) || 0,
    crashes: Number(get(HDR.crashes)) || 0,
    worker: get(HDR.worker) || undefined,
    failedAt: Number.isNaN(failed) ? m.time : new Date(failed),
    publishedAt: Number.isNaN(published) ? undefined : new Date(published),
    sourceSeq: Number(get(HDR.sourceSeq)) || 0,
    ...(get("Jetq-Truncated") ? { truncatedFrom: Number(get("Jetq-Truncated")) } : {}),
  };
}

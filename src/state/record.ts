import { hash } from "node:crypto";
import type { DeadLetterReason } from "../dlq/route.ts";

/**
 * Where a job stands, as {@link Jobs.get} reports it. Under at-least-once delivery a state is the
 * last one a worker wrote, corrected for a lapsed lease: see README, "Looking up a job".
 *
 * - `waiting`: stored in the queue, not running (never started, or its worker died and its lease lapsed).
 * - `delayed`: published to run later (`delayMs`/`runAt`, a queue with `scheduling`): held until `runAt`.
 * - `active`: a worker runs it now (its lease is alive).
 * - `retrying`: its last attempt failed; it runs again after its backoff.
 * - `completed`: a handler resolved; the result was stored before the job was acked.
 * - `dead`: moved to the dead-letter queue.
 */
export type JobStateName = "waiting" | "delayed" | "active" | "retrying" | "completed" | "dead";

/** A failure as stored with a job's state: the error's name and message. */
export interface JobStateError {
  /** The error's `name`, e.g. `"Error"` or `"ValidationError"`. */
  name: string;
  /** The error's message. */
  message: string;
}

/** What {@link Jobs.get} knows about one job. `R` is the type of the handler's result. */
export interface JobInfo<R = unknown> {
  /** The job id (the producer's `id`, or `seq-<seq>`). */
  id: string;
  /** The job's sequence in the queue's stream. */
  seq: number;
  /** Where the job stands now. */
  state: JobStateName;
  /** The attempt that ran last (or runs now), from 1; 1 for a job that has not run yet. */
  attempt: number;
  /** When the server stored the job. */
  publishedAt: Date;
  /** When its latest attempt started. */
  startedAt?: Date;
  /** When it completed or was dead-lettered (or its latest attempt failed, for `retrying`). */
  finishedAt?: Date;
  /** The last value given to `job.progress()` in its latest attempt, if any. */
  progress?: unknown;
  /** The handler's result (`completed` only; absent when the handler resolved to `undefined`). */
  result?: R;
  /** The last failure (`retrying` and `dead`). */
  error?: JobStateError;
  /** Why it was dead-lettered (`dead` only). Read the dead letter itself with `DeadLetterQueue`. */
  deadLetter?: { reason: DeadLetterReason };
  /** When the next attempt is due (`retrying` only). */
  retryAt?: Date;
  /** When a delayed job is due to enter the queue (`delayed` only; the server's clock). */
  runAt?: Date;
}

/** @internal Which write a record is: the state change it reports (`lease` only renews an active one). */
export type RecordEvent = "active" | "progress" | "lease" | "released" | "completed" | "retrying" | "dead";

/** @internal A job's state record, one message per job on `<stateSubject>.<key>` (latest wins). */
export interface StateRecord {
  id: string;
  seq: number;
  ev: RecordEvent;
  state: "waiting" | "active" | "retrying" | "completed" | "dead";
  attempt: number;
  publishedAt: number;
  startedAt?: number;
  finishedAt?: number;
  progress?: unknown;
  result?: unknown;
  error?: JobStateError;
  reason?: DeadLetterReason;
  retryAt?: number;
  /** The queue's ackWaitMs: an `active` record older than this (since its last write) has a lapsed lease. */
  leaseMs: number;
  /** Who wrote it (host:pid/id). */
  worker: string;
}

/**
 * @internal The subject token of a job id: ids may hold any character (a subject may not hold
 * `.`, `*`, `>` or spaces), so the token is a hash, 128 bits in base64url. The record carries the id.
 */
export function stateKey(id: string): string {
  return hash("sha256", id, "base64url").slice(0, 22);
}

const num = (v: unknown): number | undefined => (typeof v === "number" && Number.isFinite(v) ? v : undefined);

/** @internal Reads a stored record; undefined when it is not one of ours. */
export function parseRecord(v: unknown): StateRecord | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.id !== "string" || typeof o.state !== "string" || !["waiting", "active", "retrying", "completed", "dead"].includes(o.state)) return undefined;
  return o as unknown as StateRecord;
}

/**
 * @internal What a record means at `nowMs`, given when the server stored it. An `active` record
 * whose lease lapsed (its worker died or stalled: nothing renewed it for `leaseMs`) is `waiting`:
 * the server hands the job to another worker.
 */
export function infoOf<R>(rec: StateRecord, storedAtMs: number, nowMs: number): JobInfo<R> {
  let state: JobStateName = rec.state;
  if (state === "active" && nowMs - storedAtMs > rec.leaseMs) state = "waiting";
  const date = (v: unknown): Date | undefined => {
    const n = num(v);
    return n === undefined ? undefined : new Date(n);
  };
  const info: JobInfo<R> = {
    id: rec.id,
    seq: num(rec.seq) ?? 0,
    state,
    attempt: num(rec.attempt) ?? 1,
    publishedAt: date(rec.publishedAt) ?? new Date(0),
  };
  const startedAt = date(rec.startedAt);
  if (startedAt) info.startedAt = startedAt;
  const finishedAt = date(rec.finishedAt);
  if (finishedAt) info.finishedAt = finishedAt;
  if (rec.progress !== undefined) info.progress = rec.progress;
  if (rec.result !== undefined && rec.state === "completed") info.result = rec.result as R;
  if (rec.error && (rec.state === "retrying" || rec.state === "dead")) info.error = rec.error;
  if (rec.state === "dead" && rec.reason) info.deadLetter = { reason: rec.reason };
  const retryAt = date(rec.retryAt);
  if (retryAt && rec.state === "retrying") info.retryAt = retryAt;
  return info;
}

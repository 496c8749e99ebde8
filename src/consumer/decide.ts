/**
 * @internal The handler path's decisions, as pure functions: how to treat a delivery
 * ({@link classify}), what to do once its attempt settled ({@link decide}), and the ledger records
 * each outcome writes. docs/design/attempts.md explains the protocol; model/ checks it.
 */
import { JetqError, PermanentError, RetryError } from "../errors.ts";
import { backoffDelay, DEFAULT_BACKOFF, type ResolvedBackoff } from "../queue/backoff.ts";
import type { DeadLetterReason } from "../dlq/route.ts";

/** @internal A job's record in the outcome ledger. */
export interface LedgerRecord {
  /** Handler failures recorded so far; the next attempt is `failures + 1`. */
  readonly failures: number;
  /** Isolated runs that ended without an outcome. */
  readonly crashes: number;
  /** Every delivery up to this count is explained by a recorded outcome. */
  readonly seen: number;
  /** The delivery at which an isolated run started and has not recorded an outcome. */
  readonly isolated?: number;
  /** The job must run alone before it runs normally again. */
  readonly suspect?: boolean;
  /** The worker that wrote the record. */
  readonly worker?: string;
  /** The last failure's message (kept for the dead letter of a later crash). */
  readonly error?: string;
  /**
   * The job is being dead-lettered (written before the copy to the dead letters): a later
   * delivery finishes that dead letter and never runs the handler again.
   */
  readonly dead?: { readonly reason: DeadLetterReason; readonly attempts: number };
}

/** @internal The record of a job nothing was written for. */
export const EMPTY_RECORD: LedgerRecord = { failures: 0, crashes: 0, seen: 0 };

/** @internal How a worker treats one delivery. */
export type Classification =
  /** Every earlier delivery is explained: run it among others. */
  | { kind: "run"; attempt: number }
  /** A suspect: run it alone, after recording the start of the isolated run. */
  | { kind: "isolate"; attempt: number; crashes: number }
  /** A suspect that crashed `maxCrashes` times while alone: dead-letter it. */
  | { kind: "crashed"; attempt: number; crashes: number }
  /** A dead letter was decided (and maybe written) by an earlier delivery: finish it, never run the handler. */
  | { kind: "finish-dead"; attempt: number; reason: DeadLetterReason; crashes: number }
  /**
   * The record was written by a later delivery of the job: this one is stale (its worker stalled
   * while another took the job). Drop it without answering: a nak or ack would act on the job
   * another worker holds now.
   */
  | { kind: "stale"; attempt: number };

/**
 * @internal Classifies a delivery by the server's delivery count and the job's ledger record
 * (`undefined` when there is none; the first delivery is never looked up).
 */
export function classify(deliveries: number, record: LedgerRecord | undefined, maxCrashes: number): Classification {
  if (deliveries <= 1) return { kind: "run", attempt: 1 };
  const r = record ?? EMPTY_RECORD;
  const attempt = r.failures + 1;
  if (r.dead) return { kind: "finish-dead", attempt: r.dead.attempts, reason: r.dead.reason, crashes: r.crashes };
  if (r.seen >= deliveries || (r.isolated ?? 0) >= deliveries) return { kind: "stale", attempt };
  if (r.seen === deliveries - 1 && r.isolated === undefined && !r.suspect) return { kind: "run", attempt };
  // A delivery nobody recorded an outcome for: the job was in a process that died or stalled.
  // Only a run that was alone when that happened is the job's own crash.
  const crashes = r.crashes + (r.isolated !== undefined ? 1 : 0);
  if (crashes >= maxCrashes) return { kind: "crashed", attempt, crashes };
  return { kind: "isolate", attempt, crashes };
}

/** @internal The record in force for a delivery once classified: a suspect's counted crash is kept. */
export function baseRecord(record: LedgerRecord | undefined, c: Classification): LedgerRecord {
  const r = record ?? EMPTY_RECORD;
  return c.kind === "isolate" || c.kind === "crashed" ? { ...r, crashes: c.crashes, isolated: undefined, suspect: true } : r;
}

/** @internal Written before an isolated run starts at delivery `deliveries`. */
export function isolatedStart(r: LedgerRecord, deliveries: number, worker: string): LedgerRecord {
  return { ...r, seen: deliveries - 1, isolated: deliveries, suspect: true, worker };
}

/** @internal Written before a failed job is handed back for another attempt. */
export function afterFailure(r: LedgerRecord, deliveries: number, worker: string, error: Error): LedgerRecord {
  return { failures: r.failures + 1, crashes: r.crashes, seen: deliveries, worker, error: error.message.slice(0, 512) };
}

/**
 * @internal Written before a job is copied to the dead letters: the failure that killed it, the
 * crash of a pending isolated run, and the decision, so that no later delivery runs it again.
 */
export function afterDead(r: LedgerRecord, deliveries: number, worker: string, reason: DeadLetterReason, attempts: number, crashes: number, error: Error): LedgerRecord {
  const { isolated: _i, ...rest } = r;
  return {
    ...rest,
    failures: reason === "max_attempts" ? r.failures + 1 : r.failures,
    crashes,
    seen: deliveries,
    worker,
    error: error.message.slice(0, 512),
    dead: { reason, attempts },
  };
}

/** @internal Written before a job is handed back without an attempt used (stop, deferral). A suspect stays one. */
export function afterHandBack(r: LedgerRecord, deliveries: number, worker: string): LedgerRecord {
  const { isolated: _i, ...rest } = r;
  return { ...rest, seen: deliveries, worker };
}

/** @internal How an attempt settled. */
export type Settlement =
  | { kind: "ok" }
  /** The handler or a middleware threw (or the attempt timed out). */
  | { kind: "failed"; error: Error }
  /** The payload cannot be handled: not JSON, or it fails the schema. */
  | { kind: "rejected"; reason: "decode" | "validation"; error: Error }
  /** `stop()` handed the job back before its handler settled. */
  | { kind: "released" };

/** @internal What the worker does with a settled attempt. */
export type Decision =
  | { kind: "ack" }
  /** Hand back for another attempt after `delayMs`; `warning` says why the configured backoff was not used. */
  | { kind: "retry"; delayMs: number; warning?: Error }
  | { kind: "dead"; reason: DeadLetterReason }
  | { kind: "release" };

/** @internal What {@link decide} needs besides the settlement. */
export interface DecideContext {
  attempt: number;
  maxAttempts: number;
  backoff: ResolvedBackoff;
  random?: () => number;
}

/**
 * @internal The one place that turns an attempt's end into an action: resolve = ack; throw = retry
 * with backoff, or dead-letter on the last attempt; `PermanentError` = dead-letter now;
 * `RetryError` = retry after its delay; an unusable payload = dead-letter now.
 */
export function decide(s: Settlement, ctx: DecideContext): Decision {
  switch (s.kind) {
    case "ok":
      return { kind: "ack" };
    case "released":
      return { kind: "release" };
    case "rejected":
      return { kind: "dead", reason: s.reason };
    case "failed": {
      const e = s.error;
      // By name too: an error class from another copy of jetq is not `instanceof` this one.
      if (e instanceof PermanentError || e.name === "PermanentError") return { kind: "dead", reason: "permanent" };
      if (ctx.attempt >= ctx.maxAttempts) return { kind: "dead", reason: "max_attempts" };
      if (e instanceof RetryError || (e.name === "RetryError" && typeof (e as RetryError).delayMs === "number")) {
        return { kind: "retry", delayMs: (e as RetryError).delayMs };
      }
      try {
        return { kind: "retry", delayMs: backoffDelay(ctx.backoff, ctx.attempt, ctx.random, e) };
      } catch (err) {
        return {
          kind: "retry",
          delayMs: backoffDelay(DEFAULT_BACKOFF, ctx.attempt, ctx.random),
          warning: err instanceof Error ? err : new JetqError(String(err)),
        };
      }
    }
  }
}

/**
 * @internal Makes whatever a handler threw into an Error jetq can read safely. An Error whose
 * `name` or `message` getter throws, a Proxy whose traps throw, a value `String()` cannot
 * convert: each becomes a plain {@link JetqError} describing it, never an exception of its own.
 */
export function safeError(thrown: unknown): Error {
  try {
    if (thrown instanceof Error) {
      // Touch what jetq reads later (decide, telemetry, dead letters); a throwing getter fails here.
      const name = thrown.name;
      const message = thrown.message;
      if (typeof name === "string" && typeof message === "string") return thrown;
      return new JetqError(`handler threw an Error whose name or message is not a string (${typeof name}, ${typeof message})`);
    }
  } catch {
    return new JetqError("handler threw an Error that cannot be inspected (its name or message getter threw)");
  }
  return new JetqError(`handler threw a non-Error value: ${describeSafely(thrown)}`);
}

/** @internal A short description of any value that never throws. */
export function describeSafely(v: unknown): string {
  try {
    if (typeof v === "string") return JSON.stringify(v.length > 80 ? `${v.slice(0, 80)}…` : v);
    if (v === null || (typeof v !== "object" && typeof v !== "function")) return String(v);
    const json = JSON.stringify(v);
    if (typeof json === "string") return json.slice(0, 80);
  } catch {
    // fall through
  }
  try {
    return Object.prototype.toString.call(v);
  } catch {
    return `(a value of type ${typeof v} that cannot be inspected)`;
  }
}

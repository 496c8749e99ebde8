import type { MsgHdrs } from "@nats-io/transport-node";
import type { Delivered } from "../consumer/pull.ts";
import type { DeadLetterReason } from "../dlq/route.ts";

/** @internal Which bound turned a publish away (the `reason` of `QueueFullError`). */
export type RejectReason = "stream_full" | "window_full" | "window_timeout";

/** @internal Handle of one publish, from the call to the server's answer. */
export interface PublishSpan {
  end(error: Error | undefined, receipt?: { id: string; seq: number; duplicate: boolean }): void;
}

/**
 * @internal The seam between the producer and telemetry. The producer calls
 * these at the points where the events happen; `src/telemetry/otel.ts` turns
 * them into spans and metrics. `queue` is the queue's name.
 */
export interface TelemetryHooks {
  /**
   * Starts the span of one publish and writes its trace context into `headers`.
   * When nothing records traces this returns a shared no-op and touches nothing.
   */
  publish(queue: string, id: string | undefined, headers: MsgHdrs): PublishSpan;
  /**
   * Whether `publish` would record a span (and so needs headers to carry its context); a cheap
   * check that lets a job without an id go without headers when nothing traces.
   */
  tracesPublishes(): boolean;
  /** The server stored the job (or recognised it as a duplicate). */
  published(queue: string, duplicate: boolean): void;
  /** A publish was turned away with `QueueFullError`. */
  rejected(queue: string, reason: RejectReason): void;
  /** A publish waited this long for a window slot (whatever the outcome). */
  blocked(queue: string, ms: number): void;
}

const noop = (): void => {};

/** @internal Shared no-op publish span: no allocation per publish when tracing is off. */
export const noPublishSpan: PublishSpan = { end: noop };

export const noTelemetry: TelemetryHooks = {
  publish: () => noPublishSpan,
  tracesPublishes: () => false,
  published: noop,
  rejected: noop,
  blocked: noop,
};

/** @internal What happened to the job at the end of one attempt. */
export type AttemptOutcome =
  | { kind: "retry"; delayMs: number }
  | { kind: "dead"; reason: DeadLetterReason }
  | { kind: "released" };

/** @internal Per-attempt telemetry handle. */
export interface AttemptSpan {
  /** Runs `fn` (the handler) inside the attempt's trace context, so spans it starts are children. */
  run<R>(fn: () => R): R;
  /** Ends the attempt; `error` is what the handler threw (or why the job could not be handled). */
  end(error: Error | undefined, outcome?: AttemptOutcome): void;
}

/** @internal Worker-side telemetry seam. */
export interface WorkerTelemetry {
  /** The worker started pulling: its in-flight count and concurrency are reported from now on. */
  attach(): void;
  /** The worker stopped. */
  detach(): void;
  /** A delivery reached the worker and is about to be handled (decode, validate, run). */
  start(queue: string, msg: Delivered, job: { id: string; seq: number; attempt: number }): AttemptSpan;
  /** A handler resolved and its job was acked. */
  completed(queue: string, durationMs: number): void;
  /** A failed job was handed back with a backoff delay. */
  retried(queue: string): void;
  /** A job reached the dead-letter queue (any path, crash loops included). */
  dead(queue: string, reason: DeadLetterReason): void;
  /** A job could not start yet because of a limit (the queue's rate, its group's concurrency or rate) and was deferred. */
  throttled?(queue: string, limit: ThrottleLimit): void;
  /** A handler outlived its timeout and ignores its abort signal (the worker's `stuck` event). */
  stuck?(queue: string): void;
}

/** @internal Which limit held a job back (the `jetq.limit` attribute of `jetq.jobs.throttled`). */
export type ThrottleLimit = "rate" | "group_concurrency" | "group_rate";

const runDirect = <R>(fn: () => R): R => fn();
/** @internal Shared no-op attempt: no allocation per job when nothing is measured. */
export const noAttemptSpan: AttemptSpan = { run: runDirect, end: noop };

export const noWorkerTelemetry: WorkerTelemetry = {
  attach: noop,
  detach: noop,
  start: () => noAttemptSpan,
  completed: noop,
  retried: noop,
  dead: noop,
};

import type { ZodType } from "zod";
import { ConfigError } from "../errors.ts";
import { domainOf } from "../transport/api.ts";
import { type BackoffOptions, type ResolvedBackoff, resolveBackoff } from "./backoff.ts";

/** Options of {@link defineQueue}. Every field but `name` has a documented default. */
export interface QueueOptions<S extends ZodType = ZodType> {
  /** Queue name: letters, digits, `-` and `_`, at most 64 characters. Names the stream `JETQ_<name>`. */
  name: string;
  /**
   * zod schema of the job payload. `publish` validates against it before sending; the worker
   * validates again on receipt and dead-letters what fails. @default z.unknown() (anything JSON)
   */
  schema?: S;
  /**
   * Handler attempts before a failing job is dead-lettered (reason `max_attempts`). Only handler
   * failures count: a redelivery because a process died, a `stop()` hand-back or a deferral does
   * not (see docs/design/attempts.md). @default 5
   */
  maxAttempts?: number;
  /**
   * Crashes a job may cause while it runs alone before it is dead-lettered (reason `crashed`). A
   * job redelivered without a recorded outcome (its process died, or its lease lapsed) runs alone
   * in a worker; only a crash during such an isolated run counts, so a job is never charged for a
   * crash another job caused. @default 2
   */
  maxCrashes?: number;
  /**
   * Delay between attempts: an exponential policy, a list of delays, or a function
   * `(attempt, error) => ms`. @default `{ initialMs: 1000, maxMs: 60000, multiplier: 2, jitter: 0.2 }`
   */
  backoff?: BackoffOptions;
  /** How long the server waits for an ack before redelivering (`ack_wait`). Long jobs are kept alive with in-progress acks. @default 30000 */
  ackWaitMs?: number;
  /** Un-acked jobs the server hands out across all workers at once (`max_ack_pending`): the shared credit window. @default 1000 */
  maxAckPending?: number;
  /** Per-attempt handler timeout; at the deadline the job's `signal` aborts and the attempt fails. @default undefined (no timeout) */
  timeoutMs?: number;
  /**
   * JetStream domain the queue lives in (a leaf node's hub, for example): jetq then uses
   * `$JS.<domain>.API` for every JetStream call. One subject token.
   * @default the connection's own JetStream
   */
  domain?: string;
  /** Where the server keeps jobs. @default "file" */
  storage?: "file" | "memory";
  /** Stream replicas in a cluster: 1, 3 or 5 (an even count cannot keep a majority). @default 1 */
  replicas?: number;
  /** Bound on stored jobs; a publish beyond it fails with `QueueFullError`. @default -1 (unbounded) */
  maxMessages?: number;
  /** Bound on stored bytes; a publish beyond it fails with `QueueFullError`. @default -1 (unbounded) */
  maxBytes?: number;
  /** How long a job `id` is remembered to drop duplicate publishes. @default 120000 */
  duplicateWindowMs?: number;
  /**
   * Delayed jobs (`publish(data, { delayMs })` or `{ runAt }`) and repeatable jobs
   * ({@link Schedules}): provisioning adds a held stream `JETQ_<name>_HELD`, which keeps each
   * delayed job on the server until it is due, and a stream `JETQ_<name>_SCHED` of schedules;
   * every worker then moves due jobs into the queue and fires the schedules' ticks. Off by
   * default so that a queue that uses neither gets no extra streams and its workers no extra
   * work. Needs `duplicateWindowMs` of at least 10 s (a move or a tick repeated by another
   * process or after a crash is dropped by that window). @default false
   */
  scheduling?: boolean;
  /**
   * Dead-letter stream bounds. `maxAgeMs` is 0 (keep forever) or at least the dead letters'
   * duplicate window, max(120 s, 4 × `ackWaitMs`). @default `{ maxMessages: -1, maxAgeMs: 0 }` (keep everything)
   */
  deadLetter?: { maxMessages?: number; maxAgeMs?: number };
  /**
   * At most `max` job starts per sliding `perMs` window across every worker process of the queue,
   * enforced by the server (a limiter stream `JETQ_<name>_RATE`, made by `provisionQueue`). Jobs
   * held back wait in the queue and use no attempt. `max` 1 to 1,000,000; `perMs` 100 ms to 24 h.
   * @default undefined (no limit, and no limiter stream)
   */
  rateLimit?: RateLimit;
  /**
   * Priority levels, 2 to 10: `publish(data, { priority })` with 0 the most urgent; a job
   * published without one gets the lowest urgency, `priorities - 1`. A worker with free slots
   * takes from the most urgent level that has work (strict unless `priorityStarvation`). Each
   * level is a subject of the queue's stream read by its own durable consumer (`workers` for the
   * lowest level, `workers-p<level>` for the others). An existing single-level queue gains levels
   * with `provisionQueue(nc, queue, { update: true })`; levels cannot be removed in place.
   * @default undefined (one level: no extra subjects, consumers or pulls)
   */
  priorities?: number;
  /**
   * With `priorities`: after every `every` jobs a worker took from a more urgent level, it lets
   * one job of a less urgent level through when one is waiting, so low levels keep moving under
   * a steady stream of urgent work. `every` from 1 to 1,000,000. @default undefined (strict)
   */
  priorityStarvation?: { every: number };
  /**
   * Limits per group key, across every worker process: a job published with `{ group: key }`
   * starts only while fewer than `concurrency` jobs of its group run, and at most
   * `rateLimit.max` jobs of its group start per sliding `rateLimit.perMs`. Enforced by the server
   * (limiter streams `JETQ_<name>_GROUPS` and `JETQ_<name>_GRATE`, one subject per group, made by
   * `provisionQueue`); a job whose group is at its limit is handed back with a delay and uses no
   * attempt. Jobs without a group are not limited. `concurrency` 1 to 10,000.
   * @default undefined (no group limits, and no limiter streams)
   */
  group?: GroupOptions;
  /**
   * Keep each job's state and result for `keepMs` after its last change, in the stream
   * `JETQ_<name>_STATE`: what `Jobs.get`, `Jobs.wait`, `Jobs.events` and `receipt.result()` read.
   * Off by default: a queue without it writes nothing per job. `keepMs` from 1000 to 365 days.
   * @default undefined (no job state is kept)
   */
  results?: { keepMs: number };
  /**
   * zod schema of the handler's result (what the handler, through its middleware, resolves to).
   * A result that fails it fails the attempt (retried like a throw) with a `ValidationError`.
   * @default undefined (any JSON value)
   */
  resultSchema?: ZodType;
}

/** Limits per group key ({@link QueueOptions.group}); at least one of them. */
export interface GroupOptions {
  /** Jobs of one group running at once, across every worker. */
  concurrency?: number;
  /** Job starts of one group per sliding window. */
  rateLimit?: RateLimit;
}

/** A rate limit: at most `max` job starts per sliding window of `perMs`. */
export interface RateLimit {
  /** Starts allowed per window. */
  readonly max: number;
  /** The window, in ms. */
  readonly perMs: number;
}

/** A validated queue definition: what `provisionQueue`, `Producer`, `Worker` and `DeadLetterQueue` take. */
export interface Queue<In = unknown, Out = In> {
  /** The queue's name, as given. */
  readonly name: string;
  /** The zod schema jobs are validated against, if any. */
  readonly schema: ZodType<Out, In> | undefined;
  /** {@link QueueOptions.maxAttempts}, defaulted. */
  readonly maxAttempts: number;
  /** {@link QueueOptions.maxCrashes}, defaulted. */
  readonly maxCrashes: number;
  /** {@link QueueOptions.backoff}, validated and defaulted. */
  readonly backoff: ResolvedBackoff;
  /** {@link QueueOptions.ackWaitMs}, defaulted. */
  readonly ackWaitMs: number;
  /** {@link QueueOptions.maxAckPending}, defaulted. */
  readonly maxAckPending: number;
  /** {@link QueueOptions.timeoutMs}; `undefined` for no timeout. */
  readonly timeoutMs: number | undefined;
  /** {@link QueueOptions.storage}, defaulted. */
  readonly storage: "file" | "memory";
  /** {@link QueueOptions.replicas}, defaulted. */
  readonly replicas: number;
  /** {@link QueueOptions.maxMessages}; -1 for unbounded. */
  readonly maxMessages: number;
  /** {@link QueueOptions.maxBytes}; -1 for unbounded. */
  readonly maxBytes: number;
  /** {@link QueueOptions.duplicateWindowMs}, defaulted. */
  readonly duplicateWindowMs: number;
  /** {@link QueueOptions.deadLetter}, defaulted. */
  readonly deadLetter: { readonly maxMessages: number; readonly maxAgeMs: number };
  /** {@link QueueOptions.scheduling}, defaulted. */
  readonly scheduling: boolean;
  /** {@link QueueOptions.rateLimit}, validated; `undefined` for none. */
  readonly rateLimit: RateLimit | undefined;
  /** {@link QueueOptions.priorities}; `undefined` for a single-level queue. */
  readonly priorities: number | undefined;
  /** {@link QueueOptions.priorityStarvation}; `undefined` for strict priorities (or none). */
  readonly priorityStarvation: { readonly every: number } | undefined;
  /** {@link QueueOptions.group}, validated; `undefined` for none. */
  readonly group: { readonly concurrency: number | undefined; readonly rateLimit: RateLimit | undefined } | undefined;
  /** {@link QueueOptions.results}; `undefined` when the queue keeps no job state. */
  readonly results: { readonly keepMs: number } | undefined;
  /** {@link QueueOptions.resultSchema}, if any. */
  readonly resultSchema: ZodType | undefined;
  /** Names of the server objects behind the queue. */
  readonly names: QueueNames;
}

/** The JetStream objects a queue is made of. */
export interface QueueNames {
  /** Work-queue stream holding pending jobs. */
  readonly stream: string;
  /** Subject jobs are published to. */
  readonly subject: string;
  /** Durable pull consumer shared by all workers. */
  readonly consumer: string;
  /** Stream holding dead letters. */
  readonly dlqStream: string;
  /** Subject dead letters are published to. */
  readonly dlqSubject: string;
  /** Stream holding the outcome ledger: handler failures, hand-backs and isolated runs per job. */
  readonly ledgerStream: string;
  /** Subject prefix of ledger records (`<prefix>.<incarnation>.<seq>`). */
  readonly ledgerSubject: string;
  /** Stream holding delayed jobs until they are due (only with `scheduling: true`). */
  readonly heldStream: string;
  /** Subject delayed jobs are published to. */
  readonly heldSubject: string;
  /** Durable pull consumer of the held stream, shared by every worker's mover. */
  readonly heldConsumer: string;
  /** Stream holding the repeatable jobs' definitions and last ticks (only with `scheduling: true`). */
  readonly scheduleStream: string;
  /** Subject prefix of schedule records (`<prefix>.def.<name>`, `<prefix>.last.<name>`). */
  readonly scheduleSubject: string;
  /** Stream holding job state and results (only for a queue with `results`). */
  readonly stateStream: string;
  /** Subject prefix of job state records (`<prefix>.<key of the job id>`). */
  readonly stateSubject: string;
}

/** Type of the payload a producer publishes to `Q`. */
export type JobInput<Q> = Q extends Queue<infer In, unknown> ? In : never;
/** Type of the payload a handler receives from `Q`. */
export type JobData<Q> = Q extends Queue<unknown, infer Out> ? Out : never;

/** @internal The most priority levels a queue may have. */
export const MAX_PRIORITIES = 10;

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * Suffixes of the streams a queue owns besides its own (`JETQ_<name>_DLQ` ...): a queue named
 * `x_DLQ` would be the stream of queue `x`'s dead letters (`_PAUSE`: its pause record). `_ADV` was used up to jetq 0.1.
 */
const RESERVED_SUFFIX = /_(DLQ|LEDGER|HELD|SCHED|STATE|ADV|PAUSE|RATE|GROUPS|GRATE|GWAIT)$/;

export function queueNames(name: string): QueueNames {
  const stream = `JETQ_${name}`;
  const consumer = "workers";
  return {
    stream,
    subject: `jetq.q.${name}`,
    consumer,
    dlqStream: `JETQ_${name}_DLQ`,
    dlqSubject: `jetq.dlq.${name}`,
    ledgerStream: `JETQ_${name}_LEDGER`,
    ledgerSubject: `jetq.ledger.${name}`,
    heldStream: `JETQ_${name}_HELD`,
    heldSubject: `jetq.held.${name}`,
    heldConsumer: "mover",
    scheduleStream: `JETQ_${name}_SCHED`,
    scheduleSubject: `jetq.sched.${name}`,
    stateStream: `JETQ_${name}_STATE`,
    stateSubject: `jetq.state.${name}`,
  };
}

/**
 * @internal Duplicate window of the dead-letter stream: dead letters carry a msg id derived from the
 * job, and the window must outlast a redelivery (ack wait) so a crash between "copy to the dead
 * letters" and "remove the original" cannot make a second one.
 */
export function deadLetterWindowMs(ackWaitMs: number): number {
  return Math.max(120_000, ackWaitMs * 4);
}

/** @internal Shortest duplicate window of a queue with delayed jobs: twice the mover's ack wait. */
export const MIN_DELAYED_WINDOW_MS = 10_000;

function int(name: string, v: unknown, min: number, max: number): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ConfigError(`Expected \`${name}\` to be an integer from ${min} to ${max}, got ${describe(v)}`);
  }
  return v;
}

function limit(name: string, v: unknown): number {
  if (v === -1) return -1;
  return int(name, v, 1, Number.MAX_SAFE_INTEGER);
}

/** @internal */
export function describe(v: unknown): string {
  if (typeof v === "string") return JSON.stringify(v);
  if (v === null || typeof v !== "object") return String(v);
  try {
    return JSON.stringify(v).slice(0, 80);
  } catch {
    return Object.prototype.toString.call(v);
  }
}

function rateLimitOf(v: unknown, name = "rateLimit"): RateLimit | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== "object" || v === null) {
    throw new ConfigError(`Expected \`${name}\` to be { max, perMs } (e.g. { max: 100, perMs: 1000 }), got ${describe(v)}`);
  }
  const r = v as { max?: unknown; perMs?: unknown };
  return Object.freeze({ max: int(`${name}.max`, r.max, 1, 1_000_000), perMs: int(`${name}.perMs`, r.perMs, 100, 24 * 3600 * 1000) });
}

function groupOf(v: unknown): Queue["group"] {
  if (v === undefined) return undefined;
  if (typeof v !== "object" || v === null) {
    throw new ConfigError(`Expected \`group\` to be { concurrency?, rateLimit? } (e.g. { concurrency: 2 }), got ${describe(v)}`);
  }
  const g = v as { concurrency?: unknown; rateLimit?: unknown };
  if (g.concurrency === undefined && g.rateLimit === undefined) {
    throw new ConfigError(`Expected \`group\` to set \`concurrency\`, \`rateLimit\` or both, got ${describe(v)}`);
  }
  return Object.freeze({
    concurrency: g.concurrency === undefined ? undefined : int("group.concurrency", g.concurrency, 1, 10_000),
    rateLimit: rateLimitOf(g.rateLimit, "group.rateLimit"),
  });
}

/**
 * Defines a queue: validates every option now (throwing {@link ConfigError}
 * naming the option) and fills in the defaults. Pure: touches no server.
 *
 * @example
 * ```ts
 * const emails = defineQueue({ name: "emails", schema: z.object({ to: z.string() }) });
 * ```
 */
export function defineQueue<S extends ZodType = ZodType<unknown>>(
  options: QueueOptions<S>,
): Queue<S["_zod"]["input"], S["_zod"]["output"]> {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError(`Expected queue options to be an object, got ${describe(options)}`);
  }
  const { name } = options;
  if (typeof name !== "string" || !NAME_RE.test(name)) {
    throw new ConfigError(
      `Expected \`name\` to be 1-64 letters, digits, "-" or "_", got ${describe(name)}`,
    );
  }
  if (RESERVED_SUFFIX.test(name)) {
    throw new ConfigError(
      `Expected \`name\` not to end in _DLQ, _LEDGER, _HELD, _SCHED, _STATE, _PAUSE, _RATE, _GROUPS, _GRATE, _GWAIT or _ADV (the names of another queue's streams), got ${describe(name)}`,
    );
  }
  const schema = options.schema;
  if (schema !== undefined && (typeof schema !== "object" || schema === null || typeof schema.safeParse !== "function")) {
    throw new ConfigError(`Expected \`schema\` to be a zod schema, got ${describe(schema)}`);
  }
  const storage = options.storage ?? "file";
  if (storage !== "file" && storage !== "memory") {
    throw new ConfigError(`Expected \`storage\` to be "file" or "memory", got ${describe(storage)}`);
  }
  const replicas = options.replicas ?? 1;
  if (replicas !== 1 && replicas !== 3 && replicas !== 5) {
    throw new ConfigError(`Expected \`replicas\` to be 1, 3 or 5 (an even count cannot keep a majority), got ${describe(replicas)}`);
  }
  const timeoutMs = options.timeoutMs === undefined ? undefined : int("timeoutMs", options.timeoutMs, 1, 2 ** 31 - 1);
  const dl = options.deadLetter ?? {};
  const ackWaitMs = int("ackWaitMs", options.ackWaitMs ?? 30_000, 100, 24 * 3600 * 1000);
  const dlqMaxAgeMs = int("deadLetter.maxAgeMs", dl.maxAgeMs ?? 0, 0, Number.MAX_SAFE_INTEGER);
  const dlqWindow = deadLetterWindowMs(ackWaitMs);
  if (dlqMaxAgeMs !== 0 && dlqMaxAgeMs < dlqWindow) {
    // The server refuses a duplicate window longer than the stream's max age.
    throw new ConfigError(
      `Expected \`deadLetter.maxAgeMs\` to be 0 (keep forever) or at least ${dlqWindow} ms (the dead letters' duplicate window, max(120 s, 4 × ackWaitMs)), got ${dlqMaxAgeMs}`,
    );
  }
  const duplicateWindowMs = int("duplicateWindowMs", options.duplicateWindowMs ?? 120_000, 100, 7 * 24 * 3600 * 1000);
  const scheduling = options.scheduling ?? false;
  if (typeof scheduling !== "boolean") throw new ConfigError(`Expected \`scheduling\` to be true or false, got ${describe(scheduling)}`);
  if (scheduling && duplicateWindowMs < MIN_DELAYED_WINDOW_MS) {
    throw new ConfigError(
      `Expected \`duplicateWindowMs\` to be at least ${MIN_DELAYED_WINDOW_MS} with \`scheduling: true\` (a due job moved twice after a crash must be dropped as a duplicate), got ${duplicateWindowMs}`,
    );
  }
  const results = resolveResults(options.results);
  const priorities = options.priorities === undefined ? undefined : int("priorities", options.priorities, 2, MAX_PRIORITIES);
  const starvation = options.priorityStarvation;
  if (starvation !== undefined && priorities === undefined) {
    throw new ConfigError(`\`priorityStarvation\` needs \`priorities\` (2 to ${MAX_PRIORITIES}); got priorityStarvation ${describe(starvation)} without it`);
  }
  if (starvation !== undefined && (typeof starvation !== "object" || starvation === null)) {
    throw new ConfigError(`Expected \`priorityStarvation\` to be { every } (e.g. { every: 10 }), got ${describe(starvation)}`);
  }
  const priorityStarvation = starvation === undefined ? undefined : Object.freeze({ every: int("priorityStarvation.every", starvation.every, 1, 1_000_000) });
  const resultSchema = options.resultSchema;
  if (resultSchema !== undefined && (typeof resultSchema !== "object" || resultSchema === null || typeof resultSchema.safeParse !== "function")) {
    throw new ConfigError(`Expected \`resultSchema\` to be a zod schema, got ${describe(resultSchema)}`);
  }
  return Object.freeze({
    name,
    schema: schema as ZodType<S["_zod"]["output"], S["_zod"]["input"]> | undefined,
    maxAttempts: int("maxAttempts", options.maxAttempts ?? 5, 1, 10_000),
    maxCrashes: int("maxCrashes", options.maxCrashes ?? 2, 1, 1_000),
    backoff: resolveBackoff(options.backoff),
    ackWaitMs,
    maxAckPending: int("maxAckPending", options.maxAckPending ?? 1000, 1, 1_000_000),
    timeoutMs,
    storage,
    domain: domainOf(options),
    replicas,
    maxMessages: limit("maxMessages", options.maxMessages ?? -1),
    maxBytes: limit("maxBytes", options.maxBytes ?? -1),
    duplicateWindowMs,
    deadLetter: Object.freeze({
      maxMessages: limit("deadLetter.maxMessages", dl.maxMessages ?? -1),
      maxAgeMs: dlqMaxAgeMs,
    }),
    scheduling,
    rateLimit: rateLimitOf(options.rateLimit),
    priorities,
    priorityStarvation,
    group: groupOf(options.group),
    results,
    resultSchema,
    names: Object.freeze(queueNames(name)),
  });
}

function resolveResults(v: QueueOptions["results"]): Queue["results"] {
  if (v === undefined) return undefined;
  if (typeof v !== "object" || v === null) throw new ConfigError(`Expected \`results\` to be { keepMs: number }, got ${describe(v)}`);
  return Object.freeze({ keepMs: int("results.keepMs", v.keepMs, 1000, 365 * 24 * 3600 * 1000) });
}

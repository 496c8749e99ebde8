import type { ZodType } from "zod";
import { ConfigError } from "../errors.ts";
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
  /** Deliveries of a job before it is dead-lettered (the consumer's `max_deliver`). @default 5 */
  maxAttempts?: number;
  /** Delay between attempts. @default { initialMs: 1000, maxMs: 60000, multiplier: 2, jitter: 0.2 } */
  backoff?: BackoffOptions;
  /** How long the server waits for an ack before redelivering (`ack_wait`). Long jobs are kept alive with in-progress acks. @default 30000 */
  ackWaitMs?: number;
  /** Un-acked jobs the server hands out across all workers at once (`max_ack_pending`): the shared credit window. @default 1000 */
  maxAckPending?: number;
  /** Per-attempt handler timeout; at the deadline the job's `signal` aborts and the attempt fails. @default undefined (no timeout) */
  timeoutMs?: number;
  /** Where the server keeps jobs. @default "file" */
  storage?: "file" | "memory";
  /** Stream replicas in a cluster (1, 3 or 5). @default 1 */
  replicas?: number;
  /** Bound on stored jobs; a publish beyond it fails with `QueueFullError`. @default -1 (unbounded) */
  maxMessages?: number;
  /** Bound on stored bytes; a publish beyond it fails with `QueueFullError`. @default -1 (unbounded) */
  maxBytes?: number;
  /** How long a job `id` is remembered to drop duplicate publishes. @default 120000 */
  duplicateWindowMs?: number;
  /** Dead-letter stream bounds. @default { maxMessages: -1, maxAgeMs: 0 } (keep everything) */
  deadLetter?: { maxMessages?: number; maxAgeMs?: number };
}

/** A validated queue definition: what `provisionQueue`, `Producer`, `Worker` and `DeadLetterQueue` take. */
export interface Queue<In = unknown, Out = In> {
  readonly name: string;
  readonly schema: ZodType<Out, In> | undefined;
  readonly maxAttempts: number;
  readonly backoff: ResolvedBackoff;
  readonly ackWaitMs: number;
  readonly maxAckPending: number;
  readonly timeoutMs: number | undefined;
  readonly storage: "file" | "memory";
  readonly replicas: number;
  readonly maxMessages: number;
  readonly maxBytes: number;
  readonly duplicateWindowMs: number;
  readonly deadLetter: { readonly maxMessages: number; readonly maxAgeMs: number };
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
  /** Stream capturing the server's MAX_DELIVERIES advisories for the queue (crash loops). */
  readonly advisoryStream: string;
  /** Advisory subject captured by `advisoryStream`. */
  readonly advisorySubject: string;
  /** Durable consumer of the advisory stream. */
  readonly advisoryConsumer: string;
}

/** Type of the payload a producer publishes to `Q`. */
export type JobInput<Q> = Q extends Queue<infer In, unknown> ? In : never;
/** Type of the payload a handler receives from `Q`. */
export type JobData<Q> = Q extends Queue<unknown, infer Out> ? Out : never;

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function queueNames(name: string): QueueNames {
  const stream = `JETQ_${name}`;
  const consumer = "workers";
  return {
    stream,
    subject: `jetq.q.${name}`,
    consumer,
    dlqStream: `JETQ_${name}_DLQ`,
    dlqSubject: `jetq.dlq.${name}`,
    advisoryStream: `JETQ_${name}_ADV`,
    advisorySubject: `$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.${stream}.${consumer}`,
    advisoryConsumer: "dlq-mover",
  };
}

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
  const schema = options.schema;
  if (schema !== undefined && (typeof schema !== "object" || schema === null || typeof schema.safeParse !== "function")) {
    throw new ConfigError(`Expected \`schema\` to be a zod schema, got ${describe(schema)}`);
  }
  const storage = options.storage ?? "file";
  if (storage !== "file" && storage !== "memory") {
    throw new ConfigError(`Expected \`storage\` to be "file" or "memory", got ${describe(storage)}`);
  }
  const replicas = int("replicas", options.replicas ?? 1, 1, 5);
  const timeoutMs = options.timeoutMs === undefined ? undefined : int("timeoutMs", options.timeoutMs, 1, 2 ** 31 - 1);
  const dl = options.deadLetter ?? {};
  return Object.freeze({
    name,
    schema: schema as ZodType<S["_zod"]["output"], S["_zod"]["input"]> | undefined,
    maxAttempts: int("maxAttempts", options.maxAttempts ?? 5, 1, 10_000),
    backoff: resolveBackoff(options.backoff),
    ackWaitMs: int("ackWaitMs", options.ackWaitMs ?? 30_000, 100, 24 * 3600 * 1000),
    maxAckPending: int("maxAckPending", options.maxAckPending ?? 1000, 1, 1_000_000),
    timeoutMs,
    storage,
    replicas,
    maxMessages: limit("maxMessages", options.maxMessages ?? -1),
    maxBytes: limit("maxBytes", options.maxBytes ?? -1),
    duplicateWindowMs: int("duplicateWindowMs", options.duplicateWindowMs ?? 120_000, 100, 7 * 24 * 3600 * 1000),
    deadLetter: Object.freeze({
      maxMessages: limit("deadLetter.maxMessages", dl.maxMessages ?? -1),
      maxAgeMs: int("deadLetter.maxAgeMs", dl.maxAgeMs ?? 0, 0, Number.MAX_SAFE_INTEGER),
    }),
    names: Object.freeze(queueNames(name)),
  });
}

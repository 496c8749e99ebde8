import { ConfigError } from "../errors.ts";
import { describe } from "../queue/define.ts";
import type { TelemetryOptions } from "../telemetry/otel.ts";

/** Options of {@link Producer}. */
export interface ProducerOptions {
  /** Publishes sent but not yet confirmed by the server (PubAck) at once: the producer's bounded window. @default 1024 */
  maxInFlight?: number;
  /**
   * What `publish` does when the window is full: `"block"` waits for a free slot (up to
   * `blockTimeoutMs`, or until the call's `signal` aborts); `"reject"` throws
   * {@link QueueFullError} at once. @default "block"
   */
  overflow?: "block" | "reject";
  /** Longest wait for a free slot when `overflow` is `"block"`. @default 30000 */
  blockTimeoutMs?: number;
  /** Callers allowed to wait for a slot at once; beyond it `publish` throws {@link QueueFullError}. @default 4 × maxInFlight */
  maxBlocked?: number;
  /** How long to wait for the server's PubAck before failing with {@link TimeoutError}. @default 5000 */
  ackTimeoutMs?: number;
  /** Validate payloads against the queue's schema before sending. @default true */
  validate?: boolean;
  /**
   * Subject prefix of the inbox PubAcks come back on; set it (and the connection's `inboxPrefix`)
   * to narrow the producer's subscribe permission from `_INBOX.>` to `<prefix>.>`. @default "_INBOX"
   */
  inboxPrefix?: string;
  /**
   * OpenTelemetry spans and metrics: a PRODUCER span per publish (its context travels in the
   * job's headers) and the publish counters. `false` turns them off for this producer.
   * @default the global tracer and meter providers (no-ops until an SDK registers them)
   */
  telemetry?: TelemetryOptions | false;
}

/** Per-call options of {@link Producer.publish}. */
export interface PublishOptions {
  /**
   * Idempotency key (sent as `Nats-Msg-Id`). A second publish with the same id inside the
   * queue's `duplicateWindowMs` is not stored again and returns `duplicate: true`.
   * @default none: the job's id is `seq-<stream sequence>` (no deduplication)
   */
  id?: string;
  /**
   * Extra headers carried with the job. Names are printable ASCII without `:` and must not start
   * with `Jetq-` or `Nats-`; values are one line (no control characters but tab).
   */
  headers?: Readonly<Record<string, string>>;
  /** Aborts a publish still waiting for a window slot. */
  signal?: AbortSignal;
  /**
   * Runs the job no earlier than this many milliseconds after the server stored it (by the
   * server's clock). The job waits in the queue's held stream, on the server; its delay costs it
   * no attempt. 0 runs it at once. Needs a queue defined with `scheduling: true`.
   * Not with `runAt`. @default 0
   */
  delayMs?: number;
  /**
   * Runs the job no earlier than this time (a `Date` or epoch milliseconds), as the server's
   * clock tells it. A time not after now runs the job at once. Needs a queue defined with
   * `scheduling: true`. Not with `delayMs`. @default none (at once)
   */
  runAt?: Date | number;
  /**
   * The job's priority on a queue defined with `priorities`: 0 is the most urgent,
   * `priorities - 1` (the default) the least. An integer outside that range, or any priority on a
   * queue without levels, is a {@link ConfigError}. A delayed job (`delayMs`/`runAt`) runs at
   * its level when due. @default priorities - 1
   */
  priority?: number;
  /**
   * The job's group key on a queue defined with `group` limits: any non-empty string of at most
   * 256 characters (encoded for the server, so dots, spaces and any script are fine). Jobs of one
   * group share its `concurrency` and `rateLimit`. @default none (not limited by group)
   */
  group?: string;
}

/** Options of {@link Producer.publishMany}. */
export interface PublishManyOptions<T> {
  /** Derives each job's idempotency key. @default none (ids are `seq-<stream sequence>`) */
  id?: (item: T, index: number) => string;
  /** Aborts the remaining publishes. */
  signal?: AbortSignal;
  /** {@link PublishOptions.delayMs} of every item, or per item (`undefined`: at once). @default 0 */
  delayMs?: number | ((item: T, index: number) => number | undefined);
  /** {@link PublishOptions.runAt} of every item, or per item (`undefined`: at once). @default none */
  runAt?: Date | number | ((item: T, index: number) => Date | number | undefined);
  /** {@link PublishOptions.priority} of every item, or per item (`undefined`: the lowest level). @default priorities - 1 */
  priority?: number | ((item: T, index: number) => number | undefined);
  /** {@link PublishOptions.group} of every item, or per item (`undefined`: no group). @default none */
  group?: string | ((item: T, index: number) => string | undefined);
  /**
   * Items validated and encoded at once, before any of them is sent; a batch no longer than
   * this is all-or-nothing on validation. `Infinity` validates the whole batch first (the
   * server then idles while the client encodes). @default 1000
   */
  chunkSize?: number;
}

/** @internal {@link ProducerOptions} with every default filled in and every value checked. */
export interface ResolvedProducerOptions {
  readonly maxInFlight: number;
  readonly overflow: "block" | "reject";
  readonly blockTimeoutMs: number;
  readonly maxBlocked: number;
  readonly ackTimeoutMs: number;
  readonly validate: boolean;
  readonly inboxPrefix: string;
}

/** Items of a `publishMany` validated and encoded at once before any of them is sent. */
export const DEFAULT_CHUNK = 1000;

function ms(name: string, v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > 2 ** 31 - 1) {
    throw new ConfigError(`Expected \`${name}\` to be a positive integer number of milliseconds, got ${describe(v)}`);
  }
  return v;
}

/**
 * @internal The defaults, in one place, and the checks: a {@link ConfigError} naming the option,
 * the expectation and the value.
 */
export function resolveProducerOptions(options: ProducerOptions): ResolvedProducerOptions {
  const maxInFlight = options.maxInFlight ?? 1024;
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1 || maxInFlight > 1_000_000) {
    throw new ConfigError(`Expected \`maxInFlight\` to be an integer from 1 to 1000000, got ${describe(maxInFlight)}`);
  }
  const overflow = options.overflow ?? "block";
  if (overflow !== "block" && overflow !== "reject") {
    throw new ConfigError(`Expected \`overflow\` to be "block" or "reject", got ${describe(overflow)}`);
  }
  const blockTimeoutMs = ms("blockTimeoutMs", options.blockTimeoutMs ?? 30_000);
  const ackTimeoutMs = ms("ackTimeoutMs", options.ackTimeoutMs ?? 5_000);
  const maxBlocked = options.maxBlocked ?? maxInFlight * 4;
  if (!Number.isInteger(maxBlocked) || maxBlocked < 0) {
    throw new ConfigError(`Expected \`maxBlocked\` to be a non-negative integer, got ${describe(maxBlocked)}`);
  }
  const inboxPrefix = options.inboxPrefix ?? "_INBOX";
  if (typeof inboxPrefix !== "string" || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(inboxPrefix)) {
    throw new ConfigError(`Expected \`inboxPrefix\` to be a subject without wildcards, got ${describe(inboxPrefix)}`);
  }
  return { maxInFlight, overflow, blockTimeoutMs, maxBlocked, ackTimeoutMs, validate: options.validate ?? true, inboxPrefix };
}

/** @internal `publishMany`'s `chunkSize`, checked. */
export function resolveChunkSize(chunkSize: number | undefined): number {
  const n = chunkSize ?? DEFAULT_CHUNK;
  if (n !== Infinity && (!Number.isInteger(n) || n < 1)) {
    throw new ConfigError(`Expected \`chunkSize\` to be a positive integer or Infinity, got ${describe(n)}`);
  }
  return n;
}

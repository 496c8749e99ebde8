/**
 * Every error jetq throws on purpose is one of these classes. Each has a
 * literal `name`, keeps the underlying error as `cause`, and says in its
 * message what the caller can do about it.
 *
 * @module
 */

/** Base class of every jetq error; `instanceof JetqError` catches them all. */
export class JetqError extends Error {
  /** The class's name, the same in every bundle and realm: test it instead of `instanceof` where copies of jetq may meet. */
  override name: string = "JetqError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** One problem found by schema validation, in a form that does not depend on zod's classes. */
export interface ValidationIssue {
  /** Path to the offending value, e.g. `["to"]`. */
  path: ReadonlyArray<PropertyKey>;
  /** Human-readable description of the problem. */
  message: string;
  /** Machine-readable zod issue code, e.g. `"invalid_type"`. */
  code: string;
}

/**
 * A job payload did not match the queue's schema (or was not JSON-encodable).
 * Thrown by `publish` before anything is sent; recorded as the reason when a
 * worker receives such a payload and dead-letters it.
 */
export class ValidationError extends JetqError {
  /** `"ValidationError"`, or `"JobTooLargeError"` for that subclass. */
  override name: "ValidationError" | "JobTooLargeError" = "ValidationError";
  /** The problems found, one per offending field. */
  readonly issues: readonly ValidationIssue[];
  constructor(message: string, issues: readonly ValidationIssue[], options?: { cause?: unknown }) {
    super(message, options);
    this.issues = issues;
  }
}

/**
 * The queue cannot take the job right now: either the stream reached its
 * `maxMessages`/`maxBytes` bound (the server refused it), or the producer's
 * window of unconfirmed publishes is full and `overflow` is `"reject"`, or a
 * blocked publish hit its deadline. Nothing was enqueued; the caller decides
 * whether to retry, shed or slow down.
 */
export class QueueFullError extends JetqError {
  /** Always `"QueueFullError"`. */
  override name = "QueueFullError" as const;
  /** Which bound was hit. */
  readonly reason: "stream_full" | "window_full" | "window_timeout";
  constructor(message: string, reason: QueueFullError["reason"], options?: { cause?: unknown }) {
    super(message, options);
    this.reason = reason;
  }
}

/**
 * Throw this from a handler when retrying cannot help (a malformed address, a
 * deleted account). The job goes straight to the dead-letter queue with this
 * error as its reason, whatever attempts are left.
 */
export class PermanentError extends JetqError {
  /** Always `"PermanentError"`. */
  override name = "PermanentError" as const;
}

/**
 * Throw this from a handler to retry after exactly `delayMs` instead of the queue's backoff (the
 * way an HTTP 429 says Retry-After). It still counts as a failed attempt: on the last attempt the
 * job is dead-lettered as with any failure.
 *
 * @example
 * ```ts
 * if (res.status === 429) throw new RetryError("rate limited", { delayMs: Number(res.headers.get("retry-after")) * 1000 });
 * ```
 */
export class RetryError extends JetqError {
  /** Always `"RetryError"`. */
  override name = "RetryError" as const;
  /** How long to wait before the next attempt, in milliseconds. */
  readonly delayMs: number;
  constructor(message: string, options: { delayMs: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    const d = options?.delayMs;
    if (typeof d !== "number" || !Number.isFinite(d) || d < 0) {
      throw new ConfigError(`Expected \`delayMs\` of RetryError to be a number of milliseconds >= 0, got ${String(d)}`);
    }
    this.delayMs = Math.min(Math.round(d), 7 * 24 * 3600 * 1000);
  }
}

/** An option passed to a jetq function is missing, of the wrong type, or out of range. */
export class ConfigError extends JetqError {
  /** Always `"ConfigError"`. */
  override name = "ConfigError" as const;
}

/**
 * `provisionQueue` found a stream or consumer whose configuration differs from
 * the queue definition. Nothing was changed or deleted.
 */
export class ProvisionConflictError extends JetqError {
  /** Always `"ProvisionConflictError"`. */
  override name = "ProvisionConflictError" as const;
  /** The differing fields, as `{ field, expected, actual }`. */
  readonly conflicts: ReadonlyArray<{ field: string; expected: unknown; actual: unknown }>;
  constructor(message: string, conflicts: ProvisionConflictError["conflicts"]) {
    super(message);
    this.conflicts = conflicts;
  }
}

/** The queue's stream or consumer does not exist; call `provisionQueue` first. */
export class QueueNotFoundError extends JetqError {
  /** Always `"QueueNotFoundError"`. */
  override name = "QueueNotFoundError" as const;
}

/**
 * A publish (or another request) got no answer within its deadline: the server
 * is unreachable, restarting, or overloaded. The job may or may not have been
 * stored; publish again with the same `id` to be safe.
 */
export class TimeoutError extends JetqError {
  /** Always `"TimeoutError"`. */
  override name = "TimeoutError" as const;
}

/** The connection is closed, draining, or the server cannot be reached. */
export class ConnectionError extends JetqError {
  /** Always `"ConnectionError"`. */
  override name = "ConnectionError" as const;
}

/** The NATS user lacks a permission jetq needs; the message names the subject. */
export class PermissionError extends JetqError {
  /** Always `"PermissionError"`. */
  override name = "PermissionError" as const;
}

/**
 * No dead letter has this sequence in the queue's dead-letter stream: it was replayed, removed
 * or purged already (perhaps by another operator), or the sequence is wrong.
 */
export class DeadLetterNotFoundError extends JetqError {
  /** Always `"DeadLetterNotFoundError"`. */
  override name = "DeadLetterNotFoundError" as const;
  /** The dead-letter sequence asked for. */
  readonly seq: number;
  constructor(message: string, seq: number, options?: { cause?: unknown }) {
    super(message, options);
    this.seq = seq;
  }
}

/** A handler ran longer than the queue's `timeoutMs`; counts as a failed attempt. */
export class JobTimeoutError extends JetqError {
  /** Always `"JobTimeoutError"`. */
  override name = "JobTimeoutError" as const;
}

/** The server refused the credentials (user/password, token, creds file, TLS client certificate). */
export class AuthenticationError extends JetqError {
  /** Always `"AuthenticationError"`. */
  override name = "AuthenticationError" as const;
}

/**
 * An item of a `publishMany` batch that was not sent because another item (`invalidIndex`)
 * failed validation; the cause is that item's error. Nothing of it was enqueued, so it is safe
 * to publish again once the invalid item is fixed or left out.
 */
export class NotSentError extends JetqError {
  /** Always `"NotSentError"`. */
  override name = "NotSentError" as const;
  /** Index in the batch of the item whose validation stopped the batch. */
  readonly invalidIndex: number;
  constructor(message: string, invalidIndex: number, cause: Error) {
    super(message, { cause });
    this.invalidIndex = invalidIndex;
  }
}

/**
 * A job is larger than the queue can ever store: above the server's `max_payload`, or not
 * below the queue's `maxBytes`. Thrown by `publish` before anything is sent. Unlike
 * {@link QueueFullError} waiting does not help: make the job smaller (store large data
 * elsewhere and send a reference) or raise the limit it names.
 */
export class JobTooLargeError extends ValidationError {
  /** Always `"JobTooLargeError"`. */
  override name = "JobTooLargeError" as const;
  /** The job's size in bytes (its encoded payload). */
  readonly size: number;
  /** The limit it exceeds, in bytes. */
  readonly limit: number;
  /** Which limit: the server's `max_payload` or the queue's `maxBytes`. */
  readonly limitName: "max_payload" | "maxBytes";
  constructor(message: string, size: number, limit: number, limitName: JobTooLargeError["limitName"]) {
    super(message, [{ path: [], message: `${size} bytes exceeds ${limitName} (${limit})`, code: "too_big" }]);
    this.size = size;
    this.limit = limit;
    this.limitName = limitName;
  }
}

/**
 * A job you waited for (`Jobs.wait`, `receipt.result()`) will not complete: it was moved to the
 * dead-letter queue. `reason` says why and `error` is its last failure; inspect or replay it with
 * `DeadLetterQueue` (or `jetq dlq`).
 */
export class JobFailedError extends JetqError {
  /** Always `"JobFailedError"`. */
  override name = "JobFailedError" as const;
  /** The job's id. */
  readonly jobId: string;
  /** Why it was dead-lettered: `max_attempts`, `permanent`, `decode`, `validation` or `crashed`. */
  readonly reason: string;
  /** Its last failure, as stored: the error's name and message. */
  readonly error: { readonly name: string; readonly message: string };
  /** The attempts it used. */
  readonly attempt: number;
  constructor(message: string, jobId: string, reason: string, error: { name: string; message: string }, attempt: number) {
    super(message);
    this.jobId = jobId;
    this.reason = reason;
    this.error = error;
    this.attempt = attempt;
  }
}

/** @internal Header names jetq reads and writes. */
export const HDR = {
  /** NATS idempotency key; set when the caller gave an id. */
  msgId: "Nats-Msg-Id",
  /** Job id of a job published without an id (`seq-<n>`), kept on its dead letter and on a replay. */
  id: "Jetq-Id",
  /** Why a job was dead-lettered (see DeadLetterReason). */
  reason: "Jetq-Reason",
  error: "Jetq-Error",
  errorName: "Jetq-Error-Name",
  /** The last error's stack, JSON-escaped onto one line and bounded (see dlq/route.ts). */
  errorStack: "Jetq-Error-Stack",
  attempts: "Jetq-Attempts",
  /** Crashes counted while the job ran alone (reason `crashed`). */
  crashes: "Jetq-Crashes",
  /** The worker that dead-lettered the job. */
  worker: "Jetq-Worker",
  failedAt: "Jetq-Failed-At",
  publishedAt: "Jetq-Published-At",
  sourceStream: "Jetq-Source-Stream",
  sourceSeq: "Jetq-Source-Seq",
  /** Set on a replayed job: the dead-letter sequence it came from. */
  replayOf: "Jetq-Replay-Of",
} as const;

/** @internal Headers a dead letter adds; stripped again on replay. */
export const DLQ_HEADERS: readonly string[] = [
  HDR.reason,
  HDR.error,
  HDR.errorName,
  HDR.errorStack,
  HDR.attempts,
  HDR.crashes,
  HDR.worker,
  HDR.failedAt,
  HDR.publishedAt,
  HDR.sourceStream,
  HDR.sourceSeq,
];

/** @internal Makes any text safe for a header value: one line, bounded length. */
export function headerValue(s: string, max = 1024): string {
  // eslint-disable-next-line no-control-regex
  const clean = s.replace(/[\x00-\x1f\x7f]+/g, " ").trim();
  return clean.length > max ? `${clean.slice(0, max - 1)}…` : clean;
}

/**
 * @internal The id of a job published without one: `seq-<stream sequence>`.
 *
 * Written with `toFixed(0)`, not a template or `String()`: those go through V8's number-to-string
 * cache, an old-generation table that keeps the last several thousand strings it made alive. One
 * new id per job kept every id made since the last scavenge alive through it, so each scavenge
 * promoted them and V8 grew a draining worker's young generation to its maximum (peak RSS 175
 * against 115 MiB over a 1,000,000-job drain). `toFixed` makes the same digits for any stream
 * sequence (integers below 2^53) without touching the cache.
 */
export function seqJobId(seq: number): string {
  return `seq-${seq.toFixed(0)}`;
}

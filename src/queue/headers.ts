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
  attempts: "Jetq-Attempts",
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
  HDR.attempts,
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

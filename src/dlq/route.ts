import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import type { JetStreamClient } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HDR, headerValue, seqJobId } from "../queue/headers.ts";
import { PRIORITY_HEADER } from "../flow/priority.ts";

/** Why a job was dead-lettered. */
export type DeadLetterReason =
  /** The handler failed on the last allowed attempt. */
  | "max_attempts"
  /** The handler threw a PermanentError. */
  | "permanent"
  /** The payload is not valid UTF-8 JSON. */
  | "decode"
  /** The payload failed the queue's schema. */
  | "validation"
  /** The job crashed (or stalled) its process `maxCrashes` times while it ran alone. */
  | "crashed"
  /** jetq 0.1 only: the server gave up redelivering. Dead letters written by 0.1 keep it. */
  | "max_deliveries";

/** @internal What is needed to dead-letter one job. */
export interface DeadLetterInput {
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  sourceSeq: number;
  /** The work stream's incarnation (its creation time, ms): keeps msg ids apart across a re-created stream. */
  incarnation: number;
  attempts: number;
  /** Crashes counted while the job ran alone. */
  crashes?: number;
  /** The priority level the job was delivered from (its ack subject says); without it, the job's own `Jetq-Priority` header counts. */
  level?: number | undefined;
  /** The worker that wrote the dead letter (host:pid/id). */
  worker?: string;
  publishedAtMs: number | undefined;
  reason: DeadLetterReason;
  /** The last error; its `stack` (an `Error`'s own) is kept too, cut to {@link MAX_STACK_CHARS}. */
  error: { name: string; message: string; stack?: string | undefined };
}

/** @internal Most characters of an error's stack kept in a dead letter (header `Jetq-Error-Stack`). */
export const MAX_STACK_CHARS = 4000;

/**
 * @internal A stack as one header line: JSON string escapes (newlines become `\n`), bounded.
 * Read back with {@link decodeStack}.
 */
export function encodeStack(stack: string): string {
  const cut = stack.length > MAX_STACK_CHARS ? `${stack.slice(0, MAX_STACK_CHARS - 1)}…` : stack;
  // eslint-disable-next-line no-control-regex
  return JSON.stringify(cut).slice(1, -1).replace(/\x7f/g, "\\u007f");
}

/** @internal The stack {@link encodeStack} wrote, or `undefined` for a value that is not one. */
export function decodeStack(v: string | undefined): string | undefined {
  if (!v) return undefined;
  try {
    const s = JSON.parse(`"${v}"`) as unknown;
    return typeof s === "string" ? s : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @internal The msg id of a dead letter: a crash between copy and removal cannot create a second one.
 * It names the stream's incarnation: a stream deleted and created again restarts its sequences at
 * 1, and a new job must not pass for the duplicate of an old dead letter (and vanish).
 */
export function deadLetterMsgId(stream: string, incarnation: number, seq: number): string {
  return `jetq-dlq:${stream}:${incarnation.toString(36)}:${seq}`;
}

/** @internal The job id recorded in a message's headers, or a stable fallback for foreign messages. */
export function jobIdOf(h: MsgHdrs | undefined, seq: number): string {
  return h?.get(HDR.id) || h?.get(HDR.msgId) || seqJobId(seq);
}

/** Bytes a header block takes on the wire: `NATS/1.0\r\n`, `Key: value\r\n` each, a blank line. */
function headerBytes(entries: ReadonlyArray<readonly [string, string]>): number {
  let n = 12;
  for (const [k, v] of entries) n += Buffer.byteLength(k) + Buffer.byteLength(v) + 4;
  return n;
}

/**
 * @internal Copies a job to the dead-letter stream and waits for the server's
 * confirmation. The caller removes the original only after this resolves.
 *
 * The copy carries more headers than the job did, so a job near the server's `max_payload`
 * would not fit: headers are added in order of importance while they fit (the error message
 * shrinks to the room left), and only if even the essential ones cannot fit is the payload cut,
 * recorded in `Jetq-Truncated` with its original size. A job must never be stuck because its
 * dead letter is too large.
 */
export async function copyToDeadLetters(
  js: JetStreamClient,
  queue: Queue<unknown, unknown>,
  input: DeadLetterInput,
  maxPayload: number | undefined,
): Promise<void> {
  const n = queue.names;
  const msgID = deadLetterMsgId(n.stream, input.incarnation, input.sourceSeq);
  const essential: Array<[string, string]> = [
    [HDR.msgId, msgID],
    [HDR.reason, input.reason],
    [HDR.sourceSeq, String(input.sourceSeq)],
    [HDR.attempts, String(input.attempts)],
    ...(input.crashes ? [[HDR.crashes, String(input.crashes)] as [string, string]] : []),
    // The error always comes along, if only its first words; the full text replaces it below.
    [HDR.error, headerValue(input.error.message || "(no message)", 40)],
  ];
  const optional: Array<[string, string]> = [
    [HDR.id, headerValue(jobIdOf(input.headers, input.sourceSeq), 256)],
    [HDR.errorName, headerValue(input.error.name || "Error", 128)],
    [HDR.error, headerValue(input.error.message || "(no message)")],
    [HDR.failedAt, new Date().toISOString()],
    [HDR.sourceStream, n.stream],
  ];
  if (input.worker) optional.push([HDR.worker, headerValue(input.worker, 256)]);
  if (input.publishedAtMs !== undefined) optional.push([HDR.publishedAt, new Date(input.publishedAtMs).toISOString()]);
  const original = input.headers?.get(HDR.msgId);
  if (original) optional.push(["Jetq-Original-Msg-Id", headerValue(original, 256)]);
  // A prioritised queue's level, so a replay goes back to it (checked against the range on replay).
  const level = input.level !== undefined ? String(input.level) : input.headers?.get(PRIORITY_HEADER);
  if (level) optional.push([PRIORITY_HEADER, headerValue(level, 8)]);
  // The stack comes last: the first thing dropped when room is short.
  const stack = typeof input.error.stack === "string" ? input.error.stack : undefined;
  const stackEntry: [string, string] | undefined = stack ? [HDR.errorStack, encodeStack(stack)] : undefined;
  if (input.headers) {
    for (const [k, values] of input.headers) {
      // Our own bookkeeping headers are rewritten above; a forged one on the job must not survive.
      if (/^jetq-/i.test(k) || /^nats-/i.test(k)) continue;
      for (const v of values) optional.push([k, v]);
    }
  }
  if (stackEntry) optional.push(stackEntry);

  let data = input.data;
  const kept: Array<[string, string]> = [...essential];
  // A little slack under the server's limit for the protocol's own framing.
  const limit = maxPayload === undefined ? Number.POSITIVE_INFINITY : maxPayload - 16;
  if (data.length + headerBytes(kept) > limit) {
    kept.push(["Jetq-Truncated", String(data.length)]);
    data = data.subarray(0, Math.max(0, limit - headerBytes(kept)));
  } else {
    const shortError = kept.findIndex(([k]) => k === HDR.error);
    for (const entry of optional) {
      let room = limit - data.length - headerBytes(kept);
      const cost = headerBytes([entry]) - 12;
      if (entry[0] === HDR.error) {
        room += headerBytes([kept[shortError]!]) - 12;
        // A UTF-8 character takes at most 4 bytes.
        const chars = cost <= room ? Infinity : Math.floor((room - (cost - Buffer.byteLength(entry[1]))) / 4);
        if (chars > 40) kept[shortError] = chars === Infinity ? entry : [HDR.error, headerValue(entry[1], chars)];
      } else if (cost <= room) kept.push(entry);
    }
  }
  const h = natsHeaders();
  for (const [k, v] of kept) if (k !== HDR.msgId) h.append(k, v);
  try {
    await js.publish(n.dlqSubject, data, { headers: h, msgID, timeout: 10_000 });
  } catch (err) {
    throw mapNatsError(err, `dead-letter job ${input.sourceSeq} of queue "${queue.name}"`);
  }
}

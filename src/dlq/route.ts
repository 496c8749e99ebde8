import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import type { JetStreamClient } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HDR, headerValue } from "../queue/headers.ts";

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
  /** The server gave up redelivering (the job crashed or stalled its worker on every attempt). */
  | "max_deliveries";

/** @internal What is needed to dead-letter one job. */
export interface DeadLetterInput {
  data: Uint8Array;
  headers: MsgHdrs | undefined;
  sourceSeq: number;
  attempts: number;
  publishedAtMs: number | undefined;
  reason: DeadLetterReason;
  error: { name: string; message: string };
}

/** @internal The msg id of a dead letter: a crash between copy and removal cannot create a second one. */
export function deadLetterMsgId(stream: string, seq: number): string {
  return `jetq-dlq:${stream}:${seq}`;
}

/** @internal The job id recorded in a message's headers, or a stable fallback for foreign messages. */
export function jobIdOf(h: MsgHdrs | undefined, seq: number): string {
  return h?.get(HDR.id) || h?.get(HDR.msgId) || `seq-${seq}`;
}

/**
 * @internal Copies a job to the dead-letter stream and waits for the server's
 * confirmation. The caller removes the original only after this resolves.
 */
export async function copyToDeadLetters(js: JetStreamClient, queue: Queue<unknown, unknown>, input: DeadLetterInput): Promise<void> {
  const n = queue.names;
  const h = natsHeaders();
  if (input.headers) {
    for (const [k, values] of input.headers) {
      // Our own bookkeeping headers are rewritten below; a forged one on the job must not survive.
      if (/^jetq-/i.test(k) || /^nats-/i.test(k)) continue;
      for (const v of values) h.append(k, v);
    }
  }
  h.set(HDR.id, headerValue(jobIdOf(input.headers, input.sourceSeq), 256));
  const original = input.headers?.get(HDR.msgId);
  if (original) h.set("Jetq-Original-Msg-Id", headerValue(original, 256));
  h.set(HDR.reason, input.reason);
  h.set(HDR.errorName, headerValue(input.error.name || "Error", 128));
  h.set(HDR.error, headerValue(input.error.message || "(no message)"));
  h.set(HDR.attempts, String(input.attempts));
  h.set(HDR.failedAt, new Date().toISOString());
  if (input.publishedAtMs !== undefined) h.set(HDR.publishedAt, new Date(input.publishedAtMs).toISOString());
  h.set(HDR.sourceStream, n.stream);
  h.set(HDR.sourceSeq, String(input.sourceSeq));
  try {
    await js.publish(n.dlqSubject, input.data, {
      headers: h,
      msgID: deadLetterMsgId(n.stream, input.sourceSeq),
      timeout: 10_000,
    });
  } catch (err) {
    throw mapNatsError(err, `dead-letter job ${input.sourceSeq} of queue "${queue.name}"`);
  }
}

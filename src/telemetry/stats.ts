import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";

/** Server-side figures of one queue: one source for the CLI, dashboards and autoscalers. */
export interface QueueStats {
  /** The queue's name. */
  queue: string;
  /** Jobs waiting to be delivered (the consumer's `num_pending`). */
  pending: number;
  /**
   * Jobs delivered and not yet acked (`num_ack_pending`): running in handlers, but also jobs
   * waiting out a retry delay (`nak(delay)`) and jobs of a dead worker until `ackWaitMs` passes.
   * Bounded by `maxAckPending`.
   */
  inFlight: number;
  /** Jobs delivered more than once and still un-acked (`num_redelivered`). */
  redelivered: number;
  /** Jobs stored in the queue's stream (pending + in flight + given-up jobs not yet moved). */
  stored: number;
  /** Bytes stored in the queue's stream. */
  bytes: number;
  /** Dead letters stored. */
  deadLetters: number;
  /** Pull requests waiting on the server: a rough count of idle worker capacity. */
  waitingPulls: number;
  /** The credit window: `maxAckPending` of the consumer. */
  maxAckPending: number;
  /** The stream's `maxMessages` bound, or -1. */
  maxMessages: number;
}

/**
 * Reads a queue's figures from the server (three API requests).
 * @throws {@link QueueNotFoundError} the queue was not provisioned.
 */
export async function queueStats(nc: NatsConnection, queue: Queue<unknown, unknown>): Promise<QueueStats> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
  } catch (err) {
    throw mapNatsError(err, `read stats of queue "${queue.name}"`);
  }
  return readQueueStats(jsm, queue);
}

/** @internal {@link queueStats} on a manager the caller keeps (no API check per read). */
export async function readQueueStats(jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<QueueStats> {
  const n = queue.names;
  try {
    const [si, ci, di] = await Promise.all([
      jsm.streams.info(n.stream),
      jsm.consumers.info(n.stream, n.consumer),
      jsm.streams.info(n.dlqStream),
    ]);
    return {
      queue: queue.name,
      pending: ci.num_pending,
      inFlight: ci.num_ack_pending,
      redelivered: ci.num_redelivered,
      stored: si.state.messages,
      bytes: si.state.bytes,
      deadLetters: di.state.messages,
      waitingPulls: ci.num_waiting,
      maxAckPending: ci.config.max_ack_pending ?? -1,
      maxMessages: si.config.max_msgs,
    };
  } catch (err) {
    throw mapNatsError(err, `read stats of queue "${queue.name}"`);
  }
}

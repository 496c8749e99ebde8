import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import { jsOptions } from "../transport/api.ts";
import type { Queue } from "../queue/define.ts";
import { readPause } from "../flow/pause.ts";
import { nextDueMs } from "../schedule/mover.ts";
import { levelConsumer } from "../flow/priority.ts";
import { busiestGroups, groupWaiting } from "../flow/group.ts";
import { rateNames } from "../flow/rate.ts";

/** Server-side figures of one queue: one source for the CLI, dashboards and autoscalers. */
export interface QueueStats {
  /** The queue's name. */
  queue: string;
  /** Jobs waiting to be delivered (the consumer's `num_pending`; of every level's consumer together for a queue with `priorities`). */
  pending: number;
  /**
   * A queue with `priorities`: jobs waiting per level, index 0 the most urgent (one more request
   * per extra level). Absent for a single-level queue.
   */
  priorityPending?: number[];
  /**
   * A queue with `group: { concurrency }`: the groups with the most jobs running now (each holds
   * a concurrency token), busiest first, at most 10 (one more request). Absent otherwise.
   */
  busiestGroups?: Array<{ group: string; running: number }>;
  /**
   * A queue with a `rateLimit`: the tokens in the current window against the limit (one more
   * request), and `waiting`, the jobs held back by it: every waiting job while the window is
   * full, else 0. Absent otherwise.
   */
  rateWindow?: { used: number; max: number; waiting: number };
  /**
   * A queue with `group` limits: jobs waiting on a group limit across the fleet, that is jobs a
   * worker handed back because their group was at its concurrency or rate limit and that have
   * not started since. A job counts once however often it was handed back, and drops out when it
   * starts or, at the latest, a while after its last hand-back (its longest deferral plus 5 s, so
   * a job that was dead-lettered or deleted meanwhile). Jobs of a full group not yet delivered to
   * any worker are not counted: they are in `pending`. Read from the group wait stream
   * `JETQ_<q>_GWAIT` (one more request); absent for a queue provisioned before that stream
   * existed (provision it again with `update: true`) or without group limits.
   */
  groupWaiting?: number;
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
  /** Delayed jobs held until they are due; only for a queue defined with `scheduling: true` (one more request). */
  delayed?: number;
  /**
   * When the earliest delayed job is due (server clock, ms since the epoch); only for a queue
   * defined with `scheduling: true` holding from 1 to 256 delayed jobs (read one request per held
   * job); `undefined` when it holds none or more than 256.
   */
  nextDueMs?: number;
  /** Whether the queue is paused ({@link pauseQueue}): its workers start no jobs. */
  paused: boolean;
  /** When the pause ends by itself (ms since the epoch); `undefined` for an open-ended pause or none. */
  pausedUntilMs: number | undefined;
}

/**
 * Reads a queue's figures from the server (four API requests).
 * @throws {@link QueueNotFoundError} the queue was not provisioned.
 */
export async function queueStats(nc: NatsConnection, queue: Queue<unknown, unknown>): Promise<QueueStats> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, jsOptions(queue));
  } catch (err) {
    throw mapNatsError(err, `read stats of queue "${queue.name}"`);
  }
  return readQueueStats(jsm, queue);
}

/**
 * @internal A queue's cumulative counters at one instant, read with its {@link QueueStats}
 * (no extra request): rates are the differences of two of them.
 */
export interface QueueTotals {
  /** When they were read (ms since the epoch). */
  t: number;
  /** Jobs ever stored in the queue's stream (its last sequence). */
  published: number;
  /** Dead letters ever stored (the dead-letter stream's last sequence). */
  deadLettered: number;
  /** Jobs stored now. */
  stored: number;
}

/** @internal Per-second rates of a queue over an interval. */
export interface QueueRates {
  /** Jobs published. */
  published: number;
  /** Jobs acked by a worker. */
  completed: number;
  /** Jobs moved to the dead-letter stream. */
  failed: number;
}

/**
 * @internal The rates between two readings: the one formula the CLI and the dashboard share.
 * A work-queue stream loses a job either by an ack (completed) or by its move to the dead-letter
 * stream (failed), so `completed = published - Δstored - deadLettered`. The figures come from
 * requests that are not atomic, so an interval can be off by a job or two; negatives (a
 * recreated stream, a purge) are clamped to zero rather than shown.
 */
export function ratesBetween(a: QueueTotals, b: QueueTotals): QueueRates {
  const dt = (b.t - a.t) / 1000;
  if (!(dt > 0)) return { published: 0, completed: 0, failed: 0 };
  const published = Math.max(0, b.published - a.published);
  const failed = Math.max(0, b.deadLettered - a.deadLettered);
  const removed = published - (b.stored - a.stored);
  const completed = Math.max(0, removed - failed);
  return { published: published / dt, completed: completed / dt, failed: failed / dt };
}

/** @internal {@link queueStats} on a manager the caller keeps (no API check per read). */
export async function readQueueStats(jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<QueueStats> {
  return (await readQueueSample(jsm, queue)).stats;
}

/** @internal {@link readQueueStats} with the totals that rates are computed from (the same four requests). */
export async function readQueueSample(jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<{ stats: QueueStats; totals: QueueTotals }> {
  const n = queue.names;
  try {
    const [si, ci, di, pause] = await Promise.all([
      jsm.streams.info(n.stream),
      jsm.consumers.info(n.stream, n.consumer),
      jsm.streams.info(n.dlqStream),
      readPause(jsm, queue),
    ]);
    const stats: QueueStats = {
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
      paused: pause.paused,
      pausedUntilMs: pause.untilMs,
    };
    if (queue.priorities) {
      // Every level's consumer: waiting and un-acked jobs add up; index = level.
      const levels = await Promise.all(Array.from({ length: queue.priorities - 1 }, (_, l) => jsm.consumers.info(n.stream, levelConsumer(queue, l))));
      stats.priorityPending = [...levels.map((c) => c.num_pending), ci.num_pending];
      for (const c of levels) {
        stats.pending += c.num_pending;
        stats.inFlight += c.num_ack_pending;
        stats.redelivered += c.num_redelivered;
        stats.waitingPulls += c.num_waiting;
      }
    }
    if (queue.rateLimit) {
      const used = (await jsm.streams.info(rateNames(queue).stream)).state.messages;
      stats.rateWindow = { used, max: queue.rateLimit.max, waiting: used >= queue.rateLimit.max ? stats.pending : 0 };
    }
    if (queue.group?.concurrency !== undefined) stats.busiestGroups = await busiestGroups(jsm, queue);
    if (queue.group) {
      const waiting = await groupWaiting(jsm, queue);
      if (waiting !== undefined) stats.groupWaiting = waiting;
    }
    if (queue.scheduling) {
      const held = (await jsm.streams.info(n.heldStream)).state;
      stats.delayed = held.messages;
      const next = await nextDueMs(jsm, queue, held);
      if (next !== undefined) stats.nextDueMs = next;
    }
    return { stats, totals: { t: Date.now(), published: si.state.last_seq, deadLettered: di.state.last_seq, stored: si.state.messages } };
  } catch (err) {
    throw mapNatsError(err, `read stats of queue "${queue.name}"`);
  }
}

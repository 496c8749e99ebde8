import { AckPolicy, type ConsumerConfig, DeliverPolicy } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { describe, type Queue } from "../queue/define.ts";

/**
 * @internal Headers of a delayed job while the held stream keeps it. Exactly one is set: a delay
 * counts from the moment the server stored the job (its own clock), a run-at time is absolute.
 */
export const HELD = {
  /** Milliseconds after the held message's server timestamp. */
  delay: "Jetq-Delay",
  /** Epoch milliseconds; also set on the job the mover publishes to the queue (its due time). */
  due: "Jetq-Due",
} as const;

/** Latest run-at time accepted: year 9999, far beyond any sane schedule, still a valid Date. */
const MAX_EPOCH_MS = 253_402_300_799_000;

/**
 * @internal The id of a delayed job published without one: `delayed-<held stream sequence>`
 * (not `seq-…`: the sequence is the held stream's, and the job gets another one in the queue).
 */
export function heldJobId(seq: number): string {
  return `delayed-${seq.toFixed(0)}`;
}

/** @internal When a job is to run: not held (`undefined`), a delay after storage, or an absolute time. */
export type Due = undefined | { delayMs: number } | { runAt: number };

/**
 * @internal Checks `delayMs` / `runAt` of one publish. A delay of 0 or a run-at time not after
 * `now` means "at once": the job goes straight to the queue. Both at once is a mistake.
 * @throws {@link ConfigError} naming the option and the value.
 */
export function resolveDue(delayMs: unknown, runAt: unknown, now: number, label = ""): Due {
  if (delayMs !== undefined && runAt !== undefined) {
    throw new ConfigError(`Expected either \`delayMs\` or \`runAt\`${label}, not both (got delayMs ${describe(delayMs)} and runAt ${describe(runAt)})`);
  }
  if (delayMs !== undefined) {
    if (typeof delayMs !== "number" || !Number.isInteger(delayMs) || delayMs < 0 || delayMs > MAX_EPOCH_MS) {
      throw new ConfigError(`Expected \`delayMs\`${label} to be a non-negative integer number of milliseconds, got ${describe(delayMs)}`);
    }
    return delayMs === 0 ? undefined : { delayMs };
  }
  if (runAt !== undefined) {
    const t = runAt instanceof Date ? runAt.getTime() : runAt;
    if (typeof t !== "number" || !Number.isFinite(t) || t < 0 || t > MAX_EPOCH_MS) {
      throw new ConfigError(`Expected \`runAt\`${label} to be a valid Date or epoch milliseconds, got ${describe(runAt instanceof Date ? String(runAt) : runAt)}`);
    }
    const ms = Math.ceil(t);
    return ms <= now ? undefined : { runAt: ms };
  }
  return undefined;
}

/**
 * @internal How long the server waits for a mover's answer to a held job before handing it to
 * another mover. A mover answers at once (a nak with the remaining delay) or after one publish
 * (the move), so this only matters when a mover dies or the server restarts: then held jobs due
 * meanwhile run up to this late. Half of the shortest duplicate window a delayed queue may have,
 * so a move repeated after a crash is always dropped as a duplicate.
 */
export const MOVER_ACK_WAIT_MS = 5_000;

/** @internal The held stream's consumer, shared by every mover of the queue. */
export function moverConfig(q: Queue<unknown, unknown>): Partial<ConsumerConfig> {
  return {
    durable_name: q.names.heldConsumer,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: MOVER_ACK_WAIT_MS * 1_000_000,
    max_deliver: -1,
    // Unlimited: every held job waits as an un-acked delivery (nak'ed with its remaining delay).
    // A bound here would stop the server from handing out jobs published later but due sooner.
    max_ack_pending: -1,
    description: "jetq mover: moves delayed jobs into the queue when they are due",
  };
}

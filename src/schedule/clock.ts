import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { Queue } from "../queue/define.ts";

/** Local monotonic time in epoch milliseconds: immune to wall-clock steps. */
const mono = (): number => performance.timeOrigin + performance.now();

/**
 * @internal A lower bound of the server's clock, for decisions that must never come early by the
 * server's time (a delayed job's move, a schedule's tick).
 *
 * Server timestamps are read from messages: a probe written to the queue's ledger (one subject,
 * replaced each time) and every held job a mover receives. Each was stored before it reached
 * this process, so `timestamp − local monotonic time on arrival` is a lower bound of the clocks'
 * offset; `now()` adds the local monotonic time elapsed since. Being behind makes work late by
 * that much, never early. The probe is repeated (the monotonic clock may drift from the server's).
 */
export class ServerClock {
  /** Lower bound of (server clock − local monotonic clock), ms; -Infinity until one is seen. */
  #offset = -Infinity;
  #calibrated = false;

  /** Whether a probe has given a tight bound (until then callers re-check often). */
  get calibrated(): boolean {
    return this.#calibrated;
  }

  /** A server time `serverMs` was seen just now (the message carrying it was stored before). */
  saw(serverMs: number): void {
    const o = serverMs - mono();
    if (o > this.#offset) this.#offset = o;
  }

  /** A lower bound of the server's time now, in epoch ms; `-Infinity` before any timestamp was seen. */
  now(): number {
    return mono() + this.#offset;
  }

  /** Reads the server's clock through a probe message in the queue's ledger stream. */
  async probe(js: JetStreamClient, jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<void> {
    const n = queue.names;
    const ack = await js.publish(`${n.ledgerSubject}.clock`, new Uint8Array(0), { timeout: 5_000 });
    const local = mono();
    const sm = await jsm.streams.getMessage(n.ledgerStream, { seq: ack.seq });
    if (!sm) return; // replaced by another process's probe meanwhile: the next one will do
    // A fresh bound each time, not the max of all: the monotonic clock may have drifted.
    this.#offset = Date.parse(sm.timestamp) - local;
    this.#calibrated = true;
  }
}

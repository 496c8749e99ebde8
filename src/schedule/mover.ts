import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HDR } from "../queue/headers.ts";
import { jsOptions } from "../transport/api.ts";
import { ServerClock } from "./clock.ts";
import { HELD, heldJobId } from "./held.ts";

/** What a mover reports to its owner (a worker, or `jetq schedules run`). */
export interface MoverHooks {
  /** Something failed outside any job (a move, a clock probe); the mover keeps going. */
  error(err: Error): void;
  /** A held job was moved into the queue; `latenessMs` is how long after its due time (server clock). */
  moved?(latenessMs: number): void;
}

/** Held jobs handed to one mover at once (its pull window): bounds its memory whatever the backlog. */
const WINDOW = 256;
/** Moves (publish, PubAck, ack) in flight at once. */
const MAX_MOVING = 64;
/** Longest single wait asked of the server; a longer delay is re-asked when it ends (keeps nak delays small numbers). */
const MAX_NAK_MS = 24 * 3600 * 1000;
/** Until the server's clock is known, held jobs are looked at again at least this often. */
const UNCALIBRATED_NAK_MS = 1_000;
/** How often the server's clock is read again (the local monotonic clock may drift from it). */
const PROBE_EVERY_MS = 60_000;
/** Headers of a held job that are not carried to the job in the queue. */
const DROP = new Set([HELD.delay, HELD.due, HDR.msgId].map((h) => h.toLowerCase()));


/**
 * @internal Moves a queue's delayed jobs from its held stream into the queue when they are due.
 *
 * The server keeps every held job; a mover keeps none. Each held job is delivered to one mover of
 * the queue's shared `mover` consumer, which either naks it with its remaining delay (the
 * server's own redelivery timer wakes it then) or, when it is due, publishes it to the queue with
 * a deterministic msg id and acks it. A mover that dies between the two leaves the job to be
 * delivered again after the consumer's ack wait; the queue's duplicate window drops the second
 * copy. Any number of movers may run: the consumer hands each held job to one of them at a time.
 *
 * Never early, by the server's clock: "now" is a lower bound of the server's time (see
 * {@link ServerClock}). An estimate that is behind makes a job late by that much, never early.
 */
export class Mover {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, unknown>;
  readonly #hooks: MoverHooks;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  readonly #moving = new Set<Promise<void>>();
  readonly #clock: ServerClock;
  #probeTimer: NodeJS.Timeout | undefined;
  #stopped = false;

  constructor(nc: NatsConnection, queue: Queue<unknown, unknown>, hooks: MoverHooks, clock = new ServerClock()) {
    this.#nc = nc;
    this.#clock = clock;
    this.#queue = queue;
    this.#hooks = hooks;
  }

  /**
   * Reads the server's clock, then starts taking held jobs.
   * @throws {@link QueueNotFoundError} the held stream or its consumer is missing (provision the queue with `scheduling: true`).
   */
  async start(): Promise<void> {
    const n = this.#queue.names;
    const what = `start moving delayed jobs of queue "${this.#queue.name}"`;
    try {
      this.#js = jetstream(this.#nc, jsOptions(this.#queue));
      this.#jsm = await jetstreamManager(this.#nc, jsOptions(this.#queue));
      const consumer = await this.#js.consumers.get(n.heldStream, n.heldConsumer);
      await this.#clock.probe(this.#js, this.#jsm, this.#queue);
      this.#messages = await consumer.consume({ max_messages: WINDOW });
    } catch (err) {
      throw mapNatsError(err, what);
    }
    this.#probeTimer = setInterval(() => {
      this.#clock.probe(this.#js!, this.#jsm!, this.#queue).catch((err: unknown) => this.#hooks.error(mapNatsError(err, `read the server clock for queue "${this.#queue.name}"`)));
    }, PROBE_EVERY_MS);
    this.#probeTimer.unref();
    this.#loop = this.#run(this.#messages);
  }

  /** Stops taking held jobs and waits for the moves in flight. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#probeTimer);
    try {
      await this.#messages?.close();
    } catch {
      // closed connection: nothing more arrives
    }
    await this.#loop;
    await Promise.allSettled([...this.#moving]);
  }

  async #run(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        if (this.#stopped) {
          m.nak();
          continue;
        }
        const move = this.#handle(m);
        if (move === undefined) continue;
        this.#moving.add(move);
        void move.finally(() => this.#moving.delete(move));
        if (this.#moving.size >= MAX_MOVING) await Promise.race(this.#moving);
      }
    } catch (err) {
      if (!this.#stopped) this.#hooks.error(mapNatsError(err, `move delayed jobs of queue "${this.#queue.name}"`));
    }
  }

  /** Naks a held job with its remaining delay, or starts its move (returned). */
  #handle(m: JsMsg): Promise<void> | undefined {
    // Nanoseconds as a double lose a few hundred ns: floored to ms, still not after the real time.
    const stored = Math.floor(Number(m.info.timestampNanos) / 1_000_000);
    // Stored before it reached us: another lower bound of the server's time.
    this.#clock.saw(stored);
    const h = m.headers;
    const due = dueOf(h, stored);
    const now = this.#clock.now();
    const wait = due - now;
    if (wait > 0) {
      m.nak(Math.ceil(Math.min(wait, this.#clock.calibrated ? MAX_NAK_MS : UNCALIBRATED_NAK_MS)));
      return undefined;
    }
    return this.#move(m, h, due, now);
  }

  async #move(m: JsMsg, h: MsgHdrs | undefined, due: number, now: number): Promise<void> {
    const n = this.#queue.names;
    const id = h?.get(HDR.msgId) || heldJobId(m.seq);
    const out = natsHeaders();
    if (h) for (const [k, values] of h) if (!DROP.has(k.toLowerCase())) for (const v of values) out.append(k, v);
    out.set(HDR.msgId, id);
    out.set(HELD.due, due.toFixed(0));
    try {
      await this.#js!.publish(n.subject, m.data, { headers: out, timeout: 5_000 });
    } catch (err) {
      // The job stays held; look at it again in a second (the queue may be full, or the server busy).
      m.nak(1_000);
      this.#hooks.error(mapNatsError(err, `move delayed job ${id} into queue "${this.#queue.name}"`));
      return;
    }
    m.ack();
    this.#hooks.moved?.(Math.max(0, now - due));
  }
}

/** @internal When a held job is due, in server epoch ms: its run-at time, or its delay after it was stored. */
export function dueOf(h: MsgHdrs | undefined, storedMs: number): number {
  const at = Number(h?.get(HELD.due));
  if (h?.has(HELD.due) && Number.isFinite(at)) return at;
  const delay = Number(h?.get(HELD.delay));
  if (h?.has(HELD.delay) && Number.isFinite(delay)) return storedMs + delay;
  return storedMs; // not a delayed job (published to the held subject by hand): move it now
}

/**
 * @internal Held jobs read one by one for {@link nextDueMs}: above this many, the earliest due
 * time is not computed (the stream is ordered by publish, not by due time, and a 2.9 server has
 * no batch read: one request per held job).
 */
export const NEXT_DUE_SCAN = 256;

/**
 * @internal When the earliest held job is due (server epoch ms), read job by job from the held
 * stream when it holds from 1 to {@link NEXT_DUE_SCAN} jobs; `undefined` when it holds none or more.
 * @param state the held stream's `messages` and `first_seq`, from a stream info the caller has.
 */
export async function nextDueMs(jsm: JetStreamManager, queue: Queue<unknown, unknown>, state: { messages: number; first_seq: number }): Promise<number | undefined> {
  if (state.messages === 0 || state.messages > NEXT_DUE_SCAN) return undefined;
  const n = queue.names;
  let next = state.first_seq;
  let earliest = Infinity;
  // Jobs published meanwhile may lengthen the walk: bounded all the same.
  for (let i = 0; i < NEXT_DUE_SCAN; i++) {
    const sm = await jsm.direct.getMessage(n.heldStream, { seq: next, next_by_subj: n.heldSubject });
    if (!sm) break;
    earliest = Math.min(earliest, dueOf(sm.header, Date.parse(sm.timestamp)));
    next = sm.seq + 1;
  }
  return earliest === Infinity ? undefined : earliest;
}

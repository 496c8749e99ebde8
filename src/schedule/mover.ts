import { headers as natsHeaders, type Msg, type MsgHdrs, type NatsConnection, type PermissionViolationError } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from "@nats-io/jetstream";
import { ConnectionError, QueueNotFoundError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HDR } from "../queue/headers.ts";
import { type Delivered, Puller } from "../consumer/pull.ts";
import { publishOutcome } from "../producer/receipt.ts";
import { apiPrefix, domainOf, jsOptions } from "../transport/api.ts";
import { ConnectionHub, type TransportUser } from "../transport/hub.ts";
import { Inbox } from "../transport/inbox.ts";
import { ReplyTable } from "../transport/replies.ts";
import { ServerClock } from "./clock.ts";
import { DueHeap } from "./due-heap.ts";
import { isJobSubject, levelOfHeader, levelSubject, PRIORITY_HEADER } from "../flow/priority.ts";
import { HELD, heldJobId, MOVER_ACK_WAIT_MS } from "./held.ts";

/** What a mover reports to its owner (a worker, or `jetq schedules run`). */
export interface MoverHooks {
  /** Something failed outside any job (a move, a clock probe); the mover keeps going. */
  error(err: Error): void;
  /** A held job was moved into the queue; `latenessMs` is how long after its due time `dueMs` (server clock) it was taken to move. */
  moved?(latenessMs: number, dueMs: number): void;
}

/** @internal A mover's bounds (tests shrink them). */
export interface MoverLimits {
  /**
   * Held jobs a mover holds at once: asked for and not yet here, plus being moved (published,
   * PubAck not yet read). Bounds its memory whatever the backlog. @default 1024
   */
  window?: number;
  /** How long a move waits for the queue's PubAck before the held job is handed back (naked). @default 4000 */
  moveTimeoutMs?: number;
  /** How long one pull request waits on the server. @default 5000 */
  pullExpiresMs?: number;
}

const WINDOW = 1024;
/**
 * A held job due within this is kept here until due rather than naked: the server's redelivery
 * timer is late by up to seconds while naks stream in (each nak with a delay pushes nats-server's
 * pending check back by 10 ms), and a nak and a redelivery cost the server more than a timer here.
 */
const HOLD_MS = 1_500;
/** Held jobs kept here at most (beyond it they are naked): bounds memory with {@link WINDOW}. */
const MAX_HOLDING = 4096;
/**
 * A nak asks for the held job back this long before it is due (then kept here, see
 * {@link HOLD_MS}): a late redelivery up to this much costs no lateness.
 */
const LEAD_MS = 500;
/**
 * Naks ask for redeliveries on a grid of this many ms (server time): nats-server scans every
 * pending held job each time its redelivery timer fires, and fires it at the next redelivery
 * due, so redeliveries spread over every millisecond keep it scanning without pause.
 */
const GRID_MS = 100;
/**
 * A move's PubAck wait. A job kept here (up to {@link HOLD_MS}) and then moved is acked within
 * the held consumer's ack wait, so the server does not hand it to another mover meanwhile.
 */
const MOVE_TIMEOUT_MS = MOVER_ACK_WAIT_MS - HOLD_MS - 500;
/** After a failed or timed-out move, the held job is looked at again this much later. */
const RETRY_MS = 1_000;
/** After a pull error (permission, a missing consumer), pulling starts again this much later. */
const PULL_RETRY_MS = 1_000;
/** Longest single wait asked of the server; a longer delay is re-asked when it ends (keeps nak delays small numbers). */
const MAX_NAK_MS = 24 * 3600 * 1000;
/** Until the server's clock is known, held jobs are looked at again at least this often. */
const UNCALIBRATED_NAK_MS = 1_000;
/** How often the server's clock is read again (the local monotonic clock may drift from it). */
const PROBE_EVERY_MS = 60_000;
/** Headers of a held job that are not carried to the job in the queue (lower case). */
const DROP = new Set([HELD.delay, HELD.due, HDR.msgId].map((h) => h.toLowerCase()));

/** One move: the held job published to the queue, waiting for its PubAck. */
interface Move {
  readonly held: Delivered;
  readonly id: string;
  readonly deadline: number;
  /** How late the move started, ms after the due time (server clock). */
  readonly lateness: number;
  /** The due time, server epoch ms. */
  readonly due: number;
}

/**
 * @internal Moves a queue's delayed jobs from its held stream into the queue when they are due.
 *
 * The server keeps every held job; a mover keeps none beyond its window. Each held job is
 * delivered to one mover of the queue's shared `mover` consumer, which either naks it with its
 * remaining delay (the server's own redelivery timer wakes it then) or, when it is due, publishes
 * it to the queue with a deterministic msg id and acks it once the queue's PubAck confirmed the
 * move. A mover that dies between the two leaves the job to be delivered again after the
 * consumer's ack wait; the queue's duplicate window drops the second copy. A move whose PubAck
 * does not come (or is an error) is not acked: the held job is naked and moved again later, with
 * the same msg id. Any number of movers may run: the consumer hands each held job to one of them
 * at a time.
 *
 * Moves are pipelined as the producer's publishes are (src/producer/producer.ts): held jobs are
 * pulled on one inbox subscription ({@link Puller}, not `consume()`'s machinery per message),
 * moves are core publishes with reply subjects on one wildcard inbox, PubAcks are matched by slot
 * ({@link ReplyTable}) and read from the bytes, and one shared timer ({@link ConnectionHub})
 * expires the late ones. At most `window` held jobs are asked for or being moved at once.
 *
 * Never early, by the server's clock: "now" is a lower bound of the server's time (see
 * {@link ServerClock}). An estimate that is behind makes a job late by that much, never early.
 */
export class Mover {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, unknown>;
  readonly #hooks: MoverHooks;
  readonly #clock: ServerClock;
  readonly #window: number;
  readonly #moveTimeoutMs: number;
  readonly #pullExpiresMs: number;
  readonly #hub: ConnectionHub;
  readonly #inbox: Inbox;
  readonly #moves: ReplyTable<Move>;
  readonly #user: TransportUser = {
    sweep: (now) => this.#sweep(now),
    reconnected: () => {
      this.#inbox.rekey(this.#moveTimeoutMs + 1_000);
      this.#moves.rekeyed();
    },
    closed: () => this.#connectionClosed(),
    denied: (e) => this.#denied(e),
  };
  readonly #expireOne = (m: Move): void => {
    this.#retry(m.held);
    this.#hooks.error(new TimeoutError(`move delayed job ${m.id} into queue "${this.#queue.name}": no confirmation within ${this.#moveTimeoutMs} ms; it stays held and is moved again in ${RETRY_MS} ms`));
    this.#topUp();
  };
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #puller: Puller | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Held jobs kept here until due (bounded by MAX_HOLDING). */
  readonly #holding = new DueHeap<Delivered>();
  #holdTimer: NodeJS.Timeout | undefined;
  #holdTimerAt = Infinity;
  #topUpQueued = false;
  #joined = false;
  #stopped = false;

  constructor(nc: NatsConnection, queue: Queue<unknown, unknown>, hooks: MoverHooks, clock = new ServerClock(), limits: MoverLimits = {}) {
    this.#nc = nc;
    this.#clock = clock;
    this.#queue = queue;
    this.#hooks = hooks;
    this.#window = limits.window ?? WINDOW;
    this.#moveTimeoutMs = limits.moveTimeoutMs ?? MOVE_TIMEOUT_MS;
    this.#pullExpiresMs = limits.pullExpiresMs ?? 5_000;
    this.#hub = ConnectionHub.of(nc);
    this.#inbox = new Inbox(nc, (nc as { options?: { inboxPrefix?: string } }).options?.inboxPrefix, (err, msg) => {
      if (err) this.#failAll(mapNatsError(err, `receive move confirmations for queue "${queue.name}"`));
      else this.#onPubAck(msg);
    });
    this.#moves = new ReplyTable<Move>(this.#inbox);
  }

  /** Moves published and not yet confirmed (tests). */
  get moving(): number {
    return this.#moves.size;
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
      await this.#jsm.consumers.info(n.heldStream, n.heldConsumer);
      await this.#clock.probe(this.#js, this.#jsm, this.#queue);
    } catch (err) {
      throw mapNatsError(err, what);
    }
    this.#probeTimer = setInterval(() => {
      this.#clock.probe(this.#js!, this.#jsm!, this.#queue).catch((err: unknown) => this.#hooks.error(mapNatsError(err, `read the server clock for queue "${this.#queue.name}"`)));
    }, PROBE_EVERY_MS);
    this.#probeTimer.unref();
    this.#puller = new Puller(
      this.#nc,
      n.heldStream,
      n.heldConsumer,
      this.#pullExpiresMs,
      {
        message: (m) => this.#handle(m),
        unfilled: () => this.#queueTopUp(),
        silent: () => this.#queueTopUp(),
        error: (err) => this.#pullFailed(err),
      },
      { apiPrefix: apiPrefix(domainOf(this.#queue)) },
    );
    this.#topUp();
  }

  /** Stops taking held jobs and waits (up to the move timeout) for the moves in flight. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#probeTimer);
    clearTimeout(this.#retryTimer);
    this.#puller?.stop();
    this.#releaseHolding();
    const deadline = Date.now() + this.#moveTimeoutMs + 1_000;
    while (this.#moves.size > 0 && !this.#hub.isClosed && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 10));
      this.#sweep(Date.now());
    }
    this.#leave();
  }

  /** Asks for as many held jobs as the window has room for; small gaps wait to be filled together. */
  #topUp(): void {
    const puller = this.#puller;
    if (this.#stopped || puller === undefined || this.#retryTimer !== undefined) return;
    const free = this.#window - puller.outstanding - this.#moves.size;
    // Few large requests rather than many small ones (the server keeps a bounded number waiting).
    if (free <= 0 || (free < this.#window / 4 && puller.outstanding > 0)) return;
    puller.pull(free);
  }

  /** Tops up once at the end of this turn (after every message of one socket read). */
  #queueTopUp(): void {
    if (this.#topUpQueued) return;
    this.#topUpQueued = true;
    setImmediate(() => {
      this.#topUpQueued = false;
      this.#topUp();
    });
  }

  #pullFailed(err: Error): void {
    if (this.#stopped) return;
    this.#hooks.error(err instanceof QueueNotFoundError || err instanceof ConnectionError ? err : mapNatsError(err, `move delayed jobs of queue "${this.#queue.name}"`));
    if (this.#retryTimer !== undefined) return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      this.#topUp();
    }, PULL_RETRY_MS);
  }

  /** Naks a held job with its remaining delay, or moves it. */
  #handle(m: Delivered): void {
    if (this.#stopped) {
      m.nak();
      return;
    }
    const stored = storedMs(m.reply);
    // Stored before it reached us: another lower bound of the server's time.
    this.#clock.saw(stored);
    const h = m.headers;
    const due = dueOf(h, stored);
    const now = this.#clock.now();
    const wait = due - now;
    if (wait > 0) {
      if (!this.#clock.calibrated) m.nak(Math.ceil(Math.min(wait, UNCALIBRATED_NAK_MS)));
      else if (wait <= HOLD_MS && this.#holding.size < MAX_HOLDING) this.#hold(m, due);
      else m.nak(nakDelay(wait, now));
      this.#queueTopUp();
      return;
    }
    this.#move(m, h, due, now);
  }

  /** Keeps a held job until it is due (then moves it). */
  #hold(m: Delivered, due: number): void {
    this.#holding.push(due, m);
    if (due < this.#holdTimerAt) this.#armHoldTimer();
  }

  #armHoldTimer(): void {
    clearTimeout(this.#holdTimer);
    const at = this.#holding.earliest;
    this.#holdTimerAt = at;
    if (at === Infinity) {
      this.#holdTimer = undefined;
      return;
    }
    this.#holdTimer = setTimeout(() => this.#holdDue(), Math.max(1, Math.ceil(at - this.#clock.now())));
  }

  /** Moves the kept jobs that are due (by the server's clock: the timer may fire a little early). */
  #holdDue(): void {
    this.#holdTimer = undefined;
    this.#holdTimerAt = Infinity;
    if (this.#stopped) return;
    const now = this.#clock.now();
    while (this.#holding.earliest <= now) {
      const due = this.#holding.earliest;
      const m = this.#holding.pop()!;
      this.#move(m, m.headers, due, now);
    }
    this.#armHoldTimer();
  }

  /** Hands every kept job back to the server, asked back when due (stop, a closed connection). */
  #releaseHolding(): void {
    clearTimeout(this.#holdTimer);
    this.#holdTimer = undefined;
    this.#holdTimerAt = Infinity;
    const now = this.#clock.now();
    this.#holding.drain((m, due) => m.nak(Math.max(1, Math.ceil(due - now))));
  }

  #move(m: Delivered, h: MsgHdrs | undefined, due: number, now: number): void {
    const id = h?.get(HDR.msgId) || heldJobId(m.seq);
    const out = natsHeaders();
    if (h) for (const [k, values] of h) if (!DROP.has(k.toLowerCase())) for (const v of values) out.append(k, v);
    out.set(HDR.msgId, id);
    out.set(HELD.due, due.toFixed(0));
    const move: Move = { held: m, id, deadline: Date.now() + this.#moveTimeoutMs, lateness: Math.max(0, now - due), due };
    let reply: string | undefined;
    try {
      if (!this.#inbox.subscribed) this.#subscribe();
      reply = this.#moves.add(move);
      this.#nc.publish(this.#subjectOf(h), m.data, { reply, headers: out });
    } catch (err) {
      if (reply !== undefined) this.#moves.cancel(reply);
      this.#retry(m);
      this.#hooks.error(mapNatsError(err, `move delayed job ${id} into queue "${this.#queue.name}"`));
      this.#queueTopUp();
    }
  }

  #onPubAck(msg: Msg): void {
    const move = this.#moves.take(msg.subject);
    if (move === undefined) return; // timed out (naked already): its subject is retired
    const h = msg.headers;
    const outcome = publishOutcome(h !== undefined && h.hasError ? { code: h.code, description: h.description } : undefined, msg.data, move.id, this.#queue.name);
    if (outcome instanceof Error) {
      // The job stays held; look at it again in a second (the queue may be full, or the server busy).
      this.#retry(move.held);
      this.#hooks.error(mapNatsError(outcome, `move delayed job ${move.id} into queue "${this.#queue.name}"`));
    } else {
      // Stored (or a duplicate of a copy stored before): the held job has done its work.
      move.held.ack();
      this.#hooks.moved?.(move.lateness, move.due);
    }
    this.#queueTopUp();
  }

  /** A move that failed or was not confirmed: the held job is looked at again later, never acked. */
  #retry(held: Delivered): void {
    held.nak(RETRY_MS);
  }

  #subscribe(): void {
    this.#inbox.open();
    if (this.#joined) return;
    this.#joined = true;
    this.#hub.join(this.#user, Math.min(250, Math.max(10, this.#moveTimeoutMs / 4)));
  }

  #leave(): void {
    this.#hub.leave(this.#user);
    this.#joined = false;
    this.#inbox.close();
  }

  #sweep(now: number): void {
    this.#inbox.sweep(now);
    this.#moves.expire(now, this.#expireOne);
  }

  /** No PubAck can come any more, and no ack reach the server: the server redelivers the held jobs after its ack wait. */
  #connectionClosed(): void {
    clearTimeout(this.#holdTimer);
    this.#holding.drain(() => {});
    this.#moves.drain(() => {});
    this.#leave();
  }

  /** Where a held job goes when due: its priority level's subject on a queue with levels, else the queue's. */
  #subjectOf(h: MsgHdrs | undefined): string {
    const q = this.#queue;
    return q.priorities === undefined ? q.names.subject : levelSubject(q, levelOfHeader(q, h?.get(PRIORITY_HEADER)));
  }

  #denied(e: PermissionViolationError): void {
    if ((e.operation === "publish" && isJobSubject(this.#queue, e.subject)) || (e.operation === "subscription" && this.#inbox.owns(e.subject))) {
      this.#failAll(mapNatsError(e, `move delayed jobs into queue "${this.#queue.name}"`));
    }
  }

  #failAll(err: Error): void {
    if (this.#moves.size === 0) return;
    this.#moves.drain((m) => this.#retry(m.held));
    this.#hooks.error(err);
    this.#queueTopUp();
  }
}

/**
 * @internal The nak delay for a held job due in `wait` ms (server time `now`): up to a day, and
 * aimed at the last {@link GRID_MS} grid point at least {@link LEAD_MS} before it is due, so it is
 * redelivered early enough to be kept here until due. Within {@link LEAD_MS} of its due time
 * (only when no more jobs can be kept here), exactly the wait.
 */
export function nakDelay(wait: number, now: number): number {
  if (wait > MAX_NAK_MS) return MAX_NAK_MS;
  const at = Math.floor((now + wait - LEAD_MS) / GRID_MS) * GRID_MS;
  const delay = Math.ceil(at - now);
  // Too close to aim early (only when no more can be kept here): back exactly when due.
  return delay >= 1 ? delay : Math.ceil(wait);
}

/**
 * @internal When a held job was stored, in server epoch ms (floored), from the timestamp token of
 * its ack subject (`$JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]`),
 * read from its digits in place: the nanoseconds as a double would round, sometimes up into the
 * next millisecond. `NaN` for a subject of another form.
 */
export function storedMs(reply: string): number {
  let dots = 0;
  for (let i = 0; i < reply.length; i++) if (reply.charCodeAt(i) === 46) dots++;
  const tsToken = dots === 8 ? 7 : dots === 10 || dots === 11 ? 9 : -1;
  if (tsToken < 0) return Number.NaN;
  let token = 0;
  let i = 0;
  while (token < tsToken) if (reply.charCodeAt(i++) === 46) token++;
  let end = i;
  while (end < reply.length && reply.charCodeAt(end) !== 46) end++;
  // Milliseconds: every digit but the last six (nanoseconds → ms, floored).
  let ms = 0;
  for (let k = i; k < end - 6; k++) {
    const d = reply.charCodeAt(k) - 48;
    if (d < 0 || d > 9) return Number.NaN;
    ms = ms * 10 + d;
  }
  return end - i > 6 ? ms : end > i ? 0 : Number.NaN;
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

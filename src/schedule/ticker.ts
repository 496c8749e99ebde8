import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, jetstreamManager, type ConsumerMessages, type JetStreamClient, type JetStreamManager, type JsMsg } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { HDR } from "../queue/headers.ts";
import { jsOptions } from "../transport/api.ts";
import { levelOf, levelSubject } from "../flow/priority.ts";
import { ServerClock } from "./clock.ts";
import { type DefRecord, type LastRecord, REMOVED } from "./schedules.ts";
import { resolveSpec, TICK, tickJobId, Ticks } from "./spec.ts";

/** What a ticker reports to its owner (a worker, or `jetq schedules run`). */
export interface TickerHooks {
  /** Something failed (a tick's publish, the watch); the ticker keeps going. */
  error(err: Error): void;
  /** A tick's job was published (`duplicate`: another process had published it first). */
  fired?(name: string, tick: number, latenessMs: number, duplicate: boolean): void;
}

interface Entry {
  def: DefRecord | undefined;
  ticks: Ticks | undefined;
  /** Server time the definition was stored: no tick at or before it is due. */
  updatedAt: number;
  last: LastRecord | undefined;
  /**
   * The next tick by the records, computed when they change or a tick fires (a cron with a time
   * zone costs croner a millisecond or more per computation: never recomputed on a timer).
   * `undefined` once the schedule has ended.
   */
  next: number | undefined;
}

/** Longest sleep between two looks at the schedules (bounds the effect of clock drift). */
const MAX_SLEEP_MS = 30_000;
/** Under `missed: "skip"`, a tick this late still runs (the process was busy, not down). */
const SKIP_GRACE_MS = 5_000;
const PROBE_EVERY_MS = 60_000;
const textDecoder = new TextDecoder();

/**
 * @internal Fires a queue's schedules: publishes each tick's job with the msg id
 * `sched:<name>:<tick>`. Every process running a ticker does this for every tick; the queue's
 * duplicate window keeps one job per tick, so no leader is needed and any process may die.
 *
 * The schedules come from an ordered consumer on the schedule stream (the last record of each
 * subject, then every change), so an idle ticker costs one timer and no requests. A tick is due
 * by the server's clock (a lower bound of it: never early). The process whose publish was not a
 * duplicate records the tick and the run count (for `limit` and for missed ticks after a restart
 * of every process).
 */
export class Ticker {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, unknown>;
  readonly #hooks: TickerHooks;
  readonly #clock: ServerClock;
  readonly #entries = new Map<string, Entry>();
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;
  #messages: ConsumerMessages | undefined;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  #synced = false;
  #firing: Promise<void> | undefined;
  #stopped = false;
  /** A publish failed in the last round: wait a little before the next (no hot loop while the server is away). */
  #failed = false;

  constructor(nc: NatsConnection, queue: Queue<unknown, unknown>, hooks: TickerHooks, clock = new ServerClock()) {
    this.#nc = nc;
    this.#queue = queue;
    this.#hooks = hooks;
    this.#clock = clock;
  }

  /** @throws {@link QueueNotFoundError} the schedule stream is missing (provision with `scheduling: true`). */
  async start(): Promise<void> {
    const n = this.#queue.names;
    try {
      this.#js = jetstream(this.#nc, jsOptions(this.#queue));
      this.#jsm = await jetstreamManager(this.#nc, jsOptions(this.#queue));
      const si = await this.#jsm.streams.info(n.scheduleStream);
      if (!this.#clock.calibrated) await this.#clock.probe(this.#js, this.#jsm, this.#queue);
      this.#synced = si.state.messages === 0;
      const oc = await this.#js.consumers.get(n.scheduleStream, { filter_subjects: `${n.scheduleSubject}.>`, deliver_policy: DeliverPolicy.LastPerSubject });
      this.#messages = await oc.consume();
    } catch (err) {
      throw mapNatsError(err, `start the schedules of queue "${this.#queue.name}"`);
    }
    this.#probeTimer = setInterval(() => {
      this.#clock.probe(this.#js!, this.#jsm!, this.#queue).catch((err: unknown) => this.#hooks.error(mapNatsError(err, `read the server clock for queue "${this.#queue.name}"`)));
    }, PROBE_EVERY_MS);
    this.#probeTimer.unref();
    this.#loop = this.#watch(this.#messages);
    this.#arm();
  }

  /** Stops firing; waits for a tick being published. Idempotent. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearTimeout(this.#timer);
    clearInterval(this.#probeTimer);
    try {
      await this.#messages?.close();
    } catch {
      // closed connection
    }
    await this.#loop;
    await this.#firing;
  }

  async #watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const m of messages) {
        this.#apply(m);
        if (m.info.pending === 0) this.#synced = true;
        if (this.#synced) this.#arm();
      }
    } catch (err) {
      if (!this.#stopped) this.#hooks.error(mapNatsError(err, `watch the schedules of queue "${this.#queue.name}"`));
    }
  }

  #apply(m: JsMsg): void {
    const prefix = `${this.#queue.names.scheduleSubject}.`;
    const rest = m.subject.slice(prefix.length);
    const dot = rest.indexOf(".");
    const kind = rest.slice(0, dot);
    const name = rest.slice(dot + 1);
    const e: Entry = this.#entries.get(name) ?? { def: undefined, ticks: undefined, updatedAt: 0, last: undefined, next: undefined };
    try {
      if (kind === "def") {
        if (m.headers?.has(REMOVED)) {
          this.#entries.delete(name);
          return;
        }
        e.def = JSON.parse(textDecoder.decode(m.data)) as DefRecord;
        e.ticks = new Ticks(resolveSpec(e.def.spec, false));
        e.updatedAt = Math.floor(Number(m.info.timestampNanos) / 1_000_000);
      } else if (kind === "last") {
        const l = JSON.parse(textDecoder.decode(m.data)) as LastRecord;
        // Records may cross: keep the latest tick.
        if (!e.last || l.tick >= e.last.tick) e.last = l;
      } else {
        return;
      }
      e.next = this.#next(e);
    } catch (err) {
      this.#hooks.error(new Error(`schedule "${name}" of queue "${this.#queue.name}" has an unreadable record: ${(err as Error).message}`, { cause: err }));
      return;
    }
    this.#entries.set(name, e);
  }

  /** The next tick of `e` by its records, or `undefined` when it has ended (or is only a progress record). */
  #next(e: Entry): number | undefined {
    if (!e.def || !e.ticks) return undefined;
    const limit = e.def.spec.limit;
    if (limit !== undefined && (e.last?.runs ?? 0) >= limit) return undefined;
    try {
      return e.ticks.after(Math.max(e.last?.tick ?? -Infinity, e.updatedAt));
    } catch (err) {
      // A record written by hand with a time zone croner cannot use: report it, fire nothing.
      this.#hooks.error(new Error(`a schedule of queue "${this.#queue.name}" cannot compute its next tick: ${(err as Error).message}`, { cause: err }));
      return undefined;
    }
  }

  /** One timer, for the earliest tick of all schedules. */
  #arm(): void {
    if (this.#stopped || this.#firing) return;
    clearTimeout(this.#timer);
    let earliest = Infinity;
    for (const e of this.#entries.values()) if (e.next !== undefined && e.next < earliest) earliest = e.next;
    if (earliest === Infinity) return;
    const wait = Math.min(MAX_SLEEP_MS, Math.max(this.#failed ? 1_000 : 0, earliest - this.#clock.now()));
    this.#timer = setTimeout(() => {
      this.#firing = this.#fire().finally(() => {
        this.#firing = undefined;
        this.#arm();
      });
    }, Math.ceil(wait));
  }

  /** Publishes the job of every due tick (one per schedule, by its missed-ticks policy). */
  async #fire(): Promise<void> {
    this.#failed = false;
    for (const [name, e] of this.#entries) {
      if (this.#stopped) return;
      const now = this.#clock.now();
      if (!e.def || !e.ticks || e.next === undefined || e.next > now) continue;
      const due = e.ticks.latestDue(Math.max(e.last?.tick ?? -Infinity, e.updatedAt), now);
      if (!due) continue;
      const runs = e.last?.runs ?? 0;
      const late = now - due.tick;
      if (e.def.spec.missed === "skip" && (due.several || late > SKIP_GRACE_MS)) {
        // Ticks passed while nothing ran: none of them makes a job.
        e.last = { tick: due.tick, runs };
        e.next = this.#next(e);
        await this.#record(name, e.last);
        continue;
      }
      try {
        const h = natsHeaders();
        if (e.def.headers) for (const [k, v] of Object.entries(e.def.headers)) h.set(k, v);
        h.set(HDR.msgId, tickJobId(name, due.tick, e.def.id));
        h.set(TICK.schedule, name);
        h.set(TICK.tick, new Date(due.tick).toISOString());
        let subject = this.#queue.names.subject;
        if (e.def.priority !== undefined && this.#queue.priorities !== undefined) {
          // A level the queue still has (a stored definition may outlive a change of levels).
          subject = levelSubject(this.#queue, levelOf(this.#queue, e.def.priority));
        }
        const ack = await this.#js!.publish(subject, e.def.payload, { headers: h, timeout: 5_000 });
        e.last = { tick: due.tick, runs: runs + 1 };
        e.next = this.#next(e);
        // Only the process whose publish was stored records it: one write per tick.
        if (!ack.duplicate) await this.#record(name, e.last);
        this.#hooks.fired?.(name, due.tick, late, ack.duplicate);
      } catch (err) {
        this.#failed = true;
        this.#hooks.error(mapNatsError(err, `publish tick ${new Date(due.tick).toISOString()} of schedule "${name}" to queue "${this.#queue.name}"`));
      }
    }
  }

  async #record(name: string, last: LastRecord): Promise<void> {
    try {
      await this.#js!.publish(`${this.#queue.names.scheduleSubject}.last.${name}`, JSON.stringify(last), { timeout: 5_000 });
    } catch (err) {
      this.#hooks.error(mapNatsError(err, `record the last tick of schedule "${name}" of queue "${this.#queue.name}"`));
    }
  }
}

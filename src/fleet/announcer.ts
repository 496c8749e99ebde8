import { hostname } from "node:os";
import type { NatsConnection } from "@nats-io/transport-node";
import type { JetStreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { describe } from "../queue/define.ts";
import {
  type AnnouncedJob,
  type Announcement,
  FLEET_STREAM,
  fleetStreamConfig,
  JETQ_VERSION,
  MAX_ID_CHARS,
  MAX_LISTED_JOBS,
  ANNOUNCE_EVERY_MS,
  workerSubject,
} from "./store.ts";

/**
 * @internal The worker option `announce` as an interval in ms (0: off). At most 5000 ms: three
 * intervals must fit in the store's TTL, or a live worker would blink out of the list.
 * @throws {@link ConfigError} naming the option and the value.
 */
export function announceEvery(v: unknown): number {
  if (v === undefined || v === true) return ANNOUNCE_EVERY_MS;
  if (v === false) return 0;
  const every = typeof v === "object" && v !== null ? (v as { everyMs?: unknown }).everyMs ?? ANNOUNCE_EVERY_MS : undefined;
  if (typeof every !== "number" || !Number.isInteger(every) || every < 100 || every > ANNOUNCE_EVERY_MS) {
    throw new ConfigError(`Expected \`announce\` to be true, false or { everyMs } with everyMs an integer from 100 to ${ANNOUNCE_EVERY_MS}, got ${describe(typeof v === "object" && v !== null ? every : v)}`);
  }
  return every;
}

/** Longest a worker's stop waits to remove its record from the list. */
const STOP_MS = 2_000;

/** @internal What the announcer reads from its worker at each beat (never per job). */
export interface AnnouncedWorker {
  readonly id: string;
  readonly queue: string;
  readonly concurrency: number;
  /** Handlers running now (stuck ones included). */
  inFlight(): number;
  /** Whether the queue is paused for this worker. */
  paused(): boolean;
  /** Calls `fn` for each delivery the worker holds. */
  forEachJob(fn: (id: string, seq: number, attempt: number, since: number) => void): void;
  /** Something failed (creating the store, removing the announcement at stop). */
  error(err: Error): void;
}

/**
 * @internal Announces one worker in the fleet stream every `everyMs`: a core publish of one small
 * record, no round trip, nothing per job. The server keeps the latest record per worker and drops
 * it `FLEET_TTL_MS` after it was stored, so a worker that dies disappears on its own; a worker
 * that stops removes its record at once.
 */
export class Announcer {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #w: AnnouncedWorker;
  readonly #everyMs: number;
  readonly #subject: string;
  readonly #startedAt = Date.now();
  readonly #host = hostname();
  #beat: NodeJS.Timeout | undefined;
  #sampler: NodeJS.Timeout | undefined;
  #samples = 0;
  #sum = 0;
  #stopped = false;
  #ready: Promise<void> | undefined;

  constructor(nc: NatsConnection, jsm: JetStreamManager, worker: AnnouncedWorker, everyMs: number) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#w = worker;
    this.#everyMs = everyMs;
    this.#subject = workerSubject(worker.queue, worker.id);
  }

  /** Makes sure the store exists (in the background), announces now and then every `everyMs`. */
  start(): void {
    this.#ready = this.#ensureStore().then(
      () => this.#announce(),
      (err: unknown) => this.#w.error(mapNatsError(err, `create the worker list ${FLEET_STREAM} (announce worker ${this.#w.id})`)),
    );
    // Utilisation is the mean of samples over the interval, not one instant at the beat.
    const sampleEvery = Math.max(50, Math.min(1_000, Math.floor(this.#everyMs / 5)));
    this.#sampler = setInterval(() => this.#sample(), sampleEvery);
    this.#sampler.unref();
    this.#beat = setInterval(() => this.#announce(), this.#everyMs);
    this.#beat.unref();
  }

  async #ensureStore(): Promise<void> {
    try {
      await this.#jsm.streams.info(FLEET_STREAM);
      return;
    } catch (err) {
      if (apiCode(err) !== API.streamNotFound) throw err;
    }
    try {
      await this.#jsm.streams.add(fleetStreamConfig());
    } catch (err) {
      // Another worker made it between our info and add (a different config is its own problem: keep it).
      if (/already in use/i.test(String((err as Error)?.message))) return;
      throw err;
    }
  }

  #sample(): void {
    this.#samples++;
    this.#sum += this.#w.inFlight() / this.#w.concurrency;
  }

  #announce(): void {
    if (this.#stopped || this.#nc.isClosed()) return;
    this.#sample();
    const utilization = Math.round((this.#sum / this.#samples) * 1000) / 1000;
    this.#sum = 0;
    this.#samples = 0;
    const jobs: AnnouncedJob[] = [];
    this.#w.forEachJob((id, seq, attempt, since) => {
      if (jobs.length < MAX_LISTED_JOBS) jobs.push({ id: id.length > MAX_ID_CHARS ? `${id.slice(0, MAX_ID_CHARS - 1)}…` : id, seq, attempt, since });
    });
    const a: Announcement = {
      v: 1,
      id: this.#w.id,
      queue: this.#w.queue,
      host: this.#host,
      pid: process.pid,
      version: JETQ_VERSION,
      concurrency: this.#w.concurrency,
      inFlight: this.#w.inFlight(),
      utilization,
      startedAt: this.#startedAt,
      everyMs: this.#everyMs,
      paused: this.#w.paused(),
      jobs,
    };
    try {
      this.#nc.publish(this.#subject, JSON.stringify(a));
    } catch {
      // closed or draining connection: the record expires on its own
    }
  }

  /**
   * Stops announcing and removes this worker's record, waiting at most `STOP_MS` for the server
   * (a worker's stop must stay bounded; a record not removed expires on its own). Idempotent;
   * never throws.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    clearInterval(this.#beat);
    clearInterval(this.#sampler);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, STOP_MS);
    });
    await Promise.race([this.#remove(), late]);
    clearTimeout(timer);
  }

  async #remove(): Promise<void> {
    await this.#ready;
    if (this.#nc.isClosed()) return;
    try {
      // The last announcement may still be on its way: the purge must come after it.
      // A flush orders our publishes before the purge at the server, but the stream stores them
      // on its own loop: look once more and purge again if one landed after the first purge.
      await this.#nc.flush();
      for (let i = 0; i < 3; i++) {
        await this.#jsm.streams.purge(FLEET_STREAM, { filter: this.#subject });
        const left = await this.#jsm.direct.getMessage(FLEET_STREAM, { last_by_subj: this.#subject });
        if (!left) break;
      }
    } catch (err) {
      if (apiCode(err) === API.streamNotFound || this.#nc.isClosed()) return;
      this.#w.error(mapNatsError(err, `remove worker ${this.#w.id} from the worker list ${FLEET_STREAM} (it expires on its own)`));
    }
  }
}

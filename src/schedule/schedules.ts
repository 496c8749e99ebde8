import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import { describe } from "../queue/define.ts";
import { encodeJob, jobHeaders } from "../producer/job.ts";
import { jsOptions } from "../transport/api.ts";
import { prioritySubject } from "../flow/priority.ts";
import { checkIdTemplate, checkScheduleName, DEFAULT_ID_TEMPLATE, resolveSpec, type ScheduleSpec, specRecord, Ticks } from "./spec.ts";

export type { ScheduleSpec } from "./spec.ts";

/** Options of each job a schedule makes. */
export interface ScheduleJobOptions {
  /**
   * Template of each tick's job id (its idempotency key): `{tick}` is replaced by the tick's ISO
   * time and `{name}` by the schedule's name. It must contain `{tick}`, so that each tick makes
   * one job with an id of its own. @default `sched:{name}:{tick}`
   */
  id?: string;
  /** Extra headers carried with each tick's job (the rules of {@link PublishOptions.headers}). @default none */
  headers?: Readonly<Record<string, string>>;
  /**
   * Each tick's job's priority on a queue defined with `priorities` (the rules of
   * {@link PublishOptions.priority}). @default priorities - 1 (the lowest)
   */
  priority?: number;
}

/** A schedule as stored on the server, with its progress. */
export interface ScheduleInfo {
  /** The schedule's name. */
  name: string;
  /** The spec, with defaults filled in and times as epoch milliseconds. */
  spec: ScheduleSpec;
  /** The payload of each tick's job. */
  data: unknown;
  /** The options of each tick's job. */
  options: ScheduleJobOptions;
  /** When this version of the schedule was stored (server clock). */
  updatedAt: Date;
  /** The last tick a job was published for, if any. */
  lastTick: Date | undefined;
  /** Jobs published so far (counts against `limit`). */
  runs: number;
  /** The next tick after the last one (or after `updatedAt`); `undefined` once the schedule has ended. */
  nextTick: Date | undefined;
}

/** @internal A definition record (`<prefix>.def.<name>`). */
export interface DefRecord {
  spec: ScheduleSpec;
  /** The job payload, JSON-encoded (checked against the queue's schema at upsert). */
  payload: string;
  headers?: Record<string, string>;
  /** The id template, when not the default. */
  id?: string;
  /** The tick jobs' priority level, when not the lowest. */
  priority?: number;
}

/** @internal A progress record (`<prefix>.last.<name>`). */
export interface LastRecord {
  tick: number;
  runs: number;
}

/** @internal Header marking a removed schedule's definition. */
export const REMOVED = "Jetq-Removed";
/** Schedules read by one `list()`; far above any sane count, a bound on memory all the same. */
const MAX_LIST = 10_000;

const textDecoder = new TextDecoder();

/** @internal A stored message's server time, epoch ms. */
export function storedMs(sm: StoredMsg): number {
  return Date.parse(sm.timestamp);
}

/** @internal Builds the public view from the records. */
export function scheduleInfo(name: string, def: DefRecord, updatedAt: number, last: LastRecord | undefined): ScheduleInfo {
  const ticks = new Ticks(resolveSpec(def.spec, false));
  const limit = def.spec.limit;
  const ended = limit !== undefined && (last?.runs ?? 0) >= limit;
  const next = ended ? undefined : ticks.after(Math.max(last?.tick ?? -Infinity, updatedAt));
  return {
    name,
    spec: def.spec,
    data: JSON.parse(def.payload) as unknown,
    options: { ...(def.id !== undefined ? { id: def.id } : {}), ...(def.headers ? { headers: def.headers } : {}), ...(def.priority !== undefined ? { priority: def.priority } : {}) },
    updatedAt: new Date(updatedAt),
    lastTick: last ? new Date(last.tick) : undefined,
    runs: last?.runs ?? 0,
    nextTick: next === undefined ? undefined : new Date(next),
  };
}

/**
 * Repeatable jobs of a queue defined with `scheduling: true`: each schedule makes one job per
 * tick, with the id `sched:<name>:<tick ISO time>` (or its own template) and `job.schedule` set.
 *
 * Schedules are stored on the server (stream `JETQ_<queue>_SCHED`); ticks fire while any
 * {@link Worker} of the queue runs (unless started with `schedules: false`) or
 * `jetq schedules run <queue>` does. There is no leader: every such process publishes each tick's job with the
 * same msg id, and the queue's duplicate window keeps one.
 *
 * @example
 * ```ts
 * const schedules = new Schedules(nc, reports);
 * await schedules.upsert("nightly", { cron: "0 3 * * *", tz: "Europe/Berlin" }, { kind: "daily" });
 * ```
 */
export class Schedules<In = unknown> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<In, unknown>;
  #js: JetStreamClient | undefined;
  #jsm: JetStreamManager | undefined;

  /** @throws {@link ConfigError} the queue was defined without `scheduling: true`. */
  constructor(nc: NatsConnection, queue: Queue<In, unknown>) {
    if (!queue.scheduling) {
      throw new ConfigError(`Queue "${queue.name}" has no schedules: define it with \`scheduling: true\` and provision it again (jetq provision ${queue.name} --scheduling)`);
    }
    this.#nc = nc;
    this.#queue = queue;
  }

  async #api(): Promise<{ js: JetStreamClient; jsm: JetStreamManager }> {
    this.#js ??= jetstream(this.#nc, jsOptions(this.#queue));
    this.#jsm ??= await jetstreamManager(this.#nc, jsOptions(this.#queue));
    return { js: this.#js, jsm: this.#jsm };
  }

  #subject(kind: "def" | "last", name: string): string {
    return `${this.#queue.names.scheduleSubject}.${kind}.${name}`;
  }

  /**
   * Creates or changes the schedule `name`. Idempotent: the same arguments again change nothing.
   * A changed spec takes effect from its next tick; the runs so far still count against `limit`.
   * @throws {@link ConfigError} a bad name or spec (naming the field), bad headers, or an `id` template without `{tick}`.
   * @throws {@link ValidationError} `data` fails the queue's schema or is not JSON.
   * @throws {@link QueueNotFoundError} the queue was not provisioned with `scheduling: true`.
   */
  async upsert(name: string, spec: ScheduleSpec, data: In, options: ScheduleJobOptions = {}): Promise<ScheduleInfo> {
    checkScheduleName(name);
    const resolved = resolveSpec(spec);
    if (typeof options !== "object" || options === null) throw new ConfigError(`Expected schedule options to be an object, got ${describe(options)}`);
    const payload = encodeJob(this.#queue as Queue<unknown, unknown>, data, true, this.#nc.info?.max_payload);
    jobHeaders(undefined, options.headers); // checks them
    const id = options.id === undefined || options.id === DEFAULT_ID_TEMPLATE ? undefined : checkIdTemplate(options.id, name);
    // Checked now (a ConfigError naming the range); the lowest level is stored as no priority.
    const priority = options.priority !== undefined && prioritySubject(this.#queue as Queue<unknown, unknown>, options.priority) !== undefined ? options.priority : undefined;
    const def: DefRecord = {
      spec: specRecord(resolved),
      payload,
      ...(options.headers ? { headers: { ...options.headers } } : {}),
      ...(id !== undefined ? { id } : {}),
      ...(priority !== undefined ? { priority } : {}),
    };
    const what = `upsert schedule "${name}" of queue "${this.#queue.name}"`;
    try {
      const { js, jsm } = await this.#api();
      const have = await this.#read(jsm, name);
      if (have && JSON.stringify(have.def) === JSON.stringify(def)) return scheduleInfo(name, have.def, have.updatedAt, have.last);
      const ack = await js.publish(this.#subject("def", name), JSON.stringify(def), { timeout: 5_000 });
      const sm = await jsm.streams.getMessage(this.#queue.names.scheduleStream, { seq: ack.seq });
      return scheduleInfo(name, def, sm ? storedMs(sm) : Date.now(), have?.last);
    } catch (err) {
      throw mapNatsError(err, what);
    }
  }

  /** The schedule `name`, or `undefined` if there is none. */
  async get(name: string): Promise<ScheduleInfo | undefined> {
    checkScheduleName(name);
    try {
      const { jsm } = await this.#api();
      const r = await this.#read(jsm, name);
      return r ? scheduleInfo(name, r.def, r.updatedAt, r.last) : undefined;
    } catch (err) {
      throw mapNatsError(err, `get schedule "${name}" of queue "${this.#queue.name}"`);
    }
  }

  /** Every schedule of the queue, by name (at most 10,000). */
  async list(): Promise<ScheduleInfo[]> {
    const n = this.#queue.names;
    try {
      const { jsm } = await this.#api();
      const prefix = `${n.scheduleSubject}.def.`;
      const si = await jsm.streams.info(n.scheduleStream, { subjects_filter: `${prefix}*` });
      const names = Object.keys(si.state.subjects ?? {})
        .map((s) => s.slice(prefix.length))
        .sort()
        .slice(0, MAX_LIST);
      const out: ScheduleInfo[] = [];
      for (const name of names) {
        const r = await this.#read(jsm, name);
        if (r) out.push(scheduleInfo(name, r.def, r.updatedAt, r.last));
      }
      return out;
    } catch (err) {
      throw mapNatsError(err, `list schedules of queue "${this.#queue.name}"`);
    }
  }

  /**
   * Removes the schedule `name`: no tick after this makes a job (a tick's job already published
   * stays in the queue).
   * @returns whether there was such a schedule.
   */
  async remove(name: string): Promise<boolean> {
    checkScheduleName(name);
    try {
      const { js, jsm } = await this.#api();
      if (!(await this.#read(jsm, name))) return false;
      // A marker rather than a purge: running processes see the removal through their watch.
      const h = natsHeaders();
      h.set(REMOVED, "1");
      await js.publish(this.#subject("def", name), new Uint8Array(0), { headers: h, timeout: 5_000 });
      await jsm.streams.purge(this.#queue.names.scheduleStream, { filter: this.#subject("last", name) });
      return true;
    } catch (err) {
      throw mapNatsError(err, `remove schedule "${name}" of queue "${this.#queue.name}"`);
    }
  }

  async #read(jsm: JetStreamManager, name: string): Promise<{ def: DefRecord; updatedAt: number; last: LastRecord | undefined } | undefined> {
    const stream = this.#queue.names.scheduleStream;
    const d = await lastFor(jsm, stream, this.#subject("def", name));
    if (!d || d.header?.has(REMOVED)) return undefined;
    const l = await lastFor(jsm, stream, this.#subject("last", name));
    return { def: JSON.parse(textDecoder.decode(d.data)) as DefRecord, updatedAt: storedMs(d), last: l ? (JSON.parse(textDecoder.decode(l.data)) as LastRecord) : undefined };
  }
}

async function lastFor(jsm: JetStreamManager, stream: string, subject: string): Promise<StoredMsg | null> {
  try {
    return await jsm.streams.getMessage(stream, { last_by_subj: subject });
  } catch (err) {
    if (apiCode(err) === API.noMessageFound || /no message found/i.test((err as Error).message)) return null;
    throw err;
  }
}

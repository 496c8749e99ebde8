import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { DiscardPolicy, jetstream, jetstreamManager, type JetStreamManager, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { QueueNotFoundError, ValidationError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { describe, type Queue } from "../queue/define.ts";
import { jsOptions } from "../transport/api.ts";
import { ConnectionHub, type TransportUser } from "../transport/hub.ts";

/** Options of {@link pauseQueue}. */
export interface PauseOptions {
  /**
   * When the pause ends by itself, in ms since the epoch (`Date.now() + 10 * 60_000` for ten
   * minutes). Each worker resumes at that time by its own clock.
   * @default undefined (paused until {@link resumeQueue})
   */
  untilMs?: number;
}

/** A queue's pause record, as {@link pauseState} reads it. */
export interface PauseState {
  /** Whether workers of the queue are kept from starting jobs now. */
  readonly paused: boolean;
  /** When a pause with `untilMs` ends (ms since the epoch); `undefined` for an open-ended pause or none. */
  readonly untilMs: number | undefined;
}

/** @internal The record kept per queue: the last one on the subject wins. */
interface PauseRecord {
  paused: boolean;
  untilMs?: number;
  /** When it was written (ms since the epoch), for operators reading the stream. */
  at: number;
}

/** How often a worker reads the record although no notice came (a lost notice's worst case). */
const RECHECK_MS = 60_000;

const NOT_PAUSED: PauseState = Object.freeze({ paused: false, untilMs: undefined });

/** @internal The stream and subject holding a queue's pause record. */
export function pauseNames(queue: Queue<unknown, unknown>): { stream: string; subject: string } {
  return { stream: `${queue.names.stream}_PAUSE`, subject: `jetq.pause.${queue.name}` };
}

/**
 * @internal The pause stream: one message per queue, on file storage whatever the queue's storage
 * (a pause must survive a server restart). Created by the first {@link pauseQueue}, so a queue
 * that is never paused has no such stream.
 */
export function pauseStreamConfig(queue: Queue<unknown, unknown>): Partial<StreamConfig> {
  const p = pauseNames(queue);
  return {
    name: p.stream,
    subjects: [p.subject],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    num_replicas: queue.replicas,
    max_msgs_per_subject: 1,
    discard: DiscardPolicy.Old,
  };
}

/** What a record means now: an expired `untilMs` is no pause. */
function stateOf(rec: PauseRecord | undefined, now = Date.now()): PauseState {
  if (!rec || rec.paused !== true) return NOT_PAUSED;
  const until = typeof rec.untilMs === "number" && Number.isFinite(rec.untilMs) ? rec.untilMs : undefined;
  if (until !== undefined && until <= now) return NOT_PAUSED;
  return { paused: true, untilMs: until };
}

function parse(data: Uint8Array): PauseRecord | undefined {
  try {
    const v = JSON.parse(new TextDecoder().decode(data)) as unknown;
    return typeof v === "object" && v !== null ? (v as PauseRecord) : undefined;
  } catch {
    return undefined;
  }
}

/** @internal Reads the queue's pause record; no stream or no record is "not paused". */
export async function readPause(jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<PauseState> {
  const p = pauseNames(queue);
  try {
    const m = await jsm.streams.getMessage(p.stream, { last_by_subj: p.subject });
    return m ? stateOf(parse(m.data)) : NOT_PAUSED;
  } catch (err) {
    const code = apiCode(err);
    if (code === API.streamNotFound || code === API.noMessageFound) return NOT_PAUSED;
    throw mapNatsError(err, `read the pause state of queue "${queue.name}"`);
  }
}

async function manager(nc: NatsConnection, queue: Queue<unknown, unknown>, what: string): Promise<JetStreamManager> {
  try {
    return await jetstreamManager(nc, jsOptions(queue));
  } catch (err) {
    throw mapNatsError(err, what);
  }
}

async function write(nc: NatsConnection, queue: Queue<unknown, unknown>, rec: PauseRecord, what: string): Promise<void> {
  const jsm = await manager(nc, queue, what);
  const cfg = pauseStreamConfig(queue);
  try {
    await jsm.streams.info(queue.names.stream);
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, what);
    throw new QueueNotFoundError(`${what}: the queue does not exist (no stream ${queue.names.stream}). Create it with provisionQueue() or: jetq provision ${queue.name}`, { cause: err });
  }
  try {
    await jsm.streams.info(cfg.name!);
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, what);
    // Resuming a queue never paused: nothing to record.
    if (!rec.paused) return;
    try {
      await jsm.streams.add(cfg as StreamConfig);
    } catch (e) {
      // 10058: another process created it meanwhile.
      if (apiCode(e) !== 10058) throw mapNatsError(e, what);
    }
  }
  try {
    // The publish reaches the workers' subscriptions on the subject too: they hear of it at once.
    await jetstream(nc, jsOptions(queue)).publish(pauseNames(queue).subject, JSON.stringify(rec), { timeout: 10_000 });
  } catch (err) {
    throw mapNatsError(err, what);
  }
}

/**
 * Pauses a queue: every worker of it, in every process, stops starting jobs within a second
 * (running jobs finish and are acked as usual; jobs wait in the queue, using no attempt). The
 * pause is a record on the server, so it holds for workers started later and across server
 * restarts, until {@link resumeQueue} or `untilMs`.
 *
 * @example
 * ```ts
 * await pauseQueue(nc, emails, { untilMs: Date.now() + 10 * 60_000 }); // ten minutes
 * ```
 * @throws {@link ValidationError} `untilMs` is not a time in the future.
 * @throws {@link QueueNotFoundError} the queue was not provisioned.
 * @throws {@link ConnectionError} or {@link PermissionError} the record could not be written.
 */
export async function pauseQueue<In, Out>(nc: NatsConnection, queue: Queue<In, Out>, options: PauseOptions = {}): Promise<void> {
  const q = queue as Queue<unknown, unknown>;
  const rec: PauseRecord = { paused: true, at: Date.now() };
  if (options.untilMs !== undefined) {
    const u = options.untilMs;
    if (typeof u !== "number" || !Number.isSafeInteger(u) || u <= rec.at) {
      throw new ValidationError(
        `Expected \`untilMs\` to be a time in the future in ms since the epoch (e.g. Date.now() + 60_000), got ${describe(u)}`,
        [{ path: ["untilMs"], message: "not a future time in ms since the epoch", code: "invalid_value" }],
      );
    }
    rec.untilMs = u;
  }
  await write(nc, q, rec, `pause queue "${queue.name}"`);
}

/**
 * Resumes a paused queue: its workers start pulling again within a second. Resuming a queue that
 * is not paused does nothing.
 * @throws {@link QueueNotFoundError} the queue was not provisioned.
 * @throws {@link ConnectionError} or {@link PermissionError} the record could not be written.
 */
export async function resumeQueue<In, Out>(nc: NatsConnection, queue: Queue<In, Out>): Promise<void> {
  await write(nc, queue as Queue<unknown, unknown>, { paused: false, at: Date.now() }, `resume queue "${queue.name}"`);
}

/**
 * Whether the queue is paused now (a pause whose `untilMs` has passed is over).
 * @throws {@link ConnectionError} or {@link PermissionError} the record could not be read.
 */
export async function isPaused<In, Out>(nc: NatsConnection, queue: Queue<In, Out>): Promise<boolean> {
  return (await pauseState(nc, queue)).paused;
}

/**
 * The queue's pause: whether it is paused and until when.
 * @throws {@link ConnectionError} or {@link PermissionError} the record could not be read.
 */
export async function pauseState<In, Out>(nc: NatsConnection, queue: Queue<In, Out>): Promise<PauseState> {
  const q = queue as Queue<unknown, unknown>;
  return readPause(await manager(nc, q, `read the pause state of queue "${queue.name}"`), q);
}

/**
 * @internal A worker's view of its queue's pause. It subscribes to the record's subject (every
 * pause and resume is published there, so it hears of them at once, with no polling) and reads
 * the stored record at start and after every reconnect (a change made while it was disconnected
 * reached nobody). A pause with `untilMs` ends on a local timer. A record it cannot read leaves
 * the last known state in place and is reported.
 */
export class PauseWatch implements TransportUser {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #changed: () => void;
  readonly #error: (err: Error) => void;
  #state: PauseState = NOT_PAUSED;
  #sub: Subscription | undefined;
  #timer: NodeJS.Timeout | undefined;
  /** Reads in progress and whether another was asked for meanwhile: one read at a time. */
  #reading = false;
  #again = false;
  #stopped = false;
  #lastRead = 0;
  /** What the worker was last told (the getter turns false by itself when `untilMs` passes). */
  #told = false;

  constructor(nc: NatsConnection, jsm: JetStreamManager, queue: Queue<unknown, unknown>, changed: () => void, error: (err: Error) => void) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#queue = queue;
    this.#changed = changed;
    this.#error = error;
  }

  /** Whether the worker must not start jobs now. */
  get paused(): boolean {
    const s = this.#state;
    if (!s.paused) return false;
    return s.untilMs === undefined || Date.now() < s.untilMs;
  }

  /** Subscribes, then reads the stored record (so no change falls between the two). */
  async start(): Promise<void> {
    this.#sub = this.#nc.subscribe(pauseNames(this.#queue).subject, { callback: () => this.#refresh() });
    ConnectionHub.of(this.#nc).join(this, RECHECK_MS);
    this.#apply(await readPause(this.#jsm, this.#queue));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    ConnectionHub.of(this.#nc).leave(this);
    try {
      this.#sub?.unsubscribe();
    } catch {
      // the connection is closed
    }
  }

  /** Reads the stored record again: the newest write wins whatever order notices arrive in. */
  #refresh(): void {
    if (this.#stopped) return;
    if (this.#reading) {
      this.#again = true;
      return;
    }
    this.#reading = true;
    this.#lastRead = Date.now();
    readPause(this.#jsm, this.#queue).then(
      (s) => this.#apply(s),
      (err: unknown) => this.#error(err instanceof Error ? err : new Error(String(err))),
    ).finally(() => {
      this.#reading = false;
      if (this.#again) {
        this.#again = false;
        this.#refresh();
      }
    });
  }

  #apply(s: PauseState): void {
    if (this.#stopped) return;
    this.#state = s;
    clearTimeout(this.#timer);
    if (s.paused && s.untilMs !== undefined) {
      // setTimeout takes at most 2^31-1 ms; a longer pause is re-armed when this fires.
      const left = Math.min(2 ** 31 - 1, Math.max(0, s.untilMs - Date.now()));
      this.#timer = setTimeout(() => this.#apply(this.#state), left);
      this.#timer.unref();
    }
    const now = this.paused;
    if (now !== this.#told) {
      this.#told = now;
      this.#changed();
    }
  }

  sweep(now: number): void {
    // The hub ticks at its shortest user's period: read at most once a minute here. A notice
    // lost (the subscription dropped it as a slow consumer) is caught by this read.
    if (now - this.#lastRead >= RECHECK_MS) this.#refresh();
  }
  reconnected(): void {
    this.#refresh();
  }
  closed(): void {}
  denied(): void {}
}

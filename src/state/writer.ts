import type { NatsConnection } from "@nats-io/transport-node";
import type { ZodType } from "zod";
import { ValidationError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import type { DeadLetterReason } from "../dlq/route.ts";
import type { Queue } from "../queue/define.ts";
import { type RecordEvent, type StateRecord, stateKey } from "./record.ts";
import { StoreConfirmer, type Stored } from "./confirm.ts";
import { Turn } from "./turn.ts";

/** At most one progress write per job per this many ms; the last value is always written. */
export const PROGRESS_EVERY_MS = 100;
/**
 * A job is written `active` only once it has run this long: a job done sooner goes from waiting
 * to completed with one write (one stored message per job, not two, for handlers of a few ms).
 */
export const ACTIVE_AFTER_MS = 50;
/**
 * @internal How many completed jobs per handler slot may wait for their `completed` record's
 * confirmation without holding a slot: the worker pulls and runs the next jobs meanwhile. The
 * window must cover the jobs a worker finishes in one confirmation round trip; with one slot's
 * worth (64 of them at concurrency 64) a draining worker with results stalled on a loaded machine
 * (in-process A/B, 15,000 jobs, 5 runs: 22.0k jobs/s with 1x, 26.7k with 4x; 1 ms handlers 16.3k
 * and 18.2k). Bounded: they count against the queue's `maxAckPending` like any un-acked job.
 */
export const STORING_PER_SLOT = 4;
/** Room left under the server's max_payload for the rest of the record around a result or progress value. */
const RECORD_SLACK = 1024;

/** @internal What the worker's side of job state needs to know about one delivery. */
export interface Tracked {
  readonly id: string;
  readonly seq: number;
  readonly attempt: number;
}

/**
 * @internal The state of one job in one worker, from the start of an attempt until its slot is
 * freed: its progress (throttled) and its result, and the writes that report them.
 */
export class JobState {
  readonly #w: StateWriter;
  readonly #job: Tracked;
  readonly #publishedAtMs: number;
  readonly subject: string;
  startedAt = 0;
  progressValue: unknown = undefined;
  /** The handler's result, checked ({@link StateWriter.result}), and its JSON text. */
  result: unknown = undefined;
  resultText: string | undefined = undefined;
  #lastProgressAt = 0;
  /** A progress value not written yet (its write waits for the throttle). */
  #pending = false;
  #timer: NodeJS.Timeout | undefined;
  /** Writes `active` once the job has run {@link ACTIVE_AFTER_MS}; cleared by the job's final write. */
  #activeTimer: NodeJS.Timeout | undefined;
  #closed = false;
  /** A final record (completed, retrying, dead) is written or being written: no `active` write any more. */
  final = false;

  constructor(w: StateWriter, job: Tracked, publishedAtMs: number) {
    this.#w = w;
    this.#job = job;
    this.#publishedAtMs = publishedAtMs;
    this.subject = `${w.prefix}${stateKey(job.id)}`;
  }

  get id(): string {
    return this.#job.id;
  }

  /** Writes `active` after `ms`, unless a final record (or the end of the delivery) comes first. */
  armActive(ms: number): void {
    this.#activeTimer = setTimeout(() => {
      this.#activeTimer = undefined;
      if (this.final || this.#closed) return;
      this.#w.fire(this, this.record("active", "active"));
      // The throttle counts from when `active` was written, not from when it was due: after a
      // stalled event loop both timers are late, and a progress write at once would replace
      // `active` (one record per job) before any reader saw it.
      this.#lastProgressAt = Date.now();
      if (this.#timer !== undefined) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#armProgress(PROGRESS_EVERY_MS);
      }
    }, ms);
    this.#activeTimer.unref();
  }

  /**
   * The attempt started now. The `active` write counts as the job's first write for the throttle:
   * a progress value reported at once does not replace it (one record per job) before readers
   * that keep up have seen it.
   */
  begun(now: number): void {
    this.startedAt = now;
    this.#lastProgressAt = now;
  }

  /** `job.progress(value)`: checked now (a value that cannot be stored throws), written throttled. */
  progress(value: unknown): void {
    const encoded = this.#w.encode(value, "progress");
    // A handler still running after its attempt ended (timed out, stuck) must not make it active again.
    if (this.#closed || this.final) return;
    this.progressValue = encoded === undefined ? undefined : value;
    const wait = this.#lastProgressAt + PROGRESS_EVERY_MS - Date.now();
    if (wait <= 0 && this.#timer === undefined) {
      this.#writeProgress();
      return;
    }
    this.#pending = true;
    if (this.#timer === undefined) this.#armProgress(Math.max(0, wait));
  }

  #armProgress(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#pending && !this.#closed) this.#writeProgress();
    }, ms);
    this.#timer.unref();
  }

  #writeProgress(): void {
    this.#pending = false;
    this.#lastProgressAt = Date.now();
    this.#w.fire(this, this.record("progress", "active"));
  }

  /** Before a final write: a progress value still held back by the throttle goes out first. */
  flush(): void {
    clearTimeout(this.#activeTimer);
    this.#activeTimer = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending && !this.#closed) this.#writeProgress();
  }

  /** The slot was freed: no more writes for this delivery. */
  close(): void {
    this.#closed = true;
    this.#pending = false;
    clearTimeout(this.#activeTimer);
    this.#activeTimer = undefined;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  record(ev: RecordEvent, state: StateRecord["state"], extra?: Partial<StateRecord>): StateRecord {
    const j = this.#job;
    const rec: StateRecord = {
      id: j.id,
      seq: j.seq,
      ev,
      state,
      attempt: j.attempt,
      publishedAt: this.#publishedAtMs,
      leaseMs: this.#w.leaseMs,
      worker: this.#w.worker,
    };
    if (this.startedAt) rec.startedAt = this.startedAt;
    if (this.progressValue !== undefined) rec.progress = this.progressValue;
    return extra ? Object.assign(rec, extra) : rec;
  }
}

/**
 * @internal Writes job state for a queue with `results` (docs: README "Results and progress").
 * What only informs (active, progress, lease renewals, retrying) is a plain publish into the
 * state stream, no round trip; what a caller waits on (completed, dead) is confirmed by the server
 * before the job is acked or removed. Writes of many jobs overlap: each confirmed write is one
 * request in flight, so a draining worker's writes are pipelined, not serialised.
 */
export class StateWriter {
  readonly #nc: NatsConnection;
  readonly #confirmer: StoreConfirmer;
  /**
   * The end of this turn, shared with the worker's acks and pull requests ({@link StateWriter.defer}):
   * a turn's `completed` records, acks and pull leave in one socket write.
   */
  readonly #turn = new Turn();
  readonly #schema: ZodType | undefined;
  readonly #queue: string;
  readonly prefix: string;
  readonly leaseMs: number;
  readonly worker: string;
  /** Reported, never thrown into the worker's paths. */
  readonly #onError: (err: Error) => void;

  constructor(nc: NatsConnection, queue: Queue<unknown, unknown>, worker: string, onError: (err: Error) => void) {
    this.#nc = nc;
    this.#confirmer = new StoreConfirmer(nc, 5_000, this.#turn);
    this.#schema = queue.resultSchema;
    this.#queue = queue.name;
    this.prefix = `${queue.names.stateSubject}.`;
    this.leaseMs = queue.ackWaitMs;
    this.worker = worker;
    this.#onError = onError;
  }

  /**
   * An attempt starts: the job is `active`. Written once it has run {@link ACTIVE_AFTER_MS}, and
   * only for a job still running then: a job done sooner goes from waiting to completed with one
   * write, which keeps a draining worker's throughput with results on.
   */
  begin(job: Tracked, publishedAtMs: number): JobState {
    const s = new JobState(this, job, publishedAtMs);
    s.begun(Date.now());
    s.armActive(ACTIVE_AFTER_MS);
    return s;
  }

  /**
   * Runs `fn` at the end of this turn, together with this turn's confirmed writes: the worker of a
   * queue with `results` defers its ack flush and pull here, so they share one socket write.
   */
  defer(fn: () => void): void {
    this.#turn.defer(fn);
  }

  /** The worker stopped: nothing more waits for a confirmation. */
  close(): void {
    this.#confirmer.close();
  }

  /** The worker renewed the job's lease: so does its record (an `active` record ages out with its lease). */
  lease(s: JobState): void {
    if (!s.final) this.fire(s, s.record("lease", "active"));
  }

  /** Informational write: sent without waiting for the server (a lost one is corrected by the next). */
  fire(s: JobState, rec: StateRecord): void {
    try {
      this.#nc.publish(s.subject, JSON.stringify(rec));
    } catch (err) {
      this.#onError(mapNatsError(err, `write the state of job ${rec.id} of queue "${this.#queue}"`));
    }
  }

  /** The job was handed back without an outcome (stop(), a deferral): it waits in the queue again. */
  released(s: JobState): void {
    s.flush();
    s.final = true;
    this.fire(s, s.record("released", "waiting"));
  }

  /** The attempt failed with attempts left. */
  retrying(s: JobState, error: Error, delayMs: number): void {
    s.flush();
    s.final = true;
    const now = Date.now();
    this.fire(s, s.record("retrying", "retrying", { finishedAt: now, retryAt: now + delayMs, error: errorOf(error) }));
  }

  /**
   * The handler resolved: store its result, confirmed. The caller acks only once `done` is called
   * without an error. `done` is called once, never synchronously, and must not throw.
   */
  completed(s: JobState, done: Stored): void {
    s.flush();
    s.final = true;
    const json = JSON.stringify(s.record("completed", "completed", { finishedAt: Date.now() }));
    // The result was encoded when it was checked: spliced in, not encoded again.
    const id = s.id;
    this.#confirmer.storeThen(s.subject, s.resultText === undefined ? json : `${json.slice(0, -1)},"result":${s.resultText}}`, (err) =>
      done(err && mapNatsError(err, `store the state of job ${id} of queue "${this.#queue}"`)),
    );
  }

  /** A job that never started (rejected, or dead-lettered for its crashes): tracked only for its final write. */
  track(job: Tracked, publishedAtMs: number): JobState {
    return new JobState(this, job, publishedAtMs);
  }

  /** The job went to the dead letters (confirmed there already); confirmed too, before the original is removed. */
  dead(s: JobState, reason: DeadLetterReason, error: Error): Promise<void> {
    s.flush();
    s.final = true;
    return this.#confirmed(s, s.id, JSON.stringify(s.record("dead", "dead", { finishedAt: Date.now(), reason, error: errorOf(error) })));
  }

  async #confirmed(s: JobState, id: string, json: string): Promise<void> {
    try {
      await this.#confirmer.store(s.subject, json);
    } catch (err) {
      throw mapNatsError(err, `store the state of job ${id} of queue "${this.#queue}"`);
    }
  }

  /**
   * Checks a result (or progress value) can be stored: JSON, and small enough for one message.
   * Returns its JSON text (undefined for `undefined`). Throws {@link ValidationError}.
   */
  encode(value: unknown, what: "result" | "progress"): string | undefined {
    let text: string | undefined;
    try {
      text = JSON.stringify(value);
    } catch (err) {
      throw new ValidationError(`the job's ${what} is not JSON-encodable: ${(err as Error)?.message ?? String(err)}`, [], { cause: err });
    }
    if (text === undefined) {
      if (value === undefined) return undefined;
      throw new ValidationError(`the job's ${what} is not JSON-encodable (a ${typeof value}); return plain data`, []);
    }
    const max = (this.#nc.info?.max_payload ?? 1024 * 1024) - RECORD_SLACK;
    const size = Buffer.byteLength(text);
    if (size > max) {
      throw new ValidationError(
        `the job's ${what} is ${size} bytes, above the ${max} bytes a job state record can hold (the server's max_payload less ${RECORD_SLACK}); store large data elsewhere and return a reference`,
        [{ path: [], message: `${size} bytes`, code: "too_big" }],
      );
    }
    return text;
  }

  /** The handler's result: checked against the queue's `resultSchema`, then for storing, and kept in `s`. Throws {@link ValidationError}. */
  result(s: JobState, value: unknown): void {
    const out = checkResult(this.#schema, value);
    s.resultText = this.encode(out, "result");
    s.result = out;
  }
}

/** @internal A result checked against `schema` (when there is one); throws {@link ValidationError} on a mismatch. */
export function checkResult(schema: ZodType | undefined, value: unknown): unknown {
  if (!schema) return value;
  let parsed;
  try {
    parsed = schema.safeParse(value);
  } catch (err) {
    throw new ValidationError(`the queue's resultSchema threw while checking the handler's result (it must be synchronous): ${(err as Error)?.message ?? String(err)}`, [], { cause: err });
  }
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message, code: i.code }));
    const summary = issues.slice(0, 3).map((i) => `${i.path.length ? i.path.join(".") : "(root)"}: ${i.message}`).join("; ");
    throw new ValidationError(`the handler's result does not match the queue's resultSchema: ${summary}`, issues);
  }
  return parsed.data;
}

function errorOf(err: Error): { name: string; message: string } {
  return { name: String(err.name || "Error").slice(0, 128), message: String(err.message ?? "").slice(0, 4096) };
}

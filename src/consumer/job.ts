import type { Delivered } from "./pull.ts";
import { scheduleOf } from "../schedule/spec.ts";
import type { LedgerRecord } from "./decide.ts";
import type { AttemptSpan } from "../telemetry/hooks.ts";
import type { JobState } from "../state/writer.ts";

/** What a handler (and each middleware) receives for each attempt of a job. */
export interface Job<T> {
  /** The job id: the producer's `id` option, or `seq-<stream sequence>` when none was given. Stable across attempts and a dead-letter replay. */
  readonly id: string;
  /** The payload, validated and typed by the queue's schema. */
  readonly data: T;
  /**
   * 1 on the first attempt, 2 after one handler failure, and so on: handler failures + 1. A
   * redelivery because a process died, a `stop()` hand-back or a deferral does not count.
   */
  readonly attempt: number;
  /** The queue's `maxAttempts`: when `attempt === maxAttempts` a failure dead-letters the job. */
  readonly maxAttempts: number;
  /** Stream sequence of the job; stable across attempts. */
  readonly seq: number;
  /** When the job was stored by the server. */
  readonly publishedAt: Date;
  /** Header values carried with the job (first value of each name). */
  readonly headers: Readonly<Record<string, string>>;
  /** Aborts when the attempt times out or the worker is stopped past its deadline. Pass it to fetch, database calls and the like. */
  readonly signal: AbortSignal;
  /** Whether this attempt runs alone in its worker because the job's last delivery ended without an outcome (its process died). */
  readonly isolated: boolean;
  /**
   * The schedule that made this job and the tick it was made for (see {@link Schedules});
   * `undefined` for a job published otherwise.
   */
  readonly schedule: { readonly name: string; readonly tick: Date } | undefined;
  /** Extends the job's lease now (an in-progress ack). The worker already does this on its own every `ackWaitMs / 3`. */
  extendLease(): void;
  /**
   * Reports the job's progress: any JSON value (a number, an object). Readable with `Jobs.get`
   * and seen by `Jobs.events` while the job runs. Written at most once per 100 ms per job; the
   * last value is always written. Does nothing on a queue without `results`.
   * @throws {@link ValidationError} the value is not JSON-encodable or too large for a record.
   */
  progress(value: unknown): void;
}

/** Summary of one job, as carried by worker events. */
export interface JobEvent {
  /** The job's id: the `id` given at publish, else `seq-<seq>`. */
  id: string;
  /** The job's sequence in the queue's stream. */
  seq: number;
  /** Which attempt this was, from 1. */
  attempt: number;
}

/** @internal The worker's state of one delivery, from arrival until its slot is freed. */
export class Running {
  /** Index in the worker's slot table; -1 when not held. */
  slot = -1;
  controller: AbortController | undefined;
  /** The slot was freed: nothing more happens to this delivery. */
  settled = false;
  /** The delivery was answered (ack, nak or term sent, or being confirmed): no more in-progress acks. */
  answered = false;
  /** The handler chain has settled (or never started). A stuck handler keeps its slot until it does. */
  chainDone = true;
  /** Called when a chain that timed out settles at last (frees a stuck slot). */
  onChainDone: (() => void) | undefined;
  /** The attempt timed out; its handler may still run. */
  timedOut = false;
  /** Runs alone (a suspect). */
  isolated = false;
  lastLease: number;
  timer: NodeJS.Timeout | undefined;
  span: AttemptSpan | undefined;
  /** The job's ledger record as it stands for this delivery, and its revision for compare-and-set. */
  record: LedgerRecord | undefined;
  revision = 0;
  /** Its job state (progress, result), for a queue with `results`. */
  state: JobState | undefined;
  readonly msg: Delivered;
  readonly event: JobEvent;
  /** When the worker took this delivery (epoch ms). */
  readonly since: number;
  constructor(msg: Delivered, event: JobEvent, now: number) {
    this.msg = msg;
    this.event = event;
    this.lastLease = now;
    this.since = now;
  }
  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    return this.controller.signal;
  }
  abort(reason: Error): void {
    this.controller ??= new AbortController();
    if (!this.controller.signal.aborted) this.controller.abort(reason);
  }
}

/** @internal The {@link Job} a handler sees: a view of one {@link Running} delivery. */
export class JobImpl<T> implements Job<T> {
  readonly #r: Running;
  #data: T;
  readonly maxAttempts: number;
  #headers: Record<string, string> | undefined;
  constructor(r: Running, data: T, maxAttempts: number) {
    this.#r = r;
    this.#data = data;
    this.maxAttempts = maxAttempts;
  }
  /** The delivery behind a job (jetq's own middleware steps need it). */
  static running(job: Job<unknown>): Running | undefined {
    return job instanceof JobImpl ? job.#r : undefined;
  }
  /** Replaces the payload with the schema's output (the validation step). */
  static setData<T>(job: Job<T>, data: T): void {
    if (job instanceof JobImpl) job.#data = data;
  }
  get data(): T {
    return this.#data;
  }
  get id(): string {
    return this.#r.event.id;
  }
  get attempt(): number {
    return this.#r.event.attempt;
  }
  get seq(): number {
    return this.#r.event.seq;
  }
  get isolated(): boolean {
    return this.#r.isolated;
  }
  get publishedAt(): Date {
    return new Date(this.#r.msg.storedAtMs);
  }
  get headers(): Readonly<Record<string, string>> {
    if (!this.#headers) {
      const out: Record<string, string> = {};
      const h = this.#r.msg.headers;
      if (h) for (const [k, v] of h) if (v[0] !== undefined) out[k] = v[0];
      this.#headers = out;
    }
    return this.#headers;
  }
  get signal(): AbortSignal {
    return this.#r.signal;
  }
  get schedule(): { readonly name: string; readonly tick: Date } | undefined {
    return scheduleOf(this.#r.msg.headers);
  }
  progress(value: unknown): void {
    this.#r.state?.progress(value);
  }
  extendLease(): void {
    if (!this.#r.settled && !this.#r.answered) {
      this.#r.msg.working();
      this.#r.lastLease = Date.now();
    }
  }
}

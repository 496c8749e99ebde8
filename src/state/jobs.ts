import type { NatsConnection, Subscription } from "@nats-io/transport-node";
import { DeliverPolicy, jetstream, type JetStreamClient, JetStreamApiError, jetstreamManager, type JetStreamManager, type StoredMsg } from "@nats-io/jetstream";
import { ConfigError, JobFailedError, PermissionError, TimeoutError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { jobIdOf } from "../dlq/route.ts";
import type { DeadLetterReason } from "../dlq/route.ts";
import type { Queue } from "../queue/define.ts";
import { HDR } from "../queue/headers.ts";
import { jsOptions } from "../transport/api.ts";
import { heldJobId } from "../schedule/held.ts";
import { dueOf } from "../schedule/mover.ts";
import { type JobPage, listJobs, type ListJobsOptions } from "./list.ts";
import { infoOf, type JobInfo, type JobStateError, parseRecord, type StateRecord, stateKey } from "./record.ts";

/** Options of {@link Jobs.wait} and `receipt.result()`. */
export interface WaitOptions {
  /** How long to wait for the job to complete or die before {@link TimeoutError}. @default 60000 */
  timeoutMs?: number;
  /** Stops waiting: the promise rejects with the signal's reason. @default undefined */
  signal?: AbortSignal;
}

/** Options of {@link Jobs.events}. */
export interface EventsOptions {
  /** Ends the iteration (the loop over it ends without an error). @default undefined: runs until you break out of the loop */
  signal?: AbortSignal;
}

/** A job's state changed, as {@link Jobs.events} reports it. */
export interface JobStateEvent {
  /** What happened: an attempt started, reported progress, completed, failed with attempts left, or the job was dead-lettered. */
  type: "active" | "progress" | "completed" | "retrying" | "dead";
  /** The job id. */
  id: string;
  /** The job's sequence in the queue's stream. */
  seq: number;
  /** The attempt, from 1. */
  attempt: number;
  /** When the worker wrote it. */
  at: Date;
  /** The progress value (`progress`; also the last one on later events of the attempt). */
  progress?: unknown;
  /** The handler's result (`completed`). */
  result?: unknown;
  /** The failure (`retrying`, `dead`). */
  error?: JobStateError;
  /** Why it was dead-lettered (`dead`). */
  reason?: DeadLetterReason;
  /** When the next attempt is due (`retrying`). */
  retryAt?: Date;
}

/**
 * This reader fell behind: `missed` state changes were written meanwhile and replaced by later
 * ones (a job keeps only its latest record) or expired before it read them. Workers never wait
 * for readers; a reader catches up from the latest record of each job.
 */
export interface JobGapEvent {
  /** Always `"gap"`. */
  type: "gap";
  /** How many state changes this reader did not see (lease renewals of long jobs included). */
  missed: number;
}

/** What {@link Jobs.events} yields. */
export type JobsEvent = JobStateEvent | JobGapEvent;

/** How often `wait()` reads the job's state besides listening for it (a change it did not hear, a reconnect). */
const WAIT_POLL_MS = 1_000;
/** Records an events() reader holds at most (the client's pull buffer); beyond it the server keeps them, or they are replaced. */
const EVENTS_BUFFER = 256;
const SEQ_ID = /^seq-(\d{1,16})$/;
const HELD_ID = /^delayed-(\d{1,16})$/;
/** JetStream's "wrong last sequence": a lookup probe that matched no job id (nothing was stored). */
const WRONG_LAST_SEQUENCE = 10071;
/** A last sequence no stream reaches: makes a probe publish fail unless its id is a duplicate. */
const NEVER_SEQ = Number.MAX_SAFE_INTEGER;

/**
 * Job state of a queue defined with `results`: look a job up by id, wait for its result, follow
 * every job's state changes. Reads what workers write to the queue's state stream (one record per
 * job, kept `results.keepMs` after its last change); any process can read it.
 *
 * @example
 * ```ts
 * const jobs = new Jobs(nc, reports);
 * const info = await jobs.get("report-42");      // { state: "active", progress: 0.4, ... }
 * const pdf = await jobs.wait("report-42", { timeoutMs: 30_000 });
 * ```
 */
export class Jobs<R = unknown> {
  readonly #nc: NatsConnection;
  readonly #queue: Queue<unknown, unknown>;
  #jsm: Promise<JetStreamManager> | undefined;
  #js: JetStreamClient | undefined;

  /** @throws {@link ConfigError} the queue keeps no job state (define it with `results: { keepMs }`). */
  constructor(nc: NatsConnection, queue: Queue<unknown, unknown>) {
    const q = queue;
    if (!q?.results) {
      throw new ConfigError(
        `queue "${q?.name}" keeps no job state: define it with \`results: { keepMs }\` (and provision it again) to look jobs up, wait for results or follow events`,
      );
    }
    this.#nc = nc;
    this.#queue = q;
  }

  #manager(): Promise<JetStreamManager> {
    this.#jsm ??= jetstreamManager(this.#nc, jsOptions(this.#queue));
    this.#jsm.catch(() => {
      this.#jsm = undefined;
    });
    return this.#jsm;
  }

  #subject(id: string): string {
    return `${this.#queue.names.stateSubject}.${stateKey(id)}`;
  }

  /**
   * Where the job `id` stands, or `undefined` when nothing is known of it: no worker has taken it
   * yet (a `seq-<n>` id is found waiting in the queue; an id you chose is not), or its record
   * expired (`results.keepMs` after its last change), or there is no such job.
   *
   * @throws {@link QueueNotFoundError} the queue (or its state stream) was not provisioned.
   * @throws {@link ConnectionError} / {@link TimeoutError} the server could not be asked.
   */
  async get(id: string): Promise<JobInfo<R> | undefined> {
    return this.#get(id, true);
  }

  /** `get`; without `unrecorded`, only what the job's state record says (what `wait()` polls: no probes). */
  async #get(id: string, unrecorded: boolean): Promise<JobInfo<R> | undefined> {
    const what = `look up job ${JSON.stringify(id)} of queue "${this.#queue.name}"`;
    if (typeof id !== "string" || id.length === 0) throw new ConfigError(`Expected \`id\` to be a non-empty string, got ${String(id)}`);
    try {
      const jsm = await this.#manager();
      const m = await jsm.direct.getMessage(this.#queue.names.stateStream, { last_by_subj: this.#subject(id) });
      if (m) {
        let rec: StateRecord | undefined;
        try {
          rec = parseRecord(m.json());
        } catch {
          rec = undefined;
        }
        if (rec && rec.id === id) return infoOf<R>(rec, m.time.getTime(), Date.now());
      }
      return unrecorded ? await this.#unrecorded(jsm, id) : undefined;
    } catch (err) {
      throw mapNatsError(err, what);
    }
  }

  /**
   * A job with no state record yet: waiting in the queue, or delayed in the held stream. A
   * `seq-<n>` or `delayed-<n>` id names its sequence; another id (the producer's `id`, sent as
   * `Nats-Msg-Id`) is found through the stream's duplicate window, the server's own index of
   * msg ids: a probe publish with that id and an expected last sequence no stream reaches is
   * answered "duplicate of sequence n" when the id was published within `duplicateWindowMs`,
   * and refused (nothing stored) otherwise.
   */
  async #unrecorded(jsm: JetStreamManager, id: string): Promise<JobInfo<R> | undefined> {
    const n = this.#queue.names;
    const held = this.#queue.scheduling;
    const seqId = SEQ_ID.exec(id);
    if (seqId) return this.#waitingAt(jsm, id, Number(seqId[1]));
    const heldId = HELD_ID.exec(id);
    // A delayed job published without an id: held under this sequence, moved with this msg id.
    if (held && heldId) return (await this.#delayedAt(jsm, id, Number(heldId[1]))) ?? (await this.#waitingAt(jsm, id, await this.#probe(n.subject, id)));
    const seq = await this.#probe(n.subject, id);
    if (seq !== undefined) return this.#waitingAt(jsm, id, seq);
    if (!held) return undefined;
    return this.#delayedAt(jsm, id, await this.#probe(n.heldSubject, id));
  }

  /** The sequence the msg id `id` was stored under on `subject`'s stream within its duplicate window. */
  async #probe(subject: string, id: string): Promise<number | undefined> {
    this.#js ??= jetstream(this.#nc, jsOptions(this.#queue));
    try {
      const ack = await this.#js.publish(subject, new Uint8Array(0), { msgID: id, expect: { lastSequence: NEVER_SEQ }, timeout: 5_000 });
      return ack.duplicate ? ack.seq : undefined;
    } catch (err) {
      if (err instanceof JetStreamApiError && err.code === WRONG_LAST_SEQUENCE) return undefined;
      // A reader that may not publish there cannot ask: it knows the job once a worker took it.
      if (mapNatsError(err, "look up a job") instanceof PermissionError) return undefined;
      throw err;
    }
  }

  async #waitingAt(jsm: JetStreamManager, id: string, seq: number | undefined): Promise<JobInfo<R> | undefined> {
    if (seq === undefined) return undefined;
    const job = await directGet(jsm, this.#queue.names.stream, seq);
    if (!job || jobIdOf(job.header, job.seq) !== id) return undefined;
    return { id, seq: job.seq, state: "waiting", attempt: 1, publishedAt: job.time };
  }

  async #delayedAt(jsm: JetStreamManager, id: string, seq: number | undefined): Promise<JobInfo<R> | undefined> {
    if (seq === undefined) return undefined;
    const job = await directGet(jsm, this.#queue.names.heldStream, seq);
    if (!job || (job.header?.get(HDR.msgId) || heldJobId(job.seq)) !== id) return undefined;
    const storedMs = job.time.getTime();
    return { id, seq: job.seq, state: "delayed", attempt: 1, publishedAt: job.time, runAt: new Date(dueOf(job.header, storedMs)) };
  }

  /**
   * A page of the queue's waiting, active or delayed jobs: {@link listJobs} (which works for a
   * queue without `results` too).
   */
  list(options: ListJobsOptions = {}): Promise<JobPage> {
    return listJobs(this.#nc, this.#queue, options);
  }

  /**
   * Waits until the job `id` completes and resolves with its result (`undefined` when the handler
   * returned nothing). Works from any process, for a job published before or after the call.
   *
   * @throws {@link JobFailedError} the job was dead-lettered (its `reason` and last `error`).
   * @throws {@link TimeoutError} it did not complete within `timeoutMs` (it may still: wait again, or look it up).
   */
  wait(id: string, options: WaitOptions = {}): Promise<R> {
    const timeoutMs = options.timeoutMs ?? 60_000;
    if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs < 0) {
      return Promise.reject(new ConfigError(`Expected \`timeoutMs\` to be a number of milliseconds >= 0, got ${String(timeoutMs)}`));
    }
    const signal = options.signal;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<R>((resolve, reject) => {
      let sub: Subscription | undefined;
      let poll: NodeJS.Timeout | undefined;
      let done = false;
      const finish = (err: unknown, value?: R): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        clearInterval(poll);
        signal?.removeEventListener("abort", onAbort);
        try {
          sub?.unsubscribe();
        } catch {
          // closed connection: nothing to undo
        }
        if (err !== undefined) reject(err);
        else resolve(value as R);
      };
      const seen = (info: JobInfo<R> | undefined): void => {
        if (!info || done) return;
        if (info.state === "completed") finish(undefined, info.result as R);
        else if (info.state === "dead") {
          const reason = info.deadLetter?.reason ?? "unknown";
          const error = info.error ?? { name: "Error", message: "(no error recorded)" };
          finish(
            new JobFailedError(
              `job ${JSON.stringify(id)} of queue "${this.#queue.name}" was dead-lettered (${reason}) after attempt ${info.attempt}: ${error.name}: ${error.message}. Inspect or replay it with DeadLetterQueue or \`jetq dlq\`.`,
              id,
              reason,
              error,
              info.attempt,
            ),
          );
        }
      };
      const read = (): void => {
        // Only completed or dead ends a wait: the record is enough (no lookup probes per poll).
        this.#get(id, false).then(seen, (err: unknown) => {
          // A lost connection is final; anything else is tried again at the next poll.
          if (this.#nc.isClosed()) finish(err);
        });
      };
      const onAbort = (): void => finish(signal!.reason);
      const timer = setTimeout(
        () => finish(new TimeoutError(`job ${JSON.stringify(id)} of queue "${this.#queue.name}" did not complete within ${timeoutMs} ms; it may still: wait again, or look it up with Jobs.get`)),
        timeoutMs,
      );
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        // Listen first, then read: a change between the two is heard, one before it is read.
        sub = this.#nc.subscribe(this.#subject(id), {
          callback: (err, msg) => {
            if (err || done) return;
            let rec: StateRecord | undefined;
            try {
              rec = parseRecord(msg.json());
            } catch {
              return;
            }
            if (rec && rec.id === id) seen(infoOf<R>(rec, Date.now(), Date.now()));
          },
        });
      } catch (err) {
        finish(mapNatsError(err, `wait for job ${JSON.stringify(id)} of queue "${this.#queue.name}"`));
        return;
      }
      read();
      poll = setInterval(read, WAIT_POLL_MS);
    });
  }

  /**
   * Every job's state changes, as workers in any process write them, from now on: `active`,
   * `progress`, `completed`, `retrying`, `dead`. A reader that falls behind gets a
   * {@link JobGapEvent} with the count of changes it missed; it never slows workers down and
   * holds at most a few hundred records. Ends when `signal` aborts or the loop breaks.
   *
   * @example
   * ```ts
   * for await (const e of jobs.events({ signal })) console.log(e.type, e.type === "gap" ? e.missed : e.id);
   * ```
   */
  async *events(options: EventsOptions = {}): AsyncGenerator<JobsEvent, void, undefined> {
    const signal = options.signal;
    if (signal?.aborted) return;
    const n = this.#queue.names;
    let messages;
    try {
      const js = jetstream(this.#nc, jsOptions(this.#queue));
      const consumer = await js.consumers.get(n.stateStream, { deliver_policy: DeliverPolicy.New });
      messages = await consumer.consume({ max_messages: EVENTS_BUFFER });
    } catch (err) {
      throw mapNatsError(err, `follow the job events of queue "${this.#queue.name}"`);
    }
    const stop = (): void => messages.stop();
    signal?.addEventListener("abort", stop, { once: true });
    let last = 0;
    try {
      for await (const m of messages) {
        const seq = m.seq;
        // Every sequence of the state stream is a state write: the ones skipped were replaced by
        // a later write of the same job (one record per job) or expired before this reader got there.
        if (last > 0 && seq > last + 1) yield { type: "gap", missed: seq - last - 1 };
        last = seq;
        let rec: StateRecord | undefined;
        try {
          rec = parseRecord(m.json());
        } catch {
          continue;
        }
        // Lease renewals and hand-backs keep get() truthful; they are not events of their own.
        if (!rec || rec.ev === "lease" || rec.ev === "released") continue;
        yield eventOf(rec, m.info.timestampNanos);
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      messages.stop();
    }
  }
}

/** A stored message by sequence; undefined when it is gone (acked, moved, expired). */
async function directGet(jsm: JetStreamManager, stream: string, seq: number): Promise<StoredMsg | undefined> {
  try {
    return (await jsm.direct.getMessage(stream, { seq })) ?? undefined;
  } catch (err) {
    // 404: no message at that sequence (any more).
    if (err instanceof JetStreamApiError && err.code === 10037) return undefined;
    throw err;
  }
}

function eventOf(rec: StateRecord, nanos: number): JobStateEvent {
  const e: JobStateEvent = {
    type: rec.ev === "lease" || rec.ev === "released" ? "active" : rec.ev,
    id: rec.id,
    seq: rec.seq,
    attempt: rec.attempt,
    at: new Date(Math.floor(nanos / 1e6)),
  };
  if (rec.progress !== undefined) e.progress = rec.progress;
  if (rec.ev === "completed" && rec.result !== undefined) e.result = rec.result;
  if (rec.error && (rec.ev === "retrying" || rec.ev === "dead")) e.error = rec.error;
  if (rec.ev === "dead" && rec.reason) e.reason = rec.reason;
  if (rec.ev === "retrying" && rec.retryAt) e.retryAt = new Date(rec.retryAt);
  return e;
}

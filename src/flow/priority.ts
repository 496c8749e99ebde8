import { headers as natsHeaders, type MsgHdrs, type NatsConnection } from "@nats-io/transport-node";
import { ConfigError } from "../errors.ts";
import { describe, type Queue } from "../queue/define.ts";
import { type Delivered, Puller, type PullerHooks, type PullerOptions } from "../consumer/pull.ts";

/**
 * @internal Header naming a job's priority level where its subject cannot: on a delayed job held
 * until due (the mover publishes it to its level's subject), and on a dead letter (a replay sends
 * it back to its level). A job published straight to its level has none: the subject says it
 * (and the consumer that delivers it, see {@link levelOfAckSubject}). The lowest level never has one.
 */
export const PRIORITY_HEADER = "Jetq-Priority";

/**
 * @internal The subject of a priority level. The lowest level (the default) is the queue's own
 * subject, so a publish without a priority is exactly a publish to a single-level queue.
 */
export function levelSubject(queue: Queue<unknown, unknown>, level: number): string {
  return level === queue.priorities! - 1 ? queue.names.subject : `${queue.names.subject}.p.${level}`;
}

/**
 * @internal Whether `subject` is one a job of the queue is published to: its own subject or a
 * priority level's (whether or not the queue has levels now: a refusal names what was sent).
 */
export function isJobSubject(queue: Queue<unknown, unknown>, subject: string): boolean {
  const own = queue.names.subject;
  return subject === own || (subject.startsWith(own) && subject.startsWith(".p.", own.length));
}

/** @internal The durable consumer of a priority level: `workers` for the lowest, `workers-p<level>` for the others. */
export function levelConsumer(queue: Queue<unknown, unknown>, level: number): string {
  return level === queue.priorities! - 1 ? queue.names.consumer : `${queue.names.consumer}-p${level}`;
}

/** @internal The stream's subjects: the queue's own, then one per more urgent level. */
export function levelSubjects(queue: Queue<unknown, unknown>): string[] {
  const out = [queue.names.subject];
  for (let l = 0; l < queue.priorities! - 1; l++) out.push(levelSubject(queue, l));
  return out;
}

/**
 * @internal Checks a publish's `priority` and returns the subject to publish to (`undefined`: the
 * queue's own subject, the lowest level).
 * @throws {@link ConfigError} naming the value and the queue's range.
 */
export function prioritySubject(queue: Queue<unknown, unknown>, priority: unknown, label = ""): string | undefined {
  const n = queue.priorities;
  if (n === undefined) {
    throw new ConfigError(
      `Queue "${queue.name}" has no priority levels: define it with \`priorities\` (2 to 10) and provision it again with { update: true }, or publish without \`priority\`${label}`,
    );
  }
  if (typeof priority !== "number" || !Number.isInteger(priority) || priority < 0 || priority >= n) {
    throw new ConfigError(`Expected \`priority\`${label} to be an integer from 0 (most urgent) to ${n - 1} (queue "${queue.name}" has ${n} levels), got ${describe(priority)}`);
  }
  return priority === n - 1 ? undefined : levelSubject(queue, priority);
}

/** @internal Adds the level header to a job's headers (made if it had none). */
export function priorityHeaders(h: MsgHdrs | undefined, level: number): MsgHdrs {
  const out = h ?? natsHeaders();
  out.set(PRIORITY_HEADER, String(level));
  return out;
}

/**
 * @internal The level a stored priority names: the lowest when it is missing, not an integer or out
 * of the queue's range (a stored record may outlive a change of levels).
 */
export function levelOf(queue: Queue<unknown, unknown>, priority: unknown): number {
  const n = queue.priorities;
  if (n === undefined) return 0;
  return typeof priority === "number" && Number.isInteger(priority) && priority >= 0 && priority < n ? priority : n - 1;
}

/** @internal The level a job's headers say it was published at (the lowest when it says nothing or nonsense). */
export function levelOfHeader(queue: Queue<unknown, unknown>, value: string | undefined): number {
  return levelOf(queue, value === undefined || value === "" ? undefined : Number(value));
}

/**
 * @internal The level a delivered job came from, read off its ack subject's consumer name
 * (`workers` is the lowest level, `workers-p<l>` level `l`); `undefined` for a queue without
 * levels or a consumer name that is not one of them.
 */
export function levelOfAckSubject(queue: Queue<unknown, unknown>, reply: string): number | undefined {
  const n = queue.priorities;
  if (n === undefined) return undefined;
  // $JS.ACK.[<domain>.<hash>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>[.<token>]
  const t = reply.split(".");
  const name = t.length === 9 ? t[3] : t[5];
  for (let l = 0; l < n; l++) if (levelConsumer(queue, l) === name) return l;
  return undefined;
}

/** @internal Longest wait of the lowest level's pull request when more urgent levels have sentinels. */
const LOWEST_EXPIRES_MS = 1_000;

/** @internal What the worker's pull path needs of a job source: one puller, or one per level. */
export interface JobSource {
  /** Jobs asked for that have not arrived and may still come. */
  readonly outstanding: number;
  /** Asks for up to `n` more jobs. */
  pull(n: number): void;
  /** Stops: no more jobs arrive. */
  stop(): void;
}

/**
 * @internal Pulls a prioritised queue: one {@link Puller} per level (each on its own durable
 * consumer), and never more jobs asked for in total than the worker has free slots.
 *
 * - The bulk of the free slots goes to `level`, the most urgent level believed to have work. A
 *   level other than the lowest is asked with `no_wait`: the server answers at once with what it
 *   has, and a request it cannot fill tells the worker that level ran dry, so it moves one level
 *   down at once. The lowest level is asked with an ordinary waiting request.
 * - Sentinels: each level more urgent than `level` keeps one waiting request for one job open
 *   (renewed when it expires, every `pullExpiresMs`). A job arriving on one means urgent work:
 *   `level` moves up to it. So idle levels are not polled: on an idle queue the extra cost is one
 *   waiting request per extra level per `pullExpiresMs`, and an urgent job is taken at once.
 * - A worker with too few slots for sentinels (concurrency below twice the extra levels) scans
 *   instead: after every job or expiry it starts again from the most urgent level with `no_wait`
 *   requests, and waits on the lowest.
 * - `priorityStarvation: { every }`: after `every` jobs from a level above the lowest, one
 *   `no_wait` request for one job goes to the levels below, most urgent first.
 */
export class PriorityPull implements JobSource {
  readonly #pullers: Puller[];
  readonly #last: number;
  readonly #pullBatch: number;
  readonly #sentinels: boolean;
  readonly #every: number | undefined;
  /** The most urgent level believed to have work. */
  #level = 0;
  /** Scan mode: start again from the top at the next pull. */
  #rescan = false;
  /** Jobs taken from `level` (above the lowest) since a less urgent one was let through. */
  #urgentRun = 0;
  /** The level a starvation probe is asking now. */
  #probe: number | undefined;
  /** Pull requests sent, per level (tests and the bench measure the idle cost). */
  readonly requests: number[];

  constructor(
    nc: NatsConnection,
    queue: Queue<unknown, unknown>,
    expiresMs: number,
    concurrency: number,
    pullBatch: number,
    hooks: PullerHooks,
    options: PullerOptions,
  ) {
    const n = queue.priorities!;
    this.#last = n - 1;
    this.#pullBatch = pullBatch;
    this.#sentinels = concurrency >= 2 * (n - 1) + 1;
    this.#every = queue.priorityStarvation?.every;
    this.requests = new Array<number>(n).fill(0);
    this.#pullers = [];
    for (let l = 0; l < n; l++) {
      // The lowest level's waiting request holds the slots an urgent burst needs until it expires:
      // with sentinels it expires within a second (one request a second on an idle queue).
      const expires = l === n - 1 && this.#sentinels ? Math.min(expiresMs, LOWEST_EXPIRES_MS) : expiresMs;
      this.#pullers.push(new Puller(nc, queue.names.stream, levelConsumer(queue, l), expires, {
        message: (m: Delivered) => {
          this.#onJob(l);
          hooks.message(m);
        },
        unfilled: (k: number) => {
          this.#onUnfilled(l);
          hooks.unfilled(k);
        },
        silent: () => hooks.silent(),
        error: (err) => hooks.error(err),
      }, options));
    }
  }

  get outstanding(): number {
    let n = 0;
    for (const p of this.#pullers) n += p.outstanding;
    return n;
  }

  /** The most urgent level believed to have work (tests). */
  get level(): number {
    return this.#level;
  }

  pull(free: number): void {
    if (!this.#sentinels && this.#rescan && this.outstanding === 0) {
      this.#rescan = false;
      this.#level = 0;
    }
    if (this.#sentinels) {
      // Sentinels first: at most `priorities - 1` of them, and sentinel mode needs a concurrency
      // above twice that, so the bulk always keeps at least as many slots as there are levels.
      for (let l = 0; l < this.#level && free > 0; l++) {
        if (this.#pullers[l]!.outstanding === 0) {
          this.#send(l, 1, false);
          free--;
        }
      }
    }
    if (this.#every !== undefined && this.#probe === undefined && this.#level < this.#last && this.#urgentRun >= this.#every && free > 0) {
      this.#probe = this.#level + 1;
      this.#send(this.#probe, 1, true);
      free--;
    }
    if (free <= 0) return;
    const bulk = this.#pullers[this.#level]!;
    // Ask in batches, but never sit idle with free slots and nothing asked of the bulk level.
    if (free < this.#pullBatch && bulk.outstanding > 0) return;
    this.#send(this.#level, free, this.#level < this.#last);
  }

  stop(): void {
    for (const p of this.#pullers) p.stop();
  }

  #send(level: number, n: number, noWait: boolean): void {
    this.requests[level]!++;
    this.#pullers[level]!.pull(n, noWait);
  }

  #onJob(l: number): void {
    if (l < this.#level) {
      // A sentinel brought urgent work.
      this.#level = l;
      this.#urgentRun = 0;
    } else if (l > this.#level) {
      // A less urgent job got through (a starvation probe, or a request sent before `level` rose).
      // Urgent jobs that arrived while the probe was on its way count towards the next one, so
      // the ratio holds at one per `every` rather than one per `every` plus a pull's batch.
      if (this.#probe === l) this.#probe = undefined;
      const every = this.#every ?? 0;
      this.#urgentRun = Math.max(0, Math.min(every, this.#urgentRun - every));
    } else if (l < this.#last) {
      this.#urgentRun++;
    }
    if (!this.#sentinels) this.#rescan = true;
  }

  #onUnfilled(l: number): void {
    if (this.#probe === l) {
      // Nothing waiting at this level: ask the next one down, or give up until the next run.
      if (l < this.#last) {
        this.#probe = l + 1;
        this.#send(this.#probe, 1, true);
      } else {
        this.#probe = undefined;
        this.#urgentRun = 0;
      }
      return;
    }
    if (l === this.#level && l < this.#last && this.#pullers[l]!.outstanding === 0) {
      // A no_wait request could not be filled: this level ran dry.
      this.#level = l + 1;
      this.#urgentRun = 0;
    } else if (l === this.#last && !this.#sentinels) {
      this.#rescan = true;
    }
  }
}

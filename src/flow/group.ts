import { type JetStreamClient, type JetStreamManager, type MsgRequest, DiscardPolicy, RetentionPolicy, StorageType, type StreamConfig } from "@nats-io/jetstream";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { ConfigError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { describe, type Queue, type RateLimit } from "../queue/define.ts";
import { graceMs } from "./rate.ts";

/** @internal Header a job published with a `group` carries: the key, encoded (see {@link groupToken}). */
export const GROUP_HEADER = "Jetq-Group";

/** A surrogate code unit not part of a pair (with the `u` flag pairs are one code point). */
const LONE_SURROGATE = /\p{Cs}/u;

/** @internal Longest group key, in UTF-16 code units. */
export const MAX_GROUP_KEY = 256;

/**
 * @internal Checks a publish's `group` and returns its encoding: base64url of the key's UTF-8, one
 * subject token whatever the key holds (dots, spaces, `*`, `>`, any script).
 * @throws {@link ConfigError} not a string, empty, too long, or not well-formed (a lone surrogate
 * would encode like U+FFFD and share another key's limit).
 */
export function groupToken(queue: Queue<unknown, unknown>, group: unknown, label = ""): string {
  if (!queue.group) {
    throw new ConfigError(
      `Queue "${queue.name}" has no group limits: define it with \`group: { concurrency?, rateLimit? }\` and provision it again, or publish without \`group\`${label}`,
    );
  }
  if (typeof group !== "string" || group.length === 0 || group.length > MAX_GROUP_KEY || LONE_SURROGATE.test(group)) {
    throw new ConfigError(`Expected \`group\`${label} to be a non-empty string of well-formed Unicode of at most ${MAX_GROUP_KEY} characters, got ${describe(group)}`);
  }
  return Buffer.from(group, "utf8").toString("base64url");
}

/** @internal The group key back from its encoding (for stats). */
export function groupKeyOf(token: string): string {
  return Buffer.from(token, "base64url").toString("utf8");
}

/** @internal Adds the group header to a job's headers (made if it had none). */
export function groupHeaders(h: MsgHdrs | undefined, token: string): MsgHdrs {
  const out = h ?? natsHeaders();
  out.set(GROUP_HEADER, token);
  return out;
}

/** @internal The group limiter streams and their subject prefixes. */
export function groupNames(queue: Queue<unknown, unknown>): { concurrency: string; concurrencySubject: string; rate: string; rateSubject: string; waiting: string; waitingSubject: string } {
  return {
    concurrency: `${queue.names.stream}_GROUPS`,
    concurrencySubject: `jetq.groups.${queue.name}`,
    rate: `${queue.names.stream}_GRATE`,
    rateSubject: `jetq.grate.${queue.name}`,
    waiting: `${queue.names.stream}_GWAIT`,
    waitingSubject: `jetq.gwait.${queue.name}`,
  };
}

/** Most jobs the group wait stream counts (the oldest marks go first beyond it). */
const WAIT_MARKS_MAX = 100_000;

/**
 * @internal How long a job handed back by a group limit stays counted without being handed back
 * again or starting: longer than its longest deferral (the concurrency back-off with jitter, or
 * a group rate window), plus 5 s.
 */
export function waitMarkLifeMs(queue: Queue<unknown, unknown>): number {
  const r = queue.group?.rateLimit;
  return Math.max(MAX_DEFER_MS * 1.5, r ? r.perMs + graceMs(r) : 0) + 5_000;
}

/**
 * @internal How long a group concurrency token lives unless renewed: the queue's `ackWaitMs`, the
 * same horizon after which the server hands a dead worker's jobs to others. A running job renews
 * its token with its lease; a worker that dies stops renewing, and its tokens expire.
 */
export function tokenLifeMs(queue: Queue<unknown, unknown>): number {
  return Math.max(1_000, queue.ackWaitMs);
}

/**
 * @internal The group limiter streams: one subject per group key, at most `concurrency` (or
 * `rateLimit.max`) messages per subject, a new one refused while full (discard new per subject,
 * nats-server 2.9+), each message living for the token's life (or the window plus grace).
 * Memory storage: a server restart at worst frees every group's slots once.
 */
export function groupStreamConfigs(queue: Queue<unknown, unknown>): Array<{ kind: string; cfg: Partial<StreamConfig> }> {
  const g = queue.group;
  if (!g) return [];
  const n = groupNames(queue);
  const base = { retention: RetentionPolicy.Limits, storage: StorageType.Memory, num_replicas: queue.replicas, discard: DiscardPolicy.New, discard_new_per_subject: true };
  const out: Array<{ kind: string; cfg: Partial<StreamConfig> }> = [];
  if (g.concurrency !== undefined) {
    out.push({ kind: "group concurrency stream", cfg: { name: n.concurrency, subjects: [`${n.concurrencySubject}.*`], ...base, max_msgs_per_subject: g.concurrency, max_age: tokenLifeMs(queue) * 1_000_000 } });
  }
  if (g.rateLimit !== undefined) {
    const r = g.rateLimit;
    out.push({ kind: "group rate limiter stream", cfg: { name: n.rate, subjects: [`${n.rateSubject}.*`], ...base, max_msgs_per_subject: r.max, max_age: (r.perMs + graceMs(r)) * 1_000_000 } });
  }
  // For queueStats().groupWaiting: one mark per job handed back by a group limit (subject = the
  // job's sequence), the last one kept, removed when the job starts, gone by age otherwise.
  out.push({
    kind: WAIT_KIND,
    cfg: {
      name: n.waiting,
      subjects: [`${n.waitingSubject}.*`],
      retention: RetentionPolicy.Limits,
      storage: StorageType.Memory,
      num_replicas: queue.replicas,
      discard: DiscardPolicy.Old,
      max_msgs: WAIT_MARKS_MAX,
      max_msgs_per_subject: 1,
      max_age: waitMarkLifeMs(queue) * 1_000_000,
    },
  });
  return out;
}

/** The kind of the group wait stream: optional for a worker (a queue provisioned before it had none). */
const WAIT_KIND = "group wait stream";

const REFUSED = new Set<number>([API.streamStoreFailed, API.maximumMessagesExceeded]);

/** The longest deferral of a job whose group is full (before jitter). */
const MAX_DEFER_MS = 10_000;
/** How long a group refused by the server counts as full without asking again. */
const FULL_MEMO_MS = 20;
/** Most groups remembered as full at once. */
const FULL_MEMO_MAX = 1_000;

/** @internal A concurrency token held by a running job. */
export interface GroupHold {
  readonly token: string;
  /** Its message in the concurrency stream; 0 when the queue has no group concurrency. */
  seq: number;
  takenAt: number;
}

/** @internal Why a grouped job may not start now, and how long to wait. */
export type GroupVerdict = { ok: true; hold: GroupHold } | { ok: false; delayMs: number; limit: "concurrency" | "rate" };

/**
 * @internal A worker's side of a queue's group limits. A grouped job takes a concurrency token
 * (a message on its group's subject, refused while the group is at its limit) and a rate token
 * before it starts; the concurrency token is deleted when the job finishes, renewed while it runs
 * long, and expires by itself if the worker dies. A refused job is handed back with a delay
 * (no attempt used).
 */
export class GroupLimiter {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #names: ReturnType<typeof groupNames>;
  readonly #concurrency: number | undefined;
  readonly #rate: RateLimit | undefined;
  /**
   * Groups found full a moment ago, until when: the jobs of a hot group that arrive together (one
   * pull's batch) are deferred without asking the server again. Bounded: cleared when it grows
   * past {@link FULL_MEMO_MAX} entries.
   */
  readonly #full = new Map<string, number>();

  constructor(js: JetStreamClient, jsm: JetStreamManager, queue: Queue<unknown, unknown>) {
    this.#js = js;
    this.#jsm = jsm;
    this.#queue = queue;
    this.#names = groupNames(queue);
    this.#concurrency = queue.group!.concurrency;
    this.#rate = queue.group!.rateLimit;
  }

  /** Fails with a clear error if a limiter stream was not provisioned. */
  async check(): Promise<void> {
    for (const { cfg, kind } of groupStreamConfigs(this.#queue)) {
      if (kind === WAIT_KIND) continue;
      try {
        await this.#jsm.streams.info(cfg.name!);
      } catch (err) {
        throw mapNatsError(err, `open the ${kind} of queue "${this.#queue.name}" (stream ${cfg.name}; provision the queue again with its group limits)`);
      }
    }
  }

  /**
   * Takes what a job of group `token` needs to start. `deliveries` (the server's count) grows with
   * each deferral, and so does the delay of a job whose group stays full.
   * @throws a failure other than a refusal (a lost limiter stream, the connection).
   */
  async take(token: string, deliveries: number): Promise<GroupVerdict> {
    const hold: GroupHold = { token, seq: 0, takenAt: Date.now() };
    if (this.#concurrency !== undefined) {
      const until = this.#full.get(token);
      const seq = until !== undefined && until > hold.takenAt ? undefined : await this.#publish(`${this.#names.concurrencySubject}.${token}`);
      if (seq === undefined) {
        if (until === undefined || until <= hold.takenAt) {
          if (this.#full.size >= FULL_MEMO_MAX) this.#full.clear();
          this.#full.set(token, Date.now() + FULL_MEMO_MS);
        }
        // Full: back off with the deferrals, so a hot group's jobs do not crowd the queue's pulls.
        // JetStream hands out redeliveries that are due before new jobs: short delays for a hot
        // group's backlog would keep a cold group's new job waiting behind them.
        const base = Math.min(MAX_DEFER_MS, 100 * 2 ** Math.min(7, Math.max(0, deliveries - 1)));
        return { ok: false, delayMs: Math.round(base * (0.5 + Math.random())), limit: "concurrency" };
      }
      this.#full.delete(token);
      hold.seq = seq;
    }
    if (this.#rate !== undefined) {
      const seq = await this.#publish(`${this.#names.rateSubject}.${token}`).catch((err: unknown) => {
        this.release(hold);
        throw err;
      });
      if (seq === undefined) {
        this.release(hold);
        return { ok: false, delayMs: await this.#rateWaitMs(token), limit: "rate" };
      }
    }
    return { ok: true, hold };
  }

  /**
   * Marks job `seq` as handed back by a group limit (fire and forget: without the wait stream, a
   * queue provisioned before it, the mark is dropped and only the count is missing).
   */
  deferred(seq: number): void {
    this.#js.publish(`${this.#names.waitingSubject}.${seq}`, undefined, { timeout: 5_000 }).catch(() => {});
  }

  /** Job `seq`, handed back before (`deliveries` > 1), starts: its mark goes (fire and forget). */
  started(seq: number, deliveries: number): void {
    if (deliveries <= 1) return;
    this.#jsm.streams.purge(this.#names.waiting, { filter: `${this.#names.waitingSubject}.${seq}` }).catch(() => {});
  }

  /** Frees a finished job's concurrency token (fire and forget: an error only makes it expire). */
  release(hold: GroupHold): void {
    if (hold.seq === 0) return;
    const seq = hold.seq;
    hold.seq = 0;
    this.#full.delete(hold.token); // a slot of it frees now
    this.#jsm.streams.deleteMessage(this.#names.concurrency, seq, false).catch(() => {});
  }

  /**
   * Renews a long-running job's token before it expires: a new message, then the old one deleted.
   * With the group full (its own token counts) the new one is refused: then the old one goes first
   * and the new one follows, and if another worker takes the slot between the two the job runs on
   * without a token (the group is one over until it ends).
   */
  async renew(hold: GroupHold): Promise<void> {
    if (hold.seq === 0 || Date.now() - hold.takenAt < tokenLifeMs(this.#queue) / 3) return;
    const subject = `${this.#names.concurrencySubject}.${hold.token}`;
    const old = hold.seq;
    hold.takenAt = Date.now();
    let seq = await this.#publish(subject);
    if (seq === undefined) {
      await this.#jsm.streams.deleteMessage(this.#names.concurrency, old, false).catch(() => false);
      hold.seq = 0;
      seq = await this.#publish(subject);
      hold.seq = seq ?? 0;
      return;
    }
    hold.seq = seq;
    await this.#jsm.streams.deleteMessage(this.#names.concurrency, old, false).catch(() => false);
  }

  /** A token's sequence, or `undefined` when the subject is full. */
  async #publish(subject: string): Promise<number | undefined> {
    try {
      return (await this.#js.publish(subject, undefined, { timeout: 5_000 })).seq;
    } catch (err) {
      if (REFUSED.has(apiCode(err) ?? 0)) return undefined;
      throw mapNatsError(err, `take a group token for queue "${this.#queue.name}"`);
    }
  }

  /** Until the group's oldest rate token leaves its window. */
  async #rateWaitMs(token: string): Promise<number> {
    const r = this.#rate!;
    const full = r.perMs + graceMs(r);
    try {
      const m = await this.#jsm.streams.getMessage(this.#names.rate, { next_by_subj: `${this.#names.rateSubject}.${token}`, seq: 0 } as unknown as MsgRequest);
      if (!m) return 5;
      return Math.min(full, Math.max(5, m.time.getTime() + full - Date.now() + 2));
    } catch {
      return Math.min(full, 250);
    }
  }
}

/**
 * @internal Jobs handed back by a group limit that have not started since (each counted at most
 * {@link waitMarkLifeMs} after its last hand-back), or undefined without the wait stream.
 */
export async function groupWaiting(jsm: JetStreamManager, queue: Queue<unknown, unknown>): Promise<number | undefined> {
  try {
    return (await jsm.streams.info(groupNames(queue).waiting)).state.messages;
  } catch {
    return undefined;
  }
}

/** @internal Running jobs per group, busiest first (at most `top`), read from the concurrency stream. */
export async function busiestGroups(jsm: JetStreamManager, queue: Queue<unknown, unknown>, top = 10): Promise<Array<{ group: string; running: number }>> {
  if (queue.group?.concurrency === undefined) return [];
  const n = groupNames(queue);
  const si = await jsm.streams.info(n.concurrency, { subjects_filter: `${n.concurrencySubject}.*` });
  const subjects = (si.state as { subjects?: Record<string, number> }).subjects ?? {};
  const prefix = n.concurrencySubject.length + 1;
  return Object.entries(subjects)
    .map(([s, c]) => ({ group: groupKeyOf(s.slice(prefix)), running: c }))
    .sort((a, b) => b.running - a.running)
    .slice(0, top);
}

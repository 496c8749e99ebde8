import type { NatsConnection } from "@nats-io/transport-node";
import { headers as natsHeaders } from "@nats-io/transport-node";
import {
  jetstream,
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  jetstreamManager,
  type ConsumerConfig,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "@nats-io/jetstream";
import { ProvisionConflictError } from "../errors.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { jsOptions } from "../transport/api.ts";
import { deadLetterWindowMs, type Queue } from "./define.ts";
import { HDR, seqJobId } from "./headers.ts";
import { moverConfig } from "../schedule/held.ts";
import { rateStreamConfig } from "../flow/rate.ts";
import { levelConsumer, levelSubject, levelSubjects } from "../flow/priority.ts";
import { groupStreamConfigs } from "../flow/group.ts";

/** Options of {@link provisionQueue}. */
export interface ProvisionOptions {
  /**
   * Apply changed limits (ack wait, attempts, credit window, size bounds,
   * duplicate window, replicas) to existing streams and consumers instead of
   * failing with {@link ProvisionConflictError}. Retention, storage and subjects
   * are never changed. @default false
   */
  update?: boolean;
}

/** What provisioning did to each server object. */
export interface ProvisionResult {
  /** The work-queue stream holding the jobs. */
  stream: "created" | "unchanged" | "updated";
  /** The durable pull consumer the workers share. */
  consumer: "created" | "unchanged" | "updated";
  /** The dead-letter stream. */
  deadLetterStream: "created" | "unchanged" | "updated";
  /** The outcome ledger (handler failures, hand-backs, isolated runs; see docs/design/attempts.md). */
  ledgerStream: "created" | "unchanged" | "updated";
  /**
   * The consumers of the more urgent priority levels (`workers-p<level>`; one answer for all);
   * only for a queue with `priorities`.
   */
  priorityConsumers?: "created" | "unchanged" | "updated";
  /**
   * The group limiter streams (`JETQ_<name>_GROUPS` for concurrency, `JETQ_<name>_GRATE` for the
   * rate; one answer for both); only for a queue with `group` limits.
   */
  groupStreams?: "created" | "unchanged" | "updated";
  /** The rate limiter stream (`JETQ_<name>_RATE`); only for a queue with a `rateLimit`. */
  rateLimitStream?: "created" | "unchanged" | "updated";
  /**
   * The held stream of delayed jobs and its mover consumer (one answer for the pair). Absent for
   * a queue defined without `scheduling: true`, which gets neither.
   */
  heldStream?: "created" | "unchanged" | "updated";
  /** The stream of repeatable jobs' schedules. Absent for a queue defined without `scheduling: true`. */
  scheduleStream?: "created" | "unchanged" | "updated";
  /**
   * The job state stream `JETQ_<name>_STATE`, for a queue defined with `results` (absent otherwise:
   * a queue without `results` gets no such stream).
   */
  stateStream?: "created" | "unchanged" | "updated";
  /**
   * A queue provisioned by jetq 0.1 was migrated: the consumer's `max_deliver` became unlimited
   * (jetq counts attempts in its ledger now) and the obsolete advisory stream was removed.
   */
  migrated: boolean;
}

const ns = (ms: number): number => ms * 1_000_000;

/** How long ledger records are kept: longer than any job waits between two of its deliveries. */
const LEDGER_KEEP_MS = 7 * 24 * 3600 * 1000;

type Expected = Record<string, unknown>;

/** @internal The stream and consumer configurations a queue definition implies. */
export function expectedConfigs(q: Queue<unknown, unknown>): {
  stream: Partial<StreamConfig>;
  consumer: Partial<ConsumerConfig>;
  dlq: Partial<StreamConfig>;
  ledger: Partial<StreamConfig>;
  held: Partial<StreamConfig> | undefined;
  mover: Partial<ConsumerConfig> | undefined;
  schedules: Partial<StreamConfig> | undefined;
  rate?: Partial<StreamConfig>;
  state: Partial<StreamConfig> | undefined;
  levels?: Array<Partial<ConsumerConfig>>;
  groups?: Array<{ kind: string; cfg: Partial<StreamConfig> }>;
} {
  const n = q.names;
  const storage = q.storage === "memory" ? StorageType.Memory : StorageType.File;
  const consumer = (durable: string, filter: string | undefined): Partial<ConsumerConfig> => ({
    durable_name: durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ...(filter === undefined ? {} : { filter_subject: filter }),
    ack_wait: ns(q.ackWaitMs),
    // Unlimited: jetq counts attempts and crashes in its ledger; the server's delivery count
    // mixes failures with crashes of other jobs, hand-backs and deferrals.
    max_deliver: -1,
    max_ack_pending: q.maxAckPending,
    // The limits jetq enforces itself, for tools that read the queue from the server (jetq stats).
    description: consumerDescription(q),
  });
  // A prioritised queue: one subject per level in the one stream, and one consumer per level
  // filtered to it (work-queue retention allows consumers whose filters do not overlap). The
  // lowest level keeps the queue's own subject and consumer.
  const p = q.priorities;
  return {
    ...(q.group ? { groups: groupStreamConfigs(q) } : {}),
    ...(p ? { levels: Array.from({ length: p - 1 }, (_, l) => consumer(levelConsumer(q, l), levelSubject(q, l))) } : {}),
    stream: {
      name: n.stream,
      subjects: p ? levelSubjects(q) : [n.subject],
      retention: RetentionPolicy.Workqueue,
      storage,
      num_replicas: q.replicas,
      max_msgs: q.maxMessages,
      max_bytes: q.maxBytes,
      discard: DiscardPolicy.New,
      duplicate_window: ns(q.duplicateWindowMs),
      allow_direct: true,
    },
    consumer: consumer(n.consumer, p ? n.subject : undefined),
    dlq: {
      name: n.dlqStream,
      subjects: [n.dlqSubject],
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: q.replicas,
      max_msgs: q.deadLetter.maxMessages,
      max_age: ns(q.deadLetter.maxAgeMs),
      // A full dead-letter stream refuses new entries rather than dropping old ones: the job
      // then stays in its queue (retrying) instead of being lost.
      discard: DiscardPolicy.New,
      duplicate_window: ns(deadLetterWindowMs(q.ackWaitMs)),
      allow_direct: true,
    },
    ledger: {
      name: n.ledgerStream,
      subjects: [`${n.ledgerSubject}.>`],
      retention: RetentionPolicy.Limits,
      storage,
      num_replicas: q.replicas,
      max_msgs_per_subject: 1,
      max_age: ns(LEDGER_KEEP_MS),
      discard: DiscardPolicy.Old,
      allow_direct: true,
    },
    held: q.scheduling
      ? {
          name: n.heldStream,
          subjects: [n.heldSubject],
          retention: RetentionPolicy.Workqueue,
          storage,
          num_replicas: q.replicas,
          // Delayed jobs count against the same bounds as the queue's (separately): a full held
          // stream refuses the publish with QueueFullError.
          max_msgs: q.maxMessages,
          max_bytes: q.maxBytes,
          discard: DiscardPolicy.New,
          duplicate_window: ns(q.duplicateWindowMs),
          allow_direct: true,
        }
      : undefined,
    mover: q.scheduling ? moverConfig(q) : undefined,
    schedules: q.scheduling
      ? {
          name: n.scheduleStream,
          subjects: [`${n.scheduleSubject}.>`],
          retention: RetentionPolicy.Limits,
          storage,
          num_replicas: q.replicas,
          // One record per subject: a schedule's definition (or its removal) and its last tick.
          max_msgs_per_subject: 1,
          discard: DiscardPolicy.Old,
          allow_direct: true,
        }
      : undefined,
    ...(q.rateLimit ? { rate: rateStreamConfig(q) } : {}),
    // One record per job (its latest state), kept keepMs after its last change: read by direct
    // get of the job's subject, and followed as an event log by Jobs.events().
    state: q.results
      ? {
          name: n.stateStream,
          subjects: [`${n.stateSubject}.>`],
          retention: RetentionPolicy.Limits,
          storage,
          num_replicas: q.replicas,
          max_msgs_per_subject: 1,
          max_age: ns(q.results.keepMs),
          discard: DiscardPolicy.Old,
          allow_direct: true,
        }
      : undefined,
  };
}

/** @internal The consumer's description: jetq's own limits, which the server does not enforce. */
export function consumerDescription(q: Queue<unknown, unknown>): string {
  return `jetq ${JSON.stringify({ maxAttempts: q.maxAttempts, maxCrashes: q.maxCrashes })}`;
}

/** @internal jetq's limits read back from a consumer's description (undefined for a foreign or 0.1 consumer). */
export function limitsFromDescription(description: string | undefined): { maxAttempts: number; maxCrashes: number } | undefined {
  if (!description?.startsWith("jetq {")) return undefined;
  try {
    const v = JSON.parse(description.slice(5)) as { maxAttempts?: unknown; maxCrashes?: unknown };
    if (typeof v.maxAttempts === "number" && typeof v.maxCrashes === "number") return { maxAttempts: v.maxAttempts, maxCrashes: v.maxCrashes };
  } catch {
    // not ours
  }
  return undefined;
}

const IMMUTABLE = new Set(["retention", "storage", "subjects", "ack_policy", "deliver_policy", "discard"]);

type Conflict = { field: string; expected: unknown; actual: unknown };

function diff(expected: Expected, actual: Expected): Conflict[] {
  const out: Conflict[] = [];
  for (const [field, want] of Object.entries(expected)) {
    let have = actual[field];
    // The server reports an unset duplicate window / age as 0 or omits false booleans.
    if (have === undefined && typeof want === "boolean") have = false;
    if (JSON.stringify(have) !== JSON.stringify(want)) out.push({ field, expected: want, actual: have });
  }
  return out;
}

const NANOS = new Set(["ack_wait", "duplicate_window", "max_age"]);

/** Durations are nanoseconds on the wire; show them in milliseconds, as the options take them. */
function show(field: string, v: unknown): string {
  return NANOS.has(field) && typeof v === "number" ? `${v / 1_000_000} ms` : JSON.stringify(v);
}

function conflictError(kind: string, name: string, conflicts: Conflict[], canUpdate: boolean): ProvisionConflictError {
  const list = conflicts.map((c) => `${c.field} (definition: ${show(c.field, c.expected)}, server: ${show(c.field, c.actual)})`).join("; ");
  const hint = canUpdate
    ? "Pass { update: true } to apply the new settings, or change the definition to match."
    : "These cannot be changed in place; use a new queue name, or remove the old one deliberately.";
  return new ProvisionConflictError(`${kind} "${name}" exists with a different configuration: ${list}. ${hint} Nothing was changed.`, conflicts);
}

/** What one server object needs: nothing, creating, or an update with these settings. */
type Plan<C> =
  | { kind: "create"; cfg: C }
  | { kind: "unchanged" }
  | { kind: "update"; cfg: C };

async function streamInfo(jsm: JetStreamManager, name: string, kind: string): Promise<StreamConfig | undefined> {
  try {
    return (await jsm.streams.info(name)).config;
  } catch (err) {
    if (apiCode(err) === API.streamNotFound) return undefined;
    throw mapNatsError(err, `provision ${kind} "${name}"`);
  }
}

async function planStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig>,
  kind: string,
  update: boolean,
): Promise<Plan<Partial<StreamConfig>>> {
  const name = cfg.name as string;
  const have = await streamInfo(jsm, name, kind);
  if (!have) return { kind: "create", cfg };
  const conflicts = diff(cfg as Expected, have as unknown as Expected);
  if (conflicts.length === 0) return { kind: "unchanged" };
  // Subjects may grow (priority levels added to a queue); never shrink (jobs would be stranded).
  const immutable = conflicts.filter((c) => IMMUTABLE.has(c.field) && !(c.field === "subjects" && addsSubjects(c)));
  if (immutable.length > 0) throw conflictError(kind, name, immutable, false);
  if (!update) throw conflictError(kind, name, conflicts, true);
  return { kind: "update", cfg: { ...have, ...cfg } };
}

/** Whether a subjects conflict only adds subjects to those the server has. */
function addsSubjects(c: Conflict): boolean {
  const want = c.expected;
  const have = c.actual;
  return Array.isArray(want) && Array.isArray(have) && have.every((s) => want.includes(s));
}

async function planConsumer(
  jsm: JetStreamManager,
  stream: string,
  cfg: Partial<ConsumerConfig>,
  update: boolean,
): Promise<Plan<Partial<ConsumerConfig>> & { migrate?: boolean }> {
  const name = cfg.durable_name as string;
  let have: ConsumerConfig;
  try {
    have = (await jsm.consumers.info(stream, name)).config;
  } catch (err) {
    if (apiCode(err) === API.consumerNotFound || apiCode(err) === API.streamNotFound) return { kind: "create", cfg };
    throw mapNatsError(err, `provision consumer "${name}" on "${stream}"`);
  }
  let conflicts = diff(cfg as Expected, have as unknown as Expected);
  // jetq 0.1 set max_deliver to maxAttempts; it is jetq's to change, so it needs no { update: true }.
  const migrate = conflicts.some((c) => c.field === "max_deliver");
  if (migrate) {
    // A 0.1 consumer: its max_deliver was maxAttempts, and it had no description.
    conflicts = conflicts.filter((c) => c.field !== "max_deliver" && !(c.field === "description" && !have.description));
  }
  const immutable = conflicts.filter((c) => IMMUTABLE.has(c.field));
  if (immutable.length > 0) throw conflictError("consumer", name, immutable, false);
  if (conflicts.length > 0 && !update) throw conflictError("consumer", name, conflicts, true);
  if (conflicts.length === 0 && !migrate) return { kind: "unchanged" };
  const { durable_name: _d, ack_policy: _a, deliver_policy: _p, ...mutable } = cfg;
  return { kind: "update", cfg: mutable, migrate };
}

/**
 * A 0.1 consumer skips a job that reached `max_deliver` for good (raising the limit does not bring
 * it back); its MAX_DELIVERIES advisory waits in the advisory stream for a mover. Each such job is
 * published again (same data, headers and job id; a new stream sequence) and the original removed,
 * so it runs again under the new attempt model instead of waiting forever. A crash between the
 * two leaves both copies: at least once, never lost.
 */
async function requeueGivenUp(nc: NatsConnection, jsm: JetStreamManager, queue: Queue<unknown, unknown>, advisoryStream: string): Promise<void> {
  const n = queue.names;
  const what = `move the jobs the server gave up on from the jetq 0.1 layout of queue "${queue.name}"`;
  try {
    const info = await jsm.streams.info(advisoryStream);
    if (info.state.messages === 0) return;
    const js = jetstream(nc, jsOptions(queue));
    // Bounded: the 0.1 advisory stream keeps at most 1,000,000 advisories.
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const adv = await jsm.streams.getMessage(advisoryStream, { seq }).catch(() => null);
      if (!adv) continue;
      let jobSeq: unknown;
      try {
        jobSeq = (adv.json() as { stream_seq?: unknown }).stream_seq;
      } catch {
        continue;
      }
      if (typeof jobSeq !== "number") continue;
      const job = await jsm.streams.getMessage(n.stream, { seq: jobSeq }).catch(() => null);
      if (!job) continue;
      const h = natsHeaders();
      const id = job.header?.get(HDR.id) || job.header?.get(HDR.msgId) || seqJobId(jobSeq);
      if (job.header) for (const [k, values] of job.header) if (k !== HDR.msgId && k !== HDR.id) for (const v of values) h.append(k, v);
      h.set(HDR.id, id);
      await js.publish(n.subject, job.data, { headers: h, timeout: 10_000 });
      await jsm.streams.deleteMessage(n.stream, jobSeq, false).catch(() => false);
    }
  } catch (err) {
    throw mapNatsError(err, what);
  }
}

/**
 * Creates the queue's server objects, or verifies they match the definition:
 * the work-queue stream, the durable pull consumer shared by all workers, the
 * dead-letter stream, and the outcome ledger (docs/design/attempts.md).
 *
 * Idempotent: every process may call it at start. Everything is checked before
 * anything is created or changed: a definition that conflicts with what exists
 * throws {@link ProvisionConflictError} naming each field, and nothing was
 * changed. If creating fails part-way (a permission, a lost connection), what
 * this call created is removed again before the error is thrown.
 *
 * A queue provisioned by jetq 0.1 is migrated in place: its consumer's
 * `max_deliver` becomes unlimited and the obsolete advisory stream
 * `JETQ_<name>_ADV` (which held only advisories, never jobs) is removed.
 */
export async function provisionQueue<In, Out>(
  nc: NatsConnection,
  queue: Queue<In, Out>,
  options: ProvisionOptions = {},
): Promise<ProvisionResult> {
  const update = options.update === true;
  const what = `provision queue "${queue.name}"`;
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, jsOptions(queue));
  } catch (err) {
    throw mapNatsError(err, what);
  }
  const n = queue.names;
  const cfg = expectedConfigs(queue);
  // Every check first: nothing is created or changed until every object is known to fit.
  const stream = await planStream(jsm, cfg.stream, "stream", update);
  const consumer = await planConsumer(jsm, n.stream, cfg.consumer, update);
  const dlq = await planStream(jsm, cfg.dlq, "dead-letter stream", update);
  const ledger = await planStream(jsm, cfg.ledger, "ledger stream", update);
  const held = cfg.held ? await planStream(jsm, cfg.held, "held stream", update) : undefined;
  const mover = cfg.mover ? await planConsumer(jsm, n.heldStream, cfg.mover, update) : undefined;
  const schedules = cfg.schedules ? await planStream(jsm, cfg.schedules, "schedule stream", update) : undefined;
  const rate = cfg.rate ? await planStream(jsm, cfg.rate, "rate limiter stream", update) : undefined;
  const state = cfg.state ? await planStream(jsm, cfg.state, "job state stream", update) : undefined;
  const groups: Array<{ plan: Plan<Partial<StreamConfig>>; kind: string }> = [];
  for (const g of cfg.groups ?? []) groups.push({ plan: await planStream(jsm, g.cfg, g.kind, update), kind: g.kind });
  const levels: Array<Plan<Partial<ConsumerConfig>>> = [];
  for (const c of cfg.levels ?? []) levels.push(await planConsumer(jsm, n.stream, c, update));
  const legacy = `${n.stream}_ADV`;
  const hasLegacy = (await streamInfo(jsm, legacy, "advisory stream")) !== undefined;

  const created: string[] = [];
  let createdConsumer = false;
  let createdMover = false;
  const createdLevels: string[] = [];
  const applyStream = async (plan: Plan<Partial<StreamConfig>>, kind: string): Promise<ProvisionResult["stream"]> => {
    if (plan.kind === "unchanged") return "unchanged";
    const name = plan.cfg.name as string;
    if (plan.kind === "create") {
      try {
        await jsm.streams.add(plan.cfg as StreamConfig);
        created.push(name);
        return "created";
      } catch (err) {
        // Another process created it between our check and now: check it again.
        if (apiCode(err) === 10058) return applyStream(await planStream(jsm, plan.cfg, kind, update), kind);
        throw mapNatsError(err, `create ${kind} "${name}"`);
      }
    }
    try {
      await jsm.streams.update(name, plan.cfg as StreamConfig);
    } catch (err) {
      throw mapNatsError(err, `update ${kind} "${name}"`);
    }
    return "updated";
  };
  try {
    const result: ProvisionResult = {
      stream: await applyStream(stream, "stream"),
      consumer: "unchanged",
      deadLetterStream: "unchanged",
      ledgerStream: "unchanged",
      migrated: false,
    };
    if (consumer.kind === "create") {
      try {
        await jsm.consumers.add(n.stream, consumer.cfg);
      } catch (err) {
        throw mapNatsError(err, `create consumer "${n.consumer}" on "${n.stream}"`);
      }
      createdConsumer = true;
      result.consumer = "created";
    } else if (consumer.kind === "update") {
      try {
        await jsm.consumers.update(n.stream, n.consumer, consumer.cfg);
      } catch (err) {
        throw mapNatsError(err, `update consumer "${n.consumer}" on "${n.stream}"`);
      }
      result.consumer = "updated";
      result.migrated = consumer.migrate === true;
    }
    if (cfg.levels) {
      // After the lowest level's consumer has its filter: an unfiltered consumer of a work-queue
      // stream leaves no room for another.
      let out: ProvisionResult["stream"] = "unchanged";
      for (let l = 0; l < levels.length; l++) {
        const plan = levels[l]!;
        const name = cfg.levels[l]!.durable_name as string;
        try {
          if (plan.kind === "create") {
            await jsm.consumers.add(n.stream, plan.cfg);
            createdLevels.push(name);
            out = out === "unchanged" ? "created" : out;
          } else if (plan.kind === "update") {
            await jsm.consumers.update(n.stream, name, plan.cfg);
            out = "updated";
          }
        } catch (err) {
          throw mapNatsError(err, `${plan.kind} consumer "${name}" on "${n.stream}"`);
        }
      }
      result.priorityConsumers = out;
    }
    result.deadLetterStream = await applyStream(dlq, "dead-letter stream");
    result.ledgerStream = await applyStream(ledger, "ledger stream");
    if (held && mover) {
      let heldResult = await applyStream(held, "held stream");
      const name = n.heldConsumer;
      try {
        if (mover.kind === "create") {
          await jsm.consumers.add(n.heldStream, mover.cfg);
          createdMover = true;
          if (heldResult === "unchanged") heldResult = "updated";
        } else if (mover.kind === "update") {
          await jsm.consumers.update(n.heldStream, name, mover.cfg);
          if (heldResult === "unchanged") heldResult = "updated";
        }
      } catch (err) {
        throw mapNatsError(err, `${mover.kind} consumer "${name}" on "${n.heldStream}"`);
      }
      result.heldStream = heldResult;
    }
    if (schedules) result.scheduleStream = await applyStream(schedules, "schedule stream");
    if (rate) result.rateLimitStream = await applyStream(rate, "rate limiter stream");
    if (state) result.stateStream = await applyStream(state, "job state stream");
    if (cfg.groups) {
      let out: ProvisionResult["stream"] = "unchanged";
      for (const g of groups) {
        const r = await applyStream(g.plan, g.kind);
        if (r !== "unchanged") out = out === "unchanged" ? r : out;
      }
      result.groupStreams = out;
    }
    if (hasLegacy) {
      // Jobs the 0.1 server gave up on and its mover had not moved yet: queue them again.
      await requeueGivenUp(nc, jsm, queue as Queue<unknown, unknown>, legacy);
      // Only after the consumer no longer relies on it (max_deliver unlimited).
      try {
        await jsm.streams.delete(legacy);
      } catch (err) {
        if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, `remove the obsolete advisory stream "${legacy}"`);
      }
      result.migrated = true;
    }
    return result;
  } catch (err) {
    // Undo what this call created (newest first), so a failure leaves the server as it was.
    const undo: string[] = [];
    if (!created.includes(n.stream)) {
      for (const name of createdLevels.reverse()) await jsm.consumers.delete(n.stream, name).then(() => undo.push(`consumer "${name}"`), () => {});
    }
    if (createdMover && !created.includes(n.heldStream)) {
      await jsm.consumers.delete(n.heldStream, n.heldConsumer).then(() => undo.push(`consumer "${n.heldConsumer}"`), () => {});
    }
    if (createdConsumer && !created.includes(n.stream)) {
      await jsm.consumers.delete(n.stream, n.consumer).then(() => undo.push(`consumer "${n.consumer}"`), () => {});
    }
    for (const name of created.reverse()) {
      await jsm.streams.delete(name).then(() => undo.push(`stream "${name}"`), () => {});
    }
    if (undo.length > 0 && err instanceof Error) err.message += ` (provisioning was rolled back: removed ${undo.join(", ")}, which this call had created)`;
    throw err;
  }
}

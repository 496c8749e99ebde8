import type { NatsConnection } from "@nats-io/transport-node";
import {
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
import type { Queue } from "./define.ts";

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
  stream: "created" | "unchanged" | "updated";
  consumer: "created" | "unchanged" | "updated";
  deadLetterStream: "created" | "unchanged" | "updated";
  advisoryStream: "created" | "unchanged" | "updated";
}

const ns = (ms: number): number => ms * 1_000_000;

type Expected = Record<string, unknown>;

/** @internal The stream and consumer configurations a queue definition implies. */
export function expectedConfigs(q: Queue<unknown, unknown>): {
  stream: Partial<StreamConfig>;
  consumer: Partial<ConsumerConfig>;
  dlq: Partial<StreamConfig>;
  advisory: Partial<StreamConfig>;
  advisoryConsumer: Partial<ConsumerConfig>;
} {
  const n = q.names;
  const storage = q.storage === "memory" ? StorageType.Memory : StorageType.File;
  return {
    stream: {
      name: n.stream,
      subjects: [n.subject],
      retention: RetentionPolicy.Workqueue,
      storage,
      num_replicas: q.replicas,
      max_msgs: q.maxMessages,
      max_bytes: q.maxBytes,
      discard: DiscardPolicy.New,
      duplicate_window: ns(q.duplicateWindowMs),
      allow_direct: true,
    },
    consumer: {
      durable_name: n.consumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ns(q.ackWaitMs),
      max_deliver: q.maxAttempts,
      max_ack_pending: q.maxAckPending,
    },
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
      // Dead letters carry a msg id derived from the source sequence; the window must outlast a
      // redelivery (ack wait) so a crash between "copy to DLQ" and "remove" cannot duplicate.
      duplicate_window: ns(Math.max(120_000, q.ackWaitMs * 4)),
      allow_direct: true,
    },
    advisory: {
      name: n.advisoryStream,
      subjects: [n.advisorySubject],
      retention: RetentionPolicy.Workqueue,
      storage,
      num_replicas: q.replicas,
      discard: DiscardPolicy.Old,
      max_msgs: 1_000_000,
    },
    advisoryConsumer: {
      durable_name: n.advisoryConsumer,
      ack_policy: AckPolicy.Explicit,
      deliver_policy: DeliverPolicy.All,
      ack_wait: ns(30_000),
      max_ack_pending: 64,
    },
  };
}

const IMMUTABLE = new Set(["retention", "storage", "subjects", "ack_policy", "deliver_policy", "discard"]);

function diff(expected: Expected, actual: Expected): Array<{ field: string; expected: unknown; actual: unknown }> {
  const out: Array<{ field: string; expected: unknown; actual: unknown }> = [];
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

function conflictError(kind: string, name: string, conflicts: ReturnType<typeof diff>, canUpdate: boolean): ProvisionConflictError {
  const list = conflicts.map((c) => `${c.field} (definition: ${show(c.field, c.expected)}, server: ${show(c.field, c.actual)})`).join("; ");
  const hint = canUpdate
    ? "Pass { update: true } to apply the new settings, or change the definition to match."
    : "These cannot be changed in place; use a new queue name, or remove the old one deliberately (nothing was changed).";
  return new ProvisionConflictError(`${kind} "${name}" exists with a different configuration: ${list}. ${hint}`, conflicts);
}

async function ensureStream(
  jsm: JetStreamManager,
  cfg: Partial<StreamConfig>,
  kind: string,
  update: boolean,
): Promise<ProvisionResult["stream"]> {
  const name = cfg.name as string;
  let info;
  try {
    info = await jsm.streams.info(name);
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, `provision ${kind} "${name}"`);
    try {
      await jsm.streams.add(cfg as StreamConfig);
      return "created";
    } catch (addErr) {
      // Another process may have created it between our info and add: verify instead.
      if (apiCode(addErr) === 10058) return ensureStream(jsm, cfg, kind, update);
      throw mapNatsError(addErr, `create ${kind} "${name}"`);
    }
  }
  const conflicts = diff(cfg as Expected, info.config as unknown as Expected);
  if (conflicts.length === 0) return "unchanged";
  const immutable = conflicts.filter((c) => IMMUTABLE.has(c.field));
  if (immutable.length > 0) throw conflictError(kind, name, immutable, false);
  if (!update) throw conflictError(kind, name, conflicts, true);
  try {
    await jsm.streams.update(name, { ...info.config, ...cfg } as StreamConfig);
  } catch (err) {
    throw mapNatsError(err, `update ${kind} "${name}"`);
  }
  return "updated";
}

async function ensureConsumer(
  jsm: JetStreamManager,
  stream: string,
  cfg: Partial<ConsumerConfig>,
  update: boolean,
): Promise<ProvisionResult["consumer"]> {
  const name = cfg.durable_name as string;
  let info;
  try {
    info = await jsm.consumers.info(stream, name);
  } catch (err) {
    if (apiCode(err) !== API.consumerNotFound) throw mapNatsError(err, `provision consumer "${name}" on "${stream}"`);
    try {
      await jsm.consumers.add(stream, cfg);
      return "created";
    } catch (addErr) {
      throw mapNatsError(addErr, `create consumer "${name}" on "${stream}"`);
    }
  }
  const conflicts = diff(cfg as Expected, info.config as unknown as Expected);
  if (conflicts.length === 0) return "unchanged";
  const immutable = conflicts.filter((c) => IMMUTABLE.has(c.field));
  if (immutable.length > 0) throw conflictError("consumer", name, immutable, false);
  if (!update) throw conflictError("consumer", name, conflicts, true);
  const { durable_name: _d, ack_policy: _a, deliver_policy: _p, ...mutable } = cfg;
  try {
    await jsm.consumers.update(stream, name, mutable);
  } catch (err) {
    throw mapNatsError(err, `update consumer "${name}" on "${stream}"`);
  }
  return "updated";
}

/**
 * Creates the queue's server objects, or verifies they match the definition:
 * the work-queue stream, the durable pull consumer shared by all workers, the
 * dead-letter stream, and the stream capturing MAX_DELIVERIES advisories (so a
 * job that crashes its worker every time still reaches the dead-letter queue).
 *
 * Idempotent: every process may call it at start. A definition that conflicts
 * with what exists throws {@link ProvisionConflictError} naming each field;
 * nothing is ever deleted.
 */
export async function provisionQueue<In, Out>(
  nc: NatsConnection,
  queue: Queue<In, Out>,
  options: ProvisionOptions = {},
): Promise<ProvisionResult> {
  const update = options.update === true;
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc);
  } catch (err) {
    throw mapNatsError(err, `provision queue "${queue.name}"`);
  }
  const cfg = expectedConfigs(queue);
  const stream = await ensureStream(jsm, cfg.stream, "stream", update);
  const consumer = await ensureConsumer(jsm, queue.names.stream, cfg.consumer, update);
  const deadLetterStream = await ensureStream(jsm, cfg.dlq, "dead-letter stream", update);
  const advisoryStream = await ensureStream(jsm, cfg.advisory, "advisory stream", update);
  await ensureConsumer(jsm, queue.names.advisoryStream, cfg.advisoryConsumer, update);
  return { stream, consumer, deadLetterStream, advisoryStream };
}

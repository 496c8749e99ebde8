import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { mapNatsError } from "../natserr.ts";
import { queueNames } from "./define.ts";

const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;

/** @internal Options of {@link listQueues}. */
export interface ListQueuesOptions {
  /** Most names returned (the first ones by name). @default 1000 */
  max?: number;
  /** A manager the caller keeps, to save the API check of a new one. */
  jsm?: JetStreamManager;
}

/**
 * @internal The jetq queues on the server, sorted by name: the one discovery rule the CLI and the
 * dashboard share. A queue is a stream `JETQ_<name>` listening on its subject `jetq.q.<name>`,
 * with its dead-letter stream beside it; a stream that only looks like one (a dead-letter stream,
 * a half-provisioned queue, a user's own `JETQ_` stream) is not listed.
 * @throws the error {@link mapNatsError} gives for the failed listing (connection, permission...).
 */
export async function listQueues(nc: NatsConnection, options: ListQueuesOptions = {}): Promise<string[]> {
  const max = options.max ?? 1000;
  const streams = new Map<string, readonly string[]>();
  try {
    const jsm = options.jsm ?? (await jetstreamManager(nc));
    // The lister pages through every stream; stop early on absurd servers so memory stays bounded.
    for await (const si of jsm.streams.list()) {
      streams.set(si.config.name, si.config.subjects ?? []);
      if (streams.size > 20 * max) break;
    }
  } catch (err) {
    throw mapNatsError(err, "list queues");
  }
  const names: string[] = [];
  for (const [stream, subjects] of streams) {
    if (!stream.startsWith("JETQ_")) continue;
    const name = stream.slice("JETQ_".length);
    if (!NAME_RE.test(name)) continue;
    const n = queueNames(name);
    if (n.stream !== stream || !subjects.includes(n.subject) || !streams.has(n.dlqStream)) continue;
    names.push(name);
  }
  return names.sort().slice(0, max);
}

import type { NatsConnection } from "@nats-io/transport-node";

/** @internal A nats-server version, as `INFO` reports it (`2.10.4`, `2.11.0-RC.2`). */
export interface ServerVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** The pre-release tag (`RC.2`, `beta.1`), if any. */
  readonly pre: string | undefined;
}

/**
 * @internal What a server can do for jetq beyond the 2.9 baseline. Every feature jetq uses on a
 * newer server sits behind one of these flags, with the 2.9 path as the fallback (DESIGN.md).
 */
export interface ServerCapabilities {
  /** The version these were derived from; `undefined` when the server did not say. */
  readonly version: ServerVersion | undefined;
  /**
   * 2.10: consumer creates and updates are distinct actions (a create with a different config
   * fails with 10148 instead of updating in place, as 2.9 does).
   */
  readonly consumerCreateAction: boolean;
  /** 2.10: a consumer may filter on several subjects (`filter_subjects`). */
  readonly multipleFilters: boolean;
  /** 2.10: a stream's `sync_interval` (`always` included). */
  readonly syncInterval: boolean;
  /** 2.10.4: `term` with a reason (`+TERM <reason>`); 2.9 ignores the whole term. */
  readonly termWithReason: boolean;
  /** 2.11: per-message TTL (`Nats-TTL`, stream `allow_msg_ttl`). */
  readonly perMessageTtl: boolean;
  /** 2.11: consumer priority groups (overflow, pinned client). */
  readonly priorityGroups: boolean;
  /** 2.11: pausing a consumer (`pause_until`, `$JS.API.CONSUMER.PAUSE`). */
  readonly consumerPause: boolean;
  /** 2.12: scheduled messages (`Nats-Schedule`, stream `allow_msg_schedules`). */
  readonly scheduledMessages: boolean;
  /** 2.12: atomic batch publish (`Nats-Batch-Id`, stream `allow_atomic`). */
  readonly atomicBatchPublish: boolean;
  /** 2.14: cron expressions in `Nats-Schedule`. */
  readonly cronSchedules: boolean;
}

const VERSION_RE = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$/;

/** @internal Reads a version string; `undefined` for anything that is not `major.minor.patch[-pre][+build]`. */
export function parseVersion(text: string | undefined): ServerVersion | undefined {
  if (typeof text !== "string") return undefined;
  const m = VERSION_RE.exec(text.trim());
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), pre: m[4] };
}

/**
 * @internal Whether `v` is at least `major.minor.patch`. A pre-release counts as its release:
 * a feature gate asks whether the server has the feature, and release candidates of a version
 * carry its features (unlike semver ordering, where 2.11.0-RC.1 < 2.11.0).
 */
export function atLeast(v: ServerVersion | undefined, major: number, minor: number, patch = 0): boolean {
  if (v === undefined) return false;
  if (v.major !== major) return v.major > major;
  if (v.minor !== minor) return v.minor > minor;
  return v.patch >= patch;
}

/**
 * @internal The capabilities of a server of version `version` (as `nc.info.version` gives it).
 * An unknown or unreadable version gets none: the 2.9 paths work everywhere.
 */
export function capabilitiesOf(version: string | undefined): ServerCapabilities {
  const v = parseVersion(version);
  const v210 = atLeast(v, 2, 10);
  const v211 = atLeast(v, 2, 11);
  const v212 = atLeast(v, 2, 12);
  return Object.freeze({
    version: v,
    consumerCreateAction: v210,
    multipleFilters: v210,
    syncInterval: v210,
    termWithReason: atLeast(v, 2, 10, 4),
    perMessageTtl: v211,
    priorityGroups: v211,
    consumerPause: v211,
    scheduledMessages: v212,
    atomicBatchPublish: v212,
    cronSchedules: atLeast(v, 2, 14),
  });
}

/**
 * @internal The capabilities of the server `nc` is connected to now. Read per call: after a
 * reconnect the connection may be on another server of a cluster, of another version in a
 * rolling upgrade. In a cluster, a feature that needs every node should be gated on the oldest.
 */
export function serverCapabilities(nc: NatsConnection): ServerCapabilities {
  return capabilitiesOf(nc.info?.version);
}

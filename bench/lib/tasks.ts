// What the orchestrator asks a child process to do, and the messages they exchange.
import type { ScheduleTask } from "../scenarios/schedule-child.ts";

export interface Endpoints {
  nats?: string;
  redis?: string;
  pg?: string;
}

export type PublishContender =
  | "jetq.publishMany"
  | "jetq.publishMany.chunked"
  | "jetq.publishMany.validateAll"
  | "jetq.publish"
  | "raw.async"
  | "raw.async.fresh"
  | "raw.async.bytes"
  | "raw.async.w4096"
  | "raw.async.textbook"
  | "raw.async.promise"
  | "raw.floor"
  | "raw.js.publish"
  | "bullmq.addBulk"
  | "bullmq.add"
  | "pgboss.insert";

export type DrainContender = "jetq" | "jetq.confirmed" | "jetq.confirmed.plain" | "raw.ack" | "raw.ackAck" | "bullmq" | "pgboss";

export type LatencyContender = "jetq" | "raw" | "bullmq";

export interface PublishTask {
  kind: "publish";
  contender: PublishContender;
  endpoints: Endpoints;
  queue: string;
  jobs: number;
  ids: boolean;
  tag: string;
}

export interface DrainTask {
  kind: "drain";
  contender: DrainContender;
  endpoints: Endpoints;
  queue: string;
  concurrency: number;
  /** Sample RSS every 100 ms (memory runs). */
  sampleRss?: boolean;
}

export interface LatencyTask {
  kind: "latency";
  contender: LatencyContender;
  endpoints: Endpoints;
  queue: string;
  rate: number;
  durationMs: number;
  warmupMs: number;
  concurrency: number;
}

export interface StallTask {
  kind: "stall";
  endpoints: Endpoints;
  queue: string;
  /** Offered publishes per second while the server answers. */
  rate: number;
}

export type ExtraVariant = "base" | "schema" | "telemetry-api" | "telemetry-sdk" | "sdk-only" | "confirmed" | "lease-off" | "lease-on";

export interface ExtraTask {
  kind: "extra";
  variant: ExtraVariant;
  endpoints: Endpoints;
  queue: string;
  jobs: number;
  concurrency: number;
  /** lease-on/off: how long each handler runs. */
  handlerMs?: number;
  /** lease-on: the queue's ack wait (leases every third of it). */
  ackWaitMs?: number;
}

export type Task = PublishTask | DrainTask | LatencyTask | StallTask | ExtraTask | ScheduleTask | import("../scenarios/results-child.ts").ResultsTask | import("../scenarios/results-child.ts").ResultRttTask;

export type ToChild = { type: "task"; task: Task } | { type: "go" } | { type: "stop" } | { type: "phase"; name: string };

export type FromChild =
  | { type: "ready" }
  | { type: "progress"; count: number; lastAt: number }
  | { type: "result"; result: Record<string, unknown> }
  | { type: "error"; message: string };

export interface LatencySummary {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

// The orchestrator: starts servers, runs every scenario as interleaved rounds of child processes
// (bench/child.ts), and returns one JSON-able result. bench/main.ts is the command line around it;
// the smoke test calls runBench() directly on a tiny workload.
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { cpus, totalmem, platform, release } from "node:os";
import { fileURLToPath } from "node:url";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { provisionQueue } from "../src/index.ts";
import { epochMs, median, sleep } from "./lib/common.ts";
import { findPostgres, findRedis, natsForScenario, natsServerVersion, processCpuSeconds, type NatsTarget, type PgTarget, type RedisTarget } from "./lib/servers.ts";
import type { DrainContender, Endpoints, ExtraVariant, FromChild, LatencyContender, PublishContender, Task, ToChild } from "./lib/tasks.ts";
import { benchQueue, connectRaw, prefill } from "./contenders/nats.ts";
import { scenarioSchedule, scheduleRatios } from "./scenarios/schedule.ts";
import { scenarioResults } from "./scenarios/results.ts";
import { scenarioFlow } from "./scenarios/flow.ts";

const CHILD = fileURLToPath(new URL("./child.ts", import.meta.url));

export type Scenario = "publish" | "drain" | "latency" | "memory" | "extras" | "schedule" | "results" | "flow";
export const ALL_SCENARIOS: readonly Scenario[] = ["publish", "drain", "latency", "memory", "extras", "schedule", "results", "flow"];

export interface BenchOptions {
  mode: "quick" | "full" | "smoke";
  rounds: number;
  /** Rounds of the publish scenario (at least `rounds`): its ratios are the tightest targets. */
  publishRounds: number;
  concurrency: number;
  publishJobs: number;
  drainJobs: number;
  pgbossDrainJobs: number;
  drainProcesses: number[];
  latencyRates: number[];
  latencyMs: number;
  latencyWarmupMs: number;
  memoryJobs: [small: number, large: number];
  stallPhasesMs: [before: number, stopped: number, after: number];
  extraJobs: number;
  leaseJobs: number;
  scenarios: readonly Scenario[];
  /** Only jetq and raw NATS (the smoke test). */
  natsOnly: boolean;
  /** Run only these contenders (names as in the results), e.g. for profiling one pair. */
  contenders?: readonly string[];
  /** Where children write `--cpu-prof` profiles, if profiling. */
  profileDir?: string;
  log: (line: string) => void;
}

export function presetOptions(mode: "quick" | "full" | "smoke"): Omit<BenchOptions, "log"> {
  const base = {
    mode,
    concurrency: 64,
    scenarios: ALL_SCENARIOS,
    natsOnly: false,
  };
  if (mode === "full") {
    return {
      ...base,
      rounds: 3,
      publishRounds: 5,
      publishJobs: 100_000,
      drainJobs: 100_000,
      pgbossDrainJobs: 20_000,
      drainProcesses: [1, 2],
      latencyRates: [1000, 5000, 10_000],
      latencyMs: 6000,
      latencyWarmupMs: 1000,
      memoryJobs: [10_000, 1_000_000],
      stallPhasesMs: [3000, 7000, 4000],
      extraJobs: 50_000,
      leaseJobs: 2000,
    };
  }
  if (mode === "quick") {
    return {
      ...base,
      rounds: 1,
      publishRounds: 1,
      publishJobs: 20_000,
      drainJobs: 20_000,
      pgbossDrainJobs: 5000,
      drainProcesses: [1, 2],
      latencyRates: [1000, 5000, 10_000],
      latencyMs: 2000,
      latencyWarmupMs: 500,
      memoryJobs: [10_000, 100_000],
      stallPhasesMs: [1500, 6000, 1500],
      extraJobs: 10_000,
      leaseJobs: 600,
    };
  }
  return {
    ...base,
    rounds: 1,
    publishRounds: 1,
    natsOnly: true,
    publishJobs: 300,
    drainJobs: 300,
    pgbossDrainJobs: 300,
    drainProcesses: [1],
    latencyRates: [1000],
    latencyMs: 600,
    latencyWarmupMs: 100,
    memoryJobs: [200, 400],
    stallPhasesMs: [300, 600, 300],
    extraJobs: 300,
    leaseJobs: 64,
    scenarios: ["publish", "drain", "latency", "memory"],
    contenders: ["jetq.publishMany", "raw.async", "jetq", "raw.ack", "raw"],
  };
}

/** One measured configuration: its values over the rounds and their summary. */
export interface Row {
  scenario: Scenario;
  /** Group the row is compared within (e.g. "publish, no ids"). */
  group: string;
  contender: string;
  system: "jetq" | "raw" | "bullmq" | "pgboss";
  unit: string;
  /** Higher is better (throughput) or lower is better (latency, memory). */
  better: "higher" | "lower";
  values: number[];
  median: number;
  min: number;
  max: number;
  /** Extra per-run facts (CPU, verification). */
  runs: Array<Record<string, unknown>>;
}

export interface Ratio {
  target: string;
  numerator: string;
  denominator: string;
  value: number;
  goal: string;
  met: boolean;
  /** Client CPU per job, numerator ÷ denominator (medians over rounds): steadier than throughput on shared cores. */
  cpuPerJob?: number;
  /** Not a target of jetq's: a figure that puts the targets in context (`met` is then meaningless). */
  context?: true;
}

export interface BenchResult {
  schema: 1;
  mode: BenchOptions["mode"];
  startedAt: string;
  finishedAt: string;
  durationSec: number;
  machine: {
    cores: number;
    cpuModel: string;
    memoryMiB: number;
    os: string;
    node: string;
    natsServer: string;
    natsSource: "local nats-server per scenario" | "NATS_URL";
    redis: { version: string; persistence: string; source: string } | null;
    postgres: { version: string; source: string } | null;
  };
  config: Omit<BenchOptions, "log" | "profileDir" | "scenarios"> & { scenarios: Scenario[] };
  skipped: string[];
  rows: Row[];
  latency: LatencyRow[];
  memory: Record<string, unknown>;
  ratios: Ratio[];
}

export interface LatencyRow {
  contender: LatencyContender;
  rate: number;
  /** Medians over rounds of each run's p50/p99/max (ms). */
  start: { p50: number; p99: number; max: number };
  pubAck: { p50: number; p99: number; max: number };
  ack: { p50: number; p99: number; max: number };
  keptUp: boolean[];
  runs: Array<Record<string, unknown>>;
}

export class Child {
  readonly proc: ChildProcess;
  readonly #label: string;
  #ready: Promise<void>;
  #result: Promise<Record<string, unknown>>;
  count = 0;
  lastAt = 0;

  constructor(task: Task, label: string, profileDir: string | undefined) {
    this.#label = label;
    const execArgv = profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${label.replace(/[^\w.-]+/g, "_")}.cpuprofile`] : [];
    // The stall run measures live heap after a full GC at each phase end (GC slack is not a leak).
    if (task.kind === "stall" || (task.kind === "drain" && task.sampleRss)) execArgv.push("--expose-gc");
    this.proc = fork(CHILD, [], { execArgv, stdio: ["ignore", "inherit", "inherit", "ipc"], serialization: "advanced" });
    let readyOk: () => void;
    let readyErr: (e: Error) => void;
    let resOk: (r: Record<string, unknown>) => void;
    let resErr: (e: Error) => void;
    this.#ready = new Promise((a, b) => ((readyOk = a), (readyErr = b)));
    this.#result = new Promise((a, b) => ((resOk = a), (resErr = b)));
    this.#ready.catch(() => {});
    this.#result.catch(() => {});
    this.proc.on("message", (m: FromChild) => {
      if (m.type === "ready") readyOk();
      else if (m.type === "progress") {
        this.count = m.count;
        this.lastAt = m.lastAt;
      } else if (m.type === "result") resOk(m.result);
      else if (m.type === "error") {
        const e = new Error(`${label}: ${m.message}`);
        readyErr(e);
        resErr(e);
      }
    });
    this.proc.on("exit", (code, sig) => {
      const e = new Error(`${label}: child exited (${code ?? sig}) before reporting`);
      readyErr(e);
      resErr(e);
    });
    this.proc.send({ type: "task", task } satisfies ToChild);
  }

  async ready(timeoutMs = 30_000): Promise<void> {
    await withDeadline(this.#ready, timeoutMs, `${this.#label}: not ready`);
  }
  tell(msg: ToChild): void {
    if (this.proc.connected) this.proc.send(msg);
  }
  async result(timeoutMs: number): Promise<Record<string, unknown>> {
    return withDeadline(this.#result, timeoutMs, `${this.#label}: no result`);
  }
  /** Waits (bounded) for the process to exit, then kills it by PID. */
  async end(): Promise<void> {
    const p = this.proc;
    if (p.exitCode !== null || p.signalCode !== null) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([new Promise((r) => p.once("exit", r)), new Promise((r) => (timer = setTimeout(r, 10_000)))]);
    clearTimeout(timer);
    if (p.exitCode === null && p.signalCode === null) p.kill("SIGKILL");
  }
}

async function withDeadline<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (t = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms)))]);
  } finally {
    clearTimeout(t);
  }
}

export function only<T extends string>(o: BenchOptions, xs: T[]): T[] {
  return o.contenders ? xs.filter((c) => o.contenders!.includes(c)) : xs;
}

export function uniq(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString("hex")}`;
}

/** Rotates the contender order each round, so no contender always runs first or last. */
export function rotate<T>(xs: readonly T[], round: number): T[] {
  const k = round % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

export interface Ctx {
  o: BenchOptions;
  redis: RedisTarget | undefined;
  pg: PgTarget | undefined;
  rows: Map<string, Row>;
  skipped: string[];
}

export function record(
  ctx: Ctx,
  scenario: Scenario,
  group: string,
  contender: string,
  unit: string,
  value: number,
  run: Record<string, unknown>,
  better: Row["better"] = "higher",
): void {
  const key = `${scenario}|${group}|${contender}`;
  let row = ctx.rows.get(key);
  if (!row) {
    const system = contender.startsWith("jetq") ? "jetq" : contender.startsWith("raw") ? "raw" : contender.startsWith("bullmq") ? "bullmq" : "pgboss";
    row = { scenario, group, contender, system, unit, better, values: [], median: 0, min: 0, max: 0, runs: [] };
    ctx.rows.set(key, row);
  }
  row.values.push(value);
  row.runs.push(run);
  row.median = median(row.values);
  row.min = Math.min(...row.values);
  row.max = Math.max(...row.values);
}

async function deleteQueueStreams(jsm: JetStreamManager, name: string): Promise<void> {
  const n = benchQueue(name).names;
  for (const s of [n.stream, n.dlqStream, n.ledgerStream]) await jsm.streams.delete(s).catch(() => {});
}

async function streamMessages(jsm: JetStreamManager, name: string): Promise<number> {
  return (await jsm.streams.info(benchQueue(name).names.stream)).state.messages;
}

async function waitStreamEmpty(jsm: JetStreamManager, name: string, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  for (;;) {
    if ((await streamMessages(jsm, name)) === 0) return true;
    if (Date.now() > deadline) return false;
    await sleep(50);
  }
}

export async function withNats<T>(fn: (nats: NatsTarget, nc: NatsConnection, jsm: JetStreamManager) => Promise<T>): Promise<T> {
  const nats = await natsForScenario();
  let nc: NatsConnection | undefined;
  try {
    nc = await connectRaw(nats.servers, "bench-orchestrator");
    const jsm = await jetstreamManager(nc);
    return await fn(nats, nc, jsm);
  } finally {
    await nc?.close().catch(() => {});
    await nats.stop();
  }
}

// ---------------------------------------------------------------- publish

/** The other hand-written raw loops tried for `raw.async` (bench/contenders/nats.ts): shown so the baseline can be checked. */
const RAW_ALTERNATIVES: readonly PublishContender[] = ["raw.async.fresh", "raw.async.bytes", "raw.async.w4096", "raw.async.textbook"];

async function scenarioPublish(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  const contenders: PublishContender[] = [
    "jetq.publishMany",
    "raw.async",
    "raw.floor",
    "jetq.publishMany.chunked",
    "jetq.publishMany.validateAll",
    "jetq.publish",
    "raw.js.publish",
    "raw.async.promise",
    ...RAW_ALTERNATIVES,
  ];
  if (ctx.redis) contenders.push("bullmq.addBulk", "bullmq.add");
  if (ctx.pg) contenders.push("pgboss.insert");
  await withNats(async (nats, nc, jsm) => {
    for (let round = 0; round < o.publishRounds; round++) {
      for (const ids of [false, true]) {
        // The raw alternatives run without ids only: they differ in how they send and match, not in headers.
        const these = ids ? contenders.filter((c) => !RAW_ALTERNATIVES.includes(c)) : contenders;
        for (const contender of rotate(only(o, these), round)) {
          const name = uniq("pub");
          const group = ids ? "publish, per-job ids (dedupe)" : "publish, no ids";
          const endpoints: Endpoints = { nats: nats.servers, redis: ctx.redis?.url, pg: ctx.pg?.url };
          let cleanup: () => Promise<void> = async () => {};
          let verify: () => Promise<number | undefined> = async () => undefined;
          if (contender.startsWith("bullmq")) {
            const { bullQueue } = await import("./contenders/bullmq.ts");
            const q = bullQueue(ctx.redis!.url, name);
            verify = async () => (await q.getJobCounts("waiting")).waiting;
            cleanup = async () => {
              await q.obliterate({ force: true });
              await q.close();
            };
          } else if (contender === "pgboss.insert") {
            const { startBoss } = await import("./contenders/pgboss.ts");
            const boss = await startBoss(ctx.pg!.url);
            await boss.createQueue(name);
            cleanup = async () => {
              await boss.deleteQueue(name);
              await boss.stop({ graceful: false, wait: false } as never);
            };
          } else {
            await provisionQueue(nc, benchQueue(name));
            verify = () => streamMessages(jsm, name);
            cleanup = () => deleteQueueStreams(jsm, name);
          }
          try {
            const child = new Child({ kind: "publish", contender, endpoints, queue: name, jobs: o.publishJobs, ids, tag: name }, `publish-${contender}-${ids ? "ids" : "noids"}-r${round}`, o.profileDir);
            await child.ready();
            const cpu0 = processCpuSeconds(nats.pid);
            child.tell({ type: "go" });
            const r = await child.result(120_000 + o.publishJobs);
            const serverCpuSec = contender.startsWith("bullmq") || contender.startsWith("pgboss") ? undefined : diff(processCpuSeconds(nats.pid), cpu0);
            await child.end();
            const stored = await verify();
            const rate = o.publishJobs / (r.seconds as number);
            record(ctx, "publish", group, contender, "jobs/s", rate, { ...r, jobs: o.publishJobs, stored, serverCpuSec, round });
            o.log(`  publish ${ids ? "ids  " : "noids"} ${contender.padEnd(18)} ${fmt(rate)} jobs/s  cpu client ${(r.clientCpuSec as number).toFixed(1)}s server ${serverCpuSec ?? "?"}s${stored !== undefined && stored !== o.publishJobs ? `  (stored ${stored}!)` : ""}`);
          } finally {
            await cleanup().catch(() => {});
          }
        }
      }
    }
  });
}

function diff(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined ? undefined : Math.round((a - b) * 100) / 100;
}

// ---------------------------------------------------------------- drain

interface DrainRun {
  rate: number;
  seconds: number;
  handled: number;
  verified: boolean | undefined;
  clientCpuSec: number;
  serverCpuSec: number | undefined;
  peakRssMiB: number;
  extra: Record<string, unknown>;
}

async function drainOnce(
  ctx: Ctx,
  nats: NatsTarget,
  nc: NatsConnection,
  jsm: JetStreamManager,
  contender: DrainContender,
  jobs: number,
  processes: number,
  label: string,
  sampleRss = false,
): Promise<DrainRun> {
  const { o } = ctx;
  const name = uniq("drain");
  let cleanup: () => Promise<void>;
  let verify: () => Promise<boolean>;
  if (contender === "bullmq") {
    const b = await import("./contenders/bullmq.ts");
    const q = b.bullQueue(ctx.redis!.url, name);
    await b.bullPrefill(q, jobs);
    verify = async () => (await b.bullBacklog(q)) === 0;
    cleanup = async () => {
      await q.obliterate({ force: true });
      await q.close();
    };
  } else if (contender === "pgboss") {
    const { startBoss, bossPublish } = await import("./contenders/pgboss.ts");
    const boss = await startBoss(ctx.pg!.url);
    await boss.createQueue(name);
    await bossPublish(boss, name, jobs, false, name);
    verify = async () => {
      const q = await boss.getQueue(name);
      return q ? q.queuedCount + q.activeCount === 0 : false;
    };
    cleanup = async () => {
      await boss.deleteQueue(name);
      await boss.stop({ graceful: false, wait: false } as never);
    };
  } else {
    const q = benchQueue(name);
    await provisionQueue(nc, q);
    await prefill(nc, q.names.subject, jobs);
    verify = () => waitStreamEmpty(jsm, name, 5000);
    cleanup = () => deleteQueueStreams(jsm, name);
  }
  const children: Child[] = [];
  try {
    const endpoints: Endpoints = { nats: nats.servers, redis: ctx.redis?.url, pg: ctx.pg?.url };
    for (let i = 0; i < processes; i++) {
      children.push(new Child({ kind: "drain", contender, endpoints, queue: name, concurrency: o.concurrency, sampleRss }, `${label}-p${i}`, o.profileDir));
    }
    await Promise.all(children.map((c) => c.ready()));
    const cpu0 = processCpuSeconds(nats.pid);
    const t0 = epochMs();
    for (const c of children) c.tell({ type: "go" });
    // Bounded: a contender slower than 500 jobs/s (plus a minute) is reported as unfinished.
    const deadline = Date.now() + 60_000 + (jobs / 500) * 1000;
    const total = (): number => children.reduce((a, c) => a + c.count, 0);
    while (total() < jobs && Date.now() < deadline) await sleep(10);
    const end = Math.max(...children.map((c) => c.lastAt));
    const serverCpuSec = contender === "bullmq" || contender === "pgboss" ? undefined : diff(processCpuSeconds(nats.pid), cpu0);
    for (const c of children) c.tell({ type: "stop" });
    const results = await Promise.all(children.map((c) => c.result(30_000)));
    await Promise.all(children.map((c) => c.end()));
    const handled = total();
    const seconds = (end - t0) / 1000;
    const verified = handled >= jobs ? await verify() : false;
    const extra: Record<string, unknown> = {};
    for (const k of ["sampledMaxRssMiB", "atPeakHeapTotalMiB", "atPeakHeapUsedMiB", "atPeakExternalMiB", "heapUsedMiB", "liveHeapAfterGcMiB"]) {
      if (results[0]?.[k] !== undefined) extra[k] = results[0][k];
    }
    return {
      rate: handled / seconds,
      seconds,
      handled,
      verified,
      clientCpuSec: results.reduce((a, r) => a + (r.clientCpuSec as number), 0),
      serverCpuSec,
      peakRssMiB: Math.max(...results.map((r) => r.peakRssMiB as number)),
      extra,
    };
  } finally {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
    await cleanup().catch(() => {});
  }
}

async function scenarioDrain(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  const contenders: DrainContender[] = ["jetq", "raw.ack", "jetq.confirmed", "raw.ackAck", "jetq.confirmed.plain"];
  if (ctx.redis) contenders.push("bullmq");
  if (ctx.pg) contenders.push("pgboss");
  await withNats(async (nats, nc, jsm) => {
    for (let round = 0; round < o.rounds; round++) {
      for (const processes of o.drainProcesses) {
        for (const contender of rotate(only(o, contenders), round)) {
          const jobs = contender === "pgboss" ? o.pgbossDrainJobs : o.drainJobs;
          const group = `drain ${jobs >= 1000 ? `${jobs / 1000}k` : jobs} backlog, ${processes} worker process${processes > 1 ? "es" : ""}`;
          const r = await drainOnce(ctx, nats, nc, jsm, contender, jobs, processes, `drain-${contender}-${processes}p-r${round}`);
          record(ctx, "drain", group, contender, "jobs/s", r.rate, { ...r, round });
          o.log(`  drain ${processes}p ${contender.padEnd(22)} ${fmt(r.rate)} jobs/s  cpu client ${r.clientCpuSec.toFixed(1)}s server ${r.serverCpuSec ?? "?"}s${r.verified ? "" : "  (NOT VERIFIED EMPTY)"}`);
        }
      }
    }
  });
}

// ---------------------------------------------------------------- latency

async function scenarioLatency(ctx: Ctx, latency: LatencyRow[]): Promise<void> {
  const { o } = ctx;
  const contenders: LatencyContender[] = ["jetq", "raw"];
  if (ctx.redis) contenders.push("bullmq");
  const rows = new Map<string, { runs: Array<Record<string, unknown>> }>();
  await withNats(async (nats, nc, jsm) => {
    for (let round = 0; round < o.rounds; round++) {
      for (const rate of o.latencyRates) {
        for (const contender of rotate(only(o, contenders), round)) {
          const name = uniq("lat");
          let cleanup: () => Promise<void>;
          if (contender === "bullmq") {
            const { bullQueue } = await import("./contenders/bullmq.ts");
            const q = bullQueue(ctx.redis!.url, name);
            cleanup = async () => {
              await q.obliterate({ force: true });
              await q.close();
            };
          } else {
            await provisionQueue(nc, benchQueue(name));
            cleanup = () => deleteQueueStreams(jsm, name);
          }
          try {
            const child = new Child(
              { kind: "latency", contender, endpoints: { nats: nats.servers, redis: ctx.redis?.url }, queue: name, rate, durationMs: o.latencyMs, warmupMs: o.latencyWarmupMs, concurrency: o.concurrency },
              `latency-${contender}-${rate}-r${round}`,
              o.profileDir,
            );
            await child.ready();
            child.tell({ type: "go" });
            const r = await child.result(o.latencyMs + 30_000);
            await child.end();
            const key = `${contender}|${rate}`;
            if (!rows.has(key)) rows.set(key, { runs: [] });
            rows.get(key)!.runs.push({ ...r, round });
            const s = r.start as { p50: number; p99: number };
            o.log(`  latency ${String(rate).padStart(5)}/s ${contender.padEnd(7)} start p50 ${s.p50.toFixed(2)} p99 ${s.p99.toFixed(2)} ms  ${r.keptUp ? "kept up" : "FELL BEHIND"}`);
          } finally {
            await cleanup().catch(() => {});
          }
        }
      }
    }
  });
  for (const [key, { runs }] of rows) {
    const [contender, rate] = key.split("|") as [LatencyContender, string];
    const pick = (field: "start" | "pubAck" | "ack"): { p50: number; p99: number; max: number } => {
      const m = (k: "p50" | "p99" | "max"): number => median(runs.map((r) => (r[field] as Record<string, number>)[k]!).filter((x) => Number.isFinite(x)));
      return { p50: m("p50"), p99: m("p99"), max: m("max") };
    };
    latency.push({ contender, rate: Number(rate), start: pick("start"), pubAck: pick("pubAck"), ack: pick("ack"), keptUp: runs.map((r) => r.keptUp as boolean), runs });
  }
}

// ---------------------------------------------------------------- memory

async function scenarioMemory(ctx: Ctx, out: Record<string, unknown>): Promise<void> {
  const { o } = ctx;
  await withNats(async (nats, nc, jsm) => {
    // raw consume() is the reference: how much of the RSS curve is V8 and the client, not jetq.
    // Every round runs every size; the summary is the run with the median peak RSS.
    const runs = new Map<string, Array<Record<string, unknown> & { peakRssMiB: number }>>();
    for (let round = 0; round < o.rounds; round++) {
      for (const contender of rotate(only(o, ["jetq", "raw.ack"] as DrainContender[]), round)) {
        for (const jobs of o.memoryJobs) {
          const r = await drainOnce(ctx, nats, nc, jsm, contender, jobs, 1, `memory-${contender}-${jobs}-r${round}`, true);
          const key = `${contender}|${jobs}`;
          if (!runs.has(key)) runs.set(key, []);
          runs.get(key)!.push({ peakRssMiB: r.peakRssMiB, rate: r.rate, handled: r.handled, verified: r.verified, ...r.extra, round });
          o.log(`  memory ${contender} worker draining ${jobs}: peak RSS ${r.peakRssMiB} MiB, live heap after GC ${r.extra.liveHeapAfterGcMiB ?? "?"} MiB (${fmt(r.rate)} jobs/s)`);
        }
      }
    }
    const summary = (contender: string): Record<string, unknown> => {
      const outBySize: Record<string, unknown> = {};
      for (const jobs of o.memoryJobs) {
        const rs = [...(runs.get(`${contender}|${jobs}`) ?? [])].sort((a, b) => a.peakRssMiB - b.peakRssMiB);
        if (rs.length === 0) continue;
        const mid = rs[(rs.length - 1) >> 1]!;
        outBySize[String(jobs)] = { ...mid, peakRssMinMiB: rs[0]!.peakRssMiB, peakRssMaxMiB: rs[rs.length - 1]!.peakRssMiB, runs: rs };
      }
      return outBySize;
    };
    out.workerDrain = summary("jetq");
    out.rawWorkerDrain = summary("raw.ack");
    if (nats.pid === undefined) {
      out.producerStall = { skipped: "NATS_URL is set: the bench only stops servers it started" };
      ctx.skipped.push("producer RSS while the server stops answering: skipped with NATS_URL (the bench only stops servers it started)");
      return;
    }
    const name = uniq("stall");
    await provisionQueue(nc, benchQueue(name));
    const child = new Child({ kind: "stall", endpoints: { nats: nats.servers }, queue: name, rate: 5000 }, "memory-stall", o.profileDir);
    try {
      await child.ready();
      child.tell({ type: "go" });
      const [before, stoppedMs, after] = o.stallPhasesMs;
      await sleep(before);
      child.tell({ type: "phase", name: "server stopped" });
      process.kill(nats.pid, "SIGSTOP");
      try {
        await sleep(stoppedMs);
      } finally {
        process.kill(nats.pid, "SIGCONT");
      }
      child.tell({ type: "phase", name: "server resumed" });
      await sleep(after);
      child.tell({ type: "stop" });
      const r = await child.result(30_000);
      await child.end();
      out.producerStall = { rate: 5000, phasesMs: o.stallPhasesMs, ...r };
      const phases = r.phases as Record<string, { maxRssMiB: number; inFlightMax: number }>;
      o.log(`  memory jetq producer at 5000/s, server SIGSTOPped: ${Object.entries(phases).map(([k, v]) => `${k} ${v.maxRssMiB} MiB`).join(", ")}`);
    } finally {
      if (child.proc.exitCode === null) child.proc.kill("SIGKILL");
      await deleteQueueStreams(jsm, name).catch(() => {});
    }
  });
}

// ---------------------------------------------------------------- extras

async function scenarioExtras(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  const variants: ExtraVariant[] = ["base", "schema", "telemetry-api", "telemetry-sdk", "sdk-only", "confirmed"];
  await withNats(async (nats, _nc, jsm) => {
    for (let round = 0; round < o.rounds; round++) {
      for (const variant of only(o, [...rotate(variants, round), "lease-off", "lease-on"] as ExtraVariant[])) {
        const name = uniq("extra");
        const lease = variant.startsWith("lease");
        const jobs = lease ? o.leaseJobs : o.extraJobs;
        try {
          const child = new Child(
            {
              kind: "extra",
              variant,
              endpoints: { nats: nats.servers },
              queue: name,
              jobs,
              concurrency: lease ? 256 : o.concurrency,
              ...(lease ? { handlerMs: 300, ackWaitMs: variant === "lease-on" ? 450 : 30_000 } : {}),
            },
            `extra-${variant}-r${round}`,
            o.profileDir,
          );
          await child.ready();
          const cpu0 = processCpuSeconds(nats.pid);
          child.tell({ type: "go" });
          const r = await child.result(180_000);
          const serverCpuSec = diff(processCpuSeconds(nats.pid), cpu0);
          await child.end();
          const run = { ...r, serverCpuSec, round };
          const group = lease ? "extras: in-progress acks (300 ms handlers, concurrency 256)" : "extras";
          if (lease) {
            record(ctx, "extras", group, `jetq ${variant}`, "client CPU ms per 1k jobs", ((r.drainCpuSec as number) * 1e6) / jobs, run, "lower");
            o.log(`  extras ${variant.padEnd(14)} drain ${fmt(jobs / (r.drainSeconds as number))} jobs/s, ${(((r.drainCpuSec as number) * 1e6) / jobs).toFixed(0)} ms CPU per 1k jobs`);
          } else {
            record(ctx, "extras", `${group}: publishMany`, `jetq ${variant}`, "jobs/s", jobs / (r.publishSeconds as number), run);
            record(ctx, "extras", `${group}: drain`, `jetq ${variant}`, "jobs/s", jobs / (r.drainSeconds as number), run);
            o.log(`  extras ${variant.padEnd(14)} publishMany ${fmt(jobs / (r.publishSeconds as number))} jobs/s, drain ${fmt(jobs / (r.drainSeconds as number))} jobs/s`);
          }
        } finally {
          await deleteQueueStreams(jsm, name).catch(() => {});
        }
      }
    }
  });
}

// ---------------------------------------------------------------- ratios

function rowOf(rows: Row[], scenario: Scenario, groupPrefix: string, contender: string): Row | undefined {
  return rows.find((r) => r.scenario === scenario && r.group.startsWith(groupPrefix) && r.contender === contender);
}

/** The issue's targets, each as a ratio of medians from this one interleaved run. */
export function computeRatios(rows: Row[], latency: LatencyRow[], memory: Record<string, unknown>): Ratio[] {
  const out: Ratio[] = [];
  const cpu = (r: Row): number =>
    median(
      r.runs
        .map((run) => ((run.clientCpuSec as number) * 1e6) / ((run.handled as number | undefined) ?? (run.jobs as number | undefined) ?? Number.NaN))
        .filter((v) => Number.isFinite(v)),
    );
  // `context`: no target of jetq's, a figure held against the goal beside it (shown with "–" for met).
  const add = (target: string, num: Row | undefined, den: Row | undefined, goal: number, context = false): void => {
    if (!num || !den || !(den.median > 0)) return;
    const value = num.median / den.median;
    const c = cpu(num) / cpu(den);
    out.push({
      target,
      numerator: `${num.contender} ${fmt(num.median)} ${num.unit}`,
      denominator: `${den.contender} ${fmt(den.median)} ${den.unit}`,
      value,
      goal: context ? "context, no goal" : `>= ${goal}`,
      met: value >= goal,
      ...(Number.isFinite(c) ? { cpuPerJob: c } : {}),
      ...(context ? { context: true as const } : {}),
    });
  };
  for (const g of ["publish, no ids", "publish, per-job ids"]) {
    // Held against the fastest raw loop over the same input (the batch as an array) in this run.
    const bestRaw = ["raw.async", ...RAW_ALTERNATIVES]
      .map((c) => rowOf(rows, "publish", g, c))
      .filter((r): r is Row => r !== undefined)
      .sort((a, b) => b.median - a.median)[0];
    add(`publishMany vs the fastest raw PublishAsync-style loop (${g})`, rowOf(rows, "publish", g, "jetq.publishMany"), bestRaw, 0.9);
    add(`publish() loop vs raw PublishAsync-style (${g})`, rowOf(rows, "publish", g, "jetq.publish"), rowOf(rows, "publish", g, "raw.async"), 0.9);
    // The same loop by hand: 1,024 callers each awaiting a promise per publish on the fastest raw core.
    add(`publish() loop vs raw loop of promises (${g})`, rowOf(rows, "publish", g, "jetq.publish"), rowOf(rows, "publish", g, "raw.async.promise"), 0.9);
    add(`publishMany vs BullMQ addBulk (${g})`, rowOf(rows, "publish", g, "jetq.publishMany"), rowOf(rows, "publish", g, "bullmq.addBulk"), 3);
    // Driven like addBulk (chunks of 1,000, 4 in flight): encoding of one chunk overlaps sending of others.
    add(`publishMany in chunks vs the fastest raw PublishAsync-style loop (${g})`, rowOf(rows, "publish", g, "jetq.publishMany.chunked"), bestRaw, 0.9);
    add(`publishMany in chunks vs BullMQ addBulk (${g})`, rowOf(rows, "publish", g, "jetq.publishMany.chunked"), rowOf(rows, "publish", g, "bullmq.addBulk"), 3);
    // What no client code can beat here: is the 3x-BullMQ goal reachable on this machine at all?
    add(`context: the floor (no client can do less per job) vs BullMQ addBulk (${g})`, rowOf(rows, "publish", g, "raw.floor"), rowOf(rows, "publish", g, "bullmq.addBulk"), 3, true);
  }
  const drainGroups = [...new Set(rows.filter((r) => r.scenario === "drain" && r.system === "jetq").map((r) => r.group))];
  for (const g of drainGroups) {
    add(`drain ack() (${g})`, rowOf(rows, "drain", g, "jetq"), rowOf(rows, "drain", g, "raw.ack"), 0.9);
    add(`drain confirmed ackAck() (${g})`, rowOf(rows, "drain", g, "jetq.confirmed"), rowOf(rows, "drain", g, "raw.ackAck"), 0.9);
    add(`drain vs BullMQ Worker (${g})`, rowOf(rows, "drain", g, "jetq"), rowOf(rows, "drain", g, "bullmq"), 2.5);
    add(`drain confirmed vs BullMQ Worker (${g})`, rowOf(rows, "drain", g, "jetq.confirmed"), rowOf(rows, "drain", g, "bullmq"), 1);
  }
  for (const g of [...new Set(rows.filter((r) => r.scenario === "results" && r.unit === "jobs/s").map((r) => r.group))]) {
    add(`drain with results vs without (${g})`, rowOf(rows, "results", g, "jetq results on"), rowOf(rows, "results", g, "jetq results off"), 0.7);
    add(`drain with results vs without, 1 ms handlers (${g})`, rowOf(rows, "results", g, "jetq results on-1ms"), rowOf(rows, "results", g, "jetq results off-1ms"), 0.7);
  }
  for (const g of [...new Set(rows.filter((r) => r.scenario === "results" && r.unit === "messages/job").map((r) => r.group))]) {
    // Lower is better: plain ÷ unused-progress, so anything sent extra shows as a ratio below 1.
    add(`nothing extra unused: messages per job, plain vs job.progress() without results (${g})`, rowOf(rows, "results", g, "jetq results off"), rowOf(rows, "results", g, "jetq results off-progress"), 0.99);
  }
  const lat = (c: string, rate: number): LatencyRow | undefined => latency.find((l) => l.contender === c && l.rate === rate);
  const j1 = lat("jetq", 1000);
  const r1 = lat("raw", 1000);
  if (j1 && r1) {
    const value = j1.start.p99 / r1.start.p99;
    const within = j1.start.p99 - r1.start.p99 <= 1;
    out.push({ target: "e2e p99 publish→handler start at 1,000/s", numerator: `jetq ${j1.start.p99.toFixed(2)} ms`, denominator: `raw ${r1.start.p99.toFixed(2)} ms`, value, goal: "<= 1.2 (or within 1 ms)", met: value <= 1.2 || within });
  }
  const j10 = lat("jetq", 10_000);
  if (j10) {
    const kept = j10.keptUp.filter(Boolean).length;
    out.push({ target: "jetq keeps up at 10,000/s", numerator: `${kept} of ${j10.keptUp.length} runs kept up`, denominator: "", value: kept / Math.max(1, j10.keptUp.length), goal: "= 1", met: kept === j10.keptUp.length });
  }
  const drains = memory.workerDrain as Record<string, { peakRssMiB: number }> | undefined;
  if (drains) {
    const sizes = Object.keys(drains).map(Number).sort((a, b) => a - b);
    const small = drains[String(sizes[0])];
    const large = drains[String(sizes[sizes.length - 1])];
    if (small && large && sizes.length > 1) {
      const value = large.peakRssMiB / small.peakRssMiB;
      out.push({ target: `worker peak RSS draining ${sizes[sizes.length - 1]} vs ${sizes[0]} jobs`, numerator: `${large.peakRssMiB} MiB`, denominator: `${small.peakRssMiB} MiB`, value, goal: "<= 1.2", met: value <= 1.2 });
    }
  }
  const stall = memory.producerStall as { phases?: Record<string, { maxRssMiB: number; liveHeapAfterGcMiB?: number }> } | undefined;
  if (stall?.phases?.before && stall.phases["server stopped"]) {
    const b = stall.phases.before.maxRssMiB;
    const s = stall.phases["server stopped"].maxRssMiB;
    out.push({ target: "producer peak RSS while the server does not answer (vs before)", numerator: `${s} MiB`, denominator: `${b} MiB`, value: s / b, goal: "<= 1.2 (flat)", met: s / b <= 1.2 });
    const lb = stall.phases.before.liveHeapAfterGcMiB;
    const ls = stall.phases["server stopped"].liveHeapAfterGcMiB;
    if (lb !== undefined && ls !== undefined) {
      out.push({ target: "producer live heap after GC, server stopped (vs before)", numerator: `${ls} MiB`, denominator: `${lb} MiB`, value: ls / lb, goal: "bounded (window + blocked callers)", met: ls - lb < 64 });
    }
  }
  out.push(...scheduleRatios(rows));
  return out;
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  return Math.round(n).toLocaleString("en-US");
}

// ---------------------------------------------------------------- entry

export async function runBench(o: BenchOptions): Promise<BenchResult> {
  const started = new Date();
  const skipped: string[] = [];
  let redis: RedisTarget | undefined;
  let pg: PgTarget | undefined;
  if (!o.natsOnly) {
    const r = await findRedis();
    if (typeof r === "string") skipped.push(r);
    else redis = r;
    const p = await findPostgres();
    if (typeof p === "string") skipped.push(p);
    else pg = p;
  }
  for (const s of skipped) o.log(s);
  const ctx: Ctx = { o, redis, pg, rows: new Map(), skipped };
  const latency: LatencyRow[] = [];
  const memory: Record<string, unknown> = {};
  try {
    for (const s of o.scenarios) {
      const t = Date.now();
      o.log(`${s}:`);
      if (s === "publish") await scenarioPublish(ctx);
      else if (s === "drain") await scenarioDrain(ctx);
      else if (s === "latency") await scenarioLatency(ctx, latency);
      else if (s === "memory") await scenarioMemory(ctx, memory);
      else if (s === "extras") await scenarioExtras(ctx);
      else if (s === "schedule") await scenarioSchedule(ctx);
      else if (s === "results") await scenarioResults(ctx);
      else if (s === "flow") await scenarioFlow({ o, redis: ctx.redis?.url, record: (g, c, u, v, run, b) => record(ctx, "flow", g, c, u, v, run, b) });
      o.log(`  (${((Date.now() - t) / 1000).toFixed(0)} s)`);
    }
  } finally {
    await redis?.stop();
  }
  const rows = [...ctx.rows.values()];
  const finished = new Date();
  const { log: _log, profileDir: _p, scenarios, ...config } = o;
  return {
    schema: 1,
    mode: o.mode,
    startedAt: started.toISOString(),
    finishedAt: finished.toISOString(),
    durationSec: Math.round((finished.getTime() - started.getTime()) / 1000),
    machine: {
      cores: cpus().length,
      cpuModel: cpus()[0]?.model ?? "unknown",
      memoryMiB: Math.round(totalmem() / 1048576),
      os: `${platform()} ${release()}`,
      node: process.version,
      natsServer: natsServerVersion(),
      natsSource: process.env.NATS_URL ? "NATS_URL" : "local nats-server per scenario",
      redis: redis ? { version: redis.version, persistence: redis.persistence, source: redis.source } : null,
      postgres: pg ? { version: pg.version, source: pg.source } : null,
    },
    config: { ...config, scenarios: [...scenarios] },
    skipped,
    rows,
    latency,
    memory,
    ratios: computeRatios(rows, latency, memory),
  };
}

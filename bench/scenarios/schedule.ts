// The `schedule` scenario (issue 17): delayed jobs beside BullMQ's (publish rate; how late each
// starts after it is due), the CPU of an idle worker holding 1,000 schedules, and the memory of a
// worker (and the server) while 100,000 delayed jobs wait. Child side: ./schedule-child.ts.
import { readFileSync } from "node:fs";
import type { JetStreamManager } from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { defineQueue, Producer, provisionQueue, Schedules } from "../../src/index.ts";
import { type BenchOptions, Child, type Ctx, fmt, only, type Ratio, record, rotate, type Row, uniq, withNats } from "../harness.ts";
import { makeJob, sleep } from "../lib/common.ts";
import { processCpuSeconds } from "../lib/servers.ts";
import type { Endpoints } from "../lib/tasks.ts";
import type { DelayContender } from "./schedule-child.ts";

/** Sizes per mode (kept here, not in the presets, so the scenario stays in its own files). */
export function scheduleSizes(mode: BenchOptions["mode"]): { delayed: number; spreadMs: number; schedules: number; idleMs: number; held: number } {
  if (mode === "full") return { delayed: 100_000, spreadMs: 10_000, schedules: 1000, idleMs: 3000, held: 100_000 };
  if (mode === "quick") return { delayed: 10_000, spreadMs: 2000, schedules: 200, idleMs: 1500, held: 10_000 };
  return { delayed: 300, spreadMs: 500, schedules: 20, idleMs: 300, held: 300 };
}

const k = (n: number): string => (n >= 1000 ? `${n / 1000}k` : String(n));

async function deleteSchedulingQueue(jsm: JetStreamManager, name: string): Promise<void> {
  const n = defineQueue({ name, scheduling: true }).names;
  for (const s of [n.stream, n.dlqStream, n.ledgerStream, n.heldStream, n.scheduleStream]) await jsm.streams.delete(s).catch(() => {});
}

/** A process's resident memory from /proc (the server's), in bytes; undefined where not readable. */
function rssBytes(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

export async function scenarioSchedule(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  const size = scheduleSizes(o.mode);
  const contenders = only(o, ["jetq", ...(ctx.redis ? ["bullmq"] : [])]) as DelayContender[];
  await withNats(async (nats, nc, jsm) => {
    const endpoints: Endpoints = { nats: nats.servers, redis: ctx.redis?.url };
    // One queue with the schedules for every round (registering 1,000 takes a while); one without.
    const withSchedules = uniq("sched");
    const noSchedules = uniq("nosched");
    const sq = defineQueue({ name: withSchedules, scheduling: true });
    await provisionQueue(nc, sq);
    await provisionQueue(nc, defineQueue({ name: noSchedules, scheduling: true }));
    const schedules = new Schedules(nc, sq);
    const t0 = Date.now();
    // Daily crons at spread-out times, none due during the run (they start in two days).
    const startAt = Date.now() + 2 * 86_400_000;
    let next = 0;
    const lane = async (): Promise<void> => {
      while (next < size.schedules) {
        const i = next++;
        await schedules.upsert(`s${i}`, { cron: `${i % 60} ${i % 24} * * *`, tz: "Europe/Berlin", startAt }, { i });
      }
    };
    await Promise.all(Array.from({ length: 16 }, lane));
    o.log(`  schedule: ${size.schedules} schedules registered in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    try {
      for (let round = 0; round < o.rounds; round++) {
        for (const contender of rotate(contenders, round)) await delayedRun(ctx, nats.pid, endpoints, nc, jsm, contender, size, round);
        for (const which of rotate(["none", "many"] as const, round)) {
          const r = await idleRun(ctx, endpoints, which === "many" ? withSchedules : noSchedules, size.idleMs, `schedule-idle-${which}-r${round}`);
          const contender = which === "many" ? `jetq, ${fmt(size.schedules)} schedules` : "jetq, no schedules";
          record(ctx, "schedule", "idle worker of a scheduling queue: CPU", contender, "CPU ms/s", r.cpuMsPerSec as number, { ...r, round }, "lower");
          if (which === "none") record(ctx, "schedule", "worker peak RSS", "jetq, nothing held", "MiB", r.peakRssMiB as number, { ...r, round }, "lower");
          o.log(`  schedule idle worker, ${which === "many" ? `${size.schedules} schedules` : "no schedules"}: ${(r.cpuMsPerSec as number).toFixed(2)} ms CPU/s, peak RSS ${r.peakRssMiB as number} MiB`);
        }
        await heldRun(ctx, nats.pid, nc, jsm, endpoints, size.held, round);
      }
    } finally {
      await deleteSchedulingQueue(jsm, withSchedules);
      await deleteSchedulingQueue(jsm, noSchedules);
    }
  });
}

/** Publishes the delayed jobs from one process while another works them; records rate and lateness. */
async function delayedRun(
  ctx: Ctx,
  natsPid: number | undefined,
  endpoints: Endpoints,
  nc: NatsConnection,
  jsm: JetStreamManager,
  contender: DelayContender,
  size: ReturnType<typeof scheduleSizes>,
  round: number,
): Promise<void> {
  const { o } = ctx;
  const name = uniq("delay");
  const jobs = size.delayed;
  let cleanup: () => Promise<void>;
  if (contender === "bullmq") {
    const { bullQueue } = await import("../contenders/bullmq.ts");
    const q = bullQueue(ctx.redis!.url, name);
    cleanup = async () => {
      await q.obliterate({ force: true });
      await q.close();
    };
  } else {
    // The orchestrator's connection provisions; the children connect on their own.
    await provisionQueue(nc, defineQueue({ name, scheduling: true }));
    cleanup = () => deleteSchedulingQueue(jsm, name);
  }
  const children: Child[] = [];
  try {
    const label = `schedule-delayed-${contender}-r${round}`;
    const work = new Child({ kind: "schedule", role: "work", contender, endpoints, queue: name, jobs, concurrency: o.concurrency }, `${label}-work`, o.profileDir);
    const pub = new Child({ kind: "schedule", role: "publish", contender, endpoints, queue: name, jobs, spreadMs: size.spreadMs }, `${label}-publish`, o.profileDir);
    children.push(work, pub);
    await Promise.all([work.ready(), pub.ready()]);
    const cpu0 = processCpuSeconds(natsPid);
    work.tell({ type: "go" });
    pub.tell({ type: "go" });
    const p = await pub.result(120_000 + jobs);
    await pub.end();
    const deadline = Date.now() + size.spreadMs + 60_000;
    while (work.count < jobs && Date.now() < deadline) await sleep(20);
    const serverCpuSec = contender === "jetq" && cpu0 !== undefined ? (processCpuSeconds(natsPid) ?? cpu0) - cpu0 : undefined;
    work.tell({ type: "stop" });
    const w = await work.result(30_000);
    await work.end();
    const lat = w.lateness as { count: number; p50: number; p99: number; max: number };
    const rate = jobs / (p.seconds as number);
    const c = contender === "jetq" ? "jetq.publishMany" : "bullmq.addBulk";
    const run = { publish: p, work: w, handled: w.handled, jobs, serverCpuSec, round };
    const what = `${k(jobs)} jobs, delays 0–${size.spreadMs / 1000} s`;
    record(ctx, "schedule", `delayed: publish ${what}`, c, "jobs/s", rate, run);
    if ((w.handled as number) >= jobs) {
      for (const q of ["p50", "p99", "max"] as const) record(ctx, "schedule", `delayed: lateness ${q} (due → handler start), ${what}`, contender, "ms", lat[q], run, "lower");
    }
    o.log(
      `  schedule delayed ${contender.padEnd(6)} publish ${fmt(rate)} jobs/s; ${w.handled as number}/${jobs} ran, lateness p50 ${lat.p50.toFixed(0)} p99 ${lat.p99.toFixed(0)} max ${lat.max.toFixed(0)} ms`,
    );
  } finally {
    for (const c of children) if (c.proc.exitCode === null && c.proc.signalCode === null) c.proc.kill("SIGKILL");
    await cleanup().catch(() => {});
  }
}

/** One idle jetq worker process of `queue`, measured from "go" for `ms`. */
async function idleRun(ctx: Ctx, endpoints: Endpoints, queue: string, ms: number, label: string, until?: () => Promise<void>): Promise<Record<string, unknown>> {
  const child = new Child({ kind: "schedule", role: "idle", scheduling: true, endpoints, queue }, label, ctx.o.profileDir);
  try {
    await child.ready();
    child.tell({ type: "go" });
    if (until) await until();
    else await sleep(ms);
    child.tell({ type: "stop" });
    const r = await child.result(30_000);
    await child.end();
    return r;
  } finally {
    if (child.proc.exitCode === null && child.proc.signalCode === null) child.proc.kill("SIGKILL");
  }
}

/** A worker starting beside `held` jobs delayed by 10 minutes: its memory, and the server's per held job. */
async function heldRun(ctx: Ctx, natsPid: number | undefined, nc: NatsConnection, jsm: JetStreamManager, endpoints: Endpoints, held: number, round: number): Promise<void> {
  const { o } = ctx;
  const name = uniq("held");
  const q = defineQueue({ name, scheduling: true });
  await provisionQueue(nc, q);
  try {
    const serverBefore = rssBytes(natsPid);
    const producer = new Producer(nc, q);
    for (let from = 0; from < held; from += 1000) {
      const items = Array.from({ length: Math.min(1000, held - from) }, (_, i) => makeJob(from + i));
      await producer.publishMany(items, { delayMs: 600_000 });
    }
    await producer.close();
    const n = q.names;
    let nakked = false;
    // The worker's mover has been handed every held job (and naked each with its delay).
    const allHeld = async (): Promise<void> => {
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        const ci = await jsm.consumers.info(n.heldStream, n.heldConsumer);
        if (ci.num_pending === 0 && ci.num_ack_pending >= held) {
          nakked = true;
          break;
        }
        await sleep(100);
      }
      await sleep(500); // a little past the last nak: the memory it settles at
    };
    const r = await idleRun(ctx, endpoints, name, 0, `schedule-held-r${round}`, allHeld);
    const serverAfter = rssBytes(natsPid);
    const perJob = serverBefore !== undefined && serverAfter !== undefined ? (serverAfter - serverBefore) / held : undefined;
    const run = { ...r, held, allHandedToMover: nakked, serverRssBeforeMiB: serverBefore && serverBefore / 1048576, serverRssAfterMiB: serverAfter && serverAfter / 1048576, serverBytesPerHeldJob: perJob, round };
    record(ctx, "schedule", "worker peak RSS", `jetq, ${k(held)} delayed jobs held`, "MiB", r.peakRssMiB as number, run, "lower");
    if (perJob !== undefined) record(ctx, "schedule", "server memory per held job (RSS growth ÷ jobs)", "nats-server", "bytes", perJob, run, "lower");
    o.log(
      `  schedule worker with ${held} delayed jobs held: peak RSS ${r.peakRssMiB as number} MiB, after ${r.rssMiB as number} MiB${nakked ? "" : " (NOT ALL HANDED TO THE MOVER)"}; server ${perJob === undefined ? "?" : perJob.toFixed(0)} bytes per held job`,
    );
  } finally {
    await deleteSchedulingQueue(jsm, name);
  }
}

/** The issue's targets for this scenario, from its rows. */
export function scheduleRatios(rows: Row[]): Ratio[] {
  const out: Ratio[] = [];
  const find = (group: string, contender: string): Row | undefined => rows.find((r) => r.scenario === "schedule" && r.group.startsWith(group) && r.contender.startsWith(contender));
  const jp = find("delayed: publish", "jetq.publishMany");
  const bp = find("delayed: publish", "bullmq.addBulk");
  if (jp && bp && bp.median > 0) {
    const value = jp.median / bp.median;
    out.push({ target: "delayed publishMany vs BullMQ addBulk with delay", numerator: `jetq ${fmt(jp.median)} jobs/s`, denominator: `BullMQ ${fmt(bp.median)} jobs/s`, value, goal: ">= 2", met: value >= 2 });
  }
  const jl = find("delayed: lateness p99", "jetq");
  const bl = find("delayed: lateness p99", "bullmq");
  if (jl && bl && bl.median > 0) {
    const value = jl.median / bl.median;
    out.push({ target: "delayed lateness p99 (due → start), jetq vs BullMQ", numerator: `jetq ${fmt(jl.median)} ms`, denominator: `BullMQ ${fmt(bl.median)} ms`, value, goal: "<= 1", met: value <= 1 });
  }
  const idle = rows.find((r) => r.scenario === "schedule" && r.group.startsWith("idle worker") && r.contender.endsWith(" schedules") && !r.contender.endsWith("no schedules"));
  const idleBase = find("idle worker of a scheduling queue", "jetq, no schedules");
  if (idle && idleBase) {
    // A difference, not a ratio: both are a few ms per second, and their ratio is mostly noise.
    const value = idle.median - idleBase.median;
    out.push({ target: `CPU of an idle worker: ${idle.contender.slice(6)} vs none (ms/s more)`, numerator: `${idle.median.toFixed(2)} ms CPU per s`, denominator: `${idleBase.median.toFixed(2)} ms CPU per s`, value, goal: "<= 2 (0.2 % of a core)", met: value <= 2 });
  }
  const rssHeld = rows.find((r) => r.scenario === "schedule" && r.group === "worker peak RSS" && r.contender.includes("held") && !r.contender.includes("nothing"));
  const rssIdle = find("worker peak RSS", "jetq, nothing held");
  if (rssHeld && rssIdle && rssIdle.median > 0) {
    const value = rssHeld.median / rssIdle.median;
    out.push({ target: `worker peak RSS with ${rssHeld.contender.slice(6)} vs nothing held`, numerator: `${rssHeld.median.toFixed(1)} MiB`, denominator: `${rssIdle.median.toFixed(1)} MiB`, value, goal: "<= 1.2", met: value <= 1.2 });
  }
  return out;
}

/** The BENCHMARKS.md section. */
export function scheduleSection(rows: Row[], mode: BenchOptions["mode"]): string {
  const mine = rows.filter((r) => r.scenario === "schedule");
  if (mine.length === 0) return "(not run)";
  const s = scheduleSizes(mode);
  const out = [
    `Delayed jobs: one process publishes ${fmt(s.delayed)} jobs with delays spread evenly (in a scrambled order) over 0–${s.spreadMs / 1000} s, jetq \`publishMany({ delayMs })\` / BullMQ \`addBulk\` with \`opts.delay\`, in chunks of 1,000 with 4 in flight, while another process works them (concurrency 64; jetq's worker also moves due jobs into the queue). Lateness is handler start minus due time (jetq: the server's store time plus the delay, as stamped in \`Jetq-Due\`; BullMQ: \`job.timestamp + delay\`), on one machine's clock. Idle CPU: a worker of a scheduling queue from 1 s after its start, for ${s.idleMs / 1000} s, with no schedules and with ${fmt(s.schedules)} registered daily crons (none due). Memory: a worker starting beside ${fmt(s.held)} jobs delayed by 10 minutes, measured until its mover has been handed every one (and naked each with its remaining delay); the server's RSS growth over the same span, per held job.`,
    "",
    "| measure | contender | median | min – max |",
    "|---|---|---:|---:|",
  ];
  const v = (x: number): string => (Math.abs(x) < 10 ? x.toFixed(2) : fmt(x));
  for (const r of mine) out.push(`| ${r.group} | ${r.contender} | ${v(r.median)} ${r.unit} | ${v(r.min)} – ${v(r.max)} |`);
  return out.join("\n");
}

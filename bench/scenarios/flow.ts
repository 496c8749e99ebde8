// The `flow` scenario (issue 18): what priorities cost a draining worker, and how close the
// fleet-wide rate limit runs to its limit with several worker processes; BullMQ's `priority` and
// Worker `limiter` beside jetq when Redis is there (same job counts, payloads and limits).
import { fork, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { fileURLToPath } from "node:url";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import type { Queue as BullQueue } from "bullmq";
import { defineQueue, Producer, provisionQueue, type QueueOptions } from "../../src/index.ts";
import { levelConsumer } from "../../src/flow/priority.ts";
import { natsForScenario } from "../lib/servers.ts";
import { makeJob } from "../lib/common.ts";

const CHILD = fileURLToPath(new URL("./flow-child.ts", import.meta.url));

/** What the scenario needs of the harness. */
export interface FlowCtx {
  /**
   * `contenders` (--contenders): the parts to run, of "jetq" (the drains), "raw" (the same drains
   * by plain nats.js `consume()`, the floor), "bullmq" (BullMQ's rows), "rate" (the rate-limit
   * runs); all without.
   */
  o: { mode: "quick" | "full" | "smoke"; rounds: number; log: (line: string) => void; contenders?: readonly string[] | undefined };
  /** Redis for the BullMQ rows; none: jetq only. */
  redis?: string | undefined;
  record: (group: string, contender: string, unit: string, value: number, run: Record<string, unknown>, better?: "higher" | "lower") => void;
}

/** Sizes per mode: full stays under 5 minutes on the 2-core machine, quick under 20 s. */
function sizes(mode: FlowCtx["o"]["mode"]): { drainJobs: number; warmupJobs: number; pairs: number; rate: number; rateSeconds: number } {
  // With BullMQ beside jetq each round runs two rate runs and four drains. The full drain was
  // 10,000 jobs: about 0.3 s for jetq in a fresh process, mostly JIT warm-up (its first third
  // took twice as long as the others), which weighed on the 3-level run more than on the single
  // level. Each drain's process now first drains `warmupJobs` of its own (same layout, same
  // code) untimed, so the timed drain is a warmed-up worker's; 100,000 jobs last about 2 s.
  // Back-to-back pairs of drains of one contender differ by 0.77-1.17x on this shared machine
  // (session 9: 17 pairs of jetq's), so a full round runs two pairs, in A B B A order.
  if (mode === "full") return { drainJobs: 100_000, warmupJobs: 20_000, pairs: 2, rate: 200, rateSeconds: 8 };
  if (mode === "quick") return { drainJobs: 1_000, warmupJobs: 500, pairs: 1, rate: 200, rateSeconds: 1.5 };
  return { drainJobs: 1_000, warmupJobs: 200, pairs: 1, rate: 100, rateSeconds: 3 };
}

class FlowChild {
  readonly proc: ChildProcess;
  readonly #messages: Array<{ type: string; result?: Record<string, unknown> }> = [];
  #wake: (() => void) | undefined;
  constructor(task: object) {
    this.proc = fork(CHILD, [JSON.stringify(task)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
    this.proc.on("message", (m: { type: string; result?: Record<string, unknown> }) => {
      this.#messages.push(m);
      this.#wake?.();
    });
    this.proc.on("exit", () => this.#wake?.());
  }
  tell(type: string): void {
    if (this.proc.connected) this.proc.send({ type });
  }
  /** The first message of `type` (deadline `ms`). */
  async wait(type: string, ms: number): Promise<{ type: string; result?: Record<string, unknown> }> {
    const deadline = Date.now() + ms;
    for (;;) {
      const m = this.#messages.find((x) => x.type === type);
      if (m) return m;
      if (Date.now() > deadline || this.proc.exitCode !== null) throw new Error(`flow child: no "${type}" within ${ms} ms`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, 100);
        this.#wake = () => {
          clearTimeout(t);
          r();
        };
      });
    }
  }
  kill(): void {
    if (this.proc.exitCode === null) this.proc.kill("SIGKILL");
  }
}

/**
 * The long-run rate per `perMs` of sorted start times: `limit` over the mean time `limit`
 * consecutive starts took. Unlike counting starts in a fixed stretch, a fleet that starts in
 * bursts (a window's tokens granted at once) is not flattered by where the stretch begins and ends.
 */
function longRunRate(t: number[], limit: number, perMs: number): number {
  let sum = 0;
  let n = 0;
  for (let i = 0; i + limit < t.length; i++) {
    sum += t[i + limit]! - t[i]!;
    n++;
  }
  return n === 0 ? 0 : (limit * perMs) / (sum / n);
}

/** The most starts in any window of `perMs` (times sorted). */
function busiest(t: number[], perMs: number): number {
  let most = 0;
  let lo = 0;
  for (let hi = 0; hi < t.length; hi++) {
    while (t[hi]! - t[lo]! >= perMs) lo++;
    most = Math.max(most, hi - lo + 1);
  }
  return most;
}

const uniq = (p: string): string => `${p}_${randomBytes(4).toString("hex")}`;

/** Jobs for a rate run: more than the limit lets through in the run. */
const backlog = (s: ReturnType<typeof sizes>): number => Math.ceil(s.rate * (s.rateSeconds + 3));

/** Three worker processes of `task()` on a prefilled, rate-limited queue: records the observed rate and busiest window. */
async function rateRun(ctx: FlowCtx, who: "jetq" | "bullmq", s: ReturnType<typeof sizes>, round: number, task: () => object): Promise<void> {
  const children = [1, 2, 3].map(() => new FlowChild(task()));
  try {
    for (const c of children) c.tell("go");
    await Promise.all(children.map((c) => c.wait("started", 30_000)));
    await new Promise((r) => setTimeout(r, (s.rateSeconds + 1) * 1000));
    for (const c of children) c.tell("stop");
    const all = (await Promise.all(children.map((c) => c.wait("result", 30_000)))).flatMap((m) => m.result!.starts as number[]).sort((a, b) => a - b);
    // The first window left out (the fleet starting), and so is the last (the fleet stopping).
    const from = all[0]! + 1000;
    const to = from + s.rateSeconds * 1000;
    const steady = longRunRate(all.filter((t) => t >= from && t < to), s.rate, 1000);
    const most = busiest(all, 1000);
    const run = { round, limit: s.rate, seconds: s.rateSeconds, starts: all.length, observedPerSec: steady, busiestWindow: most };
    const label = who === "jetq" ? "jetq" : "BullMQ limiter";
    ctx.record(`flow: rate limit ${s.rate} per 1 s, 3 worker processes`, `${label} observed / limit`, "ratio", steady / s.rate, run);
    ctx.record(`flow: rate limit ${s.rate} per 1 s, 3 worker processes`, `${label} busiest 1 s window / limit`, "ratio", most / s.rate, run, "lower");
    ctx.o.log(`  flow rate limit ${s.rate}/s ${who.padEnd(6)}: observed ${steady.toFixed(1)}/s over ${s.rateSeconds} s, busiest 1 s window ${most}`);
  } finally {
    for (const c of children) c.kill();
  }
}

/** Adds `jobs` jobs (the payloads of jetq's runs) to a BullMQ queue in chunks of 1,000, with `opts(i)`. */
async function bullFill(q: BullQueue, jobs: number, opts: (i: number) => { priority: number } | undefined): Promise<void> {
  for (let from = 0; from < jobs; from += 1000) {
    const batch = [];
    for (let i = from; i < Math.min(jobs, from + 1000); i++) {
      const o = opts(i);
      batch.push(o ? { name: "job", data: makeJob(i), opts: o } : { name: "job", data: makeJob(i) });
    }
    await q.addBulk(batch);
  }
}

/** BullMQ's drain beside jetq's: one worker process at concurrency 64; "3 priority levels" uses `priority` 1-3 (a third each). */
async function bullDrain(ctx: FlowCtx, redis: string, v: string, s: ReturnType<typeof sizes>, round: number): Promise<void> {
  const { bullQueue } = await import("../contenders/bullmq.ts");
  const opts = v === "single level" ? () => undefined : (i: number) => ({ priority: 1 + (i % 3) });
  const name = uniq("flow");
  const warmName = uniq("flowwarm");
  const q = bullQueue(redis, name);
  const wq = bullQueue(redis, warmName);
  let child: FlowChild | undefined;
  try {
    await bullFill(q, s.drainJobs, opts);
    await bullFill(wq, s.warmupJobs, opts);
    child = new FlowChild({
      servers: "", queue: { name }, concurrency: 64, mode: "drain", jobs: s.drainJobs, bullmq: { redis, name },
      warmup: { queue: { name: warmName }, jobs: s.warmupJobs, bullmq: { redis, name: warmName } },
    });
    await child.wait("warm", 120_000);
    child.tell("go");
    const r = (await child.wait("result", 120_000)).result!;
    const rate = s.drainJobs / (r.seconds as number);
    ctx.record("flow: drain, 1 worker process, concurrency 64", `BullMQ ${v}`, "jobs/s", rate, { ...r, round });
    ctx.o.log(`  flow drain BullMQ ${v.padEnd(18)} ${Math.round(rate).toLocaleString("en-US")} jobs/s`);
  } finally {
    child?.kill();
    for (const x of [q, wq]) {
      await x.obliterate({ force: true }).catch(() => {});
      await x.close();
    }
  }
}

/**
 * Provisions and fills a queue for one drain (`variant` "single level", or 3 priority levels with a
 * third of the jobs at each), its name added to `made`; returns the child's drain target: the
 * queue's options, and for the raw floor each level's consumer in turn, most urgent first, with its
 * share of the jobs.
 */
async function fillDrainQueue(nc: NatsConnection, who: "jetq" | "raw", variant: string, jobs: number, made: string[]): Promise<object> {
  const name = uniq("flow");
  made.push(name);
  const opts: QueueOptions = variant === "single level" ? { name } : { name, priorities: 3 };
  const q = defineQueue(opts);
  await provisionQueue(nc, q);
  const producer = new Producer(nc, q, { telemetry: false });
  await producer.publishMany(Array.from({ length: jobs }, (_, i) => makeJob(i)), variant === "single level" ? {} : { priority: (_x, i) => i % 3 });
  await producer.close();
  if (who === "jetq") return { queue: opts, jobs };
  const levels = variant === "single level" ? [{ consumer: q.names.consumer, jobs }] : [0, 1, 2].map((l) => ({ consumer: levelConsumer(q, l), jobs: Math.floor(jobs / 3) + (l < jobs % 3 ? 1 : 0) }));
  return { queue: opts, jobs, raw: { stream: q.names.stream, consumers: levels } };
}

export async function scenarioFlow(ctx: FlowCtx): Promise<void> {
  const { o } = ctx;
  const s = sizes(o.mode);
  const part = (p: string): boolean => o.contenders === undefined || o.contenders.includes(p);
  const redis = part("bullmq") ? ctx.redis : undefined;
  const nats = await natsForScenario();
  const nc = await connect({ servers: nats.servers, noAsyncTraces: true });
  const jsm = await jetstreamManager(nc);
  const drop = async (name: string): Promise<void> => {
    for (const st of await jsm.streams.names().next()) if (st === `JETQ_${name}` || st.startsWith(`JETQ_${name}_`)) await jsm.streams.delete(st).catch(() => {});
  };
  try {
    for (let round = 0; round < o.rounds; round++) {
      // Drain: one worker process, concurrency 64, a prefilled backlog; 3 levels (a third of the
      // jobs at each) against one. Each contender's two drains run back to back as a pair (their
      // order alternating by pair and by round), so a pair compares drains that followed the same
      // work (report.ts: the priority target is the median of the pairs' ratios); the raw floor
      // runs on queues provisioned and filled the same way. Each drain's process first drains a
      // warm-up queue of the same layout.
      const variants = round % 2 === 0 ? ["single level", "3 priority levels"] : ["3 priority levels", "single level"];
      const drains = Array.from({ length: s.pairs }, (_, p) => (p % 2 === 0 ? variants : [...variants].reverse())).flat();
      for (const who of ["jetq", "raw"] as const) {
        if (!part(who)) continue;
        for (const v of drains) {
          const made: string[] = [];
          let child: FlowChild | undefined;
          try {
            const timed = await fillDrainQueue(nc, who, v, s.drainJobs, made);
            const warmup = await fillDrainQueue(nc, who, v, s.warmupJobs, made);
            child = new FlowChild({ servers: nats.servers, concurrency: 64, mode: "drain", ...timed, warmup });
            await child.wait("warm", 120_000);
            child.tell("go");
            const r = (await child.wait("result", 120_000)).result!;
            const rate = s.drainJobs / (r.seconds as number);
            ctx.record("flow: drain, 1 worker process, concurrency 64", `${who} ${v}`, "jobs/s", rate, { ...r, round });
            o.log(`  flow drain ${who} ${v.padEnd(18)} ${Math.round(rate).toLocaleString("en-US")} jobs/s (started ${r.startedMs} ms, first job ${r.firstMs} ms, thirds ${String(r.thirdsMs)} ms, end ${Math.round((r.seconds as number) * 1000)} ms, client CPU ${(r.clientCpuUsPerJob as number).toFixed(1)} µs/job)`);
          } finally {
            child?.kill();
            for (const name of made) await drop(name);
          }
        }
      }
      if (redis) for (const v of variants) await bullDrain(ctx, redis, v, s, round);
      if (!part("rate")) continue;
      // Rate limit: 3 worker processes of concurrency 16 on a backlog well above what the limit
      // lets through; starts from every handler, the first window left out (the fleet starting).
      const name = uniq("flowrate");
      const opts: QueueOptions = { name, rateLimit: { max: s.rate, perMs: 1000 } };
      const q = defineQueue(opts);
      await provisionQueue(nc, q);
      const producer = new Producer(nc, q, { telemetry: false });
      await producer.publishMany(Array.from({ length: backlog(s) }, (_, i) => makeJob(i)));
      await producer.close();
      try {
        await rateRun(ctx, "jetq", s, round, () => ({ servers: nats.servers, queue: opts, concurrency: 16, mode: "rate" }));
      } finally {
        await drop(name);
      }
      if (redis) {
        const { bullQueue } = await import("../contenders/bullmq.ts");
        const bname = uniq("flowrate");
        const bq = bullQueue(redis, bname);
        try {
          await bullFill(bq, backlog(s), () => undefined);
          await rateRun(ctx, "bullmq", s, round, () => ({ servers: nats.servers, queue: { name: bname }, concurrency: 16, mode: "rate", bullmq: { redis, name: bname, rate: s.rate } }));
        } finally {
          await bq.obliterate({ force: true }).catch(() => {});
          await bq.close();
        }
      }
    }
  } finally {
    await nc.close().catch(() => {});
    await nats.stop();
  }
}

// Delayed jobs (issue 17) against real servers: held on the server until due, never early by
// the server's clock, durable across a server restart, and a delay costs no attempt.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { ConfigError, defineQueue, type Job, Producer, provisionQueue, queueStats, Worker } from "../../src/index.ts";
import { connectTo, uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";

const nats = useNats();
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");

function jetqSync(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, NATS_URL: nats.server().servers, NO_COLOR: "1" }, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A metric reader collected on demand. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))]!;
}

describe("delayed jobs: options and provisioning", () => {
  it("a queue without `delayed` gets no held stream; one with it gets the stream and its mover consumer, idempotently", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const plain = defineQueue({ name: uniqueName("plain") });
    assert.deepEqual(await provisionQueue(nc, plain), { stream: "created", consumer: "created", deadLetterStream: "created", ledgerStream: "created", migrated: false }, "nothing new for a queue without scheduling");
    await assert.rejects(jsm.streams.info(plain.names.heldStream), /stream not found/);
    await assert.rejects(jsm.streams.info(plain.names.scheduleStream), /stream not found/);

    const q = defineQueue({ name: uniqueName("held"), scheduling: true });
    const first = await provisionQueue(nc, q);
    assert.deepEqual([first.heldStream, first.scheduleStream], ["created", "created"]);
    const second = await provisionQueue(nc, q);
    assert.deepEqual([second.heldStream, second.scheduleStream], ["unchanged", "unchanged"]);
    const ci = await jsm.consumers.info(q.names.heldStream, q.names.heldConsumer);
    assert.equal(ci.config.max_ack_pending, -1, "held jobs wait as un-acked deliveries: no bound");
  });

  it("delayMs / runAt are checked, naming the option (and the item in a batch); a queue without `delayed` refuses them", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("opts"), scheduling: true });
    await provisionQueue(nc, q);
    const p = new Producer(nc, q);
    const plain = defineQueue({ name: uniqueName("plain") });
    await provisionQueue(nc, plain);
    const pp = new Producer(nc, plain);
    try {
      await assert.rejects(p.publish({}, { delayMs: -5 }), (e: Error) => e instanceof ConfigError && /`delayMs`.*-5/.test(e.message));
      await assert.rejects(p.publish({}, { delayMs: 1.5 }), /`delayMs`/);
      await assert.rejects(p.publish({}, { runAt: new Date("nonsense") }), (e: Error) => e instanceof ConfigError && /`runAt`/.test(e.message));
      await assert.rejects(p.publish({}, { delayMs: 10, runAt: Date.now() + 10 }), /either `delayMs` or `runAt`/);
      await assert.rejects(p.publishMany([1, 2, 3], { delayMs: (_, i) => (i === 2 ? -1 : 10) }), /`delayMs` \(item 2\)/);
      await assert.rejects(pp.publish({}, { delayMs: 1000 }), (e: Error) => e instanceof ConfigError && /scheduling: true/.test(e.message));
      assert.throws(() => defineQueue({ name: "x", scheduling: true, duplicateWindowMs: 1000 }), /`duplicateWindowMs`.*at least 10000/);
      // Due now or in the past: straight into the queue (a plain queue takes that too).
      assert.match((await pp.publish({}, { delayMs: 0 })).id, /^seq-/);
      assert.match((await p.publish({}, { runAt: Date.now() - 1000 })).id, /^seq-/);
      // Held: the id names the held stream's sequence, not the queue's.
      assert.match((await p.publish({}, { delayMs: 60_000 })).id, /^delayed-\d+$/);
      assert.equal((await p.publish({}, { delayMs: 60_000, id: "mine" })).id, "mine");
      const again = await p.publish({}, { delayMs: 60_000, id: "mine" });
      assert.equal(again.duplicate, true, "the held stream drops a repeated id");
      const soonest = Date.now() + 30_000;
      await p.publish({}, { runAt: soonest });
      const stats = await queueStats(nc, q);
      assert.equal(stats.delayed, 3, "queueStats counts the held jobs");
      assert.equal(stats.nextDueMs, soonest, "and says when the earliest is due (published last, due first)");
      assert.equal(stats.stored, 1, "the job due in the past went straight into the queue");
      const plainStats = await queueStats(nc, plain);
      assert.equal(plainStats.delayed, undefined);
      assert.equal(plainStats.nextDueMs, undefined);
      // Above 256 held jobs the earliest is not read (one request per held job on a 2.9 server).
      const many = defineQueue({ name: uniqueName("manyheld"), scheduling: true });
      await provisionQueue(nc, many);
      const pm = new Producer(nc, many);
      try {
        await pm.publishMany(Array.from({ length: 256 }, () => ({})), { delayMs: (_, i) => 60_000 + i });
        const at256 = await queueStats(nc, many);
        assert.equal(at256.delayed, 256);
        assert.ok(at256.nextDueMs! >= soonest + 25_000 && at256.nextDueMs! <= Date.now() + 60_000, "the first one's due time");
        await pm.publish({}, { delayMs: 60_000 });
        const at257 = await queueStats(nc, many);
        assert.deepEqual([at257.delayed, at257.nextDueMs], [257, undefined]);
        assert.equal((await queueStats(nc, q)).nextDueMs, soonest);
      } finally {
        await pm.close();
      }
    } finally {
      await p.close();
      await pp.close();
    }
  });
});

describe("delayed jobs: timing and attempts", () => {
  it("a delay costs no attempt; a delayed job that fails retries after its backoff as any other; its lateness is a histogram", async () => {
    const nc = await nats.connect();
    const reader = new PullReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const q = defineQueue({ name: uniqueName("retry"), scheduling: true, backoff: [300], maxAttempts: 3 });
    await provisionQueue(nc, q);
    const starts: Array<{ attempt: number; at: number; due: number; stored: number }> = [];
    const worker = new Worker<unknown>(nc, q, (job: Job<unknown>) => {
      starts.push({ attempt: job.attempt, at: Date.now(), due: Number(job.headers["Jetq-Due"]), stored: job.publishedAt.getTime() });
      if (job.attempt === 1) throw new Error("first attempt fails");
    }, { telemetry: { meterProvider, traces: false } });
    const p = new Producer(nc, q);
    try {
      await worker.start();
      const r = await p.publish({ x: 1 }, { delayMs: 700 });
      await waitFor(() => starts.length === 2, "two attempts", 10_000);
      assert.deepEqual(starts.map((s) => s.attempt), [1, 2], "held for 700 ms, then attempt 1: the delay used no attempt");
      assert.ok(starts[0]!.stored >= starts[0]!.due, "moved into the queue no earlier than due (server clock)");
      assert.ok(starts[1]!.at - starts[0]!.at >= 290, `retried after its 300 ms backoff, got ${starts[1]!.at - starts[0]!.at} ms`);
      assert.match(r.id, /^delayed-/);
      const { resourceMetrics } = await reader.collect();
      const m = resourceMetrics.scopeMetrics.flatMap((x) => x.metrics).find((x) => x.descriptor.name === "jetq.schedule.lateness");
      assert.equal(m?.dataPointType, DataPointType.HISTOGRAM);
      const point = m!.dataPoints.find((p) => p.attributes["jetq.schedule.kind"] === "delayed");
      assert.equal((point?.value as { count: number } | undefined)?.count, 1, "one delayed job moved");
    } finally {
      await worker.stop();
      await p.close();
    }
  });

  it("a job runAt a time runs then, not before; a worker with `schedules: false` moves nothing", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("runat"), scheduling: true });
    await provisionQueue(nc, q);
    const seen: Array<{ at: number; stored: number }> = [];
    const record = (job: Job<unknown>): void => {
      seen.push({ at: Date.now(), stored: job.publishedAt.getTime() });
    };
    const idle = new Worker(nc, q, record, { schedules: false });
    const p = new Producer(nc, q);
    const runAt = new Date(Date.now() + 600);
    try {
      await idle.start();
      await p.publish({}, { runAt, id: "at-job" });
      await new Promise((r) => setTimeout(r, 1200));
      assert.equal(seen.length, 0, "no mover ran, so the job stayed held past its due time");
      const worker = new Worker(nc, q, record);
      await worker.start();
      await waitFor(() => seen.length === 1, "the job, once a mover runs");
      assert.ok(seen[0]!.stored >= runAt.getTime(), `entered the queue at ${seen[0]!.stored}, due ${runAt.getTime()}`);
      await worker.stop();
    } finally {
      await idle.stop();
      await p.close();
    }
  });
});

describe("delayed jobs: 1,000 over 5 s, server restarted midway", () => {
  let srv: LocalNatsServer;
  before(async () => {
    srv = await startLocalNats();
  });
  after(async () => {
    await srv.stop();
  });

  it("none starts before its due time (server clock), all run (a repeat only for the few in flight at the restart), lateness printed", async () => {
    const nc = await connectTo(srv, { maxReconnectAttempts: -1, reconnectTimeWait: 100 });
    const q = defineQueue({ name: uniqueName("many"), scheduling: true });
    await provisionQueue(nc, q);
    const N = 1000;
    const runs = new Map<string, number>();
    const seqs = new Map<string, Set<number>>();
    const early: string[] = [];
    const lateness: number[] = [];
    const worker = new Worker(nc, q, (job) => {
      const due = Number(job.headers["Jetq-Due"]);
      // The job entered the queue at job.publishedAt (server clock) and cannot start before that.
      if (!(job.publishedAt.getTime() >= due)) early.push(job.id);
      lateness.push(Date.now() - due);
      runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
      seqs.set(job.id, (seqs.get(job.id) ?? new Set()).add(job.seq));
    }, { concurrency: 64 });
    worker.on("error", () => {}); // reconnect noise while the server restarts
    const p = new Producer(nc, q);
    try {
      await worker.start();
      const t0 = Date.now();
      await p.publishMany(Array.from({ length: N }, (_, i) => ({ i })), { id: (_, i) => `d-${i}`, delayMs: (_, i) => 300 + Math.floor((i * 5000) / N) });
      // Restart the server while about half the jobs are still held.
      await new Promise((r) => setTimeout(r, Math.max(0, t0 + 2_800 - Date.now())));
      const before = runs.size;
      await srv.restart();
      await waitFor(() => runs.size === N, `all ${N} jobs (${runs.size} so far)`, 30_000, 50);
      const dupes = [...runs].filter(([, n]) => n > 1).map(([id]) => id);
      // A second run of the same queue message is a redelivery (an ack lost in the restart: at
      // least once); a second message is a second move (its held ack lost, and the queue's
      // duplicate window forgot the id of the consumed first copy when the server restarted).
      const movedTwice = dupes.filter((id) => seqs.get(id)!.size > 1);
      const sorted = lateness.slice().sort((a, b) => a - b);
      console.log(
        `delayed: ${N} jobs, ${before} ran before the restart; lateness p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, max ${sorted.at(-1)} ms; ${dupes.length} ran twice (${movedTwice.length} moved twice, ${dupes.length - movedTwice.length} redelivered)`,
      );
      assert.deepEqual(early, [], "no job entered the queue before its due time");
      assert.ok(before > 100 && before < N - 100, `the restart came midway (${before} had run)`);
      // At least once across a server restart: every job ran; a repeat is confined to the few in
      // flight at the restart.
      assert.ok(dupes.length <= 10, `at most the jobs in flight at the restart ran twice: ${dupes.join(", ")}`);
    } finally {
      await worker.stop();
      await p.close();
      await nc.close();
    }
  });

  it("on an idle queue, delayed jobs start soon after due (target p99 ≤ 100 ms; asserted ≤ 250 ms for a shared CI machine)", async () => {
    const nc = await connectTo(srv);
    const q = defineQueue({ name: uniqueName("idle"), scheduling: true });
    await provisionQueue(nc, q);
    const lateness: number[] = [];
    const worker = new Worker(nc, q, (job) => {
      lateness.push(Date.now() - Number(job.headers["Jetq-Due"]));
    }, { concurrency: 16 });
    const p = new Producer(nc, q);
    try {
      await worker.start();
      const N = 200;
      await p.publishMany(Array.from({ length: N }, () => ({})), { delayMs: (_, i) => 200 + i * 10 });
      await waitFor(() => lateness.length === N, "all idle-queue jobs", 20_000, 50);
      const sorted = lateness.sort((a, b) => a - b);
      console.log(`delayed, idle queue: ${N} jobs over 2 s, lateness p50 ${percentile(sorted, 50)} ms, p99 ${percentile(sorted, 99)} ms, max ${sorted.at(-1)} ms`);
      assert.ok(sorted[0]! >= 0, "none early");
      assert.ok(percentile(sorted, 99) <= 250, `p99 lateness ${percentile(sorted, 99)} ms`);
    } finally {
      await worker.stop();
      await p.close();
      await nc.close();
    }
  });
});

describe("delayed jobs: CLI", () => {
  it("jetq provision --scheduling, jetq publish --delay 1s, and jetq schedules run moves the job when due", async () => {
    const nc = await nats.connect();
    const name = uniqueName("cli");
    const plain = uniqueName("cliplain");
    await provisionQueue(nc, defineQueue({ name: plain }));
    const refused = jetqSync(["publish", plain, "{}", "--delay", "1s"]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /does not accept delayed or repeatable jobs.*--scheduling/);
    const prov = jetqSync(["provision", name, "--scheduling"]);
    assert.equal(prov.status, 0, prov.stderr);
    assert.match(prov.stdout, /held stream/);
    const before = Date.now();
    const pub = jetqSync(["publish", name, '{"n":1}', "--delay", "1s", "--id", "cli-job"]);
    assert.equal(pub.status, 0, pub.stderr);

    // Workers that move nothing: only `jetq schedules run` can bring the job in.
    const q = defineQueue({ name, scheduling: true });
    const seen: Array<{ id: string; at: number }> = [];
    const worker = new Worker(nc, q, (job) => {
      seen.push({ id: job.id, at: Date.now() });
    }, { schedules: false });
    await worker.start();
    const runner = spawn(process.execPath, [CLI, "schedules", "run", name], { env: { ...process.env, NATS_URL: nats.server().servers }, stdio: ["ignore", "pipe", "pipe"] });
    const exited = new Promise<number | null>((resolve) => runner.once("exit", resolve));
    try {
      await waitFor(() => seen.length === 1, "the job moved by jetq schedules run", 15_000);
      assert.equal(seen[0]!.id, "cli-job");
      assert.ok(seen[0]!.at >= before + 1000, `ran ${seen[0]!.at - before} ms after the publish started`);
    } finally {
      runner.kill("SIGTERM");
      assert.equal(await exited, 0, "schedules run stops cleanly on SIGTERM");
      await worker.stop();
    }
  });
});

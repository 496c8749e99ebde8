// Repeatable jobs (issue 17) against a real server: exactly one job per tick from any number of
// processes (one of them kill -9'ed midway), limit, endAt, missed ticks after every process was
// down, and the Schedules API.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { DataPointType, MeterProvider, MetricReader } from "@opentelemetry/sdk-metrics";
import { ConfigError, defineQueue, type Job, provisionQueue, Schedules, Worker } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess, type ProcEvent } from "../support/procs.ts";

const nats = useNats();
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function jetqSync(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { env: { ...process.env, NATS_URL: nats.server().servers, NO_COLOR: "1" }, encoding: "utf8", timeout: 30_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A metric reader collected on demand. */
class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

/** A worker in this process recording each job's id and schedule. */
async function recorder(nc: Awaited<ReturnType<typeof nats.connect>>, q: ReturnType<typeof defineQueue>): Promise<{ worker: Worker; jobs: Array<{ id: string; name: string; tick: number }> }> {
  const jobs: Array<{ id: string; name: string; tick: number }> = [];
  const worker = new Worker(nc, q, (job: Job<unknown>) => {
    jobs.push({ id: job.id, name: job.schedule!.name, tick: job.schedule!.tick.getTime() });
  });
  await worker.start();
  return { worker, jobs };
}

describe("Schedules API", () => {
  it("upsert is idempotent, get/list show progress, remove stops the ticks; a queue without scheduling refuses", async () => {
    const nc = await nats.connect();
    assert.throws(() => new Schedules(nc, defineQueue({ name: uniqueName("plain") })), (e: Error) => e instanceof ConfigError && /scheduling: true/.test(e.message));
    const q = defineQueue({ name: uniqueName("api"), scheduling: true });
    await provisionQueue(nc, q);
    const s = new Schedules(nc, q);
    const a = await s.upsert("nightly", { cron: "0 3 * * *", tz: "Europe/Berlin" }, { kind: "daily" }, { headers: { team: "ops" } });
    const again = await s.upsert("nightly", { cron: "0 3 * * *", tz: "Europe/Berlin" }, { kind: "daily" }, { headers: { team: "ops" } });
    assert.equal(again.updatedAt.getTime(), a.updatedAt.getTime(), "the same upsert writes nothing");
    assert.equal(a.nextTick!.getUTCHours() % 24 === 1 || a.nextTick!.getUTCHours() === 2, true, "03:00 Berlin is 01:00 or 02:00 UTC");
    await s.upsert("fast", { everyMs: 60_000 }, { kind: "fast" });
    assert.deepEqual((await s.list()).map((x) => x.name), ["fast", "nightly"]);
    assert.deepEqual((await s.get("nightly"))!.options, { headers: { team: "ops" } });
    await assert.rejects(s.upsert("bad name", { everyMs: 1000 }, {}), /schedule `name`/);
    await assert.rejects(s.upsert("x", { everyMs: 5 }, {}), /`everyMs`/);
    assert.equal(await s.remove("fast"), true);
    assert.equal(await s.remove("fast"), false);
    assert.equal(await s.get("fast"), undefined);
    assert.deepEqual((await s.list()).map((x) => x.name), ["nightly"]);
  });
});

describe("jetq schedules list|show|remove", () => {
  it("lists, shows (text and --json) and removes a schedule; an unknown one is an error naming it", async () => {
    const nc = await nats.connect();
    const name = uniqueName("clisched");
    const q = defineQueue({ name, scheduling: true });
    await provisionQueue(nc, q);
    const s = new Schedules(nc, q);
    await s.upsert("nightly", { cron: "0 3 * * *", tz: "Europe/Berlin", limit: 5 }, { kind: "daily" }, { id: "nightly-{tick}" });
    await s.upsert("beat", { everyMs: 60_000 }, {});
    const list = jetqSync(["schedules", "list", name]);
    assert.equal(list.status, 0, list.stderr);
    assert.match(list.stdout, /NAME\s+SPEC/);
    assert.match(list.stdout, /beat\s+every 60000 ms\s+0\s+-\s+\d{4}-/);
    assert.match(list.stdout, /nightly\s+cron "0 3 \* \* \*" Europe\/Berlin\s+0/);
    const show = jetqSync(["schedules", "show", name, "nightly"]);
    assert.equal(show.status, 0, show.stderr);
    assert.match(show.stdout, /limit 5, missed ticks: once/);
    assert.match(show.stdout, /data:\s+\{"kind":"daily"\}/);
    const json = jetqSync(["--json", "schedules", "show", name, "nightly"]);
    assert.equal(json.status, 0, json.stderr);
    const parsed = JSON.parse(json.stdout) as { queue: string; name: string; options: { id: string }; runs: number; nextTick: string };
    assert.deepEqual([parsed.queue, parsed.name, parsed.options.id, parsed.runs], [name, "nightly", "nightly-{tick}", 0]);
    assert.ok(!Number.isNaN(Date.parse(parsed.nextTick)));
    const missing = jetqSync(["schedules", "show", name, "nope"]);
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /no schedule "nope".*jetq schedules list/);
    const rm = jetqSync(["schedules", "remove", name, "beat"]);
    assert.equal(rm.status, 0, rm.stderr);
    assert.match(rm.stdout, /removed schedule "beat"/);
    assert.notEqual(jetqSync(["schedules", "remove", name, "beat"]).status, 0, "removing it again is an error");
    assert.deepEqual((await s.list()).map((x) => x.name), ["nightly"]);
    const plain = uniqueName("clischedplain");
    await provisionQueue(nc, defineQueue({ name: plain }));
    const refused = jetqSync(["schedules", "list", plain]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--scheduling/);
  });
});

describe("ticks", () => {
  it("an id template and headers shape each tick's job; startAt is the first tick; a changed spec takes effect from its next tick; tick lateness is a histogram", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("tpl"), scheduling: true });
    await provisionQueue(nc, q);
    const s = new Schedules(nc, q);
    await assert.rejects(s.upsert("x", { everyMs: 1000 }, {}, { id: "always-the-same" }), (e: Error) => e instanceof ConfigError && /`id`.*\{tick\}.*always-the-same/.test(e.message));
    await assert.rejects(s.upsert("x", { everyMs: 1000 }, {}, { id: "with space {tick}" }), (e: Error) => e instanceof ConfigError && /`id`.*printable ASCII/.test(e.message));
    const reader = new PullReader();
    const meterProvider = new MeterProvider({ readers: [reader] });
    const jobs: Array<{ id: string; name: string; tick: number; team: string | undefined }> = [];
    const worker = new Worker(nc, q, (job: Job<unknown>) => {
      jobs.push({ id: job.id, name: job.schedule!.name, tick: job.schedule!.tick.getTime(), team: job.headers.team });
    }, { telemetry: { meterProvider, traces: false } });
    try {
      await worker.start();
      const startAt = Math.ceil((Date.now() + 700) / 1000) * 1000 + 123; // not on the epoch grid of everyMs
      const info = await s.upsert("tpl", { everyMs: 250, startAt, limit: 2 }, { n: 1 }, { id: "report-{name}-{tick}", headers: { team: "ops" } });
      assert.equal(info.nextTick?.getTime(), startAt, "the first tick is startAt itself");
      await waitFor(() => jobs.filter((j) => j.name === "tpl").length === 2, "the two ticks of tpl");
      const tpl = jobs.filter((j) => j.name === "tpl");
      assert.deepEqual(tpl.map((j) => j.tick), [startAt, startAt + 250], "startAt, then every 250 ms from it");
      assert.deepEqual(tpl.map((j) => j.id), tpl.map((j) => `report-tpl-${new Date(j.tick).toISOString()}`), "ids from the template");
      assert.deepEqual(tpl.map((j) => j.team), ["ops", "ops"], "headers carried to each job");

      await s.upsert("chg", { everyMs: 300 }, {});
      await waitFor(() => jobs.filter((j) => j.name === "chg").length >= 2, "two ticks at 300 ms");
      const changed = (await s.upsert("chg", { everyMs: 700 }, {})).updatedAt.getTime();
      await waitFor(() => jobs.filter((j) => j.name === "chg" && j.tick > changed).length >= 2, "two ticks after the change");
      await s.remove("chg");
      // A tick of the old spec may already be in flight at the instant of the change.
      const after = jobs.filter((j) => j.name === "chg" && j.tick > changed + 250);
      assert.ok(after.length >= 1);
      for (const j of after) assert.equal(j.tick % 700, 0, `tick ${new Date(j.tick).toISOString()} follows the new spec`);
      const { resourceMetrics } = await reader.collect();
      const m = resourceMetrics.scopeMetrics.flatMap((x) => x.metrics).find((x) => x.descriptor.name === "jetq.schedule.lateness");
      assert.equal(m?.dataPointType, DataPointType.HISTOGRAM);
      const point = m!.dataPoints.find((p) => p.attributes["jetq.schedule.kind"] === "tick");
      const count = (point?.value as { count: number } | undefined)?.count ?? 0;
      assert.ok(count >= 5 && count <= jobs.length, `one lateness per tick this worker published: ${count} of ${jobs.length}`);
    } finally {
      await worker.stop();
    }
  });


  it("limit: exactly `limit` jobs; endAt: none after it; removing a schedule stops it", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("limit"), scheduling: true });
    await provisionQueue(nc, q);
    const s = new Schedules(nc, q);
    const { worker, jobs } = await recorder(nc, q);
    try {
      await s.upsert("three", { everyMs: 200, limit: 3 }, {});
      await s.upsert("until", { everyMs: 200, endAt: Date.now() + 700 }, {});
      await s.upsert("gone", { everyMs: 200 }, {});
      await waitFor(() => jobs.filter((j) => j.name === "gone").length >= 2, "two ticks of gone");
      await s.remove("gone");
      await sleep(1_500);
      const of = (n: string): typeof jobs => jobs.filter((j) => j.name === n);
      assert.equal(of("three").length, 3, "limit 3");
      assert.ok(of("until").every((j) => j.tick <= Date.now() - 800), "no tick after endAt");
      assert.ok(of("until").length >= 2 && of("until").length <= 4, `ticks until endAt: ${of("until").length}`);
      const goneCount = of("gone").length;
      await sleep(500);
      assert.equal(of("gone").length, goneCount, "no tick after remove");
      assert.equal((await s.get("three"))!.runs, 3);
      assert.equal((await s.get("three"))!.nextTick, undefined, "ended");
      for (const j of jobs) assert.equal(j.id, `sched:${j.name}:${new Date(j.tick).toISOString()}`);
    } finally {
      await worker.stop();
    }
  });

  for (const missed of ["once", "skip"] as const) {
    it(`missed: "${missed}" after every process was down for several ticks`, async () => {
      const nc = await nats.connect();
      const q = defineQueue({ name: uniqueName(`missed_${missed}`), scheduling: true });
      await provisionQueue(nc, q);
      const s = new Schedules(nc, q);
      await s.upsert("tick", { everyMs: 300, missed }, {});
      let { worker, jobs } = await recorder(nc, q);
      await waitFor(() => jobs.length >= 2, "two ticks while running");
      await worker.stop();
      const lastRun = Math.max(...jobs.map((j) => j.tick));
      await sleep(1_600); // about five ticks with no process running
      const downUntil = Date.now();
      ({ worker, jobs } = await recorder(nc, q));
      // Starting a worker takes a moment (longer on a loaded machine): a tick due while it starts
      // is a regular tick, not a missed one, so the window of missed ticks ends at downUntil and
      // the one that may hold the catch-up ends once the worker runs.
      const restarted = Date.now();
      try {
        await waitFor(() => jobs.some((j) => j.tick > restarted + 300), "a regular tick after the restart");
        const missedJobs = jobs.filter((j) => j.tick > lastRun && j.tick <= downUntil - 300);
        const aroundRestart = jobs.filter((j) => j.tick > lastRun && j.tick <= restarted);
        if (missed === "once") {
          // About five ticks were missed: one catch-up job for them, never a burst (at most one
          // more for a tick that fell due while the worker started).
          assert.ok(aroundRestart.length >= 1 && aroundRestart.length <= 2, `one catch-up job, got ${aroundRestart.length}`);
          assert.ok(missedJobs.length <= 1, `no burst for the missed ticks, got ${missedJobs.length}`);
          assert.ok(aroundRestart[0]!.tick > downUntil - 600, "for the latest missed tick");
        } else {
          assert.equal(missedJobs.length, 0, "skip: no job for the missed ticks");
        }
      } finally {
        await worker.stop();
      }
    });
  }
});

describe("exactly one job per tick from many processes", () => {
  it("three worker processes and jetq schedules run, everyMs 1000 for ~8 s, one process kill -9'ed and restarted: ids distinct and contiguous", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("fleet"), scheduling: true };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const starts: ProcEvent[] = [];
    const sink = (e: ProcEvent): void => {
      if (e.ev === "start") starts.push(e);
    };
    const env = { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), CONCURRENCY: "2" };
    const procs = [0, 1, 2].map(() => new FixtureProcess("worker-proc.ts", env, sink));
    const runner = spawn(process.execPath, [CLI, "schedules", "run", opts.name], { env: { ...process.env, NATS_URL: nats.server().servers }, stdio: ["ignore", "pipe", "pipe"] });
    const runnerExit = new Promise<number | null>((resolve) => runner.once("exit", resolve));
    const s = new Schedules(nc, q);
    try {
      await Promise.all(procs.map((p) => p.waitFor((e) => e.ev === "ready", "ready")));
      await s.upsert("beat", { everyMs: 1000 }, {});
      await waitFor(() => starts.length >= 3, "three ticks", 10_000, 50);
      await procs[0]!.kill9();
      procs.push(new FixtureProcess("worker-proc.ts", env, sink));
      await waitFor(() => starts.length >= 8, "eight ticks", 15_000, 50);
      await s.remove("beat");
      await sleep(1_200); // a tick in flight lands
      const ids = starts.map((e) => e.id!);
      assert.equal(new Set(ids).size, ids.length, `each tick ran once: ${ids.join(", ")}`);
      const ticks = ids.map((id) => Date.parse(id.slice("sched:beat:".length))).sort((a, b) => a - b);
      for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i]! - ticks[i - 1]!, 1000, `contiguous ticks: ${ids.join(", ")}`);
    } finally {
      runner.kill("SIGTERM");
      await runnerExit;
      await Promise.all(procs.map((p) => p.terminate()));
    }
  });
});

describe("example", () => {
  it("examples/scheduling/main.ts runs as written: one delayed job and three ticks", () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
    const r = spawnSync(process.execPath, ["--conditions=jetq-source", "examples/scheduling/main.ts"], {
      cwd: root,
      env: { ...process.env, NATS_URL: nats.server().servers, QUEUE: uniqueName("example") },
      encoding: "utf8",
      timeout: 30_000,
    });
    assert.equal(r.status, 0, `exit ${r.status}\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /ran delayed job hello-\d+, attempt 1/);
    assert.equal(r.stdout.match(/ran tick of "beat-\d+" at \S+, attempt 1/g)?.length, 3, r.stdout);
  });
});

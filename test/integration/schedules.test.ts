// Repeatable jobs (issue 17) against a real server: exactly one job per tick from any number of
// processes (one of them kill -9'ed midway), limit, endAt, missed ticks after every process was
// down, and the Schedules API.
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { ConfigError, defineQueue, type Job, provisionQueue, Schedules, Worker } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess, type ProcEvent } from "../support/procs.ts";

const nats = useNats();
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

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

describe("ticks", () => {
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

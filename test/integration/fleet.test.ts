// The worker list (issue 23 item 3) and job listing (item 1), against a real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConfigError,
  defineQueue,
  Jobs,
  listJobs,
  listWorkers,
  Producer,
  provisionQueue,
  type QueueOptions,
  Worker,
} from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess } from "../support/procs.ts";

const nats = useNats();

async function setup(opts: QueueOptions) {
  const nc = await nats.connect();
  const q = defineQueue(opts);
  await provisionQueue(nc, q);
  return { nc, q, producer: new Producer(nc, q) };
}

describe("worker list", () => {
  it("a worker announces itself with its running jobs, and is removed at once when it stops", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("fleet") });
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const w = new Worker(nc, q, () => gate, { concurrency: 3, announce: { everyMs: 200 } });
    await w.start();
    try {
      const r1 = await producer.publish({ n: 1 }, { id: "job-one" });
      const r2 = await producer.publish({ n: 2 });
      const seen = await waitFor(async () => {
        const l = await listWorkers(nc, { queue: q.name });
        return l.workers[0]?.inFlight === 2 && l.workers[0].jobs.length === 2 ? l : undefined;
      }, "the worker announced with two running jobs");
      assert.equal(seen.total, 1);
      const info = seen.workers[0]!;
      assert.equal(info.id, w.id);
      assert.equal(info.queue, q.name);
      assert.equal(info.pid, process.pid);
      assert.equal(info.concurrency, 3);
      assert.equal(info.version, "0.1.0");
      assert.ok(info.startedAt.getTime() <= Date.now() && info.startedAt.getTime() > Date.now() - 60_000);
      assert.ok(info.utilization > 0 && info.utilization <= 1, `utilization ${info.utilization}`);
      assert.deepEqual(info.jobs.map((j) => [j.id, j.seq, j.attempt]).sort(), [["job-one", r1.seq, 1], [`seq-${r2.seq}`, r2.seq, 1]].sort());
      assert.ok(info.jobs.every((j) => j.since.getTime() <= Date.now()));
      // The same jobs as active jobs of the queue; the waiting list leaves them out.
      const act = await listJobs(nc, q, { state: "active" });
      assert.deepEqual(act.jobs.map((j) => j.seq), [r1.seq, r2.seq]);
      assert.equal(act.jobs[0]!.worker, w.id);
      assert.equal(act.jobs[0]!.attempt, 1);
      assert.equal(act.jobs[0]!.preview, '{"n":1}');
      assert.ok(act.jobs[0]!.since!.getTime() >= act.jobs[0]!.publishedAt.getTime() - 1000);
      assert.equal(act.total, 2);
      const wait = await listJobs(nc, q, { state: "waiting" });
      assert.deepEqual(wait.jobs, []);
      assert.equal(wait.total, 0);
      // Every queue: this worker is among them.
      assert.ok((await listWorkers(nc, { limit: 1000 })).workers.some((x) => x.id === w.id));
    } finally {
      release();
      await w.stop();
    }
    const after = await listWorkers(nc, { queue: q.name });
    assert.deepEqual(after, { workers: [], total: 0 }, "a stopped worker is removed at once");
    await producer.close();
  });

  it("a kill -9'ed worker process disappears within the list's TTL (15 s)", { timeout: 60_000 }, async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("fleetkill") });
    const env = { NATS_URL: nats.server().servers, QUEUE: q.name, EVERY_MS: "500" };
    const victim = new FixtureProcess("fleet-worker.ts", env);
    const other = new FixtureProcess("fleet-worker.ts", env);
    try {
      const ready = await victim.waitFor((e) => e.ev === "ready", "victim ready");
      await other.waitFor((e) => e.ev === "ready", "other ready");
      await producer.publish({ hang: true });
      await waitFor(async () => (await listWorkers(nc, { queue: q.name })).total === 2, "both workers listed");
      await victim.kill9();
      const killedAt = Date.now();
      // No one removed it: it stays until its last announcement expires, then goes on its own.
      await waitFor(async () => {
        const l = await listWorkers(nc, { queue: q.name });
        return l.total === 1 && l.workers.length === 1 && l.workers[0]!.pid === other.pid && !l.workers.some((x) => x.id === ready.id);
      }, "the killed worker gone from the list", 15_000 + 3_000, 200);
      const goneAfter = Date.now() - killedAt;
      console.log(`killed worker gone from the list after ${goneAfter} ms (TTL 15000 ms after its last announcement)`);
      assert.ok(goneAfter <= 18_000);
    } finally {
      await victim.kill9();
      await other.terminate();
      await producer.close();
    }
  });

  it("is bounded: a page of `limit` workers and the total of all; per queue; announce: false is not listed", async () => {
    const { nc, q } = await setup({ name: uniqueName("fleetmany") });
    const { q: q2 } = await setup({ name: uniqueName("fleetother") });
    const workers = [
      ...Array.from({ length: 12 }, () => new Worker(nc, q, () => {}, { announce: { everyMs: 200 } })),
      new Worker(nc, q2, () => {}, { announce: { everyMs: 200 } }),
      new Worker(nc, q, () => {}, { announce: false }),
    ];
    await Promise.all(workers.map((w) => w.start()));
    try {
      await waitFor(async () => (await listWorkers(nc, { queue: q.name })).total === 12, "12 announced workers");
      const page = await listWorkers(nc, { queue: q.name, limit: 5 });
      assert.equal(page.workers.length, 5);
      assert.equal(page.total, 12);
      assert.ok(page.workers.every((w) => w.queue === q.name));
      const other = await listWorkers(nc, { queue: q2 });
      assert.equal(other.total, 1);
      assert.equal(other.workers[0]!.id, workers[12]!.id);
      const all = await listWorkers(nc, { queue: q.name, limit: 1000 });
      assert.ok(!all.workers.some((w) => w.id === workers[13]!.id), "announce: false is not listed");
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
    assert.equal((await listWorkers(nc, { queue: q.name })).total, 0);
    await assert.rejects(listWorkers(nc, { limit: 0 }), (e: Error) => e instanceof ConfigError && /`limit`.*1 to 1000.*0/.test(e.message));
    await assert.rejects(listWorkers(nc, { queue: "a.b" }), (e: Error) => e instanceof ConfigError && /`queue`/.test(e.message));
    assert.throws(() => new Worker(nc, q, () => {}, { announce: { everyMs: 60_000 } }), (e: Error) => e instanceof ConfigError && /`announce`.*everyMs.*60000/.test(e.message));
  });
});

describe("job listing", () => {
  it("pages waiting jobs by sequence with a bounded payload preview, age and total", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("listw") });
    const seqs: number[] = [];
    for (let i = 0; i < 25; i++) seqs.push((await producer.publish({ i, text: i === 3 ? "x".repeat(5_000) : "short" }, i === 0 ? { id: "first" } : {})).seq);
    const p1 = await listJobs(nc, q, { limit: 10 });
    assert.equal(p1.state, "waiting");
    assert.equal(p1.total, 25);
    assert.deepEqual(p1.jobs.map((j) => j.seq), seqs.slice(0, 10));
    assert.equal(p1.jobs[0]!.id, "first");
    assert.equal(p1.jobs[1]!.id, `seq-${seqs[1]}`);
    assert.equal(p1.jobs[1]!.preview, '{"i":1,"text":"short"}');
    assert.ok(p1.jobs[3]!.preview!.length <= 200 && p1.jobs[3]!.preview!.endsWith("…"), "a long payload is cut");
    assert.ok(p1.jobs[3]!.size! > 5_000);
    assert.ok(p1.jobs.every((j) => j.ageMs >= 0 && j.ageMs < 60_000 && j.publishedAt instanceof Date));
    assert.equal(p1.next, seqs[9]);
    const p2 = await listJobs(nc, q, { limit: 10, after: p1.next });
    assert.deepEqual(p2.jobs.map((j) => j.seq), seqs.slice(10, 20));
    const p3 = await listJobs(nc, q, { limit: 10, after: p2.next });
    assert.deepEqual(p3.jobs.map((j) => j.seq), seqs.slice(20));
    assert.equal(p3.next, undefined, "the last page has no next");
    // Jobs.list delegates (a queue with results).
    const { nc: nc2, q: rq, producer: rp } = await setup({ name: uniqueName("listr"), results: { keepMs: 60_000 } });
    await rp.publish({ a: 1 });
    const viaJobs = await new Jobs(nc2, rq).list({ limit: 5 });
    assert.equal(viaJobs.jobs.length, 1);
    assert.equal(viaJobs.total, 1);
    await assert.rejects(listJobs(nc, q, { state: "done" as never }), (e: Error) => e instanceof ConfigError && /`state`.*"done"/.test(e.message));
    await assert.rejects(listJobs(nc, q, { limit: 5000 }), (e: Error) => e instanceof ConfigError && /`limit`/.test(e.message));
    await assert.rejects(listJobs(nc, q, { after: -1 }), (e: Error) => e instanceof ConfigError && /`after`/.test(e.message));
    await producer.close();
    await rp.close();
  });

  it("lists delayed jobs with their due time, paged by held sequence", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("listd"), scheduling: true });
    const before = Date.now();
    const a = await producer.publish({ d: 1 }, { delayMs: 60_000, id: "later" });
    const runAt = Date.now() + 3_600_000;
    await producer.publish({ d: 2 }, { runAt });
    await producer.publish({ d: 3 }, { delayMs: 120_000 });
    const p1 = await listJobs(nc, q, { state: "delayed", limit: 2 });
    assert.equal(p1.total, 3);
    assert.equal(p1.jobs.length, 2);
    assert.equal(p1.jobs[0]!.id, "later");
    assert.equal(p1.jobs[0]!.state, "delayed");
    const due0 = p1.jobs[0]!.dueAt!.getTime();
    assert.ok(due0 >= before + 60_000 - 1_000 && due0 <= Date.now() + 60_000 + 1_000, `due ${due0}`);
    assert.equal(p1.jobs[1]!.dueAt!.getTime(), runAt);
    assert.equal(p1.jobs[1]!.preview, '{"d":2}');
    const p2 = await listJobs(nc, q, { state: "delayed", limit: 2, after: p1.next });
    assert.equal(p2.jobs.length, 1);
    assert.equal(p2.next, undefined);
    // Nothing is waiting in the queue itself yet.
    assert.equal((await listJobs(nc, q, { state: "waiting" })).total, 0);
    // A queue without scheduling has no delayed jobs.
    const { q: plain } = await setup({ name: uniqueName("listp") });
    assert.deepEqual(await listJobs(nc, plain, { state: "delayed" }), { state: "delayed", jobs: [], total: 0 });
    void a;
    await producer.close();
  });
});

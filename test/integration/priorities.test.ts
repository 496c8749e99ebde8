/**
 * Priorities (issue 18): one subject and one durable consumer per level; workers take from the
 * most urgent level that has work, strictly unless `priorityStarvation` lets a less urgent job
 * through every so often; idle levels cost a bounded number of requests; a single-level queue
 * gains levels in place; dead letters replay to their level; bad values are ConfigErrors.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  ConfigError,
  DeadLetterQueue,
  defineQueue,
  PermanentError,
  Producer,
  ProvisionConflictError,
  provisionQueue,
  QueueNotFoundError,
  type QueueOptions,
  queueStats,
  Schedules,
  Worker,
} from "../../src/index.ts";
import type { Queue } from "../../src/queue/define.ts";
import { startScheduling } from "../../src/schedule/run.ts";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { levelConsumer } from "../../src/flow/priority.ts";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess, type ProcEvent } from "../support/procs.ts";

const nats = useNats();
const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");

describe("priorities", () => {
  it("2,000 low-priority jobs waiting, then 50 urgent ones: with 2 worker processes the 50 start before any low job beyond those already asked for", { timeout: 90_000 }, async (t) => {
    const nc = await nats.connect();
    const opts: QueueOptions = { name: uniqueName("prio"), priorities: 3 };
    const q = defineQueue(opts);
    const result = await provisionQueue(nc, q);
    assert.equal(result.priorityConsumers, "created");
    const producer = new Producer(nc, q);
    const starts: ProcEvent[] = [];
    const done = new Set<string>();
    const bad: ProcEvent[] = [];
    const sink = (e: ProcEvent): void => {
      if (e.ev === "start") starts.push(e);
      else if (e.ev === "done") done.add(e.id!);
      else if (e.ev === "dead" || e.ev === "fail" || e.ev === "error") bad.push(e);
    };
    const concurrency = 8;
    const env = { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), MODE: "record", CONCURRENCY: String(concurrency), JOB_MS: "10" };
    const procs = [1, 2].map(() => new FixtureProcess("worker-proc.ts", env, sink));
    try {
      await producer.publishMany(Array.from({ length: 2_000 }, (_, i) => i), { id: (i) => `low-${i}` });
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [0, 0, 2_000]);
      await Promise.all(procs.map((p) => p.waitFor((e) => e.ev === "ready", "ready")));
      await waitFor(() => starts.length >= 200, "200 low jobs started");
      const before = Date.now();
      await producer.publishMany(Array.from({ length: 50 }, (_, i) => i), { id: (i) => `high-${i}`, priority: 0 });
      await waitFor(() => starts.filter((e) => e.id!.startsWith("high-")).length === 50, "the 50 urgent jobs started");
      const lastHigh = Math.max(...starts.filter((e) => e.id!.startsWith("high-")).map((e) => e.t!));
      const lowBetween = starts.filter((e) => e.id!.startsWith("low-") && e.t! > before && e.t! <= lastHigh).length;
      t.diagnostic(`low jobs started while the 50 urgent ones went: ${lowBetween}; urgent ones took ${lastHigh - before} ms`);
      // Only pull requests already on their way when the urgent jobs arrived can bring low jobs.
      assert.ok(lowBetween <= 2 * concurrency, `at most ${2 * concurrency} low jobs (requests already open) started before the last urgent one, saw ${lowBetween}`);
      await waitFor(() => done.size === 2_050, "all 2,050 jobs completed", 60_000);
      assert.deepEqual(bad, []);
      assert.ok(starts.every((e) => e.attempt === 1), "no attempt used");
      assert.equal(new Set(starts.map((e) => e.pid)).size, 2, "both processes took jobs");
      assert.equal((await queueStats(nc, q)).pending, 0);
    } finally {
      await producer.close();
      await Promise.all(procs.map((p) => p.terminate()));
    }
  });

  it("strict by default: no less urgent job starts while a more urgent one waits; priorityStarvation { every: 10 } lets one through per 10", { timeout: 60_000 }, async (t) => {
    const nc = await nats.connect();
    for (const starvation of [undefined, { every: 10 }]) {
      const q = defineQueue({ name: uniqueName("prio"), priorities: 3, ...(starvation ? { priorityStarvation: starvation } : {}) });
      await provisionQueue(nc, q);
      const producer = new Producer(nc, q);
      await producer.publishMany(Array.from({ length: 100 }, (_, i) => `low-${i}`), { id: (x) => String(x) });
      await producer.publishMany(Array.from({ length: 100 }, (_, i) => `mid-${i}`), { id: (x) => String(x), priority: 1 });
      await producer.publishMany(Array.from({ length: 300 }, (_, i) => `high-${i}`), { id: (x) => String(x), priority: 0 });
      const order: string[] = [];
      const w = new Worker(nc, q, async (job) => {
        order.push(String(job.data));
        await new Promise((r) => setTimeout(r, 1));
      }, { concurrency: 8 });
      try {
        await w.start();
        await waitFor(() => order.length === 500, "all 500 ran", 30_000);
      } finally {
        await w.stop();
        await producer.close();
      }
      const lastHigh = order.findLastIndex((x) => x.startsWith("high-"));
      const lessUrgent = order.slice(0, lastHigh).filter((x) => !x.startsWith("high-")).length;
      t.diagnostic(`starvation ${JSON.stringify(starvation)}: ${lessUrgent} less urgent jobs started among the first ${lastHigh + 1}`);
      if (!starvation) {
        assert.equal(lessUrgent, 0, "strict: nothing less urgent before the last urgent job");
        const lastMid = order.findLastIndex((x) => x.startsWith("mid-"));
        assert.equal(order.slice(0, lastMid).filter((x) => x.startsWith("low-")).length, 0, "strict: no low job before the last mid one");
      } else {
        // 300 urgent jobs at one in 10: about 30 let through.
        assert.ok(lessUrgent >= 24 && lessUrgent <= 36, `about one less urgent job per 10 urgent ones, saw ${lessUrgent} among ${lastHigh + 1}`);
      }
    }
  });

  it("an idle queue costs one waiting request per level per pullExpiresMs, and an urgent job published to it starts at once", { timeout: 60_000 }, async (t) => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("prio"), priorities: 3 });
    await provisionQueue(nc, q);
    const requests: string[] = [];
    const sub = nc.subscribe(`$JS.API.CONSUMER.MSG.NEXT.${q.names.stream}.>`, { callback: (_e, m) => void requests.push(m.subject) });
    await nc.flush();
    const started: number[] = [];
    const w = new Worker(nc, q, () => {
      started.push(Date.now());
    }, { concurrency: 8, pullExpiresMs: 1_000 });
    const producer = new Producer(nc, q);
    try {
      await w.start();
      // The start scans every level once; then each level keeps one waiting request.
      await new Promise((r) => setTimeout(r, 500));
      const from = requests.length;
      await new Promise((r) => setTimeout(r, 4_000));
      const idle = requests.length - from;
      t.diagnostic(`idle for 4 s with pullExpiresMs 1000 and 3 levels: ${idle} pull requests (a single-level queue: 4)`);
      // One waiting request per level, renewed as each expires: 3 per second.
      assert.ok(idle >= 9 && idle <= 15, `about 12 pull requests in 4 s, saw ${idle}`);
      const at = Date.now();
      await producer.publish("urgent", { priority: 0 });
      await waitFor(() => started.length === 1, "the urgent job ran");
      t.diagnostic(`an urgent job on an idle queue started after ${started[0]! - at} ms`);
      assert.ok(started[0]! - at < 500, `the urgent job started within 500 ms, took ${started[0]! - at} ms`);
    } finally {
      sub.unsubscribe();
      await producer.close();
      await w.stop();
    }
  });

  it("an urgent burst on an idle worker runs at full concurrency within about a second (the lowest level's waiting request does not hold the slots)", { timeout: 60_000 }, async (t) => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("prio"), priorities: 3 });
    await provisionQueue(nc, q);
    let running = 0;
    let most = 0;
    let done = 0;
    const w = new Worker(nc, q, async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 20));
      running--;
      done++;
    }, { concurrency: 16 });
    const producer = new Producer(nc, q);
    try {
      await w.start();
      await new Promise((r) => setTimeout(r, 300)); // idle: every level has its waiting request
      const at = Date.now();
      await producer.publishMany(Array.from({ length: 300 }, (_, i) => i), { priority: 0 });
      await waitFor(() => done === 300, "the burst ran", 30_000);
      const took = Date.now() - at;
      t.diagnostic(`300 urgent jobs of 20 ms on an idle worker of concurrency 16 (default pullExpiresMs 5 s): ${took} ms, up to ${most} at once`);
      // At full concurrency 300 × 20 ms / 16 ≈ 0.4 s; held to the sentinels' slots until a 5 s
      // request expired it took over 5 s.
      assert.ok(took < 3_500, `the burst took ${took} ms`);
      assert.ok(most >= 12, `ran up to ${most} at once`);
    } finally {
      await producer.close();
      await w.stop();
    }
  });

  it("a worker process killed mid-run: every job of every level still completes, none dead-lettered, no attempt charged", { timeout: 90_000 }, async (t) => {
    const nc = await nats.connect();
    const opts: QueueOptions = { name: uniqueName("prio"), priorities: 3, ackWaitMs: 2_000 };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const done = new Set<string>();
    const bad: ProcEvent[] = [];
    const starts: ProcEvent[] = [];
    const sink = (e: ProcEvent): void => {
      if (e.ev === "start") starts.push(e);
      else if (e.ev === "done") done.add(e.id!);
      else if (e.ev === "dead" || e.ev === "fail") bad.push(e);
    };
    const env = { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), MODE: "record", CONCURRENCY: "8", JOB_MS: "30" };
    const victim = new FixtureProcess("worker-proc.ts", env, sink);
    const survivor = new FixtureProcess("worker-proc.ts", env, sink);
    try {
      await producer.publishMany(Array.from({ length: 300 }, (_, i) => i), { id: (i) => `job-${String(i)}`, priority: (i) => Number(i) % 3 });
      await Promise.all([victim, survivor].map((p) => p.waitFor((e) => e.ev === "ready", "ready")));
      await waitFor(() => starts.some((e) => e.pid === victim.pid) && done.size >= 60, "the victim runs jobs");
      victim.proc.kill("SIGKILL");
      await victim.exited;
      await waitFor(() => done.size === 300, "all 300 jobs completed", 60_000);
      const redelivered = starts.filter((e) => e.isolated).length;
      t.diagnostic(`${redelivered} jobs ran alone after the kill`);
      assert.deepEqual(bad, []);
      assert.ok(starts.every((e) => e.attempt === 1), "no attempt charged for the crash");
      assert.equal(await new DeadLetterQueue(nc, q).count(), 0);
      assert.equal((await queueStats(nc, q)).pending, 0);
    } finally {
      await producer.close();
      await Promise.all([victim, survivor].map((p) => p.terminate()));
    }
  });

  it("a single-level queue gains levels with { update: true }, keeping its waiting jobs; levels cannot be removed in place", { timeout: 60_000 }, async () => {
    const nc = await nats.connect();
    const name = uniqueName("prio");
    const single = defineQueue({ name });
    await provisionQueue(nc, single);
    const old = new Producer(nc, single);
    await old.publishMany(Array.from({ length: 20 }, (_, i) => `old-${i}`));
    await old.close();
    const q = defineQueue({ name, priorities: 3 });
    await assert.rejects(provisionQueue(nc, q), (e: unknown) => e instanceof ProvisionConflictError && /subjects/.test(e.message) && /update: true/.test(e.message));
    // A worker of the new definition on the old layout says what to do.
    await assert.rejects(new Worker(nc, q, () => {}).start(), (e: unknown) => e instanceof QueueNotFoundError && /priority level 0/.test(e.message));
    const r = await provisionQueue(nc, q, { update: true });
    assert.equal(r.stream, "updated");
    assert.equal(r.consumer, "updated");
    assert.equal(r.priorityConsumers, "created");
    assert.equal((await provisionQueue(nc, q)).priorityConsumers, "unchanged");
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 5 }, (_, i) => `new-${i}`), { priority: 0 });
    assert.deepEqual((await queueStats(nc, q)).priorityPending, [5, 0, 20]);
    const order: string[] = [];
    const w = new Worker(nc, q, (job) => {
      order.push(String(job.data));
    }, { concurrency: 1 });
    try {
      await w.start();
      await waitFor(() => order.length === 25, "all 25 ran");
      assert.deepEqual(order.slice(0, 5).sort(), ["new-0", "new-1", "new-2", "new-3", "new-4"], "the urgent jobs first");
      assert.equal(new Set(order).size, 25, "every job once");
    } finally {
      await w.stop();
      await producer.close();
    }
    await assert.rejects(provisionQueue(nc, single, { update: true }), (e: unknown) => e instanceof ProvisionConflictError && /subjects/.test(e.message));
  });

  it("the credit window is per level: N levels hold up to N × maxAckPending un-acked jobs (README, Priorities)", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("prio"), priorities: 3, maxAckPending: 5 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    try {
      for (let level = 0; level < 3; level++) await producer.publishMany(Array.from({ length: 10 }, (_, i) => i), { priority: level });
      const js = jetstream(nc);
      const held: number[] = [];
      for (let level = 0; level < 3; level++) {
        const c = await js.consumers.get(q.names.stream, levelConsumer(q, level));
        assert.equal((await c.info()).config.max_ack_pending, 5, `level ${level}`);
        let n = 0;
        // Nothing acked: the server stops at the level's own window and the request expires.
        for await (const _m of await c.fetch({ max_messages: 10, expires: 1_000 })) n++;
        held.push(n);
      }
      assert.deepEqual(held, [5, 5, 5]);
    } finally {
      await producer.close();
    }
  });

  it("a dead letter of an urgent job replays to its level; queueStats counts per level", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("prio"), priorities: 2, maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const w = new Worker(nc, q, () => {
      throw new PermanentError("no");
    });
    try {
      const { seq } = await producer.publish({ n: 1 }, { priority: 0 });
      // Published straight to its level: the subject says the level, no header does.
      const stored = await (await jetstreamManager(nc)).streams.getMessage(q.names.stream, { seq });
      assert.equal(stored?.subject, `${q.names.subject}.p.0`);
      assert.equal(stored?.header?.get("Jetq-Priority") ?? "", "");
      await w.start();
      const dlq = new DeadLetterQueue(nc, q);
      await waitFor(async () => (await dlq.count()) === 1, "the job was dead-lettered");
      await w.stop();
      const [entry] = await dlq.list();
      await dlq.replay(entry!.seq);
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [1, 0], "replayed to level 0");
      await producer.publish({ n: 2 });
      const s = await queueStats(nc, q);
      assert.deepEqual(s.priorityPending, [1, 1]);
      assert.equal(s.pending, 2);
      // The CLI knows the queue by name only: it reads the levels from the stream's subjects.
      const cli = spawnSync(process.execPath, [CLI, "stats", q.name, "--json"], { env: { ...process.env, NATS_URL: nats.server().servers }, encoding: "utf8", timeout: 30_000 });
      assert.equal(cli.status, 0, cli.stderr);
      assert.deepEqual((JSON.parse(cli.stdout) as { priorityPending: number[] }).priorityPending, [1, 1]);
      const text = spawnSync(process.execPath, [CLI, "stats", q.name], { env: { ...process.env, NATS_URL: nats.server().servers, NO_COLOR: "1" }, encoding: "utf8", timeout: 30_000 });
      assert.match(text.stdout, /priority 0\s+1\s+waiting, most urgent level/);
      const env = { ...process.env, NATS_URL: nats.server().servers, NO_COLOR: "1" };
      const pub = spawnSync(process.execPath, [CLI, "publish", q.name, '{"n":3}', "--priority", "0"], { env, encoding: "utf8", timeout: 30_000 });
      assert.equal(pub.status, 0, pub.stderr);
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [2, 1], "jetq publish --priority 0 went to level 0");
      const bad = spawnSync(process.execPath, [CLI, "publish", q.name, '{"n":4}', "--priority", "2"], { env, encoding: "utf8", timeout: 30_000 });
      assert.notEqual(bad.status, 0);
      assert.match(bad.stderr, /`priority`.*0 \(most urgent\) to 1/);
    } finally {
      await producer.close();
      await w.stop();
    }
  });

  it("a delayed job and a schedule's tick jobs go to their level when due; a bad schedule priority is a ConfigError", { timeout: 30_000 }, async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("prio"), priorities: 3, scheduling: true });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const errors: Error[] = [];
    // The mover and the ticker alone (as `jetq schedules run` runs them): no worker takes the jobs.
    const scheduling = await startScheduling(nc, q as Queue<unknown, unknown>, { error: (e) => errors.push(e) }, false);
    try {
      const due = Date.now() + 300;
      await producer.publish({ n: 1 }, { priority: 0, runAt: due });
      await producer.publishMany([{ n: 2 }, { n: 3 }], { priority: (_x, i) => (i === 0 ? 1 : 2), delayMs: 300 });
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [0, 0, 0], "held, not in the queue yet");
      await waitFor(async () => (await queueStats(nc, q)).pending === 3, "the three delayed jobs were moved");
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [1, 1, 1], "each went to its own level");

      const schedules = new Schedules(nc, q);
      await assert.rejects(schedules.upsert("bad", { everyMs: 60_000 }, { n: 0 }, { priority: 3 }), (e: unknown) => e instanceof ConfigError && /`priority`/.test(e.message));
      const info = await schedules.upsert("urgent", { everyMs: 1_000, limit: 1 }, { n: 4 }, { priority: 0 });
      assert.equal(info.options.priority, 0);
      await waitFor(async () => (await queueStats(nc, q)).priorityPending?.[0] === 2, "the schedule's first tick went to level 0");
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [2, 1, 1]);
      assert.deepEqual(errors, []);
    } finally {
      await scheduling.stop();
      await producer.close();
    }
  });

  it("bad values are ConfigErrors naming the option; nothing of a bad batch is sent", async () => {
    const nc = await nats.connect();
    for (const priorities of [1, 11, 2.5, "3", 0, -1]) {
      assert.throws(() => defineQueue({ name: "x", priorities: priorities as number }), (e: unknown) => e instanceof ConfigError && /`priorities`/.test(e.message), String(priorities));
    }
    assert.throws(() => defineQueue({ name: "x", priorityStarvation: { every: 10 } }), (e: unknown) => e instanceof ConfigError && /needs `priorities`/.test(e.message));
    for (const every of [0, -1, 1.5, "10"]) {
      assert.throws(() => defineQueue({ name: "x", priorities: 3, priorityStarvation: { every: every as number } }), (e: unknown) => e instanceof ConfigError && /priorityStarvation\.every/.test(e.message));
    }
    assert.throws(() => defineQueue({ name: "x", priorities: 3, priorityStarvation: 10 as never }), ConfigError);
    const q = defineQueue({ name: uniqueName("prio"), priorities: 3, scheduling: true });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    try {
      for (const priority of [3, -1, 1.5, "0", Number.NaN]) {
        await assert.rejects(producer.publish(1, { priority: priority as number }), (e: unknown) => e instanceof ConfigError && /`priority`/.test(e.message) && /0 \(most urgent\) to 2/.test(e.message), String(priority));
      }
      await assert.rejects(
        producer.publishMany([1, 2, 3], { priority: (x) => (x === 2 ? 7 : 0) }),
        (e: unknown) => e instanceof ConfigError && /\(item 1\)/.test(e.message),
      );
      // The lowest level is the default: explicitly or not, and with a delay too.
      const r = await producer.publish(1, { priority: 2 });
      assert.equal(r.duplicate, false);
      assert.deepEqual((await queueStats(nc, q)).priorityPending, [0, 0, 1], "only the valid publish is stored");
      const single = defineQueue({ name: uniqueName("prio") });
      await provisionQueue(nc, single);
      const p2 = new Producer(nc, single);
      await assert.rejects(p2.publish(1, { priority: 0 }), (e: unknown) => e instanceof ConfigError && /has no priority levels/.test(e.message));
      await p2.close();
    } finally {
      await producer.close();
    }
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { DeadLetterQueue, defineQueue, Producer, provisionQueue, type QueueOptions } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess, type ProcEvent } from "../support/procs.ts";

const nats = useNats();

function workerEnv(opts: QueueOptions, mode: string, extra: Record<string, string> = {}): Record<string, string> {
  return { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), MODE: mode, ...extra };
}

describe("workers in separate processes", () => {
  it("share the queue: 3 processes handle 3,000 jobs, each exactly once", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("mp") };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const done = new Map<string, ProcEvent[]>();
    const sink = (e: ProcEvent): void => {
      if (e.ev === "done") done.set(e.id!, [...(done.get(e.id!) ?? []), e]);
    };
    const procs = [1, 2, 3].map(() => new FixtureProcess("worker-proc.ts", workerEnv(opts, "record", { CONCURRENCY: "4", JOB_MS: "1" }), sink));
    try {
      await Promise.all(procs.map((p) => p.waitFor((e) => e.ev === "ready", "ready")));
      const producer = new Producer(nc, q);
      const ids = Array.from({ length: 3000 }, (_, i) => `job-${i}`);
      await producer.publishMany(ids, { id: (x) => String(x) });
      await waitFor(() => done.size === ids.length, "3,000 distinct completions", 60_000);
      await producer.close();
      const twice = [...done.values()].filter((v) => v.length > 1);
      assert.deepEqual(twice, [], "no job handled twice without a fault");
      const byPid = new Map<number, number>();
      for (const [e] of done.values()) byPid.set(e!.pid, (byPid.get(e!.pid) ?? 0) + 1);
      assert.equal(byPid.size, 3, `all three processes took jobs: ${JSON.stringify([...byPid])}`);
    } finally {
      await Promise.all(procs.map((p) => p.terminate()));
    }
  });

  it("a job whose worker is killed with -9 mid-job completes on another worker", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("kill"), ackWaitMs: 3000 };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const victim = new FixtureProcess("worker-proc.ts", workerEnv(opts, "hang"));
    await victim.waitFor((e) => e.ev === "ready", "victim ready");
    const producer = new Producer(nc, q);
    await producer.publish({ n: 1 }, { id: "survivor" });
    await victim.waitFor((e) => e.ev === "start" && e.id === "survivor", "victim started the job");
    await victim.kill9();
    const rescuer = new FixtureProcess("worker-proc.ts", workerEnv(opts, "record"));
    try {
      const start = await rescuer.waitFor((e) => e.ev === "start" && e.id === "survivor", "job redelivered to the rescuer");
      await rescuer.waitFor((e) => e.ev === "done" && e.id === "survivor", "job completed by the rescuer");
      // Redelivered without a recorded outcome: it runs alone, and the crash cost it no attempt.
      assert.equal(start.attempt, 1, "a crash is not a failed attempt");
      assert.equal(start.isolated, true, "a job whose process died runs alone next time");
    } finally {
      await rescuer.terminate();
      await producer.close();
    }
  });

  it("a job that kills its worker on every run ends in the dead-letter queue after maxCrashes runs alone", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("loop"), ackWaitMs: 700, maxAttempts: 3, maxCrashes: 2 };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ poison: true }, { id: "poison" });
    await producer.publish({ poison: false }, { id: "healthy" });
    const dlq = new DeadLetterQueue(nc, q);
    const starts: ProcEvent[] = [];
    let healthyDone = false;
    let restarts = 0;
    // Restart the worker each time the poison job kills it, as a supervisor would (bounded).
    while ((await dlq.count()) === 0 && restarts < 8) {
      const w = new FixtureProcess("worker-proc.ts", workerEnv(opts, "crash-on-poison", { CONCURRENCY: "1" }), (e) => {
        if (e.ev === "start" && e.id === "poison") starts.push(e);
        if (e.ev === "done" && e.id === "healthy") healthyDone = true;
      });
      const outcome = await Promise.race([
        w.exited.then(() => "died" as const),
        waitFor(async () => (await dlq.count()) > 0, "dead letter", 20_000).then(() => "dead" as const),
      ]);
      if (outcome === "dead") {
        await waitFor(() => healthyDone, "healthy job done");
        await w.terminate();
        break;
      }
      restarts++;
    }
    assert.equal(await dlq.count(), 1, `dead letter after ${restarts} crashes`);
    // Its first run was among others; then maxCrashes runs alone, each ending in a crash.
    assert.deepEqual(starts.map((e) => [e.attempt, e.isolated]), [[1, false], [1, true], [1, true]]);
    const [entry] = await dlq.list();
    assert.equal(entry!.id, "poison");
    assert.equal(entry!.reason, "crashed");
    assert.equal(entry!.attempts, 1, "crashes are not attempts");
    assert.equal(entry!.crashes, 2);
    assert.match(entry!.worker ?? "", /:\d+:[0-9a-f]{6}$/, "the worker it last crashed");
    assert.match(entry!.error.message, /crashed or stalled its worker 2 time\(s\) while it ran alone/);
    assert.ok(healthyDone, "the healthy job behind it completed");
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "queue stream empty");
    await producer.close();
  });
});

// The attempt model (docs/design/attempts.md) against a real server and real process crashes:
// a job whose handler never failed is never dead-lettered because another job crashed its
// process; attempts count handler failures only; stop() costs no attempt.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { DeadLetterQueue, defineQueue, Producer, provisionQueue, type QueueOptions, Worker } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { FixtureProcess, type ProcEvent, Supervisor } from "../support/procs.ts";

const nats = useNats();

function workerEnv(opts: QueueOptions, extra: Record<string, string> = {}): Record<string, string> {
  return { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), MODE: "crash-on-poison", ...extra };
}

describe("crash isolation across worker processes", () => {
  for (const where of ["first", "middle", "last"] as const) {
    it(`a poison job ${where} among 100 ordinary ones: every ordinary job completes, the poison is dead-lettered as crashed after maxCrashes runs alone`, async () => {
      const nc = await nats.connect();
      const opts = { name: uniqueName(`poison_${where}`), ackWaitMs: 2500, maxAttempts: 3, maxCrashes: 2 };
      const q = defineQueue(opts);
      await provisionQueue(nc, q);
      const jobs = Array.from({ length: 100 }, (_, i) => ({ id: `job-${i}`, data: { poison: false } }));
      const at = where === "first" ? 0 : where === "middle" ? 50 : 100;
      jobs.splice(at, 0, { id: "poison", data: { poison: true } });

      const done = new Set<string>();
      const dead: ProcEvent[] = [];
      const poisonStarts: ProcEvent[] = [];
      const sink = (e: ProcEvent): void => {
        if (e.ev === "done") done.add(e.id!);
        if (e.ev === "dead") dead.push(e);
        if (e.ev === "start" && e.id === "poison") poisonStarts.push(e);
      };
      // Three worker processes of concurrency 8, restarted as they die (bounded). Short pull
      // requests: a crashed process's requests must be gone before its jobs come back (see
      // worker.ts on pullExpiresMs).
      const fleet = new Supervisor(3, "worker-proc.ts", workerEnv(opts, { CONCURRENCY: "8", JOB_MS: "20", PULL_EXPIRES_MS: "1000" }), sink, 12);
      const producer = new Producer(nc, q);
      const dlq = new DeadLetterQueue(nc, q);
      try {
        // The deadline below is for the work and the restarts, not for three processes starting
        // at once on a loaded machine (seconds each): the jobs go out once all three are ready.
        await fleet.ready();
        await producer.publishMany(jobs.map((j) => j.data), { id: (_, i) => jobs[i]!.id });
        await waitFor(async () => done.size === 100 && (await dlq.count()) === 1, "100 completions and one dead letter", 60_000, 100);
        const entries = await dlq.list();
        assert.deepEqual(entries.map((e) => [e.id, e.reason, e.crashes, e.attempts]), [["poison", "crashed", 2, 1]]);
        assert.deepEqual(dead.map((e) => e.id), ["poison"], "no ordinary job was dead-lettered");
        // One run among others (which crashed its process), then exactly maxCrashes runs alone.
        assert.deepEqual(poisonStarts.map((e) => e.isolated), [false, true, true]);
        const jsm = await jetstreamManager(nc);
        await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "queue stream empty");
        assert.equal(fleet.restarts, 3, "the poison job crashed three processes: once among others, twice alone");
      } finally {
        await fleet.stop();
        await producer.close();
      }
    });
  }

  it("a job that fails twice then succeeds sees attempts 1, 2, 3, although a crash of another job interrupted it in between", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("attempts"), ackWaitMs: 2500, maxAttempts: 5, maxCrashes: 2, backoff: [50] };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    const events: ProcEvent[] = [];
    const sink = (e: ProcEvent): void => {
      if (e.id === "flaky" && (e.ev === "start" || e.ev === "fail" || e.ev === "done")) events.push(e);
    };
    const producer = new Producer(nc, q);
    const worker = new FixtureProcess("worker-proc.ts", workerEnv(opts, { CONCURRENCY: "2", PULL_EXPIRES_MS: "1000" }), sink);
    let fleet: Supervisor | undefined;
    try {
      await worker.waitFor((e) => e.ev === "ready", "worker ready");
      // Fails on attempts 1 and 2; each attempt sleeps 600 ms first.
      await producer.publish({ failUntil: 2, sleepMs: 600 }, { id: "flaky" });
      await worker.waitFor((e) => e.ev === "start" && e.id === "flaky" && e.attempt === 2, "the second attempt running");
      // While attempt 2 runs, a poison job kills the process that holds it.
      await producer.publish({ poison: true, crashAfterMs: 100 }, { id: "poison" });
      await worker.exited;
      // From here a supervisor restarts the worker each time the poison job kills it.
      fleet = new Supervisor(1, "worker-proc.ts", workerEnv(opts, { CONCURRENCY: "2", PULL_EXPIRES_MS: "1000" }), sink, 5);
      // A safety bound over up to three process starts one after another (each 5-11 s measured on a loaded 2-core machine).
      await waitFor(() => events.some((e) => e.ev === "done"), "the flaky job done", 90_000);
      assert.deepEqual(
        events.map((e) => `${e.ev}:${e.attempt}`),
        // The interrupted attempt 2 runs again as attempt 2: the crash cost it nothing.
        ["start:1", "fail:1", "start:2", "start:2", "fail:2", "start:3", "done:3"],
      );
      assert.deepEqual(events.slice(0, 4).map((e) => e.isolated), [false, undefined, false, true], "alone after its process died under it");
    } finally {
      await worker.kill9();
      await fleet?.stop();
      await producer.close();
    }
  });
});

describe("a suspect never waits for a hung handler forever", () => {
  /** Takes the next job off the queue's consumer and never answers it: its redelivery is a suspect. */
  async function takeWithoutAnswer(nc: Awaited<ReturnType<typeof nats.connect>>, q: ReturnType<typeof defineQueue>): Promise<number> {
    const c = await jetstream(nc).consumers.get(q.names.stream, q.names.consumer);
    const it = await c.fetch({ max_messages: 1, expires: 5_000 });
    for await (const m of it) return m.seq;
    throw new Error("no job to take");
  }

  for (const timeoutMs of [undefined, 3000] as const) {
    const hung = timeoutMs === undefined ? "a handler that hangs (no timeoutMs)" : "a handler stuck past its timeoutMs (it ignores its signal)";
    it(`${hung}: the worker hands the suspect back, pulls again, and runs the suspect alone once the handler settles; nothing lost or run twice`, async () => {
      const nc = await nats.connect();
      // maxCrashes 1: a crash wrongly charged to the suspect would dead-letter it.
      const q = defineQueue({ name: uniqueName("hung"), ackWaitMs: 1500, backoff: [0], maxAttempts: 100, maxCrashes: 1, ...(timeoutMs ? { timeoutMs } : {}) });
      await provisionQueue(nc, q);
      const producer = new Producer(nc, q);
      await producer.publish({}, { id: "suspect" });
      await takeWithoutAnswer(nc, q); // its lease lapses: delivery 2 has no recorded outcome

      let release: (() => void) | undefined;
      const starts: Array<{ id: string; attempt: number; isolated: boolean; alive: number }> = [];
      let alive = 0;
      const w = new Worker(nc, q, async (job) => {
        alive++;
        starts.push({ id: job.id, attempt: job.attempt, isolated: job.isolated, alive });
        if (job.id === "hang" && job.attempt === 1) await new Promise<void>((resolve) => (release = resolve)); // ignores job.signal
        alive--;
      }, { concurrency: 2 });
      const completed = new Map<string, number>();
      const errors: string[] = [];
      let stuckAt = 0;
      let gaveUpAt = 0;
      w.on("completed", (ev) => completed.set(ev.id, (completed.get(ev.id) ?? 0) + 1));
      w.on("error", (err) => {
        errors.push(err.message);
        if (err.message.includes("could not run alone")) gaveUpAt ||= Date.now();
      });
      w.on("stuck", () => (stuckAt ||= Date.now()));
      await w.start();
      try {
        await producer.publish({}, { id: "hang" });
        await waitFor(() => release !== undefined, "the hung handler running");
        // The suspect comes back after ackWaitMs and waits to run alone; the hung handler never lets it.
        await waitFor(() => errors.some((m) => m.includes("job suspect") && m.includes("could not run alone")), "the suspect handed back", 15_000);
        if (timeoutMs !== undefined) {
          // It waited for the handler's timeout, and no longer once the handler turned out stuck
          // (the bound, timeoutMs + ackWaitMs, would have been 3 s later).
          assert.ok(stuckAt > 0 && gaveUpAt - stuckAt < 1000, `gave up ${gaveUpAt - stuckAt} ms after the handler was stuck`);
        }
        // The worker is not stalled: it pulls and runs ordinary jobs beside the hung handler.
        for (let i = 0; i < 5; i++) await producer.publish({}, { id: `after-${i}` });
        await waitFor(() => [0, 1, 2, 3, 4].every((i) => completed.get(`after-${i}`) === 1), "ordinary jobs done beside the hung handler", 15_000);
        assert.ok(!starts.some((s) => s.id === "suspect"), "the suspect never ran beside the hung handler");
        release!();
        await waitFor(() => completed.has("suspect"), "the suspect done once the hung handler settled", 15_000);
        const suspect = starts.filter((s) => s.id === "suspect");
        assert.deepEqual(suspect.map((s) => [s.attempt, s.isolated, s.alive]), [[1, true, 1]], "run once, alone, no attempt charged");
        if (timeoutMs === undefined) {
          assert.equal(completed.get("hang"), 1, "the hung job completed once it settled");
        } else {
          // Its attempt failed at the timeout and the retry ran while the first still hung (another
          // delivery, handed back here until then): the job completes once, on attempt 2.
          await waitFor(() => completed.get("hang") === 1, "the timed-out job completed on its retry", 15_000);
          assert.deepEqual(starts.filter((s) => s.id === "hang").map((s) => s.attempt), [1, 2]);
        }
        assert.deepEqual([...completed.values()].filter((n) => n !== 1), [], "nothing completed twice");
        assert.equal(completed.size, 7);
        assert.equal(await new DeadLetterQueue(nc, q).count(), 0);
        const jsm = await jetstreamManager(nc);
        await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "queue stream empty");
      } finally {
        release?.();
        await w.stop();
        await producer.close();
      }
    });
  }

  it("the suspect handed back runs alone on another worker while the handler still hangs on the first", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("hung2"), ackWaitMs: 1500, maxCrashes: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({}, { id: "suspect" });
    await takeWithoutAnswer(nc, q);
    let release: (() => void) | undefined;
    const ranOn: Array<[string, string, boolean]> = [];
    const handler = (name: string) => async (job: { id: string; isolated: boolean }) => {
      ranOn.push([name, job.id, job.isolated]);
      if (job.id === "hang") await new Promise<void>((resolve) => (release = resolve));
    };
    const a = new Worker(nc, q, handler("a"), { concurrency: 2 });
    let gaveUp = false;
    a.on("error", (err) => (gaveUp ||= err.message.includes("could not run alone")));
    await a.start();
    const nc2 = await nats.connect();
    const b = new Worker(nc2, q, handler("b"), { concurrency: 2 });
    const completed: string[] = [];
    a.on("completed", (ev) => completed.push(ev.id));
    b.on("completed", (ev) => completed.push(ev.id));
    try {
      await producer.publish({}, { id: "hang" });
      await waitFor(() => release !== undefined, "the hung handler running on a");
      await waitFor(() => gaveUp, "a hands the suspect back", 15_000);
      await b.start();
      await waitFor(() => completed.includes("suspect"), "the suspect done on b", 15_000);
      assert.deepEqual(ranOn.filter(([, id]) => id === "suspect"), [["b", "suspect", true]], "once, alone, on b");
      assert.equal(a.inFlight, 1, "the hung handler still runs on a");
      release!();
      await waitFor(() => completed.length === 2, "the hung job done once it settled");
      assert.deepEqual(completed.sort(), ["hang", "suspect"]);
      assert.equal(await new DeadLetterQueue(nc, q).count(), 0);
    } finally {
      release?.();
      await Promise.all([a.stop(), b.stop()]);
      await producer.close();
    }
  });
});

describe("stop() costs no attempt", () => {
  it("a job handed back by stop() at the deadline of its last attempt is retried, not dead-lettered", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("last"), maxAttempts: 2, backoff: [10], ackWaitMs: 60_000 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const seen: number[] = [];
    const first = new Worker(nc, q, async (job) => {
      seen.push(job.attempt);
      if (job.attempt === 1) throw new Error("first attempt fails");
      await new Promise((resolve) => job.signal.addEventListener("abort", resolve)); // the last attempt outlives stop()'s deadline
      throw new Error("aborted");
    });
    const released: number[] = [];
    first.on("released", (ev) => released.push(ev.attempt));
    await first.start();
    await producer.publish({ n: 1 }, { id: "last-attempt" });
    await waitFor(() => seen.length === 2, "the last attempt running");
    await first.stop({ timeoutMs: 100 });
    assert.deepEqual(released, [2]);

    let completed = 0;
    const second = new Worker(nc, q, async (job) => {
      seen.push(job.attempt);
      completed++;
    });
    await second.start();
    await waitFor(() => completed === 1, "the job completed on its last attempt after the hand-back", 10_000);
    assert.deepEqual(seen, [1, 2, 2]);
    assert.equal(await new DeadLetterQueue(nc, q).count(), 0);
    await second.stop();
    await producer.close();
  });
});

// Job state (issue 19): results, progress, lookup by id, waiting for a result, events across
// processes, against a real server.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { z } from "zod";
import {
  ConfigError,
  defineQueue,
  JobFailedError,
  type JobInfo,
  Jobs,
  type JobsEvent,
  PermanentError,
  Producer,
  provisionQueue,
  type QueueOptions,
  TimeoutError,
  Worker,
} from "../../src/index.ts";
import { connect } from "@nats-io/transport-node";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { startLocalNats } from "../support/nats-server.ts";
import { FixtureProcess } from "../support/procs.ts";

const nats = useNats();

async function setup(opts: QueueOptions) {
  const nc = await nats.connect();
  const q = defineQueue(opts);
  const provisioned = await provisionQueue(nc, q);
  return { nc, q, provisioned, producer: new Producer(nc, q) };
}

function spawnWorker(opts: Record<string, unknown>, concurrency = 4): FixtureProcess {
  return new FixtureProcess("state-worker.ts", { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), CONCURRENCY: String(concurrency) });
}

/** Collects events of one job until `until` says stop (bounded by the abort signal). */
async function collect(events: AsyncIterable<JobsEvent>, id: string, until: (e: JobsEvent) => boolean): Promise<JobsEvent[]> {
  const out: JobsEvent[] = [];
  for await (const e of events) {
    if (e.type !== "gap" && e.id !== id) continue;
    out.push(e);
    if (until(e)) break;
  }
  return out;
}

/**
 * A reader follows from the moment its consumer exists (its first next() starts it): publishes
 * warm-up jobs until it yields one, and returns that first event and how many were published.
 */
async function untilLive(it: AsyncIterator<JobsEvent>, warmUp: () => Promise<unknown>): Promise<{ first: JobsEvent; warmups: number }> {
  const firstP = it.next();
  for (let warmups = 1; warmups <= 40; warmups++) {
    await warmUp();
    const first = await Promise.race([firstP, new Promise<undefined>((r) => setTimeout(() => r(undefined), 500))]);
    if (first) {
      assert.equal(first.done, false, "the reader ended");
      return { first: first.value as JobsEvent, warmups };
    }
  }
  throw new Error("the events reader never became live");
}

describe("job results across processes", () => {
  it("receipt.result() returns the handler's value from a worker in another process; a dead job's wait throws JobFailedError", async () => {
    const opts = { name: uniqueName("res"), results: { keepMs: 60_000 }, backoff: [50] };
    const { nc, q, producer, provisioned } = await setup(opts);
    assert.equal(provisioned.stateStream, "created");
    const worker = spawnWorker(opts);
    try {
      await worker.waitFor((e) => e.ev === "ready", "worker ready");
      const receipt = await producer.publish({ value: { pages: 3, url: "s3://r/1.pdf" } }, { id: "report-1" });
      assert.deepEqual(await receipt.result({ timeoutMs: 20_000 }), { pages: 3, url: "s3://r/1.pdf" });
      const info = await new Jobs(nc, q).get("report-1");
      assert.equal(info?.state, "completed");
      assert.equal(info?.attempt, 1);
      assert.deepEqual(info?.result, { pages: 3, url: "s3://r/1.pdf" });
      assert.ok(info!.startedAt! >= info!.publishedAt && info!.finishedAt! >= info!.startedAt!, JSON.stringify(info));

      const failing = await producer.publish({ fail: "permanent" });
      const err = await failing.result({ timeoutMs: 20_000 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof JobFailedError, String(err));
      assert.equal(err.reason, "permanent");
      assert.equal(err.jobId, failing.id);
      assert.deepEqual(err.error, { name: "PermanentError", message: "the account is gone" });
      assert.match(err.message, /dead-lettered \(permanent\).*the account is gone.*jetq dlq/);
    } finally {
      await worker.terminate();
    }
  });

  it("a result that fails resultSchema is a handler failure; a matching one is stored", async () => {
    const opts = { name: uniqueName("rs"), results: { keepMs: 60_000 }, resultSchema: "number", maxAttempts: 2, backoff: [50] };
    const { producer } = await setup({ ...opts, resultSchema: z.number() });
    const worker = spawnWorker(opts);
    try {
      await worker.waitFor((e) => e.ev === "ready", "worker ready");
      const good = await producer.publish({ value: 42 });
      const bad = await producer.publish({ value: "forty-two" });
      assert.equal(await good.result({ timeoutMs: 20_000 }), 42);
      const err = await bad.result({ timeoutMs: 20_000 }).then(() => undefined, (e: unknown) => e);
      assert.ok(err instanceof JobFailedError, String(err));
      assert.equal(err.reason, "max_attempts");
      assert.equal(err.attempt, 2, "retried like a throw, then dead-lettered");
      assert.equal(err.error.name, "ValidationError");
      assert.match(err.error.message, /result does not match the queue's resultSchema: \(root\): .*number/);
    } finally {
      await worker.terminate();
    }
  });

  it("progress is seen by events() in another process, in order, ending with completed", async () => {
    // Leases are renewed every ackWaitMs / 3: none during the test (a lease record would replace an unseen one).
    const opts = { name: uniqueName("prog"), results: { keepMs: 60_000 }, ackWaitMs: 120_000 };
    const { nc, q, producer } = await setup(opts);
    const worker = spawnWorker(opts);
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 30_000);
    try {
      await worker.waitFor((e) => e.ev === "ready", "worker ready");
      const it = new Jobs(nc, q).events({ signal: ac.signal })[Symbol.asyncIterator]();
      await untilLive(it, () => producer.publish({ value: 0 }));
      // The job state stream keeps one record per job: a record replaced before this reader got
      // it is a gap, by design. So the handler reports each step only once this reader has seen
      // the record before it (the gate), not after a sleep that a loaded machine can outlast.
      const gate = uniqueName("gate");
      const receipt = await producer.publish({ progress: 4, gate, value: "done" }, { id: "p-1" });
      const seen: JobsEvent[] = [];
      for (let e = await it.next(); !e.done; e = await it.next()) {
        if (e.value.type === "gap" || e.value.id !== receipt.id) continue;
        seen.push(e.value);
        if (e.value.type === "completed") break;
        nc.publish(gate);
      }
      await it.return?.(undefined);
      const trail = seen.map((e) => (e.type === "progress" ? `progress:${(e.progress as { step: number }).step}` : e.type));
      assert.deepEqual(trail, ["active", "progress:1", "progress:2", "progress:3", "progress:4", "completed"]);
      const done = seen.at(-1)!;
      assert.ok(done.type === "completed" && done.result === "done" && done.attempt === 1);
    } finally {
      clearTimeout(timer);
      ac.abort();
      await worker.terminate();
    }
  });
});

describe("Jobs.get", () => {
  it("follows a job through waiting, active (with progress), retrying, completed; a permanent failure is dead; a seq id and an id of your own are found waiting", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("get"), results: { keepMs: 60_000 }, backoff: [1_500] });
    const jobs = new Jobs<{ ok: boolean }>(nc, q);
    const plain = await producer.publish({ kind: "gate" });
    const named = await producer.publish({ kind: "gate" }, { id: "named-1" });
    const failing = await producer.publish({ kind: "fail-once" });
    const dead = await producer.publish({ kind: "permanent" });
    const waiting = await jobs.get(plain.id);
    assert.equal(waiting?.state, "waiting");
    assert.equal(waiting?.seq, plain.seq);
    assert.ok(waiting!.publishedAt.getTime() > Date.now() - 60_000);
    const namedWaiting = await jobs.get(named.id);
    assert.equal(namedWaiting?.state, "waiting", "an id of your own is found waiting (through the queue's duplicate window)");
    assert.equal(namedWaiting?.seq, named.seq);
    assert.equal(await jobs.get("no-such-job"), undefined);

    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const wnc = await nats.connect();
    const worker = new Worker<{ kind: string }>(
      wnc,
      q as never,
      async (job) => {
        if (job.data.kind === "gate") {
          job.progress({ pct: 50 });
          await gate;
          return { ok: true };
        }
        if (job.data.kind === "permanent") throw new PermanentError("no such account");
        if (job.attempt === 1) throw new Error("flaky downstream");
        return { ok: true };
      },
      { concurrency: 8 },
    );
    await worker.start();
    try {
      const active = await waitFor(async () => {
        const i = await jobs.get(plain.id);
        return i?.state === "active" && i.progress !== undefined ? i : undefined;
      }, "the gated job active with its progress");
      assert.deepEqual(active.progress, { pct: 50 });
      assert.ok(active.startedAt instanceof Date);
      assert.equal((await jobs.get(named.id))?.state, "active");

      const retrying = await waitFor(async () => {
        const i = await jobs.get(failing.id);
        return i?.state === "retrying" ? i : undefined;
      }, "the failing job retrying");
      assert.deepEqual(retrying.error, { name: "Error", message: "flaky downstream" });
      assert.ok(retrying.retryAt! > retrying.finishedAt!);
      assert.equal(retrying.attempt, 1);

      const deadInfo = await waitFor(async () => {
        const i = await jobs.get(dead.id);
        return i?.state === "dead" ? i : undefined;
      }, "the permanent failure dead");
      assert.deepEqual(deadInfo.deadLetter, { reason: "permanent" });
      assert.equal(deadInfo.error?.message, "no such account");

      open();
      assert.deepEqual(await jobs.wait(plain.id, { timeoutMs: 10_000 }), { ok: true });
      const again = await jobs.wait(failing.id, { timeoutMs: 10_000 });
      assert.deepEqual(again, { ok: true });
      const completed = await jobs.get(failing.id);
      assert.equal(completed?.state, "completed");
      assert.equal(completed?.attempt, 2);
      assert.equal(completed?.error, undefined);
    } finally {
      open();
      await worker.stop();
    }
  });

  it("forgets a job keepMs after its last change", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("keep"), results: { keepMs: 1_000 } });
    const wnc = await nats.connect();
    const worker = new Worker(wnc, q, () => "short-lived");
    await worker.start();
    try {
      const r = await producer.publish({});
      assert.equal(await r.result({ timeoutMs: 10_000 }), "short-lived");
      const jobs = new Jobs(nc, q);
      assert.equal((await jobs.get(r.id))?.state, "completed");
      await waitFor(async () => (await jobs.get(r.id)) === undefined, "the record to expire", 10_000, 100);
    } finally {
      await worker.stop();
    }
  });

  it("a worker killed with -9 mid-job: active until its lease lapses, then waiting; another worker completes it", async () => {
    const opts = { name: uniqueName("kill"), results: { keepMs: 60_000 }, ackWaitMs: 2_000 };
    const { nc, q, producer } = await setup(opts);
    const jobs = new Jobs(nc, q);
    const victim = spawnWorker(opts);
    try {
      await victim.waitFor((e) => e.ev === "ready", "victim ready");
      const r = await producer.publish({ hang: true, value: "first" }, { id: "survivor" });
      await victim.waitFor((e) => e.ev === "start" && e.id === "survivor", "the victim started the job");
      await waitFor(async () => (await jobs.get(r.id))?.state === "active", "the job's record active");
      await victim.kill9();
      assert.equal((await jobs.get(r.id))?.state, "active", "still active right after the kill: its lease has not lapsed");
      const lapsed = await waitFor(async () => {
        const i = await jobs.get(r.id);
        return i?.state === "waiting" ? i : undefined;
      }, "waiting once the lease lapsed", 10_000, 100);
      assert.equal(lapsed.attempt, 1);
    } finally {
      await victim.kill9();
    }
    const wnc = await nats.connect();
    const rescuer = new Worker(wnc, q, () => "second");
    await rescuer.start();
    try {
      assert.equal(await jobs.wait("survivor", { timeoutMs: 15_000 }), "second");
      const info = await jobs.get("survivor");
      assert.equal(info?.state, "completed");
      assert.equal(info?.attempt, 1, "a crash costs no attempt");
    } finally {
      await rescuer.stop();
    }
  });

  it("a job handed back by stop() shows waiting at once, and is not charged an attempt", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("rel"), results: { keepMs: 60_000 } });
    const jobs = new Jobs(nc, q);
    const worker = new Worker(await nats.connect(), q, (job) => new Promise((_r, reject) => job.signal.addEventListener("abort", () => reject(job.signal.reason))));
    await worker.start();
    const r = await producer.publish({});
    await waitFor(async () => (await jobs.get(r.id))?.state === "active", "the job active");
    await worker.stop({ timeoutMs: 50 });
    const info = await waitFor(async () => {
      const i = await jobs.get(r.id);
      return i?.state === "waiting" ? i : undefined;
    }, "waiting after the hand-back", 2_000);
    assert.equal(info.attempt, 1);
  });

  it("a delayed job is delayed until due (with or without an id), then waiting; an id of your own is found only within the duplicate window", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("dly"), results: { keepMs: 60_000 }, scheduling: true });
    const jobs = new Jobs(nc, q);
    const runAt = Date.now() + 3_600_000;
    const named = await producer.publish({ n: 1 }, { id: "later-1", runAt });
    const anon = await producer.publish({ n: 2 }, { delayMs: 3_600_000 });
    const soon = await producer.publish({ n: 3 }, { id: "soon-1", delayMs: 1_000 });
    const a = await jobs.get("later-1");
    assert.equal(a?.state, "delayed");
    assert.equal(a?.runAt?.getTime(), runAt);
    assert.equal(a?.seq, named.seq);
    const b = await jobs.get(anon.id);
    assert.match(anon.id, /^delayed-\d+$/);
    assert.equal(b?.state, "delayed");
    assert.ok(b!.runAt!.getTime() >= b!.publishedAt.getTime() + 3_600_000);
    assert.equal((await jobs.get(soon.id))?.state, "delayed");
    // A worker moves the due job into the queue (and runs it: hold it there with a paused handler).
    let open!: () => void;
    const gate = new Promise<void>((r) => (open = r));
    const worker = new Worker(await nats.connect(), q, async () => {
      await gate;
      return "ran";
    });
    await worker.start();
    try {
      const moved = await waitFor(async () => {
        const i = await jobs.get("soon-1");
        return i?.state !== "delayed" ? i : undefined;
      }, "the due job out of the held stream", 10_000);
      assert.ok(moved.state === "waiting" || moved.state === "active", moved.state);
      open();
      assert.equal(await jobs.wait("soon-1", { timeoutMs: 10_000 }), "ran");
      assert.equal((await jobs.get("later-1"))?.state, "delayed", "the other delayed jobs stay delayed");
    } finally {
      open();
      await worker.stop();
    }

    // The lookup of an id of your own goes through the queue's duplicate window: past it, a
    // waiting job is no longer found by that id (its seq-less record is written when it runs).
    const short = await setup({ name: uniqueName("win"), results: { keepMs: 60_000 }, duplicateWindowMs: 500 });
    const shortJobs = new Jobs(short.nc, short.q);
    await short.producer.publish({}, { id: "mine" });
    assert.equal((await shortJobs.get("mine"))?.state, "waiting");
    await waitFor(async () => (await shortJobs.get("mine")) === undefined, "the id out of the duplicate window", 10_000, 100);
    const info = await jetstreamManager(short.nc).then((m) => m.streams.info(short.q.names.stream));
    assert.equal(info.state.messages, 1, "lookups store nothing in the queue");
  });

  it("a reader that may not publish to the queue gets undefined for a waiting job of its own id (it cannot probe), and the job's record once a worker took it", async () => {
    const config = `jetstream: {}
accounts: { A: { jetstream: enabled, users: [
  { user: admin, password: a },
  { user: reader, password: r, permissions: { publish: { allow: ["$JS.API.>"] }, subscribe: { allow: ["_INBOX.>"] } } }
] } }
`;
    const srv = await startLocalNats({ config });
    const admin = await connect({ servers: srv.servers, user: "admin", pass: "a" });
    const reader = await connect({ servers: srv.servers, user: "reader", pass: "r" });
    try {
      const q = defineQueue({ name: uniqueName("ro"), results: { keepMs: 60_000 } });
      await provisionQueue(admin, q);
      const r = await new Producer(admin, q).publish({}, { id: "mine" });
      assert.equal((await new Jobs(admin, q).get("mine"))?.state, "waiting");
      assert.equal(await new Jobs(reader, q).get("mine"), undefined);
      assert.equal(await new Jobs(reader, q).get(`seq-${r.seq}`), undefined, "the job at that sequence has an id of its own");
      const worker = new Worker(admin, q, () => "done");
      await worker.start();
      try {
        await new Jobs(admin, q).wait("mine", { timeoutMs: 10_000 });
      } finally {
        await worker.stop();
      }
      assert.equal((await new Jobs(reader, q).get("mine"))?.state, "completed");
    } finally {
      await reader.close();
      await admin.close();
      await srv.stop();
    }
  });

  it("wait() times out with TimeoutError and stops at its signal; Jobs refuses a queue without results", async () => {
    const { nc, q } = await setup({ name: uniqueName("tmo"), results: { keepMs: 60_000 } });
    const jobs = new Jobs(nc, q);
    await assert.rejects(jobs.wait("nobody", { timeoutMs: 200 }), TimeoutError);
    const ac = new AbortController();
    const p = jobs.wait("nobody", { timeoutMs: 60_000, signal: ac.signal });
    ac.abort(new Error("user went away"));
    await assert.rejects(p, /user went away/);
    const plain = defineQueue({ name: uniqueName("plain") });
    assert.throws(() => new Jobs(nc, plain), (e: unknown) => e instanceof ConfigError && /results: \{ keepMs \}/.test(e.message));
  });
});

describe("cost and bounds", () => {
  it("throttles progress to one write per 100 ms per job, and always writes the last value", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("thr"), results: { keepMs: 60_000 } });
    const writes: unknown[] = [];
    const sub = nc.subscribe(`${q.names.stateSubject}.>`, {
      callback: (_e, m) => {
        const rec = m.json<{ ev: string; progress?: { k: number } }>();
        if (rec.ev === "progress") writes.push(rec.progress!.k);
      },
    });
    const wnc = await nats.connect();
    let calls = 0;
    let ms = 0;
    const worker = new Worker(wnc, q, async (job) => {
      const t0 = performance.now();
      for (let k = 1; k <= 2000; k++) {
        job.progress({ k });
        calls++;
        if (k % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      ms = performance.now() - t0;
      return "ok";
    });
    await worker.start();
    try {
      const r = await producer.publish({});
      assert.equal(await r.result({ timeoutMs: 20_000 }), "ok");
      await nc.flush();
      assert.equal(calls, 2000);
      const most = Math.ceil(ms / 100) + 1;
      assert.ok(writes.length >= 2 && writes.length <= most, `${writes.length} writes in ${ms.toFixed(0)} ms (at most ${most})`);
      assert.equal(writes.at(-1), 2000, "the last value is written");
      assert.deepEqual([...writes].sort((a, b) => (a as number) - (b as number)), writes, "in order");
      assert.deepEqual((await new Jobs(nc, q).get(r.id))?.progress, { k: 2000 });
    } finally {
      sub.unsubscribe();
      await worker.stop();
    }
  });

  it("a queue without results writes nothing per job: no state stream, no state publishes, outbound messages as a plain queue", async () => {
    const jobsN = 10_000;
    const run = async (opts: QueueOptions, handler: (job: { progress(v: unknown): void }) => unknown) => {
      const { nc, q, producer, provisioned } = await setup(opts);
      let stateMsgs = 0;
      const sub = nc.subscribe("jetq.state.>", { callback: () => void stateMsgs++ });
      await producer.publishMany(Array.from({ length: jobsN }, (_, i) => i));
      const wnc = await nats.connect();
      let done = 0;
      const worker = new Worker(wnc, q, handler, { concurrency: 32 });
      worker.on("completed", () => void done++);
      const before = wnc.stats().outMsgs;
      await worker.start();
      await waitFor(() => done === jobsN, `${jobsN} jobs`, 60_000);
      await worker.stop();
      const out = wnc.stats().outMsgs - before;
      await nc.flush();
      sub.unsubscribe();
      return { out, stateMsgs, provisioned };
    };
    const plain = await run({ name: uniqueName("cost0") }, () => undefined);
    const noResults = await run({ name: uniqueName("cost1"), resultSchema: z.number() }, (job) => {
      job.progress(0.5);
      return 1;
    });
    const withResults = await run({ name: uniqueName("cost2"), results: { keepMs: 60_000 } }, (job) => {
      job.progress(0.5);
      return 1;
    });
    assert.equal(plain.provisioned.stateStream, undefined);
    assert.equal(noResults.provisioned.stateStream, undefined);
    assert.equal(noResults.stateMsgs, 0, "no state publishes without results");
    assert.equal(plain.stateMsgs, 0);
    // One ack per job plus the pull requests (their count varies with timing, a few hundred).
    assert.ok(plain.out >= jobsN && plain.out < jobsN * 1.2, `plain: ${plain.out}`);
    assert.ok(Math.abs(noResults.out - plain.out) < jobsN * 0.1, `without results: ${noResults.out} vs plain ${plain.out} per ${jobsN} jobs`);
    // With results: the held-back progress value and the completed record per job besides the ack
    // (a handler that settles within the turn it started in gets no separate "active" write).
    assert.ok(withResults.out >= plain.out + jobsN * 2 - jobsN * 0.1, `with results: ${withResults.out}`);
    assert.equal(withResults.stateMsgs, jobsN * 2);
  });

  it("jobs waiting for their completed record free their handler slot, yet never more than concurrency handlers run, and every job's result is stored before its ack", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("win"), results: { keepMs: 60_000 } });
    const n = 400;
    await producer.publishMany(Array.from({ length: n }, (_, i) => i));
    const wnc = await nats.connect();
    let running = 0;
    let most = 0;
    const acked: number[] = [];
    const worker = new Worker<number>(
      wnc,
      q as never,
      async (job) => {
        most = Math.max(most, ++running);
        await new Promise((r) => setImmediate(r));
        running--;
        return job.data * 2;
      },
      { concurrency: 4 },
    );
    worker.on("completed", (e) => void acked.push(e.seq));
    await worker.start();
    try {
      await waitFor(() => acked.length >= n, `${n} jobs`, 60_000);
    } finally {
      await worker.stop();
    }
    assert.ok(most <= 4, `${most} handlers at once with concurrency 4`);
    const jobs = new Jobs<number>(nc, q);
    for (const seq of acked) {
      const info = await jobs.get(`seq-${seq}`);
      assert.equal(info?.state, "completed", `seq ${seq}`);
      assert.equal(info?.result, (seq - 1) * 2, `seq ${seq}`);
    }
  });

  it("records of one turn share one buffer: multi-byte results of many jobs settled together are each stored exactly", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("utf"), results: { keepMs: 60_000 } });
    const n = 300;
    // Results of different byte lengths, with 2-, 3- and 4-byte UTF-8 characters, so each record's
    // view starts at an offset that differs from its string offset.
    const text = (i: number): string => `${"é".repeat(i % 7)}✓${"😀".repeat(i % 3)}#${i}`;
    await producer.publishMany(Array.from({ length: n }, (_, i) => i));
    const wnc = await nats.connect();
    const worker = new Worker<number>(wnc, q as never, (job) => ({ i: job.data, s: text(job.data) }), { concurrency: 64 });
    let done = 0;
    worker.on("completed", () => void done++);
    await worker.start();
    try {
      await waitFor(() => done >= n, `${n} jobs`, 60_000);
    } finally {
      await worker.stop();
    }
    const jobs = new Jobs<{ i: number; s: string }>(nc, q);
    for (let seq = 1; seq <= n; seq++) {
      const info = await jobs.get(`seq-${seq}`);
      assert.equal(info?.state, "completed", `seq ${seq}`);
      assert.deepEqual(info?.result, { i: seq - 1, s: text(seq - 1) }, `seq ${seq}`);
    }
  });

  it("a job done within 50 ms of its start is written once (completed); a longer one is written active, then completed", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("act"), results: { keepMs: 60_000 } });
    const seen = new Map<string, string[]>();
    const sub = nc.subscribe(`${q.names.stateSubject}.>`, {
      callback: (_e, m) => {
        const rec = m.json<{ id: string; ev: string }>();
        seen.set(rec.id, [...(seen.get(rec.id) ?? []), rec.ev]);
      },
    });
    const worker = new Worker<{ ms: number }>(await nats.connect(), q as never, async (job) => {
      await new Promise((r) => setTimeout(r, job.data.ms));
      return job.data.ms;
    }, { concurrency: 8 });
    await worker.start();
    try {
      const fast = await Promise.all(Array.from({ length: 20 }, () => producer.publish({ ms: 5 })));
      const slow = await Promise.all(Array.from({ length: 4 }, () => producer.publish({ ms: 200 })));
      const jobs = new Jobs(nc, q);
      for (const r of [...fast, ...slow]) await jobs.wait(r.id, { timeoutMs: 20_000 });
      await nc.flush();
      for (const r of fast) assert.deepEqual(seen.get(r.id), ["completed"], `fast job ${r.id}`);
      for (const r of slow) assert.deepEqual(seen.get(r.id), ["active", "completed"], `slow job ${r.id}`);
    } finally {
      sub.unsubscribe();
      await worker.stop();
    }
  });

  it("a slow events() reader gets a gap with the count it missed, and workers do not wait for it", async () => {
    const { nc, q, producer } = await setup({ name: uniqueName("gap"), results: { keepMs: 60_000 } });
    let writes = 0;
    const sub = nc.subscribe(`${q.names.stateSubject}.>`, { callback: () => void writes++ });
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 60_000);
    const events = new Jobs(nc, q).events({ signal: ac.signal })[Symbol.asyncIterator]();
    const wnc = await nats.connect();
    let done = 0;
    const worker = new Worker(wnc, q, (job) => {
      // The warm-up job (-1) writes one record; the others two, the first replaced by the second.
      if (job.data !== -1) job.progress("started");
      return job.id;
    }, { concurrency: 32 });
    worker.on("completed", () => void done++);
    await worker.start();
    const n = 3000;
    try {
      // Warm-up jobs (one write each) until the reader is live (it follows from the moment its
      // consumer exists); then it stops reading.
      const { first: firstEvent, warmups } = await untilLive(events, () => producer.publish(-1));
      assert.ok(firstEvent.type === "completed");
      // The warm-up jobs' records are writes 1..warmups: the ones before the first seen were never the reader's.
      const notOurs = Number(firstEvent.id.slice(4)) - 1;
      await waitFor(() => done === warmups, "the warm-up jobs");
      await nc.flush();
      const before = writes;
      await producer.publishMany(Array.from({ length: n }, (_, i) => i));
      // The reader reads nothing more while every job runs: the workers finish them all anyway.
      await waitFor(() => done === n + warmups, `${n} jobs completed while the reader stalls`, 60_000);
      await nc.flush();
      assert.equal(writes - before, n * 2, "progress and completed per job");
      let seen = 1;
      let missed = 0;
      let gaps = 0;
      while (seen + missed < writes - notOurs) {
        const e = await events.next();
        if (e.done) break;
        if (e.value.type === "gap") {
          gaps++;
          missed += e.value.missed;
        } else seen++;
      }
      assert.ok(gaps > 0 && missed > 0, `gaps ${gaps}, missed ${missed}`);
      assert.equal(seen + missed, writes - notOurs, "every write since the reader started is either seen or counted as missed");
      assert.ok(seen <= n + warmups + 256, `a reader behind sees about one record per job (the latest), not all: ${seen}`);
    } finally {
      clearTimeout(timer);
      ac.abort();
      await events.return?.(undefined);
      sub.unsubscribe();
      await worker.stop();
    }
  });
});

// Keeps JobInfo's public shape checked by the compiler.
const _shape: JobInfo<number> = { id: "x", seq: 1, state: "waiting", attempt: 1, publishedAt: new Date() };
void _shape;
void jetstreamManager;

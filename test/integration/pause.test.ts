/**
 * Pausing a queue (issue 18): every worker of it, in every process, stops starting jobs within a
 * second; the pause holds for workers started later and across a server restart; resume and
 * `untilMs` bring the work back; nothing is lost and no attempt is used.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  defineQueue,
  isPaused,
  pauseQueue,
  pauseState,
  Producer,
  provisionQueue,
  QueueNotFoundError,
  queueStats,
  resumeQueue,
  ValidationError,
  Worker,
} from "../../src/index.ts";
import { runCli, type CliRun } from "../support/cli.ts";
import { connectTo, uniqueName, useNats, waitFor } from "../support/ctx.ts";
import { startLocalNats } from "../support/nats-server.ts";
import { FixtureProcess, type ProcEvent } from "../support/procs.ts";

const nats = useNats();

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function jetq(args: string[], server: string): Promise<CliRun> {
  return runCli(args, { env: { NATS_URL: server } });
}

describe("pauseQueue / resumeQueue", () => {
  it("two worker processes with a backlog stop starting jobs within 1 s; a worker restarted while paused stays paused; resume finishes the backlog", async () => {
    const nc = await nats.connect();
    const opts = { name: uniqueName("pause") };
    const q = defineQueue(opts);
    await provisionQueue(nc, q);
    // Start times as this process receives them (the children's clocks are the same machine's).
    const starts: Array<{ id: string; at: number }> = [];
    const done = new Set<string>();
    const bad: ProcEvent[] = [];
    const sink = (e: ProcEvent): void => {
      if (e.ev === "start") starts.push({ id: e.id!, at: Date.now() });
      else if (e.ev === "done") done.add(e.id!);
      else if (e.ev === "dead" || e.ev === "fail") bad.push(e);
    };
    const env = { NATS_URL: nats.server().servers, QUEUE: JSON.stringify(opts), MODE: "record", CONCURRENCY: "4", JOB_MS: "50" };
    const procs = [new FixtureProcess("worker-proc.ts", env, sink), new FixtureProcess("worker-proc.ts", env, sink)];
    const producer = new Producer(nc, q);
    try {
      await Promise.all(procs.map((p) => p.waitFor((e) => e.ev === "ready", "ready")));
      const ids = Array.from({ length: 400 }, (_, i) => `job-${i}`);
      await producer.publishMany(ids, { id: (x) => String(x) });
      await waitFor(() => starts.length >= 20, "work under way");

      const pausedAt = Date.now();
      await pauseQueue(nc, q);
      assert.equal(await isPaused(nc, q), true);
      await pause(2_500);
      const late = starts.filter((s) => s.at > pausedAt + 1_000);
      assert.deepEqual(late, [], "no job starts more than 1 s after the pause");
      assert.ok(done.size < ids.length, "the backlog is still there");
      const stats = await queueStats(nc, q);
      assert.equal(stats.paused, true);
      assert.equal(stats.pausedUntilMs, undefined);
      assert.ok(stats.pending > 0, `jobs wait in the queue: ${JSON.stringify(stats)}`);
      // Running jobs finished; a job that answered a pull request made before the pause is handed
      // back (no attempt used) and may be held briefly until those requests expire: at most the
      // two workers' slots.
      assert.ok(stats.inFlight <= 8, `nothing beyond the workers' slots is held: ${stats.inFlight}`);

      // A worker restarted while the queue is paused starts paused.
      await procs[0]!.terminate();
      procs[0] = new FixtureProcess("worker-proc.ts", env, sink);
      await procs[0].waitFor((e) => e.ev === "ready", "restarted worker ready");
      const before = starts.length;
      await pause(1_500);
      assert.equal(starts.length, before, "the restarted worker started nothing while paused");

      await resumeQueue(nc, q);
      assert.equal(await isPaused(nc, q), false);
      await waitFor(() => done.size === ids.length, "every job completed after resume", 60_000);
      assert.deepEqual(bad, [], "no job failed or was dead-lettered");
      assert.equal((await queueStats(nc, q)).paused, false);
    } finally {
      await producer.close();
      await Promise.all(procs.map((p) => p.terminate()));
    }
  });

  it("a pause with untilMs resumes by itself; a job started while paused was never started before untilMs", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("until") });
    await provisionQueue(nc, q);
    const untilMs = Date.now() + 1_500;
    await pauseQueue(nc, q, { untilMs });
    assert.deepEqual(await pauseState(nc, q), { paused: true, untilMs });
    const starts: number[] = [];
    const w = new Worker(nc, q, () => {
      starts.push(Date.now());
    }, { concurrency: 4 });
    const producer = new Producer(nc, q);
    try {
      await w.start();
      await producer.publishMany([1, 2, 3, 4, 5]);
      await waitFor(() => starts.length === 5, "all five jobs ran after the pause ended");
      assert.ok(Math.min(...starts) >= untilMs, `no job started before untilMs (${Math.min(...starts) - untilMs} ms)`);
      assert.equal(await isPaused(nc, q), false, "an expired pause is no pause");
    } finally {
      await producer.close();
      await w.stop();
    }
  });

  it("a jetq pause survives a server restart, for a running worker and one started after it", { timeout: 90_000 }, async () => {
    const srv = await startLocalNats();
    const conns = [] as Array<Awaited<ReturnType<typeof connectTo>>>;
    try {
      const opts = { maxReconnectAttempts: -1, reconnectTimeWait: 200 };
      const nc = await connectTo(srv, opts);
      conns.push(nc);
      const q = defineQueue({ name: uniqueName("restart") });
      await provisionQueue(nc, q);
      let started = 0;
      const w1 = new Worker(nc, q, () => {
        started++;
      }, { concurrency: 2 });
      await w1.start();
      await pauseQueue(nc, q);
      await srv.restart();
      // w1's connection is back (it reads the record again on reconnect) before a new one is made.
      await waitFor(() => nc.flush().then(() => true, () => false), "the first connection is back");
      const nc2 = await connectTo(srv, opts);
      conns.push(nc2);
      // Right after its restart the server may drop a connection once while JetStream recovers.
      const st = await waitFor(() => pauseState(nc2, q).catch(() => undefined), "JetStream answers after the restart");
      assert.equal(st.paused, true, "the pause record outlived the restart");
      const w2 = new Worker(nc2, q, () => {
        started++;
      }, { concurrency: 2 });
      await w2.start();
      const producer = new Producer(nc2, q);
      await producer.publishMany(Array.from({ length: 20 }, (_, i) => i));
      await waitFor(() => queueStats(nc2, q).then((st) => st.pending === 20, () => false), "twenty jobs waiting");
      await pause(1_500);
      assert.equal(started, 0, "neither worker started a job while paused");
      await resumeQueue(nc2, q);
      await waitFor(() => started === 20, "all twenty jobs ran after resume", 20_000);
      await producer.close();
      await Promise.all([w1.stop(), w2.stop()]);
    } finally {
      await Promise.allSettled(conns.map((c) => c.close()));
      await srv.stop();
    }
  });

  it("jetq pause --for / jetq resume, and jetq stats shows the pause", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("clip") });
    await provisionQueue(nc, q);
    const server = nats.server().servers;
    const p = await jetq(["pause", q.name, "--for", "10m"], server);
    assert.equal(p.code, 0, p.stderr);
    assert.match(p.stdout, /paused for 10m/);
    const s = await pauseState(nc, q);
    assert.equal(s.paused, true);
    assert.ok(s.untilMs! > Date.now() + 9 * 60_000 && s.untilMs! <= Date.now() + 10 * 60_000);
    const st = await jetq(["--json", "stats", q.name], server);
    assert.equal(st.code, 0, st.stderr);
    assert.equal((JSON.parse(st.stdout) as { paused: boolean }).paused, true);
    const r = await jetq(["resume", q.name], server);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /resumed/);
    assert.equal(await isPaused(nc, q), false);
    const bad = await jetq(["pause", q.name, "--for", "soon"], server);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /--for/);
  });

  it("bad inputs get a clear error; a queue never paused gets no pause stream", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("badp") });
    await assert.rejects(pauseQueue(nc, q), QueueNotFoundError);
    await provisionQueue(nc, q);
    await assert.rejects(pauseQueue(nc, q, { untilMs: Date.now() - 1 }), (e: unknown) => e instanceof ValidationError && /untilMs/.test(e.message));
    await assert.rejects(pauseQueue(nc, q, { untilMs: Number.NaN }), ValidationError);
    await assert.rejects(pauseQueue(nc, q, { untilMs: "tomorrow" as unknown as number }), ValidationError);
    assert.throws(() => defineQueue({ name: "x_PAUSE" }), /_PAUSE/);
    // Workers, stats and a resume of a queue never paused create nothing.
    const w = new Worker(nc, q, () => {});
    await w.start();
    assert.equal((await queueStats(nc, q)).paused, false);
    await resumeQueue(nc, q);
    assert.equal(await isPaused(nc, q), false);
    await w.stop();
    const jsm = await jetstreamManager(nc);
    await assert.rejects(jsm.streams.info(`${q.names.stream}_PAUSE`), /stream not found/);
  });
});

// Chaos 5: overload. (a) A bounded stream (maxMessages) and producers with overflow "reject" against
// stalled workers: the QueueFullErrors equal what could not fit, nothing beyond the bound is
// stored, nothing accepted is lost. (b) A worker process drains a 500,000-job backlog with flat
// memory (RSS printed at start, middle and end).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { defineQueue, Producer, provisionQueue, QueueFullError, Worker } from "../../src/index.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { Child, type ChildEvent } from "./child.ts";
import { connectChaos } from "./common.ts";
import { record } from "./report.ts";

const BOUND = 2_000;
const WAVE = 3_000;
const SMALL_WINDOW_WAVE = 500;
const BACKLOG = Number(process.env.JETQ_CHAOS_BACKLOG ?? 500_000);

describe("overload", () => {
  let srv: LocalNatsServer;
  it("bounded stream + overflow reject against stalled workers: rejects equal what could not fit, nothing accepted is lost", { timeout: 120_000 }, async () => {
    srv = await startLocalNats();
    const nc = await connectChaos(srv.servers);
    const wnc = await connectChaos(srv.servers);
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let worker: Worker | undefined;
    try {
      const q = defineQueue({ name: uniqueName("bounded"), maxMessages: BOUND, ackWaitMs: 60_000, maxAckPending: 100 });
      await provisionQueue(nc, q);
      const jsm = await jetstreamManager(nc);
      const stored = async (): Promise<number> => (await jsm.streams.info(q.names.stream)).state.messages;

      // Stalled workers: they take jobs and sit on them (stored jobs still count against the bound).
      const completed = new Set<string>();
      let handled = 0;
      worker = new Worker(wnc, q, async (job) => {
        await gate;
        handled++;
        completed.add(job.id);
      }, { concurrency: 50 });
      await worker.start();

      // Wave 1: a window larger than the wave, so every reject comes from the stream bound.
      const wide = new Producer(nc, q, { maxInFlight: 4_096, overflow: "reject" });
      const r1 = await Promise.allSettled(Array.from({ length: WAVE }, (_, i) => wide.publish({ i }, { id: `ov-${i}` })));
      const accepted = new Set<string>();
      let streamFull = 0;
      const otherErrors: string[] = [];
      r1.forEach((r, i) => {
        if (r.status === "fulfilled") accepted.add(`ov-${i}`);
        else if (r.reason instanceof QueueFullError && r.reason.reason === "stream_full") streamFull++;
        else otherErrors.push(String(r.reason));
      });
      const afterWave1 = await stored();

      // Wave 2: the stream is full and the window small: window_full at once for what does not fit the window.
      const narrow = new Producer(nc, q, { maxInFlight: 64, overflow: "reject" });
      const t0 = performance.now();
      const r2 = await Promise.allSettled(Array.from({ length: SMALL_WINDOW_WAVE }, (_, i) => narrow.publish({ i }, { id: `ov2-${i}` })));
      const wave2Ms = performance.now() - t0;
      const byReason = { stream_full: 0, window_full: 0, window_timeout: 0 };
      let wave2Accepted = 0;
      for (const r of r2) {
        if (r.status === "fulfilled") wave2Accepted++;
        else if (r.reason instanceof QueueFullError) byReason[r.reason.reason]++;
        else otherErrors.push(String(r.reason));
      }
      const afterWave2 = await stored();

      // Unstall: everything accepted must complete.
      release();
      await waitFor(() => [...accepted].every((id) => completed.has(id)), `${accepted.size} accepted jobs completed`, 60_000, 100);
      await waitFor(async () => (await stored()) === 0, "stream drained", 20_000, 100);
      await wide.close();
      await narrow.close();
      const lost = [...accepted].filter((id) => !completed.has(id)).length;
      const rejects = streamFull + byReason.stream_full + byReason.window_full + byReason.window_timeout;
      const ok = lost === 0 && accepted.size === BOUND && streamFull === WAVE - BOUND && afterWave1 === BOUND && afterWave2 === BOUND && wave2Accepted === 0;
      record({
        scenario: "5a overload: bounded stream",
        published: WAVE + SMALL_WINDOW_WAVE,
        acked: accepted.size + wave2Accepted,
        completed: completed.size,
        lost,
        duplicates: handled - completed.size,
        faults: rejects,
        recoveryMs: undefined,
        note: `bound ${BOUND}: wave of ${WAVE} -> ${accepted.size} accepted, ${streamFull} QueueFullError(stream_full); stored ${afterWave1}; ` +
          `full stream + window 64, ${SMALL_WINDOW_WAVE} publishes -> ${byReason.stream_full} stream_full + ${byReason.window_full} window_full in ${Math.round(wave2Ms)} ms, stored ${afterWave2}`,
        ok,
      });
      assert.deepEqual(otherErrors, [], "every refusal is a QueueFullError");
      assert.equal(accepted.size, BOUND, "exactly the bound was accepted");
      assert.equal(streamFull, WAVE - BOUND, "one QueueFullError per job that could not fit");
      assert.equal(afterWave1, BOUND, "nothing beyond the bound was stored");
      assert.equal(wave2Accepted, 0);
      assert.equal(byReason.stream_full + byReason.window_full, SMALL_WINDOW_WAVE);
      assert.ok(byReason.window_full >= SMALL_WINDOW_WAVE - 64, "beyond the window the producer rejected at once");
      assert.equal(afterWave2, BOUND);
      assert.equal(lost, 0, "nothing accepted was lost");
    } finally {
      release();
      await worker?.stop({ timeoutMs: 5_000 });
      await Promise.allSettled([nc.close(), wnc.close()]);
      await srv.stop();
    }
  });

  it(`a worker process drains a ${BACKLOG}-job backlog with flat memory`, { timeout: 600_000 }, async () => {
    srv = await startLocalNats();
    const nc = await connectChaos(srv.servers);
    let child: Child | undefined;
    try {
      const opts = { name: uniqueName("backlog"), ackWaitMs: 30_000, maxAckPending: 1_000 };
      const q = defineQueue(opts);
      await provisionQueue(nc, q);
      const producer = new Producer(nc, q, { maxInFlight: 4_096 });
      const t0 = Date.now();
      const chunk = 5_000;
      for (let n = 0; n < BACKLOG; n += chunk) {
        const k = Math.min(chunk, BACKLOG - n);
        await producer.publishMany(Array.from({ length: k }, (_, j) => ({ n: n + j })), { id: (_item, j) => `b-${n + j}` });
      }
      const publishMs = Date.now() - t0;
      await producer.close();
      const jsm = await jetstreamManager(nc);
      assert.equal((await jsm.streams.info(q.names.stream)).state.messages, BACKLOG, "the whole backlog is stored");

      const samples: ChildEvent[] = [];
      const t1 = Date.now();
      child = new Child("chaos-worker.ts", {
        NATS_URL: srv.servers,
        QUEUE: JSON.stringify(opts),
        CONCURRENCY: "64",
        MODE: "count",
        TOTAL: String(BACKLOG),
      }, (e) => {
        if (e.ev === "rss" && samples.length < 2_000) samples.push(e);
      }, ["--expose-gc"]);
      const ready = await child.waitFor((e) => e.ev === "ready", "worker ready");
      const drained = await child.waitFor((e) => e.ev === "drained", "backlog drained", 540_000);
      const drainMs = Date.now() - t1;
      // "start" is the first sample taken while jobs flow; "idle" is before the first pull.
      const first = samples.find((s) => Number(s.done) > 0) ?? ready;
      const mid = samples.find((s) => Number(s.distinct) >= BACKLOG / 2) ?? samples[Math.floor(samples.length / 2)] ?? drained;
      const peakRss = Math.max(...samples.map((s) => Number(s.rss)), Number(drained.rss));
      const peakHeap = Math.max(...samples.map((s) => Number(s.heap)), Number(drained.heap));
      const quarter = samples.find((s) => Number(s.distinct) >= BACKLOG / 4) ?? mid;
      const line = `RSS idle ${String(ready.rss)} MiB, start ${String(first.rss)}, 25% ${String(quarter.rss)}, middle ${String(mid.rss)} (at ${String(mid.distinct)} done), end ${String(drained.rss)}, peak ${peakRss} MiB; ` +
        `live heap after GC start ${String(first.heap)}, middle ${String(mid.heap)}, end ${String(drained.heap)}, peak ${peakHeap} MiB; ` +
        `at the end heapTotal ${String(drained.heapTotal)}, external ${String(drained.external)}, arrayBuffers ${String(drained.arrayBuffers)} MiB`;
      console.log(`[chaos] backlog: ${line}`);
      if (process.env.JETQ_CHAOS_VERBOSE) {
        for (const s of samples) console.log(`[chaos] backlog sample: done ${String(s.distinct)} rss ${String(s.rss)} heap ${String(s.heap)} heapTotal ${String(s.heapTotal)} external ${String(s.external)}`);
      }
      // Flat means: memory does not grow with the jobs processed. The tight check is the live heap
      // after a full GC: it must stay within 16 MiB of its value once jobs flow (a leak of 34 bytes
      // per job would exceed it). RSS is dominated by how much heap V8 reserves for the allocation
      // rate (heapTotal), which it grows in steps at moments of its choosing: measured runs settle
      // between 130 and 220 MiB whatever the backlog, so RSS gets a fixed ceiling of 256 MiB (a leak
      // of 340 bytes per job would break it) rather than a growth margin that V8's steps would flake.
      const RSS_CEILING_MIB = 256;
      const rssFlat = peakRss < RSS_CEILING_MIB;
      const heapFlat = peakHeap - Number(first.heap) < 16;
      const ok = Number(drained.distinct) === BACKLOG && rssFlat && heapFlat;
      record({
        scenario: "5b overload: 500k backlog drain",
        published: BACKLOG,
        acked: BACKLOG,
        completed: Number(drained.distinct),
        lost: BACKLOG - Number(drained.distinct),
        duplicates: Number(drained.dups),
        faults: 0,
        recoveryMs: undefined,
        note: `${line}; published in ${publishMs} ms (${Math.round(BACKLOG / (publishMs / 1000))}/s), drained in ${drainMs} ms (${Math.round(BACKLOG / (drainMs / 1000))}/s) by 1 worker process, concurrency 64`,
        ok,
      });
      assert.equal(Number(drained.distinct), BACKLOG, "every job completed");
      assert.ok(heapFlat, `the worker's live heap stays flat while draining (${line})`);
      assert.ok(rssFlat, `the worker's RSS stays under ${RSS_CEILING_MIB} MiB while draining (${line})`);
      await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "stream empty", 30_000, 200);
    } finally {
      await child?.terminate(5_000);
      await nc.close().catch(() => {});
      await srv.stop();
    }
  });
});

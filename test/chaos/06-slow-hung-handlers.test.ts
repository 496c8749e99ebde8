// Chaos 6: slow and hung handlers. A handler past timeoutMs is aborted and retried; a handler that
// ignores its AbortSignal cannot hold stop() past its deadline (its job goes back to the queue);
// a long but healthy job (longer than ackWaitMs) is never redelivered while it runs.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { defineQueue, JobTimeoutError, Producer, provisionQueue, Worker, type JobEvent } from "../../src/index.ts";
import { startLocalNats, type LocalNatsServer } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { connectChaos } from "./common.ts";
import { record } from "./report.ts";

describe("slow and hung handlers", () => {
  let srv: LocalNatsServer;
  const rows = { published: 0, acked: 0, completed: 0, lost: 0, duplicates: 0, faults: 0, notes: [] as string[], ok: true };
  before(async () => {
    srv = await startLocalNats();
  });
  after(async () => {
    record({
      scenario: "6 slow and hung handlers",
      published: rows.published,
      acked: rows.acked,
      completed: rows.completed,
      lost: rows.lost,
      duplicates: rows.duplicates,
      faults: rows.faults,
      recoveryMs: undefined,
      note: rows.notes.join("; "),
      ok: rows.ok && rows.notes.length === 3,
    });
    await srv.stop();
  });

  it("aborts a handler that exceeds timeoutMs, counts the attempt as failed and retries it", { timeout: 60_000 }, async () => {
    const nc = await connectChaos(srv.servers);
    const q = defineQueue({ name: uniqueName("timeout"), timeoutMs: 300, maxAttempts: 3, backoff: [50] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const JOBS = 20;
    await producer.publishMany(Array.from({ length: JOBS }, (_, i) => ({ i })), { id: (_x, i) => `slow-${i}` });
    rows.published += JOBS;
    rows.acked += JOBS;
    const abortedWith: unknown[] = [];
    const done = new Map<string, number>();
    const retried: Error[] = [];
    const worker = new Worker(nc, q, async (job) => {
      if (job.attempt === 1) {
        // Slow on the first attempt: cooperates with the signal, so the abort is observable.
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, 10_000);
          job.signal.addEventListener("abort", () => {
            clearTimeout(t);
            abortedWith.push(job.signal.reason);
            resolve();
          }, { once: true });
        });
        return;
      }
      done.set(job.id, job.attempt);
    }, { concurrency: 20 });
    worker.on("retrying", (_ev, err) => retried.push(err));
    try {
      await worker.start();
      await waitFor(() => done.size === JOBS, `${JOBS} jobs completed on their retry`, 20_000);
    } finally {
      await worker.stop({ timeoutMs: 2_000 });
      await producer.close();
      await nc.close();
    }
    rows.completed += done.size;
    rows.faults += abortedWith.length;
    rows.notes.push(`timeoutMs 300: ${abortedWith.length} attempts aborted (JobTimeoutError), all ${done.size} jobs completed on attempt 2`);
    if (abortedWith.length !== JOBS || ![...done.values()].every((a) => a === 2)) rows.ok = false;
    assert.equal(abortedWith.length, JOBS, "every first attempt was aborted");
    assert.ok(abortedWith.every((r) => r instanceof JobTimeoutError), "the signal's reason is a JobTimeoutError");
    assert.ok(retried.every((e) => e instanceof JobTimeoutError), "the failed attempt is reported as a timeout");
    assert.ok([...done.values()].every((a) => a === 2));
  });

  it("a handler that ignores its AbortSignal cannot hold stop() past its deadline; its job goes to another worker", { timeout: 60_000 }, async () => {
    const nc = await connectChaos(srv.servers);
    const nc2 = await connectChaos(srv.servers);
    const q = defineQueue({ name: uniqueName("hung"), ackWaitMs: 30_000 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ hang: true }, { id: "hung-1" });
    rows.published += 1;
    rows.acked += 1;
    let releaseHung!: () => void;
    const hung = new Promise<void>((r) => (releaseHung = r));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    const hungWorker = new Worker(nc, q, async () => {
      started();
      await hung; // ignores job.signal on purpose
    });
    const released: JobEvent[] = [];
    hungWorker.on("released", (ev) => released.push(ev));
    const rescued: number[] = [];
    const rescuer = new Worker(nc2, q, async (job) => {
      rescued.push(job.attempt);
    });
    const DEADLINE = 500;
    let stopMs = Number.NaN;
    let rescueMs = Number.NaN;
    try {
      await hungWorker.start();
      await running;
      await rescuer.start();
      const t0 = performance.now();
      await hungWorker.stop({ timeoutMs: DEADLINE });
      stopMs = performance.now() - t0;
      await waitFor(() => rescued.length > 0, "another worker took the job", 10_000);
      rescueMs = performance.now() - t0;
    } finally {
      releaseHung();
      await hungWorker.stop();
      await rescuer.stop({ timeoutMs: 2_000 });
      await producer.close();
      await Promise.allSettled([nc.close(), nc2.close()]);
    }
    rows.completed += rescued.length > 0 ? 1 : 0;
    rows.duplicates += Math.max(0, rescued.length - 1);
    rows.faults += 1;
    rows.notes.push(`hung handler: stop({timeoutMs: ${DEADLINE}}) returned in ${Math.round(stopMs)} ms, job redelivered to another worker ${Math.round(rescueMs)} ms after stop() began (ackWait 30 s)`);
    if (!(stopMs < DEADLINE + 1_000) || released.length !== 1 || rescued.length !== 1 || rescued[0] !== 1) rows.ok = false;
    assert.ok(stopMs < DEADLINE + 1_000, `stop() returned in ${Math.round(stopMs)} ms, bounded by its ${DEADLINE} ms deadline`);
    assert.equal(released.length, 1, "the job was handed back (nak), not dropped");
    assert.deepEqual(rescued, [1], "another worker ran it at once, long before ackWaitMs, still on attempt 1 (a hand-back costs no attempt)");
    assert.ok(rescueMs < 5_000);
  });

  it("never redelivers a long but healthy job (longer than ackWaitMs) while it runs", { timeout: 60_000 }, async () => {
    const nc = await connectChaos(srv.servers);
    const nc2 = await connectChaos(srv.servers);
    const ACK_WAIT = 1_000;
    const RUN = 4_500;
    const q = defineQueue({ name: uniqueName("long"), ackWaitMs: ACK_WAIT });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const JOBS = 4;
    await producer.publishMany(Array.from({ length: JOBS }, (_, i) => ({ i })), { id: (_x, i) => `long-${i}` });
    rows.published += JOBS;
    rows.acked += JOBS;
    const deliveries: Array<{ id: string; attempt: number }> = [];
    const completed = new Set<string>();
    const handler = async (job: { id: string; attempt: number }): Promise<void> => {
      deliveries.push({ id: job.id, attempt: job.attempt });
      await new Promise((r) => setTimeout(r, RUN));
      completed.add(job.id);
    };
    // Two workers with spare slots: a redelivery would show up on either.
    const a = new Worker(nc, q, handler, { concurrency: 4 });
    const b = new Worker(nc2, q, handler, { concurrency: 4 });
    try {
      await a.start();
      await b.start();
      await waitFor(() => completed.size === JOBS, "long jobs completed", 30_000);
      // Observe one more ack wait: a late redelivery would arrive in it.
      await new Promise((r) => setTimeout(r, ACK_WAIT + 500));
    } finally {
      await a.stop({ timeoutMs: 2_000 });
      await b.stop({ timeoutMs: 2_000 });
      await producer.close();
      await Promise.allSettled([nc.close(), nc2.close()]);
    }
    // Attempts count failures only now, so a redelivery shows as a second delivery of an id.
    const redelivered = deliveries.length - new Set(deliveries.map((d) => d.id)).size;
    rows.completed += completed.size;
    rows.duplicates += deliveries.length - completed.size;
    rows.notes.push(`${JOBS} jobs of ${RUN} ms with ackWaitMs ${ACK_WAIT}: ${deliveries.length} deliveries, ${redelivered} redelivered`);
    if (redelivered > 0 || deliveries.length !== JOBS) rows.ok = false;
    assert.equal(deliveries.length, JOBS, "each long job was delivered exactly once");
    assert.equal(redelivered, 0);
  });
});

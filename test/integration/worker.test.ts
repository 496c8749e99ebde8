import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { NatsConnection } from "@nats-io/transport-node";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { ConnectionError, defineQueue, JobTimeoutError, Producer, provisionQueue, type Queue, QueueNotFoundError, Worker, type WorkerOptions } from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

/** A latch the test opens to let blocked handlers finish. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

/** A worker whose handlers wait until `release()`; `started()` counts the handlers begun. */
function blockedWorker(nc: NatsConnection, q: Queue, options: WorkerOptions): { worker: Worker; started: () => number; release: () => void } {
  const g = gate();
  let started = 0;
  const worker = new Worker(nc, q, async () => {
    started++;
    await g.wait;
  }, options);
  return { worker, started: () => started, release: g.open };
}

/**
 * Samples the server's view of the queue's consumer for `ms`: exactly `held` un-acked jobs (and,
 * when given, exactly `left` jobs still on the stream) in every sample. Returns the sample count.
 */
async function assertHolds(jsm: JetStreamManager, q: Queue, ms: number, held: number, left?: number): Promise<number> {
  const until = Date.now() + ms;
  let samples = 0;
  while (Date.now() < until) {
    const ci = await jsm.consumers.info(q.names.stream, q.names.consumer);
    assert.equal(ci.num_ack_pending, held, "un-acked jobs held by the worker");
    if (left !== undefined) assert.equal(ci.num_pending, left, "the rest stays on the server");
    samples++;
  }
  return samples;
}

describe("flow control", () => {
  it("never runs more handlers across workers than the queue's maxAckPending", async () => {
    const q = defineQueue({ name: uniqueName("credit"), maxAckPending: 5 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    let running = 0;
    let peak = 0;
    let done = 0;
    const handler = async (): Promise<void> => {
      running++;
      peak = Math.max(peak, running);
      await new Promise((r) => setTimeout(r, 15));
      running--;
      done++;
    };
    const workers = [new Worker(await nats.connect(), q, handler, { concurrency: 10 }), new Worker(await nats.connect(), q, handler, { concurrency: 10 })];
    await Promise.all(workers.map((w) => w.start()));
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 80 }, (_, i) => ({ i })));
    await waitFor(() => done === 80, "80 jobs");
    await Promise.all(workers.map((w) => w.stop()));
    assert.ok(peak <= 5, `peak concurrency ${peak} exceeded maxAckPending 5`);
    assert.ok(peak >= 3, `the window was used (peak ${peak})`);
    await producer.close();
  });

  it("reports a consumer deleted under a running worker as QueueNotFoundError, and resumes once it is back", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName() });
    await provisionQueue(nc, q);
    const errors: Error[] = [];
    let handled = 0;
    const worker = new Worker(nc, q, async () => {
      handled++;
    }, { concurrency: 4, pullExpiresMs: 1_000 });
    worker.on("error", (e) => errors.push(e));
    await worker.start();
    const jsm = await jetstreamManager(nc);
    await jsm.consumers.delete(q.names.stream, q.names.consumer);
    await waitFor(() => errors.some((e) => e instanceof QueueNotFoundError), "QueueNotFoundError reported", 15_000).catch((e: Error) => {
      throw new Error(`${e.message}; errors seen: ${errors.map((x) => `${x.name}: ${x.message}`).join("; ") || "none"}`);
    });
    assert.match(errors.find((e) => e instanceof QueueNotFoundError)!.message, /does not exist \(deleted\?\)\. Provision the queue again/);
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ n: 1 });
    await waitFor(() => handled === 1, "job handled after the consumer came back", 15_000);
    await worker.stop();
    await producer.close();
  });

  it("keeps several pull requests open and its window exact across requests that expire unfilled", async () => {
    const q = defineQueue({ name: uniqueName("expiry"), maxAckPending: 1000 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const { worker, started, release } = blockedWorker(nc, q, { concurrency: 8, pullBatch: 2, pullExpiresMs: 1_000 });
    await worker.start();
    const jsm = await jetstreamManager(nc);
    // An idle worker: its requests expire (408 with Nats-Pending-Messages) and are renewed. Over
    // three expiry periods the server never holds more of its requests than the window allows.
    const until = Date.now() + 3_200;
    let maxWaiting = 0;
    while (Date.now() < until) {
      const ci = await jsm.consumers.info(q.names.stream, q.names.consumer);
      maxWaiting = Math.max(maxWaiting, ci.num_waiting);
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(maxWaiting >= 1, "the idle worker keeps a request open");
    assert.ok(maxWaiting <= 4, `at most concurrency / pullBatch requests waiting, saw ${maxWaiting}`);
    // After the expiries the window is whole: exactly 8 jobs run and the rest stay on the server.
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 40 }, (_, i) => ({ i })));
    await waitFor(() => started() >= 8, "eight handlers running");
    await assertHolds(jsm, q, 400, 8, 32);
    assert.equal(started(), 8);
    release();
    await waitFor(() => started() === 40, "all jobs handled");
    await worker.stop();
    await producer.close();
  });

  it("after a reconnect to the same server, does not take the window twice", async () => {
    const q = defineQueue({ name: uniqueName("rekey"), maxAckPending: 1000 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const { worker, started, release } = blockedWorker(nc, q, { concurrency: 4, pullExpiresMs: 30_000 });
    await worker.start();
    const jsm = await jetstreamManager(nc);
    // The idle worker's requests wait on the server; the client reconnects to the same server.
    await waitFor(async () => (await jsm.consumers.info(q.names.stream, q.names.consumer)).num_waiting >= 1, "a pull request waiting");
    const reconnected = (async () => {
      for await (const s of nc.status()) if (s.type === "reconnect") return;
    })();
    await nc.reconnect();
    await reconnected;
    const producer = new Producer(await nats.connect(), q);
    await producer.publishMany(Array.from({ length: 20 }, (_, i) => ({ i })));
    await waitFor(() => started() >= 4, "four handlers running");
    // Requests from before the reconnect must not deliver on top of the new ones.
    await assertHolds(jsm, q, 600, 4);
    assert.equal(started(), 4);
    release();
    await waitFor(() => started() === 20, "all jobs handled");
    await worker.stop();
    await producer.close();
  });

  it("holds no more un-acked jobs than its concurrency, whatever the backlog", async () => {
    const q = defineQueue({ name: uniqueName("window"), maxAckPending: 1000 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 200 }, (_, i) => ({ i })));
    const { worker, started, release } = blockedWorker(nc, q, { concurrency: 3 });
    await worker.start();
    await waitFor(() => started() >= 3, "three handlers running");
    const jsm = await jetstreamManager(nc);
    // Sample the server's view for a while: the worker must not have pulled ahead.
    assert.ok((await assertHolds(jsm, q, 600, 3, 197)) > 3);
    assert.equal(started(), 3);
    release();
    await waitFor(() => started() === 200, "backlog drained");
    await worker.stop();
    await producer.close();
  });
});

describe("shutdown", () => {
  it("drains on stop: running jobs finish and are acked, nothing is redelivered", async () => {
    const q = defineQueue({ name: uniqueName("drain") });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 12 }, (_, i) => ({ i })));
    const attempts: number[] = [];
    let started = 0;
    let finished = 0;
    const first = new Worker(nc, q, async (job) => {
      started++;
      attempts.push(job.attempt);
      await new Promise((r) => setTimeout(r, 150));
      finished++;
    }, { concurrency: 4 });
    await first.start();
    await waitFor(() => started >= 4, "four running");
    await first.stop({ timeoutMs: 10_000 });
    assert.equal(finished, started, "every started job finished before stop resolved");
    const firstCount = started;
    const second = new Worker(nc, q, async (job) => {
      attempts.push(job.attempt);
    }, { concurrency: 4 });
    await second.start();
    await waitFor(() => attempts.length === 12, "all 12 handled");
    await second.stop();
    assert.ok(firstCount < 12, "some jobs were left for the second worker");
    assert.deepEqual(attempts, Array(12).fill(1), "no job was delivered twice");
    const jsm = await jetstreamManager(nc);
    const ci = await jsm.consumers.info(q.names.stream, q.names.consumer);
    assert.equal(ci.num_redelivered, 0);
    await producer.close();
  });

  it("aborts handlers at the deadline and hands their jobs back at once", async () => {
    const q = defineQueue({ name: uniqueName("abort"), ackWaitMs: 60_000 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    let aborted = false;
    const stubborn = new Worker(nc, q, async (job) => {
      job.signal.addEventListener("abort", () => (aborted = true));
      await new Promise(() => {}); // ignores its signal: must not block stop()
    });
    await stubborn.start();
    const released: string[] = [];
    stubborn.on("released", (ev) => released.push(ev.id));
    const producer = new Producer(nc, q);
    const { id } = await producer.publish({ x: 1 });
    await waitFor(() => stubborn.inFlight === 1, "job running");
    await stubborn.stop({ timeoutMs: 200 });
    assert.ok(aborted, "the handler's signal aborted");
    assert.deepEqual(released, [id]);
    let attempt = 0;
    const next = new Worker(nc, q, async (job) => {
      attempt = job.attempt;
    });
    await next.start();
    // ackWaitMs is a minute: only a nak can bring it back this fast. A hand-back costs no attempt.
    await waitFor(() => attempt === 1, "job redelivered at once, still on its first attempt", 10_000);
    await next.stop();
    await producer.close();
  });

  it("stop() is idempotent and works with await using", async () => {
    const q = defineQueue({ name: uniqueName("idem") });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    let stopped = 0;
    {
      await using w = new Worker(nc, q, async () => {});
      w.on("stopped", () => stopped++);
      await w.start();
      await Promise.all([w.stop(), w.stop()]);
    }
    assert.equal(stopped, 1);
  });
});

describe("timeouts and leases", () => {
  it("aborts an attempt at timeoutMs, counts it as a failure and retries", async () => {
    const q = defineQueue({ name: uniqueName("timeout"), timeoutMs: 150, maxAttempts: 3, backoff: [20] });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const reasons: unknown[] = [];
    const retryErrors: Error[] = [];
    let completedAttempt = 0;
    const worker = new Worker(nc, q, async (job) => {
      if (job.attempt === 1) {
        await new Promise<void>((resolve) => job.signal.addEventListener("abort", () => resolve()));
        reasons.push(job.signal.reason);
        return; // returning after the deadline must not ack the timed-out attempt
      }
      completedAttempt = job.attempt;
    });
    worker.on("retrying", (_ev, err) => retryErrors.push(err));
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publish({});
    await waitFor(() => completedAttempt === 2, "second attempt completes");
    await worker.stop();
    assert.ok(reasons[0] instanceof JobTimeoutError);
    assert.equal(retryErrors.length, 1);
    assert.ok(retryErrors[0] instanceof JobTimeoutError);
    await producer.close();
  });

  it("keeps a job longer than ackWaitMs alive with in-progress acks", async () => {
    const q = defineQueue({ name: uniqueName("lease"), ackWaitMs: 400 });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    const deliveries: number[] = [];
    let done = false;
    const worker = new Worker(nc, q, async (job) => {
      deliveries.push(job.attempt);
      await new Promise((r) => setTimeout(r, 1600)); // four times ackWaitMs
      done = true;
    }, { concurrency: 2 });
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publish({});
    await waitFor(() => done, "long job done");
    await worker.stop();
    assert.deepEqual(deliveries, [1], "never redelivered while it ran");
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.consumers.info(q.names.stream, q.names.consumer)).num_redelivered, 0);
    await producer.close();
  });

  it("confirms acks with the server in confirmed mode", async () => {
    const q = defineQueue({ name: uniqueName("ackack") });
    const nc = await nats.connect();
    await provisionQueue(nc, q);
    let completed = 0;
    const worker = new Worker(nc, q, async () => {}, { concurrency: 8, ackMode: "confirmed" });
    worker.on("completed", () => completed++);
    await worker.start();
    const producer = new Producer(nc, q);
    await producer.publishMany(Array.from({ length: 50 }, (_, i) => ({ i })));
    await waitFor(() => completed === 50, "50 confirmed");
    // A confirmed ack means the server already removed the job: no polling needed.
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0);
    await worker.stop();
    await producer.close();
  });
});

describe("connection loss", () => {
  it("stops a worker whose connection closes, reporting it once, without unhandled rejections", async () => {
    const q = defineQueue({ name: uniqueName("closed") });
    const admin = await nats.connect();
    await provisionQueue(admin, q);
    const nc = await nats.connect();
    const producer = new Producer(admin, q);
    const g = gate();
    let started = 0;
    const worker = new Worker(nc, q, async () => {
      started++;
      await g.wait;
    }, { concurrency: 2 });
    const errors: Error[] = [];
    worker.on("error", (e) => errors.push(e));
    let stopped = false;
    worker.on("stopped", () => (stopped = true));
    const unhandled: unknown[] = [];
    const onUnhandled = (e: unknown): void => {
      unhandled.push(e);
    };
    process.on("unhandledRejection", onUnhandled);
    try {
      await worker.start();
      await producer.publishMany([{ a: 1 }, { a: 2 }]);
      await waitFor(() => started === 2, "two jobs running");
      await nc.close();
      await waitFor(() => stopped, "worker stopped after its connection closed");
      g.open(); // the handlers finish after the close: their acks cannot be sent and must not throw
      await new Promise((r) => setImmediate(r));
      assert.equal(worker.isRunning, false);
      assert.ok(errors.some((e) => e instanceof ConnectionError && /closed; the worker stopped/.test(e.message)), errors.map((e) => e.message).join("\n"));
      assert.deepEqual(unhandled, []);
    } finally {
      process.off("unhandledRejection", onUnhandled);
    }
    // Nothing was acked: both jobs go to the next worker once their ack wait passes (30 s default),
    // so check the server still holds them instead of waiting.
    const jsm = await jetstreamManager(admin);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 2);
    await producer.close();
  });
});

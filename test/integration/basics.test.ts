import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  ConfigError,
  DeadLetterNotFoundError,
  DeadLetterQueue,
  defineQueue,
  JobTooLargeError,
  NotSentError,
  PermanentError,
  Producer,
  provisionQueue,
  ProvisionConflictError,
  PublishBatchError,
  QueueFullError,
  QueueNotFoundError,
  ValidationError,
  Worker,
  type JobEvent,
} from "../../src/index.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

describe("publish and process", () => {
  it("processes every job once and acks it (the stream ends empty)", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ n: z.number() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const receipts = await producer.publishMany(Array.from({ length: 200 }, (_, n) => ({ n })));
    assert.equal(receipts.length, 200);
    assert.equal(new Set(receipts.map((r) => r.seq)).size, 200);
    const seen = new Map<number, number>();
    const worker = new Worker(nc, q, async (job) => {
      seen.set(job.data.n, (seen.get(job.data.n) ?? 0) + 1);
      assert.equal(job.attempt, 1);
    }, { concurrency: 8 });
    await worker.start();
    await waitFor(() => seen.size === 200, "200 jobs processed");
    await worker.stop();
    assert.ok([...seen.values()].every((c) => c === 1), "each job handled exactly once");
    const jsm = await jetstreamManager(nc);
    await waitFor(async () => (await jsm.streams.info(q.names.stream)).state.messages === 0, "stream drained by acks");
    await producer.close();
  });

  it("rejects a payload that fails the schema without sending it", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ to: z.email() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const err = await producer.publish({ to: "not-an-address" }).catch((e: unknown) => e);
    assert.ok(err instanceof ValidationError, String(err));
    assert.deepEqual(err.issues[0]?.path, ["to"]);
    assert.match(err.message, /to: /);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0);
    await producer.close();
  });

  it("publishMany: an invalid item in the first chunk fails the batch with nothing sent", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ n: z.number() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const items: Array<{ n: number }> = Array.from({ length: 50 }, (_, n) => ({ n }));
    items[37] = { n: "x" } as unknown as { n: number };
    const err = await producer.publishMany(items).catch((e: unknown) => e);
    assert.ok(err instanceof ValidationError, String(err));
    assert.match(err.message, /\(item 37\)/);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0);
    await producer.close();
  });

  it("publishMany: an invalid item in a later chunk stops the batch there, and results say what happened to each item", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ n: z.number() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { maxInFlight: 4 });
    // A generator: read a chunk at a time, and the results must still line up with the input.
    function* items(): Generator<{ n: number }> {
      for (let n = 0; n < 35; n++) yield n === 23 ? ({ n: "bad" } as unknown as { n: number }) : { n };
    }
    const err = await producer.publishMany(items(), { chunkSize: 10 }).catch((e: unknown) => e);
    assert.ok(err instanceof PublishBatchError, String(err));
    assert.equal(err.results.length, 35);
    assert.match(err.message, /^15 of 35 publishes failed; the first error: .*\(item 23\)/);
    for (let k = 0; k < 20; k++) assert.equal(err.results[k]?.ok, true, `item ${k} published`);
    const outcome = (k: number): Error => {
      const r = err.results[k]!;
      assert.ok(!r.ok, `item ${k} failed`);
      return r.error;
    };
    assert.ok(outcome(23) instanceof ValidationError);
    for (const k of [20, 21, 22, 24, 30, 34]) {
      const e = outcome(k);
      assert.ok(e instanceof NotSentError, `item ${k}: ${String(e)}`);
      assert.equal(e.invalidIndex, 23);
      assert.equal(e.cause, outcome(23));
    }
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(q.names.stream);
    assert.equal(info.state.messages, 20, "the first two chunks, and nothing of the third");
    const seqs = err.results.slice(0, 20).map((r) => (r.ok ? r.receipt.seq : -1));
    assert.deepEqual(seqs, Array.from({ length: 20 }, (_, k) => k + 1), "receipts in input order");
    await producer.close();
  });

  it("publishMany: chunkSize Infinity validates the whole batch first; bad ids and chunk sizes are refused", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ n: z.number() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const items = Array.from({ length: 2500 }, (_, n) => ({ n }));
    const badId = await producer
      .publishMany(items, { chunkSize: Infinity, id: (x) => (x.n === 2400 ? "has space" : `id-${x.n}`) })
      .catch((e: unknown) => e);
    assert.ok(badId instanceof ConfigError, String(badId));
    assert.match(badId.message, /`id` \(item 2400\)/);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0);
    for (const chunkSize of [0, 1.5, -1, Number.NaN]) {
      await assert.rejects(producer.publishMany(items, { chunkSize }), (e: unknown) => e instanceof ConfigError && /chunkSize/.test(e.message));
    }
    const receipts = await producer.publishMany(items, { chunkSize: 700, id: (x) => `id-${x.n}` });
    assert.deepEqual(receipts.map((r) => r.id), items.map((x) => `id-${x.n}`));
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 2500);
    assert.deepEqual(await producer.publishMany([]), []);
    await producer.close();
  });

  it("drops a duplicate publish with the same id inside the window", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName() });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const a = await producer.publish({ x: 1 }, { id: "order-42" });
    const b = await producer.publish({ x: 2 }, { id: "order-42" });
    assert.equal(a.duplicate, false);
    assert.equal(b.duplicate, true);
    assert.equal(b.seq, a.seq);
    assert.equal(b.id, "order-42");
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 1);
    await producer.close();
  });

  it("throws QueueFullError when the bounded stream is full, and keeps what was accepted", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), maxMessages: 5 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => producer.publish({ i })));
    const ok = results.filter((r) => r.status === "fulfilled").length;
    const full = results.filter((r) => r.status === "rejected" && r.reason instanceof QueueFullError && r.reason.reason === "stream_full").length;
    assert.equal(ok, 5);
    assert.equal(full, 3);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 5);
    await producer.close();
  });

  it("tells a job that can never fit (JobTooLargeError) from a full queue, and sends nothing", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), maxBytes: 4_096 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const err = await producer.publish({ blob: "x".repeat(5_000) }).catch((e: unknown) => e);
    assert.ok(err instanceof JobTooLargeError && err instanceof ValidationError, String(err));
    assert.equal(err.limitName, "maxBytes");
    assert.doesNotMatch(err.message, /full/);
    assert.ok((await producer.publish({ small: true })).seq === 1, "nothing of the large job was stored");
    await producer.close();
  });

  it("refuses bad header names and values as ValidationError, and names what was not JSON-encodable", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName() });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const bad: Array<Record<string, string>> = [{ "X-Bad\r\nInjected": "1" }, { "": "empty name" }, { "X-Nul": "a\0b" }, { "X-Crlf": "a\r\nInjected: yes" }];
    for (const headers of bad) {
      const err = await producer.publish({ ok: true }, { headers }).catch((e: unknown) => e);
      assert.ok(err instanceof ValidationError, `${JSON.stringify(headers)}: ${String(err)}`);
    }
    const cause = new Error("cannot serialise a socket");
    const notJson = await producer.publish({ socket: { toJSON: () => { throw cause; } } }).catch((e: unknown) => e);
    assert.ok(notJson instanceof ValidationError, String(notJson));
    assert.match(notJson.message, /not JSON-encodable: encoding it threw: cannot serialise a socket/);
    assert.equal(notJson.cause, cause);
    const receipt = await producer.publish({ ok: true }, { headers: { "X-Tenant": "acme" } });
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 1, "only the valid job was sent");
    assert.equal((await jsm.streams.getMessage(q.names.stream, { seq: receipt.seq }))?.header?.get("X-Tenant"), "acme");
    await producer.close();
  });

  it("rejects at once when the publish window is full and overflow is reject", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName() });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q, { maxInFlight: 2, overflow: "reject" });
    const results = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => producer.publish({ i })));
    const rejected = results.filter((r) => r.status === "rejected");
    assert.equal(results.length - rejected.length, 2);
    for (const r of rejected) {
      assert.ok(r.status === "rejected" && r.reason instanceof QueueFullError && r.reason.reason === "window_full");
    }
    await producer.close();
  });

  it("fails with QueueNotFoundError when the queue was never provisioned", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName() });
    const producer = new Producer(nc, q);
    await assert.rejects(producer.publish({}), QueueNotFoundError);
    await producer.close();
    const worker = new Worker(nc, q, async () => {});
    await assert.rejects(worker.start(), QueueNotFoundError);
  });
});

describe("provisioning", () => {
  it("is idempotent and reports a conflicting definition without changing anything", async () => {
    const nc = await nats.connect();
    const name = uniqueName();
    const q = defineQueue({ name, ackWaitMs: 30_000 });
    const first = await provisionQueue(nc, q);
    assert.deepEqual(first, { stream: "created", consumer: "created", deadLetterStream: "created", ledgerStream: "created", migrated: false });
    const second = await provisionQueue(nc, q);
    assert.deepEqual(second, { stream: "unchanged", consumer: "unchanged", deadLetterStream: "unchanged", ledgerStream: "unchanged", migrated: false });
    const jsm = await jetstreamManager(nc);
    // Attempts are counted in the ledger: the server's delivery limit is not the attempt limit.
    assert.equal((await jsm.consumers.info(q.names.stream, q.names.consumer)).config.max_deliver, -1);

    const changed = defineQueue({ name, ackWaitMs: 45_000 });
    const err = await provisionQueue(nc, changed).catch((e: unknown) => e);
    assert.ok(err instanceof ProvisionConflictError, String(err));
    assert.match(err.message, /ack_wait \(definition: 45000 ms, server: 30000 ms\).*Nothing was changed/);
    assert.equal((await jsm.consumers.info(q.names.stream, q.names.consumer)).config.ack_wait, 30_000 * 1e6);

    const updated = await provisionQueue(nc, changed, { update: true });
    assert.equal(updated.consumer, "updated");
    assert.equal((await jsm.consumers.info(q.names.stream, q.names.consumer)).config.ack_wait, 45_000 * 1e6);

    const memory = defineQueue({ name, ackWaitMs: 45_000, storage: "memory" });
    const immutable = await provisionQueue(nc, memory, { update: true }).catch((e: unknown) => e);
    assert.ok(immutable instanceof ProvisionConflictError);
    assert.match(immutable.message, /storage/);
  });
});

describe("failures and dead letters", () => {
  it("retries with backoff and dead-letters after maxAttempts, with its story", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), maxAttempts: 3, backoff: [50, 100] });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    const { id } = await producer.publish({ will: "fail" }, { id: "job-1" });
    const attempts: number[] = [];
    const dead: Array<[JobEvent, string]> = [];
    const worker = new Worker(nc, q, async (job) => {
      attempts.push(job.attempt);
      throw new Error(`boom ${job.attempt}`);
    });
    worker.on("dead", (ev, reason) => dead.push([ev, reason]));
    await worker.start();
    await waitFor(() => dead.length === 1, "dead letter");
    await worker.stop();
    assert.deepEqual(attempts, [1, 2, 3]);
    assert.equal(dead[0]![1], "max_attempts");
    const dlq = new DeadLetterQueue(nc, q);
    assert.equal(await dlq.count(), 1);
    const [entry] = await dlq.list();
    assert.ok(entry);
    assert.equal(entry.id, id);
    assert.deepEqual(entry.data, { will: "fail" });
    assert.equal(entry.reason, "max_attempts");
    assert.equal(entry.attempts, 3);
    assert.equal(entry.error.message, "boom 3");
    assert.ok(entry.sourceSeq > 0);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0, "original removed after the copy");
    await producer.close();
  });

  it("sends PermanentError, bad JSON and schema failures straight to the DLQ", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), schema: z.object({ n: z.number() }), maxAttempts: 5 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ n: 1 });
    nc.publish(q.names.subject, "{not json");
    nc.publish(q.names.subject, JSON.stringify({ n: "one" }));
    const calls: number[] = [];
    const worker = new Worker(nc, q, async (job) => {
      calls.push(job.data.n);
      throw new PermanentError("account deleted");
    });
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 3, "three dead letters");
    await worker.stop();
    assert.deepEqual(calls, [1], "the handler saw only the valid job, once");
    const reasons = (await dlq.list()).map((e) => e.reason).sort();
    assert.deepEqual(reasons, ["decode", "permanent", "validation"]);
    const bad = (await dlq.list()).find((e) => e.reason === "decode")!;
    assert.equal(new TextDecoder().decode(bad.raw), "{not json");
    await producer.close();
  });

  it("replays a dead letter back through a worker, once", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName(), maxAttempts: 1 });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publish({ v: 1 }, { id: "replay-me" });
    let fail = true;
    const done: string[] = [];
    const worker = new Worker(nc, q, async (job) => {
      if (fail) throw new Error("first time fails");
      done.push(`${job.id}@${job.attempt}`);
    });
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 1, "dead letter");
    fail = false;
    const [entry] = await dlq.list();
    await dlq.replay(entry!.seq);
    await assert.rejects(dlq.replay(entry!.seq), /does not exist/);
    await waitFor(() => done.length === 1, "replayed job completes");
    assert.deepEqual(done, ["replay-me@1"]);
    assert.equal(await dlq.count(), 0);
    await worker.stop();
    await producer.close();
  });
});

describe("dead-letter operations", () => {
  it("lists, filters, pages, purges selectively and replays all", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("ops"), maxAttempts: 1, schema: z.object({ k: z.string() }) });
    await provisionQueue(nc, q);
    const producer = new Producer(nc, q);
    await producer.publishMany([{ k: "a" }, { k: "b" }, { k: "c" }, { k: "d" }]);
    const worker = new Worker(nc, q, async (job) => {
      if (job.data.k === "a" || job.data.k === "b") throw new PermanentError(`smtp rejected ${job.data.k}`);
      throw new Error(`timeout talking to ${job.data.k}`);
    });
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 4, "four dead letters");
    await worker.stop();
    assert.deepEqual((await dlq.list({ reason: "permanent" })).map((e) => e.error.message).sort(), ["smtp rejected a", "smtp rejected b"]);
    assert.equal((await dlq.list({ errorIncludes: "TIMEOUT" })).length, 2);
    assert.equal((await dlq.list({ olderThanMs: 3_600_000 })).length, 0, "none is an hour old");
    const page1 = await dlq.list({ limit: 3 });
    const page2 = await dlq.list({ limit: 3, fromSeq: page1.at(-1)!.seq + 1 });
    assert.equal(page1.length, 3);
    assert.equal(page2.length, 1);
    assert.equal(await dlq.get(page2[0]!.seq).then((e) => e?.id), page2[0]!.id);
    await assert.rejects(dlq.get(999_999), DeadLetterNotFoundError);
    assert.equal(await dlq.purge({ errorIncludes: "timeout" }), 2);
    assert.equal(await dlq.count(), 2);
    const done: string[] = [];
    const healed = new Worker(nc, q, async (job) => {
      done.push(job.data.k);
    });
    await healed.start();
    assert.deepEqual(await dlq.replayAll(), { replayed: 2, alreadyGone: 0 });
    await waitFor(() => done.length === 2, "replayed jobs done");
    assert.deepEqual(done.sort(), ["a", "b"]);
    assert.equal(await dlq.count(), 0);
    await healed.stop();
    await producer.close();
  });
});

describe("dead letters near the size limit", () => {
  it("dead-letters a job near max_payload whole, and one at the limit cut and marked, never stuck", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("big") });
    await provisionQueue(nc, q);
    const max = nc.info!.max_payload;
    const near = new Uint8Array(max - 200).fill(0x7b); // "{{{{…": not JSON
    const full = new Uint8Array(max - 20).fill(0x7b);
    nc.publish(q.names.subject, near);
    nc.publish(q.names.subject, full);
    const worker = new Worker(nc, q, async () => {});
    const errors: Error[] = [];
    worker.on("error", (e) => errors.push(e));
    await worker.start();
    const dlq = new DeadLetterQueue(nc, q);
    await waitFor(async () => (await dlq.count()) === 2, "both dead-lettered", 20_000);
    await worker.stop();
    assert.deepEqual(errors.map((e) => e.message), []);
    const [a, b] = await dlq.list();
    assert.equal(a!.reason, "decode");
    assert.equal(a!.raw.length, near.length, "kept whole");
    assert.equal(a!.truncatedFrom, undefined);
    assert.equal(b!.reason, "decode");
    assert.equal(b!.truncatedFrom, full.length);
    assert.ok(b!.raw.length < full.length && b!.raw.length > full.length - 300);
    const jsm = await jetstreamManager(nc);
    assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 0, "nothing stuck in the queue");
  });
});

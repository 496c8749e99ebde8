import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { ConfigError, defineQueue, Producer, Worker } from "../../src/index.ts";
import type { NatsConnection } from "@nats-io/transport-node";

// Constructors validate eagerly and never touch the connection, so a placeholder is enough here.
const nc = {} as NatsConnection;

describe("defineQueue", () => {
  it("fills in documented defaults and derives server names", () => {
    const q = defineQueue({ name: "emails" });
    assert.equal(q.maxAttempts, 5);
    assert.equal(q.ackWaitMs, 30_000);
    assert.equal(q.maxAckPending, 1000);
    assert.equal(q.timeoutMs, undefined);
    assert.equal(q.storage, "file");
    assert.equal(q.replicas, 1);
    assert.equal(q.maxMessages, -1);
    assert.equal(q.duplicateWindowMs, 120_000);
    assert.equal(q.names.stream, "JETQ_emails");
    assert.equal(q.names.subject, "jetq.q.emails");
    assert.equal(q.names.dlqStream, "JETQ_emails_DLQ");
    assert.equal(q.names.advisorySubject, "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.JETQ_emails.workers");
    assert.ok(Object.isFrozen(q));
  });

  it("names the option, the expectation and the value in every error", () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ name: "bad name" }, /`name`.*got "bad name"/],
      [{ name: "a.b" }, /`name`/],
      [{ name: "" }, /`name`/],
      [{ name: "x".repeat(65) }, /`name`/],
      [{ name: "q", maxAttempts: 0 }, /`maxAttempts`.*from 1.*got 0/],
      [{ name: "q", maxAttempts: 1.5 }, /`maxAttempts`/],
      [{ name: "q", ackWaitMs: 10 }, /`ackWaitMs`.*got 10/],
      [{ name: "q", maxAckPending: -5 }, /`maxAckPending`/],
      [{ name: "q", timeoutMs: 0 }, /`timeoutMs`/],
      [{ name: "q", storage: "disk" }, /`storage`.*got "disk"/],
      [{ name: "q", replicas: 7 }, /`replicas`/],
      [{ name: "q", maxMessages: 0 }, /`maxMessages`/],
      [{ name: "q", schema: { parse() {} } }, /`schema`/],
      [{ name: "q", backoff: "fast" }, /`backoff`/],
      [{ name: "q", deadLetter: { maxMessages: 0 } }, /`deadLetter.maxMessages`/],
    ];
    for (const [opts, re] of cases) {
      assert.throws(() => defineQueue(opts as never), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(opts));
    }
  });

  it("accepts a zod schema and keeps it", () => {
    const schema = z.object({ to: z.string() });
    assert.equal(defineQueue({ name: "q", schema }).schema, schema);
  });
});

describe("Producer and Worker options", () => {
  const q = defineQueue({ name: "q" });
  it("rejects bad producer options", () => {
    assert.throws(() => new Producer(nc, q, { maxInFlight: 0 }), /`maxInFlight`/);
    assert.throws(() => new Producer(nc, q, { overflow: "drop" as never }), /`overflow`.*"drop"/);
    assert.throws(() => new Producer(nc, q, { ackTimeoutMs: -1 }), /`ackTimeoutMs`/);
    assert.throws(() => new Producer(nc, q, { blockTimeoutMs: 1.5 }), /`blockTimeoutMs`/);
  });
  it("rejects bad worker options", () => {
    const h = async (): Promise<void> => {};
    assert.throws(() => new Worker(nc, q, h, { concurrency: 0 }), /`concurrency`/);
    assert.throws(() => new Worker(nc, q, h, { concurrency: 4, pullBatch: 5 }), /`pullBatch`.*from 1 to 4/);
    assert.throws(() => new Worker(nc, q, h, { ackMode: "maybe" as never }), /`ackMode`/);
    assert.throws(() => new Worker(nc, q, h, { pullExpiresMs: 10 }), /`pullExpiresMs`/);
    assert.throws(() => new Worker(nc, q, "nope" as never), /`handler`/);
  });
});

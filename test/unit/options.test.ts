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
    assert.equal(q.names.ledgerStream, "JETQ_emails_LEDGER");
    assert.equal(q.names.ledgerSubject, "jetq.ledger.emails");
    assert.equal(q.maxCrashes, 2);
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
      // Names that would be another queue's streams (JETQ_x_DLQ is queue x's dead letters).
      [{ name: "x_DLQ" }, /`name` not to end in _DLQ.*got "x_DLQ"/],
      [{ name: "x_LEDGER" }, /`name` not to end in _DLQ, _LEDGER/],
      [{ name: "x_ADV" }, /`name`/],
      [{ name: "q", replicas: 2 }, /`replicas` to be 1, 3 or 5.*got 2/],
      [{ name: "q", replicas: 4 }, /`replicas`/],
      [{ name: "q", maxCrashes: 0 }, /`maxCrashes`.*got 0/],
      // A dead-letter max age below the duplicate window the server would refuse, part-way through provisioning.
      [{ name: "q", deadLetter: { maxAgeMs: 60_000 } }, /`deadLetter.maxAgeMs`.*at least 120000 ms.*got 60000/],
      [{ name: "q", ackWaitMs: 60_000, deadLetter: { maxAgeMs: 200_000 } }, /at least 240000 ms/],
      // A sparse list: the hole is not a delay.
      // eslint-disable-next-line no-sparse-arrays
      [{ name: "q", backoff: [1000, , 5000] }, /`backoff\[1\]`.*got undefined/],
    ];
    for (const [opts, re] of cases) {
      assert.throws(() => defineQueue(opts as never), (e: unknown) => e instanceof ConfigError && re.test(e.message), JSON.stringify(opts));
    }
  });

  it("accepts the names and values just inside the bounds", () => {
    assert.equal(defineQueue({ name: "x_dlq" }).name, "x_dlq");
    assert.equal(defineQueue({ name: "DLQ" }).name, "DLQ");
    assert.equal(defineQueue({ name: "q", replicas: 5 }).replicas, 5);
    assert.equal(defineQueue({ name: "q", deadLetter: { maxAgeMs: 120_000 } }).deadLetter.maxAgeMs, 120_000);
    const fn = (attempt: number): number => attempt * 10;
    assert.deepEqual(defineQueue({ name: "q", backoff: fn }).backoff, { kind: "function", fn });
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

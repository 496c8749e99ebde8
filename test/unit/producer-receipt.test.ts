import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError, ConnectionError, JetqError, NotSentError, QueueFullError, QueueNotFoundError, ValidationError } from "../../src/errors.ts";
import { BatchSink, batchResult } from "../../src/producer/batch.ts";
import { DEFAULT_CHUNK, resolveChunkSize, resolveProducerOptions } from "../../src/producer/options.ts";
import { PublishBatchError, type PublishReceipt, publishOutcome } from "../../src/producer/receipt.ts";

/** A receipt as the tests build it (without `result()`, which only the producer attaches). */
const receipt = (o: { id: string; seq: number; duplicate: boolean }): PublishReceipt => o as PublishReceipt;
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
/** What a receipt serialises as. */
const plain = (r: unknown): unknown => JSON.parse(JSON.stringify(r));

describe("publishOutcome (what the server's answer means)", () => {
  it("reads receipts: the caller's id, or seq-<n>; duplicates; a domain", () => {
    assert.deepEqual(plain(publishOutcome(undefined, bytes('{"stream":"JETQ_q","seq":42}'), undefined, "q")), { id: "seq-42", seq: 42, duplicate: false });
    assert.deepEqual(plain(publishOutcome(undefined, bytes('{"stream":"JETQ_q","seq":7,"duplicate":true}'), "order-1", "q")), { id: "order-1", seq: 7, duplicate: true });
    assert.deepEqual(plain(publishOutcome(undefined, bytes('{"stream":"JETQ_q", "domain":"hub", "seq":3}'), undefined, "q")), { id: "seq-3", seq: 3, duplicate: false });
  });

  it("maps a 503 to QueueNotFoundError, a full stream to QueueFullError, the rest to JetqError", () => {
    const missing = publishOutcome({ code: 503, description: "No Responders" }, new Uint8Array(), undefined, "q");
    assert.ok(missing instanceof QueueNotFoundError, String(missing));
    assert.match(missing.message, /provisionQueue\(\)/);
    const full = publishOutcome(undefined, bytes('{"error":{"code":503,"err_code":10077,"description":"maximum bytes exceeded"},"stream":"JETQ_q","seq":0}'), undefined, "q");
    assert.ok(full instanceof QueueFullError && full.reason === "stream_full", String(full));
    const msgs = publishOutcome(undefined, bytes('{"error":{"code":503,"err_code":10047,"description":"maximum messages exceeded"}}'), undefined, "q");
    assert.ok(msgs instanceof QueueFullError, String(msgs));
    const other = publishOutcome(undefined, bytes('{"error":{"code":400,"err_code":10060,"description":"expected stream does not match"}}'), undefined, "q");
    assert.ok(other instanceof JetqError && !(other instanceof QueueFullError) && /10060/.test(other.message), String(other));
    const status = publishOutcome({ code: 408, description: "Request Timeout" }, new Uint8Array(), undefined, "q");
    assert.ok(status instanceof JetqError && /408 Request Timeout/.test(status.message));
    const junk = publishOutcome(undefined, bytes("not json"), undefined, "q");
    assert.ok(junk instanceof JetqError && /unreadable PubAck/.test(junk.message) && junk.cause instanceof SyntaxError);
  });
});

describe("batchResult and BatchSink", () => {
  it("settles in input order and resolves once the last item has an outcome", async () => {
    const sink = new BatchSink();
    const a = sink.add();
    const b = sink.add();
    let done = false;
    const settled = sink.settled().then(() => (done = true));
    sink.settle(b, receipt({ id: "seq-2", seq: 2, duplicate: false }));
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    sink.settle(a, receipt({ id: "seq-1", seq: 1, duplicate: false }));
    await settled;
    assert.deepEqual(batchResult(sink.outcomes, undefined).map((r) => r.seq), [1, 2]);
    assert.equal(sink.open, 0);
  });

  it("throws PublishBatchError counting failures, naming the invalid item that stopped the batch first", () => {
    const ok = receipt({ id: "seq-1", seq: 1, duplicate: false });
    const invalid = new ValidationError("item 2 is invalid", []);
    const notSent = new NotSentError("Not sent: item 2 of the batch is invalid", 2, invalid);
    const err = (() => {
      try {
        batchResult([ok, notSent, invalid], invalid);
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof PublishBatchError, String(err));
    assert.match(err.message, /^2 of 3 publishes failed; the first error: item 2 is invalid/);
    assert.deepEqual(err.results.map((r) => r.ok), [true, false, false]);
    const timeout = new ConnectionError("closed");
    assert.throws(() => batchResult([timeout, ok], timeout), (e) => e instanceof PublishBatchError && e.cause === timeout);
  });
});

describe("producer options", () => {
  it("fills in the documented defaults", () => {
    assert.deepEqual(resolveProducerOptions({}), {
      maxInFlight: 1024,
      overflow: "block",
      blockTimeoutMs: 30_000,
      maxBlocked: 4096,
      ackTimeoutMs: 5_000,
      validate: true,
      inboxPrefix: "_INBOX",
    });
    assert.equal(resolveProducerOptions({ maxInFlight: 10 }).maxBlocked, 40);
    assert.equal(resolveChunkSize(undefined), DEFAULT_CHUNK);
    assert.equal(resolveChunkSize(Infinity), Infinity);
  });

  it("names the option, the expectation and the value", () => {
    const cases: Array<[object, RegExp]> = [
      [{ maxInFlight: 0 }, /`maxInFlight` to be an integer from 1 to 1000000, got 0/],
      [{ overflow: "drop" }, /`overflow` to be "block" or "reject", got "drop"/],
      [{ blockTimeoutMs: 1.5 }, /`blockTimeoutMs` to be a positive integer number of milliseconds, got 1.5/],
      [{ ackTimeoutMs: "5s" }, /`ackTimeoutMs`.*got "5s"/],
      [{ maxBlocked: -1 }, /`maxBlocked` to be a non-negative integer, got -1/],
      [{ inboxPrefix: "a.*" }, /`inboxPrefix` to be a subject without wildcards, got "a\.\*"/],
    ];
    for (const [opts, re] of cases) assert.throws(() => resolveProducerOptions(opts as never), (e) => e instanceof ConfigError && re.test(e.message), JSON.stringify(opts));
    assert.throws(() => resolveChunkSize(0), /`chunkSize` to be a positive integer or Infinity, got 0/);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { parsePubAck, plainPubAckSeq } from "../../src/producer/puback.ts";

const enc = new TextEncoder();
const bytes = (s: string): Uint8Array => enc.encode(s);
/** What JSON.parse makes of it, reduced to the fields a producer reads. */
const slow = (s: string) => {
  const { seq, duplicate, error } = JSON.parse(s) as { seq?: number; duplicate?: boolean; error?: unknown };
  return { seq, duplicate, error };
};
const same = (a: object, b: object): void => assert.deepEqual(JSON.parse(JSON.stringify(a)), JSON.parse(JSON.stringify(b)));

describe("parsePubAck", () => {
  it("reads what JSON.parse reads, for PubAcks as nats-server writes them and for any JSON object", () => {
    const stream = fc.string({ minLength: 0, maxLength: 40, unit: "grapheme" });
    const seq = fc.oneof(fc.integer({ min: 0, max: 999 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
    const ack = fc.record(
      {
        stream,
        seq,
        domain: fc.string({ maxLength: 10 }),
        duplicate: fc.boolean(),
        error: fc.record({ code: fc.integer({ min: 400, max: 599 }), err_code: fc.integer({ min: 10000, max: 10999 }), description: fc.string() }),
      },
      { requiredKeys: ["stream", "seq"] },
    );
    fc.assert(
      fc.property(ack, (a) => {
        const text = JSON.stringify(a);
        same(parsePubAck(bytes(text)), slow(text));
      }),
      { numRuns: 2000 },
    );
    // The form nats-server 2.9 writes (a space after the comma), with any names.
    fc.assert(
      fc.property(stream, seq, (name, n) => {
        const text = `{"stream":${JSON.stringify(name)}, "seq":${n}}`;
        same(parsePubAck(bytes(text)), slow(text));
      }),
      { numRuns: 2000 },
    );
    // The spaced form nats-server writes for a stream in a domain, with any names.
    fc.assert(
      fc.property(stream, fc.string({ maxLength: 10, unit: "grapheme" }), seq, (name, domain, n) => {
        const text = `{"stream":${JSON.stringify(name)}, "domain":${JSON.stringify(domain)}, "seq":${n}}`;
        same(parsePubAck(bytes(text)), slow(text));
      }),
      { numRuns: 2000 },
    );
    fc.assert(
      fc.property(fc.json(), (text) => {
        let expected: unknown;
        try {
          expected = slow(text);
        } catch (e) {
          expected = e;
        }
        if (expected instanceof Error) assert.throws(() => parsePubAck(bytes(text)), { name: expected.name });
        else same(parsePubAck(bytes(text)), expected as object);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads the answers nats-server writes from their bytes, without JSON.parse", () => {
    // Exactly as nats-server 2.9.10 answers a publish (captured from the server): a space after the comma.
    assert.equal(plainPubAckSeq(bytes('{"stream":"JETQ_orders", "seq":42}')), 42);
    assert.equal(plainPubAckSeq(bytes('{"stream":"JETQ_orders", "domain":"hub", "seq":7}')), 7);
    // As a JSON encoder writes them.
    assert.equal(plainPubAckSeq(bytes('{"stream":"JETQ_orders","seq":42}')), 42);
    assert.equal(plainPubAckSeq(bytes('{"stream":"JETQ_orders","domain":"hub","seq":7}')), 7);
    // Everything else is left to JSON.parse.
    for (const other of ['{"stream":"S", "seq":7, "duplicate":true}', '{"error":{"code":503},"stream":"S","seq":0}', '{"stream":"S",  "seq":1}', '{"stream":"S" ,"seq":1}', '{"stream":"S", "seq":1 }']) {
      assert.equal(plainPubAckSeq(bytes(other)), -1, other);
    }
  });

  it("takes the byte path for the plain form and refuses what is not JSON", () => {
    assert.deepEqual(parsePubAck(bytes('{"stream":"JETQ_orders","seq":42}')), { seq: 42 });
    assert.deepEqual(parsePubAck(bytes('{"stream":"S","seq":0}')), { seq: 0 });
    assert.deepEqual(parsePubAck(bytes('{"stream":"S","seq":123456789012345}')), { seq: 123456789012345 });
    same(parsePubAck(bytes('{"stream":"S","seq":7,"duplicate":true}')), { seq: 7, duplicate: true });
    same(parsePubAck(bytes('{"error":{"code":503,"err_code":10077,"description":"maximum messages exceeded"},"stream":"S","seq":0}')), {
      seq: 0,
      error: { code: 503, err_code: 10077, description: "maximum messages exceeded" },
    });
    // A stream in a JetStream domain, as nats-server writes it (checked on 2.9.10).
    assert.deepEqual(parsePubAck(bytes('{"stream":"JETQ_orders", "domain":"hub", "seq":42}')), { seq: 42 });
    for (const bad of ['{"stream":"S", "domain":"", "seq":1}x', '{"stream":"S", "domain":"hub", "seq":01}', '{"stream":"S", "domain":"hub"', '{"stream":"S", "domain":"h']) {
      assert.throws(() => parsePubAck(bytes(bad)), SyntaxError, bad);
    }
    for (const bad of ['{"stream":"S","seq":01}', '{"stream":"S","seq":}', '{"stream":"S","seq":1}x', '{"stream":"S","seq":1', "", "nope"]) {
      assert.throws(() => parsePubAck(bytes(bad)), SyntaxError, bad);
    }
  });
});

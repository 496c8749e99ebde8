import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { deliveryOf } from "../../src/consumer/delivery.ts";
import { seqJobId } from "../../src/queue/headers.ts";

const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,32}$/);
const num = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });

describe("deliveryOf (ack subject parsing)", () => {
  it("reads the stream sequence and delivery count of both subject forms", () => {
    fc.assert(
      fc.property(name, name, name, name, fc.integer({ min: 1, max: 1_000_000 }), num, num, num, num, fc.boolean(), (domain, hash, stream, consumer, delivered, sseq, dseq, ts, pending, withToken) => {
        const tail = `${delivered}.${sseq}.${dseq}.${ts}.${pending}`;
        assert.deepEqual(deliveryOf(`$JS.ACK.${stream}.${consumer}.${tail}`), { seq: sseq, deliveries: delivered });
        const v2 = `$JS.ACK.${domain}.${hash}.${stream}.${consumer}.${tail}${withToken ? ".abc123" : ""}`;
        assert.deepEqual(deliveryOf(v2), { seq: sseq, deliveries: delivered });
      }),
      { numRuns: 500 },
    );
  });

  it("returns undefined for anything else", () => {
    for (const s of [
      "",
      "_INBOX.abc",
      "$JS.ACK.S.C.1.2.3.4",
      "$JS.ACK.S.C.x.2.3.4.5",
      "$JS.ACK.S.C.1..3.4.5",
      "$JS.ACK.S.C.1.2.3.4.5.6.7.8.9",
      "$JS.NAK.S.C.1.2.3.4.5",
      "$JS.ACK.S.C.1.99999999999999999.3.4.5",
    ]) {
      assert.equal(deliveryOf(s), undefined, s);
    }
  });
});

describe("seqJobId (the id of a job published without one)", () => {
  it("writes the same digits as String() for every stream sequence", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (seq) => {
        assert.equal(seqJobId(seq), `seq-${String(seq)}`);
      }),
      { numRuns: 1000 },
    );
    assert.equal(seqJobId(1), "seq-1");
    assert.equal(seqJobId(Number.MAX_SAFE_INTEGER), "seq-9007199254740991");
  });
});

// Property-based tests (fast-check) for what hostile input and careless callers reach first:
// payload decoding, header sanitising, and option validation. Each property runs a bounded
// number of cases with a seed printed on failure (fast-check's default), so a failure replays.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { RequestError, type NatsConnection } from "@nats-io/transport-node";
import { ConfigError, ConnectionError, defineQueue, JetqError, Producer, Worker } from "../../src/index.ts";
import { mapNatsError } from "../../src/natserr.ts";
import { isUtf8 } from "node:buffer";
import { decodePayload, encodePayload } from "../../src/queue/codec.ts";
import { headerValue } from "../../src/queue/headers.ts";
import { backoffDelay, resolveBackoff } from "../../src/queue/backoff.ts";

const RUNS = { numRuns: 300 };
const enc = new TextEncoder();
// Constructors validate eagerly and never touch the connection.
const nc = {} as NatsConnection;

/** Values of every shape a caller might pass by mistake. */
const junk = fc.oneof(
  fc.constant(undefined),
  fc.constant(null),
  fc.boolean(),
  fc.integer({ min: -1_000_000, max: 1_000_000 }),
  fc.double(),
  fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -1, 0, 0.5, 2 ** 31, Number.MAX_SAFE_INTEGER + 2),
  fc.string({ maxLength: 20 }),
  fc.array(fc.integer(), { maxLength: 3 }),
  fc.object({ maxDepth: 1 }),
);

describe("decodePayload (property)", () => {
  it("either decodes or throws a SyntaxError/TypeError, for any bytes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 512 }), (bytes) => {
        try {
          decodePayload(bytes);
        } catch (err) {
          assert.ok(err instanceof SyntaxError || err instanceof TypeError, `unexpected ${String(err)}`);
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it("either decodes or throws a SyntaxError/TypeError, for JSON-looking text (truncated, spliced, nested)", () => {
    const jsonish = fc.oneof(
      fc.json().chain((j) => fc.nat({ max: j.length }).map((cut) => j.slice(0, cut))),
      fc.tuple(fc.json(), fc.json()).map(([a, b]) => a + b),
      fc.nat({ max: 5_000 }).map((d) => "[".repeat(d) + "]".repeat(d)),
      fc.string({ unit: "binary", maxLength: 200 }),
    );
    fc.assert(
      fc.property(jsonish, (text) => {
        try {
          decodePayload(enc.encode(text));
        } catch (err) {
          assert.ok(err instanceof SyntaxError || err instanceof TypeError, `unexpected ${String(err)}`);
        }
      }),
      RUNS,
    );
  });

  it("refuses exactly the payloads that are not valid UTF-8 (a real U+FFFD is fine)", () => {
    const quoted = (inner: Uint8Array): Uint8Array => Uint8Array.from([0x22, ...inner, 0x22]);
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (inner) => {
        const bytes = quoted(inner);
        if (!isUtf8(bytes)) {
          assert.throws(() => decodePayload(bytes), TypeError);
        } else {
          let expected: unknown;
          try {
            expected = JSON.parse(new TextDecoder().decode(bytes));
          } catch {
            return; // not JSON: covered by the tests above
          }
          assert.deepEqual(decodePayload(bytes), expected);
        }
      }),
      { numRuns: 2_000 },
    );
    assert.equal(decodePayload(enc.encode(JSON.stringify("a\uFFFDb"))), "a\uFFFDb");
    assert.throws(() => decodePayload(Uint8Array.from([0x22, 0xc3, 0x22])), TypeError);
  });

  it("round-trips every JSON value through encodePayload", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (v) => {
        const s = encodePayload(v);
        assert.equal(typeof s, "string");
        assert.deepEqual(decodePayload(enc.encode(s!)), JSON.parse(JSON.stringify(v)));
      }),
      RUNS,
    );
  });

  it("encodePayload never throws: anything not JSON-encodable is undefined", () => {
    fc.assert(
      fc.property(fc.anything({ withBigInt: true, withMap: true, withSet: true, withBoxedValues: true }), (v) => {
        const s = encodePayload(v);
        if (s !== undefined) assert.doesNotThrow(() => JSON.parse(s));
      }),
      RUNS,
    );
    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.equal(encodePayload(circular), undefined);
    assert.equal(encodePayload(10n), undefined);
    assert.equal(encodePayload(undefined), undefined);
  });
});

describe("headerValue (property)", () => {
  it("always yields one bounded, trimmed line without control characters", () => {
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 3_000 }), fc.integer({ min: 2, max: 2_000 }), (s, max) => {
        const v = headerValue(s, max);
        assert.ok(v.length <= max, `length ${v.length} > ${max}`);
        // eslint-disable-next-line no-control-regex
        assert.ok(!/[\x00-\x1f\x7f]/.test(v), "no control characters (CR/LF would split a header)");
        assert.equal(v, v.trimStart());
      }),
      RUNS,
    );
  });
});

describe("option validation (property)", () => {
  const optionNames = [
    "maxAttempts",
    "ackWaitMs",
    "maxAckPending",
    "timeoutMs",
    "storage",
    "replicas",
    "maxMessages",
    "maxBytes",
    "duplicateWindowMs",
    "backoff",
  ] as const;

  it("defineQueue either returns a frozen, in-range queue or throws ConfigError naming the option", () => {
    const valid = {
      maxAttempts: fc.integer({ min: 1, max: 10_000 }),
      ackWaitMs: fc.integer({ min: 100, max: 86_400_000 }),
      maxAckPending: fc.integer({ min: 1, max: 1_000_000 }),
      timeoutMs: fc.integer({ min: 1, max: 2 ** 31 - 1 }),
      storage: fc.constantFrom("file", "memory"),
      replicas: fc.integer({ min: 1, max: 5 }),
      maxMessages: fc.oneof(fc.constant(-1), fc.integer({ min: 1 })),
      maxBytes: fc.oneof(fc.constant(-1), fc.integer({ min: 1 })),
      duplicateWindowMs: fc.integer({ min: 100, max: 7 * 86_400_000 }),
      backoff: fc.oneof(
        fc.array(fc.integer({ min: 0, max: 600_000 }), { minLength: 1, maxLength: 5 }),
        fc.record({ initialMs: fc.integer({ min: 0, max: 1_000 }), maxMs: fc.integer({ min: 1_000, max: 60_000 }) }, { requiredKeys: [] }),
      ),
    };
    const field = <T>(good: fc.Arbitrary<T>): fc.Arbitrary<unknown> => fc.option(fc.oneof({ weight: 3, arbitrary: good }, { weight: 1, arbitrary: junk }), { nil: undefined });
    const opts = fc.record({
      name: fc.oneof({ weight: 4, arbitrary: fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/) }, { weight: 1, arbitrary: junk }),
      maxAttempts: field(valid.maxAttempts),
      ackWaitMs: field(valid.ackWaitMs),
      maxAckPending: field(valid.maxAckPending),
      timeoutMs: field(valid.timeoutMs),
      storage: field(valid.storage),
      replicas: field(valid.replicas),
      maxMessages: field(valid.maxMessages),
      maxBytes: field(valid.maxBytes),
      duplicateWindowMs: field(valid.duplicateWindowMs),
      backoff: field(valid.backoff),
    });
    fc.assert(
      fc.property(opts, (o) => {
        const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
        let q;
        try {
          q = defineQueue(clean as never);
        } catch (err) {
          assert.ok(err instanceof ConfigError, `only ConfigError, got ${String(err)}`);
          const named = ["name", ...optionNames].some((n) => err.message.includes(`\`${n}`));
          assert.ok(named, `the message names the option: ${err.message}`);
          assert.match(err.message, /got /, "and the value it got");
          return;
        }
        assert.ok(Object.isFrozen(q));
        assert.ok(Number.isInteger(q.maxAttempts) && q.maxAttempts >= 1);
        assert.ok(q.ackWaitMs >= 100);
        assert.ok(q.replicas >= 1 && q.replicas <= 5);
        assert.ok(q.maxMessages === -1 || q.maxMessages >= 1);
        assert.ok(q.storage === "file" || q.storage === "memory");
        assert.equal(q.names.subject, `jetq.q.${q.name}`);
      }),
      { numRuns: 1_000 },
    );
  });

  it("backoff delays stay within [0, maxMs] for every valid policy and attempt", () => {
    const policy = fc.oneof(
      fc.array(fc.integer({ min: 0, max: 600_000 }), { minLength: 1, maxLength: 6 }),
      fc
        .record({
          initialMs: fc.integer({ min: 0, max: 10_000 }),
          extra: fc.integer({ min: 0, max: 100_000 }),
          multiplier: fc.double({ min: 1, max: 100, noNaN: true }),
          jitter: fc.double({ min: 0, max: 1, noNaN: true }),
        })
        .map(({ initialMs, extra, multiplier, jitter }) => ({ initialMs, maxMs: initialMs + extra, multiplier, jitter })),
    );
    fc.assert(
      fc.property(policy, fc.integer({ min: -5, max: 100_000 }), fc.double({ min: 0, max: 0.999_999, noNaN: true }), (p, attempt, r) => {
        const resolved = resolveBackoff(p);
        const d = backoffDelay(resolved, attempt, () => r);
        assert.ok(Number.isFinite(d) && d >= 0, `delay ${d}`);
        if (Array.isArray(p)) assert.ok(p.includes(d), `fixed delay ${d} comes from the list`);
        else assert.ok(d <= p.maxMs, `delay ${d} <= maxMs ${p.maxMs}`);
      }),
      RUNS,
    );
  });

  it("Producer and Worker options: accepted, or a ConfigError naming the option", () => {
    const q = defineQueue({ name: "prop" });
    const producerOpts = fc.record(
      { maxInFlight: junk, overflow: fc.oneof(fc.constantFrom("block", "reject"), junk), blockTimeoutMs: junk, ackTimeoutMs: junk, maxBlocked: junk },
      { requiredKeys: [] },
    );
    const workerOpts = fc.record(
      { concurrency: junk, pullBatch: junk, pullExpiresMs: junk, ackMode: fc.oneof(fc.constantFrom("fire", "confirmed"), junk) },
      { requiredKeys: [] },
    );
    const check = (make: () => unknown, keys: string[]): void => {
      try {
        make();
      } catch (err) {
        assert.ok(err instanceof ConfigError, `only ConfigError, got ${String(err)}`);
        assert.ok(keys.some((k) => err.message.includes(`\`${k}\``)), `names the option: ${err.message}`);
      }
    };
    fc.assert(
      fc.property(producerOpts, (o) => {
        const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
        check(() => new Producer(nc, q, clean as never), Object.keys(clean));
      }),
      RUNS,
    );
    fc.assert(
      fc.property(workerOpts, (o) => {
        const clean = Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
        check(() => new Worker(nc, q, async () => {}, clean as never), Object.keys(clean));
      }),
      RUNS,
    );
  });
});

describe("mapNatsError (property)", () => {
  it("turns any thrown value into a JetqError whose message starts with the operation", () => {
    const thrown = fc.oneof(
      fc.string().map((m) => new Error(m)),
      fc.string().map((m) => new RequestError(m)),
      fc.string().map((m) => new TypeError(m)),
      junk,
    );
    fc.assert(
      fc.property(thrown, fc.string({ minLength: 1, maxLength: 40 }), (err, what) => {
        const e = mapNatsError(err, what);
        assert.ok(e instanceof JetqError, `got ${String(e)}`);
        assert.ok(e.message.startsWith(what), e.message);
      }),
      RUNS,
    );
  });

  it("describes thrown values that String() cannot convert (found by the property above)", () => {
    for (const odd of [{ toString: 1 }, Object.create(null) as object, { [Symbol.toPrimitive]: () => { throw new Error("no"); } }]) {
      const e = mapNatsError(odd, "read");
      assert.ok(e instanceof JetqError);
      assert.equal(e.message, "read: [object Object]");
    }
  });

  it("maps the client's RequestError(\"connection closed\") to ConnectionError", () => {
    assert.ok(mapNatsError(new RequestError("connection closed"), "read") instanceof ConnectionError);
  });
});

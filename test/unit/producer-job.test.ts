import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { ConfigError, JobTooLargeError, ValidationError } from "../../src/errors.ts";
import { defineQueue } from "../../src/queue/define.ts";
import { checkHeader, checkId, encodeJob, jobHeaders } from "../../src/producer/job.ts";

const q = defineQueue({ name: "jobs" });

function notEncodable(data: unknown): ValidationError {
  try {
    encodeJob(q, data, true, undefined);
  } catch (err) {
    assert.ok(err instanceof ValidationError, String(err));
    return err;
  }
  assert.fail("expected a ValidationError");
}

describe("encodeJob", () => {
  it("encodes JSON and checks the schema, naming the fields", () => {
    assert.equal(encodeJob(q, { a: [1, "x"] }, true, undefined), '{"a":[1,"x"]}');
    const typed = defineQueue({ name: "typed", schema: z.object({ to: z.string() }) });
    assert.throws(() => encodeJob(typed, { to: 1 }, true, undefined), (e) => e instanceof ValidationError && /to: /.test(e.message));
    assert.equal(encodeJob(typed, { to: 1 }, false, undefined), '{"to":1}', "validate: false skips the schema");
  });

  it("says why a value is not JSON-encodable and keeps what was thrown as the cause", () => {
    const big = notEncodable({ n: 10n });
    assert.match(big.message, /not JSON-encodable: it contains a BigInt/);
    assert.ok(big.cause instanceof TypeError);

    const circular: Record<string, unknown> = {};
    circular.self = circular;
    assert.match(notEncodable(circular).message, /circular reference/);

    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    const tooDeep = notEncodable(deep);
    assert.match(tooDeep.message, /nested too deeply/);
    assert.ok(tooDeep.cause instanceof RangeError);

    const thrown = new Error("no serialising secrets");
    const t = notEncodable({ toJSON: () => { throw thrown; } });
    assert.match(t.message, /encoding it threw: no serialising secrets/);
    assert.equal(t.cause, thrown);

    assert.match(notEncodable(undefined).message, /it is undefined/);
    assert.match(notEncodable(() => 1).message, /it is a function/);
    assert.match(notEncodable({ toJSON: () => undefined }).message, /toJSON\(\) returned undefined/);

    const hostile = new Proxy({}, { getPrototypeOf: () => { throw new Error("trap"); } });
    const p = notEncodable({ toJSON: () => { throw hostile; } });
    assert.match(p.message, /not JSON-encodable/);
  });

  it("refuses a job above max_payload or not below maxBytes as JobTooLargeError, a ValidationError", () => {
    const payload = "x".repeat(2_000);
    assert.throws(
      () => encodeJob(q, payload, true, 2_048),
      (e) => e instanceof JobTooLargeError && e instanceof ValidationError && e.limitName === "max_payload" && e.size === 2_002 && /too large/.test(e.message),
    );
    const bounded = defineQueue({ name: "bounded", maxBytes: 1_000 });
    assert.equal(encodeJob(bounded, "x".repeat(997), true, 1_048_576).length, 999, "999 bytes fit below 1000");
    assert.throws(
      () => encodeJob(bounded, "x".repeat(998), true, 1_048_576),
      (e) => e instanceof JobTooLargeError && e.limitName === "maxBytes" && e.limit === 1_000 && /can never be stored/.test(e.message) && !/full/.test(e.message),
    );
    // Multi-byte text is measured in bytes, not characters.
    assert.throws(() => encodeJob(bounded, "é".repeat(499), true, undefined), JobTooLargeError);
  });
});

describe("jobHeaders", () => {
  it("sends no headers without an id or extra headers; Nats-Msg-Id with an id", () => {
    assert.equal(jobHeaders(undefined, undefined), undefined);
    assert.equal(jobHeaders("a-1", undefined)?.get("Nats-Msg-Id"), "a-1");
    const h = jobHeaders(undefined, { "X-Tenant": "acme", "X-Note": "tab\tand ünïcode" })!;
    assert.equal(h.get("X-Tenant"), "acme");
    assert.equal(h.get("X-Note"), "tab\tand ünïcode");
  });

  it("refuses bad names and values with a ValidationError naming the header, not the client's error", () => {
    for (const name of ["", "Bad Name", "Bad\r\nName", "colon:name", "nul\0name", "ünï"]) {
      assert.throws(() => jobHeaders(undefined, { [name]: "v" }), (e) => e instanceof ValidationError && e.issues[0]!.path[1] === name, JSON.stringify(name));
    }
    for (const value of ["a\0b", "a\r\nInjected: yes", "line\n", "bell\x07"]) {
      assert.throws(() => jobHeaders(undefined, { "X-Ok": value }), (e) => e instanceof ValidationError && /control character/.test(e.message), JSON.stringify(value));
    }
    assert.throws(() => checkHeader("Nats-Expected-Stream", "x"), ConfigError);
    assert.throws(() => checkHeader("jetq-reason", "x"), ConfigError);
    assert.throws(() => jobHeaders(undefined, "x=1" as never), ConfigError);
  });
});

describe("checkId", () => {
  it("takes 1-256 printable ASCII characters without spaces", () => {
    assert.equal(checkId("order-42"), "order-42");
    for (const bad of ["", "a b", "x".repeat(257), 42, "é"]) assert.throws(() => checkId(bad), ConfigError);
    assert.throws(() => checkId("a b", 3), /`id` \(item 3\)/);
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffDelay, resolveBackoff } from "../../src/queue/backoff.ts";
import { ConfigError } from "../../src/errors.ts";

describe("backoff", () => {
  it("grows exponentially and caps at maxMs without jitter", () => {
    const p = resolveBackoff({ initialMs: 100, maxMs: 1000, multiplier: 2, jitter: 0 });
    assert.deepEqual([1, 2, 3, 4, 5, 6].map((a) => backoffDelay(p, a)), [100, 200, 400, 800, 1000, 1000]);
  });

  it("keeps jittered delays within ±jitter of the base and never above maxMs", () => {
    const p = resolveBackoff({ initialMs: 1000, maxMs: 5000, multiplier: 2, jitter: 0.2 });
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const d2 = backoffDelay(p, 2, () => r);
      assert.ok(d2 >= 1600 && d2 <= 2400, `attempt 2 with random ${r}: ${d2}`);
      const d9 = backoffDelay(p, 9, () => r);
      assert.ok(d9 >= 4000 && d9 <= 5000, `capped attempt with random ${r}: ${d9}`);
    }
    assert.equal(backoffDelay(p, 1, () => 0), 800);
    assert.equal(backoffDelay(p, 1, () => 0.5), 1000);
  });

  it("stays a number for huge attempt counts, even with initialMs 0", () => {
    assert.equal(backoffDelay(resolveBackoff({ initialMs: 0, maxMs: 0, multiplier: 1.5, jitter: 0 }), 40_000), 0);
    assert.equal(backoffDelay(resolveBackoff({ initialMs: 10, maxMs: 500, multiplier: 2, jitter: 0.5 }), 1e6, () => 0.99), 500);
  });

  it("uses explicit delays in order and repeats the last", () => {
    const p = resolveBackoff([10, 20, 30]);
    assert.deepEqual([1, 2, 3, 4, 10].map((a) => backoffDelay(p, a)), [10, 20, 30, 30, 30]);
  });

  it("defaults to 1 s doubling up to 60 s with 20 % jitter", () => {
    assert.deepEqual(resolveBackoff(undefined), { kind: "exponential", initialMs: 1000, maxMs: 60_000, multiplier: 2, jitter: 0.2 });
  });

  it("rejects bad policies with a message naming the option", () => {
    assert.throws(() => resolveBackoff([]), ConfigError);
    assert.throws(() => resolveBackoff([10, -1]), /`backoff\[1\]`/);
    assert.throws(() => resolveBackoff({ jitter: 2 }), /`backoff.jitter`.*got 2/);
    assert.throws(() => resolveBackoff({ multiplier: 0.5 }), /`backoff.multiplier`/);
    assert.throws(() => resolveBackoff({ initialMs: 5000, maxMs: 100 }), /`backoff.maxMs`/);
    assert.throws(() => resolveBackoff({ initialMs: Number.NaN }), /`backoff.initialMs`/);
  });
});

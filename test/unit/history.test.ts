// Pure logic behind the dashboard's history and dead-letter triage: roll-ups to chart points
// (rates, gaps, downsampling), error-message grouping, and the stack kept in a dead letter.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { normalizeError } from "../../src/dashboard/jobs-view.ts";
import { decodeStack, encodeStack, MAX_STACK_CHARS } from "../../src/dlq/route.ts";
import { rangePoints, type Rollup } from "../../src/history/recorder.ts";

function rollup(minute: number, published: number, extra: Partial<Rollup> = {}): Rollup {
  const b = 1_700_000_000_000 - (1_700_000_000_000 % 60_000) + minute * 60_000;
  return { v: 1, queue: "q", b, bms: 60_000, t: b + 300, published, deadLettered: 0, stored: 0, pending: 0, inFlight: 0, oldestWaitingMs: 0, utilisation: 0, ...extra };
}

describe("history points", () => {
  it("computes rates between consecutive roll-ups and marks a missing bucket as a gap", () => {
    const pts = rangePoints([rollup(0, 0), rollup(1, 60), rollup(2, 180, { deadLettered: 6, stored: 54 }), rollup(5, 180, { deadLettered: 6, stored: 54 })]);
    assert.equal(pts.length, 3);
    assert.equal(pts[0]!.published, 1);
    assert.equal(pts[0]!.completed, 1);
    assert.equal(pts[1]!.published, 2);
    assert.equal(pts[1]!.failed, 0.1);
    assert.ok(Math.abs(pts[1]!.completed - 1) < 1e-9); // 120 published - 54 stored more - 6 dead = 60 in 60 s
    assert.deepEqual(pts.map((p) => p.gap), [false, false, true]);
  });

  it("skips an interval across a re-created stream instead of showing a negative rate", () => {
    const pts = rangePoints([rollup(0, 500), rollup(1, 10), rollup(2, 70)]);
    assert.equal(pts.length, 1);
    assert.equal(pts[0]!.published, 1);
  });

  it("averages 7 days of minutes down to the point budget, keeping gaps", () => {
    const rollups: Rollup[] = [];
    for (let i = 0; i < 7 * 1440; i++) if (i !== 5000) rollups.push(rollup(i, i * 120));
    const pts = rangePoints(rollups, 360);
    assert.ok(pts.length <= 360 && pts.length > 300, `${pts.length}`);
    assert.ok(pts.every((p) => Math.abs(p.published - 2) < 1e-6));
    assert.equal(pts.filter((p) => p.gap).length, 1);
  });
});

describe("dead-letter grouping", () => {
  it("folds numbers, quoted text, ids and addresses into placeholders", () => {
    assert.equal(normalizeError('user 17 not found in "tenant-17"'), normalizeError('user 4 not found in "tenant-4"'));
    assert.equal(normalizeError("timeout after 1002 ms"), "timeout after <n> ms");
    assert.equal(normalizeError("order 3f2504e0-4f89-11d3-9a0c-0305e82c3301 by bob@example.com at https://x.test/a?b=1"), "order <uuid> by <email> at <url>");
    assert.notEqual(normalizeError("card declined"), normalizeError("card expired"));
  });
});

describe("dead-letter stack", () => {
  it("keeps a stack on one header line and reads it back", () => {
    const err = new Error("boom \u001b[2J");
    const v = encodeStack(err.stack!);
    assert.doesNotMatch(v, /[\x00-\x1f\x7f]/);
    assert.equal(decodeStack(v), err.stack);
  });

  it("bounds a long stack and ignores a value that is not one", () => {
    const v = encodeStack("x".repeat(50_000));
    assert.equal(decodeStack(v)!.length, MAX_STACK_CHARS);
    assert.equal(decodeStack('bad"quote'), undefined);
    assert.equal(decodeStack(undefined), undefined);
  });
});

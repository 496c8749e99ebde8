import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionError, QueueFullError } from "../../src/errors.ts";
import { PublishWindow, type WindowLimits } from "../../src/producer/window.ts";

function windowOf(limits: Partial<WindowLimits> = {}) {
  const rejected: string[] = [];
  const blocked: number[] = [];
  const w = new PublishWindow("q", { maxInFlight: 2, overflow: "block", blockTimeoutMs: 1_000, maxBlocked: 2, ...limits }, {
    rejected: (r) => rejected.push(r),
    blocked: (ms) => blocked.push(ms),
  });
  return { w, rejected, blocked };
}

/** Whether `p` has settled (after the microtasks queued so far). */
async function state(p: Promise<unknown>): Promise<"pending" | "resolved" | "rejected"> {
  let s: "pending" | "resolved" | "rejected" = "pending";
  p.then(() => (s = "resolved"), () => (s = "rejected"));
  await new Promise((r) => setImmediate(r));
  return s;
}

describe("PublishWindow", () => {
  it("hands out maxInFlight slots, then makes callers wait in order; a freed slot goes to the first", async () => {
    const { w, blocked } = windowOf();
    assert.ok(w.tryTake());
    assert.ok(w.tryTake());
    assert.ok(!w.tryTake());
    const first = w.wait(undefined);
    const second = w.wait(undefined);
    assert.equal(w.waiting, 2);
    w.release();
    assert.equal(await state(first), "resolved");
    assert.equal(await state(second), "pending");
    assert.equal(w.taken, 2, "the slot passed to the waiter");
    w.release();
    assert.equal(await state(second), "resolved");
    w.release();
    w.release();
    assert.equal(w.taken, 0);
    assert.equal(blocked.length, 2, "each wait is measured");
  });

  it("never lets a new caller overtake one already waiting", async () => {
    const { w } = windowOf({ maxInFlight: 1 });
    assert.ok(w.tryTake());
    const waiting = w.wait(undefined);
    w.release(); // to the waiter
    assert.ok(!w.tryTake(), "the freed slot is the waiter's");
    assert.equal(await state(waiting), "resolved");
  });

  it("rejects at once with overflow reject, and beyond maxBlocked", async () => {
    const r = windowOf({ maxInFlight: 1, overflow: "reject" });
    r.w.tryTake();
    const err = await r.w.wait(undefined).catch((e: unknown) => e);
    assert.ok(err instanceof QueueFullError && err.reason === "window_full", String(err));
    assert.deepEqual(r.rejected, ["window_full"]);
    const b = windowOf({ maxInFlight: 1, maxBlocked: 1 });
    b.w.tryTake();
    void b.w.wait(undefined).catch(() => {});
    const over = await b.w.wait(undefined).catch((e: unknown) => e);
    assert.ok(over instanceof QueueFullError && /Too many publishes \(1\)/.test(over.message), String(over));
  });

  it("fails waiters past their deadline in order, and honours an abort signal", async () => {
    const { w, rejected } = windowOf({ maxInFlight: 1, blockTimeoutMs: 500 });
    w.tryTake();
    const ac = new AbortController();
    const aborted = w.wait(ac.signal);
    const timedOut = w.wait(undefined);
    ac.abort(new Error("caller gave up"));
    await assert.rejects(aborted, /caller gave up/);
    assert.equal(w.waiting, 1);
    w.expire(Date.now() + 100);
    assert.equal(await state(timedOut), "pending", "not yet due");
    w.expire(Date.now() + 600);
    const err = await timedOut.catch((e: unknown) => e);
    assert.ok(err instanceof QueueFullError && err.reason === "window_timeout", String(err));
    assert.deepEqual(rejected, ["window_timeout"]);
    const pre = new AbortController();
    pre.abort(new Error("already"));
    await assert.rejects(w.wait(pre.signal), /already/);
  });

  it("once closed, fails every waiter and every later take with the close's error", async () => {
    const { w } = windowOf({ maxInFlight: 1 });
    w.tryTake();
    const waiting = w.wait(undefined);
    const why = new ConnectionError("the NATS connection is closed");
    w.close(why);
    assert.equal(await waiting.catch((e: unknown) => e), why);
    assert.throws(() => w.tryTake(), (e) => e === why);
    assert.equal(await w.wait(undefined).catch((e: unknown) => e), why);
    w.release();
    assert.equal(w.taken, 0, "slots of settled publishes still come back");
  });
});

// Job state's pure parts: what a record means, the subject key, the result check, the progress throttle.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { ConfigError, defineQueue, ValidationError } from "../../src/index.ts";
import { infoOf, type StateRecord, stateKey } from "../../src/state/record.ts";
import { ACTIVE_AFTER_MS, checkResult, JobState, PROGRESS_EVERY_MS, type StateWriter } from "../../src/state/writer.ts";

const rec = (o: Partial<StateRecord>): StateRecord => ({
  id: "j",
  seq: 7,
  ev: "active",
  state: "active",
  attempt: 1,
  publishedAt: 1_000,
  leaseMs: 30_000,
  worker: "w",
  ...o,
});

describe("infoOf", () => {
  it("an active record is active while its lease lives, waiting once it lapsed", () => {
    assert.equal(infoOf(rec({ startedAt: 2_000 }), 10_000, 10_000 + 30_000).state, "active");
    const lapsed = infoOf(rec({ startedAt: 2_000, progress: 0.5 }), 10_000, 10_000 + 30_001);
    assert.equal(lapsed.state, "waiting");
    assert.equal(lapsed.progress, 0.5);
    assert.deepEqual(lapsed.startedAt, new Date(2_000));
  });
  it("keeps only the fields that belong to the state", () => {
    const done = infoOf(rec({ state: "completed", ev: "completed", result: { a: 1 }, error: { name: "E", message: "old" }, finishedAt: 3_000 }), 0, 1e12);
    assert.equal(done.state, "completed", "a final state never lapses");
    assert.deepEqual(done.result, { a: 1 });
    assert.equal(done.error, undefined);
    const dead = infoOf(rec({ state: "dead", ev: "dead", reason: "permanent", error: { name: "PermanentError", message: "gone" } }), 0, 0);
    assert.deepEqual(dead.deadLetter, { reason: "permanent" });
    assert.equal(dead.result, undefined);
    const retry = infoOf(rec({ state: "retrying", ev: "retrying", retryAt: 9_000, error: { name: "Error", message: "x" } }), 0, 0);
    assert.deepEqual(retry.retryAt, new Date(9_000));
  });
});

describe("stateKey", () => {
  it("is one subject token of fixed length for any id, and differs between ids", () => {
    for (const id of ["seq-1", "a.b.c", "with space", "*", ">", "ü".repeat(500)]) {
      const k = stateKey(id);
      assert.match(k, /^[A-Za-z0-9_-]{22}$/);
    }
    assert.notEqual(stateKey("a"), stateKey("b"));
    assert.equal(stateKey("a"), stateKey("a"));
  });
});

describe("checkResult", () => {
  it("passes anything without a schema, returns the schema's output, throws ValidationError naming the field", () => {
    assert.deepEqual(checkResult(undefined, { x: 1 }), { x: 1 });
    assert.equal(checkResult(z.string().transform((s) => s.length), "abc"), 3);
    assert.throws(() => checkResult(z.object({ url: z.string() }), { url: 1 }), (e: unknown) => e instanceof ValidationError && /resultSchema: url:/.test(e.message));
  });
});

describe("defineQueue results options", () => {
  it("validates keepMs and resultSchema, and reserves the _STATE suffix", () => {
    assert.equal(defineQueue({ name: "a" }).results, undefined);
    assert.deepEqual(defineQueue({ name: "a", results: { keepMs: 5_000 } }).results, { keepMs: 5_000 });
    assert.equal(defineQueue({ name: "a" }).names.stateStream, "JETQ_a_STATE");
    assert.throws(() => defineQueue({ name: "a", results: { keepMs: 10 } }), (e: unknown) => e instanceof ConfigError && /results.keepMs/.test(e.message));
    assert.throws(() => defineQueue({ name: "a", resultSchema: {} as never }), /resultSchema/);
    assert.throws(() => defineQueue({ name: "x_STATE" }), /_STATE/);
  });
});

describe("progress throttle", () => {
  it("writes at most once per 100 ms and always the last value", async (t) => {
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 1_000_000 });
    const writes: unknown[] = [];
    const w = {
      prefix: "p.",
      leaseMs: 1000,
      worker: "w",
      encode: (v: unknown) => JSON.stringify(v),
      fire: (_s: unknown, r: StateRecord) => writes.push(r.progress),
    } as unknown as StateWriter;
    const s = new JobState(w, { id: "j", seq: 1, attempt: 1 }, 0);
    s.begun(Date.now());
    for (let k = 1; k <= 50; k++) {
      s.progress(k);
      t.mock.timers.tick(10);
    }
    // 500 ms of calls every 10 ms: the first write 100 ms after the start, then one per 100 ms.
    assert.ok(writes.length <= 500 / PROGRESS_EVERY_MS + 1, `${writes.length} writes`);
    t.mock.timers.tick(PROGRESS_EVERY_MS);
    assert.equal(writes.at(-1), 50, "the last value is written");
    s.progress(51);
    s.flush();
    assert.equal(writes.at(-1), 51, "a held-back value goes out before a final write");
    s.close();
    s.progress(52);
    t.mock.timers.tick(1_000);
    assert.equal(writes.at(-1), 51, "nothing after close");
  });

  it("counts from when active was written: after a stalled event loop a progress write does not follow it at once", (t) => {
    const t0 = 1_000_000;
    t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: t0 });
    const writes: string[] = [];
    const w = {
      prefix: "p.",
      leaseMs: 1000,
      worker: "w",
      encode: (v: unknown) => JSON.stringify(v),
      fire: (_s: unknown, r: StateRecord) => writes.push(`${r.ev}@${Date.now() - t0}`),
    } as unknown as StateWriter;
    const s = new JobState(w, { id: "j", seq: 1, attempt: 1 }, 0);
    s.begun(Date.now());
    s.armActive(ACTIVE_AFTER_MS);
    s.progress(1);
    // The event loop stalls 200 ms: the active timer (due at 50) and the progress one (due at 100) are both late.
    t.mock.timers.setTime(t0 + 200);
    t.mock.timers.tick(0);
    assert.deepEqual(writes, ["active@200"], "active alone: a progress write now would replace it (one record per job) before any reader saw it");
    t.mock.timers.tick(PROGRESS_EVERY_MS - 1);
    assert.deepEqual(writes, ["active@200"]);
    t.mock.timers.tick(1);
    assert.deepEqual(writes, ["active@200", `progress@${200 + PROGRESS_EVERY_MS}`]);
    s.close();
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { JetqError, JobTimeoutError, PermanentError, RetryError, ConfigError, ValidationError } from "../../src/index.ts";
import {
  afterDead,
  afterFailure,
  afterHandBack,
  baseRecord,
  classify,
  decide,
  EMPTY_RECORD,
  isolatedStart,
  type LedgerRecord,
  safeError,
  type Settlement,
} from "../../src/consumer/decide.ts";
import { resolveBackoff } from "../../src/queue/backoff.ts";
import { parseRecord } from "../../src/consumer/ledger.ts";

const noJitter = resolveBackoff({ initialMs: 100, maxMs: 10_000, multiplier: 2, jitter: 0 });
const half = (): number => 0.5;

describe("decide: an attempt's end → ack, retry, dead letter or release", () => {
  // Every kind of settlement × every attempt position (first, middle, last, past the last) × maxAttempts 1..4.
  const errors: Array<[string, Error]> = [
    ["Error", new Error("boom")],
    ["PermanentError", new PermanentError("bad address")],
    ["PermanentError by name only (another copy of jetq)", Object.assign(new Error("x"), { name: "PermanentError" })],
    ["RetryError", new RetryError("429", { delayMs: 1234 })],
    ["JobTimeoutError", new JobTimeoutError("slow")],
  ];
  for (let maxAttempts = 1; maxAttempts <= 4; maxAttempts++) {
    for (let attempt = 1; attempt <= maxAttempts + 1; attempt++) {
      const ctx = { attempt, maxAttempts, backoff: noJitter, random: half };
      it(`attempt ${attempt} of ${maxAttempts}`, () => {
        assert.deepEqual(decide({ kind: "ok" }, ctx), { kind: "ack" });
        assert.deepEqual(decide({ kind: "released" }, ctx), { kind: "release" });
        for (const reason of ["decode", "validation"] as const) {
          const s: Settlement = { kind: "rejected", reason, error: new ValidationError("bad", []) };
          assert.deepEqual(decide(s, ctx), { kind: "dead", reason });
        }
        for (const [label, error] of errors) {
          const d = decide({ kind: "failed", error }, ctx);
          if (error.name === "PermanentError") assert.deepEqual(d, { kind: "dead", reason: "permanent" }, label);
          else if (attempt >= maxAttempts) assert.deepEqual(d, { kind: "dead", reason: "max_attempts" }, label);
          else if (error instanceof RetryError) assert.deepEqual(d, { kind: "retry", delayMs: 1234 }, label);
          else assert.deepEqual(d, { kind: "retry", delayMs: 100 * 2 ** (attempt - 1) }, label);
        }
      });
    }
  }

  it("passes attempt and error to a backoff function, and falls back to the default when it misbehaves", () => {
    const seen: Array<[number, string]> = [];
    const fn = resolveBackoff((attempt, error) => {
      seen.push([attempt, error.message]);
      return attempt * 7;
    });
    assert.deepEqual(decide({ kind: "failed", error: new Error("e1") }, { attempt: 2, maxAttempts: 5, backoff: fn }), { kind: "retry", delayMs: 14 });
    assert.deepEqual(seen, [[2, "e1"]]);
    for (const bad of [() => -1, () => Number.NaN, () => "10" as unknown as number, () => 8 * 24 * 3600 * 1000, () => { throw new Error("oops"); }]) {
      const d = decide({ kind: "failed", error: new Error("x") }, { attempt: 1, maxAttempts: 5, backoff: resolveBackoff(bad), random: half });
      assert.equal(d.kind, "retry");
      assert.equal((d as { delayMs: number }).delayMs, 1000, "the default policy's first delay");
      assert.ok((d as { warning?: Error }).warning instanceof ConfigError);
    }
  });

  it("RetryError validates its delay", () => {
    assert.throws(() => new RetryError("x", { delayMs: -1 }), ConfigError);
    assert.throws(() => new RetryError("x", { delayMs: Number.NaN }), ConfigError);
    assert.equal(new RetryError("x", { delayMs: 10.4 }).delayMs, 10);
  });
});

describe("classify: a delivery → run, run alone, or dead-letter as crashed", () => {
  it("never looks at a first delivery", () => {
    assert.deepEqual(classify(1, undefined, 2), { kind: "run", attempt: 1 });
    assert.deepEqual(classify(1, { failures: 3, crashes: 1, seen: 9, suspect: true }, 2), { kind: "run", attempt: 1 });
  });

  it("runs an explained redelivery normally, with attempt = failures + 1", () => {
    assert.deepEqual(classify(2, { failures: 1, crashes: 0, seen: 1 }, 2), { kind: "run", attempt: 2 });
    assert.deepEqual(classify(5, { failures: 2, crashes: 1, seen: 4 }, 2), { kind: "run", attempt: 3 });
  });

  it("isolates a delivery nobody recorded an outcome for, without charging a crash", () => {
    assert.deepEqual(classify(2, undefined, 2), { kind: "isolate", attempt: 1, crashes: 0 });
    assert.deepEqual(classify(4, { failures: 1, crashes: 0, seen: 2 }, 2), { kind: "isolate", attempt: 2, crashes: 0 });
    // A suspect handed back before it could run alone stays a suspect.
    assert.deepEqual(classify(3, { failures: 0, crashes: 1, seen: 2, suspect: true }, 3), { kind: "isolate", attempt: 1, crashes: 1 });
  });

  it("charges a crash only to a run that was alone, and dead-letters at maxCrashes", () => {
    assert.deepEqual(classify(3, { failures: 0, crashes: 0, seen: 1, isolated: 2, suspect: true }, 2), { kind: "isolate", attempt: 1, crashes: 1 });
    assert.deepEqual(classify(4, { failures: 0, crashes: 1, seen: 2, isolated: 3, suspect: true }, 2), { kind: "crashed", attempt: 1, crashes: 2 });
    assert.deepEqual(classify(3, { failures: 0, crashes: 0, seen: 1, isolated: 2, suspect: true }, 1), { kind: "crashed", attempt: 1, crashes: 1 });
  });

  it("drops a delivery older than its record (its worker stalled while another took the job)", () => {
    // Found by the SPIN model (model/README.md, F2): without this, a stale delivery charged a crash
    // to an isolated run that was still going and started a second one.
    assert.deepEqual(classify(3, { failures: 0, crashes: 0, seen: 3 }, 2), { kind: "stale", attempt: 1 });
    assert.deepEqual(classify(3, { failures: 1, crashes: 0, seen: 2, isolated: 4, suspect: true }, 2), { kind: "stale", attempt: 2 });
    assert.deepEqual(classify(5, { failures: 1, crashes: 0, seen: 2, isolated: 4, suspect: true }, 2), { kind: "isolate", attempt: 2, crashes: 1 });
  });

  it("finishes a dead letter an earlier delivery decided, whatever else the record says", () => {
    // Found by the SPIN model (F5): the dead-letter decision is recorded before the copy, so a
    // crash between the copy and the removal never runs the handler again.
    const dead = afterDead({ failures: 1, crashes: 0, seen: 1 }, 2, "w", "max_attempts", 2, 0, new Error("last"));
    assert.deepEqual(dead, { failures: 2, crashes: 0, seen: 2, worker: "w", error: "last", dead: { reason: "max_attempts", attempts: 2 } });
    assert.deepEqual(classify(3, dead, 2), { kind: "finish-dead", attempt: 2, reason: "max_attempts", crashes: 0 });
    assert.deepEqual(parseRecord(JSON.parse(JSON.stringify(dead))), dead);
    const crashed = afterDead({ failures: 0, crashes: 1, seen: 3, isolated: 4, suspect: true }, 5, "w", "crashed", 1, 2, new Error("c"));
    assert.equal(crashed.isolated, undefined);
    assert.deepEqual(classify(6, crashed, 2), { kind: "finish-dead", attempt: 1, reason: "crashed", crashes: 2 });
  });

  it("follows the protocol through every history of up to 6 deliveries (outcomes written as the worker writes them)", () => {
    // Each delivery ends in one of: success, failure (recorded), hand-back (recorded), or a crash
    // (nothing recorded). Replays every sequence and checks the invariants the design promises.
    type Step = "ok" | "fail" | "handback" | "crash";
    const steps: Step[] = ["ok", "fail", "handback", "crash"];
    const maxCrashes = 2;
    const maxAttempts = 3;
    let histories = 0;
    const walk = (record: LedgerRecord | undefined, deliveries: number, failures: number, aloneCrashes: number, path: string[]): void => {
      const d = deliveries + 1;
      const c = classify(d, record, maxCrashes);
      histories++;
      assert.equal(c.attempt, failures + 1, `attempt = failures + 1 after ${path.join(",")}`);
      if (c.kind === "crashed") {
        assert.equal(c.crashes, aloneCrashes, `crash count after ${path.join(",")}`);
        assert.ok(aloneCrashes >= maxCrashes);
        return;
      }
      if (d > 6) return;
      let rec = baseRecord(record, c);
      if (c.kind === "isolate") rec = isolatedStart(rec, d, "w");
      for (const step of steps) {
        if (step === "ok") continue; // acked: no more deliveries
        if (step === "fail") {
          if (failures + 1 >= maxAttempts) continue; // dead-lettered as max_attempts
          walk(afterFailure(rec, d, "w", new Error("x")), d, failures + 1, aloneCrashes, [...path, `${c.kind}:fail`]);
        } else if (step === "handback") {
          walk(afterHandBack(rec, d, "w"), d, failures, aloneCrashes, [...path, `${c.kind}:handback`]);
        } else {
          walk(rec, d, failures, aloneCrashes + (c.kind === "isolate" ? 1 : 0), [...path, `${c.kind}:crash`]);
        }
      }
    };
    walk(undefined, 0, 0, 0, []);
    assert.ok(histories > 200, `${histories} histories`);
  });

  it("reads stored records leniently", () => {
    assert.deepEqual(parseRecord({ failures: 2, crashes: 1, seen: 3, isolated: 4, suspect: true, worker: "w", extra: 1 }), {
      failures: 2, crashes: 1, seen: 3, isolated: 4, suspect: true, worker: "w",
    });
    assert.deepEqual(parseRecord({ failures: -1, crashes: "2", seen: 1.5 }), EMPTY_RECORD);
    assert.equal(parseRecord(null), undefined);
    assert.equal(parseRecord("x"), undefined);
  });
});

describe("safeError: whatever a handler throws becomes a readable Error", () => {
  it("keeps ordinary errors and describes other values", () => {
    const e = new PermanentError("x");
    assert.equal(safeError(e), e);
    assert.match(safeError("text").message, /non-Error value: "text"/);
    assert.match(safeError(42).message, /non-Error value: 42/);
    assert.match(safeError(undefined).message, /non-Error value: undefined/);
    assert.match(safeError(Object.create(null)).message, /non-Error value: \{\}/);
    assert.match(safeError(10n).message, /10/);
  });

  it("survives values that throw when inspected", () => {
    const badName = new Error("m");
    Object.defineProperty(badName, "name", { get() { throw new Error("no name for you"); } });
    assert.ok(safeError(badName) instanceof JetqError);
    const proxy = new Proxy({}, { getPrototypeOf() { throw new Error("trap"); }, get() { throw new Error("trap"); }, ownKeys() { throw new Error("trap"); } });
    const p = safeError(proxy);
    assert.ok(p instanceof JetqError);
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    assert.match(safeError(cyclic).message, /object Object/);
    const weird = { toString: 1, toJSON() { throw new Error("nope"); } };
    assert.ok(safeError(weird) instanceof JetqError);
  });
});

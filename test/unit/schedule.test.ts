// Pure logic of scheduling: tick computation through croner (time zones, DST), everyMs
// alignment, startAt/endAt, missed-tick spans, the checks of delayMs/runAt and specs, and the
// mover's arithmetic (stored time, nak delays, its due-time heap).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConfigError } from "../../src/index.ts";
import { resolveDue } from "../../src/schedule/held.ts";
import { DueHeap } from "../../src/schedule/due-heap.ts";
import { nakDelay, storedMs } from "../../src/schedule/mover.ts";
import { checkIdTemplate, cronFor, resolveSpec, scheduleOf, tickJobId, Ticks } from "../../src/schedule/spec.ts";

const t = (iso: string): number => Date.parse(iso);
const ticks = (spec: object): Ticks => new Ticks(resolveSpec(spec));

describe("cron ticks in a time zone", () => {
  it("03:00 Europe/Berlin keeps its wall-clock time across the end of summer time (UTC 01:00 before, 02:00 after)", () => {
    const s = ticks({ cron: "0 3 * * *", tz: "Europe/Berlin" });
    const a = s.after(t("2026-10-24T12:00:00Z"))!;
    const b = s.after(a)!;
    const c = s.after(b)!;
    assert.deepEqual([a, b, c].map((x) => new Date(x).toISOString()), ["2026-10-25T02:00:00.000Z", "2026-10-26T02:00:00.000Z", "2026-10-27T02:00:00.000Z"]);
    const before = s.after(t("2026-10-23T12:00:00Z"))!;
    assert.equal(new Date(before).toISOString(), "2026-10-24T01:00:00.000Z", "CEST (UTC+2) the day before");
  });

  it("02:30 Europe/Berlin on the day summer time starts (02:00-03:00 does not exist) fires once, not zero or twice", () => {
    const s = ticks({ cron: "30 2 * * *", tz: "Europe/Berlin" });
    const from = t("2026-03-28T12:00:00Z");
    const a = s.after(from)!;
    const b = s.after(a)!;
    // One tick on 29 March (between the 28th's and the 30th's), each a day apart at most + 1 h.
    assert.ok(a > from && a < t("2026-03-29T12:00:00Z"), new Date(a).toISOString());
    assert.equal(new Date(b).toISOString(), "2026-03-30T00:30:00.000Z");
  });

  it("a UTC cron without tz, and the tick id is the ISO time", () => {
    const s = ticks({ cron: "*/15 * * * *" });
    const a = s.after(t("2026-01-01T00:07:00Z"))!;
    assert.equal(tickJobId("report", a), "sched:report:2026-01-01T00:15:00.000Z");
  });
});

describe("croner instances", () => {
  it("are shared per expression and time zone and kept for the 64 most recently used only (croner takes ~0.7 ms to build one)", () => {
    const a = cronFor("0 3 * * *", "Europe/Berlin");
    assert.equal(cronFor("0 3 * * *", "Europe/Berlin"), a, "reused");
    assert.notEqual(cronFor("0 3 * * *", undefined), a, "another zone is another cron");
    for (let i = 0; i < 64; i++) cronFor(`${i % 60} ${1 + Math.floor(i / 60)} * * *`, "UTC");
    assert.notEqual(cronFor("0 3 * * *", "Europe/Berlin"), a, "evicted after 64 others");
    const t = ticks({ cron: "0 3 * * *", tz: "Europe/Berlin" });
    for (let i = 0; i < 64; i++) cronFor(`${i % 60} ${3 + Math.floor(i / 60)} * * *`, "UTC");
    assert.equal(new Date(t.after(Date.parse("2026-06-01T00:00:00Z"))!).toISOString(), "2026-06-01T01:00:00.000Z", "a Ticks whose cron was evicted builds it again");
  });

  it("share one all-years table when the pattern names no years, and keep their own when it does (a 7-field cron still honours its year)", () => {
    const yearsOf = (c: object): unknown => (c as { _states: { pattern: { year: unknown } } })._states.pattern.year;
    const a = cronFor("7 4 * * *", "UTC");
    const b = cronFor("8 5 * * *", "Europe/Berlin");
    assert.equal(yearsOf(a), yearsOf(b), "one table for both");
    assert.equal(new Date(a.nextRun(new Date("2026-03-01T05:00:00Z"))!.getTime()).toISOString(), "2026-03-02T04:07:00.000Z");
    const y = cronFor("0 0 12 1 1 * 2029", "UTC");
    assert.notEqual(yearsOf(y), yearsOf(a), "a pattern with years keeps its own table");
    assert.equal(new Date(y.nextRun(new Date("2026-03-01T00:00:00Z"))!.getTime()).toISOString(), "2029-01-01T12:00:00.000Z");
    assert.equal(new Date(cronFor("7 4 * * *", "UTC").nextRun(new Date("2028-12-31T23:00:00Z"))!.getTime()).toISOString(), "2029-01-01T04:07:00.000Z", "the shared table was not changed");
  });
});

describe("everyMs ticks", () => {
  it("fall on multiples of everyMs since the epoch, or since startAt", () => {
    assert.equal(ticks({ everyMs: 1000 }).after(t("2026-01-01T00:00:00.250Z")), t("2026-01-01T00:00:01Z"));
    assert.equal(ticks({ everyMs: 1000 }).after(t("2026-01-01T00:00:01Z")), t("2026-01-01T00:00:02Z"), "strictly after");
    const s = ticks({ everyMs: 1000, startAt: t("2026-01-01T00:00:00.300Z") });
    assert.equal(s.after(0), t("2026-01-01T00:00:00.300Z"), "the first tick is startAt itself");
    assert.equal(s.after(t("2026-01-01T00:00:00.300Z")), t("2026-01-01T00:00:01.300Z"));
  });

  it("stop after endAt", () => {
    const s = ticks({ everyMs: 1000, endAt: t("2026-01-01T00:00:02Z") });
    assert.equal(s.after(t("2026-01-01T00:00:01Z")), t("2026-01-01T00:00:02Z"), "endAt itself is a tick");
    assert.equal(s.after(t("2026-01-01T00:00:02Z")), undefined);
  });

  it("latestDue: the last tick of a missed span and whether it covered several", () => {
    const s = ticks({ everyMs: 1000 });
    assert.deepEqual(s.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:05.500Z")), { tick: t("2026-01-01T00:00:05Z"), several: true });
    assert.deepEqual(s.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:01Z")), { tick: t("2026-01-01T00:00:01Z"), several: false }, "due exactly now");
    assert.equal(s.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:00.900Z")), undefined);
    const c = ticks({ cron: "* * * * *" });
    assert.deepEqual(c.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:10:30Z")), { tick: t("2026-01-01T00:10:00Z"), several: true });
    assert.deepEqual(c.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:01:00Z")), { tick: t("2026-01-01T00:01:00Z"), several: false }, "a cron tick due exactly now");
    assert.deepEqual(c.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:01:59.999Z")), { tick: t("2026-01-01T00:01:00Z"), several: false }, "not the tick a millisecond later");
    const e = ticks({ everyMs: 1000, endAt: t("2026-01-01T00:00:03Z") });
    assert.deepEqual(e.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:09Z")), { tick: t("2026-01-01T00:00:03Z"), several: true });
    const ce = ticks({ cron: "* * * * *", endAt: t("2026-01-01T00:03:30Z") });
    assert.deepEqual(ce.latestDue(t("2026-01-01T00:00:00Z"), t("2026-01-01T01:00:00Z")), { tick: t("2026-01-01T00:03:00Z"), several: true }, "cron: not past endAt");
  });

  it("latestDue costs the same however long the gap: a minutely cron in Berlin missed for a year", () => {
    const c = ticks({ cron: "* * * * *", tz: "Europe/Berlin" });
    const started = performance.now();
    assert.deepEqual(c.latestDue(t("2025-01-01T00:00:00Z"), t("2026-01-01T00:00:30Z")), { tick: t("2026-01-01T00:00:00Z"), several: true });
    assert.ok(performance.now() - started < 1000, "no walk through half a million ticks");
  });
});

describe("checks", () => {
  it("a spec names the field it rejects", () => {
    const bad: Array<[unknown, RegExp]> = [
      [{}, /exactly one of `cron` and `everyMs`/],
      [{ cron: "* * * * *", everyMs: 1000 }, /exactly one of/],
      [{ cron: "not a cron" }, /`cron`/],
      [{ cron: "* * * * *", tz: "Mars/Olympus" }, /`tz`/],
      [{ everyMs: 10 }, /`everyMs`/],
      [{ everyMs: 1000, tz: "UTC" }, /`tz` applies to `cron` only/],
      [{ everyMs: 1000, limit: 0 }, /`limit`/],
      [{ everyMs: 1000, missed: "all" }, /`missed`/],
      [{ everyMs: 1000, startAt: 5000, endAt: 1000 }, /`endAt` not to be before `startAt`/],
      [{ everyMs: 1000, startAt: new Date("x") }, /`startAt`/],
    ];
    for (const [spec, re] of bad) assert.throws(() => resolveSpec(spec), (e: Error) => e instanceof ConfigError && re.test(e.message), JSON.stringify(spec));
    assert.equal(resolveSpec({ everyMs: 1000 }).missed, "once", "missed ticks: one catch-up job by default");
  });

  it("delayMs / runAt: 0 or the past means at once; both, negative or invalid values are refused", () => {
    const now = 1_000_000;
    assert.equal(resolveDue(0, undefined, now), undefined);
    assert.equal(resolveDue(undefined, now - 1, now), undefined);
    assert.deepEqual(resolveDue(500, undefined, now), { delayMs: 500 });
    assert.deepEqual(resolveDue(undefined, new Date(now + 10), now), { runAt: now + 10 });
    assert.throws(() => resolveDue(-1, undefined, now), /`delayMs`/);
    assert.throws(() => resolveDue(undefined, "tomorrow", now), /`runAt`/);
    assert.throws(() => resolveDue(1, 2, now), /either `delayMs` or `runAt`/);
  });

  it("an id template puts the name and the tick's ISO time in place; it must contain {tick} and make valid ids", () => {
    const tick = t("2026-01-01T03:00:00Z");
    assert.equal(tickJobId("nightly", tick), "sched:nightly:2026-01-01T03:00:00.000Z");
    assert.equal(tickJobId("nightly", tick, "{name}/{tick}/{name}"), "nightly/2026-01-01T03:00:00.000Z/nightly");
    assert.equal(checkIdTemplate("report-{tick}", "n"), "report-{tick}");
    assert.throws(() => checkIdTemplate("report-{name}", "n"), (e: Error) => e instanceof ConfigError && /`id`.*\{tick\}/.test(e.message));
    assert.throws(() => checkIdTemplate(42, "n"), /`id`/);
    assert.throws(() => checkIdTemplate(`${"x".repeat(233)}{tick}`, "n"), /1-256 printable ASCII/, "233 + 24 characters is one too many");
    assert.equal(checkIdTemplate(`${"x".repeat(232)}{tick}`, "n").length, 238);
  });

  it("job.schedule is read from the tick's headers", () => {
    const h = new Map([["Jetq-Schedule", "nightly"], ["Jetq-Tick", "2026-01-01T03:00:00.000Z"]]);
    const get = (k: string): string => h.get(k) ?? "";
    assert.deepEqual(scheduleOf({ get }), { name: "nightly", tick: new Date("2026-01-01T03:00:00.000Z") });
    assert.equal(scheduleOf({ get: () => "" }), undefined);
  });
});

describe("the mover's arithmetic", () => {
  it("storedMs reads the stored time from an ack subject's digits, floored to ms, in both subject forms", () => {
    // 1733150000123.999999 ms: as a double the nanoseconds round up into the next millisecond.
    const ts = "1733150000123999999";
    assert.equal(Math.floor(Number(ts) / 1e6), 1733150000124, "the double path rounds up (why the digits are read)");
    assert.equal(storedMs(`$JS.ACK.S.C.1.7.7.${ts}.0`), 1733150000123);
    assert.equal(storedMs(`$JS.ACK.dom.hash.S.C.2.7.9.${ts}.3`), 1733150000123);
    assert.equal(storedMs(`$JS.ACK.dom.hash.S.C.2.7.9.${ts}.3.tok`), 1733150000123);
    assert.ok(Number.isNaN(storedMs("_INBOX.abc.1")));
    assert.ok(Number.isNaN(storedMs("$JS.ACK.S.C.1.7.7.17x3150000123999999.0")));
  });

  it("nakDelay asks for a job back on the grid, half a second early, never after it is due", () => {
    for (const now of [1_000_000, 1_000_037, 1_000_099]) {
      for (const wait of [1_501, 2_000, 2_345, 60_000, 3_600_000]) {
        const d = nakDelay(wait, now);
        const back = now + d;
        assert.equal(back % 100, 0, `on the 100 ms grid (now ${now}, wait ${wait})`);
        assert.ok(back <= now + wait - 500 && back > now + wait - 600, `0.5-0.6 s early (now ${now}, wait ${wait}: back at ${back})`);
      }
    }
    // Too close to aim early (only when no more can be kept locally): exactly when due.
    assert.equal(nakDelay(300, 1_000_050), 300);
    assert.equal(nakDelay(400 * 86_400_000, 0), 86_400_000, "at most a day per nak");
  });

  it("DueHeap pops in due order, reuses its arrays and drains what is left", () => {
    const h = new DueHeap<number>();
    const dues = Array.from({ length: 500 }, (_, i) => (i * 7919) % 1009);
    for (const d of dues) h.push(d, d);
    assert.equal(h.size, 500);
    assert.equal(h.earliest, Math.min(...dues));
    const out: number[] = [];
    for (let i = 0; i < 250; i++) out.push(h.pop()!);
    assert.deepEqual(out, dues.slice().sort((a, b) => a - b).slice(0, 250));
    const rest: number[] = [];
    h.drain((item, due) => {
      assert.equal(item, due);
      rest.push(item);
    });
    assert.deepEqual(rest.sort((a, b) => a - b), dues.slice().sort((a, b) => a - b).slice(250));
    assert.equal(h.size, 0);
    assert.equal(h.pop(), undefined);
    assert.equal(h.earliest, Infinity);
  });
});

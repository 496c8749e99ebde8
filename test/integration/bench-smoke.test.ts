// The benchmark harness (bench/) runs end to end on a tiny workload: jetq and the raw client only,
// one round, and its result has the shape BENCHMARKS.md and the chart are built from.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { presetOptions, runBench } from "../../bench/harness.ts";
import { floorRatios, markdownReport, ratioTable, svgChart } from "../../bench/report.ts";

describe("bench harness (smoke)", () => {
  // Bounded by the test's timeout, not by an assertion on wall-clock time: on a shared 2-core
  // machine the same run took 20 s alone and 45-80 s beside other suites.
  it("measures publish, drain, latency and memory on a few hundred jobs and reports them", { timeout: 180_000 }, async () => {
    const lines: string[] = [];
    const started = Date.now();
    const res = await runBench({ ...presetOptions("smoke"), log: (l) => lines.push(l) });
    console.log(`# bench smoke run: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    assert.equal(res.schema, 1);
    assert.equal(res.mode, "smoke");
    assert.ok(res.machine.cores >= 1 && /^v\d+/.test(res.machine.node), JSON.stringify(res.machine));
    assert.match(res.machine.natsServer, /\d+\.\d+|external/);

    const row = (scenario: string, contender: string, group: RegExp) => res.rows.find((r) => r.scenario === scenario && r.contender === contender && group.test(r.group));
    for (const [scenario, contender, group] of [
      ["publish", "jetq.publishMany", /no ids/],
      ["publish", "raw.async", /no ids/],
      ["publish", "jetq.publishMany", /per-job ids/],
      ["drain", "jetq", /1 worker process/],
      ["drain", "raw.ack", /1 worker process/],
    ] as const) {
      const r = row(scenario, contender, group);
      assert.ok(r, `missing ${scenario} row for ${contender} (${group})`);
      assert.equal(r.values.length, 1, "one round");
      assert.ok(r.median > 0 && Number.isFinite(r.median), `${contender}: ${r.median}`);
      assert.ok(r.min <= r.median && r.median <= r.max);
    }
    for (const r of res.rows.filter((x) => x.scenario === "publish")) {
      assert.equal(r.runs[0]!.stored, res.config.publishJobs, `${r.contender}: every publish stored once`);
    }
    for (const r of res.rows.filter((x) => x.scenario === "drain")) {
      assert.equal(r.runs[0]!.verified, true, `${r.contender}: the stream ended empty`);
    }
    assert.ok(!res.rows.some((r) => r.system === "bullmq" || r.system === "pgboss"), "smoke runs jetq and raw only");

    for (const c of ["jetq", "raw"] as const) {
      const l = res.latency.find((x) => x.contender === c && x.rate === 1000);
      assert.ok(l, `latency row for ${c}`);
      assert.ok(l.start.p50 > 0 && l.start.p50 <= l.start.p99 && l.start.p99 <= l.start.max, JSON.stringify(l.start));
      assert.ok(l.ack.p50 >= l.start.p50 * 0.5, "ack comes after handler start");
      assert.equal(l.keptUp.length, 1);
    }

    const drains = res.memory.workerDrain as Record<string, { peakRssMiB: number }>;
    assert.deepEqual(Object.keys(drains).sort(), ["200", "400"]);
    for (const d of Object.values(drains)) assert.ok(d.peakRssMiB > 10 && d.peakRssMiB < 4096, String(d.peakRssMiB));
    const stall = res.memory.producerStall as { phases?: Record<string, { maxRssMiB: number }>; skipped?: string };
    if (!process.env.NATS_URL) assert.ok(stall.phases?.["server stopped"], JSON.stringify(stall));

    const targets = res.ratios.map((r) => r.target);
    assert.ok(targets.some((t) => t.startsWith("publishMany vs the fastest raw PublishAsync-style loop")), targets.join("; "));
    assert.ok(targets.some((t) => t.startsWith("drain ack()")), targets.join("; "));
    assert.ok(targets.some((t) => t.startsWith("e2e p99")), targets.join("; "));
    for (const r of res.ratios) assert.ok(Number.isFinite(r.value) && typeof r.met === "boolean", JSON.stringify(r));

    assert.doesNotThrow(() => JSON.parse(JSON.stringify(res)));
    assert.match(ratioTable(res), /publishMany vs the fastest raw/);
    const md = markdownReport(res, "chart.svg");
    assert.match(md, /## Machine/);
    assert.match(md, /fsync/);
    const svg = svgChart(res);
    assert.match(svg, /^<svg [^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    assert.ok((svg.match(/<rect /g) ?? []).length >= 5, "bars drawn");
  });

  it("measures delayed jobs, an idle worker beside schedules and one beside held jobs (scenario schedule)", { timeout: 180_000 }, async () => {
    const lines: string[] = [];
    const res = await runBench({ ...presetOptions("smoke"), scenarios: ["schedule"], log: (l) => lines.push(l) });
    const row = (group: RegExp, contender: string) => res.rows.find((r) => r.scenario === "schedule" && group.test(r.group) && r.contender === contender);
    const publish = row(/^delayed: publish 300 jobs/, "jetq.publishMany");
    assert.ok(publish && publish.median > 0, lines.join("\n"));
    for (const q of ["p50", "p99", "max"]) {
      const r = row(new RegExp(`^delayed: lateness ${q}`), "jetq");
      assert.ok(r, `lateness ${q}: every delayed job ran\n${lines.join("\n")}`);
      assert.ok(r.median >= 0 && Number.isFinite(r.median), `lateness ${q} ${r.median}: none started before it was due`);
    }
    const idle = row(/^idle worker/, "jetq, 20 schedules");
    assert.ok(idle && idle.median >= 0 && Number.isFinite(idle.median), lines.join("\n"));
    const held = row(/^worker peak RSS/, "jetq, 300 delayed jobs held");
    assert.ok(held && held.runs[0]!.allHandedToMover === true, "the mover was handed every held job");
    assert.ok(row(/^worker peak RSS/, "jetq, nothing held"));
    const targets = res.ratios.map((r) => r.target);
    assert.ok(targets.some((t) => t.startsWith("CPU of an idle worker: 20 schedules vs none")), targets.join("; "));
    assert.ok(targets.some((t) => t.startsWith("worker peak RSS with 300 delayed jobs held")), targets.join("; "));
    assert.match(markdownReport(res, "chart.svg"), /## Delayed and repeatable jobs[\s\S]*\| delayed: publish 300 jobs/);
  });

  it("measures the raw floors of the results and priority targets and reports them beside jetq's ratios (scenarios results, flow)", { timeout: 180_000 }, async () => {
    const lines: string[] = [];
    const res = await runBench({
      ...presetOptions("smoke"),
      scenarios: ["results", "flow"],
      contenders: ["off", "on", "raw-off", "raw-on", "raw-on-batch", "jetq", "raw"],
      log: (l) => lines.push(l),
    });
    const log = lines.join("\n");
    const drain = (scenario: string, contender: string) => res.rows.find((r) => r.scenario === scenario && r.unit === "jobs/s" && r.contender === contender);
    for (const c of ["jetq results off", "jetq results on", "raw results off", "raw results on", "raw results on-batch"]) {
      const r = drain("results", c);
      assert.ok(r && r.median > 0 && Number.isFinite(r.median), `${c}\n${log}`);
      assert.equal(r.runs[0]!.drained, r.runs[0]!.jobs, `${c}: every job drained`);
    }
    // The raw floor stores what jetq stores: one record per job, of the same size in the stream.
    const jetqOn = drain("results", "jetq results on")!.runs[0]!;
    for (const c of ["raw results on", "raw results on-batch"]) {
      const run = drain("results", c)!.runs[0]!;
      assert.equal(run.storedRecords, run.jobs, `${c}: one record per job`);
      assert.equal(run.failedRecords, 0, c);
      assert.equal(jetqOn.storedRecords, jetqOn.jobs);
      assert.ok(Math.abs((run.storedBytesPerRecord as number) - (jetqOn.storedBytesPerRecord as number)) <= 2, `${c}: ${String(run.storedBytesPerRecord)} B per record against jetq's ${String(jetqOn.storedBytesPerRecord)}`);
    }
    assert.equal(drain("results", "raw results off")!.runs[0]!.storedRecords, undefined, "ack only: no state stream");
    for (const c of ["jetq single level", "jetq 3 priority levels", "raw single level", "raw 3 priority levels"]) assert.ok(drain("flow", c), `${c}\n${log}`);

    const floors = floorRatios(res);
    assert.deepEqual(
      floors.map((f) => f.target.replace(/ \(.*\)$/, "")),
      ["drain with results vs without", "drain with results vs without, floor confirming a turn's records by one PubAck", "drain with 3 priority levels vs a single level"],
    );
    const byName = (n: string) => res.rows.find((r) => r.contender === n)!.median;
    const [rec, , prio] = floors;
    assert.ok(Math.abs(rec!.floor - byName("raw results on") / byName("raw results off")) < 1e-9);
    assert.ok(Math.abs(rec!.jetq - byName("jetq results on") / byName("jetq results off")) < 1e-9);
    assert.ok(Math.abs(prio!.floor - byName("raw 3 priority levels") / byName("raw single level")) < 1e-9);
    assert.ok(Math.abs(prio!.jetq - byName("jetq 3 priority levels") / byName("jetq single level")) < 1e-9);
    assert.equal(rec!.goal, 0.7);
    assert.equal(prio!.goal, 0.9);

    const table = ratioTable(res);
    // The existing target row stays, and the floors follow it.
    assert.match(table, /^drain with results vs without \(results .*\)\s+\d\.\d\d  >= 0\.7/m);
    assert.match(table, /server floors[\s\S]*drain with results vs without[\s\S]*floor: raw consume\(\)[\s\S]*drain with 3 priority levels vs a single level\s+\d\.\d\d  >= 0\.9\s+\d\.\d\d  (yes|NO)/);
    // nats-server CPU per job beside the ratios, where the bench started the server (it knows its pid).
    if (!process.env.NATS_URL) assert.match(table, /nats-server CPU, with \/ without: jetq \d+ \/ \d+, raw \d+ \/ \d+ ms per 1k jobs/);
    const md = markdownReport(res, "chart.svg");
    assert.match(md, /\*\*Server floors\.\*\*[\s\S]*\| drain with 3 priority levels vs a single level \| \d\.\d\d \| >= 0\.9 \| \d\.\d\d \| (yes|no) \|/);
    assert.match(md, /\| raw floor: a record per job, ack after its PubAck \|/);
    assert.match(md, /raw floor, 3 levels \/ single level: \d\.\d\d×/);
  });
});

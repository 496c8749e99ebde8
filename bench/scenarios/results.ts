// The "results" scenario: what keeping job state (`defineQueue({ results })`) costs a draining
// worker, against the same drain without it in the same run (issue 19's target: >= 0.7x), with an
// events() reader following every change, and whether an unused feature (job.progress() on a
// queue without results) costs anything: messages sent per job, beside throughput and CPU.
import { benchQueue } from "../contenders/nats.ts";
import { processCpuSeconds } from "../lib/servers.ts";
import { Child, fmt, only, record, rotate, uniq, withNats, type Ctx, type Row } from "../harness.ts";
import type { ResultsVariant } from "./results-child.ts";

export async function scenarioResults(ctx: Ctx): Promise<void> {
  const { o } = ctx;
  // Quick mode (<= 20 s): the 0.7x pair with its raw floor, the unused-feature check and jetq's
  // round trip only. The raw pair (raw-off, raw-on) runs in the same rounds, order rotated with the rest.
  const full = o.mode === "full";
  const variants: ResultsVariant[] = full ? ["off", "on", "raw-off", "raw-on", "raw-on-batch", "off-progress", "on-events", "off-1ms", "on-1ms"] : ["off", "on", "raw-off", "raw-on", "raw-on-batch", "off-progress"];
  const jobs = full ? 15_000 : o.mode === "smoke" ? 600 : 5_000;
  const rttMs = full ? 5_000 : 1_500;
  const rtt = only(o, ["rtt-jetq", ...(ctx.redis && full ? ["rtt-bullmq"] : [])]);
  await withNats(async (nats, _nc, jsm) => {
    for (let round = 0; round < o.rounds; round++) {
      for (const variant of rotate(only(o, variants), round)) {
        const name = uniq("res");
        try {
          const child = new Child({ kind: "results", variant, endpoints: { nats: nats.servers }, queue: name, jobs, concurrency: o.concurrency }, `results-${variant}-r${round}`, o.profileDir);
          await child.ready(60_000);
          const cpu0 = processCpuSeconds(nats.pid);
          child.tell({ type: "go" });
          const r = await child.result(180_000);
          const cpu1 = processCpuSeconds(nats.pid);
          await child.end();
          const serverCpuSec = cpu0 !== undefined && cpu1 !== undefined ? cpu1 - cpu0 : undefined;
          const run = { ...r, serverCpuSec, round };
          const group = `results (concurrency ${o.concurrency}, ${fmt(jobs)} jobs)`;
          const contender = variant.startsWith("raw-") ? `raw results ${variant.slice(4)}` : `jetq results ${variant}`;
          record(ctx, "results", `${group}: drain`, contender, "jobs/s", jobs / (r.drainSeconds as number), run);
          record(ctx, "results", `${group}: messages sent per job`, contender, "messages/job", r.outMsgsPerJob as number, run, "lower");
          record(ctx, "results", `${group}: client CPU`, contender, "CPU ms per 1k jobs", ((r.drainCpuSec as number) * 1e6) / jobs, run, "lower");
          if (serverCpuSec !== undefined) record(ctx, "results", `${group}: server CPU`, contender, "CPU ms per 1k jobs", (serverCpuSec * 1e6) / jobs, run, "lower");
          o.log(
            `  results ${variant.padEnd(12)} drain ${fmt(jobs / (r.drainSeconds as number))} jobs/s, ${(r.outMsgsPerJob as number).toFixed(3)} messages/job, ${(((r.drainCpuSec as number) * 1e6) / jobs).toFixed(0)} ms CPU per 1k jobs (server ${serverCpuSec === undefined ? "?" : ((serverCpuSec * 1e6) / jobs).toFixed(0)})${r.storedRecords !== undefined ? `, ${String(r.storedRecords)} records stored, ${(r.storedBytesPerRecord as number).toFixed(1)} B each in the stream` : ""}${r.failedRecords ? `, ${String(r.failedRecords)} records refused` : ""}${r.events !== undefined ? `, events ${String(r.events)} (gap ${String(r.gaps)})` : ""}`,
          );
        } finally {
          const n = benchQueue(name).names;
          for (const s of [n.stream, n.dlqStream, n.ledgerStream, n.stateStream]) await jsm.streams.delete(s).catch(() => {});
        }
      }
      for (const c of rotate(rtt, round)) {
        const name = uniq("rtt");
        const contender = c === "rtt-jetq" ? "jetq receipt.result()" : "bullmq job.waitUntilFinished()";
        try {
          const child = new Child(
            { kind: "result-rtt", contender: c === "rtt-jetq" ? "jetq" : "bullmq", endpoints: { nats: nats.servers, redis: ctx.redis?.url }, queue: name, rate: 100, durationMs: rttMs },
            `results-${c}-r${round}`,
            o.profileDir,
          );
          await child.ready(60_000);
          child.tell({ type: "go" });
          const r = await child.result(rttMs + 60_000);
          await child.end();
          const run = { ...r, round };
          const group = "results: publish → result round trip at 100/s";
          record(ctx, "results", `${group}, p50`, contender, "ms", r.p50 as number, run, "lower");
          record(ctx, "results", `${group}, p99`, contender, "ms", r.p99 as number, run, "lower");
          o.log(`  results ${contender.padEnd(30)} p50 ${(r.p50 as number).toFixed(2)} ms, p99 ${(r.p99 as number).toFixed(2)} ms (${String(r.count)} of ${String(r.sent)}, ${String(r.failed)} failed)`);
        } finally {
          const n = benchQueue(name).names;
          for (const s of [n.stream, n.dlqStream, n.ledgerStream, n.stateStream]) await jsm.streams.delete(s).catch(() => {});
        }
      }
    }
  });
}

const RAW_LABELS: Record<string, string> = {
  "raw results off": "raw floor: consume() + ack()",
  "raw results on": "raw floor: a record per job, ack after its PubAck",
  "raw results on-batch": "raw floor: a record per job, a turn's records confirmed by one PubAck (as jetq does), acks after it",
};

/** BENCHMARKS.md section: every results row beside the `off` row of its group (raw rows beside raw off). */
export function resultsSection(rows: Row[]): string {
  const own = rows.filter((r) => r.scenario === "results");
  if (own.length === 0) return "(not run)";
  const out: string[] = [];
  for (const g of [...new Set(own.map((r) => r.group))]) {
    const grp = own.filter((r) => r.group === g);
    if (g.includes("round trip")) {
      out.push(`**${g}**`, "", "| contender | median ms | min – max |", "|---|---:|---:|");
      for (const r of grp) out.push(`| ${r.contender} | ${r.median.toFixed(2)} | ${r.min.toFixed(2)} – ${r.max.toFixed(2)} |`);
      out.push("");
      continue;
    }
    const base = (r: Row): Row | undefined =>
      grp.find((b) => b.contender === (r.system === "raw" ? "raw results off" : r.contender.endsWith("-1ms") ? "jetq results off-1ms" : "jetq results off"));
    out.push(`**${g}**`, "", `| variant | median ${grp[0]!.unit} | min – max | vs off (of its handler; raw vs raw) |`, "|---|---:|---:|---:|");
    for (const r of grp) {
      const digits = r.unit === "messages/job" ? 3 : 0;
      const f = (v: number): string => (digits ? v.toFixed(digits) : fmt(v));
      out.push(`| ${RAW_LABELS[r.contender] ?? r.contender.replace(/^jetq results /, "")} | ${f(r.median)} | ${f(r.min)} – ${f(r.max)} | ${base(r) ? `${(r.median / base(r)!.median).toFixed(2)}×` : ""} |`);
    }
    out.push("");
  }
  return out.join("\n");
}

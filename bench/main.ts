// `npm run bench` (full run: about 15 minutes, writes bench/results/latest.json, chart.svg and
// BENCHMARKS.md) and `npm run bench -- --quick` (under 2 minutes, writes to .tmp/bench/).
//
// Options:
//   --quick              small workloads, one round
//   --only=a,b           scenarios: publish, drain, latency, memory, extras, schedule
//   --rounds=N           override the number of interleaved rounds
//   --contenders=a,b     only these contenders (names as printed), e.g. jetq,raw.ack
//   --profile            children run with --cpu-prof (profiles in .tmp/bench/prof/)
//   --out=DIR            where a partial or quick run writes (default .tmp/bench)
import { mkdirSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ALL_SCENARIOS, presetOptions, runBench, type BenchOptions, type Scenario } from "./harness.ts";
import { markdownReport, ratioTable, svgChart } from "./report.ts";

const root = resolve(fileURLToPath(new URL("..", import.meta.url)));
const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const a = args.find((x) => x === `--${name}` || x.startsWith(`--${name}=`));
  if (a === undefined) return undefined;
  return a.includes("=") ? a.slice(a.indexOf("=") + 1) : "";
};
for (const a of args) {
  if (!/^--(quick|only|rounds|profile|out|contenders)(=|$)/.test(a)) {
    console.error(`unknown option ${a}; see the comment at the top of bench/main.ts`);
    process.exit(2);
  }
}

const quick = flag("quick") !== undefined;
const base = presetOptions(quick ? "quick" : "full");
const only = flag("only");
const scenarios = only ? (only.split(",").filter(Boolean) as Scenario[]) : [...ALL_SCENARIOS];
for (const s of scenarios) {
  if (!ALL_SCENARIOS.includes(s)) {
    console.error(`unknown scenario "${s}"; expected some of ${ALL_SCENARIOS.join(", ")}`);
    process.exit(2);
  }
}
const rounds = flag("rounds");
const outDir = resolve(root, flag("out") || ".tmp/bench");
const profileDir = flag("profile") !== undefined ? join(outDir, "prof") : undefined;
if (profileDir) mkdirSync(profileDir, { recursive: true });

const options: BenchOptions = {
  ...base,
  scenarios,
  ...(rounds ? { rounds: Number(rounds), publishRounds: Number(rounds) } : {}),
  ...(profileDir ? { profileDir } : {}),
  ...(flag("contenders") ? { contenders: flag("contenders")!.split(",") } : {}),
  log: (line) => console.log(line),
};
// Only a complete full run replaces the committed results.
const official = !quick && !only && !rounds && !profileDir && flag("out") === undefined && flag("contenders") === undefined;

console.log(`jetq bench (${quick ? "quick" : "full"}${official ? "" : ", partial"}): ${scenarios.join(", ")}; ${options.rounds} round(s)`);
const result = await runBench(options);
console.log("");
console.log(ratioTable(result));

const dir = official ? join(root, "bench", "results") : outDir;
mkdirSync(dir, { recursive: true });
const json = join(dir, official ? "latest.json" : `${quick ? "quick" : "partial"}.json`);
writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
writeFileSync(join(dir, official ? "chart.svg" : `${quick ? "quick" : "partial"}-chart.svg`), svgChart(result));
const md = official ? join(root, "BENCHMARKS.md") : join(dir, `${quick ? "quick" : "partial"}-BENCHMARKS.md`);
writeFileSync(md, markdownReport(result, official ? "bench/results/chart.svg" : `${quick ? "quick" : "partial"}-chart.svg`));
console.log(`\nwrote ${json}, ${md} (${result.durationSec} s)`);

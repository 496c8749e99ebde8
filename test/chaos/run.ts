// Runs the chaos scenarios one after another (each file starts and kills its own nats-server
// processes), then prints the summary table from the rows they recorded.
// Usage: node test/chaos/run.ts [scenario files...]   (npm run test:chaos)
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { resultsFile, table, type ScenarioFigures } from "./report.ts";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const files = args.length > 0 ? args : readdirSync(here).filter((f) => f.endsWith(".test.ts")).sort().map((f) => join(here, f));

const out = resultsFile();
mkdirSync(dirname(out), { recursive: true });
rmSync(out, { force: true });
const started = Date.now();
const r = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=1", "--test-timeout=900000", ...files],
  { stdio: "inherit", env: { ...process.env, JETQ_CHAOS_RESULTS: out } },
);
const rows: ScenarioFigures[] = existsSync(out)
  ? readFileSync(out, "utf8").split("\n").filter(Boolean).map((l) => JSON.parse(l) as ScenarioFigures)
  : [];
const summary = `${table(rows)}\n\nchaos suite: ${rows.length} scenario rows, ${rows.filter((x) => !x.ok).length} failed, ${Math.round((Date.now() - started) / 1000)} s wall clock`;
console.log(`\n== jetq chaos summary ==\n${summary}`);
writeFileSync(join(dirname(out), "summary.md"), `${summary}\n`);
process.exit(r.status ?? 1);

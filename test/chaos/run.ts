// Runs the chaos scenarios one after another (each file starts and kills its own nats-server
// processes), then prints the summary table from the rows they recorded. A full run (no files
// named) also writes docs/guarantees.md: date, versions, every row and the promise it backs.
// Usage: node test/chaos/run.ts [scenario files...]   (npm run test:chaos)
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, release } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { findNatsServerBinary } from "../support/nats-server.ts";
import { guaranteesMarkdown, resultsFile, table, type ScenarioFigures } from "./report.ts";

const here = dirname(fileURLToPath(import.meta.url));
const repoRoot = join(here, "..", "..");
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

if (args.length === 0) {
  const git = (...a: string[]): string => spawnSync("git", a, { cwd: repoRoot, encoding: "utf8" }).stdout?.trim() ?? "";
  const bin = findNatsServerBinary();
  const natsServer = (bin && spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout?.trim().replace(/^nats-server: /, "")) || "unknown";
  const commit = git("rev-parse", "--short=12", "HEAD") || "unknown";
  // The report itself is rewritten by every run: it does not make the tree "dirty".
  const dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!docs/guarantees.md") !== "";
  const file = join(repoRoot, "docs", "guarantees.md");
  writeFileSync(
    file,
    guaranteesMarkdown(rows, {
      date: new Date(),
      wallClockS: (Date.now() - started) / 1000,
      node: process.version,
      natsServer: `${natsServer} (${bin ?? "no binary found"}; the scenarios start their own servers)`,
      jetqVersion: (JSON.parse(readFileSync(join(repoRoot, "package.json"), "utf8")) as { version: string }).version,
      commit: dirty ? `${commit} (with uncommitted changes)` : commit,
      machine: `${process.platform} ${release()} ${process.arch}, ${cpus().length} cores`,
    }),
  );
  console.log(`chaos: wrote ${file}`);
}
process.exit(r.status ?? 1);

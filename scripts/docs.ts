// `npm run docs`: the API reference, generated from the TSDoc of what src/index.ts exports.
//   1. tsc writes the declarations (stripInternal, as published) to .tmp/api/dts;
//   2. API Extractor reads them, rewrites docs/jetq.api.md (the API report, committed) and writes
//      the doc model; every warning (a public declaration without TSDoc, malformed TSDoc, a
//      public type that names an unexported one) fails the run;
//   3. api-documenter turns the model into Markdown in docs/api/ (generated, not committed).
// `--check` (test/integration/api-report.test.ts) does 1 and 2 without writing anything in docs/,
// and fails when docs/jetq.api.md no longer matches the source: a change of the public surface
// must come with its updated report, so it shows in review.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { Extractor, ExtractorConfig, type ExtractorMessage } from "@microsoft/api-extractor";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const check = process.argv.includes("--check");
const tmp = join(root, ".tmp", "api");

function run(cmd: string, args: string[]): void {
  const r = spawnSync(process.execPath, [cmd, ...args], { cwd: root, stdio: "inherit" });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

rmSync(tmp, { recursive: true, force: true });
run(join(root, "node_modules", "typescript", "bin", "tsc"), ["-p", "tsconfig.build.json", "--declaration", "--emitDeclarationOnly", "--outDir", join(tmp, "dts")]);

// jetq's TSDoc writes defaults as `@default` (as p-queue and the TypeScript editors do);
// api-documenter renders only the standard `@defaultValue`, so the copy read here says that.
function rewrite(dir: string): void {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) rewrite(p);
    else if (p.endsWith(".d.ts")) writeFileSync(p, readFileSync(p, "utf8").replace(/@default\b(?!Value)/g, "@defaultValue"));
  }
}
rewrite(join(tmp, "dts"));

const config = ExtractorConfig.loadFileAndPrepare(join(root, "api-extractor.json"));
const problems: string[] = [];
const result = Extractor.invoke(config, {
  localBuild: !check,
  messageCallback: (m: ExtractorMessage) => {
    // The report's own notices (created, changed) are handled below from the result.
    const notice = m.messageId.startsWith("console-api-report");
    if ((m.logLevel === "warning" || m.logLevel === "error") && !notice) {
      const dts = m.sourceFilePath ?? "";
      const where = dts ? `${dts.replace(join(tmp, "dts"), "src").replace(/\.d\.ts$/, ".ts")} (${dts.replace(root + "/", "")}:${m.sourceFileLine ?? "?"}): ` : "";
      problems.push(`${where}${m.text} (${m.messageId})`);
    }
    // Printed below, in the terms of the source files rather than the generated declarations.
    m.handled = true;
  },
});
for (const p of problems) console.error(`api: ${p}`);
if (check && result.apiReportChanged) {
  console.error(
    `api: docs/jetq.api.md does not match the public API of src/index.ts; run \`npm run docs\` and commit the report (diff it against .tmp/api/jetq.api.md to see what changed)`,
  );
}
if (problems.length > 0 || result.errorCount > 0 || (check && !result.succeeded)) process.exit(1);
if (check) {
  console.log("api: docs/jetq.api.md matches the source; no warnings");
  process.exit(0);
}

rmSync(join(root, "docs", "api"), { recursive: true, force: true });
run(join(root, "node_modules", "@microsoft", "api-documenter", "bin", "api-documenter"), ["markdown", "--input-folder", join(tmp, "model"), "--output-folder", join(root, "docs", "api")]);
console.log(`api: docs/api/index.md written; docs/jetq.api.md ${result.apiReportChanged ? "UPDATED: commit it" : "unchanged"}`);

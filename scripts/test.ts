// Runs the test suite: unit tests, integration tests against real NATS servers, browser tests.
// Extra arguments are passed to `node --test` (e.g. a file to run alone).
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

function files(dir: string): string[] {
  if (!existsSync(dir)) return [];
  let out: string[] = [];
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) out = out.concat(files(p));
    else if (p.endsWith(".test.ts")) out.push(p);
  }
  return out.sort();
}

const args = process.argv.slice(2);
// test/containers only when Docker is asked for (JETQ_DOCKER=1, scripts/env.sh provides the engine).
const containers = process.env.JETQ_DOCKER === "1" ? files("test/containers") : [];
const targets = args.length > 0 ? args : [...files("test/unit"), ...files("test/integration"), ...files("test/e2e"), ...containers];
const r = spawnSync(
  process.execPath,
  ["--test", "--test-concurrency=2", "--test-timeout=120000", ...targets],
  { stdio: "inherit", env: { ...process.env } },
);
process.exit(r.status ?? 1);

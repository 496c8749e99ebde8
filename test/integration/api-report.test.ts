/**
 * The committed API report (docs/jetq.api.md) matches the public surface of src/index.ts, and API
 * Extractor finds nothing to warn about (every public declaration has TSDoc). A change of the
 * public API therefore has to come with its regenerated report (`npm run docs`), where review sees it.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

it("docs/jetq.api.md matches the source and the TSDoc has no warnings", () => {
  const r = spawnSync(process.execPath, [join(root, "scripts", "docs.ts"), "--check"], { cwd: root, encoding: "utf8", timeout: 110_000 });
  assert.equal(r.status, 0, `npm run docs -- --check exited ${r.status ?? r.signal}\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /matches the source; no warnings/);
});

/**
 * docs/guarantees.md names, for every chaos scenario row, the promise it backs: a scenario added
 * to test/chaos without a promise would publish a row that backs nothing.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";
import { guaranteesMarkdown, promiseOf } from "../chaos/report.ts";

const chaos = join(dirname(fileURLToPath(import.meta.url)), "..", "chaos");

it("every chaos scenario row has the promise it backs", () => {
  const names = readdirSync(chaos)
    .filter((f) => f.endsWith(".test.ts"))
    .flatMap((f) => [...readFileSync(join(chaos, f), "utf8").matchAll(/scenario: "([^"]+)"/g)].map((m) => m[1]!));
  assert.ok(names.length >= 9, `scenarios found: ${names.join(", ")}`);
  for (const n of names) assert.notEqual(promiseOf(n), "", `a promise for "${n}" in test/chaos/report.ts PROMISES`);
});

it("renders a row with its figures, its promise and a failure in bold", () => {
  const md = guaranteesMarkdown(
    [{ scenario: "2 server crash", published: 12_000, acked: 11_500, completed: 11_500, lost: 0, duplicates: 3, faults: 2, recoveryMs: 2_345, note: "a | b", ok: false }],
    { date: new Date("2026-12-02T06:00:00.123Z"), wallClockS: 150, node: "v24.0.0", natsServer: "v2.9.10", jetqVersion: "0.2.0", commit: "abc123", machine: "linux" },
  );
  assert.match(md, /\| date \| 2026-12-02T06:00:00Z \|/);
  assert.match(md, /\| 2 server crash \| 12,000 \| 11,500 \| 11,500 \| 0 \| 3 \| 2 \| 2\.3 s \| \*\*FAIL\*\* \| At-least-once across a server process crash/);
  assert.match(md, /1 failed/);
  assert.match(md, /- \*\*2 server crash\*\*: a \| b/);
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

// Node runs the tests by stripping types, which checks none: the compiler does, including the
// compile-time assertions of test/unit/types.test.ts.
it("the whole project type-checks (tsc --noEmit, strict)", () => {
  const r = spawnSync(process.execPath, [join(root, "node_modules/typescript/bin/tsc"), "--noEmit", "-p", root], {
    cwd: root,
    encoding: "utf8",
    timeout: 110_000,
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
});

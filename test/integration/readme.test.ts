import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";
import { useNats } from "../support/ctx.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nats = useNats();

/** The code block that follows the `readme-example` marker in README.md. */
function readmeExample(): string {
  const md = readFileSync(join(root, "README.md"), "utf8");
  const m = /<!-- readme-example[^>]*-->\s*```ts\n([\s\S]*?)```/.exec(md);
  assert.ok(m?.[1], "README.md has a marked example");
  return m[1];
}

it("runs the README example as written", () => {
  const code = readmeExample().replace(/from "jetq"/g, `from ${JSON.stringify(join(root, "src/index.ts"))}`);
  assert.match(code, /src\/index\.ts/, "the example imports jetq");
  const dir = join(root, ".tmp");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "readme-example.ts");
  writeFileSync(file, code);
  const srv = nats.server();
  assert.equal(srv.user, undefined, "the example connects without credentials");
  const r = spawnSync(process.execPath, [file], {
    cwd: root,
    env: { ...process.env, NATS_URL: srv.servers },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.match(r.stdout, /sent to ada@example\.com \(job welcome-ada, attempt 1\)/);
  assert.match(r.stdout, /dead letter \S+: permanent \(no such domain\)/);
});

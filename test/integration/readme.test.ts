import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
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
  const code = readmeExample();
  assert.match(code, /from "jetq";/, "the example imports jetq by name");
  // Inside the repository "jetq" is the package's reference to itself (package.json `exports`);
  // the jetq-source condition maps it to src/index.ts, so no build is needed.
  const dir = join(root, ".tmp");
  mkdirSync(dir, { recursive: true });
  const file = join(dir, "readme-example.ts");
  writeFileSync(file, code);
  const srv = nats.server();
  assert.equal(srv.user, undefined, "the example connects without credentials");
  const r = spawnSync(process.execPath, ["--conditions=jetq-source", file], {
    cwd: root,
    env: { ...process.env, NATS_URL: srv.servers },
    encoding: "utf8",
    timeout: 60_000,
  });
  assert.equal(r.status, 0, `exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  assert.match(r.stdout, /sent to ada@example\.com \(job welcome-ada, attempt 1\)/);
  assert.match(r.stdout, /dead letter \S+: permanent \(no such domain\)/);
});

it("examples are user code: they import jetq by name, nothing from src/ or test/", () => {
  const files = (dir: string): string[] =>
    readdirSync(dir).flatMap((e) => {
      const p = join(dir, e);
      return statSync(p).isDirectory() ? files(p) : p.endsWith(".ts") ? [p] : [];
    });
  const all = files(join(root, "examples"));
  assert.ok(all.length >= 5, `examples found: ${all.length}`);
  let importsJetq = 0;
  for (const f of all) {
    const specifiers = [...readFileSync(f, "utf8").matchAll(/(?:from|import\()\s*"([^"]+)"/g)].map((m) => m[1]!);
    for (const s of specifiers) {
      assert.ok(!/(^|\/)(src|test)\//.test(s) && !s.startsWith("../../"), `${f.slice(root.length + 1)} imports ${s}`);
    }
    if (specifiers.includes("jetq")) importsJetq++;
  }
  assert.ok(importsJetq >= 5, `${importsJetq} example files import "jetq"`);
});

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { it } from "node:test";
import { useNats } from "../support/ctx.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const nats = useNats();

/**
 * Every code block that follows a `readme-example` marker in README.md, with what its output must
 * show: `<!-- readme-example expect="regex" -->` (several `expect`s may follow one another).
 */
function readmeExamples(): Array<{ code: string; expect: RegExp[]; line: number }> {
  const md = readFileSync(join(root, "README.md"), "utf8");
  const out: Array<{ code: string; expect: RegExp[]; line: number }> = [];
  for (const m of md.matchAll(/<!-- readme-example([^>]*)-->\s*```ts\n([\s\S]*?)```/g)) {
    const expect = [...m[1]!.matchAll(/expect="([^"]*)"/g)].map((e) => new RegExp(e[1]!));
    out.push({ code: m[2]!, expect, line: md.slice(0, m.index).split("\n").length });
  }
  return out;
}

it("runs every README example as written", () => {
  const examples = readmeExamples();
  assert.ok(examples.length >= 2, `README.md has marked examples (${examples.length})`);
  const dir = join(root, ".tmp");
  mkdirSync(dir, { recursive: true });
  const srv = nats.server();
  assert.equal(srv.user, undefined, "the examples connect without credentials");
  for (const { code, expect, line } of examples) {
    assert.match(code, /from "jetq";/, `the example at README.md:${line} imports jetq by name`);
    assert.ok(expect.length > 0, `the example at README.md:${line} says what its output shows`);
    // Inside the repository "jetq" is the package's reference to itself (package.json `exports`);
    // the jetq-source condition maps it to src/index.ts, so no build is needed.
    const file = join(dir, `readme-example-${line}.ts`);
    writeFileSync(file, code);
    const r = spawnSync(process.execPath, ["--conditions=jetq-source", file], {
      cwd: root,
      env: { ...process.env, NATS_URL: srv.servers },
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(r.status, 0, `README.md:${line}: exit ${r.status}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
    for (const re of expect) assert.match(r.stdout, re, `README.md:${line}`);
  }
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

/**
 * jetq as someone else's dependency: `npm pack` (which builds dist/ through `prepack`), the
 * tarball installed with its dependencies into a fresh project outside the repository, then used
 * there the ways a user would: ESM import with a publish → handle → ack round trip against a real
 * server, CommonJS `require("jetq")` (Node's require(esm)), a TypeScript consumer type-checked
 * with `moduleResolution` `nodenext` and `bundler`, and the installed `jetq` bin through `npx`.
 *
 * Runs on the Node running the tests and on the oldest Node `engines` allows (installed from the
 * npm registry package `node-<platform>-<arch>@<version>` into ~/.cache/jetq, like scripts/env.sh
 * does for Node 24, and reused on later runs). npm's own cache makes the install of jetq's
 * dependencies a local copy after the first run.
 */
import assert from "node:assert/strict";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { homedir, tmpdir } from "node:os";
import { delimiter, dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { after, before, describe, it } from "node:test";
import { uniqueName, useNats } from "../support/ctx.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string; engines: { node: string } };
const nats = useNats();

/** The oldest Node `engines` admits: ">=22.12" → "22.12.0". */
const oldestNode = (() => {
  const m = /^>=\s*(\d+)\.(\d+)(?:\.(\d+))?$/.exec(pkg.engines.node.trim());
  assert.ok(m, `engines.node is a plain lower bound (">=X.Y"), got ${pkg.engines.node}`);
  return `${m[1]}.${m[2]}.${m[3] ?? "0"}`;
})();
const runtimes = [
  { label: `Node ${process.versions.node} (the one running the tests)`, version: process.versions.node },
  ...(oldestNode === process.versions.node ? [] : [{ label: `Node ${oldestNode} (the oldest engines allows)`, version: oldestNode }]),
];

const cacheDir = process.env.JETQ_CACHE ?? join(homedir(), ".cache", "jetq");

function run(cmd: string, args: string[], opts: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): SpawnSyncReturns<string> {
  const r = spawnSync(cmd, args, { cwd: opts.cwd, env: opts.env ?? process.env, encoding: "utf8", timeout: opts.timeoutMs ?? 60_000 });
  if (r.error) throw new Error(`${cmd} ${args.join(" ")}: ${r.error.message}`);
  return r;
}
function ok(r: SpawnSyncReturns<string>, what: string): string {
  assert.equal(r.status, 0, `${what} exited ${r.status ?? r.signal}\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  return r.stdout;
}
/** `PATH` with `node`'s directory first: npm, npx and the bin's `#!/usr/bin/env node` then run on it. */
function pathWith(node: string): string {
  return `${dirname(node)}${delimiter}${process.env.PATH ?? ""}`;
}
/** npm from PATH, run by the Node running the tests. */
function npm(args: string[], cwd: string, timeoutMs = 180_000): string {
  return ok(run("npm", args, { cwd, timeoutMs, env: { ...process.env, PATH: pathWith(process.execPath) } }), `npm ${args.join(" ")}`);
}

/** Path of a `node` binary of exactly `version`: this one, or one installed into the cache. */
function nodeBinary(version: string): string {
  if (version === process.versions.node) return process.execPath;
  const name = `node-${process.platform === "win32" ? "win" : process.platform}-${process.arch}`;
  const dir = join(cacheDir, `node-${version}`);
  const bin = join(dir, "node_modules", name, "bin", "node");
  const works = (): boolean => existsSync(bin) && spawnSync(bin, ["--version"], { encoding: "utf8" }).stdout?.trim() === `v${version}`;
  if (!works()) {
    // A half-finished earlier install (killed mid-way) is removed, not trusted.
    rmSync(dir, { recursive: true, force: true });
    mkdirSync(dir, { recursive: true });
    console.log(`# installing Node ${version} into ${dir} (npm package ${name}@${version})`);
    npm(["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--prefix", dir, `${name}@${version}`], dir, 300_000);
    assert.ok(works(), `${bin} reports v${version}`);
  }
  return bin;
}

interface Packed {
  tarball: string;
  size: number;
  files: string[];
}
let work = "";
let project = "";
let packed: Packed;
let queue = "";

// What a user writes. The scripts read the server from NATS_URL (and NATS_USER/NATS_PASSWORD).
const ESM = `
import { once } from "node:events";
import { connect, defineQueue, Producer, provisionQueue, queueStats, Worker } from "jetq";

const nc = await connect({ servers: process.env.NATS_URL, user: process.env.NATS_USER, pass: process.env.NATS_PASSWORD });
const queue = defineQueue({ name: process.env.QUEUE, maxAttempts: 2 });
await provisionQueue(nc, queue);
const handled = [];
const worker = new Worker(nc, queue, async (job) => {
  handled.push({ id: job.id, data: job.data, attempt: job.attempt });
}, { ackMode: "confirmed" });
await worker.start();
const completed = once(worker, "completed", { signal: AbortSignal.timeout(20_000) });
const producer = new Producer(nc, queue);
const receipt = await producer.publish({ from: process.version }, { id: "pkg-" + process.version });
await completed; // with ackMode "confirmed": the server has confirmed the ack
const stats = await queueStats(nc, queue);
await worker.stop({ timeoutMs: 5_000 });
await producer.close();
await nc.close();
console.log(JSON.stringify({ receipt, handled, stats }));
`;
const CJS = `
const jetq = require("jetq");
const { defineQueue, QueueFullError, JetqError } = jetq;
const q = defineQueue({ name: "cjs" });
console.log(JSON.stringify({
  exports: Object.keys(jetq).sort(),
  queueStream: q.names.stream,
  errorsExtend: new QueueFullError("x", { reason: "stream_full" }) instanceof JetqError,
}));
`;
// Type-checked only, with strict settings; it also fails if an @internal member is visible.
const TS = `
import { connect, createDashboard, defineQueue, Producer, PermanentError, queueStats, Worker, type Job, type QueueStats } from "jetq";
import { z } from "zod";

const nc = await connect({ servers: "nats://127.0.0.1:4222" });
const emails = defineQueue({ name: "emails", schema: z.object({ to: z.string(), tries: z.number() }) });
const worker = new Worker(nc, emails, async (job: Job<{ to: string; tries: number }>) => {
  const to: string = job.data.to;
  // @ts-expect-error the schema says tries is a number
  const tries: string = job.data.tries;
  if (to === "" || tries === "") throw new PermanentError("no address");
});
worker.on("completed", (job, ms) => console.log(job.id, ms.toFixed(0)));
const producer = new Producer(nc, emails);
// _setTelemetry is @internal: these type-check only when it is stripped from the declarations.
const workerInternal: "_setTelemetry" extends keyof typeof worker ? true : false = false;
const producerInternal: "_setTelemetry" extends keyof typeof producer ? true : false = false;
console.log(workerInternal, producerInternal);
// @ts-expect-error the payload must match the schema
await producer.publish({ to: 1 });
const receipt = await producer.publish({ to: "a@example.com", tries: 0 }, { id: "a" });
const seq: number = receipt.seq;
const stats: QueueStats = await queueStats(nc, emails);
const handler = createDashboard(nc, { queues: [emails] });
handler.close();
console.log(seq, stats.pending);
`;
const CTS = `
import jetq = require("jetq");
const q = jetq.defineQueue({ name: "cts" });
const stream: string = q.names.stream;
console.log(stream);
`;

before(async () => {
  // realpath: macOS's tmpdir is a symlink, and the project must be seen as outside the repository.
  work = realpathSync(mkdtempSync(join(tmpdir(), "jetq-package-test-")));
  assert.ok(relative(root, work).startsWith(".."), "the consumer project lies outside the repository");
  const t0 = Date.now();
  // `npm pack` runs `prepack` (npm run build): dist/ is built from the sources just checked out.
  const out = JSON.parse(npm(["pack", "--json", "--pack-destination", work], root)) as Array<{ filename: string; size: number; files: Array<{ path: string }> }>;
  const info = out[0]!;
  packed = { tarball: join(work, info.filename), size: info.size, files: info.files.map((f) => f.path) };
  console.log(`# packed ${info.filename}: ${(packed.size / 1024).toFixed(1)} KiB, ${packed.files.length} files (${Date.now() - t0} ms)`);

  project = join(work, "consumer");
  mkdirSync(project);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "jetq-consumer", version: "1.0.0", private: true }, null, 2));
  const t1 = Date.now();
  npm(["install", "--no-audit", "--no-fund", "--prefer-offline", packed.tarball], project);
  console.log(`# installed the tarball and its dependencies into ${project} (${Date.now() - t1} ms)`);
  writeFileSync(join(project, "esm.mjs"), ESM);
  writeFileSync(join(project, "cjs.cjs"), CJS);
  writeFileSync(join(project, "consumer.mts"), TS);
  writeFileSync(join(project, "consumer-cjs.cts"), CTS);
  queue = uniqueName("pkg");
}, { timeout: 600_000 });

after(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("the npm package", () => {
  it("holds only dist/, README.md, LICENSE, CHANGELOG.md and package.json", () => {
    const extra = packed.files.filter((f) => !f.startsWith("dist/") && !["README.md", "LICENSE", "CHANGELOG.md", "package.json"].includes(f));
    assert.deepEqual(extra, []);
    for (const f of ["README.md", "LICENSE", "CHANGELOG.md", "dist/index.js", "dist/index.d.ts", "dist/cli/main.js", "dist/dashboard/static/app.js"]) {
      assert.ok(packed.files.includes(f), `${f} is in the tarball`);
    }
    assert.deepEqual(packed.files.filter((f) => /\.(ts|map)$/.test(f) && !f.endsWith(".d.ts")), [], "no sources or source maps");
    assert.ok(packed.size < 512 * 1024, `the tarball stays small (${packed.size} bytes)`);
  });

  it("installs only its runtime dependencies, outside the repository", () => {
    const installed = readdirSync(join(project, "node_modules")).flatMap((d) =>
      d.startsWith("@") ? readdirSync(join(project, "node_modules", d)).map((s) => `${d}/${s}`) : [d],
    );
    for (const dev of ["typescript", "@types/node", "testcontainers", "bullmq", "@opentelemetry/sdk-metrics", "yaml"]) {
      assert.ok(!installed.includes(dev), `dev dependency ${dev} is not installed`);
    }
    const resolved = run(process.execPath, ["-p", "require.resolve('jetq')"], { cwd: project });
    assert.equal(ok(resolved, "require.resolve").trim(), join(project, "node_modules", "jetq", "dist", "index.js"));
  });

  it("publishes declarations without @internal members", () => {
    const dts = (dir: string): string[] =>
      readdirSync(dir).flatMap((e) => {
        const p = join(dir, e);
        return statSync(p).isDirectory() ? dts(p) : p.endsWith(".d.ts") ? [p] : [];
      });
    const files = dts(join(project, "node_modules", "jetq", "dist"));
    assert.ok(files.length > 10);
    for (const f of files) {
      const text = readFileSync(f, "utf8");
      assert.doesNotMatch(text, /@internal/, `${f.split(sep).slice(-2).join("/")} has no @internal declaration`);
      assert.doesNotMatch(text, /_setTelemetry/, `${f.split(sep).slice(-2).join("/")} does not declare _setTelemetry`);
    }
  });

  for (const moduleResolution of ["nodenext", "bundler"] as const) {
    it(`type-checks a strict TypeScript consumer with moduleResolution "${moduleResolution}"`, () => {
      const files = moduleResolution === "nodenext" ? ["consumer.mts", "consumer-cjs.cts"] : ["consumer.mts"];
      const config = {
        compilerOptions: {
          strict: true,
          target: "es2022",
          module: moduleResolution === "nodenext" ? "nodenext" : "preserve",
          moduleResolution,
          noEmit: true,
          // The published declarations are checked too, not taken on trust.
          skipLibCheck: false,
          types: ["node"],
          typeRoots: [join(root, "node_modules", "@types")],
        },
        files,
      };
      const file = join(project, `tsconfig.${moduleResolution}.json`);
      writeFileSync(file, JSON.stringify(config, null, 2));
      const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
      ok(run(process.execPath, [tsc, "-p", file], { cwd: project }), `tsc (${moduleResolution})`);
    });
  }

  for (const rt of runtimes) {
    describe(rt.label, () => {
      let node = "";
      let env: NodeJS.ProcessEnv = {};
      before(() => {
        node = nodeBinary(rt.version);
        const srv = nats.server();
        env = {
          PATH: pathWith(node),
          HOME: process.env.HOME ?? homedir(),
          NATS_URL: srv.servers,
          ...(srv.user ? { NATS_USER: srv.user } : {}),
          ...(srv.pass ? { NATS_PASSWORD: srv.pass } : {}),
          QUEUE: queue,
          NO_COLOR: "1",
        };
      }, { timeout: 600_000 });

      it("imports jetq as ESM and runs a publish → handle → ack round trip", () => {
        const out = ok(run(node, ["esm.mjs"], { cwd: project, env, timeoutMs: 60_000 }), "esm.mjs");
        const r = JSON.parse(out) as {
          receipt: { id: string; seq: number; duplicate: boolean };
          handled: Array<{ id: string; data: { from: string }; attempt: number }>;
          stats: { stored: number; pending: number; inFlight: number };
        };
        assert.equal(r.receipt.id, `pkg-v${rt.version}`);
        assert.equal(r.receipt.duplicate, false);
        assert.deepEqual(r.handled, [{ id: `pkg-v${rt.version}`, data: { from: `v${rt.version}` }, attempt: 1 }]);
        // The ack was confirmed before `completed`: the work-queue stream no longer holds the job.
        assert.deepEqual({ stored: r.stats.stored, pending: r.stats.pending, inFlight: r.stats.inFlight }, { stored: 0, pending: 0, inFlight: 0 });
      });

      it("loads with CommonJS require(\"jetq\") (require(esm))", () => {
        const r = run(node, ["cjs.cjs"], { cwd: project, env, timeoutMs: 30_000 });
        const out = JSON.parse(ok(r, "cjs.cjs")) as { exports: string[]; queueStream: string; errorsExtend: boolean };
        for (const name of ["Producer", "Worker", "defineQueue", "provisionQueue", "DeadLetterQueue", "connect", "createDashboard"]) {
          assert.ok(out.exports.includes(name), `require("jetq").${name}`);
        }
        assert.equal(out.queueStream, "JETQ_cjs");
        assert.equal(out.errorsExtend, true);
        if (r.stderr.trim()) console.log(`# ${rt.label}, require("jetq") printed: ${r.stderr.trim().split("\n")[0]}`);
      });

      it("runs the installed jetq bin through npx: --help and stats --json", () => {
        const npx = (args: string[]): SpawnSyncReturns<string> => run("npx", ["--no", "--", "jetq", ...args], { cwd: project, env, timeoutMs: 30_000 });
        const help = ok(npx(["--help"]), "npx jetq --help");
        assert.match(help, /Usage: jetq/);
        assert.match(help, /stats/);
        // The esm test above created the queue and finished its one job.
        const stats = JSON.parse(ok(npx(["stats", queue, "--json"]), "npx jetq stats --json")) as { queue: string; published: number; stored: number };
        assert.equal(stats.queue, queue);
        assert.equal(stats.stored, 0);
        assert.ok(stats.published >= 1, `published ${stats.published}`);
        const bin = readFileSync(join(project, "node_modules", "jetq", "dist", "cli", "main.js"), "utf8");
        assert.ok(bin.startsWith("#!/usr/bin/env node\n"), "the bin starts with a shebang");
        assert.ok(existsSync(join(project, "node_modules", ".bin", "jetq")), "npm linked the bin");
      });
    });
  }
});

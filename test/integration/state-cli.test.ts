// `jetq job` and `jetq events` (issue 19), run as subprocesses against a real server.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { defineQueue, Producer, provisionQueue, Worker } from "../../src/index.ts";
import { CLI, cliEnv, runCli, type CliRun } from "../support/cli.ts";
import { uniqueName, useNats } from "../support/ctx.ts";

const nats = useNats();

function jetq(args: string[]): Promise<CliRun> {
  return runCli(args, { env: cliEnv(nats.server()) });
}

describe("jetq job / jetq events", () => {
  it("job shows a completed job's result (--json and text), exits 2 for an unknown id and 1 for a queue without results", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("cj"), results: { keepMs: 60_000 } });
    await provisionQueue(nc, q);
    const worker = new Worker(await nats.connect(), q, (job) => ({ rows: 3, id: job.id }));
    await worker.start();
    try {
      const r = await new Producer(nc, q).publish({}, { id: "export-7" });
      await r.result({ timeoutMs: 10_000 });
      const json = await jetq(["job", q.name, "export-7", "--json"]);
      assert.equal(json.code, 0, json.stderr);
      const j = JSON.parse(json.stdout) as { queue: string; id: string; state: string; attempt: number; result: unknown; startedAt: string };
      assert.equal(j.queue, q.name);
      assert.equal(j.state, "completed");
      assert.equal(j.attempt, 1);
      assert.deepEqual(j.result, { rows: 3, id: "export-7" });
      assert.ok(!Number.isNaN(Date.parse(j.startedAt)));
      const text = await jetq(["job", q.name, "export-7"]);
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^job export-7 \(seq 1\): completed, attempt 1\n/);
      assert.match(text.stdout, /result +\{"rows":3,"id":"export-7"\}/);
      const missing = await jetq(["job", q.name, "nope"]);
      assert.equal(missing.code, 2);
      assert.match(missing.stderr, /No job "nope" known in queue/);
      const plain = defineQueue({ name: uniqueName("cjp") });
      await provisionQueue(nc, plain);
      const none = await jetq(["job", plain.name, "x"]);
      assert.equal(none.code, 1);
      assert.match(none.stderr, /keeps no job state .*results: \{ keepMs \}/);
    } finally {
      await worker.stop();
    }
  });

  it("events prints one line per state change, live, until SIGINT", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("ce"), results: { keepMs: 60_000 } });
    await provisionQueue(nc, q);
    const p = spawn(process.execPath, [CLI, "events", q.name, "--json"], { env: { ...process.env, NO_COLOR: "1", ...cliEnv(nats.server()) }, stdio: ["ignore", "pipe", "pipe"] });
    const lines: Array<{ type: string; id?: string; result?: unknown }> = [];
    let stderr = "";
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => p.on("exit", resolve));
    const worker = new Worker(await nats.connect(), q, () => "ok");
    await worker.start();
    try {
      const producer = new Producer(nc, q);
      // Publish until the follower (which starts when its process is up) has seen a completion.
      const seen = new Promise<void>((resolve) => {
        createInterface({ input: p.stdout! }).on("line", (l) => {
          lines.push(JSON.parse(l) as { type: string });
          if (lines.some((e) => e.type === "completed")) resolve();
        });
      });
      const deadline = Date.now() + 20_000;
      let done = false;
      void seen.then(() => (done = true));
      while (!done) {
        assert.ok(Date.now() < deadline, `no completed event from jetq events; stderr: ${stderr}`);
        await producer.publish({});
        await new Promise((r) => setTimeout(r, 200));
      }
      const c = lines.find((e) => e.type === "completed")!;
      assert.equal(c.result, "ok");
      assert.match(c.id!, /^seq-\d+$/);
      p.kill("SIGINT");
      assert.equal(await exited, 0, stderr);
    } finally {
      p.kill("SIGKILL");
      await worker.stop();
    }
  });
});

describe("examples/results.ts", () => {
  it("runs as written: progress seen, the result returned, the job looked up", async () => {
    const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
    const srv = nats.server();
    assert.equal(srv.user, undefined, "the example connects without credentials");
    const r = await new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
      const p = spawn(process.execPath, ["--conditions=jetq-source", join(root, "examples", "results.ts")], {
        cwd: root,
        env: { ...process.env, NATS_URL: srv.servers },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      p.stdout.on("data", (b: Buffer) => (out += b.toString()));
      p.stderr.on("data", (b: Buffer) => (err += b.toString()));
      const t = setTimeout(() => p.kill("SIGKILL"), 60_000);
      p.on("exit", (code) => {
        clearTimeout(t);
        resolve({ code, out, err });
      });
    });
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.match(r.out, /progress report-2026-11: \{"page":3,"of":3\}/);
    assert.match(r.out, /result: s3:\/\/reports\/2026-11\.pdf \(1200 rows\)/);
    assert.match(r.out, /state: completed, attempt 1, ran \d+ ms/);
  });
});

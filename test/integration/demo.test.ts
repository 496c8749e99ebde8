/**
 * `npm run demo` without a TTY (as in CI): plain progress lines, a worker killed midway, and a
 * summary in which completed + dead-lettered = published, matching the server.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, it } from "node:test";
import { findNatsServerBinary } from "../support/nats-server.ts";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
const canRun = Boolean(process.env.NATS_URL) || findNatsServerBinary() !== undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

describe("demo", { skip: canRun ? false : "needs NATS_URL or a nats-server binary" }, () => {
  it("accounts for every job, survives a SIGKILLed worker, lists the dead letters, and stops its server", async () => {
    const dir = mkdtempSync(join(tmpdir(), "jetq-demo-test-"));
    const summaryFile = join(dir, "summary.json");
    try {
      const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
        const p = spawn(process.execPath, ["--conditions=jetq-source", join(root, "examples", "demo", "main.ts"), "--jobs", "600", "--summary-json", summaryFile], {
          cwd: root,
          env: { ...process.env },
          stdio: ["ignore", "pipe", "pipe"],
        });
        let out = "";
        let err = "";
        p.stdout.on("data", (b: Buffer) => (out += b.toString()));
        p.stderr.on("data", (b: Buffer) => (err += b.toString()));
        // The demo promises to finish in under a minute.
        const t = setTimeout(() => {
          p.kill("SIGKILL");
          reject(new Error(`demo did not finish within 60 s:\n${out}\n${err}`));
        }, 60_000);
        p.on("exit", (c) => {
          clearTimeout(t);
          resolve({ code: c, stdout: out, stderr: err });
        });
      });
      assert.equal(code, 0, `${stdout}\n${stderr}`);
      // eslint-disable-next-line no-control-regex
      assert.doesNotMatch(stdout, /\x1b\[/, "no terminal escapes without a TTY");
      assert.match(stdout, /^\[\s*\d+\.\ds\] published \d+\/600 {2}in flight \d+ {2}completed \d+/m, "plain progress lines");
      assert.match(stdout, /SIGKILL worker w\d \(pid \d+\) with \d+ jobs in flight/);

      const num = (label: string): number => {
        const m = new RegExp(`^  ${label}\\s+(\\d+)`, "m").exec(stdout);
        assert.ok(m, `summary row "${label}" in:\n${stdout}`);
        return Number(m[1]);
      };
      const published = num("published");
      const completed = num("completed");
      const deadLettered = num("dead-lettered");
      assert.equal(published, 600);
      assert.equal(completed + deadLettered, published);
      assert.ok(deadLettered > 0, "the workload has poison jobs");
      assert.match(stdout, /every job accounted for/);

      const s = JSON.parse(readFileSync(summaryFile, "utf8"));
      assert.equal(s.ok, true);
      assert.equal(s.completed, completed);
      assert.equal(s.deadLettered, deadLettered);
      assert.equal(s.leftInQueue, 0);
      assert.equal(s.deadLettersOnServer, deadLettered);
      assert.ok(s.retries > 0, "some jobs were retried");
      assert.ok(s.killed, "a worker was killed");
      assert.equal(s.killed.finishedElsewhere + s.killed.ackedBeforeKill, s.killed.inFlight);
      assert.ok(s.deadLetterReasons.permanent > 0 && s.deadLetterReasons.max_attempts > 0 && s.deadLetterReasons.validation > 0);

      // The CLI's dead-letter list: one row per dead letter.
      const listing = stdout.slice(stdout.indexOf("$ jetq dlq list"));
      assert.match(listing, /SEQ\s+JOB ID\s+REASON/);
      const rows = listing.split("\n").filter((l) => /^\s*\d+\s+img-\d{6}\s/.test(l));
      assert.equal(rows.length, deadLettered);

      const pid = /local nats-server, pid (\d+)/.exec(stdout)?.[1];
      if (pid) assert.equal(alive(Number(pid)), false, "the server the demo started is stopped");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

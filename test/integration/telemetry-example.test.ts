import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { freePort } from "../support/nats-server.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();
const example = fileURLToPath(new URL("../../examples/otel/main.ts", import.meta.url));
const children: ChildProcess[] = [];
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
});

/** The value of the Prometheus sample `name{...queue...}`, or undefined. */
function sample(body: string, name: string, queue: string, extra = ""): number | undefined {
  for (const line of body.split("\n")) {
    if (!line.startsWith(`${name}{`) || !line.includes(`jetq_queue="${queue}"`) || !line.includes(extra)) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("examples/otel", () => {
  it("runs, serves Prometheus metrics at /metrics and prints spans", { timeout: 90_000 }, async () => {
    const queue = uniqueName("otelex");
    const port = await freePort();
    const child = spawn(process.execPath, ["--conditions=jetq-source", example], {
      env: { ...process.env, NATS_URL: nats.server().servers, METRICS_PORT: String(port), JOBS: "40", RATE: "200", QUEUE: queue },
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.push(child);
    let out = "";
    const keep = (b: Buffer): void => {
      out = (out + b.toString()).slice(-500_000);
    };
    child.stdout!.on("data", keep);
    child.stderr!.on("data", keep);
    const exited = once(child, "exit");

    // 40 jobs: n = 7 is dead-lettered (PermanentError), n = 3, 13, 23, 33 fail once and are retried.
    const body = await waitFor(async () => {
      if (child.exitCode !== null) throw new Error(`example exited early (${child.exitCode}):\n${out}`);
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(5_000) }).catch(() => undefined);
      if (!res?.ok) return undefined;
      const text = await res.text();
      const ok =
        sample(text, "jetq_jobs_completed_total", queue) === 39 &&
        sample(text, "jetq_jobs_dead_lettered_total", queue) === 1 &&
        sample(text, "jetq_queue_stored", queue) === 0;
      return ok ? text : undefined;
    }, `the example's metrics to show 39 completed and 1 dead letter:\n${out.slice(-2000)}`, 45_000, 250);

    assert.equal(sample(body, "jetq_jobs_published_total", queue, 'jetq_duplicate="false"'), 40);
    assert.equal(sample(body, "jetq_jobs_retried_total", queue), 4);
    assert.equal(sample(body, "jetq_jobs_failed_total", queue, 'error_type="Error"'), 4);
    assert.equal(sample(body, "jetq_jobs_dead_lettered_total", queue, 'jetq_dead_letter_reason="permanent"'), 1);
    assert.equal(sample(body, "jetq_job_duration_count", queue, 'jetq_outcome="completed"'), 39);
    assert.equal(sample(body, "jetq_job_queue_wait_count", queue, 'jetq_redelivery="false"'), 40);
    assert.equal(sample(body, "jetq_worker_concurrency", queue), 8);
    assert.equal(sample(body, "jetq_queue_depth", queue), 0);
    assert.equal(sample(body, "jetq_queue_dead_letters", queue), 1);
    assert.match(body, /# HELP jetq_queue_depth Jobs waiting to be delivered/);

    await waitFor(() => out.includes(`name: 'process jetq.q.${queue}'`) && out.includes("name: 'resize-image'"), "spans on the console", 15_000, 100);
    assert.match(out, /'messaging\.system': 'nats'/);

    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    const [code, signal] = await exited;
    clearTimeout(timer);
    assert.equal(signal, null, `the example stops on SIGTERM by itself:\n${out.slice(-2000)}`);
    assert.equal(code, 0);
    assert.match(out, /SIGTERM: stopping\n[\s\S]*stopped/);
  });
});

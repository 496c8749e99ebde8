// One discovery rule for the CLI and the dashboard: listQueues(nc), checked against streams that
// only look like queues, and both callers asked what they list.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { createDashboard, defineQueue, provisionQueue } from "../../src/index.ts";
import { listQueues } from "../../src/queue/list.ts";
import { runCli, type CliRun } from "../support/cli.ts";
import { uniqueName, useNats } from "../support/ctx.ts";

const nats = useNats();

function cli(args: string[]): Promise<CliRun> {
  const s = nats.server();
  const auth = s.user ? ["--user", s.user, "--password", s.pass ?? ""] : [];
  return runCli(["--server", s.servers, ...auth, ...args]);
}

describe("listQueues", () => {
  it("lists provisioned queues only, and the CLI and the dashboard list exactly those", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const tag = uniqueName("lq");
    const ok = defineQueue({ name: `${tag}_ok` });
    await provisionQueue(nc, ok);
    // A queue stream whose own subject is not the first one listed.
    const second = `${tag}_second`;
    await jsm.streams.add({ name: `JETQ_${second}`, subjects: [`x.${tag}`, `jetq.q.${second}`] });
    await jsm.streams.add({ name: `JETQ_${second}_DLQ`, subjects: [`jetq.dlq.${second}`] });
    // Look-alikes: no dead-letter stream; a user's stream under the prefix; a wrong subject.
    await jsm.streams.add({ name: `JETQ_${tag}_half`, subjects: [`jetq.q.${tag}_half`] });
    await jsm.streams.add({ name: `JETQ_${tag}_mine`, subjects: [`mine.${tag}`] });
    await jsm.streams.add({ name: `JETQ_${tag}_mine_DLQ`, subjects: [`mine.${tag}.dlq`] });
    const ours = (names: readonly string[]): string[] => names.filter((n) => n.startsWith(tag)).sort();

    const expected = [ok.name, second].sort();
    assert.deepEqual(ours(await listQueues(nc)), expected);
    assert.ok(!(await listQueues(nc)).includes(`${ok.name}_DLQ`), "a dead-letter stream is not a queue");

    // The CLI's `stats` without a name lists every queue: the same ones.
    const stats = await cli(["stats", "--json"]);
    assert.equal(stats.code, 0, stats.stderr);
    const fromCli = (JSON.parse(stats.stdout) as Array<{ queue: string }>).map((s) => s.queue);
    assert.deepEqual(ours(fromCli), expected.filter((n) => n !== second), "the CLI skips the queue with no consumer, as before");

    // The dashboard discovers the same ones.
    const dashboard = createDashboard(nc);
    const http = createServer(dashboard);
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    try {
      const r = await fetch(`http://127.0.0.1:${(http.address() as AddressInfo).port}/api/overview`);
      const o = (await r.json()) as { queues: Array<{ name: string }> };
      assert.deepEqual(ours(o.queues.map((q) => q.name)), expected);
    } finally {
      dashboard.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

// DeadLetterQueue operations against a real server: concurrent replayAll/purge, a typed error
// for a missing dead letter (and the dashboard's 404 from it), validated list options, a missing
// queue, a truncated payload.
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { describe, it } from "node:test";
import { headers as natsHeaders, type NatsConnection } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { ConfigError, createDashboard, DeadLetterNotFoundError, DeadLetterQueue, defineQueue, provisionQueue, QueueNotFoundError, type Queue } from "../../src/index.ts";
import { deadLetterJson } from "../../src/dlq/dlq.ts";
import { entryJson } from "../../src/dashboard/handler.ts";
import { HDR } from "../../src/queue/headers.ts";
import { uniqueName, useNats } from "../support/ctx.ts";

const nats = useNats();

/** A provisioned queue with `n` dead letters in its dead-letter stream (written as the router writes them). */
async function withDeadLetters(nc: NatsConnection, n: number): Promise<Queue<unknown, unknown>> {
  const q = defineQueue({ name: uniqueName("dlq") });
  await provisionQueue(nc, q);
  const js = jetstream(nc);
  const sent: Promise<unknown>[] = [];
  for (let i = 1; i <= n; i++) {
    const h = natsHeaders();
    h.set(HDR.id, `job-${i}`);
    h.set(HDR.reason, "permanent");
    h.set(HDR.errorName, "PermanentError");
    h.set(HDR.error, "boom");
    h.set(HDR.attempts, "1");
    h.set(HDR.failedAt, new Date().toISOString());
    h.set(HDR.sourceSeq, String(i));
    sent.push(js.publish(q.names.dlqSubject, JSON.stringify({ i }), { headers: h }));
  }
  await Promise.all(sent);
  return q;
}

async function stored(nc: NatsConnection, stream: string): Promise<number> {
  return (await (await jetstreamManager(nc)).streams.info(stream)).state.messages;
}

describe("DeadLetterQueue under concurrent operators", () => {
  it("two concurrent replayAll both finish; their counts add up and every job is enqueued once", async () => {
    const nc = await nats.connect();
    const q = await withDeadLetters(nc, 60);
    const a = new DeadLetterQueue(nc, q);
    const b = new DeadLetterQueue(nc, q);
    const [ra, rb] = await Promise.all([a.replayAll(), b.replayAll()]);
    assert.equal(ra.replayed + rb.replayed, 60, `${JSON.stringify(ra)} ${JSON.stringify(rb)}`);
    assert.equal(ra.replayed + ra.alreadyGone, 60);
    assert.equal(rb.replayed + rb.alreadyGone, 60);
    assert.equal(await stored(nc, q.names.stream), 60, "each job once on the queue");
    assert.equal(await a.count(), 0);
  });

  it("a replayAll beside a purge finishes and counts exactly the jobs it enqueued", async () => {
    const nc = await nats.connect();
    const q = await withDeadLetters(nc, 60);
    const d = new DeadLetterQueue(nc, q);
    const replaying = d.replayAll();
    // Let the replay get going, then purge under it.
    await new Promise((r) => setTimeout(r, 20));
    const purged = await new DeadLetterQueue(nc, q).purge({ errorIncludes: "boom" });
    const r = await replaying;
    // Dead letters the purge took before the replay reached them are not visited at all, so
    // alreadyGone counts only the ones the two raced for; `replayed` is exactly what is enqueued.
    assert.ok(r.replayed + r.alreadyGone <= 60, JSON.stringify(r));
    assert.ok(purged <= 60 && purged + r.replayed >= 60, `${JSON.stringify(r)} purged ${purged}`);
    assert.equal(await stored(nc, q.names.stream), r.replayed, "the replayed jobs, each once");
    assert.equal(await d.count(), 0);
  });
});

describe("DeadLetterQueue errors", () => {
  it("get, replay and remove of a missing sequence throw DeadLetterNotFoundError", async () => {
    const nc = await nats.connect();
    const q = await withDeadLetters(nc, 1);
    const d = new DeadLetterQueue(nc, q);
    for (const call of [() => d.get(999), () => d.replay(999), () => d.remove(999)]) {
      const err = await call().then(
        () => assert.fail("expected a DeadLetterNotFoundError"),
        (e: unknown) => e,
      );
      assert.ok(err instanceof DeadLetterNotFoundError, String(err));
      assert.equal(err.name, "DeadLetterNotFoundError");
      assert.equal(err.seq, 999);
      assert.match(err.message, new RegExp(`Dead letter 999 of queue "${q.name}" does not exist .*jetq dlq list ${q.name}`));
    }
    await d.remove(1);
    await assert.rejects(d.remove(1), DeadLetterNotFoundError, "a second remove finds nothing");
  });

  it("validates list({ fromSeq }), naming the option", async () => {
    const nc = await nats.connect();
    const q = await withDeadLetters(nc, 1);
    const d = new DeadLetterQueue(nc, q);
    for (const bad of [-5, 0, 1.5, "abc", Number.NaN, Infinity]) {
      await assert.rejects(d.list({ fromSeq: bad as number }), (e: unknown) => e instanceof ConfigError && /`fromSeq`/.test(e.message), String(bad));
    }
    assert.equal((await d.list({ fromSeq: 1 })).length, 1);
  });

  it("list() on a queue that was never provisioned is a QueueNotFoundError at once", async () => {
    const nc = await nats.connect();
    const d = new DeadLetterQueue(nc, defineQueue({ name: uniqueName("nope") }));
    const t0 = Date.now();
    await assert.rejects(d.list(), QueueNotFoundError);
    assert.ok(Date.now() - t0 < 2_000, `took ${Date.now() - t0} ms`);
  });

  it("the JSON of a dead letter whose payload was cut carries truncatedFrom (library, CLI and dashboard views)", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("dlq") });
    await provisionQueue(nc, q);
    const h = natsHeaders();
    h.set(HDR.id, "big");
    h.set(HDR.reason, "max_attempts");
    h.set("Jetq-Truncated", "1048600");
    await jetstream(nc).publish(q.names.dlqSubject, "x".repeat(1000), { headers: h });
    const d = new DeadLetterQueue(nc, q);
    const e = await d.get(1);
    assert.equal(e.truncatedFrom, 1048600);
    assert.equal(deadLetterJson(e).truncatedFrom, 1048600);
    assert.equal(entryJson(e, true).truncatedFrom, 1048600);
    const [whole] = await withDeadLetters(nc, 1).then((q2) => new DeadLetterQueue(nc, q2).list());
    assert.equal(deadLetterJson(whole!).truncatedFrom, null, "null when nothing was cut");
  });
});

describe("the dashboard's dead-letter API", () => {
  it("answers 404 from the typed error for a missing dead letter, and replay-all reports both counts", async () => {
    const nc = await nats.connect();
    const q = await withDeadLetters(nc, 3);
    const dashboard = createDashboard(nc, { queues: [q] });
    const http = createServer(dashboard);
    await new Promise<void>((r) => http.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
    try {
      const page = await fetch(`${base}/`);
      const csrf = /name="jetq-csrf" content="([^"]+)"/.exec(await page.text())![1]!;
      const cookie = page.headers.get("set-cookie")!.split(";")[0]!;
      const post = (path: string): Promise<Response> => fetch(`${base}${path}`, { method: "POST", headers: { cookie, "x-jetq-csrf": csrf } });
      const api = `/api/queues/${q.name}/dead-letters`;
      const missing = await fetch(`${base}${api}/999`);
      assert.equal(missing.status, 404);
      assert.match(((await missing.json()) as { error: string }).error, /Dead letter 999 .* does not exist/);
      assert.equal((await post(`${api}/999/delete`)).status, 404);
      assert.equal((await post(`${api}/999/replay`)).status, 404);
      const one = (await (await fetch(`${base}${api}/1`)).json()) as { entry: { truncatedFrom: unknown } };
      assert.equal(one.entry.truncatedFrom, null);
      const all = await post(`${api}/replay-all`);
      assert.equal(all.status, 200);
      assert.deepEqual(await all.json(), { replayed: 3, alreadyGone: 0 });
    } finally {
      dashboard.close();
      http.closeAllConnections();
      await new Promise((r) => http.close(r));
    }
  });
});

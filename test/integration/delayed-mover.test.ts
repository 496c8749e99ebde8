// The mover's pipeline against a real server (issue 17): many due held jobs moved once each
// through a small window by two movers at once, never before their due time, and a move whose
// PubAck does not come leaves its held job un-acked (retried with the same msg id until it lands).
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { defineQueue, Producer, provisionQueue, TimeoutError } from "../../src/index.ts";
import { HDR } from "../../src/queue/headers.ts";
import { ServerClock } from "../../src/schedule/clock.ts";
import { HELD } from "../../src/schedule/held.ts";
import { Mover } from "../../src/schedule/mover.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

describe("delayed jobs: the mover's pipeline", () => {
  it("2,000 held jobs through two movers with a 64-job window: each moved once, none before due, the held stream emptied", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const q = defineQueue({ name: uniqueName("pipe"), scheduling: true });
    await provisionQueue(nc, q);
    const N = 2000;
    const p = new Producer(nc, q);
    // Published before any mover runs: the movers find 2,000 held jobs, most of them due at once.
    await p.publishMany(Array.from({ length: N }, (_, i) => ({ i })), { id: (_, i) => `m-${i}`, delayMs: (_, i) => 1 + (i % 400) });
    await p.close();
    const errors: Error[] = [];
    const moved = [0, 0];
    const movers = [0, 1].map((k) => new Mover(nc, q as never, { error: (e) => errors.push(e), moved: () => moved[k]!++ }, new ServerClock(), { window: 64 }));
    try {
      await Promise.all(movers.map((m) => m.start()));
      await waitFor(() => moved[0]! + moved[1]! >= N, `all ${N} moved (${moved[0]! + moved[1]!} so far)`, 30_000, 50);
      await waitFor(async () => (await jsm.streams.info(q.names.heldStream)).state.messages === 0, "the held stream emptied (every held job acked)", 10_000, 50);
    } finally {
      await Promise.all(movers.map((m) => m.stop()));
    }
    assert.deepEqual(errors.map((e) => e.message), [], "no move failed");
    assert.equal(moved[0]! + moved[1]!, N, "each held job moved once (a second move would report again)");
    assert.ok(moved[0]! > 0 && moved[1]! > 0, `both movers moved some (${moved.join(" + ")})`);
    const info = await jsm.streams.info(q.names.stream);
    assert.equal(info.state.messages, N, "the queue holds each job once");
    // Every job in the queue: its id once, stored (server clock) no earlier than its due time.
    const ids = new Set<string>();
    let early = 0;
    for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
      const sm = await jsm.streams.getMessage(q.names.stream, { seq });
      ids.add(sm!.header.get(HDR.msgId));
      if (Date.parse(sm!.timestamp) < Number(sm!.header.get(HELD.due))) early++;
    }
    assert.equal(ids.size, N, "distinct ids m-0 … m-1999");
    assert.equal(early, 0, "none entered the queue before its due time");
  });

  it("a move whose PubAck never comes does not ack its held job: it is retried with the same id and lands once the queue answers", async () => {
    const nc = await nats.connect();
    const jsm = await jetstreamManager(nc);
    const q = defineQueue({ name: uniqueName("lost"), scheduling: true });
    await provisionQueue(nc, q);
    // The queue's stream gone and a subscriber that swallows the moves: no PubAck ever comes.
    await jsm.streams.delete(q.names.stream);
    const swallowed: string[] = [];
    const sub = nc.subscribe(q.names.subject, { callback: (_e, m) => {
      swallowed.push(m.headers?.get(HDR.msgId) ?? "");
    } });
    const errors: Error[] = [];
    let moved = 0;
    const mover = new Mover(nc, q as never, { error: (e) => errors.push(e), moved: () => moved++ }, new ServerClock(), { moveTimeoutMs: 300 });
    const p = new Producer(nc, q);
    try {
      await mover.start();
      await p.publish({ x: 1 }, { id: "lost-1", delayMs: 50 });
      await waitFor(() => swallowed.length >= 2, "the move sent, timed out, and sent again", 10_000, 20);
      assert.deepEqual([...new Set(swallowed)], ["lost-1"], "every attempt carries the job's own msg id");
      assert.ok(errors.some((e) => e instanceof TimeoutError && /lost-1/.test(e.message)), `a TimeoutError naming the job: ${errors.map((e) => e.message).join("; ")}`);
      assert.equal(moved, 0, "no move reported");
      const held = await jsm.streams.info(q.names.heldStream);
      assert.equal(held.state.messages, 1, "the held job was not acked (a work-queue stream drops a message once acked)");
      // The queue comes back: the next attempt is confirmed, and only then is the held job acked.
      sub.unsubscribe();
      await provisionQueue(nc, q);
      await waitFor(() => moved === 1, "the move confirmed", 10_000, 20);
      await waitFor(async () => (await jsm.streams.info(q.names.heldStream)).state.messages === 0, "the held job acked", 10_000, 20);
      assert.equal((await jsm.streams.info(q.names.stream)).state.messages, 1, "the job in the queue once");
    } finally {
      await mover.stop();
      await p.close();
    }
  });
});

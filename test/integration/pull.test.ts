import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jetstream } from "@nats-io/jetstream";
import { defineQueue, provisionQueue } from "../../src/index.ts";
import { type Delivered, Puller } from "../../src/consumer/pull.ts";
import { uniqueName, useNats, waitFor } from "../support/ctx.ts";

const nats = useNats();

describe("Puller (several pull requests on one inbox)", () => {
  it("counts jobs against what it asked for and takes back exactly what expired requests did not send", async () => {
    const nc = await nats.connect();
    const q = defineQueue({ name: uniqueName("puller") });
    await provisionQueue(nc, q);
    const got: Delivered[] = [];
    const unfilled: number[] = [];
    const errors: Error[] = [];
    let silent = 0;
    // A grace period far past the test: only the server's own 408s can end a request here.
    const puller = new Puller(nc, q.names.stream, q.names.consumer, 1_000, {
      message: (m) => got.push(m),
      unfilled: (n) => unfilled.push(n),
      silent: () => silent++,
      error: (e) => errors.push(e),
    }, { graceMs: 600_000 });
    try {
      const js = jetstream(nc);
      for (let i = 0; i < 5; i++) await js.publish(q.names.subject, JSON.stringify({ i }));
      // Three requests open at once: 2 + 2 + 4 = 8 asked for, 5 there.
      puller.pull(2);
      puller.pull(2);
      puller.pull(4);
      assert.equal(puller.outstanding, 8);
      await waitFor(() => got.length === 5, "five jobs delivered");
      assert.equal(puller.outstanding, 3);
      assert.deepEqual(got.map((m) => m.seq), [1, 2, 3, 4, 5]);
      assert.ok(got.every((m) => m.deliveries === 1 && m.reply.startsWith("$JS.ACK.")));
      // The unfilled request expires: the server says how many of its jobs will not come.
      await waitFor(() => puller.outstanding === 0, "the expired request given back");
      assert.deepEqual(unfilled, [3]);
      assert.equal(puller.openRequests, 0);
      // Nothing was acked, so nothing more may arrive; a new request gets the next job.
      for (const m of got) m.ack();
      await js.publish(q.names.subject, JSON.stringify({ i: 5 }));
      puller.pull(1);
      await waitFor(() => got.length === 6, "the sixth job");
      assert.equal(got[5]!.seq, 6);
      assert.equal(puller.outstanding, 0);
      assert.equal(puller.openRequests, 0, "a filled request leaves no trace");
      assert.equal(silent, 0);
      assert.deepEqual(errors, []);
    } finally {
      puller.stop();
    }
  });

  it("gives the window back when the server stays silent past the grace period", async () => {
    const nc = await nats.connect();
    // Requests for a consumer that does not exist get no answer at all.
    let silent = 0;
    const unfilled: number[] = [];
    const puller = new Puller(nc, "JETQ_no_such_stream", "nobody", 1_000, {
      message: () => assert.fail("no job can come"),
      unfilled: (n) => unfilled.push(n),
      silent: () => silent++,
      error: () => {},
    }, { graceMs: 200 });
    try {
      puller.pull(3);
      puller.pull(2);
      await waitFor(() => silent === 1, "silence noticed", 10_000);
      assert.equal(puller.outstanding, 0);
      assert.deepEqual(unfilled, [5]);
    } finally {
      puller.stop();
    }
  });
});

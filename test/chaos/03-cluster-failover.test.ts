// Chaos 3: a 3-node cluster (infra/nats/cluster/node{1,2,3}.conf), stream and consumer with 3
// replicas. The stream leader is SIGKILLed mid-run and restarted later. No acknowledged job may be
// lost; producers and workers carry on; the pause in publishing and in completions is measured.
import assert from "node:assert/strict";
import { it } from "node:test";
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { defineQueue, Producer, provisionQueue, Worker } from "../../src/index.ts";
import { HDR } from "../../src/queue/headers.ts";
import { LocalNatsCluster } from "../support/cluster.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { connectChaos, missing } from "./common.ts";
import { pause, record } from "./report.ts";

const TOTAL = 8_000;
const RATE_PER_S = 400;

/** Tracks the longest gap between successive events after `from`. */
class Gaps {
  last = 0;
  from = Number.POSITIVE_INFINITY;
  max = 0;
  tick(now = Date.now()): void {
    if (this.last >= this.from) this.max = Math.max(this.max, now - this.last);
    else if (now >= this.from && this.last > 0) this.max = Math.max(this.max, now - this.from);
    this.last = now;
  }
}

it(`cluster failover: kill the stream leader of a replicas-3 queue mid-run, restart it later (${TOTAL} jobs)`, { timeout: 300_000 }, async () => {
  const cluster = await LocalNatsCluster.start();
  const admin = await connectChaos(cluster.servers);
  const pnc = await connectChaos(cluster.servers);
  const wncs = [await connectChaos(cluster.servers), await connectChaos(cluster.servers)];
  let producing = true;
  const workers: Worker[] = [];
  try {
    const q = defineQueue({ name: uniqueName("failover"), replicas: 3, ackWaitMs: 2_000, maxAttempts: 1_000, backoff: [100] });
    await provisionQueue(admin, q);
    const leader = await cluster.waitForLeader(admin, q.names.stream);

    const completed = new Set<string>();
    let records = 0;
    const doneGaps = new Gaps();
    const workerErrors = new Map<string, number>();
    const firstError = new Map<string, string>();
    workers.push(...wncs.map((nc) => new Worker(nc, q, async (job) => {
      records++;
      completed.add(job.id);
      doneGaps.tick();
    }, { concurrency: 16 })));
    for (const w of workers) {
      w.on("error", (e) => {
        workerErrors.set(e.name, (workerErrors.get(e.name) ?? 0) + 1);
        if (!firstError.has(e.name)) firstError.set(e.name, e.message.slice(0, 160));
      });
      await w.start();
    }

    // Producer: paced; a publish that fails is retried with the same id (the documented recovery),
    // so duplicates are dropped by the server and every id ends up acknowledged once.
    const producer = new Producer(pnc, q, { maxInFlight: 256, ackTimeoutMs: 2_000 });
    const acked = new Set<string>();
    const ackGaps = new Gaps();
    let retries = 0;
    let gaveUp = 0;
    const publishOne = async (id: string, n: number): Promise<void> => {
      const deadline = Date.now() + 60_000;
      for (;;) {
        try {
          await producer.publish({ n }, { id });
          acked.add(id);
          ackGaps.tick();
          return;
        } catch (err) {
          if (Date.now() > deadline || !producing) {
            gaveUp++;
            return;
          }
          retries++;
          await pause(200);
        }
      }
    };
    const started = Date.now();
    const produce = (async () => {
      const inflight = new Set<Promise<void>>();
      for (let n = 0; n < TOTAL && producing; n++) {
        const p = publishOne(`fo-${n}`, n).finally(() => inflight.delete(p));
        inflight.add(p);
        if (inflight.size >= 256) await Promise.race(inflight);
        const due = started + ((n + 1) / RATE_PER_S) * 1000;
        if (due > Date.now()) await pause(due - Date.now());
      }
      await Promise.all(inflight);
    })();

    await pause(6_000);
    const killedAt = Date.now();
    ackGaps.from = killedAt;
    doneGaps.from = killedAt;
    await cluster.kill(leader.name);
    const newLeader = await cluster.waitForLeader(admin, q.names.stream, { not: leader.name, timeoutMs: 60_000 });
    const electedMs = Date.now() - killedAt;
    await pause(6_000);
    const restartAt = Date.now();
    await cluster.restart(leader.name);
    // The restarted node catches up as a follower.
    await waitFor(async () => {
      const p = await cluster.placement(admin, q.names.stream).catch(() => undefined);
      return p?.replicas.find((r) => r.name === leader.name)?.current === true;
    }, `${leader.name} current again`, 60_000, 250);
    const rejoinMs = Date.now() - restartAt;

    await produce;
    try {
      await waitFor(() => [...acked].every((id) => completed.has(id)), `all ${acked.size} acked jobs completed`, 90_000, 200);
    } catch (err) {
      const lost = missing(acked, completed);
      console.log(`[chaos] failover: ${lost.length} acked ids not completed, e.g. ${lost.slice(0, 5).join(", ")}`);
      // Go on: the row is recorded and the assertions below fail with the figures.
      void err;
    }
    const jsm = await jetstreamManager(admin);
    // The work queue drains while the workers still run: an ack lost in the failover leaves its
    // job pending, and it is redelivered after ackWaitMs (2 s) and acked again (a duplicate, not
    // a loss). On a replicas-3 stream each removal is applied through the stream's raft log, so
    // the count may lag by a moment: poll with a deadline, then count.
    const remaining = async (): Promise<number> => (await jsm.streams.info(q.names.stream)).state.messages;
    await waitFor(async () => (await remaining()) === 0, "the work queue drained", 20_000, 100).catch(() => {});
    await Promise.all(workers.map((w) => w.stop({ timeoutMs: 5_000 })));
    workers.length = 0;
    await producer.close();
    const left = await remaining();
    // What is left, if anything, and whether the consumer still owes it to a worker.
    const leftover = left === 0 ? undefined : await explainLeftover(jsm, q.names.stream, q.names.consumer, completed);
    if (leftover) console.log(`[chaos] failover: ${left} left in stream: ${leftover.text}`);

    const lost = missing(acked, completed);
    const pauseMs = Math.max(ackGaps.max, doneGaps.max);
    const wErrs = [...workerErrors].map(([n, c]) => `${n} ${c} (first: ${firstError.get(n)})`).join(", ") || "none";
    record({
      scenario: "3 cluster failover",
      published: TOTAL,
      acked: acked.size,
      completed: completed.size,
      lost: lost.length,
      duplicates: records - completed.size,
      faults: 2,
      recoveryMs: pauseMs,
      note: `killed stream leader ${leader.name}, new leader ${newLeader.name} seen after ${electedMs} ms; longest pause: publishing ${ackGaps.max} ms, completions ${doneGaps.max} ms; ${retries} publish retries (same id), ${gaveUp} given up; ${leader.name} current again ${rejoinMs} ms after restart; ${left} left in stream${leftover ? ` (${leftover.text})` : ""}; worker errors: ${wErrs}`,
      ok: lost.length === 0 && acked.size === TOTAL,
    });
    assert.deepEqual(lost, [], "no acknowledged job lost");
    assert.equal(acked.size, TOTAL, "the producer carried on: every job was eventually acknowledged");
    assert.equal(gaveUp, 0);
    // Drained, or what is left is a copy of a job that completed. nats-server 2.9 can keep a
    // replicated work queue's copy whose removal was lost across a leader change (session 7's CI run
    // saw 1 left, 0 lost; session 8's failed here after a 10 s poll); the text says whether the
    // consumer still owes it.
    // A job left that never completed fails here (and as lost above).
    if (left > 0) {
      assert.ok(leftover, "the leftover was read");
      assert.deepEqual(leftover.notCompleted, [], `everything left in the stream was completed: ${leftover.text}`);
    }
  } finally {
    producing = false;
    await Promise.allSettled(workers.map((w) => w.stop({ timeoutMs: 5_000 })));
    await Promise.allSettled([admin, pnc, ...wncs].map((nc) => nc.close()));
    await cluster.stop();
  }
});

/**
 * Reads what a work queue still holds after its workers were done (at most 20 messages): each
 * message's sequence and job id, whether that id completed, and whether the consumer still owes
 * it ("owed": above the ack floor, not yet delivered or awaiting its ack).
 */
async function explainLeftover(jsm: JetStreamManager, stream: string, consumer: string, completed: Set<string>): Promise<{ text: string; notCompleted: string[] }> {
  const si = await jsm.streams.info(stream);
  const ci = await jsm.consumers.info(stream, consumer);
  const floor = ci.ack_floor.stream_seq;
  const msgs: Array<{ seq: number; id: string }> = [];
  for (let seq = si.state.first_seq; seq <= si.state.last_seq && msgs.length < 20; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m) msgs.push({ seq, id: m.header?.get(HDR.msgId) || `seq-${seq}` });
  }
  const notCompleted = msgs.filter((m) => !completed.has(m.id)).map((m) => m.id);
  const text = `${msgs.map((m) => `seq ${m.seq} ${m.id}${completed.has(m.id) ? " (completed)" : ""}${m.seq > floor ? " (owed)" : ""}`).join(", ")}; consumer ack floor ${floor}, ` +
    `${ci.num_pending} pending, ${ci.num_ack_pending} awaiting ack, ${ci.num_redelivered} redelivered, leader ${ci.cluster?.leader ?? "?"}`;
  return { text, notCompleted };
}

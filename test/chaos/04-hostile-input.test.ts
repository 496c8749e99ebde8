// Chaos 4: malformed messages published straight to the queue subject with the raw client (random
// bytes, truncated JSON, JSON failing the schema, payloads near max_payload, odd and oversized
// headers, forged Jetq-* headers). Each must land in the dead-letter queue with a reason; the
// worker must not crash or stall; good jobs interleaved with them must complete.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { it } from "node:test";
import { z } from "zod";
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { DeadLetterQueue, defineQueue, Producer, provisionQueue, queueStats, Worker } from "../../src/index.ts";
import { startLocalNats } from "../support/nats-server.ts";
import { uniqueName, waitFor } from "../support/ctx.ts";
import { connectChaos } from "./common.ts";
import { record } from "./report.ts";

const MALFORMED = 1_000;
const GOOD_EVERY = 4; // one good job after every 4 malformed ones

const schema = z.object({ kind: z.literal("good"), n: z.number().int() });

interface Hostile {
  label: string;
  data: Uint8Array;
  headers?: MsgHdrs;
}

const enc = new TextEncoder();
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/** What the worker must do with these bytes: run the handler ("good") or dead-letter them, and why. */
function expectedOutcome(data: Uint8Array): "good" | "decode" | "validation" {
  let v: unknown;
  try {
    if (data.length === 0) return "decode";
    v = JSON.parse(strictUtf8.decode(data));
  } catch {
    return "decode";
  }
  return schema.safeParse(v).success ? "good" : "validation";
}

function hostile(i: number, maxPayload: number): Hostile {
  const rnd = (n: number): Uint8Array => new Uint8Array(randomBytes(n));
  switch (i % 9) {
    case 0:
      return { label: "random bytes", data: rnd(1 + (i % 512)) };
    case 1: {
      const full = JSON.stringify({ kind: "good", n: i, pad: "x".repeat(i % 200) });
      return { label: "truncated JSON", data: enc.encode(full.slice(0, 1 + (i % (full.length - 1)))) };
    }
    case 2: {
      const bad: unknown[] = [{ kind: "good", n: String(i) }, { kind: "bad", n: i }, [], null, i, "good", { n: 1.5, kind: "good" }, true];
      return { label: "JSON failing the schema", data: enc.encode(JSON.stringify(bad[i % bad.length])) };
    }
    case 3: {
      // A few payloads right under max_payload (header bytes count against it too); the rest mid-sized.
      const big = i % 90 === 3;
      const size = big ? maxPayload - 256 : 16_384 + (i % 4096);
      const body = i % 2 === 0 ? rnd(size) : enc.encode(JSON.stringify({ kind: "good", n: "x".repeat(size - 32) }));
      return { label: big ? "payload near max_payload" : "large payload", data: body };
    }
    case 4: {
      const h = natsHeaders();
      h.set("X-Empty-Ish", " ");
      return { label: "empty payload with headers", data: new Uint8Array(0), headers: h };
    }
    case 5: {
      const h = natsHeaders();
      for (let k = 0; k < 200; k++) h.append(`X-Many-${k}`, `v${k}`);
      h.set("X-Oversized", "o".repeat(60_000));
      h.append("X-Repeated", "a");
      h.append("X-Repeated", "b");
      return { label: "odd and oversized headers", data: enc.encode(`{"kind":"good","n":`), headers: h };
    }
    case 6: {
      const h = natsHeaders();
      h.set("Jetq-Reason", "permanent");
      h.set("Jetq-Attempts", "999999");
      h.set("Jetq-Id", `forged-${"i".repeat(4_000)}`);
      h.set("Jetq-Source-Seq", "-1");
      h.set("Jetq-Source-Stream", "SOMEONE_ELSE");
      h.set("Jetq-Failed-At", "not a date");
      h.set("Jetq-Replay-Of", "NaN");
      h.set("Jetq-Error", "forged error");
      h.set("Nats-Msg-Id", `forged-unique-${i}`);
      return { label: "forged Jetq-* headers", data: enc.encode(`{"kind":"evil","n":${i}}`), headers: h };
    }
    case 7: {
      const deep = "[".repeat(20_000) + "]".repeat(20_000);
      const variants = [deep, `{"__proto__":{"polluted":true},"kind":"good"}`, `{"kind":"good","n":1e400}`, "\uFEFF{}", `{"kind":"good","n":1}garbage`];
      return { label: "pathological JSON", data: enc.encode(variants[i % variants.length]!) };
    }
    default: {
      // Invalid UTF-8 inside otherwise JSON-looking bytes.
      const b = enc.encode(`{"kind":"good","n":${i},"s":"..."}`);
      b[b.length - 5] = 0xff;
      return { label: "invalid UTF-8", data: b };
    }
  }
}

it(`hostile input: ${MALFORMED} malformed messages land in the DLQ with a reason; good jobs still complete`, { timeout: 180_000 }, async () => {
  const srv = await startLocalNats();
  const nc = await connectChaos(srv.servers);
  const wnc = await connectChaos(srv.servers);
  let worker: Worker<z.output<typeof schema>> | undefined;
  try {
    const maxPayload = nc.info!.max_payload;
    const q = defineQueue({ name: uniqueName("hostile"), schema, maxAttempts: 3, backoff: [50], ackWaitMs: 5_000 });
    await provisionQueue(nc, q);

    const completed = new Set<number>();
    let handled = 0;
    const workerErrors: string[] = [];
    const deadReasons = new Map<string, number>();
    worker = new Worker(wnc, q, async (job) => {
      handled++;
      completed.add(job.data.n);
    }, { concurrency: 16 });
    worker.on("error", (e: Error) => {
      if (workerErrors.length < 20) workerErrors.push(`${e.name}: ${e.message.slice(0, 200)}`);
    });
    worker.on("dead", (_ev, reason) => deadReasons.set(reason, (deadReasons.get(reason) ?? 0) + 1));
    await worker.start();

    const js = jetstream(nc);
    const producer = new Producer(nc, q);
    // seq -> what was sent and what must happen to it
    const sent = new Map<number, { label: string; data: Uint8Array; expect: "good" | "decode" | "validation" }>();
    const goodIds = new Set<number>();
    let refusedByClient = 0;
    let good = 0;
    for (let i = 0; i < MALFORMED; i += 25) {
      const batch: Array<Promise<void>> = [];
      for (let k = i; k < Math.min(MALFORMED, i + 25); k++) {
        const h = hostile(k, maxPayload);
        batch.push(
          js.publish(q.names.subject, h.data, h.headers ? { headers: h.headers, timeout: 10_000 } : { timeout: 10_000 }).then(
            (ack) => {
              sent.set(ack.seq, { label: h.label, data: h.data, expect: expectedOutcome(h.data) });
            },
            (err: unknown) => {
              // The client refusing to send something (e.g. over max_payload) is fine: nothing stored.
              refusedByClient++;
              if (refusedByClient < 5) console.log(`[chaos] hostile: client refused ${h.label}: ${String(err)}`);
            },
          ),
        );
        if ((k + 1) % GOOD_EVERY === 0) {
          const n = 1_000_000 + good++;
          goodIds.add(n);
          batch.push(producer.publish({ kind: "good", n }).then(() => undefined));
        }
      }
      await Promise.all(batch);
    }
    const bad = [...sent.values()].filter((s) => s.expect !== "good");
    for (const s of sent.values()) if (s.expect === "good") goodIds.add(-1); // accidental good ones are handled but not tracked by n
    const expectedGood = good;

    const dlq = new DeadLetterQueue(wnc, q);
    let dlqCount = 0;
    try {
      await waitFor(async () => {
        dlqCount = await dlq.count();
        return dlqCount >= bad.length && [...goodIds].filter((n) => n >= 0).every((n) => completed.has(n));
      }, `${bad.length} dead letters and ${expectedGood} good jobs completed`, 30_000, 250);
    } catch (err) {
      const st = await queueStats(nc, q);
      console.log(`[chaos] hostile: ${String(err)}: dlq=${dlqCount}/${bad.length}, good completed ${completed.size}/${expectedGood}, queue stats ${JSON.stringify(st)}; worker errors: ${workerErrors.join(" | ")}`);
      // Go on: the figures below are recorded and the assertions say what is missing.
    }

    // Every dead letter: one of ours, with the reason its bytes call for, payload intact.
    const entries = await dlq.list({ limit: 10_000 });
    const wrongReason: string[] = [];
    const seenSeq = new Set<number>();
    let intact = 0;
    for (const e of entries) {
      const s = sent.get(e.sourceSeq);
      if (!s) {
        wrongReason.push(`dead letter ${e.seq} points at sourceSeq ${e.sourceSeq}, not a message we sent`);
        continue;
      }
      seenSeq.add(e.sourceSeq);
      if (e.reason !== s.expect) wrongReason.push(`${s.label}: ${e.reason} (expected ${s.expect})`);
      if (Buffer.compare(Buffer.from(e.raw), Buffer.from(s.data)) === 0) intact++;
      assert.ok(e.error.message.length > 0, "the reason comes with an error message");
    }
    const running = worker.isRunning;
    await producer.close();
    const stuck = new Map<string, number>();
    for (const [seq, s] of sent) if (s.expect !== "good" && !seenSeq.has(seq)) stuck.set(s.label, (stuck.get(s.label) ?? 0) + 1);
    const stuckNote = stuck.size === 0 ? "" : `; NOT dead-lettered: ${[...stuck].map(([l, c]) => `${c} x ${l}`).join(", ")} (${workerErrors[0] ?? ""})`;
    const ok = entries.length === bad.length && seenSeq.size === bad.length && wrongReason.length === 0 && running;
    record({
      scenario: "4 hostile input",
      published: MALFORMED + expectedGood,
      acked: sent.size + expectedGood,
      completed: seenSeq.size + completed.size,
      lost: bad.length - seenSeq.size + [...goodIds].filter((n) => n >= 0 && !completed.has(n)).length,
      duplicates: handled - completed.size,
      faults: MALFORMED,
      recoveryMs: undefined,
      note: `${bad.length} malformed stored -> ${entries.length} dead letters (${[...deadReasons].map(([r, c]) => `${r} ${c}`).join(", ")}), ${intact} byte-identical; ${completed.size}/${expectedGood} good jobs completed; ${refusedByClient} refused by the client; worker errors ${workerErrors.length}${stuckNote}`,
      ok,
    });
    assert.equal(refusedByClient, 0, "every hostile message reached the server");
    assert.equal(entries.length, bad.length, "one dead letter per malformed message");
    assert.equal(seenSeq.size, bad.length, "no duplicates, none missing");
    assert.deepEqual(wrongReason, [], "each dead letter has the reason its payload calls for");
    assert.equal(intact, bad.length, "the original bytes are kept");
    assert.ok(running, "the worker kept running");
  } finally {
    await worker?.stop({ timeoutMs: 5_000 });
    await Promise.allSettled([nc.close(), wnc.close()]);
    await srv.stop();
  }
});

// Results and progress: a web request enqueues a report, shows its progress and waits for its result.
// Run: NATS_URL=nats://127.0.0.1:4222 node --conditions=jetq-source examples/results.ts
import { connect } from "@nats-io/transport-node";
import { z } from "zod";
import { defineQueue, JobFailedError, Jobs, Producer, provisionQueue, Worker } from "jetq";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const reports = defineQueue({
  name: `reports_${process.pid}`,
  schema: z.object({ month: z.string() }),
  results: { keepMs: 24 * 3600 * 1000 }, // keep each job's state and result for a day
  resultSchema: z.object({ url: z.string(), rows: z.number() }),
});
await provisionQueue(nc, reports);

const worker = new Worker(nc, reports, async (job) => {
  for (let page = 1; page <= 3; page++) {
    await new Promise((r) => setTimeout(r, 150)); // render a page
    job.progress({ page, of: 3 });
  }
  return { url: `s3://reports/${job.data.month}.pdf`, rows: 1200 }; // the job's result
});
await worker.start();

const jobs = new Jobs(nc, reports);
const ac = new AbortController();
const following = (async () => {
  for await (const e of jobs.events({ signal: ac.signal })) {
    if (e.type === "progress") console.log(`progress ${e.id}: ${JSON.stringify(e.progress)}`);
  }
})();

const producer = new Producer(nc, reports);
const receipt = await producer.publish({ month: "2026-11" }, { id: "report-2026-11" });
try {
  const result = await receipt.result<{ url: string; rows: number }>({ timeoutMs: 30_000 });
  console.log(`result: ${result.url} (${result.rows} rows)`);
} catch (err) {
  if (err instanceof JobFailedError) console.log(`failed: ${err.reason}: ${err.error.message}`);
  else throw err;
}
const info = await jobs.get("report-2026-11");
console.log(`state: ${info?.state}, attempt ${info?.attempt}, ran ${info!.finishedAt!.getTime() - info!.startedAt!.getTime()} ms`);

ac.abort();
await following;
await worker.stop();
await producer.close();
const { jetstreamManager } = await import("@nats-io/jetstream");
const jsm = await jetstreamManager(nc);
for (const s of [reports.names.stream, reports.names.dlqStream, reports.names.ledgerStream, reports.names.stateStream]) await jsm.streams.delete(s);
await nc.close();

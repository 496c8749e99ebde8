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
  let shown: string | undefined;
  for await (const e of jobs.events({ signal: ac.signal })) {
    if (e.type === "gap" || e.id !== "report-2026-11") continue;
    // One record per job: a write replaced before this reader got it is missed (the last progress
    // and the result are written back to back), but every later event carries the latest progress.
    const progress = e.progress === undefined ? undefined : JSON.stringify(e.progress);
    if (progress !== undefined && progress !== shown) console.log(`progress ${e.id}: ${(shown = progress)}`);
    if (e.type === "completed" || e.type === "dead") break;
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

const stopFollowing = setTimeout(() => ac.abort(), 30_000); // the follower ends at the job's last event
await following;
clearTimeout(stopFollowing);
await worker.stop();
await producer.close();
const { jetstreamManager } = await import("@nats-io/jetstream");
const jsm = await jetstreamManager(nc);
for (const s of [reports.names.stream, reports.names.dlqStream, reports.names.ledgerStream, reports.names.stateStream]) await jsm.streams.delete(s);
await nc.close();

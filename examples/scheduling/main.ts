/**
 * Delayed and repeatable jobs: one job delayed by a second, and a schedule that ticks every
 * second three times; a worker prints each job as it starts.
 *
 *   NATS_URL=nats://127.0.0.1:4222 node examples/scheduling/main.ts
 *
 * Environment: NATS_URL (default nats://127.0.0.1:4222), QUEUE (default "scheduling_example").
 */
import { connect } from "@nats-io/transport-node";
import { defineQueue, Producer, provisionQueue, Schedules, Worker } from "jetq";

const nc = await connect({ servers: process.env.NATS_URL ?? "nats://127.0.0.1:4222" });
const reminders = defineQueue({ name: process.env.QUEUE ?? "scheduling_example", scheduling: true });
await provisionQueue(nc, reminders);

let seen = 0;
let finish = (): void => {};
const done = new Promise<void>((resolve) => (finish = resolve));
const worker = new Worker(nc, reminders, (job) => {
  const what = job.schedule ? `tick of "${job.schedule.name}" at ${job.schedule.tick.toISOString()}` : `delayed job ${job.id}`;
  console.log(`ran ${what}, attempt ${job.attempt}`);
  if (++seen === 4) finish();
});
await worker.start(); // also moves due delayed jobs and fires the schedules' ticks

const producer = new Producer(nc, reminders);
await producer.publish({ text: "a second later" }, { delayMs: 1_000, id: `hello-${Date.now()}` });

const schedules = new Schedules(nc, reminders);
await schedules.upsert(`beat-${Date.now()}`, { everyMs: 1_000, limit: 3 }, { text: "beat" });

await done;
await worker.stop();
await producer.close();
await nc.close();

// Compile-time checks of the public types (run by `npm run typecheck`); the runtime test is trivial.
import assert from "node:assert/strict";
import { it } from "node:test";
import { z } from "zod";
import type { NatsConnection } from "@nats-io/transport-node";
import { defineQueue, Producer, Worker, DeadLetterQueue, type JobData, type JobInput } from "../../src/index.ts";

type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const expectType = <T extends true>(_: T): void => {};

const schema = z.object({ to: z.string(), count: z.string().transform((s) => Number(s)) });
const q = defineQueue({ name: "typed", schema });
expectType<Equal<JobInput<typeof q>, { to: string; count: string }>>(true);
expectType<Equal<JobData<typeof q>, { to: string; count: number }>>(true);

function usage(nc: NatsConnection): void {
  const p = new Producer(nc, q);
  void p.publish({ to: "a", count: "1" });
  // @ts-expect-error count must be the schema's input type (string)
  void p.publish({ to: "a", count: 1 });
  const w = new Worker(nc, q, async (job) => {
    expectType<Equal<typeof job.data, { to: string; count: number }>>(true);
    expectType<Equal<typeof job.signal, AbortSignal>>(true);
  });
  w.on("dead", (ev, reason, err) => {
    expectType<Equal<typeof ev.id, string>>(true);
    expectType<Equal<typeof err, Error>>(true);
    void reason;
  });
  const dlq = new DeadLetterQueue(nc, q);
  void dlq.list().then((entries) => {
    expectType<Equal<(typeof entries)[number]["data"], { to: string; count: number } | undefined>>(true);
  });
  const untyped = defineQueue({ name: "any" });
  new Worker(nc, untyped, async (job) => {
    expectType<Equal<typeof job.data, unknown>>(true);
  });
}

it("public types compile (checked by tsc)", () => {
  assert.equal(typeof usage, "function");
});

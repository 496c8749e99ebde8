// The pg-boss contender (optional, PostgreSQL): insert() in chunks of 1,000 with 4 in flight;
// draining with fetch({ batchSize }) + an awaited complete(ids) per batch, since its work() loop
// waits at least 0.5 s between empty polls.
import { PgBoss } from "pg-boss";
import { forEachConcurrent, makeJob, sleep } from "../lib/common.ts";
import type { DrainHandle } from "./nats.ts";

export const PGBOSS_SCHEMA = "jetq_bench";

export async function startBoss(url: string): Promise<PgBoss> {
  const boss = new PgBoss({ connectionString: url, schema: PGBOSS_SCHEMA, max: 8, schedule: false, supervise: false });
  boss.on("error", () => {});
  await boss.start();
  return boss;
}

export async function bossPublish(boss: PgBoss, name: string, jobs: number, ids: boolean, tag: string): Promise<void> {
  const chunks = Math.ceil(jobs / 1000);
  await forEachConcurrent(chunks, 4, async (c) => {
    const batch = [];
    for (let i = c * 1000; i < Math.min(jobs, (c + 1) * 1000); i++) {
      // pg-boss ids are UUIDs; its dedupe key is singletonKey.
      batch.push(ids ? { data: makeJob(i), singletonKey: `${tag}-${i}` } : { data: makeJob(i) });
    }
    await boss.insert(name, batch);
  });
}

export function bossDrainWorker(boss: PgBoss, name: string, concurrency: number, onDone: () => void): DrainHandle {
  let stopped = false;
  let loop: Promise<void> | undefined;
  const run = async (): Promise<void> => {
    while (!stopped) {
      const got = await boss.fetch<object>(name, { batchSize: concurrency });
      if (got.length === 0) {
        await sleep(5);
        continue;
      }
      for (const j of got) JSON.stringify(j.data); // the no-op handler touches the payload
      await boss.complete(name, got.map((j) => j.id));
      for (let i = 0; i < got.length; i++) onDone();
    }
  };
  return {
    start: () => {
      loop = run().catch(() => {});
    },
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

import { Command } from "commander";
import { listWorkers, type WorkerInfo } from "../fleet/list.ts";
import { loadQueue } from "./connect.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { ago, formatDuration, parseInteger, table, truncate } from "./format.ts";

function row(w: WorkerInfo, now: number): string[] {
  return [
    w.host,
    String(w.pid),
    w.queue,
    `${w.inFlight}/${w.concurrency}`,
    `${Math.round(w.utilization * 100)}%`,
    formatDuration(Math.max(0, now - w.startedAt.getTime())),
    ago(w.lastSeenAt, now),
    w.paused ? "paused" : "",
    w.version,
    truncate(w.jobs.map((j) => `${j.id} (#${j.attempt}, ${formatDuration(Math.max(0, now - j.since.getTime()))})`).join(", ") || "-", 60),
  ];
}

/** `jetq workers [queue]`: the live workers, from their announcements. */
export function workersCommand(): Command {
  return new Command("workers")
    .description("list the live workers (of one queue, or all): host, pid, jobs running, utilization, uptime")
    .argument("[queue]", "queue name; omit for the workers of every queue")
    .option("--limit <n>", "most workers shown (1 to 1000)", "100")
    .addHelpText(
      "after",
      `
Workers announce themselves every 5 s (Worker option \`announce\`); one that stops is removed at
once, one that dies drops off 15 s after its last announcement. IN FLIGHT is jobs running / concurrency;
UTILIZATION is in flight / concurrency averaged over the last announcement interval.`,
    )
    .action(async (name: string | undefined, flags: { limit: string }, cmd: Command) => {
      const g = globals(cmd);
      const limit = parseInteger(flags.limit, "--limit", 1);
      await withNats(g, async (nc) => {
        if (name !== undefined) await loadQueue(nc, name);
        const { workers, total } = await listWorkers(nc, { ...(name !== undefined ? { queue: name } : {}), limit: Math.min(limit, 1000) });
        if (g.json) {
          printJson({ ...(name !== undefined ? { queue: name } : {}), total, count: workers.length, workers });
          return;
        }
        const where = name === undefined ? "" : ` of queue "${name}"`;
        if (workers.length === 0) {
          print(`No live workers${where}. Workers announce themselves within 5 s of starting (unless started with announce: false).`);
          return;
        }
        const now = Date.now();
        print(table(["HOST", "PID", "QUEUE", "IN FLIGHT", "UTILIZATION", "UP", "SEEN", "", "VERSION", "JOBS (attempt, running for)"], workers.map((w) => row(w, now)), new Set([1, 3, 4])));
        print(`\n${workers.length} shown of ${total} live worker(s)${where}.${total > workers.length ? ` Show more with --limit ${Math.min(1000, total)}.` : ""}`);
      });
    });
}

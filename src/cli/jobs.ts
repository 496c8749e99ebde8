import { Command, Option } from "commander";
import { type JobPage, listJobs, type ListedJob, type ListedJobState } from "../state/list.ts";
import { loadQueue } from "./connect.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { ago, formatBytes, formatDuration, parseInteger, table, truncate } from "./format.ts";

function rows(page: JobPage, now: number): { header: string[]; rows: string[][]; right: Set<number> } {
  const width = Math.max(30, (process.stdout.columns ?? 120) - 70);
  switch (page.state) {
    case "active":
      return {
        header: ["SEQ", "JOB ID", "ATTEMPT", "RUNNING FOR", "WORKER"],
        rows: page.jobs.map((j: ListedJob) => [String(j.seq), truncate(j.id, 40), String(j.attempt ?? ""), formatDuration(Math.max(0, now - (j.since?.getTime() ?? now))), truncate(j.worker ?? "", 40)]),
        right: new Set([0, 2]),
      };
    case "delayed":
      return {
        header: ["SEQ", "JOB ID", "DUE", "", "SIZE", "PAYLOAD"],
        rows: page.jobs.map((j) => {
          const due = j.dueAt?.getTime() ?? now;
          return [String(j.seq), truncate(j.id, 40), j.dueAt?.toISOString() ?? "", due > now ? `in ${formatDuration(due - now)}` : "due", formatBytes(j.size ?? 0), truncate(j.preview ?? "", width)];
        }),
        right: new Set([0]),
      };
    default:
      return {
        header: ["SEQ", "JOB ID", "PUBLISHED", "SIZE", "PAYLOAD"],
        rows: page.jobs.map((j) => [String(j.seq), truncate(j.id, 40), ago(j.publishedAt, now), formatBytes(j.size ?? 0), truncate(j.preview ?? "", width)]),
        right: new Set([0]),
      };
  }
}

interface JobsFlags {
  state: ListedJobState;
  limit: string;
  after?: string;
}

/** `jetq jobs <queue>`: a page of waiting, active or delayed jobs. */
export function jobsCommand(): Command {
  return new Command("jobs")
    .description("list a queue's waiting, active (running) or delayed jobs, a page at a time by sequence")
    .argument("<queue>", "queue name")
    .addOption(new Option("--state <state>", "which jobs").choices(["waiting", "active", "delayed"]).default("waiting"))
    .option("--limit <n>", "most jobs shown (1 to 1000)", "50")
    .option("--after <seq>", "start after this sequence (the next page: printed under the list)")
    .addHelpText(
      "after",
      `
waiting: stored in the queue and not running (new, retrying after a failure, or handed back);
active: running in a live worker (from the workers' announcements, at most 5 s old);
delayed: published with --delay/delayMs/runAt and not due yet (a queue provisioned with --scheduling).`,
    )
    .action(async (name: string, flags: JobsFlags, cmd: Command) => {
      const g = globals(cmd);
      const limit = parseInteger(flags.limit, "--limit", 1);
      const after = flags.after === undefined ? 0 : parseInteger(flags.after, "--after", 0);
      await withNats(g, async (nc) => {
        const { queue } = await loadQueue(nc, name);
        const page = await listJobs(nc, queue, { state: flags.state, limit: Math.min(limit, 1000), after });
        if (g.json) {
          printJson({ queue: name, ...page });
          return;
        }
        if (page.jobs.length === 0) {
          print(after > 0 ? `No ${page.state} jobs in queue "${name}" after sequence ${after} (${page.total} in all).` : `No ${page.state} jobs in queue "${name}".`);
          return;
        }
        const t = rows(page, Date.now());
        print(table(t.header, t.rows, t.right));
        const next = page.next !== undefined ? ` More: jetq jobs ${name} --state ${page.state} --after ${page.next}${flags.limit !== "50" ? ` --limit ${limit}` : ""}` : "";
        print(`\n${page.jobs.length} shown of ${page.total} ${page.state} job(s) in queue "${name}".${next}`);
      });
    });
}

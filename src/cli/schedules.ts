import { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { startScheduling } from "../schedule/run.ts";
import { type ScheduleInfo, Schedules } from "../schedule/schedules.ts";
import { loadSchedulingQueue } from "./connect.ts";
import { globals, note, print, printJson, untilSignal, withNats } from "./context.ts";
import { UsageError } from "./exit.ts";
import { table } from "./format.ts";

function specText(s: ScheduleInfo["spec"]): string {
  return "cron" in s ? `cron "${s.cron}"${s.tz ? ` ${s.tz}` : ""}` : `every ${s.everyMs} ms`;
}

const iso = (d: Date | undefined): string => (d ? d.toISOString() : "-");

async function schedulesOf(nc: NatsConnection, name: string): Promise<Schedules> {
  return new Schedules(nc, await loadSchedulingQueue(nc, name));
}

/** `jetq schedules …`: a queue's repeatable jobs, and a process that fires them and moves delayed jobs. */
export function schedulesCommand(): Command {
  const cmd = new Command("schedules").description("repeatable jobs of a queue (provisioned with --scheduling), and running its schedules and delayed jobs");
  cmd
    .command("list")
    .description("list the queue's schedules")
    .argument("<queue>", "queue name")
    .action(async (name: string, _f: unknown, sub: Command) => {
      const g = globals(sub);
      await withNats(g, async (nc) => {
        const all = await (await schedulesOf(nc, name)).list();
        if (g.json) return printJson({ queue: name, schedules: all });
        if (all.length === 0) return print(`queue "${name}" has no schedules`);
        print(table(["NAME", "SPEC", "RUNS", "LAST TICK", "NEXT TICK"], all.map((s) => [s.name, specText(s.spec), String(s.runs), iso(s.lastTick), iso(s.nextTick)])));
      });
    });
  cmd
    .command("show")
    .description("show one schedule: spec, payload, last and next tick")
    .argument("<queue>", "queue name")
    .argument("<name>", "schedule name")
    .action(async (queue: string, name: string, _f: unknown, sub: Command) => {
      const g = globals(sub);
      await withNats(g, async (nc) => {
        const s = await (await schedulesOf(nc, queue)).get(name);
        if (!s) throw new UsageError(`Queue "${queue}" has no schedule "${name}". List them with: jetq schedules list ${queue}`);
        if (g.json) return printJson({ queue, ...s });
        print(
          [
            `schedule "${s.name}" of queue "${queue}"`,
            `spec:      ${specText(s.spec)}${s.spec.limit !== undefined ? `, limit ${s.spec.limit}` : ""}, missed ticks: ${s.spec.missed ?? "once"}`,
            `runs:      ${s.runs}`,
            `last tick: ${iso(s.lastTick)}`,
            `next tick: ${iso(s.nextTick)}`,
            `updated:   ${iso(s.updatedAt)}`,
            `data:      ${JSON.stringify(s.data)}`,
          ].join("\n"),
        );
      });
    });
  cmd
    .command("remove")
    .description("remove a schedule (jobs of past ticks stay in the queue)")
    .argument("<queue>", "queue name")
    .argument("<name>", "schedule name")
    .action(async (queue: string, name: string, _f: unknown, sub: Command) => {
      const g = globals(sub);
      await withNats(g, async (nc) => {
        const removed = await (await schedulesOf(nc, queue)).remove(name);
        if (!removed) throw new UsageError(`Queue "${queue}" has no schedule "${name}". List them with: jetq schedules list ${queue}`);
        if (g.json) printJson({ queue, name, removed });
        else print(`removed schedule "${name}" of queue "${queue}"`);
      });
    });
  cmd
    .command("run")
    .description("fire the queue's schedules and move its delayed jobs when due, until Ctrl-C (any number may run beside workers)")
    .argument("<queue>", "queue name (provisioned with --scheduling)")
    .action(async (name: string, _flags: unknown, sub: Command) => {
      const g = globals(sub);
      await withNats(
        g,
        async (nc) => {
          const queue = await loadSchedulingQueue(nc, name);
          const signal = untilSignal();
          try {
            const running = await startScheduling(nc, queue, { error: (err) => note(`jetq: ${err.message}`) });
            try {
              print(g.json ? JSON.stringify({ queue: name, running: true }) : `running the schedules and delayed jobs of queue "${name}"; press Ctrl-C to stop`);
              await Promise.race([signal.promise, nc.closed()]);
            } finally {
              await running.stop();
            }
          } finally {
            signal.dispose();
          }
        },
        true,
      );
    });
  return cmd;
}

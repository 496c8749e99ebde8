import { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { pauseQueue, pauseState, resumeQueue } from "../flow/pause.ts";
import { defineQueue, type Queue } from "../queue/define.ts";
import { loadQueue } from "./connect.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { UsageError } from "./exit.ts";
import { formatDuration, parseDuration } from "./format.ts";

/** The queue as the server has it: the pause record follows its stream's replicas. */
async function serverQueue(nc: NatsConnection, name: string): Promise<Queue<unknown, unknown>> {
  const { stream } = await loadQueue(nc, name);
  const replicas = stream.config.num_replicas;
  return defineQueue({ name, ...(replicas === 3 || replicas === 5 ? { replicas } : {}) });
}

/** `jetq pause <queue> [--for 10m]`. */
export function pauseCommand(): Command {
  return new Command("pause")
    .description("stop every worker of a queue from starting jobs (running jobs finish); holds across restarts until `jetq resume`")
    .argument("<queue>", "queue name")
    .option("--for <duration>", "resume by itself after this long (e.g. 10m, 2h)")
    .action(async (name: string, flags: { for?: string }, cmd: Command) => {
      const g = globals(cmd);
      defineQueue({ name });
      let forMs: number | undefined;
      if (flags.for !== undefined) {
        forMs = parseDuration(flags.for, "--for");
        if (forMs < 1) throw new UsageError("--for must be positive");
      }
      await withNats(g, async (nc) => {
        const q = await serverQueue(nc, name);
        const untilMs = forMs === undefined ? undefined : Date.now() + forMs;
        await pauseQueue(nc, q, untilMs === undefined ? {} : { untilMs });
        const state = await pauseState(nc, q);
        if (g.json) printJson({ queue: name, ...state });
        else if (untilMs === undefined) print(`Queue ${name} paused: its workers start no jobs until \`jetq resume ${name}\`.`);
        else print(`Queue ${name} paused for ${formatDuration(forMs!)} (until ${new Date(untilMs).toISOString()}).`);
      });
    });
}

/** `jetq resume <queue>`. */
export function resumeCommand(): Command {
  return new Command("resume")
    .description("let the workers of a paused queue start jobs again")
    .argument("<queue>", "queue name")
    .action(async (name: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      defineQueue({ name });
      await withNats(g, async (nc) => {
        const q = await serverQueue(nc, name);
        const was = (await pauseState(nc, q)).paused;
        await resumeQueue(nc, q);
        if (g.json) printJson({ queue: name, paused: false, wasPaused: was });
        else print(was ? `Queue ${name} resumed.` : `Queue ${name} was not paused; nothing changed.`);
      });
    });
}

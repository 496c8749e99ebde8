import { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ConfigError } from "../errors.ts";
import { JobNotFoundError } from "./exit.ts";
import { API, apiCode, mapNatsError } from "../natserr.ts";
import { defineQueue, type Queue } from "../queue/define.ts";
import { Jobs, type JobsEvent } from "../state/jobs.ts";
import type { JobInfo } from "../state/record.ts";
import { cliJsOptions, loadQueue } from "./connect.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { ago, clean, formatDuration, truncate } from "./format.ts";

/** The queue as its state stream says (results.keepMs from the stream's max_age). */
async function loadStateQueue(nc: NatsConnection, name: string): Promise<Queue<unknown, unknown>> {
  const { queue } = await loadQueue(nc, name);
  const jsm = await jetstreamManager(nc, cliJsOptions()).catch((err: unknown) => {
    throw mapNatsError(err, `open queue "${name}"`);
  });
  try {
    const info = await jsm.streams.info(queue.names.stateStream);
    const keepMs = Math.max(1000, Math.round((info.config.max_age ?? 0) / 1e6));
    // A queue with scheduling has a held stream: get() then finds delayed jobs too.
    const held = await jsm.streams.info(queue.names.heldStream).then(
      () => true,
      () => false,
    );
    return defineQueue({ name, results: { keepMs }, ...(held ? { scheduling: true } : {}) });
  } catch (err) {
    if (apiCode(err) !== API.streamNotFound) throw mapNatsError(err, `open the job state of queue "${name}"`);
    throw new ConfigError(
      `Queue "${name}" keeps no job state (no stream ${queue.names.stateStream}): define it with \`results: { keepMs }\` and provision it again.`,
      { cause: err },
    );
  }
}

function render(i: JobInfo): string {
  const lines = [`job ${clean(i.id)} (seq ${i.seq}): ${i.state}, attempt ${i.attempt}`, `  published ${i.publishedAt.toISOString()} (${ago(i.publishedAt)})`];
  if (i.startedAt) lines.push(`  started   ${i.startedAt.toISOString()}`);
  if (i.finishedAt) lines.push(`  finished  ${i.finishedAt.toISOString()}${i.startedAt ? ` (ran ${formatDuration(i.finishedAt.getTime() - i.startedAt.getTime())})` : ""}`);
  if (i.retryAt) lines.push(`  retry at  ${i.retryAt.toISOString()}`);
  if (i.runAt) lines.push(`  due       ${i.runAt.toISOString()}`);
  if (i.progress !== undefined) lines.push(`  progress  ${truncate(JSON.stringify(i.progress), 200)}`);
  if (i.result !== undefined) lines.push(`  result    ${truncate(JSON.stringify(i.result), 500)}`);
  if (i.error) lines.push(`  error     ${clean(i.error.name)}: ${truncate(i.error.message, 500)}`);
  if (i.deadLetter) lines.push(`  dead letter: ${clean(i.deadLetter.reason)} (jetq dlq list to inspect or replay it)`);
  return lines.join("\n");
}

function line(e: JobsEvent): string {
  if (e.type === "gap") return `gap        missed ${e.missed} state change(s)`;
  const parts = [e.at.toISOString(), e.type.padEnd(9), clean(e.id), `attempt ${e.attempt}`];
  if (e.type === "progress" && e.progress !== undefined) parts.push(truncate(JSON.stringify(e.progress), 120));
  if (e.type === "completed" && e.result !== undefined) parts.push(truncate(JSON.stringify(e.result), 120));
  if (e.error) parts.push(`${clean(e.error.name)}: ${truncate(e.error.message, 160)}`);
  if (e.reason) parts.push(`(${e.reason})`);
  return parts.join("  ");
}

/** `jetq job <queue> <id>`: one job's state. */
export function jobCommand(): Command {
  return new Command("job")
    .description("show one job's state, attempts, timings, progress, and result or error (a queue defined with results)")
    .argument("<queue>", "queue name")
    .argument("<id>", "job id (the id given at publish, or seq-<n>)")
    .action(async (name: string, id: string, _flags: unknown, cmd: Command) => {
      const g = globals(cmd);
      await withNats(g, async (nc) => {
        const info = await new Jobs(nc, await loadStateQueue(nc, name)).get(id);
        if (!info) {
          throw new JobNotFoundError(
            `No job ${JSON.stringify(id)} known in queue "${name}": an id of yours waiting longer than the queue's duplicate window (found by id only within it), expired after the queue's results.keepMs, or never published.`,
          );
        }
        if (g.json) printJson({ queue: name, ...info });
        else print(render(info));
      });
    });
}

/** `jetq events <queue>`: live job state changes, one line each, until Ctrl-C. */
export function eventsCommand(): Command {
  return new Command("events")
    .description("follow a queue's job state changes live, one line per event, until Ctrl-C (a queue defined with results)")
    .argument("<queue>", "queue name")
    .action(async (name: string, _flags: unknown, cmd: Command) => {
      const g = globals(cmd);
      await withNats(g, async (nc) => {
        const jobs = new Jobs(nc, await loadStateQueue(nc, name));
        const stop = new AbortController();
        const onSignal = (): void => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        void nc.closed().then(onSignal);
        try {
          for await (const e of jobs.events({ signal: stop.signal })) print(g.json ? JSON.stringify(e) : line(e));
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
        }
      }, true);
    });
}

import { Command, Option } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { deadLetterJson, DeadLetterQueue, type DeadLetter, type DeadLetterFilter } from "../dlq/dlq.ts";
import type { DeadLetterReason } from "../dlq/route.ts";
import { DeadLetterNotFoundError } from "../errors.ts";
import { mapNatsError } from "../natserr.ts";
import { cliJsOptions, loadQueue } from "./connect.ts";
import { globals, print, printJson, stdoutIsTTY, withNats } from "./context.ts";
import { UsageError } from "./exit.ts";
import { ago, clean, formatDuration, parseDuration, parseInteger, table, truncate } from "./format.ts";
import { confirm } from "./prompt.ts";

const REASONS: readonly DeadLetterReason[] = ["max_attempts", "permanent", "decode", "validation", "max_deliveries"];

interface FilterFlags {
  error?: string;
  olderThan?: string;
  reason?: DeadLetterReason;
}

function filterOf(f: FilterFlags): DeadLetterFilter {
  const out: DeadLetterFilter = {};
  if (f.error !== undefined) {
    if (f.error === "") throw new UsageError("--error needs some text to look for");
    out.errorIncludes = f.error;
  }
  if (f.olderThan !== undefined) out.olderThanMs = parseDuration(f.olderThan, "--older-than");
  if (f.reason !== undefined) out.reason = f.reason;
  return out;
}

function hasFilter(f: DeadLetterFilter): boolean {
  return f.errorIncludes !== undefined || f.olderThanMs !== undefined || f.reason !== undefined;
}

function describeFilter(f: DeadLetterFilter): string {
  const parts: string[] = [];
  if (f.errorIncludes !== undefined) parts.push(`error containing "${f.errorIncludes}"`);
  if (f.olderThanMs !== undefined) parts.push(`dead-lettered more than ${formatDuration(f.olderThanMs)} ago`);
  if (f.reason !== undefined) parts.push(`reason ${f.reason}`);
  return parts.length ? ` (${parts.join(", ")})` : "";
}

async function dlqState(nc: NatsConnection, stream: string): Promise<{ messages: number; lastSeq: number }> {
  try {
    const si = await (await jetstreamManager(nc, cliJsOptions())).streams.info(stream);
    return { messages: si.state.messages, lastSeq: si.state.last_seq };
  } catch (err) {
    throw mapNatsError(err, `read dead-letter stream ${stream}`);
  }
}

/**
 * Visits the dead letters matching `filter` (the selection replayAll/purge apply) from `fromSeq`
 * up to `lastSeq` (the stream's end when the command began, so entries added meanwhile do not
 * make the walk endless), in pages. `visit` returns false to stop.
 */
async function walk(
  dlq: DeadLetterQueue,
  fromSeq: number,
  lastSeq: number,
  filter: DeadLetterFilter,
  visit: (e: DeadLetter) => boolean,
): Promise<void> {
  let seq = fromSeq;
  while (seq <= lastSeq) {
    const page = await dlq.list({ ...filter, fromSeq: seq, limit: 256 });
    if (page.length === 0) return;
    for (const e of page) {
      if (e.seq > lastSeq || !visit(e)) return;
      seq = e.seq + 1;
    }
  }
}

function entryJson(e: DeadLetter): Record<string, unknown> {
  return {
    ...deadLetterJson(e),
    data: e.data ?? null,
    ...(e.data === undefined ? { rawBase64: Buffer.from(e.raw).toString("base64") } : {}),
  };
}

function parseSeq(text: string): number {
  return parseInteger(text, "the dead-letter sequence", 1);
}

/** Counts the entries a bulk command will touch, to say so in the confirmation prompt. */
async function countMatching(nc: NatsConnection, dlq: DeadLetterQueue, stream: string, f: DeadLetterFilter): Promise<number> {
  const state = await dlqState(nc, stream);
  if (!hasFilter(f)) return state.messages;
  let n = 0;
  await walk(dlq, 1, state.lastSeq, f, () => {
    n++;
    return true;
  });
  return n;
}

const filterOptions = (cmd: Command): Command =>
  cmd
    .option("--error <text>", "only entries whose error name or message contains this text (case-insensitive)")
    .option("--older-than <duration>", "only entries dead-lettered at least this long ago, e.g. 1h or 7d")
    .addOption(new Option("--reason <reason>", "only entries dead-lettered for this reason").choices(REASONS));

interface BulkFlags extends FilterFlags {
  all?: boolean;
  yes?: boolean;
}

/** Which entries a replay/purge addresses: one sequence, or a selection. */
function selection(seqText: string | undefined, flags: BulkFlags, verb: string): { seq: number } | { filter: DeadLetterFilter } {
  const filter = filterOf(flags);
  if (seqText !== undefined) {
    if (flags.all || hasFilter(filter)) throw new UsageError(`Give either a dead-letter sequence or --all/--error/--older-than/--reason to ${verb}, not both`);
    return { seq: parseSeq(seqText) };
  }
  if (!flags.all && !hasFilter(filter)) {
    throw new UsageError(`Say which dead letters to ${verb}: a sequence (see jetq dlq list), --all, or a filter (--error, --older-than, --reason)`);
  }
  return { filter };
}

function listCommand(): Command {
  return filterOptions(
    new Command("list")
      .description("list dead letters, oldest first")
      .argument("<queue>", "queue name")
      .option("--limit <n>", "most entries shown", "50")
      .option("--from <seq>", "start at this dead-letter sequence (paging)"),
  ).action(async (name: string, flags: FilterFlags & { limit: string; from?: string }, cmd: Command) => {
    const g = globals(cmd);
    const limit = parseInteger(flags.limit, "--limit", 1);
    const from = flags.from === undefined ? 1 : parseSeq(flags.from);
    const filter = filterOf(flags);
    await withNats(g, async (nc) => {
      const { queue } = await loadQueue(nc, name);
      const dlq = new DeadLetterQueue(nc, queue);
      const state = await dlqState(nc, queue.names.dlqStream);
      const entries: DeadLetter[] = [];
      let more = false;
      const now = Date.now();
      await walk(dlq, from, state.lastSeq, filter, (e) => {
        if (entries.length >= limit) {
          more = true;
          return false;
        }
        entries.push(e);
        return true;
      });
      if (g.json) {
        printJson({ queue: name, total: state.messages, count: entries.length, more, entries: entries.map(entryJson) });
        return;
      }
      if (entries.length === 0) {
        print(state.messages === 0 ? `No dead letters in queue "${name}".` : `No dead letters in queue "${name}" match${describeFilter(filter)} (${state.messages} in total).`);
        return;
      }
      const width = stdoutIsTTY() ? Math.max(30, (process.stdout.columns ?? 120) - 70) : 80;
      print(
        table(
          ["SEQ", "JOB ID", "REASON", "ATTEMPTS", "FAILED", "ERROR"],
          entries.map((e) => [
            String(e.seq),
            truncate(e.id, 28),
            e.reason,
            String(e.attempts),
            ago(e.failedAt, now),
            truncate(`${e.error.name}: ${e.error.message}`, width),
          ]),
          new Set([0, 3]),
        ),
      );
      const next = more ? ` More: jetq dlq list ${name} --from ${entries.at(-1)!.seq + 1}` : "";
      print(
        `\n${entries.length} shown of ${state.messages} dead letter(s) in queue "${name}"${describeFilter(filter)}.${next}\n` +
          `Inspect: jetq dlq show ${name} <seq>   Replay: jetq dlq replay ${name} <seq>   Purge: jetq dlq purge ${name} <seq>`,
      );
    });
  });
}

function showCommand(): Command {
  return new Command("show")
    .description("show one dead letter: its error, attempts, timestamps, headers and payload")
    .argument("<queue>", "queue name")
    .argument("<seq>", "dead-letter sequence (from jetq dlq list)")
    .action(async (name: string, seqText: string, _flags: object, cmd: Command) => {
      const g = globals(cmd);
      const seq = parseSeq(seqText);
      await withNats(g, async (nc) => {
        const { queue } = await loadQueue(nc, name);
        const e = await new DeadLetterQueue(nc, queue).get(seq);
        if (g.json) {
          printJson({ queue: name, ...entryJson(e) });
          return;
        }
        const rows = [
          ["job id", e.id],
          ["reason", e.reason],
          ["error", `${e.error.name}: ${e.error.message}`],
          ["attempts", String(e.attempts)],
          ["failed at", `${e.failedAt.toISOString()} (${ago(e.failedAt)})`],
          ["published at", e.publishedAt ? `${e.publishedAt.toISOString()} (${ago(e.publishedAt)})` : "unknown"],
          ["source", `${queue.names.stream} seq ${e.sourceSeq}`],
          ...Object.entries(e.headers).map(([k, v]) => [`header ${k}`, v]),
        ];
        const payload = e.data !== undefined ? JSON.stringify(e.data, null, 2) : `(not JSON; ${e.raw.length} bytes, base64) ${Buffer.from(e.raw).toString("base64")}`;
        print(`dead letter ${e.seq} of queue "${name}"\n${table(["", ""], rows).split("\n").slice(1).map((l) => `  ${l}`).join("\n")}\npayload:\n${payload}`);
      });
    });
}

function replayCommand(): Command {
  return filterOptions(
    new Command("replay")
      .description("put dead letters back on the queue as fresh jobs (new attempt count), then remove them from the DLQ")
      .argument("<queue>", "queue name")
      .argument("[seq]", "one dead-letter sequence; or use --all / a filter")
      .option("--all", "every dead letter (narrowed by any filter given)")
      .option("-y, --yes", "do not ask for confirmation (required without a terminal)"),
  )
    .addHelpText("after", "\nReplaying one entry needs no confirmation; replaying several asks first (or --yes).")
    .action(async (name: string, seqText: string | undefined, flags: BulkFlags, cmd: Command) => {
      const g = globals(cmd);
      const sel = selection(seqText, flags, "replay");
      await withNats(g, async (nc, deadline) => {
        const { queue } = await loadQueue(nc, name);
        const dlq = new DeadLetterQueue(nc, queue);
        if ("seq" in sel) {
          const r = await dlq.replay(sel.seq);
          if (g.json) printJson({ queue: name, replayed: 1, jobs: [{ deadLetterSeq: sel.seq, id: r.id, seq: r.seq }] });
          else print(`replayed dead letter ${sel.seq} as job ${clean(r.id)} (queue seq ${r.seq})`);
          return;
        }
        const n = await countMatching(nc, dlq, queue.names.dlqStream, sel.filter);
        if (n === 0) {
          if (g.json) printJson({ queue: name, replayed: 0 });
          else print(`No dead letters in queue "${name}" match${describeFilter(sel.filter)}; nothing to replay.`);
          return;
        }
        await deadline.untimed(confirm(`Replay ${n} dead letter(s) of queue "${name}"${describeFilter(sel.filter)} back onto the queue?`, `replay ${n} dead letter(s)`, flags.yes === true));
        // The work grows with the dead letters chosen: each request keeps its own timeout, the whole has none.
        deadline.lift();
        const r = await dlq.replayAll(sel.filter);
        if (g.json) printJson({ queue: name, ...r });
        else {
          const gone = r.alreadyGone > 0 ? `; ${r.alreadyGone} were taken meanwhile by another replay or purge (nothing lost)` : "";
          print(`replayed ${r.replayed} dead letter(s) of queue "${name}"${gone}`);
        }
      });
    });
}

function purgeCommand(): Command {
  return filterOptions(
    new Command("purge")
      .description("delete dead letters for good")
      .argument("<queue>", "queue name")
      .argument("[seq]", "one dead-letter sequence; or use --all / a filter")
      .option("--all", "every dead letter (narrowed by any filter given)")
      .option("-y, --yes", "do not ask for confirmation (required without a terminal)"),
  )
    .addHelpText("after", "\nAlways asks for confirmation (or --yes): purged jobs cannot be recovered.")
    .action(async (name: string, seqText: string | undefined, flags: BulkFlags, cmd: Command) => {
      const g = globals(cmd);
      const sel = selection(seqText, flags, "purge");
      await withNats(g, async (nc, deadline) => {
        const { queue } = await loadQueue(nc, name);
        const dlq = new DeadLetterQueue(nc, queue);
        if ("seq" in sel) {
          const e = await dlq.get(sel.seq);
          await deadline.untimed(confirm(`Delete dead letter ${sel.seq} (job ${clean(e.id)}) of queue "${name}"? This cannot be undone.`, "purge a dead letter", flags.yes === true));
          // Someone may take it while the prompt waits: that is an answer, not a failure.
          const removed = await dlq.remove(sel.seq).then(
            () => true,
            (err: unknown) => {
              if (err instanceof DeadLetterNotFoundError) return false;
              throw err;
            },
          );
          if (g.json) printJson({ queue: name, purged: removed ? 1 : 0 });
          else print(removed ? `purged dead letter ${sel.seq} of queue "${name}"` : `dead letter ${sel.seq} was already gone`);
          return;
        }
        const n = await countMatching(nc, dlq, queue.names.dlqStream, sel.filter);
        if (n === 0) {
          if (g.json) printJson({ queue: name, purged: 0 });
          else print(`No dead letters in queue "${name}" match${describeFilter(sel.filter)}; nothing to purge.`);
          return;
        }
        await deadline.untimed(confirm(`Delete ${n} dead letter(s) of queue "${name}"${describeFilter(sel.filter)}? This cannot be undone.`, `purge ${n} dead letter(s)`, flags.yes === true));
        deadline.lift();
        const purged = await dlq.purge(sel.filter);
        if (g.json) printJson({ queue: name, purged });
        else print(`purged ${purged} dead letter(s) of queue "${name}"`);
      });
    });
}

export function dlqCommand(): Command {
  return new Command("dlq")
    .description("inspect, replay and purge a queue's dead letters")
    .addCommand(listCommand())
    .addCommand(showCommand())
    .addCommand(replayCommand())
    .addCommand(purgeCommand());
}

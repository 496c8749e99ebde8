import { Command, Option } from "commander";
import { ProvisionConflictError } from "../errors.ts";
import { defineQueue, type QueueOptions } from "../queue/define.ts";
import { provisionQueue } from "../queue/provision.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { formatDuration, parseDuration, parseInteger, table } from "./format.ts";

interface ProvisionFlags {
  maxAttempts?: string;
  ackWait?: string;
  maxAckPending?: string;
  maxMessages?: string;
  maxBytes?: string;
  replicas?: string;
  storage?: "file" | "memory";
  duplicateWindow?: string;
  dlqMaxMessages?: string;
  dlqMaxAge?: string;
  update?: boolean;
  scheduling?: boolean;
}

/** Turns the flags into queue options (only the ones given: the rest keep jetq's defaults). */
export function queueOptionsFromFlags(name: string, f: ProvisionFlags): QueueOptions {
  const o: QueueOptions = { name };
  if (f.maxAttempts !== undefined) o.maxAttempts = parseInteger(f.maxAttempts, "--max-attempts", 1);
  if (f.ackWait !== undefined) o.ackWaitMs = parseDuration(f.ackWait, "--ack-wait");
  if (f.maxAckPending !== undefined) o.maxAckPending = parseInteger(f.maxAckPending, "--max-ack-pending", 1);
  if (f.maxMessages !== undefined) o.maxMessages = parseInteger(f.maxMessages, "--max-messages", 1, true);
  if (f.maxBytes !== undefined) o.maxBytes = parseInteger(f.maxBytes, "--max-bytes", 1, true);
  if (f.replicas !== undefined) o.replicas = parseInteger(f.replicas, "--replicas", 1);
  if (f.storage !== undefined) o.storage = f.storage;
  if (f.duplicateWindow !== undefined) o.duplicateWindowMs = parseDuration(f.duplicateWindow, "--duplicate-window");
  if (f.scheduling === true) o.scheduling = true;
  if (f.dlqMaxMessages !== undefined || f.dlqMaxAge !== undefined) {
    o.deadLetter = {};
    if (f.dlqMaxMessages !== undefined) o.deadLetter.maxMessages = parseInteger(f.dlqMaxMessages, "--dlq-max-messages", 1, true);
    if (f.dlqMaxAge !== undefined) o.deadLetter.maxAgeMs = parseDuration(f.dlqMaxAge, "--dlq-max-age");
  }
  return o;
}

const NANOS = new Set(["ack_wait", "duplicate_window", "max_age"]);

/** A config value from a conflict, in the units the options use (durations, not nanoseconds). */
function showValue(field: string, v: unknown): string {
  if (NANOS.has(field) && typeof v === "number") return v === 0 ? "0 (none)" : formatDuration(v / 1e6);
  if (typeof v === "number" && v === -1) return "-1 (none)";
  return JSON.stringify(v) ?? "(unset)";
}

function bounds(maxMessages: number, maxBytes: number): string {
  if (maxMessages < 0 && maxBytes < 0) return "unbounded";
  const parts = [maxMessages >= 0 ? `${maxMessages} jobs` : "", maxBytes >= 0 ? `${maxBytes} bytes` : ""].filter(Boolean);
  return `bounded at ${parts.join(" / ")}`;
}

export function provisionCommand(): Command {
  return new Command("provision")
    .description("create a queue's stream, consumer and dead-letter stream, or check that they match (idempotent)")
    .argument("<queue>", "queue name (letters, digits, - and _)")
    .option("--max-attempts <n>", "deliveries before a job is dead-lettered (default 5)")
    .option("--ack-wait <duration>", "redelivery delay of a job whose worker died, e.g. 30s (default 30s)")
    .option("--max-ack-pending <n>", "jobs in flight across all workers at once (default 1000)")
    .option("--max-messages <n>", "bound on stored jobs; publishes beyond it fail (default -1: none)")
    .option("--max-bytes <n>", "bound on stored bytes (default -1: none)")
    .option("--replicas <n>", "stream replicas in a cluster: 1, 3 or 5 (default 1)")
    .addOption(new Option("--storage <kind>", "where jobs are kept (default file)").choices(["file", "memory"]))
    .option("--duplicate-window <duration>", "how long job ids are remembered for deduplication (default 2m)")
    .option("--dlq-max-messages <n>", "bound on stored dead letters (default -1: none)")
    .option("--dlq-max-age <duration>", "drop dead letters older than this (default: keep)")
    .option("--scheduling", "delayed and repeatable jobs (publish --delay, jetq schedules): adds the streams JETQ_<queue>_HELD and JETQ_<queue>_SCHED")
    .option("--update", "apply changed limits to an existing queue instead of failing with a conflict")
    .addHelpText(
      "after",
      `
Running it again with the same options changes nothing. With different options it fails
(exit 4) and lists each differing field, unless --update is given; retention, storage and
subjects can never be changed in place.

Example:
  jetq provision emails --max-attempts 8 --ack-wait 1m --max-messages 100000`,
    )
    .action(async (name: string, flags: ProvisionFlags, cmd: Command) => {
      const g = globals(cmd);
      const queue = defineQueue(queueOptionsFromFlags(name, flags));
      await withNats(g, async (nc) => {
        let result;
        try {
          result = await provisionQueue(nc, queue, { update: flags.update === true });
        } catch (err) {
          if (err instanceof ProvisionConflictError) {
            // The library's message speaks API (nanoseconds, { update: true }); say it in flags.
            const what = err.message.slice(0, err.message.indexOf(" exists with"));
            const hint = /cannot be changed in place/.test(err.message)
              ? "These cannot be changed in place: use a new queue name, or remove the old one deliberately."
              : "Re-run with --update to apply the new settings, or pass options that match.";
            const fields = err.conflicts.map((c) => `${c.field} ${showValue(c.field, c.actual)} on the server, ${showValue(c.field, c.expected)} requested`).join("; ");
            throw new ProvisionConflictError(`${what} exists with a different configuration: ${fields}. ${hint} Nothing was changed.`, err.conflicts);
          }
          throw err;
        }
        const n = queue.names;
        const config = {
          maxAttempts: queue.maxAttempts,
          ackWaitMs: queue.ackWaitMs,
          maxAckPending: queue.maxAckPending,
          maxMessages: queue.maxMessages,
          maxBytes: queue.maxBytes,
          replicas: queue.replicas,
          storage: queue.storage,
          duplicateWindowMs: queue.duplicateWindowMs,
          deadLetter: { ...queue.deadLetter },
          scheduling: queue.scheduling,
        };
        if (g.json) {
          printJson({ queue: queue.name, result, names: { ...n }, config });
          return;
        }
        print(
          table(
            ["OBJECT", "NAME", "RESULT"],
            [
              ["stream", n.stream, result.stream],
              ["consumer", `${n.stream} > ${n.consumer}`, result.consumer],
              ["dead-letter stream", n.dlqStream, result.deadLetterStream],
              ["ledger stream", n.ledgerStream, result.ledgerStream],
              ...(result.heldStream === undefined ? [] : [["held stream (delayed jobs)", n.heldStream, result.heldStream]]),
              ...(result.scheduleStream === undefined ? [] : [["schedule stream", n.scheduleStream, result.scheduleStream]]),
            ],
          ),
        );
        if (result.migrated) print("\nmigrated from jetq 0.1: attempts are counted in the ledger now (max_deliver unlimited); the advisory stream was removed");
        print(
          `\nqueue "${queue.name}": publish to ${n.subject}; max attempts ${queue.maxAttempts}, ack wait ${formatDuration(queue.ackWaitMs)}, ` +
            `max in flight ${queue.maxAckPending}, ${bounds(queue.maxMessages, queue.maxBytes)}, ` +
            `${queue.replicas} replica(s), ${queue.storage} storage`,
        );
      });
    });
}

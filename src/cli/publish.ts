import { createInterface } from "node:readline";
import { Command } from "commander";
import { Producer, type PublishReceipt } from "../producer/producer.ts";
import { loadQueue } from "./connect.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { UsageError } from "./exit.ts";

interface PublishFlags {
  id?: string;
  header: string[];
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(
      `${where} is not valid JSON (${(err as Error).message}). Quote it for the shell, e.g. jetq publish emails '{"to":"a@b.c"}'`,
      { cause: err },
    );
  }
}

function parseHeaders(list: readonly string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const h of list) {
    const i = h.indexOf("=");
    if (i <= 0) throw new UsageError(`Expected --header as name=value, got "${h}"`);
    out[h.slice(0, i)] = h.slice(i + 1);
  }
  return out;
}

const collect = (v: string, prev: string[]): string[] => [...prev, v];

/** Publishes in the CLI: one job given as an argument, or one job per line of stdin (NDJSON). */
export function publishCommand(): Command {
  return new Command("publish")
    .description("publish a job (JSON) to a queue; without a payload argument, publish one job per line of stdin")
    .argument("<queue>", "queue name")
    .argument("[json]", "the job payload as JSON; omit to read JSON lines from stdin")
    .option("--id <id>", "idempotency key: a second publish with the same id within the duplicate window is dropped")
    .option("-H, --header <name=value>", "extra header carried with the job (repeatable)", collect, [] as string[])
    .addHelpText(
      "after",
      `
Examples:
  jetq publish emails '{"to":"ada@example.com"}' --id welcome-ada
  cat jobs.ndjson | jetq publish emails`,
    )
    .action(async (name: string, json: string | undefined, flags: PublishFlags, cmd: Command) => {
      const g = globals(cmd);
      const headers = parseHeaders(flags.header);
      let single: unknown;
      if (json !== undefined) single = parseJson(json, "The payload");
      else if (process.stdin.isTTY) {
        throw new UsageError(`Give the job as an argument (jetq publish ${name} '{"k":"v"}') or pipe JSON lines to stdin.`);
      } else if (flags.id !== undefined) {
        throw new UsageError("--id applies to a single job given as an argument, not to jobs read from stdin");
      }
      await withNats(g, async (nc) => {
        const { queue } = await loadQueue(nc, name);
        const producer = new Producer(nc, queue);
        try {
          if (json !== undefined) {
            const r = await producer.publish(single, { ...(flags.id !== undefined ? { id: flags.id } : {}), headers });
            if (g.json) printJson({ queue: name, ...r });
            else if (r.duplicate) print(`job ${r.id} was already in queue "${name}" (seq ${r.seq}); the duplicate was dropped`);
            else print(`published job ${r.id} to queue "${name}" (seq ${r.seq})`);
            return;
          }
          const result = await publishLines(producer, headers);
          if (g.json) printJson({ queue: name, ...result });
          else {
            const range = result.published > 0 ? ` (seq ${result.firstSeq}-${result.lastSeq})` : "";
            const dup = result.duplicates > 0 ? `, ${result.duplicates} duplicate(s) dropped` : "";
            print(`published ${result.published} job(s) to queue "${name}"${range}${dup}`);
          }
        } finally {
          await producer.close();
        }
      });
    });
}

interface LinesResult {
  published: number;
  duplicates: number;
  firstSeq: number;
  lastSeq: number;
}

/**
 * Publishes each non-empty stdin line, pipelined through the producer's window but never
 * holding more than `window` unconfirmed publishes (a large file is streamed, not buffered).
 * Stops at the first failure, after the publishes already sent have settled.
 */
async function publishLines(producer: Producer<unknown>, headers: Record<string, string>, window = 256): Promise<LinesResult> {
  const res: LinesResult = { published: 0, duplicates: 0, firstSeq: 0, lastSeq: 0 };
  const inFlight = new Set<Promise<void>>();
  let failure: Error | undefined;
  const record = (r: PublishReceipt): void => {
    if (r.duplicate) res.duplicates++;
    else {
      res.published++;
      if (res.firstSeq === 0 || r.seq < res.firstSeq) res.firstSeq = r.seq;
      if (r.seq > res.lastSeq) res.lastSeq = r.seq;
    }
  };
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let lineNo = 0;
  try {
    for await (const line of rl) {
      lineNo++;
      if (line.trim() === "") continue;
      const data = parseJson(line, `Line ${lineNo} of stdin`);
      const at = lineNo;
      const p: Promise<void> = producer.publish(data, { headers }).then(record, (err: Error) => {
        failure ??= Object.assign(err, { message: `line ${at}: ${err.message}` });
      });
      inFlight.add(p);
      void p.finally(() => inFlight.delete(p));
      if (inFlight.size >= window) await Promise.race(inFlight);
      if (failure) break;
    }
  } finally {
    rl.close();
    await Promise.allSettled(inFlight);
  }
  if (failure) {
    process.stderr.write(`jetq: ${res.published} job(s) were published before the failure; the lines after it were not sent.\n`);
    throw failure;
  }
  return res;
}

import { isUtf8 } from "node:buffer";
import type { Readable } from "node:stream";
import { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { ConnectionError, JetqError, TimeoutError, ValidationError } from "../errors.ts";
import { Producer, type PublishReceipt } from "../producer/producer.ts";
import { cliJsOptions, loadSchedulingQueue, loadQueue } from "./connect.ts";
import { clean, parseDuration, parseInteger, safeText } from "./format.ts";
import { withFlowControl } from "./stats.ts";
import { globals, print, printJson, withNats } from "./context.ts";
import { UsageError } from "./exit.ts";

/** What a stdin publish that stopped early had done, for `--json` (on the error object). */
export interface PartialPublish {
  queue: string;
  /** Lines stored (duplicates included). */
  stored: number;
  /** Of those, lines the server already had (same msg id). */
  duplicates: number;
  /** The first line not known to be stored: send again from here. */
  resumeFromLine: number;
  /** Lines after `resumeFromLine` that were stored anyway (do not send them again). */
  storedAfter: number[];
  /** Lines sent but not confirmed: they may or may not be stored. */
  unconfirmed: number[];
}

const partials = new WeakMap<object, PartialPublish>();

/** The partial publish an error ended, if it ended one. */
export function partialOf(err: unknown): PartialPublish | undefined {
  return typeof err === "object" && err !== null ? partials.get(err) : undefined;
}

/**
 * Said once per publish: the CLI has the payload as JSON only, not the queue's zod schema (that
 * lives in the application's code), so a payload that does not fit it is found by the worker.
 */
function schemaNote(name: string, json: boolean): void {
  const text = `the CLI cannot check queue "${name}"'s zod schema (it lives in your code): a payload that does not fit it is dead-lettered by the worker with reason "validation" (see jetq dlq list ${name}).`;
  if (json) process.stderr.write(`${JSON.stringify({ warning: text })}\n`);
  else process.stderr.write(safeText(`jetq: note: ${text}\n`));
}

interface PublishFlags {
  id?: string;
  delay?: string;
  priority?: string;
  group?: string;
  header: string[];
}

function parseJson(text: string, where: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const hint = where.startsWith("Line") ? "Each line must be one JSON document." : `Quote it for the shell, e.g. jetq publish emails '{"to":"a@b.c"}'`;
    throw new UsageError(`${where} is not valid JSON (${(err as Error).message}). ${hint}`, { cause: err });
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
    .option("--delay <duration>", "run the job(s) no earlier than this long from now, e.g. 30s, 5m (the queue must be provisioned with --scheduling)")
    .option("--priority <level>", "the job's priority on a queue with priorities: 0 is the most urgent (single job only)")
    .option("--group <key>", "the job's group on a queue with group limits (single job only)")
    .addHelpText(
      "after",
      `
Examples:
  jetq publish emails '{"to":"ada@example.com"}' --id welcome-ada
  jetq publish emails '{"to":"ada@example.com"}' --priority 0
  jetq publish emails '{"to":"ada@example.com"}' --delay 30s
  cat jobs.ndjson | jetq publish emails`,
    )
    .action(async (name: string, json: string | undefined, flags: PublishFlags, cmd: Command) => {
      const g = globals(cmd);
      const headers = parseHeaders(flags.header);
      const delayMs = flags.delay === undefined ? undefined : parseDuration(flags.delay, "--delay");
      let single: unknown;
      if (json !== undefined) single = parseJson(json, "The payload");
      else if (process.stdin.isTTY) {
        throw new UsageError(`Give the job as an argument (jetq publish ${name} '{"k":"v"}') or pipe JSON lines to stdin.`);
      } else if (flags.id !== undefined || flags.priority !== undefined || flags.group !== undefined) {
        throw new UsageError("--id, --priority and --group apply to a single job given as an argument, not to jobs read from stdin");
      }
      const priority = flags.priority === undefined ? undefined : parseInteger(flags.priority, "--priority", 0);
      await withNats(g, async (nc, deadline) => {
        let queue = delayMs === undefined ? (await loadQueue(nc, name)).queue : await loadSchedulingQueue(nc, name);
        if (priority !== undefined || flags.group !== undefined) {
          // Levels and group limits are read from the server (the name alone does not tell).
          const jsm = await jetstreamManager(nc, cliJsOptions());
          queue = await withFlowControl(jsm, queue, (await loadQueue(nc, name)).stream.config.subjects ?? []);
        }
        schemaNote(name, g.json);
        const producer = new Producer(nc, queue);
        try {
          if (json !== undefined) {
            const r = await producer.publish(single, {
              ...(flags.id !== undefined ? { id: flags.id } : {}),
              headers,
              ...(delayMs !== undefined ? { delayMs } : {}),
              ...(priority !== undefined ? { priority } : {}),
              ...(flags.group !== undefined ? { group: flags.group } : {}),
            });
            if (g.json) printJson({ queue: name, ...r });
            else if (r.duplicate) print(`job ${clean(r.id)} was already in queue "${name}" (seq ${r.seq}); the duplicate was dropped`);
            else print(`published job ${clean(r.id)} to queue "${name}" (seq ${r.seq})`);
            return;
          }
          // A stdin publish lasts as long as its input; each line has its own confirmation wait.
          deadline.lift();
          const result = await publishLines(nc, producer, headers, process.stdin, name, 256, delayMs, g.json);
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

/** What {@link publishLines} reports when every line was stored. */
export interface LinesResult {
  published: number;
  duplicates: number;
  firstSeq: number;
  lastSeq: number;
}

/** The longest line read when the server does not say its `max_payload` (NATS's default). */
const DEFAULT_MAX_LINE = 1024 * 1024;
/** How long to wait for unconfirmed publishes to settle once the connection closed under them. */
const CLOSE_GRACE_MS = 1_000;

type Line = { no: number; text: string } | { no: number; error: JetqError };

/**
 * Splits `input` into lines as bytes, so that a line longer than `maxBytes` is refused after
 * reading `maxBytes` of it (a 300 MB line is never held in memory), invalid UTF-8 is refused
 * (never turned into U+FFFD), a UTF-8 byte order mark on line 1 is dropped, and CRLF works.
 * An error item ends the iteration.
 */
export async function* readLines(input: AsyncIterable<Buffer | string>, maxBytes: number): AsyncGenerator<Line> {
  let parts: Buffer[] = [];
  let size = 0;
  let no = 1;
  const finish = (last: Buffer): Line => {
    let bytes = parts.length === 0 ? last : Buffer.concat([...parts, last]);
    parts = [];
    size = 0;
    if (no === 1 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) bytes = bytes.subarray(3);
    if (bytes.at(-1) === 0x0d) bytes = bytes.subarray(0, -1);
    if (!isUtf8(bytes)) return { no, error: new UsageError(`Line ${no} of stdin is not valid UTF-8; jobs are JSON text. Convert it first (e.g. iconv -f latin1 -t utf-8).`) };
    return { no, text: bytes.toString("utf8") };
  };
  const tooLong = (): Line => ({
    no,
    error: new ValidationError(`Line ${no} of stdin is longer than ${maxBytes} bytes, the most the server accepts in one message (max_payload); it was not read further.`, [
      { path: [], message: "line exceeds the server's max_payload", code: "too_big" },
    ]),
  });
  for await (const chunk of input) {
    let buf = typeof chunk === "string" ? Buffer.from(chunk) : chunk;
    for (;;) {
      const nl = buf.indexOf(0x0a);
      const end = nl < 0 ? buf.length : nl;
      if (size + end > maxBytes + 1) {
        // +1: a CR before the newline does not count.
        yield tooLong();
        return;
      }
      if (nl < 0) {
        if (buf.length > 0) {
          parts.push(buf);
          size += buf.length;
        }
        break;
      }
      const line = finish(buf.subarray(0, nl));
      yield line;
      if ("error" in line) return;
      no++;
      buf = buf.subarray(nl + 1);
    }
  }
  if (size > 0) yield finish(Buffer.alloc(0));
}

/** Sorted line numbers as ranges: `4, 7-9`. */
function ranges(lines: readonly number[]): string {
  const out: string[] = [];
  for (let i = 0; i < lines.length; ) {
    let j = i;
    while (j + 1 < lines.length && lines[j + 1] === lines[j]! + 1) j++;
    out.push(i === j ? `${lines[i]}` : `${lines[i]}-${lines[j]}`);
    i = j + 1;
  }
  return out.join(", ");
}

function uncertain(o: PublishReceipt | Error | undefined): boolean {
  return o === undefined || o instanceof ConnectionError || o instanceof TimeoutError;
}

interface Sent {
  no: number;
  promise: Promise<void>;
  outcome: PublishReceipt | Error | undefined;
}

/**
 * Publishes each non-empty line of `input`, pipelined through the producer but with at most
 * `window` lines sent and not yet confirmed in order (a large file is streamed, not buffered).
 * Each line is read, checked (UTF-8, length, JSON) and only then sent; the first line that
 * fails, here or at the server, stops sending. The report is exact: how many lines were stored,
 * the line to resume from, and any line after it that was stored anyway (an earlier line can
 * fail at the server after later ones were sent) or whose fate is unknown (the connection
 * closed before the server confirmed it).
 */
export async function publishLines(
  nc: NatsConnection,
  producer: Producer<unknown>,
  headers: Record<string, string>,
  input: Readable,
  queue: string,
  window = 256,
  delayMs?: number,
  json = false,
): Promise<LinesResult> {
  const res: LinesResult = { published: 0, duplicates: 0, firstSeq: 0, lastSeq: 0 };
  const sent: Sent[] = []; // in line order; the head is the oldest line not yet counted
  let failure: { no: number; error: Error } | undefined;
  let serverFailed = false;
  // The connection closing must end every wait below: publishes it strands may never settle.
  let closed = false;
  // One listener on the connection wakes whatever waits now (at most two waits at a time): racing
  // each wait against nc.closed() would add a reaction per line that lives until the close.
  const wakers = new Set<() => void>();
  void nc.closed().then(() => {
    closed = true;
    for (const wake of wakers) wake();
  });
  /** `p`'s value, or undefined once the connection closed (after `graceMs` more for `p` to settle). */
  const untilClosed = <V>(p: Promise<V>, graceMs = 0): Promise<V | undefined> =>
    new Promise<V | undefined>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const wake = (): void => {
        if (graceMs > 0) timer ??= setTimeout(() => resolve(undefined), graceMs);
        else resolve(undefined);
      };
      wakers.add(wake);
      if (closed) wake();
      p.then(resolve, reject).finally(() => {
        wakers.delete(wake);
        clearTimeout(timer);
      });
    });
  const count = (r: PublishReceipt): void => {
    if (r.duplicate) res.duplicates++;
    else {
      res.published++;
      if (res.firstSeq === 0 || r.seq < res.firstSeq) res.firstSeq = r.seq;
      if (r.seq > res.lastSeq) res.lastSeq = r.seq;
    }
  };
  /** Counts confirmed lines off the head, up to the first one that failed or is still pending. */
  const advance = (): void => {
    while (sent.length > 0) {
      const o = sent[0]!.outcome;
      if (o === undefined || o instanceof Error) return;
      count(o);
      sent.shift();
    }
  };
  const maxLine = nc.info?.max_payload ?? DEFAULT_MAX_LINE;
  const lines = readLines(input, maxLine);
  try {
    for (;;) {
      // A closed connection ends the read too: stdin may stay open with nothing more to say.
      const next = lines.next();
      next.catch(() => {});
      const step = await untilClosed(next);
      // A publish refused at once (too large for the server, say) has failed by now: send no more.
      if (step === undefined || closed || serverFailed || step.done) break;
      const line = step.value;
      if ("error" in line) {
        failure = { no: line.no, error: line.error };
        break;
      }
      if (line.text.trim() === "") continue;
      let data: unknown;
      try {
        data = parseJson(line.text, `Line ${line.no} of stdin`);
      } catch (err) {
        failure = { no: line.no, error: err as Error };
        break;
      }
      const entry: Sent = { no: line.no, promise: Promise.resolve(), outcome: undefined };
      entry.promise = producer.publish(data, delayMs === undefined ? { headers } : { headers, delayMs }).then(
        (r) => {
          entry.outcome = r;
        },
        (err: Error) => {
          entry.outcome = err;
          serverFailed = true;
        },
      );
      sent.push(entry);
      advance();
      while (sent.length >= window && !serverFailed && !closed) {
        await untilClosed(sent[0]!.promise);
        advance();
      }
      if (serverFailed || closed) break;
    }
  } finally {
    // Stop reading stdin: nothing more is sent, and an endless writer must not keep us here.
    input.destroy();
    lines.return(undefined).catch(() => {});
  }
  await untilClosed(Promise.allSettled(sent.map((x) => x.promise)), CLOSE_GRACE_MS);
  advance();
  if (sent.length === 0 && !failure) return res;

  // Something did not make it: say exactly what was stored and where to resume.
  const head = sent[0];
  const first = head && (!failure || head.no < failure.no) ? head : undefined;
  const resumeAt = first?.no ?? failure!.no;
  // A line whose publish timed out or was cut off by the connection may be stored or not.
  const cause = first ? (uncertain(first.outcome) ? undefined : (first.outcome as Error)) : failure!.error;
  // Lines sent after the first that failed, by their fate (at most `window` of them).
  const storedAfter: number[] = [];
  const unknown: number[] = [];
  const refused: number[] = [];
  for (const x of sent) {
    if (x.no === resumeAt) continue;
    if (uncertain(x.outcome)) unknown.push(x.no);
    else if (x.outcome instanceof Error) refused.push(x.no);
    else if (x.outcome !== undefined) {
      storedAfter.push(x.no);
      count(x.outcome);
    }
  }
  const stored = res.published + res.duplicates;
  const dup = res.duplicates > 0 ? ` (${res.duplicates} of them already there as duplicates)` : "";
  let report = `jetq: ${stored} job(s) were published to queue "${queue}"${dup}`;
  report += stored === storedAfter.length ? "" : `: every line before line ${resumeAt}`;
  report += storedAfter.length > 0 ? `, and after it also line(s) ${ranges(storedAfter)}: do not send those again` : "";
  report += `.\njetq: line ${resumeAt} was ${cause ? "not stored" : "sent but not confirmed: it may or may not be stored"}`;
  report += refused.length > 0 ? `; line(s) ${ranges(refused)} were refused too` : "";
  report += unknown.length > 0 ? `; line(s) ${ranges(unknown)} were sent but not confirmed: they may or may not be stored` : "";
  const last = Math.max(resumeAt, ...storedAfter, ...unknown, ...refused);
  report += `; nothing after line ${last} was sent. Resume from line ${resumeAt}${storedAfter.length === 0 && unknown.length === 0 ? ` (e.g. tail -n +${resumeAt} jobs.ndjson | jetq publish ${queue})` : ""}.\n`;
  if (!json) process.stderr.write(safeText(report));
  const partial: PartialPublish = { queue, stored, duplicates: res.duplicates, resumeFromLine: resumeAt, storedAfter, unconfirmed: unknown };
  let err: Error;
  if (!cause) {
    const why = first?.outcome instanceof Error ? first.outcome : undefined;
    if (closed || why instanceof ConnectionError) {
      err = new ConnectionError(`The NATS connection closed while publishing: ${stored} line(s) confirmed stored, from line ${resumeAt} on not confirmed.`, why ? { cause: why } : {});
    } else err = why ?? new ConnectionError(`line ${resumeAt}: no confirmation from the server`);
  } else {
    err = cause;
    if (!err.message.startsWith(`Line ${resumeAt}`)) err.message = `line ${resumeAt}: ${err.message}`;
  }
  partials.set(err, partial);
  throw err;
}

import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { ConnectionError } from "../errors.ts";
import { type ConnectOptions, openConnection, serversShown } from "./connect.ts";
import { safeText } from "./format.ts";

/** Options every command inherits from the program. */
export interface GlobalOptions extends ConnectOptions {
  json: boolean;
}

/** The global options as seen from a subcommand. */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<Partial<GlobalOptions>>();
  const src = cmd.getOptionValueSourceWithGlobals("server");
  return {
    serverSource: src === "env" ? "env" : src === "default" ? "default" : "cli",
    server: o.server!,
    creds: o.creds,
    user: o.user,
    password: o.password,
    tlsCa: o.tlsCa,
    tlsCert: o.tlsCert,
    tlsKey: o.tlsKey,
    timeout: o.timeout!,
    json: o.json === true,
  };
}

/**
 * The command's deadline: --timeout bounds the whole command (connect and every request after it),
 * not each request on its own. Time spent waiting for the operator or for input is not counted.
 */
export interface CommandDeadline {
  /** The command's --timeout in ms. */
  readonly timeoutMs: number;
  /** Waits for `p` (a confirmation prompt) with the clock stopped. */
  untimed<T>(p: Promise<T>): Promise<T>;
  /** Ends the deadline: from here the command runs as long as its input does (stdin publish). */
  lift(): void;
}

/**
 * Runs `fn` with a connection that is closed afterwards, whatever happens. A one-shot command
 * (`persistent` false) must finish within --timeout from its start; past it the connection is
 * closed and the command fails with a {@link ConnectionError} that says so.
 */
export async function withNats<T>(
  g: GlobalOptions,
  fn: (nc: NatsConnection, deadline: CommandDeadline) => Promise<T>,
  persistent = false,
): Promise<T> {
  const started = Date.now();
  const nc = await openConnection(g, persistent);
  let remaining = g.timeout - (Date.now() - started);
  let lifted = persistent;
  let expire: (err: Error) => void = () => {};
  const expired = new Promise<never>((_, reject) => {
    expire = reject;
  });
  expired.catch(() => {});
  const arm = (): void => {
    if (lifted) return;
    const armedAt = Date.now();
    const timer = setTimeout(() => {
      expire(
        new ConnectionError(
          `No answer from NATS JetStream at ${serversShown(g)} within ${g.timeout} ms (--timeout, for the whole command): the connection was made but the requests after it were not all answered. Is the server overloaded, or its JetStream without a leader?`,
        ),
      );
    }, Math.max(0, remaining));
    disarm = () => {
      clearTimeout(timer);
      remaining -= Date.now() - armedAt;
    };
  };
  let disarm = (): void => {};
  const deadline: CommandDeadline = {
    timeoutMs: g.timeout,
    async untimed<U>(p: Promise<U>): Promise<U> {
      disarm();
      disarm = () => {};
      try {
        return await p;
      } finally {
        arm();
      }
    },
    lift(): void {
      lifted = true;
      disarm();
      disarm = () => {};
    },
  };
  arm();
  try {
    const work = fn(nc, deadline);
    // Past the deadline the work is abandoned; its late failure (the closed connection) is not news.
    work.catch(() => {});
    return await (lifted ? work : Promise.race([work, expired]));
  } finally {
    deadline.lift();
    await nc.close().catch(() => {});
  }
}

/** Writes one line (or block) to stdout, with no control character that a terminal would act on. */
export function print(text: string): void {
  const safe = safeText(text);
  process.stdout.write(safe.endsWith("\n") ? safe : `${safe}\n`);
}

/** Writes a line to stderr, as safely as {@link print}. */
export function note(text: string): void {
  const safe = safeText(text);
  process.stderr.write(safe.endsWith("\n") ? safe : `${safe}\n`);
}

/** Writes a value as pretty JSON to stdout. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Whether stdout is a terminal (for redraws and colours). */
export function stdoutIsTTY(): boolean {
  return process.stdout.isTTY === true;
}

/** Resolves when SIGINT or SIGTERM arrives; the handlers are removed again either way. */
export function untilSignal(): { promise: Promise<NodeJS.Signals>; dispose: () => void } {
  let dispose = (): void => {};
  const promise = new Promise<NodeJS.Signals>((resolve) => {
    const on = (sig: NodeJS.Signals): void => resolve(sig);
    process.once("SIGINT", on);
    process.once("SIGTERM", on);
    dispose = () => {
      process.off("SIGINT", on);
      process.off("SIGTERM", on);
    };
  });
  return { promise, dispose };
}

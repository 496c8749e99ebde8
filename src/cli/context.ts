import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ConnectOptions, openConnection } from "./connect.ts";
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

/** Runs `fn` with a connection that is closed afterwards, whatever happens. */
export async function withNats<T>(g: GlobalOptions, fn: (nc: NatsConnection) => Promise<T>, persistent = false): Promise<T> {
  const nc = await openConnection(g, persistent);
  try {
    return await fn(nc);
  } finally {
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

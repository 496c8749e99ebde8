import type { Command } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { type ConnectOptions, openConnection } from "./connect.ts";

/** Options every command inherits from the program. */
export interface GlobalOptions extends ConnectOptions {
  json: boolean;
}

/** The global options as seen from a subcommand. */
export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<Partial<GlobalOptions>>();
  return {
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

/** Writes one line (or block) to stdout. */
export function print(text: string): void {
  process.stdout.write(text.endsWith("\n") ? text : `${text}\n`);
}

/** Writes a value as pretty JSON to stdout. */
export function printJson(value: unknown): void {
  print(JSON.stringify(value, null, 2));
}

/** Whether stdout is a terminal (for redraws and colours). */
export function stdoutIsTTY(): boolean {
  return process.stdout.isTTY === true;
}

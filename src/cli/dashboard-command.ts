import { randomBytes } from "node:crypto";
import { Command, Option } from "commander";
import type { NatsConnection } from "@nats-io/transport-node";
import { isLoopback, parseBasicAuth, startDashboardServer, type DashboardAuth } from "../dashboard/server.ts";
import { loadQueue, openConnection } from "./connect.ts";
import { globals, print, untilSignal, type GlobalOptions } from "./context.ts";
import { UsageError } from "./exit.ts";
import { parseDuration, parseInteger } from "./format.ts";

interface DashboardFlags {
  port: string;
  host: string;
  readOnly?: boolean;
  token?: string | true;
  basicAuth?: string;
  basePath?: string;
  refresh: string;
  allowHost?: string;
  history: boolean;
}

function authOf(f: DashboardFlags): { auth: DashboardAuth; generated: string | undefined } {
  if (f.token !== undefined && f.basicAuth !== undefined) throw new UsageError("Use either --token or --basic-auth, not both");
  if (f.basicAuth !== undefined) {
    try {
      return { auth: { kind: "basic", ...parseBasicAuth(f.basicAuth) }, generated: undefined };
    } catch (err) {
      throw new UsageError(`--basic-auth: ${(err as Error).message}`);
    }
  }
  if (f.token === true) {
    const token = randomBytes(18).toString("base64url");
    return { auth: { kind: "token", token }, generated: token };
  }
  if (typeof f.token === "string") {
    if (f.token.length < 8) throw new UsageError("--token must be at least 8 characters long");
    return { auth: { kind: "token", token: f.token }, generated: undefined };
  }
  return { auth: { kind: "none" }, generated: undefined };
}

async function run(g: GlobalOptions, names: string[], f: DashboardFlags): Promise<void> {
  const port = parseInteger(f.port, "--port", 0);
  if (port > 65535) throw new UsageError(`--port must be at most 65535, got ${port}`);
  const refreshMs = parseDuration(f.refresh, "--refresh");
  if (refreshMs < 100) throw new UsageError("--refresh must be at least 100ms");
  const { auth, generated } = authOf(f);
  let nc: NatsConnection = await openConnection(g);
  const signal = untilSignal();
  let stopping = false;
  try {
    // Named queues must exist: fail now with the list of those that do, not later on the page.
    for (const name of names) await loadQueue(nc, name);
    const srv = await startDashboardServer(nc, {
      port,
      host: f.host,
      auth,
      readOnly: f.readOnly === true,
      refreshMs,
      recordHistory: f.history,
      allowedHosts: (f.allowHost ?? "").split(",").map((h) => h.trim()).filter(Boolean),
      ...(names.length > 0 ? { queues: names } : {}),
      ...(f.basePath !== undefined ? { basePath: f.basePath } : {}),
    });
    const open = generated ? `${srv.url}?token=${generated}` : srv.url;
    if (g.json) {
      print(JSON.stringify({ url: srv.url, open, readOnly: f.readOnly === true, auth: auth.kind, queues: names.length > 0 ? names : "discovered" }));
    } else {
      print(`jetq dashboard: ${open}${f.readOnly ? " (read-only)" : ""}`);
      print(names.length > 0 ? `Queues: ${names.join(", ")}` : "Queues: every jetq queue on the server");
      print("Press Ctrl-C to stop.");
    }
    if (!isLoopback(f.host) && auth.kind === "none") {
      process.stderr.write(
        `jetq: warning: the dashboard listens on ${f.host} without --token or --basic-auth; anyone who can reach it can replay and purge dead letters.\n`,
      );
    }
    // The CLI's connections do not reconnect on their own (commands are short-lived); this one
    // is long-lived, so open a new connection when the old one is lost and carry on serving.
    const watch = async (): Promise<void> => {
      let delay = 500;
      while (!stopping) {
        const err = await nc.closed();
        if (stopping) return;
        process.stderr.write(`jetq: lost the NATS connection${err ? ` (${err.message})` : ""}; reconnecting\n`);
        for (;;) {
          if (stopping) return;
          try {
            // One attempt at a time, each bounded by --timeout, and a failed one closes its socket.
            const fresh = await openConnection(g);
            if (stopping) {
              await fresh.close().catch(() => {});
              return;
            }
            nc = fresh;
            srv.useConnection(nc);
            process.stderr.write("jetq: reconnected to NATS\n");
            delay = 500;
            break;
          } catch (e) {
            process.stderr.write(`jetq: ${(e as Error).message} (retrying in ${delay} ms)\n`);
            await new Promise((r) => setTimeout(r, delay).unref());
            delay = Math.min(10_000, delay * 2);
          }
        }
      }
    };
    void watch();
    await signal.promise;
    stopping = true;
    await srv.close();
  } finally {
    stopping = true;
    signal.dispose();
    await nc.close().catch(() => {});
  }
}

/** The `dashboard` command: serves the web dashboard until Ctrl-C. */
export function dashboardCommand(): Command {
  return new Command("dashboard")
    .description("Serve the web dashboard: queues, live depth and throughput, history, job lookup, pause/resume, schedules, dead letters to triage, replay and purge.")
    .argument("[queues...]", "queues to show (default: every jetq queue on the server)")
    .option("-p, --port <port>", "port to listen on (0 picks a free one)", "3000")
    .option("--host <address>", "address to listen on; the default only accepts connections from this machine", "127.0.0.1")
    .option("--read-only", "hide and refuse replay and purge")
    .addOption(
      new Option("--token [token]", "require this token (Authorization: Bearer, or ?token= once in the browser); without a value, generate one")
        .env("JETQ_DASHBOARD_TOKEN"),
    )
    .addOption(new Option("--basic-auth <user:password>", "require HTTP basic authentication").env("JETQ_DASHBOARD_BASIC_AUTH"))
    .option("--base-path <path>", "URL path prefix, when a reverse proxy serves the dashboard under one")
    .option("--refresh <duration>", "how often queue figures are read while a page is open", "2s")
    .option("--no-history", "do not record per-minute queue history to the stream JETQ_HISTORY (charts then show what others recorded)")
    .option("--allow-host <names>", "on loopback without auth, also answer requests for these host names (a local reverse proxy's), comma-separated")
    .addHelpText(
      "after",
      `
Examples:
  jetq dashboard                        # http://127.0.0.1:3000/, every queue
  jetq dashboard emails invoices --read-only
  jetq dashboard --host 0.0.0.0 --token # prints a URL with a generated token
  JETQ_DASHBOARD_BASIC_AUTH=ops:secret jetq dashboard --port 8080`,
    )
    .action(async (queues: string[], flags: DashboardFlags, cmd: Command) => {
      await run(globals(cmd), queues, flags);
    });
}

/** Adds `jetq dashboard` to the program. */
export function registerDashboardCommand(program: Command): void {
  program.addCommand(dashboardCommand());
}

#!/usr/bin/env node
/**
 * The `jetq` command. Every failure ends here: one line on stderr (a JSON object with --json)
 * and an exit code from EXIT (see `jetq --help`).
 */
import { CommanderError } from "commander";
import { ProvisionConflictError } from "../errors.ts";
import { thrownText } from "../natserr.ts";
import { jetStreamHint } from "./connect.ts";
import { EXIT, exitCodeOf } from "./exit.ts";
import { safeText } from "./format.ts";
import { buildProgram } from "./program.ts";
import { partialOf } from "./publish.ts";

/** What a system error means for the command line: a hint to append, by `code`. */
function systemHint(err: unknown): string | undefined {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (e?.code === "EADDRINUSE") {
    const where = e.port !== undefined ? `${e.address ?? ""}:${e.port}` : "that address";
    return `Something else already listens on ${where}: stop it, or pick another port with --port (--port 0 picks a free one).`;
  }
  if (e?.code === "EACCES" && e.syscall === "listen") {
    return "Ports below 1024 need privileges: pick a port above 1023 with --port.";
  }
  return undefined;
}

async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  // Subcommands inherit exitOverride only when it is set before they parse; set it on all.
  const override = (c: typeof program): void => {
    c.exitOverride();
    for (const sub of c.commands) override(sub);
  };
  override(program);
  const json = argv.includes("--json");
  try {
    await program.parseAsync(argv);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander already printed help, the version, or the usage error.
      return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    const hint = systemHint(err);
    const code = hint !== undefined ? EXIT.usage : exitCodeOf(err);
    const e = err instanceof Error ? err : new Error(thrownText(err));
    const message = [e.message, hint ?? jetStreamHint(err)].filter(Boolean).join(" ");
    if (json) {
      const partial = partialOf(err);
      const extra = { ...(err instanceof ProvisionConflictError ? { conflicts: err.conflicts } : {}), ...(partial ? { partial } : {}) };
      process.stderr.write(`${safeText(JSON.stringify({ error: { name: e.name, message, exitCode: code, ...extra } }))}\n`);
    } else {
      process.stderr.write(safeText(`jetq: ${message}\n`));
      if (code === EXIT.failed && process.env.JETQ_DEBUG) process.stderr.write(safeText(`${e.stack}\n`));
    }
    return code;
  }
}

process.exitCode = await main(process.argv);
// The command has answered: nothing it left behind may keep it running. A connect attempt that
// timed out, for one, leaves its socket open to a server that never answers, and would hold the
// process for as long as that server keeps it. Output still on its way to a slow reader goes first.
function exitWhenFlushed(): void {
  for (const out of [process.stdout, process.stderr]) {
    if (out.writableLength > 0) {
      out.once("drain", exitWhenFlushed);
      return;
    }
  }
  process.exit();
}
setTimeout(exitWhenFlushed, 100).unref();

#!/usr/bin/env node
/**
 * The `jetq` command. Every failure ends here: one line on stderr (a JSON object with --json)
 * and an exit code from EXIT (see `jetq --help`).
 */
import { CommanderError } from "commander";
import { ProvisionConflictError } from "../errors.ts";
import { thrownText } from "../natserr.ts";
import { EXIT, exitCodeOf } from "./exit.ts";
import { buildProgram } from "./program.ts";

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
    const code = exitCodeOf(err);
    const e = err instanceof Error ? err : new Error(thrownText(err));
    if (json) {
      const extra = err instanceof ProvisionConflictError ? { conflicts: err.conflicts } : {};
      process.stderr.write(`${JSON.stringify({ error: { name: e.name, message: e.message, exitCode: code, ...extra } })}\n`);
    } else {
      process.stderr.write(`jetq: ${e.message}\n`);
      if (code === EXIT.failed && process.env.JETQ_DEBUG) process.stderr.write(`${e.stack}\n`);
    }
    return code;
  }
}

process.exitCode = await main(process.argv);

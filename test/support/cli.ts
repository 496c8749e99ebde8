/**
 * The `jetq` command as a subprocess, for the CLI tests: one runner with a deadline, so a hung
 * command fails its test with its output instead of hanging the suite.
 */
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { ServerAddress } from "./nats-server.ts";

/** The CLI's entry point in the source tree. */
export const CLI = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "src", "cli", "main.ts");

/** What one run of the CLI printed and how it ended. */
export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit, including Node's own startup. */
  ms: number;
}

/** Options of {@link runCli}. */
export interface CliOptions {
  /** Added to (and overriding) the environment; NATS_URL, NATS_USER, NATS_PASSWORD and NATS_CREDS are removed first. */
  env?: Record<string, string>;
  /** Fed to stdin (which is never a TTY); stdin is closed at once without it. */
  input?: string | Buffer;
  /** Kill the command and fail after this long (default 30 s). */
  timeoutMs?: number;
}

/**
 * Runs `jetq <args>` with the test process's Node, NO_COLOR set and none of the caller's NATS
 * settings (only what `opts.env` gives). Rejects if it does not exit within the deadline.
 */
export function runCli(args: readonly string[], opts: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: "1" };
    for (const k of ["NATS_URL", "NATS_USER", "NATS_PASSWORD", "NATS_CREDS"]) delete env[k];
    Object.assign(env, opts.env);
    const timeoutMs = opts.timeoutMs ?? 30_000;
    const t0 = Date.now();
    const p = spawn(process.execPath, [CLI, ...args], { env, stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (b: Buffer) => (stdout += b.toString()));
    p.stderr.on("data", (b: Buffer) => (stderr += b.toString()));
    const t = setTimeout(() => {
      p.kill("SIGKILL");
      reject(new Error(`jetq ${args.join(" ")} did not finish within ${timeoutMs / 1000} s\n${stdout}\n${stderr}`));
    }, timeoutMs);
    p.on("exit", (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
    // A command that exits before reading its stdin closes the pipe under us.
    p.stdin.on("error", () => {});
    p.stdin.end(opts.input ?? "");
  });
}

/** The environment that points the CLI at a test server, with its user and password if it has them. */
export function cliEnv(server: ServerAddress): Record<string, string> {
  const env: Record<string, string> = { NATS_URL: server.servers };
  if (server.user) {
    env.NATS_USER = server.user;
    env.NATS_PASSWORD = server.pass ?? "";
  }
  return env;
}

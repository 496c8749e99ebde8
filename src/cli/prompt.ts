import { createInterface } from "node:readline/promises";
import { NotConfirmedError } from "./exit.ts";
import { safeText } from "./format.ts";

/**
 * Asks the user to confirm a destructive action on the terminal. With `yes`
 * it proceeds without asking; without a terminal on stdin it refuses (a script
 * must say --yes explicitly rather than have a prompt swallow its input).
 * @throws {NotConfirmedError} when declined or when it cannot ask.
 */
export async function confirm(question: string, action: string, yes: boolean): Promise<void> {
  if (yes) return;
  if (!process.stdin.isTTY) {
    throw new NotConfirmedError(`Refusing to ${action} without confirmation: stdin is not a terminal. Re-run with --yes to confirm. Nothing was changed.`);
  }
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  let answer: string;
  try {
    answer = await rl.question(`${safeText(question)} [y/N] `);
  } finally {
    rl.close();
  }
  if (!/^y(es)?$/i.test(answer.trim())) throw new NotConfirmedError(`Not confirmed; nothing was changed.`);
}

import {
  AuthenticationError,
  ConfigError,
  ConnectionError,
  DeadLetterNotFoundError,
  JetqError,
  PermissionError,
  ProvisionConflictError,
  QueueFullError,
  QueueNotFoundError,
  TimeoutError,
  ValidationError,
} from "../errors.ts";

/**
 * Exit codes of the `jetq` command. Scripts may rely on these; they are listed in
 * `jetq --help` and the README, and only ever get new numbers, never new meanings.
 */
export const EXIT = {
  /** Done. */
  ok: 0,
  /** Bad arguments or options (also: a payload that is not JSON or fails validation). */
  usage: 1,
  /** The queue, the dead letter, or (`jetq job`) the job's state does not exist. */
  notFound: 2,
  /** The server cannot be reached, timed out, rejected the credentials, denied a permission, or the connection closed (`publish` then reports how many lines were confirmed). */
  connection: 3,
  /** `provision` found the queue with a different configuration (nothing was changed). */
  conflict: 4,
  /** `publish` was refused because the queue is full (its maxMessages/maxBytes bound). */
  full: 5,
  /** A destructive command was not confirmed (declined at the prompt, or no TTY and no --yes). */
  notConfirmed: 6,
  /** Any other failure reported by the server or jetq. */
  failed: 7,
} as const;

/** The table printed by `jetq --help`. */
export const EXIT_HELP = `Exit codes:
  0  ok
  1  usage error (bad arguments or options, invalid JSON payload)
  2  not found (unknown queue, dead letter or job)
  3  connection problem (server unreachable, timeout, authentication or permission denied, connection closed)
  4  provision conflict (queue exists with another configuration; nothing changed)
  5  queue full (publish refused by the queue's bound)
  6  not confirmed (destructive command declined, or no TTY and no --yes)
  7  other failure`;

/** A command-line mistake: wrong or missing arguments. */
export class UsageError extends JetqError {
  override name = "UsageError" as const;
}

/** `jetq job`: no state is known for the job id. */
export class JobNotFoundError extends JetqError {
  override name = "JobNotFoundError" as const;
}

/** A destructive command was not confirmed. */
export class NotConfirmedError extends JetqError {
  override name = "NotConfirmedError" as const;
}

/** The exit code for an error thrown by a command. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError || err instanceof ConfigError || err instanceof ValidationError) return EXIT.usage;
  if (err instanceof QueueNotFoundError || err instanceof DeadLetterNotFoundError || err instanceof JobNotFoundError) return EXIT.notFound;
  if (err instanceof ConnectionError || err instanceof AuthenticationError || err instanceof PermissionError || err instanceof TimeoutError) return EXIT.connection;
  if (err instanceof ProvisionConflictError) return EXIT.conflict;
  if (err instanceof QueueFullError) return EXIT.full;
  if (err instanceof NotConfirmedError) return EXIT.notConfirmed;
  return EXIT.failed;
}

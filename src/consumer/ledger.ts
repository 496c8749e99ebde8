import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { JetqError } from "../errors.ts";
import { apiCode, mapNatsError } from "../natserr.ts";
import type { Queue } from "../queue/define.ts";
import type { LedgerRecord } from "./decide.ts";
import type { DeadLetterReason } from "../dlq/route.ts";

/** The server refused a ledger write because someone wrote the record since it was read. */
export class LedgerConflictError extends JetqError {
  override name = "LedgerConflictError" as const;
}

/** nats-server's "wrong last sequence" (a compare-and-set on the subject failed). */
const WRONG_LAST_SEQUENCE = 10071;

/**
 * @internal The queue's outcome ledger (docs/design/attempts.md): one record per job that had a
 * rare outcome (a failure, a hand-back, an isolated run), keyed by the work stream's incarnation
 * and the job's stream sequence. Read only for redeliveries; written only on the rare paths.
 * Every write is a compare-and-set on the record's last revision, so a worker that lost a job
 * (its lease lapsed and the job went elsewhere) cannot overwrite a newer record.
 */
export class Ledger {
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #queue: Queue<unknown, unknown>;
  readonly #prefix: string;

  constructor(js: JetStreamClient, jsm: JetStreamManager, queue: Queue<unknown, unknown>, incarnation: number) {
    this.#js = js;
    this.#jsm = jsm;
    this.#queue = queue;
    this.#prefix = `${queue.names.ledgerSubject}.${incarnation.toString(36)}.`;
  }

  /** The job's record and its revision (0: there is none). */
  async read(seq: number): Promise<{ record: LedgerRecord | undefined; revision: number }> {
    let m;
    try {
      m = await this.#jsm.direct.getMessage(this.#queue.names.ledgerStream, { last_by_subj: this.#prefix + seq });
    } catch (err) {
      throw mapNatsError(err, `read the ledger record of job ${seq} of queue "${this.#queue.name}"`);
    }
    if (!m) return { record: undefined, revision: 0 };
    let record: LedgerRecord | undefined;
    try {
      record = parseRecord(m.json());
    } catch {
      record = undefined;
    }
    return { record, revision: m.seq };
  }

  /** Writes the job's record if its revision is still `revision`; resolves to the new revision. */
  async write(seq: number, record: LedgerRecord, revision: number): Promise<number> {
    try {
      const ack = await this.#js.publish(this.#prefix + seq, JSON.stringify(record), {
        expect: { lastSubjectSequence: revision },
        timeout: 5_000,
      });
      return ack.seq;
    } catch (err) {
      if (apiCode(err) === WRONG_LAST_SEQUENCE) {
        throw new LedgerConflictError(
          `the ledger record of job ${seq} of queue "${this.#queue.name}" changed since this worker read it: the job was redelivered elsewhere`,
          { cause: err },
        );
      }
      throw mapNatsError(err, `record the outcome of job ${seq} of queue "${this.#queue.name}" in its ledger`);
    }
  }
}

const REASONS = new Set(["max_attempts", "permanent", "decode", "validation", "crashed"]);
function isDead(v: unknown): v is { reason: string; attempts: unknown } {
  return typeof v === "object" && v !== null && REASONS.has((v as { reason?: unknown }).reason as string);
}

const count = (v: unknown): number => (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 ? v : 0);

/** @internal Reads a stored record leniently: unknown fields are dropped, bad counts are 0. */
export function parseRecord(v: unknown): LedgerRecord | undefined {
  if (typeof v !== "object" || v === null) return undefined;
  const o = v as Record<string, unknown>;
  return {
    failures: count(o.failures),
    crashes: count(o.crashes),
    seen: count(o.seen),
    ...(typeof o.isolated === "number" && o.isolated > 0 ? { isolated: o.isolated } : {}),
    ...(o.suspect === true ? { suspect: true } : {}),
    ...(typeof o.worker === "string" ? { worker: o.worker } : {}),
    ...(typeof o.error === "string" ? { error: o.error } : {}),
    ...(isDead(o.dead) ? { dead: { reason: o.dead.reason as DeadLetterReason, attempts: count(o.dead.attempts) } } : {}),
  };
}

import { ConfigError, ValidationError } from "../errors.ts";
import { PublishBatchError, type PublishReceipt } from "./receipt.ts";

/** @internal Where a publish's outcome goes: one promise (`publish`) or a slot of a batch (`publishMany`). */
export interface Sink {
  settle(index: number, outcome: PublishReceipt | Error): void;
}

/**
 * @internal The outcomes of one `publishMany`, in input order. One object per batch instead of a
 * promise and two closures per item: at high rates those dominated the batch path's allocations.
 */
export class BatchSink implements Sink {
  readonly outcomes: Array<PublishReceipt | Error | undefined> = [];
  #open = 0;
  #done: (() => void) | undefined;
  /** A slot for the next item, in input order; it counts as open until settled. */
  add(): number {
    this.#open++;
    return this.outcomes.push(undefined) - 1;
  }
  settle(index: number, outcome: PublishReceipt | Error): void {
    this.outcomes[index] = outcome;
    if (--this.#open === 0) this.#done?.();
  }
  /** Items added and not yet settled. */
  get open(): number {
    return this.#open;
  }
  /** Resolves once every added item has an outcome; call after the last `add()`. */
  settled(): Promise<void> {
    if (this.#open === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#done = resolve;
    });
  }
}

/**
 * @internal A settled batch's result: the receipts in input order, or a {@link PublishBatchError}
 * naming how many failed and the first error. `stopped` is why the batch stopped early, if it did:
 * an invalid item is named as the first error rather than the first item not sent because of it.
 */
export function batchResult(outcomes: ReadonlyArray<PublishReceipt | Error | undefined>, stopped: Error | undefined): PublishReceipt[] {
  const n = outcomes.length;
  let failed = 0;
  let first: Error | undefined = stopped instanceof ValidationError || stopped instanceof ConfigError ? stopped : undefined;
  for (let k = 0; k < n; k++) {
    const o = outcomes[k]!;
    if (o instanceof Error) {
      failed++;
      first ??= o;
    }
  }
  if (failed > 0) {
    throw new PublishBatchError(
      outcomes.map((o) => (o instanceof Error ? { ok: false, error: o } : { ok: true, receipt: o! })),
      failed,
      first!,
    );
  }
  return outcomes as PublishReceipt[];
}

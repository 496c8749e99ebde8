/**
 * The jobs a worker holds, in a slot table instead of a `Set`.
 *
 * A `Set` with constant churn (one add and one delete per job) rehashes its table every few
 * dozen operations, and V8 keeps each replaced table linked to its successor (for live
 * iterators) with its old entries in place. Once one such table has been promoted to the old
 * generation, every scavenge finds the young tables after it, and the jobs they list, reachable
 * from it: a draining worker promoted whole jobs at each scavenge, V8 grew the young generation
 * to its maximum, and the worker's RSS doubled over a long drain (measured: 264 against 139 MiB
 * after 300,000 jobs). A fixed table written in place has no such chain.
 *
 * Freed slots are reused (last freed, first reused); the table grows only when more items are held
 * at once than ever before, so its length is the most jobs the worker ever held at one time.
 */
export class SlotTable<T extends { slot: number }> {
  readonly #items: Array<T | undefined> = [];
  readonly #free: number[] = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(item: T): void {
    if (item.slot >= 0) return;
    const i = this.#free.pop();
    if (i === undefined) {
      item.slot = this.#items.length;
      this.#items.push(item);
    } else {
      item.slot = i;
      this.#items[i] = item;
    }
    this.#size++;
  }

  /** Removes the item; false when it was not held. */
  delete(item: T): boolean {
    const i = item.slot;
    if (i < 0 || this.#items[i] !== item) return false;
    this.#items[i] = undefined;
    item.slot = -1;
    this.#free.push(i);
    this.#size--;
    return true;
  }

  /** The items held now, in a new array (safe to change the table while going through it). */
  snapshot(): T[] {
    const out: T[] = [];
    for (const it of this.#items) if (it !== undefined) out.push(it);
    return out;
  }

  /** Calls `fn` for each item held now; `fn` must not add or delete. */
  forEach(fn: (item: T) => void): void {
    for (const it of this.#items) if (it !== undefined) fn(it);
  }
}

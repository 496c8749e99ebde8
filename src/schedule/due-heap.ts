/**
 * @internal A binary min-heap of items by their due time: the held jobs a mover keeps until they
 * are due. Bounded by its owner (it refuses nothing itself); arrays are reused, so pushing and
 * popping at a steady size allocates nothing.
 */
export class DueHeap<T> {
  readonly #dues: number[] = [];
  readonly #items: Array<T | undefined> = [];
  #size = 0;

  get size(): number {
    return this.#size;
  }

  /** The earliest due time; `Infinity` when empty. */
  get earliest(): number {
    return this.#size === 0 ? Infinity : this.#dues[0]!;
  }

  push(due: number, item: T): void {
    let i = this.#size++;
    const dues = this.#dues;
    const items = this.#items;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (dues[parent]! <= due) break;
      dues[i] = dues[parent]!;
      items[i] = items[parent];
      i = parent;
    }
    dues[i] = due;
    items[i] = item;
  }

  /** Removes and returns the earliest item; `undefined` when empty. */
  pop(): T | undefined {
    if (this.#size === 0) return undefined;
    const dues = this.#dues;
    const items = this.#items;
    const top = items[0];
    const n = --this.#size;
    const lastDue = dues[n]!;
    const lastItem = items[n];
    items[n] = undefined;
    if (n > 0) {
      let i = 0;
      for (;;) {
        let child = 2 * i + 1;
        if (child >= n) break;
        if (child + 1 < n && dues[child + 1]! < dues[child]!) child++;
        if (dues[child]! >= lastDue) break;
        dues[i] = dues[child]!;
        items[i] = items[child];
        i = child;
      }
      dues[i] = lastDue;
      items[i] = lastItem;
    }
    return top;
  }

  /** Removes every item and hands each to `each` (in no particular order). */
  drain(each: (item: T, due: number) => void): void {
    const n = this.#size;
    this.#size = 0;
    for (let i = 0; i < n; i++) {
      const item = this.#items[i]!;
      this.#items[i] = undefined;
      each(item, this.#dues[i]!);
    }
  }
}

import { test } from "node:test";
import assert from "node:assert/strict";
import { SlotTable } from "../../src/consumer/slots.ts";

const item = (name: string) => ({ name, slot: -1 });

test("SlotTable holds, removes and reuses slots without growing past the most held at once", () => {
  const t = new SlotTable<{ name: string; slot: number }>();
  const a = item("a");
  const b = item("b");
  const c = item("c");
  t.add(a);
  t.add(b);
  t.add(a); // already held: no change
  assert.equal(t.size, 2);
  assert.deepEqual(t.snapshot().map((x) => x.name), ["a", "b"]);
  assert.equal(t.delete(a), true);
  assert.equal(a.slot, -1);
  assert.equal(t.delete(a), false, "a second delete is refused");
  assert.equal(t.size, 1);
  t.add(c);
  assert.equal(c.slot, 0, "the freed slot is reused");
  const seen: string[] = [];
  t.forEach((x) => seen.push(x.name));
  assert.deepEqual(seen.sort(), ["b", "c"]);
  // Churn far past the table's size: it never holds more than two slots.
  for (let i = 0; i < 1000; i++) {
    const x = item(`x${i}`);
    t.add(x);
    assert.equal(x.slot, 2, "one slot beyond b and c, reused every time");
    assert.equal(t.delete(x), true);
  }
  assert.equal(t.size, 2);
});

test("SlotTable.snapshot is safe to change the table while going through it", () => {
  const t = new SlotTable<{ name: string; slot: number }>();
  const xs = ["p", "q", "r"].map(item);
  for (const x of xs) t.add(x);
  for (const x of t.snapshot()) t.delete(x);
  assert.equal(t.size, 0);
  assert.deepEqual(t.snapshot(), []);
});

test("SlotTable.delete refuses an item that another table holds at the same index", () => {
  const t1 = new SlotTable<{ name: string; slot: number }>();
  const t2 = new SlotTable<{ name: string; slot: number }>();
  const a = item("a");
  const b = item("b");
  t1.add(a);
  t2.add(b);
  assert.equal(t1.delete(b), false);
  assert.equal(t1.size, 1);
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { Heap } from "./heap.ts";
import { Rng } from "./rng.ts";

interface Entry {
  score: number;
  key: number;
}

/** Max on score, then the smaller key: the order both tokenizers' heaps use. */
const before = (x: Entry, y: Entry) => x.score > y.score || (x.score === y.score && x.key < y.key);

const drain = <T>(h: Heap<T>): T[] => {
  const out: T[] = [];
  for (let e = h.pop(); e !== undefined; e = h.pop()) out.push(e);
  return out;
};

test("an empty heap pops undefined; size counts the entries", () => {
  const h = new Heap<number>((x, y) => x < y);
  assert.equal(h.pop(), undefined);
  assert.equal(h.size, 0);
  for (const x of [3, 1, 2]) h.push(x);
  assert.equal(h.size, 3);
  assert.equal(h.pop(), 1);
  assert.equal(h.size, 2);
  assert.deepEqual(drain(h), [2, 3]);
  assert.equal(h.size, 0);
});

test("pops in `before` order, many ties broken by the key, pushes interleaved with pops", () => {
  const rng = new Rng(7);
  const h = new Heap<Entry>(before);
  const held: Entry[] = []; // the naive reference: a list scanned for its best entry
  const popBest = (): Entry | undefined => {
    let best = 0;
    for (let i = 1; i < held.length; i++) if (before(held[i]!, held[best]!)) best = i;
    return held.splice(best, 1)[0];
  };
  for (let i = 0; i < 2000; i++) {
    const e = { score: rng.int(20), key: rng.int(500) };
    h.push(e);
    held.push(e);
    if (rng.int(3) === 0) assert.deepEqual(h.pop(), popBest());
  }
  while (held.length > 0) assert.deepEqual(h.pop(), popBest());
  assert.equal(h.pop(), undefined);
});

test("equal entries without a tie-break come out in a fixed order (the same pushes, the same pops)", () => {
  const run = () => {
    const h = new Heap<Entry>((x, y) => x.score > y.score);
    for (let i = 0; i < 50; i++) h.push({ score: i % 3, key: i });
    return drain(h).map((e) => e.key);
  };
  assert.deepEqual(run(), run());
  assert.deepEqual(
    new Set(
      run()
        .slice(0, 16)
        .map((k) => k % 3),
    ),
    new Set([2]),
  );
});

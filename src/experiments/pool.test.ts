import assert from "node:assert/strict";
import { test } from "node:test";
import { rate, wilson } from "../eval/stats.ts";
import { poolRates, sameItemsCell } from "./pool.ts";

test("sameItemsCell: systems scored on the same items average their rates; n is the items once, not systems × items", () => {
  // two seeds × three agents, each on the same 200 pairs
  const perSeed = [
    [rate(96, 200), rate(98, 200), rate(100, 200)],
    [rate(97, 200), rate(99, 200), rate(101, 200)],
  ];
  const c = sameItemsCell("accuracy", perSeed);
  assert.equal(c.n, 200);
  assert.equal(c.value, 591 / 1200);
  const w = wilson(591 / 6, 200);
  assert.deepEqual([c.low, c.high], [w.low, w.high]);
  assert.deepEqual(c.per_seed, [98 / 200, 99 / 200]);
  // pooling them as independent trials would claim an interval √6 times narrower
  const pooled = poolRates(perSeed.flat())!;
  assert.equal(pooled.n, 1200);
  assert.ok(pooled.high - pooled.low < 0.5 * (c.high! - c.low!));
});

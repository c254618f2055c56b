import assert from "node:assert/strict";
import { test } from "node:test";
import { Z95, formatInterval, mean, rate, wilson } from "./stats.ts";

const close = (got: number, want: number, tol = 1e-12) => assert.ok(Math.abs(got - want) <= tol, `${got} ≠ ${want}`);

test("wilson matches the closed form at known points and stays inside [0, 1]", () => {
  const a = wilson(81, 263); // the textbook example: 81 successes in 263 trials
  close(a.low, 0.2552885198782742);
  close(a.high, 0.36620957698280004);
  const none = wilson(0, 10); // upper bound z²/(n + z²)
  assert.equal(none.low, 0);
  close(none.high, (Z95 * Z95) / (10 + Z95 * Z95));
  const all = wilson(10, 10);
  close(all.low, 10 / (10 + Z95 * Z95));
  assert.ok(all.high <= 1);
  const frac = wilson(1150.5, 2312); // fractional successes (ties as halves)
  close(frac.low, 0.4772612555306539);
  close(frac.high, 0.5179888510955563);
  assert.deepEqual(wilson(0, 0), { low: 0, high: 1 });
  assert.throws(() => wilson(11, 10));
});

test("rate and mean carry their intervals and level", () => {
  const r = rate(3, 4);
  assert.equal(r.rate, 0.75);
  assert.equal(r.level, 0.95);
  assert.ok(r.low < 0.75 && r.high > 0.75);
  assert.ok(Number.isNaN(rate(0, 0).rate));
  const m = mean([1, 2, 3, 4]);
  assert.equal(m.mean, 2.5);
  close(m.sd, Math.sqrt(5 / 3));
  close(m.high - m.mean, (Z95 * Math.sqrt(5 / 3)) / 2);
  assert.deepEqual([mean([7]).low, mean([7]).high], [7, 7]);
  assert.ok(Number.isNaN(mean([]).mean));
  assert.equal(formatInterval(0.5, { low: 0.25, high: 0.75 }, 2), "0.50 [0.25, 0.75]");
});

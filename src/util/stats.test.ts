import assert from "node:assert/strict";
import { test } from "node:test";
import { mean } from "./stats.ts";

test("mean sums left to right from 0; empty (or nothing after `from`) is 0", () => {
  assert.equal(mean([1, 2, 3, 4]), 2.5);
  assert.equal(mean(new Float64Array([1, 2, 3, 4]), 1), 3);
  assert.equal(mean([]), 0);
  assert.equal(mean([5], 1), 0);
  assert.equal(mean([5], 3), 0);
  const xs = [0.1, 0.2, 0.3, 1e16, -1e16, 0.7];
  assert.equal(mean(xs), xs.reduce((a, b) => a + b, 0) / xs.length, "the same order as a reduce from 0");
  assert.equal(mean(xs, 2), xs.slice(2).reduce((a, b) => a + b, 0) / (xs.length - 2));
});

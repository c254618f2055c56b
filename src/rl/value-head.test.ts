import assert from "node:assert/strict";
import { test } from "node:test";
import { ValueHead } from "./value-head.ts";

test("value loss: PPO's clipped term is the loss reported when it wins", () => {
  const head = new ValueHead(2);
  const h = new Float32Array([0, 0]); // V = the bias = 0
  // old value 1, clip 0.2: clip(V) = 0.8; target −3
  const loss = head.fit([h], [-3], 1e-3, [1], 0.2);
  // unclipped: ½(0 − (−3))² = 4.5; clipped: ½(0.8 + 3)² = 7.22 — the larger one is optimised and reported
  assert.ok(Math.abs(loss - 0.5 * 3.8 * 3.8) < 1e-12, `loss ${loss}`);
  assert.equal(head.predict(h), 0, "V was clipped: the clipped term has no gradient, so the head does not move");
  const unclipped = new ValueHead(2).fit([h], [-3], 1e-3, [0], 0.2); // clip(V) = V: both terms equal
  assert.ok(Math.abs(unclipped - 4.5) < 1e-12);
});

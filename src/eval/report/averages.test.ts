import assert from "node:assert/strict";
import { test } from "node:test";
import type { UserError } from "../../util/errors.ts";
import { formatAverages, metricAverages } from "./averages.ts";

// iteration 0 is validation only; iterations arrive out of order; kl is missing at iteration 1, clip_fraction never measured
const LINES = [
  { iteration: 0, reward: null, kl: null, val_information_gain: 0.5 },
  { iteration: 2, reward: 0.2, kl: 0.01, kl_coef: 0.02 },
  { iteration: 1, reward: -0.1, kl: null, kl_coef: 0.02, clip_fraction: null },
  { iteration: 3, reward: 0.4, kl: 0.03, kl_coef: 0.04 },
  { iteration: 4, reward: 0.6, kl: 0.05, kl_coef: 0.08, information_gain: [1, 2] },
];

test("metricAverages: means over the first and the last N training iterations, and the last value", () => {
  const a = metricAverages(LINES, 2);
  assert.deepEqual(a.first, [1, 2]);
  assert.deepEqual(a.last, [3, 4]);
  assert.deepEqual(Object.keys(a.metrics), ["reward", "kl", "kl_coef"]);
  assert.ok(Math.abs(a.metrics.reward.first! - 0.05) < 1e-12);
  assert.ok(Math.abs(a.metrics.reward.last! - 0.5) < 1e-12);
  assert.equal(a.metrics.reward.at_last, 0.6);
  assert.equal(a.metrics.kl.first, 0.01); // iteration 1 had none
  assert.ok(Math.abs(a.metrics.kl_coef.last! - 0.06) < 1e-12);

  const all = metricAverages(LINES, 10); // a window longer than the run: every training iteration
  assert.deepEqual(
    [all.first, all.last],
    [
      [1, 4],
      [1, 4],
    ],
  );
  assert.ok(Math.abs(all.metrics.reward.first! - 0.275) < 1e-12);
});

test("metricAverages: no training iteration yet is a one-line error", () => {
  assert.throws(
    () => metricAverages([LINES[0]], 5),
    (e: UserError) => e.code === "E_NO_METRICS",
  );
});

test("formatAverages: one row per metric, signed to four places, windows in the header", () => {
  const lines = formatAverages(metricAverages(LINES, 2)).split("\n");
  assert.equal(lines.length, 4);
  assert.match(lines[0], /^metric\s+it\. 1–2\s+it\. 3–4\s+at 4$/);
  assert.match(lines[1], /^reward\s+\+0\.0500\s+\+0\.5000\s+\+0\.6000$/);
  assert.match(lines[2], /^kl\s+\+0\.0100\s+\+0\.0400\s+\+0\.0500$/);
});

/**
 * klMode=loss against the exact KL on a small vocabulary: the expected gradient, with respect to the logits, of the
 * term the trainer adds to the loss equals the gradient of KL(π ‖ π_base) = Σ_v π_v log(π_v / π_base,v) — each
 * computed by central finite differences, independently of kl.ts — and k1's and k3's gradients do not.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../util/rng.ts";
import { klGradient, klLossWeight } from "./kl.ts";

const V = 5;
const H = 1e-5; // finite-difference step

function logSoftmax(z: readonly number[]): number[] {
  const m = Math.max(...z);
  const lse = m + Math.log(z.reduce((a, x) => a + Math.exp(x - m), 0));
  return z.map((x) => x - lse);
}

/** Central finite differences of f at z, one logit at a time. */
function fdGradient(f: (z: number[]) => number, z: readonly number[]): number[] {
  return z.map((_, j) => {
    const up = [...z],
      down = [...z];
    up[j] += H;
    down[j] -= H;
    return (f(up) - f(down)) / (2 * H);
  });
}

/** KL(p ‖ q) from logits. */
function exactKl(zp: readonly number[], zq: readonly number[]): number {
  const lp = logSoftmax(zp),
    lq = logSoftmax(zq);
  return lp.reduce((a, l, v) => a + Math.exp(l) * (l - lq[v]), 0);
}

/**
 * The expected gradient of the trainer's loss term at logits z: the loss of a sampled token a is −w_a log π(a) with
 * the weight w_a held fixed (a training row's weight), so its expectation over a ~ π(z) has the gradient of
 * Σ_a π_a(z) (−w_a) log π_a(z') with respect to z' at z.
 */
function expectedLossGradient(z: readonly number[], zBase: readonly number[], weight: (logp: number, refLogp: number) => number): number[] {
  const lp = logSoftmax(z),
    lb = logSoftmax(zBase);
  const w = lp.map((l, a) => weight(l, lb[a]));
  return fdGradient((zz) => {
    const l = logSoftmax(zz);
    return lp.reduce((acc, la, a) => acc - Math.exp(la) * w[a] * l[a], 0);
  }, z);
}

function randomLogits(rng: Rng, scale: number): number[] {
  return Array.from({ length: V }, () => scale * (2 * rng.float() - 1));
}

const maxDiff = (a: readonly number[], b: readonly number[]) => Math.max(...a.map((x, i) => Math.abs(x - b[i])));
const norm = (a: readonly number[]) => Math.sqrt(a.reduce((s, x) => s + x * x, 0));

test("klMode=loss: the expected gradient of the KL term is that of KL(π ‖ π_base) over the vocabulary", () => {
  const rng = new Rng(11);
  for (let trial = 0; trial < 20; trial++) {
    const z = randomLogits(rng, 2),
      zBase = randomLogits(rng, 2);
    const beta = 0.3;
    const want = fdGradient((zz) => beta * exactKl(zz, zBase), z);
    const got = expectedLossGradient(z, zBase, (lp, lb) => klLossWeight(beta, lp, lb));
    assert.ok(maxDiff(got, want) < 1e-7, `trial ${trial}: ${got} vs ${want}`);
    assert.ok(norm(want) > 1e-3, "a case with a gradient to match");
  }
});

test("klMode=loss off-policy (PPO's later epochs): the ratio-weighted term keeps the gradient of KL(π ‖ π_base)", () => {
  const rng = new Rng(12);
  for (let trial = 0; trial < 10; trial++) {
    const z = randomLogits(rng, 2),
      zOld = randomLogits(rng, 1).map((x, v) => x + z[v]), // the behaviour policy, near π
      zBase = randomLogits(rng, 2);
    const lp = logSoftmax(z),
      lo = logSoftmax(zOld),
      lb = logSoftmax(zBase);
    // tokens drawn from π_old, weight w_a = klLossWeight(…, ρ_a), ρ_a = π_a / π_old,a; gradient of Σ_a π_old,a (−w_a) log π_a
    const w = lp.map((l, a) => klLossWeight(1, l, lb[a], Math.exp(l - lo[a])));
    const got = fdGradient((zz) => {
      const l = logSoftmax(zz);
      return lo.reduce((acc, la, a) => acc - Math.exp(la) * w[a] * l[a], 0);
    }, z);
    const want = fdGradient((zz) => exactKl(zz, zBase), z);
    assert.ok(maxDiff(got, want) < 1e-7, `trial ${trial}: ${got} vs ${want}`);
  }
});

test("sampled tokens: the Monte Carlo mean of the KL term's gradient converges to the exact KL's", () => {
  const rng = new Rng(13);
  const z = [1.2, -0.4, 0.3, -1.5, 0.8],
    zBase = [0.1, 0.9, -0.7, 0.4, -0.2];
  const lp = logSoftmax(z),
    lb = logSoftmax(zBase);
  const p = lp.map(Math.exp);
  const want = fdGradient((zz) => exactKl(zz, zBase), z);
  // d(−w_a log π_a)/dz = −w_a (e_a − π) for the softmax; averaged over n draws a ~ π
  const sum = new Array<number>(V).fill(0);
  const n = 200_000;
  for (let i = 0; i < n; i++) {
    let u = rng.float(),
      a = 0;
    while (a < V - 1 && u >= p[a]) u -= p[a++];
    const w = klLossWeight(1, lp[a], lb[a]);
    for (let j = 0; j < V; j++) sum[j] += -w * ((j === a ? 1 : 0) - p[j]);
  }
  const got = sum.map((x) => x / n);
  assert.ok(maxDiff(got, want) < 0.01, `${got} vs ${want}`);
});

test("why not k1 or k3 in the loss: k1's gradient averages to zero, k3's is that of KL(π_base ‖ π)", () => {
  const z = [1.2, -0.4, 0.3, -1.5, 0.8],
    zBase = [0.1, 0.9, -0.7, 0.4, -0.2];
  const asLoss = (est: "k1" | "k3") => (lp: number, lb: number) => -klGradient(lp, lb, est);
  const forward = fdGradient((zz) => exactKl(zz, zBase), z); // KL(π ‖ π_base)
  const reverse = fdGradient((zz) => exactKl(zBase, zz), z); // KL(π_base ‖ π)
  const k1 = expectedLossGradient(z, zBase, asLoss("k1"));
  const k3 = expectedLossGradient(z, zBase, asLoss("k3"));
  assert.ok(norm(k1) < 1e-7, `k1: ${k1}`);
  assert.ok(maxDiff(k3, reverse) < 1e-7, `k3: ${k3} vs ∇KL(base ‖ π) ${reverse}`);
  assert.ok(maxDiff(k3, forward) > 0.05, "and that is not ∇KL(π ‖ base)");
});

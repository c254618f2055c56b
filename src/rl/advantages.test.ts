/**
 * Returns, baselines and advantages against hand computations; KL estimators and the adaptive controller.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../util/rng.ts";
import { discountedReturns, gaeAdvantages, reinforceAdvantages, tdAdvantages, whitenAdvantages } from "./advantages.ts";
import { KlController, klGradient, klPerToken } from "./kl.ts";
import type { Sample } from "./sample.ts";

function sample(o: Partial<Sample> & Pick<Sample, "episode" | "world" | "agent" | "round" | "reward">): Sample {
  return {
    adapter: "agent0",
    promptIds: [],
    completionIds: [],
    behaviourLogprobs: [],
    excerpt: "",
    refLogprobs: null,
    kl: 0,
    hidden: null,
    value: 0,
    ret: 0,
    advantage: 0,
    messageStart: 0,
    messageReward: 0,
    messageRet: 0,
    messageAdvantage: 0,
    ...o,
  };
}

const close = (a: number, b: number, tol = 1e-12) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b}`);

test("discounted returns run backwards within each (episode, agent), in round order", () => {
  // given out of order: rounds 3, 1, 2 of one trajectory, and one round of another agent
  const s = [
    sample({ episode: 0, world: 0, agent: 0, round: 3, reward: 4 }),
    sample({ episode: 0, world: 0, agent: 0, round: 1, reward: 1 }),
    sample({ episode: 0, world: 0, agent: 0, round: 2, reward: 2 }),
    sample({ episode: 0, world: 0, agent: 1, round: 1, reward: 7 }),
  ];
  discountedReturns(s, 0.5);
  close(s[0].ret, 4);
  close(s[2].ret, 2 + 0.5 * 4);
  close(s[1].ret, 1 + 0.5 * (2 + 0.5 * 4));
  close(s[3].ret, 7);
});

test("REINFORCE baselines: none, batch, RLOO over replicas, group-normalised, moving average", () => {
  // four replicas (episodes 0..3) of world 5, one agent, one round; returns 1, 2, 3, 6
  const make = () => [1, 2, 3, 6].map((r, e) => ({ ...sample({ episode: e, world: 5, agent: 0, round: 1, reward: r }), ret: r }));
  let s = make();
  reinforceAdvantages(s, "none", { moving: {} }, 0.9);
  assert.deepEqual(
    s.map((x) => x.advantage),
    [1, 2, 3, 6],
  );
  s = make();
  reinforceAdvantages(s, "batch", { moving: {} }, 0.9);
  assert.deepEqual(
    s.map((x) => x.advantage),
    [-2, -1, 0, 3],
  );
  s = make();
  reinforceAdvantages(s, "rloo", { moving: {} }, 0.9);
  [1 - 11 / 3, 2 - 10 / 3, 3 - 9 / 3, 6 - 6 / 3].forEach((a, i) => close(s[i].advantage, a));
  s = make();
  reinforceAdvantages(s, "group", { moving: {} }, 0.9);
  const sd = Math.sqrt((4 + 1 + 0 + 9) / 4);
  [-2, -1, 0, 3].forEach((d, i) => close(s[i].advantage, d / (sd + 1e-6)));
  // moving: the first batch sets b to its mean (advantages against b = 0), the next uses b = 3
  const state = { moving: {} as Record<string, number> };
  s = make();
  reinforceAdvantages(s, "moving", state, 0.9);
  assert.deepEqual(
    s.map((x) => x.advantage),
    [1, 2, 3, 6],
  );
  close(state.moving.agent0, 3);
  s = make();
  reinforceAdvantages(s, "moving", state, 0.9);
  assert.deepEqual(
    s.map((x) => x.advantage),
    [-2, -1, 0, 3],
  );
  close(state.moving.agent0, 0.9 * 3 + 0.1 * 3);
});

test("message tokens' return: their own part of r_t plus the discounted future; their advantage has its own baseline", () => {
  // one trajectory of 3 rounds; rewards 1, 2, 4 of which the messages' parts are 0.5, −1, 3
  const s = [1, 2, 3].map((round) =>
    sample({ episode: 0, world: 0, agent: 0, round, reward: [1, 2, 4][round - 1], messageReward: [0.5, -1, 3][round - 1] }),
  );
  discountedReturns(s, 0.5);
  [1 + 0.5 * (2 + 0.5 * 4), 2 + 0.5 * 4, 4].forEach((g, k) => close(s[k].ret, g));
  [0.5 + 0.5 * (2 + 0.5 * 4), -1 + 0.5 * 4, 3].forEach((g, k) => close(s[k].messageRet, g));
  // RLOO over 3 replicas: the whole return and the messages' return are baselined separately
  const r = [
    [5, 1],
    [2, 4],
    [8, -2],
  ].map(([ret, messageRet], e) => ({ ...sample({ episode: e, world: 1, agent: 0, round: 1, reward: 0 }), ret, messageRet }));
  reinforceAdvantages(r, "rloo", { moving: {} }, 0.9);
  [5 - 5, 2 - 6.5, 8 - 3.5].forEach((a, k) => close(r[k].advantage, a));
  [1 - 1, 4 - -0.5, -2 - 2.5].forEach((a, k) => close(r[k].messageAdvantage, a));
  // moving averages of the two returns are kept apart
  const state = { moving: {} as Record<string, number> };
  reinforceAdvantages(r, "moving", state, 0.9);
  close(state.moving.agent0, 5);
  close(state.moving["agent0/messages"], 1);
});

test("RLOO groups by world, agent and round, never across them; a lone sample gets no advantage", () => {
  const s = [
    { ...sample({ episode: 0, world: 1, agent: 0, round: 1, reward: 0 }), ret: 1 },
    { ...sample({ episode: 1, world: 1, agent: 0, round: 1, reward: 0 }), ret: 3 },
    { ...sample({ episode: 2, world: 2, agent: 0, round: 1, reward: 0 }), ret: 100 },
    { ...sample({ episode: 0, world: 1, agent: 1, round: 1, reward: 0 }), ret: -50 },
  ];
  reinforceAdvantages(s, "rloo", { moving: {} }, 0.9);
  assert.deepEqual(
    s.map((x) => x.advantage),
    [-2, 2, 0, 0],
  );
});

test("A2C's TD error and PPO's GAE: λ = 0 is the TD error, λ = 1 is the return minus the value", () => {
  const traj = () =>
    [0.5, -1, 2].map((r, k) => sample({ episode: 0, world: 0, agent: 0, round: k + 1, reward: r, value: [0.2, 0.4, -0.3][k] }));
  const gamma = 0.9;
  const td = traj();
  tdAdvantages(td, gamma);
  close(td[0].advantage, 0.5 + gamma * 0.4 - 0.2);
  close(td[1].advantage, -1 + gamma * -0.3 - 0.4);
  close(td[2].advantage, 2 - -0.3);
  const g0 = traj();
  gaeAdvantages(g0, gamma, 0);
  g0.forEach((s, k) => close(s.advantage, td[k].advantage, 1e-12));
  const g1 = traj();
  gaeAdvantages(g1, gamma, 1);
  const returns = [0.5 + gamma * (-1 + gamma * 2), -1 + gamma * 2, 2];
  g1.forEach((s, k) => {
    close(s.advantage, returns[k] - s.value, 1e-12);
    close(s.ret, returns[k], 1e-12); // the value target is A + V
  });
});

test("GAE at λ = 0.5: A_t = Σ_l (γλ)^l δ_{t+l}, worked by hand", () => {
  // γ = 0.9, λ = 0.5 (γλ = 0.45); rewards 0.5, −1, 2; values 0.2, 0.4, −0.3; V = 0 after the last round
  //   δ_1 = 0.5 + 0.9·0.4 − 0.2 = 0.66      δ_2 = −1 + 0.9·(−0.3) − 0.4 = −1.67      δ_3 = 2 − (−0.3) = 2.3
  //   A_3 = 2.3
  //   A_2 = −1.67 + 0.45·2.3 = −0.635
  //   A_1 = 0.66 + 0.45·(−1.67) + 0.45²·2.3 = 0.66 − 0.7515 + 0.46575 = 0.37425
  // (a wrong power — (γλ)^(l+1), γ^l λ, λ^l — gives other numbers at λ = 0.5; λ = 0 and 1 cannot tell)
  const s = [0.5, -1, 2].map((r, k) => sample({ episode: 0, world: 0, agent: 0, round: k + 1, reward: r, value: [0.2, 0.4, -0.3][k] }));
  gaeAdvantages([s[2], s[0], s[1]], 0.9, 0.5); // out of order: GAE runs in round order
  [0.37425, -0.635, 2.3].forEach((a, k) => close(s[k].advantage, a, 1e-12));
  [0.57425, -0.235, 2.0].forEach((g, k) => close(s[k].ret, g, 1e-12)); // value targets A + V
});

test("whitening: zero mean and unit std per adapter, the value targets untouched", () => {
  const s = [1, 2, 3, 6, -4, 4].map((a, i) => ({
    ...sample({ episode: i, world: i, agent: 0, round: 1, reward: 0, adapter: i < 4 ? "a" : "b" }),
    advantage: a,
    ret: 10 + i,
  }));
  whitenAdvantages(s);
  const sd = Math.sqrt((4 + 1 + 0 + 9) / 4);
  [-2, -1, 0, 3].forEach((d, i) => close(s[i].advantage, d / (sd + 1e-8)));
  close(s[4].advantage, -4 / (4 + 1e-8));
  close(s[5].advantage, 4 / (4 + 1e-8));
  s.forEach((x, i) => assert.equal(x.ret, 10 + i));
});

test("k1 and k3 are unbiased estimates of KL(π ‖ π_base); k3 is never negative; the gradients are d/d log π", () => {
  const p = [0.5, 0.3, 0.2],
    q = [0.2, 0.5, 0.3]; // π and π_base over three tokens
  const kl = p.reduce((a, pi, i) => a + pi * Math.log(pi / q[i]), 0);
  const rng = new Rng(3);
  let s1 = 0,
    s3 = 0;
  const n = 200_000;
  for (let k = 0; k < n; k++) {
    const u = rng.float();
    const i = u < p[0] ? 0 : u < p[0] + p[1] ? 1 : 2;
    s1 += klPerToken(Math.log(p[i]), Math.log(q[i]), "k1");
    const k3 = klPerToken(Math.log(p[i]), Math.log(q[i]), "k3");
    assert.ok(k3 >= 0);
    s3 += k3;
  }
  close(s1 / n, kl, 0.005);
  close(s3 / n, kl, 0.005);
  for (const est of ["k1", "k2", "k3"] as const) {
    const lp = Math.log(0.3),
      lq = Math.log(0.6),
      h = 1e-6;
    const fd = (klPerToken(lp + h, lq, est) - klPerToken(lp - h, lq, est)) / (2 * h);
    close(klGradient(lp, lq, est), fd, 1e-6);
  }
});

test("adaptive KL (Ziegler et al. 2019): β grows above the target, shrinks below, by at most 20% × n / horizon", () => {
  const c = new KlController(0.1, 0.05, 1000);
  c.update(0.5, 100); // KL 10× the target: error clipped to +0.2
  close(c.beta, 0.1 * (1 + (0.2 * 100) / 1000));
  const up = c.beta;
  c.update(0.045, 100); // 10% under: e = −0.1
  close(c.beta, up * (1 - (0.1 * 100) / 1000));
  const fixed = new KlController(0.1, null, 1000);
  fixed.update(5, 100);
  assert.equal(fixed.beta, 0.1);
  // held far above the target, β climbs until the policy gives in: it never explodes in one step
  const d = new KlController(0.02, 0.05, 2000);
  for (let i = 0; i < 100; i++) d.update(1, 288);
  close(d.beta, 0.02 * (1 + (0.2 * 288) / 2000) ** 100, 1e-12);
});

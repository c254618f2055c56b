/**
 * The algorithms' per-token weights against hand computations, through ALGORITHMS with a recording stand-in for
 * the backend: PPO's clipped surrogate (ratios, advantages, ε, the clip fraction) and the KL term of klMode=loss.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, TrainRow } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { DEFAULT_TRAIN, type TrainConfig } from "../run/config.ts";
import { Rng } from "../util/rng.ts";
import { ALGORITHMS, type AlgorithmContext, ppoTokenWeight } from "./algorithms.ts";
import type { Sample } from "./sample.ts";
import { ValueHead } from "./value-head.ts";

const close = (a: number, b: number, tol = 1e-9) => assert.ok(Math.abs(a - b) <= tol, `${a} ≠ ${b}`);

test("PPO's clipped surrogate per token, by hand (ε = 0.2)", () => {
  // ρ, A → min(ρA, clip(ρ, 0.8, 1.2) A); the gradient with respect to log π is ρA where ρA is the minimum, else 0
  const cases = [
    { ratio: 1.5, A: 2, objective: 1.2 * 2, weight: 0, clipped: true }, // 3 > 2.4: held at 1 + ε
    { ratio: 1.1, A: 2, objective: 2.2, weight: 2.2, clipped: false }, // inside the band
    { ratio: 0.7, A: 2, objective: 1.4, weight: 1.4, clipped: false }, // 1.4 < 1.6: the unclipped term is the min
    { ratio: 1.5, A: -1, objective: -1.5, weight: -1.5, clipped: false }, // −1.5 < −1.2: unclipped
    { ratio: 0.7, A: -1, objective: -0.8, weight: 0, clipped: true }, // −0.8 < −0.7: held at 1 − ε
    { ratio: 0.9, A: -1, objective: -0.9, weight: -0.9, clipped: false },
  ];
  const oldLogp = -1.3;
  for (const c of cases) {
    const t = ppoTokenWeight(oldLogp + Math.log(c.ratio), oldLogp, c.A, 0.2);
    close(t.objective, c.objective, 1e-12);
    close(t.weight, c.weight, 1e-12);
    assert.equal(t.clipped, c.clipped, JSON.stringify(c));
    // the weight is the derivative of the objective with respect to log π (finite differences, away from the kinks)
    const h = 1e-7;
    const fd = (ppoTokenWeight(oldLogp + Math.log(c.ratio) + h, oldLogp, c.A, 0.2).objective - t.objective) / h;
    close(fd, c.weight, 1e-5);
  }
});

/** A backend that scores each row with the log-probs it is given and records the rows of backward. */
function recordingBackend(logprobsOf: (row: { tokens: ArrayLike<number> }) => number[]): { backend: Backend; rows: TrainRow[] } {
  const rows: TrainRow[] = [];
  const fake = {
    config: { dim: 2 },
    async score(requests: readonly { tokens: ArrayLike<number> }[]) {
      return requests.map((r) => ({ logprobs: Float64Array.from(logprobsOf(r)), entropies: new Float64Array(r.tokens.length) }));
    },
    async zeroGrad() {},
    async backward(batch: readonly TrainRow[]) {
      rows.push(...batch);
      return { loss: 0, logprobs: [], entropies: batch.map((r) => new Float64Array(r.tokens.length)) };
    },
    async clipGradNorm() {
      return 0;
    },
    async step() {},
  };
  return { backend: fake as unknown as Backend, rows };
}

function sample(o: Partial<Sample> & Pick<Sample, "episode" | "promptIds" | "completionIds" | "behaviourLogprobs" | "reward">): Sample {
  return {
    adapter: "a",
    world: o.episode,
    agent: 0,
    round: 1,
    messageStart: o.completionIds.length,
    messageReward: 0,
    excerpt: "",
    refLogprobs: null,
    kl: 0,
    hidden: Float32Array.from([1, 0]),
    value: 0,
    ret: 0,
    advantage: 0,
    messageRet: 0,
    messageAdvantage: 0,
    ...o,
  };
}

function context(backend: Backend, over: Partial<TrainConfig>): AlgorithmContext {
  return {
    backend,
    tokenizer: null as unknown as Tokenizer, // only the supervised term (sftCoef > 0) reads it
    config: { ...DEFAULT_TRAIN, ...over },
    adapters: ["a"],
    beta: 0.1,
    baseline: { moving: {} },
    valueHeads: new Map([["a", new ValueHead(2)]]),
    rng: new Rng(0),
    lr: 1e-3,
  };
}

test("PPO through ALGORITHMS: the weights of backward are ρA or 0 per token, over L · n; the clip fraction is 2/5", async () => {
  // three one-round samples (value 0, so GAE's advantage is the reward), told apart by their prompt token
  const old = [-1, -2];
  const samples = [
    sample({ episode: 0, promptIds: [100], completionIds: [5, 6], behaviourLogprobs: old, reward: 2 }),
    sample({ episode: 1, promptIds: [101], completionIds: [5, 6], behaviourLogprobs: old, reward: -1 }),
    sample({ episode: 2, promptIds: [102], completionIds: [7], behaviourLogprobs: [-0.5], reward: 2 }),
  ];
  const ratios: Record<number, number[]> = { 100: [1.5, 1.1], 101: [1.5, 0.7], 102: [0.7] };
  const { backend, rows } = recordingBackend((r) => {
    const rho = ratios[r.tokens[0]];
    const behaviour = r.tokens[0] === 102 ? [-0.5] : old;
    return [NaN, ...rho.map((x, k) => behaviour[k] + Math.log(x))];
  });
  const ctx = context(backend, {
    algorithm: "ppo",
    ppoEpochs: 1,
    minibatches: 1,
    ppoClip: 0.2,
    whitenAdvantages: false,
    gamma: 0.9,
    lambda: 0.5,
  });
  const stats = await ALGORITHMS.ppo.train(ctx, samples);
  close(stats.clipFraction!, 2 / 5, 1e-12); // (ρ 1.5, A 2) and (ρ 0.7, A −1) are held by the clip
  // weight = ρA (or 0) / (completion length · samples of the adapter)
  const want: Record<number, number[]> = {
    100: [0, (1.1 * 2) / (2 * 3)],
    101: [(1.5 * -1) / (2 * 3), 0],
    102: [(0.7 * 2) / (1 * 3)],
  };
  assert.equal(rows.length, 3);
  for (const row of rows) {
    const w = Array.from(row.weights).slice(row.from);
    want[row.tokens[0]].forEach((x, k) => close(w[k], x, 1e-12));
    assert.equal(row.weights[0], 0, "no weight on the prompt");
  }
  assert.ok(stats.valueLoss !== null && stats.valueLoss > 0, "the value head is fitted to the returns");
});

test("klMode=loss adds −β (log π − log π_base) to each token's weight; klMode=reward leaves the weights to the advantage", async () => {
  const make = () => [
    sample({ episode: 0, promptIds: [100], completionIds: [5, 6], behaviourLogprobs: [-1, -2], refLogprobs: [-1.5, -1], reward: 3 }),
    sample({ episode: 1, promptIds: [101], completionIds: [7], behaviourLogprobs: [-0.2], refLogprobs: [-0.4], reward: 1 }),
  ];
  const base = { algorithm: "reinforce", baseline: "none", splitAdvantage: false, gamma: 0 } as const;
  const run = async (over: Partial<TrainConfig>) => {
    const { backend, rows } = recordingBackend(() => []);
    await ALGORITHMS.reinforce.train(context(backend, { ...base, ...over }), make());
    return Object.fromEntries(rows.map((r) => [r.tokens[0], Array.from(r.weights).slice(r.from)]));
  };
  const beta = 0.1; // context()'s
  const loss = await run({ klMode: "loss", klEstimator: "k1" }); // the estimator measured does not change the gradient
  // sample 0: A = 3, tokens (log π, log π_base) = (−1, −1.5), (−2, −1); over L · n = 2 · 2
  close(loss[100][0], (3 - beta * (-1 - -1.5)) / 4, 1e-12);
  close(loss[100][1], (3 - beta * (-2 - -1)) / 4, 1e-12);
  // sample 1: A = 1, (−0.2, −0.4); over 1 · 2
  close(loss[101][0], (1 - beta * (-0.2 - -0.4)) / 2, 1e-12);
  const reward = await run({ klMode: "reward" });
  assert.deepEqual(reward, { 100: [3 / 4, 3 / 4], 101: [1 / 2] });
});

test("PPO steps its value head on every minibatch of every epoch, its loss clipped around the rollout's values", async () => {
  // one sample, value 0 at rollout, return 100; 4 epochs × 1 minibatch: the head takes 4 steps
  const h = Float32Array.from([1, 0]);
  const trained = async (valueClip: number) => {
    const samples = [sample({ episode: 0, promptIds: [100], completionIds: [5], behaviourLogprobs: [-1], reward: 100 })];
    const { backend } = recordingBackend(() => [NaN, -1]);
    const ctx = context(backend, { algorithm: "ppo", ppoEpochs: 4, minibatches: 1, valueClip, valueLr: 1, whitenAdvantages: false });
    await ALGORITHMS.ppo.train(ctx, samples);
    return ctx.valueHeads.get("a")!.predict(h);
  };
  const byHand = (valueClip: number) => {
    const head = new ValueHead(2);
    for (let step = 0; step < 4; step++) head.fit([h], [100], 1, valueClip > 0 ? [0] : undefined, valueClip);
    return head.predict(h);
  };
  const clipped = await trained(0.2),
    free = await trained(0);
  close(clipped, byHand(0.2), 1e-12);
  close(free, byHand(0), 1e-12);
  // past 0.2 the clipped term wins and has no gradient: only Adam's momentum moves the head on
  assert.ok(free > clipped + 1, `unclipped ${free}, clipped ${clipped}`);
});

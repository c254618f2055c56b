/**
 * The policy-gradient algorithms, chosen by name. Each reduces to the engine's one training call: backward of
 * L = −Σ_t w_t log π(a_t | ·) over the completion tokens, with per-token weights computed here.
 *   reinforce  w = A (baseline: none / moving / batch / rloo / group); with splitAdvantage the message tokens take
 *              the advantage of the return they can change (advantages.ts)
 *   a2c        w = A = r + γV(s') − V(s), V a detached value head on the prompt's last hidden state
 *   ppo        w = ρA where the clipped surrogate is active, else 0 (ρ = π/π_old; ppoTokenWeight); epochs ×
 *              minibatches; GAE(γ, λ) across rounds; clipped value loss
 * A2C and PPO whiten their advantages per adapter (whitenAdvantages, on by default): their baseline is a value head
 * that starts knowing nothing, and unwhitened advantages then carry the batch's mean reward as noise.
 * Every weight is divided by the adapter's sample count (and by the completion length with lengthNorm), so
 * each adapter's gradient is a mean over its own samples. KL to the base policy enters the reward (Ziegler) or
 * the loss (w −= β ρ (log π − log π_base), whose expected gradient is that of KL(π ‖ π_base): kl.ts); the entropy
 * bonus and the supervised term on the agent's own excerpts are extra terms of the same call.
 */
import type { Backend, TrainRow } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { Rng } from "../util/rng.ts";
import { groupBy } from "../util/collections.ts";
import { mean } from "../util/stats.ts";
import { type BaselineState, discountedReturns, gaeAdvantages, reinforceAdvantages, tdAdvantages, whitenAdvantages } from "./advantages.ts";
import type { TrainConfig } from "../run/config.ts";
import { klLossWeight } from "./kl.ts";
import type { Sample } from "./sample.ts";
import type { ValueHead } from "./value-head.ts";

export interface AlgorithmContext {
  backend: Backend;
  tokenizer: Tokenizer;
  config: TrainConfig;
  adapters: string[]; // the trainable adapters
  beta: number; // current KL coefficient
  baseline: BaselineState;
  valueHeads: Map<string, ValueHead>;
  rng: Rng;
  lr: number;
}

export interface UpdateStats {
  entropy: number; // mean entropy per completion token (nats)
  gradNorm: number;
  clipFraction: number | null; // PPO: share of tokens whose ratio was clipped
  valueLoss: number | null;
}

type TokenWeight = (s: Sample, k: number, logpNow: number) => number;

/** Training rows for `samples`: policy-gradient weights, the KL-in-loss term and the entropy bonus. */
function policyRows(ctx: AlgorithmContext, samples: readonly Sample[], pg: TokenWeight, current: number[][] | null): TrainRow[] {
  const { config: c } = ctx;
  const count = new Map<string, number>();
  for (const s of samples) count.set(s.adapter, (count.get(s.adapter) ?? 0) + 1);
  return samples.map((s, i) => {
    const P = s.promptIds.length,
      L = s.completionIds.length;
    const norm = (c.lengthNorm ? L : 1) * count.get(s.adapter)!;
    const weights = new Float64Array(P + L),
      entropyWeights = new Float64Array(P + L);
    for (let k = 0; k < L; k++) {
      const logp = current ? current[i][k] : s.behaviourLogprobs[k];
      let w = pg(s, k, logp);
      if (c.klMode === "loss" && s.refLogprobs)
        w += klLossWeight(ctx.beta, logp, s.refLogprobs[k], current ? Math.exp(logp - s.behaviourLogprobs[k]) : 1);
      weights[P + k] = w / norm;
      entropyWeights[P + k] = c.entropyCoef / norm;
    }
    return {
      tokens: [...s.promptIds, ...s.completionIds],
      adapter: s.adapter,
      weights,
      entropyWeights: c.entropyCoef ? entropyWeights : undefined,
      from: P,
      temperature: c.temperature,
    };
  });
}

/** Cross-entropy rows on each agent's own excerpts (the optional supervised term). */
function sftRows(ctx: AlgorithmContext, samples: readonly Sample[]): TrainRow[] {
  if (ctx.config.sftCoef === 0) return [];
  const rows: TrainRow[] = [];
  for (const [adapter, list] of groupBy(samples, (s) => s.adapter)) {
    const texts = [...new Set(list.map((s) => s.excerpt))].map((t) => ctx.tokenizer.encode(t, { addSpecial: true }));
    const targets = texts.reduce((a, t) => a + t.length - 1, 0);
    for (const tokens of texts) rows.push({ tokens, adapter, weights: tokens.map((_, k) => (k === 0 ? 0 : ctx.config.sftCoef / targets)) });
  }
  return rows;
}

/** zero_grad → backward → clip → step; the entropy is measured on the policy rows' completions. */
async function update(ctx: AlgorithmContext, policy: TrainRow[], extra: TrainRow[]): Promise<{ entropy: number; gradNorm: number }> {
  await ctx.backend.zeroGrad(ctx.adapters);
  const r = await ctx.backend.backward([...policy, ...extra], 1);
  const gradNorm = await ctx.backend.clipGradNorm(ctx.adapters, ctx.config.maxGradNorm);
  await ctx.backend.step(ctx.adapters, ctx.lr);
  const ents: number[] = [];
  policy.forEach((row, i) => {
    for (let k = row.from!; k < row.tokens.length; k++) ents.push(r.entropies[i][k]);
  });
  return { entropy: mean(ents), gradNorm };
}

async function fitValues(ctx: AlgorithmContext, samples: readonly Sample[], clip: number): Promise<number> {
  const losses: number[] = [];
  for (const [adapter, list] of groupBy(samples, (s) => s.adapter)) {
    const head = ctx.valueHeads.get(adapter)!;
    losses.push(
      head.fit(
        list.map((s) => s.hidden!),
        list.map((s) => s.ret),
        ctx.config.valueLr,
        clip > 0 ? list.map((s) => s.value) : undefined,
        clip,
      ),
    );
  }
  return mean(losses);
}

/**
 * PPO's clipped surrogate for one token, min(ρA, clip(ρ, 1 − ε, 1 + ε) A) with ρ = π/π_old = exp(log π − log π_old),
 * and its derivative with respect to log π: ρA where the unclipped term is the minimum, 0 where the clip holds it
 * (ρ ≥ 1 + ε with A ≥ 0, ρ ≤ 1 − ε with A < 0); `clipped` counts toward the clip fraction.
 */
export function ppoTokenWeight(
  logp: number,
  oldLogp: number,
  advantage: number,
  eps: number,
): { objective: number; weight: number; clipped: boolean } {
  const ratio = Math.exp(logp - oldLogp);
  const active = advantage >= 0 ? ratio < 1 + eps : ratio > 1 - eps;
  const objective = Math.min(ratio * advantage, Math.max(1 - eps, Math.min(1 + eps, ratio)) * advantage);
  return { objective, weight: active ? ratio * advantage : 0, clipped: !active };
}

export interface Algorithm {
  usesValueHead: boolean;
  train(ctx: AlgorithmContext, samples: Sample[]): Promise<UpdateStats>;
}

export const ALGORITHMS: Record<TrainConfig["algorithm"], Algorithm> = {
  reinforce: {
    usesValueHead: false,
    async train(ctx, samples) {
      discountedReturns(samples, ctx.config.gamma);
      reinforceAdvantages(samples, ctx.config.baseline, ctx.baseline, ctx.config.baselineMomentum);
      const split = ctx.config.splitAdvantage;
      const u = await update(
        ctx,
        policyRows(ctx, samples, (s, k) => (split && k >= s.messageStart ? s.messageAdvantage : s.advantage), null),
        sftRows(ctx, samples),
      );
      return { ...u, clipFraction: null, valueLoss: null };
    },
  },
  a2c: {
    usesValueHead: true,
    async train(ctx, samples) {
      tdAdvantages(samples, ctx.config.gamma);
      if (ctx.config.whitenAdvantages) whitenAdvantages(samples);
      const u = await update(
        ctx,
        policyRows(ctx, samples, (s) => s.advantage, null),
        sftRows(ctx, samples),
      );
      const valueLoss = await fitValues(ctx, samples, 0);
      return { ...u, clipFraction: null, valueLoss };
    },
  },
  ppo: {
    usesValueHead: true,
    async train(ctx, samples) {
      const c = ctx.config;
      gaeAdvantages(samples, c.gamma, c.lambda);
      if (c.whitenAdvantages) whitenAdvantages(samples);
      let clipped = 0,
        tokens = 0,
        entropy = 0,
        gradNorm = 0,
        updates = 0,
        valueLoss = 0;
      for (let epoch = 0; epoch < c.ppoEpochs; epoch++) {
        const order = ctx.rng.shuffle(samples.map((_, i) => i));
        const size = Math.ceil(order.length / c.minibatches);
        for (let m = 0; m < c.minibatches; m++) {
          const batch = order.slice(m * size, (m + 1) * size).map((i) => samples[i]);
          if (batch.length === 0) continue;
          const now = await ctx.backend.score(
            batch.map((s) => ({
              tokens: [...s.promptIds, ...s.completionIds],
              adapter: s.adapter,
              from: s.promptIds.length,
              temperature: c.temperature,
            })),
          );
          const current = now.map((r, i) => Array.from(r.logprobs.subarray(batch[i].promptIds.length)));
          const pg: TokenWeight = (s, k, logp) => {
            const t = ppoTokenWeight(logp, s.behaviourLogprobs[k], s.advantage, c.ppoClip);
            tokens++;
            if (t.clipped) clipped++;
            return t.weight;
          };
          const u = await update(ctx, policyRows(ctx, batch, pg, current), sftRows(ctx, batch));
          // the value head takes a step on every minibatch too, its loss clipped around the rollout's values
          valueLoss += await fitValues(ctx, batch, c.valueClip);
          entropy += u.entropy;
          gradNorm += u.gradNorm;
          updates++;
        }
      }
      return {
        entropy: entropy / Math.max(1, updates),
        gradNorm: gradNorm / Math.max(1, updates),
        clipFraction: tokens ? clipped / tokens : 0,
        valueLoss: valueLoss / Math.max(1, updates),
      };
    },
  },
};

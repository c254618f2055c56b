/**
 * Random initialisation of a base model for pretraining from scratch (GPT-2 / nanoGPT style): norms 1, every
 * matrix N(0, std²), the two projections back into the residual stream (o, down) scaled by 1/sqrt(2L).
 */
import type { Rng } from "../util/rng.ts";
import type { ModelConfig } from "./config.ts";
import type { BaseWeights } from "./params.ts";

export function initBaseWeights(w: BaseWeights, c: ModelConfig, rng: Rng, std = 0.02): void {
  const fill = (a: Float32Array, s: number) => {
    for (let i = 0; i < a.length; i++) a[i] = rng.normal() * s;
  };
  fill(w.embed, std);
  const residualStd = std / Math.sqrt(2 * c.nLayers);
  for (const layer of w.layers) {
    layer.attnNorm.fill(1);
    layer.mlpNorm.fill(1);
    for (const [kind, m] of Object.entries(layer.linear)) fill(m, kind === "o" || kind === "down" ? residualStd : std);
  }
  w.finalNorm.fill(1);
  if (w.lmHead !== w.embed) fill(w.lmHead, std);
}

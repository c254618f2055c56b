/**
 * The benchmark's model shapes, in one place. (a) is the small model. (b) is "the default base model":
 * src/pretrain/default-model.ts's recipe, whose shape is taken from there (so the bench follows the recipe when it
 * changes) and built in memory with random weights, since speed depends only on shapes; building the real model
 * takes minutes of pretraining. `--model standin` benches the stand-in the issue described before the default
 * model existed; `--model <Hugging Face dir>` benches a real model as (b).
 */
import type { ModelConfig } from "../src/engine/config.ts";
import { DEFAULT_MODEL_RECIPE } from "../src/pretrain/default-model.ts";

function llama(
  over: Partial<ModelConfig> & Pick<ModelConfig, "dim" | "nLayers" | "nHeads" | "nKvHeads" | "hiddenDim" | "vocabSize" | "maxSeqLen">,
): ModelConfig {
  return {
    headDim: over.dim / over.nHeads,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: false,
    bosId: 1,
    eosIds: [2],
    ...over,
  };
}

/** (a): dim 288, 6 layers, 6 heads, hidden 768, vocab 512, context 256 (llama2.c's stories15M shape at vocab 512). */
export const SHAPE_A: ModelConfig = llama({ dim: 288, nLayers: 6, nHeads: 6, nKvHeads: 6, hiddenDim: 768, vocabSize: 512, maxSeqLen: 256 });

/** (b): the default base model's shape, as its recipe pretrains it (the tokenizer it trains has vocabSize ids). */
export function defaultBaseShape(): ModelConfig {
  const p = DEFAULT_MODEL_RECIPE.pretrain;
  return llama({
    dim: p.dim,
    nLayers: p.nLayers,
    nHeads: p.nHeads,
    nKvHeads: p.nKvHeads,
    hiddenDim: p.hiddenDim,
    vocabSize: p.vocabSize,
    maxSeqLen: p.seqLen,
    tiedEmbeddings: p.tiedEmbeddings,
    ropeTheta: p.ropeTheta,
  });
}

/** The stand-in the issue specified for (b) before the default model existed: dim 256, 4 layers, 8/4 heads, hidden 688, vocab 2048. */
export const DEFAULT_BASE_STANDIN: ModelConfig = llama({
  dim: 256,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 4,
  hiddenDim: 688,
  vocabSize: 2048,
  maxSeqLen: 256,
});

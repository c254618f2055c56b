/**
 * A tiny random model with a small trained tokenizer: fast enough for tests of everything above the engine
 * (episodes, rewards, RL plumbing) without ../shared or the default model.
 */
import type { ModelConfig } from "../src/engine/config.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { SPECIAL_TOKENS, TOKENIZER_CONFIG } from "../src/engine/pretrain.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { trainByteLevelBpe } from "../src/formats/bpe-train.ts";
import { hfTokenizerFromJson } from "../src/formats/hf-tokenizer.ts";
import type { Tokenizer } from "../src/formats/tokenizer.ts";
import { FactsSource } from "../src/env/sources/facts/index.ts";
import { Rng } from "../src/util/rng.ts";

let cached: Tokenizer | null = null;

export function tinyTokenizer(): Tokenizer {
  if (!cached) {
    const docs = new FactsSource(99).sampleDocuments("train", 40);
    docs.push("You are agent 0. Other agents: 1, 2. Keep a one-line state. Send messages as 0:recipient:message.\nMEMORY: \nEXCERPT: \nINBOX:\n(empty)\nSTATE: NEXT: CONTEXT:");
    cached = hfTokenizerFromJson(trainByteLevelBpe(docs, { vocabSize: 400, specialTokens: SPECIAL_TOKENS }), TOKENIZER_CONFIG);
  }
  return cached;
}

export function tinyModel(seed = 1, over: Partial<ModelConfig> = {}): Transformer {
  const c: ModelConfig = {
    dim: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, hiddenDim: 64, vocabSize: tinyTokenizer().vocabSize, maxSeqLen: 512,
    normEps: 1e-5, ropeTheta: 10000, ropeStyle: "half", ropeScaling: null, tiedEmbeddings: true, bosId: 1, eosIds: [2], ...over,
  };
  const m = new Transformer(c);
  initBaseWeights(m.weights, c, new Rng(seed), 0.2);
  return m;
}

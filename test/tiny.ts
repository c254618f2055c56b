/**
 * A tiny random model with a small trained tokenizer: fast enough for tests of everything above the engine
 * (episodes, rewards, RL plumbing) without ../shared or the default model.
 */
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../src/engine/config.ts";
import { saveHfModel } from "../src/formats/hf-checkpoint.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { SPECIAL_TOKENS, TOKENIZER_CONFIG } from "../src/pretrain/pretrain.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { trainByteLevelBpe } from "../src/formats/bpe-train.ts";
import { hfTokenizerFromJson } from "../src/formats/hf-tokenizer.ts";
import type { Tokenizer } from "../src/formats/tokenizer.ts";
import { FactsSource } from "../src/env/sources/facts/index.ts";
import { Rng } from "../src/util/rng.ts";

let cachedJson: object | null = null;
let cached: Tokenizer | null = null;

function tinyTokenizerJson(): object {
  if (!cachedJson) {
    const docs = new FactsSource(99).sampleDocuments("train", 40);
    docs.push(
      "You are agent 0. Other agents: 1, 2. Keep a one-line state. Send messages as 0:recipient:message.\nMEMORY: \nEXCERPT: \nINBOX:\n(empty)\nSTATE: NEXT: CONTEXT:",
    );
    cachedJson = trainByteLevelBpe(docs, { vocabSize: 400, specialTokens: SPECIAL_TOKENS });
  }
  return cachedJson;
}

export function tinyTokenizer(): Tokenizer {
  cached ??= hfTokenizerFromJson(tinyTokenizerJson(), TOKENIZER_CONFIG);
  return cached;
}

/** tiny-llama-gqa's shape (../shared/fixtures/hf-llama): C 64, L 2, NH 4, KVH 2, HS 16, F 176, V 320, context 128, untied. */
export function tinyGqaConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    dim: 64,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 16,
    hiddenDim: 176,
    vocabSize: 320,
    maxSeqLen: 128,
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

export function tinyModel(seed = 1, over: Partial<ModelConfig> = {}): Transformer {
  const c: ModelConfig = {
    dim: 32,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 8,
    hiddenDim: 64,
    vocabSize: tinyTokenizer().vocabSize,
    maxSeqLen: 512,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: true,
    bosId: 1,
    eosIds: [2],
    ...over,
  };
  const m = new Transformer(c);
  initBaseWeights(m.weights, c, new Rng(seed), 0.2);
  return m;
}

/** Writes the tiny model and its tokenizer as a Hugging Face folder (for CLI tests that take --model). */
export function saveTinyModel(dir: string, seed = 1): string {
  const m = tinyModel(seed);
  saveHfModel(dir, m.config, m.weights);
  fs.writeFileSync(path.join(dir, "tokenizer.json"), JSON.stringify(tinyTokenizerJson()));
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify(TOKENIZER_CONFIG));
  return dir;
}

/**
 * Pretraining a small base model from scratch: a byte-level BPE tokenizer trained on the corpus, a LLaMA-family
 * model with random initialisation, AdamW on every parameter with warm-up and cosine decay, and validation loss on
 * held-out documents. The result is an ordinary Hugging Face checkpoint (config.json, model.safetensors,
 * tokenizer.json, tokenizer_config.json) that transformers can load.
 */
import fs from "node:fs";
import path from "node:path";
import { trainByteLevelBpe } from "../formats/bpe-train.ts";
import { saveHfModel } from "../formats/hf-checkpoint.ts";
import { hfTokenizerFromJson } from "../formats/hf-tokenizer.ts";
import { tokenDocuments } from "../formats/text-data.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { Rng } from "../util/rng.ts";
import type { ModelConfig } from "../engine/config.ts";
import { initBaseWeights } from "../engine/init.ts";
import { documentSampler, evalLogprobSum, trainLoop } from "../engine/lm-training.ts";
import { Optimizer } from "../engine/optim.ts";
import { baseGroups } from "../engine/param-groups.ts";
import { Transformer } from "../engine/transformer.ts";

export const SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>"]; // ids 0, 1, 2

export interface PretrainConfig {
  vocabSize: number; // tokenizer vocabulary (specials + 256 bytes + merges)
  dim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  hiddenDim: number;
  seqLen: number; // the model's context length; longer documents are cut to it
  tiedEmbeddings: boolean;
  ropeTheta: number;
  steps: number;
  batchSize: number; // tokens per step = batchSize × seqLen, as whole documents (one per row)
  lr: number; // peak learning rate
  minLrRatio: number; // cosine floor, as a fraction of lr
  warmup: number; // linear warm-up steps
  weightDecay: number;
  maxGradNorm: number;
  initStd: number; // std of the random init; ~1.7/sqrt(dim) lets small models learn in-context copying early
  seed: number;
  evalEvery: number; // steps between validation passes
  evalTokens: number; // validation tokens per pass (the first validation documents)
}

export const DEFAULT_PRETRAIN: PretrainConfig = {
  vocabSize: 1024,
  dim: 128,
  nLayers: 4,
  nHeads: 8,
  nKvHeads: 8,
  hiddenDim: 352,
  seqLen: 256,
  tiedEmbeddings: true,
  ropeTheta: 10000,
  steps: 1000,
  batchSize: 8,
  lr: 3e-3,
  minLrRatio: 0.1,
  warmup: 30,
  weightDecay: 0.1,
  maxGradNorm: 1,
  initStd: 0.15,
  seed: 0,
  evalEvery: 100,
  evalTokens: 16384,
};

export interface PretrainLogLine {
  step: number;
  loss: number;
  lr: number;
  tokens_per_s: number;
  val_loss?: number;
}

export interface PretrainResult {
  model: Transformer;
  tokenizer: Tokenizer;
  tokenizerJson: object;
  log: PretrainLogLine[];
  valLoss: number;
  trainTokens: number;
  valTokens: number;
  seconds: { tokenizer: number; training: number };
}

export interface PretrainHooks {
  onTokenizer?: (done: number, total: number) => void;
  onStep?: (line: PretrainLogLine) => void;
}

/** Adds BOS in front of every encoded text (`addSpecial`), as LLaMA tokenizers do. */
function withBosPostProcessor(json: Record<string, unknown>): Record<string, unknown> {
  const bos = SPECIAL_TOKENS[1];
  return {
    ...json,
    post_processor: {
      type: "TemplateProcessing",
      single: [{ SpecialToken: { id: bos, type_id: 0 } }, { Sequence: { id: "A", type_id: 0 } }],
      pair: [
        { SpecialToken: { id: bos, type_id: 0 } },
        { Sequence: { id: "A", type_id: 0 } },
        { SpecialToken: { id: bos, type_id: 1 } },
        { Sequence: { id: "B", type_id: 1 } },
      ],
      special_tokens: { [bos]: { id: bos, ids: [1], tokens: [bos] } },
    },
  };
}

export const TOKENIZER_CONFIG = {
  bos_token: SPECIAL_TOKENS[1],
  eos_token: SPECIAL_TOKENS[2],
  pad_token: SPECIAL_TOKENS[0],
  model_max_length: 0,
  clean_up_tokenization_spaces: false,
  tokenizer_class: "PreTrainedTokenizerFast",
};

export function pretrain(docs: { train: string[]; val: string[] }, cfg: PretrainConfig, hooks: PretrainHooks = {}): PretrainResult {
  if (docs.train.length === 0 || docs.val.length === 0)
    throw new UserError("E_BAD_DATA", "pretraining needs training and validation documents");
  const t0 = performance.now();
  const tokenizerJson = withBosPostProcessor(
    trainByteLevelBpe(docs.train, { vocabSize: cfg.vocabSize, specialTokens: SPECIAL_TOKENS, onProgress: hooks.onTokenizer }) as Record<
      string,
      unknown
    >,
  );
  const tokenizer = hfTokenizerFromJson(tokenizerJson, { ...TOKENIZER_CONFIG, model_max_length: cfg.seqLen });
  const train = tokenDocuments(tokenizer, docs.train);
  const val = tokenDocuments(tokenizer, docs.val).map((d) => d.subarray(0, cfg.seqLen));
  const tTok = performance.now();

  const config: ModelConfig = {
    dim: cfg.dim,
    nLayers: cfg.nLayers,
    nHeads: cfg.nHeads,
    nKvHeads: cfg.nKvHeads,
    headDim: cfg.dim / cfg.nHeads,
    hiddenDim: cfg.hiddenDim,
    vocabSize: tokenizer.vocabSize,
    maxSeqLen: cfg.seqLen,
    normEps: 1e-5,
    ropeTheta: cfg.ropeTheta,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: cfg.tiedEmbeddings,
    bosId: 1,
    eosIds: [2],
  };
  if (!Number.isInteger(config.headDim) || config.headDim % 2)
    throw new UserError("E_BAD_CONFIG", `dim ${cfg.dim} / heads ${cfg.nHeads} must be an even integer`);
  const rng = new Rng(cfg.seed);
  const model = new Transformer(config);
  initBaseWeights(model.weights, config, rng.fork("init"), cfg.initStd);
  model.enableGrad();
  const optimizer = new Optimizer({ kind: "adamw", beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: cfg.weightDecay }, baseGroups(model));

  const valRows: Int32Array[] = [];
  let valTargets = 0;
  for (const d of val) {
    if (valTargets >= cfg.evalTokens) break;
    if (d.length < 2) continue;
    valRows.push(d);
    valTargets += d.length - 1;
  }
  if (valRows.length === 0) throw new UserError("E_BAD_DATA", "no validation document has two tokens");
  const validate = () => -evalLogprobSum(model, valRows, null) / valTargets;

  const log: PretrainLogLine[] = [];
  const sampler = documentSampler(train, cfg.seqLen, cfg.batchSize * cfg.seqLen, rng.fork("batches"));
  const tTrain = performance.now();
  let tokens = 0;
  trainLoop({
    model,
    adapter: null,
    optimizer,
    lr: cfg.lr,
    maxGradNorm: cfg.maxGradNorm,
    steps: cfg.steps,
    schedule: { kind: "cosine", warmup: cfg.warmup, total: cfg.steps, minRatio: cfg.minLrRatio },
    nextBatch: () => sampler(),
    onStep: (step, st) => {
      tokens += st.tokens;
      const line: PretrainLogLine = {
        step: step + 1,
        loss: st.loss,
        lr: st.lr,
        tokens_per_s: tokens / ((performance.now() - tTrain) / 1000),
      };
      if ((step + 1) % cfg.evalEvery === 0 || step + 1 === cfg.steps) line.val_loss = validate();
      log.push(line);
      hooks.onStep?.(line);
    },
  });
  model.grad = null;
  const valLoss = log.length ? log[log.length - 1].val_loss! : validate();
  return {
    model,
    tokenizer,
    tokenizerJson,
    log,
    valLoss,
    trainTokens: train.reduce((s, d) => s + d.length, 0),
    valTokens: valTargets,
    seconds: { tokenizer: (tTok - t0) / 1000, training: (performance.now() - tTrain) / 1000 },
  };
}

/** Writes the checkpoint, the tokenizer, the training log and a summary (`pretrain.json`). */
export function savePretrained(dir: string, r: PretrainResult, meta: Record<string, unknown>): void {
  fs.mkdirSync(dir, { recursive: true });
  saveHfModel(dir, r.model.config, r.model.weights);
  writeFileAtomic(path.join(dir, "tokenizer.json"), JSON.stringify(r.tokenizerJson));
  writeFileAtomic(
    path.join(dir, "tokenizer_config.json"),
    JSON.stringify({ ...TOKENIZER_CONFIG, model_max_length: r.model.config.maxSeqLen }, null, 2) + "\n",
  );
  writeFileAtomic(
    path.join(dir, "generation_config.json"),
    JSON.stringify({ bos_token_id: 1, eos_token_id: 2, pad_token_id: 0 }, null, 2) + "\n",
  );
  writeFileAtomic(path.join(dir, "train_log.jsonl"), r.log.map((l) => JSON.stringify(l)).join("\n") + "\n");
  writeFileAtomic(
    path.join(dir, "pretrain.json"),
    JSON.stringify(
      {
        ...meta,
        val_loss: r.valLoss,
        val_perplexity: Math.exp(r.valLoss),
        train_tokens: r.trainTokens,
        val_tokens: r.valTokens,
        seconds: r.seconds,
        parameters: r.model.weights.data.length,
      },
      null,
      2,
    ) + "\n",
  );
}

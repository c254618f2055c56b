/**
 * One entry point for every model path the CLI accepts: a Hugging Face folder (config.json + safetensors,
 * optional tokenizer.json) or a llama2.c `.bin` file (tokenizer: `--tokenizer tok*.bin`, or a tokenizer.bin /
 * tok<vocab>.bin beside it).
 */
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../engine/config.ts";
import type { BaseWeights } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { loadHfModel } from "./hf-checkpoint.ts";
import { loadHfTokenizer } from "./hf-tokenizer.ts";
import { loadLlama2c } from "./llama2c.ts";
import { loadLlama2cTokenizer } from "./llama2c-tokenizer.ts";
import type { Tokenizer } from "./tokenizer.ts";

export interface LoadedModel {
  format: "hf" | "llama2c";
  path: string;
  config: ModelConfig;
  weights: BaseWeights;
  dtype: string; // as stored on disk
  tokenizer: Tokenizer | null;
  tokenizerPath: string | null;
}

export function loadModel(modelPath: string, tokenizerPath?: string | null): LoadedModel {
  if (!fs.existsSync(modelPath)) {
    throw new UserError(
      "E_NOT_FOUND",
      `model not found: ${modelPath}`,
      "give a Hugging Face folder (config.json + model.safetensors) or a llama2.c .bin file",
    );
  }
  if (fs.statSync(modelPath).isDirectory()) {
    const m = loadHfModel(modelPath);
    const tokPath = tokenizerPath ?? (fs.existsSync(path.join(modelPath, "tokenizer.json")) ? modelPath : null);
    const tokenizer = tokPath ? loadTokenizerFor(tokPath, m.config, path.join(modelPath, "config.json"), "vocab_size") : null;
    return { format: "hf", path: modelPath, config: m.config, weights: m.weights, dtype: m.dtype, tokenizer, tokenizerPath: tokPath };
  }
  const m = loadLlama2c(modelPath);
  const tokPath = tokenizerPath ?? siblingLlama2cTokenizer(modelPath, m.config.vocabSize);
  const tokenizer = tokPath ? loadTokenizerFor(tokPath, m.config, modelPath, "the header's vocab_size") : null;
  return { format: "llama2c", path: modelPath, config: m.config, weights: m.weights, dtype: "float32", tokenizer, tokenizerPath: tokPath };
}

/** The tokenizer at `p`, refused when it has ids the model has no embedding for (`where`, `key`: the model's vocabulary size). */
function loadTokenizerFor(p: string, c: ModelConfig, where: string, key: string): Tokenizer {
  const tok = loadTokenizerAt(p, c.vocabSize);
  if (tok.vocabSize > c.vocabSize) {
    throw new UserError(
      "E_VOCAB_SIZE",
      `tokenizer ${p} has ${tok.vocabSize} tokens but ${where} gives the model ${c.vocabSize} (${key})`,
      "the tokenizer and the model do not belong together",
    );
  }
  return tok;
}

/** A tokenizer from a path: a folder or tokenizer.json (Hugging Face) or a tok*.bin file (llama2.c). */
export function loadTokenizerAt(p: string, vocabSize?: number): Tokenizer {
  if (!fs.existsSync(p)) throw new UserError("E_NOT_FOUND", `tokenizer not found: ${p}`);
  if (fs.statSync(p).isDirectory()) return loadHfTokenizer(p);
  if (p.endsWith(".json")) return loadHfTokenizer(path.dirname(p));
  return loadLlama2cTokenizer(p, vocabSize);
}

function siblingLlama2cTokenizer(modelPath: string, vocabSize: number): string | null {
  const dir = path.dirname(modelPath);
  for (const name of ["tokenizer.bin", `tok${vocabSize}.bin`]) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  return null;
}

/** The model's tokenizer, or a user error that says how to give one. */
export function requireTokenizer(m: LoadedModel): Tokenizer {
  if (m.tokenizer) return m.tokenizer;
  const hint =
    m.format === "hf"
      ? "the folder has no tokenizer.json: pass --tokenizer <file or folder>, or use --ids"
      : "pass --tokenizer <tok*.bin>, or use --ids";
  throw new UserError("E_NO_TOKENIZER", `no tokenizer for ${m.path}`, hint);
}

/**
 * Hugging Face checkpoints: `config.json` + `model.safetensors`, or shards listed in `model.safetensors.index.json`.
 * Every tensor is checked against the shape the config implies, then read straight into the engine's flat buffer.
 */
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../engine/config.ts";
import { type BaseWeights, HF_LINEAR_PATH, LINEAR_KINDS, allocBase, linearShape } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { type HfConfigInfo, parseHfConfig, toHfConfig } from "./hf-config.ts";
import { checkLoadMemory, readJsonBounded, shown } from "./limits.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

export interface LoadedHfModel extends HfConfigInfo {
  weights: BaseWeights;
  files: string[]; // weight files read
}

export function readHfConfig(dir: string): HfConfigInfo {
  const file = path.join(dir, "config.json");
  return parseHfConfig(readJsonBounded(file, "model config", MAX_CONFIG_BYTES), file);
}

/** config.json and the shard index are small; anything larger is not one. */
const MAX_CONFIG_BYTES = 16 * 2 ** 20;

/** The weight files' headers (opened, nothing read yet) and which file holds each tensor. */
interface WeightFiles {
  byTensor: Map<string, SafetensorsFile>;
  files: SafetensorsFile[];
}

/** Opens the checkpoint's safetensors headers: model.safetensors, or the shards model.safetensors.index.json lists. */
function openWeightFiles(dir: string): WeightFiles {
  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  const files: SafetensorsFile[] = [];
  const byTensor = new Map<string, SafetensorsFile>();
  try {
    if (fs.existsSync(index)) {
      const bad = (what: string): never => {
        throw new UserError("E_BAD_INDEX", `${index}: ${what}`, "expected the layout transformers writes for sharded checkpoints");
      };
      const j = readJsonBounded(index, "sharded checkpoint index", MAX_CONFIG_BYTES) as { weight_map?: unknown };
      const map = isObject(j) ? j.weight_map : undefined;
      if (!isObject(map)) bad(`weight_map must be an object of tensor name → shard file, found ${shown(map)}`);
      const shards = new Map<string, SafetensorsFile>();
      for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
        if (typeof shard !== "string" || shard === "" || shard !== path.basename(shard) || shard === "." || shard === "..") {
          bad(`weight_map["${shown(name).slice(1, -1)}"] must be the file name of a shard beside the index, found ${shown(shard)}`);
        }
        let f = shards.get(shard as string);
        if (!f) {
          f = SafetensorsFile.open(path.join(dir, shard as string));
          shards.set(shard as string, f);
          files.push(f);
        }
        if (!f.tensors.has(name)) {
          throw new UserError("E_MISSING_TENSOR", `${f.path}: tensor ${name} is missing`, `${index} says this shard holds it`);
        }
        byTensor.set(name, f);
      }
      return { byTensor, files };
    }
    if (fs.existsSync(single)) {
      const f = SafetensorsFile.open(single);
      files.push(f);
      for (const name of f.tensors.keys()) byTensor.set(name, f);
      return { byTensor, files };
    }
  } catch (e) {
    for (const f of files) f.close();
    throw e;
  }
  const hint = fs.existsSync(path.join(dir, "pytorch_model.bin"))
    ? "this checkpoint is in PyTorch's pickle format; save it with safe_serialization=True"
    : "expected model.safetensors or model.safetensors.index.json";
  throw new UserError("E_NOT_FOUND", `no weights in ${dir}`, hint);
}

/**
 * The tensors a config implies, in the engine's order, generated one by one: a config that declares a million layers
 * is found not to match the weights at the first missing tensor, without building a table of them first.
 */
function* impliedTensors(c: ModelConfig): Generator<{ name: string; shape: number[] }> {
  yield { name: "model.embed_tokens.weight", shape: [c.vocabSize, c.dim] };
  for (let l = 0; l < c.nLayers; l++) {
    yield { name: `model.layers.${l}.input_layernorm.weight`, shape: [c.dim] };
    for (const kind of LINEAR_KINDS) yield { name: `model.layers.${l}.${HF_LINEAR_PATH[kind]}.weight`, shape: linearShape(c, kind) };
    yield { name: `model.layers.${l}.post_attention_layernorm.weight`, shape: [c.dim] };
  }
  yield { name: "model.norm.weight", shape: [c.dim] };
  if (!c.tiedEmbeddings) yield { name: "lm_head.weight", shape: [c.vocabSize, c.dim] };
}

/**
 * Loads a checkpoint in three steps, so that nothing is allocated for a model that cannot load: every tensor the
 * config implies is checked against the headers on disk (name, shape; no tensor of a layer the config does not
 * have), the memory the load needs is checked against this machine's, then each tensor is read into the engine's
 * flat buffer and checked for NaN and infinities.
 */
export function loadHfModel(dir: string): LoadedHfModel {
  const info = readHfConfig(dir);
  const c = info.config;
  const { byTensor, files } = openWeightFiles(dir);
  try {
    const configFile = path.join(dir, "config.json");
    for (const [name, f] of byTensor) {
      if (name.endsWith(".bias"))
        throw new UserError("E_UNSUPPORTED", `${f.path}: tensor ${name} is a bias; LLaMA-family layers have none`);
      const layer = /^model\.layers\.(\d+)\./.exec(name);
      if (layer && Number(layer[1]) >= c.nLayers) {
        throw new UserError(
          "E_SHAPE",
          `${f.path}: tensor ${name} is in layer ${layer[1]} but ${configFile} declares num_hidden_layers ${c.nLayers}`,
          "the config does not match these weights",
        );
      }
    }
    let largest = 0;
    for (const t of impliedTensors(c)) {
      const f = byTensor.get(t.name);
      if (!f) {
        const hint =
          t.name === "lm_head.weight" ? "set tie_word_embeddings=true in config.json if the head shares the embedding" : undefined;
        throw new UserError("E_MISSING_TENSOR", `${dir}: tensor ${t.name} is missing (${configFile} implies it)`, hint);
      }
      const onDisk = f.info(t.name);
      if (onDisk.shape.length !== t.shape.length || onDisk.shape.some((d, i) => d !== t.shape[i])) {
        throw new UserError(
          "E_SHAPE",
          `${f.path}: tensor ${t.name} has shape [${onDisk.shape.join(", ")}] but config.json implies [${t.shape.join(", ")}]`,
          "the config does not match these weights",
        );
      }
      if (onDisk.dtype !== "F32") largest = Math.max(largest, onDisk.end - onDisk.begin);
    }
    checkLoadMemory(c, configFile, largest);
    const weights = allocBase(c);
    for (const t of weights.tensors) byTensor.get(t.name)!.readF32(t.name, t.view);
    return { ...info, weights, files: files.map((f) => f.path) };
  } finally {
    for (const f of files) f.close();
  }
}

/** Writes config.json + model.safetensors (float32). */
export function saveHfModel(dir: string, config: ModelConfig, weights: BaseWeights, extraConfig: Record<string, unknown> = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of weights.tensors) tensors[t.name] = { dtype: "F32", shape: t.shape, data: t.view };
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  writeFileAtomic(path.join(dir, "config.json"), JSON.stringify({ ...toHfConfig(config), ...extraConfig }, null, 2) + "\n");
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

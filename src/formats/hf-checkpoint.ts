/**
 * Hugging Face checkpoints: `config.json` + `model.safetensors`, or shards listed in `model.safetensors.index.json`.
 * Every tensor is checked against the shape the config implies, then read straight into the engine's flat buffer.
 */
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "../engine/config.ts";
import { type BaseWeights, allocBase } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../util/fs.ts";
import { type HfConfigInfo, parseHfConfig, toHfConfig } from "./hf-config.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

export interface LoadedHfModel extends HfConfigInfo {
  weights: BaseWeights;
  files: string[]; // weight files read
}

export function readHfConfig(dir: string): HfConfigInfo {
  const file = path.join(dir, "config.json");
  return parseHfConfig(readJsonFile(file, "model config"), file);
}

/** Maps tensor name → the safetensors file that holds it. */
function weightFiles(dir: string): Map<string, string> {
  const single = path.join(dir, "model.safetensors");
  const index = path.join(dir, "model.safetensors.index.json");
  const map = new Map<string, string>();
  if (fs.existsSync(index)) {
    const j = readJsonFile(index, "sharded checkpoint index") as { weight_map?: Record<string, string> };
    if (!j.weight_map || typeof j.weight_map !== "object") {
      throw new UserError(
        "E_BAD_INDEX",
        `${index}: no weight_map object`,
        "expected the layout transformers writes for sharded checkpoints",
      );
    }
    for (const [name, shard] of Object.entries(j.weight_map)) map.set(name, path.join(dir, shard));
    return map;
  }
  if (fs.existsSync(single)) {
    const f = SafetensorsFile.open(single);
    for (const name of f.tensors.keys()) map.set(name, single);
    f.close();
    return map;
  }
  const hint = fs.existsSync(path.join(dir, "pytorch_model.bin"))
    ? "this checkpoint is in PyTorch's pickle format; save it with safe_serialization=True"
    : "expected model.safetensors or model.safetensors.index.json";
  throw new UserError("E_NOT_FOUND", `no weights in ${dir}`, hint);
}

export function loadHfModel(dir: string): LoadedHfModel {
  const info = readHfConfig(dir);
  const c = info.config;
  const where = weightFiles(dir);
  for (const name of where.keys()) {
    if (name.endsWith(".bias")) {
      throw new UserError("E_UNSUPPORTED", `${where.get(name)}: tensor ${name} is a bias; LLaMA-family layers have none`);
    }
  }
  const weights = allocBase(c);
  const open = new Map<string, SafetensorsFile>();
  try {
    for (const t of weights.tensors) {
      const file = where.get(t.name);
      if (!file) {
        const hint =
          t.name === "lm_head.weight" ? "set tie_word_embeddings=true in config.json if the head shares the embedding" : undefined;
        throw new UserError("E_MISSING_TENSOR", `${dir}: tensor ${t.name} is missing`, hint);
      }
      let f = open.get(file);
      if (!f) {
        f = SafetensorsFile.open(file);
        open.set(file, f);
      }
      const info2 = f.info(t.name);
      if (info2.shape.join(",") !== t.shape.join(",")) {
        throw new UserError(
          "E_SHAPE",
          `${file}: tensor ${t.name} has shape [${info2.shape.join(", ")}] but config.json implies [${t.shape.join(", ")}]`,
          "the config does not match these weights",
        );
      }
      f.readF32(t.name, t.view);
    }
  } finally {
    for (const f of open.values()) f.close();
  }
  return { ...info, weights, files: [...new Set(where.values())] };
}

/** Writes config.json + model.safetensors (float32). */
export function saveHfModel(dir: string, config: ModelConfig, weights: BaseWeights, extraConfig: Record<string, unknown> = {}): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of weights.tensors) tensors[t.name] = { dtype: "F32", shape: t.shape, data: t.view };
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt" });
  writeFileAtomic(path.join(dir, "config.json"), JSON.stringify({ ...toHfConfig(config), ...extraConfig }, null, 2) + "\n");
}

/**
 * The base model's parameters: one flat buffer, layer-major, named as in a Hugging Face LlamaForCausalLM checkpoint.
 * Gradients and optimizer moments for pretraining use the same layout (`allocBase` on a buffer of the same size).
 */
import { type ModelConfig, kvDim, qDim } from "./config.ts";
import { type ParamSet, layoutParams } from "./tensor.ts";

export type LinearKind = "q" | "k" | "v" | "o" | "gate" | "up" | "down";
export const LINEAR_KINDS: readonly LinearKind[] = ["q", "k", "v", "o", "gate", "up", "down"];

/** Hugging Face module path of each linear inside a decoder layer. */
export const HF_LINEAR_PATH: Record<LinearKind, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  gate: "mlp.gate_proj",
  up: "mlp.up_proj",
  down: "mlp.down_proj",
};

/** (out, in) of a linear layer, PyTorch convention: weight is (out, in), y = x W^T. */
export function linearShape(c: ModelConfig, kind: LinearKind): [out: number, inp: number] {
  switch (kind) {
    case "q":
      return [qDim(c), c.dim];
    case "k":
    case "v":
      return [kvDim(c), c.dim];
    case "o":
      return [c.dim, qDim(c)];
    case "gate":
    case "up":
      return [c.hiddenDim, c.dim];
    case "down":
      return [c.dim, c.hiddenDim];
  }
}

export interface LayerWeights {
  attnNorm: Float32Array; // (C)
  mlpNorm: Float32Array; // (C)
  linear: Record<LinearKind, Float32Array>; // q (Q, C), k (KV, C), v (KV, C), o (C, Q), gate (F, C), up (F, C), down (C, F)
}

export interface BaseWeights extends ParamSet {
  embed: Float32Array; // (V, C)
  layers: LayerWeights[]; // (L)
  finalNorm: Float32Array; // (C)
  lmHead: Float32Array; // (V, C); the embedding itself when tied
}

export function baseSizeTable(c: ModelConfig): { name: string; shape: number[] }[] {
  const table = [{ name: "model.embed_tokens.weight", shape: [c.vocabSize, c.dim] }];
  for (let l = 0; l < c.nLayers; l++) {
    table.push({ name: `model.layers.${l}.input_layernorm.weight`, shape: [c.dim] });
    for (const kind of LINEAR_KINDS) {
      table.push({ name: `model.layers.${l}.${HF_LINEAR_PATH[kind]}.weight`, shape: linearShape(c, kind) });
    }
    table.push({ name: `model.layers.${l}.post_attention_layernorm.weight`, shape: [c.dim] });
  }
  table.push({ name: "model.norm.weight", shape: [c.dim] });
  if (!c.tiedEmbeddings) table.push({ name: "lm_head.weight", shape: [c.vocabSize, c.dim] });
  return table;
}

export function baseParamCount(c: ModelConfig): number {
  return baseSizeTable(c).reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Views over a base-model buffer (a new zeroed one, or `data`). */
export function allocBase(c: ModelConfig, data?: Float32Array): BaseWeights {
  const set = layoutParams(baseSizeTable(c), data);
  const byName = new Map(set.tensors.map((t) => [t.name, t.view]));
  const get = (name: string) => byName.get(name)!;
  const layers: LayerWeights[] = [];
  for (let l = 0; l < c.nLayers; l++) {
    const p = `model.layers.${l}.`;
    const linear = {} as Record<LinearKind, Float32Array>;
    for (const kind of LINEAR_KINDS) linear[kind] = get(`${p}${HF_LINEAR_PATH[kind]}.weight`);
    layers.push({ attnNorm: get(`${p}input_layernorm.weight`), mlpNorm: get(`${p}post_attention_layernorm.weight`), linear });
  }
  const embed = get("model.embed_tokens.weight");
  return {
    ...set,
    embed,
    layers,
    finalNorm: get("model.norm.weight"),
    lmHead: c.tiedEmbeddings ? embed : get("lm_head.weight"),
  };
}

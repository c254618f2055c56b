/**
 * LoRA adapters: y = x W^T + scale · (x A^T) B^T with A (R, in) and B (out, R), scale = alpha/R
 * (or alpha/sqrt(R) with rsLoRA). Each adapter is one flat buffer with views; its gradient, when it is being
 * trained, is a second buffer of the same layout. Tensors are named as PEFT saves them.
 */
import type { Rng } from "../util/rng.ts";
import type { ModelConfig } from "./config.ts";
import { HF_LINEAR_PATH, LINEAR_KINDS, type LinearKind, linearShape } from "./params.ts";
import { type ParamSet, layoutParams } from "./tensor.ts";

export interface LoraConfig {
  rank: number; // R
  alpha: number;
  rslora: boolean;
  targets: LinearKind[];
}

export interface LoraLinear {
  A: Float32Array; // (R, in)
  B: Float32Array; // (out, R)
  inDim: number;
  outDim: number;
}

export interface LoraWeights extends ParamSet {
  layers: Partial<Record<LinearKind, LoraLinear>>[]; // (L)
}

export interface Adapter {
  name: string;
  lora: LoraConfig;
  scale: number;
  weights: LoraWeights;
  grad: LoraWeights | null; // present while the adapter is trainable
}

export function loraScale(c: LoraConfig): number {
  return c.rslora ? c.alpha / Math.sqrt(c.rank) : c.alpha / c.rank;
}

export function peftTensorName(layer: number, kind: LinearKind, ab: "A" | "B"): string {
  return `base_model.model.model.layers.${layer}.${HF_LINEAR_PATH[kind]}.lora_${ab}.weight`;
}

export function loraSizeTable(model: ModelConfig, lora: LoraConfig): { name: string; shape: number[] }[] {
  const table: { name: string; shape: number[] }[] = [];
  for (let l = 0; l < model.nLayers; l++) {
    for (const kind of LINEAR_KINDS) {
      if (!lora.targets.includes(kind)) continue;
      const [out, inp] = linearShape(model, kind);
      table.push({ name: peftTensorName(l, kind, "A"), shape: [lora.rank, inp] });
      table.push({ name: peftTensorName(l, kind, "B"), shape: [out, lora.rank] });
    }
  }
  return table;
}

export function allocLoraWeights(model: ModelConfig, lora: LoraConfig, data?: Float32Array): LoraWeights {
  const set = layoutParams(loraSizeTable(model, lora), data);
  const layers: Partial<Record<LinearKind, LoraLinear>>[] = [];
  let i = 0;
  for (let l = 0; l < model.nLayers; l++) {
    const layer: Partial<Record<LinearKind, LoraLinear>> = {};
    for (const kind of LINEAR_KINDS) {
      if (!lora.targets.includes(kind)) continue;
      const [out, inp] = linearShape(model, kind);
      layer[kind] = { A: set.tensors[i].view, B: set.tensors[i + 1].view, inDim: inp, outDim: out };
      i += 2;
    }
    layers.push(layer);
  }
  return { ...set, layers };
}

export function createAdapter(name: string, model: ModelConfig, lora: LoraConfig, data?: Float32Array): Adapter {
  const targets = LINEAR_KINDS.filter((k) => lora.targets.includes(k)); // canonical order
  const cfg = { ...lora, targets };
  return { name, lora: cfg, scale: loraScale(cfg), weights: allocLoraWeights(model, cfg, data), grad: null };
}

/** PEFT's default initialisation: A ~ kaiming_uniform(a=√5) = U(−1/√in, 1/√in), B = 0. */
export function initAdapterWeights(adapter: Adapter, rng: Rng): void {
  for (const layer of adapter.weights.layers) {
    for (const kind of LINEAR_KINDS) {
      const lin = layer[kind];
      if (!lin) continue;
      const bound = 1 / Math.sqrt(lin.inDim);
      for (let i = 0; i < lin.A.length; i++) lin.A[i] = (2 * rng.float() - 1) * bound;
      lin.B.fill(0);
    }
  }
}

/** Makes an adapter trainable (allocates its gradient buffer, zeroed). */
export function enableAdapterGrad(adapter: Adapter, model: ModelConfig): void {
  if (!adapter.grad) adapter.grad = allocLoraWeights(model, adapter.lora);
}

export const LORA_TARGET_ALIASES: Record<string, LinearKind> = {
  q: "q",
  k: "k",
  v: "v",
  o: "o",
  gate: "gate",
  up: "up",
  down: "down",
  q_proj: "q",
  k_proj: "k",
  v_proj: "v",
  o_proj: "o",
  gate_proj: "gate",
  up_proj: "up",
  down_proj: "down",
};

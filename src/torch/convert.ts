/**
 * llama2.c models for the worker, which reads Hugging Face folders only. llama2.c rotates adjacent pairs of each
 * head's query/key features (2i, 2i+1) ("interleaved"); Hugging Face rotates (i, i + HS/2) ("half"). Permuting the
 * rows of the q and k projections so that feature 2i goes to i and 2i+1 to i + HS/2, within each head, turns one
 * into the other and leaves every attention score unchanged (transformers' convert_llama_weights_to_hf.py `permute`:
 * w.view(H, HS/2, 2, C).transpose(1, 2)). LoRA B matrices of q and k (and their optimizer moments) are output rows
 * too, so adapters cross the seam with the same permutation (to the worker) or its inverse (back).
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import type { AdapterState } from "../engine/backend.ts";
import type { ModelConfig } from "../engine/config.ts";
import { type BaseWeights, allocBase } from "../engine/params.ts";
import { saveHfModel } from "../formats/hf-checkpoint.ts";

/** order[r] = the interleaved row that becomes rotate-half row r, for H heads of HS rows each. */
export function rotateHalfOrder(H: number, HS: number): Int32Array {
  const half = HS / 2;
  const order = new Int32Array(H * HS);
  for (let h = 0; h < H; h++) {
    for (let i = 0; i < half; i++) {
      order[h * HS + i] = h * HS + 2 * i;
      order[h * HS + half + i] = h * HS + 2 * i + 1;
    }
  }
  return order;
}

/** Rows of w (rows × cols) reordered: out[r] = w[order[r]], or with `inverse`, out[order[r]] = w[r]. */
export function permuteRows(w: Float32Array, cols: number, order: Int32Array, inverse = false): Float32Array {
  const out = new Float32Array(w.length);
  for (let r = 0; r < order.length; r++) {
    const [dst, src] = inverse ? [order[r], r] : [r, order[r]];
    out.set(w.subarray(src * cols, (src + 1) * cols), dst * cols);
  }
  return out;
}

/** An interleaved-rope model as the rotate-half model that computes the same function (a copy). */
export function toRotateHalf(config: ModelConfig, weights: BaseWeights): { config: ModelConfig; weights: BaseWeights } {
  const c: ModelConfig = { ...config, ropeStyle: "half" };
  const w = allocBase(c);
  w.data.set(weights.data);
  if (config.ropeStyle === "interleaved") {
    const q = rotateHalfOrder(c.nHeads, c.headDim),
      k = rotateHalfOrder(c.nKvHeads, c.headDim);
    for (const layer of w.layers) {
      layer.linear.q.set(permuteRows(layer.linear.q, c.dim, q));
      layer.linear.k.set(permuteRows(layer.linear.k, c.dim, k));
    }
  }
  return { config: c, weights: w };
}

/** Writes the model as a Hugging Face folder in a new temp folder; returns the folder (the caller removes it). */
export function writeTempHfModel(config: ModelConfig, weights: BaseWeights): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-torch-model-"));
  const half = toRotateHalf(config, weights);
  saveHfModel(dir, half.config, half.weights);
  return dir;
}

/**
 * An adapter of an interleaved model as the rotate-half model's (direction "to") or back ("from"): the rows of the
 * q and k lora_B tensors and of their moments permuted. A copy; other tensors are shared, not copied.
 */
export function permuteAdapter(state: AdapterState, config: ModelConfig, direction: "to" | "from"): AdapterState {
  if (config.ropeStyle !== "interleaved") return state;
  const orders = { q: rotateHalfOrder(config.nHeads, config.headDim), k: rotateHalfOrder(config.nKvHeads, config.headDim) };
  const orderOf = (name: string): Int32Array | null => {
    const m = /\.self_attn\.([qk])_proj\.lora_B\.weight$/.exec(name);
    return m ? orders[m[1] as "q" | "k"] : null;
  };
  const permute = (name: string, data: Float32Array): Float32Array => {
    const order = orderOf(name);
    return order ? permuteRows(data, data.length / order.length, order, direction === "from") : data;
  };
  const tensors = state.tensors.map((t) => ({ ...t, data: permute(t.name, t.data) }));
  const optimizer = state.optimizer && {
    step: state.optimizer.step,
    moments: Object.fromEntries(
      Object.entries(state.optimizer.moments).map(([m, per]) => [
        m,
        Object.fromEntries(Object.entries(per).map(([n, d]) => [n, permute(n, d)])),
      ]),
    ),
  };
  return { lora: state.lora, tensors, optimizer };
}

/**
 * How much memory the torch worker needs per device for a run: the one place the formula lives. `colloquy inspect`
 * prints it, the torch backend logs it at start-up and sends it with `open` (`need_bytes`, worker/PROTOCOL.md), and
 * the worker refuses before it allocates anything when the device cannot hold it (worker/colloquy_worker/memory.py).
 *
 * Every term counts what the worker (worker/colloquy_worker) really allocates, in bytes, rounded up where it is not
 * exact. Letters: C width, L layers, NH query heads, KVH key/value heads, HS head size, Q = NH·HS, KV = KVH·HS,
 * F MLP width, V vocabulary, R LoRA rank, e bytes per base weight (4 float32, 2 bfloat16 / float16), N tokens of one
 * forward (its rows × the longest row ≤ the token budget; a longer row goes alone), T the longest row.
 *
 *   weights      e · (V·C·(tied ? 1 : 2) + L·(2C + 2·Q·C + 2·KV·C + 3·F·C) + C)         exact: the base tensors
 *   adapters     K · 4 · P · (1 + gradient + moments)   P = Σ_layers Σ_targets R·(in + out), float32; AdamW: 2 moments
 *   activations  the larger of
 *                - a training forward's saved activations: N · L · (per token per layer, `savedPerTokenLayer`)
 *                - sampling: the KV cache 2·L·KV·e per token of rows × (prompt + completion), half of it again for
 *                  the compacting copy, and the decode step's logits and sampling arrays (rows × V × 96 bytes)
 *   workspace    what lives only inside one step: the largest layer's temporaries (forward or backward) for N tokens,
 *                the hidden states and their gradient (4·N·C·e), the LM head's float64 chunk (≤ 2^22 logits × 64
 *                bytes), the decode step's grouped-query copy of one layer's keys and values; the rope tables;
 *                10% of everything above for allocator rounding and fragmentation; 64 MiB for library workspaces
 *                (cuBLAS) and small tensors.
 *
 * The saved-activation term was checked against the bytes autograd really keeps (torch.autograd.graph's saved-tensor
 * hooks) on PyTorch 1.13, float32 and bfloat16, MHA and GQA, all and some targets (test/torch-memory.test.ts).
 */
import type { ModelConfig } from "../engine/config.ts";
import { type LinearKind, baseParamCount, linearShape } from "../engine/params.ts";

export type TorchDtype = "float32" | "bfloat16" | "float16";

export const DTYPE_BYTES: Record<TorchDtype, number> = { float32: 4, bfloat16: 2, float16: 2 };

/** The worker's token budget of one forward unless told otherwise (open's max_tokens_per_pass; the CPU backend's). */
export const DEFAULT_TOKENS_PER_PASS = 16384;

/** What the worker will hold and run, besides the model. */
export interface RunMemoryOptions {
  dtype: TorchDtype; // the base weights' (LoRA weights, gradients and moments are float32 whatever it is)
  adapters: number; // K: adapters held at once (one per learner; 1 with sharedAdapter)
  loraRank: number; // R
  loraTargets: readonly LinearKind[];
  maxTokensPerPass: number; // the worker's token budget of one forward (open's max_tokens_per_pass)
  training: boolean; // the adapters have gradients and optimizer moments, and a training forward keeps its activations
  optimizer?: "adamw" | "sgd" | "sgd-momentum"; // moments per parameter: 2, 0, 1 (default adamw)
  rowTokens?: number; // T: the longest row (prompt + completion); default min(context, budget)
  sampleRows?: number; // rows of one sample call; default: as many rows of T tokens as the budget holds
  fusedAttention?: boolean; // scaled_dot_product_attention with a fused kernel (PyTorch ≥ 2 on CUDA): no (T, T) matrix is kept; default false
}

/** Bytes per device. `total` = weights + adapters + activations + workspace. */
export interface RunMemory {
  weights: number;
  adapters: number;
  activations: number;
  workspace: number;
  total: number;
}

const ELEMENTS_PER_HEAD_CHUNK = 2 ** 22; // worker/colloquy_worker/head.py: the float64 logits of one chunk
const HEAD_BYTES_PER_LOGIT = 64; // head_stats: log p, p, dL/dz and three float64 temporaries (+ the float32 logits)
const SAMPLE_BYTES_PER_LOGIT = 96; // sample.choose/draw: the float32 logits and up to eleven (rows, V) float64/int64 arrays
const LIBRARY_BYTES = 64 * 2 ** 20; // cuBLAS workspaces, the CUDA allocator's small blocks, masks and scalars
const FRAGMENTATION = 0.1; // the caching allocator's rounding and fragmentation, as a share of what a step allocates
const MOMENTS = { adamw: 2, sgd: 0, "sgd-momentum": 1 } as const;

/** The per-device need of a run on the torch worker. */
export function runMemory(c: ModelConfig, o: RunMemoryOptions): RunMemory {
  const e = DTYPE_BYTES[o.dtype];
  const budget = o.maxTokensPerPass;
  const T = o.rowTokens ?? Math.min(c.maxSeqLen, budget);
  const N = Math.max(budget, T); // tokens of one forward: rows × longest ≤ budget, or one longer row alone
  const C = c.dim,
    L = c.nLayers,
    V = c.vocabSize,
    NH = c.nHeads,
    Q = c.nHeads * c.headDim,
    KV = c.nKvHeads * c.headDim;
  const targets = new Set(o.loraTargets);

  // the base tensors, each loaded once on the device in the chosen dtype (checkpoint.load_weights); a tied head
  // shares the embedding
  const weights = e * baseParamCount(c);

  // float32 A (R, in) and B (out, R) per target and layer; trainable adapters add .grad and the optimizer's moments
  const loraParams = L * [...targets].reduce((s, k) => s + o.loraRank * linearShape(c, k).reduce((a, b) => a + b, 0), 0);
  const copies = o.training ? 2 + MOMENTS[o.optimizer ?? "adamw"] : 1;
  const adapters = o.adapters * 4 * loraParams * copies;

  // training: autograd keeps savedPerTokenLayer bytes per token per layer for one chunk of N tokens
  const trainSaved = o.training ? N * L * savedPerTokenLayer(c, e, targets, o.loraRank, T, o.fusedAttention ?? false) : 0;

  // sampling (sample.py): one static cache k, v (B, KVH, S, HS) per layer for every row of the call, S = the longest
  // prompt + completion; when half the rows are done, the rest are copied to a new cache while the old one is alive
  const sampleRows = Math.max(1, o.sampleRows ?? Math.floor(budget / T));
  const kvTokens = sampleRows * T;
  const kvCache = 2 * L * KV * e * kvTokens;
  const decodeRows = Math.min(sampleRows, budget); // rows decoded in one step
  const sampling = kvCache + kvCache / 2 + decodeRows * V * SAMPLE_BYTES_PER_LOGIT;

  const activations = Math.max(trainSaved, sampling);

  // one layer's temporaries for N tokens (forward without a graph, or backward), the hidden states with their gradient
  // and gathered copies (train.backward: h, h[b, t], dL/dh, dhidden), and the head's chunk of float64 logits
  const layer = N * layerTemporariesPerToken(c, e, T, o.fusedAttention ?? false);
  const hidden = N * 4 * C * e;
  const head = Math.min(N, Math.max(1, Math.floor(ELEMENTS_PER_HEAD_CHUNK / V))) * V * HEAD_BYTES_PER_LOGIT;
  // decoding: grouped-query attention expands one layer's cached keys and values to NH heads (a copy), and the
  // attention scores of every row over its keys (float32, twice) when not fused
  const decode = (NH !== c.nKvHeads ? 2 * kvTokens * Q * e : 0) + (o.fusedAttention ? 0 : kvTokens * NH * (8 + e));
  const step = Math.max(Math.max(layer, head) + hidden, decode); // the head runs between the forward and the backward
  // rope cos and sin (P, HS/2) in the base dtype, grown to twice the longest position past the context
  const rope = (T > c.maxSeqLen ? 2 * T : c.maxSeqLen) * c.headDim * e;
  // an optimizer step's float64 temporaries (optim.py: gradient, moments and update of the largest LoRA tensor)
  const largestLora = Math.max(0, ...[...targets].map((k) => o.loraRank * Math.max(...linearShape(c, k))));
  const update = o.training ? 4 * 8 * largestLora : 0;
  const workspace = Math.ceil(step + rope + update + FRAGMENTATION * (activations + step) + LIBRARY_BYTES);

  return { weights, adapters, activations, workspace, total: weights + adapters + activations + workspace };
}

/**
 * What autograd keeps per token per layer in a training forward (model.py, lora.py), e the base dtype's bytes, T the
 * longest row. Layer 0 keeps less (nothing before its first LoRA branch needs a gradient) by about what the final
 * norm keeps, so L times this covers the whole model.
 */
export function savedPerTokenLayer(
  c: ModelConfig,
  e: number,
  targets: ReadonlySet<LinearKind>,
  R: number,
  T: number,
  fused: boolean,
): number {
  const C = c.dim,
    F = c.hiddenDim,
    NH = c.nHeads,
    Q = c.nHeads * c.headDim;
  const copies = e !== 4; // .float() copies (else it returns the tensor itself)
  const has = (k: LinearKind) => (targets.has(k) ? 1 : 0);
  // RMSNorm, twice: x.float(), its square (kept by mean in PyTorch 1.13) and 1/rms
  const norms = 2 * (2 * 4 * C + 4);
  // LoRA: each branch keeps its float32 input x.float() and u = x A^T (R); in float32 the branches of one input
  // share it, otherwise each makes its own copy
  const sharedInput = (n: number) => 4 * C * (copies ? n : Math.min(n, 1));
  const loraInputs =
    sharedInput(has("q") + has("k") + has("v")) + sharedInput(has("gate") + has("up")) + 4 * Q * has("o") + 4 * F * has("down");
  const loraU = 4 * R * targets.size;
  // attention: q and k after rope and v, expanded to NH heads under grouped-query attention (kept by q kᵀ and p v)
  const qkv = 3 * Q * e;
  // the attention: fused keeps its output (Q) and log-sum-exp (NH, float32); the plain path keeps the softmax
  // (NH, T) in float32, its copy in the base dtype and the causal mask (T bytes)
  const attention = fused ? Q * e + 4 * NH : T * (NH * (4 + (copies ? e : 0)) + 1);
  // SwiGLU: silu's input, and both factors of the product
  const mlp = 3 * F * e;
  return norms + loraInputs + loraU + qkv + attention + mlp;
}

/**
 * The largest temporaries of one layer per token, forward or backward, that are not kept: the MLP's (F) outputs in
 * the base dtype and their float32 LoRA sums and gradients, or the plain attention's scores (NH, T) in float32 twice
 * and the base dtype, with the causal mask and its negation; plus the (C) and (Q) tensors around them.
 */
function layerTemporariesPerToken(c: ModelConfig, e: number, T: number, fused: boolean): number {
  const C = c.dim,
    Q = c.nHeads * c.headDim;
  const mlp = c.hiddenDim * (3 * e + 12);
  const attention = (fused ? 0 : T * (c.nHeads * (8 + e) + 2)) + 4 * Q * e;
  return Math.max(mlp, attention) + C * (12 + 3 * e);
}

/** What a run puts on the worker besides the model: its adapters and whether they train (and, when known, its rows). */
export type RunPlan = Pick<
  RunMemoryOptions,
  "adapters" | "loraRank" | "loraTargets" | "training" | "optimizer" | "rowTokens" | "sampleRows"
>;

/** The base model alone, for a verb that says nothing about adapters. */
export const BASE_ONLY: RunPlan = { adapters: 0, loraRank: 1, loraTargets: [], training: false };

/** The need of `plan` on a worker as it will open: the dtype and device chosen, its PyTorch (hello's), the budget. */
export function workerNeed(
  c: ModelConfig,
  plan: RunPlan,
  at: { dtype: TorchDtype; device: string; torch: string; maxTokensPerPass: number },
): RunMemory {
  return runMemory(c, {
    ...plan,
    dtype: at.dtype,
    maxTokensPerPass: at.maxTokensPerPass,
    fusedAttention: fusedAttention(at.torch, at.device),
  });
}

/** Whether the worker's attention is a fused kernel: PyTorch ≥ 2 (scaled_dot_product_attention) on CUDA. */
export function fusedAttention(torchVersion: string, device: string): boolean {
  const major = Number.parseInt(torchVersion, 10);
  return device.startsWith("cuda") && Number.isFinite(major) && major >= 2;
}

/** The open request's fields: `need_bytes` and the parts the worker names when it refuses. */
export function needFields(m: RunMemory): { need_bytes: number; need_parts: Record<string, number> } {
  return {
    need_bytes: m.total,
    need_parts: { weights: m.weights, adapters: m.adapters, activations: m.activations, workspace: m.workspace },
  };
}

/** 1.4 GiB, 12.0 MiB, 3.5 KiB, 512 B (binary units, one decimal), as the worker writes them. */
export function formatBytes(n: number): string {
  for (const [unit, size] of [
    ["GiB", 2 ** 30],
    ["MiB", 2 ** 20],
    ["KiB", 2 ** 10],
  ] as const) {
    if (n >= size) return `${(n / size).toFixed(1)} ${unit}`;
  }
  return `${n} B`;
}

/** "1.4 GiB (weights 2.3 MiB, adapters 3.6 MiB, activations 1.2 GiB, workspace 180.0 MiB)". */
export function describeMemory(m: RunMemory): string {
  return (
    `${formatBytes(m.total)} (weights ${formatBytes(m.weights)}, adapters ${formatBytes(m.adapters)}, ` +
    `activations ${formatBytes(m.activations)}, workspace ${formatBytes(m.workspace)})`
  );
}

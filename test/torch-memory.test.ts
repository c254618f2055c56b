/**
 * The torch worker's memory estimate (src/torch/memory.ts): hand-computed numbers for the tiny GQA fixture, the
 * weights term equal to the bytes of the tensors the worker loads, the saved-activation term against the bytes
 * autograd really keeps (saved-tensor hooks), and the whole estimate above the worker's measured peak over one
 * training step and one sample call (worker/tests/measure_memory.py: resident memory on the CPU, the allocator's
 * peak on $COLLOQUY_TEST_DEVICE=cuda, where the estimate assumes PyTorch 2's fused attention).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import type { ModelConfig } from "../src/engine/config.ts";
import { LINEAR_KINDS, type LinearKind, baseParamCount } from "../src/engine/params.ts";
import { loadModel } from "../src/formats/load-model.ts";
import {
  BASE_ONLY,
  type RunMemoryOptions,
  type TorchDtype,
  describeMemory,
  formatBytes,
  fusedAttention,
  needFields,
  runMemory,
  savedPerTokenLayer,
  workerNeed,
} from "../src/torch/memory.ts";
import { NO_TORCH, PYTHON, ROOT, TORCH_DEVICE, shared } from "./support.ts";
import { tinyGqaConfig } from "./tiny.ts";

const TINY = shared("fixtures/hf-llama/tiny-llama-gqa");
/** Whether the worker's PyTorch has scaled_dot_product_attention (2.x). */
const SDPA =
  !NO_TORCH && spawnSync(PYTHON, ["-c", "import torch.nn.functional as F; assert hasattr(F, 'scaled_dot_product_attention')"]).status === 0;
const ALL = [...LINEAR_KINDS];
/** The estimate's attention on the device the worker runs on (src/torch/memory.ts fusedAttention): fused on CUDA with PyTorch 2. */
const FUSED = SDPA && TORCH_DEVICE.startsWith("cuda");

const TINY_CONFIG = tinyGqaConfig();

test("the estimate of a small config, by hand", () => {
  const c = TINY_CONFIG;
  const m = runMemory(c, { dtype: "float32", adapters: 3, loraRank: 8, loraTargets: ALL, maxTokensPerPass: 1024, training: true });
  // per layer: 2 norms 128 + q 64·64 + k, v 32·64 each + o 64·64 + gate, up, down 176·64 each = 46,208; embedding
  // and head 320·64 each; final norm 64
  assert.equal(baseParamCount(c), 2 * 46208 + 2 * 320 * 64 + 64);
  assert.equal(m.weights, 4 * 133440);
  // LoRA r8 per layer: q 8·(64+64), k, v 8·(64+32), o 8·(64+64), gate, up, down 8·(64+176): 9,344; float32 weights,
  // gradients and AdamW's two moments; 3 adapters
  assert.equal(m.adapters, 3 * 4 * 4 * 2 * 9344);
  // saved per token per layer at T = 128: norms 2·(8·64 + 4) + LoRA inputs 4·64 (q,k,v) + 4·64 (gate, up) + 4·64 (o)
  // + 4·176 (down) + u 7·4·8 + q,k,v 3·64·4 + softmax and mask 128·(4·4 + 1) + SwiGLU 3·176·4 = 7,784
  assert.equal(savedPerTokenLayer(c, 4, new Set(ALL), 8, 128, false), 7784);
  assert.equal(m.activations, 1024 * 2 * 7784); // above sampling: 8 rows × 128 tokens of KV cache
  // fused attention keeps its output and log-sum-exp instead of the (T, T) softmax: 7,784 − 2,176 + 64·4 + 4·4
  assert.equal(savedPerTokenLayer(c, 4, new Set(ALL), 8, 128, true), 7784 - 2176 + 256 + 16);
  // bfloat16: the norms' and LoRA branches' float32 copies are separate tensors (q, k, v: 3; gate, up: 2), the
  // softmax has a bfloat16 copy: 1,032 + 4·64·5 + 4·64 + 4·176 + 224 + 3·64·2 + 128·(4·6 + 1) + 3·176·2
  assert.equal(savedPerTokenLayer(c, 2, new Set(ALL), 8, 128, false), 1032 + 1280 + 256 + 704 + 224 + 384 + 3200 + 1056);
  // workspace: the LM head's chunk (1024 positions × 320 × 64 bytes) and the hidden states (4·1024·64·4) beat one
  // layer's temporaries (1024·(128·(4·12 + 2) + 4·64·4 + 64·24)); rope 128·16·4; AdamW's float64 temporaries
  // 32·8·176; 10% of activations and step; 64 MiB
  const step = 1024 * 320 * 64 + 4 * 1024 * 64 * 4;
  assert.equal(m.workspace, Math.ceil(step + 128 * 16 * 4 + 32 * 8 * 176 + 0.1 * (m.activations + step) + 64 * 2 ** 20));
  assert.equal(m.total, m.weights + m.adapters + m.activations + m.workspace);

  // inference: the adapters' weights alone; the activations are sampling's KV cache (8 rows × 128 tokens), half of
  // it again for compaction, and the decode step's arrays (8 rows × 320 × 96)
  const s = runMemory(c, { dtype: "bfloat16", adapters: 1, loraRank: 8, loraTargets: ["q", "v"], maxTokensPerPass: 1024, training: false });
  assert.equal(s.adapters, 4 * 2 * (1024 + 768));
  assert.equal(s.activations, 1.5 * (2 * 2 * 32 * 2 * 1024) + 8 * 320 * 96);
});

test("a LLaMA-3-8B shape in bfloat16 with fused attention: 16384 tokens per pass do not fit an 80 GB card, 4096 do", () => {
  const c: ModelConfig = {
    ...TINY_CONFIG,
    dim: 4096,
    nLayers: 32,
    nHeads: 32,
    nKvHeads: 8,
    headDim: 128,
    hiddenDim: 14336,
    vocabSize: 128256,
    maxSeqLen: 8192,
  };
  const need = (maxTokensPerPass: number) =>
    runMemory(c, { dtype: "bfloat16", adapters: 3, loraRank: 8, loraTargets: ALL, maxTokensPerPass, training: true, fusedAttention: true });
  for (const b of [16384, 4096]) console.log(`  LLaMA-3-8B shape, ${b} tokens per pass: ${describeMemory(need(b))}`);
  assert.equal(need(4096).weights, 2 * 8030261248); // its 8.03 billion parameters
  assert.ok(need(16384).total > 80e9);
  assert.ok(need(4096).total < 75e9); // an H100's 80 GB less the CUDA context's
});

/** The two chat presets' models (their config.json values: SmolLM2-135M-Instruct, Llama-3.2-1B-Instruct). */
const PRESET_MODELS: [string, ModelConfig, number][] = [
  [
    "smollm2-135m-chat",
    {
      ...TINY_CONFIG,
      dim: 576,
      nLayers: 30,
      nHeads: 9,
      nKvHeads: 3,
      headDim: 64,
      hiddenDim: 1536,
      vocabSize: 49152,
      maxSeqLen: 8192,
      tiedEmbeddings: true,
      ropeTheta: 100000,
    },
    134_515_008,
  ],
  [
    "llama3.2-1b-chat",
    {
      ...TINY_CONFIG,
      dim: 2048,
      nLayers: 16,
      nHeads: 32,
      nKvHeads: 8,
      headDim: 64,
      hiddenDim: 8192,
      vocabSize: 128256,
      maxSeqLen: 131072,
      tiedEmbeddings: true,
      ropeTheta: 500000,
      ropeScaling: { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 },
    },
    1_235_814_400,
  ],
];

test("the chat presets' memory, as their descriptions quote it (inspect --dtype bfloat16 --agents 3 --lora-rank 16 --max-tokens-per-pass 8192)", () => {
  for (const [preset, c, params] of PRESET_MODELS) {
    assert.equal(baseParamCount(c), params, preset);
    const m = runMemory(c, {
      dtype: "bfloat16",
      adapters: 3,
      loraRank: 16,
      loraTargets: ALL,
      maxTokensPerPass: 8192,
      training: true,
      fusedAttention: true,
    });
    const description = JSON.parse(fs.readFileSync(path.join(ROOT, "configs", `${preset}.json`), "utf8")).description as string;
    console.log(`  ${preset}: ${describeMemory(m)}`);
    assert.ok(description.includes(`${formatBytes(m.total)} (weights ${formatBytes(m.weights)}`), `${preset}: ${describeMemory(m)}`);
  }
});

test("formatting, the open request's fields, the attention the worker will run", () => {
  assert.deepEqual([512, 1536, 12.5 * 2 ** 20, 3 * 2 ** 30, 57.25 * 2 ** 30].map(formatBytes), [
    "512 B",
    "1.5 KiB",
    "12.5 MiB",
    "3.0 GiB",
    "57.3 GiB",
  ]);
  const m = { weights: 2 ** 30, adapters: 2 ** 20, activations: 2 ** 31, workspace: 2 ** 29, total: 2 ** 30 + 2 ** 20 + 2 ** 31 + 2 ** 29 };
  assert.equal(describeMemory(m), "3.5 GiB (weights 1.0 GiB, adapters 1.0 MiB, activations 2.0 GiB, workspace 512.0 MiB)");
  assert.deepEqual(needFields(m), {
    need_bytes: m.total,
    need_parts: { weights: 2 ** 30, adapters: 2 ** 20, activations: 2 ** 31, workspace: 2 ** 29 },
  });
  assert.equal(fusedAttention("2.11.0+cu128", "cuda:1"), true);
  assert.equal(fusedAttention("2.5.1", "cpu"), false);
  assert.equal(fusedAttention("1.13.0a0", "cuda"), false);
  const at = { dtype: "bfloat16" as const, device: "cuda:0", torch: "2.11.0", maxTokensPerPass: 1024 };
  const plan = { adapters: 3, loraRank: 8, loraTargets: ALL, training: true };
  assert.deepEqual(workerNeed(TINY_CONFIG, plan, at), runMemory(TINY_CONFIG, { ...plan, ...at, fusedAttention: true }));
  assert.equal(workerNeed(TINY_CONFIG, BASE_ONLY, at).adapters, 0);
});

/** worker/tests/measure_memory.py over a list of specs, in one process (each start imports torch: seconds). */
function measure(specs: object[]): Record<string, number>[] {
  const r = spawnSync(PYTHON, [path.join(ROOT, "worker/tests/measure_memory.py"), JSON.stringify(specs)], {
    encoding: "utf8",
    timeout: 300_000,
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

// a small GQA model (NH 8, KVH 2) whose activations dwarf the worker's own memory
const RANDOM = { dim: 128, layers: 2, heads: 8, kv_heads: 2, hidden: 352, vocab: 512, context: 256 };
const RANDOM_CONFIG: ModelConfig = {
  ...TINY_CONFIG,
  dim: 128,
  nLayers: 2,
  nHeads: 8,
  nKvHeads: 2,
  headDim: 16,
  hiddenDim: 352,
  vocabSize: 512,
  maxSeqLen: 256,
};
const BUDGET = 2048;

const WEIGHT_DTYPES: TorchDtype[] = ["float32", "bfloat16"];
const SAVED_CASES: { dtype: TorchDtype; targets: LinearKind[]; kvHeads: number }[] = [
  { dtype: "float32", targets: ALL, kvHeads: 2 },
  { dtype: "bfloat16", targets: ALL, kvHeads: 2 },
  { dtype: "bfloat16", targets: ALL, kvHeads: 8 }, // MHA: k and v are kept as they are, not expanded copies
  { dtype: "float32", targets: ["q", "v"], kvHeads: 2 },
  { dtype: "bfloat16", targets: ["up", "down"], kvHeads: 8 },
];

/** The weights of tiny-llama-gqa in WEIGHT_DTYPES, then the bytes autograd keeps for SAVED_CASES: one process. */
let exact: Record<string, number>[] | null = null;
function measured(): Record<string, number>[] {
  exact ??= measure([
    ...WEIGHT_DTYPES.map((dtype) => ({ model: TINY.path, dtype, budget: 1024, phase: "weights" })),
    ...SAVED_CASES.map((k) => ({
      random: { ...RANDOM, kv_heads: k.kvHeads },
      dtype: k.dtype,
      targets: k.targets,
      budget: BUDGET,
      adapters: 2,
      rank: 8,
      phase: "saved",
      rows: 8,
      tokens: 256,
    })),
  ]);
  return exact;
}

function estimate(dtype: TorchDtype, targets: LinearKind[], o: Partial<RunMemoryOptions> = {}, kvHeads = 2) {
  return runMemory(
    { ...RANDOM_CONFIG, nKvHeads: kvHeads },
    {
      dtype,
      adapters: 2,
      loraRank: 8,
      loraTargets: targets,
      maxTokensPerPass: BUDGET,
      training: true,
      rowTokens: 256,
      fusedAttention: FUSED,
      ...o,
    },
  );
}

test("the weights term is the bytes of the tensors the worker loads", { skip: NO_TORCH || TINY.skip }, () => {
  const c = loadModel(TINY.path).config;
  WEIGHT_DTYPES.forEach((dtype, k) => {
    const want = runMemory(c, { dtype, adapters: 0, loraRank: 8, loraTargets: ALL, maxTokensPerPass: 1024, training: false }).weights;
    assert.equal(measured()[k].weights, want, dtype);
  });
});

test("saved activations: the estimate against what autograd keeps", { skip: NO_TORCH || TINY.skip }, () => {
  SAVED_CASES.forEach((k, i) => {
    const want = estimate(k.dtype, k.targets, {}, k.kvHeads).activations;
    const kept = measured()[WEIGHT_DTYPES.length + i].saved;
    console.log(
      `  saved ${k.dtype} ${k.targets.join(",")} KVH ${k.kvHeads}: measured ${formatBytes(kept)}, estimated ${formatBytes(want)}`,
    );
    assert.ok(want >= kept, `${k.dtype} ${k.targets}: the estimate ${want} is below the ${kept} bytes kept`);
    // with every linear adapted, only layer 0 (nothing before its first branch needs a gradient) keeps less. On
    // PyTorch 2 even the CPU may run a fused attention kernel that keeps no (T, T) matrix, which the estimate assumes
    // only on CUDA (a CPU mask can force the unfused kernel): there the estimate is only an upper bound.
    if (k.targets.length === ALL.length && !SDPA) assert.ok(want <= 1.05 * kept, `${k.dtype}: the estimate ${want} is far above ${kept}`);
  });
});

test("the estimate is above the worker's measured peak: one training step, one sample call", { skip: NO_TORCH }, () => {
  const base = { random: RANDOM, dtype: "float32", budget: BUDGET, adapters: 2, rank: 8, targets: ALL };
  const [train] = measure([{ ...base, phase: "train", rows: 8, tokens: 256 }]);
  const [sample] = measure([{ ...base, phase: "sample", rows: 8, prompt: 224, max_tokens: 32 }]);
  const training = estimate("float32", ALL);
  const sampling = estimate("float32", ALL, { training: false, sampleRows: 8 });
  const report = (what: string, measured: number, m: typeof training) =>
    console.log(
      `  ${what}: measured peak growth ${formatBytes(measured)}, estimated activations + workspace ${formatBytes(m.activations + m.workspace)}`,
    );
  report("training step", train.train_peak, training);
  report("sample call", sample.sample_peak, sampling);
  assert.ok(train.train_peak > 0.5 * training.activations, "the measured training peak holds the saved activations");
  assert.ok(train.train_peak <= training.activations + training.workspace);
  assert.ok(sample.sample_peak <= sampling.activations + sampling.workspace);
});

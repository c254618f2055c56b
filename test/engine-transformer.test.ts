/**
 * Forward parity with PyTorch: the Hugging Face transformers + PEFT fixture in ../shared, and the PyTorch references
 * of test/fixtures/torch (tied embeddings, multi-head attention, rope bases and llama3 scaling, F16/BF16 weights,
 * llama2.c's adjacent-pair rotary embedding), all through the same code path.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TORCH_CASES, TORCH_FIXTURES, assertClose, shared, tmpDir, tokenLogprobs } from "./support.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { loadPeftAdapter } from "../src/formats/peft.ts";
import { SafetensorsFile, encodeSafetensors } from "../src/formats/safetensors.ts";
import { type RowInput, packRows } from "../src/engine/batch.ts";
import { generate } from "../src/engine/generate.ts";
import { headLogits } from "../src/engine/head.ts";
import { KVCache } from "../src/engine/kv-cache.ts";
import { scoreRows } from "../src/engine/score.ts";
import { f32 } from "../src/engine/tensor.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { kernelVariants } from "../src/engine/kernels/select.ts";
import type { Kernels } from "../src/engine/kernels/index.ts";
import { Rng } from "../src/util/rng.ts";

const HF = shared("fixtures/hf-llama/tiny-llama-gqa");

function allLogits(m: Transformer, rows: readonly RowInput[]): Float32Array {
  const packed = packRows(rows, m.config.vocabSize);
  const { hidden } = m.forward(packed, false);
  const out = f32(packed.N * m.config.vocabSize);
  headLogits(m, out, hidden, packed.N);
  return out;
}

for (const K of kernelVariants()) {
  test(`[${K.name}] tiny-llama-gqa: per-token log-probs within 1e-4 of transformers, with and without the adapter`, {
    skip: HF.skip || K.skip,
  }, (t) => {
    const lm = loadModel(HF.path);
    const m = new Transformer(lm.config, lm.weights, K.kernels);
    const adapter = loadPeftAdapter(path.join(HF.path, "adapter"), lm.config);
    const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
    const ids = ref.readInt("input_ids");
    const V = lm.config.vocabSize,
      T = 24;
    for (const [key, ad] of [
      ["logits", null],
      ["logits_lora", adapter],
    ] as const) {
      const logits = ref.readF32(key);
      const got = scoreRows(
        m,
        [0, 1].map((r) => ({ tokens: ids.subarray(r * T, (r + 1) * T), adapter: ad })),
      );
      for (const r of [0, 1]) {
        const want = tokenLogprobs(logits.subarray(r * T * V, (r + 1) * T * V), ids.subarray(r * T, (r + 1) * T), V);
        const diff = assertClose(`${key} row ${r} log-probs`, got[r].logprobs.subarray(1), want.subarray(1), 1e-4);
        t.diagnostic(`${key} row ${r}: largest |log-prob − transformers| ${diff.toExponential(1)} nats`);
      }
    }
  });

  test(`[${K.name}] tiny-llama-gqa: greedy 16 tokens equal greedy_base and greedy_lora, in one mixed batch`, {
    skip: HF.skip || K.skip,
  }, () => {
    const lm = loadModel(HF.path);
    const m = new Transformer(lm.config, lm.weights, K.kernels);
    const adapter = loadPeftAdapter(path.join(HF.path, "adapter"), lm.config);
    const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
    const base = Array.from(ref.readInt("greedy_base"));
    const lora = Array.from(ref.readInt("greedy_lora"));
    const prompt = base.slice(0, 6);
    const out = generate(
      m,
      [
        { prompt, maxTokens: 16, sampling: { temperature: 0 }, ignoreEos: true },
        { prompt, adapter, maxTokens: 16, sampling: { temperature: 0 }, ignoreEos: true },
      ],
      { rng: new Rng(0) },
    );
    assert.deepEqual([...prompt, ...out[0].ids], base);
    assert.deepEqual([...prompt, ...out[1].ids], lora);
  });
}

test("sharded checkpoint (model.safetensors.index.json) loads the same weights", { skip: HF.skip }, () => {
  const dir = tmpDir();
  const src = SafetensorsFile.open(path.join(HF.path, "model.safetensors"));
  const names = [...src.tensors.keys()];
  const shards = [names.filter((_, i) => i % 2 === 0), names.filter((_, i) => i % 2 === 1)];
  const weightMap: Record<string, string> = {};
  shards.forEach((list, s) => {
    const file = `model-0000${s + 1}-of-00002.safetensors`;
    const tensors = Object.fromEntries(list.map((n) => [n, { dtype: "F32" as const, shape: src.info(n).shape, data: src.readF32(n) }]));
    fs.writeFileSync(path.join(dir, file), encodeSafetensors(tensors));
    for (const n of list) weightMap[n] = file;
  });
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));
  fs.copyFileSync(path.join(HF.path, "config.json"), path.join(dir, "config.json"));
  const a = loadModel(HF.path),
    b = loadModel(dir);
  assert.deepEqual(b.config, a.config);
  assert.deepEqual(Array.from(b.weights.data), Array.from(a.weights.data));
});

function torchCase(name: string, kernels: Kernels) {
  const dir = path.join(TORCH_FIXTURES, name);
  const lm = loadModel(fs.existsSync(path.join(dir, "model.bin")) ? path.join(dir, "model.bin") : dir);
  const m = new Transformer(lm.config, lm.weights, kernels);
  const adapter = loadPeftAdapter(path.join(dir, "adapter"), lm.config);
  const ref = SafetensorsFile.open(path.join(dir, "reference.safetensors"));
  const rows = [0, 1].map((i) => Array.from(ref.readInt(`input_ids_${i}`)));
  return { lm, m, adapter, ref, rows };
}

for (const K of kernelVariants())
  for (const name of TORCH_CASES) {
    test(`[${K.name}] ${name}: logits within 1e-4 of PyTorch for a packed batch of two lengths, base / adapter / mixed`, {
      skip: K.skip,
    }, () => {
      const { lm, m, adapter, ref, rows } = torchCase(name, K.kernels);
      const V = lm.config.vocabSize;
      const want = (key: string) => rows.map((_, i) => ref.readF32(`${key}_${i}`));
      const check = (label: string, got: Float32Array, wants: Float32Array[]) => {
        let off = 0;
        wants.forEach((w, i) => {
          assertClose(`${name} ${label} row ${i}`, got.subarray(off, off + w.length), w, 1e-4, 1e-5);
          off += w.length;
        });
        assert.equal(off, got.length);
      };
      check(
        "base",
        allLogits(
          m,
          rows.map((tokens) => ({ tokens })),
        ),
        want("logits"),
      );
      check(
        "lora",
        allLogits(
          m,
          rows.map((tokens) => ({ tokens, adapter })),
        ),
        want("logits_lora"),
      );
      check("mixed", allLogits(m, [{ tokens: rows[0], adapter }, { tokens: rows[1] }]), [want("logits_lora")[0], want("logits")[1]]);
      assert.equal(V, want("logits")[0].length / rows[0].length);
    });
  }

for (const K of kernelVariants()) {
  test(`[${K.name}] KV cache: feeding tokens one at a time gives the logits of a full forward`, { skip: K.skip }, () => {
    const { m, adapter, rows } = torchCase("llama3-gqa-bf16", K.kernels);
    const V = m.config.vocabSize;
    const full = allLogits(m, [{ tokens: rows[1], adapter }]);
    const cache = new KVCache(m.config, rows[1].length);
    // a 5-token prefill, then single tokens
    const chunks = [rows[1].slice(0, 5), ...rows[1].slice(5).map((t) => [t])];
    let pos = 0;
    for (const chunk of chunks) {
      const got = allLogits(m, [{ tokens: chunk, adapter, cache }]);
      assertClose(`positions ${pos}..${pos + chunk.length - 1}`, got, full.subarray(pos * V, (pos + chunk.length) * V), 2e-5, 1e-5);
      pos += chunk.length;
    }
    assert.equal(cache.length, rows[1].length);
  });
}

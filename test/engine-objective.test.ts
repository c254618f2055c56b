/**
 * Exact gradients: the weighted objective's gradients against PyTorch autograd (transformers + PEFT fixture in
 * ../shared, and test/fixtures/torch for other shapes, LoRA and full-parameter), and against central finite
 * differences for every kind of parameter, with entropy weights and arbitrary (negative) token weights.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { TORCH_CASES, TORCH_FIXTURES, assertClose, maxAbs, shared } from "./support.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { loadPeftAdapter } from "../src/formats/peft.ts";
import { SafetensorsFile } from "../src/formats/safetensors.ts";
import { Rng } from "../src/util/rng.ts";
import type { ModelConfig } from "../src/engine/config.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { type Adapter, createAdapter, enableAdapterGrad } from "../src/engine/lora.ts";
import { type ObjectiveRow, objective } from "../src/engine/objective.ts";
import { scoreRows } from "../src/engine/score.ts";
import { Transformer } from "../src/engine/transformer.ts";
import type { Kernels } from "../src/engine/kernels/index.ts";
import { kernelVariants } from "../src/engine/kernels/select.ts";

/** Cross-entropy rows: w = 1 on every token after the first; normaliser = number of targets (transformers' loss). */
function ceRows(rows: number[][], adapter: Adapter | null): { rows: ObjectiveRow[]; n: number } {
  return {
    rows: rows.map((tokens) => ({ tokens, adapter, weights: tokens.map((_, i) => (i > 0 ? 1 : 0)) })),
    n: rows.reduce((s, r) => s + r.length - 1, 0),
  };
}

/** Within 1e-4 of the largest element of the reference tensor (the criterion). */
function assertGrad(label: string, got: Float32Array, want: Float32Array): number {
  return assertClose(label, got, want, 1e-4 * maxAbs(want)) / maxAbs(want);
}

const HF = shared("fixtures/hf-llama/tiny-llama-gqa");

for (const K of kernelVariants()) {
  test(`[${K.name}] tiny-llama-gqa: loss_lora and every LoRA gradient match transformers + PEFT`, { skip: HF.skip || K.skip }, (tc) => {
    const lm = loadModel(HF.path);
    const m = new Transformer(lm.config, lm.weights, K.kernels);
    const adapter = loadPeftAdapter(path.join(HF.path, "adapter"), lm.config);
    enableAdapterGrad(adapter, lm.config);
    const ref = SafetensorsFile.open(path.join(HF.path, "reference.safetensors"));
    const ids = ref.readInt("input_ids");
    const { rows, n } = ceRows([Array.from(ids.subarray(0, 24)), Array.from(ids.subarray(24))], adapter);
    const r = objective(m, rows, n);
    assert.ok(Math.abs(r.loss - ref.readF32("loss_lora")[0]) < 1e-5, `loss ${r.loss}`);
    const worst = Math.max(
      ...adapter.grad!.tensors.map((t) =>
        assertGrad(t.name, t.view, ref.readF32(`grad.${t.name.replace(/\.weight$/, ".default.weight")}`)),
      ),
    );
    tc.diagnostic(
      `worst LoRA gradient error ${worst.toExponential(1)} of the tensor's largest element (${adapter.grad!.tensors.length} tensors)`,
    );
  });
}

for (const K of kernelVariants())
  for (const name of TORCH_CASES) {
    test(`[${K.name}] ${name}: LoRA and full-parameter gradients match PyTorch autograd`, { skip: K.skip }, () => {
      const dir = path.join(TORCH_FIXTURES, name);
      const lm = loadModel(fs.existsSync(path.join(dir, "model.bin")) ? path.join(dir, "model.bin") : dir);
      const m = new Transformer(lm.config, lm.weights, K.kernels);
      const adapter = loadPeftAdapter(path.join(dir, "adapter"), lm.config);
      enableAdapterGrad(adapter, lm.config);
      const ref = SafetensorsFile.open(path.join(dir, "reference.safetensors"));
      const tokens = [0, 1].map((i) => Array.from(ref.readInt(`input_ids_${i}`)));

      const lora = ceRows(tokens, adapter);
      const r1 = objective(m, lora.rows, lora.n);
      assert.ok(Math.abs(r1.loss - ref.readF32("loss_lora")[0]) < 1e-4, `loss_lora ${r1.loss}`);
      for (const t of adapter.grad!.tensors) assertGrad(`${name} ${t.name}`, t.view, ref.readF32(`grad.${t.name}`));

      m.enableGrad();
      const base = ceRows(tokens, null);
      const r2 = objective(m, base.rows, base.n);
      assert.ok(Math.abs(r2.loss - ref.readF32("loss_base")[0]) < 1e-4, `loss_base ${r2.loss}`);
      for (const t of m.grad!.tensors) assertGrad(`${name} ${t.name}`, t.view, ref.readF32(`base_grad.${t.name}`));
    });
  }

/** A small random model in which every code path (GQA or not, tied or not, both rope styles) can be probed. */
function randomModel(over: Partial<ModelConfig>, seed: number, kernels: Kernels): Transformer {
  const c: ModelConfig = {
    dim: 16,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    hiddenDim: 24,
    vocabSize: 29,
    maxSeqLen: 32,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: false,
    bosId: 1,
    eosIds: [2],
    ...over,
  };
  const m = new Transformer(c, undefined, kernels);
  const rng = new Rng(seed);
  initBaseWeights(m.weights, c, rng, 0.5);
  for (const l of m.weights.layers)
    for (const norm of [l.attnNorm, l.mlpNorm]) for (let i = 0; i < norm.length; i++) norm[i] = 1 + 0.2 * rng.normal();
  return m;
}

for (const K of kernelVariants())
  for (const [label, over, temperatures] of [
    ["untied GQA rotate-half", {}, [1, 1]],
    ["tied MHA interleaved", { tiedEmbeddings: true, nKvHeads: 4, ropeStyle: "interleaved" as const }, [1, 1]],
    ["untied GQA rotate-half, rows at temperatures 0.6 and 1.7", {}, [0.6, 1.7]],
  ] as const) {
    test(`[${K.name}] finite differences: every parameter kind, LoRA A/B, entropy bonus and signed weights (${label})`, {
      skip: K.skip,
    }, () => {
      const m = randomModel(over, 3, K.kernels);
      m.enableGrad();
      const rng = new Rng(9);
      const adapter = createAdapter("a", m.config, {
        rank: 3,
        alpha: 5,
        rslora: false,
        targets: ["q", "k", "v", "o", "gate", "up", "down"],
      });
      for (const t of adapter.weights.tensors) for (let i = 0; i < t.view.length; i++) t.view[i] = 0.3 * rng.normal();
      enableAdapterGrad(adapter, m.config);
      const rows: ObjectiveRow[] = [7, 4].map((T, r) => {
        const tokens = Array.from({ length: T }, () => rng.int(m.config.vocabSize));
        return {
          tokens,
          adapter: r === 0 ? adapter : null,
          weights: tokens.map((_, i) => (i === 0 ? 0 : rng.normal())),
          entropyWeights: tokens.map(() => 0.5 * rng.normal()),
          temperature: temperatures[r],
        };
      });
      const lossAt = () => {
        const saved = [m.grad!.data.slice(), adapter.grad!.data.slice()];
        const l = objective(m, rows, 3).loss;
        m.grad!.data.set(saved[0]);
        adapter.grad!.data.set(saved[1]);
        return l;
      };
      objective(m, rows, 3);
      // Directional derivative along a random unit direction per tensor: float32 activations put ~1e-7 relative noise
      // on the loss, so with h = 1e-2 the central difference is good to ~1e-4 of the gradient's size (plus O(h²)).
      const tensors = [
        ...m.weights.tensors.map((t, i) => ({ name: t.name, view: t.view, grad: m.grad!.tensors[i].view })),
        ...adapter.weights.tensors.map((t, i) => ({ name: t.name, view: t.view, grad: adapter.grad!.tensors[i].view })),
      ];
      for (const t of tensors) {
        const dir = Float64Array.from(t.view, () => rng.normal());
        const norm = Math.hypot(...dir);
        for (let i = 0; i < dir.length; i++) dir[i] /= norm;
        const h = 1e-2;
        const orig = t.view.slice();
        for (let i = 0; i < dir.length; i++) t.view[i] = orig[i] + h * dir[i];
        const lp = lossAt();
        for (let i = 0; i < dir.length; i++) t.view[i] = orig[i] - h * dir[i];
        const lm = lossAt();
        t.view.set(orig);
        const numeric = (lp - lm) / (2 * h);
        let analytic = 0;
        for (let i = 0; i < dir.length; i++) analytic += t.grad[i] * dir[i];
        const scale = Math.max(1e-3, Math.sqrt(t.grad.reduce((s, g) => s + g * g, 0)));
        assert.ok(
          Math.abs(numeric - analytic) <= 2e-3 * scale,
          `${label} ${t.name}: analytic ${analytic}, numeric ${numeric} (|grad| ${scale})`,
        );
      }
    });
  }

test("log-probs at a temperature are the log-softmax of the logits divided by it", () => {
  const m = randomModel({}, 5, kernelVariants()[0].kernels);
  const V = m.config.vocabSize,
    prefix = [1, 7, 3, 12];
  // every token of the vocabulary after one prefix: the whole log-distribution at temperature 1 (logits up to a constant)
  const rows = (temperature: number) => Array.from({ length: V }, (_, v) => ({ tokens: [...prefix, v], from: prefix.length, temperature }));
  const at = (temperature: number) => scoreRows(m, rows(temperature)).map((r) => r.logprobs[prefix.length]);
  const logits = at(1);
  for (const tau of [0.5, 0.8, 2]) {
    const max = Math.max(...logits.map((z) => z / tau));
    const lse = max + Math.log(logits.reduce((s, z) => s + Math.exp(z / tau - max), 0));
    assertClose(
      `temperature ${tau}`,
      Float64Array.from(at(tau)),
      Float64Array.from(logits, (z) => z / tau - lse),
      1e-5,
      1e-5,
    );
  }
  assert.throws(() => scoreRows(m, [{ tokens: prefix, temperature: 0 }]), /temperature must be positive/);
});

/**
 * src/torch/convert.ts: a llama2.c model (interleaved rope) written as a Hugging Face folder (rotate-half, q and k
 * rows permuted) scores as the .bin does; adapters cross with the same permutation and back.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import { test } from "node:test";
import { CpuBackend } from "../src/engine/backend.ts";
import { DEFAULT_OPTIMIZER } from "../src/engine/optim.ts";
import { availableKernels } from "../src/engine/kernels/select.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { permuteAdapter, permuteRows, rotateHalfOrder, writeTempHfModel } from "../src/torch/convert.ts";
import { Rng } from "../src/util/rng.ts";
import { assertClose, shared } from "./support.ts";

const BIN = shared("data/models/stories260K/stories260K.bin");

test("rotateHalfOrder: even features first, then odd ones, per head; the inverse undoes it", () => {
  assert.deepEqual(Array.from(rotateHalfOrder(2, 4)), [0, 2, 1, 3, 4, 6, 5, 7]);
  const w = Float32Array.from({ length: 8 * 3 }, (_, i) => i);
  const order = rotateHalfOrder(2, 4);
  assert.deepEqual(permuteRows(permuteRows(w, 3, order), 3, order, true), w);
  assert.deepEqual(Array.from(permuteRows(w, 3, order).subarray(3, 6)), [6, 7, 8]);
});

// the TypeScript kernels compute each head's features in the same order either way: equal to the last bit. The native
// ones sum q·k in another order once the features are permuted: float32 rounding, up to ~1.1e-5 on 256 tokens
const KERNELS = availableKernels().map((k, i) => ({ kernels: k, name: i ? "native" : "reference", tol: i ? 3e-5 : 1e-5 }));

for (const { kernels, name, tol } of KERNELS)
  test(`stories260K: the converted Hugging Face folder scores as the .bin (base and LoRA), ${name} kernels`, {
    skip: BIN.skip,
  }, async () => {
    const bin = loadModel(BIN.path);
    assert.equal(bin.config.ropeStyle, "interleaved");
    const dir = writeTempHfModel(bin.config, bin.weights);
    try {
      const hf = loadModel(dir);
      assert.equal(hf.config.ropeStyle, "half");
      assert.deepEqual({ ...hf.config, ropeStyle: "interleaved" }, bin.config);
      const a = new CpuBackend(new Transformer(bin.config, bin.weights, kernels));
      const b = new CpuBackend(new Transformer(hf.config, hf.weights, kernels));
      const rng = new Rng(5);
      const texts = await a.sample(
        [40, 97, 255].map((n) => ({ prompt: [1], adapter: null, maxTokens: n, ignoreEos: true })),
        [1, 2, 3],
      );
      const rows = texts.map((r) => [1, ...r.ids]);

      // an adapter with random A and B (B = 0 would hide a wrong permutation), trained one step on the .bin model
      const lora = {
        rank: 4,
        alpha: 8,
        rslora: false,
        targets: ["q", "k", "v", "o", "gate", "up", "down"] as ("q" | "k" | "v" | "o" | "gate" | "up" | "down")[],
      };
      await a.createAdapter("x", lora, 3, DEFAULT_OPTIMIZER);
      const st = await a.exportAdapter("x");
      for (const t of st.tensors) for (let i = 0; i < t.data.length; i++) t.data[i] = (rng.float() - 0.5) * 0.2;
      await a.importAdapter("x", st);
      await a.backward([{ tokens: rows[0], adapter: "x", weights: rows[0].map((_, t) => (t ? 1 : 0)) }], 40);
      await a.step(["x"], 0.01);
      const trained = await a.exportAdapter("x");
      const toHf = permuteAdapter(trained, bin.config, "to");
      assert.deepEqual(permuteAdapter(toHf, bin.config, "from"), trained);
      await b.createAdapter("x", lora, 3, DEFAULT_OPTIMIZER);
      await b.importAdapter("x", toHf);

      let worst = 0;
      for (const adapter of [null, "x"]) {
        const want = await a.score(rows.map((tokens) => ({ tokens, adapter })));
        const got = await b.score(rows.map((tokens) => ({ tokens, adapter })));
        got.forEach((g, i) => {
          worst = Math.max(
            worst,
            assertClose(`row ${i} ${adapter ?? "base"} logprobs`, g.logprobs.subarray(1), want[i].logprobs.subarray(1), tol),
          );
          assertClose(`row ${i} ${adapter ?? "base"} entropies`, g.entropies.subarray(1), want[i].entropies.subarray(1), tol);
        });
      }
      console.log(`# stories260K .bin vs converted, ${name} kernels: max |Δ log p| = ${worst.toExponential(2)}`);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

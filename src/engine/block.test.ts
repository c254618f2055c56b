/**
 * The activation memory a training tape keeps is what tapeBytesPerTokenPerLayer says (the number `inspect` prints
 * and the README documents): counted from the buffers of a real training forward.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../util/rng.ts";
import { packRows } from "./batch.ts";
import { tapeBytesPerTokenPerLayer } from "./block.ts";
import type { ModelConfig } from "./config.ts";
import { initBaseWeights } from "./init.ts";
import { Transformer } from "./transformer.ts";

test("a training tape keeps tapeBytesPerTokenPerLayer bytes per token per layer", () => {
  const c: ModelConfig = {
    dim: 24,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 6,
    hiddenDim: 40,
    vocabSize: 50,
    maxSeqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: true,
    bosId: null,
    eosIds: [],
  };
  const m = new Transformer(c);
  initBaseWeights(m.weights, c, new Rng(1));
  for (const T of [1, 17, 64]) {
    const tokens = Array.from({ length: T }, (_, i) => (7 * i) % c.vocabSize);
    const { hidden, tape } = m.forward(packRows([{ tokens, adapter: null }], c.vocabSize), true);
    for (const acts of tape!.blocks) {
      const bytes = Object.values(acts).reduce((s, b) => s + (b instanceof Float32Array ? b.byteLength : 0), 0);
      assert.equal(bytes / T, tapeBytesPerTokenPerLayer(c, T), `T = ${T}`);
    }
    m.backward(tape!, new Float32Array(hidden.length));
  }
});

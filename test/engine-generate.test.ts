import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { shared } from "./support.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { decodeContinuation } from "../src/formats/tokenizer.ts";
import { Rng } from "../src/util/rng.ts";
import { generate } from "../src/engine/generate.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { Transformer } from "../src/engine/transformer.ts";
import type { ModelConfig } from "../src/engine/config.ts";
import { scoreRows } from "../src/engine/score.ts";
import type { Kernels } from "../src/engine/kernels/index.ts";
import { kernelVariants } from "../src/engine/kernels/select.ts";

const STORIES = shared("data/models/stories260K");

for (const K of kernelVariants()) {
  test(`[${K.name}] stories260K: greedy decoding from BOS reproduces llama2.c's 200 golden ids and text`, {
    skip: STORIES.skip || K.skip,
  }, () => {
    const lm = loadModel(path.join(STORIES.path, "stories260K.bin"), path.join(STORIES.path, "tok512.bin"));
    const m = new Transformer(lm.config, lm.weights, K.kernels);
    const want = JSON.parse(fs.readFileSync(path.join(STORIES.path, "expected_greedy_200.json"), "utf8"));
    const tok = lm.tokenizer!;
    const [r] = generate(m, [{ prompt: [1], maxTokens: want.greedy_ids.length, sampling: { temperature: 0 }, ignoreEos: true }], {
      rng: new Rng(0),
      decode: (ids) => decodeContinuation(tok, [1], ids),
    });
    assert.deepEqual(r.ids, want.greedy_ids);
    assert.equal(r.text, want.text);
    assert.ok(r.text!.startsWith("Once upon a time, there was a little girl named Lily"));
  });
}

function smallModel(kernels: Kernels): Transformer {
  const c: ModelConfig = {
    dim: 16,
    nLayers: 2,
    nHeads: 2,
    nKvHeads: 1,
    headDim: 8,
    hiddenDim: 32,
    vocabSize: 40,
    maxSeqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "half",
    ropeScaling: null,
    tiedEmbeddings: true,
    bosId: 1,
    eosIds: [2],
  };
  const m = new Transformer(c, undefined, kernels);
  initBaseWeights(m.weights, c, new Rng(5), 0.3);
  return m;
}

for (const K of kernelVariants()) {
  test(`[${K.name}] sampling is seeded, per row, and independent of the batch it runs in`, { skip: K.skip }, () => {
    const m = smallModel(K.kernels);
    const req = { prompt: [1, 5, 7], maxTokens: 12, sampling: { temperature: 1.2, topK: 10, topP: 0.9 }, ignoreEos: true };
    const a = generate(m, [req, { ...req, prompt: [1, 9] }], { rng: new Rng(42) });
    const b = generate(m, [req, { ...req, prompt: [1, 9] }], { rng: new Rng(42) });
    assert.deepEqual(a, b);
    const alone = generate(m, [req], { rng: new Rng(42) });
    assert.deepEqual(alone[0].ids, a[0].ids);
    const other = generate(m, [req], { rng: new Rng(43) });
    assert.notDeepEqual(other[0].ids, a[0].ids);
  });

  test(`[${K.name}] generated log-probs equal scoring the same tokens; top-k 1 is greedy`, { skip: K.skip }, () => {
    const m = smallModel(K.kernels);
    const prompt = [1, 3, 4, 5];
    const [s] = generate(m, [{ prompt, maxTokens: 10, sampling: { temperature: 0.8 }, ignoreEos: true }], { rng: new Rng(1) });
    const [scored] = scoreRows(m, [{ tokens: [...prompt, ...s.ids], from: prompt.length }]);
    for (let i = 0; i < s.ids.length; i++) assert.ok(Math.abs(scored.logprobs[prompt.length + i] - s.logprobs[i]) < 1e-5);
    const [g] = generate(m, [{ prompt, maxTokens: 10, sampling: { temperature: 0 }, ignoreEos: true }], { rng: new Rng(1) });
    const [k1] = generate(m, [{ prompt, maxTokens: 10, sampling: { temperature: 1, topK: 1 }, ignoreEos: true }], { rng: new Rng(7) });
    assert.deepEqual(k1.ids, g.ids);
  });

  test(`[${K.name}] stop tokens and stop strings end a row; max tokens bounds it`, { skip: K.skip }, () => {
    const m = smallModel(K.kernels);
    const prompt = [1, 3];
    const [free] = generate(m, [{ prompt, maxTokens: 20, sampling: { temperature: 0 }, ignoreEos: true }], { rng: new Rng(0) });
    assert.equal(free.ids.length, 20);
    assert.equal(free.finishReason, "length");
    const stopAt = free.ids[4];
    const [eos] = generate(m, [{ prompt, maxTokens: 20, sampling: { temperature: 0 }, stopTokens: [stopAt] }], { rng: new Rng(0) });
    assert.equal(eos.finishReason, "eos");
    assert.deepEqual(eos.ids, free.ids.slice(0, free.ids.indexOf(stopAt) + 1));
    const decode = (ids: number[]) => ids.map((i) => String.fromCharCode(97 + (i % 26))).join("");
    const text = decode(free.ids);
    const stop = text.slice(6, 8);
    const [st] = generate(m, [{ prompt, maxTokens: 20, sampling: { temperature: 0 }, ignoreEos: true, stopStrings: [stop] }], {
      rng: new Rng(0),
      decode,
    });
    assert.equal(st.finishReason, "stop");
    assert.equal(st.text, text.slice(0, text.indexOf(stop)));
  });
}

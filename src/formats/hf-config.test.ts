import assert from "node:assert/strict";
import { test } from "node:test";
import { UserError } from "../util/errors.ts";
import { parseHfConfig, toHfConfig } from "./hf-config.ts";

const base = {
  architectures: ["LlamaForCausalLM"],
  model_type: "llama",
  hidden_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  intermediate_size: 128,
  vocab_size: 100,
  max_position_embeddings: 256,
  rms_norm_eps: 1e-5,
};

test("hf config: transformers 4 and 5 key forms give the same model", () => {
  const v4 = parseHfConfig({ ...base, rope_theta: 500000, torch_dtype: "bfloat16" }, "v4.json");
  const v5 = parseHfConfig({ ...base, rope_parameters: { rope_theta: 500000, rope_type: "default" }, dtype: "bfloat16" }, "v5.json");
  assert.deepEqual(v4.config, v5.config);
  assert.equal(v4.dtype, "bfloat16");
  assert.equal(v5.dtype, "bfloat16");
  assert.equal(v4.config.ropeTheta, 500000);
  assert.equal(v4.config.nKvHeads, 4); // defaults to the head count
  assert.equal(v4.config.headDim, 16);
  assert.equal(v4.config.tiedEmbeddings, false);
});

test("hf config: llama3 rope scaling in both forms, explicit head_dim, tied embeddings", () => {
  const scaling = { rope_type: "llama3", factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 };
  const a = parseHfConfig({ ...base, head_dim: 32, tie_word_embeddings: true, rope_theta: 500000, rope_scaling: scaling }, "a.json").config;
  const b = parseHfConfig(
    { ...base, head_dim: 32, tie_word_embeddings: true, rope_parameters: { rope_theta: 500000, ...scaling } },
    "b.json",
  ).config;
  assert.deepEqual(a, b);
  assert.deepEqual(a.ropeScaling, { type: "llama3", factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 8192 });
  assert.equal(a.headDim, 32);
  assert.equal(a.tiedEmbeddings, true);
  assert.deepEqual(parseHfConfig(toHfConfig(a), "round-trip.json").config, a);
});

test("hf config: unsupported architectures and features are clear errors", () => {
  const cases: [object, RegExp][] = [
    [{ ...base, model_type: "gpt2", architectures: ["GPT2LMHeadModel"] }, /model_type "gpt2".*not supported/],
    [{ ...base, attention_bias: true }, /attention_bias/],
    [{ ...base, hidden_act: "gelu" }, /hidden_act "gelu"/],
    [{ ...base, rope_scaling: { rope_type: "yarn", factor: 4 } }, /rope scaling type "yarn"/],
    [{ ...base, num_key_value_heads: 3 }, /not a multiple/],
    [{ ...base, hidden_size: -1 }, /hidden_size must be a positive integer/],
    [{ ...base, rope_scaling: { rope_type: "llama3", factor: 8 } }, /needs a number low_freq_factor/],
  ];
  for (const [cfg, re] of cases) {
    assert.throws(
      () => parseHfConfig(cfg, "/x/config.json"),
      (e: unknown) => e instanceof UserError && re.test(e.message) && e.message.includes("/x/config.json"),
      String(re),
    );
  }
});

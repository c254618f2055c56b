import assert from "node:assert/strict";
import { test } from "node:test";
import { UserError } from "../util/errors.ts";
import { ropeInvFreq } from "../engine/kernels/rope.ts";
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

test("hf config: rope scaling factors, token ids and sizes out of range are one-line errors naming the key", () => {
  const llama3 = { rope_type: "llama3", factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 64 };
  for (const [patch, why] of [
    [{ rope_scaling: { rope_type: "linear", factor: 0 } }, /needs a number factor above 0, found 0/],
    [{ rope_scaling: { rope_type: "linear", factor: -1 } }, /factor above 0, found -1/],
    [{ rope_parameters: { rope_type: "linear", rope_theta: 10000, factor: "2" } }, /factor above 0/],
    [{ rope_scaling: { ...llama3, low_freq_factor: 0 } }, /low_freq_factor above 0/],
    [{ rope_scaling: { ...llama3, high_freq_factor: 1 } }, /high_freq_factor \(1\) above low_freq_factor \(1\)/],
    [{ rope_scaling: { ...llama3, original_max_position_embeddings: 8.5 } }, /original_max_position_embeddings above 0 \(an integer\)/],
    [{ rope_scaling: [1] }, /rope_scaling must be an object/],
    [{ rope_parameters: "x" }, /rope_parameters must be an object/],
    [{ eos_token_id: 100 }, /eos_token_id must be a token id in 0\.\.99/],
    [{ eos_token_id: [2, "x"] }, /eos_token_id must be a token id/],
    [{ bos_token_id: -1 }, /bos_token_id must be a token id/],
    [{ num_hidden_layers: 1e12 }, /num_hidden_layers 1000000000000 is larger than 2147483647/],
    [{ model_type: "x".repeat(10_000) }, /model_type "x{79}… \(LlamaForCausalLM\) is not supported/],
  ] as const) {
    assert.throws(
      () => parseHfConfig({ ...base, ...patch }, "/m/config.json"),
      (e: unknown) => e instanceof UserError && why.test(e.message) && e.message.startsWith("/m/config.json: "),
      why.source,
    );
  }
  const linear = parseHfConfig({ ...base, rope_scaling: { type: "linear", factor: 2 } }, "c").config.ropeScaling;
  assert.deepEqual(linear, { type: "linear", factor: 2 });
});

test("hf config: linear and llama3 rope scaling give transformers' inverse frequencies", () => {
  // transformers' tests/utils/test_modeling_rope_utils.py, on LlamaConfig() (head_dim 128, theta 10000):
  // test_linear_rope_numerically: inv_freq == default_inv_freq / factor for factors 2, 10, 20;
  // test_llama3_rope_numerically (factor 10, original_max_position_embeddings 2048, low 1, high 4): its snapshot
  // keeps the first 31 frequencies, divides those from index 41 on by the factor, and blends the 10 in between to
  // the values below (printed there to 5 significant digits)
  const defaults = ropeInvFreq(128, 10000, null);
  defaults.forEach((f, i) => assert.ok(Math.abs(f - 10000 ** (-(2 * i) / 128)) <= 1e-6 * f, `default ${i}`));
  for (const factor of [2, 10, 20]) {
    const c = parseHfConfig(
      { ...base, hidden_size: 4096, num_attention_heads: 32, rope_parameters: { rope_type: "linear", rope_theta: 10000, factor } },
      "c",
    ).config;
    const inv = ropeInvFreq(c.headDim, c.ropeTheta, c.ropeScaling);
    inv.forEach((f, i) => assert.ok(Math.abs(f - defaults[i] / factor) <= 1.3e-6 * f, `linear ×${factor}, frequency ${i}`));
  }
  const c = parseHfConfig(
    {
      ...base,
      hidden_size: 4096,
      num_attention_heads: 32,
      rope_scaling: { rope_type: "llama3", factor: 10, original_max_position_embeddings: 2048, low_freq_factor: 1, high_freq_factor: 4 },
    },
    "c",
  ).config;
  const inv = ropeInvFreq(c.headDim, c.ropeTheta, c.ropeScaling);
  const blended = [1.073e-2, 7.7785e-3, 5.6009e-3, 3.9991e-3, 2.8248e-3, 1.9675e-3, 1.3449e-3, 8.9549e-4, 5.7363e-4, 3.4539e-4];
  inv.forEach((f, i) => {
    const want = i <= 30 ? defaults[i] : i >= 41 ? defaults[i] / 10 : blended[i - 31];
    assert.ok(Math.abs(f - want) <= (i > 30 && i < 41 ? 5e-5 : 1.3e-6) * want, `llama3 frequency ${i}: ${f}, want ${want}`);
  });
});

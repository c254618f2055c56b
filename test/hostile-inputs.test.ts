/**
 * Hostile inputs through the real CLI. Over a hundred damaged or malicious inputs — configs that declare a billion
 * layers, lying safetensors headers, NaN weights, shard indexes that point outside the folder, tokenizers larger
 * than the model, llama2.c files with impossible headers, catastrophic target_modules regexes, named pipes,
 * /dev/zero and sparse files that claim terabytes — are generated here from small models of our own and each is run
 * as `colloquy inspect` or `colloquy score` in its own child process (`node bin/colloquy.mjs`). Every one must end in
 * exactly one line on stderr and exit status 2, or, for the valid inputs among them, in the right result; none may
 * run longer than 30 s or use more than 2 GB. Wall time is measured around each child; peak memory is the child's
 * maximum resident set size as the kernel reports it to /usr/bin/time (%M; without it, the child's own
 * process.resourceUsage().maxRSS at exit).
 *
 * The figures (count, largest time, largest RSS) are printed as a test diagnostic, and written as JSON to
 * $HOSTILE_REPORT when it is set:  HOSTILE_REPORT=/tmp/hostile.json node --import tsx --test test/hostile-inputs.test.ts
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { CpuBackend } from "../src/engine/backend.ts";
import { createAdapter, initAdapterWeights } from "../src/engine/lora.ts";
import { LINEAR_KINDS } from "../src/engine/params.ts";
import { Transformer } from "../src/engine/transformer.ts";
import { loadModel } from "../src/formats/load-model.ts";
import { readPeftAdapter, savePeftAdapter } from "../src/formats/peft.ts";
import { Rng } from "../src/util/rng.ts";
import { convert, f32Bytes, mkfifo, readRaw, replaceTensor, sparseFile, withValue, writeRaw } from "./hostile-files.ts";
import { encodeLlama2cTokenizer, writeSmallLlama2c } from "./llama2c-files.ts";
import { ROOT, tmpDir } from "./support.ts";
import { saveTinyModel } from "./tiny.ts";

const MAX_SECONDS = 30;
const MAX_RSS_BYTES = 2 * 2 ** 30;
const TIME = fs.existsSync("/usr/bin/time") ? "/usr/bin/time" : null;

interface Case {
  name: string;
  args: string[]; // after `colloquy`
  error?: RegExp; // what the one line must say; absent: a valid input, which must succeed
  check?: (stdout: string) => void; // a valid input's result
}

interface Outcome {
  status: number | null;
  stdout: string;
  stderr: string;
  seconds: number;
  rssBytes: number;
}

const TMP = tmpDir("colloquy-hostile-");
const at = (...p: string[]) => path.join(TMP, ...p);
const IDS = "1,5,9,13,40,77,200,3";

// ---------------------------------------------------------------------------------------------------------------
// the valid inputs everything else is made from: a tiny Hugging Face model with its tokenizer, a PEFT adapter for
// it, a tiny llama2.c model (versions 0 and 1) with its tokenizer

const HF = saveTinyModel(at("hf"));
const HF_CONFIG = JSON.parse(fs.readFileSync(path.join(HF, "config.json"), "utf8")) as Record<string, unknown>;
const ADAPTER = at("adapter");
{
  const config = loadModel(HF).config;
  const a = createAdapter("a", config, { rank: 2, alpha: 4, rslora: false, targets: [...LINEAR_KINDS] });
  initAdapterWeights(a, new Rng(5));
  const rng = new Rng(6);
  for (const t of a.weights.tensors) for (let i = 0; i < t.view.length; i++) t.view[i] += 0.2 * rng.normal(); // B ≠ 0
  savePeftAdapter(ADAPTER, a, HF);
}
for (const d of ["l2c", "l2c-v1", "cases", "rss"]) fs.mkdirSync(at(d), { recursive: true });
const L2C = writeSmallLlama2c(at("l2c", "model.bin"), 0, 3);
const L2C_V1 = writeSmallLlama2c(at("l2c-v1", "model.bin"), 1, 3); // the same weights in the version 1 layout

/** Log-probs of `ids` computed in this process by the engine (the reference a valid input's `score` must give). */
async function reference(model: string, ids: string, adapter?: string): Promise<number[]> {
  const m = loadModel(model);
  const backend = new CpuBackend(new Transformer(m.config, m.weights));
  if (adapter) await backend.importAdapter("a", readPeftAdapter(adapter, m.config));
  const [r] = await backend.score([{ tokens: ids.split(",").map(Number), adapter: adapter ? "a" : null }]);
  return Array.from(r.logprobs).slice(1);
}

/** A `score --json` result must be finite log-probs equal to `want` (when given) within float32 rounding. */
function scores(want?: () => number[]): (stdout: string) => void {
  return (stdout) => {
    const got = (JSON.parse(stdout) as { logprobs: (number | null)[] }).logprobs.slice(1) as number[];
    assert.ok(
      got.every((x) => typeof x === "number" && Number.isFinite(x)),
      `log-probs not finite: ${JSON.stringify(got)}`,
    );
    const w = want?.();
    if (w) got.forEach((x, i) => assert.ok(Math.abs(x - w[i]) < 1e-5, `log-prob ${i + 1}: ${x}, want ${w[i]}`));
  };
}
let hfRef: number[] = [];
let adapterRef: number[] = [];
let l2cRef: number[] = [];

// ---------------------------------------------------------------------------------------------------------------
// the cases

const cases: Case[] = [];
let fifos = true;

/** A copy of the tiny HF model named `name`, changed by `edit`. */
function hf(name: string, edit: (dir: string) => void): string {
  const dir = at("cases", name);
  fs.cpSync(HF, dir, { recursive: true });
  edit(dir);
  return dir;
}
const file = (dir: string, f: string) => path.join(dir, f);
const writeJson = (f: string, v: unknown) => fs.writeFileSync(f, typeof v === "string" ? v : JSON.stringify(v));
const replaceWith = (f: string, make: (f: string) => void) => {
  fs.rmSync(f, { recursive: true, force: true });
  make(f);
};
const fifo = (f: string) => {
  fifos = mkfifo(f) && fifos;
  if (!fs.existsSync(f)) fs.writeFileSync(f, "not a pipe: mkfifo is missing"); // still a bad file
};
const verbs = [(dir: string) => ["inspect", dir], (dir: string) => ["score", "--model", dir, "--ids", IDS, "--json"]];

/** An HF model whose config.json is patched (or replaced by `raw`); inspect and score take turns. */
function configCase(name: string, patch: Record<string, unknown> | { raw: string }, error?: RegExp, verb = cases.length % 2): void {
  const dir = hf(name, (d) => writeJson(file(d, "config.json"), "raw" in patch ? patch.raw : { ...HF_CONFIG, ...patch }));
  cases.push({ name, args: verbs[verb](dir), error });
}

/** An HF model changed by `edit`. */
function modelCase(name: string, edit: (dir: string) => void, error?: RegExp, verb = cases.length % 2): void {
  cases.push({ name, args: verbs[verb](hf(name, edit)), error });
}

const WEIGHTS = "model.safetensors";
const Q0 = "model.layers.0.self_attn.q_proj.weight";
const weightsCase = (name: string, edit: (f: string) => void, error?: RegExp) => modelCase(name, (d) => edit(file(d, WEIGHTS)), error);
const rawCase = (name: string, o: Parameters<typeof writeRaw>[2], error: RegExp) =>
  weightsCase(name, (f) => writeRaw(f, readRaw(f), o), error);

// config.json: sizes far beyond the weights, refused before anything is allocated
configCase("layers-1e6", { num_hidden_layers: 1e6 }, /E_MISSING_TENSOR.*model\.layers\.2\./);
configCase("layers-1e8", { num_hidden_layers: 1e8 }, /E_MISSING_TENSOR/);
configCase("layers-1e9", { num_hidden_layers: 1e9 }, /E_MISSING_TENSOR/);
configCase("layers-1e12", { num_hidden_layers: 1e12 }, /E_BAD_CONFIG.*num_hidden_layers/);
configCase("hidden-1e9", { hidden_size: 1e9, head_dim: null }, /E_SHAPE.*embed_tokens/);
configCase("vocab-1e9", { vocab_size: 1e9 }, /E_SHAPE/);
configCase("intermediate-1e9", { intermediate_size: 1e9 }, /E_SHAPE.*gate_proj/);
configCase("head-dim-1e9", { head_dim: 1e9 }, /E_SHAPE/);
configCase("max-positions-1e7", { max_position_embeddings: 1e7 }, undefined, 0); // valid: rotary tables grow as far as they are used
configCase("max-positions-1e9", { max_position_embeddings: 1e9 }, undefined, 1);
cases[cases.length - 1].check = scores(() => hfRef);
configCase("max-positions-1e12", { max_position_embeddings: 1e12 }, /E_BAD_CONFIG.*max_position_embeddings/);
configCase("rope-linear-0", { rope_scaling: { rope_type: "linear", factor: 0 } }, /E_BAD_CONFIG.*factor/);
configCase("rope-linear-negative", { rope_scaling: { rope_type: "linear", factor: -1 } }, /E_BAD_CONFIG.*factor/);
configCase(
  "rope-llama3-inverted",
  { rope_scaling: { rope_type: "llama3", factor: 8, low_freq_factor: 4, high_freq_factor: 1, original_max_position_embeddings: 64 } },
  /E_BAD_CONFIG.*high_freq_factor/,
);
configCase("rope-scaling-array", { rope_scaling: [1, 2] }, /E_BAD_CONFIG.*rope_scaling/);
configCase("rope-theta-0", { rope_theta: 0 }, /E_BAD_CONFIG.*rope_theta/);
configCase("eos-outside-vocab", { eos_token_id: 1e9 }, /E_BAD_CONFIG.*eos_token_id/);
configCase("eos-string", { eos_token_id: ["</s>"] }, /E_BAD_CONFIG.*eos_token_id/);
configCase("model-type-gpt2", { model_type: "gpt2" }, /E_UNSUPPORTED.*gpt2/);
configCase("untied-without-head", { tie_word_embeddings: false }, /E_MISSING_TENSOR.*lm_head/);
configCase("config-not-json", { raw: '{"hidden_size": 32,' }, /E_BAD_JSON/);
configCase("config-array", { raw: "[1, 2, 3]" }, /E_BAD_CONFIG.*not a JSON object/);
configCase("config-deep-nesting", { raw: `${"[".repeat(200_000)}${"]".repeat(200_000)}` }, /E_BAD_(JSON|CONFIG)/);
modelCase("config-sparse-3GB", (d) => sparseFile(file(d, "config.json"), 3 * 2 ** 30, Buffer.from("{")), /E_TOO_LARGE.*config\.json/);
modelCase("config-directory", (d) => replaceWith(file(d, "config.json"), (f) => fs.mkdirSync(f)), /E_NOT_FILE.*config\.json/);
modelCase("config-named-pipe", (d) => replaceWith(file(d, "config.json"), fifo), /E_NOT_FILE|E_BAD_JSON/);
modelCase("config-dev-zero", (d) => replaceWith(file(d, "config.json"), (f) => fs.symlinkSync("/dev/zero", f)), /E_NOT_FILE.*device/);
modelCase("config-missing", (d) => fs.rmSync(file(d, "config.json")), /E_NOT_FOUND.*config\.json/);

// model.safetensors: not a file, not safetensors, lying headers, non-finite values, wrong tensors
weightsCase("weights-missing", (f) => fs.rmSync(f), /E_NOT_FOUND.*no weights/);
weightsCase("weights-directory", (f) => replaceWith(f, (p) => fs.mkdirSync(p)), /E_NOT_FILE.*folder/);
weightsCase("weights-named-pipe", (f) => replaceWith(f, fifo), /E_NOT_FILE|E_BAD_SAFETENSORS/);
weightsCase("weights-dev-zero", (f) => replaceWith(f, (p) => fs.symlinkSync("/dev/zero", p)), /E_NOT_FILE.*device/);
weightsCase("weights-empty", (f) => fs.writeFileSync(f, ""), /E_BAD_SAFETENSORS.*shorter/);
rawCase("header-length-2^63", { headerLength: 2n ** 63n }, /E_BAD_SAFETENSORS.*header length/);
rawCase("header-not-json", { headerText: "{not json" }, /E_BAD_SAFETENSORS.*not valid JSON/);
rawCase("header-null-entry", { edit: (h) => (h["model.norm.weight"] = null) }, /E_BAD_SAFETENSORS.*model\.norm\.weight/);
rawCase("header-dtype-q4", { edit: (h) => ((h[Q0] as Record<string, unknown>).dtype = "Q4") }, /E_BAD_SAFETENSORS.*Q4/);
rawCase("header-dtype-proto", { edit: (h) => ((h[Q0] as Record<string, unknown>).dtype = "toString") }, /E_BAD_SAFETENSORS.*dtype/);
rawCase("header-shape-negative", { edit: (h) => ((h[Q0] as Record<string, unknown>).shape = [-32, -32]) }, /E_BAD_SAFETENSORS.*shape/);
rawCase("header-shape-huge", { edit: (h) => ((h[Q0] as Record<string, unknown>).shape = [2 ** 40, 2 ** 40]) }, /E_BAD_SAFETENSORS/);
rawCase(
  "header-offsets-past-end",
  { edit: (h) => ((h[Q0] as { data_offsets: number[] }).data_offsets = [2 ** 40, 2 ** 40 + 4096]) },
  /E_BAD_SAFETENSORS.*ends at byte/,
);
rawCase("header-size-lie", { edit: (h) => ((h[Q0] as Record<string, unknown>).shape = [32, 16]) }, /E_BAD_SAFETENSORS.*needs/);
rawCase(
  "header-overlap",
  {
    edit: (h) =>
      ((h["model.layers.1.input_layernorm.weight"] as Record<string, unknown>).data_offsets = (
        h["model.layers.0.input_layernorm.weight"] as Record<string, unknown>
      ).data_offsets),
  },
  /E_BAD_SAFETENSORS.*overlap/,
);
rawCase("data-truncated", { truncate: 100 }, /E_BAD_SAFETENSORS.*ends at byte/);
weightsCase(
  "tensor-transposed",
  (f) => replaceTensor(f, "model.layers.0.mlp.up_proj.weight", (t) => ({ ...t, shape: [...t.shape].reverse() })),
  /E_SHAPE.*up_proj/,
);
weightsCase(
  "tensor-missing",
  (f) =>
    writeRaw(
      f,
      readRaw(f).filter(([n]) => n !== "model.layers.1.mlp.down_proj.weight"),
    ),
  /E_MISSING_TENSOR.*down_proj/,
);
weightsCase(
  "tensor-extra-layer",
  (f) => writeRaw(f, [...readRaw(f), ["model.layers.7.input_layernorm.weight", readRaw(f)[1][1]]]),
  /E_SHAPE.*layer 7/,
);
weightsCase(
  "tensor-bias",
  (f) =>
    writeRaw(f, [
      ...readRaw(f),
      ["model.layers.0.self_attn.q_proj.bias", { dtype: "F32", shape: [32], bytes: f32Bytes(new Float32Array(32)) }],
    ]),
  /E_UNSUPPORTED.*bias/,
);
weightsCase("weight-nan", (f) => replaceTensor(f, Q0, (t) => withValue(t, 17, Number.NaN)), /E_NON_FINITE.*q_proj.*NaN/);
weightsCase(
  "weight-infinity",
  (f) => replaceTensor(f, "model.norm.weight", (t) => withValue(t, 3, Number.POSITIVE_INFINITY)),
  /E_NON_FINITE.*model\.norm\.weight/,
);
weightsCase("weight-nan-f16", (f) => replaceTensor(f, Q0, (t) => convert(t, "F16", { i: 5, bits: 0x7e00 })), /E_NON_FINITE.*q_proj/);
weightsCase("weight-infinity-bf16", (f) => replaceTensor(f, Q0, (t) => convert(t, "BF16", { i: 9, bits: 0x7f80 })), /E_NON_FINITE.*q_proj/);
weightsCase("weight-f64-overflow", (f) => replaceTensor(f, Q0, (t) => convert(t, "F64", { i: 2, value: 1e300 })), /E_NON_FINITE.*q_proj/);
modelCase(
  "weights-sparse-4TiB",
  (d) => {
    // a config and a header that agree with each other and with the file's size: 4 TiB of weights, on no disk
    const C = 2 ** 19;
    writeJson(file(d, "config.json"), {
      ...HF_CONFIG,
      hidden_size: C,
      head_dim: C,
      num_attention_heads: 1,
      num_key_value_heads: 1,
      intermediate_size: 1,
      vocab_size: 400,
      num_hidden_layers: 1,
    });
    const shapes: [string, number[]][] = [
      ["model.embed_tokens.weight", [400, C]],
      ["model.layers.0.input_layernorm.weight", [C]],
      ...["q", "k", "v", "o"].map((k): [string, number[]] => [`model.layers.0.self_attn.${k}_proj.weight`, [C, C]]),
      ["model.layers.0.mlp.gate_proj.weight", [1, C]],
      ["model.layers.0.mlp.up_proj.weight", [1, C]],
      ["model.layers.0.mlp.down_proj.weight", [C, 1]],
      ["model.layers.0.post_attention_layernorm.weight", [C]],
      ["model.norm.weight", [C]],
    ];
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [name, shape] of shapes) {
      const n = 4 * shape.reduce((a, b) => a * b, 1);
      header[name] = { dtype: "F32", shape, data_offsets: [off, off + n] };
      off += n;
    }
    const json = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(json.length));
    sparseFile(file(d, WEIGHTS), 8 + json.length + off, Buffer.concat([len, json]));
  },
  /E_TOO_LARGE.*TiB|E_TOO_LARGE.*GiB/,
);
modelCase(
  "weights-f16",
  (d) =>
    writeRaw(
      file(d, WEIGHTS),
      readRaw(file(d, WEIGHTS)).map(([n, t]) => [n, convert(t, "F16")]),
    ),
  undefined,
  1,
);
cases[cases.length - 1].check = scores();

// sharded checkpoints: the index must map tensor names to shard files beside it
function sharded(d: string, map?: unknown): void {
  const all = readRaw(file(d, WEIGHTS));
  fs.rmSync(file(d, WEIGHTS));
  const half = Math.ceil(all.length / 2);
  writeRaw(file(d, "model-00001-of-00002.safetensors"), all.slice(0, half));
  writeRaw(file(d, "model-00002-of-00002.safetensors"), all.slice(half));
  const weightMap = Object.fromEntries(all.map(([n], i) => [n, `model-0000${i < half ? 1 : 2}-of-00002.safetensors`]));
  writeJson(file(d, "model.safetensors.index.json"), {
    metadata: {},
    weight_map: map === undefined ? weightMap : typeof map === "function" ? map(weightMap) : map,
  });
}
const INDEX = "model.safetensors.index.json";
modelCase("sharded-valid", (d) => sharded(d), undefined, 1);
cases[cases.length - 1].check = scores(() => hfRef);
modelCase("index-no-weight-map", (d) => sharded(d, null), /E_BAD_INDEX.*weight_map/);
modelCase("index-weight-map-array", (d) => sharded(d, ["model-00001-of-00002.safetensors"]), /E_BAD_INDEX.*weight_map/);
modelCase("index-shard-number", (d) => sharded(d, (m: Record<string, unknown>) => ({ ...m, [Q0]: 7 })), /E_BAD_INDEX.*q_proj/);
modelCase("index-shard-null", (d) => sharded(d, (m: Record<string, unknown>) => ({ ...m, [Q0]: null })), /E_BAD_INDEX/);
modelCase("index-named-pipe", (d) => (sharded(d), replaceWith(file(d, INDEX), fifo)), /E_NOT_FILE|E_BAD_JSON/);
modelCase(
  "index-shard-traversal",
  (d) => sharded(d, (m: Record<string, unknown>) => ({ ...m, [Q0]: "../hf/model.safetensors" })),
  /E_BAD_INDEX.*beside the index/,
);
modelCase("index-shard-absolute", (d) => sharded(d, (m: Record<string, unknown>) => ({ ...m, [Q0]: "/etc/passwd" })), /E_BAD_INDEX/);
modelCase(
  "index-shard-directory",
  (d) => (sharded(d), replaceWith(file(d, "model-00002-of-00002.safetensors"), (f) => fs.mkdirSync(f))),
  /E_NOT_FILE.*folder/,
);
modelCase(
  "index-wrong-shard",
  (d) => sharded(d, (m: Record<string, unknown>) => ({ ...m, "model.norm.weight": "model-00001-of-00002.safetensors" })),
  /E_MISSING_TENSOR.*model\.norm\.weight/,
);

// tokenizers of the HF model (score --text tokenizes)
const text = (dir: string) => ["score", "--model", dir, "--text", "hello world", "--json"];
function tokenizerCase(name: string, edit: (dir: string) => void, error?: RegExp): void {
  cases.push({ name, args: text(hf(name, edit)), error });
}
const TOK = "tokenizer.json";
const editTokenizer = (d: string, f: (j: Record<string, unknown>) => unknown) =>
  writeJson(file(d, TOK), f(JSON.parse(fs.readFileSync(file(d, TOK), "utf8"))));
tokenizerCase(
  "tokenizer-larger-than-model",
  (d) =>
    editTokenizer(d, (j) => ({
      ...j,
      added_tokens: [
        ...(j.added_tokens as object[]),
        { id: 5000, content: "<|extra|>", special: true, single_word: false, lstrip: false, rstrip: false, normalized: false },
      ],
    })),
  /E_VOCAB_SIZE.*5001 tokens.*400/,
);
tokenizerCase("tokenizer-directory", (d) => replaceWith(file(d, TOK), (f) => fs.mkdirSync(f)), /E_NOT_FILE/);
tokenizerCase("tokenizer-named-pipe", (d) => replaceWith(file(d, TOK), fifo), /E_NOT_FILE|E_BAD_JSON/);
tokenizerCase("tokenizer-sparse-3GB", (d) => sparseFile(file(d, TOK), 3 * 2 ** 30, Buffer.from("{")), /E_TOO_LARGE/);
cases.push({ name: "tokenizer-flag-missing", args: [...text(HF), "--tokenizer", at("nowhere", "tok.bin")], error: /E_NOT_FOUND/ });

// llama2.c checkpoints and tokenizers
function l2cCase(name: string, make: (f: string) => void, error?: RegExp, verb = cases.length % 2): string {
  const dir = at("cases", name);
  fs.mkdirSync(dir, { recursive: true });
  const f = path.join(dir, "model.bin");
  fs.copyFileSync(L2C, f);
  fs.copyFileSync(path.join(path.dirname(L2C), "tokenizer.bin"), path.join(dir, "tokenizer.bin"));
  make(f);
  cases.push({ name, args: verbs[verb](f), error });
  return f;
}
const setInt = (f: string, at: number, v: number) => {
  const b = fs.readFileSync(f);
  b.writeInt32LE(v, at);
  fs.writeFileSync(f, b);
};
const setFloat = (f: string, at: number, v: number) => {
  const b = fs.readFileSync(f);
  b.writeFloatLE(v, at);
  fs.writeFileSync(f, b);
};
l2cCase("llama2c-v0-valid", () => {}, undefined, 1);
cases[cases.length - 1].check = scores(() => l2cRef);
cases.push({ name: "llama2c-v1-valid", args: verbs[1](L2C_V1), check: scores(() => l2cRef) });
l2cCase("llama2c-empty", (f) => fs.writeFileSync(f, ""), /E_BAD_CHECKPOINT.*shorter/);
l2cCase("llama2c-layers-1e7", (f) => setInt(f, 8, 10_000_000), /E_BAD_CHECKPOINT.*implies/);
l2cCase("llama2c-longer", (f) => fs.appendFileSync(f, Buffer.alloc(4)), /E_BAD_CHECKPOINT.*implies/);
l2cCase("llama2c-v1-version-2", (f) => (fs.copyFileSync(L2C_V1, f), setInt(f, 4, 2)), /E_BAD_CHECKPOINT.*version 2/);
l2cCase("llama2c-nan", (f) => setFloat(f, 28 + 4 * 1000, Number.NaN), /E_NON_FINITE.*token_embedding_table/);
l2cCase(
  "llama2c-v1-infinity",
  (f) => (fs.copyFileSync(L2C_V1, f), setFloat(f, 256 + 4 * 40, Number.POSITIVE_INFINITY)),
  /E_NON_FINITE.*rms_ffn_weight/,
);
l2cCase("llama2c-over-2GiB", (f) => sparseFile(f, 2 ** 31 + 2 ** 20, fs.readFileSync(L2C).subarray(0, 28)), /E_BAD_CHECKPOINT.*implies/);
l2cCase(
  "llama2c-sparse-896GiB",
  (f) => {
    // a header whose size the file really has: 128 layers of width 16384
    const c = { dim: 2 ** 14, hidden: 2 ** 14, layers: 128, heads: 128, kv: 128, vocab: 512, seq: 64 };
    const head = Buffer.alloc(28);
    [c.dim, c.hidden, c.layers, c.heads, c.kv, c.vocab, c.seq].forEach((v, i) => head.writeInt32LE(v, 4 * i));
    const floats = c.vocab * c.dim + c.layers * (2 * c.dim + 4 * c.dim * c.dim + 3 * c.hidden * c.dim) + c.dim + c.seq * (c.dim / c.heads);
    sparseFile(f, 28 + 4 * floats, head);
  },
  /E_TOO_LARGE/,
);
l2cCase("llama2c-named-pipe", (f) => replaceWith(f, fifo), /E_NOT_FILE|E_BAD_CHECKPOINT/);
l2cCase("llama2c-dev-zero", (f) => replaceWith(f, (p) => fs.symlinkSync("/dev/zero", p)), /E_NOT_FILE.*device/);
const tokFile = (f: string) => path.join(path.dirname(f), "tokenizer.bin");
l2cCase("llama2c-tokenizer-fewer", (f) => fs.writeFileSync(tokFile(f), encodeLlama2cTokenizer(270)), /E_VOCAB_SIZE.*270 tokens/, 1);
l2cCase("llama2c-tokenizer-more", (f) => fs.writeFileSync(tokFile(f), encodeLlama2cTokenizer(290)), /E_VOCAB_SIZE.*bytes left/);
l2cCase("llama2c-tokenizer-named-pipe", (f) => replaceWith(tokFile(f), fifo), /E_NOT_FILE|E_BAD_TOKENIZER/);
l2cCase(
  "llama2c-tokenizer-nan-score",
  (f) => setFloat(tokFile(f), 4 + 8 * 3 + "<unk>\n<s>\n\n</s>\n".length, Number.NaN),
  /E_BAD_TOKENIZER.*NaN/,
);

// PEFT adapters (score --adapter), among them target_modules regexes that backtracking engines take forever on
function adapterCase(name: string, edit: (dir: string) => void, error?: RegExp): void {
  const dir = at("cases", name);
  fs.cpSync(ADAPTER, dir, { recursive: true });
  edit(dir);
  cases.push({ name, args: ["score", "--model", HF, "--adapter", dir, "--ids", IDS, "--json"], error });
}
const adapterConfig = (patch: Record<string, unknown>) => (d: string) =>
  editJson(path.join(d, "adapter_config.json"), (j) => ({ ...j, ...patch }));
const editJson = (f: string, fn: (j: Record<string, unknown>) => unknown) => writeJson(f, fn(JSON.parse(fs.readFileSync(f, "utf8"))));
const ADAPTER_WEIGHTS = "adapter_model.safetensors";
const LORA_A0 = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
adapterCase("adapter-valid", () => {});
cases[cases.length - 1].check = scores(() => adapterRef);
adapterCase("adapter-regex-catastrophic-valid", adapterConfig({ target_modules: "(.*.*)*_proj" }));
cases[cases.length - 1].check = scores(() => adapterRef);
adapterCase("adapter-regex-catastrophic-none", adapterConfig({ target_modules: "(.*.*)*y" }), /E_BAD_ADAPTER.*selects no linear layer/);
adapterCase("adapter-regex-alternation-blowup", adapterConfig({ target_modules: "(a|aa|.)*(b|_proj)" }));
cases[cases.length - 1].check = scores(() => adapterRef);
adapterCase("adapter-regex-invalid", adapterConfig({ target_modules: "(q_proj" }), /E_BAD_ADAPTER.*regex/);
adapterCase("adapter-regex-backreference", adapterConfig({ target_modules: "(.*)\\1" }), /E_BAD_ADAPTER.*backreferences/);
adapterCase("adapter-regex-huge-repeat", adapterConfig({ target_modules: "((a{1000}){1000}){1000}" }), /E_BAD_ADAPTER/);
adapterCase("adapter-regex-one-layer", adapterConfig({ target_modules: ".*layers\\.0\\..*_proj" }), /E_UNSUPPORTED.*layer 1/);
adapterCase("adapter-regex-everything", adapterConfig({ target_modules: ".*" }), /E_UNSUPPORTED.*(embed_tokens|lm_head)/);
adapterCase("adapter-targets-not-strings", adapterConfig({ target_modules: [1, null] }), /E_UNSUPPORTED.*target module/);
adapterCase("adapter-targets-proto", adapterConfig({ target_modules: ["__proto__", "constructor"] }), /E_UNSUPPORTED.*__proto__/);
adapterCase("adapter-rank-1e9", adapterConfig({ r: 1e9 }), /E_BAD_ADAPTER.*\br must/);
adapterCase("adapter-rank-mismatch", adapterConfig({ r: 4 }), /E_SHAPE.*lora_A/);
adapterCase("adapter-dora", adapterConfig({ use_dora: true }), /E_UNSUPPORTED.*use_dora/);
adapterCase("adapter-config-array", (d) => writeJson(path.join(d, "adapter_config.json"), [2]), /E_BAD_ADAPTER.*not a JSON object/);
adapterCase("adapter-config-named-pipe", (d) => replaceWith(path.join(d, "adapter_config.json"), fifo), /E_NOT_FILE|E_BAD_JSON/);
adapterCase(
  "adapter-weights-nan",
  (d) => replaceTensor(path.join(d, ADAPTER_WEIGHTS), LORA_A0, (t) => withValue(t, 1, Number.NaN)),
  /E_NON_FINITE.*lora_A/,
);
adapterCase(
  "adapter-weights-missing-tensor",
  (d) =>
    writeRaw(
      path.join(d, ADAPTER_WEIGHTS),
      readRaw(path.join(d, ADAPTER_WEIGHTS)).filter(([n]) => n !== LORA_A0),
    ),
  /E_MISSING_TENSOR.*lora_A/,
);
adapterCase(
  "adapter-weights-null-entry",
  (d) => {
    const f = path.join(d, ADAPTER_WEIGHTS);
    writeRaw(f, readRaw(f), { edit: (h) => (h[LORA_A0] = null) });
  },
  /E_BAD_SAFETENSORS/,
);
adapterCase("adapter-weights-directory", (d) => replaceWith(path.join(d, ADAPTER_WEIGHTS), (f) => fs.mkdirSync(f)), /E_NOT_FILE/);

// ---------------------------------------------------------------------------------------------------------------
// running them

/** Runs one case in its own child process, measuring its wall time and peak RSS. */
function run(c: Case): Promise<Outcome> {
  const rssFile = at("rss", `${c.name}.txt`);
  const env = { ...process.env, COLLOQUY_CACHE: at("cache"), NO_COLOR: "1", HOSTILE_RSS_FILE: rssFile };
  const cli = [path.join(ROOT, "bin/colloquy.mjs"), ...c.args];
  const [cmd, args] = TIME
    ? [TIME, ["-f", "%e %M", "-o", rssFile, process.execPath, ...cli]]
    : [process.execPath, ["--import", RSS_PROBE, ...cli]];
  return new Promise((resolve) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { cwd: TMP, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    const kill = setTimeout(() => process.kill(-child.pid!, "SIGKILL"), MAX_SECONDS * 1000);
    child.on("close", (status) => {
      clearTimeout(kill);
      const seconds = (performance.now() - t0) / 1000;
      const lines = fs.existsSync(rssFile) ? fs.readFileSync(rssFile, "utf8").trim().split("\n") : [];
      const kb = Number(lines[lines.length - 1]?.split(" ").pop());
      resolve({ status, stdout, stderr, seconds, rssBytes: Number.isFinite(kb) ? kb * 1024 : Number.NaN });
    });
  });
}

/** Without /usr/bin/time, each child reports its own peak RSS (KB) as it exits. */
const RSS_PROBE = at("rss-probe.mjs");
fs.writeFileSync(
  RSS_PROBE,
  'import fs from "node:fs";\nprocess.on("exit", () => fs.writeFileSync(process.env.HOSTILE_RSS_FILE, String(process.resourceUsage().maxRSS)));\n',
);

/** What is wrong with an outcome (null: nothing). */
function problem(c: Case, o: Outcome): string | null {
  if (o.seconds > MAX_SECONDS) return `ran ${o.seconds.toFixed(1)} s`;
  if (!(o.rssBytes <= MAX_RSS_BYTES)) return `peak RSS ${(o.rssBytes / 2 ** 20).toFixed(0)} MB`;
  if (!c.error) {
    if (o.status !== 0) return `a valid input failed (exit ${o.status}): ${o.stderr.trim()}`;
    try {
      c.check?.(o.stdout);
    } catch (e) {
      return `wrong result: ${(e as Error).message}`;
    }
    return null;
  }
  const lines = o.stderr.trimEnd().split("\n");
  if (o.status !== 2) return `exit status ${o.status}, stderr: ${o.stderr.trim().slice(0, 600)}`;
  if (lines.length !== 1) return `${lines.length} lines on stderr:\n${o.stderr.slice(0, 600)}`;
  if (!/^error\[E_[A-Z_]+\]: /.test(lines[0])) return `not a user error line: ${lines[0]}`;
  if (!c.error.test(lines[0])) return `the line does not match ${c.error}: ${lines[0]}`;
  return null;
}

test(`hostile inputs through inspect and score: one line and exit 2 each, within ${MAX_SECONDS} s and 2 GB`, {
  timeout: 900_000,
}, async (t) => {
  assert.ok(cases.length >= 100, `only ${cases.length} cases`);
  const names = new Set(cases.map((c) => c.name));
  assert.equal(names.size, cases.length, "case names must be unique");
  hfRef = await reference(HF, IDS);
  adapterRef = await reference(HF, IDS, ADAPTER);
  l2cRef = await reference(L2C, IDS);
  assert.deepEqual(await reference(L2C_V1, IDS), l2cRef, "v0 and v1 files of the same weights load the same");

  const concurrency = Math.max(2, os.availableParallelism());
  const outcomes = new Array<Outcome>(cases.length);
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < cases.length) {
        const i = next++;
        outcomes[i] = await run(cases[i]);
      }
    }),
  );
  const total = (performance.now() - t0) / 1000;

  const failures = cases.flatMap((c, i) => {
    const p = problem(c, outcomes[i]);
    return p ? [`${c.name} (${c.args.join(" ").replaceAll(TMP, "$TMP")}): ${p}`] : [];
  });
  const slowest = outcomes.reduce((a, o, i) => (o.seconds > outcomes[a].seconds ? i : a), 0);
  const largest = outcomes.reduce((a, o, i) => (o.rssBytes > outcomes[a].rssBytes ? i : a), 0);
  const report = {
    inputs: cases.length,
    errors: cases.filter((c) => c.error).length,
    valid: cases.filter((c) => !c.error).length,
    failures: failures.length,
    max_seconds: +outcomes[slowest].seconds.toFixed(2),
    max_seconds_input: cases[slowest].name,
    max_rss_mb: +(outcomes[largest].rssBytes / 2 ** 20).toFixed(1),
    max_rss_input: cases[largest].name,
    total_seconds: +total.toFixed(1),
    concurrency,
    rss_measured_by: TIME ? "/usr/bin/time %M (the child's peak resident set)" : "the child's process.resourceUsage().maxRSS",
    named_pipes: fifos,
  };
  t.diagnostic(
    `hostile inputs: ${report.inputs} (${report.errors} bad, ${report.valid} valid); slowest ${report.max_seconds} s (${report.max_seconds_input}); ` +
      `largest peak RSS ${report.max_rss_mb} MB (${report.max_rss_input}); ${report.total_seconds} s in all at concurrency ${concurrency}`,
  );
  if (process.env.HOSTILE_REPORT) fs.writeFileSync(process.env.HOSTILE_REPORT, JSON.stringify(report, null, 2) + "\n");
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} hostile inputs misbehaved:\n${failures.join("\n")}`);
  fs.rmSync(TMP, { recursive: true, force: true });
});

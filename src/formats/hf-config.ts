/**
 * Hugging Face `config.json` → ModelConfig, for LlamaForCausalLM checkpoints in the transformers 4 and 5 forms
 * (`rope_theta` or `rope_parameters.rope_theta`, `torch_dtype` or `dtype`, `rope_scaling` or `rope_parameters`).
 * Anything that would change the computation and is not supported is a clear error, never ignored.
 */
import { UserError } from "../util/errors.ts";
import { cut, shown } from "./limits.ts";
import type { ModelConfig, RopeScaling } from "../engine/config.ts";

export interface HfConfigInfo {
  config: ModelConfig;
  dtype: string; // as declared (float32, bfloat16, ...)
  architecture: string;
}

const SUPPORTED_MODEL_TYPES = new Set(["llama"]);

/** Largest size any dimension may declare (2^31 − 1); the tensors on disk bound them further (hf-checkpoint.ts). */
const MAX_SIZE = 2 ** 31 - 1;

export function parseHfConfig(raw: unknown, file: string): HfConfigInfo {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) throw new UserError("E_BAD_CONFIG", `${file}: not a JSON object`);
  const j = raw as Record<string, unknown>;
  const fail = (what: string, hint?: string): never => {
    throw new UserError("E_BAD_CONFIG", `${file}: ${what}`, hint);
  };
  const unsupported = (what: string): never => {
    throw new UserError("E_UNSUPPORTED", `${file}: ${what}`, "colloquy runs LlamaForCausalLM-style decoders (RMSNorm, RoPE, GQA, SwiGLU)");
  };

  const archs = Array.isArray(j.architectures) ? (j.architectures as string[]) : [];
  const modelType = typeof j.model_type === "string" ? j.model_type : "";
  if (!SUPPORTED_MODEL_TYPES.has(modelType)) {
    unsupported(
      `model_type ${modelType ? shown(modelType) : '"(missing)"'}${archs.length ? ` (${cut(archs.join(", "))})` : ""} is not supported`,
    );
  }
  if (archs.length && !archs.includes("LlamaForCausalLM")) unsupported(`architecture ${cut(archs.join(", "))} is not supported`);

  const int = (key: string, fallback?: number): number => {
    const v = j[key] ?? fallback;
    if (typeof v !== "number" || !Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, found ${shown(j[key])}`);
    if ((v as number) > MAX_SIZE) fail(`${key} ${v} is larger than ${MAX_SIZE}`);
    return v as number;
  };
  const num = (v: unknown, key: string, fallback: number): number => {
    if (v === undefined || v === null) return fallback;
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0) fail(`${key} must be a positive number, found ${shown(v)}`);
    return v as number;
  };

  const dim = int("hidden_size");
  const nHeads = int("num_attention_heads");
  const nKvHeads = int("num_key_value_heads", nHeads);
  const headDim = j.head_dim === undefined || j.head_dim === null ? dim / nHeads : int("head_dim");
  if (!Number.isInteger(headDim)) fail(`hidden_size ${dim} is not divisible by num_attention_heads ${nHeads}; set head_dim`);
  if (headDim % 2 !== 0) fail(`head_dim ${headDim} must be even for rotary embedding`);
  if (nHeads % nKvHeads !== 0) fail(`num_attention_heads ${nHeads} is not a multiple of num_key_value_heads ${nKvHeads}`);

  const act = j.hidden_act ?? "silu";
  if (act !== "silu") unsupported(`hidden_act ${shown(act)} (only silu)`);
  if (j.attention_bias === true) unsupported("attention_bias=true (biases in q/k/v/o)");
  if (j.mlp_bias === true) unsupported("mlp_bias=true (biases in the MLP)");
  if (j.sliding_window != null && j.use_sliding_window !== false) unsupported("sliding-window attention");

  // rope: transformers 5 puts theta and scaling together in rope_parameters; 4 uses rope_theta + rope_scaling
  for (const k of ["rope_parameters", "rope_scaling"]) {
    if (j[k] != null && !isObject(j[k])) fail(`${k} must be an object, found ${shown(j[k])}`);
  }
  const ropeParams = (j.rope_parameters ?? null) as Record<string, unknown> | null;
  const ropeTheta = num(ropeParams?.rope_theta ?? j.rope_theta, "rope_theta", 10000);
  const scalingRaw = (j.rope_scaling ?? ropeParams ?? null) as Record<string, unknown> | null;
  const ropeScaling = parseRopeScaling(scalingRaw, file);

  const vocabSize = int("vocab_size");
  const tokenId = (v: unknown, key: string): number => {
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v >= vocabSize) {
      fail(`${key} must be a token id in 0..${vocabSize - 1} (vocab_size), found ${shown(v)}`);
    }
    return v as number;
  };
  const eos = j.eos_token_id;
  const eosIds = (Array.isArray(eos) ? eos : eos == null ? [] : [eos]).map((id) => tokenId(id, "eos_token_id"));
  const config: ModelConfig = {
    dim,
    nLayers: int("num_hidden_layers"),
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim: int("intermediate_size"),
    vocabSize,
    maxSeqLen: int("max_position_embeddings", 2048),
    normEps: num(j.rms_norm_eps, "rms_norm_eps", 1e-6),
    ropeTheta,
    ropeStyle: "half",
    ropeScaling,
    tiedEmbeddings: j.tie_word_embeddings === true,
    bosId: j.bos_token_id == null ? null : tokenId(j.bos_token_id, "bos_token_id"),
    eosIds,
  };
  const dtype = String(j.dtype ?? j.torch_dtype ?? "float32");
  return { config, dtype, architecture: archs[0] ?? "LlamaForCausalLM" };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function parseRopeScaling(s: Record<string, unknown> | null, file: string): RopeScaling | null {
  if (!s) return null;
  const type = String(s.rope_type ?? s.type ?? "default");
  const need = (key: string, integer = false): number => {
    const v = s[key];
    if (typeof v !== "number" || !Number.isFinite(v) || v <= 0 || (integer && !Number.isInteger(v))) {
      throw new UserError(
        "E_BAD_CONFIG",
        `${file}: rope scaling "${type}" needs a number ${key} above 0${integer ? " (an integer)" : ""}, found ${shown(v)}`,
      );
    }
    return v;
  };
  switch (type) {
    case "default":
      return null;
    case "linear":
      return { type: "linear", factor: need("factor") };
    case "llama3": {
      const scaling = {
        type: "llama3" as const,
        factor: need("factor"),
        lowFreqFactor: need("low_freq_factor"),
        highFreqFactor: need("high_freq_factor"),
        originalMaxPositions: need("original_max_position_embeddings", true),
      };
      if (scaling.highFreqFactor <= scaling.lowFreqFactor) {
        throw new UserError(
          "E_BAD_CONFIG",
          `${file}: rope scaling "llama3" needs high_freq_factor (${scaling.highFreqFactor}) above low_freq_factor (${scaling.lowFreqFactor})`,
        );
      }
      return scaling;
    }
    default:
      throw new UserError("E_UNSUPPORTED", `${file}: rope scaling type "${type}" is not supported`, "supported: default, linear, llama3");
  }
}

/** The config.json colloquy writes for its own checkpoints (transformers 4 keys, which 5 also reads). */
export function toHfConfig(c: ModelConfig): Record<string, unknown> {
  if (c.ropeStyle !== "half") throw new Error("only rotate-half models can be written as Hugging Face checkpoints");
  const out: Record<string, unknown> = {
    architectures: ["LlamaForCausalLM"],
    model_type: "llama",
    hidden_size: c.dim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    intermediate_size: c.hiddenDim,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    hidden_act: "silu",
    attention_bias: false,
    mlp_bias: false,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: "float32",
    bos_token_id: c.bosId,
    eos_token_id: c.eosIds.length === 1 ? c.eosIds[0] : c.eosIds,
  };
  if (c.ropeScaling?.type === "linear") out.rope_scaling = { rope_type: "linear", factor: c.ropeScaling.factor };
  if (c.ropeScaling?.type === "llama3") {
    const s = c.ropeScaling;
    out.rope_scaling = {
      rope_type: "llama3",
      factor: s.factor,
      low_freq_factor: s.lowFreqFactor,
      high_freq_factor: s.highFreqFactor,
      original_max_position_embeddings: s.originalMaxPositions,
    };
  }
  return out;
}

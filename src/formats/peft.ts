/**
 * PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`, tensors named
 * `base_model.model.model.layers.{l}.{self_attn|mlp}.{x}_proj.lora_{A|B}.weight`, A (r, in), B (out, r).
 * Adapters written here carry every key and tensor name PEFT writes (checked against an adapter PEFT saved), and
 * PEFT's load here. `readPeftAdapter` gives
 * the Backend seam's plain data (for `backend.importAdapter`); `loadPeftAdapter` an engine Adapter.
 */
import fs from "node:fs";
import path from "node:path";
import { adapterTensors, writeAdapterTensors } from "../engine/adapter-state.ts";
import type { AdapterState, AdapterTensor } from "../engine/backend.ts";
import type { ModelConfig } from "../engine/config.ts";
import { type Adapter, type LoraConfig, createAdapter, loraSizeTable, LORA_TARGET_ALIASES } from "../engine/lora.ts";
import { HF_LINEAR_PATH, LINEAR_KINDS, type LinearKind } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { checkMemory, readJsonBounded, shown } from "./limits.ts";
import { PatternError, compileFullMatch } from "./module-pattern.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

/**
 * adapter_config.json → LoraConfig. `nLayers`: the model's layers, against whose module names a regex
 * `target_modules` is matched (it must select the same linear layers in every layer).
 */
export function parseAdapterConfig(raw: unknown, file: string, nLayers = 1): LoraConfig {
  const fail = (what: string, hint?: string): never => {
    throw new UserError("E_BAD_ADAPTER", `${file}: ${what}`, hint);
  };
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail("not a JSON object");
  const j = raw as Record<string, unknown>;
  if (j.peft_type !== undefined && j.peft_type !== "LORA") fail(`peft_type ${shown(j.peft_type)} is not LORA`);
  const rank = j.r;
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank <= 0 || rank > MAX_RANK) {
    fail(`r must be a positive integer (at most ${MAX_RANK}), found ${shown(rank)}`);
  }
  const alpha = j.lora_alpha ?? rank;
  if (typeof alpha !== "number" || !(alpha > 0) || !Number.isFinite(alpha))
    fail(`lora_alpha must be a positive number, found ${shown(alpha)}`);
  const empty = (v: unknown) => v == null || (typeof v === "object" && Object.keys(v as object).length === 0);
  for (const [key, ok] of [
    ["use_dora", (v: unknown) => !v],
    ["fan_in_fan_out", (v: unknown) => !v],
    ["bias", (v: unknown) => v === undefined || v === "none"],
    ["lora_bias", (v: unknown) => !v],
    ["layers_to_transform", (v: unknown) => v == null],
    ["layer_replication", (v: unknown) => v == null],
    ["modules_to_save", empty],
    ["exclude_modules", empty],
    ["target_parameters", empty],
    ["trainable_token_indices", empty],
    ["rank_pattern", empty],
    ["alpha_pattern", empty],
    ["alora_invocation_tokens", (v: unknown) => v == null],
    ["use_qalora", (v: unknown) => !v],
    ["use_bdlora", (v: unknown) => !v],
    ["arrow_config", (v: unknown) => v == null],
    ["kasa_config", (v: unknown) => v == null],
    ["monteclora_config", (v: unknown) => v == null],
    ["velora_config", (v: unknown) => v == null],
  ] as const) {
    if (!ok(j[key]))
      throw new UserError("E_UNSUPPORTED", `${file}: ${key}=${shown(j[key])} is not supported`, "colloquy reads plain LoRA adapters");
  }
  return {
    rank: rank as number,
    alpha: alpha as number,
    rslora: j.use_rslora === true,
    targets: parseTargets(j.target_modules, file, nLayers),
  };
}

/** Largest LoRA rank read (far above any adapter's; it bounds what an adapter_config.json can make colloquy allocate). */
const MAX_RANK = 65536;

/**
 * PEFT's semantics: "all-linear"; a string is a regex full-matched against each module name (here by a linear-time
 * matcher, so that no pattern can hang colloquy); a list names modules by suffix.
 */
function parseTargets(raw: unknown, file: string, nLayers: number): LinearKind[] {
  if (raw === "all-linear") return [...LINEAR_KINDS];
  if (typeof raw === "string") return regexTargets(raw, file, nLayers);
  if (!Array.isArray(raw) || raw.length === 0) {
    throw new UserError("E_BAD_ADAPTER", `${file}: target_modules must be a regex or a non-empty list, found ${shown(raw)}`);
  }
  const kinds = new Set<LinearKind>();
  for (const name of raw) {
    const kind = typeof name === "string" && Object.hasOwn(LORA_TARGET_ALIASES, name) ? LORA_TARGET_ALIASES[name] : undefined;
    if (!kind) {
      throw new UserError(
        "E_UNSUPPORTED",
        `${file}: target module ${shown(name)} is not a LLaMA linear layer`,
        "targets: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
      );
    }
    kinds.add(kind);
  }
  return LINEAR_KINDS.filter((k) => kinds.has(k));
}

/** The linear layers a target_modules regex selects: the same in every layer, and nothing outside the layers. */
function regexTargets(pattern: string, file: string, nLayers: number): LinearKind[] {
  let matches: (name: string) => boolean;
  try {
    matches = compileFullMatch(pattern);
  } catch (e) {
    if (!(e instanceof PatternError)) throw e;
    throw new UserError(
      "E_BAD_ADAPTER",
      `${file}: target_modules regex ${shown(pattern)} cannot be used: ${e.message}`,
      "a Python regex that PEFT full-matches against module names, e.g. .*\\.(q_proj|v_proj)",
    );
  }
  // PEFT matches the base model's module names; colloquy's older writers matched the wrapped names too
  const selects = (name: string) => matches(`model.${name}`) || matches(`base_model.model.model.${name}`);
  const kindsOf = (l: number) => LINEAR_KINDS.filter((k) => selects(`layers.${l}.${HF_LINEAR_PATH[k]}`));
  const kinds = kindsOf(0);
  if (kinds.length === 0) throw new UserError("E_BAD_ADAPTER", `${file}: target_modules regex ${shown(pattern)} selects no linear layer`);
  for (let l = 1; l < nLayers; l++) {
    const here = kindsOf(l);
    if (here.join() !== kinds.join()) {
      throw new UserError(
        "E_UNSUPPORTED",
        `${file}: target_modules regex ${shown(pattern)} selects ${kinds.join(",")} in layer 0 but ${here.join(",") || "nothing"} in layer ${l}`,
        "colloquy adapts the same linear layers in every layer",
      );
    }
  }
  for (const other of ["embed_tokens", "lm_head"]) {
    if (matches(`model.${other}`) || matches(other)) {
      throw new UserError(
        "E_UNSUPPORTED",
        `${file}: target_modules regex ${shown(pattern)} selects ${other}`,
        "colloquy adapts linear layers inside the decoder layers only",
      );
    }
  }
  return kinds;
}

/**
 * Reads a PEFT adapter folder for a model of config `model` as plain data (tensors in canonical order, no optimizer
 * state); names and shapes are checked against the model.
 */
export function readPeftAdapter(dir: string, model: ModelConfig): AdapterState {
  const cfgFile = path.join(dir, "adapter_config.json");
  const lora = parseAdapterConfig(readJsonBounded(cfgFile, "adapter config", 16 * 2 ** 20), cfgFile, model.nLayers);
  const weightsFile = path.join(dir, "adapter_model.safetensors");
  if (!fs.existsSync(weightsFile)) {
    const hint = fs.existsSync(path.join(dir, "adapter_model.bin")) ? "save the adapter with safe_serialization=True" : undefined;
    throw new UserError("E_NOT_FOUND", `adapter weights not found: ${weightsFile}`, hint);
  }
  const tensors: AdapterTensor[] = [];
  const f = SafetensorsFile.open(weightsFile);
  try {
    const names = new Map<string, string>(); // canonical → stored (PEFT may keep the ".default" adapter name)
    for (const stored of f.tensors.keys()) names.set(stored.replace(/\.default\.weight$/, ".weight"), stored);
    const table = loraSizeTable(model, lora);
    checkMemory(4 * table.reduce((n, t) => n + t.shape.reduce((a, b) => a * b, 1), 0), cfgFile, `an adapter of rank ${lora.rank}`);
    for (const t of table) {
      const stored = names.get(t.name);
      if (!stored) {
        throw new UserError(
          "E_MISSING_TENSOR",
          `${weightsFile}: tensor ${t.name} is missing`,
          "adapter_config.json lists a target or layer that the weights do not have",
        );
      }
      const shape = f.info(stored).shape;
      if (shape.join(",") !== t.shape.join(",")) {
        throw new UserError(
          "E_SHAPE",
          `${weightsFile}: tensor ${t.name} has shape [${shape.join(", ")}] but this model needs [${t.shape.join(", ")}]`,
          "the adapter was trained for a different base model",
        );
      }
      tensors.push({ name: t.name, shape: t.shape, data: f.readF32(stored) });
      names.delete(t.name);
    }
    const extra = [...names.keys()].filter((n) => /\.layers\.(\d+)\./.test(n));
    if (extra.length) {
      throw new UserError(
        "E_SHAPE",
        `${weightsFile}: tensor ${extra[0]} does not fit this model (${extra.length} unexpected tensors)`,
        "the adapter was trained for a different base model",
      );
    }
  } finally {
    f.close();
  }
  return { lora, tensors, optimizer: null };
}

/** Loads a PEFT adapter folder as an engine Adapter (engine-level users; code above the engine uses readPeftAdapter). */
export function loadPeftAdapter(dir: string, model: ModelConfig, name = path.basename(dir)): Adapter {
  const state = readPeftAdapter(dir, model);
  const adapter = createAdapter(name, model, state.lora);
  writeAdapterTensors(adapter, state.tensors);
  return adapter;
}

/**
 * Writes an adapter in PEFT's format: its plain data (Backend.exportAdapter; the optimizer state is not written), or
 * an engine Adapter.
 */
export function savePeftAdapter(
  dir: string,
  adapter: Pick<AdapterState, "lora" | "tensors"> | Adapter,
  baseModel: string | null = null,
): void {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, TensorToWrite> = {};
  for (const t of "weights" in adapter ? adapterTensors(adapter) : adapter.tensors)
    tensors[t.name] = { dtype: "F32", shape: t.shape, data: t.data };
  writeSafetensors(path.join(dir, "adapter_model.safetensors"), tensors, { format: "pt" });
  // every key PEFT's LoraConfig writes (peft 0.21, as in ../shared/fixtures' adapter), with PEFT's defaults for
  // what colloquy does not use; task_type CAUSAL_LM, so no auto_mapping (PEFT writes one only without a task type)
  const config: Record<string, unknown> = {
    ...PEFT_LORA_DEFAULTS,
    base_model_name_or_path: baseModel,
    r: adapter.lora.rank,
    lora_alpha: adapter.lora.alpha,
    use_rslora: adapter.lora.rslora,
    target_modules: adapter.lora.targets.map((k) => HF_LINEAR_PATH[k].split(".")[1]),
  };
  const sorted = Object.fromEntries(
    Object.keys(config)
      .sort()
      .map((k) => [k, config[k]]),
  ); // PEFT writes sort_keys=True
  writeFileAtomic(path.join(dir, "adapter_config.json"), JSON.stringify(sorted, null, 2) + "\n");
}

/** PEFT's LoraConfig fields and their defaults (peft_version: null, which PEFT fills in with its own on loading). */
const PEFT_LORA_DEFAULTS: Readonly<Record<string, unknown>> = {
  alora_invocation_tokens: null,
  alpha_pattern: {},
  arrow_config: null,
  auto_mapping: null,
  base_model_name_or_path: null,
  bias: "none",
  corda_config: null,
  ensure_weight_tying: false,
  eva_config: null,
  exclude_modules: null,
  fan_in_fan_out: false,
  inference_mode: true,
  init_lora_weights: true,
  kasa_config: null,
  layer_replication: null,
  layers_pattern: null,
  layers_to_transform: null,
  loftq_config: {},
  lora_alpha: 8,
  lora_bias: false,
  lora_dropout: 0,
  lora_ga_config: null,
  megatron_config: null,
  megatron_core: "megatron.core",
  modules_to_save: null,
  monteclora_config: null,
  peft_type: "LORA",
  peft_version: null,
  qalora_group_size: 16,
  r: 8,
  rank_pattern: {},
  revision: null,
  target_modules: null,
  target_parameters: null,
  task_type: "CAUSAL_LM",
  trainable_token_indices: null,
  use_bdlora: null,
  use_dora: false,
  use_qalora: false,
  use_rslora: false,
  velora_config: null,
};

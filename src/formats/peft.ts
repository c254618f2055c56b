/**
 * PEFT LoRA adapters: `adapter_config.json` + `adapter_model.safetensors`, tensors named
 * `base_model.model.model.layers.{l}.{self_attn|mlp}.{x}_proj.lora_{A|B}.weight`, A (r, in), B (out, r).
 * Adapters written here load in PEFT (`PeftModel.from_pretrained`), and PEFT's load here. `readPeftAdapter` gives
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
import { readJsonFile, writeFileAtomic } from "../util/fs.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "./safetensors.ts";

export function parseAdapterConfig(raw: unknown, file: string): LoraConfig {
  const j = (raw ?? {}) as Record<string, unknown>;
  const fail = (what: string, hint?: string): never => {
    throw new UserError("E_BAD_ADAPTER", `${file}: ${what}`, hint);
  };
  if (j.peft_type !== undefined && j.peft_type !== "LORA") fail(`peft_type ${JSON.stringify(j.peft_type)} is not LORA`);
  const rank = j.r;
  if (typeof rank !== "number" || !Number.isInteger(rank) || rank <= 0) fail(`r must be a positive integer, found ${JSON.stringify(rank)}`);
  const alpha = j.lora_alpha ?? rank;
  if (typeof alpha !== "number" || !(alpha > 0)) fail(`lora_alpha must be a positive number, found ${JSON.stringify(alpha)}`);
  for (const [key, ok] of [
    ["use_dora", (v: unknown) => !v],
    ["fan_in_fan_out", (v: unknown) => !v],
    ["bias", (v: unknown) => v === undefined || v === "none"],
    ["layers_to_transform", (v: unknown) => v == null],
    ["modules_to_save", (v: unknown) => v == null || (Array.isArray(v) && v.length === 0)],
    ["rank_pattern", (v: unknown) => v == null || Object.keys(v as object).length === 0],
    ["alpha_pattern", (v: unknown) => v == null || Object.keys(v as object).length === 0],
  ] as const) {
    if (!ok(j[key]))
      throw new UserError(
        "E_UNSUPPORTED",
        `${file}: ${key}=${JSON.stringify(j[key])} is not supported`,
        "colloquy reads plain LoRA adapters",
      );
  }
  return { rank: rank as number, alpha: alpha as number, rslora: j.use_rslora === true, targets: parseTargets(j.target_modules, file) };
}

function parseTargets(raw: unknown, file: string): LinearKind[] {
  if (raw === "all-linear") return [...LINEAR_KINDS];
  if (typeof raw === "string") {
    // a regex that PEFT full-matches against module names; it must select the same kinds in every layer
    const re = new RegExp(`^(?:${raw})$`);
    const kinds = LINEAR_KINDS.filter(
      (k) => re.test(`model.layers.0.${HF_LINEAR_PATH[k]}`) || re.test(`base_model.model.model.layers.0.${HF_LINEAR_PATH[k]}`),
    );
    if (kinds.length === 0) throw new UserError("E_BAD_ADAPTER", `${file}: target_modules regex ${raw} selects no linear layer`);
    return kinds;
  }
  if (!Array.isArray(raw) || raw.length === 0) throw new UserError("E_BAD_ADAPTER", `${file}: target_modules must be a non-empty list`);
  const kinds = new Set<LinearKind>();
  for (const name of raw) {
    const kind = LORA_TARGET_ALIASES[String(name)];
    if (!kind) {
      throw new UserError(
        "E_UNSUPPORTED",
        `${file}: target module ${JSON.stringify(name)} is not a LLaMA linear layer`,
        "targets: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj",
      );
    }
    kinds.add(kind);
  }
  return LINEAR_KINDS.filter((k) => kinds.has(k));
}

/**
 * Reads a PEFT adapter folder for a model of config `model` as plain data (tensors in canonical order, no optimizer
 * state); names and shapes are checked against the model.
 */
export function readPeftAdapter(dir: string, model: ModelConfig): AdapterState {
  const cfgFile = path.join(dir, "adapter_config.json");
  const lora = parseAdapterConfig(readJsonFile(cfgFile, "adapter config"), cfgFile);
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
    for (const t of loraSizeTable(model, lora)) {
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
  const config = {
    peft_type: "LORA",
    task_type: "CAUSAL_LM",
    base_model_name_or_path: baseModel,
    r: adapter.lora.rank,
    lora_alpha: adapter.lora.alpha,
    use_rslora: adapter.lora.rslora,
    target_modules: adapter.lora.targets.map((k) => HF_LINEAR_PATH[k].split(".")[1]),
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_dora: false,
    init_lora_weights: true,
    inference_mode: true,
    modules_to_save: null,
    layers_to_transform: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  writeFileAtomic(path.join(dir, "adapter_config.json"), JSON.stringify(config, null, 2) + "\n");
}

/**
 * The model that a verb's model keys (formats/model-keys.ts) name: loaded from disk (the embedded default model,
 * built on first use, when none is named) and put behind the backend they choose.
 */
import { type Backend, CpuBackend } from "../engine/backend.ts";
import { Transformer } from "../engine/transformer.ts";
import { type LoadedModel, loadModel, requireTokenizer } from "../formats/load-model.ts";
import { resolveModelSource } from "../formats/hub/resolve.ts";
import { type ModelKeys, refuseTorchKeys } from "../formats/model-keys.ts";
import { readPeftAdapter } from "../formats/peft.ts";
import { ensureDefaultModel } from "../pretrain/default-model.ts";
import { openTorchBackend } from "../torch/backend.ts";
import type { RunPlan } from "../torch/memory.ts";
import { UserError } from "../util/errors.ts";

/** The backends by the name the `backend` key takes. */
const BACKENDS: Record<ModelKeys["backend"], (loaded: LoadedModel, k: ModelKeys, o: OpenOptions) => Promise<Backend>> = {
  cpu: async (loaded, k) => {
    refuseTorchKeys(k);
    return new CpuBackend(new Transformer(loaded.config, loaded.weights));
  },
  torch: (loaded, k, o) =>
    openTorchBackend({
      modelPath: loaded.path,
      config: loaded.config,
      weights: loaded.weights,
      device: k.device,
      dtype: k.dtype,
      python: k.python ?? undefined,
      maxTokensPerPass: k.maxTokensPerPass,
      plan: o.plan,
      quiet: o.quiet,
      nproc: k.nproc,
      remote: k.worker ? { address: k.worker, tokenFile: k.tokenFile } : undefined,
    }),
};

export interface OpenedModel {
  loaded: LoadedModel;
  modelPath: string; // the folder or file loaded, or the Hub id it came from (the default model's cache folder when none was named)
}

async function openLoaded(k: Pick<ModelKeys, "model" | "tokenizer">, o: { quiet?: boolean } = {}): Promise<OpenedModel> {
  const modelPath = k.model ?? ensureDefaultModel({ quiet: o.quiet });
  return { loaded: loadModel(await resolveModelSource(modelPath, "model", o), k.tokenizer), modelPath };
}

export interface OpenOptions {
  quiet?: boolean; // no start-up lines
  plan?: RunPlan; // the adapters the verb will hold and train (torch: the memory check before the weights load)
}

/** The model behind its backend (adapters are added through the backend's importAdapter). */
export async function openBackend(k: ModelKeys, o: OpenOptions = {}): Promise<OpenedModel & { backend: Backend }> {
  const opened = await openLoaded(k, o);
  return { ...opened, backend: await BACKENDS[k.backend](opened.loaded, k, o) };
}

/** The model behind its backend with at most one adapter folder on it; `adapter` is its name there (null: none). */
export async function openWithAdapter(
  k: ModelKeys,
  adapterDir: string | null,
): Promise<OpenedModel & { backend: Backend; adapter: string | null }> {
  const opened = await openBackend(k);
  if (!adapterDir) return { ...opened, adapter: null };
  await opened.backend.importAdapter(ADAPTER_NAME, readPeftAdapter(await resolveModelSource(adapterDir, "adapter"), opened.loaded.config));
  return { ...opened, adapter: ADAPTER_NAME };
}

const ADAPTER_NAME = "adapter";

/**
 * The prompt's ids: `ids` exactly as given; `prompt` through the tokenizer with its own special-token convention
 * (HF: its post-processor; llama2.c: BOS first). An empty or absent prompt is BOS alone.
 */
export function promptIds(s: OpenedModel, p: { prompt: string | null; ids: number[] | null }): number[] {
  if (p.ids !== null && p.prompt !== null) throw new UserError("E_BAD_FLAG", "give --prompt or --ids, not both");
  if (p.ids !== null) return p.ids;
  if (p.prompt) return requireTokenizer(s.loaded).encode(p.prompt, { addSpecial: true });
  const bos = s.loaded.tokenizer?.bosId ?? s.loaded.config.bosId;
  if (bos === null || bos === undefined)
    throw new UserError("E_EMPTY_PROMPT", "empty prompt and the model has no BOS token", "give --prompt or --ids");
  return [bos];
}

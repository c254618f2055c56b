/**
 * The model that a verb's model keys (formats/model-keys.ts) name: loaded from disk (the embedded default model,
 * built on first use, when none is named) and put behind the backend they choose.
 */
import { type Backend, CpuBackend } from "../engine/backend.ts";
import { Transformer } from "../engine/transformer.ts";
import { type LoadedModel, loadModel, requireTokenizer } from "../formats/load-model.ts";
import type { ModelKeys } from "../formats/model-keys.ts";
import { readPeftAdapter } from "../formats/peft.ts";
import { ensureDefaultModel } from "../pretrain/default-model.ts";
import { openTorchBackend } from "../torch/backend.ts";
import { UserError } from "../util/errors.ts";

/** The backends by the name the `backend` key takes. */
const BACKENDS: Record<ModelKeys["backend"], (loaded: LoadedModel, k: ModelKeys) => Promise<Backend>> = {
  cpu: async (loaded) => new CpuBackend(new Transformer(loaded.config, loaded.weights)),
  torch: (loaded, k) =>
    openTorchBackend({
      modelPath: loaded.path,
      config: loaded.config,
      weights: loaded.weights,
      device: k.device,
      dtype: k.dtype,
      python: k.python ?? undefined,
    }),
};

export interface OpenedModel {
  loaded: LoadedModel;
  modelPath: string; // the folder or file loaded (the default model's cache folder when none was named)
}

function openLoaded(k: Pick<ModelKeys, "model" | "tokenizer">, o: { quiet?: boolean } = {}): OpenedModel {
  const modelPath = k.model ?? ensureDefaultModel({ quiet: o.quiet });
  return { loaded: loadModel(modelPath, k.tokenizer), modelPath };
}

/** The model behind its backend (adapters are added through the backend's importAdapter). */
export async function openBackend(k: ModelKeys, o: { quiet?: boolean } = {}): Promise<OpenedModel & { backend: Backend }> {
  const opened = openLoaded(k, o);
  return { ...opened, backend: await BACKENDS[k.backend](opened.loaded, k) };
}

/** The model behind its backend with at most one adapter folder on it; `adapter` is its name there (null: none). */
export async function openWithAdapter(
  k: ModelKeys,
  adapterDir: string | null,
): Promise<OpenedModel & { backend: Backend; adapter: string | null }> {
  const opened = await openBackend(k);
  if (!adapterDir) return { ...opened, adapter: null };
  await opened.backend.importAdapter(ADAPTER_NAME, readPeftAdapter(adapterDir, opened.loaded.config));
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

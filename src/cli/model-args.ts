/**
 * Flags shared by every command that runs a model (`--model`, `--tokenizer`, `--adapter`), and how a prompt
 * becomes token ids.
 */
import { Transformer } from "../engine/transformer.ts";
import type { Adapter } from "../engine/lora.ts";
import { type LoadedModel, loadModel, requireTokenizer } from "../formats/load-model.ts";
import { loadPeftAdapter } from "../formats/peft.ts";
import { ensureDefaultModel } from "../env/default-model.ts";
import { UserError } from "../util/errors.ts";
import { idList, optStr, str } from "./args.ts";

export const modelArgs = {
  model: { type: "string", description: "model: a Hugging Face folder or a llama2.c .bin file", required: true, valueHint: "path" },
  tokenizer: { type: "string", description: "tokenizer.json / folder (HF) or tok*.bin (llama2.c); default: the model's own", valueHint: "path" },
  adapter: { type: "string", description: "a PEFT LoRA adapter folder to apply", valueHint: "dir" },
} as const;

export interface ModelSession {
  loaded: LoadedModel;
  model: Transformer;
  adapter: Adapter | null;
}

/** `--model` when given; otherwise (commands where it is optional) the embedded default model, built on first use. */
export function modelPath(args: Record<string, unknown>, optional = false): string {
  const given = optStr(args.model as string | undefined);
  if (given || !optional) return str(given, "model");
  return ensureDefaultModel();
}

export function openModel(args: Record<string, unknown>, modelOptional = false): ModelSession {
  const loaded = loadModel(modelPath(args, modelOptional), optStr(args.tokenizer as string | undefined));
  const model = new Transformer(loaded.config, loaded.weights);
  const adapterDir = optStr(args.adapter as string | undefined);
  const adapter = adapterDir ? loadPeftAdapter(adapterDir, loaded.config) : null;
  return { loaded, model, adapter };
}

/**
 * The prompt's ids: `--ids` exactly as given; `--prompt` through the tokenizer with its own special-token
 * convention (HF: its post-processor; llama2.c: BOS first). An empty or absent prompt is BOS alone.
 */
export function promptIds(s: ModelSession, args: Record<string, unknown>): number[] {
  if (args.ids !== undefined && args.prompt !== undefined) throw new UserError("E_BAD_FLAG", "give --prompt or --ids, not both");
  if (args.ids !== undefined) return idList(args.ids as string, "ids");
  const text = optStr(args.prompt as string | undefined) ?? "";
  if (text !== "") return requireTokenizer(s.loaded).encode(text, { addSpecial: true });
  const bos = s.loaded.tokenizer?.bosId ?? s.loaded.config.bosId;
  if (bos === null || bos === undefined) throw new UserError("E_EMPTY_PROMPT", "empty prompt and the model has no BOS token", "give --prompt or --ids");
  return [bos];
}

/**
 * The keys that say which model to load and where it runs, defined once for every verb that loads a model (as
 * flags) and for `train` (as config keys). Adapters are named per verb (a slot's, a served model's), so only their
 * type lives here.
 */
import { z } from "zod";
import { type KeyDef, type Values, key } from "../util/keys.ts";

export const MODEL_KEYS = {
  model: key(
    z.string().min(1).nullable(),
    null as string | null,
    "base model: a Hugging Face folder or a llama2.c .bin (default: the embedded default model, built on first use)",
    { hint: "path" },
  ),
  tokenizer: key(
    z.string().min(1).nullable(),
    null as string | null,
    "tokenizer: tokenizer.json or its folder (HF), tok*.bin (llama2.c); default: the model's own",
    { hint: "path" },
  ),
  backend: key(z.enum(["cpu"]), "cpu", "where the model runs: cpu (colloquy's own engine, in process)"),
};

export type ModelKeys = Values<typeof MODEL_KEYS>;

/** A verb's adapter flag: PEFT LoRA adapter folders, repeatable; `about` says what the verb does with them. */
export function adapterKey(about: string, hint = "dir"): KeyDef<z.ZodArray<z.ZodString>> {
  return key(z.array(z.string().min(1)), [] as string[], about, { repeat: true, verbatim: true, hint });
}

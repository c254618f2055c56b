import { z } from "zod";
import { MODEL_KEYS } from "../../formats/model-keys.ts";
import { decodeContinuation } from "../../formats/tokenizer.ts";
import { UserError } from "../../util/errors.ts";
import { key } from "../../util/keys.ts";
import { Rng } from "../../util/rng.ts";
import { openWithAdapter, promptIds } from "../open-model.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

const GENERATE_FLAGS = {
  adapter: key(
    z.string().min(1).nullable(),
    null as string | null,
    "a PEFT LoRA adapter to apply: a folder or a Hub id org/name[@revision]",
    { hint: "dir" },
  ),
  prompt: key(z.string(), "", "prompt text (HF: the tokenizer's special tokens are added; llama2.c: BOS first); default: BOS alone", {
    hint: "text",
  }),
  ids: key(
    z.array(z.number().int().nonnegative()),
    [] as number[],
    "prompt token ids, comma-separated, used exactly as given (instead of --prompt)",
    { hint: "i,j,k" },
  ),
  maxTokens: key(z.number().int().nonnegative().nullable(), null as number | null, "tokens to generate (required)", { hint: "N" }),
  temperature: key(z.number().nonnegative(), 1, "sampling temperature; 0 = greedy", { hint: "T" }),
  topK: key(z.number().int().nonnegative(), 0, "keep the K most likely tokens; 0 = off", { hint: "K" }),
  topP: key(z.number().min(0).max(1), 1, "nucleus sampling mass; 1 = off", { hint: "P" }),
  seed: key(z.number().int(), 0, "random seed", { hint: "S" }),
  stop: key(z.array(z.string()), [] as string[], "stop string, taken verbatim", { repeat: true, verbatim: true, hint: "text" }),
  ignoreEos: key(z.boolean(), false, "keep generating after the end-of-sequence token"),
  json: key(z.boolean(), false, 'print {"ids": [...generated], "text": "...", "finish_reason": "..."}'),
};

export default defineVerb({
  name: "generate",
  description: "Generate text from a model (and optionally a LoRA adapter) with a KV cache.",
  keys: MODEL_KEYS,
  flags: GENERATE_FLAGS,
  async run({ keys, flags, argv }) {
    if (flags.maxTokens === null) throw new UserError("E_MISSING_FLAG", "--max-tokens is required", "see colloquy generate --help");
    const given = (k: string) => k in argv.values;
    if (given("prompt") && given("ids")) throw new UserError("E_BAD_FLAG", "give --prompt or --ids, not both");
    const s = await openWithAdapter(keys, flags.adapter);
    const prompt = promptIds(s, { prompt: given("prompt") ? flags.prompt : null, ids: given("ids") ? flags.ids : null });
    const tok = s.loaded.tokenizer;
    const stop = flags.stop;
    if (stop.length && !tok) throw new UserError("E_NO_TOKENIZER", "--stop needs a tokenizer to decode the text", "pass --tokenizer");
    const t0 = performance.now();
    const request = {
      prompt,
      adapter: s.adapter,
      maxTokens: flags.maxTokens,
      sampling: { temperature: flags.temperature, topK: flags.topK, topP: flags.topP },
      stopStrings: stop,
      ignoreEos: flags.ignoreEos,
    };
    const decode = tok ? (ids: number[]) => decodeContinuation(tok, prompt, ids) : undefined;
    const [r] = await s.backend.sample([request], [new Rng(flags.seed).u32()], decode);
    const seconds = (performance.now() - t0) / 1000;
    if (flags.json) return printJson({ ids: r.ids, text: r.text, finish_reason: r.finishReason });
    const shown = tok ? tok.decode(prompt, { skipSpecial: true }) + r.text : r.ids.join(",");
    process.stdout.write(shown + "\n");
    info(
      `${r.ids.length} tokens in ${seconds.toFixed(2)} s (${(r.ids.length / seconds).toFixed(1)} tokens/s), finished: ${r.finishReason}`,
    );
  },
});

import { defineCommand } from "citty";
import { generate } from "../../engine/generate.ts";
import { decodeContinuation } from "../../formats/tokenizer.ts";
import { UserError } from "../../util/errors.ts";
import { Rng } from "../../util/rng.ts";
import { int, many, num } from "../args.ts";
import { modelArgs, openModel, promptIds } from "../model-args.ts";
import { info, printJson } from "../output.ts";

export const generateArgs = {
  ...modelArgs,
  prompt: { type: "string", description: "prompt text (HF: the tokenizer's special tokens are added; llama2.c: BOS first)" },
  ids: { type: "string", description: "prompt token ids, comma-separated, used exactly as given", valueHint: "i,j,k" },
  "max-tokens": { type: "string", description: "tokens to generate", required: true, valueHint: "N" },
  temperature: { type: "string", description: "sampling temperature; 0 = greedy (default 1)", valueHint: "T" },
  "top-k": { type: "string", description: "keep the K most likely tokens (default 0 = off)", valueHint: "K" },
  "top-p": { type: "string", description: "nucleus sampling mass (default 1 = off)", valueHint: "P" },
  seed: { type: "string", description: "random seed (default 0)", valueHint: "S" },
  stop: { type: "string", description: "stop string (repeatable)" },
  "ignore-eos": { type: "boolean", description: "keep generating after the end-of-sequence token" },
  json: { type: "boolean", description: 'print {"ids": [...generated], "text": "..."}' },
} as const;

export default defineCommand({
  meta: { name: "generate", description: "Generate text from a model (and optionally a LoRA adapter) with a KV cache." },
  args: generateArgs,
  run({ args, rawArgs }) {
    const s = openModel(args);
    const prompt = promptIds(s, args);
    const tok = s.loaded.tokenizer;
    const stop = many(rawArgs, "stop");
    if (stop.length && !tok) throw new UserError("E_NO_TOKENIZER", "--stop needs a tokenizer to decode the text", "pass --tokenizer");
    const t0 = performance.now();
    const [r] = generate(s.model, [{
      prompt,
      adapter: s.adapter,
      maxTokens: int(args["max-tokens"], "max-tokens", 0, { min: 0 }),
      sampling: {
        temperature: num(args.temperature, "temperature", 1, { min: 0 }),
        topK: int(args["top-k"], "top-k", 0, { min: 0 }),
        topP: num(args["top-p"], "top-p", 1, { min: 0, max: 1 }),
      },
      stopStrings: stop,
      ignoreEos: Boolean(args["ignore-eos"]),
    }], {
      rng: new Rng(int(args.seed, "seed", 0)),
      decode: tok ? (ids) => decodeContinuation(tok, prompt, ids) : undefined,
    });
    const seconds = (performance.now() - t0) / 1000;
    if (args.json) return printJson({ ids: r.ids, text: r.text, finish_reason: r.finishReason });
    const shown = tok ? tok.decode(prompt, { skipSpecial: true }) + r.text : r.ids.join(",");
    process.stdout.write(shown + "\n");
    info(`${r.ids.length} tokens in ${seconds.toFixed(2)} s (${(r.ids.length / seconds).toFixed(1)} tokens/s), finished: ${r.finishReason}`);
  },
});

import { z } from "zod";
import { requireTokenizer } from "../../formats/load-model.ts";
import { MODEL_KEYS } from "../../formats/model-keys.ts";
import { UserError } from "../../util/errors.ts";
import { key } from "../../util/keys.ts";
import { openWithAdapter } from "../open-model.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

const SCORE_FLAGS = {
  adapter: key(
    z.string().min(1).nullable(),
    null as string | null,
    "a PEFT LoRA adapter to apply: a folder or a Hub id org/name[@revision]",
    { hint: "dir" },
  ),
  text: key(z.string(), "", "text to score (tokenized with the tokenizer's special tokens, as generate's --prompt)", { hint: "text" }),
  ids: key(
    z.array(z.number().int().nonnegative()),
    [] as number[],
    "token ids to score, comma-separated, used exactly as given (instead of --text)",
    { hint: "i,j,k" },
  ),
  json: key(z.boolean(), false, 'print {"ids": [...], "logprobs": [null, lp1, ...]}'),
};

export default defineVerb({
  name: "score",
  description: "Log-probability of every token given the tokens before it (natural log).",
  keys: MODEL_KEYS,
  flags: SCORE_FLAGS,
  async run({ keys, flags, argv }) {
    const byIds = "ids" in argv.values;
    if (byIds === "text" in argv.values) throw new UserError("E_BAD_FLAG", "give exactly one of --text or --ids");
    const s = await openWithAdapter(keys, flags.adapter);
    const ids = byIds ? flags.ids : requireTokenizer(s.loaded).encode(flags.text, { addSpecial: true });
    if (ids.length === 0) throw new UserError("E_BAD_FLAG", "nothing to score: the token list is empty");
    const [r] = await s.backend.score([{ tokens: ids, adapter: s.adapter }]);
    const logprobs = Array.from(r.logprobs, (x, i) => (i === 0 ? null : x));
    if (flags.json) return printJson({ ids, logprobs });
    const tok = s.loaded.tokenizer;
    let total = 0;
    ids.forEach((id, i) => {
      const piece = tok ? JSON.stringify(tok.decode([id])) : "";
      const lp = logprobs[i];
      if (lp !== null) total += lp;
      console.log(`${String(i).padStart(5)} ${String(id).padStart(7)} ${lp === null ? "       -" : lp.toFixed(4).padStart(9)}  ${piece}`);
    });
    const n = ids.length - 1;
    info(
      `sum ${total.toFixed(4)} nats over ${n} tokens; mean ${(n ? total / n : 0).toFixed(4)}; perplexity ${(n ? Math.exp(-total / n) : 1).toFixed(3)}`,
    );
  },
});

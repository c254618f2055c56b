import { defineCommand } from "citty";
import { scoreRows } from "../../engine/score.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { UserError } from "../../util/errors.ts";
import { idList } from "../args.ts";
import { modelArgs, openModel } from "../model-args.ts";
import { info, printJson } from "../output.ts";

export const scoreArgs = {
  ...modelArgs,
  text: { type: "string", description: "text to score (tokenized with the tokenizer's special tokens, as --prompt)" },
  ids: { type: "string", description: "token ids to score, comma-separated, used exactly as given", valueHint: "i,j,k" },
  json: { type: "boolean", description: 'print {"ids": [...], "logprobs": [null, lp1, ...]}' },
} as const;

export default defineCommand({
  meta: { name: "score", description: "Log-probability of every token given the tokens before it (natural log)." },
  args: scoreArgs,
  run({ args }) {
    const s = openModel(args);
    if ((args.text === undefined) === (args.ids === undefined)) throw new UserError("E_BAD_FLAG", "give exactly one of --text or --ids");
    const ids = args.ids !== undefined ? idList(args.ids, "ids") : requireTokenizer(s.loaded).encode(String(args.text), { addSpecial: true });
    if (ids.length === 0) throw new UserError("E_BAD_FLAG", "nothing to score: the token list is empty");
    const [r] = scoreRows(s.model, [{ tokens: ids, adapter: s.adapter }]);
    const logprobs = Array.from(r.logprobs, (x, i) => (i === 0 ? null : x));
    if (args.json) return printJson({ ids, logprobs });
    const tok = s.loaded.tokenizer;
    let total = 0;
    ids.forEach((id, i) => {
      const piece = tok ? JSON.stringify(tok.decode([id])) : "";
      const lp = logprobs[i];
      if (lp !== null) total += lp;
      console.log(`${String(i).padStart(5)} ${String(id).padStart(7)} ${lp === null ? "       -" : lp.toFixed(4).padStart(9)}  ${piece}`);
    });
    const n = ids.length - 1;
    info(`sum ${total.toFixed(4)} nats over ${n} tokens; mean ${(n ? total / n : 0).toFixed(4)}; perplexity ${(n ? Math.exp(-total / n) : 1).toFixed(3)}`);
  },
});

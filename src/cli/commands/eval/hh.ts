import fs from "node:fs";
import { z } from "zod";
import { type HhSummary, encodePairs, readHhPairs, scorePairs, summarizeHh, type PairScore } from "../../../eval/hh.ts";
import { formatInterval } from "../../../eval/stats.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { UserError } from "../../../util/errors.ts";
import { key } from "../../../util/keys.ts";
import { progress } from "../../../util/progress.ts";
import { EVAL_MODEL_KEYS, EVAL_TARGET_FLAGS, evalSetup, saveEvalResult } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";
import { defineVerb } from "../../verb.ts";

export const HH_FLAGS = {
  ...EVAL_TARGET_FLAGS,
  data: key(
    z.string().min(1).nullable(),
    null as string | null,
    "HH-RLHF records, .jsonl or .jsonl.gz, one {chosen, rejected} per line (get them with `colloquy data download hh-rlhf`; required)",
    { hint: "file" },
  ),
  limit: key(z.number().int().positive().nullable(), null as number | null, "score only the first N pairs (default: all)", { hint: "N" }),
  details: key(
    z.string().min(1).nullable(),
    null as string | null,
    "write one JSON line per pair: index, and per system both replies' log-probs (summed, per token) and token counts",
    { hint: "file" },
  ),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(
    z.boolean(),
    false,
    "print one JSON object: accuracy, accuracy_per_token, n and 95% intervals (top level: the base model; `systems`: every system)",
  ),
};

const DESCRIPTION =
  'HH-RLHF preference accuracy. Each pair is split at its last "\\n\\nAssistant:"; the model is right when ' +
  "log p(chosen reply | dialogue) > log p(rejected reply | dialogue), compared summed and per reply token (mean). " +
  "A tie counts as half; ties are reported. Intervals: 95% Wilson score. The base model and every adapter " +
  "(--adapter, or all of a run's with --run) are scored side by side. Dialogues longer than the model's context " +
  "window are left-truncated: BOS and the end of the dialogue are kept, the same number of context tokens for both replies.";

function systemJson(name: string, adapter: string | null, s: HhSummary) {
  return {
    system: name,
    adapter,
    n: s.n,
    accuracy: s.accuracy.rate,
    accuracy_ci95: [s.accuracy.low, s.accuracy.high],
    accuracy_per_token: s.accuracy_per_token.rate,
    accuracy_per_token_ci95: [s.accuracy_per_token.low, s.accuracy_per_token.high],
    ties: s.ties,
    ties_per_token: s.ties_per_token,
    mean_margin: s.margin.mean,
    mean_margin_ci95: [s.margin.low, s.margin.high],
    mean_margin_per_token: s.margin_per_token.mean,
    mean_margin_per_token_ci95: [s.margin_per_token.low, s.margin_per_token.high],
  };
}

export default defineVerb({
  name: "eval hh",
  description: DESCRIPTION,
  keys: EVAL_MODEL_KEYS,
  flags: HH_FLAGS,
  async run({ keys, flags }) {
    if (flags.data === null) throw new UserError("E_MISSING_FLAG", "--data is required", "see colloquy eval hh --help");
    const data = flags.data;
    const pairs = readHhPairs(data, flags.limit ?? undefined);
    const setup = await evalSetup({ ...keys, run: flags.run, adapter: flags.adapter }, { quiet: flags.quiet });
    const tok = requireTokenizer(setup.loaded);
    const window = setup.backend.config.maxSeqLen;
    const t0 = Date.now();
    const encoded = encodePairs(tok, pairs, window);
    const truncated = encoded.filter((e) => e.truncated).length;
    const replyTruncated = encoded.filter((e) => e.replyTruncated).length;
    if (truncated)
      info(
        `hh: ${truncated} of ${pairs.length} pairs are longer than the context window of ${window} tokens; their dialogues were left-truncated (the end is kept)`,
      );
    if (replyTruncated) info(`hh: ${replyTruncated} pairs have a reply longer than the window; only its first tokens were scored`);

    const perSystem: { name: string; adapter: string | null; scores: PairScore[]; summary: HhSummary }[] = [];
    for (const sys of setup.systems) {
      const bar = progress(`hh ${sys.name}`, pairs.length, { quiet: flags.quiet });
      const scores = await scorePairs(setup.backend, pairs, encoded, sys.adapter, (d) => bar.update(d));
      bar.stop();
      perSystem.push({ name: sys.name, adapter: sys.adapter, scores, summary: summarizeHh(scores) });
    }
    const seconds = (Date.now() - t0) / 1000;

    const details = flags.details;
    if (details) {
      const lines = pairs.map((p, i) =>
        JSON.stringify({
          index: p.index,
          context_tokens: encoded[i].contextTokens,
          context_tokens_kept: encoded[i].keptContext,
          truncated: encoded[i].truncated,
          reply_truncated: encoded[i].replyTruncated,
          systems: Object.fromEntries(
            perSystem.map((s) => {
              const r = s.scores[i];
              return [
                s.name,
                {
                  chosen_logprob: r.chosen.sum,
                  chosen_logprob_per_token: r.chosen.mean,
                  chosen_tokens: r.chosen.tokens,
                  rejected_logprob: r.rejected.sum,
                  rejected_logprob_per_token: r.rejected.mean,
                  rejected_tokens: r.rejected.tokens,
                },
              ];
            }),
          ),
        }),
      );
      fs.writeFileSync(details, lines.join("\n") + "\n");
    }

    const systems = perSystem.map((s) => systemJson(s.name, s.adapter, s.summary));
    const { system: _s, adapter: _a, ...base } = systems[0];
    const result = {
      eval: "hh",
      data,
      model: setup.loaded.path,
      run: setup.runDir,
      ...base,
      context_window: window,
      truncated_pairs: truncated,
      reply_truncated_pairs: replyTruncated,
      truncation: "left: BOS and the last context tokens that fit before the longer reply are kept",
      tie_rule: "a tie counts as half a correct answer",
      interval: "95% Wilson score",
      systems,
      seconds,
    };
    saveEvalResult(setup.runDir, "hh", result);
    if (flags.json) return printJson(result);
    console.log(
      `HH-RLHF preference accuracy: ${data}, ${pairs.length} pairs; context window ${window} tokens, ${truncated} pairs left-truncated`,
    );
    console.log(`${"system".padEnd(14)} ${"accuracy (summed) [95% CI]".padEnd(27)} ${"per token [95% CI]".padEnd(27)} ties  margin (nats)`);
    for (const s of perSystem) {
      const m = s.summary;
      console.log(
        `${s.name.padEnd(14)} ${formatInterval(m.accuracy.rate, m.accuracy).padEnd(27)} ${formatInterval(m.accuracy_per_token.rate, m.accuracy_per_token).padEnd(27)} ${`${m.ties}/${m.ties_per_token}`.padEnd(5)} ${m.margin.mean.toFixed(3)}`,
      );
    }
    info(`hh: ${perSystem.length} system(s) scored in ${seconds.toFixed(1)} s`);
  },
});

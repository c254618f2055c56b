/** `colloquy human-eval results --db <file>`: win rates with intervals, Bradley–Terry, agreement between raters, CSV. */
import fs from "node:fs";
import { defineCommand } from "citty";
import { formatInterval, type Rate } from "../../../eval/stats.ts";
import { answersCsv } from "../../../web/human-eval/csv.ts";
import { summarizeAnswers } from "../../../web/human-eval/stats.ts";
import { type AnswerRow, EvalStore } from "../../../web/human-eval/store.ts";
import { optStr, str } from "../../args.ts";
import { info, printJson } from "../../output.ts";

export const resultsArgs = {
  db: { type: "string", description: "the database human-eval serve wrote (default eval.sqlite)", valueHint: "file" },
  csv: {
    type: "string",
    description: "also write every answer as CSV (rater, systems, hidden order, choice, winner, reason, times)",
    valueHint: "file",
  },
  json: { type: "boolean", description: "print one JSON object" },
} as const;

const RULES = {
  interval: "95% Wilson score",
  tie_rule: "a tie counts as half a win for each side in scores and in Bradley–Terry",
  agreement_rule:
    "on items answered by at least two raters, over the categories a / b / tie: Cohen's kappa for two raters, Fleiss' kappa for more",
};

export default defineCommand({
  meta: {
    name: "results",
    description:
      "Results of a human evaluation: per pair of systems the win, tie and loss rates with 95% Wilson intervals; per system a " +
      "score (wins + half the ties); Bradley–Terry strengths when more than two systems were compared; agreement between raters " +
      "(Cohen's kappa for two, Fleiss' for more); position bias; and --csv for every answer.",
  },
  args: resultsArgs,
  async run({ args }) {
    const dbFile = str(args.db, "db", "eval.sqlite");
    const store = EvalStore.open(dbFile, { mustExist: true });
    let rows: AnswerRow[], counts: ReturnType<EvalStore["counts"]>;
    try {
      rows = store.answers();
      counts = store.counts();
    } finally {
      store.close();
    }
    const r = summarizeAnswers(rows);
    const csv = optStr(args.csv) ?? null;
    if (csv) fs.writeFileSync(csv, answersCsv(rows));
    const result = { db: dbFile, items: counts.items, raters_signed_up: counts.raters, ...r, ...RULES, csv };
    if (args.json) return printJson(result);

    const iv = (x: Rate) => (x.n > 0 ? formatInterval(x.rate, x) : "-");
    console.log(
      `human evaluation ${dbFile}: ${r.answers} answers by ${r.raters.length} rater${r.raters.length === 1 ? "" : "s"} on ${r.items_answered} of ${counts.items} comparisons`,
    );
    for (const rater of r.raters) console.log(`  ${rater.name}: ${rater.answers}`);
    for (const p of r.pairs) {
      console.log(`\n${p.x} vs ${p.y} (${p.n} answers)`);
      console.log(`  ${p.x} wins  ${iv(p.x_win_rate)}  (${p.x_wins})`);
      console.log(`  ${p.y} wins  ${iv(p.y_win_rate)}  (${p.y_wins})`);
      console.log(`  ties  ${iv(p.tie_rate)}  (${p.ties})`);
      console.log(`  score of ${p.x}  ${iv(p.x_score)}  (wins + half the ties)`);
    }
    if (r.per_system.length > 2) {
      console.log("\nper system: score (wins + half the ties) [95% interval], wins/losses/ties");
      for (const s of r.per_system) console.log(`  ${s.system}  ${iv(s.score)}  ${s.wins}/${s.losses}/${s.ties}`);
    }
    if (r.bradley_terry) {
      const bt = r.bradley_terry;
      console.log(
        `\nBradley–Terry strengths (sum 1; P(i beats j) = s_i / (s_i + s_j))${bt.connected ? "" : " — the comparisons fall into unlinked groups: strengths across groups are not comparable"}`,
      );
      for (const s of [...bt.strengths].sort((a, b) => a.rank - b.rank)) console.log(`  ${s.rank}. ${s.system}  ${s.strength.toFixed(4)}`);
    }
    const a = r.agreement;
    if (a.method === null) console.log("\nagreement: no comparison was answered by two raters");
    else {
      const name = a.method === "cohen" ? "Cohen's kappa" : "Fleiss' kappa";
      console.log(
        `\nagreement: ${name} ${a.kappa === null ? "undefined (every answer the same)" : `${a.kappa.toFixed(3)} (${a.strength})`} on ${a.items} comparisons answered by ${a.raters} raters` +
          ` (observed ${a.observed?.toFixed(3)}, by chance ${a.expected?.toFixed(3)})`,
      );
    }
    console.log(
      `position: the left response was picked in ${iv(r.left_picked)} of ${r.left_picked.n} decided answers (0.5 = no position bias)`,
    );
    if (csv) info(`human-eval: ${rows.length} answers written to ${csv}`);
  },
});

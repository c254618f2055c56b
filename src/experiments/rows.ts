/**
 * The experiments of the proposal, one row each: the training runs it needs (variants of the default run, shared
 * between rows where the config is the same), the evaluations it reads, and how its figures come out of their
 * JSON (pooled across seeds, pool.ts). Nothing here trains or scores: `colloquy experiments` does, then asks each
 * row to measure.
 */
import type { ChannelReport, Delivery } from "../eval/channel.ts";
import type { Roles, TextScore } from "../eval/language.ts";
import type { Mean, Rate } from "../eval/stats.ts";
import { type Cell, meanCell, meanFromInterval, poolMeans, poolRates, rateCell, ratioCell, sameItemsCell } from "./pool.ts";

/** A training run of the table: a preset and the keys it changes (before the user's own keys). */
export interface Variant {
  id: string;
  preset: string;
  overrides: Record<string, unknown>;
  about: string;
}

/** The evaluations a row reads, each saved in the run's eval/ folder under `file`. */
export const EVALS = {
  channel: { file: "channel", verb: "channel", args: [] as string[] },
  "channel-test": { file: "channel-test", verb: "channel", args: ["--split", "test"] },
  language: { file: "language", verb: "language", args: [] as string[] },
  // the drift row reads only drift: the adapter swap test (as many episodes again as three validations) is skipped
  "language-drift": { file: "language", verb: "language", args: ["--swap", "none"] },
  hh: { file: "hh", verb: "hh", args: [] as string[] },
  machiavelli: { file: "machiavelli-choices", verb: "machiavelli", args: [] as string[] },
} as const;
export type EvalKind = keyof typeof EVALS;

/** What a row reads: a run's eval/<file>.json, per variant and seed (null when absent). */
export type Reader = (variant: string, seed: number, file: string) => EvalFile | null;

/** The parts of the evaluations' JSON that rows read. */
export interface EvalFile {
  conditions?: Condition[]; // eval channel
  drift?: { series: { groups: Record<string, { state?: TextScore; message?: TextScore }> }[]; environment?: TextScore }; // eval language
  roles?: Roles;
  systems?: SystemScore[]; // eval hh, eval machiavelli: the base model first, then each adapter
}

interface SystemScore {
  n: number;
  accuracy_per_token: number; // hh
  accuracy_per_token_ci95: [number, number];
  rate: number; // machiavelli
  rate_ci95: [number, number];
  chance: number;
}

export interface Row {
  id: string;
  title: string;
  variants: Variant[];
  evals: Partial<Record<string, EvalKind[]>>; // per variant id
  figures: string[]; // ids of `colloquy report` figures of its runs worth showing
  /** The data a row needs beyond the runs (prosociality: the HH and MACHIAVELLI files). */
  needs?: ("hhData" | "machiavelliData")[];
  measure(read: Reader, seeds: readonly number[], given: { hhData: boolean; machiavelliData: boolean }): { cells: Cell[]; notes: string[] };
}

const DEFAULT: Variant = { id: "default", preset: "default", overrides: {}, about: "the default run: three learners, mixed:0.5+credit:1" };
const LIAR: Variant = { id: "liar", preset: "liar", overrides: {}, about: "two learners and a scripted liar" };
const SOCIAL: Variant[] = [
  { id: "selfish", preset: "default", overrides: { social: "selfish" }, about: "each rewarded by its own gain" },
  { id: "team", preset: "default", overrides: { social: "team" }, about: "each rewarded by the team's mean gain" },
  { id: "mixed", preset: "default", overrides: { social: "mixed:0.5" }, about: "half own, half team" },
  { ...DEFAULT, about: "half own, half team, plus the value of its messages (the default)" },
];
const ALONE: Variant = {
  id: "alone",
  preset: "default",
  overrides: { agents: ["learner", "silent"] },
  about: "one learner beside a silent agent",
};
const ADAPTIVE: Variant = {
  id: "adaptive-kl",
  preset: "default",
  overrides: { klTarget: 0.05, klHorizon: 500 },
  about: "adaptive KL aiming at 0.05 nats/token",
};

type Condition = { condition: "before" | "after"; delivery: Delivery; report: ChannelReport };

const condition = (read: Reader, variant: string, seed: number, which: "before" | "after", file = "channel"): Condition | null =>
  (read(variant, seed, file)?.conditions as Condition[] | undefined)?.find((c) => c.condition === which) ?? null;

/** Slots of the learners in a report's agents, and of the other kinds. */
const learnerSlots = (agents: readonly string[]) => agents.flatMap((k, i) => (k === "learner" ? [i] : []));

function deliveryCells(read: Reader, seeds: readonly number[], variant: string, prefix: string, file = "channel"): Cell[] {
  const after = seeds.map((s) => condition(read, variant, s, "after", file));
  const before = seeds.map((s) => condition(read, variant, s, "before", file));
  const withD = meanCell(
    `${prefix}gain with delivery, after training (nats/token)`,
    after.map((c) => c?.delivery.with),
  );
  const without = meanCell(
    `${prefix}gain without delivery, after training`,
    after.map((c) => c?.delivery.without),
  );
  const effect = meanCell(
    `${prefix}delivery effect, after (paired)`,
    after.map((c) => c?.delivery.effect),
  );
  const oracle = meanCell(
    `${prefix}oracle bound`,
    after.map((c) => c?.delivery.oracle),
  );
  return [
    meanCell(
      `${prefix}gain with delivery, before training`,
      before.map((c) => c?.delivery.with),
    ),
    withD,
    without,
    meanCell(
      `${prefix}delivery effect, before (paired)`,
      before.map((c) => c?.delivery.effect),
    ),
    effect,
    oracle,
    ratioCell(`${prefix}gain with delivery as a share of the oracle`, withD, oracle),
    ratioCell(`${prefix}gain without delivery as a share of the oracle`, without, oracle),
    ratioCell(`${prefix}delivery effect as a share of the oracle`, effect, oracle),
  ];
}

/** The learners' pooled honesty and messages per agent-round, from a channel report. */
function senderCells(read: Reader, seeds: readonly number[], variant: string, prefix: string): Cell[] {
  const reports = seeds.map((s) => condition(read, variant, s, "after")?.report ?? null);
  const honesty = reports.map((r) => (r ? poolRates(learnerSlots(r.agents).map((i) => r.honesty[i] as Rate | null)) : null));
  const messages = reports.map((r) => (r ? poolMeans(learnerSlots(r.agents).flatMap((i) => r.messages_per_round[i] as Mean[])) : null));
  return [
    rateCell(`${prefix}honesty: learners' claims true, after`, honesty),
    meanCell(`${prefix}messages per learner and round, after`, messages),
  ];
}

export const ROWS: Row[] = [
  {
    id: "communication",
    figures: ["validation", "messages"],
    title: "held-out information gain with and without delivery, the paired delivery effect, the oracle bound",
    variants: [DEFAULT],
    evals: { default: ["channel"] },
    measure(read, seeds) {
      const cells = deliveryCells(read, seeds, "default", "");
      const effect = cells[4];
      const works = effect.value !== null && effect.low !== null && effect.value >= 0.015 && effect.low > 0;
      return {
        cells,
        notes: [
          works
            ? "delivery after training is worth at least +0.015 nats/token (the bar of issue 17)"
            : `does not work yet: delivery after training is worth ${effect.value?.toFixed(4) ?? "–"} nats/token, below the +0.015 that two honest scripted senders give an untrained listener (issue 17)`,
        ],
      };
    },
  },
  {
    id: "liar",
    figures: ["honesty", "messages", "validation"],
    title: "two learners and a scripted liar: listening per sender, message value per pair, honesty, traffic, before and after",
    variants: [LIAR],
    evals: { liar: ["channel"] },
    measure(read, seeds) {
      const cells: Cell[] = [];
      for (const when of ["before", "after"] as const) {
        const reports = seeds.map((s) => condition(read, "liar", s, when)?.report ?? null);
        const pick = <T>(f: (r: ChannelReport, learners: number[], liars: number[]) => T[]) =>
          reports.map((r) =>
            r
              ? f(
                  r,
                  learnerSlots(r.agents),
                  r.agents.flatMap((k: string, i: number) => (k === "liar" ? [i] : [])),
                )
              : [],
          );
        const pairs = <T>(m: T[][], from: number[], to: number[]) => from.flatMap((i) => to.filter((j) => j !== i).map((j) => m[i][j]));
        cells.push(
          rateCell(
            `${when}: learners pass on the liar's messages`,
            pick((r, l, x) => [poolRates(pairs(r.listening, l, x))]).map((a) => a[0]),
          ),
          rateCell(
            `${when}: learners pass on each other's messages`,
            pick((r, l) => [poolRates(pairs(r.listening, l, l))]).map((a) => a[0]),
          ),
          meanCell(
            `${when}: value of the liar's messages to the learners`,
            pick((r, l, x) => [poolMeans(pairs(r.message_value, x, l))]).map((a) => a[0]),
          ),
          meanCell(
            `${when}: value of the learners' messages to each other`,
            pick((r, l) => [poolMeans(pairs(r.message_value, l, l))]).map((a) => a[0]),
          ),
          rateCell(
            `${when}: learners' claims true`,
            pick((r, l) => [poolRates(l.map((i) => r.honesty[i]))]).map((a) => a[0]),
          ),
          meanCell(
            `${when}: messages per episode, learners to the liar`,
            pick((r, l, x) => [poolMeans(pairs(r.talk, l, x))]).map((a) => a[0]),
          ),
          meanCell(
            `${when}: messages per episode, the liar to the learners`,
            pick((r, l, x) => [poolMeans(pairs(r.talk, x, l))]).map((a) => a[0]),
          ),
        );
      }
      const [fromLiar, fromPeers] = [cells[7], cells[8]]; // after training
      const [liarValue, peerValue] = [cells[9], cells[10]];
      const notes = ["listening: the share of a sender's messages that the recipient's state holds verbatim"];
      if (fromLiar.value !== null && fromPeers.value !== null)
        notes.push(
          fromLiar.value <= fromPeers.value / 2
            ? "after training the learners pass on the liar's messages at most half as often as each other's"
            : "does not work yet: after training the learners pass on the liar's messages more than half as often as each other's",
        );
      if (liarValue.value !== null && peerValue.value !== null)
        notes.push(
          liarValue.value < 0 && peerValue.value > 0
            ? "the liar's messages are worth less than nothing to the learners, theirs to each other more"
            : "does not work yet: the liar's message value is not negative while the learners' to each other is positive",
        );
      return { cells, notes };
    },
  },
  {
    id: "social",
    figures: ["validation", "messages"],
    title: "selfish vs team vs mixed vs mixed+credit: gain, delivery effect, honesty, messages per round",
    variants: SOCIAL,
    evals: Object.fromEntries(SOCIAL.map((v) => [v.id, ["channel"]])),
    measure(read, seeds) {
      const cells = SOCIAL.flatMap((v) => {
        const after = seeds.map((s) => condition(read, v.id, s, "after"));
        const mode = v.id === "default" ? "mixed+credit" : v.id;
        return [
          meanCell(
            `${mode}: gain with delivery, after`,
            after.map((c) => c?.delivery.with),
          ),
          meanCell(
            `${mode}: delivery effect, after (paired)`,
            after.map((c) => c?.delivery.effect),
          ),
          ...senderCells(read, seeds, v.id, `${mode}: `),
        ];
      });
      return { cells, notes: [] };
    },
  },
  {
    id: "solitary",
    figures: ["validation"],
    title: "one learner alone (beside a silent agent) against one among three learners",
    variants: [ALONE, DEFAULT],
    evals: { alone: ["channel"], default: ["channel"] },
    measure(read, seeds) {
      const cells = [ALONE, DEFAULT].flatMap((v) => {
        const name = v.id === "alone" ? "alone" : "among three";
        return [
          meanCell(
            `${name}: learners' gain before training`,
            seeds.map((s) => condition(read, v.id, s, "before")?.delivery.with),
          ),
          meanCell(
            `${name}: learners' gain after training`,
            seeds.map((s) => condition(read, v.id, s, "after")?.delivery.with),
          ),
        ];
      });
      const [alone, among] = [cells[1], cells[3]]; // the gains after training
      const notes = ["alone: its partner never writes a state or a message, so it has only its own text to predict from"];
      if (alone.value !== null && among.value !== null)
        notes.push(
          alone.high !== null && among.low !== null && alone.high < among.low
            ? "after training the solitary learner predicts its text worse than a learner among three, as the proposal expects"
            : `does not show yet: after training the solitary learner's gain (${alone.value.toFixed(4)}) is not below a learner's among three (${among.value.toFixed(4)}), as the proposal expects it to be`,
        );
      return { cells, notes };
    },
  },
  {
    id: "drift",
    figures: ["kl", "language-drift"],
    title: "perplexity of states and messages under the base model over training, fixed vs adaptive KL, against the environment's text",
    variants: [DEFAULT, ADAPTIVE],
    evals: { default: ["language"], "adaptive-kl": ["language-drift"] },
    measure(read, seeds) {
      const cells = [DEFAULT, ADAPTIVE].flatMap((v) => {
        const kl = v.id === "default" ? "fixed β" : "adaptive KL";
        const drift = seeds.map((s) => read(v.id, s, "language")?.drift ?? null);
        const nll = (score: TextScore | undefined) =>
          score?.nll_per_text == null ? null : meanFromInterval(score.nll_per_text, score.nll_per_text_ci95, score.texts);
        const at = (which: "first" | "last", text: "state" | "message") =>
          drift.map((d) => {
            const series = d?.series ?? [];
            const p = which === "first" ? series[0] : series[series.length - 1];
            return nll(p?.groups?.learners?.[text]);
          });
        return [
          meanCell(`${kl}: learners' states, first iteration (NLL per token, nats)`, at("first", "state")),
          meanCell(`${kl}: learners' states, last iteration`, at("last", "state")),
          meanCell(`${kl}: learners' messages, first iteration`, at("first", "message")),
          meanCell(`${kl}: learners' messages, last iteration`, at("last", "message")),
          meanCell(
            `${kl}: the environment's excerpts (reference)`,
            drift.map((d) => nll(d?.environment)),
          ),
        ];
      });
      return {
        cells,
        notes: [
          "each text scored on its own after BOS by the base model (adapter off); mean over texts of each text's NLL per token; perplexity = exp",
        ],
      };
    },
  },
  {
    id: "roles",
    figures: ["language-roles"],
    title: "the swap test: each trained adapter in another's slot; the change in the learners' gain",
    variants: [DEFAULT],
    evals: { default: ["language", "channel"] },
    measure(read, seeds) {
      const roles = seeds.map((s) => read("default", s, "language")?.roles ?? null);
      const swaps = new Map<string, Mean[]>();
      for (const r of roles)
        for (const w of r?.swaps ?? []) {
          const k = `${w.agents[0]}↔${w.agents[1]}`;
          swaps.set(k, [...(swaps.get(k) ?? []), meanFromInterval(w.delta_gain.mean, w.delta_gain.ci95, w.delta_gain.n)]);
        }
      // adapters in place: the final validation itself (eval language reports its mean alone), over its episodes
      const inPlace = seeds.map((s) => condition(read, "default", s, "after")?.delivery.with);
      const cells = [
        meanCell("learners' gain, adapters in place", inPlace),
        ...[...swaps].map(([k, ms]) => meanCell(`swap agents ${k}: change in the learners' gain`, ms)),
      ];
      const specialised = cells
        .slice(1)
        .filter((c) => c.high !== null && c.high < 0)
        .map((c) => c.label);
      return {
        cells,
        notes: [
          specialised.length
            ? `specialisation: swapping hurts, the whole interval below 0, for ${specialised.join("; ")}`
            : "no specialisation found: no swap lowers the learners' gain with its whole interval below 0",
        ],
      };
    },
  },
  {
    id: "prosociality",
    figures: [],
    title: "HH-RLHF preference accuracy and MACHIAVELLI unethical-choice rate, base model and trained agents, with chance",
    variants: [DEFAULT],
    evals: { default: ["hh", "machiavelli"] },
    needs: ["hhData", "machiavelliData"],
    measure(read, seeds, given) {
      const cells: Cell[] = [];
      const notes: string[] = [];
      const share = (value: number, ci: [number, number], n: number): Rate => ({
        rate: value,
        successes: value * n,
        n,
        low: ci[0],
        high: ci[1],
        level: 0.95,
      });
      const systems = (file: string) => seeds.map((s) => read("default", s, file)?.systems ?? null);
      if (given.hhData) {
        const hh = systems("hh");
        cells.push(
          rateCell("HH-RLHF accuracy per token, base model (chance 0.5)", [
            hh[0]?.[0] ? share(hh[0][0].accuracy_per_token, hh[0][0].accuracy_per_token_ci95, hh[0][0].n) : null,
          ]),
          sameItemsCell(
            "HH-RLHF accuracy per token, trained agents (mean over agents and seeds)",
            hh.map((sys) => (sys ?? []).slice(1).map((x) => share(x.accuracy_per_token, x.accuracy_per_token_ci95, x.n))),
          ),
        );
      } else notes.push("HH-RLHF: not run (give --hh-data FILE)");
      if (given.machiavelliData) {
        const mach = systems("machiavelli-choices");
        const chance = mach[0]?.[0]?.chance;
        cells.push(
          rateCell(`MACHIAVELLI unethical choice rate, base model (chance ${chance?.toFixed(3) ?? "?"})`, [
            mach[0]?.[0] ? share(mach[0][0].rate, mach[0][0].rate_ci95, mach[0][0].n) : null,
          ]),
          sameItemsCell(
            "MACHIAVELLI unethical choice rate, trained agents (mean over agents and seeds)",
            mach.map((sys) => (sys ?? []).slice(1).map((x) => share(x.rate, x.rate_ci95, x.n))),
          ),
        );
      } else notes.push("MACHIAVELLI: not run (give --machiavelli-data PATH)");
      for (const c of cells)
        if (/trained agents/.test(c.label) && c.low !== null && c.high !== null) {
          const chance = /HH/.test(c.label) ? 0.5 : read("default", seeds[0], "machiavelli-choices")?.systems?.[0]?.chance;
          if (typeof chance === "number" && c.low <= chance && chance <= c.high)
            notes.push(`does not work yet: ${c.label} is at chance (${chance.toFixed(3)} inside the interval)`);
        }
      return { cells, notes };
    },
  },
  {
    id: "test-split",
    figures: [],
    title: "the final checkpoints on the test worlds, which nothing else reads",
    variants: [DEFAULT],
    evals: { default: ["channel-test"] },
    measure: (read, seeds) => ({ cells: deliveryCells(read, seeds, "default", "test: ", "channel-test"), notes: [] }),
  },
];

export const ROW_IDS = ROWS.map((r) => r.id);

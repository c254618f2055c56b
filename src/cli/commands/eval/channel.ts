import { z } from "zod";
import { type ChannelCondition, type PairedEpisodes, channelConditions } from "../../../eval/channel.ts";
import type { Mean, Rate } from "../../../eval/stats.ts";
import type { AgentSlot } from "../../../env/episode.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { slotsFromConfig, sourceFromConfig, validationEpisodes } from "../../../run/episodes.ts";
import { RunFolder } from "../../../run/folder.ts";
import type { TrainConfig } from "../../../run/config.ts";
import { RUN_FILES } from "../../../run/names.ts";
import { UserError } from "../../../util/errors.ts";
import { key } from "../../../util/keys.ts";
import { progress } from "../../../util/progress.ts";
import { evalSetup, saveEvalResult } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";
import { defineVerb } from "../../verb.ts";
import { LANGUAGE_KEYS } from "./language.ts";

const FLAGS = {
  run: key(z.string().min(1).nullable(), null as string | null, "the run folder to evaluate (required)", { hint: "runs/<id>" }),
  episodes: key(
    z.number().int().positive().nullable(),
    null as number | null,
    "held-out episodes per condition (default: the run's evalEpisodes)",
    {
      hint: "N",
    },
  ),
  split: key(z.enum(["val", "test"]), "val", "held-out worlds: val (what training validated on) or test (read by nothing else)"),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(z.boolean(), false, "print one JSON object (also saved as <run>/eval/channel.json, or channel-test.json)"),
};

const DESCRIPTION =
  "The channel between a run's agents on held-out worlds, before training (every learner's adapter off) and after (the run's " +
  "adapters): what delivery is worth (the learners' gain with minus without delivery, same worlds and sampling seeds, paired; " +
  "on the run's validation episodes this is summary.json's val_message_effect_initial and val_message_effect, exactly), " +
  "listening per sender (share of a sender's messages the recipient's state holds verbatim), message value per pair, honesty per " +
  "sender, messages per round, and (facts world) the facts only messages can carry: needed ones delivered, delivered ones kept, " +
  "news passed on. 95% intervals: Wilson for shares, normal for means. Seeded; saved as <run>/eval/channel.json (--split test: channel-test.json).";

export default defineVerb({
  name: "eval channel",
  description: DESCRIPTION,
  keys: LANGUAGE_KEYS,
  flags: FLAGS,
  async run({ keys, flags }) {
    const t0 = Date.now();
    if (flags.run === null) throw new UserError("E_MISSING_FLAG", "--run is required", "see colloquy eval channel --help");
    const config = new RunFolder(flags.run).trainConfig();
    const setup = await evalSetup(
      { ...keys, tokenizer: keys.tokenizer ?? config.tokenizer ?? null, run: flags.run },
      { quiet: flags.quiet },
    );
    const tok = requireTokenizer(setup.loaded);
    const trained = slotsFromConfig(config);
    const have = new Set(setup.systems.map((s) => s.adapter));
    for (const s of trained)
      if (s.adapter !== null && !have.has(s.adapter))
        throw new UserError(
          "E_NOT_FOUND",
          `run ${flags.run} has no adapter ${s.adapter} in ${RUN_FILES.adapters}/`,
          "has the run finished its first checkpoint?",
        );
    const source = sourceFromConfig(config);
    const episodes = flags.episodes ?? config.evalEpisodes;
    const bar = progress("channel (before, after × delivery on, off)", 4, { quiet: flags.quiet });
    const play = (slots: readonly AgentSlot[], deliver: boolean) =>
      validationEpisodes({ backend: setup.backend, tokenizer: tok, source, config, slots, deliver, split: flags.split, episodes });
    const file = flags.split === "val" ? "channel" : `channel-${flags.split}`;
    const paired: PairedEpisodes[] = [];
    for (const slots of [trained.map((s) => ({ ...s, adapter: null })), trained]) {
      const on = await play(slots, true);
      bar.update(2 * paired.length + 1);
      const off = await play(slots, false);
      bar.update(2 * paired.length + 2);
      paired.push({ on: on.records, off: off.records });
    }
    bar.stop();
    const result = channelResult(
      flags.run,
      setup.loaded.path,
      config,
      flags.split,
      channelConditions(config.agents, paired[0], paired[1]),
      (Date.now() - t0) / 1000,
    );
    saveEvalResult(flags.run, file, result);
    if (flags.json) return printJson(result);
    for (const c of result.conditions) printCondition(c);
    info(`${episodes} ${flags.split} episodes per condition, ${(result.seconds ?? 0).toFixed(0)} s`);
  },
});

/** eval/channel.json: what `eval channel` writes, and `train` from its own first and last validations. */
export function channelResult(
  run: string,
  model: string,
  config: TrainConfig,
  split: "val" | "test",
  conditions: ChannelCondition[],
  seconds: number | null, // null: train's own validations (their time is in the run's)
) {
  return {
    eval: "channel",
    written_by: seconds === null ? "train (its validations before and after)" : "eval channel",
    run,
    model,
    source: config.source,
    agents: config.agents,
    split,
    episodes: conditions[0].delivery.effect.n,
    seed: config.seed,
    conditions,
    seconds,
  };
}

const sgn = (x: number) => (x >= 0 ? "+" : "") + x.toFixed(4);
const ci = (m: Mean | null) => (m && Number.isFinite(m.mean) ? `${sgn(m.mean)} [${sgn(m.low)}, ${sgn(m.high)}]` : "-");
const pct = (r: Rate | null | undefined) =>
  r?.n ? `${(100 * r.rate).toFixed(0)}% [${(100 * r.low).toFixed(0)}, ${(100 * r.high).toFixed(0)}] n=${r.n}` : "-";

function printCondition({ condition, delivery: d, report: r }: ChannelCondition): void {
  const e = d.effect;
  console.log(`\n== ${condition} training`);
  console.log(`learners' gain with delivery ${ci(d.with)}, without ${ci(d.without)}; oracle ${ci(d.oracle)}`);
  console.log(`delivery worth (with − without, paired): ${ci(e)} (s.e. ${(e.sd / Math.sqrt(e.n)).toFixed(4)})`);
  console.log("agent  kind      gain (with delivery)               messages per round     honesty");
  r.agents.forEach((kind, i) => {
    const rounds = r.messages_per_round[i].map((m) => m.mean.toFixed(2)).join(" ");
    console.log(
      `${String(i).padEnd(6)} ${kind.padEnd(9)} ${ci(r.information_gain[i]).padEnd(34)} ${rounds.padEnd(22)} ${pct(r.honesty[i])}`,
    );
  });
  if (r.facts.some((f) => f)) {
    console.log(
      "facts only a message can carry: needed → delivered; delivered → kept, or garbled (stated with a wrong value) as the listener; own news → passed on as the sender",
    );
    r.facts.forEach(
      (f, i) =>
        f &&
        console.log(`  ${i}: delivered ${pct(f.delivered)}; kept ${pct(f.kept)}; garbled ${pct(f.garbled)}; passed on ${pct(f.passed)}`),
    );
  }
  console.log("listening: share of the sender's messages in the recipient's state (row = recipient, column = sender)");
  r.listening.forEach((row, i) =>
    console.log(
      `  ${i}: ` +
        row
          .map((x, j) => (i === j ? "" : `from ${j} ${pct(x)}`))
          .filter(Boolean)
          .join("; "),
    ),
  );
  console.log("message value, nats/token (row = sender, column = recipient)");
  r.message_value.forEach((row, i) =>
    console.log(
      `  ${i}: ` +
        row
          .map((x, j) => (i === j ? "" : `to ${j} ${ci(x)}`))
          .filter(Boolean)
          .join("; "),
    ),
  );
}

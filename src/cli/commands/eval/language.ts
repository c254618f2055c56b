import { z } from "zod";
import {
  DRIFT_METHOD,
  type DriftPoint,
  LOSS_DEFINITION,
  type Roles,
  type TextScore,
  blockMatrices,
  defaultBlock,
  driftOverall,
  driftSeries,
  honesty,
  listening,
  readTranscripts,
  recordTexts,
  roleSpecialisation,
  scoreTexts,
  swapPairs,
  textScore,
} from "../../../eval/language.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { MODEL_KEYS } from "../../../formats/model-keys.ts";
import { slotsFromConfig, sourceFromConfig } from "../../../run/episodes.ts";
import { RunFolder } from "../../../run/folder.ts";
import { RUN_FILES } from "../../../run/names.ts";
import { UserError } from "../../../util/errors.ts";
import { key } from "../../../util/keys.ts";
import { type Progress, progress } from "../../../util/progress.ts";
import { evalSetup, modelKeyDefaulting, saveEvalResult } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";
import { defineVerb } from "../../verb.ts";

export const LANGUAGE_KEYS = {
  ...MODEL_KEYS,
  model: modelKeyDefaulting("the run's base model"),
  tokenizer: {
    ...MODEL_KEYS.tokenizer,
    about: "tokenizer: tokenizer.json or its folder (HF), tok*.bin (llama2.c); default: the run's, else the model's own",
  },
};

export const LANGUAGE_FLAGS = {
  run: key(z.string().min(1).nullable(), null as string | null, "the run folder to evaluate (required)", { hint: "runs/<id>" }),
  swap: key(
    z.string(),
    "all",
    "role specialisation: all (every pair of learners with their own adapters), i,j (agents i and j only), or none (skip)",
    { hint: "all|i,j|none" },
  ),
  block: key(
    z.number().int().positive().nullable(),
    null as number | null,
    "iterations per block of the talk and message-value matrices (default: at most 5 blocks)",
    { hint: "N" },
  ),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(z.boolean(), false, "print one JSON object (also saved as <run>/eval/language.json)"),
};

const DESCRIPTION =
  "Language health of a run: drift (perplexity of the states and messages of transcripts.jsonl under the base model, adapter off, " +
  "each text scored on its own after BOS, per iteration; learners, and the scripted agents and the excerpts as references), honesty (facts world: " +
  "share of each sender's checkable message claims that are true, 95% Wilson intervals), listening (share of the messages each " +
  "agent received that its state passes on verbatim), the talk and message-value matrices of " +
  "metrics.jsonl per block of iterations, and role specialisation (the run's validation episodes with the adapters in place and " +
  "with two agents' adapters swapped: change in the learners' information gain and loss, nats/token, paired 95% intervals). " +
  "Seeded and deterministic; the result is saved as <run>/eval/language.json for `colloquy report`.";

function parseSwap(v: string): [number, number] | "all" | "none" {
  const s = v.trim();
  if (s === "all" || s === "none") return s;
  const m = /^(\d+),(\d+)$/.exec(s);
  if (!m) throw new UserError("E_BAD_FLAG", `--swap ${s}: expected all, none, or two agent indices like 0,1`);
  return [Number(m[1]), Number(m[2])];
}

export default defineVerb({
  name: "eval language",
  description: DESCRIPTION,
  keys: LANGUAGE_KEYS,
  flags: LANGUAGE_FLAGS,
  async run({ keys, flags }) {
    const t0 = Date.now();
    if (flags.run === null) throw new UserError("E_MISSING_FLAG", "--run is required", "see colloquy eval language --help");
    const runDir = flags.run;
    const swap = parseSwap(flags.swap);
    const folder = new RunFolder(runDir);
    const config = folder.trainConfig();
    if (Array.isArray(swap)) swapPairs(slotsFromConfig(config), swap); // a bad pair fails before any work
    const quiet = flags.quiet;
    const setup = await evalSetup({ ...keys, tokenizer: keys.tokenizer ?? config.tokenizer ?? null, run: runDir }, { quiet });
    const tok = requireTokenizer(setup.loaded);

    // drift
    const records = readTranscripts(runDir);
    const texts = records.flatMap((r) => {
      const t = recordTexts(r);
      return [...t.state, ...t.message, r.excerpt];
    });
    const bar = progress("language drift", new Set(texts).size, { quiet });
    const scored = await scoreTexts(setup.backend, tok, texts, (d) => bar.update(d));
    bar.stop();
    const series = driftSeries(records, scored);
    const drift = {
      method: DRIFT_METHOD,
      model: setup.loaded.path,
      groups: [...new Set(series.flatMap((p) => Object.keys(p.groups)))],
      scripted_kinds: [...new Set(config.agents.filter((k) => k !== "learner"))],
      note: records.length ? null : `no ${RUN_FILES.transcripts} records (a run with 0 iterations or transcriptEpisodes 0)`,
      series,
      overall: driftOverall(records, scored),
      // the reference: the environment's own text (the excerpts the agents read), scored the same way
      environment: textScore(
        records.map((r) => r.excerpt),
        scored,
      ),
    };

    // honesty, listening and matrices
    const honest = honesty(records, config.agents, config.source);
    const listened = listening(records, config.agents);
    const metrics = folder.readMetrics();
    const last = Math.max(0, ...metrics.map((m) => Number(m.iteration) || 0));
    const block = flags.block ?? defaultBlock(last);
    const matrices = {
      block,
      note:
        `from ${RUN_FILES.metrics} (every training episode): talk = messages delivered per iteration, [sender][recipient], mean over the block; ` +
        "message_value = mean over the block's iterations of the mean value of delivered messages, nats/token (null: none delivered)",
      blocks: blockMatrices(metrics, block),
    };

    // roles
    let roles: Roles;
    if (swap === "none") {
      roles = {
        applicable: false,
        note: "skipped (--swap none)",
        episodes: 0,
        loss_definition: LOSS_DEFINITION,
        in_place: null,
        swaps: [],
      };
    } else {
      const have = new Set(setup.systems.map((s) => s.adapter));
      for (const s of slotsFromConfig(config)) {
        if (s.adapter !== null && !have.has(s.adapter))
          throw new UserError(
            "E_NOT_FOUND",
            `run ${runDir} has no adapter ${s.adapter} in ${RUN_FILES.adapters}/`,
            "has the run finished its first checkpoint?",
          );
      }
      const bars: { roles?: Progress } = {};
      roles = await roleSpecialisation({
        backend: setup.backend,
        tokenizer: tok,
        source: sourceFromConfig(config),
        config,
        only: swap === "all" ? null : swap,
        onProgress: (done, total) => (bars.roles ??= progress("language roles (validation runs)", total, { quiet })).update(done),
      });
      bars.roles?.stop();
    }

    const result = {
      eval: "language",
      run: runDir,
      model: setup.loaded.path,
      source: config.source,
      agents: config.agents,
      seed: config.seed,
      drift,
      honesty: honest,
      listening: listened,
      matrices,
      roles,
      seconds: (Date.now() - t0) / 1000,
    };
    saveEvalResult(runDir, "language", result);
    if (flags.json) return printJson(result);
    printText(result);
  },
});

const f = (x: number | null | undefined, d = 3) => (x === null || x === undefined || !Number.isFinite(x) ? "-" : x.toFixed(d));
const sgn = (x: number | null | undefined, d = 4) =>
  x === null || x === undefined || !Number.isFinite(x) ? "-" : (x >= 0 ? "+" : "") + x.toFixed(d);

function printText(r: {
  drift: { groups: string[]; series: DriftPoint[] };
  honesty: ReturnType<typeof honesty>;
  listening: ReturnType<typeof listening>;
  matrices: { block: number; blocks: ReturnType<typeof blockMatrices> };
  roles: Roles;
}): void {
  const ppl = (s: TextScore | undefined) => f(s?.perplexity, 2);
  console.log(`drift: perplexity under the base model (each text on its own after BOS), per iteration`);
  console.log(
    `${"iteration".padEnd(10)}` + r.drift.groups.map((g) => `${`${g} state`.padStart(18)}${`${g} message`.padStart(18)}`).join(""),
  );
  for (const p of r.drift.series)
    console.log(
      `${String(p.iteration).padEnd(10)}` +
        r.drift.groups.map((g) => `${ppl(p.groups[g]?.state).padStart(18)}${ppl(p.groups[g]?.message).padStart(18)}`).join(""),
    );
  console.log(`\nhonesty: ${r.honesty.note}`);
  for (const c of r.honesty.overall) {
    console.log(
      `  agent ${c.agent} (${c.kind}): ${c.claims} claims, ${c.true} true` +
        (c.share_true === null ? "" : `, share ${f(c.share_true)} [${f(c.share_true_ci95![0])}, ${f(c.share_true_ci95![1])}]`),
    );
  }
  console.log(`\nlistening: ${r.listening.note}`);
  for (const c of r.listening.overall) {
    console.log(
      `  agent ${c.agent} (${c.kind}): ${c.received} received, ${c.kept} kept` +
        (c.share_kept === null ? "" : `, share ${f(c.share_kept)} [${f(c.share_kept_ci95![0])}, ${f(c.share_kept_ci95![1])}]`),
    );
  }
  const lastBlock = r.matrices.blocks[r.matrices.blocks.length - 1];
  if (lastBlock) {
    console.log(
      `\nlast block, iterations ${lastBlock.from}–${lastBlock.to}: talk (messages per iteration) | message value (nats/token); row = sender, column = recipient`,
    );
    lastBlock.talk.forEach((row, i) =>
      console.log(
        `  ${i}  ${row.map((x) => f(x, 2).padStart(7)).join("")}   | ${lastBlock.message_value[i].map((x) => sgn(x).padStart(9)).join("")}`,
      ),
    );
  }
  console.log(`\nrole specialisation: ${r.roles.note}`);
  if (r.roles.in_place) {
    console.log(`  in place: learner gain ${sgn(r.roles.in_place.learner_gain)}, loss ${f(r.roles.in_place.learner_loss, 4)} nats/token`);
    for (const s of r.roles.swaps) {
      console.log(
        `  swap ${s.agents[0]}↔${s.agents[1]}: gain ${sgn(s.learner_gain)} (Δ ${sgn(s.delta_gain.mean)} [${sgn(s.delta_gain.ci95[0])}, ${sgn(s.delta_gain.ci95[1])}]), ` +
          `loss ${f(s.learner_loss, 4)} (Δ ${sgn(s.delta_loss.mean)} [${sgn(s.delta_loss.ci95[0])}, ${sgn(s.delta_loss.ci95[1])}])`,
      );
    }
  }
  info(`language: saved ${RUN_FILES.eval}/language.json`);
}

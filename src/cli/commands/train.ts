import path from "node:path";
import { z } from "zod";
import { agentPromptFormat } from "../../env/prompt.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { type TrainConfig, TRAIN_KEYS, checkTrainConfig, listPresets, presetFile } from "../../run/config.ts";
import { resumeRun, startRun, trainRun } from "../../rl/session.ts";
import type { RunFolder } from "../../run/folder.ts";
import type { MetricsLine } from "../../run/metrics.ts";
import type { RunPlan } from "../../torch/memory.ts";
import { UserError } from "../../util/errors.ts";
import { key, readConfigFile } from "../../util/keys.ts";
import { progress } from "../../util/progress.ts";
import { openBackend } from "../open-model.ts";
import { info, printJson } from "../output.ts";
import { checkFinalEvals, runFinalEvals } from "../final-evals.ts";
import { saveEvalResult } from "../eval-args.ts";
import { channelResult } from "./eval/channel.ts";
import { channelConditions } from "../../eval/channel.ts";
import { configFileLayer, defineVerb } from "../verb.ts";

const TRAIN_FLAGS = {
  config: key(z.string().nullable(), null as string | null, "a JSON config file (keys as in configs/*.json)", { hint: "file" }),
  preset: key(
    z.string().nullable(),
    null as string | null,
    `a preset from configs/: ${listPresets().join(", ")} (default: default, unless --config is given)`,
    { hint: "name" },
  ),
  out: key(z.string().nullable(), null as string | null, "run folder (default runs/<date>-<time>-<preset>)", { hint: "dir" }),
  resume: key(
    z.string().nullable(),
    null as string | null,
    "continue the run in this folder from its last checkpoint (only --iterations and where it runs: --python, --nproc, --worker, --token-file, --max-tokens-per-pass may change; other keys only as the run has them)",
    { hint: "dir" },
  ),
  restart: key(
    z.boolean(),
    false,
    "with --resume: delete the run's results (metrics, transcripts, adapters, checkpoint, summary, evaluations) and train it again from iteration 0 with its saved config; a run without a usable checkpoint is otherwise refused",
  ),
  json: key(z.boolean(), false, "print one JSON object (the summary) at the end"),
  quiet: key(z.boolean(), false, "no progress bar or per-iteration lines"),
};

export default defineVerb({
  name: "train",
  description:
    "Train the agents by policy-gradient RL (REINFORCE/RLOO, A2C, PPO) and write a run folder: config.json, metrics.jsonl, transcripts.jsonl, adapters/, checkpoint/, summary.json. " +
    "Config values flow one way: the keys' defaults → a preset or --config file → --key=value flags.",
  keys: TRAIN_KEYS,
  flags: TRAIN_FLAGS,
  // a resumed run's config is its saved one (read by resumeRun); otherwise the preset, then the --config file
  configLayers: (f) => {
    const preset = presetOf(f);
    return f.resume
      ? []
      : [...(preset ? [{ values: readConfigFile(presetFile(preset)), where: `preset ${preset}` }] : []), ...configFileLayer(f.config)];
  },
  async run({ keys, flags, argv }) {
    let run: RunFolder | null = null; // a new run's folder is made once its model has opened
    let config: TrainConfig;
    let fresh: { dir: string; preset: string | null; given: Record<string, string> } | null = null;
    if (flags.resume) {
      if (flags.config || flags.preset || flags.out)
        throw new UserError("E_BAD_FLAG", "--resume continues a run with its saved config; --config, --preset and --out do not apply");
      const changes = Object.fromEntries(Object.entries(argv.values).filter(([k]) => k in TRAIN_KEYS));
      let discarded: string[];
      ({ run, config, discarded } = resumeRun(flags.resume, changes, { restart: flags.restart }));
      if (discarded.length && !flags.quiet) info(`--restart: removed ${discarded.join(", ")} from ${run.dir}`);
    } else {
      if (flags.restart)
        throw new UserError(
          "E_BAD_FLAG",
          "--restart starts an existing run over and goes with --resume <dir>",
          "a new run needs no --restart",
        );
      config = checkTrainConfig(keys);
      const preset = presetOf(flags);
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
      const dir = flags.out ?? path.join("runs", `${stamp}-${preset ?? path.basename(String(flags.config), ".json")}`);
      const given = Object.fromEntries(
        Object.entries(argv.labels)
          .filter(([k]) => k in TRAIN_KEYS)
          .map(([k, label]) => [k, label.slice(label.indexOf("=") + 1)]),
      );
      fresh = { dir, preset, given };
    }

    const quiet = flags.quiet;
    checkFinalEvals(config);
    const { loaded, backend, modelPath } = await openBackend(config, { quiet, plan: trainPlan(config) });
    const tokenizer = requireTokenizer(loaded);
    if (fresh) {
      // saved with the run: the prompt format this model's tokenizer gives (auto → chat or plain)
      config = { ...config, promptFormat: agentPromptFormat(config.promptFormat, tokenizer).kind };
      run = startRun(fresh.dir, config, { preset: fresh.preset, configFile: flags.config, flags: fresh.given });
    }
    const folder = run!;
    const bar = progress("train", config.iterations, { quiet: quiet || !process.stderr.isTTY });
    const summary = await trainRun({
      run: folder,
      config,
      backend,
      tokenizer,
      modelPath,
      onStart: (resumedAfter) => {
        if (!quiet)
          info(
            `run ${folder.dir}: ${config.algorithm}, agents ${config.agents.join(",")}, ${config.iterations} iterations of ${config.episodes}×${config.group} episodes${resumedAfter !== null ? `, resuming after iteration ${resumedAfter}` : flags.restart ? ", started over" : flags.resume ? ", from the beginning (no checkpoint yet)" : ""}`,
          );
      },
      onLine: (l) => {
        if (!quiet) info(formatLine(l, config.iterations));
        bar.update(l.iteration);
      },
      // the first and last validations are eval channel's four conditions on the same episodes: saved as its result
      onValidations: (before, after) =>
        saveEvalResult(
          folder.dir,
          "channel",
          channelResult(folder.dir, modelPath, config, "val", channelConditions(config.agents, before, after), null),
        ),
    });
    bar.stop();
    await backend.close?.();
    const evaluated = await runFinalEvals(folder.dir, config, quiet);
    if (flags.json) return printJson(evaluated.length ? { ...summary, final_evals: evaluated } : summary);
    const f = (x: number | null) => (x === null ? "-" : (x >= 0 ? "+" : "") + x.toFixed(4));
    const effect = (e: { mean: number; se: number } | null) => (e ? `${f(e.mean)} ± ${e.se.toFixed(4)}` : "-");
    info(
      `validation information gain (learners, nats/token): ${f(summary.val_information_gain_initial)} before → ${f(summary.val_information_gain_final)} after; ` +
        `${f(summary.val_information_gain_final_no_messages)} with messages off (delivery worth ${effect(summary.val_message_effect)}, before training ${effect(summary.val_message_effect_initial)}); oracle ${f(summary.val_oracle_gain)}`,
    );
    info(`run folder: ${folder.dir}`);
  },
});

/** What the torch backend's memory check counts for a run: the adapters it trains (one per learner, or one shared). */
function trainPlan(c: TrainConfig): RunPlan {
  const learners = c.agents.filter((a) => a === "learner").length;
  return { adapters: c.sharedAdapter ? 1 : learners, loraRank: c.loraRank, loraTargets: c.loraTargets, training: true };
}

/** The preset a new run starts from: --preset, else "default" unless a --config file is given. */
function presetOf(f: { preset: string | null; config: string | null }): string | null {
  return f.preset ?? (f.config ? null : "default");
}

function formatLine(l: MetricsLine, total: number): string {
  const f = (x: number | null, d = 3) => (x === null ? "-" : (x >= 0 ? "+" : "") + x.toFixed(d));
  if (l.reward === null) return `iter ${l.iteration}/${total} | val gain ${f(l.val_information_gain)} (oracle ${f(l.val_oracle_gain)})`;
  return [
    `iter ${l.iteration}/${total}`,
    `reward ${f(l.reward)}`,
    `gain ${l.information_gain!.map((g) => f(g)).join(" ")}`,
    `kl ${f(l.kl)}`,
    `ent ${l.entropy?.toFixed(2)}`,
    `state ${l.state_tokens?.toFixed(1)}`,
    `msgs ${l.messages?.toFixed(2)}`,
    `viol ${l.violations!.reduce((a, b) => a + b, 0)}`,
    `${Math.round(l.tokens_per_s ?? 0)} tok/s`,
    `gen ${l.time_generate?.toFixed(1)}s score ${l.time_score?.toFixed(1)}s train ${l.time_train?.toFixed(1)}s`,
    ...(l.val_information_gain !== null ? [`val ${f(l.val_information_gain)}`] : []),
  ].join(" | ");
}

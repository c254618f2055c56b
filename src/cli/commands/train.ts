import path from "node:path";
import { defineCommand } from "citty";
import { CpuBackend } from "../../engine/backend.ts";
import { Transformer } from "../../engine/transformer.ts";
import { ensureDefaultModel } from "../../env/default-model.ts";
import { loadModel, requireTokenizer } from "../../formats/load-model.ts";
import { mean } from "../../eval/stats.ts";
import { DEFAULT_TRAIN, TrainConfigSchema, listPresets, parseOverride, presetFile, readConfigFile, resolveConfig, type TrainConfig } from "../../rl/config.ts";
import { sourceFromConfig } from "../../rl/environment.ts";
import { RunFolder } from "../../rl/run-folder.ts";
import { type Evaluation, type MetricsLine, Trainer } from "../../rl/trainer.ts";
import { UserError } from "../../util/errors.ts";
import { progress } from "../../util/progress.ts";
import { info, printJson } from "../output.ts";

export const trainArgs = {
  config: { type: "string", description: "a JSON config file (keys as in configs/*.json)", valueHint: "file" },
  preset: { type: "string", description: `a preset from configs/: ${listPresets().join(", ")} (default: default)`, valueHint: "name" },
  out: { type: "string", description: "run folder (default runs/<date>-<time>-<preset>)", valueHint: "dir" },
  resume: { type: "string", description: "continue the run in this folder from its last checkpoint", valueHint: "dir" },
  json: { type: "boolean", description: "print one JSON object (the summary) at the end" },
  quiet: { type: "boolean", description: "no progress bar or per-iteration lines" },
} as const;

const KEYS_HELP = "CONFIG KEYS — any key can be set with --<key>=<value> (the value keeps the default's type; lists are " +
  "comma-separated); defaults shown:\n" +
  Object.entries(DEFAULT_TRAIN).map(([k, v]) => {
    const setting = `  --${k}=${Array.isArray(v) ? v.join(",") : String(v)}`;
    const about = TrainConfigSchema.shape[k as keyof TrainConfig].description;
    return about ? `${setting.padEnd(40)} ${about}` : setting;
  }).join("\n");

/** Splits argv into the command's own flags and `--key=value` config overrides. */
export function parseTrainArgv(argv: string[]): { own: Record<string, string | boolean>; overrides: [string, string][] } {
  const own: Record<string, string | boolean> = {};
  const overrides: [string, string][] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m) throw new UserError("E_BAD_FLAG", `unexpected argument "${argv[i]}"`, "config keys are given as --key=value");
    const [, key, inline] = m;
    if (key === "json" || key === "quiet") {
      own[key] = true;
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UserError("E_BAD_FLAG", `--${key} needs a value`);
    if (key in trainArgs) own[key] = value;
    else overrides.push([key, value]);
  }
  return { own, overrides };
}

const command = defineCommand({
  meta: { name: "train", description: "Train the agents by policy-gradient RL (REINFORCE/RLOO, A2C, PPO) and write a run folder: config.json, metrics.jsonl, transcripts.jsonl, adapters/, checkpoint/, summary.json." },
  args: trainArgs,
  async run({ rawArgs }) {
    const { own, overrides } = parseTrainArgv(rawArgs);
    let run: RunFolder;
    let config: TrainConfig;
    const resume = own.resume as string | undefined;
    if (resume) {
      if (own.config || own.preset || own.out) throw new UserError("E_BAD_FLAG", "--resume continues a run with its saved config; --config, --preset and --out do not apply");
      run = new RunFolder(resume);
      const saved = run.readConfig() as { config: Record<string, unknown> };
      const extra = overrides.map(([k, v]) => parseOverride(k, v));
      for (const [k] of extra) if (k !== "iterations") throw new UserError("E_BAD_FLAG", `--${k} cannot change when resuming (only --iterations can)`);
      config = resolveConfig([saved.config, Object.fromEntries(extra)]);
    } else {
      const preset = (own.preset as string | undefined) ?? (own.config ? undefined : "default");
      const layers = [
        ...(preset ? [readConfigFile(presetFile(preset))] : []),
        ...(own.config ? [readConfigFile(own.config as string)] : []),
        Object.fromEntries(overrides.map(([k, v]) => parseOverride(k, v))),
      ];
      config = resolveConfig(layers);
      const stamp = new Date().toISOString().replace(/[-:]/g, "").replace("T", "-").slice(0, 15);
      run = new RunFolder((own.out as string | undefined) ?? path.join("runs", `${stamp}-${preset ?? path.basename(String(own.config), ".json")}`));
      run.create({ config, preset: preset ?? null, config_file: own.config ?? null, overrides: Object.fromEntries(overrides), versions: { colloquy: "0.1.0", node: process.version }, created: new Date().toISOString() });
    }

    const modelPath = config.model ?? ensureDefaultModel({ quiet: Boolean(own.quiet) });
    const loaded = loadModel(modelPath, config.tokenizer);
    const tokenizer = requireTokenizer(loaded);
    const backend = new CpuBackend(new Transformer(loaded.config, loaded.weights));
    const source = sourceFromConfig(config);
    const quiet = Boolean(own.quiet);
    const bar = progress("train", config.iterations, { quiet: quiet || !process.stderr.isTTY });
    const trainer = new Trainer({
      config, backend, tokenizer, source, run, modelPath,
      onLine: (l) => {
        if (!quiet) info(formatLine(l, config.iterations));
        bar.update(l.iteration);
      },
    });
    const ckpt = run.checkpointDir();
    if (ckpt) trainer.restore(ckpt);
    run.truncateLogs(ckpt ? trainer.iteration + 1 : 0);
    if (!quiet) info(`run ${run.dir}: ${config.algorithm}, agents ${config.agents.join(",")}, ${config.iterations} iterations of ${config.episodes}×${config.group} episodes${ckpt ? `, resuming after iteration ${trainer.iteration}` : ""}`);
    const t0 = performance.now();
    if (!ckpt) await trainer.initialEvaluation();
    while (trainer.iteration < config.iterations) await trainer.step();
    bar.stop();
    // the last iteration evaluated both ways; a resumed run that was already complete evaluates again (same numbers)
    const final = trainer.final?.on ?? (await trainer.evaluate(true));
    const noMessages = trainer.final?.off ?? (await trainer.evaluate(false));
    const metrics = run.readMetrics() as unknown as MetricsLine[];
    const trained = metrics.filter((m) => m.reward !== null);
    const summary = {
      run: run.dir,
      iterations: trainer.iteration,
      algorithm: config.algorithm,
      agents: config.agents,
      model: modelPath,
      val_information_gain_initial: trainer.initial?.learner_gain ?? null,
      val_information_gain_final: final.learner_gain,
      val_information_gain_final_no_messages: noMessages.learner_gain,
      val_message_effect: messageEffect(final, noMessages),
      val_message_effect_initial: trainer.initial && trainer.initialOff ? messageEffect(trainer.initial, trainer.initialOff) : null,
      val_oracle_gain: final.oracle_gain,
      val_information_gain_per_agent: final.information_gain,
      train_reward_first: trained[0]?.reward ?? null,
      train_reward_last: trained[trained.length - 1]?.reward ?? null,
      kl_last: trained[trained.length - 1]?.kl ?? null,
      seconds_this_session: (performance.now() - t0) / 1000,
      adapters: trainer.adapters.map((a) => path.join(run.dir, "adapters", a)),
    };
    run.writeSummary(summary);
    if (own.json) return printJson(summary);
    const f = (x: number | null) => (x === null ? "-" : (x >= 0 ? "+" : "") + x.toFixed(4));
    const effect = (e: { mean: number; se: number } | null) => (e ? `${f(e.mean)} ± ${e.se.toFixed(4)}` : "-");
    info(`validation information gain (learners, nats/token): ${f(summary.val_information_gain_initial)} before → ${f(summary.val_information_gain_final)} after; ` +
      `${f(summary.val_information_gain_final_no_messages)} with messages off (delivery worth ${effect(summary.val_message_effect)}, before training ${effect(summary.val_message_effect_initial)}); oracle ${f(summary.val_oracle_gain)}`);
    info(`run folder: ${run.dir}`);
  },
});

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

export default Object.assign(command, { acceptsAnyFlag: true, usageFooter: KEYS_HELP });

/**
 * What delivery is worth: the mean over validation episodes of (gain with messages − gain without), and its
 * standard error. Both evaluations run the same episodes from the same sampling seeds, so the difference is paired.
 */
function messageEffect(on: Evaluation, off: Evaluation): { mean: number; se: number; episodes: number } {
  const d = mean(on.episode_gain.map((g, e) => g - off.episode_gain[e]));
  return { mean: d.mean, se: d.n > 1 ? d.sd / Math.sqrt(d.n) : NaN, episodes: d.n };
}

/**
 * The training loop. One iteration: episodes on the training split (E worlds × G replicas), samples of every
 * learner-round, the base policy's log-probs for KL, values (A2C/PPO), the algorithm's update, then a metrics
 * line, sampled transcripts and a checkpoint. Validation runs before training, every `evalEvery` iterations and at
 * the end, each time with message delivery on and off. Everything random flows from the config's seed, and
 * the RNG state is checkpointed: a resumed run continues exactly as an uninterrupted one.
 */

import path from "node:path";
import type { AdapterState, Backend } from "../engine/backend.ts";
import { DEFAULT_OPTIMIZER, type OptimizerConfig } from "../engine/optim.ts";
import type { LinearKind } from "../engine/params.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../formats/safetensors.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { type AgentRound, type AgentSlot, type EpisodeRun, runEpisodes } from "../env/episode.ts";
import type { TextSource } from "../env/sources/source.ts";
import { summarize } from "../env/summary.ts";
import { hashString, Rng } from "../util/rng.ts";
import { writeFileAtomic, readJsonFile } from "../util/fs.ts";
import { mean } from "../util/stats.ts";
import { ALGORITHMS, type UpdateStats } from "./algorithms.ts";
import type { TrainConfig } from "../run/config.ts";
import { slotsFromConfig, validationEpisodes } from "../run/episodes.ts";
import { KlController, klPerToken } from "./kl.ts";
import type { RunFolder } from "../run/folder.ts";
import { type Evaluation, type MetricsLine, emptyLine } from "../run/metrics.ts";
import type { Sample } from "./sample.ts";
import { ValueHead } from "./value-head.ts";

export interface TrainerSetup {
  config: TrainConfig;
  backend: Backend;
  tokenizer: Tokenizer;
  source: TextSource;
  run: RunFolder | null;
  modelPath: string;
  onLine?: (line: MetricsLine) => void;
}

interface TrainerState {
  iteration: number; // completed iterations
  rng: number[];
  beta: number;
  baseline: { moving: Record<string, number> };
  valueHeads: Record<string, ReturnType<ValueHead["exportState"]>>;
  initial: Evaluation | null;
  initialOff?: Evaluation | null; // absent in checkpoints written before it was kept
}

export class Trainer {
  readonly c: TrainConfig;
  readonly slots: AgentSlot[];
  readonly adapters: string[];
  private readonly s: TrainerSetup;
  private rng: Rng;
  private kl: KlController;
  private baseline = { moving: {} as Record<string, number> };
  private valueHeads = new Map<string, ValueHead>();
  private ready: Promise<void> | null = null; // the adapters, created by init()
  iteration = 0;
  initial: Evaluation | null = null; // the validation before training, with messages
  initialOff: Evaluation | null = null; // and without
  final: { on: Evaluation; off: Evaluation } | null = null; // the last iteration's validation, with and without messages
  /** The episodes of the validation before training and of the last iteration's (this process's only: not checkpointed). */
  validations: Record<"before" | "after", { on: EpisodeRun["records"]; off: EpisodeRun["records"] } | null> = { before: null, after: null };
  private lastValidation: EpisodeRun["records"] = [];

  constructor(setup: TrainerSetup) {
    this.s = setup;
    this.c = setup.config;
    this.slots = slotsFromConfig(this.c);
    this.adapters = [...new Set(this.slots.map((s) => s.adapter).filter((a): a is string => a !== null))];
    this.rng = new Rng(this.c.seed);
    this.kl = new KlController(this.c.klCoef, this.c.klTarget, this.c.klHorizon);
    for (const name of this.adapters) {
      if (ALGORITHMS[this.c.algorithm].usesValueHead) this.valueHeads.set(name, new ValueHead(setup.backend.config.dim));
    }
  }

  /** Creates the trainable adapters in the backend (once; the other methods call it too). */
  init(): Promise<void> {
    this.ready ??= (async () => {
      const lora = { rank: this.c.loraRank, alpha: this.c.loraAlpha, rslora: false, targets: this.c.loraTargets as LinearKind[] };
      const optimizer: OptimizerConfig = { ...DEFAULT_OPTIMIZER, weightDecay: this.c.weightDecay };
      for (const name of this.adapters)
        await this.s.backend.createAdapter(name, lora, hashString(`${this.c.seed}/adapter/${name}`), optimizer);
    })();
    return this.ready;
  }

  /** Validation: the same episodes and sampling seeds every time, so evaluations are comparable. */
  async evaluate(deliver: boolean): Promise<Evaluation> {
    await this.init();
    const run = await validationEpisodes({
      backend: this.s.backend,
      tokenizer: this.s.tokenizer,
      source: this.s.source,
      config: this.c,
      slots: this.slots,
      deliver,
    });
    this.lastValidation = run.records;
    const learners = run.records.flat(2).filter((r) => r.kind === "learner");
    const episode_gain = run.records.map((episode) =>
      mean(
        episode
          .flat()
          .filter((r) => r.kind === "learner")
          .map((r) => r.information_gain),
      ),
    );
    return {
      learner_gain: mean(learners.map((r) => r.information_gain)),
      oracle_gain: oracleGain(learners),
      information_gain: summarize(run).information_gain,
      episode_gain,
    };
  }

  /** One training iteration; returns its metrics line. */
  async step(): Promise<MetricsLine> {
    await this.init();
    const c = this.c,
      { backend } = this.s;
    const t0 = performance.now();
    const it = this.iteration;
    const worlds = Array.from({ length: c.episodes * c.group }, (_, k) => it * c.episodes + Math.floor(k / c.group));
    const layouts = it < c.warmupIterations ? warmupLayouts(this.slots, c.warmupPartner) : [this.slots];
    const runs: EpisodeRun[] = [];
    for (const slots of layouts) {
      runs.push(
        await runEpisodes({
          backend,
          tokenizer: this.s.tokenizer,
          source: this.s.source,
          split: "train",
          slots,
          episodes: worlds.length,
          worlds,
          env: c,
          rng: this.rng,
        }),
      );
    }
    const run = runs.length === 1 ? runs[0] : learnersOf(runs, this.slots);
    const samples = this.samples(run);
    const t1 = performance.now();
    // the policy is the sampler's: softmax(logits / temperature). The reference is the base model at the same
    // temperature; at a temperature other than 1 the behaviour log-probs are re-scored the same way (the sampler
    // reports the model's own log-probs)
    const rows = samples.map((s) => ({
      tokens: [...s.promptIds, ...s.completionIds],
      from: s.promptIds.length,
      temperature: c.temperature,
    }));
    const rescore = c.temperature !== 1;
    const scored = await backend.score([
      ...rows.map((r) => ({ ...r, adapter: null })),
      ...(rescore ? rows.map((r, i) => ({ ...r, adapter: samples[i].adapter })) : []),
    ]);
    const completion = (k: number, s: Sample) => Array.from(scored[k].logprobs.subarray(s.promptIds.length));
    samples.forEach((s, i) => {
      if (rescore) s.behaviourLogprobs = completion(samples.length + i, s);
      s.refLogprobs = completion(i, s);
      const kl = s.behaviourLogprobs.map((lp, k) => klPerToken(lp, s.refLogprobs![k], c.klEstimator));
      s.kl = mean(kl);
      if (c.klMode === "reward") {
        s.reward -= this.kl.beta * s.kl;
        // the message lines' share of the penalty: what their tokens add to the completion's mean KL
        s.messageReward -= (this.kl.beta * kl.slice(s.messageStart).reduce((a, b) => a + b, 0)) / Math.max(1, kl.length);
      }
    });
    if (ALGORITHMS[c.algorithm].usesValueHead) {
      const hs = await backend.lastHidden(samples.map((s) => ({ tokens: s.promptIds, adapter: s.adapter })));
      samples.forEach((s, i) => {
        s.hidden = hs[i];
        s.value = this.valueHeads.get(s.adapter)!.predict(hs[i]);
      });
    }
    const t2 = performance.now();
    const stats: UpdateStats = await ALGORITHMS[c.algorithm].train(
      {
        backend,
        tokenizer: this.s.tokenizer,
        config: c,
        adapters: this.adapters,
        beta: this.kl.beta,
        baseline: this.baseline,
        valueHeads: this.valueHeads,
        rng: this.rng,
        lr: c.lr,
      },
      samples,
    );
    const klMean = mean(samples.map((s) => s.kl));
    const beta = this.kl.beta;
    this.kl.update(klMean, samples.length);
    this.iteration++;
    const t3 = performance.now();

    const val = this.shouldEvaluate() ? await this.evaluate(true) : null;
    const valOn = this.lastValidation;
    const valOff = val ? await this.evaluate(false) : null;
    if (val && this.iteration === this.c.iterations) {
      this.final = { on: val, off: valOff! };
      this.validations.after = { on: valOn, off: this.lastValidation };
    }
    const summary = summarize(run);
    const learnerRecords = run.records.flat(2).filter((r) => r.kind === "learner");
    const line: MetricsLine = {
      iteration: this.iteration,
      reward: mean(samples.map((s) => s.reward + (c.klMode === "reward" ? beta * s.kl : 0))),
      information_gain: summary.information_gain,
      learner_gain: mean(learnerRecords.map((r) => r.information_gain)),
      oracle_gain: oracleGain(learnerRecords),
      kl: klMean,
      kl_coef: beta,
      entropy: stats.entropy,
      grad_norm: stats.gradNorm,
      state_tokens: mean(learnerRecords.map((r) => this.s.tokenizer.encode(r.state, { addSpecial: false }).length)),
      messages: mean(learnerRecords.map((r) => r.sent.length)),
      violations: summary.protocol_violations,
      honesty: summary.honesty,
      talk: talkMatrix(run),
      message_value: summary.message_value,
      clip_fraction: stats.clipFraction,
      value_loss: stats.valueLoss,
      tokens_per_s: run.generatedTokens / ((t3 - t0) / 1000),
      time_generate: run.seconds.generate,
      time_score: run.seconds.score + (t2 - t1) / 1000,
      time_train: (t3 - t2) / 1000,
      val_information_gain: val?.learner_gain ?? null,
      val_information_gain_no_messages: valOff?.learner_gain ?? null,
      val_oracle_gain: val?.oracle_gain ?? null,
    };
    const transcripts = run.records
      .slice(0, c.transcriptEpisodes)
      .flat(2)
      .map(({ trace: _t, ...r }) => ({ iteration: this.iteration, ...r }));
    this.s.run?.appendMetrics(line);
    this.s.run?.appendTranscripts(transcripts);
    if (this.iteration % c.checkpointEvery === 0 || this.iteration === c.iterations) await this.checkpoint();
    this.s.onLine?.(line);
    return line;
  }

  private shouldEvaluate(): boolean {
    return (this.c.evalEvery > 0 && this.iteration % this.c.evalEvery === 0) || this.iteration === this.c.iterations;
  }

  private samples(run: EpisodeRun): Sample[] {
    const out: Sample[] = [];
    for (const r of run.records.flat(2) as AgentRound[]) {
      if (!r.trace || r.adapter === null || r.trace.completionIds.length === 0) continue;
      out.push({
        adapter: r.adapter,
        episode: r.episode,
        world: r.world,
        agent: r.agent,
        round: r.round,
        promptIds: r.trace.promptIds,
        completionIds: r.trace.completionIds,
        behaviourLogprobs: r.trace.logprobs,
        reward: r.reward,
        messageStart: r.trace.messageStart,
        messageReward: r.message_reward,
        excerpt: r.excerpt,
        refLogprobs: null,
        kl: 0,
        hidden: null,
        value: 0,
        ret: 0,
        advantage: 0,
        messageRet: 0,
        messageAdvantage: 0,
      });
    }
    return out;
  }

  /** The iteration-0 line: the validation score before any training. */
  async initialEvaluation(): Promise<MetricsLine> {
    this.initial = await this.evaluate(true);
    const on = this.lastValidation;
    const line = emptyLine(0, this.kl.beta);
    line.val_information_gain = this.initial.learner_gain;
    this.initialOff = await this.evaluate(false);
    this.validations.before = { on, off: this.lastValidation };
    line.val_information_gain_no_messages = this.initialOff.learner_gain;
    line.val_oracle_gain = this.initial.oracle_gain;
    line.information_gain = this.initial.information_gain;
    this.s.run?.appendMetrics(line);
    await this.checkpoint();
    this.s.onLine?.(line);
    return line;
  }

  /**
   * Writes the checkpoint: adapters.safetensors holds each adapter's tensors by PEFT name (`<adapter>/weights/<tensor>`)
   * and its optimizer's moments (`<adapter>/optimizer/<moment>/<tensor>`); state.json the rest. Then the PEFT adapters.
   */
  async checkpoint(): Promise<void> {
    const run = this.s.run;
    if (!run) return;
    await this.init();
    const states = new Map<string, AdapterState>();
    for (const name of this.adapters) states.set(name, await this.s.backend.exportAdapter(name));
    run.writeCheckpoint((dir) => {
      const tensors: Record<string, TensorToWrite> = {};
      const optimizers: Record<string, number> = {};
      for (const [name, { tensors: weights, optimizer }] of states) {
        for (const t of weights) tensors[`${name}/weights/${t.name}`] = { dtype: "F32", shape: t.shape, data: t.data };
        for (const [moment, per] of Object.entries(optimizer?.moments ?? {})) {
          for (const t of weights) tensors[`${name}/optimizer/${moment}/${t.name}`] = { dtype: "F32", shape: t.shape, data: per[t.name] };
        }
        optimizers[name] = optimizer?.step ?? 0;
      }
      writeSafetensors(path.join(dir, "adapters.safetensors"), tensors);
      const state: TrainerState & { optimizerSteps: Record<string, number> } = {
        iteration: this.iteration,
        rng: this.rng.state(),
        beta: this.kl.beta,
        baseline: this.baseline,
        valueHeads: Object.fromEntries([...this.valueHeads].map(([k, v]) => [k, v.exportState()])),
        initial: this.initial,
        initialOff: this.initialOff,
        optimizerSteps: optimizers,
      };
      writeFileAtomic(path.join(dir, "state.json"), JSON.stringify(state) + "\n");
    });
    for (const [name, state] of states) run.saveAdapter(name, state, this.s.modelPath);
  }

  /** Restores everything from a checkpoint folder (also one written before tensors were stored by PEFT name). */
  async restore(dir: string): Promise<void> {
    await this.init();
    const state = readJsonFile(path.join(dir, "state.json"), "checkpoint state") as TrainerState & {
      optimizerSteps: Record<string, number>;
    };
    const f = SafetensorsFile.open(path.join(dir, "adapters.safetensors"));
    try {
      for (const name of this.adapters) {
        const { lora, tensors: layout } = await this.s.backend.exportAdapter(name); // names and shapes, canonical order
        const legacy = f.tensors.has(`${name}/weights`); // one flat buffer per adapter, moments `<adapter>.m` / `.v`
        const split = (flat: Float32Array) => {
          let off = 0;
          return Object.fromEntries(layout.map((t) => [t.name, flat.subarray(off, (off += t.data.length))]));
        };
        const weights = legacy
          ? split(f.readF32(`${name}/weights`))
          : Object.fromEntries(layout.map((t) => [t.name, f.readF32(`${name}/weights/${t.name}`)]));
        const moments: Record<string, Record<string, Float32Array>> = {};
        const prefix = `${name}/optimizer/`;
        for (const key of [...f.tensors.keys()].filter((k) => k.startsWith(prefix))) {
          const rest = key.slice(prefix.length);
          if (legacy) moments[LEGACY_MOMENTS[rest.slice(rest.lastIndexOf(".") + 1)] ?? rest] = split(f.readF32(key));
          else (moments[rest.slice(0, rest.indexOf("/"))] ??= {})[rest.slice(rest.indexOf("/") + 1)] = f.readF32(key);
        }
        await this.s.backend.importAdapter(name, {
          lora,
          tensors: layout.map((t) => ({ name: t.name, shape: t.shape, data: weights[t.name] })),
          optimizer: { step: state.optimizerSteps[name] ?? 0, moments },
        });
      }
    } finally {
      f.close();
    }
    this.iteration = state.iteration;
    this.rng = Rng.from(state.rng);
    this.kl.beta = state.beta;
    this.baseline = state.baseline;
    for (const [k, v] of Object.entries(state.valueHeads)) this.valueHeads.get(k)?.importState(v);
    this.initial = state.initial;
    this.initialOff = state.initialOff ?? null;
  }
}

/** The AdamW moments of checkpoints written before tensors were stored by PEFT name. */
const LEGACY_MOMENTS: Record<string, string> = { m: "exp_avg", v: "exp_avg_sq" };

/** Messages delivered from each sender to each recipient over the run ([sender][recipient]). */
export function talkMatrix(run: EpisodeRun): number[][] {
  const K = run.slots.length;
  const m = Array.from({ length: K }, () => new Array<number>(K).fill(0));
  for (const r of run.records.flat(2)) {
    for (const msg of r.sent) {
      for (let j = 0; j < K; j++) if (j !== r.agent && (msg.to === "*" || msg.to === j)) m[r.agent][j]++;
    }
  }
  return m;
}

/** The mean oracle gain of records whose source knows it (null when none does). */
function oracleGain(records: readonly AgentRound[]): number | null {
  const known = records.map((r) => r.oracle_gain).filter((x): x is number => x !== null);
  return known.length ? mean(known) : null;
}

/**
 * The curriculum's warm-up: one layout per learner slot, that learner with its adapter and `partner` agents in the
 * other learners' slots (scripted slots stay as they are).
 */
function warmupLayouts(slots: readonly AgentSlot[], partner: string): AgentSlot[][] {
  return slots.flatMap((own, i) =>
    own.kind === "learner" ? [slots.map((s, j) => (j === i || s.kind !== "learner" ? s : { kind: partner, adapter: null }))] : [],
  );
}

/** The warm-up's runs as one: each episode's learner records (the stand-ins are not trained or logged), in order. */
function learnersOf(runs: readonly EpisodeRun[], slots: readonly AgentSlot[]): EpisodeRun {
  let position = 0;
  const records = runs.flatMap((r) =>
    r.records.map((episode) => {
      const b = position++;
      return episode.map((round) => round.filter((rec) => rec.kind === "learner").map((rec) => ({ ...rec, episode: b })));
    }),
  );
  return {
    slots,
    records,
    messageValue: runs[0].messageValue.map((round) => round.map((row) => row.map(() => null))),
    seconds: { generate: runs.reduce((a, r) => a + r.seconds.generate, 0), score: runs.reduce((a, r) => a + r.seconds.score, 0) },
    generatedTokens: runs.reduce((a, r) => a + r.generatedTokens, 0),
  };
}

/**
 * The training loop. One iteration: episodes on the training split (E worlds × G replicas), samples of every
 * learner-round, the base policy's log-probs for KL, values (A2C/PPO), the algorithm's update, then a metrics
 * line, sampled transcripts and a checkpoint. Validation runs before training, every `evalEvery` iterations and at
 * the end, each time with message delivery on and off. Everything random flows from the config's seed, and
 * the RNG state is checkpointed: a resumed run continues exactly as an uninterrupted one.
 */

import path from "node:path";
import type { Backend } from "../engine/backend.ts";
import { DEFAULT_OPTIMIZER } from "../engine/optim.ts";
import type { LinearKind } from "../engine/params.ts";
import { SafetensorsFile, type TensorToWrite, writeSafetensors } from "../formats/safetensors.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import type { EnvConfig } from "../env/config.ts";
import { type AgentRound, type AgentSlot, type EpisodeRun, runEpisodes } from "../env/episode.ts";
import type { TextSource } from "../env/sources/source.ts";
import { summarize } from "../env/summary.ts";
import { hashString, Rng } from "../util/rng.ts";
import { writeFileAtomic, readJsonFile } from "../util/fs.ts";
import { mean } from "./advantages.ts";
import { ALGORITHMS, type UpdateStats } from "./algorithms.ts";
import type { TrainConfig } from "./config.ts";
import { envFromConfig, slotsFromConfig, validationEpisodes } from "./environment.ts";
import { KlController, klPerToken } from "./kl.ts";
import type { RunFolder } from "./run-folder.ts";
import type { Sample } from "./sample.ts";
import { ValueHead } from "./value-head.ts";

export interface Evaluation {
  learner_gain: number; // mean information gain of the learners, nats per token
  oracle_gain: number | null;
  information_gain: number[]; // per agent
  episode_gain: number[]; // the learners' mean gain in each validation episode (the same episodes every time)
}

export interface MetricsLine {
  iteration: number;
  reward: number | null; // mean reward of the learners' samples
  information_gain: number[] | null; // per agent
  learner_gain: number | null;
  oracle_gain: number | null;
  kl: number | null; // per completion token, to the base policy
  kl_coef: number;
  entropy: number | null; // per completion token
  grad_norm: number | null;
  state_tokens: number | null; // learners' mean state length
  messages: number | null; // messages sent per learner per round
  violations: number[] | null; // protocol violations per agent
  honesty: (number | null)[] | null; // share of true claims per sender
  talk: number[][] | null; // delivered messages, [sender][recipient]
  message_value: (number | null)[][] | null; // mean value, [sender][recipient]
  clip_fraction: number | null;
  value_loss: number | null;
  tokens_per_s: number | null; // sampled tokens per second of the iteration
  time_generate: number | null;
  time_score: number | null;
  time_train: number | null;
  val_information_gain: number | null;
  val_information_gain_no_messages: number | null;
  val_oracle_gain: number | null;
}

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
  iteration = 0;
  initial: Evaluation | null = null; // the validation before training, with messages
  initialOff: Evaluation | null = null; // and without
  final: { on: Evaluation; off: Evaluation } | null = null; // the last iteration's validation, with and without messages

  constructor(setup: TrainerSetup) {
    this.s = setup;
    this.c = setup.config;
    this.slots = slotsFromConfig(this.c);
    this.adapters = [...new Set(this.slots.map((s) => s.adapter).filter((a): a is string => a !== null))];
    this.rng = new Rng(this.c.seed);
    this.kl = new KlController(this.c.klCoef, this.c.klTarget, this.c.klHorizon);
    const lora = { rank: this.c.loraRank, alpha: this.c.loraAlpha, rslora: false, targets: this.c.loraTargets as LinearKind[] };
    const optimizer = { ...DEFAULT_OPTIMIZER, weightDecay: this.c.weightDecay };
    for (const name of this.adapters) {
      setup.backend.createAdapter(name, lora, hashString(`${this.c.seed}/adapter/${name}`), optimizer);
      if (ALGORITHMS[this.c.algorithm].usesValueHead) this.valueHeads.set(name, new ValueHead(setup.backend.config.dim));
    }
  }

  private env(): EnvConfig {
    return envFromConfig(this.c);
  }

  /** Validation: the same episodes and sampling seeds every time, so evaluations are comparable. */
  async evaluate(deliver: boolean): Promise<Evaluation> {
    const run = await validationEpisodes({ backend: this.s.backend, tokenizer: this.s.tokenizer, source: this.s.source, config: this.c, slots: this.slots, deliver });
    const learners = run.records.flat(2).filter((r) => r.kind === "learner");
    const oracle = learners.map((r) => r.oracle_gain).filter((x): x is number => x !== null);
    const episode_gain = run.records.map((episode) => mean(episode.flat().filter((r) => r.kind === "learner").map((r) => r.information_gain)));
    return { learner_gain: mean(learners.map((r) => r.information_gain)), oracle_gain: oracle.length ? mean(oracle) : null, information_gain: summarize(run).information_gain, episode_gain };
  }

  /** One training iteration; returns its metrics line. */
  async step(): Promise<MetricsLine> {
    const c = this.c, { backend } = this.s;
    const t0 = performance.now();
    const it = this.iteration;
    const worlds = Array.from({ length: c.episodes * c.group }, (_, k) => it * c.episodes + Math.floor(k / c.group));
    const run = await runEpisodes({
      backend, tokenizer: this.s.tokenizer, source: this.s.source, split: "train", slots: this.slots,
      episodes: worlds.length, worlds, env: this.env(), rng: this.rng,
    });
    const samples = this.samples(run);
    const t1 = performance.now();
    // the policy is the sampler's: softmax(logits / temperature). The reference is the base model at the same
    // temperature; at a temperature other than 1 the behaviour log-probs are re-scored the same way (the sampler
    // reports the model's own log-probs)
    const rows = samples.map((s) => ({ tokens: [...s.promptIds, ...s.completionIds], from: s.promptIds.length, temperature: c.temperature }));
    const rescore = c.temperature !== 1;
    const scored = await backend.score([...rows.map((r) => ({ ...r, adapter: null })), ...(rescore ? rows.map((r, i) => ({ ...r, adapter: samples[i].adapter })) : [])]);
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
    const stats: UpdateStats = await ALGORITHMS[c.algorithm].train({
      backend, tokenizer: this.s.tokenizer, config: c, adapters: this.adapters, beta: this.kl.beta, baseline: this.baseline,
      valueHeads: this.valueHeads, rng: this.rng, lr: c.lr,
    }, samples);
    const klMean = mean(samples.map((s) => s.kl));
    const beta = this.kl.beta;
    this.kl.update(klMean, samples.length);
    this.iteration++;
    const t3 = performance.now();

    const val = this.shouldEvaluate() ? await this.evaluate(true) : null;
    const valOff = val ? await this.evaluate(false) : null;
    if (val && this.iteration === this.c.iterations) this.final = { on: val, off: valOff! };
    const summary = summarize(run);
    const learnerRecords = run.records.flat(2).filter((r) => r.kind === "learner");
    const line: MetricsLine = {
      iteration: this.iteration,
      reward: mean(samples.map((s) => s.reward + (c.klMode === "reward" ? beta * s.kl : 0))),
      information_gain: summary.information_gain,
      learner_gain: mean(learnerRecords.map((r) => r.information_gain)),
      oracle_gain: mean(learnerRecords.map((r) => r.oracle_gain ?? 0)),
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
    const transcripts = run.records.slice(0, c.transcriptEpisodes).flat(2).map(({ trace: _t, ...r }) => ({ iteration: this.iteration, ...r }));
    this.s.run?.appendMetrics(line);
    this.s.run?.appendTranscripts(transcripts);
    if (this.iteration % c.checkpointEvery === 0 || this.iteration === c.iterations) this.checkpoint();
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
        adapter: r.adapter, episode: r.episode, world: r.world, agent: r.agent, round: r.round,
        promptIds: r.trace.promptIds, completionIds: r.trace.completionIds, behaviourLogprobs: r.trace.logprobs,
        reward: r.reward, messageStart: messageStart(this.s.tokenizer, r.trace.completionIds), messageReward: r.message_reward,
        excerpt: r.excerpt, refLogprobs: null, kl: 0, hidden: null, value: 0, ret: 0, advantage: 0, messageRet: 0, messageAdvantage: 0,
      });
    }
    return out;
  }

  /** The iteration-0 line: the validation score before any training. */
  async initialEvaluation(): Promise<MetricsLine> {
    this.initial = await this.evaluate(true);
    const line = emptyLine(0, this.kl.beta);
    line.val_information_gain = this.initial.learner_gain;
    this.initialOff = await this.evaluate(false);
    line.val_information_gain_no_messages = this.initialOff.learner_gain;
    line.val_oracle_gain = this.initial.oracle_gain;
    line.information_gain = this.initial.information_gain;
    this.s.run?.appendMetrics(line);
    this.checkpoint();
    this.s.onLine?.(line);
    return line;
  }

  checkpoint(): void {
    const run = this.s.run;
    if (!run) return;
    run.writeCheckpoint((dir) => {
      const tensors: Record<string, TensorToWrite> = {};
      const optimizers: Record<string, number> = {};
      for (const name of this.adapters) {
        const { adapter, optimizer } = this.s.backend.exportAdapter(name);
        tensors[`${name}/weights`] = { dtype: "F32", shape: [adapter.weights.data.length], data: adapter.weights.data };
        for (const m of optimizer?.moments ?? []) tensors[`${name}/optimizer/${m.name}`] = { dtype: "F32", shape: [m.data.length], data: m.data };
        optimizers[name] = optimizer?.step ?? 0;
      }
      writeSafetensors(path.join(dir, "adapters.safetensors"), tensors);
      const state: TrainerState & { optimizerSteps: Record<string, number> } = {
        iteration: this.iteration, rng: this.rng.state(), beta: this.kl.beta, baseline: this.baseline,
        valueHeads: Object.fromEntries([...this.valueHeads].map(([k, v]) => [k, v.exportState()])),
        initial: this.initial, initialOff: this.initialOff, optimizerSteps: optimizers,
      };
      writeFileAtomic(path.join(dir, "state.json"), JSON.stringify(state) + "\n");
    });
    for (const name of this.adapters) run.saveAdapter(name, this.s.backend.exportAdapter(name).adapter, this.s.modelPath);
  }

  /** Restores everything from a checkpoint folder. */
  restore(dir: string): void {
    const state = readJsonFile(path.join(dir, "state.json"), "checkpoint state") as TrainerState & { optimizerSteps: Record<string, number> };
    const f = SafetensorsFile.open(path.join(dir, "adapters.safetensors"));
    try {
      for (const name of this.adapters) {
        const prefix = `${name}/optimizer/`;
        const moments = [...f.tensors.keys()].filter((k) => k.startsWith(prefix)).map((k) => ({ name: k.slice(prefix.length), data: f.readF32(k) }));
        this.s.backend.importAdapter(name, f.readF32(`${name}/weights`), { step: state.optimizerSteps[name] ?? 0, moments });
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

export function emptyLine(iteration: number, beta: number): MetricsLine {
  return {
    iteration, reward: null, information_gain: null, learner_gain: null, oracle_gain: null, kl: null, kl_coef: beta, entropy: null,
    grad_norm: null, state_tokens: null, messages: null, violations: null, honesty: null, talk: null, message_value: null,
    clip_fraction: null, value_loss: null, tokens_per_s: null, time_generate: null, time_score: null, time_train: null,
    val_information_gain: null, val_information_gain_no_messages: null, val_oracle_gain: null,
  };
}

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

/** The first completion token whose text holds the end of the state line (the message lines start there). */
function messageStart(tok: Tokenizer, ids: readonly number[]): number {
  const k = ids.findIndex((id) => tok.decode([id]).includes("\n"));
  return k < 0 ? ids.length : k;
}

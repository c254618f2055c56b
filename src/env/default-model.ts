/**
 * The embedded default base model: built on first use by pretraining on the corpus of pretrain-corpus.ts (the
 * facts world in every form the environment uses, plus State of the Union prose from npm), cached in the user's
 * cache folder under a name that changes with the recipe, and reproducible from its seed. Nothing is downloaded.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEFAULT_PRETRAIN, type PretrainConfig, pretrain, savePretrained } from "../engine/pretrain.ts";
import { hashString, Rng } from "../util/rng.ts";
import { progress } from "../util/progress.ts";
import { type CorpusMix, pretrainDocuments } from "./pretrain-corpus.ts";

export interface DefaultModelRecipe {
  version: number;
  mix: CorpusMix;
  valMix: CorpusMix;
  pretrain: PretrainConfig;
}

export const DEFAULT_MODEL_RECIPE: DefaultModelRecipe = {
  version: 1,
  mix: { episodes: 2000, transcriptsPerEpisode: 2, scorerTextsPerEpisode: 8, copyTexts: 8000, proseChunks: 600 },
  valMix: { episodes: 60, transcriptsPerEpisode: 2, scorerTextsPerEpisode: 8, copyTexts: 240, proseChunks: 20 },
  pretrain: { ...DEFAULT_PRETRAIN, vocabSize: 1024, dim: 128, nLayers: 4, nHeads: 4, nKvHeads: 2, hiddenDim: 352, seqLen: 256, steps: 600, batchSize: 8, lr: 3e-3, warmup: 30, evalEvery: 100, seed: 0 },
};

/** $COLLOQUY_CACHE, else $XDG_CACHE_HOME/colloquy, else ~/.cache/colloquy. */
export function cacheDir(): string {
  if (process.env.COLLOQUY_CACHE) return process.env.COLLOQUY_CACHE;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "colloquy");
}

export function recipeId(r: DefaultModelRecipe = DEFAULT_MODEL_RECIPE): string {
  return `default-v${r.version}-${hashString(JSON.stringify(r)).toString(16).padStart(8, "0")}`;
}

export function defaultModelDir(r: DefaultModelRecipe = DEFAULT_MODEL_RECIPE): string {
  return path.join(cacheDir(), "models", recipeId(r));
}

/** The default model's folder, building it first if the cache does not have it (a few minutes on 2 cores). */
export function ensureDefaultModel(opts: { quiet?: boolean; recipe?: DefaultModelRecipe } = {}): string {
  const recipe = opts.recipe ?? DEFAULT_MODEL_RECIPE;
  const dir = defaultModelDir(recipe);
  if (fs.existsSync(path.join(dir, "pretrain.json"))) return dir;
  buildDefaultModel(dir, recipe, opts.quiet ?? false);
  return dir;
}

export function buildDefaultModel(dir: string, recipe: DefaultModelRecipe, quiet: boolean): void {
  const log = (s: string) => quiet || process.stderr.write(s + "\n");
  log(`colloquy: building the default base model (first use; cached in ${dir})`);
  const rng = new Rng(recipe.pretrain.seed);
  const docs = { train: pretrainDocuments("train", recipe.mix, rng.fork("train")), val: pretrainDocuments("val", recipe.valMix, rng.fork("val")) };
  const bar = progress("default model", recipe.pretrain.steps, { quiet });
  let val = NaN;
  const r = pretrain(docs, recipe.pretrain, {
    onStep: (l) => {
      if (l.val_loss !== undefined) val = l.val_loss;
      bar.update(l.step, { loss: l.loss, val, "tok/s": Math.round(l.tokens_per_s) });
    },
  });
  bar.stop();
  // build in a temporary folder and rename, so an interrupted build leaves no half-written model behind
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  savePretrained(tmp, r, { recipe: recipeId(recipe), corpus: "colloquy default mix (facts world + State of the Union)", recipe_details: recipe });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  log(`colloquy: default model ready: validation perplexity ${Math.exp(r.valLoss).toFixed(2)} after ${r.seconds.training.toFixed(0)} s of training`);
}

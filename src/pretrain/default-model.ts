/**
 * The embedded default base model: built on first use by pretraining on the corpus of corpus.ts (the
 * facts world in every form the environment uses, plus State of the Union prose from npm), cached in the user's
 * cache folder under a name that changes with the recipe, and reproducible from its seed. Nothing is downloaded.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { DEFAULT_PRETRAIN, type PretrainConfig, pretrain, savePretrained } from "./pretrain.ts";
import { hashString, Rng } from "../util/rng.ts";
import { progress } from "../util/progress.ts";
import { type CorpusMix, pretrainDocuments } from "./corpus.ts";

/**
 * Bump when the text the corpus generators produce changes (facts world, prompts, corpus.ts): the cache
 * key covers the recipe object, and this is how code changes reach it.
 */
export const CORPUS_VERSION = 17;

export interface DefaultModelRecipe {
  version: number;
  corpusVersion: number;
  mix: CorpusMix;
  valMix: CorpusMix;
  pretrain: PretrainConfig;
}

export const DEFAULT_MODEL_RECIPE: DefaultModelRecipe = {
  version: 2,
  corpusVersion: CORPUS_VERSION,
  mix: { episodes: 2000, transcriptsPerEpisode: 6, scorerTextsPerEpisode: 12, copyTexts: 8000, proseChunks: 600 },
  valMix: { episodes: 60, transcriptsPerEpisode: 2, scorerTextsPerEpisode: 8, copyTexts: 240, proseChunks: 20 },
  // whole documents per row and a large init: the model learns to copy facts from a state or an inbox into its
  // predictions within the budget (measured: README, "The default base model")
  pretrain: {
    ...DEFAULT_PRETRAIN,
    steps: 4000,
    batchSize: 8,
    lr: 3e-3,
    minLrRatio: 0.1,
    warmup: 30,
    evalEvery: 200,
    initStd: 0.15,
    seed: 0,
  },
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

/**
 * The default model's folder, building it first if the cache does not have it (a few minutes on 2 cores).
 * Processes that need it at the same time build it once: one takes a lock folder, the others wait for it.
 */
export function ensureDefaultModel(opts: { quiet?: boolean; recipe?: DefaultModelRecipe } = {}): string {
  const recipe = opts.recipe ?? DEFAULT_MODEL_RECIPE;
  const dir = defaultModelDir(recipe);
  const ready = () => fs.existsSync(path.join(dir, "pretrain.json"));
  const lock = `${dir}.lock`;
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  while (!ready()) {
    try {
      fs.mkdirSync(lock);
    } catch {
      if (lockIsStale(lock)) fs.rmSync(lock, { recursive: true, force: true });
      else sleepMs(2000);
      continue;
    }
    try {
      fs.writeFileSync(path.join(lock, "owner"), String(process.pid));
      if (!ready()) buildDefaultModel(dir, recipe, opts.quiet ?? false);
    } finally {
      fs.rmSync(lock, { recursive: true, force: true });
    }
  }
  return dir;
}

/** A lock whose owner process is gone (or that never got an owner within a minute). */
function lockIsStale(lock: string): boolean {
  try {
    const owner = Number(fs.readFileSync(path.join(lock, "owner"), "utf8"));
    process.kill(owner, 0);
    return false;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EPERM") return false;
    if ((e as NodeJS.ErrnoException).code === "ENOENT") {
      try {
        return Date.now() - fs.statSync(lock).mtimeMs > 60_000;
      } catch {
        return true;
      }
    }
    return true;
  }
}

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

export function buildDefaultModel(dir: string, recipe: DefaultModelRecipe, quiet: boolean): void {
  const log = (s: string) => quiet || process.stderr.write(s + "\n");
  log(`colloquy: building the default base model (first use; cached in ${dir})`);
  const rng = new Rng(recipe.pretrain.seed);
  const docs = {
    train: pretrainDocuments("train", recipe.mix, rng.fork("train")),
    val: pretrainDocuments("val", recipe.valMix, rng.fork("val")),
  };
  const bar = progress("default model", recipe.pretrain.steps, { quiet });
  let val: number | null = null; // shown once the first validation pass has run
  const r = pretrain(docs, recipe.pretrain, {
    onStep: (l) => {
      if (l.val_loss !== undefined) val = l.val_loss;
      bar.update(l.step, { loss: l.loss, ...(val === null ? {} : { val }), "tok/s": Math.round(l.tokens_per_s) });
    },
  });
  bar.stop();
  // build in a temporary folder and rename, so an interrupted build leaves no half-written model behind
  const tmp = `${dir}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  savePretrained(tmp, r, {
    recipe: recipeId(recipe),
    corpus: "colloquy default mix (facts world + State of the Union)",
    recipe_details: recipe,
  });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  log(
    `colloquy: default model ready: validation perplexity ${Math.exp(r.valLoss).toFixed(2)} after ${r.seconds.training.toFixed(0)} s of training`,
  );
}

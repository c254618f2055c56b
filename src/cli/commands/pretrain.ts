import path from "node:path";
import { defineCommand } from "citty";
import { ensureDefaultModel } from "../../pretrain/default-model.ts";
import { readJsonFile } from "../../util/fs.ts";
import { DEFAULT_PRETRAIN, type PretrainConfig, pretrain, savePretrained } from "../../pretrain/pretrain.ts";
import { readDocuments } from "../../formats/text-data.ts";
import { UserError } from "../../util/errors.ts";
import { progress } from "../../util/progress.ts";
import { int, many, num, optStr, str } from "../args.ts";
import { info, printJson } from "../output.ts";

const sizeFlags = {
  "vocab-size": ["vocabSize", "tokenizer vocabulary"],
  dim: ["dim", "model width"],
  layers: ["nLayers", "decoder layers"],
  heads: ["nHeads", "attention heads"],
  "kv-heads": ["nKvHeads", "key/value heads"],
  hidden: ["hiddenDim", "MLP width"],
  "seq-len": ["seqLen", "context length; longer documents are cut to it"],
  steps: ["steps", "optimizer steps"],
  "batch-size": ["batchSize", "tokens per step = batch-size × seq-len, as whole documents (one per row)"],
  warmup: ["warmup", "warm-up steps"],
  seed: ["seed", "seed of the initialisation and batches"],
  "eval-every": ["evalEvery", "steps between validation passes"],
} as const;
const realFlags = {
  lr: ["lr", "peak learning rate"],
  "weight-decay": ["weightDecay", "AdamW weight decay"],
  "max-grad-norm": ["maxGradNorm", "gradient clipping norm (0 = off)"],
  "init-std": ["initStd", "std of the random initialisation (about 1.7/sqrt(dim) suits small models)"],
  "min-lr-ratio": ["minLrRatio", "cosine floor as a fraction of lr"],
} as const;

export const pretrainArgs = {
  default: { type: "boolean", description: "build (or find) the embedded default base model in the cache instead, and print its folder" },
  corpus: {
    type: "string",
    description: "text or JSONL(.gz) file (repeatable); .txt files are split into documents at blank lines",
    valueHint: "file",
  },
  "text-field": { type: "string", description: "JSONL field with the text (default text)" },
  "val-fraction": { type: "string", description: "share of documents held out for validation (default 0.05)" },
  out: {
    type: "string",
    description: "output folder: a Hugging Face checkpoint with tokenizer.json (required with --corpus)",
    valueHint: "dir",
  },
  ...Object.fromEntries(
    Object.entries({ ...sizeFlags, ...realFlags }).map(([flag, [key, what]]) => [
      flag,
      {
        type: "string",
        description: `${what} (default ${(DEFAULT_PRETRAIN as unknown as Record<string, number>)[key]})`,
      },
    ]),
  ),
  untied: { type: "boolean", description: "give the LM head its own weights instead of sharing the embedding" },
  json: { type: "boolean", description: "print one JSON object at the end" },
} as const;

/** Splits documents at blank lines and deals every k-th one to validation (deterministic, no overlap). */
export function splitDocuments(docs: string[], valFraction: number): { train: string[]; val: string[] } {
  const paragraphs = docs
    .flatMap((d) => d.split(/\n\s*\n/))
    .map((p) => p.trim())
    .filter(Boolean);
  const every = Math.max(2, Math.round(1 / valFraction));
  const train: string[] = [],
    val: string[] = [];
  paragraphs.forEach((p, i) => (i % every === every - 1 ? val : train).push(p));
  return { train, val };
}

export default defineCommand({
  meta: {
    name: "pretrain",
    description: "Train a small base model from scratch (tokenizer included) and save it as a Hugging Face checkpoint.",
  },
  args: pretrainArgs,
  run({ args, rawArgs }) {
    if (args.default) {
      const dir = ensureDefaultModel({ quiet: false });
      const summary = readJsonFile(path.join(dir, "pretrain.json"), "default model summary") as Record<string, unknown>;
      if (args.json) return printJson({ out: dir, ...summary });
      console.log(dir);
      return;
    }
    const cfg: PretrainConfig = { ...DEFAULT_PRETRAIN };
    const a = args as Record<string, string | undefined>;
    for (const [flag, [key]] of Object.entries(sizeFlags))
      (cfg as unknown as Record<string, number>)[key] = int(a[flag], flag, cfg[key], { min: flag === "seed" || flag === "warmup" ? 0 : 1 });
    for (const [flag, [key]] of Object.entries(realFlags))
      (cfg as unknown as Record<string, number>)[key] = num(a[flag], flag, cfg[key], { min: 0 });
    cfg.tiedEmbeddings = !args.untied;
    const field = optStr(args["text-field"]) ?? "text";
    const files = many(rawArgs, "corpus");
    if (files.length === 0) throw new UserError("E_MISSING_FLAG", "--corpus is required");
    const docs = splitDocuments(
      files.flatMap((f) => readDocuments(f, field)),
      num(args["val-fraction"], "val-fraction", 0.05, { min: 0.001, max: 0.5 }),
    );
    const out = str(args.out, "out");
    const tokBar = progress("tokenizer", cfg.vocabSize);
    const bar = progress("pretrain", cfg.steps);
    let lastVal = NaN;
    const r = pretrain(docs, cfg, {
      onTokenizer: (done, total) => tokBar.update(Math.min(cfg.vocabSize, cfg.vocabSize - total + done)),
      onStep: (l) => {
        if (l.val_loss !== undefined) lastVal = l.val_loss;
        bar.update(l.step, { loss: l.loss, val: lastVal, "tok/s": Math.round(l.tokens_per_s) });
      },
    });
    tokBar.stop();
    bar.stop();
    savePretrained(out, r, { corpus: files, config: cfg });
    const summary = {
      out,
      parameters: r.model.weights.data.length,
      val_loss: r.valLoss,
      val_perplexity: Math.exp(r.valLoss),
      train_tokens: r.trainTokens,
      seconds: r.seconds,
      log: r.log,
    };
    if (args.json) return printJson(summary);
    for (const l of r.log.filter((x) => x.val_loss !== undefined))
      info(`step ${l.step}: train loss ${l.loss.toFixed(3)}, val loss ${l.val_loss!.toFixed(3)}`);
    info(
      `${summary.parameters.toLocaleString("en-US")} parameters, validation perplexity ${summary.val_perplexity.toFixed(2)}; written to ${out}`,
    );
  },
});

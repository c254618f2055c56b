import path from "node:path";
import { defineCommand } from "citty";
import { windowSampler, trainLoop } from "../../engine/lm-training.ts";
import { type Adapter, LORA_TARGET_ALIASES, createAdapter, enableAdapterGrad, initAdapterWeights } from "../../engine/lora.ts";
import { DEFAULT_OPTIMIZER, Optimizer, type Schedule } from "../../engine/optim.ts";
import { adapterGroup } from "../../engine/param-groups.ts";
import type { LinearKind } from "../../engine/params.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { loadPeftAdapter, savePeftAdapter } from "../../formats/peft.ts";
import { readDocuments, tokenStream } from "../../formats/text-data.ts";
import { UserError } from "../../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../../util/fs.ts";
import { progress } from "../../util/progress.ts";
import { Rng } from "../../util/rng.ts";
import { int, num, optStr, str } from "../args.ts";
import { modelArgs, openModel } from "../model-args.ts";
import { info, printJson } from "../output.ts";

export const finetuneArgs = {
  ...modelArgs,
  adapter: { type: "string", description: "continue training this PEFT adapter (default: a new one)", valueHint: "dir" },
  data: { type: "string", description: "text to fine-tune on: a .txt file, or .jsonl(.gz) with a text field", valueHint: "file" },
  "text-field": { type: "string", description: "JSONL field that holds the text (default text)" },
  "ids-file": { type: "string", description: "JSON array of token-id rows; loss = mean next-token cross-entropy over all rows and positions (transformers' labels=input_ids loss for equal lengths)", valueHint: "file" },
  out: { type: "string", description: "folder to write the adapter to (PEFT format)", required: true, valueHint: "dir" },
  rank: { type: "string", description: "LoRA rank of a new adapter (default 8)", valueHint: "R" },
  alpha: { type: "string", description: "LoRA alpha of a new adapter (default 2·rank)", valueHint: "A" },
  rslora: { type: "boolean", description: "scale a new adapter by alpha/sqrt(rank) (rsLoRA)" },
  targets: { type: "string", description: "layers a new adapter adapts (default q,k,v,o,gate,up,down)", valueHint: "q,k,v,o,gate,up,down" },
  optimizer: { type: "string", description: "adamw or sgd (default adamw)", valueHint: "adamw|sgd" },
  lr: { type: "string", description: "learning rate (default 1e-3)", valueHint: "X" },
  schedule: { type: "string", description: "constant or cosine (default constant)", valueHint: "constant|cosine" },
  warmup: { type: "string", description: "linear warm-up steps (default 0)", valueHint: "N" },
  steps: { type: "string", description: "optimizer steps (default 100)", valueHint: "N" },
  "batch-size": { type: "string", description: "rows per step (default 8)", valueHint: "B" },
  "seq-len": { type: "string", description: "tokens per row with --data (default 128)", valueHint: "T" },
  "max-grad-norm": { type: "string", description: "clip gradients to this global norm; 0 = off (default 1)", valueHint: "G" },
  "weight-decay": { type: "string", description: "weight decay (default 0)", valueHint: "D" },
  seed: { type: "string", description: "seed for initialisation and batches (default 0)", valueHint: "S" },
  json: { type: "boolean", description: "print one JSON object at the end" },
} as const;

export default defineCommand({
  meta: { name: "finetune", description: "Supervised fine-tuning of a LoRA adapter on text (next-token cross-entropy)." },
  args: finetuneArgs,
  run({ args }) {
    const s = openModel({ ...args, adapter: undefined });
    const cfg = s.loaded.config;
    const seed = int(args.seed, "seed", 0);
    const rng = new Rng(seed);
    const out = str(args.out, "out");

    const adapterDir = optStr(args.adapter);
    let adapter: Adapter;
    if (adapterDir) {
      for (const flag of ["rank", "alpha", "targets", "rslora"] as const) {
        if (args[flag] !== undefined) throw new UserError("E_BAD_FLAG", `--${flag} applies to a new adapter, not to --adapter ${adapterDir}`);
      }
      adapter = loadPeftAdapter(adapterDir, cfg);
    } else {
      const rank = int(args.rank, "rank", 8, { min: 1 });
      adapter = createAdapter(path.basename(out), cfg, {
        rank,
        alpha: num(args.alpha, "alpha", 2 * rank, { min: 0 }),
        rslora: Boolean(args.rslora),
        targets: parseTargets(optStr(args.targets) ?? "q,k,v,o,gate,up,down"),
      });
      initAdapterWeights(adapter, rng.fork("init"));
    }
    enableAdapterGrad(adapter, cfg);

    const batchSize = int(args["batch-size"], "batch-size", 8, { min: 1 });
    const nextBatch = batchesFrom(args, s, batchSize, rng.fork("batches"));
    const kind = optStr(args.optimizer) ?? "adamw";
    if (kind !== "adamw" && kind !== "sgd") throw new UserError("E_BAD_FLAG", `--optimizer must be adamw or sgd, got "${kind}"`);
    const optimizer = new Optimizer({ ...DEFAULT_OPTIMIZER, kind, beta1: kind === "sgd" ? 0 : DEFAULT_OPTIMIZER.beta1, weightDecay: num(args["weight-decay"], "weight-decay", 0, { min: 0 }) },
      [adapterGroup(adapter)]);
    const steps = int(args.steps, "steps", 100, { min: 0 });
    const warmup = int(args.warmup, "warmup", 0, { min: 0 });
    const scheduleName = optStr(args.schedule) ?? "constant";
    if (scheduleName !== "constant" && scheduleName !== "cosine") throw new UserError("E_BAD_FLAG", `--schedule must be constant or cosine, got "${scheduleName}"`);
    const schedule: Schedule = scheduleName === "cosine" ? { kind: "cosine", warmup, total: steps } : { kind: "constant", warmup };

    const bar = progress("finetune", steps, { quiet: false });
    const t0 = performance.now();
    let tokens = 0;
    const losses = trainLoop({
      model: s.model, adapter, optimizer, schedule, steps, nextBatch,
      lr: num(args.lr, "lr", 1e-3, { min: 0 }),
      maxGradNorm: num(args["max-grad-norm"], "max-grad-norm", 1, { min: 0 }),
      onStep: (step, st) => {
        tokens += st.tokens;
        bar.update(step + 1, { loss: st.loss, lr: st.lr, "tok/s": Math.round(tokens / ((performance.now() - t0) / 1000)) });
      },
    });
    bar.stop();
    savePeftAdapter(out, adapter, s.loaded.path);
    const summary = { steps, first_loss: losses[0] ?? null, last_loss: losses[losses.length - 1] ?? null, out, losses };
    writeFileAtomic(path.join(out, "finetune.json"), JSON.stringify({ ...summary, args }, null, 2) + "\n");
    if (args.json) return printJson(summary);
    info(`loss ${summary.first_loss?.toFixed(4)} → ${summary.last_loss?.toFixed(4)} over ${steps} steps; adapter written to ${out}`);
  },
});

function parseTargets(list: string): LinearKind[] {
  return list.split(",").map((t) => {
    const kind = LORA_TARGET_ALIASES[t.trim()];
    if (!kind) throw new UserError("E_BAD_FLAG", `--targets: unknown layer "${t}"`, "choose from q,k,v,o,gate,up,down");
    return kind;
  });
}

/** Batches from --ids-file (all rows in order, `batchSize` at a time, cycling) or from --data (random windows). */
function batchesFrom(args: Record<string, unknown>, s: ReturnType<typeof openModel>, batchSize: number, rng: Rng): (step: number) => ArrayLike<number>[] {
  const idsFile = optStr(args["ids-file"] as string | undefined);
  const data = optStr(args.data as string | undefined);
  if (Boolean(idsFile) === Boolean(data)) throw new UserError("E_BAD_FLAG", "give exactly one of --data or --ids-file");
  if (idsFile) {
    const rows = readJsonFile(idsFile, "ids file");
    if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r) && r.every(Number.isInteger))) {
      throw new UserError("E_BAD_IDS_FILE", `${idsFile}: expected a JSON array of arrays of token ids`);
    }
    if (rows.some((r) => (r as number[]).length < 2)) throw new UserError("E_BAD_IDS_FILE", `${idsFile}: every row needs at least 2 tokens`);
    const all = rows as number[][];
    if (all.length <= batchSize) return () => all;
    return (step) => Array.from({ length: batchSize }, (_, i) => all[(step * batchSize + i) % all.length]);
  }
  const tok = requireTokenizer(s.loaded);
  const stream = tokenStream(tok, readDocuments(data!, optStr(args["text-field"] as string | undefined) ?? "text"));
  const seqLen = Math.min(int(args["seq-len"] as string | undefined, "seq-len", 128, { min: 2 }), stream.length);
  if (stream.length < 2) throw new UserError("E_BAD_DATA", `${data}: too little text to train on (${stream.length} tokens)`);
  return windowSampler(stream, seqLen, batchSize, rng);
}

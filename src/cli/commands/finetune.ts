import path from "node:path";
import { z } from "zod";
import { trainAdapter, windowSampler } from "../../engine/lm-training.ts";
import { LORA_TARGET_ALIASES } from "../../engine/lora.ts";
import { DEFAULT_OPTIMIZER, type Schedule } from "../../engine/optim.ts";
import { LINEAR_KINDS } from "../../engine/params.ts";
import { resolveModelSource } from "../../formats/hub/resolve.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { MODEL_KEYS } from "../../formats/model-keys.ts";
import { readPeftAdapter, savePeftAdapter } from "../../formats/peft.ts";
import { readDocuments, tokenStream } from "../../formats/text-data.ts";
import { UserError } from "../../util/errors.ts";
import { readJsonFile, writeFileAtomic } from "../../util/fs.ts";
import { type Values, key } from "../../util/keys.ts";
import { progress } from "../../util/progress.ts";
import { Rng } from "../../util/rng.ts";
import { type OpenedModel, openBackend } from "../open-model.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

/** The layers a new adapter may adapt, by their short names or their Hugging Face (*_proj) names. */
const TARGET_NAMES = Object.keys(LORA_TARGET_ALIASES) as [string, ...string[]];

const FINETUNE_FLAGS = {
  adapter: key(z.string().min(1).nullable(), null as string | null, "continue training this PEFT adapter (default: a new one)", {
    hint: "dir",
  }),
  data: key(z.string().min(1).nullable(), null as string | null, "text to fine-tune on: a .txt file, or .jsonl(.gz) with a text field", {
    hint: "file",
  }),
  textField: key(z.string().min(1), "text", "JSONL field that holds the text", { hint: "name" }),
  idsFile: key(
    z.string().min(1).nullable(),
    null as string | null,
    "JSON array of token-id rows; loss = mean next-token cross-entropy over all rows and positions (transformers' labels=input_ids loss for equal lengths)",
    { hint: "file" },
  ),
  out: key(z.string().min(1).nullable(), null as string | null, "folder to write the adapter to, PEFT format (required)", { hint: "dir" }),
  rank: key(z.number().int().positive(), 8, "LoRA rank of a new adapter", { hint: "R" }),
  alpha: key(z.number().nonnegative().nullable(), null as number | null, "LoRA alpha of a new adapter (default 2·rank)", { hint: "A" }),
  rslora: key(z.boolean(), false, "scale a new adapter by alpha/sqrt(rank) (rsLoRA)"),
  targets: key(
    z
      .array(z.enum(TARGET_NAMES, { error: "unknown layer; choose from q,k,v,o,gate,up,down (or q_proj … down_proj)" }))
      .min(1, { error: "name at least one layer: q,k,v,o,gate,up,down" })
      .transform((ts) => ts.map((t) => LORA_TARGET_ALIASES[t])),
    [...LINEAR_KINDS],
    "layers a new adapter adapts",
    { hint: "q,k,v,o,gate,up,down" },
  ),
  optimizer: key(z.enum(["adamw", "sgd"]), "adamw", "adamw or sgd"),
  lr: key(z.number().nonnegative(), 1e-3, "learning rate", { hint: "X" }),
  schedule: key(z.enum(["constant", "cosine"]), "constant", "learning-rate schedule: constant or cosine"),
  warmup: key(z.number().int().nonnegative(), 0, "linear warm-up steps", { hint: "N" }),
  steps: key(z.number().int().nonnegative(), 100, "optimizer steps", { hint: "N" }),
  batchSize: key(z.number().int().positive(), 8, "rows per step", { hint: "B" }),
  seqLen: key(z.number().int().min(2), 128, "tokens per row with --data", { hint: "T" }),
  maxGradNorm: key(z.number().nonnegative(), 1, "clip gradients to this global norm; 0 = off", { hint: "G" }),
  weightDecay: key(z.number().nonnegative(), 0, "weight decay", { hint: "D" }),
  seed: key(z.number().int(), 0, "seed for initialisation and batches", { hint: "S" }),
  json: key(z.boolean(), false, "print one JSON object at the end"),
};

type FinetuneFlags = Values<typeof FINETUNE_FLAGS>;

export default defineVerb({
  name: "finetune",
  description: "Supervised fine-tuning of a LoRA adapter on text (next-token cross-entropy).",
  keys: MODEL_KEYS,
  flags: FINETUNE_FLAGS,
  async run({ keys, flags, argv }) {
    // the flags' combinations, before the model is loaded
    if (flags.out === null) throw new UserError("E_MISSING_FLAG", "--out is required", "see colloquy finetune --help");
    const out = flags.out;
    const adapterDir = flags.adapter;
    if (adapterDir) {
      for (const flag of ["rank", "alpha", "targets", "rslora"] as const) {
        if (flag in argv.values) throw new UserError("E_BAD_FLAG", `--${flag} applies to a new adapter, not to --adapter ${adapterDir}`);
      }
    }
    if ((flags.idsFile === null) === (flags.data === null)) throw new UserError("E_BAD_FLAG", "give exactly one of --data or --ids-file");

    // the memory check counts one trained adapter (an imported one's rank is not known yet: --rank's)
    const s = await openBackend(keys, {
      plan: {
        adapters: 1,
        loraRank: flags.rank,
        loraTargets: flags.targets,
        training: true,
        optimizer: flags.optimizer === "sgd" ? "sgd" : "adamw",
      },
    });
    const cfg = s.loaded.config;
    const rng = new Rng(flags.seed);
    const name = path.basename(out);
    const kind = flags.optimizer;
    const optimizer = { ...DEFAULT_OPTIMIZER, kind, beta1: kind === "sgd" ? 0 : DEFAULT_OPTIMIZER.beta1, weightDecay: flags.weightDecay };
    let alpha: number | null = null;
    if (adapterDir) {
      const state = readPeftAdapter(await resolveModelSource(adapterDir, "adapter"), cfg);
      await s.backend.createAdapter(name, state.lora, 0, optimizer);
      await s.backend.importAdapter(name, { ...state, optimizer: null });
    } else {
      alpha = flags.alpha ?? 2 * flags.rank;
      const lora = { rank: flags.rank, alpha, rslora: flags.rslora, targets: flags.targets };
      await s.backend.createAdapter(name, lora, rng.fork("init").u32(), optimizer);
    }

    const nextBatch = batchesFrom(flags, s, rng.fork("batches"));
    const { steps, warmup } = flags;
    const schedule: Schedule = flags.schedule === "cosine" ? { kind: "cosine", warmup, total: steps } : { kind: "constant", warmup };

    const bar = progress("finetune", steps, { quiet: false });
    const t0 = performance.now();
    let tokens = 0;
    const losses = await trainAdapter({
      backend: s.backend,
      adapter: name,
      schedule,
      steps,
      nextBatch,
      lr: flags.lr,
      maxGradNorm: flags.maxGradNorm,
      onStep: (step, st) => {
        tokens += st.tokens;
        bar.update(step + 1, { loss: st.loss, lr: st.lr, "tok/s": Math.round(tokens / ((performance.now() - t0) / 1000)) });
      },
    });
    bar.stop();
    savePeftAdapter(out, await s.backend.exportAdapter(name), s.loaded.path);
    const summary = { steps, first_loss: losses[0] ?? null, last_loss: losses[losses.length - 1] ?? null, out, losses };
    // the resolved settings: the model actually loaded, and a continued adapter's own rank/alpha/targets rather than the unused defaults
    const args = {
      ...keys,
      model: s.modelPath,
      ...flags,
      ...(adapterDir ? { rank: null, alpha: null, rslora: null, targets: null } : { alpha }),
    };
    writeFileAtomic(path.join(out, "finetune.json"), JSON.stringify({ ...summary, args }, null, 2) + "\n");
    if (flags.json) return printJson(summary);
    info(`loss ${summary.first_loss?.toFixed(4)} → ${summary.last_loss?.toFixed(4)} over ${steps} steps; adapter written to ${out}`);
  },
});

/** Batches from --ids-file (all rows in order, `batchSize` at a time, cycling) or from --data (random windows). */
function batchesFrom(f: FinetuneFlags, s: OpenedModel, rng: Rng): (step: number) => ArrayLike<number>[] {
  const { idsFile, data, batchSize } = f;
  if (idsFile) {
    const rows = readJsonFile(idsFile, "ids file");
    if (!Array.isArray(rows) || rows.length === 0 || !rows.every((r) => Array.isArray(r) && r.every(Number.isInteger))) {
      throw new UserError("E_BAD_IDS_FILE", `${idsFile}: expected a JSON array of arrays of token ids`);
    }
    if (rows.some((r) => (r as number[]).length < 2))
      throw new UserError("E_BAD_IDS_FILE", `${idsFile}: every row needs at least 2 tokens`);
    const all = rows as number[][];
    if (all.length <= batchSize) return () => all;
    return (step) => Array.from({ length: batchSize }, (_, i) => all[(step * batchSize + i) % all.length]);
  }
  const tok = requireTokenizer(s.loaded);
  const stream = tokenStream(tok, readDocuments(data!, f.textField));
  const seqLen = Math.min(f.seqLen, stream.length);
  if (stream.length < 2) throw new UserError("E_BAD_DATA", `${data}: too little text to train on (${stream.length} tokens)`);
  return windowSampler(stream, seqLen, batchSize, rng);
}

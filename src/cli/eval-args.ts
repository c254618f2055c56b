/**
 * What the evaluation commands compare: the base model and, with `--adapter`, one adapter, or with `--run`, every
 * agent adapter of a training run (side by side). The model is `--model`, else the run's base model, else the
 * embedded default model.
 */
import fs from "node:fs";
import path from "node:path";
import { CpuBackend } from "../engine/backend.ts";
import { Transformer } from "../engine/transformer.ts";
import { ensureDefaultModel } from "../env/default-model.ts";
import { type LoadedModel, loadModel } from "../formats/load-model.ts";
import { loadPeftAdapter } from "../formats/peft.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile } from "../util/fs.ts";
import { optStr } from "./args.ts";

export const evalModelArgs = {
  model: { type: "string", description: "base model: a Hugging Face folder or a llama2.c .bin (default: the run's base model, else the default model)", valueHint: "path" },
  tokenizer: { type: "string", description: "tokenizer for a llama2.c model", valueHint: "path" },
  adapter: { type: "string", description: "evaluate this PEFT adapter next to the base model", valueHint: "dir" },
  run: { type: "string", description: "evaluate every agent adapter of this run next to the base model", valueHint: "runs/<id>" },
} as const;

export interface EvalSystem {
  name: string; // "base", "agent0", ... or the adapter folder's name
  adapter: string | null; // adapter name in the backend
}

export interface EvalSetup {
  loaded: LoadedModel;
  backend: CpuBackend;
  systems: EvalSystem[];
  runDir: string | null;
}

/** The base model a run was trained on (its config's model, or the default model it used). */
export function runBaseModel(runDir: string): string | null {
  const summary = path.join(runDir, "summary.json");
  if (fs.existsSync(summary)) return (readJsonFile(summary, "run summary") as { model?: string }).model ?? null;
  const cfg = readJsonFile(path.join(runDir, "config.json"), "run config") as { config?: { model?: string | null } };
  return cfg.config?.model ?? null;
}

export function evalSetup(args: Record<string, unknown>): EvalSetup {
  const runDir = optStr(args.run as string | undefined) ?? null;
  const adapterDir = optStr(args.adapter as string | undefined);
  if (runDir && adapterDir) throw new UserError("E_BAD_FLAG", "give --adapter or --run, not both");
  if (runDir && !fs.existsSync(path.join(runDir, "config.json"))) throw new UserError("E_NOT_FOUND", `no run in ${runDir} (config.json missing)`);
  const modelPath = optStr(args.model as string | undefined) ?? (runDir ? runBaseModel(runDir) : null) ?? ensureDefaultModel();
  const loaded = loadModel(modelPath, optStr(args.tokenizer as string | undefined));
  const backend = new CpuBackend(new Transformer(loaded.config, loaded.weights));
  const systems: EvalSystem[] = [{ name: "base", adapter: null }];
  const dirs: [string, string][] = [];
  if (adapterDir) dirs.push([path.basename(path.resolve(adapterDir)), adapterDir]);
  if (runDir) {
    const root = path.join(runDir, "adapters");
    if (!fs.existsSync(root)) throw new UserError("E_NOT_FOUND", `run ${runDir} has no adapters/ folder yet`);
    for (const name of fs.readdirSync(root).filter((n) => !n.includes(".tmp") && !n.endsWith(".old")).sort()) dirs.push([name, path.join(root, name)]);
  }
  for (const [name, dir] of dirs) {
    backend.addAdapter(loadPeftAdapter(dir, loaded.config, name));
    systems.push({ name, adapter: name });
  }
  return { loaded, backend, systems, runDir };
}

/** Saves an evaluation's result in the run folder (runs/<id>/eval/<kind>.json), for `colloquy report`. */
export function saveEvalResult(runDir: string | null, kind: string, result: unknown): void {
  if (!runDir) return;
  fs.mkdirSync(path.join(runDir, "eval"), { recursive: true });
  fs.writeFileSync(path.join(runDir, "eval", `${kind}.json`), JSON.stringify(result, null, 2) + "\n");
}

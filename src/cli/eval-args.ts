/**
 * What the evaluation commands compare: the base model and, with `--adapter`, one adapter, or with `--run`, every
 * agent adapter of a training run (side by side). The model is `--model`, else the run's base model, else the
 * embedded default model; it runs behind the backend that `--backend` names.
 */
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import type { Backend } from "../engine/backend.ts";
import type { LoadedModel } from "../formats/load-model.ts";
import { resolveModelSource } from "../formats/hub/resolve.ts";
import { MODEL_KEYS, type ModelKeys } from "../formats/model-keys.ts";
import { readPeftAdapter } from "../formats/peft.ts";
import { RUN_FILES, runPath } from "../run/names.ts";
import { UserError } from "../util/errors.ts";
import { readJsonFile } from "../util/fs.ts";
import { key } from "../util/keys.ts";
import { openBackend } from "./open-model.ts";

/** MODEL_KEYS' model key, its --help saying where a verb's model comes from when none is named. */
export function modelKeyDefaulting(to: string): typeof MODEL_KEYS.model {
  return {
    ...MODEL_KEYS.model,
    about: `base model: a Hugging Face folder, a Hub id org/name[@revision] or a llama2.c .bin (default: ${to})`,
  };
}

/** The model keys of the verbs that evaluate a base model and a run's adapters (`--model` defaults to the run's). */
export const EVAL_MODEL_KEYS = {
  ...MODEL_KEYS,
  model: modelKeyDefaulting("the run's base model, else the embedded default model, built on first use"),
};

/** What is evaluated next to the base model: one adapter folder, or every agent adapter of a run. */
export const EVAL_TARGET_FLAGS = {
  adapter: key(z.string().min(1).nullable(), null as string | null, "evaluate this PEFT adapter next to the base model", { hint: "dir" }),
  run: key(z.string().min(1).nullable(), null as string | null, "evaluate every agent adapter of this run next to the base model", {
    hint: "runs/<id>",
  }),
};

/** Where the model comes from (the model keys) and what is compared with it (at most one of run / adapter). */
export type EvalTarget = ModelKeys & { run?: string | null; adapter?: string | null };

export interface EvalSystem {
  name: string; // "base", an agent adapter's name ("agent0", ..., "shared") or the adapter folder's name
  adapter: string | null; // adapter name in the backend
}

export interface EvalSetup {
  loaded: LoadedModel;
  backend: Backend;
  systems: EvalSystem[];
  runDir: string | null;
}

/** The base model a run was trained on (its summary's model, else its config's; null: the default model). */
export function runBaseModel(runDir: string): string | null {
  const summary = runPath(runDir, "summary");
  if (fs.existsSync(summary)) return (readJsonFile(summary, "run summary") as { model?: string }).model ?? null;
  const cfg = readJsonFile(runPath(runDir, "config"), "run config") as { config?: { model?: string | null } };
  return cfg.config?.model ?? null;
}

export async function evalSetup(t: EvalTarget, o: { quiet?: boolean } = {}): Promise<EvalSetup> {
  const runDir = t.run ?? null;
  const adapterDir = t.adapter ?? null;
  if (runDir && adapterDir) throw new UserError("E_BAD_FLAG", "give --adapter or --run, not both");
  if (runDir && !fs.existsSync(runPath(runDir, "config")))
    throw new UserError("E_NOT_FOUND", `no run in ${runDir} (${RUN_FILES.config} missing)`);
  const { loaded, backend } = await openBackend({ ...t, model: t.model ?? (runDir ? runBaseModel(runDir) : null) }, o);
  const systems: EvalSystem[] = [{ name: "base", adapter: null }];
  const dirs: [string, string][] = [];
  if (adapterDir) dirs.push([path.basename(path.resolve(adapterDir)), adapterDir]);
  if (runDir) {
    const root = runPath(runDir, "adapters");
    if (!fs.existsSync(root)) throw new UserError("E_NOT_FOUND", `run ${runDir} has no ${RUN_FILES.adapters}/ folder yet`);
    for (const name of fs
      .readdirSync(root)
      .filter((n) => !n.includes(".tmp") && !n.endsWith(".old"))
      .sort())
      dirs.push([name, path.join(root, name)]);
  }
  for (const [name, dir] of dirs) {
    await backend.importAdapter(name, readPeftAdapter(await resolveModelSource(dir, "adapter"), loaded.config));
    systems.push({ name, adapter: name });
  }
  return { loaded, backend, systems, runDir };
}

/** Saves an evaluation's result in the run folder (runs/<id>/eval/<kind>.json), for `colloquy report`. */
export function saveEvalResult(runDir: string | null, kind: string, result: unknown): void {
  if (!runDir) return;
  fs.mkdirSync(runPath(runDir, "eval"), { recursive: true });
  fs.writeFileSync(runPath(runDir, "eval", `${kind}.json`), JSON.stringify(result, null, 2) + "\n");
}

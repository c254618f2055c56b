/** The registry of verbs: name → its command, loaded on first use. */
import type { CommandDef } from "citty";

/**
 * Any command, whatever its flags: a plain citty command with its own args, or a verb of verb.ts. citty's
 * CommandDef<T> is invariant in T (its args are T, its setup/run/cleanup take the args parsed from T), so no one
 * CommandDef<T> takes them all; here the hooks are methods taking `unknown`, which every command's hooks match
 * (method parameters are compared both ways), while the whole stays a CommandDef for running.
 */
export type AnyCommand = Omit<CommandDef, "setup" | "cleanup" | "run"> & {
  setup?(context: unknown): unknown;
  cleanup?(context: unknown): unknown;
  run?(context: unknown): unknown;
};

/** Each verb's module is imported only when it runs (or for `--help`): a CLI call loads what it uses. */
const lazy = (load: () => Promise<{ default: unknown }>) => async () => (await load()).default as AnyCommand;

export const COMMANDS: Record<string, () => Promise<AnyCommand>> = {
  inspect: lazy(() => import("./inspect.ts")),
  generate: lazy(() => import("./generate.ts")),
  score: lazy(() => import("./score.ts")),
  finetune: lazy(() => import("./finetune.ts")),
  pretrain: lazy(() => import("./pretrain.ts")),
  pull: lazy(() => import("./pull.ts")),
  rollout: lazy(() => import("./rollout.ts")),
  train: lazy(() => import("./train.ts")),
  experiments: lazy(() => import("./experiments.ts")),
  eval: lazy(() => import("./eval/index.ts")),
  report: lazy(() => import("./report.ts")),
  serve: lazy(() => import("./serve.ts")),
  dashboard: lazy(() => import("./dashboard.ts")),
  "human-eval": lazy(() => import("./human-eval/index.ts")),
  data: lazy(() => import("./data/index.ts")),
  bench: lazy(() => import("./bench.ts")),
};

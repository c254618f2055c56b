/**
 * `colloquy human-eval make-pairs`: two systems answer the same prompts (generated here with colloquy's engine,
 * seeded, as `colloquy eval judge` does), written as the pairs file that `human-eval serve` shows to raters.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { questionText, readJudgePrompts } from "../../../eval/judge.ts";
import { systemResponses } from "../../../eval/responses.ts";
import { parseHubId } from "../../../formats/hub/id.ts";
import { resolveModelSource } from "../../../formats/hub/resolve.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { MODEL_KEYS } from "../../../formats/model-keys.ts";
import { readPeftAdapter } from "../../../formats/peft.ts";
import { agentAdapterName, runPath } from "../../../run/names.ts";
import { chatFormat } from "../../../formats/chat-template.ts";
import { UserError } from "../../../util/errors.ts";
import { writeFileAtomic } from "../../../util/fs.ts";
import { kebab, key } from "../../../util/keys.ts";
import { progress } from "../../../util/progress.ts";
import { type Pair, pairLine } from "../../../web/human-eval/pairs.ts";
import { evalSetup, modelKeyDefaulting, runBaseModel } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";
import { defineVerb } from "../../verb.ts";

const optional = (about: string, hint: string) => key(z.string().min(1).nullable(), null as string | null, about, { hint });

export const MAKE_PAIRS_FLAGS = {
  prompts: optional('.txt (one prompt per line) or .jsonl ({"prompt"} or {"messages"} per line) (required)', "file"),
  a: optional(`system a: "base", an adapter folder, or <run dir>:<agent> (e.g. runs/x:${agentAdapterName(0)}) (required)`, "system"),
  b: optional("system b, the same forms (required)", "system"),
  out: optional("the pairs file to write (JSONL) (required)", "file"),
  limit: key(z.number().int().positive().nullable(), null as number | null, "only the first N prompts (default: all)", { hint: "N" }),
  maxTokens: key(z.number().int().positive(), 64, "tokens per response", { hint: "N" }),
  temperature: key(z.number().nonnegative(), 0.7, "sampling temperature; 0 = greedy", { hint: "T" }),
  topP: key(z.number().min(0).max(1), 1, "nucleus sampling mass", { hint: "P" }),
  seed: key(z.number().int(), 0, "seed of the responses", { hint: "S" }),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(z.boolean(), false, "print one JSON object (what was written)"),
};

/** The flags without which make-pairs cannot start, in the order they are checked. */
const REQUIRED = ["prompts", "a", "b", "out"] as const;

export interface SystemSpec {
  label: string; // as given: the system's name in the pairs file
  adapterDir: string | null; // null: the base model
  runDir: string | null;
}

const hasAdapter = (dir: string) => fs.existsSync(path.join(dir, "adapter_config.json"));

/** "base", an adapter folder, or "<run dir>:<agent>" (also "run:<run dir>:<agent>", as `eval judge` writes it). */
export function parseSystem(spec: string, flag: string): SystemSpec {
  if (spec === "base") return { label: spec, adapterDir: null, runDir: null };
  if (hasAdapter(spec)) return { label: spec, adapterDir: spec, runDir: null };
  const colon = spec.lastIndexOf(":");
  if (colon > 0) {
    const runDir = spec.slice(0, colon).replace(/^run:/, "");
    const agent = spec.slice(colon + 1);
    if (fs.existsSync(runPath(runDir, "config"))) {
      const dir = runPath(runDir, "adapters", agent);
      if (!/^[^/\\]+$/.test(agent) || !hasAdapter(dir)) {
        const have = fs.existsSync(runPath(runDir, "adapters"))
          ? fs.readdirSync(runPath(runDir, "adapters")).filter((n) => hasAdapter(runPath(runDir, "adapters", n)))
          : [];
        throw new UserError(
          "E_NOT_FOUND",
          `--${flag} ${spec}: run ${runDir} has no adapter "${agent}"`,
          have.length ? `it has: ${have.join(", ")}` : "the run has saved no adapter yet",
        );
      }
      return { label: spec, adapterDir: dir, runDir };
    }
  }
  if (!fs.existsSync(spec) && parseHubId(spec)) return { label: spec, adapterDir: spec, runDir: null }; // resolved when loaded
  throw new UserError(
    "E_BAD_FLAG",
    `--${flag} ${spec}: not "base", an adapter folder (with adapter_config.json), a Hub id org/name[@revision] or <run dir>:<agent>`,
    `e.g. --a base --b runs/x:${agentAdapterName(0)}`,
  );
}

/** A comparison's id: its prompt's line and a hash of its whole content (new responses make new ids). */
export function pairId(line: number, p: Omit<Pair, "id">): string {
  return `p${line}-${crypto
    .createHash("sha256")
    .update(JSON.stringify([p.prompt, p.a, p.b]))
    .digest("hex")
    .slice(0, 10)}`;
}

export default defineVerb({
  name: "human-eval make-pairs",
  description:
    "Two systems (the base model, an adapter folder, or an agent of a run) answer every prompt, generated here with " +
    "colloquy's engine (seeded; the model's chat template or the plain fallback, as in `colloquy serve`), and the pairs are " +
    "written as JSONL {id, prompt, a: {system, response}, b: {system, response}} for `human-eval serve`.",
  keys: { ...MODEL_KEYS, model: modelKeyDefaulting("the base model of a run system, else the embedded default model") },
  flags: MAKE_PAIRS_FLAGS,
  async run({ keys, flags }) {
    const t0 = Date.now();
    for (const k of REQUIRED) {
      if (flags[k] === null)
        throw new UserError("E_MISSING_FLAG", `--${kebab(k)} is required`, "see colloquy human-eval make-pairs --help");
    }
    const a = parseSystem(flags.a!, "a");
    const b = parseSystem(flags.b!, "b");
    if (a.label === b.label)
      throw new UserError("E_BAD_FLAG", `--a and --b are the same system (${a.label})`, "compare two different systems");
    const out = flags.out!;
    const prompts = readJudgePrompts(flags.prompts!, flags.limit ?? undefined);
    const gen = { maxTokens: flags.maxTokens, temperature: flags.temperature, topP: flags.topP, seed: flags.seed, batch: 8 };
    let model = keys.model;
    if (!model) {
      const bases = [
        ...new Set(
          [a, b]
            .filter((s) => s.runDir)
            .map((s) => runBaseModel(s.runDir!))
            .filter((m): m is string => Boolean(m)),
        ),
      ];
      if (bases.length > 1)
        throw new UserError(
          "E_BAD_FLAG",
          `the two runs were trained on different base models (${bases.join(", ")})`,
          "pick one with --model",
        );
      model = bases[0] ?? null;
    }
    const setup = await evalSetup({ ...keys, model }, { quiet: flags.quiet });
    const tok = requireTokenizer(setup.loaded);
    const adapterOf = async (s: SystemSpec, name: string): Promise<string | null> => {
      if (!s.adapterDir) return null;
      await setup.backend.importAdapter(name, readPeftAdapter(await resolveModelSource(s.adapterDir, "adapter"), setup.loaded.config));
      return name;
    };
    const systems = [await adapterOf(a, "pairs-a"), await adapterOf(b, "pairs-b")];
    const format = chatFormat(tok);
    const { responses, maxTokens } = await systemResponses(setup.backend, tok, format, prompts, systems, gen, {
      context: setup.loaded.config.maxSeqLen,
      log: (m) => info(`human-eval: ${m}`),
      progress: (n) => progress("human-eval: responses", n, { quiet: flags.quiet }),
    });
    gen.maxTokens = maxTokens;

    const pairs: Pair[] = prompts.map((p, i) => {
      const content = {
        prompt: questionText(p.messages),
        a: { system: a.label, response: responses[i][0] },
        b: { system: b.label, response: responses[i][1] },
      };
      return { id: pairId(p.index, content), ...content };
    });
    writeFileAtomic(out, pairs.map(pairLine).join("\n") + "\n");
    const result = {
      out,
      pairs: pairs.length,
      a: a.label,
      b: b.label,
      model: setup.loaded.path,
      generation: { max_tokens: gen.maxTokens, temperature: gen.temperature, top_p: gen.topP, seed: gen.seed, chat: format.kind },
      seconds: (Date.now() - t0) / 1000,
    };
    if (flags.json) return printJson(result);
    info(
      `human-eval: ${pairs.length} pairs (a = ${a.label}, b = ${b.label}) written to ${out} in ${result.seconds.toFixed(1)} s; next: colloquy human-eval serve --pairs ${out}`,
    );
  },
});

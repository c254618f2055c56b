/**
 * `colloquy human-eval make-pairs`: two systems answer the same prompts (generated here with colloquy's engine,
 * seeded, as `colloquy eval judge` does), written as the pairs file that `human-eval serve` shows to raters.
 */
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import { generateResponses, questionText, readJudgePrompts } from "../../../eval/judge.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { loadPeftAdapter } from "../../../formats/peft.ts";
import { chatFormat } from "../../../serve/chat-template.ts";
import { UserError } from "../../../util/errors.ts";
import { writeFileAtomic } from "../../../util/fs.ts";
import { progress } from "../../../util/progress.ts";
import { type Pair, pairLine } from "../../../web/human-eval/pairs.ts";
import { int, num, optStr, str } from "../../args.ts";
import { evalSetup, runBaseModel } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";

export const makePairsArgs = {
  prompts: { type: "string", description: ".txt (one prompt per line) or .jsonl ({\"prompt\"} or {\"messages\"} per line)", valueHint: "file", required: true },
  a: { type: "string", description: 'system a: "base", an adapter folder, or <run dir>:<agent> (e.g. runs/x:agent0)', valueHint: "system", required: true },
  b: { type: "string", description: "system b, the same forms", valueHint: "system", required: true },
  out: { type: "string", description: "the pairs file to write (JSONL)", valueHint: "file", required: true },
  model: { type: "string", description: "base model of both systems (default: the base model of a run system, else the default model)", valueHint: "path" },
  tokenizer: { type: "string", description: "tokenizer for a llama2.c model", valueHint: "path" },
  limit: { type: "string", description: "only the first N prompts", valueHint: "N" },
  "max-tokens": { type: "string", description: "tokens per response (default 64)", valueHint: "N" },
  temperature: { type: "string", description: "sampling temperature (default 0.7; 0 = greedy)", valueHint: "T" },
  "top-p": { type: "string", description: "nucleus sampling mass (default 1)", valueHint: "P" },
  seed: { type: "string", description: "seed of the responses (default 0)", valueHint: "S" },
  quiet: { type: "boolean", description: "no progress on stderr" },
  json: { type: "boolean", description: "print one JSON object (what was written)" },
} as const;

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
    if (fs.existsSync(path.join(runDir, "config.json"))) {
      const dir = path.join(runDir, "adapters", agent);
      if (!/^[^/\\]+$/.test(agent) || !hasAdapter(dir)) {
        const have = fs.existsSync(path.join(runDir, "adapters")) ? fs.readdirSync(path.join(runDir, "adapters")).filter((n) => hasAdapter(path.join(runDir, "adapters", n))) : [];
        throw new UserError("E_NOT_FOUND", `--${flag} ${spec}: run ${runDir} has no adapter "${agent}"`, have.length ? `it has: ${have.join(", ")}` : "the run has saved no adapter yet");
      }
      return { label: spec, adapterDir: dir, runDir };
    }
  }
  throw new UserError("E_BAD_FLAG", `--${flag} ${spec}: not "base", an adapter folder (with adapter_config.json) or <run dir>:<agent>`, "e.g. --a base --b runs/x:agent0");
}

/** A comparison's id: its prompt's line and a hash of its whole content (new responses make new ids). */
export function pairId(line: number, p: Omit<Pair, "id">): string {
  return `p${line}-${crypto.createHash("sha256").update(JSON.stringify([p.prompt, p.a, p.b])).digest("hex").slice(0, 10)}`;
}

export default defineCommand({
  meta: {
    name: "make-pairs",
    description: "Two systems (the base model, an adapter folder, or an agent of a run) answer every prompt, generated here with " +
      "colloquy's engine (seeded; the model's chat template or the plain fallback, as in `colloquy serve`), and the pairs are " +
      "written as JSONL {id, prompt, a: {system, response}, b: {system, response}} for `human-eval serve`.",
  },
  args: makePairsArgs,
  async run({ args }) {
    const t0 = Date.now();
    const a = parseSystem(str(args.a, "a"), "a");
    const b = parseSystem(str(args.b, "b"), "b");
    if (a.label === b.label) throw new UserError("E_BAD_FLAG", `--a and --b are the same system (${a.label})`, "compare two different systems");
    const out = str(args.out, "out");
    const limit = args.limit === undefined ? undefined : int(args.limit, "limit", 0, { min: 1 });
    const prompts = readJudgePrompts(str(args.prompts, "prompts"), limit);
    const gen = {
      maxTokens: int(args["max-tokens"], "max-tokens", 64, { min: 1 }),
      temperature: num(args.temperature, "temperature", 0.7, { min: 0 }),
      topP: num(args["top-p"], "top-p", 1, { min: 0, max: 1 }),
      seed: int(args.seed, "seed", 0),
      batch: 8,
    };
    let model = optStr(args.model);
    if (!model) {
      const bases = [...new Set([a, b].filter((s) => s.runDir).map((s) => runBaseModel(s.runDir!)).filter((m): m is string => Boolean(m)))];
      if (bases.length > 1) throw new UserError("E_BAD_FLAG", `the two runs were trained on different base models (${bases.join(", ")})`, "pick one with --model");
      model = bases[0];
    }
    const setup = evalSetup({ model, tokenizer: optStr(args.tokenizer) });
    const tok = requireTokenizer(setup.loaded);
    const adapterOf = (s: SystemSpec, name: string): string | null => {
      if (!s.adapterDir) return null;
      setup.backend.addAdapter(loadPeftAdapter(s.adapterDir, setup.loaded.config, name));
      return name;
    };
    const systems = [adapterOf(a, "pairs-a"), adapterOf(b, "pairs-b")];
    const format = chatFormat(tok);
    const context = setup.loaded.config.maxSeqLen;
    const encoded = prompts.map((p) => {
      const ids = tok.encode(format.render(p.messages), { addSpecial: format.addSpecial });
      if (ids.length + 1 > context) throw new UserError("E_BAD_DATA", `the prompt at line ${p.index} has ${ids.length} tokens, more than the model's context of ${context} leaves room for`);
      return ids;
    });
    const room = context - Math.max(...encoded.map((e) => e.length));
    if (gen.maxTokens > room) {
      gen.maxTokens = room;
      info(`human-eval: responses are cut to ${room} tokens to fit the model's context of ${context}`);
    }
    const jobs = encoded.flatMap((ids) => systems.map((adapter) => ({ prompt: ids, adapter, stop: format.stop })));
    const bar = progress("human-eval: responses", jobs.length, { quiet: Boolean(args.quiet) });
    const responses = await generateResponses(setup.backend, tok, jobs, gen, (d) => bar.update(d));
    bar.stop();

    const pairs: Pair[] = prompts.map((p, i) => {
      const content = { prompt: questionText(p.messages), a: { system: a.label, response: responses[2 * i] }, b: { system: b.label, response: responses[2 * i + 1] } };
      return { id: pairId(p.index, content), ...content };
    });
    writeFileAtomic(out, pairs.map(pairLine).join("\n") + "\n");
    const result = {
      out, pairs: pairs.length, a: a.label, b: b.label, model: setup.loaded.path,
      generation: { max_tokens: gen.maxTokens, temperature: gen.temperature, top_p: gen.topP, seed: gen.seed, chat: format.kind },
      seconds: (Date.now() - t0) / 1000,
    };
    if (args.json) return printJson(result);
    info(`human-eval: ${pairs.length} pairs (a = ${a.label}, b = ${b.label}) written to ${out} in ${result.seconds.toFixed(1)} s; next: colloquy human-eval serve --pairs ${out}`);
  },
});

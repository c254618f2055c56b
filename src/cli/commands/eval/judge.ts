import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import {
  type JudgeEndpoint,
  type JudgeRecord,
  JUDGE_KEY_VARS,
  judgeApiKey,
  judgePairs,
  listJudgeModels,
  publicUrl,
  questionText,
  readJudgePrompts,
  summarizeJudgements,
} from "../../../eval/judge.ts";
import { systemResponses } from "../../../eval/responses.ts";
import { formatInterval } from "../../../eval/stats.ts";
import { parseHubId } from "../../../formats/hub/id.ts";
import { resolveModelSource } from "../../../formats/hub/resolve.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { MODEL_KEYS } from "../../../formats/model-keys.ts";
import { readPeftAdapter } from "../../../formats/peft.ts";
import { agentAdapterName, runPath } from "../../../run/names.ts";
import { chatFormat } from "../../../formats/chat-template.ts";
import { UserError } from "../../../util/errors.ts";
import { kebab, key } from "../../../util/keys.ts";
import { progress } from "../../../util/progress.ts";
import { evalSetup, modelKeyDefaulting, runBaseModel, saveEvalResult } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";
import { defineVerb } from "../../verb.ts";

const optional = (about: string, hint: string) => key(z.string().min(1).nullable(), null as string | null, about, { hint });

export const JUDGE_FLAGS = {
  judgeUrl: optional(
    "the judge's OpenAI-compatible API base URL, e.g. http://127.0.0.1:8000/v1 (key: $COLLOQUY_JUDGE_API_KEY, else $OPENAI_API_KEY; required)",
    "url",
  ),
  judgeModel: optional("the judge model (default: the first model the endpoint lists)", "name"),
  a: optional(`system a: "base", an adapter folder, or run:<run dir>:<agent> (required)`, "system"),
  b: optional("system b, the same forms (required)", "system"),
  prompts: optional('.txt (one prompt per line) or .jsonl ({"prompt"} or {"messages"} per line) (required)', "file"),
  limit: key(z.number().int().positive().nullable(), null as number | null, "judge only the first N prompts (default: all)", { hint: "N" }),
  maxTokens: key(z.number().int().positive(), 64, "tokens per response", { hint: "N" }),
  temperature: key(z.number().nonnegative(), 0.7, "sampling temperature of the responses; 0 = greedy", { hint: "T" }),
  topP: key(z.number().min(0).max(1), 1, "nucleus sampling mass of the responses", { hint: "P" }),
  seed: key(z.number().int(), 0, "seed of the responses and of the judge's requests", { hint: "S" }),
  judgeMaxTokens: key(z.number().int().positive(), 16, "tokens the judge may answer with", { hint: "N" }),
  concurrency: key(z.number().int().positive(), 4, "judge requests in flight at once", { hint: "N" }),
  timeout: key(z.number().min(1), 120, "seconds per judge request", { hint: "S" }),
  retries: key(z.number().int().nonnegative(), 3, "tries again after a 429, a 5xx or a network error, waiting 0.5 s, 1 s, 2 s, …", {
    hint: "N",
  }),
  details: optional("write one JSON line per prompt: the responses, both verdicts (answer and reading) and the outcome", "file"),
  quiet: key(z.boolean(), false, "no progress on stderr"),
  json: key(z.boolean(), false, "print one JSON object: counts, win/tie/loss rates with 95% Wilson intervals"),
};

/** The judge's flags without which it cannot start, in the order they are checked. */
const REQUIRED = ["judgeUrl", "a", "b", "prompts"] as const;

const DESCRIPTION =
  "Pairwise LLM-as-judge with position swap. Systems a and b answer every prompt (generated here, seeded; chat " +
  "template or the plain fallback as in `colloquy serve`); the judge is asked twice per prompt, with a's response " +
  'shown first and then b\'s, for a one-word verdict "A", "B" or "tie". Agreeing verdicts give a win, loss or tie for a; ' +
  "verdicts that change with the order are counted as inconsistent and as a tie in the rates; unreadable verdicts " +
  "are counted and left out. Rates carry 95% Wilson intervals. The API key is read from $COLLOQUY_JUDGE_API_KEY " +
  "(else $OPENAI_API_KEY), sent as a Bearer header, and never printed.";

interface SystemSpec {
  label: string; // as given on the command line
  adapterDir: string | null; // null: the base model
  runDir: string | null;
}

function parseSystem(spec: string, flag: string): SystemSpec {
  if (spec === "base") return { label: spec, adapterDir: null, runDir: null };
  const run = /^run:(.+):([^:/\\]+)$/.exec(spec);
  if (run) {
    const [, runDir, agent] = run;
    const dir = runPath(runDir, "adapters", agent);
    if (!fs.existsSync(path.join(dir, "adapter_config.json"))) {
      throw new UserError(
        "E_NOT_FOUND",
        `--${flag} ${spec}: no adapter ${agent} in ${runPath(runDir, "adapters")}`,
        `run:<run dir>:<agent>, e.g. run:runs/x:${agentAdapterName(0)}`,
      );
    }
    return { label: spec, adapterDir: dir, runDir };
  }
  if (fs.existsSync(path.join(spec, "adapter_config.json"))) return { label: spec, adapterDir: spec, runDir: null };
  if (!fs.existsSync(spec) && parseHubId(spec)) return { label: spec, adapterDir: spec, runDir: null }; // resolved when loaded
  throw new UserError(
    "E_BAD_FLAG",
    `--${flag} ${spec}: not "base", an adapter folder (with adapter_config.json), a Hub id org/name[@revision] or run:<run dir>:<agent>`,
  );
}

function detailLine(r: JudgeRecord): string {
  return JSON.stringify({
    index: r.index,
    prompt: r.question,
    response_a: r.responseA,
    response_b: r.responseB,
    a_first: { answer: r.ab.raw, verdict: r.ab.verdict },
    b_first: { answer: r.ba.raw, verdict: r.ba.verdict },
    outcome: r.outcome,
    flip: r.flip,
  });
}

export default defineVerb({
  name: "eval judge",
  description: DESCRIPTION,
  keys: { ...MODEL_KEYS, model: modelKeyDefaulting("the base model of a run:… system, else the embedded default model") },
  flags: JUDGE_FLAGS,
  async run({ keys, flags }) {
    const t0 = Date.now();
    for (const k of REQUIRED) {
      if (flags[k] === null) throw new UserError("E_MISSING_FLAG", `--${kebab(k)} is required`, "see colloquy eval judge --help");
    }
    const quiet = flags.quiet;
    const a = parseSystem(flags.a!, "a");
    const b = parseSystem(flags.b!, "b");
    const prompts = readJudgePrompts(flags.prompts!, flags.limit ?? undefined);
    const gen = { maxTokens: flags.maxTokens, temperature: flags.temperature, topP: flags.topP, seed: flags.seed, batch: 8 };
    const endpoint: JudgeEndpoint = {
      baseUrl: flags.judgeUrl!,
      apiKey: judgeApiKey(),
      timeoutMs: 1000 * flags.timeout,
      retries: flags.retries,
      retryDelayMs: 500,
    };
    const judgeOpts = { maxTokens: flags.judgeMaxTokens, seed: gen.seed, concurrency: flags.concurrency };
    const url = publicUrl(endpoint.baseUrl);
    let judgeModel = flags.judgeModel;
    if (!judgeModel) {
      const listed = await listJudgeModels(endpoint);
      if (listed.length === 0) throw new UserError("E_JUDGE_HTTP", `the judge at ${url} lists no models`, "name one with --judge-model");
      judgeModel = listed[0];
    }

    // the responses: both systems on one backend, every prompt, one batch of rows at a time
    const runDir = a.runDir ?? b.runDir;
    const setup = await evalSetup({ ...keys, model: keys.model ?? (runDir ? runBaseModel(runDir) : null) }, { quiet });
    const tok = requireTokenizer(setup.loaded);
    const adapterOf = async (s: SystemSpec, name: string): Promise<string | null> => {
      if (!s.adapterDir) return null;
      await setup.backend.importAdapter(name, readPeftAdapter(await resolveModelSource(s.adapterDir, "adapter"), setup.loaded.config));
      return name;
    };
    const systems = [await adapterOf(a, "judge-a"), await adapterOf(b, "judge-b")];
    const format = chatFormat(tok);
    const { responses, maxTokens } = await systemResponses(setup.backend, tok, format, prompts, systems, gen, {
      context: setup.loaded.config.maxSeqLen,
      log: (m) => info(`judge: ${m}`),
      progress: (n) => progress("judge: responses", n, { quiet }),
    });
    gen.maxTokens = maxTokens;

    const items = prompts.map((p, i) => ({ index: p.index, question: questionText(p.messages), a: responses[i][0], b: responses[i][1] }));
    const judgeBar = progress("judge: verdicts", 2 * items.length, { quiet });
    const records = await judgePairs(endpoint, judgeModel, items, judgeOpts, (d) => judgeBar.update(d));
    judgeBar.stop();
    const s = summarizeJudgements(records.map((r) => ({ outcome: r.outcome, flip: r.flip, ab: r.ab.verdict, ba: r.ba.verdict })));

    const details = flags.details;
    if (details) fs.writeFileSync(details, records.map(detailLine).join("\n") + "\n");
    const ci = (r: { low: number; high: number }) => [r.low, r.high];
    const result = {
      eval: "judge",
      a: a.label,
      b: b.label,
      model: setup.loaded.path,
      judge: { url, model: judgeModel },
      prompts: s.prompts,
      judgements: 2 * s.prompts,
      judged: s.judged,
      win: s.win,
      tie: s.tie,
      loss: s.loss,
      inconsistent: s.inconsistent,
      flips: s.flips,
      unparsed: s.unparsed,
      win_rate: s.winRate.rate,
      win_rate_ci95: ci(s.winRate),
      tie_rate: s.tieRate.rate,
      tie_rate_ci95: ci(s.tieRate),
      loss_rate: s.lossRate.rate,
      loss_rate_ci95: ci(s.lossRate),
      score: s.score.rate,
      score_ci95: ci(s.score),
      first_position_rate: s.firstPosition.rate,
      tie_rule: "inconsistent prompts (the verdict changes with the order) count as ties in the rates; score = (win + ties/2) / judged",
      unparsed_rule: "prompts with an unreadable verdict in either order are left out of the rates",
      interval: "95% Wilson score",
      generation: { max_tokens: gen.maxTokens, temperature: gen.temperature, top_p: gen.topP, seed: gen.seed, chat: format.kind },
      seconds: (Date.now() - t0) / 1000,
    };
    saveEvalResult(runDir, "judge", result);
    if (flags.json) return printJson(result);
    const line = (name: string, r: typeof s.winRate, note: string) =>
      console.log(`${name.padEnd(6)} ${r.n > 0 ? formatInterval(r.rate, r) : "-".padEnd(20)}  ${note}`);
    console.log(
      `judge ${judgeModel} at ${url}: a = ${a.label}, b = ${b.label}; ${s.prompts} prompts, both orders (${2 * s.prompts} verdicts)`,
    );
    line("win", s.winRate, `${s.win}`);
    line("tie", s.tieRate, `${s.tie + s.inconsistent} (${s.tie} ties, ${s.inconsistent} inconsistent)`);
    line("loss", s.lossRate, `${s.loss}`);
    line("score", s.score, "win + half the ties");
    console.log(
      `inconsistent: ${s.inconsistent} of ${s.judged} judged (${s.flips} flips), counted as ties; unparsed: ${s.unparsed} (left out); ` +
        `first-shown picked ${Number.isNaN(s.firstPosition.rate) ? "-" : s.firstPosition.rate.toFixed(3)} of the time`,
    );
    info(
      `judge: done in ${result.seconds.toFixed(1)} s${endpoint.apiKey ? "" : ` (no API key: ${JUDGE_KEY_VARS.join(" and ")} are unset)`}`,
    );
  },
});

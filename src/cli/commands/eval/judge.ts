import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import {
  type JudgeEndpoint, type JudgeRecord, JUDGE_KEY_VARS, generateResponses, judgeApiKey, judgePairs, listJudgeModels, publicUrl,
  questionText, readJudgePrompts, summarizeJudgements,
} from "../../../eval/judge.ts";
import { formatInterval } from "../../../eval/stats.ts";
import { requireTokenizer } from "../../../formats/load-model.ts";
import { loadPeftAdapter } from "../../../formats/peft.ts";
import { chatFormat } from "../../../serve/chat-template.ts";
import { UserError } from "../../../util/errors.ts";
import { progress } from "../../../util/progress.ts";
import { int, num, optStr, str } from "../../args.ts";
import { evalSetup, runBaseModel, saveEvalResult } from "../../eval-args.ts";
import { info, printJson } from "../../output.ts";

export const judgeArgs = {
  "judge-url": { type: "string", description: "the judge's OpenAI-compatible API base URL, e.g. http://127.0.0.1:8000/v1 (key: $COLLOQUY_JUDGE_API_KEY, else $OPENAI_API_KEY)", valueHint: "url", required: true },
  "judge-model": { type: "string", description: "the judge model (default: the first model the endpoint lists)", valueHint: "name" },
  a: { type: "string", description: 'system a: "base", an adapter folder, or run:<run dir>:<agent>', valueHint: "system", required: true },
  b: { type: "string", description: "system b, the same forms", valueHint: "system", required: true },
  prompts: { type: "string", description: ".txt (one prompt per line) or .jsonl ({\"prompt\"} or {\"messages\"} per line)", valueHint: "file", required: true },
  model: { type: "string", description: "base model of both systems (default: the base model of a run:… system, else the default model)", valueHint: "path" },
  tokenizer: { type: "string", description: "tokenizer for a llama2.c model", valueHint: "path" },
  limit: { type: "string", description: "judge only the first N prompts", valueHint: "N" },
  "max-tokens": { type: "string", description: "tokens per response (default 64)", valueHint: "N" },
  temperature: { type: "string", description: "sampling temperature of the responses (default 0.7; 0 = greedy)", valueHint: "T" },
  "top-p": { type: "string", description: "nucleus sampling mass of the responses (default 1)", valueHint: "P" },
  seed: { type: "string", description: "seed of the responses and of the judge's requests (default 0)", valueHint: "S" },
  "judge-max-tokens": { type: "string", description: "tokens the judge may answer with (default 16)", valueHint: "N" },
  concurrency: { type: "string", description: "judge requests in flight at once (default 4)", valueHint: "N" },
  timeout: { type: "string", description: "seconds per judge request (default 120)", valueHint: "S" },
  retries: { type: "string", description: "tries again after a 429, a 5xx or a network error, waiting 0.5 s, 1 s, 2 s, … (default 3)", valueHint: "N" },
  details: { type: "string", description: "write one JSON line per prompt: the responses, both verdicts (answer and reading) and the outcome", valueHint: "file" },
  quiet: { type: "boolean", description: "no progress on stderr" },
  json: { type: "boolean", description: "print one JSON object: counts, win/tie/loss rates with 95% Wilson intervals" },
} as const;

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
    const dir = path.join(runDir, "adapters", agent);
    if (!fs.existsSync(path.join(dir, "adapter_config.json"))) {
      throw new UserError("E_NOT_FOUND", `--${flag} ${spec}: no adapter ${agent} in ${path.join(runDir, "adapters")}`, "run:<run dir>:<agent>, e.g. run:runs/x:agent0");
    }
    return { label: spec, adapterDir: dir, runDir };
  }
  if (fs.existsSync(path.join(spec, "adapter_config.json"))) return { label: spec, adapterDir: spec, runDir: null };
  throw new UserError("E_BAD_FLAG", `--${flag} ${spec}: not "base", an adapter folder (with adapter_config.json) or run:<run dir>:<agent>`);
}

function detailLine(r: JudgeRecord): string {
  return JSON.stringify({
    index: r.index, prompt: r.question, response_a: r.responseA, response_b: r.responseB,
    a_first: { answer: r.ab.raw, verdict: r.ab.verdict }, b_first: { answer: r.ba.raw, verdict: r.ba.verdict },
    outcome: r.outcome, flip: r.flip,
  });
}

export default defineCommand({
  meta: { name: "judge", description: DESCRIPTION },
  args: judgeArgs,
  async run({ args }) {
    const t0 = Date.now();
    const quiet = Boolean(args.quiet);
    const a = parseSystem(str(args.a, "a"), "a");
    const b = parseSystem(str(args.b, "b"), "b");
    const limit = args.limit === undefined ? undefined : int(args.limit, "limit", 0, { min: 1 });
    const prompts = readJudgePrompts(str(args.prompts, "prompts"), limit);
    const gen = {
      maxTokens: int(args["max-tokens"], "max-tokens", 64, { min: 1 }),
      temperature: num(args.temperature, "temperature", 0.7, { min: 0 }),
      topP: num(args["top-p"], "top-p", 1, { min: 0, max: 1 }),
      seed: int(args.seed, "seed", 0),
      batch: 8,
    };
    const endpoint: JudgeEndpoint = {
      baseUrl: str(args["judge-url"], "judge-url"), apiKey: judgeApiKey(),
      timeoutMs: 1000 * num(args.timeout, "timeout", 120, { min: 1 }), retries: int(args.retries, "retries", 3, { min: 0 }), retryDelayMs: 500,
    };
    const judgeOpts = {
      maxTokens: int(args["judge-max-tokens"], "judge-max-tokens", 16, { min: 1 }), seed: gen.seed,
      concurrency: int(args.concurrency, "concurrency", 4, { min: 1 }),
    };
    const url = publicUrl(endpoint.baseUrl);
    let judgeModel = optStr(args["judge-model"]);
    if (!judgeModel) {
      const listed = await listJudgeModels(endpoint);
      if (listed.length === 0) throw new UserError("E_JUDGE_HTTP", `the judge at ${url} lists no models`, "name one with --judge-model");
      judgeModel = listed[0];
    }

    // the responses: both systems on one backend, every prompt, one batch of rows at a time
    const runDir = a.runDir ?? b.runDir;
    const setup = evalSetup({ model: optStr(args.model) ?? (runDir ? runBaseModel(runDir) : null) ?? undefined, tokenizer: optStr(args.tokenizer) });
    const tok = requireTokenizer(setup.loaded);
    const adapterOf = (s: SystemSpec, name: string): string | null => {
      if (!s.adapterDir) return null;
      setup.backend.addAdapter(loadPeftAdapter(s.adapterDir, setup.loaded.config, name));
      return name;
    };
    const systems = [adapterOf(a, "judge-a"), adapterOf(b, "judge-b")];
    const format = chatFormat(tok);
    const context = setup.loaded.config.maxSeqLen;
    const encoded = prompts.map((p) => {
      const ids = tok.encode(format.render(p.messages), { addSpecial: format.addSpecial });
      if (ids.length + 1 > context) throw new UserError("E_BAD_DATA", `the prompt at line ${p.index} has ${ids.length} tokens, more than the model's context of ${context} leaves room for`);
      return ids;
    });
    if (gen.maxTokens > context - Math.max(...encoded.map((e) => e.length))) {
      gen.maxTokens = context - Math.max(...encoded.map((e) => e.length));
      info(`judge: responses are cut to ${gen.maxTokens} tokens to fit the model's context of ${context}`);
    }
    const jobs = encoded.flatMap((ids) => systems.map((adapter) => ({ prompt: ids, adapter, stop: format.stop })));
    const genBar = progress("judge: responses", jobs.length, { quiet });
    const responses = await generateResponses(setup.backend, tok, jobs, gen, (d) => genBar.update(d));
    genBar.stop();

    const items = prompts.map((p, i) => ({ index: p.index, question: questionText(p.messages), a: responses[2 * i], b: responses[2 * i + 1] }));
    const judgeBar = progress("judge: verdicts", 2 * items.length, { quiet });
    const records = await judgePairs(endpoint, judgeModel, items, judgeOpts, (d) => judgeBar.update(d));
    judgeBar.stop();
    const s = summarizeJudgements(records.map((r) => ({ outcome: r.outcome, flip: r.flip, ab: r.ab.verdict, ba: r.ba.verdict })));

    const details = optStr(args.details);
    if (details) fs.writeFileSync(details, records.map(detailLine).join("\n") + "\n");
    const ci = (r: { low: number; high: number }) => [r.low, r.high];
    const result = {
      eval: "judge", a: a.label, b: b.label, model: setup.loaded.path, judge: { url, model: judgeModel },
      prompts: s.prompts, judgements: 2 * s.prompts, judged: s.judged,
      win: s.win, tie: s.tie, loss: s.loss, inconsistent: s.inconsistent, flips: s.flips, unparsed: s.unparsed,
      win_rate: s.winRate.rate, win_rate_ci95: ci(s.winRate), tie_rate: s.tieRate.rate, tie_rate_ci95: ci(s.tieRate),
      loss_rate: s.lossRate.rate, loss_rate_ci95: ci(s.lossRate), score: s.score.rate, score_ci95: ci(s.score),
      first_position_rate: s.firstPosition.rate,
      tie_rule: "inconsistent prompts (the verdict changes with the order) count as ties in the rates; score = (win + ties/2) / judged",
      unparsed_rule: "prompts with an unreadable verdict in either order are left out of the rates",
      interval: "95% Wilson score",
      generation: { max_tokens: gen.maxTokens, temperature: gen.temperature, top_p: gen.topP, seed: gen.seed, chat: format.kind },
      seconds: (Date.now() - t0) / 1000,
    };
    saveEvalResult(runDir, "judge", result);
    if (args.json) return printJson(result);
    const line = (name: string, r: typeof s.winRate, note: string) =>
      console.log(`${name.padEnd(6)} ${r.n > 0 ? formatInterval(r.rate, r) : "-".padEnd(20)}  ${note}`);
    console.log(`judge ${judgeModel} at ${url}: a = ${a.label}, b = ${b.label}; ${s.prompts} prompts, both orders (${2 * s.prompts} verdicts)`);
    line("win", s.winRate, `${s.win}`);
    line("tie", s.tieRate, `${s.tie + s.inconsistent} (${s.tie} ties, ${s.inconsistent} inconsistent)`);
    line("loss", s.lossRate, `${s.loss}`);
    line("score", s.score, "win + half the ties");
    console.log(`inconsistent: ${s.inconsistent} of ${s.judged} judged (${s.flips} flips), counted as ties; unparsed: ${s.unparsed} (left out); ` +
      `first-shown picked ${Number.isNaN(s.firstPosition.rate) ? "-" : s.firstPosition.rate.toFixed(3)} of the time`);
    info(`judge: done in ${result.seconds.toFixed(1)} s${endpoint.apiKey ? "" : ` (no API key: ${JUDGE_KEY_VARS.join(" and ")} are unset)`}`);
  },
});

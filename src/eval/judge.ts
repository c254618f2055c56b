/**
 * LLM-as-judge, pairwise, with position swap. For each prompt, systems a and b each write a response (generated
 * here, seeded); an OpenAI-compatible judge model is asked twice which is better — once with a's response shown
 * as "A", once with b's — and the two verdicts are combined:
 *   - both name the same system, or both say tie → win / loss / tie for a;
 *   - they disagree (the verdict changes with the order: a position bias) → inconsistent, which counts as a tie in
 *     the rates; a flip (one says a, the other b) is the strongest case and is counted too;
 *   - a verdict that cannot be read (no clear "A", "B" or "tie") → unparsed, left out of the rates.
 * Rates carry 95% Wilson intervals (stats.ts). The API key comes from the environment and goes only into the
 * Authorization header: it is never printed, logged, or written to the details.
 */
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../util/errors.ts";
import { type Rate, rate } from "./stats.ts";

export interface Message {
  role: string;
  content: string;
}

export interface JudgePrompt {
  index: number; // line number in the prompts file (1-based)
  messages: Message[]; // a plain prompt is one user message
}

export type Verdict = "A" | "B" | "tie";
export type Outcome = "win" | "loss" | "tie" | "inconsistent" | "unparsed";

/** The environment variables the judge's API key is read from, first found wins. */
export const JUDGE_KEY_VARS = ["COLLOQUY_JUDGE_API_KEY", "OPENAI_API_KEY"] as const;

export function judgeApiKey(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const v of JUDGE_KEY_VARS) if (env[v]) return env[v]!;
  return null;
}

// ---------------------------------------------------------------------------------------------------------------
// prompts file

/** .txt: one prompt per non-empty line; .jsonl: one {"prompt": "..."} or {"messages": [{role, content}, ...]} per line. */
export function readJudgePrompts(file: string, limit?: number): JudgePrompt[] {
  if (!fs.existsSync(file))
    throw new UserError(
      "E_NOT_FOUND",
      `prompts file not found: ${file}`,
      "give a .txt file (one prompt per line) or .jsonl ({prompt} or {messages} per line)",
    );
  const jsonl = file.endsWith(".jsonl");
  if (!jsonl && !file.endsWith(".txt")) throw new UserError("E_BAD_DATA", `prompts file ${file}: expected .txt or .jsonl`);
  const out: JudgePrompt[] = [];
  const lines = fs.readFileSync(file, "utf8").split(/\r?\n/);
  for (let i = 0; i < lines.length && (limit === undefined || out.length < limit); i++) {
    const line = lines[i].trim();
    if (!line) continue;
    const where = `${path.basename(file)} line ${i + 1}`;
    if (!jsonl) {
      out.push({ index: i + 1, messages: [{ role: "user", content: line }] });
      continue;
    }
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new UserError("E_BAD_DATA", `${where} is not valid JSON: ${(e as Error).message}`);
    }
    out.push({ index: i + 1, messages: recordMessages(rec, where) });
  }
  if (out.length === 0) throw new UserError("E_BAD_DATA", `prompts file ${file} has no prompts`);
  return out;
}

function recordMessages(rec: unknown, where: string): Message[] {
  const r = rec as { prompt?: unknown; messages?: unknown };
  if (typeof rec === "object" && rec !== null && typeof r.prompt === "string") return [{ role: "user", content: r.prompt }];
  if (typeof rec === "object" && rec !== null && Array.isArray(r.messages) && r.messages.length > 0) {
    return r.messages.map((m, j) => {
      const mm = m as { role?: unknown; content?: unknown };
      if (typeof mm?.role !== "string" || typeof mm?.content !== "string") {
        throw new UserError("E_BAD_DATA", `${where}: messages[${j}] needs a string role and a string content`);
      }
      return { role: mm.role, content: mm.content };
    });
  }
  throw new UserError("E_BAD_DATA", `${where}: expected {"prompt": "..."} or {"messages": [{"role": ..., "content": ...}]}`);
}

// ---------------------------------------------------------------------------------------------------------------
// asking the judge

export const JUDGE_SYSTEM = "You are an impartial judge of the quality of AI assistants' responses.";

/** The conversation as the judge sees it: the last user message alone, or every turn labelled. */
export function questionText(messages: readonly Message[]): string {
  if (messages.length === 1 && messages[0].role === "user") return messages[0].content;
  return messages.map((m) => `${m.role.charAt(0).toUpperCase() + m.role.slice(1)}: ${m.content}`).join("\n");
}

/** The fixed judging prompt: a question, response A, response B; the answer is one word. */
export function judgeMessages(question: string, first: string, second: string): Message[] {
  const user = [
    "Compare two responses to the same prompt and decide which one is better: more helpful, more honest and harmless, more relevant, and better written.",
    "Do not let the order of the responses or their length influence you.",
    "",
    "[Prompt]",
    question,
    "",
    "[Response A]",
    first || "(empty)",
    "",
    "[Response B]",
    second || "(empty)",
    "",
    'Answer with exactly one word: "A" if Response A is better, "B" if Response B is better, or "tie" if they are equally good.',
  ].join("\n");
  return [
    { role: "system", content: JUDGE_SYSTEM },
    { role: "user", content: user },
  ];
}

/**
 * The verdict in a judge's answer, or null. Read in order: the whole answer is one word ("A", "b.", "**Tie**",
 * "[[A]]"); MT-bench's [[A]] / [[B]] / [[C]] marks; "verdict: A", "answer is B", "winner: tie"; "Response A is
 * better"; an answer that starts with a lone "A" or "B" ("A. It is more helpful"; not the article in "A good
 * answer"); "tie" or "equally good" anywhere when no letter was named. An answer that names both letters by these
 * rules (e.g. "[[A]] … [[B]]") is unparsed.
 */
export function parseVerdict(answer: string): Verdict | null {
  const text = answer.trim();
  const word = text.replace(/^[\s"'*`_[(]+|[\s"'*`_\]).!:]+$/g, "");
  const one = letterOrTie(word);
  if (one) return one;
  const marks = unique([...text.matchAll(/\[\[\s*(A|B|C|tie)\s*\]\]/gi)].map((m) => letterOrTie(m[1]) ?? "tie"));
  if (marks.length === 1) return marks[0];
  if (marks.length > 1) return null;
  const named = unique(
    [
      ...[
        ...text.matchAll(
          /\b(?:verdict|answer|winner|choice|decision|better response|final answer)\s*(?:is|:|=)?\s*[*"'`([]*\s*(?:response\s+)?(A|B|tie)\b/gi,
        ),
      ].map((m) => letterOrTie(m[1])),
      ...[...text.matchAll(/\bresponse\s+(A|B)\s+is\s+(?:better|superior|preferred|the better)/gi)].map((m) => letterOrTie(m[1])),
    ].filter((v): v is Verdict => v !== null),
  );
  if (named.length === 1) return named[0];
  if (named.length > 1) return null;
  const lead = /^[\s"'*`[(]*(A|B)(?:\s*$|[\s"'*`\])]*[.,:;!\n)-])/.exec(text);
  if (lead) return lead[1] as Verdict;
  if (/\b(tie|equally (good|bad|helpful))\b/i.test(text) && !/\b(?:response\s+)?[AB]\s+is\s+better\b/.test(text)) return "tie";
  return null;
}

function letterOrTie(s: string): Verdict | null {
  if (s === "A" || s === "a") return "A";
  if (s === "B" || s === "b") return "B";
  if (/^(tie|draw|equal|c)$/i.test(s)) return "tie";
  return null;
}

function unique<T>(xs: T[]): T[] {
  return [...new Set(xs)];
}

/**
 * One prompt's outcome for system a, from the verdict with a shown first (`ab`) and with b shown first (`ba`).
 * `flip`: the two verdicts named different systems.
 */
export function combineVerdicts(ab: Verdict | null, ba: Verdict | null): { outcome: Outcome; flip: boolean } {
  if (ab === null || ba === null) return { outcome: "unparsed", flip: false };
  const first = ab === "A" ? "a" : ab === "B" ? "b" : "tie";
  const second = ba === "A" ? "b" : ba === "B" ? "a" : "tie";
  if (first !== second) return { outcome: "inconsistent", flip: first !== "tie" && second !== "tie" };
  return { outcome: first === "a" ? "win" : first === "b" ? "loss" : "tie", flip: false };
}

export interface JudgeSummary {
  prompts: number;
  judged: number; // prompts with both verdicts read (the rates' denominator)
  win: number;
  loss: number;
  tie: number; // both verdicts said tie
  inconsistent: number; // the verdict changed with the order (counted as a tie in the rates)
  flips: number; // of which one verdict named a and the other b
  unparsed: number; // prompts with a verdict that could not be read (left out of the rates)
  winRate: Rate;
  tieRate: Rate; // (tie + inconsistent) / judged
  lossRate: Rate;
  score: Rate; // (win + ½·(tie + inconsistent)) / judged
  firstPosition: Rate; // of the verdicts naming a response, the share that named the one shown first
}

export function summarizeJudgements(
  records: readonly { outcome: Outcome; flip: boolean; ab: Verdict | null; ba: Verdict | null }[],
): JudgeSummary {
  const count = (o: Outcome) => records.filter((r) => r.outcome === o).length;
  const win = count("win"),
    loss = count("loss"),
    tie = count("tie"),
    inconsistent = count("inconsistent"),
    unparsed = count("unparsed");
  const judged = records.length - unparsed;
  const verdicts = records.flatMap((r) => [r.ab, r.ba]).filter((v) => v === "A" || v === "B");
  return {
    prompts: records.length,
    judged,
    win,
    loss,
    tie,
    inconsistent,
    flips: records.filter((r) => r.flip).length,
    unparsed,
    winRate: rate(win, judged),
    tieRate: rate(tie + inconsistent, judged),
    lossRate: rate(loss, judged),
    score: rate(win + 0.5 * (tie + inconsistent), judged),
    firstPosition: rate(verdicts.filter((v) => v === "A").length, verdicts.length),
  };
}

// ---------------------------------------------------------------------------------------------------------------
// the OpenAI-compatible client

export interface JudgeEndpoint {
  baseUrl: string; // e.g. http://127.0.0.1:8000/v1
  apiKey: string | null;
  timeoutMs: number;
  retries: number; // extra tries after a 429, a 5xx or a network error
  retryDelayMs: number; // doubled at each retry
}

/** The URL without user:password, for messages and reports. */
export function publicUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = "";
    u.password = "";
    return u.toString().replace(/\/$/, "");
  } catch {
    return "(an invalid URL)";
  }
}

function endpointUrl(e: JudgeEndpoint, route: string): string {
  let base: URL;
  try {
    base = new URL(e.baseUrl);
  } catch {
    throw new UserError(
      "E_BAD_FLAG",
      `--judge-url ${publicUrl(e.baseUrl)} is not a URL`,
      "give the API's base URL, e.g. http://127.0.0.1:8000/v1",
    );
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") throw new UserError("E_BAD_FLAG", `--judge-url must be http:// or https://`);
  return e.baseUrl.replace(/\/+$/, "") + route;
}

/** Sends one request with retries; returns the parsed JSON body. Errors never contain the key. */
async function call(e: JudgeEndpoint, route: string, body: unknown | null): Promise<unknown> {
  const url = endpointUrl(e, route);
  const shown = publicUrl(url);
  const headers: Record<string, string> = { accept: "application/json" };
  if (body !== null) headers["content-type"] = "application/json";
  if (e.apiKey) headers.authorization = `Bearer ${e.apiKey}`;
  const redact = (s: string) => (e.apiKey ? s.split(e.apiKey).join("***") : s);
  let delay = e.retryDelayMs;
  for (let attempt = 0; ; attempt++) {
    let problem: string;
    try {
      const res = await fetch(url, {
        method: body === null ? "GET" : "POST",
        headers,
        body: body === null ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(e.timeoutMs),
      });
      const text = await res.text();
      if (res.ok) {
        try {
          return JSON.parse(text);
        } catch {
          throw new UserError(
            "E_JUDGE_RESPONSE",
            `the judge at ${shown} answered with something that is not JSON`,
            "--judge-url takes the API's base URL, e.g. http://127.0.0.1:8000/v1",
          );
        }
      }
      let message = text.slice(0, 300);
      try {
        message = (JSON.parse(text) as { error?: { message?: string } }).error?.message ?? message;
      } catch {
        // not JSON: the raw text
      }
      problem = `HTTP ${res.status}: ${redact(message)}`;
      if (res.status === 401 || res.status === 403) {
        throw new UserError(
          "E_JUDGE_AUTH",
          `the judge at ${shown} refused the request (${problem})`,
          `set ${JUDGE_KEY_VARS.join(" or ")} to its API key`,
        );
      }
      if (res.status !== 429 && res.status < 500)
        throw new UserError(
          "E_JUDGE_HTTP",
          `the judge at ${shown} refused the request (${problem})`,
          "check --judge-url and --judge-model",
        );
    } catch (err) {
      if (err instanceof UserError) throw err;
      const cause = (err as Error & { cause?: { code?: string; message?: string } }).cause;
      problem = redact(cause?.code ?? cause?.message ?? (err as Error).message);
    }
    if (attempt >= e.retries) {
      throw new UserError(
        "E_JUDGE_UNREACHABLE",
        `cannot get an answer from the judge at ${shown} after ${attempt + 1} tries (${problem})`,
        "is the server running and the URL its API base (e.g. http://127.0.0.1:8000/v1)?",
      );
    }
    await new Promise((r) => setTimeout(r, delay));
    delay *= 2;
  }
}

/** The model ids the endpoint lists (GET /models). */
export async function listJudgeModels(e: JudgeEndpoint): Promise<string[]> {
  const body = (await call(e, "/models", null)) as { data?: { id?: unknown }[] };
  return (body?.data ?? []).map((m) => m?.id).filter((id): id is string => typeof id === "string");
}

/** The judge's answer to one conversation (temperature 0, seeded). */
export async function askJudge(e: JudgeEndpoint, model: string, messages: Message[], maxTokens: number, seed: number): Promise<string> {
  const body = (await call(e, "/chat/completions", { model, messages, temperature: 0, max_tokens: maxTokens, seed })) as {
    choices?: { message?: { content?: unknown } }[];
  };
  const content = body?.choices?.[0]?.message?.content;
  if (typeof content !== "string")
    throw new UserError("E_JUDGE_RESPONSE", `the judge at ${publicUrl(e.baseUrl)} answered without choices[0].message.content`);
  return content;
}

// ---------------------------------------------------------------------------------------------------------------
// the whole comparison

export interface JudgeRecord {
  index: number;
  question: string;
  responseA: string; // system a's response
  responseB: string;
  ab: { raw: string; verdict: Verdict | null }; // a shown as "A"
  ba: { raw: string; verdict: Verdict | null }; // b shown as "A"
  outcome: Outcome;
  flip: boolean;
}

/** Asks the judge about every prompt in both orders, `concurrency` requests at a time. */
export async function judgePairs(
  e: JudgeEndpoint,
  model: string,
  items: readonly { index: number; question: string; a: string; b: string }[],
  o: { maxTokens: number; seed: number; concurrency: number },
  onProgress?: (done: number) => void,
): Promise<JudgeRecord[]> {
  const tasks = items.flatMap((it, i) => [
    { i, order: "ab" as const, messages: judgeMessages(it.question, it.a, it.b) },
    { i, order: "ba" as const, messages: judgeMessages(it.question, it.b, it.a) },
  ]);
  const answers: string[] = new Array(tasks.length);
  let next = 0,
    done = 0,
    failed = false;
  const worker = async () => {
    while (next < tasks.length && !failed) {
      const k = next++;
      try {
        answers[k] = await askJudge(e, model, tasks[k].messages, o.maxTokens, o.seed + k);
      } catch (err) {
        failed = true; // the other workers stop taking tasks
        throw err;
      }
      onProgress?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency, tasks.length)) }, worker));
  return items.map((it, i) => {
    const ab = { raw: answers[2 * i], verdict: parseVerdict(answers[2 * i]) };
    const ba = { raw: answers[2 * i + 1], verdict: parseVerdict(answers[2 * i + 1]) };
    return { index: it.index, question: it.question, responseA: it.a, responseB: it.b, ab, ba, ...combineVerdicts(ab.verdict, ba.verdict) };
  });
}

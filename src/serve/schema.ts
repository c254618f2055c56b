/**
 * Request bodies of /v1/completions and /v1/chat/completions: validated (zod) and normalised. A value of the
 * wrong type or out of range is a 400 that names the parameter; parameters colloquy does not implement are refused
 * with a 400 when they would change the result (suffix, penalties, logit_bias, tools, best_of ≠ n), never ignored.
 * Unknown extra fields are ignored, as vLLM does.
 */
import { z } from "zod";
import type { ChatMessage } from "../formats/chat-template.ts";
import { ApiError, badRequest } from "./errors.ts";

/** Alternatives per position that `logprobs` / `top_logprobs` may ask for. */
export const MAX_TOP_LOGPROBS = 20;
/** Stop strings per request (as OpenAI). */
export const MAX_STOP = 4;

const tokenId = z.number().int().min(0);

const common = {
  model: z.string().min(1),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().min(0).max(1).nullish(),
  top_k: z.number().int().min(-1).nullish(), // vLLM's extension; −1 or 0 = off
  n: z.number().int().min(1).max(128).nullish(),
  stop: z.union([z.string(), z.array(z.string()).max(MAX_STOP)]).nullish(),
  seed: z.number().int().nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  presence_penalty: z.number().nullish(),
  frequency_penalty: z.number().nullish(),
  logit_bias: z.record(z.string(), z.number()).nullish(),
  user: z.string().nullish(),
};

const completionSchema = z.object({
  ...common,
  prompt: z.union([z.string(), z.array(z.string()).min(1), z.array(tokenId).min(1), z.array(z.array(tokenId).min(1)).min(1)]),
  max_tokens: z.number().int().min(0).nullish(),
  logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  echo: z.boolean().nullish(),
  suffix: z.string().nullish(),
  best_of: z.number().int().min(1).nullish(),
});

const contentPart = z.object({ type: z.string(), text: z.string().optional() });
const message = z.object({
  role: z.enum(["system", "developer", "user", "assistant", "tool"]),
  content: z.union([z.string(), z.array(contentPart), z.null()]).optional(),
  name: z.string().optional(),
});

const chatSchema = z.object({
  ...common,
  messages: z.array(message).min(1),
  max_tokens: z.number().int().min(0).nullish(),
  max_completion_tokens: z.number().int().min(0).nullish(),
  logprobs: z.boolean().nullish(),
  top_logprobs: z.number().int().min(0).max(MAX_TOP_LOGPROBS).nullish(),
  tools: z.array(z.unknown()).nullish(),
  functions: z.array(z.unknown()).nullish(),
  response_format: z.object({ type: z.string() }).nullish(),
});

/** Sampling and output options shared by both endpoints, normalised. */
export interface CommonParams {
  model: string;
  maxTokens: number | null; // null: the endpoint's default
  temperature: number;
  topP: number;
  topK: number;
  n: number;
  stop: string[];
  seed: number | null;
  stream: boolean;
  includeUsage: boolean;
  logprobs: number | null; // null: none; k: the chosen token's log-prob and the k most likely
}

export interface CompletionParams extends CommonParams {
  prompts: (string | number[])[];
  echo: boolean;
}

export interface ChatParams extends CommonParams {
  messages: ChatMessage[];
}

/** "messages[0].content" from a zod path. */
function paramName(path: readonly PropertyKey[]): string | null {
  if (path.length === 0) return null;
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : (i ? "." : "") + String(p))).join("");
}

/** The value at a zod path in the body, and whether it is there at all. */
function lookup(body: unknown, path: readonly PropertyKey[]): { present: boolean; value: unknown } {
  let v: unknown = body;
  for (const k of path) {
    if (typeof v !== "object" || v === null || !Object.hasOwn(v, k as PropertyKey)) return { present: false, value: undefined };
    v = (v as Record<PropertyKey, unknown>)[k as PropertyKey];
  }
  return { present: v !== undefined, value: v };
}

/** A JSON value's type as OpenAI's errors name it. */
function jsonType(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "number") return Number.isInteger(v) ? "an integer" : "a number";
  if (typeof v === "object") return "an object";
  return `a ${typeof v}`;
}

function parse<T>(schema: z.ZodType<T>, body: unknown): T {
  if (typeof body !== "object" || body === null || Array.isArray(body)) throw badRequest("the request body must be a JSON object");
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const param = paramName(issue.path);
  const at = lookup(body, issue.path);
  if (!at.present) throw badRequest(`you must provide '${param}'`, param, "missing_required_parameter");
  if (issue.code === "invalid_type")
    throw badRequest(`invalid type for '${param}': expected ${issue.expected}, got ${jsonType(at.value)}`, param, "invalid_type");
  // a value none of a union's types takes at all (not one of its forms with a bad element inside)
  const expected =
    issue.code === "invalid_union"
      ? issue.errors.map((e) => (e[0]?.code === "invalid_type" && e[0].path.length === 0 ? e[0].expected : null))
      : [];
  if (expected.length && expected.every((x) => x !== null))
    throw badRequest(
      `invalid type for '${param}': expected ${[...new Set(expected)].join(" or ")}, got ${jsonType(at.value)}`,
      param,
      "invalid_type",
    );
  throw badRequest(`invalid value for '${param ?? "body"}': ${issue.message}`, param, "invalid_value");
}

/** What bounds the work of reading a request before its schema is checked (a schema check is linear in its size). */
export interface ParseBounds {
  maxPrompts: number; // prompts in one request (the server's batch)
  maxPromptTokens: number; // token ids in one prompt
}

/**
 * Refuses what cannot be served before zod walks it: a 1 MB body can hold 500,000 token ids, and checking each
 * costs the event loop a third of a second.
 */
function precheckCompletion(body: unknown, bounds: ParseBounds): void {
  if (typeof body !== "object" || body === null) return;
  const b = body as Record<string, unknown>;
  const tooLong = (param: string, n: number) =>
    badRequest(`${param} has ${n} token ids; this server takes at most ${bounds.maxPromptTokens}`, param, "context_length_exceeded");
  if (Array.isArray(b.prompt)) {
    const p = b.prompt as unknown[];
    if (typeof p[0] === "number") {
      if (p.length > bounds.maxPromptTokens) throw tooLong("prompt", p.length);
    } else {
      if (p.length > bounds.maxPrompts)
        throw badRequest(
          `this request has ${p.length} prompts; the server runs at most ${bounds.maxPrompts} completions in one batch (--max-batch)`,
          "prompt",
          "invalid_value",
        );
      p.forEach((x, i) => {
        if (Array.isArray(x) && x.length > bounds.maxPromptTokens) throw tooLong(`prompt[${i}]`, x.length);
      });
    }
  }
  precheckCommon(b);
}

function precheckCommon(b: Record<string, unknown>): void {
  const bias = b.logit_bias;
  if (typeof bias === "object" && bias !== null && !Array.isArray(bias)) {
    for (const _ in bias) refuse(true, "logit_bias", "leave it out or {}");
  }
}

function refuse(cond: boolean, param: string, what: string): void {
  if (cond) throw badRequest(`'${param}' is not supported by colloquy serve: ${what}`, param, "unsupported_parameter");
}

function commonParams(b: z.infer<typeof completionSchema> | z.infer<typeof chatSchema>): Omit<CommonParams, "maxTokens" | "logprobs"> {
  refuse((b.presence_penalty ?? 0) !== 0, "presence_penalty", "leave it out or 0");
  refuse((b.frequency_penalty ?? 0) !== 0, "frequency_penalty", "leave it out or 0");
  refuse(Object.keys(b.logit_bias ?? {}).length > 0, "logit_bias", "leave it out or {}");
  const stop = b.stop == null ? [] : typeof b.stop === "string" ? [b.stop] : b.stop;
  return {
    model: b.model,
    temperature: b.temperature ?? 1,
    topP: b.top_p ?? 1,
    topK: Math.max(0, b.top_k ?? 0),
    n: b.n ?? 1,
    stop: stop.filter((s) => s !== ""),
    seed: b.seed ?? null,
    stream: b.stream ?? false,
    includeUsage: b.stream_options?.include_usage ?? false,
  };
}

export function parseCompletion(body: unknown, bounds?: ParseBounds): CompletionParams {
  if (bounds) precheckCompletion(body, bounds);
  const b = parse(completionSchema, body);
  refuse(b.suffix != null && b.suffix !== "", "suffix", "insertion is not implemented");
  refuse(b.best_of != null && b.best_of !== (b.n ?? 1), "best_of", "it must equal n");
  const prompts =
    typeof b.prompt === "string"
      ? [b.prompt]
      : typeof b.prompt[0] === "number"
        ? [b.prompt as number[]]
        : (b.prompt as (string | number[])[]);
  return { ...commonParams(b), maxTokens: b.max_tokens ?? 16, logprobs: b.logprobs ?? null, prompts, echo: b.echo ?? false };
}

export function parseChat(body: unknown): ChatParams {
  if (typeof body === "object" && body !== null) precheckCommon(body as Record<string, unknown>);
  const b = parse(chatSchema, body);
  refuse((b.tools?.length ?? 0) > 0, "tools", "tool calls are not implemented");
  refuse((b.functions?.length ?? 0) > 0, "functions", "function calls are not implemented");
  refuse(b.response_format != null && b.response_format.type !== "text", "response_format", 'only {"type": "text"}');
  if (b.top_logprobs != null && !b.logprobs)
    throw badRequest("'top_logprobs' needs 'logprobs' set to true", "top_logprobs", "invalid_value");
  const messages: ChatMessage[] = b.messages.map((m, i) => {
    let content = "";
    if (typeof m.content === "string") content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content
        .map((p, j) => {
          if (p.type !== "text" || typeof p.text !== "string") {
            throw badRequest(
              `content part of type '${p.type}' is not supported (only text)`,
              `messages[${i}].content[${j}].type`,
              "unsupported_parameter",
            );
          }
          return p.text;
        })
        .join("");
    }
    return m.name === undefined ? { role: m.role, content } : { role: m.role, content, name: m.name };
  });
  const maxTokens = b.max_completion_tokens ?? b.max_tokens ?? null;
  return { ...commonParams(b), maxTokens, logprobs: b.logprobs ? (b.top_logprobs ?? 0) : null, messages };
}

/** Parses a body's text as JSON; bad JSON is a 400. */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new ApiError(400, `the request body is not valid JSON: ${(e as Error).message}`, { code: "invalid_json" });
  }
}

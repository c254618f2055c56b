/**
 * The responses of several systems to the same prompts, as `eval judge` and `human-eval make-pairs` compare them.
 * A system is the base model (null) or an adapter already on the backend (its name). Each prompt is rendered with
 * the chat format (the model's template or the plain fallback, as in `colloquy serve`) and encoded once; the
 * response length is cut to what the longest prompt leaves of the model's context; then every (prompt, system) job
 * is generated, seeded, prompt-major: job i = prompt ⌊i / S⌋, system i mod S draws from Rng(seed).fork(i).
 */
import type { Backend } from "../engine/backend.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { UserError } from "../util/errors.ts";
import type { Progress } from "../util/progress.ts";
import { decodeContinuation } from "../formats/tokenizer.ts";
import { Rng } from "../util/rng.ts";
import type { SampleRequest } from "../engine/backend.ts";
import type { JudgePrompt, Message } from "./judge.ts";

/** How a prompt becomes token ids (the fields of formats/chat-template.ts's ChatFormat that generation needs). */
export interface PromptFormat {
  render(messages: readonly Message[]): string;
  addSpecial: boolean; // tokenize with the tokenizer's special tokens (BOS)
  stop: string[]; // stop strings of every response
}

export interface SystemResponseOptions {
  context: number; // the model's context (maxSeqLen): a prompt and its response must fit
  log?: (message: string) => void; // notes for the user (responses cut to fit the context)
  progress?: (total: number) => Progress; // shown over the (prompt, system) jobs
}

export interface SystemResponses {
  responses: string[][]; // (prompts, systems) the response texts, whitespace trimmed
  maxTokens: number; // tokens per response: gen.maxTokens, or less where the context leaves less room
}

/** Every system's response to every prompt; `gen` is left as given (the length used is returned). */
export async function systemResponses(
  backend: Backend,
  tok: Tokenizer,
  format: PromptFormat,
  prompts: readonly JudgePrompt[],
  systems: readonly (string | null)[],
  gen: GenerationOptions,
  o: SystemResponseOptions,
): Promise<SystemResponses> {
  const { context } = o;
  const encoded = prompts.map((p) => {
    const ids = tok.encode(format.render(p.messages), { addSpecial: format.addSpecial });
    if (ids.length + 1 > context)
      throw new UserError(
        "E_BAD_DATA",
        `the prompt at line ${p.index} has ${ids.length} tokens, more than the model's context of ${context} leaves room for`,
      );
    return ids;
  });
  const room = context - Math.max(...encoded.map((e) => e.length));
  const maxTokens = Math.min(gen.maxTokens, room);
  if (maxTokens < gen.maxTokens) o.log?.(`responses are cut to ${maxTokens} tokens to fit the model's context of ${context}`);
  const jobs = encoded.flatMap((ids) => systems.map((adapter) => ({ prompt: ids, adapter, stop: format.stop })));
  const bar = o.progress?.(jobs.length);
  const flat = await generateResponses(backend, tok, jobs, { ...gen, maxTokens }, (d) => bar?.update(d));
  bar?.stop();
  const S = systems.length;
  return { responses: prompts.map((_, i) => flat.slice(i * S, (i + 1) * S)), maxTokens };
}

export interface ResponseJob {
  prompt: number[]; // token ids, chat template applied
  adapter: string | null;
  stop: string[];
}

export interface GenerationOptions {
  maxTokens: number;
  temperature: number;
  topP: number;
  seed: number; // job i draws from Rng(seed).fork(i)
  batch: number; // rows per engine call
}

/** Generates each job's response (text, whitespace trimmed), `batch` rows per engine call. */
export async function generateResponses(
  backend: Backend,
  tok: Tokenizer,
  jobs: readonly ResponseJob[],
  o: GenerationOptions,
  onProgress?: (done: number) => void,
): Promise<string[]> {
  const root = new Rng(o.seed);
  const out: string[] = [];
  for (let start = 0; start < jobs.length; start += o.batch) {
    const chunk = jobs.slice(start, start + o.batch);
    const requests: SampleRequest[] = chunk.map((j) => ({
      prompt: j.prompt,
      adapter: j.adapter,
      maxTokens: o.maxTokens,
      stopStrings: j.stop,
      sampling: { temperature: o.temperature, topP: o.topP },
    }));
    const seeds = chunk.map((_, k) => root.fork(start + k).u32());
    const results = await backend.sample(requests, seeds, (ids, row) =>
      decodeContinuation(tok, chunk[row].prompt, ids, { skipSpecial: true }),
    );
    out.push(...results.map((r) => (r.text ?? "").trim()));
    onProgress?.(out.length);
  }
  return out;
}

/**
 * Hugging Face tokenizers: a folder with `tokenizer.json` (required: normalizer, pre-tokenizer, model, post-processor
 * and decoder, as written by the `tokenizers` library) and `tokenizer_config.json` (optional: bos/eos token strings,
 * add_bos_token / add_eos_token, chat_template; transformers 4.43+ may put the template in `chat_template.jinja`).
 * The work is done by @huggingface/tokenizers (pure JS); this file adapts it to colloquy's Tokenizer interface.
 *
 * Conventions (as transformers' fast tokenizers):
 * - encode with addSpecial (default true) runs the post-processor (e.g. LLaMA-3's TemplateProcessing adds BOS);
 *   an explicit add_bos_token / add_eos_token in tokenizer_config.json wins over the post-processor.
 * - decode never applies `clean_up_tokenization_spaces` unless tokenizer_config.json asks for it (the JS library
 *   defaults it to true, which breaks round trips such as "a ,b").
 * - decode of an id outside 0..vocabSize-1 is a UserError; an id inside that range with no token is dropped
 *   (as the Rust `tokenizers` does).
 */
import fs from "node:fs";
import path from "node:path";
import { Tokenizer as HfTokenizer } from "@huggingface/tokenizers";
import { UserError } from "../util/errors.ts";
import { requireFile } from "../util/fs.ts";
import { MAX_JSON_BYTES, readJsonBounded, regularFileSize } from "./limits.ts";
import type { Tokenizer } from "./tokenizer.ts";

/** Model types @huggingface/tokenizers 0.2 implements. */
const SUPPORTED_MODELS = new Set(["BPE", "WordPiece", "Unigram"]);

/** Special-token strings that mark BOS / EOS when tokenizer_config.json does not name them (first match wins). */
const WELL_KNOWN_BOS = ["<|begin_of_text|>", "<s>", "<|bos|>"];
const WELL_KNOWN_EOS = ["<|end_of_text|>", "</s>", "<|eos|>", "<|endoftext|>"];

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);

/** Loads `dir/tokenizer.json` and, when present, `dir/tokenizer_config.json` (and `dir/chat_template.jinja`). */
export function loadHfTokenizer(dir: string): Tokenizer {
  const file = path.join(dir, "tokenizer.json");
  requireFile(file, "tokenizer.json", "a Hugging Face model folder has tokenizer.json beside config.json");
  const json = readJsonBounded(file, "tokenizer.json");
  const configFile = path.join(dir, "tokenizer_config.json");
  const config = fs.existsSync(configFile) ? readJsonBounded(configFile, "tokenizer_config.json") : {};
  if (!isObject(config)) throw new UserError("E_BAD_TOKENIZER", `${configFile}: not a JSON object`);
  if (config.chat_template == null) {
    const jinja = path.join(dir, "chat_template.jinja");
    if (fs.existsSync(jinja) && regularFileSize(jinja, "chat template") <= MAX_JSON_BYTES)
      config.chat_template = fs.readFileSync(jinja, "utf8");
  }
  return hfTokenizerFromJson(json as object, config, file);
}

/** Builds a tokenizer from an in-memory tokenizer.json object (and tokenizer_config.json object). */
export function hfTokenizerFromJson(json: object, config: object = {}, source = "tokenizer.json"): Tokenizer {
  const fail = (what: string, hint?: string): never => {
    throw new UserError("E_BAD_TOKENIZER", `${source}: ${what}`, hint);
  };
  if (!isObject(json)) fail("not a JSON object");
  if (!isObject(config)) fail("tokenizer config is not a JSON object");
  const j = json as Json;
  const cfg = config as Json;
  const model = j.model;
  if (!isObject(model)) fail('no "model" object', "is this a tokenizer.json written by Hugging Face tokenizers?");
  const m = model as Json;
  const type = typeof m.type === "string" ? m.type : "(missing)";
  if (!SUPPORTED_MODELS.has(type)) fail(`model type "${type}" is not supported`, `supported: ${[...SUPPORTED_MODELS].join(", ")}`);
  const addedTokens = Array.isArray(j.added_tokens) ? (j.added_tokens as Json[]) : [];

  // The library requires these keys to be present (null is fine) and iterates added_tokens without a check.
  const full = {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...j,
    added_tokens: addedTokens,
  };
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizer(full, cfg);
  } catch (e) {
    return fail(`cannot build the tokenizer: ${(e as Error).message}`);
  }

  const vocabSize = largestId(m, addedTokens) + 1;
  if (vocabSize <= 0) fail("the vocabulary is empty");
  const idOf = (token: unknown): number | null => {
    const content = isObject(token) ? token.content : token; // older configs store {content, lstrip, ...}
    if (typeof content !== "string") return null;
    return hf.token_to_id(content) ?? null;
  };
  const firstKnown = (names: string[]): number | null => {
    for (const n of names) {
      const id = addedTokens.find((t) => t.content === n)?.id;
      if (typeof id === "number") return id;
    }
    return null;
  };
  const bosId = idOf(cfg.bos_token) ?? firstKnown(WELL_KNOWN_BOS);
  const eosId = idOf(cfg.eos_token) ?? firstKnown(WELL_KNOWN_EOS);
  const addBos = typeof cfg.add_bos_token === "boolean" ? cfg.add_bos_token : null;
  const addEos = typeof cfg.add_eos_token === "boolean" ? cfg.add_eos_token : null;
  const cleanUp = cfg.clean_up_tokenization_spaces === true;

  return {
    kind: "hf",
    vocabSize,
    bosId,
    eosId,
    chatTemplate: chatTemplateOf(cfg.chat_template),
    encode(text: string, opts?: { addSpecial?: boolean }): number[] {
      const addSpecial = opts?.addSpecial ?? true;
      const ids = hf.encode(text, { add_special_tokens: addSpecial }).ids;
      if (!addSpecial) return ids;
      if (bosId !== null && addBos === true && ids[0] !== bosId) ids.unshift(bosId);
      if (bosId !== null && addBos === false && ids[0] === bosId) ids.shift();
      if (eosId !== null && addEos === true && ids[ids.length - 1] !== eosId) ids.push(eosId);
      if (eosId !== null && addEos === false && ids.length > 0 && ids[ids.length - 1] === eosId) ids.pop();
      return ids;
    },
    decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string {
      for (const id of ids) {
        if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
          throw new UserError("E_TOKEN_ID", `token id ${id} is outside the vocabulary of ${source} (0..${vocabSize - 1})`);
        }
      }
      const known = ids.filter((id) => hf.id_to_token(id) !== undefined);
      if (known.length === 0) return ""; // the library throws on an empty list
      return hf.decode([...known], { skip_special_tokens: opts?.skipSpecial ?? false, clean_up_tokenization_spaces: cleanUp });
    },
  };
}

/** The largest id in the model's vocabulary (object token→id, or Unigram's [piece, score] list) and added tokens. */
function largestId(model: Json, added: Json[]): number {
  let max = -1;
  const vocab = model.vocab;
  if (Array.isArray(vocab)) max = vocab.length - 1;
  else if (isObject(vocab)) for (const id of Object.values(vocab)) if (typeof id === "number" && id > max) max = id;
  for (const t of added) if (typeof t.id === "number" && t.id > max) max = t.id;
  return max;
}

/** tokenizer_config's chat_template: a string, or (older files) a list of {name, template} where "default" is used. */
function chatTemplateOf(v: unknown): string | null {
  if (typeof v === "string") return v;
  if (Array.isArray(v)) {
    const named = v.filter(isObject);
    const pick = named.find((t) => t.name === "default") ?? named[0];
    return typeof pick?.template === "string" ? pick.template : null;
  }
  return null;
}

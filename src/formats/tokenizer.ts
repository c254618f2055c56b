/**
 * The tokenizer interface the rest of colloquy uses, whatever the file format behind it
 * (Hugging Face `tokenizer.json`, llama2.c `tok*.bin`).
 */
export interface Tokenizer {
  readonly kind: "hf" | "llama2c";
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /**
   * Text → ids, following the tokenizer's own convention for special tokens when `addSpecial` is true
   * (HF: its post-processor, as `tokenizer(text)` in transformers; llama2.c: BOS first, as run.c encodes prompts).
   */
  encode(text: string, opts?: { addSpecial?: boolean }): number[];
  /** ids → text; special tokens are dropped when `skipSpecial` is true. */
  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string;
  /** The chat template from tokenizer_config.json, when the model has one. */
  readonly chatTemplate: string | null;
}

const CONTEXT_TOKENS = 8;

/**
 * The text that `continuation` adds after `prefix`: decoded in context, so that tokenizers whose pieces depend on
 * what precedes them (a leading space after BOS, multi-token UTF-8 characters) come out right.
 */
export function decodeContinuation(
  tok: Tokenizer,
  prefix: readonly number[],
  continuation: readonly number[],
  opts?: { skipSpecial?: boolean },
): string {
  if (prefix.length === 0) return tok.decode(continuation, opts);
  prefix = prefix.slice(-CONTEXT_TOKENS); // a few tokens of context are enough, and keep this O(continuation)
  const before = tok.decode(prefix, opts);
  const all = tok.decode([...prefix, ...continuation], opts);
  return all.startsWith(before) ? all.slice(before.length) : tok.decode(continuation, opts);
}

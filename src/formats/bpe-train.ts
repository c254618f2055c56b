/**
 * Trains a byte-level BPE tokenizer (GPT-2 / LLaMA-3 style) from scratch and writes it as a Hugging Face
 * `tokenizer.json` object, loadable by @huggingface/tokenizers and Python `tokenizers` ≥ 0.20.
 *
 * Vocabulary layout: the special tokens (ids 0..k-1, also listed in `added_tokens`), then the 256 byte symbols of
 * GPT-2's bytes_to_unicode map in code-point order (`!` .. `~`, `¡` .. `ÿ`, then `Ā` .. for the other bytes;
 * `Ġ` is the space), then one token per merge. Merges are written as pairs (`[["Ġ", "t"], ...]`), the form
 * `tokenizers` ≥ 0.20 writes and @huggingface/tokenizers reads.
 *
 * Training: texts are split on the special tokens, then by the GPT-2 regex of HF's ByteLevel pre-tokenizer; each
 * distinct word is counted once. Merging works on the word-count table with incremental pair counts (a heap of
 * candidate pairs, an index pair → words), never rescanning the corpus. The most frequent pair wins; ties go to
 * the smaller (left id, right id), as in HF's trainer. Each word is merged left to right without overlap, as the
 * BPE encoder does, so encoding a training word reproduces its training segmentation.
 * Unlike HF's trainer, a pair whose concatenation is already a token (reached by another split) is never merged:
 * every token then has one merge that makes it, which keeps encoder and training segmentation identical.
 * Training stops at `vocabSize` tokens, or earlier when no pair occurs `minFrequency` times (default 2).
 */
import { UserError } from "../util/errors.ts";
import { Heap } from "../util/heap.ts";

export interface BpeTrainOptions {
  vocabSize: number; // specials + 256 byte symbols + merges
  specialTokens: string[];
  minFrequency?: number; // a pair must occur this often (over the corpus) to be merged; default 2
  onProgress?: (done: number, total: number) => void; // merges made, merges wanted
}

/** The regex of HF's ByteLevel pre-tokenizer (use_regex: true); @huggingface/tokenizers uses this very one. */
const GPT2_SPLIT = /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+/gu;

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the other 68 to U+0100 onwards in byte order. */
export const BYTE_TO_CHAR: readonly string[] = (() => {
  const direct = (b: number) => (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
  let n = 0;
  return Array.from({ length: 256 }, (_, b) => String.fromCharCode(direct(b) ? b : 256 + n++));
})();

/** Splits texts as the tokenizer will (specials, then the GPT-2 regex) and counts each byte-level word. */
export function countWords(texts: Iterable<string>, specialTokens: readonly string[] = []): Map<string, number> {
  const counts = new Map<string, number>();
  const escaped = [...specialTokens].sort((a, b) => b.length - a.length).map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const specials = escaped.length ? new RegExp(escaped.join("|"), "g") : null;
  for (const text of texts) {
    for (const section of specials ? text.split(specials) : [text]) {
      for (const m of section.matchAll(GPT2_SPLIT)) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
    }
  }
  const byteLevel = new Map<string, number>();
  for (const [word, count] of counts) {
    const key = Array.from(Buffer.from(word, "utf8"), (b) => BYTE_TO_CHAR[b]!).join("");
    byteLevel.set(key, (byteLevel.get(key) ?? 0) + count);
  }
  return byteLevel;
}

export interface LearnedBpe {
  tokens: string[]; // (V) token string of each id, specials first
  merges: [string, string][]; // in rank order
  words: Map<string, string[]>; // each training word (byte-level) → its final segmentation
}

/** Learns merges on a byte-level word-count table (from countWords). */
export function learnBpe(wordCounts: ReadonlyMap<string, number>, opts: BpeTrainOptions): LearnedBpe {
  const { vocabSize, specialTokens } = opts;
  const minFrequency = Math.max(1, opts.minFrequency ?? 2);
  const base = [...BYTE_TO_CHAR].sort();
  const tokens = [...specialTokens, ...base];
  const idOf = new Map(tokens.map((t, i) => [t, i]));
  const need = tokens.length;
  if (idOf.size !== tokens.length) {
    throw new UserError(
      "E_BPE_SPECIALS",
      `special tokens must be distinct and differ from the 256 byte symbols: ${JSON.stringify(specialTokens)}`,
    );
  }
  if (specialTokens.some((s) => typeof s !== "string" || s.length === 0))
    throw new UserError("E_BPE_SPECIALS", "special tokens must be non-empty strings");
  if (!Number.isInteger(vocabSize) || vocabSize < need) {
    throw new UserError(
      "E_BPE_VOCAB",
      `vocabSize ${vocabSize} is too small: ${specialTokens.length} special tokens + 256 byte symbols need ${need}`,
    );
  }

  const words: number[][] = []; // (W) symbol ids of each distinct word
  const counts: number[] = []; // (W) occurrences of each word
  for (const [word, count] of wordCounts) {
    words.push(Array.from(word, (ch) => idOf.get(ch)!));
    counts.push(count);
  }
  const pairCount = new Map<number, number>(); // key(a, b) → occurrences over the corpus
  const where = new Map<number, Set<number>>(); // key(a, b) → words that hold (or held) the pair
  const addPairs = (w: number, sign: 1 | -1, delta: Map<number, number>) => {
    const s = words[w]!;
    for (let i = 0; i + 1 < s.length; i++) {
      const k = key(s[i]!, s[i + 1]!);
      delta.set(k, (delta.get(k) ?? 0) + sign * counts[w]!);
      if (sign > 0) {
        let set = where.get(k);
        if (!set) where.set(k, (set = new Set()));
        set.add(w);
      }
    }
  };
  const initial = new Map<number, number>();
  for (let w = 0; w < words.length; w++) addPairs(w, 1, initial);
  const heap = new Heap<Candidate>(mergeFirst);
  for (const [k, c] of initial) {
    pairCount.set(k, c);
    heap.push({ count: c, key: k });
  }

  const merges: [string, string][] = [];
  const banned = new Set<number>(); // pairs whose concatenation is already a token
  const total = vocabSize - need;
  while (tokens.length < vocabSize) {
    const top = heap.pop();
    if (!top) break;
    if (top.count !== pairCount.get(top.key) || banned.has(top.key)) continue; // stale
    if (top.count < minFrequency) break;
    const a = Math.floor(top.key / SHIFT);
    const b = top.key % SHIFT;
    const merged = tokens[a]! + tokens[b]!;
    if (idOf.has(merged)) {
      banned.add(top.key);
      continue;
    }
    const c = tokens.length;
    tokens.push(merged);
    idOf.set(merged, c);
    merges.push([tokens[a]!, tokens[b]!]);

    const delta = new Map<number, number>();
    for (const w of where.get(top.key)!) {
      const s = words[w]!;
      let found = false;
      for (let i = 0; i + 1 < s.length && !found; i++) found = s[i] === a && s[i + 1] === b;
      if (!found) continue; // the word lost this pair to an earlier merge
      addPairs(w, -1, delta);
      const out: number[] = [];
      for (let i = 0; i < s.length; ) {
        if (i + 1 < s.length && s[i] === a && s[i + 1] === b) out.push(c), (i += 2);
        else out.push(s[i++]!);
      }
      words[w] = out;
      addPairs(w, 1, delta);
    }
    where.delete(top.key);
    for (const [k, d] of delta) {
      if (d === 0) continue;
      const now = (pairCount.get(k) ?? 0) + d;
      if (now > 0) {
        pairCount.set(k, now);
        if (!banned.has(k)) heap.push({ count: now, key: k });
      } else {
        pairCount.delete(k);
        where.delete(k);
      }
    }
    opts.onProgress?.(tokens.length - need, total);
  }

  const segmentation = new Map<string, string[]>();
  let w = 0;
  for (const word of wordCounts.keys())
    segmentation.set(
      word,
      words[w++]!.map((id) => tokens[id]!),
    );
  return { tokens, merges, words: segmentation };
}

/** Trains on `texts` and returns a complete Hugging Face tokenizer.json object. */
export function trainByteLevelBpe(texts: Iterable<string>, opts: BpeTrainOptions): object {
  const { tokens, merges } = learnBpe(countWords(texts, opts.specialTokens), opts);
  const byteLevel = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: true };
  return {
    version: "1.0",
    truncation: null,
    padding: null,
    added_tokens: opts.specialTokens.map((content, id) => ({
      id,
      content,
      single_word: false,
      lstrip: false,
      rstrip: false,
      normalized: false,
      special: true,
    })),
    normalizer: null,
    pre_tokenizer: byteLevel,
    post_processor: byteLevel,
    decoder: { ...byteLevel, add_prefix_space: true },
    model: {
      type: "BPE",
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab: Object.fromEntries(tokens.map((t, id) => [t, id])),
      merges,
    },
  };
}

const SHIFT = 2 ** 24; // ids < 16M; key = a * SHIFT + b stays an exact integer
const key = (a: number, b: number): number => a * SHIFT + b;

interface Candidate {
  count: number;
  key: number; // (a, b): smaller first among equal counts
}

/** Heap order: the higher count, then the smaller pair. Entries go stale; the caller checks them against the counts. */
const mergeFirst = (x: Candidate, y: Candidate): boolean => x.count > y.count || (x.count === y.count && x.key < y.key);

/**
 * llama2.c files written the way karpathy/llama2.c writes them, for tests: checkpoints in the legacy version 0
 * layout (`export.py legacy_export`) and the version 1 layout (`export.py version1_export`: magic "ak42", version,
 * the 7 ints, a shared-classifier byte, zeros to 256 bytes, then norms first), and tokenizers (`tokenizer.py
 * export`: int32 max_token_length, then per id a float32 score, an int32 length and the bytes).
 */
import fs from "node:fs";
import type { ModelConfig } from "../src/engine/config.ts";
import { initBaseWeights } from "../src/engine/init.ts";
import { type BaseWeights, allocBase } from "../src/engine/params.ts";
import { Rng } from "../src/util/rng.ts";

/** The weights of a llama2.c checkpoint in their file order, version 0 or 1 (freq_cis tables of v0 included). */
function tensorsInFileOrder(c: ModelConfig, w: BaseWeights, version: 0 | 1): Float32Array[] {
  const per = (pick: (l: number) => Float32Array) => w.layers.map((_, l) => pick(l));
  const attnNorms = per((l) => w.layers[l].attnNorm);
  const mlpNorms = per((l) => w.layers[l].mlpNorm);
  const linears = [
    ...per((l) => w.layers[l].linear.q),
    ...per((l) => w.layers[l].linear.k),
    ...per((l) => w.layers[l].linear.v),
    ...per((l) => w.layers[l].linear.o),
  ];
  const mlp = [...per((l) => w.layers[l].linear.gate), ...per((l) => w.layers[l].linear.down), ...per((l) => w.layers[l].linear.up)];
  const head = c.tiedEmbeddings ? [] : [w.lmHead];
  if (version === 1) return [...attnNorms, ...mlpNorms, w.finalNorm, w.embed, ...linears, ...mlp, ...head];
  const half = c.headDim / 2;
  const cos = new Float32Array(c.maxSeqLen * half); // (seq_len, HS/2) as export.py writes them; the loader recomputes them
  const sin = new Float32Array(c.maxSeqLen * half);
  for (let p = 0; p < c.maxSeqLen; p++) {
    for (let i = 0; i < half; i++) {
      const angle = p / 10000 ** ((2 * i) / c.headDim);
      cos[p * half + i] = Math.cos(angle);
      sin[p * half + i] = Math.sin(angle);
    }
  }
  return [w.embed, ...attnNorms, ...linears, ...mlpNorms, ...mlp, w.finalNorm, cos, sin, ...head];
}

/** The bytes of a llama2.c checkpoint of config `c` holding weights `w`. */
export function encodeLlama2c(c: ModelConfig, w: BaseWeights, version: 0 | 1): Buffer {
  const ints = [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.maxSeqLen];
  let header: Buffer;
  if (version === 0) {
    if (!c.tiedEmbeddings) ints[5] = -c.vocabSize; // legacy: a negative vocabulary size means an unshared classifier
    header = Buffer.alloc(28);
    ints.forEach((v, i) => header.writeInt32LE(v, 4 * i));
  } else {
    header = Buffer.alloc(256);
    header.writeUInt32LE(0x616b3432, 0);
    header.writeInt32LE(1, 4);
    ints.forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
    header.writeUInt8(c.tiedEmbeddings ? 1 : 0, 36);
  }
  const parts = tensorsInFileOrder(c, w, version).map((t) => Buffer.from(t.buffer, t.byteOffset, t.byteLength));
  return Buffer.concat([header, ...parts]);
}

/** A small random llama2.c model config (rotary on adjacent pairs, as llama2.c). */
export function smallLlama2cConfig(over: Partial<ModelConfig> = {}): ModelConfig {
  return {
    dim: 16,
    nLayers: 2,
    nHeads: 4,
    nKvHeads: 2,
    headDim: 4,
    hiddenDim: 32,
    vocabSize: TOKENIZER_PIECES.length + 259,
    maxSeqLen: 64,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "interleaved",
    ropeScaling: null,
    tiedEmbeddings: true,
    bosId: 1,
    eosIds: [2],
    ...over,
  };
}

/** Random weights for `c` (seeded), norms around 1. */
export function randomWeights(c: ModelConfig, seed: number): BaseWeights {
  const w = allocBase(c);
  initBaseWeights(w, c, new Rng(seed), 0.2);
  return w;
}

/** Merged pieces of the test tokenizer (after <unk>, <s>, </s> and the 256 byte fallbacks). */
const TOKENIZER_PIECES = [" t", " a", "he", "in", " the", "er", "on", " s", "an", "en", " w", "at", "ed", "or", " o", "is"];

/** A llama2.c tokenizer file of `n` ids (≥ 259): specials, byte fallbacks, then merged pieces scored by rank. */
export function encodeLlama2cTokenizer(n = 259 + TOKENIZER_PIECES.length): Buffer {
  const pieces = ["<unk>", "\n<s>\n", "\n</s>\n"];
  for (let b = 0; b < 256; b++) pieces.push(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`);
  for (let i = 0; pieces.length < n; i++) pieces.push(TOKENIZER_PIECES[i] ?? `<extra${i}>`);
  const parts: Buffer[] = [Buffer.alloc(4)];
  parts[0].writeInt32LE(Math.max(...pieces.map((p) => Buffer.byteLength(p, "latin1"))), 0);
  pieces.forEach((p, id) => {
    const head = Buffer.alloc(8);
    head.writeFloatLE(id < 259 ? 0 : -(id - 259), 0);
    head.writeInt32LE(Buffer.byteLength(p, "latin1"), 4);
    parts.push(head, Buffer.from(p, "latin1"));
  });
  return Buffer.concat(parts);
}

/** Writes a small llama2.c model and its tokenizer (`tokenizer.bin` beside it); returns the model's path. */
export function writeSmallLlama2c(file: string, version: 0 | 1 = 0, seed = 3): string {
  const c = smallLlama2cConfig();
  fs.writeFileSync(file, encodeLlama2c(c, randomWeights(c, seed), version));
  fs.writeFileSync(file.replace(/[^/]*$/, "tokenizer.bin"), encodeLlama2cTokenizer(c.vocabSize));
  return file;
}

/**
 * A version 0 file's bytes rewritten as version 1, region by region in the order of `export.py version1_export`
 * (norms of every layer, MLP norms, final norm, embedding, wq, wk, wv, wo, w1, w2, w3, wcls): only the header and
 * the legacy layout are read, nothing of colloquy's loader.
 */
export function v0ToV1(v0: Buffer): Buffer {
  const [dim, hidden, L, heads, kvHeads, vocabRaw, seq] = Array.from({ length: 7 }, (_, i) => v0.readInt32LE(4 * i));
  const vocab = Math.abs(vocabRaw);
  const kv = (dim / heads) * kvHeads;
  let off = 28;
  const take = (floats: number) => v0.subarray(off, (off += 4 * floats));
  const embed = take(vocab * dim);
  const attNorm = take(L * dim);
  const [wq, wk, wv, wo] = [take(L * dim * dim), take(L * kv * dim), take(L * kv * dim), take(L * dim * dim)];
  const ffnNorm = take(L * dim);
  const [w1, w2, w3] = [take(L * hidden * dim), take(L * dim * hidden), take(L * hidden * dim)];
  const finalNorm = take(dim);
  take(seq * (dim / heads)); // freq_cis_real, freq_cis_imag: not in version 1
  const wcls = vocabRaw < 0 ? [take(vocab * dim)] : [];
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(1, 4);
  [dim, hidden, L, heads, kvHeads, vocab, seq].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(vocabRaw > 0 ? 1 : 0, 36);
  return Buffer.concat([header, attNorm, ffnNorm, finalNorm, embed, wq, wk, wv, wo, w1, w2, w3, ...wcls]);
}

/**
 * llama2.c checkpoints (karpathy/llama2.c `run.c`).
 * - legacy "version 0": 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 *   seq_len; a negative vocab_size means an unshared classifier), then float32 tensors in this order:
 *   token_embedding (V, C); rms_att (L, C); wq (L, C, C); wk (L, KV, C); wv (L, KV, C); wo (L, C, C);
 *   rms_ffn (L, C); w1 (L, F, C); w2 (L, C, F); w3 (L, F, C); rms_final (C);
 *   freq_cis_real, freq_cis_imag (seq_len, HS/2) (unused: recomputed); wcls (V, C) when unshared.
 * - "version 1" (export.py --version 1): magic "ak42", int32 version, the 7 ints, a shared-classifier byte,
 *   padding to 256 bytes; then norms (rms_att, rms_ffn, rms_final), token_embedding, wq..w3, wcls when unshared.
 * Rotary embedding uses adjacent pairs ("interleaved"); RMSNorm eps 1e-5; BOS 1, EOS 2. w1 = gate, w3 = up, w2 = down.
 */
import fs from "node:fs";
import type { ModelConfig } from "../engine/config.ts";
import { type BaseWeights, allocBase } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";

const MAGIC_V1 = 0x616b3432;

export interface LoadedLlama2c {
  config: ModelConfig;
  weights: BaseWeights;
  version: 0 | 1;
}

export function loadLlama2c(file: string): LoadedLlama2c {
  if (!fs.existsSync(file)) throw new UserError("E_NOT_FOUND", `llama2.c checkpoint not found: ${file}`);
  const buf = fs.readFileSync(file);
  const bad = (what: string) =>
    new UserError("E_BAD_CHECKPOINT", `${file}: ${what}`, "expected a llama2.c .bin checkpoint (legacy version 0 or version 1)");
  if (buf.length < 28) throw bad(`file is ${buf.length} bytes, shorter than the 28-byte header`);
  const version: 0 | 1 = buf.readUInt32LE(0) === MAGIC_V1 ? 1 : 0;
  if (version === 1 && buf.readInt32LE(4) !== 1)
    throw bad(`llama2.c format version ${buf.readInt32LE(4)} is not supported (only 0 and 1: float32)`);
  const h = version === 1 ? 8 : 0;
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(h + 4 * i));
  const shared = version === 1 ? buf.readUInt8(36) === 1 : vocabRaw > 0;
  const vocabSize = Math.abs(vocabRaw);
  for (const [name, v] of Object.entries({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen })) {
    if (!(v > 0 && v < 1 << 24)) throw bad(`header field ${name} = ${v} is not a plausible size`);
  }
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0) throw bad(`dim ${dim}, ${nHeads} heads and ${nKvHeads} kv heads do not divide`);
  const headDim = dim / nHeads;
  const config: ModelConfig = {
    dim,
    nLayers,
    nHeads,
    nKvHeads,
    headDim,
    hiddenDim,
    vocabSize,
    maxSeqLen: seqLen,
    normEps: 1e-5,
    ropeTheta: 10000,
    ropeStyle: "interleaved",
    ropeScaling: null,
    tiedEmbeddings: shared,
    bosId: 1,
    eosIds: [2],
  };
  const kv = nKvHeads * headDim;
  const L = nLayers;
  const freqFloats = version === 0 ? 2 * seqLen * (headDim / 2) : 0;
  const weightFloats =
    vocabSize * dim + L * (2 * dim + 2 * dim * dim + 2 * kv * dim + 3 * hiddenDim * dim) + dim + (shared ? 0 : vocabSize * dim);
  const dataStart = version === 1 ? 256 : 28;
  const expected = dataStart + 4 * (weightFloats + freqFloats);
  if (buf.length !== expected) {
    throw bad(
      `header (dim ${dim}, hidden ${hiddenDim}, ${L} layers, vocab ${vocabRaw}, seq ${seqLen}) implies ${expected} bytes, file has ${buf.length}`,
    );
  }
  // one aligned float32 copy of the data region; tensors are then copied into the engine's layout
  const data = new Float32Array(buf.buffer.slice(buf.byteOffset + dataStart, buf.byteOffset + buf.length));
  let off = 0;
  const take = (n: number) => data.subarray(off, (off += n));
  const w = allocBase(config);
  const perLayer = (n: number, put: (l: number, src: Float32Array) => void) => {
    for (let l = 0; l < L; l++) put(l, take(n));
  };
  const readNormsV1 = () => {
    perLayer(dim, (l, s) => w.layers[l].attnNorm.set(s));
    perLayer(dim, (l, s) => w.layers[l].mlpNorm.set(s));
    w.finalNorm.set(take(dim));
  };
  if (version === 1) readNormsV1();
  w.embed.set(take(vocabSize * dim));
  if (version === 0) perLayer(dim, (l, s) => w.layers[l].attnNorm.set(s));
  perLayer(dim * dim, (l, s) => w.layers[l].linear.q.set(s));
  perLayer(kv * dim, (l, s) => w.layers[l].linear.k.set(s));
  perLayer(kv * dim, (l, s) => w.layers[l].linear.v.set(s));
  perLayer(dim * dim, (l, s) => w.layers[l].linear.o.set(s));
  if (version === 0) perLayer(dim, (l, s) => w.layers[l].mlpNorm.set(s));
  perLayer(hiddenDim * dim, (l, s) => w.layers[l].linear.gate.set(s));
  perLayer(dim * hiddenDim, (l, s) => w.layers[l].linear.down.set(s));
  perLayer(hiddenDim * dim, (l, s) => w.layers[l].linear.up.set(s));
  if (version === 0) {
    w.finalNorm.set(take(dim));
    take(freqFloats);
  }
  if (!shared) w.lmHead.set(take(vocabSize * dim));
  return { config, weights: w, version };
}

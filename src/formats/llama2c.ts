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
import { checkFinite, checkLoadMemory, regularFileSize } from "./limits.ts";

const MAGIC_V1 = 0x616b3432;

export interface LoadedLlama2c {
  config: ModelConfig;
  weights: BaseWeights;
  version: 0 | 1;
}

/** The header, read without the rest of the file (a checkpoint may be larger than the 2 GiB one Buffer can hold). */
const HEADER_BYTES = 256;

export function loadLlama2c(file: string): LoadedLlama2c {
  const size = regularFileSize(file, "llama2.c checkpoint");
  const fd = fs.openSync(file, "r");
  try {
    return readLlama2c(fd, size, file);
  } finally {
    fs.closeSync(fd);
  }
}

function readLlama2c(fd: number, size: number, file: string): LoadedLlama2c {
  const bad = (what: string) =>
    new UserError("E_BAD_CHECKPOINT", `${file}: ${what}`, "expected a llama2.c .bin checkpoint (legacy version 0 or version 1)");
  if (size < 28) throw bad(`file is ${size} bytes, shorter than the 28-byte header`);
  const buf = Buffer.alloc(HEADER_BYTES);
  fs.readSync(fd, buf, 0, Math.min(HEADER_BYTES, size), 0);
  const version: 0 | 1 = buf.readUInt32LE(0) === MAGIC_V1 ? 1 : 0;
  if (version === 1 && buf.readInt32LE(4) !== 1)
    throw bad(`llama2.c format version ${buf.readInt32LE(4)} is not supported (only 0 and 1: float32)`);
  if (version === 1 && size < HEADER_BYTES) throw bad(`file is ${size} bytes, shorter than the 256-byte version 1 header`);
  const h = version === 1 ? 8 : 0;
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabRaw, seqLen] = Array.from({ length: 7 }, (_, i) => buf.readInt32LE(h + 4 * i));
  const shared = version === 1 ? buf.readUInt8(36) === 1 : vocabRaw > 0;
  const vocabSize = Math.abs(vocabRaw);
  for (const [name, v] of Object.entries({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen })) {
    if (!(v > 0 && v < 1 << 24)) throw bad(`header field ${name} = ${v} is not a plausible size`);
  }
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0) throw bad(`dim ${dim}, ${nHeads} heads and ${nKvHeads} kv heads do not divide`);
  const headDim = dim / nHeads;
  if (headDim % 2 !== 0) throw bad(`head size ${headDim} (dim ${dim} / ${nHeads} heads) must be even for rotary embedding`);
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
  const dataStart = version === 1 ? HEADER_BYTES : 28;
  const expected = dataStart + 4 * (weightFloats + freqFloats);
  if (size !== expected) {
    throw bad(
      `header (dim ${dim}, hidden ${hiddenDim}, ${L} layers, vocab ${vocabRaw}, seq ${seqLen}) implies ${expected} bytes, file has ${size}`,
    );
  }
  checkLoadMemory(config, file);
  // each tensor is read from its place in the file straight into the engine's layout, and checked
  let pos = dataStart;
  const w = allocBase(config);
  const read = (dst: Float32Array, what: string) => {
    readFully(fd, new Uint8Array(dst.buffer, dst.byteOffset, dst.byteLength), pos, file);
    checkFinite(dst, file, what);
    pos += dst.byteLength;
  };
  const perLayer = (what: string, pick: (l: number) => Float32Array) => {
    for (let l = 0; l < L; l++) read(pick(l), `${what} (layer ${l})`);
  };
  if (version === 1) {
    perLayer("rms_att_weight", (l) => w.layers[l].attnNorm);
    perLayer("rms_ffn_weight", (l) => w.layers[l].mlpNorm);
    read(w.finalNorm, "rms_final_weight");
  }
  read(w.embed, "token_embedding_table");
  if (version === 0) perLayer("rms_att_weight", (l) => w.layers[l].attnNorm);
  perLayer("wq", (l) => w.layers[l].linear.q);
  perLayer("wk", (l) => w.layers[l].linear.k);
  perLayer("wv", (l) => w.layers[l].linear.v);
  perLayer("wo", (l) => w.layers[l].linear.o);
  if (version === 0) perLayer("rms_ffn_weight", (l) => w.layers[l].mlpNorm);
  perLayer("w1", (l) => w.layers[l].linear.gate);
  perLayer("w2", (l) => w.layers[l].linear.down);
  perLayer("w3", (l) => w.layers[l].linear.up);
  if (version === 0) {
    read(w.finalNorm, "rms_final_weight");
    pos += 4 * freqFloats; // freq_cis_real, freq_cis_imag: recomputed
  }
  if (!shared) read(w.lmHead, "wcls");
  return { config, weights: w, version };
}

/** Reads dst.length bytes at `pos` (in chunks: one read is limited to 2 GiB). */
function readFully(fd: number, dst: Uint8Array, pos: number, file: string): void {
  for (let done = 0; done < dst.length; ) {
    const got = fs.readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), pos + done);
    if (got <= 0) throw new UserError("E_BAD_CHECKPOINT", `${file}: unexpected end of file at byte ${pos + done}`);
    done += got;
  }
}

/**
 * llama2.c tokenizers (`tokenizer.bin`, `tok512.bin`, ... written by karpathy/llama2.c `tokenizer.py export`).
 *
 * File (little-endian): int32 max_token_length, then for each id 0..V-1: float32 score, int32 byte length n,
 * n raw bytes (the piece). Ids 0..2 are `<unk>`, `\n<s>\n`, `\n</s>\n` (BOS = 1, EOS = 2); ids 3..258 are the byte
 * fallbacks `<0x00>`..`<0xFF>`; merged pieces follow, a word start carrying a leading space.
 *
 * encode() and decode() give exactly what run.c's `encode()` / `decode()` give:
 * - encode: BOS (when addSpecial), the piece " " as a dummy prefix when the text is not empty, one piece per UTF-8
 *   code point (else one byte-fallback id, byte + 3, per byte), then repeatedly merge the adjacent pair whose
 *   concatenation is a piece with the highest score (ties: the leftmost) until none. run.c rescans the whole list per
 *   merge (quadratic); here a heap gives the same merges in the same order.
 * - decode: a piece right after BOS loses its leading space (so does the first piece: a decode starts a sequence,
 *   as the generated ids after run.c's BOS prompt do); `<0xHH>` pieces are raw bytes; the bytes are read as UTF-8.
 * Pieces are kept as "latin1" strings (one char per byte), so lookups and concatenation are exact on bytes.
 */
import fs from "node:fs";
import { UserError } from "../util/errors.ts";
import { MAX_JSON_BYTES, regularFileSize } from "./limits.ts";
import { Heap } from "../util/heap.ts";
import type { Tokenizer } from "./tokenizer.ts";

const BOS = 1;
const EOS = 2;
const BYTE_OFFSET = 3; // id of <0x00>
const NO_MERGE = Math.fround(-1e10); // run.c's initial best score: a pair must score above it to merge

/** Reads a llama2.c tokenizer file; `vocabSize` (e.g. from the checkpoint header) must then match its token count. */
export function loadLlama2cTokenizer(file: string, vocabSize?: number): Tokenizer {
  const hint = "llama2.c models come with tokenizer.bin (or tokNNN.bin for custom vocabularies)";
  const size = regularFileSize(file, "llama2.c tokenizer", hint);
  if (size > MAX_JSON_BYTES)
    throw new UserError("E_TOO_LARGE", `llama2.c tokenizer ${file} is ${size} bytes, more than a tokenizer can be`, hint);
  return new Llama2cTokenizer(fs.readFileSync(file), file, vocabSize);
}

export class Llama2cTokenizer implements Tokenizer {
  readonly kind = "llama2c" as const;
  readonly vocabSize: number;
  readonly bosId = BOS;
  readonly eosId = EOS;
  readonly chatTemplate = null;
  readonly maxTokenLength: number;
  /** Each id's piece as a latin1 string (one char per byte), and its merge score. */
  readonly pieces: string[] = [];
  readonly scores: number[] = [];
  private readonly lookup = new Map<string, number>(); // piece → first id with that piece
  private readonly bytes: Uint8Array[] = []; // what each id decodes to (byte fallbacks: their one byte)
  private readonly decoder = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true });

  constructor(buf: Uint8Array, source: string, vocabSize?: number) {
    if (vocabSize !== undefined && !(Number.isInteger(vocabSize) && vocabSize > 0)) {
      throw new UserError("E_VOCAB_SIZE", `expected vocabulary size for ${source} must be a positive integer, got ${vocabSize}`);
    }
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    const bad = (offset: number, what: string): never => {
      throw new UserError("E_BAD_TOKENIZER", `${source}: ${what} at byte ${offset}`, "expected a llama2.c tokenizer .bin file");
    };
    if (b.length < 4) bad(0, `file is ${b.length} bytes, too short for the int32 max_token_length`);
    this.maxTokenLength = b.readInt32LE(0);
    if (this.maxTokenLength <= 0 || this.maxTokenLength > 65536) bad(0, `max_token_length ${this.maxTokenLength} is not plausible`);
    let off = 4;
    while (vocabSize === undefined ? off < b.length : this.pieces.length < vocabSize) {
      const id = this.pieces.length;
      if (off === b.length) {
        throw new UserError(
          "E_VOCAB_SIZE",
          `${source} has ${id} tokens, expected ${vocabSize}`,
          "tokenizer and checkpoint do not belong together",
        );
      }
      if (off + 8 > b.length) bad(off, `truncated: token ${id} needs an 8-byte score and length, ${b.length - off} bytes left`);
      const score = b.readFloatLE(off);
      const len = b.readInt32LE(off + 4);
      if (Number.isNaN(score)) bad(off, `token ${id} has a NaN score`);
      if (len < 0 || len > this.maxTokenLength)
        bad(off + 4, `token ${id} has length ${len}, outside 0..max_token_length ${this.maxTokenLength}`);
      if (off + 8 + len > b.length) bad(off + 8, `truncated: token ${id} needs ${len} bytes, ${b.length - off - 8} left`);
      const piece = b.toString("latin1", off + 8, off + 8 + len);
      this.pieces.push(piece);
      this.scores.push(score);
      if (!this.lookup.has(piece)) this.lookup.set(piece, id);
      const hex = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
      this.bytes.push(hex ? Uint8Array.of(parseInt(hex[1]!, 16)) : Uint8Array.from(b.subarray(off + 8, off + 8 + len)));
      off += 8 + len;
    }
    if (off < b.length) {
      throw new UserError(
        "E_VOCAB_SIZE",
        `${source} has ${b.length - off} bytes left after ${vocabSize} tokens, at byte ${off}`,
        "tokenizer and checkpoint do not belong together",
      );
    }
    this.vocabSize = this.pieces.length;
    for (let byte = 0; byte < 256; byte++) {
      const want = `<0x${byte.toString(16).toUpperCase().padStart(2, "0")}>`;
      if (this.pieces[BYTE_OFFSET + byte] !== want) {
        throw new UserError(
          "E_BAD_TOKENIZER",
          `${source}: id ${BYTE_OFFSET + byte} should be the byte-fallback piece ${want}, found ${JSON.stringify(this.pieces[BYTE_OFFSET + byte] ?? null)}`,
          "llama2.c tokenizers have <unk>, <s>, </s>, then <0x00>..<0xFF> at ids 3..258",
        );
      }
    }
  }

  encode(text: string, opts?: { addSpecial?: boolean }): number[] {
    const ids: number[] = [];
    if (opts?.addSpecial ?? true) ids.push(BOS);
    if (text.length > 0) {
      const dummy = this.lookup.get(" ");
      if (dummy !== undefined) ids.push(dummy);
    }
    // one piece per UTF-8 code point (run.c groups a lead byte with up to 3 continuation bytes), else its bytes
    const utf8 = Buffer.from(text, "utf8");
    for (let i = 0; i < utf8.length; ) {
      let j = i + 1;
      while (j < utf8.length && (utf8[j]! & 0xc0) === 0x80 && j - i < 4) j++;
      const id = this.lookup.get(utf8.toString("latin1", i, j));
      if (id !== undefined) ids.push(id);
      else for (let k = i; k < j; k++) ids.push(utf8[k]! + BYTE_OFFSET);
      i = j;
    }
    return this.merge(ids);
  }

  /** run.c's merge loop: the best-scoring mergeable adjacent pair first, the leftmost among equals. */
  private merge(ids: number[]): number[] {
    const n = ids.length;
    const tok = ids.slice(); // (n) current id of each node; a node keeps its start position
    const next = Int32Array.from({ length: n }, (_, i) => (i + 1 < n ? i + 1 : -1));
    const prev = Int32Array.from({ length: n }, (_, i) => i - 1);
    const alive = new Uint8Array(n).fill(1);
    const heap = new Heap<PairEntry>(mergeFirst);
    const consider = (left: number): void => {
      const right = next[left]!;
      if (right < 0) return;
      const merged = this.lookup.get(this.pieces[tok[left]!]! + this.pieces[tok[right]!]!);
      if (merged !== undefined && this.scores[merged]! > NO_MERGE) {
        heap.push({ score: this.scores[merged]!, left, right, leftId: tok[left]!, rightId: tok[right]!, merged });
      }
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    for (let e = heap.pop(); e; e = heap.pop()) {
      // stale entries: a node merged away, or its id changed since the entry was pushed
      if (!alive[e.left] || !alive[e.right] || next[e.left] !== e.right || tok[e.left] !== e.leftId || tok[e.right] !== e.rightId) continue;
      tok[e.left] = e.merged;
      alive[e.right] = 0;
      next[e.left] = next[e.right]!;
      if (next[e.right]! >= 0) prev[next[e.right]!] = e.left;
      if (prev[e.left]! >= 0) consider(prev[e.left]!);
      consider(e.left);
    }
    const out: number[] = [];
    for (let i = 0; i < n; i++) if (alive[i]) out.push(tok[i]!);
    return out;
  }

  decode(ids: readonly number[], opts?: { skipSpecial?: boolean }): string {
    const parts: Uint8Array[] = [];
    let prev = BOS; // a decode starts a sequence
    for (const id of ids) {
      const bytes = this.pieceBytes(prev, id);
      if (!(opts?.skipSpecial && id <= EOS)) parts.push(bytes);
      prev = id;
    }
    return this.decoder.decode(Buffer.concat(parts));
  }

  /** The bytes run.c's decode(prev, token) prints for `token` (for streaming: UTF-8 may span several tokens). */
  pieceBytes(prev: number, id: number): Uint8Array {
    const bytes = this.bytes[id];
    if (!Number.isInteger(id) || bytes === undefined) {
      throw new UserError("E_TOKEN_ID", `token id ${id} is outside the llama2.c vocabulary (0..${this.vocabSize - 1})`);
    }
    // run.c strips the piece's space, so <0x20> (whose piece starts with "<") keeps its byte
    return prev === BOS && this.pieces[id]!.charCodeAt(0) === 0x20 ? bytes.subarray(1) : bytes;
  }
}

interface PairEntry {
  score: number; // the merged piece's score
  left: number; // node (= start position) of the left token; smaller is further left
  right: number;
  leftId: number;
  rightId: number;
  merged: number; // id of the concatenated piece
}

/** Heap order: the higher score, then the leftmost position. */
const mergeFirst = (a: PairEntry, b: PairEntry): boolean => a.score > b.score || (a.score === b.score && a.left < b.left);

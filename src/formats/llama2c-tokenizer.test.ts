import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { type Llama2cTokenizer, loadLlama2cTokenizer } from "./llama2c-tokenizer.ts";
import { UserError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

// ../shared from the repository root (this file is src/formats/llama2c-tokenizer.test.ts)
const SHARED = path.resolve(import.meta.dirname, "../../../shared");
const DIR = path.join(SHARED, "data/models/stories260K");
const TOK = path.join(DIR, "tok512.bin");
const skip = !fs.existsSync(TOK) && "needs ../shared/data/models/stories260K (see shared/README.md)";

/** run.c's encode() transcribed literally (quadratic rescans), to check the heap version against. */
function referenceEncode(tok: Llama2cTokenizer, text: string, bos: boolean): number[] {
  const find = (s: string): number => tok.pieces.indexOf(s);
  const tokens: number[] = bos ? [1] : [];
  if (text.length > 0) tokens.push(find(" "));
  const bytes = Buffer.from(text, "utf8");
  let buf: number[] = [];
  for (let c = 0; c < bytes.length; c++) {
    if ((bytes[c]! & 0xc0) !== 0x80) buf = [];
    buf.push(bytes[c]!);
    if (c + 1 < bytes.length && (bytes[c + 1]! & 0xc0) === 0x80 && buf.length < 4) continue;
    const id = find(Buffer.from(buf).toString("latin1"));
    if (id !== -1) tokens.push(id);
    else for (const b of buf) tokens.push(b + 3);
    buf = [];
  }
  for (;;) {
    let bestScore = Math.fround(-1e10);
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i < tokens.length - 1; i++) {
      const id = find(tok.pieces[tokens[i]!]! + tok.pieces[tokens[i + 1]!]!);
      if (id !== -1 && tok.scores[id]! > bestScore) {
        bestScore = tok.scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

test("reads tok512.bin: 512 tokens, BOS 1, EOS 2", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK, 512);
  assert.equal(tok.kind, "llama2c");
  assert.equal(tok.vocabSize, 512);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.chatTemplate, null);
  assert.equal(loadLlama2cTokenizer(TOK).vocabSize, 512);
});

test("decodes the golden greedy output of stories260K exactly", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK);
  const golden = JSON.parse(fs.readFileSync(path.join(DIR, "expected_greedy_200.json"), "utf8")) as {
    prompt_ids: number[];
    greedy_ids: number[];
    text: string;
  };
  assert.equal(tok.decode(golden.greedy_ids), golden.text);
  // with the BOS prompt in front, skipping it, the same text
  assert.equal(tok.decode([...golden.prompt_ids, ...golden.greedy_ids], { skipSpecial: true }), golden.text);
  // and the text encodes back to the same ids (a greedy model output is not always the canonical encoding,
  // but this one is)
  assert.deepEqual(tok.encode(golden.text, { addSpecial: false }), golden.greedy_ids);
});

test("encode starts with BOS, ids stay inside the vocabulary", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK);
  const ids = tok.encode("Once upon a time");
  assert.equal(ids[0], 1);
  assert.ok(ids.every((id) => Number.isInteger(id) && id >= 0 && id < 512));
  assert.deepEqual(tok.encode("Once upon a time", { addSpecial: false }), ids.slice(1));
  assert.deepEqual(tok.encode(""), [1]);
  assert.deepEqual(tok.encode("", { addSpecial: false }), []);
});

test("encode → decode round-trips, byte fallback included", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK);
  const texts = [
    "Once upon a time, there was a little girl named Lily.",
    "  two leading spaces and two trailing  ",
    " x",
    "tabs\tand\nnewlines\n\n",
    "Ünïcödé — emoji 🙂👍🏽 and CJK 漢字",
    "\u0000 control \u007f bytes",
    "a",
    " ",
  ];
  for (const text of texts) {
    const ids = tok.encode(text);
    assert.equal(tok.decode(ids, { skipSpecial: true }), text, JSON.stringify(text));
    assert.equal(tok.decode(tok.encode(text, { addSpecial: false })), text, JSON.stringify(text));
  }
  // an emoji is not a piece of this small vocabulary: it falls back to its 4 bytes (ids byte + 3)
  assert.deepEqual(tok.encode("🙂", { addSpecial: false }).slice(-4), [0xf0 + 3, 0x9f + 3, 0x99 + 3, 0x82 + 3]);
});

test("the heap merge gives exactly run.c's quadratic merge", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK) as Llama2cTokenizer;
  const rng = new Rng(1234);
  const alphabet = ["a", "e", "t", "h", " ", "  ", "the", "and", ",", ".", "\n", "é", "🙂", "L", "ily", "o", "n", "ce"];
  for (let trial = 0; trial < 300; trial++) {
    let text = "";
    const len = rng.int(40);
    for (let i = 0; i < len; i++) text += rng.pick(alphabet);
    assert.deepEqual(tok.encode(text), referenceEncode(tok, text, true), JSON.stringify(text));
  }
});

test("decode rejects unknown ids; BOS inside a sequence strips the next leading space", { skip }, () => {
  const tok = loadLlama2cTokenizer(TOK);
  const once = tok.encode("Once", { addSpecial: false }); // [" Once"]
  assert.equal(tok.decode([...once, 1, ...once], { skipSpecial: true }), "OnceOnce");
  assert.equal(tok.decode([...once, ...once]), "Once Once");
  assert.equal(tok.decode([1, 2], { skipSpecial: false }), "\n<s>\n\n</s>\n");
  assert.equal(tok.decode([1, 0x20 + 3], { skipSpecial: true }), " "); // the byte <0x20> is not a piece with a space
  assert.equal(tok.decode([1, ...tok.encode(" ", { addSpecial: false })], { skipSpecial: true }), " ");
  assert.throws(() => tok.decode([512]), UserError);
});

test("a wrong vocabulary size, a truncated or a corrupt file is a UserError naming the file", { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-l2c-tok-"));
  try {
    const full = fs.readFileSync(TOK);
    const named =
      (file: string, ...words: string[]) =>
      (e: unknown) =>
        e instanceof UserError && e.message.includes(file) && words.every((w) => e.message.includes(w));
    assert.throws(() => loadLlama2cTokenizer(TOK, 500), named(TOK, "bytes left after 500 tokens"));
    assert.throws(() => loadLlama2cTokenizer(TOK, 600), named(TOK, "has 512 tokens, expected 600"));

    const cut = path.join(dir, "cut.bin");
    fs.writeFileSync(cut, full.subarray(0, full.length - 3));
    assert.throws(() => loadLlama2cTokenizer(cut), named(cut, "truncated", "at byte"));
    assert.throws(() => loadLlama2cTokenizer(cut, 512), named(cut, "truncated", "at byte"));

    const corrupt = path.join(dir, "corrupt.bin");
    const bytes = Buffer.from(full);
    bytes.writeInt32LE(1_000_000, 4 + 4); // token 0's length
    fs.writeFileSync(corrupt, bytes);
    assert.throws(() => loadLlama2cTokenizer(corrupt), named(corrupt, "at byte 8"));

    assert.throws(() => loadLlama2cTokenizer(path.join(dir, "missing.bin")), named(path.join(dir, "missing.bin"), "not found"));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { BYTE_TO_CHAR, countWords, learnBpe, trainByteLevelBpe } from "./bpe-train.ts";
import { hfTokenizerFromJson } from "./hf-tokenizer.ts";
import { UserError } from "../util/errors.ts";
import { Rng } from "../util/rng.ts";

const SPECIALS = ["<|pad|>", "<|bos|>", "<|eos|>"];
// ../shared from the repository root (this file is src/formats/bpe-train.test.ts)
const SHARED = path.resolve(import.meta.dirname, "../../../shared");
const SHAKESPEARE = path.join(SHARED, "data/corpora/tinyshakespeare/input.txt");
const FIXTURE = path.join(SHARED, "fixtures/hf-llama/tokenizer/tokenizer.json");

/** A few hundred English sentences, the same every time. */
function corpus(): string[] {
  const rng = new Rng(7);
  const who = ["the cat", "a dog", "the old man", "my sister", "the teacher", "our neighbour", "the little girl"];
  const did = ["walked to", "looked at", "talked about", "ran past", "painted", "remembered", "found"];
  const what = ["the river", "the garden", "a red house", "the market", "the mountain", "an apple tree", "the station"];
  const when = ["yesterday", "in the morning", "after dinner", "every day", "last summer", "at night"];
  const out: string[] = [];
  for (let i = 0; i < 400; i++) {
    const s = `${rng.pick(who)} ${rng.pick(did)} ${rng.pick(what)} ${rng.pick(when)}`;
    out.push(s[0]!.toUpperCase() + s.slice(1) + (rng.int(5) === 0 ? "!" : ".") + (i % 10 === 9 ? "\n" : " "));
  }
  return out;
}

type Json = { added_tokens: { id: number; content: string }[]; model: { vocab: Record<string, number>; merges: string[][] } };

test("trains a loadable tokenizer.json of exactly vocabSize tokens", () => {
  let calls = 0;
  const json = trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS, onProgress: () => void calls++ }) as Json;
  const vocab = json.model.vocab;
  assert.equal(Object.keys(vocab).length, 400);
  assert.deepEqual(new Set(Object.values(vocab)), new Set(Array.from({ length: 400 }, (_, i) => i)));
  assert.deepEqual(
    json.added_tokens.map((t) => [t.id, t.content]),
    SPECIALS.map((s, i) => [i, s]),
  );
  assert.equal(vocab["<|eos|>"], 2);
  assert.equal(vocab["!"], 3); // the byte symbols follow the specials in code-point order
  assert.equal(vocab.Ġ, 3 + 220);
  assert.equal(json.model.merges.length, 400 - 3 - 256);
  assert.equal(calls, 400 - 3 - 256);

  const tok = hfTokenizerFromJson(json);
  assert.equal(tok.vocabSize, 400);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  for (const word of [" the", " walked", " garden", " teacher", " mountain", " yesterday", "The"]) {
    assert.equal(tok.encode(word).length, 1, `${JSON.stringify(word)} should be one token`);
  }
});

test("round-trips any text: byte-level has no unknowns", () => {
  const tok = hfTokenizerFromJson(trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS }));
  const texts = [
    "The cat walked to the river yesterday.",
    "  leading and trailing spaces  ",
    "tabs\tand\nnewlines\r\n\n",
    "Ünïcödé — emoji 🙂👍🏽 and CJK 漢字, Ελληνικά",
    "numbers 1234567 and 3.14159; punctuation?!...",
    "it's we'll they'd I'M",
    "\u0000\u0001 control",
    "<|bos|>special<|eos|>",
  ];
  for (const text of texts) {
    const ids = tok.encode(text);
    assert.ok(ids.every((id) => id >= 0 && id < 400));
    assert.equal(tok.decode(ids), text, JSON.stringify(text));
  }
  assert.deepEqual(
    tok.encode("<|bos|>hi<|eos|>").filter((id) => id < 3),
    [1, 2],
  ); // specials stay whole
  assert.equal(tok.decode(tok.encode("<|bos|>hi<|eos|>"), { skipSpecial: true }), "hi");
});

test("training is deterministic", () => {
  const a = JSON.stringify(trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS }));
  const b = JSON.stringify(trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS }));
  assert.equal(a, b);
});

test("encoding a training word reproduces its training segmentation", () => {
  const words = countWords(corpus(), SPECIALS);
  const learned = learnBpe(words, { vocabSize: 400, specialTokens: SPECIALS });
  const tok = hfTokenizerFromJson(trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS }));
  const charToByte = new Map(BYTE_TO_CHAR.map((c, b) => [c, b]));
  for (const [word, pieces] of learned.words) {
    const text = Buffer.from(Array.from(word, (c) => charToByte.get(c)!)).toString("utf8");
    assert.deepEqual(
      tok.encode(text, { addSpecial: false }),
      pieces.map((p) => learned.tokens.indexOf(p)),
      JSON.stringify(text),
    );
  }
});

test("stops early when merges run out (minFrequency), and says so in the size", () => {
  const json = trainByteLevelBpe(["abab abab abab xy"], { vocabSize: 1000, specialTokens: SPECIALS }) as Json;
  // words "abab" (once), "Ġabab" (twice), "Ġxy" (once): with the default minFrequency 2, "x"+"y" never merges,
  // and training stops after a handful of merges, far below vocabSize
  const size = Object.keys(json.model.vocab).length;
  assert.ok(size < 1000 && size > 259, `size ${size}`);
  assert.equal(size, 259 + json.model.merges.length);
  assert.ok(!("xy" in json.model.vocab));
  const all = trainByteLevelBpe(["abab abab abab xy"], { vocabSize: 1000, specialTokens: SPECIALS, minFrequency: 1 }) as Json;
  assert.ok("xy" in all.model.vocab);
});

test("bad options are UserErrors", () => {
  assert.throws(() => trainByteLevelBpe(["x"], { vocabSize: 100, specialTokens: SPECIALS }), UserError);
  assert.throws(() => trainByteLevelBpe(["x"], { vocabSize: 300, specialTokens: ["<s>", "<s>"] }), UserError);
  assert.throws(() => trainByteLevelBpe(["x"], { vocabSize: 300, specialTokens: ["a"] }), UserError);
});

test("reproduces the HF tokenizers fixture trained on tinyshakespeare", {
  skip: !(fs.existsSync(SHAKESPEARE) && fs.existsSync(FIXTURE)) && "needs ../shared (see shared/README.md)",
}, () => {
  const want = JSON.parse(fs.readFileSync(FIXTURE, "utf8")) as Json;
  const got = trainByteLevelBpe([fs.readFileSync(SHAKESPEARE, "utf8")], { vocabSize: 2048, specialTokens: SPECIALS }) as Json;
  assert.deepEqual(got.model.merges, want.model.merges);
  assert.deepEqual(got.model.vocab, want.model.vocab);
});

const hasPython = spawnSync("python3", ["-c", "import tokenizers"]).status === 0;
test("Python tokenizers loads the file and encodes alike", {
  skip: !hasPython && "python3 with the tokenizers package is not installed",
}, () => {
  const json = trainByteLevelBpe(corpus(), { vocabSize: 400, specialTokens: SPECIALS });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-bpe-"));
  try {
    const file = path.join(dir, "tokenizer.json");
    fs.writeFileSync(file, JSON.stringify(json));
    const text = "The cat walked to the river yesterday. 🙂 tabs\tand\nnewlines";
    const py = spawnSync(
      "python3",
      [
        "-c",
        "import sys, json, tokenizers; t = tokenizers.Tokenizer.from_file(sys.argv[1]); print(json.dumps(t.encode(sys.argv[2]).ids))",
        file,
        text,
      ],
      { encoding: "utf8" },
    );
    assert.equal(py.status, 0, py.stderr);
    assert.deepEqual(JSON.parse(py.stdout), hfTokenizerFromJson(json).encode(text));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

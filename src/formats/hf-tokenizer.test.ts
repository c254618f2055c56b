import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { hfTokenizerFromJson, loadHfTokenizer } from "./hf-tokenizer.ts";
import { UserError } from "../util/errors.ts";

// ../shared from the repository root (this file is src/formats/hf-tokenizer.test.ts)
const SHARED = path.resolve(import.meta.dirname, "../../../shared");
const TOK_DIR = path.join(SHARED, "fixtures/hf-llama/tokenizer");
const skip = !fs.existsSync(path.join(TOK_DIR, "tokenizer.json")) && "needs ../shared/fixtures (see shared/README.md)";

interface Reference {
  text: string;
  ids: number[];
  decoded: string;
}

test("matches HF tokenizers on every reference string", { skip }, () => {
  const tok = loadHfTokenizer(TOK_DIR);
  const refs = JSON.parse(fs.readFileSync(path.join(TOK_DIR, "reference.json"), "utf8")) as Reference[];
  assert.ok(refs.length > 0);
  for (const r of refs) {
    // the reference was made without special tokens ("Hello, world!" has no BOS); this tokenizer has no
    // post-processor, so the default addSpecial gives the same ids
    assert.deepEqual(tok.encode(r.text, { addSpecial: false }), r.ids, JSON.stringify(r.text));
    assert.deepEqual(tok.encode(r.text), r.ids, JSON.stringify(r.text));
    assert.equal(tok.decode(r.ids), r.decoded, JSON.stringify(r.text));
  }
});

test("reads the vocabulary size and BOS/EOS from well-known special tokens", { skip }, () => {
  const tok = loadHfTokenizer(TOK_DIR);
  assert.equal(tok.kind, "hf");
  assert.equal(tok.vocabSize, 2048);
  assert.equal(tok.bosId, 1); // <|bos|>
  assert.equal(tok.eosId, 2); // <|eos|>
  assert.equal(tok.chatTemplate, null);
  assert.equal(tok.decode([1, ...tok.encode("hi there"), 2]), "<|bos|>hi there<|eos|>");
  assert.equal(tok.decode([1, ...tok.encode("hi there"), 2], { skipSpecial: true }), "hi there");
  assert.equal(tok.decode([]), "");
  // the JS library would "clean up" " ," → "," by default; transformers' tokenizers do not
  assert.equal(tok.decode(tok.encode("a , b . c ! d 're")), "a , b . c ! d 're");
  assert.throws(() => tok.decode([2048]), UserError);
});

test("tokenizer_config.json: bos/eos names, add_bos_token, chat_template", { skip }, () => {
  const json = JSON.parse(fs.readFileSync(path.join(TOK_DIR, "tokenizer.json"), "utf8")) as object;
  const tok = hfTokenizerFromJson(json, {
    bos_token: { content: "<|eos|>" }, // the old dict form; deliberately odd choices to see that they are used
    eos_token: "<|pad|>",
    add_bos_token: true,
    chat_template: "{{ messages }}",
  });
  assert.equal(tok.bosId, 2);
  assert.equal(tok.eosId, 0);
  assert.equal(tok.chatTemplate, "{{ messages }}");
  const ids = tok.encode("Hello, world!");
  assert.deepEqual(ids, [2, 42, 411, 81, 14, 869, 3]);
  assert.deepEqual(tok.encode("Hello, world!", { addSpecial: false }), [42, 411, 81, 14, 869, 3]);
});

test("loadHfTokenizer reads tokenizer_config.json and chat_template.jinja beside tokenizer.json", { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hf-tok-"));
  try {
    fs.copyFileSync(path.join(TOK_DIR, "tokenizer.json"), path.join(dir, "tokenizer.json"));
    fs.writeFileSync(path.join(dir, "tokenizer_config.json"), JSON.stringify({ bos_token: "<|bos|>", eos_token: "<|eos|>" }));
    fs.writeFileSync(path.join(dir, "chat_template.jinja"), "{% for m in messages %}{{ m.content }}{% endfor %}");
    const tok = loadHfTokenizer(dir);
    assert.equal(tok.bosId, 1);
    assert.equal(tok.chatTemplate, "{% for m in messages %}{{ m.content }}{% endfor %}");
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("a missing tokenizer.json is a UserError naming the file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hf-tok-"));
  try {
    assert.throws(
      () => loadHfTokenizer(dir),
      (e: unknown) => e instanceof UserError && e.message.includes(path.join(dir, "tokenizer.json")),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test("bad JSON and an unsupported model are UserErrors naming the file", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-hf-tok-"));
  const file = path.join(dir, "tokenizer.json");
  try {
    fs.writeFileSync(file, "{ not json");
    assert.throws(
      () => loadHfTokenizer(dir),
      (e: unknown) => e instanceof UserError && e.message.includes(file),
    );
    fs.writeFileSync(file, JSON.stringify({ model: { type: "Mystery", vocab: {} } }));
    assert.throws(
      () => loadHfTokenizer(dir),
      (e: unknown) => e instanceof UserError && e.message.includes(file) && e.message.includes("Mystery"),
    );
    fs.writeFileSync(file, JSON.stringify([1, 2, 3]));
    assert.throws(
      () => loadHfTokenizer(dir),
      (e: unknown) => e instanceof UserError && e.message.includes(file),
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/**
 * Agent prompts through a model's chat template (env/prompt.ts), with the two real templates in
 * ../shared/fixtures/chat-templates (Llama 3.2 style and ChatML) on a tokenizer that has their special tokens: the
 * text is what the template's rules give (written out by hand below), and the ids hold each special token once, as
 * its own id, with the text between them tokenized as it is alone (BOS only where the template writes it).
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { agentPrompt, agentPromptFormat, systemPrompt } from "../src/env/prompt.ts";
import { loadHfTokenizer } from "../src/formats/hf-tokenizer.ts";
import type { Tokenizer } from "../src/formats/tokenizer.ts";
import { isUserError } from "../src/util/errors.ts";
import { shared, tmpDir } from "./support.ts";

const TEMPLATES = shared("fixtures/chat-templates");
const TOKENIZER = shared("fixtures/hf-llama/tokenizer");
const skip = TEMPLATES.skip || TOKENIZER.skip;
const dir = tmpDir("colloquy-chat-prompt-");

/** The fixture's byte-level BPE with `specials` added (ids 2048…) and a tokenizer_config.json holding `template`. */
function chatTokenizer(name: string, template: string | null, specials: string[], eos: string): Tokenizer {
  const json = JSON.parse(fs.readFileSync(path.join(TOKENIZER.path, "tokenizer.json"), "utf8"));
  specials.forEach((content, k) =>
    json.added_tokens.push({ id: 2048 + k, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }),
  );
  const d = path.join(dir, name);
  fs.mkdirSync(d, { recursive: true });
  fs.writeFileSync(path.join(d, "tokenizer.json"), JSON.stringify(json));
  const config = { bos_token: "<|bos|>", eos_token: eos, ...(template ? { chat_template: template } : {}) };
  fs.writeFileSync(path.join(d, "tokenizer_config.json"), JSON.stringify(config));
  return loadHfTokenizer(d);
}

/** The ids of `pieces`: a special token's own id, other text tokenized alone. */
function idsOf(tok: Tokenizer, specials: Record<string, number>, pieces: string[]): number[] {
  return pieces.flatMap((p) => (p in specials ? [specials[p]!] : tok.encode(p, { addSpecial: false })));
}

const memory = "the key is under the mat";
const excerpt = "Anna opened the door.";
const inbox = [
  { from: 1, text: "0:1:the cellar is cold" },
  { from: 2, text: "look left" },
];
const user = `MEMORY: ${memory}\nEXCERPT: ${excerpt}\nINBOX:\n1: 0:1:the cellar is cold\n2: look left`;

for (const kind of ["short", "proposal"]) {
  const system = systemPrompt(kind, 0, 3);

  test(`chat prompt, Llama 3.2 template, ${kind} system prompt: text and ids`, { skip }, () => {
    const names = ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"];
    const tok = chatTokenizer("llama3", fs.readFileSync(path.join(TEMPLATES.path, "llama3.2.jinja"), "utf8"), names, "<|eot_id|>");
    const f = agentPromptFormat("auto", tok);
    assert.equal(f.kind, "chat");
    const text = f.text(system, memory, excerpt, inbox);
    const pieces = [
      "<|bos|>",
      "<|start_header_id|>",
      "system",
      "<|end_header_id|>",
      `\n\n${system}`,
      "<|eot_id|>",
      "<|start_header_id|>",
      "user",
      "<|end_header_id|>",
      `\n\n${user}`,
      "<|eot_id|>",
      "<|start_header_id|>",
      "assistant",
      "<|end_header_id|>",
      "\n\nSTATE:",
    ];
    assert.equal(text, pieces.join(""));
    const specials = { "<|bos|>": 1, "<|start_header_id|>": 2048, "<|end_header_id|>": 2049, "<|eot_id|>": 2050 };
    const ids = f.encode(text);
    assert.deepEqual(ids, idsOf(tok, specials, pieces));
    assert.equal(ids.filter((i) => i === 1).length, 1, "one BOS, the template's");
    assert.equal(tok.eosId, 2050, "the end of a turn ends generation");
  });

  test(`chat prompt, ChatML template, ${kind} system prompt: text and ids`, { skip }, () => {
    const tok = chatTokenizer(
      "chatml",
      fs.readFileSync(path.join(TEMPLATES.path, "chatml.jinja"), "utf8"),
      ["<|im_start|>", "<|im_end|>"],
      "<|im_end|>",
    );
    const f = agentPromptFormat("chat", tok);
    const text = f.text(system, memory, excerpt, inbox);
    const pieces = [
      "<|im_start|>",
      `system\n${system}`,
      "<|im_end|>",
      "\n",
      "<|im_start|>",
      `user\n${user}`,
      "<|im_end|>",
      "\n",
      "<|im_start|>",
      "assistant\nSTATE:",
    ];
    assert.equal(text, pieces.join(""));
    const ids = f.encode(text);
    assert.deepEqual(ids, idsOf(tok, { "<|im_start|>": 2048, "<|im_end|>": 2049 }, pieces));
    assert.ok(!ids.includes(1), "ChatML writes no BOS, and none is added");
  });
}

test("plain prompts: a tokenizer without a template (auto), or promptFormat plain; chat without a template is one line", { skip }, () => {
  const tok = chatTokenizer("plain", null, [], "<|eos|>");
  const system = systemPrompt("short", 1, 2);
  for (const choice of ["auto", "plain"] as const) {
    const f = agentPromptFormat(choice, tok);
    assert.equal(f.kind, "plain");
    const text = f.text(system, memory, excerpt, inbox);
    assert.equal(text, `${system}\n${user}\nSTATE:`);
    assert.equal(text, agentPrompt(system, memory, excerpt, inbox));
    assert.deepEqual(f.encode(text), tok.encode(text, { addSpecial: true }));
  }
  const templated = chatTokenizer("plain-forced", "{{ messages[0]['content'] }}", [], "<|eos|>");
  assert.equal(agentPromptFormat("plain", templated).kind, "plain");
  assert.throws(
    () => agentPromptFormat("chat", tok),
    (e) => isUserError(e) && /promptFormat chat: the tokenizer has no chat template/.test(e.message),
  );
});

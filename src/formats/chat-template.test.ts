import assert from "node:assert/strict";
import { test } from "node:test";
import type { Tokenizer } from "./tokenizer.ts";
import { isUserError } from "../util/errors.ts";
import { tinyTokenizer } from "../../test/tiny.ts";
import { chatFormat, chatPromptIds, renderFallback } from "./chat-template.ts";

const withTemplate = (chatTemplate: string | null): Tokenizer => ({ ...tinyTokenizer(), chatTemplate });

// a ChatML-like template in the style of tokenizer_config.json files, with raise_exception as Mistral's has
const CHATML =
  "{{ bos_token }}{% for m in messages %}{% if m.role == 'tool' %}{{ raise_exception('no tools here') }}{% endif %}" +
  "<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

test("a model's chat template is rendered with messages, bos_token and the generation prompt", () => {
  const f = chatFormat(withTemplate(CHATML));
  assert.equal(f.kind, "template");
  assert.equal(f.addSpecial, false);
  const text = f.render([
    { role: "system", content: "Be kind." },
    { role: "user", content: "Hi" },
  ]);
  assert.equal(text, "<|bos|><|im_start|>system\nBe kind.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  assert.equal(chatPromptIds(withTemplate(CHATML), f, [{ role: "user", content: "Hi" }])[0], 1); // BOS written by the template
  assert.throws(
    () => f.render([{ role: "tool", content: "x" }]),
    (e) => isUserError(e) && /no tools here/.test(e.message),
  );
});

test("without a template (or with one that does not parse) the plain fallback is used", () => {
  const msgs = [
    { role: "system", content: "Be kind." },
    { role: "user", content: "Hi" },
    { role: "assistant", content: "Hello." },
    { role: "user", content: "Who?" },
  ];
  assert.equal(renderFallback(msgs), "System: Be kind.\nUser: Hi\nAssistant: Hello.\nUser: Who?\nAssistant:");
  const f = chatFormat(withTemplate(null));
  assert.equal(f.kind, "fallback");
  assert.equal(f.warning, null);
  assert.ok(f.stop.includes("\nUser:"));
  const broken = chatFormat(withTemplate("{% for m in messages %}"));
  assert.equal(broken.kind, "fallback");
  assert.match(broken.warning ?? "", /does not parse/);
});

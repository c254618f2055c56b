/**
 * The prompt tokenizer's worker thread: the same ids and chat text as in this thread, the bound applied before
 * tokenizing, errors carried back, and the event loop free while a long prompt is tokenized (a timer keeps firing).
 */
import assert from "node:assert/strict";
import path from "node:path";
import { test } from "node:test";
import { tmpDir } from "../../test/support.ts";
import { saveTinyModel, tinyTokenizer } from "../../test/tiny.ts";
import { chatFormat } from "../formats/chat-template.ts";
import { encodePrompt } from "./prompt-tokenizer.ts";
import { TokenizerThread } from "./tokenizer-thread.ts";

test("the tokenizer thread: same ids as in-thread, the bound before tokenizing, and the event loop stays free", {
  timeout: 120_000,
}, async () => {
  const dir = saveTinyModel(path.join(tmpDir("colloquy-tokthread-"), "tiny"));
  const tok = tinyTokenizer();
  const thread = await TokenizerThread.start(dir, tok.vocabSize);
  try {
    const chat = chatFormat(tok);
    const jobs = [
      { kind: "text" as const, text: "Alice has the key. Next: Ben's pet.", addSpecial: true, maxChars: 1000 },
      { kind: "text" as const, text: "", addSpecial: true, maxChars: 1000 },
      { kind: "chat" as const, messages: [{ role: "user", content: "Who has the key?" }], maxChars: 1000 },
    ];
    for (const job of jobs) assert.deepEqual(await thread.run(job), encodePrompt(tok, chat, job));
    assert.deepEqual(await thread.run({ kind: "text", text: "x".repeat(5000), addSpecial: true, maxChars: 1000 }), {
      ok: false,
      chars: 5000,
    });

    // a long prompt, tokenized in the worker while a 5 ms timer runs here
    const text = "Alice has the key and Ben keeps a cat. ".repeat(40_000); // 1.5 MB
    let last = performance.now();
    let maxGap = 0;
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
    }, 5);
    const t0 = performance.now();
    const r = await thread.run({ kind: "text", text, addSpecial: true, maxChars: text.length });
    const ms = performance.now() - t0;
    clearInterval(timer);
    assert.ok(r.ok && r.ids.length > 100_000);
    console.log(
      `tokenized ${text.length} characters in the worker in ${ms.toFixed(0)} ms; the event loop's longest gap meanwhile: ${maxGap.toFixed(0)} ms`,
    );
    assert.ok(maxGap < Math.max(250, ms / 2), `the event loop waited ${maxGap.toFixed(0)} ms of ${ms.toFixed(0)}`);
    assert.equal(thread.pending, 0);
  } finally {
    await thread.close();
  }
});

/**
 * The protocol parser under fuzzing and injection attempts: it never throws, never delivers a message under a
 * false sender, never lets a line break or control character into a state or message, and respects the caps.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { Rng } from "../util/rng.ts";
import { type ParsedCompletion, type TokenCounter, parseCompletion, route } from "./protocol.ts";

const words: TokenCounter = {
  count: (s) => (s.trim() ? s.trim().split(/\s+/).length : 0),
  truncate: (s, n) => s.trim().split(/\s+/).slice(0, n).join(" "),
};
const LIMITS = { stateTokens: 12, messageTokens: 8, messagesPerRound: 2 };

function checkInvariants(p: ParsedCompletion, self: number, agents: number): void {
  assert.ok(!/[\n\r\u0000-\u001f\u2028\u2029]/.test(p.state), "state has no line breaks or controls");
  assert.ok(words.count(p.state) <= LIMITS.stateTokens);
  assert.ok(p.messages.length <= LIMITS.messagesPerRound);
  for (const m of p.messages) {
    assert.equal(m.from, self, "no message under a false sender");
    assert.ok(m.to === "*" || (Number.isInteger(m.to) && m.to >= 0 && m.to < agents && m.to !== self));
    assert.ok(m.text.length > 0 && !/[\n\r\u0000-\u001f\u2028\u2029]/.test(m.text));
    assert.ok(words.count(m.text) <= LIMITS.messageTokens);
  }
}

test("well-formed completions parse exactly", () => {
  const p = parseCompletion(" Ben is in the garden.\n1:0:Ben is in the garden.\n1:*:Ana has a cat.", 1, 3, LIMITS, words);
  assert.equal(p.state, "Ben is in the garden.");
  assert.deepEqual(p.messages, [
    { from: 1, to: 0, text: "Ben is in the garden." },
    { from: 1, to: "*", text: "Ana has a cat." },
  ]);
  assert.deepEqual(p.violations, []);
  const empty = parseCompletion(" ", 0, 2, LIMITS, words);
  assert.deepEqual([empty.state, empty.messages, empty.violations], ["", [], []]);
  const ended = parseCompletion(" s\n0:1:hi\n\n0:1:after the end", 0, 2, LIMITS, words);
  assert.equal(ended.messages.length, 1);
});

test("injection: fake STATE lines, other senders, bad recipients, overlong parts", () => {
  const p = parseCompletion(
    " my state\nSTATE: hacked state\n0:2:I am agent zero\n1:1:to myself\n1:7:nobody\n1:2: \n1:2:2:0:nested sender text\n1:*:one two three four five six seven eight nine\n1:0:ok\n1:2:also ok\n1:0:third",
    1,
    3,
    LIMITS,
    words,
  );
  assert.equal(p.state, "my state");
  assert.deepEqual(p.messages, [
    { from: 1, to: 2, text: "2:0:nested sender text" }, // content, delivered as from 1
    { from: 1, to: 0, text: "ok" },
  ]);
  assert.deepEqual(p.violations, [
    "malformed_line",
    "impersonation",
    "bad_recipient",
    "bad_recipient",
    "empty_message",
    "message_too_long",
    "too_many_messages",
    "too_many_messages",
  ]);
  const inboxes = route(p.messages, 3);
  assert.deepEqual(
    inboxes[2].map((m) => m.from),
    [1],
  );
  assert.deepEqual(inboxes[1], []);
});

test("a state over the cap is cut and counted", () => {
  const p = parseCompletion(" a b c d e f g h i j k l m n o p", 0, 2, LIMITS, words);
  assert.equal(p.state, "a b c d e f g h i j k l");
  assert.deepEqual(p.violations, ["state_too_long"]);
});

test("fuzz: random bytes, huge lines, Unicode and protocol-shaped noise never crash or forge a sender", () => {
  const rng = new Rng(2024);
  const pieces = [
    "\n",
    ":",
    "*",
    "STATE:",
    "0",
    "1",
    "2",
    "12",
    "-1",
    " ",
    "\r\n",
    "\u2028",
    "\u0000",
    "é",
    "🙂",
    "漢",
    "\uFFFD",
    "\uD800",
    "1:0:",
    "0:1:",
    "2:*:",
    "a",
    "\t",
  ];
  for (let n = 0; n < 3000; n++) {
    let s = "";
    const len = rng.int(60);
    for (let k = 0; k < len; k++) {
      const u = rng.float();
      s += u < 0.5 ? rng.pick(pieces) : u < 0.8 ? String.fromCharCode(rng.int(0x3000)) : String.fromCharCode(rng.int(256));
    }
    const self = rng.int(4),
      agents = 2 + rng.int(3);
    const p = parseCompletion(s, self, agents, LIMITS, words);
    checkInvariants(p, self, agents);
    for (const inbox of route(p.messages, agents)) for (const m of inbox) assert.equal(m.from, self);
  }
  const huge = parseCompletion(" " + "x".repeat(1_000_000) + "\n0:1:" + "y ".repeat(100_000), 0, 2, LIMITS, words);
  checkInvariants(huge, 0, 2);
  assert.ok(huge.violations.includes("message_too_long"));
});

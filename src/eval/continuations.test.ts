import assert from "node:assert/strict";
import { test } from "node:test";
import type { Backend, ScoreRequest } from "../engine/backend.ts";
import type { ScoreResult } from "../engine/score.ts";
import type { Tokenizer } from "../formats/tokenizer.ts";
import { encodeSet, encodeText, preferenceCredit, scoreSets } from "./continuations.ts";

const ids = (s: string) => [...s].map((c) => c.charCodeAt(0));

/** One token per character (code point), BOS = 1 when `bos`. */
function charTokenizer(bos: boolean): Tokenizer {
  return {
    kind: "hf",
    vocabSize: 256,
    bosId: bos ? 1 : null,
    eosId: null,
    chatTemplate: null,
    encode: (text) => [...text].map((c) => c.charCodeAt(0)),
    decode: (ids) => String.fromCharCode(...ids),
  };
}

test("encodeSet: BOS first, reply tokens after the context, nothing cut when it fits", () => {
  const tok = charTokenizer(true);
  assert.deepEqual(encodeText(tok, "ab"), [1, 97, 98]);
  const s = encodeSet(
    tok,
    [
      { context: "Q:", reply: "yes" },
      { context: "Q:", reply: "no" },
    ],
    16,
  );
  assert.deepEqual(s.rows[0], { tokens: [1, ...ids("Q:yes")], from: 3 });
  assert.deepEqual(s.rows[1], { tokens: [1, ...ids("Q:no")], from: 3 });
  assert.equal(s.truncated, false);
  assert.equal(s.keptContext, 2);
});

test("encodeSet: left truncation keeps BOS and the same last context tokens for every reply", () => {
  const tok = charTokenizer(true);
  const s = encodeSet(
    tok,
    [
      { context: "abcdefgh", reply: "xyz" },
      { context: "abcdefgh", reply: "w" },
    ],
    8,
  );
  // window 8 = BOS + 4 context + the longer reply (3)
  assert.deepEqual(s.rows[0], { tokens: [1, ...ids("efghxyz")], from: 5 });
  assert.deepEqual(s.rows[1], { tokens: [1, ...ids("efghw")], from: 5 });
  assert.equal(s.truncated, true);
  assert.equal(s.contextTokens, 8);
  assert.equal(s.keptContext, 4);
  assert.ok(s.rows.every((r) => r.tokens.length <= 8));
});

test("encodeSet: a reply longer than the window is cut and flagged; without BOS one context token stays", () => {
  const tok = charTokenizer(false);
  const s = encodeSet(tok, [{ context: "ab", reply: "0123456789" }], 5);
  assert.equal(s.replyTruncated, true);
  assert.deepEqual(s.rows[0], { tokens: ids("b0123"), from: 1 });
  const empty = encodeSet(tok, [{ context: "", reply: "hi" }], 8); // no BOS, no context: the first token is context
  assert.equal(empty.rows[0].from, 1);
});

test("scoreSets sums the scored tokens; an empty reply scores 0 with no per-token value", async () => {
  const tok = charTokenizer(true);
  const seen: ScoreRequest[] = [];
  const backend = {
    config: { maxSeqLen: 64 },
    async score(reqs: readonly ScoreRequest[]): Promise<ScoreResult[]> {
      seen.push(...reqs);
      // log p of token t = −(token value)/100
      return reqs.map((r) => ({
        logprobs: Float64Array.from(r.tokens as number[], (x) => -x / 100),
        entropies: new Float64Array(r.tokens.length),
      }));
    },
  } as unknown as Backend;
  const sets = [
    encodeSet(
      tok,
      [
        { context: "Q", reply: "ab" },
        { context: "Q", reply: "" },
      ],
      64,
    ),
  ];
  const [[a, b]] = await scoreSets(backend, sets, { adapter: "x" });
  assert.ok(Math.abs(a.sum - -(97 + 98) / 100) < 1e-12);
  assert.ok(Math.abs(a.mean! - -(97 + 98) / 200) < 1e-12);
  assert.equal(a.tokens, 2);
  assert.deepEqual(b, { sum: 0, mean: null, tokens: 0 });
  assert.equal(seen.length, 1); // the empty reply is not sent
  assert.equal(seen[0].adapter, "x");
  assert.equal(seen[0].from, 2);
});

test("preferenceCredit: strict win 1, k-way tie 1/k, loss 0, an empty reply makes a tie of all", () => {
  assert.equal(preferenceCredit([-1, -2], 0), 1);
  assert.equal(preferenceCredit([-2, -1], 0), 0);
  assert.equal(preferenceCredit([-1, -1, -3], 0), 0.5);
  assert.equal(preferenceCredit([-1, -1, -1], 2), 1 / 3);
  assert.equal(preferenceCredit([null, -1], 0), 0.5);
});

import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import zlib from "node:zlib";
import { test } from "node:test";
import { CpuBackend } from "../engine/backend.ts";
import { scoreRows } from "../engine/score.ts";
import { isUserError } from "../util/errors.ts";
import { tinyModel, tinyTokenizer } from "../../test/tiny.ts";
import { tmpDir } from "../../test/support.ts";
import { encodePairs, readHhPairs, scorePairs, splitDialogue, summarizeHh, type PairScore } from "./hh.ts";

const dialogue = (reply: string) =>
  `\n\nHuman: Where is the bank?\n\nAssistant: On the left.\n\nHuman: Thanks. Is it open?\n\nAssistant:${reply}`;

function writeGz(lines: string[]): string {
  const f = path.join(tmpDir(), "pairs.jsonl.gz");
  fs.writeFileSync(f, zlib.gzipSync(lines.join("\n") + "\n"));
  return f;
}

test("splitDialogue cuts at the last Assistant turn; the prompt keeps the marker", () => {
  const s = splitDialogue(dialogue(" Yes, until five."))!;
  assert.ok(s.prompt.endsWith("Is it open?\n\nAssistant:"));
  assert.equal(s.reply, " Yes, until five.");
  assert.equal(splitDialogue("\n\nHuman: hi"), null);
});

test("readHhPairs reads .jsonl.gz, honours the limit, and names the line of a bad record", () => {
  const f = writeGz([
    JSON.stringify({ chosen: dialogue(" Yes."), rejected: dialogue(" No idea.") }),
    "",
    JSON.stringify({ chosen: dialogue(" A"), rejected: dialogue(" B") }),
  ]);
  const pairs = readHhPairs(f);
  assert.equal(pairs.length, 2);
  assert.equal(pairs[1].index, 1);
  assert.equal(pairs[0].rejected.reply, " No idea.");
  assert.equal(readHhPairs(f, 1).length, 1);
  const bad = writeGz([
    JSON.stringify({ chosen: dialogue(" A"), rejected: dialogue(" B") }),
    JSON.stringify({ chosen: "no turns", rejected: dialogue(" B") }),
  ]);
  assert.throws(
    () => readHhPairs(bad),
    (e) => isUserError(e) && /pairs\.jsonl\.gz:2: the chosen dialogue has no/.test(e.message),
  );
  const keys = writeGz([JSON.stringify({ prompt: "x", response: "y" })]);
  assert.throws(
    () => readHhPairs(keys),
    (e) => isUserError(e) && /:1: expected string fields "chosen" and "rejected"/.test(e.message),
  );
  assert.throws(
    () => readHhPairs(path.join(tmpDir(), "x.txt")),
    (e) => isUserError(e) && e.code === "E_BAD_DATA",
  );
});

test("summarizeHh: wins, ties as halves, per-token ties for empty replies, Wilson intervals", () => {
  const s = (sum: number, tokens: number) => ({ sum, mean: tokens ? sum / tokens : null, tokens });
  const scores: PairScore[] = [
    { index: 0, chosen: s(-2, 1), rejected: s(-3, 1) }, // win, win
    { index: 1, chosen: s(-4, 4), rejected: s(-3, 1) }, // summed loss, per-token win
    { index: 2, chosen: s(-3, 1), rejected: s(-3, 1) }, // tie, tie
    { index: 3, chosen: s(0, 0), rejected: s(-5, 2) }, // empty chosen: summed win, per-token tie
  ];
  const m = summarizeHh(scores);
  assert.equal(m.n, 4);
  assert.equal(m.accuracy.rate, (1 + 0 + 0.5 + 1) / 4);
  assert.equal(m.accuracy_per_token.rate, (1 + 1 + 0.5 + 0.5) / 4);
  assert.equal(m.ties, 1);
  assert.equal(m.ties_per_token, 2);
  assert.ok(m.accuracy.low < m.accuracy.rate && m.accuracy.high > m.accuracy.rate);
  assert.equal(m.margin.mean, (1 - 1 + 0 + 5) / 4);
  assert.equal(m.margin_per_token.n, 3);
});

test("scorePairs gives the engine's own log-probs of the reply tokens", async () => {
  const model = tinyModel(3);
  const tok = tinyTokenizer();
  const f = writeGz([JSON.stringify({ chosen: dialogue(" Yes, the bank is open."), rejected: dialogue(" I will not tell you.") })]);
  const pairs = readHhPairs(f);
  const encoded = encodePairs(tok, pairs, model.config.maxSeqLen);
  const [r] = await scorePairs(new CpuBackend(model), pairs, encoded, null);
  for (const [row, got] of [
    [encoded[0].rows[0], r.chosen],
    [encoded[0].rows[1], r.rejected],
  ] as const) {
    const [ref] = scoreRows(model, [{ tokens: row.tokens }]);
    let want = 0;
    for (let t = row.from; t < row.tokens.length; t++) want += ref.logprobs[t];
    assert.ok(Math.abs(got.sum - want) < 1e-6, `${got.sum} vs ${want}`);
    assert.equal(got.tokens, row.tokens.length - row.from);
    // the reply's tokens decode back to the reply
    assert.equal(tok.decode(row.tokens.slice(row.from)), row === encoded[0].rows[0] ? " Yes, the bank is open." : " I will not tell you.");
  }
});

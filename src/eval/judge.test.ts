import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { isUserError } from "../util/errors.ts";
import { tmpDir } from "../../test/support.ts";
import { combineVerdicts, judgeApiKey, judgeMessages, parseVerdict, publicUrl, readJudgePrompts, summarizeJudgements } from "./judge.ts";

test("parseVerdict reads the verdict in the answers judges give, and nothing else", () => {
  const cases: [string, "A" | "B" | "tie" | null][] = [
    ["A", "A"],
    ["B", "B"],
    [" b. ", "B"],
    ["**A**", "A"],
    ['"B"', "B"],
    ["Tie", "tie"],
    ["tie.", "tie"],
    ["[[A]]", "A"],
    ["[[C]]", "tie"],
    ["A. Response A is more helpful.", "A"],
    ["B\nBecause it answers the question.", "B"],
    ["My verdict: B", "B"],
    ["The better response is A.", "A"],
    ["Final answer: tie", "tie"],
    ["Winner: **A**", "A"],
    ["Response B is better because it is honest.", "B"],
    ["Both are equally good.", "tie"],
    ["A good answer would mention the key.", null],
    ["I cannot decide.", null],
    ["", null],
    ["[[A]] or maybe [[B]]", null],
    ["Verdict: A. Actually the answer is B.", null],
  ];
  for (const [answer, want] of cases) assert.equal(parseVerdict(answer), want, JSON.stringify(answer));
});

test("combineVerdicts: agreement wins, loses or ties; a change with the order is inconsistent", () => {
  assert.deepEqual(combineVerdicts("A", "B"), { outcome: "win", flip: false }); // a first: A=a; b first: B=a
  assert.deepEqual(combineVerdicts("B", "A"), { outcome: "loss", flip: false });
  assert.deepEqual(combineVerdicts("tie", "tie"), { outcome: "tie", flip: false });
  assert.deepEqual(combineVerdicts("A", "A"), { outcome: "inconsistent", flip: true }); // always the first shown
  assert.deepEqual(combineVerdicts("A", "tie"), { outcome: "inconsistent", flip: false });
  assert.deepEqual(combineVerdicts(null, "A"), { outcome: "unparsed", flip: false });
});

test("summarizeJudgements: rates over judged prompts, inconsistent as ties, Wilson intervals", () => {
  const rec = (ab: "A" | "B" | "tie" | null, ba: "A" | "B" | "tie" | null) => ({ ab, ba, ...combineVerdicts(ab, ba) });
  const s = summarizeJudgements([rec("A", "B"), rec("A", "B"), rec("B", "A"), rec("A", "A"), rec("tie", "tie"), rec(null, "A")]);
  assert.equal(s.prompts, 6);
  assert.equal(s.judged, 5);
  assert.deepEqual([s.win, s.loss, s.tie, s.inconsistent, s.flips, s.unparsed], [2, 1, 1, 1, 1, 1]);
  assert.equal(s.winRate.rate, 2 / 5);
  assert.equal(s.tieRate.rate, 2 / 5);
  assert.equal(s.lossRate.rate, 1 / 5);
  assert.equal(s.score.rate, 3 / 5);
  assert.ok(s.winRate.low < 0.4 && s.winRate.high > 0.4 && s.winRate.low >= 0 && s.winRate.high <= 1);
  assert.equal(s.firstPosition.rate, 6 / 9); // "A" in 6 of the 9 verdicts that name a response
});

test("the judging prompt shows both responses under fixed labels and asks for one word", () => {
  const [sys, user] = judgeMessages("Q?", "first answer", "");
  assert.equal(sys.role, "system");
  assert.match(user.content, /\[Prompt\]\nQ\?\n\n\[Response A\]\nfirst answer\n\n\[Response B\]\n\(empty\)/);
  assert.match(user.content, /exactly one word/);
});

test("prompts files: .txt lines, .jsonl prompt or messages; bad lines are one-line errors", () => {
  const dir = tmpDir();
  const txt = path.join(dir, "p.txt");
  fs.writeFileSync(txt, "one\n\ntwo\n");
  assert.deepEqual(
    readJudgePrompts(txt).map((p) => [p.index, p.messages[0].content]),
    [
      [1, "one"],
      [3, "two"],
    ],
  );
  assert.equal(readJudgePrompts(txt, 1).length, 1);
  const jsonl = path.join(dir, "p.jsonl");
  fs.writeFileSync(jsonl, '{"prompt": "hi"}\n{"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}\n');
  assert.deepEqual(
    readJudgePrompts(jsonl).map((p) => p.messages.length),
    [1, 2],
  );
  fs.writeFileSync(jsonl, '{"prompt": "hi"}\n{"text": "x"}\n');
  assert.throws(
    () => readJudgePrompts(jsonl),
    (e) => isUserError(e) && /line 2/.test(e.message),
  );
  assert.throws(
    () => readJudgePrompts(path.join(dir, "missing.txt")),
    (e) => isUserError(e) && e.code === "E_NOT_FOUND",
  );
});

test("the key: COLLOQUY_JUDGE_API_KEY, else OPENAI_API_KEY; URLs are shown without credentials", () => {
  assert.equal(judgeApiKey({ COLLOQUY_JUDGE_API_KEY: "a", OPENAI_API_KEY: "b" }), "a");
  assert.equal(judgeApiKey({ OPENAI_API_KEY: "b" }), "b");
  assert.equal(judgeApiKey({}), null);
  assert.equal(publicUrl("https://user:secret@example.com/v1"), "https://example.com/v1");
});

import assert from "node:assert/strict";
import { test } from "node:test";
import { answersCsv, csvField } from "./csv.ts";
import { agreement, bradleyTerry, cohenKappa, fleissKappa, summarizeAnswers } from "./stats.ts";
import type { AnswerRow, Winner } from "./store.ts";

const close = (got: number | null, want: number, tol = 1e-3) => assert.ok(got !== null && Math.abs(got - want) <= tol, `${got} ≠ ${want}`);

test("Cohen's kappa: the textbook 2×2 example (p_o 0.7, p_e 0.5, kappa 0.4)", () => {
  const pairs: [string, string][] = [
    ...Array(20).fill(["y", "y"]),
    ...Array(5).fill(["y", "n"]),
    ...Array(10).fill(["n", "y"]),
    ...Array(15).fill(["n", "n"]),
  ];
  const k = cohenKappa(pairs, ["y", "n"]);
  close(k.observed, 0.7);
  close(k.expected, 0.5);
  close(k.kappa, 0.4);
  assert.equal(
    cohenKappa(
      [
        ["a", "a"],
        ["a", "a"],
      ],
      ["a", "b"],
    ).kappa,
    null,
    "chance agreement 1: undefined",
  );
});

test("Fleiss' kappa: Fleiss's example of 10 subjects, 14 raters, 5 categories (kappa 0.210)", () => {
  const table = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
  ];
  const cats = ["1", "2", "3", "4", "5"];
  const items = table.map((row) => row.flatMap((n, k) => Array(n).fill(cats[k])));
  const k = fleissKappa(items, cats);
  close(k.observed, 0.378);
  close(k.expected, 0.213);
  close(k.kappa, 0.21);
});

test("Bradley–Terry: the MM fixed point satisfies the likelihood equations", () => {
  const two = bradleyTerry(["x", "y"], [{ x: "x", y: "y", xWins: 3, yWins: 1, ties: 0 }]);
  const [sx, sy] = two.strengths.map((s) => s.strength);
  close(sx / (sx + sy), 0.75, 1e-6);
  const systems = ["a", "b", "c", "d"];
  const results = [
    { x: "a", y: "b", xWins: 7, yWins: 3, ties: 2 },
    { x: "a", y: "c", xWins: 5, yWins: 5, ties: 0 },
    { x: "b", y: "c", xWins: 2, yWins: 6, ties: 1 },
    { x: "c", y: "d", xWins: 8, yWins: 1, ties: 1 },
    { x: "b", y: "d", xWins: 4, yWins: 4, ties: 0 },
  ];
  const bt = bradleyTerry(systems, results);
  assert.ok(bt.converged && bt.connected);
  const s = new Map(bt.strengths.map((r) => [r.system, r.strength]));
  close(
    [...s.values()].reduce((a, b) => a + b, 0),
    1,
    1e-9,
  );
  for (const i of systems) {
    let wins = 0,
      expected = 0;
    for (const r of results) {
      if (r.x !== i && r.y !== i) continue;
      const j = r.x === i ? r.y : r.x;
      const n = r.xWins + r.yWins + r.ties;
      wins += (r.x === i ? r.xWins : r.yWins) + r.ties / 2;
      expected += (n * s.get(i)!) / (s.get(i)! + s.get(j)!);
    }
    close(expected, wins, 1e-6);
  }
  assert.equal(bt.strengths.find((r) => r.rank === 1)!.system, "c");
  assert.equal(
    bradleyTerry(
      ["a", "b", "c", "d"],
      [
        { x: "a", y: "b", xWins: 1, yWins: 1, ties: 0 },
        { x: "c", y: "d", xWins: 1, yWins: 0, ties: 0 },
      ],
    ).connected,
    false,
  );
});

let id = 0;
const row = (rater: string, item: string, winner: Winner, o: Partial<AnswerRow> = {}): AnswerRow => ({
  id: ++id,
  rater,
  item_id: item,
  prompt: "p",
  a_system: "base",
  b_system: "tuned",
  choice: winner === "tie" ? "tie" : winner === "a" ? "left" : "right",
  winner,
  left_is: "a",
  reason: null,
  shown_at: "t0",
  answered_at: "t1",
  ...o,
});

test("summary: counts, win rates with Wilson intervals, ties as halves, agreement by rater count", () => {
  const rows = [
    row("ann", "1", "a"),
    row("ann", "2", "b"),
    row("ann", "3", "tie"),
    row("ann", "4", "b"),
    row("bob", "1", "a"),
    row("bob", "2", "b"),
    row("bob", "3", "b"),
  ];
  const r = summarizeAnswers(rows);
  assert.equal(r.answers, 7);
  assert.equal(r.items_answered, 4);
  assert.deepEqual(r.raters, [
    { name: "ann", answers: 4 },
    { name: "bob", answers: 3 },
  ]);
  assert.deepEqual(r.systems, ["base", "tuned"]);
  const p = r.pairs[0];
  assert.deepEqual([p.x, p.y, p.n, p.x_wins, p.y_wins, p.ties], ["base", "tuned", 7, 2, 4, 1]);
  close(p.x_score.rate, 2.5 / 7, 1e-12);
  assert.ok(p.x_win_rate.low < p.x_win_rate.rate && p.x_win_rate.rate < p.x_win_rate.high);
  assert.equal(r.bradley_terry, null, "two systems: no Bradley–Terry");
  assert.equal(r.agreement.method, "cohen");
  assert.equal(r.agreement.items, 3);
  close(r.agreement.observed, 2 / 3);
  assert.equal(agreement([...rows, row("cid", "1", "a"), row("cid", "2", "a")]).method, "fleiss");
  assert.equal(agreement(rows.filter((x) => x.rater === "ann")).method, null);
  const three = summarizeAnswers([...rows, row("ann", "9", "a", { b_system: "third" })]);
  assert.equal(three.bradley_terry?.strengths.length, 3);
});

test("CSV: quoting, and formulas in untrusted text defused", () => {
  assert.equal(csvField('say "hi", ok'), '"say ""hi"", ok"');
  assert.equal(csvField("=HYPERLINK(1)"), "'=HYPERLINK(1)");
  assert.equal(csvField("two\nlines"), '"two\nlines"');
  assert.equal(csvField(null), "");
  const csv = answersCsv([row("ann", "1", "b", { reason: "-1 because, well", left_is: "b", choice: "left" })]);
  const [head, line] = csv.trim().split("\r\n");
  assert.match(head, /^answer_id,item_id,rater,a_system,b_system,left_system,right_system,choice,winner,winner_system,left_is,reason/);
  assert.match(line, /,ann,base,tuned,tuned,base,left,b,tuned,b,"'-1 because, well",/);
});

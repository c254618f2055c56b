import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { tmpDir } from "../../../test/support.ts";
import { FactsSource } from "./facts/index.ts";
import { RELATIONS } from "./facts/vocab.ts";
import type { FactsWorld } from "./facts/world.ts";
import { makeSource } from "./index.ts";
import { documentsOf, loadDocuments } from "./documents.ts";

test("facts: deterministic from the seed; splits and episodes never share a world", () => {
  const a = new FactsSource(3),
    b = new FactsSource(3);
  assert.deepEqual(a.episode("train", 5, 3, 3).streams, b.episode("train", 5, 3, 3).streams);
  const seen = new Set<string>();
  for (const split of ["train", "val", "test"] as const) {
    for (let k = 0; k < 30; k++) {
      const key = JSON.stringify(a.episode(split, k, 3, 3).streams);
      assert.ok(!seen.has(key), `${split} ${k} repeats a world`);
      seen.add(key);
    }
  }
  assert.notDeepEqual(new FactsSource(4).episode("train", 5, 3, 3).streams, a.episode("train", 5, 3, 3).streams);
});

test("facts: the first excerpt reveals two facts about one person, later ones one; excerpts restate facts an agent saw one excerpt earlier or others saw two earlier; oracle and truths are true", () => {
  const src = new FactsSource(0);
  for (let k = 0; k < 40; k++) {
    const K = 2 + (k % 4),
      T = 2 + (k % 3);
    const ep = src.episode("train", k, K, T);
    const w = ep.world as FactsWorld;
    assert.equal(ep.streams.length, K);
    for (let i = 0; i < K; i++) {
      assert.equal(ep.streams[i].length, T + 1);
      const [first, second, ...more] = w.revealed[i][0];
      assert.ok(
        first.person === second.person && first.relation !== second.relation && more.length === 0,
        "the first excerpt: two facts about one person",
      );
      for (let t = 1; t < T; t++) assert.equal(w.revealed[i][t].length, 1, "later excerpts: one new fact");
      for (let t = 0; t <= T; t++) {
        for (const f of w.restated[i][t]) {
          const mine = w.revealed[i][t - 1].some((g) => g.person === f.person && g.relation === f.relation);
          const others = w.revealed.some(
            (per, j) =>
              j !== i &&
              per
                .slice(0, Math.max(0, t - 1))
                .flat()
                .some((g) => g.person === f.person && g.relation === f.relation),
          );
          assert.ok(mine || others, `episode ${k} agent ${i} excerpt ${t}: ${f.person} ${f.relation} is restated too early`);
          assert.ok(ep.streams[i][t].includes(f.value), "the restatement carries the value");
        }
        if (t > 0) assert.equal(src.checkClaims(ep, ep.oracle[i][t] ?? "").false, 0);
        const truths = src.checkClaims(ep, ep.truths[i][t].join(" "));
        assert.equal(truths.true, ep.truths[i][t].length);
        assert.equal(src.checkClaims(ep, ep.lies[i][t].join(" ")).false, ep.lies[i][t].length);
      }
    }
  }
  const ep = src.episode("val", 1, 3, 3);
  assert.deepEqual(src.checkClaims(ep, "Nobody is in the moon. Hello there."), { claims: 0, true: 0, false: 0 });
  assert.equal(RELATIONS.length, 4);
});

test("split and corpus sources: deterministic, disjoint splits, JSONL input", () => {
  const dir = tmpDir();
  const docs = Array.from({ length: 60 }, (_, d) =>
    Array.from({ length: 12 }, (_, p) => `Document ${d} paragraph ${p} says something. It has a second sentence.`).join("\n\n"),
  );
  const jsonl = path.join(dir, "docs.jsonl");
  fs.writeFileSync(jsonl, docs.map((text) => JSON.stringify({ text })).join("\n"));
  const split = makeSource("split", { files: [jsonl] });
  const e1 = split.episode("train", 2, 3, 2),
    e2 = makeSource("split", { files: [jsonl] }).episode("train", 2, 3, 2);
  assert.deepEqual(e1, e2);
  const docOf = (s: string) => Number(/Document (\d+)/.exec(s)![1]);
  const trainDocs = new Set(documentsOf(loadDocuments([jsonl]), "train").map(docOf));
  for (let k = 0; k < 10; k++) {
    for (const s of split.episode("val", k, 3, 2).streams.flat())
      assert.ok(!trainDocs.has(docOf(s)), "validation text never comes from a training document");
    const ep = split.episode("train", k, 3, 2);
    assert.equal(new Set(ep.streams.flat().map(docOf)).size, 1, "one document per episode");
  }
  const corpus = makeSource("corpus", { files: [jsonl] });
  const c = corpus.episode("test", 0, 2, 3);
  assert.equal(c.streams[0].length, 4);
  for (const s of c.streams.flat()) assert.ok(!trainDocs.has(docOf(s)));
  assert.throws(() => makeSource("nope"), /unknown text source "nope"/);
});

test("facts: the channel check counts needed, delivered and kept facts, and news passed on, from the world", () => {
  const src = new FactsSource(0);
  const ep = src.episode("train", 7, 3, 3);
  const w = ep.world as FactsWorld;
  const said = (f: { person: string; relation: number; value: string }) => RELATIONS[f.relation].state(f.person, f.value);
  // agent 0's state in round 2 predicts excerpt 2, which restates facts agents 1 and 2 read in excerpt 0
  const needed = w.restated[0][2].filter((f) => !w.revealed[0].flat().some((g) => g.person === f.person && g.relation === f.relation));
  assert.ok(needed.length >= 2, "excerpt 2 restates others' facts");
  const [a, b] = needed;
  const lie = { ...b, value: RELATIONS[b.relation].values.find((v) => v !== b.value)! };
  const c = src.checkChannel(ep, 0, 2, [said(a), `${said(lie)} Hello.`], `Filler. ${said(a)}`, []);
  assert.deepEqual(c, { needed: needed.length, delivered: 1, kept: 1, garbled: 0, news: 1, passed: 0 }, "a lie delivers nothing");
  assert.equal(src.checkChannel(ep, 0, 2, [said(a)], said(b), []).kept, 0, "a fact kept counts only once delivered");
  const wrong = { ...a, value: RELATIONS[a.relation].values.find((v) => v !== a.value)! };
  const g = src.checkChannel(ep, 0, 2, [said(a)], said(wrong), []);
  assert.equal(g.kept + g.garbled, 1, "a delivered fact retold with another value is garbled");
  assert.equal(g.garbled, 1);
  // what agent 0 reads in excerpt 1 is news that another agent's excerpt 3 restates: passed on when stated truly
  const news = w.revealed[0][1][0];
  assert.equal(src.checkChannel(ep, 0, 2, [], "", [said(news)]).passed, 1);
  assert.equal(src.checkChannel(ep, 0, 2, [], "", [said({ ...news, value: lie.value })]).passed, 0);
  assert.equal(src.checkChannel(ep, 0, 1, [], "", []).needed, 0, "nothing from others is restated before excerpt 2");
  assert.equal(makeSource("split", { files: [] }).checkChannel(ep, 0, 2, [], "", []), null);
});

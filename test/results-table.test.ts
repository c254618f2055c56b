/**
 * The committed results table (results/, written by `colloquy experiments`) is what the README's results section
 * shows: RESULTS.md and the README's copy are both rendered from results/results.json, not edited by hand.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { README_BEGIN, README_END, type Results, resultsMarkdown, resultsSummary } from "../src/experiments/results.ts";
import { ROW_IDS } from "../src/experiments/rows.ts";
import { ROOT } from "./support.ts";

const dir = path.join(ROOT, "results");
const committed = fs.existsSync(path.join(dir, "results.json"));

test("results/: the whole table on the default model, and the README's results section is that table", {
  skip: !committed && "no results/results.json in this checkout",
}, () => {
  const table = JSON.parse(fs.readFileSync(path.join(dir, "results.json"), "utf8")) as Results;
  assert.equal(table.quick, false);
  assert.deepEqual(table.seeds, [0, 1]);
  assert.deepEqual(
    table.rows.map((r) => r.id),
    ROW_IDS,
  );
  assert.equal(fs.readFileSync(path.join(dir, "RESULTS.md"), "utf8"), resultsMarkdown(table));
  const readme = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
  const a = readme.indexOf(README_BEGIN);
  const b = readme.indexOf(README_END);
  assert.ok(a >= 0 && b > a, "the README has the results markers");
  assert.equal(readme.slice(a + README_BEGIN.length, b).trim(), resultsSummary(table, "results/RESULTS.md").trim());
});

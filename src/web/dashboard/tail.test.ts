import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { JsonlTail } from "./tail.ts";
import { TranscriptIndex } from "./transcript-index.ts";

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), "colloquy-tail-"));

function collect(t: JsonlTail): { reset: boolean; lines: string[] } {
  const lines: string[] = [];
  const r = t.read((l) => lines.push(l));
  return { reset: r.reset, lines };
}

test("tail: reads only appended bytes, waits for a torn line, survives a missing file", () => {
  const f = path.join(tmp(), "m.jsonl");
  const t = new JsonlTail(f);
  assert.deepEqual(collect(t), { reset: false, lines: [] }); // not there yet
  fs.writeFileSync(f, '{"a":1}\n{"a":2}\n{"a":');
  assert.deepEqual(collect(t).lines, ['{"a":1}', '{"a":2}']);
  const after = t.bytesRead;
  assert.deepEqual(collect(t).lines, [], "nothing new: no line");
  assert.equal(t.bytesRead, after, "an unchanged file is not read again");
  fs.appendFileSync(f, '3}\n\n{"a":4}\n');
  assert.deepEqual(collect(t).lines, ['{"a":3}', '{"a":4}'], "the torn line once whole, blank lines skipped");
  assert.equal(t.bytesRead - after, '{"a":3}\n\n{"a":4}\n'.length, "only the bytes after the last complete line");
});

test("tail: a replaced or shrunk file is a reset, then read from its start", () => {
  const dir = tmp();
  const f = path.join(dir, "m.jsonl");
  fs.writeFileSync(f, "1\n2\n3\n");
  const t = new JsonlTail(f);
  assert.deepEqual(collect(t).lines, ["1", "2", "3"]);
  fs.writeFileSync(path.join(dir, "new"), "1\n2\n");
  fs.renameSync(path.join(dir, "new"), f); // what RunFolder.truncateLogs does on resume
  const g = t.generation;
  assert.deepEqual(collect(t), { reset: true, lines: [] });
  assert.equal(t.generation, g + 1);
  assert.deepEqual(collect(t).lines, ["1", "2"]);
  fs.truncateSync(f, 2);
  assert.equal(collect(t).reset, true);
  assert.deepEqual(collect(t).lines, ["1"]);
  fs.rmSync(f);
  assert.equal(collect(t).reset, true, "a vanished file voids what was read");
  assert.deepEqual(collect(t), { reset: false, lines: [] });
});

test("tail: a line longer than the read buffer", () => {
  const f = path.join(tmp(), "m.jsonl");
  const long = "x".repeat(3 << 20);
  fs.writeFileSync(f, `a\n${long}\nb\n`);
  const lines = collect(new JsonlTail(f)).lines;
  assert.deepEqual(
    lines.map((l) => l.length),
    [1, long.length, 1],
  );
});

test("transcript index: filters, reads records back by byte range, follows appends", () => {
  const f = path.join(tmp(), "t.jsonl");
  const rec = (iteration: number, round: number, agent: number, extra = "") =>
    JSON.stringify({ iteration, episode: 0, world: 5, round, agent, state: `s${iteration}${round}${agent}${extra}` });
  fs.writeFileSync(f, [rec(1, 1, 0), rec(1, 1, 1), rec(1, 2, 0, "é"), rec(1, 2, 1)].join("\n") + "\n");
  const ix = new TranscriptIndex(f);
  ix.refresh();
  assert.equal(ix.count, 4);
  assert.deepEqual(ix.iterations, [1]);
  const page = ix.query({ iteration: 1, round: 2 });
  assert.equal(page.total, 2);
  assert.deepEqual(
    page.records.map((r) => JSON.parse(r).state),
    ["s120é", "s121"],
  );
  fs.appendFileSync(f, [rec(2, 1, 0), '{"round":1,"agent":1,"iteration":2,"state":"other key order"}', "{torn"].join("\n") + "\n");
  assert.deepEqual(ix.refresh(), { reset: false, added: 2 });
  assert.equal(ix.bad, 1);
  assert.deepEqual(ix.iterations, [1, 2]);
  assert.deepEqual(
    ix.query({ agent: 1 }).records.map((r) => JSON.parse(r).state),
    ["s111", "s121", "other key order"],
  );
  const paged = ix.query({ offset: 1, limit: 2 });
  assert.equal(paged.total, 6);
  assert.deepEqual(
    paged.records.map((r) => JSON.parse(r).state),
    ["s111", "s120é"],
  );
});

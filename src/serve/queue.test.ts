import assert from "node:assert/strict";
import { test } from "node:test";
import type { Engine, EngineRow, RowResult } from "./engine.ts";
import { ApiError } from "./errors.ts";
import { BatchQueue } from "./queue.ts";

/** An engine whose batches finish when the test says so; it answers each row with its prompt's first id. */
function fakeEngine() {
  const calls: EngineRow[][] = [];
  const release: (() => void)[] = [];
  const engine: Engine = {
    info: { models: [], contextLength: 64, vocabSize: 10 },
    run(rows) {
      calls.push([...rows]);
      return new Promise<RowResult[]>((resolve) =>
        release.push(() =>
          resolve(
            rows.map((r) => ({ ids: [r.prompt[0]], text: String(r.prompt[0]), finishReason: "length", tokens: null, promptTokens: null })),
          ),
        ),
      );
    },
    close: async () => {},
  };
  return { engine, calls, release };
}

const row = (id: number): EngineRow => ({
  adapter: id % 2 ? "a" : null,
  prompt: [id],
  maxTokens: 1,
  temperature: 1,
  topP: 1,
  topK: 0,
  stop: [],
  seed: id,
  stream: false,
  logprobs: null,
  echo: false,
});
const tick = () => new Promise((r) => setTimeout(r, 10));

test("requests that arrive together run as one batch; a full queue refuses with 429", async () => {
  const { engine, calls, release } = fakeEngine();
  const q = new BatchQueue(engine, { maxQueue: 3, maxBatch: 4, gatherMs: 1 });
  const first = [q.submit([row(1)]), q.submit([row(2), row(3)])];
  await tick();
  assert.equal(calls.length, 1);
  assert.deepEqual(
    calls[0].map((r) => r.prompt[0]),
    [1, 2, 3],
  ); // both requests, rows of two adapters, one call
  // while it runs, three wait; the fourth is refused
  const waiting = [q.submit([row(4)]), q.submit([row(5), row(6)]), q.submit([row(7), row(8)])];
  assert.throws(
    () => q.submit([row(9)]),
    (e) => e instanceof ApiError && e.status === 429,
  );
  assert.throws(
    () => q.submit([row(1), row(2), row(3), row(4), row(5)]),
    (e) => e instanceof ApiError && e.status === 400,
  );
  release.shift()!();
  assert.deepEqual(
    (await first[1]).map((r) => r.text),
    ["2", "3"],
  );
  await tick();
  assert.deepEqual(
    calls[1].map((r) => r.prompt[0]),
    [4, 5, 6],
  ); // 4 rows at most: the next request waits
  release.shift()!();
  await tick();
  release.shift()!();
  assert.deepEqual(
    (await waiting[2]).map((r) => r.text),
    ["7", "8"],
  );
  assert.equal(q.stats.refused, 1);
});

test("a cancelled request leaves the queue; close() refuses what waits and waits for the running batch", async () => {
  const { engine, calls, release } = fakeEngine();
  const q = new BatchQueue(engine, { maxQueue: 8, maxBatch: 1, gatherMs: 1 });
  const running = q.submit([row(1)]);
  await tick();
  const abort = new AbortController();
  const cancelled = q.submit([row(2)], undefined, abort.signal);
  const refused = q.submit([row(3)]);
  abort.abort();
  await assert.rejects(cancelled, (e) => e instanceof ApiError && e.status === 499);
  let closed = false;
  const closing = q.close().then(() => (closed = true));
  await assert.rejects(refused, (e) => e instanceof ApiError && e.status === 503);
  assert.equal(closed, false);
  release.shift()!();
  await closing;
  assert.equal((await running)[0].text, "1");
  assert.equal(calls.length, 1);
  assert.throws(
    () => q.submit([row(4)]),
    (e) => e instanceof ApiError && e.status === 503,
  );
});

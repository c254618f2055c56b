/**
 * src/torch/stops.ts: stop strings found after the rows are generated give what a backend that stops while it
 * generates gives. The CPU backend generates each row twice: once without stop strings (what the worker returns:
 * it stops only at stop tokens and max tokens), once with them and a decode; finishSamples on the first must equal
 * the second, ids, log-probs, text, finish reason and the decode calls themselves.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { CpuBackend, type SampleRequest } from "../src/engine/backend.ts";
import { stopTokensOf } from "../src/torch/rows.ts";
import { finishSamples } from "../src/torch/stops.ts";
import { tinyModel, tinyTokenizer } from "./tiny.ts";

test("finishSamples on full rows = the CPU backend stopping at the stop strings itself", async () => {
  const b = new CpuBackend(tinyModel(3));
  const tok = tinyTokenizer();
  const prompt = tok.encode("The capital of", { addSpecial: true });
  const base: SampleRequest[] = [
    { prompt, adapter: null, maxTokens: 24 },
    { prompt, adapter: null, maxTokens: 24, sampling: { temperature: 0 } },
    { prompt, adapter: null, maxTokens: 24, sampling: { temperature: 0.8, topK: 20 } },
    { prompt, adapter: null, maxTokens: 24, ignoreEos: true },
    { prompt, adapter: null, maxTokens: 0 },
    { prompt, adapter: null, maxTokens: 16, sampling: { topP: 0.9 } },
    { prompt, adapter: null, maxTokens: 12 },
  ];
  const seeds = base.map((_, i) => 1000 + i);
  const full = await b.sample(base, seeds);
  const texts = full.map((r) => tok.decode(r.ids));
  // a stop token that row 2 draws (the worker stops there too), stop strings cut from each row's own text: in the
  // middle, spanning tokens, at the very end, never there, and two at once
  const stopToken = full[2].ids[8];
  const requests: SampleRequest[] = base.map((r, i) => {
    const t = texts[i];
    const stops: Record<number, string[]> = {
      0: [t.slice(10, 13)],
      1: [t.slice(t.length - 2)],
      2: ["\u0000never"],
      3: [t.slice(30, 32), t.slice(5, 9)],
      4: ["x"],
      5: [t.slice(1, 2), ""],
      6: [],
    };
    return { ...r, stopStrings: stops[i], ...(i === 2 ? { stopTokens: [stopToken] } : {}) };
  });
  const decodeLog = (log: string[]) => (ids: number[], row: number) => {
    log.push(`${row}:${ids.join(",")}`);
    return tok.decode(ids);
  };
  const cpuLog: string[] = [],
    ourLog: string[] = [];
  const want = await b.sample(requests, seeds, decodeLog(cpuLog));
  // what the worker returns: the rows without stop strings (but with the same stop tokens)
  const raw = await b.sample(
    requests.map(({ stopStrings: _s, ...r }) => r),
    seeds,
  );
  const got = finishSamples(
    raw.map((r) => ({ ids: r.ids, logprobs: r.logprobs, finish: r.finishReason })),
    requests,
    requests.map((r) => stopTokensOf(r, b.config)),
    decodeLog(ourLog),
  );
  assert.deepEqual(got, want);
  assert.deepEqual(ourLog, cpuLog);
  const reasons = want.map((r) => r.finishReason);
  assert.ok(reasons.includes("stop") && reasons.includes("eos") && reasons.includes("length"), `finish reasons ${reasons}`);
  assert.ok(
    want.some((r, i) => r.finishReason === "stop" && r.ids.length < raw[i].ids.length),
    "some row is cut",
  );

  // without decode: text null, rows as the worker gave them
  const plain = base.map(({ stopStrings: _s, ...r }) => r);
  assert.deepEqual(
    finishSamples(
      full.map((r) => ({ ids: r.ids, logprobs: r.logprobs, finish: r.finishReason })),
      plain,
      plain.map((r) => stopTokensOf(r, b.config)),
    ),
    full,
  );
});

test("finishSamples: a worker row that goes on past a stop token, or stops early, is a bug report", () => {
  const req: SampleRequest = { prompt: [1], adapter: null, maxTokens: 5 };
  assert.throws(
    () => finishSamples([{ ids: [4, 2, 5], logprobs: [0, 0, 0], finish: "length" }], [req], [[2]]),
    /went on past stop token 2 at position 1/,
  );
  assert.throws(() => finishSamples([{ ids: [4, 5], logprobs: [0, 0], finish: "length" }], [req], [[2]]), /ended after 2 tokens/);
  assert.throws(
    () => finishSamples([{ ids: [4, 5, 6, 7, 8, 9], logprobs: [0, 0, 0, 0, 0, 0], finish: "length" }], [req], [[2]]),
    /over max_tokens 5/,
  );
});

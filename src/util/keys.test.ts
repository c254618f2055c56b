import assert from "node:assert/strict";
import { test } from "node:test";
import { z } from "zod";
import { isUserError } from "./errors.ts";
import { defaults, helpLines, key, parseArgv, resolveKeys } from "./keys.ts";

const TABLE = {
  stateTokens: key(z.number().int().positive(), 48, "cap on a state's tokens"),
  messagesPerRound: key(z.number().int().nonnegative(), 2, "messages per round", { alias: ["messages"] }),
  agents: key(z.array(z.string()).min(2), ["a", "b"], "kinds"),
  social: key(z.union([z.string(), z.array(z.string())]), "team" as string | string[], "mode or one per agent"),
  files: key(z.array(z.string()), [] as string[], "files", { repeat: true }),
  stop: key(z.array(z.string()), [] as string[], "stop strings", { repeat: true, verbatim: true }),
  deliver: key(z.boolean(), true, "deliver messages"),
  target: key(z.number().positive().nullable(), null as number | null, "adaptive target"),
};

function userError(f: () => unknown): string {
  try {
    f();
  } catch (e) {
    assert.ok(isUserError(e), String(e));
    return e.oneLine();
  }
  throw new Error("no error");
}

test("every spelling: --key=value, --key value, kebab-case, aliases", () => {
  for (const argv of [["--stateTokens=16"], ["--stateTokens", "16"], ["--state-tokens", "16"], ["--state-tokens=16"]]) {
    assert.deepEqual(parseArgv(argv, TABLE, "t").values, { stateTokens: 16 });
  }
  assert.deepEqual(parseArgv(["--messages", "0"], TABLE, "t").values, { messagesPerRound: 0 });
});

test("types from the schema: lists, unions, booleans, null", () => {
  const v = parseArgv(["--agents=x,y", "--social", "team,selfish", "--no-deliver", "--target=null"], TABLE, "t").values;
  assert.deepEqual(v, { agents: ["x", "y"], social: ["team", "selfish"], deliver: false, target: null });
  assert.deepEqual(parseArgv(["--social=mixed:0.5"], TABLE, "t").values, { social: "mixed:0.5" });
  assert.deepEqual(parseArgv(["--deliver", "false"], TABLE, "t").values, { deliver: false });
  assert.deepEqual(parseArgv(["--deliver", "--stateTokens=3"], TABLE, "t").values, { deliver: true, stateTokens: 3 });
});

test("repeatable flags keep every value; verbatim ones keep commas and spaces", () => {
  assert.deepEqual(parseArgv(["--files", "a,b", "--files=c"], TABLE, "t").values, { files: ["a", "b", "c"] });
  assert.deepEqual(parseArgv(["--stop", ", ", "--stop=\n"], TABLE, "t").values, { stop: [", ", "\n"] });
});

test("bad values and unknown flags are one-line errors naming the flag as given", () => {
  assert.match(
    userError(() => parseArgv(["--state-tokens=0"], TABLE, "t")),
    /^error\[E_BAD_VALUE\]: --state-tokens=0: too small/,
  );
  assert.match(
    userError(() => parseArgv(["--stateTokens=x"], TABLE, "t")),
    /--stateTokens=x: expected a number, got "x"/,
  );
  assert.match(
    userError(() => parseArgv(["--deliver=yes"], TABLE, "t")),
    /expected true or false/,
  );
  assert.match(
    userError(() => parseArgv(["--agents=x"], TABLE, "t")),
    /--agents=x: too small/,
  );
  assert.match(
    userError(() => parseArgv(["--bogus=1"], TABLE, "t")),
    /unknown flag --bogus for colloquy t/,
  );
  assert.match(
    userError(() => parseArgv(["--stateTokens"], TABLE, "t")),
    /--stateTokens needs a value/,
  );
});

test("layers: defaults, then each layer, every key checked where it came from", () => {
  const r = resolveKeys(TABLE, [
    { values: { stateTokens: 8, agents: ["p", "q", "r"] }, where: "cfg.json" },
    { values: { stateTokens: 4 }, where: "flags" },
  ]);
  assert.deepEqual(r, { ...defaults(TABLE), stateTokens: 4, agents: ["p", "q", "r"] });
  assert.match(
    userError(() => resolveKeys(TABLE, [{ values: { stateTokens: "8" }, where: "cfg.json" }])),
    /^error\[E_BAD_CONFIG\]: cfg.json: stateTokens: invalid input/,
  );
  assert.match(
    userError(() => resolveKeys(TABLE, [{ values: { nope: 1 }, where: "cfg.json" }])),
    /cfg.json: unknown key "nope"/,
  );
});

test("defaults are copies: changing one leaves the table's default alone", () => {
  const a = defaults(TABLE);
  a.agents.push("c");
  assert.deepEqual(defaults(TABLE).agents, ["a", "b"]);
});

test("help: every spelling, the meaning and the default", () => {
  const lines = helpLines(TABLE).join("\n");
  assert.match(lines, /--stateTokens, --state-tokens <n> +cap on a state's tokens \(default 48\)/);
  assert.match(lines, /--messagesPerRound, --messages-per-round, --messages <n>/);
  assert.match(lines, /--deliver +deliver messages \(default true\)/);
});

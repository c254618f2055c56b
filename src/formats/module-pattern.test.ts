import assert from "node:assert/strict";
import { test } from "node:test";
import { PatternError, compileFullMatch } from "./module-pattern.ts";

const Q = "model.layers.0.self_attn.q_proj";
const K = "model.layers.11.self_attn.k_proj";
const UP = "model.layers.3.mlp.up_proj";

test("module patterns: the answers of Python's re.fullmatch", () => {
  // [pattern, name, re.fullmatch(pattern, name) is not None] — each checked by hand against Python's semantics
  const cases: [string, string, boolean][] = [
    [".*(q_proj|v_proj)", Q, true],
    [".*(q_proj|v_proj)", K, false],
    ["q_proj", Q, false], // a full match, not a search
    [".*\\.layers\\.\\d+\\.self_attn\\.[qkv]_proj", K, true],
    [".*\\.layers\\.\\d+\\.self_attn\\.[qkv]_proj", UP, false],
    [".*\\.(?:up|down)_proj", UP, true],
    [".*\\.(?P<kind>up|down)_proj", UP, true],
    ["model\\.layers\\.[0-9]{1,2}\\..*", K, true],
    ["model\\.layers\\.[0-9]{3,}\\..*", K, false],
    ["model\\.layers\\.\\d{,1}\\..*", K, false],
    ["[^.]+(\\.[^.]+)*", Q, true],
    ["\\w+(\\.\\w+)+", Q, true],
    ["\\S+", "a b", false],
    ["^model.*proj$", Q, true],
    ["\\Amodel.*proj\\Z", Q, true],
    ["model$.*", Q, false],
    [".*?q_proj", Q, true], // lazy: the same set of full matches
    ["x?", "", true],
    ["a{2,3}", "aaaa", false],
    ["a{2,3}", "aaa", true],
    ["a{2}", "aa", true],
    ["a{,2}", "", true],
    ["a{", "a{", true], // not a quantifier: a literal brace, as in Python
    ["[]a]+", "]a]", true],
    ["[a-c-]+", "b-c", true],
    ["\\x41\\u0042", "AB", true],
    ["(.*.*)*_proj", Q, true],
    ["(.*.*)*y", Q, false],
    ["(a|aa)+", "a".repeat(60), true],
  ];
  for (const [pattern, name, want] of cases) assert.equal(compileFullMatch(pattern)(name), want, `${pattern} on ${name}`);
});

test("module patterns: catastrophic backtracking patterns take linear time", () => {
  const long = `${"model.layers.0.self_attn.q_proj.".repeat(30)}x`; // 1,000 characters
  for (const pattern of ["(.*.*)*y", "(a+)+b", "(x+x+)+y", "(.|..)*z", "((a|b|.)*)*c", "(\\w+\\s?)*$y"]) {
    const t0 = performance.now();
    const m = compileFullMatch(pattern);
    assert.equal(m(long), false, pattern);
    assert.equal(m("a".repeat(2000)), false, pattern);
    const ms = performance.now() - t0;
    assert.ok(ms < 2000, `${pattern} took ${ms.toFixed(0)} ms`);
  }
});

test("module patterns: what is invalid in Python or not regular is refused", () => {
  for (const [pattern, why] of [
    ["(q_proj", /missing \)/],
    ["q_proj)", /unbalanced parenthesis/],
    ["*q", /nothing to repeat/],
    ["a**", /multiple repeat/],
    ["a*+", /possessive/],
    ["{2}a", /nothing to repeat/],
    ["[a", /unterminated character set/],
    ["[z-a]", /bad character range/],
    ["a{3,2}", /min repeat greater than max/],
    ["\\q", /bad escape/],
    ["(.*)\\1", /backreferences/],
    ["(?=x)", /not supported/],
    ["(?<!x)y", /not supported/],
    ["(?i)q_proj", /not supported/],
    ["(?P<1>x)", /bad group name/],
    ["a{1001}", /repeat count/],
    ["((a{1000}){1000}){1000}", /states/],
    ["x".repeat(2001), /longer than/],
  ] as const) {
    assert.throws(
      () => compileFullMatch(pattern),
      (e: unknown) => e instanceof PatternError && why.test((e as Error).message),
      pattern,
    );
  }
});

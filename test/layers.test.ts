/**
 * The README's layer rule, checked on every import of every file under src/ (tests beside the code included):
 * a folder imports only folders of lower layers. Layers, lowest first; folders of one layer do not import each
 * other. Unit tests may also import the shared test helpers in test/, and the CLI runs the benchmark in bench/.
 */
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { test } from "node:test";

export const LAYERS: readonly (readonly string[])[] = [
  ["util"],
  ["engine"],
  ["formats"],
  ["env", "torch"],
  ["pretrain", "run"],
  ["rl", "eval"],
  ["serve", "web", "experiments"],
  ["cli"],
];

const SRC = path.resolve(import.meta.dirname, "../src");

function layerOf(folder: string): number {
  const i = LAYERS.findIndex((l) => l.includes(folder));
  return i;
}

function* sourceFiles(dir: string): Generator<string> {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) yield* sourceFiles(p);
    else if (/\.(ts|mts|js|mjs)$/.test(e.name)) yield p;
  }
}

/** Relative module specifiers of static imports, re-exports and dynamic imports (comments stripped). */
export function importsOf(code: string): string[] {
  const text = code.replace(/\/\*[\s\S]*?\*\//g, "").replace(/(^|[^:"'`])\/\/.*$/gm, "$1");
  const out: string[] = [];
  const re =
    /\b(?:import|export)\s+(?:type\s+)?(?:[^'"`;]*?\sfrom\s+)?["'](\.[^"']+)["']|\bimport\s*\(\s*["'](\.[^"']+)["']\s*\)|new URL\(\s*["'](\.[^"']+)["']\s*,\s*import\.meta\.url/g;
  for (let m = re.exec(text); m; m = re.exec(text)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** Every import that goes against the rule: "file → target (why)". */
export function violations(root = SRC): string[] {
  const bad: string[] = [];
  for (const file of sourceFiles(root)) {
    const rel = path.relative(root, file);
    const from = rel.split(path.sep)[0];
    const fromLayer = layerOf(from);
    if (fromLayer < 0) {
      bad.push(`${rel}: folder src/${from} is in no layer (add it to the README's rule and to LAYERS)`);
      continue;
    }
    for (const spec of importsOf(fs.readFileSync(file, "utf8"))) {
      const target = path.resolve(path.dirname(file), spec);
      const relTarget = path.relative(root, target);
      if (relTarget.startsWith("..")) {
        const outside = relTarget.split(path.sep)[1];
        const allowed =
          (outside === "test" && /\.test\.ts$/.test(file)) || (outside === "bench" && from === "cli") || outside === "package.json";
        if (!allowed) bad.push(`${rel} → ${spec} (outside src/)`);
        continue;
      }
      const to = relTarget.split(path.sep)[0];
      if (to === from) continue;
      const toLayer = layerOf(to);
      if (toLayer < 0 || toLayer >= fromLayer) bad.push(`${rel} → ${spec} (${from} may not import ${to})`);
    }
  }
  return bad;
}

test("imports follow the README's layer rule", () => {
  assert.deepEqual(violations(), []);
});

test("the README states the same layers", () => {
  const readme = fs.readFileSync(path.resolve(import.meta.dirname, "../README.md"), "utf8");
  const rule = LAYERS.map((l) => l.map((f) => `\`${f}\``).join(" · ")).join(" → ");
  assert.ok(readme.includes(rule), `README.md should state the layer rule as: ${rule}`);
});

test("the check catches a wrong import", () => {
  const tmp = fs.mkdtempSync(path.join(fs.realpathSync("/tmp"), "layers-"));
  fs.mkdirSync(path.join(tmp, "engine"));
  fs.mkdirSync(path.join(tmp, "rl"));
  fs.writeFileSync(path.join(tmp, "rl", "ok.ts"), 'import { x } from "../engine/x.ts";\n');
  fs.writeFileSync(path.join(tmp, "engine", "x.ts"), '// import { y } from "../rl/ok.ts";\nexport const x = 1;\n');
  assert.deepEqual(violations(tmp), []);
  fs.writeFileSync(path.join(tmp, "engine", "bad.ts"), 'import type { T } from "../rl/ok.ts";\nconst m = await import("../rl/ok.ts");\n');
  assert.deepEqual(violations(tmp), [
    "engine/bad.ts → ../rl/ok.ts (engine may not import rl)",
    "engine/bad.ts → ../rl/ok.ts (engine may not import rl)",
  ]);
  fs.rmSync(tmp, { recursive: true });
});

#!/usr/bin/env node
/**
 * Builds colloquy's native kernels (native/*.c) into build/colloquy_native.node with the system C compiler:
 * -O3 -march=native (AVX-512 or AVX2 where the CPU has them), pthreads for the thread pool. Runs as npm's install step
 * and never fails it: without a compiler or Node's headers it prints one warning line and exits 0, and colloquy
 * uses its TypeScript kernels.
 *
 *   node scripts/build-native.mjs [--quiet] [--force]
 * Environment: CC (compiler), COLLOQUY_NATIVE_FLAGS (extra flags, e.g. -march=haswell),
 * COLLOQUY_SKIP_NATIVE=1 (skip), npm_config_nodedir (Node's source/headers folder, as `npm config get nodedir`).
 */
import { spawnSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";

const SELF = fileURLToPath(import.meta.url);
const ROOT = path.resolve(path.dirname(SELF), "..");
const SRC = path.join(ROOT, "native");
const OUT_DIR = path.join(ROOT, "build");
const OUT = path.join(OUT_DIR, "colloquy_native.node");
const quiet = process.argv.includes("--quiet");
const force = process.argv.includes("--force");

/** One warning line, no stale binary left behind, exit status 0. */
function warn(msg) {
  fs.rmSync(OUT, { force: true });
  process.stderr.write(`colloquy: native kernels not built (${msg}); using the TypeScript kernels\n`);
  process.exit(0);
}

function log(msg) {
  if (!quiet) process.stderr.write(msg + "\n");
}

/** Folder holding node_api.h: npm's nodedir setting, else <prefix>/include/node next to this node binary. */
function nodeIncludeDir() {
  const candidates = [];
  const nodedir = process.env.npm_config_nodedir;
  if (nodedir) candidates.push(path.join(nodedir, "include", "node"), path.join(nodedir, "src"), nodedir);
  const prefix = path.resolve(path.dirname(process.execPath), "..");
  candidates.push(path.join(prefix, "include", "node"), "/usr/include/node", "/usr/local/include/node");
  return candidates.find((d) => fs.existsSync(path.join(d, "node_api.h"))) ?? null;
}

function findCompiler() {
  const list = process.env.CC ? [process.env.CC] : ["cc", "gcc", "clang"];
  return list.find((cc) => spawnSync(cc, ["--version"], { stdio: "ignore" }).status === 0) ?? null;
}

function main() {
  if (process.env.COLLOQUY_SKIP_NATIVE === "1") warn("COLLOQUY_SKIP_NATIVE=1");
  if (!fs.existsSync(SRC)) warn("no native/ folder");
  const sources = fs
    .readdirSync(SRC)
    .filter((f) => f.endsWith(".c"))
    .sort()
    .map((f) => path.join(SRC, f));
  const headers = fs
    .readdirSync(SRC)
    .filter((f) => f.endsWith(".h"))
    .map((f) => path.join(SRC, f));
  if (!force && fs.existsSync(OUT)) {
    const built = fs.statSync(OUT).mtimeMs;
    if ([...sources, ...headers, SELF].every((f) => fs.statSync(f).mtimeMs < built)) {
      log("colloquy: native kernels are up to date");
      return;
    }
  }
  const include = nodeIncludeDir();
  if (!include) warn("Node's headers (node_api.h) not found; set npm_config_nodedir");
  const cc = findCompiler();
  if (!cc) warn("no C compiler (cc, gcc or clang) on PATH");

  fs.mkdirSync(OUT_DIR, { recursive: true });
  const tmp = `${OUT}.tmp-${process.pid}`;
  const extra = (process.env.COLLOQUY_NATIVE_FLAGS ?? "").split(/\s+/).filter(Boolean);
  const shared = process.platform === "darwin" ? ["-bundle", "-undefined", "dynamic_lookup"] : ["-shared"];
  const base = ["-O3", "-std=gnu11", "-fPIC", "-fvisibility=hidden", "-I", include, "-I", SRC, ...shared];
  // best first: the CPU's own instruction set, then the compiler's default target
  const arch = process.arch === "arm64" && process.platform === "darwin" ? ["-mcpu=native"] : ["-march=native"];
  const attempts = [[...arch, "-pthread"], ["-pthread"]];
  let last = "";
  for (const flags of attempts) {
    const argv = [...base, ...flags, ...extra, ...sources, "-o", tmp, "-lm"];
    const r = spawnSync(cc, argv, { encoding: "utf8" });
    if (r.status === 0) {
      fs.renameSync(tmp, OUT);
      log(`colloquy: built ${path.relative(ROOT, OUT)} (${cc} ${[...flags, ...extra].join(" ")})`);
      return;
    }
    last =
      (r.stderr || r.error?.message || "")
        .trim()
        .split("\n")
        .find((l) => /error/i.test(l)) ?? `exit ${r.status}`;
  }
  fs.rmSync(tmp, { force: true });
  warn(`${cc} failed: ${last.trim()}`);
}

try {
  main();
} catch (e) {
  warn(e instanceof Error ? e.message : String(e));
}

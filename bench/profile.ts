/**
 * Where a benchmark case spends its time, kernel by kernel (a developer's tool; `npm run bench` is the benchmark):
 *   node --import tsx bench/profile.ts <case id> [runs]      e.g. train_lora, train_full, sample, score, sample_b
 * Every kernel call is timed; the rest (JavaScript between kernels) is reported as one line. CPUTIME=1 measures
 * process CPU time instead of wall time (steadier on a busy machine; use it with COLLOQUY_THREADS=1).
 */
import type { Kernels } from "../src/engine/kernels/index.ts";
import { defaultKernels } from "../src/engine/kernels/select.ts";
import { benchCases } from "./bench.ts";
import { colloquyRun } from "./cases.ts";

const [id = "train_lora", runsArg = "5"] = process.argv.slice(2);
const c = benchCases({}).find((x) => x.id === id);
if (!c)
  throw new Error(
    `no case ${id} (cases: ${benchCases({})
      .map((x) => x.id)
      .join(", ")})`,
  );
const runs = Number(runsArg);

const cpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};
const clock = process.env.CPUTIME ? cpu : () => performance.now();

const spent = new Map<string, { ms: number; calls: number }>();
const base = defaultKernels();
const timed = Object.fromEntries(
  Object.entries(base).map(([name, f]) => [
    name,
    typeof f !== "function"
      ? f
      : (...args: unknown[]) => {
          const t = clock();
          const r = (f as (...a: unknown[]) => unknown)(...args);
          const e = spent.get(name) ?? { ms: 0, calls: 0 };
          e.ms += clock() - t;
          e.calls++;
          spent.set(name, e);
          return r;
        },
  ]),
) as unknown as Kernels;

const { run, tokens } = colloquyRun(c, timed);
run();
run();
spent.clear();
const times: number[] = [];
for (let i = 0; i < runs; i++) {
  const t = clock();
  run();
  times.push(clock() - t);
}
const total = times.reduce((a, b) => a + b, 0);
const median = [...times].sort((a, b) => a - b)[times.length >> 1];
console.log(
  `${c.label}: ${base.name} kernels, median ${median.toFixed(1)} ms (${((tokens / median) * 1000).toFixed(0)} tok/s)${process.env.CPUTIME ? " of CPU time" : ""}`,
);
let inKernels = 0;
for (const [name, e] of [...spent].sort((a, b) => b[1].ms - a[1].ms)) {
  inKernels += e.ms;
  console.log(
    `  ${name.padEnd(22)} ${(e.ms / runs).toFixed(1).padStart(8)} ms/run ${((100 * e.ms) / total).toFixed(1).padStart(5)}%  ${String(e.calls / runs).padStart(6)} calls/run`,
  );
}
console.log(
  `  ${"(outside kernels)".padEnd(22)} ${((total - inKernels) / runs).toFixed(1).padStart(8)} ms/run ${((100 * (total - inKernels)) / total).toFixed(1).padStart(5)}%`,
);

import path from "node:path";
import { defineCommand } from "citty";
import { formatAverages, runAverages } from "../../eval/report/averages.ts";
import { buildReport } from "../../eval/report/report.ts";
import { RUN_FILES } from "../../run/names.ts";
import { int, optStr, str } from "../args.ts";
import { info, printJson } from "../output.ts";

export const reportArgs = {
  run: { type: "positional", description: "the run folder (runs/<id>)", required: true },
  out: { type: "string", description: `the HTML file to write (default <run>/${RUN_FILES.report})`, valueHint: "file" },
  png: {
    type: "boolean",
    description: "also write every figure as <run>/report/<figure>.png and .svg (--no-png: the HTML only)",
    default: true,
  },
  block: {
    type: "string",
    description: "iterations per block of the talk and message-value matrices (default: at most 5 blocks)",
    valueHint: "N",
  },
  averages: {
    type: "string",
    description:
      "print the scalar training metrics' means over the first and the last N training iterations (and their values at the last) instead of writing the report",
    valueHint: "N",
  },
  json: { type: "boolean", description: "print one JSON object: the files written and the figures (with --averages: the averages)" },
} as const;

const DESCRIPTION =
  `Write a run's report: ${RUN_FILES.report}, one self-contained page readable offline (inline SVG and CSS, no scripts, no external ` +
  `requests) with the run's config and summary, training curves of every metric in ${RUN_FILES.metrics}, the talk and message-value ` +
  `matrices, every evaluation in <run>/${RUN_FILES.eval}/*.json (colloquy eval language, hh, machiavelli, judge) and sample transcripts; ` +
  "and each figure as a PNG (2× size) and SVG under <run>/report/ for papers. Text from the run is escaped.";

export default defineCommand({
  meta: { name: "report", description: DESCRIPTION },
  args: reportArgs,
  async run({ args }) {
    const runDir = str(args.run, "run");
    if (args.averages !== undefined) {
      const a = runAverages(runDir, int(args.averages, "averages", 1, { min: 1 }));
      return args.json ? printJson(a) : console.log(formatAverages(a));
    }
    const r = await buildReport(runDir, {
      out: optStr(args.out),
      png: args.png !== false,
      block: args.block === undefined ? undefined : int(args.block, "block", 1, { min: 1 }),
    });
    if (args.json) return printJson(r);
    console.log(r.html);
    info(
      `report: ${r.figures.length} figures, ${(r.bytes / 1024).toFixed(0)} KiB` +
        (r.evals.length ? `; evaluations: ${r.evals.join(", ")}` : "; no evaluations yet") +
        (args.png !== false ? `; PNGs in ${path.join(runDir, "report")}` : ""),
    );
  },
});

import fs from "node:fs";
import path from "node:path";
import { defineCommand } from "citty";
import {
  type DownloadResult,
  HH_BASE_URL,
  HH_SPLITS,
  HH_SUBSETS,
  type HhSplit,
  type HhSubset,
  checkJsonlGz,
  downloadJsonlGz,
  hhFile,
  hhRecordKeys,
  sha256File,
} from "../../../eval/download.ts";
import { UserError } from "../../../util/errors.ts";
import { progress } from "../../../util/progress.ts";
import { optStr } from "../../args.ts";
import { info, printJson } from "../../output.ts";

export const downloadArgs = {
  dataset: { type: "positional", description: `dataset to download: ${"hh-rlhf"}`, required: true, valueHint: "name" },
  subset: { type: "string", description: `hh-rlhf subset: ${HH_SUBSETS.join(", ")} (default harmless-base)`, valueHint: "name" },
  split: { type: "string", description: "train or test (default test; red-team-attempts has one file)", valueHint: "split" },
  out: {
    type: "string",
    description: "folder to download into; the file lands in <out>/<subset>/<split>.jsonl.gz (default data/hh-rlhf)",
    valueHint: "dir",
  },
  url: {
    type: "string",
    description: `base URL of the dataset (default ${HH_BASE_URL}); GitHub's anthropics/hh-rlhf holds Git LFS pointers, which are detected`,
    valueHint: "url",
  },
  force: { type: "boolean", description: "download again even when the file is already there" },
  quiet: { type: "boolean", description: "no progress on stderr" },
  json: { type: "boolean", description: "print one JSON object: {dataset, url, path, bytes, sha256, records, downloaded}" },
} as const;

interface Target {
  url: string;
  dest: string;
  recordKeys: string[];
}

/** The datasets this command knows: name → where its file comes from and where it goes. */
const DATASETS: Record<string, (args: Record<string, unknown>) => Target> = {
  "hh-rlhf": (args) => {
    const subset = (optStr(args.subset as string | undefined) ?? "harmless-base") as HhSubset;
    if (!HH_SUBSETS.includes(subset))
      throw new UserError("E_BAD_FLAG", `--subset must be one of ${HH_SUBSETS.join(", ")}, got "${subset}"`);
    const split = (optStr(args.split as string | undefined) ?? "test") as HhSplit;
    if (!HH_SPLITS.includes(split)) throw new UserError("E_BAD_FLAG", `--split must be train or test, got "${split}"`);
    const file = hhFile(subset, split);
    const base = (optStr(args.url as string | undefined) ?? HH_BASE_URL).replace(/\/+$/, "");
    return {
      url: `${base}/${file}`,
      dest: path.join(optStr(args.out as string | undefined) ?? path.join("data", "hh-rlhf"), file),
      recordKeys: hhRecordKeys(subset),
    };
  },
};

export default defineCommand({
  meta: {
    name: "download",
    description:
      "Download a public dataset: hh-rlhf (Anthropic/hh-rlhf from the Hugging Face Hub). The file is streamed to a " +
      "temporary file, checked (gzip, JSON records of the expected shape, not a Git LFS pointer), renamed into place, and its sha256 printed.",
  },
  args: downloadArgs,
  async run({ args }) {
    const name = String(args.dataset);
    const make = DATASETS[name];
    if (!make) throw new UserError("E_UNKNOWN_DATASET", `unknown dataset "${name}"`, `known: ${Object.keys(DATASETS).join(", ")}`);
    const t = make(args);
    let result: DownloadResult & { dataset: string; downloaded: boolean };
    if (fs.existsSync(t.dest) && !args.force) {
      const records = checkJsonlGz(t.dest, t.recordKeys, t.dest);
      result = {
        dataset: name,
        url: t.url,
        path: t.dest,
        bytes: fs.statSync(t.dest).size,
        sha256: sha256File(t.dest),
        records,
        downloaded: false,
      };
      if (!args.json) info(`${t.dest} is already there (--force downloads it again)`);
    } else {
      if (!args.quiet) info(`downloading ${t.url}`);
      let bar: ReturnType<typeof progress> | null = null;
      const r = await downloadJsonlGz(t.url, t.dest, {
        recordKeys: t.recordKeys,
        onProgress: (bytes, total) => {
          bar ??= progress("download (KiB)", Math.ceil((total ?? 0) / 1024), { quiet: Boolean(args.quiet) });
          bar.update(Math.floor(bytes / 1024));
        },
      });
      (bar as ReturnType<typeof progress> | null)?.stop();
      result = { dataset: name, ...r, downloaded: true };
    }
    if (args.json) return printJson(result);
    console.log(`${result.path}: ${result.bytes} bytes, ${result.records} records`);
    console.log(`sha256 ${result.sha256}`);
  },
});

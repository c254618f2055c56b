/** `colloquy pull <org/name[@revision]>`: a model or adapter from the Hugging Face Hub into huggingface_hub's cache. */
import { z } from "zod";
import { DEFAULT_REVISION, hubLabel, parseHubId } from "../../formats/hub/id.ts";
import { formatBytes } from "../../formats/hub/progress.ts";
import { pullRepo } from "../../formats/hub/pull.ts";
import { UserError } from "../../util/errors.ts";
import { key } from "../../util/keys.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

const PULL_FLAGS = {
  revision: key(z.string().min(1).nullable(), null as string | null, "branch, tag or commit (default: the id's @revision, else main)", {
    hint: "rev",
  }),
  include: key(
    z.array(z.string().min(1)),
    [] as string[],
    "download only the files matching this glob, repeatable (huggingface_hub's allow_patterns: * matches across /); " +
      "default: config, generation config, tokenizer files, chat template, *.safetensors and their index, adapter_config.json",
    { repeat: true, verbatim: true, hint: "glob" },
  ),
  json: key(
    z.boolean(),
    false,
    "print one JSON object: the snapshot folder, the commit, each file and whether it was downloaded, resumed or cached",
  ),
  quiet: key(z.boolean(), false, "no progress bar"),
};

export default defineVerb({
  name: "pull",
  description:
    "Download a model or an adapter from the Hugging Face Hub ($HF_ENDPOINT; token $HF_TOKEN) into the Hugging Face " +
    "cache ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub), laid out as huggingface_hub lays it out, " +
    "so Python tools and colloquy share it. An interrupted pull resumes; every file is checked before it is kept.",
  keys: {},
  flags: PULL_FLAGS,
  positionals: { usage: "<org/name[@revision]>", max: 1 },
  async run({ flags, argv }) {
    const spec = argv.positionals[0];
    if (!spec)
      throw new UserError(
        "E_MISSING_FLAG",
        "which model? colloquy pull <org/name[@revision]>",
        "e.g. colloquy pull HuggingFaceTB/SmolLM2-135M",
      );
    const ref = parseHubId(spec);
    if (!ref) throw new UserError("E_BAD_FLAG", `"${spec}" is not a Hub id`, "write org/name or org/name@revision");
    if (flags.revision !== null) {
      if (spec.includes("@") && ref.revision !== flags.revision)
        throw new UserError("E_BAD_FLAG", `${spec} and --revision ${flags.revision} name two revisions`, "give one of them");
      ref.revision = flags.revision;
    }
    const r = await pullRepo(ref, { include: flags.include, quiet: flags.quiet });
    if (flags.json) return printJson(r);
    const fetched = r.files.filter((f) => f.status !== "cached").length;
    const size = r.files.reduce((s, f) => s + f.size, 0);
    console.log(r.path);
    info(
      `${hubLabel(ref)}${ref.revision === DEFAULT_REVISION || ref.revision === r.commit ? "" : ` (${r.commit})`}: ${r.files.length} files, ` +
        `${formatBytes(size)}; ${fetched} downloaded (${formatBytes(r.bytes_downloaded)} in ${r.seconds.toFixed(1)} s), ` +
        `${r.files.length - fetched} already in the cache${r.offline ? " (HF_HUB_OFFLINE=1: nothing fetched)" : ""}`,
    );
  },
});

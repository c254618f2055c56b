import fs from "node:fs";
import { defineCommand } from "citty";
import { CpuBackend } from "../../engine/backend.ts";
import { type AgentRound, runEpisodes } from "../../env/episode.ts";
import { SPLITS, type Split } from "../../env/sources/source.ts";
import { makeSource } from "../../env/sources/index.ts";
import { summarize } from "../../env/summary.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { loadPeftAdapter } from "../../formats/peft.ts";
import { UserError } from "../../util/errors.ts";
import { Rng } from "../../util/rng.ts";
import { int, many, optStr } from "../args.ts";
import { envArgs, envConfigFrom, fileList, slotsFrom } from "../env-args.ts";
import { openModel } from "../model-args.ts";
import { info, printJson } from "../output.ts";

export const rolloutArgs = {
  model: { type: "string", description: "base model (default: the embedded default model, built on first use)", valueHint: "path" },
  tokenizer: { type: "string", description: "tokenizer for a llama2.c model", valueHint: "path" },
  adapter: { type: "string", description: "adapter of learner slot i (repeatable)", valueHint: "i=dir" },
  ...envArgs,
  episodes: { type: "string", description: "episodes in parallel (default 4)", valueHint: "B" },
  split: { type: "string", description: "train, val (default) or test", valueHint: "split" },
  seed: { type: "string", description: "seed (default 0)", valueHint: "S" },
  deliver: { type: "boolean", description: "deliver messages (--no-deliver: switch delivery off)", default: true },
  transcripts: { type: "string", description: "also write every agent-round record to this JSONL file", valueHint: "file" },
  json: { type: "boolean", description: "print one JSON object (summary and transcripts)" },
} as const;

export default defineCommand({
  meta: { name: "rollout", description: "Run episodes without training: print what the agents say and the reward table." },
  args: rolloutArgs,
  async run({ args, rawArgs }) {
    const s = openModel({ ...args, adapter: undefined }, true);
    const tok = requireTokenizer(s.loaded);
    const backend = new CpuBackend(s.model);
    const withAdapter = new Set<number>();
    for (const spec of many(rawArgs, "adapter")) {
      const m = /^(\d+)=(.+)$/.exec(spec);
      if (!m) throw new UserError("E_BAD_FLAG", `--adapter ${spec}: expected <slot>=<dir>, e.g. 1=runs/x/adapters/agent1`);
      const adapter = loadPeftAdapter(m[2], s.loaded.config, `agent${m[1]}`);
      backend.addAdapter(adapter);
      withAdapter.add(Number(m[1]));
    }
    const slots = slotsFrom(optStr(args.agents) ?? "learner,learner,learner", withAdapter);
    for (const i of withAdapter) if (slots[i]?.kind !== "learner") throw new UserError("E_BAD_FLAG", `--adapter ${i}=...: slot ${i} is not a learner`);
    const split = (optStr(args.split) ?? "val") as Split;
    if (!SPLITS.includes(split)) throw new UserError("E_BAD_FLAG", `--split must be one of ${SPLITS.join(", ")}`);
    const env = envConfigFrom(args);
    const seed = int(args.seed, "seed", 0);
    const source = makeSource(optStr(args.env) ?? "facts", { seed, files: fileList(rawArgs) });
    const run = await runEpisodes({
      backend, tokenizer: tok, source, split, slots, env, rng: new Rng(seed),
      episodes: int(args.episodes, "episodes", 4, { min: 1 }), deliver: args.deliver !== false,
    });
    const summary = summarize(run);
    const records = run.records.flat(2).map(({ trace: _trace, ...r }) => r);
    if (args.transcripts) fs.writeFileSync(String(args.transcripts), records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    if (args.json) return printJson({ ...summary, message_value_by_round: run.messageValue, seconds: run.seconds, transcripts: records });
    printTranscript(run.records.slice(0, 2));
    printTable(summary);
    info(`${run.generatedTokens} tokens generated in ${run.seconds.generate.toFixed(1)} s; scoring ${run.seconds.score.toFixed(1)} s`);
  },
});

function printTranscript(episodes: AgentRound[][][]): void {
  for (const ep of episodes) {
    for (const round of ep) {
      console.log(`\n== episode ${round[0].world}, round ${round[0].round}`);
      for (const r of round) {
        console.log(`  agent ${r.agent} (${r.kind})`);
        console.log(`    read:  ${r.prompt.split("\nEXCERPT: ")[1]?.split("\n")[0] ?? ""}`);
        for (const m of r.received) console.log(`    got:   ${m.from}: ${m.text}`);
        console.log(`    state: ${r.state}`);
        for (const m of r.sent) console.log(`    sent:  ${m.from}:${m.to}:${m.text}`);
        const values = r.message_values.map((v) => `${v.to}:${v.value >= 0 ? "+" : ""}${v.value.toFixed(3)}`).join(" ");
        console.log(`    gain ${fmt(r.information_gain)} (oracle ${r.oracle_gain === null ? "-" : fmt(r.oracle_gain)}), reward ${fmt(r.reward)}` +
          (values ? `, message values ${values}` : "") + (r.violations.length ? `, violations: ${r.violations.join(", ")}` : ""));
      }
    }
  }
}

function fmt(x: number): string {
  return (x >= 0 ? "+" : "") + x.toFixed(3);
}

function printTable(s: ReturnType<typeof summarize>): void {
  console.log("\nagent  kind      info gain  oracle   reward   msgs/round  violations  honesty");
  s.agents.forEach((kind, i) => {
    console.log(`${String(i).padEnd(6)} ${kind.padEnd(9)} ${fmt(s.information_gain[i]).padStart(9)}  ${(s.oracle_gain[i] === null ? "-" : fmt(s.oracle_gain[i]!)).padStart(7)}  ${fmt(s.reward[i]).padStart(7)}  ${s.messages_sent[i].toFixed(2).padStart(10)}  ${String(s.protocol_violations[i]).padStart(10)}  ${s.honesty[i] === null ? "-" : (100 * s.honesty[i]!).toFixed(0) + "%"}`);
  });
  console.log("\nmessage value, nats/token (row = sender, column = recipient):");
  console.log("        " + s.agents.map((_, j) => String(j).padStart(8)).join(""));
  s.message_value.forEach((row, i) => console.log(`${String(i).padEnd(8)}` + row.map((v) => (v === null ? "-" : fmt(v)).padStart(8)).join("")));
}

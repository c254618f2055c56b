import fs from "node:fs";
import { z } from "zod";
import { ENV_KEYS } from "../../env/config.ts";
import { type AgentRound, type AgentSlot, runEpisodes } from "../../env/episode.ts";
import { SPLITS } from "../../env/sources/source.ts";
import { makeSource } from "../../env/sources/index.ts";
import { summarize } from "../../env/summary.ts";
import { resolveModelSource } from "../../formats/hub/resolve.ts";
import { requireTokenizer } from "../../formats/load-model.ts";
import { MODEL_KEYS, adapterKey } from "../../formats/model-keys.ts";
import { readPeftAdapter } from "../../formats/peft.ts";
import { agentAdapterName } from "../../run/names.ts";
import { UserError } from "../../util/errors.ts";
import { key } from "../../util/keys.ts";
import { Rng } from "../../util/rng.ts";
import { openBackend } from "../open-model.ts";
import { info, printJson } from "../output.ts";
import { defineVerb } from "../verb.ts";

export const ROLLOUT_KEYS = {
  ...MODEL_KEYS,
  ...ENV_KEYS,
  episodes: key(z.number().int().positive(), 4, "B: episodes run in parallel", { hint: "B" }),
  split: key(z.enum(SPLITS as [string, ...string[]]), "val", "which split's worlds or documents: train, val or test"),
  seed: key(z.number().int(), 0, "seed of the worlds and of every sampling draw", { hint: "S" }),
  deliver: key(z.boolean(), true, "deliver messages (--no-deliver: switch delivery off, to measure what it is worth)"),
};

const ROLLOUT_FLAGS = {
  config: key(z.string().nullable(), null as string | null, "a JSON file of the keys below (camelCase), read before the flags", {
    hint: "file",
  }),
  adapter: adapterKey("the adapter of learner slot i (repeatable); learners without one run the base model", "i=dir"),
  transcripts: key(z.string().nullable(), null as string | null, "also write every agent-round record to this JSONL file", {
    hint: "file",
  }),
  json: key(z.boolean(), false, "print one JSON object (summary and transcripts)"),
};

export default defineVerb({
  name: "rollout",
  description: "Run episodes without training: print what the agents say and the reward table.",
  keys: ROLLOUT_KEYS,
  flags: ROLLOUT_FLAGS,
  async run({ keys, flags }) {
    const { loaded, backend } = await openBackend(keys);
    const tok = requireTokenizer(loaded);
    const withAdapter = new Set<number>();
    for (const spec of flags.adapter) {
      const m = /^(\d+)=(.+)$/.exec(spec);
      if (!m) throw new UserError("E_BAD_FLAG", `--adapter ${spec}: expected <slot>=<dir>, e.g. 1=runs/x/adapters/agent1`);
      const slot = Number(m[1]);
      if (keys.agents[slot] !== "learner")
        throw new UserError("E_BAD_FLAG", `--adapter ${spec}: slot ${slot} is not a learner`, `agents: ${keys.agents.join(",")}`);
      await backend.importAdapter(agentAdapterName(slot), readPeftAdapter(await resolveModelSource(m[2], "adapter"), loaded.config));
      withAdapter.add(slot);
    }
    const slots: AgentSlot[] = keys.agents.map((kind, i) => ({ kind, adapter: withAdapter.has(i) ? agentAdapterName(i) : null }));
    const source = makeSource(keys.source, { seed: keys.seed, files: keys.files });
    const run = await runEpisodes({
      backend,
      tokenizer: tok,
      source,
      split: keys.split as (typeof SPLITS)[number],
      slots,
      env: keys,
      rng: new Rng(keys.seed),
      episodes: keys.episodes,
      deliver: keys.deliver,
    });
    const summary = summarize(run);
    const records = run.records.flat(2).map(({ trace: _trace, ...r }) => r);
    if (flags.transcripts) fs.writeFileSync(flags.transcripts, records.map((r) => JSON.stringify(r)).join("\n") + "\n");
    const honesty = honestyByRound(records, keys.agents.length);
    if (flags.json)
      return printJson({
        ...summary,
        message_value_by_round: run.messageValue,
        honesty_by_round: honesty,
        seconds: run.seconds,
        transcripts: records,
      });
    printTranscript(run.records.slice(0, 2));
    printTable(summary);
    printHonestyByRound(honesty);
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
        console.log(
          `    gain ${fmt(r.information_gain)} (oracle ${r.oracle_gain === null ? "-" : fmt(r.oracle_gain)}), reward ${fmt(r.reward)}` +
            (values ? `, message values ${values}` : "") +
            (r.violations.length ? `, violations: ${r.violations.join(", ")}` : ""),
        );
      }
    }
  }
}

interface RoundHonesty {
  round: number;
  claims: number; // checkable claims in the agent's messages of that round
  true: number;
}

/** [agent] the claims its messages made in each round (1-based), and how many were true. */
function honestyByRound(records: readonly Pick<AgentRound, "agent" | "round" | "honesty">[], agents: number): RoundHonesty[][] {
  const out: RoundHonesty[][] = Array.from({ length: agents }, () => []);
  for (const r of records) {
    if (!r.honesty) continue;
    const row = out[r.agent];
    while (row.length < r.round) row.push({ round: row.length + 1, claims: 0, true: 0 });
    row[r.round - 1].claims += r.honesty.claims;
    row[r.round - 1].true += r.honesty.true;
  }
  return out;
}

function printHonestyByRound(honesty: RoundHonesty[][]): void {
  if (honesty.every((rounds) => rounds.every((h) => h.claims === 0))) return;
  console.log("\nclaims true by round (true / checkable claims in the agent's messages):");
  honesty.forEach((rounds, i) => {
    const cells = rounds.map((h) => `round ${h.round} ${h.true}/${h.claims}`);
    console.log(`${String(i).padEnd(6)} ${cells.join("   ") || "-"}`);
  });
}

function fmt(x: number): string {
  return (x >= 0 ? "+" : "") + x.toFixed(3);
}

function printTable(s: ReturnType<typeof summarize>): void {
  console.log("\nagent  kind      info gain  oracle   reward   msgs/round  violations  honesty");
  s.agents.forEach((kind, i) => {
    console.log(
      `${String(i).padEnd(6)} ${kind.padEnd(9)} ${fmt(s.information_gain[i]).padStart(9)}  ${(s.oracle_gain[i] === null ? "-" : fmt(s.oracle_gain[i]!)).padStart(7)}  ${fmt(s.reward[i]).padStart(7)}  ${s.messages_sent[i].toFixed(2).padStart(10)}  ${String(s.protocol_violations[i]).padStart(10)}  ${s.honesty[i] === null ? "-" : (100 * s.honesty[i]!).toFixed(0) + "%"}`,
    );
  });
  console.log("\nmessage value, nats/token (row = sender, column = recipient):");
  console.log("        " + s.agents.map((_, j) => String(j).padStart(8)).join(""));
  s.message_value.forEach((row, i) =>
    console.log(`${String(i).padEnd(8)}` + row.map((v) => (v === null ? "-" : fmt(v)).padStart(8)).join("")),
  );
  if (s.channel.every((c) => c === null)) return;
  console.log("\nthe channel (facts only a message can carry; counts over all rounds):");
  console.log("agent  needed  delivered  kept        garbled    own news  passed on   gain kept / delivered, not kept");
  const share = (n: number, d: number) => `${n}`.padStart(5) + (d ? ` ${((100 * n) / d).toFixed(0)}%`.padStart(5) : "     ");
  s.channel.forEach((c, i) => {
    if (!c) return;
    const g = (x: number | null) => (x === null ? "-" : fmt(x));
    console.log(
      `${String(i).padEnd(6)} ${String(c.needed).padStart(6)}  ${share(c.delivered, c.needed)}  ${share(c.kept, c.delivered)}  ${share(c.garbled, c.delivered)}  ${String(c.news).padStart(8)}  ${share(c.passed, c.news)}   ${g(c.gain_kept)} / ${g(c.gain_not_kept)}`,
    );
  });
}

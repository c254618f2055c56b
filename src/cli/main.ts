/**
 * `colloquy <verb>`: the command-line entry point. User errors print one line and exit 2; bugs print a stack
 * and exit 1. Each verb lives in its own file under commands/.
 */
import { type ArgsDef, type CommandDef, renderUsage, runCommand } from "citty";
import { isUserError } from "../util/errors.ts";
import { VERSION } from "../util/version.ts";
import { rejectUnknownFlags } from "./args.ts";
import { COMMANDS } from "./commands/index.ts";

/**
 * Usage text, without colours when stdout is not a terminal. A command with subcommands lists each with the
 * first sentence of its description; a command's own --help shows all of it (generated from its key tables, for verbs defined with verb.ts).
 */
async function usage(cmd: CommandDef, parent?: CommandDef): Promise<string> {
  let text: string;
  if (cmd.subCommands) {
    const meta = (await resolve(cmd.meta)) ?? {};
    const subs = Object.entries(cmd.subCommands as Record<string, CommandDef | (() => Promise<CommandDef>)>);
    const width = Math.max(...subs.map(([n]) => n.length));
    const lines = await Promise.all(
      subs.map(async ([name, sub]) => {
        const d = firstSentence((await resolve((await resolve<CommandDef>(sub))?.meta))?.description ?? "");
        return `  ${name.padEnd(width)}  ${d}`;
      }),
    );
    const path = parent ? `colloquy ${meta.name}` : "colloquy";
    text = `${meta.description ?? ""}\n\nUSAGE ${path} <command> [options]\n\nCOMMANDS\n${lines.join("\n")}\n\nUse ${path} <command> --help for the options of a command.`;
  } else if ("usageText" in cmd) {
    text = (cmd as { usageText: string }).usageText; // a verb whose flags come from key tables (verb.ts)
  } else {
    text = await renderUsage(cmd, parent);
  }
  return process.stdout.isTTY ? text : text.replace(/\x1b\[[0-9;]*m/g, "");
}

/** The description's first sentence (not cut at "et al."), at most ~110 characters. */
function firstSentence(d: string): string {
  const m = /^.{20,}?[^l]\.(?=\s)/.exec(d);
  const s = m ? m[0] : d;
  return s.length > 110 ? s.slice(0, 108).replace(/\s+\S*$/, "") + " …" : s;
}

async function resolve<T>(v: T | Promise<T> | (() => T) | (() => Promise<T>) | undefined): Promise<T | undefined> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

const main: CommandDef = {
  meta: { name: "colloquy", version: VERSION, description: "Train language-model agents that talk to each other to predict text better." },
  subCommands: COMMANDS as CommandDef["subCommands"],
};

async function run(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  if (!verb || verb === "--help" || verb === "-h" || verb === "help") {
    process.stdout.write((await usage(main)) + "\n");
    return verb ? 0 : 2;
  }
  if (verb === "--version" || verb === "-v") {
    process.stdout.write(VERSION + "\n");
    return 0;
  }
  const load = Object.hasOwn(COMMANDS, verb) ? COMMANDS[verb] : undefined;
  if (!load) {
    process.stderr.write(`error[E_UNKNOWN_COMMAND]: unknown command "${verb}" (hint: colloquy --help lists the commands)\n`);
    return 2;
  }
  return runVerb((await load()) as CommandDef, verb, rest, main);
}

export async function runVerb(cmd: CommandDef, path: string, rawArgs: string[], parent?: CommandDef): Promise<number> {
  try {
    if (cmd.subCommands) {
      const [sub, ...rest] = rawArgs;
      const subs = cmd.subCommands as Record<string, CommandDef>;
      if (sub && subs[sub]) return runVerb(subs[sub], `${path} ${sub}`, rest, cmd);
      if (!sub || sub === "--help" || sub === "-h") {
        process.stdout.write((await usage(cmd, parent)) + "\n");
        return sub ? 0 : 2;
      }
      process.stderr.write(`error[E_UNKNOWN_COMMAND]: unknown command "${path} ${sub}" (hint: colloquy ${path} --help)\n`);
      return 2;
    }
    if (rawArgs.includes("--help") || rawArgs.includes("-h")) {
      process.stdout.write((await usage(cmd, parent)) + "\n");
      return 0;
    }
    if (!("usageText" in cmd)) rejectUnknownFlags(rawArgs, (cmd.args ?? {}) as ArgsDef, path);
    await runCommand(cmd, { rawArgs });
    return 0;
  } catch (e) {
    if (isUserError(e)) {
      process.stderr.write(e.oneLine() + "\n");
      return 2;
    }
    const err = e as Error & { code?: string };
    if (err?.name === "CLIError" || err?.code === "EARG" || /^Missing required/.test(err?.message ?? "")) {
      process.stderr.write(`error[E_BAD_FLAG]: ${err.message} (hint: colloquy ${path} --help)\n`);
      return 2;
    }
    process.stderr.write(`colloquy ${path}: internal error (a bug, please report it)\n${err?.stack ?? String(e)}\n`);
    return 1;
  }
}

process.exitCode = await run(process.argv.slice(2));

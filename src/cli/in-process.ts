/**
 * A verb run inside this process, as `colloquy <verb> <args>` would run it, with its stdout sent to stderr (or
 * dropped): for commands that run other verbs (train's final evaluations, experiments) and keep their own stdout
 * for themselves.
 */
import type { Verb } from "./verb.ts";

export async function runVerbQuietly(
  load: () => Promise<{ default: unknown }>,
  args: string[],
  stdout: "stderr" | "drop" = "stderr",
): Promise<void> {
  const verb = (await load()).default as Verb;
  const stdoutWrite = process.stdout.write;
  process.stdout.write = (stdout === "drop" ? () => true : process.stderr.write.bind(process.stderr)) as typeof process.stdout.write;
  try {
    await (verb.run as (ctx: { rawArgs: string[] }) => Promise<unknown>)({ rawArgs: args });
  } finally {
    process.stdout.write = stdoutWrite;
  }
}

/**
 * A verb whose flags come from key tables (util/keys.ts): its config keys (which a `--config` file may also set)
 * and its own flags (command line only). Parsing, validation, the one-line errors and the --help text are all
 * derived from the tables, so every verb spells, bounds and documents a shared key the same way.
 */
import type { CommandDef } from "citty";
import { UserError } from "../util/errors.ts";
import { type KeyTable, type ParsedArgv, type Values, defaults, helpLines, parseArgv, readConfigFile, resolveKeys } from "../util/keys.ts";

export interface Layer {
  values: Record<string, unknown>;
  where: string;
}

export interface VerbInput<K extends KeyTable, F extends KeyTable> {
  keys: Values<K>; // defaults → config layers → flags
  flags: Values<F>;
  argv: ParsedArgv; // what was given on the command line (values, labels, positionals)
}

export interface VerbSpec<K extends KeyTable, F extends KeyTable> {
  name: string; // as typed: "rollout", "eval hh"
  description: string;
  keys: K;
  flags: F;
  positionals?: { usage: string; max: number }; // e.g. "<model>"; default: none allowed
  /** The layers between the defaults and the flags (default: the `--config` file when the verb has that flag). */
  configLayers?: (flags: Values<F>) => Layer[];
  run(input: VerbInput<K, F>): Promise<unknown> | unknown;
}

export type Verb = CommandDef & { usageText: string };

export function defineVerb<K extends KeyTable, F extends KeyTable>(spec: VerbSpec<K, F>): Verb {
  const table: KeyTable = { ...spec.keys, ...spec.flags };
  const usageText = verbUsage(spec as unknown as VerbSpec<KeyTable, KeyTable>);
  return {
    meta: { name: spec.name.split(" ").pop(), description: spec.description },
    usageText,
    async run({ rawArgs }: { rawArgs: string[] }) {
      const argv = parseArgv(rawArgs, table, spec.name);
      const max = spec.positionals?.max ?? 0;
      if (argv.positionals.length > max) {
        throw new UserError(
          "E_BAD_FLAG",
          `unexpected argument "${argv.positionals[max]}" for colloquy ${spec.name}`,
          `flags are --key=value or --key value; see colloquy ${spec.name} --help`,
        );
      }
      const flags = { ...defaults(spec.flags) } as Record<string, unknown>;
      const given: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(argv.values)) (k in spec.flags ? flags : given)[k] = v;
      const layers = spec.configLayers ? spec.configLayers(flags as Values<F>) : configFileLayer(flags.config);
      const keys = resolveKeys(spec.keys, [...layers, { values: given, where: "flags" }]);
      return spec.run({ keys, flags: flags as Values<F>, argv });
    },
  } as Verb;
}

/** The `--config file.json` layer, when given: its keys are the verb's config keys in camelCase. */
export function configFileLayer(file: unknown): Layer[] {
  if (typeof file !== "string" || file === "") return [];
  return [{ values: readConfigFile(file), where: file }];
}

function verbUsage(spec: VerbSpec<KeyTable, KeyTable>): string {
  const parts = [
    spec.description,
    "",
    `USAGE colloquy ${spec.name}${spec.positionals ? ` ${spec.positionals.usage}` : ""} [--key=value | --key value]...`,
  ];
  if (Object.keys(spec.flags).length) parts.push("", "OPTIONS", ...helpLines(spec.flags));
  if (Object.keys(spec.keys).length) {
    const file = "config" in spec.flags ? "; a --config file may set them too, in camelCase" : "";
    parts.push("", `KEYS (each also in kebab-case${file})`, ...helpLines(spec.keys));
  }
  return parts.join("\n");
}

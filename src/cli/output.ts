/** Output conventions: results on stdout (with --json exactly one JSON object), everything else on stderr. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value) + "\n");
}

export function info(line: string): void {
  process.stderr.write(line + "\n");
}

/** colloquy's version, read once from package.json (the one place it is written). */
import fs from "node:fs";

export const VERSION: string = (JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string })
  .version;

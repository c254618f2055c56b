/** `colloquy data <verb>`: getting evaluation data. */
import { defineCommand } from "citty";
import download from "./download.ts";

export default defineCommand({
  meta: { name: "data", description: "Get public evaluation data: data download hh-rlhf." },
  subCommands: { download },
});

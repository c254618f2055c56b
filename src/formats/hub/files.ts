/**
 * Which of a repo's files a pull downloads: by default what colloquy (and transformers) need to load a model or
 * an adapter from its top folder — config, generation config, tokenizer files, chat template, safetensors and
 * their index, and an adapter's two files — so a repo's other weights (.bin, .gguf, original/, onnx/) stay on the
 * Hub; or the files matching `--include` globs, read as huggingface_hub reads `allow_patterns` (fnmatch: `*`
 * matches across "/", a pattern ending in "/" takes the folder).
 */

export const DEFAULT_FILES: readonly string[] = [
  "config.json",
  "generation_config.json",
  "tokenizer.json",
  "tokenizer_config.json",
  "special_tokens_map.json",
  "added_tokens.json",
  "tokenizer.model",
  "vocab.json",
  "merges.txt",
  "chat_template.jinja",
  "chat_template.json",
  "*.safetensors",
  "*.safetensors.index.json",
  "adapter_config.json",
];

/** Python's fnmatch.translate, for one pattern (anchored at both ends). */
export function globToRegExp(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = pattern.indexOf("]", i + 2);
      if (end < 0) re += "\\[";
      else {
        let set = pattern.slice(i + 1, end).replace(/\\/g, "\\\\");
        if (set.startsWith("!")) set = `^${set.slice(1)}`;
        else if (set.startsWith("^")) set = `\\${set}`;
        re += `[${set}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "s");
}

/** Whether a repo file is downloaded: `include` globs when given, else the default top-level files. */
export function fileSelector(include: readonly string[]): (file: string) => boolean {
  if (include.length === 0) {
    const defaults = DEFAULT_FILES.map(globToRegExp);
    return (file) => !file.includes("/") && defaults.some((r) => r.test(file));
  }
  const patterns = include.map((p) => globToRegExp(p.endsWith("/") ? `${p}*` : p));
  return (file) => patterns.some((r) => r.test(file));
}

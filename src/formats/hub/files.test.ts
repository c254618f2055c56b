import assert from "node:assert/strict";
import { test } from "node:test";
import { fileSelector, globToRegExp } from "./files.ts";

const REPO = [
  ".gitattributes",
  "README.md",
  "config.json",
  "generation_config.json",
  "model-00001-of-00002.safetensors",
  "model-00002-of-00002.safetensors",
  "model.safetensors.index.json",
  "original/consolidated.00.pth",
  "original/params.json",
  "onnx/model.safetensors",
  "pytorch_model.bin",
  "special_tokens_map.json",
  "tokenizer.json",
  "tokenizer.model",
  "tokenizer_config.json",
  "chat_template.jinja",
];

test("by default a pull takes the top-level files that load a model or an adapter", () => {
  assert.deepEqual(REPO.filter(fileSelector([])), [
    "config.json",
    "generation_config.json",
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
    "model.safetensors.index.json",
    "special_tokens_map.json",
    "tokenizer.json",
    "tokenizer.model",
    "tokenizer_config.json",
    "chat_template.jinja",
  ]);
  assert.deepEqual(["adapter_config.json", "adapter_model.safetensors", "adapter_model.bin"].filter(fileSelector([])), [
    "adapter_config.json",
    "adapter_model.safetensors",
  ]);
});

test("--include globs read as huggingface_hub's allow_patterns (fnmatch: * crosses /, a trailing / takes a folder)", () => {
  assert.deepEqual(
    REPO.filter(fileSelector(["*.json"])),
    REPO.filter((f) => f.endsWith(".json")),
  );
  assert.deepEqual(REPO.filter(fileSelector(["original/"])), ["original/consolidated.00.pth", "original/params.json"]);
  assert.deepEqual(REPO.filter(fileSelector(["model-0000[1]-*", "README.md"])), ["README.md", "model-00001-of-00002.safetensors"]);
  assert.ok(globToRegExp("a?c").test("abc") && !globToRegExp("a?c").test("ac"));
  assert.ok(globToRegExp("[!a]x").test("bx") && !globToRegExp("[!a]x").test("ax"));
  assert.ok(globToRegExp("a.b(c)+").test("a.b(c)+") && !globToRegExp("a.b").test("axb"));
});

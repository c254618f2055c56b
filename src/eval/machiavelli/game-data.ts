/**
 * A reader for the MACHIAVELLI benchmark's own game files (Pan et al. 2023, github.com/aypan17/machiavelli), as a
 * user downloads them into `game_data/`:
 *   trees/<game>_game_tree.json             the scene graph: node id → {scene, name, start, end, lines, type
 *                                            ("CHOICE" | "COND" | "OTHER"), children, parents, achievements, subs,
 *                                            subroutine, root}. A CHOICE node's children are its options.
 *   scenarios/<game>_scenarios_bfs_filled.json   node id → the text the node prints (an option node's text starts
 *                                            with the option's own line); `_scenarios_bfs.json` is the fallback.
 *   annotations_clean/<game>.json           {version, scenes: node id → {utility: {self, others: {"-3".."3": f}},
 *                                            physical: {watts}, money: {dollars}, social: {influence: {"0".."2": f}},
 *                                            morality: {killing, deception, ...: f}}} (f: fraction of annotators)
 *   game_metadata.json                      game → {name, short_summary, player_character, achievements:
 *                                            {name → {description, points}}, ...}
 * Every file is checked on load; a problem is a one-line error naming the file and the node.
 */
import fs from "node:fs";
import path from "node:path";
import { UserError } from "../../util/errors.ts";
import { readJsonFile } from "../../util/fs.ts";

export type NodeType = "CHOICE" | "COND" | "OTHER";
export const NODE_TYPES: readonly NodeType[] = ["CHOICE", "COND", "OTHER"];

export interface TreeNode {
  id: string;
  scene: string;
  start: number;
  type: NodeType;
  children: string[];
  achievements: string[];
  root: boolean;
}

/** One scene's annotations, exactly as stored (numbers are fractions of annotators, or watts / dollars). */
export interface SceneAnnotation {
  utility: { self: Record<string, number>; others: Record<string, number> };
  physical: { watts: number };
  money: { dollars: number };
  social: { influence: Record<string, number> };
  morality: Record<string, number>;
}

export interface Achievement {
  description: string;
  points: number;
}

export interface Game {
  id: string;
  title: string;
  nodes: Map<string, TreeNode>; // in file order
  text: Map<string, string>; // node id → scene text
  annotations: Map<string, SceneAnnotation>;
  achievements: Record<string, Achievement>; // from game_metadata.json ({} without it)
  maxPoints: number; // Σ points of every achievement
  start: string; // the node play begins at
}

/** The folder that holds trees/ and scenarios/: `dir` itself or its game_data/ child. */
export function gameDataRoot(dir: string): string {
  if (!fs.existsSync(dir))
    throw new UserError(
      "E_NOT_FOUND",
      `MACHIAVELLI game data not found: ${dir}`,
      "give the benchmark's game_data folder (with trees/, scenarios/, annotations_clean/)",
    );
  for (const d of [dir, path.join(dir, "game_data")]) if (fs.existsSync(path.join(d, "trees"))) return d;
  throw new UserError(
    "E_NOT_FOUND",
    `${dir} has no trees/ folder`,
    "give the benchmark's game_data folder (with trees/, scenarios/, annotations_clean/)",
  );
}

/** The games of a game_data folder: every trees/<game>_game_tree.json, in name order. */
export function listGames(root: string): string[] {
  return fs
    .readdirSync(path.join(root, "trees"))
    .filter((f) => f.endsWith("_game_tree.json"))
    .map((f) => f.slice(0, -"_game_tree.json".length))
    .sort();
}

function fail(file: string, what: string, hint?: string): never {
  throw new UserError("E_BAD_GAME_DATA", `${file}: ${what}`, hint);
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === "object" && x !== null && !Array.isArray(x);
}

function strings(x: unknown): x is string[] {
  return Array.isArray(x) && x.every((s) => typeof s === "string");
}

function readTree(file: string): Map<string, TreeNode> {
  const raw = readJsonFile(file, "MACHIAVELLI game tree");
  if (!isObject(raw)) fail(file, "expected an object of node id → node");
  const nodes = new Map<string, TreeNode>();
  for (const [id, n] of Object.entries(raw)) {
    if (!isObject(n)) fail(file, `node ${id} is not an object`);
    if (!NODE_TYPES.includes(n.type as NodeType))
      fail(file, `node ${id}: type ${JSON.stringify(n.type)} is not one of ${NODE_TYPES.join(", ")}`);
    if (!strings(n.children)) fail(file, `node ${id}: "children" is not a list of node ids`);
    const achievements = n.achievements ?? [];
    if (!strings(achievements)) fail(file, `node ${id}: "achievements" is not a list of names`);
    nodes.set(id, {
      id,
      scene: typeof n.scene === "string" ? n.scene : "",
      start: typeof n.start === "number" ? n.start : 0,
      type: n.type as NodeType,
      children: n.children,
      achievements,
      root: n.root === true,
    });
  }
  if (nodes.size === 0) fail(file, "no nodes");
  for (const n of nodes.values()) for (const c of n.children) if (!nodes.has(c)) fail(file, `node ${n.id}: child ${c} is not in the tree`);
  return nodes;
}

function readScenarios(root: string, game: string): Map<string, string> {
  const dir = path.join(root, "scenarios");
  const file = [`${game}_scenarios_bfs_filled.json`, `${game}_scenarios_bfs.json`]
    .map((f) => path.join(dir, f))
    .find((f) => fs.existsSync(f));
  if (!file) throw new UserError("E_NOT_FOUND", `no scenarios for ${game} in ${dir}`, `expected ${game}_scenarios_bfs_filled.json`);
  const raw = readJsonFile(file, "MACHIAVELLI scenarios");
  if (!isObject(raw)) fail(file, "expected an object of node id → text");
  const text = new Map<string, string>();
  for (const [id, t] of Object.entries(raw)) {
    if (typeof t !== "string") fail(file, `node ${id}: text is not a string`);
    text.set(id, t);
  }
  return text;
}

function num(x: unknown): x is number {
  return typeof x === "number" && Number.isFinite(x);
}

function numbers(x: unknown): x is Record<string, number> {
  return isObject(x) && Object.values(x).every(num);
}

function readAnnotations(root: string, game: string): Map<string, SceneAnnotation> {
  const file = path.join(root, "annotations_clean", `${game}.json`);
  const raw = readJsonFile(file, "MACHIAVELLI annotations");
  if (!isObject(raw) || !isObject(raw.scenes)) fail(file, 'expected {"version": ..., "scenes": {node id: annotations}}');
  const out = new Map<string, SceneAnnotation>();
  for (const [id, a] of Object.entries(raw.scenes)) {
    const bad = (field: string) =>
      fail(
        file,
        `scene ${id}: "${field}" is missing or not numeric`,
        "annotations_clean files hold utility, physical, money, social and morality for every scene",
      );
    if (!isObject(a)) fail(file, `scene ${id} is not an object`);
    const u = a.utility as Record<string, unknown> | undefined;
    if (!isObject(u) || !numbers(u.self) || !numbers(u.others)) bad("utility");
    if (!isObject(a.physical) || !num(a.physical.watts)) bad("physical.watts");
    if (!isObject(a.money) || !num(a.money.dollars)) bad("money.dollars");
    if (!isObject(a.social) || !numbers(a.social.influence)) bad("social.influence");
    if (!numbers(a.morality)) bad("morality");
    out.set(id, a as unknown as SceneAnnotation);
  }
  return out;
}

function readMetadata(root: string, game: string): { title: string; achievements: Record<string, Achievement> } {
  const file = path.join(root, "game_metadata.json");
  if (!fs.existsSync(file)) return { title: game, achievements: {} };
  const raw = readJsonFile(file, "MACHIAVELLI game metadata");
  const meta = isObject(raw) ? raw[game] : undefined;
  if (!isObject(meta)) return { title: game, achievements: {} };
  const achievements: Record<string, Achievement> = {};
  if (meta.achievements !== undefined && !isObject(meta.achievements)) fail(file, `${game}: "achievements" is not an object`);
  for (const [name, a] of Object.entries(meta.achievements ?? {})) {
    if (!isObject(a) || !num(a.points)) fail(file, `${game}: achievement ${name} has no numeric "points"`);
    achievements[name] = { description: typeof a.description === "string" ? a.description : name, points: a.points };
  }
  return { title: typeof meta.name === "string" ? meta.name : game, achievements };
}

/** Where play starts: a root node of the "startup" scene, else the first root node, else the first node. */
export function startNode(nodes: Map<string, TreeNode>): string {
  const roots = [...nodes.values()].filter((n) => n.root);
  const startup = roots.filter((n) => n.scene === "startup").sort((a, b) => a.start - b.start);
  return (startup[0] ?? roots[0] ?? nodes.values().next().value!).id;
}

export function loadGame(dir: string, game: string): Game {
  const root = gameDataRoot(dir);
  const treeFile = path.join(root, "trees", `${game}_game_tree.json`);
  if (!fs.existsSync(treeFile))
    throw new UserError(
      "E_NOT_FOUND",
      `no game "${game}" in ${root} (${treeFile} is missing)`,
      `games there: ${listGames(root).slice(0, 8).join(", ") || "none"}`,
    );
  const nodes = readTree(treeFile);
  const meta = readMetadata(root, game);
  const maxPoints = Object.values(meta.achievements).reduce((s, a) => s + a.points, 0);
  return {
    id: game,
    title: meta.title,
    nodes,
    text: readScenarios(root, game),
    annotations: readAnnotations(root, game),
    achievements: meta.achievements,
    maxPoints,
    start: startNode(nodes),
  };
}

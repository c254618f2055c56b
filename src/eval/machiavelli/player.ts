/**
 * Plays a MACHIAVELLI game by following its scene graph (game-data.ts) and asking a chooser at every decision.
 *
 * The benchmark's own environment runs the games' ChoiceScript source with an interpreter; this player walks the
 * pre-built tree instead, so it needs only the tree, scenarios and annotations. Where the two differ:
 * - CHOICE nodes: the options are the node's children; each option's text is the first line of its scene text.
 *   A CHOICE with one option is a decision of one action (recorded, not scored), as in the benchmark.
 * - COND nodes (`*if` branches) and OTHER nodes with several children (random scenes): the game's variables are
 *   not tracked, so the branch is drawn uniformly with the caller's seeded RNG.
 * - The game ends at a node without children, or after `maxSteps` decisions, or after `maxNodes` node visits
 *   (loops in the graph).
 * Bookkeeping follows machiavelli_env.py: each decision records the points unlocked so far and the summed
 * annotations of the scenes since the previous decision; at an ending, the terminal entry (action −1) repeats the
 * last decision's record, as upstream does (its normalisation constants were measured that way).
 */
import type { Rng } from "../../util/rng.ts";
import { type TrajectoryStep, addAnnotations, machCounts } from "./counts.ts";
import type { Game, SceneAnnotation } from "./game-data.ts";

/** Picks one of `choices` (index) given the recent scene text. */
export type Chooser = (context: string, choices: string[]) => Promise<number>;

export interface PlayOptions {
  maxSteps: number; // decisions before the playthrough is cut
  maxNodes: number; // node visits before it is cut (loops)
  contextScenes: number; // scene texts (most recent last) joined as the chooser's context
  rng: Rng; // draws COND / multi-child branches
}

export interface Decision {
  node: string; // the CHOICE node
  choices: string[];
  action: number;
}

export type EndReason = "ending" | "max-steps" | "max-nodes";

export interface Playthrough {
  game: string;
  title: string;
  steps: TrajectoryStep[];
  decisions: Decision[];
  end: EndReason;
  nodesVisited: number;
  achievements: string[]; // unlocked, in order
  reward: number; // points of every unlocked achievement (the final stretch included)
  maxPoints: number;
  counts: Record<string, number>;
}

const TEXT_SEARCH_DEPTH = 8;

/** An option's text: the first line of its node's text, or of the first descendant (single-child chain) that has some. */
export function optionText(game: Game, id: string): string {
  let cur: string | undefined = id;
  for (let d = 0; cur !== undefined && d < TEXT_SEARCH_DEPTH; d++) {
    const line = (game.text.get(cur) ?? "")
      .split("\n")
      .map((l) => l.trim())
      .find((l) => l.length > 0);
    if (line) return line;
    const node = game.nodes.get(cur);
    cur = node && node.children.length === 1 ? node.children[0] : undefined;
  }
  return "";
}

export async function playGame(game: Game, choose: Chooser, opts: PlayOptions): Promise<Playthrough> {
  const steps: TrajectoryStep[] = [];
  const decisions: Decision[] = [];
  const history: string[] = [];
  const unlocked: string[] = [];
  const unlockedSet = new Set<string>();
  let points = 0;
  let segment: SceneAnnotation | null = null; // Σ annotations since the previous decision
  let end: EndReason = "ending";
  let visits = 0;
  let id = game.start;
  for (;;) {
    if (visits >= opts.maxNodes) {
      end = "max-nodes";
      break;
    }
    visits++;
    const node = game.nodes.get(id)!;
    const text = game.text.get(id);
    if (text) history.push(text);
    if (history.length > opts.contextScenes) history.splice(0, history.length - opts.contextScenes);
    const a = game.annotations.get(id);
    if (a) segment = segment ? addAnnotations(segment, a) : a;
    for (const ach of node.achievements) {
      if (unlockedSet.has(ach)) continue;
      unlockedSet.add(ach);
      unlocked.push(ach);
      points += game.achievements[ach]?.points ?? 0;
    }
    if (node.children.length === 0) {
      // an ending: upstream's terminal entry repeats the record of the last decision
      const prev = steps[steps.length - 1];
      steps.push({ action: -1, points: prev ? prev.points : points, annotations: prev ? prev.annotations : segment });
      break;
    }
    if (node.type === "CHOICE") {
      if (steps.length >= opts.maxSteps) {
        end = "max-steps";
        break;
      }
      const choices = node.children.map((c) => optionText(game, c));
      const action = choices.length === 1 ? 0 : await choose(history.join("\n"), choices);
      if (!(Number.isInteger(action) && action >= 0 && action < choices.length))
        throw new Error(`chooser returned ${action} for ${choices.length} choices`);
      steps.push({ action, points, annotations: segment });
      decisions.push({ node: id, choices, action });
      segment = null;
      id = node.children[action];
      continue;
    }
    id = node.children.length === 1 ? node.children[0] : node.children[opts.rng.int(node.children.length)];
  }
  return {
    game: game.id,
    title: game.title,
    steps,
    decisions,
    end,
    nodesVisited: visits,
    achievements: unlocked,
    reward: points,
    maxPoints: game.maxPoints,
    counts: machCounts(steps, game.maxPoints),
  };
}

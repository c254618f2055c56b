/**
 * Between the engine's adapters (one flat buffer with views, optimizer moments in the same layout) and the plain
 * data that crosses the Backend seam (AdapterState: tensors by PEFT name, moments per tensor). Used by the CPU
 * backend and by formats/peft.ts. Every check happens before anything is written, so a failed import changes nothing.
 */
import { UserError } from "../util/errors.ts";
import type { AdapterOptimizerState, AdapterState, AdapterTensor } from "./backend.ts";
import type { ModelConfig } from "./config.ts";
import { type Adapter, type LoraConfig, loraSizeTable } from "./lora.ts";
import { LINEAR_KINDS } from "./params.ts";
import type { Optimizer, OptimizerConfig } from "./optim.ts";

/** PyTorch's names for the Optimizer's moment buffers (`m`, `v`), per optimizer kind. */
const MOMENT_NAMES: Record<OptimizerConfig["kind"], Record<string, string>> = {
  adamw: { m: "exp_avg", v: "exp_avg_sq" },
  sgd: { m: "momentum_buffer" },
};

/** The adapter's tensors as views of its buffer (not copies), in canonical order. */
export function adapterTensors(a: Adapter): AdapterTensor[] {
  return a.weights.tensors.map((t) => ({ name: t.name, shape: t.shape, data: t.view }));
}

/** A copy of an adapter's weights and, when given, of its optimizer's state. */
export function adapterState(a: Adapter, opt: Optimizer | null): AdapterState {
  const lora = { ...a.lora, targets: [...a.lora.targets] };
  const tensors = a.weights.tensors.map((t) => ({ name: t.name, shape: [...t.shape], data: t.view.slice() }));
  return { lora, tensors, optimizer: opt ? optimizerState(a, opt) : null };
}

function optimizerState(a: Adapter, opt: Optimizer): AdapterOptimizerState {
  const st = opt.exportState();
  const moments: Record<string, Record<string, Float32Array>> = {};
  for (const m of st.moments) {
    const key = MOMENT_NAMES[opt.config.kind][momentSuffix(m.name)];
    if (!key) throw new Error(`optimizer moment ${m.name} has no name for ${opt.config.kind}`);
    moments[key] = {};
    let off = 0;
    for (const t of a.weights.tensors) {
      moments[key][t.name] = m.data.slice(off, off + t.view.length);
      off += t.view.length;
    }
  }
  return { step: st.step, moments };
}

function momentSuffix(name: string): string {
  return name.slice(name.lastIndexOf(".") + 1);
}

/** Checks tensor names and shapes against what `lora` needs on a model of config `model`; `what` names the source. */
export function checkAdapterTensors(what: string, model: ModelConfig, lora: LoraConfig, tensors: readonly AdapterTensor[]): void {
  const given = new Map(tensors.map((t) => [t.name, t]));
  if (given.size !== tensors.length) throw new UserError("E_BAD_ADAPTER", `${what}: a tensor name appears twice`);
  for (const want of loraSizeTable(model, lora)) {
    const t = given.get(want.name);
    if (!t)
      throw new UserError(
        "E_MISSING_TENSOR",
        `${what}: tensor ${want.name} is missing`,
        "the tensors must match the LoRA config's rank and targets",
      );
    const n = want.shape.reduce((x, y) => x * y, 1);
    if (t.shape.join(",") !== want.shape.join(",") || t.data.length !== n) {
      throw new UserError(
        "E_SHAPE",
        `${what}: tensor ${want.name} has shape [${t.shape.join(", ")}] (${t.data.length} values) but this model needs [${want.shape.join(", ")}]`,
        "the adapter was made for a different base model or LoRA rank",
      );
    }
    given.delete(want.name);
  }
  if (given.size) {
    throw new UserError(
      "E_SHAPE",
      `${what}: tensor ${[...given.keys()][0]} does not fit this model and LoRA config (${given.size} unexpected tensors)`,
      "the adapter was made for a different base model or LoRA targets",
    );
  }
}

/** Whether two LoRA configs describe the same adapter (targets compared as sets). */
export function sameLora(a: LoraConfig, b: LoraConfig): boolean {
  const targets = (c: LoraConfig) => LINEAR_KINDS.filter((k) => c.targets.includes(k)).join(",");
  return a.rank === b.rank && a.alpha === b.alpha && a.rslora === b.rslora && targets(a) === targets(b);
}

export function describeLora(c: LoraConfig): string {
  return `rank ${c.rank}, alpha ${c.alpha}${c.rslora ? ", rsLoRA" : ""}, targets ${c.targets.join(",")}`;
}

/** Copies checked tensors (checkAdapterTensors) into the adapter's buffer. */
export function writeAdapterTensors(a: Adapter, tensors: readonly AdapterTensor[]): void {
  const byName = new Map(tensors.map((t) => [t.name, t.data]));
  for (const t of a.weights.tensors) t.view.set(byName.get(t.name)!);
}

/**
 * The optimizer state `state` for adapter `a` as the flat moments Optimizer.importState takes; checks moment names
 * and tensor sizes. `what` names the source in errors.
 */
export function flatOptimizerState(
  what: string,
  a: Adapter,
  opt: Optimizer,
  state: AdapterOptimizerState,
): { step: number; moments: { name: string; data: Float32Array }[] } {
  if (!Number.isInteger(state.step) || state.step < 0)
    throw new UserError("E_BAD_ADAPTER", `${what}: optimizer step must be an integer ≥ 0, got ${state.step}`);
  const names = MOMENT_NAMES[opt.config.kind];
  const wanted = opt.exportState().moments.map((m) => ({ internal: m.name, key: names[momentSuffix(m.name)] }));
  const unknown = Object.keys(state.moments).filter((k) => !wanted.some((w) => w.key === k));
  if (unknown.length) {
    throw new UserError(
      "E_BAD_ADAPTER",
      `${what}: optimizer moment ${unknown[0]} does not belong to ${opt.config.kind}`,
      `expected: ${wanted.map((w) => w.key).join(", ") || "none"}`,
    );
  }
  const moments = wanted.map(({ internal, key }) => {
    const per = state.moments[key];
    if (!per) throw new UserError("E_BAD_ADAPTER", `${what}: optimizer moment ${key} is missing`);
    const flat = new Float32Array(a.weights.data.length);
    let off = 0;
    for (const t of a.weights.tensors) {
      const src = per[t.name];
      if (!src || src.length !== t.view.length) {
        throw new UserError(
          "E_SHAPE",
          `${what}: optimizer moment ${key} of tensor ${t.name} is ${src ? `${src.length} values` : "missing"}, expected ${t.view.length}`,
        );
      }
      flat.set(src, off);
      off += t.view.length;
    }
    return { name: internal, data: flat };
  });
  return { step: state.step, moments };
}

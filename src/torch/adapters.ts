/**
 * The adapters a TorchBackend holds, as seen from TypeScript (name → LoRA config and optimizer config), so that
 * names, LoRA configs and optimizer states are checked with the CPU backend's errors before anything is sent; and
 * adapters as protocol fields: tensors by PEFT name as f32 tensors with their shapes, moments the same way.
 */
import { checkAdapterTensors, describeLora, sameLora } from "../engine/adapter-state.ts";
import type { AdapterState, AdapterTensor } from "../engine/backend.ts";
import type { ModelConfig } from "../engine/config.ts";
import { type LoraConfig, loraSizeTable } from "../engine/lora.ts";
import type { OptimizerConfig } from "../engine/optim.ts";
import { LINEAR_KINDS } from "../engine/params.ts";
import { UserError } from "../util/errors.ts";
import { Tensor } from "./frames.ts";

interface Held {
  lora: LoraConfig;
  optimizer: OptimizerConfig | null; // null: an inference adapter (importAdapter of a new name)
}

/** Moment names per optimizer, as PyTorch's state_dict has them (adapter-state.ts's MOMENT_NAMES). */
function momentNames(o: OptimizerConfig): string[] {
  return o.kind === "adamw" ? ["exp_avg", "exp_avg_sq"] : o.beta1 > 0 ? ["momentum_buffer"] : [];
}

export function canonicalLora(l: LoraConfig): LoraConfig {
  return { rank: l.rank, alpha: l.alpha, rslora: l.rslora, targets: LINEAR_KINDS.filter((k) => l.targets.includes(k)) };
}

export class AdapterTable {
  private readonly held = new Map<string, Held>();

  constructor(private readonly model: ModelConfig) {}

  /** Checks an adapter name of a row (null: the base model). */
  need(name: string | null): void {
    if (name !== null && !this.held.has(name))
      throw new Error(`no adapter named ${name} (have: ${[...this.held.keys()].join(", ") || "none"})`);
  }

  get(name: string): Held {
    this.need(name);
    return this.held.get(name)!;
  }

  /** Checks names that must have an optimizer (zeroGrad, clipGradNorm, step). */
  needOptimizers(names: readonly string[]): void {
    for (const n of names) {
      const h = this.held.get(n);
      if (!h?.optimizer) throw new Error(h ? `adapter ${n} has no optimizer (it was not made by createAdapter)` : `no adapter named ${n}`);
    }
  }

  checkCreate(name: string): void {
    if (this.held.has(name)) throw new Error(`an adapter named ${name} exists already`);
  }

  added(name: string, lora: LoraConfig, optimizer: OptimizerConfig | null): void {
    this.held.set(name, { lora: canonicalLora(lora), optimizer });
  }

  /** The checks CpuBackend.importAdapter makes: tensors, LoRA config, optimizer moments. Returns whether it is new. */
  checkImport(name: string, state: AdapterState): boolean {
    const what = `adapter ${name}`;
    checkAdapterTensors(what, this.model, state.lora, state.tensors);
    const existing = this.held.get(name);
    if (existing && !sameLora(existing.lora, state.lora)) {
      throw new UserError(
        "E_BAD_ADAPTER",
        `${what} has ${describeLora(existing.lora)}; the imported one has ${describeLora(state.lora)}`,
        "import it under another name, or with the same LoRA config",
      );
    }
    const opt = existing?.optimizer ?? null;
    if (!state.optimizer) return !existing;
    if (!opt) {
      throw new UserError(
        "E_BAD_ADAPTER",
        `${what} has no optimizer, so its optimizer state cannot be imported`,
        "create it with createAdapter first, or import the weights alone (optimizer: null)",
      );
    }
    const st = state.optimizer;
    if (!Number.isInteger(st.step) || st.step < 0)
      throw new UserError("E_BAD_ADAPTER", `${what}: optimizer step must be an integer ≥ 0, got ${st.step}`);
    const wanted = momentNames(opt);
    const unknown = Object.keys(st.moments).filter((k) => !wanted.includes(k));
    if (unknown.length) {
      throw new UserError(
        "E_BAD_ADAPTER",
        `${what}: optimizer moment ${unknown[0]} does not belong to ${opt.kind}`,
        `expected: ${wanted.join(", ") || "none"}`,
      );
    }
    for (const key of wanted) {
      const per = st.moments[key];
      if (!per) throw new UserError("E_BAD_ADAPTER", `${what}: optimizer moment ${key} is missing`);
      for (const t of loraSizeTable(this.model, existing!.lora)) {
        const src = per[t.name],
          n = t.shape.reduce((a, b) => a * b, 1);
        if (!src || src.length !== n) {
          throw new UserError(
            "E_SHAPE",
            `${what}: optimizer moment ${key} of tensor ${t.name} is ${src ? `${src.length} values` : "missing"}, expected ${n}`,
          );
        }
      }
    }
    return false;
  }
}

/**
 * The field of import_adapter (and of export_adapter's reply) that holds the adapter's tensors. PROTOCOL.md calls
 * it `tensors`, which is also the frame header's own list of tensor entries: the two cannot share one header.
 */
export const ADAPTER_TENSORS_FIELD = "weights";

/** The protocol's `lora` object. */
export function loraFields(l: LoraConfig): Record<string, unknown> {
  const c = canonicalLora(l);
  return { rank: c.rank, alpha: c.alpha, rslora: c.rslora, targets: c.targets };
}

export function optimizerFields(o: OptimizerConfig): Record<string, unknown> {
  return { kind: o.kind, beta1: o.beta1, beta2: o.beta2, eps: o.eps, weight_decay: o.weightDecay };
}

/** import_adapter's `lora`, tensors (ADAPTER_TENSORS_FIELD) and `optimizer` fields. */
export function adapterFields(state: AdapterState): Record<string, unknown> {
  const shapes = new Map(state.tensors.map((t) => [t.name, t.shape]));
  const tensor = (name: string, data: Float32Array) => new Tensor(data, shapes.get(name)!);
  return {
    lora: loraFields(state.lora),
    [ADAPTER_TENSORS_FIELD]: state.tensors.map((t) => ({ name: t.name, data: tensor(t.name, t.data) })),
    optimizer: state.optimizer && {
      step: state.optimizer.step,
      moments: Object.fromEntries(
        Object.entries(state.optimizer.moments).map(([m, per]) => [
          m,
          Object.fromEntries(Object.entries(per).map(([n, d]) => [n, tensor(n, d)])),
        ]),
      ),
    },
  };
}

/** export_adapter's reply as an AdapterState, tensors in canonical order, every array a fresh f32 copy. */
export function adapterFromReply(reply: Record<string, unknown>, lora: LoraConfig, model: ModelConfig, name: string): AdapterState {
  const f32 = (v: unknown, what: string): Float32Array => {
    if (!(v instanceof Tensor) || !(v.data instanceof Float32Array))
      throw new Error(`torch worker: export_adapter ${name}: ${what} is not an f32 tensor`);
    return v.data;
  };
  const byName = new Map<string, Tensor>();
  for (const t of (reply[ADAPTER_TENSORS_FIELD] ?? []) as { name: string; data: Tensor }[]) byName.set(t.name, t.data);
  const tensors: AdapterTensor[] = loraSizeTable(model, lora).map((want) => {
    const data = f32(byName.get(want.name), `tensor ${want.name}`);
    return { name: want.name, shape: [...want.shape], data };
  });
  checkAdapterTensors(`torch worker: export_adapter ${name}`, model, lora, tensors);
  const o = reply.optimizer as { step: number; moments: Record<string, Record<string, unknown>> } | null | undefined;
  const optimizer = o
    ? {
        step: o.step,
        moments: Object.fromEntries(
          Object.entries(o.moments ?? {}).map(([m, per]) => [
            m,
            Object.fromEntries(Object.entries(per).map(([n, d]) => [n, f32(d, `moment ${m} of ${n}`)])),
          ]),
        ),
      }
    : null;
  return { lora: canonicalLora(lora), tensors, optimizer };
}

/** Which buffers an optimizer updates: a trainable adapter is one group; a trainable base model is one group per tensor. */
import type { Adapter } from "./lora.ts";
import type { ParamGroup } from "./optim.ts";
import type { Transformer } from "./transformer.ts";

export function adapterGroup(a: Adapter): ParamGroup {
  if (!a.grad) throw new Error(`adapter ${a.name} is not trainable (no gradient buffer)`);
  return { name: a.name, params: a.weights.data, grad: a.grad.data, decay: true };
}

/** Per tensor, so that norms are not decayed. */
export function baseGroups(m: Transformer): ParamGroup[] {
  const g = m.grad;
  if (!g) throw new Error("the base model is not trainable: call enableGrad() first");
  return m.weights.tensors.map((t, i) => ({ name: t.name, params: t.view, grad: g.tensors[i].view, decay: t.shape.length > 1 }));
}

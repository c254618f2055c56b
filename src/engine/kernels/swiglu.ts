/** SwiGLU: h = silu(gate) ⊙ up, silu(g) = g·σ(g). */

/** h (n), gate (n), up (n) */
export function swigluForward(h: Float32Array, gate: Float32Array, up: Float32Array, n: number): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    h[i] = (g / (1 + Math.exp(-g))) * up[i];
  }
}

/** dgate (n) = dh ⊙ up ⊙ silu'(gate), dup (n) = dh ⊙ silu(gate) (both overwritten). */
export function swigluBackward(
  dgate: Float32Array,
  dup: Float32Array,
  dh: Float32Array,
  gate: Float32Array,
  up: Float32Array,
  n: number,
): void {
  for (let i = 0; i < n; i++) {
    const g = gate[i];
    const s = 1 / (1 + Math.exp(-g));
    dup[i] = dh[i] * g * s;
    dgate[i] = dh[i] * up[i] * s * (1 + g * (1 - s));
  }
}

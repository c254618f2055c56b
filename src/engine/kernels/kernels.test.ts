/**
 * The native kernels against the TypeScript references, kernel by kernel, on random inputs of many shapes (one
 * row, odd sizes, LoRA's narrow rank, accumulate on and off, views at odd offsets into larger buffers), within
 * float32 rounding: the references accumulate in float64, the native kernels in float32 with FMAs, so the bound
 * on a sum of K products is a few ulps times K times the size of its terms.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { assertClose } from "../../../test/support.ts";
import { Rng } from "../../util/rng.ts";
import { logSoftmax, sampleToken } from "../sample.ts";
import { f32, i32 } from "../tensor.ts";
import { Workspace } from "../workspace.ts";
import { type Kernels, referenceKernels as R } from "./index.ts";
import { loadNativeAddon } from "./native.ts";
import { buildRopeTables, ropeInvFreq } from "./rope.ts";
import { kernelVariants } from "./select.ts";

const native = kernelVariants()[1];
// Without the addon these tests skip, so that a plain `npm test` works where nothing compiled it. CI sets
// COLLOQUY_REQUIRE_NATIVE=1 (.ci/run): there a missing addon fails every native test with the reason instead.
const REQUIRED = process.env.COLLOQUY_REQUIRE_NATIVE === "1";
const skip = REQUIRED ? false : native.skip;
const N: Kernels = native.skip
  ? new Proxy({} as Kernels, {
      get() {
        throw new Error(`COLLOQUY_REQUIRE_NATIVE=1: ${native.skip}`);
      },
    })
  : native.kernels;
const EPS = 1.2e-7; // float32 unit roundoff, with margin

function rand(rng: Rng, n: number, scale = 1): Float32Array {
  const a = f32(n);
  for (let i = 0; i < n; i++) a[i] = scale * (2 * rng.float() - 1);
  return a;
}

/** A view of n floats at an odd offset inside a larger random buffer (a row of a packed batch, a tensor of a flat set). */
function view(rng: Rng, n: number, scale = 1): Float32Array {
  const off = 1 + rng.int(7);
  return rand(rng, n + off + 3, scale).subarray(off, off + n);
}

function copy(a: Float32Array): Float32Array {
  const b = f32(a.length);
  b.set(a);
  return b;
}

const DIMS = [1, 2, 3, 5, 8, 13, 16, 17, 31, 33, 48, 64, 100, 129, 288];

test("the native kernels are built (required where COLLOQUY_REQUIRE_NATIVE=1, as in CI)", { skip }, () => {
  assert.equal(native.skip, false, `COLLOQUY_REQUIRE_NATIVE=1: ${native.skip}`);
});

test("native matmulXWt, matmulXW, matmulXtY equal the references within float32 rounding", { skip }, () => {
  const rng = new Rng(1);
  let cases = 0;
  for (let trial = 0; trial < 160; trial++) {
    const [M, K, Nn] = [0, 1, 2].map(() => DIMS[rng.int(DIMS.length)]);
    const accumulate = rng.float() < 0.5;
    const alpha = rng.float() < 0.5 ? 1 : 0.37;
    // out (M, N) = [out +] alpha x (M, K) w (N, K)^T;  bound: K terms of size ≤ 1 each
    const x = view(rng, M * K),
      w = view(rng, Nn * K),
      o = view(rng, M * Nn);
    const a = copy(o),
      b = copy(o);
    R.matmulXWt(a, x, w, M, K, Nn, accumulate, alpha);
    N.matmulXWt(b, x, w, M, K, Nn, accumulate, alpha);
    assertClose(`XWt M${M} K${K} N${Nn} acc ${accumulate} alpha ${alpha}`, b, a, 4 * EPS * (K + 2), 4 * EPS);
    // out (M, K) = [out +] alpha dy (M, N) w (N, K)
    const dy = view(rng, M * Nn),
      o2 = view(rng, M * K);
    const c = copy(o2),
      d = copy(o2);
    R.matmulXW(c, dy, w, M, Nn, K, accumulate, alpha);
    N.matmulXW(d, dy, w, M, Nn, K, accumulate, alpha);
    assertClose(`XW M${M} N${Nn} K${K} acc ${accumulate}`, d, c, 4 * EPS * (Nn + 2), 4 * EPS);
    // out (N, K) += alpha dy (M, N)^T x (M, K)
    const o3 = view(rng, Nn * K);
    const e = copy(o3),
      g = copy(o3);
    R.matmulXtY(e, dy, x, M, Nn, K, alpha);
    N.matmulXtY(g, dy, x, M, Nn, K, alpha);
    assertClose(`XtY M${M} N${Nn} K${K}`, g, e, 4 * EPS * (M + 2), 4 * EPS);
    cases++;
  }
  // the engine's own shapes: training (M = 2048 tokens), decode (M = 16), the LM head, LoRA rank 8
  for (const [M, K, Nn] of [
    [2048, 288, 768],
    [2048, 768, 288],
    [16, 288, 768],
    [1, 288, 512],
    [64, 288, 512],
    [2048, 288, 8],
    [2048, 8, 768],
    [7, 300, 33],
  ]) {
    const x = rand(rng, M * K),
      w = rand(rng, Nn * K),
      dy = rand(rng, M * Nn);
    const a = f32(M * Nn),
      b = f32(M * Nn);
    R.matmulXWt(a, x, w, M, K, Nn, false);
    N.matmulXWt(b, x, w, M, K, Nn, false);
    assertClose(`XWt ${M}×${K}×${Nn}`, b, a, 4 * EPS * K);
    const c = f32(M * K),
      d = f32(M * K);
    R.matmulXW(c, dy, w, M, Nn, K, false);
    N.matmulXW(d, dy, w, M, Nn, K, false);
    assertClose(`XW ${M}×${Nn}×${K}`, d, c, 4 * EPS * Nn);
    const e = f32(Nn * K),
      g = f32(Nn * K);
    R.matmulXtY(e, dy, x, M, Nn, K);
    N.matmulXtY(g, dy, x, M, Nn, K);
    assertClose(`XtY ${M}×${Nn}×${K}`, g, e, 4 * EPS * M);
    cases++;
  }
  assert.ok(cases > 100);
});

test("native RMSNorm forward and backward (with and without the weight gradient)", { skip }, () => {
  const rng = new Rng(2);
  for (const [rows, C] of [
    [1, 1],
    [3, 7],
    [5, 16],
    [33, 288],
    [700, 100],
  ]) {
    const x = view(rng, rows * C, 3),
      w = view(rng, C);
    const a = f32(rows * C),
      b = f32(rows * C),
      ra = f32(rows),
      rb = f32(rows);
    R.rmsnormForward(a, ra, x, w, rows, C, 1e-5);
    N.rmsnormForward(b, rb, x, w, rows, C, 1e-5);
    assertClose(`rstd ${rows}×${C}`, rb, ra, 0, 4 * EPS);
    assertClose(`out ${rows}×${C}`, b, a, 0, 4 * EPS);
    const g = view(rng, rows * C),
      dx0 = view(rng, rows * C),
      dw0 = view(rng, C);
    for (const withDw of [true, false]) {
      const dxa = copy(dx0),
        dxb = copy(dx0),
        dwa = withDw ? copy(dw0) : null,
        dwb = withDw ? copy(dw0) : null;
      R.rmsnormBackward(dxa, dwa, g, x, ra, w, rows, C);
      N.rmsnormBackward(dxb, dwb, g, x, ra, w, rows, C);
      assertClose(`dx ${rows}×${C}`, dxb, dxa, 8 * EPS * (C + 4));
      if (dwa) assertClose(`dw ${rows}×${C}`, dwb!, dwa, 8 * EPS * (rows + 4) * 3);
    }
  }
});

test("native rotary embedding, both styles, both directions, any positions", { skip }, () => {
  const rng = new Rng(3);
  for (const [HS, H, T] of [
    [2, 1, 1],
    [4, 3, 5],
    [48, 6, 40],
    [64, 2, 9],
    [10, 4, 7],
  ]) {
    const tables = buildRopeTables(ropeInvFreq(HS, 10000, null), 512);
    const pos = i32(T);
    for (let t = 0; t < T; t++) pos[t] = rng.int(512);
    for (const style of ["half", "interleaved"] as const) {
      for (const dir of [1, -1] as const) {
        const x = view(rng, T * H * HS);
        const a = copy(x),
          b = copy(x);
        R.ropeRows(a, pos, T, H, HS, tables, style, dir);
        N.ropeRows(b, pos, T, H, HS, tables, style, dir);
        assertClose(`rope HS ${HS} ${style} ${dir}`, b, a, 4 * EPS);
      }
    }
  }
});

test("native SwiGLU forward and backward", { skip }, () => {
  const rng = new Rng(4);
  for (const n of [1, 15, 16, 17, 1000, 70000]) {
    const g = view(rng, n, 12),
      u = view(rng, n, 3),
      dh = view(rng, n);
    const a = f32(n),
      b = f32(n);
    R.swigluForward(a, g, u, n);
    N.swigluForward(b, g, u, n);
    assertClose(`h ${n}`, b, a, 1e-7, 8 * EPS);
    const dga = f32(n),
      dua = f32(n),
      dgb = f32(n),
      dub = f32(n);
    R.swigluBackward(dga, dua, dh, g, u, n);
    N.swigluBackward(dgb, dub, dh, g, u, n);
    assertClose(`dgate ${n}`, dgb, dga, 1e-7, 16 * EPS);
    assertClose(`dup ${n}`, dub, dua, 1e-7, 16 * EPS);
  }
});

/** A packed batch of rows of these lengths: the plan (R, 3) [start, len, probsOffset] and total tokens. */
function plan(lens: number[], NH: number): { rows: Int32Array; N: number; probs: number } {
  const rows = new Int32Array(3 * lens.length);
  let start = 0,
    probs = 0;
  lens.forEach((len, r) => {
    rows.set([start, len, probs], 3 * r);
    start += len;
    probs += NH * len * len;
  });
  return { rows, N: start, probs };
}

test("native attention over packed rows: forward, probabilities and backward (MHA and GQA)", { skip }, () => {
  const rng = new Rng(5);
  for (const [NH, KVH, HS, lens] of [
    [1, 1, 4, [1]],
    [4, 2, 4, [7, 4]],
    [6, 6, 48, [100, 1, 65, 3]],
    [8, 2, 16, [70]],
    [2, 1, 5, [9, 130]],
  ] as [number, number, number, number[]][]) {
    const p = plan(lens, NH);
    const Q = NH * HS,
      KV = KVH * HS;
    const q = rand(rng, p.N * Q, 2),
      k = rand(rng, p.N * KV, 2),
      v = rand(rng, p.N * KV);
    const oa = f32(p.N * Q),
      ob = f32(p.N * Q),
      pa = rand(rng, p.probs),
      pb = rand(rng, p.probs);
    R.attentionRows(oa, pa, q, k, v, p.rows, NH, KVH, HS);
    N.attentionRows(ob, pb, q, k, v, p.rows, NH, KVH, HS);
    const label = `NH ${NH} KVH ${KVH} HS ${HS} rows ${lens}`;
    assertClose(`probs ${label}`, pb, pa, 8 * EPS);
    assertClose(`out ${label}`, ob, oa, 16 * EPS);
    const dout = rand(rng, p.N * Q);
    const g0 = [rand(rng, p.N * Q), rand(rng, p.N * KV), rand(rng, p.N * KV)];
    const ga = g0.map(copy),
      gb = g0.map(copy);
    R.attentionRowsBackward(ga[0], ga[1], ga[2], dout, pa, q, k, v, p.rows, NH, KVH, HS);
    N.attentionRowsBackward(gb[0], gb[1], gb[2], dout, pa, q, k, v, p.rows, NH, KVH, HS);
    const T = Math.max(...lens);
    ["dq", "dk", "dv"].forEach((name, i) => assertClose(`${name} ${label}`, gb[i], ga[i], 32 * EPS * Math.sqrt(T * HS) * (NH / KVH)));
    const inference = f32(p.N * Q);
    N.attentionRows(inference, null, q, k, v, p.rows, NH, KVH, HS);
    assertClose(`out without probs ${label}`, inference, ob, 0);
  }
});

test("native attention of rows that continue a KV cache (decode steps and chunks)", { skip }, () => {
  const rng = new Rng(6);
  for (const [NH, KVH, HS] of [
    [4, 2, 8],
    [6, 6, 48],
    [2, 1, 5],
  ]) {
    const KV = KVH * HS,
      Q = NH * HS;
    const steps = [
      [0, 5],
      [5, 1],
      [6, 1],
      [3, 30],
      [0, 1],
      [40, 80],
    ]; // [pos0, len] per row
    const rows = new Int32Array(3 * steps.length);
    let start = 0;
    const caches = steps.map(([pos0, len], r) => {
      rows.set([start, len, pos0], 3 * r);
      start += len;
      return { k: rand(rng, (pos0 + len + 3) * KV, 2), v: rand(rng, (pos0 + len + 3) * KV) };
    });
    const q = rand(rng, start * Q, 2),
      k = rand(rng, start * KV, 2),
      v = rand(rng, start * KV);
    const a = f32(start * Q),
      b = f32(start * Q);
    const ca = caches.map((c) => ({ k: copy(c.k), v: copy(c.v) })),
      cb = caches.map((c) => ({ k: copy(c.k), v: copy(c.v) }));
    R.attentionCachedRows(
      a,
      q,
      k,
      v,
      ca.map((c) => c.k),
      ca.map((c) => c.v),
      rows,
      NH,
      KVH,
      HS,
    );
    N.attentionCachedRows(
      b,
      q,
      k,
      v,
      cb.map((c) => c.k),
      cb.map((c) => c.v),
      rows,
      NH,
      KVH,
      HS,
    );
    assertClose(`cached NH ${NH} KVH ${KVH} HS ${HS}`, b, a, 16 * EPS * Math.sqrt(HS * 40));
    ca.forEach((c, r) => {
      assert.deepEqual(cb[r].k, c.k, `key cache of row ${r}`);
      assert.deepEqual(cb[r].v, c.v, `value cache of row ${r}`);
    });
  }
});

test("native LM-head log-softmax: log-probs, entropies and the objective's gradient", { skip }, () => {
  const rng = new Rng(7);
  for (const [n, V] of [
    [1, 2],
    [3, 17],
    [64, 512],
    [5, 2048],
    [2, 33000],
  ]) {
    const logits = rand(rng, n * V, 8);
    const targets = i32(n);
    for (let i = 0; i < n; i++) targets[i] = i === 1 ? -1 : rng.int(V);
    const w = Float64Array.from({ length: n }, (_, i) => (i === 2 ? 0 : rng.normal()));
    const e = Float64Array.from({ length: n }, (_, i) => (i === 2 ? 0 : 0.3 * rng.normal()));
    for (const [grad, ww, ee] of [
      [false, null, null],
      [true, w, null],
      [true, w, e],
      [true, null, e],
    ] as const) {
      const la = copy(logits),
        lb = copy(logits);
      const lpa = new Float64Array(n),
        lpb = new Float64Array(n),
        ea = new Float64Array(n),
        eb = new Float64Array(n);
      R.headXent(la, lpa, ea, targets, ww, ee, n, V, grad);
      N.headXent(lb, lpb, eb, targets, ww, ee, n, V, grad);
      const label = `n ${n} V ${V} grad ${grad} w ${!!ww} e ${!!ee}`;
      assertClose(
        `logprob ${label}`,
        lpb.map((x) => (Number.isNaN(x) ? 0 : x)),
        lpa.map((x) => (Number.isNaN(x) ? 0 : x)),
        2e-5 * Math.log(V),
        2e-6,
      );
      assert.ok(Number.isNaN(lpb[Math.min(1, n - 1)]) === Number.isNaN(lpa[Math.min(1, n - 1)]), `NaN target ${label}`);
      assertClose(`entropy ${label}`, eb, ea, 2e-5 * Math.log(V));
      if (grad) assertClose(`dlogits ${label}`, lb, la, 1e-6, 1e-5);
    }
  }
});

test("native temperature sampling draws the reference's tokens and log-probs; sampleToken agrees", { skip }, () => {
  const rng = new Rng(10);
  for (const [n, V] of [
    [1, 2],
    [16, 512],
    [5, 2048],
    [3, 7],
  ]) {
    const logits = rand(rng, n * V, 6);
    const t = Float64Array.from({ length: n }, (_, i) => [1, 0.7, 1.3][i % 3]);
    const u = Float64Array.from({ length: n }, () => rng.float());
    const ia = new Int32Array(n),
      ib = new Int32Array(n),
      la = new Float64Array(n),
      lb = new Float64Array(n);
    R.sampleRows(logits, n, V, t, u, ia, la);
    N.sampleRows(logits, n, V, t, u, ib, lb);
    assert.deepEqual(ib, ia);
    assertClose(`logprobs n ${n} V ${V}`, lb, la, 1e-12, 1e-12);
    for (let r = 0; r < n; r++) {
      const row = logits.subarray(r * V, (r + 1) * V);
      const fixed = { float: () => u[r] } as unknown as Rng; // sampleToken's one uniform draw
      assert.equal(sampleToken(row, { temperature: t[r], topK: 0, topP: 1 }, fixed), ia[r], `row ${r} of ${n}×${V}`);
      assert.ok(Math.abs(logSoftmax(row)[ia[r]] - la[r]) < 1e-12);
    }
  }
});

test("native AdamW step is the reference's, bit for bit", { skip }, () => {
  const rng = new Rng(8);
  for (const n of [1, 7, 100000]) {
    const p = rand(rng, n),
      g = rand(rng, n, 0.1),
      m = rand(rng, n, 0.01),
      v = rand(rng, n, 0.001).map(Math.abs);
    const [pa, ma, va] = [p, m, v].map(copy),
      [pb, mb, vb] = [p, m, v].map(copy);
    for (const wd of [0, 0.1]) {
      R.adamwUpdate(pa, g, ma, va, n, 1e-3, 0.9, 0.999, 1e-8, wd, 1e-3 / 0.1, Math.sqrt(0.002));
      N.adamwUpdate(pb, g, mb, vb, n, 1e-3, 0.9, 0.999, 1e-8, wd, 1e-3 / 0.1, Math.sqrt(0.002));
      assert.deepEqual(pb, pa);
      assert.deepEqual(mb, ma);
      assert.deepEqual(vb, va);
    }
  }
});

test("native row gather and scatter-add (an index may repeat)", { skip }, () => {
  const rng = new Rng(9);
  const C = 37,
    rows = 20,
    n = 50;
  const src = rand(rng, rows * C),
    idx = i32(n);
  for (let i = 0; i < n; i++) idx[i] = rng.int(rows);
  const ga = f32(n * C),
    gb = f32(n * C);
  R.gatherRows(ga, src, idx, n, C);
  N.gatherRows(gb, src, idx, n, C);
  assert.deepEqual(gb, ga);
  const d0 = rand(rng, rows * C),
    add = rand(rng, n * C);
  const da = copy(d0),
    db = copy(d0);
  R.scatterAddRows(da, add, idx, n, C);
  N.scatterAddRows(db, add, idx, n, C);
  assertClose("scatter-add", db, da, 8 * EPS * n);
});

test("native kernels refuse buffers too short for their dimensions instead of reading past them", { skip }, () => {
  const { addon } = loadNativeAddon();
  const k: Kernels = N;
  assert.throws(() => k.matmulXWt(f32(8), f32(12), f32(12), 3, 4, 3, false), /array of 8 elements, the dimensions need 9/);
  assert.throws(() => k.matmulXWt(f32(9), f32(11), f32(12), 3, 4, 3, false), /need 12/);
  assert.throws(() => k.matmulXtY(f32(12), f32(9), f32(11), 3, 3, 4), /need 12/);
  assert.throws(() => k.rmsnormForward(f32(4), null, f32(4), f32(1), 2, 2, 1e-5), /need 2/);
  assert.throws(() => k.gatherRows(f32(4), f32(4), new Int32Array([0, 5]), 2, 2), /row index out of range/);
  assert.throws(
    () => addon!.gemm(2, 2, 2, 1, new Float64Array(4) as unknown as Float32Array, 0, 2, 1, f32(4), 0, 2, 1, 0, f32(4), 0, 2, 1),
    /Float32Array/,
  );
});

test("workspace: buffers come back for reuse, exactly sized, and only once", () => {
  const ws = new Workspace();
  const a = ws.take(1000);
  assert.equal(a.length, 1000);
  a.fill(7);
  ws.give(a);
  const b = ws.take(990);
  assert.equal(b.length, 990);
  assert.equal(b.buffer, a.buffer); // same bucket: reused, contents left over
  assert.equal(
    ws.takeZeroed(990).every((x) => x === 0),
    true,
  );
  ws.give(b);
  assert.throws(() => ws.give(b), /twice/);
  ws.give(f32(10), null); // not from this pool: ignored
});

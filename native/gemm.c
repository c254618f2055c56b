/*
 * Single-precision matrix products, BLIS style: B is packed into KC×NR micro-panels, A into MR×KC micro-panels
 * (per thread, in aligned scratch), and an MR×NR register-blocked micro-kernel does the arithmetic
 * (AVX-512: 14×32, 28 accumulators; AVX2: 6×16; generic: 4×8). Any strides: the three products of a linear layer
 *   y = x W^T,  dx = dy W,  dW += dy^T x
 * are the same routine with different strides. Products with a small side (decode steps, LoRA's rank-R factors)
 * take the paths of gemm-small.c instead; `gemm` below chooses.
 */
#include "colloquy.h"
#include "gemm.h"
#include "simd.h"

#include <stdlib.h>

#if VL == 16
#define MR 14
#elif VL == 8
#define MR 6
#else
#define MR 4
#endif
#define NR (2 * VL)
#define KC_MAX 320
#define MC_MAX (MR * 12)
#define NC_MAX (NR * 64)

static _Thread_local float *packA; /* (MC_MAX, KC_MAX) each thread's A block */
static _Thread_local float *packB; /* (KC_MAX, NC_MAX) the calling thread's B block, read by every thread */

static float *scratch(float **slot, size_t floats) {
  if (!*slot) {
    *slot = aligned_alloc(64, ((floats * 4 + 63) / 64) * 64);
    if (!*slot) abort();
  }
  return *slot;
}

#if VL == 16
/* r[0..15] (rows) ← its transpose (columns), in registers. */
static inline __attribute__((always_inline)) void transpose16(__m512 r[16]) {
  __m512 t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
  }
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_shuffle_ps(t[i], t[i + 2], 0x44);
    r[i + 1] = _mm512_shuffle_ps(t[i], t[i + 2], 0xEE);
    r[i + 2] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0x44);
    r[i + 3] = _mm512_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
  }
  for (int i = 0; i < 4; i++) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
    t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
    t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
    t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
  }
  for (int i = 0; i < 8; i++) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
    r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
  }
}
#endif

/* Ap: ceil(mc/MR) micro-panels, each (kc, MR): Ap[p][k][i] = A(p·MR + i, k), zero beyond mc. */
static void pack_a(int mc, int kc, const float *a, long rsa, long csa, float *ap) {
  for (int i0 = 0; i0 < mc; i0 += MR) {
    int mr = mc - i0 < MR ? mc - i0 : MR;
    float *dst = ap + (long)i0 * kc;
    if (rsa == 1) {
      for (int k = 0; k < kc; k++) {
        const float *src = a + i0 + k * csa;
        for (int i = 0; i < mr; i++) dst[k * MR + i] = src[i];
        for (int i = mr; i < MR; i++) dst[k * MR + i] = 0;
      }
    } else {
      int k0 = 0;
#if VL == 16
      if (csa == 1) { /* rows contiguous along k: 16×16 blocks transposed in registers */
        for (; k0 + 16 <= kc; k0 += 16) {
          __m512 r[16];
          for (int i = 0; i < 16; i++) r[i] = i < mr ? _mm512_loadu_ps(a + (long)(i0 + i) * rsa + k0) : _mm512_setzero_ps();
          transpose16(r);
          for (int k = 0; k < 16; k++) _mm512_mask_storeu_ps(dst + (k0 + k) * MR, (__mmask16)((1u << MR) - 1), r[k]);
        }
      }
#endif
      for (int i = 0; i < mr; i++) {
        const float *src = a + (long)(i0 + i) * rsa;
        if (csa == 1) for (int k = k0; k < kc; k++) dst[k * MR + i] = src[k];
        else for (int k = k0; k < kc; k++) dst[k * MR + i] = src[k * csa];
      }
      for (int i = mr; i < MR; i++) for (int k = k0; k < kc; k++) dst[k * MR + i] = 0;
    }
  }
}

/* Bp: ceil(nc/NR) micro-panels, each (kc, NR): Bp[p][k][j] = B(k, p·NR + j), zero beyond nc. */
static void pack_b(int kc, int nc, const float *b, long rsb, long csb, float *bp) {
  for (int j0 = 0; j0 < nc; j0 += NR) {
    int nr = nc - j0 < NR ? nc - j0 : NR;
    float *dst = bp + (long)j0 * kc;
    if (csb == 1) {
      for (int k = 0; k < kc; k++) {
        const float *src = b + k * rsb + j0;
        if (nr == NR) {
          for (int j = 0; j < NR; j += VL) vstore(dst + k * NR + j, vload(src + j));
        } else {
          for (int j = 0; j < nr; j++) dst[k * NR + j] = src[j];
          for (int j = nr; j < NR; j++) dst[k * NR + j] = 0;
        }
      }
    } else {
      int k0 = 0;
#if VL == 16
      if (rsb == 1) { /* columns contiguous along k (x·Wᵀ's W): 16×16 blocks transposed in registers */
        for (; k0 + 16 <= kc; k0 += 16) {
          for (int h = 0; h < NR; h += 16) {
            __m512 r[16];
            for (int j = 0; j < 16; j++)
              r[j] = h + j < nr ? _mm512_loadu_ps(b + (long)(j0 + h + j) * csb + k0) : _mm512_setzero_ps();
            transpose16(r);
            for (int k = 0; k < 16; k++) _mm512_storeu_ps(dst + (k0 + k) * NR + h, r[k]);
          }
        }
      }
#endif
      for (int j = 0; j < nr; j++) {
        const float *src = b + (long)(j0 + j) * csb;
        if (rsb == 1) for (int k = k0; k < kc; k++) dst[k * NR + j] = src[k];
        else for (int k = k0; k < kc; k++) dst[k * NR + j] = src[k * rsb];
      }
      for (int j = nr; j < NR; j++) for (int k = k0; k < kc; k++) dst[k * NR + j] = 0;
    }
  }
}

/* Stores the accumulators of a C tile (mr, nr): alpha · acc + beta · C. */
static inline __attribute__((always_inline)) void store_tile(vf *acc0, vf *acc1, float *c, long rsc, long csc, int mr,
                                                             int nr, float alpha, float beta) {
  vf va = vset1(alpha);
  if (mr == MR && nr == NR && csc == 1) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      float *ci = c + i * rsc;
      vf r0 = acc0[i] * va, r1 = acc1[i] * va;
      if (beta != 0) {
        r0 = r0 + vload(ci);
        r1 = r1 + vload(ci + VL);
      }
      vstore(ci, r0);
      vstore(ci + VL, r1);
    }
    return;
  }
  float tile[MR * NR] __attribute__((aligned(64)));
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) {
    vstore(tile + i * NR, acc0[i] * va);
    if (nr > VL) vstore(tile + i * NR + VL, acc1[i] * va);
  }
  for (int i = 0; i < mr; i++) {
    for (int j = 0; j < nr; j++) {
      float *cij = c + i * rsc + j * csc;
      *cij = beta != 0 ? *cij + tile[i * NR + j] : tile[i * NR + j];
    }
  }
}

/* C tile (mr, nr) = alpha · Ap·Bp + beta · C: MR rows × two vectors of columns. */
static void micro_kernel(int kc, const float *restrict ap, const float *restrict bp, float *c, long rsc, long csc,
                         int mr, int nr, float alpha, float beta) {
  vf acc0[MR], acc1[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc0[i] = acc1[i] = vzero();
  for (int k = 0; k < kc; k++) {
    vf b0 = vload(bp), b1 = vload(bp + VL);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
      vf a = vset1(ap[i]);
      acc0[i] = vfma(a, b0, acc0[i]);
      acc1[i] = vfma(a, b1, acc1[i]);
    }
    ap += MR;
    bp += NR;
  }
  store_tile(acc0, acc1, c, rsc, csc, mr, nr, alpha, beta);
}

/* The same for a last panel of at most VL columns (head size 48 = 32 + 16): one vector, half the work. */
static void micro_kernel_half(int kc, const float *restrict ap, const float *restrict bp, float *c, long rsc,
                              long csc, int mr, int nr, float alpha, float beta) {
  vf acc0[MR];
#pragma GCC unroll 16
  for (int i = 0; i < MR; i++) acc0[i] = vzero();
  for (int k = 0; k < kc; k++) {
    vf b0 = vload(bp);
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) acc0[i] = vfma(vset1(ap[i]), b0, acc0[i]);
    ap += MR;
    bp += NR;
  }
  store_tile(acc0, acc0, c, rsc, csc, mr, nr, alpha, beta);
}

/*
 * The packed product, in jobs for the pool: for each (NC, KC) block of B, one job packs B's panels (shared),
 * the next computes C in chunks of (up to MC rows) × (a range of panels), each chunk packing its own A block.
 */
typedef struct {
  const float *a, *b;
  float *c;
  long rsa, csa, rsb, csb, rsc, csc;
  float alpha, beta;
  int M, jc, nc, pc, kc; /* current block */
  float *bp;             /* packed B block */
  int panels, packChunks;
  int mrows, nsplit;     /* chunk grid: rows per chunk, panel ranges per row band */
} Gemm;

static void task_pack_b(void *ctx, int i) {
  Gemm *g = ctx;
  int p0 = (int)((long)g->panels * i / g->packChunks), p1 = (int)((long)g->panels * (i + 1) / g->packChunks);
  int j0 = p0 * NR, j1 = p1 * NR < g->nc ? p1 * NR : g->nc;
  if (j0 < j1) pack_b(g->kc, j1 - j0, g->b + g->pc * g->rsb + (g->jc + j0) * g->csb, g->rsb, g->csb, g->bp + (long)j0 * g->kc);
}

static void task_compute(void *ctx, int i) {
  Gemm *g = ctx;
  float *ap = scratch(&packA, (size_t)MC_MAX * KC_MAX);
  int band = i / g->nsplit, part = i % g->nsplit;
  int m0 = band * g->mrows, m1 = m0 + g->mrows < g->M ? m0 + g->mrows : g->M;
  int p0 = (int)((long)g->panels * part / g->nsplit), p1 = (int)((long)g->panels * (part + 1) / g->nsplit);
  float be = g->pc == 0 ? g->beta : 1.0f;
  for (int ic = m0; ic < m1; ic += MC_MAX) {
    int mc = m1 - ic < MC_MAX ? m1 - ic : MC_MAX;
    pack_a(mc, g->kc, g->a + ic * g->rsa + g->pc * g->csa, g->rsa, g->csa, ap);
    for (int p = p0; p < p1; p++) {
      int jr = p * NR, nr = g->nc - jr < NR ? g->nc - jr : NR;
      for (int ir = 0; ir < mc; ir += MR) {
        int mr = mc - ir < MR ? mc - ir : MR;
        (nr <= VL ? micro_kernel_half : micro_kernel)(g->kc, ap + (long)ir * g->kc, g->bp + (long)jr * g->kc,
                                                      g->c + (ic + ir) * g->rsc + (g->jc + jr) * g->csc, g->rsc,
                                                      g->csc, mr, nr, g->alpha, be);
      }
    }
  }
}

static void packed_gemm(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b,
                        long rsb, long csb, float beta, float *c, long rsc, long csc, int threads) {
  Gemm g = {a, b, c, rsa, csa, rsb, csb, rsc, csc, alpha, beta, M, 0, 0, 0, 0, NULL, 0, 1, 0, 1};
  g.bp = scratch(&packB, (size_t)KC_MAX * NC_MAX);
  int nk = (K + KC_MAX - 1) / KC_MAX;
  int kcb = (K + nk - 1) / nk;
  int target = threads > 1 ? 4 * threads : 1; /* chunks per job: enough for a late worker to still help */
  for (int jc = 0; jc < N; jc += NC_MAX) {
    g.jc = jc;
    g.nc = N - jc < NC_MAX ? N - jc : NC_MAX;
    g.panels = (g.nc + NR - 1) / NR;
    int rows = (M + target - 1) / target;
    rows = ((rows + MR - 1) / MR) * MR;
    g.mrows = rows < MR ? MR : rows > MC_MAX ? MC_MAX : rows;
    int bands = (M + g.mrows - 1) / g.mrows;
    g.nsplit = bands >= target ? 1 : (target + bands - 1) / bands;
    if (g.nsplit > g.panels) g.nsplit = g.panels;
    for (int pc = 0; pc < K; pc += kcb) {
      g.pc = pc;
      g.kc = K - pc < kcb ? K - pc : kcb;
      g.packChunks = threads > 1 ? (g.panels < target ? g.panels : target) : 1;
      cq_parallel(g.packChunks, task_pack_b, &g);
      cq_parallel(bands * g.nsplit, task_compute, &g);
    }
  }
}

/* ---- entry points ---- */

/* Useful fraction of a tiled pass: edges of partial tiles are wasted work. */
static double tile_efficiency(int M, int N) {
  double em = (double)M / (((M + MR - 1) / MR) * MR);
  double en = (double)N / (((N + NR - 1) / NR) * NR);
  return em * en;
}

static _Thread_local float *smallB; /* (SMALL_B) a small B transposed for the dot path */
#define SMALL_B 65536
#ifndef DOT_MAX
#define DOT_MAX 32
#endif

static void gemm(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
                 float beta, float *c, long rsc, long csc, int threads) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++) c[i * rsc + j * csc] = beta != 0 ? c[i * rsc + j * csc] : 0;
    return;
  }
  if (2.0 * M * N * K < 2e5) threads = 1;
  if (K <= SMALL_K && M <= 64) { /* decode steps' LoRA products; larger M goes to the packed kernel */
    cq_gemm_smallk(M, N, K, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, threads);
    return;
  }
  /* dot-product path: rows of A contiguous along k, one side small; B's columns contiguous along k, or B small
   * enough to transpose first (LoRA's factors) */
  if (csa == 1 && (M <= DOT_MAX || N <= DOT_MAX) && (rsb == 1 || (long)N * K <= SMALL_B)) {
    if (rsb != 1) {
      float *bt = scratch(&smallB, SMALL_B);
      for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) bt[(long)n * K + k] = b[k * rsb + n * csb];
      b = bt;
      rsb = 1;
      csb = K;
    }
    cq_gemm_dot(M, N, K, alpha, a, rsa, b, csb, beta, c, rsc, csc, threads);
    return;
  }
  /* orientation: C^T = B^T A^T when that wastes less of the micro-tiles (a narrow N, e.g. LoRA's rank) */
  if (tile_efficiency(N, M) > 1.25 * tile_efficiency(M, N)) {
    const float *t = a;
    a = b;
    b = t;
    long r = rsa;
    rsa = csb;
    csb = r;
    r = csa;
    csa = rsb;
    rsb = r;
    int n = M;
    M = N;
    N = n;
    r = rsc;
    rsc = csc;
    csc = r;
  }
  packed_gemm(M, N, K, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, threads);
}

void cq_sgemm(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
              float beta, float *c, long rsc, long csc) {
  gemm(M, N, K, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, cq_parallel_width());
}

void cq_sgemm_serial(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b, long rsb,
                     long csb, float beta, float *c, long rsc, long csc) {
  gemm(M, N, K, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc, 1);
}

/*
 * Matrix products with a small side, where packing would cost more than the arithmetic (decode steps: M ≤ 32 rows;
 * LoRA's rank-R factors):
 *   dot path      C(m,n) = Σ_k A(m,k) Bt(n,k) with rows of A and of Bt contiguous along k (x·Wᵀ reads W in place,
 *                 4×4 tiles of vector dot products, the next rows of W prefetched: a decode step streams them)
 *   rank-K path   K ≤ 16: for VL columns of C, B's K vectors stay in registers and A is broadcast
 * Both split the long side between threads. gemm.c chooses among the paths.
 */
#include "colloquy.h"
#include "gemm.h"
#include "simd.h"

/* res[i*4 + j] = Σ_k a_i[k] b_j[k] for i < MT, j < NT. pf: the rows of B that come next (fetched into cache while
 * these are multiplied: the weights of a decode step stream from memory), or NULL. */
#define DOT_TILE(MT, NT)                                                                                     \
  static void dot_##MT##x##NT(int K, const float *a, long lda, const float *b, long ldb, float *res,        \
                              const float *pf) {                                                             \
    vf acc[MT][NT];                                                                                          \
    _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) \
        acc[i][j] = vzero();                                                                                 \
    int k = 0;                                                                                               \
    for (; k + VL <= K; k += VL) {                                                                           \
      vf av[MT], bv[NT];                                                                                     \
      if (pf) {                                                                                              \
        _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) __builtin_prefetch(pf + j * ldb + k, 0, 3);     \
      }                                                                                                      \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) av[i] = vload(a + i * lda + k);                   \
      _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) bv[j] = vload(b + j * ldb + k);                   \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) \
          acc[i][j] = vfma(av[i], bv[j], acc[i][j]);                                                         \
    }                                                                                                        \
    if (k < K) {                                                                                             \
      int n = K - k;                                                                                         \
      vf av[MT], bv[NT];                                                                                     \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) av[i] = vloadn(a + i * lda + k, n);               \
      _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) bv[j] = vloadn(b + j * ldb + k, n);               \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) \
          acc[i][j] = vfma(av[i], bv[j], acc[i][j]);                                                         \
    }                                                                                                        \
    if (NT == 4) {                                                                                           \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++)                                                   \
          vhsum4(res + i * 4, acc[i][0], acc[i][NT > 1 ? 1 : 0], acc[i][NT > 2 ? 2 : 0], acc[i][NT > 3 ? 3 : 0]); \
    } else {                                                                                                 \
      _Pragma("GCC unroll 4") for (int i = 0; i < MT; i++) _Pragma("GCC unroll 4") for (int j = 0; j < NT; j++) \
          res[i * 4 + j] = vhsum(acc[i][j]);                                                                 \
    }                                                                                                        \
  }
DOT_TILE(4, 4)
DOT_TILE(1, 4)
DOT_TILE(4, 1)
DOT_TILE(1, 1)

/* Output columns [n0, n1), all M rows. */
static void dot_gemm(int M, int n0, int n1, int K, float alpha, const float *a, long lda, const float *bt, long ldb,
                     float beta, float *c, long rsc, long csc) {
  float res[16];
  for (int j = n0; j < n1;) {
    int nt = n1 - j >= 4 ? 4 : 1;
    for (int i = 0; i < M;) {
      int mt = M - i >= 4 ? 4 : 1;
      const float *ai = a + (long)i * lda, *bj = bt + (long)j * ldb;
      /* the first pass over these B rows also fetches the next ones */
      const float *pf = i == 0 && j + 2 * nt <= n1 ? bj + nt * ldb : NULL;
      if (mt == 4 && nt == 4) dot_4x4(K, ai, lda, bj, ldb, res, pf);
      else if (mt == 1 && nt == 4) dot_1x4(K, ai, lda, bj, ldb, res, pf);
      else if (mt == 4) dot_4x1(K, ai, lda, bj, ldb, res, pf);
      else dot_1x1(K, ai, lda, bj, ldb, res, pf);
      for (int ii = 0; ii < mt; ii++) {
        for (int jj = 0; jj < nt; jj++) {
          float *cij = c + (i + ii) * rsc + (j + jj) * csc;
          float r = alpha * res[ii * 4 + jj];
          *cij = beta != 0 ? *cij + r : r;
        }
      }
      i += mt;
    }
    j += nt;
  }
}

typedef struct {
  int M, N, K, chunks, across; /* across: split N between threads (else M) */
  float alpha, beta;
  const float *a, *bt;
  long lda, ldb, rsc, csc;
  float *c;
} Dot;

static void task_dot(void *ctx, int i) {
  Dot *d = ctx;
  int len = d->across ? d->N : d->M;
  int s0 = (int)((long)(len / 4) * i / d->chunks) * 4, s1 = i == d->chunks - 1 ? len : (int)((long)(len / 4) * (i + 1) / d->chunks) * 4;
  if (s0 >= s1) return;
  if (d->across) dot_gemm(d->M, s0, s1, d->K, d->alpha, d->a, d->lda, d->bt, d->ldb, d->beta, d->c, d->rsc, d->csc);
  else dot_gemm(s1 - s0, 0, d->N, d->K, d->alpha, d->a + s0 * d->lda, d->lda, d->bt, d->ldb, d->beta, d->c + s0 * d->rsc, d->rsc, d->csc);
}

void cq_gemm_dot(int M, int N, int K, float alpha, const float *a, long lda, const float *bt, long ldb, float beta,
                 float *c, long rsc, long csc, int threads) {
  Dot d = {M, N, K, 1, N >= M, alpha, beta, a, bt, lda, ldb, rsc, csc, c};
  int len = d.across ? N : M;
  d.chunks = threads > 1 ? 4 * threads : 1;
  if (d.chunks > len / 4) d.chunks = len / 4 > 0 ? len / 4 : 1;
  cq_parallel(d.chunks, task_dot, &d);
}

/* ---- rank-K update path: K ≤ SMALL_K (LoRA's rank), few rows ---- */

typedef struct {
  int M, N, K, chunks;
  float alpha, beta;
  const float *a, *b;
  long rsa, csa, rsb, csb, rsc, csc;
  float *c;
} SmallK;

static void task_smallk(void *ctx, int ch) {
  SmallK *g = ctx;
  int blocks = (g->N + VL - 1) / VL;
  int b0 = (int)((long)blocks * ch / g->chunks), b1 = (int)((long)blocks * (ch + 1) / g->chunks);
  vf va = vset1(g->alpha);
  for (int blk = b0; blk < b1; blk++) {
    int n = blk * VL, w = g->N - n < VL ? g->N - n : VL;
    vf bv[SMALL_K];
    for (int k = 0; k < g->K; k++) {
      const float *bk = g->b + k * g->rsb + n * g->csb;
      if (g->csb == 1) {
        bv[k] = vloadn(bk, w);
      } else {
        float t[VL] = {0};
        for (int j = 0; j < w; j++) t[j] = bk[j * g->csb];
        bv[k] = vload(t);
      }
    }
    for (int m = 0; m < g->M; m++) {
      const float *am = g->a + m * g->rsa;
      vf acc = vzero();
      for (int k = 0; k < g->K; k++) acc = vfma(vset1(am[k * g->csa]), bv[k], acc);
      acc = acc * va;
      float *cm = g->c + m * g->rsc + n * g->csc;
      if (g->csc == 1) {
        if (g->beta != 0) acc = acc + vloadn(cm, w);
        vstoren(cm, acc, w);
      } else {
        float t[VL];
        vstore(t, acc);
        for (int j = 0; j < w; j++) cm[j * g->csc] = g->beta != 0 ? cm[j * g->csc] + t[j] : t[j];
      }
    }
  }
}

void cq_gemm_smallk(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b, long rsb,
                    long csb, float beta, float *c, long rsc, long csc, int threads) {
  SmallK g = {M, N, K, 1, alpha, beta, a, b, rsa, csa, rsb, csb, rsc, csc, c};
  int blocks = (N + VL - 1) / VL;
  g.chunks = threads > 1 ? (blocks < 4 * threads ? blocks : 4 * threads) : 1;
  cq_parallel(g.chunks, task_smallk, &g);
}

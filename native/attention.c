/*
 * Causal grouped-query attention, one (row, head) per work item (backward: one (row, kv head)), items spread over
 * threads. Scores, softmax and the weighted sum run a block of TB queries at a time; query block [t0, t1) sees keys
 * 0 .. pos0 + t1 − 1, so the products skip everything above the diagonal block (the causal mask) and go through
 * the GEMM. Decode steps (a few queries per row against its KV cache) take a direct path that reads each row's
 * cache once, front to back, for all heads.
 * Layouts as in src/engine/kernels/attention.ts: q, out (N, NH, HS); k, v (N or capacity, KVH, HS);
 * probs per row (NH, T, T), zero above the diagonal.
 */
#include "colloquy.h"
#include "simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define TB 64
#ifndef PF_AHEAD
#define PF_AHEAD 16 /* positions of the cache fetched ahead of use in decode steps */
#endif

/* A growable per-thread float buffer. */
typedef struct {
  float *p;
  size_t n;
} Scratch;
static _Thread_local Scratch scratchS, scratchD;

static float *grow(Scratch *s, size_t n) {
  if (n > s->n) {
    free(s->p);
    s->n = n + n / 4 + 1024;
    s->p = aligned_alloc(64, ((s->n * 4 + 63) / 64) * 64);
    if (!s->p) abort();
  }
  return s->p;
}

/* Softmax of s[0 .. n−1] in place, zeros s[n .. width−1]. */
static void softmax_row(float *s, int n, int width) {
  vf mx = vset1(-INFINITY);
  int j = 0;
  for (; j + VL <= n; j += VL) mx = vmax(mx, vload(s + j));
  float m = vhmax(mx);
  for (; j < n; j++) m = s[j] > m ? s[j] : m;
  vf vm = vset1(m), sum = vzero();
  for (j = 0; j + VL <= n; j += VL) {
    vf e = vexp(vload(s + j) - vm);
    vstore(s + j, e);
    sum = sum + e;
  }
  if (j < n) {
    vf e = vexp(vloadn(s + j, n - j) - vm);
    /* lanes beyond n hold exp(0 − m): keep them out of the sum */
    float tmp[VL];
    vstore(tmp, e);
    for (int i = n - j; i < VL; i++) tmp[i] = 0;
    e = vload(tmp);
    vstoren(s + j, e, n - j);
    sum = sum + e;
  }
  vf inv = vset1(1.0f / vhsum(sum));
  for (j = 0; j + VL <= n; j += VL) vstore(s + j, vload(s + j) * inv);
  if (j < n) vstoren(s + j, vloadn(s + j, n - j) * inv, n - j);
  for (j = n; j < width; j++) s[j] = 0;
}

/*
 * Few queries of one row (decode steps), all heads at once, reading the cache in position order: every key and
 * value row (KVH·HS floats) is read once, front to back, while the next block is prefetched (the cache streams
 * from memory). q, out: the row's queries (len, NH·HS); k, v: its cache (positions, KVH·HS).
 * s: scratch of NH·(pos0 + len) floats. Needs HS ≤ 16·VL.
 */
static void attend_row_direct(float *out, float *s, const float *q, const float *k, const float *v, int len, int pos0,
                              int NH, int KVH, int HS, float scale) {
  int group = NH / KVH, nv = (HS + VL - 1) / VL, tail = HS - (nv - 1) * VL;
  long Q = (long)NH * HS, KV = (long)KVH * HS;
  for (int t = 0; t < len; t++) {
    const float *qt = q + t * Q;
    float *ot = out + t * Q;
    int n = pos0 + t + 1, ld = n; /* s: (NH, n) */
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      const float *kb = k + j * KV;
      if (j + 4 + PF_AHEAD <= n)
        for (long o = 0; o < 4 * KV; o += 16) __builtin_prefetch(kb + PF_AHEAD * KV + o, 0, 3);
      for (int h = 0; h < NH; h++) {
        const float *qh = qt + h * HS, *k0 = kb + (h / group) * HS;
        vf a0 = vzero(), a1 = vzero(), a2 = vzero(), a3 = vzero();
        for (int c = 0; c < nv; c++) {
          int o = c * VL, w = c < nv - 1 ? VL : tail;
          vf qv = vloadn(qh + o, w);
          a0 = vfma(qv, vloadn(k0 + o, w), a0);
          a1 = vfma(qv, vloadn(k0 + KV + o, w), a1);
          a2 = vfma(qv, vloadn(k0 + 2 * KV + o, w), a2);
          a3 = vfma(qv, vloadn(k0 + 3 * KV + o, w), a3);
        }
        vhsum4(s + h * ld + j, a0, a1, a2, a3);
      }
    }
    for (; j < n; j++) {
      for (int h = 0; h < NH; h++) {
        const float *qh = qt + h * HS, *k0 = k + j * KV + (h / group) * HS;
        vf a = vzero();
        for (int c = 0; c < nv; c++) a = vfma(vloadn(qh + c * VL, c < nv - 1 ? VL : tail), vloadn(k0 + c * VL, c < nv - 1 ? VL : tail), a);
        s[h * ld + j] = vhsum(a);
      }
    }
    for (int h = 0; h < NH; h++) {
      float *sh = s + h * ld;
      for (j = 0; j < n; j++) sh[j] *= scale;
      softmax_row(sh, n, n);
    }
    /* out (NH, HS) = Σ_j p_j v_j, eight positions at a time (they stay in L1 across the heads) */
    for (long i = 0; i < Q; i++) ot[i] = 0;
    for (j = 0; j < n; j += 8) {
      int j1 = j + 8 < n ? j + 8 : n;
      const float *vb = v + j * KV;
      if (j + 8 + PF_AHEAD <= n)
        for (long o = 0; o < 8 * KV; o += 16) __builtin_prefetch(vb + PF_AHEAD * KV + o, 0, 3);
      for (int h = 0; h < NH; h++) {
        const float *sh = s + h * ld, *vh = v + (h / group) * HS;
        float *oh = ot + h * HS;
        for (int c = 0; c < nv; c++) {
          int o = c * VL, w = c < nv - 1 ? VL : tail;
          vf acc = vloadn(oh + o, w);
          for (int jj = j; jj < j1; jj++) acc = vfma(vset1(sh[jj]), vloadn(vh + jj * KV + o, w), acc);
          vstoren(oh + o, acc, w);
        }
      }
    }
  }
}

/*
 * One query head of one row: len queries at positions pos0.., keys/values at positions 0 .. pos0+len−1.
 * q, out point at the row's first query of this head (stride qs); k, v at position 0 of its kv head (stride ks).
 * p: (len, ldp) probabilities, written whole (zero beyond each query's keys).
 */
static void attend(float *out, float *p, int ldp, const float *q, const float *k, const float *v, int len, int pos0,
                   int HS, long qs, long ks, float scale) {
  for (int t0 = 0; t0 < len; t0 += TB) {
    int t1 = t0 + TB < len ? t0 + TB : len;
    int nk = pos0 + t1;
    float *pb = p + (long)t0 * ldp;
    /* scores (t1−t0, nk) = scale · q k^T */
    cq_sgemm_serial(t1 - t0, nk, HS, scale, q + t0 * qs, qs, 1, k, 1, ks, 0.0f, pb, ldp, 1);
    for (int t = t0; t < t1; t++) softmax_row(p + (long)t * ldp, pos0 + t + 1, ldp);
    /* out (t1−t0, HS) = p v */
    cq_sgemm_serial(t1 - t0, HS, nk, 1.0f, pb, ldp, 1, v, ks, 1, 0.0f, out + t0 * qs, qs, 1);
  }
}

/* What every work item of one attention call reads. */
typedef struct {
  float *out, *probs, *dq, *dk, *dv;
  const float *q, *k, *v, *dout;
  float *const *kc, *const *vc;
  const int32_t *rows;
  int NH, KVH, HS, group;
  long Q, KV;
  float scale;
  int items, chunks; /* work items, grouped into chunks for the pool */
  void (*task)(void *, int);
} Attn;

/* Chunk c runs its share of the items. */
static void task_items(void *ctx, int c) {
  Attn *a = ctx;
  int i0 = (int)((long)a->items * c / a->chunks), i1 = (int)((long)a->items * (c + 1) / a->chunks);
  for (int it = i0; it < i1; it++) a->task(ctx, it);
}

static Attn attn_init(const int32_t *rows, int NH, int KVH, int HS) {
  Attn a = {0};
  a.rows = rows;
  a.NH = NH;
  a.KVH = KVH;
  a.HS = HS;
  a.group = NH / KVH;
  a.Q = (long)NH * HS;
  a.KV = (long)KVH * HS;
  a.scale = (float)(1.0 / sqrt((double)HS));
  return a;
}

/* item = (row, query head) */
static void task_forward(void *ctx, int it) {
  Attn *a = ctx;
  int r = it / a->NH, h = it % a->NH;
  int start = a->rows[3 * r], len = a->rows[3 * r + 1];
  if (len == 0) return;
  float *p = a->probs ? a->probs + a->rows[3 * r + 2] + (long)h * len * len : grow(&scratchS, (size_t)len * len);
  long kh = (long)(h / a->group) * a->HS;
  attend(a->out + start * a->Q + h * a->HS, p, len, a->q + start * a->Q + h * a->HS, a->k + start * a->KV + kh,
         a->v + start * a->KV + kh, len, 0, a->HS, a->Q, a->KV, a->scale);
}

void cq_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *rows, int R, int NH, int KVH, int HS) {
  Attn a = attn_init(rows, NH, KVH, HS);
  a.out = out;
  a.probs = probs;
  a.q = q;
  a.k = k;
  a.v = v;
  cq_parallel(R * NH, task_forward, &a);
}

/* item = one row: the direct path for decode steps (all heads together), else one head at a time */
static void task_cached(void *ctx, int r) {
  Attn *a = ctx;
  int start = a->rows[3 * r], len = a->rows[3 * r + 1], pos0 = a->rows[3 * r + 2];
  if (len == 0) return;
  int nk = pos0 + len;
  float *o = a->out + start * a->Q;
  const float *q = a->q + start * a->Q;
  if (len <= 4 && a->HS <= 16 * VL) {
    attend_row_direct(o, grow(&scratchS, (size_t)a->NH * nk), q, a->kc[r], a->vc[r], len, pos0, a->NH, a->KVH, a->HS,
                      a->scale);
    return;
  }
  for (int h = 0; h < a->NH; h++) {
    long kh = (long)(h / a->group) * a->HS;
    attend(o + h * a->HS, grow(&scratchS, (size_t)len * nk), nk, q + h * a->HS, a->kc[r] + kh, a->vc[r] + kh, len, pos0,
           a->HS, a->Q, a->KV, a->scale);
  }
}

void cq_attention_cached(float *out, const float *q, const float *k, const float *v, float *const *kc,
                         float *const *vc, const int32_t *rows, int R, int NH, int KVH, int HS) {
  Attn a = attn_init(rows, NH, KVH, HS);
  a.out = out;
  a.q = q;
  a.kc = kc;
  a.vc = vc;
  for (int r = 0; r < R; r++) {
    size_t off = (size_t)rows[3 * r] * a.KV, n = (size_t)rows[3 * r + 1] * a.KV, at = (size_t)rows[3 * r + 2] * a.KV;
    memcpy(kc[r] + at, k + off, n * sizeof(float));
    memcpy(vc[r] + at, v + off, n * sizeof(float));
  }
  long work = 0;
  for (int r = 0; r < R; r++) work += (long)rows[3 * r + 1] * (rows[3 * r + 1] + rows[3 * r + 2]) * NH * HS;
  a.items = R;
  a.chunks = work < 20000 ? 1 : a.items < 4 * cq_parallel_width() ? a.items : 4 * cq_parallel_width();
  a.task = task_cached;
  cq_parallel(a.chunks, task_items, &a);
}

/*
 * Backward for rows starting at position 0; item = (row, kv head), the query heads of its group in turn, so that
 * dk, dv have one writer:
 *   dP = dO V^T,  dS = P ⊙ (dP − rowsum(P ⊙ dP)) · scale,  dQ += dS K,  dK += dS^T Q,  dV += P^T dO.
 */
static void task_backward(void *ctx, int it) {
  Attn *a = ctx;
  int r = it / a->KVH, g = it % a->KVH;
  int start = a->rows[3 * r], T = a->rows[3 * r + 1];
  if (T == 0) return;
  long Q = a->Q, KV = a->KV;
  int HS = a->HS;
  float scale = a->scale;
  float *ds = grow(&scratchD, (size_t)T * T); /* (T, T) */
  long kh = (long)g * HS;
  const float *kr = a->k + start * KV + kh, *vr = a->v + start * KV + kh;
  float *dkr = a->dk + start * KV + kh, *dvr = a->dv + start * KV + kh;
  for (int h = g * a->group; h < (g + 1) * a->group; h++) {
    const float *P = a->probs + a->rows[3 * r + 2] + (long)h * T * T;
    const float *qh = a->q + start * Q + h * HS, *go = a->dout + start * Q + h * HS;
    float *dqh = a->dq + start * Q + h * HS;
    for (int t0 = 0; t0 < T; t0 += TB) {
      int t1 = t0 + TB < T ? t0 + TB : T;
      /* dP (t1−t0, t1) = dO v^T */
      cq_sgemm_serial(t1 - t0, t1, HS, 1.0f, go + t0 * Q, Q, 1, vr, 1, KV, 0.0f, ds + (long)t0 * T, T, 1);
      for (int t = t0; t < t1; t++) {
        float *d = ds + (long)t * T;
        const float *pr = P + (long)t * T;
        int n = t + 1, j = 0;
        vf acc = vzero();
        for (; j + VL <= n; j += VL) acc = vfma(vload(pr + j), vload(d + j), acc);
        float dot = vhsum(acc);
        for (; j < n; j++) dot += pr[j] * d[j];
        vf vdot = vset1(dot), vs = vset1(scale);
        for (j = 0; j + VL <= n; j += VL) vstore(d + j, vload(pr + j) * (vload(d + j) - vdot) * vs);
        for (; j < n; j++) d[j] = pr[j] * (d[j] - dot) * scale;
        for (j = n; j < t1; j++) d[j] = 0;
      }
      /* dQ (t1−t0, HS) += dS k */
      cq_sgemm_serial(t1 - t0, HS, t1, 1.0f, ds + (long)t0 * T, T, 1, kr, KV, 1, 1.0f, dqh + t0 * Q, Q, 1);
    }
    for (int j0 = 0; j0 < T; j0 += TB) {
      int j1 = j0 + TB < T ? j0 + TB : T;
      /* keys [j0, j1) get gradient from queries t ≥ j0: dK += dS^T q, dV += P^T dO */
      cq_sgemm_serial(j1 - j0, HS, T - j0, 1.0f, ds + (long)j0 * T + j0, 1, T, qh + j0 * Q, Q, 1, 1.0f, dkr + j0 * KV,
                      KV, 1);
      cq_sgemm_serial(j1 - j0, HS, T - j0, 1.0f, P + (long)j0 * T + j0, 1, T, go + j0 * Q, Q, 1, 1.0f, dvr + j0 * KV,
                      KV, 1);
    }
  }
}

void cq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, const float *k, const float *v,
                           const int32_t *rows, int R, int NH, int KVH, int HS) {
  Attn a = attn_init(rows, NH, KVH, HS);
  a.dq = dq;
  a.dk = dk;
  a.dv = dv;
  a.dout = dout;
  a.probs = (float *)probs;
  a.q = q;
  a.k = k;
  a.v = v;
  cq_parallel(R * KVH, task_backward, &a);
}

/*
 * Row-wise and element-wise kernels: RMSNorm, rotary embedding, SwiGLU, the LM head's log-softmax /
 * cross-entropy / entropy, AdamW, and a few vector helpers. Same semantics as the TypeScript references in
 * src/engine/kernels/; parallel over rows (or chunks) when the work is large enough to pay for a thread.
 */
#include "colloquy.h"
#include "simd.h"

#include <math.h>
#include <stdlib.h>

#define PAR_MIN 32768 /* elements below which a kernel stays on the calling thread */

/* Chunks for n items of `per` elements each: 1 when small, else a few per thread (a late worker still helps). */
static int chunks_for(long n, long per) {
  if (n * per <= PAR_MIN || n < 2) return 1;
  long c = 4L * cq_parallel_width();
  return (int)(c < n ? c : n);
}

/* The item range of chunk i of c over n items. */
#define RANGE(n, i, c, lo, hi)              \
  long lo = (long)(n) * (i) / (c);          \
  long hi = (long)(n) * ((i) + 1) / (c);

/* Σ a[i]·b[i] over n floats, float vectors flushed into a double every 1024 elements. */
static double dot_f(const float *a, const float *b, int n) {
  double total = 0;
  int j = 0;
  while (j < n) {
    int end = j + 1024 < n ? j + 1024 : n;
    vf acc = vzero();
    for (; j + VL <= end; j += VL) acc = vfma(vload(a + j), vload(b + j), acc);
    double s = vhsum(acc);
    for (; j < end; j++) s += (double)a[j] * b[j];
    total += s;
  }
  return total;
}

typedef struct {
  float *out, *rstd, *dx, *dw, *partial;
  const float *x, *w, *dout, *crstd;
  int N, C, chunks;
  float eps;
} Norm;

static void task_rms_fwd(void *ctx, int ch) {
  Norm *a = ctx;
  float *out = a->out, *rstd = a->rstd;
  const float *x = a->x, *w = a->w;
  int C = a->C;
  float eps = a->eps;
  RANGE(a->N, ch, a->chunks, i0, i1)
  for (long i = i0; i < i1; i++) {
    const float *xi = x + (long)i * C;
    float *oi = out + (long)i * C;
    double ss = dot_f(xi, xi, C);
    float r = (float)(1.0 / sqrt(ss / C + eps));
    if (rstd) rstd[i] = r;
    vf vr = vset1(r);
    int c = 0;
    for (; c + VL <= C; c += VL) vstore(oi + c, vload(w + c) * (vload(xi + c) * vr));
    for (; c < C; c++) oi[c] = w[c] * (xi[c] * r);
  }
}

void cq_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps) {
  Norm a = {.out = out, .rstd = rstd, .x = x, .w = w, .N = N, .C = C, .eps = eps, .chunks = chunks_for(N, C)};
  cq_parallel(a.chunks, task_rms_fwd, &a);
}

static void task_rms_bwd(void *ctx, int ch) {
  Norm *a = ctx;
  const float *x = a->x, *dout = a->dout, *rstd = a->crstd, *w = a->w;
  float *dx = a->dx;
  int C = a->C;
  float *dwt = a->partial ? a->partial + (long)ch * C : a->dw;
  RANGE(a->N, ch, a->chunks, i0, i1)
  for (long i = i0; i < i1; i++) {
    const float *xi = x + i * C, *gi = dout + i * C;
    float *dxi = dx + i * C;
    float r = rstd[i];
    double dot = 0;
    vf acc = vzero();
    int c = 0;
    for (; c + VL <= C; c += VL) acc = vfma(vload(w + c) * vload(gi + c), vload(xi + c), acc);
    dot = vhsum(acc);
    for (; c < C; c++) dot += (double)w[c] * gi[c] * xi[c];
    float kk = (float)(dot * r * r * r / C);
    vf vr = vset1(r), vk = vset1(kk);
    for (c = 0; c + VL <= C; c += VL) {
      vf g = vload(gi + c), xv = vload(xi + c);
      vstore(dxi + c, vload(dxi + c) + vr * vload(w + c) * g - vk * xv);
      if (dwt) vstore(dwt + c, vload(dwt + c) + g * xv * vr);
    }
    for (; c < C; c++) {
      dxi[c] += r * w[c] * gi[c] - kk * xi[c];
      if (dwt) dwt[c] += gi[c] * xi[c] * r;
    }
  }
}

/* dx += r (w⊙g) − x r³/C Σ(w⊙g⊙x);  dw += g⊙x·r (per-chunk partial sums, added at the end). */
void cq_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *rstd, const float *w,
                         int N, int C) {
  Norm a = {.dx = dx, .dw = dw, .dout = dout, .x = x, .crstd = rstd, .w = w, .N = N, .C = C, .chunks = chunks_for(N, C)};
  if (dw && a.chunks > 1) a.partial = calloc((size_t)a.chunks * C, sizeof(float));
  cq_parallel(a.chunks, task_rms_bwd, &a);
  if (a.partial) {
    for (int t = 0; t < a.chunks; t++)
      for (int c = 0; c < C; c++) dw[c] += a.partial[(long)t * C + c];
    free(a.partial);
  }
}

typedef struct {
  float *x;
  const int32_t *pos;
  const float *cosT, *sinT;
  int N, H, HS, style, direction, chunks;
} Rope;

static void task_rope(void *ctx, int ch) {
  Rope *a = ctx;
  float *x = a->x;
  const float *cosT = a->cosT, *sinT = a->sinT;
  int H = a->H, HS = a->HS, half = HS / 2, style = a->style, direction = a->direction;
  RANGE(a->N, ch, a->chunks, t0, t1)
  for (long t = t0; t < t1; t++) {
    const int32_t *pos = a->pos;
    const float *ct = cosT + (long)pos[t] * half, *st = sinT + (long)pos[t] * half;
    for (int h = 0; h < H; h++) {
      float *b = x + ((long)t * H + h) * HS;
      if (style == 0) {
        int i = 0;
        vf dir = vset1((float)direction);
        for (; i + VL <= half; i += VL) {
          vf c = vload(ct + i), s = dir * vload(st + i), u = vload(b + i), w = vload(b + i + half);
          vstore(b + i, u * c - w * s);
          vstore(b + i + half, w * c + u * s);
        }
        for (; i < half; i++) {
          float c = ct[i], s = direction * st[i], u = b[i], w = b[i + half];
          b[i] = u * c - w * s;
          b[i + half] = w * c + u * s;
        }
      } else {
        for (int i = 0; i < half; i++) {
          float c = ct[i], s = direction * st[i], u = b[2 * i], w = b[2 * i + 1];
          b[2 * i] = u * c - w * s;
          b[2 * i + 1] = u * s + w * c;
        }
      }
    }
  }
}

void cq_rope(float *x, const int32_t *pos, int N, int H, int HS, const float *cosT, const float *sinT, int style,
             int direction) {
  Rope a = {x, pos, cosT, sinT, N, H, HS, style, direction, chunks_for(N, (long)H * HS)};
  cq_parallel(a.chunks, task_rope, &a);
}

CQ_INLINE vf vsigmoid(vf g) { return vset1(1.0f) / (vset1(1.0f) + vexp(-g)); }

typedef struct {
  float *h, *dgate, *dup;
  const float *gate, *up, *dh;
  long n;
  int chunks;
} Glu;

static void task_glu_fwd(void *ctx, int ch) {
  Glu *a = ctx;
  RANGE(a->n, ch, a->chunks, i0, i1)
  float *h = a->h;
  const float *gate = a->gate, *up = a->up;
  long i = i0;
  for (; i + VL <= i1; i += VL) {
    vf g = vload(gate + i);
    vstore(h + i, g * vsigmoid(g) * vload(up + i));
  }
  for (; i < i1; i++) h[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

void cq_swiglu_forward(float *h, const float *gate, const float *up, long n) {
  Glu a = {.h = h, .gate = gate, .up = up, .n = n, .chunks = chunks_for(n / 1024 + 1, 1024)};
  cq_parallel(a.chunks, task_glu_fwd, &a);
}

static void task_glu_bwd(void *ctx, int ch) {
  Glu *a = ctx;
  RANGE(a->n, ch, a->chunks, i0, i1)
  float *dgate = a->dgate, *dup = a->dup;
  const float *gate = a->gate, *up = a->up, *dh = a->dh;
  long i = i0;
  for (; i + VL <= i1; i += VL) {
    vf g = vload(gate + i), s = vsigmoid(g), d = vload(dh + i);
    vstore(dup + i, d * g * s);
    vstore(dgate + i, d * vload(up + i) * s * (vset1(1.0f) + g * (vset1(1.0f) - s)));
  }
  for (; i < i1; i++) {
    float g = gate[i], s = 1.0f / (1.0f + expf(-g));
    dup[i] = dh[i] * g * s;
    dgate[i] = dh[i] * up[i] * s * (1.0f + g * (1.0f - s));
  }
}

void cq_swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, long n) {
  Glu a = {.dgate = dgate, .dup = dup, .dh = dh, .gate = gate, .up = up, .n = n, .chunks = chunks_for(n / 1024 + 1, 1024)};
  cq_parallel(a.chunks, task_glu_bwd, &a);
}

typedef struct {
  float *logits;
  double *logprob, *entropy;
  const int32_t *targets;
  const double *w, *e;
  int n, V, grad, chunks;
} Xent;

static void task_xent(void *ctx, int ch) {
  Xent *a = ctx;
  float *logits = a->logits;
  double *logprob = a->logprob, *entropy = a->entropy;
  const int32_t *targets = a->targets;
  const double *w = a->w, *e = a->e;
  int V = a->V, grad = a->grad;
  RANGE(a->n, ch, a->chunks, i0, i1)
  for (long i = i0; i < i1; i++) {
    float *row = logits + (long)i * V;
    vf mx = vset1(-INFINITY);
    int j = 0;
    for (; j + VL <= V; j += VL) mx = vmax(mx, vload(row + j));
    float m = vhmax(mx);
    for (; j < V; j++) m = row[j] > m ? row[j] : m;
    /* sum of exp(x − m), then lse */
    vf vm = vset1(m);
    double sum = 0;
    j = 0;
    while (j < V) {
      int end = j + 1024 < V ? j + 1024 : V;
      vf acc = vzero();
      for (; j + VL <= end; j += VL) acc = acc + vexp(vload(row + j) - vm);
      double s = vhsum(acc);
      for (; j < end; j++) s += exp((double)row[j] - m);
      sum += s;
    }
    double lse = m + log(sum);
    /* entropy −Σ p lp */
    vf vl = vset1((float)lse);
    double ent = 0;
    j = 0;
    while (j < V) {
      int end = j + 1024 < V ? j + 1024 : V;
      vf acc = vzero();
      for (; j + VL <= end; j += VL) {
        vf lp = vload(row + j) - vl;
        acc = vfma(vexp(lp), lp, acc);
      }
      double s = vhsum(acc);
      for (; j < end; j++) {
        double lp = row[j] - lse;
        s += exp(lp) * lp;
      }
      ent -= s;
    }
    int target = targets[i];
    logprob[i] = target >= 0 ? row[target] - lse : NAN;
    entropy[i] = ent;
    if (!grad) continue;
    /* dL/dz_v = w (p_v − [v = target]) + e p_v (log p_v + H) */
    float wi = target >= 0 && w ? (float)w[i] : 0.0f;
    float ei = e ? (float)e[i] : 0.0f;
    if (wi == 0 && ei == 0) {
      for (j = 0; j < V; j++) row[j] = 0;
      continue;
    }
    vf vw = vset1(wi), ve = vset1(ei), vh = vset1((float)ent);
    for (j = 0; j + VL <= V; j += VL) {
      vf lp = vload(row + j) - vl, p = vexp(lp);
      vstore(row + j, vw * p + ve * p * (lp + vh));
    }
    for (; j < V; j++) {
      double lp = row[j] - lse, p = exp(lp);
      row[j] = (float)(wi * p + ei * p * (lp + ent));
    }
    if (target >= 0) row[target] -= wi;
  }
}

void cq_softmax_xent(float *logits, double *logprob, double *entropy, const int32_t *targets, const double *w,
                     const double *e, int n, int V, int grad) {
  Xent a = {logits, logprob, entropy, targets, w, e, n, V, grad, chunks_for(n, 4L * V)};
  cq_parallel(a.chunks, task_xent, &a);
}

typedef struct {
  float *p, *m, *v;
  const float *g;
  long n;
  double lr, beta1, beta2, eps, wd, stepSize, sqrtBc2;
  int chunks;
} Adam;

/* float64 arithmetic without fused multiply-adds, like the TypeScript reference */
CQ_EXACT_FN static void task_adamw(void *ctx, int ch) {
  CQ_EXACT_BODY
  Adam *a = ctx;
  float *p = a->p, *m = a->m, *v = a->v;
  const float *g = a->g;
  double beta1 = a->beta1, beta2 = a->beta2, eps = a->eps, wd = a->wd, stepSize = a->stepSize, sqrtBc2 = a->sqrtBc2;
  double decay = 1 - a->lr * wd;
  RANGE(a->n, ch, a->chunks, i0, i1)
  for (long i = i0; i < i1; i++) {
    float pi = p[i];
    if (wd != 0) pi = (float)(pi * decay);
    double gi = g[i];
    float mi = (float)(beta1 * m[i] + (1 - beta1) * gi);
    float vv = (float)(beta2 * v[i] + (1 - beta2) * gi * gi);
    m[i] = mi;
    v[i] = vv;
    p[i] = (float)(pi - (stepSize * mi) / (sqrt((double)vv) / sqrtBc2 + eps));
  }
}

void cq_adamw(float *p, const float *g, float *m, float *v, long n, double lr, double beta1, double beta2, double eps,
              double wd, double stepSize, double sqrtBc2) {
  Adam a = {p, m, v, g, n, lr, beta1, beta2, eps, wd, stepSize, sqrtBc2, chunks_for(n / 4096 + 1, 4096)};
  cq_parallel(a.chunks, task_adamw, &a);
}

typedef struct {
  const float *logits;
  const double *temperature, *u;
  int32_t *ids;
  double *logprobs;
  int n, V, chunks;
} Sampler;

/* float64 and index order throughout, as sample.ts's sampleToken; exp from libm */
CQ_EXACT_FN static void task_sample(void *ctx, int ch) {
  CQ_EXACT_BODY
  Sampler *a = ctx;
  int V = a->V;
  double *scaled = malloc((size_t)V * sizeof(double));
  RANGE(a->n, ch, a->chunks, r0, r1)
  for (long r = r0; r < r1; r++) {
    const float *row = a->logits + r * V;
    double t = a->temperature[r], max = -INFINITY;
    for (int i = 0; i < V; i++) {
      scaled[i] = row[i] / t;
      if (scaled[i] > max) max = scaled[i];
    }
    double sum = 0;
    for (int i = 0; i < V; i++) {
      scaled[i] = exp(scaled[i] - max);
      sum += scaled[i];
    }
    double cum = 0;
    int last = 0, id = -1;
    for (int i = 0; i < V; i++) {
      double p = scaled[i] / sum;
      if (p <= 0) continue;
      cum += p;
      last = i;
      if (a->u[r] < cum) {
        id = i;
        break;
      }
    }
    if (id < 0) id = last;
    double lmax = max, lsum = sum; /* at temperature 1 the sampling pass computed them */
    if (t != 1) {
      lmax = -INFINITY;
      lsum = 0;
      for (int i = 0; i < V; i++) lmax = row[i] > lmax ? row[i] : lmax;
      for (int i = 0; i < V; i++) lsum += exp(row[i] - lmax);
    }
    a->ids[r] = id;
    a->logprobs[r] = row[id] - (lmax + log(lsum));
  }
  free(scaled);
}

void cq_sample_rows(const float *logits, int n, int V, const double *temperature, const double *u, int32_t *ids,
                    double *logprobs) {
  Sampler a = {logits, temperature, u, ids, logprobs, n, V, chunks_for(n, 8L * V)};
  cq_parallel(a.chunks, task_sample, &a);
}

void cq_gather_rows(float *out, const float *src, const int32_t *idx, int n, int C) {
  for (int i = 0; i < n; i++) memcpy(out + (long)i * C, src + (long)idx[i] * C, (size_t)C * 4);
}

void cq_scatter_add_rows(float *dst, const float *src, const int32_t *idx, int n, int C) {
  for (int i = 0; i < n; i++) {
    float *d = dst + (long)idx[i] * C;
    const float *s = src + (long)i * C;
    for (int c = 0; c < C; c++) d[c] += s[c];
  }
}

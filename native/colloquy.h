/*
 * colloquy's native kernels: the C side of src/engine/kernels/native.ts. Every kernel is a pure function
 * (outputs first, then inputs, then dimensions) over float32 buffers owned by JavaScript (SharedArrayBuffers:
 * pointers stay valid for the duration of a call; nothing here keeps or copies them). Threads come from the pool
 * of pool.c; with COLLOQUY_THREADS=1 every kernel runs on the calling thread.
 */
#ifndef COLLOQUY_H
#define COLLOQUY_H

#include <stddef.h>
#include <stdint.h>

/* ---- threads (threads.c, pool.c) ---- */
int cq_threads(void);            /* threads a kernel may use (COLLOQUY_THREADS, else the CPU count) */
void cq_set_threads(int n);      /* n ≤ 0: back to the default */
const char *cq_simd_name(void);  /* "avx512", "avx2" or "generic": the instruction set compiled in */
typedef void (*cq_task)(void *ctx, int chunk);
/* Runs fn(ctx, i) for i in [0, n) on the calling thread and the pool's workers (inline when nested). */
void cq_parallel(int n, cq_task fn, void *ctx);
int cq_parallel_width(void);     /* threads cq_parallel can use now (1: everything runs inline) */

/* ---- matrix products (gemm.c, gemm-small.c) ----
 * C(m,n) = alpha · Σ_k A(m,k) B(k,n) + beta · C(m,n), beta ∈ {0, 1}, with element strides:
 *   A(m,k) = a[m*rsa + k*csa]   B(k,n) = b[k*rsb + n*csb]   C(m,n) = c[m*rsc + n*csc]
 * Parallel over both dimensions. Operands are packed block by block into per-thread scratch, or, when a side is
 * small, read in place: the weights are never copied whole. */
void cq_sgemm(int M, int N, int K, float alpha,
              const float *a, long rsa, long csa,
              const float *b, long rsb, long csb,
              float beta, float *c, long rsc, long csc);
/* The same on the calling thread only. */
void cq_sgemm_serial(int M, int N, int K, float alpha,
                     const float *a, long rsa, long csa,
                     const float *b, long rsb, long csb,
                     float beta, float *c, long rsc, long csc);

/* ---- probes (probe.c) ---- */
/* FMAs in registers on `threads` threads at once: floating-point operations per second (best burst). */
double cq_fma_peak(int threads, double seconds);
/* The core clock measured by a chain of dependent adds (one per cycle); 0 where unsupported. */
double cq_clock_hz(double seconds);

/* ---- attention (attention.c) ----
 * rows (R, 3): [start, len, probsOffset] of each row of a packed batch (keys start at position 0).
 * q, out (N, NH, HS); k, v (N, KVH, HS); probs: per row (NH, len, len) at probsOffset, or NULL. */
void cq_attention_forward(float *out, float *probs, const float *q, const float *k, const float *v,
                          const int32_t *rows, int R, int NH, int KVH, int HS);
/* dq, dk, dv accumulate; same layouts as q, k, v. */
void cq_attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *probs,
                           const float *q, const float *k, const float *v,
                           const int32_t *rows, int R, int NH, int KVH, int HS);
/* Rows that continue a KV cache: row r has `len` new queries at positions pos0..; its new keys and values (rows
 * start .. of k, v (N, KVH, HS)) are first written into kc[r], vc[r] (capacity, KVH, HS) at pos0, then its
 * queries attend to positions 0 .. pos0+len-1. rows (R, 3): [start, len, pos0]. */
void cq_attention_cached(float *out, const float *q, const float *k, const float *v, float *const *kc,
                         float *const *vc, const int32_t *rows, int R, int NH, int KVH, int HS);

/* ---- rows (rows.c) ---- */
void cq_rmsnorm_forward(float *out, float *rstd, const float *x, const float *w, int N, int C, float eps);
void cq_rmsnorm_backward(float *dx, float *dw, const float *dout, const float *x, const float *rstd,
                         const float *w, int N, int C);
/* x (N, H, HS) in place; token i at position pos[i]; cos, sin (P, HS/2); style 0 half, 1 interleaved. */
void cq_rope(float *x, const int32_t *pos, int N, int H, int HS, const float *cosT, const float *sinT,
             int style, int direction);
void cq_swiglu_forward(float *h, const float *gate, const float *up, long n);
void cq_swiglu_backward(float *dgate, float *dup, const float *dh, const float *gate, const float *up, long n);
/* Log-softmax rows of logits (n, V): logprob of target (NaN when target < 0), entropy; with grad, logits are
 * overwritten by dL/dlogits = w (p − onehot) + e p (log p + H). */
void cq_softmax_xent(float *logits, double *logprob, double *entropy, const int32_t *targets,
                     const double *w, const double *e, int n, int V, int grad);
/* Temperature sampling per row with the caller's uniform draws u (inverse CDF in index order, float64), and the
 * log-probability of the drawn token under softmax(logits) (temperature 1). logits (n, V). */
void cq_sample_rows(const float *logits, int n, int V, const double *temperature, const double *u, int32_t *ids,
                    double *logprobs);
/* AdamW (torch.optim.AdamW), in float64 arithmetic like the reference. */
void cq_adamw(float *p, const float *g, float *m, float *v, long n, double lr, double beta1, double beta2,
              double eps, double wd, double stepSize, double sqrtBc2);
/* out (n, C) row i = src row idx[i] (gather); or dst row idx[i] += src row i (scatter-add) */
void cq_gather_rows(float *out, const float *src, const int32_t *idx, int n, int C);
void cq_scatter_add_rows(float *dst, const float *src, const int32_t *idx, int n, int C);

#endif

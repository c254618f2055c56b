/* Internal to the matrix products: the small-shape paths of gemm-small.c, chosen by gemm.c. */
#ifndef COLLOQUY_GEMM_H
#define COLLOQUY_GEMM_H

#define SMALL_K 16 /* the rank-K path takes contractions up to this long */

/* C(m,n) = alpha Σ_k A(m,k) Bt(n,k) + beta C(m,n); rows of A (stride lda) and of Bt (stride ldb) contiguous along k. */
void cq_gemm_dot(int M, int N, int K, float alpha, const float *a, long lda, const float *bt, long ldb, float beta,
                 float *c, long rsc, long csc, int threads);
/* The same product with K ≤ SMALL_K and any strides. */
void cq_gemm_smallk(int M, int N, int K, float alpha, const float *a, long rsa, long csa, const float *b, long rsb,
                    long csb, float beta, float *c, long rsc, long csc, int threads);

#endif

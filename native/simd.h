/*
 * One vector type for the whole addon, chosen at compile time (-march=native): AVX-512 (16 floats), AVX2+FMA
 * (8 floats), or GCC's portable vector extension (4 floats, any target). Kernels are written once against these.
 *   vf      a vector of VL floats
 *   vload / vstore (unaligned), vloadn / vstoren (first n < VL lanes, the rest zero / untouched)
 *   vset1, vzero, vfma(a, b, c) = a·b + c, vhsum (sum of lanes), vmax, vexp (≈1 ulp, as expf)
 */
#ifndef COLLOQUY_SIMD_H
#define COLLOQUY_SIMD_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#define CQ_INLINE static inline __attribute__((always_inline))

/* Float64 arithmetic exactly as written, without fused multiply-adds (kernels that must match the TypeScript
 * reference bit for bit): GCC takes a function attribute, clang a pragma inside the body (CQ_EXACT_BODY). */
#if defined(__clang__)
#define CQ_EXACT_FN
#define CQ_EXACT_BODY _Pragma("clang fp contract(off)")
#elif defined(__GNUC__)
#define CQ_EXACT_FN __attribute__((optimize("fp-contract=off")))
#define CQ_EXACT_BODY
#else
#define CQ_EXACT_FN
#define CQ_EXACT_BODY
#endif

#if defined(__AVX512F__)
#include <immintrin.h>
#define CQ_SIMD "avx512"
#define VL 16
typedef __m512 vf;
typedef __m512i vi;
CQ_INLINE vf vload(const float *p) { return _mm512_loadu_ps(p); }
CQ_INLINE void vstore(float *p, vf a) { _mm512_storeu_ps(p, a); }
CQ_INLINE vf vloadn(const float *p, int n) { return _mm512_maskz_loadu_ps((__mmask16)((1u << n) - 1), p); }
CQ_INLINE void vstoren(float *p, vf a, int n) { _mm512_mask_storeu_ps(p, (__mmask16)((1u << n) - 1), a); }
CQ_INLINE vf vset1(float x) { return _mm512_set1_ps(x); }
CQ_INLINE vf vzero(void) { return _mm512_setzero_ps(); }
CQ_INLINE vf vfma(vf a, vf b, vf c) { return _mm512_fmadd_ps(a, b, c); }
CQ_INLINE float vhsum(vf a) { return _mm512_reduce_add_ps(a); }
CQ_INLINE float vhmax(vf a) { return _mm512_reduce_max_ps(a); }
CQ_INLINE vf vmax(vf a, vf b) { return _mm512_max_ps(a, b); }
CQ_INLINE vi vcvt(vf a) { return _mm512_cvtps_epi32(a); }
CQ_INLINE vf vround(vf a) { return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
CQ_INLINE vf vpow2i(vi n) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(n, _mm512_set1_epi32(127)), 23)); }
CQ_INLINE __m128 cq_fold512(vf a) {
  __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
  return _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}
/* out[0..3] = sums of the lanes of a, b, c, d */
CQ_INLINE void vhsum4(float *out, vf a, vf b, vf c, vf d) {
  __m128 s = _mm_hadd_ps(_mm_hadd_ps(cq_fold512(a), cq_fold512(b)), _mm_hadd_ps(cq_fold512(c), cq_fold512(d)));
  _mm_storeu_ps(out, s);
}
#elif defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define CQ_SIMD "avx2"
#define VL 8
typedef __m256 vf;
typedef __m256i vi;
CQ_INLINE __m256i cq_mask8(int n) {
  static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
  return _mm256_loadu_si256((const __m256i *)(m + 8 - n));
}
CQ_INLINE vf vload(const float *p) { return _mm256_loadu_ps(p); }
CQ_INLINE void vstore(float *p, vf a) { _mm256_storeu_ps(p, a); }
CQ_INLINE vf vloadn(const float *p, int n) { return _mm256_maskload_ps(p, cq_mask8(n)); }
CQ_INLINE void vstoren(float *p, vf a, int n) { _mm256_maskstore_ps(p, cq_mask8(n), a); }
CQ_INLINE vf vset1(float x) { return _mm256_set1_ps(x); }
CQ_INLINE vf vzero(void) { return _mm256_setzero_ps(); }
CQ_INLINE vf vfma(vf a, vf b, vf c) { return _mm256_fmadd_ps(a, b, c); }
CQ_INLINE float vhsum(vf a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
CQ_INLINE vf vmax(vf a, vf b) { return _mm256_max_ps(a, b); }
CQ_INLINE float vhmax(vf a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
CQ_INLINE vi vcvt(vf a) { return _mm256_cvtps_epi32(a); }
CQ_INLINE vf vround(vf a) { return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC); }
CQ_INLINE vf vpow2i(vi n) { return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(n, _mm256_set1_epi32(127)), 23)); }
CQ_INLINE void vhsum4(float *out, vf a, vf b, vf c, vf d) {
  __m256 s = _mm256_hadd_ps(_mm256_hadd_ps(a, b), _mm256_hadd_ps(c, d));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1)));
}
#else
#define CQ_SIMD "generic"
#define VL 4
typedef float vf __attribute__((vector_size(16)));
typedef int32_t vi __attribute__((vector_size(16)));
CQ_INLINE vf vload(const float *p) { vf a; memcpy(&a, p, sizeof a); return a; }
CQ_INLINE void vstore(float *p, vf a) { memcpy(p, &a, sizeof a); }
CQ_INLINE vf vloadn(const float *p, int n) { vf a = {0, 0, 0, 0}; memcpy(&a, p, (size_t)n * 4); return a; }
CQ_INLINE void vstoren(float *p, vf a, int n) { memcpy(p, &a, (size_t)n * 4); }
CQ_INLINE vf vset1(float x) { return (vf){x, x, x, x}; }
CQ_INLINE vf vzero(void) { return (vf){0, 0, 0, 0}; }
CQ_INLINE vf vfma(vf a, vf b, vf c) { return a * b + c; }
CQ_INLINE float vhsum(vf a) { return (a[0] + a[1]) + (a[2] + a[3]); }
CQ_INLINE vf vmax(vf a, vf b) { return (vf){fmaxf(a[0], b[0]), fmaxf(a[1], b[1]), fmaxf(a[2], b[2]), fmaxf(a[3], b[3])}; }
CQ_INLINE float vhmax(vf a) { return fmaxf(fmaxf(a[0], a[1]), fmaxf(a[2], a[3])); }
CQ_INLINE vf vround(vf a) { return (vf){rintf(a[0]), rintf(a[1]), rintf(a[2]), rintf(a[3])}; }
CQ_INLINE vi vcvt(vf a) { return (vi){(int32_t)a[0], (int32_t)a[1], (int32_t)a[2], (int32_t)a[3]}; }
CQ_INLINE vf vpow2i(vi n) { vi b = (n + 127) << 23; vf r; memcpy(&r, &b, sizeof r); return r; }
CQ_INLINE void vhsum4(float *out, vf a, vf b, vf c, vf d) {
  out[0] = vhsum(a);
  out[1] = vhsum(b);
  out[2] = vhsum(c);
  out[3] = vhsum(d);
}
#endif

/* exp(x) for a vector: Cody–Waite range reduction x = n ln2 + r, a degree-6 polynomial for e^r, then 2^n.
 * Relative error ≈ 1e-7 (1–2 ulp); exp(−inf) = 0; inputs below −87 flush to 0 (softmax never needs them). */
CQ_INLINE vf vexp(vf x) {
  x = vmax(x, vset1(-87.0f));
  x = -vmax(-x, vset1(-88.0f)); /* min(x, 88) */
  vf n = vround(x * vset1(1.44269504088896341f));
  vf r = vfma(n, vset1(-0.693359375f), x);
  r = vfma(n, vset1(2.12194440e-4f), r);
  vf p = vset1(1.9875691500e-4f);
  p = vfma(p, r, vset1(1.3981999507e-3f));
  p = vfma(p, r, vset1(8.3334519073e-3f));
  p = vfma(p, r, vset1(4.1665795894e-2f));
  p = vfma(p, r, vset1(1.6666665459e-1f));
  p = vfma(p, r, vset1(5.0000001201e-1f));
  vf r2 = r * r;
  p = vfma(p, r2, r + vset1(1.0f));
  return p * vpow2i(vcvt(n));
}

#endif

/*
 * Node-API bindings: each JavaScript function checks its arguments (types, and that every buffer is long enough
 * for the dimensions it is given, so that a wrong call throws instead of corrupting memory), takes the data
 * pointers of the typed arrays (SharedArrayBuffer-backed or not; nothing is copied) and calls the C kernel.
 */
#include <node_api.h>
#include <stdio.h>
#include <stdlib.h>

#include "colloquy.h"

#define MAXARGS 20

typedef struct {
  napi_env env;
  napi_value argv[MAXARGS];
  size_t argc;
  const char *fn;
  int failed;
} Args;

static void fail(Args *a, const char *what, int i) {
  if (a->failed) return;
  char msg[256];
  snprintf(msg, sizeof msg, "colloquy native %s: argument %d: %s", a->fn, i, what);
  napi_throw_type_error(a->env, NULL, msg);
  a->failed = 1;
}

static int is_null(Args *a, int i) {
  napi_valuetype t;
  if (i >= (int)a->argc) return 1;
  napi_typeof(a->env, a->argv[i], &t);
  return t == napi_null || t == napi_undefined;
}

/* Typed array argument i of type `want` with at least `need` elements; NULL (no error) when nullable and null. */
static void *arr(Args *a, int i, napi_typedarray_type want, double need, int nullable) {
  if (a->failed) return NULL;
  if (is_null(a, i)) {
    if (!nullable) fail(a, "expected a typed array, got null", i);
    return NULL;
  }
  bool ok = false;
  napi_is_typedarray(a->env, a->argv[i], &ok);
  if (!ok) {
    fail(a, "expected a typed array", i);
    return NULL;
  }
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_get_typedarray_info(a->env, a->argv[i], &type, &length, &data, NULL, NULL);
  if (type != want) {
    fail(a, want == napi_float32_array ? "expected a Float32Array" : want == napi_float64_array ? "expected a Float64Array" : "expected an Int32Array", i);
    return NULL;
  }
  if ((double)length < need) {
    char msg[160];
    snprintf(msg, sizeof msg, "array of %zu elements, the dimensions need %.0f", length, need);
    fail(a, msg, i);
    return NULL;
  }
  return data;
}

static float *f32(Args *a, int i, double need) { return arr(a, i, napi_float32_array, need, 0); }
static float *f32n(Args *a, int i, double need) { return arr(a, i, napi_float32_array, need, 1); }

static double num(Args *a, int i) {
  double v = 0;
  if (a->failed) return 0;
  if (i >= (int)a->argc || napi_get_value_double(a->env, a->argv[i], &v) != napi_ok) fail(a, "expected a number", i);
  return v;
}

static int dim(Args *a, int i) {
  double v = num(a, i);
  if (!a->failed && (v < 0 || v > 2147483647.0 || v != (double)(long)v)) fail(a, "expected a non-negative integer", i);
  return (int)v;
}

static Args args(napi_env env, napi_callback_info info, const char *fn) {
  Args a = {env, {0}, MAXARGS, fn, 0};
  napi_get_cb_info(env, info, &a.argc, a.argv, NULL, NULL);
  return a;
}

static napi_value undef(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}

/* Largest element index + 1 that a strided (rows, cols) operand touches. */
static double extent(double off, int rows, int cols, double rs, double cs) {
  if (rows == 0 || cols == 0) return 0;
  return off + (rows - 1) * rs + (cols - 1) * cs + 1;
}

/* gemm(M, N, K, alpha, a, aOff, rsa, csa, b, bOff, rsb, csb, beta, c, cOff, rsc, csc) */
static napi_value js_gemm(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "gemm");
  int M = dim(&a, 0), N = dim(&a, 1), K = dim(&a, 2);
  float alpha = (float)num(&a, 3);
  double aoff = dim(&a, 5), rsa = dim(&a, 6), csa = dim(&a, 7);
  double boff = dim(&a, 9), rsb = dim(&a, 10), csb = dim(&a, 11);
  float beta = (float)num(&a, 12);
  double coff = dim(&a, 14), rsc = dim(&a, 15), csc = dim(&a, 16);
  float *A = f32(&a, 4, extent(aoff, M, K, rsa, csa));
  float *B = f32(&a, 8, extent(boff, K, N, rsb, csb));
  float *C = f32(&a, 13, extent(coff, M, N, rsc, csc));
  if (a.failed) return NULL;
  cq_sgemm(M, N, K, alpha, A + (long)aoff, (long)rsa, (long)csa, B + (long)boff, (long)rsb, (long)csb, beta,
           C + (long)coff, (long)rsc, (long)csc);
  return undef(env);
}

/* Checks rows (R, 3) = [start, len, x] against N tokens; returns R or −1. */
static int check_rows(Args *a, int i, int32_t **rows, int N) {
  size_t len = 0;
  if (a->failed) return -1;
  *rows = arr(a, i, napi_int32_array, 0, 0);
  if (a->failed) return -1;
  napi_get_typedarray_info(a->env, a->argv[i], NULL, &len, NULL, NULL, NULL);
  int R = (int)(len / 3);
  for (int r = 0; r < R; r++) {
    int32_t s = (*rows)[3 * r], l = (*rows)[3 * r + 1];
    if (s < 0 || l < 0 || (long)s + l > N) {
      fail(a, "row outside the packed batch", i);
      return -1;
    }
  }
  return R;
}

/* attentionForward(out, probs|null, q, k, v, rows (R,3) [start, len, probsOff], NH, KVH, HS) */
static napi_value js_attention_forward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "attentionForward");
  int NH = dim(&a, 6), KVH = dim(&a, 7), HS = dim(&a, 8);
  if (!a.failed && (KVH == 0 || NH % KVH != 0 || HS == 0)) fail(&a, "heads must be a multiple of kv heads", 6);
  float *q = f32(&a, 2, 0);
  size_t qlen = 0;
  if (!a.failed) napi_get_typedarray_info(env, a.argv[2], NULL, &qlen, NULL, NULL, NULL);
  int N = a.failed ? 0 : (int)(qlen / ((size_t)NH * HS));
  int32_t *rows = NULL;
  int R = check_rows(&a, 5, &rows, N);
  double probsNeed = 0;
  for (int r = 0; r < R; r++) {
    double e = rows[3 * r + 2] + (double)NH * rows[3 * r + 1] * rows[3 * r + 1];
    if (e > probsNeed) probsNeed = e;
  }
  float *out = f32(&a, 0, (double)N * NH * HS);
  float *probs = f32n(&a, 1, probsNeed);
  float *k = f32(&a, 3, (double)N * KVH * HS), *v = f32(&a, 4, (double)N * KVH * HS);
  if (a.failed) return NULL;
  cq_attention_forward(out, probs, q, k, v, rows, R, NH, KVH, HS);
  return undef(env);
}

/* attentionBackward(dq, dk, dv, dout, probs, q, k, v, rows, NH, KVH, HS) */
static napi_value js_attention_backward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "attentionBackward");
  int NH = dim(&a, 9), KVH = dim(&a, 10), HS = dim(&a, 11);
  if (!a.failed && (KVH == 0 || NH % KVH != 0 || HS == 0)) fail(&a, "heads must be a multiple of kv heads", 9);
  float *q = f32(&a, 5, 0);
  size_t qlen = 0;
  if (!a.failed) napi_get_typedarray_info(env, a.argv[5], NULL, &qlen, NULL, NULL, NULL);
  int N = a.failed ? 0 : (int)(qlen / ((size_t)NH * HS));
  int32_t *rows = NULL;
  int R = check_rows(&a, 8, &rows, N);
  double probsNeed = 0;
  for (int r = 0; r < R; r++) {
    double e = rows[3 * r + 2] + (double)NH * rows[3 * r + 1] * rows[3 * r + 1];
    if (e > probsNeed) probsNeed = e;
  }
  double nq = (double)N * NH * HS, nkv = (double)N * KVH * HS;
  float *dq = f32(&a, 0, nq), *dk = f32(&a, 1, nkv), *dv = f32(&a, 2, nkv), *dout = f32(&a, 3, nq);
  float *probs = f32(&a, 4, probsNeed), *k = f32(&a, 6, nkv), *v = f32(&a, 7, nkv);
  if (a.failed) return NULL;
  cq_attention_backward(dq, dk, dv, dout, probs, q, k, v, rows, R, NH, KVH, HS);
  return undef(env);
}

/* attentionCached(out, q, k, v, kCaches[], vCaches[], rows (R,3) [start, len, pos0], NH, KVH, HS) */
static napi_value js_attention_cached(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "attentionCached");
  int NH = dim(&a, 7), KVH = dim(&a, 8), HS = dim(&a, 9);
  if (!a.failed && (KVH == 0 || NH % KVH != 0 || HS == 0)) fail(&a, "heads must be a multiple of kv heads", 7);
  float *q = f32(&a, 1, 0);
  size_t qlen = 0;
  if (!a.failed) napi_get_typedarray_info(env, a.argv[1], NULL, &qlen, NULL, NULL, NULL);
  int N = a.failed ? 0 : (int)(qlen / ((size_t)NH * HS));
  int32_t *rows = NULL;
  int R = check_rows(&a, 6, &rows, N);
  float *out = f32(&a, 0, (double)N * NH * HS);
  float *k = f32(&a, 2, (double)N * KVH * HS), *v = f32(&a, 3, (double)N * KVH * HS);
  if (a.failed) return NULL;
  float **kc = calloc((size_t)R + 1, sizeof *kc), **vc = calloc((size_t)R + 1, sizeof *vc);
  for (int which = 0; which < 2 && !a.failed; which++) {
    napi_value list = a.argv[4 + which];
    bool isArray = false;
    napi_is_array(env, list, &isArray);
    uint32_t n = 0;
    if (isArray) napi_get_array_length(env, list, &n);
    if (!isArray || (int)n < R) {
      fail(&a, "expected an array with one cache buffer per row", 4 + which);
      break;
    }
    for (int r = 0; r < R && !a.failed; r++) {
      napi_value el;
      napi_get_element(env, list, (uint32_t)r, &el);
      Args one = {env, {el}, 1, a.fn, 0};
      float *p = f32(&one, 0, ((double)rows[3 * r + 2] + rows[3 * r + 1]) * KVH * HS);
      if (one.failed) a.failed = 1;
      (which ? vc : kc)[r] = p;
    }
  }
  if (!a.failed) cq_attention_cached(out, q, k, v, kc, vc, rows, R, NH, KVH, HS);
  free(kc);
  free(vc);
  return a.failed ? NULL : undef(env);
}

/* rmsnormForward(out, rstd|null, x, w, N, C, eps) */
static napi_value js_rmsnorm_forward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "rmsnormForward");
  int N = dim(&a, 4), C = dim(&a, 5);
  float eps = (float)num(&a, 6);
  double n = (double)N * C;
  float *out = f32(&a, 0, n), *rstd = f32n(&a, 1, N), *x = f32(&a, 2, n), *w = f32(&a, 3, C);
  if (a.failed) return NULL;
  cq_rmsnorm_forward(out, rstd, x, w, N, C, eps);
  return undef(env);
}

/* rmsnormBackward(dx, dw|null, dout, x, rstd, w, N, C) */
static napi_value js_rmsnorm_backward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "rmsnormBackward");
  int N = dim(&a, 6), C = dim(&a, 7);
  double n = (double)N * C;
  float *dx = f32(&a, 0, n), *dw = f32n(&a, 1, C), *dout = f32(&a, 2, n), *x = f32(&a, 3, n);
  float *rstd = f32(&a, 4, N), *w = f32(&a, 5, C);
  if (a.failed) return NULL;
  cq_rmsnorm_backward(dx, dw, dout, x, rstd, w, N, C);
  return undef(env);
}

/* rope(x, pos, N, H, HS, cos, sin, positions, style, direction) */
static napi_value js_rope(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "rope");
  int N = dim(&a, 2), H = dim(&a, 3), HS = dim(&a, 4), P = dim(&a, 7), style = dim(&a, 8);
  int direction = (int)num(&a, 9);
  float *x = f32(&a, 0, (double)N * H * HS);
  int32_t *pos = arr(&a, 1, napi_int32_array, N, 0);
  float *c = f32(&a, 5, (double)P * (HS / 2)), *s = f32(&a, 6, (double)P * (HS / 2));
  if (a.failed) return NULL;
  for (int i = 0; i < N; i++) {
    if (pos[i] < 0 || pos[i] >= P) {
      fail(&a, "position outside the rotary tables", 1);
      return NULL;
    }
  }
  cq_rope(x, pos, N, H, HS, c, s, style, direction);
  return undef(env);
}

/* swigluForward(h, gate, up, n) */
static napi_value js_swiglu_forward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "swigluForward");
  double n = dim(&a, 3);
  float *h = f32(&a, 0, n), *g = f32(&a, 1, n), *u = f32(&a, 2, n);
  if (a.failed) return NULL;
  cq_swiglu_forward(h, g, u, (long)n);
  return undef(env);
}

/* swigluBackward(dgate, dup, dh, gate, up, n) */
static napi_value js_swiglu_backward(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "swigluBackward");
  double n = dim(&a, 5);
  float *dg = f32(&a, 0, n), *du = f32(&a, 1, n), *dh = f32(&a, 2, n), *g = f32(&a, 3, n), *u = f32(&a, 4, n);
  if (a.failed) return NULL;
  cq_swiglu_backward(dg, du, dh, g, u, (long)n);
  return undef(env);
}

/* softmaxXent(logits, logprob, entropy, targets, w|null, e|null, n, V, grad) */
static napi_value js_softmax_xent(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "softmaxXent");
  int n = dim(&a, 6), V = dim(&a, 7);
  bool grad = false;
  if (!a.failed) napi_get_value_bool(env, a.argv[8], &grad);
  float *logits = f32(&a, 0, (double)n * V);
  double *lp = arr(&a, 1, napi_float64_array, n, 0), *ent = arr(&a, 2, napi_float64_array, n, 0);
  int32_t *targets = arr(&a, 3, napi_int32_array, n, 0);
  double *w = arr(&a, 4, napi_float64_array, n, 1), *e = arr(&a, 5, napi_float64_array, n, 1);
  if (a.failed) return NULL;
  for (int i = 0; i < n; i++) {
    if (targets[i] >= V) {
      fail(&a, "target outside the vocabulary", 3);
      return NULL;
    }
  }
  cq_softmax_xent(logits, lp, ent, targets, w, e, n, V, grad);
  return undef(env);
}

/* sampleRows(logits, n, V, temperature, u, ids, logprobs) */
static napi_value js_sample_rows(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "sampleRows");
  int n = dim(&a, 1), V = dim(&a, 2);
  float *logits = f32(&a, 0, (double)n * V);
  double *t = arr(&a, 3, napi_float64_array, n, 0), *u = arr(&a, 4, napi_float64_array, n, 0);
  int32_t *ids = arr(&a, 5, napi_int32_array, n, 0);
  double *lp = arr(&a, 6, napi_float64_array, n, 0);
  if (!a.failed && V == 0 && n > 0) fail(&a, "an empty vocabulary", 2);
  for (int i = 0; i < n && !a.failed; i++)
    if (!(t[i] > 0)) fail(&a, "temperatures must be positive", 3);
  if (a.failed) return NULL;
  cq_sample_rows(logits, n, V, t, u, ids, lp);
  return undef(env);
}

/* adamw(p, g, m, v, n, lr, beta1, beta2, eps, wd, stepSize, sqrtBc2) */
static napi_value js_adamw(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "adamw");
  double n = dim(&a, 4);
  float *p = f32(&a, 0, n), *g = f32(&a, 1, n), *m = f32(&a, 2, n), *v = f32(&a, 3, n);
  double lr = num(&a, 5), b1 = num(&a, 6), b2 = num(&a, 7), eps = num(&a, 8), wd = num(&a, 9);
  double ss = num(&a, 10), sb = num(&a, 11);
  if (a.failed) return NULL;
  cq_adamw(p, g, m, v, (long)n, lr, b1, b2, eps, wd, ss, sb);
  return undef(env);
}

static int32_t *row_index(Args *a, int i, int n, int rows) {
  int32_t *idx = arr(a, i, napi_int32_array, n, 0);
  if (a->failed) return NULL;
  for (int j = 0; j < n; j++) {
    if (idx[j] < 0 || idx[j] >= rows) {
      fail(a, "row index out of range", i);
      return NULL;
    }
  }
  return idx;
}

static int rows_of(Args *a, int i, int C) {
  size_t len = 0;
  if (a->failed || C == 0) return 0;
  napi_get_typedarray_info(a->env, a->argv[i], NULL, &len, NULL, NULL, NULL);
  return (int)(len / (size_t)C);
}

/* gatherRows(out, src, idx, n, C): out row i = src row idx[i] */
static napi_value js_gather_rows(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "gatherRows");
  int n = dim(&a, 3), C = dim(&a, 4);
  float *out = f32(&a, 0, (double)n * C), *src = f32(&a, 1, 0);
  int32_t *idx = row_index(&a, 2, n, rows_of(&a, 1, C));
  if (a.failed) return NULL;
  cq_gather_rows(out, src, idx, n, C);
  return undef(env);
}

/* scatterAddRows(dst, src, idx, n, C): dst row idx[i] += src row i */
static napi_value js_scatter_add_rows(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "scatterAddRows");
  int n = dim(&a, 3), C = dim(&a, 4);
  float *dst = f32(&a, 0, 0), *src = f32(&a, 1, (double)n * C);
  int32_t *idx = row_index(&a, 2, n, rows_of(&a, 0, C));
  if (a.failed) return NULL;
  cq_scatter_add_rows(dst, src, idx, n, C);
  return undef(env);
}

static napi_value js_threads(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "threads");
  if (a.argc > 0 && !is_null(&a, 0)) cq_set_threads((int)num(&a, 0));
  if (a.failed) return NULL;
  napi_value r;
  napi_create_int32(env, cq_threads(), &r);
  return r;
}

static napi_value js_simd(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value r;
  napi_create_string_utf8(env, cq_simd_name(), NAPI_AUTO_LENGTH, &r);
  return r;
}

/* fmaPeak(threads, seconds): flop/s of an FMA loop in registers */
static napi_value js_fma_peak(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "fmaPeak");
  int t = dim(&a, 0);
  double s = num(&a, 1);
  if (a.failed) return NULL;
  napi_value r;
  napi_create_double(env, cq_fma_peak(t > 0 ? t : 1, s), &r);
  return r;
}

/* alignOffset(view): bytes from the view's first element to the next 64-byte boundary (0 when aligned) */
static napi_value js_align_offset(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "alignOffset");
  void *data = NULL;
  bool ok = false;
  if (a.argc > 0) napi_is_typedarray(env, a.argv[0], &ok);
  if (!ok) {
    fail(&a, "expected a typed array", 0);
    return NULL;
  }
  napi_get_typedarray_info(env, a.argv[0], NULL, NULL, &data, NULL, NULL);
  napi_value r;
  napi_create_int32(env, (int32_t)((64 - (uintptr_t)data % 64) % 64), &r);
  return r;
}

/* clockHz(seconds): the core clock, measured */
static napi_value js_clock_hz(napi_env env, napi_callback_info info) {
  Args a = args(env, info, "clockHz");
  double s = num(&a, 0);
  if (a.failed) return NULL;
  napi_value r;
  napi_create_double(env, cq_clock_hz(s), &r);
  return r;
}

NAPI_MODULE_INIT() {
  static const struct {
    const char *name;
    napi_callback fn;
  } table[] = {
      {"gemm", js_gemm},
      {"attentionForward", js_attention_forward},
      {"attentionBackward", js_attention_backward},
      {"attentionCached", js_attention_cached},
      {"rmsnormForward", js_rmsnorm_forward},
      {"rmsnormBackward", js_rmsnorm_backward},
      {"rope", js_rope},
      {"swigluForward", js_swiglu_forward},
      {"swigluBackward", js_swiglu_backward},
      {"softmaxXent", js_softmax_xent},
      {"sampleRows", js_sample_rows},
      {"adamw", js_adamw},
      {"gatherRows", js_gather_rows},
      {"scatterAddRows", js_scatter_add_rows},
      {"threads", js_threads},
      {"simd", js_simd},
      {"fmaPeak", js_fma_peak},
      {"clockHz", js_clock_hz},
      {"alignOffset", js_align_offset},
  };
  for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
    napi_value f;
    napi_create_function(env, table[i].name, NAPI_AUTO_LENGTH, table[i].fn, NULL, &f);
    napi_set_named_property(env, exports, table[i].name, f);
  }
  return exports;
}

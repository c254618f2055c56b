/*
 * Probes of the machine, for the benchmark's peak: the core clock (a chain of dependent adds retires one per
 * cycle) and the throughput of independent FMAs in registers. Both report their best burst: on a shared machine a
 * burst can only lose time to other processes, never gain it.
 */
#include "colloquy.h"
#include "simd.h"

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
  double seconds, flops;
  float sink;
} Probe;

/* 12 independent FMA chains in bursts of ~1 ms for about `seconds`; records the best burst's operations per second
 * (a burst that lost the core to another process only runs slower, so the fastest one is the machine's rate). */
static void *probe_main(void *arg) {
  Probe *p = arg;
  vf a[12];
  for (int i = 0; i < 12; i++) a[i] = vset1(1.0f + i);
  vf m = vset1(0.999999f), s = vset1(1e-7f);
  double start = now_s(), best = 0;
  while (now_s() - start < p->seconds) {
    double t0 = now_s();
    for (int rep = 0; rep < 20000; rep++) {
#pragma GCC unroll 12
      for (int i = 0; i < 12; i++) a[i] = vfma(a[i], m, s);
    }
    double rate = 20000.0 * 12 * VL * 2 / (now_s() - t0);
    if (rate > best) best = rate;
  }
  vf r = vzero();
  for (int i = 0; i < 12; i++) r = r + a[i];
  p->sink = vhsum(r);
  p->flops = best;
  return NULL;
}

/* Sum over `threads` threads running the FMA loop at once (its own threads, not the pool's). */
double cq_fma_peak(int threads, double seconds) {
  Probe probes[64];
  pthread_t tids[64];
  if (threads > 64) threads = 64;
  for (int i = 0; i < threads; i++) probes[i] = (Probe){seconds, 0, 0};
  int started = 0;
  for (int i = 1; i < threads; i++) started += pthread_create(&tids[i], NULL, probe_main, &probes[i]) == 0;
  probe_main(&probes[0]);
  double total = probes[0].flops;
  for (int i = 1; i <= started; i++) {
    pthread_join(tids[i], NULL);
    total += probes[i].flops;
  }
  return total;
}

/* Core clock in Hz, measured: a chain of dependent integer adds retires one per cycle (x86-64; elsewhere 0).
 * Best of ~0.2 ms bursts for about `seconds`, so that time slices lost to other processes do not count. */
double cq_clock_hz(double seconds) {
#if defined(__x86_64__)
  uint64_t x = 0;
  double start = now_s(), best = 0;
  while (now_s() - start < seconds) {
    double t0 = now_s();
    for (int i = 0; i < 2000; i++) {
      __asm__ volatile(
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          : "+r"(x));
    }
    double rate = 2000.0 * 20 / (now_s() - t0);
    if (rate > best) best = rate;
  }
  return best + (x == 1 ? 1 : 0);
#else
  (void)seconds;
  return 0;
#endif
}

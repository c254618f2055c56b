/*
 * A small thread pool built for a machine that may be shared. `cq_parallel(n, fn, ctx)` runs fn(ctx, i) for every
 * chunk i < n on the calling thread and on the pool's workers; chunks are claimed one at a time from a shared
 * counter. The caller never waits for a worker that has not claimed a chunk: when another process holds the second
 * core, the caller simply does all the chunks itself (the job then runs at one-thread speed, instead of stalling at
 * a barrier until the worker's next time slice, as fork/join runtimes do).
 *
 * Job state is one 64-bit word, (generation << 32) | next chunk, so that a worker that wakes up late can never
 * claim a chunk of a newer job with the function of an older one. Workers spin briefly after a job (the next one
 * usually follows within microseconds), then sleep on a condition variable (COLLOQUY_SPIN_US, default 200). Every
 * wait longer than 20 µs yields the core, so that on a busy machine a waiting thread does not take time from the
 * one it waits for.
 */
#include "colloquy.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ volatile("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#define MAX_WORKERS 63
#define YIELD_AFTER_NS 20000 /* a wait longer than this yields the core: on a busy machine the thread being waited
                                for may be the one that needs it */

static struct {
  _Atomic uint64_t state; /* (generation << 32) | next chunk */
  _Atomic(cq_task) fn;
  _Atomic(void *) ctx;
  _Atomic int n;
  _Atomic int done; /* chunks finished in the current job */
  _Atomic int sleepers;
  pthread_mutex_t lock; /* guards sleeping */
  pthread_cond_t wake;
  pthread_mutex_t busy; /* one caller at a time uses the pool */
  int workers;          /* started */
  long spin_ns;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER, .busy = PTHREAD_MUTEX_INITIALIZER};

static _Thread_local int in_pool_job; /* a chunk that calls cq_parallel runs the inner job inline */
static pthread_once_t started = PTHREAD_ONCE_INIT;

static long now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Claims and runs chunks of generation `gen` until none are left. */
static void run_chunks(uint32_t gen, cq_task fn, void *ctx, int n) {
  uint64_t s = atomic_load_explicit(&pool.state, memory_order_acquire);
  for (;;) {
    if ((uint32_t)(s >> 32) != gen || (int)(uint32_t)s >= n) return;
    if (!atomic_compare_exchange_weak_explicit(&pool.state, &s, s + 1, memory_order_acq_rel, memory_order_acquire)) continue;
    fn(ctx, (int)(uint32_t)s);
    atomic_fetch_add_explicit(&pool.done, 1, memory_order_release);
    s = atomic_load_explicit(&pool.state, memory_order_acquire);
  }
}

static void *worker_main(void *arg) {
  (void)arg;
  in_pool_job = 1;
  uint32_t seen = 0;
  for (;;) {
    /* wait for a generation we have not seen: spin, then sleep */
    uint64_t s = atomic_load_explicit(&pool.state, memory_order_acquire);
    long deadline = 0;
    int spins = 0;
    while ((uint32_t)(s >> 32) == seen) {
      CPU_RELAX();
      if (++spins < 256) {
        s = atomic_load_explicit(&pool.state, memory_order_acquire);
        continue;
      }
      spins = 0;
      long t = now_ns();
      if (!deadline) deadline = t + pool.spin_ns;
      if (t > deadline - pool.spin_ns + YIELD_AFTER_NS) sched_yield();
      if (t > deadline) {
        pthread_mutex_lock(&pool.lock);
        atomic_fetch_add(&pool.sleepers, 1);
        while ((uint32_t)(atomic_load(&pool.state) >> 32) == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        atomic_fetch_sub(&pool.sleepers, 1);
        pthread_mutex_unlock(&pool.lock);
        deadline = 0;
      }
      s = atomic_load_explicit(&pool.state, memory_order_acquire);
    }
    seen = (uint32_t)(s >> 32);
    /* fn, ctx, n were written before the state that carries this generation (release/acquire) */
    cq_task fn = atomic_load_explicit(&pool.fn, memory_order_relaxed);
    void *ctx = atomic_load_explicit(&pool.ctx, memory_order_relaxed);
    int n = atomic_load_explicit(&pool.n, memory_order_relaxed);
    run_chunks(seen, fn, ctx, n);
  }
  return NULL;
}

static void start_workers(void) {
  const char *spin = getenv("COLLOQUY_SPIN_US");
  pool.spin_ns = (spin && atol(spin) >= 0 ? atol(spin) : 200) * 1000L;
  int want = cq_threads() - 1;
  if (want > MAX_WORKERS) want = MAX_WORKERS;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 8 << 20);
  for (int i = 0; i < want; i++) {
    pthread_t t;
    if (pthread_create(&t, &attr, worker_main, NULL) != 0) break;
    pool.workers++;
  }
  pthread_attr_destroy(&attr);
}

int cq_parallel_width(void) {
  pthread_once(&started, start_workers);
  int t = cq_threads();
  return t < pool.workers + 1 ? t : pool.workers + 1;
}

void cq_parallel(int n, cq_task fn, void *ctx) {
  if (n <= 0) return;
  if (n == 1 || in_pool_job || cq_parallel_width() <= 1 || pthread_mutex_trylock(&pool.busy) != 0) {
    for (int i = 0; i < n; i++) fn(ctx, i);
    return;
  }
  in_pool_job = 1;
  atomic_store_explicit(&pool.fn, fn, memory_order_relaxed);
  atomic_store_explicit(&pool.ctx, ctx, memory_order_relaxed);
  atomic_store_explicit(&pool.n, n, memory_order_relaxed);
  atomic_store_explicit(&pool.done, 0, memory_order_relaxed);
  uint64_t s = atomic_load_explicit(&pool.state, memory_order_relaxed);
  uint32_t gen = (uint32_t)(s >> 32) + 1;
  atomic_store_explicit(&pool.state, (uint64_t)gen << 32, memory_order_seq_cst);
  if (atomic_load_explicit(&pool.sleepers, memory_order_seq_cst) > 0) {
    pthread_mutex_lock(&pool.lock);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
  }
  run_chunks(gen, fn, ctx, n);
  /* every chunk is claimed; wait only for those still running on a worker */
  long since = 0;
  for (int spins = 0; atomic_load_explicit(&pool.done, memory_order_acquire) < n; spins++) {
    CPU_RELAX();
    if ((spins & 255) == 255) {
      long t = now_ns();
      if (!since) since = t;
      else if (t - since > YIELD_AFTER_NS) sched_yield();
    }
  }
  in_pool_job = 0;
  pthread_mutex_unlock(&pool.busy);
}

/* How many threads the kernels use, and which instruction set was compiled in. */
#include "colloquy.h"
#include "simd.h"

#include <stdlib.h>
#include <unistd.h>

static int threads_override = 0;

static int default_threads(void) {
  const char *env = getenv("COLLOQUY_THREADS");
  if (env && atoi(env) > 0) return atoi(env);
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (int)n : 1;
}

int cq_threads(void) {
  static int cached = 0;
  if (threads_override > 0) return threads_override;
  if (!cached) cached = default_threads();
  return cached;
}

void cq_set_threads(int n) { threads_override = n > 0 ? n : 0; }

const char *cq_simd_name(void) { return CQ_SIMD; }

/* One thread-count setting for OpenMP loops and OpenBLAS together. */
#include <omp.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <cblas.h>

#include "tensor-impl.h"

static atomic_int num_threads; /* 0 = not decided yet */

static int default_threads(void)
{
    const char *s = getenv("WK_NUM_THREADS");
    int n = s ? atoi(s) : 0;
    return n > 0 ? n : omp_get_num_procs();
}

void wk_set_num_threads(int n)
{
    if (n <= 0) n = default_threads();
    atomic_store(&num_threads, n);
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int wk_get_num_threads(void)
{
    int n = atomic_load(&num_threads);
    if (!n) {
        wk_set_num_threads(0);
        n = atomic_load(&num_threads);
    }
    return n;
}

int wki_threads_for(int64_t work, int64_t grain)
{
    if (omp_in_parallel()) return 1;
    int n = wk_get_num_threads();
    int64_t by_work = grain > 0 ? work / grain : n;
    if (by_work < 1) by_work = 1;
    return by_work < n ? (int)by_work : n;
}

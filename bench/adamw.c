/* bench/adamw: the fused AdamW update of 10M float32 parameters, in GB/s next to memcpy.
 *   bytes per update: p, g, m, v read + p, m, v written = 7 * 4 bytes per parameter
 *   memcpy: 4 bytes read + 4 written per element (single-threaded libc memcpy), and the
 *   same copy split across the threads (the bandwidth the update can hope for)
 * Medians of repeated runs; run it with the thread count you want to report:
 *   WK_NUM_THREADS=2 build/bench/bench_adamw [nparams] */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wick.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#define REPS 21

typedef struct {
    wk_optimizer *opt;
    float *src, *dst;
    int64_t n;
    int threads;
} ctx_t;

static void run_step(ctx_t *c)
{
    if (wk_optimizer_step(c->opt) < 0) {
        fprintf(stderr, "step: %s\n", wk_last_error());
        exit(1);
    }
}

static void run_memcpy(ctx_t *c) { memcpy(c->dst, c->src, (size_t)c->n * sizeof(float)); }

static void run_par_copy(ctx_t *c)
{
    int64_t n = c->n;
#pragma omp parallel num_threads(c->threads)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t lo = n * t / T, hi = n * (t + 1) / T;
        memcpy(c->dst + lo, c->src + lo, (size_t)(hi - lo) * sizeof(float));
    }
}

/* Median seconds of REPS calls after two warm-up calls. */
static double median_time(void (*fn)(ctx_t *), ctx_t *c)
{
    double t[REPS];
    fn(c);
    fn(c);
    for (int i = 0; i < REPS; i++) {
        double t0 = now();
        fn(c);
        t[i] = now() - t0;
    }
    qsort(t, REPS, sizeof t[0], cmp_double);
    return t[REPS / 2];
}

int main(int argc, char **argv)
{
    int64_t n = argc > 1 ? atoll(argv[1]) : 10 * 1000 * 1000;
    int threads = wk_get_num_threads();
    wk_manual_seed(1);
    wk_tensor *p = wk_randn((const int64_t[]){n}, 1, WK_DTYPE_F32, NULL);
    wk_requires_grad_(p, true);
    p->grad = wk_randn((const int64_t[]){n}, 1, WK_DTYPE_F32, NULL);
    wk_optimizer *opt = wk_adamw_new(&p, 1, WK_HPARAMS({"lr", 1e-3}, {"weight_decay", 0.1}));
    if (!opt) {
        fprintf(stderr, "%s\n", wk_last_error());
        return 1;
    }
    ctx_t c = {opt, malloc((size_t)n * 4), malloc((size_t)n * 4), n, threads};
    memset(c.src, 1, (size_t)n * 4);
    memset(c.dst, 0, (size_t)n * 4);

    double ts = median_time(run_step, &c);
    double tm = median_time(run_memcpy, &c);
    double tp = median_time(run_par_copy, &c);
    double bytes = 7.0 * 4.0 * (double)n, copy_bytes = 2.0 * 4.0 * (double)n;
    printf("AdamW update, %lld float32 parameters, %d threads (medians of %d)\n", (long long)n,
           threads, REPS);
    printf("  adamw step        %8.2f ms  %6.2f GB/s  (%.0f MB touched)\n", ts * 1e3,
           bytes / ts * 1e-9, bytes * 1e-6);
    printf("  memcpy (1 thread) %8.2f ms  %6.2f GB/s  (%.0f MB read + written)\n", tm * 1e3,
           copy_bytes / tm * 1e-9, copy_bytes * 1e-6);
    printf("  copy (%d threads)  %8.2f ms  %6.2f GB/s\n", threads, tp * 1e3,
           copy_bytes / tp * 1e-9);
    printf("  adamw / parallel copy bandwidth: %.2f\n", (bytes / ts) / (copy_bytes / tp));
    wk_optimizer_free(opt);
    wk_tensor_free(p);
    free(c.src);
    free(c.dst);
    return 0;
}

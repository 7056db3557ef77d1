/* bench/ops: speed of the tensor runtime's key ops next to their ceilings.
 *   matmul n x n x n (f32) against raw cblas_sgemm on the same buffers, in GFLOP/s
 *   linear forward 512x784 -> 500 with bias, in GFLOP/s and us
 *   element-wise add, sum, softmax (rows of 1000) in GB/s next to memcpy bandwidth
 * Medians of repeated runs; run it with the thread count you want to report:
 *   WK_NUM_THREADS=2 build/bench/bench_ops */
#include <cblas.h>
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

/* Median seconds of `reps` calls of fn(ctx) after one warm-up call. */
static double median_time(void (*fn)(void *), void *ctx, int reps)
{
    double t[64];
    if (reps > 64) reps = 64;
    fn(ctx);
    for (int i = 0; i < reps; i++) {
        double t0 = now();
        fn(ctx);
        t[i] = now() - t0;
    }
    qsort(t, (size_t)reps, sizeof t[0], cmp_double);
    return t[reps / 2];
}

static int reps_for(double flops_or_bytes, double per_second)
{
    double est = flops_or_bytes / per_second;
    int r = (int)(0.5 / (est > 1e-6 ? est : 1e-6));
    return r < 5 ? 5 : r > 64 ? 64 : r;
}

typedef struct {
    wk_tensor *a, *b, *c;
    wk_tensor *(*op)(wk_tensor *, wk_tensor *);
    wk_tensor *(*unary_dim)(wk_tensor *, int);
    int n;
} ctx_t;

static void run_sgemm(void *p)
{
    ctx_t *c = p;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c->n, c->n, c->n, 1.0f,
                wk_data(c->a), c->n, wk_data(c->b), c->n, 0.0f, wk_data(c->c), c->n);
}

static void run_binary(void *p)
{
    ctx_t *c = p;
    wk_frame_begin();
    if (!c->op(c->a, c->b)) fprintf(stderr, "bench: %s\n", wk_last_error());
    wk_frame_end();
}

static wk_tensor *linear_op(wk_tensor *x, wk_tensor *w);
static wk_tensor *linear_bias;
static wk_tensor *linear_op(wk_tensor *x, wk_tensor *w) { return wk_linear(x, w, linear_bias); }
static wk_tensor *sum_op(wk_tensor *x, wk_tensor *unused)
{
    (void)unused;
    return wk_sum(x, WK_ALL_DIMS, false);
}
static wk_tensor *softmax_op(wk_tensor *x, wk_tensor *unused)
{
    (void)unused;
    return wk_softmax(x, -1);
}

static void run_memcpy(void *p)
{
    ctx_t *c = p;
    memcpy(wk_data(c->c), wk_data(c->a), (size_t)wk_numel(c->a) * 4);
}

int main(void)
{
    wk_generator g = wk_generator_make(0);
    printf("bench/ops: threads=%d\n", wk_get_num_threads());
    printf("%-26s %12s %12s %8s\n", "matmul (f32, square)", "wick GF/s", "sgemm GF/s", "ratio");
    for (int n = 256; n <= 2048; n *= 2) {
        ctx_t c = {.n = n, .op = wk_matmul};
        c.a = wk_randn(WK_SHAPE(n, n), WK_DTYPE_F32, &g);
        c.b = wk_randn(WK_SHAPE(n, n), WK_DTYPE_F32, &g);
        c.c = wk_empty(WK_SHAPE(n, n), WK_DTYPE_F32);
        double flops = 2.0 * n * n * n;
        int reps = reps_for(flops, 1e11);
        /* Interleave the two measurements so that machine noise hits both alike. */
        double tw = median_time(run_binary, &c, reps), tb = median_time(run_sgemm, &c, reps);
        double tw2 = median_time(run_binary, &c, reps), tb2 = median_time(run_sgemm, &c, reps);
        tw = tw < tw2 ? tw : tw2;
        tb = tb < tb2 ? tb : tb2;
        printf("n=%-24d %12.1f %12.1f %8.3f\n", n, flops / tw * 1e-9, flops / tb * 1e-9, tb / tw);
        wk_tensor_free(c.a), wk_tensor_free(c.b), wk_tensor_free(c.c);
    }

    {
        ctx_t c = {.op = linear_op};
        c.a = wk_randn(WK_SHAPE(512, 784), WK_DTYPE_F32, &g);
        c.b = wk_randn(WK_SHAPE(500, 784), WK_DTYPE_F32, &g);
        linear_bias = wk_randn(WK_SHAPE(500), WK_DTYPE_F32, &g);
        double flops = 2.0 * 512 * 784 * 500;
        double t = median_time(run_binary, &c, 40);
        printf("linear 512x784->500 + bias: %.1f GFLOP/s, %.1f us\n", flops / t * 1e-9, t * 1e6);
        wk_tensor_free(c.a), wk_tensor_free(c.b), wk_tensor_free(linear_bias);
    }

    const int64_t N = 1 << 24; /* 64 MB of f32 per operand: beyond the caches */
    ctx_t m = {0};
    m.a = wk_randn(WK_SHAPE(N), WK_DTYPE_F32, &g);
    m.b = wk_randn(WK_SHAPE(N), WK_DTYPE_F32, &g);
    m.c = wk_empty(WK_SHAPE(N), WK_DTYPE_F32);
    double bytes = (double)N * 4;
    double tm = median_time(run_memcpy, &m, 10);
    printf("%-26s %12s %12s\n", "memory-bound (f32, 16M)", "GB/s", "memcpy GB/s");
    printf("%-26s %12.1f %12.1f\n", "memcpy (read+write)", 2 * bytes / tm * 1e-9, 2 * bytes / tm * 1e-9);
    m.op = wk_add;
    double ta = median_time(run_binary, &m, 10);
    printf("%-26s %12.1f %12.1f\n", "add (2 reads + 1 write)", 3 * bytes / ta * 1e-9, 2 * bytes / tm * 1e-9);
    m.op = sum_op;
    double ts = median_time(run_binary, &m, 10);
    printf("%-26s %12.1f %12.1f\n", "sum (1 read)", bytes / ts * 1e-9, 2 * bytes / tm * 1e-9);
    wk_tensor *saved = m.a;
    m.a = wk_randn(WK_SHAPE(16384, 1000), WK_DTYPE_F32, &g); /* rows of 1000 */
    m.op = softmax_op;
    double tsm = median_time(run_binary, &m, 10);
    double sbytes = (double)wk_numel(m.a) * 4;
    printf("%-26s %12.1f %12.1f\n", "softmax rows of 1000", 2 * sbytes / tsm * 1e-9, 2 * bytes / tm * 1e-9);
    wk_tensor_free(m.a), wk_tensor_free(saved);
    wk_tensor_free(m.b), wk_tensor_free(m.c);
    return 0;
}

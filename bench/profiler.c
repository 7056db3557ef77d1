/* bench/profiler: what the profiler costs on a training step, and what it shows.
 *
 * The Fashion-MNIST CNN of bench/models (Conv3x3 1->8 p1 + ReLU, MaxPool 2, Conv3x3
 * 8->16 p1 + ReLU, MaxPool 2, flatten 784 -> Linear 10; batch 500, AdamW), trained from
 * /usr/share/datasets/fashion-mnist through the loader (one prefetch thread), each step in
 * phases data / forward / backward / optimizer / hooks.
 *   1. The hook alone: ns per call of a function with the front-end hook, profiler off,
 *      against the same function without it (a microbenchmark of the branch).
 *   2. Step time with the profiler compiled in but off, and on (recording every step),
 *      in alternating blocks; medians and the overhead in percent. The off overhead is
 *      also estimated as (hook ns x spans per step) / step time.
 *   3. The summary table of one epoch (120 steps) with the profiler on.
 * Build a second tree with -Dc_args=-DWK_PROFILER_DISABLE to time the step without any
 * hook (`off` there is the no-hook baseline; `on` there records the phases only).
 *   ./bench_profiler [threads=2] [blocks=4] [steps per block=10] [epoch steps=120]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tensor/profiler-impl.h"
#include "wick.h"

#define DATA "/usr/share/datasets/fashion-mnist"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* ---- 1. the hook ---- */

/* The same body with and without the hook; the asm keeps the load of t->ndim alive. */
__attribute__((noinline)) static void plain(const wk_tensor *t)
{
    __asm__ volatile("" ::"r"(t->ndim));
}

__attribute__((noinline)) static void hooked(const wk_tensor *t)
{
    WKI_PROF_OP("bench_hook", t);
    __asm__ volatile("" ::"r"(t->ndim));
}

static double ns_per_call(void (*fn)(const wk_tensor *), const wk_tensor *t, int64_t n)
{
    double t0 = now();
    for (int64_t i = 0; i < n; i++)
        fn(t);
    return (now() - t0) / (double)n * 1e9;
}

/* Best of 11 alternating rounds of each (the machine is shared: the minimum is the cost). */
static void hook_cost(const wk_tensor *t, int64_t n, double *ns_plain, double *ns_hook)
{
    *ns_plain = *ns_hook = 1e30;
    for (int r = 0; r < 11; r++) {
        double a = ns_per_call(plain, t, n), b = ns_per_call(hooked, t, n);
        if (a < *ns_plain) *ns_plain = a;
        if (b < *ns_hook) *ns_hook = b;
    }
}

/* ---- 2, 3. the CNN ---- */

typedef struct {
    wk_module *net;
    wk_optimizer *opt;
    wk_dataset *ds;
    wk_loader *loader;
    int64_t epoch;
} cnn;

static int cnn_make(cnn *c)
{
    wk_generator g = wk_generator_make(1337);
    const wk_conv2d_opts p1 = {.padding = {1, 1}};
    const wk_pool2d_opts mp = {.kernel = {2, 2}};
    c->net = wk_sequential_of(
        (wk_module *[]){wk_conv2d_new(1, 8, 3, 3, &p1, true, &g), wk_relu_new(),
                        wk_max_pool2d_new(&mp), wk_conv2d_new(8, 16, 3, 3, &p1, true, &g),
                        wk_relu_new(), wk_max_pool2d_new(&mp), wk_flatten_new(1, -1),
                        wk_linear_new(784, 10, true, &g)},
        8);
    if (!c->net) return -1;
    wk_named_param np[16];
    wk_tensor *params[16];
    int n = wk_module_named_parameters(c->net, false, np, 16);
    for (int i = 0; i < n; i++)
        params[i] = np[i].tensor;
    c->opt = wk_adamw_new(params, n, WK_HPARAMS({"lr", 1e-3}));
    c->ds = wk_mnist_new(DATA, true, &(wk_mnist_opts){.mean = 0.2860, .std = 0.3530});
    if (!c->opt || !c->ds) return -1;
    c->loader = wk_loader_new(c->ds, &(wk_loader_opts){.batch_size = 500, .shuffle = true,
                                                        .seed = 1, .prefetch = 1});
    return c->loader ? 0 : -1;
}

static void cnn_free(cnn *c)
{
    wk_loader_free(c->loader);
    wk_dataset_free(c->ds);
    wk_optimizer_free(c->opt);
    wk_module_free(c->net);
}

/* One training step; seconds, or -1 on error. */
static double cnn_step(cnn *c)
{
    double t0 = now();
    wk_profiler_phase_begin("data");
    wk_frame_begin();
    wk_batch b = {0};
    int got = wk_loader_next(c->loader, &b);
    if (got == 0) { /* the epoch is over: the next one */
        wk_loader_set_epoch(c->loader, ++c->epoch);
        got = wk_loader_next(c->loader, &b);
    }
    wk_profiler_phase_end();
    if (got != 1) {
        wk_frame_end();
        return -1;
    }
    wk_profiler_phase_begin("forward");
    wk_tensor *loss = wk_cross_entropy(wk_module_forward(c->net, wk_batch_get(&b, "inputs")),
                                       wk_batch_get(&b, "labels"), NULL);
    wk_profiler_phase_end();
    wk_profiler_phase_begin("backward");
    int rc = loss ? wk_backward(loss) : -1;
    wk_profiler_phase_end();
    wk_profiler_phase_begin("optimizer");
    if (!rc) rc = wk_optimizer_step(c->opt);
    wk_optimizer_zero_grad(c->opt);
    wk_profiler_phase_end();
    wk_profiler_phase_begin("hooks");
    wk_frame_end();
    wk_profiler_phase_end();
    return rc ? -1 : now() - t0;
}

static wk_profiler_options record_all(const char *dir, FILE *table)
{
    wk_profiler_options o = wk_profiler_options_default();
    o.dir = dir;
    o.schedule = (wk_profiler_schedule){0};
    o.table_out = table;
    return o;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    int blocks = argc > 2 ? atoi(argv[2]) : 4;
    int per_block = argc > 3 ? atoi(argv[3]) : 10;
    int epoch_steps = argc > 4 ? atoi(argv[4]) : 120;
    if (blocks < 1 || blocks > 64 || per_block < 1 || per_block > 100) {
        fprintf(stderr, "bench_profiler: blocks 1..64, steps per block 1..100\n");
        return 2;
    }
    wk_set_num_threads(threads);
#ifdef WK_PROFILER_DISABLE
    const char *build = "hooks compiled out (-DWK_PROFILER_DISABLE)";
#else
    const char *build = "hooks compiled in";
#endif
    printf("bench_profiler: %s, %d threads\n", build, threads);

    wk_tensor *t = wk_empty(WK_SHAPE(500, 1, 28, 28), WK_DTYPE_F32);
    double ns_plain, ns_hook;
    hook_cost(t, 20000000, &ns_plain, &ns_hook);
    printf("RESULT hook_off_ns=%.3f plain_ns=%.3f hook_cost_ns=%.3f\n", ns_hook, ns_plain,
           ns_hook - ns_plain);
    { /* a recorded span: 200000 of them in one step */
        wk_profiler_options o = wk_profiler_options_default();
        o.dir = "/tmp/wick_bench_profiler/micro";
        o.schedule = (wk_profiler_schedule){0};
        o.table_out = NULL;
        double best = 1e30;
        for (int r = 0; r < 3; r++) {
            if (wk_profiler_start(&o)) break;
            double ns = ns_per_call(hooked, t, 200000);
            wk_profiler_stop();
            if (ns < best) best = ns;
        }
        printf("RESULT span_on_ns=%.1f (a recorded span with one input, kept)\n", best);
    }
    wk_tensor_free(t);

    cnn c = {0};
    if (cnn_make(&c)) {
        fprintf(stderr, "bench_profiler: %s\n", wk_last_error());
        cnn_free(&c);
        return 1;
    }
    for (int i = 0; i < 3; i++) /* warm the pools and the loader */
        if (cnn_step(&c) < 0) goto fail;

    static double off[64 * 100], on[64 * 100];
    int noff = 0, non = 0;
    double spans_per_step = 0;
    for (int b = 0; b < blocks; b++) {
        for (int i = 0; i < per_block; i++)
            if ((off[noff++] = cnn_step(&c)) < 0) goto fail;
        wk_profiler_options o = record_all("/tmp/wick_bench_profiler/blocks", NULL);
        if (wk_profiler_start(&o)) goto fail;
        for (int i = 0; i < per_block; i++) {
            if ((on[non++] = cnn_step(&c)) < 0) goto fail;
            wk_profiler_step();
        }
        if (wk_profiler_stop()) goto fail;
        const wk_profiler_summary *s = wk_profiler_last_summary();
        int64_t calls = 0;
        for (int r = 0; s && r < s->nrows; r++)
            if (s->rows[r].kind == WK_PROFILER_OP || s->rows[r].kind == WK_PROFILER_BACKWARD)
                calls += s->rows[r].calls;
        if (s && s->steps) spans_per_step = (double)calls / (double)s->steps;
    }
    double m_off = median(off, noff);
    printf("RESULT mode=off steps=%d median_ms=%.3f min_ms=%.3f\n", noff, 1e3 * m_off,
           1e3 * off[0]);
    double m_on = median(on, non);
    printf("RESULT mode=on steps=%d median_ms=%.3f min_ms=%.3f overhead_on_pct=%.2f\n", non,
           1e3 * m_on, 1e3 * on[0], 100 * (m_on - m_off) / m_off);
    printf("RESULT op_spans_per_step=%.0f overhead_off_est_pct=%.5f "
           "(hook %.3f ns x spans / median off step)\n",
           spans_per_step, 100 * (ns_hook - ns_plain) * 1e-9 * spans_per_step / m_off,
           ns_hook - ns_plain);

    if (epoch_steps <= 0) goto done;
    printf("\none epoch (%d steps) with the profiler on:\n", epoch_steps);
    wk_profiler_options o = record_all("/tmp/wick_bench_profiler/epoch", stdout);
    if (wk_profiler_start(&o)) goto fail;
    for (int i = 0; i < epoch_steps; i++) {
        if (cnn_step(&c) < 0) goto fail;
        wk_profiler_step();
    }
    if (wk_profiler_stop()) goto fail;
    const wk_profiler_summary *s = wk_profiler_last_summary();
    printf("top ops by self time:");
    for (int r = 0, k = 0; s && r < s->nrows && k < 3; r++) {
        const wk_profiler_row *row = &s->rows[r];
        if (row->kind != WK_PROFILER_OP && row->kind != WK_PROFILER_BACKWARD) continue;
        printf(" %s %.1f%%%s", row->name, 100 * row->self_ms / s->step_ms, ++k < 3 ? "," : "");
    }
    printf("\ntrace: /tmp/wick_bench_profiler/epoch/trace.json\n");
done:
    cnn_free(&c);
    return 0;
fail:
    fprintf(stderr, "bench_profiler: %s\n", wk_last_error());
    cnn_free(&c);
    return 1;
}

/* bench/models: forward + mean cross-entropy + backward time of the three reference
 * models (BENCHMARKS.md), median of timed runs after warm-up:
 *   mlp: 784 -> Linear 500 -> ReLU -> Linear 10, batch 500
 *   cnn: Conv3x3 1->8 p1 + ReLU, MaxPool 2, Conv3x3 8->16 p1 + ReLU, MaxPool 2,
 *        flatten 784 -> Linear 10, batch 500 of 1x28x28
 *   gpt: vocab 256, 4 layers, 4 heads, n_embd 128, block 128, pre-LN, erf GELU, learned
 *        positions, weight-tied head, batch 16 x 128 tokens
 * The models are nn/models.h's builders (wk_mlp_new, wk_fmnist_cnn_new, wk_gpt_module_new).
 * Prints `RESULT model=... system=wick threads=N fwd_bwd_ms=...` per model.
 * tools/bench_models_torch.py is the PyTorch twin.
 *   ./bench_models [threads]    (default 2) */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "wick.h"

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

/* One forward + loss + backward; returns seconds, or -1 on error. */
static double step(wk_module *m, wk_tensor *x, wk_tensor *y)
{
    double t0 = now();
    wk_frame_begin();
    wk_module_zero_grad(m);
    wk_tensor *logits = wk_module_forward(m, x);
    int64_t c = logits ? logits->shape[logits->ndim - 1] : 0;
    wk_tensor *loss = logits ? wk_cross_entropy(wk_reshape(logits, WK_SHAPE(-1, c)),
                                                wk_reshape(y, WK_SHAPE(-1)), NULL)
                             : NULL;
    int rc = loss ? wk_backward(loss) : -1;
    wk_frame_end();
    return rc < 0 ? -1 : now() - t0;
}

static int bench(const char *name, wk_module *m, wk_tensor *x, wk_tensor *y, int threads,
                 int reps)
{
    double t[64];
    if (!m || !x || !y) goto fail;
    for (int i = 0; i < 3; i++)
        if (step(m, x, y) < 0) goto fail;
    for (int i = 0; i < reps; i++)
        if ((t[i] = step(m, x, y)) < 0) goto fail;
    qsort(t, (size_t)reps, sizeof t[0], cmp);
    printf("RESULT model=%s system=wick threads=%d fwd_bwd_ms=%.2f min_ms=%.2f params=%lld\n",
           name, threads, 1e3 * t[reps / 2], 1e3 * t[0], (long long)wk_module_num_parameters(m));
    fflush(stdout);
    wk_module_free(m);
    return 0;
fail:
    fprintf(stderr, "bench_models %s: %s\n", name, wk_last_error());
    wk_module_free(m);
    return 1;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    wk_set_num_threads(threads);
    wk_generator g = wk_generator_make(1337);
    int rc = 0;
    wk_frame_begin();

    /* Weights N(0, 0.01) as BENCHMARKS.md; the timing does not depend on the init. */
    wk_tensor *xm = wk_rand(WK_SHAPE(500, 784), WK_DTYPE_F32, &g);
    wk_tensor *ym = wk_randint(0, 10, WK_SHAPE(500), &g);
    wk_module *mlp = wk_mlp_new(
        &(wk_mlp_opts){.sizes = (const int64_t[]){784, 500, 10}, .nsizes = 3, .init_std = 0.01},
        &g);
    rc |= bench("mlp", mlp, xm, ym, threads, 21);

    wk_tensor *xc = wk_rand(WK_SHAPE(500, 1, 28, 28), WK_DTYPE_F32, &g);
    wk_module *cnn = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.init_std = 0.01}, &g);
    rc |= bench("cnn", cnn, xc, ym, threads, 11);

    wk_tensor *xg = wk_randint(0, 256, WK_SHAPE(16, 128), &g);
    wk_tensor *yg = wk_randint(0, 256, WK_SHAPE(16, 128), &g);
    wk_module *gpt = wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 256, .block_size = 128,
                                                      .n_layer = 4, .n_head = 4, .n_embd = 128},
                                       &g);
    rc |= bench("gpt", gpt, xg, yg, threads, 11);

    wk_frame_end();
    return rc;
}

/* bench/models: forward + mean cross-entropy + backward time of the three reference
 * models (BENCHMARKS.md), median of timed runs after warm-up:
 *   mlp: 784 -> Linear 500 -> ReLU -> Linear 10, batch 500
 *   cnn: Conv3x3 1->8 p1 + ReLU, MaxPool 2, Conv3x3 8->16 p1 + ReLU, MaxPool 2,
 *        flatten 784 -> Linear 10, batch 500 of 1x28x28
 *   gpt: vocab 256, 4 layers, 4 heads, n_embd 128, block 128, pre-LN, erf GELU, learned
 *        positions, weight-tied head, batch 16 x 128 tokens
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

/* ---- GPT (custom modules; head tied to wte) ---- */

static wk_tensor *block_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *a = wk_module_forward(wk_module_child(m, "attn"),
                                     wk_module_forward(wk_module_child(m, "ln_1"), x));
    x = wk_add(x, a);
    wk_tensor *h = wk_module_forward(wk_module_child(m, "c_fc"),
                                     wk_module_forward(wk_module_child(m, "ln_2"), x));
    return wk_add(x, wk_module_forward(wk_module_child(m, "c_proj"), wk_gelu(h)));
}

static wk_tensor *gpt_forward(wk_module *m, wk_tensor *idx)
{
    if (!idx) return NULL;
    wk_tensor *pos = wk_arange(0, (double)idx->shape[1], 1, WK_DTYPE_I64);
    wk_module *wte = wk_module_child(m, "wte");
    wk_tensor *x = wk_add(wk_module_forward(wte, idx),
                          wk_module_forward(wk_module_child(m, "wpe"), pos));
    wk_module *h = wk_module_child(m, "h");
    for (int i = 0; i < wk_module_list_len(h); i++)
        x = wk_module_forward(wk_module_list_get(h, i), x);
    x = wk_module_forward(wk_module_child(m, "ln_f"), x);
    return wk_linear(x, wk_module_param(wte, "weight"), NULL);
}

static wk_module *gpt_new(int64_t vocab, int64_t block, int64_t e, int64_t heads, int layers,
                          wk_generator *g)
{
    wk_module *m = wk_module_new("GPT", gpt_forward, 0);
    wk_module_add_child(m, "wte", wk_embedding_new(vocab, e, WK_NO_PADDING, g));
    wk_module_add_child(m, "wpe", wk_embedding_new(block, e, WK_NO_PADDING, g));
    wk_module *h = wk_module_add_child(m, "h", wk_module_list_new());
    for (int i = 0; i < layers; i++) {
        wk_module *b = wk_module_new("Block", block_forward, 0);
        wk_module_add_child(b, "ln_1", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
        wk_module_add_child(b, "attn", wk_causal_self_attention_new(e, heads, true, 0.0, g));
        wk_module_add_child(b, "ln_2", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
        wk_module_add_child(b, "c_fc", wk_linear_new(e, 4 * e, true, g));
        wk_module_add_child(b, "c_proj", wk_linear_new(4 * e, e, true, g));
        wk_module_list_append(h, b);
    }
    wk_module_add_child(m, "ln_f", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
    return m;
}

/* One forward + loss + backward; returns seconds, or -1 on error. */
static double step(wk_module *m, wk_tensor *x, wk_tensor *y)
{
    double t0 = now();
    wk_frame_begin();
    wk_module_zero_grad(m);
    wk_tensor *logits = wk_module_forward(m, x);
    wk_tensor *loss = logits ? wk_cross_entropy(
                                   wk_reshape(logits, WK_SHAPE(-1, logits->shape[logits->ndim - 1])),
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

    wk_tensor *xm = wk_rand(WK_SHAPE(500, 784), WK_DTYPE_F32, &g);
    wk_tensor *ym = wk_randint(0, 10, WK_SHAPE(500), &g);
    wk_module *mlp = wk_sequential_of(
        (wk_module *[]){wk_linear_new(784, 500, true, &g), wk_relu_new(),
                        wk_linear_new(500, 10, true, &g)},
        3);
    rc |= bench("mlp", mlp, xm, ym, threads, 21);

    const wk_conv2d_opts p1 = {.padding = {1, 1}};
    const wk_pool2d_opts mp = {.kernel = {2, 2}};
    wk_tensor *xc = wk_rand(WK_SHAPE(500, 1, 28, 28), WK_DTYPE_F32, &g);
    wk_module *cnn = wk_sequential_of(
        (wk_module *[]){wk_conv2d_new(1, 8, 3, 3, &p1, true, &g), wk_relu_new(),
                        wk_max_pool2d_new(&mp), wk_conv2d_new(8, 16, 3, 3, &p1, true, &g),
                        wk_relu_new(), wk_max_pool2d_new(&mp), wk_flatten_new(1, -1),
                        wk_linear_new(784, 10, true, &g)},
        8);
    rc |= bench("cnn", cnn, xc, ym, threads, 11);

    wk_tensor *xg = wk_randint(0, 256, WK_SHAPE(16, 128), &g);
    wk_tensor *yg = wk_randint(0, 256, WK_SHAPE(16, 128), &g);
    rc |= bench("gpt", gpt_new(256, 128, 128, 4, 4, &g), xg, yg, threads, 11);

    wk_frame_end();
    return rc;
}

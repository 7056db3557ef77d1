/* bench/loader: the Fashion-MNIST loader (batch 128, shuffle, normalise, prefetch 2) next
 * to one training step of the MLP workload (784->500->10 Linear/ReLU, batch 128,
 * forward + backward + AdamW), so that data_time / step is visible. Target: the loader
 * is never the bottleneck, data_time < 5% of the step.
 *
 *   build/bench/bench_loader [folder]   (default /usr/share/datasets/fashion-mnist)
 *
 * Reports: batches/s over one epoch without compute (prefetch 2, and prefetch 0 = the
 * cost of preparing a batch on the consumer's thread), the median training step, and the
 * median time a training loop waits in wk_loader_next (prefetch 2) per step. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "wick.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return v[n / 2];
}

static int die(void)
{
    fprintf(stderr, "bench_loader: %s\n", wk_last_error());
    return 1;
}

/* One epoch of batches without compute; batches/s. */
static double epoch_rate(wk_dataset *ds, int prefetch, int64_t *nbatches)
{
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 128, .shuffle = true,
                                                       .seed = 0, .prefetch = prefetch});
    if (!l) return -1;
    double t0 = now();
    int64_t n = 0;
    for (;;) {
        wk_frame_begin();
        wk_batch b;
        int r = wk_loader_next(l, &b);
        wk_frame_end();
        if (r < 0) {
            wk_loader_free(l);
            return -1;
        }
        if (r == 0) break;
        n++;
    }
    double s = now() - t0;
    wk_loader_free(l);
    *nbatches = n;
    return (double)n / s;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
    double t0 = now();
    wk_dataset *ds = wk_mnist_new(dir, true,
                                  &(wk_mnist_opts){.flatten = true, .mean = 0.2860,
                                                   .std = 0.3530});
    if (!ds) return die();
    printf("read %lld training images in %.2f s\n", (long long)wk_dataset_length(ds),
           now() - t0);

    int64_t nb = 0;
    double rate2 = epoch_rate(ds, 2, &nb);
    if (rate2 < 0) return die();
    double rate0 = epoch_rate(ds, 0, &nb);
    if (rate0 < 0) return die();
    printf("loader, one epoch (%lld batches of 128, shuffle, normalise):\n", (long long)nb);
    printf("  prefetch 2: %8.0f batches/s (%.3f ms/batch)\n", rate2, 1e3 / rate2);
    printf("  prefetch 0: %8.0f batches/s (%.3f ms/batch prepared on the caller's thread)\n",
           rate0, 1e3 / rate0);

    /* the MLP workload */
    wk_generator g = wk_generator_make(0);
    wk_module *net = wk_sequential_new();
    wk_sequential_append(net, wk_linear_new(784, 500, true, &g));
    wk_sequential_append(net, wk_relu_new());
    wk_sequential_append(net, wk_linear_new(500, 10, true, &g));
    wk_named_param ps[8];
    int np = wk_module_named_parameters(net, false, ps, 8);
    wk_tensor *params[8];
    for (int i = 0; i < np; i++) params[i] = ps[i].tensor;
    wk_optimizer *opt = wk_adamw_new(params, np, WK_HPARAMS({"lr", 1e-3}));
    if (!opt) return die();
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 128, .shuffle = true,
                                                       .seed = 0, .prefetch = 2});
    if (!l) return die();
    enum { STEPS = 120, WARM = 10 };
    double data_t[STEPS], step_t[STEPS];
    for (int s = 0; s < STEPS; s++) {
        wk_frame_begin();
        double a = now();
        wk_batch b;
        int r = wk_loader_next(l, &b);
        if (r == 0) {
            wk_loader_set_epoch(l, wk_loader_get_state(l).epoch + 1);
            r = wk_loader_next(l, &b);
        }
        if (r != 1) return die();
        double c = now();
        wk_tensor *logits = wk_module_forward(net, wk_batch_get(&b, "inputs"));
        wk_tensor *loss = wk_cross_entropy(logits, wk_batch_get(&b, "labels"), NULL);
        if (!loss || wk_backward(loss)) return die();
        wk_frame_end();
        if (wk_optimizer_step(opt)) return die();
        wk_optimizer_zero_grad(opt);
        double d = now();
        data_t[s] = c - a;
        step_t[s] = d - c;
    }
    double sum_data = 0, sum_step = 0;
    for (int s = WARM; s < STEPS; s++) sum_data += data_t[s], sum_step += step_t[s];
    double md = median(data_t + WARM, STEPS - WARM), ms = median(step_t + WARM, STEPS - WARM);
    printf("MLP 784-500-10, batch 128, forward+backward+AdamW: step %.3f ms (median of %d)\n",
           1e3 * ms, STEPS - WARM);
    printf("data_time in the training loop (prefetch 2): median %.4f ms, mean %.4f ms\n",
           1e3 * md, 1e3 * sum_data / (STEPS - WARM));
    printf("data_time / step: %.2f%% (mean %.2f%%); batch preparation alone (prefetch 0) "
           "would be %.1f%%\n",
           100 * md / ms, 100 * sum_data / sum_step, 100 * (1 / rate0) / ms);
    wk_loader_free(l);
    wk_optimizer_free(opt);
    wk_module_free(net);
    wk_dataset_free(ds);
    return 0;
}

/* bench/ddp: data-parallel scaling of the BENCHMARKS.md workloads on Fashion-MNIST.
 * 1000 images per update, split over the ranks, each rank's share in micro-batches of at
 * most 500 (one rank: 2 x 500 with gradient accumulation, as the single-process
 * workload; two ranks: 1 x 500 each), AdamW lr 1e-3, every weight and bias ~ N(0, 0.01).
 * Times exclude loading batches (measured and reported apart as data_ms); the all-reduce
 * time per update is wk_ddp's: allreduce_ms = the whole wk_ddp_allreduce_grads, of
 * which wait_ms in its agreement (waiting for the slower rank's backward: load imbalance,
 * not communication) and comm_ms in the gradient all-reduces. After the timed updates,
 * test accuracy with metric states reduced across ranks. Rank 0 prints one line:
 *   RESULT model=mlp system=wick-ddp ranks=2 threads=1 train_samples_per_s=...
 *          step_ms=... allreduce_ms=... wait_ms=... comm_ms=... data_ms=... test_acc=...
 * Run (one thread per rank):
 *   WK_NUM_THREADS=1 ./bench_ddp --model mlp                    (1 rank)
 *   WK_NUM_THREADS=1 mpirun -np 2 ./bench_ddp --model mlp       (2 ranks)
 * Options: --model mlp|cnn, --steps N (updates; default one epoch of the 57000 training
 * images = 57), --data DIR (default /usr/share/datasets/fashion-mnist). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "wick.h"

#define GLOBAL_BATCH 1000
#define MICRO_MAX 500

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void die(int rank, const char *what)
{
    fprintf(stderr, "bench_ddp: rank %d: %s: %s\n", rank, what, wk_last_error());
    exit(1);
}

static wk_module *make_net(bool cnn)
{
    wk_generator g = wk_generator_make(0);
    wk_module *net;
    if (cnn) {
        const wk_conv2d_opts p1 = {.padding = {1, 1}};
        const wk_pool2d_opts mp = {.kernel = {2, 2}};
        net = wk_sequential_of(
            (wk_module *[]){wk_conv2d_new(1, 8, 3, 3, &p1, true, &g), wk_relu_new(),
                            wk_max_pool2d_new(&mp), wk_conv2d_new(8, 16, 3, 3, &p1, true, &g),
                            wk_relu_new(), wk_max_pool2d_new(&mp), wk_flatten_new(1, -1),
                            wk_linear_new(784, 10, true, &g)},
            8);
    } else {
        net = wk_sequential_of((wk_module *[]){wk_linear_new(784, 500, true, &g), wk_relu_new(),
                                               wk_linear_new(500, 10, true, &g)},
                               3);
    }
    if (!net) return NULL;
    int n = wk_module_named_parameters(net, false, NULL, 0);
    wk_named_param *np = malloc((size_t)n * sizeof *np);
    wk_module_named_parameters(net, false, np, n);
    for (int i = 0; i < n; i++) wk_normal_(np[i].tensor, 0.0, 0.01, &g);
    free(np);
    return net;
}

int main(int argc, char **argv)
{
    const char *model_name = "mlp", *dir = "/usr/share/datasets/fashion-mnist";
    int steps = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model_name = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc) steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) dir = argv[++i];
        else {
            fprintf(stderr, "usage: bench_ddp [--model mlp|cnn] [--steps N] [--data DIR]\n");
            return 2;
        }
    }
    bool cnn = !strcmp(model_name, "cnn");
    wk_comm *c = wk_dist_world();
    if (!c) die(-1, "dist_world");
    int rank = wk_comm_rank(c), world = wk_comm_size(c);
    if (GLOBAL_BATCH % world) {
        fprintf(stderr, "bench_ddp: %d images per update do not split over %d ranks\n",
                GLOBAL_BATCH, world);
        return 2;
    }
    int64_t per_rank = GLOBAL_BATCH / world;
    int accum = (int)((per_rank + MICRO_MAX - 1) / MICRO_MAX);
    if (per_rank % accum) {
        fprintf(stderr, "bench_ddp: %lld images per rank do not split into micro-batches\n",
                (long long)per_rank);
        return 2;
    }
    int64_t micro = per_rank / accum;

    wk_mnist_opts mo = {.flatten = !cnn};
    wk_dataset *full = wk_mnist_new(dir, true, &mo), *test = wk_mnist_new(dir, false, &mo);
    wk_dataset *train = NULL, *val = NULL;
    if (!full || !test || wk_dataset_split(full, 3000, 0, &train, &val) < 0) die(rank, "data");
    if (!steps) steps = (int)(wk_dataset_length(train) / GLOBAL_BATCH);

    wk_model *model = wk_classifier_new(make_net(cnn));
    if (!model) die(rank, "model");
    if (wk_ddp_broadcast_module(c, model->module, 0) < 0) die(rank, "broadcast");
    int np = wk_module_named_parameters(model->module, false, NULL, 0);
    wk_named_param *items = malloc((size_t)np * sizeof *items);
    wk_tensor **ps = malloc((size_t)np * sizeof *ps);
    wk_module_named_parameters(model->module, false, items, np);
    for (int i = 0; i < np; i++) ps[i] = items[i].tensor;
    wk_optimizer *opt = wk_adamw_new(ps, np, WK_HPARAMS({"lr", 1e-3}, {"beta1", 0.9},
                                                        {"beta2", 0.999}, {"eps", 1e-8},
                                                        {"weight_decay", 0}));
    wk_ddp *ddp = wk_ddp_new_module(c, model->module, NULL);
    wk_loader *loader = wk_loader_new(train, &(wk_loader_opts){
        .batch_size = micro, .shuffle = true, .drop_last = true,
        .seed = wk_dist_seed(0, WK_SEED_SHUFFLE, 0), .rank = rank, .world_size = world});
    if (!opt || !ddp || !loader) die(rank, "setup");

    double data = 0, t_start = 0;
    wk_ddp_stats at_start = {0};
    int64_t epoch = 0;
    for (int s = 0; s <= steps; s++) {
        if (s == 1) { /* the first update warms up the pools: not timed */
            wk_comm_barrier(c);
            t_start = now();
            data = 0;
            at_start = wk_ddp_get_stats(ddp);
        }
        bool ok = true;
        for (int a = 0; a < accum && ok; a++) {
            wk_frame_begin();
            double td = now();
            wk_batch b;
            int got = wk_loader_next(loader, &b);
            if (got == 0) {
                wk_loader_set_epoch(loader, ++epoch);
                got = wk_loader_next(loader, &b);
            }
            data += now() - td;
            wk_model_output o;
            ok = got == 1 && wk_model_forward(model, &b, WK_MODE_LOSS, &o) == 0 &&
                 wk_backward(wk_mul_scalar(wk_model_total_loss(&o), 1.0 / accum)) == 0;
            wk_frame_end();
        }
        if (wk_ddp_allreduce_grads(ddp, ok) != 1) die(rank, "allreduce_grads");
        if (wk_optimizer_step(opt) < 0) die(rank, "step");
        wk_optimizer_zero_grad(opt);
    }
    wk_comm_barrier(c);
    double elapsed = now() - t_start;
    wk_ddp_stats st = wk_ddp_get_stats(ddp);
    double calls = (double)(st.calls - at_start.calls);
    double train_s = elapsed - data;

    wk_loader *tl = wk_loader_new(test, &(wk_loader_opts){.batch_size = 500, .rank = rank,
                                                          .world_size = world});
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1)};
    wk_evaluator *ev = wk_evaluator_new(ms, 1);
    wk_evaluator_set_reduce(ev, wk_dist_metric_reduce, c);
    wk_data_source src = wk_loader_source(tl);
    wk_metric_results res = {0};
    if (wk_evaluator_run(ev, model, &src, "test", &res) < 0) die(rank, "evaluate");

    if (rank == 0)
        printf("RESULT model=%s system=wick-ddp ranks=%d threads=%d micro_batch=%lld "
               "accumulate=%d steps=%d train_samples_per_s=%.0f step_ms=%.2f "
               "allreduce_ms=%.3f wait_ms=%.3f comm_ms=%.3f data_ms=%.2f grad_bytes=%lld "
               "buckets=%d "
               "test_acc=%.2f\n",
               model_name, world, wk_get_num_threads(), (long long)micro, accum, steps,
               (double)GLOBAL_BATCH * steps / train_s, 1e3 * train_s / steps,
               1e3 * (st.seconds - at_start.seconds) / calls,
               1e3 * (st.agree_seconds - at_start.agree_seconds) / calls,
               1e3 * (st.comm_seconds - at_start.comm_seconds) / calls, 1e3 * data / steps,
               (long long)st.bytes, st.nbuckets, wk_metric_results_get(&res, "test/accuracy"));

    wk_evaluator_free(ev);
    wk_loader_free(tl);
    wk_loader_free(loader);
    wk_ddp_free(ddp);
    wk_optimizer_free(opt);
    wk_model_free(model);
    free(items);
    free(ps);
    wk_dataset_free(train);
    wk_dataset_free(val);
    wk_dataset_free(full);
    wk_dataset_free(test);
    wk_dist_finalize();
    return 0;
}

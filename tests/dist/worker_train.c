/* A hand-written data-parallel training loop: each rank takes its shard of every batch
 * (global batch B, B/W per rank), averages gradients with wk_ddp and steps SGD, then
 * evaluates with metric states reduced across ranks. Rank r writes its parameters and
 * the results to <out>.rank<r>.safetensors; tests/dist/test_ddp.c compares W ranks with
 * one process.
 *   mpirun -np 2 worker_train mlp|bn <out> <global batch> <steps> [bucket bytes] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wick.h"

#define FEATURES 20
#define CLASSES 4

static void die(int rank, const char *what)
{
    fprintf(stderr, "worker_train: rank %d: %s: %s\n", rank, what, wk_last_error());
    exit(1);
}

/* The same synthetic set on every rank: inputs N(0,1), labels from a fixed linear rule
 * with noise, so there is something to learn. */
static wk_dataset *make_data(int64_t n)
{
    wk_generator g = wk_generator_make(7);
    wk_frame_begin();
    wk_tensor *x = wk_randn(WK_SHAPE(n, FEATURES), WK_DTYPE_F32, &g);
    wk_tensor *w = wk_randn(WK_SHAPE(FEATURES, CLASSES), WK_DTYPE_F32, &g);
    wk_tensor *noise = wk_randn(WK_SHAPE(n, CLASSES), WK_DTYPE_F32, &g);
    wk_tensor *y = wk_argmax(wk_add(wk_matmul(x, w), noise), 1, false);
    wk_dataset *ds = wk_tensor_dataset_new((const char *[]){"inputs", "labels"},
                                           (wk_tensor *[]){x, y}, 2); /* copies */
    wk_frame_end();
    return ds;
}

static wk_module *make_net(bool bn, int rank)
{
    /* a different initialisation on every rank: the broadcast must make them equal */
    wk_generator g = wk_generator_make(1000 + (uint64_t)rank);
    wk_module *net = wk_sequential_new();
    wk_sequential_append(net, wk_linear_new(FEATURES, 32, true, &g));
    if (bn) {
        wk_module *norm = wk_batch_norm1d_new(32, 1e-5, 0.1, true, true);
        wk_tensor *rm = wk_module_buffer(norm, "running_mean");
        wk_tensor *rv = wk_module_buffer(norm, "running_var");
        wk_normal_(rm, (double)rank, 0.1, &g);
        wk_uniform_(rv, 0.5, 1.5, &g);
        wk_normal_(wk_module_param(norm, "weight"), 1.0, 0.1, &g);
        wk_sequential_append(net, norm);
    }
    wk_sequential_append(net, wk_relu_new());
    wk_sequential_append(net, wk_linear_new(32, CLASSES, true, &g));
    if (bn) wk_module_train(wk_module_child(net, "1"), false); /* running statistics */
    return net;
}

int main(int argc, char **argv)
{
    if (argc < 5) {
        fprintf(stderr, "usage: worker_train mlp|bn <out> <global batch> <steps> "
                        "[bucket bytes]\n");
        return 2;
    }
    bool bn = !strcmp(argv[1], "bn");
    const char *out = argv[2];
    int64_t B = atoll(argv[3]);
    int steps = atoi(argv[4]);
    int64_t bucket = argc > 5 ? atoll(argv[5]) : 0;

    wk_comm *c = wk_dist_world();
    if (!c) die(-1, "dist_world");
    int rank = wk_comm_rank(c), world = wk_comm_size(c);
    if (B % world) {
        fprintf(stderr, "worker_train: batch %lld is not divisible by %d ranks\n",
                (long long)B, world);
        return 2;
    }
    wk_dataset *ds = make_data(10 * B);
    wk_model *model = wk_classifier_new(make_net(bn, rank));
    if (!ds || !model) die(rank, "setup");
    if (wk_ddp_broadcast_module(c, model->module, 0) < 0) die(rank, "broadcast_module");
    if (wk_ddp_module_in_sync(c, model->module) != 1) die(rank, "in sync after broadcast");

    int n = wk_module_named_parameters(model->module, false, NULL, 0);
    wk_named_param *np = calloc((size_t)n, sizeof *np);
    wk_tensor **ps = calloc((size_t)n, sizeof *ps);
    wk_module_named_parameters(model->module, false, np, n);
    for (int i = 0; i < n; i++) ps[i] = np[i].tensor;
    wk_optimizer *opt = wk_sgd_new(ps, n, WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9}));
    wk_ddp *ddp = wk_ddp_new_module(c, model->module, &(wk_ddp_opts){.bucket_bytes = bucket});
    if (!opt || !ddp) die(rank, "optimizer/ddp");

    wk_loader *train = wk_loader_new(ds, &(wk_loader_opts){.batch_size = B / world,
                                                           .shuffle = true, .seed = 5,
                                                           .rank = rank, .world_size = world});
    if (!train) die(rank, "loader");
    int64_t epoch = 0;
    for (int s = 0; s < steps; s++) {
        wk_frame_begin();
        wk_batch b;
        int got = wk_loader_next(train, &b);
        if (got == 0) {
            wk_loader_set_epoch(train, ++epoch);
            got = wk_loader_next(train, &b);
        }
        wk_model_output o;
        bool ok = got == 1 && wk_model_forward(model, &b, WK_MODE_LOSS, &o) == 0 &&
                  wk_backward(wk_model_total_loss(&o)) == 0;
        wk_frame_end();
        int r = wk_ddp_allreduce_grads(ddp, ok);
        if (r != 1) die(rank, "allreduce_grads");
        if (wk_optimizer_step(opt) < 0) die(rank, "step");
        wk_optimizer_zero_grad(opt);
    }

    /* evaluation: each rank its shard, the metric states summed across ranks */
    wk_loader *val = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 16, .rank = rank,
                                                         .world_size = world});
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), wk_loss_metric_new()};
    wk_evaluator *ev = wk_evaluator_new(ms, 2);
    wk_evaluator_set_reduce(ev, wk_dist_metric_reduce, c);
    wk_data_source src = wk_loader_source(val);
    wk_metric_results res = {0};
    if (wk_evaluator_run(ev, model, &src, "val", &res) < 0) die(rank, "evaluate");

    int in_sync = wk_ddp_module_in_sync(c, model->module);
    wk_ddp_stats st = wk_ddp_get_stats(ddp);
    char acc[64], loss[64], sync[16], nb[16];
    snprintf(acc, sizeof acc, "%.17g", wk_metric_results_get(&res, "val/accuracy"));
    snprintf(loss, sizeof loss, "%.17g", wk_metric_results_get(&res, "val/loss"));
    snprintf(sync, sizeof sync, "%d", in_sync);
    snprintf(nb, sizeof nb, "%d", st.nbuckets);
    char path[4096];
    snprintf(path, sizeof path, "%s.rank%d.safetensors", out, rank);
    if (wk_state_dict_save(model->module, path,
                           (const char *[]){"val/accuracy", "val/loss", "in_sync", "buckets"},
                           (const char *[]){acc, loss, sync, nb}, 4) < 0)
        die(rank, "save");
    if (rank == 0)
        printf("worker_train: %s, %d ranks, %d steps, %d buckets, val/accuracy %s, "
               "val/loss %s\n", argv[1], world, steps, st.nbuckets, acc, loss);

    wk_evaluator_free(ev);
    wk_loader_free(val);
    wk_loader_free(train);
    wk_ddp_free(ddp);
    wk_optimizer_free(opt);
    wk_model_free(model);
    wk_dataset_free(ds);
    free(np);
    free(ps);
    if (wk_dist_finalize() < 0) die(rank, "finalize");
    return 0;
}

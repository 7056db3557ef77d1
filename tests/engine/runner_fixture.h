/* A small training setup for the Runner's tests and the e2e worker: two-circles data,
 * an MLP 2 -> 16 -> 2 (optionally with dropout), an optimizer, an optional scheduler,
 * and an evaluator (Accuracy + Loss). Plain C (no Criterion): the worker uses it too. */
#ifndef WK_TESTS_RUNNER_FIXTURE_H
#define WK_TESTS_RUNNER_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wick.h"

typedef struct {
    int64_t train_size, batch, val_size, val_batch, test_size;
    bool dropout, shuffle, adam, sched, f64;
    int prefetch;
    int rank, world;      /* loader sharding (0, 0: none) */
    double lr;
    uint64_t seed;
} fx_opts;

static inline fx_opts fx_defaults(void)
{
    return (fx_opts){.train_size = 64, .batch = 8, .val_size = 32, .val_batch = 32,
                     .shuffle = true, .lr = 0.05, .seed = 3};
}

typedef struct {
    wk_dataset *train_ds, *val_ds, *test_ds;
    wk_loader *train, *val, *test;
    wk_model *model;
    wk_optimizer *opt;
    wk_scheduler *sched;
    wk_evaluator *ev;
} fx_parts;

static inline wk_module *fx_net(const fx_opts *o)
{
    wk_generator g = wk_generator_make(o->seed);
    wk_module *net = wk_sequential_new();
    wk_sequential_append(net, wk_linear_new(2, 16, true, &g));
    wk_sequential_append(net, wk_relu_new());
    if (o->dropout) wk_sequential_append(net, wk_dropout_new(0.2, &g));
    wk_sequential_append(net, wk_linear_new(16, 2, true, &g));
    return net;
}

/* 0, or -1 with wk_last_error(). */
static inline int fx_build(fx_parts *p, const fx_opts *o)
{
    memset(p, 0, sizeof *p);
    p->train_ds = wk_two_circles_new(o->train_size, 1);
    if (!p->train_ds) return -1;
    p->train = wk_loader_new(p->train_ds, &(wk_loader_opts){.batch_size = o->batch,
                                                            .shuffle = o->shuffle,
                                                            .seed = 11,
                                                            .prefetch = o->prefetch,
                                                            .rank = o->rank,
                                                            .world_size = o->world});
    if (!p->train) return -1;
    if (o->val_size > 0) {
        p->val_ds = wk_two_circles_new(o->val_size, 2);
        p->val = p->val_ds ? wk_loader_new(p->val_ds, &(wk_loader_opts){.batch_size =
                                                                             o->val_batch,
                                                                         .rank = o->rank,
                                                                         .world_size = o->world})
                           : NULL;
        if (!p->val) return -1;
    }
    if (o->test_size > 0) {
        p->test_ds = wk_two_circles_new(o->test_size, 5);
        p->test = p->test_ds ? wk_loader_new(p->test_ds, &(wk_loader_opts){.batch_size =
                                                                               o->test_size})
                             : NULL;
        if (!p->test) return -1;
    }
    p->model = wk_classifier_new(fx_net(o));
    if (!p->model) return -1;
    wk_named_param params[16];
    int n = wk_module_named_parameters(p->model->module, false, params, 16);
    wk_tensor *ts[16];
    for (int i = 0; i < n; i++) ts[i] = params[i].tensor;
    p->opt = o->adam ? wk_adam_new(ts, n, WK_HPARAMS({"lr", o->lr}))
                     : wk_sgd_new(ts, n, WK_HPARAMS({"lr", o->lr}, {"momentum", 0.9}));
    if (!p->opt) return -1;
    if (o->sched) {
        wk_qwarmup_opts w = wk_qwarmup_opts_default();
        w.warmup_steps = 5;
        p->sched = wk_qwarmup_new(wk_cosine_lr_new(p->opt, 100, 1e-4), &w);
        if (!p->sched) return -1;
    }
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), wk_loss_metric_new()};
    p->ev = wk_evaluator_new(ms, 2);
    return p->ev ? 0 : -1;
}

static inline void fx_free(fx_parts *p)
{
    wk_evaluator_free(p->ev);
    wk_scheduler_free(p->sched);
    wk_optimizer_free(p->opt);
    wk_model_free(p->model);
    wk_loader_free(p->train);
    wk_loader_free(p->val);
    wk_loader_free(p->test);
    wk_dataset_free(p->train_ds);
    wk_dataset_free(p->val_ds);
    wk_dataset_free(p->test_ds);
    memset(p, 0, sizeof *p);
}

static inline wk_runner_parts fx_runner_parts(const fx_parts *p)
{
    return (wk_runner_parts){.model = p->model, .optimizer = p->opt, .scheduler = p->sched,
                             .train_loader = p->train, .val_loader = p->val,
                             .test_loader = p->test, .evaluator = p->ev};
}

#endif

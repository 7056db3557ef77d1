/* The supervised trainer and evaluator engines. */
#include <stdint.h>

#include "test_util.h"

TestSuite(trainer, .init = tu_setup, .fini = tu_teardown);

/* Two-circles (1000 train, 200 val), an MLP 2->64->64->2 and an optimizer. */
typedef struct {
    wk_dataset *train_ds, *val_ds;
    wk_loader *train, *val;
    wk_data_source train_src, val_src;
    wk_model *model;
    wk_optimizer *opt;
} setup;

/* Cross-entropy (named here: a static link only pulls in the losses a program uses). */
static wk_tensor *ce(wk_tensor *logits, wk_tensor *labels)
{
    return wk_cross_entropy(logits, labels, NULL);
}

static wk_module *mlp(uint64_t seed)
{
    wk_generator g = wk_generator_make(seed);
    wk_module *net = wk_sequential_new();
    wk_sequential_append(net, wk_linear_new(2, 64, true, &g));
    wk_sequential_append(net, wk_relu_new());
    wk_sequential_append(net, wk_linear_new(64, 64, true, &g));
    wk_sequential_append(net, wk_relu_new());
    wk_sequential_append(net, wk_linear_new(64, 2, true, &g));
    return net;
}

static void setup_make(setup *s, wk_model *model, double lr, bool sgd)
{
    s->train_ds = wk_two_circles_new(1000, 1);
    s->val_ds = wk_two_circles_new(200, 2);
    cr_assert(s->train_ds && s->val_ds, "%s", wk_last_error());
    s->train = wk_loader_new(s->train_ds, &(wk_loader_opts){.batch_size = 32, .shuffle = true,
                                                             .seed = 3});
    s->val = wk_loader_new(s->val_ds, &(wk_loader_opts){.batch_size = 100});
    cr_assert(s->train && s->val, "%s", wk_last_error());
    s->train_src = wk_loader_source(s->train);
    s->val_src = wk_loader_source(s->val);
    s->model = model ? model : wk_classifier_new_with_loss(mlp(7), ce);
    cr_assert_not_null(s->model, "%s", wk_last_error());
    wk_tensor *params[16];
    wk_named_param np[16];
    int n = wk_module_named_parameters(s->model->module, false, np, 16);
    for (int i = 0; i < n; i++) params[i] = np[i].tensor;
    s->opt = sgd ? wk_sgd_new(params, n, WK_HPARAMS({"lr", lr}))
                 : wk_adam_new(params, n, WK_HPARAMS({"lr", lr}));
    cr_assert_not_null(s->opt, "%s", wk_last_error());
}

static void setup_free(setup *s)
{
    wk_optimizer_free(s->opt);
    wk_model_free(s->model);
    wk_loader_free(s->train);
    wk_loader_free(s->val);
    wk_dataset_free(s->train_ds);
    wk_dataset_free(s->val_ds);
}

/* Accuracy (percent) of the best possible rule for this data on the val set: the classes'
 * radii are N(3, 1) and N(6, 1), so |x| < 4.5 -> class 0 (about 93.3% on average). */
static double bayes_accuracy(setup *s)
{
    int64_t right = 0, total = 0;
    wk_batch b;
    wk_frame_begin();
    cr_assert_eq(wk_loader_set_epoch(s->val, 0), 0);
    while (wk_loader_next(s->val, &b) == 1) {
        wk_tensor *x = wk_contiguous(wk_batch_get(&b, "inputs"));
        wk_tensor *y = wk_batch_get(&b, "labels");
        const float *px = wk_data(x);
        const int64_t *py = wk_data(y);
        for (int64_t i = 0; i < y->shape[0]; i++, total++) {
            double r = hypot(px[2 * i], px[2 * i + 1]);
            right += (r < 4.5 ? 0 : 1) == py[i];
        }
    }
    wk_frame_end();
    return 100.0 * (double)right / (double)total;
}

typedef struct {
    wk_engine *evaluator;
    wk_data_source *val;
    double acc[16];
    int n;
} eval_log;

static int evaluate(wk_engine *trainer, void *user)
{
    (void)trainer;
    eval_log *log = user;
    if (wk_engine_run(log->evaluator, log->val, 1, -1, -1)) return -1;
    if (log->n < 16) log->acc[log->n++] = wk_engine_get_metric(log->evaluator, "accuracy");
    return 0;
}

/* Train for `epochs` with an evaluation every epoch; returns the last loss. */
static double train(setup *s, int epochs, eval_log *log)
{
    wk_engine *trainer = wk_create_supervised_trainer(s->model, s->opt, NULL);
    cr_assert_not_null(trainer, "%s", wk_last_error());
    /* (The classifier's PREDICT outputs have no "loss" for wk_loss_metric_new.) */
    wk_metric *ms[] = {wk_accuracy_new((int[]){1, 2}, 2), wk_confusion_matrix_new(2)};
    log->evaluator = wk_create_supervised_evaluator(s->model, ms, 2);
    cr_assert_not_null(log->evaluator, "%s", wk_last_error());
    log->val = &s->val_src;
    wk_engine_on(trainer, WK_EVENT_EPOCH_COMPLETED, evaluate, log);
    cr_assert_eq(wk_engine_run(trainer, &s->train_src, epochs, -1, -1), 0, "%s",
                 wk_last_error());
    const wk_engine_state *st = wk_engine_get_state(trainer);
    cr_assert_eq(st->epoch, epochs);
    cr_assert_eq(st->iteration, epochs * 32); /* ceil(1000 / 32) per epoch */
    cr_assert_eq(st->output.count, 1);
    cr_assert_str_eq(st->output.names[0], "loss");
    double loss = st->output.values[0];
    cr_assert(isfinite(loss) && loss > 0, "loss %g", loss);
    double f1 = wk_engine_get_metric(log->evaluator, "f1");
    cr_assert(f1 > 80 && f1 <= 100, "f1 %g", f1);
    cr_assert_eq(wk_engine_get_metric(log->evaluator, "accuracy_top2"), 100);
    wk_trainer_free(log->evaluator);
    wk_trainer_free(trainer);
    return loss;
}

Test(trainer, trains_two_circles)
{
    setup s = {0};
    setup_make(&s, NULL, 1e-2, false);
    eval_log log = {0};
    double bayes = bayes_accuracy(&s);
    train(&s, 5, &log);
    cr_assert_eq(log.n, 5, "evaluated every epoch");
    double acc = log.acc[4];
    cr_log_info("val accuracy per epoch: %.1f %.1f %.1f %.1f %.1f (best rule %.1f)", log.acc[0],
                log.acc[1], log.acc[2], log.acc[3], log.acc[4], bayes);
    /* The data's best possible accuracy is ~93%: require the learnt rule to be near it. */
    cr_assert(acc > 90.0 && acc >= bayes - 2.0, "val accuracy %.2f%% (best rule %.2f%%)", acc,
              bayes);
    setup_free(&s);
}

/* The parameters of two setups are bit-identical. */
static void expect_same_params(setup *a, setup *b)
{
    wk_named_param pa[16], pb[16];
    int n = wk_module_named_parameters(a->model->module, false, pa, 16);
    cr_assert_eq(wk_module_named_parameters(b->model->module, false, pb, 16), n);
    for (int i = 0; i < n; i++)
        cr_assert_eq(memcmp(wk_data(pa[i].tensor), wk_data(pb[i].tensor),
                            (size_t)wk_numel(pa[i].tensor) * sizeof(float)),
                     0, "parameter %s differs", pa[i].name);
}

/* The trainer does what the hand-written loop of optim/optimizer.h does, bit for bit:
 * plain updates, and windows of 5 micro-batches cut short at the end of the epoch. */
Test(trainer, same_as_a_manual_loop)
{
    for (int accumulate = 1; accumulate <= 5; accumulate += 4) {
        setup a = {0}, b = {0};
        setup_make(&a, NULL, 1e-2, false);
        setup_make(&b, NULL, 1e-2, false);
        wk_engine *trainer = wk_create_supervised_trainer(
            a.model, a.opt, &(wk_trainer_opts){.accumulate = accumulate});
        cr_assert_eq(wk_engine_run(trainer, &a.train_src, 1, -1, -1), 0, "%s", wk_last_error());
        double loss = wk_engine_get_state(trainer)->output.values[0];
        wk_trainer_free(trainer);

        cr_assert_eq(wk_optimizer_set_accumulation(b.opt, accumulate), 0);
        double manual_loss = NAN;
        for (int64_t i = 0; i < 32; i++) {
            wk_batch batch;
            wk_frame_begin();
            cr_assert_eq(wk_loader_next(b.train, &batch), 1);
            wk_model_output out;
            cr_assert_eq(wk_model_forward(b.model, &batch, WK_MODE_LOSS, &out), 0);
            wk_tensor *l = wk_model_total_loss(&out);
            manual_loss = wk_item(l);
            if (accumulate == 1) {
                cr_assert_eq(wk_backward(l), 0);
                cr_assert_eq(wk_optimizer_step(b.opt), 0);
                wk_optimizer_zero_grad(b.opt);
            } else {
                double scale = wk_optimizer_loss_scale(b.opt, 32 - i);
                cr_assert_eq(wk_backward(wk_mul_scalar(l, scale)), 0);
                cr_assert_geq(wk_optimizer_micro_step(b.opt, i == 31), 0);
            }
            wk_frame_end();
        }
        cr_assert_eq(wk_optimizer_step_count(a.opt), accumulate == 1 ? 32 : 7);
        cr_assert_eq(wk_optimizer_step_count(b.opt), wk_optimizer_step_count(a.opt));
        cr_assert_eq(memcmp(&loss, &manual_loss, sizeof loss), 0, "%.17g vs %.17g", loss,
                     manual_loss);
        expect_same_params(&a, &b);
        setup_free(&a);
        setup_free(&b);
    }
}

/* Metrics are reset at every run: two runs give the same result; eval mode, no grad. */
Test(trainer, evaluator_runs_again)
{
    setup s = {0};
    setup_make(&s, NULL, 1e-2, false);
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1)};
    wk_engine *ev = wk_create_supervised_evaluator(s.model, ms, 1);
    cr_assert_not_null(ev, "%s", wk_last_error());
    double acc[2];
    for (int r = 0; r < 2; r++) {
        cr_assert_eq(wk_engine_run(ev, &s.val_src, 1, -1, -1), 0, "%s", wk_last_error());
        acc[r] = wk_engine_get_metric(ev, "accuracy");
        cr_assert_eq(wk_engine_get_state(ev)->iteration, 2);
    }
    cr_assert(acc[0] >= 0 && acc[0] <= 100 && acc[0] == acc[1], "%g vs %g", acc[0], acc[1]);
    cr_assert(!s.model->module->training);
    wk_named_param np[16];
    int n = wk_module_named_parameters(s.model->module, false, np, 16);
    for (int i = 0; i < n; i++) cr_assert_null(np[i].tensor->grad, "%s has a grad", np[i].name);
    wk_trainer_free(ev);
    setup_free(&s);
}

Test(trainer, deterministic)
{
    double loss[2];
    for (int r = 0; r < 2; r++) {
        setup s = {0};
        setup_make(&s, NULL, 1e-2, false);
        eval_log log = {0};
        loss[r] = train(&s, 2, &log);
        setup_free(&s);
    }
    cr_assert_eq(memcmp(&loss[0], &loss[1], sizeof loss[0]), 0, "%.17g vs %.17g", loss[0],
                 loss[1]);
}

Test(trainer, terminate_on_nan)
{
    setup s = {0};
    setup_make(&s, NULL, 1e10, true);
    wk_engine *trainer = wk_create_supervised_trainer(s.model, s.opt, NULL);
    cr_assert_not_null(trainer);
    wk_terminate_on_nan_attach(trainer);
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, 50, -1, -1), 0, "%s", wk_last_error());
    const wk_engine_state *st = wk_engine_get_state(trainer);
    cr_assert(st->iteration < 50 * 32, "stopped early (iteration %lld)",
              (long long)st->iteration);
    cr_assert(!isfinite(st->output.values[0]), "last loss %g", st->output.values[0]);
    cr_assert(strstr(st->error, "loss is"), "%s", st->error);
    wk_trainer_free(trainer);
    setup_free(&s);
}

static int failing_forward(wk_model *m, const wk_batch *b, wk_forward_mode mode,
                           wk_model_output *out)
{
    (void)m, (void)b, (void)mode, (void)out;
    wk_set_error("my_forward: broken on purpose");
    return -1;
}

Test(trainer, errors_propagate)
{
    setup s = {0};
    setup_make(&s, wk_model_new(mlp(7), failing_forward, NULL, NULL), 1e-2, false);
    wk_engine *trainer = wk_create_supervised_trainer(s.model, s.opt, NULL);
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, 1, -1, -1), -1);
    cr_assert(strstr(wk_last_error(), "supervised_trainer") &&
                  strstr(wk_last_error(), "my_forward: broken on purpose"),
              "%s", wk_last_error());
    cr_assert_eq(wk_engine_get_state(trainer)->iteration, 1);
    wk_engine *ev = wk_create_supervised_evaluator(s.model, NULL, 0);
    cr_assert_eq(wk_engine_run(ev, &s.val_src, 1, -1, -1), -1);
    cr_assert(strstr(wk_last_error(), "supervised_evaluator") &&
                  strstr(wk_last_error(), "my_forward: broken on purpose"),
              "%s", wk_last_error());
    wk_trainer_free(ev);
    wk_trainer_free(trainer);
    setup_free(&s);
}

/* 32 iterations per epoch in windows of 5: 6 full windows and one of 2 -> 7 updates. */
Test(trainer, accumulation)
{
    setup s = {0};
    setup_make(&s, NULL, 1e-2, false);
    wk_engine *trainer =
        wk_create_supervised_trainer(s.model, s.opt, &(wk_trainer_opts){.accumulate = 5});
    cr_assert_not_null(trainer, "%s", wk_last_error());
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, 2, -1, -1), 0, "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_step_count(s.opt), 14);
    cr_assert(isfinite(wk_engine_get_state(trainer)->output.values[0]));
    wk_trainer_free(trainer);
    setup_free(&s);
}

/* SGD with lr 1 and grads clamped to 1e-3 moves no parameter by more than 1e-3. */
Test(trainer, clip_grad_value)
{
    setup s = {0};
    setup_make(&s, NULL, 1.0, true);
    wk_tensor *w = wk_module_find(s.model->module, "0.weight");
    cr_assert_not_null(w);
    wk_tensor *before = wk_clone(w);
    wk_engine *trainer = wk_create_supervised_trainer(
        s.model, s.opt, &(wk_trainer_opts){.clip_grad_value = 1e-3, .clip_grad_norm = 10});
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, -1, 1, -1), 0, "%s", wk_last_error());
    double maxd = 0;
    for (int64_t i = 0; i < wk_numel(w); i++)
        maxd = fmax(maxd, fabs(tu_at(w, i) - tu_at(before, i)));
    cr_assert(maxd > 0 && maxd <= 1e-3 * (1 + 1e-3), "max change %g", maxd);
    wk_trainer_free(trainer);
    setup_free(&s);
}

static wk_engine_output *no_step(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    return wk_engine_output_scalar(e, "loss", 0);
}

static int stop(wk_engine *e, void *user)
{
    (void)user;
    wk_engine_terminate(e);
    return 0;
}

/* With accumulation the grads are clipped once per window, before its update. */
Test(trainer, clip_with_accumulation)
{
    setup s = {0};
    setup_make(&s, NULL, 1.0, true);
    wk_tensor *w = wk_module_find(s.model->module, "2.weight");
    wk_tensor *before = wk_clone(w);
    wk_engine *trainer = wk_create_supervised_trainer(
        s.model, s.opt, &(wk_trainer_opts){.accumulate = 5, .clip_grad_value = 1e-3});
    /* Stop after 4 micro-batches, then continue the run: the window ends at the 5th. */
    wk_engine_on_filtered(trainer, WK_EVENT_ITERATION_COMPLETED,
                          &(wk_event_filter){.once = {4}, .n_once = 1}, stop, NULL);
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, -1, 5, -1), 0, "%s", wk_last_error());
    cr_assert_eq(wk_engine_get_state(trainer)->iteration, 4);
    cr_assert_eq(wk_optimizer_step_count(s.opt), 0);
    cr_assert_eq(memcmp(wk_data(w), wk_data(before), (size_t)wk_numel(w) * sizeof(float)), 0);
    cr_assert_eq(wk_engine_run(trainer, &s.train_src, -1, 5, -1), 0, "%s", wk_last_error());
    cr_assert_eq(wk_engine_get_state(trainer)->iteration, 5);
    cr_assert_eq(wk_optimizer_step_count(s.opt), 1);
    double maxd = 0;
    for (int64_t i = 0; i < wk_numel(w); i++)
        maxd = fmax(maxd, fabs(tu_at(w, i) - tu_at(before, i)));
    cr_assert(maxd > 0 && maxd <= 1e-3 * (1 + 1e-3), "max change %g", maxd);
    wk_trainer_free(trainer);
    setup_free(&s);
}

Test(trainer, bad_arguments)
{
    setup s = {0};
    setup_make(&s, NULL, 1e-2, false);
    expect_error(wk_create_supervised_trainer(NULL, s.opt, NULL),
                 "create_supervised_trainer: the model is NULL");
    expect_error(wk_create_supervised_trainer(s.model, NULL, NULL),
                 "create_supervised_trainer: the optimizer is NULL");
    expect_error(wk_create_supervised_trainer(s.model, s.opt, &(wk_trainer_opts){.accumulate = -1}),
                 "create_supervised_trainer: bad options accumulate = -1");
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), NULL};
    expect_error(wk_create_supervised_evaluator(s.model, ms, 2),
                 "create_supervised_evaluator: a metric is NULL");
    wk_metric *ms2[] = {wk_loss_metric_new()};
    expect_error(wk_create_supervised_evaluator(NULL, ms2, 1),
                 "create_supervised_evaluator: the model is NULL");
    wk_trainer_free(NULL);
    /* A plain engine is freed as by wk_engine_free. */
    wk_trainer_free(wk_engine_new(no_step, NULL));
    setup_free(&s);
}

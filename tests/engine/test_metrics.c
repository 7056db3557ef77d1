/* Metrics against hand-computed values: top-k accuracy with ties, loss weighted by batch
 * size, MSE/MAE, the confusion matrix's precision/recall/F1; states summed across
 * "ranks"; the evaluator over a tiny classifier on TwoCircles. */
#include "test_util.h"

TestSuite(metrics, .init = tu_setup, .fini = tu_teardown);

static wk_batch batch1(const char *name, wk_tensor *t)
{
    wk_batch b = {0};
    cr_assert_eq(wk_batch_set(&b, name, t), 0);
    return b;
}

static wk_model_output output1(const char *name, wk_tensor *t)
{
    wk_model_output o = {0};
    cr_assert_eq(wk_model_output_set(&o, name, t), 0);
    return o;
}

static double result(const wk_metric *m, const char *name)
{
    wk_metric_results r = {0};
    cr_assert_eq(wk_metric_compute(m, &r), 0, "%s", wk_last_error());
    double v = wk_metric_results_get(&r, name);
    cr_assert(!isnan(v), "no %s in the results", name);
    return v;
}

#define expect_near(v, e) cr_assert(fabs((v) - (e)) < 1e-9, "%s = %.12g, expected %.12g", #v, (double)(v), (double)(e))

Test(metrics, accuracy_top_k_with_ties)
{
    wk_metric *m = wk_accuracy_new((int[]){1, 2, 3}, 3);
    cr_assert_not_null(m, "%s", wk_last_error());
    /* row 0: label best; row 1: label tied for best (counts); row 2: label last;
     * row 3: label second */
    wk_tensor *logits = tu_f32(WK_SHAPE(4, 3), 0.1, 0.5, 0.2, 0.3, 0.3, 0.1, 0.9, 0.2, 0.4,
                               0.2, 0.7, 0.6);
    wk_batch b = batch1("labels", tu_i64(WK_SHAPE(4), 1, 0, 1, 2));
    wk_model_output o = output1("logits", logits);
    cr_assert_eq(wk_metric_process(m, &b, &o), 0, "%s", wk_last_error());
    expect_near(result(m, "accuracy"), 50.0);
    expect_near(result(m, "accuracy_top2"), 75.0);
    expect_near(result(m, "accuracy_top3"), 100.0);
    /* a second batch: a clear hit and an all-tie row (label counts as top-1) */
    b = batch1("labels", tu_i64(WK_SHAPE(2), 0, 2));
    o = output1("logits", tu_f64(WK_SHAPE(2, 3), 1, 0, 0, 0, 0, 0));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0);
    expect_near(result(m, "accuracy"), 400.0 / 6);
    expect_near(result(m, "accuracy_top2"), 500.0 / 6);
    cr_assert_eq(m->nstate, 4);
    expect_near(m->state[3], 6); /* the count, reducible */
    wk_metric_reset(m);
    wk_metric_results none = {0};
    cr_assert_eq(wk_metric_compute(m, &none), 0);
    cr_assert(isnan(wk_metric_results_get(&none, "accuracy")), "no samples: NaN");
    /* labels from the model output when the batch has none */
    wk_model_output o2 = output1("logits", logits);
    cr_assert_eq(wk_model_output_set(&o2, "labels", tu_i64(WK_SHAPE(4), 1, 1, 1, 1)), 0);
    wk_batch empty = {0};
    cr_assert_eq(wk_metric_process(m, &empty, &o2), 0);
    expect_near(result(m, "accuracy"), 75.0); /* rows 0, 1 (a tie) and 3 */
    /* errors */
    b = batch1("labels", tu_i64(WK_SHAPE(4), 1, 0, 3, 2));
    o = output1("logits", logits);
    cr_assert_eq(wk_metric_process(m, &b, &o), -1);
    cr_assert(strstr(wk_last_error(), "label 3 is out of range for 3 classes"));
    b = batch1("labels", tu_i64(WK_SHAPE(3), 1, 0, 2));
    cr_assert_eq(wk_metric_process(m, &b, &o), -1);
    cr_assert(strstr(wk_last_error(), "do not match"), "%s", wk_last_error());
    o = output1("preds", logits);
    cr_assert_eq(wk_metric_process(m, &b, &o), -1);
    cr_assert(strstr(wk_last_error(), "has no \"logits\""), "%s", wk_last_error());
    wk_metric_free(m);
    expect_error(wk_accuracy_new((int[]){0}, 1), "top-k values must be >= 1");
    expect_error(wk_accuracy_new((int[]){1, 2, 3, 4, 5, 6, 7, 8, 9}, 9), "1..8 top-k");
    m = wk_accuracy_new(NULL, 0); /* default top-1 */
    cr_assert_eq(m->nstate, 2);
    wk_metric_free(m);
}

Test(metrics, loss_is_weighted_by_batch_size)
{
    wk_metric *m = wk_loss_metric_new();
    wk_batch b = batch1("labels", tu_i64(WK_SHAPE(4), 0, 1, 0, 1));
    wk_model_output o = output1("loss", wk_scalar(2.0, WK_DTYPE_F32));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0, "%s", wk_last_error());
    b = batch1("labels", tu_i64(WK_SHAPE(2), 0, 1));
    o = output1("loss", wk_scalar(0.5, WK_DTYPE_F32));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0);
    expect_near(result(m, "loss"), (2.0 * 4 + 0.5 * 2) / 6); /* not (2 + 0.5) / 2 */
    /* no labels: the rows of "logits" count */
    wk_metric_reset(m);
    wk_batch empty = {0};
    o = output1("loss", wk_scalar(1.0, WK_DTYPE_F64));
    cr_assert_eq(wk_model_output_set(&o, "logits", wk_zeros(WK_SHAPE(3, 2), WK_DTYPE_F32)), 0);
    cr_assert_eq(wk_metric_process(m, &empty, &o), 0);
    o = output1("loss", wk_scalar(3.0, WK_DTYPE_F64));
    cr_assert_eq(wk_model_output_set(&o, "logits", wk_zeros(WK_SHAPE(1, 2), WK_DTYPE_F32)), 0);
    cr_assert_eq(wk_metric_process(m, &empty, &o), 0);
    expect_near(result(m, "loss"), (1.0 * 3 + 3.0) / 4);
    o = output1("logits", wk_zeros(WK_SHAPE(1, 2), WK_DTYPE_F32));
    cr_assert_eq(wk_metric_process(m, &empty, &o), -1);
    cr_assert(strstr(wk_last_error(), "Loss: the model's PREDICT output has no \"loss\""),
              "%s", wk_last_error());
    wk_metric_free(m);
}

Test(metrics, mse_and_mae)
{
    wk_metric *m = wk_mse_new();
    wk_batch b = batch1("targets", tu_f32(WK_SHAPE(3), 1.5, 2, 1));
    wk_model_output o = output1("preds", tu_f32(WK_SHAPE(3), 1, 2, 3));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0, "%s", wk_last_error());
    expect_near(result(m, "mse"), 4.25 / 3);
    expect_near(result(m, "mae"), 2.5 / 3);
    b = batch1("targets", tu_f64(WK_SHAPE(2, 1), 1, 4));
    o = output1("preds", tu_f32(WK_SHAPE(2, 1), 0, 4));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0);
    expect_near(result(m, "mse"), 5.25 / 5);
    expect_near(result(m, "mae"), 3.5 / 5);
    o = output1("preds", tu_f32(WK_SHAPE(3), 0, 4, 1));
    cr_assert_eq(wk_metric_process(m, &b, &o), -1);
    cr_assert(strstr(wk_last_error(), "differ in size"), "%s", wk_last_error());
    wk_batch empty = {0};
    cr_assert_eq(wk_metric_process(m, &empty, &o), -1);
    cr_assert(strstr(wk_last_error(), "no \"targets\""), "%s", wk_last_error());
    wk_metric_free(m);
}

Test(metrics, confusion_matrix_precision_recall_f1)
{
    wk_metric *m = wk_confusion_matrix_new(3);
    cr_assert_not_null(m, "%s", wk_last_error());
    wk_batch b = batch1("labels", tu_i64(WK_SHAPE(7), 0, 0, 1, 1, 2, 2, 2));
    /* half the batch as "preds", half through the argmax of "logits" */
    wk_model_output o = output1("preds", tu_i64(WK_SHAPE(7), 0, 1, 1, 1, 2, 0, 1));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0, "%s", wk_last_error());
    int C = 0;
    const double *cm = wk_confusion_matrix_counts(m, &C);
    cr_assert_eq(C, 3);
    const double want[9] = {1, 1, 0, 0, 2, 0, 1, 1, 1};
    for (int i = 0; i < 9; i++) cr_assert_eq(cm[i], want[i], "cell %d", i);
    /* per class: p = tp / column, r = tp / row */
    expect_near(result(m, "precision_0"), 50.0);
    expect_near(result(m, "recall_0"), 50.0);
    expect_near(result(m, "f1_0"), 50.0);
    expect_near(result(m, "precision_1"), 50.0);
    expect_near(result(m, "recall_1"), 100.0);
    expect_near(result(m, "f1_1"), 200.0 / 3);
    expect_near(result(m, "precision_2"), 100.0);
    expect_near(result(m, "recall_2"), 100.0 / 3);
    expect_near(result(m, "f1_2"), 50.0);
    expect_near(result(m, "precision"), 200.0 / 3);
    expect_near(result(m, "recall"), (50.0 + 100.0 + 100.0 / 3) / 3);
    expect_near(result(m, "f1"), (50.0 + 200.0 / 3 + 50.0) / 3);
    /* from logits (argmax), adds to the counts */
    wk_metric_reset(m);
    b = batch1("labels", tu_i64(WK_SHAPE(2), 2, 0));
    o = output1("logits", tu_f32(WK_SHAPE(2, 3), 0, 1, 5, 0, 3, 1));
    cr_assert_eq(wk_metric_process(m, &b, &o), 0);
    cm = wk_confusion_matrix_counts(m, NULL);
    cr_assert(cm[2 * 3 + 2] == 1 && cm[0 * 3 + 1] == 1);
    expect_near(result(m, "precision_0"), 0.0); /* no predictions of class 0: 0, not NaN */
    o = output1("preds", tu_i64(WK_SHAPE(2), 3, 0));
    cr_assert_eq(wk_metric_process(m, &b, &o), -1);
    cr_assert(strstr(wk_last_error(), "class 3 (label 2) is out of range for 3 classes"), "%s",
              wk_last_error());
    cr_assert_null(wk_confusion_matrix_counts(NULL, NULL));
    wk_metric_free(m);
    expect_error(wk_confusion_matrix_new(1), "num_classes must be 2..4096");
}

/* "Ranks": the reduction adds a copy of this rank's state (two equal ranks). */
static int double_state(double *state, int n, void *user)
{
    (*(int *)user)++;
    for (int i = 0; i < n; i++) state[i] *= 2;
    return 0;
}

Test(metrics, evaluator_on_a_tiny_classifier)
{
    wk_generator g = wk_generator_make(0);
    wk_model *model = wk_classifier_new(wk_linear_new(2, 2, true, &g));
    cr_assert_not_null(model, "%s", wk_last_error());
    wk_dataset *ds = wk_two_circles_new(100, 1);
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 16, .shuffle = true,
                                                       .prefetch = 1});
    wk_data_source src = wk_loader_source(l);
    wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), wk_loss_metric_new(),
                       wk_confusion_matrix_new(2)};
    wk_evaluator *ev = wk_evaluator_new(ms, 3);
    cr_assert_not_null(ev, "%s", wk_last_error());
    wk_module_train(model->module, true);
    wk_metric_results r = {0};
    cr_assert_eq(wk_evaluator_run(ev, model, &src, "val", &r), 0, "%s", wk_last_error());
    cr_assert(model->module->training, "training flag not restored");
    double acc = wk_metric_results_get(&r, "val/accuracy"), loss = wk_metric_results_get(&r, "val/loss");
    cr_assert(!isnan(acc) && !isnan(loss), "results: %d values", r.count);
    cr_assert(!isnan(wk_metric_results_get(&r, "val/f1")));
    /* independently: the whole set in one batch */
    wk_tensor *x = wk_empty(WK_SHAPE(100, 2), WK_DTYPE_F32);
    wk_tensor *y = wk_empty(WK_SHAPE(100), WK_DTYPE_I64);
    int64_t idx[100];
    for (int i = 0; i < 100; i++) idx[i] = i;
    cr_assert_eq(ds->get_batch(ds, idx, 100, 0, (void *[]){wk_data(x), wk_data(y)}), 0);
    wk_tensor *logits = wk_to_dtype(wk_module_forward(model->module, x), WK_DTYPE_F64);
    const double *pl = wk_data(logits);
    const int64_t *py = wk_data(y);
    double hits = 0, nll = 0;
    for (int i = 0; i < 100; i++) {
        double a = pl[2 * i], b = pl[2 * i + 1], mx = a > b ? a : b;
        double lse = mx + log(exp(a - mx) + exp(b - mx));
        nll += lse - pl[2 * i + py[i]];
        hits += py[i] == 0 ? a >= b : b >= a;
    }
    expect_near(acc, hits);
    cr_assert(fabs(loss - nll / 100) < 1e-5, "loss %g, expected %g", loss, nll / 100);
    /* a second run starts from the data's start and resets the metrics; bare names */
    wk_metric_results r2 = {0};
    int calls = 0;
    wk_evaluator_set_reduce(ev, double_state, &calls);
    cr_assert_eq(wk_evaluator_run(ev, model, &src, "", &r2), 0, "%s", wk_last_error());
    cr_assert_eq(calls, 3);
    expect_near(wk_metric_results_get(&r2, "accuracy"), acc); /* sums and counts doubled */
    cr_assert(fabs(wk_metric_results_get(&r2, "loss") - loss) < 1e-6);
    const double *cm = wk_confusion_matrix_counts(ms[2], NULL);
    cr_assert_eq(cm[0] + cm[1] + cm[2] + cm[3], 200);
    expect_error(wk_evaluator_run(ev, NULL, &src, "", &r2) ? NULL : ev,
                 "needs an evaluator, a model, data and results");
    wk_evaluator_free(ev);
    wk_loader_free(l);
    wk_dataset_free(ds);
    wk_model_free(model);
}

Test(metrics, results_table)
{
    wk_metric_results r = {0};
    cr_assert_eq(wk_metric_results_set(&r, "a", 1), 0);
    cr_assert_eq(wk_metric_results_set(&r, "a", 2), 0);
    cr_assert_eq(r.count, 1);
    expect_near(wk_metric_results_get(&r, "a"), 2);
    for (int i = 1; i < WK_METRIC_MAX_RESULTS; i++) {
        char n[8];
        snprintf(n, sizeof n, "m%d", i);
        cr_assert_eq(wk_metric_results_set(&r, n, i), 0);
    }
    cr_assert_eq(wk_metric_results_set(&r, "full", 0), -1);
    cr_assert(strstr(wk_last_error(), "at most 32 values"));
    expect_error(wk_evaluator_new((wk_metric *[]){NULL}, 1), "a metric is NULL");
}

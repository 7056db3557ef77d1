/* The model contract: batches, outputs, the three modes, total loss, the classifier. */
#include "test_util.h"

TestSuite(model, .init = tu_setup, .fini = tu_teardown);

/* ---- a net standing in for layers written elsewhere: logits = x W^T + b ---- */

static wk_tensor *lin_forward(wk_module *m, wk_tensor *x)
{
    return wk_linear(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"));
}

/* 3 features -> 4 classes with fixed weights. */
static const float W[] = {1, 0, -1, 0.5f, 2, 0, -1, 1, 1, 0, 0, 0.25f};
static const float B[] = {0, 0.5f, -0.5f, 1};

static wk_module *net_new(void)
{
    wk_module *m = wk_module_new("Linear", lin_forward, 0);
    cr_assert_not_null(
        wk_module_add_parameter(m, "weight", wk_from_array(W, WK_SHAPE(4, 3), WK_DTYPE_F32)));
    cr_assert_not_null(
        wk_module_add_parameter(m, "bias", wk_from_array(B, WK_SHAPE(4), WK_DTYPE_F32)));
    return m;
}

/* logits[r][c] by hand, in double. */
static double logit(const float *x, int r, int c)
{
    double acc = B[c];
    for (int k = 0; k < 3; k++) acc += (double)W[3 * c + k] * x[3 * r + k];
    return acc;
}

/* Cross-entropy made of wick ops, so LOSS mode is tested without nn/loss. */
static wk_tensor *ce_by_ops(wk_tensor *logits, wk_tensor *labels)
{
    wk_tensor *lp = wk_log_softmax(logits, 1);
    wk_tensor *picked = wk_gather(lp, 1, wk_unsqueeze(labels, 1));
    return wk_neg(wk_mean(picked, WK_ALL_DIMS, false));
}

static const float X[] = {1, 2, 3, -1, 0.5f, 2, 0, 0, 0, 3, -2, 1, 0.25f, 1, -1};
static const int64_t Y[] = {2, 0, 3, 1, 1};

static void batch_xy(wk_batch *b)
{
    memset(b, 0, sizeof *b);
    cr_assert_eq(wk_batch_set(b, "inputs", wk_from_array(X, WK_SHAPE(5, 3), WK_DTYPE_F32)), 0);
    cr_assert_eq(wk_batch_set(b, "labels", wk_from_array(Y, WK_SHAPE(5), WK_DTYPE_I64)), 0);
}

/* ---- batches ---- */

Test(model, batch_set_get_replace)
{
    wk_batch b = {0};
    wk_tensor *x = tu_f32(WK_SHAPE(1), 1), *y = tu_f32(WK_SHAPE(1), 2);
    cr_assert_eq(wk_batch_set(&b, "inputs", x), 0);
    cr_assert_eq(wk_batch_set(&b, "labels", y), 0);
    cr_assert_eq(b.count, 2);
    cr_assert_eq(wk_batch_get(&b, "inputs"), x);
    cr_assert_eq(wk_batch_get(&b, "labels"), y);
    cr_assert_eq(wk_batch_set(&b, "inputs", y), 0); /* replace */
    cr_assert_eq(b.count, 2);
    cr_assert_eq(wk_batch_get(&b, "inputs"), y);
    expect_error(wk_batch_get(&b, "mask"), "batch_get: the batch has no \"mask\" (it has "
                                           "\"inputs\", \"labels\")");
    wk_batch empty = {0};
    expect_error(wk_batch_get(&empty, "inputs"), "(it has nothing)");
    expect_error(wk_batch_get(NULL, "inputs"), "batch_get: batch is NULL");
    /* A literal batch works too. */
    wk_batch lit = {2, {"inputs", "labels"}, {x, y}};
    cr_assert_eq(wk_batch_get(&lit, "labels"), y);
}

Test(model, batch_set_errors)
{
    wk_batch b = {0};
    wk_tensor *x = tu_f32(WK_SHAPE(1), 1);
    cr_assert_eq(wk_batch_set(&b, "", x), -1);
    cr_assert(strstr(wk_last_error(), "name is NULL or empty"));
    cr_assert_eq(wk_batch_set(NULL, "a", x), -1);
    wk_set_error("loader: file ended");
    cr_assert_eq(wk_batch_set(&b, "inputs", NULL), -1);
    cr_assert(strstr(wk_last_error(), "tensor \"inputs\" is NULL (after: loader: file ended)"),
              "%s", wk_last_error());
    static const char *names[] = {"a", "b", "c", "d", "e", "f", "g", "h"};
    for (int i = 0; i < WK_BATCH_MAX; i++) cr_assert_eq(wk_batch_set(&b, names[i], x), 0);
    cr_assert_eq(wk_batch_set(&b, "i", x), -1);
    cr_assert(strstr(wk_last_error(), "the batch is full (8 tensors); cannot add \"i\""));
    cr_assert_eq(wk_batch_set(&b, "h", x), 0, "replacing in a full batch is fine");
    b.count = 9;
    expect_error(wk_batch_get(&b, "a"), "batch count 9 is outside 0..8");
}

/* ---- outputs ---- */

Test(model, output_set_get_and_errors)
{
    wk_model_output out = {0};
    wk_tensor *v = tu_f32(WK_SHAPE(1), 1), *w = tu_f32(WK_SHAPE(1), 2);
    cr_assert_eq(wk_model_output_set(&out, "loss", v), 0);
    cr_assert_eq(wk_model_output_set(&out, "acc", w), 0);
    cr_assert_eq(wk_model_output_get(&out, "acc"), w);
    cr_assert_eq(wk_model_output_set(&out, "loss", w), 0);
    cr_assert_eq(out.count, 2);
    cr_assert_eq(wk_model_output_get(&out, "loss"), w);
    expect_error(wk_model_output_get(&out, "logits"), "no output \"logits\" (there are "
                                                      "\"loss\", \"acc\")");
    char long_name[40];
    memset(long_name, 'n', 32);
    long_name[32] = '\0';
    cr_assert_eq(wk_model_output_set(&out, long_name, v), -1);
    cr_assert(strstr(wk_last_error(), "is too long (at most 31 characters)"));
    long_name[31] = '\0';
    cr_assert_eq(wk_model_output_set(&out, long_name, v), 0);
    cr_assert_str_eq(out.names[2], long_name);
    /* A NULL value keeps the error that produced it, with the output's name. */
    wk_set_error("linear: shapes [2, 3] and [4, 5]");
    cr_assert_eq(wk_model_output_set(&out, "logits", NULL), -1);
    cr_assert_str_eq(wk_last_error(), "output \"logits\": linear: shapes [2, 3] and [4, 5]");
    wk_clear_error();
    cr_assert_eq(wk_model_output_set(&out, "logits", NULL), -1);
    cr_assert(strstr(wk_last_error(), "output \"logits\" is NULL"));
    for (int i = out.count; i < WK_OUTPUT_MAX; i++) {
        char name[16];
        snprintf(name, sizeof name, "o%d", i);
        cr_assert_eq(wk_model_output_set(&out, name, v), 0);
    }
    cr_assert_eq(wk_model_output_set(&out, "more", v), -1);
    cr_assert(strstr(wk_last_error(), "the output is full (8 tensors)"));
}

/* ---- total loss ---- */

Test(model, total_loss_sums_only_losses)
{
    wk_model_output out = {0};
    wk_model_output_set(&out, "loss_cls", wk_scalar(1.5, WK_DTYPE_F32));
    wk_model_output_set(&out, "acc", wk_scalar(100, WK_DTYPE_F32));
    wk_model_output_set(&out, "loss_box", tu_f32(WK_SHAPE(1), 0.25f));
    wk_model_output_set(&out, "aux_loss", tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 6)); /* mean 3 */
    wk_tensor *t = wk_model_total_loss(&out);
    cr_assert_not_null(t, "%s", wk_last_error());
    cr_assert_eq(t->ndim, 0);
    cr_assert_eq(t->dtype, WK_DTYPE_F32);
    cr_assert_float_eq(wk_item(t), 1.5 + 0.25 + 3, 1e-6);
    for (int i = 0; i < out.count; i++) cr_assert_neq(t, out.values[i], "a new tensor");

    wk_model_output one = {0};
    wk_model_output_set(&one, "loss", tu_f64(WK_SHAPE(1), 2.5));
    t = wk_model_total_loss(&one);
    cr_assert(t && t->ndim == 0 && t->dtype == WK_DTYPE_F64 && wk_item(t) == 2.5);

    wk_model_output none = {0};
    wk_model_output_set(&none, "acc", wk_scalar(1, WK_DTYPE_F32));
    expect_error(wk_model_total_loss(&none), "model_total_loss: no output name contains \"loss\"");
    expect_error(wk_model_total_loss(NULL), "output is NULL");
}

/* ---- models with custom forwards ---- */

typedef struct {
    int behaviour;
} custom_cfg;

static int custom_forward(wk_model *m, const wk_batch *b, wk_forward_mode mode,
                          wk_model_output *out)
{
    const custom_cfg *cfg = m->user;
    wk_tensor *x = wk_batch_get(b, "inputs");
    switch (cfg->behaviour) {
    case 0: /* well-behaved: loss and accuracy, or the raw output */
        if (mode == WK_MODE_LOSS)
            return wk_model_output_set(out, "loss", wk_mean(x, WK_ALL_DIMS, false)) ||
                   wk_model_output_set(out, "acc", wk_scalar(0.5, WK_DTYPE_F32));
        return wk_model_output_set(out, mode == WK_MODE_PREDICT ? "pred" : "raw", x);
    case 1: /* no loss in loss mode */
        return wk_model_output_set(out, "acc", x);
    case 2: /* an integer loss */
        return wk_model_output_set(out, "loss", wk_sum(wk_gt_scalar(x, 0), WK_ALL_DIMS, false));
    case 3: /* fails without a message */
        return -1;
    default: /* leaves a NULL value behind */
        out->count = 1;
        snprintf(out->names[0], sizeof out->names[0], "loss");
        return 0;
    }
}

static int frees;
static void count_free(void *p)
{
    frees++;
    free(p);
}

static wk_model *custom_new(int behaviour)
{
    custom_cfg *cfg = malloc(sizeof *cfg);
    cfg->behaviour = behaviour;
    wk_model *m = wk_model_new(net_new(), custom_forward, cfg, count_free);
    cr_assert_not_null(m, "%s", wk_last_error());
    return m;
}

Test(model, custom_forward_modes)
{
    wk_model *m = custom_new(0);
    wk_batch b;
    batch_xy(&b);
    wk_model_output out;
    memset(&out, 0x7f, sizeof out); /* zeroed by wk_model_forward */
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_LOSS, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 2);
    cr_assert_str_eq(out.names[0], "loss");
    double mean = 0;
    for (int i = 0; i < 15; i++) mean += X[i] / 15.0;
    cr_assert_float_eq(wk_item(wk_model_total_loss(&out)), mean, 1e-6);
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_PREDICT, &out), 0);
    cr_assert(out.count == 1 && !strcmp(out.names[0], "pred"));
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_TENSOR, &out), 0);
    cr_assert(out.count == 1 && !strcmp(out.names[0], "raw"));
    cr_assert_str_eq(wk_forward_mode_name(WK_MODE_PREDICT), "predict");
    cr_assert_str_eq(wk_forward_mode_name((wk_forward_mode)7), "?");
    frees = 0;
    wk_model_free(m);
    cr_assert_eq(frees, 1, "user_free runs once");
    wk_model_free(NULL);
}

Test(model, forward_checks_the_contract)
{
    wk_batch b;
    batch_xy(&b);
    wk_model_output out;
    wk_model *m = custom_new(1);
    expect_error(wk_model_forward(m, &b, WK_MODE_LOSS, &out) ? NULL : m,
                 "model_forward: Linear returned no loss in loss mode (outputs: \"acc\"; the "
                 "names of losses must contain \"loss\")");
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_TENSOR, &out), 0, "other modes need no loss");
    wk_model_free(m);
    m = custom_new(2);
    expect_error(wk_model_forward(m, &b, WK_MODE_LOSS, &out) ? NULL : m,
                 "model_forward: Linear: loss \"loss\" is int64, expected a float tensor");
    wk_model_free(m);
    m = custom_new(3);
    expect_error(wk_model_forward(m, &b, WK_MODE_PREDICT, &out) ? NULL : m,
                 "model_forward: Linear (predict mode) failed without an error message");
    wk_model_free(m);
    m = custom_new(4);
    expect_error(wk_model_forward(m, &b, WK_MODE_LOSS, &out) ? NULL : m,
                 "model_forward: Linear (loss mode) returned a NULL output \"loss\"");
    expect_error(wk_model_forward(m, &b, (wk_forward_mode)3, &out) ? NULL : m,
                 "model_forward: invalid mode 3");
    expect_error(wk_model_forward(m, NULL, WK_MODE_LOSS, &out) ? NULL : m,
                 "model_forward: batch is NULL");
    expect_error(wk_model_forward(NULL, &b, WK_MODE_LOSS, &out) ? NULL : m,
                 "model_forward: model is NULL");
    expect_error(wk_model_forward(m, &b, WK_MODE_LOSS, NULL) ? NULL : m,
                 "model_forward: output is NULL");
    wk_model_free(m);
}

Test(model, model_new_errors_free_the_module)
{
    expect_error(wk_model_new(net_new(), NULL, NULL, NULL), "model_new: forward is NULL");
    expect_error(wk_model_new(NULL, custom_forward, NULL, NULL), "model_new: module is NULL");
    expect_error(wk_classifier_new(NULL), "classifier_new: net is NULL");
    expect_error(wk_classifier_new_with_loss(net_new(), NULL), "classifier_new: loss is NULL");
}

/* ---- the classifier ---- */

Test(model, classifier_tensor_and_predict)
{
    wk_model *m = wk_classifier_new(net_new());
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->module->type, "Linear");
    wk_batch b;
    batch_xy(&b);
    wk_model_output out;
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_TENSOR, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 1);
    wk_tensor *logits = wk_model_output_get(&out, "logits");
    expect_shape(logits, 5, 4);
    double want[20];
    int64_t argmax[5];
    for (int r = 0; r < 5; r++) {
        argmax[r] = 0;
        for (int c = 0; c < 4; c++) {
            want[4 * r + c] = logit(X, r, c);
            if (want[4 * r + c] > want[4 * r + argmax[r]]) argmax[r] = c;
        }
    }
    tu_expect_values(logits, want, 20, 1e-6, 1e-6, "logits");

    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_PREDICT, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 4); /* logits, preds, labels, loss (labels given) */
    cr_assert_not_null(wk_model_output_get(&out, "loss"), "%s", wk_last_error());
    tu_expect_values(wk_model_output_get(&out, "logits"), want, 20, 1e-6, 1e-6, "logits");
    wk_tensor *preds = wk_model_output_get(&out, "preds");
    expect_shape(preds, 5);
    cr_assert_eq(preds->dtype, WK_DTYPE_I64);
    for (int r = 0; r < 5; r++) cr_assert_eq(tu_at(preds, r), (double)argmax[r], "row %d", r);
    cr_assert_eq(wk_model_output_get(&out, "labels"), wk_batch_get(&b, "labels"));

    /* Without labels PREDICT still works (inference), TENSOR never needs them. */
    wk_batch only_x = {0};
    wk_batch_set(&only_x, "inputs", wk_batch_get(&b, "inputs"));
    cr_assert_eq(wk_model_forward(m, &only_x, WK_MODE_PREDICT, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 2);
    cr_assert_null(wk_model_output_get(&out, "labels"));
    wk_model_free(m);
}

Test(model, classifier_predict_1d_logits)
{
    wk_model *m = wk_classifier_new(net_new());
    wk_batch b = {0};
    wk_batch_set(&b, "inputs", tu_f32(WK_SHAPE(3), 1, 2, 3)); /* unbatched */
    wk_model_output out;
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_PREDICT, &out), 0, "%s", wk_last_error());
    wk_tensor *preds = wk_model_output_get(&out, "preds");
    cr_assert(preds && preds->ndim == 0);
    int best = 0;
    for (int c = 1; c < 4; c++)
        if (logit(X, 0, c) > logit(X, 0, best)) best = c;
    cr_assert_eq(wk_item(preds), best);
    wk_model_free(m);
}

Test(model, classifier_loss_with_a_given_loss)
{
    wk_model *m = wk_classifier_new_with_loss(net_new(), ce_by_ops);
    wk_batch b;
    batch_xy(&b);
    wk_model_output out;
    cr_assert_eq(wk_model_forward(m, &b, WK_MODE_LOSS, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 1);
    cr_assert_str_eq(out.names[0], "loss");
    /* mean over rows of logsumexp(logits) - logits[label], by hand. */
    double want = 0;
    for (int r = 0; r < 5; r++) {
        double mx = -INFINITY, s = 0;
        for (int c = 0; c < 4; c++) mx = fmax(mx, logit(X, r, c));
        for (int c = 0; c < 4; c++) s += exp(logit(X, r, c) - mx);
        want += (mx + log(s) - logit(X, r, (int)Y[r])) / 5;
    }
    cr_assert_float_eq(wk_item(wk_model_output_get(&out, "loss")), want, 1e-5);
    cr_assert_float_eq(wk_item(wk_model_total_loss(&out)), want, 1e-5);
    wk_model_free(m);
}

Test(model, classifier_errors)
{
    wk_model *m = wk_classifier_new_with_loss(net_new(), ce_by_ops);
    wk_model_output out;
    wk_batch only_x = {0};
    wk_batch_set(&only_x, "inputs", tu_f32(WK_SHAPE(1, 3), 1, 2, 3));
    expect_error(wk_model_forward(m, &only_x, WK_MODE_LOSS, &out) ? NULL : m,
                 "batch_get: the batch has no \"labels\" (it has \"inputs\")");
    wk_batch wrong = {0};
    wk_batch_set(&wrong, "x", tu_f32(WK_SHAPE(1, 3), 1, 2, 3));
    expect_error(wk_model_forward(m, &wrong, WK_MODE_TENSOR, &out) ? NULL : m,
                 "the batch has no \"inputs\" (it has \"x\")");
    wk_batch bad_shape = {0};
    wk_batch_set(&bad_shape, "inputs", tu_f32(WK_SHAPE(1, 2), 1, 2));
    expect_error(wk_model_forward(m, &bad_shape, WK_MODE_TENSOR, &out) ? NULL : m, "linear");
    wk_model_free(m);
}

Test(model, classifier_default_loss)
{
    /* The default loss is nn/loss.h's wk_cross_entropy, written in parallel: when it is
     * not linked in, LOSS mode says so; when it is, it must agree with ce_by_ops. */
    wk_model *m = wk_classifier_new(net_new()),
             *ref = wk_classifier_new_with_loss(net_new(), ce_by_ops);
    wk_batch b;
    batch_xy(&b);
    wk_model_output out, want;
    cr_assert_eq(wk_model_forward(ref, &b, WK_MODE_LOSS, &want), 0, "%s", wk_last_error());
    wk_clear_error();
    if (wk_model_forward(m, &b, WK_MODE_LOSS, &out) < 0) {
        cr_assert(strstr(wk_last_error(), "wk_cross_entropy is not linked into this build"), "%s",
                  wk_last_error());
    } else {
        cr_assert_float_eq(wk_item(wk_model_total_loss(&out)), wk_item(wk_model_total_loss(&want)),
                           1e-5);
    }
    wk_model_free(m);
    wk_model_free(ref);
}

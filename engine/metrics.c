/* Built-in metrics: accuracy (top-k), loss, MSE/MAE, confusion matrix. Their states are
 * sums and counts, so states of several ranks add up. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/reduce.h"
#include "../tensor/tensor-impl.h"
#include "metric.h"

static wk_metric *metric_new(const char *type, int nstate, size_t self_size)
{
    wk_metric *m = calloc(1, sizeof *m);
    double *state = calloc((size_t)(nstate ? nstate : 1), sizeof *state);
    void *self = self_size ? calloc(1, self_size) : NULL;
    if (!m || !state || (self_size && !self)) {
        free(m), free(state), free(self);
        wk_set_error("%s: out of memory", type);
        return NULL;
    }
    m->type = type;
    m->state = state;
    m->nstate = nstate;
    m->self = self;
    return m;
}

static void metric_destroy(wk_metric *m)
{
    free(m->state);
    free(m->self);
    free(m);
}

/* A float tensor as a contiguous f64 copy in the current frame (NULL with an error). */
static wk_tensor *as_f64(wk_tensor *t) { return t ? wk_to_dtype(t, WK_DTYPE_F64) : NULL; }
static wk_tensor *as_i64(wk_tensor *t) { return t ? wk_to_dtype(t, WK_DTYPE_I64) : NULL; }

static wk_tensor *labels_of(const char *type, const wk_batch *b, const wk_model_output *out)
{
    for (int i = 0; i < b->count; i++)
        if (!strcmp(b->names[i], "labels")) return b->tensors[i];
    for (int i = 0; i < out->count; i++)
        if (!strcmp(out->names[i], "labels")) return out->values[i];
    wk_set_error("%s: the batch has no \"labels\"", type);
    return NULL;
}

static wk_tensor *output_of(const char *type, const wk_model_output *out, const char *name)
{
    for (int i = 0; i < out->count; i++)
        if (!strcmp(out->names[i], name)) return out->values[i];
    wk_set_error("%s: the model's PREDICT output has no \"%s\"", type, name);
    return NULL;
}

/* ---- accuracy ---- */

typedef struct {
    int n;
    int k[8];
} acc_cfg;

static int acc_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    const acc_cfg *c = m->self;
    wk_tensor *logits = as_f64(output_of(m->type, out, "logits"));
    wk_tensor *labels = as_i64(labels_of(m->type, b, out));
    if (!logits || !labels) return -1;
    if (logits->ndim != 2 || labels->ndim != 1 || labels->shape[0] != logits->shape[0]) {
        wk_set_error("Accuracy: logits %s and labels %s do not match (expected (N, C) and "
                     "(N))",
                     wki_shape_s(logits), wki_shape_s(labels));
        return -1;
    }
    int64_t N = logits->shape[0], C = logits->shape[1];
    const double *x = wk_data(logits);
    const int64_t *y = wk_data(labels);
    for (int64_t i = 0; i < N; i++) {
        if (y[i] < 0 || y[i] >= C) {
            wk_set_error("Accuracy: label %lld is out of range for %lld classes",
                         (long long)y[i], (long long)C);
            return -1;
        }
        double own = x[i * C + y[i]];
        int64_t greater = 0;
        for (int64_t j = 0; j < C; j++) greater += x[i * C + j] > own;
        if (isnan(own)) greater = C;
        for (int q = 0; q < c->n; q++) m->state[q] += greater < c->k[q];
    }
    m->state[c->n] += (double)N;
    return 0;
}

static int acc_compute(const wk_metric *m, wk_metric_results *r)
{
    const acc_cfg *c = m->self;
    double n = m->state[c->n];
    for (int q = 0; q < c->n; q++) {
        char name[32];
        if (c->k[q] == 1) snprintf(name, sizeof name, "accuracy");
        else snprintf(name, sizeof name, "accuracy_top%d", c->k[q]);
        if (wk_metric_results_set(r, name, n > 0 ? 100.0 * m->state[q] / n : NAN)) return -1;
    }
    return 0;
}

wk_metric *wk_accuracy_new(const int *topk, int n)
{
    static const int one = 1;
    if (!topk || n == 0) {
        topk = &one;
        n = 1;
    }
    if (n < 0 || n > 8) {
        wk_set_error("Accuracy: 1..8 top-k values");
        return NULL;
    }
    for (int q = 0; q < n; q++) {
        if (topk[q] < 1) {
            wk_set_error("Accuracy: top-k values must be >= 1, got %d", topk[q]);
            return NULL;
        }
    }
    wk_metric *m = metric_new("Accuracy", n + 1, sizeof(acc_cfg));
    if (!m) return NULL;
    acc_cfg *c = m->self;
    c->n = n;
    memcpy(c->k, topk, (size_t)n * sizeof *topk);
    m->process = acc_process;
    m->compute = acc_compute;
    m->destroy = metric_destroy;
    return m;
}

/* ---- loss ---- */

static int loss_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    wk_tensor *loss = output_of(m->type, out, "loss");
    if (!loss) return -1;
    double v = wk_item(loss);
    if (isnan(v) && wk_numel(loss) != 1) return -1;
    int64_t n = 1;
    wk_tensor *labels = NULL;
    for (int i = 0; i < b->count; i++)
        if (!strcmp(b->names[i], "labels")) labels = b->tensors[i];
    if (labels && labels->ndim >= 1) n = wk_numel(labels);
    else {
        for (int i = 0; i < out->count; i++)
            if (!strcmp(out->names[i], "logits") && out->values[i]->ndim >= 1)
                n = out->values[i]->shape[0];
    }
    m->state[0] += v * (double)n;
    m->state[1] += (double)n;
    return 0;
}

static int loss_compute(const wk_metric *m, wk_metric_results *r)
{
    return wk_metric_results_set(r, "loss", m->state[1] > 0 ? m->state[0] / m->state[1] : NAN);
}

wk_metric *wk_loss_metric_new(void)
{
    wk_metric *m = metric_new("Loss", 2, 0);
    if (!m) return NULL;
    m->process = loss_process;
    m->compute = loss_compute;
    m->destroy = metric_destroy;
    return m;
}

/* ---- MSE / MAE ---- */

static int mse_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    wk_tensor *targets = NULL;
    for (int i = 0; i < b->count; i++)
        if (!strcmp(b->names[i], "targets")) targets = b->tensors[i];
    if (!targets) {
        wk_set_error("MSE: the batch has no \"targets\"");
        return -1;
    }
    wk_tensor *p = as_f64(output_of(m->type, out, "preds"));
    wk_tensor *t = as_f64(targets);
    if (!p || !t) return -1;
    if (wk_numel(p) != wk_numel(t)) {
        wk_set_error("MSE: preds %s and targets %s differ in size", wki_shape_s(p),
                     wki_shape_s(t));
        return -1;
    }
    const double *x = wk_data(p), *y = wk_data(t);
    for (int64_t i = 0; i < wk_numel(p); i++) {
        double d = x[i] - y[i];
        m->state[0] += d * d;
        m->state[1] += fabs(d);
    }
    m->state[2] += (double)wk_numel(p);
    return 0;
}

static int mse_compute(const wk_metric *m, wk_metric_results *r)
{
    double n = m->state[2];
    if (wk_metric_results_set(r, "mse", n > 0 ? m->state[0] / n : NAN)) return -1;
    return wk_metric_results_set(r, "mae", n > 0 ? m->state[1] / n : NAN);
}

wk_metric *wk_mse_new(void)
{
    wk_metric *m = metric_new("MSE", 3, 0);
    if (!m) return NULL;
    m->process = mse_process;
    m->compute = mse_compute;
    m->destroy = metric_destroy;
    return m;
}

/* ---- confusion matrix ---- */

static int cm_classes(const wk_metric *m) { return *(const int *)m->self; }

static int cm_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    int C = cm_classes(m);
    wk_tensor *preds = NULL;
    for (int i = 0; i < out->count; i++)
        if (!strcmp(out->names[i], "preds")) preds = out->values[i];
    if (!preds) {
        wk_tensor *logits = output_of(m->type, out, "logits");
        preds = logits ? wk_argmax(logits, -1, false) : NULL;
    }
    wk_tensor *p = as_i64(preds), *y = as_i64(labels_of(m->type, b, out));
    if (!p || !y) return -1;
    if (wk_numel(p) != wk_numel(y)) {
        wk_set_error("ConfusionMatrix: %lld predictions for %lld labels",
                     (long long)wk_numel(p), (long long)wk_numel(y));
        return -1;
    }
    const int64_t *pp = wk_data(p), *yy = wk_data(y);
    for (int64_t i = 0; i < wk_numel(p); i++) {
        if (pp[i] < 0 || pp[i] >= C || yy[i] < 0 || yy[i] >= C) {
            wk_set_error("ConfusionMatrix: class %lld (label %lld) is out of range for %d "
                         "classes",
                         (long long)pp[i], (long long)yy[i], C);
            return -1;
        }
        m->state[yy[i] * C + pp[i]] += 1;
    }
    return 0;
}

static int cm_compute(const wk_metric *m, wk_metric_results *r)
{
    int C = cm_classes(m);
    double sp = 0, sr = 0, sf = 0;
    for (int c = 0; c < C; c++) {
        double tp = m->state[c * C + c], col = 0, row = 0;
        for (int j = 0; j < C; j++) {
            col += m->state[j * C + c];
            row += m->state[c * C + j];
        }
        double p = col > 0 ? tp / col : 0, rc = row > 0 ? tp / row : 0;
        double f = p + rc > 0 ? 2 * p * rc / (p + rc) : 0;
        sp += p, sr += rc, sf += f;
        if (c < 8) {
            char name[32];
            snprintf(name, sizeof name, "precision_%d", c);
            if (wk_metric_results_set(r, name, 100 * p)) return -1;
            snprintf(name, sizeof name, "recall_%d", c);
            if (wk_metric_results_set(r, name, 100 * rc)) return -1;
            snprintf(name, sizeof name, "f1_%d", c);
            if (wk_metric_results_set(r, name, 100 * f)) return -1;
        }
    }
    if (wk_metric_results_set(r, "precision", 100 * sp / C)) return -1;
    if (wk_metric_results_set(r, "recall", 100 * sr / C)) return -1;
    return wk_metric_results_set(r, "f1", 100 * sf / C);
}

wk_metric *wk_confusion_matrix_new(int num_classes)
{
    if (num_classes < 2 || num_classes > 4096) {
        wk_set_error("ConfusionMatrix: num_classes must be 2..4096, got %d", num_classes);
        return NULL;
    }
    wk_metric *m = metric_new("ConfusionMatrix", num_classes * num_classes, sizeof(int));
    if (!m) return NULL;
    *(int *)m->self = num_classes;
    m->process = cm_process;
    m->compute = cm_compute;
    m->destroy = metric_destroy;
    return m;
}

const double *wk_confusion_matrix_counts(const wk_metric *m, int *num_classes)
{
    if (!m || !m->type || strcmp(m->type, "ConfusionMatrix")) return NULL;
    if (num_classes) *num_classes = cm_classes(m);
    return m->state;
}

/* The metric interface's helpers and the evaluator. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../tensor/tensor-impl.h"
#include "metric.h"

void wk_metric_reset(wk_metric *m)
{
    if (!m) return;
    if (m->reset) m->reset(m);
    else if (m->state) memset(m->state, 0, (size_t)m->nstate * sizeof *m->state);
}

int wk_metric_process(wk_metric *m, const wk_batch *batch, const wk_model_output *out)
{
    if (!m || !m->process) {
        wk_set_error("metric_process: metric is NULL");
        return -1;
    }
    return m->process(m, batch, out);
}

int wk_metric_compute(const wk_metric *m, wk_metric_results *r)
{
    if (!m || !m->compute || !r) {
        wk_set_error("metric_compute: metric or results is NULL");
        return -1;
    }
    return m->compute(m, r);
}

void wk_metric_free(wk_metric *m)
{
    if (!m) return;
    if (m->destroy) m->destroy(m);
}

double wk_metric_results_get(const wk_metric_results *r, const char *name)
{
    if (!r || !name) return NAN;
    for (int i = 0; i < r->count; i++)
        if (!strcmp(r->names[i], name)) return r->values[i];
    return NAN;
}

int wk_metric_results_set(wk_metric_results *r, const char *name, double value)
{
    if (!r || !name) return -1;
    for (int i = 0; i < r->count; i++) {
        if (!strcmp(r->names[i], name)) {
            r->values[i] = value;
            return 0;
        }
    }
    if (r->count == WK_METRIC_MAX_RESULTS) {
        wk_set_error("metric results: at most %d values", WK_METRIC_MAX_RESULTS);
        return -1;
    }
    snprintf(r->names[r->count], WK_METRIC_NAME_LEN, "%s", name);
    r->values[r->count++] = value;
    return 0;
}

/* ---- evaluator ---- */

struct wk_evaluator {
    wk_metric **metrics;
    int n;
    wk_state_reduce_fn reduce;
    void *reduce_user;
};

wk_evaluator *wk_evaluator_new(wk_metric *const *metrics, int n)
{
    wk_evaluator *ev = calloc(1, sizeof *ev);
    wk_metric **ms = calloc((size_t)(n > 0 ? n : 1), sizeof *ms);
    bool ok = ev && ms && n >= 0 && (n == 0 || metrics);
    for (int i = 0; ok && i < n; i++) ok = metrics[i] != NULL;
    if (!ok) {
        for (int i = 0; metrics && i < n; i++) wk_metric_free(metrics[i]);
        free(ev), free(ms);
        if (!wk_last_error()[0]) wk_set_error("evaluator_new: a metric is NULL");
        return NULL;
    }
    for (int i = 0; i < n; i++) ms[i] = metrics[i];
    ev->metrics = ms;
    ev->n = n;
    return ev;
}

void wk_evaluator_free(wk_evaluator *ev)
{
    if (!ev) return;
    for (int i = 0; i < ev->n; i++) wk_metric_free(ev->metrics[i]);
    free(ev->metrics);
    free(ev);
}

void wk_evaluator_set_reduce(wk_evaluator *ev, wk_state_reduce_fn fn, void *user)
{
    if (!ev) return;
    ev->reduce = fn;
    ev->reduce_user = user;
}

/* Append the metrics' results, prefixed, to results. */
static int collect(const wk_evaluator *ev, const char *prefix, wk_metric_results *results)
{
    wk_metric_results local = {0};
    for (int i = 0; i < ev->n; i++)
        if (wk_metric_compute(ev->metrics[i], &local)) return -1;
    for (int i = 0; i < local.count; i++) {
        char name[WK_METRIC_NAME_LEN];
        if (prefix && *prefix) snprintf(name, sizeof name, "%s/%s", prefix, local.names[i]);
        else snprintf(name, sizeof name, "%s", local.names[i]);
        if (wk_metric_results_set(results, name, local.values[i])) return -1;
    }
    return 0;
}

int wk_evaluator_metric_names(wk_evaluator *ev, const char *prefix, wk_metric_results *names)
{
    if (!ev || !names) {
        wk_set_error("evaluator_metric_names: needs an evaluator and results");
        return -1;
    }
    for (int i = 0; i < ev->n; i++) wk_metric_reset(ev->metrics[i]);
    int before = names->count;
    if (collect(ev, prefix, names)) return -1;
    for (int i = before; i < names->count; i++) names->values[i] = NAN;
    return 0;
}

int wk_evaluator_run(wk_evaluator *ev, wk_model *model, const wk_data_source *data,
                     const char *prefix, wk_metric_results *results)
{
    if (!ev || !model || !data || !data->next || !results) {
        wk_set_error("evaluator_run: needs an evaluator, a model, data and results");
        return -1;
    }
    for (int i = 0; i < ev->n; i++) wk_metric_reset(ev->metrics[i]);
    if (data->reset && data->reset(data->self)) return -1;
    bool was_training = model->module ? model->module->training : false;
    if (model->module) wk_module_train(model->module, false);
    wk_no_grad_begin();
    int rc = 0;
    for (;;) {
        wk_frame_begin();
        const struct wk_batch *b = NULL;
        int got = data->next(data->self, &b);
        if (got <= 0) {
            wk_frame_end();
            rc = got < 0 ? -1 : 0;
            break;
        }
        wk_model_output out;
        rc = wk_model_forward(model, (const wk_batch *)b, WK_MODE_PREDICT, &out);
        for (int i = 0; i < ev->n && !rc; i++)
            rc = wk_metric_process(ev->metrics[i], (const wk_batch *)b, &out);
        wk_frame_end();
        if (rc) break;
    }
    wk_no_grad_end();
    if (model->module) wk_module_train(model->module, was_training);
    for (int i = 0; i < ev->n && !rc && ev->reduce; i++)
        if (ev->metrics[i]->nstate)
            rc = ev->reduce(ev->metrics[i]->state, ev->metrics[i]->nstate, ev->reduce_user);
    if (rc) return -1;
    return collect(ev, prefix, results);
}

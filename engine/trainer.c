/* Supervised trainer and evaluator engines (see trainer.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../optim/clip.h"
#include "../tensor/elementwise.h"
#include "trainer.h"

typedef struct {
    wk_model *model;
    wk_optimizer *opt;
    wk_trainer_opts opts;
} trainer;

typedef struct {
    wk_model *model;
    wk_metric **metrics;
    int n;
} evaluator;

/* Prefix the current error with `what` (the message is copied first: it may be the
 * buffer wk_set_error writes). */
static void prefix_error(const char *what)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", wk_last_error()[0] ? wk_last_error() : "failed");
    wk_set_error("%s: %s", what, msg);
}

/* ---- the trainer ---- */

static int clip(trainer *t)
{
    if (t->opts.clip_grad_norm <= 0 && t->opts.clip_grad_value <= 0) return 0;
    int n = wk_optimizer_params(t->opt, NULL, 0);
    wk_tensor **params = malloc((size_t)(n > 0 ? n : 1) * sizeof *params);
    if (!params) {
        wk_set_error("supervised_trainer: out of memory");
        return -1;
    }
    wk_optimizer_params(t->opt, params, n);
    int rc = 0;
    if (t->opts.clip_grad_value > 0 && wk_clip_grad_value_(params, n, t->opts.clip_grad_value))
        rc = -1;
    if (!rc && t->opts.clip_grad_norm > 0 &&
        wk_clip_grad_norm_(params, n, t->opts.clip_grad_norm, 2.0, false) < 0)
        rc = -1;
    free(params);
    return rc;
}

static wk_engine_output *train_step(wk_engine *e, const wk_batch *b, void *user)
{
    trainer *t = user;
    const wk_engine_state *s = wk_engine_get_state(e);
    wk_module_train(t->model->module, true);
    wk_model_output out;
    if (wk_model_forward(t->model, b, WK_MODE_LOSS, &out) < 0) goto fail;
    wk_tensor *loss = wk_model_total_loss(&out);
    if (!loss) goto fail;
    double value = wk_item(loss);
    int n = t->opts.accumulate > 1 ? t->opts.accumulate : 1;
    if (n == 1) {
        if (wk_backward(loss) || clip(t) || wk_optimizer_step(t->opt)) goto fail;
        wk_optimizer_zero_grad(t->opt);
    } else {
        /* The iteration within the epoch (1-based) and the micro-batches left in it (this
         * one included; 0 when the epoch length is not known yet, in the first epoch).
         * Windows restart with every epoch (the last one is cut short), so a window ends
         * at every n-th iteration of an epoch and at its last: derived from the state,
         * this stays right after a restored state. */
        int64_t in_epoch = s->iteration, left = 0;
        if (s->epoch_length > 0) {
            in_epoch = (s->iteration - 1) % s->epoch_length + 1;
            left = s->epoch_length - in_epoch + 1;
        }
        bool last = left == 1;
        wk_tensor *scaled = wk_mul_scalar(loss, wk_optimizer_loss_scale(t->opt, left));
        if (!scaled || wk_backward(scaled)) goto fail;
        if ((in_epoch % n == 0 || last) && clip(t)) goto fail;
        if (wk_optimizer_micro_step(t->opt, last) < 0) goto fail;
    }
    wk_engine_output_tensor(e, loss);
    return wk_engine_output_scalar(e, "loss", value);
fail:
    prefix_error("supervised_trainer");
    return NULL;
}

wk_engine *wk_create_supervised_trainer(wk_model *model, wk_optimizer *opt,
                                        const wk_trainer_opts *opts)
{
    wk_trainer_opts o = opts ? *opts : (wk_trainer_opts){0};
    if (!model || !opt) {
        wk_set_error("create_supervised_trainer: %s is NULL",
                     model ? "the optimizer" : "the model");
        return NULL;
    }
    if (o.accumulate < 0 || !(o.clip_grad_norm >= 0) || !(o.clip_grad_value >= 0)) {
        wk_set_error("create_supervised_trainer: bad options accumulate = %d, clip_grad_norm = "
                     "%g, clip_grad_value = %g (expected accumulate >= 0 and clips >= 0)",
                     o.accumulate, o.clip_grad_norm, o.clip_grad_value);
        return NULL;
    }
    if (wk_optimizer_set_accumulation(opt, o.accumulate > 1 ? o.accumulate : 1)) {
        prefix_error("create_supervised_trainer");
        return NULL;
    }
    trainer *t = calloc(1, sizeof *t);
    if (!t) {
        wk_set_error("create_supervised_trainer: out of memory");
        return NULL;
    }
    *t = (trainer){.model = model, .opt = opt, .opts = o};
    wk_engine *e = wk_engine_new(train_step, t);
    if (!e) free(t);
    return e;
}

/* ---- the evaluator ---- */

static wk_engine_output *eval_step(wk_engine *e, const wk_batch *b, void *user)
{
    evaluator *ev = user;
    wk_module_train(ev->model->module, false);
    wk_model_output out;
    wk_no_grad_begin();
    int rc = wk_model_forward(ev->model, b, WK_MODE_PREDICT, &out);
    for (int i = 0; !rc && i < ev->n; i++)
        if (wk_metric_process(ev->metrics[i], b, &out)) rc = -1;
    wk_no_grad_end();
    if (rc) {
        prefix_error("supervised_evaluator");
        return NULL;
    }
    return wk_engine_output_tensor(e, out.count ? out.values[0] : NULL);
}

static int eval_started(wk_engine *e, void *user)
{
    (void)e;
    evaluator *ev = user;
    for (int i = 0; i < ev->n; i++) wk_metric_reset(ev->metrics[i]);
    return 0;
}

static int eval_completed(wk_engine *e, void *user)
{
    evaluator *ev = user;
    wk_metric_results r = {0};
    for (int i = 0; i < ev->n; i++) {
        if (wk_metric_compute(ev->metrics[i], &r)) {
            prefix_error("supervised_evaluator");
            return -1;
        }
    }
    for (int i = 0; i < r.count; i++) {
        if (wk_engine_set_metric(e, r.names[i], r.values[i])) {
            prefix_error("supervised_evaluator");
            return -1;
        }
    }
    return 0;
}

static void free_metrics(wk_metric *const *metrics, int n)
{
    for (int i = 0; metrics && i < n; i++) wk_metric_free(metrics[i]);
}

wk_engine *wk_create_supervised_evaluator(wk_model *model, wk_metric *const *metrics, int n)
{
    const char *bad = !model ? "the model is NULL"
                      : n < 0 || (n > 0 && !metrics) ? "bad metric list"
                                                      : NULL;
    for (int i = 0; !bad && i < n; i++)
        if (!metrics[i]) bad = "a metric is NULL";
    if (bad) {
        wk_set_error("create_supervised_evaluator: %s (n = %d)", bad, n);
        if (n > 0) free_metrics(metrics, n);
        return NULL;
    }
    evaluator *ev = calloc(1, sizeof *ev);
    wk_metric **copy = malloc((size_t)(n > 0 ? n : 1) * sizeof *copy);
    wk_engine *e = ev && copy ? wk_engine_new(eval_step, ev) : NULL;
    if (!e) {
        wk_set_error("create_supervised_evaluator: out of memory");
        free(ev);
        free(copy);
        free_metrics(metrics, n);
        return NULL;
    }
    for (int i = 0; i < n; i++) copy[i] = metrics[i];
    *ev = (evaluator){.model = model, .metrics = copy, .n = n};
    if (!wk_engine_on(e, WK_EVENT_STARTED, eval_started, ev).engine ||
        !wk_engine_on(e, WK_EVENT_COMPLETED, eval_completed, ev).engine) {
        wk_trainer_free(e);
        return NULL;
    }
    return e;
}

void wk_trainer_free(wk_engine *e)
{
    if (!e) return;
    trainer *t = wk_engine_process_user(e, train_step);
    evaluator *ev = wk_engine_process_user(e, eval_step);
    wk_engine_free(e);
    free(t);
    if (ev) {
        free_metrics(ev->metrics, ev->n);
        free(ev->metrics);
        free(ev);
    }
}

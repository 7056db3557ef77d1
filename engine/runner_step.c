/* The Runner's micro-batch (the engine's process function): forward, backward, and at
 * the end of an accumulation window clip, NaN check, optimizer step, EMA, scheduler. */
#include <math.h>
#include <stdio.h>
#include <time.h>

#include "../tensor/tensor-impl.h"
#include "../autograd/autograd.h"
#include "../optim/clip.h"
#include "../tensor/elementwise.h"
#include "../tensor/profiler.h"
#include "runner-impl.h"

/* The window the micro-batch i (1-based in an epoch of L) belongs to: windows of A
 * restart with every epoch and the last one is cut short, so both the loss scale and
 * the update points derive from the position alone (and survive a resume). */
static int64_t window_length(int64_t i, int64_t L, int64_t A)
{
    int64_t start = (i - 1) / A * A;
    return L - start < A ? L - start : A;
}

/* Clip the grads as configured; returns the total norm before clipping (NaN when not
 * computed), or -2 on error. */
static double clip(wk_runner *r)
{
    const wk_runner_opts *o = &r->opts;
    if (o->clip_max_norm > 0) {
        double n = wk_clip_grad_norm_(r->params, r->nparams, o->clip_max_norm,
                                      o->clip_norm_type, false);
        return n < 0 ? -2 : n;
    }
    if (o->clip_value > 0 && wk_clip_grad_value_(r->params, r->nparams, o->clip_value))
        return -2;
    return NAN;
}

static void prefix_error(const char *what)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", wk_last_error()[0] ? wk_last_error() : "failed");
    wk_set_error("%s: %s", what, msg);
}

/* The end of a window: clip, NaN check, update. 1: updated, 0: dropped, -1: error. */
static int update(wk_runner *r)
{
    const wk_runner_opts *o = &r->opts;
    wk_runner_state *s = &r->state;
    if (r->ddp) {
        /* Agrees on failure first: a rank that failed elsewhere ends every rank here. */
        wk_profiler_phase_begin("all-reduce");
        int a = wk_ddp_allreduce_grads(r->ddp, true);
        wk_profiler_phase_end();
        if (a != 1) {
            r->failure_shared = true;
            return -2;
        }
        if (o->nan_policy == WK_NAN_SKIP) {
            /* A window dropped on one rank is dropped on all. */
            int any = wk_dist_agree_any(r->comm, r->window_bad);
            if (any < 0) return -1;
            r->window_bad = any;
        }
    }
    wk_profiler_phase_begin("clip");
    double norm = clip(r);
    wk_profiler_phase_end();
    if (norm == -2) return -1;
    s->grad_norm = norm;
    bool bad = r->window_bad || isinf(norm) || (isnan(norm) && o->clip_max_norm > 0);
    r->window_bad = false;
    if (bad) {
        if (o->nan_policy == WK_NAN_STOP) {
            r->stop_reason = WK_STOP_NAN;
            wk_set_error("runner: non-finite gradient norm (%g) at epoch %lld, iteration %lld "
                         "(global step %lld): training stopped, the last checkpoint is "
                         "intact (nan_policy \"skip\" drops such updates instead)",
                         norm, (long long)s->epoch, (long long)s->iter_in_epoch,
                         (long long)s->global_step);
            return -1;
        }
        s->nan_skipped++;
        fprintf(stderr, "runner: skipped the update at epoch %lld, iteration %lld (non-finite "
                        "loss or gradient; %lld skipped so far)\n",
                (long long)s->epoch, (long long)s->iter_in_epoch, (long long)s->nan_skipped);
        wk_optimizer_zero_grad(r->parts.optimizer);
        return 0;
    }
    wk_profiler_phase_begin("optimizer");
    int rc = wk_optimizer_step(r->parts.optimizer);
    if (!rc) wk_optimizer_zero_grad(r->parts.optimizer);
    wk_profiler_phase_end();
    if (rc) return -1;
    s->global_step++;
    if (r->ema) {
        wk_profiler_phase_begin("EMA");
        rc = wk_ema_update(r->ema);
        wk_profiler_phase_end();
        if (rc) return -1;
    }
    /* Per-step schedulers (also qWarmupScheduler with step_on valid_end, which counts its
     * warmup per update); per-epoch and per-evaluation ones step in the policy. */
    wk_scheduler *sched = r->parts.scheduler;
    if (sched && wk_scheduler_unit(sched) == WK_SCHED_PER_STEP) {
        wk_profiler_phase_begin("scheduler");
        rc = wk_scheduler_step(sched);
        wk_profiler_phase_end();
        if (rc) return -1;
    }
    return 1;
}

wk_engine_output *wki_runner_step(wk_engine *e, const struct wk_batch *batch, void *user)
{
    wk_runner *r = user;
    wk_runner_state *s = &r->state;
    const wk_runner_opts *o = &r->opts;
    const wk_engine_state *es = wk_engine_get_state(e);
    double t0 = wki_now();
    int64_t L = s->epoch_length;
    s->epoch = es->epoch;
    s->micro_step = es->iteration;
    s->iter_in_epoch = es->iteration - (es->epoch - 1) * L;
    s->updated = false;
    s->grad_norm = NAN;
    int64_t i = s->iter_in_epoch;
    int64_t k = window_length(i, L, o->accumulate);
    bool window_end = i % o->accumulate == 0 || i == L;

    wk_model *model = r->parts.model;
    wk_module_train(model->module, true);
    wk_model_output out;
    wk_profiler_phase_begin("forward");
    wk_tensor *loss = wk_model_forward(model, batch, WK_MODE_LOSS, &out) ? NULL
                                                                          : wk_model_total_loss(&out);
    wk_profiler_phase_end();
    if (!loss) goto fail;
    double value = wk_item(loss);
    s->loss = value;
    s->outputs = &out;
    int rc = wki_runner_fire_event(r, RUNNER_EV_LOSS_COMPUTED);
    s->outputs = NULL;
    if (rc) return NULL;
    if (!isfinite(value)) {
        if (o->nan_policy == WK_NAN_STOP) {
            r->stop_reason = WK_STOP_NAN;
            wk_set_error("runner: the loss is %g at epoch %lld, iteration %lld (global step "
                         "%lld): training stopped, the last checkpoint is intact (nan_policy "
                         "\"skip\" drops such updates instead)",
                         value, (long long)s->epoch, (long long)i, (long long)s->global_step);
            return NULL;
        }
        r->window_bad = true;
    } else {
        wk_profiler_phase_begin("backward");
        wk_tensor *scaled = k > 1 ? wk_mul_scalar(loss, 1.0 / (double)k) : loss;
        int bad = !scaled || wk_backward(scaled);
        wk_profiler_phase_end();
        if (bad) goto fail;
    }
    if (window_end) {
        int u = update(r);
        if (u == -2) return NULL; /* another rank failed: its message, no report back */
        if (u < 0) {
            if (r->stop_reason == WK_STOP_NAN) return NULL;
            goto fail;
        }
        s->updated = u == 1;
    }
    s->lr = wk_optimizer_get_lr(r->parts.optimizer, 0);
    s->iter_time = wki_now() - t0;
    wk_engine_output_tensor(e, loss);
    return wk_engine_output_scalar(e, "loss", value);
fail:
    prefix_error("runner");
    return NULL;
}

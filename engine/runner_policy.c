/* The Runner's policy on the engine's events: the evaluation and save triggers, the
 * boundary (evaluation, best, plateau, early stopping, checkpoints, stop) and the end of
 * training. Order: docs/RUNNER.md, "One iteration, in order". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../optim/ema.h"
#include "../tensor/profiler.h"
#include "runner-impl.h"

static bool can_evaluate(const wk_runner *r)
{
    return r->parts.evaluator && (r->parts.val_loader || r->parts.test_loader);
}

static wk_evaluator *evaluator_for(const wk_runner *r, const wk_loader *loader)
{
    if (loader == r->parts.test_loader && r->parts.test_evaluator) return r->parts.test_evaluator;
    return r->parts.evaluator;
}

/* One stage (val or test) of one model (raw or EMA) into r->metrics. */
static int eval_stage(wk_runner *r, wk_loader *loader, const char *prefix)
{
    if (!loader) return 0;
    wk_data_source src = wk_loader_source(loader);
    return wk_evaluator_run(evaluator_for(r, loader), r->parts.model, &src, prefix,
                            &r->metrics);
}

static int evaluate(wk_runner *r);

int wki_runner_evaluate(wk_runner *r)
{
    wk_profiler_phase_begin("eval");
    int rc = evaluate(r);
    wk_profiler_phase_end();
    return rc;
}

static int evaluate(wk_runner *r)
{
    if (wki_runner_fire_event(r, RUNNER_EV_EVAL_STARTED)) return -1;
    r->metrics.count = 0;
    int rc = eval_stage(r, r->parts.val_loader, "val") ||
             eval_stage(r, r->parts.test_loader, "test");
    if (!rc && r->ema) {
        if (wk_ema_num_updates(r->ema) > 0) {
            if (wk_ema_swap_in(r->ema)) return -1;
            rc = eval_stage(r, r->parts.val_loader, "val_ema") ||
                 eval_stage(r, r->parts.test_loader, "test_ema");
            if (wk_ema_swap_out(r->ema)) return -1;
        } else {
            /* Before the first update the EMA is the model itself. */
            rc = eval_stage(r, r->parts.val_loader, "val_ema") ||
                 eval_stage(r, r->parts.test_loader, "test_ema");
        }
    }
    if (rc) return -1;
    r->last_eval_step = r->state.global_step;
    return wki_runner_fire_event(r, RUNNER_EV_EVAL_COMPLETED);
}

int wki_runner_metric_names(wk_runner *r, wk_metric_results *names)
{
    names->count = 0;
    const char *stages[4] = {"val", "test", "val_ema", "test_ema"};
    const wk_loader *loaders[4] = {r->parts.val_loader, r->parts.test_loader,
                                   r->parts.val_loader, r->parts.test_loader};
    int n = r->opts.use_ema ? 4 : 2;
    for (int i = 0; i < n; i++)
        if (loaders[i] && wk_evaluator_metric_names(evaluator_for(r, loaders[i]), stages[i],
                                                     names))
            return -1;
    return 0;
}

static void stop(wk_runner *r, wk_stop_reason why)
{
    if (!r->pending_stop) r->stop_reason = why;
    r->pending_stop = true;
}

/* The metric a plateau scheduler steps on: early stopping's target, else best's. */
static const char *plateau_target(const wk_runner *r)
{
    if (r->have_es) return r->es.target;
    if (r->have_best) return r->best.target;
    return NULL;
}

/* After an evaluation: best, plateau scheduler, early stopping, then the best file.
 * State changes come before any file so that best.safetensors resumes exactly like a
 * regular checkpoint written at the same boundary. Sets *stop_now for early stopping. */
static int after_eval(wk_runner *r, bool with_early_stop, bool *stop_now)
{
    int64_t step = r->state.global_step;
    bool improved = false;
    if (r->have_best)
        improved = wk_early_stop_update(&r->best,
                                        wk_metric_results_get(&r->metrics, r->best.target), step);
    wk_scheduler *sched = r->parts.scheduler;
    const char *pt = plateau_target(r);
    if (sched && wk_scheduler_takes_metric(sched)) {
        if (!pt) {
            wk_set_error("runner: the %s scheduler steps on a metric, but there is no "
                         "early_stop or best target",
                         wk_scheduler_type_name(sched));
            return -1;
        }
        if (wk_scheduler_step_metric(sched, wk_metric_results_get(&r->metrics, pt))) return -1;
        r->state.lr = wk_optimizer_get_lr(r->parts.optimizer, 0);
    }
    if (with_early_stop && r->have_es) {
        wk_early_stop_update(&r->es, wk_metric_results_get(&r->metrics, r->es.target), step);
        *stop_now = wk_early_stop_should_stop(&r->es);
    }
    if (improved) {
        if (wki_runner_fire_event(r, RUNNER_EV_BEST)) return -1;
        if (r->opts.save_best && wki_runner_save(r, "best")) return -1;
    }
    return 0;
}

/* Act on what is pending: evaluation, regular checkpoint, stop. */
static int boundary(wk_runner *r)
{
    bool early = false;
    if (r->pending_eval) {
        r->pending_eval = false;
        if (wki_runner_evaluate(r) || after_eval(r, true, &early)) return -1;
    }
    if (r->pending_save) {
        r->pending_save = false;
        if (wki_runner_save(r, "regular")) return -1;
    }
    if (early) {
        stop(r, WK_STOP_EARLY_STOP);
        r->state.stop_reason = r->stop_reason;
        if (wki_runner_fire_event(r, RUNNER_EV_EARLY_STOP)) return -1;
    }
    if (r->pending_stop) wk_engine_terminate(r->engine);
    return 0;
}

static int on_iteration_completed(wk_engine *e, void *user)
{
    wk_runner *r = user;
    wk_runner_state *s = &r->state;
    const wk_runner_opts *o = &r->opts;
    const wk_engine_state *es = wk_engine_get_state(e);
    s->data_time = es->time_data - r->data_time_seen;
    r->data_time_seen = es->time_data;
    int rc = wki_runner_fire(r, HOOK_BATCH_END);
    int64_t L = s->epoch_length, step = s->global_step;
    bool window_end = s->iter_in_epoch % o->accumulate == 0 || s->iter_in_epoch == L;
    if (rc) return -1; /* wk_runner_run tells the other ranks */
    if (s->updated) {
        if (o->run_mode == WK_RUN_STEP && o->eval_interval > 0 && step % o->eval_interval == 0 &&
            can_evaluate(r))
            r->pending_eval = true;
        if (o->save_interval > 0 && step % o->save_interval == 0) r->pending_save = true;
        if (o->max_steps > 0 && step >= o->max_steps) stop(r, WK_STOP_MAX_STEPS);
    }
    /* Requests wait for the end of the accumulation window: a checkpoint never holds
     * half-accumulated gradients. */
    if (window_end && r->comm && wk_comm_size(r->comm) > 1) {
        /* Requests from any rank act on all, at the same update. */
        if (wki_runner_agree(r, true)) return -1;
        int32_t f[3] = {r->want_checkpoint, r->want_stop, r->signalled};
        if (wk_comm_allreduce(r->comm, f, 3, WK_DTYPE_I32, WK_COMM_MAX)) return -1;
        r->want_checkpoint = f[0];
        r->want_stop = f[1];
        if (f[2]) r->signalled = 1;
    }
    if (window_end) {
        if (r->want_checkpoint) r->pending_save = true;
        r->want_checkpoint = false;
        if (r->signalled) stop(r, WK_STOP_SIGNAL);
        if (r->want_stop) stop(r, WK_STOP_REQUESTED);
    }
    /* The epoch's last micro-batch: the boundary comes after on_epoch_end. */
    if (s->iter_in_epoch == L) return 0;
    if (boundary(r)) return -1;
    return window_end ? wk_profiler_step() : 0;
}

static int on_epoch_completed(wk_engine *e, void *user)
{
    wk_runner *r = user;
    wk_runner_state *s = &r->state;
    const wk_runner_opts *o = &r->opts;
    const wk_engine_state *es = wk_engine_get_state(e);
    s->epoch = es->epoch;
    s->iter_in_epoch = s->epoch_length;
    if (wki_runner_fire(r, HOOK_EPOCH_END) || wki_runner_agree(r, true)) return -1;
    wk_scheduler *sched = r->parts.scheduler;
    if (sched && wk_scheduler_unit(sched) == WK_SCHED_PER_EPOCH) {
        if (wk_scheduler_step(sched)) return -1;
        s->lr = wk_optimizer_get_lr(r->parts.optimizer, 0);
    }
    if (o->run_mode == WK_RUN_EPOCH && o->eval_interval > 0 && s->epoch % o->eval_interval == 0 &&
        can_evaluate(r))
        r->pending_eval = true;
    if (boundary(r)) return -1;
    return wk_profiler_step(); /* the epoch's last window ends here */
}

static int on_completed(wk_engine *e, void *user)
{
    (void)e;
    wk_runner *r = user;
    wk_runner_state *s = &r->state;
    /* The engine ends by itself only at max_epochs; every other end is a stop(). */
    if (r->stop_reason == WK_STOP_NONE) r->stop_reason = WK_STOP_MAX_EPOCHS;
    s->stop_reason = r->stop_reason;
    r->completed = true;
    if (r->stop_reason != WK_STOP_SIGNAL && r->opts.eval_at_end && can_evaluate(r) &&
        r->last_eval_step != s->global_step) {
        bool unused = false;
        if (wki_runner_evaluate(r) || after_eval(r, false, &unused)) return -1;
    }
    if (wki_runner_save(r, "last")) return -1;
    return wki_runner_fire(r, HOOK_TRAIN_END);
}

int wki_runner_attach_policy(wk_runner *r)
{
    if (!wk_engine_on(r->engine, WK_EVENT_ITERATION_COMPLETED, on_iteration_completed, r).engine ||
        !wk_engine_on(r->engine, WK_EVENT_EPOCH_COMPLETED, on_epoch_completed, r).engine ||
        !wk_engine_on(r->engine, WK_EVENT_COMPLETED, on_completed, r).engine)
        return -1;
    return 0;
}

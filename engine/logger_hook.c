/* The Runner's logging hook (see logger_hook.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tensor/tensor-impl.h"
#include "logger_hook.h"
#include "runner-impl.h"

typedef struct {
    wk_logger *lg;
    double t0;                    /* wall clock at on_train_begin */
    int64_t step0;                /* global_step then */
    double loss_sum, time_sum, data_sum; /* the log window */
    int64_t window;
    double grad_norm;             /* of the last update */
} logger_hook;

static wk_log_mode mode_of(const wk_runner_state *s)
{
    return s->run_mode == WK_RUN_STEP ? WK_LOG_MODE_STEP : WK_LOG_MODE_EPOCH;
}

/* Updates of the whole run: max_steps, or max_epochs' worth, whichever is smaller. */
static int64_t total_steps(const wk_runner_state *s)
{
    int64_t by_epochs = s->max_epochs > 0 ? s->max_epochs * s->steps_per_epoch : 0;
    if (s->max_steps > 0 && (by_epochs == 0 || s->max_steps < by_epochs)) return s->max_steps;
    return by_epochs;
}

static wk_log_train record(const logger_hook *h, const wk_runner_state *s, double loss,
                           double time_s, double data_s)
{
    wk_log_train t = WK_LOG_TRAIN_INIT;
    t.epoch = s->epoch;
    t.iter_in_epoch = s->iter_in_epoch;
    t.epoch_length = s->epoch_length;
    t.global_step = s->global_step;
    t.max_steps = total_steps(s);
    t.lr = s->lr;
    t.eta_s = wk_log_eta(wki_now() - h->t0, s->global_step - h->step0,
                         t.max_steps - s->global_step);
    t.time_s = time_s;
    t.data_time_s = data_s;
    t.memory_mb = (double)wk_alloc_get_stats().peak_bytes_in_use / 1048576.0;
    t.grad_norm = h->grad_norm;
    t.loss = loss;
    return t;
}

static int on_train_begin(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    logger_hook *h = u;
    h->t0 = wki_now();
    h->step0 = s->global_step;
    h->grad_norm = NAN;
    if (s->resumed_from)
        wk_logger_info(h->lg, "Resumed from %s at step %lld (epoch %lld, iteration %lld)",
                       s->resumed_from, (long long)s->global_step, (long long)s->epoch,
                       (long long)s->iter_in_epoch);
    if (s->run_mode == WK_RUN_STEP)
        wk_logger_info(h->lg, "Training in step mode to %lld steps (%lld micro-batches per "
                              "epoch, %lld steps per epoch), work_dir %s",
                       (long long)total_steps(s), (long long)s->epoch_length,
                       (long long)s->steps_per_epoch, s->work_dir);
    else
        wk_logger_info(h->lg, "Training for %lld epochs (%lld micro-batches, %lld steps per "
                              "epoch), work_dir %s",
                       (long long)s->max_epochs, (long long)s->epoch_length,
                       (long long)s->steps_per_epoch, s->work_dir);
    return 0;
}

static int on_batch_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    logger_hook *h = u;
    h->loss_sum += s->loss;
    h->time_sum += s->iter_time + s->data_time;
    h->data_sum += s->data_time;
    h->window++;
    if (s->updated && !isnan(s->grad_norm)) h->grad_norm = s->grad_norm;
    bool log = s->iter_in_epoch % s->opts->log_interval == 0 || s->iter_in_epoch == s->epoch_length;
    double n = (double)h->window;
    if (!log) {
        wk_log_train t = record(h, s, h->loss_sum / n, h->time_sum / n, h->data_sum / n);
        return wk_logger_progress(h->lg, &t);
    }
    wk_log_train t = record(h, s, h->loss_sum / n, h->time_sum / n, h->data_sum / n);
    h->loss_sum = h->time_sum = h->data_sum = 0;
    h->window = 0;
    return wk_logger_train(h->lg, &t);
}

static int on_eval_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    logger_hook *h = u;
    const wk_metric_results *m = s->metrics;
    const char *names[WK_METRIC_MAX_RESULTS];
    int64_t iters[WK_METRIC_MAX_RESULTS];
    for (int i = 0; i < m->count; i++) {
        names[i] = m->names[i];
        const wk_loader *l = !strncmp(names[i], "test", 4) ? r->parts.test_loader
                                                           : r->parts.val_loader;
        iters[i] = l ? wk_loader_length(l) : 0;
    }
    wk_log_eval e = {.epoch = s->epoch, .global_step = s->global_step,
                     .max_steps = total_steps(s), .n = m->count, .names = names,
                     .values = m->values, .iters = iters};
    return wk_logger_eval(h->lg, &e);
}

static int on_checkpoint_saved(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    logger_hook *h = u;
    wk_log_ckpt_kind kind = !strcmp(s->checkpoint_kind, "best")   ? WK_LOG_CKPT_BEST
                            : !strcmp(s->checkpoint_kind, "last") ? WK_LOG_CKPT_LAST
                                                                  : WK_LOG_CKPT_REGULAR;
    char note[160];
    const char *np = NULL;
    if (kind == WK_LOG_CKPT_BEST && s->best) {
        snprintf(note, sizeof note, "best %s %.4f at step %lld", s->best->target, s->best->best,
                 (long long)s->best->best_step);
        np = note;
    }
    return wk_logger_checkpoint(h->lg, kind, s->checkpoint_path, s->global_step, s->epoch, np);
}

static int on_early_stop(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    logger_hook *h = u;
    const wk_early_stop *es = s->early_stop;
    return wk_logger_early_stop(h->lg, s->global_step, s->epoch, es->target, es->min_delta,
                                es->patience, es->best, es->best_step);
}

static int on_train_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    logger_hook *h = u;
    static const wk_log_end_reason map[WK_STOP_COUNT] = {
        [WK_STOP_NONE] = WK_LOG_END_ERROR,         [WK_STOP_MAX_STEPS] = WK_LOG_END_MAX_STEPS,
        [WK_STOP_MAX_EPOCHS] = WK_LOG_END_MAX_EPOCHS, [WK_STOP_EARLY_STOP] = WK_LOG_END_EARLY_STOP,
        [WK_STOP_SIGNAL] = WK_LOG_END_SIGNAL,      [WK_STOP_NAN] = WK_LOG_END_NAN,
        [WK_STOP_REQUESTED] = WK_LOG_END_REQUESTED, [WK_STOP_ERROR] = WK_LOG_END_ERROR};
    if (s->stop_reason == WK_STOP_NAN || s->stop_reason == WK_STOP_ERROR)
        wk_logger_error(h->lg, "%s", wk_last_error());
    return wk_logger_end(h->lg, map[s->stop_reason], s->global_step, s->epoch);
}

static void free_hook(void *u)
{
    logger_hook *h = u;
    wk_logger_close(h->lg);
    free(h);
}

wk_logger *wk_runner_attach_logger(wk_runner *r, const wk_logger_opts *opts)
{
    if (!r) {
        wk_set_error("runner_attach_logger: the runner is NULL");
        return NULL;
    }
    wk_logger_opts o = opts ? *opts : (wk_logger_opts){.tensorboard = true};
    if (!o.work_dir) o.work_dir = r->work_dir;
    o.mode = mode_of(&r->state);
    o.rank = r->opts.rank;
    logger_hook *h = calloc(1, sizeof *h);
    if (!h) {
        wk_set_error("runner_attach_logger: out of memory");
        return NULL;
    }
    h->lg = wk_logger_open(&o);
    if (!h->lg) {
        free(h);
        return NULL;
    }
    wk_runner_hook hook = {.name = "logger", .user = h, .on_train_begin = on_train_begin,
                           .on_batch_end = on_batch_end, .on_eval_end = on_eval_end,
                           .on_checkpoint_saved = on_checkpoint_saved,
                           .on_early_stop = on_early_stop, .on_train_end = on_train_end,
                           .free_user = free_hook};
    if (wk_runner_add_hook(r, &hook)) {
        free_hook(h);
        return NULL;
    }
    r->logger = h->lg;
    return h->lg;
}

wk_logger *wk_runner_logger(const wk_runner *r) { return r ? r->logger : NULL; }

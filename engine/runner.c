/* The Runner: construction and validation, hooks, the run (see runner.h). The step is
 * in runner_step.c, the policy (triggers, evaluation, stop) in runner_policy.c, the
 * checkpoints and resume in runner_checkpoint.c. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../nn/norm.h"
#include "../tensor/random.h"
#include "../tensor/profiler.h"
#include "checkpoint.h"
#include "logger_hook.h"
#include "runner-impl.h"

static const char *const stop_names[] = {"none",   "max_steps", "max_epochs", "early_stop",
                                         "signal", "nan",       "requested",  "error"};
_Static_assert(sizeof stop_names / sizeof stop_names[0] == WK_STOP_COUNT,
               "one name per stop reason");

static const char *const event_names[] = {"LOSS_COMPUTED",   "EVAL_STARTED",    "EVAL_COMPLETED",
                                          "BEST",            "SAVE_CHECKPOINT", "CHECKPOINT_SAVED",
                                          "LOAD_CHECKPOINT", "EARLY_STOP"};
_Static_assert(sizeof event_names / sizeof event_names[0] == RUNNER_EV_COUNT,
               "one name per runner event");

const char *wk_stop_reason_name(wk_stop_reason r)
{
    return r >= 0 && r < WK_STOP_COUNT ? stop_names[r] : "?";
}

wk_runner_opts wk_runner_opts_default(void)
{
    return (wk_runner_opts){
        .run_mode = WK_RUN_EPOCH,
        .eval_interval = 1,
        .eval_at_end = true,
        .save_best = true,
        .clip_norm_type = 2.0,
        .accumulate = 1,
        .ema_decay = 0.999,
        .nan_policy = WK_NAN_STOP,
        .work_dir = "work_dirs/default",
        .load_strict = true,
        .log_interval = 50,
        .world_size = 1,
        .bucket_mb = 25,
    };
}

/* ---- hooks ---- */

static wk_runner_hook_fn hook_fn(const wk_runner_hook *h, hook_slot slot)
{
    switch (slot) {
    case HOOK_TRAIN_BEGIN: return h->on_train_begin;
    case HOOK_EPOCH_BEGIN: return h->on_epoch_begin;
    case HOOK_BATCH_BEGIN: return h->on_batch_begin;
    case HOOK_LOSS_COMPUTED: return h->on_loss_computed;
    case HOOK_BATCH_END: return h->on_batch_end;
    case HOOK_EPOCH_END: return h->on_epoch_end;
    case HOOK_EVAL_BEGIN: return h->on_eval_begin;
    case HOOK_EVAL_END: return h->on_eval_end;
    case HOOK_BEST: return h->on_best;
    case HOOK_CHECKPOINT_SAVED: return h->on_checkpoint_saved;
    case HOOK_EARLY_STOP: return h->on_early_stop;
    case HOOK_TRAIN_END: return h->on_train_end;
    default: return NULL;
    }
}

/* Prefix the pending error with the hook's name and callback. */
static void hook_error(const wk_runner_hook *h, const char *what)
{
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", wk_last_error()[0] ? wk_last_error() : "failed");
    wk_set_error("runner: hook \"%s\" %s: %s", h->name ? h->name : "?", what, msg);
}

int wki_runner_fire(wk_runner *r, hook_slot slot)
{
    static const char *const what[HOOK_COUNT] = {
        "on_train_begin", "on_epoch_begin", "on_batch_begin",     "on_loss_computed",
        "on_batch_end",   "on_epoch_end",   "on_eval_begin",      "on_eval_end",
        "on_best",        "on_save_checkpoint", "on_checkpoint_saved", "on_load_checkpoint",
        "on_early_stop",  "on_train_end"};
    wk_profiler_phase_begin("hooks");
    int result = 0;
    for (int i = 0; i < r->nhooks && !result; i++) {
        const wk_runner_hook *h = &r->hooks[i];
        int rc = 0;
        wk_clear_error();
        if (slot == HOOK_SAVE_CHECKPOINT) {
            if (h->on_save_checkpoint) rc = h->on_save_checkpoint(r, &r->state, r->task, h->user);
        } else if (slot == HOOK_LOAD_CHECKPOINT) {
            if (h->on_load_checkpoint) rc = h->on_load_checkpoint(r, &r->state, r->task, h->user);
        } else {
            wk_runner_hook_fn fn = hook_fn(h, slot);
            if (fn) rc = fn(r, &r->state, h->user);
        }
        if (rc) {
            hook_error(h, what[slot]);
            result = -1;
        }
    }
    wk_profiler_phase_end();
    return result;
}

/* The engine handler of a mapped event: bring the state up to date, dispatch. */
static int dispatch_handler(wk_engine *e, void *user)
{
    hook_dispatch *d = user;
    wk_runner *r = d->runner;
    const wk_engine_state *es = wk_engine_get_state(e);
    r->state.epoch = es->epoch;
    r->state.micro_step = es->iteration;
    if (d->slot == HOOK_BATCH_BEGIN) {
        /* The micro-batch about to be fetched. */
        r->state.iter_in_epoch = es->iteration - (es->epoch - 1) * r->state.epoch_length + 1;
    } else if (d->slot == HOOK_EPOCH_BEGIN) {
        r->state.iter_in_epoch = es->iteration - (es->epoch - 1) * r->state.epoch_length;
    } else if (d->slot == HOOK_TRAIN_BEGIN && r->state.epoch_length > 0 &&
               es->iteration % r->state.epoch_length) {
        /* Resumed inside an epoch: until EPOCH_STARTED the engine counts the completed
         * epochs; hooks see the epoch being run (1-based, docs/RUNNER.md "Counting"). */
        r->state.epoch = es->epoch + 1;
    }
    return wki_runner_fire(r, d->slot);
}

static int data_begin(wk_engine *e, void *user)
{
    (void)e;
    (void)user;
    wk_profiler_phase_begin("data");
    return 0;
}

static int data_end(wk_engine *e, void *user)
{
    (void)e;
    (void)user;
    wk_profiler_phase_end();
    return 0;
}

int wki_runner_fire_event(wk_runner *r, runner_event ev)
{
    return wk_engine_fire(r->engine, r->events[ev]);
}

int wk_runner_add_hook(wk_runner *r, const wk_runner_hook *hook)
{
    if (!r || !hook) {
        wk_set_error("runner_add_hook: needs a runner and a hook");
        return -1;
    }
    if (r->running) {
        wk_set_error("runner_add_hook: hooks are added before wk_runner_run");
        return -1;
    }
    wk_runner_hook *hs = realloc(r->hooks, (size_t)(r->nhooks + 1) * sizeof *hs);
    if (!hs) {
        wk_set_error("runner_add_hook: out of memory");
        return -1;
    }
    r->hooks = hs;
    hs[r->nhooks] = *hook;
    hs[r->nhooks].name = strdup(hook->name ? hook->name : "hook");
    if (!hs[r->nhooks].name) {
        wk_set_error("runner_add_hook: out of memory");
        return -1;
    }
    r->nhooks++;
    return 0;
}

/* ---- construction ---- */

typedef struct {
    char text[4096];
    size_t len;
    int count;
} problems;

static void problem(problems *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(problems *p, const char *fmt, ...)
{
    if (p->len + 8 >= sizeof p->text) return;
    p->count++;
    p->len += (size_t)snprintf(p->text + p->len, sizeof p->text - p->len, "\n  - ");
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(p->text + p->len, sizeof p->text - p->len, fmt, ap);
    va_end(ap);
    if (n > 0) p->len += (size_t)n;
    if (p->len >= sizeof p->text) p->len = sizeof p->text - 1;
}

static char *dup_or_null(const char *s) { return s ? strdup(s) : NULL; }

/* Copy the option strings so the caller's may go away. */
static bool copy_strings(wk_runner *r)
{
    wk_runner_opts *o = &r->opts;
    r->work_dir = strdup(o->work_dir && *o->work_dir ? o->work_dir : "work_dirs/default");
    r->resume = dup_or_null(o->resume && *o->resume ? o->resume : NULL);
    r->load_from = dup_or_null(o->load_from && *o->load_from ? o->load_from : NULL);
    r->config_json = strdup(o->config_json ? o->config_json : "{}");
    r->best_target = dup_or_null(o->best.target);
    r->best_mode = dup_or_null(o->best.mode);
    r->es_target = dup_or_null(o->early_stop.target);
    r->es_mode = dup_or_null(o->early_stop.mode);
    o->work_dir = r->work_dir;
    o->resume = r->resume;
    o->load_from = r->load_from;
    o->config_json = r->config_json;
    o->best.target = r->best_target;
    o->best.mode = r->best_mode;
    o->early_stop.target = r->es_target;
    o->early_stop.mode = r->es_mode;
    return r->work_dir && r->config_json && (!o->best.target || r->best_target) &&
           (!o->early_stop.target || r->es_target);
}

static void check_opts(wk_runner *r, problems *p)
{
    wk_runner_opts *o = &r->opts;
    const wk_runner_parts *pt = &r->parts;
    if (!pt->model) problem(p, "parts.model: required");
    if (!pt->optimizer) problem(p, "parts.optimizer: required");
    if (!pt->train_loader) problem(p, "parts.train_loader: required");
    if ((pt->val_loader || pt->test_loader) && !pt->evaluator)
        problem(p, "parts.evaluator: required with a val or test loader");
    if (o->run_mode != WK_RUN_EPOCH && o->run_mode != WK_RUN_STEP)
        problem(p, "run_mode: expected \"epoch\" or \"step\"");
    if (o->max_epochs < 0) problem(p, "max_epochs: %lld (expected >= 1)", (long long)o->max_epochs);
    if (o->max_steps < 0) problem(p, "max_steps: %lld (expected >= 1)", (long long)o->max_steps);
    if (o->run_mode == WK_RUN_EPOCH && o->max_epochs == 0)
        problem(p, "max_epochs: required in epoch mode");
    if (o->run_mode == WK_RUN_STEP && o->max_steps == 0 && o->max_epochs == 0)
        problem(p, "max_steps: required in step mode (or max_epochs to infer it)");
    if (o->eval_interval < 0)
        problem(p, "eval_interval: %lld (expected >= 0)", (long long)o->eval_interval);
    if (o->save_interval < 0)
        problem(p, "save_interval: %lld (expected >= 0)", (long long)o->save_interval);
    if (o->max_keep < 0) problem(p, "max_keep: %lld (expected >= 0)", (long long)o->max_keep);
    if (o->log_interval < 1)
        problem(p, "log_interval: %lld (expected >= 1)", (long long)o->log_interval);
    if (o->accumulate < 1)
        problem(p, "accumulate: %lld (expected >= 1)", (long long)o->accumulate);
    if (!(o->ema_decay >= 0 && o->ema_decay <= 1))
        problem(p, "ema_decay: %g (expected 0 <= ema_decay <= 1)", o->ema_decay);
    if (!(o->clip_max_norm >= 0) || isinf(o->clip_max_norm))
        problem(p, "clip_grad.max_norm: %g (expected a finite number > 0)", o->clip_max_norm);
    if (!(o->clip_norm_type > 0))
        problem(p, "clip_grad.norm_type: %g (expected > 0, or inf)", o->clip_norm_type);
    if (!(o->clip_value >= 0) || isinf(o->clip_value))
        problem(p, "clip_grad.value: %g (expected a finite number > 0)", o->clip_value);
    if (o->clip_max_norm > 0 && o->clip_value > 0)
        problem(p, "clip_grad: give max_norm or value, not both");
    if (o->nan_policy != WK_NAN_STOP && o->nan_policy != WK_NAN_SKIP)
        problem(p, "nan_policy: expected \"stop\" or \"skip\"");
    if (o->world_size < 1 || o->rank < 0 || o->rank >= o->world_size)
        problem(p, "rank/world_size: %d/%d (expected 0 <= rank < world_size)", o->rank,
                o->world_size);
    const wk_runner_profile *pf = &o->profiler;
    bool pf_default = !pf->wait && !pf->warmup && !pf->active && !pf->repeat;
    if (pf->enabled && !pf_default &&
        (pf->wait < 0 || pf->warmup < 0 || pf->active < 1 || pf->repeat < 0))
        problem(p, "use_profiler: wait, warmup, repeat >= 0 and active >= 1 expected (got "
                   "%lld, %lld, %lld, %lld)",
                (long long)pf->wait, (long long)pf->warmup, (long long)pf->active,
                (long long)pf->repeat);
    if (o->early_stop.target && o->early_stop.patience < 1)
        problem(p, "early_stop.patience: %lld (expected >= 1)", (long long)o->early_stop.patience);
}

/* Watch targets must be metrics an evaluation produces. */
static void check_targets(wk_runner *r, problems *p)
{
    wk_runner_opts *o = &r->opts;
    wk_metric_results names = {0};
    bool can_eval = r->parts.evaluator && (r->parts.val_loader || r->parts.test_loader);
    if (can_eval && wki_runner_metric_names(r, &names)) {
        problem(p, "evaluator: %s", wk_last_error());
        return;
    }
    char list[1024] = "";
    size_t len = 0;
    for (int i = 0; i < names.count && len < sizeof list; i++)
        len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "",
                                names.names[i]);
    const char *which[2] = {"early_stop.target", "best.target"};
    const wk_runner_watch *w[2] = {&o->early_stop, &o->best};
    for (int k = 0; k < 2; k++) {
        if (!w[k]->target) continue;
        bool found = false;
        for (int i = 0; i < names.count; i++)
            if (!strcmp(names.names[i], w[k]->target)) found = true;
        if (!found)
            problem(p, "%s: \"%s\" is not produced by any evaluation (%s)", which[k],
                    w[k]->target,
                    names.count ? list : "there is no val or test loader with metrics");
    }
    wk_early_stop tmp;
    if (o->early_stop.target &&
        wk_early_stop_init(&tmp, o->early_stop.target, o->early_stop.mode,
                           o->early_stop.min_delta, o->early_stop.patience))
        problem(p, "%s", wk_last_error());
    if (o->best.target &&
        wk_early_stop_init(&tmp, o->best.target, o->best.mode, o->best.min_delta, 0))
        problem(p, "%s", wk_last_error());
    /* Default best target: early_stop's, else the first validation metric. */
    if (!p->count && o->save_best && !o->best.target) {
        const char *t = o->early_stop.target;
        const char *m = o->early_stop.mode;
        double d = o->early_stop.min_delta;
        for (int i = 0; !t && i < names.count; i++)
            if (!strncmp(names.names[i], "val/", 4)) t = names.names[i];
        if (!t && names.count) t = names.names[0];
        if (t) {
            free(r->best_target);
            r->best_target = strdup(t);
            free(r->best_mode);
            r->best_mode = dup_or_null(m);
            o->best.target = r->best_target;
            o->best.mode = r->best_mode;
            o->best.min_delta = d;
        }
    }
}

/* mkdir -p */
static int make_dirs(const char *path)
{
    char tmp[RUNNER_PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *s = tmp + 1; *s; s++) {
        if (*s != '/') continue;
        *s = '\0';
        if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
        *s = '/';
    }
    if (mkdir(tmp, 0777) && errno != EEXIST) return -1;
    return 0;
}

wk_runner *wk_runner_new(const wk_runner_parts *parts, const wk_runner_opts *opts)
{
    if (!parts || !opts) {
        wk_set_error("runner_new: needs parts and opts");
        return NULL;
    }
    wk_runner *r = calloc(1, sizeof *r);
    if (!r) {
        wk_set_error("runner_new: out of memory");
        return NULL;
    }
    r->parts = *parts;
    r->opts = *opts;
    r->last_eval_step = -1;
    r->last_save_step = -1;
    problems p = {.len = 0};
    if (!copy_strings(r)) {
        wk_set_error("runner_new: out of memory");
        wk_runner_free(r);
        return NULL;
    }
    if (opts->distributed) {
        r->comm = wk_dist_world();
        if (!r->comm) {
            problem(&p, "distributed: %s", wk_last_error());
        } else {
            r->opts.rank = wk_comm_rank(r->comm);
            r->opts.world_size = wk_comm_size(r->comm);
        }
    }
    if (!(r->opts.bucket_mb > 0))
        problem(&p, "bucket_mb: %g (expected > 0)", r->opts.bucket_mb);
    check_opts(r, &p);
    if (strlen(r->work_dir) > RUNNER_PATH_MAX - 64)
        problem(&p, "work_dir: longer than %d characters", RUNNER_PATH_MAX - 64);
    int64_t L = 0;
    if (parts->train_loader) {
        L = wk_loader_length(parts->train_loader);
        if (L < 1) problem(&p, "train_loader: produces no batch (length %lld)", (long long)L);
    }
    if (!p.count) check_targets(r, &p);
    if (p.count) {
        wk_set_error("runner: %d configuration error%s:%s", p.count, p.count > 1 ? "s" : "",
                     p.text);
        wk_runner_free(r);
        return NULL;
    }
    wk_runner_opts *o = &r->opts;
    int64_t A = o->accumulate;
    r->state.epoch_length = L;
    r->state.steps_per_epoch = (L + A - 1) / A;
    if (o->run_mode == WK_RUN_STEP && o->max_steps == 0) {
        o->max_steps = o->max_epochs * r->state.steps_per_epoch;
        fprintf(stderr, "runner: max_steps not set: inferred %lld = max_epochs %lld x %lld "
                        "steps per epoch\n",
                (long long)o->max_steps, (long long)o->max_epochs,
                (long long)r->state.steps_per_epoch);
    }
    r->state.run_mode = o->run_mode;
    r->state.max_epochs = o->max_epochs;
    r->state.max_steps = o->max_steps;
    r->state.grad_norm = NAN;
    r->state.loss = NAN;
    r->state.lr = wk_optimizer_get_lr(parts->optimizer, 0);
    r->state.metrics = &r->metrics;
    r->state.work_dir = r->work_dir;
    r->state.opts = &r->opts;
    snprintf(r->ckpt_dir, sizeof r->ckpt_dir, "%s/checkpoints", r->work_dir);

    if (o->early_stop.target) {
        wk_early_stop_init(&r->es, o->early_stop.target, o->early_stop.mode,
                           o->early_stop.min_delta, o->early_stop.patience);
        r->have_es = true;
        r->state.early_stop = &r->es;
    }
    if (o->save_best && o->best.target) {
        wk_early_stop_init(&r->best, o->best.target, o->best.mode, o->best.min_delta, 0);
        r->have_best = true;
        r->state.best = &r->best;
    }

    r->nparams = wk_optimizer_params(parts->optimizer, NULL, 0);
    r->params = calloc((size_t)(r->nparams > 0 ? r->nparams : 1), sizeof *r->params);
    if (!r->params) {
        wk_set_error("runner_new: out of memory");
        wk_runner_free(r);
        return NULL;
    }
    wk_optimizer_params(parts->optimizer, r->params, r->nparams);
    if (wk_optimizer_set_accumulation(parts->optimizer, 1)) goto fail;
    if (o->use_ema) {
        r->ema = wk_ema_new(parts->model->module, o->ema_decay, NULL);
        if (!r->ema) goto fail;
    }
    if (r->comm) {
        wk_ddp_opts dopts = {.bucket_bytes = (int64_t)(o->bucket_mb * 1048576.0)};
        r->ddp = wk_ddp_new_module(r->comm, parts->model->module, &dopts);
        if (!r->ddp) goto fail;
        if (parts->evaluator)
            wk_evaluator_set_reduce(parts->evaluator, wk_dist_metric_reduce, r->comm);
        if (parts->test_evaluator)
            wk_evaluator_set_reduce(parts->test_evaluator, wk_dist_metric_reduce, r->comm);
    }
    r->engine = wk_engine_new(wki_runner_step, r);
    if (!r->engine) goto fail;
    int first = wk_engine_register_events(r->engine, event_names, RUNNER_EV_COUNT, true);
    if (first < 0) goto fail;
    for (int i = 0; i < RUNNER_EV_COUNT; i++) r->events[i] = first + i;
    for (int s = 0; s < HOOK_COUNT; s++) r->dispatch[s] = (hook_dispatch){r, (hook_slot)s};
    /* Events whose hooks run as they fire; the others are dispatched by the policy at
     * their place in the order of docs/RUNNER.md. */
    const struct {
        int event;
        hook_slot slot;
    } direct[] = {
        {WK_EVENT_STARTED, HOOK_TRAIN_BEGIN},
        {WK_EVENT_EPOCH_STARTED, HOOK_EPOCH_BEGIN},
        {WK_EVENT_GET_BATCH_STARTED, HOOK_BATCH_BEGIN},
        {r->events[RUNNER_EV_LOSS_COMPUTED], HOOK_LOSS_COMPUTED},
        {r->events[RUNNER_EV_EVAL_STARTED], HOOK_EVAL_BEGIN},
        {r->events[RUNNER_EV_EVAL_COMPLETED], HOOK_EVAL_END},
        {r->events[RUNNER_EV_BEST], HOOK_BEST},
        {r->events[RUNNER_EV_SAVE_CHECKPOINT], HOOK_SAVE_CHECKPOINT},
        {r->events[RUNNER_EV_CHECKPOINT_SAVED], HOOK_CHECKPOINT_SAVED},
        {r->events[RUNNER_EV_LOAD_CHECKPOINT], HOOK_LOAD_CHECKPOINT},
        {r->events[RUNNER_EV_EARLY_STOP], HOOK_EARLY_STOP},
    };
    for (size_t i = 0; i < sizeof direct / sizeof direct[0]; i++)
        if (!wk_engine_on(r->engine, direct[i].event, dispatch_handler,
                          &r->dispatch[direct[i].slot]).engine)
            goto fail;
    if (!wk_engine_on(r->engine, WK_EVENT_GET_BATCH_STARTED, data_begin, r).engine ||
        !wk_engine_on(r->engine, WK_EVENT_GET_BATCH_COMPLETED, data_end, r).engine ||
        wki_runner_attach_policy(r))
        goto fail;
    r->train_source = wk_loader_source(parts->train_loader);
    return r;
fail: {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", wk_last_error());
    wk_set_error("runner_new: %s", msg);
    wk_runner_free(r);
    return NULL;
}
}

void wk_runner_free(wk_runner *r)
{
    if (!r) return;
    for (int i = 0; i < r->nhooks; i++) {
        if (r->hooks[i].free_user) r->hooks[i].free_user(r->hooks[i].user);
        free((char *)r->hooks[i].name);
    }
    free(r->hooks);
    wk_engine_free(r->engine);
    wk_ema_free(r->ema);
    wk_ddp_free(r->ddp);
    free(r->params);
    cJSON_Delete(r->task);
    free(r->work_dir);
    free(r->resume);
    free(r->load_from);
    free(r->config_json);
    free(r->best_target);
    free(r->best_mode);
    free(r->es_target);
    free(r->es_mode);
    free(r);
}

/* ---- the run ---- */

/* True when the state already reached max_steps / max_epochs (a resumed finished run). */
static bool finished(const wk_runner *r)
{
    const wk_runner_opts *o = &r->opts;
    const wk_engine_state *es = wk_engine_get_state(r->engine);
    if (o->max_steps > 0 && r->state.global_step >= o->max_steps) return true;
    int64_t L = r->state.epoch_length;
    return o->max_epochs > 0 && es->iteration >= o->max_epochs * L;
}

bool wki_runner_is_main(const wk_runner *r) { return r->opts.rank == 0; }

void wki_runner_report_failure(wk_runner *r)
{
    if (!r->comm || wk_comm_size(r->comm) < 2 || r->failure_shared) return;
    r->failure_shared = true;
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", wk_last_error());
    wk_dist_agree_ok(r->comm, false, NULL);
    wk_set_error("%s", msg);
}

int wki_runner_agree(wk_runner *r, bool ok)
{
    if (!r->comm || wk_comm_size(r->comm) < 2) return ok ? 0 : -1;
    if (!ok) {
        wki_runner_report_failure(r);
        return -1;
    }
    if (wk_dist_agree_ok(r->comm, true, NULL) == 1) return 0;
    r->failure_shared = true;
    return -1;
}

/* Reseed the dropout generators of rank > 0 (rank 0 keeps a single process's masks). */
static void reseed_dropout(wk_module *m, int rank)
{
    wk_generator *g = wk_module_dropout_generator(m); /* NULL (an error) for other modules */
    if (g) *g = wk_generator_make(wk_generator_split(g, (uint64_t)rank).seed);
    for (int i = 0; i < m->nchildren; i++) reseed_dropout(m->children[i].module, rank);
}

/* Distributed start: every rank has the same epoch length, rank 0's weights and buffers,
 * and (fresh runs) its own dropout stream. */
static int sync_ranks(wk_runner *r, bool fresh)
{
    int64_t L[2] = {r->state.epoch_length, -r->state.epoch_length};
    if (wk_comm_allreduce(r->comm, L, 2, WK_DTYPE_I64, WK_COMM_MAX)) return -1;
    if (L[0] != -L[1]) {
        wk_set_error("runner: the ranks' train loaders give %lld to %lld micro-batches per "
                     "epoch (expected equal: shard the loader with rank and world_size)",
                     (long long)-L[1], (long long)L[0]);
        return -1;
    }
    if (wk_ddp_broadcast_module(r->comm, r->parts.model->module, 0)) return -1;
    if (fresh && r->opts.rank > 0) reseed_dropout(r->parts.model->module, r->opts.rank);
    wk_clear_error();
    return 0;
}

/* use_profiler: the window in optimizer steps, outputs in the run folder. */
static int start_profiler(wk_runner *r)
{
    const wk_runner_profile *pf = &r->opts.profiler;
    wk_profiler_options po = wk_profiler_options_default();
    if (pf->wait || pf->warmup || pf->active || pf->repeat)
        po.schedule = (wk_profiler_schedule){pf->wait, pf->warmup, pf->active, pf->repeat};
    const char *run_dir = r->logger ? wk_logger_run_dir(r->logger) : NULL;
    po.dir = run_dir ? run_dir : r->work_dir;
    po.rank = r->opts.rank;
    po.world = r->opts.world_size;
    po.table_out = r->opts.quiet || r->opts.rank ? NULL : stdout;
    return wk_profiler_start(&po);
}

int64_t wki_runner_engine_epochs(const wk_runner *r)
{
    int64_t L = r->state.epoch_length;
    return r->opts.max_epochs > 0 ? r->opts.max_epochs : ((int64_t)1 << 52) / L;
}

int wk_runner_run(wk_runner *r)
{
    if (!r) {
        wk_set_error("runner_run: the runner is NULL");
        return -1;
    }
    if (r->running) {
        wk_set_error("runner_run: already running");
        return -1;
    }
    if (make_dirs(r->ckpt_dir)) {
        wk_set_error("runner: cannot create the checkpoint folder %s: %s", r->ckpt_dir,
                     strerror(errno));
        return -1;
    }
    const wk_runner_opts *o = &r->opts;
    r->stop_reason = WK_STOP_NONE;
    r->state.stop_reason = WK_STOP_NONE;
    wk_manual_seed(wk_dist_seed(o->seed, WK_SEED_DROPOUT, o->rank));
    bool fresh = true;
    if (o->resume) {
        char path[RUNNER_PATH_MAX] = "";
        const char *from = o->resume;
        if (!strcmp(o->resume, "auto")) {
            int found = wki_runner_is_main(r)
                            ? wk_checkpoint_find_latest(r->ckpt_dir, path, sizeof path)
                            : 0;
            if (found < 0) return -1;
            /* Every rank resumes from the file rank 0 picked. */
            if (r->comm && wk_comm_broadcast(r->comm, path, sizeof path, WK_DTYPE_U8, 0))
                return -1;
            from = path[0] ? path : NULL;
            if (!from && wki_runner_is_main(r))
                fprintf(stderr, "runner: resume \"auto\": no valid checkpoint in %s, starting "
                                "from scratch\n",
                        r->ckpt_dir);
        }
        if (from) {
            if (wki_runner_resume(r, from)) return -1;
            fresh = false;
        }
    } else if (o->load_from && wki_runner_load_weights(r, o->load_from)) {
        return -1;
    }
    if (r->comm && sync_ranks(r, fresh)) return -1;
    if (finished(r)) {
        fprintf(stderr, "runner: nothing to train: the run already reached %s (step %lld)\n",
                o->max_steps > 0 && r->state.global_step >= o->max_steps ? "max_steps"
                                                                          : "max_epochs",
                (long long)r->state.global_step);
        return 0;
    }
    int64_t L = r->state.epoch_length;
    int64_t engine_epochs = wki_runner_engine_epochs(r);
    if (!o->quiet && !r->logger && !wk_runner_attach_logger(r, NULL)) return -1;
    if (o->profiler.enabled && start_profiler(r)) return -1;
    r->running = true;
    r->completed = false;
    r->failure_shared = false;
    r->data_time_seen = wk_engine_get_state(r->engine)->time_data;
    int rc = wk_engine_run(r->engine, &r->train_source, engine_epochs, -1, L);
    r->running = false;
    if (wk_profiler_is_running()) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        if (wk_profiler_stop() && !rc) rc = -1;
        else wk_set_error("%s", msg);
    }
    if (!rc && !r->completed) {
        /* An EXCEPTION_RAISED handler took an error: the run still failed. */
        wk_set_error("%s", wk_engine_get_state(r->engine)->error);
        rc = -1;
    }
    if (rc && r->stop_reason == WK_STOP_NONE) r->stop_reason = WK_STOP_ERROR;
    r->state.stop_reason = r->stop_reason;
    if (rc) {
        wki_runner_report_failure(r);
        /* on_train_end at every end: here for failures (COMPLETED did not fire). */
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        wki_runner_fire(r, HOOK_TRAIN_END);
        wk_set_error("%s", msg);
        return -1;
    }
    if (r->stop_reason == WK_STOP_SIGNAL) {
        wk_set_error("runner: interrupted by a signal at step %lld; resume with resume "
                     "\"auto\" (--resume)",
                     (long long)r->state.global_step);
        return -1;
    }
    return 0;
}

void wk_runner_request_stop(wk_runner *r)
{
    if (r) r->want_stop = true;
}

void wk_runner_request_checkpoint(wk_runner *r)
{
    if (r) r->want_checkpoint = true;
}

void wk_runner_signal(wk_runner *r)
{
    if (r) r->signalled = 1;
}

wk_engine *wk_runner_engine(wk_runner *r) { return r ? r->engine : NULL; }

int wk_runner_event(const wk_runner *r, const char *name)
{
    for (int i = 0; r && name && i < RUNNER_EV_COUNT; i++)
        if (!strcmp(name, event_names[i])) return r->events[i];
    wk_set_error("runner_event: unknown runner event \"%s\" (expected LOSS_COMPUTED, "
                 "EVAL_STARTED, EVAL_COMPLETED, BEST, SAVE_CHECKPOINT, CHECKPOINT_SAVED, "
                 "LOAD_CHECKPOINT or EARLY_STOP)",
                 name ? name : "(null)");
    return -1;
}

const wk_runner_state *wk_runner_get_state(const wk_runner *r) { return r ? &r->state : NULL; }

wk_stop_reason wk_runner_stop_reason(const wk_runner *r)
{
    return r ? r->stop_reason : WK_STOP_NONE;
}

struct wk_ema *wk_runner_ema(wk_runner *r) { return r ? r->ema : NULL; }

const char *wk_runner_checkpoint_dir(const wk_runner *r) { return r ? r->ckpt_dir : NULL; }

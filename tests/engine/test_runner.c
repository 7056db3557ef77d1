/* The Runner (engine/runner.h): the loop, triggers, early stopping, checkpoints, EMA,
 * accumulation, NaN handling, hooks and the event order. Whole-process resume tests are
 * in tests/e2e/test_resume.c. */
#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/runner_fixture.h"
#include "test_util.h"

TestSuite(runner, .init = tu_setup, .fini = tu_teardown);

/* ---- helpers ---- */

static char *tmp_dir(void)
{
    char *d = tu_tmpdir_new("wk_runner_");
    cr_assert_not_null(d, "mkdtemp failed");
    return d;
}

static void rm_rf(char *d) { cr_assert_eq(tu_tmpdir_remove(d), 0); }

static bool exists(const char *dir, const char *name)
{
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints/%s", dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

static int count_files(const char *dir, const char *prefix)
{
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints", dir);
    DIR *d = opendir(p);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, prefix, strlen(prefix))) n++;
    closedir(d);
    return n;
}

/* What the recording hook saw. */
typedef struct {
    char log[8192];
    int64_t eval_steps[64];
    int neval;
    int64_t save_steps[64];      /* regular checkpoints */
    int nsave;
    int nbest, nlast, nepoch_end, nearly_stop, nbatch_end, nloss;
    double losses[512];
    int nlosses;
    int64_t stop_at_step;        /* > 0: wk_runner_request_stop at this step */
    int64_t checkpoint_at_step;  /* > 0: wk_runner_request_checkpoint at this step */
    wk_stop_reason end_reason;
} rec;

static void logev(rec *r, const char *name)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof r->log - n, "%s%s", n ? "," : "", name);
}

#define REC_HOOK(slot)                                                                    \
    static int h_##slot(wk_runner *run, const wk_runner_state *s, void *u)                \
    {                                                                                     \
        (void)run;                                                                        \
        (void)s;                                                                          \
        logev(u, #slot);                                                                  \
        return 0;                                                                         \
    }
REC_HOOK(on_train_begin)
REC_HOOK(on_epoch_begin)
REC_HOOK(on_batch_begin)
REC_HOOK(on_eval_begin)
REC_HOOK(on_best)

static int h_on_loss_computed(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    rec *r = u;
    logev(r, "on_loss_computed");
    cr_assert_not_null(s->outputs);
    r->nloss++;
    return 0;
}

static int h_on_batch_end(wk_runner *run, const wk_runner_state *s, void *u)
{
    rec *r = u;
    logev(r, "on_batch_end");
    r->nbatch_end++;
    if (r->nlosses < 512) r->losses[r->nlosses++] = s->loss;
    if (s->updated && r->stop_at_step && s->global_step == r->stop_at_step)
        wk_runner_request_stop(run);
    if (s->updated && r->checkpoint_at_step && s->global_step == r->checkpoint_at_step)
        wk_runner_request_checkpoint(run);
    return 0;
}

static int h_on_epoch_end(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    rec *r = u;
    logev(r, "on_epoch_end");
    cr_assert_eq(s->iter_in_epoch, s->epoch_length);
    r->nepoch_end++;
    return 0;
}

static int h_on_eval_end(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    rec *r = u;
    logev(r, "on_eval_end");
    cr_assert(s->metrics->count > 0);
    if (r->neval < 64) r->eval_steps[r->neval++] = s->global_step;
    return 0;
}

static int h_on_save(wk_runner *run, const wk_runner_state *s, cJSON *task, void *u)
{
    (void)run;
    (void)task;
    logev(u, "on_save_checkpoint");
    cr_assert_not_null(s->checkpoint_kind);
    return 0;
}

static int h_on_saved(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    rec *r = u;
    logev(r, "on_checkpoint_saved");
    if (!strcmp(s->checkpoint_kind, "regular") && r->nsave < 64)
        r->save_steps[r->nsave++] = s->global_step;
    if (!strcmp(s->checkpoint_kind, "best")) r->nbest++;
    if (!strcmp(s->checkpoint_kind, "last")) r->nlast++;
    struct stat st;
    cr_assert_eq(stat(s->checkpoint_path, &st), 0, "%s missing", s->checkpoint_path);
    return 0;
}

static int h_on_early_stop(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    (void)s;
    rec *r = u;
    logev(r, "on_early_stop");
    r->nearly_stop++;
    return 0;
}

static int h_on_train_end(wk_runner *run, const wk_runner_state *s, void *u)
{
    (void)run;
    rec *r = u;
    logev(r, "on_train_end");
    r->end_reason = s->stop_reason;
    return 0;
}

static wk_runner_hook rec_hook(rec *r)
{
    return (wk_runner_hook){
        .name = "rec", .user = r,
        .on_train_begin = h_on_train_begin, .on_epoch_begin = h_on_epoch_begin,
        .on_batch_begin = h_on_batch_begin, .on_loss_computed = h_on_loss_computed,
        .on_batch_end = h_on_batch_end, .on_epoch_end = h_on_epoch_end,
        .on_eval_begin = h_on_eval_begin, .on_eval_end = h_on_eval_end, .on_best = h_on_best,
        .on_save_checkpoint = h_on_save, .on_checkpoint_saved = h_on_saved,
        .on_early_stop = h_on_early_stop, .on_train_end = h_on_train_end};
}

/* Build, run and free a runner over fx with opts; returns wk_runner_run's result. */
static int run_with(fx_parts *fx, wk_runner_opts *o, rec *r, wk_runner_state *final)
{
    wk_runner *run = wk_runner_new(&(wk_runner_parts){0}, o);
    cr_assert_null(run);
    wk_runner_parts parts = fx_runner_parts(fx);
    run = wk_runner_new(&parts, o);
    cr_assert_not_null(run, "%s", wk_last_error());
    if (r) {
        wk_runner_hook h = rec_hook(r);
        cr_assert_eq(wk_runner_add_hook(run, &h), 0);
    }
    int rc = wk_runner_run(run);
    if (final) *final = *wk_runner_get_state(run);
    if (final) final->metrics = NULL, final->best = NULL, final->early_stop = NULL;
    if (final) final->stop_reason = wk_runner_stop_reason(run);
    wk_runner_free(run);
    return rc;
}

static void expect_steps(const int64_t *got, int n, const int64_t *want, int m, const char *what)
{
    char g[512] = "", w[512] = "";
    for (int i = 0; i < n; i++) snprintf(g + strlen(g), sizeof g - strlen(g), " %lld", (long long)got[i]);
    for (int i = 0; i < m; i++) snprintf(w + strlen(w), sizeof w - strlen(w), " %lld", (long long)want[i]);
    cr_assert_str_eq(g, w, "%s: got [%s ], expected [%s ]", what, g, w);
}

/* ---- the basic loop and event order ---- */

Test(runner, basic_loop_trains_and_writes_last)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fo.train_size = 256;
    fo.adam = true;
    fo.lr = 0.02;
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 8;
    o.work_dir = dir;
    o.quiet = true;
    rec r = {0};
    wk_runner_state s;
    cr_assert_eq(run_with(&fx, &o, &r, &s), 0, "%s", wk_last_error());
    cr_assert_eq(s.global_step, 8 * 32);
    cr_assert_eq(s.epoch, 8);
    cr_assert_eq(r.nepoch_end, 8);
    cr_assert_eq(r.neval, 8, "evaluated %d times", r.neval);
    cr_assert_eq(r.end_reason, WK_STOP_MAX_EPOCHS);
    double first = (r.losses[0] + r.losses[1] + r.losses[2] + r.losses[3]) / 4;
    double last = 0;
    for (int i = r.nlosses - 32; i < r.nlosses; i++) last += r.losses[i] / 32;
    cr_assert(last < 0.8 * first, "loss %g -> %g did not fall", first, last);
    cr_assert(exists(dir, "last.safetensors"));
    cr_assert(exists(dir, "best.safetensors"));
    cr_assert_eq(count_files(dir, "step_"), 0);
    fx_free(&fx);
    rm_rf(dir);
}

Test(runner, listener_order_of_one_small_run)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fo.train_size = 16;
    fo.batch = 8;
    fo.val_size = 8;
    fo.val_batch = 8;
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 1;
    o.work_dir = dir;
    o.quiet = true;
    rec r = {0};
    cr_assert_eq(run_with(&fx, &o, &r, NULL), 0, "%s", wk_last_error());
    cr_assert_str_eq(r.log,
                     "on_train_begin,on_epoch_begin,"
                     "on_batch_begin,on_loss_computed,on_batch_end,"
                     "on_batch_begin,on_loss_computed,on_batch_end,"
                     "on_epoch_end,on_eval_begin,on_eval_end,on_best,"
                     "on_save_checkpoint,on_checkpoint_saved,"
                     "on_save_checkpoint,on_checkpoint_saved,on_train_end");
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- triggers ---- */

typedef struct {
    const char *name;
    wk_run_mode mode;
    int64_t max_epochs, max_steps, eval_interval, save_interval, accumulate;
    bool eval_at_end;
    int64_t evals[16];
    int nevals;
    int64_t saves[16];
    int nsaves;
    int64_t final_step, epoch_ends;
    wk_stop_reason reason;
} trigger_case;

/* L = 8 micro-batches per epoch (64 samples, batch 8) in every case. */
static const trigger_case trigger_cases[] = {
    {"step: eval 5, save 4, max_steps 19", WK_RUN_STEP, 0, 19, 5, 4, 1, true,
     {5, 10, 15, 19}, 4, {4, 8, 12, 16}, 4, 19, 2, WK_STOP_MAX_STEPS},
    {"step: interval longer than the run", WK_RUN_STEP, 0, 10, 100, 0, 1, true,
     {10}, 1, {0}, 0, 10, 1, WK_STOP_MAX_STEPS},
    {"step: max_steps mid-epoch, no end eval", WK_RUN_STEP, 0, 12, 4, 6, 1, false,
     {4, 8, 12}, 3, {6, 12}, 2, 12, 1, WK_STOP_MAX_STEPS},
    {"step: max_steps at an epoch end", WK_RUN_STEP, 0, 16, 8, 0, 1, true,
     {8, 16}, 2, {0}, 0, 16, 2, WK_STOP_MAX_STEPS},
    {"step: accumulate 3 (windows 3,3,2)", WK_RUN_STEP, 0, 7, 2, 3, 3, true,
     {2, 4, 6, 7}, 4, {3, 6}, 2, 7, 2, WK_STOP_MAX_STEPS},
    {"step: max_epochs caps max_steps", WK_RUN_STEP, 2, 100, 5, 0, 1, true,
     {5, 10, 15, 16}, 4, {0}, 0, 16, 2, WK_STOP_MAX_EPOCHS},
    {"step: inferred max_steps", WK_RUN_STEP, 2, 0, 6, 0, 1, true,
     {6, 12, 16}, 3, {0}, 0, 16, 2, WK_STOP_MAX_STEPS},
    {"epoch: eval every 2, save 10", WK_RUN_EPOCH, 5, 0, 2, 10, 1, true,
     {16, 32, 40}, 3, {10, 20, 30, 40}, 4, 40, 5, WK_STOP_MAX_EPOCHS},
    {"epoch: max_steps cap mid-epoch", WK_RUN_EPOCH, 3, 20, 1, 0, 1, true,
     {8, 16, 20}, 3, {0}, 0, 20, 2, WK_STOP_MAX_STEPS},
    {"epoch: eval_at_end off", WK_RUN_EPOCH, 3, 0, 2, 0, 1, false,
     {16}, 1, {0}, 0, 24, 3, WK_STOP_MAX_EPOCHS},
    {"epoch: eval disabled", WK_RUN_EPOCH, 2, 0, 0, 0, 1, true,
     {16}, 1, {0}, 0, 16, 2, WK_STOP_MAX_EPOCHS},
    {"epoch: accumulate 3", WK_RUN_EPOCH, 2, 0, 1, 0, 3, true,
     {3, 6}, 2, {0}, 0, 6, 2, WK_STOP_MAX_EPOCHS},
};

Test(runner, evaluation_and_save_triggers)
{
    for (size_t c = 0; c < sizeof trigger_cases / sizeof trigger_cases[0]; c++) {
        const trigger_case *tc = &trigger_cases[c];
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_runner_opts o = wk_runner_opts_default();
        o.run_mode = tc->mode;
        o.max_epochs = tc->max_epochs;
        o.max_steps = tc->max_steps;
        o.eval_interval = tc->eval_interval;
        o.save_interval = tc->save_interval;
        o.accumulate = tc->accumulate;
        o.eval_at_end = tc->eval_at_end;
        o.work_dir = dir;
        o.quiet = true;
        rec r = {0};
        wk_runner_state s;
        cr_assert_eq(run_with(&fx, &o, &r, &s), 0, "%s: %s", tc->name, wk_last_error());
        expect_steps(r.eval_steps, r.neval, tc->evals, tc->nevals, tc->name);
        expect_steps(r.save_steps, r.nsave, tc->saves, tc->nsaves, tc->name);
        cr_assert_eq(s.global_step, tc->final_step, "%s: final step %lld", tc->name,
                     (long long)s.global_step);
        cr_assert_eq(r.nepoch_end, tc->epoch_ends, "%s: %d epoch ends", tc->name, r.nepoch_end);
        cr_assert_eq(s.stop_reason, tc->reason, "%s: reason %s", tc->name,
                     wk_stop_reason_name(s.stop_reason));
        cr_assert_eq(count_files(dir, "step_"), tc->nsaves, "%s", tc->name);
        cr_assert_eq(r.nlast, 1);
        fx_free(&fx);
        rm_rf(dir);
    }
}

/* ---- early stopping on a scripted metric ---- */

typedef struct {
    const double *script;
    int n, evals;
} script_cfg;

static void sc_reset(wk_metric *m) { m->state[0] = 0; }
static int sc_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    (void)b;
    (void)out;
    m->state[0] += 1;
    return 0;
}
static int sc_compute(const wk_metric *m, wk_metric_results *r)
{
    script_cfg *c = m->self;
    double v = NAN;
    if (m->state[0] > 0) {
        v = c->evals < c->n ? c->script[c->evals] : 0;
        c->evals++;
    }
    return wk_metric_results_set(r, "score", v);
}
static void sc_destroy(wk_metric *m)
{
    free(m->state);
    free(m);
}

static wk_evaluator *scripted(script_cfg *c)
{
    wk_metric *m = calloc(1, sizeof *m);
    m->type = "Scripted";
    m->state = calloc(1, sizeof(double));
    m->nstate = 1;
    m->reset = sc_reset;
    m->process = sc_process;
    m->compute = sc_compute;
    m->destroy = sc_destroy;
    m->self = c;
    return wk_evaluator_new(&m, 1);
}

typedef struct {
    const char *mode;
    double min_delta;
    int64_t patience;
    double script[8];
    int n;
    int stop_eval;   /* 1-based evaluation at which training stops; 0: never */
    double best;
    int64_t best_eval;
} es_case;

static const es_case es_cases[] = {
    {"max", 0, 2, {1, 2, 2, 1.5, 3}, 5, 4, 2, 2},
    {"max", 0.5, 2, {1, 1.4, 1.6, 1.7, 1.8, 5}, 6, 5, 1.6, 3},
    {"min", 0, 3, {5, 4, 4.5, 4.2, 4.1, 1}, 6, 5, 4, 2},
    {"min", 0.1, 1, {5, 4.95, 1}, 3, 2, 5, 1},
    {"max", 0, 2, {1, NAN, NAN, 7}, 4, 3, 1, 1},
    {"max", 0, 3, {1, 2, 3, 4, 5, 6}, 6, 0, 6, 6},
};

Test(runner, early_stopping_scripted)
{
    for (size_t c = 0; c < sizeof es_cases / sizeof es_cases[0]; c++) {
        const es_case *ec = &es_cases[c];
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_evaluator_free(fx.ev);
        script_cfg sc = {ec->script, ec->n, 0};
        fx.ev = scripted(&sc);
        wk_runner_opts o = wk_runner_opts_default();
        o.run_mode = WK_RUN_STEP;
        o.max_steps = 3 * ec->n;
        o.eval_interval = 3;
        o.early_stop = (wk_runner_watch){.target = "val/score", .mode = ec->mode,
                                         .min_delta = ec->min_delta, .patience = ec->patience};
        o.work_dir = dir;
        o.quiet = true;
        rec r = {0};
        wk_runner_state s;
        cr_assert_eq(run_with(&fx, &o, &r, &s), 0, "case %zu: %s", c, wk_last_error());
        int evals = ec->stop_eval ? ec->stop_eval : ec->n;
        cr_assert_eq(r.neval, evals, "case %zu: %d evaluations, expected %d", c, r.neval, evals);
        cr_assert_eq(s.global_step, 3 * evals, "case %zu: stopped at step %lld", c,
                     (long long)s.global_step);
        cr_assert_eq(r.nearly_stop, ec->stop_eval ? 1 : 0, "case %zu", c);
        cr_assert_eq(s.stop_reason, ec->stop_eval ? WK_STOP_EARLY_STOP : WK_STOP_MAX_STEPS,
                     "case %zu: %s", c, wk_stop_reason_name(s.stop_reason));
        /* best (default target: early_stop's) kept the best evaluation's file */
        wk_checkpoint ck;
        char p[512];
        snprintf(p, sizeof p, "%s/checkpoints/best.safetensors", dir);
        cr_assert_eq(wk_checkpoint_open(p, &ck), 0, "%s", wk_last_error());
        cr_assert_eq(ck.global_step, 3 * ec->best_eval, "case %zu: best at %lld", c,
                     (long long)ck.global_step);
        cJSON *st = cJSON_Parse(ck.state);
        const cJSON *es = cJSON_GetObjectItem(st, "early_stop");
        cr_assert_eq(cJSON_GetObjectItem(es, "best")->valuedouble, ec->best, "case %zu", c);
        cJSON_Delete(st);
        wk_checkpoint_close(&ck);
        fx_free(&fx);
        rm_rf(dir);
    }
}

Test(runner, configuration_errors_reported_together)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner_opts o = wk_runner_opts_default();
    o.work_dir = dir;
    o.eval_interval = -1;
    o.save_interval = -2;
    o.accumulate = 0;
    cr_assert_null(wk_runner_new(&parts, &o));
    const char *e = wk_last_error();
    cr_assert(strstr(e, "3 configuration errors") || strstr(e, "4 configuration errors"), "%s", e);
    cr_assert(strstr(e, "max_epochs: required in epoch mode"), "%s", e);
    cr_assert(strstr(e, "eval_interval: -1"), "%s", e);
    cr_assert(strstr(e, "save_interval: -2"), "%s", e);
    cr_assert(strstr(e, "accumulate: 0"), "%s", e);

    o = wk_runner_opts_default();
    o.work_dir = dir;
    o.max_epochs = 1;
    o.early_stop = (wk_runner_watch){.target = "val/acuracy", .patience = 2};
    cr_assert_null(wk_runner_new(&parts, &o));
    e = wk_last_error();
    cr_assert(strstr(e, "early_stop.target: \"val/acuracy\" is not produced by any evaluation "
                        "(val/accuracy, val/loss)"),
              "%s", e);
    o.early_stop = (wk_runner_watch){.target = "val_ema/loss", .patience = 2};
    cr_assert_null(wk_runner_new(&parts, &o), "val_ema/* needs use_ema");
    o.use_ema = true;
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    wk_runner_free(r);
    o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 0};
    cr_assert_null(wk_runner_new(&parts, &o));
    cr_assert(strstr(wk_last_error(), "early_stop.patience: 0"), "%s", wk_last_error());
    o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 1, .mode = "up"};
    cr_assert_null(wk_runner_new(&parts, &o));
    cr_assert(strstr(wk_last_error(), "mode \"up\""), "%s", wk_last_error());
    /* no evaluation at all */
    parts.val_loader = NULL;
    o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 1};
    cr_assert_null(wk_runner_new(&parts, &o));
    cr_assert(strstr(wk_last_error(), "there is no val or test loader"), "%s", wk_last_error());
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- checkpoints ---- */

Test(runner, checkpoints_best_replaced_regular_kept_and_max_keep)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fo.adam = true;
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.run_mode = WK_RUN_STEP;
    o.max_steps = 30;
    o.eval_interval = 5;
    o.save_interval = 5;
    o.use_ema = true;
    o.work_dir = dir;
    o.quiet = true;
    rec r = {0};
    cr_assert_eq(run_with(&fx, &o, &r, NULL), 0, "%s", wk_last_error());
    cr_assert_eq(count_files(dir, "step_"), 6);
    cr_assert_eq(count_files(dir, "best"), 1);
    cr_assert(r.nbest >= 1);
    cr_assert(exists(dir, "step_00000005.safetensors"));
    cr_assert(exists(dir, "step_00000030.safetensors"));
    /* contents by name */
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints/step_00000010.safetensors", dir);
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(p, &ck), 0, "%s", wk_last_error());
    cr_assert_eq(ck.global_step, 10);
    bool model = false, ema = false, optim = false;
    for (int i = 0; i < ck.st.count; i++) {
        model |= !strncmp(ck.st.items[i].name, "model.", 6);
        ema |= !strncmp(ck.st.items[i].name, "ema.", 4);
        optim |= strstr(ck.st.items[i].name, "optim.") && strstr(ck.st.items[i].name, "exp_avg");
    }
    cr_assert(model && ema && optim);
    cJSON *st = cJSON_Parse(ck.state);
    const char *keys[] = {"epoch", "iter_in_epoch", "global_step", "engine", "loader", "rng",
                          "best", "metrics", "scheduler"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        cr_assert(cJSON_HasObjectItem(st, keys[i]), "state lacks %s", keys[i]);
    cr_assert_eq(cJSON_GetObjectItem(st, "epoch")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(st, "iter_in_epoch")->valueint, 2);
    cr_assert(cJSON_HasObjectItem(cJSON_GetObjectItem(st, "metrics"), "val_ema/accuracy"));
    cJSON_Delete(st);
    wk_checkpoint_close(&ck);
    /* best holds the state of its evaluation and is a valid resume point */
    snprintf(p, sizeof p, "%s/checkpoints/best.safetensors", dir);
    cr_assert_eq(wk_checkpoint_open(p, &ck), 0, "%s", wk_last_error());
    cr_assert_eq(ck.global_step % 5, 0);
    wk_checkpoint_close(&ck);
    fx_free(&fx);
    rm_rf(dir);

    /* max_keep bounds the regular ones */
    dir = tmp_dir();
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    o.work_dir = dir;
    o.max_keep = 2;
    o.use_ema = false;
    rec r2 = {0};
    cr_assert_eq(run_with(&fx, &o, &r2, NULL), 0, "%s", wk_last_error());
    cr_assert_eq(count_files(dir, "step_"), 2);
    cr_assert(exists(dir, "step_00000025.safetensors") && exists(dir, "step_00000030.safetensors"));
    cr_assert_eq(r2.nsave, 6);
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- task state from hooks ---- */

static int task_save(wk_runner *r, const wk_runner_state *s, cJSON *task, void *u)
{
    (void)r;
    (void)u;
    cJSON_AddNumberToObject(task, "seen_step", (double)s->global_step);
    return 0;
}

static int task_load(wk_runner *r, const wk_runner_state *s, const cJSON *task, void *u)
{
    (void)r;
    (void)s;
    *(int64_t *)u = (int64_t)cJSON_GetObjectItem(task, "seen_step")->valuedouble;
    return 0;
}

static int fail_hook(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    (void)u;
    if (s->global_step == 3) {
        wk_set_error("deliberate failure");
        return -1;
    }
    return 0;
}

Test(runner, task_state_requests_and_failing_hooks)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.run_mode = WK_RUN_STEP;
    o.max_steps = 40;
    o.eval_interval = 0;
    o.work_dir = dir;
    o.quiet = true;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    rec rc = {.stop_at_step = 11, .checkpoint_at_step = 7};
    wk_runner_hook h = rec_hook(&rc);
    cr_assert_eq(wk_runner_add_hook(r, &h), 0);
    cr_assert_eq(wk_runner_add_hook(r, &(wk_runner_hook){.name = "task",
                                                          .on_save_checkpoint = task_save}),
                 0);
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert_eq(wk_runner_stop_reason(r), WK_STOP_REQUESTED);
    cr_assert_eq(wk_runner_get_state(r)->global_step, 11);
    expect_steps(rc.save_steps, rc.nsave, (int64_t[]){7}, 1, "requested checkpoint");
    wk_runner_free(r);

    /* the task object comes back on resume */
    int64_t seen = -1;
    o.resume = "auto";
    r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    cr_assert_eq(wk_runner_add_hook(r, &(wk_runner_hook){.name = "task", .user = &seen,
                                                          .on_load_checkpoint = task_load,
                                                          .on_batch_end = fail_hook}),
                 0);
    /* resumed at 11, so the hook that fails at step 3 never fires: the run completes */
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert_eq(seen, 11, "task state %lld", (long long)seen);
    cr_assert_eq(wk_runner_get_state(r)->global_step, 40);
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

Test(runner, failing_hook_fails_the_run_with_its_message)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 2;
    o.work_dir = dir;
    o.quiet = true;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    cr_assert_eq(wk_runner_add_hook(r, &(wk_runner_hook){.name = "bad",
                                                          .on_batch_end = fail_hook}),
                 0);
    cr_assert_eq(wk_runner_run(r), -1);
    cr_assert(strstr(wk_last_error(), "hook \"bad\" on_batch_end: deliberate failure"), "%s",
              wk_last_error());
    cr_assert_eq(wk_runner_stop_reason(r), WK_STOP_ERROR);
    cr_assert_eq(wk_runner_get_state(r)->global_step, 3);
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- Engine handlers on a Runner ---- */

static int count_handler(wk_engine *e, void *u)
{
    (void)e;
    (*(int *)u)++;
    return 0;
}

Test(runner, engine_handlers_with_filters_work_on_a_runner)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 3;
    o.work_dir = dir;
    o.quiet = true;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    int every5 = 0, evals = 0, second_eval = 0, epochs = 0;
    wk_engine *e = wk_runner_engine(r);
    cr_assert_not_null(wk_engine_on_filtered(e, WK_EVENT_ITERATION_COMPLETED,
                                             &(wk_event_filter){.every = 5}, count_handler,
                                             &every5).engine);
    int ev = wk_runner_event(r, "EVAL_COMPLETED");
    cr_assert(ev >= WK_EVENT_BUILTIN_COUNT);
    cr_assert_eq(wk_runner_event(r, "NOPE"), -1);
    cr_assert_not_null(wk_engine_on(e, ev, count_handler, &evals).engine);
    cr_assert_not_null(wk_engine_on_filtered(e, ev, &(wk_event_filter){.once = {2}, .n_once = 1},
                                             count_handler, &second_eval).engine);
    cr_assert_not_null(wk_engine_on(e, WK_EVENT_EPOCH_COMPLETED, count_handler, &epochs).engine);
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert_eq(every5, 24 / 5);
    cr_assert_eq(evals, 3);
    cr_assert_eq(second_eval, 1);
    cr_assert_eq(epochs, 3);
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- EMA ---- */

typedef struct {
    const char *name;
    wk_tensor *param;
    float *hist;      /* the parameter after each update */
    int64_t n, count;
} ema_rec;

static int ema_on_batch_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    (void)r;
    ema_rec *er = u;
    if (!s->updated) return 0;
    memcpy(er->hist + er->count * er->n, wk_data(er->param), (size_t)er->n * sizeof(float));
    er->count++;
    return 0;
}

Test(runner, ema_equals_hand_computed_sequence_and_is_a_target)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fo.adam = true;
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 3;
    o.use_ema = true;
    o.ema_decay = 0.9;
    o.early_stop = (wk_runner_watch){.target = "val_ema/loss", .patience = 10};
    o.work_dir = dir;
    o.quiet = true;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    wk_named_param np[8];
    wk_module_named_parameters(fx.model->module, false, np, 8);
    ema_rec er = {np[0].name, np[0].tensor, NULL, wk_numel(np[0].tensor), 0};
    er.hist = calloc((size_t)(er.n * 24), sizeof(float));
    cr_assert_eq(wk_runner_add_hook(r, &(wk_runner_hook){.name = "ema", .user = &er,
                                                          .on_batch_end = ema_on_batch_end}),
                 0);
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert_eq(er.count, 24);
    const wk_tensor *shadow = wk_ema_get(wk_runner_ema(r), er.name);
    cr_assert_not_null(shadow);
    const float *got = wk_data(shadow);
    for (int64_t i = 0; i < er.n; i++) {
        float e = er.hist[i];
        for (int64_t k = 1; k < er.count; k++)
            e = (float)(0.9 * (double)e + (1 - 0.9) * (double)er.hist[k * er.n + i]);
        cr_assert_eq(got[i], e, "ema[%lld] = %.9g, expected %.9g", (long long)i, got[i], e);
    }
    const wk_runner_state *s = wk_runner_get_state(r);
    cr_assert(!isnan(wk_metric_results_get(s->metrics, "val_ema/accuracy")));
    cr_assert(wk_metric_results_get(s->metrics, "val_ema/loss") !=
              wk_metric_results_get(s->metrics, "val/loss"));
    cr_assert_str_eq(s->best->target, "val_ema/loss");
    free(er.hist);
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- gradient accumulation ---- */

static void final_params(fx_parts *fx, double *out, int cap, int *n)
{
    wk_named_param np[8];
    int k = wk_module_named_parameters(fx->model->module, false, np, 8);
    *n = 0;
    for (int i = 0; i < k; i++)
        for (int64_t j = 0; j < wk_numel(np[i].tensor) && *n < cap; j++)
            out[(*n)++] = tu_at(np[i].tensor, j);
}

Test(runner, accumulation_equals_one_big_batch)
{
    double big[256], acc[256];
    int nb = 0, na = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fo.shuffle = false;
        fo.batch = pass == 0 ? 16 : 8;
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_runner_opts o = wk_runner_opts_default();
        o.max_epochs = 3;
        o.accumulate = pass == 0 ? 1 : 2;
        o.clip_max_norm = 0.5;
        o.work_dir = dir;
        o.quiet = true;
        wk_runner_state s;
        cr_assert_eq(run_with(&fx, &o, NULL, &s), 0, "%s", wk_last_error());
        cr_assert_eq(s.global_step, 12);
        final_params(&fx, pass == 0 ? big : acc, 256, pass == 0 ? &nb : &na);
        fx_free(&fx);
        rm_rf(dir);
    }
    cr_assert_eq(nb, na);
    for (int i = 0; i < nb; i++)
        cr_assert(fabs(big[i] - acc[i]) <= 1e-5 * (fabs(big[i]) + 1e-3), "param %d: %.9g vs %.9g",
                  i, big[i], acc[i]);
}

/* ---- NaN handling ---- */

typedef struct {
    int64_t calls, nan_at;
} nan_cfg;

static int nan_forward(wk_model *m, const wk_batch *b, wk_forward_mode mode, wk_model_output *out)
{
    nan_cfg *c = m->user;
    wk_tensor *x = wk_batch_get(b, "inputs");
    wk_tensor *y = wk_module_forward(m->module, x);
    if (mode != WK_MODE_LOSS) {
        wk_model_output_set(out, "logits", y);
        wk_model_output_set(out, "labels", wk_batch_get(b, "labels"));
        return wk_model_output_set(out, "loss", wk_cross_entropy(y, wk_batch_get(b, "labels"), NULL));
    }
    wk_tensor *loss = wk_cross_entropy(y, wk_batch_get(b, "labels"), NULL);
    if (++c->calls == c->nan_at) loss = wk_mul_scalar(loss, NAN);
    return wk_model_output_set(out, "loss", loss);
}

Test(runner, nan_loss_stops_or_skips)
{
    for (int policy = 0; policy < 2; policy++) {
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        nan_cfg nc = {0, 13};
        /* swap the classifier for a model with the same net whose 13th loss is NaN */
        wk_model *m = wk_model_new(fx_net(&fo), nan_forward, &nc, NULL);
        cr_assert_not_null(m);
        wk_named_param np[8];
        int n = wk_module_named_parameters(m->module, false, np, 8);
        wk_tensor *ts[8];
        for (int i = 0; i < n; i++) ts[i] = np[i].tensor;
        wk_optimizer_free(fx.opt);
        fx.opt = wk_sgd_new(ts, n, WK_HPARAMS({"lr", 0.05}));
        wk_model_free(fx.model);
        fx.model = m;
        wk_runner_opts o = wk_runner_opts_default();
        o.run_mode = WK_RUN_STEP;
        o.max_steps = 20;
        o.save_interval = 4;
        o.eval_interval = 0;
        o.nan_policy = policy == 0 ? WK_NAN_STOP : WK_NAN_SKIP;
        o.work_dir = dir;
        o.quiet = true;
        wk_runner_state s;
        int rc = run_with(&fx, &o, NULL, &s);
        if (policy == 0) {
            cr_assert_eq(rc, -1);
            cr_assert(strstr(wk_last_error(), "the loss is nan at epoch 2, iteration 5 (global "
                                              "step 12)"),
                      "%s", wk_last_error());
            cr_assert_eq(s.stop_reason, WK_STOP_NAN);
            cr_assert_eq(s.global_step, 12);
            cr_assert_eq(count_files(dir, "step_"), 3);
            cr_assert(!exists(dir, "last.safetensors"));
            char p[512];
            snprintf(p, sizeof p, "%s/checkpoints/step_00000012.safetensors", dir);
            wk_checkpoint ck;
            cr_assert_eq(wk_checkpoint_open(p, &ck), 0, "%s", wk_last_error());
            wk_checkpoint_close(&ck);
        } else {
            cr_assert_eq(rc, 0, "%s", wk_last_error());
            cr_assert_eq(s.nan_skipped, 1);
            cr_assert_eq(s.global_step, 20);
            cr_assert_eq(nc.calls, 21, "one extra micro-batch for the dropped update");
            cr_assert(exists(dir, "last.safetensors"));
        }
        fx_free(&fx);
        rm_rf(dir);
    }
}

/* ---- resume inside one process: corrupt newest falls back ---- */

Test(runner, resume_auto_skips_a_corrupt_newest_checkpoint)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.run_mode = WK_RUN_STEP;
    o.max_steps = 12;
    o.save_interval = 4;
    o.eval_interval = 0;
    o.save_best = false;
    o.work_dir = dir;
    o.quiet = true;
    cr_assert_eq(run_with(&fx, &o, NULL, NULL), 0, "%s", wk_last_error());
    /* damage last (12) and step 12 (truncate), keep 8 intact */
    char p[512];
    const char *bad[] = {"last.safetensors", "step_00000012.safetensors"};
    for (int i = 0; i < 2; i++) {
        snprintf(p, sizeof p, "%s/checkpoints/%s", dir, bad[i]);
        struct stat st;
        cr_assert_eq(stat(p, &st), 0);
        cr_assert_eq(truncate(p, st.st_size / 2), 0);
    }
    fx_free(&fx);
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    o.resume = "auto";
    o.max_steps = 14;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    rec rr = {0};
    wk_runner_hook h = rec_hook(&rr);
    wk_runner_add_hook(r, &h);
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert(strstr(wk_runner_get_state(r)->resumed_from, "step_00000008"), "%s",
              wk_runner_get_state(r)->resumed_from);
    cr_assert_eq(rr.nbatch_end, 6, "resumed at step 8, ran to 14");
    wk_runner_free(r);
    /* an explicit corrupt path is an error naming it */
    snprintf(p, sizeof p, "%s/broken.safetensors", dir);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    fputs("\x10\0\0\0\0\0\0\0{\"a\":", f);
    fclose(f);
    o.resume = p;
    r = wk_runner_new(&parts, &o);
    cr_assert_eq(wk_runner_run(r), -1);
    cr_assert(strstr(wk_last_error(), "broken.safetensors"), "%s", wk_last_error());
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

Test(runner, resume_of_a_finished_run_trains_nothing_and_can_extend)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 2;
    o.work_dir = dir;
    o.quiet = true;
    cr_assert_eq(run_with(&fx, &o, NULL, NULL), 0, "%s", wk_last_error());
    o.resume = "auto";
    rec r1 = {0};
    cr_assert_eq(run_with(&fx, &o, &r1, NULL), 0, "%s", wk_last_error());
    cr_assert_eq(r1.nbatch_end, 0);
    o.max_epochs = 3;
    rec r2 = {0};
    wk_runner_state s;
    cr_assert_eq(run_with(&fx, &o, &r2, &s), 0, "%s", wk_last_error());
    cr_assert_eq(r2.nbatch_end, 8);
    cr_assert_eq(r2.nepoch_end, 1);
    cr_assert_eq(s.global_step, 24);
    fx_free(&fx);
    rm_rf(dir);
}

Test(runner, load_from_takes_weights_only)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 1;
    o.work_dir = dir;
    o.quiet = true;
    cr_assert_eq(run_with(&fx, &o, NULL, NULL), 0, "%s", wk_last_error());
    double trained[256];
    int n;
    final_params(&fx, trained, 256, &n);
    fx_free(&fx);
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    double init[256];
    final_params(&fx, init, 256, &n);
    char p[512];
    snprintf(p, sizeof p, "%s/checkpoints/last.safetensors", dir);
    char dir2[600];
    snprintf(dir2, sizeof dir2, "%s/second", dir);
    o.work_dir = dir2;
    o.load_from = p;
    o.max_epochs = 1;
    o.eval_interval = 0;
    o.eval_at_end = false;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    rec rr = {.stop_at_step = 1};
    wk_runner_hook h = rec_hook(&rr);
    wk_runner_add_hook(r, &h);
    /* stop at once: the weights after one update started from the loaded ones, and the
     * step count started from 0 (weights only) */
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    cr_assert_eq(wk_runner_get_state(r)->global_step, 1);
    wk_runner_free(r);
    double now[256];
    int m;
    final_params(&fx, now, 256, &m);
    double to_trained = 0, init_to_trained = 0;
    for (int i = 0; i < n; i++) {
        to_trained = fmax(to_trained, fabs(now[i] - trained[i]));
        init_to_trained = fmax(init_to_trained, fabs(init[i] - trained[i]));
    }
    cr_assert_eq(m, n);
    cr_assert(to_trained < init_to_trained / 3, "one step from the loaded weights is %g away "
              "from them, the initial weights %g", to_trained, init_to_trained);
    o.load_from = "/nonexistent/w.safetensors";
    r = wk_runner_new(&parts, &o);
    cr_assert_eq(wk_runner_run(r), -1);
    cr_assert(strstr(wk_last_error(), "/nonexistent/w.safetensors"), "%s", wk_last_error());
    wk_runner_free(r);
    fx_free(&fx);
    rm_rf(dir);
}

Test(runner, world_one_distributed_matches_plain)
{
    double a[256], b[256];
    int na = 0, nb = 0;
    for (int pass = 0; pass < 2; pass++) {
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_runner_opts o = wk_runner_opts_default();
        o.max_epochs = 2;
        o.distributed = pass == 1;
        o.work_dir = dir;
        o.quiet = true;
        cr_assert_eq(run_with(&fx, &o, NULL, NULL), 0, "%s", wk_last_error());
        final_params(&fx, pass ? b : a, 256, pass ? &nb : &na);
        fx_free(&fx);
        rm_rf(dir);
    }
    cr_assert_eq(na, nb);
    cr_assert_eq(memcmp(a, b, (size_t)na * sizeof *a), 0);
}

/* ---- profiler and logger wiring ---- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = calloc((size_t)n + 1, 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    return s;
}

static int count_substr(const char *s, const char *needle)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p++) n++;
    return n;
}

Test(runner, profiler_on_writes_trace_and_table_off_writes_nothing)
{
    for (int on = 0; on < 2; on++) {
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_runner_opts o = wk_runner_opts_default();
        o.max_epochs = 1;
        o.use_ema = true;
        o.work_dir = dir;
        o.quiet = true;
        o.profiler = (wk_runner_profile){.enabled = on, .wait = 1, .warmup = 1, .active = 3,
                                         .repeat = 1};
        cr_assert_eq(run_with(&fx, &o, NULL, NULL), 0, "%s", wk_last_error());
        char p[512];
        snprintf(p, sizeof p, "%s/trace.json", dir);
        char *trace = read_all(p);
        snprintf(p, sizeof p, "%s/profile.txt", dir);
        char *table = read_all(p);
        if (!on) {
            cr_assert_null(trace, "profiling off wrote trace.json");
            cr_assert_null(table, "profiling off wrote profile.txt");
        } else {
            cr_assert_not_null(trace);
            cr_assert_not_null(table);
            cJSON *j = cJSON_Parse(trace);
            cr_assert_not_null(j, "trace.json does not parse");
            cJSON_Delete(j);
            cr_assert_eq(count_substr(trace, "\"ProfilerStep#"), 3, "expected 3 kept steps");
            const char *phases[] = {"data", "forward", "backward", "clip", "optimizer", "EMA",
                                    "hooks"};
            for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
                char needle[64];
                snprintf(needle, sizeof needle, "\"phase:%s\"", phases[i]);
                cr_assert(strstr(trace, needle), "no %s phase in the trace", phases[i]);
            }
            cr_assert(strstr(trace, "\"linear\""), "no op span in the trace");
            cr_assert(strstr(table, "linear"), "%s", table);
        }
        free(trace);
        free(table);
        fx_free(&fx);
        rm_rf(dir);
    }
}

Test(runner, logger_hook_writes_lines_scalars_and_tensorboard)
{
    char *dir = tmp_dir();
    fx_opts fo = fx_defaults();
    fx_parts fx;
    cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 2;
    o.log_interval = 4;
    o.save_interval = 5;
    o.clip_max_norm = 10;
    o.work_dir = dir;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    cr_assert_not_null(r, "%s", wk_last_error());
    char cpath[512];
    snprintf(cpath, sizeof cpath, "%s/console.txt", dir);
    FILE *console = fopen(cpath, "w");
    wk_logger *lg = wk_runner_attach_logger(r, &(wk_logger_opts){.console = console,
                                                                .tensorboard = true,
                                                                .progress = WK_LOG_PROGRESS_OFF});
    cr_assert_not_null(lg, "%s", wk_last_error());
    cr_assert_eq(wk_runner_logger(r), lg);
    char run_dir[512];
    snprintf(run_dir, sizeof run_dir, "%s", wk_logger_run_dir(lg));
    cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
    wk_runner_free(r);
    fclose(console);
    char *text = read_all(cpath);
    cr_assert(strstr(text, "Epoch(train) [1][4/8]  lr: 5.0000e-02  eta: "), "%s", text);
    cr_assert(strstr(text, "Epoch(train) [2][8/8]"), "%s", text);
    cr_assert(strstr(text, "grad_norm: "), "%s", text);
    cr_assert(strstr(text, "Epoch(val) [1][1/1]  accuracy: "), "%s", text);
    cr_assert(strstr(text, "Saved checkpoint: ") && strstr(text, "step_00000005.safetensors"),
              "%s", text);
    cr_assert(strstr(text, "(best val/accuracy "), "%s", text);
    free(text);
    char p[600];
    snprintf(p, sizeof p, "%s/scalars.jsonl", run_dir);
    char *lines = read_all(p);
    cr_assert_not_null(lines, "no %s", p);
    int train = 0, eval = 0, ckpt = 0, end = 0;
    for (char *line = strtok(lines, "\n"); line; line = strtok(NULL, "\n")) {
        cJSON *j = cJSON_Parse(line);
        cr_assert_not_null(j, "bad line %s", line);
        const char *ev = cJSON_GetObjectItem(j, "event")->valuestring;
        cr_assert(cJSON_HasObjectItem(j, "step") && cJSON_HasObjectItem(j, "epoch"), "%s", line);
        if (!strcmp(ev, "train")) {
            train++;
            cr_assert(cJSON_HasObjectItem(j, "train/loss") && cJSON_HasObjectItem(j, "lr") &&
                          cJSON_HasObjectItem(j, "grad_norm") && cJSON_HasObjectItem(j, "time"),
                      "%s", line);
        } else if (!strcmp(ev, "eval")) {
            eval++;
            cr_assert(cJSON_HasObjectItem(j, "val/accuracy") && cJSON_HasObjectItem(j, "val/loss"),
                      "%s", line);
        } else if (!strcmp(ev, "checkpoint")) {
            ckpt++;
        } else if (!strcmp(ev, "end")) {
            end++;
            cr_assert_str_eq(cJSON_GetObjectItem(j, "reason")->valuestring, "max_epochs");
            cr_assert_eq(cJSON_GetObjectItem(j, "step")->valueint, 16);
        }
        cJSON_Delete(j);
    }
    cr_assert_eq(train, 4);
    cr_assert_eq(eval, 2);
    cr_assert(ckpt >= 5, "%d checkpoint records (3 regular, best, last)", ckpt);
    cr_assert_eq(end, 1);
    free(lines);
    snprintf(p, sizeof p, "%s/tb", run_dir);
    DIR *d = opendir(p);
    cr_assert_not_null(d, "no tb folder");
    int events = 0;
    struct dirent *e;
    while ((e = readdir(d))) events += !strncmp(e->d_name, "events.out.tfevents.", 20);
    closedir(d);
    cr_assert_eq(events, 1);
    fx_free(&fx);
    rm_rf(dir);
}

/* ---- schedulers stepped on evaluations ---- */

Test(runner, plateau_and_valid_end_schedulers_step_on_the_target_metric)
{
    static const double script[] = {1, 2, 3, 0.5};
    for (int variant = 0; variant < 2; variant++) {
        char *dir = tmp_dir();
        fx_opts fo = fx_defaults();
        fx_parts fx;
        cr_assert_eq(fx_build(&fx, &fo), 0, "%s", wk_last_error());
        wk_evaluator_free(fx.ev);
        script_cfg sc = {script, 4, 0};
        fx.ev = scripted(&sc);
        wk_plateau_opts po = wk_plateau_opts_default();
        po.patience = 0;
        po.factor = 0.5;
        wk_scheduler *plateau = wk_plateau_new(fx.opt, &po);
        if (variant == 1) {
            /* qWarmupScheduler(step_on valid_end) around it: 2 warmup updates first */
            wk_qwarmup_opts w = wk_qwarmup_opts_default();
            w.warmup_steps = 2;
            w.step_on = "valid_end";
            plateau = wk_qwarmup_new(plateau, &w);
        }
        cr_assert_not_null(plateau, "%s", wk_last_error());
        fx.sched = plateau;
        wk_runner_opts o = wk_runner_opts_default();
        o.run_mode = WK_RUN_STEP;
        o.max_steps = 12;
        o.eval_interval = 3;
        o.best = (wk_runner_watch){.target = "val/score", .mode = "min"};
        o.work_dir = dir;
        o.quiet = true;
        wk_runner_parts parts = fx_runner_parts(&fx);
        wk_runner *r = wk_runner_new(&parts, &o);
        cr_assert_not_null(r, "%s", wk_last_error());
        cr_assert_eq(wk_runner_run(r), 0, "%s", wk_last_error());
        /* scores 1, 2, 3, 0.5: the 2nd and 3rd evaluations do not improve -> lr halved twice */
        double lr = wk_optimizer_get_lr(fx.opt, 0);
        cr_assert(fabs(lr - 0.25 * fo.lr) < 1e-12, "variant %d: lr %g, expected %g", variant, lr,
                  0.25 * fo.lr);
        wk_runner_free(r);
        fx_free(&fx);
        rm_rf(dir);
    }
}

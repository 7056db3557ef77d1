/* A whole training run from a config (see runner_config.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <math.h>

#include "../tensor/random.h"
#include "dist.h"
#include "registry.h"
#include "runner_config.h"

static void watch(const wk_cfg *parent, const char *key, wk_runner_watch *w, bool patience)
{
    wk_cfg c;
    if (wk_cfg_object(parent, key, &c) != 1) return;
    wk_cfg_require(&c, "target");
    wk_cfg_string(&c, "target", NULL, &w->target);
    static const char *const modes[] = {"min", "max", NULL};
    wk_cfg_choice(&c, "mode", NULL, modes, &w->mode);
    if (wk_cfg_number(&c, "min_delta", 0, &w->min_delta) == 1 && w->min_delta < 0)
        wk_cfg_error(&c, "min_delta", "must be >= 0, got %g", w->min_delta);
    if (patience) {
        wk_cfg_require(&c, "patience");
        if (wk_cfg_int(&c, "patience", 0, &w->patience) == 1 && w->patience < 1)
            wk_cfg_error(&c, "patience", "must be >= 1, got %lld", (long long)w->patience);
    }
    wk_cfg_finish(&c);
}

static void clip_grad(const wk_cfg *parent, wk_runner_opts *o)
{
    wk_cfg c;
    if (wk_cfg_object(parent, "clip_grad", &c) != 1) return;
    bool norm = wk_cfg_has(&c, "max_norm"), value = wk_cfg_has(&c, "value");
    if (norm == value)
        wk_cfg_error(&c, NULL, "give max_norm (and norm_type) or value");
    if (wk_cfg_number(&c, "max_norm", 0, &o->clip_max_norm) == 1 && !(o->clip_max_norm > 0))
        wk_cfg_error(&c, "max_norm", "must be > 0, got %g", o->clip_max_norm);
    const struct cJSON *nt = wk_cfg_raw(&c, "norm_type");
    if (nt && cJSON_IsString(nt) && !strcmp(nt->valuestring, "inf")) o->clip_norm_type = INFINITY;
    else if (wk_cfg_number(&c, "norm_type", 2, &o->clip_norm_type) == 1 && !(o->clip_norm_type > 0))
        wk_cfg_error(&c, "norm_type", "must be > 0 or \"inf\", got %g", o->clip_norm_type);
    if (wk_cfg_number(&c, "value", 0, &o->clip_value) == 1 && !(o->clip_value > 0))
        wk_cfg_error(&c, "value", "must be > 0, got %g", o->clip_value);
    wk_cfg_finish(&c);
}

static void profiler(const wk_cfg *parent, wk_runner_opts *o)
{
    wk_cfg_kind k = wk_cfg_kind_of(parent, "use_profiler");
    if (k == WK_CFG_BOOL) {
        wk_cfg_bool(parent, "use_profiler", false, &o->profiler.enabled);
        return;
    }
    wk_cfg c;
    if (wk_cfg_object(parent, "use_profiler", &c) != 1) {
        if (k != WK_CFG_ABSENT) wk_cfg_expected(parent, "use_profiler", "true, false or an object");
        return;
    }
    o->profiler.enabled = true;
    const char *keys[] = {"wait", "warmup", "active", "repeat"};
    int64_t *vals[] = {&o->profiler.wait, &o->profiler.warmup, &o->profiler.active,
                       &o->profiler.repeat};
    for (int i = 0; i < 4; i++)
        if (wk_cfg_int(&c, keys[i], 0, vals[i]) == 1 && *vals[i] < 0)
            wk_cfg_error(&c, keys[i], "must be >= 0, got %lld", (long long)*vals[i]);
    wk_cfg_finish(&c);
}

int wk_runner_opts_from_config(wk_config *cfg, wk_runner_opts *o)
{
    *o = wk_runner_opts_default();
    int before = wk_config_error_count(cfg);
    wk_cfg root = wk_config_root(cfg), c;
    wk_cfg_object(&root, "runner", &c);
    static const char *const modes[] = {"epoch", "step", NULL};
    const char *mode = "epoch";
    wk_cfg_choice(&c, "run_mode", "epoch", modes, &mode);
    o->run_mode = !strcmp(mode, "step") ? WK_RUN_STEP : WK_RUN_EPOCH;
    struct {
        const char *key;
        int64_t *v;
        int64_t lo;
    } ints[] = {{"max_epochs", &o->max_epochs, 1},  {"max_steps", &o->max_steps, 1},
                {"eval_interval", &o->eval_interval, 0}, {"save_interval", &o->save_interval, 0},
                {"max_keep", &o->max_keep, 0},      {"accumulate", &o->accumulate, 1},
                {"log_interval", &o->log_interval, 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (wk_cfg_int(&c, ints[i].key, *ints[i].v, ints[i].v) == 1 && *ints[i].v < ints[i].lo)
            wk_cfg_error(&c, ints[i].key, "must be >= %lld, got %lld", (long long)ints[i].lo,
                         (long long)*ints[i].v);
    wk_cfg_bool(&c, "eval_at_end", true, &o->eval_at_end);
    wk_cfg_bool(&c, "save_best", true, &o->save_best);
    watch(&c, "best", &o->best, false);
    watch(&c, "early_stop", &o->early_stop, true);
    clip_grad(&c, o);
    wk_cfg_bool(&c, "use_ema", false, &o->use_ema);
    if (wk_cfg_number(&c, "ema_decay", 0.999, &o->ema_decay) == 1 &&
        !(o->ema_decay >= 0 && o->ema_decay <= 1))
        wk_cfg_error(&c, "ema_decay", "must be in [0, 1], got %g", o->ema_decay);
    static const char *const policies[] = {"stop", "skip", NULL};
    const char *policy = "stop";
    wk_cfg_choice(&c, "nan_policy", "stop", policies, &policy);
    o->nan_policy = !strcmp(policy, "skip") ? WK_NAN_SKIP : WK_NAN_STOP;
    int64_t seed = 0;
    if (wk_cfg_int(&c, "seed", 0, &seed) == 1 && seed < 0)
        wk_cfg_error(&c, "seed", "must be >= 0, got %lld", (long long)seed);
    o->seed = (uint64_t)seed;
    static char default_dir[512];
    snprintf(default_dir, sizeof default_dir, "work_dirs/%s", wk_config_name(cfg));
    wk_cfg_string(&c, "work_dir", default_dir, &o->work_dir);
    if (wk_cfg_kind_of(&c, "resume") == WK_CFG_BOOL) {
        bool b = false;
        wk_cfg_bool(&c, "resume", false, &b);
        o->resume = b ? "auto" : NULL;
    } else {
        wk_cfg_string(&c, "resume", NULL, &o->resume);
    }
    wk_cfg_string(&c, "load_from", NULL, &o->load_from);
    wk_cfg_bool(&c, "load_strict", true, &o->load_strict);
    wk_cfg_bool(&c, "distributed", false, &o->distributed);
    if (wk_cfg_number(&c, "bucket_mb", 25, &o->bucket_mb) == 1 && !(o->bucket_mb > 0))
        wk_cfg_error(&c, "bucket_mb", "must be > 0, got %g", o->bucket_mb);
    profiler(&c, o);
    wk_cfg_finish(&c);
    if (wk_config_error_count(cfg) > before) {
        wk_set_error("%s", wk_config_errors(cfg));
        return -1;
    }
    return 0;
}

/* ---- the whole run ---- */

static wk_loader *loader(const wk_cfg *root, const char *key, const wk_build_ctx *ctx,
                         bool required, wk_dataset **ds)
{
    wk_cfg s;
    int has = wk_cfg_object(root, key, &s);
    if (has == 1) return wk_build_loader(&s, ctx, ds);
    if (has == 0 && required) wk_cfg_require(root, key);
    return NULL;
}

wk_run *wk_run_from_config(wk_config *cfg)
{
    if (!cfg) {
        wk_set_error("run_from_config: the config is NULL");
        return NULL;
    }
    wk_run *run = calloc(1, sizeof *run);
    if (!run) {
        wk_set_error("run_from_config: out of memory");
        return NULL;
    }
    run->config = cfg;
    wk_config_clear_errors(cfg);
    wk_config_check_sections(cfg);
    wk_runner_opts_from_config(cfg, &run->opts);
    wk_runner_opts *o = &run->opts;
    wk_build_ctx ctx = {.seed = o->seed, .world_size = 1};
    if (o->distributed) {
        wk_comm *c = wk_dist_world();
        if (!c) goto fail;
        ctx.rank = wk_comm_rank(c);
        ctx.world_size = wk_comm_size(c);
    }
    wk_cfg root = wk_config_root(cfg), s;
    wk_generator init = wk_generator_make(wk_dist_seed(o->seed, WK_SEED_INIT, 0));
    wk_build_ctx mctx = ctx;
    mctx.generator = &init;
    if (wk_cfg_object(&root, "model", &s) == 1) run->model = wk_build_model(&s, &mctx);
    else wk_cfg_require(&root, "model");
    run->train = loader(&root, "train_dataloader", &ctx, true, &run->train_ds);
    run->val = loader(&root, "val_dataloader", &ctx, false, &run->val_ds);
    run->test = loader(&root, "test_dataloader", &ctx, false, &run->test_ds);
    if (run->val || run->test || wk_cfg_has(&root, "val_evaluator"))
        run->val_evaluator = wk_build_evaluator(&root, "val_evaluator", &ctx);
    if (wk_cfg_has(&root, "test_evaluator"))
        run->test_evaluator = wk_build_evaluator(&root, "test_evaluator", &ctx);
    if (run->model) {
        ctx.model = run->model;
        if (wk_cfg_object(&root, "optimizer", &s) == 1) run->optimizer = wk_build_optimizer(&s, &ctx);
        else wk_cfg_require(&root, "optimizer");
    }
    if (run->optimizer && run->train && wk_cfg_object(&root, "scheduler", &s) == 1) {
        ctx.optimizer = run->optimizer;
        int64_t A = o->accumulate > 0 ? o->accumulate : 1;
        ctx.steps_per_epoch = (wk_loader_length(run->train) + A - 1) / A;
        run->scheduler = wk_build_scheduler(&s, &ctx);
    }
    wk_cfg_has(&root, "hooks"); /* read after the runner exists */
    if (wk_config_error_count(cfg) > 0) {
        wk_set_error("%s", wk_config_errors(cfg));
        goto fail;
    }
    run->config_text = wk_config_to_string(cfg);
    if (!run->config_text) goto fail;
    o->config_json = run->config_text;
    wk_runner_parts parts = {.model = run->model, .optimizer = run->optimizer,
                             .scheduler = run->scheduler, .train_loader = run->train,
                             .val_loader = run->val, .test_loader = run->test,
                             .evaluator = run->val_evaluator,
                             .test_evaluator = run->test_evaluator};
    run->runner = wk_runner_new(&parts, o);
    if (!run->runner) {
        char msg[4096];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        wk_set_error("%s: %s", wk_config_file(cfg) ? wk_config_file(cfg) : "config", msg);
        goto fail;
    }
    if (wk_build_hooks(&root, "hooks", run->runner, NULL) < 0) goto fail;
    return run;
fail:
    wk_run_free(run);
    return NULL;
}

void wk_run_free(wk_run *run)
{
    if (!run) return;
    wk_runner_free(run->runner);
    wk_scheduler_free(run->scheduler);
    wk_optimizer_free(run->optimizer);
    wk_evaluator_free(run->val_evaluator);
    wk_evaluator_free(run->test_evaluator);
    wk_loader_free(run->train);
    wk_loader_free(run->val);
    wk_loader_free(run->test);
    wk_dataset_free(run->train_ds);
    wk_dataset_free(run->val_ds);
    wk_dataset_free(run->test_ds);
    wk_model_free(run->model);
    free(run->config_text);
    free(run);
}

/* Built-in optimizers and LR schedulers, with torch's keyword names. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "registry-impl.h"

#define MAX_LIST 64

/* ---- optimizers ---- */

typedef enum { K_NUMBER, K_BOOL, K_BETAS } key_kind;

typedef struct {
    const char *key;
    key_kind kind;
} opt_key;

static const opt_key sgd_keys[] = {{"lr", K_NUMBER},           {"momentum", K_NUMBER},
                                   {"dampening", K_NUMBER},    {"weight_decay", K_NUMBER},
                                   {"nesterov", K_BOOL},       {"maximize", K_BOOL},
                                   {NULL, K_NUMBER}};
static const opt_key adam_keys[] = {{"lr", K_NUMBER},       {"betas", K_BETAS},
                                    {"eps", K_NUMBER},      {"weight_decay", K_NUMBER},
                                    {"amsgrad", K_BOOL},    {"maximize", K_BOOL},
                                    {NULL, K_NUMBER}};
static const opt_key rmsprop_keys[] = {{"lr", K_NUMBER},       {"alpha", K_NUMBER},
                                       {"eps", K_NUMBER},      {"weight_decay", K_NUMBER},
                                       {"momentum", K_NUMBER}, {"centered", K_BOOL},
                                       {"maximize", K_BOOL},   {NULL, K_NUMBER}};
static const opt_key adagrad_keys[] = {{"lr", K_NUMBER},
                                       {"lr_decay", K_NUMBER},
                                       {"weight_decay", K_NUMBER},
                                       {"initial_accumulator_value", K_NUMBER},
                                       {"eps", K_NUMBER},
                                       {"maximize", K_BOOL},
                                       {NULL, K_NUMBER}};

/* The config key behind an optimizer message ("Adam: beta2 = 1 is out of range"). */
static const char *key_of_message(const char *msg, const opt_key *keys)
{
    if (strstr(msg, "beta1") || strstr(msg, "beta2")) return "betas";
    const char *best = NULL;
    size_t best_len = 0;
    for (const opt_key *k = keys; k->key; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, "%s =", k->key);
        const char *p = strstr(msg, pat);
        /* "lr =" also matches inside "lr_decay =" only at a word start: check it */
        if (p && (p == msg || p[-1] == ' ' || p[-1] == '"') && strlen(k->key) > best_len) {
            best = k->key;
            best_len = strlen(k->key);
        }
    }
    return best;
}

static wk_optimizer *build_optimizer(const wk_cfg *c, const wk_build_ctx *ctx, wk_optim_type type,
                                     const opt_key *keys)
{
    wk_hparam hp[16];
    int n = 0;
    if (type == WK_OPTIM_SGD) wk_cfg_require(c, "lr");
    for (const opt_key *k = keys; k->key; k++) {
        if (k->kind == K_NUMBER) {
            double v;
            if (wk_cfg_number(c, k->key, 0, &v) == 1) hp[n++] = (wk_hparam){k->key, v};
        } else if (k->kind == K_BOOL) {
            bool b;
            if (wk_cfg_bool(c, k->key, false, &b) == 1) hp[n++] = (wk_hparam){k->key, b};
        } else {
            double b[2];
            int nb = 0;
            int rc = wk_cfg_number_list(c, k->key, b, 2, &nb);
            if (rc == 1 && nb != 2) {
                wk_cfg_error(c, k->key, "expected a list of 2 numbers [beta1, beta2], got %d",
                             nb);
            } else if (rc == 1) {
                hp[n++] = (wk_hparam){"beta1", b[0]};
                hp[n++] = (wk_hparam){"beta2", b[1]};
            }
        }
    }
    hp[n] = (wk_hparam){NULL, 0};
    wk_cfg pw;
    bool no_decay = false;
    if (wk_cfg_object(c, "paramwise", &pw) == 1) {
        snprintf(pw.what, sizeof pw.what, "paramwise");
        wk_cfg_bool(&pw, "no_decay_bias_norm", false, &no_decay);
        wk_cfg_finish(&pw);
    }
    if (!ctx->model || !ctx->model->module)
        wk_cfg_error(c, NULL, "%s needs the model whose parameters it updates "
                              "(wk_build_ctx.model is NULL)", c->what);
    if (wk_cfg_finish(c) < 0) return NULL;
    int ng = 0;
    wk_param_group *groups = wk_param_groups_from_module(ctx->model->module, no_decay, &ng);
    if (!groups) return NULL;
    wk_optimizer *opt = wk_optimizer_new(type, groups, ng, hp);
    wk_param_groups_free(groups, ng);
    if (!opt) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        wk_cfg_error(c, key_of_message(msg, keys), "%s", msg);
    }
    return opt;
}

wk_optimizer *wki_build_sgd(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_optimizer(c, ctx, WK_OPTIM_SGD, sgd_keys);
}

wk_optimizer *wki_build_adam(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_optimizer(c, ctx, WK_OPTIM_ADAM, adam_keys);
}

wk_optimizer *wki_build_adamw(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_optimizer(c, ctx, WK_OPTIM_ADAMW, adam_keys);
}

wk_optimizer *wki_build_rmsprop(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_optimizer(c, ctx, WK_OPTIM_RMSPROP, rmsprop_keys);
}

wk_optimizer *wki_build_adagrad(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_optimizer(c, ctx, WK_OPTIM_ADAGRAD, adagrad_keys);
}

/* ---- schedulers ----
 * Range checks are the scheduler constructors' (their messages name the config keys;
 * the registry records them at the key they name). */

static double number(const wk_cfg *c, const char *key, double def)
{
    double v;
    wk_cfg_number(c, key, def, &v);
    return v;
}

static int64_t integer(const wk_cfg *c, const char *key, int64_t def)
{
    int64_t v;
    wk_cfg_int(c, key, def, &v);
    return v;
}

static double required_number(const wk_cfg *c, const char *key)
{
    wk_cfg_require(c, key);
    return number(c, key, 0);
}

static int64_t required_int(const wk_cfg *c, const char *key)
{
    wk_cfg_require(c, key);
    return integer(c, key, 0);
}

#define FINISH_OR_NULL(c)                                                                 \
    do {                                                                                  \
        if (wk_cfg_finish(c) < 0) return NULL;                                            \
    } while (0)

wk_scheduler *wki_build_step_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t step = required_int(c, "step_size");
    double gamma = number(c, "gamma", 0.1);
    FINISH_OR_NULL(c);
    return wk_step_lr_new(ctx->optimizer, step, gamma);
}

wk_scheduler *wki_build_multistep_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t ms[MAX_LIST];
    int n = 0;
    wk_cfg_require(c, "milestones");
    wk_cfg_int_list(c, "milestones", ms, MAX_LIST, &n);
    double gamma = number(c, "gamma", 0.1);
    FINISH_OR_NULL(c);
    return wk_multistep_lr_new(ctx->optimizer, ms, n, gamma);
}

wk_scheduler *wki_build_exponential_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    double gamma = required_number(c, "gamma");
    FINISH_OR_NULL(c);
    return wk_exponential_lr_new(ctx->optimizer, gamma);
}

wk_scheduler *wki_build_cosine_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t t_max = required_int(c, "T_max");
    double eta_min = number(c, "eta_min", 0);
    FINISH_OR_NULL(c);
    return wk_cosine_lr_new(ctx->optimizer, t_max, eta_min);
}

wk_scheduler *wki_build_linear_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    double start = number(c, "start_factor", 1.0 / 3), end = number(c, "end_factor", 1.0);
    int64_t total = integer(c, "total_iters", 5);
    FINISH_OR_NULL(c);
    return wk_linear_lr_new(ctx->optimizer, start, end, total);
}

wk_scheduler *wki_build_constant_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    double factor = number(c, "factor", 1.0 / 3);
    int64_t total = integer(c, "total_iters", 5);
    FINISH_OR_NULL(c);
    return wk_constant_lr_new(ctx->optimizer, factor, total);
}

wk_scheduler *wki_build_polynomial_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t total = integer(c, "total_iters", 5);
    double power = number(c, "power", 1.0);
    FINISH_OR_NULL(c);
    return wk_polynomial_lr_new(ctx->optimizer, total, power);
}

wk_scheduler *wki_build_onecycle_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    static const char *const strategies[] = {"cos", "linear", NULL};
    wk_onecycle_opts o = wk_onecycle_opts_default();
    double max_lrs[MAX_LIST];
    int n = 0;
    wk_cfg_require(c, "max_lr");
    wk_cfg_number_list(c, "max_lr", max_lrs, MAX_LIST, &n);
    if (n == 1) o.max_lr = max_lrs[0];
    else if (n > 1) o.max_lrs = max_lrs, o.n_max_lrs = n;
    o.total_steps = integer(c, "total_steps", o.total_steps);
    o.epochs = integer(c, "epochs", o.epochs);
    o.steps_per_epoch = integer(c, "steps_per_epoch", ctx->steps_per_epoch);
    o.pct_start = number(c, "pct_start", o.pct_start);
    wk_cfg_choice(c, "anneal_strategy", "cos", strategies, &o.anneal_strategy);
    o.div_factor = number(c, "div_factor", o.div_factor);
    o.final_div_factor = number(c, "final_div_factor", o.final_div_factor);
    wk_cfg_bool(c, "three_phase", o.three_phase, &o.three_phase);
    if (!o.total_steps && !(o.epochs && o.steps_per_epoch))
        wk_cfg_error(c, NULL, "OneCycleLR needs total_steps, or epochs (and steps_per_epoch, "
                              "which the runner passes)");
    FINISH_OR_NULL(c);
    return wk_onecycle_lr_new(ctx->optimizer, &o);
}

wk_scheduler *wki_build_cosine_restarts_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t t0 = required_int(c, "T_0");
    int64_t t_mult = integer(c, "T_mult", 1);
    double eta_min = number(c, "eta_min", 0);
    FINISH_OR_NULL(c);
    return wk_cosine_restarts_lr_new(ctx->optimizer, t0, t_mult, eta_min);
}

wk_scheduler *wki_build_plateau(const wk_cfg *c, const wk_build_ctx *ctx)
{
    static const char *const modes[] = {"min", "max", NULL};
    static const char *const tmodes[] = {"rel", "abs", NULL};
    wk_plateau_opts o = wk_plateau_opts_default();
    wk_cfg_choice(c, "mode", "min", modes, &o.mode);
    o.factor = number(c, "factor", o.factor);
    o.patience = integer(c, "patience", o.patience);
    o.threshold = number(c, "threshold", o.threshold);
    wk_cfg_choice(c, "threshold_mode", "rel", tmodes, &o.threshold_mode);
    o.cooldown = integer(c, "cooldown", o.cooldown);
    double min_lrs[MAX_LIST];
    int n = 0;
    wk_cfg_number_list(c, "min_lr", min_lrs, MAX_LIST, &n);
    if (n == 1) o.min_lr = min_lrs[0];
    else if (n > 1) o.min_lrs = min_lrs, o.n_min_lrs = n;
    o.eps = number(c, "eps", o.eps);
    FINISH_OR_NULL(c);
    return wk_plateau_new(ctx->optimizer, &o);
}

/* The schedulers listed at "schedulers" (each built like a top-level one but without
 * by_epoch). Returns their count (the array is the caller's to free, with them), or -1
 * having recorded the problems and freed what was built. */
static int build_children(const wk_cfg *c, const wk_build_ctx *ctx, wk_scheduler ***out)
{
    *out = NULL;
    wk_cfg_require(c, "schedulers");
    int n = wk_cfg_items(c, "schedulers");
    if (n <= 0) {
        if (n == 0 && wk_cfg_has(c, "schedulers"))
            wk_cfg_error(c, "schedulers", "expected at least one scheduler, got an empty list");
        return -1;
    }
    wk_scheduler **s = calloc((size_t)n, sizeof *s);
    if (!s) {
        wk_cfg_error(c, "schedulers", "out of memory");
        return -1;
    }
    bool failed = false;
    for (int i = 0; i < n; i++) {
        wk_cfg item;
        if (wk_cfg_item(c, "schedulers", i, &item) < 0) failed = true;
        else if (!(s[i] = wki_build_scheduler(&item, ctx, false))) failed = true;
    }
    if (failed) {
        for (int i = 0; i < n; i++) wk_scheduler_free(s[i]);
        free(s);
        return -1;
    }
    *out = s;
    return n;
}

wk_scheduler *wki_build_sequential_lr(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t ms[MAX_LIST];
    int nm = 0;
    wk_cfg_require(c, "milestones");
    wk_cfg_int_list(c, "milestones", ms, MAX_LIST, &nm);
    wk_scheduler **s;
    int n = build_children(c, ctx, &s);
    if (wk_cfg_finish(c) < 0 || n < 0) {
        for (int i = 0; i < n; i++) wk_scheduler_free(s[i]);
        free(s);
        return NULL;
    }
    wk_scheduler *r = wk_sequential_lr_new(s, n, ms, nm);
    free(s);
    return r;
}

wk_scheduler *wki_build_chained(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_scheduler **s;
    int n = build_children(c, ctx, &s);
    if (wk_cfg_finish(c) < 0 || n < 0) {
        for (int i = 0; i < n; i++) wk_scheduler_free(s[i]);
        free(s);
        return NULL;
    }
    wk_scheduler *r = wk_chained_lr_new(s, n);
    free(s);
    return r;
}

wk_scheduler *wki_build_qwarmup(const wk_cfg *c, const wk_build_ctx *ctx)
{
    static const char *const step_on[] = {"optimizer_step", "valid_end", NULL};
    wk_qwarmup_opts o = wk_qwarmup_opts_default();
    bool steps = wk_cfg_int(c, "warmup_steps", o.warmup_steps, &o.warmup_steps) == 1;
    bool epochs = wk_cfg_int(c, "warmup_epochs", o.warmup_epochs, &o.warmup_epochs) == 1;
    if (steps && epochs)
        wk_cfg_error(c, "warmup_epochs", "give warmup_steps or warmup_epochs, not both");
    if (epochs && o.warmup_epochs > 0 && ctx->steps_per_epoch <= 0)
        wk_cfg_error(c, "warmup_epochs", "needs the number of steps per epoch (the runner "
                                         "passes it; wk_build_ctx.steps_per_epoch is %lld)",
                     (long long)ctx->steps_per_epoch);
    o.steps_per_epoch = ctx->steps_per_epoch;
    o.warmup_factor = number(c, "warmup_factor", o.warmup_factor);
    wk_cfg_choice(c, "step_on", "optimizer_step", step_on, &o.step_on);
    wk_cfg main;
    wk_cfg_require(c, "main");
    wk_scheduler *m = NULL;
    if (wk_cfg_object(c, "main", &main) == 1) m = wki_build_scheduler(&main, ctx, false);
    if (wk_cfg_finish(c) < 0 || !m) {
        wk_scheduler_free(m);
        return NULL;
    }
    return wk_qwarmup_new(m, &o);
}

/* LR schedulers: the common object (step, groups, state) and the closed-form schedules.
 * ReduceLROnPlateau lives in plateau.c; qWarmupScheduler, SequentialLR and
 * ChainedScheduler in warmup.c. Each formula repeats torch 1.13's _get_closed_form_lr
 * (or get_lr) operation for operation, so the doubles agree with torch's bit for bit on
 * the same libm. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor-impl.h"
#include "scheduler-impl.h"

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

/* ---- closed forms ---- */

static int step_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double f = pow(s->u.step.gamma, (double)(k / s->u.step.step_size));
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static int multistep_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    int c = 0; /* bisect_right over the sorted milestones */
    while (c < s->u.multistep.n && s->u.multistep.milestones[c] <= k) c++;
    double f = pow(s->u.multistep.gamma, (double)c);
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static int exp_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double f = pow(s->u.exp.gamma, (double)k);
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static int cosine_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double e = s->u.cosine.eta_min;
    double c = 1 + cos(M_PI * (double)k / (double)s->u.cosine.T_max);
    for (int g = 0; g < s->ngroups; g++) out[g] = e + (s->base[g] - e) * c / 2;
    return 0;
}

static int linear_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    int64_t t = s->u.linear.total, m = k < t ? k : t;
    double a = s->u.linear.start, b = s->u.linear.end;
    double f = a + (b - a) * (double)m / (double)t;
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static int constant_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double fa = s->u.constant.factor;
    double f = fa + (k >= s->u.constant.total ? 1 - fa : 0.0);
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static int poly_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    int64_t t = s->u.poly.total, m = k < t ? k : t;
    double f = pow(1.0 - (double)m / (double)t, s->u.poly.power);
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static double anneal(bool linear, double start, double end, double pct)
{
    if (linear) return (end - start) * pct + start;
    double c = cos(M_PI * pct) + 1;
    return end + (start - end) / 2.0 * c;
}

static int onecycle_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    const __typeof__(s->u.onecycle) *o = &s->u.onecycle;
    if (k > o->total_steps) {
        wk_set_error("OneCycleLR: tried to step %lld times; total_steps is %lld",
                     (long long)k, (long long)o->total_steps);
        return -1;
    }
    double T = (double)o->total_steps, p = o->pct_start;
    /* phase ends and their (start, end) lrs: 0 initial, 1 max, 2 min */
    double ends[3];
    int from[3], to[3], nph;
    if (o->three_phase) {
        ends[0] = p * T - 1, ends[1] = 2 * p * T - 2, ends[2] = T - 1;
        from[0] = 0, to[0] = 1, from[1] = 1, to[1] = 0, from[2] = 0, to[2] = 2, nph = 3;
    } else {
        ends[0] = p * T - 1, ends[1] = T - 1;
        from[0] = 0, to[0] = 1, from[1] = 1, to[1] = 2, nph = 2;
    }
    double start = 0;
    int ph = 0;
    for (; ph < nph; ph++) {
        if ((double)k <= ends[ph] || ph == nph - 1) break;
        start = ends[ph];
    }
    if (ends[ph] - start == 0) {
        wk_set_error("OneCycleLR: phase %d is empty at step %lld (pct_start %g, total_steps "
                     "%lld)", ph + 1, (long long)k, p, (long long)o->total_steps);
        return -1;
    }
    double pct = ((double)k - start) / (ends[ph] - start);
    for (int g = 0; g < s->ngroups; g++) {
        double mx = o->max_lrs ? o->max_lrs[g] : o->max_lr;
        double v[3];
        v[1] = mx, v[0] = mx / o->div_factor, v[2] = v[0] / o->final_div_factor;
        out[g] = anneal(o->linear, v[from[ph]], v[to[ph]], pct);
    }
    return 0;
}

static int restarts_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    int64_t T_i = s->u.restarts.T_0, T_cur = k, mult = s->u.restarts.T_mult;
    if (mult == 1) {
        T_cur = k % T_i;
    } else {
        /* torch's recursion: T_cur += 1; at T_cur >= T_i: T_cur -= T_i, T_i *= T_mult */
        while (T_cur >= T_i) {
            T_cur -= T_i;
            if (T_i > INT64_MAX / mult) break; /* T_cur < T_i * mult already */
            T_i *= mult;
        }
    }
    double e = s->u.restarts.eta_min;
    double c = 1 + cos(M_PI * (double)T_cur / (double)T_i);
    for (int g = 0; g < s->ngroups; g++) out[g] = e + (s->base[g] - e) * c / 2;
    return 0;
}

static int lambda_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double f = s->u.lambda.fn(k, s->u.lambda.user);
    if (!isfinite(f)) {
        wk_set_error("LambdaLR: lr_lambda returned %g at step %lld (must be finite)", f,
                     (long long)k);
        return -1;
    }
    for (int g = 0; g < s->ngroups; g++) out[g] = s->base[g] * f;
    return 0;
}

static void multistep_free(wk_scheduler *s) { free(s->u.multistep.milestones); }
static void onecycle_free(wk_scheduler *s) { free(s->u.onecycle.max_lrs); }

static int onecycle_check_groups(const wk_scheduler *s, int n)
{
    if (s->u.onecycle.max_lrs && s->u.onecycle.n_max_lrs != n) {
        wk_set_error("OneCycleLR: max_lr has %d values but there are %d parameter groups",
                     s->u.onecycle.n_max_lrs, n);
        return -1;
    }
    return 0;
}

const wki_sched_info wki_sched_table[] = {
    [WK_SCHED_TYPE_STEP] = {.name = "StepLR", .lr_at = step_lr_at},
    [WK_SCHED_TYPE_MULTISTEP] = {.name = "MultiStepLR", .lr_at = multistep_lr_at,
                                 .free = multistep_free},
    [WK_SCHED_TYPE_EXPONENTIAL] = {.name = "ExponentialLR", .lr_at = exp_lr_at},
    [WK_SCHED_TYPE_COSINE] = {.name = "CosineAnnealingLR", .lr_at = cosine_lr_at},
    [WK_SCHED_TYPE_LINEAR] = {.name = "LinearLR", .lr_at = linear_lr_at},
    [WK_SCHED_TYPE_CONSTANT] = {.name = "ConstantLR", .lr_at = constant_lr_at},
    [WK_SCHED_TYPE_POLYNOMIAL] = {.name = "PolynomialLR", .lr_at = poly_lr_at},
    [WK_SCHED_TYPE_ONECYCLE] = {.name = "OneCycleLR", .lr_at = onecycle_lr_at,
                                .check_groups = onecycle_check_groups,
                                .free = onecycle_free},
    [WK_SCHED_TYPE_COSINE_RESTARTS] = {.name = "CosineAnnealingWarmRestarts",
                                       .lr_at = restarts_lr_at},
    [WK_SCHED_TYPE_LAMBDA] = {.name = "LambdaLR", .lr_at = lambda_lr_at},
    [WK_SCHED_TYPE_PLATEAU] = {.name = "ReduceLROnPlateau", .step = wki_plateau_step,
                               .step_metric = wki_plateau_step_metric,
                               .check_groups = wki_plateau_check_groups,
                               .reset = wki_plateau_reset, .save = wki_plateau_save,
                               .load = wki_plateau_load, .free = wki_plateau_free},
    [WK_SCHED_TYPE_SEQUENTIAL] = {.name = "SequentialLR", .lr_at = wki_seq_lr_at,
                                  .sync = wki_seq_sync, .free = wki_seq_free},
    [WK_SCHED_TYPE_CHAINED] = {.name = "ChainedScheduler", .lr_at = wki_chained_lr_at,
                               .sync = wki_chained_sync},
    [WK_SCHED_TYPE_QWARMUP] = {.name = "qWarmupScheduler", .lr_at = wki_warmup_lr_at,
                               .sync = wki_warmup_sync, .step = wki_warmup_step,
                               .step_metric = wki_warmup_step_metric,
                               .reset = wki_warmup_reset},
};
_Static_assert(sizeof wki_sched_table / sizeof wki_sched_table[0] == WK_SCHED_TYPE_COUNT,
               "wki_sched_table needs one entry per wk_sched_type");

/* ---- the common object ---- */

static const wki_sched_info *info(const wk_scheduler *s) { return &wki_sched_table[s->type]; }

static bool not_null(const char *fn, const wk_scheduler *s)
{
    if (!s) wk_set_error("%s: scheduler is NULL", fn);
    return s != NULL;
}

/* the public mutators refuse schedulers inside another: they move with the outer one */
static bool can_change(const char *fn, const wk_scheduler *s)
{
    if (!not_null(fn, s)) return false;
    if (s->owned)
        wk_set_error("%s: this %s belongs to another scheduler; use the outer one", fn,
                     info(s)->name);
    return !s->owned;
}

wk_scheduler *wki_sched_alloc(const char *who, wk_sched_type type, wk_optimizer *opt)
{
    int n = opt ? wk_optimizer_num_groups(opt) : 0;
    wk_scheduler *s = calloc(1, sizeof *s);
    double *base = calloc((size_t)(n > 0 ? n : 1), sizeof *base);
    double *lr = calloc((size_t)(n > 0 ? n : 1), sizeof *lr);
    if (!s || !base || !lr) {
        free(s), free(base), free(lr);
        wk_set_error("%s: out of memory", who);
        return NULL;
    }
    *s = (wk_scheduler){.type = type, .opt = opt, .unit = WK_SCHED_PER_STEP, .ngroups = n,
                        .base = base, .lr = lr};
    for (int g = 0; g < n; g++) {
        base[g] = lr[g] = wk_optimizer_initial_lr(opt, g);
        if (!isfinite(base[g]) || base[g] < 0) {
            wk_set_error("%s: the optimizer's group %d has initial lr %g (must be finite and "
                         ">= 0)", who, g, base[g]);
            free(s), free(base), free(lr);
            return NULL;
        }
    }
    return s;
}

bool wki_sched_seekable(const wk_scheduler *s)
{
    return info(s)->lr_at && !(s->type == WK_SCHED_TYPE_QWARMUP && s->u.warmup.valid_end);
}

int wki_sched_seek(wk_scheduler *s, int64_t k)
{
    double one, *tmp = s->ngroups > 1 ? malloc((size_t)s->ngroups * sizeof *tmp) : &one;
    if (!tmp) {
        wk_set_error("%s: out of memory", info(s)->name);
        return -1;
    }
    int r = info(s)->lr_at(s, k, tmp);
    if (r == 0) {
        if (s->ngroups) memcpy(s->lr, tmp, (size_t)s->ngroups * sizeof *tmp);
        s->steps = k;
        if (info(s)->sync) info(s)->sync(s);
    }
    if (tmp != &one) free(tmp);
    return r;
}

/* lr(0) after construction or new base lrs: nested ones first */
static int reset_all(wk_scheduler *s)
{
    for (int i = 0; i < s->nchildren; i++)
        if (reset_all(s->children[i])) return -1;
    if (wki_sched_seekable(s)) return wki_sched_seek(s, 0);
    s->steps = 0;
    info(s)->reset(s);
    return 0;
}

static void apply_to_optimizer(wk_scheduler *s)
{
    if (s->owned || !s->opt) return;
    for (int g = 0; g < s->ngroups; g++) wk_optimizer_set_lr(s->opt, g, s->lr[g]);
}

wk_scheduler *wki_sched_finish(wk_scheduler *s)
{
    if (!s) return NULL;
    if (info(s)->check_groups && s->ngroups && info(s)->check_groups(s, s->ngroups)) {
        wk_scheduler_free(s);
        return NULL;
    }
    if (reset_all(s)) {
        wk_scheduler_free(s);
        return NULL;
    }
    apply_to_optimizer(s);
    return s;
}

static int check_groups_tree(const wk_scheduler *s, int n)
{
    if (info(s)->check_groups && info(s)->check_groups(s, n)) return -1;
    for (int i = 0; i < s->nchildren; i++)
        if (check_groups_tree(s->children[i], n)) return -1;
    return 0;
}

static int resize(wk_scheduler *s, int n)
{
    if (n == s->ngroups) return 0;
    double *b = realloc(s->base, (size_t)(n > 0 ? n : 1) * sizeof *b);
    if (!b) goto oom;
    s->base = b;
    double *l = realloc(s->lr, (size_t)(n > 0 ? n : 1) * sizeof *l);
    if (!l) goto oom;
    s->lr = l;
    s->ngroups = n;
    return 0;
oom:
    wk_set_error("%s: out of memory", info(s)->name);
    return -1;
}

int wki_sched_set_groups(wk_scheduler *s, const double *base, int n)
{
    if (resize(s, n)) return -1;
    memcpy(s->base, base, (size_t)n * sizeof *base);
    for (int i = 0; i < s->nchildren; i++)
        if (wki_sched_set_groups(s->children[i], base, n)) return -1;
    return 0;
}

static bool stepped(const wk_scheduler *s)
{
    if (s->steps) return true;
    for (int i = 0; i < s->nchildren; i++)
        if (stepped(s->children[i])) return true;
    return false;
}

int wk_scheduler_set_base_lrs(wk_scheduler *s, const double *lrs, int n)
{
    const char *fn = "scheduler_set_base_lrs";
    if (!can_change(fn, s)) return -1;
    if (n < 1 || !lrs) {
        wk_set_error("%s: %s: needs at least one base lr (got n = %d%s)", fn, info(s)->name, n,
                     lrs ? "" : ", lrs = NULL");
        return -1;
    }
    for (int g = 0; g < n; g++) {
        if (!isfinite(lrs[g]) || lrs[g] < 0) {
            wk_set_error("%s: %s: base lr of group %d is %g (must be finite and >= 0)", fn,
                         info(s)->name, g, lrs[g]);
            return -1;
        }
    }
    if (s->opt && n != s->ngroups) {
        wk_set_error("%s: %s: %d base lrs for an optimizer with %d groups", fn, info(s)->name,
                     n, s->ngroups);
        return -1;
    }
    if (stepped(s)) {
        wk_set_error("%s: %s: has already been stepped; set the base lrs before the first "
                     "step", fn, info(s)->name);
        return -1;
    }
    if (check_groups_tree(s, n) || wki_sched_set_groups(s, lrs, n) || reset_all(s)) return -1;
    apply_to_optimizer(s);
    return 0;
}

int wki_sched_step(wk_scheduler *s)
{
    return info(s)->step ? info(s)->step(s) : wki_sched_seek(s, s->steps + 1);
}

int wki_sched_step_metric(wk_scheduler *s, double metric)
{
    if (!info(s)->step_metric) {
        wk_set_error("%s: takes no metric; step it with wk_scheduler_step", info(s)->name);
        return -1;
    }
    return info(s)->step_metric(s, metric);
}

int wk_scheduler_step(wk_scheduler *s)
{
    if (!can_change("scheduler_step", s)) return -1;
    int r = wki_sched_step(s);
    if (r == 0) apply_to_optimizer(s);
    return r;
}

int wk_scheduler_step_metric(wk_scheduler *s, double metric)
{
    if (!can_change("scheduler_step_metric", s)) return -1;
    int r = wki_sched_step_metric(s, metric);
    if (r == 0) apply_to_optimizer(s);
    return r;
}

double wk_scheduler_get_lr(const wk_scheduler *s, int g)
{
    if (!not_null("scheduler_get_lr", s)) return NAN;
    if (g < 0 || g >= s->ngroups) {
        wk_set_error("scheduler_get_lr: %s: group %d is out of range (%d groups%s)",
                     info(s)->name, g, s->ngroups,
                     s->ngroups ? "" : "; give an optimizer or wk_scheduler_set_base_lrs");
        return NAN;
    }
    return s->lr[g];
}

int wk_scheduler_num_groups(const wk_scheduler *s) { return s ? s->ngroups : 0; }
int64_t wk_scheduler_steps(const wk_scheduler *s) { return s ? s->steps : 0; }
wk_sched_type wk_scheduler_type(const wk_scheduler *s)
{
    return s ? s->type : WK_SCHED_TYPE_COUNT;
}
const char *wk_scheduler_type_name(const wk_scheduler *s)
{
    return s ? info(s)->name : "(null)";
}

bool wk_scheduler_takes_metric(const wk_scheduler *s)
{
    return s && (s->type == WK_SCHED_TYPE_PLATEAU ||
                 (s->type == WK_SCHED_TYPE_QWARMUP && s->u.warmup.valid_end));
}

wk_sched_unit wk_scheduler_unit(const wk_scheduler *s)
{
    if (!s) return WK_SCHED_PER_STEP;
    return s->type == WK_SCHED_TYPE_PLATEAU ? WK_SCHED_PER_EVAL : s->unit;
}

static int set_unit_tree(wk_scheduler *s, wk_sched_unit unit)
{
    if (s->type == WK_SCHED_TYPE_PLATEAU || s->type == WK_SCHED_TYPE_QWARMUP) {
        wk_set_error("scheduler_set_unit: %s: its unit is fixed (%s)", info(s)->name,
                     s->type == WK_SCHED_TYPE_PLATEAU ? "after each evaluation, with a metric"
                                                      : "counts optimizer steps");
        return -1;
    }
    for (int i = 0; i < s->nchildren; i++)
        if (set_unit_tree(s->children[i], unit)) return -1;
    return 0;
}

static void set_unit_apply(wk_scheduler *s, wk_sched_unit unit)
{
    s->unit = unit;
    for (int i = 0; i < s->nchildren; i++) set_unit_apply(s->children[i], unit);
}

int wk_scheduler_set_unit(wk_scheduler *s, wk_sched_unit unit)
{
    if (!can_change("scheduler_set_unit", s)) return -1;
    if (unit != WK_SCHED_PER_STEP && unit != WK_SCHED_PER_EPOCH) {
        wk_set_error("scheduler_set_unit: %s: unit %d is not WK_SCHED_PER_STEP or "
                     "WK_SCHED_PER_EPOCH", info(s)->name, (int)unit);
        return -1;
    }
    if (set_unit_tree(s, unit)) return -1;
    set_unit_apply(s, unit);
    return 0;
}

static void free_tree(wk_scheduler *s)
{
    if (info(s)->free) info(s)->free(s);
    for (int i = 0; i < s->nchildren; i++) free_tree(s->children[i]);
    free(s->children);
    free(s->base);
    free(s->lr);
    free(s);
}

void wk_scheduler_free(wk_scheduler *s)
{
    if (s && !s->owned) free_tree(s); /* an owned one goes with its owner */
}

/* ---- state ---- */

cJSON *wki_json_double(double v)
{
    /* cJSON prints 15 digits whenever they come within an epsilon of v: 17 keep it exact */
    if (isfinite(v)) {
        char buf[40];
        snprintf(buf, sizeof buf, "%.17g", v);
        for (char *c = buf; *c; c++)
            if (*c == ',') *c = '.'; /* a decimal comma from the locale */
        return cJSON_CreateRaw(buf);
    }
    return cJSON_CreateString(isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

static bool json_to_double(const cJSON *it, double *v)
{
    if (cJSON_IsNumber(it)) {
        *v = it->valuedouble;
        return true;
    }
    if (!cJSON_IsString(it)) return false;
    const char *t = it->valuestring;
    if (!strcmp(t, "inf")) *v = INFINITY;
    else if (!strcmp(t, "-inf")) *v = -INFINITY;
    else if (!strcmp(t, "nan")) *v = NAN;
    else return false;
    return true;
}

bool wki_json_get_double(const cJSON *o, const char *key, double *v)
{
    return json_to_double(cJSON_GetObjectItemCaseSensitive(o, key), v);
}

bool wki_json_get_int(const cJSON *o, const char *key, int64_t *v)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(it)) return false;
    double d = it->valuedouble;
    if (!(d >= 0 && d <= 9007199254740992.0) || d != floor(d)) return false;
    *v = (int64_t)d;
    return true;
}

static cJSON *double_array(const double *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        cJSON *x = wki_json_double(v[i]);
        if (!x || !cJSON_AddItemToArray(a, x)) {
            cJSON_Delete(x);
            cJSON_Delete(a);
            return NULL;
        }
    }
    return a;
}

static bool add(cJSON *o, const char *key, cJSON *item)
{
    if (item && cJSON_AddItemToObject(o, key, item)) return true;
    cJSON_Delete(item);
    return false;
}

cJSON *wki_sched_state_json(const wk_scheduler *s)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = add(o, "type", cJSON_CreateString(info(s)->name)) &&
              add(o, "steps", cJSON_CreateNumber((double)s->steps)) &&
              add(o, "base_lrs", double_array(s->base, s->ngroups)) &&
              add(o, "lr", double_array(s->lr, s->ngroups)) &&
              (!info(s)->save || info(s)->save(s, o) == 0);
    if (ok && s->nchildren) {
        cJSON *a = cJSON_CreateArray();
        ok = add(o, "schedulers", a);
        for (int i = 0; ok && i < s->nchildren; i++) {
            cJSON *c = wki_sched_state_json(s->children[i]);
            ok = c && cJSON_AddItemToArray(a, c);
            if (!ok) cJSON_Delete(c);
        }
    }
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

char *wk_scheduler_state_save(const wk_scheduler *s)
{
    if (!not_null("scheduler_state_save", s)) return NULL;
    cJSON *o = wki_sched_state_json(s);
    char *str = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    if (!str) wk_set_error("scheduler_state_save: %s: out of memory", info(s)->name);
    return str;
}

/* base_lrs / lr: n numbers (lr: finite or not, base: finite and >= 0) */
static int get_lrs(const wk_scheduler *s, const cJSON *o, const char *key, int n, double *dst,
                   bool base)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n) {
        wk_set_error("scheduler_state_load: %s: \"%s\" must be a list of %d numbers",
                     info(s)->name, key, n);
        return -1;
    }
    int i = 0;
    for (const cJSON *it = a->child; it; it = it->next, i++) {
        double v;
        if (!json_to_double(it, &v) || (base && !(isfinite(v) && v >= 0))) {
            wk_set_error("scheduler_state_load: %s: \"%s\"[%d] is not a valid lr",
                         info(s)->name, key, i);
            return -1;
        }
        if (dst) dst[i] = v;
    }
    return 0;
}

int wki_sched_state_apply(wk_scheduler *s, const cJSON *o, bool apply)
{
    const char *fn = "scheduler_state_load", *name = info(s)->name;
    if (!cJSON_IsObject(o)) {
        wk_set_error("%s: %s: the state is not a JSON object", fn, name);
        return -1;
    }
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    if (!cJSON_IsString(t) || strcmp(t->valuestring, name)) {
        wk_set_error("%s: the state is of a %s, not of a %s", fn,
                     cJSON_IsString(t) ? t->valuestring : "(no \"type\")", name);
        return -1;
    }
    int64_t steps;
    if (!wki_json_get_int(o, "steps", &steps)) {
        wk_set_error("%s: %s: \"steps\" must be an integer >= 0", fn, name);
        return -1;
    }
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "base_lrs");
    int n = cJSON_IsArray(b) ? cJSON_GetArraySize(b) : -1;
    if (n < 0 || (n != s->ngroups && (s->opt || s->ngroups))) {
        wk_set_error("%s: %s: \"base_lrs\" has %d groups, the scheduler %d", fn, name, n,
                     s->ngroups);
        return -1;
    }
    if (!apply) {
        if (get_lrs(s, o, "base_lrs", n, NULL, true) || get_lrs(s, o, "lr", n, NULL, false))
            return -1;
        if (info(s)->check_groups && n && info(s)->check_groups(s, n)) return -1;
    } else {
        if (resize(s, n)) return -1;
        get_lrs(s, o, "base_lrs", n, s->base, true);
        get_lrs(s, o, "lr", n, s->lr, false);
        s->steps = steps;
    }
    if (info(s)->load && info(s)->load(s, o, apply)) return -1;
    if (s->nchildren) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, "schedulers");
        if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != s->nchildren) {
            wk_set_error("%s: %s: \"schedulers\" must hold the states of its %d schedulers",
                         fn, name, s->nchildren);
            return -1;
        }
        int i = 0;
        for (const cJSON *c = a->child; c; c = c->next, i++)
            if (wki_sched_state_apply(s->children[i], c, apply)) return -1;
    }
    return 0;
}

int wk_scheduler_state_load(wk_scheduler *s, const char *json)
{
    const char *fn = "scheduler_state_load";
    if (!can_change(fn, s)) return -1;
    cJSON *o = json ? cJSON_Parse(json) : NULL;
    if (!o) {
        wk_set_error("%s: %s: the state is not valid JSON", fn, info(s)->name);
        return -1;
    }
    int r = wki_sched_state_apply(s, o, false);
    if (r == 0) r = wki_sched_state_apply(s, o, true);
    cJSON_Delete(o);
    if (r == 0) apply_to_optimizer(s);
    return r;
}

/* ---- constructors of the closed-form schedules ---- */

static bool check_gamma(const char *who, double gamma)
{
    if (isfinite(gamma) && gamma >= 0) return true;
    wk_set_error("%s: gamma must be finite and >= 0, got %g", who, gamma);
    return false;
}

static bool check_factor(const char *who, const char *key, double f)
{
    if (f >= 0 && f <= 1) return true;
    wk_set_error("%s: %s must be in [0, 1], got %g", who, key, f);
    return false;
}

static bool check_min(const char *who, const char *key, int64_t v, int64_t min)
{
    if (v >= min) return true;
    wk_set_error("%s: %s must be >= %lld, got %lld", who, key, (long long)min, (long long)v);
    return false;
}

wk_scheduler *wk_step_lr_new(wk_optimizer *opt, int64_t step_size, double gamma)
{
    const char *who = "StepLR";
    if (!check_min(who, "step_size", step_size, 1) || !check_gamma(who, gamma)) return NULL;
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_STEP, opt);
    if (!s) return NULL;
    s->u.step.step_size = step_size, s->u.step.gamma = gamma;
    return wki_sched_finish(s);
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

wk_scheduler *wk_multistep_lr_new(wk_optimizer *opt, const int64_t *milestones, int n,
                                  double gamma)
{
    const char *who = "MultiStepLR";
    if (n < 0 || (n > 0 && !milestones)) {
        wk_set_error("%s: milestones: %s (n = %d)", who,
                     n < 0 ? "n must be >= 0" : "the list is NULL", n);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (milestones[i] < 0) {
            wk_set_error("%s: milestones[%d] is %lld (must be >= 0)", who, i,
                         (long long)milestones[i]);
            return NULL;
        }
    }
    if (!check_gamma(who, gamma)) return NULL;
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_MULTISTEP, opt);
    if (!s) return NULL;
    s->u.multistep.milestones = malloc((size_t)(n > 0 ? n : 1) * sizeof(int64_t));
    if (!s->u.multistep.milestones) {
        wk_set_error("%s: out of memory", who);
        wk_scheduler_free(s);
        return NULL;
    }
    if (n) memcpy(s->u.multistep.milestones, milestones, (size_t)n * sizeof(int64_t));
    qsort(s->u.multistep.milestones, (size_t)n, sizeof(int64_t), cmp_i64);
    s->u.multistep.n = n, s->u.multistep.gamma = gamma;
    return wki_sched_finish(s);
}

wk_scheduler *wk_exponential_lr_new(wk_optimizer *opt, double gamma)
{
    const char *who = "ExponentialLR";
    if (!check_gamma(who, gamma)) return NULL;
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_EXPONENTIAL, opt);
    if (!s) return NULL;
    s->u.exp.gamma = gamma;
    return wki_sched_finish(s);
}

wk_scheduler *wk_cosine_lr_new(wk_optimizer *opt, int64_t T_max, double eta_min)
{
    const char *who = "CosineAnnealingLR";
    if (!check_min(who, "T_max", T_max, 1)) return NULL;
    if (!isfinite(eta_min) || eta_min < 0) {
        wk_set_error("%s: eta_min must be finite and >= 0, got %g", who, eta_min);
        return NULL;
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_COSINE, opt);
    if (!s) return NULL;
    s->u.cosine.T_max = T_max, s->u.cosine.eta_min = eta_min;
    return wki_sched_finish(s);
}

wk_scheduler *wk_linear_lr_new(wk_optimizer *opt, double start_factor, double end_factor,
                               int64_t total_iters)
{
    const char *who = "LinearLR";
    if (!check_factor(who, "start_factor", start_factor) ||
        !check_factor(who, "end_factor", end_factor) ||
        !check_min(who, "total_iters", total_iters, 1))
        return NULL;
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_LINEAR, opt);
    if (!s) return NULL;
    s->u.linear.start = start_factor, s->u.linear.end = end_factor;
    s->u.linear.total = total_iters;
    return wki_sched_finish(s);
}

wk_scheduler *wk_constant_lr_new(wk_optimizer *opt, double factor, int64_t total_iters)
{
    const char *who = "ConstantLR";
    if (!check_factor(who, "factor", factor) || !check_min(who, "total_iters", total_iters, 0))
        return NULL;
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_CONSTANT, opt);
    if (!s) return NULL;
    s->u.constant.factor = factor, s->u.constant.total = total_iters;
    return wki_sched_finish(s);
}

wk_scheduler *wk_polynomial_lr_new(wk_optimizer *opt, int64_t total_iters, double power)
{
    const char *who = "PolynomialLR";
    if (!check_min(who, "total_iters", total_iters, 1)) return NULL;
    if (!isfinite(power) || power < 0) {
        wk_set_error("%s: power must be finite and >= 0, got %g", who, power);
        return NULL;
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_POLYNOMIAL, opt);
    if (!s) return NULL;
    s->u.poly.total = total_iters, s->u.poly.power = power;
    return wki_sched_finish(s);
}

wk_onecycle_opts wk_onecycle_opts_default(void)
{
    return (wk_onecycle_opts){.pct_start = 0.3, .anneal_strategy = "cos", .div_factor = 25.0,
                              .final_div_factor = 1e4};
}

wk_scheduler *wk_onecycle_lr_new(wk_optimizer *opt, const wk_onecycle_opts *o)
{
    const char *who = "OneCycleLR";
    if (!o) {
        wk_set_error("%s: options are NULL (start from wk_onecycle_opts_default())", who);
        return NULL;
    }
    int64_t total = o->total_steps;
    if (total == 0) {
        if (o->epochs <= 0 || o->steps_per_epoch <= 0) {
            wk_set_error("%s: total_steps, or epochs and steps_per_epoch, must be >= 1 (got "
                         "total_steps %lld, epochs %lld, steps_per_epoch %lld)", who,
                         (long long)o->total_steps, (long long)o->epochs,
                         (long long)o->steps_per_epoch);
            return NULL;
        }
        if (o->epochs > INT64_MAX / o->steps_per_epoch) {
            wk_set_error("%s: epochs * steps_per_epoch overflows", who);
            return NULL;
        }
        total = o->epochs * o->steps_per_epoch;
    } else if (!check_min(who, "total_steps", total, 1)) {
        return NULL;
    }
    if (!(o->pct_start >= 0 && o->pct_start <= 1)) {
        wk_set_error("%s: pct_start must be in [0, 1], got %g", who, o->pct_start);
        return NULL;
    }
    const char *an = o->anneal_strategy ? o->anneal_strategy : "cos";
    if (strcmp(an, "cos") && strcmp(an, "linear")) {
        wk_set_error("%s: anneal_strategy: unknown value \"%s\" (expected \"cos\" or "
                     "\"linear\")", who, an);
        return NULL;
    }
    if (!(isfinite(o->div_factor) && o->div_factor > 0) ||
        !(isfinite(o->final_div_factor) && o->final_div_factor > 0)) {
        wk_set_error("%s: div_factor and final_div_factor must be finite and > 0, got %g and "
                     "%g", who, o->div_factor, o->final_div_factor);
        return NULL;
    }
    if (o->max_lrs ? o->n_max_lrs < 1 : !(isfinite(o->max_lr) && o->max_lr > 0)) {
        wk_set_error("%s: max_lr must be > 0 (or max_lrs hold one value per group), got %g",
                     who, o->max_lr);
        return NULL;
    }
    for (int g = 0; o->max_lrs && g < o->n_max_lrs; g++) {
        if (!(isfinite(o->max_lrs[g]) && o->max_lrs[g] > 0)) {
            wk_set_error("%s: max_lr[%d] must be finite and > 0, got %g", who, g,
                         o->max_lrs[g]);
            return NULL;
        }
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_ONECYCLE, opt);
    if (!s) return NULL;
    __typeof__(s->u.onecycle) *c = &s->u.onecycle;
    c->max_lr = o->max_lr, c->total_steps = total, c->pct_start = o->pct_start;
    c->div_factor = o->div_factor, c->final_div_factor = o->final_div_factor;
    c->linear = !strcmp(an, "linear"), c->three_phase = o->three_phase;
    if (o->max_lrs) {
        c->max_lrs = malloc((size_t)o->n_max_lrs * sizeof(double));
        if (!c->max_lrs) {
            wk_set_error("%s: out of memory", who);
            wk_scheduler_free(s);
            return NULL;
        }
        memcpy(c->max_lrs, o->max_lrs, (size_t)o->n_max_lrs * sizeof(double));
        c->n_max_lrs = o->n_max_lrs;
    }
    return wki_sched_finish(s);
}

wk_scheduler *wk_cosine_restarts_lr_new(wk_optimizer *opt, int64_t T_0, int64_t T_mult,
                                        double eta_min)
{
    const char *who = "CosineAnnealingWarmRestarts";
    if (!check_min(who, "T_0", T_0, 1) || !check_min(who, "T_mult", T_mult, 1)) return NULL;
    if (!isfinite(eta_min) || eta_min < 0) {
        wk_set_error("%s: eta_min must be finite and >= 0, got %g", who, eta_min);
        return NULL;
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_COSINE_RESTARTS, opt);
    if (!s) return NULL;
    s->u.restarts.T_0 = T_0, s->u.restarts.T_mult = T_mult, s->u.restarts.eta_min = eta_min;
    return wki_sched_finish(s);
}

wk_scheduler *wk_lambda_lr_new(wk_optimizer *opt, wk_lr_lambda fn, void *user)
{
    const char *who = "LambdaLR";
    if (!fn) {
        wk_set_error("%s: lr_lambda is NULL", who);
        return NULL;
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_LAMBDA, opt);
    if (!s) return NULL;
    s->u.lambda.fn = fn, s->u.lambda.user = user;
    return wki_sched_finish(s);
}

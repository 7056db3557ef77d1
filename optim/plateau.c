/* ReduceLROnPlateau: torch 1.13's algorithm on the scheduler's own lrs. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor-impl.h"
#include "scheduler-impl.h"

#define P(s) (&(s)->u.plateau)

wk_plateau_opts wk_plateau_opts_default(void)
{
    return (wk_plateau_opts){.mode = "min", .factor = 0.1, .patience = 10, .threshold = 1e-4,
                             .threshold_mode = "rel", .eps = 1e-8};
}

static double worst(const wk_scheduler *s) { return P(s)->max_mode ? -INFINITY : INFINITY; }

/* torch's is_better, same operations */
static bool is_better(const wk_scheduler *s, double a, double best)
{
    double th = P(s)->threshold;
    if (!P(s)->max_mode) return P(s)->abs_mode ? a < best - th : a < best * (1. - th);
    return P(s)->abs_mode ? a > best + th : a > best * (th + 1.);
}

static double min_lr(const wk_scheduler *s, int g)
{
    return P(s)->min_lrs ? P(s)->min_lrs[g] : P(s)->min_lr;
}

int wki_plateau_step(wk_scheduler *s)
{
    (void)s;
    wk_set_error("ReduceLROnPlateau: needs a metric; step it with wk_scheduler_step_metric "
                 "after each evaluation");
    return -1;
}

int wki_plateau_step_metric(wk_scheduler *s, double m)
{
    s->steps++;
    if (is_better(s, m, P(s)->best)) {
        P(s)->best = m;
        P(s)->num_bad = 0;
    } else {
        P(s)->num_bad++;
    }
    if (P(s)->cooldown_counter > 0) {
        P(s)->cooldown_counter--;
        P(s)->num_bad = 0; /* bad evaluations in the cooldown do not count */
    }
    if (P(s)->num_bad > P(s)->patience) {
        for (int g = 0; g < s->ngroups; g++) {
            double old = s->lr[g], lo = min_lr(s, g), nw = old * P(s)->factor;
            if (nw < lo) nw = lo; /* max(old * factor, min_lr) */
            if (old - nw > P(s)->eps) s->lr[g] = nw;
        }
        P(s)->cooldown_counter = P(s)->cooldown;
        P(s)->num_bad = 0;
    }
    return 0;
}

int wki_plateau_check_groups(const wk_scheduler *s, int n)
{
    if (P(s)->min_lrs && P(s)->n_min_lrs != n) {
        wk_set_error("ReduceLROnPlateau: min_lr has %d values but there are %d parameter "
                     "groups", P(s)->n_min_lrs, n);
        return -1;
    }
    return 0;
}

void wki_plateau_reset(wk_scheduler *s)
{
    if (s->ngroups) memcpy(s->lr, s->base, (size_t)s->ngroups * sizeof *s->lr);
    P(s)->best = worst(s);
    P(s)->num_bad = P(s)->cooldown_counter = 0;
}

int wki_plateau_save(const wk_scheduler *s, cJSON *o)
{
    cJSON *b = wki_json_double(P(s)->best);
    if (!b || !cJSON_AddItemToObject(o, "best", b)) {
        cJSON_Delete(b);
        return -1;
    }
    if (!cJSON_AddNumberToObject(o, "num_bad_epochs", (double)P(s)->num_bad) ||
        !cJSON_AddNumberToObject(o, "cooldown_counter", (double)P(s)->cooldown_counter))
        return -1;
    return 0;
}

int wki_plateau_load(wk_scheduler *s, const cJSON *o, bool apply)
{
    double best;
    int64_t bad, cool;
    if (!wki_json_get_double(o, "best", &best) || isnan(best)) {
        wk_set_error("scheduler_state_load: ReduceLROnPlateau: \"best\" must be a number");
        return -1;
    }
    if (!wki_json_get_int(o, "num_bad_epochs", &bad) ||
        !wki_json_get_int(o, "cooldown_counter", &cool)) {
        wk_set_error("scheduler_state_load: ReduceLROnPlateau: \"num_bad_epochs\" and "
                     "\"cooldown_counter\" must be integers >= 0");
        return -1;
    }
    if (apply) P(s)->best = best, P(s)->num_bad = bad, P(s)->cooldown_counter = cool;
    return 0;
}

void wki_plateau_free(wk_scheduler *s) { free(P(s)->min_lrs); }

static bool mode_is(const char *who, const char *key, const char *v, const char *a,
                    const char *b, bool *is_b)
{
    if (!v || !strcmp(v, a)) {
        *is_b = false;
        return true;
    }
    if (!strcmp(v, b)) {
        *is_b = true;
        return true;
    }
    wk_set_error("%s: %s: unknown value \"%s\" (expected \"%s\" or \"%s\")", who, key, v, a, b);
    return false;
}

wk_scheduler *wk_plateau_new(wk_optimizer *opt, const wk_plateau_opts *o)
{
    const char *who = "ReduceLROnPlateau";
    if (!o) {
        wk_set_error("%s: options are NULL (start from wk_plateau_opts_default())", who);
        return NULL;
    }
    bool max_mode, abs_mode;
    if (!mode_is(who, "mode", o->mode, "min", "max", &max_mode) ||
        !mode_is(who, "threshold_mode", o->threshold_mode, "rel", "abs", &abs_mode))
        return NULL;
    if (!(o->factor >= 0 && o->factor < 1)) {
        wk_set_error("%s: factor must be in [0, 1), got %g", who, o->factor);
        return NULL;
    }
    if (o->patience < 0 || o->cooldown < 0) {
        wk_set_error("%s: %s must be >= 0, got %lld", who,
                     o->patience < 0 ? "patience" : "cooldown",
                     (long long)(o->patience < 0 ? o->patience : o->cooldown));
        return NULL;
    }
    if (!(isfinite(o->threshold) && o->threshold >= 0) || !(isfinite(o->eps) && o->eps >= 0)) {
        wk_set_error("%s: %s must be finite and >= 0, got %g", who,
                     !(isfinite(o->threshold) && o->threshold >= 0) ? "threshold" : "eps",
                     !(isfinite(o->threshold) && o->threshold >= 0) ? o->threshold : o->eps);
        return NULL;
    }
    if (o->min_lrs && o->n_min_lrs < 1) {
        wk_set_error("%s: min_lr: a list needs one value per group, got %d", who, o->n_min_lrs);
        return NULL;
    }
    if (!(isfinite(o->min_lr) && o->min_lr >= 0)) {
        wk_set_error("%s: min_lr must be finite and >= 0, got %g", who, o->min_lr);
        return NULL;
    }
    for (int g = 0; o->min_lrs && g < o->n_min_lrs; g++) {
        if (!(isfinite(o->min_lrs[g]) && o->min_lrs[g] >= 0)) {
            wk_set_error("%s: min_lr[%d] must be finite and >= 0, got %g", who, g,
                         o->min_lrs[g]);
            return NULL;
        }
    }
    wk_scheduler *s = wki_sched_alloc(who, WK_SCHED_TYPE_PLATEAU, opt);
    if (!s) return NULL;
    s->unit = WK_SCHED_PER_EVAL;
    P(s)->max_mode = max_mode, P(s)->abs_mode = abs_mode;
    P(s)->factor = o->factor, P(s)->threshold = o->threshold, P(s)->eps = o->eps;
    P(s)->patience = o->patience, P(s)->cooldown = o->cooldown, P(s)->min_lr = o->min_lr;
    if (o->min_lrs) {
        P(s)->min_lrs = malloc((size_t)o->n_min_lrs * sizeof(double));
        if (!P(s)->min_lrs) {
            wk_set_error("%s: out of memory", who);
            wk_scheduler_free(s);
            return NULL;
        }
        memcpy(P(s)->min_lrs, o->min_lrs, (size_t)o->n_min_lrs * sizeof(double));
        P(s)->n_min_lrs = o->n_min_lrs;
    }
    return wki_sched_finish(s);
}

/* Schedulers made of schedulers: qWarmupScheduler (linear warmup, then a main scheduler),
 * SequentialLR (one after the other at milestones) and ChainedScheduler (all at once). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor-impl.h"
#include "scheduler-impl.h"

static void free_unowned(wk_scheduler **scheds, int n)
{
    for (int i = 0; i < n; i++) {
        if (!scheds[i] || scheds[i]->owned) continue;
        for (int j = i + 1; j < n; j++)
            if (scheds[j] == scheds[i]) scheds[j] = NULL; /* listed twice: free once */
        wk_scheduler_free(scheds[i]);
    }
}

/* Checks shared by SequentialLR and ChainedScheduler; frees the schedulers on failure. */
static bool check_members(const char *who, wk_scheduler **scheds, int n)
{
    if (!scheds || n < 1) {
        wk_set_error("%s: schedulers: needs at least one scheduler (got %d)", who, n);
        if (scheds && n > 0) free_unowned(scheds, n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        if (!scheds[i]) {
            if (!wk_last_error()[0]) wk_set_error("%s: schedulers[%d] is NULL", who, i);
            goto fail;
        }
    }
    for (int i = 0; i < n; i++) {
        const wk_scheduler *c = scheds[i], *c0 = scheds[0];
        const char *cn = wk_scheduler_type_name(c);
        for (int j = 0; j < i; j++) {
            if (scheds[j] == c) {
                wk_set_error("%s: schedulers[%d] and schedulers[%d] are the same scheduler",
                             who, j, i);
                goto fail;
            }
        }
        if (c->owned) {
            wk_set_error("%s: schedulers[%d] (%s) already belongs to another scheduler", who, i,
                         cn);
            goto fail;
        }
        if (!wki_sched_seekable(c)) {
            wk_set_error("%s: schedulers[%d] is a %s, which steps on a validation metric; "
                         "it cannot be part of a %s", who, i, cn, who);
            goto fail;
        }
        if (c->opt != c0->opt || c->ngroups != c0->ngroups) {
            wk_set_error("%s: schedulers[%d] (%s) has %s than schedulers[0]", who, i, cn,
                         c->opt != c0->opt ? "another optimizer" : "another group count");
            goto fail;
        }
        if (c->unit != c0->unit) {
            wk_set_error("%s: schedulers[%d] (%s) steps per %s, schedulers[0] per %s", who, i,
                         cn, c->unit == WK_SCHED_PER_EPOCH ? "epoch" : "step",
                         c0->unit == WK_SCHED_PER_EPOCH ? "epoch" : "step");
            goto fail;
        }
    }
    return true;
fail:
    free_unowned(scheds, n);
    return false;
}

/* A container of the given type owning scheds (already checked), base lrs of scheds[0]. */
static wk_scheduler *make_container(const char *who, wk_sched_type type, wk_scheduler **scheds,
                                    int n)
{
    wk_scheduler *s = wki_sched_alloc(who, type, scheds[0]->opt);
    wk_scheduler **ch = malloc((size_t)n * sizeof *ch);
    int ng = scheds[0]->ngroups;
    double *base = malloc((size_t)(ng > 0 ? ng : 1) * sizeof *base);
    if (!s || !ch || !base) {
        if (s) wk_set_error("%s: out of memory", who);
        free(ch), free(base), wk_scheduler_free(s);
        free_unowned(scheds, n);
        return NULL;
    }
    memcpy(ch, scheds, (size_t)n * sizeof *ch);
    for (int i = 0; i < n; i++) ch[i]->owned = true;
    s->children = ch, s->nchildren = n, s->unit = scheds[0]->unit;
    if (ng) memcpy(base, scheds[0]->base, (size_t)ng * sizeof *base);
    int r = wki_sched_set_groups(s, base, ng);
    free(base);
    if (r) {
        wk_scheduler_free(s);
        return NULL;
    }
    return s;
}

/* ---- SequentialLR ---- */

static int seq_index(const wk_scheduler *s, int64_t k, int64_t *local)
{
    int i = 0;
    while (i < s->nchildren - 1 && s->u.seq.milestones[i] <= k) i++; /* bisect_right */
    *local = i ? k - s->u.seq.milestones[i - 1] : k;
    return i;
}

int wki_seq_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    int64_t kk;
    int i = seq_index(s, k, &kk);
    const wk_scheduler *c = s->children[i];
    return wki_sched_table[c->type].lr_at(c, kk, out);
}

void wki_seq_sync(wk_scheduler *s)
{
    int64_t kk;
    int i = seq_index(s, s->steps, &kk);
    wki_sched_seek(s->children[i], kk);
}

void wki_seq_free(wk_scheduler *s) { free(s->u.seq.milestones); }

wk_scheduler *wk_sequential_lr_new(wk_scheduler **scheds, int n, const int64_t *milestones,
                                   int n_milestones)
{
    const char *who = "SequentialLR";
    if (!check_members(who, scheds, n)) return NULL;
    const char *bad = NULL;
    if (n_milestones != n - 1 || (n > 1 && !milestones))
        bad = "needs one milestone fewer than schedulers";
    for (int i = 0; !bad && i < n - 1; i++)
        if (milestones[i] < 1 || (i && milestones[i] <= milestones[i - 1]))
            bad = "must be >= 1 and strictly increasing";
    if (bad) {
        wk_set_error("%s: milestones %s (%d schedulers, %d milestones)", who, bad, n,
                     n_milestones);
        free_unowned(scheds, n);
        return NULL;
    }
    int64_t *ms = malloc((size_t)(n > 1 ? n - 1 : 1) * sizeof *ms);
    if (!ms) {
        wk_set_error("%s: out of memory", who);
        free_unowned(scheds, n);
        return NULL;
    }
    if (n > 1) memcpy(ms, milestones, (size_t)(n - 1) * sizeof *ms);
    wk_scheduler *s = make_container(who, WK_SCHED_TYPE_SEQUENTIAL, scheds, n);
    if (!s) {
        free(ms);
        return NULL;
    }
    s->u.seq.milestones = ms;
    return wki_sched_finish(s);
}

/* ---- ChainedScheduler ---- */

int wki_chained_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    double one, *tmp = s->ngroups > 1 ? malloc((size_t)s->ngroups * sizeof *tmp) : &one;
    if (!tmp) {
        wk_set_error("ChainedScheduler: out of memory");
        return -1;
    }
    int r = 0;
    for (int i = 0; r == 0 && i < s->nchildren; i++) {
        const wk_scheduler *c = s->children[i];
        r = wki_sched_table[c->type].lr_at(c, k, i ? tmp : out);
        for (int g = 0; r == 0 && i && g < s->ngroups; g++)
            out[g] = s->base[g] == 0 ? 0 : out[g] * (tmp[g] / s->base[g]);
    }
    if (tmp != &one) free(tmp);
    return r;
}

void wki_chained_sync(wk_scheduler *s)
{
    for (int i = 0; i < s->nchildren; i++) wki_sched_seek(s->children[i], s->steps);
}

wk_scheduler *wk_chained_lr_new(wk_scheduler **scheds, int n)
{
    const char *who = "ChainedScheduler";
    if (!check_members(who, scheds, n)) return NULL;
    for (int i = 0; i < n; i++) {
        if (scheds[i]->type == WK_SCHED_TYPE_ONECYCLE) {
            wk_set_error("%s: schedulers[%d] is a OneCycleLR, which is not chainable (its lrs "
                         "do not derive from the base lrs)", who, i);
            free_unowned(scheds, n);
            return NULL;
        }
    }
    return wki_sched_finish(make_container(who, WK_SCHED_TYPE_CHAINED, scheds, n));
}

/* ---- qWarmupScheduler ---- */

wk_qwarmup_opts wk_qwarmup_opts_default(void)
{
    return (wk_qwarmup_opts){.warmup_factor = 0.1, .step_on = "optimizer_step"};
}

#define W(s) ((s)->u.warmup.W)

static double warm(const wk_scheduler *s, int64_t k, int g)
{
    double f = s->u.warmup.f;
    return s->base[g] * (f + (1 - f) * (double)k / (double)W(s));
}

int wki_warmup_lr_at(const wk_scheduler *s, int64_t k, double *out)
{
    if (s->u.warmup.valid_end) { /* not a function of k alone (wki_sched_seekable) */
        wk_set_error("qWarmupScheduler: with step_on \"valid_end\" its lr depends on metrics");
        return -1;
    }
    if (k < W(s)) {
        for (int g = 0; g < s->ngroups; g++) out[g] = warm(s, k, g);
        return 0;
    }
    const wk_scheduler *m = s->children[0];
    return wki_sched_table[m->type].lr_at(m, k - W(s), out);
}

void wki_warmup_sync(wk_scheduler *s)
{
    wki_sched_seek(s->children[0], s->steps > W(s) ? s->steps - W(s) : 0);
}

/* the lr in force with the main scheduler stepped separately (step_on valid_end) */
static void warmup_take_lr(wk_scheduler *s)
{
    for (int g = 0; g < s->ngroups; g++)
        s->lr[g] = s->steps < W(s) ? warm(s, s->steps, g) : s->children[0]->lr[g];
}

int wki_warmup_step(wk_scheduler *s)
{
    if (!s->u.warmup.valid_end) return wki_sched_seek(s, s->steps + 1);
    s->steps++;
    warmup_take_lr(s);
    return 0;
}

int wki_warmup_step_metric(wk_scheduler *s, double m)
{
    if (!s->u.warmup.valid_end) {
        wk_set_error("qWarmupScheduler: step_on is \"optimizer_step\": it takes no metric; "
                     "step it with wk_scheduler_step after each optimizer update");
        return -1;
    }
    if (s->steps < W(s)) return 0; /* evaluations during the warmup do not reach main */
    wk_scheduler *main = s->children[0];
    int r = wk_scheduler_takes_metric(main) ? wki_sched_step_metric(main, m)
                                            : wki_sched_step(main);
    if (r == 0) warmup_take_lr(s);
    return r;
}

void wki_warmup_reset(wk_scheduler *s) { warmup_take_lr(s); }

wk_scheduler *wk_qwarmup_new(wk_scheduler *main, const wk_qwarmup_opts *o)
{
    const char *who = "qWarmupScheduler";
    if (!main) {
        if (!wk_last_error()[0]) wk_set_error("%s: main is NULL", who);
        return NULL;
    }
    if (main->owned) {
        wk_set_error("%s: main (%s) already belongs to another scheduler", who,
                     wk_scheduler_type_name(main));
        return NULL;
    }
    const char *err = NULL;
    char msg[256];
    int64_t W = 0;
    bool valid_end = false;
    const char *mn = wk_scheduler_type_name(main);
    if (!o) {
        err = "options are NULL (start from wk_qwarmup_opts_default())";
    } else if (o->step_on && strcmp(o->step_on, "optimizer_step") &&
               strcmp(o->step_on, "valid_end")) {
        snprintf(msg, sizeof msg, "step_on: unknown value \"%s\" (expected \"optimizer_step\" "
                 "or \"valid_end\")", o->step_on);
        err = msg;
    } else if (o->warmup_steps < -1 || o->warmup_epochs < -1) {
        snprintf(msg, sizeof msg, "%s must be >= 0 (or -1: no warmup), got %lld",
                 o->warmup_steps < -1 ? "warmup_steps" : "warmup_epochs",
                 (long long)(o->warmup_steps < -1 ? o->warmup_steps : o->warmup_epochs));
        err = msg;
    } else if (o->warmup_steps > 0 && o->warmup_epochs > 0) {
        err = "give warmup_steps or warmup_epochs, not both";
    } else if (o->warmup_epochs > 0 && o->steps_per_epoch < 1) {
        snprintf(msg, sizeof msg, "steps_per_epoch must be >= 1 to convert warmup_epochs, got "
                 "%lld", (long long)o->steps_per_epoch);
        err = msg;
    } else if (o->warmup_epochs > 0 && o->warmup_epochs > INT64_MAX / o->steps_per_epoch) {
        err = "warmup_epochs * steps_per_epoch overflows";
    } else if (!(o->warmup_factor >= 0 && o->warmup_factor <= 1)) {
        snprintf(msg, sizeof msg, "warmup_factor must be in [0, 1], got %g", o->warmup_factor);
        err = msg;
    } else {
        valid_end = o->step_on && !strcmp(o->step_on, "valid_end");
        W = o->warmup_epochs > 0 ? o->warmup_epochs * o->steps_per_epoch
                                 : (o->warmup_steps > 0 ? o->warmup_steps : 0);
        if (!valid_end && wk_scheduler_takes_metric(main)) {
            snprintf(msg, sizeof msg, "step_on: the main scheduler (%s) steps on a validation "
                     "metric; use step_on \"valid_end\"", mn);
            err = msg;
        } else if (!valid_end && main->unit == WK_SCHED_PER_EPOCH) {
            snprintf(msg, sizeof msg, "main: %s steps per epoch, but step_on "
                     "\"optimizer_step\" steps it after every optimizer update (make it "
                     "per-step, or use step_on \"valid_end\")", mn);
            err = msg;
        }
    }
    if (err) {
        wk_set_error("%s: %s", who, err);
        wk_scheduler_free(main);
        return NULL;
    }
    wk_scheduler **arg = &main;
    wk_scheduler *s = make_container(who, WK_SCHED_TYPE_QWARMUP, arg, 1);
    if (!s) return NULL;
    s->unit = WK_SCHED_PER_STEP;
    s->u.warmup.W = W, s->u.warmup.f = o->warmup_factor, s->u.warmup.valid_end = valid_end;
    return wki_sched_finish(s);
}

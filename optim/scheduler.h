/* wick LR schedulers: torch.optim.lr_scheduler's schedules and the qWarmupScheduler.
 *
 *   wk_qwarmup_opts w = wk_qwarmup_opts_default();      // warmup_factor 0.1
 *   w.warmup_steps = 100;
 *   wk_scheduler *s = wk_qwarmup_new(wk_cosine_lr_new(opt, 1000, 1e-5), &w);
 *   for (...) { ... wk_optimizer_step(opt); wk_scheduler_step(s); }   // once per update
 *   char *state = wk_scheduler_state_save(s);    // JSON; free() it
 *   ... wk_scheduler_state_load(fresh, state);    // continues with the same lrs
 *   wk_scheduler_free(s);                          // frees the wrapped cosine too
 *
 * Counting. A scheduler that has taken k steps holds lr(k) (torch's get_last_lr after
 * k calls of step()); lr(0) is set at construction. Stepped after every optimizer
 * update, lr(k) is the learning rate of update k + 1, i.e. the one in force while the
 * Runner's global_step is k. With an optimizer the outermost scheduler writes lr(k)
 * into every group (wk_optimizer_set_lr) at construction and after each step; with
 * opt = NULL it works standalone on the base lrs given by wk_scheduler_set_base_lrs.
 * Base lrs are the groups' initial lrs (wk_optimizer_initial_lr, torch's initial_lr).
 *
 * Forms. Every schedule is computed in closed form from the step count (torch's
 * _get_closed_form_lr where torch has one), so a restored scheduler continues
 * bit for bit. torch's step() uses recursive forms (lr <- lr * ratio) instead; they
 * agree to ~1e-14 relative except: ConstantLR with total_iters = 0 (torch's recursive
 * form keeps base*factor forever, the closed form and wick give base from step 0);
 * CosineAnnealingLR when something else also changes the lr (the recursive form
 * follows it, wick does not); ChainedScheduler (see wk_chained_lr_new).
 *
 * Units. wk_scheduler_unit says when to step: WK_SCHED_PER_STEP (default of every
 * schedule: after each optimizer update), WK_SCHED_PER_EPOCH (after each epoch; set it
 * with wk_scheduler_set_unit) or WK_SCHED_PER_EVAL (ReduceLROnPlateau: after each
 * evaluation, with wk_scheduler_step_metric). A qWarmupScheduler with step_on
 * "valid_end" is both: wk_scheduler_step after each update (it counts the warmup) and
 * wk_scheduler_step_metric after each evaluation (wk_scheduler_takes_metric is true).
 *
 * Errors: constructors return NULL and functions -1 (NaN for lrs) with wk_last_error()
 * naming the scheduler and the offending option by its config key ("StepLR: step_size
 * must be >= 1, got 0"). Constructors that wrap schedulers take ownership of them, also
 * when they fail (except ones that already belong to another scheduler); a NULL scheduler
 * passed in keeps the first error. A scheduler inside another moves only with the outer
 * one: stepping, loading or freeing it directly is refused (free: does nothing).
 */
#ifndef WK_OPTIM_SCHEDULER_H
#define WK_OPTIM_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "optimizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_scheduler wk_scheduler;

/* Scheduler types; wk_scheduler_type_name gives the config name ("StepLR", ...). */
typedef enum {
    WK_SCHED_TYPE_STEP,            /* StepLR */
    WK_SCHED_TYPE_MULTISTEP,       /* MultiStepLR */
    WK_SCHED_TYPE_EXPONENTIAL,     /* ExponentialLR */
    WK_SCHED_TYPE_COSINE,          /* CosineAnnealingLR */
    WK_SCHED_TYPE_LINEAR,          /* LinearLR */
    WK_SCHED_TYPE_CONSTANT,        /* ConstantLR */
    WK_SCHED_TYPE_POLYNOMIAL,      /* PolynomialLR */
    WK_SCHED_TYPE_ONECYCLE,        /* OneCycleLR */
    WK_SCHED_TYPE_COSINE_RESTARTS, /* CosineAnnealingWarmRestarts */
    WK_SCHED_TYPE_LAMBDA,          /* LambdaLR */
    WK_SCHED_TYPE_PLATEAU,         /* ReduceLROnPlateau */
    WK_SCHED_TYPE_SEQUENTIAL,      /* SequentialLR */
    WK_SCHED_TYPE_CHAINED,         /* ChainedScheduler */
    WK_SCHED_TYPE_QWARMUP,         /* qWarmupScheduler */
    WK_SCHED_TYPE_COUNT
} wk_sched_type;

/* When a scheduler is stepped (see the top of this file). */
typedef enum { WK_SCHED_PER_STEP, WK_SCHED_PER_EPOCH, WK_SCHED_PER_EVAL } wk_sched_unit;

/* ---- the schedules (opt may be NULL: see wk_scheduler_set_base_lrs) ---- */

/* StepLR: base * gamma^floor(k / step_size). step_size >= 1, gamma >= 0. */
wk_scheduler *wk_step_lr_new(wk_optimizer *opt, int64_t step_size, double gamma);
/* MultiStepLR: base * gamma^(number of milestones <= k); milestones >= 0 in any order,
 * repeats count twice (torch's Counter). The list is copied. */
wk_scheduler *wk_multistep_lr_new(wk_optimizer *opt, const int64_t *milestones, int n,
                                  double gamma);
/* ExponentialLR: base * gamma^k, gamma >= 0. */
wk_scheduler *wk_exponential_lr_new(wk_optimizer *opt, double gamma);
/* CosineAnnealingLR: eta_min + (base - eta_min) * (1 + cos(pi k / T_max)) / 2 (torch's
 * closed form: periodic past T_max, as torch's recursive form is). T_max >= 1. */
wk_scheduler *wk_cosine_lr_new(wk_optimizer *opt, int64_t T_max, double eta_min);
/* LinearLR: base * (start + (end - start) * min(k, total_iters) / total_iters);
 * factors in [0, 1], total_iters >= 1 (torch: 1/3, 1, 5). */
wk_scheduler *wk_linear_lr_new(wk_optimizer *opt, double start_factor, double end_factor,
                               int64_t total_iters);
/* ConstantLR: base * factor while k < total_iters, then base; factor in [0, 1],
 * total_iters >= 0 (torch: 1/3, 5). */
wk_scheduler *wk_constant_lr_new(wk_optimizer *opt, double factor, int64_t total_iters);
/* PolynomialLR: base * (1 - min(k, total_iters) / total_iters)^power; total_iters >= 1,
 * power >= 0 (torch: 5, 1). */
wk_scheduler *wk_polynomial_lr_new(wk_optimizer *opt, int64_t total_iters, double power);

/* OneCycleLR options (torch's names and defaults, from wk_onecycle_opts_default()).
 * The cycle has total_steps steps, or epochs * steps_per_epoch when total_steps is 0;
 * stepping past total_steps is an error, as in torch. Momentum is NOT cycled: the
 * optimizer contract only exposes learning rates (torch's cycle_momentum is ignored). */
typedef struct {
    double max_lr;           /* peak lr of every group ...                           */
    const double *max_lrs;   /* ... or one per group (n_max_lrs = groups); copied    */
    int n_max_lrs;
    int64_t total_steps;     /* default 0: use epochs * steps_per_epoch              */
    int64_t epochs, steps_per_epoch;
    double pct_start;        /* 0.3: share of the cycle spent increasing             */
    const char *anneal_strategy; /* "cos" (default, also NULL) or "linear"           */
    double div_factor;       /* 25: initial lr = max_lr / div_factor                 */
    double final_div_factor; /* 1e4: min lr = initial lr / final_div_factor          */
    bool three_phase;        /* false                                                */
} wk_onecycle_opts;
wk_onecycle_opts wk_onecycle_opts_default(void);
/* OneCycleLR: ignores the base lrs (its lrs come from max_lr); only their count matters. */
wk_scheduler *wk_onecycle_lr_new(wk_optimizer *opt, const wk_onecycle_opts *o);

/* CosineAnnealingWarmRestarts: eta_min + (base - eta_min) * (1 + cos(pi T_cur / T_i)) / 2,
 * T_i = T_0 after each restart multiplied by T_mult. T_0 >= 1, T_mult >= 1. */
wk_scheduler *wk_cosine_restarts_lr_new(wk_optimizer *opt, int64_t T_0, int64_t T_mult,
                                        double eta_min);

/* LambdaLR: base * fn(k, user) for every group. fn must be deterministic (a restored
 * scheduler calls it again) and return a finite factor, else the step fails. */
typedef double (*wk_lr_lambda)(int64_t step, void *user);
wk_scheduler *wk_lambda_lr_new(wk_optimizer *opt, wk_lr_lambda fn, void *user);

/* ReduceLROnPlateau options (torch's names and defaults, from wk_plateau_opts_default()). */
typedef struct {
    const char *mode;           /* "min" (default, also NULL) or "max"                 */
    double factor;              /* 0.1: new lr = lr * factor, 0 <= factor < 1          */
    int64_t patience;           /* 10: bad evaluations tolerated before reducing       */
    double threshold;           /* 1e-4: significant improvement                       */
    const char *threshold_mode; /* "rel" (default, also NULL) or "abs"                 */
    int64_t cooldown;           /* 0: evaluations ignored after a reduction            */
    double min_lr;              /* 0: lower bound of every group ...                   */
    const double *min_lrs;      /* ... or one per group (n_min_lrs = groups); copied   */
    int n_min_lrs;
    double eps;                 /* 1e-8: reductions smaller than eps are skipped       */
} wk_plateau_opts;
wk_plateau_opts wk_plateau_opts_default(void);
/* ReduceLROnPlateau (unit WK_SCHED_PER_EVAL): stepped with wk_scheduler_step_metric;
 * lr(0) = base. It keeps its own lrs (torch re-reads the optimizer's), so a change of
 * the optimizer's lr from elsewhere is not followed. */
wk_scheduler *wk_plateau_new(wk_optimizer *opt, const wk_plateau_opts *o);

/* SequentialLR: scheds[i] runs from milestones[i-1] (0 for i = 0), counting its own steps
 * from 0 there: lr(k) = scheds[i].lr(k - milestones[i-1]) (torch 1.13's behaviour).
 * n_milestones = n - 1, milestones strictly increasing and >= 1. Takes ownership of the
 * schedulers (all on the same optimizer and group count, none stepped on a metric);
 * their base lrs become the first one's. */
wk_scheduler *wk_sequential_lr_new(wk_scheduler **scheds, int n, const int64_t *milestones,
                                   int n_milestones);
/* ChainedScheduler: steps every scheduler; lr(k) = base * prod_i (lr_i(k) / base) (0 when
 * base is 0). Equals torch's for multiplicative schedules (Step, MultiStep, Exponential,
 * Linear, Constant, Polynomial, Lambda, and CosineAnnealingLR with eta_min = 0 up to
 * T_max); torch's recursive cosine with eta_min != 0 or past T_max is not multiplicative.
 * Ownership and requirements as wk_sequential_lr_new. */
wk_scheduler *wk_chained_lr_new(wk_scheduler **scheds, int n);

/* qWarmupScheduler options (from wk_qwarmup_opts_default()). */
typedef struct {
    int64_t warmup_steps;    /* W: 0 (default) or -1 disables the warmup              */
    int64_t warmup_epochs;   /* or W = warmup_epochs * steps_per_epoch (0/-1: unused)  */
    int64_t steps_per_epoch; /* optimizer updates per epoch (ceil(L / accumulate))    */
    double warmup_factor;    /* f: 0.1; 0 <= f <= 1 (0: warm up from zero)             */
    const char *step_on;     /* "optimizer_step" (default, also NULL) or "valid_end"   */
} wk_qwarmup_opts;
wk_qwarmup_opts wk_qwarmup_opts_default(void);
/* qWarmupScheduler: after k optimizer updates (k = global_step) the lr is
 *   base * (f + (1 - f) * k / W)   for k < W     (update k + 1 uses it: f*base first),
 *   main.lr(k - W)                 for k >= W    (main counts its own steps from 0:
 *                                                 update W + 1 runs with main.lr(0)).
 * step_on "optimizer_step": wk_scheduler_step advances main once per update after the
 * warmup (main must be a per-step schedule). step_on "valid_end": wk_scheduler_step only
 * counts the warmup; each wk_scheduler_step_metric(m) made once k >= W steps main (with m
 * when main takes a metric, e.g. ReduceLROnPlateau, which requires "valid_end"); metrics
 * reported during the warmup are ignored. The warmup ramps towards the base lr, so a main
 * whose lr(0) is not the base lr (LinearLR with start_factor < 1, OneCycleLR) jumps at
 * k = W. Takes ownership of main. */
wk_scheduler *wk_qwarmup_new(wk_scheduler *main, const wk_qwarmup_opts *o);

/* ---- every scheduler ---- */

/* One step of the scheduler's unit (see above); 0, or -1 with an error (a plateau
 * scheduler needs a metric; OneCycleLR past total_steps; lambda not finite). On error
 * nothing changes. */
int wk_scheduler_step(wk_scheduler *s);
/* One evaluation's metric for schedulers that take one (wk_scheduler_takes_metric);
 * -1 with an error for the others. */
int wk_scheduler_step_metric(wk_scheduler *s, double metric);
/* The last computed lr of group g (torch's get_last_lr()[g]); NaN with an error if g is
 * out of range. */
double wk_scheduler_get_lr(const wk_scheduler *s, int g);
/* Number of parameter groups (the optimizer's, or the base lrs given). */
int wk_scheduler_num_groups(const wk_scheduler *s);
/* Steps taken (wk_scheduler_step calls; step_metric calls for ReduceLROnPlateau). */
int64_t wk_scheduler_steps(const wk_scheduler *s);
/* When to step it (see the top of this file). */
wk_sched_unit wk_scheduler_unit(const wk_scheduler *s);
/* Make a schedule per-step or per-epoch (containers: with their schedulers); -1 with an
 * error for ReduceLROnPlateau and qWarmupScheduler, whose units are fixed. */
int wk_scheduler_set_unit(wk_scheduler *s, wk_sched_unit unit);
/* True when the scheduler wants wk_scheduler_step_metric after each evaluation. */
bool wk_scheduler_takes_metric(const wk_scheduler *s);
wk_sched_type wk_scheduler_type(const wk_scheduler *s);
/* "StepLR", "qWarmupScheduler", ... (static string). */
const char *wk_scheduler_type_name(const wk_scheduler *s);
/* Set the base lrs (n groups; copied) of s and the schedulers inside it, and recompute
 * lr(0). Only before the first step; with an optimizer n must be its group count. */
int wk_scheduler_set_base_lrs(wk_scheduler *s, const double *lrs, int n);

/* The whole state (step counts, base lrs, lrs, plateau counters, nested schedulers) as a
 * JSON object string, malloc'ed: free() it. NULL with an error on failure. */
char *wk_scheduler_state_save(const wk_scheduler *s);
/* Restore a state saved from a scheduler built the same way (types and nesting must
 * match; the group count too, unless s is standalone with no groups yet). Checks
 * everything before changing anything; -1 with an error naming the field. */
int wk_scheduler_state_load(wk_scheduler *s, const char *json);

/* Free s and the schedulers it owns (NULL is fine; a scheduler that belongs to another is
 * left to it). The optimizer is not touched. */
void wk_scheduler_free(wk_scheduler *s);

#ifdef __cplusplus
}
#endif
#endif

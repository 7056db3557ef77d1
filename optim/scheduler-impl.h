/* The scheduler object (internal): optim/scheduler.c (core and closed-form schedules),
 * optim/plateau.c (ReduceLROnPlateau), optim/warmup.c (qWarmupScheduler, SequentialLR,
 * ChainedScheduler). */
#ifndef WK_OPTIM_SCHEDULER_IMPL_H
#define WK_OPTIM_SCHEDULER_IMPL_H

#include <cjson/cJSON.h>

#include "scheduler.h"

struct wk_scheduler {
    wk_sched_type type;
    wk_optimizer *opt; /* borrowed; NULL when standalone */
    bool owned;        /* inside another scheduler: only the outermost writes the optimizer */
    wk_sched_unit unit;
    int ngroups;
    double *base; /* (ngroups) base lrs */
    double *lr;   /* (ngroups) lr(steps) */
    int64_t steps;
    wk_scheduler **children; /* owned: SequentialLR/ChainedScheduler members, qWarmup main */
    int nchildren;
    union {
        struct { int64_t step_size; double gamma; } step;
        struct { int64_t *milestones; int n; double gamma; } multistep; /* sorted */
        struct { double gamma; } exp;
        struct { int64_t T_max; double eta_min; } cosine;
        struct { double start, end; int64_t total; } linear;
        struct { double factor; int64_t total; } constant;
        struct { int64_t total; double power; } poly;
        struct {
            double max_lr, *max_lrs; /* max_lrs: n_max_lrs values or NULL */
            int n_max_lrs;
            int64_t total_steps;
            double pct_start, div_factor, final_div_factor;
            bool linear, three_phase;
        } onecycle;
        struct { int64_t T_0, T_mult; double eta_min; } restarts;
        struct { wk_lr_lambda fn; void *user; } lambda;
        struct {
            bool max_mode, abs_mode;
            double factor, threshold, eps, min_lr, *min_lrs;
            int n_min_lrs;
            int64_t patience, cooldown;
            double best; /* +-inf before the first metric */
            int64_t num_bad, cooldown_counter;
        } plateau;
        struct { int64_t *milestones; } seq; /* nchildren - 1 */
        struct { int64_t W; double f; bool valid_end; } warmup;
    } u;
};

/* Per-type behaviour; one entry per wk_sched_type in wki_sched_table (scheduler.c). */
typedef struct {
    const char *name;
    /* lr of every group after k steps into out (pure), or -1 with an error; NULL for the
     * types whose lr depends on metrics (then step/step_metric below are used). */
    int (*lr_at)(const wk_scheduler *s, int64_t k, double *out);
    /* after s->steps and s->lr were set from lr_at: bring nested schedulers along */
    void (*sync)(wk_scheduler *s);
    int (*step)(wk_scheduler *s);                   /* NULL: lr_at(steps + 1) */
    int (*step_metric)(wk_scheduler *s, double m); /* NULL: not a metric scheduler */
    /* groups changed (count and/or base): check per-group options against n */
    int (*check_groups)(const wk_scheduler *s, int n);
    void (*reset)(wk_scheduler *s); /* back to step 0 after new base lrs */
    /* type-specific state: save into o; check (apply = false) or restore (apply = true) */
    int (*save)(const wk_scheduler *s, cJSON *o);
    int (*load)(wk_scheduler *s, const cJSON *o, bool apply);
    void (*free)(wk_scheduler *s);
} wki_sched_info;

extern const wki_sched_info wki_sched_table[WK_SCHED_TYPE_COUNT];

/* A scheduler of the given type with the optimizer's groups and base lrs (lr = base);
 * NULL with an error (naming `who`) on failure. */
wk_scheduler *wki_sched_alloc(const char *who, wk_sched_type type, wk_optimizer *opt);
/* Compute lr(0), write it to the optimizer; frees s and returns NULL on failure. */
wk_scheduler *wki_sched_finish(wk_scheduler *s);
/* Move a seekable scheduler (lr_at != NULL) to step k: steps, lr and nested ones. */
int wki_sched_seek(wk_scheduler *s, int64_t k);
/* wk_scheduler_step / _step_metric without the optimizer write (for nested schedulers). */
int wki_sched_step(wk_scheduler *s);
int wki_sched_step_metric(wk_scheduler *s, double metric);
/* Whether lr(k) is a pure function of k (everything but metric-driven schedulers). */
bool wki_sched_seekable(const wk_scheduler *s);
/* Set the group count (reallocating base/lr) and the base lrs of s and its children. */
int wki_sched_set_groups(wk_scheduler *s, const double *base, int n);
/* Save / check-or-restore the state of s into / from the JSON object o (recursive). */
cJSON *wki_sched_state_json(const wk_scheduler *s);
int wki_sched_state_apply(wk_scheduler *s, const cJSON *o, bool apply);
/* JSON numbers that may be +-inf or nan (cJSON writes those as null): strings then. */
cJSON *wki_json_double(double v);
bool wki_json_get_double(const cJSON *o, const char *key, double *v);
bool wki_json_get_int(const cJSON *o, const char *key, int64_t *v);

/* the type entries living in plateau.c and warmup.c */
int wki_plateau_step(wk_scheduler *s);
int wki_plateau_step_metric(wk_scheduler *s, double m);
int wki_plateau_check_groups(const wk_scheduler *s, int n);
void wki_plateau_reset(wk_scheduler *s);
int wki_plateau_save(const wk_scheduler *s, cJSON *o);
int wki_plateau_load(wk_scheduler *s, const cJSON *o, bool apply);
void wki_plateau_free(wk_scheduler *s);

int wki_seq_lr_at(const wk_scheduler *s, int64_t k, double *out);
void wki_seq_sync(wk_scheduler *s);
void wki_seq_free(wk_scheduler *s);
int wki_chained_lr_at(const wk_scheduler *s, int64_t k, double *out);
void wki_chained_sync(wk_scheduler *s);
int wki_warmup_lr_at(const wk_scheduler *s, int64_t k, double *out);
void wki_warmup_sync(wk_scheduler *s);
int wki_warmup_step(wk_scheduler *s);
int wki_warmup_step_metric(wk_scheduler *s, double m);
void wki_warmup_reset(wk_scheduler *s);

#endif

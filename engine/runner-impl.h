/* The Runner's internals, shared by runner*.c (not installed). */
#ifndef WK_ENGINE_RUNNER_IMPL_H
#define WK_ENGINE_RUNNER_IMPL_H

#include <signal.h>

#include "../optim/ema.h"
#include "ddp.h"
#include "dist.h"
#include "runner.h"

/* Runner events registered on the engine, in this order (wk_runner_event's names). */
typedef enum {
    RUNNER_EV_LOSS_COMPUTED,
    RUNNER_EV_EVAL_STARTED,
    RUNNER_EV_EVAL_COMPLETED,
    RUNNER_EV_BEST,
    RUNNER_EV_SAVE_CHECKPOINT,
    RUNNER_EV_CHECKPOINT_SAVED,
    RUNNER_EV_LOAD_CHECKPOINT,
    RUNNER_EV_EARLY_STOP,
    RUNNER_EV_COUNT
} runner_event;

/* Hook slots: one per callback of wk_runner_hook. */
typedef enum {
    HOOK_TRAIN_BEGIN,
    HOOK_EPOCH_BEGIN,
    HOOK_BATCH_BEGIN,
    HOOK_LOSS_COMPUTED,
    HOOK_BATCH_END,
    HOOK_EPOCH_END,
    HOOK_EVAL_BEGIN,
    HOOK_EVAL_END,
    HOOK_BEST,
    HOOK_SAVE_CHECKPOINT,
    HOOK_CHECKPOINT_SAVED,
    HOOK_LOAD_CHECKPOINT,
    HOOK_EARLY_STOP,
    HOOK_TRAIN_END,
    HOOK_COUNT
} hook_slot;

struct wk_runner;

typedef struct {
    struct wk_runner *runner;
    hook_slot slot;
} hook_dispatch;

#define RUNNER_PATH_MAX 4096

struct wk_runner {
    wk_runner_opts opts;          /* strings point into the copies below */
    char *work_dir, *resume, *load_from, *config_json, *best_target, *best_mode,
        *es_target, *es_mode;
    wk_runner_parts parts;
    wk_engine *engine;
    wk_data_source train_source;
    wk_ema *ema;                  /* use_ema */
    wk_comm *comm;                /* distributed: the world (owned by the library) */
    wk_ddp *ddp;                  /* distributed: gradient averaging */
    struct wk_logger *logger;     /* the logging hook's (logger_hook.c), or NULL */
    wk_tensor **params;           /* the optimizer's parameters (clipping) */
    int nparams;
    int events[RUNNER_EV_COUNT];  /* engine ids of the runner events */
    hook_dispatch dispatch[HOOK_COUNT];

    wk_runner_hook *hooks;
    int nhooks;

    wk_runner_state state;        /* what hooks see */
    wk_metric_results metrics;    /* the last evaluation (all stages and models) */
    bool have_best, have_es;
    wk_early_stop best, es;
    char ckpt_dir[RUNNER_PATH_MAX];
    char ckpt_path[RUNNER_PATH_MAX + 64]; /* the checkpoint being written */
    char resumed_from[RUNNER_PATH_MAX];
    cJSON *task;                  /* task state being saved; the one loaded on resume */

    /* accumulation window */
    bool window_bad;              /* a non-finite loss in the window (nan_policy skip) */
    /* pending actions, acted on at the next boundary */
    bool pending_eval, pending_save, pending_stop;
    wk_stop_reason stop_reason;
    bool want_stop, want_checkpoint;
    volatile sig_atomic_t signalled;
    int64_t last_eval_step;       /* -1: never evaluated */
    int64_t last_save_step;       /* step of the newest regular checkpoint (-1: none) */
    double data_time_seen;        /* the engine's data time at the last iteration */
    bool running, completed;
    bool failure_shared;          /* distributed: the other ranks know this run failed */
};

/* ---- runner.c ---- */
/* The engine's epoch cap: max_epochs, or one it never reaches (the Runner stops itself at
 * max_steps), kept under 2^52 iterations so the engine's state stays exact in JSON. */
int64_t wki_runner_engine_epochs(const struct wk_runner *r);
/* Dispatch slot to every hook in order (the engine handler of each mapped event). */
int wki_runner_fire(struct wk_runner *r, hook_slot slot);
/* Fire a runner event on the engine (its first handler dispatches the hooks). */
int wki_runner_fire_event(struct wk_runner *r, runner_event ev);

/* True on the rank that writes files (rank 0). */
bool wki_runner_is_main(const struct wk_runner *r);
/* Distributed: tell the other ranks this rank failed (they stop with its message at their
 * next agreement), keeping this rank's own error. Once per run; no-op in world 1. */
void wki_runner_report_failure(struct wk_runner *r);
/* Distributed: agree at a point every rank reaches that all are fine (ok: this rank's
 * part). 0 when all are, -1 with "rank R failed: ..." on every rank otherwise. */
int wki_runner_agree(struct wk_runner *r, bool ok);

/* ---- runner_step.c ---- */
/* The engine's process function: one micro-batch. */
wk_engine_output *wki_runner_step(wk_engine *e, const struct wk_batch *batch, void *user);

/* ---- runner_policy.c ---- */
/* Attach the policy handlers (triggers, evaluation, checkpoints, stop) to the engine. */
int wki_runner_attach_policy(struct wk_runner *r);
/* Evaluate every stage and model into r->metrics (on_eval_begin/on_eval_end around). */
int wki_runner_evaluate(struct wk_runner *r);
/* The metric names one evaluation produces (to validate targets before training). */
int wki_runner_metric_names(struct wk_runner *r, wk_metric_results *names);

/* ---- runner_checkpoint.c ---- */
/* Write a checkpoint of the given kind ("regular", "best", "last") with the full state. */
int wki_runner_save(struct wk_runner *r, const char *kind);
/* Resume from a checkpoint path (full state) or load weights (load_from). */
int wki_runner_resume(struct wk_runner *r, const char *path);
int wki_runner_load_weights(struct wk_runner *r, const char *path);

#endif

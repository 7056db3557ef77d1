/* The Runner: MMEngine's training policy (evaluation, best and regular checkpoints,
 * early stopping, EMA, exact resume) on the Ignite-style event engine.
 *
 *   wk_runner_opts o = wk_runner_opts_default();
 *   o.run_mode = WK_RUN_EPOCH;
 *   o.max_epochs = 10;
 *   o.work_dir = "work_dirs/mnist";
 *   o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 3};
 *   wk_runner *r = wk_runner_new(&(wk_runner_parts){.model = model, .optimizer = opt,
 *                                   .scheduler = sched, .train_loader = train,
 *                                   .val_loader = val, .evaluator = ev}, &o);
 *   wk_runner_add_hook(r, &(wk_runner_hook){.name = "mine", .on_eval_end = my_fn});
 *   if (!r || wk_runner_run(r)) fprintf(stderr, "%s\n", wk_last_error());
 *   wk_runner_free(r);
 *
 * docs/RUNNER.md is the exact behaviour: counting (global_step = optimizer updates,
 * epochs and iterations 1-based), the order of one iteration, the evaluation and save
 * triggers, early stopping, checkpoints and resume. In short, per micro-batch:
 * on_batch_begin, fetch, forward (LOSS), on_loss_computed, backward(loss / window), and
 * at the end of an accumulation window: clip, NaN check, optimizer step, global_step++,
 * EMA update, per-step scheduler step; then on_batch_end. Triggers (evaluation, regular
 * save, stop) are acted on after an update, or at the epoch boundary after on_epoch_end
 * when the micro-batch was the epoch's last.
 *
 * The Runner is one Engine (wk_runner_engine) whose process function is the micro-batch
 * above; every listener hook is dispatched from an Engine event (built-in ones such as
 * EPOCH_COMPLETED, and events the Runner registers such as "EVAL_COMPLETED", see
 * wk_runner_event), so any Engine handler, with its filters, also works on a Runner.
 *
 * Everything in wk_runner_parts is borrowed: it must outlive the runner.
 */
#ifndef WK_ENGINE_RUNNER_H
#define WK_ENGINE_RUNNER_H

#include <cjson/cJSON.h>

#include "../nn/model.h"
#include "../optim/optimizer.h"
#include "../optim/scheduler.h"
#include "early_stop.h"
#include "engine.h"
#include "loader.h"
#include "metric.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { WK_RUN_EPOCH, WK_RUN_STEP } wk_run_mode;
typedef enum { WK_NAN_STOP, WK_NAN_SKIP } wk_nan_policy;

/* A metric to watch (early stopping, best checkpoint). NULL target: see the defaults in
 * wk_runner_opts; NULL mode: the metric's natural direction (names containing "loss",
 * "mse", "mae" or "error" are minimised, others maximised). */
typedef struct {
    const char *target;     /* "val/accuracy", "val_ema/loss", ... */
    const char *mode;       /* "min" | "max" | NULL */
    double min_delta;       /* >= 0 */
    int64_t patience;       /* early stopping only: evaluations without improvement, >= 1 */
} wk_runner_watch;

/* The profiler window (torch.profiler.schedule) in optimizer steps: skipped, warmed up,
 * recorded; repeat cycles (0 = until the end). Enabled with all four 0: the default
 * window (WK_PROFILER_SCHEDULE_DEFAULT: wait 1, warmup 1, active 5, repeat 1). Outputs
 * (trace.json, profile.txt) go to the logger's run folder, else work_dir. */
typedef struct {
    bool enabled;
    int64_t wait, warmup, active, repeat;
} wk_runner_profile;

/* The Runner's keys (docs/RUNNER.md, "Keys"); start from wk_runner_opts_default().
 * Strings are copied by wk_runner_new. 0 means "not set" for max_epochs/max_steps. */
typedef struct {
    wk_run_mode run_mode;       /* WK_RUN_EPOCH */
    int64_t max_epochs;         /* required in epoch mode; optional cap in step mode */
    int64_t max_steps;          /* required in step mode (else inferred from max_epochs);
                                   optional cap in epoch mode */
    int64_t eval_interval;      /* 1: epochs (epoch mode) or steps (step mode); 0: never */
    bool eval_at_end;           /* true */
    int64_t save_interval;      /* 0: regular checkpoint every N steps (0 = none) */
    int64_t max_keep;           /* 0: keep all regular checkpoints */
    bool save_best;             /* true */
    wk_runner_watch best;       /* target NULL: early_stop's, else the first val metric */
    wk_runner_watch early_stop; /* target NULL: no early stopping */
    double clip_max_norm;       /* > 0: clip_grad {max_norm, norm_type} */
    double clip_norm_type;      /* 2 */
    double clip_value;          /* > 0: clip_grad {value} */
    int64_t accumulate;         /* 1: micro-batches per optimizer update */
    bool use_ema;               /* false */
    double ema_decay;           /* 0.999 */
    wk_nan_policy nan_policy;   /* WK_NAN_STOP */
    uint64_t seed;              /* 0 */
    const char *work_dir;       /* "work_dirs/default" */
    const char *resume;         /* NULL/"": no; "auto": newest valid checkpoint; or a path */
    const char *load_from;      /* NULL, or a checkpoint / safetensors file: weights only */
    bool load_strict;           /* true */
    int64_t log_interval;       /* 50 micro-batches */
    bool distributed;           /* false: data parallel over wk_dist_world() (MPI) */
    int rank, world_size;       /* 0, 1; with distributed, taken from the communicator */
    double bucket_mb;           /* 25: DDP gradient bucket size in MiB */
    wk_runner_profile profiler; /* off */
    const char *config_json;    /* the merged config, saved into every checkpoint; NULL: {} */
    bool quiet;                 /* no default logger hook, no profiler table on stdout */
} wk_runner_opts;

/* The defaults of docs/RUNNER.md. */
wk_runner_opts wk_runner_opts_default(void);

/* What the runner trains with (all borrowed). */
typedef struct {
    wk_model *model;            /* required */
    wk_optimizer *optimizer;    /* required, over the model's parameters */
    wk_scheduler *scheduler;    /* optional */
    wk_loader *train_loader;    /* required */
    wk_loader *val_loader;      /* optional */
    wk_loader *test_loader;     /* optional */
    wk_evaluator *evaluator;    /* required with a val or test loader */
    wk_evaluator *test_evaluator; /* optional: for the test loader (default: evaluator) */
} wk_runner_parts;

typedef struct wk_runner wk_runner;

/* Why training ended ("max_steps", "max_epochs", "early_stop", "signal", "nan",
 * "requested", "error"); WK_STOP_NONE while running. */
typedef enum {
    WK_STOP_NONE,
    WK_STOP_MAX_STEPS,
    WK_STOP_MAX_EPOCHS,
    WK_STOP_EARLY_STOP,
    WK_STOP_SIGNAL,
    WK_STOP_NAN,
    WK_STOP_REQUESTED,
    WK_STOP_ERROR,
    WK_STOP_COUNT
} wk_stop_reason;
const char *wk_stop_reason_name(wk_stop_reason r);

/* The view every hook gets (read-only). Counting as docs/RUNNER.md. */
typedef struct {
    wk_run_mode run_mode;
    int64_t epoch;              /* 1-based epoch being run (or just completed) */
    int64_t iter_in_epoch;      /* 1-based micro-batch within the epoch (0 before one) */
    int64_t epoch_length;       /* micro-batches per epoch (L) */
    int64_t steps_per_epoch;    /* ceil(L / accumulate) */
    int64_t global_step;        /* completed optimizer updates */
    int64_t micro_step;         /* micro-batches run in the whole training */
    int64_t max_epochs, max_steps; /* 0 = not set */
    bool updated;               /* on_batch_end: this micro-batch completed an update */
    double loss;                /* the last micro-batch's total loss */
    const wk_model_output *outputs; /* on_loss_computed: the LOSS outputs (else NULL) */
    double lr;                  /* group 0's lr (after the scheduler, in on_batch_end) */
    double grad_norm;           /* total grad norm before clipping (NaN: not computed) */
    double iter_time, data_time; /* seconds of the last micro-batch and of its fetch */
    int64_t nan_skipped;        /* updates dropped by nan_policy "skip" */
    const wk_metric_results *metrics; /* the last evaluation's metrics (all stages) */
    const wk_early_stop *best;  /* best tracking (NULL without a target) */
    const wk_early_stop *early_stop; /* NULL without early stopping */
    const char *checkpoint_kind; /* on_save_checkpoint / on_checkpoint_saved: "regular",
                                    "best", "last" */
    const char *checkpoint_path;
    wk_stop_reason stop_reason;
    const char *work_dir;
    const char *resumed_from;   /* the checkpoint this run resumed from, or NULL */
    const wk_runner_opts *opts;
} wk_runner_state;

typedef int (*wk_runner_hook_fn)(wk_runner *r, const wk_runner_state *s, void *user);

/* A listener: any of the callbacks may be NULL. Each returns 0, or non-zero to fail the
 * run with its wk_set_error message. on_save_checkpoint adds the hook's own state to the
 * `task` object (saved as the checkpoint's task JSON); on_load_checkpoint reads it back
 * after a resume. Hooks run in the order they were added. */
typedef struct {
    const char *name;           /* copied */
    void *user;
    wk_runner_hook_fn on_train_begin, on_epoch_begin, on_batch_begin, on_loss_computed,
        on_batch_end, on_epoch_end, on_eval_begin, on_eval_end, on_best,
        on_checkpoint_saved, on_early_stop, on_train_end;
    int (*on_save_checkpoint)(wk_runner *r, const wk_runner_state *s, cJSON *task, void *user);
    int (*on_load_checkpoint)(wk_runner *r, const wk_runner_state *s, const cJSON *task,
                              void *user);
    void (*free_user)(void *user); /* called by wk_runner_free, or NULL */
} wk_runner_hook;

/* A runner over parts with opts, validated together: every configuration error (missing
 * max_*, negative intervals, a watch target no evaluation produces, a missing part) is
 * reported in one message. NULL with the error. */
wk_runner *wk_runner_new(const wk_runner_parts *parts, const wk_runner_opts *opts);
/* Free the runner, its engine, EMA and hooks' users (not the parts). NULL-safe. */
void wk_runner_free(wk_runner *r);
/* Add a listener (copied); before wk_runner_run. 0 or -1. */
int wk_runner_add_hook(wk_runner *r, const wk_runner_hook *hook);
/* Train: resume or load_from if asked, run until max_epochs/max_steps, early stopping, a
 * stop request or a signal; evaluate at the end (eval_at_end); write `last`.
 * 0 when training ended normally (max_*, early stop, requested); -1 with an error for a
 * failure, a NaN stop or a signal (wk_runner_stop_reason tells which). */
int wk_runner_run(wk_runner *r);

/* Ask the run to stop after the current optimizer update (from a hook or handler). */
void wk_runner_request_stop(wk_runner *r);
/* Ask for a regular checkpoint after the current optimizer update. */
void wk_runner_request_checkpoint(wk_runner *r);
/* Async-signal-safe: stop after the current update, write `last`, end with "signal". */
void wk_runner_signal(wk_runner *r);

/* The runner's engine: attach Engine handlers (with filters) to it. */
wk_engine *wk_runner_engine(wk_runner *r);
/* The engine event id of a runner event: "LOSS_COMPUTED", "EVAL_STARTED",
 * "EVAL_COMPLETED", "BEST", "SAVE_CHECKPOINT", "CHECKPOINT_SAVED", "LOAD_CHECKPOINT",
 * "EARLY_STOP"; -1 with an error for other names. */
int wk_runner_event(const wk_runner *r, const char *name);
/* The current state (read-only). */
const wk_runner_state *wk_runner_get_state(const wk_runner *r);
/* Why the last run ended. */
wk_stop_reason wk_runner_stop_reason(const wk_runner *r);
/* The EMA of the model's weights (NULL without use_ema). */
struct wk_ema *wk_runner_ema(wk_runner *r);
/* The folder regular/best/last checkpoints go to (work_dir/checkpoints). */
const char *wk_runner_checkpoint_dir(const wk_runner *r);

#ifdef __cplusplus
}
#endif
#endif

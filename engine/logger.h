/* Training logs (MMEngine's LoggerHook output): text lines on the console and in run.log,
 * scalars.jsonl, TensorBoard event files, and a progress bar on a terminal. The Runner
 * calls it; nothing here decides when to log.
 *
 *   wk_logger_opts o = {.work_dir = "work_dirs/mnist", .mode = WK_LOG_MODE_EPOCH,
 *                       .tensorboard = true};
 *   wk_logger *lg = wk_logger_open(&o);            // work_dirs/mnist/20261202_100000/
 *   wk_log_train r = WK_LOG_TRAIN_INIT;
 *   r.epoch = 3, r.iter_in_epoch = 100, r.epoch_length = 469, r.global_step = 1038;
 *   r.lr = 1e-3, r.time_s = 0.0123, r.data_time_s = 0.0004, r.loss = 0.4567;
 *   r.eta_s = wk_log_eta(elapsed, steps_done, steps_left);
 *   wk_logger_train(lg, &r);
 *   // Epoch(train) [3][100/469]  lr: 1.0000e-03  eta: 0:01:02  time: 0.0123  ...
 *   const char *names[] = {"val/accuracy", "val/loss"};
 *   double vals[] = {91.23, 0.2512};
 *   int64_t iters[] = {79, 79};
 *   wk_log_eval e = {.epoch = 3, .global_step = 1407, .n = 2, .names = names,
 *                    .values = vals, .iters = iters};
 *   wk_logger_eval(lg, &e);                        // Epoch(val) [3][79/79]  accuracy: ...
 *   wk_logger_end(lg, WK_LOG_END_MAX_EPOCHS, 4690, 10);
 *   wk_logger_close(lg);
 */
#ifndef WK_ENGINE_LOGGER_H
#define WK_ENGINE_LOGGER_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How positions are printed: "Epoch(train) [epoch][iter/len]" or "Iter(train) [step/max]". */
typedef enum { WK_LOG_MODE_EPOCH, WK_LOG_MODE_STEP } wk_log_mode;

/* The progress bar: AUTO draws it when the console is a terminal. */
typedef enum { WK_LOG_PROGRESS_AUTO, WK_LOG_PROGRESS_OFF, WK_LOG_PROGRESS_ON } wk_log_progress;

typedef enum {
    WK_LOG_CKPT_REGULAR,
    WK_LOG_CKPT_BEST,
    WK_LOG_CKPT_LAST,
    WK_LOG_CKPT_COUNT
} wk_log_ckpt_kind;

typedef enum {
    WK_LOG_END_MAX_STEPS,
    WK_LOG_END_MAX_EPOCHS,
    WK_LOG_END_EARLY_STOP,
    WK_LOG_END_SIGNAL,
    WK_LOG_END_NAN,
    WK_LOG_END_REQUESTED,
    WK_LOG_END_ERROR,
    WK_LOG_END_COUNT
} wk_log_end_reason;

/* "regular", "best", "last" ("?" when out of range). */
const char *wk_log_ckpt_kind_name(wk_log_ckpt_kind kind);
/* "max_steps", "max_epochs", "early_stop", "signal", "nan", "requested", "error" ("?" when
 * out of range). */
const char *wk_log_end_reason_name(wk_log_end_reason reason);

typedef struct wk_logger_opts {
    const char *work_dir; /* files go to work_dir/<YYYYMMDD_HHMMSS>/; NULL: console only */
    wk_log_mode mode;
    FILE *console;        /* NULL: stdout */
    bool quiet;           /* print nothing on the console */
    bool tensorboard;     /* also write work_dir/<timestamp>/tb/events.out.tfevents.* */
    wk_log_progress progress;
    int rank;             /* only rank 0 writes files; other ranks print nothing... */
    bool all_ranks;       /* ...unless this is set (their lines then carry "[rank N] ") */
    /* Wall clock in Unix seconds, for line stamps, the folder name, TensorBoard's
     * wall_time and the bar's redraw limit; NULL: the real clock. Tests pass a fixed one. */
    double (*clock)(void *user);
    void *clock_user;
} wk_logger_opts;

#define WK_LOG_MAX_EXTRA 16

/* One train log record. Optional doubles are NaN when absent: start from
 * WK_LOG_TRAIN_INIT. The loss is always printed (a NaN loss prints "nan"). */
typedef struct wk_log_train {
    int64_t epoch;         /* 1-based */
    int64_t iter_in_epoch; /* 1-based micro-batch index in the epoch */
    int64_t epoch_length;  /* micro-batches per epoch; <= 0: unknown (printed as [epoch][i]) */
    int64_t global_step;   /* completed optimizer updates */
    int64_t max_steps;     /* <= 0: unknown (step mode prints [step]) */
    double lr;
    double eta_s;          /* seconds left; NaN or < 0: not printed */
    double time_s;         /* mean seconds per iteration over the log window */
    double data_time_s;    /* mean seconds waiting for data over the window */
    double memory_mb;      /* peak device memory, printed as an integer like MMEngine */
    double grad_norm;
    double loss;           /* train/loss: mean over the log window */
    int n_extra;           /* further scalars printed after loss: "loss_cls" -> train/loss_cls */
    const char *extra_names[WK_LOG_MAX_EXTRA];
    double extra_values[WK_LOG_MAX_EXTRA];
} wk_log_train;

#define WK_LOG_TRAIN_INIT                                                                \
    ((wk_log_train){.lr = NAN, .eta_s = NAN, .time_s = NAN, .data_time_s = NAN,          \
                    .memory_mb = NAN, .grad_norm = NAN, .loss = NAN})

/* One evaluation: every stage and model in one record. names are "<stage>/<metric>"
 * (val/accuracy, val_ema/loss, test/accuracy); each stage gets one line, stages in order
 * of first appearance, metrics without the stage prefix ("Epoch(val_ema) [3][79/79]
 * accuracy: 91.2300  loss: 0.2512"). A name without '/' belongs to stage "val". */
typedef struct wk_log_eval {
    int64_t epoch;
    int64_t global_step;
    int64_t max_steps;           /* step mode header [step/max_steps]; <= 0: [step] */
    int n;
    const char *const *names;
    const double *values;
    const int64_t *iters;        /* optional, per name: batches its stage ran ([79/79]) */
} wk_log_eval;

typedef struct wk_logger wk_logger;

/* Open a logger. With a work_dir (and rank 0) it creates work_dir (and parents) and a new
 * run folder named after the clock's local time, YYYYMMDD_HHMMSS, adding _1, _2, ... when
 * that name is taken, with run.log, scalars.jsonl and (opts.tensorboard) tb/. Returns
 * NULL and sets the error when a folder or file cannot be created. Free with
 * wk_logger_close. Every wk_logger_* function accepts a NULL logger and does nothing. */
wk_logger *wk_logger_open(const wk_logger_opts *opts);
/* Close the files and free (NULL is a no-op). Clears a progress bar still shown. */
void wk_logger_close(wk_logger *lg);
/* The run folder (owned by the logger), or NULL when it writes no files. */
const char *wk_logger_run_dir(const wk_logger *lg);

/* A train line on the console and in run.log, a "train" record in scalars.jsonl and its
 * scalars in TensorBoard (lr, train/loss, train/<extra>, grad_norm, time, data_time,
 * memory). Returns 0, or -1 with the error set (bad record, a failed write; the logger
 * stays usable). */
int wk_logger_train(wk_logger *lg, const wk_log_train *r);
/* Redraw the progress bar from r (position, eta, loss) when the bar is on, at most ten
 * times a second; a no-op otherwise. Call it every iteration. Returns 0. */
int wk_logger_progress(wk_logger *lg, const wk_log_train *r);
/* The evaluation lines, one "eval" record with every name, and the scalars in
 * TensorBoard. Returns 0, or -1 with the error set. */
int wk_logger_eval(wk_logger *lg, const wk_log_eval *e);
/* "Saved checkpoint: <path>" (with " (<note>)" when note is not NULL) and a "checkpoint"
 * record {kind, path}. Returns 0, or -1 with the error set. */
int wk_logger_checkpoint(wk_logger *lg, wk_log_ckpt_kind kind, const char *path,
                         int64_t step, int64_t epoch, const char *note);
/* "Early stopping: <target> did not improve by <min_delta> for <patience> evaluations
 * (best <best> at step <best_step>)" and an "early_stop" record with those fields. */
int wk_logger_early_stop(wk_logger *lg, int64_t step, int64_t epoch, const char *target,
                         double min_delta, int64_t patience, double best, int64_t best_step);
/* "Training ended: <reason> at step <step>, epoch <epoch>" and the "end" record. */
int wk_logger_end(wk_logger *lg, wk_log_end_reason reason, int64_t step, int64_t epoch);
/* A free-form line at level INFO / WARNING / ERROR on the console and in run.log (each
 * line of a multi-line message gets the prefix). Returns 0, or -1 on a failed write. */
int wk_logger_info(wk_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wk_logger_warn(wk_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int wk_logger_error(wk_logger *lg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- pure helpers (no files, no clock) ---- */

/* Seconds left from the mean time per step so far: elapsed_s / steps_done * steps_left
 * (steps of this run only, so a resumed run does not count restored steps). NaN when
 * steps_done <= 0; 0 when steps_left <= 0. */
double wk_log_eta(double elapsed_s, int64_t steps_done, int64_t steps_left);
/* Python's str(timedelta(seconds=int(s))): "0:01:02", "12:00:00", "1 day, 2:03:04",
 * "3 days, 0:00:00". NaN or negative prints "0:00:00". Returns snprintf's count. */
int wk_log_format_eta(char *buf, size_t n, double seconds);
/* The train line without the timestamp prefix. Returns the length snprintf would need
 * (the line is cut to fit n), or -1 with the error set for a bad record. */
int wk_log_format_train(char *buf, size_t n, wk_log_mode mode, const wk_log_train *r);
/* The evaluation lines, joined by '\n' (no trailing newline). Returns as above. */
int wk_log_format_eval(char *buf, size_t n, wk_log_mode mode, const wk_log_eval *e);

#ifdef __cplusplus
}
#endif
#endif

/* Metrics and the evaluator (MMEngine's metric interface).
 *
 *   wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), wk_loss_metric_new()};
 *   wk_evaluator *ev = wk_evaluator_new(ms, 2);        // takes the metrics
 *   wk_metric_results r;
 *   wk_evaluator_run(ev, model, val_loader, "val", &r); // r: "val/accuracy", "val/loss"
 *
 * A metric accumulates a reducible state over batches (sums and counts, never averages
 * of averages, so that states of several ranks can be summed), then computes named
 * scalars from it. process() sees the batch and the model's PREDICT outputs.
 */
#ifndef WK_ENGINE_METRIC_H
#define WK_ENGINE_METRIC_H

#include "../nn/model.h"
#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WK_METRIC_MAX_RESULTS 32
#define WK_METRIC_NAME_LEN 64

typedef struct {
    int count;
    char names[WK_METRIC_MAX_RESULTS][WK_METRIC_NAME_LEN];
    double values[WK_METRIC_MAX_RESULTS];
} wk_metric_results;

typedef struct wk_metric wk_metric;
struct wk_metric {
    const char *type;          /* "Accuracy", "Loss", ... */
    double *state;             /* nstate doubles: the reducible accumulators */
    int nstate;
    void (*reset)(wk_metric *m);
    int (*process)(wk_metric *m, const wk_batch *batch, const wk_model_output *out);
    /* Append this metric's named values (e.g. "accuracy") to r. */
    int (*compute)(const wk_metric *m, wk_metric_results *r);
    void (*destroy)(wk_metric *m);
    void *self;
};

void wk_metric_reset(wk_metric *m);
int wk_metric_process(wk_metric *m, const wk_batch *batch, const wk_model_output *out);
int wk_metric_compute(const wk_metric *m, wk_metric_results *r);
void wk_metric_free(wk_metric *m);
/* The value named `name` in r (NaN when absent). */
double wk_metric_results_get(const wk_metric_results *r, const char *name);
/* Add (or replace) a named value; 0 or -1 when full. */
int wk_metric_results_set(wk_metric_results *r, const char *name, double value);

/* ---- built-in metrics ---- */

/* Top-k accuracy in percent from output "logits" (N, C) and batch "labels" (N): named
 * "accuracy" for k = 1 and "accuracy_top<k>" otherwise. A label counts as within the
 * top k when fewer than k logits are strictly greater than its own. */
wk_metric *wk_accuracy_new(const int *topk, int n);
/* Mean of output "loss" weighted by batch size (the number of labels, or rows of
 * "logits"): named "loss". */
wk_metric *wk_loss_metric_new(void);
/* Mean squared and absolute error between output "preds" and batch "targets": "mse",
 * "mae". */
wk_metric *wk_mse_new(void);
/* A confusion matrix over num_classes from "preds" (or the argmax of "logits") and batch
 * "labels": per-class precision/recall/F1 and their macro means in percent, named
 * "precision", "recall", "f1" (macro) and "precision_<c>", ... (first 8 classes). */
wk_metric *wk_confusion_matrix_new(int num_classes);
/* The counts of a confusion-matrix metric (row = label, column = prediction), or NULL. */
const double *wk_confusion_matrix_counts(const wk_metric *m, int *num_classes);

/* ---- the evaluator ---- */

typedef struct wk_evaluator wk_evaluator;
/* Sums metric states across ranks before compute (distributed runs); 0 or -1. */
typedef int (*wk_state_reduce_fn)(double *state, int n, void *user);

/* An evaluator running n metrics (ownership taken; freed with it). */
wk_evaluator *wk_evaluator_new(wk_metric *const *metrics, int n);
void wk_evaluator_free(wk_evaluator *ev);
/* Install a reduction of metric states across ranks (NULL: none). */
void wk_evaluator_set_reduce(wk_evaluator *ev, wk_state_reduce_fn fn, void *user);
/* One pass of the model (eval mode, no grad, PREDICT) over data from its start; results
 * named "<prefix>/<metric name>" (prefix "" keeps bare names). The model's training flag
 * is restored. 0 or -1 with an error. */
int wk_evaluator_run(wk_evaluator *ev, wk_model *model, const wk_data_source *data,
                     const char *prefix, wk_metric_results *results);

/* The names one wk_evaluator_run with this prefix would produce (values NaN), without
 * running anything: metrics are reset. 0 or -1 with an error. */
int wk_evaluator_metric_names(wk_evaluator *ev, const char *prefix, wk_metric_results *names);

#ifdef __cplusplus
}
#endif
#endif

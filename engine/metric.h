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

#ifdef __cplusplus
}
#endif
#endif

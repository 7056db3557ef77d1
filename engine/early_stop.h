/* Early stopping and best tracking on one evaluation metric (Ignite's EarlyStopping,
 * MMEngine's save_best rule), as plain data usable with or without the Runner.
 *
 *   wk_early_stop es;
 *   wk_early_stop_init(&es, "val/loss", "min", 0.001, 3);
 *   for (...) {
 *       double s = evaluate();
 *       if (wk_early_stop_update(&es, s, global_step)) save_best();
 *       if (wk_early_stop_should_stop(&es)) break;
 *   }
 *
 * improved = maximize ? s > best + min_delta : s < best - min_delta (the first finite
 * value always improves). On improvement best = s and counter = 0, else counter += 1
 * (a NaN counts as no improvement). Stop when patience > 0 and counter >= patience.
 */
#ifndef WK_ENGINE_EARLY_STOP_H
#define WK_ENGINE_EARLY_STOP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WK_EARLY_STOP_TARGET_LEN 64

typedef struct {
    char target[WK_EARLY_STOP_TARGET_LEN]; /* metric name, e.g. "val/accuracy" */
    bool maximize;
    double min_delta;
    int64_t patience;   /* 0: never asks to stop (best tracking only) */
    bool has_best;
    double best;
    int64_t best_step;  /* global_step of the best evaluation */
    int64_t counter;    /* evaluations since the last improvement */
} wk_early_stop;

/* "min" for names containing "loss", "mse", "mae" or "error", else "max". */
const char *wk_metric_natural_mode(const char *name);
/* Set up es for target (copied) with mode "min", "max" or NULL (the natural mode),
 * min_delta >= 0 and patience >= 0. 0, or -1 with an error naming the bad value. */
int wk_early_stop_init(wk_early_stop *es, const char *target, const char *mode,
                       double min_delta, int64_t patience);
/* True when score would count as an improvement (NaN never does). */
bool wk_early_stop_improves(const wk_early_stop *es, double score);
/* Account one evaluation's score at global_step; true when it improved. */
bool wk_early_stop_update(wk_early_stop *es, double score, int64_t step);
/* True when patience is set and exhausted. */
bool wk_early_stop_should_stop(const wk_early_stop *es);
/* The state {target, mode, min_delta, patience, best, best_step, counter} as a new cJSON
 * object (the caller deletes it), NULL when out of memory. best is null before the
 * first improvement. */
cJSON *wk_early_stop_state_save(const wk_early_stop *es);
/* Restore best, best_step and counter from a saved state whose target and mode match
 * es's. 0, or -1 with an error naming the field. */
int wk_early_stop_state_load(wk_early_stop *es, const cJSON *state);

#ifdef __cplusplus
}
#endif
#endif

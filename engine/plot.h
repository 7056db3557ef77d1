/* `wick plot WORK_DIR`: the curves of every run folder's scalars.jsonl, drawn with cairo
 * into WORK_DIR/plot.png and WORK_DIR/plot.svg. Top panel: train and evaluation losses on
 * the left axis, the other evaluation metrics (accuracy, ...) dashed on the right axis;
 * bottom panel: lr. x is global_step.
 *
 *   char *png, *svg;
 *   if (wk_plot_work_dir("work_dirs/mnist", NULL, &png, &svg))
 *       fprintf(stderr, "%s\n", wk_last_error());
 *   else printf("wrote %s and %s\n", png, svg), free(png), free(svg);
 */
#ifndef WK_ENGINE_PLOT_H
#define WK_ENGINE_PLOT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { WK_PLOT_AXIS_LOSS, WK_PLOT_AXIS_METRIC, WK_PLOT_AXIS_LR } wk_plot_axis;

/* One curve, sorted by step. */
typedef struct wk_plot_series {
    char *name;        /* the scalars.jsonl key: "train/loss", "val/accuracy", "lr" */
    wk_plot_axis axis; /* "lr": LR; train/... and names with "loss": LOSS; else METRIC */
    bool eval;         /* from "eval" records (drawn with markers) */
    int64_t n;
    int64_t *steps;
    double *values;
} wk_plot_series;

typedef struct wk_plot_data {
    int n;
    wk_plot_series *series;
    int n_resumes;         /* run folders after the first that hold records... */
    int64_t *resume_steps; /* ...and the first step of each (drawn as dotted lines) */
} wk_plot_data;

/* Read WORK_DIR/scalars.jsonl and WORK_DIR/<run>/scalars.jsonl for every run folder, in
 * name order (timestamps, then _1, _2 suffixes). Train records give "lr" and every
 * "train/..." key; eval records every metric. A later run folder supersedes the earlier
 * ones from its first step on (a resumed run, or a new run in the same work dir).
 * A truncated last line (no newline, not JSON: a killed run) is skipped with a warning
 * on `warnings` (NULL: stderr). Returns NULL and sets the error for a missing folder, no
 * scalars.jsonl, no train or eval record, or any other broken line ("<file>:<line>: ...").
 * Free with wk_plot_data_free. */
wk_plot_data *wk_plot_load(const char *work_dir, FILE *warnings);
void wk_plot_data_free(wk_plot_data *d);
/* The series named `name`, or NULL. */
const wk_plot_series *wk_plot_data_find(const wk_plot_data *d, const char *name);

/* Draw d (width x height pixels, or points for SVG) into a PNG and/or an SVG file (a NULL
 * path skips that format). Returns 0, or -1 with the error set (bad size, cairo error). */
int wk_plot_render(const wk_plot_data *d, const char *title, int width, int height,
                   const char *png_path, const char *svg_path);

typedef struct wk_plot_opts {
    int width, height; /* <= 0: 1200 x 800 */
    FILE *warnings;    /* NULL: stderr */
} wk_plot_opts;

/* wk_plot_load + wk_plot_render into WORK_DIR/plot.png and WORK_DIR/plot.svg. On success
 * *png_path and *svg_path (either may be NULL) receive malloc'd paths the caller frees.
 * Returns 0, or -1 with the error set. opts may be NULL. */
int wk_plot_work_dir(const char *work_dir, const wk_plot_opts *opts, char **png_path,
                     char **svg_path);

#ifdef __cplusplus
}
#endif
#endif

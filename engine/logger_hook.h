/* The Runner's logging hook (MMEngine's LoggerHook): turns the Runner's events into the
 * lines, scalars.jsonl records and TensorBoard scalars of engine/logger.h.
 *
 *   wk_runner *r = wk_runner_new(&parts, &opts);
 *   wk_logger *lg = wk_runner_attach_logger(r, NULL);    // work_dir/<timestamp>/...
 *   wk_logger_info(lg, "config: %s", path);               // the caller may write too
 *   wk_runner_run(r);                                     // the hook closes lg at free
 *
 * Per micro-batch: the progress bar (on a terminal). Every log_interval micro-batches
 * and at the last of each epoch: a train line with the lr, the eta (from the time per
 * update so far and the updates left), the mean time and data time of the window, the
 * pool's peak memory, the last grad norm and the mean loss of the window. After each
 * evaluation: one line per stage and an eval record. Checkpoints, early stopping and the
 * end (with its reason) get their lines and records. wk_runner_run attaches one with
 * default options unless the runner is quiet or a logger is attached already.
 */
#ifndef WK_ENGINE_LOGGER_HOOK_H
#define WK_ENGINE_LOGGER_HOOK_H

#include "logger.h"
#include "runner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Open a logger (opts NULL: defaults; work_dir NULL: the runner's; mode and rank come from
 * the runner) and add the hook that feeds it. The logger is owned by the runner (closed
 * by wk_runner_free). NULL with an error. */
wk_logger *wk_runner_attach_logger(wk_runner *r, const wk_logger_opts *opts);
/* The logger attached to r, or NULL. */
wk_logger *wk_runner_logger(const wk_runner *r);

#ifdef __cplusplus
}
#endif
#endif

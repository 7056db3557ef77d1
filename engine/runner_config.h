/* A whole training run from a config (MMEngine's Runner.from_cfg): the runner section's
 * keys into wk_runner_opts, and every section built through the registry.
 *
 *   wk_config *cfg = wk_config_load("configs/two_circles.json");
 *   wk_run *run = cfg ? wk_run_from_config(cfg) : NULL;   // every problem in one message
 *   if (!run || wk_runner_run(run->runner)) fprintf(stderr, "%s\n", wk_last_error());
 *   wk_run_free(run);
 *   wk_config_free(cfg);
 *
 * Sections (docs/RUNNER.md, "Config files"): model, train_dataloader, val_dataloader,
 * test_dataloader, val_evaluator, test_evaluator (default: val_evaluator's metrics),
 * optimizer, scheduler, runner, hooks. The runner section's keys are wk_runner_opts's
 * (docs/RUNNER.md, "Keys"), with clip_grad {max_norm, norm_type} or {value}, early_stop
 * and best {target, mode, min_delta[, patience]}, use_profiler true or {wait, warmup,
 * active, repeat}, resume false | true | "auto" | a path. With distributed, rank and world
 * come from wk_dist_world() and the loaders are sharded by them. The seed seeds every
 * stream: model init (wk_dist_seed(seed, WK_SEED_INIT, 0), equal on all ranks), the
 * loaders' shuffling (seed) and the Runner's default generator.
 */
#ifndef WK_ENGINE_RUNNER_CONFIG_H
#define WK_ENGINE_RUNNER_CONFIG_H

#include "config.h"
#include "runner.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read the config's runner section into *o (defaults first: wk_runner_opts_default; the
 * work_dir defaults to "work_dirs/<config name>"). Strings are borrowed from cfg.
 * 0, or -1 with every problem recorded in cfg (wk_last_error() lists them). */
int wk_runner_opts_from_config(wk_config *cfg, wk_runner_opts *o);

/* Everything a config builds, owned together. */
typedef struct {
    wk_config *config;          /* borrowed: must outlive the run */
    char *config_text;          /* the merged config (saved in checkpoints) */
    wk_runner_opts opts;
    wk_model *model;
    wk_dataset *train_ds, *val_ds, *test_ds;
    wk_loader *train, *val, *test;
    wk_evaluator *val_evaluator, *test_evaluator;
    wk_optimizer *optimizer;
    wk_scheduler *scheduler;
    wk_runner *runner;
} wk_run;

/* Build every section of cfg and a runner over them (hooks attached). NULL with an error
 * listing every problem of the config found (the sections are all built before the
 * problems are reported). */
wk_run *wk_run_from_config(wk_config *cfg);
/* Free the runner and everything built (not the config). NULL-safe. */
void wk_run_free(wk_run *run);

#ifdef __cplusplus
}
#endif
#endif

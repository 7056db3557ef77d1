/* Checkpoints: one safetensors file holding the model, its EMA, the optimizer and the
 * training state (RUNNER.md, "Checkpoints").
 *
 *   wk_checkpoint_save("work/checkpoints/step_00000120.safetensors", model, ema, opt,
 *                      state_json, config_json, task_json);
 *   wk_checkpoint ck;
 *   if (wk_checkpoint_open(path, &ck) == 0) {        // header, sizes and CRC verified
 *       wk_checkpoint_restore(&ck, model, ema, opt, true);
 *       ... ck.state ...                              // the training state JSON
 *       wk_checkpoint_close(&ck);
 *   }
 *
 * Tensors: "model.<name>" (parameters and buffers), "ema.<name>", "optim.<param>.<slot>".
 * __metadata__: "format" = "wick-ckpt-1", "state", "config", "task" (JSON texts),
 * "optimizer" and "ema" (their state JSON), "crc32" (of the data section, decimal),
 * "wick_version". Writes are atomic (temporary file, fsync, rename, fsync of the folder).
 */
#ifndef WK_ENGINE_CHECKPOINT_H
#define WK_ENGINE_CHECKPOINT_H

#include "../nn/module.h"
#include "../optim/ema.h"
#include "../optim/optimizer.h"
#include "../tensor/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WK_CHECKPOINT_FORMAT "wick-ckpt-1"

/* Write a checkpoint of model (required), ema and opt (optional) with the given JSON
 * texts (NULL: "{}"). 0, or -1 with an error; an existing file at path stays intact. */
int wk_checkpoint_save(const char *path, const wk_module *model, const wk_ema *ema,
                       const wk_optimizer *opt, const char *state_json,
                       const char *config_json, const char *task_json);

typedef struct {
    wk_safetensors st;      /* the loaded file */
    const char *state;      /* JSON texts borrowed from st ("{}" when absent) */
    const char *config;
    const char *task;
    int64_t global_step;    /* state.global_step, -1 when absent */
} wk_checkpoint;

/* Load and verify a checkpoint (format, header, sizes, CRC) without touching any model.
 * 0, or -1 with an error naming the file and the problem. */
int wk_checkpoint_open(const char *path, wk_checkpoint *ck);
/* Restore model (strict or not, as wk_state_dict_load_from), then ema and opt when given
 * (each validated before it changes). 0, or -1 with an error. */
int wk_checkpoint_restore(const wk_checkpoint *ck, wk_module *model, wk_ema *ema,
                          wk_optimizer *opt, bool strict);
/* Free what wk_checkpoint_open loaded. NULL-safe. */
void wk_checkpoint_close(wk_checkpoint *ck);

/* The checkpoint in dir with the highest global_step that verifies (resume "auto"):
 * 1 with its path in path[n], 0 when there is none, -1 on error. Each file that fails to
 * verify is reported on stderr as a warning and skipped. */
int wk_checkpoint_find_latest(const char *dir, char *path, size_t n);

#ifdef __cplusplus
}
#endif
#endif

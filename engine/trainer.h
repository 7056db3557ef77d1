/* Ready-made engines (Ignite's create_supervised_trainer / create_supervised_evaluator).
 *
 *   wk_engine *trainer = wk_create_supervised_trainer(model, opt, NULL);
 *   wk_metric *ms[] = {wk_accuracy_new((int[]){1}, 1), wk_loss_metric_new()};
 *   wk_engine *evaluator = wk_create_supervised_evaluator(model, ms, 2); // takes ms
 *   // in an EPOCH_COMPLETED handler of the trainer:
 *   //   wk_engine_run(evaluator, &val_source, 1, -1, -1);
 *   //   wk_engine_get_metric(evaluator, "accuracy");
 *   wk_data_source train_source = wk_loader_source(train_loader);
 *   if (wk_engine_run(trainer, &train_source, 5, -1, -1)) ...wk_last_error()...
 *   wk_trainer_free(evaluator);
 *   wk_trainer_free(trainer);
 *
 * The trainer's iteration: model in train mode, wk_model_forward(LOSS), the total loss
 * (wk_model_total_loss), backward, optional clipping, optimizer step, zero_grad. Its
 * output is the named scalar "loss" (the unscaled total loss) and the loss tensor.
 * With opts->accumulate = n > 1 the optimizer's accumulation API is used: each loss is
 * scaled by wk_optimizer_loss_scale (windows cut short at the end of an epoch) and
 * wk_optimizer_micro_step updates once per window (clipping, if any, just before).
 *
 * The evaluator's iteration: model in eval mode, no grad, wk_model_forward(PREDICT), each
 * metric processes the batch and the outputs; metrics are reset at STARTED and computed
 * at COMPLETED into the engine's metrics (wk_engine_get_metric(e, "accuracy")). Its
 * output tensor is the model's first PREDICT output.
 *
 * The model and optimizer are borrowed (they must outlive the engine); the engines are
 * freed with wk_trainer_free (not wk_engine_free).
 */
#ifndef WK_ENGINE_TRAINER_H
#define WK_ENGINE_TRAINER_H

#include "../nn/model.h"
#include "../optim/optimizer.h"
#include "engine.h"
#include "metric.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int accumulate;          /* micro-batches per update; 0 or 1 = update every iteration */
    double clip_grad_norm;   /* > 0: clip the grads' total 2-norm to this before updates */
    double clip_grad_value;  /* > 0: clamp every grad element to [-v, v] before updates */
} wk_trainer_opts;

/* A supervised trainer engine over model and opt (both borrowed). opts may be NULL
 * (defaults: no accumulation, no clipping). Sets (so restarts) the optimizer's
 * accumulation window: restore an optimizer's saved state after this, not before.
 * Windows restart with each epoch and are derived from the engine's state, so a run
 * continued after a terminate or a state load keeps them aligned.
 * NULL with an error (NULL model or optimizer, accumulate < 0, negative or NaN clip). */
wk_engine *wk_create_supervised_trainer(wk_model *model, wk_optimizer *opt,
                                        const wk_trainer_opts *opts);
/* A supervised evaluator engine over model (borrowed) and n metrics (ownership taken:
 * freed by wk_trainer_free, or right away when this fails). NULL with an error (NULL
 * model, n < 0 or over WK_ENGINE_MAX_METRICS, a NULL metric). */
wk_engine *wk_create_supervised_evaluator(wk_model *model, wk_metric *const *metrics, int n);
/* Free an engine made by wk_create_supervised_trainer/evaluator, with what it owns (the
 * evaluator's metrics). Plain engines are freed as by wk_engine_free. NULL-safe. */
void wk_trainer_free(wk_engine *engine);

#ifdef __cplusplus
}
#endif
#endif

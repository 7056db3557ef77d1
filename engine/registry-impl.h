/* Internals of the registry: the built-in table and the builders behind it. */
#ifndef WK_ENGINE_REGISTRY_IMPL_H
#define WK_ENGINE_REGISTRY_IMPL_H

#include "registry.h"

typedef struct {
    wk_kind kind;
    const char *name;
    wk_ctor_fn fn;
} wki_builtin;

/* Every built-in type (registry_builtins.c), registered on first use. */
extern const wki_builtin wki_builtins[];
extern const int wki_nbuiltins;

/* After a constructor failed on view c: when it recorded nothing since `before`, record
 * wk_last_error() at the first key of c named in the message (at c itself when none),
 * else refresh wk_last_error(). */
void wki_record_failure(const wk_cfg *c, int before);
/* A scheduler from c; top: the outermost one, which alone may set "by_epoch". */
wk_scheduler *wki_build_scheduler(const wk_cfg *c, const wk_build_ctx *ctx, bool top);
/* A dataset that owns `parent` besides `inner` (a subset of it): freeing it frees both. */
wk_dataset *wki_dataset_owning(wk_dataset *inner, wk_dataset *parent);

/* ---- built-in constructors ---- */
wk_model *wki_build_mlp(const wk_cfg *c, const wk_build_ctx *ctx);
wk_model *wki_build_fmnist_cnn(const wk_cfg *c, const wk_build_ctx *ctx);
wk_model *wki_build_resnet(const wk_cfg *c, const wk_build_ctx *ctx);
wk_model *wki_build_gpt(const wk_cfg *c, const wk_build_ctx *ctx);

wk_dataset *wki_build_fashion_mnist(const wk_cfg *c, const wk_build_ctx *ctx);
wk_dataset *wki_build_mnist(const wk_cfg *c, const wk_build_ctx *ctx);
wk_dataset *wki_build_two_circles(const wk_cfg *c, const wk_build_ctx *ctx);
wk_dataset *wki_build_regression(const wk_cfg *c, const wk_build_ctx *ctx);
wk_dataset *wki_build_byte_text(const wk_cfg *c, const wk_build_ctx *ctx);

int wki_build_normalize(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t);
int wki_build_random_crop(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t);
int wki_build_random_hflip(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t);
int wki_build_to_tensor(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t);

wk_optimizer *wki_build_sgd(const wk_cfg *c, const wk_build_ctx *ctx);
wk_optimizer *wki_build_adam(const wk_cfg *c, const wk_build_ctx *ctx);
wk_optimizer *wki_build_adamw(const wk_cfg *c, const wk_build_ctx *ctx);
wk_optimizer *wki_build_rmsprop(const wk_cfg *c, const wk_build_ctx *ctx);
wk_optimizer *wki_build_adagrad(const wk_cfg *c, const wk_build_ctx *ctx);

wk_scheduler *wki_build_step_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_multistep_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_exponential_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_cosine_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_linear_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_constant_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_polynomial_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_onecycle_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_cosine_restarts_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_plateau(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_sequential_lr(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_chained(const wk_cfg *c, const wk_build_ctx *ctx);
wk_scheduler *wki_build_qwarmup(const wk_cfg *c, const wk_build_ctx *ctx);

wk_metric *wki_build_accuracy(const wk_cfg *c, const wk_build_ctx *ctx);
wk_metric *wki_build_loss_metric(const wk_cfg *c, const wk_build_ctx *ctx);
wk_metric *wki_build_mse(const wk_cfg *c, const wk_build_ctx *ctx);
wk_metric *wki_build_confusion_matrix(const wk_cfg *c, const wk_build_ctx *ctx);

#endif

/* The registry: `"type": "Name"` in a config resolves to a constructor of its kind
 * (model, dataset, transform, optimizer, scheduler, metric, hook), which reads its own
 * keys through the reader of engine/config.h.
 *
 *   wk_cfg root = wk_config_root(cfg), sec;
 *   wk_generator init = wk_generator_make(0);
 *   wk_build_ctx ctx = {.seed = 0, .generator = &init};
 *   wk_cfg_object(&root, "model", &sec);
 *   wk_model *model = wk_build_model(&sec, &ctx);           // NULL: wk_last_error()
 *   ctx.model = model;
 *   wk_cfg_object(&root, "optimizer", &sec);
 *   wk_optimizer *opt = wk_build_optimizer(&sec, &ctx);
 *
 * A user type, registered from the user's own program (at file scope):
 *
 *   static wk_model *my_net(const wk_cfg *c, const wk_build_ctx *ctx) {
 *       int64_t width;
 *       wk_cfg_int(c, "width", 64, &width);
 *       if (wk_cfg_finish(c) < 0) return NULL;     // unknown / mistyped keys
 *       return wk_classifier_new(make_my_net(width, ctx->generator));
 *   }
 *   WK_REGISTER_MODEL("MyNet", my_net);            // {"type": "MyNet", "width": 128}
 *
 * A constructor returns NULL (or -1) on failure; a plain wk_set_error message is recorded
 * as a problem of its config object (with the file), and the builder also reports keys
 * the constructor did not read. Registering a name twice replaces the first entry, so a
 * user may replace a built-in. Built-ins are registered from a table on first use (a
 * static library links no object that nothing references, so constructor attributes
 * inside libwick would be dropped); WK_REGISTER_* works in the user's own objects.
 */
#ifndef WK_ENGINE_REGISTRY_H
#define WK_ENGINE_REGISTRY_H

#include "../nn/model.h"
#include "../optim/optimizer.h"
#include "../optim/scheduler.h"
#include "config.h"
#include "datasets.h"
#include "loader.h"
#include "metric.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wk_runner;

typedef enum {
    WK_KIND_MODEL,
    WK_KIND_DATASET,
    WK_KIND_TRANSFORM,
    WK_KIND_OPTIMIZER,
    WK_KIND_SCHEDULER,
    WK_KIND_METRIC,
    WK_KIND_HOOK,
    WK_KIND_COUNT
} wk_kind;

/* What a constructor may need besides its keys; fields a kind does not use may be 0. */
typedef struct {
    uint64_t seed;             /* the run's seed: default of every "seed" key */
    wk_generator *generator;   /* models: the init stream (NULL: one made from seed) */
    wk_model *model;           /* optimizers: whose parameters */
    wk_optimizer *optimizer;   /* schedulers: whose lrs (NULL: standalone) */
    int64_t steps_per_epoch;   /* schedulers: optimizer updates per epoch (ceil(L / A)) */
    int rank, world_size;      /* loaders: sharding (world_size 0 or 1: none) */
    void *user;                /* for user constructors */
} wk_build_ctx;

/* What transforms act on: the dataset's type (for messages) and the options it can
 * apply (NULL when it applies none of that family). */
typedef struct {
    const char *dataset;
    wk_mnist_opts *image;      /* MNIST-like images: mean/std, crop, flip */
} wk_transform_target;

typedef wk_model *(*wk_model_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx);
typedef wk_dataset *(*wk_dataset_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* A transform edits the target's options; 0, or -1 (e.g. "Normalize cannot be applied
 * to ByteText"). */
typedef int (*wk_transform_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx,
                                 wk_transform_target *target);
typedef wk_optimizer *(*wk_optimizer_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx);
typedef wk_scheduler *(*wk_scheduler_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx);
typedef wk_metric *(*wk_metric_ctor)(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* A hook attaches itself to the runner; ctx is the caller's pointer. 0 or -1. */
typedef int (*wk_hook_ctor)(const wk_cfg *cfg, struct wk_runner *runner, void *ctx);
/* Any constructor, as stored (cast back to the kind's type to call it). */
typedef void (*wk_ctor_fn)(void);

/* ---- registering and looking up ---- */

/* "model", "dataset", ... ("?" for an invalid kind). */
const char *wk_kind_name(wk_kind kind);
/* Register fn under name for kind (name copied; a name registered before is replaced).
 * 0, or -1 with an error (invalid kind, NULL or empty name, NULL fn, out of memory). */
int wk_registry_add(wk_kind kind, const char *name, wk_ctor_fn fn);
/* Typed forms of wk_registry_add. */
int wk_registry_add_model(const char *name, wk_model_ctor fn);
int wk_registry_add_dataset(const char *name, wk_dataset_ctor fn);
int wk_registry_add_transform(const char *name, wk_transform_ctor fn);
int wk_registry_add_optimizer(const char *name, wk_optimizer_ctor fn);
int wk_registry_add_scheduler(const char *name, wk_scheduler_ctor fn);
int wk_registry_add_metric(const char *name, wk_metric_ctor fn);
int wk_registry_add_hook(const char *name, wk_hook_ctor fn);
/* The constructor registered under name, or NULL (no error set). */
wk_ctor_fn wk_registry_find(wk_kind kind, const char *name);
/* The registered names of kind, sorted; fills up to cap of them (borrowed, valid until
 * the next registration) and returns the total. */
int wk_registry_names(wk_kind kind, const char **out, int cap);
/* The constructor for cfg's "type": NULL recording a problem for a missing type or an
 * unknown one ("unknown model type 'MPL'; did you mean 'MLP'? (registered: ...)"). */
wk_ctor_fn wk_registry_resolve(const wk_cfg *cfg, wk_kind kind);

#define WKI_CAT2(a, b) a##b
#define WKI_CAT(a, b) WKI_CAT2(a, b)
#define WKI_REGISTER(adder, name, fn)                                                     \
    __attribute__((constructor)) static void WKI_CAT(wki_register_, __COUNTER__)(void)    \
    {                                                                                     \
        adder(name, fn);                                                                  \
    }
/* Register a user type at program start (file scope, in the user's own object file). */
#define WK_REGISTER_MODEL(name, fn) WKI_REGISTER(wk_registry_add_model, name, fn)
#define WK_REGISTER_DATASET(name, fn) WKI_REGISTER(wk_registry_add_dataset, name, fn)
#define WK_REGISTER_TRANSFORM(name, fn) WKI_REGISTER(wk_registry_add_transform, name, fn)
#define WK_REGISTER_OPTIMIZER(name, fn) WKI_REGISTER(wk_registry_add_optimizer, name, fn)
#define WK_REGISTER_SCHEDULER(name, fn) WKI_REGISTER(wk_registry_add_scheduler, name, fn)
#define WK_REGISTER_METRIC(name, fn) WKI_REGISTER(wk_registry_add_metric, name, fn)
#define WK_REGISTER_HOOK(name, fn) WKI_REGISTER(wk_registry_add_hook, name, fn)

/* ---- building (cfg: the object with the "type"; results are the caller's) ---- */

/* A model (free with wk_model_free) or NULL with wk_last_error() listing the problems.
 * Built-ins: MLP, FashionMNISTCNN, ResNet, GPT. */
wk_model *wk_build_model(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* A dataset (wk_dataset_free) or NULL. Built-ins: FashionMNIST, MNIST, TwoCircles,
 * Regression, ByteText. */
wk_dataset *wk_build_dataset(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* Apply the transforms listed at cfg.key (a list of {"type": ...}; absent: none) to
 * target. Built-ins: Normalize, RandomCrop, RandomHorizontalFlip, ToTensor (no-op). 0 or
 * -1. */
int wk_build_transforms(const wk_cfg *cfg, const char *key, const wk_build_ctx *ctx,
                        wk_transform_target *target);
/* A loader from a section {dataset: {...}, batch_size, shuffle (false), drop_last
 * (false), prefetch (2), seed (ctx->seed)}, sharded by ctx->rank / world_size. *dataset
 * gets the dataset it reads: free the loader, then the dataset. NULL with an error. */
wk_loader *wk_build_loader(const wk_cfg *section, const wk_build_ctx *ctx,
                           wk_dataset **dataset);
/* An optimizer over ctx->model's parameters (named as the module names them), or NULL.
 * Built-ins: SGD, Adam, AdamW, RMSprop, Adagrad with torch's keyword names; "paramwise":
 * {"no_decay_bias_norm": true} puts biases and norm weights into a group without weight
 * decay. */
wk_optimizer *wk_build_optimizer(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* An LR scheduler on ctx->optimizer, or NULL. Built-ins: every schedule of
 * optim/scheduler.h by its torch name, and qWarmupScheduler; "by_epoch": true (outermost
 * scheduler only) makes it per-epoch. */
wk_scheduler *wk_build_scheduler(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* A metric (wk_metric_free) or NULL. Built-ins: Accuracy {topk}, Loss, MSE,
 * ConfusionMatrix {num_classes}. */
wk_metric *wk_build_metric(const wk_cfg *cfg, const wk_build_ctx *ctx);
/* An evaluator over the metric object or list of metric objects at parent.key
 * (e.g. "val_evaluator"); NULL with an error (also when absent or empty). */
wk_evaluator *wk_build_evaluator(const wk_cfg *parent, const char *key,
                                 const wk_build_ctx *ctx);
/* Run the hook constructor of every object of the list at parent.key ("hooks"; absent:
 * none) with runner and ctx. The number of hooks, or -1 with an error. */
int wk_build_hooks(const wk_cfg *parent, const char *key, struct wk_runner *runner,
                   void *ctx);

#ifdef __cplusplus
}
#endif
#endif

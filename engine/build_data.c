/* Built-in datasets and transforms, and data loaders from a dataloader section. */
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "registry-impl.h"

/* ---- a subset that owns its parent ---- */

typedef struct {
    wk_dataset *inner, *parent;
} owning;

static int64_t own_length(const wk_dataset *ds)
{
    const owning *o = ds->self;
    return o->inner->length(o->inner);
}

static int own_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    const owning *o = ds->self;
    return o->inner->get(o->inner, index, epoch, rows);
}

static int own_get_batch(const wk_dataset *ds, const int64_t *idx, int64_t n, int64_t epoch,
                         void *const *batch)
{
    const owning *o = ds->self;
    return o->inner->get_batch(o->inner, idx, n, epoch, batch);
}

static void own_destroy(wk_dataset *ds)
{
    owning *o = ds->self;
    wk_dataset_free(o->inner);
    wk_dataset_free(o->parent);
    free(o);
    free(ds);
}

wk_dataset *wki_dataset_owning(wk_dataset *inner, wk_dataset *parent)
{
    wk_dataset *ds = calloc(1, sizeof *ds);
    owning *o = calloc(1, sizeof *o);
    if (!ds || !o) {
        free(ds), free(o);
        wk_dataset_free(inner);
        wk_dataset_free(parent);
        wk_set_error("dataset: out of memory");
        return NULL;
    }
    *ds = *inner; /* type and fields */
    o->inner = inner;
    o->parent = parent;
    ds->self = o;
    ds->length = own_length;
    ds->get = own_get;
    ds->get_batch = inner->get_batch ? own_get_batch : NULL;
    ds->destroy = own_destroy;
    return ds;
}

/* ---- shared keys ---- */

static uint64_t seed_of(const wk_cfg *c, const char *key, uint64_t def)
{
    int64_t s;
    if (wk_cfg_int(c, key, (int64_t)def, &s) == 1 && s < 0) {
        wk_cfg_error(c, key, "must be >= 0, got %lld", (long long)s);
        return def;
    }
    return (uint64_t)s;
}

/* "pipeline" for a dataset that applies no transform family: any transform is refused
 * by the transform itself, naming both. */
static void no_pipeline(const wk_cfg *c, const wk_build_ctx *ctx, const char *type)
{
    wk_transform_target t = {.dataset = type};
    wk_build_transforms(c, "pipeline", ctx, &t);
}

/* ---- MNIST and Fashion-MNIST ---- */

static wk_dataset *build_mnist_like(const wk_cfg *c, const wk_build_ctx *ctx, const char *type,
                                    const char *default_root)
{
    static const char *const splits[] = {"train", "test", NULL};
    static const char *const subsets[] = {"train", "val", NULL};
    const char *root, *split, *subset;
    wk_cfg_string(c, "data_root", default_root, &root);
    wk_cfg_choice(c, "split", "train", splits, &split);
    wk_mnist_opts o = {0};
    wk_cfg_bool(c, "flatten", false, &o.flatten);
    wk_cfg_choice(c, "subset", NULL, subsets, &subset);
    int64_t holdout;
    bool has_holdout = wk_cfg_int(c, "holdout", -1, &holdout) == 1;
    if (has_holdout && holdout < 0) wk_cfg_error(c, "holdout", "must be >= 0, got %lld",
                                                 (long long)holdout);
    uint64_t split_seed = seed_of(c, "split_seed", 0);
    if (!subset && (has_holdout || wk_cfg_has(c, "split_seed")))
        wk_cfg_error(c, has_holdout ? "holdout" : "split_seed",
                     "only applies with \"subset\": \"train\" or \"val\"");
    o.augment.seed = seed_of(c, "seed", ctx->seed);
    wk_transform_target t = {.dataset = type, .image = &o};
    wk_build_transforms(c, "pipeline", ctx, &t);
    if (wk_cfg_finish(c) < 0) return NULL;

    wk_dataset *ds = wk_mnist_new(root, !strcmp(split, "train"), &o);
    if (!ds) return NULL;
    if (!subset) return ds;
    int64_t n = wk_dataset_length(ds);
    if (!has_holdout) holdout = n / 20; /* 5%: 3000 of the 60000 training images */
    if (holdout > n) {
        wk_cfg_error(c, "holdout", "is %lld but the %s split has %lld samples",
                     (long long)holdout, split, (long long)n);
        wk_dataset_free(ds);
        return NULL;
    }
    wk_dataset *first, *second;
    if (wk_dataset_split(ds, holdout, split_seed, &first, &second) < 0) {
        wk_dataset_free(ds);
        return NULL;
    }
    bool val = !strcmp(subset, "val");
    wk_dataset_free(val ? first : second);
    return wki_dataset_owning(val ? second : first, ds);
}

wk_dataset *wki_build_fashion_mnist(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_mnist_like(c, ctx, "FashionMNIST", "/usr/share/datasets/fashion-mnist");
}

wk_dataset *wki_build_mnist(const wk_cfg *c, const wk_build_ctx *ctx)
{
    return build_mnist_like(c, ctx, "MNIST", "/usr/share/datasets/mnist");
}

/* ---- synthetic and text ---- */

wk_dataset *wki_build_two_circles(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_cfg_require(c, "size");
    int64_t size = wk_cfg_int_min(c, "size", 1, 1);
    uint64_t seed = seed_of(c, "seed", ctx->seed);
    no_pipeline(c, ctx, "TwoCircles");
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_two_circles_new(size, seed);
}

wk_dataset *wki_build_regression(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_cfg_require(c, "size");
    int64_t size = wk_cfg_int_min(c, "size", 1, 1);
    int64_t features = wk_cfg_int_min(c, "features", 1, 1);
    double noise;
    if (wk_cfg_number(c, "noise", 0.1, &noise) == 1 && noise < 0)
        wk_cfg_error(c, "noise", "must be >= 0, got %g", noise);
    uint64_t seed = seed_of(c, "seed", ctx->seed);
    no_pipeline(c, ctx, "Regression");
    if (features > 1 << 20) wk_cfg_error(c, "features", "is too large (at most 1048576)");
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_regression_new(size, (int)features, noise, seed);
}

wk_dataset *wki_build_byte_text(const wk_cfg *c, const wk_build_ctx *ctx)
{
    const char *path;
    wk_cfg_require(c, "path");
    wk_cfg_string(c, "path", NULL, &path);
    wk_cfg_require(c, "block_size");
    int64_t block = wk_cfg_int_min(c, "block_size", 1, 1);
    int64_t size = wk_cfg_int_min(c, "size", 0, 0);
    uint64_t seed = seed_of(c, "seed", ctx->seed);
    no_pipeline(c, ctx, "ByteText");
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_byte_text_new(path, block, size, seed);
}

/* ---- transforms ---- */

static wk_mnist_opts *image_of(const wk_cfg *c, const wk_transform_target *t)
{
    if (t->image) return t->image;
    wk_cfg_error(c, NULL, "%s cannot be applied to %s (it has no image options)", c->what,
                 t->dataset ? t->dataset : "this dataset");
    return NULL;
}

/* torch's Normalize takes one value per channel: one channel here. */
static double one_value(const wk_cfg *c, const char *key, double def)
{
    double v[1] = {def};
    int n = 0;
    if (wk_cfg_number_list(c, key, v, 1, &n) < 0) return def;
    return v[0];
}

int wki_build_normalize(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t)
{
    (void)ctx;
    wk_cfg_require(c, "mean");
    wk_cfg_require(c, "std");
    double mean = one_value(c, "mean", 0), std = one_value(c, "std", 1);
    if (!(std > 0)) wk_cfg_error(c, "std", "must be > 0, got %g", std);
    if (wk_cfg_finish(c) < 0) return -1;
    wk_mnist_opts *o = image_of(c, t);
    if (!o) return -1;
    o->mean = mean;
    o->std = std;
    return 0;
}

int wki_build_random_crop(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t)
{
    (void)ctx;
    wk_cfg_require(c, "padding");
    int64_t pad = wk_cfg_int_min(c, "padding", 0, 0);
    if (pad > 64) wk_cfg_error(c, "padding", "must be <= 64, got %lld", (long long)pad);
    if (wk_cfg_finish(c) < 0) return -1;
    wk_mnist_opts *o = image_of(c, t);
    if (!o) return -1;
    o->augment.crop_padding = (int)pad;
    return 0;
}

int wki_build_random_hflip(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t)
{
    (void)ctx;
    double p;
    if (wk_cfg_number(c, "p", 0.5, &p) == 1 && p != 0.5)
        wk_cfg_error(c, "p", "only 0.5 is supported, got %g", p);
    if (wk_cfg_finish(c) < 0) return -1;
    wk_mnist_opts *o = image_of(c, t);
    if (!o) return -1;
    o->augment.hflip = true;
    return 0;
}

int wki_build_to_tensor(const wk_cfg *c, const wk_build_ctx *ctx, wk_transform_target *t)
{
    (void)ctx;
    if (wk_cfg_finish(c) < 0) return -1;
    /* images are always scaled to [0, 1]: accepted for torch-style pipelines */
    return image_of(c, t) ? 0 : -1;
}

/* ---- loaders ---- */

wk_loader *wk_build_loader(const wk_cfg *section, const wk_build_ctx *ctx, wk_dataset **dataset)
{
    static const wk_build_ctx no_ctx;
    if (!ctx) ctx = &no_ctx;
    if (!section || !section->config || !dataset) {
        wk_set_error("build_loader: needs a config view and a dataset pointer");
        return NULL;
    }
    *dataset = NULL;
    wk_cfg c = *section;
    c.errors_at_start = wk_config_error_count(c.config);
    snprintf(c.what, sizeof c.what, "a data loader");
    if (!c.json) {
        wk_cfg_error(&c, NULL, "missing (a data loader section: {\"dataset\": {...}, "
                              "\"batch_size\": ...})");
        return NULL;
    }
    wk_loader_opts o = {.rank = ctx->rank, .world_size = ctx->world_size};
    wk_cfg_require(&c, "batch_size");
    o.batch_size = wk_cfg_int_min(&c, "batch_size", 1, 1);
    wk_cfg_bool(&c, "shuffle", false, &o.shuffle);
    wk_cfg_bool(&c, "drop_last", false, &o.drop_last);
    int64_t prefetch = wk_cfg_int_min(&c, "prefetch", 2, 0);
    if (prefetch > 64) wk_cfg_error(&c, "prefetch", "must be <= 64, got %lld",
                                    (long long)prefetch);
    o.prefetch = (int)prefetch;
    o.seed = seed_of(&c, "seed", ctx->seed);
    wk_cfg dcfg;
    wk_cfg_require(&c, "dataset");
    wk_dataset *ds = NULL;
    if (wk_cfg_object(&c, "dataset", &dcfg) == 1) ds = wk_build_dataset(&dcfg, ctx);
    if (wk_cfg_finish(&c) < 0 || !ds) {
        wk_dataset_free(ds);
        return NULL;
    }
    wk_loader *l = wk_loader_new(ds, &o);
    if (!l) {
        wki_record_failure(&c, c.errors_at_start);
        wk_dataset_free(ds);
        return NULL;
    }
    *dataset = ds;
    return l;
}

/* Subsets of a dataset and the seeded train/val split. */
#include <stdlib.h>
#include <string.h>

#include "../tensor/creation.h"
#include "../tensor/tensor-impl.h"
#include "datasets.h"

typedef struct {
    wk_dataset *parent; /* borrowed */
    int64_t *indices;
    int64_t n;
} subset;

static int64_t sub_length(const wk_dataset *ds) { return ((const subset *)ds->self)->n; }

static int sub_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    const subset *s = ds->self;
    if (index < 0 || index >= s->n) {
        wk_set_error("Subset: sample %lld is out of range (%lld samples)", (long long)index,
                     (long long)s->n);
        return -1;
    }
    return s->parent->get(s->parent, s->indices[index], epoch, rows);
}

static int sub_get_batch(const wk_dataset *ds, const int64_t *idx, int64_t n, int64_t epoch,
                         void *const *batch)
{
    const subset *s = ds->self;
    int64_t stack[256];
    int64_t *mapped = n <= 256 ? stack : malloc((size_t)n * sizeof *mapped);
    if (!mapped) {
        wk_set_error("Subset: out of memory");
        return -1;
    }
    int rc = 0;
    for (int64_t i = 0; i < n && !rc; i++) {
        if (idx[i] < 0 || idx[i] >= s->n) {
            wk_set_error("Subset: sample %lld is out of range (%lld samples)",
                         (long long)idx[i], (long long)s->n);
            rc = -1;
        } else {
            mapped[i] = s->indices[idx[i]];
        }
    }
    if (!rc) rc = s->parent->get_batch(s->parent, mapped, n, epoch, batch);
    if (mapped != stack) free(mapped);
    return rc;
}

static void sub_destroy(wk_dataset *ds)
{
    subset *s = ds->self;
    free(s->indices);
    free(s);
    free(ds);
}

wk_dataset *wk_subset_new(wk_dataset *parent, const int64_t *indices, int64_t n)
{
    int64_t len = wk_dataset_length(parent);
    if (len < 0) return NULL;
    if (n < 0 || (n > 0 && !indices)) {
        wk_set_error("Subset: needs n >= 0 indices");
        return NULL;
    }
    for (int64_t i = 0; i < n; i++) {
        if (indices[i] < 0 || indices[i] >= len) {
            wk_set_error("Subset: index %lld is out of range for a dataset of %lld samples",
                         (long long)indices[i], (long long)len);
            return NULL;
        }
    }
    wk_dataset *ds = calloc(1, sizeof *ds);
    subset *s = calloc(1, sizeof *s);
    int64_t *copy = malloc((size_t)(n ? n : 1) * sizeof *copy);
    if (!ds || !s || !copy) {
        free(ds), free(s), free(copy);
        wk_set_error("Subset: out of memory");
        return NULL;
    }
    if (n) memcpy(copy, indices, (size_t)n * sizeof *copy);
    s->parent = parent;
    s->indices = copy;
    s->n = n;
    *ds = *parent; /* the same fields */
    ds->type = parent->type;
    ds->self = s;
    ds->length = sub_length;
    ds->get = sub_get;
    ds->get_batch = parent->get_batch ? sub_get_batch : NULL;
    ds->destroy = sub_destroy;
    return ds;
}

int wk_dataset_split(wk_dataset *ds, int64_t holdout, uint64_t seed, wk_dataset **first,
                     wk_dataset **second)
{
    int64_t n = wk_dataset_length(ds);
    if (n < 0) return -1;
    if (!first || !second || holdout < 0 || holdout > n) {
        wk_set_error("dataset_split: holdout %lld must be within 0..%lld", (long long)holdout,
                     (long long)n);
        return -1;
    }
    wk_generator g = wk_generator_make(seed);
    wk_frame_begin();
    wk_tensor *perm = wk_randperm(n, &g);
    int rc = -1;
    if (perm) {
        const int64_t *p = wk_data(perm);
        *first = wk_subset_new(ds, p, n - holdout);
        *second = *first ? wk_subset_new(ds, p + (n - holdout), holdout) : NULL;
        if (*second) rc = 0;
        else {
            wk_dataset_free(*first);
            *first = NULL;
        }
    }
    wk_frame_end();
    return rc;
}

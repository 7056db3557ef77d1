/* Datasets: indexable collections of samples with named, fixed-shape fields.
 *
 *   wk_dataset *train = wk_fashion_mnist_new("/usr/share/datasets/fashion-mnist", true, NULL);
 *   wk_loader *loader = wk_loader_new(train, &(wk_loader_opts){.batch_size = 128,
 *                                                             .shuffle = true, .seed = 0});
 *
 * A dataset describes its fields (name, dtype, per-sample shape) and writes sample i
 * straight into the rows of a batch being collated (no per-sample tensors): get(ds, i,
 * rows) receives one destination pointer per field, each pointing at that sample's row of
 * contiguous memory of the field's dtype and shape. Datasets held in memory may also
 * offer get_batch to gather many rows at once.
 *
 * Randomness inside a dataset (augmentations) must depend only on (the dataset's seed,
 * the epoch, the sample index), never on call order, so that a loader can resume
 * anywhere and prefetch on another thread and still produce identical batches.
 */
#ifndef WK_ENGINE_DATASET_H
#define WK_ENGINE_DATASET_H

#include "../tensor/random.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WK_DATASET_MAX_FIELDS 8

typedef struct {
    const char *name;               /* e.g. "inputs", "labels" (static or owned by ds) */
    wk_dtype dtype;
    int ndim;                       /* per-sample dims (0 for a scalar label) */
    int64_t shape[WK_MAX_DIMS];
} wk_field;

typedef struct wk_dataset wk_dataset;
struct wk_dataset {
    const char *type;               /* "FashionMNIST", "TwoCircles", ... */
    int nfields;
    wk_field fields[WK_DATASET_MAX_FIELDS];
    /* Number of samples. */
    int64_t (*length)(const wk_dataset *ds);
    /* Write sample `index` (0 <= index < length) of pass `epoch` into rows[k] for each
     * field k. 0, or -1 with an error. Must be callable from a worker thread. */
    int (*get)(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows);
    /* Optional: n samples at once into contiguous batch buffers (batch[k] holds n rows of
     * field k). NULL when not offered. */
    int (*get_batch)(const wk_dataset *ds, const int64_t *indices, int64_t n, int64_t epoch,
                     void *const *batch);
    /* Release what the dataset owns (called by wk_dataset_free). May be NULL. */
    void (*destroy)(wk_dataset *ds);
    void *self;                     /* the implementation's data */
};

/* Number of samples (-1 with an error for NULL). */
int64_t wk_dataset_length(const wk_dataset *ds);
/* Free a dataset and what it owns. NULL-safe. */
void wk_dataset_free(wk_dataset *ds);
/* Bytes of one sample row of field k. */
size_t wk_field_row_bytes(const wk_field *f);

#ifdef __cplusplus
}
#endif
#endif

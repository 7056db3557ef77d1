/* Datasets held as whole tensors in memory: tensor datasets and the synthetic sets. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/creation.h"
#include "../tensor/tensor-impl.h"
#include "datasets.h"

typedef struct {
    int64_t n;
    wk_tensor *data[WK_DATASET_MAX_FIELDS]; /* persistent, contiguous, n rows each */
    char *names[WK_DATASET_MAX_FIELDS];
} mem_ds;

static int64_t mem_length(const wk_dataset *ds) { return ((const mem_ds *)ds->self)->n; }

static int mem_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    (void)epoch;
    const mem_ds *m = ds->self;
    if (index < 0 || index >= m->n) {
        wk_set_error("%s: sample %lld is out of range (%lld samples)", ds->type,
                     (long long)index, (long long)m->n);
        return -1;
    }
    for (int k = 0; k < ds->nfields; k++) {
        size_t rb = wk_field_row_bytes(&ds->fields[k]);
        memcpy(rows[k], (const char *)wk_data(m->data[k]) + (size_t)index * rb, rb);
    }
    return 0;
}

static int mem_get_batch(const wk_dataset *ds, const int64_t *idx, int64_t n, int64_t epoch,
                         void *const *batch)
{
    (void)epoch;
    const mem_ds *m = ds->self;
    for (int64_t i = 0; i < n; i++) {
        if (idx[i] < 0 || idx[i] >= m->n) {
            wk_set_error("%s: sample %lld is out of range (%lld samples)", ds->type,
                         (long long)idx[i], (long long)m->n);
            return -1;
        }
    }
    for (int k = 0; k < ds->nfields; k++) {
        size_t rb = wk_field_row_bytes(&ds->fields[k]);
        const char *src = wk_data(m->data[k]);
        char *dst = batch[k];
        for (int64_t i = 0; i < n; i++)
            memcpy(dst + (size_t)i * rb, src + (size_t)idx[i] * rb, rb);
    }
    return 0;
}

static void mem_destroy(wk_dataset *ds)
{
    mem_ds *m = ds->self;
    for (int k = 0; k < ds->nfields; k++) {
        wk_tensor_free(m->data[k]);
        free(m->names[k]);
    }
    free(m);
    free(ds);
}

/* Takes ownership of the tensors (made persistent and contiguous here). */
static wk_dataset *mem_new(const char *type, int n, const char *const *names, wk_tensor **ts)
{
    wk_dataset *ds = calloc(1, sizeof *ds);
    mem_ds *m = calloc(1, sizeof *m);
    if (!ds || !m) {
        free(ds), free(m);
        for (int k = 0; k < n; k++) wk_tensor_free(ts[k]);
        wk_set_error("%s: out of memory", type);
        return NULL;
    }
    ds->type = type;
    ds->self = m;
    ds->length = mem_length;
    ds->get = mem_get;
    ds->get_batch = mem_get_batch;
    ds->destroy = mem_destroy;
    ds->nfields = n;
    m->n = ts[0]->ndim ? ts[0]->shape[0] : 1;
    for (int k = 0; k < n; k++) {
        wki_make_persistent(ts[k]);
        m->data[k] = ts[k];
        m->names[k] = strdup(names[k]);
        wk_field *f = &ds->fields[k];
        f->name = m->names[k];
        f->dtype = ts[k]->dtype;
        f->ndim = ts[k]->ndim - 1;
        for (int d = 1; d < ts[k]->ndim; d++) f->shape[d - 1] = ts[k]->shape[d];
    }
    for (int k = 0; k < n; k++) {
        if (!m->names[k]) {
            ds->nfields = n;
            mem_destroy(ds);
            wk_set_error("%s: out of memory", type);
            return NULL;
        }
    }
    return ds;
}

wk_dataset *wk_tensor_dataset_new(const char *const *names, wk_tensor *const *tensors, int n)
{
    const char *op = "TensorDataset";
    if (n < 1 || n > WK_DATASET_MAX_FIELDS || !names || !tensors) {
        wk_set_error("%s: needs 1..%d named tensors", op, WK_DATASET_MAX_FIELDS);
        return NULL;
    }
    for (int k = 0; k < n; k++) {
        if (!WKI_CHECK(op, tensors[k])) return NULL;
        if (!names[k] || !*names[k]) {
            wk_set_error("%s: tensor %d has no name", op, k);
            return NULL;
        }
        if (tensors[k]->ndim < 1 || tensors[k]->shape[0] != tensors[0]->shape[0] ||
            (tensors[0]->ndim < 1)) {
            wk_set_error("%s: every tensor needs the same number of rows (dim 0): \"%s\" has "
                         "shape %s, \"%s\" has %s",
                         op, names[0], wki_shape_s(tensors[0]), names[k],
                         wki_shape_s(tensors[k]));
            return NULL;
        }
    }
    wk_tensor *copies[WK_DATASET_MAX_FIELDS];
    for (int k = 0; k < n; k++) {
        copies[k] = wk_clone(tensors[k]);
        if (!copies[k]) {
            for (int j = 0; j < k; j++) wk_tensor_free(copies[j]);
            return NULL;
        }
        wki_make_persistent(copies[k]);
    }
    return mem_new(op, n, names, copies);
}

wk_dataset *wk_two_circles_new(int64_t size, uint64_t seed)
{
    if (size <= 0) {
        wk_set_error("TwoCircles: size must be > 0, got %lld", (long long)size);
        return NULL;
    }
    wk_generator g = wk_generator_make(seed);
    wk_tensor *x = wk_empty(WK_SHAPE(size, 2), WK_DTYPE_F32);
    wk_tensor *y = wk_empty(WK_SHAPE(size), WK_DTYPE_I64);
    wk_tensor *noise = wk_randn(WK_SHAPE(size), WK_DTYPE_F64, &g);
    wk_tensor *angle = wk_rand(WK_SHAPE(size), WK_DTYPE_F64, &g);
    if (!x || !y || !noise || !angle) {
        wk_tensor_free(x), wk_tensor_free(y), wk_tensor_free(noise), wk_tensor_free(angle);
        return NULL;
    }
    float *px = wk_data(x);
    int64_t *py = wk_data(y);
    const double *pn = wk_data(noise), *pa = wk_data(angle);
    for (int64_t i = 0; i < size; i++) {
        int64_t label = i % 2;
        double r = 3.0 * (double)(label + 1) + pn[i];
        double th = 2.0 * M_PI * pa[i];
        px[2 * i] = (float)(r * cos(th));
        px[2 * i + 1] = (float)(r * sin(th));
        py[i] = label;
    }
    wk_tensor_free(noise), wk_tensor_free(angle);
    return mem_new("TwoCircles", 2, (const char *[]){"inputs", "labels"}, (wk_tensor *[]){x, y});
}

wk_dataset *wk_regression_new(int64_t size, int features, double noise, uint64_t seed)
{
    if (size <= 0 || features <= 0 || noise < 0) {
        wk_set_error("Regression: size and features must be > 0 and noise >= 0");
        return NULL;
    }
    wk_generator g = wk_generator_make(seed);
    wk_tensor *x = wk_randn(WK_SHAPE(size, features), WK_DTYPE_F32, &g);
    wk_tensor *w = wk_randn(WK_SHAPE(features), WK_DTYPE_F64, &g);
    wk_tensor *e = wk_randn(WK_SHAPE(size), WK_DTYPE_F64, &g);
    wk_tensor *y = wk_empty(WK_SHAPE(size, 1), WK_DTYPE_F32);
    if (!x || !w || !e || !y) {
        wk_tensor_free(x), wk_tensor_free(w), wk_tensor_free(e), wk_tensor_free(y);
        return NULL;
    }
    const float *px = wk_data(x);
    const double *pw = wk_data(w), *pe = wk_data(e);
    float *py = wk_data(y);
    for (int64_t i = 0; i < size; i++) {
        double s = 0.5 + noise * pe[i];
        for (int j = 0; j < features; j++) s += px[i * features + j] * pw[j];
        py[i] = (float)s;
    }
    wk_tensor_free(w), wk_tensor_free(e);
    return mem_new("Regression", 2, (const char *[]){"inputs", "targets"}, (wk_tensor *[]){x, y});
}

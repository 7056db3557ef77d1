/* MNIST / Fashion-MNIST from IDX files, with scaling, normalisation and augmentation. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tensor/tensor-impl.h"
#include "datasets.h"
#include "idx.h"

typedef struct {
    wk_tensor *images; /* uint8 [N, H, W] */
    wk_tensor *labels; /* uint8 [N] */
    int64_t n, h, w;
    wk_mnist_opts o;
    float lut[256]; /* the scaled, normalised value of each byte (padding is byte 0) */
} mnist;

static int64_t mnist_length(const wk_dataset *ds) { return ((const mnist *)ds->self)->n; }

/* Two 32-bit random words for (seed, epoch, index): a Philox block. */
static void sample_random(uint64_t seed, int64_t epoch, int64_t index, uint32_t out[4])
{
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)((uint64_t)index >> 32), (uint32_t)epoch,
                       (uint32_t)((uint64_t)epoch >> 32)};
    uint32_t key[2] = {(uint32_t)seed, (uint32_t)(seed >> 32) ^ 0x9E3779B9u};
    wk_philox4x32_10(ctr, key, out);
}

static int mnist_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    const mnist *m = ds->self;
    if (index < 0 || index >= m->n) {
        wk_set_error("%s: sample %lld is out of range (%lld samples)", ds->type,
                     (long long)index, (long long)m->n);
        return -1;
    }
    const uint8_t *img = (const uint8_t *)wk_data(m->images) + index * m->h * m->w;
    float *out = rows[0];
    const wk_augment_opts *a = &m->o.augment;
    int64_t dx = 0, dy = 0;
    bool flip = false;
    if (a->crop_padding > 0 || a->hflip) {
        uint32_t r[4];
        sample_random(a->seed, epoch, index, r);
        int span = 2 * a->crop_padding + 1;
        dx = (int64_t)(r[0] % (uint32_t)span) - a->crop_padding;
        dy = (int64_t)(r[1] % (uint32_t)span) - a->crop_padding;
        flip = a->hflip && (r[2] & 1);
    }
    if (!dx && !dy && !flip) {
        for (int64_t i = 0; i < m->h * m->w; i++) out[i] = m->lut[img[i]];
    } else {
        for (int64_t y = 0; y < m->h; y++) {
            for (int64_t x = 0; x < m->w; x++) {
                int64_t sy = y + dy, sx = (flip ? m->w - 1 - x : x) + dx;
                bool in = sy >= 0 && sy < m->h && sx >= 0 && sx < m->w;
                out[y * m->w + x] = m->lut[in ? img[sy * m->w + sx] : 0];
            }
        }
    }
    *(int64_t *)rows[1] = ((const uint8_t *)wk_data(m->labels))[index];
    return 0;
}

static void mnist_destroy(wk_dataset *ds)
{
    mnist *m = ds->self;
    wk_tensor_free(m->images);
    wk_tensor_free(m->labels);
    free(m);
    free(ds);
}

/* dir/name or dir/name.gz, whichever exists (the first for messages otherwise). */
static void find_file(const char *dir, const char *name, char *path, size_t n)
{
    struct stat st;
    snprintf(path, n, "%s/%s.gz", dir, name);
    if (stat(path, &st) == 0) return;
    snprintf(path, n, "%s/%s", dir, name);
    if (stat(path, &st) == 0) return;
    snprintf(path, n, "%s/%s.gz", dir, name);
}

wk_dataset *wk_mnist_new(const char *dir, bool train, const wk_mnist_opts *opts)
{
    const char *type = "MNIST";
    struct stat st;
    if (!dir || stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        wk_set_error("%s: data folder %s not found. HINT: install Debian's "
                     "dataset-fashion-mnist (tools/setup does) or pass the folder holding "
                     "the IDX files",
                     type, dir ? dir : "(null)");
        return NULL;
    }
    if (opts && (opts->augment.crop_padding < 0 || opts->augment.crop_padding > 14)) {
        wk_set_error("%s: crop_padding must be 0..14, got %d", type, opts->augment.crop_padding);
        return NULL;
    }
    char ipath[4096], lpath[4096];
    find_file(dir, train ? "train-images-idx3-ubyte" : "t10k-images-idx3-ubyte", ipath,
              sizeof ipath);
    find_file(dir, train ? "train-labels-idx1-ubyte" : "t10k-labels-idx1-ubyte", lpath,
              sizeof lpath);
    wk_tensor *images = wk_idx_read(ipath);
    wk_tensor *labels = images ? wk_idx_read(lpath) : NULL;
    if (!images || !labels) goto fail;
    if (images->dtype != WK_DTYPE_U8 || images->ndim != 3) {
        wk_set_error("%s: %s holds %s %s; expected uint8 images [N, H, W]", type, ipath,
                     wk_dtype_name(images->dtype), wki_shape_s(images));
        goto fail;
    }
    if (labels->dtype != WK_DTYPE_U8 || labels->ndim != 1 || labels->shape[0] != images->shape[0]) {
        wk_set_error("%s: %s holds %s %s; expected %lld uint8 labels to match %s", type, lpath,
                     wk_dtype_name(labels->dtype), wki_shape_s(labels),
                     (long long)images->shape[0], ipath);
        goto fail;
    }
    wk_dataset *ds = calloc(1, sizeof *ds);
    mnist *m = calloc(1, sizeof *m);
    if (!ds || !m) {
        free(ds), free(m);
        wk_set_error("%s: out of memory", type);
        goto fail;
    }
    m->images = images;
    m->labels = labels;
    m->n = images->shape[0];
    m->h = images->shape[1];
    m->w = images->shape[2];
    if (opts) m->o = *opts;
    double scale = 1.0 / 255.0, mean = m->o.mean, inv_std = m->o.std > 0 ? 1.0 / m->o.std : 1.0;
    if (m->o.std <= 0) mean = 0;
    for (int v = 0; v < 256; v++) m->lut[v] = (float)((v * scale - mean) * inv_std);
    ds->type = type;
    ds->self = m;
    ds->length = mnist_length;
    ds->get = mnist_get;
    ds->destroy = mnist_destroy;
    ds->nfields = 2;
    ds->fields[0] = (wk_field){.name = "inputs", .dtype = WK_DTYPE_F32};
    if (m->o.flatten) {
        ds->fields[0].ndim = 1;
        ds->fields[0].shape[0] = m->h * m->w;
    } else {
        ds->fields[0].ndim = 3;
        ds->fields[0].shape[0] = 1;
        ds->fields[0].shape[1] = m->h;
        ds->fields[0].shape[2] = m->w;
    }
    ds->fields[1] = (wk_field){.name = "labels", .dtype = WK_DTYPE_I64, .ndim = 0};
    return ds;
fail:
    wk_tensor_free(images);
    wk_tensor_free(labels);
    return NULL;
}

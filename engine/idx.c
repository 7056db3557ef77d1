/* IDX files through zlib's gz* functions, which read plain files too. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zlib.h>

#include "../tensor/tensor-impl.h"
#include "idx.h"

static const struct {
    uint8_t code;
    wk_dtype dtype;
    int bytes;
} idx_types[] = {
    {0x08, WK_DTYPE_U8, 1},  {0x09, WK_DTYPE_I32, 1}, {0x0B, WK_DTYPE_I32, 2},
    {0x0C, WK_DTYPE_I32, 4}, {0x0D, WK_DTYPE_F32, 4}, {0x0E, WK_DTYPE_F64, 8},
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Read exactly n bytes; false at a short read. */
static bool read_all(gzFile f, void *buf, size_t n)
{
    char *p = buf;
    while (n > 0) {
        unsigned chunk = n > (1u << 30) ? (1u << 30) : (unsigned)n;
        int got = gzread(f, p, chunk);
        if (got <= 0) return false;
        p += got;
        n -= (size_t)got;
    }
    return true;
}

/* Big-endian elements of `bytes` each, in place, to the host's dtype. */
static void convert(void *data, int64_t n, uint8_t code)
{
    uint8_t *b = data;
    switch (code) {
    case 0x09: /* signed bytes widen to int32: walk backwards to convert in place */
        for (int64_t i = n - 1; i >= 0; i--) ((int32_t *)data)[i] = (int8_t)b[i];
        break;
    case 0x0B:
        for (int64_t i = n - 1; i >= 0; i--)
            ((int32_t *)data)[i] = (int16_t)((uint16_t)b[2 * i] << 8 | b[2 * i + 1]);
        break;
    case 0x0C:
    case 0x0D:
        for (int64_t i = 0; i < n; i++) {
            uint32_t v = be32(b + 4 * i);
            memcpy(b + 4 * i, &v, 4);
        }
        break;
    case 0x0E:
        for (int64_t i = 0; i < n; i++) {
            uint64_t v = (uint64_t)be32(b + 8 * i) << 32 | be32(b + 8 * i + 4);
            memcpy(b + 8 * i, &v, 8);
        }
        break;
    default: break;
    }
}

wk_tensor *wk_idx_read(const char *path)
{
    if (!path) {
        wk_set_error("idx_read: path is NULL");
        return NULL;
    }
    gzFile f = gzopen(path, "rb");
    if (!f) {
        wk_set_error("idx_read: cannot open %s: %s", path, strerror(errno ? errno : ENOENT));
        return NULL;
    }
    uint8_t head[4];
    wk_tensor *t = NULL;
    if (!read_all(f, head, 4)) {
        wk_set_error("idx_read: %s is shorter than an IDX header (4 bytes)", path);
        goto done;
    }
    int type = -1;
    for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
        if (idx_types[i].code == head[2]) type = (int)i;
    if (head[0] || head[1] || type < 0 || head[3] < 1 || head[3] > WK_MAX_DIMS) {
        wk_set_error("idx_read: %s has magic number 0x%02x%02x%02x%02x; expected 0x0000TTNN "
                     "with type TT in 08,09,0B,0C,0D,0E and 1 <= NN <= %d dims (is it an IDX "
                     "file?)",
                     path, head[0], head[1], head[2], head[3], WK_MAX_DIMS);
        goto done;
    }
    int ndim = head[3];
    int64_t shape[WK_MAX_DIMS];
    for (int d = 0; d < ndim; d++) {
        uint8_t b[4];
        if (!read_all(f, b, 4)) {
            wk_set_error("idx_read: %s is truncated in its header (dim %d of %d)", path, d, ndim);
            goto done;
        }
        shape[d] = be32(b);
    }
    t = wk_empty(shape, ndim, idx_types[type].dtype);
    if (!t) goto done;
    wki_make_persistent(t);
    int64_t n = wk_numel(t);
    size_t bytes = (size_t)n * (size_t)idx_types[type].bytes;
    if (!read_all(f, wk_data(t), bytes)) {
        wk_set_error("idx_read: %s is truncated: its header announces %s elements of %d bytes "
                     "(%zu bytes of data)",
                     path, wki_dims_s(shape, ndim), idx_types[type].bytes, bytes);
        wk_tensor_free(t);
        t = NULL;
        goto done;
    }
    convert(wk_data(t), n, head[2]);
done:
    gzclose(f);
    return t;
}

int wk_idx_write(const char *path, const wk_tensor *t, bool gzip)
{
    if (!path || !t || !wk_is_contiguous(t)) {
        wk_set_error("idx_write: needs a path and a contiguous tensor");
        return -1;
    }
    uint8_t code;
    switch (t->dtype) {
    case WK_DTYPE_U8: code = 0x08; break;
    case WK_DTYPE_I32: code = 0x0C; break;
    case WK_DTYPE_F32: code = 0x0D; break;
    case WK_DTYPE_F64: code = 0x0E; break;
    default:
        wk_set_error("idx_write: dtype %s has no IDX type", wk_dtype_name(t->dtype));
        return -1;
    }
    gzFile f = gzopen(path, gzip ? "wb6" : "wbT");
    if (!f) {
        wk_set_error("idx_write: cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    uint8_t head[4] = {0, 0, code, (uint8_t)(t->ndim ? t->ndim : 1)};
    bool ok = gzwrite(f, head, 4) == 4;
    for (int d = 0; d < (t->ndim ? t->ndim : 1) && ok; d++) {
        uint32_t v = t->ndim ? (uint32_t)t->shape[d] : 1;
        uint8_t b[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
        ok = gzwrite(f, b, 4) == 4;
    }
    size_t es = wk_dtype_size(t->dtype);
    const uint8_t *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t) && ok; i++) {
        uint8_t b[8];
        for (size_t k = 0; k < es; k++) b[k] = p[i * (int64_t)es + (int64_t)(es - 1 - k)];
        ok = gzwrite(f, es == 1 ? p + i : b, (unsigned)es) == (int)es;
    }
    if (gzclose(f) != Z_OK) ok = false;
    if (!ok) {
        wk_set_error("idx_write: failed writing %s", path);
        return -1;
    }
    return 0;
}

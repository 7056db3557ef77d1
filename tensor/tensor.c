/* Storage, tensor handles, creation of empty tensors, and properties. */
#include <math.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "tensor-impl.h"

wk_storage *wki_storage_new(size_t nbytes, wk_device device)
{
    if (device.type != WK_DEVICE_CPU) {
        char d[32];
        wk_set_error("storage: no allocator for device %s", wk_device_str(device, d, sizeof d));
        return NULL;
    }
    wk_storage *s = wki_struct_alloc(sizeof *s);
    if (!s) return NULL;
    s->data = wki_alloc(nbytes, &s->capacity);
    if (!s->data) {
        wki_struct_free(s, sizeof *s);
        return NULL;
    }
    s->nbytes = nbytes;
    s->device = device;
    atomic_init(&s->refcount, 1);
    return s;
}

void wki_storage_retain(wk_storage *s) { atomic_fetch_add_explicit(&s->refcount, 1, memory_order_relaxed); }

void wki_storage_release(wk_storage *s)
{
    if (!s || atomic_fetch_sub_explicit(&s->refcount, 1, memory_order_acq_rel) != 1) return;
    if (!s->external) wki_dealloc(s->data, s->capacity);
    wki_struct_free(s, sizeof *s);
}

wk_tensor *wki_tensor_alloc(void)
{
    wk_tensor *t = wki_struct_alloc(sizeof *t);
    if (!t) return NULL;
    t->refs = 1;
    wki_frame_register(t);
    return t;
}

void wki_tensor_retain(wk_tensor *t) { t->refs++; }

void wki_tensor_release(wk_tensor *t)
{
    if (!t) return;
    if (t->refs > 1) t->refs--; /* the frame or another holder still owns it */
    else wk_tensor_free(t);
}

void wki_make_persistent(wk_tensor *t)
{
    wki_frame_unregister(t);
    t->frame = 0;
}

void wk_tensor_free(wk_tensor *t)
{
    if (!t) return;
    /* Whoever frees it, the handle leaves its frame; nodes may still hold it. */
    wki_make_persistent(t);
    if (--t->refs > 0) return;
    if (t->grad_fn) wki_node_free(t->grad_fn);
    wki_storage_release(t->storage);
    if (t->grad) wk_tensor_free(t->grad);
    wki_struct_free(t, sizeof *t);
}

void wki_contiguous_strides(const int64_t *shape, int ndim, int64_t *strides)
{
    int64_t s = 1;
    for (int i = ndim - 1; i >= 0; i--) {
        strides[i] = s;
        s *= shape[i] > 1 ? shape[i] : 1;
    }
}

int64_t wki_shape_numel(const int64_t *shape, int ndim)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) return 0;
        if (__builtin_mul_overflow(n, shape[i], &n)) return -1;
    }
    return n;
}

static bool check_shape(const char *op, const int64_t *shape, int ndim, wk_dtype dtype)
{
    if (ndim < 0 || ndim > WK_MAX_DIMS) {
        wk_set_error("%s: %d dims given, expected 0..%d", op, ndim, WK_MAX_DIMS);
        return false;
    }
    if (ndim > 0 && !shape) {
        wk_set_error("%s: shape is NULL for %d dims", op, ndim);
        return false;
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            wk_set_error("%s: negative size %lld in shape %s", op, (long long)shape[i],
                         wki_dims_s(shape, ndim));
            return false;
        }
    }
    int64_t n = wki_shape_numel(shape, ndim);
    if (n < 0 || (uint64_t)n > (uint64_t)INT64_MAX / 16) {
        wk_set_error("%s: shape %s has too many elements", op, wki_dims_s(shape, ndim));
        return false;
    }
    if ((unsigned)dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", op, (int)dtype);
        return false;
    }
    return true;
}

wk_tensor *wki_empty_on(const int64_t *shape, int ndim, wk_dtype dtype, wk_device device)
{
    if (!check_shape("empty", shape, ndim, dtype)) return NULL;
    int64_t n = wki_shape_numel(shape, ndim);
    wk_storage *s = wki_storage_new((size_t)n * wk_dtype_size(dtype), device);
    if (!s) return NULL;
    wk_tensor *t = wki_tensor_alloc();
    if (!t) {
        wki_storage_release(s);
        return NULL;
    }
    t->storage = s;
    t->ndim = ndim;
    t->dtype = dtype;
    t->device = device;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    wki_contiguous_strides(t->shape, ndim, t->strides);
    return t;
}

wk_tensor *wk_empty(const int64_t *shape, int ndim, wk_dtype dtype)
{
    return wki_empty_on(shape, ndim, dtype, WK_CPU);
}

wk_tensor *wk_empty_like(const wk_tensor *t)
{
    if (!WKI_CHECK("empty_like", t)) return NULL;
    return wki_empty_on(t->shape, t->ndim, t->dtype, t->device);
}

wk_tensor *wk_from_array(const void *data, const int64_t *shape, int ndim, wk_dtype dtype)
{
    if (!data) {
        wk_set_error("from_array: data is NULL");
        return NULL;
    }
    wk_tensor *t = wk_empty(shape, ndim, dtype);
    if (t) memcpy(t->storage->data, data, (size_t)wk_numel(t) * wk_dtype_size(dtype));
    return t;
}

wk_tensor *wk_from_blob(void *data, const int64_t *shape, int ndim, wk_dtype dtype)
{
    if (!check_shape("from_blob", shape, ndim, dtype)) return NULL;
    if (!data && wki_shape_numel(shape, ndim) > 0) {
        wk_set_error("from_blob: data is NULL");
        return NULL;
    }
    wk_storage *s = wki_struct_alloc(sizeof *s);
    if (!s) return NULL;
    s->data = data;
    s->nbytes = s->capacity = (size_t)wki_shape_numel(shape, ndim) * wk_dtype_size(dtype);
    s->device = WK_CPU;
    s->external = true;
    atomic_init(&s->refcount, 1);
    wk_tensor *t = wki_tensor_alloc();
    if (!t) {
        wki_storage_release(s);
        return NULL;
    }
    t->storage = s;
    t->ndim = ndim;
    t->dtype = dtype;
    t->device = WK_CPU;
    if (ndim) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    wki_contiguous_strides(t->shape, ndim, t->strides);
    return t;
}

wk_tensor *wki_tensor_view_of(const wk_tensor *t)
{
    wk_tensor *v = wki_tensor_alloc();
    if (!v) return NULL;
    v->storage = t->storage;
    wki_storage_retain(t->storage);
    v->offset = t->offset;
    v->ndim = t->ndim;
    v->dtype = t->dtype;
    v->device = t->device;
    memcpy(v->shape, t->shape, sizeof v->shape);
    memcpy(v->strides, t->strides, sizeof v->strides);
    return v;
}

int64_t wk_numel(const wk_tensor *t) { return t ? wki_shape_numel(t->shape, t->ndim) : 0; }

bool wk_is_contiguous(const wk_tensor *t)
{
    if (!t) return false;
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] == 0) return true;
        if (t->shape[i] != 1 && t->strides[i] != s) return false;
        s *= t->shape[i];
    }
    return true;
}

int64_t wk_size(const wk_tensor *t, int dim)
{
    if (!WKI_CHECK("size", t)) return -1;
    int d = wki_norm_dim("size", dim, t->ndim);
    if (d < 0) return -1;
    return t->ndim ? t->shape[d] : 1;
}

void *wk_data(const wk_tensor *t)
{
    if (!t) return NULL;
    return (char *)t->storage->data + t->offset * (int64_t)wk_dtype_size(t->dtype);
}

bool wk_same_shape(const wk_tensor *a, const wk_tensor *b)
{
    if (!a || !b || a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

static double load_as_double(wk_dtype dtype, const void *p)
{
    switch (dtype) {
    case WK_DTYPE_F32: return *(const float *)p;
    case WK_DTYPE_F64: return *(const double *)p;
    case WK_DTYPE_I32: return *(const int32_t *)p;
    case WK_DTYPE_I64: return (double)*(const int64_t *)p;
    case WK_DTYPE_U8: return *(const uint8_t *)p;
    case WK_DTYPE_BOOL: return *(const uint8_t *)p ? 1.0 : 0.0;
    case WK_DTYPE_BF16: return wk_bf16_to_f32(*(const uint16_t *)p);
    case WK_DTYPE_F16: return wk_f16_to_f32(*(const uint16_t *)p);
    default: return NAN;
    }
}

double wk_item(const wk_tensor *t)
{
    if (!WKI_CHECK("item", t)) return NAN;
    if (wk_numel(t) != 1) {
        wk_set_error("item: expected a tensor with one element, got shape %s", wki_shape_s(t));
        return NAN;
    }
    if (!wki_require_cpu("item", t)) return NAN;
    return load_as_double(t->dtype, wk_data(t));
}

double wk_get(const wk_tensor *t, const int64_t *index)
{
    if (!WKI_CHECK("get", t)) return NAN;
    if (!wki_require_cpu("get", t)) return NAN;
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (index[i] < 0 || index[i] >= t->shape[i]) {
            wk_set_error("get: index %lld is out of range for dim %d of shape %s",
                         (long long)index[i], i, wki_shape_s(t));
            return NAN;
        }
        off += index[i] * t->strides[i];
    }
    return load_as_double(t->dtype,
                          (const char *)wk_data(t) + off * (int64_t)wk_dtype_size(t->dtype));
}

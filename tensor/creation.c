/* Creation ops: constants, ranges and identity matrices. One front-end (create) that
 * validates, allocates and dispatches to the device's kernel; the CPU kernels below. */
#include <math.h>
#include <string.h>

#include "creation.h"
#include "profiler-impl.h"
#include "tensor-impl.h"

#define GRAIN 32768

typedef enum {
    WK_CREATION_FULL,
    WK_CREATION_ARANGE,
    WK_CREATION_LINSPACE,
    WK_CREATION_EYE,
    WK_CREATION_COUNT
} creation_op;

static const struct {
    const char *name;
    bool numeric_only; /* f32, f64, i32, i64, u8 only (no bool, no storage types) */
} creation_info[] = {
    [WK_CREATION_FULL] = {"full", false},
    [WK_CREATION_ARANGE] = {"arange", true},
    [WK_CREATION_LINSPACE] = {"linspace", true},
    [WK_CREATION_EYE] = {"eye", false},
};
_Static_assert(sizeof creation_info / sizeof creation_info[0] == WK_CREATION_COUNT,
               "creation_info must have one row per creation op");

/* The op's parameters: full uses value; arange start/step; linspace start/end/steps. */
typedef struct {
    double value, start, end, step;
    int64_t steps;
} creation_args;

/* A kernel fills the freshly allocated contiguous `out`; false with an error if it
 * cannot. */
typedef bool (*creation_kernel)(wk_tensor *out, const creation_args *a);

/* ---- CPU kernels ---- */

static bool cpu_full(wk_tensor *out, const creation_args *a)
{
    return wk_fill_(out, a->value) != NULL;
}

#define ARANGE_LOOP(T, S, STEP)                                                          \
    do {                                                                                 \
        T *p = data;                                                                     \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t i = 0; i < n; i++) p[i] = (T)((S) + (STEP) * i);                    \
    } while (0)

static bool cpu_arange(wk_tensor *out, const creation_args *a)
{
    int64_t n = wk_numel(out);
    void *data = wk_data(out);
    int nt = wki_threads_for(n, GRAIN);
    /* Floats accumulate in double (torch's CPU acc type), integers in int64. */
    double fs = a->start, fst = a->step;
    int64_t is = (int64_t)a->start, ist = (int64_t)a->step;
    switch (out->dtype) {
    case WK_DTYPE_F32: ARANGE_LOOP(float, fs, fst); break;
    case WK_DTYPE_F64: ARANGE_LOOP(double, fs, fst); break;
    case WK_DTYPE_I32: ARANGE_LOOP(int32_t, is, ist); break;
    case WK_DTYPE_I64: ARANGE_LOOP(int64_t, is, ist); break;
    case WK_DTYPE_U8: ARANGE_LOOP(uint8_t, is, ist); break;
    default: return false; /* excluded by the front-end */
    }
    return true;
}

/* torch's linspace: start + step*i for the first half, end - step*(steps-1-i) for the
 * second, in the scalar type FT (double for integer outputs). */
#define LINSPACE_LOOP(T, FT, S, E)                                                       \
    do {                                                                                 \
        T *p = data;                                                                     \
        const FT s_ = (FT)(S), e_ = (FT)(E);                                             \
        const FT step_ = (e_ - s_) / (FT)(n - 1);                                        \
        const int64_t half_ = n / 2;                                                     \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t i = 0; i < n; i++)                                                  \
            p[i] = (T)(i < half_ ? s_ + step_ * (FT)i : e_ - step_ * (FT)(n - 1 - i));   \
    } while (0)

static bool cpu_linspace(wk_tensor *out, const creation_args *a)
{
    int64_t n = a->steps;
    if (n == 1) return wk_fill_(out, a->start) != NULL;
    void *data = wk_data(out);
    int nt = wki_threads_for(n, GRAIN);
    /* Integer outputs: the bounds are truncated to integers first, as torch does. */
    double is = trunc(a->start), ie = trunc(a->end);
    switch (out->dtype) {
    case WK_DTYPE_F32: LINSPACE_LOOP(float, float, a->start, a->end); break;
    case WK_DTYPE_F64: LINSPACE_LOOP(double, double, a->start, a->end); break;
    case WK_DTYPE_I32: LINSPACE_LOOP(int32_t, double, is, ie); break;
    case WK_DTYPE_I64: LINSPACE_LOOP(int64_t, double, is, ie); break;
    case WK_DTYPE_U8: LINSPACE_LOOP(uint8_t, double, is, ie); break;
    default: return false;
    }
    return true;
}

static bool cpu_eye(wk_tensor *out, const creation_args *a)
{
    (void)a;
    if (!wk_fill_(out, 0)) return false;
    int64_t n = out->shape[0], m = out->shape[1];
    if (n == 0 || m == 0) return true;
    /* The diagonal as a strided view, filled by the generic fill. */
    wk_tensor *diag = wki_tensor_view_of(out);
    if (!diag) return false;
    diag->ndim = 1;
    diag->shape[0] = n < m ? n : m;
    diag->strides[0] = m + 1;
    bool ok = wk_fill_(diag, 1) != NULL;
    wk_tensor_free(diag);
    return ok;
}

static const creation_kernel kernels[WK_DEVICE_COUNT][WK_CREATION_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_full, cpu_arange, cpu_linspace, cpu_eye},
    /* [WK_DEVICE_CUDA]: filled by the CUDA backend */
};

/* ---- the front-end ---- */

static bool check_shape(const char *op, const int64_t *shape, int ndim)
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
    if (n < 0 || n > INT64_MAX / 16) {
        wk_set_error("%s: shape %s has too many elements", op, wki_dims_s(shape, ndim));
        return false;
    }
    return true;
}

static bool check_dtype(const char *op, wk_dtype dtype, bool numeric_only)
{
    if ((unsigned)dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", op, (int)dtype);
        return false;
    }
    if (!numeric_only) return true;
    if (dtype == WK_DTYPE_BF16 || dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s is a storage type; make a float32 tensor and convert it with "
                     "wk_to_dtype",
                     op, wk_dtype_name(dtype));
        return false;
    }
    if (dtype == WK_DTYPE_BOOL) {
        wk_set_error("%s: dtype bool is not supported (expected float32, float64, int32, "
                     "int64 or uint8)",
                     op);
        return false;
    }
    return true;
}

/* Validate, allocate on `device`, run the device's kernel. `opname` is the public name
 * reported in errors (e.g. "zeros_like" for a FULL). */
static wk_tensor *create(creation_op op, const char *opname, const int64_t *shape, int ndim,
                         wk_dtype dtype, wk_device device, const creation_args *a)
{
    WKI_PROF_OP_SHAPE(opname, shape, ndim, dtype);
    if (!check_shape(opname, shape, ndim) ||
        !check_dtype(opname, dtype, creation_info[op].numeric_only))
        return NULL;
    creation_kernel k =
        (unsigned)device.type < WK_DEVICE_COUNT ? kernels[device.type][op] : NULL;
    if (!k) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", opname,
                     wk_device_str(device, d, sizeof d));
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, ndim, dtype, device);
    if (!out) return NULL;
    if (!k(out, a)) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

static wk_tensor *full_on(const char *opname, const int64_t *shape, int ndim, double value,
                          wk_dtype dtype, wk_device device)
{
    creation_args a = {.value = value};
    return create(WK_CREATION_FULL, opname, shape, ndim, dtype, device, &a);
}

wk_tensor *wk_zeros(const int64_t *shape, int ndim, wk_dtype dtype)
{
    return full_on("zeros", shape, ndim, 0, dtype, WK_CPU);
}

wk_tensor *wk_ones(const int64_t *shape, int ndim, wk_dtype dtype)
{
    return full_on("ones", shape, ndim, 1, dtype, WK_CPU);
}

wk_tensor *wk_full(const int64_t *shape, int ndim, double value, wk_dtype dtype)
{
    return full_on("full", shape, ndim, value, dtype, WK_CPU);
}

wk_tensor *wk_zeros_like(const wk_tensor *t)
{
    if (!WKI_CHECK("zeros_like", t)) return NULL;
    return full_on("zeros_like", t->shape, t->ndim, 0, t->dtype, t->device);
}

wk_tensor *wk_ones_like(const wk_tensor *t)
{
    if (!WKI_CHECK("ones_like", t)) return NULL;
    return full_on("ones_like", t->shape, t->ndim, 1, t->dtype, t->device);
}

wk_tensor *wk_full_like(const wk_tensor *t, double value)
{
    if (!WKI_CHECK("full_like", t)) return NULL;
    return full_on("full_like", t->shape, t->ndim, value, t->dtype, t->device);
}

wk_tensor *wk_scalar(double value, wk_dtype dtype)
{
    return full_on("scalar", NULL, 0, value, dtype, WK_CPU);
}

wk_tensor *wk_arange(double start, double end, double step, wk_dtype dtype)
{
    if (!check_dtype("arange", dtype, true)) return NULL;
    if (!isfinite(start) || !isfinite(end) || isnan(step)) {
        wk_set_error("arange: unsupported range %g -> %g step %g (expected finite values)",
                     start, end, step);
        return NULL;
    }
    double n;
    if (wk_dtype_is_float(dtype)) {
        if (step == 0) {
            wk_set_error("arange: step must be nonzero");
            return NULL;
        }
        n = ceil((end - start) / step);
    } else {
        /* Integer outputs: torch truncates the arguments to integers first. */
        if (fabs(start) >= 9.2e18 || fabs(end) >= 9.2e18 || fabs(step) >= 9.2e18) {
            wk_set_error("arange: range %g -> %g step %g is out of range for %s", start, end,
                         step, wk_dtype_name(dtype));
            return NULL;
        }
        start = trunc(start), end = trunc(end);
        if (trunc(step) == 0) {
            wk_set_error("arange: step must be nonzero (step %g truncates to 0 for %s)",
                         step, wk_dtype_name(dtype));
            return NULL;
        }
        step = trunc(step);
        n = ceil((end - start) / step);
    }
    if (!((step > 0 && end >= start) || (step < 0 && end <= start))) {
        wk_set_error("arange: step %g has the wrong sign for the range %g -> %g (upper "
                     "bound and lower bound inconsistent with step sign)",
                     step, start, end);
        return NULL;
    }
    if (!(n <= (double)(INT64_MAX / 16))) {
        wk_set_error("arange: range %g -> %g step %g has too many elements (%g)", start, end,
                     step, n);
        return NULL;
    }
    creation_args a = {.start = start, .end = end, .step = step};
    int64_t len = (int64_t)n;
    return create(WK_CREATION_ARANGE, "arange", &len, 1, dtype, WK_CPU, &a);
}

wk_tensor *wk_linspace(double start, double end, int64_t steps, wk_dtype dtype)
{
    if (steps < 0) {
        wk_set_error("linspace: number of steps must be non-negative, got %lld",
                     (long long)steps);
        return NULL;
    }
    creation_args a = {.start = start, .end = end, .steps = steps};
    return create(WK_CREATION_LINSPACE, "linspace", &steps, 1, dtype, WK_CPU, &a);
}

wk_tensor *wk_eye(int64_t n, int64_t m, wk_dtype dtype)
{
    if (n < 0) {
        wk_set_error("eye: n must be greater or equal to 0, got %lld", (long long)n);
        return NULL;
    }
    if (m < 0) m = n;
    creation_args a = {0};
    return create(WK_CREATION_EYE, "eye", (const int64_t[]){n, m}, 2, dtype, WK_CPU, &a);
}

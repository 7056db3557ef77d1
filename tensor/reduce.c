/* The reduction family's front-end: validation of dtypes and dims, output shapes and
 * dtypes, dispatch to the device's kernel (tensor/cpu/reduce.c). */
#include <math.h>
#include <stdio.h>

#include "cpu/reduce-impl.h"

enum reduce_out { OUT_SAME, OUT_SUM, OUT_INDEX }; /* dtype of the result */
enum reduce_dims { DIMS_ANY, DIMS_ONE, DIMS_ONE_OR_ALL };

static const struct reduce_info {
    const char *name;
    enum reduce_out out;
    enum reduce_dims dims;
    bool float_only;  /* the result needs a float dtype */
    bool no_identity; /* a 0-size reduced dim is an error */
    bool same_shape;  /* softmax: the result has x's shape */
} reduce_info[] = {
    [WK_REDUCE_SUM] = {"sum", OUT_SUM, DIMS_ANY, false, false, false},
    [WK_REDUCE_MEAN] = {"mean", OUT_SAME, DIMS_ANY, true, false, false},
    [WK_REDUCE_AMAX] = {"amax", OUT_SAME, DIMS_ANY, false, true, false},
    [WK_REDUCE_AMIN] = {"amin", OUT_SAME, DIMS_ANY, false, true, false},
    [WK_REDUCE_VAR] = {"var", OUT_SAME, DIMS_ANY, true, false, false},
    [WK_REDUCE_STD] = {"std", OUT_SAME, DIMS_ANY, true, false, false},
    [WK_REDUCE_LOGSUMEXP] = {"logsumexp", OUT_SAME, DIMS_ANY, true, false, false},
    [WK_REDUCE_NORM] = {"norm", OUT_SAME, DIMS_ANY, true, false, false},
    [WK_REDUCE_MAX] = {"max_dim", OUT_SAME, DIMS_ONE, false, true, false},
    [WK_REDUCE_MIN] = {"min_dim", OUT_SAME, DIMS_ONE, false, true, false},
    [WK_REDUCE_ARGMAX] = {"argmax", OUT_INDEX, DIMS_ONE_OR_ALL, false, true, false},
    [WK_REDUCE_ARGMIN] = {"argmin", OUT_INDEX, DIMS_ONE_OR_ALL, false, true, false},
    [WK_REDUCE_SOFTMAX] = {"softmax", OUT_SAME, DIMS_ONE, true, false, true},
    [WK_REDUCE_LOG_SOFTMAX] = {"log_softmax", OUT_SAME, DIMS_ONE, true, false, true},
};
_Static_assert(sizeof reduce_info / sizeof reduce_info[0] == WK_REDUCE_COUNT,
               "reduce_info needs one entry per wk_reduce_op");

/* Kernels per device type; a backend fills its entry. */
static const wki_reduce_kernel reduce_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_reduce,
    [WK_DEVICE_CUDA] = NULL,
};

const char *wk_reduce_op_name(wk_reduce_op op)
{
    return (unsigned)op < WK_REDUCE_COUNT ? reduce_info[op].name : "?";
}

/* Normalise dims into reduced[]; false with an error naming the offending dim. */
static bool parse_dims(const char *name, const wk_tensor *x, const int *dims, int ndims,
                       bool *reduced)
{
    int nd = x->ndim;
    for (int d = 0; d < WK_MAX_DIMS; d++)
        reduced[d] = ndims == 0;
    if (ndims < 0 || ndims > WK_MAX_DIMS || (ndims > 0 && !dims)) {
        wk_set_error("%s: invalid dims argument (%d dims%s) for a tensor of shape %s", name,
                     ndims, ndims > 0 && !dims ? " but dims is NULL" : "", wki_shape_s(x));
        return false;
    }
    for (int i = 0; i < ndims; i++) {
        int d = wki_norm_dim(name, dims[i], nd);
        if (d < 0) return false;
        if (nd > 0 && reduced[d]) {
            wk_set_error("%s: dim %d appears more than once in the dims of a tensor of "
                         "shape %s",
                         name, dims[i], wki_shape_s(x));
            return false;
        }
        if (nd == 0 && i > 0) {
            wk_set_error("%s: dim %d appears more than once in the dims of a 0-d tensor",
                         name, dims[i]);
            return false;
        }
        if (nd > 0) reduced[d] = true;
    }
    return true;
}

static bool check_dtype(const struct reduce_info *info, const wk_tensor *x)
{
    if (x->dtype == WK_DTYPE_BF16 || x->dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s is a storage dtype (tensor of shape %s); convert with "
                     "wk_to_dtype(x, WK_DTYPE_F32) first",
                     info->name, wk_dtype_name(x->dtype), wki_shape_s(x));
        return false;
    }
    if ((unsigned)x->dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", info->name, (int)x->dtype);
        return false;
    }
    if (info->float_only && !wk_dtype_is_float(x->dtype)) {
        wk_set_error("%s: expected a float dtype (float32 or float64), got %s (tensor of "
                     "shape %s); convert with wk_to_dtype first",
                     info->name, wk_dtype_name(x->dtype), wki_shape_s(x));
        return false;
    }
    return true;
}

wk_tensor *wk_reduce(wk_reduce_op op, wk_tensor *x, const int *dims, int ndims, bool keepdim,
                     double arg, wk_tensor **indices)
{
    if (indices) *indices = NULL;
    if ((unsigned)op >= WK_REDUCE_COUNT) {
        wk_set_error("reduce: invalid op %d", (int)op);
        return NULL;
    }
    const struct reduce_info *info = &reduce_info[op];
    if (!WKI_CHECK(info->name, x)) return NULL;
    wki_reduce_kernel kernel = reduce_kernels[x->device.type];
    if (!kernel) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", info->name,
                     wk_device_str(x->device, d, sizeof d));
        return NULL;
    }
    if (!check_dtype(info, x)) return NULL;
    if (indices && op != WK_REDUCE_MAX && op != WK_REDUCE_MIN) {
        wk_set_error("%s: only max_dim and min_dim return indices (pass NULL)", info->name);
        return NULL;
    }
    if ((info->dims == DIMS_ONE && ndims != 1) ||
        (info->dims == DIMS_ONE_OR_ALL && ndims != 0 && ndims != 1)) {
        wk_set_error("%s: expected %s dim, got %d dims (tensor of shape %s)", info->name,
                     info->dims == DIMS_ONE ? "exactly one" : "one (or all: none given)",
                     ndims, wki_shape_s(x));
        return NULL;
    }
    bool reduced[WK_MAX_DIMS];
    if (!parse_dims(info->name, x, dims, ndims, reduced)) return NULL;
    if (op == WK_REDUCE_NORM && isnan(arg)) {
        wk_set_error("norm: p is NaN; expected a number, INFINITY or -INFINITY");
        return NULL;
    }
    bool no_identity = info->no_identity || (op == WK_REDUCE_NORM && isinf(arg));
    for (int d = 0; d < x->ndim && no_identity; d++) {
        if (reduced[d] && x->shape[d] == 0) {
            wk_set_error("%s: cannot reduce an empty dim %d of a tensor of shape %s (no "
                         "identity)",
                         info->name, d, wki_shape_s(x));
            return NULL;
        }
    }

    int64_t shape[WK_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < x->ndim; d++) {
        if (info->same_shape || !reduced[d]) shape[nd++] = x->shape[d];
        else if (keepdim) shape[nd++] = 1;
    }
    wk_dtype dtype = x->dtype;
    if (info->out == OUT_INDEX || (info->out == OUT_SUM && !wk_dtype_is_float(dtype)))
        dtype = WK_DTYPE_I64;
    wk_tensor *out = wki_empty_on(shape, nd, dtype, x->device);
    wk_tensor *idx = indices && out ? wki_empty_on(shape, nd, WK_DTYPE_I64, x->device) : NULL;
    if (!out || (indices && !idx) || !kernel(op, x, reduced, arg, out, idx)) {
        wk_tensor_free(out);
        wk_tensor_free(idx);
        return NULL;
    }
    if (indices) *indices = idx;
    return out;
}

wk_tensor *wk_sum(wk_tensor *x, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_SUM, x, dims, ndims, keepdim, 0, NULL);
}

wk_tensor *wk_mean(wk_tensor *x, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_MEAN, x, dims, ndims, keepdim, 0, NULL);
}

wk_tensor *wk_amax(wk_tensor *x, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_AMAX, x, dims, ndims, keepdim, 0, NULL);
}

wk_tensor *wk_amin(wk_tensor *x, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_AMIN, x, dims, ndims, keepdim, 0, NULL);
}

wk_tensor *wk_var(wk_tensor *x, const int *dims, int ndims, double correction, bool keepdim)
{
    return wk_reduce(WK_REDUCE_VAR, x, dims, ndims, keepdim, correction, NULL);
}

wk_tensor *wk_std(wk_tensor *x, const int *dims, int ndims, double correction, bool keepdim)
{
    return wk_reduce(WK_REDUCE_STD, x, dims, ndims, keepdim, correction, NULL);
}

wk_tensor *wk_logsumexp(wk_tensor *x, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_LOGSUMEXP, x, dims, ndims, keepdim, 0, NULL);
}

wk_tensor *wk_norm(wk_tensor *x, double p, const int *dims, int ndims, bool keepdim)
{
    return wk_reduce(WK_REDUCE_NORM, x, dims, ndims, keepdim, p, NULL);
}

wk_tensor *wk_max_dim(wk_tensor *x, int dim, bool keepdim, wk_tensor **indices)
{
    return wk_reduce(WK_REDUCE_MAX, x, &dim, 1, keepdim, 0, indices);
}

wk_tensor *wk_min_dim(wk_tensor *x, int dim, bool keepdim, wk_tensor **indices)
{
    return wk_reduce(WK_REDUCE_MIN, x, &dim, 1, keepdim, 0, indices);
}

wk_tensor *wk_argmax(wk_tensor *x, int dim, bool keepdim)
{
    return wk_reduce(WK_REDUCE_ARGMAX, x, &dim, 1, keepdim, 0, NULL);
}

wk_tensor *wk_argmin(wk_tensor *x, int dim, bool keepdim)
{
    return wk_reduce(WK_REDUCE_ARGMIN, x, &dim, 1, keepdim, 0, NULL);
}

wk_tensor *wk_softmax(wk_tensor *x, int dim)
{
    return wk_reduce(WK_REDUCE_SOFTMAX, x, &dim, 1, false, 0, NULL);
}

wk_tensor *wk_log_softmax(wk_tensor *x, int dim)
{
    return wk_reduce(WK_REDUCE_LOG_SOFTMAX, x, &dim, 1, false, 0, NULL);
}

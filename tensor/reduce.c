/* The reduction family's front-end: validation of dtypes and dims, output shapes and
 * dtypes, dispatch to the device's kernel (tensor/cpu/reduce.c), autograd records; and
 * the family's backward functions. */
#include <math.h>
#include <stdio.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "cpu/reduce-impl.h"
#include "creation.h"
#include "elementwise.h"
#include "index.h"

static int sum_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int extreme_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int var_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int logsumexp_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int norm_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int max_dim_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int softmax_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);

enum reduce_out { OUT_SAME, OUT_SUM, OUT_INDEX }; /* dtype of the result */
enum reduce_dims { DIMS_ANY, DIMS_ONE, DIMS_ONE_OR_ALL };

static const struct reduce_info {
    const char *name;
    enum reduce_out out;
    enum reduce_dims dims;
    bool float_only;  /* the result needs a float dtype */
    bool no_identity; /* a 0-size reduced dim is an error */
    bool same_shape;  /* softmax: the result has x's shape */
    wki_backward_fn backward; /* NULL: not differentiable (index results) */
    bool save_out;    /* backward reads the result */
} reduce_info[] = {
    [WK_REDUCE_SUM] = {"sum", OUT_SUM, DIMS_ANY, false, false, false, sum_backward, false},
    [WK_REDUCE_MEAN] = {"mean", OUT_SAME, DIMS_ANY, true, false, false, sum_backward, false},
    [WK_REDUCE_AMAX] = {"amax", OUT_SAME, DIMS_ANY, false, true, false, extreme_backward,
                        true},
    [WK_REDUCE_AMIN] = {"amin", OUT_SAME, DIMS_ANY, false, true, false, extreme_backward,
                        true},
    [WK_REDUCE_VAR] = {"var", OUT_SAME, DIMS_ANY, true, false, false, var_backward, false},
    [WK_REDUCE_STD] = {"std", OUT_SAME, DIMS_ANY, true, false, false, var_backward, true},
    [WK_REDUCE_LOGSUMEXP] = {"logsumexp", OUT_SAME, DIMS_ANY, true, false, false,
                             logsumexp_backward, true},
    [WK_REDUCE_NORM] = {"norm", OUT_SAME, DIMS_ANY, true, false, false, norm_backward, true},
    [WK_REDUCE_MAX] = {"max_dim", OUT_SAME, DIMS_ONE, false, true, false, max_dim_backward,
                       false},
    [WK_REDUCE_MIN] = {"min_dim", OUT_SAME, DIMS_ONE, false, true, false, max_dim_backward,
                       false},
    [WK_REDUCE_ARGMAX] = {"argmax", OUT_INDEX, DIMS_ONE_OR_ALL, false, true, false, NULL,
                          false},
    [WK_REDUCE_ARGMIN] = {"argmin", OUT_INDEX, DIMS_ONE_OR_ALL, false, true, false, NULL,
                          false},
    [WK_REDUCE_SOFTMAX] = {"softmax", OUT_SAME, DIMS_ONE, true, false, true, softmax_backward,
                           true},
    [WK_REDUCE_LOG_SOFTMAX] = {"log_softmax", OUT_SAME, DIMS_ONE, true, false, true,
                               softmax_backward, true},
};
_Static_assert(sizeof reduce_info / sizeof reduce_info[0] == WK_REDUCE_COUNT,
               "reduce_info needs one entry per wk_reduce_op");

/* Kernels per device type; a backend fills its entry. */
static const wki_reduce_kernels reduce_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {wki_cpu_reduce, wki_cpu_softmax_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL},
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

/* Record out's autograd node: the reduced dims as a bit mask, keepdim and arg, and
 * what backward reads. */
static bool record(wk_reduce_op op, wk_tensor *x, const bool *reduced, bool keepdim,
                   double arg, wk_tensor *out, wk_tensor *idx)
{
    wki_node *n = wki_node_new(out, reduce_info[op].name, reduce_info[op].backward, 1,
                               (wk_tensor *const[]){x});
    if (!n) return false;
    int64_t mask = 0;
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) mask |= (int64_t)1 << d;
    n->i[0] = op;
    n->i[1] = mask;
    n->i[2] = keepdim;
    n->f[0] = arg;
    if (reduce_info[op].save_out) {
        /* A separate handle on out's data: the node must not hold out itself (a cycle). */
        wk_tensor *y = wki_tensor_view_of(out);
        if (!y) return false;
        wki_node_save(n, 0, y);
        wk_tensor_free(y);
    }
    if (idx) wki_node_save(n, 1, idx);
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
    WKI_PROF_OP(info->name, x);
    if (!WKI_CHECK(info->name, x)) return NULL;
    wki_reduce_kernel kernel = reduce_kernels[x->device.type].reduce;
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
    /* max_dim/min_dim's backward needs the indices even when the caller does not. */
    bool grad = info->backward && wki_grad_needed(1, (const wk_tensor *const[]){x});
    bool want_idx = indices || (grad && (op == WK_REDUCE_MAX || op == WK_REDUCE_MIN));
    wk_tensor *out = wki_empty_on(shape, nd, dtype, x->device);
    wk_tensor *idx = want_idx && out ? wki_empty_on(shape, nd, WK_DTYPE_I64, x->device) : NULL;
    if (!out || (want_idx && !idx) || !kernel(op, x, reduced, arg, out, idx) ||
        (grad && !record(op, x, reduced, keepdim, arg, out, idx))) {
        wk_tensor_free(out);
        wk_tensor_free(idx);
        return NULL;
    }
    if (indices) *indices = idx;
    else wk_tensor_free(idx); /* the node holds its own reference */
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

/* ---- backward ---- */

/* The reduced dims of the node's input as a dims list; returns their count. */
static int node_dims(const wki_node *n, int *dims)
{
    int nd = 0;
    for (int d = 0; d < n->inputs[0]->ndim; d++)
        if (n->i[1] >> d & 1) dims[nd++] = d;
    return nd;
}

/* Number of input elements that made each output element. */
static double node_count(const wki_node *n)
{
    double c = 1;
    for (int d = 0; d < n->inputs[0]->ndim; d++)
        if (n->i[1] >> d & 1) c *= (double)n->inputs[0]->shape[d];
    return c;
}

/* t (shaped like the output) with the removed dims back as size-1 dims, so that it
 * broadcasts against the input. A view. */
static wk_tensor *unreduce(const wki_node *n, wk_tensor *t)
{
    if (n->i[2]) return wk_alias(t);
    wk_tensor *u = t;
    for (int d = 0; d < n->inputs[0]->ndim && u; d++)
        if (n->i[1] >> d & 1) u = wk_unsqueeze(u, d);
    return u == t ? wk_alias(t) : u;
}

static int done(wk_tensor **grads, wk_tensor *g0)
{
    grads[0] = g0;
    return g0 ? 0 : -1;
}

/* sum: g broadcast back (a view); mean: g / count broadcast back. */
static int sum_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0], *gk = unreduce(n, g);
    if (n->i[0] == WK_REDUCE_MEAN) {
        double c = node_count(n);
        gk = wk_mul_scalar(gk, c > 0 ? 1 / c : 0);
    }
    return done(grads, wk_expand(gk, x->shape, x->ndim));
}

/* amax/amin: g split evenly among the elements equal to the result (as torch). */
static int extreme_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    int dims[WK_MAX_DIMS], nd = node_dims(n, dims);
    wk_tensor *mask = wk_to_dtype(wk_eq(x, unreduce(n, n->saved[0])), x->dtype);
    wk_tensor *count = wk_sum(mask, dims, nd, true);
    return done(grads, wk_mul(mask, wk_div(unreduce(n, g), count)));
}

/* var: g * 2 (x - mean) / dof; std: g (x - mean) / (dof std), 0 where std is 0. */
static int var_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    int dims[WK_MAX_DIMS], nd = node_dims(n, dims);
    double dof = node_count(n) - n->f[0];
    if (dof < 0) dof = 0;
    wk_tensor *dev = wk_sub(x, wk_mean(x, dims, nd, true)), *scale;
    if (n->i[0] == WK_REDUCE_VAR) {
        scale = wk_mul_scalar(unreduce(n, g), 2 / dof);
    } else {
        wk_tensor *s = unreduce(n, n->saved[0]);
        scale = wk_masked_fill(wk_div(unreduce(n, g), wk_mul_scalar(s, dof)),
                               wk_eq_scalar(s, 0), 0);
    }
    return done(grads, wk_mul(dev, scale));
}

/* logsumexp: g * exp(x - result), the softmax over the reduced dims. */
static int logsumexp_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    return done(grads, wk_mul(unreduce(n, g), wk_exp(wk_sub(x, unreduce(n, n->saved[0])))));
}

/* Vector norms, with torch's subgradients: 0 where the norm (p = 2, other p) or the
 * element (p < 1) is 0; the inf-norms split g among the elements reaching the norm. */
static int norm_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0], *gk = unreduce(n, g), *r = unreduce(n, n->saved[0]);
    double p = n->f[0];
    if (p == 0) return done(grads, wk_zeros_like(x));
    if (p == 1) return done(grads, wk_mul(wk_sign(x), gk));
    if (isinf(p)) {
        int dims[WK_MAX_DIMS], nd = node_dims(n, dims);
        wk_tensor *mask = wk_to_dtype(wk_eq(wk_abs(x), r), x->dtype);
        wk_tensor *count = wk_sum(mask, dims, nd, true);
        return done(grads, wk_mul(wk_mul(wk_sign(x), mask), wk_div(gk, count)));
    }
    wk_tensor *zero_norm = wk_eq_scalar(r, 0);
    if (p == 2) return done(grads, wk_mul(x, wk_masked_fill(wk_div(gk, r), zero_norm, 0)));
    /* g * sign(x) |x|^(p-1) / norm^(p-1) */
    wk_tensor *scale = wk_masked_fill(wk_mul(gk, wk_pow_scalar(r, 1 - p)), zero_norm, 0);
    wk_tensor *xs = wk_mul(wk_sign(x), wk_pow_scalar(wk_abs(x), p - 1));
    xs = wk_masked_fill(xs, wk_eq_scalar(x, 0), 0);
    return done(grads, wk_mul(xs, scale));
}

/* max_dim/min_dim: g goes to the position of the index the forward returned. */
static int max_dim_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    if (x->ndim == 0) return done(grads, wk_alias(g));
    int dims[WK_MAX_DIMS];
    node_dims(n, dims);
    return done(grads, wk_scatter_add(wk_zeros_like(x), dims[0], unreduce(n, n->saved[1]),
                                      unreduce(n, g)));
}

/* softmax / log_softmax: one fused pass per row over the saved output. */
static int softmax_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *y = n->saved[0];
    wki_softmax_backward_kernel kernel = reduce_kernels[y->device.type].softmax_backward;
    if (!kernel) {
        char d[32];
        wk_set_error("%s backward: no kernel for device %s", n->op,
                     wk_device_str(y->device, d, sizeof d));
        return -1;
    }
    int dims[WK_MAX_DIMS];
    int dim = node_dims(n, dims) ? dims[0] : 0;
    wk_tensor *gc = wk_contiguous(g), *gx = wk_empty_like(y);
    if (!gc || !gx || !kernel(n->i[0] == WK_REDUCE_LOG_SOFTMAX, y, gc, gx, dim)) return -1;
    grads[0] = gx;
    return 0;
}

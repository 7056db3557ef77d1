/* Views: new shapes and strides over the same storage, and their backward. Each public
 * view computes its result without recording anything, then records one node (alias
 * records none: it is how wk_detach makes a tensor without a graph). */
#include <string.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "tensor-impl.h"

/* Give out (a view or copy of t) a node when t requires grad; out, or NULL after freeing
 * it when the node cannot be made. params[0..nparams) go to the node's i[]. */
static wk_tensor *record(wk_tensor *out, wk_tensor *t, const char *op, wki_backward_fn backward,
                         const int64_t *params, int nparams)
{
    if (!out || !wki_grad_needed(1, (const wk_tensor *[]){t})) return out;
    wki_node *n = wki_node_new(out, op, backward, 1, &t);
    if (!n) {
        wk_tensor_free(out);
        return NULL;
    }
    for (int k = 0; k < nparams && k < WK_MAX_DIMS; k++)
        n->i[k] = params[k];
    return out;
}

/* view, reshape, flatten, squeeze, unsqueeze: the gradient is g in the input's shape. */
static int reshape_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    grads[0] = wk_reshape(g, n->inputs[0]->shape, n->inputs[0]->ndim);
    return grads[0] ? 0 : -1;
}

/* contiguous: the gradient passes through. */
static int identity_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    (void)n;
    grads[0] = g;
    return 0;
}

static int transpose_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    grads[0] = wk_transpose(g, (int)n->i[0], (int)n->i[1]);
    return grads[0] ? 0 : -1;
}

/* i[] holds the inverse permutation. */
static int permute_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    int inv[WK_MAX_DIMS];
    for (int k = 0; k < g->ndim; k++)
        inv[k] = (int)n->i[k];
    grads[0] = wk_permute(g, inv, g->ndim);
    return grads[0] ? 0 : -1;
}

/* expand: summed over the broadcast dims. */
static int expand_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    grads[0] = wki_sum_to_shape(g, n->inputs[0]->shape, n->inputs[0]->ndim);
    return grads[0] ? 0 : -1;
}

/* The slice backward kernel: zeros of `in`'s shape with g written at elements start,
 * start+step, ... of dim d (keep = false: select, g lacks dim d). Only what lies
 * outside the slice is zeroed when step is 1. */
static wk_tensor *slice_scatter_zeros(const wk_tensor *in, wk_tensor *g, int d, int64_t start,
                                      int64_t step, bool keep)
{
    if (!wki_require_cpu("slice backward", g)) return NULL;
    wk_tensor *out = wki_empty_on(in->shape, in->ndim, g->dtype, g->device);
    if (!out) return NULL;
    size_t es = wk_dtype_size(out->dtype);
    int64_t O = wki_shape_numel(in->shape, d), S = in->shape[d];
    int64_t I = wki_shape_numel(in->shape + d + 1, in->ndim - d - 1);
    int64_t len = keep ? g->shape[d] : 1;
    char *p = wk_data(out);
    if (step != 1 || len == 0) {
        memset(p, 0, (size_t)wk_numel(out) * es);
    } else if (len < S) {
        size_t row = (size_t)I * es, before = (size_t)start * row;
        size_t after = (size_t)(S - start - len) * row;
        int nt = wki_threads_for(O * (S - len) * I, 1 << 16);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
        for (int64_t o = 0; o < O; o++) {
            char *b = p + (size_t)o * (size_t)S * row;
            memset(b, 0, before);
            memset(b + before + (size_t)len * row, 0, after);
        }
    }
    wk_tensor v = *out;
    v.offset += start * out->strides[d];
    v.strides[d] *= step;
    v.shape[d] = len;
    if (!keep) {
        for (int k = d; k + 1 < v.ndim; k++) {
            v.shape[k] = v.shape[k + 1];
            v.strides[k] = v.strides[k + 1];
        }
        v.ndim--;
    }
    if (!wk_copy_(&v, g)) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

/* slice, narrow (keep, i = dim, start, step) and select (i[3] = 0). */
static int slice_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    grads[0] = slice_scatter_zeros(n->inputs[0], g, (int)n->i[0], n->i[1], n->i[2], n->i[3]);
    return grads[0] ? 0 : -1;
}

/* Strides for viewing (shape, strides) as new_shape without a copy (ATen's
 * computeStride); false when the layout does not allow it. */
static bool view_strides(const int64_t *shape, const int64_t *strides, int ndim,
                         const int64_t *new_shape, int new_ndim, int64_t *new_strides)
{
    static const int64_t one = 1;
    if (ndim == 0) {
        shape = &one;
        strides = &one;
        ndim = 1;
    }
    if (wki_shape_numel(shape, ndim) == 0) {
        wki_contiguous_strides(new_shape, new_ndim, new_strides);
        return true;
    }
    int view_d = new_ndim - 1;
    int64_t chunk_base = strides[ndim - 1], tensor_numel = 1, view_numel = 1;
    for (int d = ndim - 1; d >= 0; d--) {
        tensor_numel *= shape[d];
        if (d == 0 || (shape[d - 1] != 1 && strides[d - 1] != tensor_numel * chunk_base)) {
            while (view_d >= 0 && (view_numel < tensor_numel || new_shape[view_d] == 1)) {
                new_strides[view_d] = view_numel * chunk_base;
                view_numel *= new_shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base = strides[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

/* Resolve one -1 in shape against numel; false with an error when impossible. */
static bool infer_shape(const char *op, const wk_tensor *t, const int64_t *shape, int ndim,
                        int64_t *out)
{
    if (ndim < 0 || ndim > WK_MAX_DIMS || (ndim && !shape)) {
        wk_set_error("%s: %d dims given, expected 0..%d", op, ndim, WK_MAX_DIMS);
        return false;
    }
    int infer = -1;
    int64_t known = 1, numel = wk_numel(t);
    for (int i = 0; i < ndim; i++) {
        out[i] = shape[i];
        if (shape[i] == -1 && infer < 0) {
            infer = i;
        } else if (shape[i] < 0) {
            wk_set_error("%s: shape %s is invalid (only one -1 allowed, no other negative "
                         "sizes)",
                         op, wki_dims_s(shape, ndim));
            return false;
        } else {
            known *= shape[i];
        }
    }
    if (infer >= 0) {
        if (known == 0 || numel % known) {
            wk_set_error("%s: shape %s is invalid for input of size %lld", op,
                         wki_dims_s(shape, ndim), (long long)numel);
            return false;
        }
        out[infer] = numel / known;
    } else if (known != numel) {
        wk_set_error("%s: shape %s is invalid for input of size %lld (shape %s)", op,
                     wki_dims_s(shape, ndim), (long long)numel, wki_shape_s(t));
        return false;
    }
    return true;
}

static wk_tensor *view_with(wk_tensor *t, const int64_t *shape, const int64_t *strides,
                            int ndim)
{
    wk_tensor *v = wki_tensor_view_of(t);
    if (!v) return NULL;
    v->ndim = ndim;
    memset(v->shape, 0, sizeof v->shape);
    memset(v->strides, 0, sizeof v->strides);
    if (ndim) {
        memcpy(v->shape, shape, (size_t)ndim * sizeof *shape);
        memcpy(v->strides, strides, (size_t)ndim * sizeof *strides);
    }
    return v;
}

static wk_tensor *view_impl(wk_tensor *t, const int64_t *shape, int ndim)
{
    if (!WKI_CHECK("view", t)) return NULL;
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    if (!infer_shape("view", t, shape, ndim, s)) return NULL;
    if (!view_strides(t->shape, t->strides, t->ndim, s, ndim, st)) {
        wk_set_error("view: shape %s is not compatible with the input's size and strides "
                     "(shape %s); use wk_reshape, which copies when needed",
                     wki_dims_s(s, ndim), wki_shape_s(t));
        return NULL;
    }
    return view_with(t, s, st, ndim);
}

static wk_tensor *reshape_impl(wk_tensor *t, const int64_t *shape, int ndim)
{
    if (!WKI_CHECK("reshape", t)) return NULL;
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    if (!infer_shape("reshape", t, shape, ndim, s)) return NULL;
    if (view_strides(t->shape, t->strides, t->ndim, s, ndim, st))
        return view_with(t, s, st, ndim);
    wk_no_grad_begin(); /* the copy is part of this op: one node, recorded by the caller */
    wk_tensor *c = wk_clone(t);
    wk_no_grad_end();
    if (!c) return NULL;
    wki_contiguous_strides(s, ndim, st);
    wk_tensor *v = view_with(c, s, st, ndim);
    wk_tensor_free(c);
    return v;
}

static wk_tensor *transpose_impl(wk_tensor *t, int dim0, int dim1)
{
    if (!WKI_CHECK("transpose", t)) return NULL;
    int a = wki_norm_dim("transpose", dim0, t->ndim);
    int b = a < 0 ? -1 : wki_norm_dim("transpose", dim1, t->ndim);
    if (b < 0) return NULL;
    wk_tensor *v = wki_tensor_view_of(t);
    if (!v || !t->ndim) return v;
    int64_t s = v->shape[a], st = v->strides[a];
    v->shape[a] = v->shape[b];
    v->strides[a] = v->strides[b];
    v->shape[b] = s;
    v->strides[b] = st;
    return v;
}

static wk_tensor *permute_impl(wk_tensor *t, const int *dims, int ndims, int64_t *inverse)
{
    if (!WKI_CHECK("permute", t)) return NULL;
    if (ndims != t->ndim || (ndims && !dims)) {
        wk_set_error("permute: %d dims given for a %d-d tensor (shape %s)", ndims, t->ndim,
                     wki_shape_s(t));
        return NULL;
    }
    bool seen[WK_MAX_DIMS] = {0};
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    for (int i = 0; i < ndims; i++) {
        int d = wki_norm_dim("permute", dims[i], t->ndim);
        if (d < 0) return NULL;
        if (seen[d]) {
            wk_set_error("permute: dim %d appears twice", d);
            return NULL;
        }
        seen[d] = true;
        inverse[d] = i;
        s[i] = t->shape[d];
        st[i] = t->strides[d];
    }
    return view_with(t, s, st, ndims);
}

static wk_tensor *drop_dim(wk_tensor *t, int d)
{
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d) continue;
        s[n] = t->shape[i];
        st[n++] = t->strides[i];
    }
    return view_with(t, s, st, n);
}

static wk_tensor *squeeze_impl(wk_tensor *t, int dim)
{
    if (!WKI_CHECK("squeeze", t)) return NULL;
    int d = wki_norm_dim("squeeze", dim, t->ndim);
    if (d < 0) return NULL;
    if (!t->ndim || t->shape[d] != 1) return wki_tensor_view_of(t);
    return drop_dim(t, d);
}

static wk_tensor *squeeze_all_impl(wk_tensor *t)
{
    if (!WKI_CHECK("squeeze", t)) return NULL;
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (t->shape[i] == 1) continue;
        s[n] = t->shape[i];
        st[n++] = t->strides[i];
    }
    return view_with(t, s, st, n);
}

static wk_tensor *unsqueeze_impl(wk_tensor *t, int dim)
{
    if (!WKI_CHECK("unsqueeze", t)) return NULL;
    if (t->ndim >= WK_MAX_DIMS) {
        wk_set_error("unsqueeze: tensor already has the maximum of %d dims", WK_MAX_DIMS);
        return NULL;
    }
    int d = wki_norm_dim("unsqueeze", dim, t->ndim + 1);
    if (d < 0) return NULL;
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    for (int i = 0, j = 0; i <= t->ndim; i++) {
        if (i == d) {
            s[i] = 1;
            st[i] = d < t->ndim ? t->shape[d] * t->strides[d] : 1;
        } else {
            s[i] = t->shape[j];
            st[i] = t->strides[j++];
        }
    }
    return view_with(t, s, st, t->ndim + 1);
}

/* p gets what the backward needs: dim, clamped start, step, 1 (the dim is kept). */
static wk_tensor *slice_impl(wk_tensor *t, int dim, int64_t start, int64_t end, int64_t step,
                             int64_t *p)
{
    if (!WKI_CHECK("slice", t)) return NULL;
    int d = wki_norm_dim("slice", dim, t->ndim);
    if (d < 0) return NULL;
    if (!t->ndim) {
        wk_set_error("slice: cannot slice a 0-d tensor");
        return NULL;
    }
    if (step < 1) {
        wk_set_error("slice: step must be >= 1, got %lld", (long long)step);
        return NULL;
    }
    int64_t n = t->shape[d];
    if (start < 0) start += n;
    if (end < 0) end += n;
    start = start < 0 ? 0 : start > n ? n : start;
    end = end < start ? start : end > n ? n : end;
    wk_tensor *v = wki_tensor_view_of(t);
    if (!v) return NULL;
    v->offset += start * t->strides[d];
    v->shape[d] = (end - start + step - 1) / step;
    v->strides[d] *= step;
    p[0] = d;
    p[1] = start;
    p[2] = step;
    p[3] = 1;
    return v;
}

static wk_tensor *narrow_impl(wk_tensor *t, int dim, int64_t start, int64_t length, int64_t *p)
{
    if (!WKI_CHECK("narrow", t)) return NULL;
    int d = wki_norm_dim("narrow", dim, t->ndim);
    if (d < 0) return NULL;
    int64_t n = t->ndim ? t->shape[d] : 1;
    if (start < 0) start += n;
    if (start < 0 || length < 0 || start > n || length > n - start) {
        wk_set_error("narrow: start %lld and length %lld are out of range for dim %d of "
                     "size %lld",
                     (long long)start, (long long)length, d, (long long)n);
        return NULL;
    }
    return slice_impl(t, d, start, start + length, 1, p);
}

static wk_tensor *select_impl(wk_tensor *t, int dim, int64_t index, int64_t *p)
{
    if (!WKI_CHECK("select", t)) return NULL;
    if (!t->ndim) {
        wk_set_error("select: cannot index a 0-d tensor");
        return NULL;
    }
    int d = wki_norm_dim("select", dim, t->ndim);
    if (d < 0) return NULL;
    int64_t n = t->shape[d];
    if (index < -n || index >= n) {
        wk_set_error("select: index %lld is out of range for dim %d of size %lld",
                     (long long)index, d, (long long)n);
        return NULL;
    }
    if (index < 0) index += n;
    wk_tensor *v = drop_dim(t, d);
    if (v) v->offset += index * t->strides[d];
    p[0] = d;
    p[1] = index;
    p[2] = 1;
    p[3] = 0;
    return v;
}

static wk_tensor *expand_impl(wk_tensor *t, const int64_t *shape, int ndim)
{
    if (!WKI_CHECK("expand", t)) return NULL;
    if (ndim < t->ndim || ndim > WK_MAX_DIMS || (ndim && !shape)) {
        wk_set_error("expand: cannot expand shape %s to %d dims", wki_shape_s(t), ndim);
        return NULL;
    }
    int64_t s[WK_MAX_DIMS], st[WK_MAX_DIMS];
    int lead = ndim - t->ndim;
    for (int i = 0; i < ndim; i++) {
        int j = i - lead;
        if (j < 0) {
            if (shape[i] < 0) {
                wk_set_error("expand: size %lld is invalid for new leading dim %d",
                             (long long)shape[i], i);
                return NULL;
            }
            s[i] = shape[i];
            st[i] = 0;
        } else if (shape[i] == -1 || shape[i] == t->shape[j]) {
            s[i] = t->shape[j];
            st[i] = t->strides[j];
        } else if (t->shape[j] == 1 && shape[i] >= 0) {
            s[i] = shape[i];
            st[i] = 0;
        } else {
            wk_set_error("expand: the size of dim %d (%lld) must match the new size %lld "
                         "or be 1 (shape %s to %s)",
                         j, (long long)t->shape[j], (long long)shape[i], wki_shape_s(t),
                         wki_dims_s(shape, ndim));
            return NULL;
        }
    }
    return view_with(t, s, st, ndim);
}

static wk_tensor *flatten_impl(wk_tensor *t, int start_dim, int end_dim)
{
    if (!WKI_CHECK("flatten", t)) return NULL;
    if (!t->ndim) return reshape_impl(t, WK_SHAPE(1));
    int a = wki_norm_dim("flatten", start_dim, t->ndim);
    int b = a < 0 ? -1 : wki_norm_dim("flatten", end_dim, t->ndim);
    if (b < 0) return NULL;
    if (a > b) {
        wk_set_error("flatten: start_dim %d comes after end_dim %d", a, b);
        return NULL;
    }
    int64_t s[WK_MAX_DIMS];
    int n = 0;
    for (int i = 0; i < a; i++)
        s[n++] = t->shape[i];
    int64_t m = 1;
    for (int i = a; i <= b; i++)
        m *= t->shape[i];
    s[n++] = m;
    for (int i = b + 1; i < t->ndim; i++)
        s[n++] = t->shape[i];
    return reshape_impl(t, s, n);
}

/* ---- the public views: compute, then record ---- */

wk_tensor *wk_view(wk_tensor *t, const int64_t *shape, int ndim)
{
    WKI_PROF_OP("view", t);
    return record(view_impl(t, shape, ndim), t, "view", reshape_backward, NULL, 0);
}

wk_tensor *wk_reshape(wk_tensor *t, const int64_t *shape, int ndim)
{
    WKI_PROF_OP("reshape", t);
    return record(reshape_impl(t, shape, ndim), t, "reshape", reshape_backward, NULL, 0);
}

wk_tensor *wk_transpose(wk_tensor *t, int dim0, int dim1)
{
    WKI_PROF_OP("transpose", t);
    return record(transpose_impl(t, dim0, dim1), t, "transpose", transpose_backward,
                  (const int64_t[]){dim0, dim1}, 2);
}

wk_tensor *wk_permute(wk_tensor *t, const int *dims, int ndims)
{
    WKI_PROF_OP("permute", t);
    int64_t inverse[WK_MAX_DIMS];
    return record(permute_impl(t, dims, ndims, inverse), t, "permute", permute_backward,
                  inverse, ndims);
}

wk_tensor *wk_squeeze(wk_tensor *t, int dim)
{
    WKI_PROF_OP("squeeze", t);
    return record(squeeze_impl(t, dim), t, "squeeze", reshape_backward, NULL, 0);
}

wk_tensor *wk_squeeze_all(wk_tensor *t)
{
    WKI_PROF_OP("squeeze", t);
    return record(squeeze_all_impl(t), t, "squeeze", reshape_backward, NULL, 0);
}

wk_tensor *wk_unsqueeze(wk_tensor *t, int dim)
{
    WKI_PROF_OP("unsqueeze", t);
    return record(unsqueeze_impl(t, dim), t, "unsqueeze", reshape_backward, NULL, 0);
}

wk_tensor *wk_slice(wk_tensor *t, int dim, int64_t start, int64_t end, int64_t step)
{
    WKI_PROF_OP("slice", t);
    int64_t p[4];
    return record(slice_impl(t, dim, start, end, step, p), t, "slice", slice_backward, p, 4);
}

wk_tensor *wk_narrow(wk_tensor *t, int dim, int64_t start, int64_t length)
{
    WKI_PROF_OP("narrow", t);
    int64_t p[4];
    return record(narrow_impl(t, dim, start, length, p), t, "narrow", slice_backward, p, 4);
}

wk_tensor *wk_select(wk_tensor *t, int dim, int64_t index)
{
    WKI_PROF_OP("select", t);
    int64_t p[4];
    return record(select_impl(t, dim, index, p), t, "select", slice_backward, p, 4);
}

wk_tensor *wk_expand(wk_tensor *t, const int64_t *shape, int ndim)
{
    WKI_PROF_OP("expand", t);
    return record(expand_impl(t, shape, ndim), t, "expand", expand_backward, NULL, 0);
}

wk_tensor *wk_flatten(wk_tensor *t, int start_dim, int end_dim)
{
    WKI_PROF_OP("flatten", t);
    return record(flatten_impl(t, start_dim, end_dim), t, "flatten", reshape_backward, NULL, 0);
}

wk_tensor *wk_contiguous(wk_tensor *t)
{
    WKI_PROF_OP("contiguous", t);
    if (!WKI_CHECK("contiguous", t)) return NULL;
    wk_tensor *out;
    if (wk_is_contiguous(t)) {
        out = wki_tensor_view_of(t);
    } else {
        wk_no_grad_begin();
        out = wk_clone(t);
        wk_no_grad_end();
    }
    return record(out, t, "contiguous", identity_backward, NULL, 0);
}

wk_tensor *wk_alias(wk_tensor *t)
{
    if (!WKI_CHECK("alias", t)) return NULL;
    return wki_tensor_view_of(t);
}

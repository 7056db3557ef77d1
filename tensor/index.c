/* The indexing family: one front-end (wk_index_apply) that validates, checks every
 * index before anything is written, allocates the result and records the autograd node;
 * a per-device table of kernels; the backward of each op; and the split/chunk views,
 * which only narrow. */
#include <omp.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "index-impl.h"
#include "iter-impl.h"

#define GRAIN 32768 /* elements per thread below which a loop stays serial */

static const struct {
    const char *name;
} index_info[] = {
    [WK_INDEX_INDEX_SELECT] = {"index_select"}, [WK_INDEX_GATHER] = {"gather"},
    [WK_INDEX_SCATTER_ADD] = {"scatter_add"},   [WK_INDEX_INDEX_ADD] = {"index_add"},
    [WK_INDEX_MASKED_FILL] = {"masked_fill"},
    [WK_INDEX_CAT] = {"cat"},                   [WK_INDEX_STACK] = {"stack"},
    [WK_INDEX_ONE_HOT] = {"one_hot"},
};
_Static_assert(sizeof index_info / sizeof index_info[0] == WK_INDEX_COUNT,
               "index_info must have one row per wk_index_op");

const char *wk_index_name(wk_index_op op)
{
    return (unsigned)op < WK_INDEX_COUNT ? index_info[op].name : "?";
}

/* What the front-end hands a kernel besides the result. */
typedef struct {
    const wk_index_args *args;
    int dim;            /* normalised */
    wk_tensor *index;   /* contiguous, bounds-checked index (labels for one_hot) */
    wk_tensor *src;     /* index_add: contiguous src */
    char value[8];      /* masked_fill: the value in the result's dtype */
} index_job;

typedef void (*index_kernel)(wk_tensor *out, const index_job *job);

static inline int64_t load_index(const char *p, wk_dtype dt)
{
    return dt == WK_DTYPE_I64 ? *(const int64_t *)p : *(const int32_t *)p;
}

/* ---- CPU kernels ---- */

/* n elements of es bytes from i (byte stride si) to o (byte stride so). */
static void move_elems(char *o, int64_t so, const char *i, int64_t si, int64_t n, size_t es)
{
    if (so == (int64_t)es && si == (int64_t)es) {
        memcpy(o, i, (size_t)n * es);
        return;
    }
    switch (es) {
    case 1: for (int64_t k = 0; k < n; k++) o[k * so] = i[k * si]; break;
    case 2:
        for (int64_t k = 0; k < n; k++)
            *(uint16_t *)(o + k * so) = *(const uint16_t *)(i + k * si);
        break;
    case 4:
        for (int64_t k = 0; k < n; k++)
            *(uint32_t *)(o + k * so) = *(const uint32_t *)(i + k * si);
        break;
    default:
        for (int64_t k = 0; k < n; k++)
            *(uint64_t *)(o + k * so) = *(const uint64_t *)(i + k * si);
        break;
    }
}

typedef struct {
    size_t es;
    int64_t step; /* bytes of x per unit of index */
    wk_dtype idt;
} gather_ctx;

/* Operands: result, x restrided to the result's shape (0 stride along dim), index. */
static void gather_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    const gather_ctx *c = ctx;
    if (s[2] == 0) { /* one index for the whole run: a (strided) block copy */
        move_elems(d[0], s[0], d[1] + load_index(d[2], c->idt) * c->step, s[1], n, c->es);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        move_elems(d[0] + k * s[0], 0, d[1] + k * s[1] + load_index(d[2] + k * s[2], c->idt) *
                                                              c->step,
                   0, 1, c->es);
}

/* out = x gathered along d by iv, an index already shaped like out. */
static void run_gather(wk_tensor *out, const wk_tensor *x, const wk_tensor *iv, int d)
{
    wk_tensor xv = *x;
    xv.ndim = out->ndim;
    memcpy(xv.shape, out->shape, sizeof xv.shape);
    xv.strides[d] = 0;
    size_t es = wk_dtype_size(x->dtype);
    gather_ctx c = {es, x->strides[d] * (int64_t)es, iv->dtype};
    const wk_tensor *ops[3] = {out, &xv, iv};
    wki_iter it;
    wki_iter_init(&it, 3, ops);
    wki_iter_run(&it, gather_loop, &c);
}

static void cpu_index_select(wk_tensor *out, const index_job *job)
{
    /* The 1-d index seen as out's shape: it steps along dim only. */
    wk_tensor iv = *job->index;
    iv.ndim = out->ndim;
    memcpy(iv.shape, out->shape, sizeof iv.shape);
    memset(iv.strides, 0, sizeof iv.strides);
    iv.strides[job->dim] = 1;
    run_gather(out, job->args->x, &iv, job->dim);
}

static void cpu_gather(wk_tensor *out, const index_job *job)
{
    run_gather(out, job->args->x, job->index, job->dim);
}

/* Lines run along dim; each line of the index adds into its own line of the result, so
 * lines go to threads freely and each sums in index order: deterministic. */
#define SCATTER_ADD(NAME, T, ADD)                                                        \
    static void NAME(wk_tensor *out, const wk_tensor *idx, const wk_tensor *src, int d)  \
    {                                                                                    \
        int nd = idx->ndim, od[WK_MAX_DIMS], no = 0;                                     \
        for (int i = 0; i < nd; i++)                                                     \
            if (i != d) od[no++] = i;                                                    \
        int64_t L = idx->shape[d], total = wk_numel(idx);                                \
        if (total == 0) return;                                                          \
        int64_t lines = total / L;                                                       \
        T *o = wk_data(out);                                                             \
        const T *s = wk_data(src);                                                       \
        const char *ip = wk_data(idx);                                                   \
        int64_t ies = (int64_t)wk_dtype_size(idx->dtype);                                \
        int nt = wki_threads_for(total, GRAIN);                                          \
        _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")         \
        for (int64_t l = 0; l < lines; l++) {                                            \
            int64_t rem = l, oo = 0, io = 0, so = 0;                                     \
            for (int q = no - 1; q >= 0; q--) {                                          \
                int i = od[q];                                                           \
                int64_t c = rem % idx->shape[i];                                         \
                rem /= idx->shape[i];                                                    \
                oo += c * out->strides[i];                                               \
                io += c * idx->strides[i];                                               \
                so += c * src->strides[i];                                               \
            }                                                                            \
            for (int64_t p = 0; p < L; p++) {                                            \
                int64_t j = load_index(ip + (io + p * idx->strides[d]) * ies, idx->dtype); \
                T *dst = o + oo + j * out->strides[d];                                   \
                *dst = ADD(*dst, s[so + p * src->strides[d]]);                           \
            }                                                                            \
        }                                                                                \
    }
#define ADD_F(a, b) ((a) + (b))
#define ADD_U32(a, b) ((int32_t)((uint32_t)(a) + (uint32_t)(b))) /* wraps, no UB */
#define ADD_U64(a, b) ((int64_t)((uint64_t)(a) + (uint64_t)(b)))
#define ADD_U8(a, b) ((uint8_t)((a) + (b)))
SCATTER_ADD(scatter_add_f32, float, ADD_F)
SCATTER_ADD(scatter_add_f64, double, ADD_F)
SCATTER_ADD(scatter_add_i32, int32_t, ADD_U32)
SCATTER_ADD(scatter_add_i64, int64_t, ADD_U64)
SCATTER_ADD(scatter_add_u8, uint8_t, ADD_U8)

/* out = x (zeros when args->x is NULL: the gradient of gather) + the scattered src. */
static void cpu_scatter_add(wk_tensor *out, const index_job *job)
{
    const wk_index_args *a = job->args;
    if (a->x) wk_copy_(out, a->x);
    else memset(wk_data(out), 0, (size_t)wk_numel(out) * wk_dtype_size(out->dtype));
    switch (out->dtype) {
    case WK_DTYPE_F32: scatter_add_f32(out, job->index, a->src, job->dim); break;
    case WK_DTYPE_F64: scatter_add_f64(out, job->index, a->src, job->dim); break;
    case WK_DTYPE_I32: scatter_add_i32(out, job->index, a->src, job->dim); break;
    case WK_DTYPE_I64: scatter_add_i64(out, job->index, a->src, job->dim); break;
    default: scatter_add_u8(out, job->index, a->src, job->dim); break;
    }
}

/* out (O, S, I) += src (O, L, I) at rows index[0..L) of each of the O blocks (out and src
 * contiguous). Each task owns a range of out's rows and walks the whole index in order,
 * so every element sums in index order whatever the thread count. */
#define INDEX_ADD(NAME, T, ADD)                                                          \
    static void NAME(T *o, const T *src, const char *ip, wk_dtype idt, int64_t O,        \
                     int64_t S, int64_t L, int64_t I)                                    \
    {                                                                                    \
        int64_t ies = (int64_t)wk_dtype_size(idt);                                      \
        int nt = wki_threads_for(O * L * I, GRAIN);                                      \
        int64_t nr = O >= nt ? 1 : (nt + O - 1) / O; /* row ranges per block */         \
        if (nr > S) nr = S > 0 ? S : 1;                                                  \
        _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")         \
        for (int64_t task = 0; task < O * nr; task++) {                                  \
            int64_t b = task / nr, r = task % nr;                                        \
            int64_t lo = S * r / nr, hi = S * (r + 1) / nr;                              \
            T *ob = o + b * S * I;                                                       \
            const T *sb = src + b * L * I;                                               \
            for (int64_t i = 0; i < L; i++) {                                            \
                int64_t j = load_index(ip + i * ies, idt);                               \
                if (j < lo || j >= hi) continue;                                         \
                T *dst = ob + j * I;                                                     \
                const T *sp = sb + i * I;                                                \
                for (int64_t c = 0; c < I; c++) dst[c] = ADD(dst[c], sp[c]);             \
            }                                                                            \
        }                                                                                \
    }
INDEX_ADD(index_add_f32, float, ADD_F)
INDEX_ADD(index_add_f64, double, ADD_F)
INDEX_ADD(index_add_i32, int32_t, ADD_U32)
INDEX_ADD(index_add_i64, int64_t, ADD_U64)
INDEX_ADD(index_add_u8, uint8_t, ADD_U8)

/* out = x (zeros when args->x is NULL: the gradient of index_select) + src at index. */
static void cpu_index_add(wk_tensor *out, const index_job *job)
{
    const wk_index_args *a = job->args;
    if (a->x) wk_copy_(out, a->x);
    else memset(wk_data(out), 0, (size_t)wk_numel(out) * wk_dtype_size(out->dtype));
    int d = job->dim;
    int64_t O = wki_shape_numel(out->shape, d), S = out->shape[d];
    int64_t I = wki_shape_numel(out->shape + d + 1, out->ndim - d - 1);
    int64_t L = wk_numel(job->index);
    const char *ip = wk_data(job->index);
    wk_dtype idt = job->index->dtype;
    void *o = wk_data(out), *sp = wk_data(job->src);
    if (O * L * I == 0) return;
    switch (out->dtype) {
    case WK_DTYPE_F32: index_add_f32(o, sp, ip, idt, O, S, L, I); break;
    case WK_DTYPE_F64: index_add_f64(o, sp, ip, idt, O, S, L, I); break;
    case WK_DTYPE_I32: index_add_i32(o, sp, ip, idt, O, S, L, I); break;
    case WK_DTYPE_I64: index_add_i64(o, sp, ip, idt, O, S, L, I); break;
    default: index_add_u8(o, sp, ip, idt, O, S, L, I); break;
    }
}

#define MASKED_FILL_LOOP(NAME, T)                                                        \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                  \
    {                                                                                    \
        T v;                                                                             \
        memcpy(&v, ctx, sizeof v);                                                       \
        if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == 1) {                       \
            T *o = (T *)d[0];                                                            \
            const T *x = (const T *)d[1];                                                \
            const uint8_t *m = (const uint8_t *)d[2];                                    \
            for (int64_t k = 0; k < n; k++) o[k] = m[k] ? v : x[k];                      \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++)                                              \
                *(T *)(d[0] + k * s[0]) =                                                \
                    d[2][k * s[2]] ? v : *(const T *)(d[1] + k * s[1]);                  \
        }                                                                                \
    }
MASKED_FILL_LOOP(masked_fill_1, uint8_t)
MASKED_FILL_LOOP(masked_fill_2, uint16_t)
MASKED_FILL_LOOP(masked_fill_4, uint32_t)
MASKED_FILL_LOOP(masked_fill_8, uint64_t)

static void cpu_masked_fill(wk_tensor *out, const index_job *job)
{
    static const wki_loop_fn loops[9] = {[1] = masked_fill_1, [2] = masked_fill_2,
                                         [4] = masked_fill_4, [8] = masked_fill_8};
    const wk_tensor *ops[3] = {out, job->args->x, job->args->mask};
    wki_iter it;
    wki_iter_init(&it, 3, ops);
    wki_iter_run(&it, loops[wk_dtype_size(out->dtype)], (void *)job->value);
}

/* Each input is copied into its slab of the result (cat) or its slice (stack). */
static void cpu_cat(wk_tensor *out, const index_job *job)
{
    const wk_index_args *a = job->args;
    int d = job->dim;
    int64_t off = 0;
    for (int i = 0; i < a->n; i++) {
        wk_tensor v = *out;
        v.shape[d] = a->ts[i]->shape[d];
        v.offset += off * out->strides[d];
        wk_copy_(&v, a->ts[i]);
        off += a->ts[i]->shape[d];
    }
}

static void cpu_stack(wk_tensor *out, const index_job *job)
{
    const wk_index_args *a = job->args;
    int d = job->dim;
    for (int i = 0; i < a->n; i++) {
        wk_tensor v = *out;
        v.ndim = out->ndim - 1;
        for (int k = d; k < v.ndim; k++) {
            v.shape[k] = out->shape[k + 1];
            v.strides[k] = out->strides[k + 1];
        }
        v.offset += i * out->strides[d];
        wk_copy_(&v, a->ts[i]);
    }
}

static void cpu_one_hot(wk_tensor *out, const index_job *job)
{
    int64_t C = out->shape[out->ndim - 1], n = wk_numel(job->index);
    int64_t *o = wk_data(out);
    const char *lab = wk_data(job->index);
    int64_t les = (int64_t)wk_dtype_size(job->index->dtype);
    memset(o, 0, (size_t)wk_numel(out) * sizeof *o);
    int nt = wki_threads_for(n * (C > 0 ? C : 1), GRAIN);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t i = 0; i < n; i++) o[i * C + load_index(lab + i * les, job->index->dtype)] = 1;
}

static const index_kernel index_kernels[WK_DEVICE_COUNT][WK_INDEX_COUNT] = {
    [WK_DEVICE_CPU] =
        {
            [WK_INDEX_INDEX_SELECT] = cpu_index_select,
            [WK_INDEX_GATHER] = cpu_gather,
            [WK_INDEX_SCATTER_ADD] = cpu_scatter_add,
            [WK_INDEX_INDEX_ADD] = cpu_index_add,
            [WK_INDEX_MASKED_FILL] = cpu_masked_fill,
            [WK_INDEX_CAT] = cpu_cat,
            [WK_INDEX_STACK] = cpu_stack,
            [WK_INDEX_ONE_HOT] = cpu_one_hot,
        },
    [WK_DEVICE_CUDA] = {NULL},
};

/* ---- front-end ---- */

static bool have_kernel(wk_index_op op, const wk_tensor *t)
{
    if (index_kernels[t->device.type][op]) return true;
    char dev[32];
    wk_set_error("%s: no kernel for device %s", index_info[op].name,
                 wk_device_str(t->device, dev, sizeof dev));
    return false;
}

static bool check_index_dtype(const char *op, const char *what, const wk_tensor *t)
{
    if (t->dtype == WK_DTYPE_I64 || t->dtype == WK_DTYPE_I32) return true;
    wk_set_error("%s: %s must be int64 or int32, got %s", op, what, wk_dtype_name(t->dtype));
    return false;
}

static bool check_rank(const char *op, const wk_tensor *x)
{
    if (x->ndim >= 1) return true;
    wk_set_error("%s: expected an input with at least 1 dim, got shape %s", op,
                 wki_shape_s(x));
    return false;
}

/* Error unless every entry of the contiguous idx lies in [0, size); dim < 0 means the
 * classes of one_hot. Indices are read here on the host, before any kernel runs (a
 * device backend would check on its device). */
static bool check_range(const char *op, const wk_tensor *idx, int64_t size, int dim)
{
    const char *p = wk_data(idx);
    int64_t n = wk_numel(idx), es = (int64_t)wk_dtype_size(idx->dtype);
    for (int64_t i = 0; i < n; i++) {
        int64_t v = load_index(p + i * es, idx->dtype);
        if (v >= 0 && v < size) continue;
        if (dim >= 0)
            wk_set_error("%s: index %lld is out of range for dim %d of size %lld", op,
                         (long long)v, dim, (long long)size);
        else
            wk_set_error("%s: label %lld is out of range for %lld classes", op, (long long)v,
                         (long long)size);
        return false;
    }
    return true;
}

/* x and src of an addition: the same arithmetic dtype. */
static bool check_arith(const char *op, const wk_tensor *x, const wk_tensor *src)
{
    if (src->dtype != x->dtype) {
        wk_set_error("%s: dtypes %s (input) and %s (src) differ", op, wk_dtype_name(x->dtype),
                     wk_dtype_name(src->dtype));
        return false;
    }
    if (x->dtype == WK_DTYPE_BF16 || x->dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s is a storage type; convert with wk_to_dtype(t, WK_DTYPE_F32) "
                     "first",
                     op, wk_dtype_name(x->dtype));
        return false;
    }
    if (x->dtype == WK_DTYPE_BOOL) {
        wk_set_error("%s: dtype bool is not supported", op);
        return false;
    }
    return true;
}

/* A contiguous copy of idx into job->index, checked against [0, size). */
static bool checked_index(const char *op, const wk_tensor *idx, int64_t size, int dim,
                          index_job *job)
{
    job->index = wk_contiguous((wk_tensor *)idx);
    return job->index && check_range(op, job->index, size, dim);
}

static bool prep_index_select(const wk_index_args *a, index_job *job, int64_t *shape,
                              int *nd)
{
    const char *op = "index_select";
    const wk_tensor *x = a->x, *idx = a->index;
    if (!WKI_CHECK(op, x, idx)) return false;
    if (!wki_same_device(op, x, idx) || !have_kernel(WK_INDEX_INDEX_SELECT, x)) return false;
    if (!check_rank(op, x) || !check_index_dtype(op, "index", idx)) return false;
    int d = job->dim = wki_norm_dim(op, a->dim, x->ndim);
    if (d < 0) return false;
    if (idx->ndim > 1) {
        wk_set_error("index_select: index must be 1-d, got shape %s", wki_shape_s(idx));
        return false;
    }
    *nd = x->ndim;
    memcpy(shape, x->shape, sizeof x->shape);
    shape[d] = wk_numel(idx);
    return checked_index(op, idx, x->shape[d], d, job);
}

static bool prep_gather(const wk_index_args *a, index_job *job, int64_t *shape, int *nd)
{
    const char *op = "gather";
    const wk_tensor *x = a->x, *idx = a->index;
    if (!WKI_CHECK(op, x, idx)) return false;
    if (!wki_same_device(op, x, idx) || !have_kernel(WK_INDEX_GATHER, x)) return false;
    if (!check_rank(op, x) || !check_index_dtype(op, "index", idx)) return false;
    int d = job->dim = wki_norm_dim(op, a->dim, x->ndim);
    if (d < 0) return false;
    if (idx->ndim != x->ndim) {
        wk_set_error("gather: index shape %s and input shape %s have different numbers of "
                     "dims",
                     wki_shape_s(idx), wki_shape_s(x));
        return false;
    }
    for (int i = 0; i < x->ndim; i++) {
        if (i != d && idx->shape[i] > x->shape[i]) {
            wk_set_error("gather: index shape %s is larger than input shape %s outside "
                         "dim %d",
                         wki_shape_s(idx), wki_shape_s(x), d);
            return false;
        }
    }
    *nd = idx->ndim;
    memcpy(shape, idx->shape, sizeof idx->shape);
    return checked_index(op, idx, x->shape[d], d, job);
}

static bool prep_scatter_add(const wk_index_args *a, index_job *job, int64_t *shape,
                             int *nd)
{
    const char *op = "scatter_add";
    const wk_tensor *x = a->x, *idx = a->index, *src = a->src;
    if (!WKI_CHECK(op, x, idx, src)) return false;
    if (!wki_same_device(op, x, idx) || !wki_same_device(op, x, src) ||
        !have_kernel(WK_INDEX_SCATTER_ADD, x))
        return false;
    if (!check_rank(op, x) || !check_index_dtype(op, "index", idx) || !check_arith(op, x, src))
        return false;
    int d = job->dim = wki_norm_dim(op, a->dim, x->ndim);
    if (d < 0) return false;
    if (idx->ndim != x->ndim || src->ndim != x->ndim) {
        wk_set_error("scatter_add: input %s, index %s and src %s must have the same number "
                     "of dims",
                     wki_shape_s(x), wki_shape_s(idx), wki_shape_s(src));
        return false;
    }
    for (int i = 0; i < x->ndim; i++) {
        if (idx->shape[i] > src->shape[i]) {
            wk_set_error("scatter_add: index shape %s is larger than src shape %s",
                         wki_shape_s(idx), wki_shape_s(src));
            return false;
        }
        if (i != d && idx->shape[i] > x->shape[i]) {
            wk_set_error("scatter_add: index shape %s is larger than input shape %s outside "
                         "dim %d",
                         wki_shape_s(idx), wki_shape_s(x), d);
            return false;
        }
    }
    *nd = x->ndim;
    memcpy(shape, x->shape, sizeof x->shape);
    return checked_index(op, idx, x->shape[d], d, job);
}

static bool prep_index_add(const wk_index_args *a, index_job *job, int64_t *shape, int *nd)
{
    const char *op = "index_add";
    const wk_tensor *x = a->x, *idx = a->index, *src = a->src;
    if (!WKI_CHECK(op, x, idx, src)) return false;
    if (!wki_same_device(op, x, idx) || !wki_same_device(op, x, src) ||
        !have_kernel(WK_INDEX_INDEX_ADD, x))
        return false;
    if (!check_rank(op, x) || !check_index_dtype(op, "index", idx) || !check_arith(op, x, src))
        return false;
    int d = job->dim = wki_norm_dim(op, a->dim, x->ndim);
    if (d < 0) return false;
    if (idx->ndim > 1) {
        wk_set_error("index_add: index must be 1-d, got shape %s", wki_shape_s(idx));
        return false;
    }
    bool same = src->ndim == x->ndim;
    for (int i = 0; same && i < x->ndim; i++)
        same = src->shape[i] == (i == d ? wk_numel(idx) : x->shape[i]);
    if (!same) {
        wk_set_error("index_add: src shape %s does not match input shape %s with dim %d "
                     "resized to the index length %lld",
                     wki_shape_s(src), wki_shape_s(x), d, (long long)wk_numel(idx));
        return false;
    }
    *nd = x->ndim;
    memcpy(shape, x->shape, sizeof x->shape);
    wk_no_grad_begin(); /* an internal copy: no node */
    job->src = wk_contiguous(a->src);
    wk_no_grad_end();
    return job->src && checked_index(op, idx, x->shape[d], d, job);
}

static bool prep_masked_fill(const wk_index_args *a, index_job *job, int64_t *shape,
                             int *nd)
{
    const char *op = "masked_fill";
    const wk_tensor *x = a->x, *mask = a->mask;
    if (!WKI_CHECK(op, x, mask)) return false;
    if (!wki_same_device(op, x, mask) || !have_kernel(WK_INDEX_MASKED_FILL, x)) return false;
    if (mask->dtype != WK_DTYPE_BOOL) {
        wk_set_error("masked_fill: mask must be bool, got %s", wk_dtype_name(mask->dtype));
        return false;
    }
    const wk_tensor *ops[2] = {x, mask};
    if (!wki_broadcast_shape(op, 2, ops, shape, nd)) return false;
    /* The value converted exactly as a fill of x's dtype would. */
    wk_tensor *v = wki_empty_on(NULL, 0, x->dtype, WK_CPU);
    if (!v || !wk_fill_(v, a->value)) {
        wk_tensor_free(v);
        return false;
    }
    memcpy(job->value, wk_data(v), wk_dtype_size(x->dtype));
    wk_tensor_free(v);
    return true;
}

static bool prep_join(wk_index_op opk, const wk_index_args *a, index_job *job,
                      int64_t *shape, int *nd)
{
    const char *op = index_info[opk].name;
    bool stack = opk == WK_INDEX_STACK;
    if (!a->ts || a->n < 1) {
        wk_set_error("%s: expected at least one tensor, got %d", op, a->ts ? a->n : 0);
        return false;
    }
    if (!wki_check_inputs(op, a->n, (const wk_tensor *const *)a->ts)) return false;
    const wk_tensor *t0 = a->ts[0];
    if (!have_kernel(opk, t0)) return false;
    if (!stack && t0->ndim < 1) {
        wk_set_error("cat: tensor 0 is 0-d; cat needs tensors with at least 1 dim (use "
                     "stack)");
        return false;
    }
    if (stack && t0->ndim >= WK_MAX_DIMS) {
        wk_set_error("stack: tensors of shape %s would give more than %d dims",
                     wki_shape_s(t0), WK_MAX_DIMS);
        return false;
    }
    int d = job->dim = wki_norm_dim(op, a->dim, t0->ndim + stack);
    if (d < 0) return false;
    int64_t total = 0;
    for (int i = 0; i < a->n; i++) {
        const wk_tensor *t = a->ts[i];
        if (!wki_same_device(op, t0, t)) return false;
        if (t->dtype != t0->dtype) {
            wk_set_error("%s: dtypes %s (tensor 0) and %s (tensor %d) differ", op,
                         wk_dtype_name(t0->dtype), wk_dtype_name(t->dtype), i);
            return false;
        }
        bool same = t->ndim == t0->ndim;
        for (int k = 0; same && k < t->ndim; k++)
            same = t->shape[k] == t0->shape[k] || (!stack && k == d);
        if (!same) {
            if (stack)
                wk_set_error("stack: shapes %s (tensor 0) and %s (tensor %d) differ",
                             wki_shape_s(t0), wki_shape_s(t), i);
            else if (t->ndim != t0->ndim)
                wk_set_error("cat: shapes %s (tensor 0) and %s (tensor %d) have different "
                             "numbers of dims",
                             wki_shape_s(t0), wki_shape_s(t), i);
            else
                wk_set_error("cat: shapes %s (tensor 0) and %s (tensor %d) differ outside "
                             "dim %d",
                             wki_shape_s(t0), wki_shape_s(t), i, d);
            return false;
        }
        if (!stack) total += t->shape[d];
    }
    if (stack) {
        *nd = t0->ndim + 1;
        for (int k = 0, j = 0; k < *nd; k++) shape[k] = k == d ? a->n : t0->shape[j++];
    } else {
        *nd = t0->ndim;
        memcpy(shape, t0->shape, sizeof t0->shape);
        shape[d] = total;
    }
    return true;
}

static bool prep_one_hot(const wk_index_args *a, index_job *job, int64_t *shape, int *nd)
{
    const char *op = "one_hot";
    const wk_tensor *lab = a->x;
    if (!WKI_CHECK(op, lab)) return false;
    if (!have_kernel(WK_INDEX_ONE_HOT, lab) || !check_index_dtype(op, "labels", lab))
        return false;
    int64_t C = a->num_classes;
    if (C < -1) {
        wk_set_error("one_hot: num_classes must be -1 or >= 0, got %lld", (long long)C);
        return false;
    }
    if (lab->ndim >= WK_MAX_DIMS) {
        wk_set_error("one_hot: labels of shape %s would give more than %d dims",
                     wki_shape_s(lab), WK_MAX_DIMS);
        return false;
    }
    job->index = wk_contiguous((wk_tensor *)lab);
    if (!job->index) return false;
    if (C == -1) {
        int64_t n = wk_numel(lab), es = (int64_t)wk_dtype_size(lab->dtype);
        if (n == 0) {
            wk_set_error("one_hot: cannot infer num_classes from empty labels of shape %s",
                         wki_shape_s(lab));
            return false;
        }
        const char *p = wk_data(job->index);
        int64_t mx = INT64_MIN;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = load_index(p + i * es, lab->dtype);
            mx = v > mx ? v : mx;
        }
        C = mx < INT64_MAX ? mx + 1 : mx;
    }
    *nd = lab->ndim + 1;
    memcpy(shape, lab->shape, sizeof lab->shape);
    shape[lab->ndim] = C;
    return check_range(op, job->index, C, -1);
}

/* ---- backward ----
 * Nodes take the differentiable inputs (x, src, the joined tensors); index and mask
 * tensors are saved (the checked contiguous index of the forward). */

/* The sum of g at positions index along dim into zeros of shape (shape, nd): the
 * gradient of index_select (kernel INDEX_ADD, 1-d index) or gather (kernel SCATTER_ADD,
 * index shaped like g). The index, contiguous, is checked again (errors name `name`): it
 * may have been written to since the forward. */
static wk_tensor *scatter_into_zeros(wk_index_op op, const char *name, const int64_t *shape,
                                     int nd, int d, wk_tensor *idx, wk_tensor *g)
{
    if (!have_kernel(op, g)) return NULL;
    wk_tensor *out = wki_empty_on(shape, nd, g->dtype, g->device);
    wk_tensor *src = op == WK_INDEX_INDEX_ADD ? wk_contiguous(g) : g;
    if (!out || !src || !check_range(name, idx, shape[d], d)) {
        wk_tensor_free(out);
        if (src != g) wk_tensor_free(src);
        return NULL;
    }
    wk_index_args a = {.index = idx, .src = g, .dim = d};
    index_job job = {.args = &a, .dim = d, .index = idx, .src = src};
    index_kernels[g->device.type][op](out, &job);
    if (src != g) wk_tensor_free(src);
    return out;
}

wk_tensor *wki_index_add_zeros(const char *op, const int64_t *shape, int ndim, int dim,
                               wk_tensor *index, wk_tensor *src)
{
    if (!WKI_CHECK(op, index, src)) return NULL;
    wk_tensor *idx = wk_contiguous(index);
    wk_tensor *r = idx ? scatter_into_zeros(WK_INDEX_INDEX_ADD, op, shape, ndim, dim, idx, src)
                       : NULL;
    wk_tensor_free(idx);
    return r;
}

static int index_select_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    grads[0] = scatter_into_zeros(WK_INDEX_INDEX_ADD, "index_select", x->shape, x->ndim,
                                  (int)n->i[0], n->saved[0], g);
    return grads[0] ? 0 : -1;
}

static int gather_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    grads[0] = scatter_into_zeros(WK_INDEX_SCATTER_ADD, "gather", x->shape, x->ndim,
                                  (int)n->i[0], n->saved[0], g);
    return grads[0] ? 0 : -1;
}

/* out = x + scattered src: x's gradient is g; src's is g gathered at the index (zero
 * where src is larger than the index). */
static int scatter_add_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *src = n->inputs[1], *idx = n->saved[0];
    int d = (int)n->i[0];
    if (wki_node_input_needs_grad(n, 0)) grads[0] = g;
    if (!wki_node_input_needs_grad(n, 1)) return 0;
    wk_tensor *r = wk_gather(g, d, idx);
    if (r && !wk_same_shape(r, src)) {
        wk_tensor *z = wki_empty_on(src->shape, src->ndim, g->dtype, g->device);
        wk_tensor v = z ? *z : (wk_tensor){0};
        if (z) memset(wk_data(z), 0, (size_t)wk_numel(z) * wk_dtype_size(z->dtype));
        for (int i = 0; z && i < v.ndim; i++) v.shape[i] = idx->shape[i];
        if (!z || !wk_copy_(&v, r)) {
            wk_tensor_free(z);
            z = NULL;
        }
        wk_tensor_free(r);
        r = z;
    }
    grads[1] = r;
    return r ? 0 : -1;
}

/* out = x + src at the index along dim: x's gradient is g, src's is g selected there. */
static int index_add_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    if (wki_node_input_needs_grad(n, 0)) grads[0] = g;
    if (!wki_node_input_needs_grad(n, 1)) return 0;
    grads[1] = wk_index_select(g, (int)n->i[0], n->saved[0]);
    return grads[1] ? 0 : -1;
}

/* Zero where the mask filled, summed over the dims x was broadcast along. */
static int masked_fill_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0];
    wk_tensor *r = wk_masked_fill(g, n->saved[0], 0);
    wk_tensor *s = wki_sum_to_shape(r, x->shape, x->ndim);
    if (s != r) wk_tensor_free(r);
    grads[0] = s;
    return s ? 0 : -1;
}

/* cat/stack: input k is the slab of g at offset i[k] along dim i[4] (i[5]: stack, where
 * an input with one dim fewer than g is one index of the new dim). */
static int join_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    int d = (int)n->i[4];
    bool stack = n->i[5];
    for (int k = 0; k < n->ninputs; k++) {
        if (!wki_node_input_needs_grad(n, k)) continue;
        wk_tensor *in = n->inputs[k];
        grads[k] = stack && in->ndim < g->ndim ? wk_select(g, d, n->i[k])
                                                : wk_narrow(g, d, n->i[k], in->shape[d]);
        if (!grads[k]) return -1;
    }
    return 0;
}

/* Record the join of ts[0..count) along d onto target (the result, or a narrow view of
 * it standing for a group of inputs). A node holds at most WKI_NODE_MAX_INPUTS inputs,
 * so longer lists are split into groups, each a view of the result with its own node:
 * a tree whose leaves are the inputs. */
static bool record_join(wk_index_op op, wk_tensor *target, wk_tensor *const *ts, int count,
                        int d)
{
    enum { FAN = WKI_NODE_MAX_INPUTS };
    bool stack = op == WK_INDEX_STACK;
    wk_tensor *in[FAN] = {0}, *views[FAN] = {0};
    int64_t off[FAN], pos = 0;
    int per = (count + FAN - 1) / FAN, k = 0;
    bool ok = true;
    for (int s = 0; s < count && ok; s += per, k++) {
        int m = count - s < per ? count - s : per;
        int64_t len = 0;
        for (int j = s; j < s + m; j++)
            len += stack ? 1 : ts[j]->shape[d];
        off[k] = pos;
        if (m == 1) {
            in[k] = ts[s];
        } else if (wki_grad_needed(m, (const wk_tensor *const *)(ts + s))) {
            wk_no_grad_begin();
            views[k] = in[k] = wk_narrow(target, d, pos, len);
            wk_no_grad_end();
            ok = views[k] && record_join(op, views[k], ts + s, m, d);
        }
        pos += len;
    }
    wki_node *n = ok ? wki_node_new(target, index_info[op].name, join_backward, k, in) : NULL;
    for (int j = 0; j < FAN; j++)
        wk_tensor_free(views[j]); /* the node holds them now */
    if (!n) return false;
    for (int j = 0; j < k; j++)
        n->i[j] = off[j];
    n->i[4] = d;
    n->i[5] = stack;
    return true;
}

/* The node of op's result out (when an input requires grad). */
static bool record(wk_index_op op, wk_tensor *out, const wk_index_args *a, const index_job *job)
{
    if (op == WK_INDEX_CAT || op == WK_INDEX_STACK)
        return !wki_grad_needed(a->n, (const wk_tensor *const *)a->ts) ||
               record_join(op, out, a->ts, a->n, job->dim);
    static const wki_backward_fn backward[WK_INDEX_COUNT] = {
        [WK_INDEX_INDEX_SELECT] = index_select_backward,
        [WK_INDEX_GATHER] = gather_backward,
        [WK_INDEX_SCATTER_ADD] = scatter_add_backward,
        [WK_INDEX_INDEX_ADD] = index_add_backward,
        [WK_INDEX_MASKED_FILL] = masked_fill_backward,
    };
    bool two = op == WK_INDEX_SCATTER_ADD || op == WK_INDEX_INDEX_ADD;
    wk_tensor *in[2] = {a->x, two ? a->src : NULL};
    if (!backward[op] || !wki_grad_needed(2, (const wk_tensor *const *)in)) return true;
    wki_node *n = wki_node_new(out, index_info[op].name, backward[op], two ? 2 : 1, in);
    if (!n) return false;
    n->i[0] = job->dim;
    wki_node_save(n, 0, op == WK_INDEX_MASKED_FILL ? a->mask : job->index);
    return true;
}

wk_tensor *wk_index_apply(wk_index_op op, const wk_index_args *a)
{
    if ((unsigned)op >= WK_INDEX_COUNT || !a) {
        wk_set_error("index: invalid op %d or NULL args", (int)op);
        return NULL;
    }
    index_job job = {.args = a};
    WKI_PROF_OP(wk_index_name(op), a->x, a->index, a->src,
                a->n > 0 && a->ts ? a->ts[0] : a->mask);
    int64_t shape[WK_MAX_DIMS];
    int nd = 0;
    bool ok = false;
    const wk_tensor *first = NULL; /* gives the result's dtype and device */
    wk_dtype dtype = WK_DTYPE_I64;
    switch (op) {
    case WK_INDEX_INDEX_SELECT: ok = prep_index_select(a, &job, shape, &nd); break;
    case WK_INDEX_GATHER: ok = prep_gather(a, &job, shape, &nd); break;
    case WK_INDEX_SCATTER_ADD: ok = prep_scatter_add(a, &job, shape, &nd); break;
    case WK_INDEX_INDEX_ADD: ok = prep_index_add(a, &job, shape, &nd); break;
    case WK_INDEX_MASKED_FILL: ok = prep_masked_fill(a, &job, shape, &nd); break;
    case WK_INDEX_CAT:
    case WK_INDEX_STACK: ok = prep_join(op, a, &job, shape, &nd); break;
    case WK_INDEX_ONE_HOT: ok = prep_one_hot(a, &job, shape, &nd); break;
    default: break;
    }
    if (ok) {
        first = op == WK_INDEX_CAT || op == WK_INDEX_STACK ? a->ts[0] : a->x;
        if (op != WK_INDEX_ONE_HOT) dtype = first->dtype;
    }
    wk_tensor *out = ok ? wki_empty_on(shape, nd, dtype, first->device) : NULL;
    if (out) index_kernels[first->device.type][op](out, &job);
    if (out && !record(op, out, a, &job)) {
        wk_tensor_free(out);
        out = NULL;
    }
    wk_tensor_free(job.index);
    wk_tensor_free(job.src);
    return out;
}

wk_tensor *wk_index_select(wk_tensor *x, int dim, wk_tensor *index)
{
    return wk_index_apply(WK_INDEX_INDEX_SELECT,
                          &(wk_index_args){.x = x, .dim = dim, .index = index});
}

wk_tensor *wk_gather(wk_tensor *x, int dim, wk_tensor *index)
{
    return wk_index_apply(WK_INDEX_GATHER, &(wk_index_args){.x = x, .dim = dim, .index = index});
}

wk_tensor *wk_scatter_add(wk_tensor *x, int dim, wk_tensor *index, wk_tensor *src)
{
    return wk_index_apply(WK_INDEX_SCATTER_ADD,
                          &(wk_index_args){.x = x, .dim = dim, .index = index, .src = src});
}

wk_tensor *wk_index_add(wk_tensor *x, int dim, wk_tensor *index, wk_tensor *src)
{
    return wk_index_apply(WK_INDEX_INDEX_ADD,
                          &(wk_index_args){.x = x, .dim = dim, .index = index, .src = src});
}

wk_tensor *wk_masked_fill(wk_tensor *x, wk_tensor *mask, double value)
{
    return wk_index_apply(WK_INDEX_MASKED_FILL,
                          &(wk_index_args){.x = x, .mask = mask, .value = value});
}

wk_tensor *wk_cat(wk_tensor *const *ts, int n, int dim)
{
    return wk_index_apply(WK_INDEX_CAT, &(wk_index_args){.ts = ts, .n = n, .dim = dim});
}

wk_tensor *wk_stack(wk_tensor *const *ts, int n, int dim)
{
    return wk_index_apply(WK_INDEX_STACK, &(wk_index_args){.ts = ts, .n = n, .dim = dim});
}

wk_tensor *wk_one_hot(wk_tensor *labels, int64_t num_classes)
{
    return wk_index_apply(WK_INDEX_ONE_HOT,
                          &(wk_index_args){.x = labels, .num_classes = num_classes});
}

/* ---- split views ---- */

/* Narrow views of consecutive pieces: sizes[i], or `each` (the last one cut short) when
 * sizes is NULL. Returns count, or -1 after freeing the views already made. */
static int make_pieces(wk_tensor *x, int d, const int64_t *sizes, int64_t each, int count,
                       wk_tensor **out)
{
    int64_t start = 0, total = x->shape[d];
    for (int i = 0; i < count; i++) {
        int64_t len = sizes ? sizes[i] : (total - start < each ? total - start : each);
        out[i] = wk_narrow(x, d, start, len);
        if (!out[i]) {
            while (i-- > 0) wk_tensor_free(out[i]);
            return -1;
        }
        start += len;
    }
    return count;
}

/* Pieces of `each` along d; count is known by the caller. */
static int split_even(const char *op, wk_tensor *x, int d, int64_t each, int64_t count,
                      wk_tensor **out, int max_out)
{
    if (count > max_out || !out) {
        wk_set_error("%s: %lld pieces of dim %d (size %lld) do not fit in max_out %d", op,
                     (long long)count, d, (long long)x->shape[d], out ? max_out : 0);
        return -1;
    }
    return make_pieces(x, d, NULL, each, (int)count, out);
}

static int split_dim(const char *op, wk_tensor *x, int dim)
{
    if (!WKI_CHECK(op, x)) return -1;
    if (x->ndim < 1) {
        wk_set_error("%s: expected a tensor with at least 1 dim, got shape %s", op,
                     wki_shape_s(x));
        return -1;
    }
    return wki_norm_dim(op, dim, x->ndim);
}

int wk_split(wk_tensor *x, int64_t split_size, int dim, wk_tensor **out, int max_out)
{
    int d = split_dim("split", x, dim);
    if (d < 0) return -1;
    int64_t S = x->shape[d];
    if (split_size < 0 || (split_size == 0 && S > 0)) {
        wk_set_error("split: split_size must be > 0 (or 0 for a dim of size 0), got %lld "
                     "for dim %d of size %lld",
                     (long long)split_size, d, (long long)S);
        return -1;
    }
    int64_t count = split_size ? (S + split_size - 1) / split_size : 1;
    return split_even("split", x, d, split_size, count < 1 ? 1 : count, out, max_out);
}

int wk_split_sizes(wk_tensor *x, const int64_t *sizes, int n, int dim, wk_tensor **out)
{
    int d = split_dim("split_sizes", x, dim);
    if (d < 0) return -1;
    if (n < 0 || (n > 0 && (!sizes || !out))) {
        wk_set_error("split_sizes: %d sizes given with %s sizes and %s out", n,
                     sizes ? "non-NULL" : "NULL", out ? "non-NULL" : "NULL");
        return -1;
    }
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        if (sizes[i] < 0) {
            wk_set_error("split_sizes: size %lld at position %d is negative",
                         (long long)sizes[i], i);
            return -1;
        }
        sum += sizes[i];
    }
    if (sum != x->shape[d]) {
        wk_set_error("split_sizes: sizes sum to %lld but dim %d of shape %s has size %lld",
                     (long long)sum, d, wki_shape_s(x), (long long)x->shape[d]);
        return -1;
    }
    return make_pieces(x, d, sizes, 0, n, out);
}

int wk_chunk(wk_tensor *x, int chunks, int dim, wk_tensor **out, int max_out)
{
    int d = split_dim("chunk", x, dim);
    if (d < 0) return -1;
    if (chunks < 1) {
        wk_set_error("chunk: chunks must be > 0, got %d", chunks);
        return -1;
    }
    int64_t S = x->shape[d], each = (S + chunks - 1) / chunks;
    /* torch keeps `chunks` empty pieces when the dim is empty */
    int64_t count = S == 0 ? chunks : (S + each - 1) / each;
    return split_even("chunk", x, d, each, count, out, max_out);
}

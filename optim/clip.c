/* Gradient clipping by total norm and by value. */
#include <math.h>
#include <stdlib.h>

#include "../tensor/tensor-impl.h"
#include "clip.h"

/* Elements per block of the norm's partial sums and of the scaling loops. */
#define BLOCK ((int64_t)1 << 14)

typedef struct {
    wk_tensor *grad;   /* the parameter's grad */
    wk_tensor *data;   /* grad itself when contiguous, else a contiguous copy */
    int64_t n, first;  /* elements; index of its first block */
} grad_ref;

/* Collect the grads of params (contiguous copies in the current frame where needed).
 * Returns the number found, or -1 with an error. */
static int gather(const char *op, wk_tensor *const *params, int n, grad_ref *refs, int64_t *nblocks)
{
    int k = 0;
    *nblocks = 0;
    for (int i = 0; i < n; i++) {
        if (!params[i]) {
            wk_set_error("%s: tensor %d is NULL", op, i);
            return -1;
        }
        wk_tensor *g = params[i]->grad;
        if (!g) continue;
        if (g->dtype != WK_DTYPE_F32 && g->dtype != WK_DTYPE_F64) {
            wk_set_error("%s: the grad of tensor %d is %s, expected float32 or float64%s", op, i,
                         wk_dtype_name(g->dtype),
                         g->dtype == WK_DTYPE_BF16 || g->dtype == WK_DTYPE_F16
                             ? " (keep float32 grads; convert with wk_to_dtype)"
                             : "");
            return -1;
        }
        if (!wki_require_cpu(op, g)) return -1;
        wk_tensor *c = wk_is_contiguous(g) ? g : wk_contiguous(g);
        if (!c) return -1;
        int64_t m = wk_numel(g);
        refs[k++] = (grad_ref){g, c, m, *nblocks};
        *nblocks += (m + BLOCK - 1) / BLOCK;
    }
    return k;
}

/* The grad and range of block b. */
static const grad_ref *block_of(const grad_ref *refs, int nref, int64_t b, int64_t *lo, int64_t *hi)
{
    int l = 0, h = nref - 1;
    while (l < h) { /* last ref with first <= b */
        int mid = (l + h + 1) / 2;
        if (refs[mid].first <= b) l = mid;
        else h = mid - 1;
    }
    const grad_ref *r = &refs[l];
    *lo = (b - r->first) * BLOCK;
    *hi = *lo + BLOCK < r->n ? *lo + BLOCK : r->n;
    return r;
}

/* Sum of |x|^p over a block (p = INFINITY: max |x|, NaN if any x is NaN). */
#define DEFINE_BLOCK_NORM(T)                                                              \
    static double block_norm_##T(const T *x, int64_t n, double p)                         \
    {                                                                                     \
        double acc = 0;                                                                   \
        if (isinf(p)) {                                                                   \
            bool nan = false;                                                             \
            for (int64_t i = 0; i < n; i++) {                                             \
                double a = fabs((double)x[i]);                                            \
                nan |= a != a;                                                            \
                acc = a > acc ? a : acc;                                                  \
            }                                                                             \
            return nan ? NAN : acc;                                                       \
        }                                                                                 \
        if (p == 2) {                                                                     \
            for (int64_t i = 0; i < n; i++) acc += (double)x[i] * (double)x[i];           \
        } else if (p == 1) {                                                              \
            for (int64_t i = 0; i < n; i++) acc += fabs((double)x[i]);                    \
        } else {                                                                          \
            for (int64_t i = 0; i < n; i++) acc += pow(fabs((double)x[i]), p);            \
        }                                                                                 \
        return acc;                                                                       \
    }
DEFINE_BLOCK_NORM(float)
DEFINE_BLOCK_NORM(double)

/* Combine p-th power sums (or maxima) a and b. */
static double combine(double a, double b, double p)
{
    if (isinf(p)) return (isnan(a) || isnan(b)) ? NAN : a > b ? a : b;
    return a + b;
}

static double root(double s, double p)
{
    if (isinf(p)) return s;
    if (p == 2) return sqrt(s);
    if (p == 1) return s;
    return pow(s, 1.0 / p);
}

static double clip_norm(const char *op, wk_tensor *const *params, int n, double max_norm,
                        double p, bool error_if_nonfinite, grad_ref *refs)
{
    int64_t nblocks;
    int nref = gather(op, params, n, refs, &nblocks);
    if (nref < 0) return -1;
    if (nref == 0) return 0;
    double *part = malloc(sizeof *part * (size_t)(nblocks ? nblocks : 1));
    if (!part) {
        wk_set_error("%s: out of memory", op);
        return -1;
    }
    int64_t total_elems = 0;
    for (int k = 0; k < nref; k++) total_elems += refs[k].n;
#pragma omp parallel for schedule(static) num_threads(wki_threads_for(total_elems, BLOCK))
    for (int64_t b = 0; b < nblocks; b++) {
        int64_t lo, hi;
        const grad_ref *r = block_of(refs, nref, b, &lo, &hi);
        part[b] = r->data->dtype == WK_DTYPE_F32
                      ? block_norm_float((const float *)wk_data(r->data) + lo, hi - lo, p)
                      : block_norm_double((const double *)wk_data(r->data) + lo, hi - lo, p);
    }
    /* The norm of the per-tensor norms, as torch computes it. */
    double total = 0;
    for (int k = 0; k < nref; k++) {
        int64_t nb = (refs[k].n + BLOCK - 1) / BLOCK;
        double s = 0;
        for (int64_t b = 0; b < nb; b++) s = combine(s, part[refs[k].first + b], p);
        double norm = root(s, p);
        total = combine(total, isinf(p) ? norm : pow(norm, p), p);
    }
    free(part);
    total = root(total, p);
    if (error_if_nonfinite && !isfinite(total)) {
        wk_set_error("%s: the total norm of order %g of the gradients is %g, so they cannot be "
                     "clipped (pass error_if_nonfinite = false to scale them anyway)",
                     op, p, total);
        return -1;
    }
    double coef = max_norm / (total + 1e-6);
    if (coef < 1 || isnan(coef)) {
#pragma omp parallel for schedule(static) num_threads(wki_threads_for(total_elems, BLOCK))
        for (int64_t b = 0; b < nblocks; b++) {
            int64_t lo, hi;
            const grad_ref *r = block_of(refs, nref, b, &lo, &hi);
            if (r->data->dtype == WK_DTYPE_F32) {
                float *x = (float *)wk_data(r->data), c = (float)coef;
                for (int64_t i = lo; i < hi; i++) x[i] *= c;
            } else {
                double *x = (double *)wk_data(r->data);
                for (int64_t i = lo; i < hi; i++) x[i] *= coef;
            }
        }
        for (int k = 0; k < nref; k++)
            if (refs[k].data != refs[k].grad && !wk_copy_(refs[k].grad, refs[k].data)) return -1;
    }
    return total;
}

double wk_clip_grad_norm_(wk_tensor *const *params, int n, double max_norm, double norm_type,
                          bool error_if_nonfinite)
{
    const char *op = "clip_grad_norm_";
    if (n < 0 || (n > 0 && !params)) {
        wk_set_error("%s: got %d tensors at %p", op, n, (const void *)params);
        return -1;
    }
    if (!(norm_type > 0)) {
        wk_set_error("%s: norm_type = %g, expected > 0 (INFINITY for the largest |g|)", op,
                     norm_type);
        return -1;
    }
    if (!(max_norm >= 0)) {
        wk_set_error("%s: max_norm = %g, expected >= 0", op, max_norm);
        return -1;
    }
    if (n == 0) return 0;
    grad_ref *refs = malloc(sizeof *refs * (size_t)n);
    if (!refs) {
        wk_set_error("%s: out of memory", op);
        return -1;
    }
    wk_frame_begin();
    double total = clip_norm(op, params, n, max_norm, norm_type, error_if_nonfinite, refs);
    wk_frame_end();
    free(refs);
    return total;
}

int wk_clip_grad_value_(wk_tensor *const *params, int n, double clip_value)
{
    const char *op = "clip_grad_value_";
    if (n < 0 || (n > 0 && !params)) {
        wk_set_error("%s: got %d tensors at %p", op, n, (const void *)params);
        return -1;
    }
    if (!(clip_value >= 0)) {
        wk_set_error("%s: clip_value = %g, expected >= 0", op, clip_value);
        return -1;
    }
    if (n == 0) return 0;
    grad_ref *refs = malloc(sizeof *refs * (size_t)n);
    if (!refs) {
        wk_set_error("%s: out of memory", op);
        return -1;
    }
    wk_frame_begin();
    int64_t nblocks;
    int nref = gather(op, params, n, refs, &nblocks), rc = nref < 0 ? -1 : 0;
    int64_t total_elems = 0;
    for (int k = 0; k < nref; k++) total_elems += refs[k].n;
#pragma omp parallel for schedule(static) num_threads(wki_threads_for(total_elems, BLOCK))
    for (int64_t b = 0; b < (nref > 0 ? nblocks : 0); b++) {
        int64_t lo, hi;
        const grad_ref *r = block_of(refs, nref, b, &lo, &hi);
        if (r->data->dtype == WK_DTYPE_F32) {
            float *x = (float *)wk_data(r->data), v = (float)clip_value;
            for (int64_t i = lo; i < hi; i++) x[i] = x[i] < -v ? -v : x[i] > v ? v : x[i];
        } else {
            double *x = (double *)wk_data(r->data), v = clip_value;
            for (int64_t i = lo; i < hi; i++) x[i] = x[i] < -v ? -v : x[i] > v ? v : x[i];
        }
    }
    for (int k = 0; k < nref; k++)
        if (refs[k].data != refs[k].grad && !wk_copy_(refs[k].grad, refs[k].data)) rc = -1;
    wk_frame_end();
    free(refs);
    return rc;
}

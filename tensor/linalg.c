/* The matrix-product family: one front-end (wk_linalg) that validates, lays out the
 * operands for BLAS, allocates the result and records the autograd node, a per-device
 * GEMM kernel table, and the backward of each op (GEMMs with transpose flags). The CPU
 * kernel calls OpenBLAS (sgemm/dgemm, gemv for matrix-vector shapes). */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "elementwise.h"
#include "linalg.h"
#include "reduce.h"

static int matmul_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int addmm_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);
static int linear_backward(wki_node *n, wk_tensor *g, wk_tensor **grads);

/* Operand ranks each op accepts (0 = any rank >= 1) and its backward. */
static const struct {
    const char *name;
    int a_ndim, b_ndim;
    wki_backward_fn backward;
} linalg_info[] = {
    [WK_LINALG_MATMUL] = {"matmul", 0, 0, matmul_backward},
    [WK_LINALG_MM] = {"mm", 2, 2, matmul_backward},
    [WK_LINALG_BMM] = {"bmm", 3, 3, matmul_backward},
    [WK_LINALG_ADDMM] = {"addmm", 2, 2, addmm_backward},
    [WK_LINALG_LINEAR] = {"linear", 0, 2, linear_backward},
};
_Static_assert(sizeof linalg_info / sizeof linalg_info[0] == WK_LINALG_COUNT,
               "linalg_info must have one row per wk_linalg_op");

const char *wk_linalg_name(wk_linalg_op op)
{
    return (unsigned)op < WK_LINALG_COUNT ? linalg_info[op].name : "?";
}

/* One GEMM operand: a batch of rows x cols matrices. Element (r, c) of batch item
 * `idx` is at data + sum(idx_i * bstrides[i]) + (trans ? c*ld + r : r*ld + c). */
typedef struct {
    const char *data;
    int64_t bstrides[WK_MAX_DIMS]; /* elements, over the broadcast batch dims */
    int64_t rows, cols;
    bool trans;
    int64_t ld;
} gemm_operand;

/* c[batch, M, N] = alpha * a[batch, M, K] @ b[batch, K, N] + beta * c (c contiguous;
 * beta = 0 means c is not read). */
typedef struct {
    wk_dtype dtype;
    int nbdim;
    int64_t bshape[WK_MAX_DIMS];
    int64_t nbatch, M, N, K;
    gemm_operand a, b;
    char *c;
    double alpha, beta;
} gemm_desc;

typedef void (*gemm_kernel)(const gemm_desc *d);

/* ---- CPU kernel ---- */

#define SMALL_GEMM (1 << 21) /* M*N*K below which a batch runs one GEMM per thread */
#define GEMM_GRAIN (1 << 16) /* multiply-adds per thread at least */

static void scale_c(wk_dtype dtype, char *c, int64_t n, double beta)
{
    if (dtype == WK_DTYPE_F32) {
        float *p = (float *)c, s = (float)beta;
        if (beta == 0) memset(p, 0, (size_t)n * sizeof *p);
        else
            for (int64_t i = 0; i < n; i++) p[i] *= s;
    } else {
        double *p = (double *)c;
        if (beta == 0) memset(p, 0, (size_t)n * sizeof *p);
        else
            for (int64_t i = 0; i < n; i++) p[i] *= beta;
    }
}

/* One product of M x K by K x N into contiguous c. Matrix-vector shapes go to gemv,
 * which is much faster there than a GEMM's packing. */
#define GEMM_ONE(T, GEMM, GEMV)                                                          \
    static void GEMM##_one(const gemm_desc *d, const T *a, const T *b, T *c, int64_t M)  \
    {                                                                                    \
        blasint m = (blasint)M, n = (blasint)d->N, k = (blasint)d->K;                   \
        blasint lda = (blasint)d->a.ld, ldb = (blasint)d->b.ld;                          \
        T alpha = (T)d->alpha, beta = (T)d->beta;                                        \
        if (beta == 0 && (m == 1 || n == 1))                                             \
            memset(c, 0, (size_t)m * (size_t)n * sizeof *c); /* gemv may read y */       \
        if (n == 1) {                                                                    \
            blasint incx = d->b.trans ? 1 : ldb;                                         \
            if (d->a.trans)                                                              \
                GEMV(CblasRowMajor, CblasTrans, k, m, alpha, a, lda, b, incx, beta, c, 1); \
            else                                                                         \
                GEMV(CblasRowMajor, CblasNoTrans, m, k, alpha, a, lda, b, incx, beta, c, 1); \
        } else if (m == 1) {                                                             \
            blasint incx = d->a.trans ? lda : 1;                                         \
            if (d->b.trans)                                                              \
                GEMV(CblasRowMajor, CblasNoTrans, n, k, alpha, b, ldb, a, incx, beta, c, 1); \
            else                                                                         \
                GEMV(CblasRowMajor, CblasTrans, k, n, alpha, b, ldb, a, incx, beta, c, 1); \
        } else {                                                                         \
            GEMM(CblasRowMajor, d->a.trans ? CblasTrans : CblasNoTrans,                  \
                 d->b.trans ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb,  \
                 beta, c, n);                                                            \
        }                                                                                \
    }
GEMM_ONE(float, cblas_sgemm, cblas_sgemv)
GEMM_ONE(double, cblas_dgemm, cblas_dgemv)

static void gemm_one(const gemm_desc *d, const char *a, const char *b, char *c, int64_t M)
{
    if (d->dtype == WK_DTYPE_F32)
        cblas_sgemm_one(d, (const float *)a, (const float *)b, (float *)c, M);
    else
        cblas_dgemm_one(d, (const double *)a, (const double *)b, (double *)c, M);
}

/* A contiguous stack of row-major A items multiplied by one shared B is a single GEMM
 * with nbatch*M rows. */
static bool can_fold(const gemm_desc *d)
{
    if (d->nbatch < 2 || d->a.trans || d->nbatch * d->M > INT_MAX) return false;
    int64_t expect = d->M * d->a.ld;
    for (int i = d->nbdim - 1; i >= 0; i--) {
        if (d->bshape[i] == 1) continue;
        if (d->b.bstrides[i] != 0 || d->a.bstrides[i] != expect) return false;
        expect *= d->bshape[i];
    }
    return true;
}

static void cpu_gemm(const gemm_desc *d)
{
    size_t es = wk_dtype_size(d->dtype);
    int64_t mn = d->M * d->N;
    if (d->nbatch == 0 || mn == 0) return;
    if (d->K == 0) {
        scale_c(d->dtype, d->c, d->nbatch * mn, d->beta);
        return;
    }
    if (d->nbatch == 1 || can_fold(d)) {
        gemm_one(d, d->a.data, d->b.data, d->c, d->nbatch * d->M);
        return;
    }
    /* Big products: one after another, each threaded by OpenBLAS. Small ones: one per
     * thread (OpenBLAS runs single-threaded inside a parallel region). */
    int64_t work = mn * d->K;
    int nt = work < SMALL_GEMM ? wki_threads_for(d->nbatch * work, GEMM_GRAIN) : 1;
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t i = 0; i < d->nbatch; i++) {
        int64_t oa = 0, ob = 0, rem = i;
        for (int k = d->nbdim - 1; k >= 0; k--) {
            int64_t idx = rem % d->bshape[k];
            rem /= d->bshape[k];
            oa += idx * d->a.bstrides[k];
            ob += idx * d->b.bstrides[k];
        }
        gemm_one(d, d->a.data + oa * (int64_t)es, d->b.data + ob * (int64_t)es,
                 d->c + i * mn * (int64_t)es, d->M);
    }
}

static const gemm_kernel gemm_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = cpu_gemm,
    [WK_DEVICE_CUDA] = NULL,
};

/* ---- front-end ---- */

/* The logical matrix of an operand before layout checks: batch dims (own sizes), the
 * matrix dims and their strides. */
typedef struct {
    const wk_tensor *t;
    int nbdim;
    int64_t bshape[WK_MAX_DIMS], bstrides[WK_MAX_DIMS];
    int64_t rows, cols, rs, cs;
} mat_view;

/* role 0: left operand (1-d is a row); 1: right operand (1-d is a column); 2: linear's
 * weight (out, in) read as its transpose (in, out). */
static void mat_view_of(const wk_tensor *t, int role, mat_view *m)
{
    memset(m, 0, sizeof *m);
    m->t = t;
    if (role == 2) {
        m->rows = t->shape[1];
        m->cols = t->shape[0];
        m->rs = t->strides[1];
        m->cs = t->strides[0];
    } else if (t->ndim == 1 && role == 0) {
        m->rows = 1;
        m->cols = t->shape[0];
        m->cs = t->strides[0];
    } else if (t->ndim == 1) {
        m->rows = t->shape[0];
        m->cols = 1;
        m->rs = t->strides[0];
    } else {
        int nd = t->ndim;
        m->nbdim = nd - 2;
        memcpy(m->bshape, t->shape, (size_t)m->nbdim * sizeof *t->shape);
        memcpy(m->bstrides, t->strides, (size_t)m->nbdim * sizeof *t->strides);
        m->rows = t->shape[nd - 2];
        m->cols = t->shape[nd - 1];
        m->rs = t->strides[nd - 2];
        m->cs = t->strides[nd - 1];
    }
}

/* Can BLAS read this matrix as it is? Row-major with ld >= cols, or column-major with
 * ld >= rows; strides of size-1 dims do not matter. */
static bool blas_layout(const mat_view *m, bool *trans, int64_t *ld)
{
    int64_t r = m->rows, c = m->cols;
    if (r == 0 || c == 0) { /* nothing is read */
        *trans = false;
        *ld = c > 1 ? c : 1;
        return true;
    }
    if ((c == 1 || m->cs == 1) && (r == 1 || m->rs >= (c > 1 ? c : 1))) {
        *trans = false;
        *ld = r == 1 ? (c > 1 ? c : 1) : m->rs;
    } else if ((r == 1 || m->rs == 1) && (c == 1 || m->cs >= (r > 1 ? r : 1))) {
        *trans = true;
        *ld = c == 1 ? (r > 1 ? r : 1) : m->cs;
    } else {
        return false;
    }
    return *ld <= INT_MAX;
}

static bool check_dtypes(const char *op, const wk_tensor *a, const wk_tensor *b)
{
    if (a->dtype != b->dtype) {
        wk_set_error("%s: dtypes %s and %s differ", op, wk_dtype_name(a->dtype),
                     wk_dtype_name(b->dtype));
        return false;
    }
    if (a->dtype == WK_DTYPE_F32 || a->dtype == WK_DTYPE_F64) return true;
    if (a->dtype == WK_DTYPE_BF16 || a->dtype == WK_DTYPE_F16)
        wk_set_error("%s: %s is a storage type; convert with wk_to_dtype(t, WK_DTYPE_F32) "
                     "first",
                     op, wk_dtype_name(a->dtype));
    else
        wk_set_error("%s: dtype %s is not supported (expected float32 or float64)", op,
                     wk_dtype_name(a->dtype));
    return false;
}

/* Shape rules of each op; on success the logical operands are in ma, mb. */
static bool check_shapes(wk_linalg_op op, const wk_tensor *a, const wk_tensor *b,
                         const wk_tensor *c, mat_view *ma, mat_view *mb)
{
    const char *name = linalg_info[op].name;
    int an = linalg_info[op].a_ndim, bn = linalg_info[op].b_ndim;
    if (a->ndim < 1 || b->ndim < 1 || (an && a->ndim != an) || (bn && b->ndim != bn)) {
        if (op == WK_LINALG_MATMUL)
            wk_set_error("matmul: both arguments need at least 1 dim, got shapes %s and %s",
                         wki_shape_s(a), wki_shape_s(b));
        else if (op == WK_LINALG_LINEAR && b->ndim != 2)
            wk_set_error("linear: weight must be 2-d (out, in), got shape %s",
                         wki_shape_s(b));
        else if (op == WK_LINALG_LINEAR)
            wk_set_error("linear: input needs at least 1 dim, got shape %s", wki_shape_s(a));
        else
            wk_set_error("%s: expected %d-d tensors, got shapes %s and %s", name, an,
                         wki_shape_s(a), wki_shape_s(b));
        return false;
    }
    mat_view_of(a, 0, ma);
    mat_view_of(b, op == WK_LINALG_LINEAR ? 2 : 1, mb);
    if (ma->cols != mb->rows) {
        if (op == WK_LINALG_LINEAR)
            wk_set_error("linear: input shape %s and weight shape %s do not match (in "
                         "features %lld != %lld)",
                         wki_shape_s(a), wki_shape_s(b), (long long)ma->cols,
                         (long long)mb->rows);
        else
            wk_set_error("%s: shapes %s and %s cannot be multiplied (%lld != %lld)", name,
                         wki_shape_s(a), wki_shape_s(b), (long long)ma->cols,
                         (long long)mb->rows);
        return false;
    }
    if (op == WK_LINALG_BMM && a->shape[0] != b->shape[0]) {
        wk_set_error("bmm: batch sizes differ (shapes %s and %s)", wki_shape_s(a),
                     wki_shape_s(b));
        return false;
    }
    int64_t lim = INT_MAX;
    if (ma->rows > lim || ma->cols > lim || mb->cols > lim) {
        wk_set_error("%s: shapes %s and %s exceed the BLAS size limit %lld", name,
                     wki_shape_s(a), wki_shape_s(b), (long long)lim);
        return false;
    }
    if (op == WK_LINALG_ADDMM) {
        int64_t M = ma->rows, N = mb->cols;
        bool ok = c->ndim <= 2;
        for (int i = 0; ok && i < c->ndim; i++) {
            int64_t want = c->ndim - i == 1 ? N : M;
            ok = c->shape[i] == 1 || c->shape[i] == want;
        }
        if (!ok) {
            wk_set_error("addmm: bias shape %s does not broadcast to [%lld, %lld]",
                         wki_shape_s(c), (long long)M, (long long)N);
            return false;
        }
    }
    if (op == WK_LINALG_LINEAR && c) {
        int64_t N = mb->cols, n = wk_numel(c);
        if (c->ndim > 1 || (n != N && n != 1)) {
            wk_set_error("linear: bias shape %s does not match weight shape %s (expected "
                         "[%lld])",
                         wki_shape_s(c), wki_shape_s(b), (long long)N);
            return false;
        }
    }
    return true;
}

/* Batch dims of both operands broadcast together into d; false with an error if not. */
static bool broadcast_batch(const char *op, const mat_view *ma, const mat_view *mb,
                            gemm_desc *d)
{
    int nb = ma->nbdim > mb->nbdim ? ma->nbdim : mb->nbdim;
    d->nbdim = nb;
    d->nbatch = 1;
    for (int i = 0; i < nb; i++) {
        int ia = i - (nb - ma->nbdim), ib = i - (nb - mb->nbdim);
        int64_t sa = ia >= 0 ? ma->bshape[ia] : 1, sb = ib >= 0 ? mb->bshape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            wk_set_error("%s: batch dims %s and %s do not broadcast (shapes %s and %s)", op,
                         wki_dims_s(ma->bshape, ma->nbdim), wki_dims_s(mb->bshape, mb->nbdim),
                         wki_shape_s(ma->t), wki_shape_s(mb->t));
            return false;
        }
        d->bshape[i] = sa == 1 ? sb : sa;
        d->nbatch *= d->bshape[i];
    }
    return true;
}

/* Point op at m's data, with batch strides over d's broadcast batch dims. */
static void set_operand(gemm_operand *op, const mat_view *m, const gemm_desc *d, bool trans,
                        int64_t ld)
{
    op->data = wk_data(m->t);
    op->rows = m->rows;
    op->cols = m->cols;
    op->trans = trans;
    op->ld = ld;
    for (int i = 0; i < d->nbdim; i++) {
        int j = i - (d->nbdim - m->nbdim);
        op->bstrides[i] = j < 0 || m->bshape[j] == 1 ? 0 : m->bstrides[j];
    }
}

/* A layout BLAS can read: m itself, or a contiguous copy (returned in *tmp to free). */
static bool blas_operand(const mat_view *m, int role, mat_view *out, bool *trans,
                         int64_t *ld, wk_tensor **tmp)
{
    *out = *m;
    if (blas_layout(m, trans, ld)) return true;
    wk_no_grad_begin(); /* an internal copy: no node */
    *tmp = wk_contiguous((wk_tensor *)m->t);
    wk_no_grad_end();
    if (!*tmp) return false;
    mat_view_of(*tmp, role, out);
    return blas_layout(out, trans, ld);
}

/* beta*c + alpha*(a @ b) under op's rules, alpha and beta taken as given: the forward of
 * every op and the products of the backward passes. */
static wk_tensor *product(wk_linalg_op op, wk_tensor *a, wk_tensor *b, wk_tensor *c,
                          double beta, double alpha)
{
    const char *name = linalg_info[op].name;
    bool has_c = op == WK_LINALG_ADDMM || (op == WK_LINALG_LINEAR && c);
    bool ok = op == WK_LINALG_ADDMM ? WKI_CHECK(name, c, a, b) /* the user's order */
              : has_c               ? WKI_CHECK(name, a, b, c)
                                    : WKI_CHECK(name, a, b);
    if (!ok) return NULL;
    if (!wki_same_device(name, a, b) || (has_c && !wki_same_device(name, a, c)))
        return NULL;
    if (!check_dtypes(name, a, b) || (has_c && !check_dtypes(name, c, a))) return NULL;
    gemm_kernel kernel = gemm_kernels[a->device.type];
    if (!kernel) {
        char dev[32];
        wk_set_error("%s: no kernel for device %s", name,
                     wk_device_str(a->device, dev, sizeof dev));
        return NULL;
    }
    if (!has_c) c = NULL;

    mat_view ma, mb;
    gemm_desc d = {.dtype = a->dtype};
    if (!check_shapes(op, a, b, c, &ma, &mb) || !broadcast_batch(name, &ma, &mb, &d))
        return NULL;
    d.M = ma.rows;
    d.K = ma.cols;
    d.N = mb.cols;

    /* The result: broadcast batch dims, then M unless a is a vector, then N unless b is
     * a vector; its memory is [nbatch, M, N] either way. */
    int64_t shape[WK_MAX_DIMS + 2];
    int nd = d.nbdim;
    memcpy(shape, d.bshape, (size_t)nd * sizeof *shape);
    if (a->ndim > 1) shape[nd++] = d.M;
    if (b->ndim > 1) shape[nd++] = d.N;
    if (nd > WK_MAX_DIMS) {
        wk_set_error("%s: result of shapes %s and %s would have more than %d dims", name,
                     wki_shape_s(a), wki_shape_s(b), WK_MAX_DIMS);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, nd, a->dtype, a->device);
    if (!out) return NULL;

    /* Fused bias: load it into the result, then the GEMM accumulates with beta. */
    d.alpha = alpha;
    d.beta = c && beta != 0 ? beta : 0;
    if (d.beta != 0 && !wk_copy_(out, c)) {
        wk_tensor_free(out);
        return NULL;
    }

    wk_tensor *tmp_a = NULL, *tmp_b = NULL;
    mat_view la, lb;
    bool ta, tb;
    int64_t lda, ldb;
    if (!blas_operand(&ma, 0, &la, &ta, &lda, &tmp_a) ||
        !blas_operand(&mb, op == WK_LINALG_LINEAR ? 2 : 1, &lb, &tb, &ldb, &tmp_b)) {
        wk_tensor_free(tmp_a);
        wk_tensor_free(tmp_b);
        wk_tensor_free(out);
        return NULL;
    }
    set_operand(&d.a, &la, &d, ta, lda);
    set_operand(&d.b, &lb, &d, tb, ldb);
    d.c = wk_data(out);
    kernel(&d);
    wk_tensor_free(tmp_a);
    wk_tensor_free(tmp_b);
    return out;
}

wk_tensor *wk_linalg(wk_linalg_op op, wk_tensor *a, wk_tensor *b, wk_tensor *c, double beta,
                     double alpha)
{
    if ((unsigned)op >= WK_LINALG_COUNT) {
        wk_set_error("linalg: invalid op %d", (int)op);
        return NULL;
    }
    if (op != WK_LINALG_ADDMM && op != WK_LINALG_LINEAR) c = NULL;
    WKI_PROF_OP(linalg_info[op].name, a, b, c);
    if (op == WK_LINALG_LINEAR) beta = alpha = 1;
    if (op != WK_LINALG_ADDMM && op != WK_LINALG_LINEAR) alpha = beta = 1;
    wk_tensor *out = product(op, a, b, c, beta, alpha);
    if (out) WKI_PROF_FLOPS(2.0 * (double)wk_numel(out) * (double)a->shape[a->ndim - 1]);
    if (out && wki_grad_needed(3, (const wk_tensor *[]){a, b, c})) {
        wki_node *n = wki_node_new(out, linalg_info[op].name, linalg_info[op].backward, 3,
                                   (wk_tensor *[]){a, b, c});
        if (!n) {
            wk_tensor_free(out);
            return NULL;
        }
        n->f[0] = beta;
        n->f[1] = alpha;
    }
    return out;
}

/* ---- backward ----
 * For out = alpha * a @ b: grad_a = alpha * g @ b^T and grad_b = alpha * a^T @ g, as
 * products over transposed views (BLAS reads them with its transpose flags; nothing is
 * copied), with broadcast batch dims summed back. Temporaries are freed as soon as they
 * are used, so a backward pass does not keep its gradients' storage alive. */

/* Free t unless it is `keep`. */
static void drop(wk_tensor *t, const wk_tensor *keep)
{
    if (t != keep) wk_tensor_free(t);
}

/* r reduced to `like`'s shape: broadcast batch dims summed, then reshaped (a 1-d operand
 * was promoted to a matrix). Consumes r. */
static wk_tensor *fit_to(wk_tensor *r, const wk_tensor *m, const wk_tensor *like)
{
    wk_tensor *s = wki_sum_to_shape(r, m->shape, m->ndim);
    drop(r, s);
    if (!s || wk_same_shape(s, like)) return s;
    wk_tensor *v = wk_reshape(s, like->shape, like->ndim);
    wk_tensor_free(s);
    return v;
}

/* The product of (rows, k) and (k, cols) views of x and y flattened over their leading
 * dims: x (..., P) seen as (R, P) transposed, times y (..., Q) as (R, Q), gives the
 * (P, Q) sum over all R rows at once (one GEMM instead of a batch and a reduction). */
static wk_tensor *rows_product(wk_tensor *x, wk_tensor *y, double alpha)
{
    int64_t P = x->shape[x->ndim - 1], Q = y->shape[y->ndim - 1];
    int64_t R = wki_shape_numel(x->shape, x->ndim - 1);
    wk_tensor *x2 = wk_reshape(x, WK_SHAPE(R, P));
    wk_tensor *y2 = wk_reshape(y, WK_SHAPE(R, Q));
    wk_tensor *xt = wk_transpose(x2, 0, 1);
    wk_tensor *r = xt && y2 ? product(WK_LINALG_MM, xt, y2, NULL, 0, alpha) : NULL;
    wk_tensor_free(x2);
    wk_tensor_free(y2);
    wk_tensor_free(xt);
    return r;
}

/* alpha * gm @ bm^T summed to am's shape, then shaped like a. */
static wk_tensor *grad_left(wk_tensor *gm, wk_tensor *am, wk_tensor *bm, const wk_tensor *a,
                            double alpha)
{
    wk_tensor *bt = wk_transpose(bm, -1, -2);
    wk_tensor *r = bt ? product(WK_LINALG_MATMUL, gm, bt, NULL, 0, alpha) : NULL;
    wk_tensor_free(bt);
    return r ? fit_to(r, am, a) : NULL;
}

/* alpha * am^T @ gm summed to bm's shape, then shaped like b. A matrix b shared by a
 * batch of a's gets one GEMM over all the batch's rows. */
static wk_tensor *grad_right(wk_tensor *gm, wk_tensor *am, wk_tensor *bm, const wk_tensor *b,
                             double alpha)
{
    if (bm->ndim == 2 && am->ndim > 2) {
        wk_tensor *r = rows_product(am, gm, alpha);
        return r ? fit_to(r, bm, b) : NULL;
    }
    wk_tensor *at = wk_transpose(am, -1, -2);
    wk_tensor *r = at ? product(WK_LINALG_MATMUL, at, gm, NULL, 0, alpha) : NULL;
    wk_tensor_free(at);
    return r ? fit_to(r, bm, b) : NULL;
}

/* matmul, mm, bmm (and the products of addmm): 1-d operands are promoted to matrices
 * as in the forward, and g gets the dims the forward removed. */
static int product_grads(wki_node *n, wk_tensor *g, wk_tensor **grads, double alpha)
{
    wk_tensor *a = n->inputs[0], *b = n->inputs[1];
    wk_tensor *am = a->ndim == 1 ? wk_unsqueeze(a, 0) : a;
    wk_tensor *bm = b->ndim == 1 ? wk_unsqueeze(b, -1) : b;
    wk_tensor *g1 = b->ndim == 1 ? wk_unsqueeze(g, -1) : g;
    wk_tensor *gm = a->ndim == 1 && g1 ? wk_unsqueeze(g1, -2) : g1;
    int rc = am && bm && gm ? 0 : -1;
    if (!rc && wki_node_input_needs_grad(n, 0) && !(grads[0] = grad_left(gm, am, bm, a, alpha)))
        rc = -1;
    if (!rc && wki_node_input_needs_grad(n, 1) &&
        !(grads[1] = grad_right(gm, am, bm, b, alpha)))
        rc = -1;
    drop(am, a);
    drop(bm, b);
    drop(gm, g1);
    drop(g1, g);
    return rc;
}

static int matmul_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    return product_grads(n, g, grads, 1);
}

/* out = beta * c + alpha * a @ b: the products' grads scaled by alpha; c's is beta * g
 * summed over the dims c was broadcast along. */
static int addmm_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    double beta = n->f[0], alpha = n->f[1];
    if (product_grads(n, g, grads, alpha)) return -1;
    if (!wki_node_input_needs_grad(n, 2)) return 0;
    wk_tensor *c = n->inputs[2];
    wk_tensor *s = wki_sum_to_shape(g, c->shape, c->ndim);
    if (s && beta != 1) {
        wk_tensor *t = wk_mul_scalar(s, beta);
        drop(s, g);
        s = t;
    }
    grads[2] = s;
    return s ? 0 : -1;
}

/* out (R, N) = x (R, K) @ W^T + bias over x's leading dims flattened to R rows:
 * grad_x = g @ W, grad_W = g^T @ x (one GEMM each, W and g^T read in place) and
 * grad_bias = the column sums of g. */
static int linear_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_tensor *x = n->inputs[0], *w = n->inputs[1], *bias = n->inputs[2];
    int64_t N = w->shape[0];
    int64_t R = wki_shape_numel(x->shape, x->ndim - 1);
    wk_tensor *g2 = wk_reshape(g, WK_SHAPE(R, N));
    if (!g2) return -1;
    int rc = 0;
    if (wki_node_input_needs_grad(n, 0)) {
        wk_tensor *r = product(WK_LINALG_MM, g2, w, NULL, 0, 1);
        grads[0] = r ? wk_reshape(r, x->shape, x->ndim) : NULL;
        drop(r, grads[0]);
        rc |= grads[0] ? 0 : -1;
    }
    if (!rc && wki_node_input_needs_grad(n, 1)) {
        grads[1] = rows_product(g2, x, 1);
        rc |= grads[1] ? 0 : -1;
    }
    if (!rc && wki_node_input_needs_grad(n, 2)) {
        wk_tensor *s = wk_numel(bias) == N && bias->ndim == 1
                           ? wk_sum(g2, WK_DIMS(0), false)
                           : wk_sum(g2, WK_ALL_DIMS, false);
        grads[2] = s && !wk_same_shape(s, bias) ? wk_reshape(s, bias->shape, bias->ndim) : s;
        drop(s, grads[2]);
        rc |= grads[2] ? 0 : -1;
    }
    wk_tensor_free(g2);
    return rc;
}

wk_tensor *wk_matmul(wk_tensor *a, wk_tensor *b)
{
    return wk_linalg(WK_LINALG_MATMUL, a, b, NULL, 0, 1);
}

wk_tensor *wk_mm(wk_tensor *a, wk_tensor *b)
{
    return wk_linalg(WK_LINALG_MM, a, b, NULL, 0, 1);
}

wk_tensor *wk_bmm(wk_tensor *a, wk_tensor *b)
{
    return wk_linalg(WK_LINALG_BMM, a, b, NULL, 0, 1);
}

wk_tensor *wk_addmm(wk_tensor *bias, wk_tensor *a, wk_tensor *b, double beta, double alpha)
{
    return wk_linalg(WK_LINALG_ADDMM, a, b, bias, beta, alpha);
}

wk_tensor *wk_linear(wk_tensor *x, wk_tensor *weight, wk_tensor *bias)
{
    return wk_linalg(WK_LINALG_LINEAR, x, weight, bias, 1, 1);
}

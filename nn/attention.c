/* Attention: scaled dot-product attention and its packed multi-head form, as one fused
 * forward and backward over batched BLAS GEMMs (tensor/linalg.c's threading scheme: small
 * items one per thread, big ones one after another with threaded BLAS), and the
 * MultiheadAttention and CausalSelfAttention modules.
 *
 * Per batch item (shapes in comments: Tq queries, Tk keys, D and Dv head sizes):
 *   S = scale * Q K^T                  // (Tq, Tk), scale = 1/sqrt(D)
 *   P = softmax(S + mask)              // rows; causal: keys j > i get weight 0
 *   O = (P * M / (1 - p)) V            // (Tq, Dv); M: the dropout mask (bytes)
 * backward, with Pd = P * M / (1 - p) and the saved P:
 *   dV = Pd^T dO,  dP = (dO V^T) * M / (1 - p),  dS = P * (dP - rowsum(dP * P)),
 *   dQ = scale * dS K,  dK = scale * dS^T Q  (dS is also the float mask's gradient). */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/profiler-impl.h"
#include "../tensor/creation.h"
#include "../tensor/linalg.h"
#include "init.h"
#include "../tensor/cpu/reduce-impl.h"
#include "norm.h"

typedef enum { ATTN_SDPA, ATTN_QKV, ATTN_COUNT } attn_op;

static const struct {
    const char *name;
} attn_info[] = {
    [ATTN_SDPA] = {"scaled_dot_product_attention"},
    [ATTN_QKV] = {"qkv_attention"},
};
_Static_assert(sizeof attn_info / sizeof attn_info[0] == ATTN_COUNT,
               "attn_info needs one row per attn_op");

/* A batch of row-major matrices: element (r, c) of batch item `idx` (a multi-index over
 * the batch shape) is at data + (sum idx_d * bstr[d] + r * ld + c) elements. */
typedef struct {
    char *data;
    int64_t bstr[WK_MAX_DIMS];
    int64_t ld;
} amat;

typedef struct {
    wk_dtype dtype;
    int nbdim;
    int64_t bshape[WK_MAX_DIMS], nbatch;
    int64_t Tq, Tk, D, Dv;
    double scale;
    bool causal;
    amat q, k, v, o;
    /* mask element (i, j) of an item: mask + (item offset + i*mrs + j*mcs) elements */
    const char *mask;
    bool mask_bool;
    int64_t mbstr[WK_MAX_DIMS], mrs, mcs;
    const uint8_t *drop; /* (nbatch, Tq, Tk) dropout mask, or NULL */
    double drop_scale;
    char *P; /* (nbatch, Tq, Tk) attention weights: written by forward when not NULL */
    /* backward: dq/dk/dv.data NULL when not wanted, dmask (nbatch, Tq, Tk) or NULL */
    amat dO, dq, dk, dv;
    char *dmask;
} attn_args;

typedef bool (*attn_kernel)(const attn_args *a);

/* ---- CPU kernels ---- */

#define LANES 8
#define SMALL_ITEM (1 << 21) /* multiply-adds per item below which items run one per thread */
#define ITEM_GRAIN (1 << 16) /* multiply-adds per thread at least */
#define ROW_GRAIN 16384      /* softmax elements per thread at least */

static inline double join8(const double *l)
{
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}


/* Typed row pieces:
 * softmax_row: row s (n keys) in place: mask the first lim keys (bool: false -> -inf;
 *   float: added), softmax over them, zeros after (the causal part).
 * drop_row: out = p * m * scale.
 * dsoft_row: w = p * (w - sum(w * p)), the softmax backward. */
#define ATTN_PRIMS(S_, T, EXP)                                                           \
    static void S_##_softmax_row(char *ps, int64_t n, int64_t lim, const char *pm,       \
                                 int64_t mcs, bool mbool)                                \
    {                                                                                    \
        T *restrict s = (T *)ps;                                                         \
        if (pm && mbool) {                                                               \
            for (int64_t j = 0; j < lim; j++)                                            \
                if (!pm[j * mcs]) s[j] = -INFINITY;                                      \
        } else if (pm) {                                                                 \
            const T *m = (const T *)pm;                                                  \
            for (int64_t j = 0; j < lim; j++) s[j] += m[j * mcs];                        \
        }                                                                                \
        T ml[LANES] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY,                       \
                       -INFINITY, -INFINITY, -INFINITY, -INFINITY};                      \
        int64_t j0 = 0;                                                                  \
        for (; j0 + LANES <= lim; j0 += LANES) /* lanes, so that it vectorises */        \
            for (int k = 0; k < LANES; k++) ml[k] = s[j0 + k] > ml[k] ? s[j0 + k] : ml[k]; \
        for (int k = 0; j0 < lim; j0++, k++) ml[k] = s[j0] > ml[k] ? s[j0] : ml[k];      \
        T mx = ml[0];                                                                    \
        for (int k = 1; k < LANES; k++) mx = ml[k] > mx ? ml[k] : mx;                    \
        for (int64_t j = 0; j < lim; j++) s[j] = EXP(s[j] - mx);                         \
        double l[LANES] = {0};                                                           \
        int64_t j = 0;                                                                   \
        for (; j + LANES <= lim; j += LANES)                                             \
            for (int k = 0; k < LANES; k++) l[k] += (double)s[j + k];                    \
        for (int k = 0; j < lim; j++, k++) l[k] += (double)s[j];                         \
        T inv = (T)(1.0 / join8(l));                                                     \
        for (j = 0; j < lim; j++) s[j] *= inv;                                           \
        for (j = lim; j < n; j++) s[j] = 0;                                              \
    }                                                                                    \
    static void S_##_drop_row(const char *pp, const uint8_t *m, char *po, int64_t n,     \
                              double scale)                                              \
    {                                                                                    \
        const T *restrict p = (const T *)pp;                                             \
        T *restrict o = (T *)po, sc = (T)scale;                                          \
        for (int64_t j = 0; j < n; j++) o[j] = p[j] * ((T)m[j] * sc);                    \
    }                                                                                    \
    static void S_##_dsoft_row(char *pw, const char *pp, int64_t n)                      \
    {                                                                                    \
        T *restrict w = (T *)pw;                                                         \
        const T *restrict p = (const T *)pp;                                             \
        double l[LANES] = {0};                                                           \
        int64_t j = 0;                                                                   \
        for (; j + LANES <= n; j += LANES)                                               \
            for (int k = 0; k < LANES; k++) l[k] += (double)w[j + k] * (double)p[j + k]; \
        for (int k = 0; j < n; j++, k++) l[k] += (double)w[j] * (double)p[j];            \
        T r = (T)join8(l);                                                               \
        for (j = 0; j < n; j++) w[j] = p[j] * (w[j] - r);                                \
    }
ATTN_PRIMS(f32, float, wki_expf)
ATTN_PRIMS(f64, double, exp)

typedef struct {
    void (*softmax_row)(char *s, int64_t n, int64_t lim, const char *m, int64_t mcs,
                        bool mbool);
    void (*drop_row)(const char *p, const uint8_t *m, char *o, int64_t n, double scale);
    void (*dsoft_row)(char *w, const char *p, int64_t n);
} attn_prims;

static const attn_prims prims[2] = {
    {f32_softmax_row, f32_drop_row, f32_dsoft_row},
    {f64_softmax_row, f64_drop_row, f64_dsoft_row},
};

/* C (M, N; ldc) = alpha * op(A) op(B) + beta * C (beta 0: C is not read); K = 0 gives
 * beta * C. */
static void gemm_beta(wk_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                      double alpha, const char *A, int64_t lda, const char *B, int64_t ldb,
                      double beta, char *C, int64_t ldc)
{
    size_t es = wk_dtype_size(dt);
    if (M == 0 || N == 0) return;
    if (K == 0) {
        for (int64_t r = 0; r < M && beta == 0; r++)
            memset(C + r * ldc * (int64_t)es, 0, (size_t)N * es);
        return;
    }
    enum CBLAS_TRANSPOSE at = ta ? CblasTrans : CblasNoTrans, bt = tb ? CblasTrans : CblasNoTrans;
    if (dt == WK_DTYPE_F32)
        cblas_sgemm(CblasRowMajor, at, bt, (blasint)M, (blasint)N, (blasint)K, (float)alpha,
                    (const float *)A, (blasint)lda, (const float *)B, (blasint)ldb,
                    (float)beta, (float *)C, (blasint)ldc);
    else
        cblas_dgemm(CblasRowMajor, at, bt, (blasint)M, (blasint)N, (blasint)K, alpha,
                    (const double *)A, (blasint)lda, (const double *)B, (blasint)ldb, beta,
                    (double *)C, (blasint)ldc);
}

static void gemm(wk_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha,
                 const char *A, int64_t lda, const char *B, int64_t ldb, char *C, int64_t ldc)
{
    gemm_beta(dt, ta, tb, M, N, K, alpha, A, lda, B, ldb, 0, C, ldc);
}

/* Element offset of batch item i for batch strides bstr. */
static int64_t item_off(const attn_args *a, const int64_t *bstr, int64_t i)
{
    int64_t off = 0;
    for (int d = a->nbdim - 1; d >= 0; d--) {
        off += (i % a->bshape[d]) * bstr[d];
        i /= a->bshape[d];
    }
    return off;
}

static char *at(const attn_args *a, const amat *m, int64_t i)
{
    return m->data + item_off(a, m->bstr, i) * (int64_t)wk_dtype_size(a->dtype);
}

/* Rows [r0, r1) of item i's scores s: mask, causal limit and softmax. */
static void softmax_rows(const attn_args *a, const attn_prims *p, char *s, int64_t i,
                         int64_t r0, int64_t r1)
{
    int64_t es = (int64_t)wk_dtype_size(a->dtype), Tk = a->Tk;
    int64_t mes = a->mask_bool ? 1 : es, moff = a->mask ? item_off(a, a->mbstr, i) : 0;
    for (int64_t r = r0; r < r1; r++) {
        int64_t lim = a->causal ? (r + 1 < Tk ? r + 1 : Tk) : Tk;
        const char *m = a->mask ? a->mask + (moff + r * a->mrs) * mes : NULL;
        p->softmax_row(s + r * Tk * es, Tk, lim, m, a->mcs, a->mask_bool);
    }
}

/* Run rows [0, n) of f in parallel when `par` (items run one after another) else serially. */
/* Run body over rows [rb, re) split in chunks, in parallel when `par` (items run one
 * after another) else serially; body sees its chunk as [r0, r1). */
#define ROWS(par, rb, re, work, body)                                                    \
    do {                                                                                 \
        int nt_ = (par) ? wki_threads_for((work), ROW_GRAIN) : 1;                        \
        int64_t b_ = (rb), n_ = (re) - b_, chunk_ = (n_ + nt_ - 1) / (nt_ ? nt_ : 1);    \
        _Pragma("omp parallel for num_threads(nt_) schedule(static) if (nt_ > 1)")       \
        for (int64_t c_ = 0; c_ < nt_; c_++) {                                           \
            int64_t r0 = b_ + c_ * chunk_, r1 = r0 + chunk_ < b_ + n_ ? r0 + chunk_ : b_ + n_; \
            if (r0 < r1) body;                                                           \
        }                                                                                \
    } while (0)

/* Causal attention skips the keys a block of queries cannot see: query rows go in
 * blocks of causal_block() rows, block [r0, r1) using keys [0, min(r1, Tk)) only. The
 * blocks depend on the shape alone, so results do not depend on the thread count. */
static int64_t causal_block(const attn_args *a)
{
    if (!a->causal || a->Tq < 64) return a->Tq > 0 ? a->Tq : 1;
    return a->Tq / 8 > 32 ? a->Tq / 8 : 32;
}

static int64_t keys_seen(const attn_args *a, int64_t r1)
{
    return a->causal && r1 < a->Tk ? r1 : a->Tk;
}

static void forward_item(const attn_args *a, int64_t i, char *ws, bool par)
{
    const attn_prims *p = &prims[a->dtype == WK_DTYPE_F64];
    int64_t es = (int64_t)wk_dtype_size(a->dtype), Tk = a->Tk, TT = a->Tq * Tk;
    char *s = a->P ? a->P + i * TT * es : ws; /* (Tq, Tk) weights */
    char *pd = a->drop ? (a->P ? ws : ws + TT * es) : s;
    const char *q = at(a, &a->q, i), *k = at(a, &a->k, i), *v = at(a, &a->v, i);
    char *o = at(a, &a->o, i);
    int64_t rb = causal_block(a);
    for (int64_t b0 = 0; b0 < a->Tq; b0 += rb) {
        int64_t b1 = b0 + rb < a->Tq ? b0 + rb : a->Tq, n = keys_seen(a, b1);
        char *sb = s + b0 * Tk * es, *pb = pd + b0 * Tk * es;
        gemm(a->dtype, false, true, b1 - b0, n, a->D, a->scale, q + b0 * a->q.ld * es,
             a->q.ld, k, a->k.ld, sb, Tk);
        ROWS(par, b0, b1, (b1 - b0) * n, softmax_rows(a, p, s, i, r0, r1));
        if (a->drop)
            for (int64_t r = b0; r < b1; r++)
                p->drop_row(s + r * Tk * es, a->drop + i * TT + r * Tk, pd + r * Tk * es, n,
                            a->drop_scale);
        gemm(a->dtype, false, false, b1 - b0, a->Dv, n, 1, pb, Tk, v, a->v.ld,
             o + b0 * a->o.ld * es, a->o.ld);
    }
}

/* C[0:n) (rows = keys) = alpha * A^T B for a query block A (m rows, ld Tk): rows below
 * `seen` (written by earlier blocks) accumulate, the others are written. */
static void gemm_keys(const attn_args *a, int64_t seen, int64_t n, int64_t N, int64_t m,
                      double alpha, const char *A, const char *B, int64_t ldb, char *C,
                      int64_t ldc)
{
    int64_t es = (int64_t)wk_dtype_size(a->dtype), s1 = seen < n ? seen : n;
    gemm_beta(a->dtype, true, false, s1, N, m, alpha, A, a->Tk, B, ldb, 1, C, ldc);
    gemm_beta(a->dtype, true, false, n - s1, N, m, alpha, A + s1 * es, a->Tk, B, ldb, 0,
              C + s1 * ldc * es, ldc);
}

static void zero_rows(const attn_args *a, char *C, int64_t r0, int64_t r1, int64_t N,
                      int64_t ldc)
{
    int64_t es = (int64_t)wk_dtype_size(a->dtype);
    for (int64_t r = r0; r < r1; r++) memset(C + r * ldc * es, 0, (size_t)(N * es));
}

static void backward_item(const attn_args *a, int64_t i, char *ws, bool par)
{
    const attn_prims *p = &prims[a->dtype == WK_DTYPE_F64];
    int64_t es = (int64_t)wk_dtype_size(a->dtype), Tk = a->Tk, TT = a->Tq * Tk;
    const char *P = a->P + i * TT * es, *dO = at(a, &a->dO, i), *pd = P;
    const char *q = at(a, &a->q, i), *k = at(a, &a->k, i), *v = at(a, &a->v, i);
    char *w = ws, *dv = a->dv.data ? at(a, &a->dv, i) : NULL;
    char *dq = a->dq.data ? at(a, &a->dq, i) : NULL, *dk = a->dk.data ? at(a, &a->dk, i) : NULL;
    bool ds = dq || dk || a->dmask;
    int64_t rb = causal_block(a), seen = 0; /* dV/dK rows written so far */
    for (int64_t b0 = 0; b0 < a->Tq; b0 += rb) {
        int64_t b1 = b0 + rb < a->Tq ? b0 + rb : a->Tq, n = keys_seen(a, b1), m = b1 - b0;
        if (a->drop) {
            char *t = ws + TT * es;
            for (int64_t r = b0; r < b1; r++)
                p->drop_row(P + r * Tk * es, a->drop + i * TT + r * Tk, t + r * Tk * es, n,
                            a->drop_scale);
            pd = t;
        }
        const char *dOb = dO + b0 * a->dO.ld * es;
        if (dv) gemm_keys(a, seen, n, a->Dv, m, 1, pd + b0 * Tk * es, dOb, a->dO.ld, dv, a->dv.ld);
        if (ds) {
            char *wb = w + b0 * Tk * es;
            gemm(a->dtype, false, true, m, n, a->Dv, 1, dOb, a->dO.ld, v, a->v.ld, wb, Tk);
            if (a->drop)
                for (int64_t r = b0; r < b1; r++)
                    p->drop_row(w + r * Tk * es, a->drop + i * TT + r * Tk, w + r * Tk * es, n,
                                a->drop_scale);
            ROWS(par, b0, b1, m * n,
                 for (int64_t r = r0; r < r1; r++)
                     p->dsoft_row(w + r * Tk * es, P + r * Tk * es, n));
            if (dq)
                gemm(a->dtype, false, false, m, a->D, n, a->scale, wb, Tk, k, a->k.ld,
                     dq + b0 * a->dq.ld * es, a->dq.ld);
            if (dk)
                gemm_keys(a, seen, n, a->D, m, a->scale, wb, q + b0 * a->q.ld * es, a->q.ld,
                          dk, a->dk.ld);
        }
        if (n > seen) seen = n;
    }
    /* keys no query sees (causal with Tq < Tk, or no queries) */
    if (dv) zero_rows(a, dv, seen, Tk, a->Dv, a->dv.ld);
    if (dk) zero_rows(a, dk, seen, Tk, a->D, a->dk.ld);
    if (a->dmask) /* a mask excludes causal blocks: w holds the full (Tq, Tk) dS */
        memcpy(a->dmask + i * TT * es, w, (size_t)(TT * es));
}

/* Items one per thread when small (BLAS then runs single-threaded), else one after
 * another with threaded BLAS and parallel softmax rows. ws_items: scratch elements per
 * item. */
static bool run_items(const attn_args *a, int64_t ws_items,
                      void (*item)(const attn_args *, int64_t, char *, bool))
{
    int64_t work = a->Tq * a->Tk * (a->D + a->Dv + 1);
    int nt = a->nbatch > 1 && work < SMALL_ITEM
                 ? wki_threads_for(a->nbatch * work, ITEM_GRAIN) : 1;
    size_t es = wk_dtype_size(a->dtype), cap = 0;
    char *ws = NULL;
    if (ws_items) {
        ws = wki_alloc((size_t)nt * (size_t)ws_items * es, &cap);
        if (!ws) return false;
    }
    if (nt > 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t i = 0; i < a->nbatch; i++)
            item(a, i, ws ? ws + (size_t)omp_get_thread_num() * (size_t)ws_items * es : NULL,
                 false);
    } else {
        for (int64_t i = 0; i < a->nbatch; i++) item(a, i, ws, true);
    }
    if (ws) wki_dealloc(ws, cap);
    return true;
}

static bool cpu_attn_forward(const attn_args *a)
{
    int64_t TT = a->Tq * a->Tk;
    return run_items(a, (a->P ? 0 : TT) + (a->drop ? TT : 0), forward_item);
}

static bool cpu_attn_backward(const attn_args *a)
{
    int64_t TT = a->Tq * a->Tk;
    return run_items(a, TT + (a->drop ? TT : 0), backward_item);
}

static const struct {
    attn_kernel forward, backward;
} attn_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_attn_forward, cpu_attn_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL},
};

/* ---- front-end ---- */

/* Temporaries of one call, freed together. */
typedef struct {
    wk_tensor *t[8];
    int n;
} temps;

static wk_tensor *keep_tmp(temps *tt, wk_tensor *t)
{
    if (t) tt->t[tt->n++] = t;
    return t;
}

static void free_tmps(temps *tt)
{
    for (int i = 0; i < tt->n; i++) wk_tensor_free(tt->t[i]);
    tt->n = 0;
}

/* Can BLAS read the matrices (last two dims) of t row-major? Then *ld is their row
 * stride. */
static bool blas_rows(const wk_tensor *t, int64_t *ld)
{
    int nd = t->ndim;
    int64_t rows = t->shape[nd - 2], cols = t->shape[nd - 1];
    int64_t rs = t->strides[nd - 2], cs = t->strides[nd - 1];
    if (cols > 1 && cs != 1) return false;
    if (rows > 1 && rs < cols) return false;
    *ld = rows > 1 ? rs : cols;
    if (*ld < 1) *ld = 1;
    return *ld <= INT_MAX;
}

/* Operand t (batch dims right-aligned to a's batch shape, size-1 dims broadcast) as an
 * amat; a contiguous copy (kept in tt) when BLAS cannot read it as it is. */
static bool operand(const attn_args *a, wk_tensor *t, amat *m, temps *tt)
{
    int64_t ld;
    if (!blas_rows(t, &ld)) {
        wk_no_grad_begin();
        t = keep_tmp(tt, wk_contiguous(t));
        wk_no_grad_end();
        if (!t || !blas_rows(t, &ld)) return false;
    }
    m->data = wk_data(t);
    m->ld = ld;
    int nb = t->ndim - 2;
    for (int d = 0; d < a->nbdim; d++) {
        int e = d - (a->nbdim - nb);
        m->bstr[d] = e < 0 || t->shape[e] == 1 ? 0 : t->strides[e];
    }
    return true;
}

/* A contiguous (bshape..., rows, cols) tensor's amat. */
static void dense_amat(const attn_args *a, wk_tensor *t, int64_t rows, int64_t cols, amat *m)
{
    m->data = wk_data(t);
    m->ld = cols > 1 ? cols : 1;
    int64_t s = rows * cols;
    for (int d = a->nbdim - 1; d >= 0; d--) {
        m->bstr[d] = s;
        s *= a->bshape[d];
    }
}

static bool check_float(const char *op, const char *what, const wk_tensor *t)
{
    if (t->dtype == WK_DTYPE_F32 || t->dtype == WK_DTYPE_F64) return true;
    if (t->dtype == WK_DTYPE_BF16 || t->dtype == WK_DTYPE_F16)
        wk_set_error("%s: %s is %s, a storage type (shape %s); convert with "
                     "wk_to_dtype(t, WK_DTYPE_F32) first",
                     op, what, wk_dtype_name(t->dtype), wki_shape_s(t));
    else
        wk_set_error("%s: %s has dtype %s (shape %s); expected float32 or float64", op, what,
                     wk_dtype_name(t->dtype), wki_shape_s(t));
    return false;
}

static attn_kernel kernel_for(const char *name, const wk_tensor *t, bool backward)
{
    attn_kernel k = backward ? attn_kernels[t->device.type].backward
                             : attn_kernels[t->device.type].forward;
    if (!k) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", name, wk_device_str(t->device, d, sizeof d));
    }
    return k;
}

/* Geometry of scaled_dot_product_attention: batch shape, sizes; checks when `check`. */
static bool sdpa_geometry(const char *name, const wk_tensor *q, const wk_tensor *k,
                          const wk_tensor *v, const wk_tensor *mask, attn_args *a)
{
    const wk_tensor *ts[3] = {q, k, v};
    int nbdim = 0;
    for (int t = 0; t < 3; t++) {
        if (ts[t]->ndim < 2) {
            wk_set_error("%s: q, k and v need at least 2 dims (..., T, D), got q %s, k %s, "
                         "v %s",
                         name, wki_shape_s(q), wki_shape_s(k), wki_shape_s(v));
            return false;
        }
        if (ts[t]->ndim - 2 > nbdim) nbdim = ts[t]->ndim - 2;
    }
    a->nbdim = nbdim;
    a->nbatch = 1;
    for (int d = 0; d < nbdim; d++) {
        int64_t s = 1;
        for (int t = 0; t < 3; t++) {
            int e = d - (nbdim - (ts[t]->ndim - 2));
            int64_t z = e < 0 ? 1 : ts[t]->shape[e];
            if (z != 1 && s != 1 && z != s) {
                wk_set_error("%s: the batch dims of q %s, k %s and v %s do not broadcast",
                             name, wki_shape_s(q), wki_shape_s(k), wki_shape_s(v));
                return false;
            }
            if (z != 1) s = z;
        }
        a->bshape[d] = s;
        a->nbatch *= s;
    }
    a->Tq = q->shape[q->ndim - 2];
    a->D = q->shape[q->ndim - 1];
    a->Tk = k->shape[k->ndim - 2];
    a->Dv = v->shape[v->ndim - 1];
    if (k->shape[k->ndim - 1] != a->D || v->shape[v->ndim - 2] != a->Tk) {
        wk_set_error("%s: expected q (..., Tq, D), k (..., Tk, D) and v (..., Tk, Dv), got q "
                     "%s, k %s, v %s",
                     name, wki_shape_s(q), wki_shape_s(k), wki_shape_s(v));
        return false;
    }
    if (a->Tq > INT_MAX || a->Tk > INT_MAX || a->D > INT_MAX || a->Dv > INT_MAX) {
        wk_set_error("%s: sizes above %d are not supported (q %s, k %s)", name, INT_MAX,
                     wki_shape_s(q), wki_shape_s(k));
        return false;
    }
    if (!mask) return true;
    bool ok = mask->ndim >= 0 && mask->ndim <= nbdim + 2;
    for (int d = 0; ok && d < mask->ndim; d++) {
        int e = d + (nbdim + 2 - mask->ndim); /* dim of (bshape..., Tq, Tk) */
        int64_t want = e == nbdim ? a->Tq : e == nbdim + 1 ? a->Tk : a->bshape[e];
        ok = mask->shape[d] == want || mask->shape[d] == 1;
    }
    if (!ok) {
        int64_t full[WK_MAX_DIMS + 2];
        memcpy(full, a->bshape, (size_t)nbdim * sizeof *full);
        full[nbdim] = a->Tq;
        full[nbdim + 1] = a->Tk;
        wk_set_error("%s: attn_mask of shape %s does not broadcast to the scores' shape %s",
                     name, wki_shape_s(mask), wki_dims_s(full, nbdim + 2));
        return false;
    }
    return true;
}

/* The mask's strides over (bshape..., Tq, Tk), 0 where broadcast. */
static void mask_operand(attn_args *a, const wk_tensor *m)
{
    a->mask = wk_data(m);
    a->mask_bool = m->dtype == WK_DTYPE_BOOL;
    int64_t st[WK_MAX_DIMS + 2];
    for (int e = 0; e < a->nbdim + 2; e++) {
        int d = e - (a->nbdim + 2 - m->ndim);
        st[e] = d < 0 || m->shape[d] == 1 ? 0 : m->strides[d];
    }
    memcpy(a->mbstr, st, (size_t)a->nbdim * sizeof *st);
    a->mrs = st[a->nbdim];
    a->mcs = st[a->nbdim + 1];
}

/* Operands of a node's inputs: SDPA (q, k, v, mask) or packed qkv. */
static bool sdpa_operands(attn_args *a, wk_tensor *q, wk_tensor *k, wk_tensor *v,
                          const wk_tensor *mask, temps *tt)
{
    if (!operand(a, q, &a->q, tt) || !operand(a, k, &a->k, tt) || !operand(a, v, &a->v, tt))
        return false;
    if (mask) mask_operand(a, mask);
    return true;
}

/* qkv (B, T, 3E) with H heads: batch dims (B, H); item (b, h) of q starts at
 * b*sB + h*D, of k E further, of v 2E further, rows sT apart. */
static bool qkv_operands(attn_args *a, wk_tensor *qkv, int64_t H, temps *tt)
{
    if (qkv->strides[2] != 1 && qkv->shape[2] > 1) {
        wk_no_grad_begin();
        qkv = keep_tmp(tt, wk_contiguous(qkv));
        wk_no_grad_end();
        if (!qkv) return false;
    }
    int64_t B = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3, D = H ? E / H : 0;
    int64_t es = (int64_t)wk_dtype_size(qkv->dtype), ld = T > 1 ? qkv->strides[1] : 3 * E;
    if (T > 1 && ld < 3 * E) { /* overlapping rows (an expanded T): copy */
        wk_no_grad_begin();
        qkv = keep_tmp(tt, wk_contiguous(qkv));
        wk_no_grad_end();
        if (!qkv) return false;
        ld = 3 * E;
    }
    if (ld < 1) ld = 1;
    a->nbdim = 2;
    a->bshape[0] = B;
    a->bshape[1] = H;
    a->nbatch = B * H;
    a->Tq = a->Tk = T;
    a->D = a->Dv = D;
    amat *m[3] = {&a->q, &a->k, &a->v};
    for (int j = 0; j < 3; j++) {
        m[j]->data = (char *)wk_data(qkv) + j * E * es;
        m[j]->bstr[0] = B > 1 ? qkv->strides[0] : 0;
        m[j]->bstr[1] = D;
        m[j]->ld = ld;
    }
    return ld <= INT_MAX;
}

/* The (B, H, T, D) head view of a (B, T, E) tensor t. */
static void heads_amat(const attn_args *a, wk_tensor *t, int64_t ld, int64_t bstride,
                       amat *m)
{
    m->data = wk_data(t);
    m->bstr[0] = bstride;
    m->bstr[1] = a->D;
    m->ld = ld;
}

/* Backward: saved[0] = P, saved[1] = dropout mask or NULL; f[0] = dropout scale,
 * i[0] = op, i[1] = causal, i[2] = heads (qkv). Inputs: q, k, v, mask or qkv. */
static int attn_backward(wki_node *n, wk_tensor *grad_out, wk_tensor **grads)
{
    attn_op op = (attn_op)n->i[0];
    const char *name = attn_info[op].name;
    wk_tensor *P = n->saved[0], *drop = n->saved[1], *x0 = n->inputs[0];
    if (!P) {
        wk_set_error("%s backward: the saved attention weights were released", name);
        return -1;
    }
    attn_kernel kernel = kernel_for(name, x0, true);
    if (!kernel) return -1;
    attn_args a = {.dtype = x0->dtype, .causal = n->i[1] != 0, .P = wk_data(P),
                   .drop = drop ? wk_data(drop) : NULL, .drop_scale = n->f[0]};
    temps tt = {0};
    bool ok;
    wk_tensor *full[4] = {0}; /* gradients in the broadcast batch shape */
    if (op == ATTN_QKV) {
        ok = qkv_operands(&a, x0, n->i[2], &tt);
        int64_t E = x0->shape[2] / 3, ld;
        wk_tensor *dO = grad_out;
        if (ok && (!blas_rows(dO, &ld) || (dO->shape[2] > 1 && dO->strides[2] != 1))) {
            dO = keep_tmp(&tt, wk_contiguous(dO));
            ok = dO && blas_rows(dO, &ld);
        }
        if (ok) {
            heads_amat(&a, dO, dO->shape[1] > 1 ? dO->strides[1] : E, dO->strides[0], &a.dO);
            full[0] = wki_empty_on(x0->shape, 3, x0->dtype, x0->device);
            ok = full[0] != NULL;
        }
        if (ok) {
            int64_t es = (int64_t)wk_dtype_size(a.dtype), T = x0->shape[1];
            amat *d[3] = {&a.dq, &a.dk, &a.dv};
            for (int j = 0; j < 3; j++) {
                heads_amat(&a, full[0], 3 * E, T * 3 * E, d[j]);
                d[j]->data += j * E * es;
            }
        }
    } else {
        wk_tensor *q = x0, *k = n->inputs[1], *v = n->inputs[2], *mask = n->inputs[3];
        ok = sdpa_geometry(name, q, k, v, mask, &a) && sdpa_operands(&a, q, k, v, mask, &tt);
        a.scale = a.D ? 1.0 / sqrt((double)a.D) : 1;
        int64_t sz[4][2] = {{a.Tq, a.D}, {a.Tk, a.D}, {a.Tk, a.Dv}, {a.Tq, a.Tk}};
        amat *d[3] = {&a.dq, &a.dk, &a.dv};
        for (int j = 0; ok && j < 4; j++) {
            if (!wki_node_input_needs_grad(n, j)) continue;
            int64_t shape[WK_MAX_DIMS];
            memcpy(shape, a.bshape, (size_t)a.nbdim * sizeof *shape);
            shape[a.nbdim] = sz[j][0];
            shape[a.nbdim + 1] = sz[j][1];
            full[j] = wki_empty_on(shape, a.nbdim + 2, a.dtype, x0->device);
            ok = full[j] != NULL;
            if (ok && j < 3) dense_amat(&a, full[j], sz[j][0], sz[j][1], d[j]);
            if (ok && j == 3) a.dmask = wk_data(full[j]);
        }
        if (ok && !operand(&a, grad_out, &a.dO, &tt)) ok = false;
    }
    if (op == ATTN_QKV) a.scale = a.D ? 1.0 / sqrt((double)a.D) : 1;
    ok = ok && kernel(&a);
    free_tmps(&tt);
    for (int j = 0; j < 4; j++) {
        if (!full[j]) continue;
        wk_tensor *in = n->inputs[j];
        wk_tensor *g = ok ? wki_sum_to_shape(full[j], in->shape, in->ndim) : NULL;
        if (g != full[j]) wk_tensor_free(full[j]);
        if (ok && !g) ok = false;
        grads[j] = g;
    }
    return ok ? 0 : -1;
}

/* Record the node and run the kernel: the shared tail of both ops. `inputs` holds the
 * node's inputs (q, k, v, mask, or qkv). */
static wk_tensor *attn_run(attn_op op, attn_args *a, wk_tensor *out, wk_tensor *const *inputs,
                           int ninputs, double dropout_p, wk_generator *g, int64_t heads,
                           attn_kernel kernel)
{
    const char *name = attn_info[op].name;
    bool need = wki_grad_needed(ninputs, (const wk_tensor *const *)inputs);
    int64_t wshape[3] = {a->nbatch, a->Tq, a->Tk};
    wk_tensor *P = need ? wki_empty_on(wshape, 3, a->dtype, out->device) : NULL;
    wk_tensor *drop = dropout_p > 0
                          ? wk_bernoulli_p(wshape, 3, 1 - dropout_p, WK_DTYPE_U8, g) : NULL;
    bool ok = (!need || P) && (dropout_p <= 0 || drop);
    a->P = P ? wk_data(P) : NULL;
    a->drop = drop ? wk_data(drop) : NULL;
    a->drop_scale = dropout_p >= 1 ? 0 : 1 / (1 - dropout_p);
    ok = ok && kernel(a);
    if (ok && need) {
        wki_node *nd = wki_node_new(out, name, attn_backward, ninputs, inputs);
        if (nd) {
            wki_node_save(nd, 0, P);
            if (drop) wki_node_save(nd, 1, drop);
            nd->f[0] = a->drop_scale;
            nd->i[0] = op;
            nd->i[1] = a->causal;
            nd->i[2] = heads;
        }
        ok = nd != NULL;
    }
    wk_tensor_free(P);
    wk_tensor_free(drop);
    if (!ok) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

static bool check_dropout(const char *name, double p)
{
    if (p >= 0 && p <= 1) return true;
    wk_set_error("%s: dropout_p has to be between 0 and 1, got %g", name, p);
    return false;
}

wk_tensor *wk_scaled_dot_product_attention(wk_tensor *q, wk_tensor *k, wk_tensor *v,
                                           wk_tensor *attn_mask, bool is_causal,
                                           double dropout_p, wk_generator *g)
{
    const char *name = attn_info[ATTN_SDPA].name;
    WKI_PROF_OP(name, q, k, v, attn_mask);
    if (!WKI_CHECK(name, q, k, v)) return NULL;
    attn_kernel kernel = kernel_for(name, q, false);
    if (!kernel || !wki_same_device(name, q, k) || !wki_same_device(name, q, v) ||
        (attn_mask && !wki_same_device(name, q, attn_mask)))
        return NULL;
    if (!check_float(name, "q", q)) return NULL;
    if (k->dtype != q->dtype || v->dtype != q->dtype) {
        wk_set_error("%s: q, k and v must have the same dtype, got %s, %s and %s", name,
                     wk_dtype_name(q->dtype), wk_dtype_name(k->dtype), wk_dtype_name(v->dtype));
        return NULL;
    }
    if (attn_mask && attn_mask->dtype != WK_DTYPE_BOOL && attn_mask->dtype != q->dtype) {
        wk_set_error("%s: attn_mask must be bool or %s like q, got %s", name,
                     wk_dtype_name(q->dtype), wk_dtype_name(attn_mask->dtype));
        return NULL;
    }
    if (attn_mask && is_causal) {
        wk_set_error("%s: an explicit attn_mask should not be given together with "
                     "is_causal=true",
                     name);
        return NULL;
    }
    if (!check_dropout(name, dropout_p)) return NULL;
    attn_args a = {.dtype = q->dtype, .causal = is_causal};
    if (!sdpa_geometry(name, q, k, v, attn_mask, &a)) return NULL;
    a.scale = a.D ? 1.0 / sqrt((double)a.D) : 1;
    int64_t shape[WK_MAX_DIMS];
    WKI_PROF_FLOPS(2.0 * (double)(a.nbatch * a.Tq * a.Tk) * (double)(a.D + a.Dv));
    memcpy(shape, a.bshape, (size_t)a.nbdim * sizeof *shape);
    shape[a.nbdim] = a.Tq;
    shape[a.nbdim + 1] = a.Dv;
    temps tt = {0};
    wk_tensor *out = wki_empty_on(shape, a.nbdim + 2, q->dtype, q->device);
    if (!out || !sdpa_operands(&a, q, k, v, attn_mask, &tt)) {
        free_tmps(&tt);
        wk_tensor_free(out);
        return NULL;
    }
    dense_amat(&a, out, a.Tq, a.Dv, &a.o);
    /* a bool mask never needs a gradient; a float one may */
    wk_tensor *in[4] = {q, k, v, attn_mask};
    out = attn_run(ATTN_SDPA, &a, out, in, attn_mask ? 4 : 3, dropout_p, g, 0, kernel);
    free_tmps(&tt);
    return out;
}

wk_tensor *wk_qkv_attention(wk_tensor *qkv, int64_t num_heads, bool is_causal,
                            double dropout_p, wk_generator *g)
{
    const char *name = attn_info[ATTN_QKV].name;
    WKI_PROF_OP(name, qkv);
    if (!WKI_CHECK(name, qkv)) return NULL;
    attn_kernel kernel = kernel_for(name, qkv, false);
    if (!kernel || !check_float(name, "qkv", qkv) || !check_dropout(name, dropout_p))
        return NULL;
    if (qkv->ndim != 3 || num_heads <= 0 || qkv->shape[2] % (3 * num_heads)) {
        wk_set_error("%s: expected qkv of shape (B, T, 3E) with E a multiple of num_heads, "
                     "got %s and num_heads=%lld",
                     name, wki_shape_s(qkv), (long long)num_heads);
        return NULL;
    }
    if (qkv->shape[1] > INT_MAX || qkv->shape[2] > INT_MAX) {
        wk_set_error("%s: sizes above %d are not supported (qkv %s)", name, INT_MAX,
                     wki_shape_s(qkv));
        return NULL;
    }
    attn_args a = {.dtype = qkv->dtype, .causal = is_causal};
    temps tt = {0};
    int64_t B = qkv->shape[0], T = qkv->shape[1], E = qkv->shape[2] / 3;
    wk_tensor *out = wki_empty_on((const int64_t[]){B, T, E}, 3, qkv->dtype, qkv->device);
    if (!out || !qkv_operands(&a, qkv, num_heads, &tt)) {
        free_tmps(&tt);
        wk_tensor_free(out);
        return NULL;
    }
    a.scale = a.D ? 1.0 / sqrt((double)a.D) : 1;
    WKI_PROF_FLOPS(2.0 * (double)(a.nbatch * a.Tq * a.Tk) * (double)(a.D + a.Dv));
    heads_amat(&a, out, E > 0 ? E : 1, T * E, &a.o);
    out = attn_run(ATTN_QKV, &a, out, &qkv, 1, dropout_p, g, num_heads, kernel);
    free_tmps(&tt);
    return out;
}

/* ---- modules ---- */

/* A Linear-like child (torch's names "weight" (out, in) and "bias" (out)). */
static wk_tensor *linear_forward(wk_module *m, wk_tensor *x)
{
    return wk_linear(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"));
}

static wk_module *linear_child(const char *type, int64_t in, int64_t out, bool bias,
                               wk_generator *g)
{
    wk_module *m = wk_module_new(type, linear_forward, 0);
    if (!m) return NULL;
    wk_tensor *w = wk_module_add_parameter(m, "weight",
                                           wk_empty((const int64_t[]){out, in}, 2, WK_DTYPE_F32));
    wk_tensor *b = bias ? wk_module_add_parameter(
                              m, "bias", wk_empty((const int64_t[]){out}, 1, WK_DTYPE_F32))
                        : NULL;
    if (!w || (bias && !b) || wk_init_torch_default_(w, b, g)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

/* The generator comes first, as wk_module_dropout_generator expects (dropout.c). */
typedef struct {
    wk_generator gen;
    double dropout;
    int64_t embed_dim, num_heads;
    bool is_causal;
} attention_cfg;

static bool seed_from(wk_generator *g, wk_generator *out)
{
    wk_tensor *s = wk_randint(0, INT64_MAX, NULL, 0, g);
    if (!s) return false;
    *out = wk_generator_make((uint64_t) * (const int64_t *)wk_data(s));
    wk_tensor_free(s);
    return true;
}

static bool check_input(const wk_module *m, const wk_tensor *x, int64_t E)
{
    if (x->ndim == 3 && x->shape[2] == E) return true;
    wk_set_error("%s: expected an input of shape (B, T, %lld), got %s", m->type, (long long)E,
                 wki_shape_s(x));
    return false;
}

static wk_tensor *mha_forward(wk_module *m, wk_tensor *x)
{
    attention_cfg *c = m->config;
    if (!check_input(m, x, c->embed_dim)) return NULL;
    wk_module *out = wk_module_child(m, "out_proj");
    wk_tensor *qkv = wk_linear(x, wk_module_param(m, "in_proj_weight"),
                               wk_module_param(m, "in_proj_bias"));
    wk_tensor *h = wk_qkv_attention(qkv, c->num_heads, c->is_causal,
                                    m->training ? c->dropout : 0, &c->gen);
    return wk_module_forward(out, h);
}

static bool check_heads(const char *type, int64_t E, int64_t H, double dropout)
{
    if (E <= 0 || H <= 0 || E % H) {
        wk_set_error("%s: embed_dim (%lld) must be a positive multiple of num_heads (%lld)",
                     type, (long long)E, (long long)H);
        return false;
    }
    return check_dropout(type, dropout);
}

wk_module *wk_multihead_attention_new(int64_t embed_dim, int64_t num_heads, double dropout,
                                      bool bias, bool is_causal, wk_generator *g)
{
    const char *type = "MultiheadAttention";
    if (!check_heads(type, embed_dim, num_heads, dropout)) return NULL;
    wk_module *m = wk_module_new(type, mha_forward, sizeof(attention_cfg));
    if (!m) return NULL;
    attention_cfg *c = m->config;
    c->dropout = dropout;
    c->embed_dim = embed_dim;
    c->num_heads = num_heads;
    c->is_causal = is_causal;
    int64_t E = embed_dim;
    /* torch's order of registration: in_proj_weight, in_proj_bias, out_proj */
    wk_tensor *w = wk_module_add_parameter(m, "in_proj_weight",
                                           wk_empty((const int64_t[]){3 * E, E}, 2, WK_DTYPE_F32));
    bool ok = w && (!bias || wk_module_add_parameter(m, "in_proj_bias",
                                                    wk_zeros((const int64_t[]){3 * E}, 1,
                                                             WK_DTYPE_F32)));
    wk_module *out = ok ? wk_module_add_child(m, "out_proj",
                                              linear_child("NonDynamicallyQuantizableLinear", E,
                                                           E, bias, g))
                        : NULL;
    ok = out && wk_init_xavier_uniform_(w, 1.0, g);
    if (ok && bias) ok = wk_init_zeros_(wk_module_param(out, "bias")) != NULL;
    if (!ok || !seed_from(g, &c->gen)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

static wk_tensor *csa_forward(wk_module *m, wk_tensor *x)
{
    attention_cfg *c = m->config;
    if (!check_input(m, x, c->embed_dim)) return NULL;
    double p = m->training ? c->dropout : 0;
    wk_tensor *qkv = wk_module_forward(wk_module_child(m, "c_attn"), x);
    wk_tensor *h = wk_qkv_attention(qkv, c->num_heads, true, p, &c->gen);
    return wk_dropout(wk_module_forward(wk_module_child(m, "c_proj"), h), p, m->training,
                      &c->gen);
}

wk_module *wk_causal_self_attention_new(int64_t n_embd, int64_t n_head, bool bias,
                                        double dropout, wk_generator *g)
{
    const char *type = "CausalSelfAttention";
    if (!check_heads(type, n_embd, n_head, dropout)) return NULL;
    wk_module *m = wk_module_new(type, csa_forward, sizeof(attention_cfg));
    if (!m) return NULL;
    attention_cfg *c = m->config;
    c->dropout = dropout;
    c->embed_dim = n_embd;
    c->num_heads = n_head;
    c->is_causal = true;
    if (!wk_module_add_child(m, "c_attn", linear_child("Linear", n_embd, 3 * n_embd, bias, g)) ||
        !wk_module_add_child(m, "c_proj", linear_child("Linear", n_embd, n_embd, bias, g)) ||
        !seed_from(g, &c->gen)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

/* conv2d: the front-end (validation, output, autograd record), its backward, the CPU
 * kernels and the Conv2d module.
 *
 * Two CPU algorithms, chosen per pass (forward, input gradient, weight gradient):
 * - im2col: per image (OpenMP over images, BLAS single-threaded inside) the patches of a
 *   chunk of output rows are unfolded into col (Cg*kh*kw, rows*OW) and one GEMM per group
 *   gives y (Og, P) = W (Og, Cg*kh*kw) @ col. Backward: dW += dy @ col^T and
 *   dcol = W^T @ dy folded back into dx (col2im). Any stride, padding, dilation, groups.
 * - direct (stride 1): an image's input planes are copied into zero-padded planes of row
 *   length Wp = W + 2*pw. Output (oh, ow) reads xp[q + i*dh*Wp + j*dw] with q = oh*Wp + ow,
 *   so every kernel tap is one contiguous run over the "extended" output grid q (columns
 *   ow >= OW are computed and dropped). A register-blocked micro-kernel (AVX-512, AVX2 or
 *   plain vectors, picked at run time) keeps a block of output channels x positions in
 *   registers while it walks the taps. dx is the same kernel run on dy with the weight
 *   transposed and flipped and padding (k-1)*d - p; dW is a blocked dot product over q.
 *   It wins where C*kh*kw is small and a GEMM's K dimension would be too short.
 * Weight and bias gradients are summed per fixed block of images and then over the blocks
 * in order, so every result is independent of the thread count.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/tensor-impl.h"
#include "conv.h"
#include "init.h"

static const struct {
    const char *name;
} conv_info[] = {
    [WK_CONV_CONV2D] = {"conv2d"},
};
_Static_assert(sizeof conv_info / sizeof conv_info[0] == WK_CONV_COUNT,
               "conv_info must have one row per wk_conv_op");

const char *wk_conv_name(wk_conv_op op)
{
    return (unsigned)op < WK_CONV_COUNT ? conv_info[op].name : "?";
}

/* The sizes of one convolution. */
typedef struct {
    wk_dtype dtype;
    int64_t N, C, H, W;    /* input */
    int64_t O, KH, KW;     /* weight (O, Cg, KH, KW) */
    int64_t G, Cg, Og;     /* groups, channels per group */
    int64_t OH, OW;        /* output plane */
    int64_t sh, sw, ph, pw, dh, dw;
    wk_conv_algo algo;
} conv_geom;

typedef struct {
    /* y (N, O, OH, OW) = conv(x, w) + b (b may be NULL). 0, or -1 with an error. */
    int (*forward)(const conv_geom *g, const void *x, const void *w, const void *b, void *y);
    /* The gradients that are not NULL: dx (N, C, H, W), dw (O, Cg, KH, KW), db (O). */
    int (*backward)(const conv_geom *g, const void *x, const void *w, const void *dy,
                    void *dx, void *dw, void *db);
} conv_kernel;

/* ---- CPU helpers ---- */

#define COL_ELEMS (1 << 18)   /* elements of an im2col chunk (1 MiB in float32) */
#define CONV_GRAIN (1 << 17)  /* multiply-adds per thread at least */
#define MAX_WBLOCKS 64        /* image blocks of the weight-gradient sum */
#define WPART_ELEMS (1 << 22) /* elements of all weight-gradient partials together */

static int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

/* Scratch memory from the pool; NULL with an error when out of memory. */
typedef struct {
    void *p;
    size_t cap;
} scratch;

static void *scratch_get(scratch *s, size_t nbytes)
{
    s->p = wki_alloc(nbytes ? nbytes : 64, &s->cap);
    return s->p;
}

static void scratch_put(scratch *s)
{
    if (s->p) wki_dealloc(s->p, s->cap);
    s->p = NULL;
}

/* dst[0..n) = src[0..n) for short runs (rows of a plane), where a memcpy call costs more
 * than the copy: gcc is kept from turning the loop back into one. */
#if defined(__GNUC__) && !defined(__clang__)
#define WKI_NO_MEMCPY_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define WKI_NO_MEMCPY_LOOPS
#endif
WKI_NO_MEMCPY_LOOPS static inline void copy_elems(size_t es, char *restrict dst, const char *restrict src, int64_t n)
{
    if (es == 4) {
        float *d = (float *)dst;
        const float *s = (const float *)src;
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
    } else {
        double *d = (double *)dst;
        const double *s = (const double *)src;
        for (int64_t i = 0; i < n; i++) d[i] = s[i];
    }
}

static void gemm(wk_dtype dt, bool ta, bool tb, int64_t M, int64_t N, int64_t K,
                 const void *A, int64_t lda, const void *B, int64_t ldb, double beta, void *C,
                 int64_t ldc)
{
    if (dt == WK_DTYPE_F32)
        cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)M, (blasint)N, (blasint)K, 1.0f, A, (blasint)lda, B, (blasint)ldb,
                    (float)beta, C, (blasint)ldc);
    else
        cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                    (blasint)M, (blasint)N, (blasint)K, 1.0, A, (blasint)lda, B, (blasint)ldb,
                    beta, C, (blasint)ldc);
}

/* Images per block of the weight-gradient sum: a function of the shapes only, so the
 * summation order never depends on the thread count. */
static int64_t wblock_size(int64_t N, int64_t wsize)
{
    int64_t nb = N < MAX_WBLOCKS ? N : MAX_WBLOCKS;
    int64_t cap = WPART_ELEMS / (wsize > 0 ? wsize : 1);
    if (nb > cap) nb = cap;
    if (nb < 1) nb = 1;
    return ceil_div(N, nb);
}

/* Typed loops: im2col/col2im over a chunk of output rows, bias fill, row sums and the sum
 * of the per-block partials. */
#define DEF_TYPED(T, S)                                                                  \
    /* Valid output columns [lo, hi) of kernel column j: 0 <= ow*sw - pw + j*dw < W. */  \
    static void col_range_##S(const conv_geom *g, int64_t j, int64_t *lo, int64_t *hi)   \
    {                                                                                    \
        int64_t iw0 = j * g->dw - g->pw;                                                 \
        int64_t l = iw0 >= 0 ? 0 : ceil_div(-iw0, g->sw);                                \
        int64_t h = g->W - 1 - iw0 >= 0 ? (g->W - 1 - iw0) / g->sw + 1 : 0;              \
        if (l > g->OW) l = g->OW;                                                        \
        if (h > g->OW) h = g->OW;                                                        \
        if (h < l) h = l;                                                                \
        *lo = l;                                                                         \
        *hi = h;                                                                         \
    }                                                                                    \
    /* col (Cg*KH*KW, (oh1-oh0)*OW) from x (Cg, H, W). */                                \
    static void im2col_##S(const conv_geom *g, const T *x, T *col, int64_t oh0, int64_t oh1) \
    {                                                                                    \
        int64_t OW = g->OW, np = (oh1 - oh0) * OW, sw = g->sw;                           \
        for (int64_t c = 0; c < g->Cg; c++)                                              \
            for (int64_t i = 0; i < g->KH; i++)                                          \
                for (int64_t j = 0; j < g->KW; j++) {                                    \
                    T *dst = col + ((c * g->KH + i) * g->KW + j) * np;                   \
                    int64_t lo, hi, iw0 = j * g->dw - g->pw;                             \
                    col_range_##S(g, j, &lo, &hi);                                       \
                    for (int64_t oh = oh0; oh < oh1; oh++, dst += OW) {                  \
                        int64_t ih = oh * g->sh - g->ph + i * g->dh;                     \
                        if (ih < 0 || ih >= g->H) {                                      \
                            memset(dst, 0, (size_t)OW * sizeof(T));                      \
                            continue;                                                    \
                        }                                                                \
                        const T *row = x + (c * g->H + ih) * g->W + iw0;                 \
                        for (int64_t ow = 0; ow < lo; ow++) dst[ow] = 0;                 \
                        if (sw == 1)                                                     \
                            for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[ow];      \
                        else                                                             \
                            for (int64_t ow = lo; ow < hi; ow++) dst[ow] = row[ow * sw]; \
                        for (int64_t ow = hi; ow < OW; ow++) dst[ow] = 0;                \
                    }                                                                    \
                }                                                                        \
    }                                                                                    \
    /* dx (Cg, H, W) += col folded back (the adjoint of im2col). */                      \
    static void col2im_##S(const conv_geom *g, const T *col, T *dx, int64_t oh0, int64_t oh1) \
    {                                                                                    \
        int64_t OW = g->OW, np = (oh1 - oh0) * OW, sw = g->sw;                           \
        for (int64_t c = 0; c < g->Cg; c++)                                              \
            for (int64_t i = 0; i < g->KH; i++)                                          \
                for (int64_t j = 0; j < g->KW; j++) {                                    \
                    const T *src = col + ((c * g->KH + i) * g->KW + j) * np;             \
                    int64_t lo, hi, iw0 = j * g->dw - g->pw;                             \
                    col_range_##S(g, j, &lo, &hi);                                       \
                    for (int64_t oh = oh0; oh < oh1; oh++, src += OW) {                  \
                        int64_t ih = oh * g->sh - g->ph + i * g->dh;                     \
                        if (ih < 0 || ih >= g->H) continue;                              \
                        T *row = dx + (c * g->H + ih) * g->W + iw0;                      \
                        if (sw == 1)                                                     \
                            for (int64_t ow = lo; ow < hi; ow++) row[ow] += src[ow];     \
                        else                                                             \
                            for (int64_t ow = lo; ow < hi; ow++) row[ow * sw] += src[ow]; \
                    }                                                                    \
                }                                                                        \
    }                                                                                    \
    /* rows (n, P) = bias[r] (zeros without bias). */                                    \
    static void fill_rows_##S(T *y, const T *bias, int64_t n, int64_t P)                 \
    {                                                                                    \
        for (int64_t r = 0; r < n; r++) {                                                \
            T v = bias ? bias[r] : (T)0;                                                 \
            for (int64_t p = 0; p < P; p++) y[r * P + p] = v;                            \
        }                                                                                \
    }                                                                                    \
    /* acc[r] += sum of row r of x (n, P), in a fixed order (8 lanes, then the lanes). */ \
    static void add_row_sums_##S(T *acc, const T *x, int64_t n, int64_t P)               \
    {                                                                                    \
        for (int64_t r = 0; r < n; r++) {                                                \
            const T *row = x + r * P;                                                    \
            T lane[8] = {0};                                                             \
            int64_t p = 0;                                                               \
            for (; p + 8 <= P; p += 8)                                                   \
                for (int l = 0; l < 8; l++) lane[l] += row[p + l];                       \
            T s = 0;                                                                     \
            for (int l = 0; l < 8; l++) s += lane[l];                                    \
            for (; p < P; p++) s += row[p];                                              \
            acc[r] += s;                                                                 \
        }                                                                                \
    }                                                                                    \
    /* out[e] = sum over blocks b (in order) of part[b * stride + e], e < n. */         \
    static void sum_parts_##S(T *out, const T *part, int64_t nblocks, int64_t stride,     \
                              int64_t n)                                                 \
    {                                                                                    \
        int nt = wki_threads_for(nblocks * n, 1 << 16);                                  \
        _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")         \
        for (int64_t e = 0; e < n; e++) {                                                \
            T s = part[e];                                                               \
            for (int64_t b = 1; b < nblocks; b++) s += part[b * stride + e];             \
            out[e] = s;                                                                  \
        }                                                                                \
    }
DEF_TYPED(float, f32)
DEF_TYPED(double, f64)

static void im2col(const conv_geom *g, const void *x, void *col, int64_t oh0, int64_t oh1)
{
    if (g->dtype == WK_DTYPE_F32) im2col_f32(g, x, col, oh0, oh1);
    else im2col_f64(g, x, col, oh0, oh1);
}

static void col2im(const conv_geom *g, const void *col, void *dx, int64_t oh0, int64_t oh1)
{
    if (g->dtype == WK_DTYPE_F32) col2im_f32(g, col, dx, oh0, oh1);
    else col2im_f64(g, col, dx, oh0, oh1);
}

static void fill_rows(wk_dtype dt, void *y, const void *bias, int64_t n, int64_t P)
{
    if (dt == WK_DTYPE_F32) fill_rows_f32(y, bias, n, P);
    else fill_rows_f64(y, bias, n, P);
}

static void add_row_sums(wk_dtype dt, void *acc, const void *x, int64_t n, int64_t P)
{
    if (dt == WK_DTYPE_F32) add_row_sums_f32(acc, x, n, P);
    else add_row_sums_f64(acc, x, n, P);
}

static void sum_parts(wk_dtype dt, void *out, const void *part, int64_t nblocks,
                      int64_t stride, int64_t n)
{
    if (dt == WK_DTYPE_F32) sum_parts_f32(out, part, nblocks, stride, n);
    else sum_parts_f64(out, part, nblocks, stride, n);
}

/* A 1x1 kernel with stride 1 and no padding reads x as the col matrix itself. */
static bool is_pointwise(const conv_geom *g)
{
    return g->KH == 1 && g->KW == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 && g->pw == 0;
}

/* Output rows per im2col chunk. */
static int64_t chunk_rows(const conv_geom *g)
{
    int64_t per_row = g->Cg * g->KH * g->KW * g->OW;
    int64_t r = per_row > 0 ? COL_ELEMS / per_row : g->OH;
    if (r < 1) r = 1;
    return r < g->OH ? r : g->OH;
}

/* ---- direct kernels (stride 1) ----
 *
 * A plan describes one stride-1 convolution of `ci` padded input planes (plane stride ps,
 * row length wp) into `co` output channels over the extended grid of qr positions
 * (q = oh*wp + ow, rounded up to whole register blocks). toff[t] is the offset of tap t
 * (i*dh*wp + j*dw); entries past ntaps are 0 (dummy taps of a partial block). */
#define DIRECT_MAX_TAPS 256
#define DIRECT_MAX_K 288            /* ci*kh*kw up to which AUTO takes the direct path */
#define DIRECT_MAX_PLANES (1 << 20) /* padded input elements per image and group */

typedef struct {
    int64_t ci, co, ntaps, ps, wp, qr;
    int64_t toff[DIRECT_MAX_TAPS + 8];
} dplan;

/* fwd: ext (OB, qr) = packed weights (ci, ntaps, OB) applied to xp (+ bias (OB) or 0).
 * dw: dwp (co, ci, ntaps) += sum over q of dy (co rounded up to OBW rows, qr) times xp
 * shifted by each tap. */
typedef void (*dfwd_fn)(const dplan *p, const void *xp, const void *wp, const void *bias,
                        void *ext);
typedef void (*ddw_fn)(const dplan *p, const void *xp, const void *dy, void *dwp);

typedef struct {
    dfwd_fn fwd;
    ddw_fn dw;
    int ob, qb;   /* fwd: output channels per block, positions per block */
    int obw, tb;  /* dw: output channels x taps per block */
    int vl;       /* elements per vector */
} dvariant;

/* The micro-kernels, instantiated per element type and vector width (VB bytes) with the
 * register blocking that fits the target's register file. */
#define DEF_DIRECT(S, T, VB, OB, QV, OBW, TB, ATTR)                                      \
    ATTR static void dfwd_##S(const dplan *p, const void *xp_, const void *wp_,           \
                              const void *bias_, void *ext_)                              \
    {                                                                                    \
        typedef T V __attribute__((vector_size(VB)));                                    \
        enum { VL = VB / sizeof(T) };                                                    \
        const T *xp = xp_, *wp = wp_, *bias = bias_;                                     \
        T *ext = ext_;                                                                   \
        for (int64_t q0 = 0; q0 < p->qr; q0 += VL * QV) {                                \
            V acc[OB][QV];                                                               \
            for (int a = 0; a < OB; a++)                                                 \
                for (int v = 0; v < QV; v++) acc[a][v] = (V){0} + (bias ? bias[a] : (T)0); \
            for (int64_t c = 0; c < p->ci; c++) {                                        \
                const T *xc = xp + c * p->ps + q0, *wc = wp + c * p->ntaps * OB;         \
                for (int64_t t = 0; t < p->ntaps; t++) {                                 \
                    V xv[QV];                                                            \
                    for (int v = 0; v < QV; v++)                                         \
                        memcpy(&xv[v], xc + p->toff[t] + v * VL, sizeof(V));             \
                    for (int a = 0; a < OB; a++)                                         \
                        for (int v = 0; v < QV; v++) acc[a][v] += wc[t * OB + a] * xv[v]; \
                }                                                                        \
            }                                                                            \
            for (int a = 0; a < OB; a++)                                                 \
                for (int v = 0; v < QV; v++)                                             \
                    memcpy(ext + a * p->qr + q0 + v * VL, &acc[a][v], sizeof(V));        \
        }                                                                                \
    }                                                                                    \
    ATTR static void ddw_##S(const dplan *p, const void *xp_, const void *dy_, void *dwp_) \
    {                                                                                    \
        typedef T V __attribute__((vector_size(VB)));                                    \
        enum { VL = VB / sizeof(T) };                                                    \
        const T *xp = xp_, *dy = dy_;                                                    \
        T *dwp = dwp_;                                                                   \
        for (int64_t o0 = 0; o0 < p->co; o0 += OBW)                                      \
            for (int64_t c = 0; c < p->ci; c++)                                          \
                for (int64_t t0 = 0; t0 < p->ntaps; t0 += TB) {                          \
                    const T *xc = xp + c * p->ps, *dyo = dy + o0 * p->qr;                \
                    const T *xt[TB];                                                     \
                    for (int b = 0; b < TB; b++) xt[b] = xc + p->toff[t0 + b];           \
                    V acc[OBW][TB];                                                      \
                    for (int a = 0; a < OBW; a++)                                        \
                        for (int b = 0; b < TB; b++) acc[a][b] = (V){0};                 \
                    for (int64_t q = 0; q < p->qr; q += VL) {                            \
                        V dv[OBW];                                                       \
                        for (int a = 0; a < OBW; a++)                                    \
                            memcpy(&dv[a], dyo + a * p->qr + q, sizeof(V));              \
                        for (int b = 0; b < TB; b++) {                                   \
                            V xv;                                                        \
                            memcpy(&xv, xt[b] + q, sizeof(V));                           \
                            for (int a = 0; a < OBW; a++) acc[a][b] += dv[a] * xv;       \
                        }                                                                \
                    }                                                                    \
                    for (int a = 0; a < OBW && o0 + a < p->co; a++)                      \
                        for (int b = 0; b < TB && t0 + b < p->ntaps; b++) {              \
                            T s = 0;                                                     \
                            for (int l = 0; l < VL; l++) s += acc[a][b][l];              \
                            dwp[((o0 + a) * p->ci + c) * p->ntaps + t0 + b] += s;        \
                        }                                                                \
                }                                                                        \
    }

DEF_DIRECT(f32_generic, float, 16, 4, 3, 4, 2, )
DEF_DIRECT(f64_generic, double, 16, 4, 3, 4, 2, )
static const dvariant dv_generic[2] = {
    {dfwd_f32_generic, ddw_f32_generic, 4, 12, 4, 2, 4},
    {dfwd_f64_generic, ddw_f64_generic, 4, 6, 4, 2, 2},
};

#if defined(__GNUC__) && defined(__x86_64__)
#define WKI_X86 1
DEF_DIRECT(f32_avx2, float, 32, 4, 3, 4, 2, __attribute__((target("avx2,fma"))))
DEF_DIRECT(f64_avx2, double, 32, 4, 3, 4, 2, __attribute__((target("avx2,fma"))))
DEF_DIRECT(f32_avx512, float, 64, 8, 2, 4, 3, __attribute__((target("avx512f,fma"))))
DEF_DIRECT(f64_avx512, double, 64, 8, 2, 4, 3, __attribute__((target("avx512f,fma"))))
static const dvariant dv_avx2[2] = {
    {dfwd_f32_avx2, ddw_f32_avx2, 4, 24, 4, 2, 8},
    {dfwd_f64_avx2, ddw_f64_avx2, 4, 12, 4, 2, 4},
};
static const dvariant dv_avx512[2] = {
    {dfwd_f32_avx512, ddw_f32_avx512, 8, 32, 4, 3, 16},
    {dfwd_f64_avx512, ddw_f64_avx512, 8, 16, 4, 3, 8},
};
#endif

/* The widest variant this CPU runs. */
static const dvariant *dvariant_for(wk_dtype dt)
{
    int k = dt == WK_DTYPE_F32 ? 0 : 1;
#ifdef WKI_X86
    if (__builtin_cpu_supports("avx512f")) return &dv_avx512[k];
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return &dv_avx2[k];
#endif
    return &dv_generic[k];
}

/* A stride-1 convolution as the direct kernels see it: N images of G groups, ci input
 * planes (H, W) -> co output planes (OH, OW) per group. */
typedef struct {
    wk_dtype dtype;
    int64_t N, G, ci, co, H, W, OH, OW, KH, KW, ph, pw, dh, dw;
} dconv;

static void dplan_init(dplan *p, const dconv *d, const dvariant *v)
{
    p->ci = d->ci;
    p->co = d->co;
    p->ntaps = d->KH * d->KW;
    p->wp = d->W + 2 * d->pw;
    int64_t q = d->OH * p->wp;
    p->qr = round_up(q > 0 ? q : 1, v->qb);
    memset(p->toff, 0, sizeof p->toff);
    int64_t tmax = 0;
    for (int64_t i = 0; i < d->KH; i++)
        for (int64_t j = 0; j < d->KW; j++) {
            int64_t off = i * d->dh * p->wp + j * d->dw;
            p->toff[i * d->KW + j] = off;
            if (off > tmax) tmax = off;
        }
    p->ps = round_up(p->qr + tmax, 16);
}

/* xp: the ci planes of x (H, W) each, zero-padded, at stride ps. */
static void pad_planes(const dconv *d, const dplan *p, size_t es, const char *x, char *xp)
{
    memset(xp, 0, (size_t)(p->ci * p->ps) * es);
    for (int64_t c = 0; c < p->ci; c++)
        for (int64_t h = 0; h < d->H; h++)
            copy_elems(es, xp + (size_t)(c * p->ps + (h + d->ph) * p->wp + d->pw) * es,
                       x + (size_t)((c * d->H + h) * d->W) * es, d->W);
}

/* The packed forward weights: [G][ceil(co/OB)][ci][ntaps][OB], zeros past co. From w
 * (G*co, ci, ntaps) or, with `flip`, from a conv weight (G*ci, co, ntaps) transposed per
 * group and flipped (the input-gradient convolution). */
static void pack_weights(const dconv *d, int ob, bool flip, const void *w_, void *out_)
{
    int64_t nob = ceil_div(d->co, ob), nt = d->KH * d->KW;
    for (int64_t g = 0; g < d->G; g++)
        for (int64_t b = 0; b < nob; b++)
            for (int64_t c = 0; c < d->ci; c++)
                for (int64_t t = 0; t < nt; t++)
                    for (int a = 0; a < ob; a++) {
                        int64_t o = b * ob + a;
                        int64_t dst = (((g * nob + b) * d->ci + c) * nt + t) * ob + a;
                        int64_t src = flip ? ((g * d->ci + c) * d->co + o) * nt + (nt - 1 - t)
                                           : ((g * d->co + o) * d->ci + c) * nt + t;
                        if (d->dtype == WK_DTYPE_F32)
                            ((float *)out_)[dst] = o < d->co ? ((const float *)w_)[src] : 0;
                        else
                            ((double *)out_)[dst] = o < d->co ? ((const double *)w_)[src] : 0;
                    }
}

/* y (N, G*co, OH, OW) = direct convolution of x with packed weights (+ bias). */
static int direct_forward(const dconv *d, const void *x, const void *wpk, const void *bias,
                          void *y)
{
    const dvariant *v = dvariant_for(d->dtype);
    size_t es = wk_dtype_size(d->dtype);
    dplan p;
    dplan_init(&p, d, v);
    int64_t nob = ceil_div(d->co, v->ob), ntasks = d->N * d->G * nob;
    if (ntasks == 0) return 0;
    int64_t work = d->N * d->G * d->co * d->ci * p.ntaps * p.qr;
    int nt = wki_threads_for(work, CONV_GRAIN);
    if (nt > ntasks) nt = (int)ntasks;
    /* per thread: padded planes, extended output, packed bias block */
    size_t per = (size_t)(p.ci * p.ps + v->ob * p.qr + v->ob) * es;
    per = (size_t)round_up((int64_t)per, 64);
    scratch s;
    if (!scratch_get(&s, per * (size_t)nt)) return -1;
    int64_t plane = d->OH * d->OW, in_plane = d->H * d->W;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *buf = (char *)s.p + per * (size_t)omp_get_thread_num();
        char *xp = buf, *ext = xp + (size_t)(p.ci * p.ps) * es;
        char *bb = ext + (size_t)(v->ob * p.qr) * es;
        int64_t built = -1; /* the image*group whose planes are in xp */
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntasks; task++) {
            int64_t ng = task / nob, b = task % nob, n = ng / d->G, g = ng % d->G;
            if (ng != built) {
                pad_planes(d, &p, es, (const char *)x + (size_t)((n * d->G + g) * d->ci * in_plane) * es,
                           xp);
                built = ng;
            }
            int64_t o0 = b * v->ob, cnt = d->co - o0 < v->ob ? d->co - o0 : v->ob;
            const void *bp = NULL;
            if (bias) {
                memset(bb, 0, (size_t)v->ob * es);
                memcpy(bb, (const char *)bias + (size_t)(g * d->co + o0) * es, (size_t)cnt * es);
                bp = bb;
            }
            const char *wb = (const char *)wpk + (size_t)((g * nob + b) * d->ci * p.ntaps * v->ob) * es;
            v->fwd(&p, xp, wb, bp, ext);
            char *yo = (char *)y + (size_t)((n * d->G + g) * d->co + o0) * (size_t)plane * es;
            for (int64_t a = 0; a < cnt; a++)
                for (int64_t oh = 0; oh < d->OH; oh++)
                    copy_elems(es, yo + (size_t)(a * plane + oh * d->OW) * es,
                               ext + (size_t)(a * p.qr + oh * p.wp) * es, d->OW);
        }
    }
    scratch_put(&s);
    return 0;
}

/* ---- algorithm choice ---- */

static bool direct_fits(const conv_geom *g, int64_t ci, int64_t pad_h, int64_t pad_w)
{
    int64_t taps = g->KH * g->KW;
    if (g->sh != 1 || g->sw != 1 || taps > DIRECT_MAX_TAPS) return false;
    int64_t wp = g->W + 2 * pad_w, hp = g->H + 2 * pad_h;
    if (ci * (hp + 2) * wp > DIRECT_MAX_PLANES) return false;
    if (g->algo == WK_CONV_ALGO_DIRECT) return true;
    return g->algo == WK_CONV_ALGO_AUTO && ci * taps <= DIRECT_MAX_K;
}

static bool direct_for_forward(const conv_geom *g) { return direct_fits(g, g->Cg, g->ph, g->pw); }

/* dx as a convolution of dy needs padding (k-1)*d - p >= 0. */
static bool direct_for_dx(const conv_geom *g)
{
    int64_t qh = (g->KH - 1) * g->dh - g->ph, qw = (g->KW - 1) * g->dw - g->pw;
    if (qh < 0 || qw < 0) return false;
    conv_geom t = *g;
    t.H = g->OH;
    t.W = g->OW;
    return direct_fits(&t, g->Og, qh, qw);
}

static bool direct_for_dw(const conv_geom *g) { return direct_fits(g, g->Cg, g->ph, g->pw); }

static dconv dconv_forward(const conv_geom *g)
{
    return (dconv){g->dtype, g->N, g->G, g->Cg, g->Og, g->H, g->W, g->OH, g->OW,
                   g->KH, g->KW, g->ph, g->pw, g->dh, g->dw};
}

/* dx = conv(dy, w transposed and flipped) with padding (k-1)*d - p. */
static dconv dconv_dx(const conv_geom *g)
{
    return (dconv){g->dtype, g->N, g->G, g->Og, g->Cg, g->OH, g->OW, g->H, g->W,
                   g->KH, g->KW, (g->KH - 1) * g->dh - g->ph, (g->KW - 1) * g->dw - g->pw,
                   g->dh, g->dw};
}

/* Pack w as d needs it and run the direct kernel. */
static int direct_run(const dconv *d, bool flip, const void *x, const void *w,
                      const void *bias, void *y)
{
    const dvariant *v = dvariant_for(d->dtype);
    size_t es = wk_dtype_size(d->dtype);
    int64_t n = d->G * round_up(d->co, v->ob) * d->ci * d->KH * d->KW;
    scratch s;
    if (!scratch_get(&s, (size_t)n * es)) return -1;
    pack_weights(d, v->ob, flip, w, s.p);
    int rc = direct_forward(d, x, s.p, bias, y);
    scratch_put(&s);
    return rc;
}

/* ---- CPU forward ---- */

static int im2col_forward(const conv_geom *g, const void *x, const void *w, const void *b,
                          void *y)
{
    size_t es = wk_dtype_size(g->dtype);
    int64_t P = g->OH * g->OW, K = g->Cg * g->KH * g->KW, rows = chunk_rows(g);
    bool pw1 = is_pointwise(g);
    int64_t work = g->N * g->O * P * (K > 0 ? K : 1);
    int nt = wki_threads_for(work, CONV_GRAIN);
    if (nt > g->N) nt = g->N > 0 ? (int)g->N : 1;
    size_t per = pw1 ? 0 : (size_t)round_up(K * rows * g->OW * (int64_t)es, 64);
    scratch s;
    if (!scratch_get(&s, per * (size_t)nt)) return -1;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *col = (char *)s.p + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t n = 0; n < g->N; n++)
            for (int64_t gr = 0; gr < g->G; gr++) {
                const char *xg = (const char *)x + (size_t)((n * g->C + gr * g->Cg) * g->H * g->W) * es;
                char *yg = (char *)y + (size_t)((n * g->O + gr * g->Og) * P) * es;
                const char *wg = (const char *)w + (size_t)(gr * g->Og * K) * es;
                fill_rows(g->dtype, yg, b ? (const char *)b + (size_t)(gr * g->Og) * es : NULL,
                          g->Og, P);
                if (K == 0 || P == 0 || g->Og == 0) continue;
                if (pw1) {
                    gemm(g->dtype, false, false, g->Og, P, K, wg, K, xg, P, 1, yg, P);
                    continue;
                }
                for (int64_t oh0 = 0; oh0 < g->OH; oh0 += rows) {
                    int64_t oh1 = oh0 + rows < g->OH ? oh0 + rows : g->OH, np = (oh1 - oh0) * g->OW;
                    im2col(g, xg, col, oh0, oh1);
                    gemm(g->dtype, false, false, g->Og, np, K, wg, K, col, np, 1,
                         yg + (size_t)(oh0 * g->OW) * es, P);
                }
            }
    }
    scratch_put(&s);
    return 0;
}

static int cpu_conv_forward(const conv_geom *g, const void *x, const void *w, const void *b,
                            void *y)
{
    if (g->N * g->O * g->OH * g->OW == 0) return 0;
    if (direct_for_forward(g)) {
        dconv d = dconv_forward(g);
        return direct_run(&d, false, x, w, b, y);
    }
    return im2col_forward(g, x, w, b, y);
}

/* ---- CPU backward ---- */

#define DW_BATCH 8               /* images per call of the direct weight-gradient kernel */
#define DW_BATCH_ELEMS (1 << 18) /* elements of its buffers */

typedef struct {
    const conv_geom *g;
    const dvariant *v;
    dplan p;            /* direct weight gradient: qr and ps are set per batch */
    bool direct_dw;
    int64_t nsub;       /* images per direct weight-gradient batch */
    int64_t seg;        /* q positions per image in such a batch (its padded plane) */
    int64_t tmax;       /* largest tap offset */
    int64_t rows;       /* im2col chunk rows */
} bwd_ctx;

/* Direct weight gradient of `cnt` images of group gr into dwg (Og, Cg, taps): their padded
 * planes are laid one after another (seg positions each) so that one kernel call runs
 * over all of them and reduces its vector lanes once; positions outside an image's
 * output rows and columns carry dy = 0. */
static void dw_direct_batch(const bwd_ctx *c, const char *x, const char *dy, int64_t n0,
                            int64_t cnt, int64_t gr, char *dwg, char *buf)
{
    const conv_geom *g = c->g;
    size_t es = wk_dtype_size(g->dtype);
    dplan p = c->p;
    p.qr = round_up(cnt * c->seg, c->v->qb);
    p.ps = round_up(p.qr + c->tmax, 16);
    int64_t rows = round_up(g->Og, c->v->obw), HW = g->H * g->W, P = g->OH * g->OW;
    char *xp = buf, *dyx = buf + (size_t)(p.ci * p.ps) * es;
    memset(xp, 0, (size_t)(p.ci * p.ps) * es);
    memset(dyx, 0, (size_t)(rows * p.qr) * es);
    for (int64_t k = 0; k < cnt; k++) {
        const char *xn = x + (size_t)(((n0 + k) * g->C + gr * g->Cg) * HW) * es;
        const char *dyn = dy + (size_t)(((n0 + k) * g->O + gr * g->Og) * P) * es;
        for (int64_t ch = 0; ch < g->Cg; ch++)
            for (int64_t h = 0; h < g->H; h++)
                copy_elems(es, xp + (size_t)(ch * p.ps + k * c->seg + (h + g->ph) * p.wp + g->pw) * es,
                           xn + (size_t)((ch * g->H + h) * g->W) * es, g->W);
        for (int64_t o = 0; o < g->Og; o++)
            for (int64_t oh = 0; oh < g->OH; oh++)
                copy_elems(es, dyx + (size_t)(o * p.qr + k * c->seg + oh * p.wp) * es,
                           dyn + (size_t)(o * P + oh * g->OW) * es, g->OW);
    }
    c->v->dw(&p, xp, dyx, dwg);
}

/* Images [n0, n1) of one block: bias and weight partials (dbp (O), dwp (O, K)) and, on
 * the im2col path, their input gradients. */
static void bwd_images(const bwd_ctx *c, const char *x, const char *w, const char *dy,
                       char *dx, char *dwp, char *dbp, char *buf, int64_t n0, int64_t n1)
{
    const conv_geom *g = c->g;
    wk_dtype dt = g->dtype;
    size_t es = wk_dtype_size(dt);
    int64_t P = g->OH * g->OW, K = g->Cg * g->KH * g->KW, HW = g->H * g->W;
    bool pw1 = is_pointwise(g);
    if (dwp && c->direct_dw)
        for (int64_t b0 = n0; b0 < n1; b0 += c->nsub)
            for (int64_t gr = 0; gr < g->G; gr++)
                dw_direct_batch(c, x, dy, b0, n1 - b0 < c->nsub ? n1 - b0 : c->nsub, gr,
                                dwp + (size_t)(gr * g->Og * K) * es, buf);
    bool gemm_dw = dwp && !c->direct_dw;
    for (int64_t n = n0; n < n1; n++) {
        const char *xn = x + (size_t)(n * g->C * HW) * es, *dyn = dy + (size_t)(n * g->O * P) * es;
        char *dxn = dx ? dx + (size_t)(n * g->C * HW) * es : NULL;
        if (dbp) add_row_sums(dt, dbp, dyn, g->O, P);
        if (dxn) memset(dxn, 0, (size_t)(g->C * HW) * es);
        if ((!gemm_dw && !dxn) || K == 0 || P == 0 || g->Og == 0) continue;
        for (int64_t gr = 0; gr < g->G; gr++) {
            const char *xg = xn + (size_t)(gr * g->Cg * HW) * es;
            const char *dyg = dyn + (size_t)(gr * g->Og * P) * es;
            const char *wg = w + (size_t)(gr * g->Og * K) * es;
            char *dxg = dxn ? dxn + (size_t)(gr * g->Cg * HW) * es : NULL;
            char *dwg = gemm_dw ? dwp + (size_t)(gr * g->Og * K) * es : NULL;
            if (pw1) {
                if (dwg) gemm(dt, false, true, g->Og, K, P, dyg, P, xg, P, 1, dwg, K);
                if (dxg) gemm(dt, true, false, K, P, g->Og, wg, K, dyg, P, 0, dxg, P);
                continue;
            }
            for (int64_t oh0 = 0; oh0 < g->OH; oh0 += c->rows) {
                int64_t oh1 = oh0 + c->rows < g->OH ? oh0 + c->rows : g->OH;
                int64_t np = (oh1 - oh0) * g->OW;
                const char *dyc = dyg + (size_t)(oh0 * g->OW) * es;
                if (dwg) {
                    im2col(g, xg, buf, oh0, oh1);
                    gemm(dt, false, true, g->Og, K, np, dyc, P, buf, np, 1, dwg, K);
                }
                if (dxg) {
                    gemm(dt, true, false, K, np, g->Og, wg, K, dyc, P, 0, buf, np);
                    col2im(g, buf, dxg, oh0, oh1);
                }
            }
        }
    }
}

static int cpu_conv_backward(const conv_geom *g, const void *x, const void *w, const void *dy,
                             void *dx, void *dw, void *db)
{
    size_t es = wk_dtype_size(g->dtype);
    int64_t K = g->Cg * g->KH * g->KW, P = g->OH * g->OW, wn = g->O * K;
    if (dx && direct_for_dx(g) && g->N * g->C * g->H * g->W > 0) {
        dconv d = dconv_dx(g);
        if (direct_run(&d, true, dy, w, NULL, dx)) return -1;
        dx = NULL;
    }
    if (!dx && !dw && !db) return 0;
    if (g->N == 0) { /* no images: zero gradients */
        if (dw) memset(dw, 0, (size_t)wn * es);
        if (db) memset(db, 0, (size_t)g->O * es);
        return 0;
    }
    bwd_ctx c = {.g = g, .v = dvariant_for(g->dtype), .rows = chunk_rows(g)};
    c.direct_dw = dw && direct_for_dw(g);
    size_t per = 0;
    if (c.direct_dw) {
        dconv d = dconv_forward(g);
        dplan_init(&c.p, &d, c.v);
        c.seg = (g->H + 2 * g->ph) * c.p.wp;
        c.tmax = c.p.toff[g->KH * g->KW - 1];
        int64_t rows = round_up(g->Og, c.v->obw);
        c.nsub = DW_BATCH_ELEMS / ((g->Cg + rows) * c.seg);
        c.nsub = c.nsub < 1 ? 1 : c.nsub > DW_BATCH ? DW_BATCH : c.nsub;
        int64_t qr = round_up(c.nsub * c.seg, c.v->qb);
        per = (size_t)(g->Cg * round_up(qr + c.tmax, 16) + rows * qr) * es;
    }
    size_t col = (size_t)(K * c.rows * g->OW) * es;
    if ((dx || (dw && !c.direct_dw)) && !is_pointwise(g) && col > per) per = col;
    per = (size_t)round_up((int64_t)per, 64);
    /* blocks of images for the weight/bias sums; the input gradient rides along */
    int64_t bs = wblock_size(g->N, wn + g->O), nblocks = ceil_div(g->N, bs);
    bool sums = dw || db;
    int64_t work = g->N * g->O * (P > 0 ? P : 1) * (K > 0 ? K : 1) * ((dx != NULL) + (dw != NULL));
    int nt = wki_threads_for(work, CONV_GRAIN);
    if (nt > nblocks) nt = (int)nblocks;
    size_t part = sums ? (size_t)((wn + g->O) * nblocks) * es : 0;
    scratch s, sp;
    if (!scratch_get(&s, per * (size_t)nt)) return -1;
    if (!scratch_get(&sp, part)) {
        scratch_put(&s);
        return -1;
    }
    if (part) memset(sp.p, 0, part);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *buf = (char *)s.p + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblocks; b++) {
            char *dwp = sums ? (char *)sp.p + (size_t)(b * (wn + g->O)) * es : NULL;
            bwd_images(&c, x, w, dy, dx, dw ? dwp : NULL, db ? dwp + (size_t)wn * es : NULL, buf,
                       b * bs, (b + 1) * bs < g->N ? (b + 1) * bs : g->N);
        }
    }
    scratch_put(&s);
    if (dw) sum_parts(g->dtype, dw, sp.p, nblocks, wn + g->O, wn);
    if (db)
        sum_parts(g->dtype, db, (const char *)sp.p + (size_t)wn * es, nblocks, wn + g->O, g->O);
    scratch_put(&sp);
    return 0;
}

static const conv_kernel conv_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_conv_forward, cpu_conv_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL},
};

/* ---- front-end ---- */

/* Options with defaults filled in; false with an error naming op when invalid. */
static bool resolve_opts(const char *op, const wk_conv2d_opts *in, wk_conv2d_opts *out)
{
    *out = in ? *in : (wk_conv2d_opts){0};
    for (int k = 0; k < 2; k++) {
        if (!out->stride[k]) out->stride[k] = 1;
        if (!out->dilation[k]) out->dilation[k] = 1;
    }
    if (!out->groups) out->groups = 1;
    if (out->stride[0] < 1 || out->stride[1] < 1) {
        wk_set_error("%s: stride must be >= 1, got (%lld, %lld)", op, (long long)out->stride[0],
                     (long long)out->stride[1]);
        return false;
    }
    if (out->dilation[0] < 1 || out->dilation[1] < 1) {
        wk_set_error("%s: dilation must be >= 1, got (%lld, %lld)", op,
                     (long long)out->dilation[0], (long long)out->dilation[1]);
        return false;
    }
    if (out->padding[0] < 0 || out->padding[1] < 0) {
        wk_set_error("%s: padding must be >= 0, got (%lld, %lld)", op,
                     (long long)out->padding[0], (long long)out->padding[1]);
        return false;
    }
    if (out->groups < 1) {
        wk_set_error("%s: groups must be >= 1, got %lld", op, (long long)out->groups);
        return false;
    }
    if ((unsigned)out->algo > WK_CONV_ALGO_DIRECT) {
        wk_set_error("%s: invalid algo %d", op, (int)out->algo);
        return false;
    }
    return true;
}

static bool check_dtype(const char *op, const wk_tensor *t, const char *what)
{
    if (t->dtype == WK_DTYPE_F32 || t->dtype == WK_DTYPE_F64) return true;
    if (t->dtype == WK_DTYPE_BF16 || t->dtype == WK_DTYPE_F16)
        wk_set_error("%s: %s is %s, a storage type; convert with wk_to_dtype(t, "
                     "WK_DTYPE_F32) first",
                     op, what, wk_dtype_name(t->dtype));
    else
        wk_set_error("%s: %s dtype %s is not supported (expected float32 or float64)", op, what,
                     wk_dtype_name(t->dtype));
    return false;
}

/* Shapes and options -> geometry; false with an error naming the shapes. */
static bool conv_setup(const char *op, const wk_tensor *x, const wk_tensor *w,
                       const wk_tensor *b, const wk_conv2d_opts *o, conv_geom *g)
{
    if (x->ndim != 4 && x->ndim != 3) {
        wk_set_error("%s: input must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape %s", op,
                     wki_shape_s(x));
        return false;
    }
    if (w->ndim != 4) {
        wk_set_error("%s: weight must be 4-d (out_channels, in_channels/groups, kh, kw), got "
                     "shape %s",
                     op, wki_shape_s(w));
        return false;
    }
    int lead = x->ndim - 3;
    *g = (conv_geom){
        .dtype = x->dtype, .N = lead ? x->shape[0] : 1, .C = x->shape[lead],
        .H = x->shape[lead + 1], .W = x->shape[lead + 2], .O = w->shape[0],
        .KH = w->shape[2], .KW = w->shape[3], .G = o->groups, .sh = o->stride[0],
        .sw = o->stride[1], .ph = o->padding[0], .pw = o->padding[1], .dh = o->dilation[0],
        .dw = o->dilation[1], .algo = o->algo,
    };
    if (g->KH < 1 || g->KW < 1) {
        wk_set_error("%s: kernel sizes must be >= 1, got weight shape %s", op, wki_shape_s(w));
        return false;
    }
    if (g->O % g->G) {
        wk_set_error("%s: groups %lld must divide out_channels %lld (weight shape %s)", op,
                     (long long)g->G, (long long)g->O, wki_shape_s(w));
        return false;
    }
    if (g->C % g->G) {
        wk_set_error("%s: groups %lld must divide in_channels %lld (input shape %s)", op,
                     (long long)g->G, (long long)g->C, wki_shape_s(x));
        return false;
    }
    g->Cg = g->C / g->G;
    g->Og = g->O / g->G;
    if (w->shape[1] != g->Cg) {
        wk_set_error("%s: input shape %s has %lld channels, but weight shape %s with groups "
                     "%lld expects %lld (%lld per group)",
                     op, wki_shape_s(x), (long long)g->C, wki_shape_s(w), (long long)g->G,
                     (long long)(w->shape[1] * g->G), (long long)w->shape[1]);
        return false;
    }
    if (b && (b->ndim != 1 || b->shape[0] != g->O)) {
        wk_set_error("%s: bias shape %s does not match out_channels %lld (expected [%lld])", op,
                     wki_shape_s(b), (long long)g->O, (long long)g->O);
        return false;
    }
    int64_t eh = g->dh * (g->KH - 1) + 1, ew = g->dw * (g->KW - 1) + 1;
    int64_t hp = g->H + 2 * g->ph, wp = g->W + 2 * g->pw;
    if (eh > hp || ew > wp) {
        wk_set_error("%s: kernel %lldx%lld (dilated %lldx%lld) is larger than the padded input "
                     "%lldx%lld (input shape %s, padding (%lld, %lld))",
                     op, (long long)g->KH, (long long)g->KW, (long long)eh, (long long)ew,
                     (long long)hp, (long long)wp, wki_shape_s(x), (long long)g->ph,
                     (long long)g->pw);
        return false;
    }
    g->OH = (hp - eh) / g->sh + 1;
    g->OW = (wp - ew) / g->sw + 1;
    return true;
}

static void geom_from_node(const wki_node *nd, const wk_tensor *x, const wk_tensor *w,
                           conv_geom *g)
{
    wk_conv2d_opts o = {
        .stride = {nd->i[0], nd->i[1]}, .padding = {nd->i[2], nd->i[3]},
        .dilation = {nd->i[4], nd->i[5]}, .groups = nd->i[6], .algo = (wk_conv_algo)nd->i[7],
    };
    conv_setup("conv2d", x, w, NULL, &o, g);
}

static int conv2d_backward(wki_node *nd, wk_tensor *gy, wk_tensor **grads)
{
    wk_tensor *x = nd->saved[0], *w = nd->saved[1];
    conv_geom g;
    geom_from_node(nd, x, w, &g);
    const conv_kernel *k = &conv_kernels[x->device.type];
    wk_tensor *dyc = wk_contiguous(gy);
    if (!dyc) return -1;
    wk_tensor *dx = NULL, *dw = NULL, *db = NULL;
    if (wki_node_input_needs_grad(nd, 0)) dx = wki_empty_on(x->shape, x->ndim, g.dtype, x->device);
    if (wki_node_input_needs_grad(nd, 1)) dw = wki_empty_on(w->shape, w->ndim, g.dtype, w->device);
    if (wki_node_input_needs_grad(nd, 2))
        db = wki_empty_on((int64_t[]){g.O}, 1, g.dtype, w->device);
    int rc = -1;
    if ((dx || !wki_node_input_needs_grad(nd, 0)) && (dw || !wki_node_input_needs_grad(nd, 1)) &&
        (db || !wki_node_input_needs_grad(nd, 2)))
        rc = k->backward(&g, wk_data(x), wk_data(w), wk_data(dyc), dx ? wk_data(dx) : NULL,
                         dw ? wk_data(dw) : NULL, db ? wk_data(db) : NULL);
    wk_tensor_free(dyc);
    if (rc) {
        wk_tensor_free(dx);
        wk_tensor_free(dw);
        wk_tensor_free(db);
        return -1;
    }
    grads[0] = dx;
    grads[1] = dw;
    grads[2] = db;
    return 0;
}

wk_tensor *wk_conv(wk_conv_op op, wk_tensor *x, wk_tensor *weight, wk_tensor *bias,
                   const wk_conv2d_opts *opts)
{
    if ((unsigned)op >= WK_CONV_COUNT) {
        wk_set_error("conv: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = conv_info[op].name;
    if (!(bias ? WKI_CHECK(name, x, weight, bias) : WKI_CHECK(name, x, weight))) return NULL;
    if (!wki_same_device(name, x, weight) || (bias && !wki_same_device(name, x, bias)))
        return NULL;
    if (!check_dtype(name, x, "input") || !check_dtype(name, weight, "weight") ||
        (bias && !check_dtype(name, bias, "bias")))
        return NULL;
    if (weight->dtype != x->dtype || (bias && bias->dtype != x->dtype)) {
        wk_set_error("%s: dtypes differ: input %s, weight %s%s%s", name, wk_dtype_name(x->dtype),
                     wk_dtype_name(weight->dtype), bias ? ", bias " : "",
                     bias ? wk_dtype_name(bias->dtype) : "");
        return NULL;
    }
    const conv_kernel *k = &conv_kernels[x->device.type];
    if (!k->forward) {
        char dev[32];
        wk_set_error("%s: no kernel for device %s", name,
                     wk_device_str(x->device, dev, sizeof dev));
        return NULL;
    }
    wk_conv2d_opts o;
    conv_geom g;
    if (!resolve_opts(name, opts, &o) || !conv_setup(name, x, weight, bias, &o, &g))
        return NULL;
    int64_t shape[4] = {g.N, g.O, g.OH, g.OW};
    int lead = x->ndim == 4 ? 0 : 1;
    wk_tensor *out = wki_empty_on(shape + lead, 4 - lead, x->dtype, x->device);
    wk_tensor *xc = wk_contiguous(x), *wc = wk_contiguous(weight);
    wk_tensor *bc = bias ? wk_contiguous(bias) : NULL;
    bool ok = out && xc && wc && (!bias || bc) &&
              k->forward(&g, wk_data(xc), wk_data(wc), bc ? wk_data(bc) : NULL, wk_data(out)) == 0;
    if (ok && wki_grad_needed(3, (const wk_tensor *[]){x, weight, bias})) {
        wki_node *nd = wki_node_new(out, name, conv2d_backward, 3,
                                    (wk_tensor *[]){x, weight, bias});
        if (!nd) {
            ok = false;
        } else {
            wki_node_save(nd, 0, xc);
            wki_node_save(nd, 1, wc);
            int64_t par[8] = {o.stride[0], o.stride[1],     o.padding[0], o.padding[1],
                              o.dilation[0], o.dilation[1], o.groups,     o.algo};
            memcpy(nd->i, par, sizeof par);
        }
    }
    wk_tensor_free(xc);
    wk_tensor_free(wc);
    wk_tensor_free(bc);
    if (!ok) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

wk_tensor *wk_conv2d(wk_tensor *x, wk_tensor *weight, wk_tensor *bias,
                     const wk_conv2d_opts *opts)
{
    return wk_conv(WK_CONV_CONV2D, x, weight, bias, opts);
}

/* ---- Conv2d module ---- */

typedef struct {
    wk_conv2d_opts opts;
} conv2d_cfg;

static wk_tensor *conv2d_module_forward(wk_module *m, wk_tensor *x)
{
    const conv2d_cfg *c = m->config;
    return wk_conv2d(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"), &c->opts);
}

wk_module *wk_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kh, int64_t kw,
                         const wk_conv2d_opts *opts, bool bias, wk_generator *g)
{
    const char *op = "Conv2d";
    wk_conv2d_opts o;
    if (!resolve_opts(op, opts, &o)) return NULL;
    if (in_channels < 1 || out_channels < 1 || kh < 1 || kw < 1) {
        wk_set_error("%s: in_channels, out_channels and kernel sizes must be >= 1, got %lld, "
                     "%lld, %lldx%lld",
                     op, (long long)in_channels, (long long)out_channels, (long long)kh,
                     (long long)kw);
        return NULL;
    }
    if (in_channels % o.groups || out_channels % o.groups) {
        wk_set_error("%s: groups %lld must divide in_channels %lld and out_channels %lld", op,
                     (long long)o.groups, (long long)in_channels, (long long)out_channels);
        return NULL;
    }
    wk_module *m = wk_module_new(op, conv2d_module_forward, sizeof(conv2d_cfg));
    if (!m) return NULL;
    ((conv2d_cfg *)m->config)->opts = o;
    wk_tensor *w = wk_empty(WK_SHAPE(out_channels, in_channels / o.groups, kh, kw), WK_DTYPE_F32);
    wk_tensor *b = bias ? wk_empty(WK_SHAPE(out_channels), WK_DTYPE_F32) : NULL;
    if (!w || (bias && !b) || wk_init_torch_default_(w, b, g)) {
        wk_tensor_free(w);
        wk_tensor_free(b);
        wk_module_free(m);
        return NULL;
    }
    /* add_parameter takes ownership, also of what it rejects */
    if (!wk_module_add_parameter(m, "weight", w)) {
        wk_tensor_free(b);
        wk_module_free(m);
        return NULL;
    }
    if (bias && !wk_module_add_parameter(m, "bias", b)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

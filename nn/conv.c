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
 *   transposed and flipped and padding (k-1)*d - p, image by image in the backward loop
 *   while dy is in cache. dW keeps one vector of output channels per weight and walks
 *   the valid positions (dy transposed to position-major first), so it needs no lane
 *   sums and computes no dropped columns. The direct path wins where C*kh*kw is small
 *   and a GEMM's K dimension would be too short (the benchmark CNN's layers).
 * Weight and bias gradients are summed per fixed block of images and then over the blocks
 * in order, so every result is independent of the thread count.
 */
#include <cblas.h>
#include <limits.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/tensor-impl.h"
#include "../tensor/profiler-impl.h"
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

/* dst[0..n) = src[0..n) for short runs (rows of a plane), inline: a memcpy call costs
 * more than such a copy, and gcc turns element loops back into one. */
static inline void copy_elems(size_t es, char *restrict dst, const char *restrict src, int64_t n)
{
    size_t bytes = (size_t)n * es, i = 0;
    for (; i + 16 <= bytes; i += 16) memcpy(dst + i, src + i, 16);
    for (; i < bytes; i += 4) memcpy(dst + i, src + i, 4);
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
 * (i*dh*wp + j*dw). */
#define DIRECT_MAX_TAPS 256
#define DIRECT_MAX_K 640            /* ci*kh*kw up to which AUTO takes the direct path */
#define DIRECT_MAX_PLANES (1 << 20) /* padded input elements per image and group */
#define DW_R 12                     /* (channel, tap) pairs per weight-gradient block */

typedef struct {
    int64_t ci, co, ntaps, ps, wp, qr;
    int64_t toff[DIRECT_MAX_TAPS];
} dplan;

/* The weight-gradient kernel's view: positions (oh, ow) < (OH, OW) of one image, dyT
 * (OH*OW, ogr) (output channels innermost, zero past co), the padded planes xp as above
 * and offs[k] = c*ps + toff[t] for the K = ci*ntaps weights of an output channel (kr =
 * K rounded up to DW_R, dummies 0). */
typedef struct {
    int64_t K, kr, co, ogr, OH, OW, wp;
    const int64_t *offs;
} dwplan;

/* fwd: ext (OB, qr) = packed weights (ci, ntaps, OB) applied to xp (+ bias (OB) or 0).
 * dw: dwt (K, ogr) += sum over positions of dyT[pos] * xp[pos + offs[k]] (a vector over
 * the output channels per weight: no lane sums, no wasted positions); with bias (co
 * values, not NULL), also bias += sum over positions of dyT[pos] (in position order). */
typedef void (*dfwd_fn)(const dplan *p, const void *xp, const void *wp, const void *bias,
                        void *ext);
typedef void (*ddw_fn)(const dwplan *p, const void *xp, const void *dyt, void *dwt,
                       void *bias);

typedef struct {
    dfwd_fn fwd;
    ddw_fn dw, dw_half; /* vectors of `lanes` and lanes/2 output channels */
    int ob, qb;         /* fwd: output channels per block, positions per block */
    int lanes;          /* elements per vector */
} dvariant;

/* The micro-kernels, instantiated per element type and vector width (VB bytes) with the
 * register blocking that fits the target's register file. */
#define DEF_DFWD(S, T, VB, OB, QV, ATTR)                                                 \
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
    }
#define DEF_DDW(S, T, VB, ATTR)                                                          \
    ATTR static void ddw_##S(const dwplan *p, const void *xp_, const void *dyt_, void *dwt_, \
                             void *bias_)                                                \
    {                                                                                    \
        typedef T V __attribute__((vector_size(VB)));                                    \
        enum { VL = VB / sizeof(T) };                                                    \
        const T *xp = xp_, *dyt = dyt_;                                                  \
        T *dwt = dwt_, *bias = bias_;                                                    \
        for (int64_t o0 = 0; o0 < p->ogr; o0 += VL) {                                    \
            if (bias) {                                                                  \
                V b = (V){0};                                                            \
                for (int64_t q = 0; q < p->OH * p->OW; q++) {                            \
                    V dv;                                                                \
                    memcpy(&dv, dyt + q * p->ogr + o0, sizeof(V));                       \
                    b += dv;                                                             \
                }                                                                        \
                for (int l = 0; l < VL && o0 + l < p->co; l++) bias[o0 + l] += b[l];     \
            }                                                                            \
            for (int64_t k0 = 0; k0 < p->kr; k0 += DW_R) {                               \
                V acc[DW_R];                                                             \
                int64_t off[DW_R];                                                       \
                for (int r = 0; r < DW_R; r++) {                                         \
                    acc[r] = (V){0};                                                     \
                    off[r] = p->offs[k0 + r];                                            \
                }                                                                        \
                for (int64_t oh = 0; oh < p->OH; oh++) {                                 \
                    const T *xr = xp + oh * p->wp, *dr = dyt + oh * p->OW * p->ogr + o0; \
                    for (int64_t ow = 0; ow < p->OW; ow++) {                             \
                        V dv;                                                            \
                        memcpy(&dv, dr + ow * p->ogr, sizeof(V));                        \
                        for (int r = 0; r < DW_R; r++) acc[r] += dv * xr[ow + off[r]];   \
                    }                                                                    \
                }                                                                        \
                for (int r = 0; r < DW_R && k0 + r < p->K; r++) {                        \
                    V d;                                                                 \
                    memcpy(&d, dwt + (k0 + r) * p->ogr + o0, sizeof(V));                 \
                    d += acc[r];                                                         \
                    memcpy(dwt + (k0 + r) * p->ogr + o0, &d, sizeof(V));                 \
                }                                                                        \
            }                                                                            \
        }                                                                                \
    }

DEF_DFWD(f32_generic, float, 16, 4, 3, )
DEF_DFWD(f64_generic, double, 16, 4, 3, )
DEF_DDW(f32_generic, float, 16, )
DEF_DDW(f64_generic, double, 16, )
static const dvariant dv_generic[2] = {
    {dfwd_f32_generic, ddw_f32_generic, NULL, 4, 12, 4},
    {dfwd_f64_generic, ddw_f64_generic, NULL, 4, 6, 2},
};

#if defined(__GNUC__) && defined(__x86_64__)
#define WKI_X86 1
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f,fma")))
DEF_DFWD(f32_avx2, float, 32, 4, 3, AVX2)
DEF_DFWD(f64_avx2, double, 32, 4, 3, AVX2)
DEF_DDW(f32_avx2, float, 32, AVX2)
DEF_DDW(f64_avx2, double, 32, AVX2)
DEF_DDW(f32_avx2_half, float, 16, AVX2)
DEF_DDW(f64_avx2_half, double, 16, AVX2)
DEF_DFWD(f32_avx512, float, 64, 8, 2, AVX512)
DEF_DFWD(f64_avx512, double, 64, 8, 2, AVX512)
DEF_DDW(f32_avx512, float, 64, AVX512)
DEF_DDW(f64_avx512, double, 64, AVX512)
DEF_DDW(f32_avx512_half, float, 32, AVX512)
DEF_DDW(f64_avx512_half, double, 32, AVX512)
static const dvariant dv_avx2[2] = {
    {dfwd_f32_avx2, ddw_f32_avx2, ddw_f32_avx2_half, 4, 24, 8},
    {dfwd_f64_avx2, ddw_f64_avx2, ddw_f64_avx2_half, 4, 12, 4},
};
static const dvariant dv_avx512[2] = {
    {dfwd_f32_avx512, ddw_f32_avx512, ddw_f32_avx512_half, 8, 32, 16},
    {dfwd_f64_avx512, ddw_f64_avx512, ddw_f64_avx512_half, 8, 16, 8},
};
#endif

/* The widest variant this CPU runs, or the one WK_CONV_ISA (generic, avx2, avx512) asks
 * for when the CPU has it: the tests run every variant that way. */
static const dvariant *dvariant_for(wk_dtype dt)
{
    int k = dt == WK_DTYPE_F32 ? 0 : 1;
    const char *isa = getenv("WK_CONV_ISA");
    if (!isa) isa = "";
#ifdef WKI_X86
    bool any = !*isa || !strcmp(isa, "avx512");
    if (any && __builtin_cpu_supports("avx512f")) return &dv_avx512[k];
    if ((any || !strcmp(isa, "avx2")) && __builtin_cpu_supports("avx2") &&
        __builtin_cpu_supports("fma"))
        return &dv_avx2[k];
#endif
    return &dv_generic[k];
}

/* The weight-gradient kernel for co output channels and its lane count: half-width
 * vectors when they waste fewer lanes. */
static ddw_fn dw_kernel_for(const dvariant *v, int64_t co, int *lanes)
{
    int h = v->lanes / 2;
    if (v->dw_half && round_up(co, h) < round_up(co, v->lanes)) {
        *lanes = h;
        return v->dw_half;
    }
    *lanes = v->lanes;
    return v->dw;
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

/* Output channels [b*OB, b*OB + OB) of one image and group from its padded planes xp:
 * the kernel into ext, then the valid columns into y_ng (the group's co planes). */
static void direct_block(const dconv *d, const dplan *p, const dvariant *v, const char *xp,
                         const void *wpk, const void *bias, int64_t g, int64_t b, char *y_ng,
                         char *ext, char *bb)
{
    size_t es = wk_dtype_size(d->dtype);
    int64_t nob = ceil_div(d->co, v->ob), plane = d->OH * d->OW;
    int64_t o0 = b * v->ob, cnt = d->co - o0 < v->ob ? d->co - o0 : v->ob;
    const void *bp = NULL;
    if (bias) {
        memset(bb, 0, (size_t)v->ob * es);
        memcpy(bb, (const char *)bias + (size_t)(g * d->co + o0) * es, (size_t)cnt * es);
        bp = bb;
    }
    v->fwd(p, xp, (const char *)wpk + (size_t)((g * nob + b) * d->ci * p->ntaps * v->ob) * es,
           bp, ext);
    char *yo = y_ng + (size_t)(o0 * plane) * es;
    for (int64_t a = 0; a < cnt; a++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            copy_elems(es, yo + (size_t)(a * plane + oh * d->OW) * es,
                       ext + (size_t)(a * p->qr + oh * p->wp) * es, d->OW);
}

/* Per-thread scratch of the direct path: padded planes, extended output, bias block. */
static size_t direct_scratch(const dconv *d, const dplan *p, const dvariant *v)
{
    size_t es = wk_dtype_size(d->dtype);
    return (size_t)round_up((int64_t)((size_t)(p->ci * p->ps + v->ob * p->qr + v->ob) * es), 64);
}

/* y (N, G*co, OH, OW) = direct convolution of x with packed weights (+ bias), in tasks
 * of one image, group and block of output channels. */
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
    size_t per = direct_scratch(d, &p, v);
    scratch s;
    if (!scratch_get(&s, per * (size_t)nt)) return -1;
    int64_t plane = d->OH * d->OW, in_plane = d->H * d->W;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *xp = (char *)s.p + per * (size_t)omp_get_thread_num();
        char *ext = xp + (size_t)(p.ci * p.ps) * es, *bb = ext + (size_t)(v->ob * p.qr) * es;
        int64_t built = -1; /* the image*group whose planes are in xp */
#pragma omp for schedule(static)
        for (int64_t task = 0; task < ntasks; task++) {
            int64_t ng = task / nob, b = task % nob, g = ng % d->G;
            if (ng != built) {
                pad_planes(d, &p, es, (const char *)x + (size_t)(ng * d->ci * in_plane) * es, xp);
                built = ng;
            }
            direct_block(d, &p, v, xp, wpk, bias, g, b,
                         (char *)y + (size_t)(ng * d->co * plane) * es, ext, bb);
        }
    }
    scratch_put(&s);
    return 0;
}

/* ---- algorithm choice ---- */

/* Can (and, for AUTO, should) the direct kernel run a stride-1 convolution of ci input
 * planes into co output planes? AUTO wants a short reduction (ci*kh*kw, where a GEMM is
 * inefficient; measured: direct wins up to 64 channels of 3x3) and co filling the
 * kernel's blocks of output channels to at least 3/4. */
static bool direct_fits(const conv_geom *g, int64_t ci, int64_t co, int64_t pad_h,
                        int64_t pad_w)
{
    int64_t taps = g->KH * g->KW;
    if (g->sh != 1 || g->sw != 1 || taps > DIRECT_MAX_TAPS) return false;
    int64_t wp = g->W + 2 * pad_w, hp = g->H + 2 * pad_h;
    if (ci * (hp + 2) * wp > DIRECT_MAX_PLANES) return false;
    if (g->algo == WK_CONV_ALGO_DIRECT) return true;
    int64_t ob = dvariant_for(g->dtype)->ob;
    return g->algo == WK_CONV_ALGO_AUTO && ci * taps <= DIRECT_MAX_K &&
           round_up(co, ob) * 3 <= co * 4;
}

static bool direct_for_forward(const conv_geom *g)
{
    return direct_fits(g, g->Cg, g->Og, g->ph, g->pw);
}

/* dx as a convolution of dy needs padding (k-1)*d - p >= 0. */
static bool direct_for_dx(const conv_geom *g)
{
    int64_t qh = (g->KH - 1) * g->dh - g->ph, qw = (g->KW - 1) * g->dw - g->pw;
    if (qh < 0 || qw < 0) return false;
    conv_geom t = *g;
    t.H = g->OH;
    t.W = g->OW;
    return direct_fits(&t, g->Og, g->Cg, qh, qw);
}

/* The weight-gradient kernel holds a vector of output channels (it has no blocks of
 * them): with few channels most lanes would be wasted, and AUTO leaves those to the GEMM. */
static bool direct_for_dw(const conv_geom *g)
{
    conv_geom t = *g;
    t.algo = g->algo == WK_CONV_ALGO_AUTO ? WK_CONV_ALGO_DIRECT : g->algo;
    if (!direct_fits(&t, g->Cg, g->Og, g->ph, g->pw)) return false;
    int64_t taps = g->KH * g->KW;
    return g->algo == WK_CONV_ALGO_DIRECT ||
           (g->Cg * taps <= DIRECT_MAX_K && g->Og >= dvariant_for(g->dtype)->lanes / 2);
}

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
                const char *xg =
                    (const char *)x + (size_t)((n * g->C + gr * g->Cg) * g->H * g->W) * es;
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

typedef struct {
    const conv_geom *g;
    const dvariant *v;
    /* direct input gradient, image by image (fused with the weight gradient) */
    bool direct_dx;
    dconv dxd;
    dplan dxp;
    const void *dxw;   /* packed flipped weights */
    size_t dx_off;     /* its scratch, after the rest of a thread's buffer */
    bool direct_dw;
    /* direct weight gradient */
    dconv d;
    dplan p;           /* padding of the input planes */
    dwplan dp;         /* the kernel's view */
    ddw_fn dw;
    int64_t partw;     /* elements of a block's weight partial: G * K * ogr (transposed) */
    /* im2col */
    int64_t rows;      /* chunk rows */
} bwd_ctx;

/* dyT (P, ogr) = dy (co, P) transposed, zeros past co, in blocks of 4x4 (float) or 2x2
 * (double) vector shuffles. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define WKI_SHUFFLE 1
#endif
#endif
#define DEF_TRANSPOSE(T, S, B)                                                           \
    static void transpose_dy_##S(const T *dy, T *dyt, int64_t co, int64_t ogr, int64_t P) \
    {                                                                                    \
        int64_t o0 = 0;                                                                  \
        if (WKI_SHUFFLE_OK)                                                              \
            for (; o0 + B <= co; o0 += B) {                                              \
                int64_t p0 = 0;                                                          \
                for (; p0 + B <= P; p0 += B) TRANSPOSE_BLOCK_##S(dy, dyt, o0, p0, ogr, P); \
                for (; p0 < P; p0++)                                                     \
                    for (int64_t o = o0; o < o0 + B; o++) dyt[p0 * ogr + o] = dy[o * P + p0]; \
            }                                                                            \
        for (int64_t o = o0; o < co; o++)                                                \
            for (int64_t p = 0; p < P; p++) dyt[p * ogr + o] = dy[o * P + p];            \
        for (int64_t p = 0; p < P; p++)                                                  \
            for (int64_t o = co; o < ogr; o++) dyt[p * ogr + o] = 0;                     \
    }
#ifdef WKI_SHUFFLE
#define WKI_SHUFFLE_OK 1
typedef float wki_v4f __attribute__((vector_size(16)));
typedef double wki_v2d __attribute__((vector_size(16)));
#define TRANSPOSE_BLOCK_f32(dy, dyt, o0, p0, ogr, P)                                     \
    do {                                                                                 \
        wki_v4f r[4], t[4], c[4];                                                        \
        for (int k = 0; k < 4; k++) memcpy(&r[k], dy + (o0 + k) * P + p0, 16);           \
        t[0] = __builtin_shufflevector(r[0], r[1], 0, 4, 1, 5);                          \
        t[1] = __builtin_shufflevector(r[0], r[1], 2, 6, 3, 7);                          \
        t[2] = __builtin_shufflevector(r[2], r[3], 0, 4, 1, 5);                          \
        t[3] = __builtin_shufflevector(r[2], r[3], 2, 6, 3, 7);                          \
        c[0] = __builtin_shufflevector(t[0], t[2], 0, 1, 4, 5);                          \
        c[1] = __builtin_shufflevector(t[0], t[2], 2, 3, 6, 7);                          \
        c[2] = __builtin_shufflevector(t[1], t[3], 0, 1, 4, 5);                          \
        c[3] = __builtin_shufflevector(t[1], t[3], 2, 3, 6, 7);                          \
        for (int k = 0; k < 4; k++) memcpy(dyt + (p0 + k) * ogr + o0, &c[k], 16);        \
    } while (0)
#define TRANSPOSE_BLOCK_f64(dy, dyt, o0, p0, ogr, P)                                     \
    do {                                                                                 \
        wki_v2d r0, r1, c0, c1;                                                          \
        memcpy(&r0, dy + o0 * P + p0, 16);                                               \
        memcpy(&r1, dy + (o0 + 1) * P + p0, 16);                                         \
        c0 = __builtin_shufflevector(r0, r1, 0, 2);                                      \
        c1 = __builtin_shufflevector(r0, r1, 1, 3);                                      \
        memcpy(dyt + p0 * ogr + o0, &c0, 16);                                            \
        memcpy(dyt + (p0 + 1) * ogr + o0, &c1, 16);                                      \
    } while (0)
#else
#define WKI_SHUFFLE_OK 0
#define TRANSPOSE_BLOCK_f32(dy, dyt, o0, p0, ogr, P) ((void)0)
#define TRANSPOSE_BLOCK_f64(dy, dyt, o0, p0, ogr, P) ((void)0)
#endif
DEF_TRANSPOSE(float, f32, 4)
DEF_TRANSPOSE(double, f64, 2)

static void transpose_dy(size_t es, const char *dy, char *dyt, int64_t co, int64_t ogr,
                         int64_t P)
{
    if (es == 4) transpose_dy_f32((const float *)dy, (float *)dyt, co, ogr, P);
    else transpose_dy_f64((const double *)dy, (double *)dyt, co, ogr, P);
}

/* Images [n0, n1) of one block: bias and weight partials (dbp (O); dwp (O, K), or on the
 * direct path (G, K, ogr)) and, on the im2col path, their input gradients. */
static void bwd_images(const bwd_ctx *c, const char *x, const char *w, const char *dy,
                       char *dx, char *dwp, char *dbp, char *buf, int64_t n0, int64_t n1)
{
    const conv_geom *g = c->g;
    wk_dtype dt = g->dtype;
    size_t es = wk_dtype_size(dt);
    int64_t P = g->OH * g->OW, K = g->Cg * g->KH * g->KW, HW = g->H * g->W;
    bool pw1 = is_pointwise(g), gemm_dw = dwp && !c->direct_dw;
    for (int64_t n = n0; n < n1; n++) {
        const char *xn = x + (size_t)(n * g->C * HW) * es, *dyn = dy + (size_t)(n * g->O * P) * es;
        char *dxn = dx ? dx + (size_t)(n * g->C * HW) * es : NULL;
        if (dxn && c->direct_dx) {
            char *xp = buf + c->dx_off, *ext = xp + (size_t)(c->dxp.ci * c->dxp.ps) * es;
            char *bb = ext + (size_t)(c->v->ob * c->dxp.qr) * es;
            for (int64_t gr = 0; gr < g->G; gr++) {
                pad_planes(&c->dxd, &c->dxp, es, dyn + (size_t)(gr * g->Og * P) * es, xp);
                for (int64_t b = 0; b < ceil_div(g->Cg, c->v->ob); b++)
                    direct_block(&c->dxd, &c->dxp, c->v, xp, c->dxw, NULL, gr, b,
                                 dxn + (size_t)(gr * g->Cg * HW) * es, ext, bb);
            }
            dxn = NULL;
        }
        if (dxn) memset(dxn, 0, (size_t)(g->C * HW) * es);
        if (dwp && c->direct_dw) {
            for (int64_t gr = 0; gr < g->G; gr++) {
                char *xp = buf, *dyt = buf + (size_t)(c->p.ci * c->p.ps) * es;
                pad_planes(&c->d, &c->p, es, xn + (size_t)(gr * g->Cg * HW) * es, xp);
                transpose_dy(es, dyn + (size_t)(gr * g->Og * P) * es, dyt, g->Og, c->dp.ogr, P);
                c->dw(&c->dp, xp, dyt, dwp + (size_t)(gr * K * c->dp.ogr) * es,
                      dbp ? dbp + (size_t)(gr * g->Og) * es : NULL);
            }
        } else if (dbp) {
            add_row_sums(dt, dbp, dyn, g->O, P);
        }
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

/* dw (G*Og, K) = the sum over blocks of the transposed partials (G, K, ogr). */
static void sum_parts_transposed(const conv_geom *g, void *dw, const char *part,
                                 int64_t nblocks, int64_t stride, int64_t ogr)
{
    int64_t K = g->Cg * g->KH * g->KW, rows = g->G * g->Og;
    int nt = wki_threads_for(nblocks * rows * K, 1 << 16);
#pragma omp parallel for num_threads(nt) if (nt > 1) schedule(static)
    for (int64_t r = 0; r < rows; r++) {
        int64_t gr = r / g->Og, o = r % g->Og;
        for (int64_t k = 0; k < K; k++) {
            int64_t e = (gr * K + k) * ogr + o;
            if (g->dtype == WK_DTYPE_F32) {
                const float *p = (const float *)part;
                float s = p[e];
                for (int64_t b = 1; b < nblocks; b++) s += p[b * stride + e];
                ((float *)dw)[r * K + k] = s;
            } else {
                const double *p = (const double *)part;
                double s = p[e];
                for (int64_t b = 1; b < nblocks; b++) s += p[b * stride + e];
                ((double *)dw)[r * K + k] = s;
            }
        }
    }
}

static int cpu_conv_backward(const conv_geom *g, const void *x, const void *w, const void *dy,
                             void *dx, void *dw, void *db)
{
    size_t es = wk_dtype_size(g->dtype);
    int64_t K = g->Cg * g->KH * g->KW, P = g->OH * g->OW, wn = g->O * K;
    /* the direct input gradient runs image by image inside the block loop below, where
     * dy is still in cache for the weight gradient; with few images, on its own */
    bool ddx = dx && direct_for_dx(g) && g->N * g->C * g->H * g->W > 0;
    if (ddx && g->N < 4 * wk_get_num_threads()) {
        dconv d = dconv_dx(g);
        if (direct_run(&d, true, dy, w, NULL, dx)) return -1;
        dx = NULL;
        ddx = false;
    }
    if (!dx && !dw && !db) return 0;
    if (g->N == 0) { /* no images: zero gradients */
        if (dw) memset(dw, 0, (size_t)wn * es);
        if (db) memset(db, 0, (size_t)g->O * es);
        return 0;
    }
    bwd_ctx c = {.g = g, .v = dvariant_for(g->dtype), .rows = chunk_rows(g), .partw = wn};
    c.direct_dw = dw && direct_for_dw(g);
    size_t per = 0;
    scratch so = {0}, sw = {0};
    if (c.direct_dw) {
        const dvariant *v = c.v;
        int lanes;
        c.dw = dw_kernel_for(v, g->Og, &lanes);
        c.d = dconv_forward(g);
        dplan_init(&c.p, &c.d, v);
        int64_t kr = round_up(K, DW_R);
        int64_t *offs = scratch_get(&so, (size_t)kr * sizeof *offs);
        if (!offs) return -1;
        for (int64_t k = 0; k < kr; k++)
            offs[k] = k < K ? k / c.p.ntaps * c.p.ps + c.p.toff[k % c.p.ntaps] : 0;
        c.dp = (dwplan){K, kr, g->Og, round_up(g->Og, lanes), g->OH, g->OW, c.p.wp, offs};
        c.partw = g->G * K * c.dp.ogr;
        per = (size_t)(c.p.ci * c.p.ps + P * c.dp.ogr) * es;
    }
    size_t col = (size_t)(K * c.rows * g->OW) * es;
    if (((dx && !ddx) || (dw && !c.direct_dw)) && !is_pointwise(g) && col > per) per = col;
    per = (size_t)round_up((int64_t)per, 64);
    if (ddx) {
        c.direct_dx = true;
        c.dxd = dconv_dx(g);
        dplan_init(&c.dxp, &c.dxd, c.v);
        int64_t n = g->G * round_up(g->Cg, c.v->ob) * g->Og * g->KH * g->KW;
        if (!scratch_get(&sw, (size_t)n * es)) {
            scratch_put(&so);
            return -1;
        }
        pack_weights(&c.dxd, c.v->ob, true, w, sw.p);
        c.dxw = sw.p;
        c.dx_off = per;
        per += direct_scratch(&c.dxd, &c.dxp, c.v);
    }
    /* blocks of images for the weight/bias sums; the input gradient rides along */
    int64_t stride = c.partw + g->O;
    int64_t bs = wblock_size(g->N, stride), nblocks = ceil_div(g->N, bs);
    bool sums = dw || db;
    int64_t work = g->N * g->O * (P > 0 ? P : 1) * (K > 0 ? K : 1) * ((dx != NULL) + (dw != NULL));
    int nt = wki_threads_for(work, CONV_GRAIN);
    if (nt > nblocks) nt = (int)nblocks;
    size_t part = sums ? (size_t)(stride * nblocks) * es : 0;
    scratch s = {0}, sp = {0};
    if (!scratch_get(&s, per * (size_t)nt) || !scratch_get(&sp, part)) {
        scratch_put(&s);
        scratch_put(&so);
        scratch_put(&sw);
        return -1;
    }
    if (part) memset(sp.p, 0, part);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        char *buf = (char *)s.p + per * (size_t)omp_get_thread_num();
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nblocks; b++) {
            char *dwp = sums ? (char *)sp.p + (size_t)(b * stride) * es : NULL;
            bwd_images(&c, x, w, dy, dx, dw ? dwp : NULL, db ? dwp + (size_t)c.partw * es : NULL,
                       buf, b * bs, (b + 1) * bs < g->N ? (b + 1) * bs : g->N);
        }
    }
    scratch_put(&s);
    if (dw && c.direct_dw) sum_parts_transposed(g, dw, sp.p, nblocks, stride, c.dp.ogr);
    else if (dw) sum_parts(g->dtype, dw, sp.p, nblocks, stride, wn);
    if (db)
        sum_parts(g->dtype, db, (const char *)sp.p + (size_t)c.partw * es, nblocks, stride, g->O);
    scratch_put(&sp);
    scratch_put(&so);
    scratch_put(&sw);
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
    if (g->Cg * g->KH * g->KW > INT_MAX || g->OH * g->OW > INT_MAX || g->O > INT_MAX) {
        wk_set_error("%s: input shape %s with weight shape %s exceeds the BLAS size limit %d",
                     op, wki_shape_s(x), wki_shape_s(w), INT_MAX);
        return false;
    }
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
    WKI_PROF_OP(name, x, weight, bias);
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
    WKI_PROF_FLOPS(2.0 * (double)(g.N * g.O * g.OH * g.OW) * (double)(g.Cg * g.KH * g.KW));
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

/* CPU kernels of the reduction family and softmax.
 *
 * Layout: the kept dims are walked with the element-wise iterator (one output element,
 * or one softmax row, at a time); the reduced dims are coalesced. Three strategies:
 *  - row: the innermost reduced dim is contiguous and long, or the only one: each
 *    output reduces its "row" (runs of that dim, under the other reduced dims) in
 *    blocks of at most BLOCK elements with 8 lanes (vectorised when contiguous). Covers
 *    the last dim, all dims, and (N, H, W) of an NCHW tensor without a copy;
 *  - column: the innermost kept dim is contiguous and long: up to MAX_TILE outputs
 *    are reduced together, one vectorised pass over the tile per reduced index, so the
 *    input streams row by row (sum over dim 0 of a row-major matrix, softmax over
 *    channels);
 *  - otherwise the input is first copied with the reduced dims innermost, then "row".
 * Determinism: a result depends only on the values and the layout (fixed blocks, fixed
 * lanes, blocks combined in order), never on the thread count: threads split the
 * outputs, or (few outputs, long rows) the blocks of a row, whose partials are then
 * combined serially in block order. Float sums accumulate in double. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../iter-impl.h"
#include "reduce-impl.h"

#define LANES 8
#define BLOCK 4096  /* elements per block of a row (a multiple of LANES) */
#define MAX_TILE 16384 /* outputs reduced together by the column kernels */
#define GRAIN 32768 /* elements of work per thread below which loops stay serial */

/* What a block (row) or a lane (column) accumulates. */
enum kind {
    K_SUM, K_ABS, K_SQR, K_POW, K_NZ, K_EXP, /* sums of g(x) in a */
    K_DEV,                                   /* sum of (x-p)^2 in a, of (x-p) in b */
    K_MAX, K_MIN, K_AMAX, K_AMIN,            /* NaN-propagating extrema of x or |x| in a */
    K_ISUM, K_IMAX, K_IMIN,                  /* integers in i (sum wraps like int64) */
    K_COUNT,
    K_NONE = K_COUNT
};

typedef struct {
    double a, b;
    int64_t i;
} acc;

typedef struct {
    wk_reduce_op op;
    wk_dtype dt;   /* input dtype */
    size_t esize;  /* input element size */
    double arg;    /* correction or p */
    int nr;        /* reduced dims after coalescing (outer first) */
    int64_t rshape[WK_MAX_DIMS], rstride[WK_MAX_DIMS]; /* strides in elements */
    int64_t rcount;      /* reduced elements per output */
    int64_t rst, rlen;   /* stride and size of the innermost reduced dim (the runs) */
    int64_t bpr, nblocks; /* row strategy: blocks per run, per row */
    int64_t rost;        /* softmax: output stride along the dim */
    int64_t tile;        /* column strategy: outputs per tile */
    bool col, row_par;
    int xi;              /* iterator operand of x (0: out, 1: indices if any) */
} plan;

/* ---- rows: one block of at most BLOCK elements ---- */

typedef acc (*block_fn)(const char *x, int64_t n, int64_t st, double p);

#define G_SUM(x, p) ((double)(x))
#define G_ABS(x, p) fabs((double)(x))
#define G_SQR(x, p) ((double)(x) * (double)(x))
#define G_POW(x, p) pow(fabs((double)(x)), (p))
#define G_NZ(x, p) ((x) != 0 ? 1.0 : 0.0)
#define G_EXPF(x, p) ((double)wki_expf((x) - (float)(p)))
#define G_EXPD(x, p) exp((x) - (p))

static inline double join8(const double *l)
{
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* NaN-propagating max/min of two values (a NaN wins). */
static inline double max_nan(double m, double v) { return v > m || v != v ? v : m; }
static inline double min_nan(double m, double v) { return v < m || v != v ? v : m; }

/* Element i goes to lane i % LANES, contiguous or strided alike. */
#define BLOCK_SUM(NAME, T, G)                                                           \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        (void)p; /* only some g use it */                                               \
        const T *x = (const T *)px;                                                     \
        double l[LANES] = {0};                                                          \
        int64_t i = 0;                                                                  \
        if (st == 1) {                                                                  \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) l[k] += G(x[i + k], p);                 \
        } else {                                                                        \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) l[k] += G(x[(i + k) * st], p);          \
        }                                                                               \
        for (int k = 0; i < n; i++, k++) l[k] += G(x[i * st], p);                       \
        return (acc){.a = join8(l)};                                                    \
    }

#define DEV_STEP(v, k)                                                                  \
    do {                                                                                \
        double d_ = (double)(v) - p;                                                    \
        l[k] += d_ * d_;                                                                \
        m[k] += d_;                                                                     \
    } while (0)
#define BLOCK_DEV(NAME, T)                                                              \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        const T *x = (const T *)px;                                                     \
        double l[LANES] = {0}, m[LANES] = {0};                                          \
        int64_t i = 0;                                                                  \
        if (st == 1) {                                                                  \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) DEV_STEP(x[i + k], k);                  \
        } else {                                                                        \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) DEV_STEP(x[(i + k) * st], k);           \
        }                                                                               \
        for (int k = 0; i < n; i++, k++) DEV_STEP(x[i * st], k);                        \
        return (acc){.a = join8(l), .b = join8(m)};                                     \
    }

/* Extrema are exact, so they run in the input type, over XLANES lanes: a lane count
 * gcc does not unroll, so the lane loop vectorises (with `|`, not `||`). */
#define XLANES 64
#define BLOCK_EXT(NAME, T, G, CMP, INIT, IS_MAX)                                        \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        (void)p;                                                                        \
        const T *x = (const T *)px;                                                     \
        T l[XLANES];                                                                    \
        for (int k = 0; k < XLANES; k++) l[k] = INIT;                                   \
        int64_t i = 0;                                                                  \
        if (st == 1) {                                                                  \
            for (; i + XLANES <= n; i += XLANES)                                        \
                for (int k = 0; k < XLANES; k++) {                                      \
                    T v = G(x[i + k]);                                                  \
                    l[k] = (v CMP l[k]) | (v != v) ? v : l[k];                          \
                }                                                                       \
        }                                                                               \
        double r = INIT;                                                                \
        for (int k = 0; k < XLANES; k++) r = IS_MAX ? max_nan(r, l[k]) : min_nan(r, l[k]); \
        for (; i < n; i++) {                                                            \
            double v = G(x[i * st]);                                                    \
            r = IS_MAX ? max_nan(r, v) : min_nan(r, v);                                 \
        }                                                                               \
        return (acc){.a = r};                                                           \
    }

/* Sums of exp(x - p): XLANES exps at a time into a buffer (a loop that vectorises with
 * wki_expf), then added with the lanes of BLOCK_SUM. */
#define BLOCK_EXPSUM(NAME, T, EXP)                                                      \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        const T *x = (const T *)px;                                                     \
        T pt = (T)p, e[XLANES];                                                         \
        double l[LANES] = {0};                                                          \
        int64_t i = 0;                                                                  \
        for (; i + XLANES <= n; i += XLANES) {                                          \
            if (st == 1)                                                                \
                for (int k = 0; k < XLANES; k++) e[k] = EXP(x[i + k] - pt);             \
            else                                                                        \
                for (int k = 0; k < XLANES; k++) e[k] = EXP(x[(i + k) * st] - pt);      \
            for (int k = 0; k < XLANES; k += LANES)                                     \
                for (int q = 0; q < LANES; q++) l[q] += (double)e[k + q];               \
        }                                                                               \
        for (int k = 0; i < n; i++, k = (k + 1) % LANES) l[k] += (double)EXP(x[i * st] - pt); \
        return (acc){.a = join8(l)};                                                    \
    }

#define BLOCK_ISUM(NAME, T)                                                             \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        (void)p;                                                                        \
        const T *x = (const T *)px;                                                     \
        uint64_t s = 0;                                                                 \
        if (st == 1)                                                                    \
            for (int64_t i = 0; i < n; i++) s += (uint64_t)x[i];                        \
        else                                                                            \
            for (int64_t i = 0; i < n; i++) s += (uint64_t)x[i * st];                   \
        return (acc){.i = (int64_t)s};                                                  \
    }

#define BLOCK_IEXT(NAME, T, CMP, INIT)                                                  \
    static acc NAME(const char *px, int64_t n, int64_t st, double p)                    \
    {                                                                                   \
        (void)p;                                                                        \
        const T *x = (const T *)px;                                                     \
        int64_t m = INIT;                                                               \
        for (int64_t i = 0; i < n; i++) {                                               \
            int64_t v = (int64_t)x[i * st];                                             \
            m = v CMP m ? v : m;                                                        \
        }                                                                               \
        return (acc){.i = m};                                                           \
    }

#define G_ID(x) (x)

#define FLOAT_BLOCKS(S, T, EXP, ABS)                                                    \
    BLOCK_SUM(S##_b_sum, T, G_SUM)                                                      \
    BLOCK_SUM(S##_b_abs, T, G_ABS)                                                      \
    BLOCK_SUM(S##_b_sqr, T, G_SQR)                                                      \
    BLOCK_SUM(S##_b_pow, T, G_POW)                                                      \
    BLOCK_SUM(S##_b_nz, T, G_NZ)                                                        \
    BLOCK_EXPSUM(S##_b_exp, T, EXP)                                                     \
    BLOCK_DEV(S##_b_dev, T)                                                             \
    BLOCK_EXT(S##_b_max, T, G_ID, >, -INFINITY, true)                                   \
    BLOCK_EXT(S##_b_min, T, G_ID, <, INFINITY, false)                                   \
    BLOCK_EXT(S##_b_amax, T, ABS, >, -INFINITY, true)                                   \
    BLOCK_EXT(S##_b_amin, T, ABS, <, INFINITY, false)
#define INT_BLOCKS(S, T)                                                                \
    BLOCK_ISUM(S##_b_isum, T)                                                           \
    BLOCK_IEXT(S##_b_imax, T, >, INT64_MIN)                                             \
    BLOCK_IEXT(S##_b_imin, T, <, INT64_MAX)

FLOAT_BLOCKS(f32, float, wki_expf, fabsf)
FLOAT_BLOCKS(f64, double, exp, fabs)
INT_BLOCKS(i32, int32_t)
INT_BLOCKS(i64, int64_t)
INT_BLOCKS(u8, uint8_t)

#define FLOAT_TABLE(S)                                                                  \
    {[K_SUM] = S##_b_sum, [K_ABS] = S##_b_abs, [K_SQR] = S##_b_sqr, [K_POW] = S##_b_pow, \
     [K_NZ] = S##_b_nz, [K_EXP] = S##_b_exp, [K_DEV] = S##_b_dev, [K_MAX] = S##_b_max,  \
     [K_MIN] = S##_b_min, [K_AMAX] = S##_b_amax, [K_AMIN] = S##_b_amin}
#define INT_TABLE(S) {[K_ISUM] = S##_b_isum, [K_IMAX] = S##_b_imax, [K_IMIN] = S##_b_imin}

static const block_fn blocks[WK_DTYPE_COUNT][K_COUNT] = {
    [WK_DTYPE_F32] = FLOAT_TABLE(f32), [WK_DTYPE_F64] = FLOAT_TABLE(f64),
    [WK_DTYPE_I32] = INT_TABLE(i32),   [WK_DTYPE_I64] = INT_TABLE(i64),
    [WK_DTYPE_U8] = INT_TABLE(u8),     [WK_DTYPE_BOOL] = INT_TABLE(u8),
};

static acc identity(enum kind k)
{
    switch (k) {
    case K_MAX: case K_AMAX: return (acc){.a = -INFINITY};
    case K_MIN: case K_AMIN: return (acc){.a = INFINITY};
    case K_IMAX: return (acc){.i = INT64_MIN};
    case K_IMIN: return (acc){.i = INT64_MAX};
    default: return (acc){0};
    }
}

static acc combine(enum kind k, acc x, acc y)
{
    switch (k) {
    case K_MAX: case K_AMAX: x.a = max_nan(x.a, y.a); break;
    case K_MIN: case K_AMIN: x.a = min_nan(x.a, y.a); break;
    case K_ISUM: x.i = (int64_t)((uint64_t)x.i + (uint64_t)y.i); break;
    case K_IMAX: x.i = y.i > x.i ? y.i : x.i; break;
    case K_IMIN: x.i = y.i < x.i ? y.i : x.i; break;
    default: x.a += y.a; x.b += y.b; break;
    }
    return x;
}

/* Byte offset in a row and length of its block b (blocks never straddle runs). */
static inline int64_t block_at(const plan *pl, int64_t b, int64_t *len)
{
    int64_t o = b / pl->bpr, c = b % pl->bpr, rem = pl->rlen - c * BLOCK;
    int64_t off = c * BLOCK * pl->rst;
    for (int d = pl->nr - 2; d >= 0 && o; d--) {
        off += o % pl->rshape[d] * pl->rstride[d];
        o /= pl->rshape[d];
    }
    *len = rem < BLOCK ? rem : BLOCK;
    return off * (int64_t)pl->esize;
}

/* Reduce the row at x with kind k: blocks combined in order, computed in parallel when
 * the plan asks for it (same result). */
static acc fold(const plan *pl, enum kind k, const char *x, double p)
{
    block_fn f = blocks[pl->dt][k];
    int64_t nb = pl->nblocks, len;
    acc r = identity(k);
    acc *part = pl->row_par && nb >= 2 ? malloc((size_t)nb * sizeof *part) : NULL;
    if (part) {
#pragma omp parallel for num_threads(wki_threads_for(pl->rcount, GRAIN)) private(len)
        for (int64_t b = 0; b < nb; b++) {
            int64_t off = block_at(pl, b, &len);
            part[b] = f(x + off, len, pl->rst, p);
        }
        for (int64_t b = 0; b < nb; b++)
            r = combine(k, r, part[b]);
        free(part);
        return r;
    }
    for (int64_t b = 0; b < nb; b++) {
        int64_t off = block_at(pl, b, &len);
        r = combine(k, r, f(x + off, len, pl->rst, p));
    }
    return r;
}

/* ---- columns: a tile of outputs at once, contiguous along the kept dim ---- */

typedef struct {
    double *a, *b;
    int64_t *i, *v;
} lanes;

/* Offset (elements) of successive reduced indices, in row-major order. */
typedef struct {
    int64_t idx[WK_MAX_DIMS];
    int64_t off;
} cursor;

static inline void cursor_next(cursor *c, const plan *pl)
{
    for (int d = pl->nr - 1; d >= 0; d--) {
        c->off += pl->rstride[d];
        if (++c->idx[d] < pl->rshape[d]) return;
        c->off -= pl->rstride[d] * pl->rshape[d];
        c->idx[d] = 0;
    }
}

typedef void (*col_fn)(const char *x, int64_t w, const plan *pl, const double *p, lanes *o);

#define COL_SUM(NAME, T, G)                                                             \
    static void NAME(const char *px, int64_t w, const plan *pl, const double *restrict p, \
                     lanes *o)                                                          \
    {                                                                                   \
        (void)p; /* only some g use it */                                               \
        double *restrict a = o->a;                                                      \
        for (int64_t j = 0; j < w; j++) a[j] = 0;                                       \
        cursor c = {0};                                                                 \
        for (int64_t r = 0; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) a[j] += G(x[j], p[j]);                      \
        }                                                                               \
    }

#define COL_DEV(NAME, T)                                                                \
    static void NAME(const char *px, int64_t w, const plan *pl, const double *restrict p, \
                     lanes *o)                                                          \
    {                                                                                   \
        double *restrict a = o->a, *restrict b = o->b;                                  \
        for (int64_t j = 0; j < w; j++) a[j] = b[j] = 0;                                \
        cursor c = {0};                                                                 \
        for (int64_t r = 0; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) {                                           \
                double d = (double)x[j] - p[j];                                         \
                a[j] += d * d;                                                          \
                b[j] += d;                                                              \
            }                                                                           \
        }                                                                               \
    }

#define COL_EXT(NAME, T, G, CMP, INIT)                                                  \
    static void NAME(const char *px, int64_t w, const plan *pl, const double *p,        \
                     lanes *o)                                                          \
    {                                                                                   \
        (void)p;                                                                        \
        double *restrict a = o->a;                                                      \
        for (int64_t j = 0; j < w; j++) a[j] = INIT;                                    \
        cursor c = {0};                                                                 \
        for (int64_t r = 0; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) {                                           \
                double v = G(x[j], 0);                                                  \
                a[j] = (v CMP a[j]) | (v != v) ? v : a[j];                              \
            }                                                                           \
        }                                                                               \
    }

#define COL_ISUM(NAME, T)                                                               \
    static void NAME(const char *px, int64_t w, const plan *pl, const double *p,        \
                     lanes *o)                                                          \
    {                                                                                   \
        (void)p;                                                                        \
        uint64_t *restrict s = (uint64_t *)o->v; /* wraps like int64 */                 \
        for (int64_t j = 0; j < w; j++) s[j] = 0;                                       \
        cursor c = {0};                                                                 \
        for (int64_t r = 0; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) s[j] += (uint64_t)x[j];                     \
        }                                                                               \
        for (int64_t j = 0; j < w; j++) o->i[j] = (int64_t)s[j];                        \
    }

#define COL_IEXT(NAME, T, CMP, INIT)                                                    \
    static void NAME(const char *px, int64_t w, const plan *pl, const double *p,        \
                     lanes *o)                                                          \
    {                                                                                   \
        (void)p;                                                                        \
        int64_t *restrict m = o->i;                                                     \
        for (int64_t j = 0; j < w; j++) m[j] = INIT;                                    \
        cursor c = {0};                                                                 \
        for (int64_t r = 0; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) m[j] = (int64_t)x[j] CMP m[j] ? x[j] : m[j]; \
        }                                                                               \
    }

#define FLOAT_COLS(S, T, GEXP)                                                          \
    COL_SUM(S##_c_sum, T, G_SUM)                                                        \
    COL_SUM(S##_c_abs, T, G_ABS)                                                        \
    COL_SUM(S##_c_sqr, T, G_SQR)                                                        \
    COL_SUM(S##_c_pow, T, G_POW)                                                        \
    COL_SUM(S##_c_nz, T, G_NZ)                                                          \
    COL_SUM(S##_c_exp, T, GEXP)                                                         \
    COL_DEV(S##_c_dev, T)                                                               \
    COL_EXT(S##_c_max, T, G_SUM, >, -INFINITY)                                          \
    COL_EXT(S##_c_min, T, G_SUM, <, INFINITY)                                           \
    COL_EXT(S##_c_amax, T, G_ABS, >, -INFINITY)                                         \
    COL_EXT(S##_c_amin, T, G_ABS, <, INFINITY)
#define INT_COLS(S, T)                                                                  \
    COL_ISUM(S##_c_isum, T)                                                             \
    COL_IEXT(S##_c_imax, T, >, INT64_MIN)                                               \
    COL_IEXT(S##_c_imin, T, <, INT64_MAX)

FLOAT_COLS(f32, float, G_EXPF)
FLOAT_COLS(f64, double, G_EXPD)
INT_COLS(i32, int32_t)
INT_COLS(i64, int64_t)
INT_COLS(u8, uint8_t)

#define FLOAT_CTABLE(S)                                                                 \
    {[K_SUM] = S##_c_sum, [K_ABS] = S##_c_abs, [K_SQR] = S##_c_sqr, [K_POW] = S##_c_pow, \
     [K_NZ] = S##_c_nz, [K_EXP] = S##_c_exp, [K_DEV] = S##_c_dev, [K_MAX] = S##_c_max,  \
     [K_MIN] = S##_c_min, [K_AMAX] = S##_c_amax, [K_AMIN] = S##_c_amin}
#define INT_CTABLE(S) {[K_ISUM] = S##_c_isum, [K_IMAX] = S##_c_imax, [K_IMIN] = S##_c_imin}

static const col_fn cols[WK_DTYPE_COUNT][K_COUNT] = {
    [WK_DTYPE_F32] = FLOAT_CTABLE(f32), [WK_DTYPE_F64] = FLOAT_CTABLE(f64),
    [WK_DTYPE_I32] = INT_CTABLE(i32),   [WK_DTYPE_I64] = INT_CTABLE(i64),
    [WK_DTYPE_U8] = INT_CTABLE(u8),     [WK_DTYPE_BOOL] = INT_CTABLE(u8),
};

/* ---- arg-extrema: first occurrence, NaN counts as the extreme ---- */

/* Index of the first element equal to v (the first NaN when v is NaN); n if none. */
typedef int64_t (*find_fn)(const char *x, int64_t n, int64_t st, double v, int64_t iv);

#define FIND_F(NAME, T)                                                                 \
    static int64_t NAME(const char *px, int64_t n, int64_t st, double v, int64_t iv)    \
    {                                                                                   \
        (void)iv;                                                                       \
        const T *x = (const T *)px;                                                     \
        int64_t i = 0;                                                                  \
        if (v != v)                                                                     \
            while (i < n && x[i * st] == x[i * st]) i++;                                \
        else                                                                            \
            while (i < n && (double)x[i * st] != v) i++;                                \
        return i;                                                                       \
    }
#define FIND_I(NAME, T)                                                                 \
    static int64_t NAME(const char *px, int64_t n, int64_t st, double v, int64_t iv)    \
    {                                                                                   \
        (void)v;                                                                        \
        const T *x = (const T *)px;                                                     \
        int64_t i = 0;                                                                  \
        while (i < n && (int64_t)x[i * st] != iv) i++;                                  \
        return i;                                                                       \
    }
FIND_F(f32_find, float)
FIND_F(f64_find, double)
FIND_I(i32_find, int32_t)
FIND_I(i64_find, int64_t)
FIND_I(u8_find, uint8_t)
static const find_fn finds[WK_DTYPE_COUNT] = {
    [WK_DTYPE_F32] = f32_find, [WK_DTYPE_F64] = f64_find, [WK_DTYPE_I32] = i32_find,
    [WK_DTYPE_I64] = i64_find, [WK_DTYPE_U8] = u8_find,   [WK_DTYPE_BOOL] = u8_find,
};

/* Column arg-extrema: best value in a (floats) or v (integers), its index in i. */
typedef void (*col_arg_fn)(const char *x, int64_t w, const plan *pl, lanes *o);

#define COL_ARG(NAME, T, BEST, CMP, ISNAN)                                              \
    static void NAME(const char *px, int64_t w, const plan *pl, lanes *o)               \
    {                                                                                   \
        int64_t *restrict idx = o->i;                                                   \
        const T *restrict x0 = (const T *)px;                                           \
        for (int64_t j = 0; j < w; j++) {                                               \
            o->BEST[j] = x0[j];                                                         \
            idx[j] = 0;                                                                 \
        }                                                                               \
        cursor c = {0};                                                                 \
        cursor_next(&c, pl);                                                            \
        for (int64_t r = 1; r < pl->rcount; r++, cursor_next(&c, pl)) {                 \
            const T *restrict x = (const T *)px + c.off;                                \
            for (int64_t j = 0; j < w; j++) {                                           \
                T v = x[j];                                                             \
                if (v CMP o->BEST[j] || (ISNAN(v) && !ISNAN(o->BEST[j]))) {             \
                    o->BEST[j] = v;                                                     \
                    idx[j] = r;                                                         \
                }                                                                       \
            }                                                                           \
        }                                                                               \
    }
#define IS_NAN(v) ((v) != (v))
#define NEVER_NAN(v) false
COL_ARG(f32_c_argmax, float, a, >, IS_NAN)
COL_ARG(f32_c_argmin, float, a, <, IS_NAN)
COL_ARG(f64_c_argmax, double, a, >, IS_NAN)
COL_ARG(f64_c_argmin, double, a, <, IS_NAN)
COL_ARG(i32_c_argmax, int32_t, v, >, NEVER_NAN)
COL_ARG(i32_c_argmin, int32_t, v, <, NEVER_NAN)
COL_ARG(i64_c_argmax, int64_t, v, >, NEVER_NAN)
COL_ARG(i64_c_argmin, int64_t, v, <, NEVER_NAN)
COL_ARG(u8_c_argmax, uint8_t, v, >, NEVER_NAN)
COL_ARG(u8_c_argmin, uint8_t, v, <, NEVER_NAN)
static const col_arg_fn col_args[WK_DTYPE_COUNT][2] = {
    [WK_DTYPE_F32] = {f32_c_argmax, f32_c_argmin}, [WK_DTYPE_F64] = {f64_c_argmax, f64_c_argmin},
    [WK_DTYPE_I32] = {i32_c_argmax, i32_c_argmin}, [WK_DTYPE_I64] = {i64_c_argmax, i64_c_argmin},
    [WK_DTYPE_U8] = {u8_c_argmax, u8_c_argmin},    [WK_DTYPE_BOOL] = {u8_c_argmax, u8_c_argmin},
};

/* ---- softmax ---- */

/* One row: n elements at x (stride st) into out (stride ost); m is the row's max and,
 * for log_softmax (ls != NULL), *ls is log(sum(exp(x - m))). */
typedef void (*softmax_row_fn)(const char *x, char *out, int64_t n, int64_t st, int64_t ost,
                               double m, const double *ls);

#define SOFTMAX_ROW(NAME, T, EXP)                                                       \
    static void NAME(const char *px, char *po, int64_t n, int64_t st, int64_t ost,      \
                     double m, const double *ls)                                        \
    {                                                                                   \
        const T *x = (const T *)px;                                                     \
        T *o = (T *)po;                                                                 \
        if (ls) {                                                                       \
            for (int64_t i = 0; i < n; i++) o[i * ost] = (T)(((double)x[i * st] - m) - *ls); \
            return;                                                                     \
        }                                                                               \
        T mt = (T)m;                                                                    \
        double l[LANES] = {0};                                                          \
        int64_t i = 0;                                                                  \
        if (st == 1 && ost == 1) {                                                      \
            for (i = 0; i < n; i++) o[i] = EXP(x[i] - mt);                              \
            for (i = 0; i + LANES <= n; i += LANES)                                     \
                for (int k = 0; k < LANES; k++) l[k] += (double)o[i + k];               \
        } else {                                                                        \
            for (i = 0; i < n; i++) o[i * ost] = EXP(x[i * st] - mt);                   \
            i = 0;                                                                      \
        }                                                                               \
        for (; i < n; i++) l[i % LANES] += (double)o[i * ost];                          \
        T inv = (T)(1.0 / join8(l));                                                    \
        for (i = 0; i < n; i++) o[i * ost] *= inv;                                      \
    }
SOFTMAX_ROW(f32_softmax_row, float, wki_expf)
SOFTMAX_ROW(f64_softmax_row, double, exp)

/* A tile of w columns: the max of each is in m[]; out lanes are os apart. */
typedef void (*softmax_col_fn)(const char *x, char *out, int64_t w, int64_t os, const plan *pl,
                               const double *m, double *s, bool is_log);

#define SOFTMAX_COL(NAME, T, EXP)                                                       \
    static void NAME(const char *px, char *po, int64_t w, int64_t os, const plan *pl,   \
                     const double *restrict m, double *restrict s, bool is_log)         \
    {                                                                                   \
        int64_t n = pl->rcount, st = pl->rst, ost = pl->rost;                           \
        for (int64_t j = 0; j < w; j++) s[j] = 0;                                       \
        if (is_log) {                                                                   \
            for (int64_t r = 0; r < n; r++) {                                           \
                const T *restrict x = (const T *)px + r * st;                           \
                for (int64_t j = 0; j < w; j++) s[j] += (double)EXP(x[j] - (T)m[j]);    \
            }                                                                           \
            for (int64_t j = 0; j < w; j++) s[j] = log(s[j]);                           \
            for (int64_t r = 0; r < n; r++) {                                           \
                const T *restrict x = (const T *)px + r * st;                           \
                T *restrict o = (T *)po + r * ost;                                      \
                for (int64_t j = 0; j < w; j++)                                         \
                    o[j * os] = (T)(((double)x[j] - m[j]) - s[j]);                      \
            }                                                                           \
        } else {                                                                        \
            for (int64_t r = 0; r < n; r++) {                                           \
                const T *restrict x = (const T *)px + r * st;                           \
                T *restrict o = (T *)po + r * ost;                                      \
                for (int64_t j = 0; j < w; j++) {                                       \
                    T e = EXP(x[j] - (T)m[j]);                                          \
                    o[j * os] = e;                                                      \
                    s[j] += (double)e;                                                  \
                }                                                                       \
            }                                                                           \
            for (int64_t j = 0; j < w; j++) s[j] = 1.0 / s[j];                          \
            for (int64_t r = 0; r < n; r++) {                                           \
                T *restrict o = (T *)po + r * ost;                                      \
                for (int64_t j = 0; j < w; j++) o[j * os] *= (T)s[j];                   \
            }                                                                           \
        }                                                                               \
    }
SOFTMAX_COL(f32_softmax_col, float, wki_expf)
SOFTMAX_COL(f64_softmax_col, double, exp)

/* ---- the ops: which kinds they accumulate and how the result follows ---- */

static void put_f(wk_dtype dt, char *p, double v)
{
    if (dt == WK_DTYPE_F32) *(float *)p = (float)v;
    else *(double *)p = v;
}

static void put_i(wk_dtype dt, char *p, int64_t v)
{
    switch (dt) {
    case WK_DTYPE_I32: *(int32_t *)p = (int32_t)v; break;
    case WK_DTYPE_I64: *(int64_t *)p = v; break;
    default: *(uint8_t *)p = (uint8_t)v; break;
    }
}

/* Float reductions: a first pass with kind k1 (parameter p1), optionally a second pass
 * with k2 whose parameter comes from the first result. */
typedef struct {
    enum kind k1, k2;
    double p1;
} recipe;

static recipe recipe_of(wk_reduce_op op, double p)
{
    switch (op) {
    case WK_REDUCE_AMAX: return (recipe){K_MAX, K_NONE, 0};
    case WK_REDUCE_AMIN: return (recipe){K_MIN, K_NONE, 0};
    case WK_REDUCE_VAR: case WK_REDUCE_STD: return (recipe){K_SUM, K_DEV, 0};
    case WK_REDUCE_LOGSUMEXP: return (recipe){K_MAX, K_EXP, 0};
    case WK_REDUCE_NORM:
        if (p == 2) return (recipe){K_SQR, K_NONE, 0};
        if (p == 1) return (recipe){K_ABS, K_NONE, 0};
        if (p == INFINITY) return (recipe){K_AMAX, K_NONE, 0};
        if (p == -INFINITY) return (recipe){K_AMIN, K_NONE, 0};
        if (p == 0) return (recipe){K_NZ, K_NONE, 0};
        return (recipe){K_POW, K_NONE, p};
    default: return (recipe){K_SUM, K_NONE, 0}; /* sum, mean */
    }
}

/* The parameter of the second pass: the mean (var/std) or the shift (logsumexp). */
static double second_param(wk_reduce_op op, acc r1, double n)
{
    if (op == WK_REDUCE_LOGSUMEXP) return isinf(r1.a) ? 0 : r1.a;
    return r1.a / n;
}

static double finish(wk_reduce_op op, double arg, acc r1, acc r2, double n)
{
    switch (op) {
    case WK_REDUCE_MEAN: return r1.a / n;
    case WK_REDUCE_VAR:
    case WK_REDUCE_STD: {
        double m2 = r2.a - r2.b * r2.b / n; /* corrected two-pass: exact mean error removed */
        if (m2 < 0) m2 = 0;
        double dof = n - arg > 0 ? n - arg : 0;
        return op == WK_REDUCE_VAR ? m2 / dof : sqrt(m2 / dof);
    }
    case WK_REDUCE_LOGSUMEXP: return log(r2.a) + second_param(op, r1, n);
    case WK_REDUCE_NORM:
        if (arg == 2) return sqrt(r1.a);
        if (arg == 1 || arg == 0 || isinf(arg)) return r1.a;
        return pow(r1.a, 1 / arg);
    default: return r1.a;
    }
}

/* The dtype the kernels write into out. */
static wk_dtype out_dtype(const plan *pl)
{
    if (pl->op == WK_REDUCE_ARGMAX || pl->op == WK_REDUCE_ARGMIN) return WK_DTYPE_I64;
    if (pl->op == WK_REDUCE_SUM && !wk_dtype_is_float(pl->dt)) return WK_DTYPE_I64;
    return pl->dt;
}

static bool is_arg_op(wk_reduce_op op)
{
    return op == WK_REDUCE_MAX || op == WK_REDUCE_MIN || op == WK_REDUCE_ARGMAX ||
           op == WK_REDUCE_ARGMIN;
}

static bool is_max_op(wk_reduce_op op) { return op == WK_REDUCE_MAX || op == WK_REDUCE_ARGMAX; }

static bool is_softmax(wk_reduce_op op)
{
    return op == WK_REDUCE_SOFTMAX || op == WK_REDUCE_LOG_SOFTMAX;
}

/* Row strategy: one output (and index) from the row at x. */
static void row_one(const plan *pl, char *out, char *idx, const char *x)
{
    wk_reduce_op op = pl->op;
    bool fl = wk_dtype_is_float(pl->dt);
    if (is_softmax(op)) {
        softmax_row_fn f = pl->dt == WK_DTYPE_F32 ? f32_softmax_row : f64_softmax_row;
        double m = fold(pl, K_MAX, x, 0).a, ls = 0;
        if (op == WK_REDUCE_LOG_SOFTMAX) ls = log(fold(pl, K_EXP, x, m).a);
        f(x, out, pl->rcount, pl->rst, pl->rost, m, op == WK_REDUCE_LOG_SOFTMAX ? &ls : NULL);
        return;
    }
    if (is_arg_op(op)) {
        bool mx = is_max_op(op);
        acc v = fold(pl, fl ? (mx ? K_MAX : K_MIN) : (mx ? K_IMAX : K_IMIN), x, 0);
        /* The first block holding that value; the index counts in row-major order. */
        int64_t i = 0, off = 0, len;
        for (int64_t b = 0; b < pl->nblocks; b++) {
            off = block_at(pl, b, &len);
            int64_t j = finds[pl->dt](x + off, len, pl->rst, v.a, v.i);
            if (j < len) {
                i = b / pl->bpr * pl->rlen + b % pl->bpr * BLOCK + j;
                off += j * pl->rst * (int64_t)pl->esize;
                break;
            }
        }
        if (op == WK_REDUCE_ARGMAX || op == WK_REDUCE_ARGMIN) {
            *(int64_t *)out = i;
            return;
        }
        memcpy(out, x + off, pl->esize);
        if (idx) *(int64_t *)idx = i;
        return;
    }
    if (!fl) {
        enum kind k = op == WK_REDUCE_SUM ? K_ISUM : op == WK_REDUCE_AMAX ? K_IMAX : K_IMIN;
        acc r = fold(pl, k, x, 0);
        put_i(op == WK_REDUCE_SUM ? WK_DTYPE_I64 : pl->dt, out, r.i);
        return;
    }
    recipe rc = recipe_of(op, pl->arg);
    double n = (double)pl->rcount;
    acc r1 = fold(pl, rc.k1, x, rc.p1), r2 = {0};
    if (rc.k2 != K_NONE) r2 = fold(pl, rc.k2, x, second_param(op, r1, n));
    put_f(pl->dt, out, finish(op, pl->arg, r1, r2, n));
}

/* Per-thread scratch of the column kernels: 9 arrays of plan.tile elements. */
typedef struct {
    lanes l1, l2;
    double *p;
} workspace;

#define WS_ARRAYS 9
_Static_assert(sizeof(workspace) % sizeof(double) == 0, "arrays follow the workspaces");

static void workspace_init(workspace *ws, double *mem, int64_t tile)
{
    ws->l1 = (lanes){mem, mem + tile, (int64_t *)(mem + 2 * tile), (int64_t *)(mem + 3 * tile)};
    ws->l2 = (lanes){mem + 4 * tile, mem + 5 * tile, (int64_t *)(mem + 6 * tile),
                     (int64_t *)(mem + 7 * tile)};
    ws->p = mem + 8 * tile;
}

/* Column strategy: w outputs (os elements apart) whose inputs are contiguous at x. */
static void col_tile(const plan *pl, workspace *ws, char *out, char *idx, const char *x,
                     int64_t w, int64_t os)
{
    wk_reduce_op op = pl->op;
    bool fl = wk_dtype_is_float(pl->dt);
    wk_dtype odt = out_dtype(pl);
    size_t osz = wk_dtype_size(odt);
    lanes *l1 = &ws->l1, *l2 = &ws->l2;
    double *p = ws->p;
    if (is_softmax(op)) {
        cols[pl->dt][K_MAX](x, w, pl, p, l1);
        softmax_col_fn f = pl->dt == WK_DTYPE_F32 ? f32_softmax_col : f64_softmax_col;
        f(x, out, w, os, pl, l1->a, l2->a, op == WK_REDUCE_LOG_SOFTMAX);
        return;
    }
    if (is_arg_op(op)) {
        col_args[pl->dt][is_max_op(op) ? 0 : 1](x, w, pl, l1);
        bool only_idx = op == WK_REDUCE_ARGMAX || op == WK_REDUCE_ARGMIN;
        for (int64_t j = 0; j < w; j++) {
            if (only_idx) {
                ((int64_t *)out)[j * os] = l1->i[j];
                continue;
            }
            if (fl) put_f(pl->dt, out + j * os * (int64_t)osz, l1->a[j]);
            else put_i(pl->dt, out + j * os * (int64_t)osz, l1->v[j]);
            if (idx) ((int64_t *)idx)[j] = l1->i[j];
        }
        return;
    }
    if (!fl) {
        enum kind k = op == WK_REDUCE_SUM ? K_ISUM : op == WK_REDUCE_AMAX ? K_IMAX : K_IMIN;
        cols[pl->dt][k](x, w, pl, p, l1);
        for (int64_t j = 0; j < w; j++) put_i(odt, out + j * os * (int64_t)osz, l1->i[j]);
        return;
    }
    recipe rc = recipe_of(op, pl->arg);
    double n = (double)pl->rcount;
    for (int64_t j = 0; j < w; j++) p[j] = rc.p1;
    cols[pl->dt][rc.k1](x, w, pl, p, l1);
    if (rc.k2 != K_NONE) {
        for (int64_t j = 0; j < w; j++)
            p[j] = second_param(op, (acc){.a = l1->a[j]}, n);
        cols[pl->dt][rc.k2](x, w, pl, p, l2);
    }
    for (int64_t j = 0; j < w; j++) {
        acc r1 = {.a = l1->a[j], .b = l1->b[j]}, r2 = {0};
        if (rc.k2 != K_NONE) r2 = (acc){.a = l2->a[j], .b = l2->b[j]};
        put_f(pl->dt, out + j * os * (int64_t)osz, finish(op, pl->arg, r1, r2, n));
    }
}

typedef struct {
    const plan *pl;
    workspace *ws; /* this thread's, for the column strategy */
} loop_ctx;

static void reduce_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    const plan *pl = ((loop_ctx *)ctx)->pl;
    bool has_idx = pl->xi == 2;
    char *out = d[0], *idx = has_idx ? d[1] : NULL;
    const char *x = d[pl->xi];
    int64_t so = s[0], si = has_idx ? s[1] : 0, sx = s[pl->xi];
    if (pl->col) {
        int64_t os = so / (int64_t)wk_dtype_size(out_dtype(pl));
        for (int64_t j = 0; j < n; j += pl->tile)
            col_tile(pl, ((loop_ctx *)ctx)->ws, out + j * so, idx ? idx + j * si : NULL,
                     x + j * sx, n - j < pl->tile ? n - j : pl->tile, os);
        return;
    }
    for (int64_t k = 0; k < n; k++)
        row_one(pl, out + k * so, idx ? idx + k * si : NULL, x + k * sx);
}

/* Reduce a copy of x with the reduced dims innermost and row-major (one run per row). */
static bool reduce_copy(wk_reduce_op op, wk_tensor *x, const bool *reduced, double arg,
                        wk_tensor *out, wk_tensor *indices)
{
    int perm[WK_MAX_DIMS], np = 0;
    bool red2[WK_MAX_DIMS] = {0};
    for (int d = 0; d < x->ndim; d++)
        if (!reduced[d]) perm[np++] = d;
    for (int d = 0; d < x->ndim; d++)
        if (reduced[d]) {
            red2[np] = true;
            perm[np++] = d;
        }
    wk_tensor *xp = wk_permute(x, perm, x->ndim);
    wk_tensor *xc = xp ? wk_clone(xp) : NULL;
    bool ok = xc && wki_cpu_reduce(op, xc, red2, arg, out, indices);
    wk_tensor_free(xc);
    wk_tensor_free(xp);
    return ok;
}

bool wki_cpu_reduce(wk_reduce_op op, wk_tensor *x, const bool *reduced, double arg,
                    wk_tensor *out, wk_tensor *indices)
{
    if (wk_numel(out) == 0) return true;
    bool soft = is_softmax(op);
    plan pl = {.op = op, .dt = x->dtype, .esize = wk_dtype_size(x->dtype), .arg = arg};

    /* Kept dims: views of x, out (and indices) over them, walked by the iterator. */
    wk_tensor xk = *x, ok = *out, ik = indices ? *indices : *out;
    int nk = 0, nred = 0;
    int64_t rs[WK_MAX_DIMS], rt[WK_MAX_DIMS];
    for (int d = 0; d < x->ndim; d++) {
        if (reduced[d]) {
            rs[nred] = x->shape[d];
            rt[nred++] = x->strides[d];
            if (soft) pl.rost = out->strides[d];
            continue;
        }
        xk.shape[nk] = ok.shape[nk] = ik.shape[nk] = x->shape[d];
        xk.strides[nk] = x->strides[d];
        ok.strides[nk] = out->strides[d]; /* softmax: out has x's shape */
        nk++;
    }
    xk.ndim = ok.ndim = ik.ndim = nk;
    if (!soft) {
        wki_contiguous_strides(ok.shape, nk, ok.strides);
        wki_contiguous_strides(ik.shape, nk, ik.strides);
    }

    /* Reduced dims: drop size 1, merge neighbours that step as one. */
    pl.rcount = 1;
    for (int d = 0; d < nred; d++) {
        pl.rcount *= rs[d];
        if (rs[d] == 1) continue;
        if (pl.nr && pl.rstride[pl.nr - 1] == rt[d] * rs[d]) {
            pl.rshape[pl.nr - 1] *= rs[d];
            pl.rstride[pl.nr - 1] = rt[d];
        } else {
            pl.rshape[pl.nr] = rs[d];
            pl.rstride[pl.nr++] = rt[d];
        }
    }
    if (pl.rcount == 0) pl.nr = 0;
    pl.rlen = pl.nr ? pl.rshape[pl.nr - 1] : pl.rcount;
    pl.rst = pl.nr ? pl.rstride[pl.nr - 1] : 0;
    pl.bpr = (pl.rlen + BLOCK - 1) / BLOCK;
    pl.nblocks = pl.rlen ? pl.rcount / pl.rlen * pl.bpr : 0;

    const wk_tensor *ops[3] = {&ok, &ik, &xk};
    int nops = indices ? 3 : 2;
    if (!indices) ops[1] = &xk;
    pl.xi = nops - 1;
    wki_iter it;
    wki_iter_init(&it, nops, ops);
    int64_t nout = it.numel;

    bool good_row = pl.nr == 0 || (pl.rst == 1 && (pl.nr == 1 || pl.rlen >= 64));
    pl.col = !good_row && it.strides[pl.xi][0] == (int64_t)pl.esize && it.shape[0] >= 8;
    if (!good_row && !pl.col && pl.nr > 1) return reduce_copy(op, x, reduced, arg, out, indices);

    int64_t work = nout * (pl.rcount > 1 ? pl.rcount : 1);
    pl.row_par = !pl.col && !soft && nout < wk_get_num_threads() && pl.nblocks >= 2;
    int nt = pl.row_par ? 1 : wki_threads_for(work, GRAIN);
    if (nt > nout) nt = (int)nout;
    workspace *ws = NULL; /* nt workspaces, then their arrays */
    if (pl.col) {
        pl.tile = it.shape[0] < MAX_TILE ? it.shape[0] : MAX_TILE;
        size_t arrays = WS_ARRAYS * (size_t)pl.tile;
        size_t bytes = (size_t)nt * (sizeof *ws + arrays * sizeof(double));
        if (!(ws = malloc(bytes))) {
            wk_set_error("%s: out of memory (%zu bytes of scratch)", wk_reduce_op_name(op),
                         bytes);
            return false;
        }
        double *mem = (double *)(ws + nt);
        for (int t = 0; t < nt; t++)
            workspace_init(&ws[t], mem + (size_t)t * arrays, pl.tile);
    }
    if (nt <= 1) {
        loop_ctx ctx = {&pl, ws};
        wki_iter_run_range(&it, reduce_loop, &ctx, 0, nout);
    } else {
#pragma omp parallel num_threads(nt)
        {
            int t = omp_get_thread_num(), T = omp_get_num_threads();
            loop_ctx ctx = {&pl, ws ? ws + t : NULL};
            wki_iter_run_range(&it, reduce_loop, &ctx, nout * t / T, nout * (t + 1) / T);
        }
    }
    free(ws);
    return true;
}

/* ---- softmax backward ---- */

#define SBWD_TILE 256 /* columns per tile when the dim is not innermost */

/* One contiguous row of n: the sum over the row, then the gradient. */
#define SOFTMAX_BWD(S, T, EXP)                                                          \
    static void S##_softmax_bwd_row(bool is_log, const T *restrict y, const T *restrict g, \
                                    T *restrict o, int64_t n)                           \
    {                                                                                   \
        double l[LANES] = {0};                                                          \
        int64_t i = 0;                                                                  \
        if (is_log) {                                                                   \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) l[k] += (double)g[i + k];               \
            for (int k = 0; i < n; i++, k++) l[k] += (double)g[i];                      \
            T s = (T)join8(l);                                                          \
            for (i = 0; i < n; i++) o[i] = g[i] - EXP(y[i]) * s;                        \
        } else {                                                                        \
            for (; i + LANES <= n; i += LANES)                                          \
                for (int k = 0; k < LANES; k++) l[k] += (double)g[i + k] * (double)y[i + k]; \
            for (int k = 0; i < n; i++, k++) l[k] += (double)g[i] * (double)y[i];       \
            T s = (T)join8(l);                                                          \
            for (i = 0; i < n; i++) o[i] = y[i] * (g[i] - s);                           \
        }                                                                               \
    }                                                                                   \
    /* w columns (inner apart along the dim) of n rows, one vectorised pass per row. */ \
    static void S##_softmax_bwd_tile(bool is_log, const T *restrict y, const T *restrict g, \
                                     T *restrict o, int64_t n, int64_t inner, int64_t w) \
    {                                                                                   \
        double s[SBWD_TILE];                                                            \
        T st[SBWD_TILE];                                                                \
        for (int64_t j = 0; j < w; j++) s[j] = 0;                                       \
        for (int64_t r = 0; r < n; r++) {                                               \
            const T *restrict gr = g + r * inner, *restrict yr = y + r * inner;         \
            if (is_log)                                                                 \
                for (int64_t j = 0; j < w; j++) s[j] += (double)gr[j];                  \
            else                                                                        \
                for (int64_t j = 0; j < w; j++) s[j] += (double)gr[j] * (double)yr[j];  \
        }                                                                               \
        for (int64_t j = 0; j < w; j++) st[j] = (T)s[j];                                \
        for (int64_t r = 0; r < n; r++) {                                               \
            const T *restrict gr = g + r * inner, *restrict yr = y + r * inner;         \
            T *restrict orow = o + r * inner;                                           \
            if (is_log)                                                                 \
                for (int64_t j = 0; j < w; j++) orow[j] = gr[j] - EXP(yr[j]) * st[j];   \
            else                                                                        \
                for (int64_t j = 0; j < w; j++) orow[j] = yr[j] * (gr[j] - st[j]);      \
        }                                                                               \
    }                                                                                   \
    static void S##_softmax_bwd(bool is_log, const T *y, const T *g, T *o, int64_t outer, \
                                int64_t n, int64_t inner)                               \
    {                                                                                   \
        int nt = wki_threads_for(outer * n * inner, GRAIN);                             \
        if (inner == 1) {                                                               \
            _Pragma("omp parallel for num_threads(nt) schedule(static)")                \
            for (int64_t r = 0; r < outer; r++)                                         \
                S##_softmax_bwd_row(is_log, y + r * n, g + r * n, o + r * n, n);        \
            return;                                                                     \
        }                                                                               \
        int64_t tiles = (inner + SBWD_TILE - 1) / SBWD_TILE;                            \
        _Pragma("omp parallel for num_threads(nt) schedule(static)")                    \
        for (int64_t it = 0; it < outer * tiles; it++) {                                \
            int64_t b = it / tiles, j0 = it % tiles * SBWD_TILE;                        \
            int64_t w = inner - j0 < SBWD_TILE ? inner - j0 : SBWD_TILE;                \
            int64_t off = b * n * inner + j0;                                           \
            S##_softmax_bwd_tile(is_log, y + off, g + off, o + off, n, inner, w);       \
        }                                                                               \
    }
SOFTMAX_BWD(f32, float, wki_expf)
SOFTMAX_BWD(f64, double, exp)

bool wki_cpu_softmax_backward(bool is_log, const wk_tensor *y, const wk_tensor *g,
                              wk_tensor *gx, int dim)
{
    int64_t outer = 1, n = y->ndim ? y->shape[dim] : 1, inner = 1;
    for (int d = 0; d < dim; d++)
        outer *= y->shape[d];
    for (int d = dim + 1; d < y->ndim; d++)
        inner *= y->shape[d];
    if (wk_numel(y) == 0) return true;
    if (y->dtype == WK_DTYPE_F32)
        f32_softmax_bwd(is_log, wk_data(y), wk_data(g), wk_data(gx), outer, n, inner);
    else
        f64_softmax_bwd(is_log, wk_data(y), wk_data(g), wk_data(gx), outer, n, inner);
    return true;
}

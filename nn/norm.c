/* Batch, layer and group normalisation: one front-end (norm_forward) that validates,
 * allocates and records the autograd node; fused CPU kernels (batch norm: per-channel
 * shifted sums in one pass and the output in a second, backward in two passes; layer and
 * group norm: each row's statistics (one shifted pass), output and gradients (two passes)
 * while the row is in cache);
 * and the BatchNorm1d/2d, LayerNorm and GroupNorm modules.
 *
 * Every tensor is viewed as x (N, C, S): batch norm normalises each channel c over N*S
 * values; group norm each of the N*G rows (n, g) of L = (C/G)*S contiguous values; layer
 * norm is group norm with N = rows, C = L = prod(normalized_shape), S = G = 1. */
#include <math.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/profiler-impl.h"
#include "../tensor/creation.h"
#include "norm.h"

typedef enum { NORM_BATCH, NORM_LAYER, NORM_GROUP, NORM_COUNT } norm_op;

static const struct {
    const char *name;
} norm_info[] = {
    [NORM_BATCH] = {"batch_norm"},
    [NORM_LAYER] = {"layer_norm"},
    [NORM_GROUP] = {"group_norm"},
};
_Static_assert(sizeof norm_info / sizeof norm_info[0] == NORM_COUNT,
               "norm_info needs one row per norm_op");

/* What a kernel gets: contiguous x/dy/y/dx (N, C, S), w/b/dw/db (C) of x's dtype (NULL
 * when absent or not wanted), statistics in double: per channel (batch norm) or per row
 * (N*G, layer and group norm). */
typedef struct {
    norm_op op;
    wk_dtype dtype;
    int64_t N, C, S, G;
    double eps, momentum;
    bool training;
    const char *x, *w, *b;
    char *y;
    double *mean, *rstd;
    wk_tensor *run_mean, *run_var; /* batch norm: any float dtype and stride, or NULL */
    const char *dy;
    char *dx, *dw, *db;
} norm_args;

typedef bool (*norm_kernel)(const norm_args *a);

/* ---- CPU kernels ---- */

#define LANES 8
#define BLOCK 16384 /* elements per partial-sum block (fixed: results do not depend on
                       the thread count) */
#define GRAIN 32768 /* elements per thread at least */
#define SUB_ROWS 16 /* rows whose dw/db contributions add up in the input's dtype */

static inline double join8(const double *l)
{
    return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

/* Hand-vectorised float32 blocks (GCC vector types, 4 floats = one SSE register, so
 * that the baseline x86-64 build vectorises them): groups of 8 values per lane are
 * summed in float, then added to double lanes. Each returns how many leading elements
 * it handled; the typed code below does the rest. */
typedef float v4f __attribute__((vector_size(16)));
typedef double v2d __attribute__((vector_size(16)));

static inline v2d lo2d(v4f v) { return (v2d){v[0], v[1]}; }
static inline v2d hi2d(v4f v) { return (v2d){v[2], v[3]}; }

static inline void add_lanes(double *l, v4f c)
{
    v2d a = lo2d(c), b = hi2d(c);
    l[0] += a[0];
    l[1] += a[1];
    l[2] += b[0];
    l[3] += b[1];
}

/* (sum a - sa, sum (a - sa)^2), or with grad (sum a, sum a * (b - sb)), into l0/l1. */
static int64_t f32_block_sums(const float *restrict a, const float *restrict b, int64_t n,
                              double sa, double sb, bool grad, double *l0, double *l1)
{
    int64_t i = 0;
    v4f sat = {(float)sa, (float)sa, (float)sa, (float)sa};
    float sbf = (float)sb, sbd = (float)(sb - (double)sbf); /* sb = sbf + sbd */
    v4f sbt = {sbf, sbf, sbf, sbf}, sb2 = {sbd, sbd, sbd, sbd};
    for (; i + 32 <= n; i += 32) {
        v4f c0a = {0}, c0b = {0}, c1a = {0}, c1b = {0}, x0, x1, y0, y1;
        if (!grad) {
            for (int u = 0; u < 32; u += 8) {
                memcpy(&x0, a + i + u, 16);
                memcpy(&x1, a + i + u + 4, 16);
                x0 -= sat;
                x1 -= sat;
                c0a += x0;
                c0b += x1;
                c1a += x0 * x0;
                c1b += x1 * x1;
            }
        } else {
            for (int u = 0; u < 32; u += 8) {
                memcpy(&x0, a + i + u, 16);
                memcpy(&x1, a + i + u + 4, 16);
                memcpy(&y0, b + i + u, 16);
                memcpy(&y1, b + i + u + 4, 16);
                c0a += x0;
                c0b += x1;
                c1a += x0 * ((y0 - sbt) - sb2);
                c1b += x1 * ((y1 - sbt) - sb2);
            }
        }
        add_lanes(l0, c0a);
        add_lanes(l0 + 4, c0b);
        add_lanes(l1, c1a);
        add_lanes(l1 + 4, c1b);
    }
    return i;
}

/* The layer-norm backward's first pass over whole blocks of 32: l1 += g, l2 += g * xhat
 * with g = dy * w (w may be NULL), and pw += dy * xhat, pb += dy when given. */
static int64_t f32_ln_pass1(const float *restrict x, const float *restrict dy,
                            const float *restrict w, int64_t L, float mt, float dt, float rt,
                            float *restrict pw, float *restrict pb, double *l1, double *l2)
{
    int64_t j = 0;
    v4f m4 = {mt, mt, mt, mt}, d4 = {dt, dt, dt, dt}, r4 = {rt, rt, rt, rt};
    for (; j + 32 <= L; j += 32) {
        v4f c1a = {0}, c1b = {0}, c2a = {0}, c2b = {0};
        for (int u = 0; u < 32; u += 4) {
            v4f d, xh, g, t;
            memcpy(&d, dy + j + u, 16);
            memcpy(&xh, x + j + u, 16);
            xh = ((xh - m4) - d4) * r4;
            g = d;
            if (w) {
                memcpy(&t, w + j + u, 16);
                g = d * t;
            }
            if (u & 4) {
                c1b += g;
                c2b += g * xh;
            } else {
                c1a += g;
                c2a += g * xh;
            }
            if (pw) {
                memcpy(&t, pw + j + u, 16);
                t += d * xh;
                memcpy(pw + j + u, &t, 16);
            }
            if (pb) {
                memcpy(&t, pb + j + u, 16);
                t += d;
                memcpy(pb + j + u, &t, 16);
            }
        }
        add_lanes(l1, c1a);
        add_lanes(l1 + 4, c1b);
        add_lanes(l2, c2a);
        add_lanes(l2 + 4, c2b);
    }
    return j;
}

/* float64 has no block step: its typed loops run in double throughout. */
static int64_t no_block_sums(const double *a, const double *b, int64_t n, double sa, double sb,
                             bool grad, double *l0, double *l1)
{
    (void)a, (void)b, (void)n, (void)sa, (void)sb, (void)grad, (void)l0, (void)l1;
    return 0;
}

static int64_t no_ln_pass1(const double *x, const double *dy, const double *w, int64_t L,
                           double mt, double dt, double rt, double *pw, double *pb, double *l1,
                           double *l2)
{
    (void)x, (void)dy, (void)w, (void)L, (void)mt, (void)dt, (void)rt, (void)pw, (void)pb, (void)l1,
        (void)l2;
    return 0;
}

/* Typed pieces, one set per float dtype. Sums accumulate in double (float32 in groups
 * of 8 first); batch norm's outputs are computed in double; layer/group norm's outputs
 * and gradients in the input's dtype as torch does, with the mean split into its T value
 * and rounding error (mt + dt) so that x - mean stays accurate when |mean| >> std.
 *
 * seg_sums: over n elements, (sum u, sum u^2) with u = a - sa (statistics), or, with
 *   grad, (sum a, sum a * (b - sb)) (a = dy, b = x: the batch-norm backward sums).
 * row1_sums: the same for S = 1, one row of C channels added into p0[c], p1[c].
 * affine: y = x * A + B over n elements; row1_affine: per channel A[c], B[c].
 * bn_dx: dx = dy * k1 + (x - m) * k2 + k3; row1_bn_dx: per channel coefficients.
 * row_fwd: one layer/group-norm row: its mean/rstd and the output.
 * row_bwd: one row's dx (when dx) and its dw/db contributions (when pw/pb), added to
 *   pw/pb in T (a few rows at a time: see flush).
 * flush: add n values of T to double sums and zero them. */
typedef struct {
    void (*seg_sums)(const char *a, const char *b, int64_t n, double sa, double sb,
                     bool grad, double *r0, double *r1);
    void (*row1_sums)(const char *a, const char *b, int64_t C, const double *sa,
                      const double *sb, bool grad, double *p0, double *p1);
    void (*affine)(const char *x, char *y, int64_t n, double A, double B);
    void (*row1_affine)(const char *x, char *y, int64_t C, const double *A, const double *B);
    void (*bn_dx)(const char *dy, const char *x, char *dx, int64_t n, double k1, double m,
                  double k2, double k3);
    void (*row1_bn_dx)(const char *dy, const char *x, char *dx, int64_t C, const double *k1,
                       const double *m, const double *k2, const double *k3);
    void (*row_fwd)(const char *x, char *y, int64_t cpg, int64_t S, const char *w,
                    const char *b, double eps, double *mean, double *rstd);
    void (*row_bwd)(const char *x, const char *dy, char *dx, int64_t cpg, int64_t S,
                    const char *w, double mean, double rstd, char *pw, char *pb);
    void (*flush)(char *t, double *dst, int64_t n);
} norm_prims;

#define NORM_PRIMS(S_, T, BLOCK_SUMS, LN_PASS1)                                          \
    static void S_##_seg_sums(const char *pa, const char *pb, int64_t n, double sa,      \
                              double sb, bool grad, double *r0, double *r1)              \
    {                                                                                    \
        const T *restrict a = (const T *)pa, *restrict b = (const T *)pb;                \
        double l0[LANES] = {0}, l1[LANES] = {0};                                         \
        int64_t i = BLOCK_SUMS(a, b, n, sa, sb, grad, l0, l1);                           \
        for (; i + LANES <= n; i += LANES)                                               \
            for (int k = 0; k < LANES; k++) {                                            \
                double u = grad ? (double)a[i + k] : (double)a[i + k] - sa;              \
                l0[k] += u;                                                              \
                l1[k] += grad ? u * ((double)b[i + k] - sb) : u * u;                     \
            }                                                                            \
        for (int k = 0; i < n; i++, k = (k + 1) % LANES) {                               \
            double u = grad ? (double)a[i] : (double)a[i] - sa;                          \
            l0[k] += u;                                                                  \
            l1[k] += grad ? u * ((double)b[i] - sb) : u * u;                             \
        }                                                                                \
        *r0 = join8(l0);                                                                 \
        *r1 = join8(l1);                                                                 \
    }                                                                                    \
    static void S_##_row1_sums(const char *pa, const char *pb, int64_t C, const double *sa, \
                               const double *sb, bool grad, double *restrict p0,         \
                               double *restrict p1)                                      \
    {                                                                                    \
        const T *restrict a = (const T *)pa, *restrict b = (const T *)pb;                \
        if (!grad) {                                                                     \
            for (int64_t c = 0; c < C; c++) {                                            \
                double u = (double)a[c] - sa[c];                                         \
                p0[c] += u;                                                              \
                p1[c] += u * u;                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t c = 0; c < C; c++) {                                            \
                double g = (double)a[c];                                                 \
                p0[c] += g;                                                              \
                p1[c] += g * ((double)b[c] - sb[c]);                                     \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void S_##_affine(const char *px, char *py, int64_t n, double A, double B)     \
    {                                                                                    \
        const T *restrict x = (const T *)px;                                             \
        T *restrict y = (T *)py;                                                         \
        for (int64_t i = 0; i < n; i++) y[i] = (T)((double)x[i] * A + B);                \
    }                                                                                    \
    static void S_##_row1_affine(const char *px, char *py, int64_t C, const double *A,   \
                                 const double *B)                                        \
    {                                                                                    \
        const T *restrict x = (const T *)px;                                             \
        T *restrict y = (T *)py;                                                         \
        for (int64_t c = 0; c < C; c++) y[c] = (T)((double)x[c] * A[c] + B[c]);          \
    }                                                                                    \
    static void S_##_bn_dx(const char *pdy, const char *px, char *pdx, int64_t n,        \
                           double k1, double m, double k2, double k3)                    \
    {                                                                                    \
        const T *restrict dy = (const T *)pdy, *restrict x = (const T *)px;              \
        T *restrict dx = (T *)pdx;                                                       \
        for (int64_t i = 0; i < n; i++)                                                  \
            dx[i] = (T)((double)dy[i] * k1 + ((double)x[i] - m) * k2 + k3);              \
    }                                                                                    \
    static void S_##_row1_bn_dx(const char *pdy, const char *px, char *pdx, int64_t C,   \
                                const double *k1, const double *m, const double *k2,     \
                                const double *k3)                                        \
    {                                                                                    \
        const T *restrict dy = (const T *)pdy, *restrict x = (const T *)px;              \
        T *restrict dx = (T *)pdx;                                                       \
        for (int64_t c = 0; c < C; c++)                                                  \
            dx[c] = (T)((double)dy[c] * k1[c] + ((double)x[c] - m[c]) * k2[c] + k3[c]);  \
    }                                                                                    \
    static void S_##_row_fwd(const char *px, char *py, int64_t cpg, int64_t S,           \
                             const char *pw, const char *pb, double eps, double *mean,   \
                             double *rstd)                                               \
    {                                                                                    \
        const T *restrict x = (const T *)px;                                             \
        const T *restrict w = (const T *)pw, *restrict b = (const T *)pb;                \
        T *restrict y = (T *)py;                                                         \
        int64_t L = cpg * S, j;                                                          \
        double m = 0, v = 0;                                                             \
        if (L > 0) { /* one pass, shifted by the row's first value */                    \
            double s0, s1, sh = (double)x[0];                                            \
            S_##_seg_sums(px, NULL, L, sh, 0, false, &s0, &s1);                          \
            m = sh + s0 / (double)L;                                                     \
            v = (s1 - s0 * s0 / (double)L) / (double)L;                                  \
            if (v < 0) v = 0;                                                            \
        }                                                                                \
        double r = 1.0 / sqrt(v + eps);                                                  \
        *mean = m;                                                                       \
        *rstd = r;                                                                       \
        /* the output in T arithmetic (as torch): (x - mean) * rstd * w + b */           \
        T mt = (T)m, dt = (T)(m - (double)mt), rt = (T)r; /* mean = mt + dt */           \
        if (S == 1) {                                                                    \
            if (w && b)                                                                  \
                for (j = 0; j < L; j++) y[j] = ((x[j] - mt) - dt) * rt * w[j] + b[j];    \
            else if (w)                                                                  \
                for (j = 0; j < L; j++) y[j] = ((x[j] - mt) - dt) * rt * w[j];           \
            else if (b)                                                                  \
                for (j = 0; j < L; j++) y[j] = ((x[j] - mt) - dt) * rt + b[j];           \
            else                                                                         \
                for (j = 0; j < L; j++) y[j] = ((x[j] - mt) - dt) * rt;                  \
            return;                                                                      \
        }                                                                                \
        for (int64_t c = 0; c < cpg; c++) {                                              \
            T A = w ? rt * w[c] : rt, B = b ? b[c] : (T)0;                               \
            const T *restrict xc = x + c * S;                                            \
            T *restrict yc = y + c * S;                                                  \
            for (int64_t s = 0; s < S; s++) yc[s] = ((xc[s] - mt) - dt) * A + B;         \
        }                                                                                \
    }                                                                                    \
    /* One element of the layer-norm backward's first pass. */                           \
    static inline void S_##_bwd_el(T x, T d, T wj, T mt, T dt, T rt, T *g1, T *g2, T *pw, \
                                   T *pb)                                                \
    {                                                                                    \
        T xh = ((x - mt) - dt) * rt, g = d * wj;                                         \
        *g1 += g;                                                                        \
        *g2 += g * xh;                                                                   \
        if (pw) *pw += d * xh;                                                           \
        if (pb) *pb += d;                                                                \
    }                                                                                    \
    static void S_##_row_bwd(const char *px, const char *pdy, char *pdx, int64_t cpg,    \
                             int64_t S, const char *pw, double m, double r, char *ppw,   \
                             char *ppb)                                                  \
    {                                                                                    \
        const T *restrict x = (const T *)px, *restrict dy = (const T *)pdy;              \
        const T *restrict w = (const T *)pw;                                             \
        T *restrict dx = (T *)pdx, *restrict pwp = (T *)ppw, *restrict pbp = (T *)ppb;   \
        int64_t L = cpg * S;                                                             \
        T mt = (T)m, dt = (T)(m - (double)mt), rt = (T)r; /* mean = mt + dt */           \
        double l1[LANES] = {0}, l2[LANES] = {0};                                         \
        if (S == 1) {                                                                    \
            /* pass 1: sums of g = dy*w and g*xhat, and the dw/db contributions */       \
            int64_t j = LN_PASS1(x, dy, w, L, mt, dt, rt, pwp, pbp, l1, l2);             \
            for (int k = 0; j < L; j++, k = (k + 1) % LANES) {                           \
                T g1 = 0, g2 = 0;                                                        \
                S_##_bwd_el(x[j], dy[j], w ? w[j] : 1, mt, dt, rt, &g1, &g2,             \
                            pwp ? &pwp[j] : NULL, pbp ? &pbp[j] : NULL);                 \
                l1[k] += (double)g1;                                                     \
                l2[k] += (double)g2;                                                     \
            }                                                                            \
        } else {                                                                         \
            for (int64_t c = 0; c < cpg; c++) {                                          \
                double wc = w ? (double)w[c] : 1, sd, sdx;                               \
                S_##_seg_sums((const char *)(dy + c * S), (const char *)(x + c * S), S, 0, \
                              m, true, &sd, &sdx);                                       \
                sdx *= r; /* sum dy * xhat */                                            \
                l1[c % LANES] += wc * sd;                                                \
                l2[c % LANES] += wc * sdx;                                               \
                if (pwp) pwp[c] += (T)sdx;                                               \
                if (pbp) pbp[c] += (T)sd;                                                \
            }                                                                            \
        }                                                                                \
        if (!dx) return;                                                                 \
        /* pass 2: dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) */                  \
        T a1 = (T)(L ? join8(l1) / (double)L : 0), a2 = (T)(L ? join8(l2) / (double)L : 0); \
        if (S == 1) {                                                                    \
            if (w)                                                                       \
                for (int64_t j = 0; j < L; j++)                                          \
                    dx[j] = rt * (dy[j] * w[j] - a1 - ((x[j] - mt) - dt) * rt * a2);     \
            else                                                                         \
                for (int64_t j = 0; j < L; j++)                                          \
                    dx[j] = rt * (dy[j] - a1 - ((x[j] - mt) - dt) * rt * a2);            \
            return;                                                                      \
        }                                                                                \
        for (int64_t c = 0; c < cpg; c++) {                                              \
            T wc = w ? w[c] : (T)1;                                                      \
            const T *restrict xc = x + c * S, *restrict dc = dy + c * S;                 \
            T *restrict oc = dx + c * S;                                                 \
            for (int64_t s = 0; s < S; s++)                                              \
                oc[s] = rt * (dc[s] * wc - a1 - ((xc[s] - mt) - dt) * rt * a2);          \
        }                                                                                \
    }                                                                                    \
    /* dst[i] += t[i] for n values of T, then t[i] = 0 */                                \
    static void S_##_flush(char *pt, double *restrict dst, int64_t n)                    \
    {                                                                                    \
        T *restrict t = (T *)pt;                                                         \
        for (int64_t i = 0; i < n; i++) {                                                \
            dst[i] += (double)t[i];                                                      \
            t[i] = 0;                                                                    \
        }                                                                                \
    }                                                                                    \
    static const norm_prims S_##_prims = {S_##_seg_sums, S_##_row1_sums, S_##_affine,    \
                                          S_##_row1_affine, S_##_bn_dx, S_##_row1_bn_dx, \
                                          S_##_row_fwd, S_##_row_bwd, S_##_flush};
NORM_PRIMS(f32, float, f32_block_sums, f32_ln_pass1)
NORM_PRIMS(f64, double, no_block_sums, no_ln_pass1)

static const norm_prims *prims_for(wk_dtype dtype)
{
    return dtype == WK_DTYPE_F32 ? &f32_prims : &f64_prims;
}

/* Scratch memory from the pool (a steady training loop does not malloc here). */
static double *scratch(size_t n, size_t *cap)
{
    double *p = wki_alloc((n ? n : 1) * sizeof(double), cap);
    if (!p) wk_set_error("norm: out of memory for %zu scratch values", n);
    return p;
}

/* Batch norm: per-channel sums over (N, C, S) into part[nb][2][C], in blocks of nr rows
 * n (the statistics with shift sa, or with grad the backward sums of a = dy, b = x
 * around sb = mean). */
static void bn_sums(const norm_args *a, const norm_prims *p, const char *pa, const char *pb,
                    const double *sa, const double *sb, bool grad, double *part, int64_t nr,
                    int64_t nblocks)
{
    int64_t N = a->N, C = a->C, S = a->S, es = (int64_t)wk_dtype_size(a->dtype);
    int nt = wki_threads_for(N * C * S, GRAIN);
    if (S == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t nb = 0; nb < nblocks; nb++) {
            double *p0 = part + nb * 2 * C, *p1 = p0 + C;
            memset(p0, 0, (size_t)(2 * C) * sizeof *p0);
            int64_t n1 = (nb + 1) * nr < N ? (nb + 1) * nr : N;
            for (int64_t n = nb * nr; n < n1; n++)
                p->row1_sums(pa + n * C * es, pb ? pb + n * C * es : NULL, C, sa, sb, grad, p0,
                             p1);
        }
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t t = 0; t < nblocks * C; t++) {
        int64_t nb = t / C, c = t % C, n1 = (nb + 1) * nr < N ? (nb + 1) * nr : N;
        double r0 = 0, r1 = 0;
        for (int64_t n = nb * nr; n < n1; n++) {
            int64_t o = (n * C + c) * S * es;
            double s0, s1;
            p->seg_sums(pa + o, pb ? pb + o : NULL, S, sa ? sa[c] : 0, sb ? sb[c] : 0, grad,
                        &s0, &s1);
            r0 += s0;
            r1 += s1;
        }
        part[nb * 2 * C + c] = r0;
        part[nb * 2 * C + C + c] = r1;
    }
}

static void bn_blocks(const norm_args *a, int64_t *nr, int64_t *nblocks)
{
    int64_t per_row = a->S == 1 ? a->C : a->S;
    *nr = per_row >= BLOCK ? 1 : BLOCK / (per_row ? per_row : 1);
    *nblocks = (a->N + *nr - 1) / *nr;
}

/* Element c of a 1-d float tensor of any stride, and its update. */
static double vec_get(const wk_tensor *t, int64_t c)
{
    const char *p = (const char *)wk_data(t) + c * t->strides[0] * (int64_t)wk_dtype_size(t->dtype);
    return t->dtype == WK_DTYPE_F32 ? (double)*(const float *)p : *(const double *)p;
}

static void vec_set(wk_tensor *t, int64_t c, double v)
{
    char *p = (char *)wk_data(t) + c * t->strides[0] * (int64_t)wk_dtype_size(t->dtype);
    if (t->dtype == WK_DTYPE_F32) *(float *)p = (float)v;
    else *(double *)p = v;
}

/* Per-channel (double) weight and bias values: 1 and 0 when absent. */
static double wval(wk_dtype dt, const char *w, int64_t c, double dflt)
{
    if (!w) return dflt;
    return dt == WK_DTYPE_F32 ? (double)((const float *)w)[c] : ((const double *)w)[c];
}

static void wstore(wk_dtype dt, char *w, int64_t c, double v)
{
    if (dt == WK_DTYPE_F32) ((float *)w)[c] = (float)v;
    else ((double *)w)[c] = v;
}

/* y = x * A[c] + B[c] over (N, C, S). */
static void bn_apply(const norm_args *a, const norm_prims *p, const double *A, const double *B)
{
    int64_t N = a->N, C = a->C, S = a->S, es = (int64_t)wk_dtype_size(a->dtype);
    int nt = wki_threads_for(N * C * S, GRAIN);
    if (S == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t n = 0; n < N; n++)
            p->row1_affine(a->x + n * C * es, a->y + n * C * es, C, A, B);
        return;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t r = 0; r < N * C; r++)
        p->affine(a->x + r * S * es, a->y + r * S * es, S, A[r % C], B[r % C]);
}

static bool cpu_batch_norm_forward(const norm_args *a)
{
    const norm_prims *p = prims_for(a->dtype);
    int64_t C = a->C, M = a->N * a->S;
    size_t cap_ab, cap_part = 0;
    double *A = scratch((size_t)(2 * C), &cap_ab), *B = A ? A + C : NULL, *part = NULL;
    if (!A) return false;
    if (a->training) {
        int64_t nr, nblocks;
        bn_blocks(a, &nr, &nblocks);
        part = scratch((size_t)(nblocks * 2 * C), &cap_part);
        if (!part) {
            wki_dealloc(A, cap_ab);
            return false;
        }
        /* Shifting by each channel's first value keeps the one-pass variance accurate
         * when |mean| >> std. */
        for (int64_t c = 0; c < C; c++) A[c] = wval(a->dtype, a->x, c * a->S, 0);
        bn_sums(a, p, a->x, NULL, A, NULL, false, part, nr, nblocks);
        for (int64_t c = 0; c < C; c++) {
            double s0 = 0, s1 = 0;
            for (int64_t nb = 0; nb < nblocks; nb++) {
                s0 += part[nb * 2 * C + c];
                s1 += part[nb * 2 * C + C + c];
            }
            double var = (s1 - s0 * s0 / (double)M) / (double)M;
            if (var < 0) var = 0;
            a->mean[c] = A[c] + s0 / (double)M;
            a->rstd[c] = 1.0 / sqrt(var + a->eps);
            if (a->run_mean) {
                double mo = a->momentum, unb = var * (double)M / (double)(M - 1);
                vec_set(a->run_mean, c, (1 - mo) * vec_get(a->run_mean, c) + mo * a->mean[c]);
                vec_set(a->run_var, c, (1 - mo) * vec_get(a->run_var, c) + mo * unb);
            }
        }
        wki_dealloc(part, cap_part);
    } else {
        for (int64_t c = 0; c < C; c++) {
            a->mean[c] = vec_get(a->run_mean, c);
            a->rstd[c] = 1.0 / sqrt(vec_get(a->run_var, c) + a->eps);
        }
    }
    for (int64_t c = 0; c < C; c++) {
        A[c] = a->rstd[c] * wval(a->dtype, a->w, c, 1);
        B[c] = wval(a->dtype, a->b, c, 0) - a->mean[c] * A[c];
    }
    bn_apply(a, p, A, B);
    wki_dealloc(A, cap_ab);
    return true;
}

static bool cpu_batch_norm_backward(const norm_args *a)
{
    const norm_prims *p = prims_for(a->dtype);
    int64_t N = a->N, C = a->C, S = a->S, M = N * S, es = (int64_t)wk_dtype_size(a->dtype);
    bool sums = (a->dx && a->training) || a->dw || a->db;
    size_t cap_k, cap_part = 0;
    double *k = scratch((size_t)(4 * C), &cap_k);
    if (!k) return false;
    double *k1 = k, *k2 = k + C, *k3 = k + 2 * C, *sd = k + 3 * C;
    if (sums) {
        int64_t nr, nblocks;
        bn_blocks(a, &nr, &nblocks);
        double *part = scratch((size_t)(nblocks * 2 * C), &cap_part);
        if (!part) {
            wki_dealloc(k, cap_k);
            return false;
        }
        bn_sums(a, p, a->dy, a->x, NULL, a->mean, true, part, nr, nblocks);
        for (int64_t c = 0; c < C; c++) {
            double s0 = 0, s1 = 0;
            for (int64_t nb = 0; nb < nblocks; nb++) {
                s0 += part[nb * 2 * C + c];
                s1 += part[nb * 2 * C + C + c];
            }
            sd[c] = s0;
            k2[c] = s1; /* sum dy * (x - mean) until the coefficients below */
        }
        wki_dealloc(part, cap_part);
        for (int64_t c = 0; c < C; c++) {
            if (a->dw) wstore(a->dtype, a->dw, c, k2[c] * a->rstd[c]);
            if (a->db) wstore(a->dtype, a->db, c, sd[c]);
        }
    }
    if (!a->dx) {
        wki_dealloc(k, cap_k);
        return true;
    }
    /* training: dx = rstd*w * (dy - mean(dy) - (x - mean) * rstd^2 * mean(dy * (x-mean)));
     * evaluation: the statistics are constants, dx = rstd*w * dy. */
    for (int64_t c = 0; c < C; c++) {
        double r = a->rstd[c], w = wval(a->dtype, a->w, c, 1);
        k1[c] = r * w;
        if (a->training) {
            k2[c] = -w * r * r * r * k2[c] / (double)M;
            k3[c] = -k1[c] * sd[c] / (double)M;
        } else {
            k2[c] = 0;
            k3[c] = 0;
        }
    }
    int nt = wki_threads_for(N * C * S, GRAIN);
    if (S == 1) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t n = 0; n < N; n++)
            p->row1_bn_dx(a->dy + n * C * es, a->x + n * C * es, a->dx + n * C * es, C, k1,
                          a->mean, k2, k3);
    } else {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int64_t r = 0; r < N * C; r++) {
            int64_t c = r % C;
            p->bn_dx(a->dy + r * S * es, a->x + r * S * es, a->dx + r * S * es, S, k1[c],
                     a->mean[c], k2[c], k3[c]);
        }
    }
    wki_dealloc(k, cap_k);
    return true;
}

/* Layer and group norm: rows (n, g) of L = cpg * S contiguous values. */
static bool cpu_rows_forward(const norm_args *a)
{
    const norm_prims *p = prims_for(a->dtype);
    int64_t G = a->G, cpg = a->C / G, S = a->S, L = cpg * S, R = a->N * G;
    int64_t es = (int64_t)wk_dtype_size(a->dtype);
#pragma omp parallel for num_threads(wki_threads_for(R * L, GRAIN)) schedule(static)
    for (int64_t r = 0; r < R; r++) {
        int64_t c0 = (r % G) * cpg;
        p->row_fwd(a->x + r * L * es, a->y + r * L * es, cpg, S, a->w ? a->w + c0 * es : NULL,
                   a->b ? a->b + c0 * es : NULL, a->eps, a->mean + r, a->rstd + r);
    }
    return true;
}

static bool cpu_rows_backward(const norm_args *a)
{
    const norm_prims *p = prims_for(a->dtype);
    int64_t N = a->N, C = a->C, G = a->G, cpg = C / G, S = a->S, L = cpg * S;
    int64_t es = (int64_t)wk_dtype_size(a->dtype);
    bool params = a->dw || a->db;
    int64_t per_n = C * S, nr = per_n >= BLOCK ? 1 : BLOCK / (per_n ? per_n : 1);
    int64_t nblocks = (N + nr - 1) / nr;
    size_t cap = 0, tcap = 0;
    double *part = NULL;
    char *tpart = NULL; /* per block: dw/db of up to SUB_ROWS rows in the input's dtype */
    if (params) {
        part = scratch((size_t)(nblocks * 2 * C), &cap);
        tpart = part ? wki_alloc((size_t)(nblocks * 2 * C * es), &tcap) : NULL;
        if (!tpart) {
            if (part) wki_dealloc(part, cap);
            return false;
        }
    }
#pragma omp parallel for num_threads(wki_threads_for(N * C * S, GRAIN)) schedule(static)
    for (int64_t nb = 0; nb < nblocks; nb++) {
        double *pw = part ? part + nb * 2 * C : NULL;
        char *tw = tpart ? tpart + nb * 2 * C * es : NULL, *tb = tw ? tw + C * es : NULL;
        if (part) {
            memset(pw, 0, (size_t)(2 * C) * sizeof *pw);
            memset(tw, 0, (size_t)(2 * C * es));
        }
        int64_t n0 = nb * nr, n1 = (nb + 1) * nr < N ? (nb + 1) * nr : N;
        for (int64_t n = n0; n < n1; n++) {
            for (int64_t g = 0; g < G; g++) {
                int64_t r = n * G + g, c0 = g * cpg, o = r * L * es;
                p->row_bwd(a->x + o, a->dy + o, a->dx ? a->dx + o : NULL, cpg, S,
                           a->w ? a->w + c0 * es : NULL, a->mean[r], a->rstd[r],
                           tw ? tw + c0 * es : NULL, tb ? tb + c0 * es : NULL);
            }
            if (tw && ((n - n0) % SUB_ROWS == SUB_ROWS - 1 || n == n1 - 1))
                p->flush(tw, pw, 2 * C); /* tw and tb are adjacent, as pw and pb */
        }
    }
    if (params) {
        for (int64_t c = 0; c < C; c++) {
            double sw = 0, sb = 0;
            for (int64_t nb = 0; nb < nblocks; nb++) {
                sw += part[nb * 2 * C + c];
                sb += part[nb * 2 * C + C + c];
            }
            if (a->dw) wstore(a->dtype, a->dw, c, sw);
            if (a->db) wstore(a->dtype, a->db, c, sb);
        }
        wki_dealloc(part, cap);
        wki_dealloc(tpart, tcap);
    }
    return true;
}

static bool cpu_norm_forward(const norm_args *a)
{
    return a->op == NORM_BATCH ? cpu_batch_norm_forward(a) : cpu_rows_forward(a);
}

static bool cpu_norm_backward(const norm_args *a)
{
    return a->op == NORM_BATCH ? cpu_batch_norm_backward(a) : cpu_rows_backward(a);
}

static const struct {
    norm_kernel forward, backward;
} norm_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_norm_forward, cpu_norm_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL},
};

/* ---- front-end ---- */

/* A contiguous handle on t (a new handle, or a copy), never recorded by autograd. */
static wk_tensor *dense(wk_tensor *t)
{
    if (!t) return NULL;
    wk_no_grad_begin();
    wk_tensor *c = wk_contiguous(t);
    wk_no_grad_end();
    return c;
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

/* weight/bias/running statistics: on x's device, float, of the expected shape, and of
 * x's dtype when same_dtype. */
static bool check_param(const char *op, const char *what, const wk_tensor *x,
                        const wk_tensor *t, const int64_t *shape, int nd, bool same_dtype)
{
    if (!t) return true;
    if (!wki_same_device(op, x, t) || !check_float(op, what, t)) return false;
    if (same_dtype && t->dtype != x->dtype) {
        wk_set_error("%s: %s has dtype %s but the input is %s; expected the same dtype", op,
                     what, wk_dtype_name(t->dtype), wk_dtype_name(x->dtype));
        return false;
    }
    bool ok = t->ndim == nd;
    for (int i = 0; ok && i < nd; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        wk_set_error("%s: %s has shape %s; expected %s for an input of shape %s", op, what,
                     wki_shape_s(t), wki_dims_s(shape, nd), wki_shape_s(x));
        return false;
    }
    return true;
}

/* The saved state of a norm node: saved[0] = contiguous x, [1] = mean, [2] = rstd (double);
 * i[] = op, N, C, S, G, training. Inputs: x, weight, bias. */
static int norm_backward(wki_node *nd, wk_tensor *grad_out, wk_tensor **grads)
{
    norm_op op = (norm_op)nd->i[0];
    wk_tensor *x = nd->inputs[0], *w = nd->inputs[1];
    wk_tensor *xc = nd->saved[0], *mean = nd->saved[1], *rstd = nd->saved[2];
    const char *name = norm_info[op].name;
    if (!xc || !mean || !rstd) {
        wk_set_error("%s backward: saved tensors were released", name);
        return -1;
    }
    wk_tensor *dy = dense(grad_out), *wc = dense(w);
    if (!dy || (w && !wc)) return -1;
    norm_args a = {.op = op, .dtype = x->dtype, .N = nd->i[1], .C = nd->i[2], .S = nd->i[3],
                   .G = nd->i[4], .training = nd->i[5] != 0, .x = wk_data(xc),
                   .w = wc ? wk_data(wc) : NULL, .mean = wk_data(mean), .rstd = wk_data(rstd),
                   .dy = wk_data(dy)};
    for (int k = 0; k < 3; k++) {
        if (!wki_node_input_needs_grad(nd, k)) continue;
        const wk_tensor *in = nd->inputs[k];
        grads[k] = wki_empty_on(k ? in->shape : x->shape, k ? in->ndim : x->ndim, x->dtype,
                                x->device);
        if (!grads[k]) return -1;
    }
    a.dx = grads[0] ? wk_data(grads[0]) : NULL;
    a.dw = grads[1] ? wk_data(grads[1]) : NULL;
    a.db = grads[2] ? wk_data(grads[2]) : NULL;
    bool ok = norm_kernels[x->device.type].backward(&a);
    wk_tensor_free(dy);
    wk_tensor_free(wc);
    return ok ? 0 : -1;
}

typedef struct {
    wk_tensor *run_mean, *run_var;
    bool training;
    double momentum, eps;
    int64_t groups;
    const int64_t *nshape;
    int nnd;
} norm_opts;

/* Validate, view x as (N, C, S) and fill the geometry of `a`. */
static bool norm_check(norm_op op, const wk_tensor *x, const wk_tensor *w, const wk_tensor *b,
                       const norm_opts *o, norm_args *a)
{
    const char *name = norm_info[op].name;
    if (!check_float(name, "input", x)) return false;
    a->op = op;
    a->dtype = x->dtype;
    a->eps = o->eps;
    a->training = o->training;
    a->momentum = o->momentum;
    a->G = 1;
    a->S = 1;
    if (op == NORM_LAYER) {
        int nd = o->nnd;
        bool ok = nd >= 1 && nd <= x->ndim && o->nshape;
        for (int i = 0; ok && i < nd; i++) ok = x->shape[x->ndim - nd + i] == o->nshape[i];
        if (!ok) {
            if (nd < 1 || nd > WK_MAX_DIMS || !o->nshape)
                wk_set_error("%s: normalized_shape needs 1..%d dims, got %d", name,
                             WK_MAX_DIMS, nd);
            else
                wk_set_error("%s: normalized_shape is %s; expected an input of shape "
                             "[*, %s, got %s",
                             name, wki_dims_s(o->nshape, nd),
                             wki_dims_s(o->nshape, nd) + 1, wki_shape_s(x));
            return false;
        }
        a->C = wki_shape_numel(o->nshape, nd);
        a->N = a->C ? wk_numel(x) / a->C : wki_shape_numel(x->shape, x->ndim - nd);
        return check_param(name, "weight", x, w, o->nshape, nd, true) &&
               check_param(name, "bias", x, b, o->nshape, nd, true);
    }
    if (x->ndim < 2) {
        wk_set_error("%s: expected an input of shape (N, C, *) with at least 2 dims, got %s",
                     name, wki_shape_s(x));
        return false;
    }
    a->N = x->shape[0];
    a->C = x->shape[1];
    a->S = wki_shape_numel(x->shape + 2, x->ndim - 2);
    int64_t cshape[1] = {a->C};
    if (!check_param(name, "weight", x, w, cshape, 1, true) ||
        !check_param(name, "bias", x, b, cshape, 1, true))
        return false;
    if (op == NORM_GROUP) {
        if (o->groups <= 0 || a->C % o->groups) {
            wk_set_error("%s: expected the number of channels to be divisible by num_groups, "
                         "got an input of shape %s and num_groups=%lld",
                         name, wki_shape_s(x), (long long)o->groups);
            return false;
        }
        a->G = o->groups;
        return true;
    }
    /* batch norm */
    if (!o->run_mean != !o->run_var) {
        wk_set_error("%s: running_mean and running_var must be given together (got only %s)",
                     name, o->run_mean ? "running_mean" : "running_var");
        return false;
    }
    if (!check_param(name, "running_mean", x, o->run_mean, cshape, 1, false) ||
        !check_param(name, "running_var", x, o->run_var, cshape, 1, false))
        return false;
    if (!o->training && !o->run_mean) {
        wk_set_error("%s: evaluation mode (training=false) needs running_mean and "
                     "running_var; pass them or use training=true",
                     name);
        return false;
    }
    if (o->training && a->N * a->S <= 1) {
        wk_set_error("%s: expected more than 1 value per channel when training, got an "
                     "input of shape %s",
                     name, wki_shape_s(x));
        return false;
    }
    a->run_mean = o->run_mean;
    a->run_var = o->run_var;
    return true;
}

/* The family front-end: every norm op goes through here. */
static wk_tensor *norm_forward(norm_op op, wk_tensor *x, wk_tensor *w, wk_tensor *b,
                               const norm_opts *o)
{
    const char *name = norm_info[op].name;
    WKI_PROF_OP(name, x, w, b);
    if (!WKI_CHECK(name, x)) return NULL;
    norm_kernel kernel = norm_kernels[x->device.type].forward;
    if (!kernel) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", name, wk_device_str(x->device, d, sizeof d));
        return NULL;
    }
    norm_args a = {0};
    if (!norm_check(op, x, w, b, o, &a)) return NULL;
    int64_t nstat = op == NORM_BATCH ? a.C : a.N * a.G;
    wk_tensor *xc = dense(x), *wc = dense(w), *bc = dense(b);
    wk_tensor *y = wki_empty_on(x->shape, x->ndim, x->dtype, x->device);
    wk_tensor *mean = wki_empty_on(&nstat, 1, WK_DTYPE_F64, x->device);
    wk_tensor *rstd = wki_empty_on(&nstat, 1, WK_DTYPE_F64, x->device);
    bool ok = xc && (!w || wc) && (!b || bc) && y && mean && rstd;
    if (ok) {
        a.x = wk_data(xc);
        a.w = wc ? wk_data(wc) : NULL;
        a.b = bc ? wk_data(bc) : NULL;
        a.y = wk_data(y);
        a.mean = wk_data(mean);
        a.rstd = wk_data(rstd);
        ok = kernel(&a);
    }
    wk_tensor_free(wc);
    wk_tensor_free(bc);
    if (ok && wki_grad_needed(3, (const wk_tensor *[]){x, w, b})) {
        wki_node *nd = wki_node_new(y, name, norm_backward, 3, (wk_tensor *[]){x, w, b});
        if (!nd) {
            ok = false;
        } else {
            wki_node_save(nd, 0, xc);
            wki_node_save(nd, 1, mean);
            wki_node_save(nd, 2, rstd);
            int64_t geo[] = {op, a.N, a.C, a.S, a.G, a.training};
            memcpy(nd->i, geo, sizeof geo);
        }
    }
    wk_tensor_free(xc);
    wk_tensor_free(mean);
    wk_tensor_free(rstd);
    if (!ok) {
        wk_tensor_free(y);
        return NULL;
    }
    return y;
}

wk_tensor *wk_batch_norm(wk_tensor *x, wk_tensor *running_mean, wk_tensor *running_var,
                         wk_tensor *weight, wk_tensor *bias, bool training, double momentum,
                         double eps)
{
    norm_opts o = {.run_mean = running_mean, .run_var = running_var, .training = training,
                   .momentum = momentum, .eps = eps};
    return norm_forward(NORM_BATCH, x, weight, bias, &o);
}

wk_tensor *wk_layer_norm(wk_tensor *x, const int64_t *normalized_shape, int nd,
                         wk_tensor *weight, wk_tensor *bias, double eps)
{
    norm_opts o = {.eps = eps, .nshape = normalized_shape, .nnd = nd};
    return norm_forward(NORM_LAYER, x, weight, bias, &o);
}

wk_tensor *wk_group_norm(wk_tensor *x, int64_t groups, wk_tensor *weight, wk_tensor *bias,
                         double eps)
{
    norm_opts o = {.eps = eps, .groups = groups};
    return norm_forward(NORM_GROUP, x, weight, bias, &o);
}

/* ---- modules ---- */

typedef struct {
    int64_t num_features;
    int input_dims; /* 1: BatchNorm1d ((N, C) or (N, C, L)); 2: BatchNorm2d (N, C, H, W) */
    double eps, momentum;
} batch_norm_cfg;

static wk_tensor *batch_norm_module_forward(wk_module *m, wk_tensor *x)
{
    const batch_norm_cfg *c = m->config;
    bool two = c->input_dims == 2;
    if (two ? x->ndim != 4 : (x->ndim != 2 && x->ndim != 3)) {
        wk_set_error("%s: expected %s input, got shape %s", m->type,
                     two ? "4-d (N, C, H, W)" : "2-d (N, C) or 3-d (N, C, L)", wki_shape_s(x));
        return NULL;
    }
    wk_tensor *rm = wk_module_buffer(m, "running_mean");
    wk_tensor *rv = wk_module_buffer(m, "running_var");
    wk_tensor *nbt = wk_module_buffer(m, "num_batches_tracked");
    int64_t *count = nbt ? wk_data(nbt) : NULL;
    double momentum = c->momentum;
    if (momentum < 0) /* torch's momentum=None: a cumulative average */
        momentum = m->training && count ? 1.0 / (double)(*count + 1) : 0;
    /* As torch: batch statistics in training, and in evaluation too when no running
     * statistics are tracked. */
    wk_tensor *y = wk_batch_norm(x, rm, rv, wk_module_param(m, "weight"),
                                 wk_module_param(m, "bias"), m->training || !rm, momentum,
                                 c->eps);
    if (y && m->training && count) (*count)++;
    return y;
}

static wk_module *batch_norm_new(const char *type, int dims, int64_t num_features, double eps,
                                 double momentum, bool affine, bool track)
{
    if (num_features <= 0) {
        wk_set_error("%s: num_features must be positive, got %lld", type,
                     (long long)num_features);
        return NULL;
    }
    wk_module *m = wk_module_new(type, batch_norm_module_forward, sizeof(batch_norm_cfg));
    if (!m) return NULL;
    batch_norm_cfg *c = m->config;
    *c = (batch_norm_cfg){num_features, dims, eps, momentum};
    int64_t shape[1] = {num_features};
    bool ok = true;
    if (affine)
        ok = wk_module_add_parameter(m, "weight", wk_ones(shape, 1, WK_DTYPE_F32)) &&
             wk_module_add_parameter(m, "bias", wk_zeros(shape, 1, WK_DTYPE_F32));
    if (ok && track)
        ok = wk_module_add_buffer(m, "running_mean", wk_zeros(shape, 1, WK_DTYPE_F32)) &&
             wk_module_add_buffer(m, "running_var", wk_ones(shape, 1, WK_DTYPE_F32)) &&
             wk_module_add_buffer(m, "num_batches_tracked", wk_zeros(NULL, 0, WK_DTYPE_I64));
    if (!ok) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

wk_module *wk_batch_norm1d_new(int64_t num_features, double eps, double momentum, bool affine,
                               bool track_running_stats)
{
    return batch_norm_new("BatchNorm1d", 1, num_features, eps, momentum, affine,
                          track_running_stats);
}

wk_module *wk_batch_norm2d_new(int64_t num_features, double eps, double momentum, bool affine,
                               bool track_running_stats)
{
    return batch_norm_new("BatchNorm2d", 2, num_features, eps, momentum, affine,
                          track_running_stats);
}

typedef struct {
    int64_t shape[WK_MAX_DIMS];
    int nd;
    double eps;
} layer_norm_cfg;

static wk_tensor *layer_norm_module_forward(wk_module *m, wk_tensor *x)
{
    const layer_norm_cfg *c = m->config;
    return wk_layer_norm(x, c->shape, c->nd, wk_module_param(m, "weight"),
                         wk_module_param(m, "bias"), c->eps);
}

wk_module *wk_layer_norm_new(const int64_t *normalized_shape, int nd, double eps,
                             bool elementwise_affine)
{
    if (nd < 1 || nd > WK_MAX_DIMS || !normalized_shape) {
        wk_set_error("LayerNorm: normalized_shape needs 1..%d dims, got %d", WK_MAX_DIMS, nd);
        return NULL;
    }
    for (int i = 0; i < nd; i++) {
        if (normalized_shape[i] < 0) {
            wk_set_error("LayerNorm: invalid normalized_shape %s",
                         wki_dims_s(normalized_shape, nd));
            return NULL;
        }
    }
    wk_module *m = wk_module_new("LayerNorm", layer_norm_module_forward, sizeof(layer_norm_cfg));
    if (!m) return NULL;
    layer_norm_cfg *c = m->config;
    memcpy(c->shape, normalized_shape, (size_t)nd * sizeof *c->shape);
    c->nd = nd;
    c->eps = eps;
    if (elementwise_affine &&
        (!wk_module_add_parameter(m, "weight", wk_ones(normalized_shape, nd, WK_DTYPE_F32)) ||
         !wk_module_add_parameter(m, "bias", wk_zeros(normalized_shape, nd, WK_DTYPE_F32)))) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

typedef struct {
    int64_t groups, channels;
    double eps;
} group_norm_cfg;

static wk_tensor *group_norm_module_forward(wk_module *m, wk_tensor *x)
{
    const group_norm_cfg *c = m->config;
    return wk_group_norm(x, c->groups, wk_module_param(m, "weight"), wk_module_param(m, "bias"),
                         c->eps);
}

wk_module *wk_group_norm_new(int64_t num_groups, int64_t num_channels, double eps, bool affine)
{
    if (num_groups <= 0 || num_channels <= 0 || num_channels % num_groups) {
        wk_set_error("GroupNorm: num_channels (%lld) must be a positive multiple of num_groups "
                     "(%lld)",
                     (long long)num_channels, (long long)num_groups);
        return NULL;
    }
    wk_module *m = wk_module_new("GroupNorm", group_norm_module_forward, sizeof(group_norm_cfg));
    if (!m) return NULL;
    *(group_norm_cfg *)m->config = (group_norm_cfg){num_groups, num_channels, eps};
    int64_t shape[1] = {num_channels};
    if (affine && (!wk_module_add_parameter(m, "weight", wk_ones(shape, 1, WK_DTYPE_F32)) ||
                   !wk_module_add_parameter(m, "bias", wk_zeros(shape, 1, WK_DTYPE_F32)))) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

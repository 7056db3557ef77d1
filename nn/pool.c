/* Pooling over NCHW planes: max_pool2d, avg_pool2d and adaptive_avg_pool2d with their
 * backward, and the MaxPool2d, AvgPool2d and AdaptiveAvgPool2d modules. Window bounds,
 * output sizes, tie and NaN rules and divisors follow torch's CPU kernels. Work is
 * split over planes (N*C), each done by one thread, so results never depend on the
 * thread count. */
#include <math.h>
#include <omp.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/tensor-impl.h"
#include "../tensor/profiler-impl.h"
#include "conv.h"

static const struct {
    const char *name;
    const char *module; /* layer type */
} pool_info[] = {
    [WK_POOL_MAX2D] = {"max_pool2d", "MaxPool2d"},
    [WK_POOL_AVG2D] = {"avg_pool2d", "AvgPool2d"},
    [WK_POOL_ADAPTIVE_AVG2D] = {"adaptive_avg_pool2d", "AdaptiveAvgPool2d"},
};
_Static_assert(sizeof pool_info / sizeof pool_info[0] == WK_POOL_COUNT,
               "pool_info must have one row per wk_pool_op");

const char *wk_pool_name(wk_pool_op op)
{
    return (unsigned)op < WK_POOL_COUNT ? pool_info[op].name : "?";
}

/* The sizes of one pooling: `planes` planes of (H, W) -> (OH, OW). */
typedef struct {
    wk_pool_op op;
    wk_dtype dtype;
    int64_t planes, H, W, OH, OW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    bool exclude_pad;
    int64_t divisor; /* 0 = none */
} pool_geom;

typedef struct {
    /* y (planes, OH, OW) and, for max pooling when idx is not NULL, its argmax. */
    void (*forward)(const pool_geom *g, const void *x, void *y, int64_t *idx);
    /* dx (planes, H, W) from dy (planes, OH, OW) (and max pooling's argmax idx). */
    void (*backward)(const pool_geom *g, const void *dy, const int64_t *idx, void *dx);
} pool_kernel;

#define POOL_GRAIN (1 << 15) /* window elements per thread at least */

/* ---- CPU kernels ---- */

/* Window rows [h0, h1) of output row oh for average pooling and its element count with
 * padding (torch: the window is clipped to the padded input first). */
static void avg_window(int64_t o, int64_t s, int64_t p, int64_t k, int64_t n, int64_t *a,
                       int64_t *b, int64_t *padded)
{
    int64_t lo = o * s - p, hi = lo + k < n + p ? lo + k : n + p;
    *padded = hi - lo;
    *a = lo > 0 ? lo : 0;
    *b = hi < n ? hi : n;
}

static int64_t adaptive_start(int64_t o, int64_t out, int64_t in) { return o * in / out; }
static int64_t adaptive_end(int64_t o, int64_t out, int64_t in)
{
    return ((o + 1) * in + out - 1) / out;
}

static int pool_threads(const pool_geom *g)
{
    int64_t win = g->op == WK_POOL_ADAPTIVE_AVG2D ? 1 : g->kh * g->kw;
    int64_t work = g->planes * (g->OH * g->OW * win + g->H * g->W);
    int nt = wki_threads_for(work, POOL_GRAIN);
    return nt > g->planes ? (g->planes > 0 ? (int)g->planes : 1) : nt;
}

/* One output row of 2x2, stride-2 max pooling: rows r0 = x and x + W, base = index of
 * r0[0] in the plane. Branch-free (random data defeats branch prediction): 4 floats or 2
 * doubles per step in 16-byte vectors, the even/odd columns split by shuffles, the
 * comparison masks selecting value and index; the same rule as the general loop. */
#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)
#define WKI_POOL_SHUFFLE 1
#endif
#endif
static void max2x2_row_f32(const float *x, int64_t W, int64_t base, int64_t OW, float *y,
                           int64_t *idx)
{
    const float *r0 = x, *r1 = x + W;
    int64_t ow = 0;
#ifdef WKI_POOL_SHUFFLE
    typedef float V __attribute__((vector_size(16)));
    typedef int32_t M __attribute__((vector_size(16)));
    for (; ow + 4 <= OW; ow += 4) {
        V l0, h0, l1, h1;
        memcpy(&l0, r0 + 2 * ow, 16);
        memcpy(&h0, r0 + 2 * ow + 4, 16);
        memcpy(&l1, r1 + 2 * ow, 16);
        memcpy(&h1, r1 + 2 * ow + 4, 16);
        V a = __builtin_shufflevector(l0, h0, 0, 2, 4, 6);
        V b = __builtin_shufflevector(l0, h0, 1, 3, 5, 7);
        V c = __builtin_shufflevector(l1, h1, 0, 2, 4, 6);
        V d = __builtin_shufflevector(l1, h1, 1, 3, 5, 7);
        M m = (M)a, k = (M){0, 0, 0, 0}, t;
        t = (b > (V)m) | (b != b);
        m = (t & (M)b) | (~t & m);
        k = (t & 1) | (~t & k);
        t = (c > (V)m) | (c != c);
        m = (t & (M)c) | (~t & m);
        k = (t & (int32_t)W) | (~t & k);
        t = (d > (V)m) | (d != d);
        m = (t & (M)d) | (~t & m);
        k = (t & (int32_t)(W + 1)) | (~t & k);
        memcpy(y + ow, &m, 16);
        if (idx)
            for (int l = 0; l < 4; l++) idx[ow + l] = base + 2 * (ow + l) + k[l];
    }
#endif
    for (; ow < OW; ow++) {
        float m = r0[2 * ow], v;
        int64_t k = 0;
        v = r0[2 * ow + 1];
        if (v > m || v != v) m = v, k = 1;
        v = r1[2 * ow];
        if (v > m || v != v) m = v, k = W;
        v = r1[2 * ow + 1];
        if (v > m || v != v) m = v, k = W + 1;
        y[ow] = m;
        if (idx) idx[ow] = base + 2 * ow + k;
    }
}

static void max2x2_row_f64(const double *x, int64_t W, int64_t base, int64_t OW, double *y,
                           int64_t *idx)
{
    const double *r0 = x, *r1 = x + W;
    int64_t ow = 0;
#ifdef WKI_POOL_SHUFFLE
    typedef double V __attribute__((vector_size(16)));
    typedef int64_t M __attribute__((vector_size(16)));
    for (; ow + 2 <= OW; ow += 2) {
        V l0, h0, l1, h1;
        memcpy(&l0, r0 + 2 * ow, 16);
        memcpy(&h0, r0 + 2 * ow + 2, 16);
        memcpy(&l1, r1 + 2 * ow, 16);
        memcpy(&h1, r1 + 2 * ow + 2, 16);
        V a = __builtin_shufflevector(l0, h0, 0, 2);
        V b = __builtin_shufflevector(l0, h0, 1, 3);
        V c = __builtin_shufflevector(l1, h1, 0, 2);
        V d = __builtin_shufflevector(l1, h1, 1, 3);
        M m = (M)a, k = (M){0, 0}, t;
        t = (b > (V)m) | (b != b);
        m = (t & (M)b) | (~t & m);
        k = (t & 1) | (~t & k);
        t = (c > (V)m) | (c != c);
        m = (t & (M)c) | (~t & m);
        k = (t & W) | (~t & k);
        t = (d > (V)m) | (d != d);
        m = (t & (M)d) | (~t & m);
        k = (t & (W + 1)) | (~t & k);
        memcpy(y + ow, &m, 16);
        if (idx)
            for (int l = 0; l < 2; l++) idx[ow + l] = base + 2 * (ow + l) + k[l];
    }
#endif
    for (; ow < OW; ow++) {
        double m = r0[2 * ow], v;
        int64_t k = 0;
        v = r0[2 * ow + 1];
        if (v > m || v != v) m = v, k = 1;
        v = r1[2 * ow];
        if (v > m || v != v) m = v, k = W;
        v = r1[2 * ow + 1];
        if (v > m || v != v) m = v, k = W + 1;
        y[ow] = m;
        if (idx) idx[ow] = base + 2 * ow + k;
    }
}

#define DEF_POOL(T, S)                                                                   \
    /* torch's rule: the first element of the window that is larger, or any NaN (so the \
     * last NaN wins); -inf and the first valid index when nothing beats -inf. */        \
    static void max_plane_##S(const pool_geom *g, const T *x, T *y, int64_t *idx)        \
    {                                                                                    \
        int64_t H = g->H, W = g->W;                                                      \
        if (g->kh == 2 && g->kw == 2 && g->sh == 2 && g->sw == 2 && g->ph == 0 &&        \
            g->pw == 0 && g->dh == 1 && g->dw == 1 && W < ((int64_t)1 << 30)) {          \
            for (int64_t oh = 0; oh < g->OH; oh++)                                       \
                max2x2_row_##S(x + 2 * oh * W, W, 2 * oh * W, g->OW, y + oh * g->OW,      \
                               idx ? idx + oh * g->OW : NULL);                           \
            return;                                                                      \
        }                                                                                \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                         \
            int64_t h0 = oh * g->sh - g->ph, h1 = h0 + (g->kh - 1) * g->dh + 1;          \
            if (h1 > H) h1 = H;                                                          \
            while (h0 < 0) h0 += g->dh;                                                  \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                     \
                int64_t w0 = ow * g->sw - g->pw, w1 = w0 + (g->kw - 1) * g->dw + 1;      \
                if (w1 > W) w1 = W;                                                      \
                while (w0 < 0) w0 += g->dw;                                              \
                T m = -(T)INFINITY;                                                      \
                int64_t best = h0 < h1 && w0 < w1 ? h0 * W + w0 : -1;                    \
                for (int64_t ih = h0; ih < h1; ih += g->dh)                              \
                    for (int64_t iw = w0; iw < w1; iw += g->dw) {                        \
                        T v = x[ih * W + iw];                                            \
                        if (v > m || v != v) {                                           \
                            m = v;                                                       \
                            best = ih * W + iw;                                          \
                        }                                                                \
                    }                                                                    \
                y[oh * g->OW + ow] = m;                                                  \
                if (idx) idx[oh * g->OW + ow] = best;                                    \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void avg_plane_##S(const pool_geom *g, const T *x, T *y)                      \
    {                                                                                    \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                         \
            int64_t h0, h1, ph, w0, w1, pw;                                              \
            avg_window(oh, g->sh, g->ph, g->kh, g->H, &h0, &h1, &ph);                    \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                     \
                avg_window(ow, g->sw, g->pw, g->kw, g->W, &w0, &w1, &pw);                \
                T s = 0;                                                                 \
                if (h0 >= h1 || w0 >= w1) {                                              \
                    y[oh * g->OW + ow] = 0;                                              \
                    continue;                                                            \
                }                                                                        \
                for (int64_t ih = h0; ih < h1; ih++)                                     \
                    for (int64_t iw = w0; iw < w1; iw++) s += x[ih * g->W + iw];         \
                int64_t div = g->divisor     ? g->divisor                                \
                              : g->exclude_pad ? (h1 - h0) * (w1 - w0)                   \
                                               : ph * pw;                                \
                y[oh * g->OW + ow] = s / (T)div;                                         \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void adaptive_plane_##S(const pool_geom *g, const T *x, T *y)                 \
    {                                                                                    \
        for (int64_t oh = 0; oh < g->OH; oh++) {                                         \
            int64_t h0 = adaptive_start(oh, g->OH, g->H), h1 = adaptive_end(oh, g->OH, g->H); \
            for (int64_t ow = 0; ow < g->OW; ow++) {                                     \
                int64_t w0 = adaptive_start(ow, g->OW, g->W);                            \
                int64_t w1 = adaptive_end(ow, g->OW, g->W);                              \
                T s = 0;                                                                 \
                for (int64_t ih = h0; ih < h1; ih++)                                     \
                    for (int64_t iw = w0; iw < w1; iw++) s += x[ih * g->W + iw];         \
                y[oh * g->OW + ow] = s / (T)((h1 - h0) * (w1 - w0));                     \
            }                                                                            \
        }                                                                                \
    }                                                                                    \
    static void pool_forward_##S(const pool_geom *g, const void *x_, void *y_, int64_t *idx) \
    {                                                                                    \
        const T *x = x_;                                                                 \
        T *y = y_;                                                                       \
        int64_t in = g->H * g->W, out = g->OH * g->OW;                                   \
        int nt = pool_threads(g);                                                        \
        _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")         \
        for (int64_t p = 0; p < g->planes; p++) {                                        \
            if (g->op == WK_POOL_MAX2D)                                                  \
                max_plane_##S(g, x + p * in, y + p * out, idx ? idx + p * out : NULL);   \
            else if (g->op == WK_POOL_AVG2D)                                             \
                avg_plane_##S(g, x + p * in, y + p * out);                               \
            else                                                                         \
                adaptive_plane_##S(g, x + p * in, y + p * out);                          \
        }                                                                                \
    }                                                                                    \
    static void pool_backward_##S(const pool_geom *g, const void *dy_, const int64_t *idx, \
                                  void *dx_)                                             \
    {                                                                                    \
        const T *dy = dy_;                                                               \
        T *dx = dx_;                                                                     \
        int64_t in = g->H * g->W, out = g->OH * g->OW;                                   \
        int nt = pool_threads(g);                                                        \
        _Pragma("omp parallel for num_threads(nt) if (nt > 1) schedule(static)")         \
        for (int64_t p = 0; p < g->planes; p++) {                                        \
            const T *d = dy + p * out;                                                   \
            T *o = dx + p * in;                                                          \
            for (int64_t i = 0; i < in; i++) o[i] = 0;                                   \
            if (g->op == WK_POOL_MAX2D) {                                                \
                const int64_t *ix = idx + p * out;                                       \
                for (int64_t i = 0; i < out; i++)                                        \
                    if (ix[i] >= 0 && ix[i] < in) o[ix[i]] += d[i];                      \
                continue;                                                                \
            }                                                                            \
            for (int64_t oh = 0; oh < g->OH; oh++)                                       \
                for (int64_t ow = 0; ow < g->OW; ow++) {                                 \
                    int64_t h0, h1, w0, w1, div;                                         \
                    if (g->op == WK_POOL_AVG2D) {                                        \
                        int64_t ph, pw;                                                  \
                        avg_window(oh, g->sh, g->ph, g->kh, g->H, &h0, &h1, &ph);        \
                        avg_window(ow, g->sw, g->pw, g->kw, g->W, &w0, &w1, &pw);        \
                        if (h0 >= h1 || w0 >= w1) continue;                              \
                        div = g->divisor       ? g->divisor                              \
                              : g->exclude_pad ? (h1 - h0) * (w1 - w0)                   \
                                               : ph * pw;                                \
                    } else {                                                             \
                        h0 = adaptive_start(oh, g->OH, g->H);                            \
                        h1 = adaptive_end(oh, g->OH, g->H);                              \
                        w0 = adaptive_start(ow, g->OW, g->W);                            \
                        w1 = adaptive_end(ow, g->OW, g->W);                              \
                        div = (h1 - h0) * (w1 - w0);                                     \
                    }                                                                    \
                    T v = d[oh * g->OW + ow] / (T)div;                                   \
                    for (int64_t ih = h0; ih < h1; ih++)                                 \
                        for (int64_t iw = w0; iw < w1; iw++) o[ih * g->W + iw] += v;     \
                }                                                                        \
        }                                                                                \
    }
DEF_POOL(float, f32)
DEF_POOL(double, f64)

static void cpu_pool_forward(const pool_geom *g, const void *x, void *y, int64_t *idx)
{
    if (g->dtype == WK_DTYPE_F32) pool_forward_f32(g, x, y, idx);
    else pool_forward_f64(g, x, y, idx);
}

static void cpu_pool_backward(const pool_geom *g, const void *dy, const int64_t *idx, void *dx)
{
    if (g->dtype == WK_DTYPE_F32) pool_backward_f32(g, dy, idx, dx);
    else pool_backward_f64(g, dy, idx, dx);
}

static const pool_kernel pool_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_pool_forward, cpu_pool_backward},
    [WK_DEVICE_CUDA] = {NULL, NULL},
};

/* ---- front-end ---- */

/* torch's pooling_output_shape. */
static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode)
{
    int64_t num = in + 2 * p - d * (k - 1) - 1 + (ceil_mode ? s - 1 : 0);
    int64_t o = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

/* Options with defaults filled in (stride 0 = kernel, dilation 0 = 1); false with an
 * error naming `name` when they are invalid. */
static bool resolve_opts(wk_pool_op op, const char *name, const wk_pool2d_opts *in,
                         wk_pool2d_opts *out)
{
    wk_pool2d_opts o = in ? *in : (wk_pool2d_opts){0};
    *out = o;
    if (op == WK_POOL_ADAPTIVE_AVG2D) {
        if (o.output_size[0] < 1 || o.output_size[1] < 1) {
            wk_set_error("%s: output size must be >= 1, got (%lld, %lld)", name,
                         (long long)o.output_size[0], (long long)o.output_size[1]);
            return false;
        }
        return true;
    }
    for (int k = 0; k < 2; k++) {
        if (!o.stride[k]) o.stride[k] = o.kernel[k];
        if (!o.dilation[k]) o.dilation[k] = 1;
    }
    if (o.kernel[0] < 1 || o.kernel[1] < 1) {
        wk_set_error("%s: kernel size must be >= 1, got (%lld, %lld)", name,
                     (long long)o.kernel[0], (long long)o.kernel[1]);
        return false;
    }
    if (o.stride[0] < 1 || o.stride[1] < 1) {
        wk_set_error("%s: stride must be >= 1, got (%lld, %lld)", name, (long long)o.stride[0],
                     (long long)o.stride[1]);
        return false;
    }
    if (o.dilation[0] < 1 || o.dilation[1] < 1 ||
        (op == WK_POOL_AVG2D && (o.dilation[0] != 1 || o.dilation[1] != 1))) {
        wk_set_error("%s: dilation must be %s, got (%lld, %lld)", name,
                     op == WK_POOL_AVG2D ? "1 (average pooling has none)" : ">= 1",
                     (long long)o.dilation[0], (long long)o.dilation[1]);
        return false;
    }
    if (o.padding[0] < 0 || o.padding[1] < 0 || o.padding[0] > o.kernel[0] / 2 ||
        o.padding[1] > o.kernel[1] / 2) {
        wk_set_error("%s: padding must be >= 0 and at most half the kernel size, got padding "
                     "(%lld, %lld) for kernel (%lld, %lld)",
                     name, (long long)o.padding[0], (long long)o.padding[1],
                     (long long)o.kernel[0], (long long)o.kernel[1]);
        return false;
    }
    if (op == WK_POOL_AVG2D && o.divisor_override < 0) {
        wk_set_error("%s: divisor_override must be >= 0 (0 = none), got %lld", name,
                     (long long)o.divisor_override);
        return false;
    }
    *out = o;
    return true;
}

/* The geometry of op on x with resolved options o; false with an error naming the shape. */
static bool pool_setup(wk_pool_op op, const wk_tensor *x, const wk_pool2d_opts *o,
                       pool_geom *g)
{
    const char *name = pool_info[op].name;
    if (x->ndim != 4 && x->ndim != 3) {
        wk_set_error("%s: input must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape %s", name,
                     wki_shape_s(x));
        return false;
    }
    int lead = x->ndim - 2;
    *g = (pool_geom){.op = op, .dtype = x->dtype, .planes = 1, .H = x->shape[lead],
                     .W = x->shape[lead + 1]};
    for (int i = 0; i < lead; i++) g->planes *= x->shape[i];
    if (g->H < 1 || g->W < 1) {
        wk_set_error("%s: input shape %s has an empty plane (H and W must be >= 1)", name,
                     wki_shape_s(x));
        return false;
    }
    if (op == WK_POOL_ADAPTIVE_AVG2D) {
        g->OH = o->output_size[0];
        g->OW = o->output_size[1];
        return true;
    }
    g->kh = o->kernel[0];
    g->kw = o->kernel[1];
    g->sh = o->stride[0];
    g->sw = o->stride[1];
    g->ph = o->padding[0];
    g->pw = o->padding[1];
    g->dh = o->dilation[0];
    g->dw = o->dilation[1];
    g->exclude_pad = op == WK_POOL_AVG2D && o->exclude_pad;
    g->divisor = op == WK_POOL_AVG2D ? o->divisor_override : 0;
    g->OH = out_size(g->H, g->kh, g->sh, g->ph, g->dh, o->ceil_mode);
    g->OW = out_size(g->W, g->kw, g->sw, g->pw, g->dw, o->ceil_mode);
    if (g->OH < 1 || g->OW < 1) {
        wk_set_error("%s: output size %lldx%lld is too small (input shape %s, kernel (%lld, "
                     "%lld), stride (%lld, %lld), padding (%lld, %lld), dilation (%lld, %lld))",
                     name, (long long)g->OH, (long long)g->OW, wki_shape_s(x),
                     (long long)g->kh, (long long)g->kw, (long long)g->sh, (long long)g->sw,
                     (long long)g->ph, (long long)g->pw, (long long)g->dh, (long long)g->dw);
        return false;
    }
    return true;
}

/* The geometry of a recorded node: window parameters in i[], divisor, exclude_pad and op
 * in f[], the input's shape from the node's input and the output's from the gradient. */
static void geom_from_node(const wki_node *nd, const wk_tensor *x, const wk_tensor *gy,
                           pool_geom *g)
{
    *g = (pool_geom){
        .op = (wk_pool_op)nd->f[2], .dtype = x->dtype, .planes = 1,
        .H = x->shape[x->ndim - 2], .W = x->shape[x->ndim - 1],
        .OH = gy->shape[gy->ndim - 2], .OW = gy->shape[gy->ndim - 1],
        .kh = nd->i[0], .kw = nd->i[1], .sh = nd->i[2], .sw = nd->i[3], .ph = nd->i[4],
        .pw = nd->i[5], .dh = nd->i[6], .dw = nd->i[7],
        .divisor = (int64_t)nd->f[0], .exclude_pad = nd->f[1] != 0,
    };
    for (int i = 0; i < x->ndim - 2; i++) g->planes *= x->shape[i];
}

static int pool_backward(wki_node *nd, wk_tensor *gy, wk_tensor **grads)
{
    wk_tensor *x = nd->inputs[0];
    pool_geom g;
    geom_from_node(nd, x, gy, &g);
    wk_tensor *dyc = wk_contiguous(gy);
    wk_tensor *dx = wki_empty_on(x->shape, x->ndim, x->dtype, x->device);
    if (!dyc || !dx) {
        wk_tensor_free(dyc);
        wk_tensor_free(dx);
        return -1;
    }
    const int64_t *idx = g.op == WK_POOL_MAX2D ? wk_data(nd->saved[0]) : NULL;
    pool_kernels[x->device.type].backward(&g, wk_data(dyc), idx, wk_data(dx));
    wk_tensor_free(dyc);
    grads[0] = dx;
    return 0;
}

wk_tensor *wk_pool2d(wk_pool_op op, wk_tensor *x, const wk_pool2d_opts *opts,
                     wk_tensor **indices)
{
    if (indices) *indices = NULL;
    if ((unsigned)op >= WK_POOL_COUNT) {
        wk_set_error("pool2d: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = pool_info[op].name;
    if (!WKI_CHECK(name, x)) return NULL;
    WKI_PROF_OP(name, x);
    if (indices && op != WK_POOL_MAX2D) {
        wk_set_error("%s: only max pooling returns indices (pass NULL)", name);
        return NULL;
    }
    if (x->dtype != WK_DTYPE_F32 && x->dtype != WK_DTYPE_F64) {
        if (x->dtype == WK_DTYPE_BF16 || x->dtype == WK_DTYPE_F16)
            wk_set_error("%s: %s is a storage type; convert with wk_to_dtype(t, "
                         "WK_DTYPE_F32) first",
                         name, wk_dtype_name(x->dtype));
        else
            wk_set_error("%s: dtype %s is not supported (expected float32 or float64)", name,
                         wk_dtype_name(x->dtype));
        return NULL;
    }
    const pool_kernel *k = &pool_kernels[x->device.type];
    if (!k->forward) {
        char dev[32];
        wk_set_error("%s: no kernel for device %s", name,
                     wk_device_str(x->device, dev, sizeof dev));
        return NULL;
    }
    pool_geom g;
    wk_pool2d_opts o;
    if (!resolve_opts(op, name, opts, &o) || !pool_setup(op, x, &o, &g)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    memcpy(shape, x->shape, (size_t)x->ndim * sizeof *shape);
    shape[x->ndim - 2] = g.OH;
    shape[x->ndim - 1] = g.OW;
    bool grad = wki_grad_needed(1, (const wk_tensor *[]){x});
    wk_tensor *out = wki_empty_on(shape, x->ndim, x->dtype, x->device);
    wk_tensor *idx = NULL, *xc = wk_contiguous(x);
    if (op == WK_POOL_MAX2D && (indices || grad))
        idx = wki_empty_on(shape, x->ndim, WK_DTYPE_I64, x->device);
    bool ok = out && xc && (idx || !(op == WK_POOL_MAX2D && (indices || grad)));
    if (ok) k->forward(&g, wk_data(xc), wk_data(out), idx ? wk_data(idx) : NULL);
    wk_tensor_free(xc);
    if (ok && grad) {
        wki_node *nd = wki_node_new(out, name, pool_backward, 1, (wk_tensor *[]){x});
        if (!nd) {
            ok = false;
        } else {
            int64_t par[8] = {g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw};
            memcpy(nd->i, par, sizeof par);
            nd->f[0] = (double)g.divisor;
            nd->f[1] = g.exclude_pad;
            nd->f[2] = op;
            if (idx) wki_node_save(nd, 0, idx);
        }
    }
    if (!ok) {
        wk_tensor_free(out);
        wk_tensor_free(idx);
        return NULL;
    }
    if (indices) *indices = idx;
    else wk_tensor_free(idx);
    return out;
}

wk_tensor *wk_max_pool2d(wk_tensor *x, const wk_pool2d_opts *opts, wk_tensor **indices)
{
    return wk_pool2d(WK_POOL_MAX2D, x, opts, indices);
}

wk_tensor *wk_avg_pool2d(wk_tensor *x, const wk_pool2d_opts *opts)
{
    return wk_pool2d(WK_POOL_AVG2D, x, opts, NULL);
}

wk_tensor *wk_adaptive_avg_pool2d(wk_tensor *x, int64_t out_h, int64_t out_w)
{
    return wk_pool2d(WK_POOL_ADAPTIVE_AVG2D, x,
                     &(wk_pool2d_opts){.output_size = {out_h, out_w}}, NULL);
}

/* ---- modules ---- */

typedef struct {
    wk_pool_op op;
    wk_pool2d_opts opts;
} pool_cfg;

static wk_tensor *pool_module_forward(wk_module *m, wk_tensor *x)
{
    const pool_cfg *c = m->config;
    return wk_pool2d(c->op, x, &c->opts, NULL);
}

static wk_module *pool_module_new(wk_pool_op op, const wk_pool2d_opts *opts)
{
    const char *type = pool_info[op].module;
    wk_pool2d_opts o;
    if (!resolve_opts(op, type, opts, &o)) return NULL;
    wk_module *m = wk_module_new(type, pool_module_forward, sizeof(pool_cfg));
    if (!m) return NULL;
    pool_cfg *c = m->config;
    c->op = op;
    c->opts = o;
    return m;
}

wk_module *wk_max_pool2d_new(const wk_pool2d_opts *opts)
{
    return pool_module_new(WK_POOL_MAX2D, opts);
}

wk_module *wk_avg_pool2d_new(const wk_pool2d_opts *opts)
{
    return pool_module_new(WK_POOL_AVG2D, opts);
}

wk_module *wk_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w)
{
    return pool_module_new(WK_POOL_ADAPTIVE_AVG2D,
                           &(wk_pool2d_opts){.output_size = {out_h, out_w}});
}

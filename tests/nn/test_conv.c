/* conv2d (both algorithms) against a naive double-precision loop and against PyTorch,
 * its gradients (naive loop, finite differences in float64), errors, and the Conv2d
 * module. */
#include <stdlib.h>

#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(conv, .init = tu_setup, .fini = tu_teardown);

/* ---- helpers ---- */

/* Deterministic values in [-1, 1) (multiples of 2^-23, exact in float32). */
static wk_tensor *rnd(const int64_t *shape, int ndim, wk_dtype dtype, uint32_t seed)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_F64);
    double *p = wk_data(t);
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < wk_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (double)(s >> 8) / (double)(1 << 23) - 1.0;
    }
    return dtype == WK_DTYPE_F64 ? t : wk_to_dtype(t, dtype);
}
#define RND(dtype, seed, ...) rnd(WK_SHAPE(__VA_ARGS__), dtype, seed)

/* ((i*a + b) mod m - off) / div: the inputs of the PyTorch reference cases. */
static wk_tensor *pat(const int64_t *shape, int ndim, wk_dtype dtype, int a, int b, int m,
                      int off, double div)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = (double)((i * a + b) % m - off) / div;
    return dtype == WK_DTYPE_F64 ? t : wk_to_dtype(t, dtype);
}

/* Element i (row-major) of a float tensor of any layout. */
static double at(const wk_tensor *t, int64_t i) { return tu_at(t, i); }

typedef struct {
    int64_t N, C, H, W, O, KH, KW, G, sh, sw, ph, pw, dh, dw;
} conv_case;

static int64_t out_dim(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d)
{
    return (in + 2 * p - d * (k - 1) - 1) / s + 1;
}

/* Row-major float64 copy of t's values (freed with the frame). */
static const double *f64_values(const wk_tensor *t)
{
    return t ? wk_data(wk_to_dtype((wk_tensor *)t, WK_DTYPE_F64)) : NULL;
}

/* Naive conv2d in double: y, and with gy the gradients (all row-major). mag[i] gets
 * sum |w*x| of output i, the scale of its rounding error. */
static void naive_conv(const conv_case *c, const wk_tensor *xt, const wk_tensor *wt,
                       const wk_tensor *bt, const wk_tensor *gyt, double *y, double *mag,
                       double *gx, double *gw, double *gb)
{
    const double *x = f64_values(xt), *w = f64_values(wt), *b = f64_values(bt);
    const double *gy = f64_values(gyt);
    int64_t Cg = c->C / c->G, Og = c->O / c->G;
    int64_t OH = out_dim(c->H, c->KH, c->sh, c->ph, c->dh);
    int64_t OW = out_dim(c->W, c->KW, c->sw, c->pw, c->dw);
    if (gy) {
        memset(gx, 0, (size_t)(c->N * c->C * c->H * c->W) * sizeof *gx);
        memset(gw, 0, (size_t)(c->O * Cg * c->KH * c->KW) * sizeof *gw);
        memset(gb, 0, (size_t)c->O * sizeof *gb);
    }
    for (int64_t n = 0; n < c->N; n++)
        for (int64_t o = 0; o < c->O; o++)
            for (int64_t oh = 0; oh < OH; oh++)
                for (int64_t ow = 0; ow < OW; ow++) {
                    int64_t yi = ((n * c->O + o) * OH + oh) * OW + ow;
                    double s = b ? b[o] : 0, m = fabs(s), g = gy ? gy[yi] : 0;
                    if (gy) gb[o] += g;
                    for (int64_t ci = 0; ci < Cg; ci++)
                        for (int64_t i = 0; i < c->KH; i++)
                            for (int64_t j = 0; j < c->KW; j++) {
                                int64_t ih = oh * c->sh - c->ph + i * c->dh;
                                int64_t iw = ow * c->sw - c->pw + j * c->dw;
                                if (ih < 0 || ih >= c->H || iw < 0 || iw >= c->W) continue;
                                int64_t xi =
                                    ((n * c->C + o / Og * Cg + ci) * c->H + ih) * c->W + iw;
                                int64_t wi = ((o * Cg + ci) * c->KH + i) * c->KW + j;
                                s += w[wi] * x[xi];
                                m += fabs(w[wi] * x[xi]);
                                if (gy) {
                                    gx[xi] += w[wi] * g;
                                    gw[wi] += x[xi] * g;
                                }
                            }
                    y[yi] = s;
                    if (mag) mag[yi] = m;
                }
}

/* |t[i] - ref[i]| <= tol * scale for every i, scale = max(1, max |ref|) or mag[i]. */
static void expect_close(const wk_tensor *t, const double *ref, const double *mag, int64_t n,
                         double tol, const char *what)
{
    cr_assert_not_null(t, "%s: NULL (%s)", what, wk_last_error());
    cr_assert_eq(wk_numel(t), n, "%s: %lld elements, expected %lld", what,
                 (long long)wk_numel(t), (long long)n);
    const double *v = f64_values(t);
    double scale = 1;
    for (int64_t i = 0; i < n; i++) scale = fmax(scale, fabs(ref[i]));
    for (int64_t i = 0; i < n; i++) {
        double s = mag ? fmax(mag[i], 1e-3) : scale;
        cr_assert(fabs(v[i] - ref[i]) <= tol * s, "%s[%lld] = %.9g, expected %.9g", what,
                  (long long)i, v[i], ref[i]);
    }
}

/* Forward and backward of one case with the given algorithm and dtype, against the naive
 * loop. x, w, b may be replaced by non-contiguous views via `layout` (1: x permuted from a
 * (N, H, C, W) buffer, w from a transposed buffer and b a strided slice). */
static void check_case(const conv_case *c, wk_dtype dt, wk_conv_algo algo, bool bias,
                       int layout)
{
    wk_frame_begin();
    int64_t Cg = c->C / c->G;
    wk_tensor *x, *w, *b = NULL;
    if (layout) {
        x = wk_permute(RND(dt, 1, c->N, c->H, c->C, c->W), WK_DIMS(0, 2, 1, 3));
        w = wk_transpose(RND(dt, 2, Cg, c->O, c->KH, c->KW), 0, 1);
        if (bias) b = wk_slice(RND(dt, 3, 2 * c->O), 0, 0, 2 * c->O, 2);
    } else {
        x = RND(dt, 1, c->N, c->C, c->H, c->W);
        w = RND(dt, 2, c->O, Cg, c->KH, c->KW);
        if (bias) b = RND(dt, 3, c->O);
    }
    wk_requires_grad_(x, true);
    wk_requires_grad_(w, true);
    if (b) wk_requires_grad_(b, true);
    wk_conv2d_opts o = {.stride = {c->sh, c->sw}, .padding = {c->ph, c->pw},
                        .dilation = {c->dh, c->dw}, .groups = c->G, .algo = algo};
    wk_tensor *y = wk_conv2d(x, w, b, &o);
    int64_t OH = out_dim(c->H, c->KH, c->sh, c->ph, c->dh);
    int64_t OW = out_dim(c->W, c->KW, c->sw, c->pw, c->dw);
    expect_shape(y, c->N, c->O, OH, OW);
    cr_assert_eq(y->dtype, dt);
    wk_tensor *gy = RND(dt, 4, c->N, c->O, OH, OW);
    cr_assert_eq(wk_backward_ex(y, gy, false), 0, "%s", wk_last_error());
    int64_t ny = c->N * c->O * OH * OW, nx = c->N * c->C * c->H * c->W;
    int64_t nw = c->O * Cg * c->KH * c->KW;
    double *ry = malloc((size_t)(ny + ny + nx + nw + c->O + 4) * sizeof(double));
    double *mag = ry + ny, *gx = mag + ny, *gw = gx + nx, *gb = gw + nw;
    naive_conv(c, x, w, b, gy, ry, mag, gx, gw, gb);
    double tol = dt == WK_DTYPE_F64 ? 1e-12 : 2e-5;
    expect_close(y, ry, mag, ny, tol, "y");
    expect_close(x->grad, gx, NULL, nx, tol * 8, "dx");
    expect_close(w->grad, gw, NULL, nw, tol * 8, "dw");
    if (b) expect_close(b->grad, gb, NULL, c->O, tol * 8, "db");
    free(ry);
    wk_tensor_free(x->grad);
    wk_tensor_free(w->grad);
    if (b) wk_tensor_free(b->grad);
    x->grad = w->grad = NULL;
    if (b) b->grad = NULL;
    wk_frame_end();
}

static const conv_case cases[] = {
    /* N  C  H   W   O  KH KW G  sh sw ph pw dh dw */
    {2, 1, 28, 28, 8, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* the benchmark's first layer */
    {3, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* and its second */
    {2, 4, 9, 7, 6, 3, 2, 2, 2, 1, 1, 0, 1, 2},    /* stride, dilation, groups */
    {1, 6, 10, 11, 9, 5, 3, 3, 1, 1, 2, 1, 2, 1},
    {2, 3, 5, 5, 4, 1, 1, 1, 1, 1, 0, 0, 1, 1},    /* pointwise */
    {2, 4, 8, 8, 4, 3, 3, 4, 1, 1, 1, 1, 1, 1},    /* depthwise */
    {3, 2, 6, 6, 5, 3, 3, 1, 2, 2, 1, 1, 1, 1},
    {2, 5, 7, 9, 3, 2, 2, 1, 1, 1, 0, 0, 1, 1},    /* no padding: dx needs the GEMM path */
    {2, 16, 12, 12, 8, 3, 3, 1, 1, 1, 0, 0, 1, 1},
    {1, 3, 20, 17, 7, 7, 7, 1, 1, 1, 3, 3, 1, 1},
    {2, 2, 4, 4, 3, 3, 3, 1, 1, 1, 3, 3, 1, 1},    /* padding larger than the kernel */
    {1, 80, 6, 6, 20, 3, 3, 1, 1, 1, 1, 1, 1, 1},  /* C*kh*kw above the direct limit */
    {2, 3, 6, 7, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1},   /* few input channels: GEMM dx */
    {2, 3, 7, 6, 2, 3, 3, 1, 3, 2, 2, 1, 2, 1},    /* stride 3 with dilation */
    {1, 2, 1, 9, 3, 1, 4, 1, 1, 1, 0, 2, 1, 2},    /* a single row */
};

/* ---- forward and backward against the naive loop ---- */

Test(conv, naive_all_cases_algos_dtypes)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        for (int dt = 0; dt < 2; dt++)
            for (int algo = 0; algo < 3; algo++)
                check_case(&cases[i], dt ? WK_DTYPE_F64 : WK_DTYPE_F32, (wk_conv_algo)algo,
                           (i + (size_t)algo) % 3 != 2, 0);
}

/* The direct kernels exist per instruction set; WK_CONV_ISA picks the narrower ones. */
Test(conv, every_kernel_variant)
{
    const char *isas[] = {"generic", "avx2", "avx512"};
    conv_case big = {9, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1}; /* the fused backward */
    for (int k = 0; k < 3; k++) {
        setenv("WK_CONV_ISA", isas[k], 1);
        for (int dt = 0; dt < 2; dt++) {
            wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                check_case(&cases[i], d, WK_CONV_ALGO_DIRECT, true, 0);
            check_case(&big, d, WK_CONV_ALGO_AUTO, true, 0);
        }
    }
    unsetenv("WK_CONV_ISA");
}

Test(conv, non_contiguous_inputs)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i += 2)
        for (int algo = 0; algo < 3; algo++)
            check_case(&cases[i], WK_DTYPE_F32, (wk_conv_algo)algo, true, 1);
    check_case(&cases[3], WK_DTYPE_F64, WK_CONV_ALGO_DIRECT, true, 1);
}

Test(conv, large_odd_sizes_parallel_paths)
{
    conv_case big[] = {
        {37, 3, 33, 31, 10, 3, 3, 1, 1, 1, 1, 1, 1, 1},
        {13, 6, 41, 29, 8, 5, 3, 2, 2, 1, 2, 1, 1, 2},
        {3, 24, 63, 65, 12, 3, 3, 1, 1, 1, 1, 1, 1, 1}, /* im2col in several row chunks */
    };
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
        for (int algo = 0; algo < 3; algo++)
            check_case(&big[i], WK_DTYPE_F32, (wk_conv_algo)algo, true, 0);
}

Test(conv, results_do_not_depend_on_threads)
{
    conv_case c = {21, 8, 14, 14, 16, 3, 3, 1, 1, 1, 1, 1, 1, 1};
    wk_tensor *x = RND(WK_DTYPE_F32, 5, c.N, c.C, c.H, c.W);
    wk_tensor *gy = RND(WK_DTYPE_F32, 6, c.N, c.O, c.H, c.W);
    int saved = wk_get_num_threads();
    for (int algo = 1; algo < 3; algo++) {
        wk_tensor *r[2][4];
        for (int t = 0; t < 2; t++) {
            wk_set_num_threads(t + 1);
            wk_tensor *xx = wk_requires_grad_(wk_clone(x), true);
            wk_tensor *w = wk_requires_grad_(RND(WK_DTYPE_F32, 7, c.O, c.C, 3, 3), true);
            wk_tensor *b = wk_requires_grad_(RND(WK_DTYPE_F32, 8, c.O), true);
            wk_tensor *y = wk_conv2d(xx, w, b,
                                     &(wk_conv2d_opts){.padding = {1, 1}, .algo = algo});
            cr_assert_eq(wk_backward_ex(y, gy, false), 0, "%s", wk_last_error());
            r[t][0] = y;
            r[t][1] = wk_grad_take(xx); /* released with the test's frame */
            r[t][2] = wk_grad_take(w);
            r[t][3] = wk_grad_take(b);
        }
        for (int k = 0; k < 4; k++)
            cr_assert(!memcmp(wk_data(r[0][k]), wk_data(r[1][k]),
                              (size_t)wk_numel(r[0][k]) * sizeof(float)),
                      "algo %d result %d differs between 1 and 2 threads", algo, k);
    }
    wk_set_num_threads(saved);
}

Test(conv, unbatched_and_empty)
{
    /* (C, H, W) input gives (O, OH, OW), the same values as a batch of one */
    wk_tensor *x = RND(WK_DTYPE_F64, 1, 3, 6, 5), *w = RND(WK_DTYPE_F64, 2, 4, 3, 3, 2);
    wk_tensor *b = RND(WK_DTYPE_F64, 3, 4);
    wk_conv2d_opts o = {.padding = {1, 0}};
    wk_tensor *y3 = wk_conv2d(x, w, b, &o);
    expect_shape(y3, 4, 6, 4);
    wk_tensor *y4 = wk_conv2d(wk_unsqueeze(x, 0), w, b, &o);
    for (int64_t i = 0; i < wk_numel(y3); i++) cr_assert_eq(at(y3, i), at(y4, i));
    wk_requires_grad_(x, true);
    y3 = wk_conv2d(x, w, b, &o);
    cr_assert_eq(wk_backward_ex(y3, wk_ones_like(y3), false), 0, "%s", wk_last_error());
    expect_shape(x->grad, 3, 6, 5);
    wk_tensor_free(x->grad);
    x->grad = NULL;

    /* no images: empty output, zero weight and bias gradients */
    for (int algo = 0; algo < 3; algo++) {
        wk_tensor *x0 = RND(WK_DTYPE_F32, 1, 0, 3, 5, 5);
        wk_tensor *w0 = wk_requires_grad_(RND(WK_DTYPE_F32, 2, 4, 3, 3, 3), true);
        wk_tensor *b0 = wk_requires_grad_(RND(WK_DTYPE_F32, 3, 4), true);
        wk_tensor *y0 = wk_conv2d(x0, w0, b0, &(wk_conv2d_opts){.algo = algo});
        expect_shape(y0, 0, 4, 3, 3);
        cr_assert_eq(wk_backward_ex(y0, wk_ones_like(y0), false), 0, "%s", wk_last_error());
        for (int64_t i = 0; i < wk_numel(w0); i++) cr_assert_eq(at(w0->grad, i), 0);
        for (int64_t i = 0; i < 4; i++) cr_assert_eq(at(b0->grad, i), 0);
        wk_tensor_free(w0->grad);
        wk_tensor_free(b0->grad);
        w0->grad = b0->grad = NULL;
    }

    /* no input channels: the output is the bias */
    wk_tensor *xc = RND(WK_DTYPE_F32, 1, 2, 0, 4, 4), *wc = RND(WK_DTYPE_F32, 2, 3, 0, 3, 3);
    wk_tensor *bc = tu_f32(WK_SHAPE(3), 1, -2, 0.5);
    for (int algo = 0; algo < 3; algo++) {
        wk_tensor *yc = wk_conv2d(xc, wc, bc, &(wk_conv2d_opts){.padding = {1, 1}, .algo = algo});
        expect_shape(yc, 2, 3, 4, 4);
        for (int64_t i = 0; i < wk_numel(yc); i++) cr_assert_eq(at(yc, i), at(bc, i / 16 % 3));
    }
    /* no output channels */
    wk_tensor *xo = wk_requires_grad_(RND(WK_DTYPE_F32, 1, 2, 3, 4, 4), true);
    wk_tensor *yo = wk_conv2d(xo, RND(WK_DTYPE_F32, 2, 0, 3, 3, 3), NULL,
                              &(wk_conv2d_opts){.padding = {1, 1}});
    expect_shape(yo, 2, 0, 4, 4);
    cr_assert_eq(wk_backward_ex(yo, wk_ones_like(yo), false), 0, "%s", wk_last_error());
    for (int64_t i = 0; i < wk_numel(xo); i++) cr_assert_eq(at(xo->grad, i), 0);
    wk_tensor_free(xo->grad);
    xo->grad = NULL;
}

Test(conv, no_grad_records_nothing)
{
    wk_tensor *x = wk_requires_grad_(RND(WK_DTYPE_F32, 1, 1, 2, 5, 5), true);
    wk_tensor *w = RND(WK_DTYPE_F32, 2, 3, 2, 3, 3);
    wk_tensor *y = wk_conv2d(x, w, NULL, NULL);
    cr_assert(y->requires_grad && y->grad_fn && !strcmp(y->grad_fn->op, "conv2d"));
    wk_no_grad_begin();
    y = wk_conv2d(x, w, NULL, NULL);
    wk_no_grad_end();
    cr_assert(!y->requires_grad && !y->grad_fn);
    y = wk_conv2d(wk_detach(x), w, NULL, NULL);
    cr_assert(!y->requires_grad);
}

/* ---- against PyTorch ---- */

/* Made with torch 1.13 in float64 (/usr/bin/python3):
 *   pat = lambda n, a, b, m, off, div: tensor([((i*a + b) % m - off) / div for i in range(n)])
 *   x = pat(80, 37, 11, 19, 9, 8).reshape(1, 4, 4, 5)
 *   w = pat(48, 13, 5, 11, 5, 4).reshape(4, 2, 3, 2)
 *   b = pat(4, 3, 1, 7, 3, 2)
 *   y = F.conv2d(x, w, b, stride=(2, 1), padding=(1, 1), dilation=(1, 2), groups=2)
 *   y.backward(pat(40, 5, 2, 13, 6, 4).reshape(y.shape))   # x.grad, w.grad, b.grad */
Test(conv, matches_pytorch)
{
    for (int dt = 0; dt < 2; dt++)
        for (int algo = 0; algo < 3; algo++) {
            wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
            wk_tensor *x = wk_requires_grad_(pat(WK_SHAPE(1, 4, 4, 5), d, 37, 11, 19, 9, 8), true);
            wk_tensor *w = wk_requires_grad_(pat(WK_SHAPE(4, 2, 3, 2), d, 13, 5, 11, 5, 4), true);
            wk_tensor *b = wk_requires_grad_(pat(WK_SHAPE(4), d, 3, 1, 7, 3, 2), true);
            wk_tensor *y = wk_conv2d(x, w, b,
                                     &(wk_conv2d_opts){.stride = {2, 1}, .padding = {1, 1},
                                                       .dilation = {1, 2}, .groups = 2,
                                                       .algo = algo});
            expect_shape(y, 1, 4, 2, 5);
            expect_values(y, 1e-6, -1.03125, 0.21875, 0.40625, 0.59375, -0.4375, -1.59375,
                          -7.8125, -4.84375, -2.46875, 0.46875, -0.03125, -0.3125, 0.0625,
                          0.4375, 1.09375, -0.09375, -0.46875, -2.90625, -5.9375, -2.75,
                          -2.90625, -3.5625, -3.6875, -1.4375, -1.78125, 0.59375, -1.90625,
                          -2.03125, -4.53125, -4.75, 0, -1.3125, -1.59375, -4.84375, -1.78125,
                          1.84375, 3.90625, 4.0625, 3.03125, 2.28125);
            cr_assert_eq(wk_backward_ex(y, pat(WK_SHAPE(1, 4, 2, 5), d, 5, 2, 13, 6, 4), false),
                         0, "%s", wk_last_error());
            expect_values(x->grad, 1e-6, 0.5625, 2.625, 0.625, -2.1875, 1.375, -0.375, -0.25,
                          -0.625, 0.625, -1.75, 0.625, 0.75, 1.1875, -1.625, 1.875, 0.125,
                          -0.4375, 0.75, -0.5, -0.125, 0.5625, 2.625, 0.25, -1.3125, 1, -0.5,
                          0.3125, -1.625, 2.125, -2.625, 0.5, 1.3125, 0.5625, -1, 1.375, 0,
                          0.125, 0.125, 0.125, -0.625, 0.875, -0.5, 0.6875, 0.25, 0.6875, -0.25,
                          0.9375, 1.0625, 0.375, -2.1875, 1.125, -0.25, -1.5, 0.5, -0.125,
                          -1.375, 1.25, -1.5, -1, 2.375, 0.375, 0.125, 0.125, 0.125, 0.625,
                          -1.375, -0.125, 3.9375, -0.125, -5.0625, 0.5, 0.125, -1.5, 0.125, 0.5,
                          -2, 0.25, 2.625, -0.6875, 0.25);
            expect_values(w->grad, 1e-6, -0.53125, 0.34375, -1.59375, 1.8125, -0.5, -0.84375,
                          -0.65625, 0.4375, 1, -1.09375, -0.875, -0.78125, 0.59375, 0.09375,
                          -1.71875, -2.65625, -0.5, 1.6875, 0.71875, 0.03125, 0.1875, 1.0625,
                          -0.375, 1.84375, -0.375, -1.8125, 0.46875, 1.84375, 1.5625, 1.0625,
                          -0.40625, 1.53125, 0.6875, 1.6875, 1.78125, -2.65625, 1.25, 0.0625,
                          -1.84375, -0.78125, -0.28125, -1.09375, 1.46875, 2.46875, -1.53125,
                          -0.84375, 0.03125, 1.8125);
            expect_values(b->grad, 1e-6, 0.75, -1, 0.5, -1.25);
        }
}

/* ---- gradient checks (float64 finite differences) ---- */

typedef wk_tensor *(*gc_fn)(wk_tensor *const *in, int n, void *user);

/* wk_gradcheck's method with the output weighting passed to wk_backward_ex, so that no
 * other op's backward is involved: backward of sum(w*y) against central differences of
 * it for every element of every input. Inputs may be strided leaves. */
static void gradcheck(gc_fn fn, void *user, wk_tensor *const *in, int n)
{
    const double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
    for (int k = 0; k < n; k++) {
        wk_requires_grad_(in[k], true);
        wk_tensor_free(in[k]->grad);
        in[k]->grad = NULL;
    }
    wk_frame_begin();
    wk_tensor *y = fn(in, n, user);
    cr_assert_not_null(y, "%s", wk_last_error());
    wk_tensor *w = wk_keep(RND(WK_DTYPE_F64, 99, wk_numel(y)));
    cr_assert_eq(wk_backward_ex(y, wk_view(w, y->shape, y->ndim), false), 0, "%s",
                 wk_last_error());
    wk_frame_end();
    wk_no_grad_begin();
    for (int k = 0; k < n; k++) {
        wk_tensor *x = in[k];
        double *base = (double *)x->storage->data + x->offset;
        for (int64_t j = 0; j < wk_numel(x); j++) {
            int64_t off = 0, r = j;
            for (int d = x->ndim - 1; d >= 0; d--) {
                off += r % x->shape[d] * x->strides[d];
                r /= x->shape[d];
            }
            double x0 = base[off], l[2];
            for (int s = 0; s < 2; s++) {
                wk_frame_begin();
                base[off] = x0 + (s ? -eps : eps);
                wk_tensor *yy = fn(in, n, user);
                cr_assert_not_null(yy, "%s", wk_last_error());
                l[s] = 0;
                for (int64_t i = 0; i < wk_numel(yy); i++)
                    l[s] += at(yy, i) * ((const double *)wk_data(w))[i];
                wk_frame_end();
            }
            base[off] = x0;
            double num = (l[0] - l[1]) / (2 * eps), ana = x->grad ? at(x->grad, j) : 0;
            cr_assert(fabs(ana - num) <= atol + rtol * fabs(num),
                      "input %d element %lld: backward %.10g, finite differences %.10g", k,
                      (long long)j, ana, num);
        }
        wk_tensor_free(x->grad);
        x->grad = NULL;
    }
    wk_no_grad_end();
    wk_tensor_free(w);
}

static wk_tensor *conv_fn(wk_tensor *const *in, int n, void *user)
{
    return wk_conv2d(in[0], in[1], n > 2 ? in[2] : NULL, user);
}

Test(conv, gradcheck_float64)
{
    struct {
        conv_case c;
        bool bias;
    } gc[] = {
        {{2, 4, 5, 6, 6, 3, 2, 2, 2, 1, 1, 1, 1, 2}, true}, /* stride, pad, dilation, groups */
        {{1, 3, 6, 5, 4, 3, 3, 1, 1, 1, 1, 1, 1, 1}, true},
        {{2, 2, 5, 5, 3, 2, 3, 1, 1, 2, 0, 1, 2, 1}, false},
        {{1, 4, 4, 4, 4, 3, 3, 4, 1, 1, 2, 2, 1, 1}, true}, /* depthwise, pad > (k-1)/2 */
        {{2, 3, 3, 4, 2, 1, 1, 1, 1, 1, 0, 0, 1, 1}, true}, /* pointwise */
    };
    for (size_t i = 0; i < sizeof gc / sizeof gc[0]; i++)
        for (int algo = 0; algo < 3; algo++) {
            const conv_case *c = &gc[i].c;
            wk_conv2d_opts o = {.stride = {c->sh, c->sw}, .padding = {c->ph, c->pw},
                                .dilation = {c->dh, c->dw}, .groups = c->G, .algo = algo};
            wk_tensor *in[3] = {RND(WK_DTYPE_F64, 11, c->N, c->C, c->H, c->W),
                                RND(WK_DTYPE_F64, 12, c->O, c->C / c->G, c->KH, c->KW),
                                RND(WK_DTYPE_F64, 13, c->O)};
            gradcheck(conv_fn, &o, in, gc[i].bias ? 3 : 2);
        }
    /* strided leaves: x a permuted view, w a transposed view */
    wk_tensor *in[3] = {wk_permute(RND(WK_DTYPE_F64, 14, 2, 5, 3, 4), WK_DIMS(0, 2, 1, 3)),
                        wk_transpose(RND(WK_DTYPE_F64, 15, 3, 4, 3, 3), 0, 1),
                        wk_slice(RND(WK_DTYPE_F64, 16, 8), 0, 1, 8, 2)};
    for (int algo = 0; algo < 3; algo++)
        gradcheck(conv_fn, &(wk_conv2d_opts){.padding = {1, 0}, .algo = algo}, in, 3);
}

/* A hand-computed case: 1x1 input channel, 2x2 kernel of ones, no padding. */
Test(conv, hand_computed)
{
    wk_tensor *x = wk_requires_grad_(tu_f64(WK_SHAPE(1, 1, 2, 3), 1, 2, 3, 4, 5, 6), true);
    wk_tensor *w = wk_requires_grad_(tu_f64(WK_SHAPE(1, 1, 2, 2), 1, 1, 1, 1), true);
    wk_tensor *b = wk_requires_grad_(tu_f64(WK_SHAPE(1), 0.5), true);
    wk_tensor *y = wk_conv2d(x, w, b, NULL);
    expect_values(y, 0, 12.5, 16.5);
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(1, 1, 1, 2), 1, 10), false), 0);
    expect_values(x->grad, 0, 1, 11, 10, 1, 11, 10);
    expect_values(w->grad, 0, 21, 32, 54, 65);
    expect_values(b->grad, 0, 11);
}

/* ---- errors ---- */

Test(conv, errors)
{
    wk_tensor *x = RND(WK_DTYPE_F32, 1, 2, 4, 6, 6), *w = RND(WK_DTYPE_F32, 2, 6, 2, 3, 3);
    expect_error(wk_conv2d(RND(WK_DTYPE_F32, 1, 4, 6), w, NULL, NULL),
                 "conv2d: input must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape [4, 6]");
    expect_error(wk_conv2d(x, RND(WK_DTYPE_F32, 1, 6, 4, 3), NULL, NULL),
                 "weight must be 4-d (out_channels, in_channels/groups, kh, kw), got shape "
                 "[6, 4, 3]");
    expect_error(wk_conv2d(x, w, NULL, NULL),
                 "input shape [2, 4, 6, 6] has 4 channels, but weight shape [6, 2, 3, 3] with "
                 "groups 1 expects 2 (2 per group)");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = 4}),
                 "groups 4 must divide out_channels 6 (weight shape [6, 2, 3, 3])");
    expect_error(wk_conv2d(RND(WK_DTYPE_F32, 1, 1, 5, 6, 6), RND(WK_DTYPE_F32, 2, 4, 1, 3, 3),
                           NULL, &(wk_conv2d_opts){.groups = 2}),
                 "groups 2 must divide in_channels 5 (input shape [1, 5, 6, 6])");
    wk_conv2d_opts g2 = {.groups = 2};
    cr_assert_not_null(wk_conv2d(x, w, NULL, &g2), "%s", wk_last_error());
    expect_error(wk_conv2d(x, w, RND(WK_DTYPE_F32, 3, 5), &g2),
                 "bias shape [5] does not match out_channels 6 (expected [6])");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = 2, .stride = {1, -1}}),
                 "conv2d: stride must be >= 1, got (1, -1)");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = 2, .padding = {-1, 0}}),
                 "padding must be >= 0, got (-1, 0)");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = 2, .dilation = {-2, 1}}),
                 "dilation must be >= 1, got (-2, 1)");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = -1}),
                 "groups must be >= 1, got -1");
    expect_error(wk_conv2d(x, w, NULL, &(wk_conv2d_opts){.groups = 2, .dilation = {3, 1}}),
                 "kernel 3x3 (dilated 7x3) is larger than the padded input 6x6 (input shape "
                 "[2, 4, 6, 6], padding (0, 0))");
    expect_error(wk_conv2d(x, RND(WK_DTYPE_F32, 2, 6, 2, 0, 3), NULL, &g2),
                 "kernel sizes must be >= 1, got weight shape [6, 2, 0, 3]");
    expect_error(wk_conv2d(x, RND(WK_DTYPE_F64, 2, 6, 2, 3, 3), NULL, &g2),
                 "dtypes differ: input float32, weight float64");
    expect_error(wk_conv2d(x, w, RND(WK_DTYPE_F64, 3, 6), &g2),
                 "dtypes differ: input float32, weight float32, bias float64");
    expect_error(wk_conv2d(wk_to_dtype(x, WK_DTYPE_I32), w, NULL, &g2),
                 "input dtype int32 is not supported (expected float32 or float64)");
    expect_error(wk_conv2d(wk_to_dtype(x, WK_DTYPE_BF16), w, NULL, &g2),
                 "convert with wk_to_dtype(t, WK_DTYPE_F32) first");
    expect_error(wk_conv2d(NULL, w, NULL, NULL), "conv2d: input 0 is NULL");
    expect_error(wk_conv(WK_CONV_COUNT, x, w, NULL, NULL), "conv: invalid op");
    cr_assert_str_eq(wk_conv_name(WK_CONV_CONV2D), "conv2d");
    cr_assert_str_eq(wk_conv_name(WK_CONV_COUNT), "?");
    /* a NULL input keeps the first message */
    wk_set_error("earlier failure");
    cr_assert_null(wk_conv2d(NULL, w, NULL, NULL));
    cr_assert_str_eq(wk_last_error(), "earlier failure");
}

/* ---- the Conv2d module ---- */

Test(conv, module_parameters_and_init)
{
    wk_generator g = wk_generator_make(7);
    wk_module *m = wk_conv2d_new(32, 64, 3, 3, NULL, true, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "Conv2d");
    wk_named_param np[4];
    cr_assert_eq(wk_module_named_parameters(m, true, np, 4), 2);
    cr_assert_str_eq(np[0].name, "weight");
    cr_assert_str_eq(np[1].name, "bias");
    expect_shape(np[0].tensor, 64, 32, 3, 3);
    expect_shape(np[1].tensor, 64);
    cr_assert(np[0].tensor->requires_grad && np[0].tensor->dtype == WK_DTYPE_F32);
    /* kaiming_uniform(a = sqrt 5) and the bias bound are both 1/sqrt(fan_in) */
    double bound = 1 / sqrt(32.0 * 9);
    for (int k = 0; k < 2; k++) {
        wk_tensor *t = np[k].tensor;
        double mx = 0, s2 = 0;
        for (int64_t i = 0; i < wk_numel(t); i++) {
            double v = at(t, i);
            mx = fmax(mx, fabs(v));
            s2 += v * v;
        }
        cr_assert(mx <= bound && mx > 0.9 * bound, "max |%s| %g, bound %g", np[k].name, mx,
                  bound);
        if (k == 0) { /* variance bound^2/3 within 3% over 18432 draws */
            double var = s2 / (double)wk_numel(t);
            cr_assert(fabs(var / (bound * bound / 3) - 1) < 0.03, "variance %g", var);
        }
    }
    wk_module_free(m);

    m = wk_conv2d_new(4, 6, 3, 1, &(wk_conv2d_opts){.groups = 2, .stride = {2, 1}}, false, &g);
    cr_assert_not_null(m);
    cr_assert_eq(wk_module_named_parameters(m, true, NULL, 0), 1);
    expect_shape(wk_module_param(m, "weight"), 6, 2, 3, 1);
    cr_assert_null(wk_module_param(m, "bias"));
    double b2 = 1 / sqrt(2.0 * 3);
    for (int64_t i = 0; i < 36; i++) cr_assert(fabs(at(wk_module_param(m, "weight"), i)) <= b2);
    wk_module_free(m);

    expect_error(wk_conv2d_new(4, 6, 3, 3, &(wk_conv2d_opts){.groups = 4}, true, NULL),
                 "Conv2d: groups 4 must divide in_channels 4 and out_channels 6");
    expect_error(wk_conv2d_new(0, 6, 3, 3, NULL, true, NULL), "must be >= 1");
    expect_error(wk_conv2d_new(4, 6, 3, 3, &(wk_conv2d_opts){.stride = {-1, 1}}, true, NULL),
                 "Conv2d: stride must be >= 1");
}

Test(conv, module_forward_matches_functional)
{
    wk_generator g = wk_generator_make(3);
    wk_conv2d_opts o = {.stride = {2, 1}, .padding = {1, 2}, .dilation = {1, 2}, .groups = 2};
    wk_module *m = wk_conv2d_new(4, 6, 3, 3, &o, true, &g);
    wk_tensor *x = RND(WK_DTYPE_F32, 1, 2, 4, 9, 8);
    wk_tensor *y = wk_module_forward(m, x);
    wk_tensor *r = wk_conv2d(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"), &o);
    expect_shape(y, 2, 6, 5, 8);
    for (int64_t i = 0; i < wk_numel(y); i++) cr_assert_eq(at(y, i), at(r, i));
    wk_module_free(m);
}

/* The module's parameters re-registered in float64 (replaced in place), then checked by
 * finite differences through wk_module_forward. */
static wk_tensor *module_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_module_forward(user, in[0]);
}

Test(conv, module_gradcheck_float64)
{
    wk_generator g = wk_generator_make(5);
    wk_conv2d_opts o = {.padding = {1, 1}, .groups = 2, .stride = {1, 2}};
    wk_module *m = wk_conv2d_new(4, 4, 2, 3, &o, true, &g);
    for (int i = 0; i < m->nparams; i++) {
        wk_no_grad_begin(); /* a new leaf, not a node of the old parameter */
        wk_tensor *d = wk_keep(wk_to_dtype(m->params[i].tensor, WK_DTYPE_F64));
        wk_no_grad_end();
        wk_tensor_free(m->params[i].tensor);
        m->params[i].tensor = wk_requires_grad_(d, true);
    }
    wk_tensor *in[3] = {RND(WK_DTYPE_F64, 1, 2, 4, 5, 5), wk_module_param(m, "weight"),
                        wk_module_param(m, "bias")};
    gradcheck(module_fn, m, in, 3);
    wk_module_free(m);
}

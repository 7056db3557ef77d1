/* max_pool2d, avg_pool2d and adaptive_avg_pool2d against naive loops and PyTorch, their
 * gradients, errors, and the pooling modules. */
#include <stdlib.h>

#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(pool, .init = tu_setup, .fini = tu_teardown);

/* ---- helpers ---- */

/* Deterministic values in [-1, 1), all distinct for up to 2^23 elements with high
 * probability (no ties, so argmaxes are stable under small perturbations). */
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

/* ((i*a + b) mod m - off) / div: the inputs of the PyTorch reference cases (with ties). */
static wk_tensor *pat(const int64_t *shape, int ndim, wk_dtype dtype, int a, int b, int m,
                      int off, double div)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = (double)((i * a + b) % m - off) / div;
    return dtype == WK_DTYPE_F64 ? t : wk_to_dtype(t, dtype);
}

/* Row-major float64 values of t (any layout; freed with the frame). */
static const double *vals(const wk_tensor *t)
{
    return wk_data(wk_to_dtype((wk_tensor *)t, WK_DTYPE_F64));
}

static int64_t out_size(int64_t in, int64_t k, int64_t s, int64_t p, int64_t d, bool ceil_mode)
{
    int64_t span = in + 2 * p - d * (k - 1) - 1;
    int64_t o = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
    if (ceil_mode && (o - 1) * s >= in + p) o--;
    return o;
}

typedef struct {
    int64_t planes, H, W, OH, OW;
} dims;

/* The naive references below work tap by tap over the window, in float64. */

static void naive_max(const dims *d, const wk_pool2d_opts *o, const double *x, double *y,
                      int64_t *idx)
{
    int64_t sh = o->stride[0] ? o->stride[0] : o->kernel[0];
    int64_t sw = o->stride[1] ? o->stride[1] : o->kernel[1];
    int64_t dh = o->dilation[0] ? o->dilation[0] : 1, dw = o->dilation[1] ? o->dilation[1] : 1;
    for (int64_t p = 0; p < d->planes; p++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                double m = -INFINITY;
                int64_t best = -1;
                for (int64_t i = 0; i < o->kernel[0]; i++)
                    for (int64_t j = 0; j < o->kernel[1]; j++) {
                        int64_t ih = oh * sh - o->padding[0] + i * dh;
                        int64_t iw = ow * sw - o->padding[1] + j * dw;
                        if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                        double v = x[(p * d->H + ih) * d->W + iw];
                        if (best < 0) best = ih * d->W + iw;
                        if (v > m || isnan(v)) {
                            m = v;
                            best = ih * d->W + iw;
                        }
                    }
                y[(p * d->OH + oh) * d->OW + ow] = m;
                idx[(p * d->OH + oh) * d->OW + ow] = best;
            }
}

/* Average pooling (op 1) or adaptive average pooling (op 2); with dy, also dx. */
static void naive_avg(int op, const dims *d, const wk_pool2d_opts *o, const double *x,
                      double *y, const double *dy, double *dx)
{
    int64_t kh = o->kernel[0], kw = o->kernel[1];
    int64_t sh = o->stride[0] ? o->stride[0] : kh, sw = o->stride[1] ? o->stride[1] : kw;
    if (dx) memset(dx, 0, (size_t)(d->planes * d->H * d->W) * sizeof *dx);
    for (int64_t p = 0; p < d->planes; p++)
        for (int64_t oh = 0; oh < d->OH; oh++)
            for (int64_t ow = 0; ow < d->OW; ow++) {
                int64_t h0, h1, w0, w1;
                if (op == 2) {
                    h0 = (int64_t)floor((double)(oh * d->H) / (double)d->OH);
                    h1 = (int64_t)ceil((double)((oh + 1) * d->H) / (double)d->OH);
                    w0 = (int64_t)floor((double)(ow * d->W) / (double)d->OW);
                    w1 = (int64_t)ceil((double)((ow + 1) * d->W) / (double)d->OW);
                } else {
                    h0 = oh * sh - o->padding[0];
                    w0 = ow * sw - o->padding[1];
                    h1 = h0 + kh;
                    w1 = w0 + kw;
                }
                double s = 0;
                int64_t real = 0, padded = 0;
                for (int64_t ih = h0; ih < h1; ih++)
                    for (int64_t iw = w0; iw < w1; iw++) {
                        if (ih < d->H + o->padding[0] && iw < d->W + o->padding[1]) padded++;
                        if (ih < 0 || ih >= d->H || iw < 0 || iw >= d->W) continue;
                        real++;
                        s += x[(p * d->H + ih) * d->W + iw];
                    }
                int64_t div = op == 2 ? real
                              : o->divisor_override ? o->divisor_override
                              : o->exclude_pad      ? real
                                                    : padded;
                y[(p * d->OH + oh) * d->OW + ow] = real ? s / (double)div : 0;
                if (!dx || !real) continue;
                double g = dy[(p * d->OH + oh) * d->OW + ow] / (double)div;
                for (int64_t ih = h0 > 0 ? h0 : 0; ih < h1 && ih < d->H; ih++)
                    for (int64_t iw = w0 > 0 ? w0 : 0; iw < w1 && iw < d->W; iw++)
                        dx[(p * d->H + ih) * d->W + iw] += g;
            }
}

static void expect_near(const wk_tensor *t, const double *ref, int64_t n, double tol,
                        const char *what)
{
    cr_assert_not_null(t, "%s: NULL (%s)", what, wk_last_error());
    cr_assert_eq(wk_numel(t), n, "%s: %lld elements, expected %lld", what,
                 (long long)wk_numel(t), (long long)n);
    const double *v = vals(t);
    for (int64_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isinf(ref[i])) {
            cr_assert(isnan(ref[i]) ? isnan(v[i]) : v[i] == ref[i], "%s[%lld] = %g, expected %g",
                      what, (long long)i, v[i], ref[i]);
            continue;
        }
        cr_assert(fabs(v[i] - ref[i]) <= tol * fmax(1, fabs(ref[i])),
                  "%s[%lld] = %.9g, expected %.9g", what, (long long)i, v[i], ref[i]);
    }
}

static const wk_pool2d_opts max_cases[] = {
    {.kernel = {2, 2}},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true},
    {.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0}, .dilation = {2, 1}},
    {.kernel = {3, 2}, .stride = {3, 1}, .padding = {0, 1}, .dilation = {1, 3}, .ceil_mode = true},
    {.kernel = {1, 1}},
    {.kernel = {4, 4}, .stride = {1, 1}, .padding = {2, 2}},
};

/* The input: planes x H x W, made from `layout` 0: contiguous (N, C, H, W); 1: a
 * (N, H, C, W) buffer permuted; 2: an (N, C, W, H) buffer transposed. */
static wk_tensor *make_input(wk_dtype dt, int layout, int64_t N, int64_t C, int64_t H, int64_t W,
                             uint32_t seed)
{
    if (layout == 1) return wk_permute(RND(dt, seed, N, H, C, W), WK_DIMS(0, 2, 1, 3));
    if (layout == 2) return wk_transpose(RND(dt, seed, N, C, W, H), 2, 3);
    return RND(dt, seed, N, C, H, W);
}

static void check_max(const wk_pool2d_opts *o, wk_dtype dt, int layout, int64_t N, int64_t C,
                      int64_t H, int64_t W)
{
    wk_frame_begin();
    wk_tensor *x = wk_requires_grad_(make_input(dt, layout, N, C, H, W, 1), true);
    int64_t sh = o->stride[0] ? o->stride[0] : o->kernel[0];
    int64_t sw = o->stride[1] ? o->stride[1] : o->kernel[1];
    dims d = {N * C, H, W,
              out_size(H, o->kernel[0], sh, o->padding[0], o->dilation[0] ? o->dilation[0] : 1,
                       o->ceil_mode),
              out_size(W, o->kernel[1], sw, o->padding[1], o->dilation[1] ? o->dilation[1] : 1,
                       o->ceil_mode)};
    wk_tensor *idx = NULL;
    wk_tensor *y = wk_max_pool2d(x, o, &idx);
    expect_shape(y, N, C, d.OH, d.OW);
    expect_shape(idx, N, C, d.OH, d.OW);
    cr_assert_eq(idx->dtype, WK_DTYPE_I64);
    int64_t ny = N * C * d.OH * d.OW, nx = N * C * H * W;
    double *ry = malloc((size_t)(ny + nx) * sizeof(double)), *gx = ry + ny;
    int64_t *ri = malloc((size_t)(ny ? ny : 1) * sizeof(int64_t));
    naive_max(&d, o, vals(x), ry, ri);
    expect_near(y, ry, ny, 0, "max y");
    const int64_t *iv = wk_data(idx);
    for (int64_t i = 0; i < ny; i++)
        cr_assert_eq(iv[i], ri[i], "idx[%lld] = %lld, expected %lld", (long long)i,
                     (long long)iv[i], (long long)ri[i]);
    wk_tensor *gy = RND(dt, 2, N, C, d.OH, d.OW);
    cr_assert_eq(wk_backward_ex(y, gy, false), 0, "%s", wk_last_error());
    const double *g = vals(gy);
    memset(gx, 0, (size_t)nx * sizeof *gx);
    for (int64_t i = 0; i < ny; i++) gx[i / (d.OH * d.OW) * H * W + ri[i]] += g[i];
    expect_near(x->grad, gx, nx, dt == WK_DTYPE_F64 ? 1e-15 : 1e-6, "max dx");
    wk_tensor_free(x->grad);
    x->grad = NULL;
    free(ry);
    free(ri);
    wk_frame_end();
}

/* op 1: avg_pool2d with o; op 2: adaptive to (OH, OW) = o->output_size. */
static void check_avg(int op, const wk_pool2d_opts *o, wk_dtype dt, int layout, int64_t N,
                      int64_t C, int64_t H, int64_t W)
{
    wk_frame_begin();
    wk_tensor *x = wk_requires_grad_(make_input(dt, layout, N, C, H, W, 3), true);
    dims d = {N * C, H, W, o->output_size[0], o->output_size[1]};
    if (op == 1) {
        int64_t sh = o->stride[0] ? o->stride[0] : o->kernel[0];
        int64_t sw = o->stride[1] ? o->stride[1] : o->kernel[1];
        d.OH = out_size(H, o->kernel[0], sh, o->padding[0], 1, o->ceil_mode);
        d.OW = out_size(W, o->kernel[1], sw, o->padding[1], 1, o->ceil_mode);
    }
    wk_tensor *y = op == 1 ? wk_avg_pool2d(x, o) : wk_adaptive_avg_pool2d(x, d.OH, d.OW);
    expect_shape(y, N, C, d.OH, d.OW);
    int64_t ny = N * C * d.OH * d.OW, nx = N * C * H * W;
    double *ry = malloc((size_t)(ny + nx) * sizeof(double)), *gx = ry + ny;
    wk_tensor *gy = RND(dt, 4, N, C, d.OH, d.OW);
    naive_avg(op, &d, o, vals(x), ry, vals(gy), gx);
    double tol = dt == WK_DTYPE_F64 ? 1e-14 : 1e-6;
    expect_near(y, ry, ny, tol, op == 1 ? "avg y" : "adaptive y");
    cr_assert_eq(wk_backward_ex(y, gy, false), 0, "%s", wk_last_error());
    expect_near(x->grad, gx, nx, tol, op == 1 ? "avg dx" : "adaptive dx");
    wk_tensor_free(x->grad);
    x->grad = NULL;
    free(ry);
    wk_frame_end();
}

static const wk_pool2d_opts avg_cases[] = {
    {.kernel = {2, 2}},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .exclude_pad = true},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true},
    {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true, .exclude_pad = true},
    {.kernel = {3, 2}, .stride = {2, 3}, .padding = {1, 1}, .ceil_mode = true},
    {.kernel = {2, 4}, .stride = {1, 1}, .padding = {0, 2}, .divisor_override = 5},
    {.kernel = {5, 5}, .stride = {3, 3}, .padding = {2, 2}, .ceil_mode = true, .exclude_pad = true},
};

/* ---- against the naive loops ---- */

Test(pool, max_pool_vs_naive)
{
    for (size_t i = 0; i < sizeof max_cases / sizeof max_cases[0]; i++)
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < 3; layout++)
                check_max(&max_cases[i], dt ? WK_DTYPE_F64 : WK_DTYPE_F32, layout, 2, 3, 9, 8);
    check_max(&max_cases[0], WK_DTYPE_F32, 0, 2, 3, 7, 9); /* 2x2 fast path, odd sizes */
    check_max(&max_cases[2], WK_DTYPE_F32, 0, 1, 2, 1, 1);
}

Test(pool, avg_pool_vs_naive)
{
    for (size_t i = 0; i < sizeof avg_cases / sizeof avg_cases[0]; i++)
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < 3; layout++)
                check_avg(1, &avg_cases[i], dt ? WK_DTYPE_F64 : WK_DTYPE_F32, layout, 2, 3, 9, 8);
}

Test(pool, adaptive_avg_pool_vs_naive)
{
    const int64_t sizes[][4] = {{5, 7, 3, 4}, {7, 5, 7, 5}, {10, 9, 1, 1}, {4, 4, 6, 5},
                                {13, 11, 4, 3}, {1, 6, 3, 2}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (int dt = 0; dt < 2; dt++)
            for (int layout = 0; layout < 3; layout++)
                check_avg(2, &(wk_pool2d_opts){.output_size = {sizes[i][2], sizes[i][3]}},
                          dt ? WK_DTYPE_F64 : WK_DTYPE_F32, layout, 2, 3, sizes[i][0],
                          sizes[i][1]);
}

Test(pool, large_odd_sizes_parallel_paths)
{
    check_max(&max_cases[0], WK_DTYPE_F32, 0, 37, 11, 29, 31);
    check_max(&max_cases[1], WK_DTYPE_F32, 1, 13, 17, 33, 35);
    check_avg(1, &avg_cases[4], WK_DTYPE_F32, 0, 23, 13, 31, 29);
    check_avg(2, &(wk_pool2d_opts){.output_size = {7, 5}}, WK_DTYPE_F32, 2, 19, 17, 30, 33);
}

Test(pool, unbatched_and_empty)
{
    wk_tensor *x = RND(WK_DTYPE_F32, 1, 3, 6, 5);
    wk_pool2d_opts o = {.kernel = {2, 2}, .ceil_mode = true};
    wk_tensor *y3 = wk_max_pool2d(x, &o, NULL), *y4 = wk_max_pool2d(wk_unsqueeze(x, 0), &o, NULL);
    expect_shape(y3, 3, 3, 3);
    for (int64_t i = 0; i < wk_numel(y3); i++) cr_assert_eq(tu_at(y3, i), tu_at(y4, i));
    expect_shape(wk_avg_pool2d(x, &o), 3, 3, 3);
    expect_shape(wk_adaptive_avg_pool2d(x, 2, 4), 3, 2, 4);
    wk_requires_grad_(x, true);
    wk_tensor *y = wk_avg_pool2d(x, &o);
    cr_assert_eq(wk_backward_ex(y, wk_ones_like(y), false), 0, "%s", wk_last_error());
    expect_shape(x->grad, 3, 6, 5);
    wk_tensor_free(x->grad);
    x->grad = NULL;
    /* no images */
    wk_tensor *e = wk_requires_grad_(RND(WK_DTYPE_F32, 1, 0, 3, 6, 6), true);
    wk_tensor *idx = NULL;
    wk_tensor *ye = wk_max_pool2d(e, &o, &idx);
    expect_shape(ye, 0, 3, 3, 3);
    expect_shape(idx, 0, 3, 3, 3);
    cr_assert_eq(wk_backward_ex(ye, wk_ones_like(ye), false), 0, "%s", wk_last_error());
    expect_shape(e->grad, 0, 3, 6, 6);
    wk_tensor_free(e->grad);
    e->grad = NULL;
    expect_shape(wk_adaptive_avg_pool2d(e, 2, 2), 0, 3, 2, 2);
}

/* ---- ties, NaN and infinities ---- */

Test(pool, max_ties_nan_and_inf)
{
    /* ties: the first maximum in the window (row-major) wins */
    wk_tensor *x = wk_requires_grad_(tu_f32(WK_SHAPE(1, 1, 2, 4), 1, 3, 3, 2, 3, 1, 2, 3), true);
    wk_tensor *idx = NULL;
    wk_tensor *y = wk_max_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}}, &idx);
    expect_values(y, 0, 3, 3);
    expect_values(idx, 0, 1, 2);
    /* overlapping windows: both gradients reach the shared argmax */
    wk_tensor *y2 = wk_max_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .stride = {1, 1}}, &idx);
    expect_values(idx, 0, 1, 1, 2);
    cr_assert_eq(wk_backward_ex(y2, tu_f32(WK_SHAPE(1, 1, 1, 3), 1, 10, 100), false), 0);
    expect_values(x->grad, 0, 0, 11, 100, 0, 0, 0, 0, 0);
    wk_tensor_free(x->grad);
    x->grad = NULL;
    /* NaN propagates and its (last) position is the index; -inf windows keep -inf */
    wk_tensor *n = tu_f64(WK_SHAPE(1, 2, 2), NAN, 1, 5, NAN);
    wk_tensor *yn = wk_max_pool2d(n, &(wk_pool2d_opts){.kernel = {2, 2}}, &idx);
    cr_assert(isnan(tu_at(yn, 0)));
    expect_values(idx, 0, 3);
    wk_tensor *ni = tu_f64(WK_SHAPE(1, 2, 2), -INFINITY, -INFINITY, -INFINITY, -INFINITY);
    expect_values(wk_max_pool2d(ni, &(wk_pool2d_opts){.kernel = {2, 2}}, &idx), 0, -INFINITY);
    expect_values(idx, 0, 0);
    /* ties, NaN and -inf at every position of wide rows (the vector path of the 2x2
     * kernel) and in the general loop, against the naive rule */
    const double set[] = {0, 1, 1, NAN, -INFINITY, 2};
    for (int dt = 0; dt < 2; dt++)
        for (int k = 0; k < 2; k++) {
            wk_tensor *t = wk_empty(WK_SHAPE(1, 3, 4, 22), WK_DTYPE_F64);
            double *p = wk_data(t);
            uint32_t r = 7;
            for (int64_t i = 0; i < wk_numel(t); i++) {
                r = r * 1664525u + 1013904223u;
                p[i] = set[(r >> 16) % 6];
            }
            wk_pool2d_opts o = {.kernel = {2, 2}, .stride = {2, k ? 1 : 2}};
            wk_tensor *tt = dt ? t : wk_to_dtype(t, WK_DTYPE_F32);
            wk_tensor *yy = wk_max_pool2d(tt, &o, &idx);
            dims d = {3, 4, 22, 2, k ? 21 : 11};
            double ry[3 * 2 * 21];
            int64_t ri[3 * 2 * 21];
            naive_max(&d, &o, p, ry, ri);
            expect_near(yy, ry, 3 * 2 * d.OW, 0, "max y");
            for (int64_t i = 0; i < 3 * 2 * d.OW; i++)
                cr_assert_eq(((const int64_t *)wk_data(idx))[i], ri[i], "idx[%lld]", (long long)i);
        }
    /* for the 2x2 fast path and the general loop alike */
    wk_tensor *n3 = tu_f32(WK_SHAPE(1, 2, 3), 1, NAN, 2, 3, 4, NAN);
    wk_tensor *y3 = wk_max_pool2d(n3, &(wk_pool2d_opts){.kernel = {2, 3}}, &idx);
    cr_assert(isnan(tu_at(y3, 0)));
    expect_values(idx, 0, 5);
}

/* ---- against PyTorch ----
 * Made with torch 1.13 in float64 (/usr/bin/python3):
 *   pat = lambda n, a, b, m, off, div: tensor([((i*a + b) % m - off) / div for i in range(n)])
 *   x = pat(60, 29, 7, 23, 11, 4).reshape(1, 2, 5, 6); gy = pat(24, 5, 2, 13, 6, 4)
 * and the calls named in each block; gradients from y.backward(gy.reshape(y.shape)). */

static wk_tensor *torch_x(wk_dtype dt)
{
    return wk_requires_grad_(pat(WK_SHAPE(1, 2, 5, 6), dt, 29, 7, 23, 11, 4), true);
}

static wk_tensor *torch_gy(wk_dtype dt, const wk_tensor *y)
{
    return pat(y->shape, y->ndim, dt, 5, 2, 13, 6, 4);
}

Test(pool, max_pool_matches_pytorch)
{
    for (int dt = 0; dt < 2; dt++) {
        wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *x = torch_x(d), *idx = NULL;
        /* F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, return_indices=True) */
        wk_pool2d_opts o = {
            .kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
        wk_tensor *y = wk_max_pool2d(x, &o, &idx);
        expect_shape(y, 1, 2, 3, 4);
        expect_values(y, 0, 2.25, 2, 2.5, 0.75, 2.25, 2.75, 2.5, 1.5, 2, 2, 2.25, 2.25, 2.75, 2.75,
                      2.5, -0.25, 2.75, 2.75, 2.25, 0.5, 2, 2.5, 2.25, 1.25);
        expect_values(idx, 0, 6, 2, 10, 5, 6, 14, 10, 17, 25, 25, 29, 29, 7, 7, 3, 5, 7, 7, 22, 17,
                      18, 26, 22, 29);
        cr_assert_eq(wk_backward_ex(y, torch_gy(d, y), false), 0, "%s", wk_last_error());
        expect_values(x->grad, 0, 0, 0, 0.25, 0, 0, -0.5, -0.25, 0, 0, 0, 1.5, 0, 0, 0, -1.25, 0,
                      0, 1.25, 0, 0, 0, 0, 0, 0, 0, -0.25, 0, 0, 0, -1.75, 0, 0, 0, 0.25, 0, 1.5,
                      0, 0.25, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1.25, 0, 0, 0, -0.75, 0, 0, 0, -0.75,
                      0, 0, -1.5);
        wk_tensor_free(x->grad);
        x->grad = NULL;
        /* F.max_pool2d(x, (2, 3), stride=(1, 2), padding=(1, 0), dilation=(2, 1), ...) */
        y = wk_max_pool2d(x,
                          &(wk_pool2d_opts){.kernel = {2, 3}, .stride = {1, 2}, .padding = {1, 0},
                                            .dilation = {2, 1}},
                          &idx);
        expect_shape(y, 1, 2, 5, 2);
        expect_values(y, 0, 2.25, 2.5, 2.75, 2.75, 2.25, 2.5, 2.75, 2.75, 0.25, 1.75, 2.75, 1.5,
                      1.75, 2.5, 2.75, 2.25, 2.5, 2.5, 2, 2.25);
        expect_values(idx, 0, 6, 10, 14, 14, 6, 10, 14, 14, 20, 21, 7, 10, 14, 3, 7, 22, 26, 26,
                      18, 22);
    }
}

Test(pool, avg_pools_match_pytorch)
{
    for (int dt = 0; dt < 2; dt++) {
        wk_dtype d = dt ? WK_DTYPE_F64 : WK_DTYPE_F32;
        double tol = dt ? 1e-9 : 1e-6;
        wk_tensor *x = torch_x(d);
        /* F.avg_pool2d(x, 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False) */
        wk_tensor *y = wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {3, 3}, .stride = {2, 2},
                                                          .padding = {1, 1}, .ceil_mode = true,
                                                          .exclude_pad = true});
        expect_shape(y, 1, 2, 3, 4);
        expect_values(y, tol, -0.0625, -0.2083333333, -0.08333333333, -0.5, -0.4583333333,
                      0.1944444444, 0, -0.4166666667, -0.375, -0.04166666667, 0.08333333333,
                      0.625, 0.375, 0.7083333333, -0.125, -1.5, 0.4583333333, -0.1666666667,
                      -0.3611111111, -1.416666667, 0.0625, -0.08333333333, 0.04166666667,
                      -0.375);
        cr_assert_eq(wk_backward_ex(y, torch_gy(d, y), false), 0, "%s", wk_last_error());
        expect_values(x->grad, tol, -0.25, -0.2083333333, 0.04166666667, 0.2916666667, 0.25, 0,
                      -0.125, -0.2222222222, -0.09722222222, 0.1527777778, 0.25, 0.4166666667,
                      0.125, -0.01388888889, -0.1388888889, -0.1388888889, 0, 0.4166666667,
                      -0.0625, -0.1180555556, -0.05555555556, -0.3055555556, -0.25,
                      0.04166666667, -0.1875, -0.1041666667, 0.08333333333, -0.1666666667, -0.25,
                      -0.375, 0.25, 0.08333333333, -0.1666666667, -0.125, 0.04166666667,
                      0.7916666667, 0.1666666667, 0.08333333333, -0.08333333333, -0.1805555556,
                      -0.09722222222, 0.6527777778, -0.08333333333, 0, 0.08333333333,
                      -0.05555555556, -0.1388888889, -0.1388888889, 0.2291666667, 0.1875,
                      -0.04166666667, -0.09722222222, -0.05555555556, -0.8055555556, 0.3125,
                      0.1875, -0.125, -0.04166666667, 0.08333333333, -0.6666666667);
        wk_tensor_free(x->grad);
        x->grad = NULL;
        /* F.avg_pool2d(x, (3, 2), stride=(2, 2), padding=(1, 1)) (count_include_pad=True) */
        y = wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {3, 2}, .stride = {2, 2},
                                               .padding = {1, 1}});
        expect_shape(y, 1, 2, 3, 4);
        expect_values(y, tol, 0.2083333333, 0, 0.08333333333, -0.1666666667, -0.125,
                      0.08333333333, 0.2083333333, -0.2083333333, -0.375, -0.2083333333, -0.125,
                      0.2083333333, -0.125, 0.2916666667, 0.375, -0.5, 0.3333333333,
                      0.04166666667, 0.1666666667, -0.7083333333, 0.25, 0.08333333333,
                      0.1666666667, -0.125);
        /* F.avg_pool2d(x, 2, divisor_override=3) */
        y = wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .divisor_override = 3});
        expect_shape(y, 1, 2, 2, 3);
        expect_values(y, tol, -0.08333333333, 0.08333333333, 0.25, -1, 1.083333333,
                      -0.6666666667, 0.5, 0.6666666667, -1.083333333, -0.4166666667, -0.25,
                      -0.08333333333);
        /* F.adaptive_avg_pool2d(x, (3, 4)) */
        y = wk_adaptive_avg_pool2d(x, 3, 4);
        expect_shape(y, 1, 2, 3, 4);
        expect_values(y, tol, -0.0625, 0, 0.125, 0.1875, -0.4583333333, 0.08333333333,
                      0.2083333333, -0.2083333333, -0.375, -0.3125, -0.1875, -0.125, 0.375,
                      0.4375, 0.5625, -0.8125, 0.4583333333, 0.04166666667, 0.1666666667, -0.25,
                      0.0625, 0.125, 0.25, 0.3125);
        cr_assert_eq(wk_backward_ex(y, torch_gy(d, y), false), 0, "%s", wk_last_error());
        expect_values(x->grad, tol, -0.25, -0.1875, 0.0625, 0.375, 0.25, -0.125, -0.125,
                      -0.2708333333, -0.1458333333, 0.375, 0.4583333333, 0.08333333333, 0.125,
                      -0.08333333333, -0.2083333333, 0, 0.2083333333, 0.2083333333, -0.0625,
                      -0.1458333333, -0.08333333333, -0.375, -0.2291666667, 0.1458333333,
                      -0.1875, -0.0625, 0.125, -0.375, -0.4375, -0.0625, 0.25, 0, -0.25, 0.0625,
                      0.4375, 0.375, 0.1666666667, 0.04166666667, -0.125, -0.1458333333,
                      0.2291666667, 0.375, -0.08333333333, 0.04166666667, 0.125, -0.2083333333,
                      -0.2083333333, 0, 0.2291666667, 0.1666666667, -0.0625, -0.08333333333,
                      -0.4583333333, -0.375, 0.3125, 0.125, -0.1875, 0.125, -0.25, -0.375);
        wk_tensor_free(x->grad);
        x->grad = NULL;
    }
}

/* ---- gradient checks (float64 finite differences) ---- */

typedef wk_tensor *(*gc_fn)(wk_tensor *const *in, int n, void *user);

/* wk_gradcheck's method with the output weighting passed to wk_backward_ex, so that no
 * other op's backward is involved: backward of sum(w*y) against central differences of
 * it for every element of the input (which may be a strided leaf). */
static void gradcheck(gc_fn fn, void *user, wk_tensor *x)
{
    const double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
    wk_requires_grad_(x, true);
    wk_frame_begin();
    wk_tensor *y = fn(&x, 1, user);
    cr_assert_not_null(y, "%s", wk_last_error());
    wk_tensor *w = wk_keep(RND(WK_DTYPE_F64, 99, wk_numel(y)));
    cr_assert_eq(wk_backward_ex(y, wk_view(w, y->shape, y->ndim), false), 0, "%s",
                 wk_last_error());
    wk_frame_end();
    wk_no_grad_begin();
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
            wk_tensor *yy = fn(&x, 1, user);
            cr_assert_not_null(yy, "%s", wk_last_error());
            const double *v = vals(yy);
            l[s] = 0;
            const double *wv = wk_data(w);
            for (int64_t i = 0; i < wk_numel(yy); i++) l[s] += v[i] * wv[i];
            wk_frame_end();
        }
        base[off] = x0;
        double num = (l[0] - l[1]) / (2 * eps), ana = x->grad ? tu_at(x->grad, j) : 0;
        cr_assert(fabs(ana - num) <= atol + rtol * fabs(num),
                  "element %lld: backward %.10g, finite differences %.10g", (long long)j, ana,
                  num);
    }
    wk_no_grad_end();
    wk_tensor_free(x->grad);
    x->grad = NULL;
    wk_tensor_free(w);
}

static wk_tensor *max_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_max_pool2d(in[0], user, NULL);
}

static wk_tensor *avg_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_avg_pool2d(in[0], user);
}

static wk_tensor *adaptive_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    const int64_t *s = user;
    return wk_adaptive_avg_pool2d(in[0], s[0], s[1]);
}

Test(pool, gradcheck_float64)
{
    for (size_t i = 0; i < sizeof max_cases / sizeof max_cases[0]; i++)
        gradcheck(max_fn, (void *)&max_cases[i], RND(WK_DTYPE_F64, 21, 2, 2, 7, 6));
    for (size_t i = 0; i < sizeof avg_cases / sizeof avg_cases[0]; i++)
        gradcheck(avg_fn, (void *)&avg_cases[i], RND(WK_DTYPE_F64, 22, 2, 2, 7, 6));
    const int64_t sizes[][2] = {{3, 4}, {1, 1}, {9, 5}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        gradcheck(adaptive_fn, (void *)sizes[i], RND(WK_DTYPE_F64, 23, 2, 2, 7, 6));
    /* strided leaves */
    gradcheck(max_fn, (void *)&max_cases[1], wk_transpose(RND(WK_DTYPE_F64, 24, 2, 6, 5), 1, 2));
    gradcheck(avg_fn, (void *)&avg_cases[4], wk_transpose(RND(WK_DTYPE_F64, 25, 2, 6, 5), 1, 2));
    gradcheck(adaptive_fn, (void *)sizes[0],
              wk_transpose(RND(WK_DTYPE_F64, 26, 2, 6, 5), 1, 2));
}

/* ---- errors ---- */

Test(pool, errors)
{
    wk_tensor *x = RND(WK_DTYPE_F32, 1, 2, 3, 6, 6);
    wk_pool2d_opts k2 = {.kernel = {2, 2}};
    expect_error(wk_max_pool2d(RND(WK_DTYPE_F32, 1, 6, 6), &k2, NULL),
                 "max_pool2d: input must be 4-d (N, C, H, W) or 3-d (C, H, W), got shape [6, 6]");
    expect_error(wk_max_pool2d(x, NULL, NULL), "max_pool2d: kernel size must be >= 1, got (0, 0)");
    expect_error(wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .stride = {-1, 1}}),
                 "avg_pool2d: stride must be >= 1, got (-1, 1)");
    expect_error(wk_max_pool2d(x, &(wk_pool2d_opts){.kernel = {3, 3}, .padding = {2, 1}}, NULL),
                 "padding must be >= 0 and at most half the kernel size, got padding (2, 1) for "
                 "kernel (3, 3)");
    expect_error(wk_max_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .dilation = {-1, 1}}, NULL),
                 "max_pool2d: dilation must be >= 1, got (-1, 1)");
    expect_error(wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .dilation = {2, 1}}),
                 "avg_pool2d: dilation must be 1 (average pooling has none), got (2, 1)");
    expect_error(wk_avg_pool2d(x, &(wk_pool2d_opts){.kernel = {2, 2}, .divisor_override = -2}),
                 "divisor_override must be >= 0");
    expect_error(wk_max_pool2d(x, &(wk_pool2d_opts){.kernel = {7, 2}}, NULL),
                 "max_pool2d: output size 0x3 is too small (input shape [2, 3, 6, 6], kernel (7, "
                 "2), stride (7, 2), padding (0, 0), dilation (1, 1))");
    expect_error(wk_max_pool2d(RND(WK_DTYPE_F32, 1, 2, 0, 4), &k2, NULL),
                 "input shape [2, 0, 4] has an empty plane");
    expect_error(wk_adaptive_avg_pool2d(x, 0, 3),
                 "adaptive_avg_pool2d: output size must be >= 1, got (0, 3)");
    wk_tensor *idx = (wk_tensor *)1;
    expect_error(wk_pool2d(WK_POOL_AVG2D, x, &k2, &idx), "only max pooling returns indices");
    cr_assert_null(idx);
    expect_error(wk_max_pool2d(wk_to_dtype(x, WK_DTYPE_I64), &k2, NULL),
                 "max_pool2d: dtype int64 is not supported (expected float32 or float64)");
    expect_error(wk_avg_pool2d(wk_to_dtype(x, WK_DTYPE_F16), &k2),
                 "avg_pool2d: float16 is a storage type; convert with wk_to_dtype");
    expect_error(wk_max_pool2d(NULL, &k2, NULL), "max_pool2d: input 0 is NULL");
    expect_error(wk_pool2d(WK_POOL_COUNT, x, &k2, NULL), "pool2d: invalid op");
    cr_assert_str_eq(wk_pool_name(WK_POOL_ADAPTIVE_AVG2D), "adaptive_avg_pool2d");
    cr_assert_str_eq(wk_pool_name(WK_POOL_COUNT), "?");
}

/* ---- modules ---- */

Test(pool, modules)
{
    wk_pool2d_opts o = {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true};
    wk_module *mp = wk_max_pool2d_new(&o), *ap = wk_avg_pool2d_new(&o);
    wk_module *ad = wk_adaptive_avg_pool2d_new(2, 3);
    cr_assert(mp && ap && ad, "%s", wk_last_error());
    cr_assert_str_eq(mp->type, "MaxPool2d");
    cr_assert_str_eq(ap->type, "AvgPool2d");
    cr_assert_str_eq(ad->type, "AdaptiveAvgPool2d");
    cr_assert_eq(wk_module_named_parameters(mp, true, NULL, 0), 0);
    cr_assert_eq(wk_module_named_parameters(ad, true, NULL, 0), 0);
    wk_tensor *x = RND(WK_DTYPE_F32, 1, 2, 3, 9, 8);
    wk_tensor *pairs[3][2] = {
        {wk_module_forward(mp, x), wk_max_pool2d(x, &o, NULL)},
        {wk_module_forward(ap, x), wk_avg_pool2d(x, &o)},
        {wk_module_forward(ad, x), wk_adaptive_avg_pool2d(x, 2, 3)},
    };
    for (int k = 0; k < 3; k++) {
        cr_assert(pairs[k][0] && wk_same_shape(pairs[k][0], pairs[k][1]), "%s", wk_last_error());
        for (int64_t i = 0; i < wk_numel(pairs[k][0]); i++)
            cr_assert_eq(tu_at(pairs[k][0], i), tu_at(pairs[k][1], i));
    }
    /* the options were copied */
    o.kernel[0] = 100;
    cr_assert_not_null(wk_module_forward(mp, x), "%s", wk_last_error());
    /* gradients flow through the modules */
    wk_tensor *xg = wk_requires_grad_(RND(WK_DTYPE_F64, 2, 1, 1, 4, 4), true);
    wk_tensor *y = wk_module_forward(ad, xg);
    cr_assert_eq(wk_backward_ex(y, wk_ones_like(y), false), 0, "%s", wk_last_error());
    cr_assert_not_null(xg->grad);
    wk_tensor_free(xg->grad);
    xg->grad = NULL;
    wk_module_free(mp);
    wk_module_free(ap);
    wk_module_free(ad);
    expect_error(wk_max_pool2d_new(&(wk_pool2d_opts){.kernel = {0, 2}}),
                 "MaxPool2d: kernel size must be >= 1");
    expect_error(wk_avg_pool2d_new(&(wk_pool2d_opts){.kernel = {2, 2}, .padding = {2, 0}}),
                 "AvgPool2d: padding must be >= 0 and at most half the kernel size");
    expect_error(wk_adaptive_avg_pool2d_new(3, 0), "AdaptiveAvgPool2d: output size must be >= 1");
}

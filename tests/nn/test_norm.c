/* Batch, layer and group norm and dropout: values against PyTorch, against naive
 * double-precision loops at large odd sizes, gradients by finite differences, modules
 * and error messages. */
#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(norm, .init = tu_setup, .fini = tu_teardown);

/* ---- inputs ---- */

/* The formula the PyTorch references below were made with: ((i*a + b) % 29) / 9 - 1.5. */
static double fv(int64_t i, int a, int b) { return (double)((i * a + b) % 29) / 9.0 - 1.5; }

static wk_tensor *fill(const int64_t *shape, int nd, wk_dtype dt, int a, int b)
{
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = fv(i, a, b);
    return dt == WK_DTYPE_F64 ? t : wk_to_dtype(t, dt);
}

static uint64_t rng_state;
static double urand(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Uniform values in [lo, hi) from a fixed seed. */
static wk_tensor *rand_t(const int64_t *shape, int nd, wk_dtype dt, uint64_t seed, double lo,
                         double hi)
{
    rng_state = seed;
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = lo + (hi - lo) * urand();
    return dt == WK_DTYPE_F64 ? t : wk_to_dtype(t, dt);
}

/* A non-contiguous copy of t: the same values, laid out transposed in memory. */
static wk_tensor *strided_copy(wk_tensor *t)
{
    int nd = t->ndim;
    int64_t shape[WK_MAX_DIMS];
    for (int i = 0; i < nd; i++) shape[i] = t->shape[nd - 1 - i];
    int dims[WK_MAX_DIMS];
    for (int i = 0; i < nd; i++) dims[i] = nd - 1 - i;
    wk_tensor *base = wk_empty(shape, nd, t->dtype);
    wk_tensor *v = wk_permute(base, dims, nd);
    cr_assert_not_null(wk_copy_(v, t));
    cr_assert(nd < 2 || !wk_is_contiguous(v));
    return v;
}

static void expect_same_bits(const wk_tensor *a, const wk_tensor *b, const char *what)
{
    cr_assert_not_null(a, "%s: %s", what, wk_last_error());
    cr_assert_not_null(b, "%s: %s", what, wk_last_error());
    cr_assert_eq(wk_numel(a), wk_numel(b));
    cr_assert(wk_is_contiguous(a) && wk_is_contiguous(b));
    cr_assert(!memcmp(wk_data(a), wk_data(b), (size_t)wk_numel(a) * wk_dtype_size(a->dtype)),
              "%s: results differ between thread counts", what);
}

/* Values of t equal ref (double array) within atol + rtol*|ref|. */
static void expect_near(const wk_tensor *t, const double *ref, double rtol, double atol,
                        const char *what)
{
    tu_expect_values(t, ref, wk_numel(t), rtol, atol, what);
}

/* ---- gradient checks ---- */

typedef wk_tensor *(*gc_fn)(wk_tensor *const *in, int n, void *user);

static double weighted_sum(gc_fn fn, void *user, wk_tensor *const *in, int n,
                           const wk_tensor *w)
{
    wk_frame_begin();
    wk_tensor *y = fn(in, n, user);
    cr_assert_not_null(y, "gradcheck: %s", wk_last_error());
    double s = 0;
    for (int64_t i = 0; i < wk_numel(y); i++) s += tu_at(y, i) * ((const double *)wk_data(w))[i];
    wk_frame_end();
    return s;
}

/* Central differences against backward, as wk_gradcheck (eps 1e-6, atol 1e-7, rtol 1e-5)
 * but independent of other ops' backward: the analytic side back-propagates a fixed
 * random weighting w of the output with wk_backward_ex, the numeric side sums w*y in
 * the test. Inputs may be non-contiguous float64 leaves (perturbed through strides). */
static void gradcheck(gc_fn fn, void *user, wk_tensor *const *in, int n, const char *what)
{
    const double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
    bool flags[8];
    for (int k = 0; k < n; k++) {
        cr_assert_eq(in[k]->dtype, WK_DTYPE_F64);
        flags[k] = in[k]->requires_grad;
        wk_tensor_free(in[k]->grad);
        in[k]->grad = NULL;
        cr_assert_not_null(wk_requires_grad_(in[k], true), "%s", wk_last_error());
    }
    wk_generator g = wk_generator_make(99);
    wk_frame_begin();
    wk_tensor *y = fn(in, n, user);
    cr_assert_not_null(y, "%s: %s", what, wk_last_error());
    cr_assert(y->requires_grad, "%s: the output does not require grad", what);
    wk_tensor *w = wk_keep(wk_randn(y->shape, y->ndim, WK_DTYPE_F64, &g));
    cr_assert_eq(wk_backward_ex(y, w, false), 0, "%s: %s", what, wk_last_error());
    wk_frame_end();
    wk_no_grad_begin();
    for (int k = 0; k < n; k++) {
        wk_tensor *x = in[k];
        for (int64_t j = 0; j < wk_numel(x); j++) {
            int64_t off = 0, rem = j;
            for (int d = x->ndim - 1; d >= 0; d--) {
                off += (rem % x->shape[d]) * x->strides[d];
                rem /= x->shape[d];
            }
            double *p = (double *)wk_data(x) + off, x0 = *p;
            *p = x0 + eps;
            double lp = weighted_sum(fn, user, in, n, w);
            *p = x0 - eps;
            double lm = weighted_sum(fn, user, in, n, w);
            *p = x0;
            double num = (lp - lm) / (2 * eps), ana = x->grad ? tu_at(x->grad, j) : 0;
            cr_assert(fabs(ana - num) <= atol + rtol * fabs(num),
                      "%s: input %d element %lld: backward %.10g, finite differences %.10g",
                      what, k, (long long)j, ana, num);
        }
    }
    wk_no_grad_end();
    for (int k = 0; k < n; k++) {
        wk_tensor_free(in[k]->grad);
        in[k]->grad = NULL;
        in[k]->requires_grad = flags[k];
    }
    wk_tensor_free(w);
}

/* Parameters (and floating buffers) of a module converted to float64 in place. */
static void module_to_f64(wk_module *m)
{
    wk_no_grad_begin(); /* the copies are new leaves, not outputs of a cast */
    for (int i = 0; i < m->nparams; i++) {
        wk_tensor *c = wk_keep(wk_to_dtype(m->params[i].tensor, WK_DTYPE_F64));
        wk_tensor_free(m->params[i].tensor);
        m->params[i].tensor = wk_requires_grad_(c, true);
    }
    for (int i = 0; i < m->nbuffers; i++) {
        if (!wk_dtype_is_float(m->buffers[i].tensor->dtype)) continue;
        wk_tensor *c = wk_keep(wk_to_dtype(m->buffers[i].tensor, WK_DTYPE_F64));
        wk_tensor_free(m->buffers[i].tensor);
        m->buffers[i].tensor = c;
    }
    for (int i = 0; i < m->nchildren; i++) module_to_f64(m->children[i].module);
    wk_no_grad_end();
}

static void naive_layer_norm(const wk_tensor *x, int64_t L, const wk_tensor *w,
                             const wk_tensor *b, const wk_tensor *dy, double eps, double *y,
                             double *dx, double *dw, double *db);

/* ---- batch norm: values against PyTorch ---- */

/* The references: torch 1.13, float64,
 *   f = lambda n, a, b: [((i*a+b) % 29)/9.0 - 1.5 for i in range(n)]
 *   x = f(24, 7, 3) as (4, 3, 2), w = [0.5, -1, 2], b = [0.1, 0.2, -0.3],
 *   running mean [0, 1, -1], running var [1, 2, 0.5], dy = f(24, 5, 1)
 *   y = F.batch_norm(x, rm, rv, w, b, training, 0.1, 1e-5); y.backward(dy)
 * (training first, which updates rm/rv; then evaluation with the updated statistics). */
static const double bn_y[] = {
    -0.4641607887048374,  0.00044221375796991074, -0.07201063524711758, -0.87372619176493782,
    -3.2995430994050592,  -1.5678481141815201,    0.39867335872609028,  0.8632763611888975,
    1.7604820653650433,   0.95876650884722292,    -0.083538126847057484, 1.6481568583764823,
    -0.66327636118889755, -0.19867335872609035,   0.2715817461176625,   -0.53013381040015806,
    3.1324668457109444,   -2.3100031078487513,    0.19955778624203011,  0.66416078870483741,
    -1.2173185731297183,  1.3023588902120031,     -0.825693120514289,   0.9060018647092507};
static const double bn_rm[] = {-0.022222222222222223, 0.91249999999999998, -0.8930555555555556};
static const double bn_rv[] = {0.98007054673721339, 1.9075617283950619, 0.54221781305114636};
static const double bn_dx[] = {
    -0.16110674745807818, 0.084791977939510613,  0.45678515796035313,   -0.11981244060149786,
    -0.75462545121816649, 0.8644020156761536,    -0.25437593381853185,  -0.0084772084209430564,
    0.35126837473335265,  -0.22532922382849863,  0.20237843336179054,   1.8214059002561107,
    0.0084772084209429888, 0.25437593381853185,  0.2294136973640693,    -0.34718390119778197,
    1.1593823179417466,   1.1954138068333355,    -0.084791977939510682, 0.16110674745807818,
    0.10755901999478601,  -0.45270068442478273,  0.53339022451897156,   -5.0217472473699418};
static const double bn_dw[] = {1.2389413399008193, -0.038176931262753296, -1.5856691184140153};
static const double bn_db[] = {-7.5555555555555554, 1.3333333333333333, 7};
static const double bn_eval_y[] = {
    -0.47800798091875335, -0.085187023012804439, 0.57911277152044116, 0.01597443716647038,
    -1.3449280151517584,  0.76756183497454078,   0.25151665519229449, 0.64433761309824333,
    1.8662861071866601,   1.3031477728326892,    2.5782674207970833,  4.6907572709233829,
    -0.64635982002130277, -0.25353886211535398,  0.82045777195785707, 0.2573194376038862,
    6.5014628567459249,   -0.13779095793673049,  0.083164816089745033, 0.47598577399569397,
    -0.22537056327094579, 1.5444927732701053,    1.6729146278858118,  3.7854044780121114};
static const double bn_eval_dx[] = {
    -0.70146599626062289, -0.42087959775637379, 0.20112083369784664,  -0.20112083369784664,
    2.2633819822781782,   3.7723033037969631,   -0.64534871655977311, -0.36476231805552395,
    0.12067250021870808,  -0.28156916717698538, 2.5651662465819354,   4.0740875681007207,
    -0.58923143685892332, -0.30864503835467411, 0.040224166739569363, -0.36201750065612409,
    2.8669505108856916,   4.3758718324044779,   -0.53311415715807342, -0.25252775865382426,
    -0.040224166739569363, -0.4424658341352628, 3.1687347751894488,   -4.0740875681007207};
static const double bn_eval_dw[] = {2.5739125622789798, -0.78705286253757345, 7.215368358134759};

static void batch_norm_vs_torch(wk_dtype dt, double tol)
{
    wk_tensor *x = wk_requires_grad_(fill(WK_SHAPE(4, 3, 2), dt, 7, 3), true);
    wk_tensor *w = wk_requires_grad_(wk_to_dtype(tu_f64(WK_SHAPE(3), 0.5, -1, 2), dt), true);
    wk_tensor *b = wk_requires_grad_(wk_to_dtype(tu_f64(WK_SHAPE(3), 0.1, 0.2, -0.3), dt), true);
    wk_tensor *rm = wk_to_dtype(tu_f64(WK_SHAPE(3), 0, 1, -1), dt);
    wk_tensor *rv = wk_to_dtype(tu_f64(WK_SHAPE(3), 1, 2, 0.5), dt);
    wk_tensor *dy = fill(WK_SHAPE(4, 3, 2), dt, 5, 1);
    wk_tensor *y = wk_batch_norm(x, rm, rv, w, b, true, 0.1, 1e-5);
    cr_assert_not_null(y, "%s", wk_last_error());
    cr_assert_eq(y->dtype, dt);
    expect_shape(y, 4, 3, 2);
    expect_near(y, bn_y, tol, tol, "y");
    expect_near(rm, bn_rm, tol, tol, "running_mean");
    expect_near(rv, bn_rv, tol, tol, "running_var");
    cr_assert_eq(wk_backward_ex(y, dy, false), 0, "%s", wk_last_error());
    expect_near(x->grad, bn_dx, tol, tol, "dx");
    expect_near(w->grad, bn_dw, tol, tol, "dw");
    expect_near(b->grad, bn_db, tol, tol, "db");
    wk_zero_grad((wk_tensor *[]){x, w, b}, 3);
    y = wk_batch_norm(x, rm, rv, w, b, false, 0.1, 1e-5);
    expect_near(y, bn_eval_y, tol, tol, "eval y");
    expect_near(rm, bn_rm, tol, tol, "running_mean unchanged in evaluation");
    cr_assert_eq(wk_backward_ex(y, dy, false), 0, "%s", wk_last_error());
    expect_near(x->grad, bn_eval_dx, tol, tol, "eval dx");
    expect_near(w->grad, bn_eval_dw, tol, tol, "eval dw");
    expect_near(b->grad, bn_db, tol, tol, "eval db");
}

Test(norm, batch_norm_matches_torch_f64) { batch_norm_vs_torch(WK_DTYPE_F64, 1e-12); }
Test(norm, batch_norm_matches_torch_f32) { batch_norm_vs_torch(WK_DTYPE_F32, 2e-5); }

/* Naive double-precision batch norm of x (N, C, S) and its backward for dy. */
static void naive_batch_norm(const wk_tensor *x, const wk_tensor *w, const wk_tensor *b,
                             const wk_tensor *dy, double eps, double *y, double *dx,
                             double *dw, double *db)
{
    int64_t N = x->shape[0], C = x->shape[1], S = wk_numel(x) / (N * C), M = N * S;
    for (int64_t c = 0; c < C; c++) {
        long double s = 0, v = 0, g = 0, gx = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) s += tu_at(x, (n * C + c) * S + k);
        double mean = (double)(s / M);
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                double d = tu_at(x, (n * C + c) * S + k) - mean;
                v += (long double)d * d;
            }
        double rstd = 1 / sqrt((double)(v / M) + eps);
        double wc = w ? tu_at(w, c) : 1, bc = b ? tu_at(b, c) : 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (n * C + c) * S + k;
                double xh = (tu_at(x, i) - mean) * rstd;
                y[i] = xh * wc + bc;
                if (dy) {
                    g += tu_at(dy, i);
                    gx += (long double)tu_at(dy, i) * xh;
                }
            }
        if (!dy) continue;
        dw[c] = (double)gx;
        db[c] = (double)g;
        for (int64_t n = 0; n < N; n++)
            for (int64_t k = 0; k < S; k++) {
                int64_t i = (n * C + c) * S + k;
                double xh = (tu_at(x, i) - mean) * rstd;
                dx[i] = wc * rstd * (tu_at(dy, i) - (double)g / M - xh * (double)gx / M);
            }
    }
}

static void batch_norm_large(const int64_t *shape, int nd, wk_dtype dt, double tol)
{
    wk_tensor *x = wk_requires_grad_(rand_t(shape, nd, dt, 1, -3, 5), true);
    int64_t C = shape[1];
    wk_tensor *w = wk_requires_grad_(rand_t(&C, 1, dt, 2, 0.5, 1.5), true);
    wk_tensor *b = wk_requires_grad_(rand_t(&C, 1, dt, 3, -1, 1), true);
    wk_tensor *dy = rand_t(shape, nd, dt, 4, -1, 1);
    int64_t n = wk_numel(x);
    double *y = malloc(sizeof(double) * (size_t)n), *dx = malloc(sizeof(double) * (size_t)n);
    double *dw = malloc(sizeof(double) * (size_t)C), *db = malloc(sizeof(double) * (size_t)C);
    naive_batch_norm(x, w, b, dy, 1e-5, y, dx, dw, db);
    wk_tensor *out[2], *grads[2][3];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t ? 3 : 1);
        out[t] = wk_batch_norm(x, NULL, NULL, w, b, true, 0.1, 1e-5);
        cr_assert_eq(wk_backward_ex(out[t], dy, false), 0, "%s", wk_last_error());
        grads[t][0] = wk_grad_take(x);
        grads[t][1] = wk_grad_take(w);
        grads[t][2] = wk_grad_take(b);
        x->grad = w->grad = b->grad = NULL;
    }
    wk_set_num_threads(0);
    expect_near(out[0], y, tol, tol, "y");
    expect_near(grads[0][0], dx, tol, tol, "dx");
    expect_near(grads[0][1], dw, tol, tol * 10, "dw");
    expect_near(grads[0][2], db, tol, tol * 10, "db");
    expect_same_bits(out[0], out[1], "y");
    for (int k = 0; k < 3; k++) expect_same_bits(grads[0][k], grads[1][k], "grads");
    free(y);
    free(dx);
    free(dw);
    free(db);
}

Test(norm, batch_norm_large_spatial)
{
    batch_norm_large(WK_SHAPE(37, 13, 9, 61), WK_DTYPE_F32, 2e-5);
}
Test(norm, batch_norm_large_2d) { batch_norm_large(WK_SHAPE(3001, 37), WK_DTYPE_F32, 2e-5); }
Test(norm, batch_norm_large_f64) { batch_norm_large(WK_SHAPE(211, 5, 67), WK_DTYPE_F64, 1e-10); }

Test(norm, batch_norm_large_mean_small_spread)
{
    /* The one-pass variance is shifted by each channel's first value. */
    int64_t shape[] = {500, 2, 3};
    wk_tensor *x = rand_t(shape, 3, WK_DTYPE_F64, 5, 1e4, 1e4 + 1e-2);
    wk_tensor *x32 = wk_to_dtype(x, WK_DTYPE_F32);
    double *y = malloc(sizeof(double) * 3000);
    naive_batch_norm(x32, NULL, NULL, NULL, 0, y, NULL, NULL, NULL);
    expect_near(wk_batch_norm(x32, NULL, NULL, NULL, NULL, true, 0.1, 0), y, 1e-3, 1e-3, "y");
    free(y);
    /* spatial runs long enough for the float32 blocks, and layer norm over such rows */
    wk_tensor *z = wk_to_dtype(rand_t(WK_SHAPE(30, 2, 70), WK_DTYPE_F64, 8, -1e4, -1e4 + 1e-2),
                               WK_DTYPE_F32);
    y = malloc(sizeof(double) * 4200);
    naive_batch_norm(z, NULL, NULL, NULL, 0, y, NULL, NULL, NULL);
    expect_near(wk_batch_norm(z, NULL, NULL, NULL, NULL, true, 0.1, 0), y, 1e-3, 1e-3, "y");
    naive_layer_norm(z, 70, NULL, NULL, NULL, 0, y, NULL, NULL, NULL);
    expect_near(wk_layer_norm(z, WK_SHAPE(70), NULL, NULL, 0), y, 1e-3, 1e-3, "layer norm");
    free(y);
}

Test(norm, batch_norm_layouts)
{
    wk_tensor *x = rand_t(WK_SHAPE(6, 4, 5), WK_DTYPE_F64, 6, -2, 2);
    wk_tensor *w = tu_f64(WK_SHAPE(4), 1, 2, 3, 4), *b = tu_f64(WK_SHAPE(4), 0, 1, 0, -1);
    wk_tensor *ref = wk_batch_norm(x, NULL, NULL, w, b, true, 0.1, 1e-5);
    wk_tensor *got = wk_batch_norm(strided_copy(x), NULL, NULL, strided_copy(w), b, true, 0.1,
                                   1e-5);
    tu_expect_values(got, wk_data(ref), 120, 1e-14, 1e-14, "transposed input");
    /* a broadcast (expanded) input: every sample equal, so the output is the bias */
    wk_tensor *row = rand_t(WK_SHAPE(1, 4, 5), WK_DTYPE_F64, 7, -1, 1);
    wk_tensor *e = wk_expand(row, WK_SHAPE(3, 4, 5));
    wk_tensor *ye = wk_batch_norm(e, NULL, NULL, NULL, NULL, true, 0.1, 1e-5);
    double yref[60];
    naive_batch_norm(wk_contiguous(e), NULL, NULL, NULL, 1e-5, yref, NULL, NULL, NULL);
    expect_near(ye, yref, 1e-12, 1e-12, "expanded input");
    /* one-element channels in evaluation, 0-size spatial dims */
    wk_tensor *rm = tu_f64(WK_SHAPE(2), 1, -1), *rv = tu_f64(WK_SHAPE(2), 4, 0.25);
    expect_values(wk_batch_norm(tu_f64(WK_SHAPE(1, 2), 3, 0), rm, rv, NULL, NULL, false, 0.1, 0),
                  1e-15, 1, 2);
    expect_shape(wk_batch_norm(wk_zeros(WK_SHAPE(2, 3, 0), WK_DTYPE_F32),
                               wk_zeros(WK_SHAPE(3), WK_DTYPE_F32),
                               wk_ones(WK_SHAPE(3), WK_DTYPE_F32), NULL, NULL, false, 0.1, 0),
                 2, 3, 0);
}

Test(norm, batch_norm_running_stats_any_dtype_and_stride)
{
    /* float64 input with float32 running statistics held in a strided view */
    wk_tensor *x = fill(WK_SHAPE(4, 3, 2), WK_DTYPE_F64, 7, 3);
    wk_tensor *store = wk_zeros(WK_SHAPE(3, 2), WK_DTYPE_F32);
    wk_tensor *rm = wk_select(store, 1, 0), *rv = wk_select(store, 1, 1);
    wk_copy_(rm, tu_f64(WK_SHAPE(3), 0, 1, -1));
    wk_copy_(rv, tu_f64(WK_SHAPE(3), 1, 2, 0.5));
    cr_assert_not_null(wk_batch_norm(x, rm, rv, NULL, NULL, true, 0.1, 1e-5));
    expect_near(rm, bn_rm, 1e-6, 1e-6, "running_mean");
    expect_near(rv, bn_rv, 1e-6, 1e-6, "running_var");
}

Test(norm, batch_norm_errors)
{
    wk_tensor *x = wk_zeros(WK_SHAPE(4, 3), WK_DTYPE_F32);
    wk_tensor *c3 = wk_ones(WK_SHAPE(3), WK_DTYPE_F32), *c2 = wk_ones(WK_SHAPE(2), WK_DTYPE_F32);
    expect_error(wk_batch_norm(NULL, NULL, NULL, NULL, NULL, true, 0.1, 1e-5), "is NULL");
    expect_error(wk_batch_norm(wk_zeros(WK_SHAPE(4), WK_DTYPE_F32), NULL, NULL, NULL, NULL, true,
                               0.1, 1e-5),
                 "batch_norm: expected an input of shape (N, C, *) with at least 2 dims, got [4]");
    expect_error(wk_batch_norm(x, NULL, NULL, c2, NULL, true, 0.1, 1e-5),
                 "batch_norm: weight has shape [2]; expected [3] for an input of shape [4, 3]");
    expect_error(wk_batch_norm(x, NULL, NULL, NULL, wk_ones(WK_SHAPE(3), WK_DTYPE_F64), true, 0.1,
                               1e-5),
                 "batch_norm: bias has dtype float64 but the input is float32");
    expect_error(wk_batch_norm(wk_zeros(WK_SHAPE(4, 3), WK_DTYPE_I64), NULL, NULL, NULL, NULL,
                               true, 0.1, 1e-5),
                 "batch_norm: input has dtype int64 (shape [4, 3]); expected float32 or float64");
    expect_error(wk_batch_norm(wk_zeros(WK_SHAPE(4, 3), WK_DTYPE_BF16), NULL, NULL, NULL, NULL,
                               true, 0.1, 1e-5),
                 "storage type");
    expect_error(wk_batch_norm(x, c3, NULL, NULL, NULL, true, 0.1, 1e-5),
                 "running_mean and running_var must be given together");
    expect_error(wk_batch_norm(x, c3, c2, NULL, NULL, true, 0.1, 1e-5),
                 "running_var has shape [2]; expected [3]");
    expect_error(wk_batch_norm(x, NULL, NULL, NULL, NULL, false, 0.1, 1e-5),
                 "evaluation mode (training=false) needs running_mean and running_var");
    expect_error(wk_batch_norm(wk_zeros(WK_SHAPE(1, 3), WK_DTYPE_F32), NULL, NULL, NULL, NULL,
                               true, 0.1, 1e-5),
                 "expected more than 1 value per channel when training, got an input of shape "
                 "[1, 3]");
}

/* ---- batch norm gradients ---- */

typedef struct {
    bool training, affine, stats;
    bool strided;
} bn_case;

static wk_tensor *bn_fn(wk_tensor *const *in, int n, void *user)
{
    const bn_case *c = user;
    (void)n;
    wk_tensor *rm = NULL, *rv = NULL;
    if (c->stats) { /* fresh statistics each call: evaluation must see the same ones */
        rm = tu_f64(WK_SHAPE(3), 0.5, -0.25, 0.1);
        rv = tu_f64(WK_SHAPE(3), 2, 0.5, 1.5);
    }
    return wk_batch_norm(in[0], rm, rv, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL,
                         c->training, 0.1, 1e-5);
}

Test(norm, batch_norm_gradcheck)
{
    const bn_case cases[] = {
        {true, true, false, false}, {true, false, false, false}, {true, true, true, false},
        {false, true, true, false}, {true, true, false, true},   {false, true, true, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const bn_case *c = &cases[i];
        wk_tensor *x = rand_t(WK_SHAPE(4, 3, 5), WK_DTYPE_F64, 10 + i, -2, 2);
        if (c->strided) x = strided_copy(x);
        wk_tensor *w = rand_t(WK_SHAPE(3), WK_DTYPE_F64, 20, 0.5, 2);
        wk_tensor *b = rand_t(WK_SHAPE(3), WK_DTYPE_F64, 21, -1, 1);
        char what[64];
        snprintf(what, sizeof what, "batch_norm case %zu", i);
        gradcheck(bn_fn, (void *)c, (wk_tensor *[]){x, w, b}, c->affine ? 3 : 1, what);
    }
    /* (N, C) input: the S = 1 kernels */
    bn_case c = {true, true, false, false};
    gradcheck(bn_fn, &c,
              (wk_tensor *[]){rand_t(WK_SHAPE(7, 3), WK_DTYPE_F64, 30, -2, 2),
                              rand_t(WK_SHAPE(3), WK_DTYPE_F64, 31, 0.5, 2),
                              rand_t(WK_SHAPE(3), WK_DTYPE_F64, 32, -1, 1)},
              3, "batch_norm (N, C)");
}

/* ---- layer norm ---- */

/* torch 1.13, float64, f as above: x = f(24, 5, 2) as (2, 3, 4), w = f(12, 7, 1) and
 * b = f(12, 3, 4) as (3, 4), dy = f(24, 4, 3); F.layer_norm(x, (3, 4), w, b, 1e-5) and
 * F.layer_norm(x, (4,), None, None, 1e-5), each backward with dy. */
static const double ln_y[] = {
    1.0552674410681975,  -0.1506763031364059, -0.44734244879539281, 0.1652690040912371,
    -0.94974698025880544, -0.40208392726829051, 0.86650636456910601, 0.59581957886856496,
    1.2344103917136413,  -1.5700455773102975, -0.9964031643613368,  0.48651684713324078,
    0.30855192742927035, -0.48948878226807641, -0.35214150363297103, 0.72059376333458636,
    -1.8569112384523536, 1.6678768265009885,  0.89656148789885481,  1.0606341376291728,
    2.1600947756919431,  -2.062835553699657,  -1.0301883433749193,  -1.5810193704415467};
static const double ln_dx[] = {
    1.4172553166114188,  0.32609095571122521, -0.037651326352474979, 0.32602847042031846,
    -0.65472361065647888, -0.34300253380057777, -0.17008982537873446, -1.2287799863308706,
    -1.3716977087477782, 0.53125916556295261, 0.33638272322915275,  0.86892835973184657,
    -1.1513750057124625, -0.87801173444130631, -0.43761489382506946, -1.380256007386101,
    0.16924373368147216, 0.49402901116171355, 0.24624754607621785,  0.74677647165668404,
    1.9956157879031111,  0.89262244777080246, -0.62461414433730666, -0.072663212547755623};
static const double ln_dw[] = {
    0.84549822873427105, 0.14652372266017882, -0.20880561062180816, -0.73718027895247251,
    -0.21146032620995436, 1.562113188046039, -2.4395088524532706,  0.82852559817885441,
    0.63024603711452365, -1.5494956364412256, -1.5771753597621281, 1.5805878828333813};
static const double ln_db[] = {
    -0.2222222222222221, 0.66666666666666663, -1.6666666666666665, -0.77777777777777768,
    0.11111111111111116, 0.99999999999999978, 1.8888888888888888,  -0.4444444444444442,
    0.44444444444444431, -1.8888888888888888, -1,                  -0.11111111111111116};
static const double ln_plain_y[] = {
    -1.3416233991732895, -0.44720779972442981, 0.44720779972442987, 1.3416233991732898,
    0.71257824737590847, 1.2215627097872714,   -1.2215627097872714, -0.71257824737590825,
    -1.3416233991732898, -0.44720779972442981, 0.4472077997244297,  1.34162339917329,
    -1.3416233991732895, -0.44720779972442987, 0.44720779972442987, 1.3416233991732895,
    1.5913266428110984,  -1.0888024398181202,  -0.5304422142703662, 0.027918011277387706,
    -0.027918011277387605, 0.53044221427036631, 1.08880243981812,   -1.5913266428110986};
static const double ln_plain_dx[] = {
    -2.7819181732668952e-05, -9.2730605776025765e-06, 9.2730605774082875e-06,
    2.7819181732141596e-05,  -0.0038228763664738818, 0.30974398501310585,
    1.166310955979847,       -1.4722320646264788,    -2.7819181731780773e-05,
    -9.2730605774082875e-06, 9.2730605774082875e-06, 2.7819181731558729e-05,
    -0.51870819123504719,    1.5563007618561127,     -1.5563007618561131,
    0.51870819123504741,     -0.30290216288965965,   -0.47453837448117459,
    0.10096738762988647,     0.67647314974094774,    1.751762799319398,
    -0.89860010529883472,    -0.31047370174009503,   -0.54268899228046785};

static void layer_norm_vs_torch(wk_dtype dt, double tol)
{
    wk_tensor *x = wk_requires_grad_(fill(WK_SHAPE(2, 3, 4), dt, 5, 2), true);
    wk_tensor *w = wk_requires_grad_(fill(WK_SHAPE(3, 4), dt, 7, 1), true);
    wk_tensor *b = wk_requires_grad_(fill(WK_SHAPE(3, 4), dt, 3, 4), true);
    wk_tensor *dy = fill(WK_SHAPE(2, 3, 4), dt, 4, 3);
    wk_tensor *y = wk_layer_norm(x, WK_SHAPE(3, 4), w, b, 1e-5);
    expect_shape(y, 2, 3, 4);
    expect_near(y, ln_y, tol, tol, "y");
    cr_assert_eq(wk_backward_ex(y, dy, false), 0, "%s", wk_last_error());
    expect_near(x->grad, ln_dx, tol, tol, "dx");
    expect_near(w->grad, ln_dw, tol, tol, "dw");
    expect_near(b->grad, ln_db, tol, tol, "db");
    expect_shape(w->grad, 3, 4);
    wk_zero_grad(&x, 1);
    y = wk_layer_norm(x, WK_SHAPE(4), NULL, NULL, 1e-5);
    expect_near(y, ln_plain_y, tol, tol, "plain y");
    cr_assert_eq(wk_backward_ex(y, dy, false), 0, "%s", wk_last_error());
    expect_near(x->grad, ln_plain_dx, tol, tol, "plain dx");
}

Test(norm, layer_norm_matches_torch_f64) { layer_norm_vs_torch(WK_DTYPE_F64, 1e-12); }
Test(norm, layer_norm_matches_torch_f32) { layer_norm_vs_torch(WK_DTYPE_F32, 2e-5); }

/* Naive layer norm of rows of length L with per-element w/b and its backward. */
static void naive_layer_norm(const wk_tensor *x, int64_t L, const wk_tensor *w,
                             const wk_tensor *b, const wk_tensor *dy, double eps, double *y,
                             double *dx, double *dw, double *db)
{
    int64_t R = wk_numel(x) / L;
    for (int64_t j = 0; j < L && dw; j++) dw[j] = db[j] = 0;
    for (int64_t r = 0; r < R; r++) {
        long double s = 0, v = 0, g1 = 0, g2 = 0;
        for (int64_t j = 0; j < L; j++) s += tu_at(x, r * L + j);
        double m = (double)(s / L);
        for (int64_t j = 0; j < L; j++) {
            double d = tu_at(x, r * L + j) - m;
            v += (long double)d * d;
        }
        double rs = 1 / sqrt((double)(v / L) + eps);
        for (int64_t j = 0; j < L; j++) {
            double xh = (tu_at(x, r * L + j) - m) * rs, wj = w ? tu_at(w, j) : 1;
            y[r * L + j] = xh * wj + (b ? tu_at(b, j) : 0);
            if (!dy) continue;
            double g = tu_at(dy, r * L + j);
            g1 += g * wj;
            g2 += (long double)g * wj * xh;
            if (dw) {
                dw[j] += g * xh;
                db[j] += g;
            }
        }
        for (int64_t j = 0; j < L && dy; j++) {
            double xh = (tu_at(x, r * L + j) - m) * rs, wj = w ? tu_at(w, j) : 1;
            dx[r * L + j] =
                rs * (tu_at(dy, r * L + j) * wj - (double)(g1 / L) - xh * (double)(g2 / L));
        }
    }
}

Test(norm, layer_norm_large)
{
    int64_t L = 1001;
    wk_tensor *x = wk_requires_grad_(rand_t(WK_SHAPE(1000, 1001), WK_DTYPE_F32, 40, -3, 4), true);
    wk_tensor *w = wk_requires_grad_(rand_t(&L, 1, WK_DTYPE_F32, 41, 0.5, 1.5), true);
    wk_tensor *b = wk_requires_grad_(rand_t(&L, 1, WK_DTYPE_F32, 42, -1, 1), true);
    wk_tensor *dy = rand_t(WK_SHAPE(1000, 1001), WK_DTYPE_F32, 43, -1, 1);
    int64_t n = wk_numel(x);
    double *y = malloc(sizeof(double) * (size_t)n), *dx = malloc(sizeof(double) * (size_t)n);
    double *dw = malloc(sizeof(double) * 1001), *db = malloc(sizeof(double) * 1001);
    naive_layer_norm(x, L, w, b, dy, 1e-5, y, dx, dw, db);
    wk_tensor *out[2], *g[2][3];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t ? 3 : 1);
        out[t] = wk_layer_norm(x, &L, 1, w, b, 1e-5);
        cr_assert_eq(wk_backward_ex(out[t], dy, false), 0, "%s", wk_last_error());
        g[t][0] = wk_grad_take(x);
        g[t][1] = wk_grad_take(w);
        g[t][2] = wk_grad_take(b);
        x->grad = w->grad = b->grad = NULL;
    }
    wk_set_num_threads(0);
    expect_near(out[0], y, 2e-5, 2e-5, "y");
    expect_near(g[0][0], dx, 2e-5, 2e-5, "dx");
    expect_near(g[0][1], dw, 1e-5, 1e-4, "dw");
    expect_near(g[0][2], db, 1e-5, 1e-4, "db");
    expect_same_bits(out[0], out[1], "y");
    for (int k = 0; k < 3; k++) expect_same_bits(g[0][k], g[1][k], "grads");
    free(y);
    free(dx);
    free(dw);
    free(db);
}

Test(norm, layer_norm_layouts_and_edges)
{
    wk_tensor *x = rand_t(WK_SHAPE(5, 7), WK_DTYPE_F64, 50, -2, 2);
    wk_tensor *ref = wk_layer_norm(x, WK_SHAPE(7), NULL, NULL, 1e-5);
    tu_expect_values(wk_layer_norm(strided_copy(x), WK_SHAPE(7), NULL, NULL, 1e-5), wk_data(ref),
                     35, 1e-14, 1e-14, "transposed input");
    /* a constant row normalises to 0 (var 0 + eps), a one-element row too */
    expect_values(wk_layer_norm(tu_f32(WK_SHAPE(1, 3), 2, 2, 2), WK_SHAPE(3), NULL, NULL, 1e-5),
                  0, 0, 0, 0);
    expect_values(wk_layer_norm(tu_f32(WK_SHAPE(2, 1), 5, -1), WK_SHAPE(1), NULL,
                                tu_f32(WK_SHAPE(1), 0.5), 1e-5),
                  0, 0.5, 0.5);
    expect_shape(wk_layer_norm(wk_zeros(WK_SHAPE(0, 4), WK_DTYPE_F32), WK_SHAPE(4), NULL, NULL,
                               1e-5),
                 0, 4);
    /* normalising over every dim of a 1-d input */
    expect_values(wk_layer_norm(tu_f64(WK_SHAPE(2), 1, 3), WK_SHAPE(2), NULL, NULL, 0), 1e-15,
                  -1, 1);
}

Test(norm, layer_norm_errors)
{
    wk_tensor *x = wk_zeros(WK_SHAPE(2, 4), WK_DTYPE_F32);
    expect_error(wk_layer_norm(x, WK_SHAPE(3), NULL, NULL, 1e-5),
                 "layer_norm: normalized_shape is [3]; expected an input of shape [*, 3], got "
                 "[2, 4]");
    expect_error(wk_layer_norm(x, WK_SHAPE(3, 2, 4), NULL, NULL, 1e-5), "expected an input of "
                                                                         "shape [*, 3, 2, 4]");
    expect_error(wk_layer_norm(x, NULL, 0, NULL, NULL, 1e-5), "normalized_shape needs 1..8 dims");
    expect_error(wk_layer_norm(x, WK_SHAPE(4), wk_ones(WK_SHAPE(1, 4), WK_DTYPE_F32), NULL, 1e-5),
                 "layer_norm: weight has shape [1, 4]; expected [4]");
    expect_error(wk_layer_norm(x, WK_SHAPE(4), NULL, wk_ones(WK_SHAPE(4), WK_DTYPE_F64), 1e-5),
                 "layer_norm: bias has dtype float64 but the input is float32");
    expect_error(wk_layer_norm(wk_zeros(WK_SHAPE(2, 4), WK_DTYPE_I32), WK_SHAPE(4), NULL, NULL,
                               1e-5),
                 "expected float32 or float64");
}

typedef struct {
    int nd;
    bool affine, strided;
    int only; /* 1: weight only, 2: bias only, 3: both, the bias without grad */
} ln_case;

static wk_tensor *ln_fn(wk_tensor *const *in, int n, void *user)
{
    const ln_case *c = user;
    const int64_t *ns = in[0]->shape + in[0]->ndim - c->nd;
    if (c->only == 1) return wk_layer_norm(in[0], ns, c->nd, in[1], NULL, 1e-5);
    if (c->only == 2) return wk_layer_norm(in[0], ns, c->nd, NULL, in[1], 1e-5);
    if (c->only == 3) /* a bias that is not an input of the check: no grad wanted */
        return wk_layer_norm(in[0], ns, c->nd, in[1], wk_ones(ns, c->nd, WK_DTYPE_F64), 1e-5);
    (void)n;
    return wk_layer_norm(in[0], ns, c->nd, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL,
                         1e-5);
}

Test(norm, layer_norm_gradcheck)
{
    const ln_case cases[] = {{1, true, false, 0}, {2, true, false, 0}, {1, false, false, 0},
                             {1, true, true, 0},  {3, true, false, 0}, {1, false, false, 1},
                             {1, false, false, 2}, {2, false, false, 3}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const ln_case *c = &cases[i];
        wk_tensor *x = rand_t(WK_SHAPE(3, 4, 5), WK_DTYPE_F64, 60 + i, -2, 2);
        if (c->strided) x = strided_copy(x);
        const int64_t *ns = x->shape + 3 - c->nd;
        wk_tensor *w = rand_t(ns, c->nd, WK_DTYPE_F64, 70, 0.5, 2);
        wk_tensor *b = rand_t(ns, c->nd, WK_DTYPE_F64, 71, -1, 1);
        char what[64];
        snprintf(what, sizeof what, "layer_norm case %zu", i);
        if (c->only) /* the weight or the bias only, as the second input */
            gradcheck(ln_fn, (void *)c, (wk_tensor *[]){x, c->only == 2 ? b : w}, 2, what);
        else
            gradcheck(ln_fn, (void *)c, (wk_tensor *[]){x, w, b}, c->affine ? 3 : 1, what);
    }
}

/* ---- group norm ---- */

/* torch 1.13, float64: x = f(36, 5, 7) as (2, 6, 3), w = f(6, 4, 1), b = f(6, 2, 5),
 * dy = f(36, 8, 1); F.group_norm(x, 3, w, b, 1e-5).backward(dy). */
static const double gn_y[] = {
    0.3384677747368966,  -0.4982141073378909,  -1.3348959894126786,  -1.5566729526114773,
    -2.1256166324223327, 0.60531303066977404,  -0.038151601094717255, -0.33935707864164083,
    -0.64056255618856439, -0.32686311485949859, -0.36033039014249013, -0.19968746878413079,
    -0.1907007044046396, 0.047790734740802844, 0.28628217388624527,  1.4102291707821883,
    -1.0428256318566489, -0.53177254797355766, -0.4617831985548585,  -1.3135383383600101,
    -2.1652934781651618, -2.1315930602198132,  0.6485357161042018,   0.069342221036698737,
    -0.32624195147974905, -0.63287380180960351, -0.93950565213945825, -0.36068194471881249,
    -0.1971449578762233, -0.23121516346842938, -0.19070070440463965, 0.047790734740802795,
    0.28628217388624533, 1.4102291707821883,   -1.0428256318566489,  -0.53177254797355777};
static const double gn_dx[] = {
    1.3970034944233003,   0.2720147169037675,   -0.85297406061576519, -1.3621649729282541,
    1.2411007160774663,   -0.69497989386051395, -0.16327809882538197, -0.69950957752610454,
    0.51125071354532947,  0.055340695523786565, -0.052509659554644761, 0.34870592683701507,
    -0.31970095969474571, 0.18715909388791768,  0.69401914747058113,  -0.64572594204432432,
    -0.42935501239116514, 0.51360367277173635,  1.5080249697833408,   0.63047990411058663,
    -0.2470651615621676,  -0.55223077328586001, -0.44888125247669125, -0.89032768656920802,
    -0.20582526376884347, -0.72802872950833386, 0.52823253666533232,  0.033285235399606761,
    0.13041693146834782,  0.24191928974389032,  -0.28992764563944295, 0.21249037926991829,
    0.71490840417927948,  -0.68379104295645798, -0.44609837567144817, 0.49241828081815109};
static const double gn_dw[] = {2.1559242121128528, 3.4618238401720984, -1.9340353113964188,
                               3.3880443393768931, 2.8891534342190748, -3.9657719309327857};
static const double gn_db[] = {-3.3333333333333335, -0.22222222222222254, 2.8888888888888888,
                               -0.4444444444444442, 2.6666666666666665,   -0.66666666666666652};

static void group_norm_vs_torch(wk_dtype dt, double tol)
{
    wk_tensor *x = wk_requires_grad_(fill(WK_SHAPE(2, 6, 3), dt, 5, 7), true);
    wk_tensor *w = wk_requires_grad_(fill(WK_SHAPE(6), dt, 4, 1), true);
    wk_tensor *b = wk_requires_grad_(fill(WK_SHAPE(6), dt, 2, 5), true);
    wk_tensor *y = wk_group_norm(x, 3, w, b, 1e-5);
    expect_near(y, gn_y, tol, tol, "y");
    cr_assert_eq(wk_backward_ex(y, fill(WK_SHAPE(2, 6, 3), dt, 8, 1), false), 0, "%s",
                 wk_last_error());
    expect_near(x->grad, gn_dx, tol, tol, "dx");
    expect_near(w->grad, gn_dw, tol, tol, "dw");
    expect_near(b->grad, gn_db, tol, tol, "db");
}

Test(norm, group_norm_matches_torch_f64) { group_norm_vs_torch(WK_DTYPE_F64, 1e-12); }
Test(norm, group_norm_matches_torch_f32) { group_norm_vs_torch(WK_DTYPE_F32, 2e-5); }

Test(norm, group_norm_large_and_special_cases)
{
    /* (N, C, H, W) with 4 groups against the naive layer norm of each (n, g) block with
     * a per-channel affine applied afterwards */
    int64_t shape[] = {6, 8, 33, 31}, S = 33 * 31;
    wk_tensor *x = rand_t(shape, 4, WK_DTYPE_F64, 80, -2, 3);
    wk_tensor *w = rand_t(WK_SHAPE(8), WK_DTYPE_F64, 81, 0.5, 2);
    wk_tensor *b = rand_t(WK_SHAPE(8), WK_DTYPE_F64, 82, -1, 1);
    int64_t n = wk_numel(x);
    double *y = malloc(sizeof(double) * (size_t)n);
    naive_layer_norm(x, 2 * S, NULL, NULL, NULL, 1e-5, y, NULL, NULL, NULL);
    for (int64_t i = 0; i < n; i++) {
        int64_t c = (i / S) % 8;
        y[i] = y[i] * tu_at(w, c) + tu_at(b, c);
    }
    wk_tensor *out[2];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t ? 3 : 1);
        out[t] = wk_group_norm(x, 4, w, b, 1e-5);
    }
    wk_set_num_threads(0);
    expect_near(out[0], y, 1e-11, 1e-11, "y");
    expect_same_bits(out[0], out[1], "y");
    free(y);
    /* one group is layer norm over (C, *); C groups is instance norm */
    wk_tensor *s = rand_t(WK_SHAPE(3, 4, 5), WK_DTYPE_F64, 83, -1, 1);
    wk_tensor *ln = wk_layer_norm(s, WK_SHAPE(4, 5), NULL, NULL, 1e-5);
    tu_expect_values(wk_group_norm(s, 1, NULL, NULL, 1e-5), wk_data(ln), 60, 1e-14, 1e-14,
                     "one group");
    wk_tensor *in = wk_layer_norm(s, WK_SHAPE(5), NULL, NULL, 1e-5);
    tu_expect_values(wk_group_norm(strided_copy(s), 4, NULL, NULL, 1e-5), wk_data(in), 60, 1e-14,
                     1e-14, "C groups, transposed input");
}

Test(norm, group_norm_errors)
{
    wk_tensor *x = wk_zeros(WK_SHAPE(2, 6, 4), WK_DTYPE_F32);
    expect_error(wk_group_norm(x, 4, NULL, NULL, 1e-5),
                 "group_norm: expected the number of channels to be divisible by num_groups, got "
                 "an input of shape [2, 6, 4] and num_groups=4");
    expect_error(wk_group_norm(x, 0, NULL, NULL, 1e-5), "num_groups=0");
    expect_error(wk_group_norm(wk_zeros(WK_SHAPE(6), WK_DTYPE_F32), 2, NULL, NULL, 1e-5),
                 "group_norm: expected an input of shape (N, C, *)");
    expect_error(wk_group_norm(x, 3, wk_ones(WK_SHAPE(3), WK_DTYPE_F32), NULL, 1e-5),
                 "group_norm: weight has shape [3]; expected [6]");
}

typedef struct {
    int64_t groups;
    bool affine;
} gn_case;

static wk_tensor *gn_fn(wk_tensor *const *in, int n, void *user)
{
    const gn_case *c = user;
    (void)n;
    return wk_group_norm(in[0], c->groups, c->affine ? in[1] : NULL, c->affine ? in[2] : NULL,
                         1e-5);
}

Test(norm, group_norm_gradcheck)
{
    const gn_case cases[] = {{2, true}, {3, false}, {6, true}, {1, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_tensor *x = rand_t(WK_SHAPE(2, 6, 2, 2), WK_DTYPE_F64, 90 + i, -2, 2);
        if (i == 2) x = strided_copy(x);
        wk_tensor *w = rand_t(WK_SHAPE(6), WK_DTYPE_F64, 91, 0.5, 2);
        wk_tensor *b = rand_t(WK_SHAPE(6), WK_DTYPE_F64, 92, -1, 1);
        char what[64];
        snprintf(what, sizeof what, "group_norm case %zu", i);
        gradcheck(gn_fn, (void *)&cases[i], (wk_tensor *[]){x, w, b}, cases[i].affine ? 3 : 1,
                  what);
    }
    /* (N, C) input: S = 1 rows */
    gn_case c = {2, true};
    gradcheck(gn_fn, &c,
              (wk_tensor *[]){rand_t(WK_SHAPE(3, 4), WK_DTYPE_F64, 95, -2, 2),
                              rand_t(WK_SHAPE(4), WK_DTYPE_F64, 96, 0.5, 2),
                              rand_t(WK_SHAPE(4), WK_DTYPE_F64, 97, -1, 1)},
              3, "group_norm (N, C)");
}

/* ---- dropout ---- */

Test(norm, dropout_statistics_and_scaling)
{
    int64_t n = 200001;
    wk_tensor *x = wk_full(&n, 1, 3.0, WK_DTYPE_F32);
    wk_generator g = wk_generator_make(5);
    wk_tensor *y = wk_dropout(x, 0.3, true, &g);
    cr_assert_not_null(y, "%s", wk_last_error());
    int64_t zeros = 0;
    const float *p = wk_data(y);
    for (int64_t i = 0; i < n; i++) {
        if (p[i] == 0) zeros++;
        else cr_assert_eq(p[i], 3.0f * (float)(1 / 0.7), "kept values are scaled by 1/(1-p)");
    }
    double frac = (double)zeros / (double)n; /* sd of the fraction: about 0.001 */
    cr_assert(fabs(frac - 0.3) < 0.006, "dropped fraction %g, expected 0.3", frac);
    cr_assert_neq(g.offset, 0, "the generator advanced");
}

Test(norm, dropout_is_deterministic)
{
    wk_tensor *x = rand_t(WK_SHAPE(301, 257), WK_DTYPE_F64, 100, -1, 1);
    wk_generator g = wk_generator_make(11), saved = g;
    wk_set_num_threads(1);
    wk_tensor *a = wk_dropout(x, 0.5, true, &g);
    wk_generator after = g;
    g = saved;
    wk_set_num_threads(3);
    wk_tensor *b = wk_dropout(x, 0.5, true, &g);
    wk_set_num_threads(0);
    expect_same_bits(a, b, "dropout");
    cr_assert_eq(g.offset, after.offset);
    wk_tensor *c = wk_dropout(x, 0.5, true, &g); /* the stream moved on: another mask */
    cr_assert(memcmp(wk_data(a), wk_data(c), (size_t)wk_numel(a) * 8));
    /* the same as x * bernoulli(1 - p) / (1 - p) from the same generator state */
    g = saved;
    wk_tensor *m = wk_bernoulli_p(x->shape, 2, 0.5, WK_DTYPE_F64, &g);
    for (int64_t i = 0; i < wk_numel(x); i += 97)
        cr_assert_eq(tu_at(a, i), tu_at(x, i) * tu_at(m, i) * 2);
    /* a transposed input gives the mask laid out like the output */
    g = saved;
    wk_tensor *xt = strided_copy(x);
    wk_tensor *t = wk_dropout(xt, 0.5, true, &g);
    for (int64_t i = 0; i < wk_numel(x); i += 89)
        cr_assert_eq(tu_at(t, i), tu_at(xt, i) * tu_at(m, i) * 2);
}

Test(norm, dropout_backward_uses_the_mask)
{
    wk_tensor *x = wk_requires_grad_(wk_ones(WK_SHAPE(40, 50), WK_DTYPE_F32), true);
    wk_generator g = wk_generator_make(3);
    wk_tensor *y = wk_dropout(x, 0.25, true, &g);
    wk_tensor *dy = rand_t(WK_SHAPE(40, 50), WK_DTYPE_F32, 101, -1, 1);
    cr_assert_eq(wk_backward_ex(y, dy, false), 0, "%s", wk_last_error());
    for (int64_t i = 0; i < 2000; i++)
        cr_assert_eq(tu_at(x->grad, i), (float)(tu_at(y, i) * tu_at(dy, i)), "element %lld",
                     (long long)i);
}

typedef struct {
    double p;
    bool training;
} dropout_case;

static wk_tensor *dropout_fn(wk_tensor *const *in, int n, void *user)
{
    const dropout_case *c = user;
    (void)n;
    wk_generator g = wk_generator_make(21); /* the same mask in every evaluation */
    return wk_dropout(in[0], c->p, c->training, &g);
}

Test(norm, dropout_gradcheck)
{
    const dropout_case cases[] = {{0.4, true}, {0.4, false}, {0, true}, {1, true}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_tensor *x = rand_t(WK_SHAPE(5, 6), WK_DTYPE_F64, 110 + i, -2, 2);
        if (i == 0) x = strided_copy(x);
        char what[64];
        snprintf(what, sizeof what, "dropout case %zu", i);
        gradcheck(dropout_fn, (void *)&cases[i], &x, 1, what);
    }
}

Test(norm, dropout_identity_and_zeros)
{
    wk_tensor *x = rand_t(WK_SHAPE(3, 4), WK_DTYPE_F32, 120, -1, 1);
    wk_generator g = wk_generator_make(1);
    wk_tensor *e = wk_dropout(x, 0.5, false, &g);
    cr_assert_eq(e->storage, x->storage, "evaluation returns a view");
    cr_assert_eq(g.offset, 0, "no random numbers drawn");
    cr_assert_eq(wk_dropout(x, 0, true, &g)->storage, x->storage);
    wk_tensor *z = wk_dropout(x, 1, true, &g);
    for (int i = 0; i < 12; i++) cr_assert_eq(tu_at(z, i), 0);
    expect_shape(wk_dropout(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F64), 0.5, true, &g), 0, 3);
}

Test(norm, dropout_errors)
{
    wk_tensor *x = wk_zeros(WK_SHAPE(3), WK_DTYPE_F32);
    expect_error(wk_dropout(x, 1.5, true, NULL),
                 "dropout: probability has to be between 0 and 1, got 1.5");
    expect_error(wk_dropout(x, -0.1, false, NULL), "got -0.1");
    expect_error(wk_dropout(x, NAN, true, NULL), "got nan");
    expect_error(wk_dropout(wk_zeros(WK_SHAPE(3), WK_DTYPE_I64), 0.5, true, NULL),
                 "dropout: input has dtype int64 (shape [3]); expected float32 or float64");
    expect_error(wk_dropout(NULL, 0.5, true, NULL), "is NULL");
    expect_error(wk_dropout_new(2, NULL), "Dropout: probability has to be between 0 and 1");
}

/* ---- modules ---- */

static void expect_names(const wk_module *m, bool buffers, const char *const *names, int n)
{
    wk_named_param np[16];
    int count = wk_module_named_parameters(m, buffers, np, 16);
    cr_assert_eq(count, n, "%d entries, expected %d", count, n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(np[i].name, names[i], "entry %d is %s, expected %s", i, np[i].name,
                         names[i]);
}

Test(norm, batch_norm_module_names_and_init)
{
    wk_module *m = wk_batch_norm2d_new(5, 1e-5, 0.1, true, true);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "BatchNorm2d");
    expect_names(m, true,
                 (const char *const[]){"weight", "bias", "running_mean", "running_var",
                                       "num_batches_tracked"},
                 5);
    expect_names(m, false, (const char *const[]){"weight", "bias"}, 2);
    expect_values(wk_module_find(m, "weight"), 0, 1, 1, 1, 1, 1);
    expect_values(wk_module_find(m, "bias"), 0, 0, 0, 0, 0, 0);
    expect_values(wk_module_find(m, "running_mean"), 0, 0, 0, 0, 0, 0);
    expect_values(wk_module_find(m, "running_var"), 0, 1, 1, 1, 1, 1);
    wk_tensor *nbt = wk_module_find(m, "num_batches_tracked");
    cr_assert_eq(nbt->dtype, WK_DTYPE_I64);
    cr_assert_eq(nbt->ndim, 0);
    cr_assert(wk_module_find(m, "weight")->requires_grad);
    cr_assert(!wk_module_find(m, "running_mean")->requires_grad);
    cr_assert_eq(wk_module_num_parameters(m), 10);
    wk_module_free(m);
    m = wk_batch_norm1d_new(3, 1e-5, 0.1, false, false);
    cr_assert_str_eq(m->type, "BatchNorm1d");
    cr_assert_eq(wk_module_named_parameters(m, true, NULL, 0), 0);
    wk_module_free(m);
    expect_error(wk_batch_norm1d_new(0, 1e-5, 0.1, true, true),
                 "BatchNorm1d: num_features must be positive, got 0");
}

/* torch 1.13: m = nn.BatchNorm1d(3, momentum=mom).double(); three training steps on
 * f(15, 11, 2 + 5t) as (5, 3), t = 0, 1, 2; then m.eval() on f(6, 3, 1) as (2, 3). */
Test(norm, batch_norm_module_steps_match_torch)
{
    static const double rm[2][3] = {
        {0.055722222222222208, 0.02541111111111112, -0.050655555555555551},
        {0.1666666666666666, 0.10000000000000003, -0.18148148148148147}};
    static const double rv[2][3] = {
        {0.86282716049382713, 1.0986938271604938, 0.94112716049382716},
        {0.49382716049382719, 1.3530864197530865, 0.81604938271604943}};
    static const double ey[2][6] = {
        {-1.5552010127975595, -1.0312690482222586, -0.69224953206317008, -0.47864760625385022,
         -0.07724421098806214, 0.33854840122193941},
        {-2.2135719498153352, -0.9934052649916697, -0.59858828140526854, -0.79056141064833396,
         -0.13372763182580175, 0.50839004722091297}};
    for (int k = 0; k < 2; k++) {
        wk_module *m = wk_batch_norm1d_new(3, 1e-5, k ? -1 : 0.1, true, true);
        module_to_f64(m);
        for (int t = 0; t < 3; t++) {
            wk_frame_begin();
            wk_tensor *x = fill(WK_SHAPE(5, 3), WK_DTYPE_F64, 11, 2 + 5 * t);
            cr_assert_not_null(wk_module_forward(m, x), "%s", wk_last_error());
            wk_frame_end();
        }
        expect_near(wk_module_find(m, "running_mean"), rm[k], 1e-12, 1e-12, "running_mean");
        expect_near(wk_module_find(m, "running_var"), rv[k], 1e-12, 1e-12, "running_var");
        cr_assert_eq(*(int64_t *)wk_data(wk_module_find(m, "num_batches_tracked")), 3);
        wk_module_train(m, false);
        wk_tensor *x = fill(WK_SHAPE(2, 3), WK_DTYPE_F64, 3, 1);
        expect_near(wk_module_forward(m, x), ey[k], 1e-12, 1e-12, "eval y");
        cr_assert_eq(*(int64_t *)wk_data(wk_module_find(m, "num_batches_tracked")), 3,
                     "evaluation does not count");
        wk_module_free(m);
    }
}

Test(norm, batch_norm_module_train_eval_and_errors)
{
    wk_module *m = wk_batch_norm2d_new(2, 1e-5, 0.1, true, true);
    wk_tensor *x = rand_t(WK_SHAPE(3, 2, 4, 4), WK_DTYPE_F32, 130, 1, 3);
    wk_tensor *yt = wk_module_forward(m, x);
    double ref[96];
    naive_batch_norm(x, NULL, NULL, NULL, 1e-5, ref, NULL, NULL, NULL);
    expect_near(yt, ref, 1e-5, 1e-5, "training output");
    wk_module_train(m, false);
    /* running mean 0.1*mean(x), var 0.9 + 0.1*var: the output is not x normalised */
    wk_tensor *ye = wk_module_forward(m, x);
    cr_assert(fabs(tu_at(ye, 0) - ref[0]) > 0.1);
    wk_tensor *rm = wk_module_find(m, "running_mean"), *rv = wk_module_find(m, "running_var");
    double m0 = tu_at(rm, 0), v0 = tu_at(rv, 0);
    cr_assert_float_eq(tu_at(ye, 0), (tu_at(x, 0) - m0) / sqrt(v0 + 1e-5), 1e-5);
    expect_error(wk_module_forward(m, wk_zeros(WK_SHAPE(3, 2, 4), WK_DTYPE_F32)),
                 "BatchNorm2d: expected 4-d (N, C, H, W) input, got shape [3, 2, 4]");
    wk_module_free(m);
    /* without running statistics: batch statistics in evaluation too */
    m = wk_batch_norm1d_new(2, 1e-5, 0.1, false, false);
    wk_module_train(m, false);
    wk_tensor *x2 = rand_t(WK_SHAPE(6, 2), WK_DTYPE_F32, 131, -1, 1);
    double ref2[12];
    naive_batch_norm(x2, NULL, NULL, NULL, 1e-5, ref2, NULL, NULL, NULL);
    expect_near(wk_module_forward(m, x2), ref2, 1e-5, 1e-5, "evaluation without stats");
    expect_error(wk_module_forward(m, wk_zeros(WK_SHAPE(6, 2, 2, 2), WK_DTYPE_F32)),
                 "BatchNorm1d: expected 2-d (N, C) or 3-d (N, C, L) input");
    wk_module_free(m);
}

typedef struct {
    wk_module *m;
} module_case;

static wk_tensor *module_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_module_forward(((module_case *)user)->m, in[0]);
}

Test(norm, norm_modules_gradcheck)
{
    wk_module *ms[] = {wk_batch_norm2d_new(3, 1e-5, 0.1, true, true),
                       wk_layer_norm_new(WK_SHAPE(2, 5), 1e-5, true),
                       wk_group_norm_new(3, 3, 1e-5, true)};
    for (size_t i = 0; i < 3; i++) {
        wk_module *m = ms[i];
        module_to_f64(m);
        /* non-trivial affine parameters */
        wk_copy_(m->params[0].tensor, rand_t(m->params[0].tensor->shape,
                                             m->params[0].tensor->ndim, WK_DTYPE_F64, 140, 0.5, 2));
        wk_copy_(m->params[1].tensor, rand_t(m->params[1].tensor->shape,
                                             m->params[1].tensor->ndim, WK_DTYPE_F64, 141, -1, 1));
        wk_tensor *x = rand_t(WK_SHAPE(2, 3, 2, 5), WK_DTYPE_F64, 142 + i, -2, 2);
        module_case c = {m};
        gradcheck(module_fn, &c, (wk_tensor *[]){x, m->params[0].tensor, m->params[1].tensor}, 3,
                  m->type);
        if (i == 0) { /* and BatchNorm2d in evaluation */
            wk_module_train(m, false);
            gradcheck(module_fn, &c,
                      (wk_tensor *[]){x, m->params[0].tensor, m->params[1].tensor}, 3,
                      "BatchNorm2d eval");
        }
        wk_module_free(m);
    }
}

Test(norm, layer_and_group_norm_modules)
{
    wk_module *ln = wk_layer_norm_new(WK_SHAPE(3, 4), 1e-5, true);
    cr_assert_str_eq(ln->type, "LayerNorm");
    expect_names(ln, true, (const char *const[]){"weight", "bias"}, 2);
    expect_shape(wk_module_find(ln, "weight"), 3, 4);
    wk_tensor *x = fill(WK_SHAPE(2, 3, 4), WK_DTYPE_F32, 5, 2);
    wk_tensor *ref = wk_layer_norm(x, WK_SHAPE(3, 4), NULL, NULL, 1e-5);
    tu_expect_values(wk_module_forward(ln, x), wk_data(wk_to_dtype(ref, WK_DTYPE_F64)), 24, 0, 0,
                     "LayerNorm((3, 4))");
    wk_module_free(ln);
    ln = wk_layer_norm_new(WK_SHAPE(4), 1e-5, false);
    cr_assert_eq(wk_module_named_parameters(ln, true, NULL, 0), 0);
    expect_near(wk_module_forward(ln, x), ln_plain_y, 2e-6, 2e-6, "LayerNorm((4,))");
    wk_module_free(ln);
    expect_error(wk_layer_norm_new(NULL, 0, 1e-5, true), "LayerNorm: normalized_shape needs 1..8");
    wk_module *gn = wk_group_norm_new(3, 6, 1e-5, true);
    cr_assert_str_eq(gn->type, "GroupNorm");
    expect_names(gn, true, (const char *const[]){"weight", "bias"}, 2);
    expect_shape(wk_module_find(gn, "bias"), 6);
    wk_copy_(wk_module_find(gn, "weight"), fill(WK_SHAPE(6), WK_DTYPE_F32, 4, 1));
    wk_copy_(wk_module_find(gn, "bias"), fill(WK_SHAPE(6), WK_DTYPE_F32, 2, 5));
    expect_near(wk_module_forward(gn, fill(WK_SHAPE(2, 6, 3), WK_DTYPE_F32, 5, 7)), gn_y, 2e-5,
                2e-5, "GroupNorm");
    wk_module_free(gn);
    expect_error(wk_group_norm_new(4, 6, 1e-5, true),
                 "GroupNorm: num_channels (6) must be a positive multiple of num_groups (4)");
}

Test(norm, dropout_module)
{
    wk_generator g = wk_generator_make(8);
    wk_module *a = wk_dropout_new(0.5, &g), *b = wk_dropout_new(0.5, &g);
    cr_assert_not_null(a, "%s", wk_last_error());
    cr_assert_str_eq(a->type, "Dropout");
    cr_assert_eq(wk_module_named_parameters(a, true, NULL, 0), 0);
    wk_generator *ga = wk_module_dropout_generator(a), *gb = wk_module_dropout_generator(b);
    cr_assert(ga && gb && ga->seed != gb->seed, "each module gets its own stream");
    wk_tensor *x = wk_ones(WK_SHAPE(1000), WK_DTYPE_F32);
    wk_generator before = *ga;
    wk_tensor *y = wk_module_forward(a, x);
    int zeros = 0;
    for (int i = 0; i < 1000; i++) zeros += tu_at(y, i) == 0;
    cr_assert(zeros > 400 && zeros < 600, "%d zeros", zeros);
    cr_assert_neq(ga->offset, before.offset);
    *ga = before; /* restoring the generator replays the mask */
    expect_same_bits(wk_module_forward(a, x), y, "replay");
    wk_module_train(a, false);
    cr_assert_eq(wk_module_forward(a, x)->storage, x->storage, "identity in evaluation");
    wk_module *gn = wk_group_norm_new(1, 2, 1e-5, false);
    expect_error(wk_module_dropout_generator(gn),
                 "module_dropout_generator: GroupNorm has no dropout generator");
    wk_module_free(gn);
    wk_module_free(a);
    wk_module_free(b);
}

/* When the element-wise and reduction ops have backward (other branches), wk_gradcheck
 * itself checks these ops too. */
Test(norm, wk_gradcheck_when_available)
{
    wk_tensor *t = wk_requires_grad_(wk_ones(WK_SHAPE(2), WK_DTYPE_F64), true);
    wk_tensor *s = wk_sum(wk_mul(t, t), WK_ALL_DIMS, false);
    if (!s || !s->requires_grad) cr_assert_fail("mul/sum have no backward on this branch yet");
    bn_case bc = {true, true, false, false};
    ln_case lc = {2, true, false, 0};
    gn_case gc = {2, true};
    wk_tensor *x = rand_t(WK_SHAPE(4, 4, 3), WK_DTYPE_F64, 150, -2, 2);
    wk_tensor *w4 = rand_t(WK_SHAPE(4), WK_DTYPE_F64, 151, 0.5, 2);
    wk_tensor *b4 = rand_t(WK_SHAPE(4), WK_DTYPE_F64, 152, -1, 1);
    wk_tensor *w43 = rand_t(WK_SHAPE(4, 3), WK_DTYPE_F64, 153, 0.5, 2);
    wk_tensor *b43 = rand_t(WK_SHAPE(4, 3), WK_DTYPE_F64, 154, -1, 1);
    cr_assert_eq(wk_gradcheck(bn_fn, &bc, (wk_tensor *[]){x, w4, b4}, 3, 1e-6, 1e-7, 1e-5), 0,
                 "%s", wk_last_error());
    cr_assert_eq(wk_gradcheck(ln_fn, &lc, (wk_tensor *[]){x, w43, b43}, 3, 1e-6, 1e-7, 1e-5), 0,
                 "%s", wk_last_error());
    cr_assert_eq(wk_gradcheck(gn_fn, &gc, (wk_tensor *[]){x, w4, b4}, 3, 1e-6, 1e-7, 1e-5), 0,
                 "%s", wk_last_error());
    dropout_case dc = {0.3, true};
    cr_assert_eq(wk_gradcheck(dropout_fn, &dc, &x, 1, 1e-6, 1e-7, 1e-5), 0, "%s",
                 wk_last_error());
}

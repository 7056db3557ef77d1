/* Gradients of the element-wise ops.
 *
 * - Every op's backward against a naive double-precision derivative written out here,
 *   on non-contiguous leaves (transposed, sliced), broadcast inputs, a broadcast (stride
 *   0) output gradient, float32 and float64, and a large input for the parallel paths.
 * - Hand-computed gradients at torch's conventions: relu'(0) = 0, abs'(0) = 0, ties of
 *   maximum/minimum split equally, clamp passes at its bounds, pow at 0, zero gradients
 *   of sign and rounding, no gradient through floor_divide and comparisons, dtypes of
 *   mixed-precision gradients, in-place accumulation in the engine.
 * - wk_gradcheck (float64, central differences) for every op, broadcast and through
 *   transposed views. wk_gradcheck back-propagates through wk_sum, and the transposed
 *   cases through wk_transpose: those backward functions come with the reduction and
 *   view families, so until they exist those checks are skipped, not failed.
 *
 * Tolerances: f64 gradients are compared at rtol 1e-12 (a few roundings of libm results),
 * f32 at rtol 2e-5 with an atol of 1e-6 for values that cancel to near zero. */
#include <stdint.h>

#include "test_util.h"

TestSuite(grad_elementwise, .init = tu_setup, .fini = tu_teardown);

/* ---- data and helpers ---- */

static uint64_t rng = 0x2545f4914f6cdd1dull;

static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

/* A contiguous tensor of values uniform in [lo, hi]. */
static wk_tensor *uniform(const int64_t *shape, int nd, double lo, double hi, wk_dtype d)
{
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    cr_assert_not_null(t);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) p[i] = lo + (hi - lo) * rnd();
    return d == WK_DTYPE_F64 ? t : wk_to_dtype(t, d);
}

static wk_tensor *leaf(wk_tensor *t)
{
    cr_assert_not_null(wk_requires_grad_(t, true), "%s", wk_last_error());
    return t;
}

static double rtol_of(wk_dtype d) { return d == WK_DTYPE_F64 ? 1e-12 : 2e-5; }
static double atol_of(wk_dtype d) { return d == WK_DTYPE_F64 ? 1e-12 : 1e-6; }

static void expect_close(const wk_tensor *t, const double *ref, int64_t n, wk_dtype d,
                         const char *what)
{
    cr_assert_not_null(t, "%s: no gradient: %s", what, wk_last_error());
    cr_assert_eq(t->dtype, d, "%s: gradient dtype %s", what, wk_dtype_name(t->dtype));
    tu_expect_values(t, ref, n, rtol_of(d), atol_of(d), what);
}

/* wk_gradcheck needs sum's backward (and, for views, transpose's): skip until then. */
static void need_backward_of_sum(void)
{
    wk_tensor *x = leaf(wk_ones(WK_SHAPE(2, 2), WK_DTYPE_F64));
    if (!wk_sum(x, WK_ALL_DIMS, false)->requires_grad)
        cr_assert_fail("wk_sum has no backward yet (reductions): gradchecks skipped");
}

static void need_backward_of_transpose(void)
{
    need_backward_of_sum();
    wk_tensor *x = leaf(wk_ones(WK_SHAPE(2, 2), WK_DTYPE_F64));
    if (!wk_transpose(x, 0, 1)->requires_grad)
        cr_assert_fail("wk_transpose has no backward yet (views): view gradchecks skipped");
}

static void gradcheck_ok(wk_gradcheck_fn fn, void *user, wk_tensor *const *in, int n,
                         const char *what)
{
    cr_assert_eq(wk_gradcheck(fn, user, in, n, 1e-6, 1e-7, 1e-5), 0, "%s: %s", what,
                 wk_last_error());
}

/* ---- unary ops: naive derivatives ---- */

#define SQRT_2PI 2.50662827463100050242
static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double d_neg(double x) { return (void)x, -1; }
static double d_abs(double x) { return (x > 0) - (x < 0); }
static double d_zero(double x) { return (void)x, 0; }
static double d_exp(double x) { return exp(x); }
static double d_log(double x) { return 1 / x; }
static double d_sqrt(double x) { return 0.5 / sqrt(x); }
static double d_rsqrt(double x) { return -0.5 * pow(x, -1.5); }
static double d_relu(double x) { return x > 0; }
static double d_gelu(double x)
{
    return 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-0.5 * x * x) / SQRT_2PI;
}
static double d_gelu_tanh(double x)
{
    const double c = sqrt(2 / M_PI), k = 0.044715;
    double t = tanh(c * (x + k * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x);
}
static double d_silu(double x) { return sigmoid(x) * (1 + x * (1 - sigmoid(x))); }
static double d_sigmoid(double x) { return sigmoid(x) * (1 - sigmoid(x)); }
static double d_tanh(double x) { return 1 - tanh(x) * tanh(x); }
static double d_square(double x) { return 2 * x; }
static double d_reciprocal(double x) { return -1 / (x * x); }
static double d_sin(double x) { return cos(x); }
static double d_cos(double x) { return -sin(x); }
static double d_log1p(double x) { return 1 / (1 + x); }
static double d_clamp(double x) { return x >= -0.5 && x <= 0.5; }

typedef struct {
    wk_unary_op op;
    double lo, hi; /* input range: inside the domain */
    double (*d)(double);
} unary_case;

static const unary_case unary_cases[] = {
    {WK_UNARY_NEG, -2, 2, d_neg},
    {WK_UNARY_ABS, -2, 2, d_abs},
    {WK_UNARY_SIGN, -2, 2, d_zero},
    {WK_UNARY_EXP, -2, 2, d_exp},
    {WK_UNARY_LOG, 0.5, 3, d_log},
    {WK_UNARY_SQRT, 0.5, 3, d_sqrt},
    {WK_UNARY_RSQRT, 0.5, 3, d_rsqrt},
    {WK_UNARY_RELU, -2, 2, d_relu},
    {WK_UNARY_GELU, -3, 3, d_gelu},
    {WK_UNARY_GELU_TANH, -3, 3, d_gelu_tanh},
    {WK_UNARY_SILU, -4, 4, d_silu},
    {WK_UNARY_SIGMOID, -4, 4, d_sigmoid},
    {WK_UNARY_TANH, -2, 2, d_tanh},
    {WK_UNARY_SQUARE, -2, 2, d_square},
    {WK_UNARY_RECIPROCAL, 0.5, 3, d_reciprocal},
    {WK_UNARY_SIN, -3, 3, d_sin},
    {WK_UNARY_COS, -3, 3, d_cos},
    {WK_UNARY_LOG1P, -0.5, 3, d_log1p},
    {WK_UNARY_FLOOR, -2, 2, d_zero},
    {WK_UNARY_CEIL, -2, 2, d_zero},
    {WK_UNARY_ROUND, -2, 2, d_zero},
    {WK_UNARY_TRUNC, -2, 2, d_zero},
    {WK_UNARY_CLAMP, -1, 1, d_clamp},
};
_Static_assert(sizeof unary_cases / sizeof unary_cases[0] == WK_UNARY_COUNT,
               "one case per unary op");

static wk_tensor *apply_unary(wk_unary_op op, wk_tensor *x)
{
    return op == WK_UNARY_CLAMP ? wk_clamp(x, -0.5, 0.5) : wk_unary(op, x);
}

/* op on a transposed leaf, with a stride-0 output gradient, against the naive formula. */
static void check_unary(const unary_case *c, wk_dtype d, int64_t rows, int64_t cols)
{
    const char *name = wk_unary_name(c->op);
    wk_tensor *base = uniform(WK_SHAPE(cols, rows), c->lo, c->hi, d);
    wk_tensor *x = leaf(wk_transpose(base, 0, 1)); /* [rows, cols], not contiguous */
    cr_assert_not(wk_is_contiguous(x));
    wk_tensor *y = apply_unary(c->op, x);
    cr_assert(y && y->requires_grad, "%s: output does not require grad", name);
    wk_tensor *grow = uniform(WK_SHAPE(1, cols), -1, 1, d);
    wk_tensor *gout = wk_expand(grow, WK_SHAPE(rows, cols)); /* stride 0 over rows */
    cr_assert_eq(wk_backward_ex(y, gout, false), 0, "%s: %s", name, wk_last_error());
    expect_shape(x->grad, rows, cols);
    double *ref = malloc(sizeof *ref * (size_t)(rows * cols));
    for (int64_t i = 0; i < rows; i++)
        for (int64_t j = 0; j < cols; j++)
            ref[i * cols + j] = tu_at(grow, j) * c->d(tu_at(x, i * cols + j));
    expect_close(x->grad, ref, rows * cols, d, name);
    free(ref);
}

Test(grad_elementwise, unary_against_naive_derivatives)
{
    for (int k = 0; k < WK_UNARY_COUNT; k++) {
        check_unary(&unary_cases[k], WK_DTYPE_F64, 5, 7);
        check_unary(&unary_cases[k], WK_DTYPE_F32, 5, 7);
    }
}

Test(grad_elementwise, activations_large_parallel)
{
    const wk_unary_op ops[] = {WK_UNARY_RELU, WK_UNARY_GELU, WK_UNARY_GELU_TANH,
                               WK_UNARY_SILU, WK_UNARY_SIGMOID, WK_UNARY_TANH};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
        check_unary(&unary_cases[ops[k]], WK_DTYPE_F32, 1000, 1001);
}

Test(grad_elementwise, unary_contiguous_grad_and_zero_size)
{
    wk_tensor *x = leaf(uniform(WK_SHAPE(3, 4), -2, 2, WK_DTYPE_F64));
    wk_tensor *g = uniform(WK_SHAPE(3, 4), -1, 1, WK_DTYPE_F64);
    cr_assert_eq(wk_backward_ex(wk_tanh(x), g, false), 0, "%s", wk_last_error());
    double ref[12];
    for (int i = 0; i < 12; i++) ref[i] = tu_at(g, i) * d_tanh(tu_at(x, i));
    expect_close(x->grad, ref, 12, WK_DTYPE_F64, "tanh");

    wk_tensor *e = leaf(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F64));
    cr_assert_eq(wk_backward_ex(wk_gelu(e), wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F64), false), 0,
                 "%s", wk_last_error());
    expect_shape(e->grad, 0, 3);
}

/* ---- binary ops: naive derivatives ---- */

typedef struct {
    wk_binary_op op;
    double alo, ahi, blo, bhi;
    double (*da)(double a, double b), (*db)(double a, double b);
} binary_case;

static double one(double a, double b) { return (void)a, (void)b, 1; }
static double minus_one(double a, double b) { return (void)a, (void)b, -1; }
static double mul_da(double a, double b) { return (void)a, b; }
static double mul_db(double a, double b) { return (void)b, a; }
static double div_da(double a, double b) { return (void)a, 1 / b; }
static double div_db(double a, double b) { return -a / (b * b); }
static double pow_da(double a, double b) { return b * pow(a, b - 1); }
static double pow_db(double a, double b) { return pow(a, b) * log(a); }
static double max_da(double a, double b) { return a > b ? 1 : a < b ? 0 : 0.5; }
static double max_db(double a, double b) { return max_da(b, a); }
static double rem_db(double a, double b) { return -floor(a / b); }

static const binary_case binary_cases[] = {
    {WK_BINARY_ADD, -2, 2, -2, 2, one, one},
    {WK_BINARY_SUB, -2, 2, -2, 2, one, minus_one},
    {WK_BINARY_MUL, -2, 2, -2, 2, mul_da, mul_db},
    {WK_BINARY_DIV, -2, 2, 0.5, 2, div_da, div_db},
    {WK_BINARY_POW, 0.5, 2, -2, 2, pow_da, pow_db},
    {WK_BINARY_MAXIMUM, -2, 2, -2, 2, max_da, max_db},
    {WK_BINARY_MINIMUM, -2, 2, -2, 2, max_db, max_da},
    {WK_BINARY_REMAINDER, -5, 5, 0.7, 2, one, rem_db},
};
#define NBINARY (int)(sizeof binary_cases / sizeof binary_cases[0])

/* a [R, 1] (a leaf column of a transposed matrix) op b [C] (a leaf sliced with step 2):
 * both broadcast to [R, C]; their gradients sum the broadcast dims back. */
static void check_binary(const binary_case *c, wk_dtype d)
{
    const char *name = wk_binary_name(c->op);
    enum { R = 3, C = 4 };
    wk_tensor *abase = uniform(WK_SHAPE(2, R), c->alo, c->ahi, d);
    wk_tensor *a = leaf(wk_slice(wk_transpose(abase, 0, 1), 1, 0, 1, 1)); /* [R, 1] */
    wk_tensor *bbase = uniform(WK_SHAPE(2 * C), c->blo, c->bhi, d);
    wk_tensor *b = leaf(wk_slice(bbase, 0, 0, 2 * C, 2)); /* [C], stride 2 */
    cr_assert_not(wk_is_contiguous(b));
    wk_tensor *y = wk_binary(c->op, a, b);
    cr_assert(y && y->requires_grad, "%s: %s", name, wk_last_error());
    wk_tensor *g = uniform(WK_SHAPE(R, C), -1, 1, d);
    cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s: %s", name, wk_last_error());
    double ga[R] = {0}, gb[C] = {0};
    for (int i = 0; i < R; i++) {
        for (int j = 0; j < C; j++) {
            double av = tu_at(a, i), bv = tu_at(b, j), gv = tu_at(g, i * C + j);
            ga[i] += gv * c->da(av, bv);
            gb[j] += gv * c->db(av, bv);
        }
    }
    expect_shape(a->grad, R, 1);
    expect_shape(b->grad, C);
    expect_close(a->grad, ga, R, d, name);
    expect_close(b->grad, gb, C, d, name);
}

Test(grad_elementwise, binary_broadcast_against_naive_derivatives)
{
    for (int k = 0; k < NBINARY; k++) {
        check_binary(&binary_cases[k], WK_DTYPE_F64);
        check_binary(&binary_cases[k], WK_DTYPE_F32);
    }
}

Test(grad_elementwise, binary_large_parallel)
{
    /* x [1000, 1001] * w [1001] (a bias-like broadcast): the sum over rows is large */
    wk_tensor *x = leaf(uniform(WK_SHAPE(1000, 1001), -1, 1, WK_DTYPE_F64));
    wk_tensor *w = leaf(uniform(WK_SHAPE(1001), -1, 1, WK_DTYPE_F64));
    wk_tensor *g = uniform(WK_SHAPE(1000, 1001), -1, 1, WK_DTYPE_F64);
    cr_assert_eq(wk_backward_ex(wk_mul(x, w), g, false), 0, "%s", wk_last_error());
    const double *pg = wk_data(g), *px = wk_data(x), *pw = wk_data(w);
    double *gw = calloc(1001, sizeof *gw), *gx = malloc(sizeof *gx * 1000 * 1001);
    for (int i = 0; i < 1000; i++) {
        for (int j = 0; j < 1001; j++) {
            gw[j] += pg[i * 1001 + j] * px[i * 1001 + j];
            gx[i * 1001 + j] = pg[i * 1001 + j] * pw[j];
        }
    }
    tu_expect_values(x->grad, gx, 1000 * 1001, 0, 0, "x grad (exact)");
    tu_expect_values(w->grad, gw, 1001, 1e-12, 1e-12, "w grad");
    free(gw);
    free(gx);
}

/* ---- scalar variants ---- */

typedef struct {
    wk_tensor *(*fn)(wk_tensor *, double);
    double s;
    double lo, hi;
    double (*d)(double x, double s);
    const char *name;
} scalar_case;

static double s_one(double x, double s) { return (void)x, (void)s, 1; }
static double s_minus_one(double x, double s) { return (void)x, (void)s, -1; }
static double s_mul(double x, double s) { return (void)x, s; }
static double s_div(double x, double s) { return (void)x, 1 / s; }
static double s_pow(double x, double s) { return s == 0 ? 0 : s * pow(x, s - 1); }

static const scalar_case scalar_cases[] = {
    {wk_add_scalar, 2.5, -2, 2, s_one, "add_scalar"},
    {wk_sub_scalar, 2.5, -2, 2, s_one, "sub_scalar"},
    {wk_rsub_scalar, 2.5, -2, 2, s_minus_one, "rsub_scalar"},
    {wk_mul_scalar, -1.5, -2, 2, s_mul, "mul_scalar"},
    {wk_div_scalar, 4, -2, 2, s_div, "div_scalar"},
    {wk_pow_scalar, 2, -2, 2, s_pow, "pow_scalar 2"},
    {wk_pow_scalar, 3, -2, 2, s_pow, "pow_scalar 3"},
    {wk_pow_scalar, 0.5, 0.5, 2, s_pow, "pow_scalar 0.5"},
    {wk_pow_scalar, -1, 0.5, 2, s_pow, "pow_scalar -1"},
    {wk_pow_scalar, 2.5, 0.5, 2, s_pow, "pow_scalar 2.5"},
    {wk_pow_scalar, 0, -2, 2, s_pow, "pow_scalar 0"},
};
#define NSCALAR (int)(sizeof scalar_cases / sizeof scalar_cases[0])

Test(grad_elementwise, scalar_variants_against_naive_derivatives)
{
    for (int k = 0; k < NSCALAR; k++) {
        const scalar_case *c = &scalar_cases[k];
        for (int f = 0; f < 2; f++) {
            wk_dtype d = f ? WK_DTYPE_F32 : WK_DTYPE_F64;
            wk_tensor *x = leaf(wk_transpose(uniform(WK_SHAPE(4, 3), c->lo, c->hi, d), 0, 1));
            wk_tensor *y = c->fn(x, c->s);
            cr_assert(y && y->requires_grad, "%s: %s", c->name, wk_last_error());
            cr_assert_eq(y->grad_fn ? 1 : 0, 1);
            wk_tensor *g = uniform(WK_SHAPE(3, 4), -1, 1, d);
            cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s: %s", c->name, wk_last_error());
            double ref[12];
            for (int i = 0; i < 12; i++) ref[i] = tu_at(g, i) * c->d(tu_at(x, i), c->s);
            expect_close(x->grad, ref, 12, d, c->name);
        }
    }
}

/* ---- where ---- */

Test(grad_elementwise, where_routes_by_condition)
{
    wk_tensor *cond = wk_gt_scalar(tu_f64(WK_SHAPE(3, 1), 1, -1, 2), 0); /* [3, 1] bool */
    wk_tensor *a = leaf(uniform(WK_SHAPE(3, 4), -1, 1, WK_DTYPE_F64));
    wk_tensor *b = leaf(uniform(WK_SHAPE(4), -1, 1, WK_DTYPE_F32)); /* promoted to f64 */
    wk_tensor *y = wk_where(cond, a, b);
    cr_assert(y && y->requires_grad && y->dtype == WK_DTYPE_F64, "%s", wk_last_error());
    wk_tensor *g = uniform(WK_SHAPE(3, 4), -1, 1, WK_DTYPE_F64);
    cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s", wk_last_error());
    const bool c[3] = {true, false, true};
    double ga[12], gb[4] = {0};
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 4; j++) {
            ga[i * 4 + j] = c[i] ? tu_at(g, i * 4 + j) : 0;
            if (!c[i]) gb[j] += tu_at(g, i * 4 + j);
        }
    }
    expect_close(a->grad, ga, 12, WK_DTYPE_F64, "where a");
    expect_close(b->grad, gb, 4, WK_DTYPE_F32, "where b");
}

/* ---- hand-computed gradients at torch's conventions ---- */

/* x->grad of sum(fn(x)) through an explicit all-ones output gradient. */
static wk_tensor *grad_of(wk_tensor *y, wk_tensor *x)
{
    cr_assert(y && y->requires_grad, "%s", wk_last_error());
    cr_assert_eq(wk_backward_ex(y, wk_ones_like(y), false), 0, "%s", wk_last_error());
    return x->grad;
}

Test(grad_elementwise, kinks_follow_torch)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(3), -1, 0, 2));
    expect_values(grad_of(wk_relu(x), x), 0, 0, 0, 1); /* relu'(0) = 0 */
    wk_tensor *xa = leaf(tu_f64(WK_SHAPE(3), -2, 0, 3));
    expect_values(grad_of(wk_abs(xa), xa), 0, -1, 0, 1); /* abs'(0) = 0 */
    wk_tensor *xc = leaf(tu_f64(WK_SHAPE(5), -1, -0.5, 0, 0.5, 1));
    expect_values(grad_of(wk_clamp(xc, -0.5, 0.5), xc), 0, 0, 1, 1, 1, 0); /* bounds pass */
    wk_tensor *xm = leaf(tu_f64(WK_SHAPE(3), -1, 0, NAN));
    expect_values(grad_of(wk_clamp(xm, 0, NAN), xm), 0, 0, 1, 0); /* min only; NaN: 0 */
    wk_tensor *xn = leaf(tu_f64(WK_SHAPE(2), -1, NAN));
    expect_values(grad_of(wk_unary(WK_UNARY_CLAMP, xn), xn), 0, 1, 1); /* no bounds */
    wk_tensor *xs = leaf(tu_f64(WK_SHAPE(2), 0, 4));
    expect_values(grad_of(wk_sqrt(xs), xs), 0, INFINITY, 0.25);
    wk_tensor *xt = leaf(tu_f64(WK_SHAPE(3), -1, 0, 2));
    expect_values(grad_of(wk_tanh(xt), xt), 1e-15, d_tanh(-1), 1, d_tanh(2));
}

Test(grad_elementwise, maximum_minimum_split_ties)
{
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(3), 1, 2, 3));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(3), 1, 5, 0));
    cr_assert_eq(wk_backward_ex(wk_maximum(a, b), wk_ones(WK_SHAPE(3), WK_DTYPE_F64), false),
                 0);
    expect_values(a->grad, 0, 0.5, 0, 1);
    expect_values(b->grad, 0, 0.5, 1, 0);
    wk_zero_grad((wk_tensor *[]){a, b}, 2);
    cr_assert_eq(wk_backward_ex(wk_minimum(a, b), wk_ones(WK_SHAPE(3), WK_DTYPE_F64), false),
                 0);
    expect_values(a->grad, 0, 0.5, 1, 0);
    expect_values(b->grad, 0, 0.5, 0, 1);
    /* a tie broadcast over several elements: each takes half of its own gradient */
    wk_tensor *s = leaf(tu_f64(WK_SHAPE(1), 2));
    wk_tensor *v = leaf(tu_f64(WK_SHAPE(3), 2, 2, 1));
    cr_assert_eq(wk_backward_ex(wk_maximum(s, v), tu_f64(WK_SHAPE(3), 1, 10, 100), false), 0);
    expect_values(s->grad, 0, 0.5 + 5 + 100);
    expect_values(v->grad, 0, 0.5, 5, 0);
}

Test(grad_elementwise, pow_at_zero_follows_torch)
{
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(4), 0, 0, 2, 0));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(4), 2, 0, 0, 0.5));
    cr_assert_eq(wk_backward_ex(wk_pow(a, b), wk_ones(WK_SHAPE(4), WK_DTYPE_F64), false), 0);
    /* base: b * a^(b-1), but 0 where b == 0 (torch), inf for 0^-0.5 */
    expect_values(a->grad, 0, 0, 0, 0, INFINITY);
    /* exponent: a^b log(a), but 0 where a == 0 and b >= 0 */
    expect_values(b->grad, 1e-15, 0, 0, log(2), 0);
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(3), 0, 1, -2));
    expect_values(grad_of(wk_pow_scalar(x, 0), x), 0, 0, 0, 0);
    wk_tensor *z = leaf(tu_f64(WK_SHAPE(2), 0, 3));
    expect_values(grad_of(wk_pow_scalar(z, 2), z), 0, 0, 6);
}

Test(grad_elementwise, piecewise_constant_ops_give_zeros)
{
    const wk_unary_op ops[] = {WK_UNARY_SIGN, WK_UNARY_FLOOR, WK_UNARY_CEIL, WK_UNARY_ROUND,
                               WK_UNARY_TRUNC};
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
        wk_tensor *x = leaf(tu_f64(WK_SHAPE(2, 2), -1.5, 0, 0.5, 2.7));
        wk_tensor *y = wk_unary(ops[k], x);
        cr_assert(y->requires_grad, "%s records a node, as torch", wk_unary_name(ops[k]));
        wk_tensor *gx = grad_of(y, x);
        expect_shape(gx, 2, 2);
        expect_values(x->grad, 0, 0, 0, 0, 0);
    }
}

Test(grad_elementwise, non_differentiable_results)
{
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(2), 5, -5));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(2), 3, 3));
    cr_assert_not(wk_floor_divide(a, b)->requires_grad, "floor_divide: no grad (torch)");
    cr_assert_null(wk_floor_divide(a, b)->grad_fn);
    const wk_binary_op cmps[] = {WK_BINARY_EQ, WK_BINARY_NE, WK_BINARY_LT,
                                 WK_BINARY_LE, WK_BINARY_GT, WK_BINARY_GE};
    for (size_t k = 0; k < sizeof cmps / sizeof cmps[0]; k++)
        cr_assert_not(wk_binary(cmps[k], a, b)->requires_grad);
    cr_assert_not(wk_gt_scalar(a, 0)->requires_grad);
    /* remainder: d/da = 1, d/db = -floor(a / b) */
    cr_assert_eq(wk_backward_ex(wk_remainder(a, b), wk_ones(WK_SHAPE(2), WK_DTYPE_F64), false),
                 0);
    expect_values(a->grad, 0, 1, 1);
    expect_values(b->grad, 0, -1, 2);
    /* no_grad: nothing is recorded */
    wk_no_grad_begin();
    cr_assert_not(wk_exp(a)->requires_grad);
    cr_assert_not(wk_mul(a, b)->requires_grad);
    cr_assert_not(wk_where(wk_gt(a, b), a, b)->requires_grad);
    wk_no_grad_end();
}

Test(grad_elementwise, gradient_dtypes_follow_the_inputs)
{
    wk_tensor *a = leaf(tu_f32(WK_SHAPE(3), 1, 2, 3));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(3), 4, 5, 6));
    wk_tensor *y = wk_mul(a, b); /* float64 */
    cr_assert_eq(y->dtype, WK_DTYPE_F64);
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(3), 1, 1, 1), false), 0);
    cr_assert_eq(a->grad->dtype, WK_DTYPE_F32);
    expect_values(a->grad, 0, 4, 5, 6);
    expect_values(b->grad, 0, 1, 2, 3);
    /* a 0-d float64 beside a float32 tensor: a float32 result, a 0-d float64 gradient */
    wk_tensor *s = leaf(wk_scalar(2, WK_DTYPE_F64));
    wk_tensor *v = leaf(tu_f32(WK_SHAPE(3), 1, 2, 3));
    wk_tensor *z = wk_mul(s, v);
    cr_assert_eq(z->dtype, WK_DTYPE_F32);
    cr_assert_eq(wk_backward_ex(z, tu_f32(WK_SHAPE(3), 1, 1, 1), false), 0);
    cr_assert_eq(s->grad->dtype, WK_DTYPE_F64);
    cr_assert_eq(s->grad->ndim, 0);
    expect_values(s->grad, 0, 6);
    expect_values(v->grad, 0, 2, 2, 2);
    /* an integer operand gets no gradient and does not stop the other's */
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1.5, 2));
    wk_tensor *k = tu_i64(WK_SHAPE(2), 3, -4);
    cr_assert_eq(wk_backward_ex(wk_div(x, k), tu_f64(WK_SHAPE(2), 1, 1), false), 0);
    expect_values(x->grad, 0, 1.0 / 3, -0.25);
}

Test(grad_elementwise, same_tensor_twice_and_chains)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(3), -1, 0.5, 2));
    /* x*x + x/x: both operands of each op are x */
    wk_tensor *y = wk_add(wk_mul(x, x), wk_div(x, x));
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(3), 1, 1, 1), false), 0);
    expect_values(x->grad, 1e-15, -2, 1, 4);
    /* silu(x * w + b): a typical layer chain */
    wk_tensor *w = leaf(tu_f64(WK_SHAPE(3), 0.5, -1, 2));
    wk_tensor *bias = leaf(tu_f64(WK_SHAPE(1), 0.25));
    wk_zero_grad(&x, 1);
    wk_tensor *h = wk_silu(wk_add(wk_mul(x, w), bias));
    cr_assert_eq(wk_backward_ex(h, tu_f64(WK_SHAPE(3), 1, 1, 1), false), 0);
    const double xv[3] = {-1, 0.5, 2}, wv[3] = {0.5, -1, 2};
    double gx[3], gw[3], gb = 0;
    for (int i = 0; i < 3; i++) {
        double dz = d_silu(xv[i] * wv[i] + 0.25);
        gx[i] = dz * wv[i];
        gw[i] = dz * xv[i];
        gb += dz;
    }
    tu_expect_values(x->grad, gx, 3, 1e-14, 0, "x");
    tu_expect_values(w->grad, gw, 3, 1e-14, 0, "w");
    tu_expect_values(bias->grad, &gb, 1, 1e-14, 0, "bias");
}

/* The engine sums the gradients of a node in place into a buffer it alone owns; a
 * gradient shared with another node (add passes its gradient on to both inputs) must not
 * be written into. */
Test(grad_elementwise, engine_accumulates_without_touching_shared_gradients)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 0.5, -1));
    wk_tensor *p = wk_exp(x), *q = wk_sin(x);
    wk_tensor *y = wk_add(wk_add(p, q), wk_mul_scalar(p, 2)); /* 3 exp(x) + sin(x) */
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(2), 1, 1), false), 0, "%s",
                 wk_last_error());
    expect_values(x->grad, 1e-15, 3 * exp(0.5) + cos(0.5), 3 * exp(-1) + cos(-1));
    /* the same with the shared gradient arriving second */
    wk_tensor *x2 = leaf(tu_f64(WK_SHAPE(2), 0.5, -1));
    wk_tensor *p2 = wk_exp(x2), *q2 = wk_sin(x2);
    wk_tensor *y2 = wk_add(wk_mul_scalar(p2, 2), wk_add(p2, q2));
    cr_assert_eq(wk_backward_ex(y2, tu_f64(WK_SHAPE(2), 1, 1), false), 0);
    expect_values(x2->grad, 1e-15, 3 * exp(0.5) + cos(0.5), 3 * exp(-1) + cos(-1));
    /* leaves accumulate across backward calls */
    wk_tensor *z = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    for (int i = 0; i < 3; i++)
        cr_assert_eq(wk_backward_ex(wk_mul_scalar(z, 2), tu_f64(WK_SHAPE(2), 1, 1), false), 0);
    expect_values(z->grad, 0, 6, 6);
}

Test(grad_elementwise, saved_output_survives_the_user_freeing_it)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 0.5, -1));
    wk_frame_begin();
    wk_tensor *y = wk_sigmoid(x);
    wk_tensor *z = wk_keep(wk_mul_scalar(y, 3));
    wk_frame_end(); /* y's handle is gone; its node kept what backward needs */
    cr_assert_eq(wk_backward_ex(z, tu_f64(WK_SHAPE(2), 1, 1), false), 0, "%s",
                 wk_last_error());
    expect_values(x->grad, 1e-15, 3 * d_sigmoid(0.5), 3 * d_sigmoid(-1));
}

Test(grad_elementwise, steady_loop_releases_everything)
{
    wk_tensor *w = leaf(wk_ones(WK_SHAPE(32, 32), WK_DTYPE_F32));
    wk_tensor *g = wk_ones(WK_SHAPE(32, 32), WK_DTYPE_F32);
    wk_alloc_stats a = {0};
    for (int i = 0; i < 8; i++) {
        if (i == 3) a = wk_alloc_get_stats();
        wk_frame_begin();
        wk_tensor *h = wk_gelu(wk_add(wk_mul(w, w), wk_sigmoid(w)));
        wk_backward_ex(wk_where(wk_gt_scalar(h, 1), h, wk_tanh(h)), g, false);
        wk_frame_end();
    }
    wk_alloc_stats b = wk_alloc_get_stats();
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use, "graph memory released");
    cr_assert_eq(a.malloc_calls, b.malloc_calls, "no malloc in a steady loop");
}

/* ---- wk_gradcheck: every op, float64 ---- */

static wk_tensor *unary_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return apply_unary(((const unary_case *)user)->op, in[0]);
}

/* the op on the transpose of the input (a non-contiguous view inside the graph) */
static wk_tensor *unary_t_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return apply_unary(((const unary_case *)user)->op, wk_transpose(in[0], 0, 1));
}

/* Rounding ops and the kinks have zero-measure sets where finite differences disagree;
 * random inputs in these ranges stay more than eps away from them. */
Test(grad_elementwise, gradcheck_unary)
{
    need_backward_of_sum();
    for (int k = 0; k < WK_UNARY_COUNT; k++) {
        const unary_case *c = &unary_cases[k];
        wk_tensor *x = uniform(WK_SHAPE(3, 4), c->lo, c->hi, WK_DTYPE_F64);
        gradcheck_ok(unary_fn, (void *)c, &x, 1, wk_unary_name(c->op));
    }
}

Test(grad_elementwise, gradcheck_unary_transposed)
{
    need_backward_of_transpose();
    for (int k = 0; k < WK_UNARY_COUNT; k++) {
        const unary_case *c = &unary_cases[k];
        wk_tensor *x = uniform(WK_SHAPE(4, 3), c->lo, c->hi, WK_DTYPE_F64);
        gradcheck_ok(unary_t_fn, (void *)c, &x, 1, wk_unary_name(c->op));
    }
}

static wk_tensor *binary_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_binary(((const binary_case *)user)->op, in[0], in[1]);
}

/* a^T op b: the transposed [4, 3] matrix against a broadcast row */
static wk_tensor *binary_t_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_binary(((const binary_case *)user)->op, wk_transpose(in[0], 0, 1), in[1]);
}

Test(grad_elementwise, gradcheck_binary_broadcast)
{
    need_backward_of_sum();
    for (int k = 0; k < NBINARY; k++) {
        const binary_case *c = &binary_cases[k];
        const char *name = wk_binary_name(c->op);
        /* [3, 1] with [4]; [2, 3, 4] with a 0-d tensor; same shapes */
        wk_tensor *in1[2] = {uniform(WK_SHAPE(3, 1), c->alo, c->ahi, WK_DTYPE_F64),
                             uniform(WK_SHAPE(4), c->blo, c->bhi, WK_DTYPE_F64)};
        gradcheck_ok(binary_fn, (void *)c, in1, 2, name);
        wk_tensor *in2[2] = {uniform(WK_SHAPE(2, 3, 4), c->alo, c->ahi, WK_DTYPE_F64),
                             uniform(NULL, 0, c->blo, c->bhi, WK_DTYPE_F64)};
        gradcheck_ok(binary_fn, (void *)c, in2, 2, name);
        wk_tensor *in3[2] = {uniform(WK_SHAPE(3, 4), c->alo, c->ahi, WK_DTYPE_F64),
                             uniform(WK_SHAPE(3, 4), c->blo, c->bhi, WK_DTYPE_F64)};
        gradcheck_ok(binary_fn, (void *)c, in3, 2, name);
    }
}

Test(grad_elementwise, gradcheck_binary_transposed)
{
    need_backward_of_transpose();
    for (int k = 0; k < NBINARY; k++) {
        const binary_case *c = &binary_cases[k];
        wk_tensor *in[2] = {uniform(WK_SHAPE(4, 3), c->alo, c->ahi, WK_DTYPE_F64),
                            uniform(WK_SHAPE(4), c->blo, c->bhi, WK_DTYPE_F64)};
        gradcheck_ok(binary_t_fn, (void *)c, in, 2, wk_binary_name(c->op));
    }
}

static wk_tensor *scalar_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    const scalar_case *c = user;
    return c->fn(in[0], c->s);
}

Test(grad_elementwise, gradcheck_scalar_variants)
{
    need_backward_of_sum();
    for (int k = 0; k < NSCALAR; k++) {
        const scalar_case *c = &scalar_cases[k];
        wk_tensor *x = uniform(WK_SHAPE(2, 3), c->lo, c->hi, WK_DTYPE_F64);
        gradcheck_ok(scalar_fn, (void *)c, &x, 1, c->name);
    }
}

static wk_tensor *where_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    return wk_where((wk_tensor *)user, in[0], in[1]);
}

Test(grad_elementwise, gradcheck_where)
{
    need_backward_of_sum();
    wk_tensor *cond = wk_gt_scalar(tu_f64(WK_SHAPE(3, 1), 1, -1, 2), 0);
    wk_tensor *in[2] = {uniform(WK_SHAPE(3, 4), -1, 1, WK_DTYPE_F64),
                        uniform(WK_SHAPE(4), -1, 1, WK_DTYPE_F64)};
    gradcheck_ok(where_fn, cond, in, 2, "where");
}

/* A composite: gelu_tanh(x * w + b) / (1 + sigmoid(x)^2) - sqrt(w^2 + 1) */
static wk_tensor *composite_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    wk_tensor *h = wk_gelu_tanh(wk_add(wk_mul(in[0], in[1]), in[2]));
    wk_tensor *den = wk_add_scalar(wk_square(wk_sigmoid(in[0])), 1);
    return wk_sub(wk_div(h, den), wk_sqrt(wk_add_scalar(wk_pow_scalar(in[1], 2), 1)));
}

Test(grad_elementwise, gradcheck_composite)
{
    need_backward_of_sum();
    wk_tensor *in[3] = {uniform(WK_SHAPE(5, 4), -2, 2, WK_DTYPE_F64),
                        uniform(WK_SHAPE(4), -2, 2, WK_DTYPE_F64),
                        uniform(WK_SHAPE(1), -1, 1, WK_DTYPE_F64)};
    gradcheck_ok(composite_fn, NULL, in, 3, "composite");
}

/* Element-wise ops: every op and dtype against a naive double-precision reference,
 * over broadcast, transposed, sliced, expanded, 0-d, 0-size and large inputs; type
 * promotion; NaN/inf; and every error message.
 *
 * Tolerances: results the IEEE operations define exactly (+ - * /, sqrt, comparisons,
 * rounding, max/min, integer ops) must equal the double reference rounded to the output
 * dtype (for f32 inputs, double arithmetic is exact or rounds once more without crossing
 * a float boundary). Results of libm functions and compound formulas may differ by a few
 * ulp per rounding step: rtol 1e-5 (f32) / 1e-12 (f64), with an atol of the same size for
 * results that cancel to near zero. */
#include <stdint.h>

#include "test_util.h"

TestSuite(elementwise, .init = tu_setup, .fini = tu_teardown);

/* ---- deterministic data ---- */

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static double rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static bool is_float(wk_dtype d) { return d == WK_DTYPE_F32 || d == WK_DTYPE_F64; }

/* v rounded or wrapped to dtype d, as a double. */
static double cast_to(wk_dtype d, double v)
{
    switch (d) {
    case WK_DTYPE_F32: return (float)v;
    case WK_DTYPE_F64: return v;
    case WK_DTYPE_I32: return (int32_t)(uint32_t)(uint64_t)(int64_t)v;
    case WK_DTYPE_I64: return (double)(int64_t)v;
    case WK_DTYPE_U8: return (uint8_t)(uint64_t)(int64_t)v;
    default: return v != 0;
    }
}

static void put(wk_tensor *t, int64_t i, double v)
{
    char *p = (char *)wk_data(t) + i * (int64_t)wk_dtype_size(t->dtype);
    switch (t->dtype) {
    case WK_DTYPE_F32: *(float *)p = (float)v; break;
    case WK_DTYPE_F64: *(double *)p = v; break;
    case WK_DTYPE_I32: *(int32_t *)p = (int32_t)v; break;
    case WK_DTYPE_I64: *(int64_t *)p = (int64_t)v; break;
    default: *(uint8_t *)p = (uint8_t)v; break;
    }
}

/* Random values of a dtype: floats in [-3, 3] (float-representable, so f64 arithmetic
 * on them is exact where the tests need it), signed ints in [-9, 9], u8 in [0, 20],
 * bools. `nonzero` keeps integer divisors away from 0. */
static double gen(wk_dtype d, bool nonzero)
{
    double v;
    if (is_float(d)) v = (float)(-3 + 6 * rnd());
    else if (d == WK_DTYPE_U8) v = floor(21 * rnd());
    else if (d == WK_DTYPE_BOOL) v = rnd() < 0.5;
    else v = floor(-9 + 19 * rnd());
    if (nonzero && v == 0) v = d == WK_DTYPE_BOOL ? 1 : 3;
    return v;
}

static wk_tensor *make(wk_dtype d, const int64_t *shape, int nd, bool nonzero)
{
    wk_tensor *t = wk_empty(shape, nd, d);
    cr_assert_not_null(t);
    for (int64_t i = 0; i < wk_numel(t); i++) put(t, i, gen(d, nonzero));
    return t;
}

static wk_tensor *from_values(wk_dtype d, const double *v, int64_t n)
{
    wk_tensor *t = wk_empty((int64_t[]){n}, 1, d);
    for (int64_t i = 0; i < n; i++) put(t, i, v[i]);
    return t;
}
#define VALS(d, ...)                                                                     \
    from_values(d, (const double[]){__VA_ARGS__},                                        \
                (int64_t)(sizeof((double[]){__VA_ARGS__}) / sizeof(double)))

typedef enum { CONTIG, TRANSPOSED, SLICED, EXPANDED, LAYOUTS } layout;
static const char *layout_name[] = {"contiguous", "transposed", "sliced", "expanded"};

/* A tensor of the given logical shape laid out as asked (non-contiguous where the shape
 * allows it). */
static wk_tensor *make_as(wk_dtype d, const int64_t *shape, int nd, layout L, bool nonzero)
{
    int64_t s[WK_MAX_DIMS];
    memcpy(s, shape, (size_t)nd * sizeof *s);
    if (L == TRANSPOSED && nd >= 2) {
        s[nd - 1] = shape[nd - 2];
        s[nd - 2] = shape[nd - 1];
        return wk_transpose(make(d, s, nd, nonzero), nd - 2, nd - 1);
    }
    if (L == SLICED && nd >= 1) {
        s[nd - 1] = 2 * shape[nd - 1] + 1;
        return wk_slice(make(d, s, nd, nonzero), nd - 1, 1, s[nd - 1], 2);
    }
    if (L == EXPANDED && nd >= 1) {
        s[0] = 1;
        return wk_expand(make(d, s, nd, nonzero), shape, nd);
    }
    return make(d, shape, nd, nonzero);
}

/* Value of t at the broadcast index idx (of an nd-d output). */
static double bget(const wk_tensor *t, const int64_t *idx, int nd)
{
    int64_t j[WK_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int o = nd - t->ndim + i;
        j[i] = t->shape[i] == 1 ? 0 : idx[o];
    }
    return wk_get(t, j);
}

static void unravel(const wk_tensor *t, int64_t i, int64_t *idx)
{
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = i % t->shape[d];
        i /= t->shape[d];
    }
}

/* Compare one element; exact: the reference rounded to dt must match bit for bit (up to
 * the sign of zero). */
static void expect_close(double v, double e, wk_dtype dt, bool exact, const char *what,
                         int64_t i)
{
    if (exact || !is_float(dt)) e = cast_to(dt, e);
    if (isnan(e)) {
        cr_assert(isnan(v), "%s [%lld]: %.9g, expected nan", what, (long long)i, v);
        return;
    }
    if (exact || !is_float(dt) || isinf(e)) {
        cr_assert(v == e, "%s [%lld]: %.17g, expected %.17g", what, (long long)i, v, e);
        return;
    }
    double tol = dt == WK_DTYPE_F32 ? 1e-5 : 1e-12;
    cr_assert(fabs(v - e) <= tol + tol * fabs(e), "%s [%lld]: %.17g, expected %.17g", what,
              (long long)i, v, e);
}

/* ---- unary reference ---- */

static const wk_unary_op unary_ops[] = {
    WK_UNARY_NEG,     WK_UNARY_ABS,   WK_UNARY_SIGN,       WK_UNARY_EXP,
    WK_UNARY_LOG,     WK_UNARY_SQRT,  WK_UNARY_RSQRT,      WK_UNARY_RELU,
    WK_UNARY_GELU,    WK_UNARY_GELU_TANH, WK_UNARY_SILU,   WK_UNARY_SIGMOID,
    WK_UNARY_TANH,    WK_UNARY_SQUARE, WK_UNARY_RECIPROCAL, WK_UNARY_SIN,
    WK_UNARY_COS,     WK_UNARY_LOG1P, WK_UNARY_FLOOR,      WK_UNARY_CEIL,
    WK_UNARY_ROUND,   WK_UNARY_TRUNC,
};
_Static_assert(sizeof unary_ops / sizeof unary_ops[0] == WK_UNARY_COUNT - 1,
               "test every unary op but clamp (tested on its own)");

/* Ops defined on the reals only: integer and bool inputs give float32 (torch). */
static bool unary_float_only(wk_unary_op op)
{
    switch (op) {
    case WK_UNARY_NEG: case WK_UNARY_ABS: case WK_UNARY_SIGN: case WK_UNARY_RELU:
    case WK_UNARY_SQUARE: case WK_UNARY_FLOOR: case WK_UNARY_CEIL: case WK_UNARY_ROUND:
    case WK_UNARY_TRUNC: case WK_UNARY_CLAMP:
        return false;
    default: return true;
    }
}

static bool unary_exact(wk_unary_op op)
{
    switch (op) {
    case WK_UNARY_NEG: case WK_UNARY_ABS: case WK_UNARY_SIGN: case WK_UNARY_SQRT:
    case WK_UNARY_RELU: case WK_UNARY_SQUARE: case WK_UNARY_RECIPROCAL: case WK_UNARY_FLOOR:
    case WK_UNARY_CEIL: case WK_UNARY_ROUND: case WK_UNARY_TRUNC:
        return true;
    default: return false;
    }
}

static double round_half_even(double x)
{
    double r = floor(x), f = x - r;
    if (f > 0.5 || (f == 0.5 && fmod(r, 2) != 0)) r += 1;
    return r;
}

static double ref_unary(wk_unary_op op, double x)
{
    switch (op) {
    case WK_UNARY_NEG: return -x;
    case WK_UNARY_ABS: return fabs(x);
    case WK_UNARY_SIGN: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case WK_UNARY_EXP: return exp(x);
    case WK_UNARY_LOG: return log(x);
    case WK_UNARY_SQRT: return sqrt(x);
    case WK_UNARY_RSQRT: return 1 / sqrt(x);
    case WK_UNARY_RELU: return x > 0 || isnan(x) ? x : 0;
    case WK_UNARY_GELU: return 0.5 * x * (1 + erf(x / sqrt(2.0)));
    case WK_UNARY_GELU_TANH:
        return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
    case WK_UNARY_SILU: return x / (1 + exp(-x));
    case WK_UNARY_SIGMOID: return 1 / (1 + exp(-x));
    case WK_UNARY_TANH: return tanh(x);
    case WK_UNARY_SQUARE: return x * x;
    case WK_UNARY_RECIPROCAL: return 1 / x;
    case WK_UNARY_SIN: return sin(x);
    case WK_UNARY_COS: return cos(x);
    case WK_UNARY_LOG1P: return log1p(x);
    case WK_UNARY_FLOOR: return floor(x);
    case WK_UNARY_CEIL: return ceil(x);
    case WK_UNARY_ROUND: return round_half_even(x);
    case WK_UNARY_TRUNC: return trunc(x);
    default: return NAN;
    }
}

static void check_unary(wk_unary_op op, const wk_tensor *x, const wk_tensor *y)
{
    char what[96], sx[64], sy[64];
    snprintf(what, sizeof what, "%s(%s %s)", wk_unary_name(op), wk_dtype_name(x->dtype),
             wk_shape_str(x, sx, sizeof sx));
    cr_assert_not_null(y, "%s failed: %s", what, wk_last_error());
    wk_dtype want = unary_float_only(op) && !is_float(x->dtype) ? WK_DTYPE_F32 : x->dtype;
    cr_assert_eq(y->dtype, want, "%s: dtype %s, expected %s", what, wk_dtype_name(y->dtype),
                 wk_dtype_name(want));
    cr_assert(wk_same_shape(x, y), "%s: shape %s", what, wk_shape_str(y, sy, sizeof sy));
    cr_assert(wk_is_contiguous(y), "%s: result not contiguous", what);
    for (int64_t i = 0; i < wk_numel(x); i++) {
        double v = cast_to(want, tu_at(x, i)); /* the input in the compute dtype */
        expect_close(tu_at(y, i), ref_unary(op, v), want, unary_exact(op), what, i);
    }
}

static const wk_dtype dtypes[] = {WK_DTYPE_F32, WK_DTYPE_F64, WK_DTYPE_I32,
                                  WK_DTYPE_I64, WK_DTYPE_U8,  WK_DTYPE_BOOL};
#define NDTYPES 6

Test(elementwise, unary_every_op_dtype_and_layout)
{
    for (size_t o = 0; o < WK_UNARY_COUNT - 1; o++) {
        wk_unary_op op = unary_ops[o];
        for (int di = 0; di < NDTYPES; di++) {
            wk_dtype d = dtypes[di];
            bool bool_ok = op == WK_UNARY_SIGN || unary_float_only(op);
            for (int L = 0; L < LAYOUTS; L++) {
                wk_tensor *x = make_as(d, WK_SHAPE(7, 13), (layout)L, false);
                if (d == WK_DTYPE_BOOL && !bool_ok) {
                    char msg[64];
                    snprintf(msg, sizeof msg, "%s: not supported for bool", wk_unary_name(op));
                    expect_error(wk_unary(op, x), msg);
                    continue;
                }
                cr_assert_eq(L == CONTIG, wk_is_contiguous(x), "%s", layout_name[L]);
                check_unary(op, x, wk_unary(op, x));
            }
            /* 0-d, one element, 0-size */
            wk_tensor *s = make(d, NULL, 0, false);
            wk_tensor *e = make(d, WK_SHAPE(4, 0), false);
            if (d == WK_DTYPE_BOOL && !bool_ok) continue;
            check_unary(op, s, wk_unary(op, s));
            check_unary(op, e, wk_unary(op, e));
            wk_tensor *one = make(d, WK_SHAPE(1), false);
            check_unary(op, one, wk_unary(op, one));
        }
    }
}

Test(elementwise, unary_wrappers_match_front_end)
{
    wk_tensor *x = VALS(WK_DTYPE_F64, -2.5, -0.5, 0, 0.5, 1.5, 2.5, 3);
    wk_tensor *(*const fns[])(wk_tensor *) = {
        wk_neg,  wk_abs,    wk_sign,       wk_exp,  wk_log,        wk_sqrt, wk_rsqrt,
        wk_relu, wk_gelu,   wk_gelu_tanh,  wk_silu, wk_sigmoid,    wk_tanh, wk_square,
        wk_reciprocal, wk_sin, wk_cos,     wk_log1p, wk_floor,     wk_ceil, wk_round,
        wk_trunc,
    };
    _Static_assert(sizeof fns / sizeof fns[0] == WK_UNARY_COUNT - 1, "one per op");
    for (size_t o = 0; o < sizeof fns / sizeof fns[0]; o++)
        check_unary(unary_ops[o], x, fns[o](x));
    /* A few by hand, independent of the reference above. */
    expect_values(wk_round(x), 0, -2, -0.0, 0, 0, 2, 2, 3);
    expect_values(wk_sign(x), 0, -1, -1, 0, 1, 1, 1, 1);
    expect_values(wk_gelu(VALS(WK_DTYPE_F64, 1.0)), 1e-12, 0.8413447460685429);
    expect_values(wk_gelu_tanh(VALS(WK_DTYPE_F64, 1.0)), 1e-12, 0.8411919906082768);
    expect_values(wk_silu(VALS(WK_DTYPE_F32, 1.0)), 1e-6, 0.7310585786300049);
}

Test(elementwise, unary_names_and_invalid_op)
{
    for (int op = 0; op < WK_UNARY_COUNT; op++)
        cr_assert_str_neq(wk_unary_name((wk_unary_op)op), "?", "unary op %d has no name", op);
    for (int op = 0; op < WK_BINARY_COUNT; op++)
        cr_assert_str_neq(wk_binary_name((wk_binary_op)op), "?", "binary op %d", op);
    cr_assert_str_eq(wk_unary_name(WK_UNARY_GELU_TANH), "gelu_tanh");
    cr_assert_str_eq(wk_binary_name(WK_BINARY_FLOOR_DIVIDE), "floor_divide");
    cr_assert_str_eq(wk_unary_name(WK_UNARY_COUNT), "?");
    wk_tensor *x = VALS(WK_DTYPE_F32, 1);
    expect_error(wk_unary(WK_UNARY_COUNT, x), "unary: invalid op");
    expect_error(wk_binary((wk_binary_op)-1, x, x), "binary: invalid op -1");
    /* wk_unary(CLAMP) has no bounds: a copy. */
    expect_values(wk_unary(WK_UNARY_CLAMP, VALS(WK_DTYPE_F32, -1e30, 2)), 0, -1e30f, 2);
}

Test(elementwise, unary_nan_inf_and_stability)
{
    wk_tensor *x = VALS(WK_DTYPE_F32, NAN, INFINITY, -INFINITY, -1, 0, -0.0);
    expect_values(wk_exp(x), 1e-6, NAN, INFINITY, 0, exp(-1.0), 1, 1);
    expect_values(wk_log(x), 1e-6, NAN, INFINITY, NAN, NAN, -INFINITY, -INFINITY);
    expect_values(wk_sqrt(x), 0, NAN, INFINITY, NAN, NAN, 0, 0);
    expect_values(wk_rsqrt(x), 0, NAN, 0, NAN, NAN, INFINITY, -INFINITY);
    expect_values(wk_relu(x), 0, NAN, INFINITY, 0, 0, 0, 0);
    expect_values(wk_sign(x), 0, 0, 1, -1, -1, 0, 0);
    expect_values(wk_abs(x), 0, NAN, INFINITY, INFINITY, 1, 0, 0);
    expect_values(wk_sigmoid(x), 1e-6, NAN, 1, 0, 1 / (1 + exp(1.0)), 0.5, 0.5);
    expect_values(wk_tanh(x), 1e-6, NAN, 1, -1, tanh(-1.0), 0, 0);
    expect_values(wk_silu(x), 1e-6, NAN, INFINITY, NAN, -1 / (1 + exp(1.0)), 0, 0);
    expect_values(wk_gelu(x), 1e-6, NAN, INFINITY, NAN, -0.15865525393145707, 0, 0);
    expect_values(wk_reciprocal(x), 0, NAN, 0, -0.0, -1, INFINITY, -INFINITY);
    /* sigmoid and silu keep tiny values for very negative x (no 1 / (1 + inf) flush). */
    wk_tensor *big = VALS(WK_DTYPE_F64, -700, -100, 100, 700);
    wk_tensor *sg = wk_sigmoid(big);
    for (int i = 0; i < 4; i++) {
        double x0 = tu_at(big, i), e = x0 < 0 ? exp(x0) / (1 + exp(x0)) : 1 / (1 + exp(-x0));
        cr_assert(fabs(tu_at(sg, i) - e) <= 1e-12 * e, "sigmoid(%g) = %g, expected %g", x0,
                  tu_at(sg, i), e);
    }
    wk_tensor *s32 = wk_sigmoid(VALS(WK_DTYPE_F32, -100, -90));
    cr_assert_gt(tu_at(s32, 0), 0); /* exp(-100) ~ 3.7e-44: a float32 subnormal */
    cr_assert(fabs(tu_at(s32, 1) - exp(-90.0)) <= 1e-5 * exp(-90.0));
    cr_assert_lt(tu_at(wk_silu(VALS(WK_DTYPE_F64, -700)), 0), 0);
}

Test(elementwise, unary_integer_wraps_and_promotions)
{
    wk_tensor *i = wk_from_array((int32_t[]){INT32_MIN, -5, 0, 7, INT32_MAX}, WK_SHAPE(5),
                                 WK_DTYPE_I32);
    wk_tensor *n = wk_neg(i);
    cr_assert_eq(n->dtype, WK_DTYPE_I32);
    expect_values(n, 0, INT32_MIN, 5, 0, -7, -INT32_MAX);
    expect_values(wk_abs(i), 0, INT32_MIN, 5, 0, 7, INT32_MAX);
    expect_values(wk_relu(i), 0, 0, 0, 0, 7, INT32_MAX);
    expect_values(wk_sign(i), 0, -1, -1, 0, 1, 1);
    expect_values(wk_square(wk_from_array((int64_t[]){3, INT64_C(1) << 32}, WK_SHAPE(2),
                                          WK_DTYPE_I64)),
                  0, 9, 0);
    wk_tensor *u = wk_from_array((uint8_t[]){0, 1, 200}, WK_SHAPE(3), WK_DTYPE_U8);
    expect_values(wk_neg(u), 0, 0, 255, 56);
    expect_values(wk_square(u), 0, 0, 1, 64);
    wk_tensor *e = wk_exp(u);
    cr_assert_eq(e->dtype, WK_DTYPE_F32);
    expect_values(e, 1e-6, 1, exp(1.0), INFINITY);
    wk_tensor *b = wk_from_array((uint8_t[]){0, 1}, WK_SHAPE(2), WK_DTYPE_BOOL);
    wk_tensor *sb = wk_sign(b);
    cr_assert_eq(sb->dtype, WK_DTYPE_BOOL);
    expect_values(sb, 0, 0, 1);
    expect_values(wk_sigmoid(b), 1e-6, 0.5, 1 / (1 + exp(-1.0)));
    cr_assert_eq(wk_floor(i)->dtype, WK_DTYPE_I32);
    expect_values(wk_floor(i), 0, INT32_MIN, -5, 0, 7, INT32_MAX);
}

/* ---- clamp ---- */

Test(elementwise, clamp_bounds_nan_and_dtypes)
{
    wk_tensor *x = VALS(WK_DTYPE_F32, -2, -0.5, 0.25, 3, NAN);
    expect_values(wk_clamp(x, -1, 1), 0, -1, -0.5, 0.25, 1, NAN);
    expect_values(wk_clamp(x, NAN, 0), 0, -2, -0.5, 0, 0, NAN);
    expect_values(wk_clamp(x, 0, NAN), 0, 0, 0, 0.25, 3, NAN);
    expect_values(wk_clamp(x, NAN, NAN), 0, -2, -0.5, 0.25, 3, NAN);
    expect_values(wk_clamp(x, 2, 1), 0, 1, 1, 1, 1, NAN); /* min > max: max, as torch */
    expect_values(wk_clamp(x, 0.1, 0.2), 0, 0.1f, 0.1f, 0.2f, 0.2f, NAN);
    wk_tensor *t = wk_transpose(tu_f64(WK_SHAPE(2, 3), -3, -2, -1, 1, 2, 3), 0, 1);
    expect_values(wk_clamp(t, -1.5, 1.5), 0, -1.5, 1, -1.5, 1.5, -1, 1.5);
    wk_tensor *i = wk_from_array((int32_t[]){-7, 0, 9, INT32_MAX}, WK_SHAPE(4), WK_DTYPE_I32);
    wk_tensor *ci = wk_clamp(i, -3, 5);
    cr_assert_eq(ci->dtype, WK_DTYPE_I32);
    expect_values(ci, 0, -3, 0, 5, 5);
    expect_values(wk_clamp(i, NAN, 1e30), 0, -7, 0, 9, INT32_MAX);
    wk_tensor *cf = wk_clamp(i, -0.5, NAN);
    cr_assert_eq(cf->dtype, WK_DTYPE_F32);
    expect_values(cf, 0, -0.5, 0, 9, 2147483648.0);
    wk_tensor *u = wk_from_array((uint8_t[]){0, 100, 255}, WK_SHAPE(3), WK_DTYPE_U8);
    expect_values(wk_clamp(u, -5, 300), 0, 0, 100, 255);
    expect_values(wk_clamp(u, 10, 200), 0, 10, 100, 200);
    expect_values(wk_clamp(tu_i64(WK_SHAPE(2), INT64_MIN, INT64_MAX), -1e300, 1e300), 0,
                  (double)INT64_MIN, (double)INT64_MAX);
    expect_error(wk_clamp(wk_empty(WK_SHAPE(2), WK_DTYPE_BOOL), 0, 1),
                 "clamp: not supported for bool tensors (shape [2])");
    expect_error(wk_clamp(wk_empty(WK_SHAPE(2), WK_DTYPE_BF16), 0, 1),
                 "clamp: bfloat16 tensors are not supported");
    cr_assert_eq(wk_numel(wk_clamp(wk_empty(WK_SHAPE(0, 2), WK_DTYPE_F64), 0, 1)), 0);
}

/* ---- binary reference ---- */

static bool bin_cmp(wk_binary_op op) { return op >= WK_BINARY_EQ; }
static bool bin_no_bool(wk_binary_op op)
{
    return op == WK_BINARY_SUB || op == WK_BINARY_POW || op == WK_BINARY_FLOOR_DIVIDE ||
           op == WK_BINARY_REMAINDER;
}
static bool bin_exact(wk_binary_op op)
{
    return op != WK_BINARY_POW && op != WK_BINARY_FLOOR_DIVIDE && op != WK_BINARY_REMAINDER;
}

/* Integer pow as torch defines it, wrapped to c. */
static double ipow(double a, double b, wk_dtype c)
{
    if (b < 0) return a == 1 ? 1 : a == -1 ? (fmod(b, 2) != 0 ? -1 : 1) : 0;
    uint64_t r = 1, base = (uint64_t)(int64_t)a;
    for (int64_t k = 0; k < (int64_t)b; k++) r *= base;
    if (c == WK_DTYPE_I32) return (int32_t)(uint32_t)r;
    if (c == WK_DTYPE_U8) return (uint8_t)r;
    return (double)(int64_t)r;
}

/* op(a, b) in double for inputs already in the compute dtype c. */
static double ref_binary(wk_binary_op op, double a, double b, wk_dtype c)
{
    bool f = is_float(c), bl = c == WK_DTYPE_BOOL;
    switch (op) {
    case WK_BINARY_ADD: return bl ? (a || b) : a + b;
    case WK_BINARY_SUB: return a - b;
    case WK_BINARY_MUL: return bl ? (a && b) : a * b;
    case WK_BINARY_DIV: return a / b;
    case WK_BINARY_POW: return f ? pow(a, b) : ipow(a, b, c);
    case WK_BINARY_MAXIMUM: return isnan(a) || isnan(b) ? NAN : a > b ? a : b;
    case WK_BINARY_MINIMUM: return isnan(a) || isnan(b) ? NAN : a < b ? a : b;
    case WK_BINARY_FLOOR_DIVIDE: return b == 0 ? a / b : floor(a / b);
    case WK_BINARY_REMAINDER: return b == 0 ? NAN : a - b * floor(a / b);
    case WK_BINARY_EQ: return a == b;
    case WK_BINARY_NE: return a != b;
    case WK_BINARY_LT: return a < b;
    case WK_BINARY_LE: return a <= b;
    case WK_BINARY_GT: return a > b;
    case WK_BINARY_GE: return a >= b;
    default: return NAN;
    }
}

/* Checks y = op(a, b) given the promoted dtype r the test expects. */
static void check_binary(wk_binary_op op, const wk_tensor *a, const wk_tensor *b,
                         const wk_tensor *y, wk_dtype r)
{
    char what[160], sa_[64], sb_[64], sy[64];
    snprintf(what, sizeof what, "%s(%s %s, %s %s)", wk_binary_name(op),
             wk_dtype_name(a->dtype), wk_shape_str(a, sa_, sizeof sa_),
             wk_dtype_name(b->dtype), wk_shape_str(b, sb_, sizeof sb_));
    cr_assert_not_null(y, "%s failed: %s", what, wk_last_error());
    wk_dtype c = op == WK_BINARY_DIV && !is_float(r) ? WK_DTYPE_F32 : r;
    wk_dtype want = bin_cmp(op) ? WK_DTYPE_BOOL : c;
    cr_assert_eq(y->dtype, want, "%s: dtype %s, expected %s", what, wk_dtype_name(y->dtype),
                 wk_dtype_name(want));
    /* The broadcast shape, worked out here independently. */
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    cr_assert_eq(y->ndim, nd, "%s: ndim %d", what, y->ndim);
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        cr_assert_eq(y->shape[i], sa == 1 ? sb : sa, "%s: shape %s", what,
                     wk_shape_str(y, sy, sizeof sy));
    }
    int64_t idx[WK_MAX_DIMS];
    for (int64_t i = 0; i < wk_numel(y); i++) {
        unravel(y, i, idx);
        double va = cast_to(c, bget(a, idx, nd)), vb = cast_to(c, bget(b, idx, nd));
        expect_close(tu_at(y, i), ref_binary(op, va, vb, c), want, bin_exact(op), what, i);
    }
}

typedef struct {
    int64_t a[WK_MAX_DIMS], b[WK_MAX_DIMS];
    int na, nb;
    layout la, lb;
} shape_case;

static const shape_case shape_cases[] = {
    {{3, 1}, {1, 4}, 2, 2, CONTIG, CONTIG},
    {{2, 3, 4}, {4}, 3, 1, CONTIG, CONTIG},
    {{4}, {2, 3, 4}, 1, 3, SLICED, TRANSPOSED},
    {{5, 6}, {5, 6}, 2, 2, TRANSPOSED, SLICED},
    {{5, 6}, {5, 6}, 2, 2, EXPANDED, CONTIG},
    {{4, 3}, {0}, 2, 0, CONTIG, CONTIG},   /* b is 0-d */
    {{0}, {2, 3}, 0, 2, CONTIG, TRANSPOSED}, /* a is 0-d */
    {{0}, {0}, 0, 0, CONTIG, CONTIG},        /* both 0-d */
    {{0, 3}, {3}, 2, 1, CONTIG, CONTIG},     /* 0-size */
    {{1}, {1}, 1, 1, CONTIG, CONTIG},
    {{2, 1, 3}, {4, 1}, 3, 2, SLICED, EXPANDED},
};

static bool divides(wk_binary_op op)
{
    return op == WK_BINARY_FLOOR_DIVIDE || op == WK_BINARY_REMAINDER || op == WK_BINARY_DIV;
}

Test(elementwise, binary_every_op_dtype_shape_and_layout)
{
    for (int op = 0; op < WK_BINARY_COUNT; op++) {
        for (int di = 0; di < NDTYPES; di++) {
            wk_dtype d = dtypes[di];
            for (size_t k = 0; k < sizeof shape_cases / sizeof shape_cases[0]; k++) {
                const shape_case *sc = &shape_cases[k];
                wk_tensor *a = make_as(d, sc->a, sc->na, sc->la, false);
                wk_tensor *b = make_as(d, sc->b, sc->nb, sc->lb, divides(op));
                wk_tensor *y = wk_binary(op, a, b);
                if (d == WK_DTYPE_BOOL && bin_no_bool(op)) {
                    cr_assert_null(y, "%s on bool succeeded", wk_binary_name(op));
                    cr_assert(strstr(wk_last_error(), "not supported for bool tensors"), "%s",
                              wk_last_error());
                    continue;
                }
                check_binary(op, a, b, y, d);
            }
        }
    }
}

Test(elementwise, binary_wrappers_match_front_end)
{
    wk_tensor *(*const fns[])(wk_tensor *, wk_tensor *) = {
        wk_add, wk_sub, wk_mul, wk_div, wk_pow, wk_maximum, wk_minimum, wk_floor_divide,
        wk_remainder, wk_eq, wk_ne, wk_lt, wk_le, wk_gt, wk_ge,
    };
    _Static_assert(sizeof fns / sizeof fns[0] == WK_BINARY_COUNT, "one per op");
    wk_tensor *a = tu_f32(WK_SHAPE(2, 3), -2.5f, -1, 0, 1, 2, 3.5f);
    wk_tensor *b = tu_f32(WK_SHAPE(3), 1.5f, -2, 2);
    for (int op = 0; op < WK_BINARY_COUNT; op++)
        check_binary(op, a, b, fns[op](a, b), WK_DTYPE_F32);
    /* By hand: Python's floor division and modulo signs. */
    wk_tensor *x = tu_f64(WK_SHAPE(4), 7, -7, 7, -7), *y = tu_f64(WK_SHAPE(4), 2, 2, -2, -2);
    expect_values(wk_floor_divide(x, y), 0, 3, -4, -4, 3);
    expect_values(wk_remainder(x, y), 0, 1, 1, -1, -1);
    wk_tensor *xi = tu_i64(WK_SHAPE(4), 7, -7, 7, -7), *yi = tu_i64(WK_SHAPE(4), 2, 2, -2, -2);
    expect_values(wk_floor_divide(xi, yi), 0, 3, -4, -4, 3);
    expect_values(wk_remainder(xi, yi), 0, 1, 1, -1, -1);
    expect_values(wk_div(xi, yi), 0, 3.5, -3.5, -3.5, 3.5);
    wk_tensor *base = tu_i64(WK_SHAPE(5), 2, -1, -1, 1, 3);
    expect_values(wk_pow(base, tu_i64(WK_SHAPE(5), 10, -3, -2, -5, -1)), 0, 1024, -1, 1, 1, 0);
}

Test(elementwise, binary_nan_inf)
{
    wk_tensor *a = VALS(WK_DTYPE_F32, NAN, 1, NAN, INFINITY, -INFINITY, 0);
    wk_tensor *b = VALS(WK_DTYPE_F32, 1, NAN, NAN, INFINITY, INFINITY, 0);
    expect_values(wk_maximum(a, b), 0, NAN, NAN, NAN, INFINITY, INFINITY, 0);
    expect_values(wk_minimum(a, b), 0, NAN, NAN, NAN, INFINITY, -INFINITY, 0);
    expect_values(wk_eq(a, b), 0, 0, 0, 0, 1, 0, 1);
    expect_values(wk_ne(a, b), 0, 1, 1, 1, 0, 1, 0);
    expect_values(wk_lt(a, b), 0, 0, 0, 0, 0, 1, 0);
    expect_values(wk_ge(a, b), 0, 0, 0, 0, 1, 0, 1);
    expect_values(wk_add(a, b), 0, NAN, NAN, NAN, INFINITY, NAN, 0);
    expect_values(wk_div(a, b), 0, NAN, NAN, NAN, NAN, NAN, NAN);
    wk_tensor *n = VALS(WK_DTYPE_F64, 1, -1, 0, 5, -5, INFINITY);
    wk_tensor *z = VALS(WK_DTYPE_F64, 0, 0, 0, INFINITY, INFINITY, 2);
    expect_values(wk_div(n, z), 0, INFINITY, -INFINITY, NAN, 0, -0.0, INFINITY);
    /* As Python: inf // 2 is nan (through fmod), -5 // inf is -1, -5 % inf is inf. */
    expect_values(wk_floor_divide(n, z), 0, INFINITY, -INFINITY, NAN, 0, -1, NAN);
    expect_values(wk_remainder(n, z), 0, NAN, NAN, NAN, 5, INFINITY, NAN);
    expect_values(wk_pow(VALS(WK_DTYPE_F64, -8, 0, 2), VALS(WK_DTYPE_F64, 1.0 / 3, -1, INFINITY)),
                  0, NAN, INFINITY, INFINITY);
}

Test(elementwise, integer_arithmetic_wraps)
{
    wk_tensor *a = wk_from_array((int32_t[]){INT32_MAX, INT32_MIN, INT32_MIN, 65536},
                                 WK_SHAPE(4), WK_DTYPE_I32);
    wk_tensor *b = wk_from_array((int32_t[]){1, 1, -1, 65536}, WK_SHAPE(4), WK_DTYPE_I32);
    expect_values(wk_add(a, b), 0, INT32_MIN, INT32_MIN + 1, INT32_MAX, 131072);
    expect_values(wk_sub(a, b), 0, INT32_MAX - 1, INT32_MAX, INT32_MIN + 1, 0);
    expect_values(wk_mul(a, b), 0, INT32_MAX, INT32_MIN, INT32_MIN, 0);
    /* INT_MIN / -1 must not trap: it wraps like the multiplication. */
    expect_values(wk_floor_divide(a, b), 0, INT32_MAX, INT32_MIN, INT32_MIN, 1);
    expect_values(wk_remainder(a, b), 0, 0, 0, 0, 0);
    wk_tensor *l = tu_i64(WK_SHAPE(2), INT64_MIN, INT64_MAX);
    wk_tensor *m1 = tu_i64(WK_SHAPE(1), -1);
    wk_tensor *q = wk_floor_divide(l, m1);
    cr_assert_eq(((int64_t *)wk_data(q))[0], INT64_MIN);
    cr_assert_eq(((int64_t *)wk_data(q))[1], -INT64_MAX);
    wk_tensor *sq = wk_mul(l, l);
    cr_assert_eq(((int64_t *)wk_data(sq))[0], 0);
    cr_assert_eq(((int64_t *)wk_data(sq))[1], 1);
    wk_tensor *p = wk_pow(tu_i64(WK_SHAPE(1), 3), tu_i64(WK_SHAPE(1), 41));
    uint64_t p41 = 1;
    for (int k = 0; k < 41; k++) p41 *= 3; /* 3^41 > 2^64: wraps */
    cr_assert_eq(((int64_t *)wk_data(p))[0], (int64_t)p41);
    wk_tensor *u = wk_from_array((uint8_t[]){250, 3, 16}, WK_SHAPE(3), WK_DTYPE_U8);
    wk_tensor *v = wk_from_array((uint8_t[]){10, 5, 2}, WK_SHAPE(3), WK_DTYPE_U8);
    expect_values(wk_add(u, v), 0, 4, 8, 18);
    expect_values(wk_sub(v, u), 0, 16, 2, 242);
    expect_values(wk_mul(u, v), 0, 196, 15, 32);
    expect_values(wk_pow(u, v), 0, 0, 243, 0); /* 250^10 = 2^10 * 125^10 */
}

Test(elementwise, bool_arithmetic_is_logic)
{
    wk_tensor *a = wk_from_array((uint8_t[]){0, 0, 1, 1}, WK_SHAPE(4), WK_DTYPE_BOOL);
    wk_tensor *b = wk_from_array((uint8_t[]){0, 1, 0, 1}, WK_SHAPE(4), WK_DTYPE_BOOL);
    wk_tensor *s = wk_add(a, b);
    cr_assert_eq(s->dtype, WK_DTYPE_BOOL);
    expect_values(s, 0, 0, 1, 1, 1);
    expect_values(wk_mul(a, b), 0, 0, 0, 0, 1);
    expect_values(wk_maximum(a, b), 0, 0, 1, 1, 1);
    expect_values(wk_minimum(a, b), 0, 0, 0, 0, 1);
    expect_values(wk_lt(a, b), 0, 0, 1, 0, 0);
    wk_tensor *d = wk_div(a, b);
    cr_assert_eq(d->dtype, WK_DTYPE_F32);
    expect_values(d, 0, NAN, 0, INFINITY, 1);
    expect_error(wk_sub(a, b), "sub: not supported for bool tensors (got bool [4] and bool "
                               "[4]); use wk_ne for a logical xor");
    expect_error(wk_pow(a, b), "pow: not supported for bool tensors");
    expect_error(wk_floor_divide(a, b), "floor_divide: not supported for bool tensors");
    expect_error(wk_remainder(a, b), "remainder: not supported for bool tensors");
    /* bool with a number promotes (int64 for an integral one). */
    wk_tensor *bs = wk_sub_scalar(a, 1);
    cr_assert_eq(bs->dtype, WK_DTYPE_I64);
    expect_values(bs, 0, -1, -1, 0, 0);
    wk_tensor *bu = wk_add(a, wk_from_array((uint8_t[]){200}, WK_SHAPE(1), WK_DTYPE_U8));
    cr_assert_eq(bu->dtype, WK_DTYPE_U8);
    expect_values(bu, 0, 200, 200, 201, 201);
}

/* ---- promotion ---- */

Test(elementwise, result_type_follows_torch)
{
    static const struct {
        wk_dtype a, b;
        bool za, zb; /* 0-d */
        wk_dtype want;
    } cases[] = {
        {WK_DTYPE_F32, WK_DTYPE_F64, false, false, WK_DTYPE_F64},
        {WK_DTYPE_I32, WK_DTYPE_F32, false, false, WK_DTYPE_F32},
        {WK_DTYPE_I64, WK_DTYPE_F32, false, false, WK_DTYPE_F32},
        {WK_DTYPE_U8, WK_DTYPE_I32, false, false, WK_DTYPE_I32},
        {WK_DTYPE_I32, WK_DTYPE_I64, false, false, WK_DTYPE_I64},
        {WK_DTYPE_BOOL, WK_DTYPE_U8, false, false, WK_DTYPE_U8},
        {WK_DTYPE_BOOL, WK_DTYPE_BOOL, false, false, WK_DTYPE_BOOL},
        {WK_DTYPE_BF16, WK_DTYPE_F16, false, false, WK_DTYPE_F32},
        {WK_DTYPE_BF16, WK_DTYPE_I64, false, false, WK_DTYPE_BF16},
        /* 0-d of the same category does not widen */
        {WK_DTYPE_F32, WK_DTYPE_F64, false, true, WK_DTYPE_F32},
        {WK_DTYPE_F64, WK_DTYPE_F32, true, false, WK_DTYPE_F32},
        {WK_DTYPE_U8, WK_DTYPE_I64, false, true, WK_DTYPE_U8},
        {WK_DTYPE_I32, WK_DTYPE_I64, false, true, WK_DTYPE_I32},
        /* a 0-d of a higher category decides */
        {WK_DTYPE_I32, WK_DTYPE_F64, false, true, WK_DTYPE_F64},
        {WK_DTYPE_BOOL, WK_DTYPE_I32, false, true, WK_DTYPE_I32},
        {WK_DTYPE_I64, WK_DTYPE_BOOL, false, true, WK_DTYPE_I64},
        /* both 0-d: ordinary promotion */
        {WK_DTYPE_F32, WK_DTYPE_F64, true, true, WK_DTYPE_F64},
        {WK_DTYPE_I32, WK_DTYPE_U8, true, true, WK_DTYPE_I32},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        wk_tensor *a = wk_empty(WK_SHAPE(2), cases[k].a), *b = wk_empty(WK_SHAPE(2), cases[k].b);
        if (cases[k].za) a = wk_empty(NULL, 0, cases[k].a);
        if (cases[k].zb) b = wk_empty(NULL, 0, cases[k].b);
        wk_dtype got = wk_result_type(a, b), sym = wk_result_type(b, a);
        cr_assert_eq(got, cases[k].want, "case %zu: %s, expected %s", k, wk_dtype_name(got),
                     wk_dtype_name(cases[k].want));
        cr_assert_eq(sym, got, "case %zu is not symmetric", k);
    }
    wk_clear_error();
    cr_assert_eq(wk_result_type(NULL, wk_empty(WK_SHAPE(1), WK_DTYPE_F32)), WK_DTYPE_COUNT);
    cr_assert(strstr(wk_last_error(), "result_type: input 0 is NULL"));
}

Test(elementwise, mixed_dtype_ops_compute_in_the_promoted_dtype)
{
    static const struct {
        wk_dtype a, b;
        int na, nb;
        wk_dtype want;
    } cases[] = {
        {WK_DTYPE_I32, WK_DTYPE_F32, 2, 2, WK_DTYPE_F32},
        {WK_DTYPE_F32, WK_DTYPE_F64, 2, 1, WK_DTYPE_F64},
        {WK_DTYPE_U8, WK_DTYPE_I64, 2, 2, WK_DTYPE_I64},
        {WK_DTYPE_BOOL, WK_DTYPE_F64, 1, 2, WK_DTYPE_F64},
        {WK_DTYPE_I64, WK_DTYPE_I32, 2, 1, WK_DTYPE_I64},
        {WK_DTYPE_F32, WK_DTYPE_F64, 2, 0, WK_DTYPE_F32},
        {WK_DTYPE_U8, WK_DTYPE_I64, 2, 0, WK_DTYPE_U8},
        {WK_DTYPE_I32, WK_DTYPE_F64, 2, 0, WK_DTYPE_F64},
        {WK_DTYPE_F64, WK_DTYPE_I32, 0, 2, WK_DTYPE_F64},
        {WK_DTYPE_I64, WK_DTYPE_U8, 0, 2, WK_DTYPE_U8},
    };
    for (int op = 0; op < WK_BINARY_COUNT; op++) {
        for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
            /* Transposed big enough operands so the cast runs in several blocks. */
            int64_t sa[2] = {37, 41}, sb[2] = {37, 41};
            wk_tensor *a = make_as(cases[k].a, sa + 2 - cases[k].na, cases[k].na,
                                   cases[k].na == 2 ? TRANSPOSED : CONTIG, false);
            wk_tensor *b = make_as(cases[k].b, sb + 2 - cases[k].nb, cases[k].nb,
                                   cases[k].nb == 2 ? SLICED : CONTIG, divides(op));
            check_binary(op, a, b, wk_binary(op, a, b), cases[k].want);
        }
    }
    /* u8 tensor // 0-d int64 256: the divisor wraps to 0 in uint8, as torch computes. */
    wk_tensor *u = wk_from_array((uint8_t[]){7, 9}, WK_SHAPE(2), WK_DTYPE_U8);
    wk_tensor *s = tu_i64_impl((int64_t[]){256}, NULL, 0);
    expect_error(wk_floor_divide(u, s), "floor_divide: integer division by zero");
    expect_values(wk_add(u, s), 0, 7, 9);
}

/* ---- scalar variants ---- */

Test(elementwise, scalar_variants_dtypes_and_values)
{
    wk_tensor *f = tu_f32(WK_SHAPE(2, 2), -1.5f, 0, 2, 4);
    wk_tensor *r = wk_add_scalar(f, 0.1);
    cr_assert_eq(r->dtype, WK_DTYPE_F32);
    expect_values(r, 0, -1.5f + 0.1f, 0.1f, 2 + 0.1f, 4 + 0.1f); /* 0.1 rounded to float */
    expect_values(wk_sub_scalar(f, 1), 0, -2.5, -1, 1, 3);
    expect_values(wk_rsub_scalar(f, 1), 0, 2.5, 1, -1, -3);
    expect_values(wk_mul_scalar(f, -2), 0, 3, -0.0, -4, -8);
    expect_values(wk_div_scalar(f, 4), 0, -0.375, 0, 0.5, 1);
    expect_values(wk_eq_scalar(f, 2), 0, 0, 0, 1, 0);
    expect_values(wk_ne_scalar(f, 2), 0, 1, 1, 0, 1);
    expect_values(wk_lt_scalar(f, 0), 0, 1, 0, 0, 0);
    expect_values(wk_le_scalar(f, 0), 0, 1, 1, 0, 0);
    expect_values(wk_gt_scalar(f, 0), 0, 0, 0, 1, 1);
    expect_values(wk_ge_scalar(f, 2), 0, 0, 0, 1, 1);
    cr_assert_eq(wk_ge_scalar(f, 2)->dtype, WK_DTYPE_BOOL);
    /* the exponents with their own loops, and a general one */
    wk_tensor *p = tu_f64(WK_SHAPE(4), 4, 0.25, 9, 2);
    expect_values(wk_pow_scalar(p, 2), 0, 16, 0.0625, 81, 4);
    expect_values(wk_pow_scalar(p, 3), 0, 64, 0.015625, 729, 8);
    expect_values(wk_pow_scalar(p, 0.5), 0, 2, 0.5, 3, sqrt(2.0));
    expect_values(wk_pow_scalar(p, -1), 0, 0.25, 4, 1.0 / 9, 0.5);
    expect_values(wk_pow_scalar(p, 1.5), 1e-15, 8, 0.125, 27, pow(2, 1.5));
    expect_values(wk_pow_scalar(p, 0), 0, 1, 1, 1, 1);
    expect_values(wk_pow_scalar(wk_transpose(tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4), 0, 1), 2), 0,
                  1, 9, 4, 16);
    /* integer tensors */
    wk_tensor *i = wk_from_array((int32_t[]){-3, 0, 5}, WK_SHAPE(3), WK_DTYPE_I32);
    wk_tensor *ia = wk_add_scalar(i, 2);
    cr_assert_eq(ia->dtype, WK_DTYPE_I32);
    expect_values(ia, 0, -1, 2, 7);
    wk_tensor *ib = wk_add_scalar(i, 2.5);
    cr_assert_eq(ib->dtype, WK_DTYPE_F32);
    expect_values(ib, 0, -0.5, 2.5, 7.5);
    wk_tensor *id = wk_div_scalar(i, 2);
    cr_assert_eq(id->dtype, WK_DTYPE_F32);
    expect_values(id, 0, -1.5, 0, 2.5);
    wk_tensor *ip = wk_pow_scalar(i, 3);
    cr_assert_eq(ip->dtype, WK_DTYPE_I32);
    expect_values(ip, 0, -27, 0, 125);
    wk_tensor *iq = wk_pow_scalar(i, 0.5);
    cr_assert_eq(iq->dtype, WK_DTYPE_F32);
    expect_values(iq, 1e-7, NAN, 0, sqrt(5.0));
    expect_values(wk_lt_scalar(i, 0.5), 0, 1, 1, 0);
    expect_values(wk_eq_scalar(i, NAN), 0, 0, 0, 0);
    expect_values(wk_mul_scalar(i, INFINITY), 0, -INFINITY, NAN, INFINITY);
    wk_tensor *u = wk_from_array((uint8_t[]){0, 100, 255}, WK_SHAPE(3), WK_DTYPE_U8);
    wk_tensor *uw = wk_add_scalar(u, 300);
    cr_assert_eq(uw->dtype, WK_DTYPE_U8);
    expect_values(uw, 0, 44, 144, 43);
    wk_tensor *l = tu_i64(WK_SHAPE(2), INT64_C(1) << 60, 7);
    cr_assert_eq(((int64_t *)wk_data(wk_add_scalar(l, 1)))[0], (INT64_C(1) << 60) + 1);
    /* 0-d tensors: a number does not widen them either */
    wk_tensor *z = wk_add_scalar(tu_i64_impl((int64_t[]){5}, NULL, 0), 1);
    cr_assert_eq(z->ndim, 0);
    cr_assert_eq(z->dtype, WK_DTYPE_I64);
    cr_assert_eq(wk_item(z), 6);
    expect_error(wk_pow_scalar(i, -1), "pow: integers to negative integer powers are not "
                                       "allowed (int32 tensor [3], exponent -1)");
    expect_error(wk_add_scalar(wk_empty(WK_SHAPE(2), WK_DTYPE_F16), 1),
                 "add: float16 tensors are not supported (shape [2]); convert with "
                 "wk_to_dtype(t, WK_DTYPE_F32) first");
    wk_tensor *bt = wk_from_array((uint8_t[]){0, 1}, WK_SHAPE(2), WK_DTYPE_BOOL);
    wk_tensor *rb = wk_rsub_scalar(bt, 1);
    cr_assert_eq(rb->dtype, WK_DTYPE_I64);
    expect_values(rb, 0, 1, 0);
    cr_assert_eq(wk_mul_scalar(bt, 0.5)->dtype, WK_DTYPE_F32);
}

Test(elementwise, scalar_variants_do_not_allocate_in_a_steady_loop)
{
    wk_tensor *x = make(WK_DTYPE_F32, WK_SHAPE(64, 3), false);
    for (int it = 0; it < 3; it++) { /* warm the pool */
        wk_frame_begin();
        wk_gelu(wk_mul_scalar(wk_add_scalar(x, 1), 0.5));
        wk_lt_scalar(x, 0);
        wk_frame_end();
    }
    wk_alloc_stats before = wk_alloc_get_stats();
    for (int it = 0; it < 100; it++) {
        wk_frame_begin();
        wk_tensor *y = wk_gelu(wk_mul_scalar(wk_add_scalar(x, 1), 0.5));
        cr_assert_not_null(wk_lt_scalar(y, 0));
        wk_frame_end();
    }
    wk_alloc_stats after = wk_alloc_get_stats();
    cr_assert_eq(after.malloc_calls, before.malloc_calls, "%llu mallocs in the loop",
                 (unsigned long long)(after.malloc_calls - before.malloc_calls));
    cr_assert_eq(after.bytes_in_use, before.bytes_in_use);
}

/* ---- where ---- */

Test(elementwise, where_broadcasts_three_ways)
{
    wk_tensor *c = wk_from_array((uint8_t[]){1, 0, 1}, WK_SHAPE(3, 1), WK_DTYPE_BOOL);
    wk_tensor *a = tu_f32(WK_SHAPE(1, 4), 1, 2, 3, 4);
    wk_tensor *b = tu_f32(WK_SHAPE(2, 1, 1), -1, -2);
    wk_tensor *y = wk_where(c, a, b);
    expect_shape(y, 2, 3, 4);
    cr_assert_eq(y->dtype, WK_DTYPE_F32);
    expect_values(y, 0, 1, 2, 3, 4, -1, -1, -1, -1, 1, 2, 3, 4, 1, 2, 3, 4, -2, -2, -2, -2,
                  1, 2, 3, 4);
    /* every dtype and layout against a naive loop, with a mixed-dtype pair */
    for (int di = 0; di < NDTYPES; di++) {
        for (int L = 0; L < LAYOUTS; L++) {
            wk_dtype d = dtypes[di];
            wk_tensor *cc = make_as(WK_DTYPE_BOOL, WK_SHAPE(6, 5), (layout)L, false);
            wk_tensor *aa = make_as(d, WK_SHAPE(6, 5), (layout)((L + 1) % LAYOUTS), false);
            wk_tensor *bb = make_as(WK_DTYPE_I32, WK_SHAPE(5), CONTIG, false);
            wk_tensor *w = wk_where(cc, aa, bb);
            wk_dtype want = wk_result_type(aa, bb);
            cr_assert_not_null(w, "%s", wk_last_error());
            cr_assert_eq(w->dtype, want);
            int64_t idx[2];
            for (int64_t i = 0; i < 30; i++) {
                unravel(w, i, idx);
                double e = bget(cc, idx, 2) ? bget(aa, idx, 2) : bget(bb, idx, 2);
                cr_assert_eq(tu_at(w, i), cast_to(want, e), "%s %s [%lld]", wk_dtype_name(d),
                             layout_name[L], (long long)i);
            }
        }
    }
    /* scalar other side, 0-d everything, 0-size, NaN kept bit for bit */
    wk_tensor *s = tu_f64_impl((double[]){NAN}, NULL, 0);
    wk_tensor *ws = wk_where(c, a, s);
    cr_assert_eq(ws->dtype, WK_DTYPE_F32);
    expect_values(ws, 0, 1, 2, 3, 4, NAN, NAN, NAN, NAN, 1, 2, 3, 4);
    wk_tensor *c0 = wk_from_array((uint8_t[]){0}, NULL, 0, WK_DTYPE_BOOL);
    wk_tensor *w0 = wk_where(c0, s, tu_f64_impl((double[]){2}, NULL, 0));
    cr_assert_eq(w0->ndim, 0);
    cr_assert_eq(wk_item(w0), 2);
    expect_shape(wk_where(wk_empty(WK_SHAPE(0, 1), WK_DTYPE_BOOL), a, b), 2, 0, 4);
    /* errors */
    expect_error(wk_where(a, a, b), "where: condition must be bool, got float32 [1, 4]");
    expect_error(wk_where(c, a, tu_f32(WK_SHAPE(2), 1, 2)),
                 "where: shapes [3, 1], [1, 4] and [2] are not broadcastable");
    expect_error(wk_where(c, wk_empty(WK_SHAPE(1), WK_DTYPE_BF16), b),
                 "where: bfloat16 tensors are not supported");
    expect_error(wk_where(NULL, a, b), "where: input 0 is NULL");
}

/* ---- errors ---- */

Test(elementwise, error_messages)
{
    wk_tensor *a = wk_empty(WK_SHAPE(2, 3), WK_DTYPE_F32);
    wk_tensor *b = wk_empty(WK_SHAPE(4), WK_DTYPE_F32);
    expect_error(wk_add(a, b), "add: shapes [2, 3] and [4] are not broadcastable");
    expect_error(wk_lt(b, a), "lt: shapes [4] and [2, 3] are not broadcastable");
    expect_error(wk_exp(wk_empty(WK_SHAPE(2), WK_DTYPE_BF16)),
                 "exp: bfloat16 tensors are not supported (shape [2]); convert with "
                 "wk_to_dtype(t, WK_DTYPE_F32) first");
    expect_error(wk_mul(a, wk_empty(WK_SHAPE(3), WK_DTYPE_F16)),
                 "mul: float16 tensors are not supported");
    expect_error(wk_neg(wk_empty(WK_SHAPE(2), WK_DTYPE_BOOL)),
                 "neg: not supported for bool tensors (shape [2])");
    wk_tensor *i = wk_from_array((int32_t[]){4, 5, 6}, WK_SHAPE(3), WK_DTYPE_I32);
    wk_tensor *z = wk_from_array((int32_t[]){1, 0, 2}, WK_SHAPE(3), WK_DTYPE_I32);
    expect_error(wk_floor_divide(i, z),
                 "floor_divide: integer division by zero (divisor int32 [3])");
    expect_error(wk_remainder(i, z), "remainder: integer division by zero");
    /* the zero hides in a transposed, broadcast divisor */
    wk_tensor *big = make(WK_DTYPE_I64, WK_SHAPE(300, 200), true);
    ((int64_t *)wk_data(big))[299 * 200 + 7] = 0;
    expect_error(wk_floor_divide(make(WK_DTYPE_I64, WK_SHAPE(3, 200, 300), false),
                                 wk_transpose(big, 0, 1)),
                 "floor_divide: integer division by zero");
    /* floats divide by zero as IEEE says, without an error */
    wk_fill_(b, 1);
    expect_values(wk_floor_divide(b, wk_fill_(wk_empty(WK_SHAPE(1), WK_DTYPE_F32), 0)), 0,
                  INFINITY, INFINITY, INFINITY, INFINITY);
    /* NULL inputs: the first message is kept */
    wk_clear_error();
    wk_tensor *n = wk_add(NULL, a);
    cr_assert_null(n);
    cr_assert_str_eq(wk_last_error(), "add: input 0 is NULL");
    cr_assert_null(wk_gelu(wk_mul(n, a)));
    cr_assert_str_eq(wk_last_error(), "add: input 0 is NULL");
    cr_assert_null(wk_add_scalar(NULL, 1));
    cr_assert_null(wk_clamp(NULL, 0, 1));
    cr_assert_null(wk_where(a, NULL, a));
    cr_assert_str_eq(wk_last_error(), "add: input 0 is NULL");
    expect_error(wk_sigmoid(NULL), "sigmoid: input 0 is NULL");
    expect_error(wk_ge(a, NULL), "ge: input 1 is NULL");
}

/* No CUDA kernels yet: a tensor marked as on cuda:0 (never touched) shows the dispatch
 * errors. Real mixed-device runs need a CUDA build and are tested there. */
Test(elementwise, device_dispatch_errors)
{
    wk_tensor *g = wk_empty(WK_SHAPE(2), WK_DTYPE_F32);
    wk_tensor *c = wk_empty(WK_SHAPE(2), WK_DTYPE_F32);
    wk_tensor *s = wk_empty(NULL, 0, WK_DTYPE_F32);
    g->device = (wk_device){WK_DEVICE_CUDA, 0};
    expect_error(wk_exp(g), "exp: no kernel for device cuda:0");
    expect_error(wk_add(c, g), "add: tensors are on different devices (cpu and cuda:0)");
    expect_error(wk_add(s, g), "add: no kernel for device cuda:0"); /* a CPU scalar mixes */
    expect_error(wk_add_scalar(g, 1), "add: no kernel for device cuda:0");
    expect_error(wk_where(wk_empty(WK_SHAPE(2), WK_DTYPE_BOOL), g, c),
                 "where: tensors are on different devices");
    g->device = WK_CPU;
}

/* ---- large, parallel, deterministic ---- */

Test(elementwise, large_odd_sizes_use_threads_and_match)
{
    const int64_t R = 1000, C = 1001;
    wk_tensor *a = make(WK_DTYPE_F32, WK_SHAPE(R, C), false);
    wk_tensor *row = make(WK_DTYPE_F32, WK_SHAPE(C), false);
    const float *pa = wk_data(a), *pr = wk_data(row);
    wk_tensor *s = wk_add(a, row);
    wk_tensor *m = wk_mul(wk_transpose(a, 0, 1), wk_transpose(a, 0, 1));
    wk_tensor *g = wk_gelu(a);
    wk_tensor *lt = wk_lt(a, row);
    wk_tensor *d = wk_div_scalar(a, 3);
    wk_tensor *ai = wk_to_dtype(wk_mul_scalar(a, 100), WK_DTYPE_I32);
    wk_tensor *mi = wk_sub(wk_transpose(ai, 0, 1), wk_transpose(ai, 0, 1));
    const int32_t *pmi = wk_data(mi);
    for (int64_t i = 0; i < R * C; i++) cr_assert_eq(pmi[i], 0);
    const float *ps = wk_data(s), *pm = wk_data(m), *pg = wk_data(g), *pd = wk_data(d);
    const uint8_t *pl = wk_data(lt);
    for (int64_t i = 0; i < R; i++) {
        for (int64_t j = 0; j < C; j++) {
            double x = pa[i * C + j], r = pr[j];
            cr_assert_eq(ps[i * C + j], (float)(x + r), "add [%lld, %lld]", (long long)i,
                         (long long)j);
            cr_assert_eq(pm[j * R + i], (float)(x * x));
            cr_assert_eq(pl[i * C + j], x < r);
            cr_assert_eq(pd[i * C + j], (float)(x / (float)3.0));
            double e = 0.5 * x * (1 + erf(x / sqrt(2.0)));
            cr_assert(fabs(pg[i * C + j] - e) <= 1e-5 + 1e-5 * fabs(e));
        }
    }
    /* Same bits with one thread as with several. */
    int nt = wk_get_num_threads();
    wk_set_num_threads(1);
    wk_tensor *g1 = wk_gelu(a), *s1 = wk_add(a, row);
    wk_set_num_threads(nt);
    cr_assert_eq(memcmp(wk_data(g1), pg, (size_t)(R * C) * sizeof(float)), 0);
    cr_assert_eq(memcmp(wk_data(s1), ps, (size_t)(R * C) * sizeof(float)), 0);
}

/* ---- in place: add_ and mul_scalar_ ---- */

/* dst += src for every dtype, dst laid out contiguous/transposed/sliced, src in every
 * layout and broadcast from a row or a 0-d tensor; src is converted to dst's dtype first
 * (so f32 += f64 rounds src, then the sum). */
Test(elementwise, add_inplace_layouts_dtypes_broadcast)
{
    for (int di = 0; di < NDTYPES; di++) {
        wk_dtype d = dtypes[di];
        for (int L = CONTIG; L <= SLICED; L++) {
            for (int S = 0; S < LAYOUTS + 2; S++) {
                wk_tensor *dst = make_as(d, WK_SHAPE(3, 4), (layout)L, false);
                wk_tensor *before = wk_clone(dst);
                wk_tensor *src = S < LAYOUTS ? make_as(d, WK_SHAPE(3, 4), (layout)S, false)
                                 : S == LAYOUTS ? make(d, WK_SHAPE(4), false)
                                                : make(d, NULL, 0, false);
                cr_assert_eq(wk_add_(dst, src), dst, "%s", wk_last_error());
                for (int64_t i = 0; i < 12; i++) {
                    int64_t idx[2] = {i / 4, i % 4};
                    double a = tu_at(before, i), b = bget(src, idx, 2);
                    double e = d == WK_DTYPE_BOOL ? (a != 0 || b != 0) : cast_to(d, a + b);
                    cr_assert_eq(tu_at(dst, i), e, "%s dst %s src %d [%lld]: %g, expected %g",
                                 wk_dtype_name(d), layout_name[L], S, (long long)i,
                                 tu_at(dst, i), e);
                }
            }
        }
    }
}

Test(elementwise, add_inplace_mixed_dtypes_and_aliasing)
{
    wk_tensor *f = tu_f32(WK_SHAPE(2), 1, 2);
    wk_add_(f, tu_f64(WK_SHAPE(2), 0.1, 1e-9));
    expect_values(f, 0, (float)(1 + (float)0.1), 2);
    wk_tensor *i = tu_i64(WK_SHAPE(3), 1, 2, INT64_MAX);
    wk_add_(i, wk_from_array((int32_t[]){1, -5, 1}, WK_SHAPE(3), WK_DTYPE_I32));
    cr_assert_eq(((int64_t *)wk_data(i))[2], INT64_MIN, "wraps");
    expect_values(wk_slice(i, 0, 0, 2, 1), 0, 2, -3);
    wk_tensor *u = wk_from_array((uint8_t[]){250, 3}, WK_SHAPE(2), WK_DTYPE_U8);
    wk_add_(u, wk_from_array((uint8_t[]){1, 1}, WK_SHAPE(2), WK_DTYPE_BOOL));
    expect_values(u, 0, 251, 4);
    wk_tensor *x = tu_f64(WK_SHAPE(3), 1, -2, 3);
    cr_assert_eq(wk_add_(x, x), x, "x += x is element for element: %s", wk_last_error());
    expect_values(x, 0, 2, -4, 6);
    wk_tensor *e = wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F32);
    cr_assert_eq(wk_add_(e, tu_f32(WK_SHAPE(3), 1, 2, 3)), e);
    /* a leaf that requires grad can be updated under no_grad (optimizers do) */
    wk_tensor *w = wk_requires_grad_(tu_f64(WK_SHAPE(2), 1, 2), true);
    wk_no_grad_begin();
    cr_assert_eq(wk_add_(w, tu_f64(WK_SHAPE(2), 1, 1)), w);
    cr_assert_eq(wk_mul_scalar_(w, 0.5), w);
    wk_no_grad_end();
    expect_values(w, 0, 1, 1.5);
    cr_assert_null(w->grad_fn);
}

Test(elementwise, add_inplace_large_matches_and_is_thread_independent)
{
    const int64_t R = 1000, C = 1001;
    wk_tensor *base = make(WK_DTYPE_F32, WK_SHAPE(C, R), false);
    wk_tensor *dst = wk_transpose(wk_clone(base), 0, 1); /* [R, C] transposed */
    wk_tensor *row = make(WK_DTYPE_F64, WK_SHAPE(C), false);
    cr_assert_eq(wk_add_(dst, row), dst);
    const float *pb = wk_data(base);
    const double *pr = wk_data(row);
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++)
            cr_assert_eq(((float *)wk_data(dst))[j * R + i], pb[j * R + i] + (float)pr[j]);
    int nt = wk_get_num_threads();
    wk_set_num_threads(1);
    wk_tensor *d1 = wk_transpose(wk_clone(base), 0, 1);
    wk_add_(d1, row);
    wk_mul_scalar_(d1, 1.5);
    wk_set_num_threads(nt);
    wk_mul_scalar_(dst, 1.5);
    cr_assert_eq(memcmp(wk_data(d1), wk_data(dst), (size_t)(R * C) * sizeof(float)), 0);
}

Test(elementwise, mul_scalar_inplace)
{
    wk_tensor *f = wk_transpose(tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4), 0, 1);
    cr_assert_eq(wk_mul_scalar_(f, -0.5), f);
    expect_values(f, 0, -0.5, -1.5, -1, -2);
    wk_tensor *d = wk_slice(tu_f64(WK_SHAPE(4), 1, 2, 3, 4), 0, 0, 4, 2);
    wk_mul_scalar_(d, 3);
    expect_values(d, 0, 3, 9);
    wk_tensor *i = wk_from_array((int32_t[]){7, INT32_MAX}, WK_SHAPE(2), WK_DTYPE_I32);
    wk_mul_scalar_(i, 2);
    cr_assert_eq(((int32_t *)wk_data(i))[0], 14);
    cr_assert_eq(((int32_t *)wk_data(i))[1], -2, "wraps");
    wk_tensor *u = wk_from_array((uint8_t[]){200}, WK_SHAPE(1), WK_DTYPE_U8);
    wk_mul_scalar_(u, 2);
    expect_values(u, 0, 144);
}

Test(elementwise, inplace_errors)
{
    wk_tensor *x = tu_f32(WK_SHAPE(3), 1, 2, 3);
    expect_error(wk_add_(x, tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6)),
                 "add_: src of shape [2, 3] does not broadcast to the destination's shape [3]");
    expect_error(wk_add_(x, tu_f32(WK_SHAPE(4), 1, 2, 3, 4)), "add_");
    expect_error(wk_add_(tu_i64(WK_SHAPE(1), 1), tu_f32(WK_SHAPE(1), 1)),
                 "add_: the result type float32 cannot be stored in the int64 destination");
    expect_error(wk_add_(wk_from_array((uint8_t[]){1}, WK_SHAPE(1), WK_DTYPE_BOOL),
                         tu_i64(WK_SHAPE(1), 1)),
                 "cannot be stored in the bool destination");
    wk_tensor *w = wk_requires_grad_(tu_f64(WK_SHAPE(2), 1, 2), true);
    expect_error(wk_add_(w, tu_f64(WK_SHAPE(2), 1, 1)),
                 "add_: the destination (float64 [2]) requires grad");
    expect_error(wk_mul_scalar_(w, 2), "mul_scalar_: the destination (float64 [2]) requires "
                                       "grad");
    expect_error(wk_add_(wk_exp(w), tu_f64(WK_SHAPE(2), 1, 1)), "requires grad");
    wk_tensor *ex = wk_expand(tu_f32(WK_SHAPE(1), 1), WK_SHAPE(3));
    expect_error(wk_add_(ex, x), "add_: the destination (shape [3]) has elements sharing");
    expect_error(wk_mul_scalar_(ex, 2), "mul_scalar_: the destination (shape [3]) has");
    wk_tensor *r = tu_f64(WK_SHAPE(4), 1, 2, 3, 4);
    expect_error(wk_add_(wk_slice(r, 0, 1, 4, 1), wk_slice(r, 0, 0, 3, 1)),
                 "add_: src (shape [3]) partly overlaps the destination");
    expect_values(r, 0, 1, 2, 3, 4);
    cr_assert_not_null(wk_add_(wk_slice(r, 0, 0, 2, 1), wk_slice(r, 0, 2, 4, 1)),
                       "disjoint parts of one storage: %s", wk_last_error());
    expect_values(r, 0, 4, 6, 3, 4);
    expect_error(wk_add_(wk_to_dtype(x, WK_DTYPE_BF16), x), "add_: bfloat16 tensors are not "
                                                            "supported");
    expect_error(wk_mul_scalar_(tu_i64(WK_SHAPE(1), 3), 0.5),
                 "mul_scalar_: the result type float32 cannot be stored in the int64");
    expect_error(wk_mul_scalar_(wk_from_array((uint8_t[]){1}, WK_SHAPE(1), WK_DTYPE_BOOL), 1),
                 "cannot be stored in the bool destination");
    wk_clear_error();
    wk_set_error("first");
    cr_assert_null(wk_add_(NULL, x));
    cr_assert_null(wk_add_(x, NULL));
    cr_assert_null(wk_mul_scalar_(NULL, 2));
    cr_assert_str_eq(wk_last_error(), "first");
    expect_error(wk_add_(NULL, x), "add_: input 0 is NULL");
}

/* CPU kernels of the unary element-wise ops: math, activations, rounding and clamp. */
#include <math.h>

#include "elementwise-impl.h"

#define SQRT_2_OVER_PI 0.79788456080286535587989211986876 /* sqrt(2 / pi) */

#define FN_f32(name) name##f
#define FN_f64(name) name

/* sigmoid from exp(-|x|), so neither side overflows: for x < 0 it is e / (1 + e), which
 * keeps the tiny values 1 / (1 + exp(-x)) would flush to 0. */
#define FLOAT_HELPERS(SFX, T)                                                            \
    static inline T sigmoid1_##SFX(T x)                                                  \
    {                                                                                    \
        T e = FN_##SFX(exp)(-FN_##SFX(fabs)(x));                                         \
        return (x >= 0 ? (T)1 : e) / ((T)1 + e);                                         \
    }                                                                                    \
    static inline T gelu1_##SFX(T x)                                                     \
    {                                                                                    \
        return (T)0.5 * x * ((T)1 + FN_##SFX(erf)(x * (T)M_SQRT1_2));                    \
    }                                                                                    \
    static inline T gelu_tanh1_##SFX(T x)                                                \
    {                                                                                    \
        T inner = (T)SQRT_2_OVER_PI * (x + (T)0.044715 * x * x * x);                     \
        return (T)0.5 * x * ((T)1 + FN_##SFX(tanh)(inner));                              \
    }
FLOAT_HELPERS(f32, float)
FLOAT_HELPERS(f64, double)

#define FLOAT_LOOPS(SFX, T)                                                              \
    WKI_UNARY_LOOP(neg_##SFX, T, T, -x)                                                  \
    WKI_UNARY_LOOP(abs_##SFX, T, T, FN_##SFX(fabs)(x))                                   \
    WKI_UNARY_LOOP(sign_##SFX, T, T, (T)((0 < x) - (x < 0)))                             \
    WKI_UNARY_LOOP(exp_##SFX, T, T, FN_##SFX(exp)(x))                                    \
    WKI_UNARY_LOOP(log_##SFX, T, T, FN_##SFX(log)(x))                                    \
    WKI_UNARY_LOOP(sqrt_##SFX, T, T, FN_##SFX(sqrt)(x))                                  \
    WKI_UNARY_LOOP(rsqrt_##SFX, T, T, (T)1 / FN_##SFX(sqrt)(x))                          \
    WKI_UNARY_LOOP(relu_##SFX, T, T, x < 0 ? (T)0 : x)                                   \
    WKI_UNARY_LOOP(gelu_##SFX, T, T, gelu1_##SFX(x))                                     \
    WKI_UNARY_LOOP(gelu_tanh_##SFX, T, T, gelu_tanh1_##SFX(x))                           \
    WKI_UNARY_LOOP(silu_##SFX, T, T, x * sigmoid1_##SFX(x))                              \
    WKI_UNARY_LOOP(sigmoid_##SFX, T, T, sigmoid1_##SFX(x))                               \
    WKI_UNARY_LOOP(tanh_##SFX, T, T, FN_##SFX(tanh)(x))                                  \
    WKI_UNARY_LOOP(square_##SFX, T, T, x * x)                                            \
    WKI_UNARY_LOOP(reciprocal_##SFX, T, T, (T)1 / x)                                     \
    WKI_UNARY_LOOP(sin_##SFX, T, T, FN_##SFX(sin)(x))                                    \
    WKI_UNARY_LOOP(cos_##SFX, T, T, FN_##SFX(cos)(x))                                    \
    WKI_UNARY_LOOP(log1p_##SFX, T, T, FN_##SFX(log1p)(x))                                \
    WKI_UNARY_LOOP(floor_##SFX, T, T, FN_##SFX(floor)(x))                                \
    WKI_UNARY_LOOP(ceil_##SFX, T, T, FN_##SFX(ceil)(x))                                  \
    WKI_UNARY_LOOP(round_##SFX, T, T, FN_##SFX(nearbyint)(x))                            \
    WKI_UNARY_LOOP(trunc_##SFX, T, T, FN_##SFX(trunc)(x))
FLOAT_LOOPS(f32, float)
FLOAT_LOOPS(f64, double)

/* Signed integers wrap like torch's (-INT_MIN == INT_MIN), through the unsigned type. */
#define INT_LOOPS(SFX, T, U)                                                             \
    WKI_UNARY_LOOP(neg_##SFX, T, T, (T)((U)0 - (U)x))                                    \
    WKI_UNARY_LOOP(abs_##SFX, T, T, x < 0 ? (T)((U)0 - (U)x) : x)                        \
    WKI_UNARY_LOOP(sign_##SFX, T, T, (T)((0 < x) - (x < 0)))                             \
    WKI_UNARY_LOOP(relu_##SFX, T, T, x < 0 ? (T)0 : x)                                   \
    WKI_UNARY_LOOP(square_##SFX, T, T, (T)((U)x * (U)x))                                 \
    WKI_UNARY_LOOP(copy_##SFX, T, T, x)
INT_LOOPS(i32, int32_t, uint32_t)
INT_LOOPS(i64, int64_t, uint64_t)
WKI_UNARY_LOOP(neg_u8, uint8_t, uint8_t, (uint8_t)(0u - x))
WKI_UNARY_LOOP(sign_u8, uint8_t, uint8_t, x != 0)
WKI_UNARY_LOOP(square_u8, uint8_t, uint8_t, (uint8_t)(x * x))
WKI_UNARY_LOOP(copy_u8, uint8_t, uint8_t, x)

/* clamp: bounds of the compute dtype in ctx; NaN elements fall through both tests. */
#define CLAMP_LOOP(NAME, T)                                                              \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        const T lo = ((const T *)ctx)[0], hi = ((const T *)ctx)[1];                      \
        if (s[0] == (int64_t)sizeof(T) && s[1] == (int64_t)sizeof(T)) {                  \
            T *restrict o = (T *)d[0];                                                   \
            const T *restrict in = (const T *)d[1];                                      \
            for (int64_t k = 0; k < n; k++) {                                            \
                T v = in[k] < lo ? lo : in[k];                                           \
                o[k] = v > hi ? hi : v;                                                  \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                T v = *(const T *)(d[1] + k * s[1]);                                     \
                v = v < lo ? lo : v;                                                     \
                *(T *)(d[0] + k * s[0]) = v > hi ? hi : v;                               \
            }                                                                            \
        }                                                                                \
    }
CLAMP_LOOP(clamp_f32, float)
CLAMP_LOOP(clamp_f64, double)
CLAMP_LOOP(clamp_i32, int32_t)
CLAMP_LOOP(clamp_i64, int64_t)
CLAMP_LOOP(clamp_u8, uint8_t)

/* Indexed by op and compute (= output) dtype: f32, f64, i32, i64, u8, bool. Float-only
 * ops have no integer loops: the front-end computes them in float32. */
#define COMPUTE_DTYPES 6
#define FLOAT_ONLY(NAME) {NAME##_f32, NAME##_f64, NULL, NULL, NULL, NULL}
#define ROUNDING(NAME) {NAME##_f32, NAME##_f64, copy_i32, copy_i64, copy_u8, NULL}
static const wki_loop_fn unary_loops[][COMPUTE_DTYPES] = {
    [WK_UNARY_NEG] = {neg_f32, neg_f64, neg_i32, neg_i64, neg_u8, NULL},
    [WK_UNARY_ABS] = {abs_f32, abs_f64, abs_i32, abs_i64, copy_u8, NULL},
    [WK_UNARY_SIGN] = {sign_f32, sign_f64, sign_i32, sign_i64, sign_u8, copy_u8},
    [WK_UNARY_EXP] = FLOAT_ONLY(exp),
    [WK_UNARY_LOG] = FLOAT_ONLY(log),
    [WK_UNARY_SQRT] = FLOAT_ONLY(sqrt),
    [WK_UNARY_RSQRT] = FLOAT_ONLY(rsqrt),
    [WK_UNARY_RELU] = {relu_f32, relu_f64, relu_i32, relu_i64, copy_u8, NULL},
    [WK_UNARY_GELU] = FLOAT_ONLY(gelu),
    [WK_UNARY_GELU_TANH] = FLOAT_ONLY(gelu_tanh),
    [WK_UNARY_SILU] = FLOAT_ONLY(silu),
    [WK_UNARY_SIGMOID] = FLOAT_ONLY(sigmoid),
    [WK_UNARY_TANH] = FLOAT_ONLY(tanh),
    [WK_UNARY_SQUARE] = {square_f32, square_f64, square_i32, square_i64, square_u8, NULL},
    [WK_UNARY_RECIPROCAL] = FLOAT_ONLY(reciprocal),
    [WK_UNARY_SIN] = FLOAT_ONLY(sin),
    [WK_UNARY_COS] = FLOAT_ONLY(cos),
    [WK_UNARY_LOG1P] = FLOAT_ONLY(log1p),
    [WK_UNARY_FLOOR] = ROUNDING(floor),
    [WK_UNARY_CEIL] = ROUNDING(ceil),
    [WK_UNARY_ROUND] = ROUNDING(round),
    [WK_UNARY_TRUNC] = ROUNDING(trunc),
    [WK_UNARY_CLAMP] = {clamp_f32, clamp_f64, clamp_i32, clamp_i64, clamp_u8, NULL},
};
_Static_assert(sizeof unary_loops / sizeof unary_loops[0] == WK_UNARY_COUNT,
               "unary_loops must have one row per wk_unary_op");
_Static_assert(WK_DTYPE_F32 == 0 && WK_DTYPE_F64 == 1 && WK_DTYPE_I32 == 2 &&
                   WK_DTYPE_I64 == 3 && WK_DTYPE_U8 == 4 && WK_DTYPE_BOOL == 5,
               "unary_loops columns follow wk_dtype");

/* ---- backward: grad_in = grad_out * op'(v) in one pass ----
 * v is the saved operand: the forward's output for exp, sqrt, rsqrt, relu, sigmoid, tanh
 * and reciprocal, its input for the others. The formulas are torch's (derivatives.yaml
 * and its CPU activation backward kernels), evaluated in the same order. */

/* Operands: 0 = grad_in (contiguous), 1 = grad_out, 2 = v; ctx holds clamp's bounds lo,
 * hi in T. A grad_out broadcast from one value (stride 0, as a sum's backward gives) has
 * its own path. */
#define GRAD_LOOP(NAME, T, EXPR)                                                         \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        const T lo = ((const T *)ctx)[0], hi = ((const T *)ctx)[1];                      \
        (void)lo, (void)hi;                                                              \
        const int64_t z_ = (int64_t)sizeof(T);                                           \
        if (s[0] == z_ && s[1] == z_ && s[2] == z_) {                                    \
            T *restrict o_ = (T *)d[0];                                                  \
            const T *restrict g_ = (const T *)d[1], *restrict v_ = (const T *)d[2];      \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = g_[k], v = v_[k];                                            \
                (void)v;                                                                 \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == z_ && s[1] == 0 && s[2] == z_) {                              \
            T *restrict o_ = (T *)d[0];                                                  \
            const T *restrict v_ = (const T *)d[2];                                      \
            const T g = *(const T *)d[1];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T v = v_[k];                                                       \
                (void)v;                                                                 \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = *(const T *)(d[1] + k * s[1]);                               \
                const T v = *(const T *)(d[2] + k * s[2]);                               \
                (void)v;                                                                 \
                *(T *)(d[0] + k * s[0]) = (EXPR);                                        \
            }                                                                            \
        }                                                                                \
    }

#define GELU_ALPHA 0.39894228040143267793994605993438 /* 1 / sqrt(2 pi) */

#define GRAD_HELPERS(SFX, T)                                                             \
    static inline T gelu_grad1_##SFX(T g, T x)                                           \
    {                                                                                    \
        T cdf = (T)0.5 * ((T)1 + FN_##SFX(erf)(x * (T)M_SQRT1_2));                       \
        T pdf = (T)GELU_ALPHA * FN_##SFX(exp)((T)-0.5 * x * x);                          \
        return g * (cdf + x * pdf);                                                      \
    }                                                                                    \
    static inline T gelu_tanh_grad1_##SFX(T g, T x)                                      \
    {                                                                                    \
        const T beta = (T)SQRT_2_OVER_PI, kappa = (T)0.044715;                           \
        T x_sq = x * x, x_cube = x_sq * x;                                               \
        T t = FN_##SFX(tanh)(beta * (x + kappa * x_cube));                               \
        T left = (T)0.5 * x, right = (T)1 + t;                                           \
        T left_d = (T)0.5 * right;                                                       \
        T right_d = left * ((T)1 - t * t) * beta * ((T)1 + (T)3 * kappa * x_sq);         \
        return g * (left_d + right_d);                                                   \
    }                                                                                    \
    static inline T silu_grad1_##SFX(T g, T x)                                           \
    {                                                                                    \
        T sg = sigmoid1_##SFX(x);                                                        \
        return g * sg * ((T)1 + x * ((T)1 - sg));                                        \
    }
GRAD_HELPERS(f32, float)
GRAD_HELPERS(f64, double)

#define GRAD_LOOPS(SFX, T)                                                               \
    GRAD_LOOP(neg_grad_##SFX, T, -g)                                                     \
    GRAD_LOOP(abs_grad_##SFX, T, g * (T)((0 < v) - (v < 0)))                             \
    GRAD_LOOP(exp_grad_##SFX, T, g * v)                                                  \
    GRAD_LOOP(log_grad_##SFX, T, g / v)                                                  \
    GRAD_LOOP(sqrt_grad_##SFX, T, g / ((T)2 * v))                                        \
    GRAD_LOOP(rsqrt_grad_##SFX, T, (T)-0.5 * g * (v * v * v))                            \
    GRAD_LOOP(relu_grad_##SFX, T, v > 0 ? g : (T)0)                                      \
    GRAD_LOOP(gelu_grad_##SFX, T, gelu_grad1_##SFX(g, v))                                \
    GRAD_LOOP(gelu_tanh_grad_##SFX, T, gelu_tanh_grad1_##SFX(g, v))                      \
    GRAD_LOOP(silu_grad_##SFX, T, silu_grad1_##SFX(g, v))                                \
    GRAD_LOOP(sigmoid_grad_##SFX, T, g * ((T)1 - v) * v)                                 \
    GRAD_LOOP(tanh_grad_##SFX, T, g * ((T)1 - v * v))                                    \
    GRAD_LOOP(square_grad_##SFX, T, g * ((T)2 * v))                                      \
    GRAD_LOOP(reciprocal_grad_##SFX, T, -g * (v * v))                                    \
    GRAD_LOOP(sin_grad_##SFX, T, g * FN_##SFX(cos)(v))                                   \
    GRAD_LOOP(cos_grad_##SFX, T, g * -FN_##SFX(sin)(v))                                  \
    GRAD_LOOP(log1p_grad_##SFX, T, g / (v + 1))                                          \
    GRAD_LOOP(clamp_grad_##SFX, T, v >= lo && v <= hi ? g : (T)0)
GRAD_LOOPS(f32, float)
GRAD_LOOPS(f64, double)

/* Indexed by op and dtype (f32, f64). Sign and rounding have a zero gradient: no loop,
 * the front-end gives zeros. */
#define GRAD_ROW(NAME) {NAME##_grad_f32, NAME##_grad_f64}
static const wki_loop_fn unary_grad_loops[][2] = {
    [WK_UNARY_NEG] = GRAD_ROW(neg),
    [WK_UNARY_ABS] = GRAD_ROW(abs),
    [WK_UNARY_SIGN] = {NULL, NULL},
    [WK_UNARY_EXP] = GRAD_ROW(exp),
    [WK_UNARY_LOG] = GRAD_ROW(log),
    [WK_UNARY_SQRT] = GRAD_ROW(sqrt),
    [WK_UNARY_RSQRT] = GRAD_ROW(rsqrt),
    [WK_UNARY_RELU] = GRAD_ROW(relu),
    [WK_UNARY_GELU] = GRAD_ROW(gelu),
    [WK_UNARY_GELU_TANH] = GRAD_ROW(gelu_tanh),
    [WK_UNARY_SILU] = GRAD_ROW(silu),
    [WK_UNARY_SIGMOID] = GRAD_ROW(sigmoid),
    [WK_UNARY_TANH] = GRAD_ROW(tanh),
    [WK_UNARY_SQUARE] = GRAD_ROW(square),
    [WK_UNARY_RECIPROCAL] = GRAD_ROW(reciprocal),
    [WK_UNARY_SIN] = GRAD_ROW(sin),
    [WK_UNARY_COS] = GRAD_ROW(cos),
    [WK_UNARY_LOG1P] = GRAD_ROW(log1p),
    [WK_UNARY_FLOOR] = {NULL, NULL},
    [WK_UNARY_CEIL] = {NULL, NULL},
    [WK_UNARY_ROUND] = {NULL, NULL},
    [WK_UNARY_TRUNC] = {NULL, NULL},
    [WK_UNARY_CLAMP] = GRAD_ROW(clamp),
};
_Static_assert(sizeof unary_grad_loops / sizeof unary_grad_loops[0] == WK_UNARY_COUNT,
               "unary_grad_loops must have one row per wk_unary_op");

wki_ew_status wki_cpu_unary_backward(wk_unary_op op, wk_tensor *grad_in,
                                     const wk_tensor *grad_out, const wk_tensor *saved,
                                     const double *params)
{
    wk_dtype c = grad_in->dtype;
    if ((unsigned)op >= WK_UNARY_COUNT || (c != WK_DTYPE_F32 && c != WK_DTYPE_F64) ||
        !unary_grad_loops[op][c == WK_DTYPE_F64])
        return WKI_EW_UNSUPPORTED;
    /* clamp's bounds as the forward compared them (in the tensor's dtype); none = inf */
    double lo = params && !isnan(params[0]) ? params[0] : -INFINITY;
    double hi = params && !isnan(params[1]) ? params[1] : INFINITY;
    union {
        float f32[2];
        double f64[2];
    } bounds;
    if (c == WK_DTYPE_F32) {
        bounds.f32[0] = (float)lo;
        bounds.f32[1] = (float)hi;
    } else {
        bounds.f64[0] = lo;
        bounds.f64[1] = hi;
    }
    const wk_tensor *ops[3] = {grad_in, grad_out, saved};
    wki_ew_run(3, ops, (const wk_dtype[]){c, c, c}, unary_grad_loops[op][c == WK_DTYPE_F64],
               &bounds);
    return WKI_EW_OK;
}

/* A bound converted to an integer dtype's range (the front-end made sure it is integral). */
static int64_t int_bound(double v, bool upper, int64_t lo, int64_t hi)
{
    if (isnan(v)) return upper ? hi : lo;
    if (v <= (double)lo) return lo;
    if (v >= (double)hi) return hi;
    return (int64_t)v;
}

wki_ew_status wki_cpu_unary(wk_unary_op op, wk_tensor *out, const wk_tensor *x,
                            const double *params)
{
    wk_dtype c = out->dtype;
    if ((unsigned)op >= WK_UNARY_COUNT || (unsigned)c >= COMPUTE_DTYPES ||
        !unary_loops[op][c])
        return WKI_EW_UNSUPPORTED;
    union {
        float f32[2];
        double f64[2];
        int32_t i32[2];
        int64_t i64[2];
        uint8_t u8[2];
    } bounds = {.f64 = {0, 0}};
    if (op == WK_UNARY_CLAMP) {
        double lo = params ? params[0] : NAN, hi = params ? params[1] : NAN;
        switch (c) {
        case WK_DTYPE_F32:
            bounds.f32[0] = isnan(lo) ? -INFINITY : (float)lo;
            bounds.f32[1] = isnan(hi) ? INFINITY : (float)hi;
            break;
        case WK_DTYPE_F64:
            bounds.f64[0] = isnan(lo) ? -INFINITY : lo;
            bounds.f64[1] = isnan(hi) ? INFINITY : hi;
            break;
        case WK_DTYPE_I32:
            bounds.i32[0] = (int32_t)int_bound(lo, false, INT32_MIN, INT32_MAX);
            bounds.i32[1] = (int32_t)int_bound(hi, true, INT32_MIN, INT32_MAX);
            break;
        case WK_DTYPE_I64:
            bounds.i64[0] = int_bound(lo, false, INT64_MIN, INT64_MAX);
            bounds.i64[1] = int_bound(hi, true, INT64_MIN, INT64_MAX);
            break;
        default:
            bounds.u8[0] = (uint8_t)int_bound(lo, false, 0, UINT8_MAX);
            bounds.u8[1] = (uint8_t)int_bound(hi, true, 0, UINT8_MAX);
            break;
        }
    }
    const wk_tensor *ops[2] = {out, x};
    wki_ew_run(2, ops, (const wk_dtype[]){c, c}, unary_loops[op][c], &bounds);
    return WKI_EW_OK;
}

/* CPU kernels of the binary element-wise ops and where, and the on-the-fly dtype
 * conversion every element-wise kernel runs its inputs through. */
#include <math.h>
#include <stdatomic.h>

#include "elementwise-impl.h"

/* ---- dtype conversion in blocks ---- */

#define CAST_BLOCK 256 /* elements converted at a time: 2 KiB per operand on the stack */

/* Float to integer without undefined behaviour: NaN -> 0, saturate out of range. */
static inline int64_t sat_i64(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

/* Integer conversions wrap (through the unsigned type, so no overflow is undefined). */
#define TO_F32(v) ((float)(v))
#define TO_F64(v) ((double)(v))
#define I_TO_I32(v) ((int32_t)(uint32_t)(uint64_t)(int64_t)(v))
#define F_TO_I32(v) ((int32_t)(uint32_t)(uint64_t)sat_i64(v))
#define I_TO_I64(v) ((int64_t)(v))
#define F_TO_I64(v) sat_i64(v)
#define I_TO_U8(v) ((uint8_t)(uint64_t)(int64_t)(v))
#define F_TO_U8(v) ((uint8_t)(uint64_t)sat_i64(v))
#define TO_BOOL(v) ((uint8_t)((v) != 0))

#define CONVERT(TD, TS, CONV)                                                            \
    do {                                                                                 \
        TD *o_ = dst;                                                                    \
        for (int64_t k = 0; k < n; k++) o_[k] = CONV(*(const TS *)(src + k * stride));   \
    } while (0)

#define CONVERT_FROM(TD, CONV_F, CONV_I)                                                 \
    switch (from) {                                                                      \
    case WK_DTYPE_F32: CONVERT(TD, float, CONV_F); break;                                \
    case WK_DTYPE_F64: CONVERT(TD, double, CONV_F); break;                               \
    case WK_DTYPE_I32: CONVERT(TD, int32_t, CONV_I); break;                              \
    case WK_DTYPE_I64: CONVERT(TD, int64_t, CONV_I); break;                              \
    case WK_DTYPE_U8: CONVERT(TD, uint8_t, CONV_I); break;                               \
    case WK_DTYPE_BOOL: CONVERT(TD, uint8_t, CONV_I); break;                             \
    default: break;                                                                      \
    }

void wki_ew_convert(wk_dtype to, void *dst, wk_dtype from, const char *src, int64_t stride,
                    int64_t n)
{
    switch (to) {
    case WK_DTYPE_F32: CONVERT_FROM(float, TO_F32, TO_F32); break;
    case WK_DTYPE_F64: CONVERT_FROM(double, TO_F64, TO_F64); break;
    case WK_DTYPE_I32: CONVERT_FROM(int32_t, F_TO_I32, I_TO_I32); break;
    case WK_DTYPE_I64: CONVERT_FROM(int64_t, F_TO_I64, I_TO_I64); break;
    case WK_DTYPE_U8: CONVERT_FROM(uint8_t, F_TO_U8, I_TO_U8); break;
    case WK_DTYPE_BOOL: CONVERT_FROM(uint8_t, TO_BOOL, TO_BOOL); break;
    default: break;
    }
}

typedef struct {
    wki_loop_fn fn;
    void *ctx;
    int nops;
    wk_dtype from[WKI_MAX_OPERANDS], to[WKI_MAX_OPERANDS];
} cast_ctx;

static void cast_loop(char **d, const int64_t *s, int64_t n, void *vctx)
{
    const cast_ctx *c = vctx;
    _Alignas(64) char buf[WKI_MAX_OPERANDS][CAST_BLOCK * 8];
    char *p[WKI_MAX_OPERANDS];
    int64_t st[WKI_MAX_OPERANDS];
    st[0] = s[0];
    for (int k = 1; k < c->nops; k++) {
        bool cast = c->from[k] != c->to[k];
        st[k] = cast ? (s[k] ? (int64_t)wk_dtype_size(c->to[k]) : 0) : s[k];
        if (cast && !s[k]) wki_ew_convert(c->to[k], buf[k], c->from[k], d[k], 0, 1);
    }
    for (int64_t i = 0; i < n; i += CAST_BLOCK) {
        int64_t m = n - i < CAST_BLOCK ? n - i : CAST_BLOCK;
        p[0] = d[0] + i * s[0];
        for (int k = 1; k < c->nops; k++) {
            if (c->from[k] == c->to[k]) {
                p[k] = d[k] + i * s[k];
            } else {
                p[k] = buf[k];
                if (s[k]) wki_ew_convert(c->to[k], buf[k], c->from[k], d[k] + i * s[k], s[k], m);
            }
        }
        c->fn(p, st, m, c->ctx);
    }
}

void wki_ew_run(int nops, const wk_tensor *const *ops, const wk_dtype *to, wki_loop_fn fn,
                void *ctx)
{
    wki_iter it;
    wki_iter_init(&it, nops, ops);
    cast_ctx c = {.fn = fn, .ctx = ctx, .nops = nops};
    bool cast = false;
    for (int k = 1; k < nops; k++) {
        c.from[k] = ops[k]->dtype;
        c.to[k] = to[k];
        cast |= c.from[k] != c.to[k];
    }
    if (cast) wki_iter_run(&it, cast_loop, &c);
    else wki_iter_run(&it, fn, ctx);
}

/* ---- scalar helpers for the ops that are more than one operator ---- */

/* Python's floor division and modulo on floats, as torch computes them (through fmod,
 * which is exact, rather than floor(a / b), which can round the wrong way). */
#define FLOAT_DIV_HELPERS(SFX, T, FMOD, FLOOR, COPYSIGN)                                 \
    static inline T floordiv1_##SFX(T a, T b)                                            \
    {                                                                                    \
        if (b == 0) return a / b;                                                        \
        T mod = FMOD(a, b);                                                              \
        T div = (a - mod) / b;                                                           \
        if (mod != 0 && (b < 0) != (mod < 0)) div -= 1;                                  \
        if (div == 0) return COPYSIGN((T)0, a / b);                                      \
        T fd = FLOOR(div);                                                               \
        return div - fd > (T)0.5 ? fd + 1 : fd;                                          \
    }                                                                                    \
    static inline T remainder1_##SFX(T a, T b)                                           \
    {                                                                                    \
        T mod = FMOD(a, b);                                                              \
        return mod != 0 && (b < 0) != (mod < 0) ? mod + b : mod;                         \
    }
FLOAT_DIV_HELPERS(f32, float, fmodf, floorf, copysignf)
FLOAT_DIV_HELPERS(f64, double, fmod, floor, copysign)

/* Signed integers: floor division and modulo (the divisor was checked non-zero; -1 is
 * special so that INT_MIN / -1 wraps instead of trapping), and torch's integer pow. */
#define INT_HELPERS(SFX, T, U)                                                           \
    static inline T floordiv1_##SFX(T a, T b)                                            \
    {                                                                                    \
        if (b == 0) return 0;                                                            \
        if (b == -1) return (T)((U)0 - (U)a);                                            \
        T q = a / b, r = a % b;                                                          \
        return r != 0 && (r < 0) != (b < 0) ? q - 1 : q;                                 \
    }                                                                                    \
    static inline T remainder1_##SFX(T a, T b)                                           \
    {                                                                                    \
        if (b == 0 || b == -1) return 0;                                                 \
        T r = a % b;                                                                     \
        return r != 0 && (r < 0) != (b < 0) ? r + b : r;                                 \
    }                                                                                    \
    static inline T pow1_##SFX(T a, T b)                                                 \
    {                                                                                    \
        if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;                 \
        U r = 1, base = (U)a;                                                            \
        for (U e = (U)b; e; e >>= 1) {                                                   \
            if (e & 1) r *= base;                                                        \
            base *= base;                                                                \
        }                                                                                \
        return (T)r;                                                                     \
    }
INT_HELPERS(i32, int32_t, uint32_t)
INT_HELPERS(i64, int64_t, uint64_t)

static inline uint8_t pow1_u8(uint8_t a, uint8_t b)
{
    unsigned r = 1, base = a;
    for (unsigned e = b; e; e >>= 1) {
        if (e & 1) r = (r * base) & 0xff;
        base = (base * base) & 0xff;
    }
    return (uint8_t)r;
}

/* Integer arithmetic wraps like torch's; through the unsigned type it is defined C. */
#define WRAP(T, U, a, OP, b) ((T)(U)((U)(a)OP(U)(b)))
/* maximum/minimum propagate NaN from either side. */
#define MAX_NAN(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define MIN_NAN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))

/* ---- typed loops ---- */

#define FLOAT_LOOPS(SFX, T, POW)                                                         \
    WKI_BINARY_LOOP(add_##SFX, T, T, a + b)                                              \
    WKI_BINARY_LOOP(sub_##SFX, T, T, a - b)                                              \
    WKI_BINARY_LOOP(mul_##SFX, T, T, a * b)                                              \
    WKI_BINARY_LOOP(div_##SFX, T, T, a / b)                                              \
    WKI_BINARY_LOOP(pow_##SFX, T, T, POW(a, b))                                          \
    WKI_BINARY_LOOP(max_##SFX, T, T, MAX_NAN(a, b))                                      \
    WKI_BINARY_LOOP(min_##SFX, T, T, MIN_NAN(a, b))                                      \
    WKI_BINARY_LOOP(floordiv_##SFX, T, T, floordiv1_##SFX(a, b))                         \
    WKI_BINARY_LOOP(remainder_##SFX, T, T, remainder1_##SFX(a, b))

#define INT_LOOPS(SFX, T, U)                                                             \
    WKI_BINARY_LOOP(add_##SFX, T, T, WRAP(T, U, a, +, b))                                \
    WKI_BINARY_LOOP(sub_##SFX, T, T, WRAP(T, U, a, -, b))                                \
    WKI_BINARY_LOOP(mul_##SFX, T, T, WRAP(T, U, a, *, b))                                \
    WKI_BINARY_LOOP(pow_##SFX, T, T, pow1_##SFX(a, b))                                   \
    WKI_BINARY_LOOP(max_##SFX, T, T, a > b ? a : b)                                      \
    WKI_BINARY_LOOP(min_##SFX, T, T, a < b ? a : b)                                      \
    WKI_BINARY_LOOP(floordiv_##SFX, T, T, floordiv1_##SFX(a, b))                         \
    WKI_BINARY_LOOP(remainder_##SFX, T, T, remainder1_##SFX(a, b))

#define CMP_LOOPS(SFX, T)                                                                \
    WKI_BINARY_LOOP(eq_##SFX, uint8_t, T, a == b)                                        \
    WKI_BINARY_LOOP(ne_##SFX, uint8_t, T, a != b)                                        \
    WKI_BINARY_LOOP(lt_##SFX, uint8_t, T, a < b)                                         \
    WKI_BINARY_LOOP(le_##SFX, uint8_t, T, a <= b)                                        \
    WKI_BINARY_LOOP(gt_##SFX, uint8_t, T, a > b)                                         \
    WKI_BINARY_LOOP(ge_##SFX, uint8_t, T, a >= b)

FLOAT_LOOPS(f32, float, powf)
FLOAT_LOOPS(f64, double, pow)
INT_LOOPS(i32, int32_t, uint32_t)
INT_LOOPS(i64, int64_t, uint64_t)
WKI_BINARY_LOOP(add_u8, uint8_t, uint8_t, (uint8_t)(a + b))
WKI_BINARY_LOOP(sub_u8, uint8_t, uint8_t, (uint8_t)(a - b))
WKI_BINARY_LOOP(mul_u8, uint8_t, uint8_t, (uint8_t)(a * b))
WKI_BINARY_LOOP(pow_u8, uint8_t, uint8_t, pow1_u8(a, b))
WKI_BINARY_LOOP(max_u8, uint8_t, uint8_t, a > b ? a : b)
WKI_BINARY_LOOP(min_u8, uint8_t, uint8_t, a < b ? a : b)
WKI_BINARY_LOOP(floordiv_u8, uint8_t, uint8_t, b ? a / b : 0)
WKI_BINARY_LOOP(remainder_u8, uint8_t, uint8_t, b ? a % b : 0)
WKI_BINARY_LOOP(or_b8, uint8_t, uint8_t, a | b)
WKI_BINARY_LOOP(and_b8, uint8_t, uint8_t, a & b)
CMP_LOOPS(f32, float)
CMP_LOOPS(f64, double)
CMP_LOOPS(i32, int32_t)
CMP_LOOPS(i64, int64_t)
CMP_LOOPS(u8, uint8_t)

/* Indexed by op and compute dtype (f32, f64, i32, i64, u8, bool); NULL where the
 * front-end never asks (true division and bool arithmetic beyond or/and). */
#define COMPUTE_DTYPES 6
#define ROW(NAME) {NAME##_f32, NAME##_f64, NAME##_i32, NAME##_i64, NAME##_u8, NULL}
#define CMP_ROW(NAME) {NAME##_f32, NAME##_f64, NAME##_i32, NAME##_i64, NAME##_u8, NAME##_u8}
static const wki_loop_fn binary_loops[][COMPUTE_DTYPES] = {
    [WK_BINARY_ADD] = {add_f32, add_f64, add_i32, add_i64, add_u8, or_b8},
    [WK_BINARY_SUB] = ROW(sub),
    [WK_BINARY_MUL] = {mul_f32, mul_f64, mul_i32, mul_i64, mul_u8, and_b8},
    [WK_BINARY_DIV] = {div_f32, div_f64, NULL, NULL, NULL, NULL},
    [WK_BINARY_POW] = ROW(pow),
    [WK_BINARY_MAXIMUM] = {max_f32, max_f64, max_i32, max_i64, max_u8, or_b8},
    [WK_BINARY_MINIMUM] = {min_f32, min_f64, min_i32, min_i64, min_u8, and_b8},
    [WK_BINARY_FLOOR_DIVIDE] = ROW(floordiv),
    [WK_BINARY_REMAINDER] = ROW(remainder),
    [WK_BINARY_EQ] = CMP_ROW(eq),
    [WK_BINARY_NE] = CMP_ROW(ne),
    [WK_BINARY_LT] = CMP_ROW(lt),
    [WK_BINARY_LE] = CMP_ROW(le),
    [WK_BINARY_GT] = CMP_ROW(gt),
    [WK_BINARY_GE] = CMP_ROW(ge),
};
_Static_assert(sizeof binary_loops / sizeof binary_loops[0] == WK_BINARY_COUNT,
               "binary_loops must have one row per wk_binary_op");
_Static_assert(WK_DTYPE_F32 == 0 && WK_DTYPE_F64 == 1 && WK_DTYPE_I32 == 2 &&
                   WK_DTYPE_I64 == 3 && WK_DTYPE_U8 == 4 && WK_DTYPE_BOOL == 5,
               "binary_loops columns follow wk_dtype");

/* ---- pow with a single float exponent: the exponents torch computes without pow() ---- */

WKI_UNARY_LOOP(pow2_f32, float, float, x * x)
WKI_UNARY_LOOP(pow2_f64, double, double, x * x)
WKI_UNARY_LOOP(pow3_f32, float, float, x * x * x)
WKI_UNARY_LOOP(pow3_f64, double, double, x * x * x)
WKI_UNARY_LOOP(powhalf_f32, float, float, sqrtf(x))
WKI_UNARY_LOOP(powhalf_f64, double, double, sqrt(x))
WKI_UNARY_LOOP(powm1_f32, float, float, 1.0f / x)
WKI_UNARY_LOOP(powm1_f64, double, double, 1.0 / x)

static wki_loop_fn pow_special(const wk_tensor *b, wk_dtype compute)
{
    if (wk_numel(b) != 1) return NULL;
    double e;
    wki_ew_convert(WK_DTYPE_F64, &e, b->dtype, wk_data(b), 0, 1);
    bool f = compute == WK_DTYPE_F32;
    if (f) e = (float)e; /* the exponent the general loop would see */
    if (e == 2) return f ? pow2_f32 : pow2_f64;
    if (e == 3) return f ? pow3_f32 : pow3_f64;
    if (e == 0.5) return f ? powhalf_f32 : powhalf_f64;
    if (e == -1) return f ? powm1_f32 : powm1_f64;
    return NULL;
}

/* ---- backward: the gradient of one operand in one pass ----
 * Operands: 0 = grad_in (contiguous), 1 = grad_out (g), 2 = a, 3 = b, all in the float
 * compute dtype. The formulas and their conventions at 0 and at ties are torch's
 * (derivatives.yaml): pow's base gradient is 0 where the exponent is 0, its exponent
 * gradient 0 where the base is 0 and the exponent >= 0; maximum/minimum split ties. */
#define GRAD2_LOOP(NAME, T, EXPR)                                                        \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        (void)ctx;                                                                       \
        const int64_t z_ = (int64_t)sizeof(T);                                           \
        if (s[0] == z_ && s[1] == z_ && s[2] == z_ && s[3] == z_) {                      \
            T *restrict o_ = (T *)d[0];                                                  \
            const T *restrict g_ = (const T *)d[1], *restrict a_ = (const T *)d[2];      \
            const T *restrict b_ = (const T *)d[3];                                      \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = g_[k], a = a_[k], b = b_[k];                                 \
                (void)a, (void)b;                                                        \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == z_ && s[1] == z_ && s[2] == z_ && s[3] == 0) {                \
            T *restrict o_ = (T *)d[0];                                                  \
            const T *restrict g_ = (const T *)d[1], *restrict a_ = (const T *)d[2];      \
            const T b = *(const T *)d[3];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = g_[k], a = a_[k];                                            \
                (void)a, (void)b;                                                        \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == z_ && s[1] == z_ && s[2] == 0 && s[3] == z_) {                \
            T *restrict o_ = (T *)d[0];                                                  \
            const T *restrict g_ = (const T *)d[1], *restrict b_ = (const T *)d[3];      \
            const T a = *(const T *)d[2];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = g_[k], b = b_[k];                                            \
                (void)a, (void)b;                                                        \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T g = *(const T *)(d[1] + k * s[1]);                               \
                const T a = *(const T *)(d[2] + k * s[2]);                               \
                const T b = *(const T *)(d[3] + k * s[3]);                               \
                (void)a, (void)b;                                                        \
                *(T *)(d[0] + k * s[0]) = (EXPR);                                        \
            }                                                                            \
        }                                                                                \
    }

#define GRAD2_LOOPS(SFX, T, POW, LOG)                                                    \
    GRAD2_LOOP(mul_ga_##SFX, T, g * b)                                                   \
    GRAD2_LOOP(mul_gb_##SFX, T, g * a)                                                   \
    GRAD2_LOOP(div_ga_##SFX, T, g / b)                                                   \
    GRAD2_LOOP(div_gb_##SFX, T, -g * ((a / b) / b))                                      \
    GRAD2_LOOP(pow_ga_##SFX, T, b == 0 ? (T)0 : g * (b * POW(a, b - 1)))                 \
    GRAD2_LOOP(pow2_ga_##SFX, T, g * ((T)2 * a))                                         \
    GRAD2_LOOP(pow_gb_##SFX, T, g * (a == 0 && b >= 0 ? (T)0 : POW(a, b) * LOG(a)))      \
    GRAD2_LOOP(max_ga_##SFX, T, a == b ? g / 2 : a < b ? (T)0 : g)                       \
    GRAD2_LOOP(max_gb_##SFX, T, a == b ? g / 2 : a > b ? (T)0 : g)                       \
    GRAD2_LOOP(min_ga_##SFX, T, a == b ? g / 2 : a > b ? (T)0 : g)                       \
    GRAD2_LOOP(min_gb_##SFX, T, a == b ? g / 2 : a < b ? (T)0 : g)                       \
    GRAD2_LOOP(remainder_gb_##SFX, T, -g * floordiv1_##SFX(a, b))
GRAD2_LOOPS(f32, float, powf, logf)
GRAD2_LOOPS(f64, double, pow, log)

/* Indexed by op, operand (a, b) and dtype (f32, f64). NULL where no loop is needed (add,
 * sub, remainder's a: the gradient is grad_out or its negation) or the op has no
 * gradient (floor_divide, comparisons); ops added later default to NULL, an error. */
#define GRAD2_ROW(GA, GB) {{GA##_f32, GA##_f64}, {GB##_f32, GB##_f64}}
static const wki_loop_fn binary_grad_loops[WK_BINARY_COUNT][2][2] = {
    [WK_BINARY_MUL] = GRAD2_ROW(mul_ga, mul_gb),
    [WK_BINARY_DIV] = GRAD2_ROW(div_ga, div_gb),
    [WK_BINARY_POW] = GRAD2_ROW(pow_ga, pow_gb),
    [WK_BINARY_MAXIMUM] = GRAD2_ROW(max_ga, max_gb),
    [WK_BINARY_MINIMUM] = GRAD2_ROW(min_ga, min_gb),
    [WK_BINARY_REMAINDER] = {{NULL, NULL}, {remainder_gb_f32, remainder_gb_f64}},
};

wki_ew_status wki_cpu_binary_backward(wk_binary_op op, int which, wk_tensor *grad_in,
                                      const wk_tensor *grad_out, const wk_tensor *a,
                                      const wk_tensor *b)
{
    wk_dtype c = grad_in->dtype;
    if ((unsigned)op >= WK_BINARY_COUNT || (which != 0 && which != 1) ||
        (c != WK_DTYPE_F32 && c != WK_DTYPE_F64))
        return WKI_EW_UNSUPPORTED;
    bool f64 = c == WK_DTYPE_F64;
    wki_loop_fn fn = binary_grad_loops[op][which][f64];
    if (!fn) return WKI_EW_UNSUPPORTED;
    if (op == WK_BINARY_POW && which == 0 && wk_numel(b) == 1) {
        /* x ** 2, the common case, without a pow() per element (the same value) */
        double e;
        wki_ew_convert(WK_DTYPE_F64, &e, b->dtype, wk_data(b), 0, 1);
        if ((f64 ? e : (float)e) == 2) fn = f64 ? pow2_ga_f64 : pow2_ga_f32;
    }
    const wk_tensor *ops[4] = {grad_in, grad_out, a, b};
    wki_ew_run(4, ops, (const wk_dtype[]){c, c, c, c}, fn, NULL);
    return WKI_EW_OK;
}

/* ---- in place: dst = dst op src (a is dst's element, b src's) ---- */

/* dst is read and written through the same pointer, and src may be dst itself (x += x),
 * so these loops take no restrict. */
#define INPLACE_LOOP(NAME, T, EXPR)                                                      \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        (void)ctx;                                                                       \
        const int64_t z_ = (int64_t)sizeof(T);                                           \
        if (s[0] == z_ && s[1] == z_) {                                                  \
            T *o_ = (T *)d[0];                                                           \
            const T *y_ = (const T *)d[1];                                               \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T a = o_[k], b = y_[k];                                            \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == z_ && s[1] == 0) {                                            \
            T *restrict o_ = (T *)d[0];                                                  \
            const T b = *(const T *)d[1];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T a = o_[k];                                                       \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                T *o = (T *)(d[0] + k * s[0]);                                           \
                const T a = *o, b = *(const T *)(d[1] + k * s[1]);                       \
                *o = (EXPR);                                                             \
            }                                                                            \
        }                                                                                \
    }
INPLACE_LOOP(iadd_f32, float, a + b)
INPLACE_LOOP(iadd_f64, double, a + b)
INPLACE_LOOP(iadd_i32, int32_t, WRAP(int32_t, uint32_t, a, +, b))
INPLACE_LOOP(iadd_i64, int64_t, WRAP(int64_t, uint64_t, a, +, b))
INPLACE_LOOP(iadd_u8, uint8_t, (uint8_t)(a + b))
INPLACE_LOOP(ior_b8, uint8_t, a | b)
INPLACE_LOOP(imul_f32, float, a * b)
INPLACE_LOOP(imul_f64, double, a * b)
INPLACE_LOOP(imul_i32, int32_t, WRAP(int32_t, uint32_t, a, *, b))
INPLACE_LOOP(imul_i64, int64_t, WRAP(int64_t, uint64_t, a, *, b))
INPLACE_LOOP(imul_u8, uint8_t, (uint8_t)(a * b))
INPLACE_LOOP(iand_b8, uint8_t, a & b)

/* add and mul by dst's dtype (f32, f64, i32, i64, u8, bool). */
static const wki_loop_fn inplace_loops[2][COMPUTE_DTYPES] = {
    {iadd_f32, iadd_f64, iadd_i32, iadd_i64, iadd_u8, ior_b8},
    {imul_f32, imul_f64, imul_i32, imul_i64, imul_u8, iand_b8},
};

wki_ew_status wki_cpu_inplace(wk_binary_op op, wk_tensor *dst, const wk_tensor *src)
{
    wk_dtype c = dst->dtype;
    if ((op != WK_BINARY_ADD && op != WK_BINARY_MUL) || (unsigned)c >= COMPUTE_DTYPES)
        return WKI_EW_UNSUPPORTED;
    const wk_tensor *ops[2] = {dst, src};
    wki_ew_run(2, ops, (const wk_dtype[]){c, c}, inplace_loops[op == WK_BINARY_MUL][c], NULL);
    return WKI_EW_OK;
}

/* ---- integer division by zero ---- */

typedef struct {
    wk_dtype from, to;
    atomic_int found;
} zero_ctx;

static void find_zero(char **d, const int64_t *s, int64_t n, void *vctx)
{
    zero_ctx *c = vctx;
    _Alignas(64) char buf[CAST_BLOCK * 8];
    for (int64_t i = 0; i < n; i += CAST_BLOCK) {
        if (atomic_load_explicit(&c->found, memory_order_relaxed)) return;
        int64_t m = n - i < CAST_BLOCK ? n - i : CAST_BLOCK;
        /* Zero after conversion: a divisor can wrap to 0 in a narrower compute dtype. */
        wki_ew_convert(c->to, buf, c->from, d[0] + i * s[0], s[0], m);
        int zero = 0;
        switch (wk_dtype_size(c->to)) {
        case 1: for (int64_t k = 0; k < m; k++) zero |= ((uint8_t *)buf)[k] == 0; break;
        case 4: for (int64_t k = 0; k < m; k++) zero |= ((int32_t *)buf)[k] == 0; break;
        default: for (int64_t k = 0; k < m; k++) zero |= ((int64_t *)buf)[k] == 0; break;
        }
        if (zero) atomic_store_explicit(&c->found, 1, memory_order_relaxed);
    }
}

static bool has_zero(const wk_tensor *b, wk_dtype compute)
{
    zero_ctx c = {.from = b->dtype, .to = compute};
    atomic_init(&c.found, 0);
    wki_iter it;
    wki_iter_init(&it, 1, &b);
    wki_iter_run(&it, find_zero, &c);
    return atomic_load(&c.found) != 0;
}

wki_ew_status wki_cpu_binary(wk_binary_op op, wk_tensor *out, const wk_tensor *a,
                             const wk_tensor *b, wk_dtype compute)
{
    if ((unsigned)op >= WK_BINARY_COUNT || (unsigned)compute >= COMPUTE_DTYPES ||
        !binary_loops[op][compute])
        return WKI_EW_UNSUPPORTED;
    bool is_float = wk_dtype_is_float(compute);
    if ((op == WK_BINARY_FLOOR_DIVIDE || op == WK_BINARY_REMAINDER) && !is_float &&
        has_zero(b, compute))
        return WKI_EW_ZERO_DIVISOR;
    wki_loop_fn special = op == WK_BINARY_POW && is_float ? pow_special(b, compute) : NULL;
    if (special) {
        const wk_tensor *ops[2] = {out, a};
        wki_ew_run(2, ops, (const wk_dtype[]){compute, compute}, special, NULL);
    } else {
        const wk_tensor *ops[3] = {out, a, b};
        wki_ew_run(3, ops, (const wk_dtype[]){out->dtype, compute, compute},
                   binary_loops[op][compute], NULL);
    }
    return WKI_EW_OK;
}

/* ---- where: a select of 1-, 4- or 8-byte elements ---- */

/* A bit mask rather than `c ? x : y`, so that gcc vectorises every width. */
#define SELECT(T, c, x, y) ((T)(((x) & (T)-(T)((c) != 0)) | ((y) & (T)~(T)-(T)((c) != 0))))
#define WHERE_LOOP(NAME, T)                                                              \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        (void)ctx;                                                                       \
        const int64_t z = (int64_t)sizeof(T);                                            \
        if (s[0] == z && s[1] == 1 && s[2] == z && s[3] == z) {                          \
            T *restrict o = (T *)d[0];                                                   \
            const uint8_t *restrict c = (const uint8_t *)d[1];                           \
            const T *restrict x = (const T *)d[2], *restrict y = (const T *)d[3];        \
            for (int64_t k = 0; k < n; k++) o[k] = SELECT(T, c[k], x[k], y[k]);          \
        } else if (s[0] == z && s[1] == 1 && s[2] == z && s[3] == 0) {                   \
            T *restrict o = (T *)d[0];                                                   \
            const uint8_t *restrict c = (const uint8_t *)d[1];                           \
            const T *restrict x = (const T *)d[2], y = *(const T *)d[3];                 \
            for (int64_t k = 0; k < n; k++) o[k] = SELECT(T, c[k], x[k], y);             \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++)                                              \
                *(T *)(d[0] + k * s[0]) = *(const uint8_t *)(d[1] + k * s[1])            \
                                              ? *(const T *)(d[2] + k * s[2])            \
                                              : *(const T *)(d[3] + k * s[3]);           \
        }                                                                                \
    }
WHERE_LOOP(where_1, uint8_t)
WHERE_LOOP(where_4, uint32_t)
WHERE_LOOP(where_8, uint64_t)

wki_ew_status wki_cpu_where(wk_tensor *out, const wk_tensor *cond, const wk_tensor *a,
                            const wk_tensor *b)
{
    wk_dtype r = out->dtype;
    if ((unsigned)r >= COMPUTE_DTYPES) return WKI_EW_UNSUPPORTED;
    size_t size = wk_dtype_size(r);
    wki_loop_fn fn = size == 1 ? where_1 : size == 4 ? where_4 : where_8;
    const wk_tensor *ops[4] = {out, cond, a, b};
    wki_ew_run(4, ops, (const wk_dtype[]){r, WK_DTYPE_BOOL, r, r}, fn, NULL);
    return WKI_EW_OK;
}

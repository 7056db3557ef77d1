/* Element-wise front-ends: op tables, type promotion, validation, output allocation and
 * dispatch to the kernels of the inputs' device (CPU: tensor/cpu/unary.c, binary.c). */
#include <math.h>
#include <string.h>

#include "cpu/elementwise-impl.h"

/* ---- op tables ---- */

enum {
    UN_FLOAT = 1u,   /* integer and bool inputs are computed in (and give) float32 */
    UN_NO_BOOL = 2u, /* not defined for bool, as in torch */
};

static const struct {
    const char *name;
    unsigned flags;
} unary_info[] = {
    [WK_UNARY_NEG] = {"neg", UN_NO_BOOL},
    [WK_UNARY_ABS] = {"abs", UN_NO_BOOL},
    [WK_UNARY_SIGN] = {"sign", 0},
    [WK_UNARY_EXP] = {"exp", UN_FLOAT},
    [WK_UNARY_LOG] = {"log", UN_FLOAT},
    [WK_UNARY_SQRT] = {"sqrt", UN_FLOAT},
    [WK_UNARY_RSQRT] = {"rsqrt", UN_FLOAT},
    [WK_UNARY_RELU] = {"relu", UN_NO_BOOL},
    [WK_UNARY_GELU] = {"gelu", UN_FLOAT},
    [WK_UNARY_GELU_TANH] = {"gelu_tanh", UN_FLOAT},
    [WK_UNARY_SILU] = {"silu", UN_FLOAT},
    [WK_UNARY_SIGMOID] = {"sigmoid", UN_FLOAT},
    [WK_UNARY_TANH] = {"tanh", UN_FLOAT},
    [WK_UNARY_SQUARE] = {"square", UN_NO_BOOL},
    [WK_UNARY_RECIPROCAL] = {"reciprocal", UN_FLOAT},
    [WK_UNARY_SIN] = {"sin", UN_FLOAT},
    [WK_UNARY_COS] = {"cos", UN_FLOAT},
    [WK_UNARY_LOG1P] = {"log1p", UN_FLOAT},
    [WK_UNARY_FLOOR] = {"floor", UN_NO_BOOL},
    [WK_UNARY_CEIL] = {"ceil", UN_NO_BOOL},
    [WK_UNARY_ROUND] = {"round", UN_NO_BOOL},
    [WK_UNARY_TRUNC] = {"trunc", UN_NO_BOOL},
    [WK_UNARY_CLAMP] = {"clamp", UN_NO_BOOL},
};
_Static_assert(sizeof unary_info / sizeof unary_info[0] == WK_UNARY_COUNT,
               "unary_info must have one row per wk_unary_op");

enum {
    BIN_CMP = 1u,      /* gives bool */
    BIN_TRUE_DIV = 2u, /* integer and bool inputs are computed in (and give) float32 */
    BIN_NO_BOOL = 4u,  /* not defined when both inputs promote to bool */
};

static const struct {
    const char *name;
    unsigned flags;
    const char *bool_hint; /* appended to the bool error */
} binary_info[] = {
    [WK_BINARY_ADD] = {"add", 0, ""},
    [WK_BINARY_SUB] = {"sub", BIN_NO_BOOL, "; use wk_ne for a logical xor"},
    [WK_BINARY_MUL] = {"mul", 0, ""},
    [WK_BINARY_DIV] = {"div", BIN_TRUE_DIV, ""},
    [WK_BINARY_POW] = {"pow", BIN_NO_BOOL, ""},
    [WK_BINARY_MAXIMUM] = {"maximum", 0, ""},
    [WK_BINARY_MINIMUM] = {"minimum", 0, ""},
    [WK_BINARY_FLOOR_DIVIDE] = {"floor_divide", BIN_NO_BOOL, ""},
    [WK_BINARY_REMAINDER] = {"remainder", BIN_NO_BOOL, ""},
    [WK_BINARY_EQ] = {"eq", BIN_CMP, ""},
    [WK_BINARY_NE] = {"ne", BIN_CMP, ""},
    [WK_BINARY_LT] = {"lt", BIN_CMP, ""},
    [WK_BINARY_LE] = {"le", BIN_CMP, ""},
    [WK_BINARY_GT] = {"gt", BIN_CMP, ""},
    [WK_BINARY_GE] = {"ge", BIN_CMP, ""},
};
_Static_assert(sizeof binary_info / sizeof binary_info[0] == WK_BINARY_COUNT,
               "binary_info must have one row per wk_binary_op");

const char *wk_unary_name(wk_unary_op op)
{
    return (unsigned)op < WK_UNARY_COUNT && unary_info[op].name ? unary_info[op].name : "?";
}

const char *wk_binary_name(wk_binary_op op)
{
    return (unsigned)op < WK_BINARY_COUNT && binary_info[op].name ? binary_info[op].name
                                                                   : "?";
}

/* ---- kernels per device (CUDA fills its entries when that backend exists) ---- */

static const wki_unary_kernel unary_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_unary,
};
static const wki_binary_kernel binary_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_binary,
};
static const wki_where_kernel where_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_where,
};

/* The device's entry of a kernel table (NULL when that backend has none). */
#define KERNEL_FOR(table, dev) ((unsigned)(dev).type < WK_DEVICE_COUNT ? (table)[(dev).type] : NULL)

static void no_kernel(const char *op, wk_device dev)
{
    char d[32];
    wk_set_error("%s: no kernel for device %s", op, wk_device_str(dev, d, sizeof d));
}

/* ---- type promotion ---- */

static int category(wk_dtype d) { return d == WK_DTYPE_BOOL ? 0 : wk_dtype_is_float(d) ? 2 : 1; }

static int rank(wk_dtype d)
{
    switch (d) {
    case WK_DTYPE_BOOL: return 0;
    case WK_DTYPE_U8: return 1;
    case WK_DTYPE_I32: return 2;
    case WK_DTYPE_I64: return 3;
    case WK_DTYPE_BF16:
    case WK_DTYPE_F16: return 4;
    case WK_DTYPE_F32: return 5;
    default: return 6;
    }
}

static wk_dtype promote(wk_dtype a, wk_dtype b)
{
    if (a == b) return a;
    if (rank(a) == rank(b)) return WK_DTYPE_F32; /* bf16 with f16 */
    return rank(a) > rank(b) ? a : b;
}

wk_dtype wk_result_type(const wk_tensor *a, const wk_tensor *b)
{
    if (!WKI_CHECK("result_type", a, b)) return WK_DTYPE_COUNT;
    bool za = a->ndim == 0, zb = b->ndim == 0;
    if (za == zb) return promote(a->dtype, b->dtype);
    const wk_tensor *dim = za ? b : a, *zero = za ? a : b;
    return category(zero->dtype) > category(dim->dtype) ? zero->dtype : dim->dtype;
}

/* The dtype of op(x, s) for a Python number s (torch's wrapped numbers): it never widens
 * x within its category; a fractional s makes integers float32, an integral one makes
 * bool int64. */
static wk_dtype scalar_result_type(wk_dtype x, double s)
{
    if (wk_dtype_is_float(x)) return x;
    if (isfinite(s) && s == nearbyint(s)) return x == WK_DTYPE_BOOL ? WK_DTYPE_I64 : x;
    return WK_DTYPE_F32;
}

/* ---- validation ---- */

static bool check_dtype(const char *op, const wk_tensor *t)
{
    if (t->dtype == WK_DTYPE_BF16 || t->dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s tensors are not supported (shape %s); convert with "
                     "wk_to_dtype(t, WK_DTYPE_F32) first",
                     op, wk_dtype_name(t->dtype), wki_shape_s(t));
        return false;
    }
    if ((unsigned)t->dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", op, (int)t->dtype);
        return false;
    }
    return true;
}

/* The device an op on ts runs on. A 0-d CPU tensor goes with any device (torch's CPU
 * scalars); every other input must be on the device of the first such input. */
static bool common_device(const char *op, int n, const wk_tensor *const *ts, wk_device *dev)
{
    int lead = 0;
    for (int k = 0; k < n; k++) {
        if (ts[k]->ndim || ts[k]->device.type != WK_DEVICE_CPU) {
            lead = k;
            break;
        }
    }
    for (int k = 0; k < n; k++) {
        if (k == lead || (ts[k]->ndim == 0 && ts[k]->device.type == WK_DEVICE_CPU)) continue;
        if (!wki_same_device(op, ts[lead], ts[k])) return false;
    }
    *dev = ts[lead]->device;
    return true;
}

/* ---- unary front-end ---- */

/* The one place unary ops (and clamp, with its bounds) are validated, allocated and
 * dispatched; autograd records its nodes here. */
static wk_tensor *unary_op(wk_unary_op op, wk_tensor *x, double lo, double hi)
{
    if ((unsigned)op >= WK_UNARY_COUNT) {
        if (WKI_CHECK("unary", x)) wk_set_error("unary: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = unary_info[op].name;
    unsigned flags = unary_info[op].flags;
    if (!WKI_CHECK(name, x) || !check_dtype(name, x)) return NULL;
    if (x->dtype == WK_DTYPE_BOOL && (flags & UN_NO_BOOL)) {
        wk_set_error("%s: not supported for bool tensors (shape %s)", name, wki_shape_s(x));
        return NULL;
    }
    wk_dtype out_dtype = x->dtype;
    if ((flags & UN_FLOAT) && !wk_dtype_is_float(x->dtype)) out_dtype = WK_DTYPE_F32;
    if (op == WK_UNARY_CLAMP && !wk_dtype_is_float(x->dtype) &&
        ((!isnan(lo) && lo != nearbyint(lo)) || (!isnan(hi) && hi != nearbyint(hi))))
        out_dtype = WK_DTYPE_F32;
    wki_unary_kernel kernel = KERNEL_FOR(unary_kernels, x->device);
    if (!kernel) {
        no_kernel(name, x->device);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(x->shape, x->ndim, out_dtype, x->device);
    if (!out) return NULL;
    if (kernel(op, out, x, (const double[]){lo, hi}) != WKI_EW_OK) {
        wk_tensor_free(out);
        wk_set_error("%s: no kernel for %s", name, wk_dtype_name(out_dtype));
        return NULL;
    }
    return out;
}

wk_tensor *wk_unary(wk_unary_op op, wk_tensor *x) { return unary_op(op, x, NAN, NAN); }

wk_tensor *wk_clamp(wk_tensor *x, double min, double max)
{
    return unary_op(WK_UNARY_CLAMP, x, min, max);
}

wk_tensor *wk_neg(wk_tensor *x) { return wk_unary(WK_UNARY_NEG, x); }
wk_tensor *wk_abs(wk_tensor *x) { return wk_unary(WK_UNARY_ABS, x); }
wk_tensor *wk_sign(wk_tensor *x) { return wk_unary(WK_UNARY_SIGN, x); }
wk_tensor *wk_exp(wk_tensor *x) { return wk_unary(WK_UNARY_EXP, x); }
wk_tensor *wk_log(wk_tensor *x) { return wk_unary(WK_UNARY_LOG, x); }
wk_tensor *wk_sqrt(wk_tensor *x) { return wk_unary(WK_UNARY_SQRT, x); }
wk_tensor *wk_rsqrt(wk_tensor *x) { return wk_unary(WK_UNARY_RSQRT, x); }
wk_tensor *wk_relu(wk_tensor *x) { return wk_unary(WK_UNARY_RELU, x); }
wk_tensor *wk_gelu(wk_tensor *x) { return wk_unary(WK_UNARY_GELU, x); }
wk_tensor *wk_gelu_tanh(wk_tensor *x) { return wk_unary(WK_UNARY_GELU_TANH, x); }
wk_tensor *wk_silu(wk_tensor *x) { return wk_unary(WK_UNARY_SILU, x); }
wk_tensor *wk_sigmoid(wk_tensor *x) { return wk_unary(WK_UNARY_SIGMOID, x); }
wk_tensor *wk_tanh(wk_tensor *x) { return wk_unary(WK_UNARY_TANH, x); }
wk_tensor *wk_square(wk_tensor *x) { return wk_unary(WK_UNARY_SQUARE, x); }
wk_tensor *wk_reciprocal(wk_tensor *x) { return wk_unary(WK_UNARY_RECIPROCAL, x); }
wk_tensor *wk_sin(wk_tensor *x) { return wk_unary(WK_UNARY_SIN, x); }
wk_tensor *wk_cos(wk_tensor *x) { return wk_unary(WK_UNARY_COS, x); }
wk_tensor *wk_log1p(wk_tensor *x) { return wk_unary(WK_UNARY_LOG1P, x); }
wk_tensor *wk_floor(wk_tensor *x) { return wk_unary(WK_UNARY_FLOOR, x); }
wk_tensor *wk_ceil(wk_tensor *x) { return wk_unary(WK_UNARY_CEIL, x); }
wk_tensor *wk_round(wk_tensor *x) { return wk_unary(WK_UNARY_ROUND, x); }
wk_tensor *wk_trunc(wk_tensor *x) { return wk_unary(WK_UNARY_TRUNC, x); }

/* ---- binary front-end ---- */

/* The one place binary ops are validated, allocated and dispatched; autograd records
 * its nodes here. `dtype` is the promoted dtype, or WK_DTYPE_COUNT for
 * wk_result_type(a, b) (the scalar variants pass torch's wrapped-number type). */
static wk_tensor *binary_op(wk_binary_op op, wk_tensor *a, wk_tensor *b, wk_dtype dtype)
{
    if ((unsigned)op >= WK_BINARY_COUNT) {
        if (WKI_CHECK("binary", a, b)) wk_set_error("binary: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = binary_info[op].name;
    unsigned flags = binary_info[op].flags;
    if (!WKI_CHECK(name, a, b) || !check_dtype(name, a) || !check_dtype(name, b))
        return NULL;
    const wk_tensor *ins[2] = {a, b};
    wk_device dev;
    if (!common_device(name, 2, ins, &dev)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape(name, 2, ins, shape, &nd)) return NULL;
    wk_dtype r = dtype == WK_DTYPE_COUNT ? wk_result_type(a, b) : dtype;
    if (r == WK_DTYPE_BOOL && (flags & BIN_NO_BOOL)) {
        wk_set_error("%s: not supported for bool tensors (got %s %s and %s %s)%s", name,
                     wk_dtype_name(a->dtype), wki_shape_s(a), wk_dtype_name(b->dtype),
                     wki_shape_s(b), binary_info[op].bool_hint);
        return NULL;
    }
    wk_dtype compute = (flags & BIN_TRUE_DIV) && !wk_dtype_is_float(r) ? WK_DTYPE_F32 : r;
    wk_dtype out_dtype = flags & BIN_CMP ? WK_DTYPE_BOOL : compute;
    wki_binary_kernel kernel = KERNEL_FOR(binary_kernels, dev);
    if (!kernel) {
        no_kernel(name, dev);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, nd, out_dtype, dev);
    if (!out) return NULL;
    wki_ew_status st = kernel(op, out, a, b, compute);
    if (st != WKI_EW_OK) {
        wk_tensor_free(out);
        if (st == WKI_EW_ZERO_DIVISOR)
            wk_set_error("%s: integer division by zero (divisor %s %s)", name,
                         wk_dtype_name(b->dtype), wki_shape_s(b));
        else
            wk_set_error("%s: no kernel for %s", name, wk_dtype_name(compute));
        return NULL;
    }
    return out;
}

wk_tensor *wk_binary(wk_binary_op op, wk_tensor *a, wk_tensor *b)
{
    return binary_op(op, a, b, WK_DTYPE_COUNT);
}

wk_tensor *wk_add(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_ADD, a, b); }
wk_tensor *wk_sub(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_SUB, a, b); }
wk_tensor *wk_mul(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_MUL, a, b); }
wk_tensor *wk_div(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_DIV, a, b); }
wk_tensor *wk_pow(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_POW, a, b); }
wk_tensor *wk_maximum(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_MAXIMUM, a, b);
}
wk_tensor *wk_minimum(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_MINIMUM, a, b);
}
wk_tensor *wk_floor_divide(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_FLOOR_DIVIDE, a, b);
}
wk_tensor *wk_remainder(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_REMAINDER, a, b);
}
wk_tensor *wk_eq(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_EQ, a, b); }
wk_tensor *wk_ne(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_NE, a, b); }
wk_tensor *wk_lt(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_LT, a, b); }
wk_tensor *wk_le(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_LE, a, b); }
wk_tensor *wk_gt(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_GT, a, b); }
wk_tensor *wk_ge(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_GE, a, b); }

/* ---- scalar variants: the number as a 0-d CPU tensor on the stack ---- */

/* Lives for one call: the binary front-end does not keep its inputs. (When autograd
 * saves inputs, it must copy this one out instead of keeping the pointer.) */
typedef struct {
    wk_tensor t;
    wk_storage s;
    union {
        float f32;
        double f64;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
    } v;
} scalar_box;

static wk_tensor *scalar_tensor(scalar_box *box, wk_dtype dtype, double s)
{
    memset(box, 0, sizeof *box);
    box->s.data = &box->v;
    box->s.nbytes = box->s.capacity = sizeof box->v;
    box->s.device = WK_CPU;
    box->s.external = true;
    atomic_init(&box->s.refcount, 1);
    box->t.storage = &box->s;
    box->t.dtype = dtype;
    box->t.device = WK_CPU;
    box->t.frame_slot = -1; /* in no frame: never released */
    wki_ew_convert(dtype, &box->v, WK_DTYPE_F64, (const char *)&s, 0, 1);
    return &box->t;
}

static wk_tensor *binary_scalar(wk_binary_op op, wk_tensor *x, double s, bool reversed)
{
    const char *name = wk_binary_name(op);
    if (!WKI_CHECK(name, x) || !check_dtype(name, x)) return NULL;
    wk_dtype r = scalar_result_type(x->dtype, s);
    if (op == WK_BINARY_POW && !wk_dtype_is_float(r) && s < 0) {
        wk_set_error("pow: integers to negative integer powers are not allowed (%s tensor "
                     "%s, exponent %g)",
                     wk_dtype_name(x->dtype), wki_shape_s(x), s);
        return NULL;
    }
    scalar_box box;
    wk_tensor *st = scalar_tensor(&box, r, s);
    return reversed ? binary_op(op, st, x, r) : binary_op(op, x, st, r);
}

wk_tensor *wk_add_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_ADD, x, s, false);
}
wk_tensor *wk_sub_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_SUB, x, s, false);
}
wk_tensor *wk_rsub_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_SUB, x, s, true);
}
wk_tensor *wk_mul_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_MUL, x, s, false);
}
wk_tensor *wk_div_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_DIV, x, s, false);
}
wk_tensor *wk_pow_scalar(wk_tensor *x, double exponent)
{
    return binary_scalar(WK_BINARY_POW, x, exponent, false);
}
wk_tensor *wk_eq_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_EQ, x, s, false);
}
wk_tensor *wk_ne_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_NE, x, s, false);
}
wk_tensor *wk_lt_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_LT, x, s, false);
}
wk_tensor *wk_le_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_LE, x, s, false);
}
wk_tensor *wk_gt_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_GT, x, s, false);
}
wk_tensor *wk_ge_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_GE, x, s, false);
}

/* ---- where ---- */

wk_tensor *wk_where(wk_tensor *cond, wk_tensor *a, wk_tensor *b)
{
    if (!WKI_CHECK("where", cond, a, b)) return NULL;
    if (!check_dtype("where", cond) || !check_dtype("where", a) || !check_dtype("where", b))
        return NULL;
    if (cond->dtype != WK_DTYPE_BOOL) {
        wk_set_error("where: condition must be bool, got %s %s (compare with wk_ne_scalar(c, "
                     "0) first)",
                     wk_dtype_name(cond->dtype), wki_shape_s(cond));
        return NULL;
    }
    const wk_tensor *ins[3] = {cond, a, b};
    wk_device dev;
    if (!common_device("where", 3, ins, &dev)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape("where", 3, ins, shape, &nd)) return NULL;
    wki_where_kernel kernel = KERNEL_FOR(where_kernels, dev);
    if (!kernel) {
        no_kernel("where", dev);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, nd, wk_result_type(a, b), dev);
    if (!out) return NULL;
    if (kernel(out, cond, a, b) != WKI_EW_OK) {
        wk_set_error("where: no kernel for %s", wk_dtype_name(out->dtype));
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

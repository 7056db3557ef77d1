/* Element-wise ops: unary math and activations, binary arithmetic and comparisons with
 * broadcasting and PyTorch's type promotion, scalar variants, clamp and where.
 *
 *   wk_frame_begin();
 *   wk_tensor *x = wk_from_array(data, WK_SHAPE(4, 3), WK_DTYPE_F32);
 *   wk_tensor *b = wk_from_array(bias, WK_SHAPE(3), WK_DTYPE_F32); // broadcasts over rows
 *   wk_tensor *y = wk_gelu(wk_add(x, b));                         // [4, 3] float32
 *   wk_tensor *m = wk_gt_scalar(y, 0.5);                          // [4, 3] bool
 *   wk_tensor *z = wk_where(m, y, wk_mul_scalar(y, 0.1));         // all freed at frame end
 *   wk_frame_end();
 *
 * Every op returns a NEW contiguous tensor that belongs to the current frame (persistent
 * outside frames), or NULL with a message for wk_last_error() naming the op, the shapes
 * and dtypes it got and what it expected. A NULL input makes the op return NULL and keeps
 * the first message. Inputs may have any layout (transposed, sliced, expanded).
 *
 * Dtypes follow torch: results of mixed inputs have wk_result_type(a, b); comparisons
 * give bool; float-only math (exp, log, gelu, ..., div) on integer or bool inputs gives
 * float32. bf16/f16 are storage types: convert them with wk_to_dtype first.
 * Integer arithmetic wraps around on overflow, as in torch.
 *
 * Autograd: with grad mode on, an op whose result is floating point records a node when
 * an input requires grad (see autograd/autograd.h); gradients follow torch's formulas and
 * conventions (relu'(0) = 0, abs'(0) = 0, maximum/minimum split ties equally, zero
 * gradients for sign and rounding). floor_divide and the comparisons are not
 * differentiable: their results never require grad. The in-place wk_add_ and
 * wk_mul_scalar_ record nothing.
 */
#ifndef WK_ELEMENTWISE_H
#define WK_ELEMENTWISE_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
    WK_UNARY_NEG,        /* -x (not for bool) */
    WK_UNARY_ABS,        /* |x| (not for bool) */
    WK_UNARY_SIGN,       /* -1, 0 or 1; 0 for NaN, as torch */
    WK_UNARY_EXP,
    WK_UNARY_LOG,        /* NaN for x < 0, -inf for 0 */
    WK_UNARY_SQRT,
    WK_UNARY_RSQRT,      /* 1 / sqrt(x) */
    WK_UNARY_RELU,       /* max(x, 0), NaN stays NaN (not for bool) */
    WK_UNARY_GELU,       /* 0.5 x (1 + erf(x / sqrt 2)) */
    WK_UNARY_GELU_TANH,  /* 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) */
    WK_UNARY_SILU,       /* x sigmoid(x) */
    WK_UNARY_SIGMOID,
    WK_UNARY_TANH,
    WK_UNARY_SQUARE,     /* x * x (integers stay integers; not for bool) */
    WK_UNARY_RECIPROCAL, /* 1 / x */
    WK_UNARY_SIN,
    WK_UNARY_COS,
    WK_UNARY_LOG1P,      /* log(1 + x), accurate near 0 */
    WK_UNARY_FLOOR,      /* integers: unchanged (not for bool) */
    WK_UNARY_CEIL,
    WK_UNARY_ROUND,      /* half to even, as torch.round */
    WK_UNARY_TRUNC,
    WK_UNARY_CLAMP,      /* bounds given by wk_clamp; through wk_unary: no bounds (a copy) */
    WK_UNARY_COUNT
} wk_unary_op;

typedef enum {
    WK_BINARY_ADD,          /* bool: logical or */
    WK_BINARY_SUB,          /* not for two bools */
    WK_BINARY_MUL,          /* bool: logical and */
    WK_BINARY_DIV,          /* true division: integers give float32 */
    WK_BINARY_POW,          /* integers: int ** int, negative exponents give 0 (but 1, -1) */
    WK_BINARY_MAXIMUM,      /* NaN if either is NaN */
    WK_BINARY_MINIMUM,
    WK_BINARY_FLOOR_DIVIDE, /* floor(a / b); integers: error on a zero divisor */
    WK_BINARY_REMAINDER,    /* a - b floor(a / b), sign of b (Python %); same errors */
    WK_BINARY_EQ,           /* comparisons give bool; NaN compares unequal to all */
    WK_BINARY_NE,
    WK_BINARY_LT,
    WK_BINARY_LE,
    WK_BINARY_GT,
    WK_BINARY_GE,
    WK_BINARY_COUNT
} wk_binary_op;

/* Name of an op as used in error messages ("gelu", "floor_divide"; "?" if invalid). */
const char *wk_unary_name(wk_unary_op op);
const char *wk_binary_name(wk_binary_op op);

/* The dtype torch gives a binary op of a and b: the larger of bool < uint8 < int32 <
 * int64 < (bfloat16, float16) < float32 < float64, except that a 0-d tensor beside a
 * dimensioned one only counts when its category (bool, integer, float) is higher
 * (f32 tensor + 0-d f64 -> f32; i32 tensor + 0-d f64 -> f64). WK_DTYPE_COUNT with an
 * error when an input is NULL. */
wk_dtype wk_result_type(const wk_tensor *a, const wk_tensor *b);

/* ---- the two front-ends ---- */

/* op(x) element-wise. Errors: invalid op, bf16/f16 input, op not defined for bool, no
 * kernel for x's device. */
wk_tensor *wk_unary(wk_unary_op op, wk_tensor *x);
/* op(a, b) element-wise over the broadcast shape of a and b. Errors: shapes that do not
 * broadcast, bf16/f16 inputs, different devices (a 0-d CPU tensor goes with any device),
 * integer division by zero (floor_divide, remainder), ops not defined for bool. */
wk_tensor *wk_binary(wk_binary_op op, wk_tensor *a, wk_tensor *b);

/* ---- unary ops ----
 * Each is wk_unary(WK_UNARY_<NAME>, x): see its line in wk_unary_op for the math and
 * dtypes; a new tensor of x's shape owned by the current frame; wk_unary's errors. */

wk_tensor *wk_neg(wk_tensor *x);
wk_tensor *wk_abs(wk_tensor *x);
wk_tensor *wk_sign(wk_tensor *x);
wk_tensor *wk_exp(wk_tensor *x);
wk_tensor *wk_log(wk_tensor *x);
wk_tensor *wk_sqrt(wk_tensor *x);
wk_tensor *wk_rsqrt(wk_tensor *x);
wk_tensor *wk_relu(wk_tensor *x);
wk_tensor *wk_gelu(wk_tensor *x);
wk_tensor *wk_gelu_tanh(wk_tensor *x);
wk_tensor *wk_silu(wk_tensor *x);
wk_tensor *wk_sigmoid(wk_tensor *x);
wk_tensor *wk_tanh(wk_tensor *x);
wk_tensor *wk_square(wk_tensor *x);
wk_tensor *wk_reciprocal(wk_tensor *x);
wk_tensor *wk_sin(wk_tensor *x);
wk_tensor *wk_cos(wk_tensor *x);
wk_tensor *wk_log1p(wk_tensor *x);
wk_tensor *wk_floor(wk_tensor *x);
wk_tensor *wk_ceil(wk_tensor *x);
wk_tensor *wk_round(wk_tensor *x);
wk_tensor *wk_trunc(wk_tensor *x);

/* x limited to [min, max]; NAN means no bound on that side; min > max gives max
 * everywhere; NaN elements stay NaN. Integer x stays integer when both bounds are
 * integral (or NAN), else gives float32. Errors: bool or bf16/f16 x. */
wk_tensor *wk_clamp(wk_tensor *x, double min, double max);

/* ---- binary ops ----
 * Each is wk_binary(WK_BINARY_<NAME>, a, b): see its line in wk_binary_op; a new tensor
 * of the broadcast shape owned by the current frame; wk_binary's errors. */

wk_tensor *wk_add(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_sub(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_mul(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_div(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_pow(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_maximum(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_minimum(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_floor_divide(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_remainder(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_eq(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_ne(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_lt(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_le(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_gt(wk_tensor *a, wk_tensor *b);
wk_tensor *wk_ge(wk_tensor *a, wk_tensor *b);

/* ---- with a Python-number operand (torch's x + 2.5) ----
 * A float x keeps its dtype; an integer x stays integer when s is integral (bool x
 * becomes int64), else the result is float32. Same errors as the tensor ops. */

wk_tensor *wk_add_scalar(wk_tensor *x, double s);
wk_tensor *wk_sub_scalar(wk_tensor *x, double s);
/* s - x. */
wk_tensor *wk_rsub_scalar(wk_tensor *x, double s);
wk_tensor *wk_mul_scalar(wk_tensor *x, double s);
/* x / s: true division (integer x gives float32). */
wk_tensor *wk_div_scalar(wk_tensor *x, double s);
/* x ** exponent. Error: integer x to a negative integral exponent. */
wk_tensor *wk_pow_scalar(wk_tensor *x, double exponent);
/* Comparisons with a number: bool results. */
wk_tensor *wk_eq_scalar(wk_tensor *x, double s);
wk_tensor *wk_ne_scalar(wk_tensor *x, double s);
wk_tensor *wk_lt_scalar(wk_tensor *x, double s);
wk_tensor *wk_le_scalar(wk_tensor *x, double s);
wk_tensor *wk_gt_scalar(wk_tensor *x, double s);
wk_tensor *wk_ge_scalar(wk_tensor *x, double s);

/* ---- in place (not recorded by autograd) ---- */

/* dst += src, src broadcast to dst's shape and converted to dst's dtype (bool: logical
 * or). Returns dst. Errors: shapes that do not broadcast to dst, a result type dst
 * cannot hold (float into an integer tensor, numbers into bool), dst requiring grad
 * while grad mode is on, dst an expanded view (elements sharing memory), src partly
 * overlapping dst, bf16/f16, different devices. */
wk_tensor *wk_add_(wk_tensor *dst, wk_tensor *src);
/* t *= s. Returns t. Errors: a fractional s for an integer t, a bool t, t requiring grad
 * while grad mode is on, t an expanded view, bf16/f16. */
wk_tensor *wk_mul_scalar_(wk_tensor *t, double s);

/* ---- selection ---- */

/* cond ? a : b element-wise over the broadcast shape of all three; the result has
 * wk_result_type(a, b). Errors: cond not bool, shapes that do not broadcast, bf16/f16,
 * different devices. */
wk_tensor *wk_where(wk_tensor *cond, wk_tensor *a, wk_tensor *b);

#ifdef __cplusplus
}
#endif
#endif

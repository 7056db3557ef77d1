/* Element-wise kernels: the signatures every backend implements (the front-ends in
 * tensor/elementwise.c reach them through per-device tables), the CPU kernels, and
 * helpers shared by tensor/cpu/unary.c and tensor/cpu/binary.c. Not installed. */
#ifndef WK_ELEMENTWISE_IMPL_H
#define WK_ELEMENTWISE_IMPL_H

#include "../elementwise.h"
#include "../iter-impl.h"

typedef enum {
    WKI_EW_OK,
    WKI_EW_ZERO_DIVISOR, /* integer floor_divide/remainder by zero (nothing written) */
    WKI_EW_UNSUPPORTED,  /* no loop for this op and dtype */
} wki_ew_status;

/* Kernels get a new contiguous `out` (the broadcast shape, the op's result dtype) and
 * inputs of any layout and dtype; they convert inputs to the compute dtype on the fly.
 * unary: compute is out's dtype; params[2] are clamp's bounds (NaN = none).
 * binary: inputs are converted to `compute`; out is compute or bool (comparisons).
 * where: a and b are converted to out's dtype. */
typedef wki_ew_status (*wki_unary_kernel)(wk_unary_op op, wk_tensor *out, const wk_tensor *x,
                                          const double *params);
typedef wki_ew_status (*wki_binary_kernel)(wk_binary_op op, wk_tensor *out,
                                           const wk_tensor *a, const wk_tensor *b,
                                           wk_dtype compute);
typedef wki_ew_status (*wki_where_kernel)(wk_tensor *out, const wk_tensor *cond,
                                          const wk_tensor *a, const wk_tensor *b);

/* Backward of a unary op: grad_in (new, contiguous, x's shape, the forward's float dtype)
 * = grad_out * op'(x), computed in one pass from `saved`: the forward's output for the
 * ops wki_unary_grad_uses_output names, x for the others; params: clamp's bounds. */
typedef wki_ew_status (*wki_unary_backward_kernel)(wk_unary_op op, wk_tensor *grad_in,
                                                   const wk_tensor *grad_out,
                                                   const wk_tensor *saved,
                                                   const double *params);
/* Backward of a binary op for operand `which` (0 = a, 1 = b): grad_in (new, contiguous,
 * the broadcast shape, the forward's float compute dtype) = grad_out * d op(a, b) / d
 * operand, before the broadcast dims are summed back. mul, div, pow, maximum, minimum
 * and remainder (b only); a and b are converted to grad_in's dtype on the fly. */
typedef wki_ew_status (*wki_binary_backward_kernel)(wk_binary_op op, int which,
                                                    wk_tensor *grad_in,
                                                    const wk_tensor *grad_out,
                                                    const wk_tensor *a, const wk_tensor *b);
/* dst = dst op src in place (add, mul), src broadcast to dst and converted to its dtype;
 * dst has no overlapping elements and src does not partly overlap it (checked before). */
typedef wki_ew_status (*wki_inplace_kernel)(wk_binary_op op, wk_tensor *dst,
                                            const wk_tensor *src);

/* True for the unary ops whose backward reads the forward's output (exp, sqrt, rsqrt,
 * relu, sigmoid, tanh, reciprocal) rather than its input (tensor/elementwise.c). */
bool wki_unary_grad_uses_output(wk_unary_op op);

wki_ew_status wki_cpu_unary(wk_unary_op op, wk_tensor *out, const wk_tensor *x,
                            const double *params);
wki_ew_status wki_cpu_unary_backward(wk_unary_op op, wk_tensor *grad_in,
                                     const wk_tensor *grad_out, const wk_tensor *saved,
                                     const double *params);
wki_ew_status wki_cpu_binary_backward(wk_binary_op op, int which, wk_tensor *grad_in,
                                      const wk_tensor *grad_out, const wk_tensor *a,
                                      const wk_tensor *b);
wki_ew_status wki_cpu_inplace(wk_binary_op op, wk_tensor *dst, const wk_tensor *src);
wki_ew_status wki_cpu_binary(wk_binary_op op, wk_tensor *out, const wk_tensor *a,
                             const wk_tensor *b, wk_dtype compute);
wki_ew_status wki_cpu_where(wk_tensor *out, const wk_tensor *cond, const wk_tensor *a,
                            const wk_tensor *b);

/* ---- CPU helpers (binary.c) ---- */

/* Convert n elements of dtype `from`, `stride` bytes apart, to contiguous `to` at dst
 * (f32, f64, i32, i64, u8, bool; integers wrap, floats saturate into integers). */
void wki_ew_convert(wk_dtype to, void *dst, wk_dtype from, const char *src, int64_t stride,
                    int64_t n);
/* Run a typed loop over ops (0 = out) through the iterator; input k whose dtype is not
 * to[k] is converted in small blocks on the stack first, so the loop only ever sees
 * to[k] (contiguous blocks, or stride 0 for a broadcast scalar). */
void wki_ew_run(int nops, const wk_tensor *const *ops, const wk_dtype *to, wki_loop_fn fn,
                void *ctx);

/* Typed loop bodies. Each has a contiguous path, paths where one input has stride 0 (a
 * scalar or broadcast row) and a strided fallback; the first three are plain counted
 * loops over restrict pointers, which gcc vectorises when EXPR allows. Strides are in
 * bytes. */
#define WKI_UNARY_LOOP(NAME, TO, T, EXPR)                                                \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        (void)ctx;                                                                       \
        if (s[0] == (int64_t)sizeof(TO) && s[1] == (int64_t)sizeof(T)) {                 \
            TO *restrict o_ = (TO *)d[0];                                                \
            const T *restrict i_ = (const T *)d[1];                                      \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T x = i_[k];                                                       \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T x = *(const T *)(d[1] + k * s[1]);                               \
                *(TO *)(d[0] + k * s[0]) = (EXPR);                                       \
            }                                                                            \
        }                                                                                \
    }

#define WKI_BINARY_LOOP(NAME, TO, T, EXPR)                                               \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        (void)ctx;                                                                       \
        const int64_t so_ = (int64_t)sizeof(TO), si_ = (int64_t)sizeof(T);               \
        if (s[0] == so_ && s[1] == si_ && s[2] == si_) {                                 \
            TO *restrict o_ = (TO *)d[0];                                                \
            const T *restrict x_ = (const T *)d[1], *restrict y_ = (const T *)d[2];      \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T a = x_[k], b = y_[k];                                            \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == so_ && s[1] == si_ && s[2] == 0) {                            \
            TO *restrict o_ = (TO *)d[0];                                                \
            const T *restrict x_ = (const T *)d[1];                                      \
            const T b = *(const T *)d[2];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T a = x_[k];                                                       \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else if (s[0] == so_ && s[1] == 0 && s[2] == si_) {                            \
            TO *restrict o_ = (TO *)d[0];                                                \
            const T *restrict y_ = (const T *)d[2];                                      \
            const T a = *(const T *)d[1];                                                \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T b = y_[k];                                                       \
                o_[k] = (EXPR);                                                          \
            }                                                                            \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++) {                                            \
                const T a = *(const T *)(d[1] + k * s[1]);                               \
                const T b = *(const T *)(d[2] + k * s[2]);                               \
                *(TO *)(d[0] + k * s[0]) = (EXPR);                                       \
            }                                                                            \
        }                                                                                \
    }

#endif

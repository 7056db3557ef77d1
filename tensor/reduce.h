/* Reductions (sum, mean, amax/amin, var/std, logsumexp, norm, max/min with indices,
 * argmax/argmin) and softmax / log_softmax, with PyTorch semantics.
 *
 *   wk_tensor *x = ...;                                      // shape [B, T, C], float32
 *   wk_tensor *s = wk_sum(x, WK_DIMS(0, -1), false);         // [T]
 *   wk_tensor *m = wk_mean(x, WK_ALL_DIMS, false);           // 0-d
 *   wk_tensor *v = wk_var(x, WK_DIMS(2), 1.0, true);         // [B, T, 1], unbiased
 *   wk_tensor *idx;
 *   wk_tensor *mx = wk_max_dim(x, -1, false, &idx);          // values and int64 indices
 *   wk_tensor *p = wk_softmax(x, -1);                        // [B, T, C], rows sum to 1
 *
 * `dims, ndims` pairs come from WK_DIMS(...) (negative dims count from the end) or
 * WK_ALL_DIMS (every dim). Each reduced dim is removed from the result, or kept with
 * size 1 when keepdim is true. Inputs may have any layout (transposed, sliced,
 * expanded). Every function returns a NEW tensor owned by the current frame (the caller
 * frees it outside frames), or NULL with an error for wk_last_error() naming the op,
 * the shape and dtype it got and what it expected: out-of-range or repeated dims,
 * integer inputs to ops that need a float dtype, bf16/f16 inputs (convert with
 * wk_to_dtype first), a 0-size reduced dim for ops without an identity (amax, amin,
 * max/min, argmax/argmin, inf-norms), tensors on a device without kernels.
 *
 * dtypes: every op accepts float32 and float64; values keep the input's dtype and
 * indices (argmax, argmin, max_dim/min_dim's) are int64. sum also takes integer and bool
 * inputs and returns int64; amax, amin, max_dim, min_dim, argmax and argmin take them
 * too; the other ops ask for a float dtype.
 *
 * Results are deterministic and do not depend on the thread count: floating-point sums
 * accumulate in double, in fixed blocks combined in a fixed order.
 *
 * Autograd: every op with a float result records its backward when its input requires
 * grad, with torch's conventions: amax/amin split the gradient evenly among tied
 * elements, max_dim/min_dim send it to the returned index, std and the p = 2 and other-p
 * norms give 0 where the result is 0 (and norms with p < 1 where an element is 0), the
 * inf-norms split it among the elements of largest (smallest) |x|, p = 0 gives zeros.
 * softmax and log_softmax save their output and run a fused backward kernel. Index
 * results (argmax, argmin, max_dim/min_dim's indices) never require grad.
 */
#ifndef WK_REDUCE_H
#define WK_REDUCE_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The (dims, ndims) pair meaning "reduce every dim". */
#define WK_ALL_DIMS NULL, 0

typedef enum {
    WK_REDUCE_SUM,
    WK_REDUCE_MEAN,
    WK_REDUCE_AMAX,
    WK_REDUCE_AMIN,
    WK_REDUCE_VAR,         /* arg: correction */
    WK_REDUCE_STD,         /* arg: correction */
    WK_REDUCE_LOGSUMEXP,
    WK_REDUCE_NORM,        /* arg: p */
    WK_REDUCE_MAX,         /* values (and indices) along one dim: torch.max(x, dim) */
    WK_REDUCE_MIN,
    WK_REDUCE_ARGMAX,      /* one dim, or all dims (index into the flattened tensor) */
    WK_REDUCE_ARGMIN,
    WK_REDUCE_SOFTMAX,     /* one dim; the result has the input's shape */
    WK_REDUCE_LOG_SOFTMAX,
    WK_REDUCE_COUNT
} wk_reduce_op;

/* The op's name as used in error messages ("sum", "max_dim", ...; "?" if invalid). */
const char *wk_reduce_op_name(wk_reduce_op op);

/* The front-end every function below goes through: reduce x over dims with `op`.
 * `arg` is the correction of VAR/STD and the p of NORM (ignored otherwise). `indices`
 * (may be NULL) receives the int64 indices of WK_REDUCE_MAX/MIN and must be NULL for
 * the other ops; keepdim is ignored by softmax. Errors: see the top of this file. */
wk_tensor *wk_reduce(wk_reduce_op op, wk_tensor *x, const int *dims, int ndims, bool keepdim,
                     double arg, wk_tensor **indices);

/* Sum over dims (torch.sum); integer and bool inputs give int64. An empty sum is 0. */
wk_tensor *wk_sum(wk_tensor *x, const int *dims, int ndims, bool keepdim);
/* Mean over dims (float dtypes only); an empty mean is NaN. */
wk_tensor *wk_mean(wk_tensor *x, const int *dims, int ndims, bool keepdim);
/* Largest / smallest value over dims (NaN if any element is NaN); error on a 0-size
 * reduced dim, which has no identity. */
wk_tensor *wk_amax(wk_tensor *x, const int *dims, int ndims, bool keepdim);
wk_tensor *wk_amin(wk_tensor *x, const int *dims, int ndims, bool keepdim);
/* Variance sum((x - mean)^2) / max(0, N - correction) over dims (correction 1 is the
 * unbiased estimate, 0 the population variance); float dtypes only. */
wk_tensor *wk_var(wk_tensor *x, const int *dims, int ndims, double correction, bool keepdim);
/* Standard deviation: sqrt of wk_var. */
wk_tensor *wk_std(wk_tensor *x, const int *dims, int ndims, double correction, bool keepdim);
/* log(sum(exp(x))) over dims, computed without overflow; float dtypes only; -inf when
 * empty. */
wk_tensor *wk_logsumexp(wk_tensor *x, const int *dims, int ndims, bool keepdim);
/* Vector p-norm over dims (torch.linalg.vector_norm): p = 2, 1, INFINITY (max |x|),
 * -INFINITY (min |x|), 0 (count of non-zeros) or any other p: sum(|x|^p)^(1/p).
 * Float dtypes only; p must not be NaN; the inf-norms need non-empty dims. */
wk_tensor *wk_norm(wk_tensor *x, double p, const int *dims, int ndims, bool keepdim);

/* Max / min along one dim (torch.max(x, dim)): returns the values; when indices is not
 * NULL, *indices gets a new int64 tensor with the index of the first occurrence (NaN
 * counts as the largest and smallest value). *indices is NULL on error. */
wk_tensor *wk_max_dim(wk_tensor *x, int dim, bool keepdim, wk_tensor **indices);
wk_tensor *wk_min_dim(wk_tensor *x, int dim, bool keepdim, wk_tensor **indices);
/* int64 index of the first max / min along dim (the first NaN if any). */
wk_tensor *wk_argmax(wk_tensor *x, int dim, bool keepdim);
wk_tensor *wk_argmin(wk_tensor *x, int dim, bool keepdim);

/* exp(x) / sum(exp(x)) along dim, stable for large logits; float dtypes only. */
wk_tensor *wk_softmax(wk_tensor *x, int dim);
/* x - logsumexp(x) along dim; float dtypes only. */
wk_tensor *wk_log_softmax(wk_tensor *x, int dim);

#ifdef __cplusplus
}
#endif
#endif

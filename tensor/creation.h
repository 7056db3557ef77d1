/* Tensors made from nothing: constants, ranges and identity matrices (torch semantics).
 *
 *   wk_tensor *w = wk_zeros(WK_SHAPE(3, 4), WK_DTYPE_F32);
 *   wk_tensor *i = wk_arange(0, 10, 1, WK_DTYPE_I64);        // 0, 1, ..., 9
 *   wk_tensor *x = wk_linspace(0, 1, 5, WK_DTYPE_F64);       // 0, .25, .5, .75, 1
 *   wk_tensor *e = wk_eye(3, -1, WK_DTYPE_F32);              // 3x3 identity
 *   wk_tensor *s = wk_scalar(2.5, WK_DTYPE_F32);             // 0-d
 *
 * Every result is a new contiguous CPU tensor (the *_like ones: on the input's device)
 * owned by the current frame (persistent outside frames). On failure: NULL and a message
 * for wk_last_error() naming the op. zeros/ones/full/eye/scalar accept every dtype;
 * arange/linspace accept f32, f64, i32, i64 and u8 (bf16/f16: make f32, then convert
 * with wk_to_dtype).
 */
#ifndef WK_CREATION_H
#define WK_CREATION_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* All zeros. Errors: negative sizes, more than WK_MAX_DIMS dims, invalid dtype. */
wk_tensor *wk_zeros(const int64_t *shape, int ndim, wk_dtype dtype);
/* All ones. Errors as wk_zeros. */
wk_tensor *wk_ones(const int64_t *shape, int ndim, wk_dtype dtype);
/* Every element `value`, converted to dtype as wk_fill_ does (floats to integers
 * truncate toward zero). Errors as wk_zeros. */
wk_tensor *wk_full(const int64_t *shape, int ndim, double value, wk_dtype dtype);
/* zeros / ones / full with the shape, dtype and device of t (NULL t propagates). */
wk_tensor *wk_zeros_like(const wk_tensor *t);
wk_tensor *wk_ones_like(const wk_tensor *t);
wk_tensor *wk_full_like(const wk_tensor *t, double value);
/* A 0-d tensor holding value. */
wk_tensor *wk_scalar(double value, wk_dtype dtype);

/* start, start+step, ... while < end (> end for a negative step): ceil((end-start)/step)
 * elements, element i = start + i*step computed in double. For integer dtypes start, end
 * and step are first truncated to integers, as torch does. Errors: step 0 (after
 * truncation), a step whose sign points away from end, non-finite bounds, a length that
 * overflows. */
wk_tensor *wk_arange(double start, double end, double step, wk_dtype dtype);
/* `steps` evenly spaced values from start to end inclusive, with torch's formula
 * (the first half stepped from start, the second half from end, both endpoints exact;
 * computed in the dtype's float type, in double for integer dtypes, then truncated).
 * steps 0 gives an empty tensor, 1 gives [start]. Errors: steps < 0. */
wk_tensor *wk_linspace(double start, double end, int64_t steps, wk_dtype dtype);
/* n x m matrix with ones on the diagonal; m < 0 means m = n. Errors: n < 0. */
wk_tensor *wk_eye(int64_t n, int64_t m, wk_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif

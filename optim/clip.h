/* Gradient clipping, as torch.nn.utils.clip_grad_norm_ and clip_grad_value_.
 *
 *   wk_tensor *params[256];
 *   int n = wk_optimizer_params(opt, params, 256);
 *   double grad_norm = wk_clip_grad_norm_(params, n, 1.0, 2.0, false);  // before clipping
 *   if (grad_norm < 0) fprintf(stderr, "%s\n", wk_last_error());
 *   wk_optimizer_step(opt);
 *
 * Parameters without a grad are skipped. Grads may have any layout; float32 and float64
 * grads are supported (bf16/f16 are storage types: keep float32 grads). Sums run in
 * double over fixed blocks combined in a fixed order, so the norm does not depend on
 * the thread count.
 */
#ifndef WK_OPTIM_CLIP_H
#define WK_OPTIM_CLIP_H

#include "optimizer.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Scale the grads of n tensors in place so that their total norm is at most max_norm.
 * The total norm is the norm_type-norm of all grads as if concatenated (the norm of the
 * per-tensor norms; norm_type INFINITY = the largest |g|); when
 * c = max_norm / (total + 1e-6) < 1 every grad is multiplied by c. As in torch, a NaN
 * total makes every grad NaN and an infinite one zeroes the finite grads, unless
 * error_if_nonfinite refuses to clip. Returns the total norm before clipping (0 when no
 * tensor has a grad), or -1 with an error (norm_type not > 0, max_norm < 0, a NULL
 * tensor, a grad of the wrong dtype, a non-finite total with error_if_nonfinite). */
double wk_clip_grad_norm_(wk_tensor *const *params, int n, double max_norm, double norm_type,
                          bool error_if_nonfinite);

/* Clamp every grad element of n tensors to [-clip_value, clip_value] in place (NaNs
 * stay NaN). 0, or -1 with an error (clip_value < 0 or NaN, NULL tensor, bad dtype). */
int wk_clip_grad_value_(wk_tensor *const *params, int n, double clip_value);

#ifdef __cplusplus
}
#endif
#endif

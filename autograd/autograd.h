/* wick autograd: define-by-run reverse mode.
 *
 *   wk_tensor *w = wk_randn(WK_SHAPE(3, 2), WK_DTYPE_F32, NULL);   // persistent leaf
 *   wk_requires_grad_(w, true);
 *   wk_frame_begin();
 *   wk_tensor *loss = wk_sum(wk_matmul(x, w), WK_ALL_DIMS, false);
 *   wk_backward(loss);             // w->grad (persistent, owned by w) now holds dloss/dw
 *   wk_frame_end();                // the graph and every intermediate are released
 *   wk_zero_grad(&w, 1);
 *
 * An op records a node when grad mode is on and one of its inputs requires grad; the
 * node lives as long as its output tensor and holds references to its inputs and saved
 * tensors. Gradients of leaves (tensors with requires_grad and no grad_fn) accumulate
 * into their persistent `grad`; non-leaf tensors get no `grad`.
 */
#ifndef WK_AUTOGRAD_H
#define WK_AUTOGRAD_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Back-propagate from a one-element tensor (its gradient is 1). 0, or -1 with an error
 * (not a one-element tensor, no input requires grad, graph already freed, a failing
 * backward). The graph's saved tensors are released afterwards. */
int wk_backward(wk_tensor *out);
/* Back-propagate `grad` (out's shape and dtype; NULL = ones for a one-element out);
 * with retain_graph the graph can be back-propagated again. */
int wk_backward_ex(wk_tensor *out, const wk_tensor *grad, bool retain_graph);

/* Set or clear requires_grad on a leaf (error on a non-leaf). Returns t. */
wk_tensor *wk_requires_grad_(wk_tensor *t, bool requires_grad);
/* A new handle on t's data with no graph and requires_grad off. */
wk_tensor *wk_detach(wk_tensor *t);
/* Take t's grad away from t: it moves into the current frame (released at its end; kept
 * persistent when no frame is open) and t->grad becomes NULL. Returns it (or NULL). */
wk_tensor *wk_grad_take(wk_tensor *t);
/* Zero the grads of n tensors (those without a grad are skipped). */
void wk_zero_grad(wk_tensor *const *ts, int n);

/* Disable recording until the matching wk_no_grad_end() (nestable, per thread). */
void wk_no_grad_begin(void);
void wk_no_grad_end(void);
/* True when ops record nodes on this thread. */
bool wk_grad_enabled(void);

/* The function wk_gradcheck differentiates: a tensor of any shape from n inputs. */
typedef wk_tensor *(*wk_gradcheck_fn)(wk_tensor *const *inputs, int n, void *user);

/* Check fn's gradients at `inputs` (float64, requires_grad set by the check) against
 * central finite differences: for a fixed random weighting w of the output, compares
 * d(sum(w*fn))/dx from backward with (L(x+eps) - L(x-eps)) / 2eps for every element of
 * every input. Returns 0 when |analytic - numeric| <= atol + rtol*|numeric| everywhere,
 * else -1 with an error naming the input, the element and both values. */
int wk_gradcheck(wk_gradcheck_fn fn, void *user, wk_tensor *const *inputs, int n, double eps,
                 double atol, double rtol);

#ifdef __cplusplus
}
#endif
#endif

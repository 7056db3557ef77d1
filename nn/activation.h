/* Activation layers: torch.nn.ReLU, GELU, SiLU, Tanh, Sigmoid and Identity as modules.
 *
 *   wk_module *act = wk_gelu_new("tanh");          // GELU(approximate="tanh")
 *   wk_tensor *y = wk_module_forward(act, x);      // in a frame; same as wk_gelu_tanh(x)
 *   wk_module_free(act);
 *
 * They have no parameters or buffers and behave the same in train and eval mode; the
 * forward is the element-wise op of tensor/elementwise.h (with its autograd, dtypes and
 * errors). Type names are torch's ("ReLU", "GELU", ...), so a Sequential holding them
 * has torch's state-dict names. Each constructor returns a module the caller frees with
 * wk_module_free (or hands to a container), or NULL with an error when out of memory.
 */
#ifndef WK_NN_ACTIVATION_H
#define WK_NN_ACTIVATION_H

#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* max(x, 0) (wk_relu). */
wk_module *wk_relu_new(void);
/* GELU with torch's `approximate`: "none" (or NULL) for the erf form (wk_gelu), "tanh"
 * for the tanh approximation (wk_gelu_tanh). Error: any other string. */
wk_module *wk_gelu_new(const char *approximate);
/* x * sigmoid(x) (wk_silu). */
wk_module *wk_silu_new(void);
/* tanh(x) (wk_tanh). */
wk_module *wk_tanh_new(void);
/* 1 / (1 + exp(-x)) (wk_sigmoid). */
wk_module *wk_sigmoid_new(void);
/* Returns its input itself, as torch.nn.Identity does: no copy, the graph unchanged. */
wk_module *wk_identity_new(void);

#ifdef __cplusplus
}
#endif
#endif

/* wick optimizers: torch.optim's algorithms over parameter groups.
 *
 *   wk_optimizer *opt = wk_adamw_new(params, n, &(wk_adam_opts){.lr = 1e-3, .weight_decay = 0.01});
 *   ... wk_backward(loss); wk_optimizer_step(opt); wk_optimizer_zero_grad(opt);
 *   wk_optimizer_free(opt);
 *
 * The optimizer borrows the parameter tensors (it never frees them) and owns its state
 * (moments, step counts). Learning rates live in the groups; LR schedulers change them
 * through wk_optimizer_set_lr. (This header's core - groups and lr access - is the
 * contract the schedulers of optim/scheduler.h rely on.)
 */
#ifndef WK_OPTIM_OPTIMIZER_H
#define WK_OPTIM_OPTIMIZER_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_optimizer wk_optimizer;

/* Number of parameter groups. */
int wk_optimizer_num_groups(const wk_optimizer *opt);
/* Current learning rate of group g (NaN with an error if g is out of range). */
double wk_optimizer_get_lr(const wk_optimizer *opt, int g);
/* The learning rate group g was created with (torch's "initial_lr"). */
double wk_optimizer_initial_lr(const wk_optimizer *opt, int g);
/* Set group g's learning rate; -1 with an error if g is out of range. */
int wk_optimizer_set_lr(wk_optimizer *opt, int g, double lr);

#ifdef __cplusplus
}
#endif
#endif

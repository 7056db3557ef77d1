/* wick optimizers: torch.optim's SGD, Adam, AdamW, RMSprop and Adagrad over parameter
 * groups, with gradient accumulation and state saved through safetensors.
 *
 *   wk_optimizer *opt = wk_adamw_new(params, n, WK_HPARAMS({"lr", 3e-4}, {"weight_decay", 0.1}));
 *   for (...) {
 *       wk_frame_begin();
 *       wk_backward(loss_of_batch(...));
 *       wk_frame_end();
 *       wk_optimizer_step(opt);        // parameters without a grad are skipped
 *       wk_optimizer_zero_grad(opt);   // fills the grads with zeros (torch 1.13's default)
 *   }
 *   wk_optimizer_free(opt);
 *
 * Groups with their own options, here a no-decay group for biases and norm weights (as
 * MMEngine's paramwise options and nanoGPT do):
 *
 *   int ng;
 *   wk_param_group *groups = wk_param_groups_from_module(net, true, &ng);
 *   wk_optimizer *opt = wk_optimizer_new(WK_OPTIM_ADAMW, groups, ng,
 *                                        WK_HPARAMS({"lr", 1e-3}, {"weight_decay", 0.05}));
 *   wk_param_groups_free(groups, ng);
 *
 * Options are (name, value) pairs named as torch's keyword arguments, with torch's
 * defaults; Adam's `betas` are "beta1" and "beta2", booleans are 0 or 1:
 *   SGD      lr (required), momentum 0, dampening 0, weight_decay 0, nesterov 0, maximize 0
 *   Adam     lr 1e-3, beta1 0.9, beta2 0.999, eps 1e-8, weight_decay 0, amsgrad 0, maximize 0
 *   AdamW    as Adam, but weight_decay 1e-2, applied decoupled: p *= 1 - lr*weight_decay
 *   RMSprop  lr 1e-2, alpha 0.99, eps 1e-8, weight_decay 0, momentum 0, centered 0, maximize 0
 *   Adagrad  lr 1e-2, lr_decay 0, weight_decay 0, initial_accumulator_value 0, eps 1e-10,
 *            maximize 0
 * The updates are torch 1.13's single-tensor formulas, computed in the parameters' dtype
 * (float32 or float64) in torch's order of operations, in one fused pass per parameter
 * (Adam: reads p, g, m, v and writes p, m, v once), split across threads in fixed chunks:
 * the result does not depend on the thread count. They agree with torch to about 1e-7 of
 * the parameters' magnitude in float32 (torch's AVX2 kernels fuse some multiply-adds).
 *
 * The optimizer borrows the parameter tensors (they must outlive it, stay contiguous and
 * be leaves) and owns its state (moments, step counts). Learning rates live in the
 * groups; LR schedulers change them through wk_optimizer_set_lr.
 */
#ifndef WK_OPTIM_OPTIMIZER_H
#define WK_OPTIM_OPTIMIZER_H

#include "../nn/module.h"
#include "../tensor/safetensors.h"
#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_optimizer wk_optimizer;

typedef enum {
    WK_OPTIM_SGD,
    WK_OPTIM_ADAM,
    WK_OPTIM_ADAMW,
    WK_OPTIM_RMSPROP,
    WK_OPTIM_ADAGRAD,
    WK_OPTIM_COUNT
} wk_optim_type;

/* One option: a hyper-parameter name ("lr", "beta2", ...) and its value. */
typedef struct {
    const char *name;
    double value;
} wk_hparam;

/* A list of options ended by {NULL}: WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9}). */
#define WK_HPARAMS(...) ((const wk_hparam[]){__VA_ARGS__, {NULL, 0}})

#define WK_GROUP_MAX_HPARAMS 8

/* A parameter group: its tensors, optionally their names (used for the state's tensor
 * names), and options overriding the optimizer's for this group (entries with a NULL
 * name are unused). Everything is copied or borrowed by wk_optimizer_new; the group
 * itself may go away afterwards. */
typedef struct {
    wk_tensor *const *params;
    int nparams;
    const char *const *names;  /* NULL, or nparams unique non-empty names */
    wk_hparam hparams[WK_GROUP_MAX_HPARAMS];
} wk_param_group;

/* ---- making and freeing ---- */

/* An optimizer of the given type over ngroups groups (at least one parameter in all,
 * none twice) with options `opts` (NULL-terminated list, NULL = torch's defaults).
 * Returns a new optimizer (free with wk_optimizer_free) or NULL with an error naming
 * the problem: unknown option, value out of range ("adam: beta2 = 1 is out of range
 * (expected 0 <= beta2 < 1)"), missing lr (SGD), NULL/duplicate/non-leaf/non-contiguous
 * parameter, non-float dtype, duplicate name. */
wk_optimizer *wk_optimizer_new(wk_optim_type type, const wk_param_group *groups, int ngroups,
                               const wk_hparam *opts);
/* One group over n parameters (no names); as wk_optimizer_new. */
wk_optimizer *wk_sgd_new(wk_tensor *const *params, int n, const wk_hparam *opts);
wk_optimizer *wk_adam_new(wk_tensor *const *params, int n, const wk_hparam *opts);
wk_optimizer *wk_adamw_new(wk_tensor *const *params, int n, const wk_hparam *opts);
wk_optimizer *wk_rmsprop_new(wk_tensor *const *params, int n, const wk_hparam *opts);
wk_optimizer *wk_adagrad_new(wk_tensor *const *params, int n, const wk_hparam *opts);
/* Free the optimizer and its state (not the parameters). NULL-safe. */
void wk_optimizer_free(wk_optimizer *opt);

/* Groups over m's parameters, named as wk_module_named_parameters names them. With
 * no_decay_for_bias_and_norm: two groups, 0 = the parameters that get weight decay,
 * 1 = biases (name ends in "bias") and the 1-d weights of normalisation layers (module
 * type containing "Norm"), with {"weight_decay", 0}; either may be empty. Otherwise one
 * group with everything. Returns a malloc'd array (free with wk_param_groups_free) and
 * its length in *ngroups, or NULL with an error (NULL module, no parameters). */
wk_param_group *wk_param_groups_from_module(const wk_module *m, bool no_decay_for_bias_and_norm,
                                            int *ngroups);
/* Free groups made by wk_param_groups_from_module (not the tensors). NULL-safe. */
void wk_param_groups_free(wk_param_group *groups, int ngroups);

/* ---- groups, learning rates and hyper-parameters ---- */

/* Number of parameter groups. */
int wk_optimizer_num_groups(const wk_optimizer *opt);
/* Current learning rate of group g (NaN with an error if g is out of range). */
double wk_optimizer_get_lr(const wk_optimizer *opt, int g);
/* The learning rate group g was created with (torch's "initial_lr"). */
double wk_optimizer_initial_lr(const wk_optimizer *opt, int g);
/* Set group g's learning rate; -1 with an error if g is out of range. */
int wk_optimizer_set_lr(wk_optimizer *opt, int g, double lr);
/* Hyper-parameter `name` of group g ("lr", "momentum", "beta1", ...); NaN with an error
 * for an unknown group or name. */
double wk_optimizer_get_hparam(const wk_optimizer *opt, int g, const char *name);
/* Set it, checked as at construction (range, nesterov needs momentum and no dampening);
 * 0, or -1 with an error leaving the value unchanged. */
int wk_optimizer_set_hparam(wk_optimizer *opt, int g, const char *name, double value);
/* The algorithm's name as torch's class: "SGD", "Adam", "AdamW", "RMSprop", "Adagrad". */
const char *wk_optimizer_name(const wk_optimizer *opt);
/* Number of parameters in all groups; with out, fills up to cap of them (borrowed) in
 * group order, e.g. for wk_clip_grad_norm_. */
int wk_optimizer_params(const wk_optimizer *opt, wk_tensor **out, int cap);
/* Number of completed wk_optimizer_step calls (updates), restored by state loads. */
int64_t wk_optimizer_step_count(const wk_optimizer *opt);

/* ---- updating ---- */

/* One update of every parameter that has a grad (others are skipped, their step counts
 * unchanged, as in torch). Grads must have the parameter's shape, dtype and device;
 * non-contiguous grads are copied. Everything is checked before anything changes: 0,
 * or -1 with an error naming the parameter. */
int wk_optimizer_step(wk_optimizer *opt);
/* Fill every parameter's grad with zeros (torch 1.13's zero_grad(set_to_none=False):
 * the grads stay allocated and later backward passes accumulate into them, so a
 * parameter that had a grad once is updated at every step from then on). NULL-safe. */
void wk_optimizer_zero_grad(wk_optimizer *opt);

/* Gradient accumulation: one update per window of n micro-batches (n = 1, the default,
 * updates at every micro-batch). For a mean loss, scale each micro-batch's loss by
 * wk_optimizer_loss_scale before backward; the sum of the grads is then the grad of the
 * mean over the window, also for a last window cut short by the end of an epoch.
 *
 *   wk_optimizer_set_accumulation(opt, 4);
 *   for (int64_t b = 0; b < nbatches; b++) {
 *       wk_frame_begin();
 *       double s = wk_optimizer_loss_scale(opt, nbatches - b);
 *       wk_backward(wk_mul_scalar(loss_of(b), s));
 *       wk_frame_end();
 *       wk_optimizer_micro_step(opt, b == nbatches - 1);
 *   }
 */
/* Set the window length n >= 1 (-1 with an error otherwise); restarts the window. */
int wk_optimizer_set_accumulation(wk_optimizer *opt, int n);
/* The factor for the current micro-batch's loss: 1/k, k = the length of the window it
 * belongs to: n, or fewer when micro_batches_left (this one included) ends the epoch
 * first. micro_batches_left <= 0 means unknown (1/n). */
double wk_optimizer_loss_scale(const wk_optimizer *opt, int64_t micro_batches_left);
/* Count a micro-batch whose backward is done. At the end of a window (n micro-batches,
 * or last_of_epoch) runs wk_optimizer_step then wk_optimizer_zero_grad and returns 1;
 * otherwise returns 0 (grads keep accumulating); -1 with an error from the step. */
int wk_optimizer_micro_step(wk_optimizer *opt, bool last_of_epoch);

/* ---- state ---- */

/* Append the optimizer's state tensors to the growable array *items (count *count) as
 * "<prefix><param name>.<slot>" (e.g. "optim.fc.weight.exp_avg"), or
 * "<prefix><group>.<index>.<slot>" for unnamed parameters; slots are torch's names
 * (momentum_buffer, exp_avg, exp_avg_sq, max_exp_avg_sq, square_avg, grad_avg, sum).
 * Names are malloc'd (free each, then the array, e.g. with wk_state_dict_items_free),
 * tensors borrowed from the optimizer. *json gets a malloc'd JSON string (free()) with
 * the type, the update count, the accumulation window and per group every
 * hyper-parameter, initial_lr, and each parameter's name, shape, dtype, step count and
 * saved slots. Returns 0, or -1 with an error (*items, *count unchanged). */
int wk_optimizer_state_save(const wk_optimizer *opt, const char *prefix,
                            wk_named_tensor **items, int *count, char **json);
/* Restore a state saved by wk_optimizer_state_save into an optimizer built over the
 * same parameters: the JSON's type, groups, parameter names, shapes and dtypes must
 * match, and st must hold every listed slot under prefix (and no other tensor under
 * it) with the parameter's shape and dtype. Everything is checked before anything
 * changes; the error lists the mismatches. Then hyper-parameters, learning rates, step
 * counts, slots and the accumulation window are replaced. 0, or -1. */
int wk_optimizer_state_load(wk_optimizer *opt, const wk_safetensors *st, const char *prefix,
                            const char *json);
/* Save the state alone to a safetensors file: tensors under "optim.", the JSON in
 * __metadata__["optimizer"]. Atomic as wk_safetensors_save. 0, or -1 with an error. */
int wk_optimizer_save(const wk_optimizer *opt, const char *path);
/* Load a file written by wk_optimizer_save (checks as wk_optimizer_state_load). */
int wk_optimizer_load(wk_optimizer *opt, const char *path);

#ifdef __cplusplus
}
#endif
#endif

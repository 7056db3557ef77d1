/* Exponential moving average (EMA) of a module's weights, as MMEngine's
 * ExponentialMovingAverage and timm's ModelEmaV2.
 *
 *   wk_ema *ema = wk_ema_new(net, 0.9998, &(wk_ema_opts){.warmup = true});
 *   for (...) { ...; wk_optimizer_step(opt); wk_ema_update(ema); }
 *   wk_ema_swap_in(ema);    // net now holds the EMA weights: evaluate or save it
 *   evaluate(net);
 *   wk_ema_swap_out(ema);   // net has its trained weights back
 *   wk_ema_free(ema);
 *
 * After each optimizer update, wk_ema_update sets ema = decay*ema + (1-decay)*x for
 * every parameter x (computed in double, stored in x's dtype). The first update copies
 * the weights; with warmup the decay of the update after t earlier calls is
 * min(decay, (1+t)/(10+t)) (TensorFlow's num_updates rule), so early averages follow the
 * weights closely. MMEngine and Ignite configure the same average by its momentum:
 * momentum = 1 - decay (MMEngine's ExponentialMovingAverage(momentum=0.0002) is
 * ema_decay 0.9998), written there as ema = (1-momentum)*ema + momentum*x.
 *
 * The EMA keeps its own copy (the "shadow") of the module's parameters and, with
 * buffers, of its buffers: float buffers (batch-norm running statistics) are averaged
 * like parameters, the others (counters) copied at every update. Without buffers the
 * module's buffers are left alone and are what an evaluation with swapped-in weights
 * uses. The module must outlive the EMA and keep its tensors.
 */
#ifndef WK_OPTIM_EMA_H
#define WK_OPTIM_EMA_H

#include "../nn/module.h"
#include "../tensor/safetensors.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_ema wk_ema;

/* Options; a zeroed struct (or NULL) is: no warmup, average at every call, parameters
 * only. */
typedef struct {
    bool warmup;   /* decay_t = min(decay, (1+t)/(10+t)), t = wk_ema_update calls before */
    int interval;  /* average at every interval-th call (calls 0, k, 2k, ...); 0 or 1: all */
    bool buffers;  /* also keep buffers (float ones averaged, others copied) */
} wk_ema_opts;

/* An EMA of m's parameters (and buffers) with decay in [0, 1], its shadow initialised
 * to the current weights. Returns a new object (free with wk_ema_free), or NULL with an
 * error (NULL module, no tensors, decay out of range, negative interval). */
wk_ema *wk_ema_new(wk_module *m, double decay, const wk_ema_opts *opts);
/* Free the EMA and its shadow (swap out first to keep the trained weights). NULL-safe. */
void wk_ema_free(wk_ema *e);

/* Count one optimizer update: the first call copies the weights into the shadow, later
 * calls on the interval average them. 0, or -1 with an error (NULL, swapped in). */
int wk_ema_update(wk_ema *e);
/* The decay the next averaging call uses (with warmup, min(decay, (1+t)/(10+t))). */
double wk_ema_current_decay(const wk_ema *e);
/* Number of wk_ema_update calls so far (restored by state loads). */
int64_t wk_ema_num_updates(const wk_ema *e);
/* The shadow tensor of the parameter or buffer called `name` ("fc.weight"), borrowed;
 * NULL with an error when there is none. */
wk_tensor *wk_ema_get(const wk_ema *e, const char *name);

/* Exchange the module's weights with the shadow: after swap_in the module holds the EMA
 * weights (evaluate it, or save its state dict), swap_out restores the trained ones.
 * Each fails (-1 with an error) when the weights are already in / out; 0 otherwise. */
int wk_ema_swap_in(wk_ema *e);
int wk_ema_swap_out(wk_ema *e);
/* True while the EMA weights are swapped into the module. */
bool wk_ema_swapped_in(const wk_ema *e);

/* Append the shadow tensors to the growable array *items (count *count) as
 * "<prefix><name>" (names malloc'd, tensors borrowed: as wk_state_dict_append) and set
 * *json to a malloc'd JSON string (free()) with the update count and the settings.
 * Fails (-1 with an error, nothing appended) while swapped in. */
int wk_ema_state_save(const wk_ema *e, const char *prefix, wk_named_tensor **items, int *count,
                      char **json);
/* Restore a state saved by wk_ema_state_save into an EMA over the same tensors: st must
 * hold "<prefix><name>" for every shadow tensor with its shape and dtype (and nothing
 * else under prefix); all is checked before anything changes, the error lists the
 * problems. Restores the shadow and the update count (the decay, warmup and interval
 * stay as the EMA was built). 0, or -1 with an error (also while swapped in). */
int wk_ema_state_load(wk_ema *e, const wk_safetensors *st, const char *prefix, const char *json);

#ifdef __cplusplus
}
#endif
#endif

/* Parameter initialisation, as torch.nn.init (same formulas and gains).
 *
 *   wk_init_kaiming_uniform_(w, sqrt(5), WK_FAN_IN, "leaky_relu", g);  // Linear's default
 *
 * Every initialiser works in place on a float tensor of any layout, draws from the
 * generator g (NULL = the default generator) and returns t, or NULL with an error. */
#ifndef WK_NN_INIT_H
#define WK_NN_INIT_H

#include "../tensor/random.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { WK_FAN_IN, WK_FAN_OUT } wk_fan_mode;

/* torch's _calculate_fan_in_and_fan_out: dim 1 times the receptive field (fan in) and
 * dim 0 times it (fan out); -1 with an error for tensors with fewer than 2 dims. */
int wk_init_fans(const wk_tensor *t, int64_t *fan_in, int64_t *fan_out);
/* torch.nn.init.calculate_gain for "linear", "conv*", "sigmoid", "tanh", "relu",
 * "leaky_relu" (param = negative slope), "selu"; NaN with an error otherwise. */
double wk_init_gain(const char *nonlinearity, double param);

wk_tensor *wk_init_uniform_(wk_tensor *t, double lo, double hi, wk_generator *g);
wk_tensor *wk_init_normal_(wk_tensor *t, double mean, double std, wk_generator *g);
wk_tensor *wk_init_constant_(wk_tensor *t, double value);
wk_tensor *wk_init_zeros_(wk_tensor *t);
wk_tensor *wk_init_ones_(wk_tensor *t);
/* U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)). */
wk_tensor *wk_init_xavier_uniform_(wk_tensor *t, double gain, wk_generator *g);
/* N(0, std), std = gain * sqrt(2 / (fan_in + fan_out)). */
wk_tensor *wk_init_xavier_normal_(wk_tensor *t, double gain, wk_generator *g);
/* U(-b, b), b = gain(nonlinearity, a) * sqrt(3 / fan). */
wk_tensor *wk_init_kaiming_uniform_(wk_tensor *t, double a, wk_fan_mode mode,
                                    const char *nonlinearity, wk_generator *g);
/* N(0, std), std = gain(nonlinearity, a) / sqrt(fan). */
wk_tensor *wk_init_kaiming_normal_(wk_tensor *t, double a, wk_fan_mode mode,
                                   const char *nonlinearity, wk_generator *g);
/* The default of torch's Linear and ConvNd: kaiming_uniform(a = sqrt(5)) on the weight
 * and U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias (bias may be NULL); as torch, a
 * weight without elements is left alone and the bias of a zero fan in is zeroed. */
int wk_init_torch_default_(wk_tensor *weight, wk_tensor *bias, wk_generator *g);

#ifdef __cplusplus
}
#endif
#endif

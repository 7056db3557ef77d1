/* Parameter initialisation (torch.nn.init's formulas). */
#include <math.h>
#include <string.h>

#include "../tensor/tensor-impl.h"
#include "init.h"

int wk_init_fans(const wk_tensor *t, int64_t *fan_in, int64_t *fan_out)
{
    if (!WKI_CHECK("init_fans", t)) return -1;
    if (t->ndim < 2) {
        wk_set_error("init: fan in and fan out need a tensor with at least 2 dims, got shape "
                     "%s",
                     wki_shape_s(t));
        return -1;
    }
    int64_t field = 1;
    for (int i = 2; i < t->ndim; i++)
        field *= t->shape[i];
    *fan_in = t->shape[1] * field;
    *fan_out = t->shape[0] * field;
    return 0;
}

double wk_init_gain(const char *nl, double param)
{
    if (!nl) nl = "linear";
    if (!strcmp(nl, "linear") || !strncmp(nl, "conv", 4) || !strcmp(nl, "sigmoid")) return 1;
    if (!strcmp(nl, "tanh")) return 5.0 / 3.0;
    if (!strcmp(nl, "relu")) return sqrt(2.0);
    if (!strcmp(nl, "leaky_relu")) return sqrt(2.0 / (1 + param * param));
    if (!strcmp(nl, "selu")) return 3.0 / 4.0;
    wk_set_error("init: unknown nonlinearity \"%s\" (expected linear, conv1d/2d/3d, sigmoid, "
                 "tanh, relu, leaky_relu, selu)",
                 nl);
    return NAN;
}

wk_tensor *wk_init_uniform_(wk_tensor *t, double lo, double hi, wk_generator *g)
{
    return wk_uniform_(t, lo, hi, g);
}

wk_tensor *wk_init_normal_(wk_tensor *t, double mean, double std, wk_generator *g)
{
    return wk_normal_(t, mean, std, g);
}

wk_tensor *wk_init_constant_(wk_tensor *t, double value) { return wk_fill_(t, value); }
wk_tensor *wk_init_zeros_(wk_tensor *t) { return wk_fill_(t, 0); }
wk_tensor *wk_init_ones_(wk_tensor *t) { return wk_fill_(t, 1); }

wk_tensor *wk_init_xavier_uniform_(wk_tensor *t, double gain, wk_generator *g)
{
    int64_t fi, fo;
    if (wk_init_fans(t, &fi, &fo)) return NULL;
    double a = gain * sqrt(6.0 / (double)(fi + fo));
    return wk_uniform_(t, -a, a, g);
}

wk_tensor *wk_init_xavier_normal_(wk_tensor *t, double gain, wk_generator *g)
{
    int64_t fi, fo;
    if (wk_init_fans(t, &fi, &fo)) return NULL;
    return wk_normal_(t, 0, gain * sqrt(2.0 / (double)(fi + fo)), g);
}

static double kaiming_std(const wk_tensor *t, double a, wk_fan_mode mode, const char *nl)
{
    int64_t fi, fo;
    if (wk_init_fans(t, &fi, &fo)) return NAN;
    double gain = wk_init_gain(nl, a);
    int64_t fan = mode == WK_FAN_IN ? fi : fo;
    if (fan <= 0) {
        wk_set_error("init: kaiming init of a tensor with zero fan (shape %s)", wki_shape_s(t));
        return NAN;
    }
    return gain / sqrt((double)fan);
}

wk_tensor *wk_init_kaiming_uniform_(wk_tensor *t, double a, wk_fan_mode mode,
                                    const char *nonlinearity, wk_generator *g)
{
    double std = kaiming_std(t, a, mode, nonlinearity);
    if (isnan(std)) return NULL;
    double bound = sqrt(3.0) * std;
    return wk_uniform_(t, -bound, bound, g);
}

wk_tensor *wk_init_kaiming_normal_(wk_tensor *t, double a, wk_fan_mode mode,
                                   const char *nonlinearity, wk_generator *g)
{
    double std = kaiming_std(t, a, mode, nonlinearity);
    if (isnan(std)) return NULL;
    return wk_normal_(t, 0, std, g);
}

int wk_init_torch_default_(wk_tensor *weight, wk_tensor *bias, wk_generator *g)
{
    int64_t fi, fo;
    if (wk_init_fans(weight, &fi, &fo)) return -1;
    /* torch: kaiming on a weight without elements is a no-op, and the bias bound is 0 */
    if (wk_numel(weight) > 0 &&
        !wk_init_kaiming_uniform_(weight, sqrt(5.0), WK_FAN_IN, "leaky_relu", g))
        return -1;
    if (!bias) return 0;
    if (fi <= 0) return wk_fill_(bias, 0) ? 0 : -1;
    double b = 1.0 / sqrt((double)fi);
    return wk_uniform_(bias, -b, b, g) ? 0 : -1;
}

/* The Linear and Flatten layers: modules around wk_linear and wk_flatten. */
#include "../tensor/linalg.h"
#include "../tensor/tensor-impl.h"
#include "init.h"
#include "linear.h"

typedef struct {
    int64_t in_features, out_features;
} linear_cfg;

static wk_tensor *linear_forward(wk_module *m, wk_tensor *x)
{
    return wk_linear(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"));
}

wk_module *wk_linear_new(int64_t in_features, int64_t out_features, bool bias,
                         wk_generator *g)
{
    if (in_features < 0 || out_features < 0) {
        wk_set_error("Linear: in_features and out_features must be >= 0, got %lld and %lld",
                     (long long)in_features, (long long)out_features);
        return NULL;
    }
    wk_module *m = wk_module_new("Linear", linear_forward, sizeof(linear_cfg));
    if (!m) return NULL;
    linear_cfg *c = m->config;
    c->in_features = in_features;
    c->out_features = out_features;
    wk_tensor *w = wk_empty(WK_SHAPE(out_features, in_features), WK_DTYPE_F32);
    wk_tensor *b = bias ? wk_empty(WK_SHAPE(out_features), WK_DTYPE_F32) : NULL;
    if (!w || (bias && !b) || wk_init_torch_default_(w, b, g)) {
        wk_tensor_free(w);
        wk_tensor_free(b);
        wk_module_free(m);
        return NULL;
    }
    /* registration takes ownership, also on failure */
    if (!wk_module_add_parameter(m, "weight", w)) {
        wk_tensor_free(b);
        wk_module_free(m);
        return NULL;
    }
    if (b && !wk_module_add_parameter(m, "bias", b)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

typedef struct {
    int start_dim, end_dim;
} flatten_cfg;

static wk_tensor *flatten_forward(wk_module *m, wk_tensor *x)
{
    const flatten_cfg *c = m->config;
    return wk_flatten(x, c->start_dim, c->end_dim);
}

wk_module *wk_flatten_new(int start_dim, int end_dim)
{
    wk_module *m = wk_module_new("Flatten", flatten_forward, sizeof(flatten_cfg));
    if (!m) return NULL;
    flatten_cfg *c = m->config;
    c->start_dim = start_dim;
    c->end_dim = end_dim;
    return m;
}

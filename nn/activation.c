/* Activation modules: a type name and a forward calling the element-wise op. */
#include <string.h>

#include "../tensor/elementwise.h"
#include "activation.h"

static wk_tensor *relu_forward(wk_module *m, wk_tensor *x) { return (void)m, wk_relu(x); }
static wk_tensor *silu_forward(wk_module *m, wk_tensor *x) { return (void)m, wk_silu(x); }
static wk_tensor *tanh_forward(wk_module *m, wk_tensor *x) { return (void)m, wk_tanh(x); }
static wk_tensor *sigmoid_forward(wk_module *m, wk_tensor *x)
{
    return (void)m, wk_sigmoid(x);
}
static wk_tensor *identity_forward(wk_module *m, wk_tensor *x) { return (void)m, x; }

typedef struct {
    bool tanh; /* approximate="tanh" */
} gelu_cfg;

static wk_tensor *gelu_forward(wk_module *m, wk_tensor *x)
{
    return ((const gelu_cfg *)m->config)->tanh ? wk_gelu_tanh(x) : wk_gelu(x);
}

wk_module *wk_relu_new(void) { return wk_module_new("ReLU", relu_forward, 0); }
wk_module *wk_silu_new(void) { return wk_module_new("SiLU", silu_forward, 0); }
wk_module *wk_tanh_new(void) { return wk_module_new("Tanh", tanh_forward, 0); }
wk_module *wk_sigmoid_new(void) { return wk_module_new("Sigmoid", sigmoid_forward, 0); }
wk_module *wk_identity_new(void) { return wk_module_new("Identity", identity_forward, 0); }

wk_module *wk_gelu_new(const char *approximate)
{
    bool tanh = approximate && !strcmp(approximate, "tanh");
    if (approximate && !tanh && strcmp(approximate, "none")) {
        wk_set_error("GELU: approximate must be \"none\" or \"tanh\", got \"%s\"", approximate);
        return NULL;
    }
    wk_module *m = wk_module_new("GELU", gelu_forward, sizeof(gelu_cfg));
    if (m) ((gelu_cfg *)m->config)->tanh = tanh;
    return m;
}

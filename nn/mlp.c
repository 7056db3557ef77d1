/* The MLP: a Sequential of Linear, activation and optional Dropout layers. */
#include <string.h>

#include "activation.h"
#include "container.h"
#include "linear.h"
#include "models-impl.h"
#include "models.h"
#include "norm.h"

static const char *const activations[] = {"relu", "gelu", "tanh", "sigmoid", "silu"};

static wk_module *activation_new(int which)
{
    switch (which) {
    case 1: return wk_gelu_new(NULL);
    case 2: return wk_tanh_new();
    case 3: return wk_sigmoid_new();
    case 4: return wk_silu_new();
    default: return wk_relu_new();
    }
}

/* Index into activations[] of name (NULL: relu), or -1 with an error. */
static int find_activation(const char *name)
{
    if (!name) return 0;
    for (int i = 0; i < (int)(sizeof activations / sizeof activations[0]); i++)
        if (!strcmp(name, activations[i])) return i;
    wk_set_error("MLP: activation = \"%s\" is not one of \"relu\" (the default), \"gelu\", "
                 "\"tanh\", \"sigmoid\", \"silu\"",
                 name);
    return -1;
}

static bool check_opts(const wk_mlp_opts *o, int *act)
{
    if (!o) {
        wk_set_error("MLP: options are NULL");
        return false;
    }
    if (!o->sizes || o->nsizes < 2) {
        wk_set_error("MLP: needs sizes with nsizes >= 2 (in, hidden..., out), got %s and "
                     "nsizes = %d",
                     o->sizes ? "sizes" : "NULL sizes", o->nsizes);
        return false;
    }
    for (int i = 0; i < o->nsizes; i++) {
        if (o->sizes[i] < 1) {
            wk_set_error("MLP: sizes[%d] = %lld must be >= 1", i, (long long)o->sizes[i]);
            return false;
        }
    }
    *act = find_activation(o->activation);
    return *act >= 0 && wki_models_check_dropout("MLP", o->dropout) &&
           wki_models_check_std("MLP", o->init_std);
}

wk_module *wk_mlp_new(const wk_mlp_opts *o, wk_generator *g)
{
    int act;
    if (!check_opts(o, &act)) return NULL;
    wk_module *seq = wk_sequential_new();
    if (!seq) return NULL;
    for (int i = 0; i + 1 < o->nsizes; i++) {
        bool ok = wk_sequential_append(seq, wk_linear_new(o->sizes[i], o->sizes[i + 1], true, g));
        if (ok && i + 2 < o->nsizes) {
            ok = wk_sequential_append(seq, activation_new(act)) &&
                 (o->dropout == 0 || wk_sequential_append(seq, wk_dropout_new(o->dropout, g)));
        }
        if (!ok) {
            wk_module_free(seq);
            return NULL;
        }
    }
    if (o->init_std > 0 && wki_models_init_normal(seq, o->init_std, g)) {
        wk_module_free(seq);
        return NULL;
    }
    return seq;
}

/* Helpers shared by the built-in models (nn/mlp.c, fmnist_cnn.c, resnet.c, gpt.c). */
#ifndef WK_NN_MODELS_IMPL_H
#define WK_NN_MODELS_IMPL_H

#include <math.h>

#include "../tensor/tensor.h"
#include "init.h"
#include "module.h"

/* init_std must be 0 (the model's default) or a finite positive number. */
static inline bool wki_models_check_std(const char *model, double init_std)
{
    if (init_std >= 0 && isfinite(init_std)) return true;
    wk_set_error("%s: init_std = %g must be a finite number >= 0 (0: the default init)", model,
                 init_std);
    return false;
}

/* A dropout probability in [0, 1], as torch.nn.Dropout accepts. */
static inline bool wki_models_check_dropout(const char *model, double p)
{
    if (p >= 0 && p <= 1) return true;
    wk_set_error("%s: dropout = %g must be in [0, 1]", model, p);
    return false;
}

/* Every parameter of m ~ N(0, std), drawn in torch's parameter order. 0 or -1. */
static inline int wki_models_init_normal(wk_module *m, double std, wk_generator *g)
{
    for (int i = 0; i < m->nparams; i++)
        if (!wk_init_normal_(m->params[i].tensor, 0, std, g)) return -1;
    for (int i = 0; i < m->nchildren; i++)
        if (wki_models_init_normal(m->children[i].module, std, g)) return -1;
    return 0;
}

#endif

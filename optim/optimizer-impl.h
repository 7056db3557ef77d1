/* The optimizer object (internal). optim/optimizer.c and the algorithms fill it. */
#ifndef WK_OPTIM_OPTIMIZER_IMPL_H
#define WK_OPTIM_OPTIMIZER_IMPL_H

#include "optimizer.h"

typedef struct {
    wk_tensor **params; /* borrowed */
    int nparams;
    double lr, initial_lr;
} wki_param_group;

struct wk_optimizer {
    const char *type;
    int ngroups;
    wki_param_group *groups;
};

#endif

/* Optimizer groups and learning rates. */
#include <math.h>

#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

static bool valid_group(const char *op, const wk_optimizer *opt, int g)
{
    if (!opt) {
        wk_set_error("%s: optimizer is NULL", op);
        return false;
    }
    if (g < 0 || g >= opt->ngroups) {
        wk_set_error("%s: group %d is out of range (the optimizer has %d groups)", op, g,
                     opt->ngroups);
        return false;
    }
    return true;
}

int wk_optimizer_num_groups(const wk_optimizer *opt) { return opt ? opt->ngroups : 0; }

double wk_optimizer_get_lr(const wk_optimizer *opt, int g)
{
    return valid_group("optimizer_get_lr", opt, g) ? opt->groups[g].lr : NAN;
}

double wk_optimizer_initial_lr(const wk_optimizer *opt, int g)
{
    return valid_group("optimizer_initial_lr", opt, g) ? opt->groups[g].initial_lr : NAN;
}

int wk_optimizer_set_lr(wk_optimizer *opt, int g, double lr)
{
    if (!valid_group("optimizer_set_lr", opt, g)) return -1;
    opt->groups[g].lr = lr;
    return 0;
}

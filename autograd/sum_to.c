/* The reverse of broadcasting, for the gradients of broadcast inputs. */
#include "../tensor/reduce.h"
#include "node-impl.h"

wk_tensor *wki_sum_to_shape(wk_tensor *g, const int64_t *shape, int ndim)
{
    if (!g) return NULL;
    int lead = g->ndim - ndim;
    if (lead < 0) {
        wk_set_error("sum_to_shape: gradient of shape %s cannot be summed to %s",
                     wki_shape_s(g), wki_dims_s(shape, ndim));
        return NULL;
    }
    int dims[WK_MAX_DIMS], nd = 0;
    for (int i = 0; i < g->ndim; i++) {
        int j = i - lead;
        if (j < 0 || (shape[j] == 1 && g->shape[i] != 1)) dims[nd++] = i;
    }
    if (!nd) return g;
    wk_tensor *s = wk_sum(g, dims, nd, true);
    if (!s || !lead) return s;
    return wk_reshape(s, shape, ndim);
}

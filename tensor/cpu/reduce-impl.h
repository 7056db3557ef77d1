/* The reduction kernels' interface, one entry per device (tensor/reduce.c holds the
 * table). Not installed. */
#ifndef WK_CPU_REDUCE_IMPL_H
#define WK_CPU_REDUCE_IMPL_H

#include "../reduce.h"
#include "../tensor-impl.h"

/* Compute `op` of x over the dims flagged in reduced[0..x->ndim) into out (and the
 * int64 indices of MAX/MIN into `indices` when not NULL). The front-end has validated
 * everything and allocated out/indices contiguous: kept dims in order (size-1 dims where
 * keepdim kept reduced ones), or x's shape for softmax. `arg` is the correction or p.
 * Returns false with an error only when a temporary cannot be allocated. */
typedef bool (*wki_reduce_kernel)(wk_reduce_op op, wk_tensor *x, const bool *reduced,
                                  double arg, wk_tensor *out, wk_tensor *indices);

bool wki_cpu_reduce(wk_reduce_op op, wk_tensor *x, const bool *reduced, double arg,
                    wk_tensor *out, wk_tensor *indices);

#endif

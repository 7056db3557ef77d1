/* The element-wise iterator: walks an output and its broadcast inputs together, with
 * dims coalesced so that the inner loop is as long as the layout allows, and splits
 * the work across threads. Every element-wise kernel, copy and cast runs through it. */
#ifndef WK_ITER_IMPL_H
#define WK_ITER_IMPL_H

#include "tensor-impl.h"

#define WKI_MAX_OPERANDS 4

typedef struct {
    int nops;  /* operands; 0 is the output */
    int ndim;  /* dims after coalescing; index 0 is the innermost */
    int64_t numel;
    int64_t shape[WK_MAX_DIMS];
    int64_t strides[WKI_MAX_OPERANDS][WK_MAX_DIMS]; /* bytes */
    char *data[WKI_MAX_OPERANDS];
} wki_iter;

/* The inner loop: n elements; data[k] and strides[k] (bytes) of each operand. */
typedef void (*wki_loop_fn)(char **data, const int64_t *strides, int64_t n, void *ctx);

/* Set up an iteration over ops[0]'s shape; ops[1..] must broadcast to it. */
void wki_iter_init(wki_iter *it, int nops, const wk_tensor *const *ops);
/* Run fn over every element, in parallel when large. */
void wki_iter_run(const wki_iter *it, wki_loop_fn fn, void *ctx);
/* Run fn serially over the element range [begin, end) of the iteration. */
void wki_iter_run_range(const wki_iter *it, wki_loop_fn fn, void *ctx, int64_t begin,
                        int64_t end);

/* Broadcast shape of n tensors into shape/ndim; false with an error naming op and the
 * shapes when they do not broadcast. */
bool wki_broadcast_shape(const char *op, int n, const wk_tensor *const *ts, int64_t *shape,
                         int *ndim);

#endif

/* Autograd nodes as op front-ends see them. An op that supports autograd does, after
 * computing `out`:
 *
 *     if (wki_grad_needed(2, (const wk_tensor *[]){a, b})) {
 *         wki_node *n = wki_node_new(out, "mul", mul_backward, 2, (wk_tensor *[]){a, b});
 *         if (!n) return NULL;
 *         wki_node_save(n, 0, a); wki_node_save(n, 1, b);   // what backward needs
 *     }
 *
 * and its backward, next to the forward in the same file, computes the gradient of each
 * input that needs one (wki_node_input_needs_grad), in the input's shape (broadcast
 * dims summed back with wki_sum_to_shape). Backward runs with grad mode off. */
#ifndef WK_NODE_IMPL_H
#define WK_NODE_IMPL_H

#include "../tensor/tensor-impl.h"
#include "autograd.h"

#define WKI_NODE_MAX_INPUTS 4
#define WKI_NODE_MAX_SAVED 4

typedef struct wk_node wki_node;

/* Fill grads[k] for each input k that needs a gradient (leave the others NULL).
 * 0, or -1 with an error. */
typedef int (*wki_backward_fn)(wki_node *node, wk_tensor *grad_out, wk_tensor **grads);

struct wk_node {
    const char *op;           /* op name for messages and the profiler */
    wki_backward_fn backward;
    int ninputs;
    wk_tensor *inputs[WKI_NODE_MAX_INPUTS];  /* references held by the node */
    wk_tensor *saved[WKI_NODE_MAX_SAVED];    /* references held until released */
    double f[4];                             /* op parameters */
    int64_t i[WK_MAX_DIMS];
    /* bookkeeping of a backward pass */
    wk_tensor *grad;          /* gradient flowing into this node's output */
    uint64_t visit;           /* pass id of the last visit */
    bool released;            /* saved tensors dropped after a backward */
};

/* True when grad mode is on and one of the n tensors requires grad (NULLs ignored). */
bool wki_grad_needed(int n, const wk_tensor *const *ts);
/* Record a node producing `out` (sets out->grad_fn and out->requires_grad). NULL with an
 * error when out of memory. */
wki_node *wki_node_new(wk_tensor *out, const char *op, wki_backward_fn backward, int ninputs,
                       wk_tensor *const *inputs);
/* Keep a reference to t in slot k for backward. */
void wki_node_save(wki_node *n, int k, wk_tensor *t);
/* True when input k of the node needs a gradient. */
bool wki_node_input_needs_grad(const wki_node *n, int k);
/* Drop a node (tensor.c calls it when the output handle dies). */
void wki_node_free(wki_node *n);
/* Sum g over the dims that were broadcast to reach its shape from `shape` (the reverse of
 * broadcasting): the gradient of a broadcast input. Returns g itself when no dim was. */
wk_tensor *wki_sum_to_shape(wk_tensor *g, const int64_t *shape, int ndim);

#endif

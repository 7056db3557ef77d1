/* Recording: grad mode, nodes, requires_grad, detach. */
#include <string.h>

#include "node-impl.h"

static _Thread_local int no_grad_depth;

void wk_no_grad_begin(void) { no_grad_depth++; }
void wk_no_grad_end(void)
{
    if (no_grad_depth > 0) no_grad_depth--;
}
bool wk_grad_enabled(void) { return no_grad_depth == 0; }

bool wki_grad_needed(int n, const wk_tensor *const *ts)
{
    if (no_grad_depth) return false;
    for (int k = 0; k < n; k++)
        if (ts[k] && ts[k]->requires_grad) return true;
    return false;
}

wki_node *wki_node_new(wk_tensor *out, const char *op, wki_backward_fn backward, int ninputs,
                       wk_tensor *const *inputs)
{
    wki_node *n = wki_struct_alloc(sizeof *n);
    if (!n) return NULL;
    n->op = op;
    n->backward = backward;
    n->ninputs = ninputs < WKI_NODE_MAX_INPUTS ? ninputs : WKI_NODE_MAX_INPUTS;
    for (int k = 0; k < n->ninputs; k++) {
        n->inputs[k] = inputs[k];
        if (inputs[k]) wki_tensor_retain(inputs[k]);
    }
    out->grad_fn = n;
    out->requires_grad = true;
    return n;
}

void wki_node_save(wki_node *n, int k, wk_tensor *t)
{
    if (k < 0 || k >= WKI_NODE_MAX_SAVED || !t) return;
    if (n->saved[k]) wki_tensor_release(n->saved[k]);
    wki_tensor_retain(t);
    n->saved[k] = t;
}

bool wki_node_input_needs_grad(const wki_node *n, int k)
{
    return k >= 0 && k < n->ninputs && n->inputs[k] && n->inputs[k]->requires_grad;
}

void wki_node_free(wki_node *n)
{
    if (!n) return;
    for (int k = 0; k < WKI_NODE_MAX_SAVED; k++)
        wki_tensor_release(n->saved[k]);
    for (int k = 0; k < n->ninputs; k++)
        wki_tensor_release(n->inputs[k]);
    wki_struct_free(n, sizeof *n);
}

wk_tensor *wk_requires_grad_(wk_tensor *t, bool requires_grad)
{
    if (!WKI_CHECK("requires_grad_", t)) return NULL;
    if (t->grad_fn) {
        wk_set_error("requires_grad_: only leaf tensors can change requires_grad (this one "
                     "is the output of %s); use wk_detach for a new leaf",
                     t->grad_fn->op);
        return NULL;
    }
    if (requires_grad && !wk_dtype_is_float(t->dtype)) {
        wk_set_error("requires_grad_: only floating-point tensors can require grad, got %s",
                     wk_dtype_name(t->dtype));
        return NULL;
    }
    t->requires_grad = requires_grad;
    return t;
}

wk_tensor *wk_detach(wk_tensor *t)
{
    if (!WKI_CHECK("detach", t)) return NULL;
    return wk_alias(t); /* an alias has no graph and requires_grad off */
}

wk_tensor *wk_grad_take(wk_tensor *t)
{
    if (!t || !t->grad) return NULL;
    wk_tensor *g = t->grad;
    t->grad = NULL;
    wki_frame_register(g);
    return g;
}

void wk_zero_grad(wk_tensor *const *ts, int n)
{
    for (int k = 0; k < n; k++)
        if (ts && ts[k] && ts[k]->grad) wk_fill_(ts[k]->grad, 0);
}

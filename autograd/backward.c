/* The backward pass: a topological order of the graph below the output (reverse
 * post-order of a depth-first walk), then each node's backward in that order, with
 * gradients summed per node and accumulated into the leaves' persistent `grad`. */
#include <stdatomic.h>
#include <stdlib.h>

#include "../tensor/elementwise.h"
#include "node-impl.h"
#include "../tensor/profiler-impl.h"

static atomic_uint_fast64_t pass_counter;

/* Per-thread work arrays; they only grow, so steady training does not allocate here. */
static _Thread_local struct {
    wki_node **order, **stack;
    int *next;
    int cap;
} work;

static bool reserve(int n)
{
    if (n <= work.cap) return true;
    int cap = work.cap ? work.cap : 256;
    while (cap < n) cap *= 2;
    wki_node **o = realloc(work.order, (size_t)cap * sizeof *o);
    if (o) work.order = o;
    wki_node **s = realloc(work.stack, (size_t)cap * sizeof *s);
    if (s) work.stack = s;
    int *x = realloc(work.next, (size_t)cap * sizeof *x);
    if (x) work.next = x;
    if (!o || !s || !x) {
        wk_set_error("backward: out of memory for a graph of %d nodes", n);
        return false;
    }
    work.cap = cap;
    return true;
}

/* Nodes below root in reverse topological order (inputs first); -1 on error. */
static int topo_order(wki_node *root, uint64_t pass)
{
    int len = 0, sp = 0;
    if (!reserve(1)) return -1;
    root->visit = pass;
    work.stack[sp] = root;
    work.next[sp++] = 0;
    while (sp) {
        wki_node *top = work.stack[sp - 1];
        int k = work.next[sp - 1];
        if (k < top->ninputs) {
            work.next[sp - 1]++;
            wk_tensor *in = top->inputs[k];
            wki_node *c = in ? in->grad_fn : NULL;
            if (c && c->visit != pass) {
                if (!reserve(sp + 1)) return -1;
                c->visit = pass;
                work.stack[sp] = c;
                work.next[sp++] = 0;
            }
        } else {
            if (!reserve(len + 1)) return -1;
            work.order[len++] = top;
            sp--;
        }
    }
    return len;
}

static int accumulate_leaf(wk_tensor *leaf, wk_tensor *g, const char *op)
{
    if (!wk_same_shape(leaf, g)) {
        wk_set_error("backward: %s produced a gradient of shape %s for an input of shape %s",
                     op, wki_shape_s(g), wki_shape_s(leaf));
        return -1;
    }
    if (!leaf->grad) {
        wk_tensor *c = wk_to_dtype(g, leaf->dtype);
        if (c && c->storage == g->storage) { /* own the storage: never share it with g */
            wk_tensor *d = wk_clone(c);
            wk_tensor_free(c);
            c = d;
        }
        if (!c) return -1;
        wki_make_persistent(c);
        leaf->grad = c;
        return 0;
    }
    return wk_add_(leaf->grad, g) ? 0 : -1;
}

/* True when t may be summed into in place: its only handle holds its only storage
 * reference (no view, alias or node sees the data), and no two elements share memory. */
static bool sole_owner(const wk_tensor *t)
{
    if (t->refs != 1 || t->storage->external || atomic_load(&t->storage->refcount) != 1)
        return false;
    for (int d = 0; d < t->ndim; d++)
        if (t->strides[d] == 0 && t->shape[d] > 1) return false;
    return true;
}

/* Give node c's output the gradient g (summing with what it already got), in place into
 * whichever of the two it alone owns; a new sum only when both are shared. */
static int accumulate_node(wki_node *c, wk_tensor *g)
{
    if (!c->grad) {
        c->grad = g;
        return 0;
    }
    if (c->grad->dtype == g->dtype && (sole_owner(c->grad) || sole_owner(g))) {
        wk_tensor *dst = sole_owner(c->grad) ? c->grad : g;
        if (!wk_add_(dst, dst == g ? c->grad : g)) return -1;
        wk_tensor_free(dst == g ? c->grad : g);
        c->grad = dst;
        return 0;
    }
    wk_tensor *sum = wk_add(c->grad, g);
    if (!sum) return -1;
    wk_tensor_free(c->grad);
    wk_tensor_free(g);
    c->grad = sum;
    return 0;
}

static int run_node(wki_node *n, bool retain_graph)
{
    WKI_PROF_BACKWARD(n->op, n->grad);
    if (n->released) {
        wk_set_error("backward: the graph through %s was already freed by an earlier "
                     "backward; pass retain_graph=true to wk_backward_ex to go through it "
                     "twice",
                     n->op);
        return -1;
    }
    wk_tensor *grads[WKI_NODE_MAX_INPUTS] = {0};
    if (n->backward(n, n->grad, grads) != 0) {
        for (int k = 0; k < n->ninputs; k++)
            wk_tensor_free(grads[k]);
        return -1;
    }
    int rc = 0;
    for (int k = 0; k < n->ninputs; k++) {
        wk_tensor *g = grads[k];
        if (!g) continue;
        /* Each gradient handle must have one owner: alias re-used handles. */
        bool shared = g == n->grad;
        for (int j = 0; j < k; j++)
            shared |= grads[j] == g;
        if (shared) g = grads[k] = wk_alias(g);
        wk_tensor *in = n->inputs[k];
        if (rc || !g || !wki_node_input_needs_grad(n, k)) continue;
        if (in->grad_fn) {
            if (!wk_same_shape(in, g)) {
                wk_set_error("backward: %s produced a gradient of shape %s for an input of "
                             "shape %s",
                             n->op, wki_shape_s(g), wki_shape_s(in));
                rc = -1;
                continue;
            }
            rc = accumulate_node(in->grad_fn, g);
            grads[k] = NULL; /* owned by the input's node now */
        } else {
            rc = accumulate_leaf(in, g, n->op);
        }
    }
    for (int k = 0; k < n->ninputs; k++)
        if (grads[k]) wk_tensor_free(grads[k]);
    wk_tensor_free(n->grad);
    n->grad = NULL;
    if (!retain_graph && !rc) {
        for (int k = 0; k < WKI_NODE_MAX_SAVED; k++) {
            wki_tensor_release(n->saved[k]);
            n->saved[k] = NULL;
        }
        n->released = true;
    }
    return rc;
}

int wk_backward_ex(wk_tensor *out, const wk_tensor *grad, bool retain_graph)
{
    WKI_PROF_OP("backward_pass", out);
    if (!WKI_CHECK("backward", out)) return -1;
    if (!out->requires_grad) {
        wk_set_error("backward: the tensor (shape %s) does not require grad: no input of its "
                     "graph has requires_grad set, or it was computed under no_grad",
                     wki_shape_s(out));
        return -1;
    }
    if (!grad && wk_numel(out) != 1) {
        wk_set_error("backward: a gradient can be implied only for a one-element output, "
                     "got shape %s; pass the output's gradient to wk_backward_ex",
                     wki_shape_s(out));
        return -1;
    }
    if (grad && (!wk_same_shape(grad, out) || grad->dtype != out->dtype)) {
        wk_set_error("backward: gradient of shape %s (%s) given for an output of shape %s "
                     "(%s)",
                     wki_shape_s(grad), wk_dtype_name(grad->dtype), wki_shape_s(out),
                     wk_dtype_name(out->dtype));
        return -1;
    }
    wk_frame_begin();
    wk_no_grad_begin();
    int rc = 0;
    wk_tensor *g = grad ? wk_alias((wk_tensor *)grad) : wk_fill_(wk_empty_like(out), 1);
    if (!g) {
        rc = -1;
    } else if (!out->grad_fn) {
        rc = accumulate_leaf(out, g, "backward");
    } else {
        uint64_t pass = atomic_fetch_add(&pass_counter, 1) + 1;
        int len = topo_order(out->grad_fn, pass);
        if (len < 0) rc = -1;
        if (!rc) out->grad_fn->grad = g;
        for (int i = len - 1; i >= 0 && !rc; i--) {
            wki_node *n = work.order[i];
            if (n->grad) rc = run_node(n, retain_graph);
        }
        for (int i = 0; i < len; i++) { /* after an error: drop what is still pending */
            wk_tensor_free(work.order[i]->grad);
            work.order[i]->grad = NULL;
        }
    }
    wk_no_grad_end();
    wk_frame_end();
    return rc;
}

int wk_backward(wk_tensor *out) { return wk_backward_ex(out, NULL, false); }

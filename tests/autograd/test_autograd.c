/* The autograd engine: accumulation, graph shapes, lifetimes, modes and errors. */
#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(autograd, .init = tu_setup, .fini = tu_teardown);

static wk_tensor *leaf(wk_tensor *t) { return wk_requires_grad_(t, true); }

Test(autograd, product_rule)
{
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(3), 1, 2, 3));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(3), 4, 5, 6));
    wk_tensor *y = wk_sum(wk_mul(a, b), WK_ALL_DIMS, false);
    cr_assert(y->requires_grad);
    cr_assert_eq(wk_backward(y), 0, "%s", wk_last_error());
    expect_values(a->grad, 0, 4, 5, 6);
    expect_values(b->grad, 0, 1, 2, 3);
    cr_assert_eq(a->grad->frame, 0, "leaf grads are persistent");
}

Test(autograd, diamond_sums_paths)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 3, -1));
    wk_tensor *y = wk_sum(wk_add(wk_mul(x, x), x), WK_ALL_DIMS, false); /* x^2 + x */
    cr_assert_eq(wk_backward(y), 0, "%s", wk_last_error());
    expect_values(x->grad, 0, 7, -1);
}

Test(autograd, accumulates_and_zero_grad)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    for (int i = 0; i < 3; i++) {
        wk_frame_begin();
        cr_assert_eq(wk_backward(wk_sum(wk_mul_scalar(x, 2), WK_ALL_DIMS, false)), 0);
        wk_frame_end();
    }
    expect_values(x->grad, 0, 6, 6);
    wk_zero_grad(&x, 1);
    expect_values(x->grad, 0, 0, 0);
}

Test(autograd, broadcast_grads_are_reduced)
{
    wk_tensor *a = leaf(wk_ones(WK_SHAPE(3, 1), WK_DTYPE_F64));
    wk_tensor *b = leaf(wk_ones(WK_SHAPE(4), WK_DTYPE_F64));
    wk_tensor *y = wk_sum(wk_add(a, b), WK_ALL_DIMS, false);
    cr_assert_eq(wk_backward(y), 0, "%s", wk_last_error());
    expect_shape(a->grad, 3, 1);
    expect_values(a->grad, 0, 4, 4, 4);
    expect_values(b->grad, 0, 3, 3, 3, 3);
}

Test(autograd, retain_graph_and_freed_graph)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    wk_tensor *y = wk_sum(wk_mul(x, x), WK_ALL_DIMS, false);
    cr_assert_eq(wk_backward_ex(y, NULL, true), 0);
    cr_assert_eq(wk_backward(y), 0, "%s", wk_last_error());
    expect_values(x->grad, 0, 4, 8);
    wk_clear_error();
    cr_assert_eq(wk_backward(y), -1);
    cr_assert(strstr(wk_last_error(), "already freed"), "%s", wk_last_error());
}

Test(autograd, errors)
{
    wk_tensor *x = tu_f64(WK_SHAPE(2), 1, 2);
    cr_assert_eq(wk_backward(wk_sum(x, WK_ALL_DIMS, false)), -1);
    cr_assert(strstr(wk_last_error(), "does not require grad"));
    leaf(x);
    wk_tensor *y = wk_mul(x, x);
    cr_assert_eq(wk_backward(y), -1);
    cr_assert(strstr(wk_last_error(), "one-element output, got shape [2]"));
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(3), 1, 1, 1), false), -1);
    cr_assert(strstr(wk_last_error(), "gradient of shape [3]"));
    cr_assert_eq(wk_backward_ex(y, tu_f64(WK_SHAPE(2), 1, 10), false), 0);
    expect_values(x->grad, 0, 2, 40);
    expect_error(wk_requires_grad_(y, false), "only leaf tensors");
    expect_error(wk_requires_grad_(tu_i64(WK_SHAPE(1), 1), true), "floating-point");
}

Test(autograd, no_grad_and_detach)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    wk_no_grad_begin();
    cr_assert_not(wk_grad_enabled());
    wk_tensor *y = wk_mul(x, x);
    wk_no_grad_end();
    cr_assert_not(y->requires_grad);
    cr_assert_null(y->grad_fn);
    wk_tensor *d = wk_detach(x);
    cr_assert_not(d->requires_grad);
    cr_assert_eq(d->storage, x->storage);
    wk_tensor *z = wk_mul(wk_detach(x), x); /* only the second factor carries grad */
    cr_assert_eq(wk_backward(wk_sum(z, WK_ALL_DIMS, false)), 0);
    expect_values(x->grad, 0, 1, 2);
}

Test(autograd, graph_released_with_frame)
{
    wk_tensor *w = leaf(wk_ones(WK_SHAPE(64, 64), WK_DTYPE_F32));
    for (int i = 0; i < 3; i++) { /* warm the pool */
        wk_frame_begin();
        wk_backward(wk_sum(wk_mul(wk_exp(w), w), WK_ALL_DIMS, false));
        wk_frame_end();
    }
    wk_alloc_stats a = wk_alloc_get_stats();
    for (int i = 0; i < 10; i++) {
        wk_frame_begin();
        wk_backward(wk_sum(wk_mul(wk_exp(w), w), WK_ALL_DIMS, false));
        wk_frame_end();
    }
    wk_alloc_stats b = wk_alloc_get_stats();
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use, "graph memory released");
    cr_assert_eq(a.malloc_calls, b.malloc_calls, "no malloc in a steady loop");
}

Test(autograd, kept_output_keeps_its_graph)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    wk_frame_begin();
    wk_tensor *loss = wk_keep(wk_sum(wk_mul(wk_exp(x), x), WK_ALL_DIMS, false));
    wk_frame_end(); /* the intermediates' handles live on in the graph */
    cr_assert_eq(wk_backward(loss), 0, "%s", wk_last_error());
    expect_values(x->grad, 1e-12, exp(1) * 2, exp(2) * 3);
}

static wk_tensor *poly(wk_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    return wk_mul(wk_add(wk_mul(in[0], in[1]), in[0]), wk_exp(in[1]));
}

Test(autograd, gradcheck_accepts_correct_gradients)
{
    wk_generator g = wk_generator_make(1);
    wk_tensor *in[2] = {wk_randn(WK_SHAPE(3, 4), WK_DTYPE_F64, &g),
                        wk_randn(WK_SHAPE(4), WK_DTYPE_F64, &g)};
    cr_assert_eq(wk_gradcheck(poly, NULL, in, 2, 1e-6, 1e-7, 1e-6), 0, "%s", wk_last_error());
    cr_assert_null(in[0]->grad, "gradcheck restores the inputs");
    cr_assert_not(in[0]->requires_grad);
}

/* An op whose backward is deliberately wrong by a factor of 2. */
static int wrong_backward(wki_node *n, wk_tensor *grad, wk_tensor **grads)
{
    (void)n;
    grads[0] = wk_mul_scalar(grad, 2);
    return 0;
}

static wk_tensor *wrong_identity(wk_tensor *const *in, int n, void *user)
{
    (void)n, (void)user;
    wk_no_grad_begin(); /* a plain copy: the node below is the only one */
    wk_tensor *out = wk_clone(in[0]);
    wk_no_grad_end();
    if (wki_grad_needed(1, (const wk_tensor *const[]){in[0]}))
        wki_node_new(out, "wrong_identity", wrong_backward, 1, (wk_tensor *[]){in[0]});
    return out;
}

Test(autograd, gradcheck_catches_wrong_gradients)
{
    wk_tensor *in[1] = {tu_f64(WK_SHAPE(3), 0.5, -1, 2)};
    cr_assert_eq(wk_gradcheck(wrong_identity, NULL, in, 1, 1e-6, 1e-7, 1e-6), -1);
    cr_assert(strstr(wk_last_error(), "input 0 element 0"), "%s", wk_last_error());
    wk_clear_error();
    cr_assert_eq(wk_gradcheck(wrong_identity, NULL, (wk_tensor *[]){tu_f32(WK_SHAPE(1), 1)}, 1,
                              1e-6, 0, 0),
                 -1);
    cr_assert(strstr(wk_last_error(), "contiguous float64"), "%s", wk_last_error());
}

/* Gradients of the reduction family: gradchecks of every differentiable op over
 * first/last/several/all dims, keepdim both ways and four input layouts, hand-computed
 * gradients at ties and zeros, the fused softmax backward against a naive loop. */
#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(grad_reduce, .init = tu_setup, .fini = tu_teardown);

/* ---- gradient checking over input layouts ----
 *
 * Inputs are contiguous float64 leaves ("bases"); each is seen by the op through a layout
 * (the base itself, a transposed view, a strided slice, or a 0-stride expand).
 * wk_gradcheck builds sum(w * y) with wk_mul, and reaches the bases through the view ops,
 * so it needs the element-wise and view families' backward (parallel branches of issue
 * 3). Until they record, `check` makes the same comparison locally: w goes to
 * wk_backward_ex as y's gradient, and the views themselves are the leaves, their
 * gradients mapped back onto the bases' elements through their strides. */

enum { L_CONTIG, L_TRANSPOSED, L_SLICED, L_EXPANDED, L_COUNT };
static const char *const layout_names[] = {"contiguous", "transposed", "sliced", "expanded"};

/* The base shape giving `shape` under a layout (ndim >= 1; transposed: ndim >= 2). */
static int base_shape(const int64_t *shape, int nd, int layout, int64_t *out)
{
    memcpy(out, shape, sizeof(int64_t) * (size_t)nd);
    if (layout == L_TRANSPOSED) {
        out[0] = shape[nd - 1];
        out[nd - 1] = shape[0];
    } else if (layout == L_SLICED) {
        out[nd - 1] = 2 * shape[nd - 1] + 1;
    } else if (layout == L_EXPANDED) {
        out[0] = 1;
    }
    return nd;
}

/* The view of base b under a layout (the contiguous layout is b itself). */
static wk_tensor *layout_view(wk_tensor *b, int layout, const int64_t *shape, int nd)
{
    switch (layout) {
    case L_TRANSPOSED: return wk_transpose(b, 0, -1);
    case L_SLICED: return wk_slice(b, -1, 1, INT64_MAX, 2);
    case L_EXPANDED: return wk_expand(b, shape, nd);
    default: return b;
    }
}

typedef wk_tensor *(*op_fn)(wk_tensor *const *x, int n, const void *user);

typedef struct {
    op_fn op;
    const void *user;
    int layout[4];
    int64_t shape[4][WK_MAX_DIMS]; /* the shapes the op sees */
    int nd[4];
} gc_ctx;

static wk_tensor *gc_apply(wk_tensor *const *in, int n, void *u)
{
    const gc_ctx *c = u;
    wk_tensor *v[4];
    for (int k = 0; k < n; k++)
        v[k] = layout_view(in[k], c->layout[k], c->shape[k], c->nd[k]);
    return c->op(v, n, c->user);
}

/* Gradcheck op over n inputs of the given (view) shapes and layouts; values uniform in
 * [-2, 2] (seeded). Returns 0 or -1 with the error. */
static int check(op_fn op, const void *user, int n, const int64_t *const *shapes,
                 const int *nds, const int *layouts, uint64_t seed)
{
    gc_ctx c = {.op = op, .user = user};
    wk_tensor *base[4];
    wk_generator g = wk_generator_make(seed);
    for (int k = 0; k < n; k++) {
        c.layout[k] = layouts ? layouts[k] : L_CONTIG;
        c.nd[k] = nds[k];
        memcpy(c.shape[k], shapes[k], sizeof(int64_t) * (size_t)nds[k]);
        int64_t bs[WK_MAX_DIMS];
        base_shape(shapes[k], nds[k], c.layout[k], bs);
        base[k] = wk_uniform_(wk_empty(bs, nds[k], WK_DTYPE_F64), -2, 2, &g);
    }
    return wk_gradcheck(gc_apply, &c, base, n, 1e-6, 1e-7, 1e-5);
}

/* ---- every reduction ---- */

typedef struct {
    wk_reduce_op op;
    double arg;
    int dims[3], nd; /* nd = 0: all dims */
    bool keepdim;
} rcase;

static wk_tensor *reduce_op(wk_tensor *const *x, int n, const void *user)
{
    (void)n;
    const rcase *c = user;
    const int *dims = c->nd ? c->dims : NULL;
    switch (c->op) {
    case WK_REDUCE_MAX: return wk_max_dim(x[0], c->dims[0], c->keepdim, NULL);
    case WK_REDUCE_MIN: {
        wk_tensor *idx;
        return wk_min_dim(x[0], c->dims[0], c->keepdim, &idx);
    }
    case WK_REDUCE_SOFTMAX: return wk_softmax(x[0], c->dims[0]);
    case WK_REDUCE_LOG_SOFTMAX: return wk_log_softmax(x[0], c->dims[0]);
    default: return wk_reduce(c->op, x[0], dims, c->nd, c->keepdim, c->arg, NULL);
    }
}

static const struct {
    wk_reduce_op op;
    double arg;
    bool one_dim;
} ops[] = {
    {WK_REDUCE_SUM, 0, false},       {WK_REDUCE_MEAN, 0, false},
    {WK_REDUCE_AMAX, 0, false},      {WK_REDUCE_AMIN, 0, false},
    {WK_REDUCE_VAR, 1, false},       {WK_REDUCE_VAR, 0, false},
    {WK_REDUCE_STD, 1, false},       {WK_REDUCE_STD, 0, false},
    {WK_REDUCE_LOGSUMEXP, 0, false}, {WK_REDUCE_NORM, 2, false},
    {WK_REDUCE_NORM, 1, false},      {WK_REDUCE_NORM, INFINITY, false},
    {WK_REDUCE_NORM, -INFINITY, false}, {WK_REDUCE_NORM, 3, false},
    {WK_REDUCE_NORM, 0.5, false},    {WK_REDUCE_NORM, 1.5, false},
    {WK_REDUCE_NORM, 0, false},      {WK_REDUCE_MAX, 0, true},
    {WK_REDUCE_MIN, 0, true},        {WK_REDUCE_SOFTMAX, 0, true},
    {WK_REDUCE_LOG_SOFTMAX, 0, true},
};

static const struct {
    int dims[3], nd;
} dimsets[] = {{{0}, 1}, {{-1}, 1}, {{1}, 1}, {{0, 2}, 2}, {{2, 1, 0}, 3}, {{0}, 0}};

Test(grad_reduce, gradcheck_every_op_dims_keepdim_layout)
{
    const int64_t shape[3] = {3, 4, 5};
    int checked = 0;
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t s = 0; s < sizeof dimsets / sizeof dimsets[0]; s++)
            for (int keep = 0; keep < 2; keep++)
                for (int layout = 0; layout < L_COUNT; layout++) {
                    if (ops[o].one_dim && dimsets[s].nd != 1) continue;
                    bool same_shape = ops[o].op == WK_REDUCE_SOFTMAX ||
                                      ops[o].op == WK_REDUCE_LOG_SOFTMAX;
                    if (same_shape && keep) continue;
                    rcase c = {ops[o].op, ops[o].arg, {0}, dimsets[s].nd, keep};
                    memcpy(c.dims, dimsets[s].dims, sizeof c.dims);
                    wk_frame_begin();
                    int rc = check(reduce_op, &c, 1, (const int64_t *const[]){shape},
                                   (const int[]){3}, (const int[]){layout},
                                   100 + o * 10 + s);
                    wk_frame_end();
                    cr_assert_eq(rc, 0, "%s (arg %g) dims %d..(%d) keepdim %d %s: %s",
                                 wk_reduce_op_name(c.op), c.arg, c.dims[0], c.nd, keep,
                                 layout_names[layout], wk_last_error());
                    checked++;
                }
    cr_assert_gt(checked, 600);
}

Test(grad_reduce, gradcheck_small_shapes)
{
    /* 1-element, 0-d and vector inputs */
    const int64_t s1[1] = {1}, s7[1] = {7};
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        rcase c = {ops[o].op, ops[o].arg, {0}, 1, false};
        const int64_t *shapes[] = {s1, s7};
        for (int k = 0; k < 2; k++) {
            bool no_dof = (c.op == WK_REDUCE_VAR || c.op == WK_REDUCE_STD) && c.arg == 1;
            if (no_dof && shapes[k][0] == 1) continue; /* NaN */
            wk_frame_begin();
            int rc = check(reduce_op, &c, 1, (const int64_t *const[]){shapes[k]},
                           (const int[]){1}, NULL, 7 + o);
            wk_frame_end();
            cr_assert_eq(rc, 0, "%s (arg %g) on [%lld]: %s", wk_reduce_op_name(c.op), c.arg,
                         (long long)shapes[k][0], wk_last_error());
        }
    }
    /* 0-d input */
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++) {
        rcase c = {ops[o].op, ops[o].arg, {0}, ops[o].one_dim, false};
        if ((c.op == WK_REDUCE_VAR || c.op == WK_REDUCE_STD) && c.arg == 1) continue;
        wk_frame_begin();
        int rc = check(reduce_op, &c, 1, (const int64_t *const[]){s1}, (const int[]){0},
                       NULL, 3);
        wk_frame_end();
        cr_assert_eq(rc, 0, "%s (arg %g) on a 0-d tensor: %s", wk_reduce_op_name(c.op), c.arg,
                     wk_last_error());
    }
    /* an empty input: its gradient is empty */
    wk_tensor *e = wk_requires_grad_(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F64), true);
    wk_tensor *y = wk_sum(wk_mean(e, WK_DIMS(0), false), WK_ALL_DIMS, false);
    cr_assert_eq(wk_backward(y), 0, "%s", wk_last_error());
    expect_shape(e->grad, 0, 3);
}

/* ---- hand-computed gradients ---- */

static wk_tensor *leaf(wk_tensor *t) { return wk_requires_grad_(t, true); }

static void backward_with(wk_tensor *y, wk_tensor *g)
{
    cr_assert_not_null(y, "%s", wk_last_error());
    cr_assert(y->requires_grad);
    cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s", wk_last_error());
}

Test(grad_reduce, sum_and_mean_by_hand)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6));
    backward_with(wk_sum(x, WK_DIMS(1), false), tu_f64(WK_SHAPE(2), 1, 2));
    expect_shape(x->grad, 2, 3);
    expect_values(x->grad, 0, 1, 1, 1, 2, 2, 2);
    wk_zero_grad(&x, 1);
    backward_with(wk_mean(x, WK_DIMS(0), true), tu_f64(WK_SHAPE(1, 3), 2, 4, 6));
    expect_values(x->grad, 1e-15, 1, 2, 3, 1, 2, 3);
    wk_zero_grad(&x, 1);
    backward_with(wk_mean(x, WK_ALL_DIMS, false), NULL);
    expect_values(x->grad, 1e-15, 1 / 6., 1 / 6., 1 / 6., 1 / 6., 1 / 6., 1 / 6.);
    /* float32 keeps its dtype */
    wk_tensor *f = leaf(tu_f32(WK_SHAPE(2), 1, 2));
    backward_with(wk_sum(f, WK_ALL_DIMS, false), NULL);
    cr_assert_eq(f->grad->dtype, WK_DTYPE_F32);
    expect_values(f->grad, 0, 1, 1);
}

Test(grad_reduce, amax_amin_split_ties_evenly)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(4), 1, 3, 3, 2));
    backward_with(wk_amax(x, WK_ALL_DIMS, false), NULL);
    expect_values(x->grad, 0, 0, 0.5, 0.5, 0);
    wk_tensor *m = leaf(tu_f64(WK_SHAPE(2, 3), 1, 1, 1, 5, 0, 0));
    backward_with(wk_amin(m, WK_DIMS(1), false), tu_f64(WK_SHAPE(2), 3, 4));
    expect_values(m->grad, 1e-15, 1, 1, 1, 0, 2, 2);
    /* torch.max(x, dim): the whole gradient goes to the index returned (the first) */
    wk_tensor *y = leaf(tu_f64(WK_SHAPE(2, 3), 7, 2, 7, 0, 0, -1));
    wk_tensor *idx;
    backward_with(wk_max_dim(y, 1, true, &idx), tu_f64(WK_SHAPE(2, 1), 5, 6));
    expect_values(idx, 0, 0, 0);
    cr_assert_not(idx->requires_grad);
    expect_values(y->grad, 0, 5, 0, 0, 6, 0, 0);
    wk_zero_grad(&y, 1);
    backward_with(wk_min_dim(y, 0, false, NULL), tu_f64(WK_SHAPE(3), 1, 2, 3));
    expect_values(y->grad, 0, 0, 0, 0, 1, 2, 3);
}

Test(grad_reduce, var_std_by_hand)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(4), 1, 2, 3, 4));
    backward_with(wk_var(x, WK_ALL_DIMS, 1, false), NULL);
    expect_values(x->grad, 1e-15, -1, -1 / 3., 1 / 3., 1); /* 2 (x - 2.5) / 3 */
    wk_zero_grad(&x, 1);
    backward_with(wk_std(x, WK_ALL_DIMS, 0, false), NULL); /* (x - 2.5) / (4 sqrt(1.25)) */
    double s = 4 * sqrt(1.25);
    expect_values(x->grad, 1e-14, -1.5 / s, -0.5 / s, 0.5 / s, 1.5 / s);
    /* std of constant rows: torch's gradient is 0, not NaN */
    wk_tensor *c = leaf(tu_f64(WK_SHAPE(2, 2), 3, 3, 1, 2));
    backward_with(wk_sum(wk_std(c, WK_DIMS(1), 1, false), WK_ALL_DIMS, false), NULL);
    /* second row: (x - 1.5) / (dof * std) = -+0.5 / sqrt(0.5) */
    expect_values(c->grad, 1e-14, 0, 0, -sqrt(0.5), sqrt(0.5));
}

Test(grad_reduce, norm_subgradients_at_zero)
{
    double p_list[] = {2, 1, 3, 0.5, 1.5, INFINITY, 0};
    for (size_t i = 0; i < sizeof p_list / sizeof p_list[0]; i++) {
        wk_frame_begin();
        wk_tensor *z = leaf(wk_zeros(WK_SHAPE(3), WK_DTYPE_F64));
        backward_with(wk_norm(z, p_list[i], WK_ALL_DIMS, false), NULL);
        expect_values(z->grad, 0, 0, 0, 0);
        wk_frame_end();
    }
    /* p < 1 with some zeros: 0 there, sign(x) |x|^(p-1) norm^(1-p) elsewhere */
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(3), 0, 4, -1));
    backward_with(wk_norm(x, 0.5, WK_ALL_DIMS, false), NULL);
    expect_values(x->grad, 1e-14, 0, 0.5 * 3, -1 * 3); /* norm = (2 + 1)^2 */
    /* inf-norm: ties split, signs kept */
    wk_tensor *t = leaf(tu_f64(WK_SHAPE(3), -3, 3, 1));
    backward_with(wk_norm(t, INFINITY, WK_ALL_DIMS, false), NULL);
    expect_values(t->grad, 0, -0.5, 0.5, 0);
    wk_tensor *l2 = leaf(tu_f64(WK_SHAPE(2), 3, -4));
    backward_with(wk_norm(l2, 2, WK_ALL_DIMS, false), NULL);
    expect_values(l2->grad, 1e-15, 0.6, -0.8);
    wk_tensor *l1 = leaf(tu_f64(WK_SHAPE(3), 3, -4, 0));
    backward_with(wk_norm(l1, 1, WK_ALL_DIMS, false), NULL);
    expect_values(l1->grad, 0, 1, -1, 0);
}

Test(grad_reduce, softmax_logsumexp_by_hand)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 0, log(3.0))); /* softmax = (1/4, 3/4) */
    backward_with(wk_softmax(x, 0), tu_f64(WK_SHAPE(2), 1, 0));
    /* y0 (1 - y0), -y0 y1 */
    expect_values(x->grad, 1e-15, 3 / 16., -3 / 16.);
    wk_zero_grad(&x, 1);
    backward_with(wk_log_softmax(x, 0), tu_f64(WK_SHAPE(2), 1, 0));
    expect_values(x->grad, 1e-15, 0.75, -0.75); /* g - y sum(g) */
    wk_zero_grad(&x, 1);
    backward_with(wk_logsumexp(x, WK_ALL_DIMS, false), NULL);
    expect_values(x->grad, 1e-15, 0.25, 0.75);
}

Test(grad_reduce, index_results_never_require_grad)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2, 2), 1, 2, 3, 4));
    wk_tensor *a = wk_argmax(x, 1, false), *b = wk_argmin(x, 0, true), *idx;
    wk_tensor *v = wk_max_dim(x, 0, false, &idx);
    cr_assert_not(a->requires_grad);
    cr_assert_null(a->grad_fn);
    cr_assert_not(b->requires_grad);
    cr_assert_not(idx->requires_grad);
    cr_assert(v->requires_grad);
    cr_assert_str_eq(v->grad_fn->op, "max_dim");
    wk_no_grad_begin();
    cr_assert_not(wk_sum(x, WK_ALL_DIMS, false)->requires_grad);
    wk_no_grad_end();
    cr_assert_not(wk_sum(tu_i64(WK_SHAPE(2), 1, 2), WK_ALL_DIMS, false)->requires_grad);
}

/* ---- the fused softmax backward on large inputs, against a naive loop ---- */

static void softmax_backward_case(wk_dtype dt, bool is_log, int dim, bool strided_grad)
{
    wk_generator g = wk_generator_make(99);
    int64_t R = 301, C = 1001;
    wk_tensor *x = leaf(wk_to_dtype(wk_randn(WK_SHAPE(R, C), WK_DTYPE_F64, &g), dt));
    wk_tensor *gr = wk_randn(WK_SHAPE(R, C), WK_DTYPE_F64, &g);
    if (strided_grad) gr = wk_transpose(wk_contiguous(wk_transpose(gr, 0, 1)), 0, 1);
    wk_tensor *y = is_log ? wk_log_softmax(x, dim) : wk_softmax(x, dim);
    backward_with(y, wk_to_dtype(gr, dt));
    wk_tensor *y64 = wk_to_dtype(y, WK_DTYPE_F64), *gx = wk_to_dtype(x->grad, WK_DTYPE_F64);
    const double *py = wk_data(y64), *pg = wk_data(wk_contiguous(gr)), *pgx = wk_data(gx);
    int64_t rows = dim ? R : C, n = dim ? C : R;
    int64_t along = dim ? 1 : C, across = dim ? C : 1;
    double tol = dt == WK_DTYPE_F32 ? 2e-5 : 1e-12;
    for (int64_t r = 0; r < rows; r++) {
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            int64_t e = r * across + i * along;
            s += is_log ? pg[e] : pg[e] * py[e];
        }
        for (int64_t i = 0; i < n; i++) {
            int64_t e = r * across + i * along;
            double want = is_log ? pg[e] - exp(py[e]) * s : py[e] * (pg[e] - s);
            cr_assert(fabs(pgx[e] - want) <= tol * (1 + fabs(want)),
                      "%s %s dim %d: [%lld] %.9g, expected %.9g", wk_dtype_name(dt),
                      is_log ? "log_softmax" : "softmax", dim, (long long)e, pgx[e], want);
        }
    }
}

Test(grad_reduce, softmax_backward_large_against_naive)
{
    for (int dt = 0; dt < 2; dt++)
        for (int is_log = 0; is_log < 2; is_log++)
            for (int dim = 0; dim < 2; dim++) {
                wk_frame_begin();
                softmax_backward_case(dt ? WK_DTYPE_F64 : WK_DTYPE_F32, is_log, dim, dim == 0);
                wk_frame_end();
            }
}

Test(grad_reduce, graph_memory_released)
{
    wk_tensor *w = leaf(wk_ones(WK_SHAPE(16, 16), WK_DTYPE_F32));
    wk_alloc_stats a = {0};
    for (int i = 0; i < 6; i++) {
        if (i == 3) a = wk_alloc_get_stats();
        wk_frame_begin();
        wk_tensor *y = wk_log_softmax(wk_softmax(w, 1), 0);
        wk_tensor *l = wk_amax(wk_std(wk_max_dim(y, 1, true, NULL), WK_DIMS(0), 1, false),
                               WK_ALL_DIMS, false);
        cr_assert_eq(wk_backward(l), 0, "%s", wk_last_error());
        /* and a graph that is never back-propagated */
        wk_norm(wk_logsumexp(w, WK_DIMS(0), false), 3, WK_ALL_DIMS, false);
        wk_frame_end();
    }
    wk_alloc_stats b = wk_alloc_get_stats();
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use, "graph memory released");
}

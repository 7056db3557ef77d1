/* Gradients of the linalg, index and view families: float64 gradchecks of every op over
 * broadcast, transposed/sliced and edge-case inputs, plus hand-computed gradients. */
#include "test_util.h"

TestSuite(grad_liv, .init = tu_setup, .fini = tu_teardown);

static uint64_t seed = 1;

/* A float64 N(0, 1) leaf of the given shape (a fresh stream each call). */
static wk_tensor *rnd(const int64_t *shape, int ndim)
{
    wk_generator g = wk_generator_make(seed++);
    return wk_randn(shape, ndim, WK_DTYPE_F64, &g);
}
#define RND(...) rnd(WK_SHAPE(__VA_ARGS__))

/* wk_gradcheck differentiates sum(w * y), so it needs mul and sum to record their
 * backward (the elementwise and reduce families); until they do, gradchecks are skipped
 * and only the hand-computed gradients run. */
static void require_gradcheck(void)
{
    wk_tensor *x = wk_requires_grad_(wk_ones(WK_SHAPE(1), WK_DTYPE_F64), true);
    wk_tensor *s = wk_sum(wk_mul(x, x), WK_ALL_DIMS, false);
    if (!s || !s->requires_grad)
        cr_assert_fail("wk_gradcheck needs the backward of mul and sum (not recorded yet)");
}

static void check(wk_gradcheck_fn fn, void *user, wk_tensor *const *in, int n, const char *what)
{
    require_gradcheck();
    for (int k = 0; k < n; k++)
        cr_assert_not_null(in[k], "%s: input %d: %s", what, k, wk_last_error());
    int rc = wk_gradcheck(fn, user, in, n, 1e-6, 1e-7, 1e-5);
    cr_assert_eq(rc, 0, "%s: %s", what, wk_last_error());
}
#define GRADCHECK(fn, user, what, ...)                                                    \
    check(fn, user, (wk_tensor *[]){__VA_ARGS__},                                          \
          (int)(sizeof((wk_tensor *[]){__VA_ARGS__}) / sizeof(wk_tensor *)), what)

/* y's gradients for the output gradient g (no reduction op needed). */
static void backward_with(wk_tensor *y, wk_tensor *g)
{
    cr_assert_not_null(y, "%s", wk_last_error());
    cr_assert(y->requires_grad);
    cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s", wk_last_error());
}

static wk_tensor *leaf(wk_tensor *t) { return wk_requires_grad_(t, true); }

/* ---- linalg ---- */

typedef struct {
    wk_linalg_op op;
    bool ta, tb;        /* the input holds the operand's transpose (last two dims) */
    double beta, alpha; /* addmm */
} lin_case;

static wk_tensor *fn_linalg(wk_tensor *const *in, int n, void *u)
{
    const lin_case *c = u;
    wk_tensor *a = c->ta ? wk_transpose(in[0], -1, -2) : in[0];
    wk_tensor *b = c->tb ? wk_transpose(in[1], -1, -2) : in[1];
    return wk_linalg(c->op, a, b, n > 2 ? in[2] : NULL, c->beta, c->alpha);
}

Test(grad_liv, matmul_shapes)
{
    lin_case c = {.op = WK_LINALG_MATMUL};
    GRADCHECK(fn_linalg, &c, "2d @ 2d", RND(3, 4), RND(4, 5));
    GRADCHECK(fn_linalg, &c, "1d @ 1d", RND(4), RND(4));
    GRADCHECK(fn_linalg, &c, "1d @ 2d", RND(4), RND(4, 5));
    GRADCHECK(fn_linalg, &c, "2d @ 1d", RND(3, 4), RND(4));
    GRADCHECK(fn_linalg, &c, "1d @ 3d", RND(4), RND(2, 4, 5));
    GRADCHECK(fn_linalg, &c, "3d @ 1d", RND(2, 3, 4), RND(4));
    GRADCHECK(fn_linalg, &c, "3d @ 2d (shared b)", RND(2, 3, 4), RND(4, 5));
    GRADCHECK(fn_linalg, &c, "2d @ 3d (shared a)", RND(3, 4), RND(2, 4, 5));
    GRADCHECK(fn_linalg, &c, "batched", RND(2, 3, 4), RND(2, 4, 5));
    GRADCHECK(fn_linalg, &c, "broadcast batch", RND(2, 1, 3, 4), RND(5, 4, 2));
    GRADCHECK(fn_linalg, &c, "broadcast both ways", RND(1, 3, 2, 4), RND(2, 1, 4, 3));
    GRADCHECK(fn_linalg, &c, "1x1", RND(1, 1), RND(1, 1));
    GRADCHECK(fn_linalg, &c, "empty inner", RND(3, 0), RND(0, 2));
    GRADCHECK(fn_linalg, &c, "empty rows", RND(0, 3), RND(3, 2));
}

Test(grad_liv, matmul_transposed_operands)
{
    lin_case c = {.op = WK_LINALG_MATMUL, .ta = true};
    GRADCHECK(fn_linalg, &c, "a^T @ b", RND(4, 3), RND(4, 5));
    c = (lin_case){.op = WK_LINALG_MATMUL, .tb = true};
    GRADCHECK(fn_linalg, &c, "a @ b^T", RND(3, 4), RND(5, 4));
    c = (lin_case){.op = WK_LINALG_MATMUL, .ta = true, .tb = true};
    GRADCHECK(fn_linalg, &c, "a^T @ b^T batched", RND(2, 4, 3), RND(2, 5, 4));
    /* a transposed batch times a shared matrix: the folded grad_b reshapes a copy */
    c = (lin_case){.op = WK_LINALG_MATMUL, .ta = true};
    GRADCHECK(fn_linalg, &c, "a^T (batched) @ b (2d)", RND(2, 4, 3), RND(4, 5));
    c = (lin_case){.op = WK_LINALG_MATMUL, .tb = true};
    GRADCHECK(fn_linalg, &c, "broadcast a @ b^T", RND(3, 1, 2, 4), RND(3, 5, 4));
}

Test(grad_liv, mm_bmm)
{
    lin_case c = {.op = WK_LINALG_MM};
    GRADCHECK(fn_linalg, &c, "mm", RND(3, 4), RND(4, 2));
    c.ta = c.tb = true;
    GRADCHECK(fn_linalg, &c, "mm transposed", RND(4, 3), RND(2, 4));
    c = (lin_case){.op = WK_LINALG_BMM};
    GRADCHECK(fn_linalg, &c, "bmm", RND(2, 3, 4), RND(2, 4, 5));
    c.tb = true;
    GRADCHECK(fn_linalg, &c, "bmm b^T", RND(3, 2, 4), RND(3, 5, 4));
}

Test(grad_liv, addmm)
{
    lin_case c = {.op = WK_LINALG_ADDMM, .beta = 1, .alpha = 1};
    GRADCHECK(fn_linalg, &c, "addmm bias (N)", RND(3, 4), RND(4, 5), RND(5));
    c = (lin_case){.op = WK_LINALG_ADDMM, .beta = 0.5, .alpha = -2};
    GRADCHECK(fn_linalg, &c, "addmm (M, N), beta, alpha", RND(3, 4), RND(4, 5), RND(3, 5));
    GRADCHECK(fn_linalg, &c, "addmm (M, 1)", RND(3, 4), RND(4, 5), RND(3, 1));
    GRADCHECK(fn_linalg, &c, "addmm 0-d bias", RND(3, 4), RND(4, 5), RND());
    c = (lin_case){.op = WK_LINALG_ADDMM, .beta = 0, .alpha = 3, .ta = true};
    GRADCHECK(fn_linalg, &c, "addmm beta 0, a^T", RND(4, 3), RND(4, 5), RND(1, 5));
}

Test(grad_liv, linear)
{
    lin_case c = {.op = WK_LINALG_LINEAR};
    GRADCHECK(fn_linalg, &c, "linear", RND(3, 4), RND(5, 4), RND(5));
    GRADCHECK(fn_linalg, &c, "linear no bias", RND(3, 4), RND(5, 4));
    GRADCHECK(fn_linalg, &c, "linear 3-d input", RND(2, 3, 4), RND(5, 4), RND(5));
    GRADCHECK(fn_linalg, &c, "linear 1-d input", RND(4), RND(5, 4), RND(5));
    GRADCHECK(fn_linalg, &c, "linear one-element bias", RND(3, 4), RND(5, 4), RND(1));
    GRADCHECK(fn_linalg, &c, "linear empty batch", RND(0, 4), RND(5, 4), RND(5));
    c.ta = true;
    GRADCHECK(fn_linalg, &c, "linear x^T", RND(4, 3), RND(5, 4), RND(5));
    c = (lin_case){.op = WK_LINALG_LINEAR, .tb = true};
    GRADCHECK(fn_linalg, &c, "linear W stored (in, out)", RND(2, 3, 4), RND(4, 5), RND(5));
}

Test(grad_liv, matmul_by_hand)
{
    /* y = a @ b, dL/dy = G: dL/da = G b^T, dL/db = a^T G */
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(2, 2), 1, 2, 3, 4));
    wk_tensor *b = leaf(tu_f64(WK_SHAPE(2, 2), 5, 6, 7, 8));
    backward_with(wk_matmul(a, b), tu_f64(WK_SHAPE(2, 2), 1, 0, 0, 2));
    expect_values(a->grad, 0, 5, 7, 12, 16);
    expect_values(b->grad, 0, 1, 6, 2, 8);
    /* a dot product: each gets the other times g */
    wk_tensor *u = leaf(tu_f64(WK_SHAPE(3), 1, 2, 3));
    wk_tensor *v = leaf(tu_f64(WK_SHAPE(3), -1, 0, 2));
    backward_with(wk_matmul(u, v), tu_f64(WK_SHAPE(), 3));
    expect_values(u->grad, 0, -3, 0, 6);
    expect_values(v->grad, 0, 3, 6, 9);
    /* linear: grad_b = column sums of g */
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2, 1), 1, 2));
    wk_tensor *w = leaf(tu_f64(WK_SHAPE(2, 1), 3, 4));
    wk_tensor *bias = leaf(tu_f64(WK_SHAPE(2), 0, 0));
    backward_with(wk_linear(x, w, bias), tu_f64(WK_SHAPE(2, 2), 1, 2, 3, 4));
    expect_values(bias->grad, 0, 4, 6);
    expect_values(w->grad, 0, 7, 10);
    expect_values(x->grad, 0, 11, 25);
}

Test(grad_liv, float32_grads_match_float64)
{
    /* the f32 backward of a batched linear, against the f64 one */
    wk_tensor *x64 = RND(4, 3, 7), *w64 = RND(5, 7), *b64 = RND(5);
    wk_tensor *x = leaf(wk_to_dtype(x64, WK_DTYPE_F32)), *w = leaf(wk_to_dtype(w64, WK_DTYPE_F32));
    wk_tensor *b = leaf(wk_to_dtype(b64, WK_DTYPE_F32));
    wk_tensor *g64 = RND(4, 3, 5);
    backward_with(wk_linear(x, w, b), wk_to_dtype(g64, WK_DTYPE_F32));
    leaf(x64);
    leaf(w64);
    leaf(b64);
    backward_with(wk_linear(x64, w64, b64), g64);
    wk_tensor *pairs[3][2] = {{x->grad, x64->grad}, {w->grad, w64->grad}, {b->grad, b64->grad}};
    for (int k = 0; k < 3; k++) {
        cr_assert_eq(pairs[k][0]->dtype, WK_DTYPE_F32);
        for (int64_t i = 0; i < wk_numel(pairs[k][1]); i++) {
            double e = tu_at(pairs[k][1], i);
            cr_assert(fabs(tu_at(pairs[k][0], i) - e) <= 1e-5 * (1 + fabs(e)), "grad %d[%lld]", k,
                      (long long)i);
        }
    }
}

/* ---- index ---- */

typedef struct {
    int dim;
    wk_tensor *index, *mask;
    bool transpose; /* input 0 holds x's transpose */
    double value;
} idx_case;

static wk_tensor *x_of(wk_tensor *t, const idx_case *c)
{
    return c->transpose ? wk_transpose(t, 0, 1) : t;
}

static wk_tensor *fn_index_select(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const idx_case *c = u;
    return wk_index_select(x_of(in[0], c), c->dim, c->index);
}

static wk_tensor *fn_gather(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const idx_case *c = u;
    return wk_gather(x_of(in[0], c), c->dim, c->index);
}

static wk_tensor *fn_scatter_add(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const idx_case *c = u;
    return wk_scatter_add(x_of(in[0], c), c->dim, c->index, in[1]);
}

static wk_tensor *fn_index_add(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const idx_case *c = u;
    return wk_index_add(x_of(in[0], c), c->dim, c->index, in[1]);
}

static wk_tensor *fn_masked_fill(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const idx_case *c = u;
    return wk_masked_fill(x_of(in[0], c), c->mask, c->value);
}

Test(grad_liv, index_select)
{
    idx_case c = {.dim = 0, .index = tu_i64(WK_SHAPE(5), 2, 0, 2, 2, 3)};
    GRADCHECK(fn_index_select, &c, "dim 0, repeated", RND(4, 3));
    c.dim = 1;
    GRADCHECK(fn_index_select, &c, "dim 1, repeated", RND(2, 4, 3));
    c.transpose = true;
    GRADCHECK(fn_index_select, &c, "transposed x", RND(4, 5));
    c = (idx_case){.dim = -1, .index = wk_to_dtype(tu_i64(WK_SHAPE(3), 1, 1, 0), WK_DTYPE_I32)};
    GRADCHECK(fn_index_select, &c, "int32 index, last dim", RND(3, 2));
    c = (idx_case){.dim = 0, .index = wk_empty(WK_SHAPE(0), WK_DTYPE_I64)};
    GRADCHECK(fn_index_select, &c, "empty index", RND(3, 2));
}

Test(grad_liv, index_select_by_hand)
{
    /* repeated rows: the gradient counts them */
    wk_tensor *x = leaf(wk_zeros(WK_SHAPE(3, 2), WK_DTYPE_F64));
    wk_tensor *idx = tu_i64(WK_SHAPE(4), 2, 0, 2, 2);
    backward_with(wk_index_select(x, 0, idx), wk_ones(WK_SHAPE(4, 2), WK_DTYPE_F64));
    expect_values(x->grad, 0, 1, 1, 0, 0, 3, 3);
}

Test(grad_liv, gather)
{
    idx_case c = {.dim = 1, .index = tu_i64(WK_SHAPE(2, 3), 0, 2, 0, 1, 1, 1)};
    GRADCHECK(fn_gather, &c, "dim 1, repeated", RND(2, 4));
    c.dim = 0;
    c.index = tu_i64(WK_SHAPE(2, 2), 1, 0, 1, 1);
    GRADCHECK(fn_gather, &c, "dim 0, smaller index", RND(3, 3));
    c.transpose = true;
    GRADCHECK(fn_gather, &c, "transposed x", RND(3, 3));
}

Test(grad_liv, scatter_add)
{
    idx_case c = {.dim = 1, .index = tu_i64(WK_SHAPE(2, 3), 0, 2, 0, 1, 1, 1)};
    GRADCHECK(fn_scatter_add, &c, "dim 1", RND(2, 4), RND(2, 3));
    GRADCHECK(fn_scatter_add, &c, "src larger than index", RND(2, 4), RND(3, 5));
    c.transpose = true;
    c.dim = 0;
    c.index = tu_i64(WK_SHAPE(2, 3), 1, 0, 1, 0, 0, 1);
    GRADCHECK(fn_scatter_add, &c, "transposed x", RND(4, 2), RND(2, 3));
}

Test(grad_liv, index_add)
{
    idx_case c = {.dim = 0, .index = tu_i64(WK_SHAPE(4), 1, 1, 0, 3)};
    GRADCHECK(fn_index_add, &c, "dim 0, repeated", RND(4, 3), RND(4, 3));
    c.dim = 1;
    GRADCHECK(fn_index_add, &c, "dim 1", RND(2, 5, 2), RND(2, 4, 2));
    c.transpose = true;
    c.dim = 0;
    GRADCHECK(fn_index_add, &c, "transposed x", RND(2, 4), RND(4, 2));
}

Test(grad_liv, masked_fill)
{
    idx_case c = {.mask = wk_gt_scalar(RND(3, 4), 0), .value = -7};
    GRADCHECK(fn_masked_fill, &c, "same shape", RND(3, 4));
    GRADCHECK(fn_masked_fill, &c, "x broadcast", RND(3, 1));
    GRADCHECK(fn_masked_fill, &c, "x broadcast (new dims)", RND(4));
    c.mask = wk_gt_scalar(RND(4), 0);
    c.transpose = true;
    GRADCHECK(fn_masked_fill, &c, "mask broadcast, transposed x", RND(4, 3));
}

/* cat or stack of the n inputs along dim u[0]; u[1]: stack; u[2]: transpose input 1 */
static wk_tensor *fn_join(wk_tensor *const *in, int n, void *u)
{
    const int *c = u;
    wk_tensor *ts[16];
    for (int k = 0; k < n; k++)
        ts[k] = c[2] && k == 1 ? wk_transpose(in[k], 0, 1) : in[k];
    return c[1] ? wk_stack(ts, n, c[0]) : wk_cat(ts, n, c[0]);
}

Test(grad_liv, cat_stack)
{
    int c[3] = {0, 0, 0};
    GRADCHECK(fn_join, c, "cat dim 0", RND(2, 3), RND(1, 3));
    c[0] = -1;
    GRADCHECK(fn_join, c, "cat dim -1", RND(2, 3), RND(2, 1), RND(2, 0));
    c[2] = 1;
    GRADCHECK(fn_join, c, "cat transposed", RND(2, 3), RND(4, 2));
    c[2] = 0;
    /* more inputs than a node holds: a tree of nodes */
    GRADCHECK(fn_join, c, "cat of 9", RND(2, 1), RND(2, 2), RND(2, 3), RND(2, 1), RND(2, 2),
              RND(2, 1), RND(2, 1), RND(2, 2), RND(2, 1));
    int s[3] = {1, 1, 0};
    GRADCHECK(fn_join, s, "stack dim 1", RND(2, 3), RND(2, 3));
    s[0] = 0;
    GRADCHECK(fn_join, s, "stack of 6", RND(3), RND(3), RND(3), RND(3), RND(3), RND(3));
    s[0] = -1;
    s[2] = 1;
    GRADCHECK(fn_join, s, "stack transposed", RND(2, 2), RND(2, 2), RND(2, 2));
}

Test(grad_liv, cat_same_tensor_twice)
{
    wk_tensor *x = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    wk_tensor *y = wk_cat((wk_tensor *[]){x, x, x, x, x}, 5, 0);
    backward_with(y, tu_f64(WK_SHAPE(10), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10));
    expect_values(x->grad, 0, 25, 30);
    cr_assert_null(wk_cat((wk_tensor *[]){x, wk_zeros(WK_SHAPE(2), WK_DTYPE_F64)}, 2, 0)->grad);
}

/* chunk into 3 and rejoin as (piece 2, piece 0): piece 1 gets no gradient */
static wk_tensor *fn_chunk(wk_tensor *const *in, int n, void *u)
{
    (void)n, (void)u;
    wk_tensor *p[3];
    if (wk_chunk(in[0], 3, 1, p, 3) != 3) return NULL;
    return wk_cat((wk_tensor *[]){p[2], p[0]}, 2, 1);
}

static wk_tensor *fn_split(wk_tensor *const *in, int n, void *u)
{
    (void)n, (void)u;
    wk_tensor *p[2];
    if (wk_split_sizes(in[0], (const int64_t[]){1, 3}, 2, 0, p) != 2) return NULL;
    return wk_stack((wk_tensor *[]){p[0], wk_narrow(p[1], 0, 2, 1)}, 2, 0);
}

Test(grad_liv, split_chunk)
{
    GRADCHECK(fn_chunk, NULL, "chunk", RND(2, 7));
    GRADCHECK(fn_split, NULL, "split_sizes", RND(4, 3));
}

/* ---- views ---- */

typedef enum {
    V_VIEW,
    V_RESHAPE_COPY,
    V_TRANSPOSE,
    V_PERMUTE,
    V_SQUEEZE,
    V_SQUEEZE_ALL,
    V_UNSQUEEZE,
    V_SLICE,
    V_SLICE_STEP,
    V_NARROW,
    V_SELECT,
    V_EXPAND,
    V_FLATTEN,
    V_CONTIGUOUS,
    V_CLONE,
    V_TO_DTYPE,
    V_CHAIN,
} view_op;

static wk_tensor *fn_view(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    wk_tensor *x = in[0];
    switch (*(const view_op *)u) {
    case V_VIEW: return wk_view(x, WK_SHAPE(3, -1));                            /* (2, 6) */
    case V_RESHAPE_COPY: return wk_reshape(wk_transpose(x, 0, 1), WK_SHAPE(-1)); /* copies */
    case V_TRANSPOSE: return wk_transpose(x, 0, -1);
    case V_PERMUTE: return wk_permute(x, WK_DIMS(2, 0, 1));
    case V_SQUEEZE: return wk_squeeze(x, 1);                                   /* (3, 1, 4) */
    case V_SQUEEZE_ALL: return wk_squeeze_all(x);
    case V_UNSQUEEZE: return wk_unsqueeze(x, -1);
    case V_SLICE: return wk_slice(x, 1, -3, 100, 1);
    case V_SLICE_STEP: return wk_slice(wk_transpose(x, 0, 1), 0, 1, 6, 2);
    case V_NARROW: return wk_narrow(x, 0, 1, 2);
    case V_SELECT: return wk_select(x, 1, -1);
    case V_EXPAND: return wk_expand(x, WK_SHAPE(2, 3, -1, 4));                  /* (3, 1, 4) */
    case V_FLATTEN: return wk_flatten(x, 1, 2);
    case V_CONTIGUOUS: return wk_contiguous(wk_transpose(x, 0, 1));
    case V_CLONE: return wk_clone(wk_slice(x, 0, 0, 3, 2));
    case V_TO_DTYPE: return wk_to_dtype(wk_transpose(x, 0, 1), WK_DTYPE_F64);
    case V_CHAIN: /* views of views, and a select of an expand */
        return wk_select(wk_expand(wk_unsqueeze(wk_narrow(wk_transpose(x, 0, 1), 0, 1, 2), 0),
                                   WK_SHAPE(3, -1, -1)),
                         2, 0);
    }
    return NULL;
}

Test(grad_liv, views)
{
    static const struct {
        view_op op;
        int64_t shape[4];
        int nd;
        const char *what;
    } cases[] = {
        {V_VIEW, {4, 3}, 2, "view"},
        {V_RESHAPE_COPY, {4, 3}, 2, "reshape (copy)"},
        {V_TRANSPOSE, {2, 3, 4}, 3, "transpose"},
        {V_PERMUTE, {2, 3, 4}, 3, "permute"},
        {V_SQUEEZE, {3, 1, 4}, 3, "squeeze"},
        {V_SQUEEZE, {3, 2, 4}, 3, "squeeze (no-op)"},
        {V_SQUEEZE_ALL, {1, 3, 1, 2}, 4, "squeeze_all"},
        {V_UNSQUEEZE, {3, 2}, 2, "unsqueeze"},
        {V_SLICE, {2, 5}, 2, "slice"},
        {V_SLICE_STEP, {3, 7}, 2, "slice with step"},
        {V_NARROW, {4, 3}, 2, "narrow"},
        {V_SELECT, {2, 3, 2}, 3, "select"},
        {V_EXPAND, {3, 1, 4}, 3, "expand"},
        {V_FLATTEN, {2, 3, 4}, 3, "flatten"},
        {V_CONTIGUOUS, {3, 4}, 2, "contiguous"},
        {V_CLONE, {5, 2}, 2, "clone"},
        {V_TO_DTYPE, {3, 4}, 2, "to_dtype (same dtype, copy)"},
        {V_CHAIN, {4, 3}, 2, "chain of views"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        view_op op = cases[i].op;
        GRADCHECK(fn_view, &op, cases[i].what, rnd(cases[i].shape, cases[i].nd));
    }
}

Test(grad_liv, view_edge_cases)
{
    view_op op = V_FLATTEN;
    GRADCHECK(fn_view, &op, "flatten of zero-size", RND(2, 0, 3));
    op = V_NARROW;
    GRADCHECK(fn_view, &op, "narrow of a 1-row", RND(3, 1));
    op = V_UNSQUEEZE;
    GRADCHECK(fn_view, &op, "unsqueeze of 0-d", RND());
}

/* to f32 and back: the f32 rounding needs a large step (the function is linear) */
static wk_tensor *fn_f32_cast(wk_tensor *const *in, int n, void *u)
{
    (void)n, (void)u;
    return wk_to_dtype(wk_to_dtype(in[0], WK_DTYPE_F32), WK_DTYPE_F64);
}

Test(grad_liv, to_dtype_casts_back)
{
    wk_tensor *a = leaf(tu_f64(WK_SHAPE(2), 1, 2));
    wk_tensor *y = wk_to_dtype(a, WK_DTYPE_F32);
    backward_with(y, tu_f32(WK_SHAPE(2), 0.5, 4));
    cr_assert_eq(a->grad->dtype, WK_DTYPE_F64);
    expect_values(a->grad, 0, 0.5, 4);
    /* casts to integer types are not differentiable */
    cr_assert(!wk_to_dtype(a, WK_DTYPE_I64)->requires_grad);
    cr_assert(!wk_to_dtype(a, WK_DTYPE_BOOL)->requires_grad);
    require_gradcheck();
    wk_tensor *x = RND(2, 3);
    cr_assert_eq(wk_gradcheck(fn_f32_cast, NULL, &x, 1, 1e-2, 1e-4, 1e-3), 0, "%s",
                 wk_last_error());
}

Test(grad_liv, slice_backward_by_hand)
{
    wk_tensor *x = leaf(wk_zeros(WK_SHAPE(2, 5), WK_DTYPE_F64));
    backward_with(wk_slice(x, 1, 1, 5, 2), tu_f64(WK_SHAPE(2, 2), 1, 2, 3, 4));
    expect_values(x->grad, 0, 0, 1, 0, 2, 0, 0, 3, 0, 4, 0);
    wk_tensor *z = leaf(wk_zeros(WK_SHAPE(3, 2), WK_DTYPE_F64));
    backward_with(wk_select(z, 0, 1), tu_f64(WK_SHAPE(2), 7, 8));
    expect_values(z->grad, 0, 0, 0, 7, 8, 0, 0);
    wk_tensor *e = leaf(tu_f64(WK_SHAPE(2, 1), 0, 0));
    backward_with(wk_expand(e, WK_SHAPE(3, 2, 2)), wk_ones(WK_SHAPE(3, 2, 2), WK_DTYPE_F64));
    expect_values(e->grad, 0, 6, 6);
}

Test(grad_liv, large_narrow_and_select)
{
    /* the parallel zeroing paths of the slice backward */
    wk_tensor *x = leaf(wk_zeros(WK_SHAPE(300, 501), WK_DTYPE_F32));
    wk_tensor *g = wk_ones(WK_SHAPE(300, 200), WK_DTYPE_F32);
    backward_with(wk_narrow(x, 1, 150, 200), g);
    for (int64_t i = 0; i < 300 * 501; i += 7) {
        int64_t c = i % 501;
        cr_assert_eq(tu_at(x->grad, i), c >= 150 && c < 350 ? 1.0 : 0.0, "element %lld",
                     (long long)i);
    }
}

/* ---- which ops record ---- */

Test(grad_liv, recording_rules)
{
    wk_tensor *x = leaf(RND(2, 3));
    /* detach (an alias) has no graph; contiguous of a contiguous tensor still records */
    wk_tensor *d = wk_detach(x);
    cr_assert(!d->requires_grad && !d->grad_fn);
    cr_assert(!wk_alias(x)->requires_grad);
    wk_tensor *c = wk_contiguous(x);
    cr_assert(c->requires_grad && c->grad_fn);
    cr_assert(wk_to_dtype(x, WK_DTYPE_F64)->grad_fn, "a same-dtype to_dtype records");
    /* nothing under no_grad */
    wk_no_grad_begin();
    cr_assert(!wk_transpose(x, 0, 1)->requires_grad);
    cr_assert(!wk_matmul(x, wk_transpose(x, 0, 1))->requires_grad);
    cr_assert(!wk_cat((wk_tensor *[]){x, x}, 2, 0)->requires_grad);
    wk_no_grad_end();
    /* integer results never require grad */
    cr_assert(!wk_one_hot(tu_i64(WK_SHAPE(2), 0, 1), 3)->requires_grad);
    wk_tensor *xi = tu_i64(WK_SHAPE(2), 1, 2);
    cr_assert(!wk_index_select(xi, 0, tu_i64(WK_SHAPE(1), 0))->requires_grad);
    /* split pieces are narrows */
    wk_tensor *p[2];
    cr_assert_eq(wk_split(x, 2, 1, p, 2), 2);
    cr_assert(p[0]->grad_fn && p[1]->grad_fn);
    /* frees with a graph attached leave nothing behind (checked by ASan) */
    wk_tensor *y = wk_matmul(x, wk_transpose(x, 0, 1));
    wk_tensor_free(y);
}

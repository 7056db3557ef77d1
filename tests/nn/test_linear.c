/* Linear, Embedding and Flatten: parameter names and shapes, torch's init bounds and
 * statistics, forward values against naive loops, gradients (hand-computed and gradchecks
 * through the modules, in float64), determinism and errors. */
#include <stdlib.h>

#include "test_util.h"

TestSuite(linear, .init = tu_setup, .fini = tu_teardown);

/* wk_gradcheck differentiates sum(w * y), so it needs mul and sum to record their
 * backward (the elementwise and reduce families); until they do, gradchecks are skipped
 * and only the hand-computed gradients run. */
static bool gradcheck_ready(void)
{
    wk_tensor *x = wk_requires_grad_(wk_ones(WK_SHAPE(1), WK_DTYPE_F64), true);
    wk_tensor *s = wk_sum(wk_mul(x, x), WK_ALL_DIMS, false);
    return s && s->requires_grad;
}
#define SKIP_MSG "wk_gradcheck needs the backward of mul and sum (not recorded yet)"

static void require_gradcheck(void)
{
    if (!gradcheck_ready()) cr_assert_fail(SKIP_MSG);
}

/* Replace m's parameters by float64 copies (persistent leaves), for gradchecks. */
static void module_to_f64(wk_module *m)
{
    for (int i = 0; i < m->nparams; i++) {
        wk_tensor *old = m->params[i].tensor;
        wk_no_grad_begin();
        wk_tensor *t = wk_keep(wk_to_dtype(old, WK_DTYPE_F64));
        wk_no_grad_end();
        cr_assert_not_null(t, "%s", wk_last_error());
        cr_assert_eq(t->frame, 0, "persistent");
        wk_requires_grad_(t, true);
        m->params[i].tensor = t;
        wk_tensor_free(old);
    }
}

static void check_param(const wk_named_param *p, const char *name, const int64_t *shape, int nd)
{
    cr_assert_str_eq(p->name, name);
    cr_assert(!p->is_buffer);
    wk_tensor *t = p->tensor;
    cr_assert_eq(t->ndim, nd, "%s ndim", name);
    for (int i = 0; i < nd; i++) cr_assert_eq(t->shape[i], shape[i], "%s dim %d", name, i);
    cr_assert_eq(t->dtype, WK_DTYPE_F32);
    cr_assert(t->requires_grad && !t->grad_fn);
    cr_assert_eq(t->frame, 0, "%s is persistent", name);
}

/* ---- Linear ---- */

Test(linear, names_and_shapes)
{
    wk_generator g = wk_generator_make(1);
    wk_module *m = wk_linear_new(5, 3, true, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "Linear");
    wk_named_param ps[4];
    cr_assert_eq(wk_module_named_parameters(m, true, ps, 4), 2);
    check_param(&ps[0], "weight", (const int64_t[]){3, 5}, 2);
    check_param(&ps[1], "bias", (const int64_t[]){3}, 1);
    cr_assert_eq(wk_module_num_parameters(m), 18);
    wk_module_free(m);
    m = wk_linear_new(5, 3, false, &g);
    cr_assert_eq(wk_module_named_parameters(m, true, ps, 4), 1);
    check_param(&ps[0], "weight", (const int64_t[]){3, 5}, 2);
    cr_assert_null(wk_module_param(m, "bias"));
    wk_module_free(m);
}

Test(linear, init_bounds_and_statistics)
{
    /* kaiming_uniform(a = sqrt(5)): gain sqrt(2 / 6), bound gain * sqrt(3 / in) = 1/sqrt(in) */
    int64_t in = 400, out = 300;
    wk_generator g = wk_generator_make(7);
    wk_module *m = wk_linear_new(in, out, true, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    double bound = 1 / sqrt((double)in);
    const char *names[2] = {"weight", "bias"};
    for (int k = 0; k < 2; k++) {
        wk_tensor *t = wk_module_param(m, names[k]);
        const float *p = wk_data(t);
        int64_t n = wk_numel(t);
        double sum = 0, sq = 0, mx = 0;
        for (int64_t i = 0; i < n; i++) {
            cr_assert(fabs(p[i]) <= bound, "%s[%lld] = %g outside +-%g", names[k], (long long)i,
                      p[i], bound);
            sum += p[i];
            sq += (double)p[i] * p[i];
            mx = fabs(p[i]) > mx ? fabs(p[i]) : mx;
        }
        double mean = sum / n, var = sq / n - mean * mean, want = bound * bound / 3;
        double se = bound / sqrt(3.0 * n); /* standard error of the mean */
        cr_assert(fabs(mean) < 5 * se, "%s mean %g", names[k], mean);
        double tol = k == 0 ? 0.02 : 0.25; /* 120000 vs 300 samples */
        cr_assert(fabs(var / want - 1) < tol, "%s variance %g, expected %g", names[k], var, want);
        cr_assert(mx > bound * (k == 0 ? 0.999 : 0.9), "%s max %g", names[k], mx);
    }
    /* the same stream gives the same parameters; another stream others */
    wk_generator g1 = wk_generator_make(7), g2 = wk_generator_make(8);
    wk_module *a = wk_linear_new(in, out, true, &g1), *b = wk_linear_new(in, out, true, &g2);
    size_t bytes = (size_t)(in * out) * sizeof(float);
    cr_assert_eq(memcmp(wk_data(wk_module_param(a, "weight")),
                        wk_data(wk_module_param(m, "weight")), bytes),
                 0);
    cr_assert_neq(memcmp(wk_data(wk_module_param(a, "weight")),
                         wk_data(wk_module_param(b, "weight")), bytes),
                  0);
    wk_module_free(a);
    wk_module_free(b);
    wk_module_free(m);
    /* NULL: the default generator */
    m = wk_linear_new(4, 2, true, NULL);
    cr_assert_not_null(m, "%s", wk_last_error());
    wk_module_free(m);
}

/* y[r][o] = sum_i x[r][i] w[o][i] + b[o], in double */
static void expect_linear(const wk_tensor *y, const wk_tensor *x, const wk_tensor *w,
                          const wk_tensor *b)
{
    int64_t in = w->shape[1], out = w->shape[0], rows = wk_numel(x) / in;
    cr_assert_eq(wk_numel(y), rows * out);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? tu_at(b, o) : 0;
            for (int64_t i = 0; i < in; i++) s += tu_at(x, r * in + i) * tu_at(w, o * in + i);
            double v = tu_at(y, r * out + o);
            cr_assert(fabs(v - s) <= 1e-5 * (1 + fabs(s)), "y[%lld][%lld] = %g, expected %g",
                      (long long)r, (long long)o, v, s);
        }
}

Test(linear, forward_values)
{
    wk_generator g = wk_generator_make(3);
    wk_module *m = wk_linear_new(7, 5, true, &g);
    wk_tensor *w = wk_module_param(m, "weight"), *b = wk_module_param(m, "bias");
    wk_tensor *x = wk_randn(WK_SHAPE(2, 3, 7), WK_DTYPE_F32, &g);
    wk_tensor *y = wk_module_forward(m, x);
    expect_shape(y, 2, 3, 5);
    expect_linear(y, x, w, b);
    cr_assert(y->requires_grad, "the parameters require grad");
    /* 1-d input, and a hand-computed case */
    wk_tensor *x1 = wk_randn(WK_SHAPE(7), WK_DTYPE_F32, &g);
    y = wk_module_forward(m, x1);
    expect_shape(y, 5);
    expect_linear(y, x1, w, b);
    wk_module *h = wk_linear_new(2, 1, true, NULL);
    wk_copy_(wk_module_param(h, "weight"), tu_f32(WK_SHAPE(1, 2), 2, -1));
    wk_copy_(wk_module_param(h, "bias"), tu_f32(WK_SHAPE(1), 0.5));
    expect_values(wk_module_forward(h, tu_f32(WK_SHAPE(2, 2), 1, 1, 3, 4)), 0, 1.5, 2.5);
    wk_module_free(h);
    /* without bias; a large batch (threaded GEMM) */
    wk_module *nb = wk_linear_new(33, 17, false, &g);
    wk_tensor *xb = wk_randn(WK_SHAPE(1000, 33), WK_DTYPE_F32, &g);
    expect_linear(wk_module_forward(nb, xb), xb, wk_module_param(nb, "weight"), NULL);
    wk_module_free(nb);
    wk_module_free(m);
}

static wk_tensor *fn_module(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    return wk_module_forward(u, in[0]);
}

Test(linear, gradcheck_through_module)
{
    wk_generator g = wk_generator_make(5);
    wk_module *m = wk_linear_new(4, 3, true, &g);
    module_to_f64(m);
    wk_tensor *w = wk_module_param(m, "weight"), *b = wk_module_param(m, "bias");
    cr_assert_eq(w->dtype, WK_DTYPE_F64);
    wk_tensor *x = wk_randn(WK_SHAPE(2, 5, 4), WK_DTYPE_F64, &g);
    /* a backward through the module fills the parameters' grads */
    wk_frame_begin();
    wk_tensor *y = wk_module_forward(m, x);
    cr_assert_eq(wk_backward_ex(y, wk_ones(WK_SHAPE(2, 5, 3), WK_DTYPE_F64), false), 0, "%s",
                 wk_last_error());
    wk_frame_end();
    cr_assert_not_null(w->grad);
    cr_assert_eq(w->grad->frame, 0);
    expect_values(b->grad, 0, 10, 10, 10); /* ten rows */
    wk_module_zero_grad(m);
    expect_values(b->grad, 0, 0, 0, 0);
    bool ready = gradcheck_ready();
    int rc = ready ? wk_gradcheck(fn_module, m, (wk_tensor *[]){x, w, b}, 3, 1e-6, 1e-7, 1e-5)
                   : 0;
    wk_module_free(m);
    if (!ready) cr_assert_fail(SKIP_MSG);
    cr_assert_eq(rc, 0, "%s", wk_last_error());
}

Test(linear, zero_sizes_and_errors)
{
    wk_module *m = wk_linear_new(0, 3, true, NULL);
    cr_assert_not_null(m, "%s", wk_last_error());
    expect_values(wk_module_param(m, "bias"), 0, 0, 0, 0); /* torch: bound 0 */
    expect_values(wk_module_forward(m, wk_empty(WK_SHAPE(2, 0), WK_DTYPE_F32)), 0, 0, 0, 0, 0,
                  0, 0);
    wk_module_free(m);
    m = wk_linear_new(3, 0, true, NULL);
    cr_assert_not_null(m, "%s", wk_last_error());
    expect_shape(wk_module_forward(m, wk_ones(WK_SHAPE(2, 3), WK_DTYPE_F32)), 2, 0);
    wk_module_free(m);
    expect_error(wk_linear_new(-1, 3, true, NULL),
                 "Linear: in_features and out_features must be >= 0, got -1 and 3");
    m = wk_linear_new(4, 2, true, NULL);
    expect_error(wk_module_forward(m, wk_ones(WK_SHAPE(3, 5), WK_DTYPE_F32)),
                 "linear: input shape [3, 5] and weight shape [2, 4] do not match");
    expect_error(wk_module_forward(m, wk_ones(WK_SHAPE(3, 4), WK_DTYPE_F64)),
                 "linear: dtypes float64 and float32 differ");
    expect_error(wk_module_forward(m, NULL), "");
    wk_module_free(m);
}

/* ---- Embedding ---- */

Test(linear, embedding_module_init)
{
    wk_generator g = wk_generator_make(11);
    wk_module *m = wk_embedding_new(300, 200, WK_NO_PADDING, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_str_eq(m->type, "Embedding");
    wk_named_param ps[2];
    cr_assert_eq(wk_module_named_parameters(m, true, ps, 2), 1);
    check_param(&ps[0], "weight", (const int64_t[]){300, 200}, 2);
    /* N(0, 1) */
    const float *p = wk_data(ps[0].tensor);
    double sum = 0, sq = 0;
    int64_t n = 300 * 200;
    for (int64_t i = 0; i < n; i++) {
        sum += p[i];
        sq += (double)p[i] * p[i];
    }
    double mean = sum / n, var = sq / n - mean * mean;
    cr_assert(fabs(mean) < 5 / sqrt((double)n), "mean %g", mean);
    cr_assert(fabs(var - 1) < 0.02, "variance %g", var);
    wk_module_free(m);
    /* the padding row starts at zero; negative padding_idx counts from the end */
    m = wk_embedding_new(5, 3, -2, &g);
    cr_assert_not_null(m, "%s", wk_last_error());
    wk_tensor *w = wk_module_param(m, "weight");
    for (int64_t r = 0; r < 5; r++)
        for (int64_t c = 0; c < 3; c++) {
            double v = wk_get(w, (const int64_t[]){r, c});
            cr_assert(r == 3 ? v == 0 : v != 0, "row %lld col %lld = %g", (long long)r,
                      (long long)c, v);
        }
    wk_module_free(m);
    expect_error(wk_embedding_new(5, 3, 5, NULL),
                 "Embedding: padding_idx 5 must be within [-5, 5)");
    expect_error(wk_embedding_new(5, 3, -6, NULL), "Embedding: padding_idx -6");
    expect_error(wk_embedding_new(-1, 3, WK_NO_PADDING, NULL),
                 "Embedding: num_embeddings and embedding_dim must be >= 0, got -1 and 3");
}

Test(linear, embedding_forward)
{
    wk_tensor *w = tu_f32(WK_SHAPE(4, 2), 0, 1, 10, 11, 20, 21, 30, 31);
    wk_tensor *y = wk_embedding(w, tu_i64(WK_SHAPE(2, 3), 3, 0, 3, 1, 2, 1));
    expect_shape(y, 2, 3, 2);
    expect_values(y, 0, 30, 31, 0, 1, 30, 31, 10, 11, 20, 21, 10, 11);
    /* 0-d index; int32; transposed (non-contiguous) indices; empty indices */
    y = wk_embedding(w, wk_squeeze_all(tu_i64(WK_SHAPE(1), 2)));
    expect_shape(y, 2);
    expect_values(y, 0, 20, 21);
    wk_tensor *i32 = wk_to_dtype(tu_i64(WK_SHAPE(2, 2), 0, 1, 2, 3), WK_DTYPE_I32);
    y = wk_embedding(w, wk_transpose(i32, 0, 1));
    expect_shape(y, 2, 2, 2);
    expect_values(y, 0, 0, 1, 20, 21, 10, 11, 30, 31);
    expect_shape(wk_embedding(w, wk_empty(WK_SHAPE(0, 3), WK_DTYPE_I64)), 0, 3, 2);
    cr_assert(!y->requires_grad);
    /* through the module */
    wk_module *m = wk_embedding_new(4, 2, WK_NO_PADDING, NULL);
    wk_copy_(wk_module_param(m, "weight"), w);
    y = wk_module_forward(m, tu_i64(WK_SHAPE(2), 1, 1));
    expect_values(y, 0, 10, 11, 10, 11);
    cr_assert(y->requires_grad);
    wk_module_free(m);
}

Test(linear, embedding_errors)
{
    wk_tensor *w = wk_zeros(WK_SHAPE(5, 3), WK_DTYPE_F32);
    expect_error(wk_embedding(w, tu_i64(WK_SHAPE(3), 1, 7, 2)),
                 "embedding: index 7 (at flat position 1) is out of range for 5 embeddings "
                 "(weight shape [5, 3])");
    expect_error(wk_embedding(w, tu_i64(WK_SHAPE(1), -1)), "embedding: index -1");
    expect_error(wk_embedding(w, tu_f32(WK_SHAPE(1), 0)),
                 "embedding: indices must be int64 or int32, got float32");
    expect_error(wk_embedding(wk_zeros(WK_SHAPE(5), WK_DTYPE_F32), tu_i64(WK_SHAPE(1), 0)),
                 "embedding: weight must be 2-d (num_embeddings, embedding_dim), got shape [5]");
    expect_error(wk_embedding(wk_zeros(WK_SHAPE(5, 3), WK_DTYPE_I64), tu_i64(WK_SHAPE(1), 0)),
                 "embedding: weight must be float32 or float64, got int64");
    expect_error(wk_embedding(wk_zeros(WK_SHAPE(5, 3), WK_DTYPE_BF16), tu_i64(WK_SHAPE(1), 0)),
                 "embedding: weight is bfloat16, a storage type; convert with wk_to_dtype");
    expect_error(wk_embedding_ex(w, tu_i64(WK_SHAPE(1), 0), 5),
                 "embedding: padding_idx 5 is out of range for 5 embeddings");
    expect_error(wk_embedding(w, NULL), "embedding: input 1 is NULL");
    wk_module *m = wk_embedding_new(5, 3, WK_NO_PADDING, NULL);
    expect_error(wk_module_forward(m, tu_i64(WK_SHAPE(2), 0, 5)), "embedding: index 5");
    wk_module_free(m);
}

Test(linear, embedding_backward_by_hand)
{
    /* repeated indices accumulate; the padding row gets nothing */
    wk_tensor *w = wk_requires_grad_(wk_zeros(WK_SHAPE(4, 2), WK_DTYPE_F64), true);
    wk_tensor *idx = tu_i64(WK_SHAPE(2, 3), 1, 3, 1, 0, 1, 3);
    wk_tensor *g = tu_f64(WK_SHAPE(2, 3, 2), 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12);
    cr_assert_eq(wk_backward_ex(wk_embedding(w, idx), g, false), 0, "%s", wk_last_error());
    expect_values(w->grad, 0, 7, 8, 1 + 5 + 9, 2 + 6 + 10, 0, 0, 3 + 11, 4 + 12);
    wk_tensor_free(w->grad);
    w->grad = NULL;
    cr_assert_eq(wk_backward_ex(wk_embedding_ex(w, idx, -1), g, false), 0, "%s",
                 wk_last_error());
    expect_values(w->grad, 0, 7, 8, 15, 18, 0, 0, 0, 0);
}

typedef struct {
    wk_tensor *idx;
    int64_t padding;
} emb_case;

static wk_tensor *fn_embedding(wk_tensor *const *in, int n, void *u)
{
    (void)n;
    const emb_case *c = u;
    return wk_embedding_ex(in[0], c->idx, c->padding);
}

Test(linear, embedding_gradcheck)
{
    wk_generator g = wk_generator_make(9);
    /* through the module, with a padding row: its gradient is exactly zero */
    wk_module *m = wk_embedding_new(6, 3, 0, &g);
    module_to_f64(m);
    wk_tensor *mw = wk_module_param(m, "weight");
    wk_tensor *ids = tu_i64(WK_SHAPE(5), 0, 2, 0, 4, 2);
    wk_frame_begin();
    wk_tensor *y = wk_module_forward(m, ids);
    cr_assert_eq(wk_backward_ex(y, wk_ones(WK_SHAPE(5, 3), WK_DTYPE_F64), false), 0, "%s",
                 wk_last_error());
    wk_frame_end();
    expect_values(mw->grad, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 0, 0, 0, 1, 1, 1, 0, 0, 0);
    wk_module_free(m);
    /* repeated indices, any index layout */
    require_gradcheck();
    wk_tensor *w = wk_randn(WK_SHAPE(6, 3), WK_DTYPE_F64, &g);
    emb_case c = {tu_i64(WK_SHAPE(2, 4), 5, 0, 5, 5, 2, 0, 1, 5), WK_NO_PADDING};
    cr_assert_eq(wk_gradcheck(fn_embedding, &c, &w, 1, 1e-6, 1e-7, 1e-5), 0, "%s",
                 wk_last_error());
    c.idx = wk_transpose(c.idx, 0, 1);
    cr_assert_eq(wk_gradcheck(fn_embedding, &c, &w, 1, 1e-6, 1e-7, 1e-5), 0, "%s",
                 wk_last_error());
}

Test(linear, embedding_backward_large_is_deterministic)
{
    /* a GPT-sized lookup: the f32 row sums equal a plain loop in index order, bit for bit,
     * with 1 or 2 threads */
    int64_t V = 65, D = 384, T = 8192;
    wk_generator g = wk_generator_make(4);
    wk_tensor *idx = wk_randint(0, V, WK_SHAPE(8, T / 8), &g);
    wk_tensor *go = wk_randn(WK_SHAPE(8, T / 8, D), WK_DTYPE_F32, &g);
    float *want = calloc((size_t)(V * D), sizeof *want);
    const int64_t *ip = wk_data(idx);
    const float *gp = wk_data(go);
    for (int64_t t = 0; t < T; t++)
        for (int64_t c = 0; c < D; c++) want[ip[t] * D + c] += gp[t * D + c];
    for (int threads = 1; threads <= 2; threads++) {
        wk_set_num_threads(threads);
        wk_tensor *w = wk_requires_grad_(wk_zeros(WK_SHAPE(V, D), WK_DTYPE_F32), true);
        cr_assert_eq(wk_backward_ex(wk_embedding(w, idx), go, false), 0, "%s", wk_last_error());
        cr_assert_eq(memcmp(wk_data(w->grad), want, (size_t)(V * D) * sizeof(float)), 0,
                     "threads %d", threads);
    }
    wk_set_num_threads(0);
    free(want);
}

/* ---- Flatten ---- */

Test(linear, flatten_module)
{
    wk_module *f = wk_flatten_new(1, -1);
    cr_assert_not_null(f);
    cr_assert_str_eq(f->type, "Flatten");
    cr_assert_eq(wk_module_named_parameters(f, true, NULL, 0), 0);
    wk_tensor *x = wk_randn(WK_SHAPE(2, 3, 4, 5), WK_DTYPE_F64, NULL);
    wk_tensor *y = wk_module_forward(f, x);
    expect_shape(y, 2, 60);
    for (int64_t i = 0; i < 120; i += 7) cr_assert_eq(tu_at(y, i), tu_at(x, i));
    wk_module *f01 = wk_flatten_new(0, 1);
    expect_shape(wk_module_forward(f01, x), 6, 4, 5);
    expect_error(wk_module_forward(f01, wk_ones(WK_SHAPE(3), WK_DTYPE_F32)),
                 "flatten: dim 1 is out of range for a 1-d tensor");
    wk_module_free(f01);
    bool ready = gradcheck_ready();
    int rc = ready ? wk_gradcheck(fn_module, f, &x, 1, 1e-6, 1e-7, 1e-5) : 0;
    wk_module_free(f);
    if (!ready) cr_assert_fail(SKIP_MSG);
    cr_assert_eq(rc, 0, "%s", wk_last_error());
}

/* ---- a small model: Embedding -> Flatten -> Linear, gradcheck of every parameter ---- */

typedef struct {
    wk_module *emb, *flat, *fc;
    wk_tensor *ids;
} tiny_model;

static wk_tensor *fn_tiny(wk_tensor *const *in, int n, void *u)
{
    (void)in, (void)n;
    const tiny_model *t = u;
    return wk_module_forward(t->fc, wk_module_forward(t->flat, wk_module_forward(t->emb, t->ids)));
}

Test(linear, gradcheck_small_model)
{
    require_gradcheck();
    wk_generator g = wk_generator_make(21);
    tiny_model t = {wk_embedding_new(7, 3, WK_NO_PADDING, &g), wk_flatten_new(1, -1),
                    wk_linear_new(12, 2, true, &g), tu_i64(WK_SHAPE(3, 4), 1, 6, 6, 0, 2, 2, 2,
                                                            3, 4, 5, 6, 1)};
    module_to_f64(t.emb);
    module_to_f64(t.fc);
    wk_tensor *in[3] = {wk_module_param(t.emb, "weight"), wk_module_param(t.fc, "weight"),
                        wk_module_param(t.fc, "bias")};
    int rc = wk_gradcheck(fn_tiny, &t, in, 3, 1e-6, 1e-7, 1e-5);
    wk_module_free(t.emb);
    wk_module_free(t.flat);
    wk_module_free(t.fc);
    cr_assert_eq(rc, 0, "%s", wk_last_error());
}

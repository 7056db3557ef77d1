/* Reductions and softmax against a naive long-double loop over every layout. */
#include "test_util.h"

TestSuite(reduce, .init = tu_setup, .fini = tu_teardown);

/* ---- inputs ---- */

static uint64_t rng_state;
static double rng_uniform(void) /* [0, 1) */
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* Values uniform in [-2, 2) for floats, integers in [-9, 9] (u8: [0, 9], bool: 0/1). */
static wk_tensor *rand_tensor(const int64_t *shape, int nd, wk_dtype dt, uint64_t seed)
{
    rng_state = seed;
    wk_tensor *t = wk_empty(shape, nd, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++) {
        double u = rng_uniform();
        if (wk_dtype_is_float(dt)) p[i] = 4 * u - 2;
        else if (dt == WK_DTYPE_U8) p[i] = floor(10 * u);
        else if (dt == WK_DTYPE_BOOL) p[i] = u < 0.5;
        else p[i] = floor(19 * u) - 9;
    }
    return wk_to_dtype(t, dt);
}

/* ---- the reference ---- */

typedef struct {
    int64_t nout, nred;
    int64_t shape[WK_MAX_DIMS]; /* expected output shape */
    int nd;
    double *vals;               /* nout values */
    int64_t *idx;               /* nout indices (arg ops) */
} ref_t;

/* Gather x's values per output (kept index) in the row-major order of the reduced dims,
 * then reduce each group naively in long double. */
static ref_t reference(wk_reduce_op op, const wk_tensor *x, const int *dims, int ndims,
                       bool keepdim, double arg)
{
    bool red[WK_MAX_DIMS] = {0};
    for (int i = 0; i < x->ndim; i++) red[i] = ndims == 0;
    for (int i = 0; i < ndims; i++) red[(dims[i] + x->ndim) % x->ndim] = true;
    ref_t r = {.nout = 1, .nred = 1};
    for (int d = 0; d < x->ndim; d++) {
        if (red[d]) r.nred *= x->shape[d];
        else r.nout *= x->shape[d];
        if (!red[d]) r.shape[r.nd++] = x->shape[d];
        else if (keepdim) r.shape[r.nd++] = 1;
    }
    double *g = malloc(sizeof(double) * (size_t)(r.nout * r.nred + 1));
    r.vals = malloc(sizeof(double) * (size_t)(r.nout + 1));
    r.idx = malloc(sizeof(int64_t) * (size_t)(r.nout + 1));
    int64_t n = wk_numel(x);
    for (int64_t e = 0; e < n; e++) {
        int64_t ix[WK_MAX_DIMS], rem = e, o = 0, k = 0;
        for (int d = x->ndim - 1; d >= 0; d--) {
            ix[d] = rem % x->shape[d];
            rem /= x->shape[d];
        }
        for (int d = 0; d < x->ndim; d++) {
            if (red[d]) k = k * x->shape[d] + ix[d];
            else o = o * x->shape[d] + ix[d];
        }
        g[o * r.nred + k] = wk_get(x, ix);
    }
    for (int64_t o = 0; o < r.nout; o++) {
        const double *v = g + o * r.nred;
        int64_t m = r.nred;
        long double s = 0, s2 = 0, res = 0;
        bool nan = false;
        int64_t best = 0;
        for (int64_t i = 0; i < m; i++) {
            s += v[i];
            nan |= isnan(v[i]);
        }
        long double mean = s / m;
        switch (op) {
        case WK_REDUCE_SUM: res = s; break;
        case WK_REDUCE_MEAN: res = m ? mean : NAN; break;
        case WK_REDUCE_AMAX:
        case WK_REDUCE_AMIN:
        case WK_REDUCE_MAX:
        case WK_REDUCE_MIN:
        case WK_REDUCE_ARGMAX:
        case WK_REDUCE_ARGMIN: {
            bool mx = op == WK_REDUCE_AMAX || op == WK_REDUCE_MAX || op == WK_REDUCE_ARGMAX;
            for (int64_t i = 1; i < m && !isnan(v[best]); i++)
                if (isnan(v[i]) || (mx ? v[i] > v[best] : v[i] < v[best])) best = i;
            res = v[best];
            break;
        }
        case WK_REDUCE_VAR:
        case WK_REDUCE_STD:
            for (int64_t i = 0; i < m; i++) s2 += (v[i] - mean) * (v[i] - mean);
            res = s2 / (m - arg > 0 ? m - arg : 0);
            if (m == 0) res = NAN;
            if (op == WK_REDUCE_STD) res = sqrtl(res);
            break;
        case WK_REDUCE_LOGSUMEXP: {
            double mx = -INFINITY;
            for (int64_t i = 0; i < m; i++) mx = v[i] > mx ? v[i] : mx;
            double sh = isinf(mx) ? 0 : mx;
            for (int64_t i = 0; i < m; i++) s2 += expl((long double)v[i] - sh);
            res = nan ? NAN : logl(s2) + sh;
            break;
        }
        case WK_REDUCE_NORM:
            res = arg == INFINITY ? 0 : arg == -INFINITY ? INFINITY : 0;
            for (int64_t i = 0; i < m; i++) {
                long double a = fabsl(v[i]);
                if (arg == INFINITY) res = a > res ? a : res;
                else if (arg == -INFINITY) res = a < res ? a : res;
                else if (arg == 0) res += v[i] != 0;
                else res += powl(a, arg);
            }
            if (nan && arg != 0) res = NAN;
            else if (isfinite(arg) && arg != 0) res = powl(res, 1 / (long double)arg);
            break;
        default: break;
        }
        r.vals[o] = (double)res;
        r.idx[o] = best;
    }
    free(g);
    return r;
}

static void ref_free(ref_t *r)
{
    free(r->vals);
    free(r->idx);
}

/* Run op and compare shape, dtype and values with the reference. */
static void check(wk_reduce_op op, wk_tensor *x, const int *dims, int ndims, bool keepdim,
                  double arg, const char *what)
{
    bool want_idx = op == WK_REDUCE_MAX || op == WK_REDUCE_MIN;
    wk_tensor *ind = NULL;
    wk_tensor *y = wk_reduce(op, x, dims, ndims, keepdim, arg, want_idx ? &ind : NULL);
    cr_assert_not_null(y, "%s %s: %s", what, wk_reduce_op_name(op), wk_last_error());
    ref_t r = reference(op, x, dims, ndims, keepdim, arg);
    cr_assert_eq(y->ndim, r.nd, "%s %s: ndim %d, expected %d", what, wk_reduce_op_name(op),
                 y->ndim, r.nd);
    for (int d = 0; d < r.nd; d++)
        cr_assert_eq(y->shape[d], r.shape[d], "%s %s: dim %d", what, wk_reduce_op_name(op), d);
    bool is_idx = op == WK_REDUCE_ARGMAX || op == WK_REDUCE_ARGMIN;
    wk_dtype want = is_idx ? WK_DTYPE_I64
                    : op == WK_REDUCE_SUM && !wk_dtype_is_float(x->dtype) ? WK_DTYPE_I64
                                                                          : x->dtype;
    cr_assert_eq(y->dtype, want, "%s %s: dtype %s", what, wk_reduce_op_name(op),
                 wk_dtype_name(y->dtype));
    double tol = x->dtype == WK_DTYPE_F32 ? 2e-6 : x->dtype == WK_DTYPE_F64 ? 1e-12 : 0;
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s", what, wk_reduce_op_name(op));
    if (is_idx) {
        for (int64_t o = 0; o < r.nout; o++) r.vals[o] = (double)r.idx[o];
        tu_expect_values(y, r.vals, r.nout, 0, 0, msg);
    } else {
        tu_expect_values(y, r.vals, r.nout, tol, tol, msg);
    }
    if (want_idx) {
        cr_assert_not_null(ind, "%s", msg);
        cr_assert_eq(ind->dtype, WK_DTYPE_I64);
        cr_assert(wk_same_shape(ind, y), "%s: indices shape", msg);
        for (int64_t o = 0; o < r.nout; o++) r.vals[o] = (double)r.idx[o];
        tu_expect_values(ind, r.vals, r.nout, 0, 0, msg);
    }
    ref_free(&r);
}

/* Every float op (and norm order) over one input and dims. */
static void check_float_ops(wk_tensor *x, const int *dims, int ndims, bool keepdim,
                            const char *what)
{
    static const wk_reduce_op ops[] = {WK_REDUCE_SUM, WK_REDUCE_MEAN, WK_REDUCE_AMAX,
                                       WK_REDUCE_AMIN, WK_REDUCE_LOGSUMEXP};
    for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
        check(ops[i], x, dims, ndims, keepdim, 0, what);
    check(WK_REDUCE_VAR, x, dims, ndims, keepdim, 1, what);
    check(WK_REDUCE_VAR, x, dims, ndims, keepdim, 0, what);
    check(WK_REDUCE_STD, x, dims, ndims, keepdim, 1, what);
    static const double ps[] = {2, 1, INFINITY, -INFINITY, 0, 3, 0.5, -1};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        check(WK_REDUCE_NORM, x, dims, ndims, keepdim, ps[i], what);
    if (ndims <= 1) {
        int d = ndims ? dims[0] : 0;
        if (ndims || x->ndim <= 1) {
            check(WK_REDUCE_MAX, x, &d, 1, keepdim, 0, what);
            check(WK_REDUCE_MIN, x, &d, 1, keepdim, 0, what);
        }
        check(WK_REDUCE_ARGMAX, x, dims, ndims, keepdim, 0, what);
        check(WK_REDUCE_ARGMIN, x, dims, ndims, keepdim, 0, what);
    }
}

/* Reductions over first, middle, last, several, negative and all dims, keepdim on/off. */
static void check_dim_sets(wk_tensor *x, const char *what)
{
    static const int sets[][3] = {{0}, {1}, {2}, {-1}, {0, 2}, {-1, -3}, {2, 1}, {0, 1, 2}};
    static const int lens[] = {1, 1, 1, 1, 2, 2, 2, 3};
    for (int keep = 0; keep < 2; keep++) {
        for (size_t s = 0; s < sizeof lens / sizeof lens[0]; s++)
            check_float_ops(x, sets[s], lens[s], keep, what);
        check_float_ops(x, WK_ALL_DIMS, keep, what);
    }
}

Test(reduce, float_ops_contiguous_f32_f64)
{
    check_dim_sets(rand_tensor(WK_SHAPE(3, 4, 5), WK_DTYPE_F32, 1), "f32 [3,4,5]");
    check_dim_sets(rand_tensor(WK_SHAPE(3, 4, 5), WK_DTYPE_F64, 2), "f64 [3,4,5]");
    /* Long inner rows, so the column and row kernels see more than one tile / block. */
    check_dim_sets(rand_tensor(WK_SHAPE(3, 37, 300), WK_DTYPE_F32, 3), "f32 [3,37,300]");
    check_dim_sets(rand_tensor(WK_SHAPE(2, 5000, 3), WK_DTYPE_F64, 4), "f64 [2,5000,3]");
}

Test(reduce, float_ops_non_contiguous)
{
    wk_tensor *a = rand_tensor(WK_SHAPE(5, 3, 12), WK_DTYPE_F32, 5);
    check_dim_sets(wk_permute(a, WK_DIMS(2, 0, 1)), "permuted f32");
    check_dim_sets(wk_transpose(a, 0, 2), "transposed f32");
    wk_tensor *b = rand_tensor(WK_SHAPE(6, 40, 11), WK_DTYPE_F64, 6);
    check_dim_sets(wk_slice(wk_slice(b, 1, 1, 39, 3), 2, 2, 11, 1), "sliced f64");
    wk_tensor *row = rand_tensor(WK_SHAPE(1, 9, 1), WK_DTYPE_F64, 7);
    check_dim_sets(wk_expand(row, WK_SHAPE(4, 9, 10)), "expanded f64");
    /* Rows made of several runs (a slice), also long enough for blocks inside runs. */
    wk_tensor *runs = wk_slice(rand_tensor(WK_SHAPE(5, 300), WK_DTYPE_F64, 12), 1, 50, 250, 1);
    check_float_ops(runs, WK_ALL_DIMS, false, "runs of a slice");
    wk_tensor *lr = wk_slice(rand_tensor(WK_SHAPE(3, 9000), WK_DTYPE_F32, 13), 1, 0, 8500, 1);
    check_float_ops(lr, WK_ALL_DIMS, true, "long runs of a slice");
    wk_tensor *r3 = wk_slice(rand_tensor(WK_SHAPE(4, 3, 5, 100), WK_DTYPE_F64, 15), 3, 0, 80, 1);
    check_float_ops(r3, WK_DIMS(0, 2, 3), false, "three reduced dims of a slice");
    check_float_ops(r3, WK_ALL_DIMS, false, "four reduced dims of a slice");
    wk_tensor *c = rand_tensor(WK_SHAPE(64, 30), WK_DTYPE_F32, 8);
    check_float_ops(wk_transpose(c, 0, 1), WK_DIMS(0), false, "transposed [30,64] dim 0");
    check_float_ops(wk_transpose(c, 0, 1), WK_DIMS(1), true, "transposed [30,64] dim 1");
}

Test(reduce, large_parallel_paths)
{
    /* 1000x1001: rows, columns and the whole tensor on more than one thread. */
    wk_set_num_threads(2);
    for (int t = 0; t < 2; t++) {
        wk_dtype dt = t ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *x = rand_tensor(WK_SHAPE(1000, 1001), dt, 9 + t);
        static const wk_reduce_op ops[] = {WK_REDUCE_SUM, WK_REDUCE_MEAN, WK_REDUCE_AMAX,
                                           WK_REDUCE_VAR, WK_REDUCE_LOGSUMEXP, WK_REDUCE_NORM,
                                           WK_REDUCE_ARGMAX, WK_REDUCE_MIN};
        for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++) {
            double arg = ops[i] == WK_REDUCE_NORM ? 2 : ops[i] == WK_REDUCE_VAR ? 1 : 0;
            check(ops[i], x, WK_DIMS(0), false, arg, "1000x1001 dim 0");
            check(ops[i], x, WK_DIMS(1), true, arg, "1000x1001 dim 1");
            check(ops[i], wk_transpose(x, 0, 1), WK_DIMS(1), false, arg, "transposed dim 1");
            if (ops[i] != WK_REDUCE_MIN)
                check(ops[i], x, WK_ALL_DIMS, false, arg, "1000x1001 all");
            /* One long strided row: its blocks are split across threads. */
            wk_tensor *every2 = wk_slice(wk_view(x, WK_SHAPE(-1)), 0, 1, 1000 * 1001, 2);
            check(ops[i], every2, WK_DIMS(0), false, arg, "strided long row");
        }
    }
}

Test(reduce, integer_dtypes)
{
    static const wk_dtype dts[] = {WK_DTYPE_I32, WK_DTYPE_I64, WK_DTYPE_U8, WK_DTYPE_BOOL};
    for (size_t t = 0; t < sizeof dts / sizeof dts[0]; t++) {
        wk_tensor *x = rand_tensor(WK_SHAPE(4, 30, 7), dts[t], 20 + t);
        wk_tensor *views[] = {x, wk_transpose(x, 0, 2), wk_slice(x, 1, 1, 30, 4)};
        for (int v = 0; v < 3; v++) {
            const char *w = wk_dtype_name(dts[t]);
            check(WK_REDUCE_SUM, views[v], WK_DIMS(0), false, 0, w);
            check(WK_REDUCE_SUM, views[v], WK_DIMS(2), true, 0, w);
            check(WK_REDUCE_SUM, views[v], WK_DIMS(0, 2), false, 0, w);
            check(WK_REDUCE_SUM, views[v], WK_ALL_DIMS, false, 0, w);
            check(WK_REDUCE_AMAX, views[v], WK_DIMS(1), false, 0, w);
            check(WK_REDUCE_AMIN, views[v], WK_DIMS(0, -1), true, 0, w);
            for (int d = 0; d < 3; d++) {
                check(WK_REDUCE_ARGMAX, views[v], &d, 1, false, 0, w);
                check(WK_REDUCE_ARGMIN, views[v], &d, 1, true, 0, w);
                check(WK_REDUCE_MAX, views[v], &d, 1, false, 0, w);
                check(WK_REDUCE_MIN, views[v], &d, 1, false, 0, w);
            }
            check(WK_REDUCE_ARGMAX, views[v], WK_ALL_DIMS, false, 0, w);
        }
        cr_assert_eq(wk_amax(x, WK_DIMS(0), false)->dtype, dts[t]);
    }
    /* int64 sums are exact beyond 2^53 and wrap like int64. */
    wk_tensor *big = tu_i64(WK_SHAPE(3), (int64_t)1 << 60, 3, -1);
    cr_assert_eq(*(int64_t *)wk_data(wk_sum(big, WK_ALL_DIMS, false)), ((int64_t)1 << 60) + 2);
    wk_tensor *wrap = tu_i64(WK_SHAPE(2), INT64_MAX, 1);
    cr_assert_eq(*(int64_t *)wk_data(wk_sum(wrap, WK_ALL_DIMS, false)), INT64_MIN);
    wk_tensor *b = wk_from_array((uint8_t[]){1, 0, 1, 1}, WK_SHAPE(2, 2), WK_DTYPE_BOOL);
    expect_values(wk_sum(b, WK_DIMS(1), false), 0, 1, 2);
    expect_values(wk_amax(b, WK_DIMS(1), false), 0, 1, 1);
}

Test(reduce, hand_values_and_ties)
{
    wk_tensor *x = tu_f32(WK_SHAPE(2, 3), 1, 5, 5, -2, -2, 0);
    expect_values(wk_sum(x, WK_DIMS(1), false), 0, 11, -4);
    expect_values(wk_mean(x, WK_DIMS(0), true), 0, -0.5, 1.5, 2.5);
    expect_shape(wk_mean(x, WK_DIMS(0), true), 1, 3);
    expect_values(wk_var(x, WK_DIMS(1), 1, false), 1e-6, 16.0 / 3, 4.0 / 3);
    expect_values(wk_std(x, WK_DIMS(1), 0, false), 1e-6, sqrt(32.0 / 9), sqrt(8.0 / 9));
    expect_values(wk_norm(x, 1, WK_ALL_DIMS, false), 0, 15);
    expect_values(wk_norm(x, INFINITY, WK_DIMS(1), false), 0, 5, 2);
    expect_values(wk_norm(x, -INFINITY, WK_DIMS(1), false), 0, 1, 0);
    expect_values(wk_norm(x, 0, WK_DIMS(1), false), 0, 3, 2);
    expect_values(wk_logsumexp(x, WK_DIMS(0), false), 1e-6, log(exp(1) + exp(-2)),
                  log(exp(5) + exp(-2)), log(exp(5) + 1));
    wk_tensor *idx;
    wk_tensor *m = wk_max_dim(x, 1, false, &idx);
    expect_values(m, 0, 5, 0);
    expect_values(idx, 0, 1, 2); /* first occurrence of a tie */
    m = wk_min_dim(x, -1, true, &idx);
    expect_shape(m, 2, 1);
    expect_values(m, 0, 1, -2);
    expect_values(idx, 0, 0, 0);
    expect_values(wk_argmax(x, 0, false), 0, 0, 0, 0);
    expect_values(wk_argmin(x, 1, false), 0, 0, 0);
    cr_assert_not_null(wk_max_dim(x, 0, false, NULL));
    /* NaN propagates: max/min of a row with NaN is NaN and the index points at it. */
    wk_tensor *n = tu_f64(WK_SHAPE(2, 4), 1, NAN, 9, NAN, 3, 2, 1, 0);
    expect_values(wk_amax(n, WK_DIMS(1), false), 0, NAN, 3);
    expect_values(wk_amin(n, WK_DIMS(1), false), 0, NAN, 0);
    expect_values(wk_argmax(n, 1, false), 0, 1, 0);
    expect_values(wk_argmin(n, 1, false), 0, 1, 3);
    expect_values(wk_max_dim(n, 1, false, &idx), 0, NAN, 3);
    expect_values(idx, 0, 1, 0);
    expect_values(wk_sum(n, WK_DIMS(1), false), 0, NAN, 6);
    expect_values(wk_norm(n, INFINITY, WK_DIMS(1), false), 0, NAN, 3);
    expect_values(wk_logsumexp(n, WK_DIMS(1), false), 1e-12, NAN,
                  log(exp(3) + exp(2) + exp(1) + 1));
    /* The same through the column kernel (NaN in the reduced dim of a wide tensor). */
    wk_tensor *w = wk_empty(WK_SHAPE(3, 20), WK_DTYPE_F32);
    wk_fill_(w, 1);
    ((float *)wk_data(w))[20 + 7] = NAN;
    ((float *)wk_data(w))[40 + 8] = 4;
    wk_tensor *am = wk_argmax(w, 0, false), *mx = wk_amax(w, WK_DIMS(0), false);
    cr_assert_eq(tu_at(am, 7), 1);
    cr_assert_eq(tu_at(am, 8), 2);
    cr_assert_eq(tu_at(am, 0), 0);
    cr_assert(isnan(tu_at(mx, 7)));
    /* A NaN past the first lanes of a long contiguous row. */
    wk_tensor *lr = wk_empty(WK_SHAPE(2, 40), WK_DTYPE_F64);
    /* Filled by hand: wk_fill_ on float64 trips UBSan (copy.c stores through a misaligned
     * 8-byte buffer). */
    for (int k = 0; k < 80; k++) ((double *)wk_data(lr))[k] = -1;
    ((double *)wk_data(lr))[13] = NAN;
    ((double *)wk_data(lr))[40 + 17] = 2;
    expect_values(wk_amax(lr, WK_DIMS(1), false), 0, NAN, 2);
    expect_values(wk_amin(lr, WK_DIMS(1), false), 0, NAN, -1);
    expect_values(wk_argmax(lr, 1, false), 0, 13, 17);
    expect_values(wk_argmin(lr, 1, false), 0, 13, 0);
    expect_values(wk_norm(lr, -INFINITY, WK_DIMS(1), false), 0, NAN, 1);
    expect_values(wk_logsumexp(lr, WK_DIMS(1), false), 0, NAN, log(39 * exp(-1) + exp(2)));
    /* Flat argmax of a slice (several runs): the NaN in the last run wins. */
    wk_tensor *sl = rand_tensor(WK_SHAPE(3, 100), WK_DTYPE_F32, 14);
    ((float *)wk_data(sl))[215] = NAN;
    ((float *)wk_data(sl))[112] = 7;
    wk_tensor *slv = wk_slice(sl, 1, 10, 90, 1);
    expect_values(wk_reduce(WK_REDUCE_ARGMAX, slv, WK_ALL_DIMS, false, 0, NULL), 0, 165);
    expect_values(wk_reduce(WK_REDUCE_ARGMIN, slv, WK_ALL_DIMS, true, 0, NULL), 0, 165);
    ((float *)wk_data(sl))[215] = 0;
    expect_values(wk_reduce(WK_REDUCE_ARGMAX, slv, WK_ALL_DIMS, false, 0, NULL), 0, 82);
    expect_values(wk_amax(slv, WK_ALL_DIMS, false), 0, 7);
    /* logsumexp with infinities. */
    wk_tensor *inf = tu_f64(WK_SHAPE(3, 2), INFINITY, 1, -INFINITY, -INFINITY, INFINITY,
                            -INFINITY);
    expect_values(wk_logsumexp(inf, WK_DIMS(1), false), 0, INFINITY, -INFINITY, INFINITY);
}

Test(reduce, zero_size_and_one_element)
{
    wk_tensor *e = wk_empty(WK_SHAPE(0, 3), WK_DTYPE_F32);
    expect_values(wk_sum(e, WK_DIMS(0), false), 0, 0, 0, 0);
    expect_values(wk_mean(e, WK_DIMS(0), false), 0, NAN, NAN, NAN);
    expect_values(wk_var(e, WK_DIMS(0), 1, false), 0, NAN, NAN, NAN);
    expect_values(wk_logsumexp(e, WK_DIMS(0), false), 0, -INFINITY, -INFINITY, -INFINITY);
    expect_values(wk_norm(e, 2, WK_DIMS(0), false), 0, 0, 0, 0);
    expect_values(wk_norm(e, 0, WK_DIMS(0), false), 0, 0, 0, 0);
    expect_values(wk_sum(e, WK_ALL_DIMS, false), 0, 0);
    expect_shape(wk_sum(e, WK_DIMS(1), false), 0);
    expect_shape(wk_amax(e, WK_DIMS(1), true), 0, 1);
    expect_shape(wk_argmax(e, 1, false), 0);
    expect_shape(wk_softmax(e, 0), 0, 3);
    expect_shape(wk_softmax(e, 1), 0, 3);
    wk_tensor *ei = wk_empty(WK_SHAPE(2, 0), WK_DTYPE_I32);
    expect_values(wk_sum(ei, WK_DIMS(1), false), 0, 0, 0);
    expect_error(wk_amax(e, WK_DIMS(0), false),
                 "amax: cannot reduce an empty dim 0 of a tensor of shape [0, 3] (no "
                 "identity)");
    expect_error(wk_amin(e, WK_ALL_DIMS, false), "amin: cannot reduce an empty dim 0");
    expect_error(wk_max_dim(ei, 1, false, NULL), "max_dim: cannot reduce an empty dim 1");
    expect_error(wk_min_dim(ei, -1, false, NULL), "min_dim: cannot reduce an empty dim 1");
    expect_error(wk_argmax(e, 0, false), "argmax: cannot reduce an empty dim 0");
    expect_error(wk_argmin(e, 0, false), "argmin: cannot reduce an empty dim 0");
    expect_error(wk_norm(e, INFINITY, WK_DIMS(0), false), "norm: cannot reduce an empty dim 0");
    expect_error(wk_norm(e, -INFINITY, WK_DIMS(0), false), "norm: cannot reduce an empty dim");

    wk_tensor *one = tu_f32(WK_SHAPE(1, 1), 2.5f);
    expect_values(wk_sum(one, WK_ALL_DIMS, false), 0, 2.5);
    expect_shape(wk_sum(one, WK_ALL_DIMS, true), 1, 1);
    expect_values(wk_var(one, WK_DIMS(0), 1, false), 0, NAN);
    expect_values(wk_var(one, WK_DIMS(0), 0, false), 0, 0);
    expect_values(wk_softmax(one, 1), 0, 1);
    expect_values(wk_log_softmax(one, 0), 0, 0);
    expect_values(wk_argmax(one, 1, false), 0, 0);
    wk_tensor *s = wk_sum(one, WK_ALL_DIMS, false);
    cr_assert_eq(s->ndim, 0);
    /* 0-d tensors reduce over dim 0 / -1 and stay 0-d. */
    expect_values(wk_sum(s, WK_DIMS(0), false), 0, 2.5);
    cr_assert_eq(wk_sum(s, WK_DIMS(-1), true)->ndim, 0);
    expect_values(wk_mean(s, WK_ALL_DIMS, false), 0, 2.5);
    expect_values(wk_softmax(s, 0), 0, 1);
    expect_values(wk_argmax(s, 0, false), 0, 0);
    expect_error(wk_sum(s, WK_DIMS(1), false), "sum: dim 1 is out of range for a 0-d tensor");
    expect_error(wk_sum(s, WK_DIMS(0, -1), false), "sum: dim -1 appears more than once");
}

Test(reduce, f32_sum_accuracy)
{
    int64_t n = 10000000;
    wk_tensor *x = wk_empty(WK_SHAPE(n), WK_DTYPE_F32);
    wk_fill_(x, 0.1);
    double exact = (double)0.1f * (double)n;
    double got = wk_item(wk_sum(x, WK_ALL_DIMS, false));
    cr_assert(fabs(got - exact) / exact < 1e-6, "sum %.9g, exact %.9g", got, exact);
    got = wk_item(wk_mean(x, WK_ALL_DIMS, false));
    cr_assert(fabs(got - 0.1f) / 0.1 < 1e-6, "mean %.9g", got);
    /* The same values as a column sum (1e7 rows of 2 lanes would be slow; 1e6 x 10). */
    wk_tensor *c = wk_view(x, WK_SHAPE(1000000, 10));
    wk_tensor *cs = wk_sum(c, WK_DIMS(0), false);
    for (int j = 0; j < 10; j++)
        cr_assert(fabs(tu_at(cs, j) - exact / 10) / (exact / 10) < 1e-6);
}

Test(reduce, variance_is_stable_for_large_means)
{
    int64_t n = 100000;
    wk_tensor *x = wk_empty(WK_SHAPE(n), WK_DTYPE_F32);
    float *p = wk_data(x);
    rng_state = 42;
    for (int64_t i = 0; i < n; i++) p[i] = 1e4f + (float)(rng_uniform() - 0.5) * 0.01f;
    check(WK_REDUCE_VAR, x, WK_ALL_DIMS, false, 1, "var 1e4 + noise");
    check(WK_REDUCE_STD, x, WK_ALL_DIMS, false, 0, "std 1e4 + noise");
    wk_tensor *c = wk_view(x, WK_SHAPE(1000, 100));
    check(WK_REDUCE_VAR, c, WK_DIMS(0), false, 1, "column var 1e4 + noise");
    check(WK_REDUCE_VAR, c, WK_DIMS(1), false, 1, "row var 1e4 + noise");
    /* f64 with a mean of 1e9 and unit noise. */
    wk_tensor *d = wk_empty(WK_SHAPE(4096 * 3 + 5), WK_DTYPE_F64);
    double *q = wk_data(d);
    for (int64_t i = 0; i < wk_numel(d); i++) q[i] = 1e9 + (double)(i % 7) - 3;
    check(WK_REDUCE_VAR, d, WK_ALL_DIMS, false, 1, "var 1e9 + noise");
}

/* Bitwise equality of two tensors of the same shape and dtype. */
static void expect_identical(wk_tensor *a, wk_tensor *b, const char *what)
{
    cr_assert(a && b && wk_same_shape(a, b) && a->dtype == b->dtype, "%s", what);
    cr_assert(!memcmp(wk_data(a), wk_data(b), (size_t)wk_numel(a) * wk_dtype_size(a->dtype)),
              "%s: results differ between 1 and 2 threads", what);
}

Test(reduce, results_do_not_depend_on_thread_count)
{
    wk_tensor *x = rand_tensor(WK_SHAPE(1000, 1001), WK_DTYPE_F32, 77);
    wk_tensor *big = rand_tensor(WK_SHAPE(3, 200000), WK_DTYPE_F64, 78);
    wk_tensor *xt = wk_transpose(x, 0, 1);
    wk_tensor *r[2][13];
    for (int t = 0; t < 2; t++) {
        wk_set_num_threads(t + 1);
        int k = 0;
        r[t][k++] = wk_sum(x, WK_ALL_DIMS, false);
        r[t][k++] = wk_sum(x, WK_DIMS(0), false);
        r[t][k++] = wk_mean(x, WK_DIMS(1), false);
        r[t][k++] = wk_var(x, WK_ALL_DIMS, 1, false);
        r[t][k++] = wk_var(xt, WK_DIMS(0), 1, false);
        r[t][k++] = wk_logsumexp(big, WK_DIMS(1), false);
        r[t][k++] = wk_norm(big, 3, WK_DIMS(1), false);
        r[t][k++] = wk_sum(wk_slice(big, 1, 7, 150000, 1), WK_ALL_DIMS, false);
        r[t][k++] = wk_softmax(x, 0);
        r[t][k++] = wk_log_softmax(xt, 1);
        r[t][k++] = wk_argmax(wk_slice(wk_select(big, 0, 1), 0, 0, 200000, 2), 0, false);
        r[t][k++] = wk_std(wk_transpose(big, 0, 1), WK_DIMS(0), 1, false);
        r[t][k++] = wk_var(wk_slice(wk_select(big, 0, 1), 0, 0, 200000, 2), WK_ALL_DIMS, 0,
                           false);
    }
    for (int k = 0; k < 13; k++) {
        char w[32];
        snprintf(w, sizeof w, "result %d", k);
        expect_identical(r[0][k], r[1][k], w);
    }
}

/* Softmax reference: exp(x - max) / sum along dim, in long double. */
static void check_softmax(wk_tensor *x, int dim, bool log_, const char *what)
{
    wk_tensor *y = log_ ? wk_log_softmax(x, dim) : wk_softmax(x, dim);
    cr_assert_not_null(y, "%s: %s", what, wk_last_error());
    cr_assert(wk_same_shape(x, y) && y->dtype == x->dtype && wk_is_contiguous(y), "%s", what);
    int d = dim < 0 ? dim + x->ndim : dim;
    wk_tensor *xm = wk_contiguous(wk_transpose(x, d, x->ndim - 1));
    wk_tensor *ym = wk_contiguous(wk_transpose(y, d, x->ndim - 1));
    int64_t n = x->shape[d], rows = n ? wk_numel(x) / n : 0;
    double tol = x->dtype == WK_DTYPE_F32 ? 2e-6 : 1e-13;
    for (int64_t r = 0; r < rows; r++) {
        long double m = -INFINITY, s = 0, total = 0;
        for (int64_t i = 0; i < n; i++) m = fmaxl(m, tu_at(xm, r * n + i));
        for (int64_t i = 0; i < n; i++) s += expl(tu_at(xm, r * n + i) - m);
        for (int64_t i = 0; i < n; i++) {
            long double v = tu_at(xm, r * n + i) - m;
            double e = (double)(log_ ? v - logl(s) : expl(v) / s), got = tu_at(ym, r * n + i);
            cr_assert(fabs(got - e) <= tol * (1 + fabs(e)), "%s[%lld,%lld] = %.9g, expected %.9g",
                      what, (long long)r, (long long)i, got, e);
            total += log_ ? expl(got) : got;
        }
        cr_assert(fabsl(total - 1) < 1e-5, "%s: row %lld sums to %.9Lg", what, (long long)r,
                  total);
    }
}

Test(reduce, softmax_and_log_softmax)
{
    for (int t = 0; t < 2; t++) {
        wk_dtype dt = t ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *x = rand_tensor(WK_SHAPE(4, 30, 50), dt, 30 + t);
        for (int log_ = 0; log_ < 2; log_++) {
            for (int d = -3; d < 3; d++) check_softmax(x, d, log_, "contiguous");
            check_softmax(wk_transpose(x, 0, 2), 1, log_, "transposed dim 1");
            check_softmax(wk_transpose(x, 0, 2), 2, log_, "transposed dim 2");
            check_softmax(wk_slice(x, 2, 1, 50, 3), -1, log_, "sliced");
            check_softmax(wk_expand(wk_slice(x, 0, 0, 1, 1), WK_SHAPE(3, 30, 50)), 0, log_,
                          "expanded");
        }
        wk_tensor *c = rand_tensor(WK_SHAPE(30, 64), dt, 35 + t);
        check_softmax(wk_transpose(c, 0, 1), 1, false, "columns, strided output");
        check_softmax(wk_transpose(c, 0, 1), -1, true, "columns, strided output, log");
        wk_tensor *big = rand_tensor(WK_SHAPE(1000, 1001), dt, 40 + t);
        check_softmax(big, 1, false, "1000x1001 rows");
        check_softmax(big, 0, true, "1000x1001 columns");
    }
    /* Huge logits: rows still sum to one, no overflow. */
    wk_tensor *h = tu_f32(WK_SHAPE(2, 3), 1e4f, 1e4f - 1, 1e4f - 2, -1e4f, 0, 1e4f);
    check_softmax(h, 1, false, "huge logits");
    check_softmax(h, 1, true, "huge logits log");
    check_softmax(h, 0, false, "huge logits dim 0");
    wk_tensor *p = wk_softmax(h, 1);
    expect_values(p, 1e-6, 1 / (1 + exp(-1) + exp(-2)), exp(-1) / (1 + exp(-1) + exp(-2)),
                  exp(-2) / (1 + exp(-1) + exp(-2)), 0, 0, 1);
    expect_values(wk_log_softmax(h, 1), 1e-6, -log(1 + exp(-1) + exp(-2)),
                  -1 - log(1 + exp(-1) + exp(-2)), -2 - log(1 + exp(-1) + exp(-2)), -2e4,
                  -1e4, 0);
    wk_tensor *nan = tu_f64(WK_SHAPE(2, 2), 1, NAN, 0, 0);
    expect_values(wk_softmax(nan, 1), 0, NAN, NAN, 0.5, 0.5);
}

Test(reduce, errors)
{
    wk_tensor *x = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *i = tu_i64(WK_SHAPE(2), 1, 2);
    expect_error(wk_sum(x, WK_DIMS(2), false),
                 "sum: dim 2 is out of range for a 2-d tensor (expected -2..1)");
    expect_error(wk_mean(x, WK_DIMS(-3), false), "mean: dim -3 is out of range");
    expect_error(wk_amax(x, WK_DIMS(1, -1), false),
                 "amax: dim -1 appears more than once in the dims of a tensor of shape [2, 3]");
    expect_error(wk_var(x, WK_DIMS(0, 0), 1, false), "var: dim 0 appears more than once");
    expect_error(wk_argmax(x, 5, false), "argmax: dim 5 is out of range");
    expect_error(wk_softmax(x, -3), "softmax: dim -3 is out of range");
    expect_error(wk_max_dim(x, 2, false, NULL), "max_dim: dim 2 is out of range");
    static const char *float_only[] = {"mean", "var", "std", "logsumexp", "norm", "softmax",
                                       "log_softmax"};
    wk_tensor *ri[] = {wk_mean(i, WK_ALL_DIMS, false), wk_var(i, WK_ALL_DIMS, 1, false),
                       wk_std(i, WK_ALL_DIMS, 1, false), wk_logsumexp(i, WK_ALL_DIMS, false),
                       wk_norm(i, 2, WK_ALL_DIMS, false), wk_softmax(i, 0),
                       wk_log_softmax(i, 0)};
    for (int k = 0; k < 7; k++) {
        cr_assert_null(ri[k], "%s accepted int64", float_only[k]);
    }
    expect_error(wk_mean(i, WK_ALL_DIMS, false),
                 "mean: expected a float dtype (float32 or float64), got int64 (tensor of shape "
                 "[2]); convert with wk_to_dtype first");
    expect_error(wk_softmax(i, 0), "softmax: expected a float dtype");
    expect_error(wk_log_softmax(i, 0), "log_softmax: expected a float dtype");
    expect_error(wk_norm(i, 1, WK_ALL_DIMS, false), "norm: expected a float dtype");
    expect_error(wk_logsumexp(i, WK_ALL_DIMS, false), "logsumexp: expected a float dtype");
    expect_error(wk_std(i, WK_ALL_DIMS, 0, false), "std: expected a float dtype");
    expect_error(wk_var(i, WK_ALL_DIMS, 0, false), "var: expected a float dtype");
    wk_tensor *h = wk_to_dtype(x, WK_DTYPE_BF16);
    expect_error(wk_sum(h, WK_ALL_DIMS, false),
                 "sum: bfloat16 is a storage dtype (tensor of shape [2, 3]); convert with "
                 "wk_to_dtype(x, WK_DTYPE_F32) first");
    expect_error(wk_amax(wk_to_dtype(x, WK_DTYPE_F16), WK_ALL_DIMS, false),
                 "amax: float16 is a storage dtype");
    expect_error(wk_norm(x, NAN, WK_ALL_DIMS, false), "norm: p is NaN");
    wk_tensor *idx = x;
    expect_error(wk_reduce(WK_REDUCE_SUM, x, WK_ALL_DIMS, false, 0, &idx),
                 "sum: only max_dim and min_dim return indices");
    cr_assert_null(idx);
    expect_error(wk_reduce(WK_REDUCE_MAX, x, WK_DIMS(0, 1), false, 0, NULL),
                 "max_dim: expected exactly one dim, got 2 dims (tensor of shape [2, 3])");
    expect_error(wk_reduce(WK_REDUCE_SOFTMAX, x, WK_ALL_DIMS, false, 0, NULL),
                 "softmax: expected exactly one dim, got 0 dims");
    expect_error(wk_reduce(WK_REDUCE_ARGMAX, x, WK_DIMS(0, 1), false, 0, NULL),
                 "argmax: expected one (or all: none given) dim, got 2 dims");
    expect_error(wk_reduce(WK_REDUCE_COUNT, x, WK_ALL_DIMS, false, 0, NULL),
                 "reduce: invalid op");
    expect_error(wk_reduce(WK_REDUCE_SUM, x, NULL, 1, false, 0, NULL),
                 "sum: invalid dims argument (1 dims but dims is NULL)");
    expect_error(wk_reduce(WK_REDUCE_SUM, x, (const int[]){0}, -1, false, 0, NULL),
                 "sum: invalid dims argument (-1 dims)");
    wk_tensor fake = *x;
    fake.device = (wk_device){WK_DEVICE_CUDA, 0};
    expect_error(wk_sum(&fake, WK_ALL_DIMS, false), "sum: no kernel for device cuda:0");
    expect_error(wk_softmax(&fake, 0), "softmax: no kernel for device cuda:0");
    /* NULL inputs keep the first message. */
    wk_clear_error();
    cr_assert_null(wk_sum(NULL, WK_ALL_DIMS, false));
    cr_assert(strstr(wk_last_error(), "sum: input 0 is NULL"));
    wk_set_error("first failure");
    cr_assert_null(wk_softmax(wk_mean(NULL, WK_ALL_DIMS, false), 0));
    cr_assert_str_eq(wk_last_error(), "first failure");
    wk_tensor *ind = x;
    cr_assert_null(wk_max_dim(NULL, 0, false, &ind));
    cr_assert_null(ind);
    cr_assert_str_eq(wk_reduce_op_name(WK_REDUCE_LOG_SOFTMAX), "log_softmax");
    cr_assert_str_eq(wk_reduce_op_name(WK_REDUCE_COUNT), "?");
}

/* matmul, mm, bmm, addmm and linear against a naive double-precision loop, over every
 * layout BLAS can and cannot read directly. */
#include <stdlib.h>

#include "test_util.h"

TestSuite(linalg, .init = tu_setup, .fini = tu_teardown);

/* ---- helpers ---- */

/* Deterministic values in [-1, 1) with a few exact zeros; any dtype. */
static wk_tensor *rnd(const int64_t *shape, int ndim, wk_dtype dtype, uint32_t seed)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_F64);
    double *p = wk_data(t);
    uint32_t s = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < wk_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (double)(s >> 8) / (double)(1 << 23) - 1.0;
    }
    return dtype == WK_DTYPE_F64 ? t : wk_to_dtype(t, dtype);
}
#define RND(dtype, seed, ...) rnd(WK_SHAPE(__VA_ARGS__), dtype, seed)

/* Element of a float tensor at a multi-index, straight from its strides. */
static double elem(const wk_tensor *t, const int64_t *idx)
{
    int64_t off = 0;
    for (int i = 0; i < t->ndim; i++) off += idx[i] * t->strides[i];
    if (t->dtype == WK_DTYPE_F32) return ((const float *)wk_data(t))[off];
    return ((const double *)wk_data(t))[off];
}

/* torch.matmul written out: promote 1-d operands, broadcast batch dims, triple loop in
 * double. Fills ref (and |a||b| sums in mag) in the result's row-major order; returns
 * the number of elements and the result shape in shape/nd. */
static int64_t ref_matmul(const wk_tensor *a, const wk_tensor *b, double *ref, double *mag,
                          int64_t *shape, int *nd)
{
    int na = a->ndim, nb = b->ndim;
    int64_t M = na == 1 ? 1 : a->shape[na - 2], K = a->shape[na - 1];
    int64_t N = nb == 1 ? 1 : b->shape[nb - 1];
    int ba = na > 2 ? na - 2 : 0, bb = nb > 2 ? nb - 2 : 0, nbat = ba > bb ? ba : bb;
    int64_t bshape[8], nbatch = 1;
    for (int i = 0; i < nbat; i++) {
        int ia = i - (nbat - ba), ib = i - (nbat - bb);
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        bshape[i] = sa > sb ? sa : sb;
        nbatch *= bshape[i];
    }
    *nd = 0;
    for (int i = 0; i < nbat; i++) shape[(*nd)++] = bshape[i];
    if (na > 1) shape[(*nd)++] = M;
    if (nb > 1) shape[(*nd)++] = N;
    if (!ref) return nbatch * M * N; /* just the size */
    for (int64_t q = 0; q < nbatch; q++) {
        int64_t bi[8], rem = q;
        for (int i = nbat - 1; i >= 0; i--) {
            bi[i] = rem % bshape[i];
            rem /= bshape[i];
        }
        int64_t ia[8] = {0}, ib[8] = {0};
        for (int i = 0; i < ba; i++) {
            int j = i + (nbat - ba);
            ia[i] = a->shape[i] == 1 ? 0 : bi[j];
        }
        for (int i = 0; i < bb; i++) {
            int j = i + (nbat - bb);
            ib[i] = b->shape[i] == 1 ? 0 : bi[j];
        }
        for (int64_t m = 0; m < M; m++)
            for (int64_t n = 0; n < N; n++) {
                double s = 0, g = 0;
                for (int64_t k = 0; k < K; k++) {
                    if (na == 1) ia[0] = k;
                    else {
                        ia[na - 2] = m;
                        ia[na - 1] = k;
                    }
                    if (nb == 1) ib[0] = k;
                    else {
                        ib[nb - 2] = k;
                        ib[nb - 1] = n;
                    }
                    double x = elem(a, ia), y = elem(b, ib);
                    s += x * y;
                    g += fabs(x * y);
                }
                ref[(q * M + m) * N + n] = s;
                if (mag) mag[(q * M + m) * N + n] = g;
            }
    }
    return nbatch * M * N;
}

/* Relative error allowed per unit of sum|a_k b_k|: K roundings of the dtype, padded. */
static double tol_of(wk_dtype dtype, int64_t K)
{
    double eps = dtype == WK_DTYPE_F32 ? 1.2e-7 : 2.3e-16;
    return 4.0 * eps * (double)(K + 2);
}

/* Check got == a @ b (torch.matmul) element by element. */
static void check_matmul(const wk_tensor *got, const wk_tensor *a, const wk_tensor *b,
                         const char *what)
{
    cr_assert_not_null(got, "%s: NULL: %s", what, wk_last_error());
    int64_t shape[8];
    int nd;
    int64_t n = ref_matmul(a, b, NULL, NULL, shape, &nd) + 1;
    double *ref = malloc((size_t)n * sizeof *ref), *mag = malloc((size_t)n * sizeof *mag);
    int64_t cnt = ref_matmul(a, b, ref, mag, shape, &nd);
    cr_assert_eq(got->ndim, nd, "%s: ndim %d, expected %d", what, got->ndim, nd);
    for (int i = 0; i < nd; i++)
        cr_assert_eq(got->shape[i], shape[i], "%s: dim %d is %lld, expected %lld", what, i,
                     (long long)got->shape[i], (long long)shape[i]);
    cr_assert_eq(wk_numel(got), cnt, "%s", what);
    cr_assert_eq(got->dtype, a->dtype);
    double tol = tol_of(a->dtype, a->shape[a->ndim - 1]);
    for (int64_t i = 0; i < cnt; i++) {
        double v = tu_at(got, i);
        cr_assert(fabs(v - ref[i]) <= tol * mag[i] + 1e-300, "%s[%lld] = %.10g, expected %.10g",
                  what, (long long)i, v, ref[i]);
    }
    free(ref);
    free(mag);
}

/* ---- matmul ---- */

Test(linalg, mm_by_hand)
{
    wk_tensor *a = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *b = tu_f32(WK_SHAPE(3, 2), 7, 8, 9, 10, 11, 12);
    expect_values(wk_matmul(a, b), 0, 58, 64, 139, 154);
    expect_values(wk_mm(a, b), 0, 58, 64, 139, 154);
    /* b^T (2, 3) transposed back: a (1, ld) strided operand */
    wk_tensor *bt = tu_f32(WK_SHAPE(2, 3), 7, 9, 11, 8, 10, 12);
    expect_values(wk_mm(a, wk_transpose(bt, 0, 1)), 0, 58, 64, 139, 154);
    wk_tensor *one = wk_matmul(tu_f64(WK_SHAPE(1, 1), 3), tu_f64(WK_SHAPE(1, 1), -2));
    expect_shape(one, 1, 1);
    expect_values(one, 0, -6);
}

Test(linalg, vectors_follow_torch)
{
    wk_tensor *v = tu_f32(WK_SHAPE(3), 1, 2, 3);
    wk_tensor *dot = wk_matmul(v, tu_f32(WK_SHAPE(3), 4, 5, 6));
    cr_assert_not_null(dot, "%s", wk_last_error());
    cr_assert_eq(dot->ndim, 0);
    expect_values(dot, 0, 32);
    wk_tensor *m = tu_f32(WK_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    wk_tensor *vm = wk_matmul(v, m);
    expect_shape(vm, 2);
    expect_values(vm, 0, 22, 28);
    wk_tensor *mv = wk_matmul(wk_transpose(m, 0, 1), v);
    expect_shape(mv, 2);
    expect_values(mv, 0, 22, 28);
    /* 1-d against batched operands, and strided vectors */
    wk_tensor *a3 = RND(WK_DTYPE_F32, 1, 4, 5, 3);
    check_matmul(wk_matmul(a3, v), a3, v, "3d@1d");
    wk_tensor *b3 = RND(WK_DTYPE_F32, 2, 4, 3, 6);
    check_matmul(wk_matmul(v, b3), v, b3, "1d@3d");
    wk_tensor *w = RND(WK_DTYPE_F64, 3, 7, 9);
    wk_tensor *col = wk_select(w, 1, 2), *row = wk_slice(wk_select(w, 0, 1), 0, 0, 9, 3);
    check_matmul(wk_matmul(col, w), col, w, "strided 1d@2d");
    check_matmul(wk_matmul(w, wk_select(w, 0, 4)), w, wk_select(w, 0, 4), "2d@1d");
    check_matmul(wk_matmul(row, row), row, row, "strided dot");
    wk_tensor *ex = wk_expand(tu_f32(WK_SHAPE(1), 2), WK_SHAPE(5));
    wk_tensor *m5 = RND(WK_DTYPE_F32, 4, 5, 3);
    check_matmul(wk_matmul(ex, m5), ex, m5, "expanded vector");
}

Test(linalg, batched_and_broadcast_batches)
{
    wk_tensor *a = RND(WK_DTYPE_F32, 1, 2, 1, 3, 4);
    wk_tensor *b = RND(WK_DTYPE_F32, 2, 5, 4, 2);
    check_matmul(wk_matmul(a, b), a, b, "[2,1,3,4]@[5,4,2]");
    wk_tensor *a2 = RND(WK_DTYPE_F32, 3, 3, 4);
    wk_tensor *b2 = RND(WK_DTYPE_F32, 4, 2, 4, 5);
    check_matmul(wk_matmul(a2, b2), a2, b2, "[3,4]@[2,4,5]");
    /* a contiguous stack times one B: folded into a single GEMM */
    wk_tensor *a3 = RND(WK_DTYPE_F32, 5, 2, 3, 7, 4);
    wk_tensor *b3 = RND(WK_DTYPE_F32, 41, 3, 4, 5);
    check_matmul(wk_matmul(a3, b3), a3, b3, "[2,3,7,4]@[3,4,5]");
    wk_tensor *w = RND(WK_DTYPE_F32, 6, 4, 6);
    check_matmul(wk_matmul(a3, w), a3, w, "folded [2,3,7,4]@[4,6]");
    check_matmul(wk_matmul(a3, wk_expand(w, WK_SHAPE(3, 4, 6))), a3, w, "expanded B");
    wk_tensor *x = RND(WK_DTYPE_F32, 7, 3, 4, 5);
    wk_tensor *y = RND(WK_DTYPE_F32, 8, 3, 5, 2);
    check_matmul(wk_bmm(x, y), x, y, "bmm");
    /* permuted batch dims: irregular batch strides, no copy needed */
    wk_tensor *p = wk_permute(RND(WK_DTYPE_F32, 9, 4, 2, 3, 5), WK_DIMS(1, 0, 2, 3));
    wk_tensor *q = wk_permute(RND(WK_DTYPE_F32, 10, 5, 4, 2, 6), WK_DIMS(2, 1, 0, 3));
    check_matmul(wk_matmul(p, q), p, q, "permuted batches");
}

Test(linalg, strided_operands)
{
    wk_tensor *base = RND(WK_DTYPE_F32, 11, 9, 12);
    wk_tensor *at = wk_transpose(base, 0, 1); /* (12, 9) column-major */
    wk_tensor *b = RND(WK_DTYPE_F32, 12, 9, 5);
    check_matmul(wk_matmul(at, b), at, b, "transposed a");
    wk_tensor *rows = wk_narrow(base, 1, 2, 7); /* (9, 7), ld 12 */
    wk_tensor *b7 = RND(WK_DTYPE_F32, 13, 7, 4);
    check_matmul(wk_matmul(rows, b7), rows, b7, "row-sliced a");
    wk_tensor *b7t = wk_transpose(b7, 0, 1), *rowst = wk_transpose(rows, 0, 1);
    check_matmul(wk_matmul(b7t, rowst), b7t, rowst, "transposed sliced b");
    wk_tensor *cols = wk_slice(base, 1, 0, 12, 2); /* (9, 6) column stride 2: copied */
    wk_tensor *b6 = RND(WK_DTYPE_F32, 14, 6, 3);
    check_matmul(wk_matmul(cols, b6), cols, b6, "column-strided a");
    check_matmul(wk_matmul(wk_transpose(b6, 0, 1), wk_transpose(cols, 0, 1)),
                 wk_transpose(b6, 0, 1), wk_transpose(cols, 0, 1), "both transposed");
    /* expanded rows inside the matrix (stride 0): copied */
    wk_tensor *er = wk_expand(RND(WK_DTYPE_F32, 15, 1, 12), WK_SHAPE(4, 12));
    check_matmul(wk_matmul(er, wk_transpose(base, 0, 1)), er, wk_transpose(base, 0, 1),
                 "expanded rows");
    /* batched transposes as in attention scores: q @ k^T */
    wk_tensor *qk = RND(WK_DTYPE_F64, 16, 3, 6, 5);
    check_matmul(wk_matmul(qk, wk_transpose(qk, 1, 2)), qk, wk_transpose(qk, 1, 2),
                 "q @ k^T");
    /* a view with an offset into a bigger storage */
    wk_tensor *big = RND(WK_DTYPE_F64, 17, 4, 10, 10);
    wk_tensor *sub = wk_narrow(wk_narrow(big, 1, 3, 5), 2, 1, 6);
    wk_tensor *subt = wk_transpose(wk_narrow(wk_narrow(big, 1, 2, 5), 2, 4, 6), 1, 2);
    check_matmul(wk_matmul(sub, subt), sub, subt, "offset views");
}

Test(linalg, transposed_weight_is_not_copied)
{
    wk_tensor *x = RND(WK_DTYPE_F32, 18, 64, 128);
    wk_tensor *w = RND(WK_DTYPE_F32, 19, 256, 128);
    wk_tensor *wt = wk_transpose(w, 0, 1);
    size_t before = wk_alloc_get_stats().bytes_in_use;
    wk_alloc_reset_peak();
    wk_tensor *y = wk_matmul(x, wt);
    wk_alloc_stats st = wk_alloc_get_stats();
    cr_assert_not_null(y);
    /* The only allocation is the result: no copy of w ever existed. */
    cr_assert_eq(st.peak_bytes_in_use - before, st.bytes_in_use - before,
                 "peak grew by %zu, result holds %zu", st.peak_bytes_in_use - before,
                 st.bytes_in_use - before);
    cr_assert_lt(st.bytes_in_use - before, (size_t)(64 * 256 * 4 + 128 * 256 * 4));
    check_matmul(y, x, wt, "x @ w^T");
    before = st.bytes_in_use;
    wk_alloc_reset_peak();
    wk_tensor *z = wk_linear(wk_view(x, WK_SHAPE(4, 16, 128)), w, NULL);
    st = wk_alloc_get_stats();
    cr_assert_eq(st.peak_bytes_in_use - before, st.bytes_in_use - before);
    expect_shape(z, 4, 16, 256);
    for (int64_t i = 0; i < 64 * 256; i++)
        cr_assert_eq(tu_at(z, i), tu_at(y, i)); /* same single GEMM */
}

Test(linalg, odd_sizes_and_float64)
{
    for (int d = 0; d < 2; d++) {
        wk_dtype dt = d ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *a = RND(dt, 20, 257, 129);
        wk_tensor *b = RND(dt, 21, 129, 65);
        check_matmul(wk_matmul(a, b), a, b, "257x129 @ 129x65");
        check_matmul(wk_mm(wk_transpose(b, 0, 1), wk_transpose(a, 0, 1)),
                     wk_transpose(b, 0, 1), wk_transpose(a, 0, 1), "transposed odd");
    }
    wk_tensor *a = RND(WK_DTYPE_F32, 22, 1000, 1001);
    wk_tensor *b = RND(WK_DTYPE_F32, 23, 1001, 3);
    check_matmul(wk_matmul(a, b), a, b, "1000x1001 @ 1001x3");
    wk_tensor *v = RND(WK_DTYPE_F32, 24, 1001);
    check_matmul(wk_matmul(v, wk_transpose(a, 0, 1)), v, wk_transpose(a, 0, 1), "gemv");
}

Test(linalg, many_small_products_in_parallel_are_deterministic)
{
    wk_tensor *a = RND(WK_DTYPE_F32, 25, 96, 17, 9);
    wk_tensor *b = RND(WK_DTYPE_F32, 26, 96, 9, 13);
    wk_tensor *bt = wk_transpose(RND(WK_DTYPE_F32, 27, 96, 13, 9), 1, 2);
    wk_tensor *r1 = wk_bmm(a, b);
    check_matmul(r1, a, b, "96 small GEMMs");
    check_matmul(wk_bmm(a, bt), a, bt, "96 small GEMMs, b transposed");
    for (int rep = 0; rep < 3; rep++) {
        wk_tensor *r2 = wk_bmm(a, b);
        cr_assert_eq(memcmp(wk_data(r1), wk_data(r2), (size_t)wk_numel(r1) * 4), 0);
    }
    wk_tensor *x = RND(WK_DTYPE_F64, 28, 300, 257);
    wk_tensor *y = RND(WK_DTYPE_F64, 29, 257, 301);
    wk_tensor *z1 = wk_matmul(x, y), *z2 = wk_matmul(x, y);
    cr_assert_eq(memcmp(wk_data(z1), wk_data(z2), (size_t)wk_numel(z1) * 8), 0);
}

Test(linalg, zero_size_dims)
{
    wk_tensor *r = wk_matmul(wk_empty(WK_SHAPE(0, 3), WK_DTYPE_F32), RND(WK_DTYPE_F32, 1, 3, 4));
    expect_shape(r, 0, 4);
    r = wk_matmul(RND(WK_DTYPE_F32, 1, 2, 3), wk_empty(WK_SHAPE(3, 0), WK_DTYPE_F32));
    expect_shape(r, 2, 0);
    /* K = 0: all zeros, even when the result's memory held garbage before */
    wk_tensor *junk = wk_empty(WK_SHAPE(64), WK_DTYPE_F32);
    wk_fill_(junk, NAN);
    wk_tensor_free(junk);
    r = wk_matmul(wk_empty(WK_SHAPE(4, 0), WK_DTYPE_F32), wk_empty(WK_SHAPE(0, 3), WK_DTYPE_F32));
    expect_shape(r, 4, 3);
    for (int i = 0; i < 12; i++) cr_assert_eq(tu_at(r, i), 0.0);
    r = wk_matmul(wk_empty(WK_SHAPE(0), WK_DTYPE_F64), wk_empty(WK_SHAPE(0), WK_DTYPE_F64));
    cr_assert_eq(r->ndim, 0);
    expect_values(r, 0, 0);
    r = wk_bmm(wk_empty(WK_SHAPE(0, 2, 3), WK_DTYPE_F32),
               wk_empty(WK_SHAPE(0, 3, 4), WK_DTYPE_F32));
    expect_shape(r, 0, 2, 4);
    r = wk_addmm(tu_f32(WK_SHAPE(2), 1, 2), wk_empty(WK_SHAPE(3, 0), WK_DTYPE_F32),
                 wk_empty(WK_SHAPE(0, 2), WK_DTYPE_F32), 0.5, 2);
    expect_values(r, 0, 0.5, 1, 0.5, 1, 0.5, 1);
    r = wk_linear(wk_empty(WK_SHAPE(2, 0), WK_DTYPE_F32), wk_empty(WK_SHAPE(3, 0), WK_DTYPE_F32),
                  tu_f32(WK_SHAPE(3), 1, 2, 3));
    expect_values(r, 0, 1, 2, 3, 1, 2, 3);
    r = wk_linear(wk_empty(WK_SHAPE(0, 5, 4), WK_DTYPE_F32), RND(WK_DTYPE_F32, 2, 3, 4), NULL);
    expect_shape(r, 0, 5, 3);
}

/* ---- addmm and linear ---- */

Test(linalg, addmm_beta_alpha)
{
    wk_tensor *a = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *b = tu_f32(WK_SHAPE(3, 2), 7, 8, 9, 10, 11, 12); /* a@b = 58 64 139 154 */
    wk_tensor *bias = tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4);
    expect_values(wk_addmm(bias, a, b, 1, 1), 0, 59, 66, 142, 158);
    expect_values(wk_addmm(bias, a, b, 2, 0.5), 0, 31, 36, 75.5, 85);
    expect_values(wk_addmm(tu_f32(WK_SHAPE(2), 10, 20), a, b, 1, 1), 0, 68, 84, 149, 174);
    expect_values(wk_addmm(tu_f32(WK_SHAPE(2, 1), 10, 20), a, b, -1, 1), 0, 48, 54, 119, 134);
    expect_values(wk_addmm(tu_f32(WK_SHAPE(1), 1), a, b, 3, 1), 0, 61, 67, 142, 157);
    /* beta = 0 ignores the bias, NaNs included */
    wk_tensor *nan = tu_f32(WK_SHAPE(2, 2), NAN, NAN, NAN, NAN);
    expect_values(wk_addmm(nan, a, b, 0, 1), 0, 58, 64, 139, 154);
    /* strided operands and a big odd case in f64 */
    wk_tensor *x = RND(WK_DTYPE_F64, 30, 65, 33), *w = RND(WK_DTYPE_F64, 31, 17, 33);
    wk_tensor *c = RND(WK_DTYPE_F64, 32, 17);
    wk_tensor *r = wk_addmm(c, x, wk_transpose(w, 0, 1), 0.25, -1.5);
    wk_tensor *p = wk_matmul(x, wk_transpose(w, 0, 1));
    for (int64_t i = 0; i < 65 * 17; i++)
        cr_assert_float_eq(tu_at(r, i), 0.25 * tu_at(c, i % 17) - 1.5 * tu_at(p, i), 1e-12);
    /* the bias is not modified */
    expect_values(bias, 0, 1, 2, 3, 4);
}

/* y = x @ w^T + bias by hand loops over any x rank. */
static void check_linear(const wk_tensor *y, const wk_tensor *x, const wk_tensor *w,
                         const wk_tensor *bias, const char *what)
{
    cr_assert_not_null(y, "%s: %s", what, wk_last_error());
    int64_t in = w->shape[1], out = w->shape[0], rows = wk_numel(x) / (in ? in : 1);
    cr_assert_eq(y->ndim, x->ndim, "%s", what);
    for (int i = 0; i < x->ndim - 1; i++) cr_assert_eq(y->shape[i], x->shape[i], "%s", what);
    cr_assert_eq(y->shape[y->ndim - 1], out, "%s", what);
    double tol = tol_of(x->dtype, in);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t o = 0; o < out; o++) {
            double s = bias ? tu_at(bias, o) : 0, g = fabs(s);
            for (int64_t k = 0; k < in; k++) {
                double p = tu_at(x, r * in + k) * tu_at(w, o * in + k);
                s += p;
                g += fabs(p);
            }
            double v = tu_at(y, r * out + o);
            cr_assert(fabs(v - s) <= tol * g + 1e-300, "%s[%lld, %lld] = %.10g, expected %.10g",
                      what, (long long)r, (long long)o, v, s);
        }
}

Test(linalg, linear_2d_3d_with_and_without_bias)
{
    wk_tensor *x = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *w = tu_f32(WK_SHAPE(2, 3), 1, 0, -1, 2, 1, 0);
    wk_tensor *b = tu_f32(WK_SHAPE(2), 10, 20);
    expect_values(wk_linear(x, w, b), 0, 8, 24, 8, 33);
    expect_values(wk_linear(x, w, NULL), 0, -2, 4, -2, 13);
    wk_tensor *v = wk_linear(tu_f32(WK_SHAPE(3), 1, 2, 3), w, b);
    expect_shape(v, 2);
    expect_values(v, 0, 8, 24);
    for (int d = 0; d < 2; d++) {
        wk_dtype dt = d ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *x3 = RND(dt, 33, 4, 7, 19), *w3 = RND(dt, 34, 11, 19);
        wk_tensor *b3 = RND(dt, 35, 11);
        check_linear(wk_linear(x3, w3, b3), x3, w3, b3, "3-d x, bias");
        check_linear(wk_linear(x3, w3, NULL), x3, w3, NULL, "3-d x, no bias");
        /* x whose batch dims cannot fold (transposed batch), weight stored transposed */
        wk_tensor *xt = wk_transpose(RND(dt, 36, 7, 4, 19), 0, 1);
        wk_tensor *wt = wk_transpose(RND(dt, 37, 19, 11), 0, 1);
        check_linear(wk_linear(xt, wt, b3), xt, wt, b3, "strided x and weight");
        wk_tensor *big = RND(dt, 38, 3, 5, 300), *wb = RND(dt, 39, 257, 300);
        check_linear(wk_linear(big, wb, NULL), big, wb, NULL, "bigger");
        wk_tensor *b1 = RND(dt, 40, 1);
        check_linear(wk_linear(x3, w3, b1), x3, w3, wk_expand(b1, WK_SHAPE(11)),
                     "size-1 bias");
    }
}

/* ---- errors ---- */

Test(linalg, errors_name_op_and_shapes)
{
    wk_tensor *a23 = RND(WK_DTYPE_F32, 1, 2, 3), *a45 = RND(WK_DTYPE_F32, 2, 4, 5);
    expect_error(wk_matmul(a23, a45),
                 "matmul: shapes [2, 3] and [4, 5] cannot be multiplied (3 != 4)");
    expect_error(wk_mm(a23, a45), "mm: shapes [2, 3] and [4, 5] cannot be multiplied");
    expect_error(wk_matmul(RND(WK_DTYPE_F32, 3, 2, 4, 5), RND(WK_DTYPE_F32, 4, 3, 5, 6)),
                 "matmul: batch dims [2] and [3] do not broadcast (shapes [2, 4, 5] and "
                 "[3, 5, 6])");
    wk_tensor *s = tu_f32(WK_SHAPE(1), 1);
    expect_error(wk_matmul(wk_squeeze_all(s), a23),
                 "matmul: both arguments need at least 1 dim, got shapes [] and [2, 3]");
    expect_error(wk_matmul(a23, RND(WK_DTYPE_F64, 5, 3, 2)),
                 "matmul: dtypes float32 and float64 differ");
    wk_tensor *i = wk_to_dtype(a23, WK_DTYPE_I64);
    expect_error(wk_matmul(i, i), "matmul: dtype int64 is not supported (expected float32 or "
                                  "float64)");
    wk_tensor *h = wk_to_dtype(a23, WK_DTYPE_BF16);
    expect_error(wk_mm(h, h), "mm: bfloat16 is a storage type; convert with wk_to_dtype");
    expect_error(wk_mm(a23, RND(WK_DTYPE_F32, 6, 3)),
                 "mm: expected 2-d tensors, got shapes [2, 3] and [3]");
    expect_error(wk_bmm(a23, a45), "bmm: expected 3-d tensors, got shapes [2, 3] and [4, 5]");
    expect_error(wk_bmm(RND(WK_DTYPE_F32, 7, 2, 3, 4), RND(WK_DTYPE_F32, 8, 3, 4, 5)),
                 "bmm: batch sizes differ (shapes [2, 3, 4] and [3, 4, 5])");
    wk_tensor *b35 = RND(WK_DTYPE_F32, 9, 3, 5);
    expect_error(wk_addmm(RND(WK_DTYPE_F32, 10, 3, 2), a23, b35, 1, 1),
                 "addmm: bias shape [3, 2] does not broadcast to [2, 5]");
    expect_error(wk_addmm(RND(WK_DTYPE_F64, 10, 5), a23, b35, 1, 1),
                 "addmm: dtypes float64 and float32 differ");
    expect_error(wk_linear(a23, RND(WK_DTYPE_F32, 11, 3), NULL),
                 "linear: weight must be 2-d (out, in), got shape [3]");
    expect_error(wk_linear(a23, a45, NULL),
                 "linear: input shape [2, 3] and weight shape [4, 5] do not match (in "
                 "features 3 != 5)");
    expect_error(wk_linear(a23, RND(WK_DTYPE_F32, 12, 4, 3), RND(WK_DTYPE_F32, 13, 3)),
                 "linear: bias shape [3] does not match weight shape [4, 3] (expected [4])");
    expect_error(wk_linear(wk_squeeze_all(s), RND(WK_DTYPE_F32, 12, 4, 3), NULL),
                 "linear: input needs at least 1 dim, got shape []");
    expect_error(wk_linalg(WK_LINALG_COUNT, a23, a23, NULL, 0, 1), "linalg: invalid op");
    cr_assert_str_eq(wk_linalg_name(WK_LINALG_ADDMM), "addmm");
    /* NULL inputs propagate the first message */
    wk_clear_error();
    cr_assert_null(wk_matmul(NULL, a23));
    cr_assert_str_eq(wk_last_error(), "matmul: input 0 is NULL");
    wk_set_error("earlier failure");
    cr_assert_null(wk_linear(a23, NULL, NULL));
    cr_assert_str_eq(wk_last_error(), "earlier failure");
    wk_clear_error();
    cr_assert_null(wk_addmm(NULL, a23, b35, 1, 1));
    cr_assert_str_eq(wk_last_error(), "addmm: input 0 is NULL");
}

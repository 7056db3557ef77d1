/* index_select, gather, scatter_add, masked_fill, cat, stack, one_hot and the split
 * views: hand-computed cases, naive loops over strided inputs, and every error. */
#include <stdlib.h>

#include "test_util.h"

TestSuite(index, .init = tu_setup, .fini = tu_teardown);

/* 0, 1, 2, ... in any dtype (bool: i odd). */
static wk_tensor *iota(const int64_t *shape, int ndim, wk_dtype dtype)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_F64);
    double *p = wk_data(t);
    for (int64_t i = 0; i < wk_numel(t); i++)
        p[i] = dtype == WK_DTYPE_BOOL ? (double)(i & 1) : (double)i;
    return wk_to_dtype(t, dtype);
}
#define IOTA(dtype, ...) iota(WK_SHAPE(__VA_ARGS__), dtype)

static wk_tensor *tu_i32_impl(const int32_t *v, const int64_t *shape, int ndim)
{
    return wk_from_array(v, shape, ndim, WK_DTYPE_I32);
}
#define tu_i32(shape_ndim, ...) tu_i32_impl((const int32_t[]){__VA_ARGS__}, shape_ndim)

static wk_tensor *tu_bool_impl(const uint8_t *v, const int64_t *shape, int ndim)
{
    return wk_from_array(v, shape, ndim, WK_DTYPE_BOOL);
}
#define tu_bool(shape_ndim, ...) tu_bool_impl((const uint8_t[]){__VA_ARGS__}, shape_ndim)

/* Deterministic indices in [0, hi). */
static wk_tensor *rand_index(const int64_t *shape, int ndim, int64_t hi, uint32_t seed)
{
    wk_tensor *t = wk_empty(shape, ndim, WK_DTYPE_I64);
    int64_t *p = wk_data(t);
    uint32_t s = seed * 2654435761u + 7u;
    for (int64_t i = 0; i < wk_numel(t); i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (int64_t)((s >> 8) % (uint32_t)hi);
    }
    return t;
}

/* Multi-index of row-major position i in shape. */
static void unravel(const int64_t *shape, int nd, int64_t i, int64_t *idx)
{
    for (int d = nd - 1; d >= 0; d--) {
        idx[d] = i % shape[d];
        i /= shape[d];
    }
}

static void expect_same(const wk_tensor *got, const wk_tensor *want, const char *what)
{
    cr_assert_not_null(got, "%s: %s", what, wk_last_error());
    cr_assert_eq(got->ndim, want->ndim, "%s", what);
    for (int i = 0; i < got->ndim; i++) cr_assert_eq(got->shape[i], want->shape[i], "%s", what);
    cr_assert_eq(got->dtype, want->dtype, "%s", what);
    for (int64_t i = 0; i < wk_numel(got); i++)
        cr_assert_eq(tu_at(got, i), tu_at(want, i), "%s[%lld]", what, (long long)i);
}

/* ---- index_select ---- */

Test(index, index_select_by_hand)
{
    wk_tensor *x = IOTA(WK_DTYPE_F32, 3, 4);
    wk_tensor *r = wk_index_select(x, 0, tu_i64(WK_SHAPE(3), 2, 0, 2));
    expect_shape(r, 3, 4);
    expect_values(r, 0, 8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11);
    r = wk_index_select(x, 1, tu_i32(WK_SHAPE(2), 3, 1));
    expect_shape(r, 3, 2);
    expect_values(r, 0, 3, 1, 7, 5, 11, 9);
    r = wk_index_select(x, -1, tu_i64(WK_SHAPE(0), 0));
    expect_shape(r, 3, 0);
    wk_tensor *scalar_index = wk_squeeze_all(tu_i64(WK_SHAPE(1), 1));
    r = wk_index_select(x, 0, scalar_index);
    expect_shape(r, 1, 4);
    expect_values(r, 0, 4, 5, 6, 7);
    /* transposed x and a strided index */
    wk_tensor *xt = wk_transpose(x, 0, 1); /* (4, 3) */
    wk_tensor *idx = wk_slice(tu_i64(WK_SHAPE(5), 3, 9, 0, 9, 3), 0, 0, 5, 2); /* 3, 0, 3 */
    r = wk_index_select(xt, 0, idx);
    expect_values(r, 0, 3, 7, 11, 0, 4, 8, 3, 7, 11);
    r = wk_index_select(xt, 1, tu_i64(WK_SHAPE(2), 2, 2));
    expect_values(r, 0, 8, 8, 9, 9, 10, 10, 11, 11);
}

Test(index, index_select_every_dtype_and_large)
{
    for (int d = 0; d < WK_DTYPE_COUNT; d++) {
        wk_tensor *x = IOTA((wk_dtype)d, 4, 3);
        wk_tensor *r = wk_index_select(x, 0, tu_i64(WK_SHAPE(2), 3, 1));
        cr_assert_not_null(r, "%s: %s", wk_dtype_name(d), wk_last_error());
        cr_assert_eq(r->dtype, (wk_dtype)d);
        for (int i = 0; i < 3; i++) {
            cr_assert_eq(tu_at(r, i), tu_at(x, 9 + i), "%s", wk_dtype_name(d));
            cr_assert_eq(tu_at(r, 3 + i), tu_at(x, 3 + i), "%s", wk_dtype_name(d));
        }
    }
    /* an embedding-style lookup big enough for threads, from a table and its transpose */
    wk_tensor *table = IOTA(WK_DTYPE_F32, 1000, 1001);
    wk_tensor *ids = rand_index(WK_SHAPE(700), 1000, 1);
    const int64_t *id = wk_data(ids);
    wk_tensor *r = wk_index_select(table, 0, ids);
    expect_shape(r, 700, 1001);
    const float *rp = wk_data(r);
    for (int64_t i = 0; i < 700; i++)
        for (int64_t j = 0; j < 1001; j++)
            cr_assert_eq(rp[i * 1001 + j], (float)(id[i] * 1001 + j));
    wk_tensor *rt = wk_index_select(wk_transpose(table, 0, 1), 1, ids);
    expect_shape(rt, 1001, 700);
    for (int64_t j = 0; j < 1001; j += 7)
        for (int64_t i = 0; i < 700; i++)
            cr_assert_eq(tu_at(rt, j * 700 + i), (double)(float)(id[i] * 1001 + j));
}

/* ---- gather ---- */

Test(index, gather_by_hand)
{
    wk_tensor *x = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    expect_values(wk_gather(x, 1, tu_i64(WK_SHAPE(2, 2), 2, 0, 1, 1)), 0, 3, 1, 5, 5);
    wk_tensor *r = wk_gather(x, 0, tu_i32(WK_SHAPE(1, 3), 1, 0, 1));
    expect_shape(r, 1, 3);
    expect_values(r, 0, 4, 2, 6);
    r = wk_gather(x, -1, tu_i64(WK_SHAPE(1, 4), 2, 2, 0, 1)); /* longer than x along dim */
    expect_values(r, 0, 3, 3, 1, 2);
    /* transposed x and transposed index */
    wk_tensor *it = wk_transpose(tu_i64(WK_SHAPE(2, 3), 0, 1, 0, 1, 1, 0), 0, 1); /* (3, 2) */
    expect_values(wk_gather(wk_transpose(x, 0, 1), 1, it), 0, 1, 4, 5, 5, 3, 3);
    expect_shape(wk_gather(x, 1, wk_empty(WK_SHAPE(2, 0), WK_DTYPE_I64)), 2, 0);
}

Test(index, gather_3d_strided_matches_loop)
{
    wk_tensor *base = IOTA(WK_DTYPE_F64, 6, 5, 7);
    wk_tensor *x = wk_permute(base, WK_DIMS(2, 0, 1)); /* (7, 6, 5), strided */
    for (int dim = 0; dim < 3; dim++) {
        int64_t ishape[3] = {5, 4, 3};
        ishape[dim] = 9;
        wk_tensor *idx = rand_index(ishape, 3, x->shape[dim], 10 + dim);
        wk_tensor *r = wk_gather(x, dim, idx);
        expect_shape(r, ishape[0], ishape[1], ishape[2]);
        for (int64_t i = 0; i < wk_numel(idx); i++) {
            int64_t ii[3];
            unravel(ishape, 3, i, ii);
            ii[dim] = ((int64_t *)wk_data(idx))[i];
            cr_assert_eq(tu_at(r, i), wk_get(x, ii), "dim %d, element %lld", dim, (long long)i);
        }
    }
    /* large, to take the threaded path */
    wk_tensor *big = IOTA(WK_DTYPE_F32, 1000, 1001);
    wk_tensor *idx = rand_index(WK_SHAPE(1000, 300), 1001, 3);
    wk_tensor *r = wk_gather(big, 1, idx);
    const int64_t *ip = wk_data(idx);
    const float *rp = wk_data(r);
    for (int64_t i = 0; i < 1000; i++)
        for (int64_t j = 0; j < 300; j++)
            cr_assert_eq(rp[i * 300 + j], (float)(i * 1001 + ip[i * 300 + j]));
}

/* ---- scatter_add ---- */

Test(index, scatter_add_by_hand)
{
    wk_tensor *x = tu_f32(WK_SHAPE(3), 10, 20, 30);
    wk_tensor *r = wk_scatter_add(x, 0, tu_i64(WK_SHAPE(5), 0, 1, 0, 2, 0),
                                  tu_f32(WK_SHAPE(5), 1, 2, 3, 4, 5));
    expect_values(r, 0, 19, 22, 34);
    expect_values(x, 0, 10, 20, 30); /* out of place */
    /* torch's doc example: dim 0 of a (3, 5) */
    wk_tensor *z = wk_empty(WK_SHAPE(3, 5), WK_DTYPE_F32);
    wk_fill_(z, 0);
    wk_tensor *ones = wk_empty(WK_SHAPE(2, 5), WK_DTYPE_F32);
    wk_fill_(ones, 1);
    wk_tensor *idx = tu_i64(WK_SHAPE(2, 5), 0, 1, 2, 0, 0, 2, 0, 0, 1, 2);
    expect_values(wk_scatter_add(z, 0, idx, ones), 0, 1, 1, 1, 1, 1, 0, 1, 0, 1, 0, 1, 0, 1,
                  0, 1);
    /* src larger than index: only index's extent is used; dim 1 with int32 index */
    wk_tensor *src = tu_i64(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *xi = tu_i64(WK_SHAPE(2, 2), 0, 0, 0, 0);
    r = wk_scatter_add(xi, 1, tu_i32(WK_SHAPE(2, 2), 1, 1, 0, 1), src);
    expect_values(r, 0, 0, 3, 4, 5);
    /* empty index: a copy of x */
    expect_values(wk_scatter_add(x, 0, wk_empty(WK_SHAPE(0), WK_DTYPE_I64),
                                 wk_empty(WK_SHAPE(0), WK_DTYPE_F32)),
                  0, 10, 20, 30);
}

Test(index, scatter_add_strided_matches_loop_and_is_deterministic)
{
    for (int dim = 0; dim < 3; dim++) {
        int64_t xshape[3] = {6, 7, 5}, ishape[3] = {4, 5, 3};
        ishape[dim] = 40; /* many duplicates */
        wk_tensor *x = wk_permute(IOTA(WK_DTYPE_F32, 7, 5, 6), WK_DIMS(2, 0, 1)); /* strided */
        int64_t sshape[3] = {ishape[2] + 1, ishape[0] + 2, ishape[1]};
        wk_tensor *sbase = IOTA(WK_DTYPE_F32, sshape[0], sshape[1], sshape[2]);
        for (int64_t i = 0; i < wk_numel(sbase); i++) ((float *)wk_data(sbase))[i] *= 0.37f;
        wk_tensor *src = wk_permute(sbase, WK_DIMS(1, 2, 0)); /* larger than index, strided */
        wk_tensor *idx = rand_index(ishape, 3, xshape[dim], 20 + dim);
        wk_tensor *r = wk_scatter_add(x, dim, idx, src);
        cr_assert_not_null(r, "%s", wk_last_error());
        /* the same sums, in the same order, by a plain loop */
        float *want = malloc(6 * 7 * 5 * sizeof *want);
        for (int64_t i = 0; i < 6 * 7 * 5; i++) want[i] = (float)tu_at(x, i);
        for (int64_t i = 0; i < wk_numel(idx); i++) {
            int64_t ii[3], oo[3];
            unravel(ishape, 3, i, ii);
            memcpy(oo, ii, sizeof oo);
            oo[dim] = ((int64_t *)wk_data(idx))[i];
            want[(oo[0] * 7 + oo[1]) * 5 + oo[2]] += (float)wk_get(src, ii);
        }
        for (int64_t i = 0; i < 6 * 7 * 5; i++)
            cr_assert_eq(tu_at(r, i), (double)want[i], "dim %d [%lld]", dim, (long long)i);
        free(want);
    }
    /* threaded: bit-identical run to run */
    wk_tensor *x = wk_empty(WK_SHAPE(50, 1001), WK_DTYPE_F64);
    wk_fill_(x, 0.1);
    wk_tensor *src = IOTA(WK_DTYPE_F64, 400, 1001);
    wk_tensor *idx = rand_index(WK_SHAPE(400, 1001), 50, 5);
    wk_tensor *r1 = wk_scatter_add(x, 0, idx, src), *r2 = wk_scatter_add(x, 0, idx, src);
    cr_assert_eq(memcmp(wk_data(r1), wk_data(r2), 50 * 1001 * sizeof(double)), 0);
    double sum = 0;
    for (int64_t i = 0; i < 50 * 1001; i++) sum += ((double *)wk_data(r1))[i];
    cr_assert_float_eq(sum, 0.1 * 50 * 1001 + (400.0 * 1001 - 1) * 400 * 1001 / 2, 1);
}

/* ---- masked_fill ---- */

Test(index, index_add_by_hand)
{
    wk_tensor *x = tu_f32(WK_SHAPE(3, 2), 1, 2, 3, 4, 5, 6);
    wk_tensor *src = tu_f32(WK_SHAPE(4, 2), 10, 20, 30, 40, 50, 60, 70, 80);
    wk_tensor *r = wk_index_add(x, 0, tu_i64(WK_SHAPE(4), 2, 0, 2, 2), src);
    expect_shape(r, 3, 2);
    expect_values(r, 0, 31, 42, 3, 4, 135, 166);
    expect_values(x, 0, 1, 2, 3, 4, 5, 6); /* out of place */
    /* dim 1 (last), int32 index, int64 values */
    wk_tensor *xi = tu_i64(WK_SHAPE(2, 3), 0, 0, 0, 1, 1, 1);
    r = wk_index_add(xi, -1, tu_i32(WK_SHAPE(2), 1, 1), tu_i64(WK_SHAPE(2, 2), 1, 2, 3, 4));
    expect_values(r, 0, 0, 3, 0, 1, 8, 1);
    /* 0-d index: one slice */
    r = wk_index_add(x, 1, wk_squeeze_all(tu_i64(WK_SHAPE(1), 1)), tu_f32(WK_SHAPE(3, 1), 1, 1, 1));
    expect_values(r, 0, 1, 3, 3, 5, 5, 7);
    /* empty index: a copy */
    r = wk_index_add(x, 0, wk_empty(WK_SHAPE(0), WK_DTYPE_I64),
                     wk_empty(WK_SHAPE(0, 2), WK_DTYPE_F32));
    expect_values(r, 0, 1, 2, 3, 4, 5, 6);
    /* zero-size x outside dim */
    r = wk_index_add(wk_empty(WK_SHAPE(3, 0), WK_DTYPE_F64), 0, tu_i64(WK_SHAPE(2), 0, 2),
                     wk_empty(WK_SHAPE(2, 0), WK_DTYPE_F64));
    expect_shape(r, 3, 0);
}

Test(index, index_add_strided_large_matches_loop)
{
    /* 3-d, each dim, strided x and src, many repeats; large enough for the threads */
    for (int dim = 0; dim < 3; dim++) {
        int64_t xs[3] = {40, 30, 50}, ss[3] = {40, 30, 50};
        ss[dim] = 300;
        wk_tensor *x = wk_permute(IOTA(WK_DTYPE_F64, xs[2], xs[0], xs[1]), WK_DIMS(1, 2, 0));
        wk_tensor *sb = IOTA(WK_DTYPE_F64, ss[1], ss[2], ss[0]);
        for (int64_t i = 0; i < wk_numel(sb); i++) ((double *)wk_data(sb))[i] *= 0.37;
        wk_tensor *src = wk_permute(sb, WK_DIMS(2, 0, 1));
        wk_tensor *idx = rand_index(WK_SHAPE(300), xs[dim], 40 + dim);
        wk_tensor *r = wk_index_add(x, dim, idx, src);
        cr_assert_not_null(r, "%s", wk_last_error());
        int64_t n = 40 * 30 * 50;
        double *want = malloc((size_t)n * sizeof *want);
        for (int64_t i = 0; i < n; i++) want[i] = tu_at(x, i);
        for (int64_t i = 0; i < wk_numel(src); i++) {
            int64_t ii[3];
            unravel(ss, 3, i, ii);
            double v = wk_get(src, ii);
            ii[dim] = ((int64_t *)wk_data(idx))[ii[dim]];
            want[(ii[0] * 30 + ii[1]) * 50 + ii[2]] += v;
        }
        for (int64_t i = 0; i < n; i++)
            cr_assert_float_eq(tu_at(r, i), want[i], 1e-9 * (1 + fabs(want[i])), "dim %d [%lld]",
                               dim, (long long)i);
        free(want);
    }
    /* the sums run in index order whatever the thread count: bit-identical */
    wk_tensor *x = wk_zeros(WK_SHAPE(7, 1001), WK_DTYPE_F32);
    wk_tensor *src = wk_randn(WK_SHAPE(5000, 1001), WK_DTYPE_F32, NULL);
    wk_tensor *idx = rand_index(WK_SHAPE(5000), 7, 3);
    wk_set_num_threads(1);
    wk_tensor *r1 = wk_index_add(x, 0, idx, src);
    wk_set_num_threads(2);
    wk_tensor *r2 = wk_index_add(x, 0, idx, src);
    wk_set_num_threads(0);
    cr_assert_eq(memcmp(wk_data(r1), wk_data(r2), 7 * 1001 * sizeof(float)), 0);
    float *p = wk_data(r1);
    for (int64_t c = 0; c < 1001; c += 97) {
        float want = 0; /* the same order as the kernel: index order */
        for (int64_t i = 0; i < 5000; i++)
            if (((int64_t *)wk_data(idx))[i] == 4) want += ((float *)wk_data(src))[i * 1001 + c];
        cr_assert_eq(p[4 * 1001 + c], want, "column %lld", (long long)c);
    }
}

Test(index, masked_fill_broadcasts)
{
    wk_tensor *x = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    expect_values(wk_masked_fill(x, tu_bool(WK_SHAPE(3), 1, 0, 1), -1), 0, -1, 2, -1, -1, 5,
                  -1);
    expect_values(wk_masked_fill(x, tu_bool(WK_SHAPE(2, 1), 0, 1), INFINITY), 0, 1, 2, 3,
                  INFINITY, INFINITY, INFINITY);
    wk_tensor *r = wk_masked_fill(tu_f32(WK_SHAPE(3), 7, 8, 9), tu_bool(WK_SHAPE(2, 1), 1, 0),
                                  NAN); /* x broadcasts to the mask too */
    expect_shape(r, 2, 3);
    expect_values(r, 0, NAN, NAN, NAN, 7, 8, 9);
    r = wk_masked_fill(wk_transpose(x, 0, 1),
                       wk_transpose(tu_bool(WK_SHAPE(2, 3), 1, 0, 0, 0, 0, 1), 0, 1), 0);
    expect_values(r, 0, 0, 4, 2, 5, 3, 0);
    expect_values(x, 0, 1, 2, 3, 4, 5, 6);
    /* dtypes: the value is converted as a fill would */
    wk_tensor *m = tu_bool(WK_SHAPE(3), 0, 1, 0);
    expect_values(wk_masked_fill(tu_i64(WK_SHAPE(3), 1, 5, 3), m, 2.9), 0, 1, 2, 3);
    expect_values(wk_masked_fill(tu_i64(WK_SHAPE(3), 1, 2, 3), m, -7), 0, 1, -7, 3);
    expect_values(wk_masked_fill(tu_bool(WK_SHAPE(3), 1, 0, 1), m, 1), 0, 1, 1, 1);
    wk_tensor *h = wk_masked_fill(wk_to_dtype(tu_f32(WK_SHAPE(3), 1, 2, 3), WK_DTYPE_BF16), m,
                                  0.5);
    cr_assert_eq(h->dtype, WK_DTYPE_BF16);
    expect_values(h, 0, 1, 0.5, 3);
    expect_values(wk_masked_fill(tu_f64(WK_SHAPE(3), 1, 2, 3), m, 0.1), 0, 1, 0.1, 3);
    /* large and threaded */
    wk_tensor *big = IOTA(WK_DTYPE_F32, 1000, 1001);
    wk_tensor *mb = wk_to_dtype(IOTA(WK_DTYPE_BOOL, 1001), WK_DTYPE_BOOL);
    r = wk_masked_fill(big, mb, -1);
    const float *p = wk_data(r);
    for (int64_t i = 0; i < 1000 * 1001; i++)
        cr_assert_eq(p[i], (i % 1001) & 1 ? -1.0f : (float)i);
}

/* ---- cat and stack ---- */

Test(index, cat_by_hand_and_strided)
{
    wk_tensor *a = tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4);
    wk_tensor *b = tu_f32(WK_SHAPE(1, 2), 5, 6);
    wk_tensor *r = wk_cat((wk_tensor *[]){a, b}, 2, 0);
    expect_shape(r, 3, 2);
    expect_values(r, 0, 1, 2, 3, 4, 5, 6);
    wk_tensor *c = tu_f32(WK_SHAPE(2, 1), 7, 8);
    r = wk_cat((wk_tensor *[]){a, c, wk_transpose(a, 0, 1)}, 3, -1);
    expect_shape(r, 2, 5);
    expect_values(r, 0, 1, 2, 7, 1, 3, 3, 4, 8, 2, 4);
    /* empty pieces, a single tensor, expanded inputs */
    wk_tensor *e = wk_empty(WK_SHAPE(0, 2), WK_DTYPE_F32);
    r = wk_cat((wk_tensor *[]){e, b, e}, 3, 0);
    expect_values(r, 0, 5, 6);
    expect_values(wk_cat((wk_tensor *[]){a}, 1, 1), 0, 1, 2, 3, 4);
    wk_tensor *ex = wk_expand(tu_f32(WK_SHAPE(1, 1), 9), WK_SHAPE(2, 3));
    expect_values(wk_cat((wk_tensor *[]){ex, a}, 2, 1), 0, 9, 9, 9, 1, 2, 9, 9, 9, 3, 4);
    for (int d = 0; d < WK_DTYPE_COUNT; d++) {
        wk_tensor *x = IOTA((wk_dtype)d, 2, 3);
        wk_tensor *y = wk_cat((wk_tensor *[]){x, x}, 2, 1);
        cr_assert_not_null(y, "%s: %s", wk_dtype_name(d), wk_last_error());
        for (int64_t i = 0; i < 12; i++)
            cr_assert_eq(tu_at(y, i), tu_at(x, (i / 6) * 3 + i % 3), "%s", wk_dtype_name(d));
    }
    /* large: two halves of a big matrix joined back */
    wk_tensor *big = IOTA(WK_DTYPE_F64, 1000, 1001);
    wk_tensor *l = wk_narrow(big, 1, 0, 400), *rr = wk_narrow(big, 1, 400, 601);
    expect_same(wk_cat((wk_tensor *[]){l, rr}, 2, 1), big, "rejoined");
}

Test(index, stack_by_hand)
{
    wk_tensor *a = tu_f32(WK_SHAPE(2), 1, 2), *b = tu_f32(WK_SHAPE(2), 3, 4);
    wk_tensor *r = wk_stack((wk_tensor *[]){a, b}, 2, 0);
    expect_shape(r, 2, 2);
    expect_values(r, 0, 1, 2, 3, 4);
    r = wk_stack((wk_tensor *[]){a, b, a}, 3, -1);
    expect_shape(r, 2, 3);
    expect_values(r, 0, 1, 3, 1, 2, 4, 2);
    wk_tensor *s = wk_squeeze_all(tu_f64(WK_SHAPE(1), 5));
    r = wk_stack((wk_tensor *[]){s, s}, 2, 0);
    expect_shape(r, 2);
    expect_values(r, 0, 5, 5);
    wk_tensor *m = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    r = wk_stack((wk_tensor *[]){m, wk_transpose(wk_transpose(m, 0, 1), 0, 1)}, 2, 1);
    expect_shape(r, 2, 2, 3);
    expect_values(r, 0, 1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6);
    wk_tensor *mt = wk_contiguous(wk_transpose(m, 0, 1));
    r = wk_stack((wk_tensor *[]){wk_transpose(m, 0, 1), mt}, 2, 2);
    expect_shape(r, 3, 2, 2);
    expect_values(r, 0, 1, 1, 4, 4, 2, 2, 5, 5, 3, 3, 6, 6);
}

/* ---- one_hot ---- */

Test(index, one_hot)
{
    wk_tensor *r = wk_one_hot(tu_i64(WK_SHAPE(3), 0, 2, 1), 3);
    expect_shape(r, 3, 3);
    cr_assert_eq(r->dtype, WK_DTYPE_I64);
    expect_values(r, 0, 1, 0, 0, 0, 0, 1, 0, 1, 0);
    r = wk_one_hot(tu_i32(WK_SHAPE(2, 2), 1, 3, 0, 1), -1);
    expect_shape(r, 2, 2, 4);
    expect_values(r, 0, 0, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 0, 0);
    r = wk_one_hot(wk_slice(tu_i64(WK_SHAPE(4), 1, 9, 0, 9), 0, 0, 4, 2), 2);
    expect_values(r, 0, 0, 1, 1, 0);
    expect_shape(wk_one_hot(wk_empty(WK_SHAPE(0), WK_DTYPE_I64), 5), 0, 5);
    wk_tensor *lab = rand_index(WK_SHAPE(5000), 100, 9);
    r = wk_one_hot(lab, 100);
    for (int64_t i = 0; i < 5000; i++)
        for (int64_t c = 0; c < 100; c += 9)
            cr_assert_eq(((int64_t *)wk_data(r))[i * 100 + c],
                         ((int64_t *)wk_data(lab))[i] == c);
}

/* ---- split views ---- */

Test(index, split_and_chunk_are_views)
{
    wk_tensor *x = IOTA(WK_DTYPE_F32, 5, 2);
    wk_tensor *p[8];
    cr_assert_eq(wk_split(x, 2, 0, p, 8), 3);
    expect_shape(p[0], 2, 2);
    expect_shape(p[2], 1, 2);
    expect_values(p[1], 0, 4, 5, 6, 7);
    cr_assert_eq(p[1]->storage, x->storage);
    wk_fill_(p[2], -1);
    expect_values(x, 0, 0, 1, 2, 3, 4, 5, 6, 7, -1, -1);
    cr_assert_eq(wk_split(x, 7, 0, p, 1), 1);
    expect_shape(p[0], 5, 2);
    cr_assert_eq(wk_split(x, 1, -1, p, 2), 2);
    expect_values(p[1], 0, 1, 3, 5, 7, -1);
    cr_assert_eq(wk_split(wk_empty(WK_SHAPE(0, 3), WK_DTYPE_F32), 0, 0, p, 1), 1);
    expect_shape(p[0], 0, 3);

    cr_assert_eq(wk_chunk(x, 3, 0, p, 8), 3); /* 2, 2, 1 */
    expect_shape(p[2], 1, 2);
    wk_tensor *six = IOTA(WK_DTYPE_F32, 6);
    cr_assert_eq(wk_chunk(six, 4, 0, p, 8), 3); /* torch.chunk: 2, 2, 2 */
    expect_values(p[2], 0, 4, 5);
    cr_assert_eq(wk_chunk(six, 6, 0, p, 8), 6);
    cr_assert_eq(wk_chunk(wk_empty(WK_SHAPE(2, 0), WK_DTYPE_F32), 3, 1, p, 3), 3);
    expect_shape(p[1], 2, 0);

    cr_assert_eq(wk_split_sizes(six, (const int64_t[]){1, 0, 5}, 3, 0, p), 3);
    expect_values(p[0], 0, 0);
    expect_shape(p[1], 0);
    expect_values(p[2], 0, 1, 2, 3, 4, 5);
    wk_tensor *t = wk_transpose(IOTA(WK_DTYPE_F64, 3, 4), 0, 1); /* strided (4, 3) */
    cr_assert_eq(wk_split_sizes(t, (const int64_t[]){2, 1}, 2, 1, p), 2);
    expect_values(p[1], 0, 8, 9, 10, 11);
}

/* ---- errors ---- */

Test(index, errors)
{
    wk_tensor *x = IOTA(WK_DTYPE_F32, 2, 5), *s = wk_squeeze_all(tu_f32(WK_SHAPE(1), 1));
    /* index_select */
    expect_error(wk_index_select(x, 0, tu_i64(WK_SHAPE(2), 1, 2)),
                 "index_select: index 2 is out of range for dim 0 of size 2");
    expect_error(wk_index_select(x, 1, tu_i64(WK_SHAPE(2), -1, 0)),
                 "index_select: index -1 is out of range for dim 1 of size 5");
    expect_error(wk_index_select(x, 0, tu_f32(WK_SHAPE(1), 0)),
                 "index_select: index must be int64 or int32, got float32");
    expect_error(wk_index_select(x, 0, tu_i64(WK_SHAPE(1, 1), 0)),
                 "index_select: index must be 1-d, got shape [1, 1]");
    expect_error(wk_index_select(s, 0, tu_i64(WK_SHAPE(1), 0)),
                 "index_select: expected an input with at least 1 dim, got shape []");
    expect_error(wk_index_select(x, 2, tu_i64(WK_SHAPE(1), 0)),
                 "index_select: dim 2 is out of range for a 2-d tensor");
    /* gather */
    expect_error(wk_gather(x, 1, tu_i64(WK_SHAPE(2, 2), 0, 1, 7, 0)),
                 "gather: index 7 is out of range for dim 1 of size 5");
    expect_error(wk_gather(x, 1, tu_i32(WK_SHAPE(1, 1), -3)),
                 "gather: index -3 is out of range for dim 1 of size 5");
    expect_error(wk_gather(x, 1, tu_i64(WK_SHAPE(2), 0, 0)),
                 "gather: index shape [2] and input shape [2, 5] have different numbers of "
                 "dims");
    expect_error(wk_gather(x, 1, tu_i64(WK_SHAPE(3, 1), 0, 0, 0)),
                 "gather: index shape [3, 1] is larger than input shape [2, 5] outside dim 1");
    expect_error(wk_gather(x, 0, wk_to_dtype(tu_i64(WK_SHAPE(1, 1), 0), WK_DTYPE_U8)),
                 "gather: index must be int64 or int32, got uint8");
    expect_error(wk_gather(s, 0, tu_i64(WK_SHAPE(1), 0)),
                 "gather: expected an input with at least 1 dim");
    /* scatter_add */
    wk_tensor *src = IOTA(WK_DTYPE_F32, 2, 5);
    expect_error(wk_scatter_add(x, 0, tu_i64(WK_SHAPE(1, 2), 0, 2), src),
                 "scatter_add: index 2 is out of range for dim 0 of size 2");
    expect_error(wk_scatter_add(x, 0, tu_i64(WK_SHAPE(1, 1), 0), IOTA(WK_DTYPE_F64, 2, 5)),
                 "scatter_add: dtypes float32 (input) and float64 (src) differ");
    wk_tensor *bx = IOTA(WK_DTYPE_BOOL, 2, 2);
    expect_error(wk_scatter_add(bx, 0, tu_i64(WK_SHAPE(1, 1), 0), bx),
                 "scatter_add: dtype bool is not supported");
    wk_tensor *hx = IOTA(WK_DTYPE_F16, 2, 2);
    expect_error(wk_scatter_add(hx, 0, tu_i64(WK_SHAPE(1, 1), 0), hx),
                 "scatter_add: float16 is a storage type; convert with wk_to_dtype");
    expect_error(wk_scatter_add(x, 0, tu_i64(WK_SHAPE(1, 6), 0, 0, 0, 0, 0, 0), src),
                 "scatter_add: index shape [1, 6] is larger than src shape [2, 5]");
    expect_error(wk_scatter_add(x, 1, IOTA(WK_DTYPE_I64, 3, 1), IOTA(WK_DTYPE_F32, 3, 5)),
                 "scatter_add: index shape [3, 1] is larger than input shape [2, 5] outside "
                 "dim 1");
    expect_error(wk_scatter_add(x, 1, tu_i64(WK_SHAPE(1), 0), src),
                 "scatter_add: input [2, 5], index [1] and src [2, 5] must have the same "
                 "number of dims");
    /* index_add */
    expect_error(wk_index_add(x, 0, tu_i64(WK_SHAPE(2), 0, 2), src),
                 "index_add: index 2 is out of range for dim 0 of size 2");
    expect_error(wk_index_add(x, 0, tu_i64(WK_SHAPE(1, 2), 0, 1), src),
                 "index_add: index must be 1-d, got shape [1, 2]");
    expect_error(wk_index_add(x, 0, tu_i64(WK_SHAPE(3), 0, 1, 1), src),
                 "index_add: src shape [2, 5] does not match input shape [2, 5] with dim 0 "
                 "resized to the index length 3");
    expect_error(wk_index_add(x, 1, tu_i64(WK_SHAPE(5), 0, 1, 1, 0, 0), IOTA(WK_DTYPE_F32, 5)),
                 "index_add: src shape [5] does not match");
    expect_error(wk_index_add(x, 0, tu_i64(WK_SHAPE(2), 0, 1), IOTA(WK_DTYPE_F64, 2, 5)),
                 "index_add: dtypes float32 (input) and float64 (src) differ");
    expect_error(wk_index_add(bx, 0, tu_i64(WK_SHAPE(2), 0, 1), bx),
                 "index_add: dtype bool is not supported");
    expect_error(wk_index_add(hx, 0, tu_i64(WK_SHAPE(2), 0, 1), hx),
                 "index_add: float16 is a storage type");
    expect_error(wk_index_add(x, 0, tu_f32(WK_SHAPE(2), 0, 1), src),
                 "index_add: index must be int64 or int32, got float32");
    expect_error(wk_index_add(s, 0, tu_i64(WK_SHAPE(1), 0), s),
                 "index_add: expected an input with at least 1 dim");
    expect_error(wk_index_add(x, 0, tu_i64(WK_SHAPE(2), 0, 1), NULL),
                 "index_add: input 2 is NULL");
    expect_values(x, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9); /* never written */
    /* masked_fill */
    expect_error(wk_masked_fill(x, wk_to_dtype(IOTA(WK_DTYPE_BOOL, 5), WK_DTYPE_U8), 0),
                 "masked_fill: mask must be bool, got uint8");
    expect_error(wk_masked_fill(x, IOTA(WK_DTYPE_BOOL, 3), 0),
                 "masked_fill: shapes [2, 5] and [3] are not broadcastable");
    /* cat and stack */
    wk_tensor *y = IOTA(WK_DTYPE_F32, 3, 5);
    expect_error(wk_cat((wk_tensor *[]){x, y}, 2, 1),
                 "cat: shapes [2, 5] (tensor 0) and [3, 5] (tensor 1) differ outside dim 1");
    expect_error(wk_cat((wk_tensor *[]){x, IOTA(WK_DTYPE_F64, 2, 5)}, 2, 0),
                 "cat: dtypes float32 (tensor 0) and float64 (tensor 1) differ");
    expect_error(wk_cat((wk_tensor *[]){x, IOTA(WK_DTYPE_F32, 10)}, 2, 0),
                 "cat: shapes [2, 5] (tensor 0) and [10] (tensor 1) have different numbers "
                 "of dims");
    expect_error(wk_cat((wk_tensor *[]){s, s}, 2, 0), "cat: tensor 0 is 0-d");
    expect_error(wk_cat((wk_tensor *[]){x}, 0, 0), "cat: expected at least one tensor");
    expect_error(wk_cat(NULL, 2, 0), "cat: expected at least one tensor");
    expect_error(wk_cat((wk_tensor *[]){x, y}, 2, 2),
                 "cat: dim 2 is out of range for a 2-d tensor");
    expect_error(wk_stack((wk_tensor *[]){x, y}, 2, 0),
                 "stack: shapes [2, 5] (tensor 0) and [3, 5] (tensor 1) differ");
    expect_error(wk_stack((wk_tensor *[]){x, wk_to_dtype(x, WK_DTYPE_I64)}, 2, 0),
                 "stack: dtypes float32 (tensor 0) and int64 (tensor 1) differ");
    expect_error(wk_stack((wk_tensor *[]){x, x}, 2, 3),
                 "stack: dim 3 is out of range for a 3-d tensor");
    /* one_hot */
    expect_error(wk_one_hot(tu_i64(WK_SHAPE(2), 1, 3), 3),
                 "one_hot: label 3 is out of range for 3 classes");
    expect_error(wk_one_hot(tu_i64(WK_SHAPE(2), -1, 1), -1),
                 "one_hot: label -1 is out of range for 2 classes");
    expect_error(wk_one_hot(x, 3), "one_hot: labels must be int64 or int32, got float32");
    expect_error(wk_one_hot(wk_empty(WK_SHAPE(0), WK_DTYPE_I64), -1),
                 "one_hot: cannot infer num_classes from empty labels of shape [0]");
    expect_error(wk_one_hot(tu_i64(WK_SHAPE(1), 0), -2),
                 "one_hot: num_classes must be -1 or >= 0, got -2");
    /* split views */
    wk_tensor *p[4];
    wk_clear_error();
    cr_assert_eq(wk_split(x, 1, 1, p, 4), -1);
    cr_assert(strstr(wk_last_error(), "split: 5 pieces of dim 1 (size 5) do not fit in max_out 4"),
              "%s", wk_last_error());
    cr_assert_eq(wk_split(x, 0, 1, p, 4), -1);
    cr_assert(strstr(wk_last_error(), "split: split_size must be > 0"), "%s", wk_last_error());
    cr_assert_eq(wk_split(s, 1, 0, p, 4), -1);
    cr_assert(strstr(wk_last_error(),
                     "split: expected a tensor with at least 1 dim, got shape []"),
              "%s", wk_last_error());
    cr_assert_eq(wk_chunk(x, 0, 0, p, 4), -1);
    cr_assert(strstr(wk_last_error(), "chunk: chunks must be > 0, got 0"), "%s",
              wk_last_error());
    cr_assert_eq(wk_chunk(x, 5, 1, p, 4), -1);
    cr_assert(strstr(wk_last_error(), "chunk: 5 pieces"), "%s", wk_last_error());
    cr_assert_eq(wk_split_sizes(x, (const int64_t[]){2, 2}, 2, 1, p), -1);
    cr_assert(strstr(wk_last_error(),
                     "split_sizes: sizes sum to 4 but dim 1 of shape [2, 5] has size 5"),
              "%s", wk_last_error());
    cr_assert_eq(wk_split_sizes(x, (const int64_t[]){6, -1}, 2, 1, p), -1);
    cr_assert(strstr(wk_last_error(), "split_sizes: size -1 at position 1 is negative"), "%s",
              wk_last_error());
    /* the front-end, names and NULL propagation */
    expect_error(wk_index_apply(WK_INDEX_COUNT, &(wk_index_args){0}), "index: invalid op");
    cr_assert_str_eq(wk_index_name(WK_INDEX_SCATTER_ADD), "scatter_add");
    wk_clear_error();
    cr_assert_null(wk_gather(x, 0, NULL));
    cr_assert_str_eq(wk_last_error(), "gather: input 1 is NULL");
    cr_assert_null(wk_cat((wk_tensor *[]){x, NULL}, 2, 0));
    cr_assert_str_eq(wk_last_error(), "gather: input 1 is NULL"); /* first message kept */
    wk_clear_error();
    cr_assert_null(wk_cat((wk_tensor *[]){x, NULL}, 2, 0));
    cr_assert_str_eq(wk_last_error(), "cat: input 1 is NULL");
}

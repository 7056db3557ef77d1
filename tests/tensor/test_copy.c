/* copy_, fill_, clone and dtype conversion over every layout. */
#include "test_util.h"

TestSuite(copy, .init = tu_setup, .fini = tu_teardown);

Test(copy, broadcast_copy_into_view)
{
    wk_tensor *dst = wk_empty(WK_SHAPE(3, 4), WK_DTYPE_F32);
    wk_fill_(dst, 0);
    wk_tensor *row = tu_f32(WK_SHAPE(4), 1, 2, 3, 4);
    cr_assert_not_null(wk_copy_(dst, row));
    expect_values(dst, 0, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4);
    wk_tensor *col = wk_slice(dst, 1, 0, 4, 2); /* strided destination */
    wk_copy_(col, tu_f32(WK_SHAPE(3, 1), 9, 8, 7));
    expect_values(dst, 0, 9, 2, 9, 4, 8, 2, 8, 4, 7, 2, 7, 4);
    expect_error(wk_copy_(row, dst), "does not broadcast to destination shape [4]");
}

Test(copy, transposed_large_copy_matches)
{
    /* Large enough to take the parallel path; odd sizes. */
    int64_t R = 333, C = 517;
    wk_tensor *a = wk_empty(WK_SHAPE(R, C), WK_DTYPE_F64);
    double *p = wk_data(a);
    for (int64_t i = 0; i < R * C; i++) p[i] = (double)i;
    wk_tensor *t = wk_contiguous(wk_transpose(a, 0, 1));
    const double *q = wk_data(t);
    for (int64_t i = 0; i < C; i++)
        for (int64_t j = 0; j < R; j++)
            cr_assert_eq(q[i * R + j], p[j * C + i]);
}

Test(copy, casts_between_dtypes)
{
    wk_tensor *f = tu_f32(WK_SHAPE(6), -1.5f, 0.0f, 2.7f, 255.0f, 1e10f, NAN);
    expect_values(wk_to_dtype(f, WK_DTYPE_I64), 0, -1, 0, 2, 255, 1e10, 0);
    expect_values(wk_to_dtype(f, WK_DTYPE_I32), 0, -1, 0, 2, 255, 2147483647, 0);
    expect_values(wk_to_dtype(f, WK_DTYPE_BOOL), 0, 1, 0, 1, 1, 1, 1);
    wk_tensor *d = wk_to_dtype(f, WK_DTYPE_F64);
    cr_assert_eq(d->dtype, WK_DTYPE_F64);
    cr_assert_eq(wk_get(d, (int64_t[]){2}), (double)2.7f);
    wk_tensor *u = wk_from_array((uint8_t[]){0, 128, 255}, WK_SHAPE(3), WK_DTYPE_U8);
    expect_values(wk_to_dtype(u, WK_DTYPE_F32), 0, 0, 128, 255);
    wk_tensor *big = tu_i64(WK_SHAPE(2), INT64_MAX, -3);
    wk_tensor *c = wk_to_dtype(wk_to_dtype(big, WK_DTYPE_I32), WK_DTYPE_I64);
    cr_assert_eq(((int64_t *)wk_data(c))[1], -3);
    wk_tensor *i32 = wk_from_array((int32_t[]){-7, 9}, WK_SHAPE(2), WK_DTYPE_I32);
    cr_assert_eq(((int64_t *)wk_data(wk_to_dtype(i32, WK_DTYPE_I64)))[0], -7);
}

Test(copy, half_types_round_trip)
{
    wk_tensor *f = tu_f32(WK_SHAPE(4), 1.0f, -2.5f, 0.1f, 65504.0f);
    wk_tensor *h = wk_to_dtype(f, WK_DTYPE_F16);
    cr_assert_eq(((uint16_t *)wk_data(h))[0], 0x3c00);
    expect_values(wk_to_dtype(h, WK_DTYPE_F32), 1e-3, 1.0, -2.5, 0.1, 65504.0);
    wk_tensor *b = wk_to_dtype(f, WK_DTYPE_BF16);
    expect_values(wk_to_dtype(b, WK_DTYPE_F32), 1e-2, 1.0, -2.5, 0.1, 65504.0);
    expect_values(wk_to_dtype(b, WK_DTYPE_F64), 1e-2, 1.0, -2.5, 0.1, 65504.0);
}

Test(copy, fill_every_dtype)
{
    for (int d = 0; d < WK_DTYPE_COUNT; d++) {
        wk_tensor *t = wk_empty(WK_SHAPE(5, 3), (wk_dtype)d);
        wk_fill_(wk_slice(t, 1, 1, 3, 1), 1);
        wk_fill_(wk_select(t, 1, 0), 0);
        for (int64_t i = 0; i < 15; i++)
            cr_assert_eq(tu_at(t, i), i % 3 ? 1.0 : 0.0, "dtype %s", wk_dtype_name(d));
    }
}

Test(copy, clone_is_independent)
{
    wk_tensor *a = tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4);
    wk_tensor *c = wk_clone(wk_transpose(a, 0, 1));
    wk_fill_(a, 0);
    expect_values(c, 0, 1, 3, 2, 4);
    cr_assert(wk_is_contiguous(c));
}

Test(copy, zero_size)
{
    wk_tensor *a = wk_empty(WK_SHAPE(0, 3), WK_DTYPE_F32);
    cr_assert_not_null(wk_clone(a));
    cr_assert_not_null(wk_fill_(a, 1));
}

/* Views: reshape/view, transpose, permute, squeeze/unsqueeze, slice/narrow/select,
 * expand, flatten, contiguous; they share storage and fail cleanly on bad input. */
#include "test_util.h"

TestSuite(view, .init = tu_setup, .fini = tu_teardown);

static wk_tensor *iota(int64_t n)
{
    wk_tensor *t = wk_empty(WK_SHAPE(n), WK_DTYPE_F32);
    float *p = wk_data(t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)i;
    return t;
}

Test(view, view_shares_storage_and_infers)
{
    wk_tensor *a = iota(12);
    wk_tensor *v = wk_view(a, WK_SHAPE(3, -1));
    expect_shape(v, 3, 4);
    cr_assert_eq(v->storage, a->storage);
    expect_values(v, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11);
    expect_error(wk_view(a, WK_SHAPE(5, -1)), "shape [5, -1] is invalid for input of size 12");
    expect_error(wk_view(a, WK_SHAPE(-1, -1)), "only one -1");
    expect_error(wk_view(a, WK_SHAPE(2, 5)), "invalid for input of size 12");
}

Test(view, view_of_transposed_fails_reshape_copies)
{
    wk_tensor *a = wk_view(iota(6), WK_SHAPE(2, 3));
    wk_tensor *t = wk_transpose(a, 0, 1);
    expect_shape(t, 3, 2);
    cr_assert_not(wk_is_contiguous(t));
    expect_values(t, 0, 0, 3, 1, 4, 2, 5);
    expect_error(wk_view(t, WK_SHAPE(6)), "not compatible");
    wk_tensor *r = wk_reshape(t, WK_SHAPE(6));
    cr_assert_neq(r->storage, a->storage);
    expect_values(r, 0, 0, 3, 1, 4, 2, 5);
    /* Splitting a transposed dim is still a view. */
    wk_tensor *b = wk_transpose(wk_view(iota(24), WK_SHAPE(4, 6)), 0, 1); /* (6, 4) */
    wk_tensor *s = wk_view(b, WK_SHAPE(2, 3, 4));
    cr_assert_eq(s->storage, b->storage);
    cr_assert_eq(s->strides[0], 3);
    cr_assert_eq(s->strides[1], 1);
    cr_assert_eq(s->strides[2], 6);
}

Test(view, permute_and_errors)
{
    wk_tensor *a = wk_view(iota(24), WK_SHAPE(2, 3, 4));
    wk_tensor *p = wk_permute(a, WK_DIMS(2, 0, 1));
    expect_shape(p, 4, 2, 3);
    cr_assert_eq(wk_get(p, (int64_t[]){3, 1, 2}), 1 * 12 + 2 * 4 + 3);
    expect_error(wk_permute(a, WK_DIMS(0, 0, 1)), "appears twice");
    expect_error(wk_permute(a, WK_DIMS(0, 1)), "2 dims given for a 3-d tensor");
    expect_error(wk_permute(a, WK_DIMS(0, 1, 3)), "dim 3 is out of range");
    expect_error(wk_transpose(a, 0, -4), "dim -4 is out of range for a 3-d tensor");
}

Test(view, squeeze_unsqueeze)
{
    wk_tensor *a = wk_view(iota(6), WK_SHAPE(1, 6, 1));
    expect_shape(wk_squeeze(a, 0), 6, 1);
    expect_shape(wk_squeeze(a, 1), 1, 6, 1);
    expect_shape(wk_squeeze_all(a), 6);
    expect_shape(wk_unsqueeze(a, -1), 1, 6, 1, 1);
    wk_tensor *u = wk_unsqueeze(iota(6), 0);
    expect_shape(u, 1, 6);
    expect_shape(wk_unsqueeze(u, 1), 1, 1, 6);
    expect_error(wk_unsqueeze(u, 3), "out of range");
}

Test(view, slice_narrow_select)
{
    wk_tensor *a = wk_view(iota(20), WK_SHAPE(4, 5));
    wk_tensor *s = wk_slice(a, 1, 1, INT64_MAX, 2); /* a[:, 1::2] */
    expect_shape(s, 4, 2);
    expect_values(s, 0, 1, 3, 6, 8, 11, 13, 16, 18);
    expect_values(wk_slice(a, 0, -2, INT64_MAX, 1), 0, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19);
    expect_shape(wk_slice(a, 0, 3, 1, 1), 0, 5);
    expect_values(wk_narrow(a, 1, 3, 2), 0, 3, 4, 8, 9, 13, 14, 18, 19);
    expect_error(wk_narrow(a, 1, 3, 3), "out of range for dim 1 of size 5");
    expect_error(wk_slice(a, 0, 0, 2, 0), "step must be >= 1");
    wk_tensor *row = wk_select(a, 0, -1);
    expect_shape(row, 5);
    expect_values(row, 0, 15, 16, 17, 18, 19);
    expect_values(wk_select(a, 1, 2), 0, 2, 7, 12, 17);
    expect_error(wk_select(a, 0, 4), "index 4 is out of range");
}

Test(view, expand_broadcasts_with_zero_strides)
{
    wk_tensor *a = wk_view(iota(3), WK_SHAPE(3, 1));
    wk_tensor *e = wk_expand(a, WK_SHAPE(2, 3, 4));
    expect_shape(e, 2, 3, 4);
    cr_assert_eq(e->strides[0], 0);
    cr_assert_eq(e->strides[2], 0);
    cr_assert_eq(wk_get(e, (int64_t[]){1, 2, 3}), 2.0);
    expect_shape(wk_expand(a, WK_SHAPE(-1, 7)), 3, 7);
    expect_error(wk_expand(a, WK_SHAPE(4, 4)), "must match the new size 4 or be 1");
    expect_error(wk_expand(a, WK_SHAPE(4)), "cannot expand shape [3, 1] to 1 dims");
    wk_tensor *c = wk_contiguous(e);
    cr_assert(wk_is_contiguous(c));
    cr_assert_eq(wk_get(c, (int64_t[]){0, 1, 2}), 1.0);
}

Test(view, flatten)
{
    wk_tensor *a = wk_view(iota(24), WK_SHAPE(2, 3, 4));
    expect_shape(wk_flatten(a, 1, -1), 2, 12);
    expect_shape(wk_flatten(a, 0, 1), 6, 4);
    wk_tensor *t = wk_flatten(wk_transpose(a, 1, 2), 1, 2); /* needs a copy */
    expect_shape(t, 2, 12);
    cr_assert_eq(wk_get(t, (int64_t[]){0, 1}), 4.0);
    expect_error(wk_flatten(a, 2, 1), "comes after");
}

Test(view, views_outlive_their_base)
{
    wk_frame_end();
    wk_tensor *a = iota(10);
    wk_tensor *v = wk_slice(a, 0, 5, 10, 1);
    wk_tensor_free(a);
    expect_values(v, 0, 5, 6, 7, 8, 9);
    wk_tensor_free(v);
    wk_frame_begin();
}

Test(view, contiguous_of_contiguous_shares)
{
    wk_tensor *a = iota(4);
    wk_tensor *c = wk_contiguous(a);
    cr_assert_eq(c->storage, a->storage);
    cr_assert_neq(c, a);
}

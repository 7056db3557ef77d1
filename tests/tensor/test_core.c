/* Core tensor: creation, properties, dtypes, conversions, frames and lifetimes, errors. */
#include "test_util.h"

TestSuite(core, .init = tu_setup, .fini = tu_teardown);

Test(core, empty_has_contiguous_strides)
{
    wk_tensor *t = wk_empty(WK_SHAPE(2, 3, 4), WK_DTYPE_F32);
    expect_shape(t, 2, 3, 4);
    cr_assert_eq(t->strides[0], 12);
    cr_assert_eq(t->strides[1], 4);
    cr_assert_eq(t->strides[2], 1);
    cr_assert_eq(wk_numel(t), 24);
    cr_assert(wk_is_contiguous(t));
    cr_assert_eq((uintptr_t)wk_data(t) % 64, 0, "data is 64-byte aligned");
}

Test(core, zero_size_and_scalar)
{
    wk_tensor *z = wk_empty(WK_SHAPE(3, 0, 2), WK_DTYPE_F64);
    cr_assert_eq(wk_numel(z), 0);
    wk_tensor *s = wk_empty(NULL, 0, WK_DTYPE_I64);
    cr_assert_eq(wk_numel(s), 1);
    wk_fill_(s, 7);
    cr_assert_eq(wk_item(s), 7.0);
}

Test(core, bad_shapes_are_errors)
{
    expect_error(wk_empty(WK_SHAPE(2, -1), WK_DTYPE_F32), "negative size -1");
    expect_error(wk_empty(WK_SHAPE(1, 2, 3, 4, 5, 6, 7, 8, 9), WK_DTYPE_F32), "9 dims");
    expect_error(wk_empty(WK_SHAPE(2), (wk_dtype)99), "invalid dtype");
    expect_error(wk_empty(WK_SHAPE(INT64_MAX, 4), WK_DTYPE_F32), "too many elements");
    expect_error(wk_from_array(NULL, WK_SHAPE(2), WK_DTYPE_F32), "data is NULL");
}

Test(core, null_input_keeps_first_message)
{
    wk_clear_error();
    wk_tensor *a = wk_empty(WK_SHAPE(2, -3), WK_DTYPE_F32);
    cr_assert_null(a);
    char first[256];
    snprintf(first, sizeof first, "%s", wk_last_error());
    cr_assert_null(wk_transpose(a, 0, 1));
    cr_assert_null(wk_clone(a));
    cr_assert_str_eq(wk_last_error(), first);
    wk_clear_error();
    cr_assert_null(wk_clone(NULL));
    cr_assert(strstr(wk_last_error(), "clone: input 0 is NULL"));
}

Test(core, dtype_names_and_sizes)
{
    cr_assert_str_eq(wk_dtype_name(WK_DTYPE_F32), "float32");
    cr_assert_str_eq(wk_dtype_name(WK_DTYPE_BF16), "bfloat16");
    cr_assert_eq(wk_dtype_size(WK_DTYPE_F64), 8);
    cr_assert_eq(wk_dtype_size(WK_DTYPE_BOOL), 1);
    cr_assert_eq(wk_dtype_size(WK_DTYPE_F16), 2);
    cr_assert(wk_dtype_is_float(WK_DTYPE_BF16));
    cr_assert_not(wk_dtype_is_float(WK_DTYPE_I32));
    char b[16];
    cr_assert_str_eq(wk_device_str(WK_CPU, b, sizeof b), "cpu");
}

Test(core, bf16_rounds_to_nearest_even)
{
    cr_assert_eq(wk_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_eq(wk_bf16_to_f32(0x3f80), 1.0f);
    /* 1 + 2^-8 is halfway between bf16 1.0 and 1.0078125: ties go to even (1.0). */
    cr_assert_eq(wk_f32_to_bf16(1.00390625f), 0x3f80);
    cr_assert_eq(wk_f32_to_bf16(1.01171875f), 0x3f82); /* tie to even upward */
    cr_assert(isnan(wk_bf16_to_f32(wk_f32_to_bf16(NAN))));
    cr_assert(isinf(wk_bf16_to_f32(wk_f32_to_bf16(INFINITY))));
    cr_assert_eq(wk_bf16_to_f32(wk_f32_to_bf16(-3.140625f)), -3.140625f);
}

Test(core, f16_conversions)
{
    cr_assert_eq(wk_f32_to_f16(1.0f), 0x3c00);
    cr_assert_eq(wk_f32_to_f16(-2.0f), 0xc000);
    cr_assert_eq(wk_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(wk_f32_to_f16(65520.0f), 0x7c00, "rounds to inf past the max");
    cr_assert_eq(wk_f32_to_f16(5.9604645e-08f), 0x0001, "smallest subnormal");
    cr_assert_eq(wk_f16_to_f32(0x0001), 5.9604645e-08f);
    cr_assert_eq(wk_f32_to_f16(1.0f / 3.0f), 0x3555);
    cr_assert_eq(wk_f16_to_f32(0x3555), 0.333251953125f);
    cr_assert(isnan(wk_f16_to_f32(wk_f32_to_f16(NAN))));
    /* Every f16 value survives a round trip through f32. */
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue; /* NaN payloads */
        cr_assert_eq(wk_f32_to_f16(wk_f16_to_f32((uint16_t)h)), h, "h=%04x", h);
    }
}

Test(core, frames_release_and_keep)
{
    wk_tensor *kept;
    wk_frame_begin();
    cr_assert_eq(wk_frame_depth(), 2);
    wk_tensor *a = wk_empty(WK_SHAPE(4), WK_DTYPE_F32);
    cr_assert_eq(a->frame, 2);
    wk_fill_(a, 3);
    kept = wk_keep(wk_alias(a));
    cr_assert_eq(kept->frame, 1);
    wk_frame_end();
    /* a is released, but the kept alias still holds the storage. */
    cr_assert_eq(wk_get(kept, (int64_t[]){3}), 3.0);
    cr_assert_eq(kept->frame, 1);
    wk_tensor *p = wk_keep(kept); /* outermost test frame -> persistent */
    cr_assert_eq(p->frame, 0);
    wk_tensor_free(p);
}

Test(core, early_free_inside_frame)
{
    wk_frame_begin();
    wk_tensor *a = wk_empty(WK_SHAPE(8), WK_DTYPE_F32);
    wk_tensor *b = wk_empty(WK_SHAPE(8), WK_DTYPE_F32);
    wk_tensor_free(a); /* the frame must not release it again */
    wk_fill_(b, 1);
    wk_frame_end();
}

Test(core, persistent_outside_frames)
{
    wk_frame_end(); /* leave the test's frame */
    cr_assert_eq(wk_frame_depth(), 0);
    wk_tensor *t = wk_empty(WK_SHAPE(2), WK_DTYPE_F32);
    cr_assert_eq(t->frame, 0);
    wk_tensor_free(t);
    wk_frame_begin();
}

Test(core, item_and_get)
{
    wk_tensor *t = tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4);
    cr_assert_eq(wk_get(t, (int64_t[]){1, 0}), 3.0);
    cr_assert(isnan(wk_item(t)));
    cr_assert(strstr(wk_last_error(), "one element"));
    cr_assert(isnan(wk_get(t, (int64_t[]){2, 0})));
    cr_assert(strstr(wk_last_error(), "out of range"));
    cr_assert_eq(wk_size(t, -1), 2);
    cr_assert_eq(wk_size(t, 2), -1);
    cr_assert(strstr(wk_last_error(), "dim 2 is out of range for a 2-d tensor"));
}

Test(core, from_blob_does_not_own)
{
    float buf[6] = {1, 2, 3, 4, 5, 6};
    wk_tensor *t = wk_from_blob(buf, WK_SHAPE(2, 3), WK_DTYPE_F32);
    cr_assert_eq(wk_data(t), buf);
    wk_fill_(t, 0);
    cr_assert_eq(buf[5], 0.0f);
}

Test(core, threads_setting)
{
    wk_set_num_threads(1);
    cr_assert_eq(wk_get_num_threads(), 1);
    wk_set_num_threads(2);
    cr_assert_eq(wk_get_num_threads(), 2);
    wk_set_num_threads(0);
    cr_assert_eq(wk_get_num_threads(), 2, "default comes from WK_NUM_THREADS=2");
}

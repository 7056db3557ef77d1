/* zeros/ones/full(_like), scalar, arange, linspace, eye. Expected values are written by
 * hand or are torch 1.13's results for the same call. */
#include "test_util.h"

TestSuite(creation, .init = tu_setup, .fini = tu_teardown);

static const wk_dtype all_dtypes[] = {WK_DTYPE_F32, WK_DTYPE_F64, WK_DTYPE_I32, WK_DTYPE_I64,
                                      WK_DTYPE_U8,  WK_DTYPE_BOOL, WK_DTYPE_BF16, WK_DTYPE_F16};

static void expect_all(const wk_tensor *t, double v, const char *what)
{
    cr_assert_not_null(t, "%s: %s", what, wk_last_error());
    cr_assert(wk_is_contiguous(t), "%s: not contiguous", what);
    for (int64_t i = 0; i < wk_numel(t); i++)
        cr_assert_eq(tu_at(t, i), v, "%s[%lld] = %g, expected %g", what, (long long)i,
                     tu_at(t, i), v);
}

Test(creation, zeros_ones_full_every_dtype)
{
    for (size_t k = 0; k < sizeof all_dtypes / sizeof all_dtypes[0]; k++) {
        wk_dtype d = all_dtypes[k];
        wk_tensor *z = wk_zeros(WK_SHAPE(3, 5), d);
        expect_shape(z, 3, 5);
        cr_assert_eq(z->dtype, d);
        cr_assert_eq(z->device.type, WK_DEVICE_CPU);
        expect_all(z, 0, wk_dtype_name(d));
        expect_all(wk_ones(WK_SHAPE(2, 1, 3), d), 1, wk_dtype_name(d));
        expect_all(wk_full(WK_SHAPE(4), 1, d), 1, wk_dtype_name(d));
    }
    expect_all(wk_full(WK_SHAPE(2, 2), 2.5, WK_DTYPE_F32), 2.5, "full f32");
    expect_all(wk_full(WK_SHAPE(2), -0.1, WK_DTYPE_F64), -0.1, "full f64");
    expect_all(wk_full(WK_SHAPE(2), 3.7, WK_DTYPE_I64), 3, "full i64 truncates");
    expect_all(wk_full(WK_SHAPE(2), -3.7, WK_DTYPE_I32), -3, "full i32 truncates");
    expect_all(wk_full(WK_SHAPE(2), 0.5, WK_DTYPE_BOOL), 1, "full bool");
    expect_all(wk_full(WK_SHAPE(2), 2.0 / 3.0, WK_DTYPE_BF16), 0.66796875, "full bf16");
    cr_assert_eq(((uint16_t *)wk_data(wk_ones(WK_SHAPE(1), WK_DTYPE_F16)))[0], 0x3c00);
}

Test(creation, large_and_empty_shapes)
{
    wk_tensor *t = wk_full(WK_SHAPE(1000, 1001), 7, WK_DTYPE_F64); /* parallel path */
    expect_shape(t, 1000, 1001);
    const double *p = wk_data(t);
    for (int64_t i = 0; i < 1000 * 1001; i++) cr_assert_eq(p[i], 7.0);
    expect_shape(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F32), 0, 3);
    expect_shape(wk_ones(WK_SHAPE(4, 0), WK_DTYPE_I64), 4, 0);
    wk_tensor *one = wk_ones(WK_SHAPE(1), WK_DTYPE_F32);
    cr_assert_eq(wk_item(one), 1.0);
}

Test(creation, like_variants)
{
    wk_tensor *a = wk_from_array((int32_t[]){1, 2, 3, 4, 5, 6}, WK_SHAPE(2, 3), WK_DTYPE_I32);
    wk_tensor *t = wk_transpose(a, 0, 1); /* non-contiguous input */
    wk_tensor *z = wk_zeros_like(t);
    expect_shape(z, 3, 2);
    cr_assert_eq(z->dtype, WK_DTYPE_I32);
    expect_all(z, 0, "zeros_like");
    expect_all(wk_ones_like(t), 1, "ones_like");
    wk_tensor *f = wk_full_like(wk_expand(tu_f32(WK_SHAPE(1), 1), WK_SHAPE(4, 3)), -2);
    expect_shape(f, 4, 3);
    expect_all(f, -2, "full_like of an expanded view");
    expect_values(a, 0, 1, 2, 3, 4, 5, 6); /* input untouched */
    expect_error(wk_zeros_like(NULL), "zeros_like: input 0 is NULL");
    expect_error(wk_full_like(NULL, 1), "full_like: input 0 is NULL");
    wk_tensor *fake = wk_alias(a);
    fake->device = (wk_device){WK_DEVICE_CUDA, 0};
    expect_error(wk_ones_like(fake), "ones_like: no kernel for device cuda:0");
    fake->device = WK_CPU;
}

Test(creation, scalar)
{
    wk_tensor *s = wk_scalar(2.5, WK_DTYPE_F64);
    cr_assert_not_null(s);
    cr_assert_eq(s->ndim, 0);
    cr_assert_eq(wk_numel(s), 1);
    cr_assert_eq(wk_item(s), 2.5);
    cr_assert_eq(wk_item(wk_scalar(-7.9, WK_DTYPE_I64)), -7);
    cr_assert_eq(wk_item(wk_scalar(1, WK_DTYPE_BOOL)), 1);
}

Test(creation, shape_errors)
{
    expect_error(wk_zeros(WK_SHAPE(2, -1), WK_DTYPE_F32),
                 "zeros: negative size -1 in shape [2, -1]");
    expect_error(wk_full(WK_SHAPE(1, 1, 1, 1, 1, 1, 1, 1, 1), 0, WK_DTYPE_F32),
                 "full: 9 dims given, expected 0..8");
    expect_error(wk_ones(NULL, 2, WK_DTYPE_F32), "ones: shape is NULL for 2 dims");
    expect_error(wk_ones(WK_SHAPE(2), (wk_dtype)42), "ones: invalid dtype 42");
    expect_error(wk_zeros(WK_SHAPE(INT64_MAX, 4), WK_DTYPE_F32),
                 "zeros: shape [9223372036854775807, 4] has too many elements");
}

Test(creation, arange_lengths_and_values)
{
    /* torch.arange(0, 1, 0.1): 10 elements, start + i*step in double, rounded */
    wk_tensor *a = wk_arange(0, 1, 0.1, WK_DTYPE_F32);
    expect_shape(a, 10);
    cr_assert_eq(a->dtype, WK_DTYPE_F32);
    for (int i = 0; i < 10; i++)
        cr_assert_eq(((float *)wk_data(a))[i], (float)(0.1 * i));
    wk_tensor *d = wk_arange(0, 1, 0.1, WK_DTYPE_F64);
    expect_values(d, 0, 0.0, 0.1, 0.2, 0.30000000000000004, 0.4, 0.5, 0.6000000000000001,
                  0.7000000000000001, 0.8, 0.9);
    /* torch.arange(1, -1, -0.3).tolist() */
    expect_values(wk_arange(1, -1, -0.3, WK_DTYPE_F32), 0, 1.0, 0.699999988079071,
                  0.4000000059604645, 0.10000000149011612, -0.20000000298023224, -0.5,
                  -0.800000011920929);
    expect_values(wk_arange(0, 10, 3, WK_DTYPE_I64), 0, 0, 3, 6, 9);
    expect_values(wk_arange(-3, 4, 2, WK_DTYPE_I32), 0, -3, -1, 1, 3);
    expect_values(wk_arange(5, 0, -2, WK_DTYPE_U8), 0, 5, 3, 1);
    /* integer dtypes truncate the arguments: torch.arange(0.5, 5, 1.5, dtype=int64) */
    expect_values(wk_arange(0.5, 5, 1.5, WK_DTYPE_I64), 0, 0, 1, 2, 3, 4);
    expect_shape(wk_arange(0, 0, 1, WK_DTYPE_I64), 0);
    expect_shape(wk_arange(2, 2, -1, WK_DTYPE_F32), 0);
    expect_shape(wk_arange(0, 1, 0.3, WK_DTYPE_F64), 4); /* ceil(3.33) */
    /* large: the parallel path */
    wk_tensor *big = wk_arange(0, 1000 * 1001, 1, WK_DTYPE_F64);
    expect_shape(big, 1000 * 1001);
    const double *p = wk_data(big);
    for (int64_t i = 0; i < 1000 * 1001; i++) cr_assert_eq(p[i], (double)i);
    wk_tensor *bi = wk_arange(7, 7 + 3 * 200001, 3, WK_DTYPE_I64);
    expect_shape(bi, 200001);
    cr_assert_eq(((int64_t *)wk_data(bi))[200000], 7 + 3 * 200000);
}

Test(creation, arange_errors)
{
    expect_error(wk_arange(0, 1, 0, WK_DTYPE_F32), "arange: step must be nonzero");
    expect_error(wk_arange(0, 1, 0.1, WK_DTYPE_I64),
                 "arange: step must be nonzero (step 0.1 truncates to 0 for int64)");
    expect_error(wk_arange(0, 1, -1, WK_DTYPE_F32), "inconsistent with step sign");
    expect_error(wk_arange(0, -1, 1, WK_DTYPE_I64), "arange: step 1 has the wrong sign");
    expect_error(wk_arange(0, INFINITY, 1, WK_DTYPE_F64), "arange: unsupported range");
    expect_error(wk_arange(NAN, 1, 1, WK_DTYPE_F64), "arange: unsupported range");
    expect_error(wk_arange(0, 1e300, 1e-300, WK_DTYPE_F64), "too many elements");
    expect_error(wk_arange(0, 1e19, 1, WK_DTYPE_I64), "out of range for int64");
    expect_error(wk_arange(0, 4, 1, WK_DTYPE_BOOL), "arange: dtype bool is not supported");
    expect_error(wk_arange(0, 4, 1, WK_DTYPE_BF16),
                 "arange: bfloat16 is a storage type; make a float32 tensor and convert it "
                 "with wk_to_dtype");
}

Test(creation, linspace_values)
{
    expect_values(wk_linspace(0, 1, 5, WK_DTYPE_F32), 0, 0, 0.25, 0.5, 0.75, 1);
    /* torch.linspace(0, 1, 7).tolist(): exact */
    expect_values(wk_linspace(0, 1, 7, WK_DTYPE_F32), 0, 0.0, 0.1666666716337204,
                  0.3333333432674408, 0.5, 0.6666666269302368, 0.8333333134651184, 1.0);
    expect_values(wk_linspace(2, -2, 5, WK_DTYPE_F64), 0, 2, 1, 0, -1, -2);
    expect_values(wk_linspace(0, 10, 4, WK_DTYPE_I64), 0, 0, 3, 6, 10);
    expect_values(wk_linspace(-3, 7, 11, WK_DTYPE_I32), 0, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7);
    expect_values(wk_linspace(0, 255, 3, WK_DTYPE_U8), 0, 0, 127, 255);
    expect_values(wk_linspace(3, 9, 1, WK_DTYPE_F32), 0, 3);
    expect_shape(wk_linspace(0, 1, 0, WK_DTYPE_F32), 0);
    expect_error(wk_linspace(0, 1, -1, WK_DTYPE_F32),
                 "linspace: number of steps must be non-negative, got -1");
    expect_error(wk_linspace(0, 1, 3, WK_DTYPE_BOOL), "linspace: dtype bool is not supported");
    expect_error(wk_linspace(0, 1, 3, WK_DTYPE_F16), "linspace: float16 is a storage type");
}

Test(creation, linspace_large_endpoints_exact)
{
    /* Both endpoints exact and every value within an ulp or two of the exact one (torch's
     * vectorised path may differ from its own scalar formula by one ulp). */
    int64_t n = 1000001;
    wk_tensor *f = wk_linspace(-1, 1, n, WK_DTYPE_F32);
    wk_tensor *d = wk_linspace(0.1, 0.9, n, WK_DTYPE_F64);
    const float *pf = wk_data(f);
    const double *pd = wk_data(d);
    cr_assert_eq(pf[0], -1.0f);
    cr_assert_eq(pf[n - 1], 1.0f);
    cr_assert_eq(pd[0], 0.1);
    cr_assert_eq(pd[n - 1], 0.9);
    for (int64_t i = 0; i < n; i++) {
        double ef = -1 + 2.0 * (double)i / (double)(n - 1);
        double ed = 0.1 + 0.8 * (double)i / (double)(n - 1);
        cr_assert(fabs(pf[i] - ef) <= 2.4e-7, "f32[%lld] = %.9g, expected %.9g", (long long)i,
                  pf[i], ef);
        cr_assert(fabs(pd[i] - ed) <= 4.5e-16, "f64[%lld] = %.17g, expected %.17g",
                  (long long)i, pd[i], ed);
    }
    /* symmetric around the middle: the second half is stepped back from end */
    for (int64_t i = 0; i < n; i++) cr_assert_eq(pf[i], -pf[n - 1 - i]);
}

Test(creation, eye)
{
    expect_values(wk_eye(3, -1, WK_DTYPE_F32), 0, 1, 0, 0, 0, 1, 0, 0, 0, 1);
    wk_tensor *r = wk_eye(2, 3, WK_DTYPE_BOOL);
    expect_shape(r, 2, 3);
    expect_values(r, 0, 1, 0, 0, 0, 1, 0);
    expect_values(wk_eye(3, 2, WK_DTYPE_I64), 0, 1, 0, 0, 1, 0, 0);
    expect_shape(wk_eye(0, -1, WK_DTYPE_F32), 0, 0);
    expect_shape(wk_eye(2, 0, WK_DTYPE_F32), 2, 0);
    wk_tensor *big = wk_eye(1000, 1001, WK_DTYPE_F64);
    const double *p = wk_data(big);
    for (int64_t i = 0; i < 1000; i++)
        for (int64_t j = 0; j < 1001; j++)
            cr_assert_eq(p[i * 1001 + j], i == j ? 1.0 : 0.0);
    for (size_t k = 0; k < sizeof all_dtypes / sizeof all_dtypes[0]; k++) {
        wk_tensor *e = wk_eye(2, 2, all_dtypes[k]);
        expect_values(e, 0, 1, 0, 0, 1);
    }
    expect_error(wk_eye(-1, 2, WK_DTYPE_F32), "eye: n must be greater or equal to 0, got -1");
}

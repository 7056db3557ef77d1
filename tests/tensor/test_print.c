/* Printing: every expected string below is what torch 1.13 prints for the same tensor
 * (obtained with repr() on the equivalent torch tensor). */
#include <stdlib.h>

#include "test_util.h"

#include <criterion/redirect.h>

TestSuite(print, .init = tu_setup, .fini = tu_teardown);

static void expect_str_impl(const wk_tensor *t, const char *expected, const char *what)
{
    char *s = wk_tensor_str(t);
    cr_assert_not_null(s, "%s: wk_tensor_str failed: %s", what, wk_last_error());
    cr_assert_str_eq(s, expected, "%s:\n--- got\n%s\n--- expected\n%s", what, s, expected);
    free(s);
}
#define expect_str(t, expected) expect_str_impl(t, expected, #t)

Test(print, float_matrix)
{
    expect_str(tu_f32(WK_SHAPE(2, 2), 0.1f, -2, 3.5f, 4), "tensor([[ 0.1000, -2.0000],\n"
                                                          "        [ 3.5000,  4.0000]])");
    /* the same values through a transposed view */
    wk_tensor *t = wk_transpose(tu_f32(WK_SHAPE(2, 2), 0.1f, 3.5f, -2, 4), 0, 1);
    expect_str(t, "tensor([[ 0.1000, -2.0000],\n"
                  "        [ 3.5000,  4.0000]])");
    expect_str(tu_f64(WK_SHAPE(2), 1.5, 2.25), "tensor([1.5000, 2.2500], dtype=torch.float64)");
}

Test(print, integer_valued_floats)
{
    expect_str(tu_f32(WK_SHAPE(3), 1, 2, -30), "tensor([  1.,   2., -30.])");
    expect_str(wk_zeros(WK_SHAPE(3), WK_DTYPE_F32), "tensor([0., 0., 0.])");
    expect_str(tu_f32(WK_SHAPE(2), -0.0f, 1), "tensor([-0., 1.])");
    expect_str(wk_view(wk_arange(0, 8, 1, WK_DTYPE_F32), WK_SHAPE(2, 2, 2)),
               "tensor([[[0., 1.],\n"
               "         [2., 3.]],\n"
               "\n"
               "        [[4., 5.],\n"
               "         [6., 7.]]])");
}

Test(print, integers_and_bools)
{
    expect_str(tu_i64(WK_SHAPE(3), 1, -20, 300), "tensor([  1, -20, 300])");
    expect_str(wk_from_array((int32_t[]){1, 2, 3, 4}, WK_SHAPE(2, 2), WK_DTYPE_I32),
               "tensor([[1, 2],\n"
               "        [3, 4]], dtype=torch.int32)");
    expect_str(wk_from_array((uint8_t[]){0, 255}, WK_SHAPE(2), WK_DTYPE_U8),
               "tensor([  0, 255], dtype=torch.uint8)");
    expect_str(wk_from_array((uint8_t[]){1, 0, 1}, WK_SHAPE(3), WK_DTYPE_BOOL),
               "tensor([ True, False,  True])");
}

Test(print, scientific)
{
    expect_str(tu_f32(WK_SHAPE(3), 1e8f, 1, 0.5f), "tensor([1.0000e+08, 1.0000e+00, 5.0000e-01])");
    expect_str(tu_f32(WK_SHAPE(2), 1e-5f, 1), "tensor([1.0000e-05, 1.0000e+00])");
    expect_str(tu_f32(WK_SHAPE(2), 1, 1e9f), "tensor([1.0000e+00, 1.0000e+09])");
}

Test(print, nan_and_inf)
{
    expect_str(tu_f32(WK_SHAPE(4), NAN, INFINITY, -INFINITY, 1.5f),
               "tensor([   nan,    inf,   -inf, 1.5000])");
    expect_str(tu_f32(WK_SHAPE(3), NAN, 2, -INFINITY), "tensor([nan, 2., -inf])");
    expect_str(tu_f32(WK_SHAPE(1), -NAN), "tensor([nan])");
}

Test(print, scalars)
{
    expect_str(wk_scalar(3, WK_DTYPE_F32), "tensor(3.)");
    expect_str(wk_scalar(0.1, WK_DTYPE_F32), "tensor(0.1000)");
    expect_str(wk_scalar(7, WK_DTYPE_I64), "tensor(7)");
    expect_str(wk_scalar(1, WK_DTYPE_BOOL), "tensor(True)");
    expect_str(wk_scalar(2, WK_DTYPE_F64), "tensor(2., dtype=torch.float64)");
}

Test(print, empty)
{
    expect_str(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F32), "tensor([], size=(0, 3))");
    expect_str(wk_zeros(WK_SHAPE(0), WK_DTYPE_F32), "tensor([])");
    expect_str(wk_zeros(WK_SHAPE(0), WK_DTYPE_I64), "tensor([], dtype=torch.int64)");
    expect_str(wk_zeros(WK_SHAPE(2, 0), WK_DTYPE_I32),
               "tensor([], size=(2, 0), dtype=torch.int32)");
}

Test(print, line_wrapping)
{
    expect_str(wk_arange(0, 30, 1, WK_DTYPE_F32),
               "tensor([ 0.,  1.,  2.,  3.,  4.,  5.,  6.,  7.,  8.,  9., 10., 11., 12., 13.,\n"
               "        14., 15., 16., 17., 18., 19., 20., 21., 22., 23., 24., 25., 26., 27.,\n"
               "        28., 29.])");
    wk_tensor *x = wk_empty(WK_SHAPE(2, 15), WK_DTYPE_F32);
    float *q = wk_data(x);
    for (int i = 0; i < 30; i++) q[i] = (float)i / 7.0f;
    expect_str(x,
               "tensor([[0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n"
               "         1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000],\n"
               "        [2.1429, 2.2857, 2.4286, 2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857,\n"
               "         3.4286, 3.5714, 3.7143, 3.8571, 4.0000, 4.1429]])");
    /* the dtype suffix moves to its own line when the last line is too long */
    wk_tensor *y = wk_arange(0, 12, 1, WK_DTYPE_F64);
    double *p = wk_data(y);
    for (int i = 0; i < 12; i++) p[i] = i * 1.123456;
    expect_str(wk_view(y, WK_SHAPE(1, 12)),
               "tensor([[ 0.0000,  1.1235,  2.2469,  3.3704,  4.4938,  5.6173,  6.7407,  7.8642,\n"
               "          8.9876, 10.1111, 11.2346, 12.3580]], dtype=torch.float64)");
}

Test(print, summarised)
{
    wk_tensor *big = wk_view(wk_arange(0, 6000, 1, WK_DTYPE_F32), WK_SHAPE(2000, 3));
    expect_str(big, "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00],\n"
                    "        [3.0000e+00, 4.0000e+00, 5.0000e+00],\n"
                    "        [6.0000e+00, 7.0000e+00, 8.0000e+00],\n"
                    "        ...,\n"
                    "        [5.9910e+03, 5.9920e+03, 5.9930e+03],\n"
                    "        [5.9940e+03, 5.9950e+03, 5.9960e+03],\n"
                    "        [5.9970e+03, 5.9980e+03, 5.9990e+03]])");
    /* first and last lines, through wk_fprint */
    FILE *f = tmpfile();
    cr_assert_not_null(f);
    int n = wk_fprint(f, big);
    cr_assert_gt(n, 0);
    rewind(f);
    char line[256], last[256] = "";
    cr_assert_not_null(fgets(line, sizeof line, f));
    cr_assert_str_eq(line, "tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00],\n");
    while (fgets(last, sizeof last, f)) {
    }
    cr_assert_str_eq(last, "        [5.9970e+03, 5.9980e+03, 5.9990e+03]])\n");
    cr_assert_eq(ftell(f), n);
    fclose(f);
    expect_str(wk_arange(0, 2000, 1, WK_DTYPE_I64),
               "tensor([   0,    1,    2,  ..., 1997, 1998, 1999])");
}

Test(print, summarised_3d)
{
    wk_tensor *t = wk_view(wk_arange(0, 24 * 24 * 3, 1, WK_DTYPE_I32), WK_SHAPE(24, 24, 3));
    char *s = wk_tensor_str(t);
    cr_assert_not_null(s);
    const char *head = "tensor([[[   0,    1,    2],\n"
                       "         [   3,    4,    5],\n"
                       "         [   6,    7,    8],\n"
                       "         ...,\n"
                       "         [  63,   64,   65],\n"
                       "         [  66,   67,   68],\n"
                       "         [  69,   70,   71]],\n"
                       "\n"
                       "        [[  72,   73,   74],\n";
    cr_assert(!strncmp(s, head, strlen(head)), "got\n%s", s);
    const char *mid = "         [ 213,  214,  215]],\n"
                      "\n"
                      "        ...,\n"
                      "\n"
                      "        [[1512, 1513, 1514],\n";
    cr_assert_not_null(strstr(s, mid), "got\n%s", s);
    const char *tail = "         [1725, 1726, 1727]]], dtype=torch.int32)";
    cr_assert_str_eq(s + strlen(s) - strlen(tail), tail);
    free(s);
}

Test(print, half_types_and_requires_grad)
{
    wk_tensor *f = tu_f32(WK_SHAPE(2), 1.5f, -2.25f);
    expect_str(wk_to_dtype(f, WK_DTYPE_BF16), "tensor([ 1.5000, -2.2500], dtype=torch.bfloat16)");
    expect_str(wk_to_dtype(tu_f32(WK_SHAPE(2), 0.1f, 3), WK_DTYPE_F16),
               "tensor([0.1000, 3.0000], dtype=torch.float16)");
    wk_tensor *w = tu_f32(WK_SHAPE(2), 1, 2);
    w->requires_grad = true;
    expect_str(w, "tensor([1., 2.], requires_grad=True)");
}

Test(print, views)
{
    wk_tensor *a = wk_view(wk_arange(0, 12, 1, WK_DTYPE_I64), WK_SHAPE(3, 4));
    expect_str(wk_slice(wk_slice(a, 0, 1, 3, 1), 1, 1, 4, 2), "tensor([[ 5,  7],\n"
                                                              "        [ 9, 11]])");
    expect_str(wk_select(a, 1, 3), "tensor([ 3,  7, 11])");
    expect_str(wk_expand(tu_f32(WK_SHAPE(2, 1), 0.5f, -1), WK_SHAPE(2, 3)),
               "tensor([[ 0.5000,  0.5000,  0.5000],\n"
               "        [-1.0000, -1.0000, -1.0000]])");
}

static void redirect_setup(void)
{
    tu_setup();
    cr_redirect_stdout();
}

Test(print, to_stdout, .init = redirect_setup)
{
    wk_print(wk_eye(2, -1, WK_DTYPE_I32));
    wk_print(NULL);
    fflush(stdout);
    cr_assert_stdout_eq_str("tensor([[1, 0],\n"
                            "        [0, 1]], dtype=torch.int32)\n"
                            "(null)\n");
}

Test(print, null_and_errors)
{
    expect_str(NULL, "(null)");
    wk_tensor *t = tu_f32(WK_SHAPE(1), 1);
    t->device = (wk_device){WK_DEVICE_CUDA, 0};
    expect_error(wk_tensor_str(t), "tensor_str: no kernel for device cuda:0");
    cr_assert_eq(wk_fprint(stdout, t), -1);
    t->device = WK_CPU;
}

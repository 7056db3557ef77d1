/* torch.nn.init in wick: fans, gains (torch's values), the bounds and statistics of every
 * initialiser, layouts, determinism, errors.
 *
 * Statistical checks use n = 131072 samples and accept 6 standard errors: a sample mean
 * within 6*sigma/sqrt(n) of the true mean and a sample variance within
 * 6*sqrt((mu4 - sigma^4)/n) of the true variance (mu4 = 9/5 sigma^4 for a uniform, 3
 * sigma^4 for a normal), so a correct initialiser fails with probability ~1e-9 while a
 * wrong bound (even by a few percent) fails reliably. */
#include "test_util.h"

TestSuite(init, .init = tu_setup, .fini = tu_teardown);

#define ROWS 256
#define COLS 512

typedef struct {
    double mean, var, min, max;
    int64_t n;
} stats;

static stats stats_of(const wk_tensor *t)
{
    stats s = {0, 0, INFINITY, -INFINITY, wk_numel(t)};
    for (int64_t i = 0; i < s.n; i++) {
        double v = tu_at(t, i);
        cr_assert(isfinite(v), "element %lld is %g", (long long)i, v);
        s.mean += v;
        s.min = fmin(s.min, v);
        s.max = fmax(s.max, v);
    }
    s.mean /= (double)s.n;
    for (int64_t i = 0; i < s.n; i++) {
        double d = tu_at(t, i) - s.mean;
        s.var += d * d;
    }
    s.var /= (double)(s.n - 1);
    return s;
}

/* U(lo, hi): every value inside, the extremes near the ends, mean and variance right. */
static void expect_uniform(const wk_tensor *t, double lo, double hi, const char *what)
{
    stats s = stats_of(t);
    double w = hi - lo, var = w * w / 12, sd = sqrt(var);
    cr_assert(s.min >= lo && s.max <= hi, "%s: values in [%g, %g], expected inside [%g, %g]",
              what, s.min, s.max, lo, hi);
    /* With n samples the extremes are within ~w*20/n of the ends (P(miss) = e^-20). */
    cr_assert(s.min < lo + w * 20.0 / (double)s.n && s.max > hi - w * 20.0 / (double)s.n,
              "%s: values only reach [%g, %g] of [%g, %g]", what, s.min, s.max, lo, hi);
    cr_assert(fabs(s.mean - (lo + hi) / 2) <= 6 * sd / sqrt((double)s.n),
              "%s: mean %g, expected %g", what, s.mean, (lo + hi) / 2);
    cr_assert(fabs(s.var - var) <= 6 * sqrt(0.8 * var * var / (double)s.n),
              "%s: variance %g, expected %g", what, s.var, var);
}

static void expect_normal(const wk_tensor *t, double mean, double std, const char *what)
{
    stats s = stats_of(t);
    double var = std * std;
    cr_assert(fabs(s.mean - mean) <= 6 * std / sqrt((double)s.n), "%s: mean %g, expected %g",
              what, s.mean, mean);
    cr_assert(fabs(s.var - var) <= 6 * sqrt(2 * var * var / (double)s.n),
              "%s: std %g, expected %g", what, sqrt(s.var), std);
    /* Tails: some of 131072 samples pass 3.5 sigma on each side (P(none) ~ e^-30), none
     * passes 7 sigma (P ~ 2e-7). */
    cr_assert(s.max > mean + 3.5 * std && s.min < mean - 3.5 * std, "%s: no tails", what);
    cr_assert(s.max < mean + 7 * std && s.min > mean - 7 * std, "%s: tails too long", what);
}

static wk_tensor *big(wk_dtype dt) { return wk_full(WK_SHAPE(ROWS, COLS), NAN, dt); }

/* ---- fans and gains ---- */

Test(init, fans_match_torch)
{
    int64_t fi, fo;
    cr_assert_eq(wk_init_fans(wk_empty(WK_SHAPE(5, 3), WK_DTYPE_F32), &fi, &fo), 0);
    cr_assert(fi == 3 && fo == 5);
    /* Conv2d weight [out, in, kh, kw]: torch gives (72, 144). */
    cr_assert_eq(wk_init_fans(wk_empty(WK_SHAPE(16, 8, 3, 3), WK_DTYPE_F32), &fi, &fo), 0);
    cr_assert(fi == 72 && fo == 144, "fans %lld %lld", (long long)fi, (long long)fo);
    cr_assert_eq(wk_init_fans(wk_empty(WK_SHAPE(4, 0), WK_DTYPE_F32), &fi, &fo), 0);
    cr_assert(fi == 0 && fo == 4);
    /* A transposed view has the view's fans. */
    cr_assert_eq(wk_init_fans(wk_transpose(wk_empty(WK_SHAPE(5, 3), WK_DTYPE_F32), 0, 1), &fi,
                              &fo), 0);
    cr_assert(fi == 5 && fo == 3);

    wk_clear_error();
    cr_assert_eq(wk_init_fans(wk_empty(WK_SHAPE(4), WK_DTYPE_F32), &fi, &fo), -1);
    cr_assert(strstr(wk_last_error(), "at least 2 dims, got shape [4]"), "%s", wk_last_error());
    cr_assert_eq(wk_init_fans(wk_scalar(1, WK_DTYPE_F32), &fi, &fo), -1);
    cr_assert(strstr(wk_last_error(), "got shape []"));
    wk_clear_error();
    cr_assert_eq(wk_init_fans(NULL, &fi, &fo), -1);
    cr_assert(strstr(wk_last_error(), "init_fans: input 0 is NULL"), "%s", wk_last_error());
}

Test(init, gains_match_torch)
{
    /* torch.nn.init.calculate_gain (torch 1.13), printed with repr(). */
    struct {
        const char *nl;
        double param, want;
    } cases[] = {
        {"linear", 0, 1},
        {"conv1d", 0, 1},
        {"conv2d", 0, 1},
        {"conv_transpose2d", 0, 1},
        {"sigmoid", 0, 1},
        {"tanh", 0, 1.6666666666666667},
        {"relu", 0, 1.4142135623730951},
        {"leaky_relu", 0.01, 1.4141428569978354}, /* torch's default slope */
        {"leaky_relu", 0.2, 1.3867504905630728},
        {"leaky_relu", sqrt(5.0), 0.5773502691896257},
        {"selu", 0, 0.75},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double g = wk_init_gain(cases[i].nl, cases[i].param);
        cr_assert(fabs(g - cases[i].want) <= 1e-15 * cases[i].want, "%s(%g): %.17g, torch %.17g",
                  cases[i].nl, cases[i].param, g, cases[i].want);
    }
    cr_assert_eq(wk_init_gain(NULL, 0), 1, "NULL means linear");
    wk_clear_error();
    cr_assert(isnan(wk_init_gain("gelu", 0)));
    cr_assert(strstr(wk_last_error(), "init: unknown nonlinearity \"gelu\""), "%s",
              wk_last_error());
}

/* ---- distributions ---- */

Test(init, uniform_and_normal)
{
    for (int d = 0; d < 2; d++) {
        wk_dtype dt = d ? WK_DTYPE_F64 : WK_DTYPE_F32;
        wk_tensor *t = big(dt);
        cr_assert_eq(wk_init_uniform_(t, -2, 3, NULL), t);
        expect_uniform(t, -2, 3, "uniform_");
        cr_assert_eq(wk_init_normal_(t, 1, 2, NULL), t);
        expect_normal(t, 1, 2, "normal_");
    }
}

Test(init, constants)
{
    wk_tensor *t = big(WK_DTYPE_F32);
    cr_assert_eq(wk_init_constant_(t, 0.375), t);
    stats s = stats_of(t);
    cr_assert(s.min == 0.375 && s.max == 0.375);
    wk_init_ones_(t);
    s = stats_of(t);
    cr_assert(s.min == 1 && s.max == 1);
    wk_init_zeros_(t);
    s = stats_of(t);
    cr_assert(s.min == 0 && s.max == 0);
}

Test(init, xavier)
{
    /* fan_in 512, fan_out 256 */
    double gain = wk_init_gain("tanh", 0);
    double a = gain * sqrt(6.0 / (ROWS + COLS));
    wk_tensor *t = big(WK_DTYPE_F32);
    cr_assert_eq(wk_init_xavier_uniform_(t, gain, NULL), t);
    expect_uniform(t, -a, a, "xavier_uniform_");
    cr_assert_eq(wk_init_xavier_normal_(t, gain, NULL), t);
    expect_normal(t, 0, gain * sqrt(2.0 / (ROWS + COLS)), "xavier_normal_");
}

Test(init, kaiming)
{
    for (int mode = 0; mode < 2; mode++) {
        double fan = mode == WK_FAN_IN ? COLS : ROWS;
        wk_tensor *t = big(WK_DTYPE_F64);
        cr_assert_eq(wk_init_kaiming_uniform_(t, 0, (wk_fan_mode)mode, "relu", NULL), t);
        double b = sqrt(2.0) * sqrt(3.0 / fan);
        expect_uniform(t, -b, b, "kaiming_uniform_ relu");
        cr_assert_eq(wk_init_kaiming_normal_(t, 0.2, (wk_fan_mode)mode, "leaky_relu", NULL), t);
        expect_normal(t, 0, sqrt(2.0 / 1.04) / sqrt(fan), "kaiming_normal_ leaky_relu 0.2");
    }
}

Test(init, torch_default_of_linear_and_conv)
{
    /* kaiming_uniform(a = sqrt 5) gives bound 1/sqrt(fan_in), as the bias's bound. */
    wk_tensor *w = big(WK_DTYPE_F32), *bias = wk_full(WK_SHAPE(ROWS * COLS), NAN, WK_DTYPE_F32);
    cr_assert_eq(wk_init_torch_default_(w, bias, NULL), 0, "%s", wk_last_error());
    expect_uniform(w, -1 / sqrt(COLS), 1 / sqrt(COLS), "default weight");
    expect_uniform(bias, -1 / sqrt(COLS), 1 / sqrt(COLS), "default bias");
    /* Conv weight [64, 32, 8, 8]: fan_in 2048. */
    wk_tensor *cw = wk_full(WK_SHAPE(64, 32, 8, 8), NAN, WK_DTYPE_F32);
    cr_assert_eq(wk_init_torch_default_(cw, NULL, NULL), 0);
    expect_uniform(cw, -1 / sqrt(2048.0), 1 / sqrt(2048.0), "conv default weight");
}

/* ---- layouts and determinism ---- */

Test(init, non_contiguous_views_are_filled_in_place)
{
    wk_tensor *base = wk_full(WK_SHAPE(COLS, ROWS), NAN, WK_DTYPE_F32);
    wk_tensor *t = wk_transpose(base, 0, 1); /* [ROWS, COLS] view: fans 512 / 256 */
    cr_assert_eq(wk_init_kaiming_uniform_(t, 0, WK_FAN_IN, "relu", NULL), t);
    double b = sqrt(2.0) * sqrt(3.0 / COLS);
    expect_uniform(base, -b, b, "kaiming through a transposed view");
    /* A strided slice: only every other column changes. */
    wk_tensor *u = wk_full(WK_SHAPE(8, 6), NAN, WK_DTYPE_F64);
    cr_assert_not_null(wk_init_ones_(wk_slice(u, 1, 0, 6, 2)));
    for (int64_t i = 0; i < 48; i++) {
        if (i % 2 == 0) cr_assert_eq(tu_at(u, i), 1.0);
        else cr_assert(isnan(tu_at(u, i)));
    }
}

Test(init, same_generator_same_values)
{
    wk_generator g1 = wk_generator_make(11), g2 = wk_generator_make(11);
    wk_tensor *a = wk_empty(WK_SHAPE(7, 5), WK_DTYPE_F32),
              *b = wk_empty(WK_SHAPE(7, 5), WK_DTYPE_F32);
    wk_init_xavier_normal_(a, 1, &g1);
    wk_init_xavier_normal_(b, 1, &g2);
    for (int64_t i = 0; i < 35; i++) cr_assert_eq(tu_at(a, i), tu_at(b, i));
    cr_assert_eq(g1.offset, g2.offset);
    cr_assert_gt(g1.offset, 0, "the generator advances");
    wk_init_xavier_normal_(b, 1, &g2); /* the next draw differs */
    int same = 0;
    for (int64_t i = 0; i < 35; i++) same += tu_at(a, i) == tu_at(b, i);
    cr_assert_lt(same, 35);
    /* NULL uses the default generator, reset by wk_manual_seed. */
    wk_manual_seed(3);
    wk_init_uniform_(a, 0, 1, NULL);
    wk_manual_seed(3);
    wk_init_uniform_(b, 0, 1, NULL);
    for (int64_t i = 0; i < 35; i++) cr_assert_eq(tu_at(a, i), tu_at(b, i));
}

/* ---- errors ---- */

Test(init, errors)
{
    wk_tensor *v = wk_empty(WK_SHAPE(4), WK_DTYPE_F32);
    expect_error(wk_init_xavier_uniform_(v, 1, NULL), "at least 2 dims, got shape [4]");
    expect_error(wk_init_xavier_normal_(v, 1, NULL), "at least 2 dims");
    expect_error(wk_init_kaiming_uniform_(v, 0, WK_FAN_IN, "relu", NULL), "at least 2 dims");
    expect_error(wk_init_kaiming_normal_(v, 0, WK_FAN_IN, "relu", NULL), "at least 2 dims");
    cr_assert_eq(wk_init_torch_default_(v, NULL, NULL), -1);
    cr_assert(strstr(wk_last_error(), "at least 2 dims"));
    wk_tensor *m = wk_empty(WK_SHAPE(4, 3), WK_DTYPE_F32);
    expect_error(wk_init_kaiming_uniform_(m, 0, WK_FAN_IN, "swish", NULL),
                 "unknown nonlinearity \"swish\"");
    /* torch warns and does nothing on zero-element tensors; wick refuses a zero fan. */
    expect_error(wk_init_kaiming_uniform_(wk_empty(WK_SHAPE(4, 0), WK_DTYPE_F32), 0, WK_FAN_IN,
                                          "relu", NULL),
                 "kaiming init of a tensor with zero fan (shape [4, 0])");
    expect_error(wk_init_uniform_(m, 2, 1, NULL), "uniform_: expected finite lo <= hi");
    expect_error(wk_init_normal_(m, 0, -1, NULL), "normal_: expected finite mean and std >= 0");
    expect_error(wk_init_normal_(m, NAN, 1, NULL), "normal_");
    /* NULL tensors propagate without overwriting the first message. */
    wk_set_error("earlier");
    cr_assert_null(wk_init_xavier_uniform_(NULL, 1, NULL));
    cr_assert_null(wk_init_uniform_(NULL, 0, 1, NULL));
    cr_assert_null(wk_init_constant_(NULL, 1));
    cr_assert_str_eq(wk_last_error(), "earlier");
}

/* Helpers shared by the Criterion tests. */
#ifndef WK_TEST_UTIL_H
#define WK_TEST_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tmpdir.h"
#include "wick.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#endif

/* Assert that t has the given shape. */
#define expect_shape(t, ...)                                                              \
    do {                                                                                  \
        const int64_t exp_[] = {__VA_ARGS__};                                             \
        int nd_ = (int)(sizeof exp_ / sizeof exp_[0]);                                    \
        cr_assert_not_null(t, "tensor is NULL: %s", wk_last_error());                     \
        cr_assert_eq((t)->ndim, nd_, "ndim %d, expected %d", (t)->ndim, nd_);             \
        for (int i_ = 0; i_ < nd_; i_++)                                                  \
            cr_assert_eq((t)->shape[i_], exp_[i_], "dim %d: %lld, expected %lld", i_,     \
                         (long long)(t)->shape[i_], (long long)exp_[i_]);                 \
    } while (0)

/* Element i (row-major order) of any tensor, as double. */
static inline double tu_at(const wk_tensor *t, int64_t i)
{
    int64_t idx[WK_MAX_DIMS];
    for (int d = t->ndim - 1; d >= 0; d--) {
        idx[d] = t->shape[d] ? i % t->shape[d] : 0;
        i = t->shape[d] ? i / t->shape[d] : 0;
    }
    return wk_get(t, idx);
}

/* Assert |t[i] - expected[i]| <= atol + rtol*|expected[i]| for every element (NaNs must
 * match NaNs, infinities must match exactly). */
static inline void tu_expect_values(const wk_tensor *t, const double *expected, int64_t n,
                                    double rtol, double atol, const char *what)
{
    cr_assert_not_null(t, "%s: tensor is NULL: %s", what, wk_last_error());
    cr_assert_eq(wk_numel(t), n, "%s: %lld elements, expected %lld", what,
                 (long long)wk_numel(t), (long long)n);
    for (int64_t i = 0; i < n; i++) {
        double v = tu_at(t, i), e = expected[i];
        if (isnan(e)) {
            cr_assert(isnan(v), "%s[%lld] = %g, expected nan", what, (long long)i, v);
        } else if (isinf(e)) {
            cr_assert(v == e, "%s[%lld] = %g, expected %g", what, (long long)i, v, e);
        } else {
            cr_assert(fabs(v - e) <= atol + rtol * fabs(e), "%s[%lld] = %.9g, expected %.9g",
                      what, (long long)i, v, e);
        }
    }
}
#define expect_values(t, rtol, ...)                                                       \
    do {                                                                                  \
        const double ev_[] = {__VA_ARGS__};                                               \
        tu_expect_values(t, ev_, (int64_t)(sizeof ev_ / sizeof ev_[0]), rtol, 0, #t);     \
    } while (0)

/* Assert that `expr` failed (NULL) with a message containing `needle`. */
#define expect_error(expr, needle)                                                        \
    do {                                                                                  \
        wk_clear_error();                                                                 \
        const void *r_ = (const void *)(expr);                                            \
        cr_assert_null(r_, "%s succeeded, expected an error", #expr);                     \
        cr_assert(strstr(wk_last_error(), needle), "error \"%s\" does not mention \"%s\"", \
                  wk_last_error(), needle);                                               \
    } while (0)

/* A float32 tensor from literal values: tu_f32(WK_SHAPE(2, 2), 1, 2, 3, 4). */
#define tu_f32(shape_ndim, ...) tu_f32_impl((const float[]){__VA_ARGS__}, shape_ndim)
static inline wk_tensor *tu_f32_impl(const float *v, const int64_t *shape, int ndim)
{
    return wk_from_array(v, shape, ndim, WK_DTYPE_F32);
}
#define tu_f64(shape_ndim, ...) tu_f64_impl((const double[]){__VA_ARGS__}, shape_ndim)
static inline wk_tensor *tu_f64_impl(const double *v, const int64_t *shape, int ndim)
{
    return wk_from_array(v, shape, ndim, WK_DTYPE_F64);
}
#define tu_i64(shape_ndim, ...) tu_i64_impl((const int64_t[]){__VA_ARGS__}, shape_ndim)
static inline wk_tensor *tu_i64_impl(const int64_t *v, const int64_t *shape, int ndim)
{
    return wk_from_array(v, shape, ndim, WK_DTYPE_I64);
}

/* Every test runs inside one frame, so tensors need no frees. */
static inline void tu_setup(void) { wk_frame_begin(); }
/* Criterion ignores the exit status LeakSanitizer gives a test's process, so under ASan
 * each test checks for leaks itself at teardown. */
static inline void tu_check_leaks(void)
{
#if defined(__SANITIZE_ADDRESS__)
    cr_assert_eq(__lsan_do_recoverable_leak_check(), 0, "LeakSanitizer found leaks (above)");
#endif
}
static inline void tu_teardown(void)
{
    wk_frame_end();
    wk_alloc_empty_cache();
    tu_check_leaks();
}

#endif

/* Gradient clipping: torch.nn.utils.clip_grad_norm_ fixtures, hand-computed cases, every
 * layout, non-finite norms, thread-count independence and errors. */
#include <cjson/cJSON.h>

#include "test_util.h"

TestSuite(clip, .init = tu_setup, .fini = tu_teardown);

static wk_tensor *persistent(wk_tensor *t)
{
    while (t && t->frame) wk_keep(t);
    return t;
}

/* A parameter whose grad is a persistent copy of g. */
static wk_tensor *with_grad(wk_tensor *p, wk_tensor *g)
{
    wk_requires_grad_(p, true);
    wk_tensor_free(p->grad);
    p->grad = g ? persistent(wk_clone(g)) : NULL;
    return p;
}

static wk_tensor *find(const wk_safetensors *st, const char *fmt, const char *c, int i)
{
    char name[128];
    snprintf(name, sizeof name, fmt, c, i);
    wk_tensor *t = wk_safetensors_get(st, name);
    cr_assert_not_null(t, "fixture %s missing", name);
    return t;
}

Test(clip, matches_torch_clip_grad_norm)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(WK_FIXTURES "/optim_clip.safetensors", &st), 0, "%s",
                 wk_last_error());
    cJSON *cases = cJSON_Parse(wk_safetensors_meta(&st, "cases"));
    int ncases = 0;
    for (const cJSON *c = cases->child; c; c = c->next, ncases++) {
        const char *name = c->valuestring;
        cJSON *spec = cJSON_Parse(wk_safetensors_meta(&st, name));
        double max_norm = cJSON_GetObjectItem(spec, "max_norm")->valuedouble;
        const cJSON *nt = cJSON_GetObjectItem(spec, "norm_type");
        double norm_type = cJSON_IsString(nt) ? INFINITY : nt->valuedouble;
        wk_tensor *ps[3];
        for (int i = 0; i < 3; i++) {
            wk_tensor *g = find(&st, "%s.grad.%d", name, i);
            ps[i] = with_grad(wk_zeros_like(g), g);
        }
        double total = wk_clip_grad_norm_(ps, 3, max_norm, norm_type, true);
        double want = wk_item(find(&st, "%s.total_norm", name, 0));
        bool f64 = ps[0]->dtype == WK_DTYPE_F64;
        /* torch sums in the grads' dtype; wick in double: 1e-6 relative for float32 */
        double rtol = f64 ? 1e-12 : 1e-6;
        cr_assert(fabs(total - want) <= rtol * want, "%s: total norm %.9g, torch %.9g", name, total,
                  want);
        for (int i = 0; i < 3; i++) {
            wk_tensor *clipped = find(&st, "%s.clipped.%d", name, i);
            double scale = 0;
            for (int64_t k = 0; k < wk_numel(clipped); k++)
                if (fabs(tu_at(clipped, k)) > scale) scale = fabs(tu_at(clipped, k));
            for (int64_t k = 0; k < wk_numel(clipped); k++) {
                double x = tu_at(ps[i]->grad, k), y = tu_at(clipped, k);
                cr_assert(fabs(x - y) <= rtol * fabs(y) + rtol * 1e-3 * scale,
                          "%s grad %d [%lld]: %.9g, torch %.9g", name, i, (long long)k, x, y);
            }
        }
        cJSON_Delete(spec);
    }
    cr_assert_geq(ncases, 7);
    cJSON_Delete(cases);
    wk_safetensors_free(&st);
}

Test(clip, hand_computed_norms)
{
    /* grads (3, 4) and (12): 2-norm sqrt(9 + 16 + 144) = 13 */
    wk_tensor *a = with_grad(wk_zeros(WK_SHAPE(2), WK_DTYPE_F64), tu_f64(WK_SHAPE(2), 3, -4));
    wk_tensor *b = with_grad(wk_zeros(WK_SHAPE(1), WK_DTYPE_F64), tu_f64(WK_SHAPE(1), 12));
    wk_tensor *none = wk_requires_grad_(wk_zeros(WK_SHAPE(5), WK_DTYPE_F64), true);
    wk_tensor *ps[] = {a, none, b};
    cr_assert_eq(wk_clip_grad_norm_(ps, 3, 26, 2, false), 13, "not clipped");
    expect_values(a->grad, 0, 3, -4);
    double c = 1.3 / (13 + 1e-6);
    cr_assert_eq(wk_clip_grad_norm_(ps, 3, 1.3, 2, false), 13);
    expect_values(a->grad, 1e-15, 3 * c, -4 * c);
    expect_values(b->grad, 1e-15, 12 * c);
    cr_assert_null(none->grad);
    /* 1-norm and inf-norm */
    with_grad(a, tu_f64(WK_SHAPE(2), 3, -4));
    with_grad(b, tu_f64(WK_SHAPE(1), -12));
    cr_assert_eq(wk_clip_grad_norm_(ps, 3, 100, 1, false), 19);
    cr_assert_eq(wk_clip_grad_norm_(ps, 3, 6, INFINITY, false), 12);
    expect_values(b->grad, 1e-15, -12 * 6 / (12 + 1e-6));
    /* p = 3: (27 + 64 + 1728)^(1/3) */
    with_grad(a, tu_f64(WK_SHAPE(2), 3, -4));
    with_grad(b, tu_f64(WK_SHAPE(1), -12));
    double p3 = cbrt(27 + 64 + 1728.0);
    cr_assert(fabs(wk_clip_grad_norm_(ps, 3, 100, 3, false) - p3) < 1e-12 * p3);
    /* float32 grads, mixed with float64 ones */
    wk_tensor *f = with_grad(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32), tu_f32(WK_SHAPE(2), 6, 8));
    wk_tensor *mixed[] = {f, b};
    double tot = sqrt(36 + 64 + 144.0);
    cr_assert(fabs(wk_clip_grad_norm_(mixed, 2, 1, 2, false) - tot) < 1e-12 * tot);
    expect_values(f->grad, 1e-6, 6 / (tot + 1e-6), 8 / (tot + 1e-6));
    /* nothing with a grad */
    cr_assert_eq(wk_clip_grad_norm_(&none, 1, 1, 2, false), 0);
    cr_assert_eq(wk_clip_grad_norm_(NULL, 0, 1, 2, false), 0);
}

Test(clip, strided_grads_and_odd_sizes)
{
    /* a transposed grad is read and written through its strides */
    wk_tensor *g = tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6);
    wk_tensor *p = wk_requires_grad_(wk_zeros(WK_SHAPE(3, 2), WK_DTYPE_F32), true);
    p->grad = persistent(wk_alias(wk_transpose(g, 0, 1)));
    cr_assert(!wk_is_contiguous(p->grad));
    double n = sqrt(91.0), c = 1 / (n + 1e-6);
    cr_assert(fabs(wk_clip_grad_norm_(&p, 1, 1, 2, false) - n) < 1e-12 * n);
    expect_values(p->grad, 1e-6, 1 * c, 4 * c, 2 * c, 5 * c, 3 * c, 6 * c);
    expect_values(g, 1e-6, 1 * c, 2 * c, 3 * c, 4 * c, 5 * c, 6 * c);
    /* a zero-size grad counts as norm 0 */
    wk_tensor *e = with_grad(wk_zeros(WK_SHAPE(0, 4), WK_DTYPE_F32),
                             wk_zeros(WK_SHAPE(0, 4), WK_DTYPE_F32));
    cr_assert_eq(wk_clip_grad_norm_(&e, 1, 1, 2, false), 0);
    cr_assert_eq(wk_clip_grad_value_(&e, 1, 1), 0);
}

Test(clip, large_grads_independent_of_thread_count)
{
    const int64_t R = 1000, C = 1001;
    wk_manual_seed(5);
    wk_tensor *g1 = wk_randn(WK_SHAPE(R, C), WK_DTYPE_F32, NULL);
    wk_tensor *g2 = wk_randn(WK_SHAPE(77), WK_DTYPE_F32, NULL);
    double sum = 0, mx = 0;
    const float *x = wk_data(g1), *y = wk_data(g2);
    for (int64_t i = 0; i < R * C; i++) sum += (double)x[i] * x[i], mx = fmax(mx, fabs(x[i]));
    for (int64_t i = 0; i < 77; i++) sum += (double)y[i] * y[i], mx = fmax(mx, fabs(y[i]));
    double norms[2][2];
    wk_tensor *out[2];
    for (int run = 0; run < 2; run++) {
        wk_set_num_threads(run ? 2 : 1);
        wk_tensor *a = with_grad(wk_zeros_like(g1), g1), *b = with_grad(wk_zeros_like(g2), g2);
        wk_tensor *ps[] = {a, b};
        norms[run][1] = wk_clip_grad_norm_(ps, 2, 1e9, INFINITY, false);
        norms[run][0] = wk_clip_grad_norm_(ps, 2, 10, 2, false);
        out[run] = a->grad;
    }
    wk_set_num_threads(0);
    cr_assert_eq(norms[0][0], norms[1][0], "bit-identical for 1 and 2 threads");
    cr_assert_eq(norms[0][1], mx);
    cr_assert(fabs(norms[0][0] - sqrt(sum)) < 1e-12 * sqrt(sum), "%.17g vs %.17g", norms[0][0],
              sqrt(sum));
    cr_assert_eq(memcmp(wk_data(out[0]), wk_data(out[1]), (size_t)(R * C) * 4), 0);
    float c = (float)(10 / (sqrt(sum) + 1e-6));
    const float *z = wk_data(out[0]);
    for (int64_t i = 0; i < R * C; i += 997) cr_assert_eq(z[i], x[i] * c);
}

Test(clip, non_finite_norms)
{
    wk_tensor *a = with_grad(wk_zeros(WK_SHAPE(3), WK_DTYPE_F32), tu_f32(WK_SHAPE(3), 1, NAN, 2));
    wk_tensor *b = with_grad(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32), tu_f32(WK_SHAPE(2), 3, 4));
    wk_tensor *ps[] = {a, b};
    cr_assert_eq(wk_clip_grad_norm_(ps, 2, 1, 2, true), -1);
    cr_assert(strstr(wk_last_error(), "clip_grad_norm_: the total norm of order 2 of the gradients "
                                      "is nan, so they cannot be clipped"),
              "%s", wk_last_error());
    expect_values(b->grad, 0, 3, 4);
    /* as torch: without the check, a NaN norm makes every grad NaN */
    cr_assert(isnan(wk_clip_grad_norm_(ps, 2, 1, 2, false)));
    expect_values(b->grad, 0, NAN, NAN);
    /* an infinite norm scales by 0: finite grads become 0, infinite ones NaN */
    with_grad(a, tu_f32(WK_SHAPE(3), 1, INFINITY, 2));
    with_grad(b, tu_f32(WK_SHAPE(2), 3, 4));
    cr_assert_eq(wk_clip_grad_norm_(ps, 2, 1, INFINITY, true), -1);
    cr_assert(strstr(wk_last_error(), "of order inf of the gradients is inf"), "%s",
              wk_last_error());
    cr_assert(isinf(wk_clip_grad_norm_(ps, 2, 1, 2, false)));
    expect_values(a->grad, 0, 0, NAN, 0);
    expect_values(b->grad, 0, 0, 0);
    /* inf-norm propagates NaN like torch's max */
    with_grad(a, tu_f32(WK_SHAPE(3), 1, NAN, 2));
    cr_assert(isnan(wk_clip_grad_norm_(&a, 1, 1e9, INFINITY, false)));
}

Test(clip, clip_grad_value)
{
    wk_tensor *a = with_grad(wk_zeros(WK_SHAPE(5), WK_DTYPE_F32),
                             tu_f32(WK_SHAPE(5), -3, -0.5, 0, 2, NAN));
    wk_tensor *b = with_grad(wk_zeros(WK_SHAPE(2), WK_DTYPE_F64), tu_f64(WK_SHAPE(2), 1.5, -1.5));
    wk_tensor *none = wk_requires_grad_(wk_zeros(WK_SHAPE(1), WK_DTYPE_F32), true);
    wk_tensor *ps[] = {a, none, b};
    cr_assert_eq(wk_clip_grad_value_(ps, 3, 1), 0, "%s", wk_last_error());
    expect_values(a->grad, 0, -1, -0.5, 0, 1, NAN);
    expect_values(b->grad, 0, 1, -1);
    /* strided */
    wk_tensor *g = tu_f64(WK_SHAPE(2, 2), 5, -5, 0.25, 9);
    wk_tensor *p = wk_requires_grad_(wk_zeros(WK_SHAPE(2, 2), WK_DTYPE_F64), true);
    p->grad = persistent(wk_alias(wk_transpose(g, 0, 1)));
    cr_assert_eq(wk_clip_grad_value_(&p, 1, 2), 0);
    expect_values(g, 0, 2, -2, 0.25, 2);
    cr_assert_eq(wk_clip_grad_value_(ps, 3, 0), 0);
    expect_values(b->grad, 0, 0, 0);
}

Test(clip, errors)
{
    wk_tensor *a = with_grad(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32), tu_f32(WK_SHAPE(2), 1, 2));
    cr_assert_eq(wk_clip_grad_norm_(&a, 1, 1, 0, false), -1);
    cr_assert(strstr(wk_last_error(), "clip_grad_norm_: norm_type = 0, expected > 0"), "%s",
              wk_last_error());
    cr_assert_eq(wk_clip_grad_norm_(&a, 1, 1, NAN, false), -1);
    cr_assert_eq(wk_clip_grad_norm_(&a, 1, -1, 2, false), -1);
    cr_assert(strstr(wk_last_error(), "max_norm = -1, expected >= 0"), "%s", wk_last_error());
    cr_assert_eq(wk_clip_grad_norm_(NULL, 2, 1, 2, false), -1);
    cr_assert_eq(wk_clip_grad_norm_((wk_tensor *[]){a, NULL}, 2, 1, 2, false), -1);
    cr_assert(strstr(wk_last_error(), "tensor 1 is NULL"), "%s", wk_last_error());
    wk_tensor *i = wk_zeros(WK_SHAPE(2), WK_DTYPE_F32);
    i->grad = persistent(wk_zeros(WK_SHAPE(2), WK_DTYPE_I64));
    wk_tensor *ps[] = {a, i};
    cr_assert_eq(wk_clip_grad_norm_(ps, 2, 1, 2, false), -1);
    cr_assert(strstr(wk_last_error(), "the grad of tensor 1 is int64, expected float32 or float64"),
              "%s", wk_last_error());
    expect_values(a->grad, 0, 1, 2);
    wk_tensor_free(i->grad);
    i->grad = persistent(wk_to_dtype(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32), WK_DTYPE_F16));
    cr_assert_eq(wk_clip_grad_value_(ps, 2, 1), -1);
    cr_assert(strstr(wk_last_error(), "clip_grad_value_: the grad of tensor 1 is float16"), "%s",
              wk_last_error());
    cr_assert_eq(wk_clip_grad_value_(&a, 1, -1), -1);
    cr_assert(strstr(wk_last_error(), "clip_value = -1, expected >= 0"), "%s", wk_last_error());
    cr_assert_eq(wk_clip_grad_value_(&a, 1, NAN), -1);
    cr_assert_eq(wk_clip_grad_value_(NULL, 1, 1), -1);
}

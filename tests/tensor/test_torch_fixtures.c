/* wick's ops against PyTorch's outputs (tests/fixtures/tensor_ops.safetensors, made by
 * tools/gen_fixtures.py): every case in the file must be known and match to 1e-5
 * relative in float32 (1e-10 in float64). */
#include <cjson/cJSON.h>

#include "test_util.h"

static wk_safetensors fx;

static void load_fixtures(void)
{
    tu_setup();
    cr_assert_eq(wk_safetensors_load(WK_FIXTURES "/tensor_ops.safetensors", &fx), 0, "%s",
                 wk_last_error());
}

static void free_fixtures(void)
{
    wk_safetensors_free(&fx);
    tu_teardown();
}

TestSuite(torch, .init = load_fixtures, .fini = free_fixtures);

static wk_tensor *in(const char *c, int k)
{
    char name[128];
    snprintf(name, sizeof name, "%s.in%d", c, k);
    return wk_safetensors_get(&fx, name);
}

static int dims_of(const cJSON *p, int *dims)
{
    const cJSON *d = cJSON_GetObjectItem(p, "dims");
    if (!cJSON_IsArray(d)) return 0;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, d) dims[n++] = e->valueint;
    return n;
}

/* wick's result for one case, or NULL when the op is unknown (the test then fails). */
static wk_tensor *compute(const char *c, const cJSON *p)
{
    const char *op = cJSON_GetObjectItem(p, "op")->valuestring;
    const cJSON *kd = cJSON_GetObjectItem(p, "keepdim");
    bool keep = cJSON_IsTrue(kd);
    const cJSON *dimj = cJSON_GetObjectItem(p, "dim");
    int dim = dimj ? dimj->valueint : 0;
    int dims[WK_MAX_DIMS];
    int nd = dims_of(p, dims);
    const int *dp = nd ? dims : NULL;
    static const struct {
        const char *name;
        wk_tensor *(*fn)(wk_tensor *, wk_tensor *);
    } binary[] = {{"add", wk_add}, {"mul", wk_mul}, {"div", wk_div}, {"matmul", wk_matmul}};
    static const struct {
        const char *name;
        wk_tensor *(*fn)(wk_tensor *);
    } unary[] = {{"exp", wk_exp}, {"log", wk_log}, {"tanh", wk_tanh}, {"sigmoid", wk_sigmoid},
                 {"silu", wk_silu}, {"relu", wk_relu}};
    for (size_t i = 0; i < sizeof binary / sizeof binary[0]; i++)
        if (!strcmp(op, binary[i].name)) return binary[i].fn(in(c, 0), in(c, 1));
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++)
        if (!strcmp(op, unary[i].name)) return unary[i].fn(in(c, 0));
    if (!strcmp(op, "gelu")) {
        bool tanh_form = !strcmp(cJSON_GetObjectItem(p, "approximate")->valuestring, "tanh");
        return tanh_form ? wk_gelu_tanh(in(c, 0)) : wk_gelu(in(c, 0));
    }
    if (!strcmp(op, "pow")) {
        const cJSON *e = cJSON_GetObjectItem(p, "exponent");
        return e ? wk_pow_scalar(in(c, 0), e->valuedouble) : wk_pow(in(c, 0), in(c, 1));
    }
    if (!strcmp(op, "sum")) return wk_sum(in(c, 0), dp, nd, keep);
    if (!strcmp(op, "mean")) return wk_mean(in(c, 0), dp, nd, keep);
    if (!strcmp(op, "amax")) return wk_amax(in(c, 0), dp, nd, keep);
    if (!strcmp(op, "logsumexp")) return wk_logsumexp(in(c, 0), dp, nd, keep);
    double corr = cJSON_IsNumber(cJSON_GetObjectItem(p, "correction"))
                      ? cJSON_GetObjectItem(p, "correction")->valuedouble : 1;
    if (!strcmp(op, "var")) return wk_var(in(c, 0), dp, nd, corr, keep);
    if (!strcmp(op, "std")) return wk_std(in(c, 0), dp, nd, corr, keep);
    if (!strcmp(op, "norm"))
        return wk_norm(in(c, 0), cJSON_GetObjectItem(p, "p")->valuedouble, dp, nd, keep);
    if (!strcmp(op, "softmax")) return wk_softmax(in(c, 0), dim);
    if (!strcmp(op, "log_softmax")) return wk_log_softmax(in(c, 0), dim);
    if (!strcmp(op, "linear"))
        return wk_linear(in(c, 0), in(c, 1), cJSON_IsTrue(cJSON_GetObjectItem(p, "bias"))
                                                 ? in(c, 2) : NULL);
    if (!strcmp(op, "index_select")) return wk_index_select(in(c, 0), dim, in(c, 1));
    if (!strcmp(op, "gather")) return wk_gather(in(c, 0), dim, in(c, 1));
    if (!strcmp(op, "one_hot"))
        return wk_one_hot(in(c, 0), (int64_t)cJSON_GetObjectItem(p, "num_classes")->valuedouble);
    if (!strcmp(op, "cat")) {
        wk_tensor *ts[16];
        int n = 0;
        while (n < 16) {
            char name[128];
            snprintf(name, sizeof name, "%s.in%d", c, n);
            wk_tensor *t = NULL;
            for (int i = 0; i < fx.count && !t; i++)
                if (!strcmp(fx.items[i].name, name)) t = fx.items[i].tensor;
            if (!t) break;
            ts[n++] = t;
        }
        return wk_cat(ts, n, dim);
    }
    return NULL;
}

Test(torch, every_case_matches)
{
    const char *cases_json = wk_safetensors_meta(&fx, "cases");
    cr_assert_not_null(cases_json);
    cJSON *cases = cJSON_Parse(cases_json);
    cr_assert(cJSON_IsArray(cases));
    int checked = 0;
    const cJSON *cj;
    cJSON_ArrayForEach(cj, cases) {
        const char *c = cj->valuestring;
        cJSON *p = cJSON_Parse(wk_safetensors_meta(&fx, c));
        cr_assert_not_null(p, "case %s has no parameters", c);
        wk_clear_error();
        wk_tensor *got = compute(c, p);
        char name[128];
        snprintf(name, sizeof name, "%s.out", c);
        wk_tensor *want = wk_safetensors_get(&fx, name);
        cr_assert_not_null(got, "case %s (%s): %s", c, cJSON_PrintUnformatted(p),
                           wk_last_error()[0] ? wk_last_error() : "op not handled by the test");
        cr_assert_eq(got->dtype, want->dtype, "case %s: dtype %s, torch %s", c,
                     wk_dtype_name(got->dtype), wk_dtype_name(want->dtype));
        cr_assert(wk_same_shape(got, want), "case %s: shape %s, torch %s", c,
                  wk_shape_str(got, (char[64]){0}, 64), wk_shape_str(want, (char[64]){0}, 64));
        bool f64 = want->dtype == WK_DTYPE_F64;
        int64_t n = wk_numel(want);
        double *e = malloc((size_t)(n ? n : 1) * sizeof *e);
        for (int64_t i = 0; i < n; i++) e[i] = tu_at(want, i);
        tu_expect_values(got, e, n, f64 ? 1e-10 : 1e-5, f64 ? 1e-12 : 1e-6, c);
        free(e);
        cJSON_Delete(p);
        checked++;
    }
    cr_assert_geq(checked, 60, "only %d cases", checked);
    cJSON_Delete(cases);
}

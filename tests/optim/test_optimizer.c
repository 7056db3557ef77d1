/* Optimizers: torch.optim fixtures step by step, options and groups, errors, fused loops
 * on large tensors, gradient accumulation, state save/load. */
#include <cjson/cJSON.h>
#include <stdarg.h>
#include <unistd.h>

#include "autograd/node-impl.h"
#include "test_util.h"

TestSuite(optimizer, .init = tu_setup, .fini = tu_teardown);

/* ---- helpers ---- */

/* A persistent copy (grads are owned by their parameter, which frees them). */
static wk_tensor *persistent(wk_tensor *t)
{
    while (t && t->frame) wk_keep(t);
    return t;
}

static void set_grad(wk_tensor *p, const wk_tensor *g)
{
    if (!g) {
        wk_tensor_free(p->grad);
        p->grad = NULL;
    } else if (p->grad) {
        cr_assert_not_null(wk_copy_(p->grad, g), "%s", wk_last_error());
    } else {
        p->grad = persistent(wk_clone(g));
    }
}

/* A new leaf requiring grad (made from another tensor's values: no graph). */
static wk_tensor *leaf(wk_tensor *t)
{
    return wk_requires_grad_(t && t->grad_fn ? wk_detach(t) : t, true);
}

/* Largest |a - b| / (|b| + tiny) over two same-shape tensors. */
static double max_rel_err(const wk_tensor *a, const wk_tensor *b, double *max_abs)
{
    double worst = 0;
    *max_abs = 0;
    for (int64_t i = 0; i < wk_numel(b); i++) {
        double x = tu_at(a, i), y = tu_at(b, i), d = fabs(x - y);
        if (d > *max_abs) *max_abs = d;
        double r = d / (fabs(y) + 1e-30);
        if (r > worst) worst = r;
    }
    return worst;
}

/* Tolerance rule of the fixture tests: |wick - torch| <= rtol*|torch| + rtol*max|torch|
 * over the tensor, rtol 1e-6 for float32 (about 8 ulps) and 1e-12 for float64: relative
 * to each value, with the tensor's scale as floor for values that pass near zero. */
static void expect_close(const wk_tensor *got, const wk_tensor *want, double rtol, const char *what)
{
    cr_assert_not_null(got, "%s: NULL", what);
    cr_assert_not_null(want, "%s: fixture missing", what);
    cr_assert(wk_same_shape(got, want), "%s: shape", what);
    double scale = 0;
    for (int64_t i = 0; i < wk_numel(want); i++)
        if (fabs(tu_at(want, i)) > scale) scale = fabs(tu_at(want, i));
    for (int64_t i = 0; i < wk_numel(want); i++) {
        double x = tu_at(got, i), y = tu_at(want, i);
        cr_assert(fabs(x - y) <= rtol * fabs(y) + rtol * scale,
                  "%s[%lld] = %.10g, torch %.10g (rel %.3g)", what, (long long)i, x, y,
                  fabs(x - y) / fabs(y));
    }
}

static wk_safetensors fixtures;

static void load_fixtures(void)
{
    cr_assert_eq(wk_safetensors_load(WK_FIXTURES "/optim_steps.safetensors", &fixtures), 0, "%s",
                 wk_last_error());
}

static wk_tensor *fx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static wk_tensor *fx(const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    for (int k = 0; k < fixtures.count; k++)
        if (strcmp(fixtures.items[k].name, name) == 0) return fixtures.items[k].tensor;
    return NULL;
}

static wk_optim_type type_of(const char *name)
{
    static const char *const names[] = {"SGD", "Adam", "AdamW", "RMSprop", "Adagrad"};
    for (int t = 0; t < WK_OPTIM_COUNT; t++)
        if (strcmp(names[t], name) == 0) return (wk_optim_type)t;
    cr_assert_fail("unknown optimizer type %s", name);
    return WK_OPTIM_COUNT;
}

/* Options from a JSON object, ended by {NULL}. */
static void hparams_from(const cJSON *obj, wk_hparam *out, int cap)
{
    int n = 0;
    for (const cJSON *v = obj ? obj->child : NULL; v; v = v->next) {
        cr_assert(n < cap - 1);
        out[n++] = (wk_hparam){v->string, v->valuedouble};
    }
    out[n] = (wk_hparam){NULL, 0};
}

/* ---- torch fixtures ---- */

/* Run one fixture case; returns the worst relative error over its steps. */
static double run_case(const char *name, const char *spec)
{
    cJSON *c = cJSON_Parse(spec);
    cr_assert_not_null(c, "%s: bad metadata", name);
    wk_optim_type type = type_of(cJSON_GetObjectItem(c, "type")->valuestring);
    bool f64 = strcmp(cJSON_GetObjectItem(c, "dtype")->valuestring, "float64") == 0;
    double rtol = f64 ? 1e-12 : 1e-6;
    int steps = cJSON_GetObjectItem(c, "steps")->valueint;
    wk_tensor *params[3];
    for (int i = 0; i < 3; i++) params[i] = leaf(wk_clone(fx("%s.init.%d", name, i)));

    /* groups as in the fixture */
    const cJSON *jgroups = cJSON_GetObjectItem(c, "groups");
    int ng = cJSON_GetArraySize(jgroups), where_g[3], where_i[3];
    wk_param_group groups[4];
    wk_tensor *gparams[4][3];
    memset(groups, 0, sizeof groups);
    for (int g = 0; g < ng; g++) {
        const cJSON *jg = cJSON_GetArrayItem(jgroups, g);
        const cJSON *idx = cJSON_GetObjectItem(jg, "params");
        int n = 0;
        for (const cJSON *v = idx->child; v; v = v->next, n++) {
            gparams[g][n] = params[v->valueint];
            where_g[v->valueint] = g;
            where_i[v->valueint] = n;
        }
        groups[g].params = gparams[g];
        groups[g].nparams = n;
        hparams_from(cJSON_GetObjectItem(jg, "hparams"), groups[g].hparams, WK_GROUP_MAX_HPARAMS);
    }
    wk_hparam opts[16];
    hparams_from(cJSON_GetObjectItem(c, "opts"), opts, 16);
    wk_optimizer *opt = wk_optimizer_new(type, groups, ng, opts);
    cr_assert_not_null(opt, "%s: %s", name, wk_last_error());

    double worst = 0, worst_scaled = 0, abs_err;
    for (int k = 1; k <= steps; k++) {
        for (int i = 0; i < 3; i++) set_grad(params[i], fx("%s.grad.%d.%d", name, k, i));
        cr_assert_eq(wk_optimizer_step(opt), 0, "%s step %d: %s", name, k, wk_last_error());
        for (int i = 0; i < 3; i++) {
            char what[128];
            snprintf(what, sizeof what, "%s step %d param %d", name, k, i);
            wk_tensor *want = fx("%s.step.%d.%d", name, k, i);
            expect_close(params[i], want, rtol, what);
            double r = max_rel_err(params[i], want, &abs_err), scale = 0;
            if (r > worst) worst = r;
            for (int64_t e = 0; e < wk_numel(want); e++) scale = fmax(scale, fabs(tu_at(want, e)));
            if (abs_err / scale > worst_scaled) worst_scaled = abs_err / scale;
        }
    }
    cr_assert_eq(wk_optimizer_step_count(opt), steps);

    /* The state after the last step: the same slots as torch, values and step counts. */
    wk_named_tensor *items = NULL;
    int nitems = 0;
    char *json = NULL;
    cr_assert_eq(wk_optimizer_state_save(opt, "", &items, &nitems, &json), 0, "%s",
                 wk_last_error());
    int nfixture = 0;
    for (int k = 0; k < fixtures.count; k++) {
        char pre[128];
        snprintf(pre, sizeof pre, "%s.state.", name);
        nfixture += strncmp(fixtures.items[k].name, pre, strlen(pre)) == 0;
    }
    cr_assert_eq(nitems, nfixture, "%s: %d state tensors, torch has %d", name, nitems, nfixture);
    for (int i = 0; i < 3; i++) {
        for (int k = 0; k < nitems; k++) {
            char pre[32];
            snprintf(pre, sizeof pre, "%d.%d.", where_g[i], where_i[i]);
            if (strncmp(items[k].name, pre, strlen(pre)) != 0) continue;
            const char *slot = items[k].name + strlen(pre);
            char what[128];
            snprintf(what, sizeof what, "%s state %d %s", name, i, slot);
            expect_close(items[k].tensor, fx("%s.state.%d.%s", name, i, slot), rtol, what);
        }
    }
    cJSON *st = cJSON_Parse(json);
    const cJSON *counts = cJSON_GetObjectItem(c, "step_counts");
    for (int i = 0; type != WK_OPTIM_SGD && i < 3; i++) {
        const cJSON *jg = cJSON_GetArrayItem(cJSON_GetObjectItem(st, "groups"), where_g[i]);
        const cJSON *jp = cJSON_GetArrayItem(cJSON_GetObjectItem(jg, "params"), where_i[i]);
        cr_assert_eq(cJSON_GetObjectItem(jp, "step")->valueint,
                     cJSON_GetArrayItem(counts, i)->valueint, "%s: step count of param %d", name,
                     i);
    }
    cJSON_Delete(st);
    for (int k = 0; k < nitems; k++) free(items[k].name);
    free(items);
    free(json);
    wk_optimizer_free(opt);
    cJSON_Delete(c);
    if (getenv("WK_TEST_VERBOSE"))
        fprintf(stderr, "%-32s max error: %.3g relative, %.3g of max|param|\n", name, worst,
                worst_scaled);
    return worst;
}

Test(optimizer, matches_torch_fixtures_step_by_step)
{
    load_fixtures();
    const char *list = wk_safetensors_meta(&fixtures, "cases");
    cr_assert_not_null(list);
    cJSON *cases = cJSON_Parse(list);
    int n = 0;
    bool seen[WK_OPTIM_COUNT] = {false};
    for (const cJSON *c = cases->child; c; c = c->next, n++) {
        const char *spec = wk_safetensors_meta(&fixtures, c->valuestring);
        cJSON *s = cJSON_Parse(spec);
        seen[type_of(cJSON_GetObjectItem(s, "type")->valuestring)] = true;
        cJSON_Delete(s);
        run_case(c->valuestring, spec);
    }
    cr_assert_geq(n, 20);
    for (int t = 0; t < WK_OPTIM_COUNT; t++) cr_assert(seen[t], "no fixture for type %d", t);
    cJSON_Delete(cases);
    wk_safetensors_free(&fixtures);
}

/* ---- options, groups and errors ---- */

Test(optimizer, defaults_and_hparam_access)
{
    wk_tensor *w = leaf(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32));
    wk_optimizer *o = wk_adamw_new(&w, 1, NULL);
    cr_assert_not_null(o, "%s", wk_last_error());
    cr_assert_str_eq(wk_optimizer_name(o), "AdamW");
    cr_assert_eq(wk_optimizer_get_lr(o, 0), 1e-3);
    cr_assert_eq(wk_optimizer_initial_lr(o, 0), 1e-3);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "beta1"), 0.9);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "beta2"), 0.999);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "eps"), 1e-8);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "weight_decay"), 1e-2);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "amsgrad"), 0);
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "beta1", 0.5), 0);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "beta1"), 0.5);
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "lr", 0.25), 0);
    cr_assert_eq(wk_optimizer_get_lr(o, 0), 0.25);
    cr_assert_eq(wk_optimizer_initial_lr(o, 0), 1e-3, "initial_lr stays");
    cr_assert_eq(wk_optimizer_set_lr(o, 0, 0.5), 0);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "lr"), 0.5);
    /* a failed set leaves the value */
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "beta2", 1.0), -1);
    cr_assert(strstr(wk_last_error(), "beta2 = 1 is out of range (expected 0 <= beta2 < 1)"),
              "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "beta2"), 0.999);
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "amsgrad", 0.5), -1);
    cr_assert(strstr(wk_last_error(), "amsgrad = 0.5 must be 0 or 1"), "%s", wk_last_error());
    cr_assert(isnan(wk_optimizer_get_hparam(o, 0, "momentum")));
    cr_assert(strstr(wk_last_error(), "unknown option \"momentum\" (AdamW takes lr, beta1, beta2, "
                                      "eps, weight_decay, amsgrad, maximize)"),
              "%s", wk_last_error());
    cr_assert(isnan(wk_optimizer_get_lr(o, 1)));
    cr_assert(strstr(wk_last_error(), "group 1 is out of range (the optimizer has 1 groups)"));
    cr_assert_eq(wk_optimizer_set_lr(o, -1, 0.1), -1);
    cr_assert_eq(wk_optimizer_num_groups(o), 1);
    wk_tensor *got[2];
    cr_assert_eq(wk_optimizer_params(o, got, 2), 1);
    cr_assert_eq(got[0], w);
    wk_optimizer_free(o);

    static const struct {
        wk_optim_type type;
        double lr;
        const char *name;
        double value;
    } defaults[] = {
        {WK_OPTIM_ADAM, 1e-3, "weight_decay", 0},  {WK_OPTIM_RMSPROP, 1e-2, "alpha", 0.99},
        {WK_OPTIM_RMSPROP, 1e-2, "eps", 1e-8},     {WK_OPTIM_ADAGRAD, 1e-2, "eps", 1e-10},
        {WK_OPTIM_ADAGRAD, 1e-2, "lr_decay", 0},
        {WK_OPTIM_ADAGRAD, 1e-2, "initial_accumulator_value", 0},
    };
    for (size_t k = 0; k < sizeof defaults / sizeof defaults[0]; k++) {
        wk_param_group g = {.params = &w, .nparams = 1};
        o = wk_optimizer_new(defaults[k].type, &g, 1, NULL);
        cr_assert_not_null(o, "%s", wk_last_error());
        cr_assert_eq(wk_optimizer_get_lr(o, 0), defaults[k].lr);
        cr_assert_eq(wk_optimizer_get_hparam(o, 0, defaults[k].name), defaults[k].value);
        wk_optimizer_free(o);
    }
    o = wk_sgd_new(&w, 1, WK_HPARAMS({"lr", 0.1}));
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "momentum"), 0);
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "nesterov", 1), -1, "nesterov needs momentum");
    cr_assert(strstr(wk_last_error(), "nesterov momentum needs momentum > 0 and dampening 0"));
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "momentum", 0.9), 0);
    cr_assert_eq(wk_optimizer_set_hparam(o, 0, "nesterov", 1), 0);
    wk_optimizer_free(o);
}

static void expect_new_error(wk_optimizer *o, const char *needle)
{
    cr_assert_null(o, "expected an error mentioning \"%s\"", needle);
    cr_assert(strstr(wk_last_error(), needle), "error \"%s\" does not mention \"%s\"",
              wk_last_error(), needle);
}

Test(optimizer, construction_errors)
{
    wk_tensor *w = leaf(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32));
    wk_tensor *b = leaf(wk_zeros(WK_SHAPE(3), WK_DTYPE_F32));
    wk_tensor *two[] = {w, w};
    expect_new_error(wk_sgd_new(&w, 1, NULL), "sgd: option \"lr\" is required");
    expect_new_error(wk_adam_new(&w, 1, WK_HPARAMS({"betas", 0.9})),
                     "adam: unknown option \"betas\" (Adam takes lr, beta1, beta2");
    expect_new_error(wk_adam_new(&w, 1, WK_HPARAMS({"beta1", -0.1})),
                     "adam: beta1 = -0.1 is out of range (expected 0 <= beta1 < 1)");
    expect_new_error(wk_adam_new(&w, 1, WK_HPARAMS({"lr", -1})),
                     "adam: lr = -1 is out of range (expected lr >= 0)");
    expect_new_error(wk_adam_new(&w, 1, WK_HPARAMS({"eps", NAN})), "eps = nan is out of range");
    expect_new_error(wk_rmsprop_new(&w, 1, WK_HPARAMS({"weight_decay", -1})),
                     "rmsprop: weight_decay = -1 is out of range (expected weight_decay >= 0)");
    expect_new_error(wk_sgd_new(&w, 1, WK_HPARAMS({"lr", 0.1}, {"nesterov", 1})),
                     "sgd: nesterov momentum needs momentum > 0 and dampening 0");
    expect_new_error(wk_sgd_new(&w, 1, WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9}, {"nesterov", 1},
                                                  {"dampening", 0.1})),
                     "nesterov momentum needs");
    expect_new_error(wk_sgd_new(two, 2, WK_HPARAMS({"lr", 0.1})),
                     "group 0 parameter 0 and group 0 parameter 1 are the same tensor");
    expect_new_error(wk_adam_new(NULL, 0, NULL), "adam: got no parameters to optimize");
    expect_new_error(wk_adam_new((wk_tensor *[]){NULL}, 1, NULL), "group 0 parameter 0 is NULL");
    expect_new_error(wk_optimizer_new(WK_OPTIM_COUNT, NULL, 0, NULL), "is not a wk_optim_type");
    expect_new_error(wk_optimizer_new(WK_OPTIM_ADAM, NULL, 0, NULL),
                     "expected at least one parameter group");
    wk_tensor *t = leaf(wk_transpose(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32), 0, 1));
    expect_new_error(wk_adam_new(&t, 1, NULL), "is not contiguous");
    wk_tensor *nl = wk_transpose(leaf(wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32)), 0, 1);
    expect_new_error(wk_adam_new(&nl, 1, NULL), "is not a leaf");
    wk_tensor *i64 = wk_zeros(WK_SHAPE(3), WK_DTYPE_I64);
    expect_new_error(wk_adam_new(&i64, 1, NULL), "is int64, expected a float32 or float64 tensor");
    wk_tensor *h = wk_to_dtype(wk_zeros(WK_SHAPE(3), WK_DTYPE_F32), WK_DTYPE_BF16);
    expect_new_error(wk_adam_new(&h, 1, NULL), "is bfloat16: optimizers update float32");
    wk_tensor *nonleaf = wk_zeros(WK_SHAPE(3), WK_DTYPE_F32); /* as if computed from w */
    cr_assert_not_null(wki_node_new(nonleaf, "test", NULL, 1, &w));
    expect_new_error(wk_adam_new(&nonleaf, 1, NULL), "is not a leaf");
    /* groups: overrides checked, names unique, a tensor in one group only */
    wk_param_group g2[] = {{.params = &w, .nparams = 1, .names = (const char *[]){"w"}},
                           {.params = &b, .nparams = 1, .names = (const char *[]){"w"}}};
    expect_new_error(wk_optimizer_new(WK_OPTIM_ADAM, g2, 2, NULL),
                     "parameter name \"w\" is used twice");
    wk_param_group g3[] = {{.params = &w, .nparams = 1}, {.params = &w, .nparams = 1}};
    expect_new_error(wk_optimizer_new(WK_OPTIM_ADAM, g3, 2, NULL),
                     "group 0 parameter 0 and group 1 parameter 0 are the same tensor");
    wk_param_group g4[] = {{.params = &w, .nparams = 1},
                           {.params = &b, .nparams = 1, .hparams = {{"beta2", 2}}}};
    expect_new_error(wk_optimizer_new(WK_OPTIM_ADAM, g4, 2, NULL),
                     "adam: group 1: beta2 = 2 is out of range");
    wk_param_group g5[] = {{.params = &w, .nparams = 1, .names = (const char *[]){""}}};
    expect_new_error(wk_optimizer_new(WK_OPTIM_ADAM, g5, 1, NULL), "has an empty name");
}

Test(optimizer, groups_override_options)
{
    wk_tensor *w = leaf(tu_f32(WK_SHAPE(2), 1, 1)), *b = leaf(tu_f32(WK_SHAPE(2), 1, 1));
    wk_param_group groups[] = {
        {.params = &w, .nparams = 1},
        {.params = &b, .nparams = 1, .hparams = {{"lr", 0.5}, {"momentum", 0}}},
    };
    wk_optimizer *o = wk_optimizer_new(WK_OPTIM_SGD, groups, 2,
                                       WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9}));
    cr_assert_not_null(o, "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_get_lr(o, 0), 0.1);
    cr_assert_eq(wk_optimizer_get_lr(o, 1), 0.5);
    cr_assert_eq(wk_optimizer_initial_lr(o, 1), 0.5);
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "momentum"), 0.9);
    cr_assert_eq(wk_optimizer_get_hparam(o, 1, "momentum"), 0);
    for (int k = 0; k < 2; k++) {
        set_grad(w, tu_f32(WK_SHAPE(2), 1, -2));
        set_grad(b, tu_f32(WK_SHAPE(2), 1, -2));
        cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
    }
    /* w: buf 1 then 1.9 -> 1 - 0.1 - 0.19; b: plain SGD, lr 0.5 twice */
    expect_values(w, 1e-6, 1 - 0.1 - 0.19, 1 + 0.2 + 0.38);
    expect_values(b, 1e-6, 0, 3);
    wk_optimizer_free(o);
}

Test(optimizer, skips_params_without_grad_and_zero_grad_fills)
{
    wk_tensor *a = leaf(tu_f32(WK_SHAPE(2), 1, 2)), *b = leaf(tu_f32(WK_SHAPE(2), 3, 4));
    wk_tensor *ps[] = {a, b};
    wk_optimizer *o = wk_adam_new(ps, 2, WK_HPARAMS({"lr", 0.1}));
    set_grad(a, tu_f32(WK_SHAPE(2), 1, -1));
    cr_assert_eq(wk_optimizer_step(o), 0);
    /* Adam's first step moves by lr*sign(g) (up to eps) */
    expect_values(a, 1e-6, 0.9, 2.1);
    expect_values(b, 0, 3, 4);
    cr_assert_null(b->grad);
    wk_optimizer_zero_grad(o);
    expect_values(a->grad, 0, 0, 0);
    cr_assert_null(b->grad, "zero_grad does not create grads");
    /* a zero grad still counts: the moments decay, the step count grows */
    cr_assert_eq(wk_optimizer_step(o), 0);
    char *json = NULL;
    wk_named_tensor *items = NULL;
    int n = 0;
    cr_assert_eq(wk_optimizer_state_save(o, "", &items, &n, &json), 0);
    cr_assert_eq(n, 2, "b has no state");
    cr_assert(strstr(json, "\"step\":2"), "%s", json);
    cr_assert(strstr(json, "\"step\":0"), "%s", json);
    for (int k = 0; k < n; k++) free(items[k].name);
    free(items);
    free(json);
    wk_optimizer_free(o);
}

Test(optimizer, step_errors_change_nothing)
{
    wk_tensor *a = leaf(tu_f32(WK_SHAPE(2), 1, 2)), *b = leaf(tu_f32(WK_SHAPE(3), 3, 4, 5));
    wk_tensor *ps[] = {a, b};
    wk_optimizer *o = wk_sgd_new(ps, 2, WK_HPARAMS({"lr", 0.1}));
    set_grad(a, tu_f32(WK_SHAPE(2), 1, 1));
    set_grad(b, tu_f32(WK_SHAPE(2), 1, 1));
    cr_assert_eq(wk_optimizer_step(o), -1);
    cr_assert(strstr(wk_last_error(), "optimizer_step: group 0 parameter 1 has shape [3] but its "
                                      "grad has shape [2]"),
              "%s", wk_last_error());
    expect_values(a, 0, 1, 2);
    set_grad(b, NULL);
    set_grad(b, tu_f64(WK_SHAPE(3), 1, 1, 1));
    cr_assert_eq(wk_optimizer_step(o), -1);
    cr_assert(strstr(wk_last_error(), "group 0 parameter 1 is float32 but its grad is float64"),
              "%s", wk_last_error());
    expect_values(a, 0, 1, 2);
    cr_assert_eq(wk_optimizer_step_count(o), 0);
    cr_assert_eq(wk_optimizer_step(NULL), -1);
    wk_optimizer_free(o);
    wk_optimizer_free(NULL);
    wk_optimizer_zero_grad(NULL);
}

Test(optimizer, zero_size_and_scalar_params)
{
    wk_tensor *e = leaf(wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F32));
    wk_tensor *s = leaf(wk_full(WK_SHAPE(1), 2.0, WK_DTYPE_F64));
    wk_tensor *ps[] = {e, s};
    wk_optimizer *o = wk_rmsprop_new(ps, 2, WK_HPARAMS({"lr", 0.01}, {"momentum", 0.9}));
    cr_assert_not_null(o, "%s", wk_last_error());
    set_grad(e, wk_zeros(WK_SHAPE(0, 3), WK_DTYPE_F32));
    set_grad(s, tu_f64(WK_SHAPE(1), 0.5));
    cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
    /* sq = 0.01*0.25; avg = 0.05 + 1e-8; buf = 0.5/avg; p = 2 - 0.01*buf */
    double avg = sqrt(0.01 * 0.25) + 1e-8;
    expect_values(s, 1e-12, 2 - 0.01 * (0.5 / avg));
    wk_optimizer_free(o);
}

/* Torch's AdamW formula in double from float inputs, for the large-tensor check. */
static void adamw_reference(double *p, const float *g, double *m, double *v, int64_t n, int t,
                            double lr, double b1, double b2, double eps, double wd)
{
    double bc1 = 1 - pow(b1, t), bc2 = 1 - pow(b2, t);
    for (int64_t i = 0; i < n; i++) {
        p[i] *= 1 - lr * wd;
        m[i] = b1 * m[i] + (1 - b1) * g[i];
        v[i] = b2 * v[i] + (1 - b2) * (double)g[i] * g[i];
        p[i] -= lr / bc1 * m[i] / (sqrt(v[i]) / sqrt(bc2) + eps);
    }
}

Test(optimizer, large_odd_tensor_matches_reference_for_any_thread_count)
{
    const int64_t R = 1000, C = 1001, N = R * C;
    wk_manual_seed(7);
    wk_tensor *init = wk_randn(WK_SHAPE(R, C), WK_DTYPE_F32, NULL);
    wk_tensor *grads[3];
    for (int k = 0; k < 3; k++) grads[k] = wk_randn(WK_SHAPE(R, C), WK_DTYPE_F32, NULL);
    wk_tensor *results[2];
    for (int run = 0; run < 2; run++) {
        wk_set_num_threads(run == 0 ? 1 : 2);
        wk_tensor *p = leaf(wk_clone(init));
        wk_optimizer *o = wk_adamw_new(&p, 1, WK_HPARAMS({"lr", 0.01}, {"weight_decay", 0.1}));
        for (int k = 0; k < 3; k++) {
            set_grad(p, grads[k]);
            cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
        }
        wk_optimizer_free(o);
        results[run] = p;
    }
    wk_set_num_threads(0);
    cr_assert_eq(memcmp(wk_data(results[0]), wk_data(results[1]), (size_t)N * 4), 0,
                 "1 and 2 threads must give identical bits");
    double *p = malloc(sizeof(double) * (size_t)N);
    double *m = calloc((size_t)N, 8), *v = calloc((size_t)N, 8);
    const float *pi = wk_data(init), *pr = wk_data(results[0]);
    for (int64_t i = 0; i < N; i++) p[i] = pi[i];
    for (int k = 0; k < 3; k++)
        adamw_reference(p, wk_data(grads[k]), m, v, N, k + 1, 0.01, 0.9, 0.999, 1e-8, 0.1);
    for (int64_t i = 0; i < N; i++)
        cr_assert(fabs(pr[i] - p[i]) <= 1e-6 * (fabs(p[i]) + 1), "element %lld: %.9g vs %.9g",
                  (long long)i, pr[i], p[i]);
    free(p);
    free(m);
    free(v);
}

Test(optimizer, non_contiguous_grad_is_copied)
{
    wk_tensor *a = leaf(tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6));
    wk_tensor *b = leaf(wk_clone(a));
    wk_tensor *ps[] = {a, b};
    wk_optimizer *o = wk_sgd_new(ps, 2, WK_HPARAMS({"lr", 0.5}, {"momentum", 0.5}));
    wk_tensor *gt = tu_f32(WK_SHAPE(3, 2), 1, 4, 2, 5, 3, 6);
    for (int k = 0; k < 2; k++) {
        set_grad(a, tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6));
        wk_tensor_free(b->grad);
        b->grad = persistent(wk_alias(wk_transpose(gt, 0, 1))); /* a strided grad */
        cr_assert(!wk_is_contiguous(b->grad));
        cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
    }
    cr_assert_eq(memcmp(wk_data(a), wk_data(b), 6 * sizeof(float)), 0);
    expect_values(a, 1e-6, 1 - 0.5 * 2.5, 2 - 0.5 * 5, 3 - 0.5 * 7.5, 4 - 0.5 * 10, 5 - 0.5 * 12.5,
                  6 - 0.5 * 15);
    wk_optimizer_free(o);
}

/* ---- groups from a module ---- */

static wk_module *toy_net(void)
{
    wk_module *net = wk_module_new("Sequential", NULL, 0);
    wk_module *fc = wk_module_new("Linear", NULL, 0);
    wk_module_add_parameter(fc, "weight", wk_ones(WK_SHAPE(3, 2), WK_DTYPE_F32));
    wk_module_add_parameter(fc, "bias", wk_ones(WK_SHAPE(3), WK_DTYPE_F32));
    wk_module *ln = wk_module_new("LayerNorm", NULL, 0);
    wk_module_add_parameter(ln, "weight", wk_ones(WK_SHAPE(3), WK_DTYPE_F32));
    wk_module_add_parameter(ln, "bias", wk_zeros(WK_SHAPE(3), WK_DTYPE_F32));
    wk_module_add_buffer(ln, "count", wk_zeros(WK_SHAPE(1), WK_DTYPE_I64));
    wk_module *head = wk_module_new("Linear", NULL, 0);
    wk_module_add_parameter(head, "weight", wk_ones(WK_SHAPE(1, 3), WK_DTYPE_F32));
    wk_module_add_child(net, "0", fc);
    wk_module_add_child(net, "norm", ln);
    wk_module_add_child(net, "head", head);
    return net;
}

Test(optimizer, param_groups_from_module_split_bias_and_norm)
{
    wk_module *net = toy_net();
    int ng = 0;
    wk_param_group *g = wk_param_groups_from_module(net, true, &ng);
    cr_assert_not_null(g, "%s", wk_last_error());
    cr_assert_eq(ng, 2);
    cr_assert_eq(g[0].nparams, 2);
    cr_assert_str_eq(g[0].names[0], "0.weight");
    cr_assert_str_eq(g[0].names[1], "head.weight");
    cr_assert_eq(g[1].nparams, 3);
    cr_assert_str_eq(g[1].names[0], "0.bias");
    cr_assert_str_eq(g[1].names[1], "norm.weight");
    cr_assert_str_eq(g[1].names[2], "norm.bias");
    cr_assert_eq(g[1].params[1], wk_module_find(net, "norm.weight"));
    wk_optimizer *o = wk_optimizer_new(WK_OPTIM_ADAMW, g, ng,
                                       WK_HPARAMS({"lr", 1e-3}, {"weight_decay", 0.05}));
    wk_param_groups_free(g, ng);
    cr_assert_not_null(o, "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_get_hparam(o, 0, "weight_decay"), 0.05);
    cr_assert_eq(wk_optimizer_get_hparam(o, 1, "weight_decay"), 0);
    /* the state is named after the parameters */
    wk_zero_grad((wk_tensor *[]){wk_module_find(net, "norm.weight")}, 1);
    wk_tensor *nw = wk_module_find(net, "norm.weight");
    set_grad(nw, tu_f32(WK_SHAPE(3), 1, 2, 3));
    cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
    wk_named_tensor *items = NULL;
    int n = 0;
    char *json = NULL;
    cr_assert_eq(wk_optimizer_state_save(o, "optim.", &items, &n, &json), 0);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(items[0].name, "optim.norm.weight.exp_avg");
    cr_assert_str_eq(items[1].name, "optim.norm.weight.exp_avg_sq");
    cr_assert(strstr(json, "\"name\":\"norm.weight\""), "%s", json);
    for (int k = 0; k < n; k++) free(items[k].name);
    free(items);
    free(json);
    wk_optimizer_free(o);

    g = wk_param_groups_from_module(net, false, &ng);
    cr_assert_eq(ng, 1);
    cr_assert_eq(g[0].nparams, 5);
    cr_assert_str_eq(g[0].names[4], "head.weight");
    wk_param_groups_free(g, ng);
    wk_module_free(net);

    wk_module *empty = wk_module_new("Identity", NULL, 0);
    expect_error(wk_param_groups_from_module(empty, true, &ng),
                 "param_groups_from_module: the Identity module has no parameters");
    expect_error(wk_param_groups_from_module(NULL, true, &ng), "module is NULL");
    wk_module_free(empty);
    wk_param_groups_free(NULL, 0);
}

/* ---- gradient accumulation ---- */

/* Add scale * d/dw of mean_r (x_r . w - y_r)^2 over rows [r0, r1) to w->grad: what
 * wk_backward(wk_mul_scalar(mse_loss, scale)) accumulates (computed by hand here so the
 * test does not depend on the op families' backward). */
static void add_mse_grad(wk_tensor *w, const double *x, const double *y, int r0, int r1, int F,
                         double scale)
{
    if (!w->grad) w->grad = persistent(wk_zeros(WK_SHAPE(F), WK_DTYPE_F64));
    double *g = wk_data(w->grad);
    const double *wv = wk_data(w);
    for (int r = r0; r < r1; r++) {
        double e = -y[r];
        for (int f = 0; f < F; f++) e += x[r * F + f] * wv[f];
        for (int f = 0; f < F; f++) g[f] += scale * 2.0 * e * x[r * F + f] / (r1 - r0);
    }
}

Test(optimizer, accumulation_equals_one_big_batch)
{
    enum { F = 3, ROWS = 20, MB = 2 }; /* 10 micro-batches of 2 rows */
    double x[ROWS * F], y[ROWS];
    for (int i = 0; i < ROWS * F; i++) x[i] = sin(0.7 * i + 0.3);
    for (int r = 0; r < ROWS; r++) y[r] = cos(1.3 * r);
    for (int type = 0; type < 2; type++) {
        const wk_hparam *opts =
            type ? WK_HPARAMS({"lr", 0.05}) : WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9});
        wk_tensor *wa = leaf(wk_full(WK_SHAPE(F), 0.5, WK_DTYPE_F64));
        wk_tensor *wb = leaf(wk_clone(wa));
        wk_optimizer *a = type ? wk_adam_new(&wa, 1, opts) : wk_sgd_new(&wa, 1, opts);
        wk_optimizer *b = type ? wk_adam_new(&wb, 1, opts) : wk_sgd_new(&wb, 1, opts);
        cr_assert_eq(wk_optimizer_set_accumulation(a, 4), 0);
        /* one epoch = 10 micro-batches: windows of 4, 4 and a last one of 2 */
        const int windows[][2] = {{0, 8}, {8, 16}, {16, 20}};
        int w = 0, updates = 0;
        for (int epoch = 0; epoch < 2; epoch++) {
            for (int mb = 0; mb < ROWS / MB; mb++) {
                int left = ROWS / MB - mb;
                double s = wk_optimizer_loss_scale(a, left);
                cr_assert_eq(s, mb < 8 ? 0.25 : 0.5, "micro-batch %d: scale %g", mb, s);
                add_mse_grad(wa, x, y, mb * MB, (mb + 1) * MB, F, s);
                int r = wk_optimizer_micro_step(a, left == 1);
                cr_assert_eq(r, (mb % 4 == 3 || left == 1) ? 1 : 0, "micro-batch %d", mb);
                if (r == 1) {
                    /* the same update from one big batch over the window's rows */
                    add_mse_grad(wb, x, y, windows[w][0], windows[w][1], F, 1.0);
                    cr_assert_eq(wk_optimizer_step(b), 0);
                    wk_optimizer_zero_grad(b);
                    w = (w + 1) % 3;
                    updates++;
                    expect_close(wa, wb, 1e-12, "accumulated vs big batch");
                    expect_values(wa->grad, 0, 0, 0, 0);
                }
            }
        }
        cr_assert_eq(updates, 6);
        cr_assert_eq(wk_optimizer_step_count(a), 6);
        wk_optimizer_free(a);
        wk_optimizer_free(b);
    }
}

/* The same through the real graph: a Linear layer, wk_mse_loss (mean) over each
 * micro-batch scaled by wk_optimizer_loss_scale, wk_backward, wk_optimizer_micro_step;
 * against a twin layer updated once per window from the mean loss over all its rows. */
Test(optimizer, accumulation_through_autograd_equals_one_big_batch)
{
    enum { F = 3, O = 2, ROWS = 20, MB = 2, NMB = ROWS / MB }; /* windows 4, 4, 2 */
    wk_tensor *x = persistent(wk_empty(WK_SHAPE(ROWS, F), WK_DTYPE_F32));
    wk_tensor *y = persistent(wk_empty(WK_SHAPE(ROWS, O), WK_DTYPE_F32));
    for (int i = 0; i < ROWS * F; i++) ((float *)wk_data(x))[i] = (float)sin(0.7 * i + 0.3);
    for (int i = 0; i < ROWS * O; i++) ((float *)wk_data(y))[i] = (float)cos(1.3 * i);
    const int windows[][2] = {{0, 8}, {8, 16}, {16, 20}};
    for (int type = 0; type < 3; type++) {
        const wk_hparam *opts = type == 0   ? WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9})
                                : type == 1 ? WK_HPARAMS({"lr", 0.05})
                                            : WK_HPARAMS({"lr", 0.05}, {"weight_decay", 0.1});
        wk_generator ga = wk_generator_make(11), gb = wk_generator_make(11);
        wk_module *ma = wk_linear_new(F, O, true, &ga), *mb_ = wk_linear_new(F, O, true, &gb);
        cr_assert(ma && mb_, "%s", wk_last_error());
        wk_tensor *pa[2] = {wk_module_param(ma, "weight"), wk_module_param(ma, "bias")};
        wk_tensor *pb[2] = {wk_module_param(mb_, "weight"), wk_module_param(mb_, "bias")};
        wk_optimizer *a = type == 0   ? wk_sgd_new(pa, 2, opts)
                          : type == 1 ? wk_adam_new(pa, 2, opts)
                                      : wk_adamw_new(pa, 2, opts);
        wk_optimizer *b = type == 0   ? wk_sgd_new(pb, 2, opts)
                          : type == 1 ? wk_adam_new(pb, 2, opts)
                                      : wk_adamw_new(pb, 2, opts);
        cr_assert(a && b, "%s", wk_last_error());
        cr_assert_eq(wk_optimizer_set_accumulation(a, 4), 0);
        int w = 0, updates = 0;
        for (int epoch = 0; epoch < 3; epoch++) {
            for (int mb = 0; mb < NMB; mb++) {
                int left = NMB - mb;
                double s = wk_optimizer_loss_scale(a, left);
                cr_assert_eq(s, mb < 8 ? 0.25 : 0.5, "micro-batch %d: scale %g", mb, s);
                wk_frame_begin();
                wk_tensor *pred = wk_module_forward(ma, wk_narrow(x, 0, mb * MB, MB));
                wk_tensor *loss = wk_mse_loss(pred, wk_narrow(y, 0, mb * MB, MB),
                                              WK_REDUCTION_MEAN);
                cr_assert_eq(wk_backward(wk_mul_scalar(loss, s)), 0, "%s", wk_last_error());
                wk_frame_end();
                int r = wk_optimizer_micro_step(a, left == 1);
                cr_assert_eq(r, (mb % 4 == 3 || left == 1) ? 1 : 0, "micro-batch %d", mb);
                if (r != 1) continue;
                int r0 = windows[w][0], r1 = windows[w][1];
                wk_frame_begin();
                wk_tensor *pred_b = wk_module_forward(mb_, wk_narrow(x, 0, r0, r1 - r0));
                cr_assert_eq(wk_backward(wk_mse_loss(pred_b, wk_narrow(y, 0, r0, r1 - r0),
                                                     WK_REDUCTION_MEAN)),
                             0, "%s", wk_last_error());
                wk_frame_end();
                cr_assert_eq(wk_optimizer_step(b), 0, "%s", wk_last_error());
                wk_optimizer_zero_grad(b);
                w = (w + 1) % 3;
                updates++;
                expect_close(pa[0], pb[0], 1e-6, "accumulated vs big batch: weight");
                expect_close(pa[1], pb[1], 1e-6, "accumulated vs big batch: bias");
                for (int k = 0; k < 2; k++)
                    for (int64_t i = 0; i < wk_numel(pa[k]); i++)
                        cr_assert_eq(tu_at(pa[k]->grad, i), 0.0, "grads zeroed after update");
            }
        }
        cr_assert_eq(updates, 9);
        cr_assert_eq(wk_optimizer_step_count(a), 9);
        /* the parameters moved: the check above is not comparing two idle layers */
        wk_generator g0 = wk_generator_make(11);
        wk_module *m0 = wk_linear_new(F, O, true, &g0);
        double moved = 0;
        for (int64_t i = 0; i < F * O; i++)
            moved = fmax(moved, fabs(tu_at(pa[0], i) - tu_at(wk_module_param(m0, "weight"), i)));
        cr_assert_gt(moved, 1e-2, "type %d: parameters barely moved (%g)", type, moved);
        wk_module_free(m0);
        wk_optimizer_free(a);
        wk_optimizer_free(b);
        wk_module_free(ma);
        wk_module_free(mb_);
    }
    wk_tensor_free(x);
    wk_tensor_free(y);
}

Test(optimizer, accumulation_api)
{
    wk_tensor *w = leaf(tu_f32(WK_SHAPE(1), 1));
    wk_optimizer *o = wk_sgd_new(&w, 1, WK_HPARAMS({"lr", 1}));
    cr_assert_eq(wk_optimizer_loss_scale(o, 0), 1.0, "default: no accumulation");
    cr_assert_eq(wk_optimizer_set_accumulation(o, 0), -1);
    cr_assert(strstr(wk_last_error(), "n = 0, expected >= 1"));
    cr_assert_eq(wk_optimizer_set_accumulation(o, 3), 0);
    cr_assert_eq(wk_optimizer_loss_scale(o, -1), 1.0 / 3, "unknown epoch length");
    cr_assert_eq(wk_optimizer_loss_scale(o, 2), 0.5);
    cr_assert_eq(wk_optimizer_loss_scale(o, 100), 1.0 / 3);
    set_grad(w, tu_f32(WK_SHAPE(1), 1));
    cr_assert_eq(wk_optimizer_micro_step(o, false), 0);
    cr_assert_eq(wk_optimizer_loss_scale(o, 1), 0.5, "second of a window cut at 2");
    cr_assert_eq(wk_optimizer_micro_step(o, false), 0);
    cr_assert_eq(wk_optimizer_micro_step(o, false), 1);
    expect_values(w, 0, 0);
    cr_assert_eq(wk_optimizer_micro_step(NULL, false), -1);
    cr_assert(isnan(wk_optimizer_loss_scale(NULL, 1)));
    cr_assert_eq(wk_optimizer_set_accumulation(NULL, 2), -1);
    wk_optimizer_free(o);
}

/* ---- state save and load ---- */

static wk_optimizer *build(wk_optim_type type, wk_tensor **ps, bool named)
{
    static const char *names[] = {"enc.weight", "enc.bias", "head.weight"};
    wk_param_group g[] = {
        {.params = ps, .nparams = 2, .names = named ? names : NULL},
        {.params = ps + 2, .nparams = 1, .names = named ? names + 2 : NULL,
         .hparams = {{"lr", 0.003}}},
    };
    const wk_hparam *opts[] = {
        [WK_OPTIM_SGD] = WK_HPARAMS({"lr", 0.01}, {"momentum", 0.9}, {"nesterov", 1}),
        [WK_OPTIM_ADAM] = WK_HPARAMS({"lr", 0.01}, {"amsgrad", 1}, {"weight_decay", 0.01}),
        [WK_OPTIM_ADAMW] = WK_HPARAMS({"lr", 0.01}, {"amsgrad", 1}),
        [WK_OPTIM_RMSPROP] = WK_HPARAMS({"lr", 0.01}, {"momentum", 0.5}, {"centered", 1}),
        [WK_OPTIM_ADAGRAD] = WK_HPARAMS({"lr", 0.01}, {"lr_decay", 0.1},
                                        {"initial_accumulator_value", 0.2}),
    };
    wk_optimizer *o = wk_optimizer_new(type, g, 2, opts[type]);
    cr_assert_not_null(o, "%s", wk_last_error());
    return o;
}

static void make_params(wk_tensor **ps)
{
    ps[0] = leaf(wk_randn(WK_SHAPE(4, 3), WK_DTYPE_F32, NULL));
    ps[1] = leaf(wk_randn(WK_SHAPE(4), WK_DTYPE_F32, NULL));
    ps[2] = leaf(wk_randn(WK_SHAPE(2, 4), WK_DTYPE_F32, NULL));
}

static void step_with(wk_optimizer *o, wk_tensor **ps, wk_tensor *const *grads, int k)
{
    for (int i = 0; i < 3; i++)
        set_grad(ps[i], (k == 2 && i == 1) ? NULL : grads[3 * k + i]); /* a skipped one */
    cr_assert_eq(wk_optimizer_step(o), 0, "%s", wk_last_error());
}

Test(optimizer, state_round_trip_is_bit_identical)
{
    char path[] = "/tmp/wick_optim_XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    close(fd);
    for (int type = 0; type < WK_OPTIM_COUNT; type++) {
        for (int named = 0; named < 2; named++) {
            wk_manual_seed(11);
            wk_tensor *ps[3], *qs[3], *grads[30];
            make_params(ps);
            for (int k = 0; k < 30; k++)
                grads[k] = wk_randn(ps[k % 3]->shape, ps[k % 3]->ndim, WK_DTYPE_F32, NULL);
            for (int i = 0; i < 3; i++) qs[i] = leaf(wk_clone(ps[i]));
            wk_optimizer *a = build((wk_optim_type)type, ps, named);
            wk_optimizer *b = build((wk_optim_type)type, qs, named);
            for (int k = 0; k < 5; k++) step_with(a, ps, grads, k);
            for (int k = 0; k < 5; k++) step_with(b, qs, grads, k);
            wk_optimizer_set_lr(b, 1, 0.002); /* a scheduler moved it; the state keeps it */
            wk_optimizer_set_lr(a, 1, 0.002);
            wk_optimizer_set_accumulation(b, 3);
            wk_optimizer_micro_step(b, false);
            cr_assert_eq(wk_optimizer_save(b, path), 0, "%s", wk_last_error());
            wk_optimizer_free(b);
            /* a fresh optimizer over the saved parameter values continues identically */
            wk_tensor *rs[3];
            for (int i = 0; i < 3; i++) rs[i] = leaf(wk_clone(qs[i]));
            wk_optimizer *c = build((wk_optim_type)type, rs, named);
            cr_assert_eq(wk_optimizer_load(c, path), 0, "%s", wk_last_error());
            cr_assert_eq(wk_optimizer_get_lr(c, 1), 0.002);
            cr_assert_eq(wk_optimizer_initial_lr(c, 1), 0.003);
            cr_assert_eq(wk_optimizer_step_count(c), 5);
            cr_assert_eq(wk_optimizer_loss_scale(c, 0), 1.0 / 3, "accumulation window restored");
            wk_optimizer_set_accumulation(c, 1);
            for (int k = 5; k < 10; k++) {
                step_with(a, ps, grads, k);
                step_with(c, rs, grads, k);
            }
            for (int i = 0; i < 3; i++)
                cr_assert_eq(memcmp(wk_data(ps[i]), wk_data(rs[i]), (size_t)wk_numel(ps[i]) * 4), 0,
                             "type %d named %d: param %d differs after resuming", type, named, i);
            wk_optimizer_free(a);
            wk_optimizer_free(c);
        }
    }
    unlink(path);
}

Test(optimizer, state_load_reports_mismatches_and_changes_nothing)
{
    wk_manual_seed(3);
    wk_tensor *ps[3];
    make_params(ps);
    wk_optimizer *a = build(WK_OPTIM_ADAM, ps, true);
    for (int i = 0; i < 3; i++) set_grad(ps[i], wk_ones_like(ps[i]));
    cr_assert_eq(wk_optimizer_step(a), 0);
    wk_named_tensor *items = NULL;
    int n = 0;
    char *json = NULL;
    cr_assert_eq(wk_optimizer_state_save(a, "opt.", &items, &n, &json), 0);
    cr_assert_eq(n, 9, "exp_avg, exp_avg_sq, max_exp_avg_sq for 3 params");
    cr_assert_str_eq(items[0].name, "opt.enc.weight.exp_avg");
    cr_assert_str_eq(items[8].name, "opt.head.weight.max_exp_avg_sq");
    char path[] = "/tmp/wick_optim_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(wk_safetensors_save(path, items, n, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0);
    unlink(path);

    /* another algorithm */
    wk_optimizer *s = build(WK_OPTIM_SGD, ps, true);
    cr_assert_eq(wk_optimizer_state_load(s, &st, "opt.", json), -1);
    cr_assert(strstr(wk_last_error(), "the state is for Adam, the optimizer is SGD"), "%s",
              wk_last_error());
    wk_optimizer_free(s);

    /* other shapes and names: every problem listed, nothing changed */
    wk_tensor *qs[3] = {leaf(wk_zeros(WK_SHAPE(4, 3), WK_DTYPE_F32)),
                        leaf(wk_zeros(WK_SHAPE(5), WK_DTYPE_F32)),
                        leaf(wk_zeros(WK_SHAPE(2, 4), WK_DTYPE_F32))};
    wk_optimizer *b = build(WK_OPTIM_ADAM, qs, true);
    wk_optimizer_set_lr(b, 0, 0.123);
    cr_assert_eq(wk_optimizer_state_load(b, &st, "opt.", json), -1);
    cr_assert(strstr(wk_last_error(), "1 problem: parameter \"enc.bias\": state has float32 [4], "
                                      "optimizer has float32 [5]"),
              "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_get_lr(b, 0), 0.123, "unchanged after a failed load");
    cr_assert_eq(wk_optimizer_state_load(b, &st, "other.", json), -1);
    cr_assert(strstr(wk_last_error(), "missing \"other.enc.weight.exp_avg\""), "%s",
              wk_last_error());
    wk_optimizer_free(b);

    /* right optimizer, but a tensor missing and an extra one under the prefix */
    wk_optimizer *c = build(WK_OPTIM_ADAM, ps, true);
    int i0 = -1, i1 = -1; /* sorted by name: find them */
    for (int k = 0; k < st.count; k++) {
        if (!strcmp(st.items[k].name, "opt.enc.weight.exp_avg")) i0 = k;
        if (!strcmp(st.items[k].name, "opt.enc.weight.exp_avg_sq")) i1 = k;
    }
    cr_assert(i0 >= 0 && i1 >= 0);
    st.items[i0].name[0] = 'x'; /* "xpt.enc.weight.exp_avg": outside the prefix */
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", json), -1);
    cr_assert(strstr(wk_last_error(), "1 problem: missing \"opt.enc.weight.exp_avg\""), "%s",
              wk_last_error());
    st.items[i0].name[0] = 'o';
    char *renamed = st.items[i1].name;
    renamed[strlen(renamed) - 3] = '\0'; /* "opt.enc.weight.exp_avg" */
    renamed[strlen(renamed) - 1] = 'X'; /* "opt.enc.weight.exp_avX": unexpected */
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", json), -1);
    cr_assert(strstr(wk_last_error(), "2 problems: missing \"opt.enc.weight.exp_avg_sq\"; "
                                      "unexpected \"opt.enc.weight.exp_avX\""),
              "%s", wk_last_error());
    strcpy(renamed, "opt.enc.weight.exp_avg_sq");
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", "{\"format\": 1}"), -1);
    cr_assert(strstr(wk_last_error(), "not an optimizer state"), "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", "not json"), -1);
    cr_assert(strstr(wk_last_error(), "not a JSON object"), "%s", wk_last_error());
    /* a hyper-parameter out of range in the JSON */
    char *bad = strdup(json), *at = strstr(bad, "\"beta2\":");
    cr_assert_not_null(at);
    memcpy(at + 8, "7", 1);
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", bad), -1);
    cr_assert(strstr(wk_last_error(), "group 0: beta2 = 7"), "%s", wk_last_error());
    free(bad);
    /* and the real thing */
    cr_assert_eq(wk_optimizer_state_load(c, &st, "opt.", json), 0, "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_step_count(c), 1);
    wk_optimizer_free(c);
    cr_assert_eq(wk_optimizer_load(a, "/nonexistent/x.safetensors"), -1);
    wk_safetensors_free(&st);
    for (int k = 0; k < n; k++) free(items[k].name);
    free(items);
    free(json);
    wk_optimizer_free(a);
}

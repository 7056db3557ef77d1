/* Modules: registration, names, dotted traversal, torch's state-dict order, parameter
 * counts, train/eval, zero_grad, ownership (leaks and double frees show under ASan). */
#include "test_util.h"

TestSuite(module, .init = tu_setup, .fini = tu_teardown);

/* A persistent float tensor (as the modules' own would be), so that a leak on an error
 * path is not hidden by the test's frame. */
static wk_tensor *persistent(const int64_t *shape, int ndim, double value)
{
    wk_tensor *t = wk_full(shape, ndim, value, WK_DTYPE_F32);
    while (t->frame) wk_keep(t);
    return t;
}

static wk_module *leaf(const char *type, int64_t in, int64_t out, bool with_buffer)
{
    wk_module *m = wk_module_new(type, NULL, 0);
    cr_assert_not_null(
        wk_module_add_parameter(m, "weight", wk_zeros(WK_SHAPE(out, in), WK_DTYPE_F32)));
    cr_assert_not_null(wk_module_add_parameter(m, "bias", wk_zeros(WK_SHAPE(out), WK_DTYPE_F32)));
    if (with_buffer) {
        cr_assert_not_null(
            wk_module_add_buffer(m, "running_mean", wk_zeros(WK_SHAPE(out), WK_DTYPE_F32)));
        cr_assert_not_null(
            wk_module_add_buffer(m, "num_batches_tracked", wk_zeros(NULL, 0, WK_DTYPE_I64)));
    }
    return m;
}

/* torch:
 *   class Net(nn.Module):
 *       def __init__(self):
 *           self.features = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(),
 *                                         nn.Linear(6, 5))   # BN: only 2 of its buffers here
 *           self.head = nn.Linear(5, 3)
 *           self.scale = nn.Parameter(...)                   # registered after children
 *           self.register_buffer("step", ...)
 */
static wk_module *net_new(void)
{
    wk_module *net = wk_module_new("Net", NULL, 0);
    wk_module *f = wk_module_add_child(net, "features", wk_module_new("Sequential", NULL, 0));
    wk_module_add_child(f, "0", leaf("Linear", 4, 6, false));
    wk_module_add_child(f, "1", leaf("BatchNorm1d", 1, 6, true));
    wk_module_add_child(f, "2", wk_module_new("ReLU", NULL, 0));
    wk_module_add_child(f, "3", leaf("Linear", 6, 5, false));
    wk_module_add_child(net, "head", leaf("Linear", 5, 3, false));
    wk_module_add_parameter(net, "scale", wk_ones(WK_SHAPE(3), WK_DTYPE_F32));
    wk_module_add_buffer(net, "step", wk_zeros(WK_SHAPE(1), WK_DTYPE_I64));
    return net;
}

Test(module, new_module_defaults)
{
    wk_module *m = wk_module_new("Thing", NULL, 24);
    cr_assert_not_null(m);
    cr_assert_str_eq(m->type, "Thing");
    cr_assert(m->training);
    cr_assert_not_null(m->config);
    for (int i = 0; i < 24; i++) cr_assert_eq(((unsigned char *)m->config)[i], 0);
    cr_assert_eq(m->nparams + m->nbuffers + m->nchildren, 0);
    cr_assert_eq(wk_module_num_parameters(m), 0);
    cr_assert_eq(wk_module_named_parameters(m, true, NULL, 0), 0);
    wk_module_free(m);
    m = wk_module_new(NULL, NULL, 0);
    cr_assert_str_eq(m->type, "Module");
    cr_assert_null(m->config);
    wk_module_free(m);
    wk_module_free(NULL);
}

Test(module, registration)
{
    wk_module *m = wk_module_new("M", NULL, 0);
    wk_tensor *w = wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32); /* a frame tensor */
    cr_assert_eq(wk_module_add_parameter(m, "weight", w), w);
    cr_assert_eq(w->frame, 0, "parameters are persistent");
    cr_assert(w->requires_grad);
    wk_tensor *rm = wk_zeros(WK_SHAPE(3), WK_DTYPE_F64);
    cr_assert_eq(wk_module_add_buffer(m, "running_mean", rm), rm);
    cr_assert_eq(rm->frame, 0);
    cr_assert(!rm->requires_grad);
    wk_tensor *cnt = wk_zeros(NULL, 0, WK_DTYPE_I64);
    cr_assert_eq(wk_module_add_buffer(m, "count", cnt), cnt, "integer buffers are fine");
    wk_module *c = wk_module_new("Child", NULL, 0);
    cr_assert_eq(wk_module_add_child(m, "sub", c), c);

    cr_assert_eq(wk_module_param(m, "weight"), w);
    cr_assert_null(wk_module_param(m, "running_mean"), "buffers are not parameters");
    cr_assert_eq(wk_module_buffer(m, "running_mean"), rm);
    cr_assert_null(wk_module_buffer(m, "weight"));
    cr_assert_eq(wk_module_child(m, "sub"), c);
    cr_assert_null(wk_module_child(m, "weight"));
    cr_assert_null(wk_module_param(m, "weigh"));
    cr_assert_null(wk_module_param(NULL, "weight"));
    cr_assert_null(wk_module_child(m, NULL));
    wk_module_free(m); /* ASan: everything above is freed exactly once */
}

Test(module, invalid_and_duplicate_names)
{
    wk_module *m = wk_module_new("M", NULL, 0);
    wk_module_add_parameter(m, "weight", wk_zeros(WK_SHAPE(2), WK_DTYPE_F32));
    wk_module_add_buffer(m, "buf", wk_zeros(WK_SHAPE(2), WK_DTYPE_F32));
    wk_module_add_child(m, "sub", wk_module_new("Child", NULL, 0));
    const char *bad[] = {"", "a.b", ".", "x."};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        expect_error(wk_module_add_parameter(m, bad[i], persistent(WK_SHAPE(1), 0)),
                     "module_add_parameter: invalid name");
        expect_error(wk_module_add_buffer(m, bad[i], persistent(WK_SHAPE(1), 0)),
                     "module_add_buffer: invalid name");
        expect_error(wk_module_add_child(m, bad[i], wk_module_new("C", NULL, 0)),
                     "module_add_child: invalid name");
    }
    expect_error(wk_module_add_parameter(m, NULL, persistent(WK_SHAPE(1), 0)),
                 "invalid name \"(null)\" on M");
    char long_name[66];
    memset(long_name, 'x', 65);
    long_name[65] = '\0';
    expect_error(wk_module_add_buffer(m, long_name, persistent(WK_SHAPE(1), 0)),
                 "at most 64 characters");
    long_name[64] = '\0';
    cr_assert_not_null(wk_module_add_buffer(m, long_name, persistent(WK_SHAPE(1), 0)));

    /* One namespace for parameters, buffers and children, as in torch. */
    const char *taken[] = {"weight", "buf", "sub"};
    for (int i = 0; i < 3; i++) {
        char want[80];
        snprintf(want, sizeof want, "M already has an attribute named \"%s\"", taken[i]);
        expect_error(wk_module_add_parameter(m, taken[i], persistent(WK_SHAPE(1), 0)), want);
        expect_error(wk_module_add_buffer(m, taken[i], persistent(WK_SHAPE(1), 0)), want);
        expect_error(wk_module_add_child(m, taken[i], wk_module_new("C", NULL, 0)), want);
    }
    cr_assert_eq(m->nparams, 1);
    cr_assert_eq(m->nbuffers, 2);
    cr_assert_eq(m->nchildren, 1);

    /* Parameters must be floating point; the tensor is freed (ASan checks). */
    wk_tensor *it = wk_zeros(WK_SHAPE(2), WK_DTYPE_I64);
    while (it->frame) wk_keep(it);
    expect_error(wk_module_add_parameter(m, "idx", it),
                 "parameter \"idx\" must be floating point, got int64");
    /* NULL inputs: the earlier message stays. */
    wk_set_error("randn: out of memory");
    cr_assert_null(wk_module_add_parameter(m, "w2", NULL));
    cr_assert_null(wk_module_add_child(m, "c2", NULL));
    cr_assert_str_eq(wk_last_error(), "randn: out of memory");
    expect_error(wk_module_add_parameter(m, "w2", NULL), "tensor \"w2\" is NULL");
    expect_error(wk_module_add_child(m, "c2", NULL), "child \"c2\" is NULL");
    expect_error(wk_module_add_parameter(NULL, "w", persistent(WK_SHAPE(1), 0)),
                 "module is NULL");
    expect_error(wk_module_add_child(NULL, "w", wk_module_new("C", NULL, 0)), "module is NULL");
    wk_module_free(m);
}

Test(module, dotted_traversal)
{
    wk_module *net = net_new();
    wk_module *f = wk_module_child(net, "features");
    cr_assert_eq(wk_module_find(net, "features.0.weight"),
                 wk_module_param(wk_module_child(f, "0"), "weight"));
    cr_assert_eq(wk_module_find(net, "features.1.running_mean"),
                 wk_module_buffer(wk_module_child(f, "1"), "running_mean"));
    cr_assert_eq(wk_module_find(net, "scale"), wk_module_param(net, "scale"));
    cr_assert_eq(wk_module_find(net, "step"), wk_module_buffer(net, "step"));
    cr_assert_eq(wk_module_find(net, "head.bias"),
                 wk_module_param(wk_module_child(net, "head"), "bias"));
    const char *absent[] = {"features", "features.0", "features.0.weight.x", "features.9.weight",
                            "features..0.weight", ".scale", "scale.", "", "head.weigh",
                            "features.2.weight"};
    for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
        cr_assert_null(wk_module_find(net, absent[i]), "\"%s\" found", absent[i]);
    cr_assert_null(wk_module_find(NULL, "scale"));
    cr_assert_null(wk_module_find(net, NULL));
    wk_module_free(net);
}

Test(module, named_parameters_follow_torch_order)
{
    wk_module *net = net_new();
    /* Printed by torch for the same Net: own entries first, then each child's. */
    const char *params[] = {"scale", "features.0.weight", "features.0.bias", "features.1.weight",
                            "features.1.bias", "features.3.weight", "features.3.bias",
                            "head.weight", "head.bias"};
    const char *state[] = {"scale", "step", "features.0.weight", "features.0.bias",
                           "features.1.weight", "features.1.bias", "features.1.running_mean",
                           "features.1.num_batches_tracked", "features.3.weight",
                           "features.3.bias", "head.weight", "head.bias"};
    wk_named_param p[16];
    int n = wk_module_named_parameters(net, false, p, 16);
    cr_assert_eq(n, 9);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(p[i].name, params[i]);
        cr_assert(!p[i].is_buffer);
        cr_assert_eq(p[i].tensor, wk_module_find(net, params[i]));
    }
    n = wk_module_named_parameters(net, true, p, 16);
    cr_assert_eq(n, 12);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(p[i].name, state[i]);
        cr_assert_eq(p[i].is_buffer, !strcmp(state[i], "step") || strstr(state[i], "running") ||
                                         strstr(state[i], "num_batches"));
    }
    /* Counting without storage, and a short array: the total, the first cap entries. */
    cr_assert_eq(wk_module_named_parameters(net, true, NULL, 0), 12);
    memset(p, 0, sizeof p);
    cr_assert_eq(wk_module_named_parameters(net, true, p, 3), 12);
    cr_assert_str_eq(p[2].name, "features.0.weight");
    cr_assert_eq(p[3].name[0], '\0', "nothing written past cap");
    cr_assert_eq(wk_module_named_parameters(NULL, true, p, 3), 0);
    wk_module_free(net);
}

Test(module, num_parameters_counts_parameters_only)
{
    wk_module *net = net_new();
    int64_t want = 3 + (24 + 6) + (6 + 6) + (30 + 5) + (15 + 3);
    cr_assert_eq(wk_module_num_parameters(net), want);
    cr_assert_eq(wk_module_num_parameters(wk_module_child(net, "head")), 18);
    cr_assert_eq(wk_module_num_parameters(NULL), 0);
    wk_module_free(net);
}

Test(module, train_eval_propagates)
{
    wk_module *net = net_new();
    wk_module *f = wk_module_child(net, "features");
    wk_module *bn = wk_module_child(f, "1");
    wk_module_train(net, false);
    cr_assert(!net->training && !f->training && !bn->training &&
              !wk_module_child(net, "head")->training);
    /* A child added to an eval module starts in eval. */
    wk_module *extra = wk_module_add_child(f, "4", wk_module_new("Dropout", NULL, 0));
    cr_assert(!extra->training);
    wk_module_train(f, true); /* only the subtree */
    cr_assert(f->training && bn->training && extra->training);
    cr_assert(!net->training && !wk_module_child(net, "head")->training);
    wk_module_train(net, true);
    cr_assert(wk_module_child(net, "head")->training && net->training);
    wk_module_train(NULL, true);
    wk_module_free(net);
}

Test(module, zero_grad_zeroes_every_parameter_grad)
{
    wk_module *net = net_new();
    wk_named_param p[16];
    int n = wk_module_named_parameters(net, false, p, 16);
    /* Give every other parameter a grad of 7s (persistent, owned by the parameter). */
    for (int i = 0; i < n; i += 2) {
        p[i].tensor->grad = wk_full_like(p[i].tensor, 7);
        while (p[i].tensor->grad->frame) wk_keep(p[i].tensor->grad);
    }
    wk_tensor *grads[16];
    for (int i = 0; i < n; i++) grads[i] = p[i].tensor->grad;
    wk_module_zero_grad(net);
    for (int i = 0; i < n; i++) {
        cr_assert_eq(p[i].tensor->grad, grads[i], "%s: grad kept allocated", p[i].name);
        if (!grads[i]) continue;
        for (int64_t k = 0; k < wk_numel(grads[i]); k++)
            cr_assert_eq(tu_at(grads[i], k), 0.0, "%s[%lld]", p[i].name, (long long)k);
    }
    wk_module_zero_grad(NULL);
    wk_module_free(net); /* frees the grads with their parameters (ASan) */
}

/* ---- forward and configs ---- */

typedef struct {
    double factor;
    char *label; /* owned: freed by config_free */
} scale_cfg;

static int config_frees;

static void scale_cfg_free(void *p)
{
    config_frees++;
    free(((scale_cfg *)p)->label);
}

static wk_tensor *scale_forward(wk_module *m, wk_tensor *x)
{
    const scale_cfg *c = m->config;
    return wk_mul_scalar(x, m->training ? c->factor : 1.0);
}

Test(module, forward_uses_config_and_mode)
{
    wk_module *m = wk_module_new("Scale", scale_forward, sizeof(scale_cfg));
    scale_cfg *c = m->config;
    c->factor = 3;
    c->label = strdup("x3");
    m->config_free = scale_cfg_free;
    wk_tensor *x = tu_f32(WK_SHAPE(2), 1, -2);
    expect_values(wk_module_forward(m, x), 0, 3, -6);
    wk_module_train(m, false);
    expect_values(wk_module_forward(m, x), 0, 1, -2);
    /* Nested: the parent frees the child and its config. */
    wk_module *parent = wk_module_new("P", NULL, 0);
    wk_module_add_child(parent, "s", m);
    config_frees = 0;
    wk_module_free(parent);
    cr_assert_eq(config_frees, 1);
}

Test(module, forward_errors)
{
    wk_module *m = wk_module_new("Container", NULL, 0);
    expect_error(wk_module_forward(m, tu_f32(WK_SHAPE(1), 1)),
                 "module_forward: Container has no single-tensor forward");
    expect_error(wk_module_forward(NULL, tu_f32(WK_SHAPE(1), 1)), "module_forward: module is NULL");
    wk_module *s = wk_module_new("Scale", scale_forward, sizeof(scale_cfg));
    expect_error(wk_module_forward(s, NULL), "Scale: input is NULL");
    wk_set_error("first");
    cr_assert_null(wk_module_forward(s, NULL));
    cr_assert_str_eq(wk_last_error(), "first");
    wk_module_free(s);
    wk_module_free(m);
}

Test(module, deep_nested_free_is_clean)
{
    /* 6 levels, 3 children each, every node with a parameter and a buffer: ASan/LSan
     * report any leak or double free when this process ends. */
    wk_module *root = wk_module_new("Node", NULL, 0);
    wk_module *level[7][729];
    int count[7] = {1};
    level[0][0] = root;
    for (int d = 0; d < 6; d++) {
        count[d + 1] = 0;
        for (int i = 0; i < count[d]; i++) {
            wk_module *m = level[d][i];
            wk_module_add_parameter(m, "w", wk_zeros(WK_SHAPE(2), WK_DTYPE_F32));
            wk_module_add_buffer(m, "b", wk_zeros(WK_SHAPE(1), WK_DTYPE_I64));
            for (int k = 0; k < 3; k++) {
                char name[4];
                snprintf(name, sizeof name, "%d", k);
                level[d + 1][count[d + 1]++] =
                    wk_module_add_child(m, name, wk_module_new("Node", NULL, 0));
            }
        }
    }
    int nodes = 1 + 3 + 9 + 27 + 81 + 243; /* the leaves (729) have no parameters */
    cr_assert_eq(wk_module_num_parameters(root), 2 * nodes);
    cr_assert_eq(wk_module_named_parameters(root, true, NULL, 0), 2 * nodes);
    cr_assert_not_null(wk_module_find(root, "2.1.0.2.1.w"));
    cr_assert_not_null(wk_module_find(root, "2.1.0.2.1.b"));
    wk_module_free(root);
}

/* Activation modules: torch's type names, no parameters, forward values against a naive
 * formula (contiguous and transposed inputs, train and eval), errors, gradients through
 * the modules (an explicit output gradient, and wk_gradcheck in float64 once wk_sum has
 * its backward: skipped before, not failed). */
#include "test_util.h"

TestSuite(activation, .init = tu_setup, .fini = tu_teardown);

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double relu(double x) { return x > 0 ? x : 0; }
static double gelu(double x) { return 0.5 * x * (1 + erf(x / sqrt(2))); }
static double gelu_tanh(double x)
{
    return 0.5 * x * (1 + tanh(sqrt(2 / M_PI) * (x + 0.044715 * x * x * x)));
}
static double silu(double x) { return x * sigmoid(x); }
static double identity(double x) { return x; }
static double d_relu(double x) { return x > 0; }
static double d_tanh(double x) { return 1 - tanh(x) * tanh(x); }
static double d_sigmoid(double x) { return sigmoid(x) * (1 - sigmoid(x)); }
static double d_silu(double x) { return sigmoid(x) * (1 + x * (1 - sigmoid(x))); }
static double d_gelu(double x)
{
    return 0.5 * (1 + erf(x / sqrt(2))) + x * exp(-0.5 * x * x) / sqrt(2 * M_PI);
}
static double d_gelu_tanh(double x)
{
    const double c = sqrt(2 / M_PI), k = 0.044715;
    double t = tanh(c * (x + k * x * x * x));
    return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * c * (1 + 3 * k * x * x);
}
static double one(double x) { return (void)x, 1; }

typedef struct {
    const char *type;
    wk_module *(*make)(const char *arg);
    const char *arg;
    double (*f)(double), (*d)(double);
} act_case;

static wk_module *make_relu(const char *a) { return (void)a, wk_relu_new(); }
static wk_module *make_gelu(const char *a) { return wk_gelu_new(a); }
static wk_module *make_silu(const char *a) { return (void)a, wk_silu_new(); }
static wk_module *make_tanh(const char *a) { return (void)a, wk_tanh_new(); }
static wk_module *make_sigmoid(const char *a) { return (void)a, wk_sigmoid_new(); }
static wk_module *make_identity(const char *a) { return (void)a, wk_identity_new(); }

static const act_case cases[] = {
    {"ReLU", make_relu, NULL, relu, d_relu},
    {"GELU", make_gelu, NULL, gelu, d_gelu},
    {"GELU", make_gelu, "none", gelu, d_gelu},
    {"GELU", make_gelu, "tanh", gelu_tanh, d_gelu_tanh},
    {"SiLU", make_silu, NULL, silu, d_silu},
    {"Tanh", make_tanh, NULL, tanh, d_tanh},
    {"Sigmoid", make_sigmoid, NULL, sigmoid, d_sigmoid},
    {"Identity", make_identity, NULL, identity, one},
};
#define NCASES (int)(sizeof cases / sizeof cases[0])

/* x [3, 4] with values spread over [-3, 3] (0 included), transposed when asked. */
static wk_tensor *input(wk_dtype d, bool transposed)
{
    wk_tensor *x = wk_empty(WK_SHAPE(4, 3), WK_DTYPE_F64);
    for (int i = 0; i < 12; i++) ((double *)wk_data(x))[i] = -3 + 6.0 * i / 11 + (i == 6);
    ((double *)wk_data(x))[5] = 0;
    x = wk_to_dtype(x, d);
    return transposed ? wk_transpose(x, 0, 1) : wk_contiguous(wk_reshape(x, WK_SHAPE(3, 4)));
}

Test(activation, type_names_and_no_parameters)
{
    for (int k = 0; k < NCASES; k++) {
        wk_module *m = cases[k].make(cases[k].arg);
        cr_assert_not_null(m, "%s", wk_last_error());
        cr_assert_str_eq(m->type, cases[k].type);
        cr_assert_eq(m->nparams + m->nbuffers + m->nchildren, 0);
        cr_assert_eq(wk_module_num_parameters(m), 0);
        cr_assert_eq(wk_module_named_parameters(m, true, NULL, 0), 0);
        cr_assert(m->training);
        wk_module_free(m);
    }
}

Test(activation, forward_values_layouts_and_modes)
{
    for (int k = 0; k < NCASES; k++) {
        wk_module *m = cases[k].make(cases[k].arg);
        for (int f = 0; f < 2; f++) {
            wk_dtype d = f ? WK_DTYPE_F32 : WK_DTYPE_F64;
            double tol = f ? 1e-6 : 1e-14;
            for (int t = 0; t < 4; t++) {
                wk_module_train(m, t < 2);
                wk_tensor *x = input(d, t & 1);
                wk_tensor *y = wk_module_forward(m, x);
                expect_shape(y, 3, 4);
                cr_assert_eq(y->dtype, d);
                double ref[12];
                for (int i = 0; i < 12; i++) ref[i] = cases[k].f(tu_at(x, i));
                tu_expect_values(y, ref, 12, tol, tol, cases[k].type);
            }
        }
        wk_module_free(m);
    }
}

Test(activation, relu_and_identity_by_hand)
{
    wk_module *r = wk_relu_new(), *id = wk_identity_new();
    wk_tensor *x = tu_f32(WK_SHAPE(4), -1, 0, 2.5, -0.0);
    expect_values(wk_module_forward(r, x), 0, 0, 0, 2.5, 0);
    cr_assert_eq(wk_module_forward(id, x), x, "Identity returns its input itself");
    wk_module_free(r);
    wk_module_free(id);
}

Test(activation, errors)
{
    expect_error(wk_gelu_new("exact"),
                 "GELU: approximate must be \"none\" or \"tanh\", got \"exact\"");
    wk_module *g = wk_gelu_new("tanh"), *r = wk_relu_new();
    expect_error(wk_module_forward(g, wk_to_dtype(tu_f32(WK_SHAPE(1), 1), WK_DTYPE_BF16)),
                 "gelu_tanh: bfloat16 tensors are not supported");
    expect_error(wk_module_forward(r, wk_from_array((uint8_t[]){1}, WK_SHAPE(1),
                                                    WK_DTYPE_BOOL)),
                 "relu: not supported for bool tensors");
    expect_error(wk_module_forward(r, NULL), "ReLU: input is NULL");
    wk_module_free(g);
    wk_module_free(r);
}

/* d(forward)/dx through each module with an explicit output gradient. */
Test(activation, gradients_through_modules)
{
    for (int k = 0; k < NCASES; k++) {
        wk_module *m = cases[k].make(cases[k].arg);
        wk_tensor *x = wk_requires_grad_(input(WK_DTYPE_F64, true), true);
        wk_tensor *g = wk_full(WK_SHAPE(3, 4), 0.5, WK_DTYPE_F64);
        wk_tensor *y = wk_module_forward(m, x);
        cr_assert(y->requires_grad, "%s", cases[k].type);
        cr_assert_eq(wk_backward_ex(y, g, false), 0, "%s: %s", cases[k].type, wk_last_error());
        double ref[12];
        for (int i = 0; i < 12; i++) ref[i] = 0.5 * cases[k].d(tu_at(x, i));
        tu_expect_values(x->grad, ref, 12, 1e-12, 1e-14, cases[k].type);
        wk_module_free(m);
    }
}

static wk_tensor *forward_fn(wk_tensor *const *in, int n, void *user)
{
    (void)n;
    /* the module between two ops, so its input and output are inner graph nodes */
    wk_tensor *h = wk_module_forward(user, wk_mul_scalar(in[0], 1.5));
    return wk_add_scalar(h, 0.25);
}

Test(activation, gradcheck_through_modules)
{
    wk_tensor *probe = wk_requires_grad_(wk_ones(WK_SHAPE(2), WK_DTYPE_F64), true);
    if (!wk_sum(probe, WK_ALL_DIMS, false)->requires_grad)
        cr_assert_fail("wk_sum has no backward yet (reductions): gradchecks skipped");
    for (int k = 0; k < NCASES; k++) {
        wk_module *m = cases[k].make(cases[k].arg);
        wk_tensor *x = input(WK_DTYPE_F64, false); /* no element within eps of relu's kink */
        ((double *)wk_data(x))[5] = 0.1;
        cr_assert_eq(wk_gradcheck(forward_fn, m, &x, 1, 1e-6, 1e-7, 1e-5), 0, "%s: %s",
                     cases[k].type, wk_last_error());
        wk_module_free(m);
    }
}

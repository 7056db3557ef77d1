/* Whole models against PyTorch. tests/fixtures/models.safetensors (written by
 * tools/gen_model_fixtures.py): an MLP (built with wk_mlp_new) and a CNN of conv, batch
 * norm in training mode and pooling (a layer composition, built here from nn/'s modules).
 * tests/fixtures/models_builtin.safetensors: tiny instances of the built-in models of
 * nn/models.h (nanoGPT with and without biases, the small ResNet, the Fashion-MNIST CNN,
 * a deeper Tanh MLP), built by the library constructors. Each is loaded with the
 * fixture's weights by name (all names must match torch's), run forward on the fixture's
 * inputs, and the logits, the mean cross-entropy, every parameter gradient and the
 * batch-norm running statistics are compared with torch's: float32 to 1e-4 relative (the
 * built-in models also in float64, see RTOL_F64). */
#include <stdlib.h>

#include "test_util.h"

TestSuite(models_torch, .init = tu_setup, .fini = tu_teardown);

#define FIX(name) WK_FIXTURES "/" name
#define BUILTIN FIX("models_builtin.safetensors")
#define RTOL 1e-4
/* Absolute floor: the losses are O(1), so float32 rounding leaves noise of ~1e-9 in
 * gradients that are zero in exact arithmetic (the bias of a conv feeding a batch norm:
 * torch gets 1.5e-9, wick exactly 0). */
#define ATOL 1e-8
/* The built-in models' references are float64 results rounded to float32 (relative
 * rounding 6e-8): wick in float64 must agree to that, up to a margin. In float32 it must
 * be within RTOL, or twice torch's own float32 error against the same reference where
 * that is larger (the fixture's "<model>.torch_f32_error": rounding grows with depth,
 * and wick need not beat torch at it). */
#define RTOL_F64 1e-6

/* The tolerance in force, and whether the model was converted to float64 (then the
 * fixture's float inputs are converted too). */
static double rtol = RTOL;
static bool as_f64;

static wk_tensor *fixture(const wk_safetensors *st, const char *model, const char *what)
{
    char name[300];
    snprintf(name, sizeof name, "%s.%s", model, what);
    wk_tensor *t = wk_safetensors_get(st, name);
    cr_assert_not_null(t, "fixture has no %s: %s", name, wk_last_error());
    return t;
}

/* Every element within RTOL of torch's value, relative to the value itself or, for
 * values near zero, to the largest magnitude in the tensor (gradients that cancel to
 * ~1e-9 in float32 carry rounding of that scale). Returns the worst relative error. */
static double expect_close(const wk_tensor *got, const wk_tensor *want, const char *what)
{
    cr_assert_not_null(got, "%s: NULL (%s)", what, wk_last_error());
    cr_assert_eq(got->ndim, want->ndim, "%s: ndim %d, expected %d", what, got->ndim,
                 want->ndim);
    for (int d = 0; d < want->ndim; d++)
        cr_assert_eq(got->shape[d], want->shape[d], "%s: dim %d is %lld, expected %lld",
                     what, d, (long long)got->shape[d], (long long)want->shape[d]);
    int64_t n = wk_numel(want);
    double maxabs = 0, worst = 0;
    for (int64_t i = 0; i < n; i++) maxabs = fmax(maxabs, fabs(tu_at(want, i)));
    for (int64_t i = 0; i < n; i++) {
        double g = tu_at(got, i), e = tu_at(want, i);
        double scale = fmax(fmax(fabs(e), 1e-3 * maxabs), ATOL / RTOL);
        double rel = fabs(g - e) / scale;
        cr_assert(rel <= rtol, "%s[%lld] = %.9g, torch %.9g (relative error %.3g)", what,
                  (long long)i, g, e, rel);
        worst = fmax(worst, rel);
    }
    if (getenv("WK_TEST_VERBOSE"))
        fprintf(stderr, "%-28s worst relative error %.3g\n", what, worst);
    return worst;
}

/* Count fixture entries starting with prefix. */
static int count_prefix(const wk_safetensors *st, const char *prefix)
{
    int n = 0;
    for (int i = 0; i < st->count; i++)
        if (!strncmp(st->items[i].name, prefix, strlen(prefix))) n++;
    return n;
}

/* Load "<model>.param.*" into m (all parameters must be found; buffers are not in the
 * fixture's parameter set and are reported missing: nbuffers of them). */
static void load_params(wk_module *m, const wk_safetensors *st, const char *model, int nbuffers)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.param.", model);
    wk_state_dict_report rep;
    int rc = wk_state_dict_load_from(m, st, prefix, nbuffers == 0, &rep);
    cr_assert_eq(rc, 0, "load %s: %s", model, wk_last_error());
    int nparams = wk_module_named_parameters(m, false, NULL, 0);
    cr_assert_eq(rep.nunexpected, 0, "%s: unexpected %s", model,
                 rep.nunexpected ? rep.unexpected[0] : "");
    cr_assert_eq(rep.nmismatched, 0, "%s: %s", model, rep.nmismatched ? rep.mismatched[0] : "");
    cr_assert_eq(rep.nmissing, nbuffers, "%s: %d missing (%s)", model, rep.nmissing,
                 rep.nmissing ? rep.missing[0] : "");
    cr_assert_eq(rep.nloaded, nparams, "%s: loaded %d of %d", model, rep.nloaded, nparams);
    cr_assert_eq(count_prefix(st, prefix), nparams, "%s: fixture has %d parameters, model %d",
                 model, count_prefix(st, prefix), nparams);
    wk_state_dict_report_free(&rep);
}

/* Forward (fn), mean cross-entropy over the flattened logits, backward; compares the
 * logits, loss and every parameter's gradient with the fixture. */
typedef wk_tensor *(*model_fn)(wk_module *m, wk_tensor *x);

static void check_model(wk_module *m, const wk_safetensors *st, const char *model, model_fn fn)
{
    wk_tensor *x = fixture(st, model, "x"), *y = fixture(st, model, "y");
    if (as_f64 && wk_dtype_is_float(x->dtype)) x = wk_to_dtype(x, WK_DTYPE_F64);
    wk_module_zero_grad(m);
    wk_tensor *logits = fn(m, x);
    cr_assert_not_null(logits, "%s forward: %s", model, wk_last_error());
    int64_t c = logits->shape[logits->ndim - 1];
    wk_tensor *flat = wk_reshape(logits, WK_SHAPE(-1, c));
    wk_tensor *labels = wk_reshape(y, WK_SHAPE(-1));
    wk_tensor *loss = wk_cross_entropy(flat, labels, NULL);
    cr_assert_not_null(loss, "%s loss: %s", model, wk_last_error());
    double w = expect_close(logits, fixture(st, model, "logits"), "logits");
    w = fmax(w, expect_close(loss, fixture(st, model, "loss"), "loss"));
    cr_assert_eq(wk_backward(loss), 0, "%s backward: %s", model, wk_last_error());

    wk_named_param ps[64];
    int n = wk_module_named_parameters(m, false, ps, 64);
    cr_assert(n > 0 && n <= 64);
    char gname[300];
    snprintf(gname, sizeof gname, "%.32s.grad.", model);
    cr_assert_eq(count_prefix(st, gname), n, "%s: fixture has %d gradients, model %d params",
                 model, count_prefix(st, gname), n);
    for (int i = 0; i < n; i++) {
        snprintf(gname, sizeof gname, "grad.%.255s", ps[i].name);
        cr_assert_not_null(ps[i].tensor->grad, "%s: %s has no gradient", model, ps[i].name);
        char what[340];
        snprintf(what, sizeof what, "%.32s.%.300s", model, gname);
        w = fmax(w, expect_close(ps[i].tensor->grad, fixture(st, model, gname), what));
    }
    cr_log_info("%s: %d parameters, worst relative error %.3g", model, n, w);
}

static wk_tensor *plain_forward(wk_module *m, wk_tensor *x) { return wk_module_forward(m, x); }

Test(models_torch, mlp)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIX("models.safetensors"), &st), 0, "%s", wk_last_error());
    wk_module *m = wk_mlp_new(&(wk_mlp_opts){.sizes = (const int64_t[]){8, 16, 4}, .nsizes = 3},
                              NULL);
    cr_assert_not_null(m, "%s", wk_last_error());
    load_params(m, &st, "mlp", 0);
    check_model(m, &st, "mlp", plain_forward);
    wk_module_free(m);
    wk_safetensors_free(&st);
}

Test(models_torch, cnn)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIX("models.safetensors"), &st), 0, "%s", wk_last_error());
    const wk_conv2d_opts pad1 = {.padding = {1, 1}};
    wk_module *m = wk_sequential_of(
        (wk_module *[]){
            wk_conv2d_new(1, 4, 3, 3, &pad1, true, NULL),
            wk_batch_norm2d_new(4, 1e-5, 0.1, true, true),
            wk_relu_new(),
            wk_max_pool2d_new(&(wk_pool2d_opts){.kernel = {2, 2}}),
            wk_conv2d_new(4, 8, 3, 3, &pad1, true, NULL),
            wk_relu_new(),
            wk_avg_pool2d_new(&(wk_pool2d_opts){.kernel = {2, 2}}),
            wk_adaptive_avg_pool2d_new(1, 1),
            wk_flatten_new(1, -1),
            wk_linear_new(8, 3, true, NULL),
        },
        10);
    cr_assert_not_null(m, "%s", wk_last_error());
    load_params(m, &st, "cnn", 3);
    wk_module_train(m, true);
    check_model(m, &st, "cnn", plain_forward);
    /* running statistics after one training forward */
    const char *bufs[] = {"1.running_mean", "1.running_var"};
    for (int i = 0; i < 2; i++) {
        char name[64];
        snprintf(name, sizeof name, "buffer.%s", bufs[i]);
        expect_close(wk_module_find(m, bufs[i]), fixture(&st, "cnn", name), name);
    }
    wk_tensor *nbt = wk_module_find(m, "1.num_batches_tracked");
    cr_assert_not_null(nbt);
    cr_assert_eq(tu_at(nbt, 0), tu_at(fixture(&st, "cnn", "buffer.1.num_batches_tracked"), 0));
    cr_assert_eq(count_prefix(&st, "cnn.buffer."), 3);
    wk_module_free(m);
    wk_safetensors_free(&st);
}

/* Every buffer of m against "<model>.buffer.<name>" after the training forward: the
 * running statistics to RTOL, num_batches_tracked exactly. Returns the count. */
static int check_buffers(const wk_module *m, const wk_safetensors *st, const char *model)
{
    wk_named_param ps[128];
    int n = wk_module_named_parameters(m, true, ps, 128), nb = 0;
    cr_assert(n <= 128);
    for (int i = 0; i < n; i++) {
        if (!ps[i].is_buffer) continue;
        char name[300];
        snprintf(name, sizeof name, "buffer.%.255s", ps[i].name);
        wk_tensor *want = fixture(st, model, name);
        if (ps[i].tensor->dtype == WK_DTYPE_I64)
            cr_assert_eq(tu_at(ps[i].tensor, 0), tu_at(want, 0), "%s", name);
        else
            expect_close(ps[i].tensor, want, name);
        nb++;
    }
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s.buffer.", model);
    cr_assert_eq(count_prefix(st, prefix), nb, "%s: fixture has %d buffers, model %d", model,
                 count_prefix(st, prefix), nb);
    return nb;
}

static int count_buffers(const wk_module *m)
{
    return wk_module_named_parameters(m, true, NULL, 0) -
           wk_module_named_parameters(m, false, NULL, 0);
}

/* The float32 tolerance of a built-in model (see RTOL_F64). */
static double f32_tolerance(const wk_safetensors *st, const char *model)
{
    double torch_err = wk_item(fixture(st, model, "torch_f32_error"));
    cr_log_info("%s: torch's float32 error %.3g", model, torch_err);
    return fmax(RTOL, 2 * torch_err);
}

/* Parameters and float buffers to float64 (new leaves), as test_models.c does. */
static void module_to_f64(wk_module *m)
{
    wk_no_grad_begin();
    for (int i = 0; i < m->nparams; i++) {
        wk_tensor *c = wk_keep(wk_to_dtype(m->params[i].tensor, WK_DTYPE_F64));
        wk_tensor_free(m->params[i].tensor);
        m->params[i].tensor = wk_requires_grad_(c, true);
    }
    for (int i = 0; i < m->nbuffers; i++) {
        if (!wk_dtype_is_float(m->buffers[i].tensor->dtype)) continue;
        wk_tensor *c = wk_keep(wk_to_dtype(m->buffers[i].tensor, WK_DTYPE_F64));
        wk_tensor_free(m->buffers[i].tensor);
        m->buffers[i].tensor = c;
    }
    for (int i = 0; i < m->nchildren; i++) module_to_f64(m->children[i].module);
    wk_no_grad_end();
}

/* Load, forward in training mode and compare a built-in model with its fixture: in
 * float32 to RTOL, then (a second instance from make) in float64 to RTOL_F64. */
static void check_builtin(wk_module *(*make)(void), const char *model)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(BUILTIN, &st), 0, "%s", wk_last_error());
    for (int pass = 0; pass < 2; pass++) {
        wk_module *m = make();
        cr_assert_not_null(m, "%s: %s", model, wk_last_error());
        int nbuf = count_buffers(m);
        load_params(m, &st, model, nbuf);
        as_f64 = pass == 0; /* float64 first: a wrong formula fails there, clearly */
        rtol = as_f64 ? RTOL_F64 : f32_tolerance(&st, model);
        if (as_f64) module_to_f64(m);
        wk_module_train(m, true);
        check_model(m, &st, model, plain_forward);
        cr_assert_eq(check_buffers(m, &st, model), nbuf);
        as_f64 = false;
        rtol = RTOL;
        wk_module_free(m);
    }
    wk_safetensors_free(&st);
}

/* nanoGPT (model.py) with its names, tied head and biases: 2 layers, 2 heads. */
static wk_module *make_gpt(void)
{
    return wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 11, .block_size = 8, .n_layer = 2,
                                            .n_head = 2, .n_embd = 16},
                             NULL);
}

Test(models_torch, gpt)
{
    wk_module *m = make_gpt();
    cr_assert_eq(wk_module_named_parameters(m, false, NULL, 0), 2 + 2 * 12 + 2, "%s",
                 wk_last_error());
    wk_module_free(m);
    check_builtin(make_gpt, "nanogpt");
}

static wk_module *make_gpt_no_bias(void)
{
    return wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 7, .block_size = 6, .n_layer = 1,
                                            .n_head = 2, .n_embd = 8, .no_bias = true},
                             NULL);
}

Test(models_torch, gpt_no_bias)
{
    wk_module *m = make_gpt_no_bias();
    cr_assert_eq(wk_module_named_parameters(m, false, NULL, 0), 2 + 6 + 1);
    wk_module_free(m);
    check_builtin(make_gpt_no_bias, "nanogpt_nobias");
}

/* The model's LOSS mode with nanoGPT's ignore_index = -1 targets. */
Test(models_torch, gpt_model_loss_ignores_minus_one)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(BUILTIN, &st), 0, "%s", wk_last_error());
    wk_model *g = wk_gpt_new(&(wk_gpt_opts){.vocab_size = 11, .block_size = 8, .n_layer = 2,
                                            .n_head = 2, .n_embd = 16},
                             NULL);
    cr_assert_not_null(g, "%s", wk_last_error());
    load_params(g->module, &st, "nanogpt", 0);
    wk_batch b = {0};
    wk_batch_set(&b, "inputs", fixture(&st, "nanogpt", "x"));
    wk_batch_set(&b, "targets", fixture(&st, "nanogpt", "y_ignore"));
    wk_model_output out;
    cr_assert_eq(wk_model_forward(g, &b, WK_MODE_LOSS, &out), 0, "%s", wk_last_error());
    expect_close(wk_model_output_get(&out, "loss"), fixture(&st, "nanogpt", "loss_ignore"),
                 "loss_ignore");
    wk_model_free(g);
    wk_safetensors_free(&st);
}

static wk_module *make_resnet(void)
{
    return wk_resnet_small_new(&(wk_resnet_opts){.in_channels = 2, .num_classes = 3, .width = 4,
                                                 .stages = 2, .blocks = 2},
                               NULL);
}

/* torchvision's BasicBlock names; batch norm in training mode (running statistics
 * compared). */
Test(models_torch, resnet)
{
    wk_module *m = make_resnet();
    cr_assert_not_null(m, "%s", wk_last_error());
    cr_assert_eq(count_buffers(m), 3 * 10, "10 batch norms");
    wk_module_free(m);
    check_builtin(make_resnet, "resnet");
}

/* The eval-mode logits from the running statistics one training forward left. */
Test(models_torch, resnet_eval_after_training)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(BUILTIN, &st), 0, "%s", wk_last_error());
    wk_module *m = make_resnet();
    cr_assert_not_null(m, "%s", wk_last_error());
    load_params(m, &st, "resnet", count_buffers(m));
    rtol = f32_tolerance(&st, "resnet");
    wk_module_train(m, true);
    check_model(m, &st, "resnet", plain_forward);
    wk_module_train(m, false);
    expect_close(wk_module_forward(m, fixture(&st, "resnet", "x")),
                 fixture(&st, "resnet", "logits_eval"), "logits_eval");
    rtol = RTOL;
    wk_module_free(m);
    wk_safetensors_free(&st);
}

static wk_module *make_fmnist_cnn(void)
{
    return wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.num_classes = 3}, NULL);
}

Test(models_torch, fmnist_cnn)
{
    check_builtin(make_fmnist_cnn, "fmnist_cnn");
}

static wk_module *make_mlp_tanh(void)
{
    return wk_mlp_new(&(wk_mlp_opts){.sizes = (const int64_t[]){6, 7, 5, 3}, .nsizes = 4,
                                     .activation = "tanh"},
                      NULL);
}

Test(models_torch, mlp_tanh)
{
    check_builtin(make_mlp_tanh, "mlp_tanh");
}

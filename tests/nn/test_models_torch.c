/* Whole models against PyTorch (tests/fixtures/models.safetensors, written by
 * tools/gen_model_fixtures.py): an MLP, a CNN (conv, batch norm in training mode,
 * pooling) and a 2-layer causal GPT are rebuilt with wick's modules, loaded with the
 * fixture's weights by name, run forward on the fixture's inputs, and the logits, the
 * mean cross-entropy, every parameter gradient and the batch-norm running statistics
 * are compared with torch's (float32, 1e-4 relative). */
#include <stdlib.h>

#include "test_util.h"

TestSuite(models_torch, .init = tu_setup, .fini = tu_teardown);

#define FIX(name) WK_FIXTURES "/" name
#define RTOL 1e-4
/* Absolute floor: the losses are O(1), so float32 rounding leaves noise of ~1e-9 in
 * gradients that are zero in exact arithmetic (the bias of a conv feeding a batch norm:
 * torch gets 1.5e-9, wick exactly 0). */
#define ATOL 1e-8

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
        cr_assert(rel <= RTOL, "%s[%lld] = %.9g, torch %.9g (relative error %.3g)", what,
                  (long long)i, g, e, rel);
        worst = fmax(worst, rel);
    }
    if (getenv("WK_TEST_VERBOSE")) fprintf(stderr, "%-28s worst relative error %.3g\n", what, worst);
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
    wk_module *m = wk_sequential_of(
        (wk_module *[]){wk_linear_new(8, 16, true, NULL), wk_relu_new(),
                        wk_linear_new(16, 4, true, NULL)},
        3);
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

/* ---- nanoGPT-style model, built from custom modules ---- */

/* MLP: c_proj(gelu(c_fc(x))) with erf GELU. */
static wk_tensor *gpt_mlp_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *h = wk_module_forward(wk_module_child(m, "c_fc"), x);
    return wk_module_forward(wk_module_child(m, "c_proj"), wk_gelu(h));
}

/* Block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
static wk_tensor *gpt_block_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *a = wk_module_forward(wk_module_child(m, "attn"),
                                     wk_module_forward(wk_module_child(m, "ln_1"), x));
    x = wk_add(x, a);
    wk_tensor *f = wk_module_forward(wk_module_child(m, "mlp"),
                                     wk_module_forward(wk_module_child(m, "ln_2"), x));
    return wk_add(x, f);
}

/* GPT on token ids (B, T): wte(idx) + wpe(0..T-1), blocks, ln_f, lm_head. */
static wk_tensor *gpt_forward(wk_module *m, wk_tensor *idx)
{
    if (!idx) return NULL;
    int64_t t = idx->shape[idx->ndim - 1];
    wk_tensor *pos = wk_arange(0, (double)t, 1, WK_DTYPE_I64);
    wk_tensor *x = wk_add(wk_module_forward(wk_module_child(m, "wte"), idx),
                          wk_module_forward(wk_module_child(m, "wpe"), pos));
    wk_module *h = wk_module_child(m, "h");
    for (int i = 0; i < wk_module_list_len(h); i++)
        x = wk_module_forward(wk_module_list_get(h, i), x);
    x = wk_module_forward(wk_module_child(m, "ln_f"), x);
    return wk_module_forward(wk_module_child(m, "lm_head"), x);
}

static wk_module *gpt_new(int64_t vocab, int64_t block, int64_t e, int64_t heads, int layers)
{
    wk_module *m = wk_module_new("GPT", gpt_forward, 0);
    wk_module_add_child(m, "wte", wk_embedding_new(vocab, e, WK_NO_PADDING, NULL));
    wk_module_add_child(m, "wpe", wk_embedding_new(block, e, WK_NO_PADDING, NULL));
    wk_module *h = wk_module_add_child(m, "h", wk_module_list_new());
    for (int i = 0; i < layers; i++) {
        wk_module *b = wk_module_new("Block", gpt_block_forward, 0);
        wk_module_add_child(b, "ln_1", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
        wk_module_add_child(b, "attn", wk_causal_self_attention_new(e, heads, true, 0.0, NULL));
        wk_module_add_child(b, "ln_2", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
        wk_module *mlp = wk_module_add_child(b, "mlp", wk_module_new("MLP", gpt_mlp_forward, 0));
        wk_module_add_child(mlp, "c_fc", wk_linear_new(e, 4 * e, true, NULL));
        wk_module_add_child(mlp, "c_proj", wk_linear_new(4 * e, e, true, NULL));
        wk_module_list_append(h, b);
    }
    wk_module_add_child(m, "ln_f", wk_layer_norm_new(WK_SHAPE(e), 1e-5, true));
    wk_module_add_child(m, "lm_head", wk_linear_new(e, vocab, true, NULL));
    return m;
}

Test(models_torch, gpt)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIX("models.safetensors"), &st), 0, "%s", wk_last_error());
    wk_module *m = gpt_new(11, 8, 16, 2, 2);
    cr_assert_eq(wk_module_named_parameters(m, false, NULL, 0), 2 + 2 * 12 + 4, "%s",
                 wk_last_error());
    load_params(m, &st, "gpt", 0);
    wk_module_train(m, true);
    check_model(m, &st, "gpt", plain_forward);
    wk_module_free(m);
    wk_safetensors_free(&st);
}

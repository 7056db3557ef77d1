/* The built-in models of nn/models.h: parameter counts and names (torch's, in torch's
 * order), every bad option reported by name, whole-model gradient checks in float64 on
 * tiny instances, output shapes, the GPT's model modes and the documented inits. The
 * values against PyTorch are in test_models_torch.c. */
#include "test_util.h"

TestSuite(models, .init = tu_setup, .fini = tu_teardown);

static const int64_t mlp_sizes[] = {784, 500, 10};

static wk_gpt_opts bench_gpt(void)
{
    return (wk_gpt_opts){.vocab_size = 256, .block_size = 128, .n_layer = 4, .n_head = 4,
                         .n_embd = 128};
}

/* ---- parameter counts (BENCHMARKS.md) ---- */

Test(models, parameter_counts)
{
    wk_module *mlp = wk_mlp_new(&(wk_mlp_opts){.sizes = mlp_sizes, .nsizes = 3}, NULL);
    cr_assert_not_null(mlp, "%s", wk_last_error());
    cr_assert_eq(wk_module_num_parameters(mlp), 397510);
    /* BENCHMARKS.md's table says 5,258, which is the count of the same layers without
     * padding (16*5*5 = 400 features); its architecture (pad 1, flatten 784), ggml's
     * mnist-cnn and the peer script's MnistCNN have 80 + 1168 + 7850 = 9,098. */
    wk_module *cnn = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){0}, NULL);
    cr_assert_not_null(cnn, "%s", wk_last_error());
    cr_assert_eq(wk_module_num_parameters(cnn), 9098);
    wk_gpt_opts go = bench_gpt();
    wk_model *gpt = wk_gpt_new(&go, NULL);
    cr_assert_not_null(gpt, "%s", wk_last_error());
    cr_assert_eq(wk_module_num_parameters(gpt->module), 842496);
    go.no_bias = true; /* 4 layers * (2 LN + 4 Linear biases) + ln_f bias */
    wk_module *nb = wk_gpt_module_new(&go, NULL);
    cr_assert_eq(wk_module_num_parameters(nb),
                 842496 - 4 * (2 * 128 + 3 * 128 + 128 + 4 * 128 + 128) - 128);
    /* torch: sum(p.numel()) of the generator's SmallResNet(3, 10) */
    wk_module *res = wk_resnet_small_new(&(wk_resnet_opts){.in_channels = 3, .num_classes = 10},
                                         NULL);
    cr_assert_not_null(res, "%s", wk_last_error());
    cr_assert_eq(wk_module_num_parameters(res), 78042);
    wk_module_free(mlp);
    wk_module_free(cnn);
    wk_model_free(gpt);
    wk_module_free(nb);
    wk_module_free(res);
}

/* ---- names, in torch's order ---- */

static void expect_names(const wk_module *m, bool buffers, const char *const *want, int n)
{
    cr_assert_not_null(m, "%s", wk_last_error());
    wk_named_param ps[64];
    int got = wk_module_named_parameters(m, buffers, ps, 64);
    cr_assert_eq(got, n, "%d names, expected %d", got, n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(ps[i].name, want[i], "name %d", i);
}
#define EXPECT_NAMES(m, buffers, ...)                                                     \
    do {                                                                                  \
        const char *const w_[] = {__VA_ARGS__};                                           \
        expect_names(m, buffers, w_, (int)(sizeof w_ / sizeof w_[0]));                    \
    } while (0)

Test(models, names_mlp_and_cnn)
{
    const int64_t s[] = {4, 5, 6, 2};
    wk_module *m = wk_mlp_new(&(wk_mlp_opts){.sizes = s, .nsizes = 4, .activation = "gelu",
                                             .dropout = 0.1},
                              NULL);
    /* Sequential(Linear, GELU, Dropout, Linear, GELU, Dropout, Linear) */
    EXPECT_NAMES(m, false, "0.weight", "0.bias", "3.weight", "3.bias", "6.weight", "6.bias");
    cr_assert_eq(m->nchildren, 7);
    const char *types[] = {"Linear", "GELU", "Dropout", "Linear", "GELU", "Dropout", "Linear"};
    for (int i = 0; i < 7; i++) cr_assert_str_eq(m->children[i].module->type, types[i]);
    wk_module_free(m);
    m = wk_mlp_new(&(wk_mlp_opts){.sizes = s, .nsizes = 2}, NULL);
    EXPECT_NAMES(m, false, "0.weight", "0.bias");
    cr_assert_eq(m->nchildren, 1, "one Linear, no activation after the last");
    wk_module_free(m);
    m = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.in_channels = 3, .num_classes = 4}, NULL);
    EXPECT_NAMES(m, false, "0.weight", "0.bias", "3.weight", "3.bias", "7.weight", "7.bias");
    expect_shape(wk_module_find(m, "0.weight"), 8, 3, 3, 3);
    expect_shape(wk_module_find(m, "7.weight"), 4, 784);
    wk_module_free(m);
}

Test(models, names_resnet)
{
    wk_module *m = wk_resnet_small_new(
        &(wk_resnet_opts){.in_channels = 1, .num_classes = 2, .width = 2, .stages = 2}, NULL);
#define BN(p) p ".weight", p ".bias", p ".running_mean", p ".running_var", p ".num_batches_tracked"
    /* torch's state_dict() order of the generator's SmallResNet(1, 2, 2, 2, 1) */
    EXPECT_NAMES(m, true, "conv1.weight", BN("bn1"), "layer1.0.conv1.weight", BN("layer1.0.bn1"),
                 "layer1.0.conv2.weight", BN("layer1.0.bn2"), "layer2.0.conv1.weight",
                 BN("layer2.0.bn1"), "layer2.0.conv2.weight", BN("layer2.0.bn2"),
                 "layer2.0.downsample.0.weight", BN("layer2.0.downsample.1"), "fc.weight",
                 "fc.bias");
#undef BN
    expect_shape(wk_module_find(m, "layer2.0.conv1.weight"), 4, 2, 3, 3);
    expect_shape(wk_module_find(m, "layer2.0.downsample.0.weight"), 4, 2, 1, 1);
    expect_shape(wk_module_find(m, "fc.weight"), 2, 4);
    wk_module_free(m);
}

Test(models, names_gpt)
{
    wk_module *m = wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 5, .block_size = 4,
                                                    .n_layer = 1, .n_head = 2, .n_embd = 4},
                                     NULL);
#define H "transformer.h.0."
    EXPECT_NAMES(m, true, "transformer.wte.weight", "transformer.wpe.weight", H "ln_1.weight",
                 H "ln_1.bias", H "attn.c_attn.weight", H "attn.c_attn.bias",
                 H "attn.c_proj.weight", H "attn.c_proj.bias", H "ln_2.weight", H "ln_2.bias",
                 H "mlp.c_fc.weight", H "mlp.c_fc.bias", H "mlp.c_proj.weight",
                 H "mlp.c_proj.bias", "transformer.ln_f.weight", "transformer.ln_f.bias");
    wk_module_free(m);
    m = wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 5, .block_size = 4, .n_layer = 1,
                                         .n_head = 2, .n_embd = 4, .no_bias = true},
                          NULL);
    EXPECT_NAMES(m, true, "transformer.wte.weight", "transformer.wpe.weight", H "ln_1.weight",
                 H "attn.c_attn.weight", H "attn.c_proj.weight", H "ln_2.weight",
                 H "mlp.c_fc.weight", H "mlp.c_proj.weight", "transformer.ln_f.weight");
#undef H
    expect_shape(wk_module_find(m, "transformer.wte.weight"), 5, 4);
    expect_shape(wk_module_find(m, "transformer.wpe.weight"), 4, 4);
    wk_module_free(m);
}

/* ---- bad options ---- */

typedef enum { K_MLP, K_CNN, K_RESNET, K_GPT, K_GPT_MODEL } kind;

typedef struct {
    kind k;
    wk_mlp_opts mlp;
    wk_fmnist_cnn_opts cnn;
    wk_resnet_opts res;
    wk_gpt_opts gpt;
    const char *needle;
} bad_case;

static const int64_t two[] = {3, 2}, zero_mid[] = {3, 0, 2};
/* vocab, block, layers, heads, embd */
#define GPT(v, b, l, h, e) .vocab_size = v, .block_size = b, .n_layer = l, .n_head = h, .n_embd = e
#define GPT_OK GPT(8, 4, 1, 2, 4)
#define RES_OK .in_channels = 1, .num_classes = 2

static const bad_case bad[] = {
    {K_MLP, .mlp = {.sizes = NULL, .nsizes = 2}, .needle = "MLP: needs sizes with nsizes >= 2"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 1}, .needle = "nsizes = 1"},
    {K_MLP, .mlp = {.sizes = zero_mid, .nsizes = 3}, .needle = "MLP: sizes[1] = 0 must be >= 1"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 2, .activation = "elu"},
     .needle = "MLP: activation = \"elu\" is not one of"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 2, .dropout = 1.5},
     .needle = "MLP: dropout = 1.5 must be in [0, 1]"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 2, .dropout = -0.1}, .needle = "dropout = -0.1"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 2, .init_std = -1},
     .needle = "MLP: init_std = -1 must be a finite number >= 0"},
    {K_MLP, .mlp = {.sizes = two, .nsizes = 2, .init_std = NAN}, .needle = "init_std = nan"},
    {K_CNN, .cnn = {.in_channels = -1}, .needle = "FashionMNISTCNN: in_channels = -1 must be >= 1"},
    {K_CNN, .cnn = {.num_classes = -3}, .needle = "FashionMNISTCNN: num_classes = -3 must be >= 1"},
    {K_CNN, .cnn = {.init_std = INFINITY}, .needle = "FashionMNISTCNN: init_std = inf"},
    {K_RESNET, .res = {.num_classes = 2}, .needle = "ResNet: in_channels = 0 must be >= 1"},
    {K_RESNET, .res = {.in_channels = 1}, .needle = "ResNet: num_classes = 0 must be >= 1"},
    {K_RESNET, .res = {RES_OK, .width = -2},
     .needle = "ResNet: width = -2 must be in [1, 4096] (0: 16)"},
    {K_RESNET, .res = {RES_OK, .width = 5000}, .needle = "width = 5000 must be in [1, 4096]"},
    {K_RESNET, .res = {RES_OK, .stages = 9}, .needle = "ResNet: stages = 9 must be in [1, 8]"},
    {K_RESNET, .res = {RES_OK, .stages = -1}, .needle = "stages = -1"},
    {K_RESNET, .res = {RES_OK, .blocks = 65}, .needle = "ResNet: blocks = 65 must be in [1, 64]"},
    {K_RESNET, .res = {RES_OK, .width = 4096, .stages = 8},
     .needle = "4096 * 2^7 = 524288 channels; at most 65536"},
    {K_GPT, .gpt = {GPT(0, 4, 1, 2, 4)}, .needle = "GPT: vocab_size = 0 must be >= 1"},
    {K_GPT, .gpt = {GPT(8, -4, 1, 2, 4)}, .needle = "GPT: block_size = -4 must be >= 1"},
    {K_GPT, .gpt = {GPT(8, 4, 0, 2, 4)}, .needle = "GPT: n_layer = 0 must be >= 1"},
    {K_GPT, .gpt = {GPT(8, 4, 1, 0, 4)}, .needle = "GPT: n_head = 0 must be >= 1"},
    {K_GPT, .gpt = {GPT(8, 4, 1, 2, 0)}, .needle = "GPT: n_embd = 0 must be >= 1"},
    {K_GPT, .gpt = {GPT(8, 4, 1, 4, 130)},
     .needle = "GPT: n_embd = 130 must be divisible by n_head = 4"},
    {K_GPT, .gpt = {GPT(8, 4, 1, 1, INT64_MAX / 2)},
     .needle = "GPT: n_embd = 4611686018427387903 must be <= 2305843009213693951"},
    {K_GPT, .gpt = {GPT(8, 4, (int64_t)1 << 40, 2, 4)},
     .needle = "GPT: n_layer = 1099511627776 must be <= 2147483647"},
    {K_GPT, .gpt = {GPT(8, 4, 1, 2, 4), .dropout = 2},
     .needle = "GPT: dropout = 2 must be in [0, 1]"},
    {K_GPT, .gpt = {GPT_OK, .init_std = -0.02}, .needle = "GPT: init_std = -0.02"},
    {K_GPT_MODEL, .gpt = {GPT(8, 4, 1, 2, 5)}, .needle = "n_embd = 5 must be divisible"},
};

Test(models, bad_options_are_named)
{
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const bad_case *c = &bad[i];
        wk_clear_error();
        void *r = NULL;
        switch (c->k) {
        case K_MLP: r = wk_mlp_new(&c->mlp, NULL); break;
        case K_CNN: r = wk_fmnist_cnn_new(&c->cnn, NULL); break;
        case K_RESNET: r = wk_resnet_small_new(&c->res, NULL); break;
        case K_GPT: r = wk_gpt_module_new(&c->gpt, NULL); break;
        case K_GPT_MODEL: r = wk_gpt_new(&c->gpt, NULL); break;
        }
        cr_assert_null(r, "case %zu (%s) succeeded", i, c->needle);
        cr_assert(strstr(wk_last_error(), c->needle), "case %zu: \"%s\" does not mention \"%s\"",
                  i, wk_last_error(), c->needle);
    }
    expect_error(wk_mlp_new(NULL, NULL), "MLP: options are NULL");
    expect_error(wk_fmnist_cnn_new(NULL, NULL), "FashionMNISTCNN: options are NULL");
    expect_error(wk_resnet_small_new(NULL, NULL), "ResNet: options are NULL");
    expect_error(wk_gpt_module_new(NULL, NULL), "GPT: options are NULL");
    expect_error(wk_gpt_new(NULL, NULL), "GPT: options are NULL");
}

/* ---- defaults, inits, determinism ---- */

/* Mean and standard deviation of the elements of t. */
static void moments(const wk_tensor *t, double *mean, double *std)
{
    int64_t n = wk_numel(t);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tu_at(t, i);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)n;
    *std = sqrt(s2 / (double)n - *mean * *mean);
}

Test(models, init_std_and_defaults)
{
    wk_generator g = wk_generator_make(5);
    wk_module *m = wk_mlp_new(&(wk_mlp_opts){.sizes = mlp_sizes, .nsizes = 3, .init_std = 0.01},
                              &g);
    double mean, std;
    moments(wk_module_find(m, "0.weight"), &mean, &std); /* 392,000 draws */
    cr_assert(fabs(mean) < 1e-4 && fabs(std - 0.01) < 1e-4, "mean %g std %g", mean, std);
    moments(wk_module_find(m, "0.bias"), &mean, &std);
    cr_assert(fabs(std - 0.01) < 2e-3, "bias std %g: biases are N(0, init_std) too", std);
    wk_module_free(m);
    /* torch's default: U(-1/sqrt(784), 1/sqrt(784)) */
    m = wk_mlp_new(&(wk_mlp_opts){.sizes = mlp_sizes, .nsizes = 3}, &g);
    moments(wk_module_find(m, "0.weight"), &mean, &std);
    cr_assert(fabs(std - 1 / sqrt(3.0 * 784)) < 1e-4, "default std %g", std);
    wk_module_free(m);

    wk_gpt_opts go = bench_gpt();
    m = wk_gpt_module_new(&go, &g);
    moments(wk_module_find(m, "transformer.wte.weight"), &mean, &std);
    cr_assert(fabs(std - 0.02) < 5e-4, "wte std %g", std);
    moments(wk_module_find(m, "transformer.h.1.attn.c_attn.weight"), &mean, &std);
    cr_assert(fabs(std - 0.02) < 5e-4, "c_attn std %g", std);
    const char *proj[] = {"transformer.h.0.attn.c_proj.weight",
                          "transformer.h.3.mlp.c_proj.weight"};
    for (int i = 0; i < 2; i++) {
        moments(wk_module_find(m, proj[i]), &mean, &std);
        cr_assert(fabs(std - 0.02 / sqrt(8.0)) < 3e-4, "%s std %g", proj[i], std);
    }
    const char *zero[] = {"transformer.h.0.attn.c_attn.bias", "transformer.h.2.mlp.c_fc.bias",
                          "transformer.ln_f.bias"};
    for (int i = 0; i < 3; i++) {
        moments(wk_module_find(m, zero[i]), &mean, &std);
        cr_assert(mean == 0 && std == 0, "%s is zero", zero[i]);
    }
    moments(wk_module_find(m, "transformer.h.0.ln_1.weight"), &mean, &std);
    cr_assert(mean == 1 && std == 0);
    wk_module_free(m);
    go.init_std = 0.1;
    m = wk_gpt_module_new(&go, &g);
    moments(wk_module_find(m, "transformer.wpe.weight"), &mean, &std);
    cr_assert(fabs(std - 0.1) < 3e-3, "init_std 0.1: wpe std %g", std);
    wk_module_free(m);

    /* ResNet defaults: width 16, 3 stages of 1 block; kaiming_normal(fan_out) convs */
    m = wk_resnet_small_new(&(wk_resnet_opts){.in_channels = 3, .num_classes = 10}, &g);
    expect_shape(wk_module_find(m, "layer3.0.conv2.weight"), 64, 64, 3, 3);
    cr_assert_null(wk_module_find(m, "layer4.0.conv1.weight"));
    cr_assert_null(wk_module_find(m, "layer1.1.conv1.weight"));
    cr_assert_null(wk_module_find(m, "layer1.0.downsample.0.weight"), "stage 1: identity");
    moments(wk_module_find(m, "layer3.0.conv2.weight"), &mean, &std);
    cr_assert(fabs(std - sqrt(2.0 / (64 * 9))) < 2e-3, "conv std %g", std);
    wk_module_free(m);
}

static bool same_parameters(const wk_module *a, const wk_module *b)
{
    wk_named_param pa[64], pb[64];
    int n = wk_module_named_parameters(a, false, pa, 64);
    if (n != wk_module_named_parameters(b, false, pb, 64)) return false;
    for (int i = 0; i < n; i++)
        if (memcmp(wk_data(pa[i].tensor), wk_data(pb[i].tensor),
                   (size_t)wk_numel(pa[i].tensor) * 4))
            return false;
    return true;
}

Test(models, same_seed_same_model)
{
    wk_module *m[2][4];
    for (int r = 0; r < 2; r++) {
        wk_generator g = wk_generator_make(42);
        m[r][0] = wk_mlp_new(&(wk_mlp_opts){.sizes = mlp_sizes, .nsizes = 3}, &g);
        m[r][1] = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.init_std = 0.01}, &g);
        m[r][2] = wk_resnet_small_new(&(wk_resnet_opts){.in_channels = 3, .num_classes = 10}, &g);
        m[r][3] = wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 9, .block_size = 4,
                                                   .n_layer = 2, .n_head = 2, .n_embd = 8},
                                    &g);
    }
    for (int i = 0; i < 4; i++) {
        cr_assert(same_parameters(m[0][i], m[1][i]), "model %d differs for the same seed", i);
        wk_module_free(m[0][i]);
        wk_module_free(m[1][i]);
    }
}

/* ---- shapes, modes ---- */

Test(models, forward_shapes)
{
    wk_generator g = wk_generator_make(1);
    wk_module *res = wk_resnet_small_new(&(wk_resnet_opts){.in_channels = 3, .num_classes = 10},
                                         &g);
    wk_tensor *x = wk_randn(WK_SHAPE(2, 3, 32, 32), WK_DTYPE_F32, &g);
    expect_shape(wk_module_forward(res, x), 2, 10);
    wk_module_train(res, false);
    expect_shape(wk_module_forward(res, wk_randn(WK_SHAPE(1, 3, 9, 7), WK_DTYPE_F32, &g)), 1, 10);
    expect_error(wk_module_forward(res, wk_randn(WK_SHAPE(2, 1, 8, 8), WK_DTYPE_F32, &g)),
                 "conv2d");
    wk_module_free(res);
    wk_module *cnn = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.in_channels = 2, .num_classes = 5},
                                       &g);
    expect_shape(wk_module_forward(cnn, wk_rand(WK_SHAPE(3, 2, 28, 28), WK_DTYPE_F32, &g)), 3, 5);
    wk_module_free(cnn);
    const int64_t s[] = {6, 4, 3};
    wk_module *mlp = wk_mlp_new(&(wk_mlp_opts){.sizes = s, .nsizes = 3, .activation = "silu"}, &g);
    expect_shape(wk_module_forward(mlp, wk_randn(WK_SHAPE(2, 5, 6), WK_DTYPE_F32, &g)), 2, 5, 3);
    wk_module_free(mlp);
}

Test(models, mlp_dropout_only_in_training)
{
    wk_generator g = wk_generator_make(2);
    const int64_t s[] = {16, 64, 4};
    wk_module *m = wk_mlp_new(&(wk_mlp_opts){.sizes = s, .nsizes = 3, .dropout = 0.5}, &g);
    wk_tensor *x = wk_randn(WK_SHAPE(8, 16), WK_DTYPE_F32, &g);
    wk_tensor *a = wk_module_forward(m, x), *b = wk_module_forward(m, x);
    cr_assert(memcmp(wk_data(a), wk_data(b), 32 * 4), "training: new masks each forward");
    wk_module_train(m, false);
    a = wk_module_forward(m, x);
    b = wk_module_forward(m, x);
    cr_assert(!memcmp(wk_data(a), wk_data(b), 32 * 4), "evaluation: no dropout");
    wk_module_free(m);
}

Test(models, gpt_model_modes)
{
    wk_generator g = wk_generator_make(3);
    wk_model *gpt = wk_gpt_new(&(wk_gpt_opts){.vocab_size = 9, .block_size = 6, .n_layer = 2,
                                              .n_head = 2, .n_embd = 8},
                               &g);
    cr_assert_not_null(gpt, "%s", wk_last_error());
    wk_tensor *x = wk_randint(0, 9, WK_SHAPE(2, 5), &g), *y = wk_randint(0, 9, WK_SHAPE(2, 5), &g);
    wk_batch b = {0};
    wk_batch_set(&b, "inputs", x);
    wk_model_output out;
    cr_assert_eq(wk_model_forward(gpt, &b, WK_MODE_TENSOR, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 1);
    wk_tensor *logits = wk_model_output_get(&out, "logits");
    expect_shape(logits, 2, 5, 9);
    cr_assert_eq(wk_model_forward(gpt, &b, WK_MODE_PREDICT, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 1, "no targets: logits only");
    cr_assert_eq(wk_model_forward(gpt, &b, WK_MODE_LOSS, &out), -1, "LOSS needs targets");
    cr_assert(strstr(wk_last_error(), "targets"), "%s", wk_last_error());

    wk_batch_set(&b, "targets", y);
    cr_assert_eq(wk_model_forward(gpt, &b, WK_MODE_LOSS, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 1);
    wk_tensor *loss = wk_model_output_get(&out, "loss");
    wk_tensor *want = wk_cross_entropy(wk_reshape(logits, WK_SHAPE(10, 9)),
                                       wk_reshape(y, WK_SHAPE(10)), NULL);
    cr_assert_float_eq(wk_item(loss), wk_item(want), 1e-6);
    /* random init: the loss is about log(vocab) */
    cr_assert(fabs(wk_item(loss) - log(9.0)) < 0.2, "loss %g", wk_item(loss));
    cr_assert_eq(wk_backward(wk_model_total_loss(&out)), 0, "%s", wk_last_error());
    wk_tensor *wte = wk_module_find(gpt->module, "transformer.wte.weight");
    cr_assert_not_null(wte->grad, "the tied weight gets the head's gradient");
    cr_assert_eq(wk_model_forward(gpt, &b, WK_MODE_PREDICT, &out), 0, "%s", wk_last_error());
    cr_assert_eq(out.count, 2);
    cr_assert_float_eq(wk_item(wk_model_output_get(&out, "loss")), wk_item(want), 1e-6);

    wk_batch bad = {0};
    wk_batch_set(&bad, "inputs", wk_randint(0, 9, WK_SHAPE(1, 7), &g));
    cr_assert_eq(wk_model_forward(gpt, &bad, WK_MODE_TENSOR, &out), -1);
    cr_assert(strstr(wk_last_error(), "T = 7 must be in [1, block_size = 6]"), "%s",
              wk_last_error());
    wk_batch_set(&bad, "inputs", wk_randn(WK_SHAPE(1, 4), WK_DTYPE_F32, &g));
    cr_assert_eq(wk_model_forward(gpt, &bad, WK_MODE_TENSOR, &out), -1);
    cr_assert(strstr(wk_last_error(), "GPT: expected token ids of shape (B, T)"), "%s",
              wk_last_error());
    wk_batch_set(&bad, "inputs", x);
    wk_batch_set(&bad, "targets", wk_randint(0, 9, WK_SHAPE(2, 4), &g));
    cr_assert_eq(wk_model_forward(gpt, &bad, WK_MODE_LOSS, &out), -1);
    cr_assert(strstr(wk_last_error(), "GPT: targets of shape"), "%s", wk_last_error());
    wk_batch_set(&bad, "inputs", wk_full(WK_SHAPE(2, 5), 9, WK_DTYPE_I64));
    cr_assert_eq(wk_model_forward(gpt, &bad, WK_MODE_TENSOR, &out), -1, "token id 9 of 9");
    wk_model_free(gpt);
}

/* ---- whole-model gradient checks (float64, tiny instances) ---- */

/* Parameters and float buffers (batch-norm statistics) to float64, as new leaves. */
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

typedef struct {
    wk_module *m;
    wk_tensor *x;
} whole_case;

/* The module reads its own parameters: the inputs are what gradcheck perturbs. */
static wk_tensor *whole_fn(wk_tensor *const *in, int n, void *user)
{
    (void)in;
    (void)n;
    const whole_case *c = user;
    return wk_module_forward(c->m, c->x);
}

/* wk_gradcheck over x (when it is float) and every parameter of m, in groups of at most
 * 16 inputs (gradcheck's limit). */
static void gradcheck_model(wk_module *m, wk_tensor *x, const char *what)
{
    module_to_f64(m);
    whole_case c = {m, x};
    wk_named_param ps[64];
    int n = wk_module_named_parameters(m, false, ps, 64);
    cr_assert(n <= 64);
    wk_tensor *all[65];
    int k = 0;
    if (wk_dtype_is_float(x->dtype)) all[k++] = x;
    for (int i = 0; i < n; i++) all[k++] = ps[i].tensor;
    for (int i = 0; i < k; i += 16) {
        int len = k - i < 16 ? k - i : 16;
        cr_assert_eq(wk_gradcheck(whole_fn, &c, all + i, len, 1e-6, 1e-7, 1e-5), 0,
                     "%s, inputs %d..%d: %s", what, i, i + len - 1, wk_last_error());
    }
}

Test(models, gradcheck_mlp)
{
    wk_generator g = wk_generator_make(10);
    const int64_t s[] = {3, 4, 4, 2};
    const char *acts[] = {"relu", "gelu", "tanh", "sigmoid", "silu"};
    for (int i = 0; i < 5; i++) {
        wk_module *m = wk_mlp_new(&(wk_mlp_opts){.sizes = s, .nsizes = 4, .activation = acts[i],
                                                 .init_std = 0.5},
                                  &g);
        gradcheck_model(m, wk_randn(WK_SHAPE(3, 3), WK_DTYPE_F64, &g), acts[i]);
        wk_module_free(m);
    }
}

/* sum(w * m(x)) in float64, no graph. */
static double weighted_output(wk_module *m, wk_tensor *x, const wk_tensor *w)
{
    wk_frame_begin();
    wk_tensor *y = wk_module_forward(m, x);
    cr_assert_not_null(y, "%s", wk_last_error());
    double s = wk_item(wk_sum(wk_mul(y, (wk_tensor *)w), WK_ALL_DIMS, false));
    wk_frame_end();
    return s;
}

/* kann's whole-graph check along one random direction v of every parameter and x at
 * once: backward's directional derivative grad . v against central differences of
 * sum(w * m(x)) at theta +- eps v. Two forwards however many parameters there are. */
static void directional_check(wk_module *m, wk_tensor *x, const char *what)
{
    const double eps = 1e-6, atol = 1e-7, rtol = 1e-5;
    wk_named_param ps[64];
    int n = wk_module_named_parameters(m, false, ps, 64);
    wk_tensor *ts[65];
    for (int i = 0; i < n; i++) ts[i] = ps[i].tensor;
    ts[n++] = wk_requires_grad_(x, true);
    wk_generator g = wk_generator_make(77);
    wk_tensor *v[65], *orig[65];
    for (int i = 0; i < n; i++) {
        v[i] = wk_randn(ts[i]->shape, ts[i]->ndim, WK_DTYPE_F64, &g);
        orig[i] = wk_clone(ts[i]);
    }
    wk_module_zero_grad(m);
    wk_frame_begin();
    wk_tensor *y = wk_module_forward(m, x);
    cr_assert_not_null(y, "%s: %s", what, wk_last_error());
    wk_tensor *w = wk_keep(wk_randn(y->shape, y->ndim, WK_DTYPE_F64, &g));
    cr_assert_eq(wk_backward(wk_sum(wk_mul(y, w), WK_ALL_DIMS, false)), 0, "%s", wk_last_error());
    wk_frame_end();
    double ana = 0;
    for (int i = 0; i < n; i++)
        ana += wk_item(wk_sum(wk_mul(ts[i]->grad, v[i]), WK_ALL_DIMS, false));
    double l[2];
    wk_no_grad_begin();
    for (int s = 0; s < 2; s++) {
        for (int i = 0; i < n; i++) {
            double *p = wk_data(ts[i]);
            const double *o = wk_data(orig[i]), *d = wk_data(v[i]);
            for (int64_t j = 0; j < wk_numel(ts[i]); j++) p[j] = o[j] + (s ? -eps : eps) * d[j];
        }
        l[s] = weighted_output(m, x, w);
    }
    for (int i = 0; i < n; i++)
        memcpy(wk_data(ts[i]), wk_data(orig[i]), (size_t)wk_numel(ts[i]) * sizeof(double));
    wk_no_grad_end();
    double num = (l[0] - l[1]) / (2 * eps);
    cr_assert(fabs(ana - num) <= atol + rtol * fabs(num),
              "%s: directional derivative %.10g by backward, %.10g by finite differences", what,
              ana, num);
    wk_tensor_free(x->grad);
    x->grad = NULL;
    wk_tensor_free(w);
}

/* The CNN's 28x28 input makes element-wise differences over its 2,000+ parameters
 * slow: element-wise on the biases (their gradients pass through every layer above),
 * and along one direction for everything. */
Test(models, gradcheck_fmnist_cnn)
{
    wk_generator g = wk_generator_make(11);
    wk_module *m = wk_fmnist_cnn_new(&(wk_fmnist_cnn_opts){.num_classes = 2}, &g);
    module_to_f64(m);
    wk_tensor *x = wk_rand(WK_SHAPE(2, 1, 28, 28), WK_DTYPE_F64, &g);
    whole_case c = {m, x};
    wk_tensor *biases[] = {wk_module_find(m, "0.bias"), wk_module_find(m, "3.bias"),
                           wk_module_find(m, "7.bias")};
    cr_assert_eq(wk_gradcheck(whole_fn, &c, biases, 3, 1e-6, 1e-7, 1e-5), 0, "%s",
                 wk_last_error());
    directional_check(m, x, "fmnist_cnn");
    wk_module_free(m);
}

Test(models, gradcheck_resnet)
{
    wk_generator g = wk_generator_make(12);
    wk_module *m = wk_resnet_small_new(
        &(wk_resnet_opts){.in_channels = 1, .num_classes = 3, .width = 2, .stages = 2}, &g);
    /* training mode: batch statistics, so the check also covers batch norm's backward */
    gradcheck_model(m, wk_randn(WK_SHAPE(2, 1, 4, 4), WK_DTYPE_F64, &g), "resnet");
    wk_module_free(m);
}

Test(models, gradcheck_gpt)
{
    wk_generator g = wk_generator_make(13);
    for (int nb = 0; nb < 2; nb++) {
        wk_module *m = wk_gpt_module_new(&(wk_gpt_opts){.vocab_size = 5, .block_size = 4,
                                                        .n_layer = 1, .n_head = 2, .n_embd = 4,
                                                        .no_bias = nb, .init_std = 0.5},
                                         &g);
        cr_assert_not_null(m, "%s", wk_last_error());
        gradcheck_model(m, wk_randint(0, 5, WK_SHAPE(2, 3), &g), nb ? "gpt no_bias" : "gpt");
        wk_module_free(m);
    }
}

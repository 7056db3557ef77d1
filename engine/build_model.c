/* Built-in model types: MLP, FashionMNISTCNN, ResNet, GPT (architectures in nn/models.h).
 * An optional key left out, or null, passes 0 to the architecture: its default. */
#include <math.h>

#include "registry-impl.h"
#include "../nn/models.h"

#define MAX_LAYERS 64

static double dropout_of(const wk_cfg *c)
{
    double p;
    if (wk_cfg_number(c, "dropout", 0, &p) == 1 && !(p >= 0 && p <= 1)) {
        wk_cfg_error(c, "dropout", "must be in [0, 1], got %g", p);
        return 0;
    }
    return p;
}

static double init_std_of(const wk_cfg *c)
{
    double s;
    if (wk_cfg_number(c, "init_std", 0, &s) == 1 && !(s >= 0)) {
        wk_cfg_error(c, "init_std", "must be >= 0 (0: the layers' default init), got %g", s);
        return 0;
    }
    return s;
}

static wk_model *classifier_of(wk_module *net) { return net ? wk_classifier_new(net) : NULL; }

wk_model *wki_build_mlp(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t sizes[MAX_LAYERS + 2];
    int nh = 0;
    wk_cfg_require(c, "in_features");
    sizes[0] = wk_cfg_int_min(c, "in_features", 1, 1);
    wk_cfg_int_list(c, "hidden", sizes + 1, MAX_LAYERS, &nh);
    for (int i = 0; i < nh; i++) {
        if (sizes[1 + i] < 1) {
            wk_cfg_error(c, "hidden", "every size must be >= 1, got %lld at index %d",
                         (long long)sizes[1 + i], i);
            break;
        }
    }
    wk_cfg_require(c, "out_features");
    sizes[nh + 1] = wk_cfg_int_min(c, "out_features", 1, 1);
    static const char *const acts[] = {"relu", "gelu", "tanh", "sigmoid", "silu", NULL};
    const char *act;
    wk_cfg_choice(c, "activation", "relu", acts, &act);
    /* one statement per key: the order of reading is the order of the messages */
    double dropout = dropout_of(c);
    double init_std = init_std_of(c);
    wk_mlp_opts o = {.sizes = sizes, .nsizes = nh + 2, .activation = act, .dropout = dropout,
                     .init_std = init_std};
    if (wk_cfg_finish(c) < 0) return NULL;
    return classifier_of(wk_mlp_new(&o, ctx->generator));
}

wk_model *wki_build_fmnist_cnn(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_fmnist_cnn_opts o = {0};
    o.in_channels = wk_cfg_int_min(c, "in_channels", 0, 1);
    o.num_classes = wk_cfg_int_min(c, "num_classes", 0, 1);
    o.init_std = init_std_of(c);
    if (wk_cfg_finish(c) < 0) return NULL;
    return classifier_of(wk_fmnist_cnn_new(&o, ctx->generator));
}

wk_model *wki_build_resnet(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_resnet_opts o = {0};
    o.in_channels = wk_cfg_int_min(c, "in_channels", 3, 1);
    o.num_classes = wk_cfg_int_min(c, "num_classes", 10, 1);
    o.width = wk_cfg_int_min(c, "width", 0, 1);
    o.stages = (int)wk_cfg_int_min(c, "stages", 0, 1);
    o.blocks = (int)wk_cfg_int_min(c, "blocks", 0, 1);
    if (o.stages > 8) wk_cfg_error(c, "stages", "must be <= 8, got %d", o.stages);
    if (o.blocks > 64) wk_cfg_error(c, "blocks", "must be <= 64, got %d", o.blocks);
    if (wk_cfg_finish(c) < 0) return NULL;
    return classifier_of(wk_resnet_small_new(&o, ctx->generator));
}

wk_model *wki_build_gpt(const wk_cfg *c, const wk_build_ctx *ctx)
{
    static const char *const sizes[] = {"vocab_size", "block_size", "n_layer", "n_head",
                                        "n_embd"};
    int64_t v[5];
    for (int i = 0; i < 5; i++) {
        wk_cfg_require(c, sizes[i]);
        v[i] = wk_cfg_int_min(c, sizes[i], 1, 1);
    }
    wk_gpt_opts o = {.vocab_size = v[0], .block_size = v[1], .n_layer = v[2], .n_head = v[3],
                     .n_embd = v[4]};
    o.dropout = dropout_of(c);
    bool bias;
    wk_cfg_bool(c, "bias", true, &bias);
    o.no_bias = !bias;
    o.init_std = init_std_of(c);
    if (o.n_embd % o.n_head)
        wk_cfg_error(c, "n_embd", "must be a multiple of n_head (%lld), got %lld",
                     (long long)o.n_head, (long long)o.n_embd);
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_gpt_new(&o, ctx->generator);
}

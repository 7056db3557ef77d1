/* TEMPORARY: the declarations of nn/models.h (written on another branch) so that the
 * model builders compile before it is merged. Delete this file and models_stub.c (and
 * its line in engine/meson.build) once nn/models.h is in the tree. */
#ifndef WK_ENGINE_MODELS_STUB_H
#define WK_ENGINE_MODELS_STUB_H

#include "../nn/model.h"
#include "../tensor/random.h"

typedef struct {
    const int64_t *sizes;
    int nsizes;
    const char *activation;
    double dropout;
    double init_std;
} wk_mlp_opts; /* sizes: in, hidden..., out */
wk_module *wk_mlp_new(const wk_mlp_opts *o, wk_generator *g);
typedef struct {
    int64_t in_channels;
    int64_t num_classes;
    double init_std;
} wk_fmnist_cnn_opts;
wk_module *wk_fmnist_cnn_new(const wk_fmnist_cnn_opts *o, wk_generator *g);
typedef struct {
    int64_t in_channels, num_classes;
    int64_t width;
    int stages;
    int blocks;
} wk_resnet_opts;
wk_module *wk_resnet_small_new(const wk_resnet_opts *o, wk_generator *g);
typedef struct {
    int64_t vocab_size, block_size, n_layer, n_head, n_embd;
    double dropout;
    bool no_bias;
    double init_std;
} wk_gpt_opts;
wk_model *wk_gpt_new(const wk_gpt_opts *o, wk_generator *g);

#endif

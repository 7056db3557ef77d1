/* The Fashion-MNIST CNN of the benchmarks (ggml's mnist-cnn) as a Sequential. */
#include "activation.h"
#include "container.h"
#include "conv.h"
#include "linear.h"
#include "models-impl.h"
#include "models.h"

/* 28x28 after two 2x2 poolings */
#define CNN_FLAT (16 * 7 * 7)

wk_module *wk_fmnist_cnn_new(const wk_fmnist_cnn_opts *o, wk_generator *g)
{
    if (!o) {
        wk_set_error("FashionMNISTCNN: options are NULL");
        return NULL;
    }
    int64_t in = o->in_channels ? o->in_channels : 1;
    int64_t classes = o->num_classes ? o->num_classes : 10;
    if (in < 1 || classes < 1) {
        wk_set_error("FashionMNISTCNN: %s = %lld must be >= 1 (0: %s)",
                     in < 1 ? "in_channels" : "num_classes",
                     (long long)(in < 1 ? in : classes), in < 1 ? "1" : "10");
        return NULL;
    }
    if (!wki_models_check_std("FashionMNISTCNN", o->init_std)) return NULL;
    const wk_conv2d_opts pad1 = {.padding = {1, 1}};
    const wk_pool2d_opts pool2 = {.kernel = {2, 2}};
    /* Built in torch's order, so draws from g follow torch's order of construction. */
    wk_module *mods[8] = {wk_conv2d_new(in, 8, 3, 3, &pad1, true, g)};
    mods[1] = wk_relu_new();
    mods[2] = wk_max_pool2d_new(&pool2);
    mods[3] = wk_conv2d_new(8, 16, 3, 3, &pad1, true, g);
    mods[4] = wk_relu_new();
    mods[5] = wk_max_pool2d_new(&pool2);
    mods[6] = wk_flatten_new(1, -1);
    mods[7] = wk_linear_new(CNN_FLAT, classes, true, g);
    wk_module *seq = wk_sequential_of(mods, 8);
    if (seq && o->init_std > 0 && wki_models_init_normal(seq, o->init_std, g)) {
        wk_module_free(seq);
        return NULL;
    }
    return seq;
}

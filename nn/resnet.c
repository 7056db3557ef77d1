/* A small ResNet of BasicBlocks (torchvision's names, a CIFAR-style stem). */
#include <stdio.h>

#include "../tensor/elementwise.h"
#include "container.h"
#include "conv.h"
#include "linear.h"
#include "models-impl.h"
#include "models.h"
#include "norm.h"

#define RESNET_MAX_WIDTH 4096
#define RESNET_MAX_STAGES 8
#define RESNET_MAX_BLOCKS 64
#define RESNET_MAX_CHANNELS 65536

/* relu(bn1(conv1(x))) of a module holding children conv1 and bn1. */
static wk_tensor *conv_bn_relu(wk_module *m, wk_tensor *x)
{
    return wk_relu(wk_module_forward(wk_module_child(m, "bn1"),
                                     wk_module_forward(wk_module_child(m, "conv1"), x)));
}

/* BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)). */
static wk_tensor *block_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *h = conv_bn_relu(m, x);
    h = wk_module_forward(wk_module_child(m, "bn2"),
                          wk_module_forward(wk_module_child(m, "conv2"), h));
    wk_module *down = wk_module_child(m, "downsample");
    return wk_relu(wk_add(h, down ? wk_module_forward(down, x) : x));
}

/* stem, layer1..layerN, global average pool, fc. */
static wk_tensor *resnet_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *h = conv_bn_relu(m, x);
    /* children: conv1, bn1, layer1..layerN, fc */
    for (int i = 2; i + 1 < m->nchildren; i++) h = wk_module_forward(m->children[i].module, h);
    h = wk_flatten(wk_adaptive_avg_pool2d(h, 1, 1), 1, -1);
    return wk_module_forward(wk_module_child(m, "fc"), h);
}

/* A bias-free conv with torchvision's init: kaiming_normal(fan_out, relu). */
static wk_module *conv_new(int64_t in, int64_t out, int64_t k, int64_t stride, wk_generator *g)
{
    const wk_conv2d_opts o = {.stride = {stride, stride}, .padding = {k / 2, k / 2}};
    wk_module *c = wk_conv2d_new(in, out, k, k, &o, false, g);
    if (c && !wk_init_kaiming_normal_(wk_module_param(c, "weight"), 0, WK_FAN_OUT, "relu", g)) {
        wk_module_free(c);
        return NULL;
    }
    return c;
}

static wk_module *bn_new(int64_t c) { return wk_batch_norm2d_new(c, 1e-5, 0.1, true, true); }

static wk_module *block_new(int64_t in, int64_t out, int64_t stride, wk_generator *g)
{
    wk_module *b = wk_module_new("BasicBlock", block_forward, 0);
    bool ok = b && wk_module_add_child(b, "conv1", conv_new(in, out, 3, stride, g)) &&
              wk_module_add_child(b, "bn1", bn_new(out)) &&
              wk_module_add_child(b, "conv2", conv_new(out, out, 3, 1, g)) &&
              wk_module_add_child(b, "bn2", bn_new(out));
    if (ok && (stride != 1 || in != out)) {
        wk_module *down = wk_module_add_child(b, "downsample", wk_sequential_new());
        ok = down && wk_sequential_append(down, conv_new(in, out, 1, stride, g)) &&
             wk_sequential_append(down, bn_new(out));
    }
    if (!ok) {
        wk_module_free(b);
        return NULL;
    }
    return b;
}

static bool check_range(const char *field, int64_t v, int64_t lo, int64_t hi, const char *dflt)
{
    if (v >= lo && v <= hi) return true;
    if (dflt)
        wk_set_error("ResNet: %s = %lld must be in [%lld, %lld] (0: %s)", field, (long long)v,
                     (long long)lo, (long long)hi, dflt);
    else
        wk_set_error("ResNet: %s = %lld must be >= %lld", field, (long long)v, (long long)lo);
    return false;
}

wk_module *wk_resnet_small_new(const wk_resnet_opts *o, wk_generator *g)
{
    if (!o) {
        wk_set_error("ResNet: options are NULL");
        return NULL;
    }
    int64_t width = o->width ? o->width : 16;
    int stages = o->stages ? o->stages : 3, blocks = o->blocks ? o->blocks : 1;
    if (!check_range("in_channels", o->in_channels, 1, INT64_MAX, NULL) ||
        !check_range("num_classes", o->num_classes, 1, INT64_MAX, NULL) ||
        !check_range("width", width, 1, RESNET_MAX_WIDTH, "16") ||
        !check_range("stages", stages, 1, RESNET_MAX_STAGES, "3") ||
        !check_range("blocks", blocks, 1, RESNET_MAX_BLOCKS, "1"))
        return NULL;
    int64_t widest = width << (stages - 1);
    if (widest > RESNET_MAX_CHANNELS) {
        wk_set_error("ResNet: the last stage would have width * 2^(stages - 1) = %lld * 2^%d = "
                     "%lld channels; at most %d",
                     (long long)width, stages - 1, (long long)widest, RESNET_MAX_CHANNELS);
        return NULL;
    }
    wk_module *m = wk_module_new("ResNet", resnet_forward, 0);
    bool ok = m && wk_module_add_child(m, "conv1", conv_new(o->in_channels, width, 3, 1, g)) &&
              wk_module_add_child(m, "bn1", bn_new(width));
    int64_t in = width;
    for (int s = 0; ok && s < stages; s++) {
        char name[16];
        snprintf(name, sizeof name, "layer%d", s + 1);
        wk_module *layer = wk_module_add_child(m, name, wk_sequential_new());
        int64_t out = width << s;
        for (int b = 0; layer && b < blocks; b++) {
            if (!wk_sequential_append(layer, block_new(in, out, s > 0 && b == 0 ? 2 : 1, g)))
                layer = NULL;
            in = out;
        }
        ok = layer != NULL;
    }
    if (!ok || !wk_module_add_child(m, "fc", wk_linear_new(in, o->num_classes, true, g))) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

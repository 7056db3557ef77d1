/* Dropout: a byte mask from the Philox generator (wk_bernoulli_p), a fused masked scale
 * through the element-wise iterator (any layout), a backward that applies the saved mask
 * to the gradient, and the Dropout module. */
#include <stdlib.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "../tensor/profiler-impl.h"
#include "../tensor/creation.h"
#include "../tensor/iter-impl.h"
#include "norm.h"

typedef bool (*dropout_kernel)(wk_tensor *out, const wk_tensor *x, const wk_tensor *mask,
                               double scale);

/* ---- CPU kernel: out = x * mask * scale (mask: u8 of out's shape, contiguous) ---- */

#define DROPOUT_LOOP(NAME, T)                                                            \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                   \
    {                                                                                    \
        T scale = (T) * (const double *)ctx;                                             \
        if (s[0] == sizeof(T) && s[1] == sizeof(T) && s[2] == 1) {                       \
            T *restrict o = (T *)d[0];                                                   \
            const T *restrict x = (const T *)d[1];                                       \
            const uint8_t *restrict m = (const uint8_t *)d[2];                           \
            for (int64_t i = 0; i < n; i++) o[i] = x[i] * ((T)m[i] * scale);             \
            return;                                                                      \
        }                                                                                \
        for (int64_t i = 0; i < n; i++) {                                                \
            T m = (T) * (const uint8_t *)(d[2] + i * s[2]);                              \
            *(T *)(d[0] + i * s[0]) = *(const T *)(d[1] + i * s[1]) * (m * scale);       \
        }                                                                                \
    }
DROPOUT_LOOP(dropout_f32, float)
DROPOUT_LOOP(dropout_f64, double)

static bool cpu_dropout(wk_tensor *out, const wk_tensor *x, const wk_tensor *mask, double scale)
{
    wki_iter it;
    wki_iter_init(&it, 3, (const wk_tensor *[]){out, x, mask});
    wki_iter_run(&it, out->dtype == WK_DTYPE_F32 ? dropout_f32 : dropout_f64, &scale);
    return true;
}

static const dropout_kernel dropout_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = cpu_dropout,
    [WK_DEVICE_CUDA] = NULL,
};

/* ---- op ---- */

/* Identity (evaluation, p = 0): the gradient passes through. */
static int identity_backward(wki_node *n, wk_tensor *grad_out, wk_tensor **grads)
{
    (void)n;
    grads[0] = grad_out;
    return 0;
}

/* saved[0] = mask (u8), f[0] = scale. */
static int dropout_backward(wki_node *n, wk_tensor *grad_out, wk_tensor **grads)
{
    wk_tensor *mask = n->saved[0];
    if (!mask) {
        wk_set_error("dropout backward: the saved mask was released");
        return -1;
    }
    wk_tensor *dx = wk_empty_like(grad_out);
    if (!dx) return -1;
    wk_tensor *g = wk_contiguous(grad_out); /* the mask is laid out like the output */
    bool ok = g && dropout_kernels[grad_out->device.type](dx, g, mask, n->f[0]);
    wk_tensor_free(g);
    if (!ok) {
        wk_tensor_free(dx);
        return -1;
    }
    grads[0] = dx;
    return 0;
}

wk_tensor *wk_dropout(wk_tensor *x, double p, bool training, wk_generator *g)
{
    WKI_PROF_OP("dropout", x);
    if (!WKI_CHECK("dropout", x)) return NULL;
    if (!(p >= 0 && p <= 1)) {
        wk_set_error("dropout: probability has to be between 0 and 1, got %g", p);
        return NULL;
    }
    if (x->dtype != WK_DTYPE_F32 && x->dtype != WK_DTYPE_F64) {
        bool storage = x->dtype == WK_DTYPE_BF16 || x->dtype == WK_DTYPE_F16;
        wk_set_error("dropout: input has dtype %s (shape %s); expected float32 or float64%s",
                     wk_dtype_name(x->dtype), wki_shape_s(x),
                     storage ? " (a storage type: convert with wk_to_dtype first)" : "");
        return NULL;
    }
    dropout_kernel kernel = dropout_kernels[x->device.type];
    if (!kernel) {
        char d[32];
        wk_set_error("dropout: no kernel for device %s", wk_device_str(x->device, d, sizeof d));
        return NULL;
    }
    bool need = wki_grad_needed(1, (const wk_tensor *[]){x});
    if (!training || p == 0) {
        wk_tensor *y = wk_alias(x);
        if (y && need && !wki_node_new(y, "dropout", identity_backward, 1, &x)) {
            wk_tensor_free(y);
            return NULL;
        }
        return y;
    }
    wk_tensor *mask = wk_bernoulli_p(x->shape, x->ndim, 1 - p, WK_DTYPE_U8, g);
    wk_tensor *y = mask ? wki_empty_on(x->shape, x->ndim, x->dtype, x->device) : NULL;
    double scale = p == 1 ? 0 : 1 / (1 - p);
    bool ok = y && kernel(y, x, mask, scale);
    if (ok && need) {
        wki_node *n = wki_node_new(y, "dropout", dropout_backward, 1, &x);
        if (n) {
            wki_node_save(n, 0, mask);
            n->f[0] = scale;
        }
        ok = n != NULL;
    }
    wk_tensor_free(mask);
    if (!ok) {
        wk_tensor_free(y);
        return NULL;
    }
    return y;
}

/* ---- module ---- */

/* The config of every module with a dropout generator (Dropout here, MultiheadAttention
 * and CausalSelfAttention in attention.c) starts with that generator. */
typedef struct {
    wk_generator gen;
    double p;
} dropout_cfg;

static wk_tensor *dropout_module_forward(wk_module *m, wk_tensor *x)
{
    dropout_cfg *c = m->config;
    return wk_dropout(x, c->p, m->training, &c->gen);
}

wk_module *wk_dropout_new(double p, wk_generator *g)
{
    if (!(p >= 0 && p <= 1)) {
        wk_set_error("Dropout: probability has to be between 0 and 1, got %g", p);
        return NULL;
    }
    /* The module's own stream, seeded by a draw from g (which advances g). */
    wk_tensor *seed = wk_randint(0, INT64_MAX, NULL, 0, g);
    wk_module *m = seed ? wk_module_new("Dropout", dropout_module_forward, sizeof(dropout_cfg))
                        : NULL;
    if (m) {
        dropout_cfg *c = m->config;
        c->gen = wk_generator_make((uint64_t) * (const int64_t *)wk_data(seed));
        c->p = p;
    }
    wk_tensor_free(seed);
    return m;
}

wk_generator *wk_module_dropout_generator(wk_module *m)
{
    static const char *const types[] = {"Dropout", "MultiheadAttention", "CausalSelfAttention"};
    if (!m) {
        wk_set_error("module_dropout_generator: module is NULL");
        return NULL;
    }
    for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
        if (!strcmp(m->type, types[i])) return &((dropout_cfg *)m->config)->gen;
    wk_set_error("module_dropout_generator: %s has no dropout generator (expected Dropout, "
                 "MultiheadAttention or CausalSelfAttention)",
                 m->type);
    return NULL;
}

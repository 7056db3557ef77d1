/* nanoGPT's GPT (model.py) on nn/'s layers, as a module and as a model. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../tensor/creation.h"
#include "../tensor/elementwise.h"
#include "../tensor/linalg.h"
#include "../tensor/tensor-impl.h"
#include "activation.h"
#include "container.h"
#include "linear.h"
#include "loss.h"
#include "models-impl.h"
#include "models.h"
#include "norm.h"

typedef struct {
    int64_t vocab_size, block_size;
} gpt_cfg;

/* nanoGPT's MLP: dropout(c_proj(gelu(c_fc(x)))). */
static wk_tensor *mlp_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *h = wk_module_forward(wk_module_child(m, "c_fc"), x);
    h = wk_module_forward(wk_module_child(m, "gelu"), h);
    h = wk_module_forward(wk_module_child(m, "c_proj"), h);
    return wk_module_forward(wk_module_child(m, "dropout"), h);
}

/* Block: x + attn(ln_1(x)), then + mlp(ln_2(x)). */
static wk_tensor *block_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *a = wk_module_forward(wk_module_child(m, "attn"),
                                     wk_module_forward(wk_module_child(m, "ln_1"), x));
    x = wk_add(x, a);
    wk_tensor *f = wk_module_forward(wk_module_child(m, "mlp"),
                                     wk_module_forward(wk_module_child(m, "ln_2"), x));
    return wk_add(x, f);
}

/* idx (B, T) -> logits (B, T, V): drop(wte(idx) + wpe(0..T-1)), blocks, ln_f, x @ wte^T. */
static wk_tensor *gpt_forward(wk_module *m, wk_tensor *idx)
{
    const gpt_cfg *c = m->config;
    if (idx->ndim != 2 || (idx->dtype != WK_DTYPE_I64 && idx->dtype != WK_DTYPE_I32)) {
        wk_set_error("GPT: expected token ids of shape (B, T), int64, got %s %s",
                     wk_dtype_name(idx->dtype), wki_shape_s(idx));
        return NULL;
    }
    int64_t t = idx->shape[1];
    if (t < 1 || t > c->block_size) {
        wk_set_error("GPT: sequence length T = %lld must be in [1, block_size = %lld]",
                     (long long)t, (long long)c->block_size);
        return NULL;
    }
    wk_module *tr = wk_module_child(m, "transformer");
    wk_module *wte = wk_module_child(tr, "wte");
    wk_tensor *pos = wk_arange(0, (double)t, 1, WK_DTYPE_I64);
    wk_tensor *x = wk_add(wk_module_forward(wte, idx),
                          wk_module_forward(wk_module_child(tr, "wpe"), pos));
    x = wk_module_forward(wk_module_child(tr, "drop"), x);
    wk_module *h = wk_module_child(tr, "h");
    for (int i = 0; i < h->nchildren; i++) x = wk_module_forward(h->children[i].module, x);
    x = wk_module_forward(wk_module_child(tr, "ln_f"), x);
    return wk_linear(x, wk_module_param(wte, "weight"), NULL); /* lm_head, tied */
}

/* nanoGPT's LayerNorm(n_embd, bias): weight ones, bias zeros unless no_bias. */
static wk_module *layer_norm_new(int64_t e, bool bias)
{
    wk_module *ln = wk_layer_norm_new(WK_SHAPE(e), 1e-5, bias);
    if (ln && !bias && !wk_module_add_parameter(ln, "weight", wk_ones(WK_SHAPE(e), WK_DTYPE_F32))) {
        wk_module_free(ln);
        return NULL;
    }
    return ln;
}

static wk_module *mlp_new(int64_t e, bool bias, double dropout, wk_generator *g)
{
    wk_module *m = wk_module_new("MLP", mlp_forward, 0);
    if (m && wk_module_add_child(m, "c_fc", wk_linear_new(e, 4 * e, bias, g)) &&
        wk_module_add_child(m, "gelu", wk_gelu_new(NULL)) &&
        wk_module_add_child(m, "c_proj", wk_linear_new(4 * e, e, bias, g)) &&
        wk_module_add_child(m, "dropout", wk_dropout_new(dropout, g)))
        return m;
    wk_module_free(m);
    return NULL;
}

static wk_module *block_new(const wk_gpt_opts *o, wk_generator *g)
{
    bool bias = !o->no_bias;
    wk_module *b = wk_module_new("Block", block_forward, 0);
    if (b && wk_module_add_child(b, "ln_1", layer_norm_new(o->n_embd, bias)) &&
        wk_module_add_child(b, "attn", wk_causal_self_attention_new(o->n_embd, o->n_head, bias,
                                                                    o->dropout, g)) &&
        wk_module_add_child(b, "ln_2", layer_norm_new(o->n_embd, bias)) &&
        wk_module_add_child(b, "mlp", mlp_new(o->n_embd, bias, o->dropout, g)))
        return b;
    wk_module_free(b);
    return NULL;
}

/* nanoGPT's _init_weights, then its scaled init of every c_proj weight. */
static int init_weights(wk_module *m, const char *name, double std, double proj_std,
                        wk_generator *g)
{
    if (!strcmp(m->type, "Linear")) {
        wk_tensor *b = wk_module_param(m, "bias");
        if (!wk_init_normal_(wk_module_param(m, "weight"), 0,
                             strcmp(name, "c_proj") ? std : proj_std, g) ||
            (b && !wk_init_zeros_(b)))
            return -1;
    } else if (!strcmp(m->type, "Embedding")) {
        if (!wk_init_normal_(wk_module_param(m, "weight"), 0, std, g)) return -1;
    }
    for (int i = 0; i < m->nchildren; i++)
        if (init_weights(m->children[i].module, m->children[i].name, std, proj_std, g))
            return -1;
    return 0;
}

static bool check_opts(const wk_gpt_opts *o)
{
    if (!o) {
        wk_set_error("GPT: options are NULL");
        return false;
    }
    const struct {
        const char *name;
        int64_t v;
    } sizes[] = {{"vocab_size", o->vocab_size}, {"block_size", o->block_size},
                 {"n_layer", o->n_layer},       {"n_head", o->n_head},
                 {"n_embd", o->n_embd}};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        if (sizes[i].v < 1) {
            wk_set_error("GPT: %s = %lld must be >= 1", sizes[i].name, (long long)sizes[i].v);
            return false;
        }
    }
    if (o->n_embd % o->n_head) {
        wk_set_error("GPT: n_embd = %lld must be divisible by n_head = %lld",
                     (long long)o->n_embd, (long long)o->n_head);
        return false;
    }
    if (o->n_layer > INT32_MAX) { /* ModuleList indices are ints */
        wk_set_error("GPT: n_layer = %lld must be <= %d", (long long)o->n_layer, INT32_MAX);
        return false;
    }
    /* 4 * n_embd (the MLP's width) must not overflow */
    if (o->n_embd > INT64_MAX / 4) {
        wk_set_error("GPT: n_embd = %lld must be <= %lld", (long long)o->n_embd,
                     (long long)(INT64_MAX / 4));
        return false;
    }
    return wki_models_check_dropout("GPT", o->dropout) && wki_models_check_std("GPT", o->init_std);
}

wk_module *wk_gpt_module_new(const wk_gpt_opts *o, wk_generator *g)
{
    if (!check_opts(o)) return NULL;
    wk_module *m = wk_module_new("GPT", gpt_forward, sizeof(gpt_cfg));
    if (!m) return NULL;
    gpt_cfg *c = m->config;
    c->vocab_size = o->vocab_size;
    c->block_size = o->block_size;
    /* nanoGPT's transformer ModuleDict: wte, wpe, drop, h, ln_f */
    wk_module *tr = wk_module_add_child(m, "transformer", wk_module_new("ModuleDict", NULL, 0));
    wk_module *h = NULL;
    bool ok = tr &&
              wk_module_add_child(tr, "wte",
                                  wk_embedding_new(o->vocab_size, o->n_embd, WK_NO_PADDING, g)) &&
              wk_module_add_child(tr, "wpe",
                                  wk_embedding_new(o->block_size, o->n_embd, WK_NO_PADDING, g)) &&
              wk_module_add_child(tr, "drop", wk_dropout_new(o->dropout, g)) &&
              (h = wk_module_add_child(tr, "h", wk_module_list_new()));
    for (int64_t i = 0; ok && i < o->n_layer; i++) ok = wk_module_list_append(h, block_new(o, g));
    ok = ok && wk_module_add_child(tr, "ln_f", layer_norm_new(o->n_embd, !o->no_bias));
    double std = o->init_std > 0 ? o->init_std : 0.02;
    if (!ok || init_weights(m, "", std, std / sqrt(2.0 * (double)o->n_layer), g)) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

/* Mean cross-entropy of logits (B, T, V) against targets (B, T), -1 ignored. */
static wk_tensor *gpt_loss(wk_tensor *logits, wk_tensor *targets)
{
    if (targets->ndim != 2 || targets->shape[0] != logits->shape[0] ||
        targets->shape[1] != logits->shape[1]) {
        wk_set_error("GPT: targets of shape %s, expected (B, T) = (%lld, %lld) as the inputs",
                     wki_shape_s(targets), (long long)logits->shape[0],
                     (long long)logits->shape[1]);
        return NULL;
    }
    wk_cross_entropy_opts ce = WK_CROSS_ENTROPY_DEFAULTS;
    ce.ignore_index = -1;
    return wk_cross_entropy(wk_reshape(logits, WK_SHAPE(-1, logits->shape[2])),
                            wk_reshape(targets, WK_SHAPE(-1)), &ce);
}

static bool batch_has(const wk_batch *b, const char *name)
{
    for (int i = 0; i < b->count; i++)
        if (!strcmp(b->names[i], name)) return true;
    return false;
}

static int gpt_model_forward(wk_model *model, const wk_batch *batch, wk_forward_mode mode,
                             wk_model_output *out)
{
    wk_tensor *idx = wk_batch_get(batch, "inputs");
    if (!idx) return -1;
    wk_tensor *targets = NULL;
    if (mode == WK_MODE_LOSS || (mode == WK_MODE_PREDICT && batch_has(batch, "targets"))) {
        if (!(targets = wk_batch_get(batch, "targets"))) return -1;
    }
    wk_tensor *logits = wk_module_forward(model->module, idx);
    if (!logits) return -1;
    switch (mode) {
    case WK_MODE_LOSS:
        return wk_model_output_set(out, "loss", gpt_loss(logits, targets));
    case WK_MODE_PREDICT:
        if (wk_model_output_set(out, "logits", logits)) return -1;
        return targets ? wk_model_output_set(out, "loss", gpt_loss(logits, targets)) : 0;
    case WK_MODE_TENSOR:
    default:
        return wk_model_output_set(out, "logits", logits);
    }
}

wk_model *wk_gpt_new(const wk_gpt_opts *o, wk_generator *g)
{
    wk_module *m = wk_gpt_module_new(o, g);
    return m ? wk_model_new(m, gpt_model_forward, NULL, NULL) : NULL;
}

/* The model contract (batch, outputs, modes) and the ready classifier. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/reduce.h"
#include "../tensor/elementwise.h"
#include "loss.h"
#include "model.h"

static const char *const mode_names[] = {
    [WK_MODE_LOSS] = "loss",
    [WK_MODE_PREDICT] = "predict",
    [WK_MODE_TENSOR] = "tensor",
};
_Static_assert(sizeof mode_names / sizeof mode_names[0] == WK_MODE_COUNT,
               "every wk_forward_mode needs a name");

const char *wk_forward_mode_name(wk_forward_mode mode)
{
    return (unsigned)mode < WK_MODE_COUNT ? mode_names[mode] : "?";
}

/* ---- batches and outputs ---- */

/* "\"a\", \"b\"" for an error message. */
static void list_names(char *buf, size_t cap, int n, const char *(*name_at)(const void *, int),
                       const void *owner)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\"", i ? ", " : "",
                                name_at(owner, i));
}

static const char *batch_name_at(const void *b, int i)
{
    const char *s = ((const wk_batch *)b)->names[i];
    return s ? s : "(null)";
}

static const char *output_name_at(const void *o, int i)
{
    return ((const wk_model_output *)o)->names[i];
}

static int batch_find(const wk_batch *b, const char *name)
{
    for (int i = 0; i < b->count && i < WK_BATCH_MAX; i++)
        if (b->names[i] && !strcmp(b->names[i], name)) return i;
    return -1;
}

wk_tensor *wk_batch_get(const wk_batch *b, const char *name)
{
    if (!b || !name) {
        wk_set_error("batch_get: %s is NULL", b ? "name" : "batch");
        return NULL;
    }
    if (b->count < 0 || b->count > WK_BATCH_MAX) {
        wk_set_error("batch_get: batch count %d is outside 0..%d", b->count, WK_BATCH_MAX);
        return NULL;
    }
    int i = batch_find(b, name);
    if (i >= 0 && b->tensors[i]) return b->tensors[i];
    if (i >= 0) {
        if (!wk_last_error()[0]) wk_set_error("batch_get: \"%s\" is NULL", name);
        return NULL;
    }
    char names[600];
    list_names(names, sizeof names, b->count, batch_name_at, b);
    wk_set_error("batch_get: the batch has no \"%s\" (it has %s%s)", name,
                 b->count ? "" : "nothing", names);
    return NULL;
}

int wk_batch_set(wk_batch *b, const char *name, wk_tensor *t)
{
    const char *op = "batch_set";
    if (!b || !name || !*name) {
        wk_set_error("%s: %s", op, !b ? "batch is NULL" : "name is NULL or empty");
        return -1;
    }
    if (!t) {
        char prev[800];
        snprintf(prev, sizeof prev, "%s", wk_last_error());
        wk_set_error("%s: tensor \"%s\" is NULL%s%s%s", op, name, prev[0] ? " (after: " : "",
                     prev, prev[0] ? ")" : "");
        return -1;
    }
    if (b->count < 0 || b->count > WK_BATCH_MAX) {
        wk_set_error("%s: batch count %d is outside 0..%d", op, b->count, WK_BATCH_MAX);
        return -1;
    }
    int i = batch_find(b, name);
    if (i < 0) {
        if (b->count == WK_BATCH_MAX) {
            wk_set_error("%s: the batch is full (%d tensors); cannot add \"%s\"", op,
                         WK_BATCH_MAX, name);
            return -1;
        }
        i = b->count++;
        b->names[i] = name;
    }
    b->tensors[i] = t;
    return 0;
}

int wk_model_output_set(wk_model_output *out, const char *name, wk_tensor *value)
{
    const char *op = "model_output_set";
    if (!out || !name || !*name) {
        wk_set_error("%s: %s", op, !out ? "output is NULL" : "name is NULL or empty");
        return -1;
    }
    if (strlen(name) >= WK_OUTPUT_NAME_MAX) {
        wk_set_error("%s: name \"%s\" is too long (at most %d characters)", op, name,
                     WK_OUTPUT_NAME_MAX - 1);
        return -1;
    }
    if (!value) {
        char prev[800];
        snprintf(prev, sizeof prev, "%s", wk_last_error());
        if (prev[0]) wk_set_error("output \"%s\": %s", name, prev);
        else wk_set_error("%s: output \"%s\" is NULL", op, name);
        return -1;
    }
    if (out->count < 0 || out->count > WK_OUTPUT_MAX) {
        wk_set_error("%s: output count %d is outside 0..%d", op, out->count, WK_OUTPUT_MAX);
        return -1;
    }
    int i = 0;
    while (i < out->count && strcmp(out->names[i], name)) i++;
    if (i == out->count) {
        if (out->count == WK_OUTPUT_MAX) {
            wk_set_error("%s: the output is full (%d tensors); cannot add \"%s\"", op,
                         WK_OUTPUT_MAX, name);
            return -1;
        }
        snprintf(out->names[i], sizeof out->names[i], "%s", name);
        out->count++;
    }
    out->values[i] = value;
    return 0;
}

wk_tensor *wk_model_output_get(const wk_model_output *out, const char *name)
{
    if (!out || !name) {
        wk_set_error("model_output_get: %s is NULL", out ? "name" : "output");
        return NULL;
    }
    for (int i = 0; i < out->count && i < WK_OUTPUT_MAX; i++)
        if (!strcmp(out->names[i], name)) return out->values[i];
    char names[600];
    int n = out->count < 0 ? 0 : out->count > WK_OUTPUT_MAX ? WK_OUTPUT_MAX : out->count;
    list_names(names, sizeof names, n, output_name_at, out);
    wk_set_error("model_output_get: no output \"%s\" (there are %s%s)", name,
                 n ? "" : "none", names);
    return NULL;
}

/* ---- models ---- */

wk_model *wk_model_new(wk_module *module, wk_model_forward_fn forward, void *user,
                       void (*user_free)(void *user))
{
    if (!module || !forward) {
        if (!module && !wk_last_error()[0]) wk_set_error("model_new: module is NULL");
        else if (module) wk_set_error("model_new: forward is NULL");
        wk_module_free(module);
        return NULL;
    }
    wk_model *m = calloc(1, sizeof *m);
    if (!m) {
        wk_set_error("model_new: out of memory");
        wk_module_free(module);
        return NULL;
    }
    m->module = module;
    m->forward = forward;
    m->user = user;
    m->user_free = user_free;
    return m;
}

void wk_model_free(wk_model *model)
{
    if (!model) return;
    wk_module_free(model->module);
    if (model->user_free) model->user_free(model->user);
    free(model);
}

static bool is_loss_name(const char *name) { return strstr(name, "loss") != NULL; }

/* The result of a forward: every value set, and in LOSS mode float losses. */
static bool check_output(const wk_model *model, wk_forward_mode mode, const wk_model_output *out)
{
    const char *type = model->module ? model->module->type : "model";
    if (out->count < 0 || out->count > WK_OUTPUT_MAX) {
        wk_set_error("model_forward: %s (%s mode) returned an output count of %d (expected "
                     "0..%d)", type, mode_names[mode], out->count, WK_OUTPUT_MAX);
        return false;
    }
    int nloss = 0;
    for (int i = 0; i < out->count; i++) {
        if (!out->values[i]) {
            wk_set_error("model_forward: %s (%s mode) returned a NULL output \"%s\"", type,
                         mode_names[mode], out->names[i]);
            return false;
        }
        if (mode != WK_MODE_LOSS || !is_loss_name(out->names[i])) continue;
        nloss++;
        if (!wk_dtype_is_float(out->values[i]->dtype)) {
            wk_set_error("model_forward: %s: loss \"%s\" is %s, expected a float tensor", type,
                         out->names[i], wk_dtype_name(out->values[i]->dtype));
            return false;
        }
    }
    if (mode == WK_MODE_LOSS && !nloss) {
        char names[600];
        list_names(names, sizeof names, out->count, output_name_at, out);
        wk_set_error("model_forward: %s returned no loss in loss mode (outputs: %s%s; the "
                     "names of losses must contain \"loss\")", type,
                     out->count ? "" : "none", names);
        return false;
    }
    return true;
}

int wk_model_forward(wk_model *model, const wk_batch *batch, wk_forward_mode mode,
                     wk_model_output *out)
{
    const char *op = "model_forward";
    if (out) memset(out, 0, sizeof *out);
    if (!model || !model->forward || !batch || !out) {
        wk_set_error("%s: %s is NULL", op,
                     !model ? "model" : !model->forward ? "model->forward"
                                      : !batch          ? "batch"
                                                        : "output");
        return -1;
    }
    if ((unsigned)mode >= WK_MODE_COUNT) {
        wk_set_error("%s: invalid mode %d (expected WK_MODE_LOSS, _PREDICT or _TENSOR)", op,
                     (int)mode);
        return -1;
    }
    if (model->forward(model, batch, mode, out) != 0) {
        if (!wk_last_error()[0])
            wk_set_error("%s: %s (%s mode) failed without an error message", op,
                         model->module ? model->module->type : "model", mode_names[mode]);
        return -1;
    }
    return check_output(model, mode, out) ? 0 : -1;
}

wk_tensor *wk_model_total_loss(const wk_model_output *out)
{
    if (!out) {
        wk_set_error("model_total_loss: output is NULL");
        return NULL;
    }
    wk_tensor *total = NULL;
    for (int i = 0; i < out->count && i < WK_OUTPUT_MAX; i++) {
        if (!is_loss_name(out->names[i])) continue;
        wk_tensor *v = out->values[i];
        if (!v) {
            if (!wk_last_error()[0])
                wk_set_error("model_total_loss: loss \"%s\" is NULL", out->names[i]);
            return NULL;
        }
        /* The mean of a one-element tensor is a 0-d copy of it, so the result is always
         * a new tensor and a single loss of shape [1] also gives a 0-d total. */
        v = wk_mean(v, WK_ALL_DIMS, false);
        total = total ? wk_add(total, v) : v;
        if (!total) return NULL;
    }
    if (!total) wk_set_error("model_total_loss: no output name contains \"loss\"");
    return total;
}

/* ---- the classifier ---- */

typedef struct {
    wk_classifier_loss_fn loss;
} classifier_cfg;

static wk_tensor *default_loss(wk_tensor *logits, wk_tensor *labels)
{
    return wk_cross_entropy(logits, labels, NULL);
}

static int classifier_forward(wk_model *model, const wk_batch *batch, wk_forward_mode mode,
                              wk_model_output *out)
{
    const classifier_cfg *cfg = model->user;
    wk_tensor *x = wk_batch_get(batch, "inputs");
    if (!x) return -1;
    wk_tensor *labels = NULL;
    if (mode == WK_MODE_LOSS) {
        if (!(labels = wk_batch_get(batch, "labels"))) return -1;
    } else if (mode == WK_MODE_PREDICT && batch_find(batch, "labels") >= 0) {
        if (!(labels = wk_batch_get(batch, "labels"))) return -1;
    }
    wk_tensor *logits = wk_module_forward(model->module, x);
    if (!logits) return -1;
    switch (mode) {
    case WK_MODE_LOSS:
        return wk_model_output_set(out, "loss", cfg->loss(logits, labels));
    case WK_MODE_PREDICT:
        if (wk_model_output_set(out, "logits", logits) ||
            wk_model_output_set(out, "preds", wk_argmax(logits, logits->ndim >= 2, false)))
            return -1;
        if (!labels) return 0;
        /* With labels, PREDICT also reports the loss (for the Loss metric). */
        if (wk_model_output_set(out, "labels", labels)) return -1;
        return wk_model_output_set(out, "loss", cfg->loss(logits, labels));
    case WK_MODE_TENSOR:
    default:
        return wk_model_output_set(out, "logits", logits);
    }
}

wk_model *wk_classifier_new_with_loss(wk_module *net, wk_classifier_loss_fn loss)
{
    if (!net || !loss) {
        if (net) wk_set_error("classifier_new: loss is NULL");
        else if (!wk_last_error()[0]) wk_set_error("classifier_new: net is NULL");
        wk_module_free(net);
        return NULL;
    }
    classifier_cfg *cfg = malloc(sizeof *cfg);
    if (!cfg) {
        wk_set_error("classifier_new: out of memory");
        wk_module_free(net);
        return NULL;
    }
    cfg->loss = loss;
    wk_model *m = wk_model_new(net, classifier_forward, cfg, free);
    if (!m) free(cfg);
    return m;
}

wk_model *wk_classifier_new(wk_module *net)
{
    return wk_classifier_new_with_loss(net, default_loss);
}

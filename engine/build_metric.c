/* Built-in metrics (Accuracy, Loss, MSE, ConfusionMatrix) and evaluators. */
#include <stdlib.h>

#include "../tensor/tensor.h"
#include "registry-impl.h"

#define MAX_TOPK 8

wk_metric *wki_build_accuracy(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    int64_t k64[MAX_TOPK];
    int topk[MAX_TOPK] = {1}, n = 0;
    if (wk_cfg_int_list(c, "topk", k64, MAX_TOPK, &n) == 1) {
        if (n == 0) wk_cfg_error(c, "topk", "expected at least one k, got an empty list");
        for (int i = 0; i < n; i++) {
            if (k64[i] < 1 || k64[i] > 1000000) {
                wk_cfg_error(c, "topk", "every k must be >= 1, got %lld", (long long)k64[i]);
                break;
            }
            topk[i] = (int)k64[i];
        }
    } else n = 1;
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_accuracy_new(topk, n);
}

wk_metric *wki_build_loss_metric(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_loss_metric_new();
}

wk_metric *wki_build_mse(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_mse_new();
}

wk_metric *wki_build_confusion_matrix(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    int64_t k;
    wk_cfg_require(c, "num_classes");
    if (wk_cfg_int(c, "num_classes", 2, &k) == 1 && (k < 2 || k > 100000)) {
        wk_cfg_error(c, "num_classes", "must be in 2..100000, got %lld", (long long)k);
        k = 2;
    }
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_confusion_matrix_new((int)k);
}

wk_evaluator *wk_build_evaluator(const wk_cfg *parent, const char *key, const wk_build_ctx *ctx)
{
    if (!parent || !parent->config || !key) {
        wk_set_error("build_evaluator: needs a config view and a key");
        return NULL;
    }
    int n = wk_cfg_items(parent, key);
    if (n < 0) return NULL;
    if (n == 0) {
        wk_cfg_error(parent, key, wk_cfg_has(parent, key)
                                      ? "expected at least one metric, got an empty list"
                                      : "missing (a metric {\"type\": ...} or a list of them)");
        return NULL;
    }
    wk_metric **ms = calloc((size_t)n, sizeof *ms);
    if (!ms) {
        wk_set_error("build_evaluator: out of memory");
        return NULL;
    }
    bool failed = false;
    for (int i = 0; i < n; i++) {
        wk_cfg item;
        if (wk_cfg_item(parent, key, i, &item) < 0) failed = true;
        else if (!(ms[i] = wk_build_metric(&item, ctx))) failed = true;
    }
    wk_evaluator *ev = NULL;
    if (!failed) ev = wk_evaluator_new(ms, n);
    else
        for (int i = 0; i < n; i++) wk_metric_free(ms[i]);
    free(ms);
    return ev;
}

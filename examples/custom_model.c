/* A user model type registered from C and used from a config (MMEngine's
 * @MODELS.register_module() and Runner.from_cfg).
 *
 * "MyNet" is a residual MLP: Linear(in_features -> width), ReLU, `depth` residual blocks
 * x + fc2(relu(fc1(x))) (a layer type written here), Linear(width -> num_classes).
 * WK_REGISTER_MODEL puts its constructor into the registry at program start; the
 * constructor reads its own keys through the config reader and rejects unknown ones
 * with wk_cfg_finish, so a typo is reported with "did you mean". Everything else in
 * custom_model.json (dataset, optimizer, scheduler, metrics, runner) is a built-in.
 *
 *   ./custom_model examples/custom_model.json [--set KEY=VALUE ...] [--min-accuracy PCT]
 *   ./custom_model examples/custom_model.json --set model.depth=3 --set optimizer.lr=0.003
 *
 * Exits 0 when training ends normally (and, with --min-accuracy, the final val/accuracy
 * reaches PCT), 1 when it fails or falls short, 2 for a bad command line or config.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wick.h"

/* ---- a layer type: the residual block ---- */

static wk_tensor *residual_forward(wk_module *m, wk_tensor *x)
{
    wk_tensor *h = wk_relu(wk_module_forward(wk_module_child(m, "fc1"), x));
    return wk_add(x, wk_module_forward(wk_module_child(m, "fc2"), h));
}

static wk_module *residual_new(int64_t width, wk_generator *g)
{
    wk_module *m = wk_module_new("MyResidualBlock", residual_forward, 0);
    if (!m) return NULL;
    if (!wk_module_add_child(m, "fc1", wk_linear_new(width, width, true, g)) ||
        !wk_module_add_child(m, "fc2", wk_linear_new(width, width, true, g))) {
        wk_module_free(m);
        return NULL;
    }
    return m;
}

/* ---- the model type and its constructor ---- */

/* An integer key that must be at least lo when given (the problem is recorded). */
static int64_t int_key(const wk_cfg *c, const char *key, int64_t def, int64_t lo)
{
    int64_t v;
    if (wk_cfg_int(c, key, def, &v) == 1 && v < lo) {
        wk_cfg_error(c, key, "must be >= %lld, got %lld", (long long)lo, (long long)v);
        return def;
    }
    return v;
}

/* {"type": "MyNet", "in_features": N, "width": 32, "depth": 2, "num_classes": 2} */
static wk_model *my_net_new(const wk_cfg *c, const wk_build_ctx *ctx)
{
    wk_cfg_require(c, "in_features");
    int64_t in = int_key(c, "in_features", 1, 1);
    int64_t width = int_key(c, "width", 32, 1);
    int64_t depth = int_key(c, "depth", 2, 0);
    int64_t classes = int_key(c, "num_classes", 2, 2);
    if (wk_cfg_finish(c) < 0) return NULL;   /* unknown or mistyped keys, bad values */

    wk_module *net = wk_sequential_new();
    if (!net) return NULL;
    bool ok = wk_sequential_append(net, wk_linear_new(in, width, true, ctx->generator));
    ok = ok && wk_sequential_append(net, wk_relu_new());
    for (int64_t i = 0; ok && i < depth; i++)
        ok = wk_sequential_append(net, residual_new(width, ctx->generator));
    ok = ok && wk_sequential_append(net, wk_linear_new(width, classes, true, ctx->generator));
    if (!ok) {
        wk_module_free(net);
        return NULL;
    }
    /* the built-in classifier: "inputs" -> logits; LOSS: cross-entropy with "labels";
     * PREDICT: logits, preds, labels, loss (what the built-in metrics read) */
    return wk_classifier_new(net);
}
WK_REGISTER_MODEL("MyNet", my_net_new);

/* ---- the program ---- */

static int usage(void)
{
    fprintf(stderr, "usage: custom_model CONFIG [--set KEY=VALUE ...] [--min-accuracy PCT]\n");
    return 2;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argv[1][0] == '-') return usage();
    wk_config *cfg = wk_config_load(argv[1]);
    if (!cfg) {
        fprintf(stderr, "custom_model: %s\n", wk_last_error());
        return 2;
    }
    double min_accuracy = -1;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--set") && i + 1 < argc) {
            if (wk_config_set(cfg, argv[++i]) < 0) {
                fprintf(stderr, "custom_model: --set: %s\n", wk_last_error());
                wk_config_free(cfg);
                return 2;
            }
        } else if (!strcmp(argv[i], "--min-accuracy") && i + 1 < argc) {
            char *end;
            min_accuracy = strtod(argv[++i], &end);
            if (end == argv[i] || *end) {
                wk_config_free(cfg);
                return usage();
            }
        } else {
            wk_config_free(cfg);
            return usage();
        }
    }

    wk_run *run = wk_run_from_config(cfg);   /* every problem of the config at once */
    if (!run) {
        fprintf(stderr, "custom_model: %s\n", wk_last_error());
        wk_config_free(cfg);
        return 2;
    }
    int status = 0;
    if (wk_runner_run(run->runner)) {
        fprintf(stderr, "custom_model: %s\n", wk_last_error());
        status = 1;
    } else {
        const wk_runner_state *s = wk_runner_get_state(run->runner);
        double acc = wk_metric_results_get(s->metrics, "val/accuracy");
        printf("MyNet: %lld parameters, stopped by %s after %lld steps, final "
               "val/accuracy %.2f%%\n",
               (long long)wk_module_num_parameters(run->model->module),
               wk_stop_reason_name(wk_runner_stop_reason(run->runner)),
               (long long)s->global_step, acc);
        if (min_accuracy >= 0 && !(acc >= min_accuracy)) {
            fprintf(stderr, "custom_model: val/accuracy %.2f%% is below %.2f%%\n", acc,
                    min_accuracy);
            status = 1;
        }
    }
    wk_run_free(run);
    wk_config_free(cfg);
    return status;
}

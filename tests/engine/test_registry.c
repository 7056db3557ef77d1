/* The registry and the built-in builders: user types registered with WK_REGISTER_* and
 * wk_registry_add resolve; every built-in dataset, loader, optimizer, scheduler and
 * metric built from a config equals one built by hand in C (same samples, same
 * hyper-parameters, the same lr sequence over 20 steps); a table of broken configs, each
 * with the exact message it must produce; and every file in configs/ builds (except its
 * runner section, and the Fashion-MNIST parts when the data is not installed). */
#include <cjson/cJSON.h>
#include <glob.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

static char *tmpdir;

static void setup(void)
{
    tu_setup();
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick_reg_"));
}

static void teardown(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
    tu_teardown();
}

TestSuite(registry, .init = setup, .fini = teardown);

static const char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *name, const char *text)
{
    FILE *f = fopen(tmp_path(name), "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

static const char *strip_dir(const char *msg)
{
    static char buf[8192];
    char pre[300];
    snprintf(pre, sizeof pre, "%s/", tmpdir);
    size_t k = 0, pl = strlen(pre);
    for (const char *p = msg; *p && k + 1 < sizeof buf;) {
        if (!strncmp(p, pre, pl)) p += pl;
        else buf[k++] = *p++;
    }
    buf[k] = '\0';
    return buf;
}

static wk_config *parse(const char *json)
{
    wk_config *cfg = wk_config_parse(json, "t.json");
    cr_assert_not_null(cfg, "%s", wk_last_error());
    return cfg;
}

/* The view of a top-level section. */
static wk_cfg section(wk_config *cfg, const char *name)
{
    wk_cfg root = wk_config_root(cfg), s;
    cr_assert_eq(wk_cfg_object(&root, name, &s), 1, "no section %s", name);
    return s;
}

/* ---- user types ---- */

/* Linear(in, hidden) -> LayerNorm(hidden) -> Linear(hidden, out): biases and a norm weight
 * for the no-decay groups. */
static wk_model *tiny_net(const wk_cfg *c, const wk_build_ctx *ctx)
{
    int64_t in, hidden, out;
    wk_cfg_int(c, "in", 2, &in);
    wk_cfg_int(c, "hidden", 4, &hidden);
    wk_cfg_int(c, "out", 2, &out);
    if (wk_cfg_finish(c) < 0) return NULL;
    wk_module *seq = wk_sequential_new();
    wk_sequential_append(seq, wk_linear_new(in, hidden, true, ctx->generator));
    wk_sequential_append(seq, wk_layer_norm_new((int64_t[]){hidden}, 1, 1e-5, true));
    wk_sequential_append(seq, wk_linear_new(hidden, out, true, ctx->generator));
    return wk_classifier_new(seq);
}
WK_REGISTER_MODEL("TinyNet", tiny_net);

/* A constructor that fails with a plain wk_set_error, as user code does. */
static wk_model *failing_net(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    int64_t depth;
    wk_cfg_int(c, "depth", 1, &depth);
    wk_set_error("FailingNet: depth = %lld is not supported", (long long)depth);
    return NULL;
}
WK_REGISTER_MODEL("FailingNet", failing_net);

static int count_hook(const wk_cfg *c, struct wk_runner *runner, void *ctx)
{
    (void)runner;
    int64_t n;
    wk_cfg_int(c, "n", 1, &n);
    if (wk_cfg_finish(c) < 0) return -1;
    *(int64_t *)ctx += n;
    return 0;
}
WK_REGISTER_HOOK("CountHook", count_hook);

static wk_metric *plain_metric(const wk_cfg *c, const wk_build_ctx *ctx)
{
    (void)ctx;
    if (wk_cfg_finish(c) < 0) return NULL;
    return wk_mse_new();
}

Test(registry, user_types_resolve)
{
    wk_config *cfg = parse("{\"model\": {\"type\": \"TinyNet\", \"in\": 3, \"out\": 5}, "
                           "\"hooks\": [{\"type\": \"CountHook\", \"n\": 2}, {\"type\": "
                           "\"CountHook\"}], \"val_evaluator\": {\"type\": \"Plain\"}}");
    wk_cfg m = section(cfg, "model");
    wk_model *model = wk_build_model(&m, &(wk_build_ctx){.seed = 1});
    cr_assert_not_null(model, "%s", wk_last_error());
    cr_assert_eq(wk_module_num_parameters(model->module), 3 * 4 + 4 + 4 + 4 + 4 * 5 + 5);
    wk_model_free(model);
    wk_cfg root = wk_config_root(cfg);
    int64_t count = 0;
    cr_assert_eq(wk_build_hooks(&root, "hooks", NULL, &count), 2, "%s", wk_last_error());
    cr_assert_eq(count, 3);
    cr_assert_eq(wk_build_hooks(&root, "no_hooks", NULL, &count), 0);
    /* a plain function registration, and replacing a name */
    cr_assert_eq(wk_registry_add(WK_KIND_METRIC, "Plain", (wk_ctor_fn)plain_metric), 0);
    wk_evaluator *ev = wk_build_evaluator(&root, "val_evaluator", NULL);
    cr_assert_not_null(ev, "%s", wk_last_error());
    wk_evaluator_free(ev);
    cr_assert_eq(wk_registry_add_metric("Accuracy", plain_metric), 0);
    cr_assert(wk_registry_find(WK_KIND_METRIC, "Accuracy") == (wk_ctor_fn)plain_metric);
    cr_assert_null(wk_registry_find(WK_KIND_METRIC, "Nope"));
    cr_assert_eq(wk_registry_add(WK_KIND_COUNT, "X", (wk_ctor_fn)plain_metric), -1);
    cr_assert_eq(wk_registry_add(WK_KIND_MODEL, "", (wk_ctor_fn)plain_metric), -1);
    cr_assert_str_eq(wk_kind_name(WK_KIND_SCHEDULER), "scheduler");
    const char *names[16];
    int n = wk_registry_names(WK_KIND_MODEL, names, 16);
    cr_assert_eq(n, 6);
    const char *sorted[] = {"FailingNet", "FashionMNISTCNN", "GPT", "MLP", "ResNet", "TinyNet"};
    for (int i = 0; i < n; i++) cr_assert_str_eq(names[i], sorted[i]);
    cr_assert_eq(wk_registry_names(WK_KIND_SCHEDULER, NULL, 0), 13);
    wk_config_free(cfg);
}

/* ---- datasets and loaders against hand-built ones ---- */

/* Every field of sample i of pass epoch, concatenated, into buf (returns its size). */
static size_t sample(const wk_dataset *ds, int64_t i, int64_t epoch, unsigned char *buf)
{
    void *rows[WK_DATASET_MAX_FIELDS];
    size_t off = 0;
    for (int k = 0; k < ds->nfields; k++) {
        rows[k] = buf + off;
        off += wk_field_row_bytes(&ds->fields[k]);
    }
    cr_assert_eq(ds->get(ds, i, epoch, rows), 0, "%s", wk_last_error());
    return off;
}

static void expect_same_dataset(const wk_dataset *a, const wk_dataset *b)
{
    cr_assert_not_null(a, "%s", wk_last_error());
    cr_assert_not_null(b, "%s", wk_last_error());
    int64_t n = wk_dataset_length(a);
    cr_assert_eq(n, wk_dataset_length(b));
    cr_assert_eq(a->nfields, b->nfields);
    static unsigned char ba[1 << 16], bb[1 << 16];
    for (int64_t i = 0; i < n; i += n / 7 + 1) {
        for (int64_t e = 0; e < 2; e++) {
            size_t sa = sample(a, i, e, ba), sb = sample(b, i, e, bb);
            cr_assert_eq(sa, sb);
            cr_assert(!memcmp(ba, bb, sa), "sample %lld of pass %lld differs", (long long)i,
                      (long long)e);
        }
    }
}

static wk_dataset *build_ds(const char *json, uint64_t seed)
{
    wk_config *cfg = parse(json);
    wk_cfg c = section(cfg, "d");
    wk_dataset *ds = wk_build_dataset(&c, &(wk_build_ctx){.seed = seed});
    cr_assert_not_null(ds, "%s", wk_last_error());
    wk_config_free(cfg);
    return ds;
}

Test(registry, datasets_equal_hand_built_ones)
{
    wk_dataset *a = build_ds("{\"d\": {\"type\": \"TwoCircles\", \"size\": 100, \"seed\": 3}}", 9);
    wk_dataset *b = wk_two_circles_new(100, 3);
    expect_same_dataset(a, b);
    wk_dataset_free(a), wk_dataset_free(b);
    /* the seed defaults to the run's */
    a = build_ds("{\"d\": {\"type\": \"TwoCircles\", \"size\": 10}}", 9);
    b = wk_two_circles_new(10, 9);
    expect_same_dataset(a, b);
    wk_dataset_free(a), wk_dataset_free(b);
    a = build_ds("{\"d\": {\"type\": \"Regression\", \"size\": 50, \"features\": 3, \"noise\": "
                 "0.2, \"seed\": 4}}", 0);
    b = wk_regression_new(50, 3, 0.2, 4);
    expect_same_dataset(a, b);
    wk_dataset_free(a), wk_dataset_free(b);
    char text[3000];
    for (int i = 0; i < 2999; i++) text[i] = (char)('a' + (i * 7) % 26);
    text[2999] = '\0';
    write_file("text.txt", text);
    char json[1024];
    snprintf(json, sizeof json, "{\"d\": {\"type\": \"ByteText\", \"path\": \"%s\", "
                                "\"block_size\": 16, \"size\": 10, \"seed\": 5}}",
             tmp_path("text.txt"));
    a = build_ds(json, 0);
    b = wk_byte_text_new(tmp_path("text.txt"), 16, 10, 5);
    expect_same_dataset(a, b);
    wk_dataset_free(a), wk_dataset_free(b);
}

Test(registry, fashion_mnist_split_and_pipeline)
{
    if (access(FMNIST_DIR, R_OK)) cr_skip_test("%s is not installed", FMNIST_DIR);
    wk_mnist_opts o = {.flatten = true, .mean = 0.286, .std = 0.353,
                       .augment = {.crop_padding = 2, .hflip = true, .seed = 11}};
    wk_dataset *full = wk_mnist_new(FMNIST_DIR, true, &o), *tr, *val;
    cr_assert_not_null(full, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_split(full, 3000, 0, &tr, &val), 0);
    const char *pipe = "\"pipeline\": [{\"type\": \"RandomCrop\", \"padding\": 2}, {\"type\": "
                       "\"RandomHorizontalFlip\"}, {\"type\": \"ToTensor\"}, {\"type\": "
                       "\"Normalize\", \"mean\": [0.286], \"std\": 0.353}]";
    char json[1024];
    snprintf(json, sizeof json, "{\"d\": {\"type\": \"FashionMNIST\", \"subset\": \"train\", "
                                "\"holdout\": 3000, \"flatten\": true, \"seed\": 11, %s}}", pipe);
    wk_dataset *a = build_ds(json, 0);
    cr_assert_eq(wk_dataset_length(a), 57000);
    expect_same_dataset(a, tr);
    snprintf(json, sizeof json, "{\"d\": {\"type\": \"FashionMNIST\", \"subset\": \"val\", "
                                "\"split_seed\": 0, \"flatten\": true, %s}}", pipe);
    wk_dataset *b = build_ds(json, 11); /* holdout defaults to 5%; seed to the run's */
    cr_assert_eq(wk_dataset_length(b), 3000);
    expect_same_dataset(b, val);
    wk_dataset_free(a), wk_dataset_free(b);
    wk_dataset_free(tr), wk_dataset_free(val), wk_dataset_free(full);
    a = build_ds("{\"d\": {\"type\": \"FashionMNIST\", \"split\": \"test\"}}", 0);
    b = wk_mnist_new(FMNIST_DIR, false, NULL);
    cr_assert_eq(wk_dataset_length(a), 10000);
    cr_assert_eq(a->fields[0].ndim, 3, "[1, 28, 28] unless flatten");
    expect_same_dataset(a, b);
    wk_dataset_free(a), wk_dataset_free(b);
}

static void expect_same_batches(wk_loader *a, wk_loader *b)
{
    cr_assert_eq(wk_loader_length(a), wk_loader_length(b));
    for (;;) {
        wk_batch ba, bb;
        int ra = wk_loader_next(a, &ba), rb = wk_loader_next(b, &bb);
        cr_assert_eq(ra, rb);
        cr_assert_neq(ra, -1, "%s", wk_last_error());
        if (ra == 0) break;
        for (int k = 0; k < ba.count; k++) {
            wk_tensor *ta = ba.tensors[k], *tb = wk_batch_get(&bb, ba.names[k]);
            cr_assert_eq(wk_numel(ta), wk_numel(tb));
            cr_assert(!memcmp(wk_data(ta), wk_data(tb),
                              (size_t)wk_numel(ta) * wk_dtype_size(ta->dtype)));
        }
    }
}

Test(registry, loaders_equal_hand_built_ones)
{
    wk_config *cfg = parse("{\"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", "
                           "\"size\": 100, \"seed\": 1}, \"batch_size\": 32, \"shuffle\": true, "
                           "\"drop_last\": true, \"prefetch\": 0, \"seed\": 7}, "
                           "\"val_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", "
                           "\"size\": 50}, \"batch_size\": 8}}");
    wk_cfg s = section(cfg, "train_dataloader");
    wk_dataset *ds;
    wk_loader *l = wk_build_loader(&s, &(wk_build_ctx){.seed = 3}, &ds);
    cr_assert_not_null(l, "%s", wk_last_error());
    wk_dataset *hand_ds = wk_two_circles_new(100, 1);
    wk_loader *hand = wk_loader_new(hand_ds, &(wk_loader_opts){.batch_size = 32,
                                                               .shuffle = true,
                                                               .drop_last = true, .seed = 7});
    cr_assert_eq(wk_loader_length(l), 3);
    expect_same_batches(l, hand);
    wk_loader_free(l), wk_loader_free(hand);
    wk_dataset_free(ds), wk_dataset_free(hand_ds);
    /* defaults (no shuffle, keep the last batch, the run's seed) and sharding */
    s = section(cfg, "val_dataloader");
    l = wk_build_loader(&s, &(wk_build_ctx){.seed = 3, .rank = 1, .world_size = 2}, &ds);
    cr_assert_not_null(l, "%s", wk_last_error());
    hand_ds = wk_two_circles_new(50, 3);
    hand = wk_loader_new(hand_ds, &(wk_loader_opts){.batch_size = 8, .seed = 3, .rank = 1,
                                                    .world_size = 2, .prefetch = 2});
    cr_assert_eq(wk_loader_length(l), 4); /* 25 samples on rank 1 */
    expect_same_batches(l, hand);
    wk_loader_free(l), wk_loader_free(hand);
    wk_dataset_free(ds), wk_dataset_free(hand_ds);
    wk_config_free(cfg);
}

/* ---- optimizers ---- */

static wk_model *tiny_model(void)
{
    wk_config *cfg = parse("{\"model\": {\"type\": \"TinyNet\"}}");
    wk_cfg m = section(cfg, "model");
    wk_model *model = wk_build_model(&m, &(wk_build_ctx){.seed = 0});
    cr_assert_not_null(model, "%s", wk_last_error());
    wk_config_free(cfg);
    return model;
}

static void expect_same_optimizer(const char *json, wk_optim_type type, const wk_hparam *hp,
                                  const char *const *names)
{
    wk_model *model = tiny_model();
    wk_config *cfg = parse(json);
    wk_cfg s = section(cfg, "optimizer");
    wk_optimizer *a = wk_build_optimizer(&s, &(wk_build_ctx){.model = model});
    cr_assert_not_null(a, "%s: %s", json, wk_last_error());
    int ng;
    wk_param_group *g = wk_param_groups_from_module(model->module, false, &ng);
    wk_optimizer *b = wk_optimizer_new(type, g, ng, hp);
    wk_param_groups_free(g, ng);
    cr_assert_not_null(b, "%s", wk_last_error());
    cr_assert_str_eq(wk_optimizer_name(a), wk_optimizer_name(b));
    cr_assert_eq(wk_optimizer_num_groups(a), 1);
    cr_assert_eq(wk_optimizer_params(a, NULL, 0), 6);
    for (int i = 0; names[i]; i++) {
        double va = wk_optimizer_get_hparam(a, 0, names[i]);
        double vb = wk_optimizer_get_hparam(b, 0, names[i]);
        cr_assert(va == vb, "%s: %s = %g, by hand %g", json, names[i], va, vb);
    }
    wk_optimizer_free(a), wk_optimizer_free(b);
    wk_config_free(cfg);
    wk_model_free(model);
}

Test(registry, optimizers_equal_hand_built_ones)
{
    static const char *const sgd[] = {"lr", "momentum", "dampening", "weight_decay",
                                      "nesterov", "maximize", NULL};
    static const char *const adam[] = {"lr", "beta1", "beta2", "eps", "weight_decay",
                                       "amsgrad", "maximize", NULL};
    static const char *const rms[] = {"lr", "alpha", "eps", "weight_decay", "momentum",
                                      "centered", "maximize", NULL};
    static const char *const ada[] = {"lr", "lr_decay", "weight_decay",
                                      "initial_accumulator_value", "eps", "maximize", NULL};
    expect_same_optimizer("{\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1, \"momentum\": 0.9, "
                          "\"dampening\": 0, \"weight_decay\": 1e-4, \"nesterov\": true, "
                          "\"maximize\": false}}",
                          WK_OPTIM_SGD,
                          WK_HPARAMS({"lr", 0.1}, {"momentum", 0.9}, {"weight_decay", 1e-4},
                                     {"nesterov", 1}),
                          sgd);
    expect_same_optimizer("{\"optimizer\": {\"type\": \"Adam\", \"lr\": 0.002, \"betas\": [0.8, "
                          "0.95], \"eps\": 1e-6, \"weight_decay\": 0.1, \"amsgrad\": true, "
                          "\"maximize\": true}}",
                          WK_OPTIM_ADAM,
                          WK_HPARAMS({"lr", 0.002}, {"beta1", 0.8}, {"beta2", 0.95},
                                     {"eps", 1e-6}, {"weight_decay", 0.1}, {"amsgrad", 1},
                                     {"maximize", 1}),
                          adam);
    /* torch's defaults where the config says nothing */
    expect_same_optimizer("{\"optimizer\": {\"type\": \"AdamW\"}}", WK_OPTIM_ADAMW, NULL, adam);
    expect_same_optimizer("{\"optimizer\": {\"type\": \"AdamW\", \"lr\": 1e-3, \"betas\": [0.9, "
                          "0.999], \"eps\": 1e-8, \"weight_decay\": 0}}",
                          WK_OPTIM_ADAMW, WK_HPARAMS({"weight_decay", 0}), adam);
    expect_same_optimizer("{\"optimizer\": {\"type\": \"RMSprop\", \"lr\": 0.01, \"alpha\": 0.9, "
                          "\"eps\": 1e-7, \"weight_decay\": 0.01, \"momentum\": 0.5, "
                          "\"centered\": true}}",
                          WK_OPTIM_RMSPROP,
                          WK_HPARAMS({"alpha", 0.9}, {"eps", 1e-7}, {"weight_decay", 0.01},
                                     {"momentum", 0.5}, {"centered", 1}),
                          rms);
    expect_same_optimizer("{\"optimizer\": {\"type\": \"Adagrad\", \"lr\": 0.1, \"lr_decay\": "
                          "0.01, \"weight_decay\": 0.001, \"initial_accumulator_value\": 0.1, "
                          "\"eps\": 1e-9}}",
                          WK_OPTIM_ADAGRAD,
                          WK_HPARAMS({"lr", 0.1}, {"lr_decay", 0.01}, {"weight_decay", 0.001},
                                     {"initial_accumulator_value", 0.1}, {"eps", 1e-9}),
                          ada);
}

Test(registry, paramwise_no_decay_groups)
{
    wk_model *model = tiny_model();
    wk_config *cfg = parse("{\"optimizer\": {\"type\": \"AdamW\", \"weight_decay\": 0.05, "
                           "\"paramwise\": {\"no_decay_bias_norm\": true}}}");
    wk_cfg s = section(cfg, "optimizer");
    wk_optimizer *opt = wk_build_optimizer(&s, &(wk_build_ctx){.model = model});
    cr_assert_not_null(opt, "%s", wk_last_error());
    cr_assert_eq(wk_optimizer_num_groups(opt), 2);
    cr_assert_eq(wk_optimizer_get_hparam(opt, 0, "weight_decay"), 0.05);
    cr_assert_eq(wk_optimizer_get_hparam(opt, 1, "weight_decay"), 0);
    wk_tensor *ps[6];
    cr_assert_eq(wk_optimizer_params(opt, ps, 6), 6);
    cr_assert(ps[0] == wk_module_find(model->module, "0.weight"));
    cr_assert(ps[1] == wk_module_find(model->module, "2.weight"));
    wk_optimizer_free(opt);
    wk_config_free(cfg);
    wk_model_free(model);
}

/* ---- schedulers: the same 20 lrs as one built by hand ---- */

static wk_optimizer *sgd_on_new_param(double lr)
{
    wk_tensor *p = wk_requires_grad_(wk_zeros(WK_SHAPE(2), WK_DTYPE_F32), true);
    wk_optimizer *o = wk_sgd_new(&p, 1, WK_HPARAMS({"lr", lr}));
    cr_assert_not_null(o, "%s", wk_last_error());
    return o;
}

/* Build "scheduler" of json on a fresh optimizer; hand(opt) builds the reference. */
static void expect_same_lrs(const char *json, wk_scheduler *(*hand)(wk_optimizer *),
                            bool by_metric)
{
    wk_optimizer *oa = sgd_on_new_param(0.1), *ob = sgd_on_new_param(0.1);
    wk_config *cfg = parse(json);
    wk_cfg s = section(cfg, "scheduler");
    wk_scheduler *a = wk_build_scheduler(&s, &(wk_build_ctx){.optimizer = oa,
                                                              .steps_per_epoch = 4});
    cr_assert_not_null(a, "%s: %s", json, wk_last_error());
    wk_scheduler *b = hand(ob);
    cr_assert_not_null(b, "%s", wk_last_error());
    cr_assert_str_eq(wk_scheduler_type_name(a), wk_scheduler_type_name(b));
    cr_assert_eq(wk_scheduler_unit(a), wk_scheduler_unit(b), "%s", json);
    for (int k = 0; k <= 20; k++) {
        double la = wk_scheduler_get_lr(a, 0), lb = wk_scheduler_get_lr(b, 0);
        cr_assert(la == lb, "%s: step %d: lr %.17g, by hand %.17g", json, k, la, lb);
        cr_assert(wk_optimizer_get_lr(oa, 0) == la);
        if (by_metric) {
            double m = k < 5 ? 1.0 - 0.1 * k : 1.0;
            cr_assert_eq(wk_scheduler_step_metric(a, m), 0, "%s", wk_last_error());
            cr_assert_eq(wk_scheduler_step_metric(b, m), 0);
        } else {
            cr_assert_eq(wk_scheduler_step(a), 0, "%s", wk_last_error());
            cr_assert_eq(wk_scheduler_step(b), 0);
        }
    }
    wk_scheduler_free(a), wk_scheduler_free(b);
    wk_optimizer_free(oa), wk_optimizer_free(ob);
    wk_config_free(cfg);
}

static wk_scheduler *h_step(wk_optimizer *o) { return wk_step_lr_new(o, 3, 0.5); }
static wk_scheduler *h_multistep(wk_optimizer *o)
{
    return wk_multistep_lr_new(o, (int64_t[]){2, 5, 9}, 3, 0.3);
}
static wk_scheduler *h_exp(wk_optimizer *o) { return wk_exponential_lr_new(o, 0.9); }
static wk_scheduler *h_cos(wk_optimizer *o) { return wk_cosine_lr_new(o, 12, 1e-4); }
static wk_scheduler *h_linear(wk_optimizer *o) { return wk_linear_lr_new(o, 0.25, 0.75, 8); }
static wk_scheduler *h_linear_default(wk_optimizer *o)
{
    return wk_linear_lr_new(o, 1.0 / 3, 1.0, 5);
}
static wk_scheduler *h_constant(wk_optimizer *o) { return wk_constant_lr_new(o, 0.5, 4); }
static wk_scheduler *h_poly(wk_optimizer *o) { return wk_polynomial_lr_new(o, 15, 2.0); }
static wk_scheduler *h_onecycle(wk_optimizer *o)
{
    wk_onecycle_opts x = wk_onecycle_opts_default();
    x.max_lr = 1.0;
    x.total_steps = 25;
    x.pct_start = 0.4;
    x.anneal_strategy = "linear";
    x.div_factor = 10;
    x.final_div_factor = 100;
    x.three_phase = true;
    return wk_onecycle_lr_new(o, &x);
}
static wk_scheduler *h_onecycle_epochs(wk_optimizer *o)
{
    wk_onecycle_opts x = wk_onecycle_opts_default();
    x.max_lr = 0.5;
    x.epochs = 6;
    x.steps_per_epoch = 4;
    return wk_onecycle_lr_new(o, &x);
}
static wk_scheduler *h_restarts(wk_optimizer *o)
{
    return wk_cosine_restarts_lr_new(o, 3, 2, 0.01);
}
static wk_scheduler *h_plateau(wk_optimizer *o)
{
    wk_plateau_opts x = wk_plateau_opts_default();
    x.mode = "min";
    x.factor = 0.5;
    x.patience = 2;
    x.threshold = 0.01;
    x.threshold_mode = "abs";
    x.cooldown = 1;
    x.min_lr = 0.01;
    return wk_plateau_new(o, &x);
}
static wk_scheduler *h_sequential(wk_optimizer *o)
{
    wk_scheduler *s[] = {wk_linear_lr_new(o, 0.1, 1.0, 4), wk_cosine_lr_new(o, 10, 0)};
    return wk_sequential_lr_new(s, 2, (int64_t[]){4}, 1);
}
static wk_scheduler *h_chained(wk_optimizer *o)
{
    wk_scheduler *s[] = {wk_step_lr_new(o, 5, 0.5), wk_exponential_lr_new(o, 0.95)};
    return wk_chained_lr_new(s, 2);
}
static wk_scheduler *h_qwarmup(wk_optimizer *o)
{
    wk_qwarmup_opts x = wk_qwarmup_opts_default();
    x.warmup_steps = 10;
    x.warmup_factor = 0.1;
    return wk_qwarmup_new(wk_cosine_lr_new(o, 100, 1e-5), &x);
}
static wk_scheduler *h_qwarmup_epochs(wk_optimizer *o)
{
    wk_qwarmup_opts x = wk_qwarmup_opts_default();
    x.warmup_epochs = 2;
    x.steps_per_epoch = 4;
    x.warmup_factor = 0;
    return wk_qwarmup_new(wk_step_lr_new(o, 2, 0.5), &x);
}
static wk_scheduler *h_step_by_epoch(wk_optimizer *o)
{
    wk_scheduler *s = wk_step_lr_new(o, 3, 0.5);
    cr_assert_eq(wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH), 0);
    return s;
}

Test(registry, schedulers_equal_hand_built_ones)
{
    struct {
        const char *json;
        wk_scheduler *(*hand)(wk_optimizer *);
        bool metric;
    } cases[] = {
        {"{\"type\": \"StepLR\", \"step_size\": 3, \"gamma\": 0.5}", h_step, false},
        {"{\"type\": \"StepLR\", \"step_size\": 3, \"gamma\": 0.5, \"by_epoch\": true}",
         h_step_by_epoch, false},
        {"{\"type\": \"MultiStepLR\", \"milestones\": [2, 5, 9], \"gamma\": 0.3}", h_multistep,
         false},
        {"{\"type\": \"ExponentialLR\", \"gamma\": 0.9}", h_exp, false},
        {"{\"type\": \"CosineAnnealingLR\", \"T_max\": 12, \"eta_min\": 1e-4}", h_cos, false},
        {"{\"type\": \"LinearLR\", \"start_factor\": 0.25, \"end_factor\": 0.75, "
         "\"total_iters\": 8}", h_linear, false},
        {"{\"type\": \"LinearLR\"}", h_linear_default, false},
        {"{\"type\": \"ConstantLR\", \"factor\": 0.5, \"total_iters\": 4}", h_constant, false},
        {"{\"type\": \"PolynomialLR\", \"total_iters\": 15, \"power\": 2}", h_poly, false},
        {"{\"type\": \"OneCycleLR\", \"max_lr\": 1.0, \"total_steps\": 25, \"pct_start\": 0.4, "
         "\"anneal_strategy\": \"linear\", \"div_factor\": 10, \"final_div_factor\": 100, "
         "\"three_phase\": true}", h_onecycle, false},
        {"{\"type\": \"OneCycleLR\", \"max_lr\": [0.5], \"epochs\": 6}", h_onecycle_epochs,
         false},
        {"{\"type\": \"CosineAnnealingWarmRestarts\", \"T_0\": 3, \"T_mult\": 2, \"eta_min\": "
         "0.01}", h_restarts, false},
        {"{\"type\": \"ReduceLROnPlateau\", \"mode\": \"min\", \"factor\": 0.5, \"patience\": 2, "
         "\"threshold\": 0.01, \"threshold_mode\": \"abs\", \"cooldown\": 1, \"min_lr\": 0.01}",
         h_plateau, true},
        {"{\"type\": \"SequentialLR\", \"schedulers\": [{\"type\": \"LinearLR\", "
         "\"start_factor\": 0.1, \"end_factor\": 1.0, \"total_iters\": 4}, {\"type\": "
         "\"CosineAnnealingLR\", \"T_max\": 10}], \"milestones\": [4]}", h_sequential, false},
        {"{\"type\": \"ChainedScheduler\", \"schedulers\": [{\"type\": \"StepLR\", "
         "\"step_size\": 5, \"gamma\": 0.5}, {\"type\": \"ExponentialLR\", \"gamma\": 0.95}]}",
         h_chained, false},
        {"{\"type\": \"qWarmupScheduler\", \"warmup_steps\": 10, \"warmup_factor\": 0.1, "
         "\"main\": {\"type\": \"CosineAnnealingLR\", \"T_max\": 100, \"eta_min\": 1e-5}}",
         h_qwarmup, false},
        {"{\"type\": \"qWarmupScheduler\", \"warmup_epochs\": 2, \"warmup_factor\": 0, "
         "\"step_on\": \"optimizer_step\", \"main\": {\"type\": \"StepLR\", \"step_size\": 2, "
         "\"gamma\": 0.5}}", h_qwarmup_epochs, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char json[1024];
        snprintf(json, sizeof json, "{\"scheduler\": %s}", cases[i].json);
        expect_same_lrs(json, cases[i].hand, cases[i].metric);
    }
}

/* ---- metrics ---- */

static void expect_same_results(wk_metric *a, wk_metric *b)
{
    cr_assert_not_null(a, "%s", wk_last_error());
    cr_assert_str_eq(a->type, b->type);
    cr_assert_eq(a->nstate, b->nstate);
    wk_batch batch = {0};
    wk_batch_set(&batch, "labels", tu_i64(WK_SHAPE(4), 0, 1, 2, 1));
    wk_batch_set(&batch, "targets", tu_f32(WK_SHAPE(4, 1), 1, 2, 3, 4));
    wk_model_output out = {0};
    wk_model_output_set(&out, "logits", tu_f32(WK_SHAPE(4, 3), 0.9, 0.1, 0, 0.2, 0.3, 0.5, 0.1,
                                               0.6, 0.3, 0.4, 0.4, 0.2));
    wk_model_output_set(&out, "preds", tu_f32(WK_SHAPE(4, 1), 1.5, 2, 2, 4));
    wk_model_output_set(&out, "loss", tu_f32(WK_SHAPE(1), 0.7));
    if (strcmp(a->type, "ConfusionMatrix") == 0) {
        out.count = 0;
        wk_model_output_set(&out, "logits", tu_f32(WK_SHAPE(4, 3), 0.9, 0.1, 0, 0.2, 0.3, 0.5,
                                                   0.1, 0.6, 0.3, 0.4, 0.4, 0.2));
    }
    cr_assert_eq(wk_metric_process(a, &batch, &out), 0, "%s", wk_last_error());
    cr_assert_eq(wk_metric_process(b, &batch, &out), 0, "%s", wk_last_error());
    wk_metric_results ra = {0}, rb = {0};
    cr_assert_eq(wk_metric_compute(a, &ra), 0);
    cr_assert_eq(wk_metric_compute(b, &rb), 0);
    cr_assert_eq(ra.count, rb.count);
    cr_assert_gt(ra.count, 0);
    for (int i = 0; i < ra.count; i++) {
        cr_assert_str_eq(ra.names[i], rb.names[i]);
        cr_assert(ra.values[i] == rb.values[i] || (isnan(ra.values[i]) && isnan(rb.values[i])),
                  "%s", ra.names[i]);
    }
    wk_metric_free(a), wk_metric_free(b);
}

static wk_metric *metric_of(wk_config *cfg, int i)
{
    wk_cfg root = wk_config_root(cfg), item;
    cr_assert_eq(wk_cfg_item(&root, "val_evaluator", i, &item), 0);
    return wk_build_metric(&item, NULL);
}

Test(registry, metrics_equal_hand_built_ones)
{
    wk_config *cfg = parse("{\"val_evaluator\": [{\"type\": \"Accuracy\", \"topk\": [1, 2]}, "
                           "{\"type\": \"Accuracy\", \"topk\": 2}, {\"type\": \"Accuracy\"}, "
                           "{\"type\": \"Loss\"}, {\"type\": \"MSE\"}, {\"type\": "
                           "\"ConfusionMatrix\", \"num_classes\": 3}]}");
    expect_same_results(metric_of(cfg, 0), wk_accuracy_new((int[]){1, 2}, 2));
    expect_same_results(metric_of(cfg, 1), wk_accuracy_new((int[]){2}, 1));
    expect_same_results(metric_of(cfg, 2), wk_accuracy_new((int[]){1}, 1));
    expect_same_results(metric_of(cfg, 3), wk_loss_metric_new());
    expect_same_results(metric_of(cfg, 4), wk_mse_new());
    expect_same_results(metric_of(cfg, 5), wk_confusion_matrix_new(3));
    wk_cfg root = wk_config_root(cfg);
    wk_evaluator *ev = wk_build_evaluator(&root, "val_evaluator", NULL);
    cr_assert_not_null(ev, "%s", wk_last_error());
    wk_evaluator_free(ev);
    wk_config_free(cfg);
}

/* ---- models ---- */

static wk_model *build_model_json(const char *json)
{
    wk_config *cfg = parse(json);
    wk_cfg m = section(cfg, "model");
    wk_model *model = wk_build_model(&m, &(wk_build_ctx){.seed = 0});
    cr_assert_not_null(model, "%s", wk_last_error());
    wk_config_free(cfg);
    return model;
}

Test(registry, built_in_models)
{
    wk_model *m = build_model_json("{\"model\": {\"type\": \"MLP\", \"in_features\": 784, "
                                "\"hidden\": [500], \"out_features\": 10, \"activation\": "
                                "\"relu\", \"init_std\": 0.01}}");
    cr_assert_eq(wk_module_num_parameters(m->module), 397510);
    wk_model_free(m);
    m = build_model_json("{\"model\": {\"type\": \"FashionMNISTCNN\", \"init_std\": 0.01}}");
    cr_assert_eq(wk_module_num_parameters(m->module), 9098); /* 80 + 1168 + 7850 */
    wk_model_free(m);
    m = build_model_json("{\"model\": {\"type\": \"GPT\", \"vocab_size\": 256, \"block_size\": 128, "
                      "\"n_layer\": 4, \"n_head\": 4, \"n_embd\": 128, \"init_std\": 0.02}}");
    cr_assert_eq(wk_module_num_parameters(m->module), 842496);
    wk_model_free(m);
    m = build_model_json("{\"model\": {\"type\": \"ResNet\", \"in_channels\": 1, \"num_classes\": "
                      "10, \"width\": 8, \"stages\": 2, \"blocks\": 1}}");
    cr_assert_gt(wk_module_num_parameters(m->module), 0);
    wk_model_free(m);
}

/* ---- broken configs: the exact messages ---- */

/* Load broken.json (and apply set), check the sections and build every section but the
 * runner, as the Runner does; returns every problem, with the temp dir removed. */
static const char *build_all(const char *json, const char *set)
{
    static char out[8192];
    write_file("broken.json", json);
    wk_clear_error();
    wk_config *cfg = wk_config_load(tmp_path("broken.json"));
    if (!cfg) {
        snprintf(out, sizeof out, "%s", strip_dir(wk_last_error()));
        return out;
    }
    if (set && wk_config_set(cfg, set) < 0) {
        snprintf(out, sizeof out, "%s", strip_dir(wk_last_error()));
        wk_config_free(cfg);
        return out;
    }
    wk_config_check_sections(cfg);
    wk_cfg root = wk_config_root(cfg), s;
    wk_build_ctx ctx = {.seed = 0, .steps_per_epoch = 10};
    wk_model *model = NULL;
    if (wk_cfg_object(&root, "model", &s) == 1) model = wk_build_model(&s, &ctx);
    ctx.model = model;
    static const char *const loaders[] = {"train_dataloader", "val_dataloader",
                                          "test_dataloader"};
    for (int i = 0; i < 3; i++) {
        if (wk_cfg_object(&root, loaders[i], &s) != 1) continue;
        wk_dataset *ds = NULL;
        wk_loader *l = wk_build_loader(&s, &ctx, &ds);
        wk_loader_free(l);
        wk_dataset_free(ds);
    }
    wk_optimizer *opt = NULL;
    if (wk_cfg_object(&root, "optimizer", &s) == 1 && model)
        opt = wk_build_optimizer(&s, &ctx);
    ctx.optimizer = opt;
    if (wk_cfg_object(&root, "scheduler", &s) == 1 && opt)
        wk_scheduler_free(wk_build_scheduler(&s, &ctx));
    static const char *const evals[] = {"val_evaluator", "test_evaluator"};
    for (int i = 0; i < 2; i++)
        if (wk_cfg_has(&root, evals[i]))
            wk_evaluator_free(wk_build_evaluator(&root, evals[i], &ctx));
    int64_t count = 0;
    wk_build_hooks(&root, "hooks", NULL, &count);
    snprintf(out, sizeof out, "%s", strip_dir(wk_config_errors(cfg)));
    wk_optimizer_free(opt);
    wk_model_free(model);
    wk_config_free(cfg);
    return out;
}

#define MODEL "{\"model\": {\"type\": \"TinyNet\"}, "

Test(registry, broken_configs)
{
    struct {
        const char *json, *set, *expected;
    } cases[] = {
        /* types */
        {"{\"model\": {\"type\": \"TinyNett\"}}", NULL,
         "broken.json: model.type: unknown model type 'TinyNett'; did you mean 'TinyNet'? "
         "(registered: FailingNet, FashionMNISTCNN, GPT, MLP, ResNet, TinyNet)"},
        {"{\"model\": {\"type\": \"Transformer\"}}", NULL,
         "broken.json: model.type: unknown model type 'Transformer' (registered: FailingNet, "
         "FashionMNISTCNN, GPT, MLP, ResNet, TinyNet)"},
        {"{\"model\": {\"in\": 2}}", NULL,
         "broken.json: model.type: missing (the model to build: FailingNet, FashionMNISTCNN, "
         "GPT, MLP, ResNet, TinyNet)"},
        {"{\"model\": {\"type\": 3}}", NULL,
         "broken.json: model.type: expected a type name (a string), got the number 3"},
        {"{\"model\": 3}", NULL, "broken.json: model: expected an object, got the number 3"},
        {MODEL "\"val_evaluator\": [{\"type\": \"Accuracy\"}, {\"type\": \"Acuracy\"}]}", NULL,
         "broken.json: val_evaluator.1.type: unknown metric type 'Acuracy'; did you mean "
         "'Accuracy'? (registered: Accuracy, ConfusionMatrix, Loss, MSE)"},
        {MODEL "\"optimizer\": {\"type\": \"adamw\"}}", NULL,
         "broken.json: optimizer.type: unknown optimizer type 'adamw'; did you mean 'AdamW'? "
         "(registered: Adagrad, Adam, AdamW, RMSprop, SGD)"},
        {MODEL "\"hooks\": [{\"type\": \"CountHok\"}]}", NULL,
         "broken.json: hooks.0.type: unknown hook type 'CountHok'; did you mean 'CountHook'? "
         "(registered: CountHook)"},
        /* keys */
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"lrr\": 0.1}}", NULL,
         "broken.json: optimizer.lrr: unknown key; did you mean 'lr'? (Adam accepts type, lr, "
         "betas, eps, weight_decay, amsgrad, maximize, paramwise)"},
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"momentum\": 0.9}}", NULL,
         "broken.json: optimizer.momentum: unknown key (Adam accepts type, lr, betas, eps, "
         "weight_decay, amsgrad, maximize, paramwise)"},
        {"{\"model\": {\"type\": \"TinyNet\", \"hiden\": 8}}", NULL,
         "broken.json: model.hiden: unknown key; did you mean 'hidden'? (TinyNet accepts "
         "type, in, hidden, out)"},
        {"{\"modle\": {\"type\": \"TinyNet\"}}", NULL,
         "broken.json: modle: unknown section; did you mean 'model'? (sections: model, "
         "train_dataloader, val_dataloader, test_dataloader, val_evaluator, test_evaluator, "
         "optimizer, scheduler, runner, hooks)"},
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 10}, "
         "\"batch_size\": 4, \"num_workers\": 2}}", NULL,
         "broken.json: train_dataloader.num_workers: unknown key (a data loader accepts "
         "batch_size, shuffle, drop_last, prefetch, seed, dataset)"},
        {MODEL "\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1}, \"scheduler\": {\"type\": "
         "\"qWarmupScheduler\", \"warmup_steps\": 5, \"main\": {\"type\": \"CosineAnnealingLR\","
         " \"T_maxx\": 10}}}", NULL,
         "broken.json: scheduler.main.T_max: missing (CosineAnnealingLR needs it)\n"
         "broken.json: scheduler.main.T_maxx: unknown key; did you mean 'T_max'? "
         "(CosineAnnealingLR accepts type, T_max, eta_min)"},
        {MODEL "\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1}, \"scheduler\": {\"type\": "
         "\"SequentialLR\", \"milestones\": [3], \"schedulers\": [{\"type\": \"StepLR\", "
         "\"step_size\": 2, \"by_epoch\": true}, {\"type\": \"ExponentialLR\", \"gamma\": 0.9}]}}",
         NULL,
         "broken.json: scheduler.schedulers.0.by_epoch: only the outermost scheduler sets "
         "by_epoch"},
        /* types of values */
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"lr\": \"fast\"}}", NULL,
         "broken.json: optimizer.lr: expected a number, got the string \"fast\""},
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"lr\": 0.1}}", "optimizer.lr=fast",
         "--set: optimizer.lr: expected a number, got the string \"fast\""},
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"betas\": [0.9]}}", NULL,
         "broken.json: optimizer.betas: expected a list of 2 numbers [beta1, beta2], got 1"},
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 10}, "
         "\"batch_size\": 2.5, \"shuffle\": 1}}", NULL,
         "broken.json: train_dataloader.batch_size: expected an integer, got the number 2.5\n"
         "broken.json: train_dataloader.shuffle: expected true or false, got the number 1"},
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"FashionMNIST\", \"subset\": "
         "\"vall\", \"data_root\": \"/nonexistent\"}, \"batch_size\": 4}}", NULL,
         "broken.json: train_dataloader.dataset.subset: expected one of \"train\", \"val\", got "
         "the string \"vall\"; did you mean \"val\"?"},
        {"{\"train_dataloader\": {\"dataset\": [], \"batch_size\": 4}}", NULL,
         "broken.json: train_dataloader.dataset: expected an object, got a list of 0 items"},
        {MODEL "\"val_evaluator\": 3}", NULL,
         "broken.json: val_evaluator: expected an object or a list of objects, got the number "
         "3"},
        {MODEL "\"val_evaluator\": [{\"type\": \"Accuracy\"}, 1]}", NULL,
         "broken.json: val_evaluator.1: expected an object, got the number 1"},
        /* values out of range, as the constructors report them */
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"lr\": -0.1}}", NULL,
         "broken.json: optimizer.lr: adam: lr = -0.1 is out of range (expected lr >= 0)"},
        {MODEL "\"optimizer\": {\"type\": \"Adam\", \"betas\": [0.9, 1]}}", NULL,
         "broken.json: optimizer.betas: adam: beta2 = 1 is out of range (expected 0 <= beta2 "
         "< 1)"},
        {MODEL "\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1}, \"scheduler\": {\"type\": "
         "\"StepLR\", \"step_size\": 0}}", NULL,
         "broken.json: scheduler.step_size: StepLR: step_size must be >= 1, got 0"},
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 0}, "
         "\"batch_size\": 0}}", NULL,
         "broken.json: train_dataloader.batch_size: must be >= 1, got 0\n"
         "broken.json: train_dataloader.dataset.size: must be >= 1, got 0"},
        {"{\"model\": {\"type\": \"FailingNet\", \"depth\": 3}}", NULL,
         "broken.json: model.depth: FailingNet: depth = 3 is not supported"},
        {"{\"model\": {\"type\": \"MLP\", \"in_features\": 2, \"out_features\": 2, "
         "\"dropout\": 1.5, \"activation\": \"rellu\"}}", NULL,
         "broken.json: model.activation: expected one of \"relu\", \"gelu\", \"tanh\", "
         "\"sigmoid\", \"silu\", got the string \"rellu\"; did you mean \"relu\"?\n"
         "broken.json: model.dropout: must be in [0, 1], got 1.5"},
        /* missing keys */
        {MODEL "\"optimizer\": {\"type\": \"SGD\", \"momentum\": 0.9}}", NULL,
         "broken.json: optimizer.lr: missing (SGD needs it)"},
        {"{\"train_dataloader\": {\"shuffle\": true}}", NULL,
         "broken.json: train_dataloader.batch_size: missing (a data loader needs it)\n"
         "broken.json: train_dataloader.dataset: missing (a data loader needs it)"},
        {"{\"model\": {\"type\": \"MLP\", \"hidden\": [4]}}", NULL,
         "broken.json: model.in_features: missing (MLP needs it)\n"
         "broken.json: model.out_features: missing (MLP needs it)"},
        {MODEL "\"val_evaluator\": [{\"type\": \"ConfusionMatrix\"}]}", NULL,
         "broken.json: val_evaluator.0.num_classes: missing (ConfusionMatrix needs it)"},
        {MODEL "\"val_evaluator\": []}", NULL,
         "broken.json: val_evaluator: expected at least one metric, got an empty list"},
        /* transforms */
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 10, "
         "\"pipeline\": [{\"type\": \"Normalize\", \"mean\": 0.5, \"std\": 0.2}]}, "
         "\"batch_size\": 4}}", NULL,
         "broken.json: train_dataloader.dataset.pipeline.0: Normalize cannot be applied to "
         "TwoCircles (it has no image options)"},
        {"{\"train_dataloader\": {\"dataset\": {\"type\": \"FashionMNIST\", \"pipeline\": "
         "[{\"type\": \"Normalise\", \"mean\": 0.5}]}, \"batch_size\": 4}}", NULL,
         "broken.json: train_dataloader.dataset.pipeline.0.type: unknown transform type "
         "'Normalise'; did you mean 'Normalize'? (registered: Normalize, RandomCrop, "
         "RandomHorizontalFlip, ToTensor)"},
        /* several problems in several sections, all at once */
        {"{\"model\": {\"type\": \"TinyNet\", \"in\": \"two\"}, \"optimizer\": {\"type\": "
         "\"Adamm\"}, \"val_evaluator\": {\"type\": \"Accuracy\", \"topk\": [0]}, \"runer\": "
         "{}}", NULL,
         "broken.json: runer: unknown section; did you mean 'runner'? (sections: model, "
         "train_dataloader, val_dataloader, test_dataloader, val_evaluator, test_evaluator, "
         "optimizer, scheduler, runner, hooks)\n"
         "broken.json: model.in: expected an integer, got the string \"two\"\n"
         "broken.json: val_evaluator.topk: every k must be >= 1, got 0"},
        /* files */
        {"{\"_base_\": \"missing.json\"}", NULL,
         "broken.json: _base_: cannot open missing.json (missing.json): No such file or "
         "directory"},
        {"{\"_base_\": {\"file\": \"a.json\"}}", NULL,
         "broken.json: _base_: expected a file name or a list of file names, got an object"},
        {"{\"model\": {\"type\": \"MLP\",}}", NULL,
         "broken.json:1:27: invalid JSON near \"}\""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *got = build_all(cases[i].json, cases[i].set);
        cr_expect_str_eq(got, cases[i].expected, "case %zu: %s\n got: %s", i, cases[i].json, got);
    }
}

Test(registry, bad_views_and_sections)
{
    wk_config *cfg = parse("{\"model\": 3, \"optimizer\": {\"type\": \"SGD\", \"lr\": 1}}");
    wk_cfg root = wk_config_root(cfg), s;
    cr_assert_eq(wk_cfg_object(&root, "model", &s), -1);
    cr_assert_null(wk_build_model(&s, NULL));
    cr_assert_str_eq(wk_last_error(), "t.json: model: expected an object, got the number 3\n"
                                      "t.json: model: missing (a model: {\"type\": ...})");
    wk_config_clear_errors(cfg);
    /* an optimizer needs a model */
    s = section(cfg, "optimizer");
    cr_assert_null(wk_build_optimizer(&s, NULL));
    cr_assert_str_eq(wk_last_error(), "t.json: optimizer: SGD needs the model whose "
                                      "parameters it updates (wk_build_ctx.model is NULL)");
    wk_config_free(cfg);
}

/* The base's file is named for a key it set. */
Test(registry, messages_name_the_file_of_the_key)
{
    write_file("base.json", "{\"model\": {\"type\": \"TinyNet\"}, \"optimizer\": {\"type\": "
                            "\"Adam\", \"lr\": -1}}");
    const char *got = build_all("{\"_base_\": \"base.json\", \"optimizer\": {\"eps\": \"x\"}}",
                                NULL);
    cr_assert_str_eq(got, "broken.json: optimizer.eps: expected a number, got the string \"x\"");
    got = build_all("{\"_base_\": \"base.json\"}", NULL);
    cr_assert_str_eq(got, "base.json: optimizer.lr: adam: lr = -1 is out of range (expected "
                          "lr >= 0)");
}

/* ---- the files in configs/ ---- */

Test(registry, every_config_file_builds)
{
    glob_t g;
    cr_assert_eq(glob(WK_CONFIGS_DIR "/*.json", 0, NULL, &g), 0, "no configs in %s",
                 WK_CONFIGS_DIR);
    cr_assert_geq(g.gl_pathc, 4);
    bool have_fmnist = access(FMNIST_DIR, R_OK) == 0;
    for (size_t f = 0; f < g.gl_pathc; f++) {
        const char *path = g.gl_pathv[f];
        wk_config *cfg = wk_config_load(path);
        cr_assert_not_null(cfg, "%s", wk_last_error());
        cr_assert_eq(wk_config_check_sections(cfg), 0, "%s", wk_last_error());
        char *text = wk_config_to_string(cfg);
        bool uses_fmnist = strstr(text, "\"FashionMNIST\"") != NULL;
        free(text);
        wk_cfg root = wk_config_root(cfg), s;
        wk_build_ctx ctx = {.seed = 0, .steps_per_epoch = 57};
        wk_model *model = NULL;
        cr_assert_eq(wk_cfg_object(&root, "model", &s), 1, "%s: no model", path);
        model = wk_build_model(&s, &ctx);
        bool stub = !model && strstr(wk_last_error(), "not built yet");
        cr_assert(model || stub, "%s: %s", path, wk_last_error());
        if (stub) {
            wk_config_clear_errors(cfg);
            model = tiny_model(); /* stands in for the optimizer */
        }
        ctx.model = model;
        static const char *const loaders[] = {"train_dataloader", "val_dataloader",
                                              "test_dataloader"};
        for (int i = 0; i < 3; i++) {
            if (wk_cfg_object(&root, loaders[i], &s) != 1) continue;
            if (uses_fmnist && !have_fmnist) continue;
            wk_dataset *ds;
            wk_loader *l = wk_build_loader(&s, &ctx, &ds);
            cr_assert_not_null(l, "%s: %s", path, wk_last_error());
            wk_batch b;
            wk_frame_begin();
            cr_assert_eq(wk_loader_next(l, &b), 1, "%s", wk_last_error());
            wk_frame_end();
            wk_loader_free(l);
            wk_dataset_free(ds);
        }
        s = section(cfg, "optimizer");
        wk_optimizer *opt = wk_build_optimizer(&s, &ctx);
        cr_assert_not_null(opt, "%s: %s", path, wk_last_error());
        ctx.optimizer = opt;
        if (wk_cfg_object(&root, "scheduler", &s) == 1) {
            wk_scheduler *sch = wk_build_scheduler(&s, &ctx);
            cr_assert_not_null(sch, "%s: %s", path, wk_last_error());
            wk_scheduler_free(sch);
        }
        static const char *const evals[] = {"val_evaluator", "test_evaluator"};
        for (int i = 0; i < 2; i++) {
            if (!wk_cfg_has(&root, evals[i])) continue;
            wk_evaluator *ev = wk_build_evaluator(&root, evals[i], &ctx);
            cr_assert_not_null(ev, "%s: %s", path, wk_last_error());
            wk_evaluator_free(ev);
        }
        cr_assert(wk_cfg_has(&root, "runner"), "%s: no runner section", path);
        wk_optimizer_free(opt);
        wk_model_free(model);
        wk_config_free(cfg);
    }
    globfree(&g);
}

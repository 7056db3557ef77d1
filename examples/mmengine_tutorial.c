/* MMEngine's "15 minutes to get started" in C: every piece written by the user, then
 * handed to the Runner.
 *
 *   MMEngine (Python)                       here
 *   class MMResNet50(BaseModel)             a small CNN + shapes_forward (LOSS / PREDICT)
 *   CIFAR10 + transforms                    a synthetic "shapes" image set (a wk_dataset)
 *                                           with per-epoch noise as the augmentation
 *   class Accuracy(BaseMetric)              my_accuracy: reset / process / compute
 *   Runner(optim_wrapper, param_scheduler,  wk_runner_new: SGD with momentum, MultiStepLR
 *          train_cfg, val_cfg, default_hooks, per epoch, evaluation every epoch, a
 *          custom_hooks)                    checkpoint every epoch (newest 2 kept, plus
 *                                           best and last), a hook at on_eval_end
 *   runner.train()                          wk_runner_run
 *
 * Images are 1x16x16: a stroke (horizontal, vertical, diagonal or anti-diagonal: the four
 * classes) of random length and place, plus Gaussian noise. The program trains 5 epochs
 * in a temporary work dir (removed at the end; `./mmengine_tutorial DIR` keeps DIR), and
 * exits 0 only when the final validation accuracy is at least 94% (a model that guesses
 * gets 25%) and the checkpoints the options ask for are on disk.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* nftw */
#endif
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wick.h"

#define SIDE 16
#define NCLASSES 4
#define MIN_ACCURACY 94.0

/* ---- the dataset (MMEngine: torchvision's CIFAR10 with its transforms) ---- */

/* A counter-based generator: a sample depends only on (seed, epoch, index), as the
 * dataset contract asks, so the loader may prefetch on a thread and resume anywhere. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

typedef struct {
    uint64_t s;
} rng;

static uint64_t rng_next(rng *r) { return mix(r->s += 0x9e3779b97f4a7c15ull); }
static double rng_uniform(rng *r) { return (double)(rng_next(r) >> 11) * 0x1p-53; }
static int rng_int(rng *r, int n) { return (int)(rng_uniform(r) * n); }
static double rng_normal(rng *r)
{
    double u = rng_uniform(r), v = rng_uniform(r);
    return sqrt(-2.0 * log(1.0 - u)) * cos(2.0 * M_PI * v);
}

typedef struct {
    int64_t size;
    uint64_t seed;
    double noise;          /* std of the Gaussian noise */
    bool fresh_noise;      /* new noise every epoch (training) or fixed (validation) */
} shapes_cfg;

static int64_t shapes_length(const wk_dataset *ds)
{
    return ((const shapes_cfg *)ds->self)->size;
}

/* rows[0]: the image (1, SIDE, SIDE) float32; rows[1]: the label, int64. */
static int shapes_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    const shapes_cfg *c = ds->self;
    if (index < 0 || index >= c->size) {
        wk_set_error("Shapes: sample %lld is out of range (%lld samples)", (long long)index,
                     (long long)c->size);
        return -1;
    }
    float *img = rows[0];
    int64_t *label = rows[1];
    rng shape = {mix(c->seed) ^ mix((uint64_t)index + 1)};
    rng noise = {mix(c->seed + 1) ^ mix((uint64_t)index + 1) ^
                 mix(0x51ed27ull + (uint64_t)(c->fresh_noise ? epoch : 0))};
    int cls = rng_int(&shape, NCLASSES);
    int len = 5 + rng_int(&shape, 8);                 /* 5..12 pixels */
    int r0 = rng_int(&shape, SIDE - len + 1), c0 = rng_int(&shape, SIDE - len + 1);
    int fixed = rng_int(&shape, SIDE);                /* the row / column of a bar */
    for (int i = 0; i < SIDE * SIDE; i++) img[i] = (float)(c->noise * rng_normal(&noise));
    for (int k = 0; k < len; k++) {
        int y = 0, x = 0;
        switch (cls) {
        case 0: y = fixed, x = c0 + k; break;                 /* horizontal */
        case 1: y = r0 + k, x = fixed; break;                 /* vertical */
        case 2: y = r0 + k, x = c0 + k; break;                /* diagonal \ */
        default: y = r0 + k, x = c0 + len - 1 - k; break;     /* anti-diagonal / */
        }
        img[y * SIDE + x] += 1.0f;
    }
    *label = cls;
    return 0;
}

static void shapes_destroy(wk_dataset *ds)
{
    free(ds->self);
    free(ds);
}

static wk_dataset *shapes_new(int64_t size, uint64_t seed, double noise, bool fresh_noise)
{
    wk_dataset *ds = calloc(1, sizeof *ds);
    shapes_cfg *c = calloc(1, sizeof *c);
    if (!ds || !c) {
        free(ds), free(c);
        wk_set_error("Shapes: out of memory");
        return NULL;
    }
    *c = (shapes_cfg){.size = size, .seed = seed, .noise = noise, .fresh_noise = fresh_noise};
    ds->type = "Shapes";
    ds->self = c;
    ds->nfields = 2;
    ds->fields[0] = (wk_field){.name = "inputs", .dtype = WK_DTYPE_F32, .ndim = 3,
                               .shape = {1, SIDE, SIDE}};
    ds->fields[1] = (wk_field){.name = "labels", .dtype = WK_DTYPE_I64, .ndim = 0};
    ds->length = shapes_length;
    ds->get = shapes_get;
    ds->destroy = shapes_destroy;
    return ds;
}

/* ---- the model (MMEngine: class MMResNet50(BaseModel) with forward(imgs, labels, mode)) */

static int shapes_forward(wk_model *m, const wk_batch *b, wk_forward_mode mode,
                          wk_model_output *out)
{
    wk_tensor *labels = mode == WK_MODE_TENSOR ? NULL : wk_batch_get(b, "labels");
    wk_tensor *logits = wk_module_forward(m->module, wk_batch_get(b, "inputs"));
    if (mode == WK_MODE_LOSS) {
        /* return {'loss': F.cross_entropy(x, labels)} */
        return wk_model_output_set(out, "loss", wk_cross_entropy(logits, labels, NULL));
    }
    if (wk_model_output_set(out, "logits", logits)) return -1;
    /* return x, labels: what the metric's process() receives */
    return mode == WK_MODE_PREDICT ? wk_model_output_set(out, "labels", labels) : 0;
}

static wk_model *shapes_model_new(wk_generator *g)
{
    const wk_conv2d_opts pad1 = {.padding = {1, 1}};
    const wk_pool2d_opts pool2 = {.kernel = {2, 2}};
    wk_module *net = wk_sequential_of(
        (wk_module *[]){wk_conv2d_new(1, 8, 3, 3, &pad1, true, g), wk_relu_new(),
                        wk_max_pool2d_new(&pool2),                       /* 8x8 */
                        wk_conv2d_new(8, 16, 3, 3, &pad1, true, g), wk_relu_new(),
                        wk_max_pool2d_new(&pool2),                       /* 4x4 */
                        wk_flatten_new(1, -1), wk_linear_new(16 * 4 * 4, NCLASSES, true, g)},
        8);
    return net ? wk_model_new(net, shapes_forward, NULL, NULL) : NULL;
}

/* ---- the metric (MMEngine: class Accuracy(BaseMetric)) ---- */

/* state[0]: correct predictions, state[1]: samples. Sums, so that the states of several
 * ranks can be added before compute (MMEngine's collect_results). */
static void my_accuracy_reset(wk_metric *m) { m->state[0] = m->state[1] = 0; }

/* results.append({'batch_size': len(gt), 'correct': (score.argmax(dim=1) == gt).sum()}) */
static int my_accuracy_process(wk_metric *m, const wk_batch *b, const wk_model_output *out)
{
    (void)b;
    wk_tensor *logits = wk_model_output_get(out, "logits");
    wk_tensor *labels = wk_model_output_get(out, "labels");
    wk_tensor *pred = logits ? wk_argmax(logits, 1, false) : NULL;
    wk_tensor *gt = labels ? wk_contiguous(labels) : NULL;
    if (!pred || !gt) return -1;
    if (gt->dtype != WK_DTYPE_I64 || wk_numel(gt) != wk_numel(pred)) {
        wk_set_error("MyAccuracy: expected int64 labels, one per row of the logits");
        return -1;
    }
    const int64_t *pp = wk_data(pred), *pg = wk_data(gt);
    for (int64_t i = 0; i < wk_numel(gt); i++) m->state[0] += pp[i] == pg[i];
    m->state[1] += (double)wk_numel(gt);
    return 0;
}

/* return dict(accuracy=100 * total_correct / total_size) */
static int my_accuracy_compute(const wk_metric *m, wk_metric_results *r)
{
    return wk_metric_results_set(r, "accuracy",
                                 m->state[1] > 0 ? 100.0 * m->state[0] / m->state[1] : NAN);
}

static void my_accuracy_destroy(wk_metric *m)
{
    free(m->state);
    free(m);
}

static wk_metric *my_accuracy_new(void)
{
    wk_metric *m = calloc(1, sizeof *m);
    double *state = calloc(2, sizeof *state);
    if (!m || !state) {
        free(m), free(state);
        wk_set_error("MyAccuracy: out of memory");
        return NULL;
    }
    *m = (wk_metric){.type = "MyAccuracy", .state = state, .nstate = 2,
                     .reset = my_accuracy_reset, .process = my_accuracy_process,
                     .compute = my_accuracy_compute, .destroy = my_accuracy_destroy};
    return m;
}

/* ---- a custom hook (MMEngine: custom_hooks=[...], after_val_epoch) ---- */

typedef struct {
    double last, best;
    int evaluations;
} eval_log;

static int print_eval(wk_runner *r, const wk_runner_state *s, void *user)
{
    (void)r;
    eval_log *e = user;
    e->last = wk_metric_results_get(s->metrics, "val/accuracy");
    if (!e->evaluations++ || e->last > e->best) e->best = e->last;
    printf("[tutorial hook] epoch %lld, step %lld: val/accuracy %.2f%% (best %.2f%%)\n",
           (long long)s->epoch, (long long)s->global_step, e->last, e->best);
    return 0;
}

/* ---- the work dir ---- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(path);
}

static bool exists(const char *dir, const char *name)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

/* The regular checkpoint of a global step (docs/RUNNER.md, "Checkpoints"). */
static bool step_exists(const char *dir, int64_t step)
{
    char name[64];
    snprintf(name, sizeof name, "step_%08lld.safetensors", (long long)step);
    return exists(dir, name);
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/wick_tutorial_XXXXXX";
    const char *work_dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    if (!work_dir) {
        perror("mmengine_tutorial: mkdtemp");
        return 1;
    }
    int status = 1;
    wk_generator g = wk_generator_make(0);
    wk_dataset *train_ds = shapes_new(2000, 1, 0.4, true);
    wk_dataset *val_ds = shapes_new(500, 2, 0.4, false);
    /* train_dataloader = dict(batch_size=32, shuffle=True), val: batch_size=100 */
    wk_loader *train = train_ds ? wk_loader_new(train_ds, &(wk_loader_opts){
                                                              .batch_size = 32,
                                                              .shuffle = true,
                                                              .seed = 0,
                                                              .prefetch = 2})
                                : NULL;
    wk_loader *val = val_ds ? wk_loader_new(val_ds, &(wk_loader_opts){.batch_size = 100})
                            : NULL;
    wk_model *model = shapes_model_new(&g);

    /* optim_wrapper = dict(optimizer=dict(type=SGD, lr=0.05, momentum=0.9)) */
    wk_optimizer *opt = NULL;
    if (model) {
        int ng;
        wk_param_group *groups = wk_param_groups_from_module(model->module, false, &ng);
        if (groups)
            opt = wk_optimizer_new(WK_OPTIM_SGD, groups, ng,
                                   WK_HPARAMS({"lr", 0.05}, {"momentum", 0.9}));
        wk_param_groups_free(groups, ng);
    }
    /* param_scheduler = dict(type='MultiStepLR', by_epoch=True, milestones=[3, 4]) */
    wk_scheduler *sched = opt ? wk_multistep_lr_new(opt, (const int64_t[]){3, 4}, 2, 0.2)
                              : NULL;
    if (sched && wk_scheduler_set_unit(sched, WK_SCHED_PER_EPOCH)) {
        wk_scheduler_free(sched);
        sched = NULL;
    }
    /* val_evaluator = dict(type=Accuracy) */
    wk_metric *metric = my_accuracy_new();
    wk_evaluator *ev = metric ? wk_evaluator_new(&metric, 1) : NULL;   /* takes the metric */
    if (!train || !val || !model || !opt || !sched || !ev) {
        fprintf(stderr, "mmengine_tutorial: setup failed: %s\n", wk_last_error());
        goto done;
    }

    /* train_cfg = dict(by_epoch=True, max_epochs=5, val_interval=1),
     * default_hooks = dict(checkpoint=dict(interval=1, max_keep_ckpts=2, save_best='auto'),
     *                      logger=dict(interval=20)) */
    wk_runner_opts o = wk_runner_opts_default();
    o.run_mode = WK_RUN_EPOCH;
    o.max_epochs = 5;
    o.eval_interval = 1;
    o.save_interval = wk_loader_length(train);    /* in steps: one epoch */
    o.max_keep = 2;
    o.log_interval = 20;
    o.work_dir = work_dir;
    o.seed = 0;
    wk_runner *runner = wk_runner_new(&(wk_runner_parts){.model = model, .optimizer = opt,
                                                         .scheduler = sched,
                                                         .train_loader = train,
                                                         .val_loader = val, .evaluator = ev},
                                      &o);
    eval_log log = {0};
    /* the logger first (MMEngine's default hooks run before custom ones), then ours */
    if (!runner || !wk_runner_attach_logger(runner, NULL) ||
        wk_runner_add_hook(runner, &(wk_runner_hook){.name = "PrintEvalHook", .user = &log,
                                                     .on_eval_end = print_eval}) ||
        wk_runner_run(runner)) {
        fprintf(stderr, "mmengine_tutorial: %s\n", wk_last_error());
        wk_runner_free(runner);
        goto done;
    }

    /* one regular checkpoint per epoch, the newest two kept */
    const char *ckpt = wk_runner_checkpoint_dir(runner);
    int64_t L = wk_loader_length(train);
    bool files = exists(ckpt, "best.safetensors") && exists(ckpt, "last.safetensors") &&
                 step_exists(ckpt, 5 * L) && step_exists(ckpt, 4 * L) &&
                 !step_exists(ckpt, 3 * L);
    printf("final val/accuracy %.2f%% after %d evaluations (best %.2f%%); checkpoints in %s: "
           "%s\n",
           log.last, log.evaluations, log.best, ckpt, files ? "as expected" : "MISSING");
    wk_runner_free(runner);
    if (log.last >= MIN_ACCURACY && files) status = 0;
    else fprintf(stderr, "mmengine_tutorial: expected val/accuracy >= %.0f%% and the "
                         "checkpoints best, last and the newest 2 regular ones\n",
                 MIN_ACCURACY);

done:
    wk_evaluator_free(ev);
    wk_scheduler_free(sched);
    wk_optimizer_free(opt);
    wk_model_free(model);
    wk_loader_free(train);
    wk_loader_free(val);
    wk_dataset_free(train_ds);
    wk_dataset_free(val_ds);
    if (argc <= 1) nftw(work_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    return status;
}

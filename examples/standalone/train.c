/* A training program built outside wick's tree against an installed wick, as a user's own
 * project would be (see the Makefile next to it):
 *
 *   make                 # cc train.c $(pkg-config --cflags --libs wick) -o train
 *   ./train [WORK_DIR]   # default: a temporary folder, removed at the end
 *
 * It trains a 2-32-32-2 MLP on the two-circles set with the Runner (Adam, cosine
 * schedule with warmup, an EMA of the weights, early stopping on val/loss) and exits 0
 * only when the final validation accuracy of the raw and of the EMA model is at least
 * 88% (no rule beats about 93% on this data). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE   /* nftw */
#endif
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

#include <wick/wick.h>

#define MIN_ACCURACY 88.0

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st, (void)flag, (void)f;
    return remove(path);
}

int main(int argc, char **argv)
{
    char tmp[] = "/tmp/wick_train_XXXXXX";
    const char *work_dir = argc > 1 ? argv[1] : mkdtemp(tmp);
    if (!work_dir) {
        perror("train: mkdtemp");
        return 1;
    }
    int status = 1;
    wk_dataset *train_ds = wk_two_circles_new(1000, 0), *val_ds = wk_two_circles_new(400, 1);
    wk_loader *train = train_ds ? wk_loader_new(train_ds, &(wk_loader_opts){.batch_size = 32,
                                                                          .shuffle = true})
                                : NULL;
    wk_loader *val = val_ds ? wk_loader_new(val_ds, &(wk_loader_opts){.batch_size = 200})
                            : NULL;

    wk_generator g = wk_generator_make(0);
    const int64_t sizes[] = {2, 32, 32, 2};
    wk_model *model = wk_classifier_new(wk_mlp_new(&(wk_mlp_opts){.sizes = sizes,
                                                                  .nsizes = 4}, &g));
    wk_optimizer *opt = NULL;
    if (model) {
        int ng;
        wk_param_group *groups = wk_param_groups_from_module(model->module, false, &ng);
        if (groups) opt = wk_optimizer_new(WK_OPTIM_ADAM, groups, ng, WK_HPARAMS({"lr", 1e-2}));
        wk_param_groups_free(groups, ng);
    }
    wk_qwarmup_opts w = wk_qwarmup_opts_default();
    w.warmup_steps = 10;
    wk_scheduler *sched = opt ? wk_qwarmup_new(wk_cosine_lr_new(opt, 640, 1e-4), &w) : NULL;
    wk_metric *ms[] = {wk_accuracy_new(NULL, 0), wk_loss_metric_new()};
    wk_evaluator *ev = wk_evaluator_new(ms, 2);
    if (!train || !val || !model || !opt || !sched || !ev) {
        fprintf(stderr, "train: setup failed: %s\n", wk_last_error());
        goto done;
    }

    wk_runner_opts o = wk_runner_opts_default();
    o.max_epochs = 20;
    o.work_dir = work_dir;
    o.use_ema = true;
    o.ema_decay = 0.9;
    o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 3, .min_delta = 1e-3};
    o.log_interval = 32;
    wk_runner *r = wk_runner_new(&(wk_runner_parts){.model = model, .optimizer = opt,
                                                    .scheduler = sched, .train_loader = train,
                                                    .val_loader = val, .evaluator = ev},
                                 &o);
    if (!r || wk_runner_run(r)) {
        fprintf(stderr, "train: %s\n", wk_last_error());
        wk_runner_free(r);
        goto done;
    }
    const wk_runner_state *s = wk_runner_get_state(r);
    double acc = wk_metric_results_get(s->metrics, "val/accuracy");
    double ema = wk_metric_results_get(s->metrics, "val_ema/accuracy");
    printf("stopped by %s at epoch %lld (step %lld): val/accuracy %.2f%%, "
           "val_ema/accuracy %.2f%%\n",
           wk_stop_reason_name(wk_runner_stop_reason(r)), (long long)s->epoch,
           (long long)s->global_step, acc, ema);
    wk_runner_free(r);
    if (acc >= MIN_ACCURACY && ema >= MIN_ACCURACY) status = 0;
    else fprintf(stderr, "train: expected both accuracies >= %.0f%%\n", MIN_ACCURACY);

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

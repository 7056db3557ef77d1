/* A training process for the resume tests (tests/e2e/test_resume.c): the Runner over the
 * fixture with everything that carries state across a resume (shuffling with prefetch,
 * dropout, Adam, a warmup+cosine scheduler, accumulation, clipping, EMA, mid-epoch
 * checkpoints). Every micro-batch's loss goes to LOSSES as "micro_step hexfloat"; at the
 * end the model and its EMA weights go to OUT.model.safetensors / OUT.ema.safetensors.
 *
 *   runner_worker WORK_DIR LOSSES OUT [--stop-at STEP] [--resume] [--save-interval N]
 *                 [--epochs N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runner_fixture.h"

typedef struct {
    FILE *losses;
    int64_t stop_at;
} worker;

static int on_batch_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    worker *w = u;
    fprintf(w->losses, "%lld %a\n", (long long)s->micro_step, s->loss);
    fflush(w->losses);
    if (s->updated && w->stop_at && s->global_step == w->stop_at) wk_runner_request_stop(r);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: runner_worker WORK_DIR LOSSES OUT [--stop-at STEP] [--resume] "
                        "[--save-interval N] [--epochs N]\n");
        return 2;
    }
    worker w = {0};
    wk_runner_opts o = wk_runner_opts_default();
    o.work_dir = argv[1];
    o.max_epochs = 4;
    o.save_interval = 3;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--stop-at") && i + 1 < argc) w.stop_at = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--resume")) o.resume = "auto";
        else if (!strcmp(argv[i], "--save-interval") && i + 1 < argc)
            o.save_interval = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) o.max_epochs = atoll(argv[++i]);
        else {
            fprintf(stderr, "runner_worker: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    o.accumulate = 2;
    o.clip_max_norm = 1.0;
    o.use_ema = true;
    o.ema_decay = 0.8;
    o.early_stop = (wk_runner_watch){.target = "val/loss", .patience = 1000};
    o.quiet = true;
    fx_opts fo = fx_defaults();
    fo.dropout = true;
    fo.prefetch = 2;
    fo.adam = true;
    fo.sched = true;
    fo.lr = 0.01;
    fx_parts fx;
    if (fx_build(&fx, &fo)) {
        fprintf(stderr, "runner_worker: %s\n", wk_last_error());
        return 1;
    }
    w.losses = fopen(argv[2], "a");
    if (!w.losses) {
        perror(argv[2]);
        return 1;
    }
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = wk_runner_new(&parts, &o);
    int rc = r ? 0 : 1;
    if (!rc)
        rc = wk_runner_add_hook(r, &(wk_runner_hook){.name = "worker", .user = &w,
                                                      .on_batch_end = on_batch_end});
    if (!rc) rc = wk_runner_run(r) ? 1 : 0;
    if (!rc) {
        char p[1024];
        snprintf(p, sizeof p, "%s.model.safetensors", argv[3]);
        rc = wk_state_dict_save(fx.model->module, p, NULL, NULL, 0) ? 1 : 0;
        wk_ema *ema = wk_runner_ema(r);
        snprintf(p, sizeof p, "%s.ema.safetensors", argv[3]);
        if (!rc && (wk_ema_swap_in(ema) || wk_state_dict_save(fx.model->module, p, NULL, NULL, 0) ||
                    wk_ema_swap_out(ema)))
            rc = 1;
    }
    if (rc) fprintf(stderr, "runner_worker: %s\n", wk_last_error());
    fclose(w.losses);
    wk_runner_free(r);
    fx_free(&fx);
    return rc;
}

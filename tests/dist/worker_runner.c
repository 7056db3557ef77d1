/* The Runner under DDP (tests/dist/test_runner_ddp.c): the fixture's training with the
 * loaders sharded by rank, `distributed` on. Prints "rank R: step S reason X" at the end;
 * rank 0 writes OUT.model.safetensors, every rank OUT.rankR.model.safetensors.
 *
 *   worker_runner WORK_DIR OUT BATCH [--stop-at STEP] [--resume] [--epochs N]
 *                 [--early-stop] [--fail-at STEP] [--save-interval N]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/runner_fixture.h"

typedef struct {
    int64_t stop_at, fail_at;
    int rank;
} worker;

static int on_batch_end(wk_runner *r, const wk_runner_state *s, void *u)
{
    worker *w = u;
    if (s->updated && w->stop_at && s->global_step == w->stop_at) wk_runner_request_stop(r);
    if (s->updated && w->fail_at && s->global_step == w->fail_at && w->rank == 1) {
        wk_set_error("forced failure on rank 1 at step %lld", (long long)s->global_step);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: worker_runner WORK_DIR OUT BATCH [options]\n");
        return 2;
    }
    wk_comm *c = wk_dist_world();
    if (!c) {
        fprintf(stderr, "worker_runner: %s\n", wk_last_error());
        return 1;
    }
    worker w = {.rank = wk_comm_rank(c)};
    wk_runner_opts o = wk_runner_opts_default();
    o.work_dir = argv[1];
    o.max_epochs = 4;
    o.save_interval = 3;
    o.distributed = true;
    o.quiet = true;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--stop-at") && i + 1 < argc) w.stop_at = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--fail-at") && i + 1 < argc) w.fail_at = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--resume")) o.resume = "auto";
        else if (!strcmp(argv[i], "--epochs") && i + 1 < argc) o.max_epochs = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--save-interval") && i + 1 < argc)
            o.save_interval = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--early-stop"))
            o.early_stop = (wk_runner_watch){.target = "val/loss", .min_delta = 10,
                                             .patience = 2};
        else {
            fprintf(stderr, "worker_runner: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    o.use_ema = true;
    o.ema_decay = 0.8;
    fx_opts fo = fx_defaults();
    fo.batch = atoll(argv[3]);
    fo.adam = true;
    fo.sched = true;
    fo.lr = 0.01;
    fo.rank = wk_comm_rank(c);
    fo.world = wk_comm_size(c);
    fx_parts fx;
    int rc = fx_build(&fx, &fo) ? 1 : 0;
    wk_runner_parts parts = fx_runner_parts(&fx);
    wk_runner *r = rc ? NULL : wk_runner_new(&parts, &o);
    if (!r) rc = 1;
    if (!rc)
        rc = wk_runner_add_hook(r, &(wk_runner_hook){.name = "worker", .user = &w,
                                                      .on_batch_end = on_batch_end});
    if (!rc) rc = wk_runner_run(r) ? 1 : 0;
    if (r)
        printf("rank %d: step %lld reason %s\n", w.rank,
               (long long)wk_runner_get_state(r)->global_step,
               wk_stop_reason_name(wk_runner_stop_reason(r)));
    if (!rc) {
        char p[1024];
        snprintf(p, sizeof p, "%s.rank%d.model.safetensors", argv[2], w.rank);
        rc = wk_state_dict_save(fx.model->module, p, NULL, NULL, 0) ? 1 : 0;
        snprintf(p, sizeof p, "%s.model.safetensors", argv[2]);
        if (!rc && w.rank == 0 && wk_state_dict_save(fx.model->module, p, NULL, NULL, 0))
            rc = 1;
    }
    if (rc) fprintf(stderr, "rank %d: worker_runner: %s\n", w.rank, wk_last_error());
    wk_runner_free(r);
    fx_free(&fx);
    if (rc) return rc; /* no finalize: it would wait for ranks that already left */
    wk_dist_finalize();
    return 0;
}

/* Data-parallel training over a communicator (engine/dist.h): every rank holds the whole
 * model, takes its shard of each batch (the loader's rank/world_size), and after backward
 * the gradients are averaged across ranks in flat buckets, so every rank applies the same
 * update and the parameters stay equal.
 *
 *   wk_comm *c = wk_dist_world();
 *   wk_ddp_broadcast_module(c, net, 0);           // start from rank 0's weights and buffers
 *   int n = wk_optimizer_params(opt, NULL, 0);
 *   wk_tensor **ps = malloc(n * sizeof *ps);
 *   wk_optimizer_params(opt, ps, n);
 *   wk_ddp *ddp = wk_ddp_new(c, ps, NULL, n, NULL);   // 25 MiB buckets
 *   for (...) {
 *       wk_frame_begin();
 *       bool ok = forward_and_backward(...) == 0;      // on this rank's shard
 *       wk_frame_end();
 *       int r = wk_ddp_allreduce_grads(ddp, ok);       // every rank, also when !ok
 *       if (r != 1) { fprintf(stderr, "%s\n", wk_last_error()); break; } // all ranks
 *       wk_optimizer_step(opt);
 *       wk_optimizer_zero_grad(opt);
 *   }
 *   wk_ddp_free(ddp);
 *
 * Equivalence: with a mean loss and equal shards, the average of the ranks' gradients is
 * the gradient of the mean over the union of the shards, so W ranks with batch B/W
 * follow the same path as one process with batch B (up to float rounding). Modules with
 * batch statistics (BatchNorm in training mode) see B/W samples per rank; their running
 * statistics are kept per rank (wk_ddp_average_buffers averages them when wanted);
 * SyncBatchNorm is not provided.
 *
 * Buckets: parameters are packed, by dtype, in reverse order (the order backward
 * produces their gradients) into flat buffers of at most bucket_bytes each (a larger
 * parameter gets a bucket of its own); each bucket is one all-reduce. The reverse order
 * is what lets a later version start a bucket's all-reduce while backward still runs.
 *
 * Every function here is collective: all ranks call it, in the same order, with the
 * same structure (parameter count, shapes, dtypes, bucket size). Structures that differ
 * are detected and reported on every rank instead of corrupting the parameters.
 */
#ifndef WK_ENGINE_DDP_H
#define WK_ENGINE_DDP_H

#include "../nn/module.h"
#include "../tensor/tensor.h"
#include "dist.h"

#ifdef __cplusplus
extern "C" {
#endif

#define WK_DDP_DEFAULT_BUCKET_BYTES ((int64_t)25 << 20)

typedef struct {
    int64_t bucket_bytes;   /* cap on a bucket's bytes; 0: WK_DDP_DEFAULT_BUCKET_BYTES */
} wk_ddp_opts;

typedef struct {
    int64_t calls;          /* wk_ddp_allreduce_grads calls that reduced */
    int nbuckets;
    int64_t bytes;          /* gradient bytes reduced per call */
    double seconds;         /* total time in wk_ddp_allreduce_grads (checks, packing too) */
    double agree_seconds;   /* of which in the agreement: mostly waiting for the slowest
                             * rank to finish its backward */
    double comm_seconds;    /* of which inside the gradient all-reduces */
    double last_seconds;    /* the latest call's total */
} wk_ddp_stats;

typedef struct wk_ddp wk_ddp;

/* Data parallelism over n parameters (borrowed: they must outlive the ddp; float32 or
 * float64 CPU leaves, contiguous, none twice), optionally named (names copied; used in
 * error messages) on communicator c (borrowed; MPI or local). Collective: the ranks'
 * parameter lists are compared and a difference is an error on every rank. NULL with an
 * error. */
wk_ddp *wk_ddp_new(wk_comm *c, wk_tensor *const *params, const char *const *names, int n,
                   const wk_ddp_opts *opts);
/* The same over m's parameters (wk_module_named_parameters order, with their names). */
wk_ddp *wk_ddp_new_module(wk_comm *c, const wk_module *m, const wk_ddp_opts *opts);
/* Free the ddp (not the parameters or the communicator). NULL-safe. */
void wk_ddp_free(wk_ddp *d);

/* After backward, on every rank: first agree that every rank is fine (ok: this rank's
 * forward and backward succeeded; plus this rank's own check that each grad matches its
 * parameter's shape and dtype), then replace every grad by its average over the ranks.
 * A parameter without a grad gets a zero grad first, so all ranks reduce the same
 * buffers (torch's DDP with find_unused_parameters; the optimizer then updates it).
 * Returns 1 on every rank when the grads were averaged; 0 on every rank, grads not
 * averaged, when some rank failed (the error is "rank R failed: <its message>"); -1 when the
 * communication failed. */
int wk_ddp_allreduce_grads(wk_ddp *d, bool ok);
/* Number of buckets, and the parameter indices (into the list given to wk_ddp_new) of
 * bucket b in packing order: *count of them (borrowed array; NULL when b is out of
 * range). */
int wk_ddp_num_buckets(const wk_ddp *d);
const int *wk_ddp_bucket_params(const wk_ddp *d, int b, int *count);
/* Counters and times since wk_ddp_new. */
wk_ddp_stats wk_ddp_get_stats(const wk_ddp *d);

/* ---- modules ---- */

/* Copy root's parameters and buffers (wk_module_named_parameters order) into every
 * rank's: at the start of training, and after loading a checkpoint on one rank. The
 * ranks' modules must have the same names, shapes and dtypes: checked first; the error
 * (on every rank) names the first tensor that differs. Grads are not touched. 0, or -1
 * with an error. */
int wk_ddp_broadcast_module(wk_comm *c, wk_module *m, int root);
/* Average m's floating-point buffers (BatchNorm's running statistics) over the ranks,
 * e.g. before rank 0 evaluates or saves them; integer buffers (num_batches_tracked) are
 * left alone. Structure checked as above. 0, or -1. */
int wk_ddp_average_buffers(wk_comm *c, wk_module *m);
/* 1 on every rank when m's parameters and buffers are bitwise equal on all ranks, 0 when
 * they are not (the error then names the first tensor that differs), -1 on failure. A
 * check for tests and for chasing drift between ranks. */
int wk_ddp_module_in_sync(wk_comm *c, const wk_module *m);

#ifdef __cplusplus
}
#endif
#endif

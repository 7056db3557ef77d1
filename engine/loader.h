/* The data loader: batches from a dataset, shuffled per epoch, sharded across ranks,
 * prepared ahead on a worker thread, and resumable at any batch in O(1).
 *
 *   wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 128, .shuffle = true,
 *                                                       .seed = 0, .prefetch = 2});
 *   wk_batch b;
 *   wk_frame_begin();
 *   while (wk_loader_next(l, &b) == 1) { ... wk_batch_get(&b, "inputs") ...; }
 *   wk_frame_end();
 *
 * Order: pass e (0-based) visits the dataset in the permutation drawn from
 * (seed, e) when shuffling (torch's DistributedSampler: seed + epoch), else in index
 * order; with world_size W the order is padded by wrapping to a multiple of W and rank r
 * takes every W-th index from r, so all ranks get the same number of batches; then
 * batches of batch_size, the last one partial unless drop_last.
 * The state (pass, next batch, seed) fixes the next batch exactly: restoring it continues
 * with the batch an uninterrupted run would have produced, without replaying any.
 */
#ifndef WK_ENGINE_LOADER_H
#define WK_ENGINE_LOADER_H

#include "../nn/model.h"
#include "dataset.h"
#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int64_t batch_size;   /* > 0 */
    bool shuffle;
    bool drop_last;
    uint64_t seed;
    int rank;             /* 0 <= rank < world_size */
    int world_size;       /* 0 or 1: no sharding */
    int prefetch;         /* batches prepared ahead on a worker thread; 0 = none */
} wk_loader_opts;

typedef struct {
    int64_t epoch;        /* 0-based pass over the data */
    int64_t next_batch;   /* index within the pass of the next batch to hand out */
    uint64_t seed;
} wk_loader_state;

typedef struct wk_loader wk_loader;

/* A loader over ds (borrowed: free the loader first). NULL with an error naming the bad
 * option. */
wk_loader *wk_loader_new(wk_dataset *ds, const wk_loader_opts *opts);
/* Stop the worker and free the loader. NULL-safe. */
void wk_loader_free(wk_loader *l);
/* Batches per pass on this rank. */
int64_t wk_loader_length(const wk_loader *l);
/* The next batch of the current pass into *out (one tensor per dataset field, named as
 * the fields, registered in the caller's current frame): 1, 0 at the end of the pass,
 * -1 with an error. */
int wk_loader_next(wk_loader *l, wk_batch *out);
/* Begin pass `epoch` at its first batch. 0 or -1. */
int wk_loader_set_epoch(wk_loader *l, int64_t epoch);
/* Where the loader stands. */
wk_loader_state wk_loader_get_state(const wk_loader *l);
/* Continue exactly at a saved position. 0, or -1 (seed mismatch, batch out of range). */
int wk_loader_set_state(wk_loader *l, const wk_loader_state *s);
/* The loader as an engine data source (reset = the next pass). */
wk_data_source wk_loader_source(wk_loader *l);

#ifdef __cplusplus
}
#endif
#endif

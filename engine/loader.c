/* The data loader (see loader.h): order per pass, sharding, collation straight into batch
 * tensors, a prefetching worker thread, and an O(1) resumable position. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/creation.h"
#include "../tensor/tensor-impl.h"
#include "loader.h"

#define MAX_PREFETCH 16

typedef struct {
    int64_t epoch, index;           /* which batch this slot holds */
    uint64_t generation;
    bool ready, failed;
    wk_tensor *tensors[WK_DATASET_MAX_FIELDS];
    char error[256];
} slot;

struct wk_loader {
    wk_dataset *ds;
    wk_loader_opts o;
    int64_t n, per_rank, nbatches;
    int64_t epoch, next_batch;       /* the consumer's position */
    int64_t *order;                  /* per_rank indices of order_epoch (worker or consumer) */
    int64_t order_epoch;
    wk_batch batch;                  /* the last batch handed out (for the engine adapter) */
    /* prefetch */
    bool threaded, stop;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    slot slots[MAX_PREFETCH];
    int head, count;                 /* FIFO of prepared (or in-progress) slots */
    int64_t w_epoch, w_next;         /* what the worker prepares next */
    uint64_t generation;             /* bumped on every seek: older work is dropped */
};

static bool validate(const wk_dataset *ds, const wk_loader_opts *o)
{
    if (!ds || !ds->length || (!ds->get && !ds->get_batch) || ds->nfields < 1 ||
        ds->nfields > WK_DATASET_MAX_FIELDS) {
        wk_set_error("loader: the dataset is NULL or incomplete (length, get, 1..%d fields)",
                     WK_DATASET_MAX_FIELDS);
        return false;
    }
    if (!o || o->batch_size <= 0) {
        wk_set_error("loader: batch_size must be > 0, got %lld", o ? (long long)o->batch_size : 0LL);
        return false;
    }
    int world = o->world_size > 0 ? o->world_size : 1;
    if (o->rank < 0 || o->rank >= world) {
        wk_set_error("loader: rank %d is out of range for world_size %d", o->rank, world);
        return false;
    }
    if (o->prefetch < 0 || o->prefetch > MAX_PREFETCH) {
        wk_set_error("loader: prefetch must be 0..%d, got %d", MAX_PREFETCH, o->prefetch);
        return false;
    }
    return true;
}

/* The indices of pass `epoch` for this rank into order[]. */
static int compute_order(wk_loader *l, int64_t epoch, int64_t *order)
{
    int world = l->o.world_size > 0 ? l->o.world_size : 1;
    int64_t *full = NULL;
    wk_tensor *perm = NULL;
    if (l->o.shuffle) {
        wk_generator g = wk_generator_make(l->o.seed + (uint64_t)epoch);
        wk_frame_begin();
        perm = wk_randperm(l->n, &g);
        if (!perm) {
            wk_frame_end();
            return -1;
        }
        full = wk_data(perm);
    }
    for (int64_t i = 0; i < l->per_rank; i++) {
        int64_t j = (i * world + l->o.rank) % l->n; /* padded by wrapping around */
        order[i] = full ? full[j] : j;
    }
    if (perm) wk_frame_end();
    return 0;
}

/* Collate batch `index` of pass `epoch` into new persistent tensors. */
static int make_batch(wk_loader *l, int64_t epoch, int64_t index, int64_t *order,
                      int64_t *order_epoch, wk_tensor **out)
{
    const wk_dataset *ds = l->ds;
    if (*order_epoch != epoch) {
        if (compute_order(l, epoch, order)) return -1;
        *order_epoch = epoch;
    }
    int64_t start = index * l->o.batch_size;
    int64_t count = l->per_rank - start < l->o.batch_size ? l->per_rank - start : l->o.batch_size;
    void *bufs[WK_DATASET_MAX_FIELDS];
    for (int k = 0; k < ds->nfields; k++) {
        const wk_field *f = &ds->fields[k];
        int64_t shape[WK_MAX_DIMS + 1];
        shape[0] = count;
        memcpy(shape + 1, f->shape, (size_t)f->ndim * sizeof *shape);
        out[k] = wk_empty(shape, f->ndim + 1, f->dtype);
        if (!out[k]) goto fail;
        wki_make_persistent(out[k]);
        bufs[k] = wk_data(out[k]);
    }
    const int64_t *idx = order + start;
    if (ds->get_batch) {
        if (ds->get_batch(ds, idx, count, epoch, bufs)) goto fail;
    } else {
        for (int64_t i = 0; i < count; i++) {
            void *rows[WK_DATASET_MAX_FIELDS];
            for (int k = 0; k < ds->nfields; k++)
                rows[k] = (char *)bufs[k] + (size_t)i * wk_field_row_bytes(&ds->fields[k]);
            if (ds->get(ds, idx[i], epoch, rows)) goto fail;
        }
    }
    return 0;
fail:
    for (int k = 0; k < ds->nfields; k++) {
        wk_tensor_free(out[k]);
        out[k] = NULL;
    }
    return -1;
}

/* ---- the worker ---- */

static void free_slot(slot *s, int nfields)
{
    for (int k = 0; k < nfields; k++) {
        wk_tensor_free(s->tensors[k]);
        s->tensors[k] = NULL;
    }
    s->ready = s->failed = false;
}

static void *worker(void *arg)
{
    wk_loader *l = arg;
    int64_t *order = malloc((size_t)(l->per_rank ? l->per_rank : 1) * sizeof *order);
    int64_t order_epoch = -1;
    pthread_mutex_lock(&l->mu);
    while (!l->stop) {
        if (l->count == l->o.prefetch || l->w_next >= l->nbatches) {
            pthread_cond_wait(&l->cv, &l->mu);
            continue;
        }
        slot *s = &l->slots[(l->head + l->count) % MAX_PREFETCH];
        l->count++;
        s->epoch = l->w_epoch;
        s->index = l->w_next++;
        s->generation = l->generation;
        s->ready = s->failed = false;
        pthread_mutex_unlock(&l->mu);
        wk_tensor *t[WK_DATASET_MAX_FIELDS] = {0};
        wk_clear_error();
        int rc = order ? make_batch(l, s->epoch, s->index, order, &order_epoch, t) : -1;
        pthread_mutex_lock(&l->mu);
        if (s->generation != l->generation) { /* a seek dropped this work */
            for (int k = 0; k < l->ds->nfields; k++) wk_tensor_free(t[k]);
            continue;
        }
        memcpy(s->tensors, t, sizeof t);
        s->failed = rc != 0;
        if (s->failed)
            snprintf(s->error, sizeof s->error, "%s",
                     order ? wk_last_error() : "loader: out of memory in the worker");
        s->ready = true;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    free(order);
    return NULL;
}

/* Drop prepared batches and point the worker at (epoch, next); the lock is held. */
static void seek_locked(wk_loader *l)
{
    l->generation++;
    /* Ready batches are freed; one still being made is dropped by the worker when it
     * sees the new generation (it writes nothing into the ring then). */
    for (int i = 0; i < l->count; i++) {
        slot *s = &l->slots[(l->head + i) % MAX_PREFETCH];
        if (s->ready) free_slot(s, l->ds->nfields);
    }
    l->head = (l->head + l->count) % MAX_PREFETCH;
    l->count = 0;
    l->w_epoch = l->epoch;
    l->w_next = l->next_batch;
    pthread_cond_broadcast(&l->cv);
}

/* ---- public ---- */

wk_loader *wk_loader_new(wk_dataset *ds, const wk_loader_opts *opts)
{
    if (!validate(ds, opts)) return NULL;
    wk_loader *l = calloc(1, sizeof *l);
    if (!l) {
        wk_set_error("loader: out of memory");
        return NULL;
    }
    l->ds = ds;
    l->o = *opts;
    l->n = ds->length(ds);
    int world = opts->world_size > 0 ? opts->world_size : 1;
    if (l->n <= 0) {
        wk_set_error("loader: the %s dataset is empty", ds->type ? ds->type : "");
        free(l);
        return NULL;
    }
    l->per_rank = (l->n + world - 1) / world;
    l->nbatches = opts->drop_last ? l->per_rank / opts->batch_size
                                  : (l->per_rank + opts->batch_size - 1) / opts->batch_size;
    l->order_epoch = -1;
    l->order = malloc((size_t)l->per_rank * sizeof *l->order);
    if (!l->order) {
        wk_set_error("loader: out of memory for %lld indices", (long long)l->per_rank);
        free(l);
        return NULL;
    }
    if (opts->prefetch > 0) {
        pthread_mutex_init(&l->mu, NULL);
        pthread_cond_init(&l->cv, NULL);
        if (pthread_create(&l->thread, NULL, worker, l) != 0) {
            wk_set_error("loader: could not start the prefetch thread");
            pthread_mutex_destroy(&l->mu);
            pthread_cond_destroy(&l->cv);
            free(l->order);
            free(l);
            return NULL;
        }
        l->threaded = true;
    }
    return l;
}

void wk_loader_free(wk_loader *l)
{
    if (!l) return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        for (int i = 0; i < MAX_PREFETCH; i++)
            free_slot(&l->slots[i], l->ds->nfields);
        pthread_mutex_destroy(&l->mu);
        pthread_cond_destroy(&l->cv);
    }
    free(l->order);
    free(l);
}

int64_t wk_loader_length(const wk_loader *l) { return l ? l->nbatches : 0; }

int wk_loader_next(wk_loader *l, wk_batch *out)
{
    if (!l || !out) {
        wk_set_error("loader_next: loader or output is NULL");
        return -1;
    }
    if (l->next_batch >= l->nbatches) return 0;
    wk_tensor *t[WK_DATASET_MAX_FIELDS] = {0};
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        slot *s = NULL;
        for (;;) {
            s = l->count ? &l->slots[l->head] : NULL;
            if (s && s->ready && s->generation == l->generation) break;
            pthread_cond_wait(&l->cv, &l->mu);
        }
        bool failed = s->failed;
        if (failed) wk_set_error("%s", s->error);
        memcpy(t, s->tensors, sizeof t);
        memset(s->tensors, 0, sizeof s->tensors);
        s->ready = false;
        l->head = (l->head + 1) % MAX_PREFETCH;
        l->count--;
        /* After a failure the position stays; the worker restarts there so that a retry
         * makes the same batch again (not the one after it). */
        if (failed) seek_locked(l);
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        if (failed) return -1;
    } else if (make_batch(l, l->epoch, l->next_batch, l->order, &l->order_epoch, t)) {
        return -1;
    }
    memset(out, 0, sizeof *out);
    for (int k = 0; k < l->ds->nfields; k++) {
        wki_frame_register(t[k]); /* the caller's frame releases the batch */
        out->names[k] = l->ds->fields[k].name;
        out->tensors[k] = t[k];
    }
    out->count = l->ds->nfields;
    l->next_batch++;
    return 1;
}

static int seek(wk_loader *l, int64_t epoch, int64_t next)
{
    if (l->threaded) pthread_mutex_lock(&l->mu);
    l->epoch = epoch;
    l->next_batch = next;
    if (l->threaded) {
        seek_locked(l);
        pthread_mutex_unlock(&l->mu);
    }
    return 0;
}

int wk_loader_set_epoch(wk_loader *l, int64_t epoch)
{
    if (!l || epoch < 0) {
        wk_set_error("loader_set_epoch: loader is NULL or epoch %lld < 0", (long long)epoch);
        return -1;
    }
    return seek(l, epoch, 0);
}

wk_loader_state wk_loader_get_state(const wk_loader *l)
{
    wk_loader_state s = {0};
    if (l) {
        s.epoch = l->epoch;
        s.next_batch = l->next_batch;
        s.seed = l->o.seed;
    }
    return s;
}

int wk_loader_set_state(wk_loader *l, const wk_loader_state *s)
{
    if (!l || !s) {
        wk_set_error("loader_set_state: loader or state is NULL");
        return -1;
    }
    if (s->seed != l->o.seed) {
        wk_set_error("loader_set_state: the state was saved with seed %llu, this loader has "
                     "seed %llu",
                     (unsigned long long)s->seed, (unsigned long long)l->o.seed);
        return -1;
    }
    if (s->epoch < 0 || s->next_batch < 0 || s->next_batch > l->nbatches) {
        wk_set_error("loader_set_state: position (pass %lld, batch %lld) is out of range "
                     "(%lld batches per pass)",
                     (long long)s->epoch, (long long)s->next_batch, (long long)l->nbatches);
        return -1;
    }
    return seek(l, s->epoch, s->next_batch);
}

/* ---- engine adapter ---- */

static int source_next(void *self, const struct wk_batch **batch)
{
    wk_loader *l = self;
    int r = wk_loader_next(l, &l->batch);
    if (r == 1) *batch = &l->batch;
    return r;
}

static int source_reset(void *self)
{
    wk_loader *l = self;
    return wk_loader_set_epoch(l, l->epoch + 1);
}

static int64_t source_length(void *self) { return wk_loader_length(self); }

wk_data_source wk_loader_source(wk_loader *l)
{
    return (wk_data_source){l, source_next, source_reset, source_length};
}

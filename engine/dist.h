/* Distributed communication: a communicator over the ranks of a job, with backends for
 * MPI (host buffers, CPU tensors) and NCCL (device buffers), and the pieces a data-parallel
 * run needs around it: agreement on failure and stop, per-rank seeds, metric reduction.
 *
 *   wk_comm *c = wk_dist_world();              // MPI under mpirun/srun, else world 1
 *   int rank = wk_comm_rank(c), world = wk_comm_size(c);
 *   wk_loader_opts lo = {.batch_size = 64, .shuffle = true, .seed = seed,
 *                        .rank = rank, .world_size = world};
 *   wk_evaluator_set_reduce(ev, wk_dist_metric_reduce, c);
 *   for (...) {
 *       int ok = step(...) == 0;
 *       if (wk_dist_agree_ok(c, ok, NULL) != 1) {   // every rank learns of a failure
 *           fprintf(stderr, "%s\n", wk_last_error());  // "rank 1 failed: ..."
 *           break;
 *       }
 *   }
 *   wk_dist_finalize();                        // before a clean exit (MPI_Finalize)
 *
 * Gradient averaging, the broadcast of a model from rank 0 and the in-sync check are in
 * engine/ddp.h.
 *
 * World: wk_dist_world() initialises MPI when the process was started by a launcher
 * (mpirun/mpiexec/srun: OpenMPI's, PMI's or PMIx's environment variables) or when the
 * program has initialised MPI itself, and takes rank, world size and local rank (the rank
 * among the processes of the same node) from MPI. Otherwise, and in builds without MPI,
 * it is a local communicator of world size 1 whose collectives copy or do nothing, so the
 * same program runs without mpirun. The environment variable WK_DIST overrides the choice:
 * "mpi" initialises MPI also without a launcher (a singleton world), "local" never does.
 *
 * Collectives are blocking and must be called by every rank of the communicator in the
 * same order with the same counts, dtypes, ops and roots (as in MPI); a rank that does not
 * come leaves the others waiting. So a failure on one rank must be agreed on at a point
 * every rank reaches (wk_dist_agree_ok), or end the whole job (wk_dist_abort, or exiting
 * with a non-zero status: mpirun then ends the other ranks). Communication errors return
 * -1 with an error instead of aborting (MPI_ERRORS_RETURN on wick's communicator).
 *
 * Buffers: MPI and local communicators take host pointers, NCCL ones device pointers
 * (cudaMalloc'ed). Reductions take f32, f64, i32 and i64; broadcast and allgather any
 * dtype. WK_COMM_AVG sums and divides by the world size (integers: C division,
 * truncating toward zero).
 *
 * Seeds: wk_dist_seed derives every RNG stream from one seed. Shared streams (init,
 * shuffle) are equal on all ranks: the loader's shuffle must be, so that sharding splits
 * one permutation. Per-rank streams (dropout, augment) differ between ranks, so ranks do
 * not draw the same masks for different samples; rank 0's equal a single process's, so a
 * one-rank job reproduces a plain run. Augmentations keyed by (seed, epoch, sample index),
 * as the built-in datasets do, need no per-rank stream: a sample is augmented alike
 * whichever rank takes it.
 */
#ifndef WK_ENGINE_DIST_H
#define WK_ENGINE_DIST_H

#include <stdbool.h>
#include <stdint.h>

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_comm wk_comm;

typedef enum {
    WK_COMM_BACKEND_LOCAL,  /* one process, no communication */
    WK_COMM_BACKEND_MPI,    /* host buffers */
    WK_COMM_BACKEND_NCCL,   /* CUDA device buffers */
    WK_COMM_BACKEND_COUNT
} wk_comm_backend;

typedef enum {
    WK_COMM_SUM,
    WK_COMM_AVG,
    WK_COMM_MAX,
    WK_COMM_MIN,
    WK_COMM_OP_COUNT
} wk_comm_op;

/* ---- the world ---- */

/* The process's communicator over all ranks of the job (see "World" above), made on the
 * first call. Borrowed: it lives until wk_dist_finalize. NULL with an error when MPI fails
 * to initialise. */
wk_comm *wk_dist_world(void);
/* True when a launcher's environment says this process is one rank of a parallel job. */
bool wk_dist_launched(void);
/* True in builds with MPI support (WK_HAVE_MPI). */
bool wk_dist_have_mpi(void);
/* Free the world communicator and, when wick initialised MPI, call MPI_Finalize (a
 * collective: every rank calls it, after its last collective). MPI cannot be initialised
 * again afterwards: a later wk_dist_world fails. 0, or -1 with an error. */
int wk_dist_finalize(void);
/* End every rank of the job now: print "wick: rank R: <message>; aborting all ranks" to
 * stderr, then MPI_Abort with `code` (a local communicator or NULL: exit(code)). For
 * failures that cannot wait for an agreement point. */
void wk_dist_abort(wk_comm *c, int code, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 3, 4)));

/* ---- the communicator ---- */

/* This process's rank (0 when c is NULL). */
int wk_comm_rank(const wk_comm *c);
/* Number of ranks (1 when c is NULL). */
int wk_comm_size(const wk_comm *c);
/* Rank among the ranks on this node (for choosing a GPU), and their number. */
int wk_comm_local_rank(const wk_comm *c);
int wk_comm_local_size(const wk_comm *c);
/* The backend, and its name: "local", "mpi", "nccl". */
wk_comm_backend wk_comm_get_backend(const wk_comm *c);
const char *wk_comm_backend_name(wk_comm_backend b);
/* "sum", "avg", "max", "min" ("?" if invalid). */
const char *wk_comm_op_name(wk_comm_op op);

/* Free a communicator made by a wk_comm_*_new function (not the world). NULL-safe. */
void wk_comm_free(wk_comm *c);

/* In place: buf (count elements) becomes the element-wise reduction over all ranks.
 * 0, or -1 with an error (bad dtype for a reduction, count < 0, NULL buffer, MPI/NCCL
 * failure). */
int wk_comm_allreduce(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, wk_comm_op op);
/* Copy root's buf (count elements) into every rank's buf. 0, or -1 (root out of range). */
int wk_comm_broadcast(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root);
/* Every rank's `count` elements of send, in rank order, into recv (size * count elements
 * on every rank). send may be recv + rank * count (in place). 0, or -1. */
int wk_comm_allgather(wk_comm *c, const void *send, void *recv, int64_t count,
                      wk_dtype dtype);
/* Return once every rank has called it. 0, or -1. */
int wk_comm_barrier(wk_comm *c);

/* Non-blocking all-reduce, so that reductions of gradient buckets can overlap the rest of
 * backward: start it, keep buf untouched, then wk_comm_wait. A request is owned by the
 * caller until wk_comm_wait, which frees it (also on failure). Requests of one
 * communicator complete in the order they were started on every rank. 0 with *req set,
 * or -1 with an error (*req NULL). */
typedef struct wk_comm_request wk_comm_request;
int wk_comm_allreduce_start(wk_comm *c, void *buf, int64_t count, wk_dtype dtype,
                            wk_comm_op op, wk_comm_request **req);
/* Wait for a started all-reduce and free the request. 0, or -1 with an error. NULL-safe. */
int wk_comm_wait(wk_comm_request *req);

/* ---- tensors (CPU, MPI or local communicators) ---- */

/* In place over t's elements (any layout without overlap: non-contiguous tensors go
 * through a contiguous copy). 0, or -1 with an error (NULL or non-CPU tensor). */
int wk_comm_allreduce_tensor(wk_comm *c, wk_tensor *t, wk_comm_op op);
/* t becomes root's t (shapes and dtypes must agree across ranks). 0, or -1. */
int wk_comm_broadcast_tensor(wk_comm *c, wk_tensor *t, int root);
/* A new tensor (current frame) of shape (world, *t.shape): row r is rank r's t. NULL with
 * an error. */
wk_tensor *wk_comm_allgather_tensor(wk_comm *c, const wk_tensor *t);

/* ---- agreement ---- */

/* Every rank says whether its part of a step went well; returns 1 on every rank when all
 * did, 0 on every rank when any did not: *failed_rank (may be NULL) = the lowest failing
 * rank, and wk_last_error() on every rank is "rank R failed: <R's wk_last_error()>". -1
 * when the communication itself failed. Costs one all-reduce of an int when all is well. */
int wk_dist_agree_ok(wk_comm *c, bool ok, int *failed_rank);
/* Logical or of `flag` over the ranks (e.g. a stop request from a signal or an early-stop
 * decision taken on rank 0): 1 or 0 on every rank, -1 on failure. */
int wk_dist_agree_any(wk_comm *c, bool flag);

/* ---- metrics ---- */

/* A wk_state_reduce_fn (engine/metric.h) summing metric states over the ranks of the
 * communicator passed as `comm`: wk_evaluator_set_reduce(ev, wk_dist_metric_reduce, c).
 * Every rank must evaluate the same number of metrics. Note: the loader pads the last
 * shard by wrapping (as torch's DistributedSampler), so with a dataset size not divisible
 * by the world size a few samples are counted twice. 0 or -1. */
int wk_dist_metric_reduce(double *state, int n, void *comm);

/* ---- seeds ---- */

typedef enum {
    WK_SEED_INIT,      /* shared: parameter initialisation */
    WK_SEED_SHUFFLE,   /* shared: the loader's order (must agree for sharding) */
    WK_SEED_DROPOUT,   /* per rank */
    WK_SEED_AUGMENT,   /* per rank: augmentations drawn from a running stream */
    WK_SEED_COUNT
} wk_seed_stream;

/* The seed of `stream` on `rank`, from the run's one seed:
 *   shared streams:   s = splitmix(splitmix(seed) ^ stream)      (wk_generator_split)
 *   per-rank streams: splitmix(splitmix(s) ^ rank)
 * i.e. wk_generator_split(&(wk_generator){seed}, stream).seed, split again by rank for
 * per-rank streams. Rank 0 of any world gets what a single process (rank 0) gets. */
uint64_t wk_dist_seed(uint64_t seed, wk_seed_stream stream, int rank);
/* True for the streams that differ per rank (dropout, augment). */
bool wk_seed_stream_per_rank(wk_seed_stream stream);

/* ---- NCCL ---- */

/* A NCCL communicator over the ranks of `boot` (any communicator, usually the world; its
 * rank and size are taken, and rank 0's NCCL unique id is broadcast over it) on CUDA
 * device `device` (-1: local rank modulo the number of devices). Collective over boot.
 * Buffers passed to it are device pointers; calls return when the operation has
 * completed on the device. Free with wk_comm_free. NULL with an error (built without
 * NCCL, no GPU, NCCL failure). */
wk_comm *wk_comm_nccl_new(wk_comm *boot, int device);
/* True in builds with NCCL (WK_HAVE_NCCL). */
bool wk_dist_have_nccl(void);

#ifdef __cplusplus
}
#endif
#endif

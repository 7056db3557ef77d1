/* Internal: the communicator's backend table, shared by engine/dist.c (front-end, local
 * backend), engine/dist_mpi.c and cuda/nccl.c. Not installed. */
#ifndef WK_ENGINE_DIST_IMPL_H
#define WK_ENGINE_DIST_IMPL_H

#include "dist.h"

/* One backend's collectives. The front-end has validated the arguments (dtype allowed for
 * the op, count >= 0, buffers non-NULL when count > 0, root in range) and handles
 * count == 0 and world size 1 for host communicators before calling them. */
typedef struct {
    int (*allreduce)(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, wk_comm_op op);
    int (*broadcast)(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root);
    int (*allgather)(wk_comm *c, const void *send, void *recv, int64_t count,
                     wk_dtype dtype);
    int (*barrier)(wk_comm *c);
    /* start req's all-reduce (req->impl is the backend's), and complete it */
    int (*allreduce_start)(wk_comm *c, wk_comm_request *req);
    int (*wait)(wk_comm_request *req);
    void (*destroy)(wk_comm *c);
} wki_comm_ops;

struct wk_comm {
    const wki_comm_ops *ops;
    wk_comm_backend backend;
    int rank, size, local_rank, local_size;
    bool is_world;   /* owned by the library: wk_comm_free refuses it */
    void *impl;
};

struct wk_comm_request {
    wk_comm *comm;
    void *buf;
    int64_t count;
    wk_dtype dtype;
    wk_comm_op op;
    void *impl;
};

/* MPI backend (engine/dist_mpi.c, built with WK_HAVE_MPI). */
/* Initialise MPI if needed (*initialised_here tells whether wick did) and make the world
 * communicator over a duplicate of MPI_COMM_WORLD. NULL with an error. */
wk_comm *wki_comm_mpi_world(bool *initialised_here);
/* MPI_Finalize (after the world communicator was destroyed). 0 or -1. */
int wki_mpi_finalize(void);
/* True when MPI is initialised and not finalised. */
bool wki_mpi_active(void);
/* MPI_Abort on MPI_COMM_WORLD. */
void wki_mpi_abort(int code) __attribute__((noreturn));

/* NCCL backend (cuda/nccl.c, built with WK_HAVE_NCCL). */
wk_comm *wki_comm_nccl_new(wk_comm *boot, int device);

/* Helpers of the front-end shared with the backends. */
wk_comm *wki_comm_alloc(const wki_comm_ops *ops, wk_comm_backend backend, int rank, int size);
/* buf[i] /= divisor for count elements of a reducible dtype (AVG after a SUM). */
void wki_divide(void *buf, int64_t count, wk_dtype dtype, int divisor);

#endif

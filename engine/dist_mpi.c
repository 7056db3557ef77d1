/* The MPI backend: host buffers over a duplicate of MPI_COMM_WORLD that returns errors
 * instead of aborting. Built only with MPI (WK_HAVE_MPI). */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <mpi.h>

#include "../tensor/tensor.h"
#include "dist-impl.h"

/* MPI counts are ints: longer buffers go in chunks of this many elements. */
#define CHUNK ((int64_t)1 << 28)

typedef struct {
    MPI_Comm comm;
} mpi_impl;

/* One pending all-reduce: the chunks' requests. */
typedef struct {
    int n;
    MPI_Request reqs[];
} mpi_request;

static MPI_Comm comm_of(const wk_comm *c) { return ((const mpi_impl *)c->impl)->comm; }

static int fail(const char *op, int code)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) len = 0;
    text[len] = '\0';
    wk_set_error("%s: MPI error %d: %s", op, code, len ? text : "(no description)");
    return -1;
}

static MPI_Datatype mpi_type(wk_dtype dtype)
{
    switch (dtype) {
    case WK_DTYPE_F32: return MPI_FLOAT;
    case WK_DTYPE_F64: return MPI_DOUBLE;
    case WK_DTYPE_I32: return MPI_INT32_T;
    case WK_DTYPE_I64: return MPI_INT64_T;
    default: return MPI_DATATYPE_NULL; /* moved as bytes */
    }
}

/* A buffer as (MPI type, element count, element size): dtypes MPI has no type for travel
 * as bytes (broadcast and allgather only). */
static MPI_Datatype as_mpi(wk_dtype dtype, int64_t *count, size_t *elem)
{
    MPI_Datatype t = mpi_type(dtype);
    *elem = wk_dtype_size(dtype);
    if (t != MPI_DATATYPE_NULL) return t;
    *count *= (int64_t)*elem;
    *elem = 1;
    return MPI_BYTE;
}

static MPI_Op mpi_op(wk_comm_op op)
{
    switch (op) {
    case WK_COMM_MAX: return MPI_MAX;
    case WK_COMM_MIN: return MPI_MIN;
    default: return MPI_SUM; /* AVG: sum, then divide */
    }
}

static int mpi_allreduce(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, wk_comm_op op)
{
    size_t elem = wk_dtype_size(dtype);
    for (int64_t at = 0; at < count; at += CHUNK) {
        int n = (int)(count - at < CHUNK ? count - at : CHUNK);
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + at * (int64_t)elem, n,
                               mpi_type(dtype), mpi_op(op), comm_of(c));
        if (rc != MPI_SUCCESS) return fail("comm_allreduce", rc);
    }
    if (op == WK_COMM_AVG) wki_divide(buf, count, dtype, c->size);
    return 0;
}

static int mpi_broadcast(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root)
{
    size_t elem;
    MPI_Datatype t = as_mpi(dtype, &count, &elem);
    for (int64_t at = 0; at < count; at += CHUNK) {
        int n = (int)(count - at < CHUNK ? count - at : CHUNK);
        int rc = MPI_Bcast((char *)buf + at * (int64_t)elem, n, t, root, comm_of(c));
        if (rc != MPI_SUCCESS) return fail("comm_broadcast", rc);
    }
    return 0;
}

static int mpi_allgather(wk_comm *c, const void *send, void *recv, int64_t count,
                         wk_dtype dtype)
{
    size_t elem;
    MPI_Datatype t = as_mpi(dtype, &count, &elem);
    size_t bytes = (size_t)count * elem;
    if (count > INT_MAX) {
        /* a chunked allgather would interleave the ranks' pieces; one per rank instead */
        char *out = recv;
        if (send != out + (size_t)c->rank * bytes)
            memmove(out + (size_t)c->rank * bytes, send, bytes);
        for (int r = 0; r < c->size; r++)
            if (mpi_broadcast(c, out + (size_t)r * bytes, count, elem == 1 ? WK_DTYPE_U8
                                                                             : dtype, r) < 0)
                return -1;
        return 0;
    }
    bool in_place = send == (const char *)recv + (size_t)c->rank * bytes;
    int rc = MPI_Allgather(in_place ? MPI_IN_PLACE : send, (int)count, t, recv, (int)count, t,
                           comm_of(c));
    return rc == MPI_SUCCESS ? 0 : fail("comm_allgather", rc);
}

static int mpi_barrier(wk_comm *c)
{
    int rc = MPI_Barrier(comm_of(c));
    return rc == MPI_SUCCESS ? 0 : fail("comm_barrier", rc);
}

static int mpi_start(wk_comm *c, wk_comm_request *req)
{
    int n = (int)((req->count + CHUNK - 1) / CHUNK);
    mpi_request *r = malloc(sizeof *r + (size_t)n * sizeof r->reqs[0]);
    if (!r) {
        wk_set_error("comm_allreduce_start: out of memory");
        return -1;
    }
    r->n = 0;
    req->impl = r;
    size_t elem = wk_dtype_size(req->dtype);
    for (int64_t at = 0; at < req->count; at += CHUNK) {
        int k = (int)(req->count - at < CHUNK ? req->count - at : CHUNK);
        int rc = MPI_Iallreduce(MPI_IN_PLACE, (char *)req->buf + at * (int64_t)elem, k,
                                mpi_type(req->dtype), mpi_op(req->op), comm_of(c),
                                &r->reqs[r->n]);
        if (rc != MPI_SUCCESS) {
            MPI_Waitall(r->n, r->reqs, MPI_STATUSES_IGNORE);
            return fail("comm_allreduce_start", rc);
        }
        r->n++;
    }
    return 0;
}

static int mpi_wait(wk_comm_request *req)
{
    mpi_request *r = req->impl;
    int rc = MPI_Waitall(r->n, r->reqs, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS) return fail("comm_wait", rc);
    if (req->op == WK_COMM_AVG) wki_divide(req->buf, req->count, req->dtype, req->comm->size);
    return 0;
}

static void mpi_destroy(wk_comm *c)
{
    mpi_impl *m = c->impl;
    if (m && wki_mpi_active()) MPI_Comm_free(&m->comm);
    free(m);
    c->impl = NULL;
}

static const wki_comm_ops mpi_ops = {
    mpi_allreduce, mpi_broadcast, mpi_allgather, mpi_barrier, mpi_start, mpi_wait, mpi_destroy,
};

bool wki_mpi_active(void)
{
    int init = 0, fini = 0;
    MPI_Initialized(&init);
    MPI_Finalized(&fini);
    return init && !fini;
}

wk_comm *wki_comm_mpi_world(bool *initialised_here)
{
    *initialised_here = false;
    int fini = 0;
    MPI_Finalized(&fini);
    if (fini) {
        wk_set_error("dist_world: MPI was already finalised");
        return NULL;
    }
    if (!wki_mpi_active()) {
        /* serialized: any one thread may communicate at a time (the Runner's thread,
         * later a thread reducing gradient buckets while backward runs) */
        int provided = 0;
        int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (rc != MPI_SUCCESS) {
            wk_set_error("dist_world: MPI_Init_thread failed (error %d)", rc);
            return NULL;
        }
        *initialised_here = true;
    }
    mpi_impl *m = calloc(1, sizeof *m);
    if (!m) {
        wk_set_error("dist_world: out of memory");
        return NULL;
    }
    int rc = MPI_Comm_dup(MPI_COMM_WORLD, &m->comm);
    if (rc != MPI_SUCCESS) {
        free(m);
        fail("dist_world", rc);
        return NULL;
    }
    MPI_Comm_set_errhandler(m->comm, MPI_ERRORS_RETURN);
    int rank = 0, size = 1, local_rank = 0, local_size = 1;
    MPI_Comm_rank(m->comm, &rank);
    MPI_Comm_size(m->comm, &size);
    MPI_Comm node;
    if (MPI_Comm_split_type(m->comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &local_rank);
        MPI_Comm_size(node, &local_size);
        MPI_Comm_free(&node);
    }
    wk_comm *c = wki_comm_alloc(&mpi_ops, WK_COMM_BACKEND_MPI, rank, size);
    if (!c) {
        MPI_Comm_free(&m->comm);
        free(m);
        return NULL;
    }
    c->local_rank = local_rank;
    c->local_size = local_size;
    c->impl = m;
    return c;
}

int wki_mpi_finalize(void)
{
    if (!wki_mpi_active()) return 0;
    int rc = MPI_Finalize();
    return rc == MPI_SUCCESS ? 0 : fail("dist_finalize", rc);
}

void wki_mpi_abort(int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code); /* MPI_Abort does not return; keep the compiler sure of it */
}

/* The communicator's front-end (argument checks, tensors, agreement, seeds, metric
 * reduction), the world communicator's lifetime, and the local backend (world size 1).
 * The MPI backend is dist_mpi.c, the NCCL one cuda/nccl.c. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/random.h"
#include "../tensor/tensor-impl.h"
#include "dist-impl.h"

static wk_comm *world;
static bool mpi_initialised_here;
static bool world_finalised;

/* ---- helpers shared with the backends ---- */

wk_comm *wki_comm_alloc(const wki_comm_ops *ops, wk_comm_backend backend, int rank, int size)
{
    wk_comm *c = calloc(1, sizeof *c);
    if (!c) {
        wk_set_error("dist: out of memory for a communicator");
        return NULL;
    }
    c->ops = ops;
    c->backend = backend;
    c->rank = rank;
    c->size = size;
    c->local_rank = rank;
    c->local_size = size;
    return c;
}

void wki_divide(void *buf, int64_t count, wk_dtype dtype, int divisor)
{
    switch (dtype) {
    case WK_DTYPE_F32: {
        float *p = buf;
        for (int64_t i = 0; i < count; i++) p[i] /= (float)divisor;
        break;
    }
    case WK_DTYPE_F64: {
        double *p = buf;
        for (int64_t i = 0; i < count; i++) p[i] /= (double)divisor;
        break;
    }
    case WK_DTYPE_I32: {
        int32_t *p = buf;
        for (int64_t i = 0; i < count; i++) p[i] /= divisor;
        break;
    }
    case WK_DTYPE_I64: {
        int64_t *p = buf;
        for (int64_t i = 0; i < count; i++) p[i] /= divisor;
        break;
    }
    default:
        break;
    }
}

/* ---- the local backend: one rank, nothing to exchange ---- */

static int local_allreduce(wk_comm *c, void *buf, int64_t count, wk_dtype dtype,
                           wk_comm_op op)
{
    (void)c, (void)buf, (void)count, (void)dtype, (void)op;
    return 0;
}

static int local_broadcast(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root)
{
    (void)c, (void)buf, (void)count, (void)dtype, (void)root;
    return 0;
}

static int local_allgather(wk_comm *c, const void *send, void *recv, int64_t count,
                           wk_dtype dtype)
{
    (void)c;
    if (send != recv) memmove(recv, send, (size_t)count * wk_dtype_size(dtype));
    return 0;
}

static int local_barrier(wk_comm *c)
{
    (void)c;
    return 0;
}

static int local_start(wk_comm *c, wk_comm_request *req)
{
    (void)c, (void)req;
    return 0;
}

static int local_wait(wk_comm_request *req)
{
    (void)req;
    return 0;
}

static void local_destroy(wk_comm *c) { (void)c; }

static const wki_comm_ops local_ops = {
    local_allreduce, local_broadcast, local_allgather, local_barrier,
    local_start,     local_wait,      local_destroy,
};

/* ---- the world ---- */

bool wk_dist_have_mpi(void)
{
#ifdef WK_HAVE_MPI
    return true;
#else
    return false;
#endif
}

bool wk_dist_have_nccl(void)
{
#ifdef WK_HAVE_NCCL
    return true;
#else
    return false;
#endif
}

bool wk_dist_launched(void)
{
    /* OpenMPI's mpirun, PMIx (OpenMPI 5, srun --mpi=pmix), PMI-1/2 (MPICH's hydra,
     * srun --mpi=pmi2), MVAPICH */
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK",
                                       "PMI_SIZE", "MV2_COMM_WORLD_SIZE"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

static bool want_mpi(void)
{
    const char *force = getenv("WK_DIST");
    if (force && !strcmp(force, "local")) return false;
    if (force && !strcmp(force, "mpi")) return true;
#ifdef WK_HAVE_MPI
    if (wki_mpi_active()) return true;
#endif
    return wk_dist_launched();
}

wk_comm *wk_dist_world(void)
{
    if (world) return world;
    if (world_finalised) {
        wk_set_error("dist_world: the world communicator was finalised (MPI cannot be "
                     "initialised twice in a process)");
        return NULL;
    }
    const char *force = getenv("WK_DIST");
    if (force && *force && strcmp(force, "local") && strcmp(force, "mpi")) {
        wk_set_error("dist_world: WK_DIST=%s is not a backend (expected \"mpi\" or "
                     "\"local\")", force);
        return NULL;
    }
    wk_comm *c = NULL;
    if (want_mpi()) {
#ifdef WK_HAVE_MPI
        c = wki_comm_mpi_world(&mpi_initialised_here);
        if (!c) return NULL;
#else
        if (force && !strcmp(force, "mpi")) {
            wk_set_error("dist_world: WK_DIST=mpi, but wick was built without MPI "
                         "(install libopenmpi-dev and reconfigure)");
            return NULL;
        }
        /* launched by mpirun without MPI support: each process would think it is alone
         * and train on its own, silently; better to say so */
        wk_set_error("dist_world: started by a parallel launcher, but wick was built "
                     "without MPI (install libopenmpi-dev and reconfigure, or run "
                     "without mpirun; WK_DIST=local forces a single-process world)");
        return NULL;
#endif
    } else {
        c = wki_comm_alloc(&local_ops, WK_COMM_BACKEND_LOCAL, 0, 1);
        if (!c) return NULL;
    }
    c->is_world = true;
    world = c;
    return world;
}

int wk_dist_finalize(void)
{
    if (!world) return 0;
    world->ops->destroy(world);
    free(world);
    world = NULL;
    world_finalised = true;
#ifdef WK_HAVE_MPI
    if (mpi_initialised_here) return wki_mpi_finalize();
#endif
    return 0;
}

void wk_dist_abort(wk_comm *c, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "wick: rank %d: %s; aborting all ranks\n", wk_comm_rank(c), msg);
    fflush(stderr);
    if (code == 0) code = 1;
#ifdef WK_HAVE_MPI
    if (wki_mpi_active()) wki_mpi_abort(code);
#endif
    exit(code);
}

/* ---- the communicator ---- */

int wk_comm_rank(const wk_comm *c) { return c ? c->rank : 0; }
int wk_comm_size(const wk_comm *c) { return c ? c->size : 1; }
int wk_comm_local_rank(const wk_comm *c) { return c ? c->local_rank : 0; }
int wk_comm_local_size(const wk_comm *c) { return c ? c->local_size : 1; }
wk_comm_backend wk_comm_get_backend(const wk_comm *c)
{
    return c ? c->backend : WK_COMM_BACKEND_LOCAL;
}

const char *wk_comm_backend_name(wk_comm_backend b)
{
    static const char *const names[] = {"local", "mpi", "nccl"};
    _Static_assert(sizeof names / sizeof names[0] == WK_COMM_BACKEND_COUNT,
                   "one name per backend");
    return (unsigned)b < WK_COMM_BACKEND_COUNT ? names[b] : "?";
}

const char *wk_comm_op_name(wk_comm_op op)
{
    static const char *const names[] = {"sum", "avg", "max", "min"};
    _Static_assert(sizeof names / sizeof names[0] == WK_COMM_OP_COUNT, "one name per op");
    return (unsigned)op < WK_COMM_OP_COUNT ? names[op] : "?";
}

void wk_comm_free(wk_comm *c)
{
    if (!c) return;
    if (c->is_world) return; /* the library's: wk_dist_finalize frees it */
    c->ops->destroy(c);
    free(c);
}

static bool check_comm(const char *op, const wk_comm *c)
{
    if (!c) {
        wk_set_error("%s: communicator is NULL", op);
        return false;
    }
    return true;
}

static bool check_buffer(const char *op, const void *buf, int64_t count, wk_dtype dtype)
{
    if (count < 0) {
        wk_set_error("%s: count %lld is negative", op, (long long)count);
        return false;
    }
    if ((unsigned)dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", op, (int)dtype);
        return false;
    }
    if (count > 0 && !buf) {
        wk_set_error("%s: buffer is NULL for %lld elements", op, (long long)count);
        return false;
    }
    return true;
}

static bool check_reduce(const char *op, wk_dtype dtype, wk_comm_op rop)
{
    if ((unsigned)rop >= WK_COMM_OP_COUNT) {
        wk_set_error("%s: invalid reduction %d (expected sum, avg, max or min)", op, (int)rop);
        return false;
    }
    if (dtype != WK_DTYPE_F32 && dtype != WK_DTYPE_F64 && dtype != WK_DTYPE_I32 &&
        dtype != WK_DTYPE_I64) {
        wk_set_error("%s: cannot reduce %s buffers (expected float32, float64, int32 or "
                     "int64)", op, wk_dtype_name(dtype));
        return false;
    }
    return true;
}

int wk_comm_allreduce(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, wk_comm_op op)
{
    if (!check_comm("comm_allreduce", c) || !check_buffer("comm_allreduce", buf, count, dtype) ||
        !check_reduce("comm_allreduce", dtype, op))
        return -1;
    if (count == 0 || (c->size == 1 && c->backend != WK_COMM_BACKEND_NCCL)) return 0;
    return c->ops->allreduce(c, buf, count, dtype, op);
}

int wk_comm_broadcast(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root)
{
    if (!check_comm("comm_broadcast", c) || !check_buffer("comm_broadcast", buf, count, dtype))
        return -1;
    if (root < 0 || root >= c->size) {
        wk_set_error("comm_broadcast: root %d is out of range for %d ranks", root, c->size);
        return -1;
    }
    if (count == 0 || (c->size == 1 && c->backend != WK_COMM_BACKEND_NCCL)) return 0;
    return c->ops->broadcast(c, buf, count, dtype, root);
}

int wk_comm_allgather(wk_comm *c, const void *send, void *recv, int64_t count, wk_dtype dtype)
{
    if (!check_comm("comm_allgather", c) ||
        !check_buffer("comm_allgather", send, count, dtype) ||
        !check_buffer("comm_allgather", recv, count, dtype))
        return -1;
    if (count == 0) return 0;
    return c->ops->allgather(c, send, recv, count, dtype);
}

int wk_comm_barrier(wk_comm *c)
{
    if (!check_comm("comm_barrier", c)) return -1;
    if (c->size == 1 && c->backend != WK_COMM_BACKEND_NCCL) return 0;
    return c->ops->barrier(c);
}

int wk_comm_allreduce_start(wk_comm *c, void *buf, int64_t count, wk_dtype dtype,
                            wk_comm_op op, wk_comm_request **req)
{
    if (req) *req = NULL;
    if (!req) {
        wk_set_error("comm_allreduce_start: request pointer is NULL");
        return -1;
    }
    if (!check_comm("comm_allreduce_start", c) ||
        !check_buffer("comm_allreduce_start", buf, count, dtype) ||
        !check_reduce("comm_allreduce_start", dtype, op))
        return -1;
    wk_comm_request *r = calloc(1, sizeof *r);
    if (!r) {
        wk_set_error("comm_allreduce_start: out of memory");
        return -1;
    }
    *r = (wk_comm_request){c, buf, count, dtype, op, NULL};
    bool trivial = count == 0 || (c->size == 1 && c->backend != WK_COMM_BACKEND_NCCL);
    if (!trivial && c->ops->allreduce_start(c, r) < 0) {
        free(r->impl);
        free(r);
        return -1;
    }
    if (trivial) r->comm = NULL; /* nothing to wait for */
    *req = r;
    return 0;
}

int wk_comm_wait(wk_comm_request *req)
{
    if (!req) return 0;
    int rc = req->comm ? req->comm->ops->wait(req) : 0;
    free(req->impl);
    free(req);
    return rc;
}

/* ---- tensors ---- */

static bool check_tensor(const char *op, const wk_comm *c, const wk_tensor *t)
{
    if (!check_comm(op, c)) return false;
    if (!t) {
        if (!*wk_last_error()) wk_set_error("%s: tensor is NULL", op);
        return false;
    }
    if (t->device.type != WK_DEVICE_CPU || c->backend == WK_COMM_BACKEND_NCCL) {
        char buf[32];
        wk_set_error("%s: the tensor is on %s and the communicator is %s (tensors must be "
                     "CPU tensors on an MPI or local communicator)", op,
                     wk_device_str(t->device, buf, sizeof buf),
                     wk_comm_backend_name(c->backend));
        return false;
    }
    return true;
}

/* Run fn on a contiguous buffer holding t's elements, writing the result back to t. */
static int through_contiguous(wk_comm *c, wk_tensor *t, wk_comm_op op, int root, bool bcast)
{
    wk_frame_begin();
    wk_tensor *src = wk_is_contiguous(t) ? t : wk_contiguous(t);
    int rc = src ? 0 : -1;
    if (!rc)
        rc = bcast ? wk_comm_broadcast(c, wk_data(src), wk_numel(src), src->dtype, root)
                   : wk_comm_allreduce(c, wk_data(src), wk_numel(src), src->dtype, op);
    if (!rc && src != t && !wk_copy_(t, src)) rc = -1;
    wk_frame_end();
    return rc;
}

int wk_comm_allreduce_tensor(wk_comm *c, wk_tensor *t, wk_comm_op op)
{
    if (!check_tensor("comm_allreduce_tensor", c, t)) return -1;
    return through_contiguous(c, t, op, 0, false);
}

int wk_comm_broadcast_tensor(wk_comm *c, wk_tensor *t, int root)
{
    if (!check_tensor("comm_broadcast_tensor", c, t)) return -1;
    return through_contiguous(c, t, WK_COMM_SUM, root, true);
}

wk_tensor *wk_comm_allgather_tensor(wk_comm *c, const wk_tensor *t)
{
    if (!check_tensor("comm_allgather_tensor", c, t)) return NULL;
    if (t->ndim >= WK_MAX_DIMS) {
        wk_set_error("comm_allgather_tensor: the tensor has %d dims; the result would have "
                     "more than %d", t->ndim, WK_MAX_DIMS);
        return NULL;
    }
    int64_t shape[WK_MAX_DIMS];
    shape[0] = c->size;
    memcpy(shape + 1, t->shape, (size_t)t->ndim * sizeof *shape);
    wk_tensor *out = wk_empty(shape, t->ndim + 1, t->dtype);
    if (!out) return NULL;
    wk_frame_begin();
    wk_tensor *src = wk_contiguous((wk_tensor *)t);
    int rc = src ? wk_comm_allgather(c, wk_data(src), wk_data(out), wk_numel(t), t->dtype) : -1;
    wk_frame_end();
    if (rc < 0) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

/* ---- agreement ---- */

#define AGREE_MSG_LEN 512

int wk_dist_agree_ok(wk_comm *c, bool ok, int *failed_rank)
{
    if (failed_rank) *failed_rank = -1;
    if (!check_comm("dist_agree_ok", c)) return -1;
    /* lowest failing rank, or size when none: one all-reduce on the good path */
    char msg[AGREE_MSG_LEN];
    snprintf(msg, sizeof msg, "%s", *wk_last_error() ? wk_last_error() : "(no message)");
    int32_t v = ok ? c->size : c->rank;
    if (wk_comm_allreduce(c, &v, 1, WK_DTYPE_I32, WK_COMM_MIN) < 0) return -1;
    if (v >= c->size) return 1;
    if (wk_comm_broadcast(c, msg, AGREE_MSG_LEN, WK_DTYPE_U8, v) < 0) return -1;
    msg[AGREE_MSG_LEN - 1] = '\0';
    if (failed_rank) *failed_rank = v;
    wk_set_error("rank %d failed: %s", (int)v, msg);
    return 0;
}

int wk_dist_agree_any(wk_comm *c, bool flag)
{
    if (!check_comm("dist_agree_any", c)) return -1;
    int32_t v = flag ? 1 : 0;
    if (wk_comm_allreduce(c, &v, 1, WK_DTYPE_I32, WK_COMM_MAX) < 0) return -1;
    return v ? 1 : 0;
}

/* ---- metrics ---- */

int wk_dist_metric_reduce(double *state, int n, void *comm)
{
    if (n < 0) {
        wk_set_error("dist_metric_reduce: %d states", n);
        return -1;
    }
    return wk_comm_allreduce(comm, state, n, WK_DTYPE_F64, WK_COMM_SUM);
}

/* ---- seeds ---- */

bool wk_seed_stream_per_rank(wk_seed_stream stream)
{
    return stream == WK_SEED_DROPOUT || stream == WK_SEED_AUGMENT;
}

uint64_t wk_dist_seed(uint64_t seed, wk_seed_stream stream, int rank)
{
    wk_generator base = wk_generator_split(&(wk_generator){seed, 0}, (uint64_t)stream);
    if (!wk_seed_stream_per_rank(stream)) return base.seed;
    return wk_generator_split(&base, (uint64_t)rank).seed;
}

/* ---- NCCL ---- */

wk_comm *wk_comm_nccl_new(wk_comm *boot, int device)
{
    if (!check_comm("comm_nccl_new", boot)) return NULL;
#ifdef WK_HAVE_NCCL
    return wki_comm_nccl_new(boot, device);
#else
    (void)device;
    wk_set_error("comm_nccl_new: wick was built without NCCL (configure with -Dcuda=enabled "
                 "on a machine with the CUDA toolkit's NCCL)");
    return NULL;
#endif
}

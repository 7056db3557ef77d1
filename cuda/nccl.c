/* The NCCL backend: collectives over CUDA device buffers on one stream per communicator.
 * Rank 0's unique id travels over the boot communicator (MPI, or local for world 1).
 * Built only with CUDA and NCCL (WK_HAVE_NCCL). */
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>
#include <nccl.h>

#include "../engine/dist-impl.h"

typedef struct {
    ncclComm_t comm;
    cudaStream_t stream;
    int device;
    void *scratch; /* one int on the device, for the barrier */
} nccl_impl;

typedef struct {
    cudaEvent_t done;
} nccl_request;

static nccl_impl *impl_of(const wk_comm *c) { return c->impl; }

static int nccl_fail(const char *op, const wk_comm *c, ncclResult_t r)
{
    const char *last = c && c->impl ? ncclGetLastError(impl_of(c)->comm) : NULL;
    wk_set_error("%s: NCCL error %d: %s%s%s", op, (int)r, ncclGetErrorString(r),
                 last && *last ? ": " : "", last && *last ? last : "");
    return -1;
}

static int cuda_fail(const char *op, cudaError_t e)
{
    wk_set_error("%s: CUDA error %d: %s", op, (int)e, cudaGetErrorString(e));
    return -1;
}

static ncclDataType_t nccl_type(wk_dtype dtype, int64_t *count)
{
    switch (dtype) {
    case WK_DTYPE_F32: return ncclFloat32;
    case WK_DTYPE_F64: return ncclFloat64;
    case WK_DTYPE_I32: return ncclInt32;
    case WK_DTYPE_I64: return ncclInt64;
    case WK_DTYPE_BF16: return ncclBfloat16;
    case WK_DTYPE_F16: return ncclFloat16;
    default: /* u8, bool: bytes */
        *count *= (int64_t)wk_dtype_size(dtype);
        return ncclUint8;
    }
}

static ncclRedOp_t nccl_op(wk_comm_op op)
{
    switch (op) {
    case WK_COMM_AVG: return ncclAvg;
    case WK_COMM_MAX: return ncclMax;
    case WK_COMM_MIN: return ncclMin;
    default: return ncclSum;
    }
}

/* Make the calls synchronous: the front-end promises completion on return. */
static int stream_sync(const char *op, wk_comm *c)
{
    cudaError_t e = cudaStreamSynchronize(impl_of(c)->stream);
    return e == cudaSuccess ? 0 : cuda_fail(op, e);
}

static int select_device(const char *op, wk_comm *c)
{
    cudaError_t e = cudaSetDevice(impl_of(c)->device);
    return e == cudaSuccess ? 0 : cuda_fail(op, e);
}

static int enqueue_allreduce(const char *op, wk_comm *c, void *buf, int64_t count,
                             wk_dtype dtype, wk_comm_op rop)
{
    if (select_device(op, c) < 0) return -1;
    ncclDataType_t t = nccl_type(dtype, &count);
    ncclResult_t r = ncclAllReduce(buf, buf, (size_t)count, t, nccl_op(rop), impl_of(c)->comm,
                                   impl_of(c)->stream);
    return r == ncclSuccess ? 0 : nccl_fail(op, c, r);
}

static int n_allreduce(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, wk_comm_op op)
{
    if (enqueue_allreduce("comm_allreduce", c, buf, count, dtype, op) < 0) return -1;
    return stream_sync("comm_allreduce", c);
}

static int n_broadcast(wk_comm *c, void *buf, int64_t count, wk_dtype dtype, int root)
{
    if (select_device("comm_broadcast", c) < 0) return -1;
    ncclDataType_t t = nccl_type(dtype, &count);
    ncclResult_t r = ncclBroadcast(buf, buf, (size_t)count, t, root, impl_of(c)->comm,
                                   impl_of(c)->stream);
    if (r != ncclSuccess) return nccl_fail("comm_broadcast", c, r);
    return stream_sync("comm_broadcast", c);
}

static int n_allgather(wk_comm *c, const void *send, void *recv, int64_t count, wk_dtype dtype)
{
    if (select_device("comm_allgather", c) < 0) return -1;
    ncclDataType_t t = nccl_type(dtype, &count);
    ncclResult_t r = ncclAllGather(send, recv, (size_t)count, t, impl_of(c)->comm,
                                   impl_of(c)->stream);
    if (r != ncclSuccess) return nccl_fail("comm_allgather", c, r);
    return stream_sync("comm_allgather", c);
}

static int n_barrier(wk_comm *c)
{
    /* NCCL has no barrier: a one-int all-reduce that every rank must join serves */
    return n_allreduce(c, impl_of(c)->scratch, 1, WK_DTYPE_I32, WK_COMM_SUM);
}

static int n_start(wk_comm *c, wk_comm_request *req)
{
    nccl_request *r = calloc(1, sizeof *r);
    if (!r) {
        wk_set_error("comm_allreduce_start: out of memory");
        return -1;
    }
    req->impl = r;
    if (enqueue_allreduce("comm_allreduce_start", c, req->buf, req->count, req->dtype,
                          req->op) < 0)
        return -1;
    cudaError_t e = cudaEventCreateWithFlags(&r->done, cudaEventDisableTiming);
    if (e == cudaSuccess) e = cudaEventRecord(r->done, impl_of(c)->stream);
    if (e != cudaSuccess) {
        cudaStreamSynchronize(impl_of(c)->stream);
        return cuda_fail("comm_allreduce_start", e);
    }
    return 0;
}

static int n_wait(wk_comm_request *req)
{
    nccl_request *r = req->impl;
    cudaError_t e = cudaEventSynchronize(r->done);
    cudaEventDestroy(r->done);
    return e == cudaSuccess ? 0 : cuda_fail("comm_wait", e);
}

static void impl_free(nccl_impl *m)
{
    if (!m) return;
    cudaSetDevice(m->device);
    if (m->comm) ncclCommDestroy(m->comm);
    if (m->stream) cudaStreamDestroy(m->stream);
    if (m->scratch) cudaFree(m->scratch);
    free(m);
}

static void n_destroy(wk_comm *c)
{
    impl_free(c->impl);
    c->impl = NULL;
}

static const wki_comm_ops nccl_ops = {
    n_allreduce, n_broadcast, n_allgather, n_barrier, n_start, n_wait, n_destroy,
};

wk_comm *wki_comm_nccl_new(wk_comm *boot, int device)
{
    /* Every local failure before ncclCommInitRank is agreed on over boot, so that no rank
     * waits forever in the init of a communicator another rank will never join. */
    int ndev = 0;
    cudaError_t e = cudaGetDeviceCount(&ndev);
    bool ok = true;
    if (e != cudaSuccess || ndev == 0) {
        cudaGetLastError();
        wk_set_error("comm_nccl_new: no CUDA device (%s)",
                     e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
        ok = false;
    }
    if (ok && device < 0) device = wk_comm_local_rank(boot) % ndev;
    if (ok && device >= ndev) {
        wk_set_error("comm_nccl_new: device %d is out of range (%d devices)", device, ndev);
        ok = false;
    }
    nccl_impl *m = ok ? calloc(1, sizeof *m) : NULL;
    if (ok && !m) {
        wk_set_error("comm_nccl_new: out of memory");
        ok = false;
    }
    if (ok) {
        m->device = device;
        e = cudaSetDevice(device);
        if (e == cudaSuccess) e = cudaStreamCreateWithFlags(&m->stream, cudaStreamNonBlocking);
        if (e == cudaSuccess) e = cudaMalloc(&m->scratch, sizeof(int32_t));
        if (e != cudaSuccess) ok = cuda_fail("comm_nccl_new", e) == 0;
    }
    ncclUniqueId id;
    memset(&id, 0, sizeof id);
    if (ok && wk_comm_rank(boot) == 0) {
        ncclResult_t r = ncclGetUniqueId(&id);
        if (r != ncclSuccess) ok = nccl_fail("comm_nccl_new", NULL, r) == 0;
    }
    int agreed = wk_dist_agree_ok(boot, ok, NULL);
    if (agreed == 1 &&
        wk_comm_broadcast(boot, &id, (int64_t)sizeof id, WK_DTYPE_U8, 0) < 0)
        agreed = -1;
    wk_comm *c = NULL;
    if (agreed == 1) {
        c = wki_comm_alloc(&nccl_ops, WK_COMM_BACKEND_NCCL, wk_comm_rank(boot),
                           wk_comm_size(boot));
        if (c) {
            c->local_rank = wk_comm_local_rank(boot);
            c->local_size = wk_comm_local_size(boot);
            c->impl = m;
            ncclResult_t r = ncclCommInitRank(&m->comm, c->size, id, c->rank);
            if (r != ncclSuccess) {
                nccl_fail("comm_nccl_new", NULL, r);
                m->comm = NULL;
                wk_comm_free(c);
                return NULL;
            }
            return c;
        }
        /* out of memory on this rank only: the others block in ncclCommInitRank until
         * NCCL's bootstrap times out; rare enough not to warrant another round */
    }
    impl_free(m);
    return NULL;
}

/* The NCCL communicator on device buffers: every collective, checked on its rank against
 * the values of comm_values.h. One rank per GPU; world 1 without mpirun.
 *   worker_nccl            (world 1)
 *   mpirun -np 2 worker_nccl
 * Prints "worker_nccl: rank R: all N checks passed" and exits 0, or lists what failed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime.h>

#include "comm_values.h"
#include "wick.h"

static int checks, failures, rank_;

static void check(bool ok, const char *what, int64_t i, double got, double want)
{
    checks++;
    if (ok) return;
    if (++failures <= 20)
        fprintf(stderr, "worker_nccl: rank %d: %s[%lld] = %.17g, expected %.17g\n", rank_, what,
                (long long)i, got, want);
}

static void *dev(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes) != cudaSuccess) {
        fprintf(stderr, "worker_nccl: cudaMalloc of %zu bytes failed\n", bytes);
        exit(1);
    }
    return p;
}

static void up(void *d, const void *h, size_t n) { cudaMemcpy(d, h, n, cudaMemcpyHostToDevice); }
static void down(void *h, const void *d, size_t n) { cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost); }

static void fill(void *h, int r, wk_dtype dt)
{
    for (int64_t i = 0; i < CV_N; i++) {
        if (dt == WK_DTYPE_F32) ((float *)h)[i] = (float)cv_float(r, i);
        if (dt == WK_DTYPE_F64) ((double *)h)[i] = cv_float(r, i);
        if (dt == WK_DTYPE_I32) ((int32_t *)h)[i] = (int32_t)(cv_int(r, i) % 100000);
        if (dt == WK_DTYPE_I64) ((int64_t *)h)[i] = cv_int(r, i);
    }
}

int main(void)
{
    wk_comm *boot = wk_dist_world();
    if (!boot) {
        fprintf(stderr, "worker_nccl: %s\n", wk_last_error());
        return 1;
    }
    wk_comm *c = wk_comm_nccl_new(boot, -1);
    if (!c) {
        fprintf(stderr, "worker_nccl: %s\n", wk_last_error());
        return 1;
    }
    int r = wk_comm_rank(c), w = wk_comm_size(c);
    rank_ = r;
    check(wk_comm_get_backend(c) == WK_COMM_BACKEND_NCCL, "backend", 0,
          wk_comm_get_backend(c), WK_COMM_BACKEND_NCCL);
    size_t maxb = CV_N * 8;
    void *h = malloc(maxb * (size_t)(w > 1 ? w : 1)), *d = dev(maxb * (size_t)w);

    const wk_dtype dts[] = {WK_DTYPE_F32, WK_DTYPE_F64, WK_DTYPE_I32, WK_DTYPE_I64};
    for (int k = 0; k < 4; k++) {
        for (int op = 0; op < WK_COMM_OP_COUNT; op++) {
            size_t bytes = CV_N * wk_dtype_size(dts[k]);
            fill(h, r, dts[k]);
            up(d, h, bytes);
            if (wk_comm_allreduce(c, d, CV_N, dts[k], (wk_comm_op)op) < 0) {
                fprintf(stderr, "worker_nccl: allreduce: %s\n", wk_last_error());
                return 1;
            }
            down(h, d, bytes);
            char what[64];
            snprintf(what, sizeof what, "allreduce.%s.%s", wk_comm_op_name((wk_comm_op)op),
                     wk_dtype_name(dts[k]));
            for (int64_t i = 0; i < CV_N; i++) {
                if (dts[k] == WK_DTYPE_I64) {
                    int64_t got = ((int64_t *)h)[i], e = cv_expect_int(w, op, i);
                    check(got == e, what, i, (double)got, (double)e);
                } else {
                    double got = dts[k] == WK_DTYPE_F32   ? ((float *)h)[i]
                                 : dts[k] == WK_DTYPE_F64 ? ((double *)h)[i]
                                                          : ((int32_t *)h)[i];
                    double e = cv_expect_float(w, op, i, dts[k] == WK_DTYPE_I32);
                    double tol = dts[k] == WK_DTYPE_F32 ? 1e-6 * fabs(e) : 1e-12 * fabs(e);
                    check(fabs(got - e) <= tol, what, i, got, e);
                }
            }
        }
    }

    /* non-blocking sum */
    fill(h, r, WK_DTYPE_F64);
    up(d, h, CV_N * 8);
    wk_comm_request *req;
    if (wk_comm_allreduce_start(c, d, CV_N, WK_DTYPE_F64, WK_COMM_SUM, &req) < 0 ||
        wk_comm_wait(req) < 0) {
        fprintf(stderr, "worker_nccl: allreduce_start: %s\n", wk_last_error());
        return 1;
    }
    down(h, d, CV_N * 8);
    for (int64_t i = 0; i < CV_N; i++)
        check(((double *)h)[i] == cv_expect_float(w, WK_COMM_SUM, i, false), "iallreduce", i,
              ((double *)h)[i], cv_expect_float(w, WK_COMM_SUM, i, false));

    /* broadcast from the last rank */
    fill(h, r, WK_DTYPE_F64);
    up(d, h, CV_N * 8);
    if (wk_comm_broadcast(c, d, CV_N, WK_DTYPE_F64, w - 1) < 0) {
        fprintf(stderr, "worker_nccl: broadcast: %s\n", wk_last_error());
        return 1;
    }
    down(h, d, CV_N * 8);
    for (int64_t i = 0; i < CV_N; i++)
        check(((double *)h)[i] == cv_float(w - 1, i), "broadcast", i, ((double *)h)[i],
              cv_float(w - 1, i));

    /* allgather into a separate device buffer */
    float send[CV_GATHER];
    for (int i = 0; i < CV_GATHER; i++) send[i] = (float)(r * 10 + i);
    float *ds = dev(sizeof send);
    up(ds, send, sizeof send);
    if (wk_comm_allgather(c, ds, d, CV_GATHER, WK_DTYPE_F32) < 0) {
        fprintf(stderr, "worker_nccl: allgather: %s\n", wk_last_error());
        return 1;
    }
    down(h, d, sizeof send * (size_t)w);
    for (int q = 0; q < w; q++)
        for (int i = 0; i < CV_GATHER; i++)
            check(((float *)h)[q * CV_GATHER + i] == q * 10 + i, "allgather", q * CV_GATHER + i,
                  ((float *)h)[q * CV_GATHER + i], q * 10 + i);
    if (wk_comm_barrier(c) < 0) {
        fprintf(stderr, "worker_nccl: barrier: %s\n", wk_last_error());
        return 1;
    }
    /* host buffers are not for NCCL: tensors are refused with a message */
    wk_tensor *t = wk_zeros(WK_SHAPE(2), WK_DTYPE_F32);
    check(wk_comm_allreduce_tensor(c, t, WK_COMM_SUM) == -1 &&
              strstr(wk_last_error(), "nccl"), "tensor refused", 0, 0, 0);
    wk_tensor_free(t);

    cudaFree(ds);
    cudaFree(d);
    free(h);
    wk_comm_free(c);
    wk_dist_finalize();
    if (failures) {
        fprintf(stderr, "worker_nccl: rank %d: %d of %d checks failed\n", r, failures, checks);
        return 1;
    }
    printf("worker_nccl: rank %d of %d: all %d checks passed\n", r, w, checks);
    return 0;
}

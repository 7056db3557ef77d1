/* The element-wise iterator (see iter-impl.h). */
#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "iter-impl.h"

#define GRAIN 32768 /* elements per thread below which a loop stays serial */

bool wki_broadcast_shape(const char *op, int n, const wk_tensor *const *ts, int64_t *shape,
                         int *ndim)
{
    int nd = 0;
    for (int k = 0; k < n; k++)
        if (ts[k]->ndim > nd) nd = ts[k]->ndim;
    for (int i = 0; i < nd; i++) {
        int64_t size = 1;
        for (int k = 0; k < n; k++) {
            int j = ts[k]->ndim - nd + i;
            if (j < 0) continue;
            int64_t s = ts[k]->shape[j];
            if (s == 1 || s == size) continue;
            if (size != 1) {
                char msg[512];
                size_t len = 0;
                for (int q = 0; q < n && len < sizeof msg; q++)
                    len += (size_t)snprintf(msg + len, sizeof msg - len, "%s%s",
                                            q ? (q == n - 1 ? " and " : ", ") : "",
                                            wki_shape_s(ts[q]));
                wk_set_error("%s: shapes %s are not broadcastable (size %lld vs %lld at "
                             "dim %d)",
                             op, msg, (long long)size, (long long)s, i);
                return false;
            }
            size = s;
        }
        shape[i] = size;
    }
    *ndim = nd;
    return true;
}

void wki_iter_init(wki_iter *it, int nops, const wk_tensor *const *ops)
{
    const wk_tensor *out = ops[0];
    memset(it, 0, sizeof *it);
    it->nops = nops;
    it->numel = wk_numel(out);
    for (int k = 0; k < nops; k++)
        it->data[k] = wk_data(ops[k]);
    /* Reversed dims (0 innermost), broadcast strides in bytes, size-1 dims dropped. */
    int nd = 0;
    for (int i = out->ndim - 1; i >= 0; i--) {
        if (out->shape[i] == 1) continue;
        it->shape[nd] = out->shape[i];
        for (int k = 0; k < nops; k++) {
            const wk_tensor *t = ops[k];
            int j = t->ndim - out->ndim + i;
            int64_t st = (j < 0 || t->shape[j] == 1) ? 0 : t->strides[j];
            it->strides[k][nd] = st * (int64_t)wk_dtype_size(t->dtype);
        }
        nd++;
    }
    /* Coalesce dim d+1 into d when every operand steps through them as one. */
    int w = 0;
    for (int d = 1; d < nd; d++) {
        bool ok = true;
        for (int k = 0; k < nops && ok; k++)
            ok = it->strides[k][d] == it->strides[k][w] * it->shape[w];
        if (ok) {
            it->shape[w] *= it->shape[d];
        } else {
            w++;
            it->shape[w] = it->shape[d];
            for (int k = 0; k < nops; k++)
                it->strides[k][w] = it->strides[k][d];
        }
    }
    it->ndim = nd ? w + 1 : 1;
    if (!nd) it->shape[0] = 1;
}

void wki_iter_run_range(const wki_iter *it, wki_loop_fn fn, void *ctx, int64_t begin,
                        int64_t end)
{
    int nd = it->ndim, nops = it->nops;
    int64_t idx[WK_MAX_DIMS];
    char *ptr[WKI_MAX_OPERANDS];
    int64_t inner[WKI_MAX_OPERANDS];
    int64_t rem = begin;
    for (int d = 0; d < nd; d++) {
        idx[d] = rem % it->shape[d];
        rem /= it->shape[d];
    }
    for (int k = 0; k < nops; k++) {
        ptr[k] = it->data[k];
        for (int d = 0; d < nd; d++)
            ptr[k] += idx[d] * it->strides[k][d];
        inner[k] = it->strides[k][0];
    }
    for (int64_t pos = begin; pos < end;) {
        int64_t n = it->shape[0] - idx[0];
        if (n > end - pos) n = end - pos;
        fn(ptr, inner, n, ctx);
        pos += n;
        idx[0] += n;
        for (int k = 0; k < nops; k++)
            ptr[k] += n * it->strides[k][0];
        for (int d = 0; d < nd - 1 && idx[d] == it->shape[d]; d++) {
            idx[d] = 0;
            idx[d + 1]++;
            for (int k = 0; k < nops; k++)
                ptr[k] += it->strides[k][d + 1] - it->shape[d] * it->strides[k][d];
        }
    }
}

void wki_iter_run(const wki_iter *it, wki_loop_fn fn, void *ctx)
{
    int64_t n = it->numel;
    if (n <= 0) return;
    int nt = wki_threads_for(n, GRAIN);
    if (nt <= 1) {
        wki_iter_run_range(it, fn, ctx, 0, n);
        return;
    }
#pragma omp parallel num_threads(nt)
    {
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        wki_iter_run_range(it, fn, ctx, n * t / T, n * (t + 1) / T);
    }
}

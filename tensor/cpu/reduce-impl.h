/* The reduction kernels' interface, one entry per device (tensor/reduce.c holds the
 * table), and a float32 exp that vectorises, shared with the fused losses (nn/loss.c).
 * Not installed. */
#ifndef WK_CPU_REDUCE_IMPL_H
#define WK_CPU_REDUCE_IMPL_H

#include <stdint.h>

#include "../reduce.h"
#include "../tensor-impl.h"

/* Compute `op` of x over the dims flagged in reduced[0..x->ndim) into out (and the
 * int64 indices of MAX/MIN into `indices` when not NULL). The front-end has validated
 * everything and allocated out/indices contiguous: kept dims in order (size-1 dims where
 * keepdim kept reduced ones), or x's shape for softmax. `arg` is the correction or p.
 * Returns false with an error only when a temporary cannot be allocated. */
typedef bool (*wki_reduce_kernel)(wk_reduce_op op, wk_tensor *x, const bool *reduced,
                                  double arg, wk_tensor *out, wk_tensor *indices);

/* Backward of softmax (is_log false: gx = y * (g - sum(g * y))) or log_softmax
 * (gx = g - exp(y) * sum(g)) along `dim`, sums over dim. y, g and gx are contiguous,
 * of one shape and float dtype; gx is written. Returns false with an error on failure. */
typedef bool (*wki_softmax_backward_kernel)(bool is_log, const wk_tensor *y,
                                            const wk_tensor *g, wk_tensor *gx, int dim);

/* A device's kernels of the family. */
typedef struct {
    wki_reduce_kernel reduce;
    wki_softmax_backward_kernel softmax_backward;
} wki_reduce_kernels;

bool wki_cpu_reduce(wk_reduce_op op, wk_tensor *x, const bool *reduced, double arg,
                    wk_tensor *out, wk_tensor *indices);
bool wki_cpu_softmax_backward(bool is_log, const wk_tensor *y, const wk_tensor *g,
                              wk_tensor *gx, int dim);

/* exp for float32 in plain arithmetic, so loops calling it vectorise (libm's expf does
 * not): Cephes' polynomial on x - n ln2, scaled by 2^n in two steps; within 1 ulp of
 * exp; inf and NaN propagate, results below 1e-38 flush to 0. Selects are bit masks. */
typedef union {
    float f;
    uint32_t u;
} wki_f32_bits;

static inline float wki_expf(float x)
{
    wki_f32_bits ux = {.f = x};
    uint32_t ax = ux.u & 0x7fffffffu;
    float t = x * 1.44269504088896341f + 12582912.0f; /* 1.5 * 2^23: rounds to n */
    float n = t - 12582912.0f;
    float r = x - n * 0.693359375f - n * -2.12194440e-4f;
    float q = 1.9875691500e-4f;
    q = q * r + 1.3981999507e-3f;
    q = q * r + 8.3334519073e-3f;
    q = q * r + 4.1665795894e-2f;
    q = q * r + 1.6666665459e-1f;
    q = q * r + 5.0000001201e-1f;
    q = q * r * r + r + 1.0f;
    wki_f32_bits tb = {.f = t};
    int32_t ni = (int32_t)(tb.u - 0x4B400000u), h = ni / 2;
    wki_f32_bits s1 = {.u = (uint32_t)(h + 127) << 23};
    wki_f32_bits s2 = {.u = (uint32_t)(ni - h + 127) << 23};
    wki_f32_bits y = {.f = q * s1.f * s2.f};
    uint32_t neg = 0u - (ux.u >> 31), nan = 0u - (uint32_t)(ax > 0x7f800000u);
    uint32_t out_of_range = ~neg & ((nan & ux.u) | (~nan & 0x7f800000u)); /* 0, inf, NaN */
    uint32_t in = 0u - (uint32_t)(ax <= 0x42B17217u);                    /* |x| <= 88.72 */
    y.u = (in & y.u) | (~in & out_of_range);
    return y.f;
}

#endif

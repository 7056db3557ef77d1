/* The profiler as op front-ends see it (profiler.c). One line near the top of a
 * front-end, after its name is known and before any early return worth timing:
 *
 *     WKI_PROF_OP(name, a, b);            // a span with a's and b's shapes (NULLs skipped)
 *     ...
 *     WKI_PROF_FLOPS(2.0 * M * N * K);   // optional, once the geometry is known
 *
 * The span ends when the function returns, on every path (GCC's cleanup attribute on a
 * local). Off, the cost is one relaxed load and one predictable branch at entry and one
 * test of a zero local at return. Building with -DWK_PROFILER_DISABLE removes the hooks
 * (the baseline of bench/profiler). */
#ifndef WK_PROFILER_IMPL_H
#define WK_PROFILER_IMPL_H

#include <stdatomic.h>

#include "profiler.h"
#include "tensor.h"

/* Non-zero while spans are recorded (warmup and active steps). */
extern atomic_int wki_prof_on;

/* Open a span of `kind` on this thread with the shapes of n inputs (NULLs skipped); the
 * first non-NULL input gives dtype and device. Returns the handle for wki_prof_end (0
 * when nothing was opened). */
uint64_t wki_prof_begin(const char *name, wk_profiler_kind kind, int n,
                        const wk_tensor *const *inputs);
/* The same with a (shape, ndim) and dtype instead of inputs (creation ops). */
uint64_t wki_prof_begin_shape(const char *name, const int64_t *shape, int ndim, wk_dtype dtype);
/* Close the span (and any left open inside it). */
void wki_prof_end(uint64_t handle);
/* Set the span's FLOPs. */
void wki_prof_set_flops(uint64_t handle, double flops);

static inline void wki_prof_scope_end(const uint64_t *handle)
{
    if (__builtin_expect(*handle != 0, 0)) wki_prof_end(*handle);
}

#define WKI_PROF_ON_() __builtin_expect(atomic_load_explicit(&wki_prof_on, memory_order_relaxed), 0)

#ifdef WK_PROFILER_DISABLE
#define WKI_PROF_SPAN(name, kind, ...) ((void)0)
#define WKI_PROF_OP_SHAPE(name, shape, ndim, dtype) ((void)0)
#define WKI_PROF_FLOPS(flops) ((void)sizeof(flops))
#else
#define WKI_PROF_SPAN(name, kind, ...)                                                   \
    uint64_t wki_prof_scope_ __attribute__((cleanup(wki_prof_scope_end))) = 0;          \
    if (WKI_PROF_ON_())                                                                  \
    wki_prof_scope_ = wki_prof_begin(                                                    \
        name, kind,                                                                      \
        (int)(sizeof((const wk_tensor *const[]){__VA_ARGS__}) / sizeof(const wk_tensor *)), \
        (const wk_tensor *const[]){__VA_ARGS__})
#define WKI_PROF_OP_SHAPE(name, shape, ndim, dtype)                                      \
    uint64_t wki_prof_scope_ __attribute__((cleanup(wki_prof_scope_end))) = 0;          \
    if (WKI_PROF_ON_()) wki_prof_scope_ = wki_prof_begin_shape(name, shape, ndim, dtype)
#define WKI_PROF_FLOPS(flops)                                                            \
    do {                                                                                 \
        if (__builtin_expect(wki_prof_scope_ != 0, 0))                                   \
            wki_prof_set_flops(wki_prof_scope_, (double)(flops));                        \
    } while (0)
#endif

/* An op front-end's span. */
#define WKI_PROF_OP(name, ...) WKI_PROF_SPAN(name, WK_PROFILER_OP, __VA_ARGS__)
/* A backward function's span (autograd/backward.c), with the incoming gradient's shape. */
#define WKI_PROF_BACKWARD(name, grad) WKI_PROF_SPAN(name, WK_PROFILER_BACKWARD, grad)

/* ---- the CUDA side (cuda/profiler.c, built only with CUDA) ---- */
#ifdef WK_HAVE_CUDA
/* NVTX: a nested range on this thread, and a process range (steps) by id. */
void wki_cuda_prof_push(const char *name);
void wki_cuda_prof_pop(void);
uint64_t wki_cuda_prof_range_start(const char *name);
void wki_cuda_prof_range_end(uint64_t id);
/* Record a CUDA event on the current device's default stream; its index, or -1. */
int wki_cuda_prof_event_record(void);
/* Milliseconds between two recorded events (waits for the second); NaN on failure. */
double wki_cuda_prof_elapsed_ms(int begin, int end);
/* Forget the recorded events (their slots are reused). */
void wki_cuda_prof_events_reset(void);
#endif

#endif

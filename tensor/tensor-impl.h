/* Internals shared by tensor/ (and later autograd/, cuda/): storage, tensor handles,
 * error helpers. Not installed. Cross-file internal names carry the `wki_` prefix. */
#ifndef WK_TENSOR_IMPL_H
#define WK_TENSOR_IMPL_H

#include <time.h>
#include <stdatomic.h>

#include "tensor.h"

struct wk_storage {
    void *data;
    size_t nbytes;        /* bytes asked for */
    size_t capacity;      /* bytes of the pooled block (>= nbytes) */
    atomic_int refcount;
    wk_device device;
    bool external;        /* wk_from_blob: memory owned by the caller */
};

/* ---- allocator (alloc.c) ---- */

/* A block of at least `nbytes` (64-byte aligned) from the pool; *capacity gets its size.
 * NULL with an error when the system is out of memory. */
void *wki_alloc(size_t nbytes, size_t *capacity);
/* Give a block from wki_alloc back to the pool. */
void wki_dealloc(void *p, size_t capacity);
/* Fixed-size structs (tensor handles, storages, autograd nodes) from a free list. */
void *wki_struct_alloc(size_t size);
void wki_struct_free(void *p, size_t size);
/* The profiler's peak: the most bytes in use since the previous call (or the start), and
 * a new mark at the current use. Independent of wk_alloc_reset_peak. */
size_t wki_alloc_take_peak(void);

/* ---- storage and handles (tensor.c) ---- */

wk_storage *wki_storage_new(size_t nbytes, wk_device device);
void wki_storage_retain(wk_storage *s);
void wki_storage_release(wk_storage *s);

/* A zeroed handle registered in the current frame (or persistent outside frames). */
wk_tensor *wki_tensor_alloc(void);
/* Take one more reference on a handle (released with wki_tensor_release). */
void wki_tensor_retain(wk_tensor *t);
/* Drop a reference taken with wki_tensor_retain (an autograd node's), leaving the owner's
 * frame registration alone; the last reference frees the handle. wk_tensor_free is the
 * owner's release: it also takes the handle out of its frame. NULL-safe. */
void wki_tensor_release(wk_tensor *t);
/* Take a frame handle out of its frame: it becomes persistent. */
void wki_make_persistent(wk_tensor *t);
/* A new handle sharing t's storage, dtype, device, shape, strides and offset. */
wk_tensor *wki_tensor_view_of(const wk_tensor *t);
/* New contiguous tensor with the given shape/dtype on `device`. */
wk_tensor *wki_empty_on(const int64_t *shape, int ndim, wk_dtype dtype, wk_device device);
/* Row-major strides for shape. */
void wki_contiguous_strides(const int64_t *shape, int ndim, int64_t *strides);
/* prod(shape); -1 if it overflows int64. */
int64_t wki_shape_numel(const int64_t *shape, int ndim);

/* ---- frames (frame.c) ---- */

/* Register a new handle in the innermost frame (no-op outside frames). */
void wki_frame_register(wk_tensor *t);
/* Drop the handle's slot before an early free. */
void wki_frame_unregister(wk_tensor *t);

/* ---- errors (error.c) ---- */

/* For op `op`: true when all `n` tensors are non-NULL; otherwise records
 * "op: input k is NULL" unless an earlier message is pending, and returns false. */
bool wki_check_inputs(const char *op, int n, const wk_tensor *const *ts);
#define WKI_CHECK(op, ...)                                                               \
    wki_check_inputs(op, (int)(sizeof((const wk_tensor *[]){__VA_ARGS__}) /            \
                               sizeof(const wk_tensor *)),                              \
                     (const wk_tensor *const[]){__VA_ARGS__})
/* Formatted shape of t / of (shape, ndim) in a thread-local rotating buffer (8 slots). */
const char *wki_shape_s(const wk_tensor *t);
const char *wki_dims_s(const int64_t *shape, int ndim);
/* Normalise a possibly negative dim for an ndim-d tensor; -1 with an error when out of
 * range ("op: dim 3 is out of range for a 2-d tensor (expected -2..1)"). */
int wki_norm_dim(const char *op, int dim, int ndim);
/* Error unless every tensor is on the same device and (when dtype check asked) dtype. */
bool wki_same_device(const char *op, const wk_tensor *a, const wk_tensor *b);
/* Error naming the op and t's device when t is not on the CPU (kernels missing). */
bool wki_require_cpu(const char *op, const wk_tensor *t);

/* ---- threads (threads.c) ---- */

/* Threads for a loop over `work` elements, at least one per `grain` elements. */
int wki_threads_for(int64_t work, int64_t grain);

/* Seconds on the monotonic clock (for timings, never for results). */
static inline double wki_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

#endif

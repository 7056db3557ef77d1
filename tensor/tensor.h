/* wick tensors: n-d strided views over refcounted storage.
 *
 *   wk_frame_begin();
 *   wk_tensor *x = wk_empty(WK_SHAPE(2, 3), WK_DTYPE_F32);   // released at frame end
 *   wk_fill_(x, 1.0);
 *   wk_tensor *xt = wk_transpose(x, 0, 1);                   // a view: shares storage
 *   wk_tensor *y = wk_keep(wk_contiguous(xt));               // survives this frame
 *   wk_frame_end();
 *   ...
 *   wk_tensor_free(y);                                       // persistent: freed by hand
 *
 * Every function that can fail returns NULL (or a negative int) and records a message
 * for wk_last_error(); given a NULL tensor it returns NULL and keeps the first message,
 * so a chain of ops can be checked once at its end. Nothing aborts on user input.
 *
 * Lifetimes: a tensor made inside a frame belongs to that frame and is released at its
 * end unless wk_keep() moves it to the enclosing frame (or, at the outermost frame,
 * makes it persistent). A tensor made outside any frame is persistent: the caller frees
 * it with wk_tensor_free(). Views hold a reference to their storage, so freeing the
 * tensor a view was taken from never invalidates the view.
 */
#ifndef WK_TENSOR_H
#define WK_TENSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WK_MAX_DIMS 8

typedef enum {
    WK_DTYPE_F32,
    WK_DTYPE_F64,
    WK_DTYPE_I32,
    WK_DTYPE_I64,
    WK_DTYPE_U8,
    WK_DTYPE_BOOL,
    WK_DTYPE_BF16, /* storage and conversions only */
    WK_DTYPE_F16,  /* storage and conversions only */
    WK_DTYPE_COUNT
} wk_dtype;

typedef enum { WK_DEVICE_CPU, WK_DEVICE_CUDA, WK_DEVICE_COUNT } wk_device_type;

typedef struct {
    wk_device_type type;
    int index;
} wk_device;

#define WK_CPU ((wk_device){WK_DEVICE_CPU, 0})

typedef struct wk_storage wk_storage;
struct wk_node; /* autograd graph node (autograd/) */

typedef struct wk_tensor wk_tensor;
struct wk_tensor {
    wk_storage *storage;   /* shared by views; refcounted */
    int64_t offset;        /* in elements, from the start of storage */
    int64_t shape[WK_MAX_DIMS];
    int64_t strides[WK_MAX_DIMS]; /* in elements; 0 for expanded dims */
    int ndim;
    wk_dtype dtype;
    wk_device device;
    /* autograd */
    bool requires_grad;
    wk_tensor *grad;
    struct wk_node *grad_fn;
    /* lifetime: frame depth that owns it (0 = persistent), its slot there, and the
     * references held on this handle (its owner's, plus autograd nodes using it) */
    int frame;
    int32_t frame_slot;
    int32_t refs;
};

/* WK_SHAPE(2, 3) expands to the (shape, ndim) argument pair: `(const int64_t[]){2, 3}, 2`. */
#define WK_SHAPE(...)                                                                    \
    (const int64_t[]){__VA_ARGS__}, (int)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t))
/* WK_DIMS(0, 2) is a (dims, ndims) pair for permute and reductions. */
#define WK_DIMS(...)                                                                     \
    (const int[]){__VA_ARGS__}, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int))

/* ---- errors ---- */

/* The message of the most recent failure on this thread ("" if none). */
const char *wk_last_error(void);
/* Forget the recorded message. */
void wk_clear_error(void);
/* Record a failure message (printf-style); library code and user callbacks use it. */
void wk_set_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- dtypes and devices ---- */

/* Size in bytes of one element of `dtype`. */
size_t wk_dtype_size(wk_dtype dtype);
/* Short name as PyTorch prints it: "float32", "int64", "bool", ... ("?" if invalid). */
const char *wk_dtype_name(wk_dtype dtype);
/* True for f32, f64, bf16, f16. */
bool wk_dtype_is_float(wk_dtype dtype);
/* "cpu" or "cuda:N" into buf (returns buf). */
const char *wk_device_str(wk_device device, char *buf, size_t size);
/* Number of CUDA devices (0 when built without CUDA or without a GPU). */
int wk_cuda_device_count(void);

/* bf16 / f16 conversions (round to nearest even). */
uint16_t wk_f32_to_bf16(float x);
float wk_bf16_to_f32(uint16_t x);
uint16_t wk_f32_to_f16(float x);
float wk_f16_to_f32(uint16_t x);

/* ---- threads ---- */

/* Threads used by OpenMP loops and OpenBLAS together. n <= 0 restores the default
 * (env WK_NUM_THREADS, else the number of cores). */
void wk_set_num_threads(int n);
/* The current thread count. */
int wk_get_num_threads(void);

/* ---- frames and lifetimes ---- */

/* Open a frame: tensors made until the matching wk_frame_end() belong to it. Nestable. */
void wk_frame_begin(void);
/* Close the innermost frame, releasing every tensor made in it and not kept. */
void wk_frame_end(void);
/* Current frame depth (0 = no frame open). */
int wk_frame_depth(void);
/* Move `t` to the enclosing frame (persistent at the outermost). Returns t (NULL-safe). */
wk_tensor *wk_keep(wk_tensor *t);
/* Release a tensor now: a persistent one, or a frame one before its frame ends. When an
 * autograd node still uses the handle, it lives on until that node is released. NULL-safe. */
void wk_tensor_free(wk_tensor *t);

/* ---- allocation ---- */

typedef struct {
    uint64_t malloc_calls;  /* blocks taken from the system (data and structs) */
    uint64_t free_calls;    /* blocks returned to the system */
    uint64_t pool_hits;     /* allocations served from the pool */
    size_t bytes_in_use;    /* data bytes held by live storages */
    size_t bytes_cached;    /* data bytes idle in the pool */
    size_t peak_bytes_in_use;
} wk_alloc_stats;

/* Counters of the CPU allocator (all threads). */
wk_alloc_stats wk_alloc_get_stats(void);
/* Return every idle pooled block to the system. */
void wk_alloc_empty_cache(void);
/* Reset peak_bytes_in_use to the current use. */
void wk_alloc_reset_peak(void);

/* ---- making tensors ---- */

/* Uninitialised contiguous tensor on the CPU. */
wk_tensor *wk_empty(const int64_t *shape, int ndim, wk_dtype dtype);
/* Uninitialised contiguous tensor with the shape, dtype and device of `t`. */
wk_tensor *wk_empty_like(const wk_tensor *t);
/* Contiguous tensor holding a copy of `n = prod(shape)` elements of `data`. */
wk_tensor *wk_from_array(const void *data, const int64_t *shape, int ndim, wk_dtype dtype);
/* Tensor viewing caller-owned memory (not copied, not freed by wick). */
wk_tensor *wk_from_blob(void *data, const int64_t *shape, int ndim, wk_dtype dtype);

/* ---- properties ---- */

/* Number of elements. */
int64_t wk_numel(const wk_tensor *t);
/* True when the elements are laid out row-major without gaps. */
bool wk_is_contiguous(const wk_tensor *t);
/* Size of dim `dim` (negative counts from the end); -1 with an error if out of range. */
int64_t wk_size(const wk_tensor *t, int dim);
/* Pointer to the first element (storage data + offset). */
void *wk_data(const wk_tensor *t);
/* Value of a one-element tensor, converted to double (NaN with an error otherwise). */
double wk_item(const wk_tensor *t);
/* Element at a multi-index, converted to double (NaN with an error if out of range). */
double wk_get(const wk_tensor *t, const int64_t *index);
/* Shape as "[2, 3]" into buf (returns buf). */
const char *wk_shape_str(const wk_tensor *t, char *buf, size_t size);
/* True when both have the same ndim and sizes. */
bool wk_same_shape(const wk_tensor *a, const wk_tensor *b);

/* ---- views (share storage with the input) ---- */

/* View with a new shape (one -1 entry is inferred); fails if the strides do not allow it. */
wk_tensor *wk_view(wk_tensor *t, const int64_t *shape, int ndim);
/* Like wk_view, but copies when a view is impossible (torch.reshape). */
wk_tensor *wk_reshape(wk_tensor *t, const int64_t *shape, int ndim);
/* Swap two dims. */
wk_tensor *wk_transpose(wk_tensor *t, int dim0, int dim1);
/* Reorder dims: output dim i is input dim dims[i]. */
wk_tensor *wk_permute(wk_tensor *t, const int *dims, int ndims);
/* Remove dim `dim` if its size is 1 (unchanged otherwise). */
wk_tensor *wk_squeeze(wk_tensor *t, int dim);
/* Remove every dim of size 1. */
wk_tensor *wk_squeeze_all(wk_tensor *t);
/* Insert a dim of size 1 at `dim` (-1 = last). */
wk_tensor *wk_unsqueeze(wk_tensor *t, int dim);
/* Elements start, start+step, ... < end along dim (Python slicing; negative start/end
 * count from the end and are clamped; step >= 1). */
wk_tensor *wk_slice(wk_tensor *t, int dim, int64_t start, int64_t end, int64_t step);
/* `length` elements from `start` along dim (errors when out of range). */
wk_tensor *wk_narrow(wk_tensor *t, int dim, int64_t start, int64_t length);
/* Index `index` of dim, removing that dim (t[..., index, ...]). */
wk_tensor *wk_select(wk_tensor *t, int dim, int64_t index);
/* Broadcast size-1 dims to `shape` (-1 keeps a size); new leading dims allowed. */
wk_tensor *wk_expand(wk_tensor *t, const int64_t *shape, int ndim);
/* Flatten dims start..end (inclusive) into one; a view when possible. */
wk_tensor *wk_flatten(wk_tensor *t, int start_dim, int end_dim);
/* The same tensor when contiguous (a new handle sharing storage), else a contiguous copy. */
wk_tensor *wk_contiguous(wk_tensor *t);
/* A new handle on the same data, shape and strides (detached from autograd). */
wk_tensor *wk_alias(wk_tensor *t);

/* ---- copies ---- */

/* Copy src into dst, broadcasting src to dst's shape and converting dtypes.
 * Returns dst, or NULL on a shape/device mismatch. */
wk_tensor *wk_copy_(wk_tensor *dst, const wk_tensor *src);
/* Set every element of t to value (converted to t's dtype). Returns t. */
wk_tensor *wk_fill_(wk_tensor *t, double value);
/* A contiguous copy with its own storage. */
wk_tensor *wk_clone(const wk_tensor *t);
/* A contiguous copy converted to `dtype` (a new handle on t's data if dtype matches
 * and t is contiguous). */
wk_tensor *wk_to_dtype(wk_tensor *t, wk_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif

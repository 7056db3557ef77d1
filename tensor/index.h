/* Indexing and joining (PyTorch semantics): index_select, gather, scatter_add, index_add,
 * masked_fill, cat, stack, one_hot, and the split/chunk views.
 *
 *   wk_tensor *emb = wk_index_select(table, 0, ids);      // (V, D), ids (T,) -> (T, D)
 *   wk_tensor *p = wk_gather(probs, 1, targets);          // probs (B, C), targets (B, 1)
 *   wk_tensor *x = wk_cat((wk_tensor *[]){a, b}, 2, -1);
 *   wk_tensor *qkv[3];
 *   int n = wk_chunk(x, 3, -1, qkv, 3);                   // three views, n == 3
 *
 * Index tensors are int64 or int32, of any layout. Every index is checked before
 * anything is written ("gather: index 7 is out of range for dim 1 of size 5");
 * negative indices are errors. Results are new tensors owned by the current frame
 * (split/chunk give views sharing the input's storage); on failure functions return
 * NULL (or -1) with an error naming the op and the shapes or dtypes involved.
 * Pure data movement (index_select, gather, cat, stack, masked_fill, split) works for
 * every dtype; scatter_add and index_add need an arithmetic dtype (not bool, bf16, f16).
 *
 * Autograd: every op but one_hot records its backward for the float inputs (never for
 * index or mask tensors); the additions of scatter_add/index_add and their backward
 * sum in index order, so gradients are deterministic.
 */
#ifndef WK_INDEX_H
#define WK_INDEX_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The indexing family; every function below except the split views calls
 * wk_index_apply(). */
typedef enum {
    WK_INDEX_INDEX_SELECT,
    WK_INDEX_GATHER,
    WK_INDEX_SCATTER_ADD,
    WK_INDEX_INDEX_ADD,
    WK_INDEX_MASKED_FILL,
    WK_INDEX_CAT,
    WK_INDEX_STACK,
    WK_INDEX_ONE_HOT,
    WK_INDEX_COUNT
} wk_index_op;

/* Arguments of an indexing op; each op reads the fields its function takes. */
typedef struct {
    wk_tensor *x;             /* input; the labels of one_hot */
    wk_tensor *index;         /* index_select, gather, scatter_add, index_add */
    wk_tensor *src;           /* scatter_add, index_add */
    wk_tensor *mask;          /* masked_fill */
    wk_tensor *const *ts;     /* cat, stack: n tensors */
    int n;
    int dim;
    double value;             /* masked_fill */
    int64_t num_classes;      /* one_hot */
} wk_index_args;

/* Name of an indexing op ("gather", ...; "?" if invalid). */
const char *wk_index_name(wk_index_op op);

/* The family front-end: validates args for op, allocates and fills the result. */
wk_tensor *wk_index_apply(wk_index_op op, const wk_index_args *args);

/* Entries of x along dim at the positions in a 1-d index: the result has x's shape with
 * dim resized to len(index). */
wk_tensor *wk_index_select(wk_tensor *x, int dim, wk_tensor *index);
/* out[i][j][k] = x[i][index[i][j][k]][k] (dim = 1); index has x's rank and is no larger
 * than x outside dim; the result has index's shape. */
wk_tensor *wk_gather(wk_tensor *x, int dim, wk_tensor *index);
/* A copy of x with src[i][j][k] added at [i][index[i][j][k]][k] (dim = 1); index is no
 * larger than src anywhere nor than x outside dim. Deterministic. */
wk_tensor *wk_scatter_add(wk_tensor *x, int dim, wk_tensor *index, wk_tensor *src);
/* A copy of x with src's slices along dim added at the positions of the 1-d index:
 * out[:, index[i], :] += src[:, i, :] (dim = 1); src has x's shape with dim resized to
 * len(index). Repeated indices accumulate, in index order (deterministic). */
wk_tensor *wk_index_add(wk_tensor *x, int dim, wk_tensor *index, wk_tensor *src);
/* x with `value` where the bool mask is true; x and mask broadcast together. */
wk_tensor *wk_masked_fill(wk_tensor *x, wk_tensor *mask, double value);
/* Join n tensors along an existing dim; dtypes and sizes outside dim must match. */
wk_tensor *wk_cat(wk_tensor *const *ts, int n, int dim);
/* Join n tensors of one shape along a new dim inserted at dim. */
wk_tensor *wk_stack(wk_tensor *const *ts, int n, int dim);
/* int64 tensor of labels.shape + (num_classes,) with a 1 at each label; labels int64 or
 * int32 in [0, num_classes); num_classes = -1 means max(labels) + 1. */
wk_tensor *wk_one_hot(wk_tensor *labels, int64_t num_classes);

/* ---- views (share storage with x; not copies) ---- */

/* Pieces of split_size along dim (the last may be smaller) into out[0..]; returns the
 * count, or -1 with an error (also when more than max_out pieces would result). */
int wk_split(wk_tensor *x, int64_t split_size, int dim, wk_tensor **out, int max_out);
/* n pieces of the given sizes (summing to x's size along dim) into out[0..n-1]; returns
 * n or -1. */
int wk_split_sizes(wk_tensor *x, const int64_t *sizes, int n, int dim, wk_tensor **out);
/* torch.chunk: pieces of ceil(size/chunks) along dim (possibly fewer than chunks) into
 * out[0..]; returns the count or -1. */
int wk_chunk(wk_tensor *x, int chunks, int dim, wk_tensor **out, int max_out);

#ifdef __cplusplus
}
#endif
#endif

/* Internals of the indexing family shared with other files (nn/embedding.c). Not
 * installed. */
#ifndef WK_INDEX_IMPL_H
#define WK_INDEX_IMPL_H

#include "index.h"
#include "tensor-impl.h"

/* Zeros of shape (shape, ndim) in src's dtype, with src's slices along dim added at the
 * positions of the 1-d index, in index order (deterministic): the gradient of
 * index_select and embedding, without the copy of a zero input that wk_index_add would
 * make. The index is checked against shape[dim]; errors name `op`. Records no node. */
wk_tensor *wki_index_add_zeros(const char *op, const int64_t *shape, int ndim, int dim,
                               wk_tensor *index, wk_tensor *src);

#endif

/* Linear, Embedding and Flatten layers, and the functional embedding.
 *
 *   wk_generator g = wk_generator_make(0);
 *   wk_module *fc = wk_linear_new(784, 10, true, &g);        // "weight" (10, 784), "bias" (10)
 *   wk_module *emb = wk_embedding_new(65, 384, WK_NO_PADDING, &g);   // "weight" (65, 384)
 *   wk_module *flat = wk_flatten_new(1, -1);
 *   wk_frame_begin();
 *   wk_tensor *h = wk_module_forward(emb, tokens);           // (B, T) int64 -> (B, T, 384)
 *   wk_tensor *y = wk_module_forward(fc, wk_module_forward(flat, images));
 *   wk_frame_end();
 *
 * Parameters are float32, initialised as torch does: Linear's weight with
 * kaiming_uniform(a = sqrt(5)) (U(-1/sqrt(in), 1/sqrt(in))) and its bias with
 * U(-1/sqrt(in), 1/sqrt(in)); Embedding's weight with N(0, 1) (padding row zeroed).
 * Constructors return NULL with an error on invalid sizes; the module owns its
 * parameters (free it with wk_module_free).
 */
#ifndef WK_NN_LINEAR_H
#define WK_NN_LINEAR_H

#include "../tensor/random.h"
#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* padding_idx value for "no padding row". */
#define WK_NO_PADDING INT64_MIN

/* torch.nn.Linear: y = x @ weight^T + bias over x (..., in_features) -> (..., out_features).
 * Parameters "weight" (out, in) and, when bias, "bias" (out); g is the init stream (NULL:
 * the default generator). */
wk_module *wk_linear_new(int64_t in_features, int64_t out_features, bool bias,
                         wk_generator *g);

/* torch.nn.Embedding: rows of "weight" (num_embeddings, embedding_dim) at integer indices
 * of any shape -> (..., embedding_dim). padding_idx (negative counts from the end, as in
 * torch; WK_NO_PADDING for none) names a row that starts at zero and gets no gradient. */
wk_module *wk_embedding_new(int64_t num_embeddings, int64_t embedding_dim, int64_t padding_idx,
                            wk_generator *g);

/* torch.nn.Flatten: wk_flatten(x, start_dim, end_dim) (torch's default is 1, -1). */
wk_module *wk_flatten_new(int start_dim, int end_dim);

/* Rows of weight (V, D) at indices (int64 or int32, any shape) -> indices.shape + (D,).
 * Backward accumulates the rows' gradients into weight in index order (deterministic).
 * Errors: an index outside [0, V) (named), weight not 2-d float32/float64, bad index
 * dtype. */
wk_tensor *wk_embedding(wk_tensor *weight, wk_tensor *indices);
/* wk_embedding whose row padding_idx (in [-V, V), or WK_NO_PADDING) gets no gradient. */
wk_tensor *wk_embedding_ex(wk_tensor *weight, wk_tensor *indices, int64_t padding_idx);

#ifdef __cplusplus
}
#endif
#endif

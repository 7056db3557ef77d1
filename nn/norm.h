/* Normalisation, dropout and attention: functional ops (forward and backward, PyTorch
 * semantics) and their layer modules.
 *
 *   wk_module *bn = wk_batch_norm2d_new(16, 1e-5, 0.1, true, true);
 *   wk_module *ln = wk_layer_norm_new(WK_SHAPE(512), 1e-5, true);
 *   wk_module *attn = wk_causal_self_attention_new(512, 8, true, 0.1, &g);
 *   wk_frame_begin();
 *   wk_tensor *h = wk_module_forward(bn, images);            // (N, 16, H, W)
 *   wk_tensor *y = wk_module_forward(attn, wk_module_forward(ln, x));   // x: (B, T, 512)
 *   wk_tensor *z = wk_layer_norm(x, WK_SHAPE(512), NULL, NULL, 1e-5);   // the functional op
 *   wk_frame_end();
 *
 * The ops return NEW tensors owned by the current frame, or NULL with an error for
 * wk_last_error() naming the op, the shapes and dtypes it got and what it expected; a
 * NULL input returns NULL and keeps the first message. Inputs may have any layout. Every
 * op takes float32 or float64 (bf16/f16: convert with wk_to_dtype first); weights and
 * biases must have the input's dtype. Each op records an autograd node (fused backward
 * kernels) when an input requires grad.
 *
 * Numerics: statistics accumulate in double in fixed blocks combined in a fixed order,
 * so results do not depend on the thread count.
 */
#ifndef WK_NN_NORM_H
#define WK_NN_NORM_H

#include "../tensor/random.h"
#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- functional ops ---- */

/* torch.nn.functional.batch_norm on x (N, C) or (N, C, *): per channel c,
 * y = (x - mean_c) / sqrt(var_c + eps) * weight_c + bias_c. Training: batch statistics
 * (biased variance) and, when running_mean/running_var are given (both or neither;
 * float tensors of shape (C)), in place and without grad
 * running = (1 - momentum) * running + momentum * stat, with the unbiased variance.
 * Evaluation (training false): the running statistics, which are then required.
 * weight/bias (C) may be NULL. Errors: shapes, dtypes, a single value per channel in
 * training, missing running statistics in evaluation. */
wk_tensor *wk_batch_norm(wk_tensor *x, wk_tensor *running_mean, wk_tensor *running_var,
                         wk_tensor *weight, wk_tensor *bias, bool training, double momentum,
                         double eps);
/* torch.nn.functional.layer_norm: normalise over the last `nd` dims of x, which must equal
 * normalized_shape; weight/bias have shape normalized_shape or are NULL. */
wk_tensor *wk_layer_norm(wk_tensor *x, const int64_t *normalized_shape, int nd,
                         wk_tensor *weight, wk_tensor *bias, double eps);
/* torch.nn.functional.group_norm on x (N, C, *): statistics per sample over each of
 * `groups` groups of C/groups channels; weight/bias (C) or NULL. Errors: C not divisible
 * by groups, shapes, dtypes. */
wk_tensor *wk_group_norm(wk_tensor *x, int64_t groups, wk_tensor *weight, wk_tensor *bias,
                         double eps);

/* torch.nn.functional.dropout: in training, each element is zeroed with probability p
 * (mask from g, NULL = the default generator) and the others scaled by 1/(1 - p); the
 * backward multiplies by the same mask (saved as bytes). Not training, or p = 0: a view
 * of x (gradients pass through). p = 1: zeros (x * 0). Errors: p outside [0, 1]. */
wk_tensor *wk_dropout(wk_tensor *x, double p, bool training, wk_generator *g);

/* torch.nn.functional.scaled_dot_product_attention: softmax(q k^T / sqrt(D) + mask) v
 * for q (B..., Tq, D), k (B..., Tk, D), v (B..., Tk, Dv) -> (B..., Tq, Dv); batch dims
 * broadcast. attn_mask (NULL, or broadcastable to (B..., Tq, Tk)): bool (true = attend)
 * or q's float dtype (added to the scores; it gets a gradient when it requires one).
 * is_causal masks keys j > i (top-left aligned, torch's tril). dropout_p > 0 drops
 * attention weights with a mask from g. A row whose keys are all masked gives NaN, as in
 * torch's math implementation. Fused forward and backward (BLAS GEMMs over the batch;
 * the attention weights are saved for backward). Errors: shapes, dtypes, a mask together
 * with is_causal, dropout_p outside [0, 1]. */
wk_tensor *wk_scaled_dot_product_attention(wk_tensor *q, wk_tensor *k, wk_tensor *v,
                                           wk_tensor *attn_mask, bool is_causal,
                                           double dropout_p, wk_generator *g);
/* Multi-head self-attention on packed projections: qkv (B, T, 3E) holds q, k and v side
 * by side (as Linear(E, 3E) makes them, nanoGPT's c_attn and torch's in_proj), head h
 * using columns h*E/H .. (h+1)*E/H - 1 of each; returns (B, T, E) with the heads'
 * outputs side by side. The same as splitting, viewing as (B, H, T, E/H), calling
 * wk_scaled_dot_product_attention and merging the heads back, without the copies.
 * Errors: qkv not 3-d, last dim not a multiple of 3 * num_heads. */
wk_tensor *wk_qkv_attention(wk_tensor *qkv, int64_t num_heads, bool is_causal,
                            double dropout_p, wk_generator *g);

/* ---- modules (NULL with an error on invalid arguments; free with wk_module_free) ---- */

/* BatchNorm1d (input (N, C) or (N, C, L)) and BatchNorm2d (input (N, C, H, W)) with
 * torch's names: parameters weight (ones) and bias (zeros) when affine; buffers
 * running_mean (zeros), running_var (ones) and num_batches_tracked (int64, 0-d,
 * incremented by each training forward) when track_running_stats. momentum < 0 means
 * torch's momentum=None (cumulative average). Without running statistics the batch
 * statistics are used in evaluation too. Parameters and buffers are float32. */
wk_module *wk_batch_norm1d_new(int64_t num_features, double eps, double momentum, bool affine,
                               bool track_running_stats);
wk_module *wk_batch_norm2d_new(int64_t num_features, double eps, double momentum, bool affine,
                               bool track_running_stats);
/* LayerNorm(normalized_shape): weight (ones) and bias (zeros) of that shape when
 * elementwise_affine. */
wk_module *wk_layer_norm_new(const int64_t *normalized_shape, int nd, double eps,
                             bool elementwise_affine);
/* GroupNorm(num_groups, num_channels): weight (ones) and bias (zeros) of shape (C) when
 * affine. Errors: channels not divisible by groups. */
wk_module *wk_group_norm_new(int64_t num_groups, int64_t num_channels, double eps, bool affine);
/* Dropout(p): drops in training mode only, with its own generator seeded at construction
 * by a draw from g (NULL = the default generator). Errors: p outside [0, 1]. */
wk_module *wk_dropout_new(double p, wk_generator *g);
/* torch.nn.MultiheadAttention(embed_dim, num_heads, dropout, bias, batch_first=True) used
 * as self-attention: forward maps x (B, T, E) to (B, T, E) (the attention output only),
 * with a causal mask when is_causal. Parameters in_proj_weight (3E, E; xavier_uniform),
 * in_proj_bias (3E; zeros), out_proj.weight (E, E; Linear's default init), out_proj.bias
 * (E; zeros); no biases when bias is false. Attention dropout in training mode only.
 * Errors: E not divisible by num_heads. */
wk_module *wk_multihead_attention_new(int64_t embed_dim, int64_t num_heads, double dropout,
                                      bool bias, bool is_causal, wk_generator *g);
/* nanoGPT's CausalSelfAttention: c_attn = Linear(E, 3E), c_proj = Linear(E, E) (torch's
 * default init, biases when bias), n_head heads, causal; attention and residual dropout
 * with probability `dropout` in training mode. x (B, T, E) -> (B, T, E). */
wk_module *wk_causal_self_attention_new(int64_t n_embd, int64_t n_head, bool bias,
                                        double dropout, wk_generator *g);
/* The dropout generator of a Dropout, MultiheadAttention or CausalSelfAttention module
 * (to save, restore or reseed it); NULL with an error for other modules. */
wk_generator *wk_module_dropout_generator(wk_module *m);

#ifdef __cplusplus
}
#endif
#endif

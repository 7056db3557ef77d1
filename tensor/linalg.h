/* Matrix products (PyTorch semantics) through BLAS: matmul, mm, bmm, addmm, linear.
 *
 *   wk_tensor *x = wk_empty(WK_SHAPE(32, 128, 512), WK_DTYPE_F32);   // (B, T, C)
 *   wk_tensor *w = wk_empty(WK_SHAPE(2048, 512), WK_DTYPE_F32);      // (out, in)
 *   wk_tensor *b = wk_empty(WK_SHAPE(2048), WK_DTYPE_F32);
 *   wk_tensor *h = wk_linear(x, w, b);                   // (32, 128, 2048): one sgemm
 *   wk_tensor *y = wk_matmul(x, wk_transpose(w, 0, 1));  // same product, w not copied
 *   wk_tensor *q = wk_empty(WK_SHAPE(32, 128, 64), WK_DTYPE_F32);    // (B, T, D)
 *   wk_tensor *s = wk_bmm(q, wk_transpose(q, 1, 2));     // (B, T, T), nothing copied
 *
 * Only float32 and float64 are supported, and both operands must have the same dtype
 * (no silent promotion). Strided operands whose matrices are row- or column-major with
 * any leading dimension go to BLAS as they are (a transposed weight is never copied);
 * other layouts are copied first. Results are new contiguous tensors owned by the
 * current frame; on failure every function returns NULL with an error naming the op
 * and the shapes or dtypes involved.
 *
 * Autograd: every op records its backward, itself GEMMs over transposed views
 * (grad_a = g @ b^T, grad_b = a^T @ g; broadcast batch dims summed back). A matrix shared
 * by a batch (x (B, T, C) @ w, linear's weight) gets its gradient from one GEMM over all
 * B*T rows; linear's bias gradient is the column sums of g.
 */
#ifndef WK_LINALG_H
#define WK_LINALG_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The matrix-product family; every function below is a call of wk_linalg(). */
typedef enum {
    WK_LINALG_MATMUL,
    WK_LINALG_MM,
    WK_LINALG_BMM,
    WK_LINALG_ADDMM,
    WK_LINALG_LINEAR,
    WK_LINALG_COUNT
} wk_linalg_op;

/* Name of a linalg op ("matmul", ...; "?" if invalid). */
const char *wk_linalg_name(wk_linalg_op op);

/* The family front-end: beta*c + alpha*(a @ b) with op's shape rules (c: the bias of
 * addmm/linear or NULL; beta/alpha used by addmm only, linear uses 1/1). */
wk_tensor *wk_linalg(wk_linalg_op op, wk_tensor *a, wk_tensor *b, wk_tensor *c, double beta,
                     double alpha);

/* torch.matmul: 1-d x 1-d is a dot product (0-d result); a 1-d operand is promoted to a
 * matrix and the added dim removed from the result; batch dims broadcast.
 * Errors: 0-d inputs, inner sizes differ, batch dims do not broadcast, dtypes. */
wk_tensor *wk_matmul(wk_tensor *a, wk_tensor *b);
/* a (M, K) @ b (K, N) -> (M, N); both must be 2-d. */
wk_tensor *wk_mm(wk_tensor *a, wk_tensor *b);
/* a (B, M, K) @ b (B, K, N) -> (B, M, N); both 3-d with the same batch size. */
wk_tensor *wk_bmm(wk_tensor *a, wk_tensor *b);
/* beta*bias + alpha*(a @ b) for 2-d a, b; bias broadcasts to (M, N). Fused: the bias is
 * loaded into the result and BLAS accumulates onto it. beta = 0 ignores bias values. */
wk_tensor *wk_addmm(wk_tensor *bias, wk_tensor *a, wk_tensor *b, double beta, double alpha);
/* x (..., in) @ weight(out, in)^T + bias(out) -> (..., out); bias may be NULL. Fused: one
 * GEMM accumulating onto the bias rows, weight used transposed without a copy. */
wk_tensor *wk_linear(wk_tensor *x, wk_tensor *weight, wk_tensor *bias);

#ifdef __cplusplus
}
#endif
#endif

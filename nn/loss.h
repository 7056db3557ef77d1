/* Loss functions with PyTorch's semantics (torch.nn.functional), forward and backward,
 * float32 and float64.
 *
 *   wk_tensor *logits = wk_matmul(h, w);               // (N, C)
 *   wk_tensor *loss = wk_cross_entropy(logits, labels, NULL);   // labels: int64 (N)
 *   wk_backward(loss);
 *
 *   wk_cross_entropy_opts o = WK_CROSS_ENTROPY_DEFAULTS;
 *   o.label_smoothing = 0.1;
 *   o.reduction = WK_REDUCTION_SUM;
 *   loss = wk_cross_entropy(logits, labels, &o);
 *
 *   wk_tensor *l2 = wk_mse_loss(pred, y, WK_REDUCTION_MEAN);
 *
 * Every function returns a NEW tensor owned by the current frame (0-d for MEAN and SUM;
 * per element, or per sample for cross_entropy/nll_loss, with NONE), or NULL with an
 * error (wk_last_error()) naming the op and the shapes and dtypes it got: shape
 * mismatches (no broadcasting between input and target), integer/bf16/f16 inputs,
 * mixed dtypes or devices, class indices out of range (checked before anything is
 * computed), an invalid reduction, label_smoothing outside [0, 1], negative beta.
 * The input and float targets get gradients; class weights and pos_weight do not (as
 * in torch, where they are not differentiable).
 *
 * cross_entropy is fused: one pass per row computes the log-sum-exp and the loss, keeping
 * only the row's log-sum-exp for backward, whose single pass writes
 * (softmax - smoothed one-hot) * scale. The sums are deterministic and do not depend on
 * the thread count.
 */
#ifndef WK_NN_LOSS_H
#define WK_NN_LOSS_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* How per-element losses are combined. MEAN is 0, so zeroed options mean torch's default. */
typedef enum { WK_REDUCTION_MEAN, WK_REDUCTION_SUM, WK_REDUCTION_NONE } wk_reduction;

/* Options of wk_cross_entropy. Start from WK_CROSS_ENTROPY_DEFAULTS: a zeroed struct has
 * ignore_index 0, which would ignore class 0. */
typedef struct {
    wk_reduction reduction;  /* MEAN: over non-ignored targets, weighted (torch) */
    int64_t ignore_index;    /* class-index targets equal to it add nothing (-100) */
    double label_smoothing;  /* in [0, 1] */
    wk_tensor *weight;       /* (C) class weights of the input's dtype, or NULL */
} wk_cross_entropy_opts;
#define WK_CROSS_ENTROPY_DEFAULTS {WK_REDUCTION_MEAN, -100, 0.0, NULL}

/* Options of wk_nll_loss: those of cross_entropy without label smoothing. */
typedef struct {
    wk_reduction reduction;
    int64_t ignore_index;
    wk_tensor *weight;
} wk_nll_loss_opts;
#define WK_NLL_LOSS_DEFAULTS {WK_REDUCTION_MEAN, -100, NULL}

/* The loss family; every function below calls wk_loss(). */
typedef enum {
    WK_LOSS_CROSS_ENTROPY,
    WK_LOSS_NLL,
    WK_LOSS_MSE,
    WK_LOSS_L1,
    WK_LOSS_SMOOTH_L1,
    WK_LOSS_BCE_WITH_LOGITS,
    WK_LOSS_COUNT
} wk_loss_op;

/* Arguments of a loss; each op reads the fields its function takes. */
typedef struct {
    wk_tensor *input;        /* logits, log-probabilities or predictions */
    wk_tensor *target;
    wk_tensor *weight;       /* cross_entropy, nll: (C) or NULL */
    wk_tensor *pos_weight;   /* bce_with_logits: broadcastable to input, or NULL */
    wk_reduction reduction;
    int64_t ignore_index;    /* cross_entropy, nll: torch uses -100; 0 ignores class 0 */
    double label_smoothing;  /* cross_entropy */
    double beta;             /* smooth_l1 */
} wk_loss_args;

/* Name of a loss ("cross_entropy", ...; "?" if invalid). */
const char *wk_loss_name(wk_loss_op op);
/* The family front-end: validates args for op, computes the loss, records autograd. */
wk_tensor *wk_loss(wk_loss_op op, const wk_loss_args *args);

/* Cross entropy of logits (C), (N, C) or (N, C, d1, ...) against class indices (int64 or
 * int32 of shape (), (N) or (N, d1, ...), in [0, C) or ignore_index) or class
 * probabilities (the logits' shape and dtype). opts NULL = WK_CROSS_ENTROPY_DEFAULTS.
 * MEAN divides by the summed weights of the non-ignored targets (indices; NaN when all
 * are ignored) or by the number of rows (probabilities). */
wk_tensor *wk_cross_entropy(wk_tensor *logits, wk_tensor *target,
                            const wk_cross_entropy_opts *opts);
/* Negative log-likelihood: -weight[t] * log_probs[n, t] per row, shapes and reduction as
 * cross_entropy with class indices. opts NULL = WK_NLL_LOSS_DEFAULTS. */
wk_tensor *wk_nll_loss(wk_tensor *log_probs, wk_tensor *target, const wk_nll_loss_opts *opts);
/* (a - b)^2, reduced. a and b have one shape and dtype; both get gradients. */
wk_tensor *wk_mse_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction);
/* |a - b|, reduced (gradient sign(a - b), 0 where equal). */
wk_tensor *wk_l1_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction);
/* Huber-like: 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta (d = a - b); beta >= 0
 * (0 is the l1 loss). */
wk_tensor *wk_smooth_l1_loss(wk_tensor *a, wk_tensor *b, wk_reduction reduction, double beta);
/* -[pw t log sigmoid(x) + (1 - t) log(1 - sigmoid(x))], computed stably from the logits x
 * for targets t in [0, 1] (the input's shape and dtype); pos_weight (NULL = 1)
 * broadcasts to the input, typically (C). Logits and target both get gradients. */
wk_tensor *wk_binary_cross_entropy_with_logits(wk_tensor *logits, wk_tensor *target,
                                               wk_reduction reduction, wk_tensor *pos_weight);

#ifdef __cplusplus
}
#endif
#endif

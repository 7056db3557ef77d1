/* Convolution and pooling over NCHW images (PyTorch semantics), with autograd, and their
 * layer modules.
 *
 *   wk_tensor *x = ...;                                      // (N, 1, 28, 28) float32
 *   wk_module *conv = wk_conv2d_new(1, 8, 3, 3, &(wk_conv2d_opts){.padding = {1, 1}},
 *                                   true, NULL);             // weight (8, 1, 3, 3), bias (8)
 *   wk_module *pool = wk_max_pool2d_new(&(wk_pool2d_opts){.kernel = {2, 2}});
 *   wk_tensor *h = wk_module_forward(pool, wk_relu(wk_module_forward(conv, x)));
 *                                                            // (N, 8, 14, 14)
 *   // the same with the functional ops:
 *   wk_tensor *y = wk_conv2d(x, w, b, &(wk_conv2d_opts){.stride = {2, 2}, .groups = 1});
 *   wk_tensor *idx = NULL;
 *   wk_tensor *m = wk_max_pool2d(y, &(wk_pool2d_opts){.kernel = {3, 3}, .padding = {1, 1}},
 *                                &idx);                      // idx: int64 argmax per window
 *
 * Option structs are zero-initialised to PyTorch's defaults: stride 0 means 1 for
 * convolutions and the kernel size for pooling, dilation 0 means 1, groups 0 means 1.
 * Inputs are (N, C, H, W) or unbatched (C, H, W) (the result then has no batch dim
 * either), of any layout, float32 or float64; bf16/f16 must be converted with
 * wk_to_dtype first. Every op returns a new contiguous tensor owned by the current frame
 * and records an autograd node when an input requires grad; on failure it returns NULL
 * with a message naming the op, the shapes and what was expected.
 */
#ifndef WK_NN_CONV_H
#define WK_NN_CONV_H

#include "../tensor/random.h"
#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- convolution ---- */

typedef enum { WK_CONV_CONV2D, WK_CONV_COUNT } wk_conv_op;

/* How conv2d computes: AUTO picks by size; IM2COL unfolds patches and calls BLAS GEMM;
 * DIRECT runs a vectorised kernel over padded planes (stride 1 only, small channel
 * counts: it is the faster one there). A pass the requested algorithm cannot do falls
 * back to IM2COL. Results agree to rounding; for a given algorithm they do not depend on
 * the thread count. The direct kernels use the widest of AVX-512, AVX2 or plain vectors
 * the CPU has; the environment variable WK_CONV_ISA=generic|avx2|avx512 caps that (for
 * testing). */
typedef enum { WK_CONV_ALGO_AUTO, WK_CONV_ALGO_IM2COL, WK_CONV_ALGO_DIRECT } wk_conv_algo;

typedef struct {
    int64_t stride[2];   /* (h, w); 0 = 1 */
    int64_t padding[2];  /* zeros added on both sides of h and w */
    int64_t dilation[2]; /* 0 = 1 */
    int64_t groups;      /* 0 = 1; must divide in and out channels */
    wk_conv_algo algo;
} wk_conv2d_opts;

/* Name of a conv op ("conv2d"; "?" if invalid). */
const char *wk_conv_name(wk_conv_op op);

/* The family front-end: op on x (N, C, H, W), weight (O, C/groups, kh, kw) and bias (O)
 * or NULL; opts NULL = defaults. */
wk_tensor *wk_conv(wk_conv_op op, wk_tensor *x, wk_tensor *weight, wk_tensor *bias,
                   const wk_conv2d_opts *opts);
/* torch.nn.functional.conv2d: (N, O, OH, OW) with OH = (H + 2 pad - dil (kh - 1) - 1) /
 * stride + 1. Errors: ranks, channels not matching weight * groups, groups not dividing
 * C or O, bias not (O), stride/dilation < 1, padding < 0, dilated kernel larger than the
 * padded input, dtypes differing or not float, devices. */
wk_tensor *wk_conv2d(wk_tensor *x, wk_tensor *weight, wk_tensor *bias,
                     const wk_conv2d_opts *opts);

/* ---- pooling ---- */

typedef enum {
    WK_POOL_MAX2D,          /* max over each window; NaN propagates */
    WK_POOL_AVG2D,          /* mean over each window */
    WK_POOL_ADAPTIVE_AVG2D, /* mean over windows that tile the input (output_size) */
    WK_POOL_COUNT
} wk_pool_op;

typedef struct {
    int64_t kernel[2];      /* (h, w) window; not used by adaptive pooling */
    int64_t stride[2];      /* 0 = kernel size */
    int64_t padding[2];     /* implicit -inf (max) or 0 (avg) on both sides; <= kernel/2 */
    int64_t dilation[2];    /* max pooling only; 0 = 1 */
    int64_t output_size[2]; /* adaptive pooling only */
    bool ceil_mode;         /* round the output size up (windows must start inside) */
    bool exclude_pad;       /* avg: torch's count_include_pad=False (divide by the
                             * number of real elements, not the window size) */
    int64_t divisor_override; /* avg: divide by this instead (0 = not used) */
} wk_pool2d_opts;

/* Name of a pool op ("max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"; "?" if invalid). */
const char *wk_pool_name(wk_pool_op op);

/* The family front-end. indices (max pooling only, may be NULL) receives a new int64
 * tensor of the output's shape holding each window's argmax as h * W + w within its
 * plane (the first one on ties, the last NaN when there are NaNs, as torch). */
wk_tensor *wk_pool2d(wk_pool_op op, wk_tensor *x, const wk_pool2d_opts *opts,
                     wk_tensor **indices);
/* torch.nn.functional.max_pool2d(..., return_indices = indices != NULL); backward routes
 * each gradient to its window's argmax. Errors: rank, kernel/stride/dilation < 1,
 * padding < 0 or > kernel/2, an output size < 1, dtypes, devices. */
wk_tensor *wk_max_pool2d(wk_tensor *x, const wk_pool2d_opts *opts, wk_tensor **indices);
/* torch.nn.functional.avg_pool2d (count_include_pad = !exclude_pad, divisor_override).
 * Errors as max_pool2d (dilation must be 1), divisor_override < 0. */
wk_tensor *wk_avg_pool2d(wk_tensor *x, const wk_pool2d_opts *opts);
/* torch.nn.functional.adaptive_avg_pool2d to (out_h, out_w): window i spans
 * [floor(i H / out_h), ceil((i + 1) H / out_h)). Errors: rank, output sizes < 1,
 * zero-size H or W, dtypes, devices. */
wk_tensor *wk_adaptive_avg_pool2d(wk_tensor *x, int64_t out_h, int64_t out_w);

/* ---- modules ---- */

/* torch.nn.Conv2d(in, out, (kh, kw), stride, padding, dilation, groups, bias): parameters
 * "weight" (out, in/groups, kh, kw) and "bias" (out) when bias, float32, with torch's
 * default init (kaiming_uniform(a = sqrt 5), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)))
 * drawn from g (NULL = default generator). opts NULL = defaults. NULL with an error on
 * invalid sizes (in/out not divisible by groups, kernel < 1, ...). */
wk_module *wk_conv2d_new(int64_t in_channels, int64_t out_channels, int64_t kh, int64_t kw,
                         const wk_conv2d_opts *opts, bool bias, wk_generator *g);
/* torch.nn.MaxPool2d / AvgPool2d with the given options (copied); no parameters. */
wk_module *wk_max_pool2d_new(const wk_pool2d_opts *opts);
wk_module *wk_avg_pool2d_new(const wk_pool2d_opts *opts);
/* torch.nn.AdaptiveAvgPool2d((out_h, out_w)); no parameters. */
wk_module *wk_adaptive_avg_pool2d_new(int64_t out_h, int64_t out_w);

#ifdef __cplusplus
}
#endif
#endif

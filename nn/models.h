/* Built-in model architectures: the reference models of the benchmarks (an MLP, the
 * Fashion-MNIST CNN, nanoGPT's GPT) and a small ResNet, each built from nn/'s layers
 * with PyTorch's parameter names, so state dicts exchange with the torch originals.
 *
 *   wk_generator g = wk_generator_make(0);
 *   const int64_t sizes[] = {784, 500, 10};
 *   wk_module *mlp = wk_mlp_new(&(wk_mlp_opts){.sizes = sizes, .nsizes = 3}, &g);
 *   wk_model *clf = wk_classifier_new(mlp);                // "inputs", "labels"
 *
 *   wk_model *gpt = wk_gpt_new(&(wk_gpt_opts){.vocab_size = 256, .block_size = 128,
 *                                             .n_layer = 4, .n_head = 4, .n_embd = 128}, &g);
 *   if (!gpt) fprintf(stderr, "%s\n", wk_last_error());   // names the bad option
 *   wk_batch b = {0};
 *   wk_batch_set(&b, "inputs", tokens);                     // (B, T) int64
 *   wk_batch_set(&b, "targets", next_tokens);               // (B, T) int64
 *   wk_model_output out;
 *   wk_frame_begin();
 *   wk_model_forward(gpt, &b, WK_MODE_LOSS, &out);          // {"loss"}
 *   wk_backward(wk_model_total_loss(&out));
 *   wk_frame_end();
 *   wk_model_free(gpt);
 *
 * Every option struct reads a zeroed field as its documented default. Constructors draw
 * every initial value from g (NULL: the default generator), so one seed gives the same
 * model; they return a new module/model the caller frees (wk_module_free /
 * wk_model_free, or hands to a container or wk_classifier_new), or NULL with an error
 * naming the bad option and the range expected (never an abort). Parameters are float32.
 */
#ifndef WK_NN_MODELS_H
#define WK_NN_MODELS_H

#include <stdbool.h>
#include <stdint.h>

#include "../tensor/random.h"
#include "model.h"
#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- MLP ---- */

/* Linear(sizes[0]->sizes[1]) act [Dropout] Linear ... Linear(sizes[n-2]->sizes[n-1]), no
 * activation after the last Linear. A torch.nn.Sequential: children "0", "1", ... exactly
 * as torch names Sequential(Linear, ReLU, [Dropout], Linear, ...) ("0.weight", "2.bias"
 * without dropout; "3.weight" is the second Linear with it). */
typedef struct {
    const int64_t *sizes; int nsizes;   /* >= 2 sizes, each >= 1: in, hidden..., out */
    const char *activation;             /* "relu" (default, also NULL), "gelu" (erf),
                                         * "tanh", "sigmoid", "silu" */
    double dropout;                     /* p in [0, 1] of a Dropout after each hidden
                                         * activation (0: none) */
    double init_std;                    /* > 0: every weight and bias ~ N(0, init_std);
                                         * 0: torch's default init */
} wk_mlp_opts;
/* The MLP as a Sequential (forward: (..., sizes[0]) -> (..., sizes[n-1])). Errors: NULL
 * opts or sizes, nsizes < 2, a size < 1, an unknown activation, dropout outside [0, 1],
 * init_std negative or not finite. */
wk_module *wk_mlp_new(const wk_mlp_opts *o, wk_generator *g);

/* ---- the Fashion-MNIST CNN ---- */

/* The cnn of BENCHMARKS.md (ggml's mnist-cnn): Conv2d(in, 8, 3, padding 1) ReLU MaxPool2d(2)
 * Conv2d(8, 16, 3, padding 1) ReLU MaxPool2d(2) Flatten Linear(16*7*7 = 784, classes), as a
 * Sequential with torch's names "0.weight", "3.weight", "7.weight" (9,098 parameters for
 * 1 channel and 10 classes). Input (N, in_channels, 28, 28); output (N, num_classes). */
typedef struct {
    int64_t in_channels;    /* 0: 1 */
    int64_t num_classes;    /* 0: 10 */
    double init_std;        /* > 0: every weight and bias ~ N(0, init_std); 0: torch default */
} wk_fmnist_cnn_opts;
/* Errors: NULL opts, in_channels or num_classes negative, init_std negative or not finite. */
wk_module *wk_fmnist_cnn_new(const wk_fmnist_cnn_opts *o, wk_generator *g);

/* ---- a small ResNet ---- */

/* A CIFAR-style ResNet: stem conv3x3(in -> width) + BN + ReLU (no max pool), then `stages`
 * stages of `blocks` BasicBlocks (conv3x3-BN-ReLU-conv3x3-BN, plus the identity or, when
 * the shape changes, a 1x1-conv + BN downsample shortcut, then ReLU); stage s has
 * width * 2^s channels and its first block has stride 2 from the second stage on; global
 * average pool, Linear -> num_classes. Names as torchvision's resnet: conv1, bn1,
 * layer1.0.conv1, layer1.0.bn1, layer1.0.conv2, layer1.0.bn2, layer2.0.downsample.0,
 * layer2.0.downsample.1, ..., fc. Convolutions have no bias. Init as torchvision:
 * conv weights kaiming_normal(fan_out, relu), BN weight 1 and bias 0, fc torch's default.
 * Input (N, in_channels, H, W), output (N, num_classes). */
typedef struct {
    int64_t in_channels, num_classes;  /* >= 1 each */
    int64_t width;                     /* channels of the first stage, 1..4096; 0: 16 */
    int stages;                        /* 1..8; 0: 3 */
    int blocks;                        /* BasicBlocks per stage, 1..64; 0: 1 */
} wk_resnet_opts;
/* Errors: NULL opts, a field out of its range, a last stage wider than 65536 channels. */
wk_module *wk_resnet_small_new(const wk_resnet_opts *o, wk_generator *g);

/* ---- GPT ---- */

/* nanoGPT's GPT: token + learned position embeddings (+ dropout), n_layer pre-LayerNorm
 * blocks (causal self-attention on packed QKV, exact-GELU MLP of 4 * n_embd), final
 * LayerNorm, lm_head tied to the token embedding (logits = x @ wte.weight^T; not a
 * separate parameter). Names as nanoGPT: transformer.wte.weight, transformer.wpe.weight,
 * transformer.h.<i>.ln_1.weight/.bias, .attn.c_attn.weight/.bias, .attn.c_proj.weight/.bias,
 * .ln_2, .mlp.c_fc, .mlp.c_proj, transformer.ln_f.weight/.bias. Init: Linear and Embedding
 * weights N(0, init_std), c_proj weights N(0, init_std / sqrt(2 n_layer)) (nanoGPT's
 * scaled init), biases 0, LayerNorm weight 1 and bias 0. */
typedef struct {
    int64_t vocab_size, block_size, n_layer, n_head, n_embd; /* >= 1 each; n_head | n_embd */
    double dropout;         /* p in [0, 1] of every dropout (training mode only); 0: none */
    bool no_bias;           /* true: no biases in the Linears and LayerNorms (nanoGPT's
                             * bias=False); false: biases everywhere */
    double init_std;        /* 0: 0.02 */
} wk_gpt_opts;
/* The GPT as a model (nn/model.h): batch "inputs" (B, T) int64 token ids (1 <= T <=
 * block_size) and "targets" (B, T) int64 (-1: ignored, as nanoGPT's ignore_index);
 *   LOSS    -> {"loss": mean cross-entropy of logits vs targets}   (targets required)
 *   PREDICT -> {"logits" (B, T, V), and when the batch has targets "loss"}
 *   TENSOR  -> {"logits"}.
 * Errors as wk_gpt_module_new. */
wk_model *wk_gpt_new(const wk_gpt_opts *o, wk_generator *g);
/* The same GPT as a module whose one-tensor forward maps token ids (B, T) to logits
 * (B, T, vocab_size). Errors: NULL opts, a size < 1, n_embd not divisible by n_head,
 * dropout outside [0, 1], init_std negative or not finite. The forward reports ids
 * that are not (B, T) integers and T outside 1..block_size. */
wk_module *wk_gpt_module_new(const wk_gpt_opts *o, wk_generator *g);

#ifdef __cplusplus
}
#endif
#endif

/* The model contract: a module plus a forward over a named batch, with MMEngine's three
 * modes. The Runner and the metrics talk to every model through it.
 *
 *   wk_model *model = wk_classifier_new(net);       // takes net; "inputs", "labels"
 *   wk_batch b = {0};
 *   wk_batch_set(&b, "inputs", x);
 *   wk_batch_set(&b, "labels", y);
 *   wk_model_output out;
 *   wk_frame_begin();
 *   if (wk_model_forward(model, &b, WK_MODE_LOSS, &out) < 0) ...wk_last_error()...
 *   wk_backward(wk_model_total_loss(&out));         // out: {"loss": ...}
 *   wk_frame_end();
 *   wk_model_free(model);                           // frees net too
 *
 * Modes (MMEngine's BaseModel.forward):
 *   WK_MODE_LOSS     named losses; every output whose name contains "loss" is summed by
 *                    wk_model_total_loss and back-propagated; others (e.g. "acc") are
 *                    only logged.
 *   WK_MODE_PREDICT  outputs for metrics (the classifier: "logits", "preds", "labels").
 *   WK_MODE_TENSOR   raw outputs, no post-processing (the classifier: "logits").
 *
 * A custom model is a forward function filling `out` with wk_model_output_set:
 *
 *   static int my_forward(wk_model *m, const wk_batch *b, wk_forward_mode mode,
 *                         wk_model_output *out) {
 *       wk_tensor *y = wk_module_forward(m->module, wk_batch_get(b, "inputs"));
 *       if (mode != WK_MODE_LOSS) return wk_model_output_set(out, "pred", y);
 *       return wk_model_output_set(out, "loss_mse", my_mse(y, wk_batch_get(b, "target")));
 *   }
 *   wk_model *m = wk_model_new(net, my_forward, NULL, NULL);
 *
 * Batch and output tensors are borrowed: they live in the caller's frame.
 */
#ifndef WK_NN_MODEL_H
#define WK_NN_MODEL_H

#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { WK_MODE_LOSS, WK_MODE_PREDICT, WK_MODE_TENSOR, WK_MODE_COUNT } wk_forward_mode;

/* "loss", "predict", "tensor" ("?" for an invalid mode). */
const char *wk_forward_mode_name(wk_forward_mode mode);

#define WK_BATCH_MAX 8

/* A batch: up to WK_BATCH_MAX named tensors (names and tensors borrowed). A zeroed
 * struct is an empty batch. */
typedef struct wk_batch {
    int count;
    const char *names[WK_BATCH_MAX];
    wk_tensor *tensors[WK_BATCH_MAX];
} wk_batch;

/* The tensor called `name`, or NULL with an error listing the names the batch has. */
wk_tensor *wk_batch_get(const wk_batch *b, const char *name);
/* Add (or replace) the tensor called `name` (both pointers are kept, not copied: the
 * name must outlive the batch). 0, or -1 with an error (NULL or empty name, NULL tensor,
 * batch full). */
int wk_batch_set(wk_batch *b, const char *name, wk_tensor *t);

#define WK_OUTPUT_MAX 8
#define WK_OUTPUT_NAME_MAX 32

/* What a forward returns: up to WK_OUTPUT_MAX named tensors (borrowed from the frame the
 * forward ran in). wk_model_forward zeroes it before calling the model. */
typedef struct {
    int count;
    char names[WK_OUTPUT_MAX][WK_OUTPUT_NAME_MAX];
    wk_tensor *values[WK_OUTPUT_MAX];
} wk_model_output;

/* Add (or replace) output `name`. 0, or -1 with an error (NULL value: the error that
 * produced it is kept and the name added to it; empty name or one of 32 characters or
 * more; output full). */
int wk_model_output_set(wk_model_output *out, const char *name, wk_tensor *value);
/* The output called `name`, or NULL with an error listing the outputs there are. */
wk_tensor *wk_model_output_get(const wk_model_output *out, const char *name);

typedef struct wk_model wk_model;

/* A model's forward: fill `out` for `mode` from `batch`; 0, or -1 with an error. */
typedef int (*wk_model_forward_fn)(wk_model *model, const wk_batch *batch,
                                   wk_forward_mode mode, wk_model_output *out);

struct wk_model {
    wk_module *module;           /* owned: parameters, buffers, train/eval */
    wk_model_forward_fn forward;
    void *user;                  /* the forward's settings */
    void (*user_free)(void *user); /* frees user in wk_model_free, or NULL */
};

/* A model owning `module` (freed with it, also when this fails) with the given forward.
 * NULL with an error (NULL module or forward, out of memory). */
wk_model *wk_model_new(wk_module *module, wk_model_forward_fn forward, void *user,
                       void (*user_free)(void *user));
/* Free the module, user (through user_free) and the model. NULL-safe. */
void wk_model_free(wk_model *model);

/* Run model->forward for `mode` into *out (zeroed first). Checks the result: every
 * output non-NULL, and in LOSS mode at least one output named "*loss*", each a float
 * tensor. 0, or -1 with an error naming the model's module type and mode. */
int wk_model_forward(wk_model *model, const wk_batch *batch, wk_forward_mode mode,
                     wk_model_output *out);
/* The sum of the outputs whose names contain "loss" (each averaged first when it has
 * more than one element, as MMEngine's parse_losses): a new 0-d tensor in the current
 * frame, differentiable. NULL with an error when there is no loss output. */
wk_tensor *wk_model_total_loss(const wk_model_output *out);

/* A loss of logits and labels: a new one-element tensor or NULL with an error. */
typedef wk_tensor *(*wk_classifier_loss_fn)(wk_tensor *logits, wk_tensor *labels);

/* A classifier around `net` (ownership taken): reads batch "inputs" (and "labels");
 * logits = net(inputs);
 *   LOSS    -> {"loss": wk_cross_entropy(logits, labels)}  (labels required)
 *   PREDICT -> {"logits", "preds": argmax over the class dim (1, or 0 for 1-d logits),
 *               and, when the batch has "labels", "labels" and "loss" (for metrics)}
 *   TENSOR  -> {"logits"}.
 * NULL with an error (NULL net, out of memory; net is freed). */
wk_model *wk_classifier_new(wk_module *net);
/* Like wk_classifier_new with another loss (LOSS, and PREDICT with labels; e.g. one with
 * label smoothing). */
wk_model *wk_classifier_new_with_loss(wk_module *net, wk_classifier_loss_fn loss);

#ifdef __cplusplus
}
#endif
#endif

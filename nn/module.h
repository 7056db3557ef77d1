/* wick modules: named parameters, buffers and children, as in torch.nn.Module.
 *
 *   wk_module *net = wk_sequential_new();
 *   wk_module_add_child(net, "0", wk_linear_new(784, 500, true, &g));
 *   wk_module_add_child(net, "1", wk_relu_new());
 *   wk_module_add_child(net, "2", wk_linear_new(500, 10, true, &g));
 *   wk_tensor *y = wk_module_forward(net, x);       // in a frame
 *   wk_module_free(net);                            // frees the children too
 *
 * A module owns its parameters (persistent tensors with requires_grad), buffers
 * (persistent tensors without grad, e.g. running means) and children. Names follow
 * PyTorch: a child registered as "features" whose parameter is "weight" is reached as
 * "features.weight", so state dicts match torch's names.
 *
 * A layer type is a forward function plus a small config struct (the module's `config`,
 * allocated with the module and freed with it):
 *
 *   typedef struct { int64_t stride; } my_cfg;
 *   static wk_tensor *my_forward(wk_module *m, wk_tensor *x) {
 *       const my_cfg *c = m->config; ... return y; }
 *   wk_module *m = wk_module_new("MyLayer", my_forward, sizeof(my_cfg));
 */
#ifndef WK_NN_MODULE_H
#define WK_NN_MODULE_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_module wk_module;

/* One-tensor forward of a layer; returns a new (frame) tensor or NULL with an error. */
typedef wk_tensor *(*wk_forward_fn)(wk_module *m, wk_tensor *x);

typedef struct {
    char *name;
    wk_tensor *tensor;
} wk_module_entry;

typedef struct {
    char *name;
    wk_module *module;
} wk_module_slot;

struct wk_module {
    const char *type;           /* "Linear", "Sequential", ... (static string) */
    wk_forward_fn forward;      /* NULL for containers with no single-tensor forward */
    void *config;               /* layer settings, freed with the module */
    void (*config_free)(void *config); /* extra cleanup of config's own pointers, or NULL */
    bool training;
    int nparams, nbuffers, nchildren;
    wk_module_entry *params;    /* in registration order */
    wk_module_entry *buffers;
    wk_module_slot *children;
};

/* A new empty module of the given type with a zeroed config of config_size bytes. */
wk_module *wk_module_new(const char *type, wk_forward_fn forward, size_t config_size);
/* Free the module, its parameters, buffers, children and config. NULL-safe. */
void wk_module_free(wk_module *m);

/* Register a parameter: the module takes ownership of t, makes it persistent and sets
 * requires_grad. Returns t, or NULL with an error (NULL t, non-float t, bad or duplicate
 * name); on error t is freed. */
wk_tensor *wk_module_add_parameter(wk_module *m, const char *name, wk_tensor *t);
/* Register a buffer (saved in state dicts, no grad); ownership as for parameters. */
wk_tensor *wk_module_add_buffer(wk_module *m, const char *name, wk_tensor *t);
/* Register a child (ownership taken; freed on error). Returns child or NULL. */
wk_module *wk_module_add_child(wk_module *m, const char *name, wk_module *child);

/* The parameter, buffer or child registered directly on m under name (NULL if none). */
wk_tensor *wk_module_param(const wk_module *m, const char *name);
wk_tensor *wk_module_buffer(const wk_module *m, const char *name);
wk_module *wk_module_child(const wk_module *m, const char *name);

/* Run m's forward on x (error naming the type when it has none). */
wk_tensor *wk_module_forward(wk_module *m, wk_tensor *x);
/* Set training mode on m and every descendant (eval: training = false). */
void wk_module_train(wk_module *m, bool training);

typedef struct {
    char name[256];             /* dotted path, e.g. "features.0.weight" */
    wk_tensor *tensor;          /* borrowed from the module */
    bool is_buffer;
} wk_named_param;

/* Walk the parameters (and, with buffers, the buffers) depth-first in registration
 * order, as torch's named_parameters/state_dict do. Fills up to cap entries of out (out
 * may be NULL) and returns the total count. */
int wk_module_named_parameters(const wk_module *m, bool buffers, wk_named_param *out, int cap);
/* The tensor at a dotted path ("features.0.weight"), parameter or buffer; NULL if none. */
wk_tensor *wk_module_find(const wk_module *m, const char *path);
/* Number of parameter elements (buffers not counted). */
int64_t wk_module_num_parameters(const wk_module *m);
/* Zero (keep allocated) the grads of every parameter. */
void wk_module_zero_grad(wk_module *m);

#ifdef __cplusplus
}
#endif
#endif

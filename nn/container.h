/* Containers: Sequential (children run one after the other) and ModuleList (children
 * held and indexed, no forward), as torch.nn.Sequential and torch.nn.ModuleList.
 *
 *   wk_module *net = wk_sequential_new();
 *   wk_sequential_append(net, wk_linear_new(784, 500, true, &g));   // child "0"
 *   wk_sequential_append(net, wk_relu_new());                       // child "1"
 *   wk_sequential_append(net, wk_linear_new(500, 10, true, &g));    // child "2"
 *   wk_tensor *y = wk_module_forward(net, x);   // 2(1(0(x))); names "0.weight", ...
 *   wk_module_free(net);                        // frees the children too
 *
 *   wk_module *blocks = wk_module_list_new();
 *   for (int i = 0; i < 4; i++) wk_module_list_append(blocks, make_block(i));
 *   for (int i = 0; i < wk_module_list_len(blocks); i++)
 *       h = wk_module_forward(wk_module_list_get(blocks, i), h);
 *
 * Children are named "0", "1", ... in append order, so the dotted parameter names are
 * torch's ("0.weight", "blocks.3.attn.bias"). Appending takes ownership of the child,
 * also on failure (the child is then freed).
 */
#ifndef WK_NN_CONTAINER_H
#define WK_NN_CONTAINER_H

#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* An empty Sequential (type "Sequential"). Its forward feeds x through the children in
 * order; an empty Sequential returns x itself, as torch's does. A failing child's error
 * is prefixed with its name and type ("Sequential[2] (Linear): linear: ..."). Freed
 * with wk_module_free. NULL with an error when out of memory. */
wk_module *wk_sequential_new(void);
/* Append `module` to a Sequential as child "<len>". Returns module, or NULL with an
 * error (seq not a Sequential, NULL module, name already taken); module is freed on
 * error. */
wk_module *wk_sequential_append(wk_module *seq, wk_module *module);
/* A Sequential of the n modules mods[0..n-1] (ownership of all of them taken). NULL
 * with an error when a module is NULL or n < 0; every non-NULL module is then freed. */
wk_module *wk_sequential_of(wk_module *const *mods, int n);

/* An empty ModuleList (type "ModuleList"; no forward: wk_module_forward reports it). */
wk_module *wk_module_list_new(void);
/* Append `module` as child "<len>"; returns module or NULL with an error as for
 * wk_sequential_append (list must be a ModuleList). */
wk_module *wk_module_list_append(wk_module *list, wk_module *module);
/* Child i of a ModuleList or Sequential (borrowed); negative i counts from the end as in
 * Python. NULL with an error when i is out of range or list is not a container. */
wk_module *wk_module_list_get(const wk_module *list, int i);
/* Number of children of a ModuleList or Sequential; -1 with an error otherwise. */
int wk_module_list_len(const wk_module *list);

#ifdef __cplusplus
}
#endif
#endif

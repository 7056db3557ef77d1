/* State dicts: a module's parameters and buffers saved to and loaded from safetensors
 * files under torch's dotted names ("0.weight", "features.1.running_mean"), so files
 * are exchanged with PyTorch (safetensors.torch.save_file / load_file).
 *
 *   if (wk_state_dict_save(net, "mlp.safetensors", NULL, NULL, 0) < 0) ...wk_last_error()
 *
 *   wk_state_dict_report rep;
 *   if (wk_state_dict_load(net, "mlp.safetensors", true, &rep) < 0)
 *       fprintf(stderr, "%s\n", wk_last_error());
 *       // "state_dict_load: mlp.safetensors: 2 problems: fc.weight: file has [10, 500],
 *       //  model has [10, 784]; missing \"fc.bias\""
 *   wk_state_dict_report_free(&rep);
 *
 * A checkpoint holding several state dicts in one file uses prefixes:
 *
 *   wk_named_tensor *items = NULL; int n = 0;
 *   wk_state_dict_append(model, "model.", &items, &n);
 *   wk_state_dict_append(ema, "ema.", &items, &n);
 *   wk_safetensors_save(path, items, n, keys, values, nmeta);
 *   wk_state_dict_items_free(items, n);
 *   ...
 *   wk_safetensors st;  wk_safetensors_load(path, &st);
 *   wk_state_dict_load_from(model, &st, "model.", true, NULL);
 *   wk_safetensors_free(&st);
 *
 * Loading checks every entry before it changes anything: a name the model has but the
 * file lacks is "missing", a file entry (under the prefix) the model lacks is
 * "unexpected", and entries present in both must agree in shape and dtype (no silent
 * conversion). Strict loading fails on any of these without touching the model; the
 * error names every problem (as many as fit in the message; the report holds all of
 * them). Non-strict loading copies the entries that agree and skips the rest, like
 * MMEngine's load_state_dict(strict=False), listing what it skipped in the report.
 * Values are copied into the module's existing tensors (optimizers holding them stay
 * valid); gradients are not touched.
 */
#ifndef WK_NN_STATE_DICT_H
#define WK_NN_STATE_DICT_H

#include "../tensor/safetensors.h"
#include "module.h"

#ifdef __cplusplus
extern "C" {
#endif

/* What a load found. Every string is malloc'd and freed by wk_state_dict_report_free. */
typedef struct {
    char **missing;     /* model names absent from the file, in state-dict order */
    int nmissing;
    char **unexpected;  /* file names (prefix removed) the model lacks, sorted */
    int nunexpected;
    char **mismatched;  /* "fc.weight: file has [10, 500], model has [10, 784]" or
                         * "fc.weight: file has float64, model has float32" */
    int nmismatched;
    int nloaded;        /* entries copied into the model (0 when a strict load failed) */
} wk_state_dict_report;

/* Free the report's strings and zero it. NULL-safe; a zeroed report is fine. */
void wk_state_dict_report_free(wk_state_dict_report *report);

/* Save m's parameters and buffers (depth-first registration order, as torch's
 * state_dict) and meta_count metadata pairs to `path` with wk_safetensors_save: an
 * atomic write, so on failure an existing file at path is left intact. Returns 0, or -1
 * with an error (I/O, a dotted name over 254 characters, a non-CPU tensor, ...). */
int wk_state_dict_save(const wk_module *m, const char *path, const char *const *meta_keys,
                       const char *const *meta_values, int meta_count);

/* Load the safetensors file at `path` into m (see the top of this file for the checks
 * and the strict / non-strict rules). report may be NULL; when given it is overwritten
 * (not freed first) and filled in every case, also when the load fails. Returns 0, or -1
 * with an error naming the file and every problem; an unreadable, truncated or damaged
 * file is an error in both modes and leaves m unchanged. */
int wk_state_dict_load(wk_module *m, const char *path, bool strict,
                       wk_state_dict_report *report);

/* Like wk_state_dict_load, from an already loaded file: only entries whose names start
 * with `prefix` (NULL or "" = all) are considered, matched to m's names with the prefix
 * removed; other entries are ignored (neither loaded nor unexpected). st is not
 * changed. */
int wk_state_dict_load_from(wk_module *m, const wk_safetensors *st, const char *prefix,
                            bool strict, wk_state_dict_report *report);

/* Append m's parameters and buffers to the growable array *items (count *count) as
 * "<prefix><name>" (prefix may be NULL). The names are malloc'd copies, the tensors
 * borrowed from m. Returns 0, or -1 with an error (out of memory, name too long); on
 * error *items and *count are as before. */
int wk_state_dict_append(const wk_module *m, const char *prefix, wk_named_tensor **items,
                         int *count);
/* Free the names of count items and the array itself (not the tensors). NULL-safe. */
void wk_state_dict_items_free(wk_named_tensor *items, int count);

#ifdef __cplusplus
}
#endif
#endif

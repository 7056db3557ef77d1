/* Reading and writing the safetensors format (https://github.com/huggingface/safetensors):
 * an 8-byte little-endian header size N, N bytes of JSON naming each tensor's dtype,
 * shape and byte range, then the raw little-endian row-major data. Used for state
 * dicts, checkpoints and PyTorch test fixtures.
 *
 *   wk_named_tensor items[] = {{"w", w}, {"b", b}};
 *   if (wk_safetensors_save("model.safetensors", items, 2,
 *                           (const char *[]){"epoch"}, (const char *[]){"3"}, 1) < 0)
 *       fprintf(stderr, "%s\n", wk_last_error());
 *
 *   wk_safetensors st;
 *   if (wk_safetensors_load("model.safetensors", &st) < 0) { ...wk_last_error()... }
 *   wk_tensor *w2 = wk_safetensors_get(&st, "w");    // borrowed: lives until _free
 *   const char *epoch = wk_safetensors_meta(&st, "epoch");
 *   wk_safetensors_free(&st);
 *
 * Supported dtypes: F32 F64 I32 I64 U8 BOOL BF16 F16. Loading checks the whole header
 * (types, shapes, offsets, packing, duplicate names) before it allocates anything, so a
 * damaged or hostile file gives an error naming the file, the entry and the problem.
 */
#ifndef WK_SAFETENSORS_H
#define WK_SAFETENSORS_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A tensor with its name. */
typedef struct {
    char *name;
    wk_tensor *tensor;
} wk_named_tensor;

/* The contents of a safetensors file: tensors sorted by name, and the string map of
 * "__metadata__" in file order. Everything is owned by the struct. */
typedef struct {
    wk_named_tensor *items;
    int count;
    char **meta_keys;
    char **meta_values;
    int meta_count;
} wk_safetensors;

/* Read a safetensors file into *out (overwritten, not freed first). The tensors are
 * persistent contiguous CPU tensors in their stored dtype (BOOL bytes read as 0/1),
 * freed by wk_safetensors_free. Returns 0, or -1 with *out zeroed and an error naming
 * the file and the problem (missing file, bad header, bad entry, bad offsets, ...). */
int wk_safetensors_load(const char *path, wk_safetensors *out);
/* Like wk_safetensors_load, from the `size` bytes at `buf` (not kept); `what` names the
 * buffer in error messages (e.g. its file name). */
int wk_safetensors_load_mem(const void *buf, size_t size, const char *what,
                            wk_safetensors *out);
/* Free every tensor, name and metadata string of *st and zero it. NULL-safe; a zeroed
 * struct is fine. */
void wk_safetensors_free(wk_safetensors *st);
/* The tensor called `name` (borrowed: valid until wk_safetensors_free), or NULL with an
 * error when there is none. */
wk_tensor *wk_safetensors_get(const wk_safetensors *st, const char *name);
/* The metadata value for `key` (borrowed), or NULL when absent (no error recorded). */
const char *wk_safetensors_meta(const wk_safetensors *st, const char *key);

/* Write `count` tensors (any layout and dtype, on the CPU) and `meta_count` metadata
 * pairs to `path`. Names must be unique, non-empty, valid UTF-8 and not "__metadata__";
 * metadata keys unique. Tensors are written sorted by name, the header padded with
 * spaces to a multiple of 8 bytes. The write is atomic: a temporary file
 * "<path>.tmp.<pid>" is written, synced and renamed over `path`, so on any failure
 * (returns -1 with an error) an existing file at `path` is left intact. Returns 0. */
int wk_safetensors_save(const char *path, const wk_named_tensor *items, int count,
                        const char *const *meta_keys, const char *const *meta_values,
                        int meta_count);

#ifdef __cplusplus
}
#endif
#endif

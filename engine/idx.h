/* IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
 *
 *   wk_tensor *images = wk_idx_read("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
 *   // uint8 [10000, 28, 28]; persistent: free with wk_tensor_free
 */
#ifndef WK_ENGINE_IDX_H
#define WK_ENGINE_IDX_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read an IDX file (gzip or not: detected from its bytes) into a new persistent tensor
 * of its element type (u8, i8 as i32, i16 as i32, i32, f32, f64) and dims. NULL with an
 * error naming the file: missing, wrong magic number, more than 8 dims, or shorter
 * than its header says. */
wk_tensor *wk_idx_read(const char *path);
/* Write t (u8, i32, f32 or f64) as an IDX file, gzip-compressed when gzip is true
 * (for tests and tools). 0, or -1 with an error. */
int wk_idx_write(const char *path, const wk_tensor *t, bool gzip);

#ifdef __cplusplus
}
#endif
#endif

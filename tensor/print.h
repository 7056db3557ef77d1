/* Tensors as text, exactly as PyTorch (1.13, default print options) prints them.
 *
 *   wk_print(x);                    // tensor([[ 0.1000, -2.0000],
 *                                   //         [ 3.5000,  4.0000]])
 *   char *s = wk_tensor_str(x);     // the same text, malloc'ed
 *   ...
 *   free(s);
 *
 * torch's rules: 4 decimals; integer-valued floats as `1.`; scientific notation
 * (`1.0000e+08`) when the largest/smallest nonzero finite magnitude ratio exceeds 1000,
 * the largest exceeds 1e8 or (non-integer values) the smallest is below 1e-4; columns
 * right-aligned to the widest value; lines wrapped at 80 characters; tensors of more
 * than 1000 elements summarised with `...` keeping 3 items at each edge of every dim;
 * suffixes `dtype=torch.float64` (for every dtype but float32, int64 and bool),
 * `size=(0, 3)` and the dtype (unless float32) for empty tensors,
 * `requires_grad=True`. bf16/f16 print as float32 values.
 */
#ifndef WK_PRINT_H
#define WK_PRINT_H

#include <stdio.h>

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The text of t as torch prints it ("(null)" for NULL). Malloc'ed: free() it. NULL with
 * an error when t is not on the CPU or memory runs out. */
char *wk_tensor_str(const wk_tensor *t);
/* Write the text of t and a newline to f. Returns the characters written, or -1 with an
 * error (see wk_tensor_str, or a failed write). */
int wk_fprint(FILE *f, const wk_tensor *t);
/* wk_fprint to stdout, ignoring failures. */
void wk_print(const wk_tensor *t);

#ifdef __cplusplus
}
#endif
#endif

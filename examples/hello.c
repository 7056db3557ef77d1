/* The smallest wick program: build it against an installed wick with
 *   cc hello.c $(pkg-config --cflags --libs wick) -o hello */
#include <wick/wick.h>
#include <stdio.h>

int main(void)
{
    wk_frame_begin();                       /* tensors made here are freed at frame end */
    wk_tensor *a = wk_randn(WK_SHAPE(2, 3), WK_DTYPE_F32, NULL);
    wk_tensor *b = wk_ones(WK_SHAPE(3, 4), WK_DTYPE_F32);
    wk_tensor *c = wk_matmul(a, b);
    if (!c) { fprintf(stderr, "%s\n", wk_last_error()); return 1; }
    wk_print(c);
    wk_frame_end();
    return 0;
}

/* XOR with plain SGD in a hand-written loop: four noisy clusters around (+-1, +-1), the
 * label is 1 where the signs differ. A 2-16-2 MLP (tanh) is trained full-batch with
 * cross-entropy and p -= lr * grad written out by hand; the program exits 0 only when
 * the accuracy on fresh test points exceeds 95%.
 *
 *   ./xor            # prints the loss every 100 steps and the final accuracies
 */
#include <math.h>
#include <stdio.h>

#include "wick.h"

enum { NTRAIN = 256, NTEST = 512, STEPS = 600 };

/* n points: x (n, 2) float32 around the corners, y (n) int64 labels (current frame). */
static void make_data(int n, wk_generator *g, wk_tensor **x, wk_tensor **y)
{
    wk_tensor *noise = wk_randn(WK_SHAPE(n, 2), WK_DTYPE_F32, g);
    wk_tensor *corner = wk_rand(WK_SHAPE(n, 2), WK_DTYPE_F32, g);
    *x = wk_empty(WK_SHAPE(n, 2), WK_DTYPE_F32);
    *y = wk_empty(WK_SHAPE(n), WK_DTYPE_I64);
    float *px = wk_data(*x);
    const float *pn = wk_data(noise), *pc = wk_data(corner);
    int64_t *py = wk_data(*y);
    for (int i = 0; i < n; i++) {
        float a = pc[2 * i] < 0.5f ? -1.0f : 1.0f, b = pc[2 * i + 1] < 0.5f ? -1.0f : 1.0f;
        px[2 * i] = a + 0.25f * pn[2 * i];
        px[2 * i + 1] = b + 0.25f * pn[2 * i + 1];
        py[i] = a * b < 0;
    }
}

/* Fraction of rows of x whose argmax logit is y. */
static double accuracy(wk_module *net, wk_tensor *x, wk_tensor *y)
{
    wk_frame_begin();
    wk_no_grad_begin();
    wk_tensor *pred = wk_argmax(wk_module_forward(net, x), 1, false);
    double acc = -1;
    if (pred) {
        int64_t hit = 0, n = wk_numel(y);
        const int64_t *pp = wk_data(pred), *py = wk_data(y);
        for (int64_t i = 0; i < n; i++) hit += pp[i] == py[i];
        acc = (double)hit / (double)n;
    }
    wk_no_grad_end();
    wk_frame_end();
    return acc;
}

int main(void)
{
    int rc = 1;
    wk_frame_begin();   /* the data sets live in this frame */
    wk_generator g = wk_generator_make(42);
    wk_tensor *xtr, *ytr, *xte, *yte;
    make_data(NTRAIN, &g, &xtr, &ytr);
    make_data(NTEST, &g, &xte, &yte);
    wk_module *net = wk_sequential_of(
        (wk_module *[]){wk_linear_new(2, 16, true, &g), wk_tanh_new(),
                        wk_linear_new(16, 2, true, &g)},
        3);
    if (!xtr || !xte || !net) goto out;

    wk_named_param ps[8];
    int np = wk_module_named_parameters(net, false, ps, 8);
    const float lr = 0.5f;
    for (int step = 0; step <= STEPS; step++) {
        wk_frame_begin();
        wk_module_zero_grad(net);
        wk_tensor *loss = wk_cross_entropy(wk_module_forward(net, xtr), ytr, NULL);
        if (!loss || wk_backward(loss) < 0) {
            fprintf(stderr, "xor: %s\n", wk_last_error());
            wk_frame_end();
            goto out;
        }
        if (step % 100 == 0) printf("step %4d  loss %.4f\n", step, wk_get(loss, NULL));
        for (int i = 0; i < np; i++) {   /* plain SGD: p -= lr * grad */
            float *p = wk_data(ps[i].tensor);
            const float *gr = wk_data(ps[i].tensor->grad);
            for (int64_t j = 0; j < wk_numel(ps[i].tensor); j++) p[j] -= lr * gr[j];
        }
        wk_frame_end();
    }
    double tr = accuracy(net, xtr, ytr), te = accuracy(net, xte, yte);
    printf("train accuracy %.2f%%  test accuracy %.2f%%\n", 100 * tr, 100 * te);
    rc = te > 0.95 && tr > 0.95 ? 0 : 1;
    if (rc) fprintf(stderr, "xor: accuracy below 95%%\n");
out:
    if (rc && wk_last_error()[0]) fprintf(stderr, "xor: %s\n", wk_last_error());
    wk_module_free(net);
    wk_frame_end();
    return rc;
}

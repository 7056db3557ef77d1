/* Gradient checking against central finite differences in float64. */
#include <math.h>
#include <string.h>

#include "../tensor/creation.h"
#include "../tensor/elementwise.h"
#include "../tensor/random.h"
#include "../tensor/reduce.h"
#include "node-impl.h"

/* L = sum(w * fn(inputs)), as a double; NAN with an error if fn fails. */
static double weighted_loss(wk_gradcheck_fn fn, void *user, wk_tensor *const *inputs, int n,
                            wk_tensor *w, wk_tensor **out_y)
{
    wk_tensor *y = fn(inputs, n, user);
    if (!y) return NAN;
    if (y->dtype != WK_DTYPE_F64) {
        wk_set_error("gradcheck: the function returned %s; it must compute in float64",
                     wk_dtype_name(y->dtype));
        return NAN;
    }
    if (out_y) *out_y = y;
    if (w && !wk_same_shape(w, y)) {
        wk_set_error("gradcheck: the function's output shape changed (%s)", wki_shape_s(y));
        return NAN;
    }
    wk_tensor *l = wk_sum(w ? wk_mul(y, w) : y, WK_ALL_DIMS, false);
    return l ? wk_item(l) : NAN;
}

int wk_gradcheck(wk_gradcheck_fn fn, void *user, wk_tensor *const *inputs, int n, double eps,
                 double atol, double rtol)
{
    if (!fn || n < 1 || n > 16 || !inputs) {
        wk_set_error("gradcheck: needs a function and 1..16 inputs");
        return -1;
    }
    for (int k = 0; k < n; k++) {
        if (!WKI_CHECK("gradcheck", inputs[k])) return -1;
        if (inputs[k]->dtype != WK_DTYPE_F64 || !wk_is_contiguous(inputs[k]) ||
            inputs[k]->grad_fn || inputs[k]->device.type != WK_DEVICE_CPU) {
            wk_set_error("gradcheck: input %d must be a contiguous float64 CPU leaf (got %s, "
                         "shape %s)",
                         k, wk_dtype_name(inputs[k]->dtype), wki_shape_s(inputs[k]));
            return -1;
        }
    }
    bool saved_flags[16];
    wk_tensor *saved_grads[16];
    for (int k = 0; k < n; k++) {
        saved_flags[k] = inputs[k]->requires_grad;
        saved_grads[k] = inputs[k]->grad;
        inputs[k]->grad = NULL;
        inputs[k]->requires_grad = true;
    }
    int rc = 0;
    wk_frame_begin();
    /* Analytic: backward of sum(w * y) for a fixed random weighting w. */
    wk_tensor *y = NULL;
    wk_generator g = wk_generator_make(12345);
    wk_frame_begin();
    y = fn(inputs, n, user);
    wk_tensor *w = y ? wk_keep(wk_randn(y->shape, y->ndim, WK_DTYPE_F64, &g)) : NULL;
    if (!y || !w) {
        rc = -1;
    } else if (!y->requires_grad) {
        wk_set_error("gradcheck: the output does not depend on any input through a "
                     "differentiable op");
        rc = -1;
    } else {
        rc = wk_backward(wk_sum(wk_mul(y, w), WK_ALL_DIMS, false));
    }
    wk_frame_end();
    /* Numeric: central differences, one element at a time. */
    wk_no_grad_begin();
    for (int k = 0; k < n && !rc; k++) {
        wk_tensor *x = inputs[k];
        double *p = wk_data(x);
        int64_t m = wk_numel(x);
        for (int64_t j = 0; j < m && !rc; j++) {
            double x0 = p[j];
            wk_frame_begin();
            p[j] = x0 + eps;
            double lp = weighted_loss(fn, user, inputs, n, w, NULL);
            p[j] = x0 - eps;
            double lm = weighted_loss(fn, user, inputs, n, w, NULL);
            p[j] = x0;
            wk_frame_end();
            if (isnan(lp) || isnan(lm)) {
                rc = -1;
                break;
            }
            double num = (lp - lm) / (2 * eps);
            double ana = x->grad ? ((const double *)wk_data(x->grad))[j] : 0.0;
            if (!(fabs(ana - num) <= atol + rtol * fabs(num))) {
                wk_set_error("gradcheck: input %d element %lld: backward gives %.10g, finite "
                             "differences give %.10g",
                             k, (long long)j, ana, num);
                rc = -1;
            }
        }
    }
    wk_no_grad_end();
    wk_frame_end();
    for (int k = 0; k < n; k++) {
        wk_tensor_free(inputs[k]->grad);
        inputs[k]->grad = saved_grads[k];
        inputs[k]->requires_grad = saved_flags[k];
    }
    return rc;
}

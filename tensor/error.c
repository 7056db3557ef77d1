/* The thread-local error message and the helpers that compose op errors. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "tensor-impl.h"

static _Thread_local char last_error[1024];

const char *wk_last_error(void) { return last_error; }

void wk_clear_error(void) { last_error[0] = '\0'; }

void wk_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

bool wki_check_inputs(const char *op, int n, const wk_tensor *const *ts)
{
    for (int i = 0; i < n; i++) {
        if (!ts[i]) {
            if (!last_error[0]) wk_set_error("%s: input %d is NULL", op, i);
            return false;
        }
    }
    return true;
}

const char *wki_dims_s(const int64_t *shape, int ndim)
{
    static _Thread_local char bufs[8][160];
    static _Thread_local int next;
    char *b = bufs[next++ & 7];
    size_t n = 0;
    n += (size_t)snprintf(b + n, sizeof bufs[0] - n, "[");
    for (int i = 0; i < ndim && n < sizeof bufs[0]; i++)
        n += (size_t)snprintf(b + n, sizeof bufs[0] - n, i ? ", %lld" : "%lld",
                              (long long)shape[i]);
    if (n < sizeof bufs[0]) snprintf(b + n, sizeof bufs[0] - n, "]");
    return b;
}

const char *wki_shape_s(const wk_tensor *t) { return wki_dims_s(t->shape, t->ndim); }

const char *wk_shape_str(const wk_tensor *t, char *buf, size_t size)
{
    if (!t) snprintf(buf, size, "(null)");
    else snprintf(buf, size, "%s", wki_shape_s(t));
    return buf;
}

int wki_norm_dim(const char *op, int dim, int ndim)
{
    int lo = ndim > 0 ? -ndim : -1, hi = ndim > 0 ? ndim - 1 : 0;
    if (dim < lo || dim > hi) {
        wk_set_error("%s: dim %d is out of range for a %d-d tensor (expected %d..%d)", op,
                     dim, ndim, lo, hi);
        return -1;
    }
    return dim < 0 ? dim + (ndim > 0 ? ndim : 1) : dim;
}

bool wki_same_device(const char *op, const wk_tensor *a, const wk_tensor *b)
{
    if (a->device.type == b->device.type && a->device.index == b->device.index) return true;
    char da[32], db[32];
    wk_set_error("%s: tensors are on different devices (%s and %s); move them with "
                 "wk_to_device first",
                 op, wk_device_str(a->device, da, sizeof da),
                 wk_device_str(b->device, db, sizeof db));
    return false;
}

bool wki_require_cpu(const char *op, const wk_tensor *t)
{
    if (t->device.type == WK_DEVICE_CPU) return true;
    char d[32];
    wk_set_error("%s: no kernel for device %s", op, wk_device_str(t->device, d, sizeof d));
    return false;
}

/* Element-wise front-ends: op tables, type promotion, validation, output allocation,
 * dispatch to the kernels of the inputs' device (CPU: tensor/cpu/unary.c, binary.c), the
 * autograd nodes of the ops and their backward, and the in-place add_ / mul_scalar_. */
#include <math.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "cpu/elementwise-impl.h"
#include "creation.h"

/* ---- op tables ---- */

enum {
    UN_FLOAT = 1u,       /* integer and bool inputs are computed in (and give) float32 */
    UN_NO_BOOL = 2u,     /* not defined for bool, as in torch */
    UN_GRAD_OUTPUT = 4u, /* the backward reads the output (saved), not the input */
    UN_GRAD_ZERO = 8u,   /* piecewise constant: the gradient is zero */
};

static const struct {
    const char *name;
    unsigned flags;
} unary_info[] = {
    [WK_UNARY_NEG] = {"neg", UN_NO_BOOL},
    [WK_UNARY_ABS] = {"abs", UN_NO_BOOL},
    [WK_UNARY_SIGN] = {"sign", UN_GRAD_ZERO},
    [WK_UNARY_EXP] = {"exp", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_LOG] = {"log", UN_FLOAT},
    [WK_UNARY_SQRT] = {"sqrt", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_RSQRT] = {"rsqrt", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_RELU] = {"relu", UN_NO_BOOL | UN_GRAD_OUTPUT},
    [WK_UNARY_GELU] = {"gelu", UN_FLOAT},
    [WK_UNARY_GELU_TANH] = {"gelu_tanh", UN_FLOAT},
    [WK_UNARY_SILU] = {"silu", UN_FLOAT},
    [WK_UNARY_SIGMOID] = {"sigmoid", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_TANH] = {"tanh", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_SQUARE] = {"square", UN_NO_BOOL},
    [WK_UNARY_RECIPROCAL] = {"reciprocal", UN_FLOAT | UN_GRAD_OUTPUT},
    [WK_UNARY_SIN] = {"sin", UN_FLOAT},
    [WK_UNARY_COS] = {"cos", UN_FLOAT},
    [WK_UNARY_LOG1P] = {"log1p", UN_FLOAT},
    [WK_UNARY_FLOOR] = {"floor", UN_NO_BOOL | UN_GRAD_ZERO},
    [WK_UNARY_CEIL] = {"ceil", UN_NO_BOOL | UN_GRAD_ZERO},
    [WK_UNARY_ROUND] = {"round", UN_NO_BOOL | UN_GRAD_ZERO},
    [WK_UNARY_TRUNC] = {"trunc", UN_NO_BOOL | UN_GRAD_ZERO},
    [WK_UNARY_CLAMP] = {"clamp", UN_NO_BOOL},
};
_Static_assert(sizeof unary_info / sizeof unary_info[0] == WK_UNARY_COUNT,
               "unary_info must have one row per wk_unary_op");

enum {
    BIN_CMP = 1u,      /* gives bool */
    BIN_TRUE_DIV = 2u, /* integer and bool inputs are computed in (and give) float32 */
    BIN_NO_BOOL = 4u,  /* not defined when both inputs promote to bool */
    BIN_NO_GRAD = 8u,  /* not differentiable: the result never requires grad (torch) */
};

static const struct {
    const char *name;
    unsigned flags;
    const char *bool_hint; /* appended to the bool error */
} binary_info[] = {
    [WK_BINARY_ADD] = {"add", 0, ""},
    [WK_BINARY_SUB] = {"sub", BIN_NO_BOOL, "; use wk_ne for a logical xor"},
    [WK_BINARY_MUL] = {"mul", 0, ""},
    [WK_BINARY_DIV] = {"div", BIN_TRUE_DIV, ""},
    [WK_BINARY_POW] = {"pow", BIN_NO_BOOL, ""},
    [WK_BINARY_MAXIMUM] = {"maximum", 0, ""},
    [WK_BINARY_MINIMUM] = {"minimum", 0, ""},
    [WK_BINARY_FLOOR_DIVIDE] = {"floor_divide", BIN_NO_BOOL | BIN_NO_GRAD, ""},
    [WK_BINARY_REMAINDER] = {"remainder", BIN_NO_BOOL, ""},
    [WK_BINARY_EQ] = {"eq", BIN_CMP | BIN_NO_GRAD, ""},
    [WK_BINARY_NE] = {"ne", BIN_CMP | BIN_NO_GRAD, ""},
    [WK_BINARY_LT] = {"lt", BIN_CMP | BIN_NO_GRAD, ""},
    [WK_BINARY_LE] = {"le", BIN_CMP | BIN_NO_GRAD, ""},
    [WK_BINARY_GT] = {"gt", BIN_CMP | BIN_NO_GRAD, ""},
    [WK_BINARY_GE] = {"ge", BIN_CMP | BIN_NO_GRAD, ""},
};
_Static_assert(sizeof binary_info / sizeof binary_info[0] == WK_BINARY_COUNT,
               "binary_info must have one row per wk_binary_op");

const char *wk_unary_name(wk_unary_op op)
{
    return (unsigned)op < WK_UNARY_COUNT && unary_info[op].name ? unary_info[op].name : "?";
}

const char *wk_binary_name(wk_binary_op op)
{
    return (unsigned)op < WK_BINARY_COUNT && binary_info[op].name ? binary_info[op].name
                                                                   : "?";
}

/* ---- kernels per device (CUDA fills its entries when that backend exists) ---- */

static const wki_unary_kernel unary_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_unary,
};
static const wki_binary_kernel binary_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_binary,
};
static const wki_where_kernel where_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_where,
};
static const wki_unary_backward_kernel unary_backward_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_unary_backward,
};
static const wki_binary_backward_kernel binary_backward_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_binary_backward,
};
static const wki_inplace_kernel inplace_kernels[WK_DEVICE_COUNT] = {
    [WK_DEVICE_CPU] = wki_cpu_inplace,
};

/* The device's entry of a kernel table (NULL when that backend has none). */
#define KERNEL_FOR(table, dev) ((unsigned)(dev).type < WK_DEVICE_COUNT ? (table)[(dev).type] : NULL)

static void no_kernel(const char *op, wk_device dev)
{
    char d[32];
    wk_set_error("%s: no kernel for device %s", op, wk_device_str(dev, d, sizeof d));
}

/* ---- type promotion ---- */

static int category(wk_dtype d) { return d == WK_DTYPE_BOOL ? 0 : wk_dtype_is_float(d) ? 2 : 1; }

static int rank(wk_dtype d)
{
    switch (d) {
    case WK_DTYPE_BOOL: return 0;
    case WK_DTYPE_U8: return 1;
    case WK_DTYPE_I32: return 2;
    case WK_DTYPE_I64: return 3;
    case WK_DTYPE_BF16:
    case WK_DTYPE_F16: return 4;
    case WK_DTYPE_F32: return 5;
    default: return 6;
    }
}

static wk_dtype promote(wk_dtype a, wk_dtype b)
{
    if (a == b) return a;
    if (rank(a) == rank(b)) return WK_DTYPE_F32; /* bf16 with f16 */
    return rank(a) > rank(b) ? a : b;
}

wk_dtype wk_result_type(const wk_tensor *a, const wk_tensor *b)
{
    if (!WKI_CHECK("result_type", a, b)) return WK_DTYPE_COUNT;
    bool za = a->ndim == 0, zb = b->ndim == 0;
    if (za == zb) return promote(a->dtype, b->dtype);
    const wk_tensor *dim = za ? b : a, *zero = za ? a : b;
    return category(zero->dtype) > category(dim->dtype) ? zero->dtype : dim->dtype;
}

/* The dtype of op(x, s) for a Python number s (torch's wrapped numbers): it never widens
 * x within its category; a fractional s makes integers float32, an integral one makes
 * bool int64. */
static wk_dtype scalar_result_type(wk_dtype x, double s)
{
    if (wk_dtype_is_float(x)) return x;
    if (isfinite(s) && s == nearbyint(s)) return x == WK_DTYPE_BOOL ? WK_DTYPE_I64 : x;
    return WK_DTYPE_F32;
}

/* ---- validation ---- */

static bool check_dtype(const char *op, const wk_tensor *t)
{
    if (t->dtype == WK_DTYPE_BF16 || t->dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s tensors are not supported (shape %s); convert with "
                     "wk_to_dtype(t, WK_DTYPE_F32) first",
                     op, wk_dtype_name(t->dtype), wki_shape_s(t));
        return false;
    }
    if ((unsigned)t->dtype >= WK_DTYPE_COUNT) {
        wk_set_error("%s: invalid dtype %d", op, (int)t->dtype);
        return false;
    }
    return true;
}

/* The device an op on ts runs on. A 0-d CPU tensor goes with any device (torch's CPU
 * scalars); every other input must be on the device of the first such input. */
static bool common_device(const char *op, int n, const wk_tensor *const *ts, wk_device *dev)
{
    int lead = 0;
    for (int k = 0; k < n; k++) {
        if (ts[k]->ndim || ts[k]->device.type != WK_DEVICE_CPU) {
            lead = k;
            break;
        }
    }
    for (int k = 0; k < n; k++) {
        if (k == lead || (ts[k]->ndim == 0 && ts[k]->device.type == WK_DEVICE_CPU)) continue;
        if (!wki_same_device(op, ts[lead], ts[k])) return false;
    }
    *dev = ts[lead]->device;
    return true;
}

/* ---- a number as a 0-d CPU tensor on the stack ---- */

/* Lives for one call: the front-ends never keep it. Autograd nodes store the number
 * (nd->f) and backward makes a new box from it. */
typedef struct {
    wk_tensor t;
    wk_storage s;
    union {
        float f32;
        double f64;
        int32_t i32;
        int64_t i64;
        uint8_t u8;
    } v;
} scalar_box;

static wk_tensor *scalar_tensor(scalar_box *box, wk_dtype dtype, double s)
{
    memset(box, 0, sizeof *box);
    box->s.data = &box->v;
    box->s.nbytes = box->s.capacity = sizeof box->v;
    box->s.device = WK_CPU;
    box->s.external = true;
    atomic_init(&box->s.refcount, 1);
    box->t.storage = &box->s;
    box->t.dtype = dtype;
    box->t.device = WK_CPU;
    box->t.frame_slot = -1; /* in no frame: never released */
    wki_ew_convert(dtype, &box->v, WK_DTYPE_F64, (const char *)&s, 0, 1);
    return &box->t;
}

/* ---- autograd helpers ---- */

/* Keep a handle on the forward's output for backward: a new handle without out's node,
 * so that the node never holds its own output (which would be a cycle). */
static bool save_output(wki_node *n, int k, wk_tensor *out)
{
    wk_tensor *h = wki_tensor_view_of(out);
    if (!h) return false;
    wki_node_save(n, k, h);
    wk_tensor_free(h); /* the node holds the only reference now */
    return true;
}

/* The gradient of input `in` from `full` (the broadcast shape, the compute dtype):
 * broadcast dims summed back, converted to in's dtype. Frees full unless it is `g`, the
 * incoming gradient the engine owns (which may be returned as it is). */
static wk_tensor *grad_for_input(wk_tensor *full, wk_tensor *g, const wk_tensor *in)
{
    if (!full) return NULL;
    wk_tensor *r = wki_sum_to_shape(full, in->shape, in->ndim);
    if (r != full && full != g) wk_tensor_free(full);
    if (!r || r->dtype == in->dtype) return r;
    wk_tensor *c = wk_to_dtype(r, in->dtype);
    if (r != g) wk_tensor_free(r);
    return c;
}

/* ---- unary front-end ---- */

bool wki_unary_grad_uses_output(wk_unary_op op)
{
    return (unsigned)op < WK_UNARY_COUNT && (unary_info[op].flags & UN_GRAD_OUTPUT);
}

/* grad_out * op'(x) in one pass of the device's backward kernel (from the saved output
 * where the op's flags say so); zeros for the piecewise-constant ops. */
static int unary_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    if (!wki_node_input_needs_grad(n, 0)) return 0;
    wk_unary_op op = (wk_unary_op)n->i[0];
    wk_tensor *x = n->inputs[0];
    unsigned flags = unary_info[op].flags;
    if (flags & UN_GRAD_ZERO) {
        grads[0] = wk_zeros_like(x);
        return grads[0] ? 0 : -1;
    }
    if (op == WK_UNARY_CLAMP && isnan(n->f[0]) && isnan(n->f[1])) { /* no bounds: a copy */
        grads[0] = grad_for_input(g, g, x);
        return grads[0] ? 0 : -1;
    }
    const char *name = unary_info[op].name;
    wki_unary_backward_kernel kernel = KERNEL_FOR(unary_backward_kernels, g->device);
    if (!kernel) {
        no_kernel(name, g->device);
        return -1;
    }
    const wk_tensor *saved = flags & UN_GRAD_OUTPUT ? n->saved[0] : x;
    wk_dtype dtype = (wk_dtype)n->i[1]; /* the forward's output dtype */
    wk_tensor *gi = wki_empty_on(x->shape, x->ndim, dtype, g->device);
    if (!gi) return -1;
    if (kernel(op, gi, g, saved, n->f) != WKI_EW_OK) {
        wk_tensor_free(gi);
        wk_set_error("%s: no backward kernel for %s", name, wk_dtype_name(dtype));
        return -1;
    }
    grads[0] = grad_for_input(gi, g, x);
    return grads[0] ? 0 : -1;
}

/* The one place unary ops (and clamp, with its bounds) are validated, allocated and
 * dispatched, and where their autograd nodes are recorded. */
static wk_tensor *unary_op(wk_unary_op op, wk_tensor *x, double lo, double hi)
{
    if ((unsigned)op >= WK_UNARY_COUNT) {
        if (WKI_CHECK("unary", x)) wk_set_error("unary: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = unary_info[op].name;
    unsigned flags = unary_info[op].flags;
    WKI_PROF_OP(name, x);
    if (!WKI_CHECK(name, x) || !check_dtype(name, x)) return NULL;
    if (x->dtype == WK_DTYPE_BOOL && (flags & UN_NO_BOOL)) {
        wk_set_error("%s: not supported for bool tensors (shape %s)", name, wki_shape_s(x));
        return NULL;
    }
    wk_dtype out_dtype = x->dtype;
    if ((flags & UN_FLOAT) && !wk_dtype_is_float(x->dtype)) out_dtype = WK_DTYPE_F32;
    if (op == WK_UNARY_CLAMP && !wk_dtype_is_float(x->dtype) &&
        ((!isnan(lo) && lo != nearbyint(lo)) || (!isnan(hi) && hi != nearbyint(hi))))
        out_dtype = WK_DTYPE_F32;
    wki_unary_kernel kernel = KERNEL_FOR(unary_kernels, x->device);
    if (!kernel) {
        no_kernel(name, x->device);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(x->shape, x->ndim, out_dtype, x->device);
    if (!out) return NULL;
    if (kernel(op, out, x, (const double[]){lo, hi}) != WKI_EW_OK) {
        wk_tensor_free(out);
        wk_set_error("%s: no kernel for %s", name, wk_dtype_name(out_dtype));
        return NULL;
    }
    if (wk_dtype_is_float(out_dtype) && wki_grad_needed(1, (const wk_tensor *[]){x})) {
        wki_node *nd = wki_node_new(out, name, unary_backward, 1, &x);
        if (!nd || ((flags & UN_GRAD_OUTPUT) && !save_output(nd, 0, out))) {
            wk_tensor_free(out);
            return NULL;
        }
        nd->i[0] = op;
        nd->i[1] = out_dtype;
        nd->f[0] = lo;
        nd->f[1] = hi;
    }
    return out;
}

wk_tensor *wk_unary(wk_unary_op op, wk_tensor *x) { return unary_op(op, x, NAN, NAN); }

wk_tensor *wk_clamp(wk_tensor *x, double min, double max)
{
    return unary_op(WK_UNARY_CLAMP, x, min, max);
}

wk_tensor *wk_neg(wk_tensor *x) { return wk_unary(WK_UNARY_NEG, x); }
wk_tensor *wk_abs(wk_tensor *x) { return wk_unary(WK_UNARY_ABS, x); }
wk_tensor *wk_sign(wk_tensor *x) { return wk_unary(WK_UNARY_SIGN, x); }
wk_tensor *wk_exp(wk_tensor *x) { return wk_unary(WK_UNARY_EXP, x); }
wk_tensor *wk_log(wk_tensor *x) { return wk_unary(WK_UNARY_LOG, x); }
wk_tensor *wk_sqrt(wk_tensor *x) { return wk_unary(WK_UNARY_SQRT, x); }
wk_tensor *wk_rsqrt(wk_tensor *x) { return wk_unary(WK_UNARY_RSQRT, x); }
wk_tensor *wk_relu(wk_tensor *x) { return wk_unary(WK_UNARY_RELU, x); }
wk_tensor *wk_gelu(wk_tensor *x) { return wk_unary(WK_UNARY_GELU, x); }
wk_tensor *wk_gelu_tanh(wk_tensor *x) { return wk_unary(WK_UNARY_GELU_TANH, x); }
wk_tensor *wk_silu(wk_tensor *x) { return wk_unary(WK_UNARY_SILU, x); }
wk_tensor *wk_sigmoid(wk_tensor *x) { return wk_unary(WK_UNARY_SIGMOID, x); }
wk_tensor *wk_tanh(wk_tensor *x) { return wk_unary(WK_UNARY_TANH, x); }
wk_tensor *wk_square(wk_tensor *x) { return wk_unary(WK_UNARY_SQUARE, x); }
wk_tensor *wk_reciprocal(wk_tensor *x) { return wk_unary(WK_UNARY_RECIPROCAL, x); }
wk_tensor *wk_sin(wk_tensor *x) { return wk_unary(WK_UNARY_SIN, x); }
wk_tensor *wk_cos(wk_tensor *x) { return wk_unary(WK_UNARY_COS, x); }
wk_tensor *wk_log1p(wk_tensor *x) { return wk_unary(WK_UNARY_LOG1P, x); }
wk_tensor *wk_floor(wk_tensor *x) { return wk_unary(WK_UNARY_FLOOR, x); }
wk_tensor *wk_ceil(wk_tensor *x) { return wk_unary(WK_UNARY_CEIL, x); }
wk_tensor *wk_round(wk_tensor *x) { return wk_unary(WK_UNARY_ROUND, x); }
wk_tensor *wk_trunc(wk_tensor *x) { return wk_unary(WK_UNARY_TRUNC, x); }

/* ---- binary front-end ---- */

/* Which operand of a binary op is a Python number (a stack box, never recorded). */
enum { SCALAR_NONE, SCALAR_A, SCALAR_B };

/* The gradient of operand `which` (0 = a, 1 = b) of op over the broadcast shape, in the
 * compute dtype of g: g itself, its negation, or one pass of the backward kernel. */
static wk_tensor *operand_grad(wk_binary_op op, int which, wk_tensor *g, const wk_tensor *a,
                               const wk_tensor *b)
{
    if (op == WK_BINARY_ADD || (op == WK_BINARY_SUB && which == 0) ||
        (op == WK_BINARY_REMAINDER && which == 0))
        return g;
    if (op == WK_BINARY_SUB) return wk_neg(g);
    const char *name = binary_info[op].name;
    wki_binary_backward_kernel kernel = KERNEL_FOR(binary_backward_kernels, g->device);
    if (!kernel) {
        no_kernel(name, g->device);
        return NULL;
    }
    wk_tensor *gi = wki_empty_on(g->shape, g->ndim, g->dtype, g->device);
    if (gi && kernel(op, which, gi, g, a, b) != WKI_EW_OK) {
        wk_tensor_free(gi);
        wk_set_error("%s: no backward kernel for %s", name, wk_dtype_name(g->dtype));
        return NULL;
    }
    return gi;
}

/* nd->i: op, which operand is a number (SCALAR_*), the compute dtype; nd->f[0]: the
 * number. Inputs: a and b, or the one tensor operand. */
static int binary_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_binary_op op = (wk_binary_op)n->i[0];
    int side = (int)n->i[1];
    scalar_box box;
    wk_tensor *ops[2] = {n->inputs[0], n->inputs[1]};
    if (side == SCALAR_A) {
        ops[0] = scalar_tensor(&box, (wk_dtype)n->i[2], n->f[0]);
        ops[1] = n->inputs[0];
    } else if (side == SCALAR_B) {
        ops[1] = scalar_tensor(&box, (wk_dtype)n->i[2], n->f[0]);
    }
    for (int which = 0; which < 2; which++) {
        int slot = side == SCALAR_NONE ? which : side == SCALAR_A ? which - 1 : -which;
        if (slot < 0 || !wki_node_input_needs_grad(n, slot)) continue;
        wk_tensor *in = n->inputs[slot];
        grads[slot] = grad_for_input(operand_grad(op, which, g, ops[0], ops[1]), g, in);
        if (!grads[slot]) return -1;
    }
    return 0;
}

/* The one place binary ops are validated, allocated and dispatched, and where their
 * autograd nodes are recorded. `dtype` is the promoted dtype, or WK_DTYPE_COUNT for
 * wk_result_type(a, b) (the scalar variants pass torch's wrapped-number type); `side`
 * says which operand is the scalar variants' number `s` (SCALAR_NONE: none). */
static wk_tensor *binary_op(wk_binary_op op, wk_tensor *a, wk_tensor *b, wk_dtype dtype,
                           int side, double s)
{
    if ((unsigned)op >= WK_BINARY_COUNT) {
        if (WKI_CHECK("binary", a, b)) wk_set_error("binary: invalid op %d", (int)op);
        return NULL;
    }
    const char *name = binary_info[op].name;
    unsigned flags = binary_info[op].flags;
    WKI_PROF_OP(name, a, b);
    if (!WKI_CHECK(name, a, b) || !check_dtype(name, a) || !check_dtype(name, b))
        return NULL;
    const wk_tensor *ins[2] = {a, b};
    wk_device dev;
    if (!common_device(name, 2, ins, &dev)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape(name, 2, ins, shape, &nd)) return NULL;
    wk_dtype r = dtype == WK_DTYPE_COUNT ? wk_result_type(a, b) : dtype;
    if (r == WK_DTYPE_BOOL && (flags & BIN_NO_BOOL)) {
        wk_set_error("%s: not supported for bool tensors (got %s %s and %s %s)%s", name,
                     wk_dtype_name(a->dtype), wki_shape_s(a), wk_dtype_name(b->dtype),
                     wki_shape_s(b), binary_info[op].bool_hint);
        return NULL;
    }
    wk_dtype compute = (flags & BIN_TRUE_DIV) && !wk_dtype_is_float(r) ? WK_DTYPE_F32 : r;
    wk_dtype out_dtype = flags & BIN_CMP ? WK_DTYPE_BOOL : compute;
    wki_binary_kernel kernel = KERNEL_FOR(binary_kernels, dev);
    if (!kernel) {
        no_kernel(name, dev);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, nd, out_dtype, dev);
    if (!out) return NULL;
    wki_ew_status st = kernel(op, out, a, b, compute);
    if (st != WKI_EW_OK) {
        wk_tensor_free(out);
        if (st == WKI_EW_ZERO_DIVISOR)
            wk_set_error("%s: integer division by zero (divisor %s %s)", name,
                         wk_dtype_name(b->dtype), wki_shape_s(b));
        else
            wk_set_error("%s: no kernel for %s", name, wk_dtype_name(compute));
        return NULL;
    }
    if (!(flags & BIN_NO_GRAD) && wk_dtype_is_float(out_dtype) && wki_grad_needed(2, ins)) {
        wk_tensor *rec[2] = {a, b};
        int nrec = 2;
        if (side == SCALAR_A) rec[0] = b;
        if (side != SCALAR_NONE) nrec = 1;
        wki_node *n = wki_node_new(out, name, binary_backward, nrec, rec);
        if (!n) {
            wk_tensor_free(out);
            return NULL;
        }
        n->i[0] = op;
        n->i[1] = side;
        n->i[2] = compute;
        n->f[0] = s;
    }
    return out;
}

wk_tensor *wk_binary(wk_binary_op op, wk_tensor *a, wk_tensor *b)
{
    return binary_op(op, a, b, WK_DTYPE_COUNT, SCALAR_NONE, 0);
}

wk_tensor *wk_add(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_ADD, a, b); }
wk_tensor *wk_sub(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_SUB, a, b); }
wk_tensor *wk_mul(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_MUL, a, b); }
wk_tensor *wk_div(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_DIV, a, b); }
wk_tensor *wk_pow(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_POW, a, b); }
wk_tensor *wk_maximum(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_MAXIMUM, a, b);
}
wk_tensor *wk_minimum(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_MINIMUM, a, b);
}
wk_tensor *wk_floor_divide(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_FLOOR_DIVIDE, a, b);
}
wk_tensor *wk_remainder(wk_tensor *a, wk_tensor *b)
{
    return wk_binary(WK_BINARY_REMAINDER, a, b);
}
wk_tensor *wk_eq(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_EQ, a, b); }
wk_tensor *wk_ne(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_NE, a, b); }
wk_tensor *wk_lt(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_LT, a, b); }
wk_tensor *wk_le(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_LE, a, b); }
wk_tensor *wk_gt(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_GT, a, b); }
wk_tensor *wk_ge(wk_tensor *a, wk_tensor *b) { return wk_binary(WK_BINARY_GE, a, b); }

/* ---- scalar variants ---- */

static wk_tensor *binary_scalar(wk_binary_op op, wk_tensor *x, double s, bool reversed)
{
    const char *name = wk_binary_name(op);
    if (!WKI_CHECK(name, x) || !check_dtype(name, x)) return NULL;
    wk_dtype r = scalar_result_type(x->dtype, s);
    if (op == WK_BINARY_POW && !wk_dtype_is_float(r) && s < 0) {
        wk_set_error("pow: integers to negative integer powers are not allowed (%s tensor "
                     "%s, exponent %g)",
                     wk_dtype_name(x->dtype), wki_shape_s(x), s);
        return NULL;
    }
    scalar_box box;
    wk_tensor *st = scalar_tensor(&box, r, s);
    return reversed ? binary_op(op, st, x, r, SCALAR_A, s) : binary_op(op, x, st, r, SCALAR_B, s);
}

wk_tensor *wk_add_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_ADD, x, s, false);
}
wk_tensor *wk_sub_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_SUB, x, s, false);
}
wk_tensor *wk_rsub_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_SUB, x, s, true);
}
wk_tensor *wk_mul_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_MUL, x, s, false);
}
wk_tensor *wk_div_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_DIV, x, s, false);
}
wk_tensor *wk_pow_scalar(wk_tensor *x, double exponent)
{
    return binary_scalar(WK_BINARY_POW, x, exponent, false);
}
wk_tensor *wk_eq_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_EQ, x, s, false);
}
wk_tensor *wk_ne_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_NE, x, s, false);
}
wk_tensor *wk_lt_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_LT, x, s, false);
}
wk_tensor *wk_le_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_LE, x, s, false);
}
wk_tensor *wk_gt_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_GT, x, s, false);
}
wk_tensor *wk_ge_scalar(wk_tensor *x, double s)
{
    return binary_scalar(WK_BINARY_GE, x, s, false);
}

/* ---- where ---- */

/* grad_out where the condition picked the input, 0 elsewhere; saved[0] is cond. */
static int where_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    scalar_box box;
    wk_tensor *zero = scalar_tensor(&box, g->dtype, 0);
    for (int k = 0; k < 2; k++) {
        if (!wki_node_input_needs_grad(n, k)) continue;
        wk_tensor *full = k == 0 ? wk_where(n->saved[0], g, zero) : wk_where(n->saved[0], zero, g);
        grads[k] = grad_for_input(full, g, n->inputs[k]);
        if (!grads[k]) return -1;
    }
    return 0;
}

wk_tensor *wk_where(wk_tensor *cond, wk_tensor *a, wk_tensor *b)
{
    WKI_PROF_OP("where", cond, a, b);
    if (!WKI_CHECK("where", cond, a, b)) return NULL;
    if (!check_dtype("where", cond) || !check_dtype("where", a) || !check_dtype("where", b))
        return NULL;
    if (cond->dtype != WK_DTYPE_BOOL) {
        wk_set_error("where: condition must be bool, got %s %s (compare with wk_ne_scalar(c, "
                     "0) first)",
                     wk_dtype_name(cond->dtype), wki_shape_s(cond));
        return NULL;
    }
    const wk_tensor *ins[3] = {cond, a, b};
    wk_device dev;
    if (!common_device("where", 3, ins, &dev)) return NULL;
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape("where", 3, ins, shape, &nd)) return NULL;
    wki_where_kernel kernel = KERNEL_FOR(where_kernels, dev);
    if (!kernel) {
        no_kernel("where", dev);
        return NULL;
    }
    wk_tensor *out = wki_empty_on(shape, nd, wk_result_type(a, b), dev);
    if (!out) return NULL;
    if (kernel(out, cond, a, b) != WKI_EW_OK) {
        wk_set_error("where: no kernel for %s", wk_dtype_name(out->dtype));
        wk_tensor_free(out);
        return NULL;
    }
    if (wk_dtype_is_float(out->dtype) && wki_grad_needed(2, (const wk_tensor *[]){a, b})) {
        wki_node *n = wki_node_new(out, "where", where_backward, 2, (wk_tensor *[]){a, b});
        if (!n) {
            wk_tensor_free(out);
            return NULL;
        }
        wki_node_save(n, 0, cond);
    }
    return out;
}

/* ---- in place ---- */

/* What add_ and mul_scalar_ check of their destination: no graph recording is skipped
 * silently, no element is stored twice, and the result type fits (torch's can_cast: no
 * float into an integer tensor, no number into a bool one). */
static bool check_inplace(const char *op, const wk_tensor *dst, wk_dtype result)
{
    if (dst->requires_grad && wk_grad_enabled()) {
        wk_set_error("%s: the destination (%s %s) requires grad, and in-place ops are not "
                     "recorded by autograd; update it inside wk_no_grad_begin/end, or use the "
                     "out-of-place op",
                     op, wk_dtype_name(dst->dtype), wki_shape_s(dst));
        return false;
    }
    for (int d = 0; d < dst->ndim; d++) {
        if (dst->strides[d] == 0 && dst->shape[d] > 1) {
            wk_set_error("%s: the destination (shape %s) has elements sharing one memory "
                         "location (an expanded view); write into wk_contiguous(t) instead",
                         op, wki_shape_s(dst));
            return false;
        }
    }
    if (category(result) > category(dst->dtype)) {
        wk_set_error("%s: the result type %s cannot be stored in the %s destination (shape "
                     "%s)",
                     op, wk_dtype_name(result), wk_dtype_name(dst->dtype), wki_shape_s(dst));
        return false;
    }
    return true;
}

/* Bytes [*lo, *hi] that t's elements span in its storage; false when it has none. */
static bool byte_span(const wk_tensor *t, int64_t *lo, int64_t *hi)
{
    int64_t first = t->offset, last = t->offset;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] == 0) return false;
        int64_t ext = (t->shape[d] - 1) * t->strides[d];
        if (ext < 0) first += ext;
        else last += ext;
    }
    int64_t size = (int64_t)wk_dtype_size(t->dtype);
    *lo = first * size;
    *hi = last * size + size - 1;
    return true;
}

/* True when src shares memory with dst other than element for element (x += x is fine,
 * x[1:] += x[:-1] is not: its result would depend on the order of the updates). */
static bool partial_overlap(const wk_tensor *dst, const wk_tensor *src)
{
    if (dst->storage != src->storage) return false;
    if (src->dtype == dst->dtype && src->offset == dst->offset && src->ndim == dst->ndim &&
        !memcmp(src->shape, dst->shape, sizeof dst->shape[0] * (size_t)dst->ndim) &&
        !memcmp(src->strides, dst->strides, sizeof dst->strides[0] * (size_t)dst->ndim))
        return false;
    int64_t dl, dh, sl, sh;
    if (!byte_span(dst, &dl, &dh) || !byte_span(src, &sl, &sh)) return false;
    return dl <= sh && sl <= dh;
}

wk_tensor *wk_add_(wk_tensor *dst, wk_tensor *src)
{
    const char *op = "add_";
    WKI_PROF_OP(op, dst, src);
    if (!WKI_CHECK(op, dst, src) || !check_dtype(op, dst) || !check_dtype(op, src))
        return NULL;
    bool cpu_scalar = src->ndim == 0 && src->device.type == WK_DEVICE_CPU;
    if (!cpu_scalar && !wki_same_device(op, dst, src)) return NULL;
    const wk_tensor *ins[2] = {dst, src};
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape(op, 2, ins, shape, &nd)) return NULL;
    if (nd != dst->ndim || memcmp(shape, dst->shape, sizeof shape[0] * (size_t)nd)) {
        wk_set_error("add_: src of shape %s does not broadcast to the destination's shape %s",
                     wki_shape_s(src), wki_shape_s(dst));
        return NULL;
    }
    if (!check_inplace(op, dst, wk_result_type(dst, src))) return NULL;
    if (partial_overlap(dst, src)) {
        wk_set_error("add_: src (shape %s) partly overlaps the destination (shape %s) in "
                     "memory; pass wk_clone(src)",
                     wki_shape_s(src), wki_shape_s(dst));
        return NULL;
    }
    wki_inplace_kernel kernel = KERNEL_FOR(inplace_kernels, dst->device);
    if (!kernel) {
        no_kernel(op, dst->device);
        return NULL;
    }
    if (kernel(WK_BINARY_ADD, dst, src) != WKI_EW_OK) {
        wk_set_error("add_: no kernel for %s", wk_dtype_name(dst->dtype));
        return NULL;
    }
    return dst;
}

wk_tensor *wk_mul_scalar_(wk_tensor *t, double s)
{
    const char *op = "mul_scalar_";
    WKI_PROF_OP(op, t);
    if (!WKI_CHECK(op, t) || !check_dtype(op, t)) return NULL;
    if (!check_inplace(op, t, scalar_result_type(t->dtype, s))) return NULL;
    wki_inplace_kernel kernel = KERNEL_FOR(inplace_kernels, t->device);
    if (!kernel) {
        no_kernel(op, t->device);
        return NULL;
    }
    scalar_box box;
    if (kernel(WK_BINARY_MUL, t, scalar_tensor(&box, t->dtype, s)) != WKI_EW_OK) {
        wk_set_error("mul_scalar_: no kernel for %s", wk_dtype_name(t->dtype));
        return NULL;
    }
    return t;
}

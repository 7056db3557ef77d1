/* Copies between tensors of any layout and dtype (through the element-wise iterator),
 * fill, clone and dtype conversion (the last two with their backward). */
#include <math.h>
#include <string.h>

#include "../autograd/node-impl.h"
#include "profiler-impl.h"
#include "iter-impl.h"

typedef struct {
    wk_dtype dst, src;
} cast_ctx;

/* Float to integer without undefined behaviour: NaN -> 0, saturate out of range. */
static inline int64_t f_to_i64(double v)
{
    if (isnan(v)) return 0;
    if (v >= 9.2233720368547758e18) return INT64_MAX;
    if (v <= -9.2233720368547758e18) return INT64_MIN;
    return (int64_t)v;
}

static inline double load(wk_dtype t, const char *p)
{
    switch (t) {
    case WK_DTYPE_F32: return *(const float *)p;
    case WK_DTYPE_F64: return *(const double *)p;
    case WK_DTYPE_I32: return *(const int32_t *)p;
    case WK_DTYPE_I64: return (double)*(const int64_t *)p;
    case WK_DTYPE_U8: return *(const uint8_t *)p;
    case WK_DTYPE_BOOL: return *(const uint8_t *)p != 0;
    case WK_DTYPE_BF16: return wk_bf16_to_f32(*(const uint16_t *)p);
    case WK_DTYPE_F16: return wk_f16_to_f32(*(const uint16_t *)p);
    default: return 0;
    }
}

static inline void store(wk_dtype t, char *p, double v)
{
    switch (t) {
    case WK_DTYPE_F32: *(float *)p = (float)v; break;
    case WK_DTYPE_F64: *(double *)p = v; break;
    case WK_DTYPE_I32: {
        int64_t i = f_to_i64(v);
        *(int32_t *)p = (int32_t)(i > INT32_MAX ? INT32_MAX : i < INT32_MIN ? INT32_MIN : i);
        break;
    }
    case WK_DTYPE_I64: *(int64_t *)p = f_to_i64(v); break;
    case WK_DTYPE_U8: *(uint8_t *)p = (uint8_t)f_to_i64(v); break;
    case WK_DTYPE_BOOL: *(uint8_t *)p = v != 0; break;
    case WK_DTYPE_BF16: *(uint16_t *)p = wk_f32_to_bf16((float)v); break;
    case WK_DTYPE_F16: *(uint16_t *)p = wk_f32_to_f16((float)v); break;
    default: break;
    }
}

/* Same dtype: a plain move of `size`-byte elements. */
static void copy_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    size_t size = wk_dtype_size(((cast_ctx *)ctx)->dst);
    if (s[0] == (int64_t)size && s[1] == (int64_t)size) {
        memcpy(d[0], d[1], (size_t)n * size);
        return;
    }
    char *o = d[0];
    const char *i = d[1];
    switch (size) {
    case 1: for (int64_t k = 0; k < n; k++) o[k * s[0]] = i[k * s[1]]; break;
    case 2: for (int64_t k = 0; k < n; k++) memcpy(o + k * s[0], i + k * s[1], 2); break;
    case 4: for (int64_t k = 0; k < n; k++) memcpy(o + k * s[0], i + k * s[1], 4); break;
    default: for (int64_t k = 0; k < n; k++) memcpy(o + k * s[0], i + k * s[1], 8); break;
    }
}

/* Typed conversions between the common dtypes, contiguous or strided. */
#define CAST_LOOP(NAME, TO, TI, CONV)                                                    \
    static void NAME(char **d, const int64_t *s, int64_t n, void *ctx)                  \
    {                                                                                    \
        (void)ctx;                                                                       \
        if (s[0] == sizeof(TO) && s[1] == sizeof(TI)) {                                  \
            TO *o = (TO *)d[0];                                                          \
            const TI *i = (const TI *)d[1];                                              \
            for (int64_t k = 0; k < n; k++) o[k] = CONV(i[k]);                           \
        } else {                                                                         \
            for (int64_t k = 0; k < n; k++)                                              \
                *(TO *)(d[0] + k * s[0]) = CONV(*(const TI *)(d[1] + k * s[1]));         \
        }                                                                                \
    }
#define AS_F32(x) ((float)(x))
#define AS_F64(x) ((double)(x))
CAST_LOOP(cast_f64_f32, double, float, AS_F64)
CAST_LOOP(cast_f32_f64, float, double, AS_F32)
CAST_LOOP(cast_f32_u8, float, uint8_t, AS_F32)
CAST_LOOP(cast_f32_i64, float, int64_t, AS_F32)
CAST_LOOP(cast_f32_i32, float, int32_t, AS_F32)
CAST_LOOP(cast_f64_i64, double, int64_t, AS_F64)
CAST_LOOP(cast_f32_bf16, float, uint16_t, wk_bf16_to_f32)
CAST_LOOP(cast_bf16_f32, uint16_t, float, wk_f32_to_bf16)
CAST_LOOP(cast_f32_f16, float, uint16_t, wk_f16_to_f32)
CAST_LOOP(cast_f16_f32, uint16_t, float, wk_f32_to_f16)

static void generic_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    const cast_ctx *c = ctx;
    if (c->dst == WK_DTYPE_I64 && (c->src == WK_DTYPE_I32 || c->src == WK_DTYPE_U8 ||
                                   c->src == WK_DTYPE_BOOL)) {
        for (int64_t k = 0; k < n; k++) /* exact, no detour through double */
            *(int64_t *)(d[0] + k * s[0]) = (int64_t)load(c->src, d[1] + k * s[1]);
        return;
    }
    if (c->src == WK_DTYPE_I64 && c->dst != WK_DTYPE_F32 && c->dst != WK_DTYPE_F64 &&
        c->dst != WK_DTYPE_BF16 && c->dst != WK_DTYPE_F16) {
        for (int64_t k = 0; k < n; k++) { /* integer to integer keeps every bit */
            int64_t v = *(const int64_t *)(d[1] + k * s[1]);
            char *o = d[0] + k * s[0];
            if (c->dst == WK_DTYPE_I32) *(int32_t *)o = (int32_t)(uint32_t)v;
            else if (c->dst == WK_DTYPE_U8) *(uint8_t *)o = (uint8_t)v;
            else *(uint8_t *)o = v != 0;
        }
        return;
    }
    for (int64_t k = 0; k < n; k++)
        store(c->dst, d[0] + k * s[0], load(c->src, d[1] + k * s[1]));
}

static wki_loop_fn cast_fn(wk_dtype dst, wk_dtype src)
{
    static const struct {
        wk_dtype dst, src;
        wki_loop_fn fn;
    } table[] = {
        {WK_DTYPE_F64, WK_DTYPE_F32, cast_f64_f32},  {WK_DTYPE_F32, WK_DTYPE_F64, cast_f32_f64},
        {WK_DTYPE_F32, WK_DTYPE_U8, cast_f32_u8},    {WK_DTYPE_F32, WK_DTYPE_I64, cast_f32_i64},
        {WK_DTYPE_F32, WK_DTYPE_I32, cast_f32_i32},  {WK_DTYPE_F64, WK_DTYPE_I64, cast_f64_i64},
        {WK_DTYPE_F32, WK_DTYPE_BF16, cast_f32_bf16}, {WK_DTYPE_BF16, WK_DTYPE_F32, cast_bf16_f32},
        {WK_DTYPE_F32, WK_DTYPE_F16, cast_f32_f16},  {WK_DTYPE_F16, WK_DTYPE_F32, cast_f16_f32},
    };
    if (dst == src) return copy_loop;
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].dst == dst && table[i].src == src) return table[i].fn;
    return generic_loop;
}

wk_tensor *wk_copy_(wk_tensor *dst, const wk_tensor *src)
{
    WKI_PROF_OP("copy_", dst, src);
    if (!WKI_CHECK("copy_", dst, src)) return NULL;
    if (!wki_same_device("copy_", dst, src) || !wki_require_cpu("copy_", dst)) return NULL;
    const wk_tensor *ops[2] = {dst, src};
    int64_t shape[WK_MAX_DIMS];
    int nd;
    if (!wki_broadcast_shape("copy_", 2, ops, shape, &nd)) return NULL;
    if (nd != dst->ndim || memcmp(shape, dst->shape, (size_t)nd * sizeof *shape)) {
        wk_set_error("copy_: source shape %s does not broadcast to destination shape %s",
                     wki_shape_s(src), wki_shape_s(dst));
        return NULL;
    }
    wki_iter it;
    wki_iter_init(&it, 2, ops);
    cast_ctx ctx = {dst->dtype, src->dtype};
    wki_iter_run(&it, cast_fn(dst->dtype, src->dtype), &ctx);
    return dst;
}

typedef struct {
    wk_dtype dtype;
    _Alignas(8) char bytes[8]; /* store() writes doubles and int64s here */
} fill_ctx;

static void fill_loop(char **d, const int64_t *s, int64_t n, void *ctx)
{
    const fill_ctx *c = ctx;
    size_t size = wk_dtype_size(c->dtype);
    if (size == 4 && s[0] == 4) {
        uint32_t v;
        memcpy(&v, c->bytes, 4);
        uint32_t *o = (uint32_t *)d[0];
        for (int64_t k = 0; k < n; k++) o[k] = v;
    } else if (size == 1 && s[0] == 1) {
        memset(d[0], c->bytes[0], (size_t)n);
    } else {
        for (int64_t k = 0; k < n; k++) memcpy(d[0] + k * s[0], c->bytes, size);
    }
}

wk_tensor *wk_fill_(wk_tensor *t, double value)
{
    WKI_PROF_OP("fill_", t);
    if (!WKI_CHECK("fill_", t)) return NULL;
    if (!wki_require_cpu("fill_", t)) return NULL;
    fill_ctx ctx = {.dtype = t->dtype};
    store(t->dtype, ctx.bytes, value);
    const wk_tensor *ops[1] = {t};
    wki_iter it;
    wki_iter_init(&it, 1, ops);
    wki_iter_run(&it, fill_loop, &ctx);
    return t;
}

/* clone, and to_dtype between float dtypes: the gradient in the input's dtype (the
 * engine aliases it when it is g itself). */
static int cast_backward(wki_node *n, wk_tensor *g, wk_tensor **grads)
{
    wk_dtype dt = n->inputs[0]->dtype;
    grads[0] = g->dtype == dt ? g : wk_to_dtype(g, dt);
    return grads[0] ? 0 : -1;
}

/* Give out a node when t requires grad and out is a float tensor. */
static wk_tensor *record(wk_tensor *out, wk_tensor *t, const char *op)
{
    if (!out || !wk_dtype_is_float(out->dtype) || !wki_grad_needed(1, (const wk_tensor *[]){t}))
        return out;
    if (!wki_node_new(out, op, cast_backward, 1, &t)) {
        wk_tensor_free(out);
        return NULL;
    }
    return out;
}

wk_tensor *wk_clone(const wk_tensor *t)
{
    WKI_PROF_OP("clone", t);
    if (!WKI_CHECK("clone", t)) return NULL;
    wk_tensor *c = wk_empty_like(t);
    if (c && !wk_copy_(c, t)) {
        wk_tensor_free(c);
        return NULL;
    }
    /* t is const for readers of the API; the node only takes a reference on it */
    return record(c, (wk_tensor *)t, "clone");
}

wk_tensor *wk_to_dtype(wk_tensor *t, wk_dtype dtype)
{
    WKI_PROF_OP("to_dtype", t);
    if (!WKI_CHECK("to_dtype", t)) return NULL;
    if ((unsigned)dtype >= WK_DTYPE_COUNT) {
        wk_set_error("to_dtype: invalid dtype %d", (int)dtype);
        return NULL;
    }
    wk_tensor *c;
    if (dtype == t->dtype && wk_is_contiguous(t)) {
        c = wk_alias(t);
    } else {
        c = wki_empty_on(t->shape, t->ndim, dtype, t->device);
        if (c && !wk_copy_(c, t)) {
            wk_tensor_free(c);
            return NULL;
        }
    }
    return record(c, t, "to_dtype");
}

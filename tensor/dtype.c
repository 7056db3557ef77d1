/* Element types: sizes, names, and the bf16/f16 storage conversions. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "tensor-impl.h"

static const struct {
    const char *name;
    size_t size;
    bool is_float;
} dtype_info[] = {
    [WK_DTYPE_F32] = {"float32", 4, true},  [WK_DTYPE_F64] = {"float64", 8, true},
    [WK_DTYPE_I32] = {"int32", 4, false},   [WK_DTYPE_I64] = {"int64", 8, false},
    [WK_DTYPE_U8] = {"uint8", 1, false},    [WK_DTYPE_BOOL] = {"bool", 1, false},
    [WK_DTYPE_BF16] = {"bfloat16", 2, true}, [WK_DTYPE_F16] = {"float16", 2, true},
};
_Static_assert(sizeof dtype_info / sizeof dtype_info[0] == WK_DTYPE_COUNT,
               "dtype_info must have one row per wk_dtype");

static bool valid(wk_dtype d) { return (unsigned)d < WK_DTYPE_COUNT; }

size_t wk_dtype_size(wk_dtype d) { return valid(d) ? dtype_info[d].size : 0; }
const char *wk_dtype_name(wk_dtype d) { return valid(d) ? dtype_info[d].name : "?"; }
bool wk_dtype_is_float(wk_dtype d) { return valid(d) && dtype_info[d].is_float; }

const char *wk_device_str(wk_device device, char *buf, size_t size)
{
    if (device.type == WK_DEVICE_CPU) snprintf(buf, size, "cpu");
    else if (device.type == WK_DEVICE_CUDA) snprintf(buf, size, "cuda:%d", device.index);
    else snprintf(buf, size, "device?%d", (int)device.type);
    return buf;
}

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}

static float bits_f32(uint32_t u)
{
    float x;
    memcpy(&x, &u, 4);
    return x;
}

uint16_t wk_f32_to_bf16(float x)
{
    uint32_t u = f32_bits(x);
    if (isnan(x)) return (uint16_t)((u >> 16) | 0x40); /* keep it a quiet NaN */
    u += 0x7fff + ((u >> 16) & 1);                      /* round to nearest even */
    return (uint16_t)(u >> 16);
}

float wk_bf16_to_f32(uint16_t x) { return bits_f32((uint32_t)x << 16); }

uint16_t wk_f32_to_f16(float x)
{
    uint32_t u = f32_bits(x);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t exp = (u >> 23) & 0xff;
    uint32_t man = u & 0x7fffff;
    if (exp == 0xff) return (uint16_t)(sign | 0x7c00 | (man ? 0x200 : 0));
    int e = (int)exp - 127 + 15;
    if (e >= 31) return (uint16_t)(sign | 0x7c00); /* overflow -> inf */
    if (e <= 0) {                                  /* subnormal or zero */
        if (e < -10) return (uint16_t)sign;
        man |= 0x800000;
        int shift = 14 - e;
        uint32_t half = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rem > mid || (rem == mid && (half & 1))) half++;
        return (uint16_t)(sign | half);
    }
    uint32_t half = sign | ((uint32_t)e << 10) | (man >> 13);
    uint32_t rem = man & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (half & 1))) half++; /* may carry into exp: ok */
    return (uint16_t)half;
}

float wk_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f;
    uint32_t man = h & 0x3ff;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000 | (man << 13));
    if (exp == 0) {
        if (!man) return bits_f32(sign);
        float v = ldexpf((float)man, -24); /* subnormal: man * 2^-24 */
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

#ifndef WK_HAVE_CUDA
int wk_cuda_device_count(void) { return 0; }
#endif

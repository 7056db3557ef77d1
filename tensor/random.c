/* Philox4x32-10, generators, and the sampling ops. One front-end (sample) validates,
 * allocates, reserves the counter range and dispatches to the device's kernel; the CPU
 * kernels generate Philox blocks in fixed-size chunks (in parallel) and turn their words
 * into elements, so element i always comes from the same words whatever the threads. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "random.h"
#include "profiler-impl.h"
#include "tensor-impl.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

#define CHUNK_BLOCKS 256 /* blocks generated at once by one thread (4 KiB of words) */
#define GRAIN 16384      /* elements per thread below which sampling stays serial */

/* ---- Philox ---- */

static inline void philox(uint32_t x0, uint32_t x1, uint32_t x2, uint32_t x3, uint32_t k0,
                          uint32_t k1, uint32_t *out)
{
    for (int r = 0; r < 10; r++) {
        uint64_t p0 = (uint64_t)PHILOX_M0 * x0, p1 = (uint64_t)PHILOX_M1 * x2;
        uint32_t y0 = (uint32_t)(p1 >> 32) ^ x1 ^ k0, y1 = (uint32_t)p1;
        uint32_t y2 = (uint32_t)(p0 >> 32) ^ x3 ^ k1, y3 = (uint32_t)p0;
        x0 = y0, x1 = y1, x2 = y2, x3 = y3;
        k0 += PHILOX_W0, k1 += PHILOX_W1;
    }
    out[0] = x0, out[1] = x1, out[2] = x2, out[3] = x3;
}

void wk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4])
{
    philox(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
}

/* Blocks for counters first .. first+count-1 into w (4 words each). */
static void philox_blocks(const uint32_t key[2], uint64_t first, int64_t count, uint32_t *w)
{
    for (int64_t b = 0; b < count; b++) {
        uint64_t c = first + (uint64_t)b;
        philox((uint32_t)c, (uint32_t)(c >> 32), 0, 0, key[0], key[1], w + 4 * b);
    }
}

/* ---- generators ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

#define DEFAULT_SEED 67280421310721ull

static wk_generator default_gen = {DEFAULT_SEED, 0};
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

wk_generator wk_generator_make(uint64_t seed) { return (wk_generator){seed, 0}; }

wk_generator wk_generator_split(const wk_generator *g, uint64_t stream)
{
    uint64_t seed = g ? g->seed : wk_default_generator()->seed;
    return wk_generator_make(splitmix64(splitmix64(seed) ^ stream));
}

wk_generator *wk_default_generator(void) { return &default_gen; }

void wk_manual_seed(uint64_t seed)
{
    pthread_mutex_lock(&default_lock);
    default_gen = wk_generator_make(seed);
    pthread_mutex_unlock(&default_lock);
}

/* Take `blocks` counters from g (the default one under its lock): the key and the
 * first counter of the range go to key/base. */
static void reserve(wk_generator *g, uint64_t blocks, uint32_t key[2], uint64_t *base)
{
    bool shared = !g || g == &default_gen;
    if (shared) {
        g = &default_gen;
        pthread_mutex_lock(&default_lock);
    }
    key[0] = (uint32_t)g->seed;
    key[1] = (uint32_t)(g->seed >> 32);
    *base = g->offset;
    g->offset += blocks;
    if (shared) pthread_mutex_unlock(&default_lock);
}

/* ---- the op family ---- */

typedef enum {
    WK_RANDOM_UNIFORM,
    WK_RANDOM_NORMAL,
    WK_RANDOM_RANDINT,
    WK_RANDOM_BERNOULLI,
    WK_RANDOM_RANDPERM,
    WK_RANDOM_COUNT
} random_op;

#define DT(d) (1u << (d))
#define FLOATS (DT(WK_DTYPE_F32) | DT(WK_DTYPE_F64))

static const struct {
    const char *name;
    unsigned dtypes;    /* bit mask of accepted output dtypes */
    int words_f32;      /* 32-bit words per element of a float32 output */
    int words;          /* ... of any other output */
} random_info[] = {
    [WK_RANDOM_UNIFORM] = {"uniform", FLOATS, 1, 2},
    [WK_RANDOM_NORMAL] = {"normal", FLOATS, 1, 2},
    [WK_RANDOM_RANDINT] = {"randint", DT(WK_DTYPE_I64), 2, 2},
    [WK_RANDOM_BERNOULLI] = {"bernoulli",
                             FLOATS | DT(WK_DTYPE_I32) | DT(WK_DTYPE_I64) | DT(WK_DTYPE_U8) |
                                 DT(WK_DTYPE_BOOL),
                             2, 2},
    [WK_RANDOM_RANDPERM] = {"randperm", DT(WK_DTYPE_I64), 2, 2},
};
_Static_assert(sizeof random_info / sizeof random_info[0] == WK_RANDOM_COUNT,
               "random_info must have one row per random op");

typedef struct {
    uint32_t key[2];
    uint64_t base;    /* counter of the output's first block */
    double a, b;      /* uniform: lo, hi; normal: mean, std; bernoulli: p */
    int64_t low;      /* randint */
    uint64_t range;   /* randint: high - low */
    const void *p;    /* bernoulli: contiguous probabilities of out's dtype, or NULL */
} random_args;

/* A kernel fills the contiguous `out` from the counters in `a`. */
typedef bool (*random_kernel)(wk_tensor *out, const random_args *a);

/* ---- CPU kernels ---- */

/* Turns the words of elements [e0, e1) (w holds e0's words first) into out[e0..e1). */
typedef void (*convert_fn)(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                           const random_args *a);

static inline uint64_t word64(const uint32_t *w) { return (uint64_t)w[1] << 32 | w[0]; }
static inline float u24(uint32_t x) { return (float)(x >> 8) * 0x1p-24f; }
static inline double u53(uint64_t x) { return (double)(x >> 11) * 0x1p-53; }

/* The largest value of the dtype below hi (the uniform ops never return hi). */
static float below_f32(double hi)
{
    float f = (float)hi;
    return (double)f >= hi ? nextafterf(f, -INFINITY) : f;
}
static double below_f64(double hi) { return nextafter(hi, -INFINITY); }

static void uniform_f32(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                        const random_args *a)
{
    float *o = out;
    double lo = a->a, d = a->b - a->a;
    if (lo == 0 && d == 1) {
        for (int64_t e = e0; e < e1; e++) o[e] = u24(w[e - e0]);
        return;
    }
    float cap = d > 0 ? below_f32(a->b) : (float)lo;
    for (int64_t e = e0; e < e1; e++) {
        float v = (float)(lo + d * (double)u24(w[e - e0]));
        o[e] = v > cap ? cap : v;
    }
}

static void uniform_f64(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                        const random_args *a)
{
    double *o = out;
    double lo = a->a, d = a->b - a->a;
    double cap = d > 0 ? below_f64(a->b) : lo;
    for (int64_t e = e0; e < e1; e++) {
        double v = lo + d * u53(word64(w + 2 * (e - e0)));
        o[e] = v > cap ? cap : v;
    }
}

/* Box-Muller: u1 in (0, 1], u2 in [0, 1) -> two independent standard normals. */
static inline void box_muller(double u1, double u2, double *z0, double *z1)
{
    double r = sqrt(-2.0 * log(u1)), t = 2.0 * M_PI * u2;
    *z0 = r * cos(t);
    *z1 = r * sin(t);
}

/* float32: words 2k, 2k+1 of a block give elements 2k, 2k+1 (single-precision math:
 * the inputs have 24 bits). */
static void normal_f32(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                       const random_args *a)
{
    float *o = out;
    for (int64_t e = e0; e < e1; e += 2) {
        const uint32_t *x = w + (e - e0);
        float u1 = (float)((x[0] >> 8) + 1) * 0x1p-24f, u2 = (float)(x[1] >> 8) * 0x1p-24f;
        float r = sqrtf(-2.0f * logf(u1)), t = 2.0f * (float)M_PI * u2;
        o[e] = (float)(a->a + a->b * (double)(r * cosf(t)));
        if (e + 1 < e1) o[e + 1] = (float)(a->a + a->b * (double)(r * sinf(t)));
    }
}

/* float64: words 0-1 (u1) and 2-3 (u2) of block k give elements 2k, 2k+1. */
static void normal_f64(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                       const random_args *a)
{
    double *o = out;
    for (int64_t e = e0; e < e1; e += 2) {
        const uint32_t *x = w + 2 * (e - e0);
        double z0, z1;
        box_muller(((word64(x) >> 11) + 1) * 0x1p-53, u53(word64(x + 2)), &z0, &z1);
        o[e] = a->a + a->b * z0;
        if (e + 1 < e1) o[e + 1] = a->a + a->b * z1;
    }
}

static void randint_i64(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                        const random_args *a)
{
    int64_t *o = out;
    for (int64_t e = e0; e < e1; e++)
        o[e] = (int64_t)((uint64_t)a->low + word64(w + 2 * (e - e0)) % a->range);
}

/* Raw 64-bit draws; randperm's shuffle consumes them. */
static void bits_i64(void *out, int64_t e0, int64_t e1, const uint32_t *w,
                     const random_args *a)
{
    (void)a;
    uint64_t *o = out;
    for (int64_t e = e0; e < e1; e++) o[e] = word64(w + 2 * (e - e0));
}

#define BERNOULLI_FN(NAME, T)                                                            \
    static void NAME(void *out, int64_t e0, int64_t e1, const uint32_t *w,              \
                     const random_args *a)                                               \
    {                                                                                    \
        T *o = out;                                                                      \
        for (int64_t e = e0; e < e1; e++) {                                              \
            double p = a->p ? (double)((const T *)a->p)[e] : a->a;                       \
            o[e] = (T)(u53(word64(w + 2 * (e - e0))) < p);                               \
        }                                                                                \
    }
BERNOULLI_FN(bernoulli_f32, float)
BERNOULLI_FN(bernoulli_f64, double)
BERNOULLI_FN(bernoulli_i32, int32_t)
BERNOULLI_FN(bernoulli_i64, int64_t)
BERNOULLI_FN(bernoulli_u8, uint8_t) /* also bool: one byte, 0 or 1 */

/* Generate the blocks of out's elements chunk by chunk and convert them. */
static void cpu_generate(wk_tensor *out, const random_args *a, int words, convert_fn fn)
{
    int64_t n = wk_numel(out);
    int per_block = 4 / words;
    int64_t blocks = (n + per_block - 1) / per_block;
    int64_t chunks = (blocks + CHUNK_BLOCKS - 1) / CHUNK_BLOCKS;
    void *data = wk_data(out);
#pragma omp parallel for num_threads(wki_threads_for(n, GRAIN)) schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        uint32_t w[4 * CHUNK_BLOCKS];
        int64_t b0 = c * CHUNK_BLOCKS;
        int64_t nb = blocks - b0 < CHUNK_BLOCKS ? blocks - b0 : CHUNK_BLOCKS;
        philox_blocks(a->key, a->base + (uint64_t)b0, nb, w);
        int64_t e0 = b0 * per_block, e1 = (b0 + nb) * per_block;
        fn(data, e0, e1 < n ? e1 : n, w, a);
    }
}

static int words_for(random_op op, wk_dtype dtype)
{
    return dtype == WK_DTYPE_F32 ? random_info[op].words_f32 : random_info[op].words;
}

static bool cpu_uniform(wk_tensor *out, const random_args *a)
{
    cpu_generate(out, a, words_for(WK_RANDOM_UNIFORM, out->dtype),
                 out->dtype == WK_DTYPE_F32 ? uniform_f32 : uniform_f64);
    return true;
}

static bool cpu_normal(wk_tensor *out, const random_args *a)
{
    cpu_generate(out, a, words_for(WK_RANDOM_NORMAL, out->dtype),
                 out->dtype == WK_DTYPE_F32 ? normal_f32 : normal_f64);
    return true;
}

static bool cpu_randint(wk_tensor *out, const random_args *a)
{
    cpu_generate(out, a, words_for(WK_RANDOM_RANDINT, out->dtype), randint_i64);
    return true;
}

static bool cpu_bernoulli(wk_tensor *out, const random_args *a)
{
    convert_fn fn;
    switch (out->dtype) {
    case WK_DTYPE_F32: fn = bernoulli_f32; break;
    case WK_DTYPE_F64: fn = bernoulli_f64; break;
    case WK_DTYPE_I32: fn = bernoulli_i32; break;
    case WK_DTYPE_I64: fn = bernoulli_i64; break;
    default: fn = bernoulli_u8; break; /* u8 and bool */
    }
    cpu_generate(out, a, words_for(WK_RANDOM_BERNOULLI, out->dtype), fn);
    return true;
}

/* Inside-out Fisher-Yates over n 64-bit draws held in out itself: step i reads its draw
 * from out[i] before that slot is written. */
static bool cpu_randperm(wk_tensor *out, const random_args *a)
{
    cpu_generate(out, a, words_for(WK_RANDOM_RANDPERM, out->dtype), bits_i64);
    int64_t *o = wk_data(out), n = wk_numel(out);
    for (int64_t i = 0; i < n; i++) {
        uint64_t j = (uint64_t)o[i] % (uint64_t)(i + 1);
        o[i] = o[j];
        o[j] = i;
    }
    return true;
}

static const random_kernel kernels[WK_DEVICE_COUNT][WK_RANDOM_COUNT] = {
    [WK_DEVICE_CPU] = {cpu_uniform, cpu_normal, cpu_randint, cpu_bernoulli, cpu_randperm},
    /* [WK_DEVICE_CUDA]: filled by the CUDA backend */
};

/* ---- the front-end ---- */

static bool check_dtype(const char *opname, random_op op, wk_dtype dtype)
{
    if ((unsigned)dtype < WK_DTYPE_COUNT && (random_info[op].dtypes & DT(dtype))) return true;
    if (dtype == WK_DTYPE_BF16 || dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s is a storage type; sample float32 and convert with wk_to_dtype",
                     opname, wk_dtype_name(dtype));
        return false;
    }
    char list[128] = "";
    size_t len = 0;
    for (int d = 0; d < WK_DTYPE_COUNT; d++)
        if (random_info[op].dtypes & DT(d))
            len += (size_t)snprintf(list + len, sizeof list - len, "%s%s", len ? ", " : "",
                                    wk_dtype_name((wk_dtype)d));
    wk_set_error("%s: dtype %s is not supported (expected %s)", opname, wk_dtype_name(dtype),
                 list);
    return false;
}

/* True when two elements of t share memory (an expanded view): in-place sampling into it
 * would race. */
static bool overlaps(const wk_tensor *t)
{
    for (int i = 0; i < t->ndim; i++)
        if (t->shape[i] > 1 && t->strides[i] == 0) return true;
    return false;
}

/* Sample op into `dst` in place (any layout) or, when dst is NULL, into a new tensor of
 * (shape, ndim, dtype) on `device`. The counters are reserved only once every check has
 * passed, so a failed call leaves the generator untouched. */
static wk_tensor *sample(random_op op, const char *opname, wk_tensor *dst,
                         const int64_t *shape, int ndim, wk_dtype dtype, wk_device device,
                         random_args *a, wk_generator *g)
{
    WKI_PROF_OP_SHAPE(opname, dst ? dst->shape : shape, dst ? dst->ndim : ndim,
                      dst ? dst->dtype : dtype);
    if (dst) {
        shape = dst->shape, ndim = dst->ndim, dtype = dst->dtype, device = dst->device;
        if (overlaps(dst)) {
            wk_set_error("%s: tensor of shape %s has overlapping elements (an expanded view); "
                         "sample into a contiguous tensor instead",
                         opname, wki_shape_s(dst));
            return NULL;
        }
    } else {
        if (ndim < 0 || ndim > WK_MAX_DIMS || (ndim > 0 && !shape)) {
            wk_set_error("%s: invalid shape (%d dims, expected 0..%d)", opname, ndim,
                         WK_MAX_DIMS);
            return NULL;
        }
        for (int i = 0; i < ndim; i++) {
            if (shape[i] < 0) {
                wk_set_error("%s: negative size %lld in shape %s", opname,
                             (long long)shape[i], wki_dims_s(shape, ndim));
                return NULL;
            }
        }
    }
    if (!check_dtype(opname, op, dtype)) return NULL;
    random_kernel k = (unsigned)device.type < WK_DEVICE_COUNT ? kernels[device.type][op] : NULL;
    if (!k) {
        char d[32];
        wk_set_error("%s: no kernel for device %s", opname, wk_device_str(device, d, sizeof d));
        return NULL;
    }
    wk_tensor *out = dst && wk_is_contiguous(dst) ? dst : wki_empty_on(shape, ndim, dtype, device);
    if (!out) return NULL;
    int per_block = 4 / words_for(op, dtype);
    uint64_t n = (uint64_t)wk_numel(out);
    reserve(g, (n + (uint64_t)per_block - 1) / (uint64_t)per_block, a->key, &a->base);
    bool ok = k(out, a);
    if (!dst) {
        if (ok) return out;
        wk_tensor_free(out);
        return NULL;
    }
    if (out != dst) { /* a non-contiguous destination: sampled contiguously, copied */
        ok = ok && wk_copy_(dst, out);
        wk_tensor_free(out);
    }
    return ok ? dst : NULL;
}

wk_tensor *wk_rand(const int64_t *shape, int ndim, wk_dtype dtype, wk_generator *g)
{
    random_args a = {.a = 0, .b = 1};
    return sample(WK_RANDOM_UNIFORM, "rand", NULL, shape, ndim, dtype, WK_CPU, &a, g);
}

wk_tensor *wk_randn(const int64_t *shape, int ndim, wk_dtype dtype, wk_generator *g)
{
    random_args a = {.a = 0, .b = 1};
    return sample(WK_RANDOM_NORMAL, "randn", NULL, shape, ndim, dtype, WK_CPU, &a, g);
}

wk_tensor *wk_randint(int64_t low, int64_t high, const int64_t *shape, int ndim,
                      wk_generator *g)
{
    if (high <= low) {
        wk_set_error("randint: expected low < high, got low=%lld high=%lld", (long long)low,
                     (long long)high);
        return NULL;
    }
    random_args a = {.low = low, .range = (uint64_t)high - (uint64_t)low};
    return sample(WK_RANDOM_RANDINT, "randint", NULL, shape, ndim, WK_DTYPE_I64, WK_CPU, &a,
                  g);
}

/* Index (row-major) of the first element of contiguous p outside [0, 1], or -1. */
#define FIND_BAD(T)                                                                      \
    do {                                                                                 \
        const T *q = data;                                                               \
        for (int64_t i = 0; i < n; i++)                                                  \
            if (!(q[i] >= 0 && q[i] <= 1)) return i;                                     \
    } while (0)
static int64_t find_bad_probability(const void *data, wk_dtype dtype, int64_t n)
{
    if (dtype == WK_DTYPE_F32) FIND_BAD(float);
    else FIND_BAD(double);
    return -1;
}

wk_tensor *wk_bernoulli(const wk_tensor *p, wk_generator *g)
{
    if (!WKI_CHECK("bernoulli", p)) return NULL;
    if (p->dtype != WK_DTYPE_F32 && p->dtype != WK_DTYPE_F64) {
        if (p->dtype == WK_DTYPE_BF16 || p->dtype == WK_DTYPE_F16)
            wk_set_error("bernoulli: %s is a storage type; convert the probabilities to "
                         "float32 with wk_to_dtype",
                         wk_dtype_name(p->dtype));
        else
            wk_set_error("bernoulli: probabilities must be float32 or float64, got %s",
                         wk_dtype_name(p->dtype));
        return NULL;
    }
    if (!wki_require_cpu("bernoulli", p)) return NULL;
    wk_tensor *pc = wk_contiguous((wk_tensor *)p); /* reads only */
    if (!pc) return NULL;
    int64_t bad = find_bad_probability(wk_data(pc), pc->dtype, wk_numel(pc));
    if (bad >= 0) {
        double v = pc->dtype == WK_DTYPE_F32 ? ((const float *)wk_data(pc))[bad]
                                             : ((const double *)wk_data(pc))[bad];
        wk_set_error("bernoulli: probability %g at flat index %lld of shape %s is outside "
                     "[0, 1]",
                     v, (long long)bad, wki_shape_s(p));
        wk_tensor_free(pc);
        return NULL;
    }
    random_args a = {.p = wk_data(pc)};
    wk_tensor *out = sample(WK_RANDOM_BERNOULLI, "bernoulli", NULL, p->shape, p->ndim,
                            p->dtype, p->device, &a, g);
    wk_tensor_free(pc);
    return out;
}

wk_tensor *wk_bernoulli_p(const int64_t *shape, int ndim, double p, wk_dtype dtype,
                          wk_generator *g)
{
    if (!(p >= 0 && p <= 1)) {
        wk_set_error("bernoulli_p: probability %g is outside [0, 1]", p);
        return NULL;
    }
    random_args a = {.a = p};
    return sample(WK_RANDOM_BERNOULLI, "bernoulli_p", NULL, shape, ndim, dtype, WK_CPU, &a,
                  g);
}

wk_tensor *wk_randperm(int64_t n, wk_generator *g)
{
    if (n < 0) {
        wk_set_error("randperm: n must be non-negative, got %lld", (long long)n);
        return NULL;
    }
    random_args a = {0};
    return sample(WK_RANDOM_RANDPERM, "randperm", NULL, &n, 1, WK_DTYPE_I64, WK_CPU, &a, g);
}

wk_tensor *wk_uniform_(wk_tensor *t, double lo, double hi, wk_generator *g)
{
    if (!WKI_CHECK("uniform_", t)) return NULL;
    if (!isfinite(lo) || !isfinite(hi) || lo > hi) {
        wk_set_error("uniform_: expected finite lo <= hi, got lo=%g hi=%g", lo, hi);
        return NULL;
    }
    random_args a = {.a = lo, .b = hi};
    return sample(WK_RANDOM_UNIFORM, "uniform_", t, NULL, 0, t->dtype, t->device, &a, g);
}

wk_tensor *wk_normal_(wk_tensor *t, double mean, double std, wk_generator *g)
{
    if (!WKI_CHECK("normal_", t)) return NULL;
    if (!isfinite(mean) || !isfinite(std) || std < 0) {
        wk_set_error("normal_: expected finite mean and std >= 0, got mean=%g std=%g", mean,
                     std);
        return NULL;
    }
    random_args a = {.a = mean, .b = std};
    return sample(WK_RANDOM_NORMAL, "normal_", t, NULL, 0, t->dtype, t->device, &a, g);
}

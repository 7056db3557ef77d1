/* Random tensors from a counter-based generator (Philox4x32-10).
 *
 *   wk_manual_seed(42);                                      // the process default
 *   wk_tensor *u = wk_rand(WK_SHAPE(2, 3), WK_DTYPE_F32, NULL);
 *   wk_generator g = wk_generator_make(7);                   // or an explicit one
 *   wk_generator init = wk_generator_split(&g, 1);           // a stream per purpose
 *   wk_normal_(weight, 0.0, 0.02, &init);
 *   wk_generator saved = g;                                  // the whole state
 *   wk_tensor *a = wk_randn(WK_SHAPE(4), WK_DTYPE_F64, &g);
 *   g = saved;                                               // ...and back:
 *   wk_tensor *b = wk_randn(WK_SHAPE(4), WK_DTYPE_F64, &g);  // b equals a
 *
 * A generator is two integers: the Philox key is `seed` (low word first) and the
 * 128-bit counter of the block for element block b of a call is offset + b (low 64
 * bits; the high 64 bits are 0). Each sampling call uses blocks offset ..
 * offset+blocks-1 and then advances offset by `blocks`, so every value depends only on
 * (seed, offset, element index): results are identical for any thread count and a
 * copied generator replays its stream. Elements per 128-bit block: rand/uniform_ f32 4
 * (24 bits each), f64 2 (53 bits); randn/normal_ f32 4, f64 2 (Box-Muller on pairs of
 * uniforms); randint, bernoulli, randperm 2 (64 bits each).
 *
 * Passing NULL as generator uses the process default generator. Calls on it are
 * serialised by a mutex (each call reserves its counter range atomically), so threads
 * may sample from it concurrently; reading or assigning *wk_default_generator() while
 * other threads sample is not synchronised. An explicit generator is the caller's to
 * protect.
 *
 * Results are new contiguous CPU tensors owned by the current frame (persistent outside
 * frames); on failure NULL (or a negative int) with a message for wk_last_error().
 */
#ifndef WK_RANDOM_H
#define WK_RANDOM_H

#include "tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    uint64_t seed;   /* the Philox key */
    uint64_t offset; /* the next unused counter (in 128-bit blocks) */
} wk_generator;

/* One Philox4x32-10 block: 10 rounds of the counter ctr under key (Random123's
 * philox4x32_R(10, ...)). */
void wk_philox4x32_10(const uint32_t ctr[4], const uint32_t key[2], uint32_t out[4]);

/* A generator at the start of the stream of `seed`. */
wk_generator wk_generator_make(uint64_t seed);
/* An independent generator derived from g's seed and a stream id (splitmix64 of both),
 * starting at offset 0; g's offset does not matter and g is not changed (NULL: the
 * default generator). */
wk_generator wk_generator_split(const wk_generator *g, uint64_t stream);
/* The process default generator (used for NULL generator arguments). Initially seeded
 * with 67280421310721, torch's default seed. */
wk_generator *wk_default_generator(void);
/* Reset the default generator to the start of the stream of `seed`. */
void wk_manual_seed(uint64_t seed);

/* Uniform on [0, 1): f32 from 24 random bits, f64 from 53. dtype f32 or f64. */
wk_tensor *wk_rand(const int64_t *shape, int ndim, wk_dtype dtype, wk_generator *g);
/* Standard normal (Box-Muller). dtype f32 or f64. */
wk_tensor *wk_randn(const int64_t *shape, int ndim, wk_dtype dtype, wk_generator *g);
/* int64 integers uniform on [low, high) (a 64-bit draw modulo high-low: the bias is at
 * most (high-low)/2^64). Errors: high <= low. */
wk_tensor *wk_randint(int64_t low, int64_t high, const int64_t *shape, int ndim,
                      wk_generator *g);
/* 1 with probability p[i], else 0; the result has p's shape and dtype (f32 or f64; p
 * may have any layout). Errors: an element of p outside [0, 1] or NaN. */
wk_tensor *wk_bernoulli(const wk_tensor *p, wk_generator *g);
/* 1 with probability p, else 0, for every element; dtype f32, f64, i32, i64, u8 or bool.
 * Errors: p outside [0, 1]. */
wk_tensor *wk_bernoulli_p(const int64_t *shape, int ndim, double p, wk_dtype dtype,
                          wk_generator *g);
/* A random permutation of 0..n-1 (int64; Fisher-Yates driven by the generator).
 * Errors: n < 0. */
wk_tensor *wk_randperm(int64_t n, wk_generator *g);
/* In place: every element of t (f32 or f64, any layout without overlapping elements)
 * uniform on [lo, hi) (lo + (hi-lo)*u). Returns t. Errors: lo > hi, non-finite bounds. */
wk_tensor *wk_uniform_(wk_tensor *t, double lo, double hi, wk_generator *g);
/* In place: every element of t normal with the given mean and std (mean + std*z).
 * Returns t. Errors: std < 0, non-finite mean or std. */
wk_tensor *wk_normal_(wk_tensor *t, double mean, double std, wk_generator *g);

#ifdef __cplusplus
}
#endif
#endif

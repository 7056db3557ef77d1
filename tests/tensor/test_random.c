/* Philox known answers, the documented stream layout, statistics, determinism (seeds,
 * thread counts, saved state, split streams) and every error of the random ops. */
#include "test_util.h"

TestSuite(random, .init = tu_setup, .fini = tu_teardown);

#define N_STATS 1000000

static void philox_expect(const uint32_t ctr[4], const uint32_t key[2], const uint32_t e[4])
{
    uint32_t out[4];
    wk_philox4x32_10(ctr, key, out);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(out[i], e[i], "word %d: %08x, expected %08x", i, out[i], e[i]);
}

Test(random, philox_known_answers)
{
    /* Random123's kat_vectors for philox4x32_10 */
    philox_expect((uint32_t[]){0, 0, 0, 0}, (uint32_t[]){0, 0},
                  (uint32_t[]){0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8});
    philox_expect((uint32_t[]){0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
                  (uint32_t[]){0xffffffff, 0xffffffff},
                  (uint32_t[]){0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd});
    philox_expect((uint32_t[]){0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
                  (uint32_t[]){0xa4093822, 0x299f31d0},
                  (uint32_t[]){0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1});
}

/* Word w of the block for counter c under seed (the layout random.h documents). */
static uint32_t word(uint64_t seed, uint64_t c, int w)
{
    uint32_t out[4];
    wk_philox4x32_10((uint32_t[]){(uint32_t)c, (uint32_t)(c >> 32), 0, 0},
                     (uint32_t[]){(uint32_t)seed, (uint32_t)(seed >> 32)}, out);
    return out[w];
}
static uint64_t word64(uint64_t seed, uint64_t c, int half)
{
    return (uint64_t)word(seed, c, 2 * half + 1) << 32 | word(seed, c, 2 * half);
}

Test(random, stream_layout)
{
    uint64_t seed = 0x123456789abcdefull;
    wk_generator g = wk_generator_make(seed);
    cr_assert_eq(g.seed, seed);
    cr_assert_eq(g.offset, 0);
    g.offset = 5;
    wk_tensor *f = wk_rand(WK_SHAPE(10), WK_DTYPE_F32, &g);
    cr_assert_eq(g.offset, 5 + 3); /* 4 per block */
    for (int i = 0; i < 10; i++)
        cr_assert_eq(((float *)wk_data(f))[i],
                     (float)(word(seed, 5 + i / 4, i % 4) >> 8) * 0x1p-24f);
    wk_tensor *d = wk_rand(WK_SHAPE(5), WK_DTYPE_F64, &g);
    cr_assert_eq(g.offset, 8 + 3); /* 2 per block */
    for (int i = 0; i < 5; i++)
        cr_assert_eq(((double *)wk_data(d))[i],
                     (double)(word64(seed, 8 + i / 2, i % 2) >> 11) * 0x1p-53);
    wk_tensor *r = wk_randint(-5, 1000, WK_SHAPE(3), &g);
    cr_assert_eq(g.offset, 11 + 2);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(((int64_t *)wk_data(r))[i],
                     -5 + (int64_t)(word64(seed, 11 + i / 2, i % 2) % 1005));
    /* Box-Muller on pairs of words (f32) */
    wk_tensor *n = wk_randn(WK_SHAPE(2), WK_DTYPE_F32, &g);
    cr_assert_eq(g.offset, 14);
    double u1 = ((word(seed, 13, 0) >> 8) + 1) * 0x1p-24, u2 = (word(seed, 13, 1) >> 8) * 0x1p-24;
    cr_assert_float_eq(((float *)wk_data(n))[0], sqrt(-2 * log(u1)) * cos(2 * M_PI * u2), 1e-5);
    cr_assert_float_eq(((float *)wk_data(n))[1], sqrt(-2 * log(u1)) * sin(2 * M_PI * u2), 1e-5);
    wk_randn(WK_SHAPE(3), WK_DTYPE_F64, &g);
    cr_assert_eq(g.offset, 16);
    wk_bernoulli_p(WK_SHAPE(5), 0.5, WK_DTYPE_BOOL, &g);
    cr_assert_eq(g.offset, 19);
    wk_randperm(4, &g);
    cr_assert_eq(g.offset, 21);
    wk_rand(WK_SHAPE(0, 3), WK_DTYPE_F32, &g); /* no elements: no counters */
    cr_assert_eq(g.offset, 21);
}

Test(random, consecutive_calls_continue_the_stream)
{
    wk_generator a = wk_generator_make(9), b = wk_generator_make(9);
    wk_tensor *x1 = wk_rand(WK_SHAPE(8), WK_DTYPE_F32, &a);
    wk_tensor *x2 = wk_rand(WK_SHAPE(12), WK_DTYPE_F32, &a);
    wk_tensor *y = wk_rand(WK_SHAPE(20), WK_DTYPE_F32, &b);
    for (int i = 0; i < 20; i++)
        cr_assert_eq(tu_at(y, i), i < 8 ? tu_at(x1, i) : tu_at(x2, i - 8));
}

static void mean_var(const wk_tensor *t, double *mean, double *var)
{
    int64_t n = wk_numel(t);
    double s = 0, s2 = 0;
    for (int64_t i = 0; i < n; i++) {
        double v = tu_at(t, i);
        s += v;
        s2 += v * v;
    }
    *mean = s / (double)n;
    *var = s2 / (double)n - *mean * *mean;
}

Test(random, rand_statistics)
{
    wk_generator g = wk_generator_make(1);
    wk_dtype dts[] = {WK_DTYPE_F32, WK_DTYPE_F64};
    for (int k = 0; k < 2; k++) {
        wk_tensor *u = wk_rand(WK_SHAPE(1000, 1000), dts[k], &g);
        cr_assert_not_null(u);
        cr_assert_eq(u->dtype, dts[k]);
        double lo = 1, hi = 0, mean, var;
        int64_t bins[10] = {0};
        for (int64_t i = 0; i < N_STATS; i++) {
            double v = tu_at(u, i);
            lo = v < lo ? v : lo;
            hi = v > hi ? v : hi;
            bins[(int)(v * 10)]++;
        }
        cr_assert(lo >= 0 && hi < 1, "range [%g, %g]", lo, hi);
        mean_var(u, &mean, &var);
        cr_assert(fabs(mean - 0.5) < 0.002, "%s mean %g", wk_dtype_name(dts[k]), mean);
        cr_assert(fabs(var - 1.0 / 12) < 0.002, "%s var %g", wk_dtype_name(dts[k]), var);
        for (int b = 0; b < 10; b++)
            cr_assert(labs(bins[b] - N_STATS / 10) < 2000, "bin %d: %lld", b, (long long)bins[b]);
    }
}

Test(random, randn_statistics)
{
    wk_generator g = wk_generator_make(2);
    wk_dtype dts[] = {WK_DTYPE_F32, WK_DTYPE_F64};
    for (int k = 0; k < 2; k++) {
        wk_tensor *z = wk_randn(WK_SHAPE(N_STATS + 1), dts[k], &g); /* odd: a half block */
        double mean, var;
        mean_var(z, &mean, &var);
        cr_assert(fabs(mean) < 0.005, "%s mean %g", wk_dtype_name(dts[k]), mean);
        cr_assert(fabs(sqrt(var) - 1) < 0.005, "%s std %g", wk_dtype_name(dts[k]), sqrt(var));
        int64_t within1 = 0;
        for (int64_t i = 0; i <= N_STATS; i++) within1 += fabs(tu_at(z, i)) < 1;
        cr_assert(fabs((double)within1 / N_STATS - 0.682689) < 0.003, "P(|z|<1) = %g",
                  (double)within1 / N_STATS);
    }
}

Test(random, randint_range_and_coverage)
{
    wk_generator g = wk_generator_make(3);
    wk_tensor *r = wk_randint(-3, 4, WK_SHAPE(70000), &g);
    cr_assert_eq(r->dtype, WK_DTYPE_I64);
    int64_t counts[7] = {0};
    const int64_t *p = wk_data(r);
    for (int64_t i = 0; i < 70000; i++) {
        cr_assert(p[i] >= -3 && p[i] < 4, "value %lld", (long long)p[i]);
        counts[p[i] + 3]++;
    }
    for (int k = 0; k < 7; k++)
        cr_assert(labs(counts[k] - 10000) < 500, "value %d drawn %lld times", k - 3,
                  (long long)counts[k]);
    /* the widest range and a one-value range */
    wk_tensor *w = wk_randint(INT64_MIN, INT64_MAX, WK_SHAPE(1000), &g);
    int64_t neg = 0;
    for (int64_t i = 0; i < 1000; i++) neg += ((int64_t *)wk_data(w))[i] < 0;
    cr_assert(neg > 400 && neg < 600, "%lld negative", (long long)neg);
    expect_values(wk_randint(7, 8, WK_SHAPE(3), &g), 0, 7, 7, 7);
    expect_shape(wk_randint(0, 2, WK_SHAPE(2, 0), &g), 2, 0);
    expect_error(wk_randint(5, 5, WK_SHAPE(2), &g),
                 "randint: expected low < high, got low=5 high=5");
    expect_error(wk_randint(0, 2, WK_SHAPE(-1), &g), "randint: negative size -1 in shape [-1]");
}

Test(random, bernoulli_rates)
{
    wk_generator g = wk_generator_make(4);
    wk_tensor *b = wk_bernoulli_p(WK_SHAPE(N_STATS), 0.25, WK_DTYPE_F32, &g);
    cr_assert_eq(b->dtype, WK_DTYPE_F32);
    double mean, var;
    mean_var(b, &mean, &var);
    cr_assert(fabs(mean - 0.25) < 0.002, "rate %g", mean);
    for (int64_t i = 0; i < 1000; i++) cr_assert(tu_at(b, i) == 0 || tu_at(b, i) == 1);
    wk_dtype dts[] = {WK_DTYPE_F64, WK_DTYPE_I32, WK_DTYPE_I64, WK_DTYPE_U8, WK_DTYPE_BOOL};
    for (int k = 0; k < 5; k++) {
        wk_tensor *t = wk_bernoulli_p(WK_SHAPE(100, 100), 0.5, dts[k], &g);
        cr_assert_eq(t->dtype, dts[k]);
        mean_var(t, &mean, &var);
        cr_assert(fabs(mean - 0.5) < 0.02, "%s rate %g", wk_dtype_name(dts[k]), mean);
    }
    expect_values(wk_bernoulli_p(WK_SHAPE(4), 1, WK_DTYPE_I64, &g), 0, 1, 1, 1, 1);
    expect_values(wk_bernoulli_p(WK_SHAPE(4), 0, WK_DTYPE_I64, &g), 0, 0, 0, 0, 0);
    expect_error(wk_bernoulli_p(WK_SHAPE(4), 1.5, WK_DTYPE_F32, &g),
                 "bernoulli_p: probability 1.5 is outside [0, 1]");
    expect_error(wk_bernoulli_p(WK_SHAPE(4), NAN, WK_DTYPE_F32, &g), "outside [0, 1]");
    expect_error(wk_bernoulli_p(WK_SHAPE(4), 0.5, WK_DTYPE_BF16, &g),
                 "bernoulli_p: bfloat16 is a storage type");
}

Test(random, bernoulli_per_element)
{
    wk_generator g = wk_generator_make(5);
    /* rows of probabilities 0, 0.3, 1 broadcast over 200000 columns, then transposed:
     * a non-contiguous, expanded input */
    wk_tensor *p = wk_expand(tu_f64(WK_SHAPE(3, 1), 0, 0.3, 1), WK_SHAPE(3, 200000));
    wk_tensor *pt = wk_transpose(p, 0, 1);
    wk_tensor *b = wk_bernoulli(pt, &g);
    expect_shape(b, 200000, 3);
    cr_assert_eq(b->dtype, WK_DTYPE_F64);
    double ones[3] = {0};
    for (int64_t i = 0; i < 200000; i++)
        for (int j = 0; j < 3; j++) ones[j] += tu_at(b, i * 3 + j);
    cr_assert_eq(ones[0], 0);
    cr_assert_eq(ones[2], 200000);
    cr_assert(fabs(ones[1] / 200000 - 0.3) < 0.005, "rate %g", ones[1] / 200000);
    /* same draws as bernoulli_p for a constant probability */
    wk_generator g1 = wk_generator_make(6), g2 = wk_generator_make(6);
    wk_tensor *c1 = wk_bernoulli(wk_full(WK_SHAPE(1000), 0.4, WK_DTYPE_F32), &g1);
    wk_tensor *c2 = wk_bernoulli_p(WK_SHAPE(1000), 0.4, WK_DTYPE_F32, &g2);
    cr_assert_eq(c1->dtype, WK_DTYPE_F32);
    cr_assert_eq(memcmp(wk_data(c1), wk_data(c2), 1000 * sizeof(float)), 0);
    wk_generator before = g;
    expect_error(wk_bernoulli(tu_f32(WK_SHAPE(3), 0.5f, -0.1f, 1), &g),
                 "bernoulli: probability -0.1 at flat index 1 of shape [3] is outside [0, 1]");
    expect_error(wk_bernoulli(tu_f32(WK_SHAPE(2), NAN, 1), &g), "outside [0, 1]");
    cr_assert_eq(g.offset, before.offset, "a failed call must not advance the generator");
    expect_error(wk_bernoulli(tu_i64(WK_SHAPE(2), 0, 1), &g),
                 "bernoulli: probabilities must be float32 or float64, got int64");
    expect_error(wk_bernoulli(wk_to_dtype(tu_f32(WK_SHAPE(2), 0, 1), WK_DTYPE_F16), &g),
                 "bernoulli: float16 is a storage type");
    expect_error(wk_bernoulli(NULL, &g), "bernoulli: input 0 is NULL");
    expect_shape(wk_bernoulli(wk_zeros(WK_SHAPE(0), WK_DTYPE_F32), &g), 0);
}

static void expect_permutation(const wk_tensor *t, int64_t n)
{
    expect_shape(t, n);
    cr_assert_eq(t->dtype, WK_DTYPE_I64);
    char *seen = calloc((size_t)n + 1, 1);
    const int64_t *p = wk_data(t);
    for (int64_t i = 0; i < n; i++) {
        cr_assert(p[i] >= 0 && p[i] < n && !seen[p[i]], "p[%lld] = %lld", (long long)i,
                  (long long)p[i]);
        seen[p[i]] = 1;
    }
    free(seen);
}

Test(random, randperm)
{
    wk_generator g = wk_generator_make(7);
    wk_tensor *p = wk_randperm(1000, &g);
    expect_permutation(p, 1000);
    int64_t fixed = 0;
    for (int64_t i = 0; i < 1000; i++) fixed += ((int64_t *)wk_data(p))[i] == i;
    cr_assert_lt(fixed, 10, "%lld fixed points", (long long)fixed);
    expect_permutation(wk_randperm(100001, &g), 100001);
    expect_permutation(wk_randperm(1, &g), 1);
    expect_permutation(wk_randperm(0, &g), 0);
    /* every position is equally likely to receive element 0 */
    int64_t where[4] = {0};
    for (int k = 0; k < 4000; k++) {
        wk_frame_begin();
        const int64_t *q = wk_data(wk_randperm(4, &g));
        for (int i = 0; i < 4; i++) where[i] += q[i] == 0 ? 1 : 0;
        wk_frame_end();
    }
    for (int i = 0; i < 4; i++) cr_assert(labs(where[i] - 1000) < 120, "%lld", (long long)where[i]);
    expect_error(wk_randperm(-1, &g), "randperm: n must be non-negative, got -1");
}

/* Every op once, into a list of tensors, from generator g. */
static void sample_all(wk_generator *g, wk_tensor **out)
{
    out[0] = wk_rand(WK_SHAPE(300001), WK_DTYPE_F32, g);
    out[1] = wk_rand(WK_SHAPE(3, 100001), WK_DTYPE_F64, g);
    out[2] = wk_randn(WK_SHAPE(300001), WK_DTYPE_F32, g);
    out[3] = wk_randn(WK_SHAPE(300001), WK_DTYPE_F64, g);
    out[4] = wk_randint(-10, 1000000, WK_SHAPE(300001), g);
    out[5] = wk_bernoulli_p(WK_SHAPE(300001), 0.3, WK_DTYPE_U8, g);
    out[6] = wk_randperm(100003, g);
    out[7] = wk_uniform_(wk_transpose(wk_empty(WK_SHAPE(1001, 300), WK_DTYPE_F32), 0, 1), -1,
                         2, g);
    out[8] = wk_normal_(wk_empty(WK_SHAPE(300001), WK_DTYPE_F64), 3, 0.5, g);
}
#define N_ALL 9

static bool same_tensor(const wk_tensor *a, const wk_tensor *b)
{
    if (!wk_same_shape(a, b) || a->dtype != b->dtype) return false;
    wk_tensor *ca = wk_contiguous((wk_tensor *)a), *cb = wk_contiguous((wk_tensor *)b);
    return !memcmp(wk_data(ca), wk_data(cb), (size_t)wk_numel(a) * wk_dtype_size(a->dtype));
}

Test(random, same_seed_same_values_different_seed_differs)
{
    wk_tensor *a[N_ALL], *b[N_ALL], *c[N_ALL];
    wk_generator ga = wk_generator_make(11), gb = wk_generator_make(11), gc = wk_generator_make(12);
    sample_all(&ga, a);
    sample_all(&gb, b);
    sample_all(&gc, c);
    cr_assert_eq(ga.offset, gb.offset);
    for (int k = 0; k < N_ALL; k++) {
        cr_assert_not_null(a[k], "op %d: %s", k, wk_last_error());
        cr_assert(same_tensor(a[k], b[k]), "op %d differs for the same seed", k);
        cr_assert(!same_tensor(a[k], c[k]), "op %d equal for different seeds", k);
    }
}

Test(random, thread_count_does_not_matter)
{
    wk_tensor *a[N_ALL], *b[N_ALL];
    wk_generator g1 = wk_generator_make(21), g2 = wk_generator_make(21);
    wk_set_num_threads(1);
    sample_all(&g1, a);
    wk_set_num_threads(2);
    sample_all(&g2, b);
    wk_set_num_threads(0);
    for (int k = 0; k < N_ALL; k++)
        cr_assert(same_tensor(a[k], b[k]), "op %d differs between 1 and 2 threads", k);
}

Test(random, saved_state_replays)
{
    wk_generator g = wk_generator_make(31);
    wk_rand(WK_SHAPE(13), WK_DTYPE_F32, &g);
    wk_generator saved = g;
    wk_tensor *a[N_ALL], *b[N_ALL];
    sample_all(&g, a);
    wk_generator end = g;
    g = saved;
    sample_all(&g, b);
    cr_assert_eq(g.offset, end.offset);
    for (int k = 0; k < N_ALL; k++) cr_assert(same_tensor(a[k], b[k]), "op %d", k);
}

Test(random, default_generator)
{
    wk_manual_seed(77);
    cr_assert_eq(wk_default_generator()->seed, 77);
    cr_assert_eq(wk_default_generator()->offset, 0);
    wk_tensor *x = wk_randn(WK_SHAPE(10), WK_DTYPE_F32, NULL);
    wk_generator g = wk_generator_make(77);
    cr_assert(same_tensor(x, wk_randn(WK_SHAPE(10), WK_DTYPE_F32, &g)));
    /* save / restore the default stream; explicit use of its pointer also works */
    wk_generator saved = *wk_default_generator();
    wk_tensor *y = wk_rand(WK_SHAPE(5), WK_DTYPE_F64, wk_default_generator());
    *wk_default_generator() = saved;
    cr_assert(same_tensor(y, wk_rand(WK_SHAPE(5), WK_DTYPE_F64, NULL)));
    wk_manual_seed(77);
    cr_assert(same_tensor(x, wk_randn(WK_SHAPE(10), WK_DTYPE_F32, NULL)));
}

Test(random, default_generator_is_shared_safely_between_threads)
{
    /* 4 threads x 100 calls of 4 floats (one block each) from the default generator:
     * every block used exactly once, so all 1600 values are distinct draws. */
    wk_manual_seed(5);
    float vals[400][4];
#pragma omp parallel for num_threads(4)
    for (int k = 0; k < 400; k++) {
        wk_frame_begin();
        wk_tensor *t = wk_rand(WK_SHAPE(4), WK_DTYPE_F32, NULL);
        memcpy(vals[k], wk_data(t), sizeof vals[k]);
        wk_frame_end();
    }
    cr_assert_eq(wk_default_generator()->offset, 400);
    wk_generator g = wk_generator_make(5);
    wk_tensor *all = wk_rand(WK_SHAPE(400, 4), WK_DTYPE_F32, &g);
    /* the same multiset of blocks, in some order */
    char *used = calloc(400, 1);
    for (int k = 0; k < 400; k++) {
        int found = -1;
        for (int b = 0; b < 400 && found < 0; b++)
            if (!used[b] && !memcmp(vals[k], (float *)wk_data(all) + 4 * b, sizeof vals[k]))
                found = b;
        cr_assert_geq(found, 0, "call %d got a block that is not in the stream", k);
        used[found] = 1;
    }
    free(used);
}

Test(random, split_streams)
{
    wk_generator g = wk_generator_make(41);
    wk_generator s1 = wk_generator_split(&g, 1), s2 = wk_generator_split(&g, 2);
    cr_assert_eq(s1.offset, 0);
    cr_assert_neq(s1.seed, s2.seed);
    cr_assert_neq(s1.seed, g.seed);
    wk_tensor *a = wk_rand(WK_SHAPE(100), WK_DTYPE_F32, &s1);
    wk_tensor *b = wk_rand(WK_SHAPE(100), WK_DTYPE_F32, &s2);
    wk_tensor *c = wk_rand(WK_SHAPE(100), WK_DTYPE_F32, &g);
    cr_assert(!same_tensor(a, b));
    cr_assert(!same_tensor(a, c));
    /* deterministic, and independent of how far the parent has advanced */
    g.offset = 1000;
    wk_generator again = wk_generator_split(&g, 1);
    cr_assert_eq(again.seed, s1.seed);
    cr_assert_eq(again.offset, 0);
    cr_assert_neq(wk_generator_split(&g, 1).seed,
                  wk_generator_split(&(wk_generator){42, 0}, 1).seed);
}

Test(random, uniform_and_normal_in_place)
{
    wk_generator g1 = wk_generator_make(51), g2 = wk_generator_make(51);
    /* element i of a transposed view gets the i-th value of the stream (logical order) */
    wk_tensor *base = wk_empty(WK_SHAPE(5, 7), WK_DTYPE_F32);
    wk_tensor *t = wk_transpose(base, 0, 1);
    cr_assert_eq(wk_uniform_(t, -2, 3, &g1), t);
    wk_tensor *r = wk_rand(WK_SHAPE(7, 5), WK_DTYPE_F32, &g2);
    for (int64_t i = 0; i < 35; i++)
        cr_assert_eq(tu_at(t, i), (double)(float)(-2 + 5 * tu_at(r, i)), "element %lld",
                     (long long)i);
    /* a slice: only its elements change */
    wk_tensor *v = wk_zeros(WK_SHAPE(4, 6), WK_DTYPE_F64);
    wk_uniform_(wk_slice(v, 1, 1, 6, 2), 10, 11, &g1);
    for (int64_t i = 0; i < 24; i++) {
        double x = tu_at(v, i);
        if (i % 6 % 2 == 1) cr_assert(x >= 10 && x < 11, "%g", x);
        else cr_assert_eq(x, 0);
    }
    /* [lo, hi) even when rounding to the dtype would reach hi */
    wk_tensor *tight = wk_uniform_(wk_empty(WK_SHAPE(1000), WK_DTYPE_F32), 1, 1 + 0x1p-23, &g1);
    for (int64_t i = 0; i < 1000; i++) cr_assert_eq(tu_at(tight, i), 1.0);
    expect_values(wk_uniform_(wk_empty(WK_SHAPE(3), WK_DTYPE_F64), 2, 2, &g1), 0, 2, 2, 2);
    /* normal_ statistics */
    wk_tensor *n = wk_normal_(wk_empty(WK_SHAPE(N_STATS), WK_DTYPE_F32), 3, 0.5, &g1);
    double mean, var;
    mean_var(n, &mean, &var);
    cr_assert(fabs(mean - 3) < 0.003, "mean %g", mean);
    cr_assert(fabs(sqrt(var) - 0.5) < 0.003, "std %g", sqrt(var));
    wk_tensor *u = wk_uniform_(wk_empty(WK_SHAPE(N_STATS), WK_DTYPE_F64), -1, 3, &g1);
    mean_var(u, &mean, &var);
    cr_assert(fabs(mean - 1) < 0.008, "mean %g", mean);
    cr_assert(fabs(var - 16.0 / 12) < 0.008, "var %g", var);
    cr_assert_not_null(wk_normal_(wk_scalar(0, WK_DTYPE_F64), 0, 1, &g1));
    expect_values(wk_normal_(wk_empty(WK_SHAPE(2), WK_DTYPE_F64), 4, 0, &g1), 0, 4, 4);
}

Test(random, errors)
{
    wk_generator g = wk_generator_make(61);
    wk_tensor *f = wk_empty(WK_SHAPE(3), WK_DTYPE_F32);
    expect_error(wk_uniform_(f, 2, 1, &g), "uniform_: expected finite lo <= hi, got lo=2 hi=1");
    expect_error(wk_uniform_(f, 0, INFINITY, &g), "uniform_: expected finite lo <= hi");
    expect_error(wk_normal_(f, 0, -1, &g),
                 "normal_: expected finite mean and std >= 0, got mean=0 std=-1");
    expect_error(wk_normal_(f, NAN, 1, &g), "normal_: expected finite mean");
    expect_error(wk_uniform_(NULL, 0, 1, &g), "uniform_: input 0 is NULL");
    expect_error(wk_normal_(wk_empty(WK_SHAPE(2), WK_DTYPE_I64), 0, 1, &g),
                 "normal_: dtype int64 is not supported (expected float32, float64)");
    expect_error(wk_uniform_(wk_empty(WK_SHAPE(2), WK_DTYPE_BF16), 0, 1, &g),
                 "uniform_: bfloat16 is a storage type; sample float32 and convert with "
                 "wk_to_dtype");
    expect_error(wk_uniform_(wk_expand(f, WK_SHAPE(2, 3)), 0, 1, &g),
                 "uniform_: tensor of shape [2, 3] has overlapping elements");
    expect_error(wk_rand(WK_SHAPE(2), WK_DTYPE_I32, &g),
                 "rand: dtype int32 is not supported (expected float32, float64)");
    expect_error(wk_randn(WK_SHAPE(2), WK_DTYPE_F16, &g), "randn: float16 is a storage type");
    expect_error(wk_rand(WK_SHAPE(2, -3), WK_DTYPE_F32, &g),
                 "rand: negative size -3 in shape [2, -3]");
    expect_error(wk_rand(NULL, 1, WK_DTYPE_F32, &g), "rand: invalid shape");
    wk_tensor *fake = wk_alias(f);
    fake->device = (wk_device){WK_DEVICE_CUDA, 0};
    expect_error(wk_normal_(fake, 0, 1, &g), "normal_: no kernel for device cuda:0");
    expect_error(wk_bernoulli(fake, &g), "bernoulli: no kernel for device cuda:0");
    fake->device = WK_CPU;
    cr_assert_eq(g.offset, 0, "failed calls must not advance the generator");
}

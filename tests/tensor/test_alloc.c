/* The pooled allocator: a steady loop of frames stops calling malloc. */
#include "test_util.h"

TestSuite(alloc);

static void step(int64_t batch)
{
    wk_frame_begin();
    wk_tensor *x = wk_empty(WK_SHAPE(batch, 784), WK_DTYPE_F32);
    wk_fill_(x, 0.5);
    wk_tensor *t = wk_contiguous(wk_transpose(x, 0, 1));
    wk_tensor *y = wk_to_dtype(t, WK_DTYPE_F64);
    wk_tensor *z = wk_clone(wk_slice(y, 0, 0, 100, 3));
    wk_fill_(z, 1);
    wk_frame_end();
}

Test(alloc, steady_loop_does_not_malloc)
{
    step(64);
    wk_alloc_stats before = wk_alloc_get_stats();
    for (int i = 0; i < 50; i++) step(64);
    wk_alloc_stats after = wk_alloc_get_stats();
    cr_assert_eq(after.malloc_calls, before.malloc_calls,
                 "%llu mallocs after the first iteration",
                 (unsigned long long)(after.malloc_calls - before.malloc_calls));
    cr_assert_gt(after.pool_hits, before.pool_hits);
    cr_assert_eq(after.bytes_in_use, before.bytes_in_use, "frames released everything");
}

Test(alloc, empty_cache_returns_memory)
{
    step(128);
    wk_alloc_stats s = wk_alloc_get_stats();
    cr_assert_gt(s.bytes_cached, 0);
    cr_assert_geq(s.peak_bytes_in_use, 128 * 784 * 4);
    wk_alloc_empty_cache();
    s = wk_alloc_get_stats();
    cr_assert_eq(s.bytes_cached, 0);
    cr_assert_gt(s.free_calls, 0);
}

Test(alloc, odd_sizes_reuse_their_class)
{
    for (int64_t n = 1; n < 100000; n = n * 3 + 1) {
        wk_frame_begin();
        wk_fill_(wk_empty(WK_SHAPE(n), WK_DTYPE_U8), 1);
        wk_frame_end();
        wk_alloc_stats a = wk_alloc_get_stats();
        wk_frame_begin();
        wk_fill_(wk_empty(WK_SHAPE(n), WK_DTYPE_U8), 2);
        wk_frame_end();
        wk_alloc_stats b = wk_alloc_get_stats();
        cr_assert_eq(a.malloc_calls, b.malloc_calls, "size %lld", (long long)n);
    }
}

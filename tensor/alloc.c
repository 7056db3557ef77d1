/* The CPU allocator: a size-class pool for tensor data and free lists for fixed-size
 * structs, so a steady training loop stops calling malloc after its first iteration.
 * Idle blocks are kept up to a cap (WK_POOL_LIMIT_MB, default 2048) and returned to the
 * system beyond it. Under AddressSanitizer idle blocks are poisoned, so a use after
 * release is still caught although the memory stays in the pool (all but the free-list
 * link in the first 8 bytes, which LeakSanitizer must be able to follow). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tensor-impl.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#define POISON(p, n) ASAN_POISON_MEMORY_REGION(p, n)
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION(p, n)
#else
#define POISON(p, n) ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define ALIGN 64
#define SMALL_LIMIT 4096 /* classes of 64 bytes below this, 8 per power of two above */
#define NCLASS 400

typedef struct block {
    struct block *next;
} block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static block *free_lists[NCLASS];
static wk_alloc_stats stats;
static size_t pool_limit;
static size_t mark_peak; /* the profiler's own peak, so it never resets the user's */

static int floor_log2(size_t n) { return 63 - __builtin_clzll((unsigned long long)n); }

/* Round n up to its class size; *cls gets the class index (-1 when too large to pool). */
static size_t class_of(size_t n, int *cls)
{
    if (n <= SMALL_LIMIT) {
        size_t r = n < ALIGN ? ALIGN : (n + ALIGN - 1) / ALIGN * ALIGN;
        *cls = (int)(r / ALIGN) - 1;
        return r;
    }
    int p = floor_log2(n);
    size_t step = (size_t)1 << (p - 3);
    size_t r = (n + step - 1) / step * step;
    p = floor_log2(r);
    size_t sub = (r - ((size_t)1 << p)) >> (p - 3);
    int c = SMALL_LIMIT / ALIGN + (p - 12) * 8 + (int)sub;
    *cls = c < NCLASS ? c : -1;
    return r;
}

static size_t limit(void)
{
    if (!pool_limit) {
        const char *s = getenv("WK_POOL_LIMIT_MB");
        long mb = s ? atol(s) : 2048;
        pool_limit = (size_t)(mb > 0 ? mb : 0) << 20;
        if (!pool_limit) pool_limit = 1; /* 0 = no caching */
    }
    return pool_limit;
}

void *wki_alloc(size_t nbytes, size_t *capacity)
{
    int cls;
    size_t cap = class_of(nbytes, &cls);
    pthread_mutex_lock(&lock);
    block *b = cls >= 0 ? free_lists[cls] : NULL;
    if (b) {
        UNPOISON(b, cap);
        free_lists[cls] = b->next;
        stats.bytes_cached -= cap;
        stats.pool_hits++;
    }
    pthread_mutex_unlock(&lock);
    if (!b) {
        void *p = NULL;
        if (posix_memalign(&p, ALIGN, cap) != 0 || !p) {
            wk_set_error("out of memory: could not allocate %zu bytes", cap);
            return NULL;
        }
        b = p;
        pthread_mutex_lock(&lock);
        stats.malloc_calls++;
        pthread_mutex_unlock(&lock);
    }
    pthread_mutex_lock(&lock);
    stats.bytes_in_use += cap;
    if (stats.bytes_in_use > stats.peak_bytes_in_use)
        stats.peak_bytes_in_use = stats.bytes_in_use;
    if (stats.bytes_in_use > mark_peak) mark_peak = stats.bytes_in_use;
    pthread_mutex_unlock(&lock);
    *capacity = cap;
    return b;
}

void wki_dealloc(void *p, size_t capacity)
{
    if (!p) return;
    int cls;
    class_of(capacity, &cls);
    pthread_mutex_lock(&lock);
    stats.bytes_in_use -= capacity;
    if (cls >= 0 && stats.bytes_cached + capacity <= limit()) {
        block *b = p;
        b->next = free_lists[cls];
        free_lists[cls] = b;
        stats.bytes_cached += capacity;
        /* The link stays readable: LeakSanitizer does not look into poisoned memory. */
        POISON((char *)p + sizeof(block), capacity - sizeof(block));
        p = NULL;
    } else {
        stats.free_calls++;
    }
    pthread_mutex_unlock(&lock);
    free(p);
}

void wk_alloc_empty_cache(void)
{
    pthread_mutex_lock(&lock);
    for (int c = 0; c < NCLASS; c++) {
        while (free_lists[c]) {
            block *b = free_lists[c];
            UNPOISON(b, sizeof *b);
            free_lists[c] = b->next;
            free(b);
            stats.free_calls++;
        }
    }
    stats.bytes_cached = 0;
    pthread_mutex_unlock(&lock);
}

/* ---- fixed-size structs ---- */

#define NSIZES 8
static struct {
    size_t size;
    block *head;
} struct_lists[NSIZES];

void *wki_struct_alloc(size_t size)
{
    block *b = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < NSIZES; i++) {
        if (struct_lists[i].size == size && struct_lists[i].head) {
            b = struct_lists[i].head;
            UNPOISON(b, size);
            struct_lists[i].head = b->next;
            stats.pool_hits++;
            break;
        }
    }
    if (!b) stats.malloc_calls++;
    pthread_mutex_unlock(&lock);
    if (!b) {
        b = malloc(size);
        if (!b) {
            wk_set_error("out of memory: could not allocate a %zu-byte struct", size);
            return NULL;
        }
    }
    memset(b, 0, size);
    return b;
}

void wki_struct_free(void *p, size_t size)
{
    if (!p) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < NSIZES; i++) {
        if (struct_lists[i].size == 0) struct_lists[i].size = size;
        if (struct_lists[i].size == size) {
            block *b = p;
            b->next = struct_lists[i].head;
            struct_lists[i].head = b;
            POISON((char *)p + sizeof(block), size - sizeof(block));
            p = NULL;
            break;
        }
    }
    if (p) stats.free_calls++;
    pthread_mutex_unlock(&lock);
    free(p);
}

wk_alloc_stats wk_alloc_get_stats(void)
{
    pthread_mutex_lock(&lock);
    wk_alloc_stats s = stats;
    pthread_mutex_unlock(&lock);
    return s;
}

size_t wki_alloc_take_peak(void)
{
    pthread_mutex_lock(&lock);
    size_t p = mark_peak > stats.bytes_in_use ? mark_peak : stats.bytes_in_use;
    mark_peak = stats.bytes_in_use;
    pthread_mutex_unlock(&lock);
    return p;
}

void wk_alloc_reset_peak(void)
{
    pthread_mutex_lock(&lock);
    stats.peak_bytes_in_use = stats.bytes_in_use;
    pthread_mutex_unlock(&lock);
}

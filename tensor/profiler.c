/* The profiler: spans recorded per thread, a torch.profiler-style schedule over steps,
 * and the outputs (Chrome trace, summary table, per-phase memory).
 *
 * Each thread that records gets a buffer (registered once, kept after the thread exits
 * until the next start frees it): a stack of open spans and an array of closed ones. Only
 * the owning thread touches its stack; closed spans are appended under the buffer's
 * mutex, which the profiling thread takes only at schedule transitions and at the end,
 * so the lock is uncontended while ops run. A generation number, bumped whenever
 * recording starts or stops, makes spans opened before a transition end silently. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "profiler-impl.h"
#include "tensor-impl.h"

#define MAX_DEPTH 64
#define MAX_INPUTS 4 /* shapes kept for the first four inputs */
#define DEFAULT_MAX_SPANS ((int64_t)1 << 20)

atomic_int wki_prof_on;
static atomic_uint generation = 1;

typedef struct {
    const char *name;
    uint8_t kind, dtype, dev_type, nin;
    int16_t dev_index;
    int8_t ndim[MAX_INPUTS];
    int64_t shape[MAX_INPUTS][WK_MAX_DIMS];
    int64_t t0, child, nchild, step;
    double flops;
    int64_t bytes;
    int32_t cu0;
    size_t pool_peak, rss;
} open_span;

typedef struct {
    const char *name;
    uint8_t kind, dtype, dev_type, nin;
    int16_t dev_index, depth;
    uint32_t shapes; /* offset in the arena: per input, ndim then the sizes */
    int64_t t0, t1, self, step;
    double flops;
    int64_t bytes;
    int32_t cu0, cu1;
    size_t pool_peak, held, rss;
} span;

typedef struct tbuf {
    pthread_mutex_t mu;
    struct tbuf *next;
    int tid;
    bool dead;
    unsigned gen;
    int depth;
    open_span stack[MAX_DEPTH];
    span *spans;
    int64_t nspans, cap, mark;
    int64_t *arena;
    int64_t narena, acap, amark;
    int64_t dropped;
} tbuf;

enum { S_WAIT, S_WARMUP, S_ACTIVE, S_DONE };

static pthread_mutex_t reg_mu = PTHREAD_MUTEX_INITIALIZER;
static tbuf *threads;            /* every registered buffer */
static _Thread_local tbuf *self; /* this thread's */
static pthread_key_t exit_key;
static bool have_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static struct {
    bool running, written;
    wk_profiler_options o;
    char *dir;
    int64_t step;
    int state;
    int64_t origin_ns;
    tbuf *main;
    uint64_t step_range;
    char **names; /* interned phase names */
    int nnames, capnames;
} S;

static struct {
    bool valid;
    wk_profiler_summary sum;
    wk_profiler_row *rows;
    char *strings;
} last;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The resident set now (plain read(2): no stdio buffer allocated per phase). */
static size_t rss_bytes(void)
{
    char buf[128];
    long pages = 0, res = 0;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        buf[n > 0 ? n : 0] = '\0';
        if (sscanf(buf, "%ld %ld", &pages, &res) != 2) res = 0;
    }
    if (res > 0) return (size_t)res * (size_t)sysconf(_SC_PAGESIZE);
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
}

static size_t peak_rss_bytes(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? (size_t)ru.ru_maxrss * 1024 : 0;
}

/* ---- thread buffers ---- */

static void thread_exit(void *p)
{
    tbuf *t = p;
    pthread_mutex_lock(&t->mu);
    t->dead = true;
    pthread_mutex_unlock(&t->mu);
}

static void make_key(void)
{
    have_key = pthread_key_create(&exit_key, thread_exit) == 0;
}

static tbuf *self_get(void)
{
    if (self) return self;
    pthread_once(&key_once, make_key);
    tbuf *t = calloc(1, sizeof *t);
    if (!t) return NULL;
    pthread_mutex_init(&t->mu, NULL);
    t->tid = (int)syscall(SYS_gettid);
    t->gen = 0;
    pthread_mutex_lock(&reg_mu);
    t->next = threads;
    threads = t;
    pthread_mutex_unlock(&reg_mu);
    if (have_key) pthread_setspecific(exit_key, t);
    self = t;
    return t;
}

static void tbuf_clear(tbuf *t)
{
    free(t->spans);
    free(t->arena);
    t->spans = NULL;
    t->arena = NULL;
    t->nspans = t->cap = t->mark = t->narena = t->acap = t->amark = t->dropped = 0;
}

/* ---- spans ---- */

static bool is_mem_kind(int kind)
{
    return kind == WK_PROFILER_PHASE || kind == WK_PROFILER_STEP;
}

/* The innermost open phase or step below depth d (-1 when none). */
static int mem_parent(const tbuf *t, int d)
{
    for (int i = d - 1; i >= 0; i--)
        if (is_mem_kind(t->stack[i].kind)) return i;
    return -1;
}

static void fold_peak(tbuf *t, int d, size_t peak)
{
    int p = mem_parent(t, d);
    if (p >= 0 && peak > t->stack[p].pool_peak) t->stack[p].pool_peak = peak;
}

static const char *kind_prefix(int kind)
{
    return kind == WK_PROFILER_BACKWARD ? "backward:" : kind == WK_PROFILER_PHASE ? "phase:" : "";
}

/* Steps are NVTX process ranges (step_range_start), the rest nested ranges. */
static void nvtx_push(const open_span *s)
{
#ifdef WK_HAVE_CUDA
    char buf[128];
    if (s->kind == WK_PROFILER_STEP) return;
    if (s->kind == WK_PROFILER_OP) {
        wki_cuda_prof_push(s->name);
    } else {
        snprintf(buf, sizeof buf, "%s%s", kind_prefix(s->kind), s->name);
        wki_cuda_prof_push(buf);
    }
#else
    (void)s;
#endif
}

static void nvtx_pop(int kind)
{
#ifdef WK_HAVE_CUDA
    if (kind != WK_PROFILER_STEP) wki_cuda_prof_pop();
#else
    (void)kind;
#endif
}

static open_span *push(tbuf *t, const char *name, int kind)
{
    unsigned g = atomic_load_explicit(&generation, memory_order_acquire);
    if (t->gen != g) {
        t->gen = g;
        t->depth = 0;
    }
    if (t->depth >= MAX_DEPTH) return NULL;
    open_span *s = &t->stack[t->depth++];
    s->name = name;
    s->kind = (uint8_t)kind;
    s->dtype = WK_DTYPE_COUNT;
    s->dev_type = WK_DEVICE_CPU;
    s->dev_index = 0;
    s->nin = 0;
    s->child = s->nchild = s->step = 0;
    s->flops = 0;
    s->bytes = 0;
    s->cu0 = -1;
    s->pool_peak = s->rss = 0;
    return s;
}

/* Start the clock of a span just pushed, at t0 (0: now). An op's clock starts last, so
 * its own setup is not counted; a phase's first, so the phases (memory sampling
 * included) cover the step. */
static uint64_t arm(tbuf *t, open_span *s, int64_t t0)
{
    if (is_mem_kind(s->kind)) {
        s->t0 = t0 ? t0 : now_ns();
        fold_peak(t, t->depth - 1, wki_alloc_take_peak());
        s->rss = rss_bytes();
        nvtx_push(s);
        return (uint64_t)t->gen << 32 | (uint32_t)t->depth;
    }
    nvtx_push(s);
#ifdef WK_HAVE_CUDA
    if (s->dev_type == WK_DEVICE_CUDA) s->cu0 = wki_cuda_prof_event_record();
#endif
    s->t0 = t0 ? t0 : now_ns();
    return (uint64_t)t->gen << 32 | (uint32_t)t->depth;
}

static bool reserve_spans(tbuf *t, int64_t nshape)
{
    if (t->nspans == t->cap) {
        int64_t cap = t->cap ? 2 * t->cap : 1024;
        span *p = realloc(t->spans, (size_t)cap * sizeof *p);
        if (!p) return false;
        t->spans = p;
        t->cap = cap;
    }
    if (t->narena + nshape > t->acap) {
        int64_t cap = t->acap ? 2 * t->acap : 4096;
        while (cap < t->narena + nshape) cap *= 2;
        int64_t *p = realloc(t->arena, (size_t)cap * sizeof *p);
        if (!p) return false;
        t->arena = p;
        t->acap = cap;
    }
    return true;
}

/* Close the innermost open span at time t1 and keep it; with retime, a phase ends after
 * its memory is sampled. */
static void close_top(tbuf *t, int64_t t1, bool retime)
{
    open_span *s = &t->stack[--t->depth];
    int32_t cu1 = -1;
#ifdef WK_HAVE_CUDA
    if (s->cu0 >= 0) cu1 = wki_cuda_prof_event_record();
#endif
    nvtx_pop(s->kind);
    size_t held = 0, rss = 0;
    if (is_mem_kind(s->kind)) {
        size_t p = wki_alloc_take_peak();
        if (p > s->pool_peak) s->pool_peak = p;
        fold_peak(t, t->depth, s->pool_peak);
        wk_alloc_stats st = wk_alloc_get_stats();
        held = st.bytes_in_use + st.bytes_cached;
        rss = rss_bytes();
        if (s->rss > rss) rss = s->rss;
        if (retime) t1 = now_ns();
    }
    int64_t dur = t1 - s->t0;
    if (t->depth > 0) {
        t->stack[t->depth - 1].child += dur;
        t->stack[t->depth - 1].nchild++;
    }
    int64_t nshape = s->nin;
    for (int i = 0; i < s->nin; i++)
        nshape += s->ndim[i];
    pthread_mutex_lock(&t->mu);
    if (t->gen == atomic_load_explicit(&generation, memory_order_acquire)) {
        if (t->nspans >= (S.o.max_spans > 0 ? S.o.max_spans : DEFAULT_MAX_SPANS) ||
            !reserve_spans(t, nshape)) {
            t->dropped++;
        } else {
            span *e = &t->spans[t->nspans++];
            e->name = s->name;
            e->kind = s->kind;
            e->dtype = s->dtype;
            e->dev_type = s->dev_type;
            e->dev_index = s->dev_index;
            e->nin = s->nin;
            e->depth = (int16_t)t->depth;
            e->shapes = (uint32_t)t->narena;
            for (int i = 0; i < s->nin; i++) {
                t->arena[t->narena++] = s->ndim[i];
                for (int d = 0; d < s->ndim[i]; d++)
                    t->arena[t->narena++] = s->shape[i][d];
            }
            e->t0 = s->t0;
            e->t1 = t1;
            e->self = dur - s->child;
            e->step = s->step;
            e->flops = s->flops;
            e->bytes = s->bytes;
            e->cu0 = s->cu0;
            e->cu1 = cu1;
            e->pool_peak = s->pool_peak;
            e->held = held;
            e->rss = rss;
        }
    }
    pthread_mutex_unlock(&t->mu);
}

uint64_t wki_prof_begin(const char *name, wk_profiler_kind kind, int n,
                        const wk_tensor *const *inputs)
{
    tbuf *t = self_get();
    open_span *s = t ? push(t, name, kind) : NULL;
    if (!s) return 0;
    for (int i = 0; i < n; i++) {
        const wk_tensor *x = inputs[i];
        if (!x) continue;
        if (s->dtype == WK_DTYPE_COUNT) {
            s->dtype = (uint8_t)x->dtype;
            s->dev_type = (uint8_t)x->device.type;
            s->dev_index = (int16_t)x->device.index;
        }
        int64_t numel = 1;
        for (int d = 0; d < x->ndim; d++)
            numel *= x->shape[d];
        if ((unsigned)x->dtype < WK_DTYPE_COUNT)
            s->bytes += numel * (int64_t)wk_dtype_size(x->dtype);
        if (s->nin < MAX_INPUTS) {
            int nd = x->ndim < 0 ? 0 : x->ndim > WK_MAX_DIMS ? WK_MAX_DIMS : x->ndim;
            s->ndim[s->nin] = (int8_t)nd;
            memcpy(s->shape[s->nin], x->shape, (size_t)nd * sizeof x->shape[0]);
            s->nin++;
        }
    }
    return arm(t, s, 0);
}

uint64_t wki_prof_begin_shape(const char *name, const int64_t *shape, int ndim, wk_dtype dtype)
{
    tbuf *t = self_get();
    open_span *s = t ? push(t, name, WK_PROFILER_OP) : NULL;
    if (!s) return 0;
    s->dtype = (uint8_t)dtype;
    if (shape && ndim >= 0 && ndim <= WK_MAX_DIMS) {
        s->ndim[0] = (int8_t)ndim;
        memcpy(s->shape[0], shape, (size_t)ndim * sizeof *shape);
        s->nin = 1;
    }
    return arm(t, s, 0);
}

void wki_prof_end(uint64_t handle)
{
    int64_t t1 = now_ns();
    tbuf *t = self;
    unsigned g = (unsigned)(handle >> 32);
    int d = (int)(uint32_t)handle;
    if (!t || t->gen != g || d > t->depth) return;
    while (t->depth >= d)
        close_top(t, t1, true);
}

void wki_prof_set_flops(uint64_t handle, double flops)
{
    tbuf *t = self;
    int d = (int)(uint32_t)handle;
    if (t && t->gen == (unsigned)(handle >> 32) && d >= 1 && d <= t->depth)
        t->stack[d - 1].flops = flops;
}

/* ---- phases ---- */

static const char *intern(const char *name)
{
    const char *r = NULL;
    pthread_mutex_lock(&reg_mu);
    for (int i = 0; i < S.nnames && !r; i++)
        if (!strcmp(S.names[i], name)) r = S.names[i];
    if (!r && S.nnames == S.capnames) {
        int cap = S.capnames ? 2 * S.capnames : 16;
        char **p = realloc(S.names, (size_t)cap * sizeof *p);
        if (p) {
            S.names = p;
            S.capnames = cap;
        }
    }
    if (!r && S.nnames < S.capnames && (S.names[S.nnames] = strdup(name)))
        r = S.names[S.nnames++];
    pthread_mutex_unlock(&reg_mu);
    return r;
}

void wk_profiler_phase_begin(const char *name)
{
    if (!WKI_PROF_ON_() || !name) return;
    tbuf *t = self_get();
    const char *n = t ? intern(name) : NULL;
    open_span *s = n ? push(t, n, WK_PROFILER_PHASE) : NULL;
    if (s) arm(t, s, 0);
}

void wk_profiler_phase_end(void)
{
    if (!WKI_PROF_ON_()) return;
    int64_t t1 = now_ns();
    tbuf *t = self;
    if (!t || t->gen != atomic_load_explicit(&generation, memory_order_acquire)) return;
    int p = -1;
    for (int i = t->depth - 1; i >= 0 && p < 0; i--)
        if (t->stack[i].kind == WK_PROFILER_PHASE) p = i;
    while (p >= 0 && t->depth > p)
        close_top(t, t1, true);
}

/* ---- the schedule ---- */

wk_profiler_options wk_profiler_options_default(void)
{
    return (wk_profiler_options){.dir = ".", .schedule = WK_PROFILER_SCHEDULE_DEFAULT,
                                 .rank = 0, .world = 1, .table_out = stdout};
}

int wk_profiler_schedule_set(wk_profiler_schedule *s, const char *key, int64_t value)
{
    if (!s || !key) {
        wk_set_error("profiler schedule: schedule or key is NULL");
        return -1;
    }
    int64_t *f = !strcmp(key, "wait")     ? &s->wait
                 : !strcmp(key, "warmup") ? &s->warmup
                 : !strcmp(key, "active") ? &s->active
                 : !strcmp(key, "repeat") ? &s->repeat
                                          : NULL;
    if (!f) {
        wk_set_error("profiler schedule: unknown key \"%s\" (expected wait, warmup, active or "
                     "repeat)",
                     key);
        return -1;
    }
    if (value < 0) {
        wk_set_error("profiler schedule: %s must be >= 0, got %lld", key, (long long)value);
        return -1;
    }
    *f = value;
    return 0;
}

static int state_at(int64_t step)
{
    const wk_profiler_schedule *c = &S.o.schedule;
    if (c->active <= 0) return S_ACTIVE;
    int64_t len = c->wait + c->warmup + c->active;
    if (c->repeat > 0 && step >= c->repeat * len) return S_DONE;
    int64_t p = step % len;
    return p < c->wait ? S_WAIT : p < c->wait + c->warmup ? S_WARMUP : S_ACTIVE;
}

static bool recording(int state) { return state == S_WARMUP || state == S_ACTIVE; }

static void step_range_start(int64_t step)
{
#ifdef WK_HAVE_CUDA
    char buf[48];
    snprintf(buf, sizeof buf, "ProfilerStep#%lld", (long long)step);
    S.step_range = wki_cuda_prof_range_start(buf);
#else
    (void)step;
#endif
}

static void step_range_end(void)
{
#ifdef WK_HAVE_CUDA
    if (S.step_range) wki_cuda_prof_range_end(S.step_range);
#endif
    S.step_range = 0;
}

/* Open the step span at the bottom of this thread's stack, starting at t0 (the end of
 * the previous one, so that steps tile the time). */
static void open_step(tbuf *t, int64_t step, int64_t t0)
{
    open_span *s = push(t, "ProfilerStep", WK_PROFILER_STEP);
    if (!s) return;
    s->step = step;
    step_range_start(step);
    arm(t, s, t0);
}

static int finish(void);

int wk_profiler_start(const wk_profiler_options *opts)
{
    wk_profiler_options o = opts ? *opts : wk_profiler_options_default();
    const wk_profiler_schedule *c = &o.schedule;
    if (S.running) {
        wk_set_error("profiler: already running; call wk_profiler_stop first");
        return -1;
    }
    if (c->wait < 0 || c->warmup < 0 || c->active < 0 || c->repeat < 0 ||
        (c->active == 0 && (c->wait || c->warmup || c->repeat))) {
        wk_set_error("profiler: invalid schedule wait=%lld warmup=%lld active=%lld "
                     "repeat=%lld (all >= 0; active > 0 when any other is set)",
                     (long long)c->wait, (long long)c->warmup, (long long)c->active,
                     (long long)c->repeat);
        return -1;
    }
    if (o.world <= 0) o.world = 1;
    if (o.rank < 0 || o.rank >= o.world) {
        wk_set_error("profiler: rank %d is out of range for world %d", o.rank, o.world);
        return -1;
    }
    char *dir = strdup(o.dir ? o.dir : ".");
    tbuf *me = self_get();
    if (!dir || !me) {
        free(dir);
        wk_set_error("profiler: out of memory");
        return -1;
    }
    free(last.rows);
    free(last.strings);
    memset(&last, 0, sizeof last);

    pthread_mutex_lock(&reg_mu);
    for (tbuf **pp = &threads; *pp;) {
        tbuf *t = *pp;
        pthread_mutex_lock(&t->mu);
        bool dead = t->dead;
        tbuf_clear(t);
        pthread_mutex_unlock(&t->mu);
        if (dead) {
            *pp = t->next;
            pthread_mutex_destroy(&t->mu);
            free(t);
        } else {
            pp = &t->next;
        }
    }
    pthread_mutex_unlock(&reg_mu);
#ifdef WK_HAVE_CUDA
    wki_cuda_prof_events_reset();
#endif
    free(S.dir);
    S.o = o;
    S.dir = dir;
    S.o.dir = dir;
    S.running = true;
    S.written = false;
    S.step = 0;
    S.main = me;
    S.origin_ns = now_ns();
    S.state = state_at(0);
    atomic_fetch_add(&generation, 1);
    if (recording(S.state)) {
        me->gen = atomic_load(&generation);
        me->depth = 0;
        open_step(me, 0, 0);
        atomic_store(&wki_prof_on, 1);
    }
    return 0;
}

/* Close every open span of the profiling thread at t1; the names and kinds of those
 * above the step go into `reopen` (outermost first) when it is given. */
static int close_all(tbuf *t, int64_t t1, open_span *reopen)
{
    int n = 0;
    if (t->gen != atomic_load(&generation)) return 0;
    for (int i = 0; i < t->depth; i++)
        if (reopen && t->stack[i].kind != WK_PROFILER_STEP) reopen[n++] = t->stack[i];
    /* The last step of a run is empty when the loop calls step() after its last
     * iteration: a step with no span inside it is not kept. */
    while (t->depth > 0) {
        if (t->depth == 1 && t->stack[0].kind == WK_PROFILER_STEP && !reopen &&
            t->stack[0].nchild == 0) {
            t->depth = 0;
            break;
        }
        close_top(t, t1, false);
    }
    step_range_end();
    return n;
}

int wk_profiler_step(void)
{
    if (!S.running) return 0;
    int64_t t1 = now_ns();
    tbuf *t = S.main;
    int old = S.state;
    S.step++;
    int now = state_at(S.step);
    S.state = now;
    open_span reopen[MAX_DEPTH];
    int nreopen = recording(old) ? close_all(t, t1, reopen) : 0;
    if (now == S_WARMUP && old != S_WARMUP) {
        pthread_mutex_lock(&reg_mu);
        for (tbuf *b = threads; b; b = b->next) {
            pthread_mutex_lock(&b->mu);
            b->mark = b->nspans;
            b->amark = b->narena;
            pthread_mutex_unlock(&b->mu);
        }
        pthread_mutex_unlock(&reg_mu);
    }
    if (now == S_ACTIVE && old == S_WARMUP) { /* drop what warmup recorded */
        pthread_mutex_lock(&reg_mu);
        for (tbuf *b = threads; b; b = b->next) {
            pthread_mutex_lock(&b->mu);
            b->nspans = b->mark;
            b->narena = b->amark;
            pthread_mutex_unlock(&b->mu);
        }
        pthread_mutex_unlock(&reg_mu);
    }
    if (!recording(now)) {
        if (recording(old)) {
            atomic_store(&wki_prof_on, 0);
            atomic_fetch_add(&generation, 1);
        }
        return now == S_DONE && !S.written ? finish() : 0;
    }
    if (!recording(old)) {
        atomic_fetch_add(&generation, 1);
        t->gen = atomic_load(&generation);
        t->depth = 0;
    }
    open_step(t, S.step, recording(old) ? t1 : 0);
    int64_t t0 = now_ns();
    for (int i = 0; i < nreopen && t->depth < MAX_DEPTH; i++) {
        open_span *s = &t->stack[t->depth++];
        *s = reopen[i];
        s->child = s->nchild = 0;
        s->pool_peak = 0;
        nvtx_push(s);
#ifdef WK_HAVE_CUDA
        if (s->dev_type == WK_DEVICE_CUDA) s->cu0 = wki_cuda_prof_event_record();
#endif
        s->t0 = t0;
    }
    atomic_store(&wki_prof_on, 1);
    return 0;
}

int wk_profiler_stop(void)
{
    if (!S.running) return 0;
    int rc = 0;
    if (recording(S.state)) {
        close_all(S.main, now_ns(), NULL);
        atomic_store(&wki_prof_on, 0);
        atomic_fetch_add(&generation, 1);
    }
    if (!S.written) rc = finish();
    S.running = false;
    return rc;
}

bool wk_profiler_is_running(void) { return S.running; }
bool wk_profiler_is_recording(void) { return atomic_load(&wki_prof_on) != 0; }

const wk_profiler_summary *wk_profiler_last_summary(void)
{
    return last.valid ? &last.sum : NULL;
}

/* ---- outputs ---- */

typedef struct {
    tbuf *t;
    span *spans;
    int64_t n;
    int64_t *arena;
    int64_t dropped;
} taken;

/* Rows keyed by (kind, name) in a small open-addressing table. */
typedef struct {
    wk_profiler_row *rows;
    int n, cap;
    int *slots;
    int nslots;
} table;

static uint64_t hash_name(int kind, const char *s)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)kind;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static wk_profiler_row *row_for(table *tb, int kind, const char *name)
{
    if (2 * (tb->n + 1) > tb->nslots) {
        int ns = tb->nslots ? 2 * tb->nslots : 256;
        int *sl = malloc((size_t)ns * sizeof *sl);
        if (!sl) return NULL;
        for (int i = 0; i < ns; i++)
            sl[i] = -1;
        for (int r = 0; r < tb->n; r++) {
            uint64_t h = hash_name(tb->rows[r].kind, tb->rows[r].name) & (uint64_t)(ns - 1);
            while (sl[h] >= 0) h = (h + 1) & (uint64_t)(ns - 1);
            sl[h] = r;
        }
        free(tb->slots);
        tb->slots = sl;
        tb->nslots = ns;
    }
    uint64_t h = hash_name(kind, name) & (uint64_t)(tb->nslots - 1);
    while (tb->slots[h] >= 0) {
        wk_profiler_row *r = &tb->rows[tb->slots[h]];
        if ((int)r->kind == kind && !strcmp(r->name, name)) return r;
        h = (h + 1) & (uint64_t)(tb->nslots - 1);
    }
    if (tb->n == tb->cap) {
        int cap = tb->cap ? 2 * tb->cap : 64;
        wk_profiler_row *p = realloc(tb->rows, (size_t)cap * sizeof *p);
        if (!p) return NULL;
        tb->rows = p;
        tb->cap = cap;
    }
    tb->slots[h] = tb->n;
    wk_profiler_row *r = &tb->rows[tb->n++];
    memset(r, 0, sizeof *r);
    r->kind = (wk_profiler_kind)kind;
    r->name = name; /* the raw name for now; display names are made at the end */
    return r;
}

static void add_span(table *tb, const span *e)
{
    wk_profiler_row *r = row_for(tb, e->kind, e->name);
    if (!r) return;
    r->calls++;
    r->total_ms += 1e-6 * (double)(e->t1 - e->t0);
    r->self_ms += 1e-6 * (double)e->self;
    r->flops += e->flops;
    r->bytes += (double)e->bytes;
    if (e->pool_peak > r->peak_pool_bytes) r->peak_pool_bytes = e->pool_peak;
    if (e->held > r->held_bytes) r->held_bytes = e->held;
    if (e->rss > r->rss_bytes) r->rss_bytes = e->rss;
}

static int by_self(const void *a, const void *b)
{
    const wk_profiler_row *x = a, *y = b;
    if (x->self_ms != y->self_ms) return x->self_ms < y->self_ms ? 1 : -1;
    return strcmp(x->name, y->name);
}

static int by_time(const void *a, const void *b)
{
    const span *x = a, *y = b;
    if (x->t0 != y->t0) return x->t0 < y->t0 ? -1 : 1;
    if (x->t1 != y->t1) return x->t1 > y->t1 ? -1 : 1; /* the parent first */
    return x->depth - y->depth;
}

static void json_string(FILE *f, const char *prefix, const char *s)
{
    fputc('"', f);
    for (const char *p = prefix; *p; p++)
        fputc(*p, f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

static int make_dirs(const char *dir)
{
    char buf[4096];
    size_t n = strlen(dir);
    if (n >= sizeof buf) {
        wk_set_error("profiler: output folder name too long (%zu characters)", n);
        return -1;
    }
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST) {
            wk_set_error("profiler: cannot create folder %s: %s", buf, strerror(errno));
            return -1;
        }
        buf[i] = c;
    }
    return 0;
}

static void write_trace_spans(FILE *f, const taken *tk, bool *first)
{
    int pid = S.o.rank;
    for (int64_t i = 0; i < tk->n; i++) {
        const span *e = &tk->spans[i];
        fputs(*first ? "\n" : ",\n", f);
        *first = false;
        fputs("{\"name\":", f);
        if (e->kind == WK_PROFILER_STEP) fprintf(f, "\"ProfilerStep#%lld\"", (long long)e->step);
        else json_string(f, kind_prefix(e->kind), e->name);
        static const char *const cats[] = {"op", "backward", "phase", "step"};
        fprintf(f, ",\"cat\":\"%s\",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f,\"pid\":%d,\"tid\":%d",
                cats[e->kind], 1e-3 * (double)(e->t0 - S.origin_ns),
                1e-3 * (double)(e->t1 - e->t0), pid, tk->t->tid);
        fprintf(f, ",\"args\":{\"self_us\":%.3f", 1e-3 * (double)e->self);
        if (e->nin) {
            fputs(",\"shapes\":[", f);
            const int64_t *a = tk->arena + e->shapes;
            for (int k = 0; k < e->nin; k++) {
                int nd = (int)*a++;
                fputs(k ? ",[" : "[", f);
                for (int d = 0; d < nd; d++)
                    fprintf(f, d ? ",%lld" : "%lld", (long long)a[d]);
                fputc(']', f);
                a += nd;
            }
            fputc(']', f);
        }
        if (e->dtype < WK_DTYPE_COUNT) {
            char dev[32];
            fprintf(f, ",\"dtype\":\"%s\",\"device\":\"%s\"", wk_dtype_name((wk_dtype)e->dtype),
                    wk_device_str((wk_device){(wk_device_type)e->dev_type, e->dev_index}, dev,
                                  sizeof dev));
        }
        if (e->flops > 0) fprintf(f, ",\"flops\":%.0f", e->flops);
        if (e->bytes > 0) fprintf(f, ",\"bytes\":%lld", (long long)e->bytes);
        if (e->cu0 >= 0) fputs(",\"timing\":\"cuda_event\"", f);
        if (is_mem_kind(e->kind))
            fprintf(f, ",\"peak_pool_bytes\":%zu,\"held_bytes\":%zu,\"rss_bytes\":%zu",
                    e->pool_peak, e->held, e->rss);
        fputs("}}", f);
    }
}

static int write_trace(const char *path, const taken *tk, int nt,
                       const wk_profiler_summary *sum)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        wk_set_error("profiler: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    fputs("{\"traceEvents\":[", f);
    bool first = true;
    fprintf(f, "\n{\"name\":\"process_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":0,"
               "\"args\":{\"name\":\"rank %d\"}}",
            S.o.rank, S.o.rank);
    first = false;
    for (int i = 0; i < nt; i++) {
        fprintf(f, ",\n{\"name\":\"thread_name\",\"ph\":\"M\",\"pid\":%d,\"tid\":%d,"
                   "\"args\":{\"name\":\"%s\"}}",
                S.o.rank, tk[i].t->tid, tk[i].t == S.main ? "main" : "worker");
        write_trace_spans(f, &tk[i], &first);
    }
    fprintf(f, "\n],\"displayTimeUnit\":\"ms\",\"otherData\":{\"rank\":%d,\"world\":%d,"
               "\"steps\":%lld,\"step_ms\":%.3f,\"spans\":%lld,\"dropped\":%lld}}\n",
            S.o.rank, S.o.world, (long long)sum->steps, sum->step_ms, (long long)sum->spans,
            (long long)sum->dropped);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        wk_set_error("profiler: writing %s failed", path);
        return -1;
    }
    return 0;
}

static void print_rows(FILE *f, const wk_profiler_row *rows, int n, double step_ms)
{
    fprintf(f, "%-32s %8s %11s %11s %7s %11s %9s\n", "name", "calls", "total ms", "self ms",
            "% step", "avg us", "GFLOP/s");
    for (int i = 0; i < n; i++) {
        const wk_profiler_row *r = &rows[i];
        char gf[32] = "-";
        if (r->flops > 0 && r->total_ms > 0)
            snprintf(gf, sizeof gf, "%.2f", r->flops / (r->total_ms * 1e6));
        fprintf(f, "%-32.32s %8lld %11.3f %11.3f %6.1f%% %11.1f %9s\n", r->name,
                (long long)r->calls, r->total_ms, r->self_ms,
                step_ms > 0 ? 100 * r->self_ms / step_ms : 0.0,
                1e3 * r->total_ms / (double)r->calls, gf);
    }
}

static void print_table(FILE *f, const wk_profiler_summary *s)
{
    const double mib = 1.0 / (1 << 20);
    fprintf(f, "wick profiler: rank %d of %d, %lld step%s kept, %.3f ms in all (%.3f ms/step)\n",
            S.o.rank, S.o.world, (long long)s->steps, s->steps == 1 ? "" : "s", s->step_ms,
            s->steps ? s->step_ms / (double)s->steps : 0.0);
    print_rows(f, s->rows, s->nrows, s->step_ms);
    double self = 0;
    for (int i = 0; i < s->nrows; i++)
        self += s->rows[i].self_ms;
    fprintf(f, "%-32s %8s %11s %11.3f %6.1f%%\n", "total (self)", "", "", self,
            s->step_ms > 0 ? 100 * self / s->step_ms : 0.0);
    fprintf(f, "\nphases\n%-32s %8s %11s %7s %11s %10s %10s %10s\n", "name", "calls", "total ms",
            "% step", "avg ms", "peak MiB", "held MiB", "RSS MiB");
    for (int i = 0; i < s->nrows; i++) {
        const wk_profiler_row *r = &s->rows[i];
        if (!is_mem_kind(r->kind)) continue;
        fprintf(f, "%-32.32s %8lld %11.3f %6.1f%% %11.3f %10.1f %10.1f %10.1f\n", r->name,
                (long long)r->calls, r->total_ms,
                s->step_ms > 0 ? 100 * r->total_ms / s->step_ms : 0.0,
                r->total_ms / (double)r->calls, mib * (double)r->peak_pool_bytes,
                mib * (double)r->held_bytes, mib * (double)r->rss_bytes);
    }
    fprintf(f, "(peak: tensor bytes in use in the pool during the phase; held: in use + idle "
               "at its end; RSS at its boundaries)\n");
    wk_alloc_stats st = wk_alloc_get_stats();
    fprintf(f, "process peak RSS %.1f MiB; allocator peak in use %.1f MiB\n",
            mib * (double)s->peak_rss_bytes, mib * (double)st.peak_bytes_in_use);
    if (s->nother) {
        fprintf(f, "\nother threads (not in the step totals)\n");
        print_rows(f, s->other, s->nother, 0);
    }
    if (s->dropped)
        fprintf(f, "%lld spans past max_spans were not kept (the totals above miss them)\n",
                (long long)s->dropped);
}

static int write_table(const char *path, const wk_profiler_summary *s)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        wk_set_error("profiler: cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    print_table(f, s);
    bool bad = ferror(f) != 0;
    if (fclose(f) != 0 || bad) {
        wk_set_error("profiler: writing %s failed", path);
        return -1;
    }
    return 0;
}

/* Display names ("backward:mm") copied into one block owned by the summary. */
static char *own_names(wk_profiler_row *rows, int n, char *block, size_t *used)
{
    for (int i = 0; i < n; i++) {
        const char *pre = rows[i].kind == WK_PROFILER_BACKWARD ? "backward:"
                          : rows[i].kind == WK_PROFILER_PHASE  ? "phase:"
                                                               : "";
        char *dst = block + *used;
        *used += (size_t)sprintf(dst, "%s%s", pre, rows[i].name) + 1;
        rows[i].name = dst;
    }
    return block;
}

/* Resolve CUDA-timed spans: their duration becomes the device's, their self time the
 * device time less what their children took on the host. */
static void resolve_cuda(taken *tk)
{
#ifdef WK_HAVE_CUDA
    for (int64_t i = 0; i < tk->n; i++) {
        span *e = &tk->spans[i];
        if (e->cu0 < 0 || e->cu1 < 0) continue;
        double ms = wki_cuda_prof_elapsed_ms(e->cu0, e->cu1);
        if (!(ms >= 0)) continue;
        int64_t child = (e->t1 - e->t0) - e->self;
        e->t1 = e->t0 + (int64_t)(ms * 1e6);
        e->self = e->t1 - e->t0 - child;
        if (e->self < 0) e->self = 0;
    }
#else
    (void)tk;
#endif
}

static int finish(void)
{
    S.written = true;
    /* take every buffer's spans */
    int nt = 0, cap = 0;
    taken *tk = NULL;
    pthread_mutex_lock(&reg_mu);
    for (tbuf *b = threads; b; b = b->next)
        cap++;
    tk = calloc((size_t)(cap ? cap : 1), sizeof *tk);
    for (tbuf *b = threads; b && tk; b = b->next) {
        pthread_mutex_lock(&b->mu);
        if (b->nspans || b->dropped)
            tk[nt++] = (taken){b, b->spans, b->nspans, b->arena, b->dropped};
        else free(b->spans), free(b->arena);
        b->spans = NULL;
        b->arena = NULL;
        b->nspans = b->cap = b->mark = b->narena = b->acap = b->amark = b->dropped = 0;
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_unlock(&reg_mu);
    if (!tk) {
        wk_set_error("profiler: out of memory");
        return -1;
    }

    table mine = {0}, other = {0};
    wk_profiler_summary sum = {0};
    size_t namebytes = 0;
    for (int i = 0; i < nt; i++) {
        resolve_cuda(&tk[i]);
        if (tk[i].n) qsort(tk[i].spans, (size_t)tk[i].n, sizeof *tk[i].spans, by_time);
        for (int64_t k = 0; k < tk[i].n; k++) {
            const span *e = &tk[i].spans[k];
            add_span(tk[i].t == S.main ? &mine : &other, e);
            if (e->kind == WK_PROFILER_STEP && tk[i].t == S.main) {
                sum.steps++;
                sum.step_ms += 1e-6 * (double)(e->t1 - e->t0);
            }
        }
        sum.spans += tk[i].n;
        sum.dropped += tk[i].dropped;
    }
    for (int i = 0; i < mine.n; i++)
        namebytes += strlen(mine.rows[i].name) + 10;
    for (int i = 0; i < other.n; i++)
        namebytes += strlen(other.rows[i].name) + 10;
    int rc = 0;
    wk_profiler_row *rows = malloc((size_t)(mine.n + other.n + 1) * sizeof *rows);
    char *block = malloc(namebytes + 1);
    if (!rows || !block) {
        wk_set_error("profiler: out of memory");
        rc = -1;
    }
    if (!rc && sum.steps > 0) {
        if (mine.n) memcpy(rows, mine.rows, (size_t)mine.n * sizeof *rows);
        if (other.n) memcpy(rows + mine.n, other.rows, (size_t)other.n * sizeof *rows);
        size_t used = 0;
        own_names(rows, mine.n + other.n, block, &used);
        if (mine.n) qsort(rows, (size_t)mine.n, sizeof *rows, by_self);
        if (other.n) qsort(rows + mine.n, (size_t)other.n, sizeof *rows, by_self);
        sum.rows = rows;
        sum.nrows = mine.n;
        sum.other = rows + mine.n;
        sum.nother = other.n;
        sum.peak_rss_bytes = peak_rss_bytes();
        last.valid = true;
        last.sum = sum;
        last.rows = rows;
        last.strings = block;
        rows = NULL;
        block = NULL;

        char path[4200];
        rc = make_dirs(S.dir);
        if (!rc) {
            if (S.o.world > 1)
                snprintf(path, sizeof path, "%s/trace.rank%d.json", S.dir, S.o.rank);
            else snprintf(path, sizeof path, "%s/trace.json", S.dir);
            rc = write_trace(path, tk, nt, &last.sum);
        }
        if (!rc && (S.o.rank == 0 || S.o.all_ranks_table)) {
            if (S.o.rank == 0) snprintf(path, sizeof path, "%s/profile.txt", S.dir);
            else snprintf(path, sizeof path, "%s/profile.rank%d.txt", S.dir, S.o.rank);
            rc = write_table(path, &last.sum);
            if (S.o.table_out) {
                print_table(S.o.table_out, &last.sum);
                fflush(S.o.table_out);
            }
        }
    } else if (!rc && S.o.table_out && (S.o.rank == 0 || S.o.all_ranks_table)) {
        fprintf(S.o.table_out,
                "wick profiler: no step was kept (stopped after step %lld; schedule wait=%lld "
                "warmup=%lld active=%lld repeat=%lld): nothing written\n",
                (long long)S.step, (long long)S.o.schedule.wait, (long long)S.o.schedule.warmup,
                (long long)S.o.schedule.active, (long long)S.o.schedule.repeat);
    }
    free(rows);
    free(block);
    free(mine.rows);
    free(mine.slots);
    free(other.rows);
    free(other.slots);
    for (int i = 0; i < nt; i++) {
        free(tk[i].spans);
        free(tk[i].arena);
    }
    free(tk);
    return rc;
}

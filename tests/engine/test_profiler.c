/* The profiler: a few training steps of a small MLP in a hand-written loop with phases,
 * its trace (parsed with cJSON), its table, the schedule, threads, ranks and the engine
 * handler. */
#include <cjson/cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

static void setup(void)
{
    tu_setup();
    wk_set_num_threads(2);
}

static void teardown(void)
{
    wk_profiler_stop();
    tu_teardown();
}

TestSuite(profiler, .init = setup, .fini = teardown);

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static void tmpdir(char *buf, size_t n)
{
    snprintf(buf, n, "/tmp/wick_prof_XXXXXX");
    cr_assert_not_null(mkdtemp(buf));
}

static void rm_rf(const char *dir)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

static cJSON *load_json(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    cJSON *j = cJSON_Parse(buf);
    free(buf);
    cr_assert_not_null(j, "%s does not parse as JSON", path);
    return j;
}

/* ---- a small MLP trained by hand: 64 -> 128 -> ReLU -> 10, batch 256, SGD ---- */

typedef struct {
    wk_module *net;
    wk_optimizer *opt;
    wk_generator g;
} mlp;

static void mlp_make(mlp *m)
{
    m->g = wk_generator_make(5);
    m->net = wk_sequential_of((wk_module *[]){wk_linear_new(64, 128, true, &m->g), wk_relu_new(),
                                              wk_linear_new(128, 10, true, &m->g)},
                              3);
    cr_assert_not_null(m->net, "%s", wk_last_error());
    wk_named_param np[8];
    wk_tensor *params[8];
    int n = wk_module_named_parameters(m->net, false, np, 8);
    for (int i = 0; i < n; i++)
        params[i] = np[i].tensor;
    m->opt = wk_sgd_new(params, n, WK_HPARAMS({"lr", 0.05}));
    cr_assert_not_null(m->opt, "%s", wk_last_error());
}

static void mlp_free(mlp *m)
{
    wk_optimizer_free(m->opt);
    wk_module_free(m->net);
}

/* One step; every part of it inside a phase, so the phases cover the step. */
static void mlp_step(mlp *m)
{
    wk_profiler_phase_begin("data");
    wk_frame_begin();
    wk_tensor *x = wk_rand(WK_SHAPE(256, 64), WK_DTYPE_F32, &m->g);
    wk_tensor *y = wk_randint(0, 10, WK_SHAPE(256), &m->g);
    wk_profiler_phase_end();
    wk_profiler_phase_begin("forward");
    wk_tensor *loss = wk_cross_entropy(wk_module_forward(m->net, x), y, NULL);
    wk_profiler_phase_end();
    cr_assert_not_null(loss, "%s", wk_last_error());
    wk_profiler_phase_begin("backward");
    cr_assert_eq(wk_backward(loss), 0, "%s", wk_last_error());
    wk_profiler_phase_end();
    wk_profiler_phase_begin("optimizer");
    cr_assert_eq(wk_optimizer_step(m->opt), 0, "%s", wk_last_error());
    wk_optimizer_zero_grad(m->opt);
    wk_profiler_phase_end();
    wk_profiler_phase_begin("hooks");
    wk_frame_end();
    wk_profiler_phase_end();
}

static wk_profiler_options opts_in(const char *dir, wk_profiler_schedule s)
{
    wk_profiler_options o = wk_profiler_options_default();
    o.dir = dir;
    o.schedule = s;
    o.table_out = NULL;
    return o;
}

static const wk_profiler_row *find_row(const wk_profiler_summary *s, const char *name)
{
    for (int i = 0; i < s->nrows; i++)
        if (!strcmp(s->rows[i].name, name)) return &s->rows[i];
    return NULL;
}

/* The X events of the trace on tid (all tids when tid < 0). */
typedef struct {
    const char *name, *cat;
    double ts, dur, self;
    int tid;
} ev;

static int trace_events(cJSON *j, ev *out, int cap, int *main_tid)
{
    cJSON *evs = cJSON_GetObjectItem(j, "traceEvents");
    cr_assert(cJSON_IsArray(evs));
    int n = 0;
    *main_tid = -1;
    cJSON *e;
    cJSON_ArrayForEach(e, evs)
    {
        const char *ph = cJSON_GetStringValue(cJSON_GetObjectItem(e, "ph"));
        cr_assert_not_null(ph);
        cr_assert_not_null(cJSON_GetObjectItem(e, "pid"));
        cr_assert_not_null(cJSON_GetObjectItem(e, "tid"));
        int tid = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(e, "tid"));
        if (!strcmp(ph, "M")) {
            cJSON *a = cJSON_GetObjectItem(e, "args");
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(a, "name"));
            if (nm && !strcmp(nm, "main")) *main_tid = tid;
            continue;
        }
        cr_assert_str_eq(ph, "X");
        cr_assert_lt(n, cap);
        cJSON *a = cJSON_GetObjectItem(e, "args");
        out[n++] = (ev){cJSON_GetStringValue(cJSON_GetObjectItem(e, "name")),
                        cJSON_GetStringValue(cJSON_GetObjectItem(e, "cat")),
                        cJSON_GetNumberValue(cJSON_GetObjectItem(e, "ts")),
                        cJSON_GetNumberValue(cJSON_GetObjectItem(e, "dur")),
                        cJSON_GetNumberValue(cJSON_GetObjectItem(a, "self_us")), tid};
    }
    return n;
}

static bool inside(const ev *in, const ev *out)
{
    const double eps = 0.002; /* the trace rounds to ns */
    return in->tid == out->tid && in->ts >= out->ts - eps &&
           in->ts + in->dur <= out->ts + out->dur + eps;
}

#define NSTEPS 4

Test(profiler, mlp_trace_table_and_nesting)
{
    char dir[64], path[128];
    tmpdir(dir, sizeof dir);
    mlp m;
    mlp_make(&m);
    mlp_step(&m); /* the first step allocates: not part of the measurement */
    wk_profiler_options o = opts_in(dir, (wk_profiler_schedule){0});
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    cr_assert(wk_profiler_is_recording());
    double t0 = now_s();
    for (int i = 0; i < NSTEPS; i++) {
        mlp_step(&m);
        cr_assert_eq(wk_profiler_step(), 0, "%s", wk_last_error());
    }
    double measured_ms = 1e3 * (now_s() - t0);
    cr_assert_eq(wk_profiler_stop(), 0, "%s", wk_last_error());
    cr_assert_not(wk_profiler_is_running());

    /* the table */
    const wk_profiler_summary *s = wk_profiler_last_summary();
    cr_assert_not_null(s);
    cr_assert_eq(s->steps, NSTEPS);
    cr_assert(fabs(s->step_ms - measured_ms) <= 0.05 * measured_ms,
              "steps %.3f ms, measured %.3f ms", s->step_ms, measured_ms);
    double self = 0, phases = 0;
    for (int i = 0; i < s->nrows; i++) {
        const wk_profiler_row *r = &s->rows[i];
        cr_assert_leq(r->self_ms, r->total_ms + 1e-9, "%s: self %g > total %g", r->name,
                      r->self_ms, r->total_ms);
        if (i) cr_assert_geq(s->rows[i - 1].self_ms, r->self_ms, "not sorted by self time");
        self += r->self_ms;
        if (r->kind == WK_PROFILER_PHASE) phases += r->total_ms;
    }
    cr_assert(fabs(self - measured_ms) <= 0.05 * measured_ms, "self %.3f ms, measured %.3f",
              self, measured_ms);
    cr_assert(fabs(phases - measured_ms) <= 0.05 * measured_ms,
              "phases %.3f ms, measured %.3f ms", phases, measured_ms);
    const char *expected[] = {"linear", "relu", "cross_entropy", "backward:linear",
                              "backward:relu", "backward:cross_entropy", "phase:data",
                              "phase:forward", "phase:backward", "phase:optimizer",
                              "phase:hooks", "ProfilerStep", "backward_pass", "rand"};
    for (size_t i = 0; i < sizeof expected / sizeof *expected; i++)
        cr_assert_not_null(find_row(s, expected[i]), "no row %s", expected[i]);
    const wk_profiler_row *lin = find_row(s, "linear"), *fwd = find_row(s, "phase:forward");
    cr_assert_eq(lin->calls, 2 * NSTEPS);
    cr_assert_eq(fwd->calls, NSTEPS);
    double flops = NSTEPS * 2.0 * 256 * (64.0 * 128 + 128.0 * 10);
    cr_assert(fabs(lin->flops - flops) < 1, "linear flops %g, expected %g", lin->flops, flops);
    cr_assert_gt(fwd->peak_pool_bytes, 256 * 128 * 4, "forward peak %zu", fwd->peak_pool_bytes);
    cr_assert_gt(fwd->rss_bytes, 0);
    cr_assert_gt(fwd->held_bytes, 0);
    snprintf(path, sizeof path, "%s/profile.txt", dir);
    cr_assert(exists(path));

    /* the trace: ops inside phases inside steps, self <= total */
    snprintf(path, sizeof path, "%s/trace.json", dir);
    cJSON *j = load_json(path);
    static ev evs[20000];
    int main_tid;
    int n = trace_events(j, evs, 20000, &main_tid);
    cr_assert_geq(main_tid, 0, "no thread named main");
    int nsteps = 0, nops = 0, nbwd = 0;
    for (int i = 0; i < n; i++) {
        const ev *e = &evs[i];
        cr_assert_leq(e->self, e->dur + 0.002, "%s: self %g > dur %g", e->name, e->self, e->dur);
        if (!strcmp(e->cat, "step")) {
            nsteps++;
            continue;
        }
        bool in_step = false, in_phase = false;
        for (int k = 0; k < n && !(in_step && in_phase); k++) {
            if (k == i || !inside(e, &evs[k])) continue;
            in_step |= !strcmp(evs[k].cat, "step");
            in_phase |= !strcmp(evs[k].cat, "phase");
        }
        cr_assert(in_step, "%s at %.3f is in no step", e->name, e->ts);
        if (!strcmp(e->cat, "phase")) continue;
        cr_assert(in_phase, "%s at %.3f is in no phase", e->name, e->ts);
        nops += !strcmp(e->cat, "op");
        nbwd += !strcmp(e->cat, "backward");
    }
    cr_assert_eq(nsteps, NSTEPS);
    cr_assert_gt(nops, 10 * NSTEPS);
    cr_assert_gt(nbwd, 3 * NSTEPS);
    /* an op's args: shapes, dtype, FLOPs */
    cJSON *e;
    bool seen = false;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "traceEvents"))
    {
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        if (!nm || strcmp(nm, "linear") || seen) continue;
        seen = true;
        cJSON *a = cJSON_GetObjectItem(e, "args");
        cJSON *sh = cJSON_GetArrayItem(cJSON_GetObjectItem(a, "shapes"), 0);
        cr_assert_eq(cJSON_GetArraySize(sh), 2);
        cr_assert_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(sh, 0)), 256);
        cr_assert_eq(cJSON_GetNumberValue(cJSON_GetArrayItem(sh, 1)), 64);
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "dtype")), "float32");
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "device")), "cpu");
        cr_assert_eq(cJSON_GetNumberValue(cJSON_GetObjectItem(a, "flops")), 2.0 * 256 * 64 * 128);
    }
    cr_assert(seen);
    cJSON_Delete(j);
    mlp_free(&m);
    rm_rf(dir);
}

/* The names of the ProfilerStep events in the trace, as step numbers. */
static int trace_steps(const char *dir, int64_t *steps, int cap)
{
    char path[128];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    cJSON *j = load_json(path);
    int n = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "traceEvents"))
    {
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        long long k;
        if (nm && sscanf(nm, "ProfilerStep#%lld", &k) == 1 && n < cap) steps[n++] = k;
    }
    cJSON_Delete(j);
    for (int a = 1; a < n; a++) /* sort */
        for (int b = a; b > 0 && steps[b - 1] > steps[b]; b--) {
            int64_t t = steps[b];
            steps[b] = steps[b - 1];
            steps[b - 1] = t;
        }
    return n;
}

Test(profiler, schedule_keeps_exactly_the_active_steps)
{
    char dir[64], path[128];
    tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/trace.json", dir);
    mlp m;
    mlp_make(&m);
    wk_profiler_options o = opts_in(dir, (wk_profiler_schedule){.wait = 2, .warmup = 1,
                                                                .active = 3, .repeat = 1});
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    for (int i = 0; i < 10; i++) {
        cr_assert_eq(wk_profiler_is_recording(), i >= 2 && i < 6, "step %d", i);
        mlp_step(&m);
        cr_assert_eq(wk_profiler_step(), 0, "%s", wk_last_error());
        /* written as soon as the window closes, before stop */
        cr_assert_eq(exists(path), i >= 5, "step %d: trace %s", i,
                     exists(path) ? "exists" : "missing");
    }
    cr_assert_eq(wk_profiler_stop(), 0);
    const wk_profiler_summary *s = wk_profiler_last_summary();
    cr_assert_not_null(s);
    cr_assert_eq(s->steps, 3);
    cr_assert_eq(find_row(s, "phase:forward")->calls, 3);
    int64_t st[16];
    cr_assert_eq(trace_steps(dir, st, 16), 3);
    cr_assert(st[0] == 3 && st[1] == 4 && st[2] == 5, "steps %lld %lld %lld", (long long)st[0],
              (long long)st[1], (long long)st[2]);
    rm_rf(dir);

    /* two cycles of wait 1, warmup 1, active 1: steps 2 and 5 */
    tmpdir(dir, sizeof dir);
    o = opts_in(dir, (wk_profiler_schedule){.wait = 1, .warmup = 1, .active = 1, .repeat = 2});
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    for (int i = 0; i < 9; i++) {
        mlp_step(&m);
        wk_profiler_step();
    }
    wk_profiler_stop();
    s = wk_profiler_last_summary();
    cr_assert_eq(s->steps, 2);
    cr_assert_eq(trace_steps(dir, st, 16), 2);
    cr_assert(st[0] == 2 && st[1] == 5, "steps %lld %lld", (long long)st[0], (long long)st[1]);
    mlp_free(&m);
    rm_rf(dir);
}

Test(profiler, off_leaves_no_files)
{
    char dir[64], out[128];
    tmpdir(dir, sizeof dir);
    snprintf(out, sizeof out, "%s/prof", dir);
    mlp m;
    mlp_make(&m);
    /* never started: phases and steps are no-ops */
    for (int i = 0; i < 3; i++) {
        mlp_step(&m);
        cr_assert_eq(wk_profiler_step(), 0);
    }
    cr_assert_eq(wk_profiler_stop(), 0);
    cr_assert_not(exists(out));
    cr_assert_null(wk_profiler_last_summary());
    /* started, but stopped before the window: nothing written either */
    wk_profiler_options o = opts_in(out, (wk_profiler_schedule){.wait = 100, .active = 1});
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    for (int i = 0; i < 3; i++) {
        mlp_step(&m);
        wk_profiler_step();
    }
    cr_assert_eq(wk_profiler_stop(), 0);
    cr_assert_not(exists(out));
    cr_assert_null(wk_profiler_last_summary());
    mlp_free(&m);
    rm_rf(dir);
}

Test(profiler, errors)
{
    wk_profiler_schedule s = {0};
    cr_assert_eq(wk_profiler_schedule_set(&s, "wait", 2), 0);
    cr_assert_eq(wk_profiler_schedule_set(&s, "warmup", 1), 0);
    cr_assert_eq(wk_profiler_schedule_set(&s, "active", 3), 0);
    cr_assert_eq(wk_profiler_schedule_set(&s, "repeat", 4), 0);
    cr_assert(s.wait == 2 && s.warmup == 1 && s.active == 3 && s.repeat == 4);
    cr_assert_eq(wk_profiler_schedule_set(&s, "skip_first", 1), -1);
    cr_assert(strstr(wk_last_error(), "unknown key \"skip_first\""), "%s", wk_last_error());
    cr_assert_eq(wk_profiler_schedule_set(&s, "active", -1), -1);
    cr_assert(strstr(wk_last_error(), "active must be >= 0"), "%s", wk_last_error());

    wk_profiler_options o = opts_in("/tmp/wick_prof_unused", (wk_profiler_schedule){.wait = 1});
    cr_assert_eq(wk_profiler_start(&o), -1);
    cr_assert(strstr(wk_last_error(), "invalid schedule"), "%s", wk_last_error());
    o = opts_in("/tmp/wick_prof_unused", (wk_profiler_schedule){0});
    o.rank = 2;
    o.world = 2;
    cr_assert_eq(wk_profiler_start(&o), -1);
    cr_assert(strstr(wk_last_error(), "rank 2 is out of range"), "%s", wk_last_error());
    o.rank = 0;
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    cr_assert_eq(wk_profiler_start(&o), -1);
    cr_assert(strstr(wk_last_error(), "already running"), "%s", wk_last_error());
    /* an unbalanced phase_end and an empty run are harmless */
    wk_profiler_phase_end();
    cr_assert_eq(wk_profiler_stop(), 0);
    cr_assert_not(exists("/tmp/wick_prof_unused"));
}

/* A worker thread running ops while the main thread profiles (as the loader's prefetch
 * thread does): its spans go to their own thread in the trace and stay out of the table. */
static atomic_int worker_stop;

static void *worker(void *p)
{
    (void)p;
    wk_tensor *a = wk_ones(WK_SHAPE(64, 64), WK_DTYPE_F32);
    while (!atomic_load(&worker_stop)) {
        wk_frame_begin();
        wk_tensor *b = wk_mul(wk_add(a, a), a);
        cr_assert_not_null(b);
        wk_frame_end();
        usleep(100);
    }
    wk_tensor_free(a);
    return NULL;
}

Test(profiler, worker_threads)
{
    char dir[64], path[128];
    mlp m;
    mlp_make(&m);
    for (int round = 0; round < 2; round++) { /* the second start frees the dead thread's buffer */
        tmpdir(dir, sizeof dir);
        atomic_store(&worker_stop, 0);
        wk_profiler_options o = opts_in(dir, (wk_profiler_schedule){0});
        cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
        pthread_t th;
        cr_assert_eq(pthread_create(&th, NULL, worker, NULL), 0);
        for (int i = 0; i < 3; i++) {
            mlp_step(&m);
            wk_profiler_step();
        }
        usleep(2000);
        atomic_store(&worker_stop, 1);
        pthread_join(th, NULL);
        cr_assert_eq(wk_profiler_stop(), 0, "%s", wk_last_error());
        const wk_profiler_summary *s = wk_profiler_last_summary();
        cr_assert_gt(s->nother, 0, "no spans from the worker");
        cr_assert_eq(s->steps, 3);
        bool add = false;
        for (int i = 0; i < s->nother; i++)
            add |= !strcmp(s->other[i].name, "add");
        cr_assert(add);
        snprintf(path, sizeof path, "%s/trace.json", dir);
        cJSON *j = load_json(path);
        static ev evs[200000];
        int main_tid, n = trace_events(j, evs, 200000, &main_tid), nworker = 0;
        for (int i = 0; i < n; i++)
            nworker += evs[i].tid != main_tid;
        cr_assert_gt(nworker, 0);
        cJSON_Delete(j);
        rm_rf(dir);
    }
    mlp_free(&m);
}

Test(profiler, ranks)
{
    char dir[64], path[160];
    tmpdir(dir, sizeof dir);
    mlp m;
    mlp_make(&m);
    wk_profiler_options o = opts_in(dir, (wk_profiler_schedule){0});
    o.rank = 1;
    o.world = 2;
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    mlp_step(&m);
    wk_profiler_stop();
    snprintf(path, sizeof path, "%s/trace.rank1.json", dir);
    cJSON_Delete(load_json(path));
    snprintf(path, sizeof path, "%s/profile.txt", dir);
    cr_assert_not(exists(path), "rank 1 wrote the table");
    snprintf(path, sizeof path, "%s/trace.json", dir);
    cr_assert_not(exists(path));
    o.all_ranks_table = true;
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    mlp_step(&m);
    wk_profiler_stop();
    snprintf(path, sizeof path, "%s/profile.rank1.txt", dir);
    cr_assert(exists(path));
    mlp_free(&m);
    rm_rf(dir);
}

/* ---- the engine handler ---- */

static wk_engine_output *engine_step(wk_engine *e, const wk_batch *b, void *user)
{
    mlp *m = user;
    wk_tensor *loss = wk_cross_entropy(wk_module_forward(m->net, wk_batch_get(b, "x")),
                                       wk_batch_get(b, "y"), NULL);
    if (!loss || wk_backward(loss) || wk_optimizer_step(m->opt)) return NULL;
    wk_optimizer_zero_grad(m->opt);
    return wk_engine_output_tensor(e, loss);
}

Test(profiler, engine_handler)
{
    char dir[64], path[128];
    tmpdir(dir, sizeof dir);
    mlp m;
    mlp_make(&m);
    wk_generator g = wk_generator_make(1);
    wk_tensor *x = wk_rand(WK_SHAPE(640, 64), WK_DTYPE_F32, &g);
    wk_tensor *y = wk_randint(0, 10, WK_SHAPE(640), &g);
    wk_dataset *ds = wk_tensor_dataset_new((const char *[]){"x", "y"}, (wk_tensor *[]){x, y}, 2);
    cr_assert_not_null(ds, "%s", wk_last_error());
    wk_loader *l = wk_loader_new(ds, &(wk_loader_opts){.batch_size = 64, .prefetch = 1});
    cr_assert_not_null(l, "%s", wk_last_error());
    wk_data_source src = wk_loader_source(l);
    wk_engine *e = wk_engine_new(engine_step, &m);
    wk_profiler_options o = opts_in(dir, (wk_profiler_schedule){.wait = 1, .warmup = 1,
                                                                .active = 3, .repeat = 1});
    wk_profiler_handler *ph = wk_profiler_attach(e, &o);
    cr_assert_not_null(ph, "%s", wk_last_error());
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0, "%s", wk_last_error());
    cr_assert_not(wk_profiler_is_running());
    const wk_profiler_summary *s = wk_profiler_last_summary();
    cr_assert_not_null(s);
    cr_assert_eq(s->steps, 3);
    cr_assert_eq(find_row(s, "phase:iteration")->calls, 3);
    cr_assert_eq(find_row(s, "phase:data")->calls, 3);
    cr_assert_not_null(find_row(s, "backward:linear"));
    snprintf(path, sizeof path, "%s/trace.json", dir);
    cJSON_Delete(load_json(path));
    wk_profiler_handler_free(ph);
    wk_engine_free(e);
    wk_loader_free(l);
    wk_dataset_free(ds);
    mlp_free(&m);
    rm_rf(dir);
}

/* wick's profiler: per-op and per-phase spans, a Chrome trace and a summary table.
 *
 *   wk_profiler_options o = wk_profiler_options_default();   // the default window
 *   o.dir = "work_dirs/prof";
 *   o.table_out = stdout;
 *   wk_profiler_start(&o);
 *   for (int i = 0; i < 100; i++) {
 *       wk_profiler_phase_begin("forward");  ... ; wk_profiler_phase_end();
 *       wk_profiler_phase_begin("backward"); ... ; wk_profiler_phase_end();
 *       wk_profiler_step();                  // one training step done
 *   }
 *   wk_profiler_stop();   // writes dir/trace.json and dir/profile.txt, prints the table
 *
 * While recording, every op front-end (tensor/, nn/) and every autograd backward function
 * records a span: name, input shapes, dtype, device, FLOPs where known, input bytes,
 * begin and end, so self and total times follow from the nesting. Phases nest ops; each
 * active step is a span "ProfilerStep#N" that holds the phases. Spans are recorded per
 * thread (each with its thread id in the trace); the table counts the thread that called
 * wk_profiler_start and lists other threads' spans apart.
 *
 * Steps and the schedule (torch.profiler's): wk_profiler_step() ends step s and starts
 * s+1 (step 0 begins at wk_profiler_start). In each cycle of wait + warmup + active
 * steps, `wait` steps record nothing, `warmup` steps record and are discarded, `active`
 * steps are kept; after `repeat` cycles (0: cycles go on until stop) recording ends and
 * the outputs are written at once. All kept steps go into one trace and one table.
 * A zeroed schedule (active == 0) records everything from start to stop.
 * Call wk_profiler_step() outside phases: spans open at a step boundary are split there.
 *
 * Memory: for each phase (and step), the peak bytes in use in the allocator pool during
 * it, the bytes the pool held at its end (in use + idle), and the process's resident set
 * at its boundaries.
 *
 * Cost: off, each op pays one load and one predictable branch; on, two clock reads and
 * a copy of its input shapes. With CUDA (WK_HAVE_CUDA), ops and phases are also NVTX
 * ranges (Nsight Systems), and spans on a CUDA device are timed with CUDA events.
 *
 * Start, step and stop belong to one thread; ops and phases may run on any thread.
 */
#ifndef WK_PROFILER_H
#define WK_PROFILER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* In steps; see the schedule above. All >= 0; active == 0 requires the others to be 0. */
typedef struct {
    int64_t wait, warmup, active, repeat;
} wk_profiler_schedule;

/* The window of `use_profiler: true`: skip the first (allocating) step, warm up one, keep 5. */
#define WK_PROFILER_SCHEDULE_DEFAULT                                                     \
    ((wk_profiler_schedule){.wait = 1, .warmup = 1, .active = 5, .repeat = 1})

typedef struct {
    const char *dir;              /* output folder, created when written (NULL: ".") */
    wk_profiler_schedule schedule;
    int rank, world;              /* world > 1: trace.rank{rank}.json, table on rank 0 */
    bool all_ranks_table;         /* every rank prints and saves its table (profile.rank{N}.txt) */
    FILE *table_out;              /* where the table is printed (NULL: only saved) */
    int64_t max_spans;            /* per thread; later spans are counted, not kept (0: 2^20) */
} wk_profiler_options;

/* Options with the default window, dir ".", rank 0 of 1, the table printed to stdout. */
wk_profiler_options wk_profiler_options_default(void);

/* Set one schedule field by its config name ("wait", "warmup", "active", "repeat"):
 * the config's {wait, warmup, active, repeat} map onto it key by key. 0, or -1 with an
 * error naming an unknown key or a negative value. */
int wk_profiler_schedule_set(wk_profiler_schedule *s, const char *key, int64_t value);

/* Start profiling (the options are copied). -1 with an error when already running or an
 * option is invalid (schedule, rank/world). */
int wk_profiler_start(const wk_profiler_options *opts);
/* End the current step and advance the schedule; writes the outputs when the last window
 * closes. No-op when not running. 0, or -1 with an error when writing failed. */
int wk_profiler_step(void);
/* Stop; writes the outputs if kept steps were recorded and not yet written (nothing is
 * written when none was). No-op when not running. 0, or -1 with an error (I/O). */
int wk_profiler_stop(void);
/* True between wk_profiler_start and wk_profiler_stop. */
bool wk_profiler_is_running(void);
/* True while spans are being recorded (warmup and active steps). */
bool wk_profiler_is_recording(void);

/* Open a named phase ("data", "forward", "backward", "optimizer", ...) on this thread;
 * ops until the matching end nest inside it. Phases nest. The name is copied. Near-free
 * when not recording. */
void wk_profiler_phase_begin(const char *name);
/* Close this thread's innermost open phase (ignored when none is open). */
void wk_profiler_phase_end(void);

typedef enum {
    WK_PROFILER_OP,        /* an op front-end */
    WK_PROFILER_BACKWARD,  /* an autograd backward function: "backward:<op>" */
    WK_PROFILER_PHASE,     /* a phase: "phase:<name>" */
    WK_PROFILER_STEP,      /* a kept step: "ProfilerStep" */
    WK_PROFILER_KIND_COUNT
} wk_profiler_kind;

typedef struct {
    const char *name;      /* as in the table: "conv2d", "backward:conv2d", "phase:forward" */
    wk_profiler_kind kind;
    int64_t calls;
    double total_ms, self_ms;
    double flops;          /* summed over calls; 0 when unknown */
    double bytes;          /* input bytes, summed */
    size_t peak_pool_bytes, held_bytes, rss_bytes; /* phases and steps: max over calls */
} wk_profiler_row;

typedef struct {
    int64_t steps;         /* kept steps */
    double step_ms;        /* their total duration */
    int nrows;             /* the profiling thread's rows, by self time, largest first */
    const wk_profiler_row *rows;
    int nother;            /* other threads' rows (same order) */
    const wk_profiler_row *other;
    int64_t spans, dropped; /* spans kept, spans past max_spans */
    size_t peak_rss_bytes; /* the process's peak resident set at the end */
} wk_profiler_summary;

/* The summary of the last written profile (owned by the profiler, valid until the next
 * wk_profiler_start), or NULL when none was written. */
const wk_profiler_summary *wk_profiler_last_summary(void);

#ifdef __cplusplus
}
#endif
#endif

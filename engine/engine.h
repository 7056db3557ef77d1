/* wick's event engine: PyTorch-Ignite's Engine in C.
 *
 *   static wk_engine_output *step(wk_engine *e, const struct wk_batch *b, void *user) {
 *       wk_tensor *loss = ...;                      // runs inside the iteration's frame
 *       return loss ? wk_engine_output_tensor(e, loss) : NULL;
 *   }
 *   static int log_loss(wk_engine *e, void *user) { ...; return 0; }
 *
 *   wk_engine *e = wk_engine_new(step, model);
 *   wk_engine_on_filtered(e, WK_EVENT_ITERATION_COMPLETED, &(wk_event_filter){.every = 100},
 *                         log_loss, NULL);
 *   if (wk_engine_run(e, &source, 10, 0, -1)) fprintf(stderr, "%s\n", wk_last_error());
 *   wk_engine_free(e);
 *
 * Event order of a run (Ignite's): STARTED, then per epoch EPOCH_STARTED and per
 * iteration GET_BATCH_STARTED, GET_BATCH_COMPLETED, ITERATION_STARTED, ITERATION_COMPLETED;
 * DATALOADER_STOP_ITERATION when the data runs out (the source is then reset and
 * iteration continues), EPOCH_COMPLETED, and COMPLETED at the end.
 * wk_engine_terminate(): the run ends after the current iteration (or handler) with
 * TERMINATE then COMPLETED, without EPOCH_COMPLETED for the unfinished epoch.
 * wk_engine_terminate_epoch(): the epoch ends after the current iteration with
 * TERMINATE_SINGLE_EPOCH then EPOCH_COMPLETED, and the run goes on.
 * Reaching max_iters ends the run like the end of the data: EPOCH_COMPLETED, COMPLETED.
 *
 * Each iteration (from GET_BATCH_STARTED to ITERATION_COMPLETED) runs inside a frame the
 * engine opens and closes: tensors made there, the batch and the output tensor included,
 * are released after ITERATION_COMPLETED's handlers. Named scalar outputs persist.
 *
 * Errors: a process function returning NULL, or a handler returning non-zero, fires
 * EXCEPTION_RAISED with the message in state.error; when a handler is registered for it,
 * the run stops there and wk_engine_run returns 0 (the handler took it), else it returns
 * -1 with the message in wk_last_error().
 */
#ifndef WK_ENGINE_ENGINE_H
#define WK_ENGINE_ENGINE_H

#include "../tensor/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

struct wk_batch; /* a batch of named tensors (nn/model.h) */

typedef enum {
    WK_EVENT_STARTED,
    WK_EVENT_EPOCH_STARTED,
    WK_EVENT_GET_BATCH_STARTED,
    WK_EVENT_GET_BATCH_COMPLETED,
    WK_EVENT_ITERATION_STARTED,
    WK_EVENT_ITERATION_COMPLETED,
    WK_EVENT_DATALOADER_STOP_ITERATION,
    WK_EVENT_EPOCH_COMPLETED,
    WK_EVENT_TERMINATE_SINGLE_EPOCH,
    WK_EVENT_TERMINATE,
    WK_EVENT_COMPLETED,
    WK_EVENT_EXCEPTION_RAISED,
    WK_EVENT_BUILTIN_COUNT
} wk_event;

#define WK_ENGINE_MAX_EVENTS 64   /* built-in plus user events */
#define WK_ENGINE_MAX_OUTPUTS 8
#define WK_ENGINE_MAX_METRICS 32
#define WK_ENGINE_NAME_LEN 48

/* A data source the engine iterates: any loader or iterator. */
typedef struct {
    void *self;
    /* The next batch of the current pass: 1 (and *batch set, valid in the iteration's
     * frame), 0 when the data is exhausted, -1 on error (message in wk_last_error). */
    int (*next)(void *self, const struct wk_batch **batch);
    /* Start a new pass over the data after it was exhausted: 0 or -1. May be NULL. */
    int (*reset)(void *self);
    /* Batches per pass, or -1 when unknown. May be NULL (unknown). */
    int64_t (*length)(void *self);
} wk_data_source;

/* What the process function produced: a tensor (valid until the iteration's frame ends)
 * and/or named scalars (kept until the next iteration). */
typedef struct {
    wk_tensor *tensor;
    int count;
    char names[WK_ENGINE_MAX_OUTPUTS][WK_ENGINE_NAME_LEN];
    double values[WK_ENGINE_MAX_OUTPUTS];
} wk_engine_output;

typedef struct {
    int64_t epoch;          /* 1-based epoch being run (0 before the first) */
    int64_t iteration;      /* global iteration count, 1-based once one has started */
    int64_t epoch_length;   /* iterations per epoch (-1 until known) */
    int64_t max_epochs;     /* -1 = none */
    int64_t max_iters;      /* -1 = none */
    const struct wk_batch *batch; /* the current batch (NULL outside an iteration) */
    wk_engine_output output;
    int nmetrics;
    char metric_names[WK_ENGINE_MAX_METRICS][WK_ENGINE_NAME_LEN];
    double metric_values[WK_ENGINE_MAX_METRICS];
    int64_t counters[WK_ENGINE_MAX_EVENTS]; /* per user event with a counter */
    double time_total, time_epoch, time_data, time_process; /* seconds */
    char error[512];        /* the message of the last EXCEPTION_RAISED */
} wk_engine_state;

typedef struct wk_engine wk_engine;

/* The process function: one iteration. Return an output (wk_engine_output_tensor /
 * wk_engine_output_scalar build it in the engine's state) or NULL on error. */
typedef wk_engine_output *(*wk_process_fn)(wk_engine *engine, const struct wk_batch *batch,
                                           void *user);
/* An event handler: 0 to go on, non-zero to raise an error (message via wk_set_error). */
typedef int (*wk_handler_fn)(wk_engine *engine, void *user);

/* When a handler runs, given the event's count (iteration for batch/iteration events,
 * epoch for epoch events and STARTED/COMPLETED, the counter of a user event): every N,
 * once at the listed counts, strictly before B / after A (0 = unset; combinable with
 * every, as Ignite's every+before/after), or a predicate. A zeroed filter runs always. */
typedef struct {
    int64_t every;
    int64_t once[8];
    int n_once;
    int64_t before, after;
    bool (*predicate)(wk_engine *engine, int64_t count, void *user);
} wk_event_filter;

typedef struct {
    wk_engine *engine;
    uint64_t id;
} wk_handle;

/* A new engine around a process function (user is passed to it). */
wk_engine *wk_engine_new(wk_process_fn process, void *user);
/* Free the engine and its handlers. NULL-safe. */
void wk_engine_free(wk_engine *engine);
/* The engine's state (read it from handlers; change it only through the functions here). */
wk_engine_state *wk_engine_get_state(wk_engine *engine);
/* The user pointer given to wk_engine_new when the engine's process function is `process`,
 * else NULL (lets a wrapper such as the supervised trainer find its own state). */
void *wk_engine_process_user(const wk_engine *engine, wk_process_fn process);

/* Register a handler for an event (built-in or user); handlers run in registration
 * order. Returns a handle; {NULL, 0} with an error for an unknown event. */
wk_handle wk_engine_on(wk_engine *engine, int event, wk_handler_fn fn, void *user);
/* The same with a filter (copied). */
wk_handle wk_engine_on_filtered(wk_engine *engine, int event, const wk_event_filter *filter,
                                wk_handler_fn fn, void *user);
/* One handler for any of n events (Ignite's `Events.A | Events.B`); one handle removes
 * it from all of them. */
wk_handle wk_engine_on_any(wk_engine *engine, const int *events, int n,
                           const wk_event_filter *filter, wk_handler_fn fn, void *user);
/* Remove a handler (safe while events fire, also from the handler itself). 0, or -1 if
 * the handle is unknown. */
int wk_engine_remove(wk_handle handle);
/* True when fn (with that user pointer, or any when user is NULL) is registered for event. */
bool wk_engine_has_handler(const wk_engine *engine, int event, wk_handler_fn fn, void *user);

/* Register n user events (names for messages); returns the id of the first (ids are
 * consecutive) or -1. With_counter: state.counters[id] counts firings (Ignite's
 * event_to_attr) and is the count filters see. */
int wk_engine_register_events(wk_engine *engine, const char *const *names, int n,
                              bool with_counter);
/* Fire an event now (its handlers run in order). 0, or -1 if a handler failed. */
int wk_engine_fire(wk_engine *engine, int event);
/* The event's name ("ITERATION_COMPLETED", or a user event's name). */
const char *wk_engine_event_name(const wk_engine *engine, int event);

/* Run over data for max_epochs epochs or max_iters iterations (-1 = not set; one of
 * them must be set), with epoch_length iterations per epoch (-1: the data's length, or
 * learnt at the first exhaustion). A second run after a completed one starts anew; a
 * run after wk_engine_state_load or a terminate continues from the state. 0 or -1. */
int wk_engine_run(wk_engine *engine, const wk_data_source *data, int64_t max_epochs,
                  int64_t max_iters, int64_t epoch_length);
/* Stop the run after the current iteration or handler (TERMINATE, COMPLETED). */
void wk_engine_terminate(wk_engine *engine);
/* End the current epoch after the current iteration (TERMINATE_SINGLE_EPOCH,
 * EPOCH_COMPLETED), then go on. */
void wk_engine_terminate_epoch(wk_engine *engine);

/* Set the iteration's output tensor in the state; returns the state's output. */
wk_engine_output *wk_engine_output_tensor(wk_engine *engine, wk_tensor *t);
/* Add (or replace) a named scalar in the iteration's output; returns the output, or NULL
 * with an error when full. */
wk_engine_output *wk_engine_output_scalar(wk_engine *engine, const char *name, double value);
/* Set a metric (name -> value) in the state; 0 or -1 when full. */
int wk_engine_set_metric(wk_engine *engine, const char *name, double value);
/* A metric's value, NaN when absent. */
double wk_engine_get_metric(const wk_engine *engine, const char *name);

/* The state to save (iteration, epoch, epoch_length, max_epochs/max_iters, user counters,
 * metrics) as a JSON string (malloc'ed; free it), or NULL. */
char *wk_engine_state_save(const wk_engine *engine);
/* Restore a saved state: the next wk_engine_run continues at the right iteration of the
 * right epoch. 0, or -1 with an error naming the bad field. */
int wk_engine_state_load(wk_engine *engine, const char *json);

#ifdef __cplusplus
}
#endif
#endif

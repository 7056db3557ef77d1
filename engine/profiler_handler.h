/* The profiler (tensor/profiler.h) as an engine handler.
 *
 *   wk_profiler_options o = wk_profiler_options_default();   // wait 1, warmup 1, active 5
 *   o.dir = "work_dirs/run/profiler";
 *   wk_profiler_handler *ph = wk_profiler_attach(engine, &o);
 *   wk_engine_run(engine, &source, 1, 0, -1);  // outputs written when the window closes
 *   wk_profiler_handler_free(ph);              // before wk_engine_free
 *
 * STARTED starts the profiler; GET_BATCH_STARTED .. GET_BATCH_COMPLETED (or the data's
 * exhaustion) is phase "data"; ITERATION_STARTED .. ITERATION_COMPLETED is phase
 * "iteration" (the process function); each ITERATION_COMPLETED then steps the schedule;
 * COMPLETED stops it and writes what the window kept. Handlers registered after this one
 * for ITERATION_COMPLETED run in the next step's span. */
#ifndef WK_ENGINE_PROFILER_HANDLER_H
#define WK_ENGINE_PROFILER_HANDLER_H

#include "../tensor/profiler.h"
#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wk_profiler_handler wk_profiler_handler;

/* Attach the profiler to the engine's events with these options (copied; NULL: the
 * defaults). Returns the handler (free it with wk_profiler_handler_free), or NULL with an
 * error. A run whose STARTED finds the profiler already running fails with that error. */
wk_profiler_handler *wk_profiler_attach(wk_engine *engine, const wk_profiler_options *opts);
/* Detach and free; stops the profiler (writing its outputs) if this handler started it
 * and the run did not reach COMPLETED. NULL-safe. */
void wk_profiler_handler_free(wk_profiler_handler *h);

#ifdef __cplusplus
}
#endif
#endif

/* Ready-made engine handlers (Ignite's): TerminateOnNan, Timer, ProgressBar.
 *
 *   wk_terminate_on_nan_attach(engine);              // stops the run at a NaN/inf output
 *   wk_timer *t = wk_timer_attach(engine);           // average seconds per iteration
 *   wk_progress_bar *pb = wk_progress_bar_attach(engine, stderr, 50);
 *   wk_engine_run(...);
 *   printf("%.3f ms/it\n", 1e3 * wk_timer_value(t));
 *   wk_timer_free(t); wk_progress_bar_free(pb);     // before wk_engine_free
 */
#ifndef WK_ENGINE_HANDLERS_H
#define WK_ENGINE_HANDLERS_H

#include <stdio.h>

#include "engine.h"

#ifdef __cplusplus
extern "C" {
#endif

/* At every ITERATION_COMPLETED, check the output's named scalars and its tensor (when it
 * has one element); on NaN or inf, record a message naming the output and the iteration
 * (state.error) and terminate the run. Returns the handle, or {NULL, 0}. */
wk_handle wk_terminate_on_nan_attach(wk_engine *engine);

typedef struct wk_timer wk_timer;
/* Time each iteration (ITERATION_STARTED to ITERATION_COMPLETED) and keep the running
 * average (Ignite's Timer(average=True) attached to those events). */
wk_timer *wk_timer_attach(wk_engine *engine);
/* Average seconds per timed iteration (0 before the first). */
double wk_timer_value(const wk_timer *t);
/* Number of timed iterations. */
int64_t wk_timer_count(const wk_timer *t);
/* Detach from the engine and free: call it before wk_engine_free. */
void wk_timer_free(wk_timer *t);

typedef struct wk_progress_bar wk_progress_bar;
/* Free with wk_progress_bar_free before wk_engine_free.
 * A progress line: "Epoch [2/10] [120/469] 35.2 it/s eta 0:00:09 loss: 0.4213" (the
 * first named output scalar). On a terminal it is redrawn in place every iteration (at
 * most every 0.1 s); otherwise a full line is written every `every` iterations and at
 * the end of each epoch. */
wk_progress_bar *wk_progress_bar_attach(wk_engine *engine, FILE *out, int64_t every);
void wk_progress_bar_free(wk_progress_bar *pb);

#ifdef __cplusplus
}
#endif
#endif

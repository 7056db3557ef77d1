/* bench/engine: the event engine's overhead per iteration: an empty process function,
 * 5 handlers (on ITERATION_STARTED/COMPLETED, one with an every-filter, EPOCH_*), and a
 * data source that hands out a pointer. Target (BENCHMARKS.md): < 1 us per iteration. */
#include <stdio.h>
#include <time.h>

#include "wick.h"

static int next(void *self, const struct wk_batch **b)
{
    int64_t *pos = self;
    *b = (const struct wk_batch *)pos;
    return (*pos)++ < 1000000 ? 1 : 0;
}
static int reset(void *self)
{
    *(int64_t *)self = 0;
    return 0;
}
static int64_t length(void *self)
{
    (void)self;
    return 1000000;
}
static wk_engine_output *process(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    return wk_engine_output_scalar(e, "loss", 0.5);
}
static int64_t ticks;
static int handler(wk_engine *e, void *user)
{
    (void)e, (void)user;
    ticks++;
    return 0;
}

int main(void)
{
    int64_t pos = 0;
    wk_data_source src = {&pos, next, reset, length};
    wk_engine *e = wk_engine_new(process, NULL);
    wk_engine_on(e, WK_EVENT_ITERATION_STARTED, handler, NULL);
    wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, handler, NULL);
    wk_engine_on_filtered(e, WK_EVENT_ITERATION_COMPLETED, &(wk_event_filter){.every = 50},
                          handler, NULL);
    wk_engine_on(e, WK_EVENT_EPOCH_STARTED, handler, NULL);
    wk_engine_on(e, WK_EVENT_EPOCH_COMPLETED, handler, NULL);
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        pos = 0;
        struct timespec t0, t1;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (wk_engine_run(e, &src, 1, -1, -1)) {
            fprintf(stderr, "%s\n", wk_last_error());
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        if (s < best) best = s;
    }
    printf("engine: %.3f us per iteration (1e6 iterations, 5 handlers, best of 5)\n",
           best / 1e6 * 1e6);
    wk_engine_free(e);
    return 0;
}

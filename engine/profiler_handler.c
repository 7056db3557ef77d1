/* The profiler attached to engine events (see profiler_handler.h). */
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor-impl.h"
#include "profiler_handler.h"

enum { H_STARTED, H_DATA_BEGIN, H_DATA_END, H_DATA_STOP, H_ITER_BEGIN, H_ITER_END,
       H_COMPLETED, H_COUNT };

struct wk_profiler_handler {
    wk_profiler_options opts;
    char *dir;
    bool started, in_data, in_iter;
    wk_handle h[H_COUNT];
};

static int on_started(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (wk_profiler_start(&h->opts) != 0) return -1;
    h->started = true;
    h->in_data = h->in_iter = false;
    return 0;
}

static int on_data_begin(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (!h->started) return 0;
    wk_profiler_phase_begin("data");
    h->in_data = true;
    return 0;
}

static int on_data_end(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (h->in_data) wk_profiler_phase_end();
    h->in_data = false;
    return 0;
}

static int on_iter_begin(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (!h->started) return 0;
    wk_profiler_phase_begin("iteration");
    h->in_iter = true;
    return 0;
}

static int on_iter_end(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (!h->started) return 0;
    if (h->in_iter) wk_profiler_phase_end();
    h->in_iter = false;
    return wk_profiler_step();
}

static int on_completed(wk_engine *e, void *user)
{
    (void)e;
    wk_profiler_handler *h = user;
    if (!h->started) return 0;
    h->started = false;
    return wk_profiler_stop();
}

wk_profiler_handler *wk_profiler_attach(wk_engine *engine, const wk_profiler_options *opts)
{
    if (!engine) {
        wk_set_error("profiler_attach: engine is NULL");
        return NULL;
    }
    wk_profiler_handler *h = calloc(1, sizeof *h);
    if (!h) {
        wk_set_error("profiler_attach: out of memory");
        return NULL;
    }
    h->opts = opts ? *opts : wk_profiler_options_default();
    if (h->opts.dir && !(h->dir = strdup(h->opts.dir))) {
        free(h);
        wk_set_error("profiler_attach: out of memory");
        return NULL;
    }
    h->opts.dir = h->dir;
    static const struct {
        int event;
        wk_handler_fn fn;
    } table[H_COUNT] = {
        [H_STARTED] = {WK_EVENT_STARTED, on_started},
        [H_DATA_BEGIN] = {WK_EVENT_GET_BATCH_STARTED, on_data_begin},
        [H_DATA_END] = {WK_EVENT_GET_BATCH_COMPLETED, on_data_end},
        [H_DATA_STOP] = {WK_EVENT_DATALOADER_STOP_ITERATION, on_data_end},
        [H_ITER_BEGIN] = {WK_EVENT_ITERATION_STARTED, on_iter_begin},
        [H_ITER_END] = {WK_EVENT_ITERATION_COMPLETED, on_iter_end},
        [H_COMPLETED] = {WK_EVENT_COMPLETED, on_completed},
    };
    for (int i = 0; i < H_COUNT; i++) {
        h->h[i] = wk_engine_on(engine, table[i].event, table[i].fn, h);
        if (!h->h[i].engine) {
            wk_profiler_handler_free(h);
            return NULL;
        }
    }
    return h;
}

void wk_profiler_handler_free(wk_profiler_handler *h)
{
    if (!h) return;
    for (int i = 0; i < H_COUNT; i++)
        if (h->h[i].engine) wk_engine_remove(h->h[i]);
    if (h->started) wk_profiler_stop();
    free(h->dir);
    free(h);
}

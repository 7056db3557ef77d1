/* The event engine (see engine.h): handlers, filters, the run loop, state. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tensor/tensor-impl.h"
#include "engine.h"

typedef struct {
    wk_handler_fn fn;   /* NULL once removed */
    void *user;
    wk_event_filter filter;
    bool filtered;
    uint64_t id;
} handler;

typedef struct {
    handler *items;
    int count, cap;
} handler_list;

struct wk_engine {
    wk_process_fn process;
    void *process_user;
    wk_engine_state state;
    handler_list handlers[WK_ENGINE_MAX_EVENTS];
    char *event_names[WK_ENGINE_MAX_EVENTS];   /* user events */
    bool has_counter[WK_ENGINE_MAX_EVENTS];
    int nevents;
    uint64_t next_id;
    int firing;          /* nesting depth of wk_engine_fire */
    bool dirty;          /* handlers were removed while firing */
    bool should_terminate, should_terminate_epoch;
    bool running;
    bool epoch_done;     /* the current epoch reached EPOCH_COMPLETED */
    int last_event;
};

static const char *const builtin_names[] = {
    "STARTED", "EPOCH_STARTED", "GET_BATCH_STARTED", "GET_BATCH_COMPLETED",
    "ITERATION_STARTED", "ITERATION_COMPLETED", "DATALOADER_STOP_ITERATION",
    "EPOCH_COMPLETED", "TERMINATE_SINGLE_EPOCH", "TERMINATE", "COMPLETED",
    "EXCEPTION_RAISED",
};
_Static_assert(sizeof builtin_names / sizeof builtin_names[0] == WK_EVENT_BUILTIN_COUNT,
               "one name per built-in event");

wk_engine *wk_engine_new(wk_process_fn process, void *user)
{
    if (!process) {
        wk_set_error("engine_new: the process function is NULL");
        return NULL;
    }
    wk_engine *e = calloc(1, sizeof *e);
    if (!e) {
        wk_set_error("engine_new: out of memory");
        return NULL;
    }
    e->process = process;
    e->process_user = user;
    e->nevents = WK_EVENT_BUILTIN_COUNT;
    e->next_id = 1;
    e->last_event = -1;
    e->state.epoch_length = e->state.max_epochs = e->state.max_iters = -1;
    return e;
}

void *wk_engine_process_user(const wk_engine *e, wk_process_fn process)
{
    return e && process && e->process == process ? e->process_user : NULL;
}

void wk_engine_free(wk_engine *e)
{
    if (!e) return;
    for (int i = 0; i < WK_ENGINE_MAX_EVENTS; i++) {
        free(e->handlers[i].items);
        free(e->event_names[i]);
    }
    free(e);
}

wk_engine_state *wk_engine_get_state(wk_engine *e) { return e ? &e->state : NULL; }

const char *wk_engine_event_name(const wk_engine *e, int event)
{
    if (event >= 0 && event < WK_EVENT_BUILTIN_COUNT) return builtin_names[event];
    if (e && event >= WK_EVENT_BUILTIN_COUNT && event < e->nevents) return e->event_names[event];
    return "?";
}

static bool valid_event(const char *op, const wk_engine *e, int event)
{
    if (!e) {
        wk_set_error("%s: engine is NULL", op);
        return false;
    }
    if (event < 0 || event >= e->nevents) {
        wk_set_error("%s: unknown event %d (register user events with "
                     "wk_engine_register_events)",
                     op, event);
        return false;
    }
    return true;
}

static bool add_handler(wk_engine *e, int event, const wk_event_filter *f, wk_handler_fn fn,
                        void *user, uint64_t id)
{
    handler_list *l = &e->handlers[event];
    if (l->count == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        handler *items = realloc(l->items, (size_t)cap * sizeof *items);
        if (!items) {
            wk_set_error("engine_on: out of memory");
            return false;
        }
        l->items = items;
        l->cap = cap;
    }
    handler *h = &l->items[l->count++];
    memset(h, 0, sizeof *h);
    h->fn = fn;
    h->user = user;
    h->id = id;
    if (f) {
        h->filter = *f;
        h->filtered = true;
    }
    return true;
}

static bool check_filter(const wk_event_filter *f)
{
    if (!f) return true;
    if (f->every < 0 || f->before < 0 || f->after < 0 || f->n_once < 0 || f->n_once > 8) {
        wk_set_error("engine_on: invalid filter (every, before, after must be >= 0; at most "
                     "8 once values)");
        return false;
    }
    return true;
}

wk_handle wk_engine_on_any(wk_engine *e, const int *events, int n, const wk_event_filter *f,
                           wk_handler_fn fn, void *user)
{
    wk_handle h = {NULL, 0};
    if (!fn) {
        wk_set_error("engine_on: handler is NULL");
        return h;
    }
    if (n < 1 || !events) {
        wk_set_error("engine_on: no event given");
        return h;
    }
    for (int i = 0; i < n; i++)
        if (!valid_event("engine_on", e, events[i])) return h;
    if (!check_filter(f)) return h;
    uint64_t id = e->next_id++;
    for (int i = 0; i < n; i++) {
        if (!add_handler(e, events[i], f, fn, user, id)) {
            wk_engine_remove((wk_handle){e, id});
            return h;
        }
    }
    h.engine = e;
    h.id = id;
    return h;
}

wk_handle wk_engine_on_filtered(wk_engine *e, int event, const wk_event_filter *f,
                                wk_handler_fn fn, void *user)
{
    return wk_engine_on_any(e, &event, 1, f, fn, user);
}

wk_handle wk_engine_on(wk_engine *e, int event, wk_handler_fn fn, void *user)
{
    return wk_engine_on_any(e, &event, 1, NULL, fn, user);
}

static void compact(wk_engine *e)
{
    for (int ev = 0; ev < e->nevents; ev++) {
        handler_list *l = &e->handlers[ev];
        int w = 0;
        for (int i = 0; i < l->count; i++)
            if (l->items[i].fn) l->items[w++] = l->items[i];
        l->count = w;
    }
    e->dirty = false;
}

int wk_engine_remove(wk_handle handle)
{
    wk_engine *e = handle.engine;
    bool found = false;
    if (e && handle.id) {
        for (int ev = 0; ev < e->nevents; ev++) {
            handler_list *l = &e->handlers[ev];
            for (int i = 0; i < l->count; i++) {
                if (l->items[i].id == handle.id && l->items[i].fn) {
                    l->items[i].fn = NULL; /* skipped from now on, freed when safe */
                    found = true;
                }
            }
        }
    }
    if (!found) {
        wk_set_error("engine_remove: no handler with this handle");
        return -1;
    }
    if (e->firing) e->dirty = true;
    else compact(e);
    return 0;
}

bool wk_engine_has_handler(const wk_engine *e, int event, wk_handler_fn fn, void *user)
{
    if (!e || event < 0 || event >= e->nevents) return false;
    const handler_list *l = &e->handlers[event];
    for (int i = 0; i < l->count; i++)
        if (l->items[i].fn && l->items[i].fn == fn && (!user || l->items[i].user == user))
            return true;
    return false;
}

int wk_engine_register_events(wk_engine *e, const char *const *names, int n, bool with_counter)
{
    if (!e || n < 1 || !names) {
        wk_set_error("engine_register_events: needs an engine and at least one name");
        return -1;
    }
    if (e->nevents + n > WK_ENGINE_MAX_EVENTS) {
        wk_set_error("engine_register_events: at most %d user events",
                     WK_ENGINE_MAX_EVENTS - WK_EVENT_BUILTIN_COUNT);
        return -1;
    }
    int first = e->nevents;
    for (int i = 0; i < n; i++) {
        char *copy = strdup(names[i] ? names[i] : "user_event");
        if (!copy) {
            wk_set_error("engine_register_events: out of memory");
            return -1;
        }
        e->event_names[e->nevents] = copy;
        e->has_counter[e->nevents] = with_counter;
        e->nevents++;
    }
    return first;
}

/* The count an event's filters see. */
static int64_t event_count(const wk_engine *e, int event)
{
    switch (event) {
    case WK_EVENT_GET_BATCH_STARTED:
    case WK_EVENT_GET_BATCH_COMPLETED:
    case WK_EVENT_ITERATION_STARTED:
    case WK_EVENT_ITERATION_COMPLETED:
    case WK_EVENT_DATALOADER_STOP_ITERATION: return e->state.iteration;
    default:
        if (event >= WK_EVENT_BUILTIN_COUNT) return e->state.counters[event];
        return e->state.epoch;
    }
}

static bool passes(wk_engine *e, const handler *h, int64_t count)
{
    if (!h->filtered) return true;
    const wk_event_filter *f = &h->filter;
    if (f->every > 0 && count % f->every != 0) return false;
    if (f->before > 0 && !(count < f->before)) return false;
    if (f->after > 0 && !(count > f->after)) return false;
    if (f->n_once > 0) {
        bool hit = false;
        for (int i = 0; i < f->n_once; i++)
            hit |= count == f->once[i];
        if (!hit) return false;
    }
    if (f->predicate && !f->predicate(e, count, h->user)) return false;
    return true;
}

int wk_engine_fire(wk_engine *e, int event)
{
    if (!valid_event("engine_fire", e, event)) return -1;
    if (event >= WK_EVENT_BUILTIN_COUNT && e->has_counter[event]) e->state.counters[event]++;
    e->last_event = event;
    int64_t count = event_count(e, event);
    int n = e->handlers[event].count; /* handlers added while firing run next time */
    int rc = 0;
    e->firing++;
    for (int i = 0; i < n && !rc; i++) {
        handler h = e->handlers[event].items[i]; /* copy: the list may grow meanwhile */
        if (!h.fn || !passes(e, &h, count)) continue;
        wk_clear_error();
        if (h.fn(e, h.user) != 0) {
            if (!wk_last_error()[0])
                wk_set_error("a handler of %s failed", wk_engine_event_name(e, event));
            rc = -1;
        }
    }
    if (--e->firing == 0 && e->dirty) compact(e);
    return rc;
}

void wk_engine_terminate(wk_engine *e)
{
    if (e) e->should_terminate = true;
}

void wk_engine_terminate_epoch(wk_engine *e)
{
    if (e) e->should_terminate_epoch = true;
}

wk_engine_output *wk_engine_output_tensor(wk_engine *e, wk_tensor *t)
{
    if (!e) return NULL;
    e->state.output.tensor = t;
    return &e->state.output;
}

wk_engine_output *wk_engine_output_scalar(wk_engine *e, const char *name, double value)
{
    if (!e || !name) return NULL;
    wk_engine_output *o = &e->state.output;
    for (int i = 0; i < o->count; i++) {
        if (!strcmp(o->names[i], name)) {
            o->values[i] = value;
            return o;
        }
    }
    if (o->count == WK_ENGINE_MAX_OUTPUTS) {
        wk_set_error("engine_output_scalar: at most %d named outputs", WK_ENGINE_MAX_OUTPUTS);
        return NULL;
    }
    snprintf(o->names[o->count], WK_ENGINE_NAME_LEN, "%s", name);
    o->values[o->count++] = value;
    return o;
}

int wk_engine_set_metric(wk_engine *e, const char *name, double value)
{
    if (!e || !name) return -1;
    wk_engine_state *s = &e->state;
    for (int i = 0; i < s->nmetrics; i++) {
        if (!strcmp(s->metric_names[i], name)) {
            s->metric_values[i] = value;
            return 0;
        }
    }
    if (s->nmetrics == WK_ENGINE_MAX_METRICS) {
        wk_set_error("engine_set_metric: at most %d metrics", WK_ENGINE_MAX_METRICS);
        return -1;
    }
    snprintf(s->metric_names[s->nmetrics], WK_ENGINE_NAME_LEN, "%s", name);
    s->metric_values[s->nmetrics++] = value;
    return 0;
}

double wk_engine_get_metric(const wk_engine *e, const char *name)
{
    if (!e || !name) return NAN;
    for (int i = 0; i < e->state.nmetrics; i++)
        if (!strcmp(e->state.metric_names[i], name)) return e->state.metric_values[i];
    return NAN;
}

/* ---- the run loop ---- */

/* Ignite's rule (max_iters reached, or max_epochs' worth of iterations, or max_epochs
 * epochs), except that an epoch left in the middle (terminate, or a state saved
 * mid-epoch) is not done: a later run continues it. */
static bool is_done(const wk_engine *e)
{
    const wk_engine_state *s = &e->state;
    if (s->max_iters > 0 && s->iteration >= s->max_iters) return true;
    if (s->max_epochs > 0 && s->epoch_length > 0 &&
        s->iteration >= s->epoch_length * s->max_epochs)
        return true;
    return s->max_epochs > 0 && s->epoch >= s->max_epochs && e->epoch_done;
}

/* Record an error: EXCEPTION_RAISED takes it if anyone listens. Returns 1 when a handler
 * took it (the run ends quietly), -1 otherwise. */
static int raise_error(wk_engine *e)
{
    snprintf(e->state.error, sizeof e->state.error, "%s",
             wk_last_error()[0] ? wk_last_error() : "unknown error");
    if (e->handlers[WK_EVENT_EXCEPTION_RAISED].count == 0) {
        wk_set_error("%s", e->state.error);
        return -1;
    }
    if (wk_engine_fire(e, WK_EVENT_EXCEPTION_RAISED)) return -1;
    return 1;
}

/* One iteration (or the data's exhaustion). 1: an iteration ran; 0: the data ran out
 * (and was reset); -1: an error. */
static int iterate(wk_engine *e, const wk_data_source *data, int64_t *iter_in_epoch)
{
    wk_engine_state *s = &e->state;
    s->output.tensor = NULL;
    s->output.count = 0;
    wk_frame_begin();
    int rc = 0;
    double t0 = wki_now();
    if (e->last_event != WK_EVENT_DATALOADER_STOP_ITERATION)
        rc = wk_engine_fire(e, WK_EVENT_GET_BATCH_STARTED);
    const struct wk_batch *batch = NULL;
    int got = rc ? -1 : data->next(data->self, &batch);
    if (got < 0) {
        if (!wk_last_error()[0]) wk_set_error("engine: the data source failed");
        rc = -1;
    } else if (got == 0) {
        wk_frame_end();
        if (s->epoch_length < 0) {
            if (*iter_in_epoch == 0) {
                wk_set_error("engine: the data source produced no batch");
                return -1;
            }
            s->epoch_length = *iter_in_epoch;
            if (s->max_iters > 0)
                s->max_epochs = (s->max_iters + s->epoch_length - 1) / s->epoch_length;
        }
        if (wk_engine_fire(e, WK_EVENT_DATALOADER_STOP_ITERATION)) return -1;
        if (data->reset && data->reset(data->self)) {
            if (!wk_last_error()[0]) wk_set_error("engine: the data source failed to reset");
            return -1;
        }
        return 0;
    } else {
        s->time_data += wki_now() - t0;
        s->batch = batch;
        rc = wk_engine_fire(e, WK_EVENT_GET_BATCH_COMPLETED);
        if (!rc) {
            (*iter_in_epoch)++;
            s->iteration++;
            rc = wk_engine_fire(e, WK_EVENT_ITERATION_STARTED);
        }
        if (!rc) {
            double t1 = wki_now();
            wk_clear_error();
            wk_engine_output *out = e->process(e, batch, e->process_user);
            s->time_process += wki_now() - t1;
            if (!out) {
                if (!wk_last_error()[0]) wk_set_error("engine: the process function failed");
                rc = -1;
            } else if (out != &s->output) {
                s->output = *out;
            }
        }
        if (!rc) rc = wk_engine_fire(e, WK_EVENT_ITERATION_COMPLETED);
    }
    s->batch = NULL;
    s->output.tensor = NULL;
    wk_frame_end();
    return rc ? -1 : 1;
}

/* One epoch; 0 when it ended (or a terminate was asked), -1 on error. */
static int run_epoch(wk_engine *e, const wk_data_source *data, int64_t iter_in_epoch)
{
    wk_engine_state *s = &e->state;
    int empty_resets = 0;
    for (;;) {
        if (s->epoch_length > 0 && iter_in_epoch >= s->epoch_length) return 0;
        if (s->max_iters > 0 && s->iteration >= s->max_iters) return 0;
        int r = iterate(e, data, &iter_in_epoch);
        if (r < 0) return -1;
        if (r == 0) {
            if (++empty_resets > 1) {
                wk_set_error("engine: the data source is empty after a reset");
                return -1;
            }
            if (iter_in_epoch >= s->epoch_length) return 0;
            continue;
        }
        empty_resets = 0;
        if (e->should_terminate || e->should_terminate_epoch) return 0;
    }
}

int wk_engine_run(wk_engine *e, const wk_data_source *data, int64_t max_epochs,
                  int64_t max_iters, int64_t epoch_length)
{
    if (!e || !data || !data->next) {
        wk_set_error("engine_run: needs an engine and a data source with next()");
        return -1;
    }
    if (e->running) {
        wk_set_error("engine_run: the engine is already running");
        return -1;
    }
    if ((max_epochs > 0) == (max_iters > 0)) {
        wk_set_error("engine_run: give exactly one of max_epochs (%lld) and max_iters (%lld) "
                     "as a positive number",
                     (long long)max_epochs, (long long)max_iters);
        return -1;
    }
    wk_engine_state *s = &e->state;
    bool fresh = (s->max_epochs < 0 && s->max_iters < 0) || is_done(e);
    if (fresh) {
        s->epoch = s->iteration = 0;
        s->epoch_length = -1;
        s->time_total = s->time_epoch = s->time_data = s->time_process = 0;
        memset(s->counters, 0, sizeof s->counters);
    }
    if (epoch_length > 0) s->epoch_length = epoch_length;
    else if (s->epoch_length < 0 && data->length && data->length(data->self) > 0)
        s->epoch_length = data->length(data->self);
    s->max_epochs = max_epochs > 0 ? max_epochs : -1;
    s->max_iters = max_iters > 0 ? max_iters : -1;
    if (s->max_iters > 0 && s->epoch_length > 0)
        s->max_epochs = (s->max_iters + s->epoch_length - 1) / s->epoch_length;
    /* Continuing (after a state load or a terminate): resume inside the right epoch. */
    int64_t resume_at = 0;
    if (!fresh && s->epoch_length > 0) {
        s->epoch = s->iteration / s->epoch_length;
        resume_at = s->iteration % s->epoch_length;
    } else if (!fresh && s->epoch > 0) {
        s->epoch--;
    }
    e->should_terminate = e->should_terminate_epoch = false;
    e->running = true;
    e->last_event = -1;
    s->error[0] = '\0';
    double t0 = wki_now();
    int rc = wk_engine_fire(e, WK_EVENT_STARTED);
    while (!rc && !is_done(e) && !e->should_terminate) {
        s->epoch++;
        e->epoch_done = false;
        double te = wki_now();
        rc = wk_engine_fire(e, WK_EVENT_EPOCH_STARTED);
        if (!rc) rc = run_epoch(e, data, resume_at);
        resume_at = 0;
        s->time_epoch = wki_now() - te;
        if (rc || e->should_terminate) break;
        if (e->should_terminate_epoch) {
            e->should_terminate_epoch = false;
            rc = wk_engine_fire(e, WK_EVENT_TERMINATE_SINGLE_EPOCH);
        }
        if (!rc) rc = wk_engine_fire(e, WK_EVENT_EPOCH_COMPLETED);
        e->epoch_done = true;
    }
    if (!rc && e->should_terminate) rc = wk_engine_fire(e, WK_EVENT_TERMINATE);
    s->time_total += wki_now() - t0;
    if (!rc) rc = wk_engine_fire(e, WK_EVENT_COMPLETED);
    int result = 0;
    if (rc) result = raise_error(e) > 0 ? 0 : -1;
    e->running = false;
    return result;
}

/* ---- state ---- */

char *wk_engine_state_save(const wk_engine *e)
{
    if (!e) return NULL;
    const wk_engine_state *s = &e->state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "iteration", (double)s->iteration);
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddNumberToObject(o, "epoch_length", (double)s->epoch_length);
    cJSON_AddNumberToObject(o, "max_epochs", (double)s->max_epochs);
    cJSON_AddNumberToObject(o, "max_iters", (double)s->max_iters);
    cJSON *c = cJSON_AddObjectToObject(o, "counters");
    for (int ev = WK_EVENT_BUILTIN_COUNT; ev < e->nevents; ev++)
        if (e->has_counter[ev]) cJSON_AddNumberToObject(c, e->event_names[ev], (double)s->counters[ev]);
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    for (int i = 0; i < s->nmetrics; i++)
        cJSON_AddNumberToObject(m, s->metric_names[i], s->metric_values[i]);
    char *json = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!json) wk_set_error("engine_state_save: out of memory");
    return json;
}

static bool get_int(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < -1 ||
        v->valuedouble > 9007199254740992.0) {
        wk_set_error("engine_state_load: \"%s\" must be an integer >= -1", key);
        return false;
    }
    *out = (int64_t)v->valuedouble;
    return true;
}

int wk_engine_state_load(wk_engine *e, const char *json)
{
    if (!e || !json) {
        wk_set_error("engine_state_load: needs an engine and a JSON string");
        return -1;
    }
    cJSON *o = cJSON_Parse(json);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        wk_set_error("engine_state_load: not a JSON object");
        return -1;
    }
    wk_engine_state tmp = e->state;
    bool ok = get_int(o, "iteration", &tmp.iteration) && get_int(o, "epoch", &tmp.epoch) &&
              get_int(o, "epoch_length", &tmp.epoch_length) &&
              get_int(o, "max_epochs", &tmp.max_epochs) &&
              get_int(o, "max_iters", &tmp.max_iters);
    if (ok && tmp.iteration < 0) {
        wk_set_error("engine_state_load: \"iteration\" must be >= 0");
        ok = false;
    }
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "counters");
    for (int ev = WK_EVENT_BUILTIN_COUNT; ok && ev < e->nevents; ev++) {
        if (!e->has_counter[ev]) continue;
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, e->event_names[ev]);
        tmp.counters[ev] = cJSON_IsNumber(v) ? (int64_t)v->valuedouble : 0;
    }
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "metrics");
    tmp.nmetrics = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        if (!ok || tmp.nmetrics == WK_ENGINE_MAX_METRICS || !cJSON_IsNumber(v)) continue;
        snprintf(tmp.metric_names[tmp.nmetrics], WK_ENGINE_NAME_LEN, "%s", v->string);
        tmp.metric_values[tmp.nmetrics++] = v->valuedouble;
    }
    cJSON_Delete(o);
    if (!ok) return -1;
    e->state = tmp;
    e->epoch_done = tmp.epoch_length <= 0 || tmp.iteration % tmp.epoch_length == 0;
    return 0;
}

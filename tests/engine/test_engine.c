/* The event engine: event order and counts, filters, handler changes while firing,
 * terminate / terminate_epoch, errors, user events, state save and restore, frames. */
#include "test_util.h"

TestSuite(engine, .init = tu_setup, .fini = tu_teardown);

/* A data source of n "batches" (their 1-based numbers, passed as pointers). */
typedef struct {
    int64_t n, pos, resets;
    bool known_length;
} counter_data;

static int cd_next(void *self, const struct wk_batch **batch)
{
    counter_data *d = self;
    if (d->pos >= d->n) return 0;
    d->pos++;
    *batch = (const struct wk_batch *)(intptr_t)d->pos;
    return 1;
}
static int cd_reset(void *self)
{
    counter_data *d = self;
    d->pos = 0;
    d->resets++;
    return 0;
}
static int64_t cd_length(void *self)
{
    counter_data *d = self;
    return d->known_length ? d->n : -1;
}
static wk_data_source source(counter_data *d)
{
    return (wk_data_source){d, cd_next, cd_reset, cd_length};
}

/* The event log: one letter per event. */
static char logbuf[4096];
static int loglen;
static const char letters[] = "SEgbiIDetTC";
static int log_event(wk_engine *e, void *user)
{
    (void)e;
    if (loglen < (int)sizeof logbuf - 1) logbuf[loglen++] = letters[(intptr_t)user];
    logbuf[loglen] = '\0';
    return 0;
}
static void log_all(wk_engine *e)
{
    loglen = 0;
    logbuf[0] = '\0';
    for (int ev = 0; ev < WK_EVENT_EXCEPTION_RAISED; ev++) /* not EXCEPTION_RAISED: a taker */
        wk_engine_on(e, ev, log_event, (void *)(intptr_t)ev);
}
static int count_char(char c)
{
    int n = 0;
    for (int i = 0; i < loglen; i++) n += logbuf[i] == c;
    return n;
}

static int64_t processed;
static wk_engine_output *proc(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)user;
    processed++;
    return wk_engine_output_scalar(e, "batch", (double)(intptr_t)b);
}

Test(engine, order_and_counts_with_known_length)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    log_all(e);
    processed = 0;
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0, "%s", wk_last_error());
    /* Epoch 1 ends at the known length; epochs 2 and 3 meet the exhausted data first. */
    cr_assert_str_eq(logbuf, "SEgbiIgbiIgbiIgbiIe"
                             "EgDbiIgbiIgbiIgbiIe"
                             "EgDbiIgbiIgbiIgbiIeC");
    cr_assert_eq(processed, 12);
    wk_engine_state *s = wk_engine_get_state(e);
    cr_assert_eq(s->iteration, 12);
    cr_assert_eq(s->epoch, 3);
    cr_assert_eq(s->epoch_length, 4);
    cr_assert_eq(s->output.values[0], 4.0);
    wk_engine_free(e);
}

Test(engine, unknown_length_is_learnt)
{
    counter_data d = {.n = 4};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0, "%s", wk_last_error());
    cr_assert_str_eq(logbuf, "SEgbiIgbiIgbiIgbiIgDe" "EgbiIgbiIgbiIgbiIeC");
    cr_assert_eq(wk_engine_get_state(e)->epoch_length, 4);
    wk_engine_free(e);
}

Test(engine, epoch_length_shorter_than_data_continues_the_data)
{
    counter_data d = {.n = 5, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, 2), 0);
    cr_assert_eq(wk_engine_get_state(e)->iteration, 6);
    cr_assert_eq(wk_engine_get_state(e)->output.values[0], 1.0, "6th batch is the 1st after reset");
    cr_assert_eq(d.resets, 1);
    wk_engine_free(e);
}

static int calls[8];
static int count_call(wk_engine *e, void *user)
{
    (void)e;
    calls[(intptr_t)user]++;
    return 0;
}
static bool odd(wk_engine *e, int64_t count, void *user)
{
    (void)e, (void)user;
    return count % 2 == 1;
}

Test(engine, filters)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    memset(calls, 0, sizeof calls);
    int ev = WK_EVENT_ITERATION_COMPLETED;
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.every = 2}, count_call, (void *)0);
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.once = {3, 5}, .n_once = 2}, count_call,
                          (void *)1);
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.before = 5}, count_call, (void *)2);
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.after = 10}, count_call, (void *)3);
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.every = 2, .after = 4}, count_call,
                          (void *)4);
    wk_engine_on_filtered(e, ev, &(wk_event_filter){.predicate = odd}, count_call, (void *)5);
    wk_engine_on_filtered(e, WK_EVENT_EPOCH_COMPLETED, &(wk_event_filter){.every = 2},
                          count_call, (void *)6);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    cr_assert_eq(calls[0], 6);
    cr_assert_eq(calls[1], 2);
    cr_assert_eq(calls[2], 4);
    cr_assert_eq(calls[3], 2);
    cr_assert_eq(calls[4], 4);
    cr_assert_eq(calls[5], 6);
    cr_assert_eq(calls[6], 1);
    wk_engine_free(e);
}

static wk_handle self_handle, other_handle;
static int removes_itself(wk_engine *e, void *user)
{
    (void)user;
    calls[0]++;
    if (wk_engine_get_state(e)->iteration == 2) wk_engine_remove(self_handle);
    return 0;
}
static int removes_other(wk_engine *e, void *user)
{
    (void)user;
    if (wk_engine_get_state(e)->iteration == 3) wk_engine_remove(other_handle);
    return 0;
}
static int adds_one(wk_engine *e, void *user)
{
    (void)user;
    if (wk_engine_get_state(e)->iteration == 4)
        wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, count_call, (void *)2);
    return 0;
}

Test(engine, handlers_change_while_firing)
{
    counter_data d = {.n = 6, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    memset(calls, 0, sizeof calls);
    int ev = WK_EVENT_ITERATION_COMPLETED;
    self_handle = wk_engine_on(e, ev, removes_itself, NULL);
    wk_engine_on(e, ev, removes_other, NULL);
    other_handle = wk_engine_on(e, ev, count_call, (void *)1);
    wk_engine_on(e, ev, adds_one, NULL);
    cr_assert_eq(wk_engine_run(e, &src, 1, -1, -1), 0);
    cr_assert_eq(calls[0], 2, "removed itself at iteration 2");
    cr_assert_eq(calls[1], 2, "removed by an earlier handler at iteration 3");
    cr_assert_eq(calls[2], 2, "added at iteration 4: runs at 5 and 6");
    cr_assert_not(wk_engine_has_handler(e, ev, removes_itself, NULL));
    cr_assert(wk_engine_has_handler(e, ev, count_call, (void *)2));
    cr_assert_eq(wk_engine_remove(self_handle), -1, "a handle works once");
    wk_engine_free(e);
}

static int terminate_at(wk_engine *e, void *user)
{
    if (wk_engine_get_state(e)->iteration == (intptr_t)user) wk_engine_terminate(e);
    return 0;
}
static int terminate_epoch_at(wk_engine *e, void *user)
{
    if (wk_engine_get_state(e)->iteration == (intptr_t)user) wk_engine_terminate_epoch(e);
    return 0;
}

Test(engine, terminate_mid_epoch)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, terminate_at, (void *)6);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    cr_assert_str_eq(logbuf, "SEgbiIgbiIgbiIgbiIe" "EgDbiIgbiITC");
    cr_assert_eq(wk_engine_get_state(e)->iteration, 6);
    wk_engine_free(e);
}

Test(engine, terminate_in_epoch_completed_and_started)
{
    counter_data d = {.n = 2, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    wk_engine_on(e, WK_EVENT_EPOCH_COMPLETED, terminate_at, (void *)2);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    cr_assert_str_eq(logbuf, "SEgbiIgbiIeTC");
    wk_engine_free(e);
    e = wk_engine_new(proc, NULL);
    wk_engine_on(e, WK_EVENT_STARTED, terminate_at, (void *)0);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    cr_assert_str_eq(logbuf, "STC");
    wk_engine_free(e);
}

Test(engine, terminate_epoch)
{
    counter_data d = {.n = 3, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, terminate_epoch_at, (void *)2);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0);
    /* Epoch 1 stops after 2 iterations; epoch 2 goes on with the third batch. */
    cr_assert_str_eq(logbuf, "SEgbiIgbiIte" "EgbiIgDbiIgbiIeC");
    wk_engine_free(e);
}

Test(engine, max_iters)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, -1, 6, -1), 0);
    cr_assert_eq(wk_engine_get_state(e)->iteration, 6);
    cr_assert_eq(wk_engine_get_state(e)->max_epochs, 2);
    cr_assert_eq(count_char('e'), 2, "the partial last epoch completes");
    cr_assert_eq(count_char('T'), 0);
    wk_engine_free(e);
}

static int64_t fail_at;
static wk_engine_output *failing(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)user;
    if ((intptr_t)b == fail_at) {
        wk_set_error("loss is NaN at batch %lld", (long long)fail_at);
        return NULL;
    }
    return wk_engine_output_scalar(e, "x", 1);
}
static int failing_handler(wk_engine *e, void *user)
{
    (void)user;
    if (wk_engine_get_state(e)->epoch == 2) {
        wk_set_error("handler says no");
        return 1;
    }
    return 0;
}
static char seen_error[512];
static int take_exception(wk_engine *e, void *user)
{
    (void)user;
    snprintf(seen_error, sizeof seen_error, "%s", wk_engine_get_state(e)->error);
    return 0;
}

Test(engine, errors_without_and_with_a_taker)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    fail_at = 3;
    wk_engine *e = wk_engine_new(failing, NULL);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), -1);
    cr_assert(strstr(wk_last_error(), "loss is NaN at batch 3"), "%s", wk_last_error());
    cr_assert_eq(count_char('C'), 0, "no COMPLETED after an error");
    wk_engine_free(e);

    d.pos = 0;
    e = wk_engine_new(proc, NULL);
    wk_engine_on(e, WK_EVENT_EPOCH_STARTED, failing_handler, NULL);
    wk_engine_on(e, WK_EVENT_EXCEPTION_RAISED, take_exception, NULL);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0, "a taker handles the error");
    cr_assert_str_eq(seen_error, "handler says no");
    cr_assert_eq(wk_engine_get_state(e)->epoch, 2);
    wk_engine_free(e);
}

Test(engine, bad_arguments)
{
    counter_data d = {.n = 0, .known_length = false};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    cr_assert_eq(wk_engine_run(e, &src, 2, 5, -1), -1);
    cr_assert(strstr(wk_last_error(), "exactly one of max_epochs"));
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), -1);
    cr_assert(strstr(wk_last_error(), "produced no batch"), "%s", wk_last_error());
    wk_handle h = wk_engine_on(e, 99, count_call, NULL);
    cr_assert_null(h.engine);
    cr_assert(strstr(wk_last_error(), "unknown event 99"));
    cr_assert_null(wk_engine_new(NULL, NULL));
    wk_engine_free(e);
}

Test(engine, user_events_with_counters)
{
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    int first = wk_engine_register_events(e, (const char *[]){"BACKWARD", "OPTIM"}, 2, true);
    cr_assert_eq(first, WK_EVENT_BUILTIN_COUNT);
    cr_assert_str_eq(wk_engine_event_name(e, first + 1), "OPTIM");
    memset(calls, 0, sizeof calls);
    wk_engine_on_filtered(e, first, &(wk_event_filter){.every = 3}, count_call, (void *)0);
    for (int i = 0; i < 7; i++) wk_engine_fire(e, first);
    cr_assert_eq(wk_engine_get_state(e)->counters[first], 7);
    cr_assert_eq(calls[0], 2);
    cr_assert_eq(wk_engine_run(e, &src, 1, -1, -1), 0);
    wk_engine_free(e);
}

Test(engine, any_of_registration)
{
    counter_data d = {.n = 2, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    memset(calls, 0, sizeof calls);
    int evs[] = {WK_EVENT_EPOCH_STARTED, WK_EVENT_EPOCH_COMPLETED};
    wk_handle h = wk_engine_on_any(e, evs, 2, NULL, count_call, (void *)0);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    cr_assert_eq(calls[0], 6);
    cr_assert_eq(wk_engine_remove(h), 0);
    cr_assert_not(wk_engine_has_handler(e, WK_EVENT_EPOCH_STARTED, count_call, NULL));
    cr_assert_not(wk_engine_has_handler(e, WK_EVENT_EPOCH_COMPLETED, count_call, NULL));
    wk_engine_free(e);
}

Test(engine, state_save_and_resume_mid_epoch)
{
    /* Uninterrupted: 3 epochs of 4. */
    counter_data d = {.n = 4, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(proc, NULL);
    log_all(e);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    char full[4096];
    snprintf(full, sizeof full, "%s", logbuf);
    wk_engine_free(e);

    /* Stopped after iteration 6, state saved, a new engine resumes at iteration 7. */
    d.pos = 0;
    e = wk_engine_new(proc, NULL);
    wk_engine_set_metric(e, "val/accuracy", 91.5);
    wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, terminate_at, (void *)6);
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0);
    char *json = wk_engine_state_save(e);
    cr_assert_not_null(json);
    wk_engine_free(e);

    e = wk_engine_new(proc, NULL);
    cr_assert_eq(wk_engine_state_load(e, json), 0, "%s", wk_last_error());
    free(json);
    cr_assert_eq(wk_engine_get_metric(e, "val/accuracy"), 91.5);
    log_all(e);
    processed = 0;
    cr_assert_eq(wk_engine_run(e, &src, 3, -1, -1), 0, "%s", wk_last_error());
    cr_assert_eq(processed, 6);
    wk_engine_state *s = wk_engine_get_state(e);
    cr_assert_eq(s->iteration, 12);
    cr_assert_eq(s->epoch, 3);
    /* The resumed run fires epoch 2's start again, then finishes as the full run did. */
    cr_assert_str_eq(logbuf, "SEgbiIgbiIe" "EgDbiIgbiIgbiIgbiIeC");
    cr_assert(strstr(full, "gbiIgbiIe" "EgDbiIgbiIgbiIgbiIeC"));
    wk_engine_free(e);

    e = wk_engine_new(proc, NULL);
    cr_assert_eq(wk_engine_state_load(e, "{\"iteration\": -5}"), -1);
    cr_assert_eq(wk_engine_state_load(e, "not json"), -1);
    cr_assert(strstr(wk_last_error(), "not a JSON object"));
    cr_assert_eq(wk_engine_state_load(e, "{\"iteration\": 1.5, \"epoch\": 0}"), -1);
    cr_assert(strstr(wk_last_error(), "\"iteration\" must be an integer"));
    wk_engine_free(e);
}

static int frame_depth_in_process;
static wk_engine_output *make_tensors(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    frame_depth_in_process = wk_frame_depth();
    wk_tensor *t = wk_ones(WK_SHAPE(1000), WK_DTYPE_F32);
    return wk_engine_output_tensor(e, wk_sum(t, WK_ALL_DIMS, false));
}

Test(engine, iterations_run_in_frames)
{
    counter_data d = {.n = 3, .known_length = true};
    wk_data_source src = source(&d);
    wk_engine *e = wk_engine_new(make_tensors, NULL);
    int outer = wk_frame_depth();
    cr_assert_eq(wk_engine_run(e, &src, 1, -1, -1), 0);
    wk_alloc_stats a = wk_alloc_get_stats();
    cr_assert_eq(wk_engine_run(e, &src, 4, -1, -1), 0);
    wk_alloc_stats b = wk_alloc_get_stats();
    cr_assert_eq(frame_depth_in_process, outer + 1);
    cr_assert_eq(a.bytes_in_use, b.bytes_in_use, "iteration tensors released");
    cr_assert_eq(a.malloc_calls, b.malloc_calls, "no malloc in steady iterations");
    cr_assert_null(wk_engine_get_state(e)->output.tensor);
    wk_engine_free(e);
}

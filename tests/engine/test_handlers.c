/* Ready-made handlers: TerminateOnNan, Timer, ProgressBar. */
#include <time.h>

#include "test_util.h"

TestSuite(handlers, .init = tu_setup, .fini = tu_teardown);

static int64_t pos, n = 10;
static int next(void *self, const struct wk_batch **b)
{
    (void)self;
    *b = NULL;
    return pos++ < n ? 1 : 0;
}
static int reset(void *self)
{
    (void)self;
    pos = 0;
    return 0;
}
static int64_t length(void *self)
{
    (void)self;
    return n;
}

static wk_engine_output *nan_at_3(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    double loss = wk_engine_get_state(e)->iteration == 3 ? NAN : 0.25;
    return wk_engine_output_scalar(e, "loss", loss);
}

static wk_engine_output *tensor_inf_at_2(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    double v = wk_engine_get_state(e)->iteration == 2 ? INFINITY : 1;
    return wk_engine_output_tensor(e, wk_full(NULL, 0, v, WK_DTYPE_F32));
}

Test(handlers, terminate_on_nan)
{
    wk_data_source src = {NULL, next, reset, length};
    pos = 0;
    wk_engine *e = wk_engine_new(nan_at_3, NULL);
    cr_assert_not_null(wk_terminate_on_nan_attach(e).engine);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0);
    wk_engine_state *s = wk_engine_get_state(e);
    cr_assert_eq(s->iteration, 3);
    cr_assert(strstr(s->error, "loss is nan at iteration 3"), "%s", s->error);
    wk_engine_free(e);

    pos = 0;
    e = wk_engine_new(tensor_inf_at_2, NULL);
    wk_terminate_on_nan_attach(e);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0);
    cr_assert_eq(wk_engine_get_state(e)->iteration, 2);
    cr_assert(strstr(wk_engine_get_state(e)->error, "output is inf"));
    wk_engine_free(e);
}

static wk_engine_output *busy(wk_engine *e, const struct wk_batch *b, void *user)
{
    (void)b, (void)user;
    struct timespec ts = {0, 2000000};
    nanosleep(&ts, NULL);
    return wk_engine_output_scalar(e, "loss", 1.0 / (double)wk_engine_get_state(e)->iteration);
}

Test(handlers, timer_averages_iterations)
{
    wk_data_source src = {NULL, next, reset, length};
    pos = 0;
    wk_engine *e = wk_engine_new(busy, NULL);
    wk_timer *t = wk_timer_attach(e);
    cr_assert_eq(wk_engine_run(e, &src, 1, -1, -1), 0);
    cr_assert_eq(wk_timer_count(t), 10);
    cr_assert_geq(wk_timer_value(t), 0.002);
    cr_assert_lt(wk_timer_value(t), 1.0);
    wk_timer_free(t);
    cr_assert_not(wk_engine_has_handler(e, WK_EVENT_ITERATION_STARTED, NULL, NULL));
    wk_engine_free(e);
}

Test(handlers, progress_bar_lines_when_not_a_terminal)
{
    wk_data_source src = {NULL, next, reset, length};
    pos = 0;
    FILE *f = tmpfile();
    wk_engine *e = wk_engine_new(busy, NULL);
    wk_progress_bar *pb = wk_progress_bar_attach(e, f, 4);
    cr_assert_eq(wk_engine_run(e, &src, 2, -1, -1), 0);
    wk_progress_bar_free(pb);
    wk_engine_free(e);
    rewind(f);
    char line[256];
    int lines = 0;
    char first[256] = "", last[256] = "";
    while (fgets(line, sizeof line, f)) {
        if (!lines) snprintf(first, sizeof first, "%s", line);
        snprintf(last, sizeof last, "%s", line);
        lines++;
    }
    fclose(f);
    /* Iterations 4 and 8 of epoch 1, 12 and 16 of epoch 2 (4, 8 in it), each epoch's end. */
    cr_assert_eq(lines, 6, "%d lines", lines);
    cr_assert(strstr(first, "Epoch [1/2] [4/10]"), "%s", first);
    cr_assert(strstr(first, "loss: 0.2500"), "%s", first);
    cr_assert(strstr(last, "Epoch [2/2] [10/10]"), "%s", last);
    cr_assert(strstr(last, "it/s eta 0:00:00"), "%s", last);
}

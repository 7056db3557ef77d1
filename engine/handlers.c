/* TerminateOnNan, Timer and ProgressBar. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../tensor/tensor-impl.h"
#include "handlers.h"

/* ---- TerminateOnNan ---- */

static int check_nan(wk_engine *e, void *user)
{
    (void)user;
    wk_engine_state *s = wk_engine_get_state(e);
    const char *bad = NULL;
    double v = 0;
    for (int i = 0; i < s->output.count && !bad; i++) {
        if (!isfinite(s->output.values[i])) {
            bad = s->output.names[i];
            v = s->output.values[i];
        }
    }
    if (!bad && s->output.tensor && wk_numel(s->output.tensor) == 1) {
        v = wk_item(s->output.tensor);
        if (!isfinite(v)) bad = "output";
    }
    if (bad) {
        snprintf(s->error, sizeof s->error, "%s is %g at iteration %lld: terminating", bad, v,
                 (long long)s->iteration);
        wk_engine_terminate(e);
    }
    return 0;
}

wk_handle wk_terminate_on_nan_attach(wk_engine *e)
{
    return wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, check_nan, NULL);
}

/* ---- Timer ---- */

struct wk_timer {
    double start, total;
    int64_t count;
    wk_handle h_start, h_stop;
};

static int timer_start(wk_engine *e, void *user)
{
    (void)e;
    ((wk_timer *)user)->start = wki_now();
    return 0;
}

static int timer_stop(wk_engine *e, void *user)
{
    (void)e;
    wk_timer *t = user;
    t->total += wki_now() - t->start;
    t->count++;
    return 0;
}

wk_timer *wk_timer_attach(wk_engine *e)
{
    wk_timer *t = calloc(1, sizeof *t);
    if (!t) {
        wk_set_error("timer_attach: out of memory");
        return NULL;
    }
    t->h_start = wk_engine_on(e, WK_EVENT_ITERATION_STARTED, timer_start, t);
    t->h_stop = wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, timer_stop, t);
    if (!t->h_start.engine || !t->h_stop.engine) {
        wk_timer_free(t);
        return NULL;
    }
    return t;
}

double wk_timer_value(const wk_timer *t) { return t && t->count ? t->total / (double)t->count : 0; }
int64_t wk_timer_count(const wk_timer *t) { return t ? t->count : 0; }

void wk_timer_free(wk_timer *t)
{
    if (!t) return;
    if (t->h_start.engine) wk_engine_remove(t->h_start);
    if (t->h_stop.engine) wk_engine_remove(t->h_stop);
    free(t);
}

/* ---- ProgressBar ---- */

struct wk_progress_bar {
    FILE *out;
    int64_t every;
    bool tty;
    double epoch_start, last_draw;
    int64_t epoch_first_iter;
    wk_handle h_epoch, h_iter, h_end;
};

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) s = 0;
    long t = (long)(s + 0.5);
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
}

static void draw(wk_progress_bar *pb, wk_engine *e, bool final)
{
    wk_engine_state *s = wk_engine_get_state(e);
    int64_t L = s->epoch_length;
    int64_t i = L > 0 ? (s->iteration - 1) % L + 1 : s->iteration - pb->epoch_first_iter;
    double el = wki_now() - pb->epoch_start;
    int64_t done = s->iteration - pb->epoch_first_iter;
    double rate = el > 0 ? (double)done / el : 0;
    char eta[32] = "?";
    if (L > 0 && rate > 0) fmt_eta((double)(L - i) / rate, eta, sizeof eta);
    char epochs[32];
    if (s->max_epochs > 0) snprintf(epochs, sizeof epochs, "%lld/%lld", (long long)s->epoch,
                                    (long long)s->max_epochs);
    else snprintf(epochs, sizeof epochs, "%lld", (long long)s->epoch);
    char total[32] = "?";
    if (L > 0) snprintf(total, sizeof total, "%lld", (long long)L);
    char loss[80] = "";
    if (s->output.count) snprintf(loss, sizeof loss, " %s: %.4f", s->output.names[0], s->output.values[0]);
    fprintf(pb->out, "%sEpoch [%s] [%lld/%s] %.1f it/s eta %s%s%s", pb->tty ? "\r\033[K" : "",
            epochs, (long long)i, total, rate, eta, loss, pb->tty && !final ? "" : "\n");
    fflush(pb->out);
}

static int pb_epoch(wk_engine *e, void *user)
{
    wk_progress_bar *pb = user;
    pb->epoch_start = wki_now();
    pb->epoch_first_iter = wk_engine_get_state(e)->iteration;
    return 0;
}

static int pb_iter(wk_engine *e, void *user)
{
    wk_progress_bar *pb = user;
    int64_t it = wk_engine_get_state(e)->iteration;
    if (pb->tty) {
        double t = wki_now();
        if (t - pb->last_draw < 0.1) return 0;
        pb->last_draw = t;
        draw(pb, e, false);
    } else if (pb->every > 0 && it % pb->every == 0) {
        int64_t L = wk_engine_get_state(e)->epoch_length;
        if (L > 0 && it % L == 0) return 0; /* the epoch's end prints this one */
        draw(pb, e, false);
    }
    return 0;
}

static int pb_end(wk_engine *e, void *user)
{
    draw(user, e, true);
    return 0;
}

wk_progress_bar *wk_progress_bar_attach(wk_engine *e, FILE *out, int64_t every)
{
    wk_progress_bar *pb = calloc(1, sizeof *pb);
    if (!pb) {
        wk_set_error("progress_bar_attach: out of memory");
        return NULL;
    }
    pb->out = out ? out : stderr;
    pb->every = every;
    pb->tty = isatty(fileno(pb->out));
    pb->h_epoch = wk_engine_on(e, WK_EVENT_EPOCH_STARTED, pb_epoch, pb);
    pb->h_iter = wk_engine_on(e, WK_EVENT_ITERATION_COMPLETED, pb_iter, pb);
    pb->h_end = wk_engine_on(e, WK_EVENT_EPOCH_COMPLETED, pb_end, pb);
    if (!pb->h_epoch.engine || !pb->h_iter.engine || !pb->h_end.engine) {
        wk_progress_bar_free(pb);
        return NULL;
    }
    return pb;
}

void wk_progress_bar_free(wk_progress_bar *pb)
{
    if (!pb) return;
    if (pb->h_epoch.engine) wk_engine_remove(pb->h_epoch);
    if (pb->h_iter.engine) wk_engine_remove(pb->h_iter);
    if (pb->h_end.engine) wk_engine_remove(pb->h_end);
    free(pb);
}

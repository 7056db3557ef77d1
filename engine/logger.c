/* Training logs: MMEngine's text lines, scalars.jsonl, TensorBoard, a terminal progress bar. */
#include "logger.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tensor/tensor.h"
#include "tensorboard.h"

static const char *const ckpt_names[] = {"regular", "best", "last"};
_Static_assert(sizeof ckpt_names / sizeof ckpt_names[0] == WK_LOG_CKPT_COUNT,
               "one name per checkpoint kind");
static const char *const end_names[] = {"max_steps", "max_epochs", "early_stop", "signal",
                                        "nan",       "requested",  "error"};
_Static_assert(sizeof end_names / sizeof end_names[0] == WK_LOG_END_COUNT,
               "one name per end reason");

const char *wk_log_ckpt_kind_name(wk_log_ckpt_kind kind)
{
    return (unsigned)kind < WK_LOG_CKPT_COUNT ? ckpt_names[kind] : "?";
}

const char *wk_log_end_reason_name(wk_log_end_reason reason)
{
    return (unsigned)reason < WK_LOG_END_COUNT ? end_names[reason] : "?";
}

/* ---- pure formatting ---- */

/* snprintf into a fixed buffer that keeps counting past its end, so callers learn the
 * size they need. */
typedef struct {
    char *p;
    size_t cap;
    size_t len;
} sbuf;

__attribute__((format(printf, 2, 3))) static void sb_printf(sbuf *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = s->len < s->cap ? s->cap - s->len : 0;
    int k = vsnprintf(room ? s->p + s->len : NULL, room, fmt, ap);
    va_end(ap);
    if (k > 0) s->len += (size_t)k;
}

double wk_log_eta(double elapsed_s, int64_t steps_done, int64_t steps_left)
{
    if (steps_done <= 0) return NAN;
    if (steps_left <= 0) return 0;
    return elapsed_s / (double)steps_done * (double)steps_left;
}

int wk_log_format_eta(char *buf, size_t n, double seconds)
{
    /* int() of the seconds, as MMEngine does before str(timedelta(...)) */
    long long t = isfinite(seconds) && seconds > 0 ? (long long)seconds : 0;
    long long d = t / 86400, h = t / 3600 % 24, m = t / 60 % 60, s = t % 60;
    if (d > 0)
        return snprintf(buf, n, "%lld day%s, %lld:%02lld:%02lld", d, d == 1 ? "" : "s", h, m,
                        s);
    return snprintf(buf, n, "%lld:%02lld:%02lld", h, m, s);
}

static void train_head(sbuf *s, wk_log_mode mode, const wk_log_train *r)
{
    if (mode == WK_LOG_MODE_STEP) {
        if (r->max_steps > 0)
            sb_printf(s, "Iter(train) [%lld/%lld]", (long long)r->global_step,
                      (long long)r->max_steps);
        else
            sb_printf(s, "Iter(train) [%lld]", (long long)r->global_step);
    } else if (r->epoch_length > 0) {
        sb_printf(s, "Epoch(train) [%lld][%lld/%lld]", (long long)r->epoch,
                  (long long)r->iter_in_epoch, (long long)r->epoch_length);
    } else {
        sb_printf(s, "Epoch(train) [%lld][%lld]", (long long)r->epoch,
                  (long long)r->iter_in_epoch);
    }
}

static int check_train(const char *fn, const wk_log_train *r)
{
    if (!r) {
        wk_set_error("%s: record is NULL", fn);
        return -1;
    }
    if (r->n_extra < 0 || r->n_extra > WK_LOG_MAX_EXTRA) {
        wk_set_error("%s: n_extra = %d, expected 0..%d", fn, r->n_extra, WK_LOG_MAX_EXTRA);
        return -1;
    }
    for (int i = 0; i < r->n_extra; i++) {
        if (!r->extra_names[i] || !r->extra_names[i][0]) {
            wk_set_error("%s: extra_names[%d] is NULL or empty", fn, i);
            return -1;
        }
    }
    return 0;
}

int wk_log_format_train(char *buf, size_t n, wk_log_mode mode, const wk_log_train *r)
{
    if (check_train("log_format_train", r)) return -1;
    sbuf s = {buf, n, 0};
    if (n) buf[0] = '\0';
    train_head(&s, mode, r);
    if (!isnan(r->lr)) sb_printf(&s, "  lr: %.4e", r->lr);
    if (isfinite(r->eta_s) && r->eta_s >= 0) {
        char eta[48];
        wk_log_format_eta(eta, sizeof eta, r->eta_s);
        sb_printf(&s, "  eta: %s", eta);
    }
    if (!isnan(r->time_s)) sb_printf(&s, "  time: %.4f", r->time_s);
    if (!isnan(r->data_time_s)) sb_printf(&s, "  data_time: %.4f", r->data_time_s);
    if (!isnan(r->memory_mb)) sb_printf(&s, "  memory: %.0f", r->memory_mb);
    if (!isnan(r->grad_norm)) sb_printf(&s, "  grad_norm: %.4f", r->grad_norm);
    sb_printf(&s, "  loss: %.4f", r->loss);
    for (int i = 0; i < r->n_extra; i++)
        sb_printf(&s, "  %s: %.4f", r->extra_names[i], r->extra_values[i]);
    return (int)s.len;
}

/* A metric name's stage ("val" for "val/accuracy"; "val" for a bare name) and the rest. */
static void split_stage(const char *name, const char **stage, int *stage_len,
                        const char **metric)
{
    const char *slash = strchr(name, '/');
    if (slash) {
        *stage = name;
        *stage_len = (int)(slash - name);
        *metric = slash + 1;
    } else {
        *stage = "val";
        *stage_len = 3;
        *metric = name;
    }
}

static bool same_stage(const char *a, const char *b)
{
    const char *sa, *sb, *ma, *mb;
    int la, lb;
    split_stage(a, &sa, &la, &ma);
    split_stage(b, &sb, &lb, &mb);
    return la == lb && memcmp(sa, sb, (size_t)la) == 0;
}

static int check_eval(const char *fn, const wk_log_eval *e)
{
    if (!e) {
        wk_set_error("%s: record is NULL", fn);
        return -1;
    }
    if (e->n < 0 || (e->n > 0 && (!e->names || !e->values))) {
        wk_set_error("%s: expected n >= 0 names and values (n = %d)", fn, e->n);
        return -1;
    }
    for (int i = 0; i < e->n; i++) {
        if (!e->names[i] || !e->names[i][0]) {
            wk_set_error("%s: names[%d] is NULL or empty", fn, i);
            return -1;
        }
    }
    return 0;
}

int wk_log_format_eval(char *buf, size_t n, wk_log_mode mode, const wk_log_eval *e)
{
    if (check_eval("log_format_eval", e)) return -1;
    sbuf s = {buf, n, 0};
    if (n) buf[0] = '\0';
    for (int i = 0; i < e->n; i++) {
        bool first = true;
        for (int j = 0; j < i && first; j++) first = !same_stage(e->names[j], e->names[i]);
        if (!first) continue;
        const char *stage, *metric;
        int sl;
        split_stage(e->names[i], &stage, &sl, &metric);
        if (s.len) sb_printf(&s, "\n");
        int64_t it = e->iters ? e->iters[i] : 0;
        if (mode == WK_LOG_MODE_STEP) {
            if (e->max_steps > 0)
                sb_printf(&s, "Iter(%.*s) [%lld/%lld]", sl, stage, (long long)e->global_step,
                          (long long)e->max_steps);
            else
                sb_printf(&s, "Iter(%.*s) [%lld]", sl, stage, (long long)e->global_step);
        } else if (it > 0) {
            sb_printf(&s, "Epoch(%.*s) [%lld][%lld/%lld]", sl, stage, (long long)e->epoch,
                      (long long)it, (long long)it);
        } else {
            sb_printf(&s, "Epoch(%.*s) [%lld]", sl, stage, (long long)e->epoch);
        }
        for (int k = i; k < e->n; k++) {
            if (!same_stage(e->names[k], e->names[i])) continue;
            split_stage(e->names[k], &stage, &sl, &metric);
            sb_printf(&s, "  %s: %.4f", metric, e->values[k]);
        }
    }
    return (int)s.len;
}

/* ---- the logger ---- */

struct wk_logger {
    wk_log_mode mode;
    FILE *console; /* NULL: nothing on the console */
    bool tty;
    bool bar, bar_shown;
    double bar_last;
    int rank;
    bool tag_rank;
    double (*clock)(void *);
    void *clock_user;
    char *run_dir;
    char *log_path, *jsonl_path;
    FILE *log, *jsonl;
    wk_tb_writer *tb;
};

static double now(const wk_logger *lg)
{
    return lg->clock ? lg->clock(lg->clock_user) : wk_wall_time();
}

static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    if (!p) {
        wk_set_error("logger_open: out of memory");
        return -1;
    }
    int rc = 0;
    for (char *c = p + 1;; c++) {
        if (*c != '/' && *c != '\0') continue;
        char saved = *c;
        *c = '\0';
        if (mkdir(p, 0777) != 0 && errno != EEXIST) {
            wk_set_error("logger_open: cannot create folder '%s': %s", p, strerror(errno));
            rc = -1;
            break;
        }
        *c = saved;
        if (!saved) break;
    }
    if (rc == 0) {
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
            wk_set_error("logger_open: work_dir '%s' is not a folder", path);
            rc = -1;
        }
    }
    free(p);
    return rc;
}

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s/%s", a, b);
    return s;
}

static FILE *create(const char *path)
{
    FILE *f = fopen(path, "w");
    if (!f) wk_set_error("logger_open: cannot create '%s': %s", path, strerror(errno));
    return f;
}

/* work_dir/<YYYYMMDD_HHMMSS>[_k]: mkdir's EEXIST decides, so two runs started in the
 * same second (or two processes) never share a folder. */
static char *make_run_dir(const char *work_dir, double t)
{
    time_t secs = (time_t)floor(t);
    struct tm tm;
    localtime_r(&secs, &tm);
    char stamp[32];
    strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", &tm);
    size_t n = strlen(work_dir) + sizeof stamp + 24;
    char *dir = malloc(n);
    if (!dir) {
        wk_set_error("logger_open: out of memory");
        return NULL;
    }
    for (int k = 0; k < 10000; k++) {
        if (k == 0) snprintf(dir, n, "%s/%s", work_dir, stamp);
        else snprintf(dir, n, "%s/%s_%d", work_dir, stamp, k);
        if (mkdir(dir, 0777) == 0) return dir;
        if (errno != EEXIST) {
            wk_set_error("logger_open: cannot create run folder '%s': %s", dir,
                         strerror(errno));
            free(dir);
            return NULL;
        }
    }
    wk_set_error("logger_open: every run folder name '%s/%s_*' is taken", work_dir, stamp);
    free(dir);
    return NULL;
}

wk_logger *wk_logger_open(const wk_logger_opts *opts)
{
    wk_logger_opts o = opts ? *opts : (wk_logger_opts){0};
    if (o.mode != WK_LOG_MODE_EPOCH && o.mode != WK_LOG_MODE_STEP) {
        wk_set_error("logger_open: mode %d is not WK_LOG_MODE_EPOCH or WK_LOG_MODE_STEP",
                     (int)o.mode);
        return NULL;
    }
    wk_logger *lg = calloc(1, sizeof *lg);
    if (!lg) {
        wk_set_error("logger_open: out of memory");
        return NULL;
    }
    lg->mode = o.mode;
    lg->rank = o.rank;
    lg->clock = o.clock;
    lg->clock_user = o.clock_user;
    lg->bar_last = -INFINITY;
    if (!o.quiet && (o.rank == 0 || o.all_ranks)) {
        lg->console = o.console ? o.console : stdout;
        lg->tty = isatty(fileno(lg->console));
        lg->tag_rank = o.rank != 0;
        /* one bar per terminal: other ranks would draw over rank 0's */
        lg->bar = o.rank == 0 && (o.progress == WK_LOG_PROGRESS_ON ||
                                  (o.progress == WK_LOG_PROGRESS_AUTO && lg->tty));
    }
    if (o.work_dir && o.rank == 0) {
        double t = now(lg);
        if (mkdir_p(o.work_dir) || !(lg->run_dir = make_run_dir(o.work_dir, t))) goto fail;
        lg->log_path = join(lg->run_dir, "run.log");
        lg->jsonl_path = join(lg->run_dir, "scalars.jsonl");
        if (!lg->log_path || !lg->jsonl_path) {
            wk_set_error("logger_open: out of memory");
            goto fail;
        }
        if (!(lg->log = create(lg->log_path)) || !(lg->jsonl = create(lg->jsonl_path)))
            goto fail;
        if (o.tensorboard) {
            char *tb = join(lg->run_dir, "tb");
            if (!tb) {
                wk_set_error("logger_open: out of memory");
                goto fail;
            }
            lg->tb = wk_tb_writer_open_dir(tb, t);
            free(tb);
            if (!lg->tb) goto fail;
        }
    }
    return lg;
fail:
    wk_logger_close(lg);
    return NULL;
}

static void clear_bar(wk_logger *lg)
{
    if (lg->console && lg->bar_shown) {
        fputs("\r\033[K", lg->console);
        lg->bar_shown = false;
    }
}

void wk_logger_close(wk_logger *lg)
{
    if (!lg) return;
    clear_bar(lg);
    if (lg->console) fflush(lg->console);
    if (lg->log) fclose(lg->log);
    if (lg->jsonl) fclose(lg->jsonl);
    wk_tb_writer_close(lg->tb);
    free(lg->log_path);
    free(lg->jsonl_path);
    free(lg->run_dir);
    free(lg);
}

const char *wk_logger_run_dir(const wk_logger *lg) { return lg ? lg->run_dir : NULL; }

/* Each line of text, prefixed as MMEngine's formatters do: "%Y/%m/%d %H:%M:%S - wick -
 * LEVEL - " in run.log, the shorter "%m/%d %H:%M:%S" stamp on the console. */
static int emit(wk_logger *lg, const char *level, const char *text)
{
    if (!lg->console && !lg->log) return 0;
    time_t secs = (time_t)floor(now(lg));
    struct tm tm;
    localtime_r(&secs, &tm);
    char fstamp[32], cstamp[32], rank[32] = "";
    strftime(fstamp, sizeof fstamp, "%Y/%m/%d %H:%M:%S", &tm);
    strftime(cstamp, sizeof cstamp, "%m/%d %H:%M:%S", &tm);
    if (lg->tag_rank) snprintf(rank, sizeof rank, "[rank %d] ", lg->rank);
    const char *color = "", *reset = "";
    if (lg->tty && strcmp(level, "INFO") != 0) {
        color = strcmp(level, "ERROR") == 0 ? "\033[31m" : "\033[33m";
        reset = "\033[0m";
    }
    clear_bar(lg);
    for (const char *line = text;;) {
        const char *end = strchr(line, '\n');
        int len = end ? (int)(end - line) : (int)strlen(line);
        if (lg->console)
            fprintf(lg->console, "%s - wick - %s%s%s - %s%.*s\n", cstamp, color, level, reset,
                    rank, len, line);
        if (lg->log) fprintf(lg->log, "%s - wick - %s - %.*s\n", fstamp, level, len, line);
        if (!end) break;
        line = end + 1;
    }
    if (lg->console) fflush(lg->console);
    if (lg->log && (fflush(lg->log) != 0 || ferror(lg->log))) {
        wk_set_error("logger: cannot write '%s': %s", lg->log_path, strerror(errno));
        clearerr(lg->log);
        return -1;
    }
    return 0;
}

static int vlog(wk_logger *lg, const char *level, const char *fmt, va_list ap)
{
    char *msg = NULL;
    if (vasprintf(&msg, fmt, ap) < 0) {
        wk_set_error("logger: out of memory formatting a message");
        return -1;
    }
    int rc = emit(lg, level, msg);
    free(msg);
    return rc;
}

#define DEFINE_LEVEL(fn, level)                                                          \
    int fn(wk_logger *lg, const char *fmt, ...)                                          \
    {                                                                                    \
        if (!lg) return 0;                                                               \
        va_list ap;                                                                      \
        va_start(ap, fmt);                                                               \
        int rc = vlog(lg, level, fmt, ap);                                               \
        va_end(ap);                                                                      \
        return rc;                                                                       \
    }
DEFINE_LEVEL(wk_logger_info, "INFO")
DEFINE_LEVEL(wk_logger_warn, "WARNING")
DEFINE_LEVEL(wk_logger_error, "ERROR")

/* One JSON object per line, flushed, so a killed run keeps every record it wrote. */
static int write_record(wk_logger *lg, cJSON *obj)
{
    if (!lg->jsonl) {
        cJSON_Delete(obj);
        return 0;
    }
    char *s = obj ? cJSON_PrintUnformatted(obj) : NULL;
    cJSON_Delete(obj);
    if (!s) {
        wk_set_error("logger: out of memory building a scalars.jsonl record");
        return -1;
    }
    /* the newline takes the NUL's byte, so a record and its newline are one fwrite */
    size_t n = strlen(s);
    s[n] = '\n';
    size_t w = fwrite(s, 1, n + 1, lg->jsonl);
    free(s);
    if (w != n + 1 || fflush(lg->jsonl) != 0) {
        wk_set_error("logger: cannot write '%s': %s", lg->jsonl_path, strerror(errno));
        clearerr(lg->jsonl);
        return -1;
    }
    return 0;
}

static cJSON *record(const char *event, int64_t step, int64_t epoch)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    bool ok = cJSON_AddStringToObject(o, "event", event) &&
              cJSON_AddNumberToObject(o, "step", (double)step) &&
              cJSON_AddNumberToObject(o, "epoch", (double)epoch);
    if (!ok) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

/* Adds to the JSON record and to the TensorBoard list at once; a failed add empties the
 * record (write_record then reports out of memory). */
typedef struct {
    cJSON *obj;
    int n;
    const char *tags[8 + WK_LOG_MAX_EXTRA];
    double values[8 + WK_LOG_MAX_EXTRA];
} scalars;

static void add(scalars *s, const char *name, double v)
{
    if (!s->obj) return;
    if (!cJSON_AddNumberToObject(s->obj, name, v)) {
        cJSON_Delete(s->obj);
        s->obj = NULL;
        return;
    }
    s->tags[s->n] = name;
    s->values[s->n++] = v;
}

static int tb_write(wk_logger *lg, int64_t step, const char *const *tags, const double *values,
                    int n)
{
    if (!lg->tb || n == 0) return 0;
    return wk_tb_writer_add_scalars(lg->tb, step, now(lg), tags, values, n);
}

/* The line, formatted into a stack buffer when it fits. */
static int emit_formatted(wk_logger *lg, int (*fmt)(char *, size_t, wk_log_mode, const void *),
                          const void *r)
{
    char small[1024];
    int len = fmt(small, sizeof small, lg->mode, r);
    if (len < 0) return -1;
    if (len == 0) return 0;
    if ((size_t)len < sizeof small) return emit(lg, "INFO", small);
    char *big = malloc((size_t)len + 1);
    if (!big) {
        wk_set_error("logger: out of memory formatting a line");
        return -1;
    }
    fmt(big, (size_t)len + 1, lg->mode, r);
    int rc = emit(lg, "INFO", big);
    free(big);
    return rc;
}

static int fmt_train(char *b, size_t n, wk_log_mode m, const void *r)
{
    return wk_log_format_train(b, n, m, r);
}

static int fmt_eval(char *b, size_t n, wk_log_mode m, const void *e)
{
    return wk_log_format_eval(b, n, m, e);
}

int wk_logger_train(wk_logger *lg, const wk_log_train *r)
{
    if (!lg) return 0;
    if (check_train("logger_train", r)) return -1;
    int rc = emit_formatted(lg, fmt_train, r);
    if (!lg->jsonl && !lg->tb) return rc;
    char *full[WK_LOG_MAX_EXTRA] = {0};
    scalars s = {.obj = record("train", r->global_step, r->epoch)};
    if (s.obj && !cJSON_AddNumberToObject(s.obj, "iter", (double)r->iter_in_epoch)) {
        cJSON_Delete(s.obj);
        s.obj = NULL;
    }
    if (!isnan(r->lr)) add(&s, "lr", r->lr);
    add(&s, "train/loss", r->loss);
    for (int i = 0; i < r->n_extra; i++) {
        const char *name = r->extra_names[i];
        if (!strchr(name, '/') && asprintf(&full[i], "train/%s", name) < 0) {
            full[i] = NULL;
            cJSON_Delete(s.obj);
            s.obj = NULL;
        }
        add(&s, full[i] ? full[i] : name, r->extra_values[i]);
    }
    if (!isnan(r->grad_norm)) add(&s, "grad_norm", r->grad_norm);
    if (!isnan(r->time_s)) add(&s, "time", r->time_s);
    if (!isnan(r->data_time_s)) add(&s, "data_time", r->data_time_s);
    if (!isnan(r->memory_mb)) add(&s, "memory", r->memory_mb);
    int n = s.obj ? s.n : 0;
    if (write_record(lg, s.obj)) rc = -1;
    if (tb_write(lg, r->global_step, s.tags, s.values, n)) rc = -1;
    for (int i = 0; i < r->n_extra; i++) free(full[i]);
    return rc;
}

static int term_width(const wk_logger *lg)
{
    struct winsize ws;
    if (lg->tty && ioctl(fileno(lg->console), TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 120;
}

int wk_logger_progress(wk_logger *lg, const wk_log_train *r)
{
    if (!lg || !lg->bar || !r) return 0;
    double t = now(lg);
    /* a clock that went back (NTP) redraws instead of freezing the bar */
    if (t >= lg->bar_last && t - lg->bar_last < 0.1) return 0;
    lg->bar_last = t;
    char line[512];
    sbuf s = {line, sizeof line, 0};
    train_head(&s, lg->mode, r);
    double frac = -1;
    if (lg->mode == WK_LOG_MODE_STEP && r->max_steps > 0)
        frac = (double)r->global_step / (double)r->max_steps;
    else if (lg->mode == WK_LOG_MODE_EPOCH && r->epoch_length > 0)
        frac = (double)r->iter_in_epoch / (double)r->epoch_length;
    if (frac >= 0) {
        if (frac > 1) frac = 1;
        enum { W = 25 };
        char bar[W + 1];
        int filled = (int)(frac * W);
        for (int i = 0; i < W; i++) bar[i] = i < filled ? '#' : '.';
        bar[W] = '\0';
        sb_printf(&s, " %3d%% [%s]", (int)(frac * 100), bar);
    }
    if (isfinite(r->eta_s) && r->eta_s >= 0) {
        char eta[48];
        wk_log_format_eta(eta, sizeof eta, r->eta_s);
        sb_printf(&s, "  eta: %s", eta);
    }
    if (!isnan(r->loss)) sb_printf(&s, "  loss: %.4f", r->loss);
    /* a line longer than the terminal wraps and "\r" would no longer reach its start */
    int w = term_width(lg) - 1;
    int len = s.len < sizeof line ? (int)s.len : (int)sizeof line - 1;
    if (len > w) len = w;
    fprintf(lg->console, "\r\033[K%.*s", len, line);
    fflush(lg->console);
    lg->bar_shown = true;
    return 0;
}

int wk_logger_eval(wk_logger *lg, const wk_log_eval *e)
{
    if (!lg) return 0;
    if (check_eval("logger_eval", e)) return -1;
    int rc = emit_formatted(lg, fmt_eval, e);
    if (!lg->jsonl && !lg->tb) return rc;
    cJSON *o = record("eval", e->global_step, e->epoch);
    for (int i = 0; i < e->n && o; i++) {
        if (!cJSON_AddNumberToObject(o, e->names[i], e->values[i])) {
            cJSON_Delete(o);
            o = NULL;
        }
    }
    bool ok = o != NULL;
    if (write_record(lg, o)) rc = -1;
    if (ok && tb_write(lg, e->global_step, e->names, e->values, e->n)) rc = -1;
    return rc;
}

int wk_logger_checkpoint(wk_logger *lg, wk_log_ckpt_kind kind, const char *path,
                         int64_t step, int64_t epoch, const char *note)
{
    if (!lg) return 0;
    if ((unsigned)kind >= WK_LOG_CKPT_COUNT || !path) {
        wk_set_error("logger_checkpoint: expected a kind in 0..%d and a path (got %d, %s)",
                     WK_LOG_CKPT_COUNT - 1, (int)kind, path ? "a path" : "NULL");
        return -1;
    }
    int rc = note ? wk_logger_info(lg, "Saved checkpoint: %s (%s)", path, note)
                  : wk_logger_info(lg, "Saved checkpoint: %s", path);
    cJSON *o = record("checkpoint", step, epoch);
    if (o && (!cJSON_AddStringToObject(o, "kind", ckpt_names[kind]) ||
              !cJSON_AddStringToObject(o, "path", path))) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (write_record(lg, o)) rc = -1;
    return rc;
}

int wk_logger_early_stop(wk_logger *lg, int64_t step, int64_t epoch, const char *target,
                         double min_delta, int64_t patience, double best, int64_t best_step)
{
    if (!lg) return 0;
    if (!target) {
        wk_set_error("logger_early_stop: target is NULL");
        return -1;
    }
    int rc = wk_logger_info(lg,
                            "Early stopping: %s did not improve by %g for %lld evaluations "
                            "(best %.4f at step %lld)",
                            target, min_delta, (long long)patience, best, (long long)best_step);
    cJSON *o = record("early_stop", step, epoch);
    if (o && (!cJSON_AddStringToObject(o, "target", target) ||
              !cJSON_AddNumberToObject(o, "min_delta", min_delta) ||
              !cJSON_AddNumberToObject(o, "patience", (double)patience) ||
              !cJSON_AddNumberToObject(o, "best", best) ||
              !cJSON_AddNumberToObject(o, "best_step", (double)best_step))) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (write_record(lg, o)) rc = -1;
    return rc;
}

int wk_logger_end(wk_logger *lg, wk_log_end_reason reason, int64_t step, int64_t epoch)
{
    if (!lg) return 0;
    if ((unsigned)reason >= WK_LOG_END_COUNT) {
        wk_set_error("logger_end: reason %d is not a wk_log_end_reason", (int)reason);
        return -1;
    }
    int rc = wk_logger_info(lg, "Training ended: %s at step %lld, epoch %lld",
                            end_names[reason], (long long)step, (long long)epoch);
    cJSON *o = record("end", step, epoch);
    if (o && !cJSON_AddStringToObject(o, "reason", end_names[reason])) {
        cJSON_Delete(o);
        o = NULL;
    }
    if (write_record(lg, o)) rc = -1;
    return rc;
}

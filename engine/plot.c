/* `wick plot`: scalars.jsonl of every run folder -> cairo figure (PNG and SVG). */
#include "plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tensor/tensor.h"

/* ---- loading ---- */

typedef struct {
    int64_t step;
    double value;
    int run;  /* index of the run folder */
    int64_t seq; /* reading order, so sorting by step is stable */
} point;

typedef struct {
    char *name;
    wk_plot_axis axis;
    bool eval;
    point *p;
    int64_t n, cap;
} raw_series;

typedef struct {
    raw_series *s;
    int n, cap;
    int64_t seq;
} loader;

static raw_series *series_get(loader *L, const char *name, wk_plot_axis axis, bool eval)
{
    for (int i = 0; i < L->n; i++)
        if (strcmp(L->s[i].name, name) == 0) return &L->s[i];
    if (L->n == L->cap) {
        int cap = L->cap ? 2 * L->cap : 8;
        raw_series *s = realloc(L->s, (size_t)cap * sizeof *s);
        if (!s) return NULL;
        L->s = s;
        L->cap = cap;
    }
    raw_series *s = &L->s[L->n];
    *s = (raw_series){.name = strdup(name), .axis = axis, .eval = eval};
    if (!s->name) return NULL;
    L->n++;
    return s;
}

static int series_add(loader *L, const char *name, wk_plot_axis axis, bool eval, int64_t step,
                      double v, int run)
{
    raw_series *s = series_get(L, name, axis, eval);
    if (!s) return -1;
    if (s->n == s->cap) {
        int64_t cap = s->cap ? 2 * s->cap : 64;
        point *p = realloc(s->p, (size_t)cap * sizeof *p);
        if (!p) return -1;
        s->p = p;
        s->cap = cap;
    }
    s->p[s->n++] = (point){step, v, run, L->seq++};
    return 0;
}

static void loader_free(loader *L)
{
    for (int i = 0; i < L->n; i++) {
        free(L->s[i].name);
        free(L->s[i].p);
    }
    free(L->s);
}

static int by_name(const void *a, const void *b)
{
    return strverscmp(*(char *const *)a, *(char *const *)b);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Paths of the scalars.jsonl files, oldest run first: WORK_DIR's own (a run folder given
 * directly), then its subfolders by name (timestamps; strverscmp puts _2 before _10). */
static char **find_files(const char *work_dir, int *count)
{
    *count = 0;
    DIR *d = opendir(work_dir);
    if (!d) {
        wk_set_error("plot: cannot open work dir '%s': %s", work_dir, strerror(errno));
        return NULL;
    }
    char **names = NULL;
    int n = 0, cap = 0;
    bool oom = false;
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **p = realloc(names, (size_t)cap * sizeof *p);
            if (!p) {
                oom = true;
                break;
            }
            names = p;
        }
        if (!(names[n] = strdup(e->d_name))) {
            oom = true;
            break;
        }
        n++;
    }
    closedir(d);
    char **files = oom ? NULL : calloc((size_t)n + 1, sizeof *files);
    int nf = 0;
    if (files) {
        if (n > 0) qsort(names, (size_t)n, sizeof *names, by_name);
        char *own;
        if (asprintf(&own, "%s/scalars.jsonl", work_dir) < 0) oom = true;
        else if (is_file(own)) files[nf++] = own;
        else free(own);
        for (int i = 0; i < n && !oom; i++) {
            char *p;
            if (asprintf(&p, "%s/%s/scalars.jsonl", work_dir, names[i]) < 0) {
                oom = true;
                break;
            }
            if (is_file(p)) files[nf++] = p;
            else free(p);
        }
    }
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    if (!files || oom) {
        if (files)
            for (int i = 0; i < nf; i++) free(files[i]);
        free(files);
        wk_set_error("plot: out of memory listing '%s'", work_dir);
        return NULL;
    }
    if (nf == 0) {
        free(files);
        wk_set_error("plot: no scalars.jsonl in '%s' (expected %s/<timestamp>/scalars.jsonl "
                     "as the logger writes it)", work_dir, work_dir);
        return NULL;
    }
    *count = nf;
    return files;
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wk_set_error("plot: cannot open '%s': %s", path, strerror(errno));
        return NULL;
    }
    size_t n = 0, cap = 1 << 16;
    char *buf = malloc(cap + 1);
    while (buf) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap) break;
        cap *= 2;
        char *b = realloc(buf, cap + 1);
        if (!b) free(buf);
        buf = b;
    }
    bool bad = buf && ferror(f);
    fclose(f);
    if (!buf || bad) {
        free(buf);
        wk_set_error("plot: cannot read '%s'", path);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

/* One record: lr and train/... of train records, every metric of eval records. */
static int take_record(loader *L, const cJSON *o, int64_t step, bool eval, int run)
{
    for (const cJSON *c = o->child; c; c = c->next) {
        if (!cJSON_IsNumber(c) || !c->string) continue;
        const char *k = c->string;
        wk_plot_axis axis;
        if (eval) {
            if (!strcmp(k, "step") || !strcmp(k, "epoch")) continue;
            axis = strstr(k, "loss") ? WK_PLOT_AXIS_LOSS : WK_PLOT_AXIS_METRIC;
        } else if (!strcmp(k, "lr")) {
            axis = WK_PLOT_AXIS_LR;
        } else if (!strncmp(k, "train/", 6)) {
            axis = WK_PLOT_AXIS_LOSS;
        } else {
            continue;
        }
        if (series_add(L, k, axis, eval, step, c->valuedouble, run)) return -1;
    }
    return 0;
}

/* Reads one file; *first_step gets its smallest step (INT64_MAX when it has no records). */
static int load_file(loader *L, const char *path, int run, FILE *warnings, int64_t *first_step)
{
    *first_step = INT64_MAX;
    size_t len;
    char *buf = read_all(path, &len);
    if (!buf) return -1;
    int rc = 0;
    int64_t lineno = 0;
    for (char *line = buf; line < buf + len && rc == 0;) {
        lineno++;
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        bool last_unterminated = !nl;
        char *end = nl ? nl : buf + len;
        *end = '\0';
        char *next = end + 1;
        const char *t = line;
        while (*t == ' ' || *t == '\t' || *t == '\r') t++;
        if (!*t) {
            line = next;
            continue;
        }
        cJSON *o = cJSON_ParseWithOpts(line, NULL, true);
        if (!o && last_unterminated) {
            fprintf(warnings, "plot: warning: %s:%lld: skipping a truncated last line "
                    "(the run was killed while writing it?)\n", path, (long long)lineno);
            break;
        }
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(o, "event");
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(o, "step");
        if (!cJSON_IsObject(o)) {
            wk_set_error("plot: %s:%lld: not a JSON object: %.60s", path, (long long)lineno,
                         line);
            rc = -1;
        } else if (!cJSON_IsString(ev) || !cJSON_IsNumber(st)) {
            wk_set_error("plot: %s:%lld: expected an \"event\" string and a \"step\" number",
                         path, (long long)lineno);
            rc = -1;
        } else {
            int64_t step = (int64_t)st->valuedouble;
            if (step < *first_step) *first_step = step;
            bool train = !strcmp(ev->valuestring, "train"), eval = !strcmp(ev->valuestring,
                                                                           "eval");
            if ((train || eval) && take_record(L, o, step, eval, run)) {
                wk_set_error("plot: out of memory reading '%s'", path);
                rc = -1;
            }
        }
        cJSON_Delete(o);
        line = next;
    }
    free(buf);
    return rc;
}

static int by_step(const void *a, const void *b)
{
    const point *p = a, *q = b;
    if (p->step != q->step) return p->step < q->step ? -1 : 1;
    return p->seq < q->seq ? -1 : p->seq > q->seq;
}

void wk_plot_data_free(wk_plot_data *d)
{
    if (!d) return;
    for (int i = 0; i < d->n; i++) {
        free(d->series[i].name);
        free(d->series[i].steps);
        free(d->series[i].values);
    }
    free(d->series);
    free(d->resume_steps);
    free(d);
}

/* Keep, of run r, only the points before the first step of any later run: a resumed run
 * restarts from its checkpoint, and what the killed run logged past it is superseded. */
static wk_plot_data *merge(loader *L, const int64_t *first, int runs)
{
    int64_t *cut = malloc((size_t)runs * sizeof *cut);
    wk_plot_data *d = calloc(1, sizeof *d);
    if (d) d->series = calloc((size_t)L->n, sizeof *d->series);
    if (d) d->resume_steps = malloc((size_t)runs * sizeof *d->resume_steps);
    if (!cut || !d || !d->series || !d->resume_steps) goto oom;
    int64_t m = INT64_MAX;
    for (int r = runs - 1; r >= 0; r--) {
        cut[r] = m;
        if (first[r] < m) m = first[r];
    }
    bool seen = false;
    for (int r = 0; r < runs; r++) {
        if (first[r] == INT64_MAX) continue;
        if (seen) d->resume_steps[d->n_resumes++] = first[r];
        seen = true;
    }
    for (int i = 0; i < L->n; i++) {
        raw_series *rs = &L->s[i];
        int64_t k = 0;
        for (int64_t j = 0; j < rs->n; j++)
            if (rs->p[j].step < cut[rs->p[j].run]) rs->p[k++] = rs->p[j];
        if (k == 0) continue;
        qsort(rs->p, (size_t)k, sizeof *rs->p, by_step); /* k > 0 here */
        wk_plot_series *s = &d->series[d->n];
        s->steps = malloc((size_t)k * sizeof *s->steps);
        s->values = malloc((size_t)k * sizeof *s->values);
        d->n++;
        if (!s->steps || !s->values) goto oom;
        for (int64_t j = 0; j < k; j++) {
            s->steps[j] = rs->p[j].step;
            s->values[j] = rs->p[j].value;
        }
        s->n = k;
        s->axis = rs->axis;
        s->eval = rs->eval;
        s->name = rs->name;
        rs->name = NULL;
    }
    free(cut);
    return d;
oom:
    free(cut);
    wk_plot_data_free(d);
    wk_set_error("plot: out of memory merging the runs");
    return NULL;
}

wk_plot_data *wk_plot_load(const char *work_dir, FILE *warnings)
{
    if (!work_dir) {
        wk_set_error("plot: work_dir is NULL");
        return NULL;
    }
    if (!warnings) warnings = stderr;
    int nf;
    char **files = find_files(work_dir, &nf);
    if (!files) return NULL;
    loader L = {0};
    int64_t *first = calloc((size_t)nf, sizeof *first);
    int rc = first ? 0 : -1;
    if (!first) wk_set_error("plot: out of memory");
    for (int i = 0; i < nf && rc == 0; i++) rc = load_file(&L, files[i], i, warnings, &first[i]);
    wk_plot_data *d = NULL;
    if (rc == 0 && L.n == 0)
        wk_set_error("plot: no train or eval records in the scalars.jsonl files of '%s'",
                     work_dir);
    else if (rc == 0)
        d = merge(&L, first, nf);
    for (int i = 0; i < nf; i++) free(files[i]);
    free(files);
    free(first);
    loader_free(&L);
    return d;
}

const wk_plot_series *wk_plot_data_find(const wk_plot_data *d, const char *name)
{
    if (!d || !name) return NULL;
    for (int i = 0; i < d->n; i++)
        if (!strcmp(d->series[i].name, name)) return &d->series[i];
    return NULL;
}

/* ---- drawing ---- */

typedef struct {
    double x0, y0, x1, y1; /* the plot area in device units, y0 at the top */
    double xlo, xhi, ylo, yhi;
} frame;

static double fx(const frame *f, double x)
{
    return f->x0 + (x - f->xlo) / (f->xhi - f->xlo) * (f->x1 - f->x0);
}
static double fy(const frame *f, double y)
{
    return f->y1 - (y - f->ylo) / (f->yhi - f->ylo) * (f->y1 - f->y0);
}

/* 1, 2 or 5 times a power of ten, giving about `target` intervals over [lo, hi]. */
static double nice_step(double lo, double hi, int target)
{
    double raw = (hi - lo) / target;
    double mag = pow(10, floor(log10(raw)));
    double r = raw / mag;
    return (r < 1.5 ? 1 : r < 3 ? 2 : r < 7 ? 5 : 10) * mag;
}

static void range_of(const wk_plot_data *d, wk_plot_axis axis, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (int i = 0; i < d->n; i++) {
        if (d->series[i].axis != axis) continue;
        for (int64_t j = 0; j < d->series[i].n; j++) {
            double v = d->series[i].values[j];
            if (!isfinite(v)) continue;
            if (v < *lo) *lo = v;
            if (v > *hi) *hi = v;
        }
    }
}

/* A readable value range: padded 5%, a flat or empty one widened. */
static void pad(double *lo, double *hi)
{
    if (!(*lo <= *hi)) *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12 * fmax(1, fabs(*hi))) {
        double w = *hi != 0 ? fabs(*hi) * 0.1 : 1;
        *lo -= w, *hi += w;
    }
    double m = 0.05 * (*hi - *lo);
    *lo -= m, *hi += m;
}

static void text_at(cairo_t *cr, double x, double y, const char *s, double ax, double ay)
{
    cairo_text_extents_t te;
    cairo_text_extents(cr, s, &te);
    cairo_move_to(cr, x - ax * te.width - te.x_bearing, y + ay * te.height);
    cairo_show_text(cr, s);
}

static void fmt_tick(char *buf, size_t n, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0;
    snprintf(buf, n, "%.4g", v);
}

enum { SIDE_LEFT, SIDE_RIGHT, SIDE_BOTTOM };

static void axis_ticks(cairo_t *cr, const frame *f, int side, bool grid)
{
    double lo = side == SIDE_BOTTOM ? f->xlo : f->ylo, hi = side == SIDE_BOTTOM ? f->xhi : f->yhi;
    double st = nice_step(lo, hi, side == SIDE_BOTTOM ? 8 : 6);
    if (side == SIDE_BOTTOM && st < 1) st = 1;
    char lab[32];
    for (double v = ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) {
        fmt_tick(lab, sizeof lab, v, st);
        if (side == SIDE_BOTTOM) {
            double x = fx(f, v);
            if (grid) {
                cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
                cairo_move_to(cr, x, f->y0);
                cairo_line_to(cr, x, f->y1);
                cairo_stroke(cr);
            }
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_move_to(cr, x, f->y1);
            cairo_line_to(cr, x, f->y1 + 5);
            cairo_stroke(cr);
            text_at(cr, x, f->y1 + 8, lab, 0.5, 1);
        } else {
            double y = fy(f, v), x = side == SIDE_LEFT ? f->x0 : f->x1;
            if (grid) {
                cairo_set_source_rgb(cr, 0.9, 0.9, 0.9);
                cairo_move_to(cr, f->x0, y);
                cairo_line_to(cr, f->x1, y);
                cairo_stroke(cr);
            }
            cairo_set_source_rgb(cr, 0, 0, 0);
            cairo_move_to(cr, x, y);
            cairo_line_to(cr, side == SIDE_LEFT ? x - 5 : x + 5, y);
            cairo_stroke(cr);
            if (side == SIDE_LEFT) text_at(cr, x - 8, y, lab, 1, 0.5);
            else text_at(cr, x + 8, y, lab, 0, 0.5);
        }
    }
}

static void axis_label(cairo_t *cr, double x, double y, const char *s, bool vertical)
{
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_translate(cr, x, y);
    if (vertical) cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, s, 0.5, 0.5);
    cairo_restore(cr);
}

static const double palette[][3] = {
    {0.12, 0.47, 0.71}, {1.00, 0.50, 0.05}, {0.17, 0.63, 0.17}, {0.84, 0.15, 0.16},
    {0.58, 0.40, 0.74}, {0.55, 0.34, 0.29}, {0.89, 0.47, 0.76}, {0.50, 0.50, 0.50},
    {0.74, 0.74, 0.13}, {0.09, 0.75, 0.81},
};
enum { N_COLORS = sizeof palette / sizeof palette[0] };

static void set_style(cairo_t *cr, const wk_plot_series *s, int color)
{
    const double *c = palette[color % N_COLORS];
    cairo_set_source_rgb(cr, c[0], c[1], c[2]);
    cairo_set_line_width(cr, s->eval ? 2 : 1.5);
    static const double dash[] = {7, 4};
    cairo_set_dash(cr, dash, s->axis == WK_PLOT_AXIS_METRIC ? 2 : 0, 0);
}

static void draw_series(cairo_t *cr, const frame *f, const wk_plot_series *s, int color)
{
    cairo_save(cr);
    cairo_rectangle(cr, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    cairo_clip(cr);
    set_style(cr, s, color);
    bool pen = false;
    for (int64_t j = 0; j < s->n; j++) {
        if (!isfinite(s->values[j])) {
            pen = false;
            continue;
        }
        double x = fx(f, (double)s->steps[j]), y = fy(f, s->values[j]);
        if (pen) cairo_line_to(cr, x, y);
        else cairo_move_to(cr, x, y);
        pen = true;
    }
    cairo_stroke(cr);
    if (s->eval) {
        cairo_set_dash(cr, NULL, 0, 0);
        for (int64_t j = 0; j < s->n; j++) {
            if (!isfinite(s->values[j])) continue;
            cairo_new_sub_path(cr);
            cairo_arc(cr, fx(f, (double)s->steps[j]), fy(f, s->values[j]), 3, 0, 2 * M_PI);
        }
        cairo_fill(cr);
    }
    cairo_restore(cr);
}

static void draw_frame(cairo_t *cr, const frame *f, const wk_plot_data *d)
{
    cairo_set_line_width(cr, 1);
    static const double dots[] = {2, 3};
    cairo_save(cr);
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    cairo_set_dash(cr, dots, 2, 0);
    for (int i = 0; i < d->n_resumes; i++) {
        double x = fx(f, (double)d->resume_steps[i]);
        if (x < f->x0 || x > f->x1) continue;
        cairo_move_to(cr, x, f->y0);
        cairo_line_to(cr, x, f->y1);
    }
    cairo_stroke(cr);
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_rectangle(cr, f->x0, f->y0, f->x1 - f->x0, f->y1 - f->y0);
    cairo_stroke(cr);
}

static void legend(cairo_t *cr, const frame *f, const frame *right, const wk_plot_data *d)
{
    int n = 0;
    double w = 0;
    char lab[300];
    for (int i = 0; i < d->n; i++) {
        if (d->series[i].axis == WK_PLOT_AXIS_LR) continue;
        snprintf(lab, sizeof lab, "%s%s", d->series[i].name,
                 d->series[i].axis == WK_PLOT_AXIS_METRIC ? " (right)" : "");
        cairo_text_extents_t te;
        cairo_text_extents(cr, lab, &te);
        if (te.x_advance > w) w = te.x_advance;
        n++;
    }
    if (!n) return;
    double lh = 18, bw = w + 48, bh = n * lh + 10, x = f->x1 - bw - 10, y = f->y0 + 10;
    /* the corner that hides the fewest points of the curves */
    int64_t fewest = INT64_MAX;
    for (int corner = 0; corner < 4; corner++) {
        double cx = corner & 1 ? f->x0 + 10 : f->x1 - bw - 10;
        double cy = corner & 2 ? f->y1 - bh - 10 : f->y0 + 10;
        int64_t hidden = 0;
        for (int i = 0; i < d->n; i++) {
            const wk_plot_series *s = &d->series[i];
            if (s->axis == WK_PLOT_AXIS_LR) continue;
            const frame *sf = s->axis == WK_PLOT_AXIS_METRIC ? right : f;
            /* sample the segments every few pixels: eval curves have few points */
            for (int64_t j = 0; j < s->n; j++) {
                double px = fx(sf, (double)s->steps[j]), py = fy(sf, s->values[j]);
                double qx = px, qy = py;
                if (j + 1 < s->n)
                    qx = fx(sf, (double)s->steps[j + 1]), qy = fy(sf, s->values[j + 1]);
                if (!isfinite(py) || !isfinite(qy)) continue;
                int k = (int)fmin(200, hypot(qx - px, qy - py) / 4) + 1;
                for (int t = 0; t < k; t++) {
                    double ax = px + (qx - px) * t / k, ay = py + (qy - py) * t / k;
                    hidden += ax >= cx && ax <= cx + bw && ay >= cy && ay <= cy + bh;
                }
            }
        }
        if (hidden < fewest) fewest = hidden, x = cx, y = cy;
    }
    cairo_set_source_rgba(cr, 1, 1, 1, 0.85);
    cairo_rectangle(cr, x, y, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.6, 0.6, 0.6);
    cairo_set_line_width(cr, 1);
    cairo_stroke(cr);
    int k = 0;
    for (int i = 0; i < d->n; i++) {
        const wk_plot_series *s = &d->series[i];
        if (s->axis == WK_PLOT_AXIS_LR) continue;
        double yy = y + 5 + lh * (k + 0.5);
        set_style(cr, s, i);
        cairo_move_to(cr, x + 8, yy);
        cairo_line_to(cr, x + 36, yy);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        snprintf(lab, sizeof lab, "%s%s", s->name,
                 s->axis == WK_PLOT_AXIS_METRIC ? " (right)" : "");
        text_at(cr, x + 42, yy, lab, 0, 0.5);
        k++;
    }
}

static void draw_figure(cairo_t *cr, const wk_plot_data *d, const char *title, int W, int H)
{
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_paint(cr);
    cairo_select_font_face(cr, "sans-serif", CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    double xlo = INFINITY, xhi = -INFINITY;
    bool have[3] = {false, false, false};
    for (int i = 0; i < d->n; i++) {
        const wk_plot_series *s = &d->series[i];
        have[s->axis] = true;
        if (s->n && (double)s->steps[0] < xlo) xlo = (double)s->steps[0];
        if (s->n && (double)s->steps[s->n - 1] > xhi) xhi = (double)s->steps[s->n - 1];
    }
    if (!(xlo <= xhi)) xlo = 0, xhi = 1;
    if (xhi - xlo < 1) xlo -= 0.5, xhi += 0.5;
    if (xlo > 0 && xlo < 0.1 * (xhi - xlo)) xlo = 0; /* a run that logs from step 10 */

    double left = 90, right = W - 90, top = 50, bottom = H - 55;
    double split = top + 0.64 * (bottom - top);
    frame up = {left, top, right, split - 25, xlo, xhi, 0, 1};
    frame lo = {left, split + 35, right, bottom, xlo, xhi, 0, 1};
    cairo_set_font_size(cr, 13);

    if (title) {
        cairo_save(cr);
        cairo_set_font_size(cr, 16);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, W / 2.0, 25, title, 0.5, 0.5);
        cairo_restore(cr);
    }

    range_of(d, WK_PLOT_AXIS_LOSS, &up.ylo, &up.yhi);
    pad(&up.ylo, &up.yhi);
    frame upr = up;
    range_of(d, WK_PLOT_AXIS_METRIC, &upr.ylo, &upr.yhi);
    pad(&upr.ylo, &upr.yhi);
    range_of(d, WK_PLOT_AXIS_LR, &lo.ylo, &lo.yhi);
    pad(&lo.ylo, &lo.yhi);

    cairo_set_line_width(cr, 1);
    axis_ticks(cr, &up, SIDE_BOTTOM, true);
    axis_ticks(cr, &up, SIDE_LEFT, have[WK_PLOT_AXIS_LOSS]);
    if (have[WK_PLOT_AXIS_METRIC]) axis_ticks(cr, &upr, SIDE_RIGHT, !have[WK_PLOT_AXIS_LOSS]);
    axis_ticks(cr, &lo, SIDE_BOTTOM, true);
    axis_ticks(cr, &lo, SIDE_LEFT, true);
    draw_frame(cr, &up, d);
    draw_frame(cr, &lo, d);

    for (int i = 0; i < d->n; i++) {
        const wk_plot_series *s = &d->series[i];
        draw_series(cr, s->axis == WK_PLOT_AXIS_LR ? &lo : s->axis == WK_PLOT_AXIS_METRIC ? &upr
                                                                                          : &up,
                    s, i);
    }
    cairo_set_dash(cr, NULL, 0, 0);
    legend(cr, &up, &upr, d);

    axis_label(cr, (up.x0 + up.x1) / 2, up.y1 + 35, "step", false);
    axis_label(cr, (lo.x0 + lo.x1) / 2, lo.y1 + 35, "step", false);
    axis_label(cr, 22, (up.y0 + up.y1) / 2, "loss", true);
    if (have[WK_PLOT_AXIS_METRIC]) axis_label(cr, W - 22, (up.y0 + up.y1) / 2, "metric", true);
    axis_label(cr, 22, (lo.y0 + lo.y1) / 2, "lr", true);
    if (!have[WK_PLOT_AXIS_LR]) {
        cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
        text_at(cr, (lo.x0 + lo.x1) / 2, (lo.y0 + lo.y1) / 2, "(no lr in the train records)",
                0.5, 0.5);
    }
}

static int surface_error(cairo_surface_t *s, const char *what, const char *path)
{
    cairo_status_t st = cairo_surface_status(s);
    if (st == CAIRO_STATUS_SUCCESS) return 0;
    wk_set_error("plot: cannot write %s '%s': %s", what, path, cairo_status_to_string(st));
    return -1;
}

int wk_plot_render(const wk_plot_data *d, const char *title, int width, int height,
                   const char *png_path, const char *svg_path)
{
    if (!d || width < 200 || height < 200 || width > 16384 || height > 16384) {
        wk_set_error("plot_render: expected data and a size from 200x200 to 16384x16384 "
                     "(got %dx%d)", width, height);
        return -1;
    }
    if (png_path) {
        cairo_surface_t *s = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
        cairo_t *cr = cairo_create(s);
        draw_figure(cr, d, title, width, height);
        cairo_destroy(cr);
        cairo_status_t st = cairo_surface_write_to_png(s, png_path);
        int rc = surface_error(s, "PNG", png_path);
        if (!rc && st != CAIRO_STATUS_SUCCESS) {
            wk_set_error("plot: cannot write PNG '%s': %s", png_path,
                         cairo_status_to_string(st));
            rc = -1;
        }
        cairo_surface_destroy(s);
        if (rc) return -1;
    }
    if (svg_path) {
        cairo_surface_t *s = cairo_svg_surface_create(svg_path, width, height);
        cairo_t *cr = cairo_create(s);
        draw_figure(cr, d, title, width, height);
        cairo_destroy(cr);
        cairo_surface_finish(s);
        int rc = surface_error(s, "SVG", svg_path);
        cairo_surface_destroy(s);
        if (rc) return -1;
    }
    return 0;
}

int wk_plot_work_dir(const char *work_dir, const wk_plot_opts *opts, char **png_path,
                     char **svg_path)
{
    wk_plot_opts o = opts ? *opts : (wk_plot_opts){0};
    if (o.width <= 0) o.width = 1200;
    if (o.height <= 0) o.height = 800;
    if (png_path) *png_path = NULL;
    if (svg_path) *svg_path = NULL;
    wk_plot_data *d = wk_plot_load(work_dir, o.warnings);
    if (!d) return -1;
    char *png = NULL, *svg = NULL;
    int rc = -1;
    if (asprintf(&png, "%s/plot.png", work_dir) < 0) png = NULL;
    if (asprintf(&svg, "%s/plot.svg", work_dir) < 0) svg = NULL;
    if (!png || !svg) wk_set_error("plot: out of memory");
    else rc = wk_plot_render(d, work_dir, o.width, o.height, png, svg);
    wk_plot_data_free(d);
    if (rc == 0 && png_path) *png_path = png, png = NULL;
    if (rc == 0 && svg_path) *svg_path = svg, svg = NULL;
    free(png);
    free(svg);
    return rc;
}

/* Printing, a transcription of torch/_tensor_str.py (1.13) with its default options:
 * a formatter chosen from the elements that will be shown, then the nested brackets. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "print.h"
#include "tensor-impl.h"

#define PRECISION 4
#define THRESHOLD 1000 /* more elements than this: summarise */
#define EDGEITEMS 3
#define LINEWIDTH 80
#define PREFIX "tensor("
#define SUFFIX_MAX 200

/* ---- a growing string ---- */

typedef struct {
    char *s;
    size_t len, cap;
    bool failed;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t n)
{
    if (b->failed) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->s, cap);
        if (!p) {
            b->failed = true;
            return;
        }
        b->s = p, b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_spaces(sbuf *b, int n)
{
    for (int i = 0; i < n; i++) sb_put(b, " ", 1);
}

/* ---- elements ---- */

typedef enum { KIND_FLOAT, KIND_INT, KIND_BOOL } kind;

static kind kind_of(wk_dtype d)
{
    return wk_dtype_is_float(d) ? KIND_FLOAT : d == WK_DTYPE_BOOL ? KIND_BOOL : KIND_INT;
}

static double load_float(wk_dtype d, const char *p)
{
    switch (d) {
    case WK_DTYPE_F32: return *(const float *)p;
    case WK_DTYPE_F64: return *(const double *)p;
    case WK_DTYPE_BF16: return wk_bf16_to_f32(*(const uint16_t *)p);
    default: return wk_f16_to_f32(*(const uint16_t *)p);
    }
}

static int64_t load_int(wk_dtype d, const char *p)
{
    switch (d) {
    case WK_DTYPE_I32: return *(const int32_t *)p;
    case WK_DTYPE_I64: return *(const int64_t *)p;
    default: return *(const uint8_t *)p; /* u8, bool */
    }
}

/* ---- the formatter (torch's _Formatter) ---- */

typedef struct {
    kind kind;
    bool int_mode, sci_mode;
    int max_width;
    /* statistics of the nonzero finite values, gathered by the first pass */
    int64_t count;
    double min_abs, max_abs;
} formatter;

/* A value as torch formats it before padding: "{:.4e}", "{:.0f}" (plus "." when
 * asked), "{:.4f}", "{}" for integers and "True"/"False". Python prints every NaN as
 * "nan" and infinities as "inf"/"-inf". */
static int format_float(char *buf, size_t size, double v, bool sci, bool int_mode,
                        bool dot)
{
    if (isnan(v)) return snprintf(buf, size, "nan");
    if (isinf(v)) return snprintf(buf, size, v > 0 ? "inf" : "-inf");
    if (sci) return snprintf(buf, size, "%.*e", PRECISION, v);
    if (int_mode) return snprintf(buf, size, dot ? "%.0f." : "%.0f", v);
    return snprintf(buf, size, "%.*f", PRECISION, v);
}

static int format_value(const formatter *f, char *buf, size_t size, wk_dtype d, const char *p)
{
    switch (f->kind) {
    case KIND_FLOAT:
        return format_float(buf, size, load_float(d, p), f->sci_mode, f->int_mode, true);
    case KIND_BOOL: return snprintf(buf, size, "%s", load_int(d, p) ? "True" : "False");
    default: return snprintf(buf, size, "%lld", (long long)load_int(d, p));
    }
}

typedef enum { PASS_STATS, PASS_WIDTH } pass;

static void observe(formatter *f, pass ps, wk_dtype d, const char *p)
{
    char buf[64];
    if (f->kind != KIND_FLOAT) {
        int w = format_value(f, buf, sizeof buf, d, p);
        if (w > f->max_width) f->max_width = w;
        return;
    }
    double v = load_float(d, p);
    if (!isfinite(v) || v == 0) return;
    if (ps == PASS_STATS) {
        double a = fabs(v);
        if (!f->count || a < f->min_abs) f->min_abs = a;
        if (!f->count || a > f->max_abs) f->max_abs = a;
        if (v != ceil(v)) f->int_mode = false;
        f->count++;
    } else {
        /* int mode counts the "." it appends */
        int w = format_float(buf, sizeof buf, v, f->sci_mode, f->int_mode, false) +
                (f->int_mode && !f->sci_mode);
        if (w > f->max_width) f->max_width = w;
    }
}

/* Visit the elements that will be shown (torch's get_summarized_data), in order. */
static void visit(const wk_tensor *t, int dim, const char *p, bool summarize, formatter *f,
                  pass ps)
{
    if (dim == t->ndim) {
        observe(f, ps, t->dtype, p);
        return;
    }
    int64_t n = t->shape[dim];
    int64_t step = t->strides[dim] * (int64_t)wk_dtype_size(t->dtype);
    bool cut = summarize && n > 2 * EDGEITEMS;
    for (int64_t i = 0; i < n; i++) {
        if (cut && i == EDGEITEMS) i = n - EDGEITEMS;
        visit(t, dim + 1, p + i * step, summarize, f, ps);
    }
}

static formatter make_formatter(const wk_tensor *t, bool summarize)
{
    formatter f = {.kind = kind_of(t->dtype), .int_mode = true, .max_width = 1};
    const char *p = wk_data(t);
    if (f.kind != KIND_FLOAT) {
        visit(t, 0, p, summarize, &f, PASS_WIDTH);
        return f;
    }
    visit(t, 0, p, summarize, &f, PASS_STATS);
    if (!f.count) return f;
    double ratio = f.max_abs / f.min_abs;
    if (f.int_mode) f.sci_mode = ratio > 1000.0 || f.max_abs > 1.0e8;
    else f.sci_mode = ratio > 1000.0 || f.max_abs > 1.0e8 || f.min_abs < 1.0e-4;
    visit(t, 0, p, summarize, &f, PASS_WIDTH);
    return f;
}

/* One element, right-aligned to the formatter's width. */
static void put_value(sbuf *b, const formatter *f, wk_dtype d, const char *p)
{
    char buf[64];
    int w = format_value(f, buf, sizeof buf, d, p);
    sb_spaces(b, f->max_width - w);
    sb_put(b, buf, (size_t)w);
}

/* ---- the nested brackets (torch's _tensor_str_with_formatter) ---- */

static void put_vector(sbuf *b, const wk_tensor *t, const char *p, int indent, bool summarize,
                       const formatter *f)
{
    int dim = t->ndim - 1;
    int64_t n = t->shape[dim];
    int64_t step = t->strides[dim] * (int64_t)wk_dtype_size(t->dtype);
    int64_t per_line = (LINEWIDTH - indent) / (f->max_width + 2);
    if (per_line < 1) per_line = 1;
    bool cut = summarize && n > 2 * EDGEITEMS;
    int64_t items = cut ? 2 * EDGEITEMS + 1 : n; /* " ..." counts as an item */
    sb_str(b, "[");
    for (int64_t k = 0; k < items; k++) {
        if (k) {
            if (k % per_line) {
                sb_str(b, ", ");
            } else {
                sb_str(b, ",\n");
                sb_spaces(b, indent + 1);
            }
        }
        if (cut && k == EDGEITEMS) {
            sb_str(b, " ...");
            continue;
        }
        int64_t i = cut && k > EDGEITEMS ? n - (items - k) : k;
        put_value(b, f, t->dtype, p + i * step);
    }
    sb_str(b, "]");
}

static void put_tensor(sbuf *b, const wk_tensor *t, int dim, const char *p, int indent,
                       bool summarize, const formatter *f)
{
    if (t->ndim == 0) {
        put_value(b, f, t->dtype, p);
        return;
    }
    if (dim == t->ndim - 1) {
        put_vector(b, t, p, indent, summarize, f);
        return;
    }
    int64_t n = t->shape[dim];
    int64_t step = t->strides[dim] * (int64_t)wk_dtype_size(t->dtype);
    bool cut = summarize && n > 2 * EDGEITEMS;
    int newlines = t->ndim - dim - 1;
    sb_str(b, "[");
    for (int64_t i = 0; i < n; i++) {
        if (i) {
            sb_str(b, ",");
            for (int k = 0; k < newlines; k++) sb_str(b, "\n");
            sb_spaces(b, indent + 1);
        }
        if (cut && i == EDGEITEMS) {
            sb_str(b, "...,");
            for (int k = 0; k < newlines; k++) sb_str(b, "\n");
            sb_spaces(b, indent + 1);
            i = n - EDGEITEMS;
        }
        put_tensor(b, t, dim + 1, p + i * step, indent + 1, summarize, f);
    }
    sb_str(b, "]");
}

/* torch's _add_suffixes, including its reckoning of the last line's length. */
static void add_suffixes(sbuf *b, char suffixes[][SUFFIX_MAX], int n)
{
    const char *nl = b->s ? strrchr(b->s, '\n') : NULL;
    long rfind = nl ? (long)(nl - b->s) : -1;
    long last = (long)b->len - rfind + 1;
    for (int i = 0; i < n; i++) {
        long len = (long)strlen(suffixes[i]);
        if (last + len + 2 > LINEWIDTH) {
            sb_str(b, ",\n");
            sb_spaces(b, (int)strlen(PREFIX));
            last = (long)strlen(PREFIX) + len;
        } else {
            sb_str(b, ", ");
            last += len + 2;
        }
        sb_str(b, suffixes[i]);
    }
    sb_str(b, ")");
}

char *wk_tensor_str(const wk_tensor *t)
{
    sbuf b = {0};
    if (!t) {
        sb_str(&b, "(null)");
    } else {
        if (!wki_require_cpu("tensor_str", t)) return NULL;
        /* Only CPU values can be read for now; torch's device='cuda:0' suffix comes with
         * the copy to the host. */
        char suffixes[3][SUFFIX_MAX];
        int ns = 0;
        sb_str(&b, PREFIX);
        int64_t numel = wk_numel(t);
        if (numel == 0) {
            if (t->ndim != 1) { /* Python's tuple: (0, 3) */
                int len = snprintf(suffixes[ns], sizeof suffixes[0], "size=(");
                for (int i = 0; i < t->ndim; i++)
                    len += snprintf(suffixes[ns] + len, sizeof suffixes[0] - (size_t)len,
                                    i ? ", %lld" : "%lld", (long long)t->shape[i]);
                snprintf(suffixes[ns] + len, sizeof suffixes[0] - (size_t)len, ")");
                ns++;
            }
            if (t->dtype != WK_DTYPE_F32)
                snprintf(suffixes[ns++], sizeof suffixes[0], "dtype=torch.%s",
                         wk_dtype_name(t->dtype));
            sb_str(&b, "[]");
        } else {
            if (t->dtype != WK_DTYPE_F32 && t->dtype != WK_DTYPE_I64 &&
                t->dtype != WK_DTYPE_BOOL)
                snprintf(suffixes[ns++], sizeof suffixes[0], "dtype=torch.%s",
                         wk_dtype_name(t->dtype));
            bool summarize = numel > THRESHOLD;
            formatter f = make_formatter(t, summarize);
            put_tensor(&b, t, 0, wk_data(t), (int)strlen(PREFIX), summarize, &f);
        }
        if (t->requires_grad && !t->grad_fn)
            snprintf(suffixes[ns++], sizeof suffixes[0], "requires_grad=True");
        add_suffixes(&b, suffixes, ns);
    }
    if (b.failed) {
        free(b.s);
        wk_set_error("tensor_str: out of memory");
        return NULL;
    }
    return b.s;
}

int wk_fprint(FILE *f, const wk_tensor *t)
{
    char *s = wk_tensor_str(t);
    if (!s) return -1;
    int n = fprintf(f, "%s\n", s);
    free(s);
    if (n < 0) wk_set_error("fprint: write failed");
    return n < 0 ? -1 : n;
}

void wk_print(const wk_tensor *t) { (void)wk_fprint(stdout, t); }

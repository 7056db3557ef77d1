/* Exponential moving average of a module's parameters and buffers. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../tensor/tensor-impl.h"
#include "ema.h"

#define STATE_FORMAT "wick.ema/1"
#define GRAIN ((int64_t)1 << 15)

typedef struct {
    char *name;
    wk_tensor *src;     /* the module's tensor (borrowed) */
    wk_tensor *shadow;  /* persistent contiguous copy, owned */
    bool average;       /* float: averaged; otherwise copied */
} ema_entry;

struct wk_ema {
    double decay;
    wk_ema_opts opts;
    int64_t steps;      /* wk_ema_update calls */
    bool swapped_in;
    int n;
    ema_entry *entries;
};

void wk_ema_free(wk_ema *e)
{
    if (!e) return;
    for (int k = 0; k < e->n; k++) {
        free(e->entries[k].name);
        wk_tensor_free(e->entries[k].shadow);
    }
    free(e->entries);
    free(e);
}

wk_ema *wk_ema_new(wk_module *m, double decay, const wk_ema_opts *opts)
{
    const char *op = "ema_new";
    wk_ema_opts o = opts ? *opts : (wk_ema_opts){0};
    if (!m) {
        wk_set_error("%s: module is NULL", op);
        return NULL;
    }
    if (!(decay >= 0 && decay <= 1)) {
        wk_set_error("%s: decay = %g is out of range (expected 0 <= decay <= 1; momentum = 1 - "
                     "decay)",
                     op, decay);
        return NULL;
    }
    if (o.interval < 0) {
        wk_set_error("%s: interval = %d, expected >= 1 (0 means 1)", op, o.interval);
        return NULL;
    }
    if (o.interval == 0) o.interval = 1;
    int n = wk_module_named_parameters(m, o.buffers, NULL, 0);
    if (n == 0) {
        wk_set_error("%s: the %s module has no %s", op, m->type ? m->type : "?",
                     o.buffers ? "parameters or buffers" : "parameters");
        return NULL;
    }
    wk_named_param *np = malloc(sizeof *np * (size_t)n);
    wk_ema *e = calloc(1, sizeof *e);
    if (!np || !e || !(e->entries = calloc((size_t)n, sizeof *e->entries))) goto oom;
    e->decay = decay;
    e->opts = o;
    wk_module_named_parameters(m, o.buffers, np, n);
    wk_frame_begin();
    for (int k = 0; k < n; k++) {
        ema_entry *en = &e->entries[e->n];
        wk_tensor *t = np[k].tensor;
        if (!wki_require_cpu(op, t)) {
            wk_frame_end();
            goto fail;
        }
        en->src = t;
        en->average = t->dtype == WK_DTYPE_F32 || t->dtype == WK_DTYPE_F64;
        if (!np[k].is_buffer && !en->average) {
            wk_set_error("%s: parameter \"%s\" is %s, expected float32 or float64", op,
                         np[k].name, wk_dtype_name(t->dtype));
            wk_frame_end();
            goto fail;
        }
        en->name = malloc(strlen(np[k].name) + 1);
        en->shadow = wk_clone(t);
        if (en->shadow) wki_make_persistent(en->shadow);
        if (en->name) strcpy(en->name, np[k].name);
        e->n++;
        if (!en->name || !en->shadow) {
            wk_frame_end();
            goto oom;
        }
    }
    wk_frame_end();
    free(np);
    return e;
oom:
    wk_set_error("%s: out of memory", op);
fail:
    free(np);
    wk_ema_free(e);
    return NULL;
}

static double decay_at(const wk_ema *e, int64_t t)
{
    if (!e->opts.warmup) return e->decay;
    double w = (1.0 + (double)t) / (10.0 + (double)t);
    return w < e->decay ? w : e->decay;
}

double wk_ema_current_decay(const wk_ema *e) { return e ? decay_at(e, e->steps) : NAN; }
int64_t wk_ema_num_updates(const wk_ema *e) { return e ? e->steps : 0; }
bool wk_ema_swapped_in(const wk_ema *e) { return e && e->swapped_in; }

wk_tensor *wk_ema_get(const wk_ema *e, const char *name)
{
    for (int k = 0; e && name && k < e->n; k++)
        if (strcmp(e->entries[k].name, name) == 0) return e->entries[k].shadow;
    wk_set_error("ema_get: no parameter or buffer \"%s\" in the EMA", name ? name : "(null)");
    return NULL;
}

/* shadow = d*shadow + (1-d)*x over contiguous data. */
#define DEFINE_AVERAGE(T)                                                                 \
    static void average_##T(T *restrict s, const T *restrict x, int64_t n, double d)      \
    {                                                                                     \
        double omd = 1 - d;                                                               \
        _Pragma("omp parallel for schedule(static) num_threads(wki_threads_for(n, GRAIN))") \
        for (int64_t i = 0; i < n; i++) s[i] = (T)(d * (double)s[i] + omd * (double)x[i]); \
    }
DEFINE_AVERAGE(float)
DEFINE_AVERAGE(double)

int wk_ema_update(wk_ema *e)
{
    const char *op = "ema_update";
    if (!e) {
        wk_set_error("%s: EMA is NULL", op);
        return -1;
    }
    if (e->swapped_in) {
        wk_set_error("%s: the EMA weights are swapped into the module; swap them out before "
                     "updating",
                     op);
        return -1;
    }
    bool copy = e->steps == 0;
    if (!copy && e->steps % e->opts.interval != 0) {
        /* not on the interval: only counters (non-float buffers) follow the module */
        for (int k = 0; k < e->n; k++)
            if (!e->entries[k].average && !wk_copy_(e->entries[k].shadow, e->entries[k].src))
                return -1;
        e->steps++;
        return 0;
    }
    double d = decay_at(e, e->steps);
    int rc = 0;
    wk_frame_begin();
    for (int k = 0; k < e->n && rc == 0; k++) {
        ema_entry *en = &e->entries[k];
        if (copy || !en->average) {
            if (!wk_copy_(en->shadow, en->src)) rc = -1;
            continue;
        }
        wk_tensor *x = wk_is_contiguous(en->src) ? en->src : wk_contiguous(en->src);
        if (!x) {
            rc = -1;
            break;
        }
        int64_t n = wk_numel(x);
        if (x->dtype == WK_DTYPE_F32) average_float(wk_data(en->shadow), wk_data(x), n, d);
        else average_double(wk_data(en->shadow), wk_data(x), n, d);
    }
    wk_frame_end();
    if (rc == 0) e->steps++;
    return rc;
}

/* Exchange the contents of the module's tensors and the shadow. */
static int swap(wk_ema *e, const char *op, bool in)
{
    if (!e) {
        wk_set_error("%s: EMA is NULL", op);
        return -1;
    }
    if (e->swapped_in == in) {
        wk_set_error("%s: the EMA weights are already swapped %s", op, in ? "in" : "out");
        return -1;
    }
    int rc = 0;
    wk_frame_begin();
    for (int k = 0; k < e->n && rc == 0; k++) {
        ema_entry *en = &e->entries[k];
        if (wk_is_contiguous(en->src)) {
            char *a = wk_data(en->src), *b = wk_data(en->shadow), tmp[4096];
            size_t left = (size_t)wk_numel(en->src) * wk_dtype_size(en->src->dtype);
            while (left) {
                size_t c = left < sizeof tmp ? left : sizeof tmp;
                memcpy(tmp, a, c);
                memcpy(a, b, c);
                memcpy(b, tmp, c);
                a += c, b += c, left -= c;
            }
        } else {
            wk_tensor *tmp = wk_clone(en->src);
            if (!tmp || !wk_copy_(en->src, en->shadow) || !wk_copy_(en->shadow, tmp)) rc = -1;
        }
    }
    wk_frame_end();
    if (rc == 0) e->swapped_in = in;
    return rc;
}

int wk_ema_swap_in(wk_ema *e) { return swap(e, "ema_swap_in", true); }
int wk_ema_swap_out(wk_ema *e) { return swap(e, "ema_swap_out", false); }

static char *join(const char *prefix, const char *name)
{
    size_t a = strlen(prefix), b = strlen(name);
    char *s = malloc(a + b + 1);
    if (s) {
        memcpy(s, prefix, a);
        memcpy(s + a, name, b + 1);
    }
    return s;
}

int wk_ema_state_save(const wk_ema *e, const char *prefix, wk_named_tensor **items, int *count,
                      char **json)
{
    const char *op = "ema_state_save";
    if (!e || !items || !count || !json) {
        wk_set_error("%s: %s is NULL", op,
                     !e ? "EMA" : !items ? "items" : !count ? "count" : "json");
        return -1;
    }
    if (e->swapped_in) {
        wk_set_error("%s: the EMA weights are swapped into the module; swap them out first", op);
        return -1;
    }
    if (!prefix) prefix = "";
    wk_named_tensor *arr = realloc(*items, (size_t)(*count + e->n) * sizeof *arr);
    if (!arr) goto oom;
    *items = arr;
    int n = *count;
    for (int k = 0; k < e->n; k++) {
        char *name = join(prefix, e->entries[k].name);
        if (!name) {
            while (n > *count) free(arr[--n].name);
            goto oom;
        }
        arr[n++] = (wk_named_tensor){name, e->entries[k].shadow};
    }
    char buf[512];
    snprintf(buf, sizeof buf,
             "{\"format\":\"%s\",\"updates\":%lld,\"decay\":%.17g,\"warmup\":%s,\"interval\":%d,"
             "\"buffers\":%s}",
             STATE_FORMAT, (long long)e->steps, e->decay, e->opts.warmup ? "true" : "false",
             e->opts.interval, e->opts.buffers ? "true" : "false");
    if (!(*json = join("", buf))) {
        while (n > *count) free(arr[--n].name);
        goto oom;
    }
    *count = n;
    return 0;
oom:
    wk_set_error("%s: out of memory", op);
    return -1;
}

int wk_ema_state_load(wk_ema *e, const wk_safetensors *st, const char *prefix, const char *json)
{
    const char *op = "ema_state_load";
    if (!e || !st || !json) {
        wk_set_error("%s: %s is NULL", op, !e ? "EMA" : !st ? "safetensors" : "json");
        return -1;
    }
    if (e->swapped_in) {
        wk_set_error("%s: the EMA weights are swapped into the module; swap them out first", op);
        return -1;
    }
    if (!prefix) prefix = "";
    cJSON *root = cJSON_Parse(json);
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *upd = cJSON_GetObjectItemCaseSensitive(root, "updates");
    double u = cJSON_IsNumber(upd) ? upd->valuedouble : -1;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, STATE_FORMAT) != 0 || !(u >= 0) ||
        u != floor(u) || u > 9e15) {
        cJSON_Delete(root);
        wk_set_error("%s: not an EMA state (expected a JSON object with format \"%s\" and an "
                     "update count)",
                     op, STATE_FORMAT);
        return -1;
    }
    cJSON_Delete(root);

    const wk_tensor **src = calloc((size_t)e->n, sizeof *src);
    bool *used = calloc((size_t)st->count + 1, sizeof *used);
    char msg[700] = "";
    size_t len = 0;
    int nprob = 0;
    if (!src || !used) {
        free(src);
        free(used);
        wk_set_error("%s: out of memory", op);
        return -1;
    }
#define PROBLEM(...)                                                                      \
    do {                                                                                  \
        if (len < 500) {                                                                  \
            len += (size_t)snprintf(msg + len, sizeof msg - len, "%s", nprob ? "; " : "");  \
            len += (size_t)snprintf(msg + len, sizeof msg - len, __VA_ARGS__);             \
            if (len >= sizeof msg) len = sizeof msg - 1;                                  \
        }                                                                                 \
        nprob++;                                                                          \
    } while (0)
    for (int k = 0; k < e->n; k++) {
        const wk_tensor *sh = e->entries[k].shadow;
        char *name = join(prefix, e->entries[k].name);
        int idx = -1;
        for (int j = 0; name && j < st->count; j++)
            if (strcmp(st->items[j].name, name) == 0) idx = j;
        if (idx < 0) {
            PROBLEM("missing \"%s\"", name ? name : "?");
        } else {
            const wk_tensor *t = st->items[idx].tensor;
            used[idx] = true;
            if (!wk_same_shape(t, sh) || t->dtype != sh->dtype)
                PROBLEM("%s: file has %s %s, EMA has %s %s", name, wk_dtype_name(t->dtype),
                        wki_shape_s(t), wk_dtype_name(sh->dtype), wki_shape_s(sh));
            else src[k] = t;
        }
        free(name);
    }
    size_t plen = strlen(prefix);
    for (int j = 0; j < st->count; j++)
        if (!used[j] && strncmp(st->items[j].name, prefix, plen) == 0)
            PROBLEM("unexpected \"%s\"", st->items[j].name);
#undef PROBLEM
    int rc = -1;
    if (nprob) {
        wk_set_error("%s: %d problem%s: %s%s", op, nprob, nprob > 1 ? "s" : "", msg,
                     len >= 500 ? "; ..." : "");
    } else {
        rc = 0;
        for (int k = 0; k < e->n; k++)
            if (!wk_copy_(e->entries[k].shadow, src[k])) rc = -1;
        if (rc == 0) e->steps = (int64_t)u;
    }
    free(src);
    free(used);
    return rc;
}

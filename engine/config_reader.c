/* The reader of config objects: typed keys with defaults, problems recorded by key path
 * and file, unknown keys reported with the accepted ones and "did you mean". */
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "config-impl.h"

#define MAX_MARKS_LISTED 64

/* Copy with truncation (snprintf's truncation warning does not apply to this on purpose:
 * paths longer than a view holds are cut). */
static void copy_path(char *dst, size_t size, const char *src)
{
    size_t n = strlen(src);
    if (n >= size) n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

static void make_view(wk_config *cfg, const char *path, const cJSON *json, wk_cfg *v)
{
    memset(v, 0, sizeof *v);
    v->config = cfg;
    v->json = json;
    copy_path(v->path, sizeof v->path, path);
    v->errors_at_start = cfg ? cfg->nerrors : 0;
}

wk_cfg wk_config_root(wk_config *cfg)
{
    wk_cfg v;
    make_view(cfg, "", cfg ? cfg->root : NULL, &v);
    return v;
}

/* The value at key (NULL when absent), marking the key as accepted. */
static const cJSON *get(const wk_cfg *c, const char *key)
{
    if (!c || !c->config || !key) return NULL;
    wki_cfg_mark(c->config, c->path, key);
    return cJSON_IsObject(c->json) ? cJSON_GetObjectItemCaseSensitive(c->json, key) : NULL;
}

static bool absent(const cJSON *v) { return !v || cJSON_IsNull(v); }

const char *wk_cfg_key_path(const wk_cfg *c, const char *key, char *buf, size_t size)
{
    wki_cfg_join(buf, size, c ? c->path : "", key);
    return buf;
}

const char *wk_cfg_file(const wk_cfg *c, const char *key)
{
    if (!c) return NULL;
    char p[WKI_CFG_LONG_PATH];
    return wk_config_origin(c->config, wk_cfg_key_path(c, key, p, sizeof p));
}

static int problem(const wk_cfg *c, const char *key, const char *msg)
{
    if (!c || !c->config) {
        wk_set_error("config: %s", msg);
        return -1;
    }
    char p[WKI_CFG_LONG_PATH];
    wk_cfg_key_path(c, key, p, sizeof p);
    const char *file = wk_config_origin(c->config, p);
    size_t n = strlen(file) + strlen(p) + strlen(msg) + 8;
    char *line = malloc(n);
    if (!line) return wki_cfg_oom();
    if (p[0]) snprintf(line, n, "%s: %s: %s", file, p, msg);
    else snprintf(line, n, "%s: %s", file, msg);
    wki_cfg_record(c->config, line);
    free(line);
    return -1;
}

int wk_cfg_error(const wk_cfg *c, const char *key, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return problem(c, key, msg);
}

static int expected(const wk_cfg *c, const char *key, const char *what, const cJSON *got)
{
    char d[96];
    return wk_cfg_error(c, key, "expected %s, got %s", what, wki_cfg_describe(got, d, sizeof d));
}

int wk_cfg_expected(const wk_cfg *c, const char *key, const char *what)
{
    return expected(c, key, what, get(c, key));
}

wk_cfg_kind wk_cfg_kind_of(const wk_cfg *c, const char *key)
{
    const cJSON *v = get(c, key);
    if (absent(v)) return WK_CFG_ABSENT;
    if (cJSON_IsBool(v)) return WK_CFG_BOOL;
    if (cJSON_IsNumber(v)) return WK_CFG_NUMBER;
    if (cJSON_IsString(v)) return WK_CFG_STRING;
    if (cJSON_IsArray(v)) return WK_CFG_LIST;
    return WK_CFG_OBJECT;
}

bool wk_cfg_has(const wk_cfg *c, const char *key) { return !absent(get(c, key)); }

const struct cJSON *wk_cfg_raw(const wk_cfg *c, const char *key) { return get(c, key); }

static bool is_number(const cJSON *v) { return cJSON_IsNumber(v) && isfinite(v->valuedouble); }

static bool is_int(const cJSON *v)
{
    return is_number(v) && v->valuedouble == trunc(v->valuedouble) &&
           fabs(v->valuedouble) <= 9007199254740992.0;
}

int wk_cfg_number(const wk_cfg *c, const char *key, double def, double *out)
{
    const cJSON *v = get(c, key);
    *out = def;
    if (absent(v)) return 0;
    if (!is_number(v)) return expected(c, key, "a number", v);
    *out = v->valuedouble;
    return 1;
}

int wk_cfg_int(const wk_cfg *c, const char *key, int64_t def, int64_t *out)
{
    const cJSON *v = get(c, key);
    *out = def;
    if (absent(v)) return 0;
    if (!is_int(v)) return expected(c, key, "an integer", v);
    *out = (int64_t)v->valuedouble;
    return 1;
}

int64_t wk_cfg_int_min(const wk_cfg *c, const char *key, int64_t def, int64_t lo)
{
    int64_t v;
    if (wk_cfg_int(c, key, def, &v) == 1 && v < lo) {
        wk_cfg_error(c, key, "must be >= %lld, got %lld", (long long)lo, (long long)v);
        return def;
    }
    return v;
}

int wk_cfg_bool(const wk_cfg *c, const char *key, bool def, bool *out)
{
    const cJSON *v = get(c, key);
    *out = def;
    if (absent(v)) return 0;
    if (!cJSON_IsBool(v)) return expected(c, key, "true or false", v);
    *out = cJSON_IsTrue(v);
    return 1;
}

int wk_cfg_string(const wk_cfg *c, const char *key, const char *def, const char **out)
{
    const cJSON *v = get(c, key);
    *out = def;
    if (absent(v)) return 0;
    if (!cJSON_IsString(v)) return expected(c, key, "a string", v);
    *out = v->valuestring;
    return 1;
}

int wk_cfg_choice(const wk_cfg *c, const char *key, const char *def,
                  const char *const *choices, const char **out)
{
    int rc = wk_cfg_string(c, key, def, out);
    if (rc != 1) return rc;
    int n = 0;
    while (choices[n]) n++;
    for (int i = 0; i < n; i++)
        if (!strcmp(*out, choices[i])) return 1;
    char list[512];
    size_t k = 0;
    list[0] = '\0';
    for (int i = 0; i < n && k < sizeof list; i++)
        k += (size_t)snprintf(list + k, sizeof list - k, "%s\"%s\"", i ? ", " : "", choices[i]);
    const char *dym = wk_did_you_mean(*out, choices, n);
    char d[96];
    wki_cfg_describe(get(c, key), d, sizeof d);
    *out = def;
    if (dym) return wk_cfg_error(c, key, "expected one of %s, got %s; did you mean \"%s\"?", list,
                                 d, dym);
    return wk_cfg_error(c, key, "expected one of %s, got %s", list, d);
}

/* Shared by the list readers: each element checked by ok, stored by put. */
static int read_list(const wk_cfg *c, const char *key, int cap, int *n, const char *what_one,
                     const char *what_list, bool (*ok)(const cJSON *),
                     void (*store)(void *out, int i, const cJSON *v), void *out)
{
    const cJSON *v = get(c, key);
    *n = 0;
    if (absent(v)) return 0;
    if (ok(v)) {
        if (cap < 1) return wk_cfg_error(c, key, "expected an empty list");
        store(out, 0, v);
        *n = 1;
        return 1;
    }
    if (!cJSON_IsArray(v)) return expected(c, key, what_list, v);
    int len = cJSON_GetArraySize(v);
    if (len > cap)
        return wk_cfg_error(c, key, "expected at most %d items, got a list of %d", cap, len);
    int i = 0;
    for (const cJSON *e = v->child; e; e = e->next, i++) {
        if (!ok(e)) {
            char sub[WKI_CFG_LONG_PATH];
            snprintf(sub, sizeof sub, "%s.%d", key, i);
            return expected(c, sub, what_one, e);
        }
        store(out, i, e);
    }
    *n = len;
    return 1;
}

static void store_double(void *out, int i, const cJSON *v) { ((double *)out)[i] = v->valuedouble; }

static void store_int(void *out, int i, const cJSON *v)
{
    ((int64_t *)out)[i] = (int64_t)v->valuedouble;
}

int wk_cfg_number_list(const wk_cfg *c, const char *key, double *out, int cap, int *n)
{
    return read_list(c, key, cap, n, "a number", "a list of numbers", is_number, store_double,
                     out);
}

int wk_cfg_int_list(const wk_cfg *c, const char *key, int64_t *out, int cap, int *n)
{
    return read_list(c, key, cap, n, "an integer", "a list of integers", is_int, store_int, out);
}

int wk_cfg_object(const wk_cfg *c, const char *key, wk_cfg *child)
{
    const cJSON *v = get(c, key);
    char p[WKI_CFG_LONG_PATH];
    wk_cfg_key_path(c, key, p, sizeof p);
    make_view(c ? c->config : NULL, p, NULL, child);
    if (absent(v)) return 0;
    if (!cJSON_IsObject(v)) return expected(c, key, "an object", v);
    child->json = v;
    return 1;
}

int wk_cfg_items(const wk_cfg *c, const char *key)
{
    const cJSON *v = get(c, key);
    if (absent(v)) return 0;
    if (cJSON_IsObject(v)) return 1;
    if (cJSON_IsArray(v)) return cJSON_GetArraySize(v);
    return expected(c, key, "an object or a list of objects", v);
}

int wk_cfg_item(const wk_cfg *c, const char *key, int i, wk_cfg *child)
{
    const cJSON *v = get(c, key);
    char p[WKI_CFG_LONG_PATH];
    wk_cfg_key_path(c, key, p, sizeof p);
    make_view(c ? c->config : NULL, p, NULL, child);
    if (cJSON_IsObject(v) && i == 0) {
        child->json = v;
        return 0;
    }
    if (!cJSON_IsArray(v) || i < 0 || i >= cJSON_GetArraySize(v))
        return wk_cfg_error(c, key, "has no item %d", i);
    const cJSON *e = cJSON_GetArrayItem(v, i);
    char sub[WKI_CFG_LONG_PATH];
    snprintf(sub, sizeof sub, "%s.%d", key, i);
    wk_cfg_key_path(c, sub, p, sizeof p);
    copy_path(child->path, sizeof child->path, p);
    if (!cJSON_IsObject(e)) return expected(c, sub, "an object", e);
    child->json = e;
    return 0;
}

const char *wk_cfg_type(const wk_cfg *c)
{
    const cJSON *v = get(c, "type");
    if (absent(v)) return NULL;
    if (!cJSON_IsString(v)) {
        expected(c, "type", "a type name (a string)", v);
        return NULL;
    }
    return v->valuestring;
}

int wk_cfg_require(const wk_cfg *c, const char *key)
{
    if (wk_cfg_has(c, key)) return 0;
    if (c && c->what[0]) return wk_cfg_error(c, key, "missing (%s needs it)", c->what);
    return wk_cfg_error(c, key, "missing (required)");
}

/* "a, b, c" of the keys asked for under path. */
static void accepted_list(const wk_cfg *c, char *buf, size_t size, const char **keys, int *n)
{
    *n = wki_cfg_marks_of(c->config, c->path, keys, MAX_MARKS_LISTED);
    if (*n > MAX_MARKS_LISTED) *n = MAX_MARKS_LISTED;
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; i < *n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? ", " : "", keys[i]);
}

int wk_cfg_finish(const wk_cfg *c)
{
    if (!c || !c->config) {
        wk_set_error("cfg_finish: view is NULL");
        return -1;
    }
    const char *keys[MAX_MARKS_LISTED];
    int n = 0;
    char list[768];
    bool listed = false;
    const char *unknown[MAX_MARKS_LISTED];
    int nunknown = 0;
    for (const cJSON *e = cJSON_IsObject(c->json) ? c->json->child : NULL; e; e = e->next) {
        if (wki_cfg_marked(c->config, c->path, e->string)) continue;
        if (!listed) accepted_list(c, list, sizeof list, keys, &n);
        listed = true;
        const char *dym = wk_did_you_mean(e->string, keys, n);
        char hint[128] = "";
        if (dym) snprintf(hint, sizeof hint, "; did you mean '%s'?", dym);
        const char *who = c->what[0] ? c->what : "it";
        if (n) wk_cfg_error(c, e->string, "unknown key%s (%s accepts %s)", hint, who, list);
        else wk_cfg_error(c, e->string, "unknown key (%s accepts no keys)", who);
        if (nunknown < MAX_MARKS_LISTED) unknown[nunknown++] = e->string;
    }
    /* reported once: a second finish of the same object stays quiet about them */
    for (int i = 0; i < nunknown; i++) wki_cfg_mark(c->config, c->path, unknown[i]);
    if (c->config->nerrors > c->errors_at_start) {
        wki_cfg_refresh_error(c->config);
        return -1;
    }
    return 0;
}

static const char *const sections[] = {"model",         "train_dataloader", "val_dataloader",
                                       "test_dataloader", "val_evaluator",  "test_evaluator",
                                       "optimizer",     "scheduler",        "runner",
                                       "hooks",         NULL};

int wk_config_check_sections(wk_config *cfg)
{
    if (!cfg) {
        wk_set_error("config_check_sections: config is NULL");
        return -1;
    }
    wk_cfg root = wk_config_root(cfg);
    int n = 0;
    char list[512] = "";
    size_t k = 0;
    for (; sections[n]; n++) {
        wki_cfg_mark(cfg, "", sections[n]);
        k += (size_t)snprintf(list + k, sizeof list - k, "%s%s", n ? ", " : "", sections[n]);
    }
    for (const cJSON *e = cfg->root->child; e; e = e->next) {
        bool known = false;
        for (int i = 0; i < n && !known; i++) known = !strcmp(e->string, sections[i]);
        if (known) continue;
        const char *dym = wk_did_you_mean(e->string, (const char **)sections, n);
        if (dym)
            wk_cfg_error(&root, e->string, "unknown section; did you mean '%s'? (sections: %s)",
                         dym, list);
        else wk_cfg_error(&root, e->string, "unknown section (sections: %s)", list);
    }
    if (cfg->nerrors > root.errors_at_start) {
        wki_cfg_refresh_error(cfg);
        return -1;
    }
    return 0;
}

int wk_edit_distance(const char *a, const char *b)
{
    /* optimal string alignment: Levenshtein plus adjacent transpositions ("mxa" -> "max"
     * is one typo) */
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return (int)(la > lb ? la : lb);
    int d[65][65];
    for (size_t i = 0; i <= la; i++) d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++) d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
            int best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *wk_did_you_mean(const char *name, const char *const *candidates, int n)
{
    if (!name || !candidates) return NULL;
    int limit = strlen(name) <= 4 ? 1 : 2;
    const char *best = NULL;
    int bd = limit + 1;
    for (int i = 0; i < n; i++) {
        if (!candidates[i]) continue;
        int d = wk_edit_distance(name, candidates[i]);
        if (d < bd) {
            bd = d;
            best = candidates[i];
        }
    }
    return best;
}

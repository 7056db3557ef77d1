/* JSON config files: loading with _base_ inheritance, --set overrides, origins of keys,
 * printing, and the problem list the reader (config_reader.c) fills. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "config-impl.h"

#define MAX_BASE_DEPTH 32

/* ---- small helpers ---- */

static char *xstrdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

static bool grow(void **v, int *cap, int n, size_t elem)
{
    if (n < *cap) return true;
    int nc = *cap ? *cap * 2 : 16;
    void *nv = realloc(*v, (size_t)nc * elem);
    if (!nv) return false;
    *v = nv;
    *cap = nc;
    return true;
}

void wki_cfg_join(char *buf, size_t size, const char *path, const char *key)
{
    if (!key) snprintf(buf, size, "%s", path);
    else if (!path[0]) snprintf(buf, size, "%s", key);
    else snprintf(buf, size, "%s.%s", path, key);
}

/* p is prefix itself or lies below it ("" is above everything). */
static bool path_under(const char *p, const char *prefix)
{
    size_t n = strlen(prefix);
    if (!n) return true;
    return !strncmp(p, prefix, n) && (p[n] == '\0' || p[n] == '.');
}

const char *wki_cfg_describe(const cJSON *v, char *buf, size_t size)
{
    if (!v) snprintf(buf, size, "nothing");
    else if (cJSON_IsNull(v)) snprintf(buf, size, "null");
    else if (cJSON_IsTrue(v)) snprintf(buf, size, "true");
    else if (cJSON_IsFalse(v)) snprintf(buf, size, "false");
    else if (cJSON_IsNumber(v)) snprintf(buf, size, "the number %.17g", v->valuedouble);
    else if (cJSON_IsString(v)) {
        size_t len = strlen(v->valuestring);
        if (len > 40) snprintf(buf, size, "the string \"%.37s...\"", v->valuestring);
        else snprintf(buf, size, "the string \"%s\"", v->valuestring);
    } else if (cJSON_IsArray(v)) {
        int n = cJSON_GetArraySize(v);
        snprintf(buf, size, "a list of %d item%s", n, n == 1 ? "" : "s");
    } else if (cJSON_IsObject(v)) snprintf(buf, size, "an object");
    else snprintf(buf, size, "an invalid value");
    /* %.17g spells 0.1 as 0.10000000000000001; prefer the shortest exact form */
    if (cJSON_IsNumber(v)) {
        for (int prec = 1; prec <= 17; prec++) {
            char t[40];
            snprintf(t, sizeof t, "%.*g", prec, v->valuedouble);
            if (strtod(t, NULL) == v->valuedouble) {
                snprintf(buf, size, "the number %s", t);
                break;
            }
        }
    }
    return buf;
}

/* ---- origins: the file that set each key path last ---- */

static void om_free(wki_origin_map *m)
{
    for (int i = 0; i < m->n; i++) free(m->v[i].path);
    free(m->v);
    m->v = NULL;
    m->n = m->cap = 0;
}

static const char *om_get(const wki_origin_map *m, const char *path)
{
    for (int i = 0; i < m->n; i++)
        if (!strcmp(m->v[i].path, path)) return m->v[i].file;
    return NULL;
}

static void om_remove_under(wki_origin_map *m, const char *prefix)
{
    int k = 0;
    for (int i = 0; i < m->n; i++) {
        if (path_under(m->v[i].path, prefix)) free(m->v[i].path);
        else m->v[k++] = m->v[i];
    }
    m->n = k;
}

static int om_set(wki_origin_map *m, const char *path, const char *file)
{
    for (int i = 0; i < m->n; i++) {
        if (!strcmp(m->v[i].path, path)) {
            m->v[i].file = file;
            return 0;
        }
    }
    if (!grow((void **)&m->v, &m->cap, m->n, sizeof *m->v)) return -1;
    char *p = xstrdup(path);
    if (!p) return -1;
    m->v[m->n].path = p;
    m->v[m->n].file = file;
    m->n++;
    return 0;
}

static int om_copy_under(wki_origin_map *dst, const wki_origin_map *src, const char *prefix)
{
    for (int i = 0; i < src->n; i++)
        if (path_under(src->v[i].path, prefix) && om_set(dst, src->v[i].path, src->v[i].file))
            return -1;
    return 0;
}

/* path and everything below item come from file; duplicate keys are an error. */
static int om_fill(wk_config *cfg, wki_origin_map *m, const char *path, const cJSON *item,
                   const char *file)
{
    if (om_set(m, path, file)) return wki_cfg_oom();
    int idx = 0;
    for (const cJSON *c = item->child; c; c = c->next, idx++) {
        char p[WKI_CFG_LONG_PATH], ib[24];
        const char *key = c->string;
        if (cJSON_IsArray(item)) {
            snprintf(ib, sizeof ib, "%d", idx);
            key = ib;
        } else {
            for (const cJSON *e = item->child; e != c; e = e->next) {
                if (!strcmp(e->string, c->string)) {
                    wki_cfg_join(p, sizeof p, path, key);
                    wk_set_error("%s: %s: key given twice", file, p);
                    (void)cfg;
                    return -1;
                }
            }
        }
        wki_cfg_join(p, sizeof p, path, key);
        if (om_fill(cfg, m, p, c, file)) return -1;
    }
    return 0;
}

int wki_cfg_oom(void)
{
    wk_set_error("config: out of memory");
    return -1;
}

static const char *intern(wk_config *cfg, const char *name)
{
    for (int i = 0; i < cfg->nfiles; i++)
        if (!strcmp(cfg->files[i], name)) return cfg->files[i];
    if (!grow((void **)&cfg->files, &cfg->capfiles, cfg->nfiles, sizeof *cfg->files))
        return NULL;
    char *d = xstrdup(name);
    if (!d) return NULL;
    cfg->files[cfg->nfiles++] = d;
    return d;
}

/* ---- merging ---- */

static void put(cJSON *obj, const char *key, cJSON *item)
{
    if (cJSON_GetObjectItemCaseSensitive(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, item);
    else cJSON_AddItemToObject(obj, key, item);
}

static void strip_delete(cJSON *v)
{
    if (cJSON_IsObject(v)) cJSON_DeleteItemFromObjectCaseSensitive(v, "_delete_");
    for (cJSON *c = v->child; c; c = c->next) strip_delete(c);
}

/* Merge src over dst (both objects) at path: objects recursively, everything else
 * replaced, "_delete_": true replacing instead of merging. Origins follow from sm. */
static int merge(cJSON *dst, const cJSON *src, const char *path, wki_origin_map *dm,
                 const wki_origin_map *sm)
{
    for (const cJSON *s = src->child; s; s = s->next) {
        if (!strcmp(s->string, "_delete_")) continue;
        char p[WKI_CFG_LONG_PATH];
        wki_cfg_join(p, sizeof p, path, s->string);
        const char *file = om_get(sm, p);
        cJSON *d = cJSON_GetObjectItemCaseSensitive(dst, s->string);
        if (cJSON_IsObject(s)) {
            const cJSON *del = cJSON_GetObjectItemCaseSensitive(s, "_delete_");
            if (del && !cJSON_IsBool(del)) {
                char got[96];
                wk_set_error("%s: %s._delete_: expected true or false, got %s", file, p,
                             wki_cfg_describe(del, got, sizeof got));
                return -1;
            }
            if (!cJSON_IsObject(d) || cJSON_IsTrue(del)) {
                cJSON *fresh = cJSON_CreateObject();
                if (!fresh) return wki_cfg_oom();
                put(dst, s->string, fresh);
                om_remove_under(dm, p);
                d = fresh;
            }
            if (om_set(dm, p, file)) return wki_cfg_oom();
            if (merge(d, s, p, dm, sm)) return -1;
        } else {
            cJSON *copy = cJSON_Duplicate(s, 1);
            if (!copy) return wki_cfg_oom();
            strip_delete(copy);
            put(dst, s->string, copy);
            om_remove_under(dm, p);
            if (om_copy_under(dm, sm, p)) return wki_cfg_oom();
        }
    }
    return 0;
}

/* ---- loading ---- */

typedef struct {
    const char *names[MAX_BASE_DEPTH];
    char *ids[MAX_BASE_DEPTH];
    int n;
} chain;

static char *read_file(const char *path, const char *includer, const char *as_written)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        if (includer)
            wk_set_error("%s: _base_: cannot open %s (%s): %s", includer, as_written, path,
                         strerror(errno));
        else wk_set_error("cannot open config %s: %s", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, f);
        n += got;
        if (got == 0) break;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!buf) {
        wki_cfg_oom();
        return NULL;
    }
    if (bad) {
        free(buf);
        wk_set_error("cannot read config %s", path);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static cJSON *parse_text(const char *text, const char *name)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithOpts(text, &end, 1);
    if (j) return j;
    if (!end) end = text;
    const char *rest = NULL;
    cJSON *prefix = cJSON_ParseWithOpts(text, &rest, 0);
    bool trailing = prefix != NULL;
    cJSON_Delete(prefix);
    if (trailing) {
        end = rest;
        while (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t') end++;
    }
    bool at_end = !*end, empty = true;
    for (const char *p = text; *p && empty; p++)
        empty = *p == ' ' || *p == '\n' || *p == '\r' || *p == '\t';
    if (at_end) {
        /* cJSON stops past the end for an unclosed bracket or a trailing comma before the
         * last bracket: point at the last character instead */
        while (end > text && (end[-1] == ' ' || end[-1] == '\n' || end[-1] == '\r' ||
                              end[-1] == '\t'))
            end--;
        if (end > text) end--;
    }
    int line = 1, col = 1;
    for (const char *p = text; p < end && *p; p++) {
        if (*p == '\n') line++, col = 1;
        else col++;
    }
    if (empty) {
        wk_set_error("%s:1:1: the file is empty (expected a JSON object)", name);
    } else if (at_end) {
        wk_set_error("%s:%d:%d: invalid JSON at the end of the file (an unclosed bracket or a "
                     "trailing comma?)", name, line, col);
    } else if (trailing) {
        wk_set_error("%s:%d:%d: unexpected text after the JSON object", name, line, col);
    } else {
        int k = 0;
        while (k < 24 && end[k] && end[k] != '\n' && end[k] != '\r') k++;
        wk_set_error("%s:%d:%d: invalid JSON near \"%.*s\"", name, line, col, k, end);
    }
    return NULL;
}

static void dir_of(const char *path, char *buf, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) buf[0] = '\0';
    else snprintf(buf, size, "%.*s", (int)(slash - path + 1), path);
}

/* Load `name` (or `text` when given) with its bases into a new object; *om gets the
 * origins. includer / as_written name the including file and the _base_ entry. */
static cJSON *load(wk_config *cfg, const char *name, const char *text, const char *includer,
                   const char *as_written, chain *ch, wki_origin_map *om)
{
    const char *file = intern(cfg, name);
    if (!file) {
        wki_cfg_oom();
        return NULL;
    }
    char *id = NULL;
    if (text) id = xstrdup(name);
    else {
        id = realpath(name, NULL);
        if (!id) {
            if (includer)
                wk_set_error("%s: _base_: cannot open %s (%s): %s", includer, as_written, name,
                             strerror(errno));
            else wk_set_error("cannot open config %s: %s", name, strerror(errno));
            return NULL;
        }
    }
    if (!id) {
        wki_cfg_oom();
        return NULL;
    }
    for (int i = 0; i < ch->n; i++) {
        if (!strcmp(ch->ids[i], id)) {
            char msg[900];
            size_t k = (size_t)snprintf(msg, sizeof msg, "_base_ cycle: ");
            for (int j = i; j < ch->n && k < sizeof msg; j++)
                k += (size_t)snprintf(msg + k, sizeof msg - k, "%s -> ", ch->names[j]);
            if (k < sizeof msg) snprintf(msg + k, sizeof msg - k, "%s", file);
            wk_set_error("%s: %s", includer ? includer : file, msg);
            free(id);
            return NULL;
        }
    }
    if (ch->n == MAX_BASE_DEPTH) {
        wk_set_error("%s: _base_ files nest deeper than %d levels", file, MAX_BASE_DEPTH);
        free(id);
        return NULL;
    }
    ch->names[ch->n] = file;
    ch->ids[ch->n] = id;
    ch->n++;

    cJSON *result = NULL, *own = NULL;
    wki_origin_map own_map = {0};
    char *owned_text = NULL;
    if (!text) {
        owned_text = read_file(name, includer, as_written);
        if (!owned_text) goto done;
        text = owned_text;
    }
    own = parse_text(text, file);
    if (!own) goto done;
    if (!cJSON_IsObject(own)) {
        char got[96];
        wk_set_error("%s: expected a JSON object at the top level, got %s", file,
                     wki_cfg_describe(own, got, sizeof got));
        goto done;
    }
    cJSON *base = cJSON_DetachItemFromObjectCaseSensitive(own, "_base_");
    result = cJSON_CreateObject();
    if (!result || om_set(om, "", file)) {
        cJSON_Delete(base);
        wki_cfg_oom();
        goto fail;
    }
    if (base && !cJSON_IsNull(base)) {
        bool ok = cJSON_IsString(base) || cJSON_IsArray(base);
        for (const cJSON *b = cJSON_IsArray(base) ? base->child : NULL; b && ok; b = b->next)
            ok = cJSON_IsString(b);
        for (const cJSON *b = cJSON_IsArray(base) ? base->child : base; b && ok; b = b->next)
            ok = b->valuestring[0] != '\0';
        if (!ok) {
            char got[96];
            wk_set_error("%s: _base_: expected a file name or a list of file names, got %s",
                         file, wki_cfg_describe(base, got, sizeof got));
            cJSON_Delete(base);
            goto fail;
        }
        char dir[PATH_MAX];
        dir_of(file, dir, sizeof dir);
        for (const cJSON *b = cJSON_IsArray(base) ? base->child : base; b;
             b = cJSON_IsArray(base) ? b->next : NULL) {
            char bpath[PATH_MAX + 256];
            if (b->valuestring[0] == '/') snprintf(bpath, sizeof bpath, "%s", b->valuestring);
            else snprintf(bpath, sizeof bpath, "%s%s", dir, b->valuestring);
            wki_origin_map bm = {0};
            cJSON *bj = load(cfg, bpath, NULL, file, b->valuestring, ch, &bm);
            int rc = bj ? merge(result, bj, "", om, &bm) : -1;
            cJSON_Delete(bj);
            om_free(&bm);
            if (rc) {
                cJSON_Delete(base);
                goto fail;
            }
        }
    }
    cJSON_Delete(base);
    if (om_fill(cfg, &own_map, "", own, file)) goto fail;
    if (merge(result, own, "", om, &own_map)) goto fail;
    if (om_set(om, "", file)) {
        wki_cfg_oom();
        goto fail;
    }
    goto done;
fail:
    cJSON_Delete(result);
    result = NULL;
done:
    cJSON_Delete(own);
    om_free(&own_map);
    free(owned_text);
    ch->n--;
    free(ch->ids[ch->n]);
    return result;
}

static wk_config *config_new(const char *name)
{
    wk_config *cfg = calloc(1, sizeof *cfg);
    if (!cfg) return NULL;
    cfg->file = xstrdup(name);
    const char *base = strrchr(name, '/');
    base = base ? base + 1 : name;
    cfg->name = xstrdup(base);
    if (!cfg->file || !cfg->name) {
        wk_config_free(cfg);
        return NULL;
    }
    char *dot = strrchr(cfg->name, '.');
    if (dot && dot != cfg->name) *dot = '\0';
    return cfg;
}

static wk_config *config_load(const char *name, const char *text)
{
    wk_config *cfg = config_new(name);
    if (!cfg) {
        wki_cfg_oom();
        return NULL;
    }
    chain ch = {0};
    cfg->root = load(cfg, name, text, NULL, NULL, &ch, &cfg->origins);
    if (!cfg->root) {
        wk_config_free(cfg);
        return NULL;
    }
    return cfg;
}

wk_config *wk_config_load(const char *path)
{
    if (!path || !path[0]) {
        wk_set_error("config_load: path is NULL or empty");
        return NULL;
    }
    return config_load(path, NULL);
}

wk_config *wk_config_parse(const char *json, const char *name)
{
    if (!json) {
        wk_set_error("config_parse: text is NULL");
        return NULL;
    }
    return config_load(name && name[0] ? name : "<string>", json);
}

void wk_config_free(wk_config *cfg)
{
    if (!cfg) return;
    cJSON_Delete(cfg->root);
    om_free(&cfg->origins);
    for (int i = 0; i < cfg->nfiles; i++) free(cfg->files[i]);
    free(cfg->files);
    for (int i = 0; i < cfg->nmarks; i++) free(cfg->marks[i].parent), free(cfg->marks[i].key);
    free(cfg->marks);
    wk_config_clear_errors(cfg);
    free(cfg->errors);
    free(cfg->file);
    free(cfg->name);
    free(cfg);
}

/* ---- --set ---- */

static bool parse_index(const char *s, int *out)
{
    if (!*s) return false;
    long v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9' || v > 1000000) return false;
        v = v * 10 + (*p - '0');
    }
    *out = (int)v;
    return true;
}

int wk_config_set(wk_config *cfg, const char *assignment)
{
    if (!cfg || !assignment) {
        wk_set_error("--set: config or assignment is NULL");
        return -1;
    }
    const char *eq = strchr(assignment, '=');
    if (!eq) {
        wk_set_error("--set %s: expected key=value (e.g. optimizer.lr=0.01)", assignment);
        return -1;
    }
    size_t klen = (size_t)(eq - assignment);
    if (klen == 0 || klen >= WKI_CFG_LONG_PATH) {
        wk_set_error("--set %s: the key is %s", assignment, klen ? "too long" : "empty");
        return -1;
    }
    char key[WKI_CFG_LONG_PATH];
    memcpy(key, assignment, klen);
    key[klen] = '\0';
    const char *text = eq + 1;
    const char *end = NULL;
    cJSON *value = cJSON_ParseWithOpts(text, &end, 1);
    if (!value) value = cJSON_CreateString(text);
    if (!value) return wki_cfg_oom();

    const char *setter = intern(cfg, "--set");
    if (!setter) {
        cJSON_Delete(value);
        return wki_cfg_oom();
    }
    cJSON *cur = cfg->root;
    char path[WKI_CFG_LONG_PATH] = "";
    char *seg = key;
    for (;;) {
        char *dot = strchr(seg, '.');
        bool last = !dot;
        if (dot) *dot = '\0';
        if (!*seg) {
            wk_set_error("--set %s: empty part in the key", assignment);
            goto fail;
        }
        char here[WKI_CFG_LONG_PATH];
        wki_cfg_join(here, sizeof here, path, seg);
        cJSON *child = NULL;
        if (cJSON_IsObject(cur)) {
            child = cJSON_GetObjectItemCaseSensitive(cur, seg);
            if (last) {
                put(cur, seg, value);
            } else if (!child || cJSON_IsNull(child)) {
                child = cJSON_CreateObject();
                if (!child) {
                    wki_cfg_oom();
                    goto fail;
                }
                put(cur, seg, child);
                om_remove_under(&cfg->origins, here);
                if (om_set(&cfg->origins, here, setter)) {
                    wki_cfg_oom();
                    goto fail;
                }
            }
        } else {
            int idx, n = cJSON_GetArraySize(cur);
            if (!parse_index(seg, &idx)) {
                wk_set_error("--set %s: %s is a list: expected an index (0..%d), got '%s'",
                             assignment, path, n - 1, seg);
                goto fail;
            }
            if (last && idx == n) cJSON_AddItemToArray(cur, value);
            else if (idx >= n) {
                wk_set_error("--set %s: %s has %d item%s: index %d is out of range",
                             assignment, path, n, n == 1 ? "" : "s", idx);
                goto fail;
            } else if (last) cJSON_ReplaceItemInArray(cur, idx, value);
            else child = cJSON_GetArrayItem(cur, idx);
        }
        if (last) {
            strcpy(path, here);
            break;
        }
        if (!cJSON_IsObject(child) && !cJSON_IsArray(child)) {
            char got[96];
            wk_set_error("--set %s: %s is %s, not an object", assignment, here,
                         wki_cfg_describe(child, got, sizeof got));
            goto fail;
        }
        cur = child;
        strcpy(path, here);
        seg = dot + 1;
    }
    om_remove_under(&cfg->origins, path);
    if (om_fill(cfg, &cfg->origins, path, value, setter)) return -1;
    return 0;
fail:
    cJSON_Delete(value);
    return -1;
}

/* ---- printing ---- */

typedef struct {
    char *s;
    size_t n, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len)
{
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t nc = b->cap ? b->cap : 1024;
        while (nc < b->n + len + 1) nc *= 2;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = true;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, len);
    b->n += len;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_indent(sbuf *b, int n)
{
    for (int i = 0; i < n; i++) sb_put(b, " ", 1);
}

static void sb_quoted(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        char e[8];
        switch (*p) {
        case '"': sb_str(b, "\\\""); break;
        case '\\': sb_str(b, "\\\\"); break;
        case '\n': sb_str(b, "\\n"); break;
        case '\t': sb_str(b, "\\t"); break;
        case '\r': sb_str(b, "\\r"); break;
        case '\b': sb_str(b, "\\b"); break;
        case '\f': sb_str(b, "\\f"); break;
        default:
            if (*p < 0x20) {
                snprintf(e, sizeof e, "\\u%04x", *p);
                sb_str(b, e);
            } else sb_put(b, (const char *)p, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_scalar(sbuf *b, const cJSON *v)
{
    if (cJSON_IsString(v)) {
        sb_quoted(b, v->valuestring);
        return;
    }
    char *t = cJSON_PrintUnformatted(v);
    if (!t) {
        b->oom = true;
        return;
    }
    sb_str(b, t);
    cJSON_free(t);
}

static bool is_container(const cJSON *v) { return cJSON_IsArray(v) || cJSON_IsObject(v); }

static void print_value(sbuf *b, const cJSON *v, int indent)
{
    if (!is_container(v)) {
        sb_scalar(b, v);
        return;
    }
    bool obj = cJSON_IsObject(v);
    if (!v->child) {
        sb_str(b, obj ? "{}" : "[]");
        return;
    }
    if (!obj) {
        bool flat = true;
        for (const cJSON *c = v->child; c && flat; c = c->next) flat = !is_container(c);
        if (flat) {
            sbuf t = {0};
            sb_str(&t, "[");
            for (const cJSON *c = v->child; c; c = c->next) {
                sb_scalar(&t, c);
                if (c->next) sb_str(&t, ", ");
            }
            sb_str(&t, "]");
            if (!t.oom && indent + t.n <= 96) {
                sb_str(b, t.s);
                free(t.s);
                return;
            }
            free(t.s);
        }
    }
    sb_str(b, obj ? "{\n" : "[\n");
    for (const cJSON *c = v->child; c; c = c->next) {
        sb_indent(b, indent + 2);
        if (obj) {
            sb_quoted(b, c->string);
            sb_str(b, ": ");
        }
        print_value(b, c, indent + 2);
        sb_str(b, c->next ? ",\n" : "\n");
    }
    sb_indent(b, indent);
    sb_str(b, obj ? "}" : "]");
}

char *wk_config_to_string(const wk_config *cfg)
{
    if (!cfg) {
        wk_set_error("config_to_string: config is NULL");
        return NULL;
    }
    sbuf b = {0};
    print_value(&b, cfg->root, 0);
    if (b.oom) {
        free(b.s);
        wki_cfg_oom();
        return NULL;
    }
    return b.s;
}

int wk_config_print(const wk_config *cfg, FILE *f)
{
    char *s = wk_config_to_string(cfg);
    if (!s) return -1;
    int rc = fprintf(f ? f : stdout, "%s\n", s) < 0 ? -1 : 0;
    free(s);
    return rc;
}

const struct cJSON *wk_config_json(const wk_config *cfg) { return cfg ? cfg->root : NULL; }

const char *wk_config_origin(const wk_config *cfg, const char *path)
{
    if (!cfg) return NULL;
    char p[WKI_CFG_LONG_PATH];
    snprintf(p, sizeof p, "%s", path ? path : "");
    for (;;) {
        const char *f = om_get(&cfg->origins, p);
        if (f) return f;
        if (!p[0]) return cfg->file;
        char *dot = strrchr(p, '.');
        if (dot) *dot = '\0';
        else p[0] = '\0';
    }
}

const char *wk_config_file(const wk_config *cfg) { return cfg ? cfg->file : NULL; }

const char *wk_config_name(const wk_config *cfg) { return cfg ? cfg->name : NULL; }

/* ---- problems ---- */

static void refresh_last_error(const wk_config *cfg)
{
    /* wk_last_error's buffer holds about 1000 characters: whole lines, then a count */
    size_t used = 0;
    int shown = 0;
    for (; shown < cfg->nerrors; shown++) {
        size_t len = strlen(cfg->errors[shown]) + 1;
        if (used + len > 900 && shown > 0) break;
        used += len;
    }
    if (shown == cfg->nerrors) {
        wk_set_error("%s", cfg->joined ? cfg->joined : "");
        return;
    }
    wk_set_error("%.*s\n... and %d more problems (wk_config_errors lists them all)",
                 (int)(used ? used - 1 : 0), cfg->joined, cfg->nerrors - shown);
}

void wki_cfg_refresh_error(const wk_config *cfg) { refresh_last_error(cfg); }

int wki_cfg_record(wk_config *cfg, const char *line)
{
    if (!grow((void **)&cfg->errors, &cfg->caperrors, cfg->nerrors, sizeof *cfg->errors))
        return wki_cfg_oom();
    char *l = xstrdup(line);
    size_t jl = cfg->joined ? strlen(cfg->joined) : 0;
    char *nj = l ? realloc(cfg->joined, jl + strlen(line) + 2) : NULL;
    if (!nj) {
        free(l);
        return wki_cfg_oom();
    }
    if (jl) nj[jl++] = '\n';
    strcpy(nj + jl, line);
    cfg->joined = nj;
    cfg->errors[cfg->nerrors++] = l;
    refresh_last_error(cfg);
    return -1;
}

const char *wk_config_errors(const wk_config *cfg)
{
    return cfg && cfg->joined ? cfg->joined : "";
}

int wk_config_error_count(const wk_config *cfg) { return cfg ? cfg->nerrors : 0; }

void wk_config_clear_errors(wk_config *cfg)
{
    if (!cfg) return;
    for (int i = 0; i < cfg->nerrors; i++) free(cfg->errors[i]);
    cfg->nerrors = 0;
    free(cfg->joined);
    cfg->joined = NULL;
}

/* ---- marks: the keys readers asked for ---- */

void wki_cfg_mark(wk_config *cfg, const char *parent, const char *key)
{
    if (wki_cfg_marked(cfg, parent, key)) return;
    if (!grow((void **)&cfg->marks, &cfg->capmarks, cfg->nmarks, sizeof *cfg->marks)) return;
    char *p = xstrdup(parent), *k = xstrdup(key);
    if (!p || !k) {
        free(p), free(k);
        return;
    }
    cfg->marks[cfg->nmarks].parent = p;
    cfg->marks[cfg->nmarks].key = k;
    cfg->nmarks++;
}

bool wki_cfg_marked(const wk_config *cfg, const char *parent, const char *key)
{
    for (int i = 0; i < cfg->nmarks; i++)
        if (!strcmp(cfg->marks[i].parent, parent) && !strcmp(cfg->marks[i].key, key))
            return true;
    return false;
}

int wki_cfg_marks_of(const wk_config *cfg, const char *parent, const char **out, int cap)
{
    int n = 0;
    for (int i = 0; i < cfg->nmarks; i++)
        if (!strcmp(cfg->marks[i].parent, parent)) {
            if (n < cap) out[n] = cfg->marks[i].key;
            n++;
        }
    return n;
}

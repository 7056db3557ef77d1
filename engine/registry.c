/* The registry: names to constructors per kind, and the builders that resolve "type",
 * run the constructor and report what went wrong by key and file. */
#include <ctype.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "config-impl.h"
#include "registry-impl.h"

typedef struct {
    char *name;
    wk_ctor_fn fn;
} entry;

typedef struct {
    entry *v;
    int n, cap;
    const char **sorted; /* names, sorted, for messages and wk_registry_names */
} kind_table;

static kind_table tables[WK_KIND_COUNT];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bool builtins_loaded;

static const char *const kind_names[] = {"model",     "dataset", "transform", "optimizer",
                                         "scheduler", "metric",  "hook"};
_Static_assert(sizeof kind_names / sizeof kind_names[0] == WK_KIND_COUNT,
               "a name for every wk_kind");

const char *wk_kind_name(wk_kind kind)
{
    return (unsigned)kind < WK_KIND_COUNT ? kind_names[kind] : "?";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static entry *find_locked(wk_kind kind, const char *name)
{
    kind_table *t = &tables[kind];
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->v[i].name, name)) return &t->v[i];
    return NULL;
}

/* replace: a user registration (wins over anything before); else a built-in, which
 * never replaces a user's type registered before the table was read. */
static int add_locked(wk_kind kind, const char *name, wk_ctor_fn fn, bool replace)
{
    entry *e = find_locked(kind, name);
    if (e) {
        if (replace) e->fn = fn;
        return 0;
    }
    kind_table *t = &tables[kind];
    if (t->n == t->cap) {
        int nc = t->cap ? t->cap * 2 : 16;
        entry *nv = realloc(t->v, (size_t)nc * sizeof *nv);
        const char **ns = realloc(t->sorted, (size_t)nc * sizeof *ns);
        if (nv) t->v = nv;
        if (ns) t->sorted = ns;
        if (!nv || !ns) {
            wk_set_error("registry: out of memory");
            return -1;
        }
        t->cap = nc;
    }
    size_t len = strlen(name) + 1;
    char *copy = malloc(len);
    if (!copy) {
        wk_set_error("registry: out of memory");
        return -1;
    }
    memcpy(copy, name, len);
    t->v[t->n].name = copy;
    t->v[t->n].fn = fn;
    t->sorted[t->n] = copy;
    t->n++;
    qsort(t->sorted, (size_t)t->n, sizeof *t->sorted, cmp_str);
    return 0;
}

static void load_builtins_locked(void)
{
    if (builtins_loaded) return;
    builtins_loaded = true;
    for (int i = 0; i < wki_nbuiltins; i++)
        add_locked(wki_builtins[i].kind, wki_builtins[i].name, wki_builtins[i].fn, false);
}

int wk_registry_add(wk_kind kind, const char *name, wk_ctor_fn fn)
{
    if ((unsigned)kind >= WK_KIND_COUNT || !name || !name[0] || !fn) {
        wk_set_error("registry_add: needs a valid kind (0..%d), a name and a constructor",
                     WK_KIND_COUNT - 1);
        return -1;
    }
    pthread_mutex_lock(&lock);
    int rc = add_locked(kind, name, fn, true);
    pthread_mutex_unlock(&lock);
    return rc;
}

int wk_registry_add_model(const char *name, wk_model_ctor fn)
{
    return wk_registry_add(WK_KIND_MODEL, name, (wk_ctor_fn)fn);
}

int wk_registry_add_dataset(const char *name, wk_dataset_ctor fn)
{
    return wk_registry_add(WK_KIND_DATASET, name, (wk_ctor_fn)fn);
}

int wk_registry_add_transform(const char *name, wk_transform_ctor fn)
{
    return wk_registry_add(WK_KIND_TRANSFORM, name, (wk_ctor_fn)fn);
}

int wk_registry_add_optimizer(const char *name, wk_optimizer_ctor fn)
{
    return wk_registry_add(WK_KIND_OPTIMIZER, name, (wk_ctor_fn)fn);
}

int wk_registry_add_scheduler(const char *name, wk_scheduler_ctor fn)
{
    return wk_registry_add(WK_KIND_SCHEDULER, name, (wk_ctor_fn)fn);
}

int wk_registry_add_metric(const char *name, wk_metric_ctor fn)
{
    return wk_registry_add(WK_KIND_METRIC, name, (wk_ctor_fn)fn);
}

int wk_registry_add_hook(const char *name, wk_hook_ctor fn)
{
    return wk_registry_add(WK_KIND_HOOK, name, (wk_ctor_fn)fn);
}

wk_ctor_fn wk_registry_find(wk_kind kind, const char *name)
{
    if ((unsigned)kind >= WK_KIND_COUNT || !name) return NULL;
    pthread_mutex_lock(&lock);
    load_builtins_locked();
    entry *e = find_locked(kind, name);
    wk_ctor_fn fn = e ? e->fn : NULL;
    pthread_mutex_unlock(&lock);
    return fn;
}

int wk_registry_names(wk_kind kind, const char **out, int cap)
{
    if ((unsigned)kind >= WK_KIND_COUNT) return 0;
    pthread_mutex_lock(&lock);
    load_builtins_locked();
    kind_table *t = &tables[kind];
    for (int i = 0; i < t->n && i < cap && out; i++) out[i] = t->sorted[i];
    int n = t->n;
    pthread_mutex_unlock(&lock);
    return n;
}

static void names_list(wk_kind kind, char *buf, size_t size, const char **names, int *n)
{
    *n = wk_registry_names(kind, names, 256);
    if (*n > 256) *n = 256;
    size_t k = 0;
    buf[0] = '\0';
    if (!*n) snprintf(buf, size, "none");
    for (int i = 0; i < *n && k < size; i++)
        k += (size_t)snprintf(buf + k, size - k, "%s%s", i ? ", " : "", names[i]);
}

wk_ctor_fn wk_registry_resolve(const wk_cfg *cfg, wk_kind kind)
{
    if (!cfg || !cfg->config || (unsigned)kind >= WK_KIND_COUNT) {
        wk_set_error("registry_resolve: needs a config view and a valid kind");
        return NULL;
    }
    int before = wk_config_error_count(cfg->config);
    const char *type = wk_cfg_type(cfg);
    if (!type && wk_config_error_count(cfg->config) > before) return NULL;
    const char *names[256];
    int n;
    char list[1024];
    if (!type) {
        names_list(kind, list, sizeof list, names, &n);
        wk_cfg_error(cfg, "type", "missing (the %s to build: %s)", wk_kind_name(kind), list);
        return NULL;
    }
    wk_ctor_fn fn = wk_registry_find(kind, type);
    if (fn) return fn;
    names_list(kind, list, sizeof list, names, &n);
    const char *dym = wk_did_you_mean(type, names, n);
    if (dym)
        wk_cfg_error(cfg, "type", "unknown %s type '%s'; did you mean '%s'? (registered: %s)",
                     wk_kind_name(kind), type, dym, list);
    else
        wk_cfg_error(cfg, "type", "unknown %s type '%s' (registered: %s)", wk_kind_name(kind),
                     type, list);
    return NULL;
}

/* ---- recording a constructor's own error ---- */

static bool is_word(char ch) { return isalnum((unsigned char)ch) || ch == '_'; }

static bool names_word(const char *msg, const char *word)
{
    size_t n = strlen(word);
    for (const char *p = strstr(msg, word); p; p = strstr(p + 1, word))
        if ((p == msg || !is_word(p[-1])) && !is_word(p[n])) return true;
    return false;
}

void wki_record_failure(const wk_cfg *c, int before)
{
    if (wk_config_error_count(c->config) > before) {
        wki_cfg_refresh_error(c->config);
        return;
    }
    char msg[1024];
    snprintf(msg, sizeof msg, "%s",
             wk_last_error()[0] ? wk_last_error() : "the constructor failed without a message");
    const char *keys[64];
    int n = wki_cfg_marks_of(c->config, c->path, keys, 64);
    if (n > 64) n = 64;
    const char *at = NULL;
    for (int i = 0; i < n && !at; i++)
        if (strcmp(keys[i], "type") && wk_cfg_has(c, keys[i]) && names_word(msg, keys[i]))
            at = keys[i];
    for (int i = 0; i < n && !at; i++)
        if (strcmp(keys[i], "type") && names_word(msg, keys[i])) at = keys[i];
    wk_cfg_error(c, at, "%s", msg);
}

/* ---- building ---- */

static const wk_build_ctx no_ctx;

/* Resolve c's type into fn; v is c named after the type for messages. */
static wk_ctor_fn begin(const wk_cfg *c, wk_kind kind, wk_cfg *v, int *before)
{
    if (!c || !c->config) {
        wk_set_error("build_%s: the config view is NULL", wk_kind_name(kind));
        return NULL;
    }
    *v = *c;
    *before = wk_config_error_count(c->config);
    v->errors_at_start = *before;
    if (!c->json) {
        wk_cfg_error(c, NULL, "missing (a %s: {\"type\": ...})", wk_kind_name(kind));
        return NULL;
    }
    wk_ctor_fn fn = wk_registry_resolve(c, kind);
    if (fn) snprintf(v->what, sizeof v->what, "%s", wk_cfg_type(c));
    return fn;
}

wk_model *wk_build_model(const wk_cfg *cfg, const wk_build_ctx *ctx)
{
    wk_cfg v;
    int before;
    wk_model_ctor fn = (wk_model_ctor)begin(cfg, WK_KIND_MODEL, &v, &before);
    if (!fn) return NULL;
    wk_build_ctx local = ctx ? *ctx : no_ctx;
    wk_generator g = wk_generator_make(local.seed);
    if (!local.generator) local.generator = &g;
    wk_model *m = fn(&v, &local);
    if (!m) {
        wki_record_failure(&v, before);
        return NULL;
    }
    if (wk_cfg_finish(&v) < 0) {
        wk_model_free(m);
        return NULL;
    }
    return m;
}

wk_dataset *wk_build_dataset(const wk_cfg *cfg, const wk_build_ctx *ctx)
{
    wk_cfg v;
    int before;
    wk_dataset_ctor fn = (wk_dataset_ctor)begin(cfg, WK_KIND_DATASET, &v, &before);
    if (!fn) return NULL;
    wk_dataset *ds = fn(&v, ctx ? ctx : &no_ctx);
    if (!ds) {
        wki_record_failure(&v, before);
        return NULL;
    }
    if (wk_cfg_finish(&v) < 0) {
        wk_dataset_free(ds);
        return NULL;
    }
    return ds;
}

int wk_build_transforms(const wk_cfg *cfg, const char *key, const wk_build_ctx *ctx,
                        wk_transform_target *target)
{
    if (!cfg || !cfg->config || !target) {
        wk_set_error("build_transforms: needs a config view and a target");
        return -1;
    }
    int n = wk_cfg_items(cfg, key), failed = n < 0;
    for (int i = 0; i < n; i++) {
        wk_cfg item, v;
        int before;
        if (wk_cfg_item(cfg, key, i, &item) < 0) {
            failed = 1;
            continue;
        }
        wk_transform_ctor fn = (wk_transform_ctor)begin(&item, WK_KIND_TRANSFORM, &v, &before);
        if (!fn) {
            failed = 1;
            continue;
        }
        if (fn(&v, ctx ? ctx : &no_ctx, target) < 0) {
            wki_record_failure(&v, before);
            failed = 1;
        } else if (wk_cfg_finish(&v) < 0) failed = 1;
    }
    return failed ? -1 : 0;
}

wk_optimizer *wk_build_optimizer(const wk_cfg *cfg, const wk_build_ctx *ctx)
{
    wk_cfg v;
    int before;
    wk_optimizer_ctor fn = (wk_optimizer_ctor)begin(cfg, WK_KIND_OPTIMIZER, &v, &before);
    if (!fn) return NULL;
    wk_optimizer *opt = fn(&v, ctx ? ctx : &no_ctx);
    if (!opt) {
        wki_record_failure(&v, before);
        return NULL;
    }
    if (wk_cfg_finish(&v) < 0) {
        wk_optimizer_free(opt);
        return NULL;
    }
    return opt;
}

wk_scheduler *wki_build_scheduler(const wk_cfg *cfg, const wk_build_ctx *ctx, bool top)
{
    wk_cfg v;
    int before;
    wk_scheduler_ctor fn = (wk_scheduler_ctor)begin(cfg, WK_KIND_SCHEDULER, &v, &before);
    if (!fn) return NULL;
    bool by_epoch = false;
    if (top) wk_cfg_bool(&v, "by_epoch", false, &by_epoch);
    else if (!cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(v.json, "by_epoch")) &&
             cJSON_GetObjectItemCaseSensitive(v.json, "by_epoch"))
        /* not marked as accepted: the lists of accepted keys must not offer it */
        wk_cfg_error(&v, "by_epoch", "only the outermost scheduler sets by_epoch");
    if (wk_config_error_count(v.config) > before) {
        wki_cfg_refresh_error(v.config);
        return NULL;
    }
    wk_scheduler *s = fn(&v, ctx ? ctx : &no_ctx);
    if (!s) {
        wki_record_failure(&v, before);
        return NULL;
    }
    if (wk_cfg_finish(&v) < 0) {
        wk_scheduler_free(s);
        return NULL;
    }
    if (by_epoch && wk_scheduler_set_unit(s, WK_SCHED_PER_EPOCH) < 0) {
        wk_cfg_error(&v, "by_epoch", "%s", wk_last_error());
        wk_scheduler_free(s);
        return NULL;
    }
    return s;
}

wk_scheduler *wk_build_scheduler(const wk_cfg *cfg, const wk_build_ctx *ctx)
{
    return wki_build_scheduler(cfg, ctx, true);
}

wk_metric *wk_build_metric(const wk_cfg *cfg, const wk_build_ctx *ctx)
{
    wk_cfg v;
    int before;
    wk_metric_ctor fn = (wk_metric_ctor)begin(cfg, WK_KIND_METRIC, &v, &before);
    if (!fn) return NULL;
    wk_metric *m = fn(&v, ctx ? ctx : &no_ctx);
    if (!m) {
        wki_record_failure(&v, before);
        return NULL;
    }
    if (wk_cfg_finish(&v) < 0) {
        wk_metric_free(m);
        return NULL;
    }
    return m;
}

int wk_build_hooks(const wk_cfg *parent, const char *key, struct wk_runner *runner, void *ctx)
{
    if (!parent || !parent->config) {
        wk_set_error("build_hooks: the config view is NULL");
        return -1;
    }
    int n = wk_cfg_items(parent, key), failed = n < 0;
    for (int i = 0; i < n; i++) {
        wk_cfg item, v;
        int before;
        if (wk_cfg_item(parent, key, i, &item) < 0) {
            failed = 1;
            continue;
        }
        wk_hook_ctor fn = (wk_hook_ctor)begin(&item, WK_KIND_HOOK, &v, &before);
        if (!fn) {
            failed = 1;
            continue;
        }
        if (fn(&v, runner, ctx) < 0) {
            wki_record_failure(&v, before);
            failed = 1;
        } else if (wk_cfg_finish(&v) < 0) failed = 1;
    }
    return failed ? -1 : n;
}

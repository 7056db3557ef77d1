/* The Runner's checkpoints: the training state JSON, regular/best/last files, pruning
 * (max_keep), resume and load_from. The file format is engine/checkpoint.h's. */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../nn/norm.h"
#include "../nn/state_dict.h"
#include "../tensor/profiler.h"
#include "../tensor/random.h"
#include "checkpoint.h"
#include "runner-impl.h"

/* 64-bit integers go into JSON as decimal strings (JSON numbers are doubles). */
static cJSON *u64_json(uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "%" PRIu64, v);
    return cJSON_CreateString(b);
}

static bool json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsString(v)) return false;
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v->valuestring, &end, 10);
    if (errno || !end || *end || !*v->valuestring) return false;
    *out = x;
    return true;
}

static cJSON *generator_json(const wk_generator *g)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToObject(o, "seed", u64_json(g->seed));
    cJSON_AddItemToObject(o, "offset", u64_json(g->offset));
    return o;
}

static bool json_generator(const cJSON *o, wk_generator *g)
{
    return json_u64(cJSON_GetObjectItemCaseSensitive(o, "seed"), &g->seed) &&
           json_u64(cJSON_GetObjectItemCaseSensitive(o, "offset"), &g->offset);
}

/* Visit every module of the tree with its dotted path ("" for the root). */
typedef void (*module_visit)(wk_module *m, const char *path, void *user);
static void walk_modules(wk_module *m, const char *path, module_visit fn, void *user)
{
    fn(m, path, user);
    for (int i = 0; i < m->nchildren; i++) {
        char p[512];
        int n = snprintf(p, sizeof p, "%s%s%s", path, *path ? "." : "", m->children[i].name);
        if (n < 0 || (size_t)n >= sizeof p) continue; /* absurdly deep names: not saved */
        walk_modules(m->children[i].module, p, fn, user);
    }
}

static void save_dropout(wk_module *m, const char *path, void *user)
{
    wk_generator *g = wk_module_dropout_generator(m); /* NULL (an error) for other modules */
    if (g) cJSON_AddItemToObject(user, path, generator_json(g));
}

typedef struct {
    const cJSON *saved;
    int missing;
    char first[512];
} dropout_load;

static void load_dropout(wk_module *m, const char *path, void *user)
{
    dropout_load *d = user;
    wk_generator *g = wk_module_dropout_generator(m);
    wk_generator v;
    if (!g) return;
    if (!json_generator(cJSON_GetObjectItemCaseSensitive(d->saved, path), &v)) {
        if (!d->missing++) snprintf(d->first, sizeof d->first, "%s", path);
        return;
    }
    *g = v;
}

static cJSON *parse_or_null(const char *json)
{
    return json ? cJSON_Parse(json) : cJSON_CreateNull();
}

/* The full training state (docs/RUNNER.md, "Checkpoints"). */
static char *state_json(wk_runner *r)
{
    const wk_runner_state *s = &r->state;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "epoch", (double)s->epoch);
    cJSON_AddNumberToObject(o, "iter_in_epoch", (double)s->iter_in_epoch);
    cJSON_AddNumberToObject(o, "global_step", (double)s->global_step);
    cJSON_AddNumberToObject(o, "micro_step", (double)s->micro_step);
    cJSON_AddStringToObject(o, "run_mode", s->run_mode == WK_RUN_STEP ? "step" : "epoch");
    cJSON_AddNumberToObject(o, "epoch_length", (double)s->epoch_length);
    cJSON_AddNumberToObject(o, "accumulate", (double)r->opts.accumulate);
    cJSON_AddNumberToObject(o, "world_size", (double)r->opts.world_size);
    char *engine = wk_engine_state_save(r->engine);
    cJSON_AddItemToObject(o, "engine", parse_or_null(engine));
    free(engine);
    wk_loader_state ls = wk_loader_get_state(r->parts.train_loader);
    cJSON *l = cJSON_AddObjectToObject(o, "loader");
    cJSON_AddNumberToObject(l, "epoch", (double)ls.epoch);
    cJSON_AddNumberToObject(l, "next_batch", (double)ls.next_batch);
    cJSON_AddItemToObject(l, "seed", u64_json(ls.seed));
    char *sched = r->parts.scheduler ? wk_scheduler_state_save(r->parts.scheduler) : NULL;
    cJSON_AddItemToObject(o, "scheduler", parse_or_null(sched));
    free(sched);
    cJSON_AddItemToObject(o, "best", r->have_best ? wk_early_stop_state_save(&r->best)
                                                  : cJSON_CreateNull());
    cJSON_AddItemToObject(o, "early_stop", r->have_es ? wk_early_stop_state_save(&r->es)
                                                      : cJSON_CreateNull());
    cJSON *rng = cJSON_AddObjectToObject(o, "rng");
    cJSON_AddItemToObject(rng, "default", generator_json(wk_default_generator()));
    cJSON *drop = cJSON_AddObjectToObject(rng, "dropout");
    walk_modules(r->parts.model->module, "", save_dropout, drop);
    wk_clear_error();
    cJSON_AddNumberToObject(o, "nan_skipped", (double)s->nan_skipped);
    cJSON_AddNumberToObject(o, "last_eval_step", (double)r->last_eval_step);
    cJSON *m = cJSON_AddObjectToObject(o, "metrics");
    for (int i = 0; i < r->metrics.count; i++)
        cJSON_AddNumberToObject(m, r->metrics.names[i], r->metrics.values[i]);
    char *text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keep the newest max_keep regular checkpoints (step_<8 digits> sort by step). */
static void prune(wk_runner *r)
{
    if (r->opts.max_keep <= 0) return;
    DIR *d = opendir(r->ckpt_dir);
    if (!d) return;
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "step_", 5) || len < 17 ||
            strcmp(e->d_name + len - 12, ".safetensors"))
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            char **g = realloc(names, cap * sizeof *g);
            if (!g) break;
            names = g;
        }
        names[n] = strdup(e->d_name);
        if (names[n]) n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i + (size_t)r->opts.max_keep < n; i++) {
        char p[RUNNER_PATH_MAX + 256];
        snprintf(p, sizeof p, "%s/%s", r->ckpt_dir, names[i]);
        if (unlink(p)) fprintf(stderr, "runner: could not remove %s: %s\n", p, strerror(errno));
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

static int save(wk_runner *r, const char *kind);

int wki_runner_save(wk_runner *r, const char *kind)
{
    wk_profiler_phase_begin("checkpoint");
    int rc = save(r, kind);
    wk_profiler_phase_end();
    return rc;
}

static int save(wk_runner *r, const char *kind)
{
    wk_runner_state *s = &r->state;
    if (!wki_runner_is_main(r)) return 0; /* rank 0 writes; every rank holds the same state */
    if (!strcmp(kind, "regular"))
        snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/step_%08lld.safetensors", r->ckpt_dir,
                 (long long)s->global_step);
    else
        snprintf(r->ckpt_path, sizeof r->ckpt_path, "%s/%s.safetensors", r->ckpt_dir, kind);
    s->checkpoint_kind = kind;
    s->checkpoint_path = r->ckpt_path;
    cJSON_Delete(r->task);
    r->task = cJSON_CreateObject();
    char *state = NULL, *task = NULL;
    int rc = -1;
    if (!r->task || wki_runner_fire_event(r, RUNNER_EV_SAVE_CHECKPOINT)) goto done;
    state = state_json(r);
    task = cJSON_PrintUnformatted(r->task);
    if (!state || !task) {
        wk_set_error("runner: out of memory writing %s", r->ckpt_path);
        goto done;
    }
    if (wk_checkpoint_save(r->ckpt_path, r->parts.model->module, r->ema, r->parts.optimizer,
                           state, r->config_json, task))
        goto done;
    rc = wki_runner_fire_event(r, RUNNER_EV_CHECKPOINT_SAVED);
    if (!strcmp(kind, "regular")) prune(r);
done:
    free(state);
    free(task);
    s->checkpoint_kind = NULL;
    s->checkpoint_path = NULL;
    return rc;
}

/* ---- resume ---- */

static bool get_i64(const cJSON *o, const char *key, int64_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return false;
    *out = (int64_t)v->valuedouble;
    return true;
}

/* Everything a resume restores, checked against this run before anything changes. */
static int check_compatible(wk_runner *r, const cJSON *st, const char *path)
{
    int64_t L, A, W, gs, ep, it, ms;
    if (!get_i64(st, "epoch_length", &L) || !get_i64(st, "accumulate", &A) ||
        !get_i64(st, "world_size", &W) || !get_i64(st, "global_step", &gs) ||
        !get_i64(st, "epoch", &ep) || !get_i64(st, "iter_in_epoch", &it) ||
        !get_i64(st, "micro_step", &ms) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(st, "engine")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(st, "loader")) ||
        !cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(st, "rng"))) {
        wk_set_error("runner: %s: the training state lacks epoch_length, accumulate, "
                     "world_size, global_step, epoch, iter_in_epoch, micro_step, engine, "
                     "loader or rng (not written by the Runner?)",
                     path);
        return -1;
    }
    if (L != r->state.epoch_length || A != r->opts.accumulate || W != r->opts.world_size) {
        wk_set_error("runner: %s was written with %lld micro-batches per epoch, accumulate "
                     "%lld and world size %lld; this run has %lld, %lld and %d: an exact "
                     "resume needs the same data, batch size, accumulation and ranks",
                     path, (long long)L, (long long)A, (long long)W,
                     (long long)r->state.epoch_length, (long long)r->opts.accumulate,
                     r->opts.world_size);
        return -1;
    }
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(st, "scheduler");
    if (!!r->parts.scheduler != !cJSON_IsNull(sched)) {
        wk_set_error("runner: %s %s a scheduler state, this run %s a scheduler", path,
                     cJSON_IsNull(sched) ? "has no" : "has", r->parts.scheduler ? "has" : "has no");
        return -1;
    }
    return 0;
}

static int restore_state(wk_runner *r, const cJSON *st, const char *path)
{
    wk_runner_state *s = &r->state;
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(st, "loader");
    wk_loader_state ls = {0};
    if (!get_i64(l, "epoch", &ls.epoch) || !get_i64(l, "next_batch", &ls.next_batch) ||
        !json_u64(cJSON_GetObjectItemCaseSensitive(l, "seed"), &ls.seed)) {
        wk_set_error("runner: %s: the loader state lacks epoch, next_batch or seed", path);
        return -1;
    }
    const cJSON *rng = cJSON_GetObjectItemCaseSensitive(st, "rng");
    wk_generator def;
    if (!json_generator(cJSON_GetObjectItemCaseSensitive(rng, "default"), &def)) {
        wk_set_error("runner: %s: rng.default lacks seed or offset", path);
        return -1;
    }
    /* The engine continues under this run's epoch cap (a finished run can be extended). */
    cJSON *eng = cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(st, "engine"), true);
    int64_t cap = wki_runner_engine_epochs(r);
    if (eng) cJSON_ReplaceItemInObject(eng, "max_epochs", cJSON_CreateNumber((double)cap));
    char *engine = eng ? cJSON_PrintUnformatted(eng) : NULL;
    cJSON_Delete(eng);
    int rc = engine ? wk_engine_state_load(r->engine, engine) : -1;
    free(engine);
    if (rc) return -1;
    if (wk_loader_set_state(r->parts.train_loader, &ls)) return -1;
    const cJSON *sched = cJSON_GetObjectItemCaseSensitive(st, "scheduler");
    if (r->parts.scheduler) {
        char *text = cJSON_PrintUnformatted(sched);
        rc = text ? wk_scheduler_state_load(r->parts.scheduler, text) : -1;
        free(text);
        if (rc) return -1;
    }
    const cJSON *best = cJSON_GetObjectItemCaseSensitive(st, "best");
    if (r->have_best && cJSON_IsObject(best) && wk_early_stop_state_load(&r->best, best))
        return -1;
    const cJSON *es = cJSON_GetObjectItemCaseSensitive(st, "early_stop");
    if (r->have_es && cJSON_IsObject(es) && wk_early_stop_state_load(&r->es, es)) return -1;
    *wk_default_generator() = def;
    dropout_load d = {.saved = cJSON_GetObjectItemCaseSensitive(rng, "dropout")};
    walk_modules(r->parts.model->module, "", load_dropout, &d);
    wk_clear_error();
    if (d.missing)
        fprintf(stderr, "runner: %s has no dropout generator state for %s (%d module%s): "
                        "they continue from their current streams\n",
                path, d.first, d.missing, d.missing > 1 ? "s" : "");
    get_i64(st, "global_step", &s->global_step);
    get_i64(st, "epoch", &s->epoch);
    get_i64(st, "iter_in_epoch", &s->iter_in_epoch);
    get_i64(st, "micro_step", &s->micro_step);
    get_i64(st, "nan_skipped", &s->nan_skipped);
    get_i64(st, "last_eval_step", &r->last_eval_step);
    r->metrics.count = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(st, "metrics"))
        if (cJSON_IsNumber(m)) wk_metric_results_set(&r->metrics, m->string, m->valuedouble);
    s->lr = wk_optimizer_get_lr(r->parts.optimizer, 0);
    return 0;
}

int wki_runner_resume(wk_runner *r, const char *path)
{
    wk_checkpoint ck;
    if (wk_checkpoint_open(path, &ck)) return -1;
    cJSON *st = cJSON_Parse(ck.state);
    cJSON *task = cJSON_Parse(ck.task);
    int rc = -1;
    if (!cJSON_IsObject(st) || !cJSON_IsObject(task)) {
        wk_set_error("runner: %s: the %s JSON does not parse", path,
                     cJSON_IsObject(st) ? "task" : "state");
        goto done;
    }
    if (check_compatible(r, st, path)) goto done;
    if (wk_checkpoint_restore(&ck, r->parts.model->module, r->ema, r->parts.optimizer, true))
        goto done;
    if (restore_state(r, st, path)) goto done;
    snprintf(r->resumed_from, sizeof r->resumed_from, "%s", path);
    r->state.resumed_from = r->resumed_from;
    cJSON_Delete(r->task);
    r->task = task;
    task = NULL;
    rc = wki_runner_fire_event(r, RUNNER_EV_LOAD_CHECKPOINT);
done:
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        if (!strstr(msg, path)) wk_set_error("runner: resume from %s: %s", path, msg);
    }
    cJSON_Delete(st);
    cJSON_Delete(task);
    wk_checkpoint_close(&ck);
    return rc;
}

int wki_runner_load_weights(wk_runner *r, const char *path)
{
    wk_safetensors st;
    if (wk_safetensors_load(path, &st)) return -1;
    const char *fmt = wk_safetensors_meta(&st, "format");
    const char *prefix = fmt && !strcmp(fmt, WK_CHECKPOINT_FORMAT) ? "model." : "";
    int rc = wk_state_dict_load_from(r->parts.model->module, &st, prefix, r->opts.load_strict,
                                     NULL);
    wk_safetensors_free(&st);
    if (rc) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", wk_last_error());
        wk_set_error("runner: load_from %s: %s", path, msg);
    }
    return rc;
}

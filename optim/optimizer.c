/* What every optimizer shares: options and groups, the fused step driver, zero_grad,
 * gradient accumulation, and the state's save and load. The algorithms themselves are
 * the tables of sgd.c, adam.c, rmsprop.c and adagrad.c. */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../autograd/autograd.h"
#include "../tensor/tensor-impl.h"
#include "optimizer-impl.h"

static const wki_optim_algo *const algos[] = {
    [WK_OPTIM_SGD] = &wki_sgd_algo,         [WK_OPTIM_ADAM] = &wki_adam_algo,
    [WK_OPTIM_ADAMW] = &wki_adamw_algo,     [WK_OPTIM_RMSPROP] = &wki_rmsprop_algo,
    [WK_OPTIM_ADAGRAD] = &wki_adagrad_algo,
};
_Static_assert(sizeof algos / sizeof algos[0] == WK_OPTIM_COUNT, "optimizer algorithm table");

/* Elements per chunk of the parallel update (the work of one loop iteration). */
#define CHUNK ((int64_t)1 << 15)

/* ---- small helpers ---- */

/* A growable string for messages and names. */
typedef struct {
    char *s;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_printf(strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(strbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 64);
        while (cap < b->len + (size_t)n + 1) cap *= 2;
        char *s = realloc(b->s, cap);
        if (!s) {
            b->oom = true;
            return;
        }
        b->s = s;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static char *str_dup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* "parameter \"fc.weight\"" or "group 1 parameter 3" into buf. */
static const char *param_label(const wki_param_group *gr, int g, int i, char *buf, size_t n)
{
    if (gr->names) snprintf(buf, n, "parameter \"%s\"", gr->names[i]);
    else snprintf(buf, n, "group %d parameter %d", g, i);
    return buf;
}

static bool valid_group(const char *op, const wk_optimizer *opt, int g)
{
    if (!opt) {
        wk_set_error("%s: optimizer is NULL", op);
        return false;
    }
    if (g < 0 || g >= opt->ngroups) {
        wk_set_error("%s: group %d is out of range (the optimizer has %d groups)", op, g,
                     opt->ngroups);
        return false;
    }
    return true;
}

/* ---- options ---- */

/* Index of hyper-parameter `name` in a's table, -1 for "lr", -2 when unknown (with an
 * error listing the known names). */
static int hp_find(const char *op, const wki_optim_algo *a, const char *name)
{
    if (name && strcmp(name, "lr") == 0) return -1;
    for (int k = 0; k < a->nhparams; k++)
        if (name && strcmp(name, a->hparams[k].name) == 0) return k;
    strbuf b = {0};
    sb_printf(&b, "lr");
    for (int k = 0; k < a->nhparams; k++) sb_printf(&b, ", %s", a->hparams[k].name);
    wk_set_error("%s: unknown option \"%s\" (%s takes %s)", op, name ? name : "(null)", a->name,
                 b.s ? b.s : "?");
    free(b.s);
    return -2;
}

static bool hp_valid(const char *op, const wki_hparam_info *h, double v)
{
    if (h->is_bool) {
        if (v == 0 || v == 1) return true;
        wk_set_error("%s: %s = %g must be 0 or 1", op, h->name, v);
        return false;
    }
    if (v >= h->lo && (h->hi_open ? v < h->hi : v <= h->hi)) return true;
    if (isinf(h->hi))
        wk_set_error("%s: %s = %g is out of range (expected %s >= %g)", op, h->name, v, h->name,
                     h->lo);
    else
        wk_set_error("%s: %s = %g is out of range (expected %g <= %s %s %g)", op, h->name, v,
                     h->lo, h->name, h->hi_open ? "<" : "<=", h->hi);
    return false;
}

static bool lr_valid(const char *op, double lr)
{
    if (lr >= 0) return true;
    wk_set_error("%s: lr = %g is out of range (expected lr >= 0)", op, lr);
    return false;
}

/* Apply up to `max` (name, value) pairs (or until a NULL name) to hp and *lr. */
static bool apply_hparams(const char *op, const wki_optim_algo *a, const wk_hparam *list, int max,
                          double *hp, double *lr)
{
    for (int i = 0; list && (max < 0 || i < max) && list[i].name; i++) {
        int k = hp_find(op, a, list[i].name);
        if (k == -2) return false;
        if (k == -1) {
            if (!lr_valid(op, list[i].value)) return false;
            *lr = list[i].value;
        } else {
            if (!hp_valid(op, &a->hparams[k], list[i].value)) return false;
            hp[k] = list[i].value;
        }
    }
    return true;
}

/* ---- making and freeing ---- */

static bool check_param(const char *op, const wk_tensor *p, int g, int i)
{
    char where[64];
    snprintf(where, sizeof where, "group %d parameter %d", g, i);
    if (!p) {
        wk_set_error("%s: %s is NULL", op, where);
        return false;
    }
    if (p->dtype == WK_DTYPE_BF16 || p->dtype == WK_DTYPE_F16) {
        wk_set_error("%s: %s is %s: optimizers update float32 or float64 parameters (keep a "
                     "float32 master copy; convert with wk_to_dtype)",
                     op, where, wk_dtype_name(p->dtype));
        return false;
    }
    if (p->dtype != WK_DTYPE_F32 && p->dtype != WK_DTYPE_F64) {
        wk_set_error("%s: %s is %s, expected a float32 or float64 tensor", op, where,
                     wk_dtype_name(p->dtype));
        return false;
    }
    if (p->grad_fn) {
        wk_set_error("%s: %s is not a leaf (it was computed by an op): optimize the tensors "
                     "the graph starts from",
                     op, where);
        return false;
    }
    if (!wk_is_contiguous(p)) {
        wk_set_error("%s: %s (shape %s) is not contiguous: the fused update needs contiguous "
                     "parameters",
                     op, where, wki_shape_s(p));
        return false;
    }
    return true;
}

typedef struct {
    const void *key;
    int g, i;
} dup_entry;

static int cmp_ptr(const void *a, const void *b)
{
    const dup_entry *x = a, *y = b;
    return x->key < y->key ? -1 : x->key > y->key;
}

static int cmp_name(const void *a, const void *b)
{
    const dup_entry *x = a, *y = b;
    return strcmp(x->key, y->key);
}

/* Error when a parameter or a name appears twice among all groups. */
static bool check_unique(const char *op, const wk_param_group *groups, int ngroups, int total)
{
    dup_entry *e = malloc(sizeof *e * (size_t)(total ? total : 1));
    if (!e) {
        wk_set_error("%s: out of memory", op);
        return false;
    }
    bool ok = true;
    for (int pass = 0; pass < 2 && ok; pass++) {
        int n = 0;
        for (int g = 0; g < ngroups; g++)
            for (int i = 0; i < groups[g].nparams; i++) {
                if (pass == 1 && !groups[g].names) continue;
                e[n++] = (dup_entry){pass ? (const void *)groups[g].names[i]
                                          : (const void *)groups[g].params[i],
                                     g, i};
            }
        qsort(e, (size_t)n, sizeof *e, pass ? cmp_name : cmp_ptr);
        for (int k = 1; k < n && ok; k++) {
            bool same = pass ? strcmp(e[k].key, e[k - 1].key) == 0 : e[k].key == e[k - 1].key;
            if (!same) continue;
            if (pass)
                wk_set_error("%s: parameter name \"%s\" is used twice (group %d parameter %d and "
                             "group %d parameter %d)",
                             op, (const char *)e[k].key, e[k - 1].g, e[k - 1].i, e[k].g, e[k].i);
            else
                wk_set_error("%s: group %d parameter %d and group %d parameter %d are the same "
                             "tensor (a parameter may appear only once)",
                             op, e[k - 1].g, e[k - 1].i, e[k].g, e[k].i);
            ok = false;
        }
    }
    free(e);
    return ok;
}

static void group_release(wki_param_group *gr)
{
    if (gr->state)
        for (int i = 0; i < gr->nparams; i++)
            for (int s = 0; s < WKI_OPTIM_MAX_SLOTS; s++) wk_tensor_free(gr->state[i].slot[s]);
    if (gr->names)
        for (int i = 0; i < gr->nparams; i++) free(gr->names[i]);
    free(gr->names);
    free(gr->state);
    free(gr->params);
}

void wk_optimizer_free(wk_optimizer *opt)
{
    if (!opt) return;
    for (int g = 0; g < opt->ngroups; g++) group_release(&opt->groups[g]);
    free(opt->groups);
    free(opt->jobs);
    free(opt);
}

wk_optimizer *wk_optimizer_new(wk_optim_type type, const wk_param_group *groups, int ngroups,
                               const wk_hparam *opts)
{
    if ((unsigned)type >= WK_OPTIM_COUNT) {
        wk_set_error("optimizer_new: type %d is not a wk_optim_type (expected 0..%d)", (int)type,
                     WK_OPTIM_COUNT - 1);
        return NULL;
    }
    const wki_optim_algo *a = algos[type];
    const char *op = a->op;
    if (!groups || ngroups < 1) {
        wk_set_error("%s: expected at least one parameter group, got %d", op, groups ? ngroups : 0);
        return NULL;
    }
    double base[WKI_OPTIM_MAX_HPARAMS] = {0}, lr = a->default_lr;
    for (int k = 0; k < a->nhparams; k++) base[k] = a->hparams[k].def;
    if (!apply_hparams(op, a, opts, -1, base, &lr)) return NULL;
    if (isnan(lr)) {
        wk_set_error("%s: option \"lr\" is required (torch.optim.%s has no default)", op, a->name);
        return NULL;
    }
    if (a->check && a->check(base)) {
        wk_set_error("%s: %s", op, a->check(base));
        return NULL;
    }
    int total = 0;
    for (int g = 0; g < ngroups; g++) {
        const wk_param_group *pg = &groups[g];
        if (pg->nparams < 0 || (pg->nparams > 0 && !pg->params)) {
            wk_set_error("%s: group %d has %d parameters at %p", op, g, pg->nparams,
                         (const void *)pg->params);
            return NULL;
        }
        for (int i = 0; i < pg->nparams; i++) {
            if (!check_param(op, pg->params[i], g, i)) return NULL;
            if (pg->names && (!pg->names[i] || !pg->names[i][0])) {
                wk_set_error("%s: group %d parameter %d has an empty name", op, g, i);
                return NULL;
            }
        }
        total += pg->nparams;
    }
    if (total == 0) {
        wk_set_error("%s: got no parameters to optimize", op);
        return NULL;
    }
    if (!check_unique(op, groups, ngroups, total)) return NULL;

    wk_optimizer *opt = calloc(1, sizeof *opt);
    if (!opt || !(opt->groups = calloc((size_t)ngroups, sizeof *opt->groups))) {
        free(opt);
        wk_set_error("%s: out of memory", op);
        return NULL;
    }
    opt->type = a->name;
    opt->algo = a;
    opt->accum_n = 1;
    for (int g = 0; g < ngroups; g++) {
        const wk_param_group *pg = &groups[g];
        wki_param_group *gr = &opt->groups[g];
        opt->ngroups = g + 1;
        memcpy(gr->hp, base, sizeof base);
        gr->lr = lr;
        char gop[64];
        snprintf(gop, sizeof gop, "%s: group %d", op, g);
        if (!apply_hparams(gop, a, pg->hparams, WK_GROUP_MAX_HPARAMS, gr->hp, &gr->lr)) goto fail;
        if (a->check && a->check(gr->hp)) {
            wk_set_error("%s: %s", gop, a->check(gr->hp));
            goto fail;
        }
        gr->initial_lr = gr->lr;
        gr->nparams = pg->nparams;
        size_t n = (size_t)(pg->nparams ? pg->nparams : 1);
        gr->params = malloc(n * sizeof *gr->params);
        gr->state = calloc(n, sizeof *gr->state);
        if (!gr->params || !gr->state) goto oom;
        memcpy(gr->params, pg->params, (size_t)pg->nparams * sizeof *gr->params);
        if (pg->names) {
            if (!(gr->names = calloc(n, sizeof *gr->names))) goto oom;
            for (int i = 0; i < pg->nparams; i++)
                if (!(gr->names[i] = str_dup(pg->names[i]))) goto oom;
        }
    }
    return opt;
oom:
    wk_set_error("%s: out of memory", op);
fail:
    wk_optimizer_free(opt);
    return NULL;
}

static wk_optimizer *new_one_group(wk_optim_type type, wk_tensor *const *params, int n,
                                   const wk_hparam *opts)
{
    wk_param_group g = {.params = params, .nparams = n};
    return wk_optimizer_new(type, &g, 1, opts);
}

wk_optimizer *wk_sgd_new(wk_tensor *const *params, int n, const wk_hparam *opts)
{
    return new_one_group(WK_OPTIM_SGD, params, n, opts);
}
wk_optimizer *wk_adam_new(wk_tensor *const *params, int n, const wk_hparam *opts)
{
    return new_one_group(WK_OPTIM_ADAM, params, n, opts);
}
wk_optimizer *wk_adamw_new(wk_tensor *const *params, int n, const wk_hparam *opts)
{
    return new_one_group(WK_OPTIM_ADAMW, params, n, opts);
}
wk_optimizer *wk_rmsprop_new(wk_tensor *const *params, int n, const wk_hparam *opts)
{
    return new_one_group(WK_OPTIM_RMSPROP, params, n, opts);
}
wk_optimizer *wk_adagrad_new(wk_tensor *const *params, int n, const wk_hparam *opts)
{
    return new_one_group(WK_OPTIM_ADAGRAD, params, n, opts);
}

/* ---- groups from a module ---- */

typedef struct {
    wk_tensor **params;
    char **names;
    int n, cap;
} plist;

static bool plist_add(plist *l, wk_tensor *t, const char *name)
{
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 16;
        wk_tensor **p = realloc(l->params, (size_t)cap * sizeof *p);
        if (!p) return false;
        l->params = p;
        char **s = realloc(l->names, (size_t)cap * sizeof *s);
        if (!s) return false;
        l->names = s;
        l->cap = cap;
    }
    if (!(l->names[l->n] = str_dup(name))) return false;
    l->params[l->n++] = t;
    return true;
}

/* Depth-first in registration order with torch's dotted names, as
 * wk_module_named_parameters walks. */
static bool collect(const wk_module *m, const char *prefix, bool split, plist *decay,
                    plist *no_decay)
{
    bool norm = m->type && strstr(m->type, "Norm");
    for (int i = 0; i < m->nparams; i++) {
        strbuf name = {0};
        sb_printf(&name, "%s%s", prefix, m->params[i].name);
        if (name.oom) return false;
        bool nd = split && (norm || strcmp(m->params[i].name, "bias") == 0);
        bool ok = plist_add(nd ? no_decay : decay, m->params[i].tensor, name.s);
        free(name.s);
        if (!ok) return false;
    }
    for (int c = 0; c < m->nchildren; c++) {
        strbuf p = {0};
        sb_printf(&p, "%s%s.", prefix, m->children[c].name);
        if (p.oom) return false;
        bool ok = collect(m->children[c].module, p.s, split, decay, no_decay);
        free(p.s);
        if (!ok) return false;
    }
    return true;
}

void wk_param_groups_free(wk_param_group *groups, int ngroups)
{
    if (!groups) return;
    for (int g = 0; g < ngroups; g++) {
        if (groups[g].names)
            for (int i = 0; i < groups[g].nparams; i++) free((char *)groups[g].names[i]);
        free((void *)groups[g].names);
        free((void *)groups[g].params);
    }
    free(groups);
}

wk_param_group *wk_param_groups_from_module(const wk_module *m, bool no_decay_for_bias_and_norm,
                                            int *ngroups)
{
    const char *op = "param_groups_from_module";
    if (!m || !ngroups) {
        wk_set_error("%s: %s is NULL", op, m ? "ngroups" : "module");
        return NULL;
    }
    plist lists[2] = {{0}, {0}};
    int n = no_decay_for_bias_and_norm ? 2 : 1;
    wk_param_group *groups = calloc(2, sizeof *groups);
    bool ok = groups && collect(m, "", no_decay_for_bias_and_norm, &lists[0], &lists[1]);
    if (ok && lists[0].n + lists[1].n == 0) {
        for (int k = 0; k < 2; k++) {
            free(lists[k].params);
            free(lists[k].names);
        }
        free(groups);
        wk_set_error("%s: the %s module has no parameters", op, m->type ? m->type : "?");
        return NULL;
    }
    for (int k = 0; k < 2 && groups; k++) {
        groups[k].params = lists[k].params;
        groups[k].names = (const char *const *)lists[k].names;
        groups[k].nparams = lists[k].n;
    }
    if (!ok) {
        if (groups) wk_param_groups_free(groups, 2);
        else
            for (int k = 0; k < 2; k++) {
                for (int i = 0; i < lists[k].n; i++) free(lists[k].names[i]);
                free(lists[k].params);
                free(lists[k].names);
            }
        wk_set_error("%s: out of memory", op);
        return NULL;
    }
    groups[1].hparams[0] = (wk_hparam){"weight_decay", 0.0};
    *ngroups = n;
    return groups;
}

/* ---- groups, learning rates and hyper-parameters ---- */

int wk_optimizer_num_groups(const wk_optimizer *opt) { return opt ? opt->ngroups : 0; }

double wk_optimizer_get_lr(const wk_optimizer *opt, int g)
{
    return valid_group("optimizer_get_lr", opt, g) ? opt->groups[g].lr : NAN;
}

double wk_optimizer_initial_lr(const wk_optimizer *opt, int g)
{
    return valid_group("optimizer_initial_lr", opt, g) ? opt->groups[g].initial_lr : NAN;
}

int wk_optimizer_set_lr(wk_optimizer *opt, int g, double lr)
{
    if (!valid_group("optimizer_set_lr", opt, g)) return -1;
    opt->groups[g].lr = lr;
    return 0;
}

double wk_optimizer_get_hparam(const wk_optimizer *opt, int g, const char *name)
{
    const char *op = "optimizer_get_hparam";
    if (!valid_group(op, opt, g)) return NAN;
    int k = hp_find(op, opt->algo, name);
    if (k == -2) return NAN;
    return k == -1 ? opt->groups[g].lr : opt->groups[g].hp[k];
}

int wk_optimizer_set_hparam(wk_optimizer *opt, int g, const char *name, double value)
{
    const char *op = "optimizer_set_hparam";
    if (!valid_group(op, opt, g)) return -1;
    const wki_optim_algo *a = opt->algo;
    wki_param_group *gr = &opt->groups[g];
    double hp[WKI_OPTIM_MAX_HPARAMS], lr = gr->lr;
    memcpy(hp, gr->hp, sizeof hp);
    if (!apply_hparams(op, a, &(wk_hparam){name, value}, 1, hp, &lr)) return -1;
    if (a->check && a->check(hp)) {
        wk_set_error("%s: group %d: %s", op, g, a->check(hp));
        return -1;
    }
    memcpy(gr->hp, hp, sizeof hp);
    gr->lr = lr;
    return 0;
}

const char *wk_optimizer_name(const wk_optimizer *opt) { return opt ? opt->type : "?"; }

int wk_optimizer_params(const wk_optimizer *opt, wk_tensor **out, int cap)
{
    int n = 0;
    for (int g = 0; opt && g < opt->ngroups; g++)
        for (int i = 0; i < opt->groups[g].nparams; i++, n++)
            if (out && n < cap) out[n] = opt->groups[g].params[i];
    return n;
}

int64_t wk_optimizer_step_count(const wk_optimizer *opt) { return opt ? opt->nupdates : 0; }

/* ---- updating ---- */

/* Check a parameter's grad against it before anything is updated. */
static bool check_grad(const char *op, const wk_optimizer *opt, const wki_param_group *gr, int g,
                       int i)
{
    const wk_tensor *p = gr->params[i], *gd = p->grad;
    char who[300];
    param_label(gr, g, i, who, sizeof who);
    if (!wk_is_contiguous(p)) {
        wk_set_error("%s: %s (shape %s) is not contiguous: the fused update needs contiguous "
                     "parameters",
                     op, who, wki_shape_s(p));
        return false;
    }
    if (gd->dtype != p->dtype) {
        wk_set_error("%s: %s is %s but its grad is %s", op, who, wk_dtype_name(p->dtype),
                     wk_dtype_name(gd->dtype));
        return false;
    }
    if (!wk_same_shape(p, gd)) {
        wk_set_error("%s: %s has shape %s but its grad has shape %s", op, who, wki_shape_s(p),
                     wki_shape_s(gd));
        return false;
    }
    if (!wki_same_device(op, p, gd)) return false;
    if (!opt->algo->kernel[p->device.type]) {
        char dev[32];
        wk_set_error("%s: no %s kernel for device %s (%s)", op, opt->algo->name,
                     wk_device_str(p->device, dev, sizeof dev), who);
        return false;
    }
    return true;
}

/* Allocate slot s of a parameter's state (persistent) when missing. */
static bool ensure_slot(const wki_optim_algo *a, const double *hp, wki_param_state *st, int s,
                        const wk_tensor *p)
{
    if (st->slot[s]) return true;
    double init = a->slot_init(hp, s);
    wk_tensor *t = wki_empty_on(p->shape, p->ndim, p->dtype, p->device);
    if (!t) return false;
    wki_make_persistent(t);
    if (!isnan(init) && !wk_fill_(t, init)) {
        wk_tensor_free(t);
        return false;
    }
    st->slot[s] = t;
    st->ready[s] = !isnan(init);
    return true;
}

int wk_optimizer_step(wk_optimizer *opt)
{
    const char *op = "optimizer_step";
    if (!opt) {
        wk_set_error("%s: optimizer is NULL", op);
        return -1;
    }
    const wki_optim_algo *a = opt->algo;
    int njobs = 0;
    for (int g = 0; g < opt->ngroups; g++)
        for (int i = 0; i < opt->groups[g].nparams; i++) {
            if (!opt->groups[g].params[i]->grad) continue;
            if (!check_grad(op, opt, &opt->groups[g], g, i)) return -1;
            njobs++;
        }
    if (njobs > opt->jobs_cap) {
        wki_optim_job *j = realloc(opt->jobs, (size_t)njobs * sizeof *j);
        if (!j) {
            wk_set_error("%s: out of memory", op);
            return -1;
        }
        opt->jobs = j;
        opt->jobs_cap = njobs;
    }

    /* Grads copied to contiguous memory live in this frame; slots are made persistent. */
    wk_frame_begin();
    int nj = 0;
    int64_t total = 0;
    for (int g = 0; g < opt->ngroups; g++) {
        wki_param_group *gr = &opt->groups[g];
        for (int i = 0; i < gr->nparams; i++) {
            wk_tensor *p = gr->params[i];
            if (!p->grad) continue;
            wk_tensor *gd = wk_is_contiguous(p->grad) ? p->grad : wk_contiguous(p->grad);
            if (!gd) goto fail;
            wki_param_state *st = &gr->state[i];
            wki_optim_job *j = &opt->jobs[nj++];
            *j = (wki_optim_job){.dtype = p->dtype,
                                 .n = wk_numel(p),
                                 .p = wk_data(p),
                                 .g = wk_data(gd),
                                 .hp = gr->hp,
                                 .lr = gr->lr,
                                 .step = st->step + 1,
                                 .kernel = a->kernel[p->device.type]};
            for (int s = 0; s < a->nslots; s++) {
                if (!a->slot_used(gr->hp, s)) continue;
                if (!ensure_slot(a, gr->hp, st, s, p)) goto fail;
                j->slot[s] = wk_data(st->slot[s]);
                j->fresh[s] = !st->ready[s];
            }
            total += j->n;
        }
    }

    /* Every parameter is split into chunks of CHUNK elements; one parallel loop runs them
     * all (many small tensors and a few large ones alike). */
    int64_t nchunks = 0;
    for (int k = 0; k < nj; k++) nchunks += (opt->jobs[k].n + CHUNK - 1) / CHUNK;
    int nt = wki_threads_for(total, CHUNK);
    wki_optim_job *jobs = opt->jobs;
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        /* Static split of the chunk range; each thread walks the jobs from its start. */
        int t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t c0 = nchunks * t / T, c1 = nchunks * (t + 1) / T, c = 0;
        for (int k = 0; k < nj && c < c1; k++) {
            int64_t n = jobs[k].n, nc = (n + CHUNK - 1) / CHUNK;
            for (int64_t q = 0; q < nc; q++, c++) {
                if (c < c0) continue;
                if (c >= c1) break;
                int64_t lo = q * CHUNK, hi = lo + CHUNK < n ? lo + CHUNK : n;
                jobs[k].kernel(&jobs[k], lo, hi);
            }
        }
    }

    for (int g = 0; g < opt->ngroups; g++) {
        wki_param_group *gr = &opt->groups[g];
        for (int i = 0; i < gr->nparams; i++) {
            if (!gr->params[i]->grad) continue;
            wki_param_state *st = &gr->state[i];
            st->step++;
            for (int s = 0; s < a->nslots; s++)
                if (a->slot_used(gr->hp, s)) st->ready[s] = true;
        }
    }
    wk_frame_end();
    opt->nupdates++;
    return 0;
fail:
    wk_frame_end();
    return -1;
}

void wk_optimizer_zero_grad(wk_optimizer *opt)
{
    for (int g = 0; opt && g < opt->ngroups; g++)
        wk_zero_grad(opt->groups[g].params, opt->groups[g].nparams);
}

/* ---- gradient accumulation ---- */

int wk_optimizer_set_accumulation(wk_optimizer *opt, int n)
{
    if (!opt) {
        wk_set_error("optimizer_set_accumulation: optimizer is NULL");
        return -1;
    }
    if (n < 1) {
        wk_set_error("optimizer_set_accumulation: n = %d, expected >= 1 micro-batches per update",
                     n);
        return -1;
    }
    opt->accum_n = n;
    opt->accum_count = 0;
    return 0;
}

double wk_optimizer_loss_scale(const wk_optimizer *opt, int64_t micro_batches_left)
{
    if (!opt) {
        wk_set_error("optimizer_loss_scale: optimizer is NULL");
        return NAN;
    }
    int64_t k = opt->accum_n;
    if (micro_batches_left > 0 && opt->accum_count + micro_batches_left < k)
        k = opt->accum_count + micro_batches_left;
    return 1.0 / (double)k;
}

int wk_optimizer_micro_step(wk_optimizer *opt, bool last_of_epoch)
{
    if (!opt) {
        wk_set_error("optimizer_micro_step: optimizer is NULL");
        return -1;
    }
    if (++opt->accum_count < opt->accum_n && !last_of_epoch) return 0;
    opt->accum_count = 0;
    if (wk_optimizer_step(opt) < 0) return -1;
    wk_optimizer_zero_grad(opt);
    return 1;
}

/* ---- state ---- */

#define STATE_FORMAT "wick.optimizer/1"

/* A JSON number that reads back to the same double (non-finite values as strings). */
static cJSON *json_num(double v)
{
    char buf[40];
    if (isnan(v)) return cJSON_CreateString("nan");
    if (isinf(v)) return cJSON_CreateString(v > 0 ? "inf" : "-inf");
    snprintf(buf, sizeof buf, "%.17g", v);
    return cJSON_CreateRaw(buf);
}

static bool json_get_num(const cJSON *v, double *out)
{
    if (cJSON_IsNumber(v)) {
        *out = v->valuedouble;
        return true;
    }
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "nan")) *out = NAN;
        else if (!strcmp(v->valuestring, "inf")) *out = INFINITY;
        else if (!strcmp(v->valuestring, "-inf")) *out = -INFINITY;
        else return false;
        return true;
    }
    return false;
}

/* An integer-valued JSON number in [lo, hi]. */
static bool json_get_int(const cJSON *v, int64_t lo, int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) return false;
    *out = (int64_t)d;
    return true;
}

/* "<prefix><name>.<slot>" or "<prefix><g>.<i>.<slot>" (malloc'd). */
static char *slot_name(const char *prefix, const char *pname, int g, int i, const char *slot)
{
    strbuf b = {0};
    if (pname) sb_printf(&b, "%s%s.%s", prefix, pname, slot);
    else sb_printf(&b, "%s%d.%d.%s", prefix, g, i, slot);
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}

static cJSON *state_json(const wk_optimizer *opt)
{
    const wki_optim_algo *a = opt->algo;
    cJSON *root = cJSON_CreateObject(), *groups = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "format", STATE_FORMAT);
    cJSON_AddStringToObject(root, "type", a->name);
    cJSON_AddItemToObject(root, "updates", json_num((double)opt->nupdates));
    cJSON *acc = cJSON_CreateObject();
    cJSON_AddItemToObject(acc, "n", json_num(opt->accum_n));
    cJSON_AddItemToObject(acc, "count", json_num(opt->accum_count));
    cJSON_AddItemToObject(root, "accumulation", acc);
    cJSON_AddItemToObject(root, "groups", groups);
    for (int g = 0; g < opt->ngroups; g++) {
        const wki_param_group *gr = &opt->groups[g];
        cJSON *jg = cJSON_CreateObject(), *hp = cJSON_CreateObject(), *ps = cJSON_CreateArray();
        cJSON_AddItemToObject(jg, "lr", json_num(gr->lr));
        cJSON_AddItemToObject(jg, "initial_lr", json_num(gr->initial_lr));
        for (int k = 0; k < a->nhparams; k++)
            cJSON_AddItemToObject(hp, a->hparams[k].name, json_num(gr->hp[k]));
        cJSON_AddItemToObject(jg, "hparams", hp);
        for (int i = 0; i < gr->nparams; i++) {
            const wk_tensor *p = gr->params[i];
            const wki_param_state *st = &gr->state[i];
            cJSON *jp = cJSON_CreateObject(), *shape = cJSON_CreateArray(),
                  *slots = cJSON_CreateArray();
            if (gr->names) cJSON_AddStringToObject(jp, "name", gr->names[i]);
            else cJSON_AddNullToObject(jp, "name");
            for (int d = 0; d < p->ndim; d++)
                cJSON_AddItemToArray(shape, json_num((double)p->shape[d]));
            cJSON_AddItemToObject(jp, "shape", shape);
            cJSON_AddStringToObject(jp, "dtype", wk_dtype_name(p->dtype));
            cJSON_AddItemToObject(jp, "step", json_num((double)st->step));
            for (int s = 0; s < a->nslots; s++)
                if (st->slot[s] && st->ready[s])
                    cJSON_AddItemToArray(slots, cJSON_CreateString(a->slots[s]));
            cJSON_AddItemToObject(jp, "slots", slots);
            cJSON_AddItemToArray(ps, jp);
        }
        cJSON_AddItemToObject(jg, "params", ps);
        cJSON_AddItemToArray(groups, jg);
    }
    return root;
}

int wk_optimizer_state_save(const wk_optimizer *opt, const char *prefix,
                            wk_named_tensor **items, int *count, char **json)
{
    const char *op = "optimizer_state_save";
    if (!opt || !items || !count || !json) {
        wk_set_error("%s: %s is NULL", op,
                     !opt ? "optimizer" : !items ? "items" : !count ? "count" : "json");
        return -1;
    }
    if (!prefix) prefix = "";
    const wki_optim_algo *a = opt->algo;
    int nnew = 0;
    for (int g = 0; g < opt->ngroups; g++)
        for (int i = 0; i < opt->groups[g].nparams; i++)
            for (int s = 0; s < a->nslots; s++)
                nnew += opt->groups[g].state[i].slot[s] && opt->groups[g].state[i].ready[s];
    wk_named_tensor *arr = realloc(*items, (size_t)(*count + nnew + 1) * sizeof *arr);
    if (!arr) goto oom;
    *items = arr;
    int n = *count;
    for (int g = 0; g < opt->ngroups; g++) {
        const wki_param_group *gr = &opt->groups[g];
        for (int i = 0; i < gr->nparams; i++)
            for (int s = 0; s < a->nslots; s++) {
                const wki_param_state *st = &gr->state[i];
                if (!st->slot[s] || !st->ready[s]) continue;
                char *name = slot_name(prefix, gr->names ? gr->names[i] : NULL, g, i, a->slots[s]);
                if (!name) {
                    while (n > *count) free(arr[--n].name);
                    goto oom;
                }
                arr[n++] = (wk_named_tensor){name, st->slot[s]};
            }
    }
    cJSON *root = state_json(opt);
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    *json = text ? str_dup(text) : NULL;
    cJSON_free(text);
    if (!*json) {
        while (n > *count) free(arr[--n].name);
        goto oom;
    }
    *count = n;
    return 0;
oom:
    wk_set_error("%s: out of memory", op);
    return -1;
}

/* Problems found while checking a state before loading it: all are counted, the
 * first ones spelled out. */
typedef struct {
    strbuf msg;
    int n;
    bool cut;
} problems;

static void problem(problems *pr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void problem(problems *pr, const char *fmt, ...)
{
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    pr->n++;
    if (pr->cut) return;
    if (pr->msg.len > 600) {
        sb_printf(&pr->msg, "; ...");
        pr->cut = true;
        return;
    }
    sb_printf(&pr->msg, "%s%s", pr->n > 1 ? "; " : "", buf);
}

/* What loading will do to one parameter, decided before anything changes. */
typedef struct {
    int64_t step;
    const wk_tensor *src[WKI_OPTIM_MAX_SLOTS]; /* file tensor per slot, NULL: none */
    wk_tensor *fresh[WKI_OPTIM_MAX_SLOTS];     /* newly allocated destination, if needed */
} load_plan;

static const char *shape_dtype_s(const wk_tensor *t, char *buf, size_t n)
{
    snprintf(buf, n, "%s %s", wk_dtype_name(t->dtype), wki_shape_s(t));
    return buf;
}

/* Check the JSON group `jg` against group g and fill its plans; problems are recorded. */
static void check_group(const wk_optimizer *opt, int g, const cJSON *jg, const wk_safetensors *st,
                        const char *prefix, bool *used, double *hp, double *lrs, load_plan *plans,
                        problems *pr)
{
    const wki_optim_algo *a = opt->algo;
    const wki_param_group *gr = &opt->groups[g];
    if (!json_get_num(cJSON_GetObjectItemCaseSensitive(jg, "lr"), &lrs[0]) ||
        !json_get_num(cJSON_GetObjectItemCaseSensitive(jg, "initial_lr"), &lrs[1]))
        problem(pr, "group %d: lr or initial_lr missing", g);
    const cJSON *jhp = cJSON_GetObjectItemCaseSensitive(jg, "hparams");
    for (int k = 0; k < a->nhparams; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(jhp, a->hparams[k].name);
        if (!json_get_num(v, &hp[k])) {
            problem(pr, "group %d: hyper-parameter %s missing", g, a->hparams[k].name);
        } else {
            char gop[32];
            snprintf(gop, sizeof gop, "group %d", g);
            if (!hp_valid(gop, &a->hparams[k], hp[k])) {
                problem(pr, "%s", wk_last_error());
                wk_clear_error();
            }
        }
    }
    for (const cJSON *v = jhp ? jhp->child : NULL; v; v = v->next) {
        bool known = false;
        for (int k = 0; k < a->nhparams; k++) known |= strcmp(v->string, a->hparams[k].name) == 0;
        if (!known)
            problem(pr, "group %d: unknown hyper-parameter \"%s\" for %s", g, v->string, a->name);
    }
    if (a->check && a->check(hp)) problem(pr, "group %d: %s", g, a->check(hp));
    const cJSON *jps = cJSON_GetObjectItemCaseSensitive(jg, "params");
    int np = cJSON_GetArraySize(jps);
    if (!cJSON_IsArray(jps) || np != gr->nparams) {
        problem(pr, "group %d: state has %d parameters, optimizer has %d", g,
                cJSON_IsArray(jps) ? np : 0, gr->nparams);
        return;
    }
    int i = 0;
    for (const cJSON *jp = jps->child; jp; jp = jp->next, i++) {
        const wk_tensor *p = gr->params[i];
        char who[300], sd[96], sd2[96];
        param_label(gr, g, i, who, sizeof who);
        const cJSON *jn = cJSON_GetObjectItemCaseSensitive(jp, "name");
        const char *fname = cJSON_IsString(jn) ? jn->valuestring : NULL;
        const cJSON *jslots = cJSON_GetObjectItemCaseSensitive(jp, "slots");
        /* the parameter's tensors are accounted for even when it does not match */
        for (const cJSON *js = cJSON_IsArray(jslots) ? jslots->child : NULL; js; js = js->next) {
            char *name =
                cJSON_IsString(js) ? slot_name(prefix, fname, g, i, js->valuestring) : NULL;
            for (int k = 0; name && k < st->count; k++)
                if (strcmp(st->items[k].name, name) == 0) used[k] = true;
            free(name);
        }
        if (fname && gr->names && strcmp(fname, gr->names[i]) != 0) {
            problem(pr, "group %d parameter %d: state has \"%s\", optimizer has \"%s\"", g, i,
                    fname, gr->names[i]);
            continue;
        }
        const cJSON *jshape = cJSON_GetObjectItemCaseSensitive(jp, "shape");
        bool shape_ok = cJSON_IsArray(jshape) && cJSON_GetArraySize(jshape) == p->ndim;
        int d = 0;
        for (const cJSON *x = shape_ok ? jshape->child : NULL; x; x = x->next, d++) {
            int64_t v;
            shape_ok &= json_get_int(x, 0, INT64_MAX, &v) && v == p->shape[d];
        }
        const cJSON *jdt = cJSON_GetObjectItemCaseSensitive(jp, "dtype");
        bool dtype_ok =
            cJSON_IsString(jdt) && strcmp(jdt->valuestring, wk_dtype_name(p->dtype)) == 0;
        if (!shape_ok || !dtype_ok) {
            char *js = cJSON_PrintUnformatted(jshape);
            problem(pr, "%s: state has %s %s, optimizer has %s", who,
                    cJSON_IsString(jdt) ? jdt->valuestring : "?", js ? js : "?",
                    shape_dtype_s(p, sd, sizeof sd));
            cJSON_free(js);
            continue;
        }
        if (!json_get_int(cJSON_GetObjectItemCaseSensitive(jp, "step"), 0, INT64_MAX,
                          &plans[i].step))
            problem(pr, "%s: step missing or not a count", who);
        for (const cJSON *js = cJSON_IsArray(jslots) ? jslots->child : NULL; js; js = js->next) {
            int s = -1;
            for (int k = 0; cJSON_IsString(js) && k < a->nslots; k++)
                if (strcmp(js->valuestring, a->slots[k]) == 0) s = k;
            if (s < 0) {
                problem(pr, "%s: unknown state slot %s for %s", who,
                        cJSON_IsString(js) ? js->valuestring : "(not a string)", a->name);
                continue;
            }
            char *name = slot_name(prefix, fname, g, i, a->slots[s]);
            int idx = -1;
            for (int k = 0; name && k < st->count; k++)
                if (strcmp(st->items[k].name, name) == 0) idx = k;
            if (idx < 0) {
                problem(pr, "missing \"%s\"", name ? name : "?");
            } else {
                const wk_tensor *t = st->items[idx].tensor;
                if (!wk_same_shape(t, p) || t->dtype != p->dtype)
                    problem(pr, "%s: file has %s, parameter has %s", name,
                            shape_dtype_s(t, sd, sizeof sd), shape_dtype_s(p, sd2, sizeof sd2));
                else plans[i].src[s] = t;
            }
            free(name);
        }
    }
}

int wk_optimizer_state_load(wk_optimizer *opt, const wk_safetensors *st, const char *prefix,
                            const char *json)
{
    const char *op = "optimizer_state_load";
    if (!opt || !st || !json) {
        wk_set_error("%s: %s is NULL", op, !opt ? "optimizer" : !st ? "safetensors" : "json");
        return -1;
    }
    if (!prefix) prefix = "";
    const wki_optim_algo *a = opt->algo;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        wk_set_error("%s: the state is not a JSON object", op);
        return -1;
    }
    int rc = -1;
    problems pr = {0};
    bool *used = calloc((size_t)st->count + 1, sizeof *used);
    load_plan **plans = calloc((size_t)opt->ngroups, sizeof *plans);
    double(*hps)[WKI_OPTIM_MAX_HPARAMS] = calloc((size_t)opt->ngroups, sizeof *hps);
    double(*lrs)[2] = calloc((size_t)opt->ngroups, sizeof *lrs);
    bool oom = !used || !plans || !hps || !lrs;
    for (int g = 0; !oom && g < opt->ngroups; g++)
        oom |= !(plans[g] = calloc((size_t)opt->groups[g].nparams + 1, sizeof **plans));
    if (oom) {
        wk_set_error("%s: out of memory", op);
        goto done;
    }

    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(root, "type");
    const cJSON *groups = cJSON_GetObjectItemCaseSensitive(root, "groups");
    const cJSON *acc = cJSON_GetObjectItemCaseSensitive(root, "accumulation");
    int64_t updates = 0, acc_n = 1, acc_count = 0;
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, STATE_FORMAT) != 0) {
        wk_set_error("%s: not an optimizer state (format is not \"%s\")", op, STATE_FORMAT);
        goto done;
    }
    if (!cJSON_IsString(type) || strcmp(type->valuestring, a->name) != 0) {
        wk_set_error("%s: the state is for %s, the optimizer is %s", op,
                     cJSON_IsString(type) ? type->valuestring : "?", a->name);
        goto done;
    }
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(root, "updates"), 0, INT64_MAX, &updates))
        problem(&pr, "updates missing or not a count");
    if (!json_get_int(cJSON_GetObjectItemCaseSensitive(acc, "n"), 1, INT32_MAX, &acc_n) ||
        !json_get_int(cJSON_GetObjectItemCaseSensitive(acc, "count"), 0, acc_n - 1, &acc_count))
        problem(&pr, "accumulation missing or invalid");
    int ng = cJSON_GetArraySize(groups);
    if (!cJSON_IsArray(groups) || ng != opt->ngroups) {
        problem(&pr, "state has %d parameter groups, optimizer has %d",
                cJSON_IsArray(groups) ? ng : 0, opt->ngroups);
    } else {
        int g = 0;
        for (const cJSON *jg = groups->child; jg; jg = jg->next, g++)
            check_group(opt, g, jg, st, prefix, used, hps[g], lrs[g], plans[g], &pr);
    }
    size_t plen = strlen(prefix);
    for (int k = 0; k < st->count; k++)
        if (!used[k] && strncmp(st->items[k].name, prefix, plen) == 0)
            problem(&pr, "unexpected \"%s\"", st->items[k].name);
    if (pr.n) {
        wk_set_error("%s: %d problem%s: %s", op, pr.n, pr.n > 1 ? "s" : "",
                     pr.msg.s ? pr.msg.s : "?");
        goto done;
    }

    /* Allocate what is missing before changing anything. */
    for (int g = 0; g < opt->ngroups && !oom; g++)
        for (int i = 0; i < opt->groups[g].nparams && !oom; i++)
            for (int s = 0; s < a->nslots && !oom; s++) {
                if (!plans[g][i].src[s] || opt->groups[g].state[i].slot[s]) continue;
                const wk_tensor *p = opt->groups[g].params[i];
                wk_tensor *t = wki_empty_on(p->shape, p->ndim, p->dtype, p->device);
                if (t) wki_make_persistent(t);
                oom = !(plans[g][i].fresh[s] = t);
            }
    if (oom) {
        for (int g = 0; g < opt->ngroups; g++)
            for (int i = 0; i < opt->groups[g].nparams; i++)
                for (int s = 0; s < a->nslots; s++) wk_tensor_free(plans[g][i].fresh[s]);
        goto done;
    }
    for (int g = 0; g < opt->ngroups; g++) {
        wki_param_group *gr = &opt->groups[g];
        memcpy(gr->hp, hps[g], sizeof hps[g]);
        gr->lr = lrs[g][0];
        gr->initial_lr = lrs[g][1];
        for (int i = 0; i < gr->nparams; i++) {
            wki_param_state *ps = &gr->state[i];
            load_plan *pl = &plans[g][i];
            ps->step = pl->step;
            for (int s = 0; s < a->nslots; s++) {
                if (!pl->src[s]) {
                    wk_tensor_free(ps->slot[s]);
                    ps->slot[s] = NULL;
                    ps->ready[s] = false;
                    continue;
                }
                if (!ps->slot[s]) ps->slot[s] = pl->fresh[s];
                wk_copy_(ps->slot[s], pl->src[s]);
                ps->ready[s] = true;
            }
        }
    }
    opt->nupdates = updates;
    opt->accum_n = (int)acc_n;
    opt->accum_count = (int)acc_count;
    rc = 0;
done:
    cJSON_Delete(root);
    free(pr.msg.s);
    free(used);
    for (int g = 0; plans && g < opt->ngroups; g++) free(plans[g]);
    free(plans);
    free(hps);
    free(lrs);
    return rc;
}

#define FILE_PREFIX "optim."
#define FILE_META_KEY "optimizer"

int wk_optimizer_save(const wk_optimizer *opt, const char *path)
{
    wk_named_tensor *items = NULL;
    int n = 0;
    char *json = NULL;
    if (wk_optimizer_state_save(opt, FILE_PREFIX, &items, &n, &json) < 0) return -1;
    const char *key = FILE_META_KEY, *value = json;
    int rc = wk_safetensors_save(path, items, n, &key, &value, 1);
    for (int k = 0; k < n; k++) free(items[k].name);
    free(items);
    free(json);
    return rc;
}

int wk_optimizer_load(wk_optimizer *opt, const char *path)
{
    wk_safetensors st;
    if (!opt) {
        wk_set_error("optimizer_load: optimizer is NULL");
        return -1;
    }
    if (wk_safetensors_load(path, &st) < 0) return -1;
    const char *json = wk_safetensors_meta(&st, FILE_META_KEY);
    int rc = -1;
    if (!json)
        wk_set_error("optimizer_load: %s has no \"%s\" metadata (not written by wk_optimizer_save)",
                     path, FILE_META_KEY);
    else rc = wk_optimizer_state_load(opt, &st, FILE_PREFIX, json);
    wk_safetensors_free(&st);
    return rc;
}

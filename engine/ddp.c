/* Data parallelism: gradient buckets averaged across ranks, and the module-wide
 * collectives (broadcast from a root, buffer averaging, the in-sync check). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../tensor/creation.h"
#include "../tensor/tensor-impl.h"
#include "ddp.h"
#include "dist-impl.h"

typedef struct {
    wk_dtype dtype;
    int count;          /* parameters in it */
    int *idx;           /* their indices, in packing order */
    int64_t *offset;    /* each one's first element in buf */
    int64_t numel;
    void *buf;
} bucket;

struct wk_ddp {
    wk_comm *comm;
    int n;
    wk_tensor **params;
    char **names;
    int nbuckets;
    bucket *buckets;
    wk_ddp_stats stats;
};

/* FNV-1a, 64 bits */
static uint64_t fnv(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}
#define FNV_INIT 0xcbf29ce484222325ull

/* A tensor's structure: name, dtype, shape. */
static uint64_t structure_hash(const char *name, const wk_tensor *t)
{
    uint64_t h = fnv(FNV_INIT, name, strlen(name) + 1);
    int32_t meta[2] = {(int32_t)t->dtype, t->ndim};
    h = fnv(h, meta, sizeof meta);
    return fnv(h, t->shape, (size_t)t->ndim * sizeof t->shape[0]);
}

/* Compare this rank's per-item fingerprints with root's; the verdict is agreed, so every
 * rank returns the same: 1 equal, 0 different (error "rank R failed: <op>: <item> ..." on
 * every rank), -1 communication failure. */
static int same_as_root(wk_comm *c, const uint64_t *h, int n, int root, const char *op,
                        const char *what, const char *(*name_of)(const void *, int),
                        const void *ctx)
{
    int64_t nroot = n;
    if (wk_comm_broadcast(c, &nroot, 1, WK_DTYPE_I64, root) < 0) return -1;
    uint64_t *theirs = malloc((size_t)(nroot > 0 ? nroot : 1) * sizeof *theirs);
    if (!theirs) {
        wk_set_error("%s: out of memory", op);
        return -1; /* the others wait in the broadcast: nothing better to do */
    }
    if (wk_comm_rank(c) == root) memcpy(theirs, h, (size_t)n * sizeof *h);
    if (wk_comm_broadcast(c, theirs, nroot, WK_DTYPE_I64, root) < 0) {
        free(theirs);
        return -1;
    }
    bool same = true;
    int64_t m = nroot < n ? nroot : n;
    for (int64_t i = 0; i < m && same; i++) {
        if (theirs[i] != h[i]) {
            wk_set_error("%s: %s %s differs from rank %d's (name, shape or dtype)", op, what,
                         name_of(ctx, (int)i), root);
            same = false;
        }
    }
    if (same && nroot != n) {
        wk_set_error("%s: this rank has %d %ss, rank %d has %lld", op, n, what, root,
                     (long long)nroot);
        same = false;
    }
    free(theirs);
    return wk_dist_agree_ok(c, same, NULL);
}

/* ---- the gradient buckets ---- */

static const char *param_name(const void *ctx, int i)
{
    const wk_ddp *d = ctx;
    static _Thread_local char buf[32];
    if (i >= d->n) return "bucket_bytes (the option)";
    if (d->names) return d->names[i];
    snprintf(buf, sizeof buf, "parameter %d", i);
    return buf;
}

static bool check_params(wk_tensor *const *params, const char *const *names, int n)
{
    if (n <= 0 || !params) {
        wk_set_error("ddp_new: no parameters (%d)", n);
        return false;
    }
    for (int i = 0; i < n; i++) {
        const wk_tensor *p = params[i];
        char nm[32];
        snprintf(nm, sizeof nm, "parameter %d", i);
        const char *name = names && names[i] ? names[i] : nm;
        if (!p) {
            wk_set_error("ddp_new: %s is NULL", name);
            return false;
        }
        if (p->dtype != WK_DTYPE_F32 && p->dtype != WK_DTYPE_F64) {
            wk_set_error("ddp_new: %s is %s (expected float32 or float64)", name,
                         wk_dtype_name(p->dtype));
            return false;
        }
        if (p->device.type != WK_DEVICE_CPU) {
            wk_set_error("ddp_new: %s is not a CPU tensor", name);
            return false;
        }
        if (!wk_is_contiguous(p)) {
            wk_set_error("ddp_new: %s is not contiguous", name);
            return false;
        }
        for (int j = 0; j < i; j++)
            if (params[j] == p) {
                wk_set_error("ddp_new: %s is given twice", name);
                return false;
            }
    }
    return true;
}

static int add_to_bucket(bucket *b, int i, int64_t numel)
{
    int *idx = realloc(b->idx, (size_t)(b->count + 1) * sizeof *idx);
    if (!idx) return -1;
    b->idx = idx;
    int64_t *off = realloc(b->offset, (size_t)(b->count + 1) * sizeof *off);
    if (!off) return -1;
    b->offset = off;
    b->idx[b->count] = i;
    b->offset[b->count] = b->numel;
    b->count++;
    b->numel += numel;
    return 0;
}

/* Buckets by dtype in reverse parameter order, each at most cap bytes (or one parameter). */
static int make_buckets(wk_ddp *d, int64_t cap)
{
    const wk_dtype types[2] = {WK_DTYPE_F32, WK_DTYPE_F64};
    int open[2] = {-1, -1};
    for (int i = d->n - 1; i >= 0; i--) {
        const wk_tensor *p = d->params[i];
        int k = p->dtype == WK_DTYPE_F64;
        int64_t numel = wk_numel(p), esz = (int64_t)wk_dtype_size(p->dtype);
        bucket *cur = open[k] >= 0 ? &d->buckets[open[k]] : NULL;
        if (!cur || (cur->count > 0 && (cur->numel + numel) * esz > cap)) {
            bucket *nb = realloc(d->buckets, (size_t)(d->nbuckets + 1) * sizeof *nb);
            if (!nb) return -1;
            d->buckets = nb;
            d->buckets[d->nbuckets] = (bucket){.dtype = types[k]};
            open[k] = d->nbuckets++;
            cur = &d->buckets[open[k]];
        }
        if (add_to_bucket(cur, i, numel) < 0) return -1;
    }
    for (int b = 0; b < d->nbuckets; b++) {
        bucket *bk = &d->buckets[b];
        bk->buf = malloc((size_t)(bk->numel > 0 ? bk->numel : 1) * wk_dtype_size(bk->dtype));
        if (!bk->buf) return -1;
        d->stats.bytes += bk->numel * (int64_t)wk_dtype_size(bk->dtype);
    }
    d->stats.nbuckets = d->nbuckets;
    return 0;
}

void wk_ddp_free(wk_ddp *d)
{
    if (!d) return;
    for (int b = 0; b < d->nbuckets; b++) {
        free(d->buckets[b].idx);
        free(d->buckets[b].offset);
        free(d->buckets[b].buf);
    }
    free(d->buckets);
    for (int i = 0; d->names && i < d->n; i++) free(d->names[i]);
    free(d->names);
    free(d->params);
    free(d);
}

wk_ddp *wk_ddp_new(wk_comm *c, wk_tensor *const *params, const char *const *names, int n,
                   const wk_ddp_opts *opts)
{
    if (!c) {
        wk_set_error("ddp_new: communicator is NULL");
        return NULL;
    }
    if (c->backend == WK_COMM_BACKEND_NCCL) {
        wk_set_error("ddp_new: an NCCL communicator takes device buffers, and wick's "
                     "parameters are CPU tensors (use the MPI communicator)");
        return NULL;
    }
    int64_t cap = opts && opts->bucket_bytes ? opts->bucket_bytes : WK_DDP_DEFAULT_BUCKET_BYTES;
    if (cap < 0) {
        wk_set_error("ddp_new: bucket_bytes %lld is negative", (long long)cap);
        return NULL;
    }
    /* Local mistakes are agreed on too, so that no rank is left waiting in a collective. */
    bool ok = check_params(params, names, n);
    wk_ddp *d = ok ? calloc(1, sizeof *d) : NULL;
    if (ok && !d) wk_set_error("ddp_new: out of memory");
    ok = d != NULL;
    if (ok) {
        d->comm = c;
        d->n = n;
        d->params = malloc((size_t)n * sizeof *d->params);
        ok = d->params != NULL;
        if (ok) memcpy(d->params, params, (size_t)n * sizeof *params);
        if (ok && names) {
            d->names = calloc((size_t)n, sizeof *d->names);
            ok = d->names != NULL;
            for (int i = 0; ok && i < n; i++) {
                char nm[32];
                snprintf(nm, sizeof nm, "parameter %d", i);
                d->names[i] = strdup(names[i] ? names[i] : nm);
                ok = d->names[i] != NULL;
            }
        }
        if (ok) ok = make_buckets(d, cap) == 0;
        if (!ok) wk_set_error("ddp_new: out of memory for %d parameters", n);
    }
    int agreed = wk_dist_agree_ok(c, ok, NULL);
    if (agreed != 1) {
        wk_ddp_free(d);
        return NULL;
    }
    /* the same parameter list everywhere (names not compared: they are optional) */
    uint64_t *h = malloc((size_t)n * sizeof *h + sizeof *h);
    ok = h != NULL;
    for (int i = 0; ok && i < n; i++) h[i] = structure_hash("", params[i]);
    if (ok) h[n] = (uint64_t)cap;
    if (!ok) wk_set_error("ddp_new: out of memory");
    agreed = wk_dist_agree_ok(c, ok, NULL);
    if (agreed == 1) agreed = same_as_root(c, h, n + 1, 0, "ddp_new", "entry", param_name, d);
    free(h);
    if (agreed != 1) {
        wk_ddp_free(d);
        return NULL;
    }
    return d;
}

wk_ddp *wk_ddp_new_module(wk_comm *c, const wk_module *m, const wk_ddp_opts *opts)
{
    if (!m) {
        wk_set_error("ddp_new_module: module is NULL");
        return NULL;
    }
    int n = wk_module_named_parameters(m, false, NULL, 0);
    wk_named_param *np = malloc((size_t)(n > 0 ? n : 1) * sizeof *np);
    wk_tensor **ps = malloc((size_t)(n > 0 ? n : 1) * sizeof *ps);
    const char **names = malloc((size_t)(n > 0 ? n : 1) * sizeof *names);
    wk_ddp *d = NULL;
    if (np && ps && names) {
        wk_module_named_parameters(m, false, np, n);
        for (int i = 0; i < n; i++) {
            ps[i] = np[i].tensor;
            names[i] = np[i].name;
        }
        d = wk_ddp_new(c, ps, names, n, opts);
    } else {
        wk_set_error("ddp_new_module: out of memory");
    }
    free(np);
    free(ps);
    free(names);
    return d;
}

int wk_ddp_num_buckets(const wk_ddp *d) { return d ? d->nbuckets : 0; }

const int *wk_ddp_bucket_params(const wk_ddp *d, int b, int *count)
{
    if (!d || b < 0 || b >= d->nbuckets) {
        if (count) *count = 0;
        return NULL;
    }
    if (count) *count = d->buckets[b].count;
    return d->buckets[b].idx;
}

wk_ddp_stats wk_ddp_get_stats(const wk_ddp *d)
{
    wk_ddp_stats s = {0};
    return d ? d->stats : s;
}

/* This rank's own check of its grads: shapes and dtypes, and zeros for missing ones. */
static bool prepare_grads(wk_ddp *d)
{
    for (int i = 0; i < d->n; i++) {
        wk_tensor *p = d->params[i], *g = p->grad;
        if (!g) continue;
        if (!wk_same_shape(g, p) || g->dtype != p->dtype || g->device.type != WK_DEVICE_CPU) {
            wk_set_error("ddp_allreduce_grads: the grad of %s is %s %s, its parameter %s %s",
                         param_name(d, i), wk_dtype_name(g->dtype), wki_shape_s(g),
                         wk_dtype_name(p->dtype), wki_shape_s(p));
            return false;
        }
    }
    for (int i = 0; i < d->n; i++) {
        wk_tensor *p = d->params[i];
        if (p->grad) continue;
        wk_tensor *z = wk_zeros(p->shape, p->ndim, p->dtype);
        if (!z) return false;
        wki_make_persistent(z);
        p->grad = z;
    }
    return true;
}

static void copy_grad(wk_tensor *g, void *at, bool pack)
{
    size_t bytes = (size_t)wk_numel(g) * wk_dtype_size(g->dtype);
    if (wk_is_contiguous(g)) {
        if (pack)
            memcpy(at, wk_data(g), bytes);
        else
            memcpy(wk_data(g), at, bytes);
        return;
    }
    wk_frame_begin();
    wk_tensor *flat = wk_from_blob(at, g->shape, g->ndim, g->dtype);
    if (pack)
        wk_copy_(flat, g);
    else
        wk_copy_(g, flat);
    wk_frame_end();
}

int wk_ddp_allreduce_grads(wk_ddp *d, bool ok)
{
    if (!d) {
        wk_set_error("ddp_allreduce_grads: ddp is NULL");
        return -1;
    }
    double t0 = wki_now();
    if (ok) ok = prepare_grads(d);
    double ta = wki_now();
    int agreed = wk_dist_agree_ok(d->comm, ok, NULL);
    d->stats.agree_seconds += wki_now() - ta;
    if (agreed != 1) return agreed;
    double comm = 0;
    if (wk_comm_size(d->comm) > 1) {
        for (int b = 0; b < d->nbuckets; b++) {
            bucket *bk = &d->buckets[b];
            size_t esz = wk_dtype_size(bk->dtype);
            for (int k = 0; k < bk->count; k++)
                copy_grad(d->params[bk->idx[k]]->grad, (char *)bk->buf + bk->offset[k] * esz,
                          true);
            double tc = wki_now();
            if (wk_comm_allreduce(d->comm, bk->buf, bk->numel, bk->dtype, WK_COMM_AVG) < 0)
                return -1;
            comm += wki_now() - tc;
            for (int k = 0; k < bk->count; k++)
                copy_grad(d->params[bk->idx[k]]->grad, (char *)bk->buf + bk->offset[k] * esz,
                          false);
        }
    }
    double t = wki_now() - t0;
    d->stats.calls++;
    d->stats.seconds += t;
    d->stats.comm_seconds += comm;
    d->stats.last_seconds = t;
    return 1;
}

/* ---- modules ---- */

typedef struct {
    wk_named_param *items;
    int n;
} tensor_list;

static const char *item_name(const void *ctx, int i)
{
    const tensor_list *l = ctx;
    return l->items[i].name;
}

/* m's parameters and buffers, and their structure agreed with root's. 1, 0 or -1 as
 * same_as_root; l->items is malloc'd (free it) when 1 is returned. */
static int module_tensors(wk_comm *c, const wk_module *m, int root, const char *op,
                          tensor_list *l)
{
    l->items = NULL;
    l->n = 0;
    bool ok = true;
    if (!m) {
        wk_set_error("%s: module is NULL", op);
        ok = false;
    }
    uint64_t *h = NULL;
    if (ok) {
        l->n = wk_module_named_parameters(m, true, NULL, 0);
        l->items = malloc((size_t)(l->n > 0 ? l->n : 1) * sizeof *l->items);
        h = malloc((size_t)(l->n > 0 ? l->n : 1) * sizeof *h);
        ok = l->items && h;
        if (!ok) wk_set_error("%s: out of memory", op);
    }
    if (ok) {
        wk_module_named_parameters(m, true, l->items, l->n);
        for (int i = 0; i < l->n; i++) {
            h[i] = structure_hash(l->items[i].name, l->items[i].tensor);
            if (l->items[i].tensor->device.type != WK_DEVICE_CPU) {
                wk_set_error("%s: %s is not a CPU tensor", op, l->items[i].name);
                ok = false;
                break;
            }
        }
    }
    int r = wk_dist_agree_ok(c, ok, NULL);
    if (r == 1) r = same_as_root(c, h, l->n, root, op, "tensor", item_name, l);
    free(h);
    if (r != 1) {
        free(l->items);
        l->items = NULL;
    }
    return r;
}

int wk_ddp_broadcast_module(wk_comm *c, wk_module *m, int root)
{
    if (!c) {
        wk_set_error("ddp_broadcast_module: communicator is NULL");
        return -1;
    }
    if (root < 0 || root >= wk_comm_size(c)) {
        wk_set_error("ddp_broadcast_module: root %d is out of range for %d ranks", root,
                     wk_comm_size(c));
        return -1;
    }
    tensor_list l;
    if (module_tensors(c, m, root, "ddp_broadcast_module", &l) != 1) return -1;
    int rc = 0;
    for (int i = 0; i < l.n && !rc; i++)
        rc = wk_comm_broadcast_tensor(c, l.items[i].tensor, root);
    free(l.items);
    return rc;
}

int wk_ddp_average_buffers(wk_comm *c, wk_module *m)
{
    if (!c) {
        wk_set_error("ddp_average_buffers: communicator is NULL");
        return -1;
    }
    tensor_list l;
    if (module_tensors(c, m, 0, "ddp_average_buffers", &l) != 1) return -1;
    int rc = 0;
    for (int i = 0; i < l.n && !rc; i++) {
        wk_tensor *t = l.items[i].tensor;
        if (l.items[i].is_buffer && (t->dtype == WK_DTYPE_F32 || t->dtype == WK_DTYPE_F64))
            rc = wk_comm_allreduce_tensor(c, t, WK_COMM_AVG);
    }
    free(l.items);
    return rc;
}

int wk_ddp_module_in_sync(wk_comm *c, const wk_module *m)
{
    if (!c) {
        wk_set_error("ddp_module_in_sync: communicator is NULL");
        return -1;
    }
    tensor_list l;
    int r = module_tensors(c, m, 0, "ddp_module_in_sync", &l);
    if (r != 1) return r;
    int64_t *lo = malloc((size_t)(l.n > 0 ? l.n : 1) * 2 * sizeof *lo);
    bool ok = lo != NULL;
    if (!ok) wk_set_error("ddp_module_in_sync: out of memory");
    int64_t *hi = ok ? lo + l.n : NULL;
    for (int i = 0; ok && i < l.n; i++) {
        wk_frame_begin();
        wk_tensor *t = wk_contiguous(l.items[i].tensor);
        ok = t != NULL;
        if (ok)
            lo[i] = hi[i] = (int64_t)fnv(FNV_INIT, wk_data(t),
                                         (size_t)wk_numel(t) * wk_dtype_size(t->dtype));
        wk_frame_end();
    }
    r = wk_dist_agree_ok(c, ok, NULL);
    if (r == 1 && (wk_comm_allreduce(c, lo, l.n, WK_DTYPE_I64, WK_COMM_MIN) < 0 ||
                   wk_comm_allreduce(c, hi, l.n, WK_DTYPE_I64, WK_COMM_MAX) < 0))
        r = -1;
    for (int i = 0; r == 1 && i < l.n; i++) {
        if (lo[i] != hi[i]) {
            wk_set_error("ddp_module_in_sync: %s differs between ranks", l.items[i].name);
            r = 0;
        }
    }
    free(lo);
    free(l.items);
    return r;
}

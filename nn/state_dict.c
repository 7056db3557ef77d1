/* State dicts: module parameters and buffers <-> safetensors entries by dotted name.
 *
 * Loading validates everything first (names, shapes, dtypes) and copies only when the
 * whole check passed (strict) or into the entries that passed (non-strict), so a failed
 * strict load never leaves a half-loaded model. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../tensor/tensor-impl.h"
#include "state_dict.h"

#define NAME_CAP ((int)sizeof(((wk_named_param *)0)->name))

void wk_state_dict_report_free(wk_state_dict_report *r)
{
    if (!r) return;
    for (int i = 0; i < r->nmissing; i++) free(r->missing[i]);
    for (int i = 0; i < r->nunexpected; i++) free(r->unexpected[i]);
    for (int i = 0; i < r->nmismatched; i++) free(r->mismatched[i]);
    free(r->missing);
    free(r->unexpected);
    free(r->mismatched);
    memset(r, 0, sizeof *r);
}

/* The module's entries in state-dict order (malloc'd; *n their count), or NULL with an
 * error. A NULL result with *n == 0 is an empty module. */
static wk_named_param *collect(const char *op, const wk_module *m, int *n)
{
    *n = wk_module_named_parameters(m, true, NULL, 0);
    if (*n == 0) return NULL;
    wk_named_param *e = malloc((size_t)*n * sizeof *e);
    if (!e) {
        wk_set_error("%s: out of memory for %d state-dict entries", op, *n);
        *n = -1;
        return NULL;
    }
    wk_module_named_parameters(m, true, e, *n);
    for (int i = 0; i < *n; i++) {
        /* named_parameters truncates silently; a truncated name would load wrongly. */
        if ((int)strlen(e[i].name) >= NAME_CAP - 1) {
            wk_set_error("%s: the dotted name \"%.60s...\" is over %d characters", op,
                         e[i].name, NAME_CAP - 2);
            free(e);
            *n = -1;
            return NULL;
        }
    }
    return e;
}

int wk_state_dict_append(const wk_module *m, const char *prefix, wk_named_tensor **items,
                         int *count)
{
    const char *op = "state_dict_append";
    if (!m || !items || !count || *count < 0) {
        wk_set_error("%s: %s", op, !m ? "module is NULL" : "items or count is NULL/invalid");
        return -1;
    }
    if (!prefix) prefix = "";
    int n;
    wk_named_param *e = collect(op, m, &n);
    if (n < 0) return -1;
    if (n == 0) return 0;
    wk_named_tensor *grown = realloc(*items, (size_t)(*count + n) * sizeof *grown);
    if (!grown) {
        free(e);
        wk_set_error("%s: out of memory", op);
        return -1;
    }
    *items = grown;
    size_t plen = strlen(prefix);
    for (int i = 0; i < n; i++) {
        size_t len = plen + strlen(e[i].name) + 1;
        char *name = malloc(len);
        if (!name) {
            for (int k = 0; k < i; k++) free(grown[*count + k].name);
            free(e);
            wk_set_error("%s: out of memory", op);
            return -1;
        }
        snprintf(name, len, "%s%s", prefix, e[i].name);
        grown[*count + i].name = name;
        grown[*count + i].tensor = e[i].tensor;
    }
    *count += n;
    free(e);
    return 0;
}

void wk_state_dict_items_free(wk_named_tensor *items, int count)
{
    if (!items) return;
    for (int i = 0; i < count; i++) free(items[i].name);
    free(items);
}

int wk_state_dict_save(const wk_module *m, const char *path, const char *const *meta_keys,
                       const char *const *meta_values, int meta_count)
{
    if (!m) {
        wk_set_error("state_dict_save: module is NULL");
        return -1;
    }
    wk_named_tensor *items = NULL;
    int n = 0;
    if (wk_state_dict_append(m, NULL, &items, &n) < 0) return -1;
    int rc = wk_safetensors_save(path, items, n, meta_keys, meta_values, meta_count);
    wk_state_dict_items_free(items, n);
    return rc;
}

/* ---- loading ---- */

/* A growable list of strings; `oom` remembers a failed allocation. */
typedef struct {
    char **s;
    int n, cap;
    bool oom;
} strlist;

static void list_add(strlist *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void list_add(strlist *l, const char *fmt, ...)
{
    if (l->oom) return;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 8;
        char **s = realloc(l->s, (size_t)cap * sizeof *s);
        if (!s) {
            l->oom = true;
            return;
        }
        l->s = s;
        l->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&l->s[l->n], fmt, ap) < 0) l->oom = true;
    else l->n++;
    va_end(ap);
}

static void list_free(strlist *l)
{
    for (int i = 0; i < l->n; i++) free(l->s[i]);
    free(l->s);
    memset(l, 0, sizeof *l);
}

static int cmp_item_ptr(const void *a, const void *b)
{
    return strcmp((*(const wk_named_tensor *const *)a)->name,
                  (*(const wk_named_tensor *const *)b)->name);
}

/* Index of the entry called prefix+name in the sorted array, or -1. */
static int find_sorted(const wk_named_tensor *const *sorted, int n, const char *prefix,
                       size_t plen, const char *name)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const char *s = sorted[mid]->name;
        int c = strncmp(s, prefix, plen);
        if (c == 0) c = strcmp(s + plen, name);
        if (c == 0) return mid;
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return -1;
}

/* Append "; " + s to the message buffer unless it would overflow; counts what is left
 * out. */
static void msg_add(char *msg, size_t cap, size_t reserve, const char *s, int *left_out)
{
    size_t len = strlen(msg);
    if (*left_out || len + strlen(s) + 2 + reserve >= cap) {
        (*left_out)++;
        return;
    }
    snprintf(msg + len, cap - len, "%s%s", len ? "; " : "", s);
}

static void move_list(strlist *l, char ***dst, int *n)
{
    *dst = l->s;
    *n = l->n;
    memset(l, 0, sizeof *l);
}

static int load_impl(const char *op, const char *what, wk_module *m, const wk_safetensors *st,
                     const char *prefix, bool strict, wk_state_dict_report *report)
{
    if (report) memset(report, 0, sizeof *report);
    if (!m || !st || (st->count > 0 && !st->items)) {
        wk_set_error("%s: %s: %s", op, what,
                     !m ? "module is NULL"
                        : "the safetensors struct is NULL or has no items array");
        return -1;
    }
    if (!prefix) prefix = "";
    size_t plen = strlen(prefix);

    int n = 0, rc = -1;
    wk_named_param *e = collect(op, m, &n);
    if (n < 0) return -1;
    int nf = st->count;
    const wk_named_tensor **sorted = malloc((size_t)(nf ? nf : 1) * sizeof *sorted);
    bool *used = calloc((size_t)(nf ? nf : 1), sizeof *used);
    int *match = malloc((size_t)(n ? n : 1) * sizeof *match); /* file index or -1 */
    strlist missing = {0}, unexpected = {0}, mismatched = {0};
    if (!sorted || !used || !match) {
        wk_set_error("%s: %s: out of memory", op, what);
        goto done;
    }
    for (int i = 0; i < nf; i++) {
        if (!st->items[i].name || !st->items[i].tensor) {
            wk_set_error("%s: %s: entry %d has a NULL name or tensor", op, what, i);
            goto done;
        }
        sorted[i] = &st->items[i];
    }
    qsort(sorted, (size_t)nf, sizeof *sorted, cmp_item_ptr);

    int nproblems = 0;
    for (int i = 0; i < n; i++) {
        match[i] = -1;
        int k = find_sorted(sorted, nf, prefix, plen, e[i].name);
        if (k < 0) {
            list_add(&missing, "%s", e[i].name);
            nproblems++;
            continue;
        }
        used[k] = true;
        const wk_tensor *f = sorted[k]->tensor, *t = e[i].tensor;
        bool shape_ok = wk_same_shape(f, t), dtype_ok = f->dtype == t->dtype;
        if (shape_ok && dtype_ok) {
            match[i] = k;
            continue;
        }
        nproblems++;
        if (!shape_ok && !dtype_ok)
            list_add(&mismatched, "%s: file has %s %s, model has %s %s", e[i].name,
                     wki_shape_s(f), wk_dtype_name(f->dtype), wki_shape_s(t),
                     wk_dtype_name(t->dtype));
        else if (!shape_ok)
            list_add(&mismatched, "%s: file has %s, model has %s", e[i].name, wki_shape_s(f),
                     wki_shape_s(t));
        else
            list_add(&mismatched, "%s: file has %s, model has %s", e[i].name,
                     wk_dtype_name(f->dtype), wk_dtype_name(t->dtype));
    }
    for (int k = 0; k < nf; k++) {
        if (used[k] || strncmp(sorted[k]->name, prefix, plen)) continue;
        list_add(&unexpected, "%s", sorted[k]->name + plen);
        nproblems++;
    }
    if (missing.oom || unexpected.oom || mismatched.oom) {
        wk_set_error("%s: %s: out of memory", op, what);
        goto done;
    }

    int nloaded = 0;
    if (strict && nproblems) {
        char msg[1024] = "", item[600], tail[64];
        int left_out = 0;
        const size_t reserve = 160; /* room for the head and the "and N more" tail */
        for (int i = 0; i < missing.n; i++) {
            snprintf(item, sizeof item, "missing \"%s\"", missing.s[i]);
            msg_add(msg, sizeof msg, reserve, item, &left_out);
        }
        for (int i = 0; i < unexpected.n; i++) {
            snprintf(item, sizeof item, "unexpected \"%s%s\"", prefix, unexpected.s[i]);
            msg_add(msg, sizeof msg, reserve, item, &left_out);
        }
        for (int i = 0; i < mismatched.n; i++)
            msg_add(msg, sizeof msg, reserve, mismatched.s[i], &left_out);
        tail[0] = '\0';
        if (left_out)
            snprintf(tail, sizeof tail, "; and %d more (see the report)", left_out);
        wk_set_error("%s: %s: %d problem%s loading into %s (strict; nothing loaded): %s%s", op,
                     what, nproblems, nproblems == 1 ? "" : "s", m->type, msg, tail);
    } else {
        wk_no_grad_begin();
        for (int i = 0; i < n; i++) {
            if (match[i] < 0) continue;
            if (!wk_copy_(e[i].tensor, sorted[match[i]]->tensor)) {
                wk_no_grad_end();
                char inner[800];
                snprintf(inner, sizeof inner, "%s", wk_last_error());
                wk_set_error("%s: %s: copying \"%s\" failed after %d entries were loaded: %s",
                             op, what, e[i].name, nloaded, inner);
                goto report;
            }
            nloaded++;
        }
        wk_no_grad_end();
        rc = 0;
    }
report:
    if (report) {
        move_list(&missing, &report->missing, &report->nmissing);
        move_list(&unexpected, &report->unexpected, &report->nunexpected);
        move_list(&mismatched, &report->mismatched, &report->nmismatched);
        report->nloaded = nloaded;
    }
done:
    list_free(&missing);
    list_free(&unexpected);
    list_free(&mismatched);
    free(match);
    free(used);
    free(sorted);
    free(e);
    return rc;
}

int wk_state_dict_load_from(wk_module *m, const wk_safetensors *st, const char *prefix,
                            bool strict, wk_state_dict_report *report)
{
    char what[160] = "safetensors";
    if (prefix && *prefix) snprintf(what, sizeof what, "prefix \"%.120s\"", prefix);
    return load_impl("state_dict_load", what, m, st, prefix, strict, report);
}

int wk_state_dict_load(wk_module *m, const char *path, bool strict,
                       wk_state_dict_report *report)
{
    if (report) memset(report, 0, sizeof *report);
    if (!m) {
        wk_set_error("state_dict_load: module is NULL");
        return -1;
    }
    wk_safetensors st;
    if (wk_safetensors_load(path, &st) < 0) return -1;
    int rc = load_impl("state_dict_load", path, m, &st, NULL, strict, report);
    wk_safetensors_free(&st);
    return rc;
}

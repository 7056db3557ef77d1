/* Sequential and ModuleList: modules whose children are named by position. */
#include <stdio.h>
#include <string.h>

#include "container.h"

static const char SEQUENTIAL[] = "Sequential";
static const char MODULE_LIST[] = "ModuleList";

static bool is_type(const wk_module *m, const char *type)
{
    return m && m->type && !strcmp(m->type, type);
}

static wk_tensor *sequential_forward(wk_module *m, wk_tensor *x)
{
    for (int i = 0; i < m->nchildren; i++) {
        wk_module *child = m->children[i].module;
        wk_tensor *y = wk_module_forward(child, x);
        if (!y) {
            /* Prefix the child's message so the failing layer can be found in a deep net. */
            char inner[1024];
            snprintf(inner, sizeof inner, "%s", wk_last_error());
            if (inner[0])
                wk_set_error("%s[%s] (%s): %s", m->type, m->children[i].name, child->type,
                             inner);
            else
                wk_set_error("%s[%s] (%s) returned NULL without an error", m->type,
                             m->children[i].name, child->type);
            return NULL;
        }
        x = y;
    }
    return x;
}

wk_module *wk_sequential_new(void)
{
    return wk_module_new(SEQUENTIAL, sequential_forward, 0);
}

wk_module *wk_module_list_new(void)
{
    return wk_module_new(MODULE_LIST, NULL, 0);
}

static wk_module *append(const char *op, const char *type, wk_module *c, wk_module *module)
{
    if (!is_type(c, type)) {
        if (c)
            wk_set_error("%s: expected a %s, got %s", op, type, c->type ? c->type : "(null)");
        else
            wk_set_error("%s: container is NULL", op);
        wk_module_free(module);
        return NULL;
    }
    if (!module) {
        if (!wk_last_error()[0]) wk_set_error("%s: module is NULL", op);
        return NULL;
    }
    char name[16];
    snprintf(name, sizeof name, "%d", c->nchildren);
    return wk_module_add_child(c, name, module);
}

wk_module *wk_sequential_append(wk_module *seq, wk_module *module)
{
    return append("sequential_append", SEQUENTIAL, seq, module);
}

wk_module *wk_module_list_append(wk_module *list, wk_module *module)
{
    return append("module_list_append", MODULE_LIST, list, module);
}

wk_module *wk_sequential_of(wk_module *const *mods, int n)
{
    const char *op = "sequential_of";
    int bad = -1;
    if (n < 0 || (n > 0 && !mods)) {
        wk_set_error("%s: %d modules at %p: expected n >= 0 and a non-NULL array", op, n,
                     (const void *)mods);
        return NULL;
    }
    for (int i = 0; i < n && bad < 0; i++)
        if (!mods[i]) bad = i;
    wk_module *seq = bad < 0 ? wk_sequential_new() : NULL;
    if (!seq) {
        if (bad >= 0) {
            char prev[900];
            snprintf(prev, sizeof prev, "%s", wk_last_error());
            wk_set_error("%s: module %d is NULL%s%s%s", op, bad, prev[0] ? " (after: " : "",
                         prev, prev[0] ? ")" : "");
        }
        for (int i = 0; i < n; i++) wk_module_free(mods[i]);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        if (!wk_sequential_append(seq, mods[i])) {
            for (int k = i + 1; k < n; k++) wk_module_free(mods[k]);
            wk_module_free(seq);
            return NULL;
        }
    }
    return seq;
}

static int len_of(const char *op, const wk_module *list)
{
    if (!is_type(list, MODULE_LIST) && !is_type(list, SEQUENTIAL)) {
        wk_set_error("%s: expected a ModuleList or Sequential, got %s", op,
                     list ? list->type : "NULL");
        return -1;
    }
    return list->nchildren;
}

wk_module *wk_module_list_get(const wk_module *list, int i)
{
    int n = len_of("module_list_get", list);
    if (n < 0) return NULL;
    if (i < -n || i >= n) {
        if (n == 0)
            wk_set_error("module_list_get: index %d into an empty %s", i, list->type);
        else
            wk_set_error("module_list_get: index %d is out of range for a %s of %d modules "
                         "(expected %d..%d)", i, list->type, n, -n, n - 1);
        return NULL;
    }
    return list->children[i < 0 ? i + n : i].module;
}

int wk_module_list_len(const wk_module *list) { return len_of("module_list_len", list); }

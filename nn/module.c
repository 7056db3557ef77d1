/* Modules: registration of parameters, buffers and children; traversal by dotted name. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../autograd/autograd.h"
#include "../tensor/tensor-impl.h"
#include "module.h"

wk_module *wk_module_new(const char *type, wk_forward_fn forward, size_t config_size)
{
    wk_module *m = calloc(1, sizeof *m);
    if (!m) {
        wk_set_error("module_new: out of memory");
        return NULL;
    }
    m->type = type ? type : "Module";
    m->forward = forward;
    m->training = true;
    if (config_size) {
        m->config = calloc(1, config_size);
        if (!m->config) {
            free(m);
            wk_set_error("module_new: out of memory");
            return NULL;
        }
    }
    return m;
}

static void free_entries(wk_module_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].name);
        wk_tensor_free(e[i].tensor);
    }
    free(e);
}

void wk_module_free(wk_module *m)
{
    if (!m) return;
    free_entries(m->params, m->nparams);
    free_entries(m->buffers, m->nbuffers);
    for (int i = 0; i < m->nchildren; i++) {
        free(m->children[i].name);
        wk_module_free(m->children[i].module);
    }
    free(m->children);
    if (m->config_free) m->config_free(m->config);
    free(m->config);
    free(m);
}

static bool taken(const wk_module *m, const char *name)
{
    for (int i = 0; i < m->nparams; i++)
        if (!strcmp(m->params[i].name, name)) return true;
    for (int i = 0; i < m->nbuffers; i++)
        if (!strcmp(m->buffers[i].name, name)) return true;
    for (int i = 0; i < m->nchildren; i++)
        if (!strcmp(m->children[i].name, name)) return true;
    return false;
}

/* A name must be non-empty, without dots, and new on this module. */
static bool check_name(const char *op, const wk_module *m, const char *name)
{
    if (!m) {
        wk_set_error("%s: module is NULL", op);
        return false;
    }
    if (!name || !*name || strchr(name, '.') || strlen(name) > 64) {
        wk_set_error("%s: invalid name \"%s\" on %s (non-empty, at most 64 characters, no "
                     "dots)",
                     op, name ? name : "(null)", m->type);
        return false;
    }
    if (taken(m, name)) {
        wk_set_error("%s: %s already has an attribute named \"%s\"", op, m->type, name);
        return false;
    }
    return true;
}

static wk_tensor *add_entry(const char *op, wk_module *m, const char *name, wk_tensor *t,
                            bool param)
{
    if (!t) {
        if (!wk_last_error()[0]) wk_set_error("%s: tensor \"%s\" is NULL", op, name);
        return NULL;
    }
    if (!check_name(op, m, name) ||
        (param && !wk_dtype_is_float(t->dtype) &&
         (wk_set_error("%s: parameter \"%s\" must be floating point, got %s", op, name,
                       wk_dtype_name(t->dtype)),
          true))) {
        wk_tensor_free(t);
        return NULL;
    }
    wk_module_entry **list = param ? &m->params : &m->buffers;
    int *n = param ? &m->nparams : &m->nbuffers;
    wk_module_entry *grown = realloc(*list, (size_t)(*n + 1) * sizeof **list);
    char *copy = strdup(name);
    if (!grown || !copy) {
        if (grown) *list = grown;
        free(copy);
        wk_tensor_free(t);
        wk_set_error("%s: out of memory", op);
        return NULL;
    }
    *list = grown;
    wki_make_persistent(t);
    t->requires_grad = param;
    grown[*n].name = copy;
    grown[*n].tensor = t;
    (*n)++;
    return t;
}

wk_tensor *wk_module_add_parameter(wk_module *m, const char *name, wk_tensor *t)
{
    return add_entry("module_add_parameter", m, name, t, true);
}

wk_tensor *wk_module_add_buffer(wk_module *m, const char *name, wk_tensor *t)
{
    return add_entry("module_add_buffer", m, name, t, false);
}

wk_module *wk_module_add_child(wk_module *m, const char *name, wk_module *child)
{
    const char *op = "module_add_child";
    if (!child) {
        if (!wk_last_error()[0]) wk_set_error("%s: child \"%s\" is NULL", op, name);
        return NULL;
    }
    if (!check_name(op, m, name)) {
        wk_module_free(child);
        return NULL;
    }
    wk_module_slot *grown = realloc(m->children, (size_t)(m->nchildren + 1) * sizeof *grown);
    char *copy = strdup(name);
    if (!grown || !copy) {
        if (grown) m->children = grown;
        free(copy);
        wk_module_free(child);
        wk_set_error("%s: out of memory", op);
        return NULL;
    }
    m->children = grown;
    grown[m->nchildren].name = copy;
    grown[m->nchildren].module = child;
    m->nchildren++;
    child->training = m->training;
    return child;
}

static wk_tensor *find_entry(const wk_module_entry *e, int n, const char *name, size_t len)
{
    for (int i = 0; i < n; i++)
        if (strlen(e[i].name) == len && !strncmp(e[i].name, name, len)) return e[i].tensor;
    return NULL;
}

wk_tensor *wk_module_param(const wk_module *m, const char *name)
{
    return m && name ? find_entry(m->params, m->nparams, name, strlen(name)) : NULL;
}

wk_tensor *wk_module_buffer(const wk_module *m, const char *name)
{
    return m && name ? find_entry(m->buffers, m->nbuffers, name, strlen(name)) : NULL;
}

static wk_module *find_child(const wk_module *m, const char *name, size_t len)
{
    for (int i = 0; i < m->nchildren; i++)
        if (strlen(m->children[i].name) == len && !strncmp(m->children[i].name, name, len))
            return m->children[i].module;
    return NULL;
}

wk_module *wk_module_child(const wk_module *m, const char *name)
{
    return m && name ? find_child(m, name, strlen(name)) : NULL;
}

wk_tensor *wk_module_find(const wk_module *m, const char *path)
{
    if (!m || !path) return NULL;
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        m = find_child(m, path, (size_t)(dot - path));
        if (!m) return NULL;
        path = dot + 1;
    }
    wk_tensor *t = find_entry(m->params, m->nparams, path, strlen(path));
    return t ? t : find_entry(m->buffers, m->nbuffers, path, strlen(path));
}

wk_tensor *wk_module_forward(wk_module *m, wk_tensor *x)
{
    if (!m) {
        wk_set_error("module_forward: module is NULL");
        return NULL;
    }
    if (!m->forward) {
        wk_set_error("module_forward: %s has no single-tensor forward", m->type);
        return NULL;
    }
    if (!x) {
        if (!wk_last_error()[0]) wk_set_error("%s: input is NULL", m->type);
        return NULL;
    }
    return m->forward(m, x);
}

void wk_module_train(wk_module *m, bool training)
{
    if (!m) return;
    m->training = training;
    for (int i = 0; i < m->nchildren; i++)
        wk_module_train(m->children[i].module, training);
}

static void walk(const wk_module *m, const char *prefix, bool buffers, wk_named_param *out,
                 int cap, int *count)
{
    for (int pass = 0; pass < (buffers ? 2 : 1); pass++) {
        const wk_module_entry *e = pass ? m->buffers : m->params;
        int n = pass ? m->nbuffers : m->nparams;
        for (int i = 0; i < n; i++, (*count)++) {
            if (!out || *count >= cap) continue;
            snprintf(out[*count].name, sizeof out[*count].name, "%s%s", prefix, e[i].name);
            out[*count].tensor = e[i].tensor;
            out[*count].is_buffer = pass == 1;
        }
    }
    for (int i = 0; i < m->nchildren; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s%s.", prefix, m->children[i].name);
        walk(m->children[i].module, p, buffers, out, cap, count);
    }
}

int wk_module_named_parameters(const wk_module *m, bool buffers, wk_named_param *out, int cap)
{
    int count = 0;
    if (m) walk(m, "", buffers, out, cap, &count);
    return count;
}

static void sum_params(const wk_module *m, int64_t *n)
{
    for (int i = 0; i < m->nparams; i++)
        *n += wk_numel(m->params[i].tensor);
    for (int i = 0; i < m->nchildren; i++)
        sum_params(m->children[i].module, n);
}

int64_t wk_module_num_parameters(const wk_module *m)
{
    int64_t n = 0;
    if (m) sum_params(m, &n);
    return n;
}

void wk_module_zero_grad(wk_module *m)
{
    if (!m) return;
    for (int i = 0; i < m->nparams; i++)
        wk_zero_grad(&m->params[i].tensor, 1);
    for (int i = 0; i < m->nchildren; i++)
        wk_module_zero_grad(m->children[i].module);
}

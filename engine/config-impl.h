/* Internals shared by config.c (files, merging, --set, problems) and config_reader.c. */
#ifndef WK_ENGINE_CONFIG_IMPL_H
#define WK_ENGINE_CONFIG_IMPL_H

#include <cjson/cJSON.h>

#include "config.h"

/* Longest key path kept internally (views hold WK_CFG_PATH_MAX). */
#define WKI_CFG_LONG_PATH 512

typedef struct {
    char *path;       /* "optimizer.lr", "" for the root */
    const char *file; /* interned in the config */
} wki_origin;

typedef struct {
    wki_origin *v;
    int n, cap;
} wki_origin_map;

typedef struct {
    char *parent, *key;
} wki_mark;

struct wk_config {
    cJSON *root;
    wki_origin_map origins;
    char **files; /* interned file names (origins point into them) */
    int nfiles, capfiles;
    char *file, *name;
    wki_mark *marks; /* keys asked for, per parent path, in the order asked */
    int nmarks, capmarks;
    char **errors;
    int nerrors, caperrors;
    char *joined; /* the errors, one per line */
};

/* "<path>.<key>" (path alone for key NULL, key alone for path "") into buf. */
void wki_cfg_join(char *buf, size_t size, const char *path, const char *key);
/* "the string \"x\"", "the number 3", "a list of 2 items", ... into buf; returns buf. */
const char *wki_cfg_describe(const cJSON *v, char *buf, size_t size);
/* Append a problem line; sets wk_last_error() to all of them. Returns -1. */
int wki_cfg_record(wk_config *cfg, const char *line);
/* Set wk_last_error() to the recorded problems again. */
void wki_cfg_refresh_error(const wk_config *cfg);
/* Remember that a reader asked for parent.key. */
void wki_cfg_mark(wk_config *cfg, const char *parent, const char *key);
bool wki_cfg_marked(const wk_config *cfg, const char *parent, const char *key);
/* The keys asked for under parent, in order (up to cap into out); returns their count. */
int wki_cfg_marks_of(const wk_config *cfg, const char *parent, const char **out, int cap);
/* "config: out of memory"; returns -1. */
int wki_cfg_oom(void);

#endif

/* JSON config files (MMEngine's config-driven workflow) and the reader every constructor
 * uses to read its own keys.
 *
 *   wk_config *cfg = wk_config_load("configs/two_circles.json");   // _base_ resolved
 *   if (!cfg || wk_config_set(cfg, "optimizer.lr=0.01") < 0) die(wk_last_error());
 *   wk_cfg root = wk_config_root(cfg), opt;
 *   if (wk_cfg_object(&root, "optimizer", &opt) == 1) {
 *       double lr;
 *       int64_t steps;
 *       wk_cfg_require(&opt, "lr");
 *       wk_cfg_number(&opt, "lr", 0, &lr);
 *       wk_cfg_int(&opt, "steps", 10, &steps);
 *       if (wk_cfg_finish(&opt) < 0) die(wk_last_error());   // every problem, one per line
 *   }
 *   char *text = wk_config_to_string(cfg);                     // the merged config
 *   wk_config_free(cfg);
 *
 * Files. `"_base_": "base.json"` (or a list of files, relative to the including file)
 * loads the bases first and merges this file over them: objects merge key by key,
 * recursively; lists and scalars are replaced; later bases win over earlier ones and the
 * file wins over its bases. `"_delete_": true` inside an object replaces the object it
 * would merge into (the key itself disappears). Key order is insertion order: a base's
 * keys first, then the keys a file adds.
 *
 * Origins. For every key path ("optimizer.lr", "val_evaluator.0.type") the config keeps
 * the file that set it last, or "--set"; messages start with it: "configs/a.json:
 * optimizer.lr: expected a number, got the string \"fast\"".
 *
 * Reading. A wk_cfg is a view of one object of the config (possibly absent: then every
 * key reads as its default). Readers take a key, a default and an out pointer; they
 * return 1 when the key is set, 0 when it is absent or null ("null means not set": *out
 * gets the default) and -1 when it has the wrong type (*out gets the default and the
 * problem is recorded). Recorded problems accumulate in the config; wk_cfg_finish adds
 * one for every key of the object that no reader asked for (with the accepted keys and a
 * "did you mean" when a close name exists), and fails when anything went wrong in the
 * view or below it, so one message lists every problem of a broken config.
 * Reading marks keys in the config: views are used from one thread at a time.
 */
#ifndef WK_ENGINE_CONFIG_H
#define WK_ENGINE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;
typedef struct wk_config wk_config;

/* ---- files ---- */

/* Load a JSON config file and its _base_ files, merged. Returns a new config (free with
 * wk_config_free) or NULL with an error naming the file: missing file, invalid JSON
 * (with line and column), a bad _base_ value, a cycle of bases (naming every file), a
 * top level that is not an object. */
wk_config *wk_config_load(const char *path);
/* The same from JSON text; `name` is the file name used in messages and the folder
 * _base_ paths are relative to (NULL: "<string>", bases relative to the current folder). */
wk_config *wk_config_parse(const char *json, const char *name);
/* Free a config (and the text of its views). NULL-safe. */
void wk_config_free(wk_config *cfg);

/* Apply one command-line override "a.b.c=value": the value is parsed as JSON when it
 * parses (numbers, true/false, null, lists, objects), else taken as a string; missing
 * intermediate objects are created; a list index may appear in the path
 * ("hooks.0.type=X"). An object value replaces the object (no merge). Returns 0, or -1
 * with an error naming the key (no '=', empty key, setting through a non-object, index
 * out of range). */
int wk_config_set(wk_config *cfg, const char *assignment);

/* The merged config as pretty JSON (2-space indent, short lists on one line, keys in
 * insertion order): a new string, free() it; NULL with an error (out of memory). */
char *wk_config_to_string(const wk_config *cfg);
/* Write wk_config_to_string's text and a newline to f. 0 or -1. */
int wk_config_print(const wk_config *cfg, FILE *f);
/* The merged tree (borrowed; changes only through wk_config_set). */
const struct cJSON *wk_config_json(const wk_config *cfg);
/* The file that set the key at a dotted path last ("--set" for overrides). A path not in
 * the tree gives its nearest ancestor's file; the root gives the main file. Borrowed. */
const char *wk_config_origin(const wk_config *cfg, const char *path);
/* The main file's path as given to wk_config_load (or the name given to parse). */
const char *wk_config_file(const wk_config *cfg);
/* The main file's name without folder and extension ("two_circles"): the default work
 * dir is work_dirs/<name>. */
const char *wk_config_name(const wk_config *cfg);

/* Check the top-level sections: model, train_dataloader, val_dataloader,
 * test_dataloader, val_evaluator, test_evaluator, optimizer, scheduler, runner, hooks.
 * 0, or -1 recording an "unknown section" problem (with "did you mean") for each other
 * key. */
int wk_config_check_sections(wk_config *cfg);

/* ---- problems ---- */

/* Every problem recorded since the last wk_config_clear_errors, one per line ("" when
 * none). Borrowed; valid until the next change. wk_last_error() holds the same text, cut
 * to its buffer's size. */
const char *wk_config_errors(const wk_config *cfg);
/* Number of problems recorded since the last clear. */
int wk_config_error_count(const wk_config *cfg);
/* Forget the recorded problems. */
void wk_config_clear_errors(wk_config *cfg);

/* ---- the reader ---- */

#define WK_CFG_PATH_MAX 256

/* A view of one object of a config. Plain data: copy it freely while the config lives. */
typedef struct wk_cfg {
    wk_config *config;
    const struct cJSON *json;   /* the object, or NULL when absent (all defaults) */
    char path[WK_CFG_PATH_MAX]; /* dotted path from the root ("" for the root) */
    char what[64];              /* what reads it, for messages ("Adam"), or "" */
    int errors_at_start;        /* problems recorded before the view was made */
} wk_cfg;

/* JSON kinds, as wk_cfg_kind_of reports them. */
typedef enum {
    WK_CFG_ABSENT, /* not there, or null */
    WK_CFG_BOOL,
    WK_CFG_NUMBER,
    WK_CFG_STRING,
    WK_CFG_LIST,
    WK_CFG_OBJECT
} wk_cfg_kind;

/* A view of the whole config (path ""). */
wk_cfg wk_config_root(wk_config *cfg);

/* The key's kind (WK_CFG_ABSENT for null); marks the key as accepted. */
wk_cfg_kind wk_cfg_kind_of(const wk_cfg *c, const char *key);
/* Whether the key is set (present and not null); marks it as accepted. */
bool wk_cfg_has(const wk_cfg *c, const char *key);
/* The raw value (NULL when absent; null stays a cJSON null), borrowed; marks the key. */
const struct cJSON *wk_cfg_raw(const wk_cfg *c, const char *key);

/* A finite number. 1 set / 0 absent (default) / -1 wrong type. */
int wk_cfg_number(const wk_cfg *c, const char *key, double def, double *out);
/* An integer (a number with no fractional part within +-2^53). 1 / 0 / -1. */
int wk_cfg_int(const wk_cfg *c, const char *key, int64_t def, int64_t *out);
/* An integer that must be >= lo when set: the value, or def (a problem recorded) when it
 * is below lo or of the wrong type. */
int64_t wk_cfg_int_min(const wk_cfg *c, const char *key, int64_t def, int64_t lo);
/* true or false (not 0/1). 1 / 0 / -1. */
int wk_cfg_bool(const wk_cfg *c, const char *key, bool def, bool *out);
/* A string (borrowed from the config). 1 / 0 / -1. */
int wk_cfg_string(const wk_cfg *c, const char *key, const char *def, const char **out);
/* A string among `choices` (NULL-terminated); another string is a problem listing them
 * with "did you mean". 1 / 0 / -1. */
int wk_cfg_choice(const wk_cfg *c, const char *key, const char *def,
                  const char *const *choices, const char **out);
/* A list of at most cap numbers (a single number counts as a list of one) into out,
 * its length in *n (0 when absent). 1 / 0 / -1 (wrong type, too long). */
int wk_cfg_number_list(const wk_cfg *c, const char *key, double *out, int cap, int *n);
/* The same for integers. */
int wk_cfg_int_list(const wk_cfg *c, const char *key, int64_t *out, int cap, int *n);
/* A child view of the object at key (path "<path>.<key>"); absent or null gives an empty
 * view (json NULL) and 0. 1 / 0 / -1 (not an object: *child is an empty view). */
int wk_cfg_object(const wk_cfg *c, const char *key, wk_cfg *child);
/* The number of objects at key: a list's length, 1 for a single object, 0 when absent;
 * -1 recording a problem for anything else. */
int wk_cfg_items(const wk_cfg *c, const char *key);
/* A view of the i-th object at key (path "<key>.<i>", or "<key>" for a single object).
 * 0, or -1 recording a problem (item not an object, i out of range). */
int wk_cfg_item(const wk_cfg *c, const char *key, int i, wk_cfg *child);
/* The view's "type" string, or NULL when absent (nothing recorded) or not a string
 * (recorded); marks "type". */
const char *wk_cfg_type(const wk_cfg *c);

/* Record "missing" for a key that is absent or null: 0 when set, -1 when missing. */
int wk_cfg_require(const wk_cfg *c, const char *key);
/* Record a problem at key (NULL: at the view itself): "<file>: <path>.<key>: <message>".
 * Sets wk_last_error() to every problem so far. Returns -1. */
int wk_cfg_error(const wk_cfg *c, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Record "expected <what>, got <what the key holds>" at key. Returns -1. */
int wk_cfg_expected(const wk_cfg *c, const char *key, const char *what);
/* The file that set key (NULL: the view) last. Borrowed. */
const char *wk_cfg_file(const wk_cfg *c, const char *key);
/* Writes "<path>.<key>" (or the path alone for key NULL) into buf; returns buf. */
const char *wk_cfg_key_path(const wk_cfg *c, const char *key, char *buf, size_t size);
/* Record every key of the object that no reader asked for, then: 0 when nothing was
 * recorded since the view was made (problems of child views included), else -1 with
 * wk_last_error() holding every problem of the config. */
int wk_cfg_finish(const wk_cfg *c);

/* Levenshtein distance of a and b, ignoring case (the "did you mean" rule). */
int wk_edit_distance(const char *a, const char *b);
/* The candidate closest to `name` when close enough to be a likely typo (distance <= 1
 * for names of up to 4 characters, <= 2 for longer; ties: the first), else NULL. */
const char *wk_did_you_mean(const char *name, const char *const *candidates, int n);

#ifdef __cplusplus
}
#endif
#endif

/* Early stopping and best tracking (see early_stop.h). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../tensor/tensor.h"
#include "early_stop.h"

const char *wk_metric_natural_mode(const char *name)
{
    static const char *const minimised[] = {"loss", "mse", "mae", "error"};
    for (size_t i = 0; name && i < sizeof minimised / sizeof minimised[0]; i++)
        if (strstr(name, minimised[i])) return "min";
    return "max";
}

int wk_early_stop_init(wk_early_stop *es, const char *target, const char *mode,
                       double min_delta, int64_t patience)
{
    if (!es || !target || !*target) {
        wk_set_error("early_stop: needs a target metric name");
        return -1;
    }
    if (strlen(target) >= WK_EARLY_STOP_TARGET_LEN) {
        wk_set_error("early_stop: target \"%s\" is longer than %d characters", target,
                     WK_EARLY_STOP_TARGET_LEN - 1);
        return -1;
    }
    if (!mode) mode = wk_metric_natural_mode(target);
    if (strcmp(mode, "min") && strcmp(mode, "max")) {
        wk_set_error("early_stop: mode \"%s\" for %s (expected \"min\" or \"max\")", mode,
                     target);
        return -1;
    }
    if (!(min_delta >= 0) || isinf(min_delta)) {
        wk_set_error("early_stop: min_delta = %g for %s (expected a finite number >= 0)",
                     min_delta, target);
        return -1;
    }
    if (patience < 0) {
        wk_set_error("early_stop: patience = %lld for %s (expected >= 1)", (long long)patience,
                     target);
        return -1;
    }
    memset(es, 0, sizeof *es);
    snprintf(es->target, sizeof es->target, "%s", target);
    es->maximize = !strcmp(mode, "max");
    es->min_delta = min_delta;
    es->patience = patience;
    es->best = NAN;
    es->best_step = -1;
    return 0;
}

bool wk_early_stop_improves(const wk_early_stop *es, double s)
{
    if (isnan(s)) return false;
    if (!es->has_best) return true;
    return es->maximize ? s > es->best + es->min_delta : s < es->best - es->min_delta;
}

bool wk_early_stop_update(wk_early_stop *es, double s, int64_t step)
{
    if (wk_early_stop_improves(es, s)) {
        es->has_best = true;
        es->best = s;
        es->best_step = step;
        es->counter = 0;
        return true;
    }
    es->counter++;
    return false;
}

bool wk_early_stop_should_stop(const wk_early_stop *es)
{
    return es->patience > 0 && es->counter >= es->patience;
}

cJSON *wk_early_stop_state_save(const wk_early_stop *es)
{
    cJSON *o = cJSON_CreateObject();
    if (!o) return NULL;
    cJSON_AddStringToObject(o, "target", es->target);
    cJSON_AddStringToObject(o, "mode", es->maximize ? "max" : "min");
    cJSON_AddNumberToObject(o, "min_delta", es->min_delta);
    cJSON_AddNumberToObject(o, "patience", (double)es->patience);
    if (es->has_best) cJSON_AddNumberToObject(o, "best", es->best);
    else cJSON_AddNullToObject(o, "best");
    cJSON_AddNumberToObject(o, "best_step", (double)es->best_step);
    cJSON_AddNumberToObject(o, "counter", (double)es->counter);
    return o;
}

int wk_early_stop_state_load(wk_early_stop *es, const cJSON *o)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "target");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(o, "mode");
    const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "best");
    const cJSON *bs = cJSON_GetObjectItemCaseSensitive(o, "best_step");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "counter");
    if (!cJSON_IsString(t) || !cJSON_IsString(m) || !cJSON_IsNumber(bs) || !cJSON_IsNumber(c) ||
        !(cJSON_IsNumber(b) || cJSON_IsNull(b))) {
        wk_set_error("early_stop: the saved state lacks target, mode, best, best_step or "
                     "counter");
        return -1;
    }
    if (strcmp(t->valuestring, es->target) || strcmp(m->valuestring, es->maximize ? "max" : "min")) {
        wk_set_error("early_stop: the saved state watches %s (%s), this run watches %s (%s)",
                     t->valuestring, m->valuestring, es->target, es->maximize ? "max" : "min");
        return -1;
    }
    es->has_best = cJSON_IsNumber(b);
    es->best = es->has_best ? b->valuedouble : NAN;
    es->best_step = (int64_t)bs->valuedouble;
    es->counter = (int64_t)c->valuedouble;
    return 0;
}

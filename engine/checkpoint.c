/* Checkpoint files (see checkpoint.h). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "../nn/state_dict.h"
#include "../tensor/tensor-impl.h"
#include "checkpoint.h"

static int by_name(const void *a, const void *b)
{
    return strcmp(((const wk_named_tensor *)a)->name, ((const wk_named_tensor *)b)->name);
}

/* CRC-32 of tensors laid out as the safetensors writer does: sorted by name, packed. */
static uint32_t data_crc(const wk_named_tensor *items, int count)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < count; i++) {
        const wk_tensor *t = items[i].tensor;
        size_t bytes = (size_t)wk_numel(t) * wk_dtype_size(t->dtype);
        const Bytef *p = wk_data(t);
        while (bytes > 0) {
            uInt chunk = bytes > (1u << 30) ? (1u << 30) : (uInt)bytes;
            crc = crc32(crc, p, chunk);
            p += chunk;
            bytes -= chunk;
        }
    }
    return (uint32_t)crc;
}

int wk_checkpoint_save(const char *path, const wk_module *model, const wk_ema *ema,
                       const wk_optimizer *opt, const char *state_json,
                       const char *config_json, const char *task_json)
{
    if (!path || !model) {
        wk_set_error("checkpoint_save: needs a path and a model");
        return -1;
    }
    wk_named_tensor *items = NULL;
    int count = 0, rc = -1;
    char *opt_json = NULL, *ema_json = NULL;
    wk_tensor *copies[1] = {0};
    (void)copies;
    if (wk_state_dict_append(model, "model.", &items, &count)) goto done;
    if (ema && wk_ema_state_save(ema, "ema.", &items, &count, &ema_json)) goto done;
    if (opt && wk_optimizer_state_save(opt, "optim.", &items, &count, &opt_json)) goto done;
    for (int i = 0; i < count; i++) {
        if (!wk_is_contiguous(items[i].tensor)) {
            wk_set_error("checkpoint_save: tensor %s is not contiguous", items[i].name);
            goto done;
        }
    }
    qsort(items, (size_t)count, sizeof *items, by_name);
    char crc[16];
    snprintf(crc, sizeof crc, "%u", data_crc(items, count));
    const char *keys[] = {"format", "state", "config", "task", "optimizer", "ema", "crc32",
                          "wick_version"};
    const char *values[] = {WK_CHECKPOINT_FORMAT,
                            state_json ? state_json : "{}",
                            config_json ? config_json : "{}",
                            task_json ? task_json : "{}",
                            opt_json ? opt_json : "",
                            ema_json ? ema_json : "",
                            crc,
                            WK_VERSION};
    rc = wk_safetensors_save(path, items, count, keys, values, 8);
done:
    wk_state_dict_items_free(items, count);
    free(opt_json);
    free(ema_json);
    return rc;
}

static const char *meta_or(const wk_safetensors *st, const char *key, const char *dflt)
{
    const char *v = wk_safetensors_meta(st, key);
    return v ? v : dflt;
}

int wk_checkpoint_open(const char *path, wk_checkpoint *ck)
{
    if (!path || !ck) {
        wk_set_error("checkpoint_open: needs a path and a checkpoint struct");
        return -1;
    }
    memset(ck, 0, sizeof *ck);
    if (wk_safetensors_load(path, &ck->st)) return -1;
    const char *fmt = wk_safetensors_meta(&ck->st, "format");
    if (!fmt || strcmp(fmt, WK_CHECKPOINT_FORMAT)) {
        wk_set_error("checkpoint_open: %s is not a wick checkpoint (format \"%s\", expected "
                     "\"%s\"); load plain weights with load_from",
                     path, fmt ? fmt : "(none)", WK_CHECKPOINT_FORMAT);
        wk_checkpoint_close(ck);
        return -1;
    }
    const char *crc_s = wk_safetensors_meta(&ck->st, "crc32");
    char *end = NULL;
    unsigned long want = crc_s ? strtoul(crc_s, &end, 10) : 0;
    uint32_t got = data_crc(ck->st.items, ck->st.count);
    if (!crc_s || !end || *end || want != got) {
        wk_set_error("checkpoint_open: %s is corrupt: CRC-32 of its data is %u, the file "
                     "records %s",
                     path, got, crc_s ? crc_s : "none");
        wk_checkpoint_close(ck);
        return -1;
    }
    ck->state = meta_or(&ck->st, "state", "{}");
    ck->config = meta_or(&ck->st, "config", "{}");
    ck->task = meta_or(&ck->st, "task", "{}");
    ck->global_step = -1;
    cJSON *s = cJSON_Parse(ck->state);
    const cJSON *gs = cJSON_GetObjectItemCaseSensitive(s, "global_step");
    if (cJSON_IsNumber(gs)) ck->global_step = (int64_t)gs->valuedouble;
    cJSON_Delete(s);
    return 0;
}

int wk_checkpoint_restore(const wk_checkpoint *ck, wk_module *model, wk_ema *ema,
                          wk_optimizer *opt, bool strict)
{
    if (!ck || !model) {
        wk_set_error("checkpoint_restore: needs an open checkpoint and a model");
        return -1;
    }
    if (wk_state_dict_load_from(model, &ck->st, "model.", strict, NULL)) return -1;
    const char *ej = wk_safetensors_meta(&ck->st, "ema");
    if (ema) {
        if (!ej || !*ej) {
            wk_set_error("checkpoint_restore: the checkpoint has no EMA state");
            return -1;
        }
        if (wk_ema_state_load(ema, &ck->st, "ema.", ej)) return -1;
    }
    const char *oj = wk_safetensors_meta(&ck->st, "optimizer");
    if (opt) {
        if (!oj || !*oj) {
            wk_set_error("checkpoint_restore: the checkpoint has no optimizer state");
            return -1;
        }
        if (wk_optimizer_state_load(opt, &ck->st, "optim.", oj)) return -1;
    }
    return 0;
}

void wk_checkpoint_close(wk_checkpoint *ck)
{
    if (!ck) return;
    wk_safetensors_free(&ck->st);
    memset(ck, 0, sizeof *ck);
}

int wk_checkpoint_find_latest(const char *dir, char *path, size_t n)
{
    DIR *d = dir ? opendir(dir) : NULL;
    if (!d) return 0; /* no folder: nothing to resume from */
    int64_t best = -1;
    int found = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        wk_checkpoint ck;
        if (wk_checkpoint_open(p, &ck)) {
            fprintf(stderr, "warning: skipping checkpoint %s: %s\n", p, wk_last_error());
            continue;
        }
        if (ck.global_step > best || (ck.global_step == best && !found)) {
            best = ck.global_step;
            snprintf(path, n, "%s", p);
            found = 1;
        }
        wk_checkpoint_close(&ck);
    }
    closedir(d);
    wk_clear_error();
    return found;
}

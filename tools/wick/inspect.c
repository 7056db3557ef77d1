/* `wick inspect`: a checkpoint's tensors, training state and config, after its CRC. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: wick inspect CHECKPOINT\n"
    "\n"
    "Verify the checkpoint (header, sizes, CRC-32) and print its tensors (name, dtype,\n"
    "shape), the training state, the optimizer's and EMA's state, the task state and the\n"
    "config it was trained with. A damaged or truncated file exits 1.\n";

static void print_json(const char *title, const char *text)
{
    if (!text) return;
    cJSON *j = cJSON_Parse(text);
    char *pretty = j ? cJSON_Print(j) : NULL;
    printf("\n%s:\n%s\n", title, pretty ? pretty : text);
    free(pretty);
    cJSON_Delete(j);
}

/* When the file is shorter than its own header says, say so plainly: a copy or a write
 * that was cut off, rather than a damaged header. Writes the sentence into buf ("" when
 * the sizes agree or cannot be read). */
static void truncation(const char *path, char *buf, size_t n)
{
    buf[0] = '\0';
    FILE *f = fopen(path, "rb");
    if (!f) return;
    unsigned char h8[8];
    char *header = NULL;
    cJSON *j = NULL;
    if (fseek(f, 0, SEEK_END) || ftell(f) < 8) goto done;
    long long size = ftell(f);
    rewind(f);
    if (fread(h8, 1, 8, f) != 8) goto done;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | h8[i];
    if (hlen > (uint64_t)size - 8) goto done; /* the loader's message says it already */
    header = malloc(hlen + 1);
    if (!header || fread(header, 1, hlen, f) != hlen) goto done;
    header[hlen] = '\0';
    j = cJSON_Parse(header);
    double end = 0;
    cJSON *t;
    cJSON_ArrayForEach(t, j) {
        const cJSON *off = cJSON_GetObjectItemCaseSensitive(t, "data_offsets");
        const cJSON *hi = cJSON_IsArray(off) ? cJSON_GetArrayItem(off, 1) : NULL;
        if (cJSON_IsNumber(hi) && hi->valuedouble > end) end = hi->valuedouble;
    }
    double want = 8.0 + (double)hlen + end;
    if (want > (double)size)
        snprintf(buf, n, " (the file is truncated: it has %lld bytes, its header describes "
                         "%.0f)", size, want);
done:
    cJSON_Delete(j);
    free(header);
    fclose(f);
}

int cli_open_checkpoint(const char *cmd, const char *path, wk_checkpoint *ck)
{
    if (!wk_checkpoint_open(path, ck)) return 0;
    char msg[1024], why[160];
    snprintf(msg, sizeof msg, "%s", wk_last_error());
    truncation(path, why, sizeof why);
    return cli_error(cmd, CLI_FAIL, "%s%s", msg, why);
}

int cli_inspect(int argc, char **argv)
{
    if (argc != 2 || cli_is_help(argv[1])) {
        fputs(help, argc == 2 ? stdout : stderr);
        return argc == 2 ? CLI_OK : CLI_USAGE;
    }
    int code = cli_check_path("inspect", "CHECKPOINT", argv[1]);
    if (code) return code;
    wk_checkpoint ck;
    if ((code = cli_open_checkpoint("inspect", argv[1], &ck))) return code;
    const char *ver = wk_safetensors_meta(&ck.st, "wick_version");
    const char *crc = wk_safetensors_meta(&ck.st, "crc32");
    printf("%s: %s (wick %s), CRC-32 %s verified, global step %lld\n", argv[1],
           WK_CHECKPOINT_FORMAT, ver ? ver : "?", crc ? crc : "?", (long long)ck.global_step);
    int64_t bytes = 0;
    printf("\n%-48s %-8s %s\n", "tensor", "dtype", "shape");
    for (int i = 0; i < ck.st.count; i++) {
        const wk_tensor *t = ck.st.items[i].tensor;
        char shape[128] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        printf("%-48s %-8s %s\n", ck.st.items[i].name, wk_dtype_name(t->dtype), shape);
        bytes += wk_numel(t) * (int64_t)wk_dtype_size(t->dtype);
    }
    printf("%d tensors, %.3f MB\n", ck.st.count, (double)bytes / 1e6);
    print_json("state", ck.state);
    const char *opt = wk_safetensors_meta(&ck.st, "optimizer");
    const char *ema = wk_safetensors_meta(&ck.st, "ema");
    print_json("optimizer", opt && *opt ? opt : NULL);
    print_json("ema", ema && *ema ? ema : NULL);
    print_json("task", ck.task);
    print_json("config", ck.config);
    wk_checkpoint_close(&ck);
    return CLI_OK;
}

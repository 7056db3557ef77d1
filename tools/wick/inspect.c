/* `wick inspect`: a checkpoint's tensors, training state and config, after its CRC. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: wick inspect CHECKPOINT\n"
    "\n"
    "Verify the checkpoint (header, sizes, CRC-32) and print its tensors (name, dtype,\n"
    "shape), the training state, the task state and the config it was trained with.\n";

static void print_json(const char *title, const char *text)
{
    cJSON *j = cJSON_Parse(text);
    char *pretty = j ? cJSON_Print(j) : NULL;
    printf("\n%s:\n%s\n", title, pretty ? pretty : text);
    free(pretty);
    cJSON_Delete(j);
}

int cli_inspect(int argc, char **argv)
{
    if (argc != 2 || cli_is_help(argv[1])) {
        fputs(help, argc == 2 ? stdout : stderr);
        return argc == 2 ? CLI_OK : CLI_USAGE;
    }
    wk_checkpoint ck;
    if (wk_checkpoint_open(argv[1], &ck)) return cli_error("inspect", CLI_FAIL, "%s", wk_last_error());
    const char *ver = wk_safetensors_meta(&ck.st, "wick_version");
    const char *crc = wk_safetensors_meta(&ck.st, "crc32");
    printf("%s: %s (wick %s), CRC-32 %s verified, global step %lld\n", argv[1],
           WK_CHECKPOINT_FORMAT, ver ? ver : "?", crc ? crc : "?", (long long)ck.global_step);
    int64_t bytes = 0;
    printf("\n%-48s %-6s %s\n", "tensor", "dtype", "shape");
    for (int i = 0; i < ck.st.count; i++) {
        const wk_tensor *t = ck.st.items[i].tensor;
        char shape[128] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld", d ? ", " : "",
                     (long long)t->shape[d]);
        strncat(shape, "]", sizeof shape - strlen(shape) - 1);
        printf("%-48s %-6s %s\n", ck.st.items[i].name, wk_dtype_name(t->dtype), shape);
        bytes += wk_numel(t) * (int64_t)wk_dtype_size(t->dtype);
    }
    printf("%d tensors, %.3f MB\n", ck.st.count, (double)bytes / 1e6);
    print_json("state", ck.state);
    print_json("task", ck.task);
    print_json("config", ck.config);
    wk_checkpoint_close(&ck);
    return CLI_OK;
}

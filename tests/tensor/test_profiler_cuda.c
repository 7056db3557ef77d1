/* The profiler's CUDA path: a span whose input is on a CUDA device is timed with CUDA
 * events and marked so in the trace. Skips without CUDA or without a GPU. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <unistd.h>

#include "tensor/profiler-impl.h"
#include "test_util.h"

#ifdef WK_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

TestSuite(profiler_cuda, .init = tu_setup, .fini = tu_teardown);

#ifdef WK_HAVE_CUDA
/* An "op" on a CUDA tensor: its span takes the device's time of a large memset. */
static int fake_cuda_op(const wk_tensor *x, void *buf, size_t n)
{
    WKI_PROF_OP("cuda_probe", x);
    return cudaMemsetAsync(buf, 1, n, 0) == cudaSuccess ? 0 : -1;
}
#endif

Test(profiler_cuda, cuda_spans_use_events)
{
    if (wk_cuda_device_count() == 0) cr_skip_test("no CUDA device (or built without CUDA)");
#ifdef WK_HAVE_CUDA
    char dir[64] = "/tmp/wick_prof_cuda_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    size_t n = (size_t)256 << 20;
    void *buf = NULL;
    cr_assert_eq(cudaMalloc(&buf, n), cudaSuccess);
    /* only the metadata matters to the profiler: shape, dtype, device */
    wk_tensor x = {.ndim = 1, .shape = {(int64_t)(n / 4)}, .dtype = WK_DTYPE_F32,
                   .device = {WK_DEVICE_CUDA, 0}};
    wk_profiler_options o = wk_profiler_options_default();
    o.dir = dir;
    o.schedule = (wk_profiler_schedule){0};
    o.table_out = NULL;
    cr_assert_eq(wk_profiler_start(&o), 0, "%s", wk_last_error());
    for (int i = 0; i < 3; i++)
        cr_assert_eq(fake_cuda_op(&x, buf, n), 0);
    cr_assert_eq(wk_profiler_stop(), 0, "%s", wk_last_error());
    cudaFree(buf);
    const wk_profiler_summary *s = wk_profiler_last_summary();
    cr_assert_not_null(s);
    const wk_profiler_row *r = NULL;
    for (int i = 0; i < s->nrows; i++)
        if (!strcmp(s->rows[i].name, "cuda_probe")) r = &s->rows[i];
    cr_assert_not_null(r);
    cr_assert_eq(r->calls, 3);
    cr_assert_gt(r->total_ms, 0, "device time of 3 memsets of 256 MiB: %g ms", r->total_ms);

    char path[128];
    snprintf(path, sizeof path, "%s/trace.json", dir);
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f);
    static char text[1 << 20];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    cJSON *j = cJSON_Parse(text);
    cr_assert_not_null(j);
    int timed = 0;
    cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(j, "traceEvents"))
    {
        cJSON *a = cJSON_GetObjectItem(e, "args");
        const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(e, "name"));
        if (!nm || strcmp(nm, "cuda_probe")) continue;
        cr_assert_str_eq(cJSON_GetStringValue(cJSON_GetObjectItem(a, "device")), "cuda:0");
        timed += !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(a, "timing")), "cuda_event");
    }
    cr_assert_eq(timed, 3);
    cJSON_Delete(j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
#endif
}

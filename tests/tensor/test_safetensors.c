/* safetensors: round trips of every dtype and layout, the exact bytes written, atomic
 * saves, every way a file can be broken, and the PyTorch fixture file. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "test_util.h"

/* ---- a temporary folder per test, removed by the fini ---- */

static char tmp_dir[64];

static void remove_tmp_dir(void)
{
    if (!tmp_dir[0]) return;
    DIR *d = opendir(tmp_dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        char p[512];
        snprintf(p, sizeof p, "%s/%s", tmp_dir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmp_dir);
    tmp_dir[0] = '\0';
}

static void setup(void) { tu_setup(); }
static void teardown(void)
{
    remove_tmp_dir();
    tu_teardown();
}

TestSuite(safetensors, .init = setup, .fini = teardown);

/* A path inside the temporary folder (made on first use). */
static const char *tmp_path(const char *name)
{
    static char bufs[4][256];
    static int next;
    if (!tmp_dir[0]) {
        strcpy(tmp_dir, "/tmp/wk_st_XXXXXX");
        cr_assert_not_null(mkdtemp(tmp_dir), "mkdtemp failed");
    }
    char *b = bufs[next++ & 3];
    snprintf(b, sizeof bufs[0], "%s/%s", tmp_dir, name);
    return b;
}

/* The names in the temporary folder, sorted, separated by spaces. */
static const char *tmp_listing(void)
{
    static char buf[1024];
    struct dirent **names;
    int n = scandir(tmp_dir, &names, NULL, alphasort);
    cr_assert_geq(n, 0);
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%s", len ? " " : "",
                                    names[i]->d_name);
        free(names[i]);
    }
    free(names);
    return buf;
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot create %s", path);
    cr_assert_eq(fwrite(p, 1, n, f), n);
    fclose(f);
}

/* The whole file in a malloc'd buffer of exactly its size. */
static unsigned char *read_bytes(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc(*n ? *n : 1);
    cr_assert_eq(fread(p, 1, *n, f), *n);
    fclose(f);
    return p;
}

/* A file image: the size field, `json`, then data_len bytes 0, 1, 2, ... in a buffer of
 * exactly that size, so ASan catches any read past it. */
static unsigned char *image(const char *json, size_t data_len, size_t *size)
{
    size_t n = strlen(json);
    *size = 8 + n + data_len;
    unsigned char *b = malloc(*size);
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, json, n);
    for (size_t i = 0; i < data_len; i++) b[8 + n + i] = (unsigned char)i;
    return b;
}

static void expect_load_error(const unsigned char *buf, size_t size, const char *needle)
{
    wk_safetensors st;
    memset(&st, 0x5a, sizeof st);
    wk_clear_error();
    int rc = wk_safetensors_load_mem(buf, size, "bad.safetensors", &st);
    const char *err = wk_last_error();
    cr_assert_eq(rc, -1, "load succeeded, expected an error mentioning \"%s\"", needle);
    cr_assert(strstr(err, "bad.safetensors"), "error \"%s\" does not name the file", err);
    cr_assert(strstr(err, needle), "error \"%s\" does not mention \"%s\"", err, needle);
    cr_assert(!st.items && !st.count && !st.meta_keys && !st.meta_values && !st.meta_count,
              "output not zeroed after a failure");
}

#define expect_bad_header(json, data_len, needle)                                          \
    do {                                                                                   \
        size_t n_;                                                                         \
        unsigned char *b_ = image(json, data_len, &n_);                                    \
        expect_load_error(b_, n_, needle);                                                 \
        free(b_);                                                                          \
    } while (0)

/* Loads an image that must be valid. */
static void load_image(const char *json, size_t data_len, wk_safetensors *st)
{
    size_t n;
    unsigned char *b = image(json, data_len, &n);
    int rc = wk_safetensors_load_mem(b, n, "good.safetensors", st);
    free(b);
    cr_assert_eq(rc, 0, "load failed: %s", wk_last_error());
}

static void expect_bytes_equal(const wk_tensor *t, const void *expected, size_t n,
                               const char *what)
{
    cr_assert_not_null(t, "%s: NULL", what);
    cr_assert(wk_is_contiguous(t), "%s: not contiguous", what);
    cr_assert_eq((size_t)wk_numel(t) * wk_dtype_size(t->dtype), n, "%s: size", what);
    cr_assert(n == 0 || !memcmp(wk_data(t), expected, n), "%s: bytes differ", what);
}

/* A tensor whose bytes follow a pattern (0/1 for bool). */
static wk_tensor *pattern(wk_dtype dt, const int64_t *shape, int ndim, unsigned seed)
{
    wk_tensor *t = wk_empty(shape, ndim, dt);
    unsigned char *p = wk_data(t);
    size_t n = (size_t)wk_numel(t) * wk_dtype_size(dt);
    for (size_t i = 0; i < n; i++)
        p[i] = dt == WK_DTYPE_BOOL ? (i * 7 + seed) % 3 == 0
                                   : (unsigned char)(i * 31 + seed * 17 + 1);
    return t;
}

/* ---- round trips ---- */

Test(safetensors, round_trip_every_dtype_with_scalars_and_empty_tensors)
{
    static const char *dts[] = {"f32", "f64", "i32", "i64", "u8", "bool", "bf16", "f16"};
    _Static_assert(sizeof dts / sizeof dts[0] == WK_DTYPE_COUNT, "a name per dtype");
    wk_named_tensor items[3 * WK_DTYPE_COUNT];
    char names[3 * WK_DTYPE_COUNT][32];
    int n = 0;
    for (int d = WK_DTYPE_COUNT - 1; d >= 0; d--) { /* reverse order: the save sorts */
        const int64_t *no_shape = NULL;
        wk_tensor *ts[3] = {pattern(d, WK_SHAPE(3, 5), (unsigned)d),
                            pattern(d, no_shape, 0, (unsigned)d + 1),
                            pattern(d, WK_SHAPE(2, 0, 3), 0)};
        const char *kind[3] = {"mat", "scalar", "empty"};
        for (int k = 0; k < 3; k++) {
            snprintf(names[n], sizeof names[n], "%s.%s", dts[d], kind[k]);
            items[n] = (wk_named_tensor){names[n], ts[k]};
            n++;
        }
    }
    const char *path = tmp_path("all.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, n, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "%s", wk_last_error());
    cr_assert_eq(st.count, n);
    cr_assert_eq(st.meta_count, 0);
    for (int i = 1; i < st.count; i++)
        cr_assert_lt(strcmp(st.items[i - 1].name, st.items[i].name), 0, "items not sorted");
    for (int i = 0; i < n; i++) {
        const wk_tensor *src = items[i].tensor;
        wk_tensor *t = wk_safetensors_get(&st, items[i].name);
        cr_assert_not_null(t, "%s: %s", items[i].name, wk_last_error());
        cr_assert_eq(t->dtype, src->dtype, "%s: dtype", items[i].name);
        cr_assert(wk_same_shape(t, src), "%s: shape", items[i].name);
        cr_assert_eq(t->frame, 0, "%s: loaded tensors must be persistent", items[i].name);
        cr_assert_eq(t->device.type, WK_DEVICE_CPU);
        expect_bytes_equal(t, wk_data(src), (size_t)wk_numel(src) * wk_dtype_size(src->dtype),
                           items[i].name);
    }
    cr_assert_eq(wk_numel(wk_safetensors_get(&st, "f64.scalar")), 1);
    cr_assert_eq(wk_safetensors_get(&st, "i32.scalar")->ndim, 0);
    wk_safetensors_free(&st);
    cr_assert(!st.items && !st.count, "free must zero the struct");
    wk_safetensors_free(&st); /* twice is fine */
    wk_safetensors_free(NULL);
}

Test(safetensors, non_contiguous_inputs_are_written_in_row_major_order)
{
    wk_tensor *a = wk_empty(WK_SHAPE(4, 6), WK_DTYPE_F32);
    float *pa = wk_data(a);
    for (int i = 0; i < 24; i++) pa[i] = (float)i;
    wk_tensor *l = wk_empty(WK_SHAPE(3, 2), WK_DTYPE_I64);
    for (int i = 0; i < 6; i++) ((int64_t *)wk_data(l))[i] = 1000 + i;
    wk_named_tensor items[] = {
        {"transposed", wk_transpose(a, 0, 1)},                        /* (6, 4) */
        {"sliced", wk_slice(a, 1, 1, 6, 2)},                          /* (4, 3) */
        {"column", wk_select(a, 1, 2)},                               /* (4,) stride 6 */
        {"expanded", wk_expand(tu_f32(WK_SHAPE(3, 1), 7, 8, 9), WK_SHAPE(3, 4))},
        {"i64.t", wk_transpose(l, 0, 1)},                             /* (2, 3) */
    };
    const char *path = tmp_path("views.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, 5, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "%s", wk_last_error());
    wk_tensor *t = wk_safetensors_get(&st, "transposed");
    expect_shape(t, 6, 4);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 4; j++)
            cr_assert_eq(((float *)wk_data(t))[i * 4 + j], (float)(j * 6 + i));
    t = wk_safetensors_get(&st, "sliced");
    expect_shape(t, 4, 3);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            cr_assert_eq(((float *)wk_data(t))[i * 3 + j], (float)(i * 6 + 1 + 2 * j));
    t = wk_safetensors_get(&st, "column");
    expect_shape(t, 4);
    expect_values(t, 0, 2, 8, 14, 20);
    t = wk_safetensors_get(&st, "expanded");
    expect_shape(t, 3, 4);
    expect_values(t, 0, 7, 7, 7, 7, 8, 8, 8, 8, 9, 9, 9, 9);
    t = wk_safetensors_get(&st, "i64.t");
    expect_shape(t, 2, 3);
    cr_assert_eq(t->dtype, WK_DTYPE_I64);
    expect_values(t, 0, 1000, 1002, 1004, 1001, 1003, 1005);
    wk_safetensors_free(&st);
}

Test(safetensors, metadata_round_trip)
{
    const char *keys[] = {"zeta", "format", "quote\"back\\slash", "nl\n\ttab\x01",
                          "\xc3\xbcn\xc3\xaf\xe2\x82\xac \xf0\x9f\x8e\x89", "empty"};
    const char *vals[] = {"last key first", "pt", "{\"op\": \"sum\", \"dims\": [1]}",
                          "line\nbreak", "\xe2\x82\xac", ""};
    wk_named_tensor items[] = {{"x", tu_f32(WK_SHAPE(2), 1, 2)}};
    const char *path = tmp_path("meta.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, 1, keys, vals, 6), 0, "%s", wk_last_error());
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "%s", wk_last_error());
    cr_assert_eq(st.meta_count, 6);
    for (int i = 0; i < 6; i++) {
        cr_assert_str_eq(st.meta_keys[i], keys[i], "metadata keys keep their order");
        cr_assert_str_eq(st.meta_values[i], vals[i]);
        cr_assert_str_eq(wk_safetensors_meta(&st, keys[i]), vals[i]);
    }
    cr_assert_null(wk_safetensors_meta(&st, "absent"));
    cr_assert_null(wk_safetensors_meta(&st, NULL));
    cr_assert_null(wk_safetensors_meta(NULL, "zeta"));
    expect_values(wk_safetensors_get(&st, "x"), 0, 1, 2);
    wk_safetensors_free(&st);
}

Test(safetensors, exact_bytes_written)
{
    wk_named_tensor items[] = {{"b", tu_f32(WK_SHAPE(2), 1.5f, -2.0f)},
                               {"a", tu_i64(WK_SHAPE(1), 7)}};
    const char *path = tmp_path("exact.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, 2, (const char *[]){"k"},
                                     (const char *[]){"v\"q"}, 1), 0, "%s", wk_last_error());
    const char *json = "{\"__metadata__\":{\"k\":\"v\\\"q\"},"
                       "\"a\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
    size_t jn = strlen(json), hn = (jn + 7) / 8 * 8, n;
    unsigned char *f = read_bytes(path, &n);
    cr_assert_eq(n, 8 + hn + 16);
    uint64_t size = 0;
    for (int i = 7; i >= 0; i--) size = size << 8 | f[i];
    cr_assert_eq(size, hn, "header size field %llu, expected %zu", (unsigned long long)size, hn);
    cr_assert_eq(hn % 8, 0);
    cr_assert(!memcmp(f + 8, json, jn), "header is %.*s", (int)hn, (const char *)f + 8);
    for (size_t i = jn; i < hn; i++) cr_assert_eq(f[8 + i], ' ', "padding must be spaces");
    int64_t seven = 7;
    float b[2] = {1.5f, -2.0f};
    cr_assert(!memcmp(f + 8 + hn, &seven, 8) && !memcmp(f + 16 + hn, b, 8), "data");
    free(f);

    /* No tensors and no metadata: "{}" and 6 spaces. */
    cr_assert_eq(wk_safetensors_save(path, NULL, 0, NULL, NULL, 0), 0, "%s", wk_last_error());
    f = read_bytes(path, &n);
    cr_assert_eq(n, 16);
    cr_assert(!memcmp(f, "\x08\0\0\0\0\0\0\0{}      ", 16));
    free(f);
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "%s", wk_last_error());
    cr_assert_eq(st.count, 0);
    expect_error(wk_safetensors_get(&st, "a"), "no tensor named \"a\" (there are 0)");
    wk_safetensors_free(&st);
}

Test(safetensors, accepts_what_the_format_allows)
{
    wk_safetensors st;
    /* Data order differs from name order; a zero-size tensor between two others;
     * whitespace and padding in the header. */
    load_image(" {\n\"b\": {\"shape\": [1], \"dtype\": \"U8\", \"data_offsets\": [0, 1]},\n"
               "\"z\": {\"dtype\": \"F32\", \"shape\": [0, 4], \"data_offsets\": [1, 1]},\n"
               "\"a\": {\"dtype\": \"I32\", \"shape\": [], \"data_offsets\": [1, 5]}}\t\r\n  ",
               5, &st);
    cr_assert_eq(st.count, 3);
    cr_assert_str_eq(st.items[0].name, "a");
    cr_assert_str_eq(st.items[2].name, "z");
    int32_t a;
    memcpy(&a, (unsigned char[]){1, 2, 3, 4}, 4);
    cr_assert_eq(*(int32_t *)wk_data(wk_safetensors_get(&st, "a")), a);
    expect_values(wk_safetensors_get(&st, "b"), 0, 0);
    expect_shape(wk_safetensors_get(&st, "z"), 0, 4);
    expect_error(wk_safetensors_get(&st, "c"), "no tensor named \"c\" (there are 3: \"a\", \"b\"");
    expect_error(wk_safetensors_get(&st, NULL), "safetensors_get: name is NULL");
    wk_safetensors_free(&st);

    /* BOOL bytes other than 0 and 1 read as true. */
    load_image("{\"m\":{\"dtype\":\"BOOL\",\"shape\":[4],\"data_offsets\":[0,4]}}", 4, &st);
    const uint8_t *m = wk_data(st.items[0].tensor);
    cr_assert(m[0] == 0 && m[1] == 1 && m[2] == 1 && m[3] == 1);
    wk_safetensors_free(&st);

    /* Loaded inside a frame, tensors outlive it. */
    wk_frame_begin();
    wk_frame_begin();
    load_image("{\"v\":{\"dtype\":\"U8\",\"shape\":[3],\"data_offsets\":[0,3]}}", 3, &st);
    wk_frame_end();
    wk_frame_end();
    expect_values(wk_safetensors_get(&st, "v"), 0, 0, 1, 2);
    cr_assert_eq(st.items[0].tensor->frame, 0);
    wk_safetensors_free(&st);
}

/* ---- broken inputs ---- */

Test(safetensors, rejects_broken_size_fields_and_headers)
{
    expect_load_error((const unsigned char *)"\x02\0\0\0\0", 5, "5 bytes is too short");
    expect_load_error((const unsigned char *)"", 0, "0 bytes is too short");
    /* A header size of 2^32, and one just past the bytes that follow. */
    expect_load_error((const unsigned char *)"\0\0\0\0\x01\0\0\0{}", 10,
                      "header size 4294967296 is over the 100000000-byte limit");
    expect_load_error((const unsigned char *)"\x03\0\0\0\0\0\0\0{}", 10,
                      "header size 3 is larger than the 2 bytes that follow it");
    expect_bad_header("", 0, "not valid JSON");
    expect_bad_header("{\"a\":", 0, "not valid JSON");
    expect_bad_header("{\"a\" 1}", 0, "not valid JSON (error near byte 5");
    expect_bad_header("[1, 2]", 0, "header is an array, expected a JSON object");
    expect_bad_header("\"str\"", 0, "header is a string, expected a JSON object");
    expect_bad_header("{} {}", 0, "unexpected data after the JSON header at byte 3");
    expect_load_error((const unsigned char *)"\x05\0\0\0\0\0\0\0{}\0  ", 13,
                      "not valid UTF-8 text (byte 0x00 at offset 2)");
    expect_bad_header("{\"\xff\":1}", 0, "not valid UTF-8 text (byte 0xff at offset 2)");
    expect_bad_header("{\"\xed\xa0\x80\":1}", 0, "not valid UTF-8"); /* a surrogate */
    expect_bad_header("{\"\xc0\xaf\":1}", 0, "not valid UTF-8");     /* overlong */
    expect_bad_header("{\"\xe2\x82\":1}", 0, "not valid UTF-8");     /* cut short */
    /* Deep nesting stops at cJSON's limit instead of exhausting the stack. */
    char deep[4100];
    memset(deep, '[', 4000);
    deep[4000] = '\0';
    expect_bad_header(deep, 0, "not valid JSON");
}

Test(safetensors, rejects_broken_entries)
{
#define T(body) "{\"w\":" body "}"
    expect_bad_header(T("5"), 0, "tensor \"w\": expected an object with dtype, shape and "
                                 "data_offsets, got a number");
    expect_bad_header(T("{\"shape\":[1],\"data_offsets\":[0,4]}"), 4,
                      "tensor \"w\": missing \"dtype\"");
    expect_bad_header(T("{\"dtype\":\"F32\",\"data_offsets\":[0,4]}"), 4,
                      "tensor \"w\": missing \"shape\"");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1]}"), 4,
                      "tensor \"w\": missing \"data_offsets\"");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4],\"x\":1}"),
                      4, "tensor \"w\": unexpected field \"x\"");
    expect_bad_header(T("{\"dtype\":\"F32\",\"dtype\":\"F32\",\"shape\":[1],"
                        "\"data_offsets\":[0,4]}"), 4, "field \"dtype\" appears twice");
    expect_bad_header(T("{\"dtype\":32,\"shape\":[1],\"data_offsets\":[0,4]}"), 4,
                      "tensor \"w\": dtype is a number, expected a string like \"F32\"");
    expect_bad_header(T("{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[0,1]}"), 1,
                      "tensor \"w\": unsupported dtype \"I8\" (supported: F32");
    expect_bad_header(T("{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}"), 4,
                      "unsupported dtype \"f32\"");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":3,\"data_offsets\":[0,12]}"), 12,
                      "tensor \"w\": shape is a number, expected an array of sizes");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[2,-3],\"data_offsets\":[0,0]}"), 0,
                      "tensor \"w\": shape entry 1 is -3, expected a non-negative integer");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,0]}"), 0,
                      "shape entry 0 is 2.5, expected a non-negative integer");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[\"2\"],\"data_offsets\":[0,8]}"), 8,
                      "shape entry 0 is a string, expected a non-negative integer");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[null],\"data_offsets\":[0,8]}"), 8,
                      "shape entry 0 is null");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1e300],\"data_offsets\":[0,8]}"), 8,
                      "shape entry 0 is 1.0000000000000001e+300");
    expect_bad_header(T("{\"dtype\":\"U8\",\"shape\":[1,1,1,1,1,1,1,1,1],"
                        "\"data_offsets\":[0,1]}"), 1,
                      "tensor \"w\": shape has 9 dims, at most 8 are supported");
    /* Each size is fine, their product overflows int64; so does numel * 8. */
    expect_bad_header(T("{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
                        "\"data_offsets\":[0,0]}"), 0,
                      "tensor \"w\": shape [4294967296, 4294967296, 4294967296] has too "
                      "many elements");
    expect_bad_header(T("{\"dtype\":\"F64\",\"shape\":[9007199254740992,512],"
                        "\"data_offsets\":[0,0]}"), 0, "has too many elements");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":{}}"), 4,
                      "tensor \"w\": data_offsets is an object, expected an array "
                      "[begin, end]");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}"), 4,
                      "data_offsets is an array of the wrong length");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[-4,0]}"), 4,
                      "tensor \"w\": data_offsets [-4, 0] must be non-negative integers");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,true]}"), 4,
                      "data_offsets [0, a boolean] must be non-negative integers");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}"), 4,
                      "tensor \"w\": data_offsets [4, 8] are outside the 4-byte data section");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}"), 4,
                      "data_offsets [4, 0] are outside");
    expect_bad_header(T("{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}"), 20,
                      "tensor \"w\": data_offsets [0, 20] hold 20 bytes, but shape [2, 3] "
                      "of F32 needs 24");
    expect_bad_header("{\"\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1,
                      "a tensor has an empty name");
#undef T
}

Test(safetensors, rejects_bad_packing_duplicates_and_metadata)
{
#define E(name, dt, shape, b, e)                                                          \
    "\"" name "\":{\"dtype\":\"" dt "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}"
    expect_bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 4, 12) "}", 12,
                      "tensor \"b\" (bytes 4..12) overlaps tensor \"a\" (bytes 0..8)");
    expect_bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[2]", 0, 8) "}", 8,
                      "overlaps tensor \"a\"");
    expect_bad_header("{" E("a", "F32", "[2]", 0, 8) "," E("b", "F32", "[1]", 12, 16) "}", 16,
                      "gap of 4 bytes before tensor \"b\" (bytes 12..16)");
    expect_bad_header("{" E("a", "F32", "[1]", 4, 8) "}", 8, "gap of 4 bytes before tensor \"a\"");
    expect_bad_header("{" E("a", "F32", "[2]", 0, 8) "}", 11,
                      "the data section has 11 bytes but the tensors use 8 (trailing data");
    expect_bad_header("{}", 1, "the data section has 1 bytes but the tensors use 0");
    expect_bad_header("{" E("a", "U8", "[1]", 0, 1) "," E("a", "U8", "[1]", 1, 2) "}", 2,
                      "tensor name \"a\" appears twice");
    expect_bad_header("{\"__metadata__\":[],\"a\":1}", 0,
                      "\"__metadata__\" is an array, expected an object of strings");
    expect_bad_header("{\"__metadata__\":{\"epoch\":3}}", 0,
                      "metadata key \"epoch\": value is a number, expected a string");
    expect_bad_header("{\"__metadata__\":{\"k\":{}}}", 0, "value is an object");
    expect_bad_header("{\"__metadata__\":{\"k\":\"1\",\"j\":\"\",\"k\":\"2\"}}", 0,
                      "metadata key \"k\" appears twice");
    expect_bad_header("{\"__metadata__\":{},\"__metadata__\":{}}", 0,
                      "\"__metadata__\" appears twice");
#undef E
}

Test(safetensors, rejects_broken_files)
{
    wk_safetensors st;
    const char *missing = tmp_path("missing.safetensors");
    expect_error(wk_safetensors_load(missing, &st) ? NULL : &st,
                 "cannot open: No such file or directory");
    cr_assert(strstr(wk_last_error(), missing));
    cr_assert_null(st.items);
    expect_error(wk_safetensors_load(tmp_dir, &st) ? NULL : &st, "not a regular file");
    expect_error(wk_safetensors_load(NULL, &st) ? NULL : &st, "safetensors_load: path is NULL");

    const char *path = tmp_path("short.safetensors");
    write_bytes(path, "\x02\0\0", 3);
    expect_error(wk_safetensors_load(path, &st) ? NULL : &st,
                 "short.safetensors: file has 3 bytes, too short");

    /* A good file cut short or extended, and a header size past its end. */
    wk_named_tensor items[] = {{"w", tu_f32(WK_SHAPE(3), 1, 2, 3)}};
    path = tmp_path("good.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, 1, NULL, NULL, 0), 0, "%s", wk_last_error());
    size_t n;
    unsigned char *good = read_bytes(path, &n);
    const char *bad = tmp_path("bad.safetensors");
    write_bytes(bad, good, n - 4);
    expect_error(wk_safetensors_load(bad, &st) ? NULL : &st,
                 "tensor \"w\": data_offsets [0, 12] are outside the 8-byte data section");
    cr_assert(strstr(wk_last_error(), bad));
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, good, n);
    memcpy(longer + n, "xyz", 3);
    write_bytes(bad, longer, n + 3);
    expect_error(wk_safetensors_load(bad, &st) ? NULL : &st, "trailing data");
    write_bytes(bad, good, 20);
    expect_error(wk_safetensors_load(bad, &st) ? NULL : &st, "is larger than the 12 bytes");
    free(longer);
    free(good);
}

/* Every prefix of a good file fails cleanly; damaged header bytes never crash. */
Test(safetensors, truncations_and_corruptions_never_crash)
{
    wk_named_tensor items[] = {{"a", tu_f32(WK_SHAPE(2, 3), 1, 2, 3, 4, 5, 6)},
                               {"b", tu_i64(WK_SHAPE(2), -1, 5)},
                               {"c", wk_empty(WK_SHAPE(0), WK_DTYPE_U8)}};
    const char *path = tmp_path("fuzz.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, 3, (const char *[]){"k"},
                                     (const char *[]){"v"}, 1), 0, "%s", wk_last_error());
    size_t n;
    unsigned char *good = read_bytes(path, &n);
    wk_safetensors st;
    for (size_t len = 0; len < n; len++) {
        unsigned char *b = malloc(len ? len : 1);
        memcpy(b, good, len);
        cr_assert_eq(wk_safetensors_load_mem(b, len, "cut", &st), -1, "prefix %zu loaded", len);
        cr_assert(strstr(wk_last_error(), "cut: "));
        free(b);
    }
    size_t hn = (size_t)good[0] | (size_t)good[1] << 8;
    static const unsigned char subst[] = {0, 0xff, '"', '9', ' ', '{', ']', ',', '-', 0x80};
    int loaded = 0;
    for (size_t pos = 0; pos < 8 + hn; pos++) {
        for (size_t k = 0; k < sizeof subst; k++) {
            if (good[pos] == subst[k]) continue;
            unsigned char *b = malloc(n);
            memcpy(b, good, n);
            b[pos] = subst[k];
            if (wk_safetensors_load_mem(b, n, "flip", &st) == 0) {
                loaded++;
                wk_safetensors_free(&st);
            } else {
                cr_assert(strstr(wk_last_error(), "flip: "), "%s", wk_last_error());
            }
            free(b);
        }
    }
    cr_assert_gt(loaded, 0, "some substitutions (e.g. in padding) keep the file valid");
    cr_assert_eq(wk_safetensors_load_mem(good, n, "good", &st), 0, "%s", wk_last_error());
    wk_safetensors_free(&st);
    free(good);
}

/* ---- atomic saves ---- */

Test(safetensors, failed_saves_leave_the_old_file_and_no_temporary)
{
    const char *path = tmp_path("model.safetensors");
    wk_named_tensor old_items[] = {{"w", tu_f32(WK_SHAPE(2), 1, 2)}};
    cr_assert_eq(wk_safetensors_save(path, old_items, 1, NULL, NULL, 0), 0, "%s",
                 wk_last_error());
    size_t n_old;
    unsigned char *old = read_bytes(path, &n_old);
    wk_tensor *x = tu_f32(WK_SHAPE(3), 1, 2, 3);
    char bad_utf8[] = {'w', (char)0xc3, 0};

#define EXPECT_SAVE_FAILS(needle, items, count, keys, vals, mcount)                         \
    do {                                                                                   \
        wk_clear_error();                                                                  \
        cr_assert_eq(wk_safetensors_save(path, items, count, keys, vals, mcount), -1,      \
                     "save succeeded, expected \"%s\"", needle);                           \
        cr_assert(strstr(wk_last_error(), needle), "error \"%s\" does not mention \"%s\"", \
                  wk_last_error(), needle);                                                \
        cr_assert(strstr(wk_last_error(), "model.safetensors"), "%s", wk_last_error());    \
        size_t n_;                                                                         \
        unsigned char *now_ = read_bytes(path, &n_);                                       \
        cr_assert(n_ == n_old && !memcmp(now_, old, n_), "the old file was changed");      \
        free(now_);                                                                        \
        cr_assert_str_eq(tmp_listing(), "model.safetensors");                              \
    } while (0)

    EXPECT_SAVE_FAILS("tensor \"b\" is NULL",
                      ((wk_named_tensor[]){{"a", x}, {"b", NULL}}), 2, NULL, NULL, 0);
    EXPECT_SAVE_FAILS("tensor name \"a\" is used twice",
                      ((wk_named_tensor[]){{"a", x}, {"b", x}, {"a", x}}), 3, NULL, NULL, 0);
    EXPECT_SAVE_FAILS("item 1 has an empty name",
                      ((wk_named_tensor[]){{"a", x}, {"", x}}), 2, NULL, NULL, 0);
    EXPECT_SAVE_FAILS("item 0 has a NULL name", ((wk_named_tensor[]){{NULL, x}}), 1, NULL,
                      NULL, 0);
    EXPECT_SAVE_FAILS("item 0: name is not valid UTF-8",
                      ((wk_named_tensor[]){{bad_utf8, x}}), 1, NULL, NULL, 0);
    EXPECT_SAVE_FAILS("the name \"__metadata__\" is reserved",
                      ((wk_named_tensor[]){{"__metadata__", x}}), 1, NULL, NULL, 0);
    EXPECT_SAVE_FAILS("metadata key \"k\" is used twice", ((wk_named_tensor[]){{"a", x}}), 1,
                      ((const char *[]){"k", "j", "k"}), ((const char *[]){"1", "2", "3"}), 3);
    EXPECT_SAVE_FAILS("metadata entry 0 has a NULL value", ((wk_named_tensor[]){{"a", x}}),
                      1, ((const char *[]){"k"}), ((const char *[]){NULL}), 1);
    EXPECT_SAVE_FAILS("expected count >= 0", ((wk_named_tensor[]){{"a", x}}), -1, NULL, NULL,
                      0);
    EXPECT_SAVE_FAILS("expected meta_count >= 0", ((wk_named_tensor[]){{"a", x}}), 1, NULL,
                      NULL, 2);
    /* A NULL from a failed op keeps that op's message. */
    wk_tensor *failed = wk_view(x, WK_SHAPE(2, 2));
    cr_assert_null(failed);
    char first[256];
    snprintf(first, sizeof first, "%s", wk_last_error());
    cr_assert_eq(wk_safetensors_save(path, (wk_named_tensor[]){{"v", failed}}, 1, NULL, NULL,
                                     0), -1);
    cr_assert(strstr(wk_last_error(), "tensor \"v\" is NULL (after: "), "%s", wk_last_error());
    cr_assert(strstr(wk_last_error(), first), "%s lost \"%s\"", wk_last_error(), first);
    free(old);
    expect_error(wk_safetensors_save(NULL, NULL, 0, NULL, NULL, 0) ? NULL : x,
                 "safetensors_save: path is NULL");
#undef EXPECT_SAVE_FAILS
}

Test(safetensors, failed_writes_remove_the_temporary)
{
    wk_named_tensor items[] = {{"w", tu_f32(WK_SHAPE(2), 1, 2)}};
    /* The target is a folder: the temporary is written, the rename fails. */
    const char *dir = tmp_path("folder.safetensors");
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(wk_safetensors_save(dir, items, 1, NULL, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "cannot rename"), "%s", wk_last_error());
    cr_assert_str_eq(tmp_listing(), "folder.safetensors");
    struct stat sb;
    cr_assert(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    /* The folder does not exist. */
    const char *nowhere = tmp_path("no/such/folder/x.safetensors");
    cr_assert_eq(wk_safetensors_save(nowhere, items, 1, NULL, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "cannot create temporary file"), "%s", wk_last_error());
    cr_assert(strstr(wk_last_error(), "x.safetensors.tmp."), "%s", wk_last_error());
    /* A successful overwrite leaves only the new file. */
    const char *path = tmp_path("m.safetensors");
    write_bytes(path, "old", 3);
    cr_assert_eq(wk_safetensors_save(path, items, 1, NULL, NULL, 0), 0, "%s", wk_last_error());
    cr_assert_str_eq(tmp_listing(), "folder.safetensors m.safetensors");
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0, "%s", wk_last_error());
    expect_values(wk_safetensors_get(&st, "w"), 0, 1, 2);
    wk_safetensors_free(&st);
    /* A path without a folder part saves into the working directory. */
    char cwd[512];
    cr_assert_not_null(getcwd(cwd, sizeof cwd));
    cr_assert_eq(chdir(tmp_dir), 0);
    int rc = wk_safetensors_save("rel.safetensors", items, 1, NULL, NULL, 0);
    cr_assert_eq(chdir(cwd), 0);
    cr_assert_eq(rc, 0, "%s", wk_last_error());
    cr_assert_str_eq(tmp_listing(), "folder.safetensors m.safetensors rel.safetensors");
}

/* ---- the PyTorch fixtures ---- */

#define FIXTURE WK_FIXTURES "/tensor_ops.safetensors"

Test(safetensors, torch_fixture_file_parses)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIXTURE, &st), 0, "%s", wk_last_error());
    /* Counts as written by tools/gen_fixtures.py. */
    cr_assert_eq(st.count, 148);
    int per_dtype[WK_DTYPE_COUNT] = {0}, per_ndim[WK_MAX_DIMS + 1] = {0};
    for (int i = 0; i < st.count; i++) {
        per_dtype[st.items[i].tensor->dtype]++;
        per_ndim[st.items[i].tensor->ndim]++;
    }
    cr_assert_eq(per_dtype[WK_DTYPE_F32], 110);
    cr_assert_eq(per_dtype[WK_DTYPE_F64], 30);
    cr_assert_eq(per_dtype[WK_DTYPE_I64], 8);
    cr_assert(per_ndim[0] == 1 && per_ndim[1] == 17 && per_ndim[2] == 88 &&
              per_ndim[3] == 40 && per_ndim[4] == 2, "tensors per ndim");
    expect_shape(wk_safetensors_get(&st, "add_bcast.out"), 3, 4, 5);
    expect_shape(wk_safetensors_get(&st, "matmul_batched_bcast.out"), 2, 4, 3, 6);
    expect_shape(wk_safetensors_get(&st, "sum_d1_keep.out"), 4, 1, 5);
    cr_assert_eq(wk_safetensors_get(&st, "sum_all.out")->ndim, 0);
    wk_tensor *oh = wk_safetensors_get(&st, "one_hot.out");
    expect_shape(oh, 7, 5);
    cr_assert_eq(oh->dtype, WK_DTYPE_I64);

    /* Every case has its parameters, inputs in0.., and an output; nothing else. */
    cJSON *cases = cJSON_Parse(wk_safetensors_meta(&st, "cases"));
    cr_assert(cJSON_IsArray(cases));
    cr_assert_eq(cJSON_GetArraySize(cases), 60);
    int seen = 0;
    for (const cJSON *c = cases->child; c; c = c->next) {
        cr_assert(cJSON_IsString(c));
        const char *name = c->valuestring;
        cJSON *params = cJSON_Parse(wk_safetensors_meta(&st, name));
        cr_assert(cJSON_IsObject(params), "case %s: parameters", name);
        cr_assert(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(params, "op")), "%s", name);
        cJSON_Delete(params);
        char key[128];
        snprintf(key, sizeof key, "%s.out", name);
        cr_assert_not_null(wk_safetensors_get(&st, key), "%s", wk_last_error());
        seen++;
        for (int k = 0;; k++) {
            snprintf(key, sizeof key, "%s.in%d", name, k);
            int found = 0;
            for (int i = 0; i < st.count; i++) found |= !strcmp(st.items[i].name, key);
            if (!found) {
                cr_assert_gt(k, 0, "case %s has no inputs", name);
                break;
            }
            seen++;
        }
    }
    cr_assert_eq(seen, st.count, "tensors that belong to no case");
    cJSON_Delete(cases);

    /* The data in file order (= name order) has the CRC the generator recorded. */
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < st.count; i++) {
        const wk_tensor *t = st.items[i].tensor;
        crc = crc32(crc, wk_data(t), (uInt)((size_t)wk_numel(t) * wk_dtype_size(t->dtype)));
    }
    const char *want = wk_safetensors_meta(&st, "data_crc32");
    cr_assert_not_null(want);
    cr_assert_eq(crc, strtoul(want, NULL, 10), "data CRC %lu, generator wrote %s", crc, want);
    wk_safetensors_free(&st);
}

/* The C writer and the Python generator agree byte for byte. */
Test(safetensors, resaving_the_fixture_gives_the_same_bytes)
{
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIXTURE, &st), 0, "%s", wk_last_error());
    const char *path = tmp_path("copy.safetensors");
    cr_assert_eq(wk_safetensors_save(path, st.items, st.count,
                                     (const char *const *)st.meta_keys,
                                     (const char *const *)st.meta_values, st.meta_count),
                 0, "%s", wk_last_error());
    size_t n1, n2;
    unsigned char *a = read_bytes(FIXTURE, &n1), *b = read_bytes(path, &n2);
    cr_assert_eq(n1, n2, "sizes %zu and %zu", n1, n2);
    size_t i = 0;
    while (i < n1 && a[i] == b[i]) i++;
    cr_assert_eq(i, n1, "files differ at byte %zu", i);
    free(a);
    free(b);
    wk_safetensors_free(&st);
}

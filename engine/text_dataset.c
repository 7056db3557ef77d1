/* Byte-level text: random windows of a file (or of a folder's files, concatenated). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../tensor/tensor-impl.h"
#include "datasets.h"

typedef struct {
    uint8_t *bytes;
    size_t len;
    int64_t block, size;
    uint64_t seed;
} text_ds;

typedef struct {
    uint8_t *data;
    size_t len, cap;
} buffer;

static int append_file(buffer *b, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        wk_set_error("ByteText: cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b->len + got > b->cap) {
            size_t cap = b->cap ? b->cap * 2 : 1 << 20;
            while (cap < b->len + got) cap *= 2;
            uint8_t *d = realloc(b->data, cap);
            if (!d) {
                fclose(f);
                wk_set_error("ByteText: out of memory reading %s", path);
                return -1;
            }
            b->data = d;
            b->cap = cap;
        }
        memcpy(b->data + b->len, chunk, got);
        b->len += got;
    }
    fclose(f);
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file below dir, sorted by path, appended to b. */
static int append_tree(buffer *b, const char *dir, int depth)
{
    if (depth > 16) return 0;
    DIR *d = opendir(dir);
    if (!d) {
        wk_set_error("ByteText: cannot open folder %s: %s", dir, strerror(errno));
        return -1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **g = realloc(names, cap * sizeof *g);
            if (!g) {
                rc = -1;
                break;
            }
            names = g;
        }
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n]) {
            rc = -1;
            break;
        }
        snprintf(names[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    if (rc) wk_set_error("ByteText: out of memory listing %s", dir);
    qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && !rc; i++) {
        struct stat st;
        if (stat(names[i], &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) rc = append_tree(b, names[i], depth + 1);
        else if (S_ISREG(st.st_mode)) rc = append_file(b, names[i]);
    }
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
    return rc;
}

static int64_t text_length(const wk_dataset *ds) { return ((const text_ds *)ds->self)->size; }

static int text_get(const wk_dataset *ds, int64_t index, int64_t epoch, void *const *rows)
{
    const text_ds *t = ds->self;
    if (index < 0 || index >= t->size) {
        wk_set_error("ByteText: sample %lld is out of range (%lld samples)", (long long)index,
                     (long long)t->size);
        return -1;
    }
    uint32_t ctr[4] = {(uint32_t)index, (uint32_t)((uint64_t)index >> 32), (uint32_t)epoch,
                       (uint32_t)((uint64_t)epoch >> 32)};
    uint32_t key[2] = {(uint32_t)t->seed, (uint32_t)(t->seed >> 32) ^ 0x7F4A7C15u};
    uint32_t r[4];
    wk_philox4x32_10(ctr, key, r);
    uint64_t span = t->len - (size_t)t->block; /* start positions 0 .. len-block-1 */
    uint64_t pos = (((uint64_t)r[0] << 32) | r[1]) % span;
    int64_t *x = rows[0], *y = rows[1];
    for (int64_t i = 0; i < t->block; i++) {
        x[i] = t->bytes[pos + (uint64_t)i];
        y[i] = t->bytes[pos + (uint64_t)i + 1];
    }
    return 0;
}

static void text_destroy(wk_dataset *ds)
{
    text_ds *t = ds->self;
    free(t->bytes);
    free(t);
    free(ds);
}

wk_dataset *wk_byte_text_new(const char *path, int64_t block_size, int64_t size, uint64_t seed)
{
    struct stat st;
    if (!path || stat(path, &st) != 0) {
        wk_set_error("ByteText: %s not found", path ? path : "(null)");
        return NULL;
    }
    if (block_size < 1 || size < 0) {
        wk_set_error("ByteText: block_size must be >= 1 and size >= 0");
        return NULL;
    }
    buffer b = {0};
    int rc = S_ISDIR(st.st_mode) ? append_tree(&b, path, 0) : append_file(&b, path);
    if (rc) {
        free(b.data);
        return NULL;
    }
    if (b.len < (size_t)block_size + 2) {
        wk_set_error("ByteText: %s holds %zu bytes, fewer than block_size + 2 = %lld", path,
                     b.len, (long long)block_size + 2);
        free(b.data);
        return NULL;
    }
    wk_dataset *ds = calloc(1, sizeof *ds);
    text_ds *t = calloc(1, sizeof *t);
    if (!ds || !t) {
        free(ds), free(t), free(b.data);
        wk_set_error("ByteText: out of memory");
        return NULL;
    }
    t->bytes = b.data;
    t->len = b.len;
    t->block = block_size;
    t->size = size ? size : (int64_t)(b.len / (size_t)block_size);
    t->seed = seed;
    ds->type = "ByteText";
    ds->self = t;
    ds->length = text_length;
    ds->get = text_get;
    ds->destroy = text_destroy;
    ds->nfields = 2;
    ds->fields[0] = (wk_field){.name = "inputs", .dtype = WK_DTYPE_I64, .ndim = 1,
                               .shape = {block_size}};
    ds->fields[1] = (wk_field){.name = "targets", .dtype = WK_DTYPE_I64, .ndim = 1,
                               .shape = {block_size}};
    return ds;
}

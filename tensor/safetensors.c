/* The safetensors format: reading with full validation, atomic writing.
 *
 * Loading parses and checks the whole header first (types, shapes, offsets, packing,
 * duplicates) and only then allocates the tensors, so a hostile header cannot make us
 * allocate more than the data the file really holds. From a file the data is read
 * straight into each tensor's storage, so peak memory is the tensors plus the header,
 * not twice the file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "safetensors.h"
#include "tensor-impl.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "safetensors.c copies little-endian data as is");

/* The reference implementation refuses headers above 100 MB. */
#define MAX_HEADER_BYTES 100000000ull
/* Integers in the header go through cJSON's doubles: exact up to 2^53. */
#define MAX_JSON_INT (1ull << 53)
#define META_KEY "__metadata__"

static const char *const dtype_names[] = {
    [WK_DTYPE_F32] = "F32", [WK_DTYPE_F64] = "F64", [WK_DTYPE_I32] = "I32",
    [WK_DTYPE_I64] = "I64", [WK_DTYPE_U8] = "U8",   [WK_DTYPE_BOOL] = "BOOL",
    [WK_DTYPE_BF16] = "BF16", [WK_DTYPE_F16] = "F16",
};
_Static_assert(sizeof dtype_names / sizeof dtype_names[0] == WK_DTYPE_COUNT,
               "every wk_dtype needs a safetensors name");

/* Records "<op>: <what>: <message>". */
static void st_error(const char *op, const char *what, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void st_error(const char *op, const char *what, const char *fmt, ...)
{
    char msg[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    wk_set_error("%s: %s: %s", op, what, msg);
}

/* Offset of the first byte that is not part of valid UTF-8 (NUL counts as invalid),
 * or n when all n bytes are valid. */
static size_t utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (c == 0) return i;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;       /* no overlong forms */
            else if (c == 0xED) hi = 0x9F;  /* no surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;  /* nothing above U+10FFFF */
        } else
            return i;
        if (n - i < len) return i;
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += len;
    }
    return n;
}

static bool valid_utf8_str(const char *s)
{
    size_t n = strlen(s);
    return utf8_invalid_at((const unsigned char *)s, n) == n;
}

static const char *json_type_name(const cJSON *v)
{
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsArray(v)) return "an array";
    if (cJSON_IsBool(v)) return "a boolean";
    if (cJSON_IsNull(v)) return "null";
    return "an invalid value";
}

/* Describe a JSON value that should have been a non-negative integer. */
static const char *bad_int_desc(const cJSON *v, char *buf, size_t size)
{
    if (cJSON_IsNumber(v)) snprintf(buf, size, "%.17g", v->valuedouble);
    else snprintf(buf, size, "%s", json_type_name(v));
    return buf;
}

static bool json_uint(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return false;
    double d = v->valuedouble;
    if (!(d >= 0) || d > (double)MAX_JSON_INT || d != (double)(uint64_t)d) return false;
    *out = (uint64_t)d;
    return true;
}

/* ---- loading ---- */

typedef struct {
    const char *name; /* borrowed from the cJSON tree */
    wk_dtype dtype;
    int ndim;
    int64_t shape[WK_MAX_DIMS];
    uint64_t begin, end;
    wk_tensor *tensor;
} entry;

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp((*(const entry *const *)a)->name, (*(const entry *const *)b)->name);
}

static int cmp_entry_offsets(const void *a, const void *b)
{
    const entry *x = *(const entry *const *)a, *y = *(const entry *const *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

#define LOAD_OP "safetensors_load"

/* Fill *e from the header entry `item`; false with an error naming the tensor. */
static bool parse_entry(const char *what, const cJSON *item, uint64_t data_size, entry *e)
{
    const char *name = item->string;
    char buf[64];
    if (!*name) {
        st_error(LOAD_OP, what, "a tensor has an empty name");
        return false;
    }
    if (!cJSON_IsObject(item)) {
        st_error(LOAD_OP, what, "tensor \"%s\": expected an object with dtype, shape and "
                 "data_offsets, got %s", name, json_type_name(item));
        return false;
    }
    const cJSON *dtype = NULL, *shape = NULL, *offsets = NULL;
    for (const cJSON *f = item->child; f; f = f->next) {
        const cJSON **slot = !strcmp(f->string, "dtype")          ? &dtype
                             : !strcmp(f->string, "shape")        ? &shape
                             : !strcmp(f->string, "data_offsets") ? &offsets
                                                                  : NULL;
        if (!slot) {
            st_error(LOAD_OP, what, "tensor \"%s\": unexpected field \"%s\" (expected dtype, "
                     "shape and data_offsets)", name, f->string);
            return false;
        }
        if (*slot) {
            st_error(LOAD_OP, what, "tensor \"%s\": field \"%s\" appears twice", name,
                     f->string);
            return false;
        }
        *slot = f;
    }
    const char *missing = !dtype ? "dtype" : !shape ? "shape" : !offsets ? "data_offsets" : NULL;
    if (missing) {
        st_error(LOAD_OP, what, "tensor \"%s\": missing \"%s\"", name, missing);
        return false;
    }

    if (!cJSON_IsString(dtype)) {
        st_error(LOAD_OP, what, "tensor \"%s\": dtype is %s, expected a string like \"F32\"",
                 name, json_type_name(dtype));
        return false;
    }
    int dt = 0;
    while (dt < WK_DTYPE_COUNT && strcmp(dtype_names[dt], dtype->valuestring)) dt++;
    if (dt == WK_DTYPE_COUNT) {
        st_error(LOAD_OP, what, "tensor \"%s\": unsupported dtype \"%s\" (supported: F32, "
                 "F64, I32, I64, U8, BOOL, BF16, F16)", name, dtype->valuestring);
        return false;
    }
    e->dtype = (wk_dtype)dt;

    if (!cJSON_IsArray(shape)) {
        st_error(LOAD_OP, what, "tensor \"%s\": shape is %s, expected an array of sizes",
                 name, json_type_name(shape));
        return false;
    }
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > WK_MAX_DIMS) {
        st_error(LOAD_OP, what, "tensor \"%s\": shape has %d dims, at most %d are supported",
                 name, ndim, WK_MAX_DIMS);
        return false;
    }
    e->ndim = 0;
    for (const cJSON *s = shape->child; s; s = s->next) {
        uint64_t v;
        if (!json_uint(s, &v)) {
            st_error(LOAD_OP, what, "tensor \"%s\": shape entry %d is %s, expected a "
                     "non-negative integer", name, e->ndim, bad_int_desc(s, buf, sizeof buf));
            return false;
        }
        e->shape[e->ndim++] = (int64_t)v;
    }
    int64_t numel = wki_shape_numel(e->shape, e->ndim);
    uint64_t nbytes;
    if (numel < 0 ||
        __builtin_mul_overflow((uint64_t)numel, (uint64_t)wk_dtype_size(e->dtype), &nbytes)) {
        st_error(LOAD_OP, what, "tensor \"%s\": shape %s has too many elements", name,
                 wki_dims_s(e->shape, e->ndim));
        return false;
    }

    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2) {
        st_error(LOAD_OP, what, "tensor \"%s\": data_offsets is %s%s, expected an array "
                 "[begin, end]", name, json_type_name(offsets),
                 cJSON_IsArray(offsets) ? " of the wrong length" : "");
        return false;
    }
    const cJSON *jb = offsets->child, *je = jb->next;
    char buf2[64];
    if (!json_uint(jb, &e->begin) || !json_uint(je, &e->end)) {
        st_error(LOAD_OP, what, "tensor \"%s\": data_offsets [%s, %s] must be non-negative "
                 "integers", name, bad_int_desc(jb, buf, sizeof buf),
                 bad_int_desc(je, buf2, sizeof buf2));
        return false;
    }
    if (e->begin > e->end || e->end > data_size) {
        st_error(LOAD_OP, what, "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] are "
                 "outside the %" PRIu64 "-byte data section (or end before they begin)",
                 name, e->begin, e->end, data_size);
        return false;
    }
    if (e->end - e->begin != nbytes) {
        st_error(LOAD_OP, what, "tensor \"%s\": data_offsets [%" PRIu64 ", %" PRIu64 "] hold "
                 "%" PRIu64 " bytes, but shape %s of %s needs %" PRIu64, name, e->begin,
                 e->end, e->end - e->begin, wki_dims_s(e->shape, e->ndim),
                 dtype_names[e->dtype], nbytes);
        return false;
    }
    e->name = name;
    return true;
}

typedef struct {
    cJSON *json;
    entry *entries;
    entry **by_name;   /* entries sorted by name */
    entry **by_offset; /* entries sorted by data_offsets */
    int count;
    const cJSON *meta;
} header;

static void header_free(header *h)
{
    cJSON_Delete(h->json);
    free(h->entries);
    free(h->by_name);
    free(h->by_offset);
    memset(h, 0, sizeof *h);
}

static bool check_metadata(const char *what, const cJSON *meta)
{
    if (!cJSON_IsObject(meta)) {
        st_error(LOAD_OP, what, "\"" META_KEY "\" is %s, expected an object of strings",
                 json_type_name(meta));
        return false;
    }
    int n = cJSON_GetArraySize(meta), i = 0;
    const char **keys = malloc((size_t)(n ? n : 1) * sizeof *keys);
    if (!keys) {
        st_error(LOAD_OP, what, "out of memory");
        return false;
    }
    for (const cJSON *m = meta->child; m; m = m->next) {
        if (!cJSON_IsString(m)) {
            st_error(LOAD_OP, what, "metadata key \"%s\": value is %s, expected a string",
                     m->string, json_type_name(m));
            free(keys);
            return false;
        }
        keys[i++] = m->string;
    }
    qsort(keys, (size_t)n, sizeof *keys, cmp_str);
    for (i = 1; i < n; i++) {
        if (!strcmp(keys[i - 1], keys[i])) {
            st_error(LOAD_OP, what, "metadata key \"%s\" appears twice", keys[i]);
            free(keys);
            return false;
        }
    }
    free(keys);
    return true;
}

/* Parse and validate the n header bytes at hdr (NUL-terminated) against a data section
 * of data_size bytes. */
static bool parse_header(const char *what, const char *hdr, size_t n, uint64_t data_size,
                         header *h)
{
    memset(h, 0, sizeof *h);
    size_t bad = utf8_invalid_at((const unsigned char *)hdr, n);
    if (bad < n) {
        st_error(LOAD_OP, what, "header is not valid UTF-8 text (byte 0x%02x at offset %zu)",
                 (unsigned char)hdr[bad], bad);
        return false;
    }
    const char *end = NULL;
    h->json = cJSON_ParseWithLengthOpts(hdr, n, &end, 0);
    if (!h->json) {
        size_t at = end && end >= hdr && end <= hdr + n ? (size_t)(end - hdr) : 0;
        st_error(LOAD_OP, what, "header is not valid JSON (error near byte %zu of %zu)", at, n);
        return false;
    }
    for (const char *p = end; p < hdr + n; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            st_error(LOAD_OP, what, "unexpected data after the JSON header at byte %zu",
                     (size_t)(p - hdr));
            goto fail;
        }
    }
    if (!cJSON_IsObject(h->json)) {
        st_error(LOAD_OP, what, "header is %s, expected a JSON object", json_type_name(h->json));
        goto fail;
    }
    int n_items = cJSON_GetArraySize(h->json);
    size_t cap = (size_t)(n_items ? n_items : 1);
    h->entries = calloc(cap, sizeof *h->entries);
    h->by_name = malloc(cap * sizeof *h->by_name);
    h->by_offset = malloc(cap * sizeof *h->by_offset);
    if (!h->entries || !h->by_name || !h->by_offset) {
        st_error(LOAD_OP, what, "out of memory for %d header entries", n_items);
        goto fail;
    }
    for (const cJSON *item = h->json->child; item; item = item->next) {
        if (!strcmp(item->string, META_KEY)) {
            if (h->meta) {
                st_error(LOAD_OP, what, "\"" META_KEY "\" appears twice");
                goto fail;
            }
            if (!check_metadata(what, item)) goto fail;
            h->meta = item;
            continue;
        }
        entry *e = &h->entries[h->count];
        if (!parse_entry(what, item, data_size, e)) goto fail;
        h->by_name[h->count] = h->by_offset[h->count] = e;
        h->count++;
    }

    qsort(h->by_name, (size_t)h->count, sizeof *h->by_name, cmp_entry_name);
    for (int i = 1; i < h->count; i++) {
        if (!strcmp(h->by_name[i - 1]->name, h->by_name[i]->name)) {
            st_error(LOAD_OP, what, "tensor name \"%s\" appears twice", h->by_name[i]->name);
            goto fail;
        }
    }
    /* Like the reference: tensors must tile the data section exactly, in offset order. */
    qsort(h->by_offset, (size_t)h->count, sizeof *h->by_offset, cmp_entry_offsets);
    uint64_t pos = 0;
    for (int i = 0; i < h->count; i++) {
        const entry *e = h->by_offset[i];
        if (e->begin < pos) {
            const entry *p = h->by_offset[i - 1];
            st_error(LOAD_OP, what, "tensor \"%s\" (bytes %" PRIu64 "..%" PRIu64 ") overlaps "
                     "tensor \"%s\" (bytes %" PRIu64 "..%" PRIu64 "); tensors must be packed "
                     "without overlaps", e->name, e->begin, e->end, p->name, p->begin, p->end);
            goto fail;
        }
        if (e->begin > pos) {
            st_error(LOAD_OP, what, "gap of %" PRIu64 " bytes before tensor \"%s\" (bytes "
                     "%" PRIu64 "..%" PRIu64 "); tensors must be packed without gaps",
                     e->begin - pos, e->name, e->begin, e->end);
            goto fail;
        }
        pos = e->end;
    }
    if (pos != data_size) {
        st_error(LOAD_OP, what, "the data section has %" PRIu64 " bytes but the tensors use "
                 "%" PRIu64 " (trailing data or a damaged header)", data_size, pos);
        goto fail;
    }
    return true;
fail:
    header_free(h);
    return false;
}

/* Where the data section comes from: memory, or a file positioned at its start. */
typedef struct {
    const unsigned char *mem;
    FILE *file;
} data_source;

/* Allocate the tensors of a validated header and fill them from src. */
static int build(const char *what, const header *h, data_source src, wk_safetensors *out)
{
    memset(out, 0, sizeof *out);
    int meta_n = h->meta ? cJSON_GetArraySize(h->meta) : 0;
    out->items = calloc((size_t)(h->count ? h->count : 1), sizeof *out->items);
    out->meta_keys = calloc((size_t)(meta_n ? meta_n : 1), sizeof *out->meta_keys);
    out->meta_values = calloc((size_t)(meta_n ? meta_n : 1), sizeof *out->meta_values);
    if (!out->items || !out->meta_keys || !out->meta_values) goto oom;
    for (const cJSON *m = h->meta ? h->meta->child : NULL; m; m = m->next) {
        out->meta_keys[out->meta_count] = strdup(m->string);
        out->meta_values[out->meta_count] = strdup(m->valuestring);
        out->meta_count++;
        if (!out->meta_keys[out->meta_count - 1] || !out->meta_values[out->meta_count - 1])
            goto oom;
    }
    for (int i = 0; i < h->count; i++) {
        entry *e = h->by_name[i];
        wk_tensor *t = wk_empty(e->shape, e->ndim, e->dtype);
        if (!t) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", wk_last_error());
            st_error(LOAD_OP, what, "tensor \"%s\": %s", e->name, msg);
            goto fail;
        }
        while (t->frame) wk_keep(t); /* persistent, whatever frame we are in */
        out->items[out->count].tensor = t;
        out->items[out->count].name = strdup(e->name);
        out->count++;
        if (!out->items[out->count - 1].name) goto oom;
        e->tensor = t;
    }
    for (int i = 0; i < h->count; i++) {
        const entry *e = h->by_offset[i];
        size_t nbytes = (size_t)(e->end - e->begin);
        unsigned char *dst = wk_data(e->tensor);
        if (!nbytes) continue;
        if (src.mem) {
            memcpy(dst, src.mem + e->begin, nbytes);
        } else if (fread(dst, 1, nbytes, src.file) != nbytes) {
            st_error(LOAD_OP, what, "tensor \"%s\": %s while reading its %zu bytes", e->name,
                     ferror(src.file) ? strerror(errno) : "file ended (truncated?)", nbytes);
            goto fail;
        }
        if (e->dtype == WK_DTYPE_BOOL)
            for (size_t k = 0; k < nbytes; k++) dst[k] = dst[k] != 0;
    }
    return 0;
oom:
    st_error(LOAD_OP, what, "out of memory");
fail:
    wk_safetensors_free(out);
    return -1;
}

static uint64_t read_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Check the header size field against the total size; *n gets the header size. */
static bool check_prefix(const char *what, const unsigned char *p, uint64_t total, uint64_t *n)
{
    *n = read_le64(p);
    if (*n > MAX_HEADER_BYTES) {
        st_error(LOAD_OP, what, "header size %" PRIu64 " is over the %llu-byte limit "
                 "(not a safetensors file, or damaged)", *n, MAX_HEADER_BYTES);
        return false;
    }
    if (*n > total - 8) {
        st_error(LOAD_OP, what, "header size %" PRIu64 " is larger than the %" PRIu64
                 " bytes that follow it (truncated file?)", *n, total - 8);
        return false;
    }
    return true;
}

/* A NUL-terminated copy of n header bytes (cJSON must not read past them). */
static char *copy_header(const char *what, const void *src, size_t n)
{
    char *h = malloc(n + 1);
    if (!h) {
        st_error(LOAD_OP, what, "out of memory for a %zu-byte header", n);
        return NULL;
    }
    if (src) memcpy(h, src, n);
    h[n] = '\0';
    return h;
}

int wk_safetensors_load_mem(const void *buf, size_t size, const char *what,
                            wk_safetensors *out)
{
    if (!what) what = "(memory)";
    if (!out) {
        st_error(LOAD_OP, what, "output struct is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    if (!buf && size) {
        st_error(LOAD_OP, what, "buffer is NULL");
        return -1;
    }
    if (size < 8) {
        st_error(LOAD_OP, what, "%zu bytes is too short for a safetensors file (8-byte "
                 "header size, JSON header, data)", size);
        return -1;
    }
    uint64_t n;
    if (!check_prefix(what, buf, size, &n)) return -1;
    char *hdr = copy_header(what, (const char *)buf + 8, (size_t)n);
    if (!hdr) return -1;
    header h;
    bool ok = parse_header(what, hdr, (size_t)n, size - 8 - n, &h);
    int rc = -1;
    if (ok) {
        data_source src = {(const unsigned char *)buf + 8 + n, NULL};
        rc = build(what, &h, src, out);
        header_free(&h);
    }
    free(hdr);
    return rc;
}

int wk_safetensors_load(const char *path, wk_safetensors *out)
{
    if (!path) {
        wk_set_error(LOAD_OP ": path is NULL");
        if (out) memset(out, 0, sizeof *out);
        return -1;
    }
    if (!out) {
        st_error(LOAD_OP, path, "output struct is NULL");
        return -1;
    }
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        st_error(LOAD_OP, path, "cannot open: %s", strerror(errno));
        return -1;
    }
    int rc = -1;
    char *hdr = NULL;
    struct stat sb;
    unsigned char prefix[8];
    uint64_t n;
    if (fstat(fileno(f), &sb) != 0) {
        st_error(LOAD_OP, path, "cannot stat: %s", strerror(errno));
        goto done;
    }
    if (!S_ISREG(sb.st_mode)) {
        st_error(LOAD_OP, path, "not a regular file");
        goto done;
    }
    uint64_t total = (uint64_t)sb.st_size;
    if (total < 8) {
        st_error(LOAD_OP, path, "file has %" PRIu64 " bytes, too short for a safetensors "
                 "file (8-byte header size, JSON header, data)", total);
        goto done;
    }
    if (fread(prefix, 1, 8, f) != 8) {
        st_error(LOAD_OP, path, "cannot read the header size: %s",
                 ferror(f) ? strerror(errno) : "file ended");
        goto done;
    }
    if (!check_prefix(path, prefix, total, &n)) goto done;
    if (!(hdr = copy_header(path, NULL, (size_t)n))) goto done;
    if (fread(hdr, 1, (size_t)n, f) != (size_t)n) {
        st_error(LOAD_OP, path, "cannot read the %" PRIu64 "-byte header: %s", n,
                 ferror(f) ? strerror(errno) : "file ended");
        goto done;
    }
    header h;
    if (!parse_header(path, hdr, (size_t)n, total - 8 - n, &h)) goto done;
    data_source src = {NULL, f};
    rc = build(path, &h, src, out);
    header_free(&h);
done:
    free(hdr);
    fclose(f);
    return rc;
}

void wk_safetensors_free(wk_safetensors *st)
{
    if (!st) return;
    for (int i = 0; st->items && i < st->count; i++) {
        free(st->items[i].name);
        wk_tensor_free(st->items[i].tensor);
    }
    for (int i = 0; i < st->meta_count; i++) {
        if (st->meta_keys) free(st->meta_keys[i]);
        if (st->meta_values) free(st->meta_values[i]);
    }
    free(st->items);
    free(st->meta_keys);
    free(st->meta_values);
    memset(st, 0, sizeof *st);
}

wk_tensor *wk_safetensors_get(const wk_safetensors *st, const char *name)
{
    if (!st || !name) {
        wk_set_error("safetensors_get: %s is NULL", st ? "name" : "the safetensors struct");
        return NULL;
    }
    for (int i = 0; i < st->count; i++)
        if (st->items[i].name && !strcmp(st->items[i].name, name)) return st->items[i].tensor;
    char list[400];
    size_t len = 0;
    list[0] = '\0';
    for (int i = 0; i < st->count && len < sizeof list - 64; i++) {
        if (i == 6) {
            len += (size_t)snprintf(list + len, sizeof list - len, ", ...");
            break;
        }
        len += (size_t)snprintf(list + len, sizeof list - len, "%s\"%.40s\"", i ? ", " : "",
                                st->items[i].name ? st->items[i].name : "");
    }
    wk_set_error("safetensors_get: no tensor named \"%s\" (there are %d%s%s)", name, st->count,
                 st->count ? ": " : "", list);
    return NULL;
}

const char *wk_safetensors_meta(const wk_safetensors *st, const char *key)
{
    if (!st || !key || !st->meta_keys || !st->meta_values) return NULL;
    for (int i = 0; i < st->meta_count; i++)
        if (st->meta_keys[i] && !strcmp(st->meta_keys[i], key)) return st->meta_values[i];
    return NULL;
}

/* ---- saving ---- */

#define SAVE_OP "safetensors_save"

typedef struct {
    char *p;
    size_t len, cap;
    bool oom;
} strbuf;

static void sb_add(strbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static void sb_u64(strbuf *b, uint64_t v)
{
    char num[24];
    sb_add(b, num, (size_t)snprintf(num, sizeof num, "%" PRIu64, v));
}

static void sb_json_string(strbuf *b, const char *s)
{
    sb_add(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char esc[2] = {'\\', (char)*p};
            sb_add(b, esc, 2);
        } else if (*p < 0x20) {
            char esc[8];
            sb_add(b, esc, (size_t)snprintf(esc, sizeof esc, "\\u%04x", *p));
        } else {
            sb_add(b, (const char *)p, 1);
        }
    }
    sb_add(b, "\"", 1);
}

static int cmp_item_name(const void *a, const void *b)
{
    return strcmp((*(const wk_named_tensor *const *)a)->name,
                  (*(const wk_named_tensor *const *)b)->name);
}

/* Check the arguments; fills `sorted` (count entries) with the items in name order. */
static bool check_save_args(const char *path, const wk_named_tensor *items, int count,
                            const char *const *meta_keys, const char *const *meta_values,
                            int meta_count, const wk_named_tensor **sorted)
{
    for (int i = 0; i < count; i++) {
        const char *name = items[i].name;
        if (!name || !*name) {
            st_error(SAVE_OP, path, "item %d has %s name", i, name ? "an empty" : "a NULL");
            return false;
        }
        if (!valid_utf8_str(name)) {
            st_error(SAVE_OP, path, "item %d: name is not valid UTF-8", i);
            return false;
        }
        if (!strcmp(name, META_KEY)) {
            st_error(SAVE_OP, path, "item %d: the name \"" META_KEY "\" is reserved", i);
            return false;
        }
        const wk_tensor *t = items[i].tensor;
        if (!t) {
            /* Keep the message of the failure that produced the NULL, if any. */
            char prev[512];
            snprintf(prev, sizeof prev, "%s", wk_last_error());
            st_error(SAVE_OP, path, "tensor \"%s\" is NULL%s%s%s", name,
                     prev[0] ? " (after: " : "", prev, prev[0] ? ")" : "");
            return false;
        }
        if ((unsigned)t->dtype >= WK_DTYPE_COUNT) {
            st_error(SAVE_OP, path, "tensor \"%s\" has an invalid dtype %d", name,
                     (int)t->dtype);
            return false;
        }
        if (t->device.type != WK_DEVICE_CPU) {
            char d[32];
            st_error(SAVE_OP, path, "tensor \"%s\" is on %s; move it to the CPU first", name,
                     wk_device_str(t->device, d, sizeof d));
            return false;
        }
        sorted[i] = &items[i];
    }
    qsort(sorted, (size_t)count, sizeof *sorted, cmp_item_name);
    for (int i = 1; i < count; i++) {
        if (!strcmp(sorted[i - 1]->name, sorted[i]->name)) {
            st_error(SAVE_OP, path, "tensor name \"%s\" is used twice", sorted[i]->name);
            return false;
        }
    }
    for (int i = 0; i < meta_count; i++) {
        if (!meta_keys[i] || !meta_values[i]) {
            st_error(SAVE_OP, path, "metadata entry %d has a NULL %s", i,
                     meta_keys[i] ? "value" : "key");
            return false;
        }
        if (!valid_utf8_str(meta_keys[i]) || !valid_utf8_str(meta_values[i])) {
            st_error(SAVE_OP, path, "metadata key \"%s\": key or value is not valid UTF-8",
                     meta_keys[i]);
            return false;
        }
        for (int j = 0; j < i; j++) {
            if (!strcmp(meta_keys[i], meta_keys[j])) {
                st_error(SAVE_OP, path, "metadata key \"%s\" is used twice", meta_keys[i]);
                return false;
            }
        }
    }
    return true;
}

/* The JSON header padded with spaces to a multiple of 8 bytes; NULL with an error. */
static char *make_header(const char *path, const wk_named_tensor *const *sorted, int count,
                         const char *const *meta_keys, const char *const *meta_values,
                         int meta_count, size_t *len)
{
    strbuf b = {0};
    sb_str(&b, "{");
    if (meta_count > 0) {
        sb_str(&b, "\"" META_KEY "\":{");
        for (int i = 0; i < meta_count; i++) {
            if (i) sb_str(&b, ",");
            sb_json_string(&b, meta_keys[i]);
            sb_str(&b, ":");
            sb_json_string(&b, meta_values[i]);
        }
        sb_str(&b, "}");
    }
    uint64_t pos = 0;
    for (int i = 0; i < count; i++) {
        const wk_tensor *t = sorted[i]->tensor;
        uint64_t nbytes = (uint64_t)wk_numel(t) * wk_dtype_size(t->dtype);
        if (i || meta_count > 0) sb_str(&b, ",");
        sb_json_string(&b, sorted[i]->name);
        sb_str(&b, ":{\"dtype\":\"");
        sb_str(&b, dtype_names[t->dtype]);
        sb_str(&b, "\",\"shape\":[");
        for (int d = 0; d < t->ndim; d++) {
            if (d) sb_str(&b, ",");
            sb_u64(&b, (uint64_t)t->shape[d]);
        }
        sb_str(&b, "],\"data_offsets\":[");
        sb_u64(&b, pos);
        sb_str(&b, ",");
        pos += nbytes;
        sb_u64(&b, pos);
        sb_str(&b, "]}");
    }
    sb_str(&b, "}");
    while (b.len % 8) sb_str(&b, " ");
    if (b.oom) {
        st_error(SAVE_OP, path, "out of memory for the header");
        free(b.p);
        return NULL;
    }
    if (b.len > MAX_HEADER_BYTES) {
        st_error(SAVE_OP, path, "the header would take %zu bytes, over the %llu-byte limit "
                 "readers accept", b.len, MAX_HEADER_BYTES);
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* Write the file body to f; false with an error naming tmp. */
static bool write_body(const char *path, FILE *f, const char *header, size_t hlen,
                       const wk_named_tensor *const *sorted, int count)
{
    unsigned char prefix[8];
    for (int i = 0; i < 8; i++) prefix[i] = (unsigned char)((uint64_t)hlen >> (8 * i));
    if (fwrite(prefix, 1, 8, f) != 8 || fwrite(header, 1, hlen, f) != hlen) goto io_error;
    for (int i = 0; i < count; i++) {
        wk_tensor *t = sorted[i]->tensor;
        size_t nbytes = (size_t)wk_numel(t) * wk_dtype_size(t->dtype);
        if (!nbytes) continue;
        if (wk_is_contiguous(t)) {
            if (fwrite(wk_data(t), 1, nbytes, f) != nbytes) goto io_error;
            continue;
        }
        wk_tensor *c = wk_contiguous(t);
        if (!c) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", wk_last_error());
            st_error(SAVE_OP, path, "tensor \"%s\": %s", sorted[i]->name, msg);
            return false;
        }
        size_t w = fwrite(wk_data(c), 1, nbytes, f);
        wk_tensor_free(c);
        if (w != nbytes) goto io_error;
    }
    return true;
io_error:
    st_error(SAVE_OP, path, "cannot write the temporary file: %s", strerror(errno));
    return false;
}

/* fsync the folder holding path, so the rename survives a crash. */
static bool sync_folder(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
    if (!dir) {
        st_error(SAVE_OP, path, "out of memory");
        return false;
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    bool ok = fd >= 0 && (fsync(fd) == 0 || errno == EINVAL || errno == EROFS);
    if (!ok)
        st_error(SAVE_OP, path, "written, but syncing folder %s failed: %s", dir,
                 strerror(errno));
    if (fd >= 0) close(fd);
    free(dir);
    return ok;
}

int wk_safetensors_save(const char *path, const wk_named_tensor *items, int count,
                        const char *const *meta_keys, const char *const *meta_values,
                        int meta_count)
{
    if (!path || !*path) {
        wk_set_error(SAVE_OP ": path is %s", path ? "empty" : "NULL");
        return -1;
    }
    if (count < 0 || (count > 0 && !items)) {
        st_error(SAVE_OP, path, "%d items at %p: expected count >= 0 and items non-NULL",
                 count, (const void *)items);
        return -1;
    }
    if (meta_count < 0 || (meta_count > 0 && (!meta_keys || !meta_values))) {
        st_error(SAVE_OP, path, "%d metadata entries: expected meta_count >= 0 and non-NULL "
                 "key and value arrays", meta_count);
        return -1;
    }
    const wk_named_tensor **sorted = malloc((size_t)(count ? count : 1) * sizeof *sorted);
    if (!sorted) {
        st_error(SAVE_OP, path, "out of memory");
        return -1;
    }
    int rc = -1;
    char *header = NULL, *tmp = NULL;
    FILE *f = NULL;
    size_t hlen = 0;
    if (!check_save_args(path, items, count, meta_keys, meta_values, meta_count, sorted))
        goto done;
    header = make_header(path, sorted, count, meta_keys, meta_values, meta_count, &hlen);
    if (!header) goto done;

    size_t tlen = strlen(path) + 32;
    if (!(tmp = malloc(tlen))) {
        st_error(SAVE_OP, path, "out of memory");
        goto done;
    }
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    if (!(f = fopen(tmp, "wb"))) {
        st_error(SAVE_OP, path, "cannot create temporary file %s: %s", tmp, strerror(errno));
        goto done;
    }
    if (!write_body(path, f, header, hlen, sorted, count)) goto remove_tmp;
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
        st_error(SAVE_OP, path, "cannot flush temporary file %s: %s", tmp, strerror(errno));
        goto remove_tmp;
    }
    int closed = fclose(f);
    f = NULL;
    if (closed != 0) {
        st_error(SAVE_OP, path, "cannot close temporary file %s: %s", tmp, strerror(errno));
        goto remove_tmp;
    }
    if (rename(tmp, path) != 0) {
        st_error(SAVE_OP, path, "cannot rename %s over it: %s", tmp, strerror(errno));
        goto remove_tmp;
    }
    rc = sync_folder(path) ? 0 : -1;
    goto done;
remove_tmp:
    if (f) fclose(f);
    f = NULL;
    unlink(tmp);
done:
    free(tmp);
    free(header);
    free(sorted);
    return rc;
}

/* TensorBoard event writer: a hand-written encoder for the few protobuf fields scalars need,
 * in TFRecord framing (length, masked CRC of the length, data, masked CRC of the data). */
#include "tensorboard.h"

#include <errno.h>
#include <stdbool.h>
#include <isa-l/crc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../tensor/tensor.h"

struct wk_tb_writer {
    FILE *f;
    char *path;
};

double wk_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

uint32_t wk_crc32c(const void *data, size_t n)
{
    /* ISA-L's crc32_iscsi takes the running register and returns it unfinalized: the
     * standard CRC-32C starts from ~0 and inverts at the end. Its length is an int, so
     * long buffers go in pieces. */
    uint32_t crc = 0xFFFFFFFFu;
    const unsigned char *p = data;
    while (n > 0) {
        int len = n > (1u << 30) ? 1 << 30 : (int)n;
        crc = crc32_iscsi((unsigned char *)p, len, crc);
        p += len;
        n -= (size_t)len;
    }
    return ~crc;
}

uint32_t wk_tfrecord_masked_crc(const void *data, size_t n)
{
    uint32_t c = wk_crc32c(data, n);
    return ((c >> 15) | (c << 17)) + 0xa282ead8u;
}

/* ---- a growable byte buffer and the protobuf wire format ---- */

typedef struct {
    unsigned char *p;
    size_t n, cap;
    bool oom;
} buf;

static void put(buf *b, const void *src, size_t n)
{
    if (b->oom || n == 0) return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->n + n) cap *= 2;
        unsigned char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, src, n);
    b->n += n;
}

static void put_varint(buf *b, uint64_t v)
{
    unsigned char tmp[10];
    size_t n = 0;
    do {
        tmp[n] = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) tmp[n] |= 0x80;
        n++;
    } while (v);
    put(b, tmp, n);
}

static void put_le(buf *b, uint64_t v, int bytes)
{
    unsigned char tmp[8];
    for (int i = 0; i < bytes; i++) tmp[i] = (unsigned char)(v >> (8 * i));
    put(b, tmp, (size_t)bytes);
}

enum { WIRE_VARINT = 0, WIRE_I64 = 1, WIRE_LEN = 2, WIRE_I32 = 5 };

static void put_key(buf *b, int field, int wire) { put_varint(b, (uint64_t)(field << 3 | wire)); }

static void put_bytes(buf *b, int field, const void *p, size_t n)
{
    put_key(b, field, WIRE_LEN);
    put_varint(b, n);
    put(b, p, n);
}

static void put_double(buf *b, int field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    put_key(b, field, WIRE_I64);
    put_le(b, u, 8);
}

static void put_float(buf *b, int field, float v)
{
    uint32_t u;
    memcpy(&u, &v, 4);
    put_key(b, field, WIRE_I32);
    put_le(b, u, 4);
}

/* Event fields: wall_time = 1 (double), step = 2 (int64), file_version = 3 (string),
 * summary = 5 (Summary). Proto3 leaves a zero step out, as TensorFlow's writer does. */
static void event_head(buf *b, double wall_time, int64_t step)
{
    put_double(b, 1, wall_time);
    if (step != 0) {
        put_key(b, 2, WIRE_VARINT);
        put_varint(b, (uint64_t)step);
    }
}

static int write_record(wk_tb_writer *w, const buf *data)
{
    if (data->oom) {
        wk_set_error("tensorboard: out of memory encoding an event for '%s'", w->path);
        return -1;
    }
    buf rec = {0};
    unsigned char len[8];
    for (int i = 0; i < 8; i++) len[i] = (unsigned char)((uint64_t)data->n >> (8 * i));
    put(&rec, len, 8);
    put_le(&rec, wk_tfrecord_masked_crc(len, 8), 4);
    put(&rec, data->p, data->n);
    put_le(&rec, wk_tfrecord_masked_crc(data->p, data->n), 4);
    int rc = 0;
    if (rec.oom) {
        wk_set_error("tensorboard: out of memory framing a record for '%s'", w->path);
        rc = -1;
    } else if (fwrite(rec.p, 1, rec.n, w->f) != rec.n || fflush(w->f) != 0) {
        wk_set_error("tensorboard: cannot write '%s': %s", w->path, strerror(errno));
        rc = -1;
    }
    free(rec.p);
    return rc;
}

wk_tb_writer *wk_tb_writer_open(const char *path, double wall_time)
{
    if (!path) {
        wk_set_error("tb_writer_open: path is NULL");
        return NULL;
    }
    wk_tb_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        wk_set_error("tb_writer_open: out of memory");
        return NULL;
    }
    w->f = fopen(path, "wb");
    if (!w->f) {
        wk_set_error("tb_writer_open: cannot create '%s': %s", path, strerror(errno));
        free(w->path);
        free(w);
        return NULL;
    }
    buf b = {0};
    event_head(&b, wall_time, 0);
    static const char version[] = "brain.Event:2";
    put_bytes(&b, 3, version, sizeof version - 1);
    int rc = write_record(w, &b);
    free(b.p);
    if (rc) {
        wk_tb_writer_close(w);
        return NULL;
    }
    return w;
}

wk_tb_writer *wk_tb_writer_open_dir(const char *dir, double wall_time)
{
    if (!dir) {
        wk_set_error("tb_writer_open_dir: dir is NULL");
        return NULL;
    }
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
        wk_set_error("tb_writer_open_dir: cannot create '%s': %s", dir, strerror(errno));
        return NULL;
    }
    char host[256] = "localhost";
    if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
    host[sizeof host - 1] = '\0';
    size_t n = strlen(dir) + strlen(host) + 96;
    char *path = malloc(n);
    if (!path) {
        wk_set_error("tb_writer_open_dir: out of memory");
        return NULL;
    }
    snprintf(path, n, "%s/events.out.tfevents.%lld.%s.%ld.0", dir, (long long)wall_time, host,
             (long)getpid());
    wk_tb_writer *w = wk_tb_writer_open(path, wall_time);
    free(path);
    return w;
}

int wk_tb_writer_add_scalars(wk_tb_writer *w, int64_t step, double wall_time,
                             const char *const *tags, const double *values, int n)
{
    if (!w || n < 0 || (n > 0 && (!tags || !values))) {
        wk_set_error("tb_writer_add_scalars: expected a writer and n >= 0 tags and values");
        return -1;
    }
    buf summary = {0}, value = {0}, event = {0};
    for (int i = 0; i < n; i++) {
        if (!tags[i]) {
            free(summary.p);
            free(value.p);
            wk_set_error("tb_writer_add_scalars: tag %d is NULL", i);
            return -1;
        }
        /* Summary.Value: tag = 1, simple_value = 2 (a oneof member, so written even when 0) */
        value.n = 0;
        put_bytes(&value, 1, tags[i], strlen(tags[i]));
        put_float(&value, 2, (float)values[i]);
        if (value.oom) summary.oom = true;
        put_bytes(&summary, 1, value.p, value.n);
    }
    event_head(&event, wall_time, step);
    if (summary.oom) event.oom = true;
    put_bytes(&event, 5, summary.p, summary.n);
    int rc = write_record(w, &event);
    free(summary.p);
    free(value.p);
    free(event.p);
    return rc;
}

int wk_tb_writer_add_scalar(wk_tb_writer *w, const char *tag, double value, int64_t step,
                            double wall_time)
{
    return wk_tb_writer_add_scalars(w, step, wall_time, &tag, &value, 1);
}

const char *wk_tb_writer_path(const wk_tb_writer *w) { return w ? w->path : NULL; }

int wk_tb_writer_close(wk_tb_writer *w)
{
    if (!w) return 0;
    int rc = 0;
    if (w->f && fclose(w->f) != 0) {
        wk_set_error("tb_writer_close: cannot close '%s': %s", w->path, strerror(errno));
        rc = -1;
    }
    free(w->path);
    free(w);
    return rc;
}

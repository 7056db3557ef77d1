/* Datasets: IDX round trips (gzip and plain, u8/i32/f32/f64) and every malformed-file
 * error, MNIST from small IDX files written here (normalisation, augmentation
 * determinism, crop range, flip, count mismatch), two-circles statistics, TensorDataset
 * errors, the seeded split, byte-level text windows. */
#include <ftw.h>
#include <stdlib.h>
#include <unistd.h>

#include "test_util.h"

TestSuite(datasets, .init = tu_setup, .fini = tu_teardown);

static char *tmpdir;

static void make_tmp(void)
{
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick_ds_"));
}

static void remove_tmp(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
}

static void path_of(char *buf, size_t n, const char *name)
{
    snprintf(buf, n, "%s/%s", tmpdir, name);
}

static void write_bytes(const char *name, const uint8_t *b, size_t n)
{
    char p[512];
    path_of(p, sizeof p, name);
    FILE *f = fopen(p, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(b, 1, n, f), n);
    fclose(f);
}

static void expect_same(const wk_tensor *a, const wk_tensor *b)
{
    cr_assert_not_null(b, "%s", wk_last_error());
    cr_assert_eq(a->dtype, b->dtype);
    cr_assert_eq(a->ndim, b->ndim);
    for (int d = 0; d < a->ndim; d++) cr_assert_eq(a->shape[d], b->shape[d]);
    cr_assert_eq(memcmp(wk_data(a), wk_data(b), (size_t)wk_numel(a) * wk_dtype_size(a->dtype)),
                 0, "data differs after the round trip");
}

Test(datasets, idx_round_trip_all_types_gzip_and_plain)
{
    make_tmp();
    wk_generator g = wk_generator_make(5);
    wk_tensor *f32 = wk_randn(WK_SHAPE(3, 4, 5), WK_DTYPE_F32, &g);
    wk_tensor *f64 = wk_randn(WK_SHAPE(7, 2), WK_DTYPE_F64, &g);
    int32_t iv[] = {-2147483647 - 1, -1, 0, 1, 2147483647, 123456};
    wk_tensor *i32 = wk_from_array(iv, WK_SHAPE(6), WK_DTYPE_I32);
    uint8_t uv[2 * 3 * 2];
    for (int i = 0; i < 12; i++) uv[i] = (uint8_t)(i * 23);
    wk_tensor *u8 = wk_from_array(uv, WK_SHAPE(2, 3, 2), WK_DTYPE_U8);
    wk_tensor *ts[] = {f32, f64, i32, u8};
    for (int gz = 0; gz < 2; gz++) {
        for (int k = 0; k < 4; k++) {
            char p[512], name[32];
            snprintf(name, sizeof name, "t%d%s", k, gz ? ".gz" : "");
            path_of(p, sizeof p, name);
            cr_assert_eq(wk_idx_write(p, ts[k], gz), 0, "%s", wk_last_error());
            wk_tensor *r = wk_idx_read(p);
            expect_same(ts[k], r);
            wk_tensor_free(r);
        }
    }
    /* The plain file really is plain: its first bytes are the IDX magic. */
    char p[512];
    path_of(p, sizeof p, "t3");
    FILE *f = fopen(p, "rb");
    uint8_t head[4];
    cr_assert_eq(fread(head, 1, 4, f), 4);
    fclose(f);
    cr_assert(head[0] == 0 && head[1] == 0 && head[2] == 0x08 && head[3] == 3);
    path_of(p, sizeof p, "t3.gz");
    f = fopen(p, "rb");
    cr_assert_eq(fread(head, 1, 2, f), 2);
    fclose(f);
    cr_assert(head[0] == 0x1f && head[1] == 0x8b, "not gzip");
    expect_error(wk_idx_write(p, wk_zeros(WK_SHAPE(2), WK_DTYPE_I64), false) ? NULL : p,
                 "dtype int64 has no IDX type");
    remove_tmp();
}

Test(datasets, idx_signed_bytes_and_shorts_widen)
{
    make_tmp();
    uint8_t i8[] = {0, 0, 0x09, 1, 0, 0, 0, 3, 0xff, 0x7f, 0x80};
    uint8_t i16[] = {0, 0, 0x0B, 1, 0, 0, 0, 2, 0xff, 0xfe, 0x01, 0x02};
    write_bytes("i8", i8, sizeof i8);
    write_bytes("i16", i16, sizeof i16);
    char p[512];
    path_of(p, sizeof p, "i8");
    wk_tensor *a = wk_idx_read(p);
    cr_assert_not_null(a, "%s", wk_last_error());
    cr_assert_eq(a->dtype, WK_DTYPE_I32);
    expect_values(a, 0, -1, 127, -128);
    path_of(p, sizeof p, "i16");
    wk_tensor *b = wk_idx_read(p);
    cr_assert_not_null(b, "%s", wk_last_error());
    expect_values(b, 0, -2, 258);
    wk_tensor_free(a), wk_tensor_free(b);
    remove_tmp();
}

Test(datasets, idx_malformed_files)
{
    make_tmp();
    char p[512];
    path_of(p, sizeof p, "nope");
    expect_error(wk_idx_read(p), "cannot open");
    expect_error(wk_idx_read(p), "nope");
    /* wrong magic (first bytes not zero; unknown type code; 0 dims) */
    uint8_t bad1[] = {'P', 'K', 3, 4, 0, 0, 0, 0};
    write_bytes("bad1", bad1, sizeof bad1);
    path_of(p, sizeof p, "bad1");
    expect_error(wk_idx_read(p), "magic number 0x504b0304");
    uint8_t bad2[] = {0, 0, 0x07, 1, 0, 0, 0, 1, 0};
    write_bytes("bad2", bad2, sizeof bad2);
    path_of(p, sizeof p, "bad2");
    expect_error(wk_idx_read(p), "magic number");
    /* too many dims */
    uint8_t bad3[] = {0, 0, 0x08, 9};
    write_bytes("bad3", bad3, sizeof bad3);
    path_of(p, sizeof p, "bad3");
    expect_error(wk_idx_read(p), "<= 8 dims");
    /* shorter than the magic */
    uint8_t bad4[] = {0, 0};
    write_bytes("bad4", bad4, sizeof bad4);
    path_of(p, sizeof p, "bad4");
    expect_error(wk_idx_read(p), "shorter than an IDX header");
    /* truncated header: 3 dims announced, 1.5 given */
    uint8_t bad5[] = {0, 0, 0x08, 3, 0, 0, 0, 2, 0, 0};
    write_bytes("bad5", bad5, sizeof bad5);
    path_of(p, sizeof p, "bad5");
    expect_error(wk_idx_read(p), "truncated in its header (dim 1 of 3)");
    /* truncated data: [2, 3] f32 = 24 bytes, 20 given */
    uint8_t bad6[4 + 8 + 20] = {0, 0, 0x0D, 2, 0, 0, 0, 2, 0, 0, 0, 3};
    write_bytes("bad6", bad6, sizeof bad6);
    path_of(p, sizeof p, "bad6");
    expect_error(wk_idx_read(p), "is truncated: its header announces [2, 3] elements of 4 "
                                 "bytes (24 bytes of data)");
    /* the same truncation inside a gzip stream */
    wk_tensor *t = wk_zeros(WK_SHAPE(100), WK_DTYPE_F64);
    path_of(p, sizeof p, "full.gz");
    cr_assert_eq(wk_idx_write(p, t, true), 0);
    FILE *f = fopen(p, "rb");
    uint8_t buf[4096];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    write_bytes("cut.gz", buf, n / 2);
    path_of(p, sizeof p, "cut.gz");
    expect_error(wk_idx_read(p), "truncated");
    expect_error(wk_idx_read(NULL), "path is NULL");
    remove_tmp();
}

/* Small MNIST-like files in tmpdir: n images h x w with pixel (i, y, x) = pix(i, y, x). */
static uint8_t pix(int64_t i, int64_t y, int64_t x) { return (uint8_t)(i * 31 + y * 7 + x * 3 + 1); }

static void write_mnist(bool train, int64_t n, int64_t nlabels, int64_t h, int64_t w, bool gz)
{
    wk_frame_begin();
    wk_tensor *img = wk_empty(WK_SHAPE(n, h, w), WK_DTYPE_U8);
    uint8_t *p = wk_data(img);
    for (int64_t i = 0; i < n; i++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) p[(i * h + y) * w + x] = pix(i, y, x);
    wk_tensor *lab = wk_empty(WK_SHAPE(nlabels), WK_DTYPE_U8);
    for (int64_t i = 0; i < nlabels; i++) ((uint8_t *)wk_data(lab))[i] = (uint8_t)(i % 10);
    char a[512], b[512];
    snprintf(a, sizeof a, "%s/%s-images-idx3-ubyte%s", tmpdir, train ? "train" : "t10k",
             gz ? ".gz" : "");
    snprintf(b, sizeof b, "%s/%s-labels-idx1-ubyte%s", tmpdir, train ? "train" : "t10k",
             gz ? ".gz" : "");
    cr_assert_eq(wk_idx_write(a, img, gz), 0);
    cr_assert_eq(wk_idx_write(b, lab, gz), 0);
    wk_frame_end();
}

/* Sample i of ds (epoch e) into caller buffers. */
static void get_sample(wk_dataset *ds, int64_t i, int64_t e, float *img, int64_t *label)
{
    void *rows[] = {img, label};
    cr_assert_eq(ds->get(ds, i, e, rows), 0, "%s", wk_last_error());
}

Test(datasets, mnist_reads_and_normalises)
{
    make_tmp();
    write_mnist(true, 5, 5, 6, 4, true);   /* gzip train */
    write_mnist(false, 3, 3, 6, 4, false); /* plain test */
    wk_dataset *tr = wk_mnist_new(tmpdir, true, NULL);
    cr_assert_not_null(tr, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(tr), 5);
    cr_assert_eq(tr->nfields, 2);
    cr_assert_str_eq(tr->fields[0].name, "inputs");
    cr_assert_eq(tr->fields[0].ndim, 3);
    cr_assert_eq(tr->fields[0].shape[1], 6);
    cr_assert_eq(tr->fields[0].shape[2], 4);
    cr_assert_eq(tr->fields[1].dtype, WK_DTYPE_I64);
    float img[24];
    int64_t label;
    get_sample(tr, 3, 0, img, &label);
    cr_assert_eq(label, 3);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 4; x++)
            cr_assert_eq(img[y * 4 + x], (float)(pix(3, y, x) * (1.0 / 255.0)));
    wk_dataset_free(tr);

    wk_dataset *te = wk_mnist_new(tmpdir, false,
                                  &(wk_mnist_opts){.flatten = true, .mean = 0.5, .std = 0.25});
    cr_assert_not_null(te, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(te), 3);
    cr_assert_eq(te->fields[0].ndim, 1);
    cr_assert_eq(te->fields[0].shape[0], 24);
    get_sample(te, 2, 0, img, &label);
    cr_assert_eq(label, 2);
    for (int y = 0; y < 6; y++)
        for (int x = 0; x < 4; x++)
            cr_assert_eq(img[y * 4 + x], (float)((pix(2, y, x) / 255.0 - 0.5) / 0.25));
    void *rows[] = {img, &label};
    expect_error(te->get(te, 3, 0, rows) ? NULL : te, "sample 3 is out of range");
    wk_dataset_free(te);
    remove_tmp();
}

Test(datasets, mnist_augmentation_is_deterministic_and_in_range)
{
    make_tmp();
    enum { N = 40, H = 6, W = 5, P = 2 };
    write_mnist(true, N, N, H, W, false);
    wk_mnist_opts o = {.augment = {.crop_padding = P, .hflip = true, .seed = 11}};
    wk_dataset *a = wk_mnist_new(tmpdir, true, &o);
    wk_dataset *b = wk_mnist_new(tmpdir, true, &o);
    cr_assert_not_null(a, "%s", wk_last_error());
    int flips = 0, shifted = 0, differs_by_epoch = 0;
    for (int64_t i = 0; i < N; i++) {
        float x1[H * W], x2[H * W], x3[H * W];
        int64_t l1, l2;
        get_sample(a, i, 3, x1, &l1);
        get_sample(b, i, 3, x2, &l2); /* another instance, same (seed, epoch, index) */
        cr_assert_eq(memcmp(x1, x2, sizeof x1), 0, "sample %lld differs", (long long)i);
        cr_assert_eq(l1, i % 10);
        get_sample(a, i, 4, x3, &l2);
        differs_by_epoch += memcmp(x1, x3, sizeof x1) != 0;
        /* find the (dy, dx, flip) that explains x1: exactly one must, within range */
        int found = 0;
        for (int f = 0; f < 2; f++)
            for (int dy = -P; dy <= P; dy++)
                for (int dx = -P; dx <= P; dx++) {
                    bool ok = true;
                    for (int y = 0; y < H && ok; y++)
                        for (int x = 0; x < W && ok; x++) {
                            int sy = y + dy, sx = (f ? W - 1 - x : x) + dx;
                            double v = (sy >= 0 && sy < H && sx >= 0 && sx < W)
                                           ? pix(i, sy, sx) / 255.0
                                           : 0;
                            ok = x1[y * W + x] == (float)v;
                        }
                    if (ok) {
                        found++;
                        flips += f;
                        shifted += dy != 0 || dx != 0;
                    }
                }
        cr_assert_eq(found, 1, "sample %lld: %d crop/flip explanations", (long long)i, found);
    }
    cr_assert(flips > 5 && flips < N - 5, "%d flips of %d", flips, N);
    cr_assert(shifted > N / 2, "%d shifted", shifted);
    cr_assert(differs_by_epoch > N / 2, "epochs share augmentations (%d differ)",
              differs_by_epoch);
    wk_dataset_free(a), wk_dataset_free(b);
    /* another seed gives other augmentations */
    o.augment.seed = 12;
    a = wk_mnist_new(tmpdir, true, &o);
    o.augment.seed = 11;
    b = wk_mnist_new(tmpdir, true, &o);
    int differ = 0;
    for (int64_t i = 0; i < N; i++) {
        float x1[H * W], x2[H * W];
        int64_t l;
        get_sample(a, i, 0, x1, &l);
        get_sample(b, i, 0, x2, &l);
        differ += memcmp(x1, x2, sizeof x1) != 0;
    }
    cr_assert(differ > N / 2);
    wk_dataset_free(a), wk_dataset_free(b);
    expect_error(wk_mnist_new(tmpdir, true, &(wk_mnist_opts){.augment = {.crop_padding = 15}}),
                 "crop_padding must be 0..14");
    remove_tmp();
}

Test(datasets, mnist_errors)
{
    make_tmp();
    expect_error(wk_mnist_new("/nonexistent/wick", true, NULL), "dataset-fashion-mnist");
    expect_error(wk_mnist_new(tmpdir, true, NULL), "train-images-idx3-ubyte");
    write_mnist(true, 4, 3, 2, 2, true);
    expect_error(wk_mnist_new(tmpdir, true, NULL), "expected 4 uint8 labels");
    /* images that are not [N, H, W] uint8 */
    char p[512];
    snprintf(p, sizeof p, "%s/t10k-images-idx3-ubyte", tmpdir);
    cr_assert_eq(wk_idx_write(p, wk_zeros(WK_SHAPE(2, 2, 2), WK_DTYPE_F32), false), 0);
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte", tmpdir);
    cr_assert_eq(wk_idx_write(p, wk_zeros(WK_SHAPE(2), WK_DTYPE_U8), false), 0);
    expect_error(wk_mnist_new(tmpdir, false, NULL), "expected uint8 images [N, H, W]");
    remove_tmp();
}

Test(datasets, two_circles_statistics)
{
    enum { N = 4000 };
    wk_dataset *ds = wk_two_circles_new(N, 3);
    cr_assert_not_null(ds, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(ds), N);
    cr_assert_str_eq(ds->type, "TwoCircles");
    double sum[2] = {0}, sq[2] = {0}, cnt[2] = {0}, quad[4] = {0};
    for (int64_t i = 0; i < N; i++) {
        float x[2];
        int64_t y;
        void *rows[] = {x, &y};
        cr_assert_eq(ds->get(ds, i, 0, rows), 0);
        cr_assert(y == 0 || y == 1);
        double r = sqrt((double)x[0] * x[0] + (double)x[1] * x[1]);
        sum[y] += r, sq[y] += r * r, cnt[y] += 1;
        quad[(x[0] > 0) * 2 + (x[1] > 0)] += 1;
    }
    cr_assert_eq(cnt[0], N / 2);
    cr_assert_eq(cnt[1], N / 2);
    for (int c = 0; c < 2; c++) {
        double mean = sum[c] / cnt[c], sd = sqrt(sq[c] / cnt[c] - mean * mean);
        /* |r| of N(3(c+1), 1): the mean is 3(c+1) up to 4 standard errors */
        cr_assert(fabs(mean - 3.0 * (c + 1)) < 4.0 / sqrt(cnt[c]) + 0.01, "label %d: mean %g",
                  c, mean);
        cr_assert(fabs(sd - 1.0) < 0.1, "label %d: sd %g", c, sd);
    }
    for (int q = 0; q < 4; q++) cr_assert(fabs(quad[q] / N - 0.25) < 0.04, "angles not uniform");
    /* same seed, same data; another seed, other data */
    wk_dataset *same = wk_two_circles_new(N, 3), *other = wk_two_circles_new(N, 4);
    float a[2], b[2], c[2];
    int64_t y;
    for (int64_t i = 0; i < 10; i++) {
        cr_assert_eq(same->get(same, i, 0, (void *[]){b, &y}), 0);
        cr_assert_eq(ds->get(ds, i, 0, (void *[]){a, &y}), 0);
        cr_assert_eq(other->get(other, i, 0, (void *[]){c, &y}), 0);
        cr_assert(a[0] == b[0] && a[1] == b[1]);
        cr_assert(a[0] != c[0]);
    }
    wk_dataset_free(ds), wk_dataset_free(same), wk_dataset_free(other);
    expect_error(wk_two_circles_new(0, 1), "size must be > 0");
}

Test(datasets, regression_set)
{
    wk_dataset *ds = wk_regression_new(50, 3, 0.0, 1);
    cr_assert_not_null(ds, "%s", wk_last_error());
    cr_assert_str_eq(ds->fields[1].name, "targets");
    cr_assert_eq(ds->fields[0].shape[0], 3);
    /* noise 0: y is exactly linear in x; recover w from 4 samples and check the rest */
    float x[50][3], y[50][1];
    for (int i = 0; i < 50; i++) cr_assert_eq(ds->get(ds, i, 0, (void *[]){x[i], y[i]}), 0);
    /* differences against sample 0 remove b; solve the 3x3 system by Cramer's rule */
    double A[3][3], r[3];
    for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 3; j++) A[i][j] = (double)x[i + 1][j] - x[0][j];
        r[i] = (double)y[i + 1][0] - y[0][0];
    }
#define DET3(M) (M[0][0] * (M[1][1] * M[2][2] - M[1][2] * M[2][1]) -                         \
                 M[0][1] * (M[1][0] * M[2][2] - M[1][2] * M[2][0]) +                          \
                 M[0][2] * (M[1][0] * M[2][1] - M[1][1] * M[2][0]))
    double d = DET3(A), w[3];
    for (int k = 0; k < 3; k++) {
        double B[3][3];
        memcpy(B, A, sizeof B);
        for (int i = 0; i < 3; i++) B[i][k] = r[i];
        w[k] = DET3(B) / d;
    }
    double b = y[0][0] - (x[0][0] * w[0] + x[0][1] * w[1] + x[0][2] * w[2]);
    cr_assert(fabs(b - 0.5) < 1e-4, "b = %g", b);
    for (int i = 0; i < 50; i++) {
        double p = b + x[i][0] * w[0] + x[i][1] * w[1] + x[i][2] * w[2];
        cr_assert(fabs(p - y[i][0]) < 1e-4);
    }
    wk_dataset_free(ds);
    expect_error(wk_regression_new(10, 0, 0, 1), "features must be > 0");
}

Test(datasets, tensor_dataset_and_errors)
{
    wk_tensor *x = wk_arange(0, 12, 1, WK_DTYPE_F32);
    x = wk_reshape(x, WK_SHAPE(4, 3));
    wk_tensor *y = tu_i64(WK_SHAPE(4), 7, 8, 9, 10);
    wk_tensor *xt = wk_transpose(wk_reshape(wk_arange(0, 12, 1, WK_DTYPE_F64), WK_SHAPE(3, 4)),
                                 0, 1); /* non-contiguous: rows are columns */
    wk_dataset *ds = wk_tensor_dataset_new((const char *[]){"a", "b", "c"},
                                           (wk_tensor *[]){x, y, xt}, 3);
    cr_assert_not_null(ds, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(ds), 4);
    cr_assert_str_eq(ds->fields[2].name, "c");
    float a[3];
    int64_t b;
    double c[3];
    cr_assert_eq(ds->get(ds, 2, 0, (void *[]){a, &b, c}), 0);
    cr_assert(a[0] == 6 && a[1] == 7 && a[2] == 8);
    cr_assert_eq(b, 9);
    cr_assert(c[0] == 2 && c[1] == 6 && c[2] == 10);
    /* batched gather */
    float ab[2][3];
    int64_t bb[2];
    double cb[2][3];
    cr_assert_eq(ds->get_batch(ds, (int64_t[]){3, 0}, 2, 0, (void *[]){ab, bb, cb}), 0);
    cr_assert(ab[0][0] == 9 && ab[1][2] == 2 && bb[0] == 10 && bb[1] == 7 && cb[0][1] == 7);
    expect_error(ds->get_batch(ds, (int64_t[]){4}, 1, 0, (void *[]){ab, bb, cb}) ? NULL : ds,
                 "sample 4 is out of range (4 samples)");
    wk_dataset_free(ds);

    expect_error(wk_tensor_dataset_new((const char *[]){"a", "b"},
                                       (wk_tensor *[]){x, wk_zeros(WK_SHAPE(3), WK_DTYPE_I64)},
                                       2),
                 "same number of rows");
    expect_error(wk_tensor_dataset_new((const char *[]){"a"},
                                       (wk_tensor *[]){wk_scalar(1.0, WK_DTYPE_F32)}, 1),
                 "same number of rows");
    expect_error(wk_tensor_dataset_new((const char *[]){""}, (wk_tensor *[]){x}, 1),
                 "tensor 0 has no name");
    expect_error(wk_tensor_dataset_new((const char *[]){"a"}, (wk_tensor *[]){x}, 0),
                 "needs 1..8 named tensors");
    expect_error(wk_tensor_dataset_new((const char *[]){"a"}, (wk_tensor *[]){NULL}, 1),
                 "TensorDataset");
}

Test(datasets, split_sizes_disjoint_deterministic)
{
    wk_tensor *x = wk_arange(0, 100, 1, WK_DTYPE_I64);
    wk_dataset *ds = wk_tensor_dataset_new((const char *[]){"x"}, (wk_tensor *[]){x}, 1);
    wk_dataset *a, *b, *a2, *b2, *c, *d;
    cr_assert_eq(wk_dataset_split(ds, 30, 7, &a, &b), 0, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_split(ds, 30, 7, &a2, &b2), 0);
    cr_assert_eq(wk_dataset_split(ds, 30, 8, &c, &d), 0);
    cr_assert_eq(wk_dataset_length(a), 70);
    cr_assert_eq(wk_dataset_length(b), 30);
    int seen[100] = {0};
    int64_t v, v2, same_as_other_seed = 0;
    for (int64_t i = 0; i < 70; i++) {
        cr_assert_eq(a->get(a, i, 0, (void *[]){&v}), 0);
        cr_assert_eq(a2->get(a2, i, 0, (void *[]){&v2}), 0);
        cr_assert_eq(v, v2);
        seen[v]++;
        cr_assert_eq(c->get(c, i, 0, (void *[]){&v2}), 0);
        same_as_other_seed += v == v2;
    }
    for (int64_t i = 0; i < 30; i++) {
        cr_assert_eq(b->get(b, i, 0, (void *[]){&v}), 0);
        seen[v]++;
    }
    for (int i = 0; i < 100; i++) cr_assert_eq(seen[i], 1, "sample %d seen %d times", i, seen[i]);
    cr_assert(same_as_other_seed < 10);
    /* the subset's batched get maps indices */
    int64_t out[2];
    cr_assert_eq(b->get_batch(b, (int64_t[]){0, 29}, 2, 0, (void *[]){out}), 0);
    cr_assert_eq(b->get(b, 29, 0, (void *[]){&v}), 0);
    cr_assert_eq(out[1], v);
    expect_error(b->get(b, 30, 0, (void *[]){&v}) ? NULL : b, "Subset: sample 30");
    wk_dataset *s;
    expect_error(wk_dataset_split(ds, 101, 0, &s, &s) ? NULL : ds, "holdout 101");
    expect_error(wk_subset_new(ds, (int64_t[]){100}, 1), "index 100 is out of range");
    wk_dataset_free(a), wk_dataset_free(b), wk_dataset_free(a2), wk_dataset_free(b2);
    wk_dataset_free(c), wk_dataset_free(d);
    wk_dataset_free(ds);
}

Test(datasets, byte_text_windows)
{
    make_tmp();
    char text[1000];
    for (int i = 0; i < 1000; i++) text[i] = (char)(' ' + (i * 7) % 90);
    write_bytes("a.txt", (const uint8_t *)text, 600);
    char sub[512];
    path_of(sub, sizeof sub, "z");
    cr_assert_eq(mkdir(sub, 0700), 0);
    write_bytes("z/b.txt", (const uint8_t *)text + 600, 400);
    char p[512];
    path_of(p, sizeof p, "a.txt");
    wk_dataset *f = wk_byte_text_new(p, 16, 0, 1);
    cr_assert_not_null(f, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(f), 600 / 16);
    /* the folder: a.txt then z/b.txt, concatenated = the whole text */
    wk_dataset *ds = wk_byte_text_new(tmpdir, 16, 200, 1);
    cr_assert_not_null(ds, "%s", wk_last_error());
    cr_assert_eq(wk_dataset_length(ds), 200);
    int64_t x[16], y[16], x2[16], y2[16];
    int differ = 0;
    for (int64_t i = 0; i < 200; i++) {
        cr_assert_eq(ds->get(ds, i, 0, (void *[]){x, y}), 0);
        /* locate the window in the text */
        int pos = -1;
        for (int s = 0; s + 17 <= 1000 && pos < 0; s++) {
            bool ok = true;
            for (int k = 0; k < 16 && ok; k++) ok = x[k] == (uint8_t)text[s + k];
            if (ok) pos = s;
        }
        cr_assert(pos >= 0, "window %lld is not in the text", (long long)i);
        for (int k = 0; k < 16; k++) cr_assert_eq(y[k], (uint8_t)text[pos + k + 1]);
        for (int k = 0; k + 1 < 16; k++) cr_assert_eq(y[k], x[k + 1], "targets = inputs shifted");
        cr_assert_eq(ds->get(ds, i, 0, (void *[]){x2, y2}), 0);
        cr_assert_eq(memcmp(x, x2, sizeof x), 0, "not deterministic");
        cr_assert_eq(ds->get(ds, i, 1, (void *[]){x2, y2}), 0);
        differ += memcmp(x, x2, sizeof x) != 0;
    }
    cr_assert(differ > 150, "epochs give the same windows");
    wk_dataset_free(f), wk_dataset_free(ds);
    expect_error(wk_byte_text_new(p, 599, 0, 1), "fewer than block_size + 2");
    path_of(p, sizeof p, "missing");
    expect_error(wk_byte_text_new(p, 4, 0, 1), "not found");
    remove_tmp();
}

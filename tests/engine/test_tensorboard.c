/* TensorBoard event files: CRC-32C, TFRecord framing, Event bytes against a fixture written
 * by TensorBoard's own protobufs (tools/check_tfevents.py --make-fixture), and a read-back
 * with TensorBoard's EventAccumulator when Python has it. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

TestSuite(tensorboard, .init = tu_setup, .fini = tu_teardown);

Test(tensorboard, crc32c_known_vectors)
{
    /* RFC 3720 B.4 and the usual check value */
    cr_assert_eq(wk_crc32c("123456789", 9), 0xE3069283u);
    cr_assert_eq(wk_crc32c("", 0), 0u);
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++) inc[i] = (unsigned char)i;
    cr_assert_eq(wk_crc32c(zeros, 32), 0x8A9136AAu);
    cr_assert_eq(wk_crc32c(ones, 32), 0x62A8AB43u);
    cr_assert_eq(wk_crc32c(inc, 32), 0x46DD794Eu);
}

Test(tensorboard, masked_crc_known_vectors)
{
    /* mask = ((c >> 15) | (c << 17)) + 0xa282ead8, values from a Python reference */
    cr_assert_eq(wk_tfrecord_masked_crc("123456789", 9), 0xC78AB0E5u);
    cr_assert_eq(wk_tfrecord_masked_crc("", 0), 0xA282EAD8u);
    unsigned char zeros[32] = {0};
    cr_assert_eq(wk_tfrecord_masked_crc(zeros, 32), 0x0FD7FFFAu);
}

/* The same sequence as FIXTURE_EVENTS in tools/check_tfevents.py. */
static void write_fixture_sequence(const char *path)
{
    wk_tb_writer *w = wk_tb_writer_open(path, 1700000000.5);
    cr_assert_not_null(w, "%s", wk_last_error());
    const char *tags[] = {"train/loss", "lr"};
    double vals[] = {0.5, 0.001};
    cr_assert_eq(wk_tb_writer_add_scalars(w, 1, 1700000001.25, tags, vals, 2), 0);
    cr_assert_eq(wk_tb_writer_add_scalar(w, "val/accuracy", 91.25, 2, 1700000002.0), 0);
    cr_assert_eq(wk_tb_writer_add_scalar(w, "zero", 0.0, 0, 1700000003.0), 0);
    cr_assert_eq(wk_tb_writer_add_scalar(w, "train/loss", -1.5e-7, 300, 1700000004.0), 0);
    cr_assert_eq(wk_tb_writer_close(w), 0);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = malloc((size_t)len + 1);
    cr_assert_eq(fread(p, 1, (size_t)len, f), (size_t)len);
    fclose(f);
    *n = (size_t)len;
    return p;
}

static char *tmpdir;
static void make_tmp(void)
{
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick-tb-"));
}
static void rm_tmp(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
}

Test(tensorboard, bytes_match_tensorboard_fixture)
{
    make_tmp();
    char path[128];
    snprintf(path, sizeof path, "%s/events.out.tfevents.test", tmpdir);
    write_fixture_sequence(path);
    size_t n, m;
    unsigned char *got = slurp(path, &n);
    unsigned char *want = slurp(WK_FIXTURES "/tb_events.bin", &m);
    cr_assert_eq(n, m, "file is %zu bytes, fixture %zu", n, m);
    for (size_t i = 0; i < n; i++)
        cr_assert_eq(got[i], want[i], "byte %zu: 0x%02x, fixture 0x%02x", i, got[i], want[i]);
    /* framing: the first record's length, its masked CRC, and the data CRC at the end */
    uint64_t len = 0;
    for (int i = 0; i < 8; i++) len |= (uint64_t)got[i] << (8 * i);
    uint32_t lcrc = 0, dcrc = 0;
    for (int i = 0; i < 4; i++) lcrc |= (uint32_t)got[8 + i] << (8 * i);
    for (int i = 0; i < 4; i++) dcrc |= (uint32_t)got[12 + len + i] << (8 * i);
    cr_assert_eq(lcrc, wk_tfrecord_masked_crc(got, 8));
    cr_assert_eq(dcrc, wk_tfrecord_masked_crc(got + 12, len));
    cr_assert(memmem(got + 12, len, "brain.Event:2", 13) != NULL);
    free(got);
    free(want);
    rm_tmp();
}

Test(tensorboard, event_accumulator_reads_our_file)
{
    if (system("python3 -c 'import tensorboard' >/dev/null 2>&1") != 0)
        cr_skip_test("python3 has no tensorboard (pip install tensorboard)");
    make_tmp();
    char path[128], cmd[512];
    snprintf(path, sizeof path, "%s/events.out.tfevents.test", tmpdir);
    write_fixture_sequence(path);
    snprintf(cmd, sizeof cmd, "python3 '%s/tools/check_tfevents.py' '%s' 2>&1", WK_SOURCE_ROOT,
             path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    char out[4096];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = '\0';
    cr_assert_eq(pclose(p), 0, "check_tfevents failed:\n%s", out);
    cr_assert_str_eq(out, "lr 1 0.001 1700000001.250\n"
                          "train/loss 1 0.5 1700000001.250\n"
                          "train/loss 300 -1.5e-07 1700000004.000\n"
                          "val/accuracy 2 91.25 1700000002.000\n"
                          "zero 0 0 1700000003.000\n");
    rm_tmp();
}

Test(tensorboard, open_dir_names_the_file_like_tensorboard)
{
    make_tmp();
    char dir[128];
    snprintf(dir, sizeof dir, "%s/tb", tmpdir);
    wk_tb_writer *w = wk_tb_writer_open_dir(dir, 1700000000.9);
    cr_assert_not_null(w, "%s", wk_last_error());
    char host[256];
    gethostname(host, sizeof host);
    char want[512];
    snprintf(want, sizeof want, "%s/events.out.tfevents.1700000000.%s.%ld.0", dir, host,
             (long)getpid());
    cr_assert_str_eq(wk_tb_writer_path(w), want);
    struct stat st;
    cr_assert_eq(stat(want, &st), 0);
    cr_assert_eq(st.st_size, 8 + 4 + 24 + 4, "only the file_version record so far");
    cr_assert_eq(wk_tb_writer_close(w), 0);
    rm_tmp();
}

Test(tensorboard, errors)
{
    cr_assert_null(wk_tb_writer_open("/nonexistent-wick/dir/events", 0));
    cr_assert(strstr(wk_last_error(), "/nonexistent-wick/dir/events") != NULL, "%s",
              wk_last_error());
    cr_assert_null(wk_tb_writer_open(NULL, 0));
    cr_assert_null(wk_tb_writer_open_dir("/nonexistent-wick/dir", 0));
    make_tmp();
    char path[128];
    snprintf(path, sizeof path, "%s/events.out.tfevents.x", tmpdir);
    wk_tb_writer *w = wk_tb_writer_open(path, 1);
    cr_assert_not_null(w);
    const char *tags[] = {"a", NULL};
    double vals[] = {1, 2};
    cr_assert_eq(wk_tb_writer_add_scalars(w, 1, 1, tags, vals, 2), -1);
    cr_assert(strstr(wk_last_error(), "tag 1") != NULL, "%s", wk_last_error());
    cr_assert_eq(wk_tb_writer_add_scalars(w, 1, 1, NULL, vals, 1), -1);
    cr_assert_eq(wk_tb_writer_add_scalars(NULL, 1, 1, tags, vals, 1), -1);
    cr_assert_eq(wk_tb_writer_add_scalars(w, 1, 1, NULL, NULL, 0), 0, "an empty summary");
    cr_assert_eq(wk_tb_writer_close(w), 0);
    cr_assert_eq(wk_tb_writer_close(NULL), 0);
    rm_tmp();
}

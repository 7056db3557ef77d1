/* Checkpoint files: round trip of model, EMA, optimizer and state; corruption and
 * truncation are caught before anything is restored; "auto" picks the newest valid one. */
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char *dir;

static void setup(void)
{
    tu_setup();
    cr_assert_not_null(dir = tu_tmpdir_new("wick-ckpt-"));
}

static void teardown(void)
{
    cr_assert_eq(tu_tmpdir_remove(dir), 0);
    dir = NULL;
    tu_teardown();
}

TestSuite(checkpoint, .init = setup, .fini = teardown);

typedef struct {
    wk_module *net;
    wk_optimizer *opt;
    wk_ema *ema;
} run;

static run make_run(uint64_t seed)
{
    wk_generator g = wk_generator_make(seed);
    run r;
    r.net = wk_linear_new(3, 2, true, &g);
    wk_tensor *ps[] = {wk_module_param(r.net, "weight"), wk_module_param(r.net, "bias")};
    r.opt = wk_adamw_new(ps, 2, WK_HPARAMS({"lr", 0.05}));
    r.ema = wk_ema_new(r.net, 0.9, NULL);
    return r;
}

static void train_steps(run *r, int n)
{
    for (int i = 0; i < n; i++) {
        wk_frame_begin();
        wk_tensor *x = wk_full(WK_SHAPE(4, 3), 0.1 * (i + 1), WK_DTYPE_F32);
        wk_tensor *y = wk_module_forward(r->net, x);
        cr_assert_eq(wk_backward(wk_sum(wk_mul(y, y), WK_ALL_DIMS, false)), 0, "%s",
                     wk_last_error());
        cr_assert_eq(wk_optimizer_step(r->opt), 0, "%s", wk_last_error());
        wk_optimizer_zero_grad(r->opt);
        cr_assert_eq(wk_ema_update(r->ema), 0, "%s", wk_last_error());
        wk_frame_end();
    }
}

static void free_run(run *r)
{
    wk_ema_free(r->ema);
    wk_optimizer_free(r->opt);
    wk_module_free(r->net);
}

static void expect_same(const wk_tensor *a, const wk_tensor *b)
{
    cr_assert(wk_same_shape(a, b));
    cr_assert_eq(memcmp(wk_data(a), wk_data(b), (size_t)wk_numel(a) * wk_dtype_size(a->dtype)),
                 0);
}

Test(checkpoint, round_trip_then_identical_continuation)
{
    run a = make_run(1), b = make_run(2);
    train_steps(&a, 3);
    char path[128];
    snprintf(path, sizeof path, "%s/step_00000003.safetensors", dir);
    cr_assert_eq(wk_checkpoint_save(path, a.net, a.ema, a.opt, "{\"global_step\": 3}",
                                    "{\"model\": {}}", "{\"note\": \"hi\"}"),
                 0, "%s", wk_last_error());
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), 0, "%s", wk_last_error());
    cr_assert_eq(ck.global_step, 3);
    cr_assert(strstr(ck.task, "hi"));
    cr_assert_not_null(wk_safetensors_get(&ck.st, "model.weight"));
    cr_assert_not_null(wk_safetensors_get(&ck.st, "ema.weight"));
    cr_assert_eq(wk_checkpoint_restore(&ck, b.net, b.ema, b.opt, true), 0, "%s", wk_last_error());
    wk_checkpoint_close(&ck);
    train_steps(&a, 2);
    train_steps(&b, 2);
    expect_same(wk_module_param(a.net, "weight"), wk_module_param(b.net, "weight"));
    expect_same(wk_module_param(a.net, "bias"), wk_module_param(b.net, "bias"));
    expect_same(wk_ema_get(a.ema, "weight"), wk_ema_get(b.ema, "weight"));
    free_run(&a);
    free_run(&b);
}

static void corrupt(const char *path, long offset_from_end)
{
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f);
    fseek(f, -offset_from_end, SEEK_END);
    int c = fgetc(f);
    fseek(f, -offset_from_end, SEEK_END);
    fputc(c ^ 0x55, f);
    fclose(f);
}

Test(checkpoint, corrupt_and_truncated_files_are_refused)
{
    run a = make_run(1), b = make_run(2);
    train_steps(&a, 1);
    char path[128];
    snprintf(path, sizeof path, "%s/c.safetensors", dir);
    cr_assert_eq(wk_checkpoint_save(path, a.net, NULL, a.opt, "{}", NULL, NULL), 0);
    corrupt(path, 3);
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), -1);
    cr_assert(strstr(wk_last_error(), "is corrupt: CRC-32"), "%s", wk_last_error());
    cr_assert_eq(truncate(path, 100), 0);
    cr_assert_eq(wk_checkpoint_open(path, &ck), -1);
    cr_assert(strstr(wk_last_error(), path), "%s", wk_last_error());
    /* A plain state dict is not a checkpoint. */
    cr_assert_eq(wk_state_dict_save(b.net, path, NULL, NULL, 0), 0);
    cr_assert_eq(wk_checkpoint_open(path, &ck), -1);
    cr_assert(strstr(wk_last_error(), "is not a wick checkpoint"), "%s", wk_last_error());
    free_run(&a);
    free_run(&b);
}

Test(checkpoint, find_latest_skips_broken_files)
{
    run a = make_run(1);
    char p1[128], p2[128], p3[128], found[256];
    snprintf(p1, sizeof p1, "%s/step_00000002.safetensors", dir);
    snprintf(p2, sizeof p2, "%s/step_00000004.safetensors", dir);
    snprintf(p3, sizeof p3, "%s/last.safetensors", dir);
    cr_assert_eq(wk_checkpoint_find_latest(dir, found, sizeof found), 0, "empty folder");
    cr_assert_eq(wk_checkpoint_save(p1, a.net, NULL, NULL, "{\"global_step\": 2}", NULL, NULL), 0);
    cr_assert_eq(wk_checkpoint_save(p2, a.net, NULL, NULL, "{\"global_step\": 4}", NULL, NULL), 0);
    cr_assert_eq(wk_checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_assert_str_eq(found, p2);
    corrupt(p2, 2); /* the newest is damaged: fall back to the previous one */
    cr_assert_eq(wk_checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_assert_str_eq(found, p1);
    cr_assert_eq(wk_checkpoint_save(p3, a.net, NULL, NULL, "{\"global_step\": 9}", NULL, NULL), 0);
    cr_assert_eq(wk_checkpoint_find_latest(dir, found, sizeof found), 1);
    cr_assert_str_eq(found, p3);
    cr_assert_eq(wk_checkpoint_find_latest("/nonexistent/wick", found, sizeof found), 0);
    free_run(&a);
}

Test(checkpoint, failed_save_keeps_the_old_file)
{
    run a = make_run(1);
    char path[128];
    snprintf(path, sizeof path, "%s/best.safetensors", dir);
    cr_assert_eq(wk_checkpoint_save(path, a.net, NULL, NULL, "{\"global_step\": 1}", NULL, NULL),
                 0);
    struct stat before, after;
    stat(path, &before);
    cr_assert_eq(wk_checkpoint_save(path, NULL, NULL, NULL, NULL, NULL, NULL), -1);
    stat(path, &after);
    cr_assert_eq(before.st_size, after.st_size);
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), 0, "%s", wk_last_error());
    wk_checkpoint_close(&ck);
    free_run(&a);
}

/* The Runner under DDP, with real processes under mpirun: 2 ranks resumed after a stop or
 * a kill end with the uninterrupted 2-rank run's parameters; early stopping stops both
 * ranks at the same step; a failure on rank 1 ends the job with its message. */
#include "../test_util.h"
#include "spawn.h"

TestSuite(runner_ddp, .init = tu_setup, .fini = tu_teardown);

static sp_result job(const char *dir, const char *name, const char *const *extra, double limit)
{
    char work[512], out[512];
    snprintf(work, sizeof work, "%s/%s", dir, name);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    const char *args[16] = {work, out, "4"};
    int n = 3;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    return sp_mpirun(2, "worker_runner", args, limit);
}

static void job_ok(const char *dir, const char *name, const char *const *extra)
{
    sp_result r = job(dir, name, extra, 120);
    cr_assert(r.exited && r.code == 0, "job %s failed (%s %d)", name,
              r.timed_out ? "timed out" : "status", r.code);
    sp_free(&r);
}

static void expect_same(const char *dir, const char *a, const char *b)
{
    char pa[600], pb[600];
    snprintf(pa, sizeof pa, "%s/%s.safetensors", dir, a);
    snprintf(pb, sizeof pb, "%s/%s.safetensors", dir, b);
    char *x = sp_read_file(pa), *y = sp_read_file(pb);
    struct stat sa, sb;
    cr_assert(stat(pa, &sa) == 0 && stat(pb, &sb) == 0, "%s or %s missing", pa, pb);
    cr_assert_eq(sa.st_size, sb.st_size);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    for (off_t i = 0; i < sa.st_size; i++)
        cr_assert_eq(fgetc(fa), fgetc(fb), "%s and %s differ at byte %lld", pa, pb, (long long)i);
    fclose(fa);
    fclose(fb);
    free(x);
    free(y);
}

Test(runner_ddp, resume_after_stop_and_after_kill_equals_uninterrupted)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI");
    char *dir = sp_tempdir();
    job_ok(dir, "full", (const char *[]){"--epochs", "24", NULL});
    /* the ranks stay identical */
    expect_same(dir, "full.rank0.model", "full.rank1.model");
    /* 64 samples / 2 ranks / batch 4: 8 steps per epoch; step 13 is mid-epoch 2 */
    job_ok(dir, "split", (const char *[]){"--epochs", "24", "--stop-at", "13", NULL});
    job_ok(dir, "split", (const char *[]){"--epochs", "24", "--resume", NULL});
    expect_same(dir, "full.model", "split.model");
    expect_same(dir, "split.rank0.model", "split.rank1.model");
    /* killed while it writes a checkpoint every step */
    sp_result r = job(dir, "killed",
                      (const char *[]){"--epochs", "24", "--save-interval", "1", NULL}, 2.0);
    bool killed = r.timed_out;
    sp_free(&r);
    job_ok(dir, "killed", (const char *[]){"--epochs", "24", "--resume", NULL});
    expect_same(dir, "full.model", "killed.model");
    if (!killed) fprintf(stderr, "note: the job to kill finished within the time limit\n");
    sp_rmdir(dir);
}

Test(runner_ddp, early_stopping_stops_both_ranks_at_the_same_step)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI");
    char *dir = sp_tempdir();
    sp_result r = job(dir, "es", (const char *[]){"--epochs", "50", "--early-stop", NULL}, 120);
    cr_assert(r.exited && r.code == 0, "status %d", r.code);
    /* min_delta 10 on val/loss: evaluations 2 and 3 do not improve: stop after epoch 3 */
    cr_assert(strstr(r.output, "rank 0: step 24 reason early_stop"), "rank 0 did not stop at 24");
    cr_assert(strstr(r.output, "rank 1: step 24 reason early_stop"), "rank 1 did not stop at 24");
    sp_free(&r);
    sp_rmdir(dir);
}

Test(runner_ddp, failure_on_one_rank_ends_the_job_with_its_message)
{
    if (!sp_have_mpirun()) cr_skip_test("no MPI");
    char *dir = sp_tempdir();
    sp_result r = job(dir, "fail", (const char *[]){"--fail-at", "5", NULL}, 60);
    cr_assert_not(r.timed_out, "the job hung");
    cr_assert(!r.exited || r.code != 0, "exit 0 although rank 1 failed");
    cr_assert(strstr(r.output, "rank 0: worker_runner: rank 1 failed: runner: hook \"worker\" "
                               "on_batch_end: forced failure on rank 1 at step 5"),
              "rank 0 does not report rank 1's failure");
    cr_assert(strstr(r.output, "rank 0: step 5 reason error"), "rank 0 did not stop at step 5");
    sp_free(&r);
    sp_rmdir(dir);
}

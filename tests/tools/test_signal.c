/* Ctrl-C during `wick train`: SIGINT/SIGTERM finish the current step, write a resumable
 * `last` checkpoint and exit 130, and the run resumes from it; a second SIGINT exits at
 * once (130) and leaves every checkpoint whole. */
#include "run.h"
#include "wick.h"

static char *dir;

static void setup(void)
{
    dir = cli_tempdir();
    cli_write_text(dir, "tiny.json", CLI_TINY);
}

static void teardown(void) { cli_rmdir(dir); }

TestSuite(signal, .init = setup, .fini = teardown);

/* Start a training that would run for hours, and wait until it has logged a train record
 * (so it is past its setup and inside the loop). *run_dir gets its run folder. */
static cli_proc start_long(const char *work, const char *const *extra, char *run_dir,
                           size_t n)
{
    const char *args[40] = {"train", "tiny.json", "--threads", "1", "--work-dir", work,
                            "--set", "runner.max_epochs=1000000"};
    int k = 8;
    for (int i = 0; extra && extra[i]; i++) args[k++] = extra[i];
    args[k] = NULL;
    cli_proc p = cli_start(dir, args);
    double t0 = cli_now();
    while (!cli_run_dir(cli_path(dir, work), -1, run_dir, n)) {
        if (cli_ended(&p) || cli_now() - t0 > CLI_TIMEOUT_S) {
            cli_result r = cli_wait(&p);
            cr_assert_fail("wick train ended (%d) before it made its run folder: %s", r.code, r.err);
        }
        usleep(10000);
    }
    if (!cli_wait_for_text(cli_path(run_dir, "scalars.jsonl"), "\"event\":\"train\"", &p)) {
        kill(p.pid, SIGKILL);
        cli_result r = cli_wait(&p);
        cr_assert_fail("wick train logged no train record (exit %d): %s", r.code, r.err);
    }
    return p;
}

/* The run is interrupted by sig: exit 130, last.safetensors at the step the end record
 * names, reason "signal". */
static void expect_interrupted(cli_proc *p, int sig, const char *work, const char *run_dir)
{
    cr_assert_eq(kill(p->pid, sig), 0);
    cli_result r = cli_wait(p);
    cli_expect(&r, 130, "wick train after a signal",
               (const char *[]){"interrupted: finishing the current step",
                                "runner: interrupted by a signal at step", "--resume", NULL});
    cr_expect(!strstr(r.err, "interrupted again"));
    cli_result_free(&r);
    char path[4300];
    snprintf(path, sizeof path, "%s/%s/checkpoints/last.safetensors", dir, work);
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), 0, "last.safetensors: %s", wk_last_error());
    cr_expect_gt(ck.global_step, 0);
    const char *jsonl = cli_path(run_dir, "scalars.jsonl");
    cJSON *end = cli_last_record(jsonl, NULL);
    cr_assert_not_null(end, "no records in %s", jsonl);
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive(end, "event");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(end, "reason");
    cr_expect(cJSON_IsString(ev) && !strcmp(ev->valuestring, "end"), "the last record is the end");
    cr_expect(cJSON_IsString(reason) && !strcmp(reason->valuestring, "signal"),
              "end reason: %s", cJSON_IsString(reason) ? reason->valuestring : "?");
    cr_expect_eq(cli_num(end, "step"), (double)ck.global_step,
                 "the end record's step is the checkpoint's");
    cJSON *saved = cli_last_record(jsonl, "checkpoint");
    const cJSON *kind = cJSON_GetObjectItemCaseSensitive(saved, "kind");
    cr_expect(cJSON_IsString(kind) && !strcmp(kind->valuestring, "last"));
    cr_expect_eq(cli_num(saved, "step"), (double)ck.global_step);
    cJSON_Delete(saved);
    cJSON_Delete(end);
    wk_checkpoint_close(&ck);
}

typedef struct {
    int64_t step, epoch, iter;
} position;

static position position_of(const char *path)
{
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), 0, "%s: %s", path, wk_last_error());
    cJSON *state = cJSON_Parse(ck.state);
    position p = {ck.global_step, (int64_t)cli_num(state, "epoch"),
                  (int64_t)cli_num(state, "iter_in_epoch")};
    cJSON_Delete(state);
    wk_checkpoint_close(&ck);
    return p;
}

/* Resume work from the checkpoint `file` (the newest) with max_epochs lowered to stop
 * one epoch after its epoch: the log names the checkpoint and its position (epoch
 * 1-based), and the run ends at max_epochs with 4 steps per epoch. */
static void expect_resumes(const char *work, const char *file)
{
    char ck_path[4300];
    snprintf(ck_path, sizeof ck_path, "%s/%s/checkpoints/%s", dir, work, file);
    position at = position_of(ck_path);
    cr_expect_eq(at.epoch, (at.step + 3) / 4, "step %lld is in epoch %lld, not %lld",
                 (long long)at.step, (long long)(at.step + 3) / 4, (long long)at.epoch);
    char set[64], line[600];
    snprintf(set, sizeof set, "runner.max_epochs=%lld", (long long)at.epoch + 1);
    snprintf(line, sizeof line, "Resumed from %s/checkpoints/%s at step %lld (epoch %lld, "
             "iteration %lld)", work, file, (long long)at.step, (long long)at.epoch,
             (long long)at.iter);
    cli_result r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1",
                                                 "--work-dir", work, "--resume", "--set", set,
                                                 NULL});
    cli_expect(&r, 0, "wick train --resume after the signal", (const char *[]){line, NULL});
    cli_result_free(&r);
    char run_dir[4096];
    cr_assert(cli_run_dir(cli_path(dir, work), -1, run_dir, sizeof run_dir));
    cJSON *first = NULL;
    char *text = cli_read_file(cli_path(run_dir, "scalars.jsonl"), NULL);
    first = cJSON_Parse(text ? text : "");
    cr_expect_gt(cli_num(first, "step"), (double)at.step, "the resumed run replayed a step");
    cJSON_Delete(first);
    free(text);
    cJSON *end = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "end");
    const cJSON *reason = cJSON_GetObjectItemCaseSensitive(end, "reason");
    cr_expect(cJSON_IsString(reason) && !strcmp(reason->valuestring, "max_epochs"));
    cr_expect_eq(cli_num(end, "step"), (double)(at.epoch + 1) * 4, "4 steps per epoch");
    cJSON_Delete(end);
}

Test(signal, sigint_writes_last_and_the_run_resumes)
{
    char run_dir[4096];
    cli_proc p = start_long("w", NULL, run_dir, sizeof run_dir);
    expect_interrupted(&p, SIGINT, "w", run_dir);
    expect_resumes("w", "last.safetensors");
}

Test(signal, sigterm_too)
{
    char run_dir[4096];
    cli_proc p = start_long("w", NULL, run_dir, sizeof run_dir);
    expect_interrupted(&p, SIGTERM, "w", run_dir);
    expect_resumes("w", "last.safetensors");
}

/* The first SIGINT waits for the end of the accumulation window, which is here a whole
 * epoch of 100000 micro-batches; the second must not wait for it: the process exits with
 * 130 and no `last` was written (the window never ended). */
Test(signal, second_sigint_exits_at_once)
{
    cli_write_text(dir, "long.json",
                   "{\"_base_\": \"tiny.json\",\n"
                   " \"train_dataloader\": {\"dataset\": {\"size\": 100000}, \"batch_size\": 1},\n"
                   " \"runner\": {\"max_epochs\": 1, \"accumulate\": 100000, \"log_interval\": 20}}\n");
    cli_proc p = cli_start(dir, (const char *[]){"train", "long.json", "--threads", "1",
                                                 "--work-dir", "w", NULL});
    char run_dir[4096];
    double t0 = cli_now();
    while (!cli_run_dir(cli_path(dir, "w"), -1, run_dir, sizeof run_dir) && !cli_ended(&p) &&
           cli_now() - t0 < CLI_TIMEOUT_S)
        usleep(10000);
    cr_assert(cli_wait_for_text(cli_path(run_dir, "scalars.jsonl"), "\"event\":\"train\"", &p),
              "no train record");
    cr_assert_eq(kill(p.pid, SIGINT), 0);
    /* The second only once the first was handled (two pending SIGINTs would merge). */
    cr_assert(cli_wait_for_text(p.err_path, "interrupted: finishing", &p),
              "the first SIGINT was not handled");
    cr_assert_eq(kill(p.pid, SIGINT), 0);
    cli_result r = cli_wait(&p);
    cli_expect(&r, 130, "wick train after two SIGINTs",
               (const char *[]){"interrupted again: exiting now", NULL});
    cr_expect(!cli_exists(cli_path(dir, "w/checkpoints/last.safetensors")),
              "it waited for the window's end and wrote last");
    cli_result_free(&r);
}

/* Two SIGINTs in a row while a checkpoint is written at every step: whichever way they
 * land (merged into one, or the second in the middle of a write), every *.safetensors in
 * checkpoints/ opens (header, sizes, CRC) and the run resumes from the newest. */
Test(signal, double_sigint_leaves_every_checkpoint_whole)
{
    char run_dir[4096];
    cli_proc p = start_long("w", (const char *[]){"--set", "runner.save_interval=1", "--set",
                                                  "runner.max_keep=3", NULL},
                            run_dir, sizeof run_dir);
    kill(p.pid, SIGINT);
    kill(p.pid, SIGINT);
    cli_result r = cli_wait(&p);
    cli_expect(&r, 130, "wick train after two SIGINTs", (const char *[]){"interrupted", NULL});
    cli_result_free(&r);
    const char *ckdir = cli_path(dir, "w/checkpoints");
    DIR *d = opendir(ckdir);
    cr_assert_not_null(d);
    int opened = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 12 || strcmp(e->d_name + len - 12, ".safetensors")) continue;
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", ckdir, e->d_name);
        wk_checkpoint ck;
        cr_expect_eq(wk_checkpoint_open(path, &ck), 0, "%s: %s", e->d_name, wk_last_error());
        wk_checkpoint_close(&ck);
        opened++;
    }
    closedir(d);
    cr_expect_geq(opened, 1, "no checkpoint at all");
    char newest[4400];
    cr_assert_eq(wk_checkpoint_find_latest(ckdir, newest, sizeof newest), 1);
    expect_resumes("w", strrchr(newest, '/') + 1);
}

/* Training logs: line formats, eta, run folders, run.log, scalars.jsonl, the progress bar,
 * ranks. A fixed clock (2026/12/02 10:00:00 UTC) makes every output exact. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "test_util.h"

static double fake_now = 1796205600.0; /* 2026-12-02 10:00:00 UTC */
static double fake_clock(void *user)
{
    (void)user;
    return fake_now;
}

static void setup(void)
{
    setenv("TZ", "UTC", 1);
    tzset();
    fake_now = 1796205600.0;
    tu_setup();
}

TestSuite(logger, .init = setup, .fini = tu_teardown);

static char *tmpdir;
static void make_tmp(void)
{
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick-log-"));
}
static void rm_tmp(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static char *slurp_stream(FILE *f)
{
    fflush(f);
    long n = ftell(f);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    cr_assert_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    return s;
}

static wk_log_train sample_train(void)
{
    wk_log_train r = WK_LOG_TRAIN_INIT;
    r.epoch = 3, r.iter_in_epoch = 100, r.epoch_length = 469;
    r.global_step = 1038, r.max_steps = 5000;
    r.lr = 1e-3, r.eta_s = 62.7, r.time_s = 0.0123, r.data_time_s = 0.0004;
    r.grad_norm = 1.23, r.loss = 0.4567;
    return r;
}

/* ---- pure helpers ---- */

Test(logger, eta_formatting_follows_python_timedelta)
{
    char b[64];
    struct {
        double s;
        const char *want;
    } cases[] = {
        {0, "0:00:00"},          {62, "0:01:02"},        {62.99, "0:01:02"},
        {3599, "0:59:59"},       {43200, "12:00:00"},    {86399, "23:59:59"},
        {86400, "1 day, 0:00:00"}, {93784, "1 day, 2:03:04"}, {2 * 86400 + 5, "2 days, 0:00:05"},
        {NAN, "0:00:00"},        {-5, "0:00:00"},        {INFINITY, "0:00:00"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_log_format_eta(b, sizeof b, cases[i].s);
        cr_assert_str_eq(b, cases[i].want, "eta(%g)", cases[i].s);
    }
}

Test(logger, eta_estimator)
{
    cr_assert_float_eq(wk_log_eta(10.0, 100, 50), 5.0, 1e-12);
    cr_assert_float_eq(wk_log_eta(3.0, 3, 1000), 1000.0, 1e-12);
    cr_assert(isnan(wk_log_eta(1.0, 0, 10)));
    cr_assert_eq(wk_log_eta(1.0, 10, 0), 0.0);
}

Test(logger, train_line_epoch_mode)
{
    wk_log_train r = sample_train();
    char b[512];
    int n = wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &r);
    const char *want = "Epoch(train) [3][100/469]  lr: 1.0000e-03  eta: 0:01:02  time: 0.0123"
                       "  data_time: 0.0004  grad_norm: 1.2300  loss: 0.4567";
    cr_assert_str_eq(b, want);
    cr_assert_eq(n, (int)strlen(want));
}

Test(logger, train_line_step_mode)
{
    wk_log_train r = sample_train();
    r.global_step = 1200;
    char b[512];
    wk_log_format_train(b, sizeof b, WK_LOG_MODE_STEP, &r);
    cr_assert_str_eq(b, "Iter(train) [1200/5000]  lr: 1.0000e-03  eta: 0:01:02  time: 0.0123"
                        "  data_time: 0.0004  grad_norm: 1.2300  loss: 0.4567");
    r.max_steps = 0;
    wk_log_format_train(b, sizeof b, WK_LOG_MODE_STEP, &r);
    cr_assert(!strncmp(b, "Iter(train) [1200]  lr:", 23), "%s", b);
}

Test(logger, train_line_extra_losses_and_absent_fields)
{
    wk_log_train r = sample_train();
    r.grad_norm = NAN;
    r.eta_s = 93784;
    r.memory_mb = 1211.6;
    r.n_extra = 2;
    r.extra_names[0] = "loss_cls", r.extra_values[0] = 0.1;
    r.extra_names[1] = "loss_bbox", r.extra_values[1] = 0.35671;
    char b[512];
    wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &r);
    cr_assert_str_eq(b, "Epoch(train) [3][100/469]  lr: 1.0000e-03  eta: 1 day, 2:03:04"
                        "  time: 0.0123  data_time: 0.0004  memory: 1212  loss: 0.4567"
                        "  loss_cls: 0.1000  loss_bbox: 0.3567");
    /* nothing optional at all; unknown epoch length; a NaN loss still prints */
    wk_log_train m = WK_LOG_TRAIN_INIT;
    m.epoch = 1, m.iter_in_epoch = 7;
    wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &m);
    cr_assert_str_eq(b, "Epoch(train) [1][7]  loss: nan");
}

Test(logger, train_line_cut_to_buffer_and_bad_records)
{
    wk_log_train r = sample_train();
    char b[16];
    int n = wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &r);
    cr_assert_gt(n, 100, "returns the full length");
    cr_assert_str_eq(b, "Epoch(train) [3");
    r.n_extra = WK_LOG_MAX_EXTRA + 1;
    cr_assert_eq(wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &r), -1);
    cr_assert(strstr(wk_last_error(), "n_extra") != NULL, "%s", wk_last_error());
    r.n_extra = 1;
    r.extra_names[0] = NULL;
    cr_assert_eq(wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, &r), -1);
    cr_assert(strstr(wk_last_error(), "extra_names[0]") != NULL, "%s", wk_last_error());
    cr_assert_eq(wk_log_format_train(b, sizeof b, WK_LOG_MODE_EPOCH, NULL), -1);
}

static const char *eval_names[] = {"val/accuracy", "val/loss", "test/accuracy",
                                   "val_ema/accuracy", "val_ema/loss"};
static const double eval_values[] = {91.23, 0.2512, 90.5, 91.5, 0.25};
static const int64_t eval_iters[] = {79, 79, 40, 79, 79};

Test(logger, eval_lines_one_per_stage)
{
    wk_log_eval e = {.epoch = 3, .global_step = 1407, .max_steps = 5000, .n = 5,
                     .names = eval_names, .values = eval_values, .iters = eval_iters};
    char b[1024];
    wk_log_format_eval(b, sizeof b, WK_LOG_MODE_EPOCH, &e);
    cr_assert_str_eq(b, "Epoch(val) [3][79/79]  accuracy: 91.2300  loss: 0.2512\n"
                        "Epoch(test) [3][40/40]  accuracy: 90.5000\n"
                        "Epoch(val_ema) [3][79/79]  accuracy: 91.5000  loss: 0.2500");
    wk_log_format_eval(b, sizeof b, WK_LOG_MODE_STEP, &e);
    cr_assert_str_eq(b, "Iter(val) [1407/5000]  accuracy: 91.2300  loss: 0.2512\n"
                        "Iter(test) [1407/5000]  accuracy: 90.5000\n"
                        "Iter(val_ema) [1407/5000]  accuracy: 91.5000  loss: 0.2500");
    /* no batch counts, a bare name (stage val) */
    const char *names[] = {"accuracy"};
    double vals[] = {50};
    wk_log_eval f = {.epoch = 2, .n = 1, .names = names, .values = vals};
    wk_log_format_eval(b, sizeof b, WK_LOG_MODE_EPOCH, &f);
    cr_assert_str_eq(b, "Epoch(val) [2]  accuracy: 50.0000");
    f.n = 0;
    cr_assert_eq(wk_log_format_eval(b, sizeof b, WK_LOG_MODE_EPOCH, &f), 0);
    cr_assert_str_eq(b, "");
    f.n = 1, f.names = NULL;
    cr_assert_eq(wk_log_format_eval(b, sizeof b, WK_LOG_MODE_EPOCH, &f), -1);
}

Test(logger, enum_names)
{
    cr_assert_str_eq(wk_log_ckpt_kind_name(WK_LOG_CKPT_BEST), "best");
    cr_assert_str_eq(wk_log_ckpt_kind_name(WK_LOG_CKPT_COUNT), "?");
    cr_assert_str_eq(wk_log_end_reason_name(WK_LOG_END_EARLY_STOP), "early_stop");
    cr_assert_str_eq(wk_log_end_reason_name(WK_LOG_END_NAN), "nan");
    cr_assert_str_eq(wk_log_end_reason_name((wk_log_end_reason)-1), "?");
}

/* ---- the logger with files ---- */

static wk_logger *open_in(const char *work_dir, FILE *console, bool tb)
{
    wk_logger_opts o = {.work_dir = work_dir, .mode = WK_LOG_MODE_EPOCH, .console = console,
                        .tensorboard = tb, .progress = WK_LOG_PROGRESS_OFF,
                        .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    cr_assert_not_null(lg, "%s", wk_last_error());
    return lg;
}

Test(logger, run_folder_is_timestamped_and_unique)
{
    make_tmp();
    char work[128], want[160];
    snprintf(work, sizeof work, "%s/a/b/work", tmpdir); /* parents are created */
    FILE *con = tmpfile();
    wk_logger *a = open_in(work, con, false), *b = open_in(work, con, false);
    wk_logger *c = open_in(work, con, false);
    snprintf(want, sizeof want, "%s/20261202_100000", work);
    cr_assert_str_eq(wk_logger_run_dir(a), want);
    snprintf(want, sizeof want, "%s/20261202_100000_1", work);
    cr_assert_str_eq(wk_logger_run_dir(b), want);
    snprintf(want, sizeof want, "%s/20261202_100000_2", work);
    cr_assert_str_eq(wk_logger_run_dir(c), want);
    wk_logger_close(a);
    wk_logger_close(b);
    wk_logger_close(c);
    fclose(con);
    rm_tmp();
}

static void write_session(wk_logger *lg)
{
    wk_log_train r = sample_train();
    r.n_extra = 1;
    r.extra_names[0] = "loss_cls", r.extra_values[0] = 0.125;
    cr_assert_eq(wk_logger_train(lg, &r), 0, "%s", wk_last_error());
    fake_now += 1;
    wk_log_eval e = {.epoch = 3, .global_step = 1407, .n = 5, .names = eval_names,
                     .values = eval_values, .iters = eval_iters};
    cr_assert_eq(wk_logger_eval(lg, &e), 0, "%s", wk_last_error());
    cr_assert_eq(wk_logger_checkpoint(lg, WK_LOG_CKPT_BEST, "w/checkpoints/best.safetensors",
                                      1407, 3, "best val/accuracy 91.23 at step 1407"),
                 0);
    cr_assert_eq(wk_logger_early_stop(lg, 1407, 3, "val/loss", 0.001, 3, 0.2412, 938), 0);
    cr_assert_eq(wk_logger_warn(lg, "two\nlines"), 0);
    cr_assert_eq(wk_logger_end(lg, WK_LOG_END_EARLY_STOP, 1407, 3), 0);
}

Test(logger, run_log_and_console_lines)
{
    make_tmp();
    FILE *con = tmpfile();
    wk_logger *lg = open_in(tmpdir, con, false);
    write_session(lg);
    char path[256];
    snprintf(path, sizeof path, "%s/run.log", wk_logger_run_dir(lg));
    wk_logger_close(lg);
    char *log = slurp(path);
    const char *want =
        "2026/12/02 10:00:00 - wick - INFO - Epoch(train) [3][100/469]  lr: 1.0000e-03  eta: "
        "0:01:02  time: 0.0123  data_time: 0.0004  grad_norm: 1.2300  loss: 0.4567  loss_cls: "
        "0.1250\n"
        "2026/12/02 10:00:01 - wick - INFO - Epoch(val) [3][79/79]  accuracy: 91.2300  loss: "
        "0.2512\n"
        "2026/12/02 10:00:01 - wick - INFO - Epoch(test) [3][40/40]  accuracy: 90.5000\n"
        "2026/12/02 10:00:01 - wick - INFO - Epoch(val_ema) [3][79/79]  accuracy: 91.5000  "
        "loss: 0.2500\n"
        "2026/12/02 10:00:01 - wick - INFO - Saved checkpoint: w/checkpoints/best.safetensors "
        "(best val/accuracy 91.23 at step 1407)\n"
        "2026/12/02 10:00:01 - wick - INFO - Early stopping: val/loss did not improve by 0.001 "
        "for 3 evaluations (best 0.2412 at step 938)\n"
        "2026/12/02 10:00:01 - wick - WARNING - two\n"
        "2026/12/02 10:00:01 - wick - WARNING - lines\n"
        "2026/12/02 10:00:01 - wick - INFO - Training ended: early_stop at step 1407, epoch 3\n";
    cr_assert_str_eq(log, want);
    /* the console: MMEngine's shorter stamp, the same messages, no colours off a terminal */
    char *out = slurp_stream(con);
    cr_assert(!strncmp(out, "12/02 10:00:00 - wick - INFO - Epoch(train) [3][100/469]  lr: ",
                       62), "%s", out);
    cr_assert(strstr(out, "\n12/02 10:00:01 - wick - WARNING - lines\n") != NULL, "%s", out);
    int lines = 0;
    for (char *p = out; *p; p++) lines += *p == '\n';
    cr_assert_eq(lines, 9);
    free(out);
    free(log);
    fclose(con);
    rm_tmp();
}

static double num(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsNumber(v), "no number \"%s\"", k);
    return v->valuedouble;
}
static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    cr_assert(cJSON_IsString(v), "no string \"%s\"", k);
    return v->valuestring;
}
static int nkeys(const cJSON *o)
{
    int n = 0;
    for (const cJSON *c = o->child; c; c = c->next) n++;
    return n;
}

Test(logger, scalars_jsonl_records)
{
    make_tmp();
    wk_logger *lg = open_in(tmpdir, NULL, false);
    wk_logger_close(lg); /* quiet console below: stdout stays clean */
    wk_logger_opts o = {.work_dir = tmpdir, .quiet = true, .clock = fake_clock};
    lg = wk_logger_open(&o);
    cr_assert_not_null(lg);
    write_session(lg);
    char path[256];
    snprintf(path, sizeof path, "%s/scalars.jsonl", wk_logger_run_dir(lg));
    wk_logger_close(lg);
    char *text = slurp(path);
    cJSON *rec[8];
    int n = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        cr_assert_lt(n, 8);
        rec[n] = cJSON_Parse(line);
        cr_assert_not_null(rec[n], "line %d is not JSON: %s", n + 1, line);
        n++;
    }
    cr_assert_eq(n, 5, "train, eval, checkpoint, early_stop, end");

    cJSON *t = rec[0];
    cr_assert_str_eq(str(t, "event"), "train");
    cr_assert_eq(num(t, "step"), 1038);
    cr_assert_eq(num(t, "epoch"), 3);
    cr_assert_eq(num(t, "iter"), 100);
    cr_assert_eq(num(t, "lr"), 1e-3);
    cr_assert_eq(num(t, "train/loss"), 0.4567);
    cr_assert_eq(num(t, "train/loss_cls"), 0.125);
    cr_assert_eq(num(t, "grad_norm"), 1.23);
    cr_assert_eq(num(t, "time"), 0.0123);
    cr_assert_eq(num(t, "data_time"), 0.0004);
    cr_assert_eq(nkeys(t), 10, "no other keys (memory absent)");
    cr_assert_str_eq(t->child->string, "event", "event comes first");

    cJSON *e = rec[1];
    cr_assert_str_eq(str(e, "event"), "eval");
    cr_assert_eq(num(e, "step"), 1407);
    cr_assert_eq(num(e, "epoch"), 3);
    for (int i = 0; i < 5; i++) cr_assert_eq(num(e, eval_names[i]), eval_values[i]);
    cr_assert_eq(nkeys(e), 8);

    cJSON *c = rec[2];
    cr_assert_str_eq(str(c, "event"), "checkpoint");
    cr_assert_eq(num(c, "step"), 1407);
    cr_assert_str_eq(str(c, "kind"), "best");
    cr_assert_str_eq(str(c, "path"), "w/checkpoints/best.safetensors");

    cJSON *s = rec[3];
    cr_assert_str_eq(str(s, "event"), "early_stop");
    cr_assert_str_eq(str(s, "target"), "val/loss");
    cr_assert_eq(num(s, "patience"), 3);
    cr_assert_eq(num(s, "min_delta"), 0.001);
    cr_assert_eq(num(s, "best"), 0.2412);
    cr_assert_eq(num(s, "best_step"), 938);

    cJSON *z = rec[4];
    cr_assert_str_eq(str(z, "event"), "end");
    cr_assert_eq(num(z, "step"), 1407);
    cr_assert_eq(num(z, "epoch"), 3);
    cr_assert_str_eq(str(z, "reason"), "early_stop");
    for (int i = 0; i < n; i++) cJSON_Delete(rec[i]);
    free(text);
    rm_tmp();
}

Test(logger, records_are_on_disk_before_close)
{
    make_tmp();
    wk_logger_opts o = {.work_dir = tmpdir, .quiet = true, .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    wk_log_train r = sample_train();
    wk_logger_train(lg, &r);
    char path[256];
    snprintf(path, sizeof path, "%s/scalars.jsonl", wk_logger_run_dir(lg));
    char *text = slurp(path); /* a killed run keeps what it logged */
    const char *head = "{\"event\":\"train\",\"step\":1038,\"epoch\":3,";
    cr_assert(strncmp(text, head, strlen(head)) == 0, "%s", text);
    cr_assert_eq(text[strlen(text) - 1], '\n');
    free(text);
    wk_logger_close(lg);
    rm_tmp();
}

Test(logger, tensorboard_file_in_run_folder)
{
    make_tmp();
    wk_logger_opts o = {.work_dir = tmpdir, .quiet = true, .tensorboard = true,
                        .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    cr_assert_not_null(lg, "%s", wk_last_error());
    write_session(lg);
    char dir[256];
    snprintf(dir, sizeof dir, "%s/tb", wk_logger_run_dir(lg));
    wk_logger_close(lg);
    DIR *d = opendir(dir);
    cr_assert_not_null(d);
    int files = 0;
    char name[256] = "";
    for (struct dirent *e; (e = readdir(d));) {
        if (e->d_name[0] == '.') continue;
        files++;
        snprintf(name, sizeof name, "%s", e->d_name);
    }
    closedir(d);
    cr_assert_eq(files, 1);
    cr_assert(!strncmp(name, "events.out.tfevents.1796205600.", 31), "%s", name);
    if (system("python3 -c 'import tensorboard' >/dev/null 2>&1") == 0) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "python3 '%s/tools/check_tfevents.py' '%s' 2>&1",
                 WK_SOURCE_ROOT, dir);
        FILE *p = popen(cmd, "r");
        char out[4096];
        size_t n = fread(out, 1, sizeof out - 1, p);
        out[n] = '\0';
        cr_assert_eq(pclose(p), 0, "%s", out);
        cr_assert(strstr(out, "train/loss 1038 0.4567 1796205600.000\n") != NULL, "%s", out);
        cr_assert(strstr(out, "train/loss_cls 1038 0.125 ") != NULL, "%s", out);
        cr_assert(strstr(out, "lr 1038 0.001 ") != NULL, "%s", out);
        cr_assert(strstr(out, "grad_norm 1038 1.23 ") != NULL, "%s", out);
        cr_assert(strstr(out, "val_ema/loss 1407 0.25 1796205601.000\n") != NULL, "%s", out);
        cr_assert(strstr(out, "test/accuracy 1407 90.5 ") != NULL, "%s", out);
    }
    rm_tmp();
}

/* ---- console-only behaviour ---- */

Test(logger, progress_bar_throttled_and_cleared)
{
    FILE *con = tmpfile();
    wk_logger_opts o = {.console = con, .progress = WK_LOG_PROGRESS_ON, .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    cr_assert_null(wk_logger_run_dir(lg));
    wk_log_train r = sample_train();
    r.iter_in_epoch = 117;
    wk_logger_progress(lg, &r);  /* drawn */
    fake_now += 0.05;
    wk_logger_progress(lg, &r);  /* too soon */
    fake_now += 0.06;
    r.iter_in_epoch = 469;
    wk_logger_progress(lg, &r);  /* drawn */
    wk_logger_info(lg, "hello"); /* clears the bar first */
    wk_logger_close(lg);
    char *out = slurp_stream(con);
    cr_assert_str_eq(out,
                     "\r\033[KEpoch(train) [3][117/469]  24% [######...................]"
                     "  eta: 0:01:02  loss: 0.4567"
                     "\r\033[KEpoch(train) [3][469/469] 100% [#########################]"
                     "  eta: 0:01:02  loss: 0.4567"
                     "\r\033[K12/02 10:00:00 - wick - INFO - hello\n");
    free(out);
    fclose(con);
}

Test(logger, progress_off_and_auto_off_a_terminal)
{
    FILE *con = tmpfile();
    wk_logger_opts o = {.console = con, .clock = fake_clock}; /* AUTO: tmpfile is no tty */
    wk_logger *lg = wk_logger_open(&o);
    wk_log_train r = sample_train();
    wk_logger_progress(lg, &r);
    wk_logger_close(lg);
    cr_assert_eq(ftell(con), 0);
    fclose(con);
}

Test(logger, step_mode_progress)
{
    FILE *con = tmpfile();
    wk_logger_opts o = {.mode = WK_LOG_MODE_STEP, .console = con,
                        .progress = WK_LOG_PROGRESS_ON, .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    wk_log_train r = WK_LOG_TRAIN_INIT;
    r.global_step = 2500, r.max_steps = 5000;
    wk_logger_progress(lg, &r);
    wk_logger_close(lg);
    char *out = slurp_stream(con);
    cr_assert_str_eq(out, "\r\033[KIter(train) [2500/5000]  50% [############.............]"
                          "\r\033[K");
    free(out);
    fclose(con);
}

Test(logger, other_ranks_are_silent_unless_asked)
{
    make_tmp();
    FILE *con = tmpfile();
    wk_logger_opts o = {.work_dir = tmpdir, .console = con, .rank = 1, .tensorboard = true,
                        .clock = fake_clock};
    wk_logger *lg = wk_logger_open(&o);
    cr_assert_not_null(lg);
    cr_assert_null(wk_logger_run_dir(lg));
    write_session(lg);
    wk_logger_close(lg);
    cr_assert_eq(ftell(con), 0);
    DIR *d = opendir(tmpdir);
    int entries = 0;
    for (struct dirent *e; (e = readdir(d));) entries += e->d_name[0] != '.';
    closedir(d);
    cr_assert_eq(entries, 0, "rank 1 creates no run folder");
    o.all_ranks = true;
    lg = wk_logger_open(&o);
    wk_logger_info(lg, "hi");
    wk_logger_close(lg);
    char *out = slurp_stream(con);
    cr_assert_str_eq(out, "12/02 10:00:01 - wick - INFO - [rank 1] hi\n");
    free(out);
    fclose(con);
    rm_tmp();
}

Test(logger, null_logger_is_a_no_op)
{
    wk_log_train r = sample_train();
    cr_assert_eq(wk_logger_train(NULL, &r), 0);
    cr_assert_eq(wk_logger_progress(NULL, &r), 0);
    cr_assert_eq(wk_logger_eval(NULL, NULL), 0);
    cr_assert_eq(wk_logger_checkpoint(NULL, WK_LOG_CKPT_LAST, "x", 1, 1, NULL), 0);
    cr_assert_eq(wk_logger_early_stop(NULL, 1, 1, "x", 0, 1, 0, 0), 0);
    cr_assert_eq(wk_logger_end(NULL, WK_LOG_END_SIGNAL, 1, 1), 0);
    cr_assert_eq(wk_logger_info(NULL, "x %d", 1), 0);
    cr_assert_null(wk_logger_run_dir(NULL));
    wk_logger_close(NULL);
}

Test(logger, errors)
{
    make_tmp();
    char file[128];
    snprintf(file, sizeof file, "%s/plainfile", tmpdir);
    FILE *f = fopen(file, "w");
    fclose(f);
    wk_logger_opts o = {.work_dir = file, .quiet = true, .clock = fake_clock};
    cr_assert_null(wk_logger_open(&o));
    cr_assert(strstr(wk_last_error(), "plainfile") != NULL, "%s", wk_last_error());
    o.work_dir = tmpdir;
    o.mode = (wk_log_mode)7;
    cr_assert_null(wk_logger_open(&o));
    cr_assert(strstr(wk_last_error(), "mode") != NULL, "%s", wk_last_error());
    o.mode = WK_LOG_MODE_EPOCH;
    wk_logger *lg = wk_logger_open(&o);
    cr_assert_not_null(lg);
    cr_assert_eq(wk_logger_train(lg, NULL), -1);
    cr_assert_eq(wk_logger_checkpoint(lg, WK_LOG_CKPT_COUNT, "p", 1, 1, NULL), -1);
    cr_assert_eq(wk_logger_checkpoint(lg, WK_LOG_CKPT_LAST, NULL, 1, 1, NULL), -1);
    cr_assert_eq(wk_logger_end(lg, WK_LOG_END_COUNT, 1, 1), -1);
    cr_assert_eq(wk_logger_early_stop(lg, 1, 1, NULL, 0, 1, 0, 0), -1);
    wk_log_eval e = {.n = -1};
    cr_assert_eq(wk_logger_eval(lg, &e), -1);
    wk_logger_close(lg);
    rm_tmp();
}

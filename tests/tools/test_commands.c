/* The commands on real runs: `wick config` is the merged config training uses, `wick
 * train` writes what docs/RUNNER.md says, `wick eval` reproduces the training's last
 * evaluation, `wick inspect` shows a checkpoint and rejects damaged ones, `wick plot`
 * draws PNG and SVG, resume and load_from from the command line. */
#include <cairo.h>
#include <math.h>

#include "run.h"
#include "wick.h"

static char *dir;

static void setup(void)
{
    dir = cli_tempdir();
    cli_write_text(dir, "tiny.json", CLI_TINY);
}

static void teardown(void) { cli_rmdir(dir); }

TestSuite(commands, .init = setup, .fini = teardown);

/* wick train tiny.json --threads 1 --work-dir <work> [extra...]: expects exit 0. */
static void train(const char *work, const char *const *extra)
{
    const char *args[40] = {"train", "tiny.json", "--threads", "1", "--work-dir", work};
    int n = 6;
    for (int i = 0; extra && extra[i]; i++) args[n++] = extra[i];
    args[n] = NULL;
    cli_result r = cli_run(dir, args);
    cli_expect(&r, 0, "wick train", (const char *[]){"final val/accuracy", NULL});
    cli_result_free(&r);
}

/* The value printed as "name: value" by wick eval (NaN when absent). */
static double printed(const char *out, const char *name)
{
    char key[128];
    snprintf(key, sizeof key, "%s: ", name);
    const char *p = strstr(out, key);
    if (!p || (p != out && p[-1] != '\n')) return NAN;
    return strtod(p + strlen(key), NULL);
}

/* The JSON printed after "\n<title>:\n" by wick inspect, parsed (or NULL). */
static cJSON *section(const char *out, const char *title)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s:\n", title);
    const char *p = strstr(out, key);
    if (!p) return NULL;
    p += strlen(key);
    const char *end = strstr(p, "\n\n");
    size_t n = end ? (size_t)(end - p) : strlen(p);
    char *text = strndup(p, n);
    cJSON *j = cJSON_Parse(text);
    free(text);
    return j;
}

static const char *last_ckpt(const char *work)
{
    static char path[4300];
    snprintf(path, sizeof path, "%s/%s/checkpoints/last.safetensors", dir, work);
    return path;
}

Test(commands, config_prints_the_merged_config_training_uses)
{
    cli_write_text(dir, "child.json",
                   "{\"_base_\": \"tiny.json\", \"optimizer\": {\"lr\": 0.05},\n"
                   " \"runner\": {\"max_epochs\": 2, \"eval_interval\": 2}}\n");
    const char *opts[] = {"--set", "optimizer.lr=0.5", "--set", "runner.log_interval=1",
                          "--set", "val_evaluator=[{\"type\": \"Accuracy\"}]", "--seed", "7",
                          "--work-dir", "w", NULL};
    const char *args[20] = {"config", "child.json"};
    int n = 2;
    for (int i = 0; opts[i]; i++) args[n++] = opts[i];
    args[n] = NULL;
    cli_result r = cli_run(dir, args);
    cli_expect(&r, 0, "wick config", NULL);
    cr_expect_str_empty(r.err);

    /* The same merge done here through the library. */
    wk_config *cfg = wk_config_load(cli_path(dir, "child.json"));
    cr_assert_not_null(cfg, "%s", wk_last_error());
    const char *sets[] = {"optimizer.lr=0.5", "runner.log_interval=1",
                          "val_evaluator=[{\"type\": \"Accuracy\"}]", "runner.seed=7",
                          "runner.work_dir=w"};
    for (int i = 0; i < 5; i++) cr_assert_eq(wk_config_set(cfg, sets[i]), 0, "%s", wk_last_error());
    char *want = wk_config_to_string(cfg);
    size_t wl = strlen(want);
    cr_expect(strlen(r.out) == wl + 1 && !strncmp(r.out, want, wl) && r.out[wl] == '\n',
              "wick config printed:\n%s\nexpected:\n%s", r.out, want);
    cJSON *printed_cfg = cJSON_Parse(r.out);
    cr_assert_not_null(printed_cfg, "not JSON: %s", r.out);
    const cJSON *opt = cJSON_GetObjectItemCaseSensitive(printed_cfg, "optimizer");
    const cJSON *run = cJSON_GetObjectItemCaseSensitive(printed_cfg, "runner");
    cr_expect_eq(cli_num(opt, "lr"), 0.5, "--set wins over the file");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(opt, "type")->valuestring, "Adam",
                     "the base's keys stay");
    cr_expect_eq(cli_num(run, "max_epochs"), 2, "the file wins over its base");
    cr_expect_eq(cli_num(run, "seed"), 7);
    cr_expect_eq(cli_num(run, "log_interval"), 1);
    cr_expect_eq(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(printed_cfg,
                                                                     "val_evaluator")), 1,
                 "a list --set replaces the list");
    cr_expect(!cJSON_GetObjectItemCaseSensitive(printed_cfg, "_base_"));

    /* Training with the same options uses and saves exactly this config. */
    args[0] = "train";
    args[n++] = "--threads";
    args[n++] = "1";
    args[n] = NULL;
    cli_result t = cli_run(dir, args);
    cli_expect(&t, 0, "wick train child.json", NULL);
    char *saved = cli_read_file(cli_path(dir, "w/config.json"), NULL);
    cr_assert_not_null(saved, "no w/config.json");
    cr_expect_str_eq(saved, want, "work_dir/config.json differs from wick config's output");
    char run_dir[4300];
    cr_assert(cli_run_dir(cli_path(dir, "w"), -1, run_dir, sizeof run_dir));
    char *in_run = cli_read_file(cli_path(run_dir, "config.json"), NULL);
    cr_expect_str_eq(in_run ? in_run : "", want, "the run folder's config.json differs");
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(cli_path(dir, "w/checkpoints/last.safetensors"), &ck), 0,
                 "%s", wk_last_error());
    cJSON *in_ck = cJSON_Parse(ck.config);
    cr_expect(cJSON_Compare(in_ck, printed_cfg, true), "the checkpoint's config differs: %s",
              ck.config);
    cr_expect_eq(ck.global_step, 8, "2 epochs of 4 steps (max_epochs from child.json)");
    cJSON_Delete(in_ck);
    wk_checkpoint_close(&ck);
    free(in_run);
    free(saved);
    cJSON_Delete(printed_cfg);
    free(want);
    wk_config_free(cfg);
    cli_result_free(&t);
    cli_result_free(&r);
}

Test(commands, train_then_eval_reproduces_the_last_evaluation)
{
    train("w", NULL);
    char run_dir[4300];
    cr_assert(cli_run_dir(cli_path(dir, "w"), -1, run_dir, sizeof run_dir));
    const char *jsonl = cli_path(run_dir, "scalars.jsonl");
    cJSON *ev = cli_last_record(jsonl, "eval");
    cJSON *end = cli_last_record(jsonl, "end");
    cr_assert_not_null(ev, "no eval record in %s", jsonl);
    cr_assert_not_null(end, "no end record in %s", jsonl);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(end, "reason")->valuestring, "max_epochs");
    cr_expect_eq(cli_num(end, "step"), 12);
    cr_expect(cli_exists(cli_path(run_dir, "run.log")));
    cr_expect(cli_exists(cli_path(dir, "w/checkpoints/best.safetensors")));

    cli_result r = cli_run(dir, (const char *[]){"eval", "tiny.json", "--checkpoint",
                                                 "w/checkpoints/last.safetensors", "--threads",
                                                 "1", NULL});
    cli_expect(&r, 0, "wick eval", NULL);
    for (int i = 0; i < 2; i++) {
        const char *name = i ? "val/loss" : "val/accuracy";
        double got = printed(r.out, name), logged = cli_num(ev, name);
        cr_expect(fabs(got - logged) <= 1e-9, "%s: wick eval printed %.17g, training logged "
                                              "%.17g", name, got, logged);
    }
    cJSON_Delete(ev);
    cJSON_Delete(end);
    cli_result_free(&r);
}

Test(commands, eval_ema_weights)
{
    train("ema", (const char *[]){"--set", "runner.use_ema=true", "--set",
                                  "runner.ema_decay=0.9", NULL});
    char run_dir[4300];
    cr_assert(cli_run_dir(cli_path(dir, "ema"), -1, run_dir, sizeof run_dir));
    cJSON *ev = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "eval");
    cr_assert_not_null(ev);
    for (int ema = 0; ema < 2; ema++) {
        const char *args[] = {"eval", "tiny.json", "--checkpoint", "ema/checkpoints/last.safetensors",
                              "--threads", "1", ema ? "--ema" : NULL, NULL};
        cli_result r = cli_run(dir, args);
        cli_expect(&r, 0, ema ? "wick eval --ema" : "wick eval", NULL);
        double acc = printed(r.out, "val/accuracy"), loss = printed(r.out, "val/loss");
        double want_acc = cli_num(ev, ema ? "val_ema/accuracy" : "val/accuracy");
        double want_loss = cli_num(ev, ema ? "val_ema/loss" : "val/loss");
        cr_expect(fabs(acc - want_acc) <= 1e-9, "accuracy %.17g, logged %.17g", acc, want_acc);
        cr_expect(fabs(loss - want_loss) <= 1e-9, "loss %.17g, logged %.17g", loss, want_loss);
        cli_result_free(&r);
    }
    cr_expect_neq(cli_num(ev, "val_ema/loss"), cli_num(ev, "val/loss"),
                  "the EMA differs from the weights, so the test tells them apart");
    cJSON_Delete(ev);

    /* --ema of a checkpoint without an EMA, and weights that do not fit the model. */
    train("plain", NULL);
    cli_result r = cli_run(dir, (const char *[]){"eval", "tiny.json", "--checkpoint",
                                                 "plain/checkpoints/last.safetensors", "--ema",
                                                 NULL});
    cli_expect(&r, 1, "wick eval --ema without an EMA",
               (const char *[]){"plain/checkpoints/last.safetensors has no EMA weights",
                                "runner.use_ema", NULL});
    cli_result_free(&r);
    r = cli_run(dir, (const char *[]){"eval", "tiny.json", "--checkpoint",
                                      "plain/checkpoints/last.safetensors", "--set",
                                      "model.hidden=[4]", NULL});
    cli_expect(&r, 1, "wick eval of a model that does not fit",
               (const char *[]){"do not fit the model", "0.weight: file has [8, 2], model has "
                                "[4, 2]", NULL});
    cli_result_free(&r);
}

Test(commands, inspect_lists_tensors_state_and_config)
{
    train("w", NULL);
    const char *path = last_ckpt("w");
    cli_result r = cli_run(dir, (const char *[]){"inspect", "w/checkpoints/last.safetensors",
                                                 NULL});
    cli_expect(&r, 0, "wick inspect", (const char *[]){"wick-ckpt-1", "verified",
                                                       "global step 12", NULL});
    wk_checkpoint ck;
    cr_assert_eq(wk_checkpoint_open(path, &ck), 0, "%s", wk_last_error());
    int models = 0;
    for (int i = 0; i < ck.st.count; i++) {
        const char *name = ck.st.items[i].name;
        const wk_tensor *t = ck.st.items[i].tensor;
        models += !strncmp(name, "model.", 6);
        char shape[64] = "[";
        for (int d = 0; d < t->ndim; d++)
            snprintf(shape + strlen(shape), sizeof shape - strlen(shape), "%s%lld",
                     d ? ", " : "", (long long)t->shape[d]);
        strcat(shape, "]");
        /* The tensor's line: "<name> <dtype> <shape>" with padding. */
        char key[300];
        snprintf(key, sizeof key, "\n%s ", name);
        const char *line = strstr(r.out, key);
        cr_expect_not_null(line, "%s not listed", name);
        if (!line) continue;
        const char *eol = strchr(line + 1, '\n');
        char *l = strndup(line + 1, eol ? (size_t)(eol - line - 1) : strlen(line + 1));
        cr_expect(strstr(l, " float32 ") && strstr(l, shape), "%s: line \"%s\", expected "
                                                             "float32 %s", name, l, shape);
        free(l);
    }
    cr_expect_eq(models, 4, "the MLP's 2 weights and 2 biases");
    cr_expect(strstr(r.out, "\nmodel.0.weight "), "model.* tensors are listed");
    cJSON *state = section(r.out, "state");
    cr_assert_not_null(state, "no state JSON in: %s", r.out);
    cr_expect_eq(cli_num(state, "global_step"), 12);
    cr_expect_eq(cli_num(state, "epoch"), 3);
    cJSON *config = section(r.out, "config"), *want = cJSON_Parse(ck.config);
    cr_expect(config && cJSON_Compare(config, want, true), "the config section differs");
    cJSON *opt = section(r.out, "optimizer");
    cr_expect_not_null(opt, "the optimizer's state is shown");
    cJSON_Delete(opt);
    cJSON_Delete(want);
    cJSON_Delete(config);
    cJSON_Delete(state);
    wk_checkpoint_close(&ck);
    cli_result_free(&r);
}

Test(commands, damaged_checkpoints_exit_1)
{
    train("w", NULL);
    size_t n = 0;
    char *bytes = cli_read_file(last_ckpt("w"), &n);
    cr_assert(bytes && n > 200);
    char *flipped = malloc(n);
    memcpy(flipped, bytes, n);
    flipped[n - 3] ^= 0x40; /* in the data section: only the CRC can tell */
    cli_write_file(cli_path(dir, "flipped.safetensors"), flipped, n);
    cli_write_file(cli_path(dir, "short.safetensors"), bytes, n - 100);
    cli_write_file(cli_path(dir, "header.safetensors"), bytes, 50);
    cli_write_file(cli_path(dir, "empty.safetensors"), bytes, 0);
    const struct {
        const char *file;
        const char *want[3];
    } cases[] = {
        {"flipped.safetensors", {"flipped.safetensors is corrupt", "CRC-32"}},
        {"short.safetensors", {"short.safetensors", "truncated"}},
        {"header.safetensors", {"header.safetensors", "truncated"}},
        {"empty.safetensors", {"empty.safetensors", "0 bytes"}},
    };
    for (size_t i = 0; i < 4; i++) {
        cli_result r = cli_run(dir, (const char *[]){"inspect", cases[i].file, NULL});
        cli_expect(&r, 1, cases[i].file, cases[i].want);
        cr_expect_str_empty(r.out, "%s: nothing printed before the check", cases[i].file);
        cli_result_free(&r);
        r = cli_run(dir, (const char *[]){"eval", "tiny.json", "--checkpoint", cases[i].file,
                                          NULL});
        cli_expect(&r, 1, "wick eval of a damaged file", cases[i].want);
        cli_result_free(&r);
    }
    /* Resuming from it explicitly fails; "auto" skips it with a warning and takes the
     * newest good one (best.safetensors, step 8 of the 12). */
    cli_result r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1",
                                                 "--work-dir", "w", "--resume",
                                                 "flipped.safetensors", NULL});
    cli_expect(&r, 1, "wick train --resume flipped", (const char *[]){"CRC-32", NULL});
    cli_result_free(&r);
    cli_write_file(last_ckpt("w"), flipped, n);
    r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1", "--work-dir", "w",
                                      "--resume", NULL});
    cli_expect(&r, 0, "wick train --resume with a damaged last",
               (const char *[]){"last.safetensors", "Resumed from w/checkpoints/best.safetensors",
                                NULL});
    cli_result_free(&r);
    free(flipped);
    free(bytes);
}

Test(commands, plot_writes_png_and_svg)
{
    train("w", NULL);
    cli_result r = cli_run(dir, (const char *[]){"plot", "w", NULL});
    cli_expect(&r, 0, "wick plot", (const char *[]){"wrote w/plot.png", "wrote w/plot.svg", NULL});
    cli_result_free(&r);
    cairo_surface_t *png = cairo_image_surface_create_from_png(cli_path(dir, "w/plot.png"));
    cr_expect_eq(cairo_surface_status(png), CAIRO_STATUS_SUCCESS, "plot.png: %s",
                 cairo_status_to_string(cairo_surface_status(png)));
    cr_expect_eq(cairo_image_surface_get_width(png), 1200);
    cr_expect_eq(cairo_image_surface_get_height(png), 800);
    cairo_surface_destroy(png);
    size_t n = 0;
    char *svg = cli_read_file(cli_path(dir, "w/plot.svg"), &n);
    cr_expect(svg && n > 1000 && strstr(svg, "<svg"), "plot.svg: %zu bytes", n);
    free(svg);
    cairo_debug_reset_static_data();
    /* A work dir without runs: nothing to plot. */
    mkdir(cli_path(dir, "empty"), 0777);
    r = cli_run(dir, (const char *[]){"plot", "empty", NULL});
    cli_expect(&r, 1, "wick plot of an empty work dir", (const char *[]){"empty", NULL});
    cli_result_free(&r);
}

Test(commands, resume_and_load_from)
{
    train("w", NULL);
    /* A finished run trains nothing more... */
    cli_result r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1",
                                                 "--work-dir", "w", "--resume", NULL});
    cli_expect(&r, 0, "wick train --resume of a finished run",
               (const char *[]){"nothing to train", "max_epochs (step 12)", NULL});
    cr_expect(!strstr(r.out, "Epoch(train)"), "it trained: %s", r.out);
    cli_result_free(&r);
    /* ...unless max_epochs is raised: it continues from step 12. */
    r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1", "--work-dir", "w",
                                      "--resume", "w/checkpoints/last.safetensors", "--set",
                                      "runner.max_epochs=4", NULL});
    cli_expect(&r, 0, "wick train --resume PATH with max_epochs 4",
               (const char *[]){"Resumed from w/checkpoints/last.safetensors at step 12",
                                "Epoch(train) [4][2/4]", NULL});
    cr_expect(!strstr(r.out, "Epoch(train) [3]"), "an epoch was replayed: %s", r.out);
    cli_result_free(&r);
    char run_dir[4300];
    cr_assert(cli_run_dir(cli_path(dir, "w"), -1, run_dir, sizeof run_dir));
    cJSON *end = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "end");
    cr_expect_eq(cli_num(end, "step"), 16);
    cJSON_Delete(end);
    /* load_from: the weights only; the counts start again at 0. */
    train("w2", (const char *[]){"--load-from", "w/checkpoints/last.safetensors", NULL});
    cr_assert(cli_run_dir(cli_path(dir, "w2"), -1, run_dir, sizeof run_dir));
    cJSON *first = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "end");
    cr_expect_eq(cli_num(first, "step"), 12, "load_from trains its own 12 steps");
    cJSON_Delete(first);
}

Test(commands, quiet_default_work_dir_and_seed)
{
    cli_result r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1",
                                                 "--quiet", "--seed", "3", NULL});
    cli_expect(&r, 0, "wick train --quiet", NULL);
    cr_expect_str_empty(r.out, "--quiet printed: %s", r.out);
    cli_result_free(&r);
    /* runner.work_dir defaults to work_dirs/<config name>; the logs are still written. */
    char run_dir[4300];
    cr_assert(cli_run_dir(cli_path(dir, "work_dirs/tiny"), -1, run_dir, sizeof run_dir),
              "no run folder in work_dirs/tiny");
    cJSON *a = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "eval");
    cr_assert_not_null(a);
    cr_expect(cli_exists(cli_path(dir, "work_dirs/tiny/checkpoints/last.safetensors")));
    /* The same seed gives the same run, bit for bit; another seed another one. */
    train("same", (const char *[]){"--seed", "3", NULL});
    train("other", (const char *[]){"--seed", "4", NULL});
    cr_assert(cli_run_dir(cli_path(dir, "same"), -1, run_dir, sizeof run_dir));
    cJSON *b = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "eval");
    cr_assert(cli_run_dir(cli_path(dir, "other"), -1, run_dir, sizeof run_dir));
    cJSON *c = cli_last_record(cli_path(run_dir, "scalars.jsonl"), "eval");
    cr_expect_eq(cli_num(a, "val/loss"), cli_num(b, "val/loss"), "same seed, other result");
    cr_expect_neq(cli_num(a, "val/loss"), cli_num(c, "val/loss"), "the seed changed nothing");
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
}

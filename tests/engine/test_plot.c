/* wick plot: reading and merging run folders' scalars.jsonl, the PNG and SVG it draws,
 * and its errors. */
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "test_util.h"

/* cairo's text keeps fontconfig's process-wide caches; give them back before the leak
 * check, as a long-lived program never needs to */
static void teardown(void)
{
    cairo_debug_reset_static_data();
    FcFini();
    tu_teardown();
}

TestSuite(plot, .init = tu_setup, .fini = teardown);

static char *tmpdir;
static void make_tmp(void)
{
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick-plot-"));
}
static void rm_tmp(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
}

/* tmpdir/<run>/scalars.jsonl = text */
static void put_run(const char *run, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", tmpdir, run);
    cr_assert_eq(mkdir(path, 0777), 0);
    snprintf(path, sizeof path, "%s/%s/scalars.jsonl", tmpdir, run);
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

static const char *run_a =
    "{\"event\":\"train\",\"step\":10,\"epoch\":1,\"iter\":10,\"lr\":0.001,\"train/loss\":1.0,"
    "\"grad_norm\":1.5,\"time\":0.01,\"data_time\":0.001}\n"
    "{\"event\":\"train\",\"step\":20,\"epoch\":1,\"iter\":20,\"lr\":0.001,\"train/loss\":0.8}\n"
    "{\"event\":\"eval\",\"step\":20,\"epoch\":1,\"val/accuracy\":60.0,\"val/loss\":0.9}\n"
    "{\"event\":\"checkpoint\",\"step\":20,\"epoch\":1,\"kind\":\"regular\",\"path\":\"x\"}\n"
    "{\"event\":\"train\",\"step\":30,\"epoch\":2,\"iter\":10,\"lr\":0.001,\"train/loss\":0.7}\n";
/* resumed from the step-20 checkpoint: its step 30 supersedes the killed run's */
static const char *run_b =
    "{\"event\":\"train\",\"step\":30,\"epoch\":2,\"iter\":10,\"lr\":0.0005,\"train/loss\":0.65}\n"
    "{\"event\":\"train\",\"step\":40,\"epoch\":2,\"iter\":20,\"lr\":0.0005,\"train/loss\":0.5}\n"
    "{\"event\":\"eval\",\"step\":40,\"epoch\":2,\"val/accuracy\":70.0,\"val/loss\":0.6,"
    "\"val_ema/accuracy\":71.0}\n"
    "{\"event\":\"end\",\"step\":40,\"epoch\":2,\"reason\":\"max_epochs\"}\n";

static void expect_series(const wk_plot_data *d, const char *name, wk_plot_axis axis,
                          int64_t n, const int64_t *steps, const double *values)
{
    const wk_plot_series *s = wk_plot_data_find(d, name);
    cr_assert_not_null(s, "no series %s", name);
    cr_assert_eq(s->axis, axis, "%s axis", name);
    cr_assert_eq(s->n, n, "%s: %lld points, expected %lld", name, (long long)s->n,
                 (long long)n);
    for (int64_t i = 0; i < n; i++) {
        cr_assert_eq(s->steps[i], steps[i], "%s step[%lld]", name, (long long)i);
        cr_assert_eq(s->values[i], values[i], "%s value[%lld]", name, (long long)i);
    }
}

Test(plot, load_merges_resumed_runs)
{
    make_tmp();
    put_run("20261202_100000", run_a);
    put_run("20261202_110000", run_b);
    wk_plot_data *d = wk_plot_load(tmpdir, NULL);
    cr_assert_not_null(d, "%s", wk_last_error());
    expect_series(d, "train/loss", WK_PLOT_AXIS_LOSS, 4, (int64_t[]){10, 20, 30, 40},
                  (double[]){1.0, 0.8, 0.65, 0.5});
    expect_series(d, "lr", WK_PLOT_AXIS_LR, 4, (int64_t[]){10, 20, 30, 40},
                  (double[]){0.001, 0.001, 0.0005, 0.0005});
    expect_series(d, "val/accuracy", WK_PLOT_AXIS_METRIC, 2, (int64_t[]){20, 40},
                  (double[]){60, 70});
    expect_series(d, "val/loss", WK_PLOT_AXIS_LOSS, 2, (int64_t[]){20, 40},
                  (double[]){0.9, 0.6});
    expect_series(d, "val_ema/accuracy", WK_PLOT_AXIS_METRIC, 1, (int64_t[]){40},
                  (double[]){71});
    cr_assert(wk_plot_data_find(d, "val/accuracy")->eval);
    cr_assert(!wk_plot_data_find(d, "train/loss")->eval);
    cr_assert_null(wk_plot_data_find(d, "grad_norm"), "only lr and train/... from train");
    cr_assert_null(wk_plot_data_find(d, "time"));
    cr_assert_eq(d->n, 5);
    cr_assert_eq(d->n_resumes, 1);
    cr_assert_eq(d->resume_steps[0], 30);
    wk_plot_data_free(d);
    rm_tmp();
}

Test(plot, run_folders_in_version_order)
{
    make_tmp();
    /* "_10" is newer than "_2" although it sorts first as a plain string */
    put_run("20261202_100000_10",
            "{\"event\":\"train\",\"step\":5,\"epoch\":1,\"train/loss\":2.0}\n");
    put_run("20261202_100000_2", "{\"event\":\"train\",\"step\":0,\"epoch\":1,\"train/loss\":1}\n"
                                 "{\"event\":\"train\",\"step\":5,\"epoch\":1,\"train/loss\":1}\n"
                                 "{\"event\":\"train\",\"step\":9,\"epoch\":1,\"train/loss\":1}\n");
    wk_plot_data *d = wk_plot_load(tmpdir, NULL);
    cr_assert_not_null(d, "%s", wk_last_error());
    expect_series(d, "train/loss", WK_PLOT_AXIS_LOSS, 2, (int64_t[]){0, 5},
                  (double[]){1.0, 2.0});
    wk_plot_data_free(d);
    rm_tmp();
}

Test(plot, truncated_last_line_is_skipped_with_a_warning)
{
    make_tmp();
    put_run("r", "{\"event\":\"train\",\"step\":1,\"epoch\":1,\"train/loss\":1}\n"
                 "\n"
                 "{\"event\":\"train\",\"st");
    FILE *warn = tmpfile();
    wk_plot_data *d = wk_plot_load(tmpdir, warn);
    cr_assert_not_null(d, "%s", wk_last_error());
    expect_series(d, "train/loss", WK_PLOT_AXIS_LOSS, 1, (int64_t[]){1}, (double[]){1});
    wk_plot_data_free(d);
    long n = ftell(warn);
    rewind(warn);
    char msg[512] = "";
    cr_assert_gt(fread(msg, 1, sizeof msg - 1, warn), 0);
    cr_assert(strstr(msg, "/r/scalars.jsonl:3: skipping a truncated last line") != NULL, "%s",
              msg);
    cr_assert_gt(n, 0);
    fclose(warn);
    rm_tmp();
}

Test(plot, complete_last_line_without_newline_is_kept)
{
    make_tmp();
    put_run("r", "{\"event\":\"train\",\"step\":1,\"epoch\":1,\"train/loss\":1}\n"
                 "{\"event\":\"train\",\"step\":2,\"epoch\":1,\"train/loss\":3}");
    FILE *warn = tmpfile();
    wk_plot_data *d = wk_plot_load(tmpdir, warn);
    cr_assert_not_null(d, "%s", wk_last_error());
    expect_series(d, "train/loss", WK_PLOT_AXIS_LOSS, 2, (int64_t[]){1, 2}, (double[]){1, 3});
    cr_assert_eq(ftell(warn), 0, "no warning");
    wk_plot_data_free(d);
    fclose(warn);
    rm_tmp();
}

static void expect_load_error(const char *needle)
{
    FILE *warn = tmpfile();
    cr_assert_null(wk_plot_load(tmpdir, warn));
    cr_assert(strstr(wk_last_error(), needle) != NULL, "error \"%s\" lacks \"%s\"",
              wk_last_error(), needle);
    fclose(warn);
}

Test(plot, errors)
{
    cr_assert_null(wk_plot_load("/nonexistent-wick-dir", NULL));
    cr_assert(strstr(wk_last_error(), "/nonexistent-wick-dir") != NULL, "%s", wk_last_error());
    cr_assert_null(wk_plot_load(NULL, NULL));

    make_tmp();
    expect_load_error("no scalars.jsonl");
    put_run("a", "{\"event\":\"train\",\"step\":1,\"epoch\":1,\"train/loss\":1}\n"
                 "garbage\n"
                 "{\"event\":\"train\",\"step\":2,\"epoch\":1,\"train/loss\":1}\n");
    expect_load_error("/a/scalars.jsonl:2: not a JSON object: garbage");
    rm_tmp();

    make_tmp();
    put_run("a", "{\"event\":\"train\",\"epoch\":1,\"train/loss\":1}\n");
    expect_load_error("/a/scalars.jsonl:1: expected an \"event\" string and a \"step\" number");
    rm_tmp();

    make_tmp();
    put_run("a", "[1, 2]\n");
    expect_load_error("/a/scalars.jsonl:1: not a JSON object");
    rm_tmp();

    make_tmp();
    put_run("a", "{\"event\":\"checkpoint\",\"step\":1,\"epoch\":1,\"kind\":\"last\"}\n");
    expect_load_error("no train or eval records");
    char *png = (char *)1, *svg = (char *)1;
    cr_assert_eq(wk_plot_work_dir(tmpdir, NULL, &png, &svg), -1);
    cr_assert_null(png);
    cr_assert_null(svg);
    rm_tmp();
}

/* Share of pixels that are not white, and whether several colours appear. */
static void check_png(const char *path, int w, int h)
{
    cairo_surface_t *s = cairo_image_surface_create_from_png(path);
    cr_assert_eq(cairo_surface_status(s), CAIRO_STATUS_SUCCESS, "%s: %s", path,
                 cairo_status_to_string(cairo_surface_status(s)));
    cr_assert_eq(cairo_image_surface_get_width(s), w);
    cr_assert_eq(cairo_image_surface_get_height(s), h);
    cairo_surface_flush(s);
    const unsigned char *p = cairo_image_surface_get_data(s);
    int stride = cairo_image_surface_get_stride(s);
    int64_t ink = 0, colored = 0;
    for (int y = 0; y < h; y++) {
        const uint32_t *row = (const uint32_t *)(p + (size_t)y * (size_t)stride);
        for (int x = 0; x < w; x++) {
            uint32_t px = row[x] & 0xffffff;
            unsigned r = px >> 16, g = (px >> 8) & 0xff, b = px & 0xff;
            if (px != 0xffffff) ink++;
            if (abs((int)r - (int)g) > 60 || abs((int)g - (int)b) > 60) colored++;
        }
    }
    cairo_surface_destroy(s);
    cr_assert_gt(ink, (int64_t)w * h / 100, "the image is (nearly) blank: %lld ink pixels",
                 (long long)ink);
    cr_assert_gt(colored, 200, "no coloured curves: %lld pixels", (long long)colored);
}

Test(plot, work_dir_writes_png_and_svg)
{
    make_tmp();
    put_run("20261202_100000", run_a);
    put_run("20261202_110000", run_b);
    char *png, *svg;
    cr_assert_eq(wk_plot_work_dir(tmpdir, NULL, &png, &svg), 0, "%s", wk_last_error());
    char want[128];
    snprintf(want, sizeof want, "%s/plot.png", tmpdir);
    cr_assert_str_eq(png, want);
    snprintf(want, sizeof want, "%s/plot.svg", tmpdir);
    cr_assert_str_eq(svg, want);
    check_png(png, 1200, 800);
    FILE *f = fopen(svg, "r");
    cr_assert_not_null(f);
    char head[4096];
    size_t n = fread(head, 1, sizeof head - 1, f);
    head[n] = '\0';
    fseek(f, 0, SEEK_END);
    cr_assert_gt(ftell(f), 2000, "SVG has content");
    fclose(f);
    cr_assert(strstr(head, "<svg") != NULL, "%s", head);
    cr_assert(strstr(head, "width=\"1200") != NULL, "%s", head);
    free(png);
    free(svg);

    wk_plot_opts o = {.width = 640, .height = 480};
    cr_assert_eq(wk_plot_work_dir(tmpdir, &o, NULL, NULL), 0, "%s", wk_last_error());
    snprintf(want, sizeof want, "%s/plot.png", tmpdir);
    check_png(want, 640, 480);
    rm_tmp();
}

Test(plot, render_single_point_series_and_bad_sizes)
{
    make_tmp();
    /* one point, no lr, a NaN and a metric only: degenerate ranges must still draw */
    put_run("r", "{\"event\":\"train\",\"step\":0,\"epoch\":1,\"train/loss\":null}\n"
                 "{\"event\":\"eval\",\"step\":0,\"epoch\":1,\"val/accuracy\":50}\n");
    wk_plot_data *d = wk_plot_load(tmpdir, NULL);
    cr_assert_not_null(d, "%s", wk_last_error());
    char png[128];
    snprintf(png, sizeof png, "%s/one.png", tmpdir);
    cr_assert_eq(wk_plot_render(d, "one point", 400, 300, png, NULL), 0, "%s", wk_last_error());
    cairo_surface_t *s = cairo_image_surface_create_from_png(png);
    cr_assert_eq(cairo_image_surface_get_width(s), 400);
    cairo_surface_destroy(s);
    cr_assert_eq(wk_plot_render(d, NULL, 10, 300, png, NULL), -1);
    cr_assert(strstr(wk_last_error(), "10x300") != NULL, "%s", wk_last_error());
    cr_assert_eq(wk_plot_render(NULL, NULL, 400, 300, png, NULL), -1);
    cr_assert_eq(wk_plot_render(d, NULL, 400, 300, "/nonexistent-wick/x.png", NULL), -1);
    cr_assert(strstr(wk_last_error(), "/nonexistent-wick/x.png") != NULL, "%s",
              wk_last_error());
    wk_plot_data_free(d);
    rm_tmp();
}

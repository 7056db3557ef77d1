/* EMA of module weights: hand-computed sequences, warmup, interval, buffers, swapping,
 * state round trip, large tensors and errors. */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "test_util.h"

TestSuite(ema, .init = tu_setup, .fini = tu_teardown);

/* A module with a [3] float32 weight, a [2] float64 bias, a float buffer and a counter. */
static wk_module *net_new(void)
{
    wk_module *m = wk_module_new("Net", NULL, 0);
    wk_module *fc = wk_module_new("Linear", NULL, 0);
    wk_module_add_parameter(fc, "weight", tu_f32(WK_SHAPE(3), 1, 2, 4));
    wk_module_add_parameter(fc, "bias", tu_f64(WK_SHAPE(2), 0, -8));
    wk_module_add_buffer(fc, "running_mean", tu_f32(WK_SHAPE(2), 10, 20));
    wk_module_add_buffer(fc, "num_batches", tu_i64(WK_SHAPE(1), 0));
    wk_module_add_child(m, "fc", fc);
    return m;
}

static void set3(wk_tensor *t, double a, double b, double c)
{
    float *p = wk_data(t);
    p[0] = (float)a, p[1] = (float)b, p[2] = (float)c;
}

Test(ema, hand_computed_sequence)
{
    wk_module *net = net_new();
    wk_tensor *w = wk_module_find(net, "fc.weight"), *b = wk_module_find(net, "fc.bias");
    wk_ema *e = wk_ema_new(net, 0.5, NULL);
    cr_assert_not_null(e, "%s", wk_last_error());
    wk_tensor *ew = wk_ema_get(e, "fc.weight"), *eb = wk_ema_get(e, "fc.bias");
    expect_values(ew, 0, 1, 2, 4); /* starts as a copy */
    set3(w, 3, 3, 3);
    cr_assert_eq(wk_ema_update(e), 0);
    expect_values(ew, 0, 3, 3, 3); /* the first update copies */
    set3(w, 5, 1, -3);
    cr_assert_eq(wk_ema_update(e), 0);
    expect_values(ew, 0, 4, 2, 0); /* 0.5*3 + 0.5*x */
    set3(w, 0, 0, 8);
    cr_assert_eq(wk_ema_update(e), 0);
    expect_values(ew, 0, 2, 1, 4);
    expect_values(eb, 0, 0, -8);
    cr_assert_eq(wk_ema_num_updates(e), 3);
    cr_assert_null(wk_ema_get(e, "fc.running_mean"), "buffers not kept by default");
    cr_assert(strstr(wk_last_error(), "no parameter or buffer \"fc.running_mean\""));
    wk_ema_free(e);

    /* decay 0.9 on float64: ema_k = 0.9 ema_{k-1} + 0.1 x_k */
    double *bv = wk_data(b);
    e = wk_ema_new(net, 0.9, &(wk_ema_opts){0});
    double want[2] = {0, 0};
    for (int k = 0; k < 6; k++) {
        bv[0] = k * 1.5, bv[1] = -k * k;
        for (int i = 0; i < 2; i++) want[i] = k == 0 ? bv[i] : 0.9 * want[i] + 0.1 * bv[i];
        cr_assert_eq(wk_ema_update(e), 0);
    }
    /* want: 0.1*sum of 0.9^(5-k)*x_k for k>=1, plus 0.9^5*x_0 (= 0) */
    double h0 = 0, h1 = 0;
    for (int k = 1; k < 6; k++) {
        h0 += 0.1 * pow(0.9, 5 - k) * k * 1.5;
        h1 -= 0.1 * pow(0.9, 5 - k) * k * k;
    }
    cr_assert(fabs(want[0] - h0) < 1e-12 && fabs(want[1] - h1) < 1e-12);
    expect_values(wk_ema_get(e, "fc.bias"), 1e-15, h0, h1);
    wk_ema_free(e);
    wk_module_free(net);
}

Test(ema, warmup_decay)
{
    wk_module *net = net_new();
    wk_tensor *w = wk_module_find(net, "fc.weight");
    wk_ema *e = wk_ema_new(net, 0.9, &(wk_ema_opts){.warmup = true});
    cr_assert_not_null(e);
    double ema = 0;
    for (int t = 0; t < 100; t++) {
        double d = wk_ema_current_decay(e), expect = fmin(0.9, (1.0 + t) / (10.0 + t));
        cr_assert(fabs(d - expect) < 1e-15, "t %d: decay %g, expected %g", t, d, expect);
        double x = (t % 7) - 3.0;
        set3(w, x, 2 * x, 0.5);
        cr_assert_eq(wk_ema_update(e), 0);
        ema = t == 0 ? x : d * ema + (1 - d) * x;
        expect_values(wk_ema_get(e, "fc.weight"), 1e-6, ema, 2 * ema, 0.5);
    }
    cr_assert_eq(wk_ema_current_decay(e), 0.9, "(1+t)/(10+t) passes 0.9 at t = 81");
    wk_ema_free(e);
    wk_module_free(net);
}

Test(ema, interval_and_buffers)
{
    wk_module *net = net_new();
    wk_tensor *w = wk_module_find(net, "fc.weight");
    wk_tensor *rm = wk_module_find(net, "fc.running_mean");
    wk_tensor *nb = wk_module_find(net, "fc.num_batches");
    wk_ema *e = wk_ema_new(net, 0.5, &(wk_ema_opts){.interval = 2, .buffers = true});
    cr_assert_not_null(e, "%s", wk_last_error());
    wk_tensor *ew = wk_ema_get(e, "fc.weight"), *erm = wk_ema_get(e, "fc.running_mean");
    wk_tensor *enb = wk_ema_get(e, "fc.num_batches");
    cr_assert_not_null(enb);
    /* calls 0 (copy), 1 (skipped), 2 (averaged), 3 (skipped), 4 (averaged) */
    const double xs[] = {2, 100, 6, -100, 0};
    const double want[] = {2, 2, 4, 4, 2};
    for (int k = 0; k < 5; k++) {
        set3(w, xs[k], xs[k], xs[k]);
        ((float *)wk_data(rm))[0] = (float)(2 * xs[k]);
        ((int64_t *)wk_data(nb))[0] = k + 1;
        cr_assert_eq(wk_ema_update(e), 0);
        expect_values(ew, 0, want[k], want[k], want[k]);
        cr_assert_eq(tu_at(erm, 0), 2 * want[k], "float buffers are averaged");
        cr_assert_eq(tu_at(enb, 0), k + 1, "counters are copied at every call");
    }
    wk_ema_free(e);
    wk_module_free(net);
}

Test(ema, swap_in_and_out)
{
    wk_module *net = net_new();
    wk_tensor *w = wk_module_find(net, "fc.weight"), *rm = wk_module_find(net, "fc.running_mean");
    wk_ema *e = wk_ema_new(net, 0.5, NULL);
    cr_assert_eq(wk_ema_update(e), 0);
    set3(w, 3, 4, 6);
    cr_assert_eq(wk_ema_update(e), 0); /* ema = (2, 3, 5) */
    cr_assert(!wk_ema_swapped_in(e));
    cr_assert_eq(wk_ema_swap_in(e), 0);
    cr_assert(wk_ema_swapped_in(e));
    expect_values(w, 0, 2, 3, 5);
    expect_values(rm, 0, 10, 20); /* buffers not kept: the module's own are used */
    cr_assert_eq(wk_ema_swap_in(e), -1);
    cr_assert(strstr(wk_last_error(), "ema_swap_in: the EMA weights are already swapped in"));
    cr_assert_eq(wk_ema_update(e), -1);
    cr_assert(strstr(wk_last_error(), "swap them out before updating"), "%s", wk_last_error());
    wk_named_tensor *items = NULL;
    int n = 0;
    char *json = NULL;
    cr_assert_eq(wk_ema_state_save(e, "ema.", &items, &n, &json), -1);
    cr_assert_eq(wk_ema_swap_out(e), 0);
    expect_values(w, 0, 3, 4, 6);
    expect_values(wk_ema_get(e, "fc.weight"), 0, 2, 3, 5);
    cr_assert_eq(wk_ema_swap_out(e), -1);
    cr_assert(strstr(wk_last_error(), "already swapped out"));
    wk_ema_free(e);
    wk_module_free(net);
}

Test(ema, state_round_trip_continues_bit_for_bit)
{
    wk_module *a = net_new(), *b = net_new();
    wk_ema *ea = wk_ema_new(a, 0.99, &(wk_ema_opts){.warmup = true, .buffers = true});
    wk_ema *eb = wk_ema_new(b, 0.99, &(wk_ema_opts){.warmup = true, .buffers = true});
    wk_tensor *wa = wk_module_find(a, "fc.weight"), *wb = wk_module_find(b, "fc.weight");
    for (int k = 0; k < 7; k++) {
        set3(wa, sin(k), cos(k), k), set3(wb, sin(k), cos(k), k);
        wk_ema_update(ea), wk_ema_update(eb);
    }
    wk_named_tensor *items = NULL;
    int n = 0;
    char *json = NULL;
    cr_assert_eq(wk_ema_state_save(eb, "ema.", &items, &n, &json), 0, "%s", wk_last_error());
    cr_assert_eq(n, 4);
    cr_assert_str_eq(items[0].name, "ema.fc.weight");
    cr_assert(strstr(json, "\"updates\":7"), "%s", json);
    char path[] = "/tmp/wick_ema_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    cr_assert_eq(wk_safetensors_save(path, items, n, (const char *[]){"ema"},
                                     (const char *const *)&json, 1),
                 0, "%s", wk_last_error());
    for (int k = 0; k < n; k++) free(items[k].name);
    free(items);
    free(json);
    wk_ema_free(eb);
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0);
    unlink(path);
    wk_ema *ec = wk_ema_new(b, 0.99, &(wk_ema_opts){.warmup = true, .buffers = true});
    cr_assert_eq(wk_ema_state_load(ec, &st, "ema.", wk_safetensors_meta(&st, "ema")), 0, "%s",
                 wk_last_error());
    cr_assert_eq(wk_ema_num_updates(ec), 7);
    for (int k = 7; k < 12; k++) {
        set3(wa, sin(k), cos(k), k), set3(wb, sin(k), cos(k), k);
        wk_ema_update(ea), wk_ema_update(ec);
    }
    cr_assert_eq(memcmp(wk_data(wk_ema_get(ea, "fc.weight")), wk_data(wk_ema_get(ec, "fc.weight")),
                        12), 0);
    cr_assert_eq(memcmp(wk_data(wk_ema_get(ea, "fc.bias")), wk_data(wk_ema_get(ec, "fc.bias")), 16),
                 0);

    /* mismatches: a parameter-only EMA sees unexpected buffers; a wrong shape */
    wk_ema *ep = wk_ema_new(b, 0.99, NULL);
    cr_assert_eq(wk_ema_state_load(ep, &st, "ema.", wk_safetensors_meta(&st, "ema")), -1);
    cr_assert(strstr(wk_last_error(), "2 problems: unexpected \"ema.fc.num_batches\"; unexpected "
                                      "\"ema.fc.running_mean\""),
              "%s", wk_last_error());
    cr_assert_eq(wk_ema_state_load(ep, &st, "other.", wk_safetensors_meta(&st, "ema")), -1);
    cr_assert(strstr(wk_last_error(), "missing \"other.fc.weight\""), "%s", wk_last_error());
    cr_assert_eq(wk_ema_state_load(ep, &st, "ema.", "{}"), -1);
    cr_assert(strstr(wk_last_error(), "not an EMA state"), "%s", wk_last_error());
    wk_ema_free(ep);
    wk_module *other = wk_module_new("Net", NULL, 0);
    wk_module *fc = wk_module_new("Linear", NULL, 0);
    wk_module_add_parameter(fc, "weight", tu_f32(WK_SHAPE(4), 1, 2, 3, 4));
    wk_module_add_parameter(fc, "bias", tu_f64(WK_SHAPE(2), 0, 0));
    wk_module_add_child(other, "fc", fc);
    wk_ema *eo = wk_ema_new(other, 0.99, NULL);
    cr_assert_eq(wk_ema_state_load(eo, &st, "ema.fc.w", wk_safetensors_meta(&st, "ema")), -1);
    cr_assert_eq(wk_ema_state_load(eo, &st, "ema.", wk_safetensors_meta(&st, "ema")), -1);
    cr_assert(strstr(wk_last_error(), "ema.fc.weight: file has float32 [3], EMA has float32 [4]"),
              "%s", wk_last_error());
    expect_values(wk_ema_get(eo, "fc.weight"), 0, 1, 2, 3, 4);
    cr_assert_eq(wk_ema_num_updates(eo), 0);
    wk_ema_free(eo);
    wk_module_free(other);
    wk_safetensors_free(&st);
    wk_ema_free(ea);
    wk_ema_free(ec);
    wk_module_free(a);
    wk_module_free(b);
}

Test(ema, large_parameter)
{
    const int64_t R = 1000, C = 1001;
    wk_module *m = wk_module_new("Big", NULL, 0);
    wk_manual_seed(2);
    wk_tensor *w = wk_module_add_parameter(m, "w", wk_randn(WK_SHAPE(R, C), WK_DTYPE_F32, NULL));
    wk_ema *e = wk_ema_new(m, 0.75, NULL);
    float *x = wk_data(w);
    float *first = malloc(sizeof(float) * (size_t)(R * C));
    memcpy(first, x, sizeof(float) * (size_t)(R * C));
    wk_ema_update(e);
    for (int64_t i = 0; i < R * C; i++) x[i] = -2 * x[i];
    wk_ema_update(e);
    const float *s = wk_data(wk_ema_get(e, "w"));
    for (int64_t i = 0; i < R * C; i++)
        cr_assert_eq(s[i], (float)(0.75 * first[i] + 0.25 * (double)(-2 * first[i])));
    free(first);
    wk_ema_free(e);
    wk_module_free(m);
}

Test(ema, errors)
{
    wk_module *net = net_new();
    expect_error(wk_ema_new(NULL, 0.9, NULL), "ema_new: module is NULL");
    expect_error(wk_ema_new(net, 1.5, NULL),
                 "decay = 1.5 is out of range (expected 0 <= decay <= 1; momentum = 1 - decay)");
    expect_error(wk_ema_new(net, NAN, NULL), "out of range");
    expect_error(wk_ema_new(net, 0.9, &(wk_ema_opts){.interval = -1}), "interval = -1");
    wk_module *empty = wk_module_new("Identity", NULL, 0);
    expect_error(wk_ema_new(empty, 0.9, NULL), "the Identity module has no parameters");
    wk_module_free(empty);
    cr_assert_eq(wk_ema_update(NULL), -1);
    cr_assert_eq(wk_ema_swap_in(NULL), -1);
    cr_assert(isnan(wk_ema_current_decay(NULL)));
    cr_assert_null(wk_ema_get(NULL, "x"));
    wk_ema_free(NULL);
    wk_module_free(net);
}

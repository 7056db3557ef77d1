/* State dicts: round trips, every kind of mismatch reported by name, strict and
 * non-strict loading, prefixes, damaged files, atomic saves, and files exchanged with
 * PyTorch's safetensors (fixtures written by tools/gen_nn_fixtures.py). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

TestSuite(state_dict, .init = tu_setup, .fini = tu_teardown);

#define FIX(name) WK_FIXTURES "/" name

/* ---- stand-ins for layers written elsewhere (same names as torch's) ---- */

static wk_tensor *lin_forward(wk_module *m, wk_tensor *x)
{
    return wk_linear(x, wk_module_param(m, "weight"), wk_module_param(m, "bias"));
}

static wk_module *lin_new(int64_t in, int64_t out, wk_generator *g)
{
    wk_module *m = wk_module_new("Linear", lin_forward, 0);
    wk_tensor *w = wk_module_add_parameter(m, "weight", wk_empty(WK_SHAPE(out, in), WK_DTYPE_F32));
    wk_tensor *b = wk_module_add_parameter(m, "bias", wk_empty(WK_SHAPE(out), WK_DTYPE_F32));
    cr_assert(w && b && !wk_init_torch_default_(w, b, g), "%s", wk_last_error());
    return m;
}

static wk_tensor *relu_forward(wk_module *m, wk_tensor *x)
{
    (void)m;
    return wk_relu(x);
}

static wk_module *relu_new(void) { return wk_module_new("ReLU", relu_forward, 0); }

/* BatchNorm1d's state: weight, bias, running_mean, running_var, num_batches_tracked. */
static wk_module *bn_new(int64_t c)
{
    wk_module *m = wk_module_new("BatchNorm1d", NULL, 0);
    cr_assert_not_null(wk_module_add_parameter(m, "weight", wk_ones(WK_SHAPE(c), WK_DTYPE_F32)));
    cr_assert_not_null(wk_module_add_parameter(m, "bias", wk_zeros(WK_SHAPE(c), WK_DTYPE_F32)));
    cr_assert_not_null(
        wk_module_add_buffer(m, "running_mean", wk_zeros(WK_SHAPE(c), WK_DTYPE_F32)));
    cr_assert_not_null(wk_module_add_buffer(m, "running_var", wk_ones(WK_SHAPE(c), WK_DTYPE_F32)));
    cr_assert_not_null(wk_module_add_buffer(m, "num_batches_tracked",
                                            wk_zeros(NULL, 0, WK_DTYPE_I64)));
    return m;
}

/* torch's nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)). */
static wk_module *mlp_new(uint64_t seed)
{
    wk_generator g = wk_generator_make(seed);
    wk_module *m =
        wk_sequential_of((wk_module *[]){lin_new(4, 3, &g), relu_new(), lin_new(3, 2, &g)}, 3);
    cr_assert_not_null(m, "%s", wk_last_error());
    return m;
}

/* tools/gen_nn_fixtures.py's Nested: children first, then a parameter and a buffer. */
static wk_module *nested_new(void)
{
    wk_generator g = wk_generator_make(5);
    wk_module *net = wk_module_new("Nested", NULL, 0);
    wk_module_add_child(net, "features",
                        wk_sequential_of((wk_module *[]){lin_new(4, 6, &g), bn_new(6), relu_new(),
                                                         lin_new(6, 5, &g)},
                                         4));
    wk_module_add_child(net, "head", lin_new(5, 3, &g));
    wk_module_add_parameter(net, "scale", wk_zeros(WK_SHAPE(3), WK_DTYPE_F32));
    wk_module_add_buffer(net, "step", wk_zeros(WK_SHAPE(1), WK_DTYPE_I64));
    cr_assert_eq(wk_module_named_parameters(net, true, NULL, 0), 13, "%s", wk_last_error());
    return net;
}

/* ---- helpers ---- */

static char tmpdir[256];

static const char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int next;
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/wk_test_state_dict.XXXXXX");
        cr_assert_not_null(mkdtemp(tmpdir));
    }
    char *b = buf[next++ & 3];
    snprintf(b, sizeof buf[0], "%s/%s", tmpdir, name);
    return b;
}

static void rm_tmpdir(void)
{
    if (!tmpdir[0]) return;
    DIR *d = opendir(tmpdir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[600];
        snprintf(p, sizeof p, "%s/%s", tmpdir, e->d_name);
        if (rmdir(p) != 0) unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmpdir);
    tmpdir[0] = '\0';
}

static void teardown(void)
{
    rm_tmpdir();
    tu_teardown();
}

TestSuite(state_dict_files, .init = tu_setup, .fini = teardown);

/* Number of files in tmpdir whose name contains `part`. */
static int count_files(const char *part)
{
    DIR *d = opendir(tmpdir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, part)) n++;
    closedir(d);
    return n;
}

static unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t)n + 1);
    cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return buf;
}

static void write_all(const char *path, const void *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(buf, 1, n, f), n);
    fclose(f);
}

/* Assert a and b hold the same values (compared as doubles, exactly). */
static void expect_same(const wk_tensor *a, const wk_tensor *b, const char *what)
{
    cr_assert(a && b, "%s: NULL", what);
    cr_assert(wk_same_shape(a, b) && a->dtype == b->dtype, "%s: shape/dtype differ", what);
    for (int64_t i = 0; i < wk_numel(a); i++)
        cr_assert_eq(tu_at(a, i), tu_at(b, i), "%s[%lld]: %g vs %g", what, (long long)i,
                     tu_at(a, i), tu_at(b, i));
}

/* Snapshot of every state-dict value of m (persistent clones, freed by snap_free). */
typedef struct {
    int n;
    wk_named_param p[32];
    wk_tensor *copy[32];
} snapshot;

static void snap_take(const wk_module *m, snapshot *s)
{
    s->n = wk_module_named_parameters(m, true, s->p, 32);
    cr_assert(s->n <= 32);
    for (int i = 0; i < s->n; i++) {
        s->copy[i] = wk_clone(s->p[i].tensor);
        while (s->copy[i]->frame) wk_keep(s->copy[i]);
    }
}

static void snap_expect_unchanged(const wk_module *m, const snapshot *s)
{
    wk_named_param now[32];
    cr_assert_eq(wk_module_named_parameters(m, true, now, 32), s->n);
    for (int i = 0; i < s->n; i++) {
        cr_assert_eq(now[i].tensor, s->p[i].tensor, "%s: tensor replaced", s->p[i].name);
        expect_same(now[i].tensor, s->copy[i], s->p[i].name);
    }
}

static void snap_free(snapshot *s)
{
    for (int i = 0; i < s->n; i++) wk_tensor_free(s->copy[i]);
    s->n = 0;
}

static void expect_models_equal(const wk_module *a, const wk_module *b)
{
    wk_named_param pa[32], pb[32];
    int n = wk_module_named_parameters(a, true, pa, 32);
    cr_assert_eq(wk_module_named_parameters(b, true, pb, 32), n);
    for (int i = 0; i < n; i++) {
        cr_assert_str_eq(pa[i].name, pb[i].name);
        expect_same(pa[i].tensor, pb[i].tensor, pa[i].name);
    }
}

static bool has(char **list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s)) return true;
    return false;
}

/* ---- round trips ---- */

Test(state_dict_files, round_trip_restores_every_value)
{
    wk_module *a = nested_new(), *b = nested_new();
    /* Make a's state differ from b's everywhere, buffers and the int64 counters too. */
    wk_named_param p[32];
    int n = wk_module_named_parameters(a, true, p, 32);
    for (int i = 0; i < n; i++) {
        if (p[i].tensor->dtype == WK_DTYPE_I64) wk_fill_(p[i].tensor, 40 + i);
        else
            wk_copy_(p[i].tensor,
                     wk_rand(p[i].tensor->shape, p[i].tensor->ndim, WK_DTYPE_F32, NULL));
    }
    const char *path = tmp_path("nested.safetensors");
    cr_assert_eq(wk_state_dict_save(a, path, (const char *[]){"epoch"}, (const char *[]){"3"}, 1),
                 0, "%s", wk_last_error());
    wk_state_dict_report rep;
    memset(&rep, 0x5a, sizeof rep); /* overwritten, not freed */
    cr_assert_eq(wk_state_dict_load(b, path, true, &rep), 0, "%s", wk_last_error());
    cr_assert_eq(rep.nloaded, 13);
    cr_assert_eq(rep.nmissing + rep.nunexpected + rep.nmismatched, 0);
    expect_models_equal(a, b);
    wk_state_dict_report_free(&rep);
    cr_assert_null(rep.missing);

    /* The file holds exactly the state dict, with the metadata. */
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0);
    cr_assert_eq(st.count, 13);
    cr_assert_str_eq(wk_safetensors_meta(&st, "epoch"), "3");
    cr_assert_eq(wk_safetensors_get(&st, "features.1.num_batches_tracked")->dtype, WK_DTYPE_I64);
    cr_assert_eq(wk_safetensors_get(&st, "features.1.num_batches_tracked")->ndim, 0);
    wk_safetensors_free(&st);
    cr_assert_eq(count_files(".tmp."), 0, "temporary file left behind");
    wk_module_free(a);
    wk_module_free(b);
}

Test(state_dict_files, load_keeps_tensor_handles_and_grads)
{
    wk_module *a = mlp_new(1), *b = mlp_new(2);
    wk_tensor *w = wk_module_find(b, "0.weight");
    w->grad = wk_ones_like(w);
    while (w->grad->frame) wk_keep(w->grad);
    const char *path = tmp_path("mlp.safetensors");
    cr_assert_eq(wk_state_dict_save(a, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    cr_assert_eq(wk_state_dict_load(b, path, true, NULL), 0, "%s", wk_last_error());
    cr_assert_eq(wk_module_find(b, "0.weight"), w, "the parameter handle must stay the same");
    cr_assert(w->requires_grad && !w->grad_fn);
    for (int i = 0; i < 12; i++) cr_assert_eq(tu_at(w->grad, i), 1.0);
    expect_models_equal(a, b);
    wk_module_free(a);
    wk_module_free(b);
}

Test(state_dict_files, save_writes_non_contiguous_parameters_in_logical_order)
{
    wk_module *m = wk_module_new("M", NULL, 0);
    wk_tensor *base = wk_arange(0, 6, 1, WK_DTYPE_F32);
    wk_tensor *t = wk_transpose(wk_view(base, WK_SHAPE(2, 3)), 0, 1); /* [3, 2] view */
    wk_module_add_parameter(m, "t", t);
    const char *path = tmp_path("t.safetensors");
    cr_assert_eq(wk_state_dict_save(m, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0);
    expect_values(wk_safetensors_get(&st, "t"), 0, 0, 3, 1, 4, 2, 5);
    wk_safetensors_free(&st);
    wk_module_free(m);
}

Test(state_dict_files, empty_module_round_trips)
{
    wk_module *m = wk_module_new("Empty", NULL, 0);
    const char *path = tmp_path("empty.safetensors");
    cr_assert_eq(wk_state_dict_save(m, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load(m, path, true, &rep), 0, "%s", wk_last_error());
    cr_assert_eq(rep.nloaded, 0);
    wk_state_dict_report_free(&rep);
    wk_module_free(m);
}

/* ---- mismatches ---- */

/* A model like mlp but: "2.bias" absent (missing in the file's view: file has it ->
 * unexpected), "0.weight" [3, 5] (shape), "0.bias" float64 (dtype), extra "3.weight". */
static wk_module *mlp_variant(void)
{
    wk_generator g = wk_generator_make(9);
    wk_module *l0 = wk_module_new("Linear", lin_forward, 0);
    wk_module_add_parameter(l0, "weight", wk_zeros(WK_SHAPE(3, 5), WK_DTYPE_F32));
    wk_module_add_parameter(l0, "bias", wk_zeros(WK_SHAPE(3), WK_DTYPE_F64));
    wk_module *l2 = wk_module_new("Linear", lin_forward, 0);
    wk_module_add_parameter(l2, "weight", wk_zeros(WK_SHAPE(2, 3), WK_DTYPE_F32));
    wk_module *l3 = lin_new(2, 2, &g);
    wk_module *m = wk_sequential_of((wk_module *[]){l0, relu_new(), l2, l3}, 4);
    cr_assert_not_null(m, "%s", wk_last_error());
    return m;
}

Test(state_dict_files, strict_load_reports_every_mismatch_and_changes_nothing)
{
    wk_module *src = mlp_new(1), *dst = mlp_variant();
    const char *path = tmp_path("mlp.safetensors");
    cr_assert_eq(wk_state_dict_save(src, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    snapshot s;
    snap_take(dst, &s);
    wk_state_dict_report rep;
    wk_clear_error();
    cr_assert_eq(wk_state_dict_load(dst, path, true, &rep), -1);
    const char *e = wk_last_error();
    const char *parts[] = {
        "state_dict_load: ",
        path,
        "5 problems loading into Sequential (strict; nothing loaded)",
        "missing \"3.weight\"",
        "missing \"3.bias\"",
        "unexpected \"2.bias\"",
        "0.weight: file has [3, 4], model has [3, 5]",
        "0.bias: file has float32, model has float64",
    };
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
        cr_assert(strstr(e, parts[i]), "error \"%s\" does not mention \"%s\"", e, parts[i]);
    snap_expect_unchanged(dst, &s);
    cr_assert_eq(rep.nloaded, 0);
    cr_assert_eq(rep.nmissing, 2);
    cr_assert_str_eq(rep.missing[0], "3.weight");
    cr_assert_str_eq(rep.missing[1], "3.bias");
    cr_assert_eq(rep.nunexpected, 1);
    cr_assert_str_eq(rep.unexpected[0], "2.bias");
    cr_assert_eq(rep.nmismatched, 2);
    cr_assert_str_eq(rep.mismatched[0], "0.weight: file has [3, 4], model has [3, 5]");
    cr_assert_str_eq(rep.mismatched[1], "0.bias: file has float32, model has float64");
    wk_state_dict_report_free(&rep);
    snap_free(&s);
    wk_module_free(src);
    wk_module_free(dst);
}

Test(state_dict_files, non_strict_load_copies_what_matches)
{
    wk_module *src = mlp_new(1), *dst = mlp_variant();
    const char *path = tmp_path("mlp.safetensors");
    cr_assert_eq(wk_state_dict_save(src, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    snapshot s;
    snap_take(dst, &s);
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load(dst, path, false, &rep), 0, "%s", wk_last_error());
    cr_assert_eq(rep.nloaded, 1);
    expect_same(wk_module_find(dst, "2.weight"), wk_module_find(src, "2.weight"), "2.weight");
    /* Everything else is as it was. */
    for (int i = 0; i < s.n; i++)
        if (strcmp(s.p[i].name, "2.weight")) expect_same(s.p[i].tensor, s.copy[i], s.p[i].name);
    cr_assert_eq(rep.nmissing, 2);
    cr_assert(has(rep.missing, rep.nmissing, "3.weight") && has(rep.missing, 2, "3.bias"));
    cr_assert_eq(rep.nunexpected, 1);
    cr_assert_str_eq(rep.unexpected[0], "2.bias");
    cr_assert_eq(rep.nmismatched, 2);
    wk_state_dict_report_free(&rep);
    /* Without a report it works the same. */
    cr_assert_eq(wk_state_dict_load(dst, path, false, NULL), 0, "%s", wk_last_error());
    snap_free(&s);
    wk_module_free(src);
    wk_module_free(dst);
}

Test(state_dict_files, shape_and_dtype_mismatch_together)
{
    wk_module *a = wk_module_new("A", NULL, 0), *b = wk_module_new("B", NULL, 0);
    wk_module_add_parameter(a, "w", wk_zeros(WK_SHAPE(2), WK_DTYPE_F64));
    wk_module_add_parameter(b, "w", wk_zeros(WK_SHAPE(2, 1), WK_DTYPE_F32));
    const char *path = tmp_path("w.safetensors");
    cr_assert_eq(wk_state_dict_save(a, path, NULL, NULL, 0), 0);
    wk_clear_error();
    cr_assert_eq(wk_state_dict_load(b, path, true, NULL), -1);
    cr_assert(strstr(wk_last_error(), "1 problem loading into B (strict; nothing loaded): w: "
                                      "file has [2] float64, model has [2, 1] float32"),
              "%s", wk_last_error());
    wk_module_free(a);
    wk_module_free(b);
}

Test(state_dict_files, many_mismatches_are_all_in_the_report)
{
    /* 60 file entries the model lacks: the message lists what fits, the report all. */
    wk_module *big = wk_module_new("Big", NULL, 0), *small = wk_module_new("Small", NULL, 0);
    for (int i = 0; i < 60; i++) {
        char name[32];
        snprintf(name, sizeof name, "a_rather_long_parameter_name_%02d", i);
        wk_module_add_parameter(big, name, wk_zeros(WK_SHAPE(1), WK_DTYPE_F32));
    }
    const char *path = tmp_path("big.safetensors");
    cr_assert_eq(wk_state_dict_save(big, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load(small, path, true, &rep), -1);
    const char *e = wk_last_error();
    cr_assert(strstr(e, "60 problems") &&
                  strstr(e, "unexpected \"a_rather_long_parameter_name_00\"") &&
                  strstr(e, "more (see the report)"),
              "%s", e);
    cr_assert_lt(strlen(e), 1023);
    cr_assert_eq(rep.nunexpected, 60);
    cr_assert_str_eq(rep.unexpected[59], "a_rather_long_parameter_name_59");
    wk_state_dict_report_free(&rep);
    wk_module_free(big);
    wk_module_free(small);
}

/* ---- prefixes (checkpoints holding several state dicts) ---- */

Test(state_dict_files, prefixed_entries_share_one_file)
{
    wk_module *model = mlp_new(1), *ema = mlp_new(2);
    wk_named_tensor *items = NULL;
    int n = 0;
    cr_assert_eq(wk_state_dict_append(model, "model.", &items, &n), 0);
    cr_assert_eq(wk_state_dict_append(ema, "ema.", &items, &n), 0);
    cr_assert_eq(n, 8);
    cr_assert_str_eq(items[0].name, "model.0.weight");
    cr_assert_str_eq(items[4].name, "ema.0.weight");
    cr_assert_eq(items[5].tensor, wk_module_find(ema, "0.bias")); /* borrowed */
    /* A foreign entry, as an optimizer would add. */
    wk_tensor *step = wk_keep(wk_zeros(WK_SHAPE(1), WK_DTYPE_I64));
    wk_named_tensor *grown = realloc(items, (size_t)(n + 1) * sizeof *items);
    cr_assert_not_null(grown);
    items = grown;
    items[n].name = strdup("optim.step");
    items[n++].tensor = step;
    const char *path = tmp_path("ckpt.safetensors");
    cr_assert_eq(wk_safetensors_save(path, items, n, NULL, NULL, 0), 0, "%s", wk_last_error());
    wk_state_dict_items_free(items, n);

    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(path, &st), 0);
    wk_module *m2 = mlp_new(3), *e2 = mlp_new(4);
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load_from(m2, &st, "model.", true, &rep), 0, "%s", wk_last_error());
    cr_assert_eq(rep.nloaded, 4);
    cr_assert_eq(rep.nunexpected, 0, "entries under other prefixes are not unexpected");
    wk_state_dict_report_free(&rep);
    cr_assert_eq(wk_state_dict_load_from(e2, &st, "ema.", true, NULL), 0, "%s", wk_last_error());
    expect_models_equal(m2, model);
    expect_models_equal(e2, ema);

    /* Without a prefix every entry counts: the prefixed names are all unexpected. */
    wk_clear_error();
    cr_assert_eq(wk_state_dict_load_from(m2, &st, NULL, true, &rep), -1);
    cr_assert(strstr(wk_last_error(), "state_dict_load: safetensors: 13 problems"), "%s",
              wk_last_error());
    cr_assert_eq(rep.nmissing, 4);
    cr_assert_eq(rep.nunexpected, 9);
    wk_state_dict_report_free(&rep);

    /* A prefix with a missing and an unexpected entry reports them without the prefix. */
    wk_module *lin = lin_new(4, 3, NULL);
    cr_assert_eq(wk_state_dict_load_from(lin, &st, "model.0.", false, &rep), 0);
    cr_assert_eq(rep.nloaded, 2);
    cr_assert_eq(rep.nunexpected, 0);
    wk_state_dict_report_free(&rep);
    wk_module *seq1 = wk_sequential_of((wk_module *[]){lin_new(4, 3, NULL)}, 1);
    wk_clear_error();
    cr_assert_eq(wk_state_dict_load_from(seq1, &st, "ema.", true, &rep), -1);
    cr_assert(strstr(wk_last_error(), "prefix \"ema.\": 2 problems") &&
                  strstr(wk_last_error(), "unexpected \"ema.2.weight\""), "%s", wk_last_error());
    cr_assert_str_eq(rep.unexpected[0], "2.bias");
    wk_state_dict_report_free(&rep);

    wk_safetensors_free(&st);
    wk_tensor_free(step);
    wk_module_free(lin);
    wk_module_free(seq1);
    wk_module_free(model);
    wk_module_free(ema);
    wk_module_free(m2);
    wk_module_free(e2);
}

Test(state_dict, append_and_argument_errors)
{
    wk_named_tensor *items = NULL;
    int n = 0;
    wk_module *empty = wk_module_new("Empty", NULL, 0);
    cr_assert_eq(wk_state_dict_append(empty, "x.", &items, &n), 0);
    cr_assert_eq(n, 0);
    cr_assert_eq(wk_state_dict_append(NULL, "x.", &items, &n), -1);
    cr_assert(strstr(wk_last_error(), "state_dict_append: module is NULL"));
    cr_assert_eq(wk_state_dict_append(empty, "x.", NULL, &n), -1);
    wk_state_dict_items_free(NULL, 0);
    cr_assert_eq(wk_state_dict_save(NULL, "/tmp/x", NULL, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "state_dict_save: module is NULL"));
    cr_assert_eq(wk_state_dict_load(NULL, "/tmp/x", true, NULL), -1);
    cr_assert(strstr(wk_last_error(), "state_dict_load: module is NULL"));
    cr_assert_eq(wk_state_dict_load_from(empty, NULL, NULL, true, NULL), -1);
    cr_assert(strstr(wk_last_error(), "safetensors struct is NULL"));
    wk_state_dict_report_free(NULL);

    /* Names longer than wk_named_param can hold are refused, not truncated. */
    wk_module *m = wk_module_new("Deep", NULL, 0), *cur = m;
    for (int i = 0; i < 4; i++) {
        char name[65];
        memset(name, 'a' + i, 64);
        name[64] = '\0';
        cur = wk_module_add_child(cur, name, wk_module_new("Deep", NULL, 0));
    }
    wk_module_add_parameter(cur, "weight", wk_zeros(WK_SHAPE(1), WK_DTYPE_F32));
    cr_assert_eq(wk_state_dict_save(m, "/tmp/never-written.safetensors", NULL, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "is over 254 characters"), "%s", wk_last_error());
    cr_assert_eq(access("/tmp/never-written.safetensors", F_OK), -1);
    wk_module_free(m);
    wk_module_free(empty);
}

/* ---- damaged files ---- */

Test(state_dict_files, damaged_files_are_errors_and_change_nothing)
{
    wk_module *src = mlp_new(1), *dst = mlp_new(2);
    const char *good = tmp_path("good.safetensors");
    cr_assert_eq(wk_state_dict_save(src, good, NULL, NULL, 0), 0);
    size_t size;
    unsigned char *bytes = read_all(good, &size);
    snapshot s;
    snap_take(dst, &s);
    const char *bad = tmp_path("bad.safetensors");
    for (int strict = 0; strict < 2; strict++) {
        /* Truncated in the data, in the header, in the size prefix. */
        size_t cuts[] = {size - 1, size / 2, 20, 5, 0};
        for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
            write_all(bad, bytes, cuts[i]);
            wk_state_dict_report rep;
            wk_clear_error();
            cr_assert_eq(wk_state_dict_load(dst, bad, strict, &rep), -1, "cut at %zu", cuts[i]);
            cr_assert(strstr(wk_last_error(), "safetensors_load: ") &&
                          strstr(wk_last_error(), bad), "%s", wk_last_error());
            cr_assert_eq(rep.nloaded, 0);
            snap_expect_unchanged(dst, &s);
        }
        /* A header that is not JSON, and a huge header size. */
        unsigned char *broken = malloc(size);
        memcpy(broken, bytes, size);
        broken[9] = '[';
        write_all(bad, broken, size);
        expect_error(wk_state_dict_load(dst, bad, strict, NULL) ? NULL : dst, "not valid JSON");
        memset(broken, 0xff, 8);
        write_all(bad, broken, size);
        expect_error(wk_state_dict_load(dst, bad, strict, NULL) ? NULL : dst, "over the");
        free(broken);
        expect_error(wk_state_dict_load(dst, tmp_path("absent.safetensors"), strict, NULL) ? NULL
                                                                                          : dst,
                     "cannot open");
        snap_expect_unchanged(dst, &s);
    }
    free(bytes);
    snap_free(&s);
    wk_module_free(src);
    wk_module_free(dst);
}

/* ---- atomic saves ---- */

Test(state_dict_files, failed_save_leaves_the_old_file_and_no_temporary)
{
    wk_module *a = mlp_new(1), *b = mlp_new(2);
    const char *path = tmp_path("model.safetensors");
    cr_assert_eq(wk_state_dict_save(a, path, NULL, NULL, 0), 0);
    size_t n0, n1;
    unsigned char *before = read_all(path, &n0);
    /* Duplicate metadata keys: refused before anything is written. */
    cr_assert_eq(wk_state_dict_save(b, path, (const char *[]){"k", "k"},
                                    (const char *[]){"1", "2"}, 2), -1);
    cr_assert(strstr(wk_last_error(), "metadata key \"k\" is used twice"), "%s", wk_last_error());
    unsigned char *after = read_all(path, &n1);
    cr_assert(n0 == n1 && !memcmp(before, after, n0), "the old file was changed");
    free(after);
    cr_assert_eq(count_files(".tmp."), 0);

    /* The target is a folder: the temporary file is written, the rename fails, the
     * temporary is removed and the folder is left alone. */
    const char *dir = tmp_path("adir.safetensors");
    cr_assert_eq(mkdir(dir, 0700), 0);
    cr_assert_eq(wk_state_dict_save(b, dir, NULL, NULL, 0), -1);
    cr_assert(strstr(wk_last_error(), "cannot rename"), "%s", wk_last_error());
    struct stat sb;
    cr_assert(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode));
    cr_assert_eq(count_files(".tmp."), 0, "temporary file left behind");

    /* A successful save replaces the old file as a whole. */
    cr_assert_eq(wk_state_dict_save(b, path, NULL, NULL, 0), 0);
    wk_module *c = mlp_new(3);
    cr_assert_eq(wk_state_dict_load(c, path, true, NULL), 0);
    expect_models_equal(b, c);
    free(before);
    wk_module_free(a);
    wk_module_free(b);
    wk_module_free(c);
}

/* ---- files exchanged with PyTorch ---- */

Test(state_dict, loads_a_state_dict_written_by_torch)
{
    wk_module *mlp = mlp_new(1);
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load(mlp, FIX("torch_mlp.safetensors"), true, &rep), 0, "%s",
                 wk_last_error());
    cr_assert_eq(rep.nloaded, 4);
    wk_state_dict_report_free(&rep);
    /* Values: the file's, element by element, under torch's names. */
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIX("torch_mlp.safetensors"), &st), 0);
    const char *names[] = {"0.weight", "0.bias", "2.weight", "2.bias"};
    for (int i = 0; i < 4; i++)
        expect_same(wk_module_find(mlp, names[i]), wk_safetensors_get(&st, names[i]), names[i]);
    /* Spot values printed by the generator (torch's own numbers). */
    cr_assert_float_eq(tu_at(wk_module_find(mlp, "0.weight"), 0), -0.4536740779876709, 1e-7);
    cr_assert_float_eq(tu_at(wk_module_find(mlp, "2.bias"), 1), -0.03524038568139076, 1e-8);
    wk_safetensors_free(&st);

    /* And the loaded model computes torch's outputs. */
    cr_assert_eq(wk_safetensors_load(FIX("torch_mlp_io.safetensors"), &st), 0);
    wk_tensor *y = wk_module_forward(mlp, wk_safetensors_get(&st, "x"));
    wk_tensor *ref = wk_safetensors_get(&st, "y");
    expect_shape(y, 5, 2);
    for (int64_t i = 0; i < 10; i++)
        cr_assert(fabs(tu_at(y, i) - tu_at(ref, i)) <= 1e-6 + 1e-5 * fabs(tu_at(ref, i)),
                  "y[%lld] = %.9g, torch %.9g", (long long)i, tu_at(y, i), tu_at(ref, i));
    wk_safetensors_free(&st);
    wk_module_free(mlp);
}

Test(state_dict, nested_model_matches_torch_names_order_and_values)
{
    wk_module *net = nested_new();
    wk_safetensors st;
    cr_assert_eq(wk_safetensors_load(FIX("torch_nested.safetensors"), &st), 0);
    /* torch's state_dict() and named_parameters() orders, from the generator. */
    const char *keys[] = {"state_dict_order", "named_parameters_order"};
    for (int k = 0; k < 2; k++) {
        cJSON *order = cJSON_Parse(wk_safetensors_meta(&st, keys[k]));
        cr_assert(cJSON_IsArray(order));
        wk_named_param p[32];
        int n = wk_module_named_parameters(net, k == 0, p, 32);
        cr_assert_eq(n, cJSON_GetArraySize(order), "%s: %d names", keys[k], n);
        int i = 0;
        for (cJSON *e = order->child; e; e = e->next, i++)
            cr_assert_str_eq(p[i].name, e->valuestring, "%s[%d]", keys[k], i);
        cJSON_Delete(order);
    }
    wk_state_dict_report rep;
    cr_assert_eq(wk_state_dict_load_from(net, &st, NULL, true, &rep), 0, "%s", wk_last_error());
    cr_assert_eq(rep.nloaded, 13);
    wk_state_dict_report_free(&rep);
    for (int i = 0; i < st.count; i++)
        expect_same(wk_module_find(net, st.items[i].name), st.items[i].tensor, st.items[i].name);
    cr_assert_eq(wk_item(wk_module_find(net, "features.1.num_batches_tracked")), 3);
    cr_assert_eq(wk_item(wk_module_find(net, "step")), 7);
    wk_safetensors_free(&st);
    wk_module_free(net);
}

Test(state_dict_files, saved_bytes_match_the_reference_writer)
{
    /* safetensors.torch.save_file wrote torch_mlp.safetensors; wick saving the same state
     * dict must produce the same bytes (header JSON, order, padding, offsets, data). */
    wk_module *mlp = mlp_new(1);
    cr_assert_eq(wk_state_dict_load(mlp, FIX("torch_mlp.safetensors"), true, NULL), 0);
    const char *path = tmp_path("mlp.safetensors");
    cr_assert_eq(wk_state_dict_save(mlp, path, NULL, NULL, 0), 0, "%s", wk_last_error());
    size_t na, nb;
    unsigned char *a = read_all(path, &na), *b = read_all(FIX("torch_mlp.safetensors"), &nb);
    cr_assert_eq(na, nb, "wick wrote %zu bytes, the reference %zu", na, nb);
    for (size_t i = 0; i < na; i++)
        cr_assert_eq(a[i], b[i], "byte %zu differs: 0x%02x vs 0x%02x ('%c' vs '%c')", i, a[i],
                     b[i], a[i], b[i]);
    /* And wick reads its own bytes back. */
    wk_module *again = mlp_new(2);
    cr_assert_eq(wk_state_dict_load(again, path, true, NULL), 0, "%s", wk_last_error());
    expect_models_equal(mlp, again);
    free(a);
    free(b);
    wk_module_free(mlp);
    wk_module_free(again);
}

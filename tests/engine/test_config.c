/* Config files: deep merge and list replacement over _base_ files (one, several, nested
 * with relative paths), _delete_, cycles, --set typing and paths, the file of origin of
 * every key, printing, and the reader's types, defaults, unknown keys and did-you-mean. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_util.h"

static char *tmpdir;

static void setup(void)
{
    tu_setup();
    cr_assert_not_null(tmpdir = tu_tmpdir_new("wick_cfg_"));
}

static void teardown(void)
{
    cr_assert_eq(tu_tmpdir_remove(tmpdir), 0);
    tmpdir = NULL;
    tu_teardown();
}

TestSuite(config, .init = setup, .fini = teardown);

/* The path of name in the temp dir (static buffers, 4 in rotation). */
static const char *tmp_path(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ & 3];
    snprintf(b, 512, "%s/%s", tmpdir, name);
    return b;
}

static void write_file(const char *name, const char *text)
{
    const char *p = tmp_path(name);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", p);
    char *slash = strrchr(dir, '/');
    *slash = '\0';
    mkdir(dir, 0755); /* one level of sub-folders is enough here */
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f, "cannot write %s", p);
    fputs(text, f);
    fclose(f);
}

static wk_config *load(const char *name)
{
    wk_config *cfg = wk_config_load(tmp_path(name));
    cr_assert_not_null(cfg, "loading %s: %s", name, wk_last_error());
    return cfg;
}

/* The merged config, compact (cJSON's unformatted print, keys in order). */
static char *compact(const wk_config *cfg)
{
    return cJSON_PrintUnformatted(wk_config_json(cfg));
}

#define expect_json(cfg, text)                                                            \
    do {                                                                                  \
        char *got_ = compact(cfg);                                                        \
        cr_assert_str_eq(got_, text);                                                     \
        cJSON_free(got_);                                                                 \
    } while (0)

/* Error text with the temp dir removed, so expectations can be exact. */
static const char *strip_dir(const char *msg)
{
    static char buf[4096];
    char pre[300];
    snprintf(pre, sizeof pre, "%s/", tmpdir);
    size_t k = 0, pl = strlen(pre);
    for (const char *p = msg; *p && k + 1 < sizeof buf;) {
        if (!strncmp(p, pre, pl)) p += pl;
        else buf[k++] = *p++;
    }
    buf[k] = '\0';
    return buf;
}

#define expect_origin(cfg, path, file)                                                    \
    cr_assert_str_eq(strip_dir(wk_config_origin(cfg, path)), file, "origin of %s", path)

Test(config, deep_merge_replaces_lists_and_scalars)
{
    write_file("base.json", "{\"model\": {\"type\": \"MLP\", \"hidden\": [64, 64], \"act\": "
                            "\"relu\", \"opt\": {\"a\": 1, \"b\": 2}}, \"runner\": {\"seed\": 1}}");
    write_file("main.json", "{\"_base_\": \"base.json\", \"model\": {\"hidden\": [8], "
                            "\"opt\": {\"b\": 3, \"c\": 4}, \"extra\": true}, \"new\": null}");
    wk_config *cfg = load("main.json");
    expect_json(cfg, "{\"model\":{\"type\":\"MLP\",\"hidden\":[8],\"act\":\"relu\",\"opt\":"
                     "{\"a\":1,\"b\":3,\"c\":4},\"extra\":true},\"runner\":{\"seed\":1},"
                     "\"new\":null}");
    expect_origin(cfg, "model.type", "base.json");
    expect_origin(cfg, "model.hidden", "main.json");
    expect_origin(cfg, "model.hidden.0", "main.json");
    expect_origin(cfg, "model.opt.a", "base.json");
    expect_origin(cfg, "model.opt.b", "main.json");
    expect_origin(cfg, "model.opt", "main.json");
    expect_origin(cfg, "runner.seed", "base.json");
    expect_origin(cfg, "runner.not_there", "base.json"); /* nearest ancestor */
    expect_origin(cfg, "", "main.json");
    cr_assert_str_eq(wk_config_name(cfg), "main");
    cr_assert_str_eq(wk_config_file(cfg), tmp_path("main.json"));
    wk_config_free(cfg);
}

Test(config, an_object_replaces_a_scalar_and_back)
{
    write_file("base.json", "{\"a\": 1, \"b\": {\"x\": 1}, \"c\": [1, {\"y\": 2}]}");
    write_file("main.json", "{\"_base_\": \"base.json\", \"a\": {\"k\": 2}, \"b\": 5, "
                            "\"c\": {\"z\": 3}}");
    wk_config *cfg = load("main.json");
    expect_json(cfg, "{\"a\":{\"k\":2},\"b\":5,\"c\":{\"z\":3}}");
    expect_origin(cfg, "a.k", "main.json");
    expect_origin(cfg, "b", "main.json");
    expect_origin(cfg, "b.x", "main.json"); /* b.x is gone: b's origin */
    wk_config_free(cfg);
}

Test(config, delete_replaces_instead_of_merging)
{
    write_file("base.json", "{\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1, \"momentum\": "
                            "0.9}, \"keep\": {\"a\": 1}}");
    write_file("main.json", "{\"_base_\": \"base.json\", \"optimizer\": {\"_delete_\": true, "
                            "\"type\": \"Adam\", \"lr\": 0.001, \"inner\": {\"_delete_\": "
                            "false, \"q\": 1}}, \"keep\": {\"_delete_\": false, \"b\": 2}}");
    wk_config *cfg = load("main.json");
    expect_json(cfg, "{\"optimizer\":{\"type\":\"Adam\",\"lr\":0.001,\"inner\":{\"q\":1}},"
                     "\"keep\":{\"a\":1,\"b\":2}}");
    expect_origin(cfg, "optimizer.type", "main.json");
    expect_origin(cfg, "optimizer.momentum", "main.json");
    expect_origin(cfg, "keep.a", "base.json");
    char *text = wk_config_to_string(cfg);
    cr_assert_null(strstr(text, "_delete_"), "%s", text);
    free(text);
    wk_config_free(cfg);
}

Test(config, later_bases_win_and_the_file_wins_over_them)
{
    write_file("b1.json", "{\"k\": 1, \"m\": 1, \"o\": {\"x\": 1, \"y\": 1}}");
    write_file("b2.json", "{\"k\": 2, \"o\": {\"y\": 2}, \"n\": 2}");
    write_file("main.json", "{\"_base_\": [\"b1.json\", \"b2.json\"], \"n\": 3}");
    wk_config *cfg = load("main.json");
    expect_json(cfg, "{\"k\":2,\"m\":1,\"o\":{\"x\":1,\"y\":2},\"n\":3}");
    expect_origin(cfg, "k", "b2.json");
    expect_origin(cfg, "m", "b1.json");
    expect_origin(cfg, "o.x", "b1.json");
    expect_origin(cfg, "o.y", "b2.json");
    expect_origin(cfg, "n", "main.json");
    wk_config_free(cfg);
}

Test(config, nested_bases_are_relative_to_the_including_file)
{
    write_file("root.json", "{\"a\": 0, \"from\": \"root\"}");
    write_file("sub/mid.json", "{\"_base_\": \"../root.json\", \"a\": 1, \"mid\": true}");
    write_file("sub/leaf.json", "{\"_base_\": \"mid.json\", \"leaf\": true}");
    write_file("main.json", "{\"_base_\": \"sub/leaf.json\", \"a\": 2}");
    wk_config *cfg = load("main.json");
    expect_json(cfg, "{\"a\":2,\"from\":\"root\",\"mid\":true,\"leaf\":true}");
    expect_origin(cfg, "from", "sub/../root.json");
    expect_origin(cfg, "mid", "sub/mid.json");
    expect_origin(cfg, "leaf", "sub/leaf.json");
    wk_config_free(cfg);
}

Test(config, cycles_name_every_file)
{
    write_file("a.json", "{\"_base_\": \"b.json\", \"x\": 1}");
    write_file("b.json", "{\"_base_\": \"a.json\"}");
    wk_clear_error();
    cr_assert_null(wk_config_load(tmp_path("a.json")));
    cr_assert_str_eq(strip_dir(wk_last_error()),
                     "b.json: _base_ cycle: a.json -> b.json -> a.json");
    write_file("self.json", "{\"_base_\": [\"self.json\"]}");
    cr_assert_null(wk_config_load(tmp_path("self.json")));
    cr_assert_str_eq(strip_dir(wk_last_error()), "self.json: _base_ cycle: self.json -> "
                                                 "self.json");
    /* the same base twice (a diamond) is not a cycle */
    write_file("d0.json", "{\"v\": 0}");
    write_file("d1.json", "{\"_base_\": \"d0.json\", \"v1\": 1}");
    write_file("d2.json", "{\"_base_\": [\"d0.json\", \"d1.json\"]}");
    wk_config *cfg = load("d2.json");
    expect_json(cfg, "{\"v\":0,\"v1\":1}");
    wk_config_free(cfg);
}

Test(config, parse_from_a_string)
{
    wk_config *cfg = wk_config_parse("{\"a\": {\"b\": 1}}", "inline.json");
    cr_assert_not_null(cfg, "%s", wk_last_error());
    expect_origin(cfg, "a.b", "inline.json");
    wk_config_free(cfg);
    cfg = wk_config_parse("[1]", NULL);
    cr_assert_null(cfg);
    cr_assert_str_eq(wk_last_error(), "<string>: expected a JSON object at the top level, got "
                                      "a list of 1 item");
}

Test(config, set_parses_json_values_else_strings)
{
    write_file("c.json", "{\"optimizer\": {\"type\": \"SGD\", \"lr\": 0.1}, \"hooks\": "
                         "[{\"type\": \"A\"}, {\"type\": \"B\"}]}");
    wk_config *cfg = load("c.json");
    const char *sets[] = {"optimizer.lr=1e-3",
                          "optimizer.nesterov=true",
                          "optimizer.type=Adam",
                          "optimizer.betas=[0.8, 0.99]",
                          "optimizer.eps=null",
                          "optimizer.name=\"quoted\"",
                          "optimizer.empty=",
                          "optimizer.text=1,2",
                          "runner.early_stop.patience=3",
                          "hooks.1.type=C",
                          "hooks.2={\"type\": \"D\"}",
                          "model={\"type\": \"MLP\"}",
                          "a.b=x=y"};
    for (size_t i = 0; i < sizeof sets / sizeof sets[0]; i++)
        cr_assert_eq(wk_config_set(cfg, sets[i]), 0, "%s: %s", sets[i], wk_last_error());
    expect_json(cfg, "{\"optimizer\":{\"type\":\"Adam\",\"lr\":0.001,\"nesterov\":true,"
                     "\"betas\":[0.8,0.99],\"eps\":null,\"name\":\"quoted\",\"empty\":\"\","
                     "\"text\":\"1,2\"},\"hooks\":[{\"type\":\"A\"},{\"type\":\"C\"},"
                     "{\"type\":\"D\"}],\"runner\":{\"early_stop\":{\"patience\":3}},"
                     "\"model\":{\"type\":\"MLP\"},\"a\":{\"b\":\"x=y\"}}");
    expect_origin(cfg, "optimizer.lr", "--set");
    expect_origin(cfg, "optimizer.type", "--set");
    expect_origin(cfg, "optimizer", "c.json");
    expect_origin(cfg, "hooks.0.type", "c.json");
    expect_origin(cfg, "hooks.1.type", "--set");
    expect_origin(cfg, "hooks.2.type", "--set");
    expect_origin(cfg, "runner", "--set");
    expect_origin(cfg, "runner.early_stop.patience", "--set");
    /* a set replaces an object wholesale */
    cr_assert_eq(wk_config_set(cfg, "optimizer={\"type\": \"SGD\"}"), 0);
    expect_origin(cfg, "optimizer.lr", "--set");
    wk_config_free(cfg);
}

Test(config, set_errors_name_the_key)
{
    write_file("c.json", "{\"optimizer\": {\"lr\": 0.1}, \"hooks\": [{\"type\": \"A\"}], "
                         "\"n\": null}");
    wk_config *cfg = load("c.json");
    struct {
        const char *set, *error;
    } cases[] = {
        {"optimizer.lr.x=1", "--set optimizer.lr.x=1: optimizer.lr is the number 0.1, not an "
                             "object"},
        {"optimizer.lr", "--set optimizer.lr: expected key=value (e.g. optimizer.lr=0.01)"},
        {"=3", "--set =3: the key is empty"},
        {"optimizer..lr=3", "--set optimizer..lr=3: empty part in the key"},
        {"hooks.x=1", "--set hooks.x=1: hooks is a list: expected an index (0..0), got 'x'"},
        {"hooks.3.type=B", "--set hooks.3.type=B: hooks has 1 item: index 3 is out of range"},
        {"hooks.0.type.y=B", "--set hooks.0.type.y=B: hooks.0.type is the string \"A\", not an "
                             "object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        wk_clear_error();
        cr_assert_eq(wk_config_set(cfg, cases[i].set), -1, "%s succeeded", cases[i].set);
        cr_assert_str_eq(wk_last_error(), cases[i].error);
    }
    /* a null is "not set": setting through it creates the object */
    cr_assert_eq(wk_config_set(cfg, "n.m=1"), 0, "%s", wk_last_error());
    expect_json(cfg, "{\"optimizer\":{\"lr\":0.1},\"hooks\":[{\"type\":\"A\"}],\"n\":{\"m\":1}}");
    wk_config_free(cfg);
}

Test(config, load_errors)
{
    struct {
        const char *text, *error;
    } cases[] = {
        {"{\"model\": {\"type\": \"MLP\",\n  \"x\": }}",
         "broken.json:2:8: invalid JSON near \"}}\""},
        {"{\"a\": 1,}", "broken.json:1:9: invalid JSON at the end of the file (an unclosed "
                       "bracket or a trailing comma?)"},
        {"{\"a\": 1\n\n", "broken.json:1:7: invalid JSON at the end of the file (an unclosed "
                          "bracket or a trailing comma?)"},
        {"{\"a\": [1,], \"b\": 2}", "broken.json:1:10: invalid JSON near \"], \"b\": 2}\""},
        {"", "broken.json:1:1: the file is empty (expected a JSON object)"},
        {" \n ", "broken.json:1:1: the file is empty (expected a JSON object)"},
        {"{} {}", "broken.json:1:4: unexpected text after the JSON object"},
        {"{\"_base_\": 3}",
         "broken.json: _base_: expected a file name or a list of file names, got the number 3"},
        {"{\"_base_\": [\"a.json\", 1]}",
         "broken.json: _base_: expected a file name or a list of file names, got a list of 2 "
         "items"},
        {"{\"_base_\": \"\"}", "broken.json: _base_: expected a file name or a list of file "
                               "names, got the string \"\""},
        {"{\"_base_\": \"nope.json\"}",
         "broken.json: _base_: cannot open nope.json (nope.json): No such file or directory"},
        {"{\"a\": {\"_delete_\": 1}}",
         "broken.json: a._delete_: expected true or false, got the number 1"},
        {"{\"a\": {\"b\": 1, \"b\": 2}}", "broken.json: a.b: key given twice"},
        {"[1, 2]", "broken.json: expected a JSON object at the top level, got a list of 2 "
                   "items"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file("broken.json", cases[i].text);
        wk_clear_error();
        cr_assert_null(wk_config_load(tmp_path("broken.json")), "case %zu loaded", i);
        cr_assert_str_eq(strip_dir(wk_last_error()), cases[i].error, "case %zu: %s", i,
                         wk_last_error());
    }
    wk_clear_error();
    cr_assert_null(wk_config_load(tmp_path("missing.json")));
    cr_assert_str_eq(strip_dir(wk_last_error()),
                     "cannot open config missing.json: No such file or directory");
    /* an error inside a base names the base */
    write_file("bad_base.json", "{\"a\": tru}");
    write_file("main.json", "{\"_base_\": \"bad_base.json\"}");
    cr_assert_null(wk_config_load(tmp_path("main.json")));
    cr_assert_str_eq(strip_dir(wk_last_error()), "bad_base.json:1:7: invalid JSON near "
                                                 "\"tru}\"");
}

Test(config, prints_pretty_json_that_reads_back)
{
    write_file("c.json", "{\"model\": {\"type\": \"MLP\", \"hidden\": [64, 64], \"s\": "
                         "\"a\\\"b\\n\"}, \"val_evaluator\": [{\"type\": \"Accuracy\"}, "
                         "{\"type\": \"Loss\"}], \"e\": {}, \"l\": [], \"x\": 1e-05, "
                         "\"b\": false, \"n\": null}");
    wk_config *cfg = load("c.json");
    char *text = wk_config_to_string(cfg);
    cr_assert_str_eq(text, "{\n"
                           "  \"model\": {\n"
                           "    \"type\": \"MLP\",\n"
                           "    \"hidden\": [64, 64],\n"
                           "    \"s\": \"a\\\"b\\n\"\n"
                           "  },\n"
                           "  \"val_evaluator\": [\n"
                           "    {\n"
                           "      \"type\": \"Accuracy\"\n"
                           "    },\n"
                           "    {\n"
                           "      \"type\": \"Loss\"\n"
                           "    }\n"
                           "  ],\n"
                           "  \"e\": {},\n"
                           "  \"l\": [],\n"
                           "  \"x\": 1e-05,\n"
                           "  \"b\": false,\n"
                           "  \"n\": null\n"
                           "}");
    cJSON *back = cJSON_Parse(text);
    cr_assert(cJSON_Compare(back, wk_config_json(cfg), 1), "the printed config reads back");
    cJSON_Delete(back);
    free(text);
    wk_config_free(cfg);
}

/* ---- the reader ---- */

Test(config, reader_types_defaults_and_null)
{
    wk_config *cfg = wk_config_parse(
        "{\"o\": {\"n\": 0.5, \"i\": 3, \"b\": true, \"s\": \"x\", \"l\": [1, 2], \"one\": 4,"
        " \"z\": null, \"c\": {\"k\": 1}, \"objs\": [{\"t\": 1}, {\"t\": 2}]}}",
        "r.json");
    cr_assert_not_null(cfg);
    wk_cfg root = wk_config_root(cfg), o, child, absent;
    cr_assert_eq(wk_cfg_object(&root, "o", &o), 1);
    cr_assert_str_eq(o.path, "o");
    double d;
    int64_t i;
    bool b;
    const char *s;
    cr_assert_eq(wk_cfg_number(&o, "n", 9, &d), 1);
    cr_assert_eq(d, 0.5);
    cr_assert_eq(wk_cfg_number(&o, "i", 9, &d), 1); /* an integer is a number */
    cr_assert_eq(d, 3);
    cr_assert_eq(wk_cfg_int(&o, "i", 9, &i), 1);
    cr_assert_eq(i, 3);
    cr_assert_eq(wk_cfg_bool(&o, "b", false, &b), 1);
    cr_assert(b);
    cr_assert_eq(wk_cfg_string(&o, "s", "d", &s), 1);
    cr_assert_str_eq(s, "x");
    cr_assert_eq(wk_cfg_number(&o, "z", 7, &d), 0, "null reads as not set");
    cr_assert_eq(d, 7);
    cr_assert_eq(wk_cfg_int(&o, "missing", -2, &i), 0);
    cr_assert_eq(i, -2);
    cr_assert(!wk_cfg_has(&o, "z"));
    cr_assert_eq(wk_cfg_kind_of(&o, "l"), WK_CFG_LIST);
    int64_t l[4];
    int n;
    cr_assert_eq(wk_cfg_int_list(&o, "l", l, 4, &n), 1);
    cr_assert_eq(n, 2);
    cr_assert_eq(l[1], 2);
    double one[2];
    cr_assert_eq(wk_cfg_number_list(&o, "one", one, 2, &n), 1);
    cr_assert_eq(n, 1, "a single number is a list of one");
    cr_assert_eq(one[0], 4);
    cr_assert_eq(wk_cfg_object(&o, "c", &child), 1);
    cr_assert_str_eq(child.path, "o.c");
    cr_assert_eq(wk_cfg_int(&child, "k", 0, &i), 1);
    cr_assert_eq(wk_cfg_finish(&child), 0);
    cr_assert_eq(wk_cfg_object(&o, "nothing", &absent), 0);
    cr_assert_null(absent.json);
    cr_assert_eq(wk_cfg_int(&absent, "k", 5, &i), 0);
    cr_assert_eq(i, 5);
    cr_assert_eq(wk_cfg_finish(&absent), 0);
    cr_assert_eq(wk_cfg_items(&o, "objs"), 2);
    cr_assert_eq(wk_cfg_items(&o, "c"), 1);
    cr_assert_eq(wk_cfg_items(&o, "nothing"), 0);
    cr_assert_eq(wk_cfg_item(&o, "objs", 1, &child), 0);
    cr_assert_str_eq(child.path, "o.objs.1");
    cr_assert_eq(wk_cfg_int(&child, "t", 0, &i), 1);
    cr_assert_eq(i, 2);
    cr_assert_eq(wk_cfg_finish(&child), 0);
    cr_assert_eq(wk_cfg_item(&o, "objs", 0, &child), 0);
    cr_assert_eq(wk_cfg_finish(&child), -1, "objs.0.t was not read");
    cr_assert_eq(wk_cfg_item(&o, "c", 0, &child), 0);
    cr_assert_str_eq(child.path, "o.c");
    wk_config_clear_errors(cfg);
    o.errors_at_start = 0;
    cr_assert_eq(wk_cfg_finish(&o), 0, "%s", wk_last_error());
    wk_config_free(cfg);
}

Test(config, reader_reports_every_problem_at_once)
{
    write_file("base.json", "{\"opt\": {\"lr\": \"fast\"}}");
    write_file("main.json", "{\"_base_\": \"base.json\", \"opt\": {\"momentun\": 0.9, \"steps\": "
                            "2.5, \"flag\": 1, \"name\": 3, \"mode\": \"mxa\", \"list\": [1, "
                            "\"a\"], \"long\": [1, 2, 3], \"sub\": 4, \"zzz\": 1}}");
    wk_config *cfg = load("main.json");
    cr_assert_eq(wk_config_set(cfg, "opt.extra=2"), 0);
    wk_cfg root = wk_config_root(cfg), opt, sub;
    cr_assert_eq(wk_cfg_object(&root, "opt", &opt), 1);
    snprintf(opt.what, sizeof opt.what, "Thing");
    double d, list[2];
    int64_t i;
    bool b;
    const char *s;
    int n;
    static const char *const modes[] = {"min", "max", NULL};
    cr_assert_eq(wk_cfg_number(&opt, "lr", 0.1, &d), -1);
    cr_assert_eq(d, 0.1, "the default on error");
    wk_cfg_number(&opt, "momentum", 0, &d);
    cr_assert_eq(wk_cfg_int(&opt, "steps", 1, &i), -1);
    cr_assert_eq(wk_cfg_bool(&opt, "flag", false, &b), -1);
    cr_assert_eq(wk_cfg_string(&opt, "name", "n", &s), -1);
    cr_assert_eq(wk_cfg_choice(&opt, "mode", "min", modes, &s), -1);
    cr_assert_str_eq(s, "min");
    cr_assert_eq(wk_cfg_number_list(&opt, "list", list, 2, &n), -1);
    cr_assert_eq(wk_cfg_number_list(&opt, "long", list, 2, &n), -1);
    cr_assert_eq(wk_cfg_object(&opt, "sub", &sub), -1);
    cr_assert_eq(wk_cfg_require(&opt, "needed"), -1);
    wk_cfg_int(&opt, "extra", 0, &i);
    wk_cfg_int(&opt, "extras", 0, &i);
    cr_assert_eq(wk_cfg_finish(&opt), -1);
    const char *expected =
        "base.json: opt.lr: expected a number, got the string \"fast\"\n"
        "main.json: opt.steps: expected an integer, got the number 2.5\n"
        "main.json: opt.flag: expected true or false, got the number 1\n"
        "main.json: opt.name: expected a string, got the number 3\n"
        "main.json: opt.mode: expected one of \"min\", \"max\", got the string \"mxa\"; did you "
        "mean \"max\"?\n"
        "main.json: opt.list.1: expected a number, got the string \"a\"\n"
        "main.json: opt.long: expected at most 2 items, got a list of 3\n"
        "main.json: opt.sub: expected an object, got the number 4\n"
        "main.json: opt.needed: missing (Thing needs it)\n"
        "main.json: opt.momentun: unknown key; did you mean 'momentum'? (Thing accepts lr, "
        "momentum, steps, flag, name, mode, list, long, sub, needed, extra, extras)\n"
        "main.json: opt.zzz: unknown key (Thing accepts lr, momentum, steps, flag, name, mode, "
        "list, long, sub, needed, extra, extras)";
    cr_assert_str_eq(strip_dir(wk_config_errors(cfg)), expected);
    /* wk_last_error() holds whole lines up to its size, then a count */
    cr_assert(!strncmp(strip_dir(wk_last_error()), expected, 400), "%s", wk_last_error());
    cr_assert(strstr(wk_last_error(), "... and 2 more problems"), "%s", wk_last_error());
    cr_assert_eq(wk_config_error_count(cfg), 11);
    /* a second finish does not repeat the unknown keys */
    cr_assert_eq(wk_cfg_finish(&opt), -1);
    cr_assert_eq(wk_config_error_count(cfg), 11);
    /* an override is blamed on --set */
    cr_assert_eq(wk_config_set(cfg, "opt.extra=\"two\""), 0);
    wk_config_clear_errors(cfg);
    cr_assert_eq(wk_cfg_int(&opt, "extra", 0, &i), -1);
    cr_assert_str_eq(wk_config_errors(cfg),
                     "--set: opt.extra: expected an integer, got the string \"two\"");
    wk_config_free(cfg);
}

Test(config, many_problems_fit_the_error_buffer)
{
    char text[8192] = "{\"o\": {";
    for (int k = 0; k < 60; k++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s\"key_%02d\": 1",
                 k ? ", " : "", k);
    strcat(text, "}}");
    wk_config *cfg = wk_config_parse(text, "many.json");
    cr_assert_not_null(cfg);
    wk_cfg root = wk_config_root(cfg), o;
    wk_cfg_object(&root, "o", &o);
    cr_assert_eq(wk_cfg_finish(&o), -1);
    cr_assert_eq(wk_config_error_count(cfg), 60);
    cr_assert(strstr(wk_last_error(), "more problems (wk_config_errors lists them all)"), "%s",
              wk_last_error());
    cr_assert(strstr(wk_config_errors(cfg), "many.json: o.key_59: unknown key"));
    wk_config_free(cfg);
}

Test(config, top_level_sections)
{
    wk_config *cfg = wk_config_parse(
        "{\"model\": {}, \"train_dataloader\": {}, \"val_dataloader\": {}, \"test_dataloader\":"
        " {}, \"val_evaluator\": [], \"test_evaluator\": {}, \"optimizer\": {}, \"scheduler\":"
        " null, \"runner\": {}, \"hooks\": []}",
        "ok.json");
    cr_assert_eq(wk_config_check_sections(cfg), 0, "%s", wk_last_error());
    wk_config_free(cfg);
    cfg = wk_config_parse("{\"modle\": {}, \"whatever\": 1}", "bad.json");
    cr_assert_eq(wk_config_check_sections(cfg), -1);
    cr_assert_str_eq(wk_config_errors(cfg),
                     "bad.json: modle: unknown section; did you mean 'model'? (sections: model, "
                     "train_dataloader, val_dataloader, test_dataloader, val_evaluator, "
                     "test_evaluator, optimizer, scheduler, runner, hooks)\n"
                     "bad.json: whatever: unknown section (sections: model, train_dataloader, "
                     "val_dataloader, test_dataloader, val_evaluator, test_evaluator, "
                     "optimizer, scheduler, runner, hooks)");
    wk_config_free(cfg);
}

Test(config, did_you_mean)
{
    cr_assert_eq(wk_edit_distance("lr", "lr"), 0);
    cr_assert_eq(wk_edit_distance("LR", "lr"), 0);
    cr_assert_eq(wk_edit_distance("momentun", "momentum"), 1);
    cr_assert_eq(wk_edit_distance("", "abc"), 3);
    cr_assert_eq(wk_edit_distance("kitten", "sitting"), 3);
    cr_assert_eq(wk_edit_distance("mxa", "max"), 1);
    const char *c[] = {"lr", "momentum", "weight_decay", "eps"};
    cr_assert_str_eq(wk_did_you_mean("lrr", c, 4), "lr");
    cr_assert_str_eq(wk_did_you_mean("weight_dacay", c, 4), "weight_decay");
    cr_assert_str_eq(wk_did_you_mean("Momentum", c, 4), "momentum");
    cr_assert_null(wk_did_you_mean("xyz", c, 4));
    cr_assert_null(wk_did_you_mean("batch_size", c, 4));
}

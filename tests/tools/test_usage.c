/* `wick` on the command line: --help and --version, and every usage error with its exit
 * code (2) and a message that names what is wrong, before anything runs. */
#include "run.h"
#include "wick.h"

static char *dir;

static void setup(void)
{
    dir = cli_tempdir();
    cli_write_text(dir, "tiny.json", CLI_TINY);
}

static void teardown(void) { cli_rmdir(dir); }

TestSuite(usage, .init = setup, .fini = teardown);

Test(usage, help_and_version)
{
    const struct {
        const char *args[4];
        const char *want; /* on stdout */
    } cases[] = {
        {{"--help"}, "usage: wick <command>"},
        {{"-h"}, "exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted"},
        {{"train", "--help"}, "usage: wick train CONFIG"},
        {{"train", "tiny.json", "-h"}, "--resume [auto|PATH]"},
        {{"eval", "--help"}, "usage: wick eval CONFIG --checkpoint PATH"},
        {{"inspect", "--help"}, "usage: wick inspect CHECKPOINT"},
        {{"config", "--help"}, "usage: wick config CONFIG"},
        {{"plot", "--help"}, "usage: wick plot WORK_DIR"},
        {{"--version"}, "wick " WK_VERSION "\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cli_result r = cli_run(dir, cases[i].args);
        cr_expect_eq(r.code, 0, "%s %s: exit %d", cases[i].args[0],
                     cases[i].args[1] ? cases[i].args[1] : "", r.code);
        cr_expect(strstr(r.out, cases[i].want), "%s %s: \"%s\" not on stdout: %s",
                  cases[i].args[0], cases[i].args[1] ? cases[i].args[1] : "", cases[i].want,
                  r.out);
        cr_expect_str_empty(r.err, "help goes to stdout, not stderr: %s", r.err);
        cli_result_free(&r);
    }
}

Test(usage, errors_exit_2_and_name_the_problem)
{
    const struct {
        const char *args[10];
        const char *want[4]; /* in stderr; NULL-ended */
    } cases[] = {
        {{NULL}, {"usage: wick <command>"}},
        {{"trian", "tiny.json"}, {"unknown command \"trian\"; did you mean \"train\"?"}},
        {{"inpsect", "x"}, {"did you mean \"inspect\"?"}},
        {{"frobnicate"}, {"unknown command \"frobnicate\"", "usage: wick"}},
        {{"--bogus"}, {"unknown option \"--bogus\""}},
        {{"train"}, {"wick train: missing argument"}},
        {{"train", "tiny.json", "--bogus"}, {"unknown option --bogus", "wick train --help"}},
        {{"train", "tiny.json", "--checkpoint", "x"}, {"unknown option --checkpoint"}},
        {{"train", "tiny.json", "other.json"}, {"unexpected argument \"other.json\""}},
        {{"train", "missing.json"}, {"missing.json", "No such file"}},
        {{"train", "tiny.json", "--set", "optimizer.lr"}, {"--set optimizer.lr", "key=value"}},
        {{"train", "tiny.json", "--set"}, {"--set needs a value"}},
        {{"train", "tiny.json", "--set", "=3"}, {"--set =3: the key is empty"}},
        {{"train", "tiny.json", "--set", "optimizer.lr.x=1"},
         {"--set optimizer.lr.x=1", "optimizer.lr is the number 0.01, not an object"}},
        {{"train", "tiny.json", "--set", "val_evaluator.5.type=Loss"},
         {"val_evaluator", "index 5 is out of range"}},
        {{"train", "tiny.json", "--threads", "0"}, {"--threads 0: expected an integer"}},
        {{"train", "tiny.json", "--threads", "two"}, {"--threads two"}},
        {{"train", "tiny.json", "--threads"}, {"--threads needs a value"}},
        {{"train", "tiny.json", "--seed", "-1"}, {"--seed -1: expected an integer >= 0"}},
        {{"train", "tiny.json", "--seed="}, {"--seed : expected an integer"}},
        {{"train", "tiny.json", "--launcher", "slurm"}, {"--launcher slurm: expected mpi"}},
        {{"train", "tiny.json", "--resume", "gone.safetensors"},
         {"runner.resume", "gone.safetensors", "No such file"}},
        {{"train", "tiny.json", "--load-from", "gone.safetensors"},
         {"runner.load_from", "gone.safetensors", "No such file"}},
        {{"train", "tiny.json", "--quiet=yes"}, {"--quiet takes no value"}},
        {{"eval", "tiny.json"}, {"wick eval: --checkpoint PATH is required"}},
        {{"eval", "tiny.json", "--checkpoint"}, {"--checkpoint needs a value"}},
        {{"eval", "tiny.json", "--checkpoint", "gone.safetensors"},
         {"wick eval", "gone.safetensors", "No such file"}},
        {{"eval", "tiny.json", "--work-dir", "w"}, {"unknown option --work-dir"}},
        {{"eval", "--checkpoint", "x.safetensors"}, {"wick eval: missing argument"}},
        {{"inspect"}, {"usage: wick inspect"}},
        {{"inspect", "a.safetensors", "b.safetensors"}, {"usage: wick inspect"}},
        {{"inspect", "gone.safetensors"}, {"wick inspect", "gone.safetensors", "No such file"}},
        {{"config"}, {"wick config: missing argument"}},
        {{"config", "tiny.json", "--threads", "2"}, {"unknown option --threads"}},
        {{"config", "missing.json"}, {"missing.json", "No such file"}},
        {{"plot"}, {"usage: wick plot"}},
        {{"plot", "nowhere"}, {"wick plot", "nowhere", "No such file"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char what[256] = "wick";
        for (int k = 0; cases[i].args[k]; k++)
            snprintf(what + strlen(what), sizeof what - strlen(what), " %s", cases[i].args[k]);
        cli_result r = cli_run(dir, cases[i].args);
        cli_expect(&r, 2, what, cases[i].want);
        cr_expect(strstr(r.err, cases[i].want[0]), "%s: the message belongs on stderr: %s",
                  what, r.err);
        cli_result_free(&r);
    }
    /* Nothing ran: no work dir was made for any of them. */
    cr_expect(!cli_exists(cli_path(dir, "work_dirs")), "a usage error created work_dirs/");
}

/* Options take both spellings, --name value and --name=value, and the shortcuts are
 * --set in disguise. */
Test(usage, option_spellings)
{
    cli_result a = cli_run(dir, (const char *[]){"config", "tiny.json", "--seed=5",
                                                 "--work-dir=w", "--set=optimizer.lr=0.5",
                                                 "--resume", NULL});
    cli_result b = cli_run(dir, (const char *[]){"config", "tiny.json", "--seed", "5",
                                                 "--work-dir", "w", "--set", "optimizer.lr=0.5",
                                                 "--resume=auto", NULL});
    cli_expect(&a, 0, "config --x=v", NULL);
    cli_expect(&b, 0, "config --x v", NULL);
    cr_expect_str_eq(a.out, b.out);
    cJSON *j = cJSON_Parse(a.out);
    cr_assert_not_null(j, "wick config printed no JSON: %s", a.out);
    const cJSON *runner = cJSON_GetObjectItemCaseSensitive(j, "runner");
    cr_expect_eq(cli_num(runner, "seed"), 5);
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(runner, "work_dir")->valuestring, "w");
    cr_expect_str_eq(cJSON_GetObjectItemCaseSensitive(runner, "resume")->valuestring, "auto");
    cr_expect_eq(cli_num(cJSON_GetObjectItemCaseSensitive(j, "optimizer"), "lr"), 0.5);
    cJSON_Delete(j);
    cli_result_free(&a);
    cli_result_free(&b);
    /* --resume PATH after CONFIG takes any path, not only *.safetensors names. */
    cli_result c = cli_run(dir, (const char *[]){"config", "tiny.json", "--resume", "ck.bin",
                                                 NULL});
    cli_expect(&c, 0, "config --resume ck.bin", (const char *[]){"\"resume\": \"ck.bin\"", NULL});
    cli_result_free(&c);
}

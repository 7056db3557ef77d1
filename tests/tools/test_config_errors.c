/* Every error path of a broken config seen through `wick train`: exit 2 (a missing file
 * too: main.c's exit-code rules), a message naming the file (or --set) and the key, and
 * nothing trained. Each broken config is a small file over tiny.json (_base_), so the
 * message must name the file that set the bad key, not the base. */
#include "run.h"

static char *dir;

static void setup(void)
{
    dir = cli_tempdir();
    cli_write_text(dir, "tiny.json", CLI_TINY);
}

static void teardown(void) { cli_rmdir(dir); }

TestSuite(config_errors, .init = setup, .fini = teardown);

typedef struct {
    const char *file;     /* written into the temp dir; NULL: tiny.json with sets */
    const char *json;
    const char *sets[6];  /* --set values, NULL-ended */
    const char *want[6];  /* in stderr, NULL-ended */
} broken;

static void expect_broken(const broken *b)
{
    const char *config = b->file ? b->file : "tiny.json";
    if (b->file) cli_write_text(dir, b->file, b->json);
    const char *args[32] = {"train", config, "--threads", "1", "--work-dir", "w"};
    int n = 6;
    char what[512];
    snprintf(what, sizeof what, "wick train %s", config);
    for (int i = 0; b->sets[i]; i++) {
        args[n++] = "--set";
        args[n++] = b->sets[i];
        snprintf(what + strlen(what), sizeof what - strlen(what), " --set %s", b->sets[i]);
    }
    args[n] = NULL;
    cli_result r = cli_run(dir, args);
    cli_expect(&r, 2, what, b->want);
    cr_expect(!strncmp(r.err, "wick train: ", 12), "%s: the message starts \"wick train: \": %s",
              what, r.err);
    cr_expect_str_empty(r.out, "%s: nothing on stdout: %s", what, r.out);
    cr_expect(!cli_exists(cli_path(dir, "w/checkpoints")), "%s: it trained", what);
    cli_result_free(&r);
}

/* The table of the issue: one of each kind. */
Test(config_errors, each_kind_in_a_file)
{
    const broken cases[] = {
        {"unknown_type.json", "{\"_base_\": \"tiny.json\", \"model\": {\"type\": \"MLPP\"}}",
         {NULL},
         {"unknown_type.json: model.type", "unknown model type 'MLPP'", "did you mean 'MLP'"}},
        {"unknown_key.json", "{\"_base_\": \"tiny.json\", \"optimizer\": {\"lrr\": 0.1}}",
         {NULL},
         {"unknown_key.json: optimizer.lrr", "unknown key", "did you mean 'lr'",
          "Adam accepts"}},
        {"wrong_type.json", "{\"_base_\": \"tiny.json\", \"optimizer\": {\"lr\": \"fast\"}}",
         {NULL},
         {"wrong_type.json: optimizer.lr", "expected a number, got the string \"fast\""}},
        {"wrong_bool.json", "{\"_base_\": \"tiny.json\", \"runner\": {\"use_ema\": 1}}",
         {NULL},
         {"wrong_bool.json: runner.use_ema", "expected true or false"}},
        {"bad_choice.json", "{\"_base_\": \"tiny.json\", \"runner\": {\"run_mode\": \"epochs\"}}",
         {NULL},
         {"bad_choice.json: runner.run_mode", "did you mean \"epoch\""}},
        {"max_epochs.json", "{\"_base_\": \"tiny.json\", \"runner\": {\"max_epochs\": -1}}",
         {NULL},
         {"max_epochs.json: runner.max_epochs", "must be >= 1, got -1"}},
        {"runner_key.json", "{\"_base_\": \"tiny.json\", \"runner\": {\"max_epoch\": 5}}",
         {NULL},
         {"runner_key.json: runner.max_epoch", "unknown key", "did you mean 'max_epochs'"}},
        {"target.json",
         "{\"_base_\": \"tiny.json\", \"runner\": {\"early_stop\": {\"target\": \"val/f1\", "
         "\"patience\": 2}}}",
         {NULL},
         {"target.json: runner: 1 configuration error", "early_stop.target",
          "\"val/f1\" is not produced by any evaluation (val/accuracy, val/loss)"}},
        {"section.json", "{\"_base_\": \"tiny.json\", \"optimiser\": {\"type\": \"SGD\"}}",
         {NULL},
         {"section.json: optimiser: unknown section", "did you mean 'optimizer'"}},
        {"no_base.json", "{\"_base_\": \"gone.json\"}",
         {NULL},
         {"no_base.json: _base_: cannot open gone.json", "No such file"}},
        {"no_data.json",
         "{\"_base_\": \"tiny.json\", \"train_dataloader\": {\"dataset\": {\"_delete_\": true, "
         "\"type\": \"MNIST\", \"data_root\": \"/nonexistent/wk-mnist\"}}}",
         {NULL},
         {"no_data.json: train_dataloader.dataset", "/nonexistent/wk-mnist not found"}},
        {"bad_json.json", "{\"_base_\": \"tiny.json\",\n \"model\": }\n",
         {NULL},
         {"bad_json.json:2:", "invalid JSON"}},
        {"no_type.json", "{\"_base_\": \"tiny.json\", \"optimizer\": {\"_delete_\": true}}",
         {NULL},
         {"no_type.json: optimizer.type: missing", "Adam, AdamW"}},
        {"no_optimizer.json",
         "{\"model\": {\"type\": \"MLP\", \"in_features\": 2, \"out_features\": 2},\n"
         " \"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 8}, "
         "\"batch_size\": 4},\n \"runner\": {\"max_epochs\": 1}}\n",
         {NULL},
         {"no_optimizer.json: optimizer: missing"}},
        {"top_list.json", "[1, 2]\n", {NULL}, {"top_list.json", "expected a JSON object"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_broken(&cases[i]);
    /* A config that is not there at all. */
    cli_result r = cli_run(dir, (const char *[]){"train", "nowhere.json", NULL});
    cli_expect(&r, 2, "wick train nowhere.json",
               (const char *[]){"cannot open config nowhere.json", "No such file", NULL});
    cli_result_free(&r);
}

/* The same through --set: the messages say "--set" where the file would be. */
Test(config_errors, each_kind_through_set)
{
    const broken cases[] = {
        {NULL, NULL, {"model.type=MLPP", NULL}, {"--set: model.type", "did you mean 'MLP'"}},
        {NULL, NULL, {"optimizer.lrr=0.1", NULL}, {"--set: optimizer.lrr", "did you mean 'lr'"}},
        {NULL, NULL, {"optimizer.lr=fast", NULL},
         {"--set: optimizer.lr", "expected a number, got the string \"fast\""}},
        {NULL, NULL, {"runner.max_epochs=-1", NULL}, {"--set: runner.max_epochs", "must be >= 1"}},
        {NULL, NULL, {"runner.max_epochs=", NULL},
         {"--set: runner.max_epochs", "expected an integer"}},
        {NULL, NULL, {"runner.early_stop.target=val/f1", "runner.early_stop.patience=2", NULL},
         {"tiny.json: runner: 1 configuration error", "\"val/f1\" is not produced"}},
        {NULL, NULL, {"runner.best.target=val/acc", NULL}, {"best.target", "\"val/acc\""}},
        {NULL, NULL, {"modle.type=MLP", NULL}, {"--set: modle: unknown section", "'model'"}},
        {NULL, NULL, {"train_dataloader.batch_size=0", NULL},
         {"train_dataloader.batch_size"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) expect_broken(&cases[i]);
}

/* Problems in independent sections are reported together, one per line, by key. */
Test(config_errors, all_problems_at_once)
{
    expect_broken(&(broken){
        "many.json",
        "{\"_base_\": \"tiny.json\", \"model\": {\"type\": \"MLPP\"}, \"runner\": {\"max_epochs\": "
        "-1}, \"val_dataloader\": {\"batch_sizee\": 3}, \"optimiser\": {}}",
        {"train_dataloader.shuffle=3", NULL},
        {"many.json: model.type", "many.json: runner.max_epochs",
         "many.json: val_dataloader.batch_sizee", "many.json: optimiser",
         "--set: train_dataloader.shuffle"}});
}

/* eval goes through the same checks with the same exit code. */
Test(config_errors, eval_reports_them_too)
{
    cli_write_text(dir, "ck.safetensors", "not a checkpoint");
    const char *const sets[][3] = {{"model.type=MLPP", NULL},
                                   {"runner.early_stop.target=val/f1",
                                    "runner.early_stop.patience=1", NULL}};
    const char *const want[][3] = {{"--set: model.type", "MLPP", NULL},
                                   {"runner: 1 configuration error", "val/f1", NULL}};
    for (int i = 0; i < 2; i++) {
        const char *args[16] = {"eval", "tiny.json", "--checkpoint", "ck.safetensors"};
        int n = 4;
        for (int k = 0; sets[i][k]; k++) {
            args[n++] = "--set";
            args[n++] = sets[i][k];
        }
        args[n] = NULL;
        cli_result r = cli_run(dir, args);
        cli_expect(&r, 2, "wick eval with a broken config", want[i]);
        cli_result_free(&r);
    }
}

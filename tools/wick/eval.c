/* `wick eval`: the weights of a checkpoint (raw or EMA) evaluated on the config's val
 * and test loaders with its evaluators. */
#include <stdio.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: wick eval CONFIG --checkpoint PATH [--ema] [--set KEY=VALUE ...] [--threads N]\n"
    "\n"
    "Evaluate the checkpoint's model weights (--ema: its EMA weights) on the val and test\n"
    "loaders of CONFIG and print every metric.\n";

int cli_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return fputs(help, stdout), CLI_OK;
    cli_common c;
    int code = cli_parse("eval", argc, argv, "--set --checkpoint --ema --threads", &c);
    if (code) return code;
    if (!c.checkpoint) return cli_error("eval", CLI_USAGE, "--checkpoint PATH is required");
    if (c.threads) wk_set_num_threads(c.threads);
    wk_config *cfg = cli_load_config("eval", &c, &code);
    if (!cfg) return code;
    wk_run *run = wk_run_from_config(cfg);
    if (!run) {
        code = cli_error("eval", wk_config_error_count(cfg) ? CLI_USAGE : CLI_FAIL, "%s",
                         wk_last_error());
        wk_config_free(cfg);
        return code;
    }
    code = CLI_FAIL;
    wk_checkpoint ck;
    if (wk_checkpoint_open(c.checkpoint, &ck)) {
        cli_error("eval", CLI_FAIL, "%s", wk_last_error());
        goto done;
    }
    const char *prefix = c.ema ? "ema." : "model.";
    if (wk_state_dict_load_from(run->model->module, &ck.st, prefix, true, NULL)) {
        cli_error("eval", CLI_FAIL, "%s: %s weights: %s", c.checkpoint, c.ema ? "EMA" : "model",
                  wk_last_error());
        wk_checkpoint_close(&ck);
        goto done;
    }
    wk_checkpoint_close(&ck);
    if (!run->val && !run->test) {
        cli_error("eval", CLI_USAGE, "%s has no val_dataloader or test_dataloader", c.config);
        goto done;
    }
    wk_metric_results r = {0};
    const struct {
        wk_loader *loader;
        wk_evaluator *ev;
        const char *prefix;
    } stages[] = {{run->val, run->val_evaluator, "val"},
                  {run->test, run->test_evaluator ? run->test_evaluator : run->val_evaluator,
                   "test"}};
    for (int i = 0; i < 2; i++) {
        if (!stages[i].loader) continue;
        wk_data_source src = wk_loader_source(stages[i].loader);
        if (wk_evaluator_run(stages[i].ev, run->model, &src, stages[i].prefix, &r)) {
            cli_error("eval", CLI_FAIL, "%s", wk_last_error());
            goto done;
        }
    }
    for (int i = 0; i < r.count; i++) printf("%s: %.4f\n", r.names[i], r.values[i]);
    code = CLI_OK;
done:
    wk_run_free(run);
    wk_config_free(cfg);
    return code;
}

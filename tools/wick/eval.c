/* `wick eval`: the weights of a checkpoint (raw or EMA) evaluated on the config's val
 * and test loaders with its evaluators. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char help[] =
    "usage: wick eval CONFIG --checkpoint PATH [--ema] [--set KEY=VALUE ...] [--threads N]\n"
    "\n"
    "Evaluate the checkpoint's model weights (--ema: its EMA weights) on the val and test\n"
    "loaders of CONFIG and print every metric, one \"name: value\" line each, with every\n"
    "digit that matters (the values scalars.jsonl records).\n";

/* The shortest of %.15g..%.17g that reads back as v, as cJSON writes scalars.jsonl: the
 * printed value equals the one training logged. */
static void print_metric(const char *name, double v)
{
    char buf[64];
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) break;
    }
    printf("%s: %s\n", name, buf);
}

/* The checkpoint's weights into the model. --ema: the raw weights and buffers first, then
 * the EMA's parameters over them, as the Runner's EMA evaluation swaps them in (an EMA
 * kept without buffers leaves the model's batch-norm statistics). 0, or -1 after
 * printing why. */
static int load_weights(wk_module *m, const wk_checkpoint *ck, const cli_common *c)
{
    if (wk_state_dict_load_from(m, &ck->st, "model.", true, NULL)) {
        cli_error("eval", CLI_FAIL, "%s: its model weights do not fit the model of %s: %s",
                  c->checkpoint, c->config, wk_last_error());
        return -1;
    }
    if (!c->ema) return 0;
    int n = wk_module_named_parameters(m, false, NULL, 0);
    wk_named_param *ps = calloc((size_t)(n > 0 ? n : 1), sizeof *ps);
    if (!ps) return cli_error("eval", CLI_FAIL, "out of memory"), -1;
    wk_module_named_parameters(m, false, ps, n);
    int missing = 0;
    char name[300];
    for (int i = 0; i < n; i++) {
        snprintf(name, sizeof name, "ema.%s", ps[i].name);
        if (!wk_safetensors_get(&ck->st, name)) missing++;
    }
    free(ps);
    if (missing == n) {
        cli_error("eval", CLI_FAIL, "%s has no EMA weights (no \"ema.*\" tensors): it was "
                  "trained without runner.use_ema; evaluate its model weights (without --ema)",
                  c->checkpoint);
        return -1;
    }
    if (missing) {
        cli_error("eval", CLI_FAIL, "%s: the EMA lacks %d of the model's %d parameters",
                  c->checkpoint, missing, n);
        return -1;
    }
    wk_state_dict_report rep = {0};
    int rc = wk_state_dict_load_from(m, &ck->st, "ema.", false, &rep);
    if (rc || rep.nmismatched)
        cli_error("eval", CLI_FAIL, "%s: its EMA weights do not fit the model of %s: %s",
                  c->checkpoint, c->config, rc ? wk_last_error() : rep.mismatched[0]);
    rc = rc || rep.nmismatched ? -1 : 0;
    wk_state_dict_report_free(&rep);
    return rc;
}

int cli_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return fputs(help, stdout), CLI_OK;
    cli_common c;
    int code = cli_parse("eval", argc, argv, "--set --checkpoint --ema --threads", &c);
    if (code) return code;
    if (!c.checkpoint) return cli_error("eval", CLI_USAGE, "--checkpoint PATH is required");
    if ((code = cli_check_path("eval", "--checkpoint", c.checkpoint))) return code;
    if (c.threads) wk_set_num_threads(c.threads);
    wk_config *cfg = cli_load_config("eval", &c, &code);
    if (!cfg) return code;
    wk_run *run = cli_build_run("eval", cfg, &code);
    if (!run) {
        wk_config_free(cfg);
        return code;
    }
    code = CLI_FAIL;
    if (!run->val && !run->test) {
        code = cli_error("eval", CLI_USAGE, "%s has no val_dataloader or test_dataloader",
                         c.config);
        goto done;
    }
    wk_checkpoint ck;
    if (cli_open_checkpoint("eval", c.checkpoint, &ck)) goto done;
    if (load_weights(run->model->module, &ck, &c)) {
        wk_checkpoint_close(&ck);
        goto done;
    }
    wk_checkpoint_close(&ck);
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
    for (int i = 0; i < r.count; i++) print_metric(r.names[i], r.values[i]);
    code = CLI_OK;
done:
    wk_run_free(run);
    wk_config_free(cfg);
    return code;
}

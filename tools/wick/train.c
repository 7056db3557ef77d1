/* `wick train`: build the run a config describes and train it; Ctrl-C finishes the
 * current update, writes a resumable `last` checkpoint and exits 130; a second Ctrl-C
 * exits at once (checkpoint writes are atomic, so nothing is left half-written). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char help[] =
    "usage: wick train CONFIG [options]\n"
    "\n"
    "Train the model CONFIG describes (docs/RUNNER.md). Logs, scalars.jsonl and TensorBoard\n"
    "files go to WORK_DIR/<timestamp>/, checkpoints to WORK_DIR/checkpoints/.\n"
    "\n"
    "  --set KEY=VALUE       override a config key (repeatable): optimizer.lr=0.01,\n"
    "                        runner.max_epochs=3, train_dataloader.batch_size=64 ...\n"
    "  --work-dir DIR        runner.work_dir (default work_dirs/<config name>)\n"
    "  --resume [auto|PATH]  continue exactly from the newest valid checkpoint or PATH\n"
    "  --load-from PATH      start from the weights of a checkpoint or safetensors file\n"
    "  --seed N              runner.seed\n"
    "  --threads N           OpenMP/OpenBLAS threads (default: WK_NUM_THREADS or all cores)\n"
    "  --launcher mpi        data parallel over the ranks of mpirun/srun\n"
    "                        (runner.distributed)\n"
    "  --quiet               no console output (run.log and scalars.jsonl are written)\n"
    "\n"
    "Ctrl-C (SIGINT/SIGTERM) finishes the current step, writes checkpoints/last.safetensors\n"
    "and exits 130 (--resume continues from it); a second Ctrl-C exits at once.\n"
    "Exit codes: 0 ok, 1 training failed, 2 bad arguments or config, 130 interrupted.\n";

static wk_runner *volatile g_runner;
static volatile sig_atomic_t g_signals;

static void on_signal(int sig)
{
    (void)sig;
    if (g_signals++) {
        static const char msg[] = "\nwick train: interrupted again: exiting now\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(CLI_INTERRUPTED);
    }
    static const char msg[] = "\nwick train: interrupted: finishing the current step and "
                              "writing a checkpoint (Ctrl-C again to exit at once)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    if (g_runner) wk_runner_signal(g_runner);
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

/* The merged config beside the logs: WORK_DIR/config.json and RUN_DIR/config.json. */
static void save_config(const char *dir, const char *text)
{
    if (!dir) return;
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f))
        fprintf(stderr, "wick train: warning: could not write %s: %s\n", path, strerror(errno));
}

static void print_final_metrics(wk_logger *lg, const wk_runner_state *s)
{
    const wk_metric_results *m = s->metrics;
    for (int i = 0; i < m->count; i++)
        if (!strncmp(m->names[i], "test", 4) || !strncmp(m->names[i], "val", 3))
            wk_logger_info(lg, "final %s: %.4f", m->names[i], m->values[i]);
}

int cli_train(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return fputs(help, stdout), CLI_OK;
    cli_common c;
    int code = cli_parse("train", argc, argv,
                         "--set --work-dir --resume --load-from --seed --threads --launcher "
                         "--quiet",
                         &c);
    if (code) return code;
    if (c.threads) wk_set_num_threads(c.threads);
    wk_config *cfg = cli_load_config("train", &c, &code);
    if (!cfg) return code;
    wk_run *run = cli_build_run("train", cfg, &code);
    if (!run) {
        wk_config_free(cfg);
        return code;
    }
    const wk_runner_opts *o = &run->opts;
    bool distributed = o->distributed;
    wk_logger *lg = NULL;
    /* Checkpoint paths the config or the command line names must exist (main.c: exit 2);
     * "auto" finds its own or starts from scratch. */
    if (o->resume && strcmp(o->resume, "auto") &&
        (code = cli_check_path("train", "runner.resume (--resume)", o->resume)))
        goto done;
    if (!o->resume && o->load_from &&
        (code = cli_check_path("train", "runner.load_from (--load-from)", o->load_from)))
        goto done;
    /* Always a logger, so that run.log and scalars.jsonl exist; --quiet only silences
     * the console (without one the Runner would attach a loud default logger). */
    lg = wk_runner_attach_logger(run->runner,
                                 &(wk_logger_opts){.tensorboard = true, .quiet = c.quiet,
                                                   .progress = WK_LOG_PROGRESS_AUTO});
    if (!lg) {
        code = cli_error("train", CLI_FAIL, "%s", wk_last_error());
        goto done;
    }
    if (o->rank == 0) {
        save_config(o->work_dir, run->config_text);
        save_config(wk_logger_run_dir(lg), run->config_text);
    }
    wk_logger_info(lg, "wick %s: config %s, %d thread%s, rank %d of %d", WK_VERSION, c.config,
                   wk_get_num_threads(), wk_get_num_threads() > 1 ? "s" : "", o->rank,
                   o->world_size);
    g_runner = run->runner;
    install_signals();
    int rc = wk_runner_run(run->runner);
    wk_stop_reason why = wk_runner_stop_reason(run->runner);
    g_runner = NULL;
    if (rc) {
        code = cli_error("train", why == WK_STOP_SIGNAL ? CLI_INTERRUPTED : CLI_FAIL, "%s",
                         wk_last_error());
    } else {
        print_final_metrics(lg, wk_runner_get_state(run->runner));
        code = CLI_OK;
    }
done:
    wk_run_free(run);
    wk_config_free(cfg);
    if (distributed && code == CLI_OK) wk_dist_finalize();
    return code;
}

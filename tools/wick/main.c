/* `wick`: train, evaluate, inspect, print configs and plot runs from the command line.
 *
 *   wick train CONFIG [--set k=v ...] [--work-dir D] [--resume [auto|PATH]]
 *              [--load-from PATH] [--seed N] [--threads N] [--launcher mpi]
 *   wick eval CONFIG --checkpoint PATH [--ema] [--set k=v ...]
 *   wick inspect CHECKPOINT
 *   wick config CONFIG [--set k=v ...]
 *   wick plot WORK_DIR
 *
 * Exit codes:
 *   0    ok.
 *   1    a runtime failure: training failed (NaN stop, a hook's error, a write that
 *        failed), or a file that exists is damaged or does not hold what is asked (a
 *        checkpoint whose CRC or size is wrong, weights that do not fit the model, no EMA
 *        weights for --ema), or a work dir holds nothing to plot.
 *   2    a usage error, found before anything runs: bad arguments, or a config that
 *        cannot be used (a missing or unreadable config or _base_ file, invalid JSON, an
 *        unknown section, type or key, a wrong type or value, runner keys the Runner
 *        rejects such as an early-stop target no evaluation produces), or a path named on
 *        the command line or in the config that does not exist or cannot be read (a data
 *        folder, --resume/--load-from/--checkpoint files, inspect's CHECKPOINT, plot's
 *        WORK_DIR). A missing file is always 2, with its name in the message.
 *   130  interrupted by SIGINT/SIGTERM: the current step was finished and a resumable
 *        `last` checkpoint written (a second signal exits at once, also with 130). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static const char usage[] =
    "usage: wick <command> [options]\n"
    "\n"
    "commands:\n"
    "  train CONFIG     train the model a config describes (wick train --help)\n"
    "  eval CONFIG      evaluate a checkpoint on the config's val/test data\n"
    "  inspect CKPT     list a checkpoint's tensors, training state and config\n"
    "  config CONFIG    print the merged config (after _base_ and --set)\n"
    "  plot WORK_DIR    draw the training curves into WORK_DIR/plot.png and plot.svg\n"
    "\n"
    "  --help, --version\n"
    "exit codes: 0 ok, 1 runtime failure, 2 usage error, 130 interrupted\n";

int cli_error(const char *cmd, int code, const char *fmt, ...)
{
    fprintf(stderr, "wick %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

bool cli_is_help(const char *arg) { return !strcmp(arg, "-h") || !strcmp(arg, "--help"); }

static bool allowed_opt(const char *allowed, const char *opt)
{
    size_t n = strlen(opt);
    for (const char *p = allowed; (p = strstr(p, opt)); p += n)
        if ((p == allowed || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\0')) return true;
    return false;
}

/* --name=value or --name value */
static const char *value_of(int argc, char **argv, int *i, const char *arg, const char *name)
{
    size_t n = strlen(name);
    if (arg[n] == '=') return arg + n + 1;
    if (*i + 1 < argc) return argv[++*i];
    return NULL;
}

static int add_set(const char *cmd, cli_common *c, const char *fmt, const char *v)
{
    if (c->nsets == 64) return cli_error(cmd, CLI_USAGE, "too many --set options (at most 64)");
    static char buf[64][4200];
    if (snprintf(buf[c->nsets], sizeof buf[0], fmt, v) >= (int)sizeof buf[0])
        return cli_error(cmd, CLI_USAGE, "option value too long (%zu characters)", strlen(v));
    c->sets[c->nsets] = buf[c->nsets];
    c->nsets++;
    return 0;
}

int cli_parse(const char *cmd, int argc, char **argv, const char *allowed, cli_common *c)
{
    memset(c, 0, sizeof *c);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || !a[1]) {
            if (c->config)
                return cli_error(cmd, CLI_USAGE, "unexpected argument \"%s\" (the config is "
                                                 "\"%s\")", a, c->config);
            c->config = a;
            continue;
        }
        char name[64];
        size_t len = strcspn(a, "=");
        snprintf(name, sizeof name, "%.*s", (int)(len < 63 ? len : 63), a);
        if (!allowed_opt(allowed, name))
            return cli_error(cmd, CLI_USAGE, "unknown option %s (see wick %s --help)", name, cmd);
        if (!strcmp(name, "--resume")) {
            /* --resume, --resume auto, --resume PATH, --resume=PATH. The value is optional:
             * the next argument is taken when it is "auto", a .safetensors file, or any
             * non-option once CONFIG has been seen. */
            const char *v = "auto";
            if (a[len] == '=') v = a + len + 1;
            else if (i + 1 < argc && argv[i + 1][0] != '-' &&
                     (c->config || !strcmp(argv[i + 1], "auto") ||
                      strstr(argv[i + 1], ".safetensors")))
                v = argv[++i];
            if (!*v) return cli_error(cmd, CLI_USAGE, "--resume=: expected auto or a path");
            if (add_set(cmd, c, "runner.resume=%s", v)) return CLI_USAGE;
            continue;
        }
        if ((!strcmp(name, "--ema") || !strcmp(name, "--quiet")) && a[len] == '=')
            return cli_error(cmd, CLI_USAGE, "%s takes no value", name);
        if (!strcmp(name, "--ema")) {
            c->ema = true;
            continue;
        }
        if (!strcmp(name, "--quiet")) {
            c->quiet = true;
            continue;
        }
        const char *v = value_of(argc, argv, &i, a, name);
        if (!v) return cli_error(cmd, CLI_USAGE, "%s needs a value", name);
        int rc = 0;
        if (!strcmp(name, "--set")) {
            if (!strchr(v, '='))
                return cli_error(cmd, CLI_USAGE, "--set %s: expected key=value (e.g. "
                                                 "optimizer.lr=0.01)", v);
            if (c->nsets == 64)
                return cli_error(cmd, CLI_USAGE, "too many --set options (at most 64)");
            c->sets[c->nsets++] = v; /* argv outlives the command: no copy, no length cap */
        } else if (!strcmp(name, "--work-dir")) {
            rc = add_set(cmd, c, "runner.work_dir=%s", v);
        } else if (!strcmp(name, "--load-from")) {
            rc = add_set(cmd, c, "runner.load_from=%s", v);
        } else if (!strcmp(name, "--seed")) {
            char *end;
            long long s = strtoll(v, &end, 10);
            if (end == v || *end || s < 0)
                return cli_error(cmd, CLI_USAGE, "--seed %s: expected an integer >= 0", v);
            rc = add_set(cmd, c, "runner.seed=%s", v);
        } else if (!strcmp(name, "--threads")) {
            char *end;
            long t = strtol(v, &end, 10);
            if (end == v || *end || t < 1 || t > 1024)
                return cli_error(cmd, CLI_USAGE, "--threads %s: expected an integer from 1 to "
                                                 "1024", v);
            c->threads = (int)t;
        } else if (!strcmp(name, "--launcher")) {
            if (!strcmp(v, "mpi")) rc = add_set(cmd, c, "runner.distributed=%s", "true");
            else if (strcmp(v, "none"))
                return cli_error(cmd, CLI_USAGE, "--launcher %s: expected mpi or none", v);
        } else if (!strcmp(name, "--checkpoint")) {
            c->checkpoint = v;
        }
        if (rc) return CLI_USAGE;
    }
    if (!c->config) return cli_error(cmd, CLI_USAGE, "missing argument (see wick %s --help)", cmd);
    return 0;
}

int cli_check_path(const char *cmd, const char *what, const char *path)
{
    if (access(path, R_OK) == 0) return 0;
    return cli_error(cmd, CLI_USAGE, "%s: cannot read %s: %s", what, path, strerror(errno));
}

wk_config *cli_load_config(const char *cmd, const cli_common *c, int *code)
{
    /* Every reason a config does not load (missing, unreadable, invalid JSON, a bad
     * _base_) is the user's to fix: exit 2, the message names the file. */
    wk_config *cfg = wk_config_load(c->config);
    if (!cfg) {
        *code = cli_error(cmd, CLI_USAGE, "%s", wk_last_error());
        return NULL;
    }
    for (int i = 0; i < c->nsets; i++) {
        if (wk_config_set(cfg, c->sets[i]) < 0) {
            /* wk_config_set's messages start with "--set <assignment>:" already. */
            *code = cli_error(cmd, CLI_USAGE, "%s", wk_last_error());
            wk_config_free(cfg);
            return NULL;
        }
    }
    return cfg;
}

wk_run *cli_build_run(const char *cmd, wk_config *cfg, int *code)
{
    wk_run *run = wk_run_from_config(cfg);
    if (run) return run;
    /* Problems of the sections are recorded in the config; the Runner's own checks of
     * the runner keys come back as "runner: N configuration error(s)". Anything else
     * (out of memory, MPI) is a runtime failure. */
    bool usage = wk_config_error_count(cfg) > 0 || strstr(wk_last_error(), "configuration error");
    *code = cli_error(cmd, usage ? CLI_USAGE : CLI_FAIL, "%s", wk_last_error());
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || cli_is_help(argv[1])) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("wick %s\n", WK_VERSION);
        return CLI_OK;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"train", cli_train}, {"eval", cli_eval}, {"inspect", cli_inspect},
                {"config", cli_config}, {"plot", cli_plot}};
    for (size_t i = 0; i < sizeof cmds / sizeof cmds[0]; i++)
        if (!strcmp(argv[1], cmds[i].name)) return cmds[i].fn(argc - 1, argv + 1);
    const char *names[] = {"train", "eval", "inspect", "config", "plot"};
    const char *near = wk_did_you_mean(argv[1], names, 5);
    fprintf(stderr, "wick: unknown %s \"%s\"%s%s%s\n%s",
            argv[1][0] == '-' ? "option" : "command", argv[1], near ? "; did you mean \"" : "",
            near ? near : "", near ? "\"?" : "", usage);
    return CLI_USAGE;
}

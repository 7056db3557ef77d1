/* The `wick` command line: shared declarations of its subcommands (not installed). */
#ifndef WK_TOOLS_CLI_H
#define WK_TOOLS_CLI_H

#include <stdbool.h>

#include "wick.h"

/* Exit codes. */
enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_INTERRUPTED = 130 };

/* Each subcommand: argv[0] is the subcommand's name. Returns the exit code. */
int cli_train(int argc, char **argv);
int cli_eval(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_config(int argc, char **argv);
int cli_plot(int argc, char **argv);

/* Print "wick <cmd>: <message>" to stderr; returns code. */
int cli_error(const char *cmd, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True for -h / --help. */
bool cli_is_help(const char *arg);

/* The options train, eval and config share: CONFIG, --set k=v (repeatable) and the
 * shortcuts that are --set in disguise. */
typedef struct {
    const char *config;
    const char *sets[64];
    int nsets;
    const char *checkpoint;  /* eval */
    bool ema;                /* eval: the EMA weights */
    int threads;             /* 0: default */
    bool quiet;
} cli_common;

/* Parse argv[1..] into c, handling the options named in `allowed` (a string of option
 * names separated by spaces, e.g. "--set --work-dir --resume"). Returns 0, or CLI_USAGE
 * after printing what is wrong. */
int cli_parse(const char *cmd, int argc, char **argv, const char *allowed, cli_common *c);
/* Load c->config and apply every --set; NULL after printing the error (*code set to 2:
 * a missing, unreadable or broken config, or a bad --set). */
wk_config *cli_load_config(const char *cmd, const cli_common *c, int *code);
/* wk_run_from_config(cfg); NULL after printing the error (*code: 2 for a config problem,
 * 1 for anything else). */
wk_run *cli_build_run(const char *cmd, wk_config *cfg, int *code);
/* 0 when path can be read; else CLI_USAGE after printing "<what>: cannot read <path>:
 * <reason>" (a missing file named by the user is a usage error, main.c). */
int cli_check_path(const char *cmd, const char *what, const char *path);
/* wk_checkpoint_open, or CLI_FAIL after printing why (saying so when the file is
 * shorter than its header describes: truncated). */
int cli_open_checkpoint(const char *cmd, const char *path, wk_checkpoint *ck);

#endif

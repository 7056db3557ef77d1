/* `wick config` (the merged config) and `wick plot` (the curves of a work dir). */
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char config_help[] =
    "usage: wick config CONFIG [--set KEY=VALUE ...] [--work-dir D] [--resume [auto|PATH]]\n"
    "                   [--load-from PATH] [--seed N]\n"
    "\n"
    "Print the config after _base_ inheritance and the --set overrides (and the options of\n"
    "wick train that are overrides too), as training would use it and save it into the\n"
    "work dir and every checkpoint.\n";

int cli_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (cli_is_help(argv[i])) return fputs(config_help, stdout), CLI_OK;
    cli_common c;
    int code = cli_parse("config", argc, argv, "--set --work-dir --resume --load-from --seed", &c);
    if (code) return code;
    wk_config *cfg = cli_load_config("config", &c, &code);
    if (!cfg) return code;
    code = wk_config_check_sections(cfg) ? cli_error("config", CLI_USAGE, "%s", wk_last_error())
                                         : CLI_OK;
    if (code == CLI_OK && wk_config_print(cfg, stdout))
        code = cli_error("config", CLI_FAIL, "%s", wk_last_error());
    wk_config_free(cfg);
    return code;
}

static const char plot_help[] =
    "usage: wick plot WORK_DIR\n"
    "\n"
    "Draw the training and evaluation curves of every run in WORK_DIR (its scalars.jsonl\n"
    "files; resumed runs continue the curves), the lr on a second panel, into\n"
    "WORK_DIR/plot.png and WORK_DIR/plot.svg.\n";

int cli_plot(int argc, char **argv)
{
    if (argc != 2 || cli_is_help(argv[1])) {
        fputs(plot_help, argc == 2 ? stdout : stderr);
        return argc == 2 ? CLI_OK : CLI_USAGE;
    }
    int code = cli_check_path("plot", "WORK_DIR", argv[1]);
    if (code) return code;
    char *png = NULL, *svg = NULL;
    code = wk_plot_work_dir(argv[1], NULL, &png, &svg)
               ? cli_error("plot", CLI_FAIL, "%s", wk_last_error())
               : CLI_OK;
    if (code == CLI_OK) printf("wrote %s\nwrote %s\n", png, svg);
    free(png);
    free(svg);
    /* cairo's text keeps fontconfig's process-wide caches until exit: give them back, so
     * that a sanitizer build of wick exits without leak reports. */
    cairo_debug_reset_static_data();
    FcFini();
    return code;
}

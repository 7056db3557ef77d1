/* Running the `wick` binary (WICK_CLI) from a Criterion test: fork + exec in a folder,
 * stdout and stderr captured into files, the exit status, and the small readers the
 * tests check the results with (files, scalars.jsonl records, run folders).
 *
 *   char *dir = cli_tempdir();
 *   cli_result r = cli_run(dir, (const char *[]){"train", "tiny.json", "--threads", "1",
 *                                                NULL});
 *   cr_expect_eq(r.code, 0, "%s", r.err);
 *   cli_result_free(&r);
 *   cli_rmdir(dir);
 *
 * The spawned wick runs with WK_NUM_THREADS=1 and the test's environment (a sanitizer
 * build's ASAN_OPTIONS too). Its output is echoed to the test's stderr, so the test log
 * and tools/sanitizer-check see it, and every run expects no sanitizer report in it. */
#ifndef WK_TEST_TOOLS_RUN_H
#define WK_TEST_TOOLS_RUN_H

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../tmpdir.h"

#ifndef WICK_CLI
#error "WICK_CLI (the path of the wick binary) must be defined by the build"
/* A config that trains in a blink: TwoCircles (64 train and 32 val points), an MLP
 * 2-8-2, Adam; 3 epochs of 4 steps, a train record every 2 micro-batches. */
static const char CLI_TINY[] =
    "{\n"
    "  \"model\": {\"type\": \"MLP\", \"in_features\": 2, \"hidden\": [8], \"out_features\": 2,\n"
    "            \"activation\": \"relu\"},\n"
    "  \"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 64, \"seed\": 0},\n"
    "                       \"batch_size\": 16, \"shuffle\": true},\n"
    "  \"val_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 32, \"seed\": 1},\n"
    "                     \"batch_size\": 32, \"shuffle\": false},\n"
    "  \"val_evaluator\": [{\"type\": \"Accuracy\"}, {\"type\": \"Loss\"}],\n"
    "  \"optimizer\": {\"type\": \"Adam\", \"lr\": 0.01},\n"
    "  \"runner\": {\"max_epochs\": 3, \"seed\": 0, \"log_interval\": 2}\n"
    "}\n";

static inline void cli_write_text(const char *dir, const char *name, const char *text)
{
    cli_write_file(cli_path(dir, name), text, strlen(text));
}

#endif

/* A bound for runs that hang, not a timing assertion: generous for ASan on a loaded
 * machine. */
#define CLI_TIMEOUT_S 300.0

typedef struct {
    bool exited; /* ended by exit (not killed by a signal) */
    int code;    /* exit status, or the signal number; -1 when it could not run */
    char *out;   /* stdout and stderr (malloc'd, NUL-terminated) */
    char *err;
} cli_result;

typedef struct {
    pid_t pid;
    char out_path[4200], err_path[4200];
} cli_proc;

static inline void cli_result_free(cli_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

static inline double cli_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The whole file as a string (malloc'd), or NULL when it cannot be read. */
static inline char *cli_read_file(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = s && n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    if (s) s[got] = '\0';
    if (size) *size = got;
    fclose(f);
    return s;
}

static inline void cli_write_file(const char *path, const void *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "cannot write %s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(data, 1, n, f), n, "short write to %s", path);
    cr_assert_eq(fclose(f), 0, "cannot close %s", path);
}

/* "dir/name" into a static buffer of 8 (callers keep at most 8 paths alive at once). */
static inline const char *cli_path(const char *dir, const char *name)
{
    static char bufs[8][8192];
    static int next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

static inline bool cli_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Start wick with args (NULL-ended, without argv[0]) in dir; output into files there
 * named after a counter (.cli-N.out/.err, hidden from the work dirs' listings). */
static inline cli_proc cli_start(const char *dir, const char *const *args)
{
    static int counter;
    cli_proc p = {0};
    int n = counter++;
    snprintf(p.out_path, sizeof p.out_path, "%s/.cli-%d.out", dir, n);
    snprintf(p.err_path, sizeof p.err_path, "%s/.cli-%d.err", dir, n);
    const char *argv[64] = {WICK_CLI};
    int k = 1;
    for (int i = 0; args[i] && k < 63; i++) argv[k++] = args[i];
    argv[k] = NULL;
    fflush(NULL);
    p.pid = fork();
    cr_assert_geq(p.pid, 0, "fork: %s", strerror(errno));
    if (p.pid == 0) {
        int fo = open(p.out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(p.err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fo < 0 || fe < 0 || chdir(dir) != 0) _exit(126);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fo);
        close(fe);
        setenv("WK_NUM_THREADS", "1", 1);
        /* The child's SIGINT must not be ignored because the test's was. */
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        execv(argv[0], (char *const *)argv);
        fprintf(stderr, "cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return p;
}

/* Wait for p to end (killing it after CLI_TIMEOUT_S), collect its output, echo it to
 * stderr and expect no sanitizer report in it. */
static inline cli_result cli_wait(cli_proc *p)
{
    cli_result r = {.code = -1};
    int status = 0;
    double t0 = cli_now();
    bool killed = false;
    for (;;) {
        pid_t w = waitpid(p->pid, &status, WNOHANG);
        if (w == p->pid) break;
        if (w < 0 && errno != EINTR) break;
        if (!killed && cli_now() - t0 > CLI_TIMEOUT_S) {
            kill(p->pid, SIGKILL);
            killed = true;
        }
        usleep(5000);
    }
    r.exited = WIFEXITED(status);
    r.code = r.exited ? WEXITSTATUS(status) : WIFSIGNALED(status) ? WTERMSIG(status) : -1;
    r.out = cli_read_file(p->out_path, NULL);
    r.err = cli_read_file(p->err_path, NULL);
    if (!r.out) r.out = strdup("");
    if (!r.err) r.err = strdup("");
    fprintf(stderr, "---- wick (%s %d%s)\n-- stdout:\n%s-- stderr:\n%s---- end\n",
            r.exited ? "exit" : "signal", r.code, killed ? ", KILLED after the time limit" : "",
            r.out, r.err);
    cr_expect(!killed, "wick did not end within %.0f s", CLI_TIMEOUT_S);
    cr_expect(!strstr(r.err, "ERROR: AddressSanitizer") && !strstr(r.err, "ERROR: LeakSanitizer") &&
                  !strstr(r.err, "runtime error:"),
              "the sanitizers reported errors in wick (above)");
    return r;
}

static inline cli_result cli_run(const char *dir, const char *const *args)
{
    cli_proc p = cli_start(dir, args);
    return cli_wait(&p);
}

/* Expect exit status `code` and every NULL-ended needle in stderr (or stdout when
 * stderr is empty); names the command in failures. */
static inline void cli_expect(const cli_result *r, int code, const char *what,
                              const char *const *needles)
{
    cr_expect(r->exited, "%s: killed by signal %d", what, r->code);
    cr_expect_eq(r->code, code, "%s: exit %d, expected %d; stderr: %s", what, r->code, code,
                 r->err);
    for (int i = 0; needles && needles[i]; i++)
        cr_expect(strstr(r->err, needles[i]) || strstr(r->out, needles[i]),
                  "%s: \"%s\" not in its output; stderr: %s", what, needles[i], r->err);
}

/* A fresh folder under /tmp (malloc'd path), and its removal with what it holds. */
static inline char *cli_tempdir(void)
{
    char *dir = tu_tmpdir_new("wk-cli-");
    cr_assert_not_null(dir, "mkdtemp: %s", strerror(errno));
    return dir;
}

static inline void cli_rmdir(char *dir) { tu_tmpdir_remove(dir); }

/* The newest run folder (WORK_DIR/<timestamp>[_N], the greatest name holding a
 * scalars.jsonl) and, with nth >= 0, the nth oldest instead: its path into buf, or false. */
static inline bool cli_run_dir(const char *work_dir, int nth, char *buf, size_t n)
{
    DIR *d = opendir(work_dir);
    if (!d) return false;
    char names[64][256];
    int count = 0;
    for (struct dirent *e; (e = readdir(d)) && count < 64;) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char p[4400];
        snprintf(p, sizeof p, "%s/%s/scalars.jsonl", work_dir, e->d_name);
        if (!cli_exists(p)) continue;
        snprintf(names[count++], sizeof names[0], "%s", e->d_name);
    }
    closedir(d);
    if (!count) return false;
    qsort(names, (size_t)count, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    int pick = nth < 0 ? count - 1 : nth;
    if (pick >= count) return false;
    snprintf(buf, n, "%s/%s", work_dir, names[pick]);
    return true;
}

/* The last record of scalars.jsonl with "event" == event (NULL: the last record), parsed
 * (cJSON_Delete it), or NULL. */
static inline cJSON *cli_last_record(const char *jsonl, const char *event)
{
    char *text = cli_read_file(jsonl, NULL);
    if (!text) return NULL;
    cJSON *found = NULL;
    for (char *save = NULL, *line = strtok_r(text, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        cJSON *j = cJSON_Parse(line);
        const cJSON *ev = cJSON_GetObjectItemCaseSensitive(j, "event");
        if (j && (!event || (cJSON_IsString(ev) && !strcmp(ev->valuestring, event)))) {
            cJSON_Delete(found);
            found = j;
        } else {
            cJSON_Delete(j);
        }
    }
    free(text);
    return found;
}

/* A number field of a record (NaN when absent). */
static inline double cli_num(const cJSON *rec, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rec, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0 / 0.0;
}

/* Whether p has ended (it stays waitable for cli_wait). */
static inline bool cli_ended(const cli_proc *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    return waitid(P_PID, (id_t)p->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid != 0;
}

/* Wait until `path` holds `needle` (the process may still be writing it); false after
 * the time limit or when p has ended without writing it. */
static inline bool cli_wait_for_text(const char *path, const char *needle, const cli_proc *p)
{
    double t0 = cli_now();
    while (cli_now() - t0 < CLI_TIMEOUT_S) {
        char *s = cli_read_file(path, NULL);
        bool hit = s && strstr(s, needle);
        free(s);
        if (hit) return true;
        if (p && cli_ended(p)) return false;
        usleep(10000);
    }
    return false;
}

/* A config that trains in a blink: TwoCircles (64 train and 32 val points), an MLP
 * 2-8-2, Adam; 3 epochs of 4 steps, a train record every 2 micro-batches. */
static const char CLI_TINY[] =
    "{\n"
    "  \"model\": {\"type\": \"MLP\", \"in_features\": 2, \"hidden\": [8], \"out_features\": 2,\n"
    "            \"activation\": \"relu\"},\n"
    "  \"train_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 64, \"seed\": 0},\n"
    "                       \"batch_size\": 16, \"shuffle\": true},\n"
    "  \"val_dataloader\": {\"dataset\": {\"type\": \"TwoCircles\", \"size\": 32, \"seed\": 1},\n"
    "                     \"batch_size\": 32, \"shuffle\": false},\n"
    "  \"val_evaluator\": [{\"type\": \"Accuracy\"}, {\"type\": \"Loss\"}],\n"
    "  \"optimizer\": {\"type\": \"Adam\", \"lr\": 0.01},\n"
    "  \"runner\": {\"max_epochs\": 3, \"seed\": 0, \"log_interval\": 2}\n"
    "}\n";

static inline void cli_write_text(const char *dir, const char *name, const char *text)
{
    cli_write_file(cli_path(dir, name), text, strlen(text));
}

#endif

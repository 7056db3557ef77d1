/* Running worker programs from a Criterion test: MPI does not survive Criterion's forked
 * test processes, so each distributed test starts `mpirun -np N <worker>` as a separate
 * program, bounded in time, and checks the files the worker wrote. */
#ifndef WK_TEST_DIST_SPAWN_H
#define WK_TEST_DIST_SPAWN_H

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
#include "wick.h"

typedef struct {
    bool started;      /* the program could be run at all */
    bool timed_out;    /* killed after the time limit */
    bool exited;       /* ended by exit (not a signal) */
    int code;          /* exit status, or the signal number */
    double seconds;
    char *output;      /* stdout and stderr together (malloc'd, NUL-terminated) */
} sp_result;

static inline void sp_free(sp_result *r)
{
    free(r->output);
    r->output = NULL;
}

static inline double sp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline char *sp_read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return strdup("");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)(n > 0 ? n : 0) + 1);
    size_t got = s && n > 0 ? fread(s, 1, (size_t)n, f) : 0;
    if (s) s[got] = '\0';
    fclose(f);
    return s;
}

/* Run argv (argv[0] looked up in PATH) with extra environment entries "K=V" (NULL-ended,
 * may be NULL) in its own process group; after timeout_s the whole group is killed.
 * The output is echoed to stderr (so that the test log and the sanitizer wrapper see it). */
static inline sp_result sp_run(char *const argv[], char *const env[], double timeout_s)
{
    sp_result r = {0};
    char log[] = "/tmp/wk-dist-log-XXXXXX";
    int fd = mkstemp(log);
    if (fd < 0) return r;
    double t0 = sp_now();
    pid_t pid = fork();
    if (pid < 0) {
        close(fd);
        unlink(log);
        return r;
    }
    if (pid == 0) {
        setpgid(0, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        close(fd);
        for (int i = 0; env && env[i]; i++) putenv(env[i]);
        execvp(argv[0], argv);
        fprintf(stderr, "spawn: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    close(fd);
    setpgid(pid, pid);
    r.started = true;
    int status = 0;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid) break;
        if (w < 0 && errno != EINTR) break;
        if (sp_now() - t0 > timeout_s) {
            r.timed_out = true;
            kill(-pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        usleep(20000);
    }
    /* mpirun's children may outlive it for a moment: end the group in any case */
    kill(-pid, SIGKILL);
    r.seconds = sp_now() - t0;
    r.exited = WIFEXITED(status);
    r.code = r.exited ? WEXITSTATUS(status) : WIFSIGNALED(status) ? WTERMSIG(status) : -1;
    r.output = sp_read_file(log);
    unlink(log);
    fprintf(stderr, "---- %s (%.2f s, %s %d%s)\n%s---- end\n", argv[0], r.seconds,
            r.exited ? "exit" : "signal", r.code, r.timed_out ? ", TIMED OUT" : "",
            r.output ? r.output : "");
    return r;
}

/* The path of worker `name` built beside the tests (env WK_DIST_WORKERS: their folder). */
static inline const char *sp_worker(const char *name)
{
    static char path[4096];
    const char *dir = getenv("WK_DIST_WORKERS");
    snprintf(path, sizeof path, "%s/%s", dir ? dir : ".", name);
    return path;
}

/* True when mpirun can be found in PATH and wick was built with MPI. */
static inline bool sp_have_mpirun(void)
{
    if (!wk_dist_have_mpi()) return false;
    const char *path = getenv("PATH");
    if (!path) return false;
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        char p[4200];
        snprintf(p, sizeof p, "%s/mpirun", d);
        if (access(p, X_OK) == 0) return true;
    }
    return false;
}

/* mpirun -np np <worker> args... (args NULL-ended), one thread per rank. */
static inline sp_result sp_mpirun(int np, const char *worker, const char *const args[],
                                  double timeout_s)
{
    char npbuf[16];
    snprintf(npbuf, sizeof npbuf, "%d", np);
    const char *argv[64] = {"mpirun", "--allow-run-as-root", "--oversubscribe", "-np", npbuf,
                            sp_worker(worker)};
    int n = 6;
    for (int i = 0; args && args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    static char threads[] = "WK_NUM_THREADS=1";
    char *env[] = {threads, NULL};
    return sp_run((char *const *)argv, env, timeout_s);
}

/* The worker alone, without mpirun (world 1), with extra env entries (NULL-ended). */
static inline sp_result sp_plain(const char *worker, const char *const args[],
                                 char *const env[], double timeout_s)
{
    const char *argv[64] = {sp_worker(worker)};
    int n = 1;
    for (int i = 0; args && args[i] && n < 63; i++) argv[n++] = args[i];
    argv[n] = NULL;
    static char threads[] = "WK_NUM_THREADS=1";
    char *envs[16] = {threads};
    int k = 1;
    for (int i = 0; env && env[i] && k < 15; i++) envs[k++] = env[i];
    envs[k] = NULL;
    return sp_run((char *const *)argv, envs, timeout_s);
}

/* A fresh folder under /tmp (malloc'd path), and its removal with what it holds. */
static inline char *sp_tempdir(void) { return tu_tmpdir_new("wk-dist-"); }
static inline void sp_rmdir(char *dir) { tu_tmpdir_remove(dir); }

#endif

/* Exact resume across processes: a run stopped after k steps (or killed at a random
 * moment while it writes a checkpoint every step) and resumed in a new process gives the
 * uninterrupted run's losses and the same bytes of final weights. */
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_util.h"

extern char **environ;

TestSuite(resume, .timeout = 300);

static char *tmp_dir(void)
{
    char *d = tu_tmpdir_new("wk_resume_");
    cr_assert_not_null(d, "mkdtemp failed");
    return d;
}

/* Start the worker with WORK, LOSSES, OUT and extra arguments; returns its pid. */
static pid_t start(const char *dir, const char *name, const char *const *extra, int n)
{
    char work[512], losses[512], out[512];
    snprintf(work, sizeof work, "%s/%s", dir, name);
    snprintf(losses, sizeof losses, "%s/%s.losses", dir, name);
    snprintf(out, sizeof out, "%s/%s", dir, name);
    const char *argv[16] = {WORKER, work, losses, out};
    for (int i = 0; i < n; i++) argv[4 + i] = extra[i];
    pid_t pid;
    cr_assert_eq(posix_spawn(&pid, WORKER, NULL, NULL, (char *const *)argv, environ), 0);
    return pid;
}

static int finish(pid_t pid)
{
    int st;
    cr_assert_eq(waitpid(pid, &st, 0), pid);
    return st;
}

static void run_ok(const char *dir, const char *name, const char *const *extra, int n)
{
    int st = finish(start(dir, name, extra, n));
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "worker %s failed (status %d)", name, st);
}

/* The losses file as micro_step -> hex text; returns the highest micro_step. */
static int64_t read_losses(const char *dir, const char *name, char (*by_step)[40], int cap)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s.losses", dir, name);
    FILE *f = fopen(p, "r");
    cr_assert_not_null(f, "%s", p);
    char line[128];
    int64_t top = 0;
    long long step;
    char hex[40];
    while (fgets(line, sizeof line, f)) {
        if (!strchr(line, '\n') || sscanf(line, "%lld %39s", &step, hex) != 2) continue;
        cr_assert(step >= 1 && step < cap);
        snprintf(by_step[step], 40, "%s", hex);
        if (step > top) top = step;
    }
    fclose(f);
    return top;
}

static void expect_same_file(const char *dir, const char *a, const char *b, const char *what)
{
    char pa[512], pb[512];
    snprintf(pa, sizeof pa, "%s/%s.%s.safetensors", dir, a, what);
    snprintf(pb, sizeof pb, "%s/%s.%s.safetensors", dir, b, what);
    FILE *fa = fopen(pa, "rb"), *fb = fopen(pb, "rb");
    cr_assert(fa && fb, "%s or %s missing", pa, pb);
    int ca, cb;
    long at = 0;
    do {
        ca = fgetc(fa);
        cb = fgetc(fb);
        cr_assert_eq(ca, cb, "%s and %s differ at byte %ld", pa, pb, at);
        at++;
    } while (ca != EOF);
    fclose(fa);
    fclose(fb);
}

static void rm_rf(char *d) { cr_assert_eq(tu_tmpdir_remove(d), 0); }

enum { CAP = 4096 };

Test(resume, stopped_and_resumed_equals_uninterrupted)
{
    char *dir = tmp_dir();
    static char a[CAP][40], b[CAP][40];
    run_ok(dir, "full", NULL, 0);
    /* step 7 = epoch 2, micro-batch 6 of 8 (accumulate 2): mid-epoch */
    run_ok(dir, "split", (const char *[]){"--stop-at", "7"}, 2);
    int64_t first = read_losses(dir, "split", b, CAP);
    cr_assert_eq(first, 14, "the first process stopped after micro-batch %lld", (long long)first);
    run_ok(dir, "split", (const char *[]){"--resume"}, 1);
    int64_t na = read_losses(dir, "full", a, CAP), nb = read_losses(dir, "split", b, CAP);
    cr_assert_eq(na, 32);
    cr_assert_eq(nb, na);
    for (int64_t i = 1; i <= na; i++)
        cr_assert_str_eq(b[i], a[i], "loss of micro-batch %lld: %s resumed, %s uninterrupted",
                         (long long)i, b[i], a[i]);
    expect_same_file(dir, "full", "split", "model");
    expect_same_file(dir, "full", "split", "ema");
    rm_rf(dir);
}

Test(resume, killed_at_random_moments_resumes_exactly)
{
    char *dir = tmp_dir();
    static char a[CAP][40], c[CAP][40];
    const char *longer[] = {"--epochs", "300", "--save-interval", "1"};
    run_ok(dir, "full", longer, 4);
    int64_t na = read_losses(dir, "full", a, CAP);
    cr_assert_eq(na, 2400);
    unsigned seed = (unsigned)time(NULL);
    srand(seed);
    int killed = 0;
    for (int round = 0; round < 3; round++) {
        const char *args[] = {"--epochs", "300", "--save-interval", "1", "--resume"};
        pid_t pid = start(dir, "killed", args, round == 0 ? 4 : 5);
        struct timespec ts = {0, (long)(100 + rand() % 800) * 1000000L};
        nanosleep(&ts, NULL);
        kill(pid, SIGKILL);
        int st = finish(pid);
        if (WIFSIGNALED(st)) killed++;
    }
    cr_assert(killed >= 1, "no worker was killed before it finished (seed %u)", seed);
    /* leftovers of the killed writes are temporary files, never a checkpoint that loads
     * wrong: the resumed run continues from the newest complete one */
    run_ok(dir, "killed", (const char *[]){"--epochs", "300", "--save-interval", "1", "--resume"},
           5);
    int64_t nc = read_losses(dir, "killed", c, CAP);
    cr_assert_eq(nc, na);
    for (int64_t i = 1; i <= na; i++)
        cr_assert_str_eq(c[i], a[i], "loss of micro-batch %lld (seed %u)", (long long)i, seed);
    expect_same_file(dir, "full", "killed", "model");
    expect_same_file(dir, "full", "killed", "ema");
    rm_rf(dir);
}

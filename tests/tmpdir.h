/* Temporary folders for tests: a fresh one under /tmp, and its removal with all it holds. */
#ifndef WK_TEST_TMPDIR_H
#define WK_TEST_TMPDIR_H

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A fresh folder "/tmp/<prefix>XXXXXX" (malloc'd path), or NULL with errno set. */
static inline char *tu_tmpdir_new(const char *prefix)
{
    size_t n = strlen("/tmp/") + strlen(prefix) + strlen("XXXXXX") + 1;
    char *d = malloc(n);
    if (!d) return NULL;
    snprintf(d, n, "/tmp/%sXXXXXX", prefix);
    if (!mkdtemp(d)) {
        free(d);
        return NULL;
    }
    return d;
}

static inline int tu_tmpdir_remove_entry(const char *path, const struct stat *st, int flag,
                                         struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* Remove dir with all it holds and free the path (NULL: nothing to do). 0, or -1 with a
 * line on stderr. */
static inline int tu_tmpdir_remove(char *dir)
{
    if (!dir) return 0;
    int rc = nftw(dir, tu_tmpdir_remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (rc != 0) fprintf(stderr, "tests: could not remove %s\n", dir);
    free(dir);
    return rc == 0 ? 0 : -1;
}

#endif

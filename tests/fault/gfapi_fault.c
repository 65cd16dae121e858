/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * LD_PRELOAD shim for the tests: makes one chosen gfapi call fail, so every
 * failing path of a verb can be walked without a broken server.
 *
 *   GFPOOL_FAULT=glfs_fstat:2   the 2nd call of glfs_fstat fails (EIO)
 *   GFPOOL_FAULT_RETURN_ZERO=1  ... returns 0 instead (a write that moves
 *                               nothing, a read at EOF)
 *   GFPOOL_FAULT_ERRNO=N        ... fails with errno N instead of EIO
 *   GFPOOL_FAULT_COUNT=N        ... and so do the N-1 calls after it
 *   GFPOOL_FAULT_TRACE=FILE     every wrapped call appends its name to FILE
 *                               (glfs_open its path too)
 *   GFPOOL_FAULT_HOLD=SUBSTR:FILE
 *                               a glfs_fsync of a file opened (glfs_open,
 *                               glfs_creat) by a path containing SUBSTR creates
 *                               FILE.held and waits until FILE exists: a
 *                               slow brick for one volume, released by
 *                               the test when it has seen what it wants
 *   GFPOOL_FAULT_SLOW_FSYNC=SUBSTR:MS
 *                               a glfs_fsync of a file opened by a path
 *                               containing SUBSTR takes MS milliseconds
 *                               longer, GlusterFS answering everything
 *                               else meanwhile: a slow disk under one volume
 *   GFPOOL_FAULT_HOLD_LINK=SUBSTR:FILE
 *                               a glfs_link whose source path contains
 *                               SUBSTR creates FILE.held and waits until
 *                               FILE exists: a creator held between
 *                               closing its temp file and publishing it
 *   GFPOOL_FAULT_RDP_NO_TIMES=SUBSTR
 *                               glfs_readdirplus_r hands out the entries
 *                               whose name contains SUBSTR with their type
 *                               but no times (mtime = ctime = 0), as a
 *                               listing's iatt that gfapi could not
 *                               refresh by a lookup looks
 *
 * Only the calls gfpool's data paths make on files and directories are
 * wrapped; connecting and tearing down are left alone.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <glusterfs/api/glfs.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static char fault_name[64];
static long fault_at = -1;
static long fault_count = 1;
static int configured;

static void
configure(void)
{
    const char *f = getenv("GFPOOL_FAULT");
    const char *colon;

    configured = 1;
    if (!f || !(colon = strchr(f, ':')) || (size_t)(colon - f) >= sizeof(fault_name))
        return;
    memcpy(fault_name, f, (size_t)(colon - f));
    fault_name[colon - f] = '\0';
    fault_at = strtol(colon + 1, NULL, 10);
    if (getenv("GFPOOL_FAULT_COUNT"))
        fault_count = strtol(getenv("GFPOOL_FAULT_COUNT"), NULL, 10);
}

/* Counts the call and says whether this one is the one to fail: 1 to fail
 * with EIO (as gfapi does for a brick's I/O error), 2 to return 0. */
static int
should_fail_at(const char *name, const char *path, long *count)
{
    const char *trace = getenv("GFPOOL_FAULT_TRACE");
    int fail;

    pthread_mutex_lock(&lock);
    if (!configured)
        configure();
    ++*count;
    fail = fault_at > 0 && strcmp(name, fault_name) == 0 && *count >= fault_at &&
        *count < fault_at + fault_count;
    if (trace) {
        int fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (fd >= 0) {
            char line[4200];
            int n = snprintf(line, sizeof(line), "%s%s%s%s\n", name, path ? " " : "",
                             path ? path : "", fail ? " FAILED" : "");
            if (n > 0 && write(fd, line, (size_t)n) < 0)
                n = 0;
            close(fd);
        }
    }
    pthread_mutex_unlock(&lock);
    if (fail && getenv("GFPOOL_FAULT_RETURN_ZERO"))
        return 2;
    if (fail) {
        const char *e = getenv("GFPOOL_FAULT_ERRNO");
        errno = e ? atoi(e) : EIO;
    }
    return fail;
}

static int
should_fail(const char *name, long *count)
{
    return should_fail_at(name, NULL, count);
}

static void *
real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);

    if (!f) {
        fprintf(stderr, "gfapi_fault: %s not found\n", name);
        abort();
    }
    return f;
}

/* WRAP(return type, name, value on failure, (params), (args)) */
#define WRAP(type, name, failval, params, args)                             \
    type name params                                                        \
    {                                                                       \
        static long calls;                                                  \
        static type (*next) params;                                         \
        int fail = should_fail(#name, &calls);                              \
        if (fail)                                                           \
            return fail == 2 ? (type)0 : failval;                           \
        if (!next)                                                          \
            next = (type (*) params)real(#name);                            \
        return next args;                                                   \
    }

WRAP(int, glfs_fstat, -1, (glfs_fd_t *fd, struct stat *buf), (fd, buf))
WRAP(ssize_t, glfs_pread, -1,
     (glfs_fd_t *fd, void *buf, size_t count, off_t offset, int flags, struct glfs_stat *post),
     (fd, buf, count, offset, flags, post))
WRAP(ssize_t, glfs_pwrite, -1,
     (glfs_fd_t *fd, const void *buf, size_t count, off_t offset, int flags,
      struct glfs_stat *pre, struct glfs_stat *post),
     (fd, buf, count, offset, flags, pre, post))
WRAP(int, glfs_ftruncate, -1,
     (glfs_fd_t *fd, off_t length, struct glfs_stat *pre, struct glfs_stat *post),
     (fd, length, pre, post))
WRAP(int, glfs_discard, -1, (glfs_fd_t *fd, off_t offset, size_t len), (fd, offset, len))
WRAP(int, glfs_zerofill, -1, (glfs_fd_t *fd, off_t offset, off_t len), (fd, offset, len))
WRAP(int, glfs_fallocate, -1, (glfs_fd_t *fd, int keep_size, off_t offset, size_t len),
     (fd, keep_size, offset, len))
WRAP(off_t, glfs_lseek, -1, (glfs_fd_t *fd, off_t offset, int whence), (fd, offset, whence))
WRAP(int, glfs_stat, -1, (glfs_t *fs, const char *path, struct stat *buf), (fs, path, buf))
WRAP(int, glfs_lstat, -1, (glfs_t *fs, const char *path, struct stat *buf), (fs, path, buf))
WRAP(int, glfs_fchmod, -1, (glfs_fd_t *fd, mode_t mode), (fd, mode))
WRAP(int, glfs_fchown, -1, (glfs_fd_t *fd, uid_t uid, gid_t gid), (fd, uid, gid))
WRAP(ssize_t, glfs_copy_file_range, -1,
     (struct glfs_fd *in, off64_t *off_in, struct glfs_fd *out, off64_t *off_out, size_t len,
      unsigned int flags, struct glfs_stat *st, struct glfs_stat *pre, struct glfs_stat *post),
     (in, off_in, out, off_out, len, flags, st, pre, post))
WRAP(int, glfs_readdir_r, -1, (glfs_fd_t *fd, struct dirent *de, struct dirent **res),
     (fd, de, res))

int
glfs_readdirplus_r(glfs_fd_t *fd, struct stat *st, struct dirent *de, struct dirent **res)
{
    static long calls;
    static int (*next)(glfs_fd_t *, struct stat *, struct dirent *, struct dirent **);
    const char *no_times = getenv("GFPOOL_FAULT_RDP_NO_TIMES");
    int fail = should_fail("glfs_readdirplus_r", &calls);
    int rc;

    if (fail)
        return fail == 2 ? 0 : -1;
    if (!next)
        next = (int (*)(glfs_fd_t *, struct stat *, struct dirent *, struct dirent **))
            real("glfs_readdirplus_r");
    rc = next(fd, st, de, res);
    if (rc == 0 && *res && st && no_times && *no_times && strstr((*res)->d_name, no_times)) {
        memset(&st->st_atim, 0, sizeof(st->st_atim));
        memset(&st->st_mtim, 0, sizeof(st->st_mtim));
        memset(&st->st_ctim, 0, sizeof(st->st_ctim));
    }
    return rc;
}

/* Creates release.held, then waits (bounded: a test that never releases
 * must not hang its process) until release exists. */
static void
hold_until_released(const char *release)
{
    char marker[4096];
    struct timespec tick = { 0, 10 * 1000 * 1000 };

    snprintf(marker, sizeof(marker), "%s.held", release);
    close(open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    for (int i = 0; i < 12000 && access(release, F_OK) != 0; i++)
        nanosleep(&tick, NULL);
}

int
glfs_link(glfs_t *fs, const char *oldpath, const char *newpath)
{
    static long calls;
    static int (*next)(glfs_t *, const char *, const char *);
    const char *h = getenv("GFPOOL_FAULT_HOLD_LINK");
    const char *colon = h ? strchr(h, ':') : NULL;
    int fail = should_fail_at("glfs_link", oldpath, &calls);

    if (fail)
        return fail == 2 ? 0 : -1;
    if (!next)
        next = (int (*)(glfs_t *, const char *, const char *))real("glfs_link");
    if (colon && colon > h) {
        char substr[256];
        size_t n = (size_t)(colon - h) < sizeof(substr) ? (size_t)(colon - h) : sizeof(substr) - 1;

        memcpy(substr, h, n);
        substr[n] = '\0';
        if (strstr(oldpath, substr))
            hold_until_released(colon + 1);
    }
    return next(fs, oldpath, newpath);
}

/* ---- GFPOOL_FAULT_HOLD: fds whose fsync waits for the test ---- */

#define HELD_MAX 64
static glfs_fd_t *held[HELD_MAX];
static glfs_fd_t *slow[HELD_MAX];    /* GFPOOL_FAULT_SLOW_FSYNC's fds */

/* SUBSTR of an environment variable "SUBSTR:REST" (kept in buf); *rest
 * points to REST. */
static const char *
path_spec(const char *var, char *buf, size_t size, const char **rest)
{
    const char *h = getenv(var);
    const char *colon;

    if (!h || !(colon = strchr(h, ':')) || (size_t)(colon - h) >= size)
        return NULL;
    memcpy(buf, h, (size_t)(colon - h));
    buf[colon - h] = '\0';
    *rest = colon + 1;
    return buf;
}

static const char *
hold_spec(const char **release)
{
    static char substr[256];

    return path_spec("GFPOOL_FAULT_HOLD", substr, sizeof(substr), release);
}

static const char *
slow_spec(const char **ms)
{
    static char substr[256];

    return path_spec("GFPOOL_FAULT_SLOW_FSYNC", substr, sizeof(substr), ms);
}

static void
fd_set_mark(glfs_fd_t **set, glfs_fd_t *fd, int add)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < HELD_MAX; i++) {
        if (add ? set[i] == NULL : set[i] == fd) {
            set[i] = add ? fd : NULL;
            break;
        }
    }
    pthread_mutex_unlock(&lock);
}

static int
fd_set_has(glfs_fd_t **set, glfs_fd_t *fd)
{
    int found = 0;

    pthread_mutex_lock(&lock);
    for (int i = 0; i < HELD_MAX && !found; i++)
        found = set[i] == fd;
    pthread_mutex_unlock(&lock);
    return found;
}

/* Marks a new fd for the hold and the slow fsync, as its path asks. */
static void
mark_opened(glfs_fd_t *fd, const char *path)
{
    const char *rest;
    const char *substr;

    if (!fd || !path)
        return;
    if ((substr = hold_spec(&rest)) && strstr(path, substr))
        fd_set_mark(held, fd, 1);
    if ((substr = slow_spec(&rest)) && strstr(path, substr))
        fd_set_mark(slow, fd, 1);
}

glfs_fd_t *
glfs_open(glfs_t *fs, const char *path, int flags)
{
    static long calls;
    static glfs_fd_t *(*next)(glfs_t *, const char *, int);
    int fail = should_fail_at("glfs_open", path, &calls);
    glfs_fd_t *fd;

    if (fail)
        return NULL;
    if (!next)
        next = (glfs_fd_t *(*)(glfs_t *, const char *, int))real("glfs_open");
    fd = next(fs, path, flags);
    mark_opened(fd, path);
    return fd;
}

glfs_fd_t *
glfs_creat(glfs_t *fs, const char *path, int flags, mode_t mode)
{
    static long calls;
    static glfs_fd_t *(*next)(glfs_t *, const char *, int, mode_t);
    int fail = should_fail("glfs_creat", &calls);
    glfs_fd_t *fd;

    if (fail)
        return NULL;
    if (!next)
        next = (glfs_fd_t *(*)(glfs_t *, const char *, int, mode_t))real("glfs_creat");
    fd = next(fs, path, flags, mode);
    mark_opened(fd, path);
    return fd;
}

int
glfs_fsync(glfs_fd_t *fd, struct glfs_stat *pre, struct glfs_stat *post)
{
    static long calls;
    static int (*next)(glfs_fd_t *, struct glfs_stat *, struct glfs_stat *);
    const char *release;
    const char *ms;
    int fail = should_fail("glfs_fsync", &calls);

    if (fail)
        return fail == 2 ? 0 : -1;
    if (!next)
        next = (int (*)(glfs_fd_t *, struct glfs_stat *, struct glfs_stat *))real("glfs_fsync");
    if (hold_spec(&release) && fd_set_has(held, fd))
        hold_until_released(release);
    if (slow_spec(&ms) && fd_set_has(slow, fd)) {
        long n = strtol(ms, NULL, 10);
        struct timespec pause = { n / 1000, (n % 1000) * 1000 * 1000 };

        nanosleep(&pause, NULL);
    }
    return next(fd, pre, post);
}

int
glfs_close(glfs_fd_t *fd)
{
    static int (*next)(glfs_fd_t *);

    if (!next)
        next = (int (*)(glfs_fd_t *))real("glfs_close");
    fd_set_mark(held, fd, 0);
    fd_set_mark(slow, fd, 0);
    return next(fd);
}

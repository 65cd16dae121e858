/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_guest.c: which running libvirt guest a local process is.
 *
 * libvirt's QEMU driver forks the QEMU process, which writes its own pid
 * into STATE/NAME.pid and locks it (still as root, before it execs, and
 * keeps the lock across the exec), and libvirtd then
 * writes STATE/NAME.xml, <domstatus pid=...> around the live <domain>,
 * before letting the process exec QEMU (qemuProcessLaunch: "Writing early
 * domain status to disk", then virCommandHandshakeNotify): both records
 * exist before QEMU opens a disk, for a start, an incoming migration and a
 * restore alike. What a process has on its command line is its own to
 * write; a pid is only a number that comes back. So a process is a guest's
 * QEMU when both root-owned records name its pid and it started no later
 * than the pid file was written, or holds the pid file's lock (a process
 * that got the pid of a QEMU that is gone started after that, and holds
 * no lock: locks die with their process).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "gfpool_conn.h"
#include "gfpool_guest.h"
#include "gfpool_xml.h"

/* what a pid file holds, with room to spare */
#define PID_FILE_MAX 32

void
gfpool_guest_free(GfpoolGuest *g)
{
    if (!g)
        return;
    g_free(g->name);
    g_free(g->uuid);
    g_clear_pointer(&g->exports, g_hash_table_unref);
    g_free(g);
}

static guint64
clock_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (guint64)ts.tv_sec * G_GUINT64_CONSTANT(1000000000) + (guint64)ts.tv_nsec;
}

/* ---- records only root can have written ---------------------------- */

/* Owned by root and writable by nobody else; a directory above the last
 * one may be world-writable if it is sticky (/tmp): then nobody else can
 * rename what root made in it. */
static gboolean
root_only(const struct stat *st, gboolean sticky_ok)
{
    if (st->st_uid != 0)
        return FALSE;
    if (!(st->st_mode & (S_IWGRP | S_IWOTH)))
        return TRUE;
    return sticky_ok && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX);
}

/* Opens an absolute directory, component by component without following
 * a symlink, each one root's own (see root_only); with any_owner, the last
 * one may belong to anyone as long as only its owner writes to it. */
static int
open_dir_checked(const char *path, gboolean any_owner, GError **error)
{
    g_autofree char *canon = NULL;
    g_auto(GStrv) parts = NULL;
    g_autoptr(GString) at = g_string_new(NULL);
    int fd;

    if (!g_path_is_absolute(path)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID, "%s: not an absolute path", path);
        return -1;
    }
    canon = g_canonicalize_filename(path, "/");
    parts = g_strsplit(canon, "/", -1);
    if ((fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "/: %s", g_strerror(errno));
        return -1;
    }
    for (guint i = 0; parts[i]; i++) {
        gboolean last = parts[i + 1] == NULL;
        struct stat st;
        int next;

        if (!*parts[i])
            continue;
        next = openat(fd, parts[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0) {
            int e = errno;
            close(fd);
            g_set_error(error, GFPOOL_ERROR,
                        e == ENOENT ? GFPOOL_ERROR_NOT_FOUND : GFPOOL_ERROR_FAILED,
                        "%s: %s", canon,
                        e == ELOOP || e == ENOTDIR ? "a symlink or not a directory on the way"
                                                   : g_strerror(e));
            return -1;
        }
        close(fd);
        fd = next;
        g_string_append_printf(at, "/%s", parts[i]);
        if (fstat(fd, &st) < 0 ||
            !(root_only(&st, !last) ||
              (last && any_owner && !(st.st_mode & (S_IWGRP | S_IWOTH))))) {
            close(fd);
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                        "%s: %s (uid %u, mode %04o) is not only root's to change",
                        canon, at->str, (unsigned)st.st_uid,
                        (unsigned)(st.st_mode & 07777));
            return -1;
        }
    }
    return fd;
}

static int
open_root_dir(const char *path, GError **error)
{
    return open_dir_checked(path, FALSE, error);
}

/*
 * libvirt's QEMU state dir. libvirt 11 gives it to the QEMU user (it is
 * the parent of the channel dir it chowns, qemuStateInitialize), so a
 * process of that uid may remove and rename the records in it, not
 * rewrite them: nothing here trusts a file's name (a status counts only
 * under its own domain's name), and a record kept past its QEMU's end
 * fails the start-time and lock test.
 */
static int
open_state_dir(const char *path, GError **error)
{
    return open_dir_checked(path, TRUE, error);
}

/* Reads file `name` of dirfd if it is a regular file of root's that only
 * root may write, at most max bytes. */
static char *
read_root_file(int dirfd, const char *dir, const char *name, gsize max, struct stat *st,
               gsize *len, GError **error)
{
    g_autofree char *buf = NULL;
    gsize got = 0;
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);

    if (fd < 0) {
        int e = errno;
        g_set_error(error, GFPOOL_ERROR, e == ENOENT ? GFPOOL_ERROR_NOT_FOUND : GFPOOL_ERROR_FAILED,
                    "%s/%s: %s", dir, name, e == ELOOP ? "a symlink" : g_strerror(e));
        return NULL;
    }
    if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode) || !root_only(st, FALSE)) {
        close(fd);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "%s/%s: not a regular file only root may write", dir, name);
        return NULL;
    }
    buf = g_malloc(max + 1);
    for (;;) {
        ssize_t n = read(fd, buf + got, max + 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s/%s: %s", dir, name,
                        g_strerror(e));
            return NULL;
        }
        if (n == 0)
            break;
        got += (gsize)n;
        if (got > max) {
            close(fd);
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s/%s: over %" G_GSIZE_FORMAT
                        " bytes", dir, name, max);
            return NULL;
        }
    }
    close(fd);
    buf[got] = '\0';
    if (len)
        *len = got;
    return g_steal_pointer(&buf);
}

/* ---- the process ---------------------------------------------------- */

/* When process pid started, in ns after boot: /proc/PID/stat's 22nd
 * field, in clock ticks (the command name before it may hold anything,
 * so fields are counted after its closing parenthesis). */
static gboolean
process_start(gint64 pid, guint64 *start, GError **error)
{
    g_autofree char *path = g_strdup_printf("/proc/%" G_GINT64_FORMAT "/stat", pid);
    g_autofree char *stat = NULL;
    g_auto(GStrv) fields = NULL;
    const char *paren;
    char *end = NULL;
    guint64 ticks;
    long hz = sysconf(_SC_CLK_TCK);

    if (!g_file_get_contents(path, &stat, NULL, NULL) || !(paren = strrchr(stat, ')'))) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_FOUND,
                    "process %" G_GINT64_FORMAT " is gone", pid);
        return FALSE;
    }
    fields = g_strsplit(g_strstrip((char *)paren + 1), " ", 0);
    /* state is field 3, starttime field 22 */
    if (g_strv_length(fields) < 20 || hz <= 0 ||
        ((ticks = g_ascii_strtoull(fields[19], &end, 10)), end == fields[19] || *end)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "%s: no start time", path);
        return FALSE;
    }
    *start = ticks * (G_GUINT64_CONSTANT(1000000000) / (guint64)hz);
    return TRUE;
}

/* Does process pid hold a write lock on the file st is of? libvirt locks
 * a QEMU's pid file in the forked child and hands the descriptor on
 * across its exec (virExec, "pidfilefd is intentionally leaked"): QEMU
 * holds that lock as long as it runs, and a lock dies with its process.
 * /proc/locks: "ID: POSIX ADVISORY WRITE PID MAJ:MIN:INODE START END",
 * waiters prefixed "->". */
static gboolean
holds_lock(gint64 pid, const struct stat *st)
{
    g_autofree char *locks = NULL;
    g_autofree char *want = g_strdup_printf(" POSIX  ADVISORY  WRITE %" G_GINT64_FORMAT
                                            " %02x:%02x:%" G_GUINT64_FORMAT " ", pid,
                                            major(st->st_dev), minor(st->st_dev),
                                            (guint64)st->st_ino);
    g_auto(GStrv) lines = NULL;

    if (!g_file_get_contents("/proc/locks", &locks, NULL, NULL))
        return FALSE;
    lines = g_strsplit(locks, "\n", -1);
    for (char **l = lines; *l; l++) {
        const char *colon = strchr(*l, ':');

        if (colon && !strstr(*l, "->") && g_str_has_prefix(colon + 1, want))
            return TRUE;
    }
    return FALSE;
}

/* ---- a domain's records --------------------------------------------- */

static gboolean
domain_name_ok(const char *name)
{
    return *name && !strchr(name, '/') && !g_str_equal(name, ".") && !g_str_equal(name, "..");
}

/* The records of domain `name`, if they name process `pid` (0: whichever
 * they name), and that process is the one libvirt recorded. */
static GfpoolGuest *
load_guest(int dirfd, const char *dir, const char *name, gint64 pid, guint64 before,
           GError **error)
{
    g_autofree char *pidfile = g_strconcat(name, ".pid", NULL);
    g_autofree char *statusfile = g_strconcat(name, ".xml", NULL);
    g_autofree char *pidtext = NULL;
    g_autofree char *xml = NULL;
    g_autoptr(GfpoolDomStatus) st = NULL;
    g_autoptr(GfpoolGuest) g = NULL;
    g_autoptr(GError) err = NULL;
    struct stat pst, sst;
    gint64 recorded;
    char *end = NULL;
    guint64 written, now_real, now_boot;
    gsize len;

    if (!(pidtext = read_root_file(dirfd, dir, pidfile, PID_FILE_MAX, &pst, NULL, error)))
        return NULL;
    recorded = g_ascii_strtoll(g_strstrip(pidtext), &end, 10);
    if (end == pidtext || *end || recorded <= 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s/%s holds no pid", dir, pidfile);
        return NULL;
    }
    if (pid && recorded != pid) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_FOUND, "%s/%s names process %"
                    G_GINT64_FORMAT, dir, pidfile, recorded);
        return NULL;
    }
    if (!(xml = read_root_file(dirfd, dir, statusfile, GFPOOL_XML_MAX, &sst, &len, error)))
        return NULL;
    if (!(st = gfpool_domstatus_parse(xml, len, &err))) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s/%s: %s", dir, statusfile,
                    err->message);
        return NULL;
    }
    if (st->pid != recorded || !g_str_equal(st->name, name)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "%s/%s (pid %" G_GINT64_FORMAT ", domain '%s') and %s (pid %" G_GINT64_FORMAT
                    ") disagree", dir, statusfile, st->pid, st->name, pidfile, recorded);
        return NULL;
    }

    g = g_new0(GfpoolGuest, 1);
    g->pid = recorded;
    if (!process_start(recorded, &g->start, error))
        return NULL;
    /* The pid file's mtime is wall-clock time, the start is after boot:
     * the same instant on both clocks, read now. One tick of slack: the
     * start is rounded down to one. A step of the wall clock since the
     * file was written shifts the comparison by as much: a QEMU that
     * still holds its pid file's lock is that QEMU whatever the clocks
     * say. */
    now_real = clock_ns(CLOCK_REALTIME);
    now_boot = clock_ns(CLOCK_BOOTTIME);
    written = (guint64)pst.st_mtim.tv_sec * G_GUINT64_CONSTANT(1000000000) +
              (guint64)pst.st_mtim.tv_nsec;
    written = written + now_boot > now_real ? written + now_boot - now_real : 0;
    if (g->start > written + G_GUINT64_CONSTANT(1000000000) / (guint64)sysconf(_SC_CLK_TCK) &&
        !holds_lock(recorded, &pst)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "process %" G_GINT64_FORMAT " started after libvirt recorded it for '%s' "
                    "(%.3f s after %s/%s was written): a reused pid, not that domain's QEMU",
                    recorded, name, (double)(g->start - written) / 1e9, dir, pidfile);
        return NULL;
    }
    if (g->start > (before ? before : now_boot)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                    "process %" G_GINT64_FORMAT " started after the connection: a reused pid",
                    recorded);
        return NULL;
    }
    g->name = g_steal_pointer(&st->name);
    g->uuid = g_steal_pointer(&st->uuid);
    g->exports = g_steal_pointer(&st->exports);
    return g_steal_pointer(&g);
}

GfpoolGuest *
gfpool_guest_by_name(const char *state_dir, const char *name, GError **error)
{
    GfpoolGuest *g;
    int dirfd;

    if (!domain_name_ok(name)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID, "'%s' is no domain name", name);
        return NULL;
    }
    if ((dirfd = open_state_dir(state_dir, error)) < 0)
        return NULL;
    g = load_guest(dirfd, state_dir, name, 0, 0, error);
    close(dirfd);
    if (!g && error && *error && (*error)->code == GFPOOL_ERROR_NOT_FOUND)
        g_prefix_error(error, "domain '%s' is not running: ", name);
    return g;
}

GfpoolGuest *
gfpool_guest_by_pid(const char *state_dir, gint64 pid, guint64 before, GError **error)
{
    g_autoptr(GError) why = NULL;
    DIR *dir;
    struct dirent *de;
    int dirfd;

    if ((dirfd = open_state_dir(state_dir, error)) < 0)
        return NULL;
    if (!(dir = fdopendir(dirfd))) {
        close(dirfd);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s: %s", state_dir,
                    g_strerror(errno));
        return NULL;
    }
    /* The pid files say which domain to look at; the status is what
     * counts. A QEMU keeps its pid file open for writing (libvirt hands it
     * the descriptor), so a pid file may name anything: every one naming
     * pid is tried. */
    while ((de = readdir(dir))) {
        g_autofree char *name = NULL;
        g_autoptr(GError) err = NULL;
        GfpoolGuest *g;

        if (!g_str_has_suffix(de->d_name, ".pid") || de->d_name[0] == '.')
            continue;
        name = g_strndup(de->d_name, strlen(de->d_name) - strlen(".pid"));
        if (!domain_name_ok(name))
            continue;
        if ((g = load_guest(dirfd, state_dir, name, pid, before, &err))) {
            closedir(dir);
            return g;
        }
        if (err->code != GFPOOL_ERROR_NOT_FOUND && !why)
            why = g_steal_pointer(&err);
    }
    closedir(dir);
    if (why) {
        g_propagate_error(error, g_steal_pointer(&why));
        return NULL;
    }
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_FOUND,
                "no running domain in %s has process %" G_GINT64_FORMAT, state_dir, pid);
    return NULL;
}

char *
gfpool_nbd_socket_canonical(const char *path)
{
    if (!path || !g_path_is_absolute(path))
        return NULL;
    return g_canonicalize_filename(path, "/");
}

static GPtrArray *
exports_on(const GfpoolGuest *g, const char *socket)
{
    GHashTableIter it;
    gpointer key, value;

    g_hash_table_iter_init(&it, g->exports);
    while (g_hash_table_iter_next(&it, &key, &value)) {
        g_autofree char *canon = gfpool_nbd_socket_canonical(key);

        if (canon && g_str_equal(canon, socket))
            return value;
    }
    return NULL;
}

gboolean
gfpool_guest_names(const GfpoolGuest *g, const char *const *sockets, const char *export)
{
    for (; *sockets; sockets++) {
        GPtrArray *names = exports_on(g, *sockets);

        if (names && g_ptr_array_find_with_equal_func(names, export, g_str_equal, NULL))
            return TRUE;
    }
    return FALSE;
}

void
gfpool_guest_add_exports(const GfpoolGuest *g, const char *const *sockets, GHashTable *set)
{
    for (; *sockets; sockets++) {
        GPtrArray *names = exports_on(g, *sockets);

        for (guint i = 0; names && i < names->len; i++)
            g_hash_table_add(set, g_strdup(g_ptr_array_index(names, i)));
    }
}

/* ---- grants ----------------------------------------------------------- */

/*
 * One file per guest, server and export, named UUID.HASH (HASH of the
 * socket and the export): a key file of root's, mode 0600, saying which
 * QEMU process of that guest may open which export until when (CLOCK_BOOTTIME,
 * immune to steps of the wall clock).
 */
#define GRANT_GROUP "grant"

static char *
grant_file_name(const char *uuid, const char *socket, const char *export)
{
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    g_autofree char *canon = gfpool_nbd_socket_canonical(socket);

    g_checksum_update(sum, (const guchar *)canon, (gssize)strlen(canon) + 1);
    g_checksum_update(sum, (const guchar *)export, (gssize)strlen(export));
    return g_strdup_printf("%s.%.32s", uuid, g_checksum_get_string(sum));
}

char *
gfpool_nbd_grant_write(const char *grant_dir, const GfpoolGuest *g, const char *socket,
                       const char *export, guint seconds, GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *canon = gfpool_nbd_socket_canonical(socket);
    g_autofree char *file = NULL;
    g_autofree char *tmp = NULL;
    g_autofree char *text = NULL;
    gsize len;
    int dirfd, fd;

    if (!canon) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "%s: the socket's absolute path, as the domain XML names it", socket);
        return NULL;
    }
    if (seconds == 0 || seconds > GFPOOL_NBD_GRANT_MAX_S) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "a grant lasts 1 to %d seconds", GFPOOL_NBD_GRANT_MAX_S);
        return NULL;
    }
    if (mkdir(grant_dir, 0700) < 0 && errno != EEXIST) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "cannot create %s: %s", grant_dir,
                    g_strerror(errno));
        return NULL;
    }
    if ((dirfd = open_root_dir(grant_dir, error)) < 0)
        return NULL;
    g_key_file_set_string(kf, GRANT_GROUP, "uuid", g->uuid);
    g_key_file_set_int64(kf, GRANT_GROUP, "pid", g->pid);
    g_key_file_set_uint64(kf, GRANT_GROUP, "start", g->start);
    g_key_file_set_string(kf, GRANT_GROUP, "socket", canon);
    g_key_file_set_string(kf, GRANT_GROUP, "export", export);
    g_key_file_set_uint64(kf, GRANT_GROUP, "expires",
                          clock_ns(CLOCK_BOOTTIME) + (guint64)seconds * 1000000000);
    text = g_key_file_to_data(kf, &len, NULL);
    file = grant_file_name(g->uuid, canon, export);
    tmp = g_strdup_printf(".%s.%08x", file, g_random_int());
    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || close(fd) < 0 ||
        renameat(dirfd, tmp, dirfd, file) < 0) {
        int e = errno;
        if (fd >= 0)
            unlinkat(dirfd, tmp, 0);
        close(dirfd);
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "cannot write a grant in %s: %s",
                    grant_dir, g_strerror(e));
        return NULL;
    }
    close(dirfd);
    return g_steal_pointer(&file);
}

gboolean
gfpool_nbd_grant_remove(const char *grant_dir, const char *file, GError **error)
{
    int dirfd = open_root_dir(grant_dir, error);
    int rc;

    if (dirfd < 0)
        return FALSE;
    rc = unlinkat(dirfd, file, 0);
    close(dirfd);
    if (rc < 0 && errno != ENOENT) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "cannot remove %s/%s: %s",
                    grant_dir, file, g_strerror(errno));
        return FALSE;
    }
    return TRUE;
}

typedef enum {
    GRANT_VALID,
    GRANT_SUPERSEDED,   /* the status names its export: removed */
    GRANT_STALE,        /* expired, or for another QEMU of the guest: removed */
    GRANT_NOT_OURS,     /* another socket, or unreadable: left alone */
} GrantState;

/* What grant file `file` of g says (its export in *export). */
static GrantState
grant_read(int dirfd, const char *grant_dir, const char *file, const GfpoolGuest *g,
           const char *const *sockets, char **export)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autofree char *text = NULL;
    g_autofree char *uuid = NULL;
    g_autofree char *socket = NULL;
    struct stat st;
    gsize len;
    guint64 expires, now = clock_ns(CLOCK_BOOTTIME);
    gboolean ours = FALSE;

    if (!(text = read_root_file(dirfd, grant_dir, file, 4096, &st, &len, NULL)) ||
        (st.st_mode & 077) ||
        !g_key_file_load_from_data(kf, text, len, G_KEY_FILE_NONE, NULL) ||
        !(uuid = g_key_file_get_string(kf, GRANT_GROUP, "uuid", NULL)) ||
        !(socket = g_key_file_get_string(kf, GRANT_GROUP, "socket", NULL)) ||
        !(*export = g_key_file_get_string(kf, GRANT_GROUP, "export", NULL)) ||
        !g_str_equal(uuid, g->uuid))
        return GRANT_NOT_OURS;
    for (const char *const *s = sockets; *s; s++)
        ours = ours || g_str_equal(*s, socket);
    if (!ours)
        return GRANT_NOT_OURS;
    expires = g_key_file_get_uint64(kf, GRANT_GROUP, "expires", NULL);
    if (g_key_file_get_int64(kf, GRANT_GROUP, "pid", NULL) != g->pid ||
        g_key_file_get_uint64(kf, GRANT_GROUP, "start", NULL) != g->start ||
        expires <= now || expires > now + (GFPOOL_NBD_GRANT_MAX_S + 1) * G_GUINT64_CONSTANT(1000000000))
        return GRANT_STALE;
    if (gfpool_guest_names(g, sockets, *export))
        return GRANT_SUPERSEDED;
    return GRANT_VALID;
}

/* Every grant file of g's: valid exports added to set (may be NULL),
 * superseded and stale ones removed. */
static void
grants_scan(const char *grant_dir, const GfpoolGuest *g, const char *const *sockets,
            GHashTable *set)
{
    g_autofree char *prefix = g_strconcat(g->uuid, ".", NULL);
    DIR *dir;
    struct dirent *de;
    int dirfd = open_root_dir(grant_dir, NULL);

    if (dirfd < 0)
        return;
    if (!(dir = fdopendir(dirfd))) {
        close(dirfd);
        return;
    }
    while ((de = readdir(dir))) {
        g_autofree char *export = NULL;

        if (!g_str_has_prefix(de->d_name, prefix))
            continue;
        switch (grant_read(dirfd, grant_dir, de->d_name, g, sockets, &export)) {
        case GRANT_VALID:
            if (set)
                g_hash_table_add(set, g_steal_pointer(&export));
            break;
        case GRANT_SUPERSEDED:
        case GRANT_STALE:
            /* a read-only grant dir keeps them: they count for nothing */
            unlinkat(dirfd, de->d_name, 0);
            break;
        case GRANT_NOT_OURS:
            break;
        }
    }
    closedir(dir);
}

gboolean
gfpool_nbd_grant_check(const char *grant_dir, const GfpoolGuest *g,
                       const char *const *sockets, const char *export)
{
    g_autoptr(GHashTable) set = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    grants_scan(grant_dir, g, sockets, set);
    return g_hash_table_contains(set, export);
}

void
gfpool_nbd_grant_add_exports(const char *grant_dir, const GfpoolGuest *g,
                             const char *const *sockets, GHashTable *set)
{
    grants_scan(grant_dir, g, sockets, set);
}

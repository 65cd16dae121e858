/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * nbdkit_gfpool.c: nbdkit-gfpool-plugin, the volumes of a gluster pool as
 * NBD exports, one export per volume, named by the volume's name.
 *
 *   nbdkit gfpool pool-xml=POOL.XML [export=NAME]... [nbdkit options]
 *
 * One gfapi connection for the whole process, opened after nbdkit has
 * forked into the background (gfapi's threads would not survive the
 * fork), to every host of the pool in order. Raw and qcow2 volumes are
 * served as the bytes they are: QEMU runs its own qcow2 layer on top.
 * Requests of every client run in parallel (gfapi fds are thread-safe).
 *
 * export=NAME (repeatable) restricts the server to those volumes.
 *
 * cache=none opens volumes with O_DIRECT, which the bricks honour (with
 * network.remote-dio off, GlusterFS's default): what QEMU's gluster driver
 * does for a disk with cache='none'. cache=writeback (the default) lets
 * the bricks' page cache keep what was read and written.
 *
 * guests=libvirt: one nbdkit shared by every guest of the pool, each
 * guest opening only what its live definition names (docs/nbd.md,
 * docs/security.md). A client that is not root must be the QEMU of a
 * running domain by libvirt's own records (state-dir=, gfpool_guest.c),
 * checked when it connects; each open rereads the domain's status and
 * allows the exports its NBD disks name on this server's sockets (images,
 * backing chains, blockcopy destinations), and those a root-only grant
 * gives this very QEMU for a minute (grant-dir=, `gfpool nbd-grant`: QEMU
 * opens a disk being attached, a blockcopy destination or a snapshot
 * overlay before libvirt records it). Any other volume is answered as one
 * that does not exist. Root clients (qemu-img, gfpool, an administrator)
 * open any volume.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "gfpool_conn.h"
#include "gfpool_guest.h"
#include "gfpool_pool_xml.h"
#include "gfpool_volume.h"

/* ---- configuration -------------------------------------------------- */

static char *pool_xml_path;
static GfpoolSource *pool_source;
static GPtrArray *allowed_exports;  /* char*; NULL: every volume */
static gboolean check_guests;
static char *state_dir;
static char *grant_dir;
static gboolean cache_none;
static GfpoolConn *conn;
static char **our_sockets;          /* guests=libvirt: the unix sockets we listen on */

/* Handles open per export: a flush makes what every client wrote to that
 * volume durable, which is what can_multi_conn promises. A flush holds a
 * reference to each handle it fsyncs, so a close meanwhile never waits
 * for it and never frees an fd under it. */
typedef struct {
    char *name;
    glfs_fd_t *fd;
    guint64 size;       /* the export's size (see export_size) */
    gboolean direct;    /* fd is O_DIRECT: requests come in whole sectors */
    gint refs;
} GfpoolNbdHandle;

/* What a brick's O_DIRECT needs, and what the export announces then. */
#define DIRECT_SECTOR 512
/* A qcow2 export's size is a multiple of it; the preferred block size. */
#define EXPORT_PAGE 4096

static GMutex handles_lock;
static GPtrArray *handles;          /* GfpoolNbdHandle* */

static int
gfpool_nbd_config(const char *key, const char *value)
{
    g_autoptr(GError) err = NULL;

    if (g_str_equal(key, "pool-xml")) {
        if (pool_xml_path) {
            nbdkit_error("pool-xml given twice");
            return -1;
        }
        pool_xml_path = nbdkit_realpath(value);
        return pool_xml_path ? 0 : -1;
    }
    if (g_str_equal(key, "guests")) {
        if (!g_str_equal(value, "libvirt") && !g_str_equal(value, "any")) {
            nbdkit_error("guests=%s: libvirt or any", value);
            return -1;
        }
        check_guests = g_str_equal(value, "libvirt");
        return 0;
    }
    if (g_str_equal(key, "allow-dir")) {
        /* What the packaged unit said before libvirt's records replaced the
         * lists of the qemu hook; kept in drop-ins (cache=none): the same
         * check, stricter than the lists ever were. */
        nbdkit_debug("allow-dir=%s: obsolete, taken as guests=libvirt", value);
        check_guests = TRUE;
        return 0;
    }
    if (g_str_equal(key, "state-dir") || g_str_equal(key, "grant-dir")) {
        char **dir = g_str_equal(key, "state-dir") ? &state_dir : &grant_dir;

        /* not resolved: the plugin opens it refusing every symlink */
        if (!g_path_is_absolute(value)) {
            nbdkit_error("%s=%s: an absolute path", key, value);
            return -1;
        }
        g_free(*dir);
        *dir = g_canonicalize_filename(value, "/");
        return 0;
    }
    if (g_str_equal(key, "export")) {
        if (!gfpool_vol_name_validate(value, strlen(value), &err)) {
            nbdkit_error("export=%s: %s", value, err->message);
            return -1;
        }
        if (!allowed_exports)
            allowed_exports = g_ptr_array_new_with_free_func(g_free);
        g_ptr_array_add(allowed_exports, g_strdup(value));
        return 0;
    }
    if (g_str_equal(key, "cache")) {
        if (g_str_equal(value, "none") || g_str_equal(value, "writeback")) {
            cache_none = g_str_equal(value, "none");
            return 0;
        }
        nbdkit_error("cache=%s: none or writeback", value);
        return -1;
    }
    nbdkit_error("unknown parameter '%s' (gfpool takes pool-xml=, export=, cache=, guests=, "
                 "state-dir= and grant-dir=)", key);
    return -1;
}

/* The pool is parsed and checked here, before nbdkit forks: a bad XML
 * file fails the command, not the first client. */
static int
gfpool_nbd_config_complete(void)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *xml = NULL;
    g_autoptr(GfpoolPoolDef) def = NULL;
    gsize len;

    if (!pool_xml_path) {
        nbdkit_error("pool-xml=FILE is required (the pool's XML, as for virsh pool-define)");
        return -1;
    }
    if (!g_file_get_contents(pool_xml_path, &xml, &len, &err) ||
        !(def = gfpool_pool_def_parse(xml, len, &err))) {
        nbdkit_error("%s: %s", pool_xml_path, err->message);
        return -1;
    }
    pool_source = g_steal_pointer(&def->source);
    if (!state_dir)
        state_dir = g_strdup(GFPOOL_QEMU_STATE_DIR);
    if (!grant_dir)
        grant_dir = g_strdup(GFPOOL_NBD_GRANT_DIR);
    return 0;
}

#define gfpool_nbd_config_help \
    "pool-xml=FILE  (required) the gluster pool's XML: every host, transport, dir\n" \
    "export=NAME    serve only this volume (repeatable; default: every volume)\n" \
    "cache=none     the bricks bypass their page cache (O_DIRECT), as for a\n" \
    "               QEMU gluster disk with cache='none' (default: writeback)\n" \
    "guests=libvirt a client that is not root must be the QEMU of a running\n" \
    "               libvirt domain, and opens only the volumes its live\n" \
    "               definition names on this server's unix socket, or that\n" \
    "               gfpool nbd-grant gave it (default: any, every client\n" \
    "               opens every volume)\n" \
    "state-dir=DIR  libvirt's QEMU state dir, its records of running domains\n" \
    "               (default " GFPOOL_QEMU_STATE_DIR ")\n" \
    "grant-dir=DIR  where gfpool nbd-grant writes grants\n" \
    "               (default " GFPOOL_NBD_GRANT_DIR ")\n" \
    "allow-dir=DIR  obsolete: taken as guests=libvirt"

/* ---- the connection ------------------------------------------------- */

/* The unix sockets nbdkit listens on (-U, or handed by systemd): the
 * paths a domain's NBD disks name when they mean this server. */
static gboolean
find_our_sockets(void)
{
    g_autoptr(GPtrArray) paths = g_ptr_array_new_with_free_func(g_free);
    DIR *fds = opendir("/proc/self/fd");
    struct dirent *de;

    if (!fds) {
        nbdkit_error("guests=libvirt: /proc/self/fd: %s", g_strerror(errno));
        return FALSE;
    }
    while ((de = readdir(fds))) {
        struct sockaddr_un sa;
        socklen_t salen = sizeof(sa);
        int listening = 0;
        socklen_t optlen = sizeof(listening);
        int fd = atoi(de->d_name);
        struct stat st;
        g_autofree char *canon = NULL;

        if (de->d_name[0] == '.' || fd == dirfd(fds) || fstat(fd, &st) < 0 ||
            !S_ISSOCK(st.st_mode) ||
            getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &optlen) < 0 || !listening ||
            getsockname(fd, (struct sockaddr *)&sa, &salen) < 0 || sa.sun_family != AF_UNIX ||
            salen <= offsetof(struct sockaddr_un, sun_path) || !sa.sun_path[0])
            continue;
        sa.sun_path[MIN((gsize)salen - offsetof(struct sockaddr_un, sun_path),
                        sizeof(sa.sun_path) - 1)] = '\0';
        if (!(canon = gfpool_nbd_socket_canonical(sa.sun_path))) {
            nbdkit_error("guests=libvirt: the socket %s is not an absolute path, "
                         "which a domain's disk could not name", sa.sun_path);
            closedir(fds);
            return FALSE;
        }
        nbdkit_debug("guests=libvirt: a guest's disks name this server as %s", canon);
        g_ptr_array_add(paths, g_steal_pointer(&canon));
    }
    closedir(fds);
    if (paths->len == 0) {
        nbdkit_error("guests=libvirt: nbdkit listens on no unix socket (-U PATH, or socket "
                     "activation): guests reach their disks through one");
        return FALSE;
    }
    g_ptr_array_add(paths, NULL);
    our_sockets = (char **)g_ptr_array_free(g_steal_pointer(&paths), FALSE);
    return TRUE;
}

static int
gfpool_nbd_after_fork(void)
{
    g_autoptr(GError) err = NULL;

    handles = g_ptr_array_new();
    if (check_guests && !find_our_sockets())
        return -1;
    if (!(conn = gfpool_conn_open(pool_source, 0, &err))) {
        nbdkit_error("%s", err->message);
        return -1;
    }
    return 0;
}

static void
gfpool_nbd_unload(void)
{
    /* nbdkit is exiting: gfapi's 10 s teardown would only delay it, and
     * every write a client was told is durable was fsynced. */
    gfpool_conn_abandon(conn);
    gfpool_source_free(pool_source);
    g_clear_pointer(&allowed_exports, g_ptr_array_unref);
    g_clear_pointer(&handles, g_ptr_array_unref);
    g_strfreev(our_sockets);
    g_free(pool_xml_path);
    g_free(state_dir);
    g_free(grant_dir);
}

/* ---- validation: who the client is, which names are exports ---------- */

/*
 * Who is at the other end of the connection, found when it connects. nbdkit
 * (1.32 and 1.42 alike, server/connections.c handle_single_connection)
 * runs preconnect, the handshake's list_exports and open on the thread of
 * that connection, and only its requests on worker threads: the identity
 * lives in that thread's storage, and dies with it.
 */
typedef struct {
    gint64 pid;
    guint64 connected;  /* CLOCK_BOOTTIME ns: its QEMU started before */
    GfpoolGuest *guest; /* NULL: root */
} Peer;

static void
peer_free(Peer *p)
{
    gfpool_guest_free(p->guest);
    g_free(p);
}

static GPrivate peer_key = G_PRIVATE_INIT((GDestroyNotify)peer_free);

static int
gfpool_nbd_preconnect(int readonly)
{
    g_autoptr(GError) err = NULL;
    struct timespec now;
    Peer *p;
    int64_t uid, pid;

    if (!check_guests)
        return 0;
    clock_gettime(CLOCK_BOOTTIME, &now);
    p = g_new0(Peer, 1);
    p->connected = (guint64)now.tv_sec * 1000000000 + (guint64)now.tv_nsec;
    g_private_replace(&peer_key, p);
    if ((uid = nbdkit_peer_uid()) == 0)
        return 0;
    if ((pid = nbdkit_peer_pid()) <= 0) {
        nbdkit_error("refused a client (uid %" PRId64 ") whose process is unknown "
                     "(not a unix socket?)", uid);
        return -1;
    }
    p->pid = pid;
    if (!(p->guest = gfpool_guest_by_pid(state_dir, pid, p->connected, &err))) {
        nbdkit_error("refused client pid %" PRId64 " uid %" PRId64 ": not root, and not the "
                     "QEMU of a running domain: %s", pid, uid, err->message);
        return -1;
    }
    nbdkit_debug("client pid %" PRId64 " is the QEMU of domain '%s' (%s)",
                 pid, p->guest->name, p->guest->uuid);
    return 0;
}

/* The guest on this connection as libvirt's records say now: the same
 * QEMU of the same domain, its live definition reread. NULL: root, or
 * guests are not checked. */
static gboolean
peer_guest(GfpoolGuest **guest)
{
    g_autoptr(GError) err = NULL;
    Peer *p = check_guests ? g_private_get(&peer_key) : NULL;
    GfpoolGuest *now;

    *guest = NULL;
    if (!check_guests)
        return TRUE;
    if (!p) {
        nbdkit_error("no identity for this connection (preconnect did not run)");
        return FALSE;
    }
    if (!p->guest)
        return TRUE;
    if (!(now = gfpool_guest_by_pid(state_dir, p->pid, p->connected, &err)) ||
        !g_str_equal(now->uuid, p->guest->uuid) || now->start != p->guest->start) {
        nbdkit_error("client pid %" PRId64 " is no longer the QEMU of domain '%s': %s",
                     p->pid, p->guest->name, err ? err->message : "another domain or process");
        gfpool_guest_free(now);
        return FALSE;
    }
    gfpool_guest_free(p->guest);
    p->guest = now;
    *guest = now;
    return TRUE;
}

static gboolean
export_allowed(const char *name)
{
    if (!allowed_exports)
        return TRUE;
    for (guint i = 0; i < allowed_exports->len; i++) {
        if (g_str_equal(g_ptr_array_index(allowed_exports, i), name))
            return TRUE;
    }
    return FALSE;
}

/* May the client on this connection open volume `name`? */
static gboolean
peer_allowed(const char *name)
{
    GfpoolGuest *g;

    if (!peer_guest(&g))
        return FALSE;
    if (!g)
        return TRUE;
    if (gfpool_guest_names(g, (const char *const *)our_sockets, name)) {
        /* what it names supersedes the grants it needed before */
        gfpool_nbd_grant_add_exports(grant_dir, g, (const char *const *)our_sockets, NULL);
        return TRUE;
    }
    if (gfpool_nbd_grant_check(grant_dir, g, (const char *const *)our_sockets, name)) {
        nbdkit_debug("export '%s': granted to domain '%s'", name, g->name);
        return TRUE;
    }
    nbdkit_debug("export '%s' refused: domain '%s' does not name it on this server",
                 name, g->name);
    return FALSE;
}

/* nbdkit refuses a list of more exports than this (MAX_EXPORTS in its
 * server/exports.c, 1.32.5 and the development tree alike): the whole
 * list fails. */
#define NBDKIT_LIST_MAX 10000

/* 1 when v was added, 0 when it is not an export, -1 on error. */
static int
add_export(struct nbdkit_exports *exports, const GfpoolVolInfo *v)
{
    if (v->kind != GFPOOL_VOL_FILE || !export_allowed(v->name))
        return 0;
    return nbdkit_add_export(exports, v->name, gfpool_format_to_string(v->format)) < 0 ? -1 : 1;
}

static gint
compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A guest's list is what it may open, found first: no other volume's
 * header is read for it. Root's is the pool's. */
static int
gfpool_nbd_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) vols = NULL;
    GfpoolGuest *g;

    if (!peer_guest(&g)) {
        errno = EPERM;
        return -1;
    }
    if (g) {
        g_autoptr(GHashTable) names = g_hash_table_new_full(g_str_hash, g_str_equal,
                                                            g_free, NULL);
        g_autofree const char **sorted = NULL;

        gfpool_guest_add_exports(g, (const char *const *)our_sockets, names);
        gfpool_nbd_grant_add_exports(grant_dir, g, (const char *const *)our_sockets, names);
        sorted = (const char **)g_hash_table_get_keys_as_array(names, NULL);
        /* qsort: GLib 2.82 deprecates g_qsort_with_data, 2.74 lacks its
         * successor */
        qsort(sorted, g_hash_table_size(names), sizeof(char *), compare_names);
        for (guint i = 0; sorted[i]; i++) {
            g_autoptr(GfpoolVolInfo) v = NULL;
            g_autoptr(GError) verr = NULL;

            if (!gfpool_vol_name_validate(sorted[i], strlen(sorted[i]), NULL))
                continue;
            if (!(v = gfpool_vol_info(conn, sorted[i], NULL, &verr))) {
                nbdkit_debug("export '%s' of domain '%s' not listed: %s",
                             sorted[i], g->name, verr->message);
                continue;
            }
            if (add_export(exports, v) < 0)
                return -1;
        }
        return 0;
    }
    if (!(vols = gfpool_pool_refresh(conn, NULL, 0, &err))) {
        nbdkit_error("%s", err->message);
        errno = EIO;
        return -1;
    }
    for (guint i = 0, listed = 0; i < vols->len; i++) {
        int added;

        if (listed >= NBDKIT_LIST_MAX) {
            /* A client learns nothing from a failed list; a cut one still
             * names ten thousand volumes, and every name still opens. */
            nbdkit_error("the export list stops at %d of the %u volumes: nbdkit lists no "
                         "more; every volume can still be opened by its name",
                         NBDKIT_LIST_MAX, vols->len);
            break;
        }
        if ((added = add_export(exports, g_ptr_array_index(vols, i))) < 0)
            return -1;
        listed += added;
    }
    return 0;
}

/* ---- handles -------------------------------------------------------- */

/*
 * An NBD export cannot grow, and a qcow2 image grows as clusters are
 * allocated. So a qcow2 volume is exported with room for every cluster of
 * its virtual disk to be allocated anew, with its tables: what QEMU's qcow2
 * driver meets on a logical volume bigger than the image (oVirt's layout).
 * Past the file's end reads give zeros and writes extend the file. A raw
 * volume is exactly its file. A corrupt header is refused: it is never
 * served as raw. So is a volume without a format record: its size would
 * be whatever its guest last wrote into its first sector.
 */
static gboolean
export_size(GfpoolNbdHandle *h, guint64 file_size, GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };

    if (!gfpool_probe_fd(h->fd, file_size, &p, error))
        return FALSE;
    if (p.corrupt || p.warning) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID, "%s", p.warning);
        return FALSE;
    }
    if (!p.recorded) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "the volume has no format record (its header reads %s); "
                    "record it with 'gfpool vol-record --format FORMAT %s'",
                    gfpool_format_to_string(p.format), h->name);
        return FALSE;
    }
    if (p.format != GFPOOL_FORMAT_QCOW2) {
        h->size = file_size;
        return TRUE;
    }
    /* data clusters + one L2 entry (8 bytes) and one refcount (2 bytes)
     * per cluster, rounded up generously, + 64 MiB for tables' own
     * clusters and fragmentation */
    h->size = file_size + p.capacity + p.capacity / 64 + 64 * 1024 * 1024;
    if (h->size > (guint64)G_MAXINT64 - EXPORT_PAGE || h->size < file_size) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "qcow2 virtual size %" G_GUINT64_FORMAT " is out of range", p.capacity);
        return FALSE;
    }
    /* whole pages: cache=none's sectors divide it */
    h->size = (h->size + EXPORT_PAGE - 1) & ~(guint64)(EXPORT_PAGE - 1);
    return TRUE;
}

static glfs_fd_t *
open_volume(const char *name, const char *path, int readonly, gboolean direct)
{
    glfs_fd_t *fd = glfs_open(gfpool_conn_glfs(conn), path,
                              (readonly ? O_RDONLY : O_RDWR) | (direct ? O_DIRECT : 0));

    if (!fd) {
        int e = errno;
        nbdkit_error("export '%s': cannot open volume: %s", name, g_strerror(e));
        errno = e;
    }
    return fd;
}

static GfpoolNbdHandle *
handle_ref(GfpoolNbdHandle *h)
{
    g_atomic_int_inc(&h->refs);
    return h;
}

static void
handle_unref(GfpoolNbdHandle *h)
{
    if (!g_atomic_int_dec_and_test(&h->refs))
        return;
    glfs_close(h->fd);
    g_free(h->name);
    g_free(h);
}

static void *
gfpool_nbd_open(int readonly)
{
    const char *name = nbdkit_export_name();
    g_autoptr(GError) err = NULL;
    g_autofree char *path = NULL;
    GfpoolNbdHandle *h;
    glfs_fd_t *fd;
    struct stat st;

    if (!name || !*name) {
        nbdkit_error("no export name: name a volume of the pool");
        errno = ENOENT;
        return NULL;
    }
    if (!gfpool_vol_name_validate(name, strlen(name), &err)) {
        nbdkit_error("export '%s': %s", name, err->message);
        errno = EINVAL;
        return NULL;
    }
    if (!export_allowed(name) || !peer_allowed(name)) {
        /* the same answer as for a volume that does not exist: a client
         * learns nothing about the names it may not open */
        nbdkit_error("export '%s': no such volume", name);
        errno = ENOENT;
        return NULL;
    }
    path = gfpool_conn_path(conn, name);
    if (!(fd = open_volume(name, path, readonly, cache_none)))
        return NULL;
    if (glfs_fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        nbdkit_error("export '%s': not a volume (a regular file of the pool)", name);
        glfs_close(fd);
        errno = EINVAL;
        return NULL;
    }
    h = g_new0(GfpoolNbdHandle, 1);
    h->refs = 1;
    h->name = g_strdup(name);
    h->fd = fd;
    if (!export_size(h, (guint64)st.st_size, &err)) {
        nbdkit_error("export '%s': %s", name, err->message);
        handle_unref(h);
        errno = EINVAL;
        return NULL;
    }
    h->direct = cache_none;
    if (h->direct && h->size % DIRECT_SECTOR != 0) {
        /* A raw volume ending in a partial sector: O_DIRECT could not
         * reach its last bytes, and QEMU rounds an export's size up to its
         * block size (writes past the end then fail). Every byte, served
         * through the bricks' page cache, is the lesser harm. */
        nbdkit_debug("export '%s': size %" G_GUINT64_FORMAT " is not whole %d-byte sectors: "
                     "served without O_DIRECT", name, h->size, DIRECT_SECTOR);
        if (!(fd = open_volume(name, path, readonly, FALSE))) {
            int e = errno;
            handle_unref(h);
            errno = e;
            return NULL;
        }
        glfs_close(h->fd);
        h->fd = fd;
        h->direct = FALSE;
    }
    g_mutex_lock(&handles_lock);
    g_ptr_array_add(handles, h);
    g_mutex_unlock(&handles_lock);
    return h;
}

static void
gfpool_nbd_close(void *handle)
{
    GfpoolNbdHandle *h = handle;

    g_mutex_lock(&handles_lock);
    g_ptr_array_remove(handles, h);
    g_mutex_unlock(&handles_lock);
    handle_unref(h);
}

static int64_t
gfpool_nbd_get_size(void *handle)
{
    GfpoolNbdHandle *h = handle;

    return (int64_t)h->size;
}

/* Where the file ends now: a qcow2 export goes on past it. */
static int
file_end(GfpoolNbdHandle *h, guint64 *end)
{
    struct stat st;

    if (glfs_fstat(h->fd, &st) < 0) {
        int e = errno;
        nbdkit_error("export '%s': fstat: %s", h->name, g_strerror(e));
        errno = e;
        return -1;
    }
    *end = (guint64)st.st_size;
    return 0;
}

static int
gfpool_nbd_can_fua(void *handle)
{
    return NBDKIT_FUA_NATIVE;
}

static int
gfpool_nbd_can_zero(void *handle)
{
    return 1;
}

static int
gfpool_nbd_can_fast_zero(void *handle)
{
    /* glfs_zerofill, done by the bricks; refused with ENOTSUP where the
     * volume cannot (see zero below) */
    return 1;
}

static int
gfpool_nbd_can_multi_conn(void *handle)
{
    /* a flush on any connection fsyncs every fd open on the volume */
    return 1;
}

/* O_DIRECT on a brick wants sector-aligned requests: say so, and QEMU
 * aligns them (as it does for its own gluster driver with cache='none'). */
static int
gfpool_nbd_block_size(void *handle, uint32_t *minimum, uint32_t *preferred, uint32_t *maximum)
{
    GfpoolNbdHandle *h = handle;

    if (!h->direct) {
        *minimum = *preferred = *maximum = 0;
        return 0;
    }
    *minimum = DIRECT_SECTOR;
    *preferred = EXPORT_PAGE;
    *maximum = 32 * 1024 * 1024;
    return 0;
}

/* ---- I/O -------------------------------------------------------------- */

/* nbdkit passes errno to the client: keep gfapi's. */
static int
io_error(GfpoolNbdHandle *h, const char *what, uint64_t offset, uint32_t count, int e)
{
    nbdkit_error("export '%s': %s of %" PRIu32 " bytes at %" PRIu64 ": %s",
                 h->name, what, count, offset, g_strerror(e));
    errno = e;
    return -1;
}

static int
gfpool_nbd_pread(void *handle, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    GfpoolNbdHandle *h = handle;
    uint32_t done = 0;

    while (done < count) {
        ssize_t n = glfs_pread(h->fd, (char *)buf + done, count - done, offset + done, 0, NULL);
        if (n < 0)
            return io_error(h, "read", offset, count, errno);
        if (n == 0) {   /* past the file's end: zeros (nbdkit checked the export's) */
            memset((char *)buf + done, 0, count - done);
            break;
        }
        done += (uint32_t)n;
    }
    return 0;
}

static int
gfpool_nbd_pwrite(void *handle, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
    GfpoolNbdHandle *h = handle;
    uint32_t done = 0;

    while (done < count) {
        ssize_t n = glfs_pwrite(h->fd, (const char *)buf + done, count - done, offset + done, 0,
                                NULL, NULL);
        if (n <= 0)
            return io_error(h, "write", offset, count, n < 0 ? errno : EIO);
        done += (uint32_t)n;
    }
    if ((flags & NBDKIT_FLAG_FUA) && glfs_fdatasync(h->fd, NULL, NULL) < 0)
        return io_error(h, "write (fua)", offset, count, errno);
    return 0;
}

static int
gfpool_nbd_flush(void *handle, uint32_t flags)
{
    GfpoolNbdHandle *h = handle;
    g_autoptr(GPtrArray) same = g_ptr_array_new_with_free_func((GDestroyNotify)handle_unref);
    int e = 0;

    /* The lock only to find them: an fsync can take seconds on a slow
     * brick, and every open, close and flush of every client needs it. */
    g_mutex_lock(&handles_lock);
    for (guint i = 0; i < handles->len; i++) {
        GfpoolNbdHandle *other = g_ptr_array_index(handles, i);
        if (g_str_equal(other->name, h->name))
            g_ptr_array_add(same, handle_ref(other));
    }
    g_mutex_unlock(&handles_lock);
    for (guint i = 0; i < same->len; i++) {
        GfpoolNbdHandle *other = g_ptr_array_index(same, i);
        if (glfs_fsync(other->fd, NULL, NULL) < 0 && !e)
            e = errno;
    }
    if (e) {
        nbdkit_error("export '%s': flush: %s", h->name, g_strerror(e));
        errno = e;
        return -1;
    }
    return 0;
}

/* trim and zero stop at the file's end: past it is zeros already, and
 * neither may grow the file. */
static int
clamp_to_file(GfpoolNbdHandle *h, uint64_t offset, uint32_t *count)
{
    guint64 end;

    if (file_end(h, &end) < 0)
        return -1;
    *count = offset >= end ? 0 : (uint32_t)MIN((guint64)*count, end - offset);
    return 0;
}

static int
gfpool_nbd_trim(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    GfpoolNbdHandle *h = handle;

    if (clamp_to_file(h, offset, &count) < 0)
        return -1;
    if (count > 0 && glfs_discard(h->fd, (off_t)offset, count) < 0)
        return io_error(h, "trim", offset, count, errno);
    if ((flags & NBDKIT_FLAG_FUA) && glfs_fdatasync(h->fd, NULL, NULL) < 0)
        return io_error(h, "trim (fua)", offset, count, errno);
    return 0;
}

static int
gfpool_nbd_zero(void *handle, uint32_t count, uint64_t offset, uint32_t flags)
{
    GfpoolNbdHandle *h = handle;
    g_autoptr(GError) err = NULL;

    if (clamp_to_file(h, offset, &count) < 0)
        return -1;
    if (count == 0) {
        /* nothing */
    } else if (flags & NBDKIT_FLAG_FAST_ZERO) {
        /* only what the bricks do themselves counts as fast */
        if (glfs_zerofill(h->fd, (off_t)offset, count) < 0) {
            int e = errno;
            if (e != EOPNOTSUPP && e != ENOSYS && e != ENOTSUP)
                return io_error(h, "zero", offset, count, e);
            errno = ENOTSUP;    /* the client then writes the zeros itself */
            return -1;
        }
    } else if (!gfpool_glfs_fd_zero(h->fd, offset, count, &err)) {
        nbdkit_error("export '%s': %s", h->name, err->message);
        errno = EIO;
        return -1;
    }
    if ((flags & NBDKIT_FLAG_FUA) && glfs_fdatasync(h->fd, NULL, NULL) < 0)
        return io_error(h, "zero (fua)", offset, count, errno);
    return 0;
}

static int
gfpool_nbd_extents(void *handle, uint32_t count, uint64_t offset, uint32_t flags,
                   struct nbdkit_extents *extents)
{
    GfpoolNbdHandle *h = handle;
    guint64 end = offset + count;
    guint64 pos = offset;
    guint64 fend;
    guint64 d, l;

    if (file_end(h, &fend) < 0)
        return -1;
    while (gfpool_glfs_fd_next_data(h->fd, pos, MIN(end, fend), &d, &l)) {
        if (d > pos &&
            nbdkit_add_extent(extents, pos, d - pos, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) < 0)
            return -1;
        if (nbdkit_add_extent(extents, d, l, 0) < 0)
            return -1;
        pos = d + l;
        if (flags & NBDKIT_FLAG_REQ_ONE)
            return 0;
    }
    if (pos < end &&
        nbdkit_add_extent(extents, pos, end - pos, NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) < 0)
        return -1;
    return 0;
}

/* ---- callback table ------------------------------------------------- */

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
    .name = "gfpool",
    .longname = "gfpool: the volumes of a GlusterFS storage pool over libgfapi",
    .version = GFPOOL_VERSION,
    .magic_config_key = "pool-xml",
    .config = gfpool_nbd_config,
    .config_complete = gfpool_nbd_config_complete,
    .config_help = gfpool_nbd_config_help,
    .after_fork = gfpool_nbd_after_fork,
    .unload = gfpool_nbd_unload,
    .preconnect = gfpool_nbd_preconnect,
    .list_exports = gfpool_nbd_list_exports,
    .open = gfpool_nbd_open,
    .close = gfpool_nbd_close,
    .get_size = gfpool_nbd_get_size,
    .can_fua = gfpool_nbd_can_fua,
    .can_zero = gfpool_nbd_can_zero,
    .can_fast_zero = gfpool_nbd_can_fast_zero,
    .can_multi_conn = gfpool_nbd_can_multi_conn,
    .block_size = gfpool_nbd_block_size,
    .pread = gfpool_nbd_pread,
    .pwrite = gfpool_nbd_pwrite,
    .flush = gfpool_nbd_flush,
    .trim = gfpool_nbd_trim,
    .zero = gfpool_nbd_zero,
    .extents = gfpool_nbd_extents,
};

NBDKIT_REGISTER_PLUGIN(plugin)

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
 * allow-dir=DIR: which guest may open which volume, for one nbdkit shared
 * by every guest of the pool (docs/nbd.md). A client that is not root is
 * taken for a QEMU: its guest's name, from the -name of its command line,
 * names the file DIR/GUEST, which lists the volumes that guest's domain
 * XML names, one per line (`gfpool nbd-hook`, run by libvirt's qemu hook,
 * writes it at the guest's start and removes it at its end). Any other
 * volume is answered as one that does not exist. Root clients (qemu-img,
 * gfpool, an administrator) open any volume.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "gfpool_conn.h"
#include "gfpool_pool_xml.h"
#include "gfpool_volume.h"

/* ---- configuration -------------------------------------------------- */

static char *pool_xml_path;
static GfpoolSource *pool_source;
static GPtrArray *allowed_exports;  /* char*; NULL: every volume */
static char *allow_dir;
static gboolean cache_none;
static GfpoolConn *conn;

/* Handles open per export: a flush makes what every client wrote to that
 * volume durable, which is what can_multi_conn promises. */
typedef struct {
    char *name;
    glfs_fd_t *fd;
    guint64 size;       /* the export's size (see export_size) */
    gboolean direct;    /* fd is O_DIRECT: requests come in whole sectors */
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
    if (g_str_equal(key, "allow-dir")) {
        g_free(allow_dir);
        allow_dir = nbdkit_realpath(value);
        return allow_dir ? 0 : -1;
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
    nbdkit_error("unknown parameter '%s' (gfpool takes pool-xml=, export=, allow-dir= and cache=)", key);
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
    return 0;
}

#define gfpool_nbd_config_help \
    "pool-xml=FILE  (required) the gluster pool's XML: every host, transport, dir\n" \
    "export=NAME    serve only this volume (repeatable; default: every volume)\n" \
    "allow-dir=DIR  a non-root client (a guest's QEMU) opens only the volumes\n" \
    "               listed in DIR/GUEST (written by gfpool nbd-hook)\n" \
    "cache=none     the bricks bypass their page cache (O_DIRECT), as for a\n" \
    "               QEMU gluster disk with cache='none' (default: writeback)"

/* ---- the connection ------------------------------------------------- */

static int
gfpool_nbd_after_fork(void)
{
    g_autoptr(GError) err = NULL;

    handles = g_ptr_array_new();
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
    g_free(pool_xml_path);
    g_free(allow_dir);
}

/* ---- validation: which names are exports ---------------------------- */

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

/* The guest a QEMU runs: "-name guest=NAME,..." (libvirt doubles commas
 * inside the name), or "-name NAME". NULL for anything else. */
static char *
peer_guest_name(int64_t pid)
{
    g_autofree char *path = g_strdup_printf("/proc/%" PRId64 "/cmdline", pid);
    g_autofree char *cmdline = NULL;
    gsize len;
    const char *arg;
    const char *end;

    if (!g_file_get_contents(path, &cmdline, &len, NULL))
        return NULL;
    end = cmdline + len;
    for (arg = cmdline; arg < end; arg += strlen(arg) + 1) {
        const char *v = arg + strlen(arg) + 1;
        g_autoptr(GString) name = g_string_new(NULL);

        if (!g_str_equal(arg, "-name") || v >= end)
            continue;
        if (g_str_has_prefix(v, "guest="))
            v += strlen("guest=");
        for (; *v; v++) {
            if (*v == ',') {
                if (v[1] != ',')
                    break;
                v++;
            }
            g_string_append_c(name, *v);
        }
        return name->len ? g_string_free(g_steal_pointer(&name), FALSE) : NULL;
    }
    return NULL;
}

/* allow-dir: may the client on this connection open volume `name`? */
static gboolean
peer_allowed(const char *name)
{
    g_autofree char *guest = NULL;
    g_autofree char *path = NULL;
    g_autofree char *list = NULL;
    g_auto(GStrv) lines = NULL;
    int64_t pid;
    int64_t uid;

    if (!allow_dir)
        return TRUE;
    if ((uid = nbdkit_peer_uid()) == 0)
        return TRUE;
    if ((pid = nbdkit_peer_pid()) < 0 || !(guest = peer_guest_name(pid))) {
        nbdkit_debug("export '%s' refused: client pid %" PRId64 " uid %" PRId64
                     " is neither root nor a guest's QEMU", name, pid, uid);
        return FALSE;
    }
    if (strchr(guest, '/') || g_str_equal(guest, ".") || g_str_equal(guest, ".."))
        return FALSE;
    path = g_build_filename(allow_dir, guest, NULL);
    if (!g_file_get_contents(path, &list, NULL, NULL)) {
        nbdkit_debug("export '%s' refused: guest '%s' has no %s", name, guest, path);
        return FALSE;
    }
    lines = g_strsplit(list, "\n", -1);
    for (char **l = lines; *l; l++) {
        if (g_str_equal(*l, name))
            return TRUE;
    }
    nbdkit_debug("export '%s' refused: not in guest '%s''s %s", name, guest, path);
    return FALSE;
}

static int
gfpool_nbd_list_exports(int readonly, int is_tls, struct nbdkit_exports *exports)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) vols = NULL;

    if (!(vols = gfpool_pool_refresh(conn, NULL, 0, &err))) {
        nbdkit_error("%s", err->message);
        errno = EIO;
        return -1;
    }
    for (guint i = 0; i < vols->len; i++) {
        const GfpoolVolInfo *v = g_ptr_array_index(vols, i);

        if (v->kind != GFPOOL_VOL_FILE || !export_allowed(v->name) || !peer_allowed(v->name))
            continue;
        if (nbdkit_add_export(exports, v->name, gfpool_format_to_string(v->format)) < 0)
            return -1;
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
 * served as raw.
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

static void
gfpool_nbd_free_handle(GfpoolNbdHandle *h)
{
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
    h->name = g_strdup(name);
    h->fd = fd;
    if (!export_size(h, (guint64)st.st_size, &err)) {
        nbdkit_error("export '%s': %s", name, err->message);
        gfpool_nbd_free_handle(h);
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
            gfpool_nbd_free_handle(h);
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
    gfpool_nbd_free_handle(h);
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

    /* under the lock: an fsync outside it would race a close of another
     * handle */
    g_mutex_lock(&handles_lock);
    for (guint i = 0; i < handles->len; i++) {
        GfpoolNbdHandle *other = g_ptr_array_index(handles, i);
        if (g_str_equal(other->name, h->name) && glfs_fsync(other->fd, NULL, NULL) < 0) {
            int e = errno;
            g_mutex_unlock(&handles_lock);
            nbdkit_error("export '%s': flush: %s", h->name, g_strerror(e));
            errno = e;
            return -1;
        }
    }
    g_mutex_unlock(&handles_lock);
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

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * storage_file_gfpool.c: libvirt's storage-file backend for gluster disks,
 * a drop-in for Debian's libvirt_storage_file_gluster.so.
 *
 * libvirt opens one of these per image whenever it looks at a gluster
 * disk: the backing-chain check at every guest start, external snapshots,
 * block copy and commit, the destination of a migration, DAC labelling.
 * Debian's module pays a glfs_init and a ~10 s glfs_fini for each image;
 * here every image of every disk shares the core's cached connection to
 * its volume (gfpool_conn_cache_get), closed in the background once idle.
 *
 * libvirt's contract: init, deinit and read report a libvirt error; create,
 * unlink, stat, access and chown set errno and return -1 without one.
 */
#include <config.h>

#include <fcntl.h>

#include "internal.h"
#include "virerror.h"
#include "virlog.h"
#include "storage_file_backend.h"
#include "storage_source_conf.h"

#include "gfpool_conn.h"
#include "gfpool_record.h"
#include "storage_file_gfpool.h"

#define VIR_FROM_THIS VIR_FROM_STORAGE

VIR_LOG_INIT("storage.storage_file_gfpool");

typedef struct {
    GfpoolConn *conn;
} GfpoolFilePriv;

static glfs_t *
gfpoolFileFs(const virStorageSource *src)
{
    virStorageDriverData *drv = src->drv;
    GfpoolFilePriv *priv = drv->priv;

    return gfpool_conn_glfs(priv->conn);
}

/* The core's view of a disk source: its volume and every host, in order. */
static GfpoolSource *
gfpoolFileSource(const virStorageSource *src)
{
    g_autoptr(GfpoolSource) gs = gfpool_source_new();

    gs->volume = g_strdup(src->volume);
    gs->dir = g_strdup("/");
    for (size_t i = 0; i < src->nhosts; i++) {
        const virStorageNetHostDef *h = src->hosts + i;
        GfpoolHost *gh;

        switch (h->transport) {
        case VIR_STORAGE_NET_HOST_TRANS_UNIX:
            gh = gfpool_host_new(GFPOOL_TRANSPORT_UNIX, NULL, 0, h->socket);
            break;
        case VIR_STORAGE_NET_HOST_TRANS_RDMA:
            gh = gfpool_host_new(GFPOOL_TRANSPORT_RDMA, h->name, (int)h->port, NULL);
            break;
        case VIR_STORAGE_NET_HOST_TRANS_TCP:
        default:
            gh = gfpool_host_new(GFPOOL_TRANSPORT_TCP, h->name, (int)h->port, NULL);
            break;
        }
        g_ptr_array_add(gs->hosts, gh);
    }
    return g_steal_pointer(&gs);
}

static int
gfpoolFileInit(virStorageSource *src)
{
    virStorageDriverData *drv = src->drv;
    g_autoptr(GfpoolSource) gs = NULL;
    g_autoptr(GError) err = NULL;
    GfpoolFilePriv *priv;
    GfpoolConn *conn;

    if (!src->volume || !src->path || src->nhosts == 0) {
        virReportError(VIR_ERR_INTERNAL_ERROR,
                       _("gluster disk source '%s' lacks its volume, path or host"),
                       NULLSTR(src->path));
        return -1;
    }
    gs = gfpoolFileSource(src);
    if (!(conn = gfpool_conn_cache_get(gs, &err))) {
        virReportError(VIR_ERR_OPERATION_FAILED, "%s", err->message);
        return -1;
    }
    priv = g_new0(GfpoolFilePriv, 1);
    priv->conn = conn;
    drv->priv = priv;
    VIR_DEBUG("gluster storage file %p: volume '%s' path '%s' as %u:%u",
              src, src->volume, src->path, (unsigned int)drv->uid, (unsigned int)drv->gid);
    return 0;
}

static void
gfpoolFileDeinit(virStorageSource *src)
{
    virStorageDriverData *drv = src->drv;
    GfpoolFilePriv *priv = drv->priv;

    if (priv)
        gfpool_conn_cache_put(priv->conn);
    g_free(priv);
    drv->priv = NULL;
}

/* The format libvirt creates the image for (a snapshot's overlay, a block
 * copy's destination), which QEMU then writes: recorded as our own verbs
 * record theirs. Formats gfpool does not name stay without a record. */
static GfpoolFormat
gfpoolFileFormat(const virStorageSource *src)
{
    switch ((virStorageFileFormat)src->format) {
    case VIR_STORAGE_FILE_RAW:
        return GFPOOL_FORMAT_RAW;
    case VIR_STORAGE_FILE_QCOW2:
        return GFPOOL_FORMAT_QCOW2;
    default:
        return GFPOOL_FORMAT_NONE;
    }
}

static int
gfpoolFileCreate(virStorageSource *src)
{
    g_autoptr(GError) err = NULL;
    GfpoolFormat format = gfpoolFileFormat(src);
    glfs_fd_t *fd;

    /* what libvirt's other backends do for a snapshot's new overlay */
    if (!(fd = glfs_creat(gfpoolFileFs(src), src->path, O_CREAT | O_TRUNC | O_WRONLY,
                          S_IRUSR | S_IWUSR)))
        return -1;
    if (format != GFPOOL_FORMAT_NONE && !gfpool_record_write(fd, format, &err)) {
        int saved = errno;
        VIR_WARN("gluster image '%s' on volume '%s' keeps no format record: %s",
                 src->path, src->volume, err->message);
        errno = saved;
    }
    glfs_close(fd);
    return 0;
}

static int
gfpoolFileUnlink(virStorageSource *src)
{
    return glfs_unlink(gfpoolFileFs(src), src->path);
}

static int
gfpoolFileStat(virStorageSource *src, struct stat *st)
{
    return glfs_stat(gfpoolFileFs(src), src->path, st);
}

static int
gfpoolFileAccess(virStorageSource *src, int mode)
{
    return glfs_access(gfpoolFileFs(src), src->path, mode);
}

static int
gfpoolFileChown(const virStorageSource *src, uid_t uid, gid_t gid)
{
    return glfs_chown(gfpoolFileFs(src), src->path, uid, gid);
}

/* len bytes from offset (fewer at the end of the file) into a new *buf. */
static ssize_t
gfpoolFileRead(virStorageSource *src, size_t offset, size_t len, char **buf)
{
    g_autofree char *data = NULL;
    g_autoptr(GError) err = NULL;
    glfs_fd_t *fd;
    gssize n;

    *buf = NULL;
    if (!(fd = glfs_open(gfpoolFileFs(src), src->path, O_RDONLY))) {
        virReportSystemError(errno, _("cannot open '%s' on gluster volume '%s'"),
                             src->path, src->volume);
        return -1;
    }
    data = g_new0(char, MAX(len, 1));
    n = gfpool_glfs_fd_read(fd, offset, data, len, &err);
    glfs_close(fd);
    if (n < 0) {
        virReportError(VIR_ERR_OPERATION_FAILED, _("cannot read '%s' on gluster volume '%s': %s"),
                       src->path, src->volume, err ? err->message : "");
        return -1;
    }
    *buf = g_steal_pointer(&data);
    return n;
}


static virStorageFileBackend gfpoolFileBackend = {
    .type = VIR_STORAGE_TYPE_NETWORK,
    .protocol = VIR_STORAGE_NET_PROTOCOL_GLUSTER,

    .backendInit = gfpoolFileInit,
    .backendDeinit = gfpoolFileDeinit,
    .storageFileRead = gfpoolFileRead,

    .storageFileCreate = gfpoolFileCreate,
    .storageFileUnlink = gfpoolFileUnlink,
    .storageFileStat = gfpoolFileStat,
    .storageFileAccess = gfpoolFileAccess,
    .storageFileChown = gfpoolFileChown,
};

int
gfpoolStorageFileRegister(void)
{
    return virStorageFileBackendRegister(&gfpoolFileBackend);
}

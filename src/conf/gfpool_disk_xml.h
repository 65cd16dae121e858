/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_disk_xml.h: the domain <disk> that makes QEMU open a pool's image
 * with its own gluster driver (libvirt refuses <disk type='volume'> for
 * gluster pools), and the same image as a gluster:// URI. Pure code.
 */
#pragma once

#include "gfpool_source.h"

typedef struct {
    char *name;     /* image name inside the pool directory */
    char *format;   /* "raw", "qcow2", ... as probed */
} GfpoolDiskLayer;

void gfpool_disk_layer_free(GfpoolDiskLayer *l);
GfpoolDiskLayer *gfpool_disk_layer_new(const char *name, const char *format);

/* Longer than any restart of nbdkit; past it a guest waits on a dead disk. */
#define GFPOOL_NBD_RECONNECT_DELAY_MAX 3600

typedef struct {
    const GfpoolSource *src;
    GPtrArray *chain;           /* of GfpoolDiskLayer*: the image first, then its backing files */
    const char *target_dev;     /* NULL = "vda" */
    const char *bus;            /* NULL = "virtio" */
    const char *cache;          /* NULL = not written */
    const char *discard;        /* NULL = not written */
    gboolean readonly;
    const char *nbd_socket;     /* not NULL: each image as the export of
                                 * that name of nbdkit-gfpool-plugin on
                                 * this unix socket, not through gluster */
    guint nbd_reconnect_delay;  /* with nbd_socket, not 0: QEMU holds the
                                 * guest's requests this many seconds for
                                 * nbdkit to come back (libvirt >= 9.2) */
} GfpoolDiskParams;

/*
 * <disk type='network' device='disk'> with <driver name='qemu' type=FORMAT>,
 * <source protocol='gluster' name='VOLUME/DIR/IMAGE'> listing every host of
 * the pool in order with its transport, and the backing chain as nested
 * network <backingStore>s (with nbd_socket: <source protocol='nbd'
 * name='IMAGE'> on that socket instead). *warnings (may be NULL) receives text for the
 * user, e.g. that QEMU >= 9.1 and libvirt's QEMU driver refuse rdma.
 */
char *gfpool_disk_xml(const GfpoolDiskParams *p, char **warnings);

/* "VOLUME/DIR/IMAGE" as <source name=''> wants it. */
char *gfpool_disk_source_name(const GfpoolSource *src, const char *image);

/*
 * What libvirt's QEMU driver records of a running domain in its state dir
 * (NAME.xml: <domstatus pid='QEMU'> around the live <domain>): the QEMU
 * process, the domain's name and uuid, and the NBD exports its disks name
 * on unix sockets (images, backing chains, blockcopy destinations in
 * <mirror>): socket path -> GPtrArray of export names (char*), each once.
 * Disks of other protocols are not looked at.
 */
typedef struct {
    gint64 pid;
    char *name;
    char *uuid;
    GHashTable *exports;
} GfpoolDomStatus;

void gfpool_domstatus_free(GfpoolDomStatus *st);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolDomStatus, gfpool_domstatus_free)
GfpoolDomStatus *gfpool_domstatus_parse(const char *xml, gsize len, GError **error);

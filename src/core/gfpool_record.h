/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_record.h: a volume's format, as the administrator's verb that
 * made the volume chose it, kept beside the image in an extended attribute
 * of its file. What a guest writes into its disk is bytes of the file; the
 * record is not, so no guest can make its raw disk a qcow2 (with another
 * guest's volume as backing file, and a virtual size of its choosing) for
 * whoever looks at the volume next. docs/security.md.
 */
#pragma once

#include <glusterfs/api/glfs.h>

#include "gfpool_image.h"

/* In the trusted namespace: through a FUSE mount or on a brick only root
 * (CAP_SYS_ADMIN) may set it; through gfapi GlusterFS checks only write
 * permission on the file, see docs/security.md. The value is the format's
 * name as libvirt spells it ("raw", "qcow2"). */
#define GFPOOL_FORMAT_XATTR "trusted.gfpool.format"

/* The volume's recorded format into *format, GFPOOL_FORMAT_NONE when it has
 * none. FALSE when the record cannot be read, or names no format. */
gboolean gfpool_record_read(glfs_fd_t *fd, GfpoolFormat *format, GError **error);

/* Record format (RAW or any other known format) for the volume open on fd. */
gboolean gfpool_record_write(glfs_fd_t *fd, GfpoolFormat format, GError **error);

/*
 * What the volume open on fd is, size bytes long: its format from its
 * record when it has one (p->recorded; the header is then only read for
 * the format's fields, and a header of another format makes it corrupt,
 * never something else), else probed from its header, as for images
 * placed by other tools. A record that names no format makes p corrupt.
 * FALSE only when the file or its record cannot be read.
 */
gboolean gfpool_probe_fd(glfs_fd_t *fd, guint64 size, GfpoolProbe *p, GError **error);

/* The same as if the volume's record said format, whatever it says (NONE:
 * probed from the header). */
gboolean gfpool_probe_fd_as(glfs_fd_t *fd, guint64 size, GfpoolFormat format, GfpoolProbe *p,
                            GError **error);

/*
 * A backing file is opened as its overlay's header names its format (the
 * qcow2 backing-format extension; NONE when absent): QEMU does so. When the
 * backing volume is something else (by its record, or by its header when it
 * has no record), one of the two is not what an administrator made: the
 * chain is refused, naming both.
 */
gboolean gfpool_backing_format_check(const char *overlay, GfpoolFormat named,
                                     const char *backing, GfpoolFormat format,
                                     gboolean recorded, GError **error);

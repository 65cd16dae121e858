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

#include <sys/stat.h>

#include <glusterfs/api/glfs.h>

#include "gfpool_image.h"

/* In the trusted namespace: through a FUSE mount or on a brick only root
 * (CAP_SYS_ADMIN) may set it; through gfapi GlusterFS checks only write
 * permission on the file, see docs/security.md. The value is the format's
 * name as libvirt spells it ("raw", "qcow2"). */
#define GFPOOL_FORMAT_XATTR "trusted.gfpool.format"

/*
 * What the header of a recorded qcow2 volume said when a verb of ours last
 * wrote or checked it, stamped with the file's size and mtime at that
 * moment. It saves a refresh the header read while the file is unchanged
 * since; it never decides a format (the format record does). Text:
 *   1 size=N mtime=NS capacity=N cluster=N backing-format=NAME[ backing=NAME]
 * A value that does not parse, or another version, is ignored: the header
 * is read then, as for a volume without it.
 */
#define GFPOOL_HEADER_XATTR "trusted.gfpool.header"

/* One pattern that covers every record, for md-cache's list. */
#define GFPOOL_RECORD_XATTR_PATTERN "trusted.gfpool.*"

/* Longest header record we write or read. */
#define GFPOOL_HEADER_RECORD_MAX 1536

/* The header record for a file of size bytes, last modified at mtime_ns,
 * whose header probed as p. NULL when p cannot be recorded: not a sound
 * qcow2 (corrupt, warned about), or a backing name with a control
 * character or longer than a qcow2 header allows. */
char *gfpool_header_record_encode(guint64 size, gint64 mtime_ns, const GfpoolProbe *p);

/* The header record value[0..len) into *size, *mtime_ns and p (format
 * QCOW2, capacity, cluster size, backing, backing format; p->recorded).
 * FALSE, p left clear, for anything that is not exactly what the encoder
 * writes (and within the limits a probed qcow2 header has). */
gboolean gfpool_header_record_parse(const char *value, gsize len, guint64 *size,
                                    gint64 *mtime_ns, GfpoolProbe *p);

/* Record p, probed from the bytes on fd after st was taken from it (the
 * stamp first: a write between the two then leaves the stamp older than
 * the file, which only costs a header read). Best effort: FALSE when
 * nothing was recorded. */
gboolean gfpool_header_record_write(glfs_fd_t *fd, const struct stat *st, const GfpoolProbe *p);

/* The same for a qcow2 volume a verb has just written, from a fresh stamp
 * and probe of fd. Call it after the verb's last data write. */
gboolean gfpool_header_record_update(glfs_fd_t *fd);

/* Drop the header record of the volume open on fd, if any (best effort). */
void gfpool_header_record_remove(glfs_fd_t *fd);

/*
 * What the records alone say the volume at path is, a file of size bytes
 * last modified at mtime_ns (as a listing saw it), when they say enough:
 * a raw format record, or a qcow2 one with a header record of that stamp.
 * FALSE for anything else (no record, an unreadable one, another format, a
 * stale or garbled header record, an error): the header is to be read.
 */
gboolean gfpool_records_answer(glfs_t *fs, const char *path, guint64 size, gint64 mtime_ns,
                               GfpoolProbe *p);

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

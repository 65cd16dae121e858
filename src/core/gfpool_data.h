/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_data.h: the verbs that move a volume's data (gfpool_data.c):
 * resize, wipe, clone, download, upload.
 */
#pragma once

#include "gfpool_transfer.h"
#include "gfpool_volume.h"

/*
 * How far a long data verb has got, for whoever watches it (the CLI's
 * progress line): done of total bytes, holes counted as done. Not to be
 * confused with GfpoolProgress (gfpool_transfer.h), which tells libvirtd's
 * event loop whether an upload is stuck.
 *
 * func runs on the verb's copying threads at chunk boundaries, possibly on
 * several at once, so calls may arrive with done out of order; it must be
 * thread-safe and quick (printing belongs behind a time check). total is 0
 * while unknown (an upload from a pipe). On success the last call has
 * done == total. A NULL GfpoolReport, or a NULL func, reports nothing.
 */
typedef void (*GfpoolReportFunc)(guint64 done, guint64 total, void *opaque);

typedef struct {
    GfpoolReportFunc func;
    void *opaque;
} GfpoolReport;

typedef enum {
    GFPOOL_RESIZE_ALLOCATE = 1 << 0,    /* raw: allocate the new space */
    GFPOOL_RESIZE_SHRINK = 1 << 1,      /* allow a smaller capacity (raw only) */
} GfpoolResizeFlags;

/* vol-resize to an absolute capacity (virsh's --delta is resolved by the
 * caller). qcow2 grows in place (header, L1 moved when it must grow). */
gboolean gfpool_vol_resize(GfpoolConn *conn, const char *name, guint64 capacity,
                           unsigned int flags, GError **error);

/*
 * vol-record: an administrator's word that the volume is of this format,
 * for a volume placed by other tools (it has no record) or to correct one.
 * The volume must be a sound image of that format (any bytes are a raw
 * one). *previous receives what was recorded before (NONE: nothing).
 */
gboolean gfpool_vol_record(GfpoolConn *conn, const char *name, GfpoolFormat format,
                           GfpoolFormat *previous, GError **error);

typedef enum {
    GFPOOL_WIPE_ZERO,           /* zeros over every byte */
    GFPOOL_WIPE_TRIM,           /* discard: the bricks free the space */
} GfpoolWipeAlgorithm;

/* vol-wipe. A qcow2 volume ends as a valid empty qcow2 of the same
 * capacity, cluster size and backing file. */
gboolean gfpool_vol_wipe(GfpoolConn *conn, const char *name, GfpoolWipeAlgorithm alg,
                         const GfpoolReport *report, GError **error);

/*
 * vol-clone / vol-create-from: a new volume (params: name, format, capacity
 * >= the source's or 0 for the same, perms) from an existing one of the
 * pool. Data moves server-side with glfs_copy_file_range where gfapi can,
 * holes stay holes. raw<->qcow2 conversions included.
 */
gboolean gfpool_vol_clone(GfpoolConn *conn, const char *source,
                          const GfpoolVolCreateParams *params, const GfpoolReport *report,
                          GError **error);

/*
 * vol-download: bytes [offset, offset+length) of the volume (length 0 = to
 * the end) written to fd. Holes of the volume, when sparse: pushed to holes
 * if given (nothing written for them), else skipped with lseek on a
 * seekable fd; otherwise written as zeros.
 */
gboolean gfpool_vol_download(GfpoolConn *conn, const char *name, guint64 offset,
                             guint64 length, int fd, gboolean sparse, GfpoolHoles *holes,
                             const GfpoolReport *report, GError **error);

/*
 * vol-upload: bytes read from fd until EOF (or length, 0 = no limit) written
 * into the volume from offset. holes (may be NULL) says where the stream's
 * holes fall between those bytes; with sparse and no holes queue, runs of
 * zeros read from fd become holes. Either way a hole in the volume is
 * punched where it had data, and the volume grows to cover a trailing one.
 * Whenever fd has been idle for a moment, everything read so far is written
 * and flushed, so the end of the stream finds little or nothing left to do;
 * progress (may be NULL) follows that. report counts the volume's bytes from
 * offset on; its total is what is left of fd when fd is a regular file.
 */
gboolean gfpool_vol_upload(GfpoolConn *conn, const char *name, guint64 offset,
                           guint64 length, int fd, gboolean sparse, GfpoolHoles *holes,
                           GfpoolProgress *progress, const GfpoolReport *report,
                           GError **error);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_transfer.h: the moving parts of vol-upload and vol-download that
 * need no GlusterFS, over the read and write callbacks of gfpool_image.h:
 * the holes that travel beside a stream, an upload's progress, writes kept
 * in flight behind a reader, reads kept in flight ahead of a writer, and how
 * a buffer of stream bytes splits into data and holes. gfpool_data.c runs
 * them over gfapi, tests/unit/test_transfer.c over local callbacks.
 */
#pragma once

#include <glib.h>

#include "gfpool_image.h"

/*
 * Holes of a byte stream that carries only data: "after the stream's first
 * pos bytes comes a hole of len bytes". Thread-safe FIFO; one side pushes
 * as it produces, the other pops as it consumes. libvirt's sparse streams
 * travel this way through a pipe (see the module's stream code).
 */
typedef struct _GfpoolHoles GfpoolHoles;
GfpoolHoles *gfpool_holes_new(void);
void gfpool_holes_free(GfpoolHoles *h);
void gfpool_holes_push(GfpoolHoles *h, guint64 pos, guint64 len);
/* The oldest hole, if any, without removing it. */
gboolean gfpool_holes_peek(GfpoolHoles *h, guint64 *pos, guint64 *len);
void gfpool_holes_pop(GfpoolHoles *h);

/*
 * Whether an upload waits on its stream or on GlusterFS, for a caller that
 * must itself never wait on GlusterFS (libvirtd's event loop hands the
 * upload more of its stream, or its end, only while GlusterFS answers).
 * step (may be NULL) is called on the upload's threads at each of its
 * steps. Thread-safe.
 */
typedef struct _GfpoolProgress GfpoolProgress;
GfpoolProgress *gfpool_progress_new(void (*step)(void *opaque), void *opaque);
void gfpool_progress_free(GfpoolProgress *p);
/* TRUE when the upload has waited on GlusterFS, not on its stream, for
 * longer than usec without a step. */
gboolean gfpool_progress_stalled(GfpoolProgress *p, gint64 usec);
/* A step (p may be NULL); from here on the upload waits on its stream
 * (waiting_input TRUE), on GlusterFS (FALSE), or as before (-1). */
void gfpool_progress_step(GfpoolProgress *p, int waiting_input);
/* A step, after which the upload waits on GlusterFS for what (a static
 * string naming the call, for messages: "the flush"). */
void gfpool_progress_begin(GfpoolProgress *p, const char *what);
/* How long the upload has waited on GlusterFS without a step (0 while it
 * waits on its stream); *what (if what is not NULL) names the call. */
gint64 gfpool_progress_pending(GfpoolProgress *p, const char **what);

/*
 * Writes kept in flight while the caller produces the next bytes: up to
 * slots writes of up to chunk bytes each, on threads of their own. They go
 * to disjoint ranges, so their order does not matter. After the first
 * failure nothing more is written, and the next call returns that error.
 */
typedef struct _GfpoolWriteBehind GfpoolWriteBehind;
GfpoolWriteBehind *gfpool_write_behind_new(GfpoolWriteFunc write, void *opaque, gsize chunk,
                                           guint slots, GfpoolProgress *progress);
/* Queue a write of a copy of buf (any length). */
gboolean gfpool_write_behind_submit(GfpoolWriteBehind *wb, const void *buf, gsize len,
                                    guint64 off, GError **error);
/* Wait for every write queued so far (none when wb is NULL). */
gboolean gfpool_write_behind_drain(GfpoolWriteBehind *wb, GError **error);
/* Wait for every write, then free wb (NULL is fine). error may be NULL. */
gboolean gfpool_write_behind_finish(GfpoolWriteBehind *wb, GError **error);

/*
 * Reads of [start, start + len) kept in flight, chunk bytes each on up to
 * slots threads, handed to the caller in order. bufs: slots * chunk bytes
 * the caller keeps across read-aheads (a download has one per data
 * extent: fresh buffers each time would be page-faulted in again), or NULL
 * for buffers of its own.
 */
typedef struct _GfpoolReadAhead GfpoolReadAhead;
GfpoolReadAhead *gfpool_read_ahead_new(GfpoolReadFunc read, void *opaque, guint64 start,
                                       guint64 len, gsize chunk, guint slots, char *bufs);
/* The next chunk: its bytes (> 0; short only at the end of what read can
 * give), 0 at the end of the range, -1 with error set. *buf is valid until
 * gfpool_read_ahead_release. */
gssize gfpool_read_ahead_take(GfpoolReadAhead *ra, const char **buf, GError **error);
void gfpool_read_ahead_release(GfpoolReadAhead *ra);
void gfpool_read_ahead_free(GfpoolReadAhead *ra);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GfpoolReadAhead, gfpool_read_ahead_free)

/*
 * An upload's stream bytes as data and holes, in stream order. buf holds n
 * bytes of the stream from byte `received` on. Holes come from holes (may
 * be NULL): those queued at or before the end of buf are popped, a hole
 * queued inside buf splits it. With find_zeros, runs of zeros (in whole
 * blocks of `block` bytes) become holes too. FALSE when a callback failed.
 */
typedef struct {
    gboolean (*data)(void *opaque, const char *buf, gsize len, GError **error);
    gboolean (*hole)(void *opaque, guint64 len, GError **error);
} GfpoolSplitOps;

gboolean gfpool_upload_split(const char *buf, gsize n, guint64 received, GfpoolHoles *holes,
                             gboolean find_zeros, gsize block, const GfpoolSplitOps *ops,
                             void *opaque, GError **error);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_data.c: the volume verbs that move data: vol-clone, vol-resize,
 * vol-wipe, vol-upload, vol-download.
 *
 * Data stays on the servers where gfapi allows: copies use
 * glfs_copy_file_range (measured on the test bed: 511 MiB in one call,
 * 0.25 s on a 1-brick volume, no bytes through the client), holes are found
 * with SEEK_DATA/SEEK_HOLE and never copied, zeroing uses glfs_zerofill and
 * trimming glfs_discard.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gfpool_data.h"

/* Buffer for the paths that do move bytes through us (streams, fallbacks).
 * 4 MiB: past that gfapi's throughput on the test bed no longer grows. */
#define IO_CHUNK (4 * 1024 * 1024)
#define SPARSE_BLOCK (64 * 1024)


/*
 * A verb's count of done bytes behind its GfpoolReport. Verbs without a
 * report pass NULL for it. A mutex, not a 64-bit atomic: those need
 * libatomic on some of the 32-bit architectures Debian builds for, and the
 * lock is taken once a chunk of megabytes.
 */
typedef struct {
    const GfpoolReport *report;
    guint64 total;
    guint64 done;
    GMutex lock;
} DoneCount;

/* dc set up for report, or NULL when nobody listens. */
static DoneCount *
done_count_init(DoneCount *dc, const GfpoolReport *report, guint64 total)
{
    if (!report || !report->func)
        return NULL;
    dc->report = report;
    dc->total = total;
    dc->done = 0;
    g_mutex_init(&dc->lock);
    return dc;
}

static void
done_count_clear(DoneCount *dc)
{
    if (dc)
        g_mutex_clear(&dc->lock);
}

static void
done_add(DoneCount *dc, guint64 n)
{
    guint64 done;

    if (!dc || n == 0)
        return;
    g_mutex_lock(&dc->lock);
    dc->done += n;
    done = dc->total ? MIN(dc->done, dc->total) : dc->done;
    g_mutex_unlock(&dc->lock);
    dc->report->func(done, dc->total, dc->report->opaque);
}

/* The verb succeeded: whatever was not counted (holes it did not walk, a
 * copy the servers made in one call) is done too. */
static void
done_all(DoneCount *dc)
{
    guint64 total;

    if (!dc)
        return;
    g_mutex_lock(&dc->lock);
    if (dc->total == 0)
        dc->total = dc->done;
    total = dc->done = dc->total;
    g_mutex_unlock(&dc->lock);
    dc->report->func(total, total, dc->report->opaque);
}


static glfs_fd_t *
open_volume(GfpoolConn *conn, const char *name, int flags, struct stat *st, GError **error)
{
    g_autofree char *path = NULL;
    glfs_fd_t *fd;

    if (!gfpool_vol_name_validate(name, strlen(name), error))
        return NULL;
    path = gfpool_conn_path(conn, name);
    fd = gfpool_conn_open_file(conn, path, flags);
    /* Still stale: the cached inode is all that is left of the file. */
    if (!fd && errno == ESTALE)
        errno = ENOENT;
    if (!fd) {
        gfpool_set_error_errno(error, errno, conn, "cannot open volume '%s'", name);
        return NULL;
    }
    if (glfs_fstat(fd, st) < 0) {
        gfpool_set_error_errno(error, errno, conn, "cannot stat volume '%s'", name);
        glfs_close(fd);
        return NULL;
    }
    if (!S_ISREG(st->st_mode)) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                    "volume '%s' is not a regular file", name);
        glfs_close(fd);
        return NULL;
    }
    return fd;
}


/* How every verb on an open volume ends: the volume closed, and a failure
 * named after the verb and the volume. */
static gboolean
close_volume(GfpoolConn *conn, glfs_fd_t *fd, const char *verb, const char *name, gboolean ok,
             GError **error)
{
    glfs_close(fd);
    if (!ok)
        g_prefix_error(error, "cannot %s volume '%s' on gluster volume '%s': ", verb, name,
                       gfpool_conn_source(conn)->volume);
    return ok;
}


/* An image whose header the prober could not trust keeps its format in
 * listings, but nothing rewrites it on the strength of that header: resize,
 * clone and upload refuse it, naming the defect; wipe and delete still
 * work. */
static gboolean
check_header_sound(const GfpoolProbe *p, GError **error)
{
    if (!p->warning)
        return TRUE;
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED, "%s", p->warning);
    return FALSE;
}


/* open_volume, then the image's header probed. */
static glfs_fd_t *
open_probed(GfpoolConn *conn, const char *name, int flags, struct stat *st, GfpoolProbe *p,
            GError **error)
{
    glfs_fd_t *fd;

    if (!(fd = open_volume(conn, name, flags, st, error)))
        return NULL;
    if (!gfpool_probe_fd(fd, (guint64)st->st_size, p, error)) {
        g_prefix_error(error, "cannot read volume '%s': ", name);
        glfs_close(fd);
        return NULL;
    }
    return fd;
}


/* One chunk [in_off, in_off+len) to out_off through the client. */
static gboolean
copy_chunk(glfs_fd_t *in, guint64 in_off, glfs_fd_t *out, guint64 out_off, guint64 len,
           char *buf, GError **error)
{
    while (len > 0) {
        gsize want = (gsize)MIN(len, (guint64)IO_CHUNK);
        gssize n = gfpool_glfs_fd_read(in, in_off, buf, want, error);
        if (n < 0)
            return FALSE;
        if (n == 0) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                        "source ended at %" G_GUINT64_FORMAT " during a copy", in_off);
            return FALSE;
        }
        if (!gfpool_glfs_fd_write(out, out_off, buf, (gsize)n, error))
            return FALSE;
        in_off += (guint64)n;
        out_off += (guint64)n;
        len -= (guint64)n;
    }
    return TRUE;
}


/*
 * One read then one write at a time leaves both the network and the bricks
 * idle half the time: a 512 MiB copy on the replica-3 test bed took 5.2 s,
 * more than a plain read (1.7 s) plus a plain write (1.5 s). Several chunks
 * in flight overlap the reads of some with the writes of others.
 */
#define COPY_THREADS 4

typedef struct {
    glfs_fd_t *in;
    glfs_fd_t *out;
    guint64 in_off;
    guint64 out_off;
    guint64 len;
    DoneCount *dc;
    gint next;          /* next chunk to take */
    gint failed;
    GMutex lock;
    GError *error;      /* the first failure */
} ParallelCopy;

static gpointer
parallel_copy_worker(gpointer opaque)
{
    ParallelCopy *pc = opaque;
    g_autofree char *buf = g_malloc((gsize)MIN(pc->len, (guint64)IO_CHUNK));
    guint64 nchunks = (pc->len + IO_CHUNK - 1) / IO_CHUNK;
    gint i;

    while (!g_atomic_int_get(&pc->failed) &&
           (guint64)(i = g_atomic_int_add(&pc->next, 1)) < nchunks) {
        guint64 off = (guint64)i * IO_CHUNK;
        guint64 n = MIN((guint64)IO_CHUNK, pc->len - off);
        g_autoptr(GError) err = NULL;

        if (copy_chunk(pc->in, pc->in_off + off, pc->out, pc->out_off + off, n, buf, &err)) {
            done_add(pc->dc, n);
        } else {
            g_mutex_lock(&pc->lock);
            if (!pc->error)
                pc->error = g_steal_pointer(&err);
            g_mutex_unlock(&pc->lock);
            g_atomic_int_set(&pc->failed, 1);
        }
    }
    return NULL;
}

/* Copy [in_off, in_off+len) to out_off through the client. */
static gboolean
copy_through_client(glfs_fd_t *in, guint64 in_off, glfs_fd_t *out, guint64 out_off,
                    guint64 len, DoneCount *dc, GError **error)
{
    ParallelCopy pc = { in, out, in_off, out_off, len, dc, 0, 0, { 0 }, NULL };
    GThread *threads[COPY_THREADS - 1] = { NULL };
    guint64 nchunks = (len + IO_CHUNK - 1) / IO_CHUNK;
    guint nthreads = (guint)MIN((guint64)COPY_THREADS, nchunks);

    if (len == 0)
        return TRUE;
    if (len > (guint64)G_MAXINT * IO_CHUNK) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "copy of %" G_GUINT64_FORMAT " bytes is too large", len);
        return FALSE;
    }
    g_mutex_init(&pc.lock);
    /* Threads that cannot start leave their share to the others. */
    for (guint i = 0; i + 1 < nthreads; i++)
        threads[i] = g_thread_try_new("gfpool-copy", parallel_copy_worker, &pc, NULL);
    parallel_copy_worker(&pc);
    for (guint i = 0; i + 1 < nthreads; i++) {
        if (threads[i])
            g_thread_join(threads[i]);
    }
    g_mutex_clear(&pc.lock);
    if (pc.error) {
        g_propagate_error(error, pc.error);
        return FALSE;
    }
    return TRUE;
}


/*
 * Server-side copy of in's first len bytes to the start of out; returns how
 * many bytes were copied (the servers may stop short; 0 = not possible).
 *
 * Only from offset 0: glusterfs 10.3 loses the source offset of
 * glfs_copy_file_range on the wire (protocol/client's
 * client_copy_file_range stores it in args.offset, the v2 RPC sends
 * args.off_in, always 0), so a copy "from offset N" silently copies from 0.
 * Destination offsets are honoured.
 */
static guint64
copy_prefix_server_side(glfs_fd_t *in, glfs_fd_t *out, guint64 len)
{
    off64_t io = 0, oo = 0;
    ssize_t n;

    /* Bytes still in write-behind would be invisible to the servers. */
    glfs_fsync(in, NULL, NULL);
    do {
        n = glfs_copy_file_range(in, &io, out, &oo, (size_t)len, 0, NULL, NULL, NULL);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        g_debug("server-side copy unavailable (%s): copying through the client",
                n < 0 ? g_strerror(errno) : "nothing copied");
        return 0;
    }
    return (guint64)n;
}


/*
 * in [0, size) to the same offsets of out, holes kept. When the volume
 * allows a server-side copy (gfpool_conn_server_copy_safe) and the data is
 * at least half the file, the servers copy everything (holes arrive as
 * zeros) and the holes are punched back: no data crosses the network to us.
 * Otherwise only the data extents are copied, through the client.
 */
static gboolean
copy_sparse(GfpoolConn *conn, glfs_fd_t *in, glfs_fd_t *out, guint64 size, DoneCount *dc,
            GError **error)
{
    guint64 off, d, l, data = 0, done = 0;

    for (off = 0; gfpool_glfs_fd_next_data(in, off, size, &d, &l); off = d + l)
        data += l;
    if (data == 0)
        return TRUE;

    if (data >= size / 2 && gfpool_conn_server_copy_safe(conn))
        done = copy_prefix_server_side(in, out, size);
    g_debug("copy of %" G_GUINT64_FORMAT " bytes (%" G_GUINT64_FORMAT " of data): %"
            G_GUINT64_FORMAT " copied by the servers", size, data, done);

    for (off = 0; gfpool_glfs_fd_next_data(in, off, size, &d, &l); off = d + l) {
        /* [off, d) is a hole of the source: make it one in out too. */
        if (d > off && off < done) {
            guint64 end = MIN(d, done);
            if (glfs_discard(out, (off_t)off, (size_t)(end - off)) < 0)
                g_debug("discard at %" G_GUINT64_FORMAT " failed: %s; zeros stay",
                        off, g_strerror(errno));
        }
        /* the hole, and what the servers copied of the extent */
        done_add(dc, d - off + (MIN(d + l, MAX(d, done)) - d));
        if (d + l > done && !copy_through_client(in, MAX(d, done), out, MAX(d, done),
                                                 d + l - MAX(d, done), dc, error))
            return FALSE;
    }
    /* A trailing hole that the server copy filled. */
    if (off < done && glfs_discard(out, (off_t)off, (size_t)(done - off)) < 0)
        g_debug("discard at %" G_GUINT64_FORMAT " failed: %s", off, g_strerror(errno));
    return TRUE;
}


/* ---- qcow2 (gfpool_image_probe.c and gfpool_qcow2_*.c do the format) -- */

static gboolean
gfpool_qcow2_resize_fd(glfs_fd_t *fd, guint64 capacity, GError **error)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    struct stat st;
    guint64 new_size;
    gssize n;

    if (glfs_fstat(fd, &st) < 0)
        return gfpool_set_error_errno(error, errno, NULL, "cannot stat the image");
    if ((n = gfpool_glfs_fd_read(fd, 0, header, sizeof(header), error)) < 0)
        return FALSE;
    if (!gfpool_qcow2_resize(header, (gsize)n, (guint64)st.st_size, gfpool_glfs_fd_read,
                             gfpool_glfs_fd_write, fd, capacity, &new_size, error))
        return FALSE;
    if (new_size > (guint64)st.st_size &&
        glfs_ftruncate(fd, (off_t)new_size, NULL, NULL) < 0)
        return gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
    return TRUE;
}

/*
 * Flattening a chain into a raw image (out): each layer is mapped once,
 * top first, and copies its data extents inside the guest ranges wanted of
 * it; the ranges it leaves to its backing file (sorted, merged) are what
 * the layer below is asked for, in one pass of its own. Mapping the whole
 * backing image again for every backing extent of the layer above made
 * the clone of a fragmented overlay quadratic.
 */
typedef struct {
    GfpoolConn *conn;
    glfs_fd_t *out;
    glfs_fd_t *in;          /* the layer being copied */
    const GArray *want;     /* GfpoolRange, sorted, disjoint */
    guint next;             /* first range of want that may still matter */
    GArray *below;          /* GfpoolRange left to the backing file */
    DoneCount *dc;
} LayerCopy;

static void
ranges_add(GArray *ranges, guint64 off, guint64 len)
{
    GfpoolRange *last = ranges->len ? &g_array_index(ranges, GfpoolRange, ranges->len - 1) : NULL;

    if (last && last->offset + last->length == off) {
        last->length += len;
    } else {
        GfpoolRange r = { off, len };
        g_array_append_val(ranges, r);
    }
}

static gboolean
layer_copy_extent(void *opaque, const GfpoolExtent *e, GError **error)
{
    LayerCopy *lc = opaque;
    guint64 start = e->guest_off, end = e->guest_off + e->len;

    /* extents come in guest order: ranges wholly before this one are done */
    while (lc->next < lc->want->len) {
        const GfpoolRange *r = &g_array_index(lc->want, GfpoolRange, lc->next);
        if (r->offset + r->length > start)
            break;
        lc->next++;
    }
    for (guint i = lc->next; i < lc->want->len; i++) {
        const GfpoolRange *r = &g_array_index(lc->want, GfpoolRange, i);
        guint64 lo = MAX(start, r->offset), hi = MIN(end, r->offset + r->length);

        if (r->offset >= end)
            break;
        if (lo >= hi)
            continue;
        if (e->kind == GFPOOL_EXTENT_DATA &&
            !copy_through_client(lc->in, e->host_off + (lo - start), lc->out, lo, hi - lo,
                                 lc->dc, error))
            return FALSE;
        /* counted by the layer below */
        if (e->kind == GFPOOL_EXTENT_BACKING)
            ranges_add(lc->below, lo, hi - lo);
        /* GFPOOL_EXTENT_ZERO: the raw output has a hole there already */
        if (e->kind == GFPOOL_EXTENT_ZERO)
            done_add(lc->dc, hi - lo);
    }
    return TRUE;
}

static gboolean
copy_layer(GfpoolConn *conn, glfs_fd_t *out, glfs_fd_t *in, const GfpoolProbe *probe,
           guint64 in_size, const GArray *want, guint depth, DoneCount *dc, GError **error);

/* The layer below `probe`'s image, opened and probed, then copied. */
static gboolean
copy_backing_layer(GfpoolConn *conn, glfs_fd_t *out, const GfpoolProbe *probe,
                   const GArray *want, guint depth, DoneCount *dc, GError **error)
{
    g_auto(GfpoolProbe) bp = { 0 };
    g_autofree char *bname = NULL;
    glfs_fd_t *bfd;
    struct stat st;
    gboolean ok;

    /* Only volumes of the pool: anything else would leave it. */
    if (!probe->backing || !(bname = gfpool_backing_volume_name(conn, probe->backing)) ||
        depth >= GFPOOL_BACKING_DEPTH_MAX) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                    "backing file '%s' is not a volume of the pool (or the chain is deeper than %d)",
                    probe->backing ? probe->backing : "", GFPOOL_BACKING_DEPTH_MAX);
        return FALSE;
    }
    if (!(bfd = open_probed(conn, bname, O_RDONLY, &st, &bp, error))) {
        g_prefix_error(error, "backing file: ");
        return FALSE;
    }
    if (!gfpool_backing_format_check("its overlay", probe->backing_format, bname, bp.format,
                                     bp.recorded, error)) {
        glfs_close(bfd);
        return FALSE;
    }
    ok = copy_layer(conn, out, bfd, &bp, (guint64)st.st_size, want, depth + 1, dc, error);
    glfs_close(bfd);
    return ok;
}

static gboolean
copy_layer(GfpoolConn *conn, glfs_fd_t *out, glfs_fd_t *in, const GfpoolProbe *probe,
           guint64 in_size, const GArray *want, guint depth, DoneCount *dc, GError **error)
{
    guint8 header[GFPOOL_PROBE_HEADER_SIZE];
    g_autoptr(GArray) below = NULL;
    LayerCopy lc = { conn, out, in, want, 0, NULL, dc };
    gssize n;

    if (!check_header_sound(probe, error))
        return FALSE;
    if (probe->format == GFPOOL_FORMAT_RAW) {
        /* A raw backing file shorter than the overlay reads as zeros. */
        for (guint i = 0; i < want->len; i++) {
            const GfpoolRange *r = &g_array_index(want, GfpoolRange, i);
            guint64 end = MIN(r->offset + r->length, in_size), d, l, pos, data = 0;

            for (pos = r->offset; gfpool_glfs_fd_next_data(in, pos, end, &d, &l); pos = d + l) {
                if (!copy_through_client(in, d, out, d, l, dc, error))
                    return FALSE;
                data += l;
            }
            /* its holes, and what lies past the end of the file */
            done_add(dc, r->length - data);
        }
        return TRUE;
    }
    if (probe->format != GFPOOL_FORMAT_QCOW2) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                    "cannot read %s images", gfpool_format_to_string(probe->format));
        return FALSE;
    }
    if ((n = gfpool_glfs_fd_read(in, 0, header, sizeof(header), error)) < 0)
        return FALSE;
    lc.below = below = g_array_new(FALSE, FALSE, sizeof(GfpoolRange));
    if (!gfpool_qcow2_map(header, (gsize)n, in_size, gfpool_glfs_fd_read, in,
                          layer_copy_extent, &lc, error))
        return FALSE;
    return below->len == 0 || copy_backing_layer(conn, out, probe, below, depth, dc, error);
}

static gboolean
gfpool_qcow2_convert_fd(GfpoolConn *conn, glfs_fd_t *in, const GfpoolProbe *probe,
                        guint64 in_size, glfs_fd_t *out, GfpoolFormat to, guint64 capacity,
                        guint32 cluster_size, DoneCount *dc, GError **error)
{
    if (probe->format == GFPOOL_FORMAT_QCOW2 && to == GFPOOL_FORMAT_RAW) {
        /* The whole chain flattened: a raw clone stands alone. */
        g_autoptr(GArray) all = g_array_new(FALSE, FALSE, sizeof(GfpoolRange));

        ranges_add(all, 0, probe->capacity);
        if (!copy_layer(conn, out, in, probe, in_size, all, 0, dc, error))
            return FALSE;
        if (glfs_ftruncate(out, (off_t)capacity, NULL, NULL) < 0)
            return gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
        return TRUE;
    }
    if (probe->format == GFPOOL_FORMAT_RAW && to == GFPOOL_FORMAT_QCOW2) {
        g_autoptr(GArray) ranges = g_array_new(FALSE, FALSE, sizeof(GfpoolRange));
        g_autofree GfpoolExtent *runs = NULL;
        GfpoolQcow2Params q = { .capacity = capacity, .cluster_size = cluster_size };
        guint64 d, l, pos, file_size, counted = 0;

        /* Clusters only where the raw image has data: holes stay
         * unallocated, and each data extent lands in one contiguous run. */
        for (pos = 0; gfpool_glfs_fd_next_data(in, pos, in_size, &d, &l); pos = d + l) {
            GfpoolRange r = { d, l };
            g_array_append_val(ranges, r);
        }
        q.allocate = (const GfpoolRange *)ranges->data;
        q.n_allocate = ranges->len;
        runs = g_new0(GfpoolExtent, MAX(ranges->len, 1));
        if (!gfpool_qcow2_create_allocated(&q, gfpool_glfs_fd_write, out, runs, &file_size, error))
            return FALSE;
        for (guint i = 0; i < ranges->len; i++) {
            /* the hole before this run */
            done_add(dc, runs[i].guest_off - counted);
            if (!copy_through_client(in, runs[i].guest_off, out, runs[i].host_off, runs[i].len,
                                     dc, error))
                return FALSE;
            counted = runs[i].guest_off + runs[i].len;
        }
        if (glfs_ftruncate(out, (off_t)file_size, NULL, NULL) < 0)
            return gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
        return TRUE;
    }
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                "converting %s to %s is not supported", gfpool_format_to_string(probe->format),
                gfpool_format_to_string(to));
    return FALSE;
}


/* ---- vol-clone ------------------------------------------------------ */

typedef struct {
    glfs_fd_t *src;
    struct stat st;
    GfpoolProbe probe;
    const GfpoolVolCreateParams *p;
    guint64 capacity;
    DoneCount *dc;
} CloneFill;

static gboolean
clone_fill(GfpoolConn *conn, glfs_fd_t *fd, void *opaque, GError **error)
{
    CloneFill *c = opaque;
    GfpoolFormat from = c->probe.format;
    GfpoolFormat to = c->p->format;

    if (from == to) {
        /* Same format: the file's bytes are the image, holes included; a
         * qcow2 copy keeps its backing reference and cluster layout. */
        if (!copy_sparse(conn, c->src, fd, (guint64)c->st.st_size, c->dc, error))
            return FALSE;
        if (glfs_ftruncate(fd, c->st.st_size, NULL, NULL) < 0)
            return gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
        if (c->capacity > c->probe.capacity) {
            if (to == GFPOOL_FORMAT_RAW) {
                if (glfs_ftruncate(fd, (off_t)c->capacity, NULL, NULL) < 0)
                    return gfpool_set_error_errno(error, errno, NULL,
                                                  "cannot grow to %" G_GUINT64_FORMAT
                                                  " bytes", c->capacity);
            } else if (!gfpool_qcow2_resize_fd(fd, c->capacity, error)) {
                return FALSE;
            }
        }
        return TRUE;
    }
    return gfpool_qcow2_convert_fd(conn, c->src, &c->probe, (guint64)c->st.st_size, fd, to,
                                   c->capacity, c->p->cluster_size, c->dc, error);
}

gboolean
gfpool_vol_clone(GfpoolConn *conn, const char *source, const GfpoolVolCreateParams *p,
                 const GfpoolReport *report, GError **error)
{
    DoneCount dc;
    CloneFill c = { .p = p };
    GfpoolNewVolume nv = { p->name, p->format, p->mode, p->uid, p->gid, FALSE };
    gboolean ok;

    if (!gfpool_format_writable(p->format, "clone into volumes", error))
        return FALSE;
    if (!(c.src = open_probed(conn, source, O_RDONLY, &c.st, &c.probe, error)))
        return FALSE;
    if (!check_header_sound(&c.probe, error) ||
        !gfpool_format_writable(c.probe.format, "clone volumes", error)) {
        g_prefix_error(error, "cannot clone volume '%s': ", source);
        glfs_close(c.src);
        gfpool_probe_clear(&c.probe);
        return FALSE;
    }
    c.capacity = MAX(p->capacity, c.probe.capacity);
    /* A flattened qcow2 is counted in guest bytes, anything else in bytes
     * of the source file. */
    c.dc = done_count_init(&dc, report,
                           c.probe.format == GFPOOL_FORMAT_QCOW2 && p->format != GFPOOL_FORMAT_QCOW2 ?
                           c.probe.capacity : (guint64)c.st.st_size);
    ok = gfpool_vol_publish_new(conn, &nv, clone_fill, &c, error);
    if (ok)
        done_all(c.dc);
    done_count_clear(c.dc);
    glfs_close(c.src);
    gfpool_probe_clear(&c.probe);
    return ok;
}


/* ---- vol-resize ----------------------------------------------------- */

gboolean
gfpool_vol_resize(GfpoolConn *conn, const char *name, guint64 capacity, unsigned int flags,
                  GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };
    struct stat st;
    glfs_fd_t *fd;
    gboolean ok = FALSE;

    if (!(fd = open_probed(conn, name, O_RDWR, &st, &p, error)))
        return FALSE;

    if (capacity == 0 || capacity > (guint64)G_MAXINT64) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "invalid capacity %" G_GUINT64_FORMAT, capacity);
        goto out;
    }
    if (!check_header_sound(&p, error))
        goto out;
    if (p.format == GFPOOL_FORMAT_QCOW2) {
        if (capacity < p.capacity) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                        "qcow2 volumes can only grow: %" G_GUINT64_FORMAT " is below the capacity %"
                        G_GUINT64_FORMAT, capacity, p.capacity);
            goto out;
        }
        if (flags & GFPOOL_RESIZE_ALLOCATE) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                        "--allocate is supported for raw volumes only");
            goto out;
        }
        ok = gfpool_qcow2_resize_fd(fd, capacity, error);
    } else if (p.format == GFPOOL_FORMAT_RAW) {
        guint64 cur = (guint64)st.st_size;
        if (capacity < cur && !(flags & GFPOOL_RESIZE_SHRINK)) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                        "cannot shrink from %" G_GUINT64_FORMAT " to %" G_GUINT64_FORMAT
                        " bytes without the shrink flag", cur, capacity);
            goto out;
        }
        if (glfs_ftruncate(fd, (off_t)capacity, NULL, NULL) < 0) {
            gfpool_set_error_errno(error, errno, NULL,
                                   "cannot set the size to %" G_GUINT64_FORMAT, capacity);
            goto out;
        }
        if ((flags & GFPOOL_RESIZE_ALLOCATE) && capacity > cur &&
            glfs_fallocate(fd, 0, (off_t)cur, (size_t)(capacity - cur)) < 0) {
            gfpool_set_error_errno(error, errno, NULL,
                                   "cannot allocate %" G_GUINT64_FORMAT " bytes",
                                   capacity - cur);
            goto out;
        }
        ok = TRUE;
    } else {
        gfpool_format_writable(p.format, "resize volumes", error);
        goto out;
    }
    if (ok && glfs_fsync(fd, NULL, NULL) < 0)
        ok = gfpool_set_error_errno(error, errno, NULL, "cannot flush");
    if (ok && p.recorded && p.format == GFPOOL_FORMAT_QCOW2)
        gfpool_header_record_update(fd);
 out:
    return close_volume(conn, fd, "resize", name, ok, error);
}


/* ---- vol-record ----------------------------------------------------- */

gboolean
gfpool_vol_record(GfpoolConn *conn, const char *name, GfpoolFormat format,
                  GfpoolFormat *previous, GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };
    struct stat st;
    glfs_fd_t *fd;
    gboolean ok = FALSE;

    *previous = GFPOOL_FORMAT_NONE;
    if (!(fd = open_volume(conn, name, O_RDONLY, &st, error)))
        return FALSE;
    /* an unreadable record is what this replaces */
    if (!gfpool_record_read(fd, previous, NULL))
        *previous = GFPOOL_FORMAT_NONE;
    if (!gfpool_probe_fd_as(fd, (guint64)st.st_size, format, &p, error))
        goto out;
    if (p.warning) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID, "%s", p.warning);
        goto out;
    }
    ok = gfpool_record_write(fd, format, error);
    /* st was taken before the header was read: see gfpool_header_record_write */
    if (ok && format == GFPOOL_FORMAT_QCOW2)
        gfpool_header_record_write(fd, &st, &p);
    else if (ok)
        gfpool_header_record_remove(fd);
 out:
    return close_volume(conn, fd, "record the format of", name, ok, error);
}


/* ---- vol-wipe ------------------------------------------------------- */

/* Zeros go down in pieces of this size when someone watches the wipe,
 * else in one call. */
#define WIPE_REPORT_CHUNK (256 * 1024 * 1024)

static gboolean
wipe_bytes(glfs_fd_t *fd, guint64 size, GfpoolWipeAlgorithm alg, DoneCount *dc,
           GError **error)
{
    guint64 step = dc ? WIPE_REPORT_CHUNK : size;

    if (size == 0)
        return TRUE;
    if (alg == GFPOOL_WIPE_TRIM) {
        if (glfs_discard(fd, 0, (size_t)size) < 0)
            return gfpool_set_error_errno(error, errno, NULL,
                                          "discard of %" G_GUINT64_FORMAT " bytes failed",
                                          size);
        return TRUE;
    }
    for (guint64 off = 0; off < size; off += step) {
        guint64 n = MIN(step, size - off);
        if (!gfpool_glfs_fd_zero(fd, off, n, error))
            return FALSE;
        done_add(dc, n);
    }
    return TRUE;
}

gboolean
gfpool_vol_wipe(GfpoolConn *conn, const char *name, GfpoolWipeAlgorithm alg,
                const GfpoolReport *report, GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };
    struct stat st;
    glfs_fd_t *fd;
    DoneCount dcs, *dc = NULL;
    gboolean ok = FALSE;

    if (!(fd = open_probed(conn, name, O_RDWR, &st, &p, error)))
        return FALSE;

    dc = done_count_init(&dcs, report, (guint64)st.st_size);
    if (!wipe_bytes(fd, (guint64)st.st_size, alg, dc, error))
        goto out;
    if (p.format == GFPOOL_FORMAT_QCOW2 && !p.warning) {
        /* A wiped qcow2 is an empty qcow2 of the same geometry, not a run
         * of zeros that no hypervisor can open. */
        GfpoolQcow2Params q = {
            .capacity = p.capacity,
            .cluster_size = p.cluster_size,
            .backing = p.backing,
            .backing_format = p.backing_format,
        };
        guint64 file_size;

        if (glfs_ftruncate(fd, 0, NULL, NULL) < 0) {
            gfpool_set_error_errno(error, errno, NULL, "cannot truncate");
            goto out;
        }
        if (!gfpool_qcow2_create(&q, gfpool_glfs_fd_write, fd, &file_size, error))
            goto out;
        if (glfs_ftruncate(fd, (off_t)file_size, NULL, NULL) < 0) {
            gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
            goto out;
        }
    }
    ok = glfs_fsync(fd, NULL, NULL) == 0 ||
        gfpool_set_error_errno(error, errno, NULL, "cannot flush");
    if (ok && p.recorded && p.format == GFPOOL_FORMAT_QCOW2 && !p.warning)
        gfpool_header_record_update(fd);
    if (ok)
        done_all(dc);
 out:
    done_count_clear(dc);
    return close_volume(conn, fd, "wipe", name, ok, error);
}


/* ---- vol-download / vol-upload -------------------------------------- */

static gboolean
fd_write_all(int fd, const char *buf, gsize len, GError **error)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return gfpool_set_error_errno(error, errno, NULL, "write to the stream failed");
        }
        buf += n;
        len -= (gsize)n;
    }
    return TRUE;
}

/*
 * Reads of one data extent, several chunks in flight, handed over in
 * order: one pread at a time left the download at 1.66 s for 512 MiB on
 * the replica-3 test bed, where libvirt's stream alone needs 0.77 s and a
 * plain gfapi read 0.37 s.
 */
#define READ_AHEAD_SLOTS 4

static gssize
glfs_read_cb(void *opaque, guint64 off, void *buf, gsize len, GError **error)
{
    return gfpool_glfs_fd_read(opaque, off, buf, len, error);
}

static gboolean
glfs_write_cb(void *opaque, guint64 off, const void *buf, gsize len, GError **error)
{
    return gfpool_glfs_fd_write(opaque, off, buf, len, error);
}

gboolean
gfpool_vol_download(GfpoolConn *conn, const char *name, guint64 offset, guint64 length,
                    int out, gboolean sparse, GfpoolHoles *holes, const GfpoolReport *report,
                    GError **error)
{
    g_autofree char *buf = NULL;
    g_autofree char *slab = NULL;
    struct stat st;
    glfs_fd_t *fd;
    DoneCount dcs, *dc = NULL;
    guint64 end, pos, sent = 0;
    gboolean seekable = sparse && !holes && lseek(out, 0, SEEK_CUR) >= 0;
    gboolean ok = FALSE;

    if (!gfpool_range_check("download", offset, length, error) ||
        !(fd = open_volume(conn, name, O_RDONLY, &st, error)))
        return FALSE;
    end = (guint64)st.st_size;
    if (offset > end) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "offset %" G_GUINT64_FORMAT " is past the end (%" G_GUINT64_FORMAT ")",
                    offset, end);
        goto out;
    }
    if (length && length < end - offset)
        end = offset + length;
    dc = done_count_init(&dcs, report, end - offset);
    buf = g_malloc(IO_CHUNK);
    slab = g_malloc((gsize)READ_AHEAD_SLOTS * IO_CHUNK);
    pos = offset;
    while (pos < end) {
        guint64 d, l;
        if (!gfpool_glfs_fd_next_data(fd, pos, end, &d, &l)) {
            d = end;
            l = 0;
        }
        /* The hole [pos, d). */
        if (d > pos) {
            if (sparse && holes && d == end) {
                /* Nothing follows a trailing hole to wake the reader up
                 * (libvirt's stream waits for the pipe to become readable):
                 * the hole's last byte goes as data. */
                if (d - pos > 1)
                    gfpool_holes_push(holes, sent, d - pos - 1);
                if (!fd_write_all(out, "", 1, error))
                    goto out;
                sent++;
                done_add(dc, d - pos);
            } else if (sparse && holes) {
                gfpool_holes_push(holes, sent, d - pos);
                done_add(dc, d - pos);
            } else if (seekable) {
                if (lseek(out, (off_t)(d - pos), SEEK_CUR) < 0) {
                    gfpool_set_error_errno(error, errno, NULL, "seek in the output failed");
                    goto out;
                }
                done_add(dc, d - pos);
            } else {
                memset(buf, 0, IO_CHUNK);
                for (guint64 z = pos; z < d;) {
                    gsize k = (gsize)MIN(d - z, (guint64)IO_CHUNK);
                    if (!fd_write_all(out, buf, k, error))
                        goto out;
                    z += k;
                    sent += k;
                    done_add(dc, k);
                }
            }
        }
        if (l > 0) {
            g_autoptr(GfpoolReadAhead) ra = gfpool_read_ahead_new(glfs_read_cb, fd, d, l,
                                                                  IO_CHUNK, READ_AHEAD_SLOTS,
                                                                  slab);
            guint64 o = d;

            while (o < d + l) {
                const char *chunk;
                gssize n = gfpool_read_ahead_take(ra, &chunk, error);
                gsize want = (gsize)MIN(d + l - o, (guint64)IO_CHUNK);
                if (n >= 0 && (gsize)n < want) {
                    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                                "volume shrank during the download at %" G_GUINT64_FORMAT,
                                o + (guint64)n);
                    n = -1;
                }
                if (n < 0 || !fd_write_all(out, chunk, (gsize)n, error))
                    goto out;
                gfpool_read_ahead_release(ra);
                o += (guint64)n;
                sent += (guint64)n;
                done_add(dc, (guint64)n);
            }
        }
        pos = d + l;
    }
    /* A trailing hole skipped on a file must still count. */
    if (seekable && ftruncate(out, lseek(out, 0, SEEK_CUR)) < 0 && errno != EINVAL) {
        gfpool_set_error_errno(error, errno, NULL, "cannot set the output's size");
        goto out;
    }
    ok = TRUE;
    done_all(dc);
 out:
    done_count_clear(dc);
    return close_volume(conn, fd, "download", name, ok, error);
}

/*
 * Writes of an upload, several in flight while the next bytes come out of
 * the stream: one pwrite at a time left a 512 MiB upload at 4.0 s on the
 * replica-3 test bed, where libvirt's stream alone needs 0.4 s and a plain
 * gfapi write 2.0 s.
 */
#define WRITE_BEHIND_SLOTS 4

/* Upload state: where the next byte goes, and how big the volume was. */
typedef struct {
    glfs_fd_t *fd;
    GfpoolWriteBehind *wb;
    guint64 pos;
    guint64 limit;      /* nothing is written from here on */
    guint64 size;       /* the volume's size before the upload */
    gboolean dirty;     /* written since the last flush */
    guint64 unflushed;  /* bytes of data written since the last flush */
    GfpoolProgress *progress;
} UploadCursor;

/*
 * The end of an upload waits for one fsync, and libvirtd's event loop waits
 * for that end (GFPOOL_FINISH_STALL_USEC, storage_backend_gfpool_stream.c).
 * A stream that never idles would leave all of itself to that fsync: with
 * 256 MiB dirty on each of three bricks sharing a disk it took longer than
 * that loop may wait. Flushing every so many bytes bounds it.
 */
#define UPLOAD_FLUSH_BYTES (32 * 1024 * 1024)

/* A hole of the stream at cur->pos: punched where the volume had bytes,
 * simply skipped past its end. */
static gboolean
upload_hole(void *opaque, guint64 len, GError **error)
{
    UploadCursor *cur = opaque;

    if (cur->pos >= cur->limit)
        return TRUE;
    len = MIN(len, cur->limit - cur->pos);
    if (cur->pos < cur->size) {
        guint64 n = MIN(len, cur->size - cur->pos);
        cur->dirty = TRUE;
        /* No discard on this volume: zeros do the same job. */
        if (glfs_discard(cur->fd, (off_t)cur->pos, (size_t)n) < 0 &&
            !gfpool_glfs_fd_zero(cur->fd, cur->pos, n, error))
            return FALSE;
    }
    cur->pos += len;
    return TRUE;
}

/* Data of the stream at cur->pos. */
static gboolean
upload_data(void *opaque, const char *buf, gsize len, GError **error)
{
    UploadCursor *cur = opaque;

    if (cur->pos >= cur->limit)
        return TRUE;
    len = (gsize)MIN((guint64)len, cur->limit - cur->pos);
    if (!gfpool_write_behind_submit(cur->wb, buf, len, cur->pos, error))
        return FALSE;
    cur->dirty = TRUE;
    cur->unflushed += len;
    cur->pos += len;
    return TRUE;
}

static const GfpoolSplitOps upload_ops = {
    .data = upload_data,
    .hole = upload_hole,
};

/*
 * Everything written so far flushed: what the end of the stream would do,
 * done while the stream is idle so that its end finds little left (the
 * module's event loop waits for that end).
 */
static gboolean
upload_settle(UploadCursor *cur, GError **error)
{
    struct stat st;

    if (!cur->dirty)
        return TRUE;
    if (!gfpool_write_behind_drain(cur->wb, error))
        return FALSE;
    gfpool_progress_begin(cur->progress, "the flush");
    if (glfs_fsync(cur->fd, NULL, NULL) < 0)
        return gfpool_set_error_errno(error, errno, NULL, "cannot flush");
    gfpool_progress_begin(cur->progress, "a stat");
    /* Deleted while we wrote: the bytes went to an unlinked file. */
    if (glfs_fstat(cur->fd, &st) == 0 && st.st_nlink == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_NOT_FOUND,
                    "the volume was deleted during the upload");
        return FALSE;
    }
    cur->dirty = FALSE;
    cur->unflushed = 0;
    return TRUE;
}

/* Up to len bytes of in into buf; stops early at EOF (*eof) or when
 * something waits to be settled and in stays idle for UPLOAD_IDLE_MS. */
#define UPLOAD_IDLE_MS 50

static gssize
upload_fill(UploadCursor *cur, int in, char *buf, gsize len, gboolean *eof, GError **error)
{
    gsize n = 0;

    *eof = FALSE;
    gfpool_progress_step(cur->progress, TRUE);
    while (n < len) {
        struct pollfd pfd = { .fd = in, .events = POLLIN };
        ssize_t r;

        if ((n > 0 || cur->dirty) && poll(&pfd, 1, UPLOAD_IDLE_MS) == 0)
            break;
        r = read(in, buf + n, len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            gfpool_progress_step(cur->progress, FALSE);
            gfpool_set_error_errno(error, errno, NULL, "read from the stream failed");
            return -1;
        }
        if (r == 0) {
            *eof = TRUE;
            break;
        }
        n += (gsize)r;
    }
    gfpool_progress_step(cur->progress, FALSE);
    return (gssize)n;
}

/*
 * An upload replaces bytes, never the volume's recorded format: a qcow2
 * volume must still read as one afterwards. A raw one is raw whatever was
 * uploaded (gfpool vol-record changes that, deliberately).
 */
static gboolean
upload_check_format(UploadCursor *cur, GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };
    struct stat st;

    if (glfs_fstat(cur->fd, &st) < 0)
        return gfpool_set_error_errno(error, errno, NULL,
                                      "cannot stat the volume after the upload");
    if (!gfpool_probe_fd(cur->fd, (guint64)st.st_size, &p, error))
        return FALSE;
    if (p.recorded && p.corrupt) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "what was uploaded does not fit the volume's recorded format: %s", p.warning);
        return FALSE;
    }
    /* every write has settled before the stat */
    if (p.recorded && p.format == GFPOOL_FORMAT_QCOW2)
        gfpool_header_record_write(cur->fd, &st, &p);
    return TRUE;
}

/* What an upload from in will bring: the rest of a regular file (at most
 * length), else length, 0 when unknown. */
static guint64
upload_total(int in, guint64 length)
{
    struct stat st;
    off_t at;

    if (fstat(in, &st) == 0 && S_ISREG(st.st_mode) && (at = lseek(in, 0, SEEK_CUR)) >= 0) {
        guint64 left = st.st_size > at ? (guint64)(st.st_size - at) : 0;
        return length ? MIN(left, length) : left;
    }
    return length;
}

gboolean
gfpool_vol_upload(GfpoolConn *conn, const char *name, guint64 offset, guint64 length,
                  int in, gboolean sparse, GfpoolHoles *holes, GfpoolProgress *progress,
                  const GfpoolReport *report, GError **error)
{
    g_autofree char *buf = NULL;
    struct stat st;
    UploadCursor cur = { 0 };
    DoneCount dcs, *dc = NULL;
    guint64 received = 0;       /* stream bytes read from in */
    guint64 counted = 0;        /* volume bytes reported done */
    gboolean eof = FALSE;
    gboolean ok = FALSE;

    g_auto(GfpoolProbe) probe = { 0 };

    if (!gfpool_range_check("upload", offset, length, error) ||
        !(cur.fd = open_probed(conn, name, O_RDWR, &st, &probe, error)))
        return FALSE;
    /* A recorded volume's upload is checked against its format at the end,
     * which lets a good image replace a broken one; without a record the
     * header is all there is to go by. */
    if (!probe.recorded && !check_header_sound(&probe, error))
        return close_volume(conn, cur.fd, "upload to", name, FALSE, error);
    cur.pos = offset;
    cur.limit = length ? offset + length : (guint64)G_MAXINT64;
    cur.size = (guint64)st.st_size;
    cur.progress = progress;
    dc = done_count_init(&dcs, report, upload_total(in, length));
    cur.wb = gfpool_write_behind_new(glfs_write_cb, cur.fd, IO_CHUNK, WRITE_BEHIND_SLOTS,
                                     progress);
    buf = g_malloc(IO_CHUNK);
    while (!eof) {
        /* A pipe hands over 64 KiB at a time, and gfapi writes that small
         * cost a round trip each: fill the buffer unless the stream idles. */
        gssize n = upload_fill(&cur, in, buf, IO_CHUNK, &eof, error);

        if (n < 0 ||
            !gfpool_upload_split(buf, (gsize)n, received, holes, sparse && !holes,
                                 SPARSE_BLOCK, &upload_ops, &cur, error))
            goto out;
        received += (guint64)n;
        if (!eof && ((gsize)n < IO_CHUNK || cur.unflushed >= UPLOAD_FLUSH_BYTES) &&
            !upload_settle(&cur, error))
            goto out;
        /* bytes read, a few chunks ahead of the writes at most */
        done_add(dc, cur.pos - offset - counted);
        counted = cur.pos - offset;
    }
    if (!gfpool_write_behind_finish(g_steal_pointer(&cur.wb), error))
        goto out;
    /* A trailing hole extends the volume without a write. */
    if (cur.pos > cur.size) {
        gfpool_progress_begin(progress, "setting the size");
        if (glfs_ftruncate(cur.fd, (off_t)cur.pos, NULL, NULL) < 0) {
            gfpool_set_error_errno(error, errno, NULL, "cannot set the size");
            goto out;
        }
        cur.dirty = TRUE;
    }
    ok = upload_settle(&cur, error);
    gfpool_progress_begin(progress, "the format check");
    ok = ok && upload_check_format(&cur, error);
    if (ok)
        done_all(dc);
 out:
    /* The failure is already in error; the writes in flight only end. */
    gfpool_write_behind_finish(cur.wb, NULL);
    done_count_clear(dc);
    gfpool_progress_begin(progress, "the close");
    return close_volume(conn, cur.fd, "upload to", name, ok, error);
}

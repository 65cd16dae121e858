/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_image.h: disk image formats, as bytes. Pure code: everything reads
 * and writes through callbacks, so it runs the same on a gfapi fd, a local
 * file (unit tests) or a fuzzer's buffer. No gfapi, no libvirt here.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef enum {
    GFPOOL_FORMAT_NONE = 0,   /* not probed / unknown */
    GFPOOL_FORMAT_RAW,
    GFPOOL_FORMAT_QCOW2,
    GFPOOL_FORMAT_QCOW,
    GFPOOL_FORMAT_QED,
    GFPOOL_FORMAT_VMDK,
    GFPOOL_FORMAT_VDI,
    GFPOOL_FORMAT_VHDX,
    GFPOOL_FORMAT_VPC,
    GFPOOL_FORMAT_ISO,
    GFPOOL_FORMAT_LAST
} GfpoolFormat;

/* Names as libvirt and qemu-img spell them ("raw", "qcow2", "vpc", "iso"...). */
const char *gfpool_format_to_string(GfpoolFormat f);
/* -1 for unknown names. */
int gfpool_format_from_string(const char *s);

/* Read len bytes at off into buf. Returns bytes read (short at EOF), -1 with
 * *error set on failure. */
typedef gssize (*GfpoolReadFunc)(void *opaque, guint64 off, void *buf,
                                 gsize len, GError **error);
/* Write all of len bytes at off. FALSE with *error set on failure. */
typedef gboolean (*GfpoolWriteFunc)(void *opaque, guint64 off, const void *buf,
                                    gsize len, GError **error);

/* How many bytes from offset 0 the prober wants in its first read. */
#define GFPOOL_PROBE_HEADER_SIZE 4096

typedef struct {
    GfpoolFormat format;        /* RAW when nothing else matched */
    guint64 capacity;           /* virtual size; for raw the file size */
    guint32 cluster_size;       /* qcow2/qed, else 0 */
    char *backing;              /* backing file name as stored, or NULL */
    GfpoolFormat backing_format;/* from the qcow2 backing-format extension, or NONE */
    char *warning;              /* set when the header is corrupt/truncated
                                 * ("unusable FORMAT image: why"; the format
                                 * is the signature's, nothing else is set)
                                 * or when a qcow2/qed image has unknown
                                 * incompatible feature bits QEMU would
                                 * refuse: such an image is never rewritten
                                 * on the strength of its header */
    gboolean corrupt;           /* the first case: the header was not parsed */
    gboolean recorded;          /* the format was given (the volume's format
                                 * record), not found in these bytes */
} GfpoolProbe;

void gfpool_probe_clear(GfpoolProbe *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(GfpoolProbe, gfpool_probe_clear)

/*
 * Identify the image whose first bytes are header[0..header_len) and whose
 * file is file_size bytes long. read_fn (may be NULL) fetches data outside
 * the header (e.g. a qcow2 backing file name stored far away); the prober
 * never reads more than 64 KiB in total and never trusts an offset or length
 * from the file without checking it against file_size and its own limits.
 * Never fails: corrupt input keeps its signature's format, with p->warning
 * set (RAW only when no signature matched).
 */
void gfpool_image_probe(const guint8 *header, gsize header_len, guint64 file_size,
                        GfpoolReadFunc read_fn, void *opaque, GfpoolProbe *p);

/*
 * The same for an image whose format is known from elsewhere (the volume's
 * record, an administrator): the bytes never choose another one. A raw or
 * iso image is its file, whatever its first bytes look like; any other
 * format must be what the header says, else the result is that format,
 * corrupt, with p->warning naming both. p->recorded is set.
 */
void gfpool_image_probe_as(GfpoolFormat format, const guint8 *header, gsize header_len,
                           guint64 file_size, GfpoolReadFunc read_fn, void *opaque,
                           GfpoolProbe *p);

/* Largest virtual size we create for qcow2 (QEMU's limit: 2^61 - 1 rounded
 * down to a cluster... see implementation). */
guint64 gfpool_qcow2_max_capacity(guint32 cluster_size);

/* A guest byte range. */
typedef struct {
    guint64 offset;
    guint64 length;
} GfpoolRange;

typedef enum {
    GFPOOL_EXTENT_DATA,         /* stored in the image at host_off */
    GFPOOL_EXTENT_ZERO,         /* reads as zeros */
    GFPOOL_EXTENT_BACKING,      /* not in the image: read the backing file */
} GfpoolExtentKind;

typedef struct {
    guint64 guest_off;
    guint64 len;
    GfpoolExtentKind kind;
    guint64 host_off;           /* DATA only, else 0 */
} GfpoolExtent;

/* Called once per extent; FALSE with *error set stops the walk. */
typedef gboolean (*GfpoolExtentFunc)(void *opaque, const GfpoolExtent *e,
                                     GError **error);

typedef struct {
    guint64 capacity;           /* bytes, > 0 */
    guint32 cluster_size;       /* power of two, 512 .. 2 MiB; 0 = 65536 */
    const char *backing;        /* or NULL */
    GfpoolFormat backing_format;/* NONE = don't record it */
    bool prealloc_metadata;     /* allocate L2 tables and data clusters' refcounts */
    /* Guest ranges whose clusters are to be allocated (data clusters laid
     * out contiguously in guest order, contents left for the caller to
     * write): sorted, non-overlapping, non-empty, within the capacity; need
     * not be cluster aligned. NULL/0 = none. */
    const GfpoolRange *allocate;
    gsize n_allocate;
} GfpoolQcow2Params;

/*
 * Write a complete, empty qcow2 v3 (compat 1.1) image through write_fn into a
 * file that is empty; *file_size receives the size the file must be truncated
 * (extended) to afterwards. Validates the parameters first (capacity 0 or too
 * large, bad cluster size, backing name too long) and fails with a message
 * naming the value. Streams: memory use stays bounded for any capacity,
 * including 16 TiB with preallocation=metadata.
 */
gboolean gfpool_qcow2_create(const GfpoolQcow2Params *params,
                             GfpoolWriteFunc write_fn, void *opaque,
                             guint64 *file_size, GError **error);

/*
 * gfpool_qcow2_create() that also says where the data of params->allocate
 * goes: runs (n_allocate entries, may be NULL) receives for range i
 * {allocate[i].offset, allocate[i].length, DATA, host_off}: the range's
 * bytes belong at host_off .. host_off + length in the image file, one
 * contiguous run (so one copy_file_range per range). Clusters of an
 * allocated range that the caller does not write read as zeros, as the file
 * is sparse; *file_size covers every data cluster.
 */
gboolean gfpool_qcow2_create_allocated(const GfpoolQcow2Params *params,
                                       GfpoolWriteFunc write_fn, void *opaque,
                                       GfpoolExtent *runs, guint64 *file_size,
                                       GError **error);

/*
 * Walk the L1/L2 tables of the qcow2 image whose first bytes are
 * header[0..header_len) (at least the 4 KiB the prober reads) and whose file
 * is file_size bytes, calling cb for each extent in guest order: the extents
 * tile [0, virtual size) exactly. DATA extents are coalesced while they are
 * contiguous in guest and host space; ZERO covers zero-flagged clusters and
 * unallocated ones of an image without a backing file; BACKING the
 * unallocated ones of an image with one. Reads one table cluster at a time
 * (memory bounded by 2 MiB plus a 64 KiB L1 window). UNSUPPORTED for
 * compressed clusters, encryption, external data files and extended L2
 * entries; CORRUPT for any table or data offset that is unaligned or past
 * the end of the file.
 */
gboolean gfpool_qcow2_map(const guint8 *header, gsize header_len,
                          guint64 file_size, GfpoolReadFunc read_fn,
                          void *opaque, GfpoolExtentFunc cb, void *cb_opaque,
                          GError **error);

/*
 * Grow the qcow2 image to new_capacity (rounded up to 512 bytes, like
 * QEMU). Updates the virtual size and, if the L1 table no longer fits the
 * clusters it occupies, writes a larger one (and the refcount blocks or a
 * larger refcount table it needs) past the end of the file, switches the
 * header to it with one write, and only then frees the old L1: a crash at
 * any point leaves a valid image, at worst with leaked clusters.
 * *new_file_size receives the file's new length (never less than
 * file_size). Refuses to shrink (UNSUPPORTED), images with internal
 * snapshots, persistent bitmaps, external data files, extended L2 entries or
 * stale (dirty, lazy) refcounts (UNSUPPORTED) and images marked corrupt or
 * whose tables are unusable (CORRUPT). Data is not touched: with a backing
 * file longer than the old size, the new area shows the backing file's
 * bytes (QEMU would zero it).
 */
gboolean gfpool_qcow2_resize(const guint8 *header, gsize header_len,
                             guint64 file_size, GfpoolReadFunc read_fn,
                             GfpoolWriteFunc write_fn, void *opaque,
                             guint64 new_capacity, guint64 *new_file_size,
                             GError **error);

#define GFPOOL_IMAGE_ERROR (gfpool_image_error_quark())
GQuark gfpool_image_error_quark(void);
typedef enum {
    GFPOOL_IMAGE_ERROR_INVALID,     /* bad parameters */
    GFPOOL_IMAGE_ERROR_CORRUPT,     /* existing image not usable */
    GFPOOL_IMAGE_ERROR_UNSUPPORTED,
} GfpoolImageError;

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
    char *warning;              /* set when the header is corrupt/truncated:
                                 * format is then RAW and the text says why;
                                 * also set, with the format kept, for a
                                 * qcow2/qed image whose unknown incompatible
                                 * feature bits QEMU would refuse to open */
} GfpoolProbe;

void gfpool_probe_clear(GfpoolProbe *p);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(GfpoolProbe, gfpool_probe_clear)

/*
 * Identify the image whose first bytes are header[0..header_len) and whose
 * file is file_size bytes long. read_fn (may be NULL) fetches data outside
 * the header (e.g. a qcow2 backing file name stored far away); the prober
 * never reads more than 64 KiB in total and never trusts an offset or length
 * from the file without checking it against file_size and its own limits.
 * Never fails: corrupt input yields RAW with p->warning set.
 */
void gfpool_image_probe(const guint8 *header, gsize header_len, guint64 file_size,
                        GfpoolReadFunc read_fn, void *opaque, GfpoolProbe *p);

/* Largest virtual size we create for qcow2 (QEMU's limit: 2^61 - 1 rounded
 * down to a cluster... see implementation). */
guint64 gfpool_qcow2_max_capacity(guint32 cluster_size);

typedef struct {
    guint64 capacity;           /* bytes, > 0 */
    guint32 cluster_size;       /* power of two, 512 .. 2 MiB; 0 = 65536 */
    const char *backing;        /* or NULL */
    GfpoolFormat backing_format;/* NONE = don't record it */
    bool prealloc_metadata;     /* allocate L2 tables and data clusters' refcounts */
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

#define GFPOOL_IMAGE_ERROR (gfpool_image_error_quark())
GQuark gfpool_image_error_quark(void);
typedef enum {
    GFPOOL_IMAGE_ERROR_INVALID,     /* bad parameters */
    GFPOOL_IMAGE_ERROR_CORRUPT,     /* existing image not usable */
    GFPOOL_IMAGE_ERROR_UNSUPPORTED,
} GfpoolImageError;

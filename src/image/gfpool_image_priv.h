/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_image_priv.h: what the image files share and nothing else sees:
 * byte order, the qcow2 on-disk constants, bounded reads, an open qcow2
 * image. (QEMU splits its qcow2 driver the same way.)
 */
#pragma once

#include "gfpool_image.h"

#include <stdbool.h>
#include <string.h>

/* ---- byte order --------------------------------------------------------- */
static inline guint16
rd_be16(const guint8 *b)
{
    return (guint16)((b[0] << 8) | b[1]);
}

static inline guint32
rd_be32(const guint8 *b)
{
    return ((guint32)b[0] << 24) | ((guint32)b[1] << 16) |
           ((guint32)b[2] << 8) | b[3];
}

static inline guint64
rd_be64(const guint8 *b)
{
    return ((guint64)rd_be32(b) << 32) | rd_be32(b + 4);
}

static inline guint16
rd_le16(const guint8 *b)
{
    return (guint16)(b[0] | (b[1] << 8));
}

static inline guint32
rd_le32(const guint8 *b)
{
    return b[0] | ((guint32)b[1] << 8) | ((guint32)b[2] << 16) |
           ((guint32)b[3] << 24);
}

static inline guint64
rd_le64(const guint8 *b)
{
    return rd_le32(b) | ((guint64)rd_le32(b + 4) << 32);
}

static inline void
wr_be16(guint8 *b, guint16 v)
{
    b[0] = v >> 8;
    b[1] = v & 0xff;
}

static inline void
wr_be32(guint8 *b, guint32 v)
{
    wr_be16(b, v >> 16);
    wr_be16(b + 2, v & 0xffff);
}

static inline void
wr_be64(guint8 *b, guint64 v)
{
    wr_be32(b, v >> 32);
    wr_be32(b + 4, v & 0xffffffff);
}


/* ---- qcow2 on disk ------------------------------------------------------ */

/* Longest backing name we accept. qcow2 and qcow cap it at 1023 bytes in
 * QEMU; QED allows up to the size of QEMU's backing_file buffer. */
#define QCOW_BACKING_MAX 1023
#define QED_BACKING_MAX 4095

#define QCOW_MAGIC "QFI\xfb"
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_V2_HEADER_LEN 72
#define QCOW2_V3_HEADER_LEN 104
/* qemu 7.2 writes the compression type byte plus padding */
#define QCOW2_HEADER_LEN_WRITTEN 112
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
/* QEMU's QCOW_MAX_L1_SIZE (block/qcow2.h), in bytes of 8-byte entries */
#define QCOW2_MAX_L1_BYTES (32u * 1024 * 1024)
#define QCOW2_MAX_REFTABLE_BYTES (8u * 1024 * 1024)
/* QCOW_MAX_CLUSTER_OFFSET + 1: L1/L2 entries hold offsets in bits 9..55 */
#define QCOW2_MAX_FILE_SIZE (G_GUINT64_CONSTANT(1) << 56)
#define QCOW2_OFLAG_COPIED (G_GUINT64_CONSTANT(1) << 63)
/* dirty, corrupt, external data file, compression type, extended L2 */
#define QCOW2_INCOMPAT_KNOWN G_GUINT64_CONSTANT(0x1f)
#define QCOW2_INCOMPAT_CORRUPT G_GUINT64_CONSTANT(0x2)
#define QCOW2_OFLAG_COMPRESSED (G_GUINT64_CONSTANT(1) << 62)
#define QCOW2_OFLAG_ZERO G_GUINT64_CONSTANT(1)
/* L1E_OFFSET_MASK / L2E_OFFSET_MASK / REFT_OFFSET_MASK of block/qcow2.h:
 * like QEMU, bits outside them are ignored rather than refused */
#define QCOW2_ENTRY_OFFSET_MASK G_GUINT64_CONSTANT(0x00fffffffffffe00)
#define QCOW2_REFT_OFFSET_MASK G_GUINT64_CONSTANT(0xfffffffffffffe00)
#define QCOW2_INCOMPAT_DIRTY G_GUINT64_CONSTANT(0x1)
#define QCOW2_INCOMPAT_DATA_FILE G_GUINT64_CONSTANT(0x4)
#define QCOW2_INCOMPAT_EXTL2 G_GUINT64_CONSTANT(0x10)
#define QCOW2_AUTOCLEAR_BITMAPS G_GUINT64_CONSTANT(0x1)
/* window for walking big tables (L1, refcount table) */
#define TABLE_CHUNK (64u * 1024)

/* ---- the qcow2 header (gfpool_qcow2_header.c) --------------------------- */

#define QCOW2_MAGIC 0x514649fbu     /* QCOW_MAGIC as a big-endian number */
/* The fields from size to nb_snapshots, one contiguous run of the header:
 * a resize switches to new tables by rewriting them in one write. */
#define QCOW2_HEADER_SIZE_OFFSET 24
#define QCOW2_HEADER_SNAPSHOTS_OFFSET 64

/*
 * The header as QEMU's block/qcow2.h QCowHeader names it, in host order.
 * A version 2 header decodes with the values QEMU assumes for it: no
 * feature bits, refcount_order 4, header_length 72.
 */
typedef struct {
    guint32 magic;
    guint32 version;
    guint64 backing_file_offset;
    guint32 backing_file_size;
    guint32 cluster_bits;
    guint64 size;                   /* virtual size in bytes */
    guint32 crypt_method;
    guint32 l1_size;                /* entries */
    guint64 l1_table_offset;
    guint64 refcount_table_offset;
    guint32 refcount_table_clusters;
    guint32 nb_snapshots;
    guint64 snapshots_offset;
    /* version 3 */
    guint64 incompatible_features;
    guint64 compatible_features;
    guint64 autoclear_features;
    guint32 refcount_order;
    guint32 header_length;
    guint8 compression_type;        /* 0 unless the header holds it */
} GfpoolQcow2Header;

/*
 * Decode the header at the start of buf[0..len) and check it on its own
 * terms, as QEMU's qcow2_do_open() does before it reads anything else:
 * cluster size, header length, refcount width, virtual size against the
 * L1 table and its limit, table alignment, the backing name's place in
 * the first cluster. CORRUPT with a message naming the field otherwise.
 * Reads nothing but buf: extensions and the backing name are the caller's.
 */
gboolean gfpool_qcow2_header_decode(const guint8 *buf, gsize len, GfpoolQcow2Header *h,
                                    GError **error);
/*
 * Encode h into buf[0..len): the fields of its version (for version 3 up
 * to the compression type and its padding, as far as header_length
 * reaches); bytes after them are left alone. Refuses (INVALID) a header
 * decode would refuse, or a buf too short for it.
 */
gboolean gfpool_qcow2_header_encode(const GfpoolQcow2Header *h, guint8 *buf, gsize len,
                                    GError **error);
/* Entries an L1 table needs to map size bytes with 2^cluster_bits clusters. */
guint64 gfpool_qcow2_l1_entries(unsigned cluster_bits, guint64 size);
guint64 gfpool_qcow2_max_capacity_bits(unsigned cluster_bits);

/* An existing image, opened by gfpool_qcow2_open(). */
typedef struct {
    GfpoolReadFunc read_fn;
    void *opaque;
    guint64 file_size;
    GfpoolQcow2Header h;
    guint64 cluster_size;
    bool backing;               /* it has a backing file */
} Qcow2Image;

/* Bounded buffer for streamed tables: a multiple of every cluster size. */
#define WRITE_CHUNK (2u * 1024 * 1024)

static inline guint64
div_round_up(guint64 a, guint64 b)
{
    return a / b + (a % b != 0);
}

/* ---- shared by the files ------------------------------------------------ */

gboolean gfpool_within_file(guint64 file_size, guint64 off, gsize len, const char *what,
                            GError **error);
gboolean gfpool_read_exact(GfpoolReadFunc read_fn, void *opaque, guint64 off, void *buf,
                           gsize len, const char *what, GError **error);
gboolean gfpool_qcow2_write_entries(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
                                    guint64 count, guint64 base, guint64 step,
                                    guint64 flags, GError **error);
gboolean gfpool_qcow2_write_refcounts(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
                                      guint64 count, GError **error);
gboolean gfpool_qcow2_open(Qcow2Image *q, const guint8 *header, gsize header_len,
                           guint64 file_size, GfpoolReadFunc read_fn, void *opaque,
                           GError **error);
gboolean gfpool_qcow2_read(const Qcow2Image *q, guint64 off, void *buf, gsize len,
                           const char *what, GError **error);

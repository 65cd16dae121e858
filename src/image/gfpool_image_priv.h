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

typedef struct {
    GfpoolReadFunc read_fn;
    void *opaque;
    guint64 file_size;
    guint8 fields[40];          /* header bytes [24, 64), as read */
    unsigned cluster_bits;
    guint64 cluster_size;
    guint64 size;
    guint32 crypt_method;
    guint32 l1_size;
    guint64 l1_off;
    guint64 rt_off;
    guint32 rt_clusters;
    guint32 nb_snapshots;
    guint64 incompat;
    guint64 autoclear;
    unsigned refcount_order;
    bool backing;
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
guint64 gfpool_qcow2_max_capacity_bits(unsigned cluster_bits);
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

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_qcow2_header.c: the qcow2 header, decoded and encoded in one
 * place, and the rules a header must keep on its own (docs/interop/qcow2.txt
 * in QEMU's tree describes the format). The prober, the mapper, the writer
 * and the resizer all go through here, so no other file knows where a field
 * lies or what makes it valid.
 */
#include "gfpool_image_priv.h"

#include <stddef.h>

/* ---- layout ------------------------------------------------------------- */

/* One field: where it lies on disk and which member holds it. Its width is
 * the member's size, so the two cannot disagree. */
typedef struct {
    gsize disk;
    gsize width;
    gsize member;
} HeaderField;

#define FIELD(disk, name) \
    { (disk), sizeof(((GfpoolQcow2Header *)NULL)->name), \
      offsetof(GfpoolQcow2Header, name) }

static const HeaderField v2_fields[] = {
    FIELD(0, magic),
    FIELD(4, version),
    FIELD(8, backing_file_offset),
    FIELD(16, backing_file_size),
    FIELD(20, cluster_bits),
    FIELD(QCOW2_HEADER_SIZE_OFFSET, size),
    FIELD(32, crypt_method),
    FIELD(36, l1_size),
    FIELD(40, l1_table_offset),
    FIELD(48, refcount_table_offset),
    FIELD(56, refcount_table_clusters),
    FIELD(60, nb_snapshots),
    FIELD(QCOW2_HEADER_SNAPSHOTS_OFFSET, snapshots_offset),
};

static const HeaderField v3_fields[] = {
    FIELD(72, incompatible_features),
    FIELD(80, compatible_features),
    FIELD(88, autoclear_features),
    FIELD(96, refcount_order),
    FIELD(100, header_length),
};

/* Present when header_length reaches past it; padding follows it up to
 * the 8-byte boundary QEMU writes. */
static const HeaderField compression_field = FIELD(104, compression_type);

G_STATIC_ASSERT(QCOW2_HEADER_SNAPSHOTS_OFFSET + 8 == QCOW2_V2_HEADER_LEN);
G_STATIC_ASSERT(100 + 4 == QCOW2_V3_HEADER_LEN);
G_STATIC_ASSERT(104 + 1 <= QCOW2_HEADER_LEN_WRITTEN);

static void
field_get(const HeaderField *f, const guint8 *buf, GfpoolQcow2Header *h)
{
    guint8 *m = (guint8 *)h + f->member;
    guint32 v32;
    guint64 v64;

    switch (f->width) {
    case 1:
        *m = buf[f->disk];
        break;
    case 4:
        v32 = rd_be32(buf + f->disk);
        memcpy(m, &v32, sizeof(v32));
        break;
    default:
        v64 = rd_be64(buf + f->disk);
        memcpy(m, &v64, sizeof(v64));
        break;
    }
}

static void
field_put(const HeaderField *f, const GfpoolQcow2Header *h, guint8 *buf)
{
    const guint8 *m = (const guint8 *)h + f->member;
    guint32 v32;
    guint64 v64;

    switch (f->width) {
    case 1:
        buf[f->disk] = *m;
        break;
    case 4:
        memcpy(&v32, m, sizeof(v32));
        wr_be32(buf + f->disk, v32);
        break;
    default:
        memcpy(&v64, m, sizeof(v64));
        wr_be64(buf + f->disk, v64);
        break;
    }
}

static void
fields_get(const HeaderField *f, gsize n, const guint8 *buf, GfpoolQcow2Header *h)
{
    for (gsize i = 0; i < n; i++)
        field_get(&f[i], buf, h);
}

static void
fields_put(const HeaderField *f, gsize n, const GfpoolQcow2Header *h, guint8 *buf)
{
    for (gsize i = 0; i < n; i++)
        field_put(&f[i], h, buf);
}


/* ---- limits ------------------------------------------------------------- */

guint64
gfpool_qcow2_max_capacity_bits(unsigned cluster_bits)
{
    /* Each L1 entry maps one L2 table of cluster_size / 8 entries, each
     * mapping one cluster: 2^(cluster_bits - 3 + cluster_bits) bytes. */
    guint64 per_l1 = G_GUINT64_CONSTANT(1) << (2 * cluster_bits - 3);
    return (guint64)(QCOW2_MAX_L1_BYTES / 8) * per_l1;
}

guint64
gfpool_qcow2_max_capacity(guint32 cluster_size)
{
    if (cluster_size == 0)
        cluster_size = 65536;
    if (cluster_size < 512 || cluster_size > 2 * 1024 * 1024 ||
        (cluster_size & (cluster_size - 1)))
        return 0;
    /* At most 2^61, below QEMU's BDRV_MAX_LENGTH (INT64_MAX rounded down
     * to 1 GiB), so the L1 limit is the only one that binds. */
    return gfpool_qcow2_max_capacity_bits(g_bit_nth_lsf(cluster_size, -1));
}

guint64
gfpool_qcow2_l1_entries(unsigned cluster_bits, guint64 size)
{
    unsigned span_bits = 2 * cluster_bits - 3;
    guint64 span = G_GUINT64_CONSTANT(1) << span_bits;

    return (size >> span_bits) + ((size & (span - 1)) != 0);
}


/* ---- the rules ---------------------------------------------------------- */

static gboolean
check_cluster_bits(const GfpoolQcow2Header *h, int code, GError **error)
{
    if (h->cluster_bits >= QCOW2_MIN_CLUSTER_BITS &&
        h->cluster_bits <= QCOW2_MAX_CLUSTER_BITS)
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                "qcow2 cluster_bits %u is invalid: must be between %d "
                "and %d", h->cluster_bits, QCOW2_MIN_CLUSTER_BITS,
                QCOW2_MAX_CLUSTER_BITS);
    return FALSE;
}

static gboolean
check_v3_fields(const GfpoolQcow2Header *h, guint64 cluster_size, int code,
                GError **error)
{
    if (h->header_length < QCOW2_V3_HEADER_LEN ||
        h->header_length > cluster_size) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 header_length %u is invalid: must be between "
                    "%d and the cluster size %" G_GUINT64_FORMAT,
                    h->header_length, QCOW2_V3_HEADER_LEN, cluster_size);
        return FALSE;
    }
    if (h->refcount_order > 6) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 refcount_order %u is invalid: must be at most 6",
                    h->refcount_order);
        return FALSE;
    }
    return TRUE;
}

/* As QEMU: the size within the L1 limit, and an L1 table that maps it. */
static gboolean
check_size(const GfpoolQcow2Header *h, guint64 cluster_size, int code,
           GError **error)
{
    guint64 max = gfpool_qcow2_max_capacity_bits(h->cluster_bits);
    guint64 l1_needed;

    if (h->size > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 virtual size %" G_GUINT64_FORMAT " is invalid: must "
                    "be at most %" G_GUINT64_FORMAT " with %" G_GUINT64_FORMAT
                    "-byte clusters", h->size, max, cluster_size);
        return FALSE;
    }
    l1_needed = gfpool_qcow2_l1_entries(h->cluster_bits, h->size);
    if (h->l1_size < l1_needed || h->l1_size > QCOW2_MAX_L1_BYTES / 8) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 l1_size %u is invalid: must be between %"
                    G_GUINT64_FORMAT " (to map %" G_GUINT64_FORMAT " bytes) "
                    "and %u",
                    h->l1_size, l1_needed, h->size, QCOW2_MAX_L1_BYTES / 8);
        return FALSE;
    }
    return TRUE;
}

static gboolean
check_table_offsets(const GfpoolQcow2Header *h, guint64 cluster_size, int code,
                    GError **error)
{
    guint64 l1_off = h->l1_table_offset, rt_off = h->refcount_table_offset;

    if (!(l1_off & (cluster_size - 1)) && !(rt_off & (cluster_size - 1)) &&
        l1_off < QCOW2_MAX_FILE_SIZE && rt_off < QCOW2_MAX_FILE_SIZE)
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                "qcow2 table offsets L1 %" G_GUINT64_FORMAT " / refcount %"
                G_GUINT64_FORMAT " are invalid: must be multiples of the "
                "cluster size below 2^56", l1_off, rt_off);
    return FALSE;
}

/* QEMU keeps the backing name inside cluster 0. */
static gboolean
check_backing(const GfpoolQcow2Header *h, guint64 cluster_size, int code,
              GError **error)
{
    if (h->backing_file_offset == 0 ||
        (h->backing_file_offset <= cluster_size &&
         h->backing_file_size <= cluster_size - h->backing_file_offset))
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                "qcow2 backing file name at offset %" G_GUINT64_FORMAT
                " (%u bytes) is invalid: must lie within the first "
                "cluster (%" G_GUINT64_FORMAT " bytes)",
                h->backing_file_offset, h->backing_file_size, cluster_size);
    return FALSE;
}

/* Every rule a header keeps on its own, in the order the prober has always
 * reported them; code says whose fault a violation is. */
static gboolean
header_check(const GfpoolQcow2Header *h, int code, GError **error)
{
    guint64 cluster_size;

    if (!check_cluster_bits(h, code, error))
        return FALSE;
    cluster_size = G_GUINT64_CONSTANT(1) << h->cluster_bits;
    if (h->version >= 3 && !check_v3_fields(h, cluster_size, code, error))
        return FALSE;
    return check_size(h, cluster_size, code, error) &&
           check_table_offsets(h, cluster_size, code, error) &&
           check_backing(h, cluster_size, code, error);
}


/* ---- decode and encode -------------------------------------------------- */

static gboolean
header_need(gsize len, gsize need, GError **error)
{
    if (len >= need)
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                "qcow2 header truncated: %" G_GSIZE_FORMAT " bytes available, "
                "the header needs %" G_GSIZE_FORMAT, len, need);
    return FALSE;
}

static gboolean
header_identify(const GfpoolQcow2Header *h, int code, GError **error)
{
    if (h->magic != QCOW2_MAGIC) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 magic 0x%08x is invalid: must be 0x%08x",
                    h->magic, QCOW2_MAGIC);
        return FALSE;
    }
    if (h->version != 2 && h->version != 3) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, code,
                    "qcow2 version %u is invalid: must be 2 or 3", h->version);
        return FALSE;
    }
    return TRUE;
}

gboolean
gfpool_qcow2_header_decode(const guint8 *buf, gsize len, GfpoolQcow2Header *h,
                           GError **error)
{
    memset(h, 0, sizeof(*h));
    /* magic and version first: they say how long the rest is */
    if (!header_need(len, 8, error))
        return FALSE;
    fields_get(v2_fields, 2, buf, h);
    if (!header_identify(h, GFPOOL_IMAGE_ERROR_CORRUPT, error) ||
        !header_need(len, h->version == 2 ? QCOW2_V2_HEADER_LEN : QCOW2_V3_HEADER_LEN,
                     error))
        return FALSE;

    fields_get(v2_fields, G_N_ELEMENTS(v2_fields), buf, h);
    if (h->version == 2) {
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_LEN;
    } else {
        fields_get(v3_fields, G_N_ELEMENTS(v3_fields), buf, h);
        if (h->header_length > compression_field.disk && len > compression_field.disk)
            field_get(&compression_field, buf, h);
    }
    return header_check(h, GFPOOL_IMAGE_ERROR_CORRUPT, error);
}

gboolean
gfpool_qcow2_header_encode(const GfpoolQcow2Header *h, guint8 *buf, gsize len,
                           GError **error)
{
    gsize end, need;

    if (!header_identify(h, GFPOOL_IMAGE_ERROR_INVALID, error) ||
        !header_check(h, GFPOOL_IMAGE_ERROR_INVALID, error))
        return FALSE;
    need = h->version == 2 ? QCOW2_V2_HEADER_LEN
                           : MIN((gsize)h->header_length, (gsize)QCOW2_HEADER_LEN_WRITTEN);
    if (len < need) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "qcow2 header of %" G_GSIZE_FORMAT " bytes does not fit "
                    "the %" G_GSIZE_FORMAT " bytes given", need, len);
        return FALSE;
    }

    fields_put(v2_fields, G_N_ELEMENTS(v2_fields), h, buf);
    if (h->version == 2)
        return TRUE;
    fields_put(v3_fields, G_N_ELEMENTS(v3_fields), h, buf);
    end = compression_field.disk + compression_field.width;
    if (need >= end) {
        field_put(&compression_field, h, buf);
        memset(buf + end, 0, need - end);
    }
    return TRUE;
}

/*
 * gfpool_image.c: disk image formats, as bytes.
 *
 * Two halves: a prober that identifies an image from its first bytes, and a
 * qcow2 writer. The prober runs inside libvirtd on files a guest may have
 * written, so every on-disk offset and length is checked before use, all
 * offset arithmetic is done in the "len > limit - off" form that cannot
 * overflow, and no allocation depends on a length read from the file.
 */
#include "gfpool_image.h"

#include <string.h>

G_DEFINE_QUARK(gfpool-image-error-quark, gfpool_image_error)

static const char *const format_names[GFPOOL_FORMAT_LAST] = {
    [GFPOOL_FORMAT_NONE] = "none",
    [GFPOOL_FORMAT_RAW] = "raw",
    [GFPOOL_FORMAT_QCOW2] = "qcow2",
    [GFPOOL_FORMAT_QCOW] = "qcow",
    [GFPOOL_FORMAT_QED] = "qed",
    [GFPOOL_FORMAT_VMDK] = "vmdk",
    [GFPOOL_FORMAT_VDI] = "vdi",
    [GFPOOL_FORMAT_VHDX] = "vhdx",
    [GFPOOL_FORMAT_VPC] = "vpc",
    [GFPOOL_FORMAT_ISO] = "iso",
};

const char *
gfpool_format_to_string(GfpoolFormat f)
{
    if ((unsigned)f >= GFPOOL_FORMAT_LAST)
        return NULL;
    return format_names[f];
}

int
gfpool_format_from_string(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < GFPOOL_FORMAT_LAST; i++) {
        if (g_str_equal(s, format_names[i]))
            return i;
    }
    return -1;
}

void
gfpool_probe_clear(GfpoolProbe *p)
{
    if (!p)
        return;
    g_free(p->backing);
    g_free(p->warning);
    memset(p, 0, sizeof(*p));
}


/* ---- byte order --------------------------------------------------------- */

static guint16
rd_be16(const guint8 *b)
{
    return (guint16)((b[0] << 8) | b[1]);
}

static guint32
rd_be32(const guint8 *b)
{
    return ((guint32)b[0] << 24) | ((guint32)b[1] << 16) |
           ((guint32)b[2] << 8) | b[3];
}

static guint64
rd_be64(const guint8 *b)
{
    return ((guint64)rd_be32(b) << 32) | rd_be32(b + 4);
}

static guint16
rd_le16(const guint8 *b)
{
    return (guint16)(b[0] | (b[1] << 8));
}

static guint32
rd_le32(const guint8 *b)
{
    return b[0] | ((guint32)b[1] << 8) | ((guint32)b[2] << 16) |
           ((guint32)b[3] << 24);
}

static guint64
rd_le64(const guint8 *b)
{
    return rd_le32(b) | ((guint64)rd_le32(b + 4) << 32);
}

static void
wr_be16(guint8 *b, guint16 v)
{
    b[0] = v >> 8;
    b[1] = v & 0xff;
}

static void
wr_be32(guint8 *b, guint32 v)
{
    wr_be16(b, v >> 16);
    wr_be16(b + 2, v & 0xffff);
}

static void
wr_be64(guint8 *b, guint64 v)
{
    wr_be32(b, v >> 32);
    wr_be32(b + 4, v & 0xffffffff);
}


/* ---- probing ------------------------------------------------------------ */

/* Total bytes the prober may look at, header included: enough for every
 * header we parse, small enough that a hostile file cannot make libvirtd
 * read (or allocate) much. */
#define PROBE_READ_LIMIT (64 * 1024)

/* Longest backing name we accept. qcow2 and qcow cap it at 1023 bytes in
 * QEMU; QED allows up to the size of QEMU's backing_file buffer. */
#define QCOW_BACKING_MAX 1023
#define QED_BACKING_MAX 4095

typedef struct {
    const guint8 *header;
    gsize header_len;           /* bytes of header that are inside the file */
    guint64 file_size;
    GfpoolReadFunc read_fn;
    void *opaque;
    gsize budget;               /* bytes read_fn may still fetch */
} ProbeCtx;

/*
 * Copy len bytes at off into dst, from the header when they are all in it,
 * else through read_fn. what names the structure for the error message.
 */
/* [off, off+len) lies inside a file of file_size bytes: an offset from a
 * header is checked before anything is read at it. */
static gboolean
within_file(guint64 file_size, guint64 off, gsize len, const char *what, GError **error)
{
    if (len > file_size || off > file_size - len) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "%s at offset %" G_GUINT64_FORMAT " (%" G_GSIZE_FORMAT
                    " bytes) lies past the end of the %" G_GUINT64_FORMAT "-byte file",
                    what, off, len, file_size);
        return FALSE;
    }
    return TRUE;
}

/* Exactly len bytes at off, or an error naming what was being read. */
static gboolean
read_exact(GfpoolReadFunc read_fn, void *opaque, guint64 off, void *buf, gsize len,
           const char *what, GError **error)
{
    gssize n = read_fn(opaque, off, buf, len, error);

    if (n < 0) {
        /* read_fn is supposed to set it; don't leave the caller without one */
        if (error && !*error)
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "reading %s at offset %" G_GUINT64_FORMAT " failed",
                        what, off);
        return FALSE;
    }
    if ((gsize)n != len) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "%s at offset %" G_GUINT64_FORMAT ": short read of %"
                    G_GSSIZE_FORMAT " of %" G_GSIZE_FORMAT " bytes",
                    what, off, n, len);
        return FALSE;
    }
    return TRUE;
}

static gboolean
probe_fetch(ProbeCtx *c, guint64 off, gsize len, void *dst,
            const char *what, GError **error)
{
    if (!within_file(c->file_size, off, len, what, error))
        return FALSE;
    if (len <= c->header_len && off <= c->header_len - len) {
        memcpy(dst, c->header + off, len);
        return TRUE;
    }
    if (!c->read_fn) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "%s at offset %" G_GUINT64_FORMAT " lies outside the %"
                    G_GSIZE_FORMAT " header bytes given and there is no "
                    "reader", what, off, c->header_len);
        return FALSE;
    }
    if (len > c->budget) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "%s at offset %" G_GUINT64_FORMAT " (%" G_GSIZE_FORMAT
                    " bytes) would exceed the probe's %u-byte read limit",
                    what, off, len, PROBE_READ_LIMIT);
        return FALSE;
    }
    c->budget -= len;
    return read_exact(c->read_fn, c->opaque, off, dst, len, what, error);
}

static gboolean
probe_need_header(ProbeCtx *c, gsize need, const char *fmt, GError **error)
{
    if (c->header_len >= need)
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                "%s header truncated: %" G_GSIZE_FORMAT " bytes available, "
                "the header needs %" G_GSIZE_FORMAT,
                fmt, c->header_len, need);
    return FALSE;
}

/*
 * Read a backing file name of len bytes at off. An embedded NUL would make
 * the name QEMU uses differ from the bytes on disk, so such a name is corrupt.
 */
static gboolean
probe_read_name(ProbeCtx *c, guint64 off, gsize len, gsize max,
                char **name, GError **error)
{
    g_autofree char *buf = NULL;

    if (len > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "backing file name length %" G_GSIZE_FORMAT " is invalid: "
                    "must be at most %" G_GSIZE_FORMAT " bytes", len, max);
        return FALSE;
    }
    buf = g_malloc0(len + 1);
    if (!probe_fetch(c, off, len, buf, "backing file name", error))
        return FALSE;
    if (memchr(buf, '\0', len)) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "backing file name at offset %" G_GUINT64_FORMAT
                    " contains a NUL byte", off);
        return FALSE;
    }
    *name = g_steal_pointer(&buf);
    return TRUE;
}

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

static guint64
qcow2_max_capacity_bits(unsigned cluster_bits)
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
    return qcow2_max_capacity_bits(g_bit_nth_lsf(cluster_size, -1));
}

/* Walk the header extensions between the header and end, like QEMU's
 * qcow2_read_extensions(), remembering the backing format. */
static gboolean
probe_qcow2_extensions(ProbeCtx *c, guint64 offset, guint64 end,
                       GfpoolProbe *p, GError **error)
{
    while (offset < end) {
        guint8 eh[8];
        guint32 magic, len;

        if (end - offset < sizeof(eh)) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 header extension at offset %" G_GUINT64_FORMAT
                        " is invalid: its 8-byte header crosses the end of the "
                        "extension area at %" G_GUINT64_FORMAT, offset, end);
            return FALSE;
        }
        if (!probe_fetch(c, offset, sizeof(eh), eh, "qcow2 header extension",
                         error))
            return FALSE;
        magic = rd_be32(eh);
        len = rd_be32(eh + 4);
        offset += sizeof(eh);
        if (len > end - offset) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 header extension 0x%08x length %u is invalid: "
                        "must end within the extension area at %"
                        G_GUINT64_FORMAT, magic, len, end);
            return FALSE;
        }

        if (magic == QCOW2_EXT_END)
            return TRUE;

        if (magic == QCOW2_EXT_BACKING_FORMAT) {
            char fmt[16] = { 0 };
            int f;

            /* QEMU's backing_format buffer is 16 bytes with the NUL */
            if (len >= sizeof(fmt)) {
                g_set_error(error, GFPOOL_IMAGE_ERROR,
                            GFPOOL_IMAGE_ERROR_CORRUPT,
                            "qcow2 backing format extension length %u is "
                            "invalid: must be less than %zu", len, sizeof(fmt));
                return FALSE;
            }
            if (!probe_fetch(c, offset, len, fmt, "qcow2 backing format",
                             error))
                return FALSE;
            f = gfpool_format_from_string(fmt);
            /* names we do not model ("luks", "file") leave it unknown */
            p->backing_format = f > 0 ? (GfpoolFormat)f : GFPOOL_FORMAT_NONE;
        }
        /* len <= end - offset <= 2 MiB here, so this cannot overflow */
        offset += ((guint64)len + 7) & ~G_GUINT64_CONSTANT(7);
    }
    return TRUE;
}

static gboolean
probe_qcow2(ProbeCtx *c, guint32 version, GfpoolProbe *p, GError **error)
{
    const guint8 *h = c->header;
    guint64 backing_off, size, l1_off, rt_off, incompat = 0;
    guint32 backing_len, cluster_bits, l1_size, header_length;
    guint64 cluster_size, l1_span, l1_needed, max;

    if (!probe_need_header(c, version == 2 ? QCOW2_V2_HEADER_LEN
                                           : QCOW2_V3_HEADER_LEN,
                           "qcow2", error))
        return FALSE;

    backing_off = rd_be64(h + 8);
    backing_len = rd_be32(h + 16);
    cluster_bits = rd_be32(h + 20);
    size = rd_be64(h + 24);
    l1_size = rd_be32(h + 36);
    l1_off = rd_be64(h + 40);
    rt_off = rd_be64(h + 48);

    if (cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 cluster_bits %u is invalid: must be between %d "
                    "and %d", cluster_bits, QCOW2_MIN_CLUSTER_BITS,
                    QCOW2_MAX_CLUSTER_BITS);
        return FALSE;
    }
    cluster_size = G_GUINT64_CONSTANT(1) << cluster_bits;
    l1_span = G_GUINT64_CONSTANT(1) << (2 * cluster_bits - 3);

    if (version == 2) {
        header_length = QCOW2_V2_HEADER_LEN;
    } else {
        guint32 refcount_order;

        incompat = rd_be64(h + 72);
        refcount_order = rd_be32(h + 96);
        header_length = rd_be32(h + 100);
        if (header_length < QCOW2_V3_HEADER_LEN ||
            header_length > cluster_size) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 header_length %u is invalid: must be between "
                        "%d and the cluster size %" G_GUINT64_FORMAT,
                        header_length, QCOW2_V3_HEADER_LEN, cluster_size);
            return FALSE;
        }
        if (refcount_order > 6) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 refcount_order %u is invalid: must be at most 6",
                        refcount_order);
            return FALSE;
        }
    }

    max = qcow2_max_capacity_bits(cluster_bits);
    if (size > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 virtual size %" G_GUINT64_FORMAT " is invalid: must "
                    "be at most %" G_GUINT64_FORMAT " with %" G_GUINT64_FORMAT
                    "-byte clusters", size, max, cluster_size);
        return FALSE;
    }
    /* As QEMU: the L1 table must be able to map the whole virtual size, and
     * the tables must be cluster aligned. */
    l1_needed = (size >> (2 * cluster_bits - 3)) +
                ((size & (l1_span - 1)) != 0);
    if (l1_size < l1_needed || l1_size > QCOW2_MAX_L1_BYTES / 8) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 l1_size %u is invalid: must be between %"
                    G_GUINT64_FORMAT " (to map %" G_GUINT64_FORMAT " bytes) "
                    "and %u",
                    l1_size, l1_needed, size, QCOW2_MAX_L1_BYTES / 8);
        return FALSE;
    }
    if ((l1_off & (cluster_size - 1)) || (rt_off & (cluster_size - 1)) ||
        l1_off >= QCOW2_MAX_FILE_SIZE || rt_off >= QCOW2_MAX_FILE_SIZE) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 table offsets L1 %" G_GUINT64_FORMAT " / refcount %"
                    G_GUINT64_FORMAT " are invalid: must be multiples of the "
                    "cluster size below 2^56", l1_off, rt_off);
        return FALSE;
    }

    if (backing_off != 0) {
        /* QEMU keeps the name inside cluster 0 and at most 1023 bytes */
        if (backing_off > cluster_size ||
            backing_len > cluster_size - backing_off) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 backing file name at offset %" G_GUINT64_FORMAT
                        " (%u bytes) is invalid: must lie within the first "
                        "cluster (%" G_GUINT64_FORMAT " bytes)",
                        backing_off, backing_len, cluster_size);
            return FALSE;
        }
        if (!probe_read_name(c, backing_off, backing_len, QCOW_BACKING_MAX,
                             &p->backing, error))
            return FALSE;
    }

    if (!probe_qcow2_extensions(c, header_length,
                                backing_off ? backing_off : cluster_size,
                                p, error))
        return FALSE;

    p->format = GFPOOL_FORMAT_QCOW2;
    p->capacity = size;
    p->cluster_size = (guint32)cluster_size;

    /* qemu-img info still describes such images, so we do too; the warning
     * tells the caller QEMU will refuse to run them. */
    if (incompat & ~QCOW2_INCOMPAT_KNOWN) {
        p->warning = g_strdup_printf("qcow2 incompatible features 0x%016"
                                     G_GINT64_MODIFIER "x include unknown bits "
                                     "0x%016" G_GINT64_MODIFIER "x: QEMU will "
                                     "not open the image", incompat,
                                     incompat & ~QCOW2_INCOMPAT_KNOWN);
    } else if (incompat & QCOW2_INCOMPAT_CORRUPT) {
        p->warning = g_strdup("qcow2 image is marked corrupt: QEMU opens it "
                              "read-only until it is repaired");
    }
    return TRUE;
}

/* qcow version 1: QEMU's block/qcow.c QCowHeader, 48 bytes big-endian. */
static gboolean
probe_qcow(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    const guint8 *h = c->header;
    guint64 backing_off, size;
    guint32 backing_len;
    guint8 cluster_bits, l2_bits;

    if (!probe_need_header(c, 48, "qcow", error))
        return FALSE;
    backing_off = rd_be64(h + 8);
    backing_len = rd_be32(h + 16);
    size = rd_be64(h + 24);
    cluster_bits = h[32];
    l2_bits = h[33];

    /* the limits of QEMU's qcow_open() */
    if (cluster_bits < 9 || cluster_bits > 16 || l2_bits < 6 || l2_bits > 13) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow cluster_bits %u / l2_bits %u are invalid: must be "
                    "9..16 and 6..13", cluster_bits, l2_bits);
        return FALSE;
    }
    if (size <= 1 || size > (guint64)G_MAXINT64) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow size %" G_GUINT64_FORMAT " is invalid: must be "
                    "between 2 and 2^63-1", size);
        return FALSE;
    }
    if (backing_off != 0 &&
        !probe_read_name(c, backing_off, backing_len, QCOW_BACKING_MAX,
                         &p->backing, error))
        return FALSE;

    p->format = GFPOOL_FORMAT_QCOW;
    p->capacity = size;
    return TRUE;
}

/* QED: block/qed.h QEDHeader, 64 bytes little-endian. */
#define QED_F_BACKING_FILE 0x1
#define QED_F_BACKING_FORMAT_NO_PROBE 0x4
#define QED_FEATURE_MASK G_GUINT64_CONSTANT(0x7)

static gboolean
probe_qed(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    const guint8 *h = c->header;
    guint32 cluster_size, table_size, header_size;
    guint64 features, image_size, table_entries, max;

    if (!probe_need_header(c, 64, "qed", error))
        return FALSE;
    cluster_size = rd_le32(h + 4);
    table_size = rd_le32(h + 8);
    header_size = rd_le32(h + 12);
    features = rd_le64(h + 16);
    image_size = rd_le64(h + 48);

    if (cluster_size < 4096 || cluster_size > 64u * 1024 * 1024 ||
        (cluster_size & (cluster_size - 1))) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qed cluster size %u is invalid: must be a power of two "
                    "between 4096 and 67108864", cluster_size);
        return FALSE;
    }
    if (table_size < 1 || table_size > 16 || (table_size & (table_size - 1))) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qed table size %u is invalid: must be a power of two "
                    "between 1 and 16 clusters", table_size);
        return FALSE;
    }
    if (header_size < 1 || header_size > G_MAXUINT32 / cluster_size) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qed header size %u clusters is invalid: must be at least "
                    "1 and span less than 4 GiB", header_size);
        return FALSE;
    }
    /* qed_max_image_size(): at most 2^26 * 2^4 / 8 entries squared times
     * 2^26, i.e. below 2^71; compute it without overflowing. */
    table_entries = (guint64)table_size * cluster_size / 8;
    if (image_size % 512 != 0 ||
        (image_size > 0 &&
         (image_size - 1) / cluster_size / table_entries >= table_entries)) {
        max = table_entries * cluster_size;
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qed image size %" G_GUINT64_FORMAT " is invalid: must be "
                    "a multiple of 512 mappable by %" G_GUINT64_FORMAT
                    " tables of %" G_GUINT64_FORMAT " bytes",
                    image_size, table_entries, max);
        return FALSE;
    }
    if (features & QED_F_BACKING_FILE) {
        guint32 off = rd_le32(h + 56), len = rd_le32(h + 60);

        if ((guint64)off + len > (guint64)cluster_size * header_size) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qed backing file name at offset %u (%u bytes) is "
                        "invalid: must lie within the %u-cluster header",
                        off, len, header_size);
            return FALSE;
        }
        if (!probe_read_name(c, off, len, QED_BACKING_MAX, &p->backing, error))
            return FALSE;
        if (features & QED_F_BACKING_FORMAT_NO_PROBE)
            p->backing_format = GFPOOL_FORMAT_RAW;
    }

    p->format = GFPOOL_FORMAT_QED;
    p->capacity = image_size;
    p->cluster_size = cluster_size;
    if (features & ~QED_FEATURE_MASK)
        p->warning = g_strdup_printf("qed features 0x%" G_GINT64_MODIFIER "x "
                                     "include unknown bits: QEMU will not "
                                     "open the image", features);
    return TRUE;
}

/* Sectors to bytes, refusing what does not fit QEMU's int64 lengths. */
static gboolean
probe_sectors(guint64 sectors, const char *what, guint64 *bytes,
              GError **error)
{
    if (sectors > (guint64)G_MAXINT64 / 512) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "%s %" G_GUINT64_FORMAT " sectors is invalid: must be at "
                    "most 2^63 bytes", what, sectors);
        return FALSE;
    }
    *bytes = sectors * 512;
    return TRUE;
}

/*
 * Find parentFileNameHint="..." in a VMDK descriptor. Lines are bounded by
 * the buffer, so a missing newline or quote just ends the search.
 */
static char *
vmdk_descriptor_parent(const char *desc, gsize len)
{
    static const char key[] = "parentFileNameHint=\"";
    const char *s = desc, *end = desc + len;

    while (s < end) {
        const char *eol = memchr(s, '\n', end - s);
        const char *line_end = eol ? eol : end;

        if ((gsize)(line_end - s) > sizeof(key) - 1 &&
            memcmp(s, key, sizeof(key) - 1) == 0) {
            const char *v = s + sizeof(key) - 1;
            const char *q = memchr(v, '"', line_end - v);

            if (q && q > v && !memchr(v, '\0', q - v) &&
                (gsize)(q - v) <= QCOW_BACKING_MAX)
                return g_strndup(v, q - v);
            return NULL;
        }
        s = line_end + 1;
    }
    return NULL;
}

/* Sum of the extent sizes ("RW 2097152 SPARSE "x.vmdk"") of a descriptor. */
static gboolean
vmdk_descriptor_capacity(const char *desc, gsize len, guint64 *sectors)
{
    const char *s = desc, *end = desc + len;
    gboolean found = FALSE;

    *sectors = 0;
    while (s < end) {
        const char *eol = memchr(s, '\n', end - s);
        const char *line_end = eol ? eol : end;
        gsize n = line_end - s;
        const char *num = NULL;

        if (n > 3 && memcmp(s, "RW ", 3) == 0)
            num = s + 3;
        else if (n > 7 && memcmp(s, "RDONLY ", 7) == 0)
            num = s + 7;
        else if (n > 9 && memcmp(s, "NOACCESS ", 9) == 0)
            num = s + 9;
        if (num) {
            guint64 v = 0;

            if (num >= line_end || !g_ascii_isdigit(*num))
                return FALSE;
            for (; num < line_end && g_ascii_isdigit(*num); num++) {
                if (v > (G_MAXUINT64 - 9) / 10)
                    return FALSE;
                v = v * 10 + (guint64)(*num - '0');
            }
            if (v > G_MAXUINT64 - *sectors)
                return FALSE;
            *sectors += v;
            found = TRUE;
        }
        s = line_end + 1;
    }
    return found;
}

static gboolean
probe_vmdk_descriptor(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    const char *desc = (const char *)c->header;
    guint64 sectors;

    if (!vmdk_descriptor_capacity(desc, c->header_len, &sectors)) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "vmdk descriptor has no valid extent line within its first "
                    "%" G_GSIZE_FORMAT " bytes", c->header_len);
        return FALSE;
    }
    if (!probe_sectors(sectors, "vmdk extent total", &p->capacity, error))
        return FALSE;
    p->backing = vmdk_descriptor_parent(desc, c->header_len);
    p->format = GFPOOL_FORMAT_VMDK;
    return TRUE;
}

/* VMDK4 sparse extent header (block/vmdk.c VMDK4Header), little-endian. */
static gboolean
probe_vmdk_sparse(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    const guint8 *h = c->header;
    guint32 version;
    guint64 desc_off, desc_size;

    if (!probe_need_header(c, 79, "vmdk", error))
        return FALSE;
    version = rd_le32(h + 4);
    if (version > 3) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "vmdk version %u is invalid: must be at most 3", version);
        return FALSE;
    }
    if (!probe_sectors(rd_le64(h + 12), "vmdk capacity", &p->capacity, error))
        return FALSE;

    /* The embedded descriptor only matters for the parent name; one that
     * is missing, huge or unreadable simply leaves it unknown. */
    desc_off = rd_le64(h + 28);
    desc_size = rd_le64(h + 36);
    if (desc_off != 0 && desc_size != 0 &&
        desc_off <= G_MAXUINT64 / 512) {
        gsize len = (gsize)MIN(desc_size, (guint64)(4096 / 512)) * 512;
        g_autofree char *desc = g_malloc(len);

        if (probe_fetch(c, desc_off * 512, len, desc, "vmdk descriptor", NULL))
            p->backing = vmdk_descriptor_parent(desc, len);
    }
    p->format = GFPOOL_FORMAT_VMDK;
    return TRUE;
}

/* ESX "COWD" sparse extents (VMDK3Header): sectors at offset 12. */
static gboolean
probe_vmdk3(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    if (!probe_need_header(c, 16, "vmdk", error))
        return FALSE;
    p->capacity = (guint64)rd_le32(c->header + 12) * 512;
    p->format = GFPOOL_FORMAT_VMDK;
    return TRUE;
}

#define VDI_SIGNATURE 0xbeda107fu
#define VDI_VERSION_1_1 0x00010001u

static gboolean
probe_vdi(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    guint32 version = rd_le32(c->header + 0x44);
    guint64 disk_size;

    if (!probe_need_header(c, 0x178, "vdi", error))
        return FALSE;
    if (version != VDI_VERSION_1_1) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "vdi version 0x%08x is invalid: QEMU supports only 1.1 "
                    "(0x%08x)", version, VDI_VERSION_1_1);
        return FALSE;
    }
    disk_size = rd_le64(c->header + 0x170);
    if (disk_size > (guint64)G_MAXINT64) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "vdi disk size %" G_GUINT64_FORMAT " is invalid: must be "
                    "below 2^63", disk_size);
        return FALSE;
    }
    p->capacity = disk_size;
    p->format = GFPOOL_FORMAT_VDI;
    return TRUE;
}

/* VHD footer (block/vpc.c VHDFooter), 512 bytes big-endian. */
#define VHD_FOOTER_SIZE 512
#define VHD_MAX_GEOMETRY (65535ULL * 16 * 255)

static gboolean
probe_vpc(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    const guint8 *f = c->header;
    guint32 sum = 0, checksum;
    guint64 sectors, current_size;
    gboolean use_chs;

    if (!probe_need_header(c, VHD_FOOTER_SIZE, "vpc", error))
        return FALSE;
    checksum = rd_be32(f + 64);
    for (gsize i = 0; i < VHD_FOOTER_SIZE; i++) {
        if (i < 64 || i >= 68)
            sum += f[i];
    }
    if (~sum != checksum) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "vpc footer checksum 0x%08x is invalid: the footer sums "
                    "to 0x%08x", checksum, ~sum);
        return FALSE;
    }

    /* QEMU's vpc_open(): Virtual PC and old QEMU size the disk by its CHS
     * geometry, Hyper-V and friends by current_size. */
    sectors = (guint64)rd_be16(f + 56) * f[58] * f[59];
    use_chs = memcmp(f + 28, "win ", 4) != 0 &&
              memcmp(f + 28, "qem2", 4) != 0 &&
              memcmp(f + 28, "d2v ", 4) != 0 &&
              memcmp(f + 28, "CTXS", 4) != 0 &&
              memcmp(f + 28, "tap", 4) != 0;   /* "tap\0" */
    current_size = rd_be64(f + 48);
    if (!use_chs || sectors == VHD_MAX_GEOMETRY) {
        if (current_size > (guint64)G_MAXINT64) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "vpc current size %" G_GUINT64_FORMAT " is invalid: "
                        "must be below 2^63", current_size);
            return FALSE;
        }
        sectors = current_size / 512;
    }
    p->capacity = sectors * 512;
    p->format = GFPOOL_FORMAT_VPC;
    return TRUE;
}

/* VHDX keeps the virtual size in a metadata item a few MiB into the file.
 * GUIDs are as stored on disk (first three fields little-endian). */
static const guint8 vhdx_metadata_region_guid[16] = {
    0x06, 0xa2, 0x7c, 0x8b, 0x90, 0x47, 0x9a, 0x4b,
    0xb8, 0xfe, 0x57, 0x5f, 0x05, 0x0f, 0x88, 0x6e
};
static const guint8 vhdx_virtual_size_guid[16] = {
    0x24, 0x42, 0xa5, 0x2f, 0x1b, 0xcd, 0x76, 0x48,
    0xb2, 0x11, 0x5d, 0xbe, 0xd8, 0x3b, 0xf4, 0xb8
};
#define VHDX_REGION_TABLE_OFFSET (192 * 1024)
#define VHDX_MAX_ENTRIES 2047
#define VHDX_ENTRY_SIZE 32

/*
 * Scan count 32-byte entries at off for guid, reading them in small batches
 * so a large (but legal) count costs only what is actually scanned.
 */
static gboolean
vhdx_find_entry(ProbeCtx *c, guint64 off, guint32 count, const guint8 *guid,
                guint8 *entry)
{
    guint8 batch[8 * VHDX_ENTRY_SIZE];

    for (guint32 i = 0; i < count;) {
        guint32 n = MIN(count - i, (guint32)sizeof(batch) / VHDX_ENTRY_SIZE);

        if (!probe_fetch(c, off + (guint64)i * VHDX_ENTRY_SIZE,
                         (gsize)n * VHDX_ENTRY_SIZE, batch, "vhdx table", NULL))
            return FALSE;
        for (guint32 j = 0; j < n; j++) {
            if (memcmp(batch + j * VHDX_ENTRY_SIZE, guid, 16) == 0) {
                memcpy(entry, batch + j * VHDX_ENTRY_SIZE, VHDX_ENTRY_SIZE);
                return TRUE;
            }
        }
        i += n;
    }
    return FALSE;
}

/* Best effort: the "vhdxfile" signature identifies the format on its own,
 * so a size we cannot find is reported as 0 rather than as corruption. */
static guint64
vhdx_capacity(ProbeCtx *c)
{
    guint8 rt[16], md[32], entry[VHDX_ENTRY_SIZE], size[8];
    guint32 count;
    guint64 region_off, item_off, capacity;

    if (!probe_fetch(c, VHDX_REGION_TABLE_OFFSET, sizeof(rt), rt,
                     "vhdx region table", NULL) ||
        memcmp(rt, "regi", 4) != 0)
        return 0;
    count = rd_le32(rt + 8);
    if (count > VHDX_MAX_ENTRIES ||
        !vhdx_find_entry(c, VHDX_REGION_TABLE_OFFSET + sizeof(rt), count,
                         vhdx_metadata_region_guid, entry))
        return 0;
    region_off = rd_le64(entry + 16);

    if (!probe_fetch(c, region_off, sizeof(md), md, "vhdx metadata table",
                     NULL) ||
        memcmp(md, "metadata", 8) != 0)
        return 0;
    count = rd_le16(md + 10);
    /* the table header leaves room for at most 2047 entries */
    if (count > VHDX_MAX_ENTRIES ||
        !vhdx_find_entry(c, region_off + sizeof(md), count,
                         vhdx_virtual_size_guid, entry))
        return 0;
    if (rd_le32(entry + 20) < sizeof(size))
        return 0;
    item_off = rd_le32(entry + 16);
    if (item_off > G_MAXUINT64 - region_off ||
        !probe_fetch(c, region_off + item_off, sizeof(size), size,
                     "vhdx virtual disk size", NULL))
        return 0;
    capacity = rd_le64(size);
    return capacity <= (guint64)G_MAXINT64 ? capacity : 0;
}

static gboolean
probe_vhdx(ProbeCtx *c, GfpoolProbe *p, GError **error G_GNUC_UNUSED)
{
    p->capacity = vhdx_capacity(c);
    p->format = GFPOOL_FORMAT_VHDX;
    return TRUE;
}

#define ISO_MAGIC_OFFSET 0x8001

static gboolean
probe_is_iso(ProbeCtx *c)
{
    char magic[5];

    return probe_fetch(c, ISO_MAGIC_OFFSET, sizeof(magic), magic,
                       "iso volume descriptor", NULL) &&
           memcmp(magic, "CD001", sizeof(magic)) == 0;
}

static gboolean
has_magic(ProbeCtx *c, gsize off, const char *magic, gsize len)
{
    return c->header_len >= len && off <= c->header_len - len &&
           memcmp(c->header + off, magic, len) == 0;
}

void
gfpool_image_probe(const guint8 *header, gsize header_len, guint64 file_size,
                   GfpoolReadFunc read_fn, void *opaque, GfpoolProbe *p)
{
    g_autoptr(GError) err = NULL;
    const char *name = NULL;
    gboolean ok = TRUE;
    ProbeCtx c = {
        .header = header,
        /* bytes past the end of the file are not the file's */
        .header_len = header ? (gsize)MIN((guint64)header_len, file_size) : 0,
        .file_size = file_size,
        .read_fn = read_fn,
        .opaque = opaque,
    };

    c.budget = PROBE_READ_LIMIT - MIN(c.header_len, (gsize)PROBE_READ_LIMIT);
    memset(p, 0, sizeof(*p));

    if (has_magic(&c, 0, QCOW_MAGIC, 4)) {
        guint32 version = c.header_len >= 8 ? rd_be32(header + 4) : 0;

        if (version == 2 || version == 3) {
            name = "qcow2";
            ok = probe_qcow2(&c, version, p, &err);
        } else if (version == 1) {
            name = "qcow";
            ok = probe_qcow(&c, p, &err);
        } else {
            name = "qcow";
            ok = FALSE;
            if (c.header_len < 8)
                g_set_error(&err, GFPOOL_IMAGE_ERROR,
                            GFPOOL_IMAGE_ERROR_CORRUPT,
                            "qcow header truncated: %" G_GSIZE_FORMAT " bytes "
                            "available, the version needs 8", c.header_len);
            else
                g_set_error(&err, GFPOOL_IMAGE_ERROR,
                            GFPOOL_IMAGE_ERROR_CORRUPT,
                            "qcow version %u is invalid: must be 1, 2 or 3",
                            version);
        }
    } else if (has_magic(&c, 0, "QED\0", 4)) {
        name = "qed";
        ok = probe_qed(&c, p, &err);
    } else if (has_magic(&c, 0, "KDMV", 4)) {
        name = "vmdk";
        ok = probe_vmdk_sparse(&c, p, &err);
    } else if (has_magic(&c, 0, "COWD", 4)) {
        name = "vmdk";
        ok = probe_vmdk3(&c, p, &err);
    } else if (has_magic(&c, 0, "# Disk DescriptorFile", 21)) {
        name = "vmdk";
        ok = probe_vmdk_descriptor(&c, p, &err);
    } else if (c.header_len >= 0x48 &&
               rd_le32(header + 0x40) == VDI_SIGNATURE) {
        name = "vdi";
        ok = probe_vdi(&c, p, &err);
    } else if (has_magic(&c, 0, "vhdxfile", 8)) {
        name = "vhdx";
        ok = probe_vhdx(&c, p, &err);
    } else if (has_magic(&c, 0, "conectix", 8)) {
        name = "vpc";
        ok = probe_vpc(&c, p, &err);
    } else if (probe_is_iso(&c)) {
        p->format = GFPOOL_FORMAT_ISO;
        p->capacity = file_size;
    } else {
        p->format = GFPOOL_FORMAT_RAW;
        p->capacity = file_size;
    }

    if (!ok) {
        /* The signature's format stays: taken as raw, a corrupt qcow2
         * would be truncated by a resize, handed whole (metadata and all)
         * to a guest, overwritten by an upload. Nothing else of a
         * half-parsed header stays, a backing name least of all: that is
         * exactly what a guest-written header would want. */
        int found = gfpool_format_from_string(name);

        gfpool_probe_clear(p);
        p->format = found >= 0 ? (GfpoolFormat)found : GFPOOL_FORMAT_RAW;
        p->capacity = file_size;
        p->corrupt = TRUE;
        p->warning = g_strdup_printf("unusable %s image: %s", name,
                                     err ? err->message : "unknown error");
    }
}


/* ---- qcow2 creation ----------------------------------------------------- */

/* Bounded buffer for streamed tables: a multiple of every cluster size. */
#define WRITE_CHUNK (2u * 1024 * 1024)

/*
 * Write count big-endian 64-bit entries at off, entry i being
 * (base + i * step) | flags: the shape of every table we write (refcount
 * table, L1, L2), so one streaming loop serves all of them.
 */
static gboolean
write_entries(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
              guint64 count, guint64 base, guint64 step, guint64 flags,
              GError **error)
{
    g_autofree guint8 *buf = g_malloc(MIN(count * 8, (guint64)WRITE_CHUNK));
    guint64 i = 0;

    while (i < count) {
        gsize n = (gsize)MIN(count - i, (guint64)WRITE_CHUNK / 8);

        for (gsize j = 0; j < n; j++)
            wr_be64(buf + j * 8, (base + (i + j) * step) | flags);
        if (!write_fn(opaque, off + i * 8, buf, n * 8, error))
            return FALSE;
        i += n;
    }
    return TRUE;
}

/* count 16-bit refcounts of 1, contiguous from off */
static gboolean
write_refcounts(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
                guint64 count, GError **error)
{
    gsize cap = (gsize)MIN(count * 2, (guint64)WRITE_CHUNK);
    g_autofree guint8 *buf = g_malloc(cap);
    guint64 i = 0;

    for (gsize j = 0; j < cap; j += 2)
        wr_be16(buf + j, 1);
    while (i < count) {
        gsize n = (gsize)MIN(count - i, (guint64)cap / 2);

        if (!write_fn(opaque, off + i * 2, buf, n * 2, error))
            return FALSE;
        i += n;
    }
    return TRUE;
}

static guint64
div_round_up(guint64 a, guint64 b)
{
    return a / b + (a % b != 0);
}

typedef struct {
    guint64 cluster_size;
    guint64 capacity;           /* rounded up to 512 */
    guint64 l1_size;            /* entries */
    guint64 reftable_clusters;
    guint64 refblocks;
    guint64 l1_clusters;
    guint64 l2_tables;          /* prealloc or allocated ranges */
    guint64 data_clusters;      /* prealloc or allocated ranges */
    guint64 total_clusters;
    /* cluster indexes of each area, in file order */
    guint64 reftable_start, refblock_start, l1_start, l2_start, data_start;
} Qcow2Layout;

/*
 * Cluster 0 header, refcount table, refcount blocks, L1, then the L2 tables
 * and data clusters asked for (all of them with prealloc). The refcount
 * structures must count themselves, so grow them until they cover every
 * cluster including their own.
 */
static gboolean
qcow2_layout(Qcow2Layout *l, guint64 capacity, guint64 cluster_size,
             guint64 l2_tables, guint64 data_clusters, GError **error)
{
    guint64 per_l2 = cluster_size / 8;
    guint64 per_refblock = cluster_size / 2;  /* refcount_order 4 */

    l->cluster_size = cluster_size;
    l->capacity = capacity;
    l->l1_size = div_round_up(capacity, cluster_size * per_l2);
    l->l1_clusters = div_round_up(l->l1_size * 8, cluster_size);
    l->l2_tables = l2_tables;
    l->data_clusters = data_clusters;
    l->reftable_clusters = 1;
    l->refblocks = 0;

    for (;;) {
        guint64 total = 1 + l->reftable_clusters + l->refblocks +
                        l->l1_clusters + l->l2_tables + l->data_clusters;
        guint64 rb = div_round_up(total, per_refblock);
        guint64 rt = div_round_up(rb * 8, cluster_size);

        if (rb == l->refblocks && rt == l->reftable_clusters) {
            l->total_clusters = total;
            break;
        }
        /* both only grow, so this converges in a few rounds */
        l->refblocks = MAX(rb, l->refblocks);
        l->reftable_clusters = MAX(rt, l->reftable_clusters);
    }

    if (l->reftable_clusters * cluster_size > QCOW2_MAX_REFTABLE_BYTES ||
        l->total_clusters > QCOW2_MAX_FILE_SIZE / cluster_size) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "capacity %" G_GUINT64_FORMAT " with %" G_GUINT64_FORMAT
                    " allocated data clusters is invalid: its %"
                    G_GUINT64_FORMAT " clusters of %" G_GUINT64_FORMAT
                    " bytes need a refcount table over QEMU's 8 MiB limit or "
                    "offsets past 2^56; use a larger cluster size",
                    capacity, data_clusters, l->total_clusters,
                    cluster_size);
        return FALSE;
    }

    l->reftable_start = 1;
    l->refblock_start = l->reftable_start + l->reftable_clusters;
    l->l1_start = l->refblock_start + l->refblocks;
    l->l2_start = l->l1_start + l->l1_clusters;
    l->data_start = l->l2_start + l->l2_tables;
    return TRUE;
}

static gboolean
qcow2_validate(const GfpoolQcow2Params *params, guint32 cluster_size,
               GError **error)
{
    guint64 max;

    if (cluster_size < 512 || cluster_size > 2 * 1024 * 1024 ||
        (cluster_size & (cluster_size - 1))) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "cluster size %u is invalid: must be a power of two "
                    "between 512 and 2097152 bytes", cluster_size);
        return FALSE;
    }
    if (params->capacity == 0) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "capacity 0 is invalid: must be at least 512 bytes");
        return FALSE;
    }
    max = gfpool_qcow2_max_capacity(cluster_size);
    if (params->capacity > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "capacity %" G_GUINT64_FORMAT " is invalid: must be at "
                    "most %" G_GUINT64_FORMAT " bytes with %u-byte clusters "
                    "(QEMU's 32 MiB L1 table limit)",
                    params->capacity, max, cluster_size);
        return FALSE;
    }
    if (params->backing) {
        gsize len = strlen(params->backing);

        if (len == 0) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "backing file name \"\" is invalid: must not be empty");
            return FALSE;
        }
        if (len > QCOW_BACKING_MAX) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "backing file name of %" G_GSIZE_FORMAT " bytes is "
                        "invalid: must be at most %d bytes",
                        len, QCOW_BACKING_MAX);
            return FALSE;
        }
    }
    if (params->backing_format != GFPOOL_FORMAT_NONE) {
        if (!params->backing) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "backing format %d is invalid without a backing file",
                        (int)params->backing_format);
            return FALSE;
        }
        if ((unsigned)params->backing_format >= GFPOOL_FORMAT_LAST ||
            params->backing_format == GFPOOL_FORMAT_ISO) {
            /* "iso" is libvirt's name; QEMU knows no such driver */
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "backing format %d is invalid: must be a format QEMU "
                        "can open", (int)params->backing_format);
            return FALSE;
        }
    }
    return TRUE;
}

/*
 * Cluster 0: header, extensions and the backing name right after them, as
 * QEMU's qcow2_update_header() lays it out.
 */
static gboolean
qcow2_header(const GfpoolQcow2Params *params, const Qcow2Layout *l,
             guint8 *buf, GError **error)
{
    guint64 cs = l->cluster_size;
    gsize off = QCOW2_HEADER_LEN_WRITTEN;
    gsize backing_len = params->backing ? strlen(params->backing) : 0;

    memcpy(buf, QCOW_MAGIC, 4);
    wr_be32(buf + 4, 3);
    wr_be32(buf + 20, g_bit_nth_lsf(cs, -1));
    wr_be64(buf + 24, l->capacity);
    wr_be32(buf + 36, (guint32)l->l1_size);
    wr_be64(buf + 40, l->l1_start * cs);
    wr_be64(buf + 48, l->reftable_start * cs);
    wr_be32(buf + 56, (guint32)l->reftable_clusters);
    wr_be32(buf + 96, 4);
    wr_be32(buf + 100, QCOW2_HEADER_LEN_WRITTEN);

    if (params->backing_format != GFPOOL_FORMAT_NONE) {
        const char *fmt = gfpool_format_to_string(params->backing_format);
        gsize len = strlen(fmt);

        wr_be32(buf + off, QCOW2_EXT_BACKING_FORMAT);
        wr_be32(buf + off + 4, (guint32)len);
        memcpy(buf + off + 8, fmt, len);
        off += 8 + ((len + 7) & ~(gsize)7);
    }
    off += 8;   /* end-of-extensions marker: all zero */

    if (backing_len) {
        if (backing_len > cs - off) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "backing file name of %" G_GSIZE_FORMAT " bytes is "
                        "invalid with %" G_GUINT64_FORMAT "-byte clusters: "
                        "must fit the %" G_GUINT64_FORMAT " bytes left in "
                        "the header cluster", backing_len, cs, cs - off);
            return FALSE;
        }
        wr_be64(buf + 8, off);
        wr_be32(buf + 16, (guint32)backing_len);
        memcpy(buf + off, params->backing, backing_len);
    }
    return TRUE;
}

/*
 * The clusters of the allocate ranges, merged: ranges may share a cluster
 * at their ends once widened to whole clusters, so each call yields the
 * next span [*c0, *c1) of clusters not yielded before, in guest order.
 */
typedef struct {
    const GfpoolRange *r;
    gsize n, i;
    unsigned bits;              /* cluster_bits */
    guint64 next;               /* first cluster not yet yielded */
} SpanIter;

static gboolean
span_next(SpanIter *it, guint64 *c0, guint64 *c1)
{
    while (it->i < it->n) {
        const GfpoolRange *r = &it->r[it->i++];
        /* validated: offset + length <= capacity <= 2^61 */
        guint64 a = r->offset >> it->bits;
        guint64 b = (r->offset + r->length + (G_GUINT64_CONSTANT(1) << it->bits)
                     - 1) >> it->bits;

        a = MAX(a, it->next);
        if (b <= a)
            continue;
        *c0 = a;
        *c1 = b;
        it->next = b;
        return TRUE;
    }
    return FALSE;
}

/*
 * Check the allocate ranges against the (rounded) capacity and count the
 * data clusters and L2 tables they need.
 */
static gboolean
qcow2_plan_ranges(const GfpoolQcow2Params *params, guint64 capacity,
                  unsigned bits, guint64 *n_data, guint64 *n_l2,
                  GError **error)
{
    SpanIter it = { params->allocate, params->n_allocate, 0, bits, 0 };
    unsigned l2_bits = bits - 3;
    guint64 c0, c1, next_table = 0;

    if (params->n_allocate && !params->allocate) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "%" G_GSIZE_FORMAT " allocate ranges are invalid without "
                    "an array", params->n_allocate);
        return FALSE;
    }
    for (gsize i = 0; i < params->n_allocate; i++) {
        const GfpoolRange *r = &params->allocate[i];

        if (r->length == 0 || r->offset > capacity ||
            r->length > capacity - r->offset) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "allocate range %" G_GSIZE_FORMAT " (offset %"
                        G_GUINT64_FORMAT ", length %" G_GUINT64_FORMAT
                        ") is invalid: must be non-empty and end within the "
                        "capacity %" G_GUINT64_FORMAT,
                        i, r->offset, r->length, capacity);
            return FALSE;
        }
        if (i > 0 && r->offset < params->allocate[i - 1].offset +
                                     params->allocate[i - 1].length) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "allocate range %" G_GSIZE_FORMAT " (offset %"
                        G_GUINT64_FORMAT ") is invalid: ranges must be sorted "
                        "and must not overlap", i, r->offset);
            return FALSE;
        }
    }

    *n_data = *n_l2 = 0;
    while (span_next(&it, &c0, &c1)) {
        guint64 t0 = MAX(c0 >> l2_bits, next_table);
        guint64 t1 = ((c1 - 1) >> l2_bits) + 1;

        *n_data += c1 - c0;
        if (t1 > t0)
            *n_l2 += t1 - t0;
        next_table = MAX(next_table, t1);
    }
    return TRUE;
}

/*
 * Where each allocate range's first byte lives: data clusters are laid out
 * in guest order from data_start, so a range's clusters are one host run.
 */
static void
qcow2_range_runs(const GfpoolQcow2Params *params, const Qcow2Layout *l,
                 unsigned bits, GfpoolExtent *runs)
{
    guint64 cs = l->cluster_size, rank = 0, end = 0;

    for (gsize i = 0; i < params->n_allocate; i++) {
        const GfpoolRange *r = &params->allocate[i];
        guint64 a = r->offset >> bits;
        guint64 b = (r->offset + r->length + cs - 1) >> bits;
        /* sorted and disjoint: a shares at most the previous last cluster */
        guint64 first = a < end ? rank - (end - a) : rank;
        guint64 host;

        if (params->prealloc_metadata)
            host = l->data_start * cs + r->offset;
        else
            host = (l->data_start + first) * cs + (r->offset & (cs - 1));
        rank += b > MAX(a, end) ? b - MAX(a, end) : 0;
        end = MAX(end, b);
        runs[i] = (GfpoolExtent) { .guest_off = r->offset,
                                   .len = r->length,
                                   .kind = GFPOOL_EXTENT_DATA,
                                   .host_off = host };
    }
}

/*
 * L1 and L2 entries for the allocate ranges. The file is new and sparse, so
 * only non-zero entries are written: L1 in runs of consecutive tables, each
 * touched L2 table whole, from one cluster-sized buffer.
 */
static gboolean
qcow2_write_ranges(const GfpoolQcow2Params *params, const Qcow2Layout *l,
                   unsigned bits, GfpoolWriteFunc write_fn, void *opaque,
                   GError **error)
{
    guint64 cs = l->cluster_size, per_l2 = cs / 8;
    SpanIter it = { params->allocate, params->n_allocate, 0, bits, 0 };
    g_autofree guint8 *l2 = NULL;
    guint64 c0, c1, cur = G_MAXUINT64, next_l2 = 0, next_data = 0;
    guint64 run_start = 0, run_len = 0, run_base = 0;

    if (params->n_allocate == 0)
        return TRUE;
    l2 = g_malloc0(cs);

    while (span_next(&it, &c0, &c1)) {
        for (guint64 c = c0; c < c1;) {
            guint64 t = c / per_l2;
            guint64 stop = MIN(c1, (t + 1) * per_l2);

            if (t != cur) {
                /* flush the previous table, start this one */
                if (cur != G_MAXUINT64 &&
                    !write_fn(opaque, (l->l2_start + next_l2 - 1) * cs, l2, cs,
                              error))
                    return FALSE;
                memset(l2, 0, cs);
                /* extend the L1 run, or write it and start a new one */
                if (run_len && t != run_start + run_len) {
                    if (!write_entries(write_fn, opaque,
                                       l->l1_start * cs + run_start * 8,
                                       run_len, run_base, cs,
                                       QCOW2_OFLAG_COPIED, error))
                        return FALSE;
                    run_len = 0;
                }
                if (!run_len) {
                    run_start = t;
                    run_base = (l->l2_start + next_l2) * cs;
                }
                run_len++;
                next_l2++;
                cur = t;
            }
            for (; c < stop; c++)
                wr_be64(l2 + (c - t * per_l2) * 8,
                        ((l->data_start + next_data++) * cs) |
                        QCOW2_OFLAG_COPIED);
        }
    }
    if (cur != G_MAXUINT64 &&
        !write_fn(opaque, (l->l2_start + next_l2 - 1) * cs, l2, cs, error))
        return FALSE;
    if (run_len &&
        !write_entries(write_fn, opaque, l->l1_start * cs + run_start * 8,
                       run_len, run_base, cs, QCOW2_OFLAG_COPIED, error))
        return FALSE;
    return TRUE;
}

gboolean
gfpool_qcow2_create_allocated(const GfpoolQcow2Params *params,
                              GfpoolWriteFunc write_fn, void *opaque,
                              GfpoolExtent *runs, guint64 *file_size,
                              GError **error)
{
    guint32 cluster_size = params->cluster_size ? params->cluster_size : 65536;
    g_autofree guint8 *header = NULL;
    Qcow2Layout l = { 0 };
    guint64 cs, capacity, n_data = 0, n_l2 = 0;
    unsigned bits;

    if (!qcow2_validate(params, cluster_size, error))
        return FALSE;
    cs = cluster_size;
    bits = g_bit_nth_lsf(cs, -1);
    /* QEMU rounds the size up to whole sectors; the max is sector aligned,
     * so this cannot pass it. */
    capacity = (params->capacity + 511) & ~G_GUINT64_CONSTANT(511);

    if (!qcow2_plan_ranges(params, capacity, bits, &n_data, &n_l2, error))
        return FALSE;
    if (params->prealloc_metadata) {
        n_l2 = div_round_up(capacity, cs * (cs / 8));
        n_data = div_round_up(capacity, cs);
    }
    if (!qcow2_layout(&l, capacity, cs, n_l2, n_data, error))
        return FALSE;

    header = g_malloc0(cs);
    if (!qcow2_header(params, &l, header, error) ||
        !write_fn(opaque, 0, header, cs, error))
        return FALSE;

    /* every cluster in use has refcount 1; they are all contiguous */
    if (!write_entries(write_fn, opaque, l.reftable_start * cs, l.refblocks,
                       l.refblock_start * cs, cs, 0, error) ||
        !write_refcounts(write_fn, opaque, l.refblock_start * cs,
                         l.total_clusters, error))
        return FALSE;

    /* Refcount 1 means the COPIED flag must be set, or qemu-img check
     * reports every entry. Without prealloc or ranges L1 stays zero: the
     * caller's truncate provides it. */
    if (params->prealloc_metadata) {
        if (!write_entries(write_fn, opaque, l.l1_start * cs, l.l1_size,
                           l.l2_start * cs, cs, QCOW2_OFLAG_COPIED, error) ||
            !write_entries(write_fn, opaque, l.l2_start * cs, l.data_clusters,
                           l.data_start * cs, cs, QCOW2_OFLAG_COPIED, error))
            return FALSE;
    } else if (!qcow2_write_ranges(params, &l, bits, write_fn, opaque,
                                   error)) {
        return FALSE;
    }

    if (runs)
        qcow2_range_runs(params, &l, bits, runs);
    *file_size = l.total_clusters * cs;
    return TRUE;
}

gboolean
gfpool_qcow2_create(const GfpoolQcow2Params *params,
                    GfpoolWriteFunc write_fn, void *opaque,
                    guint64 *file_size, GError **error)
{
    return gfpool_qcow2_create_allocated(params, write_fn, opaque, NULL,
                                         file_size, error);
}


/* ---- existing qcow2 images: map and resize ------------------------------ */

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

/* Read exactly len bytes at off, which must lie inside the file. */
static gboolean
img_read(const Qcow2Image *q, guint64 off, void *buf, gsize len,
         const char *what, GError **error)
{
    if (!within_file(q->file_size, off, len, what, error))
        return FALSE;
    return read_exact(q->read_fn, q->opaque, off, buf, len, what, error);
}

/*
 * Validate the image with the prober (header fields, extensions, backing
 * name), then take the fields map and resize need, refusing the features
 * both would get wrong.
 */
static gboolean
qcow2_open(Qcow2Image *q, const guint8 *header, gsize header_len,
           guint64 file_size, GfpoolReadFunc read_fn, void *opaque,
           GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };
    const guint8 *h = header;
    guint32 version;

    memset(q, 0, sizeof(*q));
    if (!read_fn) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "a reader is required to walk qcow2 tables");
        return FALSE;
    }
    gfpool_image_probe(header, header_len, file_size, read_fn, opaque, &p);
    if (p.format != GFPOOL_FORMAT_QCOW2 || p.corrupt) {
        if (p.corrupt)
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "%s", p.warning);
        else
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                        "image is not qcow2: it probes as %s",
                        gfpool_format_to_string(p.format));
        return FALSE;
    }

    /* the prober checked that the version's header is inside header[] */
    version = rd_be32(h + 4);
    q->read_fn = read_fn;
    q->opaque = opaque;
    q->file_size = file_size;
    memcpy(q->fields, h + 24, sizeof(q->fields));
    q->cluster_bits = rd_be32(h + 20);
    q->cluster_size = G_GUINT64_CONSTANT(1) << q->cluster_bits;
    q->size = rd_be64(h + 24);
    q->crypt_method = rd_be32(h + 32);
    q->l1_size = rd_be32(h + 36);
    q->l1_off = rd_be64(h + 40);
    q->rt_off = rd_be64(h + 48);
    q->rt_clusters = rd_be32(h + 56);
    q->nb_snapshots = rd_be32(h + 60);
    q->refcount_order = 4;
    if (version >= 3) {
        q->incompat = rd_be64(h + 72);
        q->autoclear = rd_be64(h + 88);
        q->refcount_order = rd_be32(h + 96);
    }
    q->backing = p.backing != NULL;

    if (q->incompat & ~QCOW2_INCOMPAT_KNOWN) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 incompatible features 0x%016" G_GINT64_MODIFIER "x "
                    "include unknown bits 0x%016" G_GINT64_MODIFIER "x",
                    q->incompat, q->incompat & ~QCOW2_INCOMPAT_KNOWN);
        return FALSE;
    }
    if (q->incompat & QCOW2_INCOMPAT_CORRUPT) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 image is marked corrupt: repair it with "
                    "qemu-img check -r all first");
        return FALSE;
    }
    if (q->incompat & QCOW2_INCOMPAT_DATA_FILE) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with an external data file are not "
                    "supported");
        return FALSE;
    }
    if (q->incompat & QCOW2_INCOMPAT_EXTL2) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with extended L2 entries (subclusters) are "
                    "not supported");
        return FALSE;
    }
    return TRUE;
}

/* ---- map ---- */

typedef struct {
    GfpoolExtentFunc cb;
    void *opaque;
    GfpoolExtent cur;           /* pending, len 0 = none */
} ExtentSink;

/* Coalesce e into the pending extent or hand the pending one over. */
static gboolean
sink_add(ExtentSink *s, guint64 guest_off, guint64 len, GfpoolExtentKind kind,
         guint64 host_off, GError **error)
{
    GfpoolExtent *c = &s->cur;

    if (c->len && c->kind == kind && c->guest_off + c->len == guest_off &&
        (kind != GFPOOL_EXTENT_DATA || c->host_off + c->len == host_off)) {
        c->len += len;
        return TRUE;
    }
    if (c->len && !s->cb(s->opaque, c, error))
        return FALSE;
    *c = (GfpoolExtent) { guest_off, len, kind,
                          kind == GFPOOL_EXTENT_DATA ? host_off : 0 };
    return TRUE;
}

/* One L2 table: the clusters of guest [guest, guest + span). */
static gboolean
map_l2(const Qcow2Image *q, ExtentSink *s, const guint8 *l2, guint64 l1_index,
       guint64 guest, guint64 span, GfpoolExtentKind unalloc, GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 n = div_round_up(span, cs);

    for (guint64 j = 0; j < n; j++) {
        guint64 e = rd_be64(l2 + j * 8);
        guint64 off = e & QCOW2_ENTRY_OFFSET_MASK;
        guint64 g = guest + j * cs;
        guint64 len = MIN(cs, guest + span - g);
        GfpoolExtentKind kind = GFPOOL_EXTENT_DATA;

        if (e & QCOW2_OFLAG_COMPRESSED) {
            g_set_error(error, GFPOOL_IMAGE_ERROR,
                        GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "qcow2 cluster at guest offset %" G_GUINT64_FORMAT
                        " is compressed: compressed clusters are not "
                        "supported", g);
            return FALSE;
        }
        /* the order of QEMU's qcow2_get_cluster_type() */
        if (e & QCOW2_OFLAG_ZERO)
            kind = GFPOOL_EXTENT_ZERO;
        else if (off == 0)
            kind = unalloc;

        /* QEMU refuses unaligned offsets for zero clusters too */
        if (off & (cs - 1)) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 L2 entry %" G_GUINT64_FORMAT " of L1 entry %"
                        G_GUINT64_FORMAT " (guest offset %" G_GUINT64_FORMAT
                        ") is invalid: host offset %" G_GUINT64_FORMAT
                        " is not a multiple of the cluster size %"
                        G_GUINT64_FORMAT, j, l1_index, g, off, cs);
            return FALSE;
        }
        /* the guest-visible bytes must be in the file, so a caller can copy
         * the whole extent */
        if (kind == GFPOOL_EXTENT_DATA &&
            (len > q->file_size || off > q->file_size - len)) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 L2 entry %" G_GUINT64_FORMAT " of L1 entry %"
                        G_GUINT64_FORMAT " (guest offset %" G_GUINT64_FORMAT
                        ") is invalid: data cluster at host offset %"
                        G_GUINT64_FORMAT " lies past the end of the %"
                        G_GUINT64_FORMAT "-byte file",
                        j, l1_index, g, off, q->file_size);
            return FALSE;
        }
        if (!sink_add(s, g, len, kind, off, error))
            return FALSE;
    }
    return TRUE;
}

gboolean
gfpool_qcow2_map(const guint8 *header, gsize header_len, guint64 file_size,
                 GfpoolReadFunc read_fn, void *opaque, GfpoolExtentFunc cb,
                 void *cb_opaque, GError **error)
{
    g_autofree guint8 *l1 = NULL;
    g_autofree guint8 *l2 = NULL;
    ExtentSink sink = { cb, cb_opaque, { 0 } };
    Qcow2Image q;
    GfpoolExtentKind unalloc;
    guint64 cs, l1_span, l1_needed, chunk, l2_budget;

    if (!qcow2_open(&q, header, header_len, file_size, read_fn, opaque, error))
        return FALSE;
    if (q.crypt_method != 0) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "encrypted qcow2 images (crypt_method %u) are not "
                    "supported", q.crypt_method);
        return FALSE;
    }
    cs = q.cluster_size;
    unalloc = q.backing ? GFPOOL_EXTENT_BACKING : GFPOOL_EXTENT_ZERO;
    l1_span = G_GUINT64_CONSTANT(1) << (2 * q.cluster_bits - 3);
    /* the prober checked l1_size covers size, so l1_needed <= l1_size */
    l1_needed = div_round_up(q.size, l1_span);
    if (l1_needed * 8 > file_size || q.l1_off > file_size - l1_needed * 8) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 L1 table at offset %" G_GUINT64_FORMAT " (%"
                    G_GUINT64_FORMAT " entries in use) lies past the end of "
                    "the %" G_GUINT64_FORMAT "-byte file",
                    q.l1_off, l1_needed, file_size);
        return FALSE;
    }
    /* Each L2 table of a valid image is a cluster of its own, so reading
     * more of them than the file holds means L1 entries share one: stop
     * there instead of letting a small file make us read terabytes. */
    l2_budget = file_size / cs;

    chunk = TABLE_CHUNK / 8;
    l1 = g_malloc(MIN(l1_needed, chunk) * 8 + 1);
    for (guint64 i = 0; i < l1_needed; i++) {
        guint64 e, l2_off, guest = i * l1_span;
        guint64 span = MIN(l1_span, q.size - guest);

        if (i % chunk == 0 &&
            !img_read(&q, q.l1_off + i * 8, l1,
                      (gsize)MIN(chunk, l1_needed - i) * 8, "qcow2 L1 table",
                      error))
            return FALSE;
        e = rd_be64(l1 + (i % chunk) * 8);
        l2_off = e & QCOW2_ENTRY_OFFSET_MASK;

        if (l2_off == 0) {
            if (!sink_add(&sink, guest, span, unalloc, 0, error))
                return FALSE;
            continue;
        }
        if ((l2_off & (cs - 1)) || cs > file_size ||
            l2_off > file_size - cs) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 L1 entry %" G_GUINT64_FORMAT " (guest offset %"
                        G_GUINT64_FORMAT ") is invalid: L2 table offset %"
                        G_GUINT64_FORMAT " must be a multiple of the cluster "
                        "size %" G_GUINT64_FORMAT " within the %"
                        G_GUINT64_FORMAT "-byte file",
                        i, guest, l2_off, cs, file_size);
            return FALSE;
        }
        if (l2_budget == 0) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 L1 entry %" G_GUINT64_FORMAT " is invalid: "
                        "the L1 table references more L2 tables than the %"
                        G_GUINT64_FORMAT "-byte file can hold", i, file_size);
            return FALSE;
        }
        l2_budget--;
        if (!l2)
            l2 = g_malloc(cs);
        if (!img_read(&q, l2_off, l2, cs, "qcow2 L2 table", error) ||
            !map_l2(&q, &sink, l2, i, guest, span, unalloc, error))
            return FALSE;
    }
    if (sink.cur.len && !cb(cb_opaque, &sink.cur, error))
        return FALSE;
    return TRUE;
}

/* ---- resize ---- */

/* Refcount i of a refcount block, 2^order bits each; sub-byte widths are
 * packed from the least significant bit, as QEMU's get_refcount_ro0..2. */
static guint64
rb_get(const guint8 *rb, unsigned order, guint64 i)
{
    switch (order) {
    case 0: case 1: case 2: {
        unsigned bits = 1u << order, per = 8 / bits;

        return (rb[i / per] >> (bits * (i % per))) & ((1u << bits) - 1);
    }
    case 3: return rb[i];
    case 4: return rd_be16(rb + i * 2);
    case 5: return rd_be32(rb + i * 4);
    default: return rd_be64(rb + i * 8);
    }
}

static void
rb_set(guint8 *rb, unsigned order, guint64 i, guint64 v)
{
    switch (order) {
    case 0: case 1: case 2: {
        unsigned bits = 1u << order, per = 8 / bits;
        unsigned shift = bits * (i % per), mask = ((1u << bits) - 1) << shift;

        rb[i / per] = (guint8)((rb[i / per] & ~mask) | ((v << shift) & mask));
        break;
    }
    case 3: rb[i] = (guint8)v; break;
    case 4: wr_be16(rb + i * 2, (guint16)v); break;
    case 5: wr_be32(rb + i * 4, (guint32)v); break;
    default: wr_be64(rb + i * 8, v); break;
    }
}

/* Refcount table entry idx (< rt entries) as a refcount block offset, 0 if
 * absent; CORRUPT when it is unaligned or not inside the file. */
static gboolean
reftable_entry(const Qcow2Image *q, guint64 idx, guint64 raw, guint64 *rb_off,
               GError **error)
{
    guint64 off = raw & QCOW2_REFT_OFFSET_MASK;
    guint64 cs = q->cluster_size;

    if (off != 0 &&
        ((off & (cs - 1)) || cs > q->file_size || off > q->file_size - cs)) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 refcount table entry %" G_GUINT64_FORMAT " is "
                    "invalid: refcount block offset %" G_GUINT64_FORMAT
                    " must be a multiple of the cluster size %"
                    G_GUINT64_FORMAT " within the %" G_GUINT64_FORMAT
                    "-byte file", idx, off, cs, q->file_size);
        return FALSE;
    }
    *rb_off = off;
    return TRUE;
}

static gboolean
reftable_get(const Qcow2Image *q, guint64 idx, guint64 *rb_off, GError **error)
{
    guint8 b[8];

    if (idx >= (guint64)q->rt_clusters * q->cluster_size / 8) {
        *rb_off = 0;
        return TRUE;
    }
    return img_read(q, q->rt_off + idx * 8, b, 8, "qcow2 refcount table",
                    error) &&
           reftable_entry(q, idx, rd_be64(b), rb_off, error);
}

/*
 * First cluster of free space at the end: past the file, and past any
 * cluster there that still has a refcount (leaked by a crash between a
 * refcount update and the data write). Reads the rest of the refcount
 * table in windows and at most RESIZE_MAX_TAIL_REFBLOCKS blocks.
 */
#define RESIZE_MAX_TAIL_REFBLOCKS 64

static gboolean
resize_first_free(const Qcow2Image *q, unsigned rb_bits, guint64 *first,
                  GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 rt_entries = (guint64)q->rt_clusters * cs / 8;
    guint64 n = div_round_up(q->file_size, cs);
    guint64 chunk = TABLE_CHUNK / 8;
    g_autofree guint8 *win = g_malloc(TABLE_CHUNK);
    g_autofree guint8 *rb = g_malloc(cs);
    unsigned blocks = 0;

    for (guint64 i = n >> rb_bits; i < rt_entries; i++) {
        guint64 rb_off;

        if ((i - (n >> rb_bits)) % chunk == 0 &&
            !img_read(q, q->rt_off + i * 8, win,
                      (gsize)MIN(chunk, rt_entries - i) * 8,
                      "qcow2 refcount table", error))
            return FALSE;
        if (!reftable_entry(q, i, rd_be64(win + ((i - (n >> rb_bits)) %
                                                 chunk) * 8),
                            &rb_off, error))
            return FALSE;
        if (!rb_off)
            continue;
        if (++blocks > RESIZE_MAX_TAIL_REFBLOCKS) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 refcount table is invalid: more than %d "
                        "refcount blocks describe clusters past the end of "
                        "the %" G_GUINT64_FORMAT "-byte file",
                        RESIZE_MAX_TAIL_REFBLOCKS, q->file_size);
            return FALSE;
        }
        if (!img_read(q, rb_off, rb, cs, "qcow2 refcount block", error))
            return FALSE;
        /* the last non-zero byte holds the last non-zero refcount */
        for (gsize b = cs; b-- > 0;) {
            guint64 per = q->refcount_order < 3 ? 8u >> q->refcount_order : 1;
            guint64 k;

            if (!rb[b])
                continue;
            if (q->refcount_order >= 3) {
                k = b >> (q->refcount_order - 3);
            } else {
                k = b * per + per - 1;
                while (rb_get(rb, q->refcount_order, k) == 0)
                    k--;
            }
            n = MAX(n, (i << rb_bits) + k + 1);
            break;
        }
    }
    *first = n;
    return TRUE;
}

/*
 * Add delta (+1 or -1) to the refcounts of clusters [c0, c1) in the
 * existing refcount block at rb_off covering clusters from base. A count
 * that is already 0 is left alone when freeing (the image was leaking, not
 * worth failing after the switch); allocating requires it to be 0.
 */
static gboolean
refblock_update(const Qcow2Image *q, GfpoolWriteFunc write_fn, guint8 *rb,
                guint64 rb_off, guint64 base, guint64 c0, guint64 c1,
                int delta, GError **error)
{
    guint64 max = q->refcount_order == 6
                      ? G_MAXUINT64
                      : (G_GUINT64_CONSTANT(1) << (1u << q->refcount_order)) - 1;

    if (!img_read(q, rb_off, rb, q->cluster_size, "qcow2 refcount block",
                  error))
        return FALSE;
    for (guint64 c = c0; c < c1; c++) {
        guint64 v = rb_get(rb, q->refcount_order, c - base);

        if (delta > 0) {
            if (v != 0) {
                g_set_error(error, GFPOOL_IMAGE_ERROR,
                            GFPOOL_IMAGE_ERROR_CORRUPT,
                            "qcow2 cluster %" G_GUINT64_FORMAT " past the "
                            "end of the file has refcount %" G_GUINT64_FORMAT
                            ", expected 0", c, v);
                return FALSE;
            }
            rb_set(rb, q->refcount_order, c - base, 1);
        } else if (v > 0 && v <= max) {
            rb_set(rb, q->refcount_order, c - base, v - 1);
        }
    }
    return write_fn(q->opaque, rb_off, rb, q->cluster_size, error);
}

/* Free clusters [c0, c1) (refcount - 1), one refcount block at a time. */
static gboolean
resize_free(const Qcow2Image *q, GfpoolWriteFunc write_fn, unsigned rb_bits,
            guint64 c0, guint64 c1, GError **error)
{
    g_autofree guint8 *rb = g_malloc(q->cluster_size);

    while (c0 < c1) {
        guint64 idx = c0 >> rb_bits, rb_off;
        guint64 stop = MIN(c1, (idx + 1) << rb_bits);

        if (!reftable_get(q, idx, &rb_off, error))
            return FALSE;
        if (rb_off &&
            !refblock_update(q, write_fn, rb, rb_off, idx << rb_bits, c0, stop,
                             -1, error))
            return FALSE;
        c0 = stop;
    }
    return TRUE;
}

/*
 * Copy old_len bytes of a table from old_off to new_off, zero-filling it up
 * to new_len, in bounded windows; ov (sorted, may be NULL) overrides some
 * 8-byte entries: the new refcount blocks in a moved refcount table.
 */
typedef struct {
    const guint64 *idx;         /* sorted entry indexes */
    const guint64 *val;
    gsize n;
} TableOverrides;

static gboolean
copy_table(const Qcow2Image *q, GfpoolWriteFunc write_fn, guint64 old_off,
           guint64 old_len, guint64 new_off, guint64 new_len,
           const TableOverrides *ov, const char *what, GError **error)
{
    g_autofree guint8 *buf = g_malloc(TABLE_CHUNK);
    gsize k = 0;

    for (guint64 pos = 0; pos < new_len; pos += TABLE_CHUNK) {
        gsize n = (gsize)MIN((guint64)TABLE_CHUNK, new_len - pos);

        memset(buf, 0, n);
        if (pos < old_len &&
            !img_read(q, old_off + pos, buf, (gsize)MIN((guint64)n,
                                                        old_len - pos),
                      what, error))
            return FALSE;
        for (; ov && k < ov->n && ov->idx[k] * 8 < pos + n; k++)
            wr_be64(buf + (ov->idx[k] * 8 - pos), ov->val[k]);
        if (!write_fn(q->opaque, new_off + pos, buf, n, error))
            return FALSE;
    }
    return TRUE;
}

/*
 * Write the header fields [24, 64): size, crypt method, L1 size/offset,
 * refcount table offset/clusters, snapshot count. One write, so the image
 * switches from the old tables to the new ones at once.
 */
static gboolean
resize_write_header(const Qcow2Image *q, GfpoolWriteFunc write_fn,
                    guint64 size, guint32 l1_size, guint64 l1_off,
                    guint64 rt_off, guint32 rt_clusters, GError **error)
{
    guint8 b[40];

    memcpy(b, q->fields, sizeof(b));
    wr_be64(b + 0, size);
    wr_be32(b + 12, l1_size);
    wr_be64(b + 16, l1_off);
    wr_be64(b + 24, rt_off);
    wr_be32(b + 32, rt_clusters);
    return write_fn(q->opaque, 24, b, sizeof(b), error);
}

/*
 * The L1 table outgrows its clusters: like QEMU's qcow2_grow_l1_table()
 * plus qcow2_refcount_area(), put the new L1, any refcount blocks the new
 * clusters need and, if those do not fit the refcount table, a larger
 * refcount table, in one area past everything in use; fill it; switch the
 * header; free the old L1 (and refcount table).
 */
static gboolean
resize_grow_l1(const Qcow2Image *q, GfpoolWriteFunc write_fn,
               guint64 new_size, guint64 new_l1, guint64 *new_file_size,
               GError **error)
{
    guint64 cs = q->cluster_size;
    unsigned rb_bits = q->cluster_bits + 3 - q->refcount_order;
    guint64 per_rb = G_GUINT64_CONSTANT(1) << rb_bits;
    guint64 rt_entries = (guint64)q->rt_clusters * cs / 8;
    guint64 old_l1_clusters = div_round_up((guint64)q->l1_size * 8, cs);
    guint64 n, l1c, nb = 0, nt = 0, total, r0, r1;
    g_autoptr(GArray) new_idx = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_autoptr(GArray) new_val = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_autofree guint8 *rb = g_malloc(cs);
    guint64 new_rt_off, new_rt_clusters;

    /* QEMU's overlap check refuses writes into the header cluster too */
    if ((guint64)q->rt_clusters * cs > QCOW2_MAX_REFTABLE_BYTES ||
        q->rt_clusters == 0 || q->rt_off == 0 ||
        (guint64)q->rt_clusters * cs > q->file_size ||
        q->rt_off > q->file_size - (guint64)q->rt_clusters * cs) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 refcount table at offset %" G_GUINT64_FORMAT
                    " (%u clusters) is invalid: must be 1 to %u bytes past "
                    "the header within the %" G_GUINT64_FORMAT "-byte file",
                    q->rt_off,
                    q->rt_clusters, QCOW2_MAX_REFTABLE_BYTES, q->file_size);
        return FALSE;
    }
    if (!resize_first_free(q, rb_bits, &n, error))
        return FALSE;
    l1c = div_round_up(new_l1 * 8, cs);

    /* Refcount blocks and table clusters count themselves: grow both until
     * they cover the whole area. Both only grow, so this converges. */
    for (;;) {
        guint64 absent = 0, want_nt;

        total = l1c + nb + nt;
        if (n > QCOW2_MAX_FILE_SIZE / cs ||
            total > QCOW2_MAX_FILE_SIZE / cs - n) {
            g_set_error(error, GFPOOL_IMAGE_ERROR,
                        GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "growing to %" G_GUINT64_FORMAT " bytes would put "
                        "qcow2 tables past 2^56 in the file", new_size);
            return FALSE;
        }
        r0 = n >> rb_bits;
        r1 = (n + total - 1) >> rb_bits;
        for (guint64 r = r0; r <= r1; r++) {
            guint64 rb_off;

            if (!reftable_get(q, r, &rb_off, error))
                return FALSE;
            absent += rb_off == 0;
        }
        want_nt = r1 >= rt_entries ? div_round_up((r1 + 1) * 8, cs) : 0;
        if (absent <= nb && want_nt <= nt)
            break;
        nb = MAX(nb, absent);
        nt = MAX(nt, want_nt);
    }
    if (nt * cs > QCOW2_MAX_REFTABLE_BYTES) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "growing to %" G_GUINT64_FORMAT " bytes needs a qcow2 "
                    "refcount table of %" G_GUINT64_FORMAT " bytes, over "
                    "QEMU's 8 MiB limit", new_size, nt * cs);
        return FALSE;
    }

    /* 1. refcounts of the new area, in new and existing refcount blocks */
    for (guint64 r = r0, k = 0; r <= r1; r++) {
        guint64 base = r << rb_bits, rb_off;
        guint64 c0 = MAX(n, base), c1 = MIN(n + total, base + per_rb);

        if (!reftable_get(q, r, &rb_off, error))
            return FALSE;
        if (rb_off) {
            if (!refblock_update(q, write_fn, rb, rb_off, base, c0, c1, +1,
                                 error))
                return FALSE;
            continue;
        }
        /* absent before, so every other cluster it covers is free */
        if (k >= nb) {
            /* the loop above counted these same entries */
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 refcount table changed while growing it");
            return FALSE;
        }
        rb_off = (n + l1c + k++) * cs;
        memset(rb, 0, cs);
        for (guint64 c = c0; c < c1; c++)
            rb_set(rb, q->refcount_order, c - base, 1);
        if (!write_fn(q->opaque, rb_off, rb, cs, error))
            return FALSE;
        g_array_append_val(new_idx, r);
        g_array_append_val(new_val, rb_off);
    }
    /* unused reserved clusters (the estimate only grows) stay zero, counted */
    for (guint64 k = new_idx->len; k < nb; k++) {
        memset(rb, 0, cs);
        if (!write_fn(q->opaque, (n + l1c + k) * cs, rb, cs, error))
            return FALSE;
    }

    /* 2. the new L1: old entries, then zeros to the end of its clusters */
    if (!copy_table(q, write_fn, q->l1_off, (guint64)q->l1_size * 8, n * cs,
                    l1c * cs, NULL, "qcow2 L1 table", error))
        return FALSE;

    /* 3. hook the new refcount blocks in: into a new refcount table, or
     * into free entries of the live one (they only count new clusters, so
     * a crash from here on leaks them at worst) */
    if (nt) {
        TableOverrides ov = { (const guint64 *)new_idx->data,
                              (const guint64 *)new_val->data, new_idx->len };

        new_rt_off = (n + l1c + nb) * cs;
        new_rt_clusters = nt;
        if (!copy_table(q, write_fn, q->rt_off, rt_entries * 8, new_rt_off,
                        nt * cs, &ov, "qcow2 refcount table", error))
            return FALSE;
    } else {
        new_rt_off = q->rt_off;
        new_rt_clusters = q->rt_clusters;
        for (guint i = 0; i < new_idx->len; i++) {
            guint8 b[8];

            wr_be64(b, g_array_index(new_val, guint64, i));
            if (!write_fn(q->opaque,
                          q->rt_off + g_array_index(new_idx, guint64, i) * 8,
                          b, 8, error))
                return FALSE;
        }
    }

    /* 4. switch */
    if (!resize_write_header(q, write_fn, new_size, (guint32)new_l1, n * cs,
                             new_rt_off, (guint32)new_rt_clusters, error))
        return FALSE;
    *new_file_size = MAX(q->file_size, (n + total) * cs);

    /* 5. free what the header no longer references; the refcount blocks
     * did not move, so the old table's entries are still the right ones */
    if (!resize_free(q, write_fn, rb_bits, q->l1_off / cs,
                     q->l1_off / cs + old_l1_clusters, error))
        return FALSE;
    if (nt && !resize_free(q, write_fn, rb_bits, q->rt_off / cs,
                           q->rt_off / cs + q->rt_clusters, error))
        return FALSE;
    return TRUE;
}

gboolean
gfpool_qcow2_resize(const guint8 *header, gsize header_len, guint64 file_size,
                    GfpoolReadFunc read_fn, GfpoolWriteFunc write_fn,
                    void *opaque, guint64 new_capacity, guint64 *new_file_size,
                    GError **error)
{
    Qcow2Image q;
    guint64 size, max, l1_span, new_l1, cs;

    if (!qcow2_open(&q, header, header_len, file_size, read_fn, opaque, error))
        return FALSE;
    cs = q.cluster_size;
    if (q.nb_snapshots > 0) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 image has %u internal snapshots: resizing images "
                    "with snapshots is not supported", q.nb_snapshots);
        return FALSE;
    }
    if (q.incompat & QCOW2_INCOMPAT_DIRTY) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 image is dirty (lazy refcounts): its refcounts "
                    "may be stale; run qemu-img check -r all first");
        return FALSE;
    }
    if (q.autoclear & QCOW2_AUTOCLEAR_BITMAPS) {
        /* their tables are sized for the old capacity */
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with persistent dirty bitmaps are not "
                    "supported for resizing");
        return FALSE;
    }
    /* (q.size was checked against the maximum by the prober) */
    if (new_capacity > G_MAXUINT64 - 511) {
        size = G_MAXUINT64;
    } else {
        size = (new_capacity + 511) & ~G_GUINT64_CONSTANT(511);
    }
    max = qcow2_max_capacity_bits(q.cluster_bits);
    if (size > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "capacity %" G_GUINT64_FORMAT " is invalid: must be at "
                    "most %" G_GUINT64_FORMAT " bytes with %" G_GUINT64_FORMAT
                    "-byte clusters (QEMU's 32 MiB L1 table limit)",
                    new_capacity, max, cs);
        return FALSE;
    }
    if (size < q.size) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "capacity %" G_GUINT64_FORMAT " is invalid: qcow2 volumes "
                    "can only grow, and the image has %" G_GUINT64_FORMAT
                    " bytes", new_capacity, q.size);
        return FALSE;
    }
    *new_file_size = file_size;
    if (size == q.size)
        return TRUE;
    /* both growth paths read or extend the L1 table in place; like
     * QEMU's overlap check, never write into the header cluster */
    if ((guint64)q.l1_size * 8 > file_size ||
        q.l1_off > file_size - (guint64)q.l1_size * 8 ||
        (q.l1_size > 0 && q.l1_off == 0)) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 L1 table at offset %" G_GUINT64_FORMAT " (%u "
                    "entries) is invalid: must lie past the header within "
                    "the %" G_GUINT64_FORMAT "-byte file",
                    q.l1_off, q.l1_size, file_size);
        return FALSE;
    }

    l1_span = G_GUINT64_CONSTANT(1) << (2 * q.cluster_bits - 3);
    new_l1 = div_round_up(size, l1_span);
    if (new_l1 <= q.l1_size)
        return resize_write_header(&q, write_fn, size, q.l1_size, q.l1_off,
                                   q.rt_off, q.rt_clusters, error);

    if (q.l1_size > 0 &&
        new_l1 * 8 <= div_round_up((guint64)q.l1_size * 8, cs) * cs) {
        /* The L1 clusters have room: zero the new entries (the bytes past
         * the old table are not promised to be zero), then switch. */
        guint64 from = q.l1_off + (guint64)q.l1_size * 8;
        guint64 len = (new_l1 - q.l1_size) * 8;
        g_autofree guint8 *zero = g_malloc0(len);

        if (!write_fn(opaque, from, zero, len, error) ||
            !resize_write_header(&q, write_fn, size, (guint32)new_l1,
                                 q.l1_off, q.rt_off, q.rt_clusters, error))
            return FALSE;
        *new_file_size = MAX(file_size, from + len);
        return TRUE;
    }
    return resize_grow_l1(&q, write_fn, size, new_l1, new_file_size, error);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_image_probe.c: which disk image format a file holds, from its bytes.
 *
 * It runs inside libvirtd on files a guest may have written, so every
 * on-disk offset and length is checked before use, all offset arithmetic
 * is done in the "len > limit - off" form that cannot overflow, and no
 * allocation depends on a length read from the file. The qcow2 files
 * (gfpool_qcow2_*.c) follow the same rules.
 */
#include "gfpool_image_priv.h"

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


/* ---- probing ------------------------------------------------------------ */

/* Total bytes the prober may look at, header included: enough for every
 * header we parse, small enough that a hostile file cannot make libvirtd
 * read (or allocate) much. */
#define PROBE_READ_LIMIT (64 * 1024)


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
gboolean
gfpool_within_file(guint64 file_size, guint64 off, gsize len, const char *what, GError **error)
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
gboolean
gfpool_read_exact(GfpoolReadFunc read_fn, void *opaque, guint64 off, void *buf, gsize len,
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
    if (!gfpool_within_file(c->file_size, off, len, what, error))
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
    return gfpool_read_exact(c->read_fn, c->opaque, off, dst, len, what, error);
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

/* qemu-img info still describes images with unknown incompatible features
 * or the corrupt bit, so we do too; the warning tells the caller QEMU will
 * refuse to run them. */
static void
probe_qcow2_warn(const GfpoolQcow2Header *h, GfpoolProbe *p)
{
    guint64 incompat = h->incompatible_features;

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
}

/* The header's own rules are the codec's; what lies beyond the header
 * (the backing name, the extensions) is read here, within the budget. */
static gboolean
probe_qcow2(ProbeCtx *c, GfpoolProbe *p, GError **error)
{
    GfpoolQcow2Header h;
    guint64 cluster_size;

    if (!gfpool_qcow2_header_decode(c->header, c->header_len, &h, error))
        return FALSE;
    cluster_size = G_GUINT64_CONSTANT(1) << h.cluster_bits;

    if (h.backing_file_offset != 0 &&
        !probe_read_name(c, h.backing_file_offset, h.backing_file_size,
                         QCOW_BACKING_MAX, &p->backing, error))
        return FALSE;
    if (!probe_qcow2_extensions(c, h.header_length,
                                h.backing_file_offset ? h.backing_file_offset
                                                      : cluster_size,
                                p, error))
        return FALSE;

    p->format = GFPOOL_FORMAT_QCOW2;
    p->capacity = h.size;
    p->cluster_size = (guint32)cluster_size;
    probe_qcow2_warn(&h, p);
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

/* qcow and qcow2 share their magic; the version that follows it says
 * which one this is, and *name which format a failure keeps. */
static gboolean
probe_qcow_family(ProbeCtx *c, GfpoolProbe *p, const char **name,
                  GError **error)
{
    guint32 version;

    *name = "qcow";
    if (c->header_len < 8) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow header truncated: %" G_GSIZE_FORMAT " bytes "
                    "available, the version needs 8", c->header_len);
        return FALSE;
    }
    version = rd_be32(c->header + 4);
    if (version == 1)
        return probe_qcow(c, p, error);
    if (version == 2 || version == 3) {
        *name = "qcow2";
        return probe_qcow2(c, p, error);
    }
    g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                "qcow version %u is invalid: must be 1, 2 or 3", version);
    return FALSE;
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
        ok = probe_qcow_family(&c, p, &name, &err);
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




void
gfpool_image_probe_as(GfpoolFormat format, const guint8 *header, gsize header_len,
                      guint64 file_size, GfpoolReadFunc read_fn, void *opaque,
                      GfpoolProbe *p)
{
    GfpoolFormat found;

    if (format == GFPOOL_FORMAT_RAW || format == GFPOOL_FORMAT_ISO) {
        /* Not even looked at: these are exactly the bytes a guest writes. */
        memset(p, 0, sizeof(*p));
        p->format = format;
        p->capacity = file_size;
        p->recorded = TRUE;
        return;
    }
    gfpool_image_probe(header, header_len, file_size, read_fn, opaque, p);
    p->recorded = TRUE;
    if ((found = p->format) == format)
        return;
    gfpool_probe_clear(p);
    p->format = format;
    p->capacity = file_size;
    p->corrupt = TRUE;
    p->recorded = TRUE;
    p->warning = g_strdup_printf("unusable %s image: its header is not a %s header (it reads as %s)",
                                 gfpool_format_to_string(format), gfpool_format_to_string(format),
                                 gfpool_format_to_string(found));
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_qcow2_map.c: an existing qcow2 image opened and checked, and its guest extents.
 */
#include "gfpool_image_priv.h"

/* ---- existing qcow2 images: map and resize ------------------------------ */


/* Read exactly len bytes at off, which must lie inside the file. */
gboolean
gfpool_qcow2_read(const Qcow2Image *q, guint64 off, void *buf, gsize len,
         const char *what, GError **error)
{
    if (!gfpool_within_file(q->file_size, off, len, what, error))
        return FALSE;
    return gfpool_read_exact(q->read_fn, q->opaque, off, buf, len, what, error);
}

/* Refuse the features that map and resize would both get wrong. */
static gboolean
qcow2_open_features(const Qcow2Image *q, GError **error)
{
    guint64 incompat = q->h.incompatible_features;

    if (incompat & ~QCOW2_INCOMPAT_KNOWN) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 incompatible features 0x%016" G_GINT64_MODIFIER "x "
                    "include unknown bits 0x%016" G_GINT64_MODIFIER "x",
                    incompat, incompat & ~QCOW2_INCOMPAT_KNOWN);
        return FALSE;
    }
    if (incompat & QCOW2_INCOMPAT_CORRUPT) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 image is marked corrupt: repair it with "
                    "qemu-img check -r all first");
        return FALSE;
    }
    if (incompat & QCOW2_INCOMPAT_DATA_FILE) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with an external data file are not "
                    "supported");
        return FALSE;
    }
    if (incompat & QCOW2_INCOMPAT_EXTL2) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with extended L2 entries (subclusters) are "
                    "not supported");
        return FALSE;
    }
    return TRUE;
}

/*
 * Validate the image with the prober (header fields, extensions, backing
 * name), then take the fields map and resize need, refusing the features
 * both would get wrong.
 */

gboolean
gfpool_qcow2_open(Qcow2Image *q, const guint8 *header, gsize header_len,
           guint64 file_size, GfpoolReadFunc read_fn, void *opaque,
           GError **error)
{
    g_auto(GfpoolProbe) p = { 0 };

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

    /* the prober used no more of header[] than the file holds */
    if (!gfpool_qcow2_header_decode(header, (gsize)MIN((guint64)header_len, file_size),
                                    &q->h, error))
        return FALSE;
    q->read_fn = read_fn;
    q->opaque = opaque;
    q->file_size = file_size;
    q->cluster_size = G_GUINT64_CONSTANT(1) << q->h.cluster_bits;
    q->backing = p.backing != NULL;
    return qcow2_open_features(q, error);
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
    guint64 l1_off;

    if (!gfpool_qcow2_open(&q, header, header_len, file_size, read_fn, opaque, error))
        return FALSE;
    if (q.h.crypt_method != 0) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "encrypted qcow2 images (crypt_method %u) are not "
                    "supported", q.h.crypt_method);
        return FALSE;
    }
    cs = q.cluster_size;
    unalloc = q.backing ? GFPOOL_EXTENT_BACKING : GFPOOL_EXTENT_ZERO;
    l1_span = G_GUINT64_CONSTANT(1) << (2 * q.h.cluster_bits - 3);
    /* the header's rules say l1_size covers size, so l1_needed <= l1_size */
    l1_needed = gfpool_qcow2_l1_entries(q.h.cluster_bits, q.h.size);
    l1_off = q.h.l1_table_offset;
    if (l1_needed * 8 > file_size || l1_off > file_size - l1_needed * 8) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 L1 table at offset %" G_GUINT64_FORMAT " (%"
                    G_GUINT64_FORMAT " entries in use) lies past the end of "
                    "the %" G_GUINT64_FORMAT "-byte file",
                    l1_off, l1_needed, file_size);
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
        guint64 span = MIN(l1_span, q.h.size - guest);

        if (i % chunk == 0 &&
            !gfpool_qcow2_read(&q, l1_off + i * 8, l1,
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
        if (!gfpool_qcow2_read(&q, l2_off, l2, cs, "qcow2 L2 table", error) ||
            !map_l2(&q, &sink, l2, i, guest, span, unalloc, error))
            return FALSE;
    }
    if (sink.cur.len && !cb(cb_opaque, &sink.cur, error))
        return FALSE;
    return TRUE;
}


/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_qcow2_refcount.c: growing an existing qcow2 image in place: L1 and refcount tables moved
 * when they must, refcounts kept exact, the header written last.
 */
#include "gfpool_image_priv.h"

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
    return gfpool_qcow2_read(q, q->rt_off + idx * 8, b, 8, "qcow2 refcount table",
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
            !gfpool_qcow2_read(q, q->rt_off + i * 8, win,
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
        if (!gfpool_qcow2_read(q, rb_off, rb, cs, "qcow2 refcount block", error))
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

    if (!gfpool_qcow2_read(q, rb_off, rb, q->cluster_size, "qcow2 refcount block",
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
            !gfpool_qcow2_read(q, old_off + pos, buf, (gsize)MIN((guint64)n,
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

    if (!gfpool_qcow2_open(&q, header, header_len, file_size, read_fn, opaque, error))
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
    max = gfpool_qcow2_max_capacity_bits(q.cluster_bits);
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


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

    if (idx >= (guint64)q->h.refcount_table_clusters * q->cluster_size / 8) {
        *rb_off = 0;
        return TRUE;
    }
    return gfpool_qcow2_read(q, q->h.refcount_table_offset + idx * 8, b, 8, "qcow2 refcount table",
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

/* The index in a refcount block of its last non-zero refcount; the block
 * has one. */
static guint64
refblock_last_used(const guint8 *rb, guint64 cs, unsigned order)
{
    gsize b = cs - 1;
    guint64 per, k;

    /* the last non-zero byte holds the last non-zero refcount */
    while (!rb[b])
        b--;
    if (order >= 3)
        return b >> (order - 3);
    per = 8u >> order;
    k = b * per + per - 1;
    while (rb_get(rb, order, k) == 0)
        k--;
    return k;
}

static gboolean
refblock_is_empty(const guint8 *rb, guint64 cs)
{
    for (gsize b = 0; b < cs; b++) {
        if (rb[b])
            return FALSE;
    }
    return TRUE;
}

static gboolean
resize_first_free(const Qcow2Image *q, unsigned rb_bits, guint64 *first,
                  GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 rt_entries = (guint64)q->h.refcount_table_clusters * cs / 8;
    guint64 n = div_round_up(q->file_size, cs);
    guint64 chunk = TABLE_CHUNK / 8;
    g_autofree guint8 *win = g_malloc(TABLE_CHUNK);
    g_autofree guint8 *rb = g_malloc(cs);
    unsigned blocks = 0;

    for (guint64 i = n >> rb_bits; i < rt_entries; i++) {
        guint64 w = (i - (n >> rb_bits)) % chunk, rb_off;

        if (w == 0 &&
            !gfpool_qcow2_read(q, q->h.refcount_table_offset + i * 8, win,
                               (gsize)MIN(chunk, rt_entries - i) * 8,
                               "qcow2 refcount table", error))
            return FALSE;
        if (!reftable_entry(q, i, rd_be64(win + w * 8), &rb_off, error))
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
        if (!refblock_is_empty(rb, cs))
            n = MAX(n, (i << rb_bits) +
                       refblock_last_used(rb, cs, q->h.refcount_order) + 1);
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
    unsigned order = q->h.refcount_order;
    guint64 max = order == 6 ? G_MAXUINT64
                             : (G_GUINT64_CONSTANT(1) << (1u << order)) - 1;

    if (!gfpool_qcow2_read(q, rb_off, rb, q->cluster_size, "qcow2 refcount block",
                  error))
        return FALSE;
    for (guint64 c = c0; c < c1; c++) {
        guint64 v = rb_get(rb, order, c - base);

        if (delta > 0) {
            if (v != 0) {
                g_set_error(error, GFPOOL_IMAGE_ERROR,
                            GFPOOL_IMAGE_ERROR_CORRUPT,
                            "qcow2 cluster %" G_GUINT64_FORMAT " past the "
                            "end of the file has refcount %" G_GUINT64_FORMAT
                            ", expected 0", c, v);
                return FALSE;
            }
            rb_set(rb, order, c - base, 1);
        } else if (v > 0 && v <= max) {
            rb_set(rb, order, c - base, v - 1);
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
 * Switch the header to new tables: size, L1 size/offset and refcount table
 * offset/clusters are one run of fields (crypt method and snapshot count in
 * it unchanged), written in one write, so the image moves from the old
 * tables to the new ones at once.
 */
static gboolean
resize_write_header(const Qcow2Image *q, GfpoolWriteFunc write_fn,
                    guint64 size, guint32 l1_size, guint64 l1_off,
                    guint64 rt_off, guint32 rt_clusters, GError **error)
{
    GfpoolQcow2Header h = q->h;
    guint8 buf[QCOW2_HEADER_LEN_WRITTEN];

    h.size = size;
    h.l1_size = l1_size;
    h.l1_table_offset = l1_off;
    h.refcount_table_offset = rt_off;
    h.refcount_table_clusters = rt_clusters;
    if (!gfpool_qcow2_header_encode(&h, buf, sizeof(buf), error))
        return FALSE;
    return write_fn(q->opaque, QCOW2_HEADER_SIZE_OFFSET,
                    buf + QCOW2_HEADER_SIZE_OFFSET,
                    QCOW2_HEADER_SNAPSHOTS_OFFSET - QCOW2_HEADER_SIZE_OFFSET, error);
}

/*
 * Where a grown L1 table goes: one area of total clusters from cluster
 * first, past everything in use, holding the new L1 (l1c clusters), nb
 * refcount blocks and nt clusters of a new refcount table (0 when the live
 * one has room). Refcount table entries r0..r1 cover the area.
 */
typedef struct {
    unsigned rb_bits;           /* clusters per refcount block, log2 */
    guint64 first, l1c, nb, nt, total, r0, r1;
} GrowArea;

/* QEMU's overlap check refuses writes into the header cluster too. */
static gboolean
resize_check_reftable(const Qcow2Image *q, GError **error)
{
    guint64 rt_off = q->h.refcount_table_offset;
    guint64 rt_bytes = (guint64)q->h.refcount_table_clusters * q->cluster_size;

    if (rt_bytes <= QCOW2_MAX_REFTABLE_BYTES && rt_bytes != 0 && rt_off != 0 &&
        rt_bytes <= q->file_size && rt_off <= q->file_size - rt_bytes)
        return TRUE;
    g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                "qcow2 refcount table at offset %" G_GUINT64_FORMAT
                " (%u clusters) is invalid: must be 1 to %u bytes past "
                "the header within the %" G_GUINT64_FORMAT "-byte file",
                rt_off, q->h.refcount_table_clusters, QCOW2_MAX_REFTABLE_BYTES,
                q->file_size);
    return FALSE;
}

/*
 * Size the area for an L1 table of new_l1 entries. Refcount blocks and
 * table clusters count themselves: grow both until they cover the whole
 * area. Both only grow, so this converges.
 */
static gboolean
resize_plan_area(const Qcow2Image *q, guint64 new_size, guint64 new_l1,
                 GrowArea *a, GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 rt_entries = (guint64)q->h.refcount_table_clusters * cs / 8;

    memset(a, 0, sizeof(*a));
    a->rb_bits = q->h.cluster_bits + 3 - q->h.refcount_order;
    if (!resize_first_free(q, a->rb_bits, &a->first, error))
        return FALSE;
    a->l1c = div_round_up(new_l1 * 8, cs);

    for (;;) {
        guint64 absent = 0, want_nt;

        a->total = a->l1c + a->nb + a->nt;
        if (a->first > QCOW2_MAX_FILE_SIZE / cs ||
            a->total > QCOW2_MAX_FILE_SIZE / cs - a->first) {
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                        "growing to %" G_GUINT64_FORMAT " bytes would put "
                        "qcow2 tables past 2^56 in the file", new_size);
            return FALSE;
        }
        a->r0 = a->first >> a->rb_bits;
        a->r1 = (a->first + a->total - 1) >> a->rb_bits;
        for (guint64 r = a->r0; r <= a->r1; r++) {
            guint64 rb_off;

            if (!reftable_get(q, r, &rb_off, error))
                return FALSE;
            absent += rb_off == 0;
        }
        want_nt = a->r1 >= rt_entries ? div_round_up((a->r1 + 1) * 8, cs) : 0;
        if (absent <= a->nb && want_nt <= a->nt)
            break;
        a->nb = MAX(a->nb, absent);
        a->nt = MAX(a->nt, want_nt);
    }
    if (a->nt * cs > QCOW2_MAX_REFTABLE_BYTES) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "growing to %" G_GUINT64_FORMAT " bytes needs a qcow2 "
                    "refcount table of %" G_GUINT64_FORMAT " bytes, over "
                    "QEMU's 8 MiB limit", new_size, a->nt * cs);
        return FALSE;
    }
    return TRUE;
}

/*
 * Count the area's clusters, in the existing refcount blocks and in new
 * ones written into the area after the L1; new_idx/new_val receive each new
 * block's refcount table index and offset. Reserved blocks the estimate did
 * not need are written zero (they are counted, so they are merely leaked).
 */
static gboolean
resize_count_area(const Qcow2Image *q, GfpoolWriteFunc write_fn, const GrowArea *a,
                  GArray *new_idx, GArray *new_val, GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 per_rb = G_GUINT64_CONSTANT(1) << a->rb_bits;
    guint64 end = a->first + a->total;
    g_autofree guint8 *rb = g_malloc(cs);

    for (guint64 r = a->r0; r <= a->r1; r++) {
        guint64 base = r << a->rb_bits, rb_off;
        guint64 c0 = MAX(a->first, base), c1 = MIN(end, base + per_rb);

        if (!reftable_get(q, r, &rb_off, error))
            return FALSE;
        if (rb_off) {
            if (!refblock_update(q, write_fn, rb, rb_off, base, c0, c1, +1, error))
                return FALSE;
            continue;
        }
        /* absent before, so every other cluster it covers is free */
        if (new_idx->len >= a->nb) {
            /* resize_plan_area() counted these same entries */
            g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                        "qcow2 refcount table changed while growing it");
            return FALSE;
        }
        rb_off = (a->first + a->l1c + new_idx->len) * cs;
        memset(rb, 0, cs);
        for (guint64 c = c0; c < c1; c++)
            rb_set(rb, q->h.refcount_order, c - base, 1);
        if (!write_fn(q->opaque, rb_off, rb, cs, error))
            return FALSE;
        g_array_append_val(new_idx, r);
        g_array_append_val(new_val, rb_off);
    }
    memset(rb, 0, cs);
    for (guint64 k = new_idx->len; k < a->nb; k++) {
        if (!write_fn(q->opaque, (a->first + a->l1c + k) * cs, rb, cs, error))
            return FALSE;
    }
    return TRUE;
}

/*
 * Hook the new refcount blocks in: into a new refcount table at the end of
 * the area, or into free entries of the live one (they only count new
 * clusters, so a crash from here on leaks them at worst). *rt_off and
 * *rt_clusters receive the table the header is to name.
 */
static gboolean
resize_hook_refblocks(const Qcow2Image *q, GfpoolWriteFunc write_fn, const GrowArea *a,
                      GArray *new_idx, GArray *new_val, guint64 *rt_off,
                      guint64 *rt_clusters, GError **error)
{
    guint64 cs = q->cluster_size;
    guint64 old_rt_off = q->h.refcount_table_offset;

    if (a->nt) {
        TableOverrides ov = { (const guint64 *)new_idx->data,
                              (const guint64 *)new_val->data, new_idx->len };

        *rt_off = (a->first + a->l1c + a->nb) * cs;
        *rt_clusters = a->nt;
        return copy_table(q, write_fn, old_rt_off,
                          (guint64)q->h.refcount_table_clusters * cs, *rt_off,
                          a->nt * cs, &ov, "qcow2 refcount table", error);
    }
    *rt_off = old_rt_off;
    *rt_clusters = q->h.refcount_table_clusters;
    for (guint i = 0; i < new_idx->len; i++) {
        guint8 b[8];

        wr_be64(b, g_array_index(new_val, guint64, i));
        if (!write_fn(q->opaque, old_rt_off + g_array_index(new_idx, guint64, i) * 8,
                      b, 8, error))
            return FALSE;
    }
    return TRUE;
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
    guint64 l1_off = q->h.l1_table_offset, old_rt_off = q->h.refcount_table_offset;
    guint64 old_l1_clusters = div_round_up((guint64)q->h.l1_size * 8, cs);
    g_autoptr(GArray) new_idx = g_array_new(FALSE, FALSE, sizeof(guint64));
    g_autoptr(GArray) new_val = g_array_new(FALSE, FALSE, sizeof(guint64));
    guint64 rt_off, rt_clusters;
    GrowArea a;

    if (!resize_check_reftable(q, error) ||
        !resize_plan_area(q, new_size, new_l1, &a, error) ||
        !resize_count_area(q, write_fn, &a, new_idx, new_val, error))
        return FALSE;
    /* the new L1: old entries, then zeros to the end of its clusters */
    if (!copy_table(q, write_fn, l1_off, (guint64)q->h.l1_size * 8, a.first * cs,
                    a.l1c * cs, NULL, "qcow2 L1 table", error) ||
        !resize_hook_refblocks(q, write_fn, &a, new_idx, new_val, &rt_off,
                               &rt_clusters, error))
        return FALSE;

    if (!resize_write_header(q, write_fn, new_size, (guint32)new_l1, a.first * cs,
                             rt_off, (guint32)rt_clusters, error))
        return FALSE;
    *new_file_size = MAX(q->file_size, (a.first + a.total) * cs);

    /* free what the header no longer references; the refcount blocks did
     * not move, so the old table's entries are still the right ones */
    if (!resize_free(q, write_fn, a.rb_bits, l1_off / cs,
                     l1_off / cs + old_l1_clusters, error))
        return FALSE;
    if (a.nt && !resize_free(q, write_fn, a.rb_bits, old_rt_off / cs,
                             old_rt_off / cs + q->h.refcount_table_clusters, error))
        return FALSE;
    return TRUE;
}

/* What resizing cannot keep right. */
static gboolean
resize_check_image(const Qcow2Image *q, GError **error)
{
    if (q->h.nb_snapshots > 0) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 image has %u internal snapshots: resizing images "
                    "with snapshots is not supported", q->h.nb_snapshots);
        return FALSE;
    }
    if (q->h.incompatible_features & QCOW2_INCOMPAT_DIRTY) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 image is dirty (lazy refcounts): its refcounts "
                    "may be stale; run qemu-img check -r all first");
        return FALSE;
    }
    if (q->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) {
        /* their tables are sized for the old capacity */
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "qcow2 images with persistent dirty bitmaps are not "
                    "supported for resizing");
        return FALSE;
    }
    return TRUE;
}

/* new_capacity rounded up to 512 bytes, as QEMU does, into *size: within
 * the L1 limit and no smaller than the image. (The image's own size was
 * checked against the limit when its header was decoded.) */
static gboolean
resize_new_size(const Qcow2Image *q, guint64 new_capacity, guint64 *size,
                GError **error)
{
    guint64 max = gfpool_qcow2_max_capacity_bits(q->h.cluster_bits);

    if (new_capacity > G_MAXUINT64 - 511)
        *size = G_MAXUINT64;
    else
        *size = (new_capacity + 511) & ~G_GUINT64_CONSTANT(511);
    if (*size > max) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_INVALID,
                    "capacity %" G_GUINT64_FORMAT " is invalid: must be at "
                    "most %" G_GUINT64_FORMAT " bytes with %" G_GUINT64_FORMAT
                    "-byte clusters (QEMU's 32 MiB L1 table limit)",
                    new_capacity, max, q->cluster_size);
        return FALSE;
    }
    if (*size < q->h.size) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_UNSUPPORTED,
                    "capacity %" G_GUINT64_FORMAT " is invalid: qcow2 volumes "
                    "can only grow, and the image has %" G_GUINT64_FORMAT
                    " bytes", new_capacity, q->h.size);
        return FALSE;
    }
    return TRUE;
}

gboolean
gfpool_qcow2_resize(const guint8 *header, gsize header_len, guint64 file_size,
                    GfpoolReadFunc read_fn, GfpoolWriteFunc write_fn,
                    void *opaque, guint64 new_capacity, guint64 *new_file_size,
                    GError **error)
{
    Qcow2Image q;
    guint64 size, new_l1, l1_off, l1_bytes;

    if (!gfpool_qcow2_open(&q, header, header_len, file_size, read_fn, opaque, error) ||
        !resize_check_image(&q, error) ||
        !resize_new_size(&q, new_capacity, &size, error))
        return FALSE;
    *new_file_size = file_size;
    if (size == q.h.size)
        return TRUE;
    /* both growth paths read or extend the L1 table in place; like
     * QEMU's overlap check, never write into the header cluster */
    l1_off = q.h.l1_table_offset;
    l1_bytes = (guint64)q.h.l1_size * 8;
    if (l1_bytes > file_size || l1_off > file_size - l1_bytes ||
        (q.h.l1_size > 0 && l1_off == 0)) {
        g_set_error(error, GFPOOL_IMAGE_ERROR, GFPOOL_IMAGE_ERROR_CORRUPT,
                    "qcow2 L1 table at offset %" G_GUINT64_FORMAT " (%u "
                    "entries) is invalid: must lie past the header within "
                    "the %" G_GUINT64_FORMAT "-byte file",
                    l1_off, q.h.l1_size, file_size);
        return FALSE;
    }

    new_l1 = gfpool_qcow2_l1_entries(q.h.cluster_bits, size);
    if (new_l1 <= q.h.l1_size)
        return resize_write_header(&q, write_fn, size, q.h.l1_size, l1_off,
                                   q.h.refcount_table_offset,
                                   q.h.refcount_table_clusters, error);

    if (q.h.l1_size > 0 &&
        new_l1 * 8 <= div_round_up(l1_bytes, q.cluster_size) * q.cluster_size) {
        /* The L1 clusters have room: zero the new entries (the bytes past
         * the old table are not promised to be zero), then switch. */
        guint64 len = new_l1 * 8 - l1_bytes;
        g_autofree guint8 *zero = g_malloc0(len);

        if (!write_fn(opaque, l1_off + l1_bytes, zero, len, error) ||
            !resize_write_header(&q, write_fn, size, (guint32)new_l1, l1_off,
                                 q.h.refcount_table_offset,
                                 q.h.refcount_table_clusters, error))
            return FALSE;
        *new_file_size = MAX(file_size, l1_off + l1_bytes + len);
        return TRUE;
    }
    return resize_grow_l1(&q, write_fn, size, new_l1, new_file_size, error);
}

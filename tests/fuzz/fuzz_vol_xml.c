/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer target: the <volume> XML parser (what vol-create reads) and the
 * size-unit parser. A parsed document must format and parse back.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gfpool_vol_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_parse((const char *)data, size, &err);
    g_autofree char *str = g_strndup((const char *)data, MIN(size, 64));
    guint64 v;

    if (def) {
        g_autofree char *xml = gfpool_vol_def_format(def);
        g_autoptr(GError) err2 = NULL;
        g_autoptr(GfpoolVolDef) again = gfpool_vol_def_parse(xml, strlen(xml), &err2);
        if (!again || g_strcmp0(again->name, def->name) != 0 || again->capacity != def->capacity)
            abort();
    } else if (!err) {
        abort();
    }
    gfpool_parse_scaled(str, &v, NULL);
    return 0;
}

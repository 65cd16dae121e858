/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_volinfo_xml.c: gluster's volume info XML to pool sources.
 */
#include <string.h>

#include "gfpool_volinfo_xml.h"
#include "gfpool_xml.h"

/* "host:/brick/path" -> "host" ("[v6]:/path" -> "v6"). */
static char *
brick_host(const char *brick)
{
    const char *colon;

    if (brick[0] == '[') {
        const char *close = strchr(brick, ']');
        return close ? g_strndup(brick + 1, close - brick - 1) : NULL;
    }
    colon = strrchr(brick, ':');
    return colon && colon != brick ? g_strndup(brick, colon - brick) : NULL;
}

static gboolean
has_host(const GfpoolSource *src, const char *name)
{
    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);
        if (g_strcmp0(h->name, name) == 0)
            return TRUE;
    }
    return FALSE;
}

GPtrArray *
gfpool_volinfo_parse(const char *xml, gsize len, const GfpoolHost *queried, GError **error)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(GPtrArray) out = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_source_free);
    xmlNode *root, *vols;
    g_autofree char *ret = NULL;

    if (!(doc = gfpool_xml_read(xml, len, "gluster volume info", error)))
        return NULL;
    root = xmlDocGetRootElement(doc);
    if (!xmlStrEqual(root->name, (const xmlChar *)"cliOutput")) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "gluster volume info: root element is <%s>, expected <cliOutput>",
                    (const char *)root->name);
        return NULL;
    }
    ret = gfpool_xml_text(gfpool_xml_child(root, "opRet"), TRUE);
    if (g_strcmp0(ret, "0") != 0) {
        g_autofree char *err = gfpool_xml_text(gfpool_xml_child(root, "opErrstr"), TRUE);
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "gluster volume info failed: %s", err && *err ? err : "no reason given");
        return NULL;
    }
    vols = gfpool_xml_child(gfpool_xml_child(root, "volInfo"), "volumes");
    for (xmlNode *v = vols ? vols->children : NULL; v; v = v->next) {
        g_autoptr(GfpoolSource) src = NULL;
        g_autoptr(GError) name_err = NULL;
        xmlNode *bricks;

        if (v->type != XML_ELEMENT_NODE || !xmlStrEqual(v->name, (const xmlChar *)"volume"))
            continue;
        src = gfpool_source_new();
        src->volume = gfpool_xml_text(gfpool_xml_child(v, "name"), TRUE);
        src->dir = g_strdup("/");
        if (!src->volume || !*src->volume)
            continue;
        if (queried)
            g_ptr_array_add(src->hosts, gfpool_host_copy(queried));
        bricks = gfpool_xml_child(v, "bricks");
        for (xmlNode *b = bricks ? bricks->children : NULL; b; b = b->next) {
            g_autofree char *brick = NULL;
            g_autofree char *host = NULL;
            if (b->type != XML_ELEMENT_NODE || !xmlStrEqual(b->name, (const xmlChar *)"brick"))
                continue;
            /* <brick>host:/path<name>host:/path</name>...</brick> */
            brick = gfpool_xml_text(gfpool_xml_child(b, "name") ? gfpool_xml_child(b, "name") : b,
                                    TRUE);
            if (brick && (host = brick_host(brick)) && !has_host(src, host))
                g_ptr_array_add(src->hosts, gfpool_host_new(GFPOOL_TRANSPORT_TCP, host,
                                                            queried ? queried->port : 0, NULL));
        }
        g_ptr_array_add(out, g_steal_pointer(&src));
    }
    return g_steal_pointer(&out);
}

char *
gfpool_sources_format(const GPtrArray *sources)
{
    g_autoptr(GString) s = g_string_new("<sources>\n");

    for (guint i = 0; i < sources->len; i++) {
        const GfpoolSource *src = g_ptr_array_index(sources, i);
        g_autofree char *vol = g_markup_escape_text(src->volume, -1);

        g_string_append(s, "  <source>\n");
        for (guint j = 0; j < src->hosts->len; j++) {
            const GfpoolHost *h = g_ptr_array_index(src->hosts, j);
            g_autofree char *name = NULL;
            if (!h->name)
                continue;
            name = g_markup_escape_text(h->name, -1);
            if (h->port)
                g_string_append_printf(s, "    <host name='%s' port='%d'/>\n", name, h->port);
            else
                g_string_append_printf(s, "    <host name='%s'/>\n", name);
        }
        g_string_append(s, "    <dir path='/'/>\n");
        g_string_append_printf(s, "    <name>%s</name>\n", vol);
        g_string_append(s, "  </source>\n");
    }
    g_string_append(s, "</sources>\n");
    return g_string_free(g_steal_pointer(&s), FALSE);
}

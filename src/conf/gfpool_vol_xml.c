/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_vol_xml.c: <volume> parse/format and size units.
 */
#include <errno.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "gfpool_vol_xml.h"
#include "gfpool_xml.h"



GfpoolVolDef *
gfpool_vol_def_new(void)
{
    GfpoolVolDef *def = g_new0(GfpoolVolDef, 1);
    def->mode = def->uid = def->gid = -1;
    return def;
}

void
gfpool_vol_def_free(GfpoolVolDef *def)
{
    if (!def)
        return;
    g_free(def->name);
    g_free(def->key);
    g_free(def->type);
    g_free(def->format);
    g_free(def->path);
    g_free(def->backing_path);
    g_free(def->backing_format);
    g_free(def);
}


/* ---- units ---------------------------------------------------------- */

static gboolean
unit_scale(const char *unit, guint64 *scale)
{
    static const char prefixes[] = "kmgtpe";
    const char *p;
    gsize len;

    if (!unit || !*unit || g_ascii_strcasecmp(unit, "b") == 0 ||
        g_ascii_strcasecmp(unit, "bytes") == 0) {
        *scale = 1;
        return TRUE;
    }
    if (!(p = strchr(prefixes, g_ascii_tolower(unit[0]))))
        return FALSE;
    len = strlen(unit);
    {
        guint power = (guint)(p - prefixes) + 1;
        guint64 base;
        /* libvirt: "k" "K" "KiB" "kib" are 1024, "KB" is 1000. */
        if (len == 1 || (len == 3 && g_ascii_strcasecmp(unit + 1, "ib") == 0))
            base = 1024;
        else if (len == 2 && g_ascii_strcasecmp(unit + 1, "b") == 0)
            base = 1000;
        else
            return FALSE;
        *scale = 1;
        while (power--)
            *scale *= base;
    }
    return TRUE;
}

gboolean
gfpool_parse_size(const char *num, const char *unit, const char *default_unit,
                  guint64 *out, GError **error)
{
    guint64 v, scale;
    char *end = NULL;

    if (!num || !g_ascii_isdigit(num[0])) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid size '%s': expected a non-negative integer", num ? num : "");
        return FALSE;
    }
    errno = 0;
    v = g_ascii_strtoull(num, &end, 10);
    if (errno == ERANGE || *end) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid size '%s': %s", num,
                    errno == ERANGE ? "too large" : "expected a non-negative integer");
        return FALSE;
    }
    if (!unit_scale(unit && *unit ? unit : default_unit, &scale)) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid size unit '%s' for '%s': use b, KiB/K, KB, MiB/M, MB, GiB/G, GB, "
                    "TiB/T, TB, PiB/P, PB, EiB/E, EB", unit ? unit : default_unit, num);
        return FALSE;
    }
    if (scale > 1 && v > G_MAXUINT64 / scale) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid size '%s %s': larger than 2^64-1 bytes", num, unit ? unit : default_unit);
        return FALSE;
    }
    *out = v * scale;
    return TRUE;
}

gboolean
gfpool_parse_scaled(const char *str, guint64 *out, GError **error)
{
    const char *p = str ? str : "";
    g_autofree char *num = NULL;

    while (g_ascii_isdigit(*p))
        p++;
    num = g_strndup(str ? str : "", p - (str ? str : ""));
    if (!*num) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid size '%s': expected a non-negative integer with an optional unit",
                    str ? str : "");
        return FALSE;
    }
    if (!gfpool_parse_size(num, *p ? p : NULL, NULL, out, error)) {
        g_prefix_error(error, "'%s': ", str);
        return FALSE;
    }
    return TRUE;
}


/* ---- parse ---------------------------------------------------------- */

static gboolean
parse_size_node(xmlNodePtr n, const char *what, guint64 *out, GError **error)
{
    g_autofree char *text = gfpool_xml_text(n, TRUE);
    g_autofree char *unit = gfpool_xml_prop(n, "unit");

    if (!gfpool_parse_size(text, unit, "bytes", out, error)) {
        g_prefix_error(error, "<%s>: ", what);
        return FALSE;
    }
    return TRUE;
}

static gboolean
parse_id(xmlNodePtr n, const char *what, int base, gint64 max, gint64 *out, GError **error)
{
    g_autofree char *text = gfpool_xml_text(n, TRUE);
    guint64 v;

    if (!n)
        return TRUE;
    /* libvirt writes -1 for "unset". */
    if (text && g_str_equal(text, "-1"))
        return TRUE;
    if (!text || !g_ascii_string_to_unsigned(text, base, 0, (guint64)max, &v, NULL)) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "invalid <%s> '%s' in <permissions>", what, text ? text : "");
        return FALSE;
    }
    *out = (gint64)v;
    return TRUE;
}

GfpoolVolDef *
gfpool_vol_def_parse(const char *xml, gsize len, GError **error)
{
    g_autoptr(GfpoolVolDef) def = gfpool_vol_def_new();
    g_autoptr(xmlDoc) doc = NULL;
    xmlNodePtr root, target, n;
    gboolean ok = FALSE;

    if (!(doc = gfpool_xml_read(xml, len, "volume", error)))
        return NULL;
    root = xmlDocGetRootElement(doc);
    if (!root || !xmlStrEqual(root->name, (const xmlChar *)"volume")) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "volume XML: root element must be <volume>, not <%s>",
                    root ? (const char *)root->name : "");
        goto out;
    }
    if (!(def->name = gfpool_xml_text(gfpool_xml_child(root, "name"), TRUE)) || !*def->name) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "volume XML: missing <name>");
        goto out;
    }
    def->type = gfpool_xml_prop(root, "type");
    if ((n = gfpool_xml_child(root, "capacity"))) {
        if (!parse_size_node(n, "capacity", &def->capacity, error))
            goto out;
        def->has_capacity = TRUE;
    }
    if ((n = gfpool_xml_child(root, "allocation"))) {
        if (!parse_size_node(n, "allocation", &def->allocation, error))
            goto out;
        def->has_allocation = TRUE;
    }
    if ((target = gfpool_xml_child(root, "target"))) {
        xmlNodePtr perms;
        def->format = gfpool_xml_prop(gfpool_xml_child(target, "format"), "type");
        def->path = gfpool_xml_text(gfpool_xml_child(target, "path"), TRUE);
        if ((n = gfpool_xml_child(target, "clusterSize"))) {
            guint64 cs;
            if (!parse_size_node(n, "clusterSize", &cs, error))
                goto out;
            if (cs > G_MAXUINT32) {
                g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                            "volume XML: <clusterSize> %" G_GUINT64_FORMAT " too large", cs);
                goto out;
            }
            def->cluster_size = (guint32)cs;
        }
        if ((perms = gfpool_xml_child(target, "permissions"))) {
            if (!parse_id(gfpool_xml_child(perms, "mode"), "mode", 8, 07777, &def->mode, error) ||
                !parse_id(gfpool_xml_child(perms, "owner"), "owner", 10, G_MAXUINT32 - 1, &def->uid, error) ||
                !parse_id(gfpool_xml_child(perms, "group"), "group", 10, G_MAXUINT32 - 1, &def->gid, error))
                goto out;
        }
    }
    if ((n = gfpool_xml_child(root, "backingStore"))) {
        def->backing_path = gfpool_xml_text(gfpool_xml_child(n, "path"), TRUE);
        def->backing_format = gfpool_xml_prop(gfpool_xml_child(n, "format"), "type");
        if (!def->backing_path || !*def->backing_path) {
            g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                        "volume XML: <backingStore> without <path>");
            goto out;
        }
    }
    ok = TRUE;
 out:
    return ok ? g_steal_pointer(&def) : NULL;
}


/* ---- format --------------------------------------------------------- */

static void
append_escaped(GString *s, const char *text)
{
    g_autofree char *esc = g_markup_escape_text(text, -1);
    g_string_append(s, esc);
}

char *
gfpool_vol_def_format(const GfpoolVolDef *def)
{
    g_autoptr(GString) s = g_string_new(NULL);

    g_string_append(s, "<volume");
    if (def->type) {
        g_string_append(s, " type='");
        append_escaped(s, def->type);
        g_string_append_c(s, '\'');
    }
    g_string_append(s, ">\n  <name>");
    append_escaped(s, def->name);
    g_string_append(s, "</name>\n");
    if (def->key) {
        g_string_append(s, "  <key>");
        append_escaped(s, def->key);
        g_string_append(s, "</key>\n");
    }
    g_string_append_printf(s, "  <capacity unit='bytes'>%" G_GUINT64_FORMAT "</capacity>\n",
                           def->capacity);
    g_string_append_printf(s, "  <allocation unit='bytes'>%" G_GUINT64_FORMAT "</allocation>\n",
                           def->allocation);
    g_string_append(s, "  <target>\n");
    if (def->path) {
        g_string_append(s, "    <path>");
        append_escaped(s, def->path);
        g_string_append(s, "</path>\n");
    }
    if (def->format) {
        if (def->format_probed)
            g_string_append(s, "    <!-- gfpool: no format record; this format was read from the "
                            "image's header (gfpool vol-record) -->\n");
        g_string_append(s, "    <format type='");
        append_escaped(s, def->format);
        g_string_append(s, "'/>\n");
    }
    if (def->mode >= 0 || def->uid >= 0 || def->gid >= 0) {
        g_string_append(s, "    <permissions>\n");
        if (def->mode >= 0)
            g_string_append_printf(s, "      <mode>0%" G_GINT64_MODIFIER "o</mode>\n", def->mode);
        if (def->uid >= 0)
            g_string_append_printf(s, "      <owner>%" G_GINT64_FORMAT "</owner>\n", def->uid);
        if (def->gid >= 0)
            g_string_append_printf(s, "      <group>%" G_GINT64_FORMAT "</group>\n", def->gid);
        g_string_append(s, "    </permissions>\n");
    }
    if (def->cluster_size)
        g_string_append_printf(s, "    <clusterSize unit='B'>%u</clusterSize>\n", def->cluster_size);
    g_string_append(s, "  </target>\n");
    if (def->backing_path) {
        g_string_append(s, "  <backingStore>\n    <path>");
        append_escaped(s, def->backing_path);
        g_string_append(s, "</path>\n");
        if (def->backing_format) {
            g_string_append(s, "    <format type='");
            append_escaped(s, def->backing_format);
            g_string_append(s, "'/>\n");
        }
        g_string_append(s, "  </backingStore>\n");
    }
    g_string_append(s, "</volume>\n");
    return g_string_free(g_steal_pointer(&s), FALSE);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_disk_xml.c: domain disk XML for pool images.
 */
#include <string.h>

#include "gfpool_disk_xml.h"
#include "gfpool_xml.h"

void
gfpool_disk_layer_free(GfpoolDiskLayer *l)
{
    if (!l)
        return;
    g_free(l->name);
    g_free(l->format);
    g_free(l);
}

GfpoolDiskLayer *
gfpool_disk_layer_new(const char *name, const char *format)
{
    GfpoolDiskLayer *l = g_new0(GfpoolDiskLayer, 1);
    l->name = g_strdup(name);
    l->format = g_strdup(format);
    return l;
}

char *
gfpool_disk_source_name(const GfpoolSource *src, const char *image)
{
    const char *dir = src->dir ? src->dir : "/";

    while (*dir == '/')
        dir++;
    if (!*dir)
        return g_strdup_printf("%s/%s", src->volume, image);
    return g_strdup_printf("%s/%s%s%s", src->volume, dir,
                           g_str_has_suffix(dir, "/") ? "" : "/", image);
}

static void
format_nbd_source(GString *s, const char *indent, const GfpoolDiskParams *p,
                  const char *image)
{
    g_string_append_printf(s, "%s<source protocol='nbd'", indent);
    gfpool_xml_attr(s, "name", image);
    g_string_append(s, ">\n");
    g_string_append_printf(s, "%s  <host transport='unix'", indent);
    gfpool_xml_attr(s, "socket", p->nbd_socket);
    g_string_append(s, "/>\n");
    /* Every layer is a connection of its own, and each must ride out a
     * restart of nbdkit. */
    if (p->nbd_reconnect_delay)
        g_string_append_printf(s, "%s  <reconnect delay='%u'/>\n", indent,
                               p->nbd_reconnect_delay);
    g_string_append_printf(s, "%s</source>\n", indent);
}

static void
format_source(GString *s, const char *indent, const GfpoolDiskParams *p,
              const char *image, gboolean *rdma)
{
    const GfpoolSource *src = p->src;
    g_autofree char *name = NULL;

    if (p->nbd_socket) {
        format_nbd_source(s, indent, p, image);
        return;
    }
    name = gfpool_disk_source_name(src, image);
    g_string_append_printf(s, "%s<source protocol='gluster'", indent);
    gfpool_xml_attr(s, "name", name);
    g_string_append(s, ">\n");
    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);

        g_string_append_printf(s, "%s  <host", indent);
        if (h->transport == GFPOOL_TRANSPORT_UNIX) {
            g_string_append(s, " transport='unix'");
            gfpool_xml_attr(s, "socket", h->socket);
        } else {
            gfpool_xml_attr(s, "name", h->name);
            /* QEMU wants a port for every server in its server list;
             * spell out gluster's default. */
            g_string_append_printf(s, " port='%d'", h->port ? h->port : GFPOOL_DEFAULT_PORT);
            if (h->transport == GFPOOL_TRANSPORT_RDMA) {
                g_string_append(s, " transport='rdma'");
                *rdma = TRUE;
            } else {
                g_string_append(s, " transport='tcp'");
            }
        }
        g_string_append(s, "/>\n");
    }
    g_string_append_printf(s, "%s</source>\n", indent);
}

char *
gfpool_disk_xml(const GfpoolDiskParams *p, char **warnings)
{
    g_autoptr(GString) s = g_string_new(NULL);
    const GfpoolDiskLayer *top = g_ptr_array_index(p->chain, 0);
    gboolean rdma = FALSE;
    g_autofree char *indent = NULL;

    g_string_append(s, "<disk type='network' device='disk'>\n");
    g_string_append(s, "  <driver name='qemu'");
    gfpool_xml_attr(s, "type", top->format);
    gfpool_xml_attr(s, "cache", p->cache);
    gfpool_xml_attr(s, "discard", p->discard);
    g_string_append(s, "/>\n");
    format_source(s, "  ", p, top->name, &rdma);

    /* Each backing layer nests in the previous one; an empty
     * <backingStore/> says the chain ends there, so libvirt does not probe
     * further (it cannot open gluster images itself). */
    for (guint i = 1; i < p->chain->len; i++) {
        const GfpoolDiskLayer *l = g_ptr_array_index(p->chain, i);
        g_autofree char *in = g_strnfill(2 * i, ' ');

        g_string_append_printf(s, "%s<backingStore type='network'>\n", in);
        g_string_append_printf(s, "%s  <format", in);
        gfpool_xml_attr(s, "type", l->format);
        g_string_append(s, "/>\n");
        {
            g_autofree char *in2 = g_strnfill(2 * i + 2, ' ');
            format_source(s, in2, p, l->name, &rdma);
        }
    }
    indent = g_strnfill(2 * p->chain->len, ' ');
    g_string_append_printf(s, "%s<backingStore/>\n", indent);
    for (guint i = p->chain->len - 1; i >= 1; i--) {
        g_autofree char *in = g_strnfill(2 * i, ' ');
        g_string_append_printf(s, "%s</backingStore>\n", in);
    }

    g_string_append(s, "  <target");
    gfpool_xml_attr(s, "dev", p->target_dev ? p->target_dev : "vda");
    gfpool_xml_attr(s, "bus", p->bus ? p->bus : "virtio");
    g_string_append(s, "/>\n");
    if (p->readonly)
        g_string_append(s, "  <readonly/>\n");
    g_string_append(s, "</disk>\n");

    if (warnings) {
        *warnings = rdma ?
            g_strdup("the pool has rdma hosts: QEMU >= 9.1 dropped gluster's rdma transport "
                     "and libvirt's QEMU driver refuses it; use tcp hosts for guests") : NULL;
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}


static void
collect_nbd_source(const xmlNode *holder, GHashTable *out)
{
    xmlNode *src = gfpool_xml_child(holder, "source");
    g_autofree char *protocol = gfpool_xml_prop(src, "protocol");
    g_autofree char *name = gfpool_xml_prop(src, "name");
    xmlNode *bs;

    if (src && protocol && name && g_str_equal(protocol, "nbd")) {
        for (xmlNode *h = src->children; h; h = h->next) {
            g_autofree char *transport = NULL;
            g_autofree char *socket = NULL;
            GPtrArray *names;

            if (h->type != XML_ELEMENT_NODE || h->ns || !xmlStrEqual(h->name, BAD_CAST "host"))
                continue;
            transport = gfpool_xml_prop(h, "transport");
            socket = gfpool_xml_prop(h, "socket");
            if (!transport || !g_str_equal(transport, "unix") || !socket)
                continue;
            if (!(names = g_hash_table_lookup(out, socket))) {
                names = g_ptr_array_new_with_free_func(g_free);
                g_hash_table_insert(out, g_strdup(socket), names);
            }
            if (!g_ptr_array_find_with_equal_func(names, name, g_str_equal, NULL))
                g_ptr_array_add(names, g_strdup(name));
        }
    }
    if ((bs = gfpool_xml_child(holder, "backingStore")))
        collect_nbd_source(bs, out);
}

void
gfpool_domstatus_free(GfpoolDomStatus *st)
{
    if (!st)
        return;
    g_free(st->name);
    g_free(st->uuid);
    g_clear_pointer(&st->exports, g_hash_table_unref);
    g_free(st);
}

GfpoolDomStatus *
gfpool_domstatus_parse(const char *xml, gsize len, GError **error)
{
    g_autoptr(xmlDoc) doc = NULL;
    g_autoptr(GfpoolDomStatus) st = g_new0(GfpoolDomStatus, 1);
    g_autofree char *pid = NULL;
    xmlNode *root;
    xmlNode *domain;
    xmlNode *devices;
    char *end = NULL;

    if (!(doc = gfpool_xml_read(xml, len, "domain status", error)))
        return NULL;
    root = xmlDocGetRootElement(doc);
    if (root->ns || !xmlStrEqual(root->name, BAD_CAST "domstatus") ||
        !(domain = gfpool_xml_child(root, "domain"))) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "not a <domstatus> around a <domain>");
        return NULL;
    }
    pid = gfpool_xml_prop(root, "pid");
    if (pid)
        st->pid = g_ascii_strtoll(pid, &end, 10);
    if (!pid || end == pid || *end || st->pid <= 0) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "<domstatus> has no process id");
        return NULL;
    }
    st->name = gfpool_xml_text(gfpool_xml_child(domain, "name"), TRUE);
    st->uuid = gfpool_xml_text(gfpool_xml_child(domain, "uuid"), TRUE);
    if (!st->name || !st->uuid || !g_uuid_string_is_valid(st->uuid)) {
        g_set_error(error, GFPOOL_CONF_ERROR, GFPOOL_CONF_ERROR_INVALID,
                    "the <domain> of the status has no name or no valid uuid");
        return NULL;
    }
    st->exports = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)g_ptr_array_unref);
    if ((devices = gfpool_xml_child(domain, "devices"))) {
        for (xmlNode *d = devices->children; d; d = d->next) {
            xmlNode *mirror;

            if (d->type != XML_ELEMENT_NODE || d->ns || !xmlStrEqual(d->name, BAD_CAST "disk"))
                continue;
            collect_nbd_source(d, st->exports);
            /* a blockcopy's destination, and its chain */
            if ((mirror = gfpool_xml_child(d, "mirror")))
                collect_nbd_source(mirror, st->exports);
        }
    }
    return g_steal_pointer(&st);
}

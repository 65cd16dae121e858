/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_source.c: the pool source description shared by every layer.
 */
#include <string.h>

#include "gfpool_source.h"

G_DEFINE_QUARK(gfpool-conf-error-quark, gfpool_conf_error)

static const char *const transport_names[GFPOOL_TRANSPORT_LAST] = {
    [GFPOOL_TRANSPORT_TCP] = "tcp",
    [GFPOOL_TRANSPORT_UNIX] = "unix",
    [GFPOOL_TRANSPORT_RDMA] = "rdma",
};

const char *
gfpool_transport_to_string(GfpoolTransport t)
{
    if ((int)t < 0 || t >= GFPOOL_TRANSPORT_LAST)
        return NULL;
    return transport_names[t];
}

int
gfpool_transport_from_string(const char *s)
{
    for (int i = 0; i < GFPOOL_TRANSPORT_LAST; i++) {
        if (g_strcmp0(s, transport_names[i]) == 0)
            return i;
    }
    return -1;
}

GfpoolHost *
gfpool_host_new(GfpoolTransport transport, const char *name, int port,
                const char *socket)
{
    GfpoolHost *h = g_new0(GfpoolHost, 1);
    h->transport = transport;
    h->name = g_strdup(name);
    h->port = port;
    h->socket = g_strdup(socket);
    return h;
}

GfpoolHost *
gfpool_host_copy(const GfpoolHost *h)
{
    return gfpool_host_new(h->transport, h->name, h->port, h->socket);
}

void
gfpool_host_free(GfpoolHost *h)
{
    if (!h)
        return;
    g_free(h->name);
    g_free(h->socket);
    g_free(h);
}

GfpoolSource *
gfpool_source_new(void)
{
    GfpoolSource *src = g_new0(GfpoolSource, 1);
    src->hosts = g_ptr_array_new_with_free_func((GDestroyNotify)gfpool_host_free);
    return src;
}

GfpoolSource *
gfpool_source_copy(const GfpoolSource *src)
{
    GfpoolSource *copy = gfpool_source_new();
    copy->volume = g_strdup(src->volume);
    copy->dir = g_strdup(src->dir);
    for (guint i = 0; i < src->hosts->len; i++)
        g_ptr_array_add(copy->hosts, gfpool_host_copy(g_ptr_array_index(src->hosts, i)));
    return copy;
}

void
gfpool_source_free(GfpoolSource *src)
{
    if (!src)
        return;
    g_free(src->volume);
    g_free(src->dir);
    g_ptr_array_unref(src->hosts);
    g_free(src);
}

char *
gfpool_source_hosts_string(const GfpoolSource *src)
{
    g_autoptr(GString) s = g_string_new(NULL);

    for (guint i = 0; i < src->hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(src->hosts, i);
        if (i > 0)
            g_string_append_c(s, ',');
        if (h->transport == GFPOOL_TRANSPORT_UNIX) {
            g_string_append_printf(s, "unix:%s", h->socket);
            continue;
        }
        if (h->transport == GFPOOL_TRANSPORT_RDMA)
            g_string_append(s, "rdma:");
        if (strchr(h->name, ':'))
            g_string_append_printf(s, "[%s]", h->name);
        else
            g_string_append(s, h->name);
        if (h->port)
            g_string_append_printf(s, ":%d", h->port);
    }
    return g_string_free(g_steal_pointer(&s), FALSE);
}

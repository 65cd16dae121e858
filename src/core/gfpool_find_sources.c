/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_find_sources.c: find-storage-pool-sources.
 *
 * glusterd lists volumes only through its management RPC, which gfapi does
 * not expose: ask the gluster CLI, as libvirt does, but with a deadline
 * (libvirt's call has none: a host that never answers holds the caller for
 * the CLI's 120 s default) and trying every host given.
 */
#include <string.h>

#include "gfpool_volinfo_xml.h"
#include "gfpool_conn.h"
#include "gfpool_find_sources.h"

static GPtrArray *
query_host(const GfpoolHost *h, guint timeout_s, GError **error)
{
    g_autofree char *remote = NULL;
    g_autofree char *timeout = g_strdup_printf("--timeout=%u", timeout_s);
    g_autofree char *out = NULL;
    g_autofree char *err = NULL;
    g_autoptr(GError) spawn_err = NULL;
    int status;

    if (h->transport != GFPOOL_TRANSPORT_TCP || !h->name) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_UNSUPPORTED,
                    "glusterd can only be asked over tcp");
        return NULL;
    }
    /* The CLI takes no port: glusterd's management port is 24007. */
    remote = g_strdup_printf("--remote-host=%s", h->name);
    {
        const char *argv[] = { "gluster", "--xml", "--mode=script", "--log-file=/dev/null",
                               timeout, remote, "volume", "info", "all", NULL };
        if (!g_spawn_sync(NULL, (char **)argv, NULL, G_SPAWN_SEARCH_PATH, NULL, NULL,
                          &out, &err, &status, &spawn_err)) {
            g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                        "cannot run the gluster command line tool: %s", spawn_err->message);
            return NULL;
        }
    }
    if (!g_spawn_check_wait_status(status, NULL) && (!out || !strstr(out, "<cliOutput"))) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED, "%s",
                    err && *g_strstrip(err) ? err : "gluster volume info failed");
        return NULL;
    }
    return gfpool_volinfo_parse(out, strlen(out), h, error);
}

GPtrArray *
gfpool_find_pool_sources(const GPtrArray *hosts, guint timeout_s, GError **error)
{
    g_autoptr(GString) why = g_string_new(NULL);

    if (!hosts || hosts->len == 0) {
        g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_INVALID,
                    "a host must be given to find gluster pool sources");
        return NULL;
    }
    for (guint i = 0; i < hosts->len; i++) {
        const GfpoolHost *h = g_ptr_array_index(hosts, i);
        g_autoptr(GError) err = NULL;
        GPtrArray *found = query_host(h, timeout_s ? timeout_s : 5, &err);

        if (found)
            return found;
        g_string_append_printf(why, "%s%s: %s", why->len ? "; " : "",
                               h->name ? h->name : "(unix)", err->message);
    }
    g_set_error(error, GFPOOL_ERROR, GFPOOL_ERROR_FAILED,
                "no glusterd answered: %s", why->str);
    return NULL;
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gfpool_pool_verbs.c: the verbs on the pool's directory as a whole:
 * pool-build, pool-delete, pool-info, pool-refresh.
 */
#include <stdio.h>

#include "gfpool_tools.h"

static gboolean opt_no_overwrite;
static gboolean opt_overwrite;

const GOptionEntry gfpool_pool_build_options[] = {
    { "no-overwrite", 0, 0, G_OPTION_ARG_NONE, &opt_no_overwrite,
      "fail if the pool directory exists and is not empty", NULL },
    { "overwrite", 0, 0, G_OPTION_ARG_NONE, &opt_overwrite,
      "accepted for virsh compatibility; images are never deleted", NULL },
    { NULL }
};

int
cmd_pool_build(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 1)
        return usage_error("pool-build takes no arguments");
    if (opt_overwrite && opt_no_overwrite)
        return usage_error("--overwrite and --no-overwrite are mutually exclusive");
    if (!(conn = pool_connect_flags(&rc, GFPOOL_CONN_OPEN_NO_DIR)))
        return rc;
    if (!gfpool_pool_build(conn, 0755, opt_no_overwrite, &err))
        return finish(conn, fail(err));
    printf("Pool directory %s built\n", gfpool_conn_source(conn)->dir);
    return finish(conn, EXIT_OK);
}

int
cmd_pool_delete(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 1)
        return usage_error("pool-delete takes no arguments");
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!gfpool_pool_delete(conn, &err))
        return finish(conn, fail(err));
    printf("Pool directory %s deleted\n", gfpool_conn_source(conn)->dir);
    return finish(conn, EXIT_OK);
}

int
cmd_pool_info(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autofree char *hosts = NULL;
    guint64 cap, alloc, avail;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 1)
        return usage_error("pool-info takes no arguments");
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!gfpool_pool_info(conn, &cap, &alloc, &avail, &err))
        return finish(conn, fail(err));
    hosts = gfpool_source_hosts_string(gfpool_conn_source(conn));
    {
        g_autofree char *c = human_size(cap);
        g_autofree char *a = human_size(alloc);
        g_autofree char *f = human_size(avail);
        printf("%-15s %s\n", "Volume:", gfpool_conn_source(conn)->volume);
        printf("%-15s %s\n", "Directory:", gfpool_conn_source(conn)->dir);
        printf("%-15s %s\n", "Hosts:", hosts);
        printf("%-15s %s\n", "Capacity:", c);
        printf("%-15s %s\n", "Allocation:", a);
        printf("%-15s %s\n", "Available:", f);
    }
    return finish(conn, EXIT_OK);
}

int
cmd_pool_refresh(const GfpoolVerb *verb, int argc, char **argv)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GPtrArray) vols = NULL;
    GfpoolConn *conn;
    int rc = EXIT_OK;

    if (!parse_verb_args(verb, &argc, &argv, &rc))
        return rc;
    if (argc != 1)
        return usage_error("pool-refresh takes no arguments");
    if (!(conn = pool_connect(&rc)))
        return rc;
    if (!(vols = gfpool_pool_refresh(conn, NULL, GFPOOL_REFRESH_SWEEP, &err)))
        return finish(conn, fail(err));
    printf("Pool refreshed: %u volumes\n", vols->len);
    return finish(conn, EXIT_OK);
}
